//! Decides access tokens: issuing, refreshing and revoking them.

use super::DomainError;
use gatehouse_projections::State;
use gatehouse_schemas::{Event, TokenIssued, UserStatus};
use std::sync::Arc;

/// The token is already signed; the command carries only its record (hashes).
pub(super) fn issue(state: &State, t: &Arc<TokenIssued>) -> Result<Vec<Event>, DomainError> {
    check_token_subject(state, t)?;
    Ok(vec![Event::TokenIssued(t.clone())])
}

pub(super) fn refresh(
    state: &State,
    old_token_id: &str,
    issued: &Arc<TokenIssued>,
) -> Result<Vec<Event>, DomainError> {
    if !state.tokens.by_id.contains_key(old_token_id) {
        return Err(DomainError::invalid(
            "refresh_token",
            "the token was revoked or refreshed already",
        ));
    }
    check_token_subject(state, issued)?;
    Ok(vec![Event::TokenRefreshed {
        old_token_id: old_token_id.to_string(),
        issued: issued.clone(),
    }])
}

/// A no-op for an unknown id (the seed answers 204 then). Revoking a pairing's master
/// token ends the trust the pairing created (seed 003: "an admin user can revoke trust by
/// revoking this token").
pub(super) fn revoke(state: &State, token_id: &str) -> Result<Vec<Event>, DomainError> {
    let mut events = Vec::new();
    if state.tokens.by_id.contains_key(token_id) {
        events.push(Event::TokenRevoked {
            token_id: token_id.to_string(),
        });
    }
    if let Some(name) = state.keys.pairing_tokens.get(token_id) {
        if state.keys.trusted.contains_key(name) {
            // Ending the trust ends the pairing's master token too (as removing the key
            // does): it is admin for ever, and once the key is gone nothing links it to
            // the pairing any more.
            for e in super::keys::remove_trusted_key(state, name)? {
                let already = matches!(&e, Event::TokenRevoked { token_id: id } if id == token_id);
                if !already {
                    events.push(e);
                }
            }
        }
    }
    Ok(events)
}

/// The revocations of `username`'s token records, written with its deletion or rename
/// (which end them). The projection ends them too, silently; as events they reach every
/// peer like any other revocation — a peer that takes tokens but not users kept the
/// record, and the token went on working there. With `issued_here_only`, only the
/// records this server issued (a peer revokes its own).
pub(super) fn revocations_of(state: &State, username: &str, issued_here_only: bool) -> Vec<Event> {
    state
        .tokens
        .by_id
        .values()
        .filter(|t| t.subject == username && !t.transient)
        .filter(|t| {
            !issued_here_only
                || !state
                    .federation
                    .token_issuers
                    .contains_key(t.token_id.as_str())
        })
        .map(|t| Event::TokenRevoked {
            token_id: t.token_id.clone(),
        })
        .collect()
}

/// The records of `token_ids` that are past use at `now` are forgotten, in one event
/// (none when no id qualifies).
pub(super) fn expire(state: &State, token_ids: &[String], now: u64, grace: u64) -> Vec<Event> {
    let gone: Vec<String> = token_ids
        .iter()
        .filter(|id| {
            state
                .tokens
                .by_id
                .get(id.as_str())
                .is_some_and(|t| gatehouse_projections::past_use(t, now, grace))
        })
        .cloned()
        .collect();
    if gone.is_empty() {
        return vec![];
    }
    vec![Event::TokensExpired { token_ids: gone }]
}

/// A token acts for an existing, enabled user, or for a transient subject that has no
/// user record here (only admins issue those, and never with the user scope).
///
/// (A user's tokens go when the user is deleted or renamed: `State::apply` of
/// `UserDeleted` / `UserRenamed`, gatehouse-projections. A pairing token is used up by
/// `keys::complete_pairing`.)
fn check_token_subject(state: &State, t: &TokenIssued) -> Result<(), DomainError> {
    if state.tokens.by_id.contains_key(t.token_id.as_str()) {
        return Err(DomainError::AlreadyExists(format!(
            "token `{}`",
            t.token_id
        )));
    }
    match state.directory.users.get(t.subject.as_str()) {
        Some(u) if u.status == UserStatus::Enabled => Ok(()),
        Some(_) => Err(DomainError::invalid(
            "username",
            format!("user `{}` is not enabled", t.subject),
        )),
        None if t.transient => Ok(()),
        None => Err(DomainError::invalid(
            "username",
            format!("user `{}` does not exist", t.subject),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_schemas::Envelope;

    fn record(id: &str, expires_at: Option<u64>, refreshable: bool) -> TokenIssued {
        TokenIssued {
            token_id: id.into(),
            subject: "ghost".into(),
            transient: true,
            scope: "applied-permissions/user".into(),
            audience: "*@*".into(),
            issued_at: 1_000,
            expires_at,
            refreshable,
            revocable: true,
            description: None,
            kid: "k".into(),
            access_hash: format!("a-{id}"),
            refresh_hash: refreshable.then(|| format!("r-{id}")),
            reference_hash: None,
            self_issued: false,
            force_revocable: false,
        }
    }

    #[test]
    fn only_tokens_past_use_are_forgotten() {
        let mut state = State::default();
        let tokens = [
            record("expired", Some(2_000), false),
            record("in-grace", Some(2_000), true),
            record("past-grace", Some(1_000), true),
            record("valid", Some(9_000), false),
            record("forever", None, true),
        ];
        for (i, t) in tokens.iter().enumerate() {
            state.apply(&Envelope {
                seq: i as u64 + 1,
                time_ms: 0,
                actor: "admin".into(),
                origin: "here".into(),
                request_id: "r".into(),
                event: Event::TokenIssued(Arc::new(t.clone())),
            });
        }
        let all: Vec<String> = tokens
            .iter()
            .map(|t| t.token_id.clone())
            .chain(["unknown".to_string()])
            .collect();
        // At 2,500 with a grace of 1,000: "in-grace" may still be refreshed until 3,000.
        assert_eq!(
            expire(&state, &all, 2_500, 1_000),
            vec![Event::TokensExpired {
                token_ids: vec!["expired".into(), "past-grace".into()]
            }]
        );
        assert_eq!(expire(&state, &["valid".into()], 2_500, 1_000), vec![]);
    }
}

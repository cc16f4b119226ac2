//! Decides access tokens: issuing, refreshing and revoking them.

use super::DomainError;
use gatehouse_projections::State;
use gatehouse_schemas::{Event, TokenIssued, UserStatus};

/// The token is already signed; the command carries only its record (hashes).
pub(super) fn issue(state: &State, t: &TokenIssued) -> Result<Vec<Event>, DomainError> {
    check_token_subject(state, t)?;
    Ok(vec![Event::TokenIssued(Box::new(t.clone()))])
}

pub(super) fn refresh(
    state: &State,
    old_token_id: &str,
    issued: &TokenIssued,
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
        issued: Box::new(issued.clone()),
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
            events.push(Event::TrustedKeyRemoved { name: name.clone() });
        }
    }
    Ok(events)
}

/// A token acts for an existing, enabled user, or for a transient subject that has no
/// user record here (only admins issue those, and never with the user scope).
///
/// (A user's tokens go when the user is deleted or renamed: `State::apply` of
/// `UserDeleted` / `UserRenamed`, gatehouse-projections. A pairing token is used up by
/// `keys::complete_pairing`.)
fn check_token_subject(state: &State, t: &TokenIssued) -> Result<(), DomainError> {
    if state.tokens.by_id.contains_key(&t.token_id) {
        return Err(DomainError::AlreadyExists(format!(
            "token `{}`",
            t.token_id
        )));
    }
    match state.directory.users.get(&t.subject) {
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

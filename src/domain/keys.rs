//! Decides keys: this server's signing keys, the keys it trusts (added by hand or by a
//! pairing), and the version of the signed-URL key.

use super::DomainError;
use gatehouse_projections::State;
use gatehouse_schemas::Event;

pub(super) fn add_signing_key(
    state: &State,
    kid: &str,
    public_key: &str,
) -> Result<Vec<Event>, DomainError> {
    if state.keys.signing.contains_key(kid) {
        return Err(DomainError::AlreadyExists(format!("signing key `{kid}`")));
    }
    Ok(vec![Event::SigningKeyAdded {
        kid: kid.to_string(),
        public_key: public_key.to_string(),
    }])
}

/// Seed 003: "resetting the certificate will effectively revoke all of the tokens that
/// have been generated" -- every earlier signing key is retired.
pub(super) fn reset_signing_keys(
    state: &State,
    kid: &str,
    public_key: &str,
) -> Result<Vec<Event>, DomainError> {
    if state.keys.signing.contains_key(kid) {
        return Err(DomainError::AlreadyExists(format!("signing key `{kid}`")));
    }
    let retired = state
        .keys
        .signing
        .keys()
        .filter(|k| !state.keys.retired.contains(*k))
        .cloned()
        .collect();
    Ok(vec![Event::SigningKeysReset {
        kid: kid.to_string(),
        public_key: public_key.to_string(),
        retired,
    }])
}

pub(super) fn add_trusted_key(
    state: &State,
    name: &str,
    kid: &str,
    public_key: &str,
) -> Result<Vec<Event>, DomainError> {
    if state.keys.trusted.contains_key(name) {
        return Err(DomainError::AlreadyExists(format!("trusted key `{name}`")));
    }
    if state.keys.is_live_signing_key(kid) {
        return Err(DomainError::invalid(
            "certificate",
            "this is one of this server's own keys",
        ));
    }
    // `public_key` in the read model's form: `spki:<base64 DER>` for a non-Ed25519 key.
    let (public_key, spki) = match public_key.strip_prefix("spki:") {
        Some(der) => (String::new(), Some(der.to_string())),
        None => (public_key.to_string(), None),
    };
    Ok(vec![Event::TrustedKeyAdded {
        name: name.to_string(),
        kid: kid.to_string(),
        public_key,
        spki,
    }])
}

/// Ending a paired peer's trust also revokes the master token it was given.
pub(super) fn remove_trusted_key(state: &State, name: &str) -> Result<Vec<Event>, DomainError> {
    if !state.keys.trusted.contains_key(name) {
        return Err(DomainError::NotFound(format!("trusted key `{name}`")));
    }
    let mut events = vec![Event::TrustedKeyRemoved {
        name: name.to_string(),
    }];
    for (id, n) in &state.keys.pairing_tokens {
        if n == name && state.tokens.by_id.contains_key(id.as_str()) {
            events.push(Event::TokenRevoked {
                token_id: id.clone(),
            });
        }
    }
    Ok(events)
}

/// Record a peer's key from a pairing; with `pairing_token_id`, also use up that
/// (single-use) pairing token in the same commit (a `TokenRevoked`, as `tokens::revoke`
/// writes).
pub(super) fn complete_pairing(
    state: &State,
    pairing_token_id: Option<&str>,
    use_case: &str,
    service_id: &str,
    kid: &str,
    public_key: &str,
    base_url: Option<&str>,
    master: Option<&std::sync::Arc<gatehouse_schemas::TokenIssued>>,
) -> Result<Vec<Event>, DomainError> {
    let mut events = Vec::new();
    if let Some(id) = pairing_token_id {
        if !state.tokens.by_id.contains_key(id) {
            return Err(DomainError::invalid(
                "pairing_token",
                "the pairing token was used already or revoked",
            ));
        }
        events.push(Event::TokenRevoked {
            token_id: id.to_string(),
        });
    }
    if state.keys.is_live_signing_key(kid) {
        return Err(DomainError::invalid(
            "certificate",
            "this is one of this server's own keys",
        ));
    }
    // Pairing never replaces a key trusted under the same name.
    if state
        .keys
        .trusted
        .get(service_id)
        .is_some_and(|(k, _)| k != kid)
    {
        return Err(DomainError::AlreadyExists(format!(
            "a different key trusted as `{service_id}`"
        )));
    }
    if let Some(m) = master {
        if state.tokens.by_id.contains_key(m.token_id.as_str()) {
            return Err(DomainError::AlreadyExists(format!(
                "token `{}`",
                m.token_id
            )));
        }
        events.push(Event::TokenIssued(m.clone()));
    }
    events.push(Event::ServicePaired {
        use_case: use_case.to_string(),
        name: service_id.to_string(),
        service_id: service_id.to_string(),
        kid: kid.to_string(),
        public_key: public_key.to_string(),
        base_url: base_url.map(str::to_string),
        master_token_id: master.map(|m| m.token_id.clone()),
        pairing_token_id: pairing_token_id.map(str::to_string),
    });
    Ok(events)
}

pub(super) fn replace_signed_url_key(
    state: &State,
    version: u64,
    org: Option<&str>,
) -> Result<Vec<Event>, DomainError> {
    let current = match org {
        None => state.keys.signed_url_version,
        Some(o) => {
            super::validate_group_name("org", o)?;
            state
                .keys
                .org_signed_url_versions
                .get(o)
                .copied()
                .unwrap_or(0)
        }
    };
    if version != current + 1 {
        return Err(DomainError::invalid(
            "version",
            "the signed-URL key was replaced concurrently; try again",
        ));
    }
    Ok(vec![Event::SignedUrlKeyReplaced {
        version,
        org: org.map(str::to_string),
    }])
}

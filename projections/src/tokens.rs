//! Tokens: the records of revocable access tokens, indexed by the hashes of their
//! refresh and reference tokens.

use crate::shared::{Name, OrdMap, Shared};
use crate::Federation;
use gatehouse_schemas::{Event, TokenIssued};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Revocable access tokens (short-lived ones are not kept: they cannot be revoked).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub by_id: OrdMap<Name, Shared<TokenIssued>>,
    /// blake3 (hex) of a refresh token -> token id.
    pub by_refresh_hash: OrdMap<String, String>,
    /// blake3 (hex) of a reference token -> token id.
    pub by_reference_hash: OrdMap<String, String>,
}

/// Expired at `now` (unix seconds), and a refreshable token also past the refresh
/// grace period `grace`: neither the token nor its refresh token can be used any more,
/// so its record is only kept until it is forgotten (`Event::TokensExpired`).
pub fn past_use(t: &TokenIssued, now: u64, grace: u64) -> bool {
    let extra = if t.refreshable { grace } else { 0 };
    t.expires_at.is_some_and(|e| e.saturating_add(extra) < now)
}

impl Tokens {
    /// Token events. A token record from a federation peer also goes into
    /// `federation.token_issuers`, and a revocation takes it out again.
    pub(crate) fn apply(&mut self, event: &Event, federation: &mut Federation) {
        match event {
            Event::TokenIssued(t) => self.insert(t),
            Event::TokenRefreshed {
                old_token_id,
                issued,
            } => {
                self.remove(old_token_id);
                self.insert(issued);
            }
            Event::TokenRevoked { token_id } => {
                self.remove(token_id);
                federation.token_issuers.remove(token_id);
            }
            Event::TokensExpired { token_ids } => {
                // Past any use here and at every peer (whose copy expires at the same
                // time): the record goes, and so does its version entry — a stale copy
                // sent again is refused for its expiry where it is received.
                for id in token_ids {
                    self.remove(id);
                    federation.token_issuers.remove(id);
                    federation.versions.tokens.remove(id.as_str());
                }
            }
            Event::TokenReplicated { issuer, token, .. } => {
                // Kept like a record issued here, so that the token works here until its
                // revocation (which removes it) arrives.
                let revocable = Arc::new(TokenIssued {
                    revocable: true,
                    ..(**token).clone()
                });
                self.insert(&revocable);
                federation
                    .token_issuers
                    .insert(token.token_id.clone(), issuer.clone());
            }
            _ => {}
        }
    }

    /// The tokens of a deleted or renamed user end (see `State::delete_user` and
    /// `State::rename_user`); tokens of a transient subject (no user record) are not its.
    pub(crate) fn remove_subject(&mut self, subject: &str) {
        let ids: Vec<String> = self
            .by_id
            .values()
            .filter(|t| t.subject == subject && !t.transient)
            .map(|t| t.token_id.clone())
            .collect();
        for id in ids {
            self.remove(&id);
        }
    }

    /// The event's record itself goes into the map (a reference count, no copy).
    fn insert(&mut self, t: &Arc<TokenIssued>) {
        // A token that cannot be revoked is not kept: its id says what it is
        // (`gatehouse::tokens::id_marks_non_revocable`).
        if !t.revocable {
            return;
        }
        if let Some(h) = &t.refresh_hash {
            self.by_refresh_hash.insert(h.clone(), t.token_id.clone());
        }
        if let Some(h) = &t.reference_hash {
            self.by_reference_hash.insert(h.clone(), t.token_id.clone());
        }
        self.by_id
            .insert(t.token_id.as_str().into(), Shared::from_arc(t.clone()));
    }

    fn remove(&mut self, token_id: &str) {
        if let Some(t) = self.by_id.remove(token_id) {
            if let Some(h) = &t.refresh_hash {
                self.by_refresh_hash.remove(h);
            }
            if let Some(h) = &t.reference_hash {
                self.by_reference_hash.remove(h);
            }
        }
    }
}

//! Keys: this server's token-signing keys, trusted peer keys, completed pairings and
//! the signed-URL key version.

use gatehouse_schemas::Event;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Public keys that verify tokens, and the signed-URL key version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keys {
    /// This server's signing keys by kid (base64url Ed25519 public keys), oldest first.
    pub signing: BTreeMap<String, String>,
    /// The kid new tokens are signed with.
    pub active: Option<String>,
    /// Trusted peers by name: (kid, public key). The public key is base64url raw
    /// Ed25519, or `spki:<base64 DER>` for another kind (RSA).
    pub trusted: BTreeMap<String, (String, String)>,
    pub signed_url_version: u64,
    /// Completed pairings: use case -> peer service id -> the name its key is trusted under.
    #[serde(default)]
    pub pairings: BTreeMap<String, BTreeMap<String, String>>,
    /// Signing keys retired by a reset: still listed in `signing` (earlier checkpoints
    /// were signed with them) but they verify no token unless trusted again.
    #[serde(default)]
    pub retired: std::collections::BTreeSet<String>,
}

impl Keys {
    /// Whether `kid` is one of this server's signing keys that still verifies tokens.
    pub fn is_live_signing_key(&self, kid: &str) -> bool {
        self.signing.contains_key(kid) && !self.retired.contains(kid)
    }

    /// Signing keys, trusted keys, pairings and the signed-URL key.
    pub(crate) fn apply(&mut self, event: &Event) {
        match event {
            Event::SigningKeyAdded { kid, public_key } => {
                self.signing.insert(kid.clone(), public_key.clone());
                self.active = Some(kid.clone());
            }
            Event::SigningKeysReset {
                kid,
                public_key,
                retired,
            } => {
                self.retired.extend(retired.iter().cloned());
                self.signing.insert(kid.clone(), public_key.clone());
                self.active = Some(kid.clone());
            }
            Event::TrustedKeyAdded {
                name,
                kid,
                public_key,
                spki,
            } => {
                let public = match spki {
                    Some(der) => format!("spki:{der}"),
                    None => public_key.clone(),
                };
                self.trusted.insert(name.clone(), (kid.clone(), public));
            }
            Event::TrustedKeyRemoved { name } => {
                self.trusted.remove(name);
            }
            Event::SignedUrlKeyReplaced { version } => self.signed_url_version = *version,
            Event::ServicePaired {
                use_case,
                name,
                service_id,
                kid,
                public_key,
            } => {
                self.trusted
                    .insert(name.clone(), (kid.clone(), public_key.clone()));
                self.pairings
                    .entry(use_case.clone())
                    .or_default()
                    .insert(service_id.clone(), name.clone());
            }
            _ => {}
        }
    }
}

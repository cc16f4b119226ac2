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
    /// Organisations' own signed-URL key versions (org -> version).
    #[serde(default)]
    pub org_signed_url_versions: BTreeMap<String, u64>,
    /// Completed pairings' peer base URLs: use case -> peer service id -> base URL.
    #[serde(default)]
    pub pairing_base_urls: BTreeMap<String, BTreeMap<String, String>>,
    /// The master token handed to a paired peer and the pairing token it used, by token
    /// id -> the trusted-key name of the peer. Revoking either ends the trust, and ending
    /// the trust revokes the master token (`decide`).
    #[serde(default)]
    pub pairing_tokens: BTreeMap<String, String>,
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
                // A pairing ends with the trust it created.
                self.pairing_tokens.retain(|_, n| n != name);
                for (use_case, peers) in self.pairings.iter_mut() {
                    let gone: Vec<String> = peers
                        .iter()
                        .filter(|(_, n)| *n == name)
                        .map(|(s, _)| s.clone())
                        .collect();
                    for service_id in gone {
                        peers.remove(&service_id);
                        if let Some(urls) = self.pairing_base_urls.get_mut(use_case) {
                            urls.remove(&service_id);
                        }
                    }
                }
                self.pairings.retain(|_, peers| !peers.is_empty());
                self.pairing_base_urls.retain(|_, urls| !urls.is_empty());
            }
            Event::SignedUrlKeyReplaced { version, org: None } => {
                self.signed_url_version = *version
            }
            Event::SignedUrlKeyReplaced {
                version,
                org: Some(org),
            } => {
                self.org_signed_url_versions.insert(org.clone(), *version);
            }
            Event::ServicePaired {
                use_case,
                name,
                service_id,
                kid,
                public_key,
                base_url,
                master_token_id,
                pairing_token_id,
            } => {
                self.trusted
                    .insert(name.clone(), (kid.clone(), public_key.clone()));
                self.pairings
                    .entry(use_case.clone())
                    .or_default()
                    .insert(service_id.clone(), name.clone());
                if let Some(url) = base_url {
                    self.pairing_base_urls
                        .entry(use_case.clone())
                        .or_default()
                        .insert(service_id.clone(), url.clone());
                }
                for id in [master_token_id, pairing_token_id].into_iter().flatten() {
                    self.pairing_tokens.insert(id.clone(), name.clone());
                }
            }
            _ => {}
        }
    }
}

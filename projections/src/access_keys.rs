//! Access keys (Bintray-style, `<id>@<org>`) and the entitlements that name them.

use crate::shared::{edit, OrdMap, OrdSet, Shared};
use gatehouse_schemas::{AccessKey, Entitlement, Event};
use serde::{Deserialize, Serialize};

/// Access keys by `<id>@<org>` (the name they sign in with) and entitlements by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKeys {
    pub keys: OrdMap<String, Shared<AccessKeyRecord>>,
    pub entitlements: OrdMap<String, Shared<EntitlementRecord>>,
    /// `<id>@<org>` -> ids of the entitlements that name the key (derived).
    pub entitlements_by_key: OrdMap<String, OrdSet<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKeyRecord {
    pub key: AccessKey,
    pub created_seq: u64,
    pub updated_seq: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntitlementRecord {
    pub entitlement: Entitlement,
    pub created_seq: u64,
    pub updated_seq: u64,
}

/// The name an access key signs in with.
pub fn access_key_username(org: &str, id: &str) -> String {
    format!("{id}@{org}")
}

impl AccessKeys {
    /// Access key and entitlement events.
    pub(crate) fn apply(&mut self, event: &Event, seq: u64) {
        match event {
            Event::AccessKeySaved(k) => {
                let name = access_key_username(&k.org, &k.id);
                let rec = (self.keys.entry(name))
                    .or_insert_with(|| {
                        Shared::new(AccessKeyRecord {
                            created_seq: seq,
                            ..Default::default()
                        })
                    })
                    .make_mut();
                rec.key = k.clone();
                rec.updated_seq = seq;
            }
            Event::AccessKeyDeleted { org, id } => {
                let name = access_key_username(org, id);
                self.keys.remove(&name);
                let ids = self.entitlements_by_key.remove(&name).unwrap_or_default();
                for eid in ids {
                    if let Some(e) = edit(&mut self.entitlements, &eid) {
                        e.entitlement.access_keys.retain(|k| k != id);
                        e.updated_seq = seq;
                    }
                }
            }
            Event::EntitlementSaved(e) => {
                let created_seq = match self.entitlements.get(&e.id) {
                    Some(old) => {
                        let old = old.clone();
                        let old = &*old;
                        self.unindex(&old.entitlement);
                        old.created_seq
                    }
                    None => seq,
                };
                self.index(e);
                self.entitlements.insert(
                    e.id.clone(),
                    Shared::new(EntitlementRecord {
                        entitlement: e.clone(),
                        created_seq,
                        updated_seq: seq,
                    }),
                );
            }
            Event::EntitlementDeleted { id, .. } => {
                if let Some(old) = self.entitlements.remove(id) {
                    self.unindex(&old.entitlement);
                }
            }
            _ => {}
        }
    }

    fn index(&mut self, e: &Entitlement) {
        for k in &e.access_keys {
            self.entitlements_by_key
                .entry(access_key_username(&e.org, k))
                .or_default()
                .insert(e.id.clone());
        }
    }

    fn unindex(&mut self, e: &Entitlement) {
        for k in &e.access_keys {
            let name = access_key_username(&e.org, k);
            if let Some(ids) = self.entitlements_by_key.get_mut(&name) {
                ids.remove(&e.id);
                if ids.is_empty() {
                    self.entitlements_by_key.remove(&name);
                }
            }
        }
    }
}

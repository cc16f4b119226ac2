//! LDAP settings and LDAP group settings (the directory users sign in against and how
//! its groups map to Gatehouse groups). Kept inside `Settings` as its last field and
//! left out of the encoding while empty, so states of logs without LDAP events encode
//! (and digest) as before.
//!
//! The users and groups a directory brings are ordinary `UserCreated` / `GroupCreated`
//! (realm `ldap`) and membership events: they live in the directory like any other.

use gatehouse_schemas::{Event, LdapGroupSetting, LdapSetting};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ldap {
    /// By key. The manager password stays sealed here.
    pub settings: BTreeMap<String, LdapSetting>,
    /// By name.
    pub group_settings: BTreeMap<String, LdapGroupSetting>,
    /// Position of the last LDAP setting event: a sign-in cached under older settings
    /// is checked again.
    pub changed_seq: u64,
}

impl Ldap {
    pub fn is_empty(&self) -> bool {
        *self == Ldap::default()
    }

    /// Whether any LDAP setting is enabled (then unknown names are tried against it).
    pub fn any_enabled(&self) -> bool {
        self.settings.values().any(|s| s.enabled)
    }

    /// The group settings that read the directory of LDAP setting `key`.
    pub fn group_settings_of<'a>(
        &'a self,
        key: &'a str,
    ) -> impl Iterator<Item = &'a LdapGroupSetting> + 'a {
        self.group_settings
            .values()
            .filter(move |g| g.enabled_ldap == key)
    }

    pub(crate) fn apply(&mut self, event: &Event, seq: u64) {
        match event {
            Event::LdapSettingSaved(s) => {
                self.settings.insert(s.key.clone(), s.clone());
            }
            Event::LdapSettingDeleted { key } => {
                self.settings.remove(key);
            }
            Event::LdapGroupSettingSaved(g) => {
                self.group_settings.insert(g.name.clone(), g.clone());
            }
            Event::LdapGroupSettingDeleted { name } => {
                self.group_settings.remove(name);
            }
            _ => return,
        }
        self.changed_seq = seq;
    }
}

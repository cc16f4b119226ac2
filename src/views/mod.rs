//! What an entity looks like to the outside: the REST JSON that the API answers,
//! webhooks deliver (`data`) and federation sends. One rendering per entity, so a
//! webhook's `data` is exactly what a GET would answer.
//!
//! **Architecture invariant:** this module uses neither `http`, `webhooks` nor
//! `federation`; all three use it.

use gatehouse_projections::{access_key_username, Group, User};
use gatehouse_schemas::{AccessKey, Entitlement, FederationTarget, Project, TokenIssued};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub mod permissions;

// ---- users and groups (Access v2) ----

#[derive(Serialize)]
pub struct UserView<'a> {
    username: &'a str,
    /// Decrypted for the answer; `[erased]` after a purge.
    email: Option<String>,
    groups: Vec<&'a str>,
    realm: &'a str,
    status: &'static str,
    admin: bool,
    profile_updatable: bool,
    internal_password_disabled: bool,
    disable_ui_access: bool,
    password_expired: bool,
    /// An admin by its own flag or through a group with admin privileges (JFrog's
    /// `effective_admin`); shown where the directory of the moment is at hand.
    #[serde(skip_serializing_if = "Option::is_none")]
    effective_admin: Option<bool>,
}

impl<'a> UserView<'a> {
    /// With `effective_admin`, from the directory the user is in.
    pub fn in_directory(mut self, directory: &gatehouse_projections::Directory, u: &User) -> Self {
        self.effective_admin = Some(directory.user_is_admin(u));
        self
    }

    pub fn new(u: &'a User, keys: &crate::personal::PersonalKeys) -> Self {
        UserView {
            username: &u.username,
            email: u.email.as_deref().map(|e| keys.show(e)),
            groups: u.groups.iter().map(String::as_str).collect(),
            realm: &u.realm,
            status: u.status.as_str(),
            admin: u.admin,
            profile_updatable: u.profile_updatable,
            internal_password_disabled: u.internal_password_disabled,
            disable_ui_access: u.disable_ui_access,
            password_expired: u.password_expired,
            effective_admin: None,
        }
    }
}

#[derive(Serialize)]
pub struct GroupView<'a> {
    name: &'a str,
    description: Option<&'a str>,
    auto_join: bool,
    admin_privileges: bool,
    realm: &'a str,
    realm_attributes: Option<&'a str>,
    external_id: Option<&'a str>,
    members: Vec<&'a str>,
}

impl<'a> From<&'a Group> for GroupView<'a> {
    fn from(g: &'a Group) -> Self {
        GroupView {
            name: &g.name,
            description: g.description.as_deref(),
            auto_join: g.auto_join,
            admin_privileges: g.admin_privileges,
            realm: &g.realm,
            realm_attributes: g.realm_attributes.as_deref(),
            // Cleared (`""`, as a SCIM PUT without `externalId` stores it) reads as
            // never set.
            external_id: g.external_id.as_deref().filter(|e| !e.is_empty()),
            members: g.members.iter().map(String::as_str).collect(),
        }
    }
}

impl GroupView<'_> {
    /// The view as JSON, byte for byte what serde_json writes for it, with `json`'s
    /// writer: through serde_json a group's answer (every group create and read sends
    /// one) cost 4.6k instructions, 3.3k of them the serialiser; this writes it in 1.0k.
    pub fn to_json(&self) -> Vec<u8> {
        use crate::json::{string, Json};
        let mut out = Vec::with_capacity(
            160 + self.name.len()
                + self.description.map_or(0, str::len)
                + self.members.iter().map(|m| m.len() + 3).sum::<usize>(),
        );
        let mut o = Json::open(&mut out);
        o.key("name");
        string(o.out(), self.name);
        o.nullable("description", self.description);
        o.bool("auto_join", Some(self.auto_join));
        o.bool("admin_privileges", Some(self.admin_privileges));
        o.key("realm");
        string(o.out(), self.realm);
        o.nullable("realm_attributes", self.realm_attributes);
        o.nullable("external_id", self.external_id);
        o.key("members");
        let list = o.out();
        list.push(b'[');
        for (i, m) in self.members.iter().enumerate() {
            if i > 0 {
                list.push(b',');
            }
            string(list, m);
        }
        list.push(b']');
        o.close();
        out
    }
}

pub fn user(u: &User, personal: &crate::personal::PersonalKeys) -> Value {
    serde_json::to_value(UserView::new(u, personal)).unwrap_or_default()
}

pub fn group(g: &Group) -> Value {
    serde_json::to_value(GroupView::from(g)).unwrap_or_default()
}

// ---- tokens ----

pub fn token(t: &TokenIssued, service_id: &str) -> serde_json::Value {
    let mut v = json!({
        "token_id": t.token_id,
        "subject": format!("{service_id}/users/{}", t.subject),
        "issued_at": t.issued_at,
        "issuer": service_id,
        "refreshable": t.refreshable,
        "scope": t.scope,
    });
    if let Some(e) = t.expires_at {
        v["expiry"] = json!(e);
    }
    if let Some(d) = &t.description {
        v["description"] = json!(d);
    }
    v
}

// ---- permission targets: see `permissions` (three formats) ----

pub use permissions::{permission, target_out, ActionsWire, SectionWire, TargetWire};

// ---- access keys and entitlements ----

pub fn access_key(k: &AccessKey) -> Value {
    json!({
        "id": k.id,
        "org": k.org,
        "username": access_key_username(&k.org, &k.id),
        "expiry": k.expiry_ms,
        "existence_check": k.existence_check.as_ref().map(|c| json!({"url": c.url, "cache_for_secs": c.cache_for_secs})),
        "allowed_cidrs": k.allowed_cidrs,
        "blocked_cidrs": k.blocked_cidrs,
    })
}

pub fn entitlement(e: &Entitlement) -> Value {
    json!({
        "id": e.id,
        "org": e.org,
        "repo": e.repo,
        "package": e.package,
        "version": e.version,
        "path": e.path,
        "scope": crate::authorize::entitlement_scope(e),
        "access": e.access,
        "access_keys": e.access_keys,
        "tags": e.tags,
    })
}

// ---- projects ----

pub fn project(p: &Project) -> serde_json::Value {
    json!({
        "project_key": p.project_key,
        "display_name": p.display_name,
        "description": p.description.clone().unwrap_or_default(),
        "admin_privileges": {
            "manage_members": p.admin_privileges.manage_members,
            "manage_resources": p.admin_privileges.manage_resources,
            "manage_security_assets": p.admin_privileges.manage_security_assets,
            "index_resources": p.admin_privileges.index_resources,
            "allow_ignore_rules": p.admin_privileges.allow_ignore_rules,
        },
        "storage_quota_bytes": p.storage_quota_bytes,
        "soft_limit": p.soft_limit,
        "storage_quota_email_notification": p.storage_quota_email_notification,
    })
}

// ---- federation ----

/// A target as the seed's register and get answers show it.
pub fn federation_target(t: &FederationTarget) -> Value {
    json!({
        "name": t.name,
        "url": t.url,
        "entities": t.entities,
        "permissionFilters": {
            "includePatterns": t.include_patterns,
            "excludePatterns": t.exclude_patterns,
        },
        // The snake_case spelling of the seed's PATCH example and JFrog's description.
        "permission_filters": {
            "include_patterns": t.include_patterns,
            "exclude_patterns": t.exclude_patterns,
        },
        "groupFilters": {
            "includePatterns": t.group_include_patterns,
            "excludePatterns": t.group_exclude_patterns,
        },
        "group_filters": {
            "include_patterns": t.group_include_patterns,
            "exclude_patterns": t.group_exclude_patterns,
        },
        "active": t.active,
    })
}

// ---- reading what clients send ----

/// `null` read as "not given" for a field with a default (a list, a map, a flag):
/// JFrog's clients send `"groups": null` where they mean none (pyartifactory does), and
/// JFrog takes it so.
pub fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A JSON object as a map, refusing a key given twice: serde keeps the last, so a grant
/// read one way by a proxy or a validator (the first) was stored another (the last).
/// `null` is the empty map.
/// A list of names, or — as seed 004's samples write `add`, `remove` and `members` — a
/// string holding that list as JSON (`"[\"user1\", \"user2\"]"`). `null`: not given.
pub fn names_or_json_text<'de, D>(d: D) -> Result<Option<Vec<String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    // A visitor, not an untagged enum: that buffers the whole value first (a deeply
    // nested array then failed on recursion, not on its type).
    struct Names;
    impl<'de> serde::de::Visitor<'de> for Names {
        type Value = Option<Vec<String>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of names")
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: serde::Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(self)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(name) = seq.next_element::<String>()? {
                out.push(name);
            }
            Ok(Some(out))
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            serde_json::from_str::<Vec<String>>(text)
                .map(Some)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Str("text"), &self))
        }
    }
    d.deserialize_option(Names)
}

pub fn unique_map<'de, D, V>(d: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    Ok(unique_map_opt(d)?.unwrap_or_default())
}

/// [`unique_map`] for a field that may be absent or `null` (`None`).
pub fn unique_map_opt<'de, D, V>(d: D) -> Result<Option<BTreeMap<String, V>>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    use serde::de::{Error, MapAccess, Visitor};
    use std::marker::PhantomData;
    struct Entries<V>(PhantomData<V>);
    impl<'de, V: Deserialize<'de>> Visitor<'de> for Entries<V> {
        type Value = BTreeMap<String, V>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((k, v)) = map.next_entry::<String, V>()? {
                if out.contains_key(&k) {
                    return Err(A::Error::custom(format!("key `{k}` given more than once")));
                }
                out.insert(k, v);
            }
            Ok(out)
        }
    }
    struct Maybe<V>(PhantomData<V>);
    impl<'de, V: Deserialize<'de>> Visitor<'de> for Maybe<V> {
        type Value = Option<BTreeMap<String, V>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object or null")
        }
        fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: serde::Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_map(Entries(PhantomData)).map(Some)
        }
    }
    d.deserialize_option(Maybe(PhantomData))
}

// ---- Artifactory's security API (`/artifactory/api/security/users|groups`) ----

/// A user as Artifactory's security API shows it (camelCase; status upper case; no
/// `email` key when there is none, as pyartifactory validates the address).
pub fn artifactory_user(u: &User, personal: &crate::personal::PersonalKeys) -> Value {
    let mut v = json!({
        "name": u.username,
        "admin": u.admin,
        "profileUpdatable": u.profile_updatable,
        "disableUIAccess": u.disable_ui_access,
        "internalPasswordDisabled": u.internal_password_disabled,
        "groups": u.groups,
        "realm": u.realm,
        "offlineMode": false,
        "status": u.status.as_str().to_ascii_uppercase(),
        // Xray and reporting roles: Gatehouse has neither (README: accepted, ignored).
        "watchManager": false,
        "policyManager": false,
        "reportsManager": false,
        "policyViewer": false,
    });
    if let Some(e) = u.email.as_deref() {
        v["email"] = json!(personal.show(e));
    }
    v
}

/// A group as Artifactory's security API shows it: `userNames` always present (dohq
/// never asks for `includeUsers`), the booleans never null.
pub fn artifactory_group(g: &Group) -> Value {
    json!({
        "name": g.name,
        "description": g.description,
        "autoJoin": g.auto_join,
        "adminPrivileges": g.admin_privileges,
        "realm": g.realm,
        "realmAttributes": g.realm_attributes,
        // One value in every API (the v2 `external_id`, SCIM's `externalId`).
        "externalId": g.external_id.as_deref().filter(|e| !e.is_empty()),
        "userNames": g.members,
        "watchManager": false,
        "policyManager": false,
        "reportsManager": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A group's answer, written by hand, is serde_json's byte for byte: with and
    /// without the optional fields, with strings that need escapes, with no member,
    /// one, and several.
    #[test]
    fn a_groups_json_is_serde_jsons() {
        let members = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
        let mut groups = vec![Group {
            name: "readers".into(),
            description: None,
            auto_join: false,
            admin_privileges: false,
            realm: "internal".into(),
            realm_attributes: None,
            external_id: None,
            members: members(&[]),
            created_seq: 1,
            updated_seq: 1,
            created_ms: 0,
            updated_ms: 0,
            scim: None,
        }];
        groups.push(Group {
            name: "q\"uote\\d".into(),
            description: Some("line\nbreak \u{1} é ☃".into()),
            auto_join: true,
            admin_privileges: true,
            realm: "ldap".into(),
            realm_attributes: Some("{\"dn\":\"cn=x\"}".into()),
            external_id: Some("ext-1".into()),
            members: members(&["alice"]),
            ..groups[0].clone()
        });
        groups.push(Group {
            members: members(&["bob", "alice", "tab\tname", "zoë"]),
            ..groups[1].clone()
        });
        for g in &groups {
            let view = GroupView::from(g);
            assert_eq!(
                String::from_utf8(view.to_json()).unwrap(),
                serde_json::to_string(&view).unwrap()
            );
        }
    }
}

//! The directory: users and groups, their membership, their SCIM attributes and SCIM
//! ids, and what a deleted or renamed user or a deleted group takes with it.

use crate::shared::{edit, Name, OrdMap, OrdSet, Shared, SortedSet};
use crate::State;
use gatehouse_schemas::{
    Event, GroupCreated, ReplicatedGroup, ReplicatedUser, UserCreated, UserStatus,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Users and groups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    /// Keyed by lower-case username.
    pub users: OrdMap<Name, Shared<User>>,
    pub groups: OrdMap<Name, Shared<Group>>,
    /// SCIM ids of renamed users -> their current user name.
    #[serde(default)]
    pub scim_ids: OrdMap<String, String>,
    /// Groups every new user joins (derived: creating a user must not scan all groups).
    #[serde(default)]
    pub auto_join_groups: OrdSet<String>,
    /// Anonymous access is on: requests without credentials act as `anonymous`.
    #[serde(default)]
    pub anonymous_access: bool,
}

/// The built-in user that requests without credentials act as, when anonymous access is
/// on (seed 002 "Allowing anonymous access", seed 004 "can be anonymous").
pub const ANONYMOUS: &str = "anonymous";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub username: String,
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub admin: bool,
    pub profile_updatable: bool,
    pub internal_password_disabled: bool,
    pub disable_ui_access: bool,
    pub realm: String,
    pub status: UserStatus,
    pub password_expired: bool,
    /// A handful of names: a sorted vector (see `SortedSet`).
    pub groups: SortedSet<String>,
    pub created_seq: u64,
    pub updated_seq: u64,
    /// Position of the last event that changed how this user signs in (password,
    /// status, expiry). Caches of verified credentials compare against it.
    pub credentials_seq: u64,
    /// Unix milliseconds of the creating and of the last changing event (SCIM `meta`).
    #[serde(default)]
    pub created_ms: u64,
    #[serde(default)]
    pub updated_ms: u64,
    /// SCIM-only attributes (name parts, typed e-mails, enterprise fields, …) as a JSON
    /// object, from `UserScimSaved`.
    #[serde(default)]
    pub scim: Option<String>,
    /// The SCIM id when it is not the user name (the user was renamed: ids are stable).
    #[serde(default)]
    pub scim_id: Option<String>,
    /// When the password was last set (unix milliseconds), kept only once a password
    /// expiration policy exists (see `Settings::password_ages_since_ms`).
    /// INVARIANT: the last field, left out when `None` (the encoding of older states).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_changed_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    pub description: Option<String>,
    pub auto_join: bool,
    pub admin_privileges: bool,
    pub realm: String,
    pub realm_attributes: Option<String>,
    pub external_id: Option<String>,
    /// Persistent: a large group's members are shared between copies of the state.
    pub members: OrdSet<String>,
    pub created_seq: u64,
    pub updated_seq: u64,
    #[serde(default)]
    pub created_ms: u64,
    #[serde(default)]
    pub updated_ms: u64,
    /// SCIM-only attributes (`displayName`, `externalId`) as a JSON object.
    #[serde(default)]
    pub scim: Option<String>,
}

impl Directory {
    /// User and group events that change only the directory (deletions and renames
    /// reach further: see the `State` methods below).
    pub(crate) fn apply(&mut self, event: &Event, seq: u64, now: u64) {
        match event {
            Event::UserCreated(created) => self.create_user(created, seq, now),
            Event::UserUpdated(update) => {
                if let Some(user) = edit(&mut self.users, &update.username) {
                    if let Some(email) = &update.email {
                        user.email = Some(email.clone()).filter(|e| !e.is_empty());
                    }
                    if let Some(v) = update.admin {
                        user.admin = v;
                    }
                    if let Some(v) = update.profile_updatable {
                        user.profile_updatable = v;
                    }
                    if let Some(v) = update.internal_password_disabled {
                        user.internal_password_disabled = v;
                        if v {
                            // A user whose internal password is disabled has none.
                            user.password_hash = None;
                            user.credentials_seq = seq;
                        }
                    }
                    if let Some(v) = update.disable_ui_access {
                        user.disable_ui_access = v;
                    }
                    if let Some(status) = update.status {
                        user.status = status;
                        user.credentials_seq = seq;
                    }
                    user.updated_seq = seq;
                    user.updated_ms = now;
                }
            }
            Event::UserPasswordChanged {
                username,
                password_hash,
            } => {
                if let Some(user) = edit(&mut self.users, username) {
                    user.password_hash = Some(password_hash.clone());
                    user.password_expired = false;
                    user.internal_password_disabled = false;
                    user.credentials_seq = seq;
                    user.updated_seq = seq;
                    user.updated_ms = now;
                }
            }
            Event::UserPasswordExpired { username } => {
                if let Some(user) = edit(&mut self.users, username) {
                    user.password_expired = true;
                    user.credentials_seq = seq;
                    user.updated_seq = seq;
                    user.updated_ms = now;
                }
            }
            Event::UserPasswordUnexpired { username } => {
                if let Some(user) = edit(&mut self.users, username) {
                    user.password_expired = false;
                    user.credentials_seq = seq;
                    user.updated_seq = seq;
                    user.updated_ms = now;
                }
            }
            Event::AnonymousAccessChanged { enabled } => {
                self.anonymous_access = *enabled;
                let status = if *enabled {
                    UserStatus::Enabled
                } else {
                    UserStatus::Disabled
                };
                self.set_status(ANONYMOUS, status, seq, now)
            }
            Event::UserLocked { username } => {
                self.set_status(username, UserStatus::Locked, seq, now)
            }
            Event::UserUnlocked { username } => {
                self.set_status(username, UserStatus::Enabled, seq, now)
            }
            Event::GroupCreated(created) => self.create_group(created, seq, now),
            Event::GroupUpdated(update) => {
                if let Some(group) = edit(&mut self.groups, &update.name) {
                    if let Some(v) = &update.description {
                        group.description = Some(v.clone());
                    }
                    if let Some(v) = update.auto_join {
                        group.auto_join = v;
                        if v {
                            self.auto_join_groups.insert(update.name.clone());
                        } else {
                            self.auto_join_groups.remove(&update.name);
                        }
                    }
                    if let Some(v) = update.admin_privileges {
                        group.admin_privileges = v;
                    }
                    if let Some(v) = &update.realm {
                        group.realm = v.clone();
                    }
                    if let Some(v) = &update.realm_attributes {
                        group.realm_attributes = Some(v.clone());
                    }
                    if let Some(v) = &update.external_id {
                        group.external_id = Some(v.clone());
                    }
                    group.updated_seq = seq;
                    group.updated_ms = now;
                }
            }
            Event::GroupMembersChanged {
                group,
                added,
                removed,
            } => {
                for user in added {
                    self.join(user, group, seq, now);
                }
                for user in removed {
                    self.leave(user, group, seq, now);
                }
            }
            Event::UserGroupsChanged {
                username,
                added,
                removed,
            } => {
                for group in added {
                    self.join(username, group, seq, now);
                }
                for group in removed {
                    self.leave(username, group, seq, now);
                }
            }
            Event::UserScimSaved {
                username,
                attributes,
            } => {
                if let Some(user) = edit(&mut self.users, username) {
                    user.scim = Some(attributes.clone());
                    user.updated_seq = seq;
                    user.updated_ms = now;
                }
            }
            Event::GroupScimSaved { name, attributes } => {
                if let Some(group) = edit(&mut self.groups, name) {
                    group.scim = Some(attributes.clone());
                    group.updated_seq = seq;
                    group.updated_ms = now;
                }
            }
            Event::UserReplicated { user, .. } => self.replicate_user(user, seq, now),
            Event::GroupReplicated { group, .. } => self.replicate_group(group, seq, now),
            _ => {}
        }
    }

    fn create_user(&mut self, c: &UserCreated, seq: u64, now: u64) {
        let user = User {
            username: c.username.clone(),
            email: c.email.clone(),
            password_hash: c.password_hash.clone(),
            admin: c.admin,
            profile_updatable: c.profile_updatable,
            internal_password_disabled: c.internal_password_disabled,
            disable_ui_access: c.disable_ui_access,
            realm: c.realm.clone(),
            status: c.status,
            password_expired: false,
            groups: SortedSet::new(),
            created_seq: seq,
            updated_seq: seq,
            credentials_seq: seq,
            created_ms: now,
            updated_ms: now,
            scim: c.scim.clone(),
            scim_id: None,
            password_changed_ms: None,
        };
        self.users
            .insert(c.username.as_str().into(), Shared::new(user));
        for group in &c.groups {
            self.join(&c.username, group, seq, now);
        }
    }

    fn create_group(&mut self, c: &GroupCreated, seq: u64, now: u64) {
        if c.auto_join {
            self.auto_join_groups.insert(c.name.clone());
        }
        let group = Group {
            name: c.name.clone(),
            description: c.description.clone(),
            auto_join: c.auto_join,
            admin_privileges: c.admin_privileges,
            realm: c.realm.clone(),
            realm_attributes: c.realm_attributes.clone(),
            external_id: c.external_id.clone(),
            members: OrdSet::new(),
            created_seq: seq,
            updated_seq: seq,
            created_ms: now,
            updated_ms: now,
            scim: None,
        };
        self.groups
            .insert(c.name.as_str().into(), Shared::new(group));
        for member in &c.members {
            self.join(member, &c.name, seq, now);
        }
    }

    /// Create or overwrite a user from a federation peer. Group membership is the
    /// groups' business and stays as it is.
    fn replicate_user(&mut self, r: &ReplicatedUser, seq: u64, now: u64) {
        let user = self
            .users
            .entry(r.username.as_str().into())
            .or_insert_with(|| {
                Shared::new(User {
                    username: r.username.clone(),
                    email: None,
                    password_hash: None,
                    admin: false,
                    profile_updatable: false,
                    internal_password_disabled: false,
                    disable_ui_access: false,
                    realm: String::new(),
                    status: r.status,
                    password_expired: false,
                    groups: SortedSet::new(),
                    created_seq: seq,
                    updated_seq: seq,
                    credentials_seq: seq,
                    created_ms: now,
                    updated_ms: now,
                    scim: None,
                    scim_id: None,
                    password_changed_ms: None,
                })
            })
            .make_mut();
        if user.password_hash != r.password_hash
            || user.status != r.status
            || user.password_expired != r.password_expired
        {
            user.credentials_seq = seq;
        }
        user.email = r.email.clone();
        user.password_hash = r.password_hash.clone();
        user.admin = r.admin;
        user.profile_updatable = r.profile_updatable;
        user.internal_password_disabled = r.internal_password_disabled;
        user.disable_ui_access = r.disable_ui_access;
        user.realm = r.realm.clone();
        user.status = r.status;
        user.password_expired = r.password_expired;
        user.updated_seq = seq;
        user.updated_ms = now;
    }

    /// Create or overwrite a group from a federation peer, with exactly the members
    /// given that exist here.
    fn replicate_group(&mut self, r: &ReplicatedGroup, seq: u64, now: u64) {
        if !self.groups.contains_key(r.name.as_str()) {
            self.create_group(
                &GroupCreated {
                    name: r.name.clone(),
                    description: None,
                    auto_join: false,
                    admin_privileges: false,
                    realm: r.realm.clone(),
                    realm_attributes: None,
                    external_id: None,
                    members: vec![],
                },
                seq,
                now,
            );
        }
        let Some(group) = edit(&mut self.groups, &r.name) else {
            return;
        };
        group.description = r.description.clone();
        group.auto_join = r.auto_join;
        group.admin_privileges = r.admin_privileges;
        group.realm = r.realm.clone();
        group.realm_attributes = r.realm_attributes.clone();
        group.external_id = r.external_id.clone();
        group.updated_seq = seq;
        group.updated_ms = now;
        if r.auto_join {
            self.auto_join_groups.insert(r.name.clone());
        } else {
            self.auto_join_groups.remove(&r.name);
        }
        let wanted: BTreeSet<&String> = r.members.iter().collect();
        let current: Vec<String> = group.members.iter().cloned().collect();
        for m in &current {
            if !wanted.contains(m) {
                self.leave(m, &r.name, seq, now);
            }
        }
        for m in &r.members {
            self.join(m, &r.name, seq, now);
        }
    }

    fn set_status(&mut self, username: &str, status: UserStatus, seq: u64, now: u64) {
        if let Some(user) = edit(&mut self.users, username) {
            user.status = status;
            user.credentials_seq = seq;
            user.updated_seq = seq;
            user.updated_ms = now;
        }
    }

    /// INVARIANT: membership is recorded on both sides or on neither.
    fn join(&mut self, username: &str, group: &str, seq: u64, now: u64) {
        if let (Some(u), Some(g)) = (
            edit(&mut self.users, username),
            edit(&mut self.groups, group),
        ) {
            u.groups.insert(group.to_string());
            g.members.insert(username.to_string());
            u.updated_seq = seq;
            u.updated_ms = now;
            g.updated_seq = seq;
            g.updated_ms = now;
        }
    }

    fn leave(&mut self, username: &str, group: &str, seq: u64, now: u64) {
        if let (Some(u), Some(g)) = (
            edit(&mut self.users, username),
            edit(&mut self.groups, group),
        ) {
            u.groups.remove(group);
            g.members.remove(username);
            u.updated_seq = seq;
            u.updated_ms = now;
            g.updated_seq = seq;
            g.updated_ms = now;
        }
    }

    /// A user's effective admin right: its own flag or an admin-privileged group.
    pub fn is_admin(&self, username: &str) -> bool {
        self.users
            .get(username)
            .is_some_and(|u| self.user_is_admin(u))
    }

    /// [`Directory::is_admin`] for a user record at hand (no second look-up by name).
    pub fn user_is_admin(&self, u: &User) -> bool {
        // The built-in anonymous user is never an admin, whatever groups it was put in
        // (with a password set, it signed in as an admin through an admin group).
        if u.username.as_str() == ANONYMOUS {
            return false;
        }
        u.admin
            || u.groups.iter().any(|g| {
                self.groups
                    .get(g.as_str())
                    .is_some_and(|g| g.admin_privileges)
            })
    }

    /// The directory's part of a user deletion (see [`State::delete_user`]).
    fn remove_user(&mut self, username: &str, seq: u64, now: u64) {
        if let Some(user) = self.users.remove(username) {
            if let Some(id) = &user.scim_id {
                self.scim_ids.remove(id);
            }
            for group in &user.groups {
                if let Some(g) = edit(&mut self.groups, group) {
                    g.members.remove(username);
                    g.updated_seq = seq;
                    g.updated_ms = now;
                }
            }
        }
    }

    /// The directory's part of a group deletion (see [`State::delete_group`]).
    fn remove_group(&mut self, name: &str, seq: u64, now: u64) {
        self.auto_join_groups.remove(name);
        if let Some(group) = self.groups.remove(name) {
            for member in &group.members {
                if let Some(u) = edit(&mut self.users, member) {
                    u.groups.remove(name);
                    u.updated_seq = seq;
                    u.updated_ms = now;
                }
            }
        }
    }

    /// The directory's part of a rename (see [`State::rename_user`]): whether the user
    /// was renamed (not when `from` does not exist or `to` does).
    fn rename(&mut self, from: &str, to: &str, seq: u64, now: u64) -> bool {
        if self.users.contains_key(to) {
            return false;
        }
        let Some(mut shared) = self.users.remove(from) else {
            return false;
        };
        let user = shared.make_mut();
        let id = user.scim_id.take().unwrap_or_else(|| from.to_string());
        let stale: Vec<String> = (self.scim_ids.iter())
            .filter(|(_, name)| *name == from)
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            self.scim_ids.remove(&id);
        }
        if id != to {
            self.scim_ids.insert(id.clone(), to.to_string());
            user.scim_id = Some(id);
        }
        user.username = to.to_string();
        user.updated_seq = seq;
        user.updated_ms = now;
        user.credentials_seq = seq;
        for g in &user.groups {
            if let Some(group) = self.groups.get_mut(g.as_str()).map(Shared::make_mut) {
                group.members.remove(from);
                group.members.insert(to.to_string());
            }
        }
        self.users.insert(to.into(), shared);
        true
    }
}

// The rules that reach beyond the directory. A deleted user's tokens end and it leaves
// its projects; a deleted group leaves its projects; a renamed user's tokens end and its
// project roles and grants follow it. The other parts' halves of these rules are
// `Tokens::remove_subject` (tokens.rs), `Projects::remove_member` and
// `Projects::rename_user` (projects.rs), `Permissions::rename_user` (permissions.rs).
impl State {
    /// The groups a user deletion or rename takes the user out of (read before the
    /// event is applied).
    pub fn groups_left_by(&self, event: &Event) -> Vec<String> {
        let user = match event {
            Event::UserDeleted { username } => username,
            Event::UserRenamed { from, .. } => from,
            _ => return vec![],
        };
        self.directory
            .users
            .get(user.as_str())
            .map(|u| u.groups.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// A deleted user leaves its groups and every project it was a member of. Its grants
    /// leave permission targets by events of their own, decided with the deletion
    /// (`without_principal` in the server's domain), not here: a log written before that
    /// rule replays as it was served.
    pub(crate) fn delete_user(&mut self, username: &str, seq: u64, now: u64) {
        // Its tokens go with it: a later user of the same name is someone else.
        self.tokens.remove_subject(username);
        if self.projects.has_member("user", username) {
            let projects = self.projects.make_mut();
            if projects.remove_member("user", username, seq) {
                projects.changed_seq = seq;
            }
        }
        self.directory.remove_user(username, seq, now);
    }

    /// A deleted group leaves its members and every project it was a member of (its
    /// grants: as for a user).
    pub(crate) fn delete_group(&mut self, name: &str, seq: u64, now: u64) {
        if self.projects.has_member("group", name) {
            let projects = self.projects.make_mut();
            if projects.remove_member("group", name, seq) {
                projects.changed_seq = seq;
            }
        }
        self.directory.remove_group(name, seq, now);
    }

    /// Everything that names a user by its name follows the rename: group membership,
    /// project membership, permission targets. Its tokens end (a token names the old
    /// name). The SCIM id stays what it was.
    pub(crate) fn rename_user(&mut self, from: &str, to: &str, seq: u64, now: u64) {
        if !self.directory.rename(from, to, seq, now) {
            return;
        }
        self.tokens.remove_subject(from);
        if self.projects.has_member("user", from) {
            self.projects.make_mut().rename_user(from, to, seq);
        }
        self.permissions.rename_user(from, to, seq);
    }
}

#[cfg(test)]
mod tests {
    use crate::State;
    use gatehouse_schemas::{Envelope, Event, GroupCreated, UserCreated, UserStatus};

    fn env(seq: u64, event: Event) -> Envelope {
        Envelope {
            seq,
            time_ms: seq,
            actor: "t".into(),
            origin: "o".into(),
            request_id: "r".into(),
            event,
        }
    }

    fn user(name: &str, groups: &[&str]) -> Event {
        Event::UserCreated(UserCreated {
            username: name.into(),
            email: None,
            password_hash: None,
            admin: false,
            profile_updatable: true,
            internal_password_disabled: true,
            disable_ui_access: false,
            realm: "internal".into(),
            status: UserStatus::Enabled,
            groups: groups.iter().map(|s| s.to_string()).collect(),
            scim: None,
        })
    }

    fn group(name: &str) -> Event {
        Event::GroupCreated(GroupCreated {
            name: name.into(),
            description: None,
            auto_join: false,
            admin_privileges: false,
            realm: "internal".into(),
            realm_attributes: None,
            external_id: None,
            members: vec![],
        })
    }

    #[test]
    fn membership_is_kept_on_both_sides_and_cleaned_on_delete() {
        let mut s = State::default();
        s.apply(&env(1, group("g")));
        s.apply(&env(2, user("u", &["g"])));
        assert!(s.directory.groups["g"].members.contains("u"));
        s.apply(&env(3, Event::GroupDeleted { name: "g".into() }));
        assert!(s.directory.users["u"].groups.is_empty());
        s.apply(&env(4, group("h")));
        s.apply(&env(
            5,
            Event::GroupMembersChanged {
                group: "h".into(),
                added: vec!["u".into()],
                removed: vec![],
            },
        ));
        s.apply(&env(
            6,
            Event::UserDeleted {
                username: "u".into(),
            },
        ));
        assert!(s.directory.groups["h"].members.is_empty());
    }
}

//! Read models of Gatehouse: pure folds of the event log.
//!
//! [`State::apply`] is the only way state changes. The live server, a replay from
//! scratch, a restart from a snapshot and (later) a point-in-time read all run this same
//! code, which is what makes "replay equals live" provable with [`State::digest`].
//!
//! **Architecture invariant:** nothing here knows about sled, HTTP, clocks or
//! randomness. `apply` is deterministic: the same events give the same bytes.
//!
//! `apply` is total: the domain (`decide`) checks every precondition before an event is
//! written, so an event that refers to something missing is simply a no-op here rather
//! than a reason to stop.

use gatehouse_schemas::{
    AccessKey, Entitlement, EntityVersion, Envelope, Event, FederationTarget, GroupCreated,
    PermissionTarget, Project, ProjectRole, ReplicatedGroup, ReplicatedUser, Repository,
    TokenIssued, UserCreated, UserStatus,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The whole read state. Maps are `BTreeMap`s so the encoding is canonical (ordered).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// `jfac@<ulid>`, set by the first event of the log.
    pub service_id: Option<String>,
    /// Position of the last applied event (0 before any).
    pub seq: u64,
    /// Time of the last applied event, unix milliseconds.
    pub time_ms: u64,
    pub directory: Directory,
    #[serde(default)]
    pub tokens: Tokens,
    #[serde(default)]
    pub keys: Keys,
    #[serde(default)]
    pub permissions: Permissions,
    #[serde(default)]
    pub repositories: Repositories,
    #[serde(default)]
    pub projects: Projects,
    #[serde(default)]
    pub access_keys: AccessKeys,
    /// Signed checkpoints, oldest first.
    #[serde(default)]
    pub checkpoints: Vec<gatehouse_schemas::Checkpoint>,
    /// Webhook subscriptions by key.
    #[serde(default)]
    pub subscriptions: BTreeMap<String, SubscriptionRecord>,
    /// Federation targets and the version of every federated entity.
    #[serde(default)]
    pub federation: Federation,
}

/// Access Federation: the peers this server sends to, and the versions of federated
/// entities (users, groups, permission targets, token records), so that every server
/// keeps the write with the greater version.
///
/// An entity made here and only ever changed here has no entry: its version is derived
/// from its record (`updated_ms`, this server, `updated_seq`), which keeps the replay of
/// a server that does not federate as cheap as before. Entries exist for what came from
/// a peer, for what was changed here after that, for deletions (tombstones, so that a
/// stale copy does not bring the entity back), and for permission targets and token
/// records (which have no timestamps of their own).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Federation {
    pub targets: BTreeMap<String, FederationTargetRecord>,
    pub versions: Versions,
    /// Token records that came from a peer -> the service id that issued them.
    pub token_issuers: BTreeMap<String, String>,
}

/// Version entries by entity, each keyed by name (token id for tokens).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions {
    pub users: BTreeMap<String, VersionRecord>,
    pub groups: BTreeMap<String, VersionRecord>,
    pub permissions: BTreeMap<String, VersionRecord>,
    pub tokens: BTreeMap<String, VersionRecord>,
}

impl Versions {
    pub fn of(&self, entity: &str) -> Option<&BTreeMap<String, VersionRecord>> {
        match entity {
            "user" => Some(&self.users),
            "group" => Some(&self.groups),
            "permission" => Some(&self.permissions),
            "token" => Some(&self.tokens),
            _ => None,
        }
    }

    fn of_mut(&mut self, entity: &str) -> Option<&mut BTreeMap<String, VersionRecord>> {
        match entity {
            "user" => Some(&mut self.users),
            "group" => Some(&mut self.groups),
            "permission" => Some(&mut self.permissions),
            "token" => Some(&mut self.tokens),
            _ => None,
        }
    }

    pub fn get(&self, entity: &str, name: &str) -> Option<&VersionRecord> {
        self.of(entity).and_then(|m| m.get(name))
    }

    /// Every entry as (`entity`, name, record).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &String, &VersionRecord)> {
        self.users
            .iter()
            .map(|(n, r)| ("user", n, r))
            .chain(self.groups.iter().map(|(n, r)| ("group", n, r)))
            .chain(self.permissions.iter().map(|(n, r)| ("permission", n, r)))
            .chain(self.tokens.iter().map(|(n, r)| ("token", n, r)))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FederationTargetRecord {
    pub target: FederationTarget,
    pub created_seq: u64,
    pub updated_seq: u64,
    /// The position the last full broadcast to it covered.
    pub broadcast_position: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub version: EntityVersion,
    /// The peer it came from (`None`: written here).
    pub source: Option<String>,
    /// Position of the event here that wrote it.
    pub applied_seq: u64,
    /// The entity no longer exists (deleted, revoked, or left out of a full broadcast).
    pub removed: bool,
    /// Removed because a full broadcast of its source no longer had it: the same
    /// version sent again (its filters changed back) brings it back.
    #[serde(default)]
    pub swept: bool,
}

/// The federated entities an event made here changes, as (`entity`, name, removed):
/// what the version table records and what the federation stream sends. (A rename
/// also changes the groups of the renamed user: see [`State::federated_changes`].)
pub fn federated_entities(event: &Event) -> Vec<(&'static str, &str, bool)> {
    match event {
        Event::UserCreated(c) => {
            let mut v = vec![("user", c.username.as_str(), false)];
            v.extend(c.groups.iter().map(|g| ("group", g.as_str(), false)));
            v
        }
        Event::UserUpdated(u) => vec![("user", u.username.as_str(), false)],
        Event::UserPasswordChanged { username, .. }
        | Event::UserPasswordExpired { username }
        | Event::UserLocked { username }
        | Event::UserUnlocked { username }
        | Event::UserScimSaved { username, .. } => vec![("user", username.as_str(), false)],
        Event::UserDeleted { username } => vec![("user", username.as_str(), true)],
        Event::UserRenamed { from, to } => {
            vec![("user", from.as_str(), true), ("user", to.as_str(), false)]
        }
        Event::GroupCreated(g) => vec![("group", g.name.as_str(), false)],
        Event::GroupUpdated(g) => vec![("group", g.name.as_str(), false)],
        Event::GroupScimSaved { name, .. } => vec![("group", name.as_str(), false)],
        Event::GroupDeleted { name } => vec![("group", name.as_str(), true)],
        Event::GroupMembersChanged { group, .. } => vec![("group", group.as_str(), false)],
        Event::UserGroupsChanged { added, removed, .. } => added
            .iter()
            .chain(removed)
            .map(|g| ("group", g.as_str(), false))
            .collect(),
        Event::PermissionTargetSaved(t) => vec![("permission", t.name.as_str(), false)],
        Event::PermissionTargetDeleted { name } => vec![("permission", name.as_str(), true)],
        Event::TokenIssued(t) if t.revocable => vec![("token", t.token_id.as_str(), false)],
        Event::TokenRefreshed {
            old_token_id,
            issued,
        } => {
            let mut v = vec![("token", old_token_id.as_str(), true)];
            if issued.revocable {
                v.push(("token", issued.token_id.as_str(), false));
            }
            v
        }
        Event::TokenRevoked { token_id } => vec![("token", token_id.as_str(), true)],
        _ => vec![],
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionRecord {
    pub subscription: gatehouse_schemas::Subscription,
    pub created_seq: u64,
    pub updated_seq: u64,
}

/// Repositories by key, with their project assignment and sharing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repositories {
    pub by_key: BTreeMap<String, RepositoryRecord>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepositoryRecord {
    pub config: Repository,
    /// The project the repository is assigned to.
    pub project: Option<String>,
    /// Shared with every project.
    pub shared_with_all: bool,
    /// Shared with these projects.
    pub shared_with: BTreeSet<String>,
    pub created_seq: u64,
    pub updated_seq: u64,
}

/// Projects by key, and the position of the last change to anything that project roles
/// are decided from (so the compiled decision index knows when it is stale).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Projects {
    pub by_key: BTreeMap<String, ProjectRecord>,
    pub changed_seq: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectRecord {
    pub config: Project,
    /// Custom roles by name (the predefined ones are [`predefined_roles`]).
    pub roles: BTreeMap<String, ProjectRole>,
    /// Member user -> role names.
    pub users: BTreeMap<String, BTreeSet<String>>,
    /// Member group -> role names.
    pub groups: BTreeMap<String, BTreeSet<String>>,
    pub created_seq: u64,
    pub updated_seq: u64,
}

impl ProjectRecord {
    /// The member users (`kind` = `user`) or groups (`group`) and their roles.
    pub fn members_mut(&mut self, kind: &str) -> &mut BTreeMap<String, BTreeSet<String>> {
        if kind == "group" {
            &mut self.groups
        } else {
            &mut self.users
        }
    }

    /// A role by name: custom ones first, then the predefined ones.
    pub fn role(&self, name: &str) -> Option<ProjectRole> {
        self.roles
            .get(name)
            .cloned()
            .or_else(|| predefined_roles().into_iter().find(|r| r.name == name))
    }
}

/// The roles every project has (JFrog's predefined ones); they cannot be changed.
pub fn predefined_roles() -> Vec<ProjectRole> {
    let role = |name: &str, actions: &[&str], envs: &[&str]| ProjectRole {
        name: name.into(),
        description: None,
        actions: actions.iter().map(|a| a.to_string()).collect(),
        environments: envs.iter().map(|e| e.to_string()).collect(),
    };
    vec![
        role(
            "Project Admin",
            &[
                "READ_REPOSITORY",
                "ANNOTATE_REPOSITORY",
                "DEPLOY_CACHE_REPOSITORY",
                "DELETE_OVERWRITE_REPOSITORY",
                "MANAGE_XRAY_MD_REPOSITORY",
                "READ_BUILD",
                "ANNOTATE_BUILD",
                "DEPLOY_BUILD",
                "DELETE_BUILD",
                "MANAGE_XRAY_MD_BUILD",
                "MANAGE_MEMBERS",
                "MANAGE_RESOURCES",
            ],
            &["DEV", "PROD"],
        ),
        role(
            "Developer",
            &[
                "READ_REPOSITORY",
                "ANNOTATE_REPOSITORY",
                "DEPLOY_CACHE_REPOSITORY",
                "DELETE_OVERWRITE_REPOSITORY",
                "READ_BUILD",
                "ANNOTATE_BUILD",
                "DEPLOY_BUILD",
            ],
            &["DEV"],
        ),
        role(
            "Contributor",
            &[
                "READ_REPOSITORY",
                "ANNOTATE_REPOSITORY",
                "DEPLOY_CACHE_REPOSITORY",
                "READ_BUILD",
            ],
            &["DEV"],
        ),
        role(
            "Release Manager",
            &[
                "READ_REPOSITORY",
                "ANNOTATE_REPOSITORY",
                "DEPLOY_CACHE_REPOSITORY",
                "DELETE_OVERWRITE_REPOSITORY",
                "READ_BUILD",
                "ANNOTATE_BUILD",
                "DEPLOY_BUILD",
                "DELETE_BUILD",
            ],
            &["DEV", "PROD"],
        ),
        role(
            "Viewer",
            &["READ_REPOSITORY", "READ_BUILD"],
            &["DEV", "PROD"],
        ),
    ]
}

/// Access keys by `<id>@<org>` (the name they sign in with) and entitlements by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKeys {
    pub keys: BTreeMap<String, AccessKeyRecord>,
    pub entitlements: BTreeMap<String, EntitlementRecord>,
    /// `<id>@<org>` -> ids of the entitlements that name the key (derived).
    pub entitlements_by_key: BTreeMap<String, BTreeSet<String>>,
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

/// Permission targets by name, and the position of the last change to any of them (so
/// a compiled index knows when it is stale).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    pub targets: BTreeMap<String, PermissionTarget>,
    pub changed_seq: u64,
}

/// Revocable access tokens (short-lived ones are not kept: they cannot be revoked).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub by_id: BTreeMap<String, TokenIssued>,
    /// blake3 (hex) of a refresh token -> token id.
    pub by_refresh_hash: BTreeMap<String, String>,
    /// blake3 (hex) of a reference token -> token id.
    pub by_reference_hash: BTreeMap<String, String>,
}

/// Public keys that verify tokens, and the signed-URL key version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keys {
    /// This server's signing keys by kid (base64url Ed25519 public keys), oldest first.
    pub signing: BTreeMap<String, String>,
    /// The kid new tokens are signed with.
    pub active: Option<String>,
    /// Trusted peers by name: (kid, public key).
    pub trusted: BTreeMap<String, (String, String)>,
    pub signed_url_version: u64,
    /// Completed pairings: use case -> peer service id -> the name its key is trusted under.
    #[serde(default)]
    pub pairings: BTreeMap<String, BTreeMap<String, String>>,
}

/// Users and groups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    /// Keyed by lower-case username.
    pub users: BTreeMap<String, User>,
    pub groups: BTreeMap<String, Group>,
    /// SCIM ids of renamed users -> their current user name.
    #[serde(default)]
    pub scim_ids: BTreeMap<String, String>,
    /// Groups every new user joins (derived: creating a user must not scan all groups).
    #[serde(default)]
    pub auto_join_groups: BTreeSet<String>,
}

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
    pub groups: BTreeSet<String>,
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
    pub members: BTreeSet<String>,
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

impl State {
    /// Fold one event into the state. See the crate docs for why this cannot fail.
    pub fn apply(&mut self, envelope: &Envelope) {
        let seq = envelope.seq;
        let now = envelope.time_ms;
        self.seq = seq;
        self.time_ms = self.time_ms.max(envelope.time_ms);
        // A deleted or renamed user leaves its groups: their member lists change too.
        let left = self.groups_left_by(&envelope.event);
        self.apply_event(&envelope.event, seq, now);
        self.track_versions(envelope, &left);
    }

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
            .get(user)
            .map(|u| u.groups.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The federated entities an event changed: those of [`federated_entities`] and
    /// `left`, the groups a deleted or renamed user left ([`State::groups_left_by`],
    /// read before the event).
    pub fn federated_changes(
        &self,
        event: &Event,
        left: &[String],
    ) -> Vec<(&'static str, String, bool)> {
        federated_entities(event)
            .into_iter()
            .map(|(e, n, r)| (e, n.to_string(), r))
            .chain(left.iter().map(|g| ("group", g.clone(), false)))
            .collect()
    }

    /// The version of `entity` `name` here: its entry, or one derived from its record
    /// (see [`Federation`]).
    pub fn version_of(&self, entity: &str, name: &str) -> Option<EntityVersion> {
        if let Some(r) = self.federation.versions.get(entity, name) {
            return Some(r.version.clone());
        }
        let own = || self.service_id.clone().unwrap_or_default();
        match entity {
            "user" => self.directory.users.get(name).map(|u| EntityVersion {
                time_ms: u.updated_ms,
                origin: own(),
                origin_seq: u.updated_seq,
            }),
            "group" => self.directory.groups.get(name).map(|g| EntityVersion {
                time_ms: g.updated_ms,
                origin: own(),
                origin_seq: g.updated_seq,
            }),
            _ => None,
        }
    }

    /// Record the versions of the federated entities the event wrote.
    fn track_versions(&mut self, env: &Envelope, left: &[String]) {
        let seq = env.seq;
        let replicated = match &env.event {
            Event::UserReplicated {
                source,
                version,
                user,
            } => Some((source, version, "user", &user.username, false, false)),
            Event::GroupReplicated {
                source,
                version,
                group,
            } => Some((source, version, "group", &group.name, false, false)),
            Event::PermissionReplicated {
                source,
                version,
                target,
            } => Some((source, version, "permission", &target.name, false, false)),
            Event::TokenReplicated {
                source,
                version,
                token,
                ..
            } => Some((source, version, "token", &token.token_id, false, false)),
            Event::ReplicaRemoved {
                source,
                version,
                entity,
                name,
                swept,
            } => Some((source, version, entity.as_str(), name, true, *swept)),
            _ => None,
        };
        if let Some((source, version, entity, name, removed, swept)) = replicated {
            if let Some(map) = self.federation.versions.of_mut(entity) {
                map.insert(
                    name.clone(),
                    VersionRecord {
                        version: version.clone(),
                        source: Some(source.clone()),
                        applied_seq: seq,
                        removed,
                        swept,
                    },
                );
            }
            return;
        }
        // The common case — a server that never received anything, a user or group
        // event — needs no entry at all (its version is derived from the record).
        let needs_entry = match &env.event {
            Event::UserDeleted { .. } | Event::GroupDeleted { .. } | Event::UserRenamed { .. } => {
                true
            }
            Event::PermissionTargetSaved(_)
            | Event::PermissionTargetDeleted { .. }
            | Event::TokenIssued(_)
            | Event::TokenRefreshed { .. }
            | Event::TokenRevoked { .. } => true,
            _ => {
                !self.federation.versions.users.is_empty()
                    || !self.federation.versions.groups.is_empty()
            }
        };
        if !needs_entry {
            return;
        }
        let touched = federated_entities(&env.event);
        if touched.is_empty() {
            return;
        }
        let origin = &env.origin;
        let groups = left.iter().map(|g| ("group", g.as_str(), false));
        for (entity, name, removed) in touched.into_iter().chain(groups) {
            let Some(map) = self.federation.versions.of_mut(entity) else {
                continue;
            };
            // Users and groups without an entry derive their version from the record;
            // the others, deletions, and entities that hold a peer's version need one.
            let always = matches!(entity, "permission" | "token") || removed;
            match map.get_mut(name) {
                Some(r) => {
                    // Never below the version it replaces, whatever this server's clock
                    // says (a peer's clock may run ahead): a later write here must win.
                    r.version = EntityVersion {
                        time_ms: env.time_ms.max(r.version.time_ms + 1),
                        origin: origin.clone(),
                        origin_seq: seq,
                    };
                    r.source = None;
                    r.applied_seq = seq;
                    r.removed = removed;
                    r.swept = false;
                }
                None if always => {
                    map.insert(
                        name.to_string(),
                        VersionRecord {
                            version: EntityVersion {
                                time_ms: env.time_ms,
                                origin: origin.clone(),
                                origin_seq: seq,
                            },
                            source: None,
                            applied_seq: seq,
                            removed,
                            swept: false,
                        },
                    );
                }
                None => {}
            }
        }
    }

    fn apply_event(&mut self, event: &Event, seq: u64, now: u64) {
        let dir = &mut self.directory;
        match event {
            Event::ServiceCreated { service_id } => {
                self.service_id = Some(service_id.clone());
            }
            Event::UserCreated(created) => dir.create_user(created, seq, now),
            Event::UserUpdated(update) => {
                if let Some(user) = dir.users.get_mut(&update.username) {
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
                if let Some(user) = dir.users.get_mut(username) {
                    user.password_hash = Some(password_hash.clone());
                    user.password_expired = false;
                    user.internal_password_disabled = false;
                    user.credentials_seq = seq;
                    user.updated_seq = seq;
                    user.updated_ms = now;
                }
            }
            Event::UserPasswordExpired { username } => {
                if let Some(user) = dir.users.get_mut(username) {
                    user.password_expired = true;
                    user.credentials_seq = seq;
                    user.updated_seq = seq;
                    user.updated_ms = now;
                }
            }
            Event::UserLocked { username } => {
                dir.set_status(username, UserStatus::Locked, seq, now)
            }
            Event::UserUnlocked { username } => {
                dir.set_status(username, UserStatus::Enabled, seq, now)
            }
            Event::UserDeleted { username } => {
                // Its tokens go with it: a later user of the same name is someone else.
                let ids: Vec<String> = self
                    .tokens
                    .by_id
                    .values()
                    .filter(|t| &t.subject == username && !t.transient)
                    .map(|t| t.token_id.clone())
                    .collect();
                for id in ids {
                    self.tokens.remove(&id);
                }
                if self.projects.remove_member("user", username, seq) {
                    self.projects.changed_seq = seq;
                }
                if let Some(user) = dir.users.remove(username) {
                    if let Some(id) = &user.scim_id {
                        dir.scim_ids.remove(id);
                    }
                    for group in &user.groups {
                        if let Some(g) = dir.groups.get_mut(group) {
                            g.members.remove(username);
                            g.updated_seq = seq;
                            g.updated_ms = now;
                        }
                    }
                }
            }
            Event::GroupCreated(created) => dir.create_group(created, seq, now),
            Event::GroupUpdated(update) => {
                if let Some(group) = dir.groups.get_mut(&update.name) {
                    if let Some(v) = &update.description {
                        group.description = Some(v.clone());
                    }
                    if let Some(v) = update.auto_join {
                        group.auto_join = v;
                        if v {
                            dir.auto_join_groups.insert(update.name.clone());
                        } else {
                            dir.auto_join_groups.remove(&update.name);
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
            Event::GroupDeleted { name } => {
                dir.auto_join_groups.remove(name);
                if self.projects.remove_member("group", name, seq) {
                    self.projects.changed_seq = seq;
                }
                if let Some(group) = dir.groups.remove(name) {
                    for member in &group.members {
                        if let Some(u) = dir.users.get_mut(member) {
                            u.groups.remove(name);
                            u.updated_seq = seq;
                            u.updated_ms = now;
                        }
                    }
                }
            }
            Event::GroupMembersChanged {
                group,
                added,
                removed,
            } => {
                for user in added {
                    dir.join(user, group, seq, now);
                }
                for user in removed {
                    dir.leave(user, group, seq, now);
                }
            }
            Event::UserGroupsChanged {
                username,
                added,
                removed,
            } => {
                for group in added {
                    dir.join(username, group, seq, now);
                }
                for group in removed {
                    dir.leave(username, group, seq, now);
                }
            }
            Event::UserScimSaved {
                username,
                attributes,
            } => {
                if let Some(user) = dir.users.get_mut(username) {
                    user.scim = Some(attributes.clone());
                    user.updated_seq = seq;
                    user.updated_ms = now;
                }
            }
            Event::GroupScimSaved { name, attributes } => {
                if let Some(group) = dir.groups.get_mut(name) {
                    group.scim = Some(attributes.clone());
                    group.updated_seq = seq;
                    group.updated_ms = now;
                }
            }
            Event::CheckpointSigned(c) => self.checkpoints.push(c.clone()),
            Event::SubscriptionSaved(sub) => {
                let rec = self
                    .subscriptions
                    .entry(sub.key.clone())
                    .or_insert_with(|| SubscriptionRecord {
                        created_seq: seq,
                        ..Default::default()
                    });
                rec.subscription = sub.clone();
                rec.updated_seq = seq;
            }
            Event::SubscriptionDeleted { key } => {
                self.subscriptions.remove(key);
            }
            Event::UserRenamed { from, to } => {
                self.rename_user(from, to, seq, now);
            }
            Event::TokenIssued(t) => self.tokens.insert(t),
            Event::TokenRefreshed {
                old_token_id,
                issued,
            } => {
                self.tokens.remove(old_token_id);
                self.tokens.insert(issued);
            }
            Event::TokenRevoked { token_id } => {
                self.tokens.remove(token_id);
                self.federation.token_issuers.remove(token_id);
            }
            Event::SigningKeyAdded { kid, public_key } => {
                self.keys.signing.insert(kid.clone(), public_key.clone());
                self.keys.active = Some(kid.clone());
            }
            Event::TrustedKeyAdded {
                name,
                kid,
                public_key,
            } => {
                self.keys
                    .trusted
                    .insert(name.clone(), (kid.clone(), public_key.clone()));
            }
            Event::TrustedKeyRemoved { name } => {
                self.keys.trusted.remove(name);
            }
            Event::SignedUrlKeyReplaced { version } => self.keys.signed_url_version = *version,
            Event::PermissionTargetSaved(t) => {
                self.permissions
                    .targets
                    .insert(t.name.clone(), (**t).clone());
                self.permissions.changed_seq = seq;
            }
            Event::PermissionTargetDeleted { name } => {
                self.permissions.targets.remove(name);
                self.permissions.changed_seq = seq;
            }
            Event::RepositorySaved(r) => {
                let rec = self
                    .repositories
                    .by_key
                    .entry(r.key.clone())
                    .or_insert_with(|| RepositoryRecord {
                        created_seq: seq,
                        ..Default::default()
                    });
                rec.config = r.clone();
                rec.updated_seq = seq;
                // Repository classes decide `ANY LOCAL`/`ANY REMOTE`, environments decide roles.
                self.permissions.changed_seq = seq;
                self.projects.changed_seq = seq;
            }
            Event::RepositoryDeleted { key } => {
                self.repositories.by_key.remove(key);
                self.permissions.changed_seq = seq;
                self.projects.changed_seq = seq;
            }
            Event::ProjectSaved(p) => {
                let rec = self
                    .projects
                    .by_key
                    .entry(p.project_key.clone())
                    .or_insert_with(|| ProjectRecord {
                        created_seq: seq,
                        ..Default::default()
                    });
                rec.config = p.clone();
                rec.updated_seq = seq;
                self.projects.changed_seq = seq;
            }
            Event::ProjectDeleted { project_key } => {
                self.projects.by_key.remove(project_key);
                for r in self.repositories.by_key.values_mut() {
                    if r.project.as_deref() == Some(project_key.as_str()) {
                        r.project = None;
                        r.updated_seq = seq;
                    }
                    if r.shared_with.remove(project_key) {
                        r.updated_seq = seq;
                    }
                }
                self.projects.changed_seq = seq;
            }
            Event::ProjectRoleSaved { project_key, role } => {
                if let Some(p) = self.projects.by_key.get_mut(project_key) {
                    p.roles.insert(role.name.clone(), role.clone());
                    p.updated_seq = seq;
                    self.projects.changed_seq = seq;
                }
            }
            Event::ProjectRoleDeleted { project_key, role } => {
                if let Some(p) = self.projects.by_key.get_mut(project_key) {
                    p.roles.remove(role);
                    for roles in p.users.values_mut().chain(p.groups.values_mut()) {
                        roles.remove(role);
                    }
                    // A member always holds at least one role: one left with none leaves.
                    p.users.retain(|_, roles| !roles.is_empty());
                    p.groups.retain(|_, roles| !roles.is_empty());
                    p.updated_seq = seq;
                    self.projects.changed_seq = seq;
                }
            }
            Event::ProjectMemberSaved {
                project_key,
                kind,
                name,
                roles,
            } => {
                if let Some(p) = self.projects.by_key.get_mut(project_key) {
                    let members = p.members_mut(kind);
                    members.insert(name.clone(), roles.iter().cloned().collect());
                    p.updated_seq = seq;
                    self.projects.changed_seq = seq;
                }
            }
            Event::ProjectMemberRemoved {
                project_key,
                kind,
                name,
            } => {
                if let Some(p) = self.projects.by_key.get_mut(project_key) {
                    let members = p.members_mut(kind);
                    members.remove(name);
                    p.updated_seq = seq;
                    self.projects.changed_seq = seq;
                }
            }
            Event::RepositoryAttached { repo, project_key } => {
                if let Some(r) = self.repositories.by_key.get_mut(repo) {
                    r.project = Some(project_key.clone());
                    // The owner is not also a project it is shared with.
                    r.shared_with.remove(project_key);
                    r.updated_seq = seq;
                    self.projects.changed_seq = seq;
                }
            }
            Event::RepositoryUnassigned { repo } => {
                if let Some(r) = self.repositories.by_key.get_mut(repo) {
                    r.project = None;
                    // Sharing is a project's repository shared with others: it ends with
                    // the assignment.
                    r.shared_with_all = false;
                    r.shared_with.clear();
                    r.updated_seq = seq;
                    self.projects.changed_seq = seq;
                }
            }
            Event::RepositoryShared { repo, project_key } => {
                if let Some(r) = self.repositories.by_key.get_mut(repo) {
                    match project_key {
                        Some(p) => {
                            r.shared_with.insert(p.clone());
                        }
                        None => r.shared_with_all = true,
                    }
                    r.updated_seq = seq;
                    self.projects.changed_seq = seq;
                }
            }
            Event::RepositoryUnshared { repo, project_key } => {
                if let Some(r) = self.repositories.by_key.get_mut(repo) {
                    match project_key {
                        Some(p) => {
                            r.shared_with.remove(p);
                        }
                        None => r.shared_with_all = false,
                    }
                    r.updated_seq = seq;
                    self.projects.changed_seq = seq;
                }
            }
            Event::AccessKeySaved(k) => {
                let name = access_key_username(&k.org, &k.id);
                let rec = self
                    .access_keys
                    .keys
                    .entry(name)
                    .or_insert_with(|| AccessKeyRecord {
                        created_seq: seq,
                        ..Default::default()
                    });
                rec.key = k.clone();
                rec.updated_seq = seq;
            }
            Event::AccessKeyDeleted { org, id } => {
                let name = access_key_username(org, id);
                self.access_keys.keys.remove(&name);
                let ids = self
                    .access_keys
                    .entitlements_by_key
                    .remove(&name)
                    .unwrap_or_default();
                for eid in ids {
                    if let Some(e) = self.access_keys.entitlements.get_mut(&eid) {
                        e.entitlement.access_keys.retain(|k| k != id);
                        e.updated_seq = seq;
                    }
                }
            }
            Event::EntitlementSaved(e) => {
                let a = &mut self.access_keys;
                let created_seq = match a.entitlements.get(&e.id) {
                    Some(old) => {
                        let old = old.clone();
                        a.unindex(&old.entitlement);
                        old.created_seq
                    }
                    None => seq,
                };
                a.index(e);
                a.entitlements.insert(
                    e.id.clone(),
                    EntitlementRecord {
                        entitlement: e.clone(),
                        created_seq,
                        updated_seq: seq,
                    },
                );
            }
            Event::EntitlementDeleted { id, .. } => {
                let a = &mut self.access_keys;
                if let Some(old) = a.entitlements.remove(id) {
                    a.unindex(&old.entitlement);
                }
            }
            Event::ServicePaired {
                use_case,
                name,
                service_id,
                kid,
                public_key,
            } => {
                self.keys
                    .trusted
                    .insert(name.clone(), (kid.clone(), public_key.clone()));
                self.keys
                    .pairings
                    .entry(use_case.clone())
                    .or_default()
                    .insert(service_id.clone(), name.clone());
            }
            Event::FederationTargetSaved(t) => {
                let rec = self
                    .federation
                    .targets
                    .entry(t.name.clone())
                    .or_insert_with(|| FederationTargetRecord {
                        created_seq: seq,
                        ..Default::default()
                    });
                rec.target = t.clone();
                rec.updated_seq = seq;
            }
            Event::FederationTargetDeleted { name } => {
                self.federation.targets.remove(name);
            }
            Event::FederationBroadcastDone {
                target, position, ..
            } => {
                if let Some(rec) = self.federation.targets.get_mut(target) {
                    rec.broadcast_position = Some(*position);
                }
            }
            Event::UserReplicated { user, .. } => dir.replicate_user(user, seq, now),
            Event::GroupReplicated { group, .. } => dir.replicate_group(group, seq, now),
            Event::PermissionReplicated { target, .. } => {
                self.apply_event(&Event::PermissionTargetSaved(target.clone()), seq, now)
            }
            Event::TokenReplicated { issuer, token, .. } => {
                // Kept like a record issued here, so that the token works here until its
                // revocation (which removes it) arrives.
                let revocable = TokenIssued {
                    revocable: true,
                    ..(**token).clone()
                };
                self.tokens.insert(&revocable);
                self.federation
                    .token_issuers
                    .insert(token.token_id.clone(), issuer.clone());
            }
            Event::ReplicaRemoved { entity, name, .. } => {
                let local = match entity.as_str() {
                    "user" => Event::UserDeleted {
                        username: name.clone(),
                    },
                    "group" => Event::GroupDeleted { name: name.clone() },
                    "permission" => Event::PermissionTargetDeleted { name: name.clone() },
                    "token" => Event::TokenRevoked {
                        token_id: name.clone(),
                    },
                    _ => return,
                };
                self.apply_event(&local, seq, now);
            }
        }
    }

    /// Canonical encoding of the whole state (used for snapshots and the digest).
    /// Positional (field names left out): a snapshot is derived data that is rebuilt from
    /// the log when its format changes, and leaving the names out halves decoding time.
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec(self).expect("state always encodes")
    }

    pub fn decode(bytes: &[u8]) -> Result<State, rmp_serde::decode::Error> {
        rmp_serde::from_slice(bytes)
    }

    /// blake3 over the canonical encoding: equal digests mean equal states.
    pub fn digest(&self) -> String {
        blake3::hash(&self.encode()).to_hex().to_string()
    }
}

impl State {
    /// Everything that names a user by its name follows the rename: group membership,
    /// project membership, permission targets. Its tokens end (a token names the old
    /// name). The SCIM id stays what it was.
    fn rename_user(&mut self, from: &str, to: &str, seq: u64, now: u64) {
        let dir = &mut self.directory;
        let Some(mut user) = dir.users.remove(from) else {
            return;
        };
        if dir.users.contains_key(to) {
            dir.users.insert(from.to_string(), user);
            return;
        }
        let id = user.scim_id.take().unwrap_or_else(|| from.to_string());
        dir.scim_ids.retain(|_, name| name != from);
        if id != to {
            dir.scim_ids.insert(id.clone(), to.to_string());
            user.scim_id = Some(id);
        }
        user.username = to.to_string();
        user.updated_seq = seq;
        user.updated_ms = now;
        user.credentials_seq = seq;
        for g in &user.groups {
            if let Some(group) = dir.groups.get_mut(g) {
                group.members.remove(from);
                group.members.insert(to.to_string());
            }
        }
        dir.users.insert(to.to_string(), user);
        let ids: Vec<String> = self
            .tokens
            .by_id
            .values()
            .filter(|t| t.subject == from && !t.transient)
            .map(|t| t.token_id.clone())
            .collect();
        for id in ids {
            self.tokens.remove(&id);
        }
        for p in self.projects.by_key.values_mut() {
            if let Some(roles) = p.users.remove(from) {
                p.users.insert(to.to_string(), roles);
                self.projects.changed_seq = seq;
            }
        }
        for t in self.permissions.targets.values_mut() {
            for section in [&mut t.repo, &mut t.build, &mut t.release_bundle]
                .into_iter()
                .flatten()
            {
                if let Some(actions) = section.users.remove(from) {
                    section.users.insert(to.to_string(), actions);
                    self.permissions.changed_seq = seq;
                }
            }
        }
    }
}

impl Projects {
    /// Drop a deleted user or group from every project; whether anything changed.
    fn remove_member(&mut self, kind: &str, name: &str, seq: u64) -> bool {
        let mut changed = false;
        for p in self.by_key.values_mut() {
            let members = p.members_mut(kind);
            if members.remove(name).is_some() {
                p.updated_seq = seq;
                changed = true;
            }
        }
        changed
    }
}

impl AccessKeys {
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

impl Tokens {
    fn insert(&mut self, t: &TokenIssued) {
        if !t.revocable {
            return;
        }
        if let Some(h) = &t.refresh_hash {
            self.by_refresh_hash.insert(h.clone(), t.token_id.clone());
        }
        if let Some(h) = &t.reference_hash {
            self.by_reference_hash.insert(h.clone(), t.token_id.clone());
        }
        self.by_id.insert(t.token_id.clone(), t.clone());
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

impl Directory {
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
            groups: BTreeSet::new(),
            created_seq: seq,
            updated_seq: seq,
            credentials_seq: seq,
            created_ms: now,
            updated_ms: now,
            scim: None,
            scim_id: None,
        };
        self.users.insert(c.username.clone(), user);
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
            members: BTreeSet::new(),
            created_seq: seq,
            updated_seq: seq,
            created_ms: now,
            updated_ms: now,
            scim: None,
        };
        self.groups.insert(c.name.clone(), group);
        for member in &c.members {
            self.join(member, &c.name, seq, now);
        }
    }

    /// Create or overwrite a user from a federation peer. Group membership is the
    /// groups' business and stays as it is.
    fn replicate_user(&mut self, r: &ReplicatedUser, seq: u64, now: u64) {
        let user = self
            .users
            .entry(r.username.clone())
            .or_insert_with(|| User {
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
                groups: BTreeSet::new(),
                created_seq: seq,
                updated_seq: seq,
                credentials_seq: seq,
                created_ms: now,
                updated_ms: now,
                scim: None,
                scim_id: None,
            });
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
        if !self.groups.contains_key(&r.name) {
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
        let Some(group) = self.groups.get_mut(&r.name) else {
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
        if let Some(user) = self.users.get_mut(username) {
            user.status = status;
            user.credentials_seq = seq;
            user.updated_seq = seq;
            user.updated_ms = now;
        }
    }

    /// INVARIANT: membership is recorded on both sides or on neither.
    fn join(&mut self, username: &str, group: &str, seq: u64, now: u64) {
        if let (Some(u), Some(g)) = (self.users.get_mut(username), self.groups.get_mut(group)) {
            u.groups.insert(group.to_string());
            g.members.insert(username.to_string());
            u.updated_seq = seq;
            u.updated_ms = now;
            g.updated_seq = seq;
            g.updated_ms = now;
        }
    }

    fn leave(&mut self, username: &str, group: &str, seq: u64, now: u64) {
        if let (Some(u), Some(g)) = (self.users.get_mut(username), self.groups.get_mut(group)) {
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
        self.users.get(username).is_some_and(|u| {
            u.admin
                || u.groups
                    .iter()
                    .any(|g| self.groups.get(g).is_some_and(|g| g.admin_privileges))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_schemas::samples;

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

    #[test]
    fn same_events_same_digest() {
        let mut a = State::default();
        let mut b = State::default();
        for e in samples() {
            a.apply(&e);
            b.apply(&e);
        }
        assert_eq!(a.digest(), b.digest());
        let restored = State::decode(&a.encode()).unwrap();
        assert_eq!(restored, a);
    }
}

//! The domain: commands, their validation, and `decide`.
//!
//! `decide(&State, &Command) -> Result<Vec<Event>, DomainError>` is pure: no clock, no
//! randomness, no I/O. Whatever it needs that is not in the state (a password hash, a new
//! service id) is computed before and carried in the command. That is what lets the
//! writer run it in a tight loop and what keeps replay deterministic.

mod names;

pub use names::{normalize_username, validate_email, validate_group_name, validate_password};

use gatehouse_projections::State;
use gatehouse_schemas::{
    Event, GroupCreated, GroupUpdated, TokenIssued, UserCreated, UserStatus, UserUpdated,
};
use std::collections::{BTreeMap, BTreeSet};

/// One change a federation peer sent, with the version of the write it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicatedChange {
    pub version: gatehouse_schemas::EntityVersion,
    pub change: Replicated,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replicated {
    User(gatehouse_schemas::ReplicatedUser),
    Group(gatehouse_schemas::ReplicatedGroup),
    Permission(gatehouse_schemas::PermissionTarget),
    Token {
        issuer: String,
        token: TokenIssued,
    },
    /// `entity` = `user` | `group` | `permission` | `token`.
    Removed {
        entity: String,
        name: String,
    },
}

impl ReplicatedChange {
    /// (`entity`, name): the key of its version.
    pub fn entity(&self) -> (&str, &str) {
        match &self.change {
            Replicated::User(u) => ("user", &u.username),
            Replicated::Group(g) => ("group", &g.name),
            Replicated::Permission(t) => ("permission", &t.name),
            Replicated::Token { token, .. } => ("token", &token.token_id),
            Replicated::Removed { entity, name } => (entity, name),
        }
    }
}

/// The built-in `admin` of each server is its own: federation never carries it.
pub const UNFEDERATED_USER: &str = "admin";

/// Expected failures of a command: each maps to a 4xx.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// `If-Match` named another version than the current one (412).
    #[error("{0}")]
    PreconditionFailed(String),
    /// The request is valid but clashes with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// Bad input; `field` names it for the client.
    #[error("invalid `{field}`: {message}")]
    Invalid { field: String, message: String },
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> DomainError {
        DomainError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A new user, validated and with its password already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub admin: bool,
    pub profile_updatable: bool,
    pub internal_password_disabled: bool,
    pub disable_ui_access: bool,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub admin: Option<bool>,
    pub profile_updatable: Option<bool>,
    pub internal_password_disabled: Option<bool>,
    pub disable_ui_access: Option<bool>,
    /// Only `enabled` or `disabled` (locking has its own commands).
    pub status: Option<UserStatus>,
}

#[derive(Debug, Clone)]
pub struct NewGroup {
    pub name: String,
    pub description: Option<String>,
    pub auto_join: bool,
    pub admin_privileges: bool,
    pub realm: Option<String>,
    pub realm_attributes: Option<String>,
    pub external_id: Option<String>,
    pub members: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct GroupChanges {
    pub description: Option<String>,
    pub auto_join: Option<bool>,
    pub admin_privileges: Option<bool>,
    pub realm: Option<String>,
    pub realm_attributes: Option<String>,
    pub external_id: Option<String>,
    /// The complete new member list, when given.
    pub members: Option<Vec<String>>,
}

/// Everything that can be asked of the writer.
#[derive(Debug, Clone)]
pub enum Command {
    /// First start: the service identity and the `admin` user. A no-op on a log that has one.
    InitializeService {
        service_id: String,
        admin_password_hash: String,
    },
    CreateUser(NewUser),
    UpdateUser {
        username: String,
        changes: UserChanges,
    },
    DeleteUser {
        username: String,
    },
    ChangePassword {
        username: String,
        password_hash: String,
    },
    ExpirePassword {
        username: String,
    },
    LockUser {
        username: String,
    },
    UnlockUser {
        username: String,
    },
    ChangeUserGroups {
        username: String,
        add: Vec<String>,
        remove: Vec<String>,
    },
    CreateGroup(NewGroup),
    UpdateGroup {
        name: String,
        changes: GroupChanges,
    },
    DeleteGroup {
        name: String,
    },
    ChangeGroupMembers {
        group: String,
        add: Vec<String>,
        remove: Vec<String>,
    },
    /// The token is already signed; the command carries only its record (hashes).
    IssueToken(TokenIssued),
    RefreshToken {
        old_token_id: String,
        issued: TokenIssued,
    },
    /// A no-op for an unknown id (the seed answers 204 then).
    RevokeToken {
        token_id: String,
    },
    AddSigningKey {
        kid: String,
        public_key: String,
    },
    AddTrustedKey {
        name: String,
        kid: String,
        public_key: String,
    },
    RemoveTrustedKey {
        name: String,
    },
    ReplaceSignedUrlKey {
        version: u64,
    },
    /// Record a peer's key from a pairing; with `pairing_token_id`, also use up that
    /// (single-use) pairing token in the same commit.
    /// Create (`create_only`) or create-or-replace a permission target.
    SavePermissionTarget {
        target: gatehouse_schemas::PermissionTarget,
        create_only: bool,
    },
    DeletePermissionTarget {
        name: String,
    },
    SaveRepository(gatehouse_schemas::Repository),
    DeleteRepository {
        key: String,
    },
    /// Create (`create_only`) or update an existing project.
    SaveProject {
        project: gatehouse_schemas::Project,
        create_only: bool,
    },
    DeleteProject {
        project_key: String,
    },
    /// Create (`create_only`) or update a custom role.
    SaveProjectRole {
        project_key: String,
        role: gatehouse_schemas::ProjectRole,
        create_only: bool,
    },
    DeleteProjectRole {
        project_key: String,
        role: String,
    },
    /// `kind` is `user` or `group`.
    SetProjectMember {
        project_key: String,
        kind: String,
        name: String,
        roles: Vec<String>,
    },
    RemoveProjectMember {
        project_key: String,
        kind: String,
        name: String,
    },
    /// Move the repository into the project (`force` to take it from another one).
    AttachRepository {
        repo: String,
        project_key: String,
        force: bool,
    },
    UnassignRepository {
        repo: String,
    },
    /// With one project, or with all (`None`).
    ShareRepository {
        repo: String,
        project_key: Option<String>,
    },
    UnshareRepository {
        repo: String,
        project_key: Option<String>,
    },
    SaveAccessKey {
        key: gatehouse_schemas::AccessKey,
        create_only: bool,
    },
    DeleteAccessKey {
        org: String,
        id: String,
    },
    SaveEntitlement {
        entitlement: gatehouse_schemas::Entitlement,
        create_only: bool,
    },
    DeleteEntitlement {
        org: String,
        id: String,
    },
    /// SCIM create or replace of a user, as one atomic change: the domain fields, the
    /// password, the SCIM-only attributes and (last) a rename.
    ScimSaveUser {
        username: String,
        create: Option<NewUser>,
        /// Includes a new password (hashed), as for `UpdateUser`.
        changes: UserChanges,
        attributes: String,
        rename_to: Option<String>,
        /// The `meta.version` the client last saw (`If-Match`).
        if_match: Option<u64>,
    },
    /// SCIM create or replace of a group: its members (user names) and attributes.
    ScimSaveGroup {
        name: String,
        create: Option<NewGroup>,
        members: Option<Vec<String>>,
        attributes: String,
        if_match: Option<u64>,
    },
    ScimDelete {
        group: bool,
        name: String,
        if_match: Option<u64>,
    },
    /// Create (`create_only`) or replace a webhook subscription.
    SaveSubscription {
        subscription: gatehouse_schemas::Subscription,
        create_only: bool,
    },
    DeleteSubscription {
        key: String,
    },
    SaveFederationTarget {
        target: gatehouse_schemas::FederationTarget,
        create_only: bool,
    },
    DeleteFederationTarget {
        name: String,
    },
    RecordBroadcast {
        target: String,
        position: u64,
        entities: u64,
    },
    /// Apply what federation peer `source` sent: each change only when its version is
    /// greater than the one here (so a batch applied twice changes nothing the second
    /// time, and a change that went round a ring stops where it started).
    ApplyReplicated {
        source: String,
        changes: Vec<ReplicatedChange>,
    },
    /// The end of a full broadcast from `source`: what it sent before position `since`
    /// here and does not name in `names` (by entity) is gone at the source.
    EndBroadcast {
        source: String,
        since: u64,
        names: BTreeMap<String, BTreeSet<String>>,
    },
    /// Record a signed checkpoint (a no-op when one at or after its position exists).
    RecordCheckpoint(gatehouse_schemas::Checkpoint),
    CompletePairing {
        pairing_token_id: Option<String>,
        use_case: String,
        service_id: String,
        kid: String,
        public_key: String,
    },
}

/// The realm of users and groups created through this server's own API.
pub const INTERNAL_REALM: &str = "internal";

pub fn decide(state: &State, command: &Command) -> Result<Vec<Event>, DomainError> {
    let dir = &state.directory;
    let user_must_exist = |name: &str| {
        if dir.users.contains_key(name) {
            Ok(())
        } else {
            Err(DomainError::NotFound(format!("user `{name}`")))
        }
    };
    let group_must_exist = |name: &str| {
        if dir.groups.contains_key(name) {
            Ok(())
        } else {
            Err(DomainError::NotFound(format!("group `{name}`")))
        }
    };
    match command {
        Command::InitializeService {
            service_id,
            admin_password_hash,
        } => {
            if state.service_id.is_some() {
                return Ok(vec![]);
            }
            Ok(vec![
                Event::ServiceCreated {
                    service_id: service_id.clone(),
                },
                Event::UserCreated(UserCreated {
                    username: "admin".into(),
                    email: None,
                    password_hash: Some(admin_password_hash.clone()),
                    admin: true,
                    profile_updatable: true,
                    internal_password_disabled: false,
                    disable_ui_access: false,
                    realm: INTERNAL_REALM.into(),
                    status: UserStatus::Enabled,
                    groups: vec![],
                }),
            ])
        }
        Command::CreateUser(u) => {
            if dir.users.contains_key(&u.username) {
                return Err(DomainError::AlreadyExists(format!("user `{}`", u.username)));
            }
            // A renamed user keeps its old name as its SCIM id.
            if dir.scim_ids.contains_key(&u.username) {
                return Err(DomainError::AlreadyExists(format!(
                    "a user with SCIM id `{}`",
                    u.username
                )));
            }
            // Users and access keys sign in by the same name: one namespace.
            if state.access_keys.keys.contains_key(&u.username) {
                return Err(DomainError::Conflict(format!(
                    "`{}` is the name of an access key",
                    u.username
                )));
            }
            if u.password_hash.is_none() && !u.internal_password_disabled {
                return Err(DomainError::invalid(
                    "password",
                    "is required unless `internal_password_disabled` is true",
                ));
            }
            let mut groups = BTreeSet::new();
            for (i, g) in u.groups.iter().enumerate() {
                if !dir.groups.contains_key(g) {
                    return Err(DomainError::invalid(
                        format!("groups[{i}]"),
                        format!("group `{g}` does not exist"),
                    ));
                }
                groups.insert(g.clone());
            }
            // Groups marked auto-join take every new user.
            groups.extend(dir.auto_join_groups.iter().cloned());
            Ok(vec![Event::UserCreated(UserCreated {
                username: u.username.clone(),
                email: u.email.clone(),
                password_hash: if u.internal_password_disabled {
                    None
                } else {
                    u.password_hash.clone()
                },
                admin: u.admin,
                profile_updatable: u.profile_updatable,
                internal_password_disabled: u.internal_password_disabled,
                disable_ui_access: u.disable_ui_access,
                realm: INTERNAL_REALM.into(),
                status: UserStatus::Enabled,
                groups: groups.into_iter().collect(),
            })])
        }
        Command::UpdateUser { username, changes } => {
            let user = dir
                .users
                .get(username)
                .ok_or_else(|| DomainError::NotFound(format!("user `{username}`")))?;
            if let Some(status) = changes.status {
                if !matches!(status, UserStatus::Enabled | UserStatus::Disabled) {
                    return Err(DomainError::invalid(
                        "status",
                        "can only be set to `enabled` or `disabled` (use the unlock endpoint for locked users)",
                    ));
                }
            }
            let enabling_password = changes.internal_password_disabled == Some(false)
                && user.internal_password_disabled;
            if enabling_password && changes.password_hash.is_none() {
                return Err(DomainError::invalid(
                    "password",
                    "is required when `internal_password_disabled` becomes false",
                ));
            }
            if changes.internal_password_disabled == Some(true) && changes.password_hash.is_some() {
                return Err(DomainError::invalid(
                    "password",
                    "cannot be set while `internal_password_disabled` is true",
                ));
            }
            if changes.password_hash.is_some()
                && user.internal_password_disabled
                && changes.internal_password_disabled != Some(false)
            {
                return Err(DomainError::invalid(
                    "password",
                    "cannot be set while `internal_password_disabled` is true",
                ));
            }
            let mut events = Vec::new();
            let update = UserUpdated {
                username: username.clone(),
                email: changes.email.clone(),
                admin: changes.admin,
                profile_updatable: changes.profile_updatable,
                internal_password_disabled: changes.internal_password_disabled,
                disable_ui_access: changes.disable_ui_access,
                status: changes.status,
            };
            // An empty PATCH changes nothing and writes nothing.
            if update
                != (UserUpdated {
                    username: username.clone(),
                    ..Default::default()
                })
            {
                events.push(Event::UserUpdated(update));
            }
            if let Some(hash) = &changes.password_hash {
                events.push(Event::UserPasswordChanged {
                    username: username.clone(),
                    password_hash: hash.clone(),
                });
            }
            Ok(events)
        }
        Command::DeleteUser { username } => {
            user_must_exist(username)?;
            Ok(vec![Event::UserDeleted {
                username: username.clone(),
            }])
        }
        Command::ChangePassword {
            username,
            password_hash,
        } => {
            let user = dir
                .users
                .get(username)
                .ok_or_else(|| DomainError::NotFound(format!("user `{username}`")))?;
            if user.internal_password_disabled {
                return Err(DomainError::invalid(
                    "password",
                    "the user's internal password is disabled",
                ));
            }
            Ok(vec![Event::UserPasswordChanged {
                username: username.clone(),
                password_hash: password_hash.clone(),
            }])
        }
        Command::ExpirePassword { username } => {
            user_must_exist(username)?;
            Ok(vec![Event::UserPasswordExpired {
                username: username.clone(),
            }])
        }
        Command::LockUser { username } => {
            let user = dir
                .users
                .get(username)
                .ok_or_else(|| DomainError::NotFound(format!("user `{username}`")))?;
            if user.status == UserStatus::Locked {
                return Ok(vec![]);
            }
            Ok(vec![Event::UserLocked {
                username: username.clone(),
            }])
        }
        Command::UnlockUser { username } => {
            let user = dir
                .users
                .get(username)
                .ok_or_else(|| DomainError::NotFound(format!("user `{username}`")))?;
            if user.status != UserStatus::Locked {
                return Ok(vec![]);
            }
            Ok(vec![Event::UserUnlocked {
                username: username.clone(),
            }])
        }
        Command::ChangeUserGroups {
            username,
            add,
            remove,
        } => {
            let user = dir
                .users
                .get(username)
                .ok_or_else(|| DomainError::NotFound(format!("user `{username}`")))?;
            check_add_remove(add, remove, "group", |g| dir.groups.contains_key(g))?;
            let added: Vec<String> = add
                .iter()
                .filter(|g| !user.groups.contains(*g))
                .cloned()
                .collect();
            let removed: Vec<String> = remove
                .iter()
                .filter(|g| user.groups.contains(*g))
                .cloned()
                .collect();
            if added.is_empty() && removed.is_empty() {
                return Ok(vec![]);
            }
            Ok(vec![Event::UserGroupsChanged {
                username: username.clone(),
                added: dedup(added),
                removed: dedup(removed),
            }])
        }
        Command::CreateGroup(g) => {
            if dir.groups.contains_key(&g.name) {
                return Err(DomainError::AlreadyExists(format!("group `{}`", g.name)));
            }
            for (i, m) in g.members.iter().enumerate() {
                if !dir.users.contains_key(m) {
                    return Err(DomainError::invalid(
                        format!("members[{i}]"),
                        format!("user `{m}` does not exist"),
                    ));
                }
            }
            Ok(vec![Event::GroupCreated(GroupCreated {
                name: g.name.clone(),
                description: g.description.clone(),
                auto_join: g.auto_join,
                admin_privileges: g.admin_privileges,
                realm: g.realm.clone().unwrap_or_else(|| INTERNAL_REALM.into()),
                realm_attributes: g.realm_attributes.clone(),
                external_id: g.external_id.clone(),
                members: dedup(g.members.clone()),
            })])
        }
        Command::UpdateGroup { name, changes } => {
            let group = dir
                .groups
                .get(name)
                .ok_or_else(|| DomainError::NotFound(format!("group `{name}`")))?;
            let mut events = Vec::new();
            let update = GroupUpdated {
                name: name.clone(),
                description: changes.description.clone(),
                auto_join: changes.auto_join,
                admin_privileges: changes.admin_privileges,
                realm: changes.realm.clone(),
                realm_attributes: changes.realm_attributes.clone(),
                external_id: changes.external_id.clone(),
            };
            if update
                != (GroupUpdated {
                    name: name.clone(),
                    ..Default::default()
                })
            {
                events.push(Event::GroupUpdated(update));
            }
            if let Some(members) = &changes.members {
                for (i, m) in members.iter().enumerate() {
                    if !dir.users.contains_key(m) {
                        return Err(DomainError::invalid(
                            format!("members[{i}]"),
                            format!("user `{m}` does not exist"),
                        ));
                    }
                }
                let wanted: BTreeSet<&String> = members.iter().collect();
                let added: Vec<String> = wanted
                    .iter()
                    .filter(|m| !group.members.contains(**m))
                    .map(|m| (*m).clone())
                    .collect();
                let removed: Vec<String> = group
                    .members
                    .iter()
                    .filter(|m| !wanted.contains(m))
                    .cloned()
                    .collect();
                if !added.is_empty() || !removed.is_empty() {
                    events.push(Event::GroupMembersChanged {
                        group: name.clone(),
                        added,
                        removed,
                    });
                }
            }
            Ok(events)
        }
        Command::DeleteGroup { name } => {
            group_must_exist(name)?;
            Ok(vec![Event::GroupDeleted { name: name.clone() }])
        }
        Command::ChangeGroupMembers { group, add, remove } => {
            let g = dir
                .groups
                .get(group)
                .ok_or_else(|| DomainError::NotFound(format!("group `{group}`")))?;
            check_add_remove(add, remove, "user", |u| dir.users.contains_key(u))?;
            let added: Vec<String> = add
                .iter()
                .filter(|u| !g.members.contains(*u))
                .cloned()
                .collect();
            let removed: Vec<String> = remove
                .iter()
                .filter(|u| g.members.contains(*u))
                .cloned()
                .collect();
            if added.is_empty() && removed.is_empty() {
                return Ok(vec![]);
            }
            Ok(vec![Event::GroupMembersChanged {
                group: group.clone(),
                added: dedup(added),
                removed: dedup(removed),
            }])
        }
        Command::IssueToken(t) => {
            check_token_subject(state, t)?;
            Ok(vec![Event::TokenIssued(Box::new(t.clone()))])
        }
        Command::RefreshToken {
            old_token_id,
            issued,
        } => {
            if !state.tokens.by_id.contains_key(old_token_id) {
                return Err(DomainError::invalid(
                    "refresh_token",
                    "the token was revoked or refreshed already",
                ));
            }
            check_token_subject(state, issued)?;
            Ok(vec![Event::TokenRefreshed {
                old_token_id: old_token_id.clone(),
                issued: Box::new(issued.clone()),
            }])
        }
        Command::RevokeToken { token_id } => {
            if state.tokens.by_id.contains_key(token_id) {
                Ok(vec![Event::TokenRevoked {
                    token_id: token_id.clone(),
                }])
            } else {
                Ok(vec![])
            }
        }
        Command::AddSigningKey { kid, public_key } => {
            if state.keys.signing.contains_key(kid) {
                return Err(DomainError::AlreadyExists(format!("signing key `{kid}`")));
            }
            Ok(vec![Event::SigningKeyAdded {
                kid: kid.clone(),
                public_key: public_key.clone(),
            }])
        }
        Command::AddTrustedKey {
            name,
            kid,
            public_key,
        } => {
            if state.keys.trusted.contains_key(name) {
                return Err(DomainError::AlreadyExists(format!("trusted key `{name}`")));
            }
            if state.keys.signing.contains_key(kid) {
                return Err(DomainError::invalid(
                    "certificate",
                    "this is one of this server's own keys",
                ));
            }
            Ok(vec![Event::TrustedKeyAdded {
                name: name.clone(),
                kid: kid.clone(),
                public_key: public_key.clone(),
            }])
        }
        Command::RemoveTrustedKey { name } => {
            if !state.keys.trusted.contains_key(name) {
                return Err(DomainError::NotFound(format!("trusted key `{name}`")));
            }
            Ok(vec![Event::TrustedKeyRemoved { name: name.clone() }])
        }
        Command::SavePermissionTarget {
            target,
            create_only,
        } => {
            if *create_only && state.permissions.targets.contains_key(&target.name) {
                return Err(DomainError::AlreadyExists(format!(
                    "permission target `{}`",
                    target.name
                )));
            }
            Ok(vec![Event::PermissionTargetSaved(Box::new(target.clone()))])
        }
        Command::DeletePermissionTarget { name } => {
            if !state.permissions.targets.contains_key(name) {
                return Err(DomainError::NotFound(format!("permission target `{name}`")));
            }
            Ok(vec![Event::PermissionTargetDeleted { name: name.clone() }])
        }
        Command::CompletePairing {
            pairing_token_id,
            use_case,
            service_id,
            kid,
            public_key,
        } => {
            let mut events = Vec::new();
            if let Some(id) = pairing_token_id {
                if !state.tokens.by_id.contains_key(id) {
                    return Err(DomainError::invalid(
                        "pairing_token",
                        "the pairing token was used already or revoked",
                    ));
                }
                events.push(Event::TokenRevoked {
                    token_id: id.clone(),
                });
            }
            if state.keys.signing.contains_key(kid) {
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
            events.push(Event::ServicePaired {
                use_case: use_case.clone(),
                name: service_id.clone(),
                service_id: service_id.clone(),
                kid: kid.clone(),
                public_key: public_key.clone(),
            });
            Ok(events)
        }
        Command::SaveRepository(r) => Ok(vec![Event::RepositorySaved(r.clone())]),
        Command::DeleteRepository { key } => {
            repository_must_exist(state, key)?;
            Ok(vec![Event::RepositoryDeleted { key: key.clone() }])
        }
        Command::SaveProject {
            project,
            create_only,
        } => {
            let key = &project.project_key;
            let exists = state.projects.by_key.contains_key(key);
            if *create_only && exists {
                return Err(DomainError::AlreadyExists(format!("project `{key}`")));
            }
            if !*create_only && !exists {
                return Err(DomainError::NotFound(format!("project `{key}`")));
            }
            if let Some(other) = state.projects.by_key.values().find(|p| {
                p.config.project_key != *key
                    && p.config
                        .display_name
                        .eq_ignore_ascii_case(&project.display_name)
            }) {
                return Err(DomainError::Conflict(format!(
                    "project `{}` already has the display name `{}`",
                    other.config.project_key, project.display_name
                )));
            }
            Ok(vec![Event::ProjectSaved(project.clone())])
        }
        Command::DeleteProject { project_key } => {
            project_must_exist(state, project_key)?;
            Ok(vec![Event::ProjectDeleted {
                project_key: project_key.clone(),
            }])
        }
        Command::SaveProjectRole {
            project_key,
            role,
            create_only,
        } => {
            let p = project_must_exist(state, project_key)?;
            if gatehouse_projections::predefined_roles()
                .iter()
                .any(|r| r.name == role.name)
            {
                return Err(if *create_only {
                    DomainError::AlreadyExists(format!("predefined role `{}`", role.name))
                } else {
                    DomainError::invalid("name", "predefined roles cannot be changed")
                });
            }
            let exists = p.roles.contains_key(&role.name);
            if *create_only && exists {
                return Err(DomainError::AlreadyExists(format!("role `{}`", role.name)));
            }
            if !*create_only && !exists {
                return Err(DomainError::NotFound(format!("role `{}`", role.name)));
            }
            Ok(vec![Event::ProjectRoleSaved {
                project_key: project_key.clone(),
                role: role.clone(),
            }])
        }
        Command::DeleteProjectRole { project_key, role } => {
            let p = project_must_exist(state, project_key)?;
            if !p.roles.contains_key(role) {
                if p.role(role).is_some() {
                    return Err(DomainError::invalid(
                        "role",
                        "predefined roles cannot be deleted",
                    ));
                }
                return Err(DomainError::NotFound(format!("role `{role}`")));
            }
            Ok(vec![Event::ProjectRoleDeleted {
                project_key: project_key.clone(),
                role: role.clone(),
            }])
        }
        Command::SetProjectMember {
            project_key,
            kind,
            name,
            roles,
        } => {
            let p = project_must_exist(state, project_key)?;
            if kind == "group" {
                group_must_exist(name)?;
            } else {
                user_must_exist(name)?;
            }
            if roles.is_empty() {
                return Err(DomainError::invalid("roles", "give at least one role"));
            }
            for (i, r) in roles.iter().enumerate() {
                if p.role(r).is_none() {
                    return Err(DomainError::invalid(
                        format!("roles[{i}]"),
                        format!("project `{project_key}` has no role `{r}`"),
                    ));
                }
            }
            Ok(vec![Event::ProjectMemberSaved {
                project_key: project_key.clone(),
                kind: kind.clone(),
                name: name.clone(),
                roles: dedup(roles.clone()),
            }])
        }
        Command::RemoveProjectMember {
            project_key,
            kind,
            name,
        } => {
            let p = project_must_exist(state, project_key)?;
            let members = if kind == "group" { &p.groups } else { &p.users };
            if !members.contains_key(name) {
                return Err(DomainError::NotFound(format!(
                    "{kind} `{name}` in project `{project_key}`"
                )));
            }
            Ok(vec![Event::ProjectMemberRemoved {
                project_key: project_key.clone(),
                kind: kind.clone(),
                name: name.clone(),
            }])
        }
        Command::AttachRepository {
            repo,
            project_key,
            force,
        } => {
            let r = repository_must_exist(state, repo)?;
            project_must_exist(state, project_key)?;
            match &r.project {
                Some(p) if p == project_key => Ok(vec![]),
                Some(p) if !*force => Err(DomainError::Conflict(format!(
                    "repository `{repo}` is assigned to project `{p}`; move it with force=true"
                ))),
                _ => Ok(vec![Event::RepositoryAttached {
                    repo: repo.clone(),
                    project_key: project_key.clone(),
                }]),
            }
        }
        Command::UnassignRepository { repo } => {
            let r = repository_must_exist(state, repo)?;
            if r.project.is_none() {
                return Err(DomainError::NotFound(format!(
                    "a project assignment of repository `{repo}`"
                )));
            }
            Ok(vec![Event::RepositoryUnassigned { repo: repo.clone() }])
        }
        Command::ShareRepository { repo, project_key } => {
            let r = repository_must_exist(state, repo)?;
            let Some(owner) = &r.project else {
                return Err(DomainError::invalid(
                    "repo_name",
                    format!("repository `{repo}` is not assigned to a project; attach it first"),
                ));
            };
            if let Some(p) = project_key {
                project_must_exist(state, p)?;
                if p == owner {
                    return Err(DomainError::invalid(
                        "target_project_key",
                        format!("repository `{repo}` already belongs to project `{p}`"),
                    ));
                }
            }
            Ok(vec![Event::RepositoryShared {
                repo: repo.clone(),
                project_key: project_key.clone(),
            }])
        }
        Command::UnshareRepository { repo, project_key } => {
            let r = repository_must_exist(state, repo)?;
            let shared = match project_key {
                Some(p) => r.shared_with.contains(p),
                None => r.shared_with_all,
            };
            if !shared {
                return Err(DomainError::NotFound(format!(
                    "a share of repository `{repo}` with {}",
                    project_key
                        .as_ref()
                        .map(|p| format!("project `{p}`"))
                        .unwrap_or_else(|| "all projects".into())
                )));
            }
            Ok(vec![Event::RepositoryUnshared {
                repo: repo.clone(),
                project_key: project_key.clone(),
            }])
        }
        Command::SaveAccessKey { key, create_only } => {
            let name = gatehouse_projections::access_key_username(&key.org, &key.id);
            let exists = state.access_keys.keys.contains_key(&name);
            if *create_only && exists {
                return Err(DomainError::AlreadyExists(format!("access key `{name}`")));
            }
            if !*create_only && !exists {
                return Err(DomainError::NotFound(format!("access key `{name}`")));
            }
            if dir.users.contains_key(&name) {
                return Err(DomainError::Conflict(format!(
                    "`{name}` is the name of a user: access keys and users sign in by the same names"
                )));
            }
            Ok(vec![Event::AccessKeySaved(key.clone())])
        }
        Command::DeleteAccessKey { org, id } => {
            let name = gatehouse_projections::access_key_username(org, id);
            if !state.access_keys.keys.contains_key(&name) {
                return Err(DomainError::NotFound(format!("access key `{name}`")));
            }
            Ok(vec![Event::AccessKeyDeleted {
                org: org.clone(),
                id: id.clone(),
            }])
        }
        Command::SaveEntitlement {
            entitlement,
            create_only,
        } => {
            let e = entitlement;
            let existing = state.access_keys.entitlements.get(&e.id);
            if *create_only && existing.is_some() {
                return Err(DomainError::AlreadyExists(format!(
                    "entitlement `{}`",
                    e.id
                )));
            }
            if !*create_only && existing.is_none_or(|x| x.entitlement.org != e.org) {
                return Err(DomainError::NotFound(format!("entitlement `{}`", e.id)));
            }
            for (i, k) in e.access_keys.iter().enumerate() {
                let name = gatehouse_projections::access_key_username(&e.org, k);
                if !state.access_keys.keys.contains_key(&name) {
                    return Err(DomainError::invalid(
                        format!("access_keys[{i}]"),
                        format!("org `{}` has no access key `{k}`", e.org),
                    ));
                }
            }
            Ok(vec![Event::EntitlementSaved(e.clone())])
        }
        Command::DeleteEntitlement { org, id } => {
            if !state
                .access_keys
                .entitlements
                .get(id)
                .is_some_and(|e| &e.entitlement.org == org)
            {
                return Err(DomainError::NotFound(format!("entitlement `{id}`")));
            }
            Ok(vec![Event::EntitlementDeleted {
                org: org.clone(),
                id: id.clone(),
            }])
        }
        Command::ScimSaveUser {
            username,
            create,
            changes,
            attributes,
            rename_to,
            if_match,
        } => {
            let mut events = Vec::new();
            if let Some(new) = create {
                events.extend(decide(state, &Command::CreateUser(new.clone()))?);
            } else {
                let user = dir
                    .users
                    .get(username)
                    .ok_or_else(|| DomainError::NotFound(format!("user `{username}`")))?;
                check_version(*if_match, user.updated_seq)?;
                events.extend(decide(
                    state,
                    &Command::UpdateUser {
                        username: username.clone(),
                        changes: changes.clone(),
                    },
                )?);
            }
            if create.is_some() && changes.status == Some(UserStatus::Disabled) {
                events.push(Event::UserUpdated(UserUpdated {
                    username: username.clone(),
                    status: Some(UserStatus::Disabled),
                    ..Default::default()
                }));
            }
            // Unchanged attributes are not written again.
            let unchanged = create.is_none()
                && dir.users.get(username).and_then(|u| u.scim.as_deref())
                    == Some(attributes.as_str());
            if !unchanged {
                events.push(Event::UserScimSaved {
                    username: username.clone(),
                    attributes: attributes.clone(),
                });
            }
            if let Some(to) = rename_to.as_ref().filter(|t| *t != username) {
                let own_id = dir.scim_ids.get(to).is_some_and(|n| n == username);
                if dir.users.contains_key(to) || (dir.scim_ids.contains_key(to) && !own_id) {
                    return Err(DomainError::AlreadyExists(format!("user `{to}`")));
                }
                if state.access_keys.keys.contains_key(to) {
                    return Err(DomainError::Conflict(format!(
                        "`{to}` is the name of an access key"
                    )));
                }
                events.push(Event::UserRenamed {
                    from: username.clone(),
                    to: to.clone(),
                });
            }
            Ok(events)
        }
        Command::ScimSaveGroup {
            name,
            create,
            members,
            attributes,
            if_match,
        } => {
            let mut events = Vec::new();
            match create {
                Some(new) => events.extend(decide(state, &Command::CreateGroup(new.clone()))?),
                None => {
                    let g = dir
                        .groups
                        .get(name)
                        .ok_or_else(|| DomainError::NotFound(format!("group `{name}`")))?;
                    check_version(*if_match, g.updated_seq)?;
                    if let Some(wanted) = members {
                        for (i, m) in wanted.iter().enumerate() {
                            if !dir.users.contains_key(m) {
                                return Err(DomainError::invalid(
                                    format!("members[{i}]"),
                                    format!("user `{m}` does not exist"),
                                ));
                            }
                        }
                        let added: Vec<String> = wanted
                            .iter()
                            .filter(|m| !g.members.contains(*m))
                            .cloned()
                            .collect();
                        let removed: Vec<String> = g
                            .members
                            .iter()
                            .filter(|m| !wanted.contains(m))
                            .cloned()
                            .collect();
                        if !added.is_empty() || !removed.is_empty() {
                            events.push(Event::GroupMembersChanged {
                                group: name.clone(),
                                added: dedup(added),
                                removed,
                            });
                        }
                    }
                }
            }
            events.push(Event::GroupScimSaved {
                name: name.clone(),
                attributes: attributes.clone(),
            });
            Ok(events)
        }
        Command::ScimDelete {
            group,
            name,
            if_match,
        } => {
            let version = if *group {
                dir.groups.get(name).map(|g| g.updated_seq)
            } else {
                dir.users.get(name).map(|u| u.updated_seq)
            };
            let what = if *group { "group" } else { "user" };
            let version =
                version.ok_or_else(|| DomainError::NotFound(format!("{what} `{name}`")))?;
            check_version(*if_match, version)?;
            Ok(vec![if *group {
                Event::GroupDeleted { name: name.clone() }
            } else {
                Event::UserDeleted {
                    username: name.clone(),
                }
            }])
        }
        Command::SaveSubscription {
            subscription,
            create_only,
        } => {
            let exists = state.subscriptions.contains_key(&subscription.key);
            if *create_only && exists {
                return Err(DomainError::AlreadyExists(format!(
                    "subscription `{}`",
                    subscription.key
                )));
            }
            if !*create_only && !exists {
                return Err(DomainError::NotFound(format!(
                    "subscription `{}`",
                    subscription.key
                )));
            }
            Ok(vec![Event::SubscriptionSaved(subscription.clone())])
        }
        Command::DeleteSubscription { key } => {
            if !state.subscriptions.contains_key(key) {
                return Err(DomainError::NotFound(format!("subscription `{key}`")));
            }
            Ok(vec![Event::SubscriptionDeleted { key: key.clone() }])
        }
        Command::SaveFederationTarget {
            target,
            create_only,
        } => {
            let exists = state.federation.targets.contains_key(&target.name);
            if *create_only && exists {
                return Err(DomainError::AlreadyExists(format!(
                    "federation target `{}`",
                    target.name
                )));
            }
            if !*create_only && !exists {
                return Err(DomainError::NotFound(format!(
                    "federation target `{}`",
                    target.name
                )));
            }
            Ok(vec![Event::FederationTargetSaved(target.clone())])
        }
        Command::DeleteFederationTarget { name } => {
            if !state.federation.targets.contains_key(name) {
                return Err(DomainError::NotFound(format!("federation target `{name}`")));
            }
            Ok(vec![Event::FederationTargetDeleted { name: name.clone() }])
        }
        Command::RecordBroadcast {
            target,
            position,
            entities,
        } => {
            if !state.federation.targets.contains_key(target) {
                return Err(DomainError::NotFound(format!(
                    "federation target `{target}`"
                )));
            }
            Ok(vec![Event::FederationBroadcastDone {
                target: target.clone(),
                position: *position,
                entities: *entities,
            }])
        }
        Command::ApplyReplicated { source, changes } => {
            let own = state.service_id.as_deref().unwrap_or_default();
            // Versions written by earlier changes of this same batch.
            let mut batch: BTreeMap<(&str, &str), &gatehouse_schemas::EntityVersion> =
                BTreeMap::new();
            let mut events = Vec::new();
            for c in changes {
                let (entity, name) = c.entity();
                if c.version.origin == own || (entity == "user" && name == UNFEDERATED_USER) {
                    continue;
                }
                let newer = match batch.get(&(entity, name)) {
                    Some(v) => c.version > **v,
                    None => match state.federation.versions.get(entity, name) {
                        // Swept by a full broadcast: the same version brings it back.
                        Some(r) if r.swept => c.version >= r.version,
                        Some(r) => c.version > r.version,
                        None => state.version_of(entity, name).is_none_or(|v| c.version > v),
                    },
                };
                if !newer {
                    continue;
                }
                batch.insert((entity, name), &c.version);
                let (source, version) = (source.clone(), c.version.clone());
                events.push(match &c.change {
                    Replicated::User(user) => Event::UserReplicated {
                        source,
                        version,
                        user: user.clone(),
                    },
                    Replicated::Group(group) => Event::GroupReplicated {
                        source,
                        version,
                        group: group.clone(),
                    },
                    Replicated::Permission(target) => Event::PermissionReplicated {
                        source,
                        version,
                        target: Box::new(target.clone()),
                    },
                    Replicated::Token { issuer, token } => Event::TokenReplicated {
                        source,
                        version,
                        issuer: issuer.clone(),
                        token: Box::new(token.clone()),
                    },
                    Replicated::Removed { entity, name } => Event::ReplicaRemoved {
                        source,
                        version,
                        entity: entity.clone(),
                        name: name.clone(),
                        swept: false,
                    },
                });
            }
            Ok(events)
        }
        Command::EndBroadcast {
            source,
            since,
            names,
        } => {
            let mut events = Vec::new();
            for (entity, name, rec) in state.federation.versions.iter() {
                if rec.removed || rec.applied_seq > *since || rec.source.as_ref() != Some(source) {
                    continue;
                }
                let Some(kept) = names.get(entity) else {
                    // Not part of this broadcast (no longer selected): left as it is.
                    continue;
                };
                if !kept.contains(name) {
                    events.push(Event::ReplicaRemoved {
                        source: source.clone(),
                        version: rec.version.clone(),
                        entity: entity.to_string(),
                        name: name.to_string(),
                        swept: true,
                    });
                }
            }
            Ok(events)
        }
        Command::RecordCheckpoint(c) => {
            if c.position > state.seq {
                return Err(DomainError::invalid(
                    "position",
                    "a checkpoint cannot be ahead of the log",
                ));
            }
            if state
                .checkpoints
                .last()
                .is_some_and(|l| l.position >= c.position)
            {
                return Ok(vec![]);
            }
            Ok(vec![Event::CheckpointSigned(c.clone())])
        }
        Command::ReplaceSignedUrlKey { version } => {
            if *version != state.keys.signed_url_version + 1 {
                return Err(DomainError::invalid(
                    "version",
                    "the signed-URL key was replaced concurrently; try again",
                ));
            }
            Ok(vec![Event::SignedUrlKeyReplaced { version: *version }])
        }
    }
}

/// `If-Match` against a resource's version (the position of its last change).
fn check_version(if_match: Option<u64>, current: u64) -> Result<(), DomainError> {
    match if_match {
        Some(v) if v != current => Err(DomainError::PreconditionFailed(format!(
            "the resource is at version {current}, not {v}"
        ))),
        _ => Ok(()),
    }
}

fn repository_must_exist<'a>(
    state: &'a State,
    key: &str,
) -> Result<&'a gatehouse_projections::RepositoryRecord, DomainError> {
    state
        .repositories
        .by_key
        .get(key)
        .ok_or_else(|| DomainError::NotFound(format!("repository `{key}`")))
}

fn project_must_exist<'a>(
    state: &'a State,
    key: &str,
) -> Result<&'a gatehouse_projections::ProjectRecord, DomainError> {
    state
        .projects
        .by_key
        .get(key)
        .ok_or_else(|| DomainError::NotFound(format!("project `{key}`")))
}

/// A token acts for an existing, enabled user, or for a transient subject that has no
/// user record here (only admins issue those, and never with the user scope).
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

/// The seed's rules for `{add, remove}` bodies: a name may not be in both lists and every
/// name must exist. (Both lists missing is rejected by the HTTP layer, which sees the body.)
fn check_add_remove(
    add: &[String],
    remove: &[String],
    what: &str,
    exists: impl Fn(&str) -> bool,
) -> Result<(), DomainError> {
    if let Some(both) = add.iter().find(|a| remove.contains(a)) {
        return Err(DomainError::invalid(
            "add",
            format!("{what} `{both}` is in both `add` and `remove`"),
        ));
    }
    for (field, list) in [("add", add), ("remove", remove)] {
        for (i, name) in list.iter().enumerate() {
            if !exists(name) {
                return Err(DomainError::invalid(
                    format!("{field}[{i}]"),
                    format!("{what} `{name}` does not exist"),
                ));
            }
        }
    }
    Ok(())
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    v.retain(|x| seen.insert(x.clone()));
    v
}

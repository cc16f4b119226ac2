//! The domain: commands, their validation, and `decide`.
//!
//! `decide(&State, &Command) -> Result<Vec<Event>, DomainError>` is pure: no clock, no
//! randomness, no I/O. Whatever it needs that is not in the state (a password hash, a new
//! service id) is computed before and carried in the command. That is what lets the
//! writer run it in a tight loop and what keeps replay deterministic.
//!
//! `enum Command` below is the catalogue of everything that can be asked; `decide` only
//! routes each command to the part of the model it is about, one file each: `directory`
//! (service, users, groups, SCIM), `tokens`, `keys` (signing, trusted, pairing, signed
//! URLs), `permissions` (targets and repositories), `projects`, `access_keys`,
//! `subscriptions`, `federation`, `checkpoints`, `ldap`.

mod access_keys;
mod checkpoints;
mod directory;
mod federation;
mod keys;
pub mod ldap;
mod names;
mod permissions;
mod projects;
pub mod settings;
mod subscriptions;
mod tokens;

pub use directory::{
    with_member_displays, GroupChanges, NewGroup, NewUser, UserChanges, MEMBER_DISPLAYS,
};
pub use federation::{unfederated_user, Replicated, ReplicatedChange};
pub use names::default_password_policy;
pub use names::{
    fit_text, normalize_environment, normalize_key_part, normalize_username, validate_display_name,
    validate_email, validate_group_name, validate_new_name, validate_password,
    validate_project_key, validate_repo_key, validate_text, REPOSITORY_CLASSES,
};
pub use permissions::{keep_repository_patterns, managed_sections, manages, normalize_target};
pub use projects::{normalize_role, role_names_ignoring_case};
pub use settings::SettingChange;

use gatehouse_projections::State;
use gatehouse_schemas::{Event, TokenIssued};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

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
    /// The caller may not make this change (403).
    #[error("{0}")]
    Forbidden(String),
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

/// What a read-change-write handler (a PATCH, a PUT of one part) read of the entity it
/// changes. Its command applies only while the entity is still so: two such requests at
/// once both answered 200 and the later write undid the other's change (a key's allowed
/// networks, a target's users), or brought back what a DELETE had just removed.
#[derive(Debug, Clone)]
pub enum AsRead {
    /// Boxed: a target is several times the size of the others.
    PermissionTarget(String, Option<Box<gatehouse_schemas::PermissionTarget>>),
    /// By the name the key signs in with (`id@org`).
    AccessKey(String, Option<gatehouse_schemas::AccessKey>),
    Entitlement(String, Option<gatehouse_schemas::Entitlement>),
    Project(String, Option<gatehouse_schemas::Project>),
    Repository(String, Option<gatehouse_schemas::Repository>),
    /// A user's stored (sealed) e-mail: an update that left out an e-mail equal to the
    /// one read (sealed again it looked like a change) must not drop one written since.
    UserEmail(String, Option<String>),
    /// The user of that name is the one read (its `created_seq`): a value sealed with
    /// its key must not land on a user made since under the same name (after a purge,
    /// under a key destroyed with the old one).
    UserCreated(String, u64),
}

impl AsRead {
    fn holds(&self, state: &State) -> bool {
        match self {
            AsRead::PermissionTarget(name, was) => {
                state.permissions.targets.get(name).map(|t| &**t) == was.as_deref()
            }
            AsRead::AccessKey(name, was) => {
                state.access_keys.keys.get(name).map(|r| &r.key) == was.as_ref()
            }
            AsRead::Entitlement(id, was) => {
                state
                    .access_keys
                    .entitlements
                    .get(id)
                    .map(|r| &r.entitlement)
                    == was.as_ref()
            }
            AsRead::Project(key, was) => {
                state.projects.by_key.get(key).map(|p| &p.config) == was.as_ref()
            }
            AsRead::Repository(key, was) => {
                state.repositories.by_key.get(key).map(|r| &r.config) == was.as_ref()
            }
            AsRead::UserEmail(name, was) => state
                .directory
                .users
                .get(name.as_str())
                .is_some_and(|u| u.email == *was),
            AsRead::UserCreated(name, seq) => state
                .directory
                .users
                .get(name.as_str())
                .is_some_and(|u| u.created_seq == *seq),
        }
    }
}

/// Everything that can be asked of the writer.
#[derive(Debug, Clone)]
pub enum Command {
    /// `command`, only while what the handler read still holds ([`AsRead`]); else
    /// [`DomainError::PreconditionFailed`], and the handler reads again
    /// (`http::read_change_write`).
    IfUnchanged {
        read: AsRead,
        command: Box<Command>,
    },
    /// First start: the service identity and the `admin` user. A no-op on a log that has one.
    InitializeService {
        service_id: String,
        admin_password_hash: String,
    },
    SetAnonymousAccess {
        enabled: bool,
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
        /// The group's `meta.version` a SCIM client last saw (`If-Match`).
        if_match: Option<u64>,
        /// A SCIM PATCH's displays of members, by `created_seq`: set (sealed) or dropped.
        displays: Vec<(u64, Option<String>)>,
    },
    /// The token is already signed; the command carries only its record (hashes).
    IssueToken(Arc<TokenIssued>),
    RefreshToken {
        old_token_id: String,
        issued: Arc<TokenIssued>,
    },
    /// A no-op for an unknown id (the seed answers 204 then).
    RevokeToken {
        token_id: String,
    },
    /// Forget the records of tokens past use at `now` (unix seconds): expired, and a
    /// refreshable one also past `grace` seconds after (the refresh grace period). Ids
    /// that are gone or still usable are skipped.
    ExpireTokens {
        token_ids: Vec<String>,
        now: u64,
        grace: u64,
    },
    AddSigningKey {
        kid: String,
        public_key: String,
    },
    /// A new signing key that replaces every earlier one (they stop verifying tokens).
    ResetSigningKeys {
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
        /// An organisation's own key; `None`: the server-wide default.
        org: Option<String>,
    },
    /// Create (`create_only`) or create-or-replace a permission target.
    SavePermissionTarget {
        target: gatehouse_schemas::PermissionTarget,
        create_only: bool,
    },
    DeletePermissionTarget {
        name: String,
    },
    /// A non-admin holding `manage` on the target changes its members' actions.
    SavePermissionTargetAsManager {
        target: gatehouse_schemas::PermissionTarget,
        manager: String,
        /// Whether the manager's credentials carry its own grants, and the groups they
        /// carry (a token scoped to some groups manages only through those).
        own_grants: bool,
        groups: Vec<String>,
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
    /// Create (`create_only`) or update a global role (`CUSTOM_GLOBAL`).
    SaveGlobalRole {
        role: gatehouse_schemas::ProjectRole,
        create_only: bool,
    },
    DeleteGlobalRole {
        name: String,
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
        /// A replace's `externalId` (`None`: none), kept as the group's own `external_id`,
        /// which the v2 API shows too; a create's is in `create`.
        external_id: Option<String>,
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
    /// A security setting, whole (see `settings.rs`).
    ChangeSetting(SettingChange),
    /// Lift the expiry of a password without changing it.
    UnexpirePassword {
        username: String,
    },
    /// Expire the passwords of these users, or of every user with one (`None`) but
    /// `except` (the admin who asks).
    ExpirePasswords {
        usernames: Option<Vec<String>>,
        except: Option<String>,
    },
    /// Lift the expiry of these users' passwords, or of every expired one (`None`),
    /// judged at `now_ms` against the expiration policy.
    UnexpirePasswords {
        usernames: Option<Vec<String>>,
        now_ms: u64,
    },
    /// Unlock these users (unknown ones skipped), or every locked one (`None`).
    UnlockUsers {
        usernames: Option<Vec<String>>,
    },
    /// Record a peer's key from a pairing; with `pairing_token_id`, also use up that
    /// (single-use) pairing token in the same commit.
    CompletePairing {
        pairing_token_id: Option<String>,
        use_case: String,
        service_id: String,
        kid: String,
        public_key: String,
        base_url: Option<String>,
        /// The master token minted for the peer (on the side that issued the pairing token).
        master: Option<Arc<TokenIssued>>,
    },
    /// An LDAP setting, whole (the manager password already sealed).
    SaveLdapSetting(gatehouse_schemas::LdapSetting),
    DeleteLdapSetting {
        key: String,
    },
    SaveLdapGroupSetting(gatehouse_schemas::LdapGroupSetting),
    DeleteLdapGroupSetting {
        name: String,
    },
    /// A directory sign-in succeeded (see `ldap.rs`).
    LdapSignedIn(ldap::LdapSignIn),
    /// Import a directory's groups (see `ldap.rs`).
    SyncLdapGroups {
        groups: Vec<ldap::DirectoryGroup>,
        operation: ldap::SyncOperation,
        only_user: Option<String>,
        /// Where the directory was searched (see `ldap::ListedFrom`).
        listed_from: Option<ldap::ListedFrom>,
    },
}

/// The realm of users and groups created through this server's own API.
pub const INTERNAL_REALM: &str = "internal";

pub fn decide(state: &State, command: &Command) -> Result<Vec<Event>, DomainError> {
    let events = decide_command(state, command)?;
    // Changes an admin makes through the APIs never leave the server without an admin
    // who can sign in: the only admin demoted itself, or switched its password off, and
    // nothing could undo it. (Directory syncs and federation are the source's to say.)
    let guarded = matches!(
        command,
        Command::UpdateUser { .. }
            | Command::DeleteUser { .. }
            | Command::ChangeUserGroups { .. }
            | Command::UpdateGroup { .. }
            | Command::DeleteGroup { .. }
            | Command::ChangeGroupMembers { .. }
            | Command::ScimSaveUser { .. }
            | Command::ScimSaveGroup { .. }
            | Command::ScimDelete { .. }
            | Command::IfUnchanged { .. }
    );
    if guarded && directory::takes_admins_away(state, &events) {
        directory::keeps_an_admin(state, &events)?;
    }
    Ok(events)
}

fn decide_command(state: &State, command: &Command) -> Result<Vec<Event>, DomainError> {
    match command {
        Command::IfUnchanged { read, command } => {
            if !read.holds(state) {
                return Err(DomainError::PreconditionFailed(
                    "it changed while this request was made".into(),
                ));
            }
            decide(state, command)
        }
        Command::InitializeService {
            service_id,
            admin_password_hash,
        } => directory::initialize_service(state, service_id, admin_password_hash),
        Command::SetAnonymousAccess { enabled } => directory::set_anonymous_access(state, *enabled),
        Command::CreateUser(u) => directory::create_user(state, u),
        Command::UpdateUser { username, changes } => {
            directory::update_user(state, username, changes)
        }
        Command::DeleteUser { username } => directory::delete_user(state, username),
        Command::ChangePassword {
            username,
            password_hash,
        } => directory::change_password(state, username, password_hash),
        Command::ExpirePassword { username } => directory::expire_password(state, username),
        Command::LockUser { username } => directory::lock_user(state, username),
        Command::UnlockUser { username } => directory::unlock_user(state, username),
        Command::ChangeUserGroups {
            username,
            add,
            remove,
        } => directory::change_user_groups(state, username, add, remove),
        Command::CreateGroup(g) => directory::create_group(state, g),
        Command::UpdateGroup { name, changes } => directory::update_group(state, name, changes),
        Command::DeleteGroup { name } => directory::delete_group(state, name),
        Command::ChangeGroupMembers {
            group,
            add,
            remove,
            if_match,
            displays,
        } => directory::change_group_members(state, group, add, remove, *if_match, displays),
        Command::ScimSaveUser {
            username,
            create,
            changes,
            attributes,
            rename_to,
            if_match,
        } => directory::scim_save_user(
            state,
            username,
            create.as_ref(),
            changes,
            attributes,
            rename_to.as_deref(),
            *if_match,
        ),
        Command::ScimSaveGroup {
            name,
            create,
            members,
            external_id,
            attributes,
            if_match,
        } => directory::scim_save_group(
            state,
            name,
            create.as_ref(),
            members.as_deref(),
            external_id.as_deref(),
            attributes,
            *if_match,
        ),
        Command::ScimDelete {
            group,
            name,
            if_match,
        } => directory::scim_delete(state, *group, name, *if_match),
        Command::IssueToken(t) => tokens::issue(state, t),
        Command::RefreshToken {
            old_token_id,
            issued,
        } => tokens::refresh(state, old_token_id, issued),
        Command::RevokeToken { token_id } => tokens::revoke(state, token_id),
        Command::ExpireTokens {
            token_ids,
            now,
            grace,
        } => Ok(tokens::expire(state, token_ids, *now, *grace)),
        Command::AddSigningKey { kid, public_key } => keys::add_signing_key(state, kid, public_key),
        Command::ResetSigningKeys { kid, public_key } => {
            keys::reset_signing_keys(state, kid, public_key)
        }
        Command::AddTrustedKey {
            name,
            kid,
            public_key,
        } => keys::add_trusted_key(state, name, kid, public_key),
        Command::RemoveTrustedKey { name } => keys::remove_trusted_key(state, name),
        Command::CompletePairing {
            pairing_token_id,
            use_case,
            service_id,
            kid,
            public_key,
            base_url,
            master,
        } => keys::complete_pairing(
            state,
            pairing_token_id.as_deref(),
            use_case,
            service_id,
            kid,
            public_key,
            base_url.as_deref(),
            master.as_ref(),
        ),
        Command::ReplaceSignedUrlKey { version, org } => {
            keys::replace_signed_url_key(state, *version, org.as_deref())
        }
        Command::SavePermissionTarget {
            target,
            create_only,
        } => permissions::save_target(state, target, *create_only),
        Command::DeletePermissionTarget { name } => permissions::delete_target(state, name),
        Command::SavePermissionTargetAsManager {
            target,
            manager,
            own_grants,
            groups,
        } => permissions::save_target_as_manager(state, target, manager, *own_grants, groups),
        Command::SaveRepository(r) => permissions::save_repository(state, r),
        Command::DeleteRepository { key } => permissions::delete_repository(state, key),
        Command::SaveProject {
            project,
            create_only,
        } => projects::save(state, project, *create_only),
        Command::DeleteProject { project_key } => projects::delete(state, project_key),
        Command::SaveProjectRole {
            project_key,
            role,
            create_only,
        } => projects::save_role(state, project_key, role, *create_only),
        Command::DeleteProjectRole { project_key, role } => {
            projects::delete_role(state, project_key, role)
        }
        Command::SaveGlobalRole { role, create_only } => {
            projects::save_global_role(state, role, *create_only)
        }
        Command::DeleteGlobalRole { name } => projects::delete_global_role(state, name),
        Command::SetProjectMember {
            project_key,
            kind,
            name,
            roles,
        } => projects::set_member(state, project_key, kind, name, roles),
        Command::RemoveProjectMember {
            project_key,
            kind,
            name,
        } => projects::remove_member(state, project_key, kind, name),
        Command::AttachRepository {
            repo,
            project_key,
            force,
        } => projects::attach_repository(state, repo, project_key, *force),
        Command::UnassignRepository { repo } => projects::unassign_repository(state, repo),
        Command::ShareRepository { repo, project_key } => {
            projects::share_repository(state, repo, project_key.as_deref())
        }
        Command::UnshareRepository { repo, project_key } => {
            projects::unshare_repository(state, repo, project_key.as_deref())
        }
        Command::SaveAccessKey { key, create_only } => access_keys::save(state, key, *create_only),
        Command::DeleteAccessKey { org, id } => access_keys::delete(state, org, id),
        Command::SaveEntitlement {
            entitlement,
            create_only,
        } => access_keys::save_entitlement(state, entitlement, *create_only),
        Command::DeleteEntitlement { org, id } => access_keys::delete_entitlement(state, org, id),
        Command::SaveSubscription {
            subscription,
            create_only,
        } => subscriptions::save(state, subscription, *create_only),
        Command::DeleteSubscription { key } => subscriptions::delete(state, key),
        Command::SaveFederationTarget {
            target,
            create_only,
        } => federation::save_target(state, target, *create_only),
        Command::DeleteFederationTarget { name } => federation::delete_target(state, name),
        Command::RecordBroadcast {
            target,
            position,
            entities,
        } => federation::record_broadcast(state, target, *position, *entities),
        Command::ApplyReplicated { source, changes } => {
            federation::apply_replicated(state, source, changes)
        }
        Command::EndBroadcast {
            source,
            since,
            names,
        } => federation::end_broadcast(state, source, *since, names),
        Command::RecordCheckpoint(c) => checkpoints::record(state, c),
        Command::ChangeSetting(change) => settings::change(state, change),
        Command::UnexpirePassword { username } => settings::unexpire_password(state, username),
        Command::ExpirePasswords { usernames, except } => {
            settings::expire_passwords(state, usernames.as_deref(), except.as_deref())
        }
        Command::UnexpirePasswords { usernames, now_ms } => {
            settings::unexpire_passwords(state, usernames.as_deref(), *now_ms)
        }
        Command::UnlockUsers { usernames } => settings::unlock_users(state, usernames.as_deref()),
        Command::SaveLdapSetting(s) => ldap::save_setting(state, s),
        Command::DeleteLdapSetting { key } => ldap::delete_setting(state, key),
        Command::SaveLdapGroupSetting(g) => ldap::save_group_setting(state, g),
        Command::DeleteLdapGroupSetting { name } => ldap::delete_group_setting(state, name),
        Command::LdapSignedIn(s) => ldap::signed_in(state, s),
        Command::SyncLdapGroups {
            groups,
            operation,
            only_user,
            listed_from,
        } => ldap::sync_groups(
            state,
            groups,
            *operation,
            only_user.as_deref(),
            listed_from.as_ref(),
        ),
    }
}

// Checks more than one part of the model makes.

fn user_must_exist(state: &State, name: &str) -> Result<(), DomainError> {
    if state.directory.users.contains_key(name) {
        Ok(())
    } else {
        Err(DomainError::NotFound(format!("user `{name}`")))
    }
}

fn group_must_exist(state: &State, name: &str) -> Result<(), DomainError> {
    if state.directory.groups.contains_key(name) {
        Ok(())
    } else {
        Err(DomainError::NotFound(format!("group `{name}`")))
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

fn dedup(mut v: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    v.retain(|x| seen.insert(x.clone()));
    v
}

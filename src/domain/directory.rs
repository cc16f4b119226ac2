//! Decides the directory: the service's first start, users, groups, their passwords,
//! lock state and membership, and the SCIM saves and deletes of users and groups.

use super::{dedup, group_must_exist, user_must_exist, DomainError, INTERNAL_REALM};
use gatehouse_projections::State;
use gatehouse_schemas::{Event, GroupCreated, GroupUpdated, UserCreated, UserStatus, UserUpdated};
use std::collections::BTreeSet;

/// A new user, validated and with its password already hashed.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub username: String,
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub admin: bool,
    pub profile_updatable: bool,
    pub internal_password_disabled: bool,
    pub disable_ui_access: bool,
    pub groups: Vec<String>,
    /// Created `disabled` (a user read from another server and sent back as it was).
    pub disabled: bool,
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
    /// The user's groups, exactly (Artifactory's users API replaces the membership):
    /// decided with the other changes, so a group that does not exist refuses them all.
    pub groups: Option<Vec<String>>,
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

/// First start: the service identity and the `admin` user. A no-op on a log that has one.
pub(super) fn initialize_service(
    state: &State,
    service_id: &str,
    admin_password_hash: &str,
) -> Result<Vec<Event>, DomainError> {
    if state.service_id.is_some() {
        return Ok(vec![]);
    }
    Ok(vec![
        Event::ServiceCreated {
            service_id: service_id.to_string(),
        },
        Event::UserCreated(UserCreated {
            username: "admin".into(),
            email: None,
            password_hash: Some(admin_password_hash.to_string()),
            admin: true,
            profile_updatable: true,
            internal_password_disabled: false,
            disable_ui_access: false,
            realm: INTERNAL_REALM.into(),
            status: UserStatus::Enabled,
            groups: vec![],
            scim: None,
        }),
        anonymous_user(),
    ])
}

/// The built-in `anonymous` user: no password, no UI, disabled until anonymous access
/// is turned on.
fn anonymous_user() -> Event {
    Event::UserCreated(UserCreated {
        username: gatehouse_projections::ANONYMOUS.into(),
        email: None,
        password_hash: None,
        admin: false,
        profile_updatable: false,
        internal_password_disabled: true,
        disable_ui_access: true,
        realm: INTERNAL_REALM.into(),
        status: UserStatus::Disabled,
        groups: vec![],
        scim: None,
    })
}

/// Turn anonymous access on or off (a log written before the `anonymous` user existed
/// gets it now).
pub(super) fn set_anonymous_access(
    state: &State,
    enabled: bool,
) -> Result<Vec<Event>, DomainError> {
    let mut events = Vec::new();
    if !state
        .directory
        .users
        .contains_key(gatehouse_projections::ANONYMOUS)
    {
        events.push(anonymous_user());
    } else if state.directory.anonymous_access == enabled {
        // Sent back as read: nothing to write (each PUT of the same value wrote an event
        // and fired its webhooks), as for every other setting.
        return Ok(vec![]);
    }
    events.push(Event::AnonymousAccessChanged { enabled });
    Ok(events)
}

/// Whether `name` may be a new user's here: a new name (no look-alikes), no user's, no
/// renamed user's SCIM id, no access key's. Local creates and users a federation peer
/// sends both keep it (a peer's user took an access key's name and the key stopped
/// signing in; another took a renamed user's SCIM id, and two resources had one id).
pub(super) fn free_for_new_user(state: &State, name: &str) -> Result<(), DomainError> {
    let dir = &state.directory;
    super::names::validate_new_name("username", name)?;
    if dir.users.contains_key(name) {
        return Err(DomainError::AlreadyExists(format!("user `{name}`")));
    }
    // A renamed user keeps its old name as its SCIM id.
    if dir.scim_ids.contains_key(name) {
        return Err(DomainError::AlreadyExists(format!(
            "a user with SCIM id `{name}`"
        )));
    }
    // Users and access keys sign in by the same name: one namespace. (The other half of
    // the rule is in `access_keys::save`; a SCIM rename checks it too, in `scim_save_user`.)
    if state.access_keys.keys.contains_key(name) {
        return Err(DomainError::AlreadyExists(format!(
            "an access key named `{name}` (users and access keys sign in by the same names)"
        )));
    }
    Ok(())
}

pub(super) fn create_user(state: &State, u: &NewUser) -> Result<Vec<Event>, DomainError> {
    let dir = &state.directory;
    free_for_new_user(state, &u.username)?;
    if u.password_hash.is_none() && !u.internal_password_disabled {
        return Err(DomainError::invalid(
            "password",
            "is required unless `internal_password_disabled` is true",
        ));
    }
    if u.username == gatehouse_projections::ANONYMOUS && u.admin {
        return Err(DomainError::invalid(
            "admin",
            "the anonymous user cannot be an admin",
        ));
    }
    let mut groups = BTreeSet::new();
    for (i, g) in u.groups.iter().enumerate() {
        if !dir.groups.contains_key(g.as_str()) {
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
        status: if u.disabled {
            UserStatus::Disabled
        } else {
            UserStatus::Enabled
        },
        groups: groups.into_iter().collect(),
        scim: None,
    })])
}

pub(super) fn update_user(
    state: &State,
    username: &str,
    changes: &UserChanges,
) -> Result<Vec<Event>, DomainError> {
    let user = state
        .directory
        .users
        .get(username)
        .ok_or_else(|| DomainError::NotFound(format!("user `{username}`")))?;
    // The built-in anonymous user is never an admin (authorize never judges it one; its
    // record said it was).
    if username == gatehouse_projections::ANONYMOUS && changes.admin == Some(true) {
        return Err(DomainError::invalid(
            "admin",
            "the anonymous user cannot be an admin",
        ));
    }
    // Nor does it sign in: it is who a request without credentials acts as (given a
    // password, it signed in — and got tokens — while anonymous access was off).
    if username == gatehouse_projections::ANONYMOUS
        && (changes.password_hash.is_some() || changes.internal_password_disabled == Some(false))
    {
        return Err(DomainError::invalid(
            "password",
            "the anonymous user has no password (it is who requests without credentials act as)",
        ));
    }
    if let Some(status) = changes.status {
        if !matches!(status, UserStatus::Enabled | UserStatus::Disabled) {
            return Err(DomainError::invalid(
                "status",
                "can only be set to `enabled` or `disabled` (use the unlock endpoint for locked users)",
            ));
        }
    }
    let enabling_password =
        changes.internal_password_disabled == Some(false) && user.internal_password_disabled;
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
    // A field set to what it is already is no change (it wrote an event, sent a webhook
    // and showed in `audit/diff`).
    let changed = |new: Option<bool>, now: bool| new.filter(|v| *v != now);
    let update = UserUpdated {
        username: username.to_string(),
        email: changes.email.clone(),
        admin: changed(changes.admin, user.admin),
        profile_updatable: changed(changes.profile_updatable, user.profile_updatable),
        internal_password_disabled: changed(
            changes.internal_password_disabled,
            user.internal_password_disabled,
        ),
        disable_ui_access: changed(changes.disable_ui_access, user.disable_ui_access),
        // Only `unlock` unlocks: `enabled` (a v2 PATCH, SCIM's `active: true`, which
        // an IdP sends with every profile push) leaves a locked user locked, or each
        // sync would hand a password guesser a fresh set of tries.
        status: changes
            .status
            .filter(|s| *s != user.status)
            .filter(|s| !(user.status == UserStatus::Locked && *s == UserStatus::Enabled)),
    };
    // An empty PATCH changes nothing and writes nothing.
    if update
        != (UserUpdated {
            username: username.to_string(),
            ..Default::default()
        })
    {
        events.push(Event::UserUpdated(update));
    }
    if let Some(hash) = &changes.password_hash {
        events.push(Event::UserPasswordChanged {
            username: username.to_string(),
            password_hash: hash.clone(),
        });
    }
    if let Some(groups) = &changes.groups {
        let dir = &state.directory;
        for (i, g) in groups.iter().enumerate() {
            if !dir.groups.contains_key(g.as_str()) {
                return Err(DomainError::invalid(
                    format!("groups[{i}]"),
                    format!("group `{g}` does not exist"),
                ));
            }
        }
        let added: Vec<String> = (groups.iter())
            .filter(|g| !user.groups.contains(*g))
            .cloned()
            .collect();
        let removed: Vec<String> = (user.groups.iter())
            .filter(|g| !groups.contains(g))
            .cloned()
            .collect();
        if !added.is_empty() || !removed.is_empty() {
            events.push(Event::UserGroupsChanged {
                username: username.to_string(),
                added: dedup(added),
                removed: dedup(removed),
            });
        }
    }
    Ok(events)
}

/// The groups a deleted user leaves, as events of each group (the audit trail of a group
/// showed the user joining and never leaving). `UserDeleted` would take it out anyway.
fn groups_left(state: &State, username: &str) -> Vec<Event> {
    let dir = &state.directory;
    dir.users
        .get(username)
        .map(|u| {
            u.groups
                .iter()
                .filter(|g| dir.groups.contains_key(g.as_str()))
                .map(|g| Event::GroupMembersChanged {
                    group: g.to_string(),
                    added: vec![],
                    removed: vec![username.to_string()],
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The rest of a user's deletion is applied with `UserDeleted` (`State::apply`,
/// gatehouse-projections): its tokens, its group memberships and its project
/// memberships go with it. Its grants in permission targets are decided here, as the
/// targets saved without it (`permissions::without_principal`).
/// The built-in anonymous user stays (what requests without credentials act as): it
/// was deleted, then created again as an admin with a password.
fn anonymous_stays(username: &str) -> Result<(), DomainError> {
    if username == gatehouse_projections::ANONYMOUS {
        return Err(DomainError::invalid(
            "username",
            "the built-in anonymous user cannot be deleted (switch anonymous access off instead)",
        ));
    }
    Ok(())
}

pub(super) fn delete_user(state: &State, username: &str) -> Result<Vec<Event>, DomainError> {
    user_must_exist(state, username)?;
    anonymous_stays(username)?;
    let mut events = super::tokens::revocations_of(state, username, false);
    events.extend(groups_left(state, username));
    events.push(Event::UserDeleted {
        username: username.to_string(),
    });
    events.extend(super::permissions::without_principal(
        state, false, username,
    ));
    Ok(events)
}

pub(super) fn change_password(
    state: &State,
    username: &str,
    password_hash: &str,
) -> Result<Vec<Event>, DomainError> {
    let user = state
        .directory
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
        username: username.to_string(),
        password_hash: password_hash.to_string(),
    }])
}

/// A group's realm as stored: Artifactory calls its own realm `artifactory`, here it is
/// `internal`, whichever API says it (the v2 API stored `artifactory`, the Artifactory
/// one `internal`). And a change like another: an LDAP group given `internal` becomes
/// internal.
fn stored_realm(realm: &str) -> String {
    if realm == "artifactory" {
        INTERNAL_REALM.into()
    } else {
        realm.to_string()
    }
}

pub(super) fn expire_password(state: &State, username: &str) -> Result<Vec<Event>, DomainError> {
    user_must_exist(state, username)?;
    let Some(u) = state.directory.users.get(username) else {
        return Ok(vec![]);
    };
    // As the bulk expiry says: a user with no password here could not change one, and
    // expired it could do nothing at all (its tokens stopped).
    if u.password_hash.is_none() || u.internal_password_disabled {
        return Err(DomainError::invalid(
            "username",
            format!(
                "user `{}` has no password here (realm `{}`, or its internal password is disabled): there is none to expire",
                u.username, u.realm
            ),
        ));
    }
    // Expired already: nothing to write (each call wrote another event).
    if u.password_expired {
        return Ok(vec![]);
    }
    Ok(vec![Event::UserPasswordExpired {
        username: username.to_string(),
    }])
}

pub(super) fn lock_user(state: &State, username: &str) -> Result<Vec<Event>, DomainError> {
    let user = state
        .directory
        .users
        .get(username)
        .ok_or_else(|| DomainError::NotFound(format!("user `{username}`")))?;
    if user.status == UserStatus::Locked {
        return Ok(vec![]);
    }
    // The last admin who can still sign in is never locked by failed sign-ins: nobody
    // would be left to unlock it (five tries of an old password locked the only admin
    // for good). The sign-in limits still slow the guesses down.
    let dir = &state.directory;
    if dir.user_is_admin(user)
        && !dir
            .users
            .values()
            .any(|u| u.username != user.username && usable_admin(state, u))
    {
        return Ok(vec![]);
    }
    Ok(vec![Event::UserLocked {
        username: username.to_string(),
    }])
}

pub(super) fn unlock_user(state: &State, username: &str) -> Result<Vec<Event>, DomainError> {
    let user = state
        .directory
        .users
        .get(username)
        .ok_or_else(|| DomainError::NotFound(format!("user `{username}`")))?;
    if user.status != UserStatus::Locked {
        return Ok(vec![]);
    }
    Ok(vec![Event::UserUnlocked {
        username: username.to_string(),
    }])
}

pub(super) fn change_user_groups(
    state: &State,
    username: &str,
    add: &[String],
    remove: &[String],
) -> Result<Vec<Event>, DomainError> {
    let dir = &state.directory;
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
        username: username.to_string(),
        added: dedup(added),
        removed: dedup(removed),
    }])
}

/// A group's free-text fields, whichever API sent them.
fn check_group_text(
    description: Option<&str>,
    realm: Option<&str>,
    realm_attributes: Option<&str>,
    external_id: Option<&str>,
) -> Result<(), DomainError> {
    super::validate_text("description", description, 1024)?;
    super::validate_text("realm", realm, 64)?;
    // A realm names where the group comes from (`internal`, `ldap`, `saml`, …): a blank
    // one was stored and shown as `""`.
    if realm.is_some_and(|r| r.trim().is_empty()) {
        return Err(DomainError::invalid(
            "realm",
            "must not be blank (leave it out for `internal`)",
        ));
    }
    super::validate_text("realm_attributes", realm_attributes, 4096)?;
    super::validate_text("external_id", external_id, 256)
}

/// Whether `events` may take an admin's rights or its way to sign in away (a change of a
/// user who is an admin, of a group with admin privileges, or of their memberships):
/// only then does [`keeps_an_admin`] replay them. Judged against the state, so that the
/// common changes — a SCIM client taking members out of an ordinary group — do not scan
/// every user in the writer.
pub(super) fn takes_admins_away(state: &State, events: &[Event]) -> bool {
    let dir = &state.directory;
    let admin_user = |u: &str| dir.is_admin(u);
    let admin_group = |g: &str| dir.groups.get(g).is_some_and(|g| g.admin_privileges);
    events.iter().any(|e| match e {
        Event::UserUpdated(u) => {
            admin_user(&u.username)
                && (u.admin == Some(false)
                    || u.internal_password_disabled == Some(true)
                    || u.status.is_some())
        }
        Event::GroupUpdated(g) => g.admin_privileges == Some(false) && admin_group(&g.name),
        Event::GroupMembersChanged { group, removed, .. } => {
            !removed.is_empty() && admin_group(group)
        }
        Event::UserGroupsChanged { removed, .. } => removed.iter().any(|g| admin_group(g)),
        Event::UserDeleted { username } => admin_user(username),
        Event::GroupDeleted { name } => admin_group(name),
        _ => false,
    })
}

/// An admin who can sign in: enabled, its password not expired, with a password that is
/// not switched off (an LDAP user signs in through its directory).
fn usable_admin(state: &State, u: &gatehouse_projections::User) -> bool {
    u.username != gatehouse_projections::ANONYMOUS
        && u.status == UserStatus::Enabled
        && !u.password_expired
        && (u.realm == super::ldap::LDAP_REALM
            || (!u.internal_password_disabled && u.password_hash.is_some()))
        && state.directory.user_is_admin(u)
}

fn any_usable_admin(state: &State) -> bool {
    state
        .directory
        .users
        .values()
        .any(|u| usable_admin(state, u))
}

/// Refuse `events` if, applied to `state`, they leave no admin who can sign in where
/// there was one.
pub(super) fn keeps_an_admin(state: &State, events: &[Event]) -> Result<(), DomainError> {
    if !any_usable_admin(state) {
        return Ok(());
    }
    let mut after = state.clone();
    for (i, event) in events.iter().enumerate() {
        after.apply(&gatehouse_schemas::Envelope {
            seq: state.seq + 1 + i as u64,
            time_ms: state.time_ms,
            actor: String::new(),
            origin: String::new(),
            request_id: String::new(),
            event: event.clone(),
        });
    }
    if !any_usable_admin(&after) {
        return Err(DomainError::Conflict(
            "this would leave no admin who can sign in (make another user an admin first)".into(),
        ));
    }
    Ok(())
}

/// An auto-join group with admin privileges would make every new user an admin (JFrog:
/// `autoJoin` "must be false if adminPrivileges is true").
fn check_auto_join_admin(auto_join: bool, admin_privileges: bool) -> Result<(), DomainError> {
    if auto_join && admin_privileges {
        return Err(DomainError::invalid(
            "auto_join",
            "must be false for a group with admin privileges (every new user would be an admin)",
        ));
    }
    Ok(())
}

pub(super) fn create_group(state: &State, g: &NewGroup) -> Result<Vec<Event>, DomainError> {
    super::names::validate_new_name("name", &g.name)?;
    let dir = &state.directory;
    check_auto_join_admin(g.auto_join, g.admin_privileges)?;
    check_group_text(
        g.description.as_deref(),
        g.realm.as_deref(),
        g.realm_attributes.as_deref(),
        g.external_id.as_deref(),
    )?;
    if dir.groups.contains_key(g.name.as_str()) {
        return Err(DomainError::AlreadyExists(format!("group `{}`", g.name)));
    }
    for (i, m) in g.members.iter().enumerate() {
        if !dir.users.contains_key(m.as_str()) {
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
        realm: g
            .realm
            .as_deref()
            .map_or_else(|| INTERNAL_REALM.into(), stored_realm),
        realm_attributes: g.realm_attributes.clone(),
        external_id: g.external_id.clone(),
        members: dedup(g.members.clone()),
    })])
}

pub(super) fn update_group(
    state: &State,
    name: &str,
    changes: &GroupChanges,
) -> Result<Vec<Event>, DomainError> {
    let dir = &state.directory;
    let group = dir
        .groups
        .get(name)
        .ok_or_else(|| DomainError::NotFound(format!("group `{name}`")))?;
    check_auto_join_admin(
        changes.auto_join.unwrap_or(group.auto_join),
        changes.admin_privileges.unwrap_or(group.admin_privileges),
    )?;
    check_group_text(
        changes.description.as_deref(),
        changes.realm.as_deref(),
        changes.realm_attributes.as_deref(),
        changes.external_id.as_deref(),
    )?;
    let mut events = Vec::new();
    // A field set to what it is already is no change (a group sent back as it was read
    // wrote an event, a webhook and an audit/diff entry), as for users.
    let text = |new: &Option<String>, now: &Option<String>| {
        new.clone().filter(|v| now.as_deref() != Some(v.as_str()))
    };
    let update = GroupUpdated {
        name: name.to_string(),
        description: text(&changes.description, &group.description),
        auto_join: changes.auto_join.filter(|v| *v != group.auto_join),
        admin_privileges: changes
            .admin_privileges
            .filter(|v| *v != group.admin_privileges),
        realm: changes
            .realm
            .as_deref()
            .map(stored_realm)
            .filter(|v| *v != group.realm),
        realm_attributes: text(&changes.realm_attributes, &group.realm_attributes),
        external_id: text(&changes.external_id, &group.external_id),
    };
    if update
        != (GroupUpdated {
            name: name.to_string(),
            ..Default::default()
        })
    {
        events.push(Event::GroupUpdated(update));
    }
    // SCIM documents of earlier versions hold their own `externalId`, which SCIM shows
    // over the group's; a new external id takes it out, so both APIs show the new one.
    if changes.external_id.is_some() {
        if let Some(doc) = group.scim.as_deref() {
            if let Ok(serde_json::Value::Object(mut attrs)) = serde_json::from_str(doc) {
                if attrs.remove("externalId").is_some() {
                    events.push(Event::GroupScimSaved {
                        name: name.to_string(),
                        attributes: serde_json::Value::Object(attrs).to_string(),
                    });
                }
            }
        }
    }
    if let Some(members) = &changes.members {
        for (i, m) in members.iter().enumerate() {
            if !dir.users.contains_key(m.as_str()) {
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
                group: name.to_string(),
                added,
                removed,
            });
        }
    }
    Ok(events)
}

/// As for a user, the rest of a group's deletion is applied with `GroupDeleted`
/// (`State::apply`, gatehouse-projections): it leaves its users, the auto-join list and
/// the projects it is a member of; its grants go as for a user.
pub(super) fn delete_group(state: &State, name: &str) -> Result<Vec<Event>, DomainError> {
    group_must_exist(state, name)?;
    let mut events = vec![Event::GroupDeleted {
        name: name.to_string(),
    }];
    events.extend(super::permissions::without_principal(state, true, name));
    Ok(events)
}

/// The key of a group's stored document under which the `display`s a client gave its
/// members are kept, by the member's `created_seq` (not a SCIM attribute: never shown).
/// By `created_seq`, so that a display belongs to the user it was said of: a later user
/// of the same name (or id) does not inherit it, a rename keeps it. A display is personal
/// data (a full name, an e-mail): sealed with the member's own personal-data key, so that
/// a purge of the member erases it too; a member without one gets no display kept (its
/// user name shows). Documents of earlier versions kept displays in clear: those are not
/// shown, and the audit trail leaves them out of old events.
pub const MEMBER_DISPLAYS: &str = "gatehouse:memberDisplays";

/// A group's SCIM document with the displays of some members set (sealed) or dropped,
/// against the document as it is now (each member's own entry: concurrent PATCHes of
/// other members, each pinned to the version it read, conflicted); `None` when nothing
/// changes.
pub fn with_member_displays(
    stored: Option<&str>,
    displays: &[(u64, Option<String>)],
) -> Option<String> {
    if displays.is_empty() {
        return None;
    }
    let mut doc = match stored.map(serde_json::from_str::<serde_json::Value>) {
        Some(Ok(serde_json::Value::Object(doc))) => doc,
        _ => serde_json::Map::new(),
    };
    let mut kept = match doc.remove(MEMBER_DISPLAYS) {
        Some(serde_json::Value::Object(kept)) => kept,
        _ => serde_json::Map::new(),
    };
    let before = kept.clone();
    for (seq, display) in displays {
        match display {
            Some(sealed) => {
                kept.insert(seq.to_string(), serde_json::Value::String(sealed.clone()));
            }
            None => {
                kept.remove(&seq.to_string());
            }
        }
    }
    if kept == before {
        return None;
    }
    if !kept.is_empty() {
        doc.insert(MEMBER_DISPLAYS.into(), serde_json::Value::Object(kept));
    }
    Some(serde_json::Value::Object(doc).to_string())
}

pub(super) fn change_group_members(
    state: &State,
    group: &str,
    add: &[String],
    remove: &[String],
    if_match: Option<u64>,
    displays: &[(u64, Option<String>)],
) -> Result<Vec<Event>, DomainError> {
    let dir = &state.directory;
    let g = dir
        .groups
        .get(group)
        .ok_or_else(|| DomainError::NotFound(format!("group `{group}`")))?;
    check_version(if_match, g.updated_seq)?;
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
    let mut events = Vec::new();
    if !added.is_empty() || !removed.is_empty() {
        events.push(Event::GroupMembersChanged {
            group: group.to_string(),
            added: dedup(added),
            removed: dedup(removed),
        });
    }
    if let Some(attributes) = with_member_displays(g.scim.as_deref(), displays) {
        events.push(Event::GroupScimSaved {
            name: group.to_string(),
            attributes,
        });
    }
    Ok(events)
}

/// SCIM create or replace of a user, as one atomic change: the domain fields, the
/// password, the SCIM-only attributes and (last) a rename.
pub(super) fn scim_save_user(
    state: &State,
    username: &str,
    create: Option<&NewUser>,
    changes: &UserChanges,
    attributes: &str,
    rename_to: Option<&str>,
    if_match: Option<u64>,
) -> Result<Vec<Event>, DomainError> {
    let dir = &state.directory;
    let mut events = Vec::new();
    if let Some(new) = create {
        // The attributes go in the creating event: one event per SCIM create, not two
        // (the second was a tenth of what the writer spent on one).
        for mut e in create_user(state, new)? {
            if let Event::UserCreated(c) = &mut e {
                c.scim = Some(attributes.to_string());
            }
            events.push(e);
        }
    } else {
        let user = dir
            .users
            .get(username)
            .ok_or_else(|| DomainError::NotFound(format!("user `{username}`")))?;
        check_version(if_match, user.updated_seq)?;
        events.extend(update_user(state, username, changes)?);
    }
    if create.is_some() && changes.status == Some(UserStatus::Disabled) {
        events.push(Event::UserUpdated(UserUpdated {
            username: username.to_string(),
            status: Some(UserStatus::Disabled),
            ..Default::default()
        }));
    }
    // Unchanged attributes are not written again (nor, on a create, a second time).
    let unchanged = create.is_some()
        || dir.users.get(username).and_then(|u| u.scim.as_deref()) == Some(attributes);
    if !unchanged {
        events.push(Event::UserScimSaved {
            username: username.to_string(),
            attributes: attributes.to_string(),
        });
    }
    if let Some(to) = rename_to.filter(|t| *t != username) {
        // The built-in anonymous user keeps its name (renamed away, a user provisioned
        // later as `anonymous` became what every request without credentials acts as).
        if username == gatehouse_projections::ANONYMOUS || to == gatehouse_projections::ANONYMOUS {
            return Err(DomainError::invalid(
                "userName",
                "the built-in anonymous user keeps its name, and no user takes it",
            ));
        }
        super::names::validate_new_name("userName", to)?;
        let own_id = dir.scim_ids.get(to).is_some_and(|n| n == username);
        if dir.users.contains_key(to) || (dir.scim_ids.contains_key(to) && !own_id) {
            return Err(DomainError::AlreadyExists(format!("user `{to}`")));
        }
        // The namespace shared with access keys, as in `create_user`.
        if state.access_keys.keys.contains_key(to) {
            return Err(DomainError::AlreadyExists(format!(
                "an access key named `{to}` (users and access keys sign in by the same names)"
            )));
        }
        events.extend(super::tokens::revocations_of(state, username, false));
        events.push(Event::UserRenamed {
            from: username.to_string(),
            to: to.to_string(),
        });
        // The groups' member lists changed: as events of the groups, so that their
        // versions move (a peer refused the group's next state as not newer, and kept
        // it without the renamed member).
        if let Some(user) = dir.users.get(username) {
            for g in user.groups.iter() {
                events.push(Event::GroupMembersChanged {
                    group: g.to_string(),
                    added: vec![to.to_string()],
                    removed: vec![username.to_string()],
                });
            }
        }
        // The grants follow the user (the projection renames them with the event); as
        // saves of the targets too, for the same reason: a peer kept its copy naming the
        // old name, or — federating back — dropped the old name and sent that back
        // over this server's own rewrite.
        for target in state.permissions.targets.values() {
            let mut t = (**target).clone();
            let mut named = false;
            for section in [&mut t.repo, &mut t.build, &mut t.release_bundle]
                .into_iter()
                .flatten()
            {
                if let Some(actions) = section.users.remove(username) {
                    section.users.insert(to.to_string(), actions);
                    named = true;
                }
            }
            if named {
                events.push(Event::PermissionTargetSaved(Box::new(t)));
            }
        }
    }
    Ok(events)
}

/// SCIM create or replace of a group: its members (user names) and attributes.
pub(super) fn scim_save_group(
    state: &State,
    name: &str,
    create: Option<&NewGroup>,
    members: Option<&[String]>,
    external_id: Option<&str>,
    attributes: &str,
    if_match: Option<u64>,
) -> Result<Vec<Event>, DomainError> {
    let dir = &state.directory;
    let mut events = Vec::new();
    let mut unchanged = false;
    match create {
        Some(new) => events.extend(create_group(state, new)?),
        None => {
            let g = dir
                .groups
                .get(name)
                .ok_or_else(|| DomainError::NotFound(format!("group `{name}`")))?;
            check_version(if_match, g.updated_seq)?;
            // A PUT or PATCH that changes nothing writes nothing (README), as for users.
            unchanged = match &g.scim {
                Some(stored) => stored == attributes,
                // A group SCIM never described shows its name: that, sent back, is no
                // change either.
                None => {
                    let mut shown = serde_json::Map::new();
                    shown.insert("displayName".into(), g.name.clone().into());
                    serde_json::from_str::<serde_json::Value>(attributes).ok()
                        == Some(serde_json::Value::Object(shown))
                }
            };
            // The external id is the group's own, one value for SCIM and the v2 API (an
            // empty one is none, as the v2 API clears it).
            let current = g.external_id.as_deref().filter(|e| !e.is_empty());
            if external_id != current {
                check_group_text(None, None, None, external_id)?;
                events.push(Event::GroupUpdated(GroupUpdated {
                    name: name.to_string(),
                    external_id: Some(external_id.unwrap_or_default().to_string()),
                    ..Default::default()
                }));
            }
            if let Some(wanted) = members {
                for (i, m) in wanted.iter().enumerate() {
                    if !dir.users.contains_key(m.as_str()) {
                        return Err(DomainError::invalid(
                            format!("members[{i}]"),
                            format!("user `{m}` does not exist"),
                        ));
                    }
                }
                // A set: a large group's replace compared every member with every
                // wanted one (quadratic, under the writer).
                let wanted_set: std::collections::HashSet<&str> =
                    wanted.iter().map(String::as_str).collect();
                let added: Vec<String> = wanted
                    .iter()
                    .filter(|m| !g.members.contains(*m))
                    .cloned()
                    .collect();
                let removed: Vec<String> = g
                    .members
                    .iter()
                    .filter(|m| !wanted_set.contains(m.as_str()))
                    .cloned()
                    .collect();
                if !added.is_empty() || !removed.is_empty() {
                    events.push(Event::GroupMembersChanged {
                        group: name.to_string(),
                        added: dedup(added),
                        removed,
                    });
                }
            }
        }
    }
    if !unchanged {
        events.push(Event::GroupScimSaved {
            name: name.to_string(),
            attributes: attributes.to_string(),
        });
    }
    Ok(events)
}

/// SCIM delete of a user or (`group`) a group; what goes with it is as for
/// `delete_user` and `delete_group`.
pub(super) fn scim_delete(
    state: &State,
    group: bool,
    name: &str,
    if_match: Option<u64>,
) -> Result<Vec<Event>, DomainError> {
    let dir = &state.directory;
    let version = if group {
        dir.groups.get(name).map(|g| g.updated_seq)
    } else {
        dir.users.get(name).map(|u| u.updated_seq)
    };
    let what = if group { "group" } else { "user" };
    let version = version.ok_or_else(|| DomainError::NotFound(format!("{what} `{name}`")))?;
    if !group {
        anonymous_stays(name)?;
    }
    check_version(if_match, version)?;
    let mut events = if group {
        vec![]
    } else {
        let mut events = super::tokens::revocations_of(state, name, false);
        events.extend(groups_left(state, name));
        events
    };
    events.push(if group {
        Event::GroupDeleted {
            name: name.to_string(),
        }
    } else {
        Event::UserDeleted {
            username: name.to_string(),
        }
    });
    events.extend(super::permissions::without_principal(state, group, name));
    Ok(events)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Command;
    use gatehouse_schemas::Envelope;

    /// A SCIM create is one event: the user with its SCIM attributes (the writer's cost
    /// of a SCIM create was two events before). Applied, it gives the user the same
    /// document the `UserScimSaved` that used to follow gave it; a replace that leaves
    /// the document as it is writes nothing about it.
    #[test]
    fn a_scim_create_is_one_event_carrying_the_attributes() {
        let mut state = State::default();
        let new = NewUser {
            username: "ann".into(),
            internal_password_disabled: true,
            ..NewUser::default()
        };
        let doc = r#"{"name":{"givenName":"Ann"}}"#;
        let events = scim_save_user(
            &state,
            "ann",
            Some(&new),
            &UserChanges::default(),
            doc,
            None,
            None,
        )
        .unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
        let Event::UserCreated(created) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(created.scim.as_deref(), Some(doc));
        state.apply(&Envelope {
            seq: 1,
            time_ms: 1,
            actor: "t".into(),
            origin: "o".into(),
            request_id: "r".into(),
            event: events[0].clone(),
        });
        let ann = state.directory.users.get("ann").unwrap();
        assert_eq!(ann.scim.as_deref(), Some(doc));
        assert_eq!((ann.created_seq, ann.updated_seq), (1, 1));
        let again = scim_save_user(
            &state,
            "ann",
            None,
            &UserChanges::default(),
            doc,
            None,
            None,
        )
        .unwrap();
        assert!(again.is_empty(), "{again:?}");
    }

    /// Finding: an e-mail sealed with the key of the user read landed on a user made
    /// since under the same name (after a purge: under the destroyed key). The write is
    /// guarded by the incarnation read, and a new one is a precondition failure (the
    /// handler reads again and seals with the new user's key).
    #[test]
    fn a_change_sealed_for_one_user_does_not_land_on_its_successor() {
        let mut state = State::default();
        let mut seq = 0;
        let mut run = |state: &mut State, command: &Command| {
            let events = crate::domain::decide(state, command)?;
            for event in events {
                seq += 1;
                state.apply(&Envelope {
                    seq,
                    time_ms: seq,
                    actor: "t".into(),
                    origin: "o".into(),
                    request_id: "r".into(),
                    event,
                });
            }
            Ok::<(), DomainError>(())
        };
        let create = Command::CreateUser(NewUser {
            username: "pz".into(),
            internal_password_disabled: true,
            ..NewUser::default()
        });
        run(&mut state, &create).unwrap();
        let first = state.directory.users.get("pz").unwrap().created_seq;
        let sealed = Command::IfUnchanged {
            read: crate::domain::AsRead::UserCreated("pz".into(), first),
            command: Box::new(Command::UpdateUser {
                username: "pz".into(),
                changes: UserChanges {
                    email: Some("enc:v1:k1:xyz".into()),
                    ..UserChanges::default()
                },
            }),
        };
        run(
            &mut state,
            &Command::DeleteUser {
                username: "pz".into(),
            },
        )
        .unwrap();
        run(&mut state, &create).unwrap();
        assert!(matches!(
            run(&mut state, &sealed),
            Err(DomainError::PreconditionFailed(_))
        ));
        assert_eq!(state.directory.users.get("pz").unwrap().email, None);
    }

    /// A group's external id is its own (`Group::external_id`), for SCIM as for the v2
    /// API: a SCIM replace sets it, and a v2 change takes the `externalId` out of a SCIM
    /// document of an earlier version (which SCIM showed over it).
    #[test]
    fn scim_group_external_id_is_the_groups_own() {
        let mut state = State::default();
        let mut seq = 0;
        let mut apply = |state: &mut State, events: Vec<Event>| {
            for event in events {
                seq += 1;
                state.apply(&Envelope {
                    seq,
                    time_ms: seq,
                    actor: "t".into(),
                    origin: "o".into(),
                    request_id: "r".into(),
                    event,
                });
            }
        };
        let new = NewGroup {
            name: "g".into(),
            description: None,
            auto_join: false,
            admin_privileges: false,
            realm: None,
            realm_attributes: None,
            external_id: Some("a".into()),
            members: vec![],
        };
        let events = scim_save_group(&state, "g", Some(&new), None, None, "{}", None).unwrap();
        apply(&mut state, events);
        // An earlier version's document, with its own external id.
        apply(
            &mut state,
            vec![Event::GroupScimSaved {
                name: "g".into(),
                attributes: r#"{"displayName":"G","externalId":"b"}"#.into(),
            }],
        );
        let events = scim_save_group(
            &state,
            "g",
            None,
            Some(&[]),
            Some("c"),
            r#"{"displayName":"G"}"#,
            None,
        )
        .unwrap();
        apply(&mut state, events);
        let g = &state.directory.groups["g"];
        assert_eq!(g.external_id.as_deref(), Some("c"));
        assert_eq!(g.scim.as_deref(), Some(r#"{"displayName":"G"}"#));
        // Again with an old document: a v2 change takes its external id out.
        apply(
            &mut state,
            vec![Event::GroupScimSaved {
                name: "g".into(),
                attributes: r#"{"displayName":"G","externalId":"b"}"#.into(),
            }],
        );
        let changes = GroupChanges {
            external_id: Some("d".into()),
            ..GroupChanges::default()
        };
        let events = update_group(&state, "g", &changes).unwrap();
        apply(&mut state, events);
        let g = &state.directory.groups["g"];
        assert_eq!(g.external_id.as_deref(), Some("d"));
        assert_eq!(g.scim.as_deref(), Some(r#"{"displayName":"G"}"#));
        // Unchanged: nothing.
        let events = scim_save_group(
            &state,
            "g",
            None,
            Some(&[]),
            Some("d"),
            r#"{"displayName":"G"}"#,
            None,
        )
        .unwrap();
        assert!(events.is_empty(), "{events:?}");
    }
}

//! Decides access keys (Bintray-style, per org) and the entitlements that name them.

use super::DomainError;
use gatehouse_projections::State;
use gatehouse_schemas::{AccessKey, Entitlement, Event};

pub(super) fn save(
    state: &State,
    key: &AccessKey,
    create_only: bool,
) -> Result<Vec<Event>, DomainError> {
    let name = gatehouse_projections::access_key_username(&key.org, &key.id);
    let exists = state.access_keys.keys.contains_key(&name);
    if create_only && exists {
        return Err(DomainError::AlreadyExists(format!("access key `{name}`")));
    }
    if !create_only && !exists {
        return Err(DomainError::NotFound(format!("access key `{name}`")));
    }
    // The other half of this rule is in `directory::create_user` (and its SCIM rename).
    if state.directory.users.contains_key(name.as_str()) {
        return Err(DomainError::Conflict(format!(
            "`{name}` is the name of a user: access keys and users sign in by the same names"
        )));
    }
    // An update that changes nothing writes nothing (no event, no `updated` delivery),
    // as for users: idempotent admin scripts filled the log and the receivers.
    if state
        .access_keys
        .keys
        .get(&name)
        .is_some_and(|r| r.key == *key)
    {
        return Ok(vec![]);
    }
    Ok(vec![Event::AccessKeySaved(key.clone())])
}

/// The entitlements that name the key lose it when `AccessKeyDeleted` is applied
/// (`State::apply`, gatehouse-projections).
pub(super) fn delete(state: &State, org: &str, id: &str) -> Result<Vec<Event>, DomainError> {
    let name = gatehouse_projections::access_key_username(org, id);
    if !state.access_keys.keys.contains_key(&name) {
        return Err(DomainError::NotFound(format!("access key `{name}`")));
    }
    Ok(vec![Event::AccessKeyDeleted {
        org: org.to_string(),
        id: id.to_string(),
    }])
}

pub(super) fn save_entitlement(
    state: &State,
    entitlement: &Entitlement,
    create_only: bool,
) -> Result<Vec<Event>, DomainError> {
    let e = entitlement;
    let existing = state.access_keys.entitlements.get(&e.id);
    if create_only && existing.is_some() {
        return Err(DomainError::AlreadyExists(format!(
            "entitlement `{}`",
            e.id
        )));
    }
    if !create_only && existing.is_none_or(|x| x.entitlement.org != e.org) {
        return Err(DomainError::NotFound(format!("entitlement `{}`", e.id)));
    }
    // Seeds 000 and 001: "Version level entitlements are available in all repository
    // types except Maven" (a Maven layout has no version directory the scope could
    // match: stored, it silently granted nothing).
    let maven = state
        .repositories
        .by_key
        .get(&e.repo)
        .and_then(|r| r.config.package_type.as_deref())
        .is_some_and(|t| t.eq_ignore_ascii_case("maven"));
    // On create only: an entitlement kept from before its repository was registered as
    // Maven (README says remove it if it should not be) could otherwise not even be
    // narrowed — every change of its keys, tags or access was refused. Its repository,
    // package and version never change on update.
    if create_only && e.version.is_some() && maven {
        return Err(DomainError::invalid(
            "version",
            format!(
                "repository `{}` is a Maven repository: version entitlements are available in all repository types except Maven; entitle the package",
                e.repo
            ),
        ));
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
    if existing.is_some_and(|x| x.entitlement == *e) {
        return Ok(vec![]);
    }
    Ok(vec![Event::EntitlementSaved(e.clone())])
}

pub(super) fn delete_entitlement(
    state: &State,
    org: &str,
    id: &str,
) -> Result<Vec<Event>, DomainError> {
    // Missing, or an entitlement of another org.
    if state
        .access_keys
        .entitlements
        .get(id)
        .is_none_or(|e| e.entitlement.org != org)
    {
        return Err(DomainError::NotFound(format!("entitlement `{id}`")));
    }
    Ok(vec![Event::EntitlementDeleted {
        org: org.to_string(),
        id: id.to_string(),
    }])
}

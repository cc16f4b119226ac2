//! Decides permission targets, and the repositories they (and projects) grant on.

use super::{repository_must_exist, DomainError};
use gatehouse_projections::State;
use gatehouse_schemas::{Event, PermissionTarget, Repository};

/// Create (`create_only`) or create-or-replace a permission target.
pub(super) fn save_target(
    state: &State,
    target: &PermissionTarget,
    create_only: bool,
) -> Result<Vec<Event>, DomainError> {
    if create_only && state.permissions.targets.contains_key(&target.name) {
        return Err(DomainError::AlreadyExists(format!(
            "permission target `{}`",
            target.name
        )));
    }
    Ok(vec![Event::PermissionTargetSaved(Box::new(target.clone()))])
}

pub(super) fn delete_target(state: &State, name: &str) -> Result<Vec<Event>, DomainError> {
    if !state.permissions.targets.contains_key(name) {
        return Err(DomainError::NotFound(format!("permission target `{name}`")));
    }
    Ok(vec![Event::PermissionTargetDeleted {
        name: name.to_string(),
    }])
}

pub(super) fn save_repository(r: &Repository) -> Result<Vec<Event>, DomainError> {
    Ok(vec![Event::RepositorySaved(r.clone())])
}

pub(super) fn delete_repository(state: &State, key: &str) -> Result<Vec<Event>, DomainError> {
    repository_must_exist(state, key)?;
    Ok(vec![Event::RepositoryDeleted {
        key: key.to_string(),
    }])
}

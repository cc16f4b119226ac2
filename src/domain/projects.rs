//! Decides projects: the projects themselves, their roles and members, and which
//! repositories they own (attach, unassign) or share.

use super::{dedup, group_must_exist, repository_must_exist, user_must_exist, DomainError};
use gatehouse_projections::State;
use gatehouse_schemas::{Event, Project, ProjectRole};

/// Create (`create_only`) or update an existing project.
pub(super) fn save(
    state: &State,
    project: &Project,
    create_only: bool,
) -> Result<Vec<Event>, DomainError> {
    let key = &project.project_key;
    let exists = state.projects.by_key.contains_key(key);
    if create_only && exists {
        return Err(DomainError::AlreadyExists(format!("project `{key}`")));
    }
    if !create_only && !exists {
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
    // An update that changes nothing writes nothing (as for users and groups).
    if state
        .projects
        .by_key
        .get(key)
        .is_some_and(|p| p.config == *project)
    {
        return Ok(vec![]);
    }
    Ok(vec![Event::ProjectSaved(project.clone())])
}

/// A project's repositories are unassigned first, each by its own event — which also
/// ends their shares with other projects (sharing is an owner's; `ProjectDeleted` alone
/// left a deleted project's repository shared, and other projects' members kept their
/// role's rights on it). Decided here, not in the projection, so older logs replay as
/// they were served. The rest (members, roles, the shares *with* this project) is
/// applied with `ProjectDeleted` (`State::apply`, gatehouse-projections).
pub(super) fn delete(state: &State, project_key: &str) -> Result<Vec<Event>, DomainError> {
    project_must_exist(state, project_key)?;
    let mut events: Vec<Event> = state
        .repositories
        .by_key
        .iter()
        .filter(|(_, r)| r.project.as_deref() == Some(project_key))
        .map(|(key, _)| Event::RepositoryUnassigned {
            repo: key.to_string(),
        })
        .collect();
    events.push(Event::ProjectDeleted {
        project_key: project_key.to_string(),
    });
    Ok(events)
}

/// Create (`create_only`) or update a custom role.
/// A role as it is stored: at least one known action and one environment, each once,
/// environments upper-case. Project roles and (global) roles share this rule.
pub fn normalize_role(role: ProjectRole) -> Result<ProjectRole, DomainError> {
    use crate::authorize::ROLE_ACTIONS;
    // Global roles took any name (a NUL, a newline, `Dev\u{200B}eloper` that reads as
    // `Developer`) and any description: one rule for both kinds, whichever API sent it.
    super::names::validate_role_name("name", &role.name)?;
    super::validate_text("description", role.description.as_deref(), 2048)?;
    if role.actions.is_empty() {
        return Err(DomainError::invalid("actions", "give at least one action"));
    }
    let mut actions: Vec<String> = Vec::new();
    for (i, a) in role.actions.iter().enumerate() {
        if !ROLE_ACTIONS.contains(&a.as_str()) {
            return Err(DomainError::invalid(
                format!("actions[{i}]"),
                format!(
                    "unknown action `{}` (use {})",
                    a.escape_debug(),
                    ROLE_ACTIONS.join(", ")
                ),
            ));
        }
        if !actions.contains(a) {
            actions.push(a.clone());
        }
    }
    if role.environments.is_empty() {
        return Err(DomainError::invalid(
            "environments",
            "give at least one environment",
        ));
    }
    let mut environments: Vec<String> = Vec::new();
    for (i, e) in role.environments.iter().enumerate() {
        let e = super::normalize_environment(&format!("environments[{i}]"), e)?;
        if !environments.contains(&e) {
            environments.push(e);
        }
    }
    Ok(ProjectRole {
        actions,
        environments,
        ..role
    })
}

/// A predefined role saved through either roles API: `None` when `role` is not one;
/// else never created again, sent back as read writes nothing (a client's
/// read-modify-write), and any change is refused.
fn predefined_role_saved(
    role: &ProjectRole,
    create_only: bool,
) -> Option<Result<Vec<Event>, DomainError>> {
    let predefined = gatehouse_projections::predefined_roles()
        .into_iter()
        .find(|r| r.name == role.name)?;
    Some(match (create_only, predefined == *role) {
        (true, _) => Err(DomainError::AlreadyExists(format!(
            "predefined role `{}`",
            role.name
        ))),
        (false, true) => Ok(vec![]),
        (false, false) => Err(DomainError::invalid(
            "name",
            "predefined roles cannot be changed",
        )),
    })
}

pub(super) fn save_role(
    state: &State,
    project_key: &str,
    role: &ProjectRole,
    create_only: bool,
) -> Result<Vec<Event>, DomainError> {
    let p = project_must_exist(state, project_key)?;
    // INVARIANT: a stored role is normalised, whichever API sent it.
    if normalize_role(role.clone())? != *role {
        return Err(DomainError::invalid(
            "name",
            "the role is not in its normal form",
        ));
    }
    if let Some(answer) = predefined_role_saved(role, create_only) {
        return answer;
    }
    let exists = p.roles.contains_key(&role.name);
    if create_only && exists {
        return Err(DomainError::AlreadyExists(format!("role `{}`", role.name)));
    }
    // Assignments match role names ignoring case (seed 004's `"developer"`): a new role
    // that differs from a predefined, project or global one only by case would change
    // what such an assignment means, or make it ambiguous.
    if create_only {
        let taken = gatehouse_projections::predefined_roles()
            .into_iter()
            .map(|r| r.name)
            .chain(p.roles.keys().cloned())
            .chain(state.projects.global_roles.keys().cloned())
            .find(|n| n.eq_ignore_ascii_case(&role.name));
        if let Some(n) = taken {
            return Err(DomainError::AlreadyExists(format!(
                "role `{n}` (role names are matched ignoring case)"
            )));
        }
    }
    // A project role by a global role's name would shadow it (member names resolve to
    // the project's roles first): assignments an admin made of the global role would
    // change meaning, and deleting the project role would erase them.
    if create_only && state.projects.global_roles.contains_key(&role.name) {
        return Err(DomainError::AlreadyExists(format!(
            "global role `{}` (a project role of that name would shadow it)",
            role.name
        )));
    }
    if !create_only && !exists {
        return Err(DomainError::NotFound(format!("role `{}`", role.name)));
    }
    // The same role again writes nothing.
    if p.roles.get(&role.name) == Some(role) {
        return Ok(vec![]);
    }
    Ok(vec![Event::ProjectRoleSaved {
        project_key: project_key.to_string(),
        role: role.clone(),
    }])
}

pub(super) fn delete_role(
    state: &State,
    project_key: &str,
    role: &str,
) -> Result<Vec<Event>, DomainError> {
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
        project_key: project_key.to_string(),
        role: role.to_string(),
    }])
}

/// `kind` is `user` or `group`. (A member leaves its projects when it is deleted: see
/// `directory::delete_user` and `directory::delete_group`.)
pub(super) fn set_member(
    state: &State,
    project_key: &str,
    kind: &str,
    name: &str,
    roles: &[String],
) -> Result<Vec<Event>, DomainError> {
    let p = project_must_exist(state, project_key)?;
    if kind == "group" {
        group_must_exist(state, name)?;
    } else {
        user_must_exist(state, name)?;
    }
    if roles.is_empty() {
        return Err(DomainError::invalid("roles", "give at least one role"));
    }
    // Role names are matched as JFrog matches them, ignoring case (seed 004's sample
    // gives `"developer"` for the predefined `Developer`); an exact name wins.
    let mut canonical = Vec::with_capacity(roles.len());
    for (i, r) in roles.iter().enumerate() {
        let found = match state.projects.role_in(p, r) {
            Some(role) => Some(role.name),
            None => {
                let mut names = role_names_ignoring_case(state, p, r);
                if names.len() > 1 {
                    return Err(DomainError::invalid(
                        format!("roles[{i}]"),
                        format!(
                            "`{r}` matches more than one role of project `{project_key}` ({}): give its exact name",
                            names.join(", ")
                        ),
                    ));
                }
                names.pop()
            }
        };
        match found {
            Some(n) => canonical.push(n),
            None => {
                return Err(DomainError::invalid(
                    format!("roles[{i}]"),
                    format!("project `{project_key}` has no role `{r}`"),
                ))
            }
        }
    }
    let roles = dedup(canonical);
    let held = if kind == "group" { &p.groups } else { &p.users };
    if held
        .get(name)
        .is_some_and(|now| now.len() == roles.len() && roles.iter().all(|r| now.contains(r)))
    {
        return Ok(vec![]);
    }
    Ok(vec![Event::ProjectMemberSaved {
        project_key: project_key.to_string(),
        kind: kind.to_string(),
        name: name.to_string(),
        roles,
    }])
}

pub(super) fn remove_member(
    state: &State,
    project_key: &str,
    kind: &str,
    name: &str,
) -> Result<Vec<Event>, DomainError> {
    let p = project_must_exist(state, project_key)?;
    let members = if kind == "group" { &p.groups } else { &p.users };
    if !members.contains_key(name) {
        return Err(DomainError::NotFound(format!(
            "{kind} `{name}` in project `{project_key}`"
        )));
    }
    Ok(vec![Event::ProjectMemberRemoved {
        project_key: project_key.to_string(),
        kind: kind.to_string(),
        name: name.to_string(),
    }])
}

/// Move the repository into the project (`force` to take it from another one).
pub(super) fn attach_repository(
    state: &State,
    repo: &str,
    project_key: &str,
    force: bool,
) -> Result<Vec<Event>, DomainError> {
    let r = repository_must_exist(state, repo)?;
    project_must_exist(state, project_key)?;
    match &r.project {
        Some(p) if p == project_key => Ok(vec![]),
        Some(p) if !force => Err(DomainError::Conflict(format!(
            "repository `{repo}` is assigned to project `{p}`; move it with force=true"
        ))),
        _ => {
            // Sharing is the owner's: a move ends the shares the previous owner made (as
            // unassigning does), or its partners' members kept access to the new owner's
            // repository.
            let mut events: Vec<Event> = r
                .shared_with
                .iter()
                .map(|p| Event::RepositoryUnshared {
                    repo: repo.to_string(),
                    project_key: Some(p.clone()),
                })
                .collect();
            if r.shared_with_all {
                events.push(Event::RepositoryUnshared {
                    repo: repo.to_string(),
                    project_key: None,
                });
            }
            events.push(Event::RepositoryAttached {
                repo: repo.to_string(),
                project_key: project_key.to_string(),
            });
            Ok(events)
        }
    }
}

pub(super) fn unassign_repository(state: &State, repo: &str) -> Result<Vec<Event>, DomainError> {
    let r = repository_must_exist(state, repo)?;
    if r.project.is_none() {
        return Err(DomainError::NotFound(format!(
            "a project assignment of repository `{repo}`"
        )));
    }
    Ok(vec![Event::RepositoryUnassigned {
        repo: repo.to_string(),
    }])
}

/// With one project, or with all (`None`).
pub(super) fn share_repository(
    state: &State,
    repo: &str,
    project_key: Option<&str>,
) -> Result<Vec<Event>, DomainError> {
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
    // Shared already: nothing to write (an admin script's repeat filled the log, the
    // audit trail and the receivers with the same share).
    let already = match project_key {
        Some(p) => r.shared_with.contains(p),
        None => r.shared_with_all,
    };
    if already {
        return Ok(vec![]);
    }
    Ok(vec![Event::RepositoryShared {
        repo: repo.to_string(),
        project_key: project_key.map(str::to_string),
    }])
}

pub(super) fn unshare_repository(
    state: &State,
    repo: &str,
    project_key: Option<&str>,
) -> Result<Vec<Event>, DomainError> {
    let r = repository_must_exist(state, repo)?;
    let shared = match project_key {
        Some(p) => r.shared_with.contains(p),
        None => r.shared_with_all,
    };
    if !shared {
        return Err(DomainError::NotFound(format!(
            "a share of repository `{repo}` with {}",
            project_key
                .map(|p| format!("project `{p}`"))
                .unwrap_or_else(|| "all projects".into())
        )));
    }
    Ok(vec![Event::RepositoryUnshared {
        repo: repo.to_string(),
        project_key: project_key.map(str::to_string),
    }])
}

/// The names of the project's roles (its own, the predefined and the global ones) that
/// are `name` but for case, sorted, each once: roles are matched as JFrog matches them.
pub fn role_names_ignoring_case(
    state: &State,
    p: &gatehouse_projections::ProjectRecord,
    name: &str,
) -> Vec<String> {
    let mut names: Vec<String> = p
        .roles
        .keys()
        .cloned()
        .chain(
            gatehouse_projections::predefined_roles()
                .into_iter()
                .map(|role| role.name),
        )
        .chain(state.projects.global_roles.keys().cloned())
        .filter(|n| n.eq_ignore_ascii_case(name))
        .collect();
    names.sort();
    names.dedup();
    names
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

/// Create (`create_only`) or change a global role. Predefined names are taken; the type
/// of a global role is always `CUSTOM_GLOBAL`.
pub(super) fn save_global_role(
    state: &State,
    role: &ProjectRole,
    create_only: bool,
) -> Result<Vec<Event>, DomainError> {
    if normalize_role(role.clone())? != *role {
        return Err(DomainError::invalid(
            "name",
            "the role is not in its normal form",
        ));
    }
    if role.name.trim().is_empty() || role.name.trim() != role.name || role.name.len() > 64 {
        return Err(DomainError::invalid(
            "name",
            "1 to 64 characters, not starting or ending with whitespace",
        ));
    }
    if let Some(answer) = predefined_role_saved(role, create_only) {
        return answer;
    }
    let exists = state.projects.global_roles.contains_key(&role.name);
    if create_only && exists {
        return Err(DomainError::AlreadyExists(format!("role `{}`", role.name)));
    }
    if create_only {
        // Nor a project's role's name: member names resolve to the project's roles
        // first, so the global role would be shadowed there (the other way is refused
        // in `save_role`).
        let taken = gatehouse_projections::predefined_roles()
            .into_iter()
            .map(|r| r.name)
            .chain(state.projects.global_roles.keys().cloned())
            .chain(
                state
                    .projects
                    .by_key
                    .values()
                    .flat_map(|p| p.roles.keys().cloned()),
            )
            .find(|n| n.eq_ignore_ascii_case(&role.name));
        if let Some(n) = taken {
            return Err(DomainError::AlreadyExists(format!(
                "role `{n}` (role names are matched ignoring case)"
            )));
        }
    }
    if !create_only && !exists {
        return Err(DomainError::NotFound(format!("role `{}`", role.name)));
    }
    // The same role again writes nothing.
    if state.projects.global_roles.get(&role.name) == Some(role) {
        return Ok(vec![]);
    }
    Ok(vec![Event::GlobalRoleSaved(role.clone())])
}

pub(super) fn delete_global_role(state: &State, name: &str) -> Result<Vec<Event>, DomainError> {
    if !state.projects.global_roles.contains_key(name) {
        if gatehouse_projections::predefined_roles()
            .iter()
            .any(|r| r.name == name)
        {
            return Err(DomainError::invalid(
                "role",
                "predefined roles cannot be deleted",
            ));
        }
        return Err(DomainError::NotFound(format!("role `{name}`")));
    }
    Ok(vec![Event::GlobalRoleDeleted {
        name: name.to_string(),
    }])
}

//! Projects: their configuration, custom roles and members (users and groups with
//! their roles), and the predefined roles every project has.

use crate::Repositories;
use gatehouse_schemas::{Event, Project, ProjectRole};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Projects by key, and the position of the last change to anything that project roles
/// are decided from (so the compiled decision index knows when it is stale).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Projects {
    pub by_key: BTreeMap<String, ProjectRecord>,
    pub changed_seq: u64,
    /// Global roles (`CUSTOM_GLOBAL`) by name: roles every project can give. Not
    /// encoded while there are none, so earlier states keep their digest.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub global_roles: BTreeMap<String, ProjectRole>,
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

    /// Whether the user (`kind` = `user`) or group (`group`) is a member.
    pub fn has_member(&self, kind: &str, name: &str) -> bool {
        if kind == "group" {
            self.groups.contains_key(name)
        } else {
            self.users.contains_key(name)
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

impl Projects {
    /// A role a member of `p` can hold: the project's own roles first, then the
    /// predefined ones, then the global ones.
    pub fn role_in(&self, p: &ProjectRecord, name: &str) -> Option<ProjectRole> {
        p.role(name)
            .or_else(|| self.global_roles.get(name).cloned())
    }

    /// Project events. Deleting a project also unassigns its repositories and withdraws
    /// their shares with it, in `repositories`.
    pub(crate) fn apply(&mut self, event: &Event, seq: u64, repositories: &mut Repositories) {
        match event {
            Event::ProjectSaved(p) => {
                let rec =
                    self.by_key
                        .entry(p.project_key.clone())
                        .or_insert_with(|| ProjectRecord {
                            created_seq: seq,
                            ..Default::default()
                        });
                rec.config = p.clone();
                rec.updated_seq = seq;
                self.changed_seq = seq;
            }
            Event::ProjectDeleted { project_key } => {
                self.by_key.remove(project_key);
                repositories.forget_project(project_key, seq);
                self.changed_seq = seq;
            }
            Event::ProjectRoleSaved { project_key, role } => {
                if let Some(p) = self.by_key.get_mut(project_key) {
                    p.roles.insert(role.name.clone(), role.clone());
                    p.updated_seq = seq;
                    self.changed_seq = seq;
                }
            }
            Event::ProjectRoleDeleted { project_key, role } => {
                if let Some(p) = self.by_key.get_mut(project_key) {
                    p.roles.remove(role);
                    for roles in p.users.values_mut().chain(p.groups.values_mut()) {
                        roles.remove(role);
                    }
                    // A member always holds at least one role: one left with none leaves.
                    p.users.retain(|_, roles| !roles.is_empty());
                    p.groups.retain(|_, roles| !roles.is_empty());
                    p.updated_seq = seq;
                    self.changed_seq = seq;
                }
            }
            Event::GlobalRoleSaved(role) => {
                self.global_roles.insert(role.name.clone(), role.clone());
                self.changed_seq = seq;
            }
            Event::GlobalRoleDeleted { name } => {
                self.global_roles.remove(name);
                for p in self.by_key.values_mut() {
                    // A project role of the same name is the project's own: it stays.
                    if p.roles.contains_key(name) {
                        continue;
                    }
                    let mut changed = false;
                    for roles in p.users.values_mut().chain(p.groups.values_mut()) {
                        changed |= roles.remove(name);
                    }
                    p.users.retain(|_, roles| !roles.is_empty());
                    p.groups.retain(|_, roles| !roles.is_empty());
                    if changed {
                        p.updated_seq = seq;
                    }
                }
                self.changed_seq = seq;
            }
            Event::ProjectMemberSaved {
                project_key,
                kind,
                name,
                roles,
            } => {
                if let Some(p) = self.by_key.get_mut(project_key) {
                    let members = p.members_mut(kind);
                    members.insert(name.clone(), roles.iter().cloned().collect());
                    p.updated_seq = seq;
                    self.changed_seq = seq;
                }
            }
            Event::ProjectMemberRemoved {
                project_key,
                kind,
                name,
            } => {
                if let Some(p) = self.by_key.get_mut(project_key) {
                    let members = p.members_mut(kind);
                    members.remove(name);
                    p.updated_seq = seq;
                    self.changed_seq = seq;
                }
            }
            _ => {}
        }
    }

    /// Whether any project has the user (`kind` = `user`) or group (`group`) as a member
    /// (so that the projects are copied only when a removal or rename changes them).
    pub fn has_member(&self, kind: &str, name: &str) -> bool {
        self.by_key.values().any(|p| p.has_member(kind, name))
    }

    /// Drop a deleted user or group from every project; whether anything changed.
    pub(crate) fn remove_member(&mut self, kind: &str, name: &str, seq: u64) -> bool {
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

    /// A renamed user keeps its roles under the new name (see `State::rename_user`).
    pub(crate) fn rename_user(&mut self, from: &str, to: &str, seq: u64) {
        for p in self.by_key.values_mut() {
            if let Some(roles) = p.users.remove(from) {
                p.users.insert(to.to_string(), roles);
                self.changed_seq = seq;
            }
        }
    }
}

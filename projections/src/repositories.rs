//! Repositories: what Gatehouse knows of each (class, environments), its project
//! assignment and its sharing with other projects.

use crate::{Permissions, Projects};
use gatehouse_schemas::{Event, Repository};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

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

impl Repositories {
    /// Repository events. What is compiled from repositories goes stale with them, so
    /// they also move the `changed_seq` of `permissions` (saving and deleting) and of
    /// `projects` (every change).
    pub(crate) fn apply(
        &mut self,
        event: &Event,
        seq: u64,
        permissions: &mut Permissions,
        projects: &mut Projects,
    ) {
        match event {
            Event::RepositorySaved(r) => {
                let rec = self
                    .by_key
                    .entry(r.key.clone())
                    .or_insert_with(|| RepositoryRecord {
                        created_seq: seq,
                        ..Default::default()
                    });
                rec.config = r.clone();
                rec.updated_seq = seq;
                // Repository classes decide `ANY LOCAL`/`ANY REMOTE`, environments decide roles.
                permissions.changed_seq = seq;
                projects.changed_seq = seq;
            }
            Event::RepositoryDeleted { key } => {
                self.by_key.remove(key);
                // As Artifactory does, a deleted repository leaves the virtual ones that
                // listed it.
                for r in self.by_key.values_mut() {
                    r.config.repositories.retain(|m| m != key);
                }
                permissions.changed_seq = seq;
                projects.changed_seq = seq;
            }
            Event::RepositoryAttached { repo, project_key } => {
                if let Some(r) = self.by_key.get_mut(repo) {
                    r.project = Some(project_key.clone());
                    // The owner is not also a project it is shared with.
                    r.shared_with.remove(project_key);
                    r.updated_seq = seq;
                    projects.changed_seq = seq;
                }
            }
            Event::RepositoryUnassigned { repo } => {
                if let Some(r) = self.by_key.get_mut(repo) {
                    r.project = None;
                    // Sharing is a project's repository shared with others: it ends with
                    // the assignment.
                    r.shared_with_all = false;
                    r.shared_with.clear();
                    r.updated_seq = seq;
                    projects.changed_seq = seq;
                }
            }
            Event::RepositoryShared { repo, project_key } => {
                if let Some(r) = self.by_key.get_mut(repo) {
                    match project_key {
                        Some(p) => {
                            r.shared_with.insert(p.clone());
                        }
                        None => r.shared_with_all = true,
                    }
                    r.updated_seq = seq;
                    projects.changed_seq = seq;
                }
            }
            Event::RepositoryUnshared { repo, project_key } => {
                if let Some(r) = self.by_key.get_mut(repo) {
                    match project_key {
                        Some(p) => {
                            r.shared_with.remove(p);
                        }
                        None => r.shared_with_all = false,
                    }
                    r.updated_seq = seq;
                    projects.changed_seq = seq;
                }
            }
            _ => {}
        }
    }

    /// A deleted project's repositories are no longer assigned to it nor shared with it
    /// (see `Projects::apply`).
    pub(crate) fn forget_project(&mut self, project_key: &str, seq: u64) {
        for r in self.by_key.values_mut() {
            if r.project.as_deref() == Some(project_key) {
                r.project = None;
                r.updated_seq = seq;
            }
            if r.shared_with.remove(project_key) {
                r.updated_seq = seq;
            }
        }
    }
}

//! Permission targets (Artifactory v2): who may do what on which repositories, builds
//! and release bundles.

use crate::shared::{edit, OrdMap, Shared};
use gatehouse_schemas::{Event, PermissionTarget};
use serde::{Deserialize, Serialize};

/// Permission targets by name, and the position of the last change to any of them (so
/// a compiled index knows when it is stale).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    pub targets: OrdMap<String, Shared<PermissionTarget>>,
    pub changed_seq: u64,
}

impl Permissions {
    /// Permission target events. A target from a federation peer is saved like one
    /// saved here (its version is recorded by `State::track_versions`).
    pub(crate) fn apply(&mut self, event: &Event, seq: u64) {
        match event {
            Event::PermissionTargetSaved(t) | Event::PermissionReplicated { target: t, .. } => {
                self.targets
                    .insert(t.name.clone(), Shared::new((**t).clone()));
                self.changed_seq = seq;
            }
            Event::PermissionTargetDeleted { name } => {
                self.targets.remove(name);
                self.changed_seq = seq;
            }
            _ => {}
        }
    }

    /// A renamed user's grants follow it (see `State::rename_user`).
    pub(crate) fn rename_user(&mut self, from: &str, to: &str, seq: u64) {
        // Only the targets that name it are copied (the others stay shared).
        let naming: Vec<String> = (self.targets.iter())
            .filter(|(_, t)| {
                [&t.repo, &t.build, &t.release_bundle]
                    .into_iter()
                    .flatten()
                    .any(|section| section.users.contains_key(from))
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in naming {
            let Some(t) = edit(&mut self.targets, &name) else {
                continue;
            };
            for section in [&mut t.repo, &mut t.build, &mut t.release_bundle]
                .into_iter()
                .flatten()
            {
                if let Some(actions) = section.users.remove(from) {
                    section.users.insert(to.to_string(), actions);
                    self.changed_seq = seq;
                }
            }
        }
    }
}

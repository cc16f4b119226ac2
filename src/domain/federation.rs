//! Decides federation: the targets this server broadcasts to, the record of a broadcast,
//! and what peers send here (changes, and the end of a full broadcast).

use super::DomainError;
use gatehouse_projections::State;
use gatehouse_schemas::{Event, FederationTarget, TokenIssued};
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

/// The built-in users each server keeps for itself: `admin` and `anonymous` (whose state
/// follows the server's own anonymous-access setting: a peer's disabled copy switched
/// anonymous access off here while the setting still said on).
pub fn unfederated_user(name: &str) -> bool {
    name == UNFEDERATED_USER || name == gatehouse_projections::ANONYMOUS
}

pub(super) fn save_target(
    state: &State,
    target: &FederationTarget,
    create_only: bool,
) -> Result<Vec<Event>, DomainError> {
    let exists = state.federation.targets.contains_key(&target.name);
    if create_only && exists {
        return Err(DomainError::AlreadyExists(format!(
            "federation target `{}`",
            target.name
        )));
    }
    if !create_only && !exists {
        return Err(DomainError::NotFound(format!(
            "federation target `{}`",
            target.name
        )));
    }
    // Saved again as it is: nothing to write.
    if state
        .federation
        .targets
        .get(&target.name)
        .is_some_and(|r| r.target == *target)
    {
        return Ok(vec![]);
    }
    Ok(vec![Event::FederationTargetSaved(target.clone())])
}

pub(super) fn delete_target(state: &State, name: &str) -> Result<Vec<Event>, DomainError> {
    if !state.federation.targets.contains_key(name) {
        return Err(DomainError::NotFound(format!("federation target `{name}`")));
    }
    Ok(vec![Event::FederationTargetDeleted {
        name: name.to_string(),
    }])
}

pub(super) fn record_broadcast(
    state: &State,
    target: &str,
    position: u64,
    entities: u64,
) -> Result<Vec<Event>, DomainError> {
    if !state.federation.targets.contains_key(target) {
        return Err(DomainError::NotFound(format!(
            "federation target `{target}`"
        )));
    }
    Ok(vec![Event::FederationBroadcastDone {
        target: target.to_string(),
        position,
        entities,
    }])
}

/// Apply what federation peer `source` sent: each change only when its version is
/// greater than the one here (so a batch applied twice changes nothing the second
/// time, and a change that went round a ring stops where it started).
pub(super) fn apply_replicated(
    state: &State,
    source: &str,
    changes: &[ReplicatedChange],
) -> Result<Vec<Event>, DomainError> {
    let own = state.service_id.as_deref().unwrap_or_default();
    // Versions written by earlier changes of this same batch.
    let mut batch: BTreeMap<(&str, &str), &gatehouse_schemas::EntityVersion> = BTreeMap::new();
    let mut events = Vec::new();
    let mut removed_principals: Vec<(bool, &str)> = Vec::new();
    // Users this batch brings (earlier in it than the groups that name them).
    let mut arrived: std::collections::BTreeSet<&str> = Default::default();
    for c in changes {
        let (entity, name) = c.entity();
        if c.version.origin == own || (entity == "user" && unfederated_user(name)) {
            continue;
        }
        let removal = matches!(c.change, Replicated::Removed { .. });
        // A removal at the very version held here, from the peer that copy came from:
        // the peer swept it (a full broadcast of its own source no longer had it) and
        // passes the sweep on. Dropped as not newer, the copy here was orphaned — its
        // origin no longer selected it, so its later changes and deletion never came.
        let forwarded_sweep = removal
            && !batch.contains_key(&(entity, name))
            && state
                .federation
                .versions
                .get(entity, name)
                .is_some_and(|r| {
                    !r.removed && c.version == r.version && r.source.as_deref() == Some(source)
                });
        let newer = forwarded_sweep
            || match batch.get(&(entity, name)) {
                Some(v) => c.version > **v,
                None => match state.federation.versions.get(entity, name) {
                    // Swept by a full broadcast: the same version brings it back.
                    Some(r) if r.swept => c.version >= r.version,
                    Some(r) => c.version > r.version,
                    None => state.version_of(entity, name).is_none_or(|v| c.version > v),
                },
            };
        // The same version of a group again (a full broadcast), naming members whose
        // users have arrived here since: applied again. Its members were dropped while
        // their users did not exist here, and the version rule kept them out for good
        // (users selected after their groups, or arriving by another path of a mesh).
        let fills_members = !newer
            && !batch.contains_key(&(entity, name))
            && match &c.change {
                Replicated::Group(g) => {
                    state
                        .federation
                        .versions
                        .get(entity, name)
                        .is_some_and(|r| c.version == r.version)
                        && state
                            .directory
                            .groups
                            .get(g.name.as_str())
                            .is_some_and(|here| {
                                g.members.iter().any(|m| {
                                    !unfederated_user(m)
                                        && !here.members.contains(m)
                                        && (state.directory.users.contains_key(m.as_str())
                                            || arrived.contains(m.as_str()))
                                })
                            })
                }
                _ => false,
            };
        if !newer && !fills_members {
            continue;
        }
        // A user new here takes its name only where a local create could: not an access
        // key's, not a renamed user's SCIM id, no look-alike. Left out (and said), not
        // refused: a refusal would stop the peer's whole stream.
        if let Replicated::User(u) = &c.change {
            let new_here = !state.directory.users.contains_key(u.username.as_str())
                && !arrived.contains(u.username.as_str());
            if new_here {
                if let Err(e) = super::directory::free_for_new_user(state, &u.username) {
                    tracing::warn!(
                        user = %u.username.escape_debug(), peer = source, error = %e,
                        "a user sent by a federation peer was left out"
                    );
                    continue;
                }
            }
        }
        batch.insert((entity, name), &c.version);
        if let Replicated::User(u) = &c.change {
            arrived.insert(u.username.as_str());
        }
        let (source, version) = (source.to_string(), c.version.clone());
        let event = match &c.change {
            Replicated::User(user) => Event::UserReplicated {
                source,
                version,
                user: user.clone(),
            },
            Replicated::Group(group) => {
                // The members are the peer's, except this server's own built-in users:
                // never made members by a peer, never taken out by one.
                let mut group = group.clone();
                group.members.retain(|m| !unfederated_user(m));
                if let Some(here) = state.directory.groups.get(group.name.as_str()) {
                    group
                        .members
                        .extend(here.members.iter().filter(|m| unfederated_user(m)).cloned());
                }
                Event::GroupReplicated {
                    source,
                    version,
                    group,
                }
            }
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
            Replicated::Removed { entity, name } => {
                // A sweep passed on is no deletion (as the peer's own sweep, which
                // `end_broadcast` writes alone): grants and tokens stay.
                if (entity == "user" || entity == "group") && !forwarded_sweep {
                    removed_principals.push((entity == "group", name.as_str()));
                }
                // A user's deletion ends the tokens this server issued to it, as events
                // its own peers receive (the projection's removal is silent).
                if entity == "user" && !forwarded_sweep {
                    events.extend(super::tokens::revocations_of(state, name, true));
                }
                Event::ReplicaRemoved {
                    source,
                    version,
                    entity: entity.clone(),
                    name: name.clone(),
                    // Swept here too: the same version sent again brings it back.
                    swept: forwarded_sweep,
                }
            }
        };
        events.push(event);
    }
    // A principal deleted at the peer leaves this server's permission targets as a local
    // deletion does (a later user of the name inherited its grants). Targets this batch
    // replaces are the peer's to say.
    // And the targets this batch removes: cleaned against the state before the batch,
    // a target deleted at the peer together with a principal it granted was saved again
    // right after its removal, and went on granting here.
    let removed_targets: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::ReplicaRemoved { entity, name, .. } if entity == "permission" => {
                Some(name.clone())
            }
            _ => None,
        })
        .collect();
    let replaced: BTreeSet<&str> = changes
        .iter()
        .filter_map(|c| match &c.change {
            Replicated::Permission(t) => Some(t.name.as_str()),
            _ => None,
        })
        .chain(removed_targets.iter().map(String::as_str))
        .collect();
    // A target that is itself a replica is changed here at the version it has: the
    // peer's own deletion (or rename) rewrites its copy and sends it, and that copy must
    // win. Saved here as a new local write, the cleanup outranked it and went back to the
    // peer, so a user renamed at A lost its grants on A and B (the peer's target, already
    // naming the new name, was overwritten with neither).
    for event in super::permissions::without_principals(state, &removed_principals, &replaced) {
        let Event::PermissionTargetSaved(target) = event else {
            events.push(event);
            continue;
        };
        match state.federation.versions.get("permission", &target.name) {
            Some(r) if !r.removed => match &r.source {
                Some(from) => events.push(Event::PermissionReplicated {
                    source: from.clone(),
                    version: r.version.clone(),
                    target,
                }),
                None => events.push(Event::PermissionTargetSaved(target)),
            },
            _ => events.push(Event::PermissionTargetSaved(target)),
        }
    }
    Ok(events)
}

/// The end of a full broadcast from `source`: what it sent before position `since`
/// here and does not name in `names` (by entity) is gone at the source.
pub(super) fn end_broadcast(
    state: &State,
    source: &str,
    since: u64,
    names: &BTreeMap<String, BTreeSet<String>>,
) -> Result<Vec<Event>, DomainError> {
    let mut events = Vec::new();
    for (entity, name, rec) in state.federation.versions.iter() {
        if rec.removed || rec.applied_seq > since || rec.source.as_deref() != Some(source) {
            continue;
        }
        let Some(kept) = names.get(entity) else {
            // Not part of this broadcast (no longer selected): left as it is.
            continue;
        };
        if !kept.contains(name) {
            events.push(Event::ReplicaRemoved {
                source: source.to_string(),
                version: rec.version.clone(),
                entity: entity.to_string(),
                name: name.to_string(),
                swept: true,
            });
        }
    }
    Ok(events)
}

//! Federation: the targets (peers), the version table of federated entities and how an
//! event updates it, the issuers of replicated tokens, and which entities an event
//! changes.

use crate::shared::{Name, OrdMap, Shared};
use crate::State;
use gatehouse_schemas::{EntityVersion, Envelope, Event, FederationTarget};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Access Federation: the peers this server sends to, and the versions of federated
/// entities (users, groups, permission targets, token records), so that every server
/// keeps the write with the greater version.
///
/// An entity made here and only ever changed here has no entry: its version is derived
/// from its record (`updated_ms`, this server, `updated_seq`), which keeps the replay of
/// a server that does not federate as cheap as before. Entries exist for what came from
/// a peer, for what was changed here after that, for deletions (tombstones, so that a
/// stale copy does not bring the entity back), and for permission targets and token
/// records (which have no timestamps of their own).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Federation {
    pub targets: BTreeMap<String, FederationTargetRecord>,
    pub versions: Versions,
    /// Token records that came from a peer -> the service id that issued them.
    pub token_issuers: OrdMap<String, String>,
}

/// A table of version entries, keyed by name (token id for tokens). Keys and records are
/// shared (`Name`, `Shared`): a write copies the path to its entry, and a copied node's
/// entries are reference counts, not strings (every revocable token issued here has an
/// entry: the node copies were 17 string copies a token issue). Encodes as a map of
/// strings to records, as before.
pub type VersionTable = OrdMap<Name, Shared<VersionRecord>>;

/// Version entries by entity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions {
    pub users: VersionTable,
    pub groups: VersionTable,
    pub permissions: VersionTable,
    pub tokens: VersionTable,
}

impl Versions {
    pub fn of(&self, entity: &str) -> Option<&VersionTable> {
        match entity {
            "user" => Some(&self.users),
            "group" => Some(&self.groups),
            "permission" => Some(&self.permissions),
            "token" => Some(&self.tokens),
            _ => None,
        }
    }

    fn of_mut(&mut self, entity: &str) -> Option<&mut VersionTable> {
        match entity {
            "user" => Some(&mut self.users),
            "group" => Some(&mut self.groups),
            "permission" => Some(&mut self.permissions),
            "token" => Some(&mut self.tokens),
            _ => None,
        }
    }

    pub fn get(&self, entity: &str, name: &str) -> Option<&VersionRecord> {
        self.of(entity).and_then(|m| m.get(name)).map(|r| &**r)
    }

    /// Every entry as (`entity`, name, record).
    pub fn iter<'a>(&'a self) -> impl Iterator<Item = (&'static str, &'a str, &'a VersionRecord)> {
        let entries = |entity: &'static str, m: &'a VersionTable| {
            m.iter().map(move |(n, r)| (entity, &**n, &**r))
        };
        entries("user", &self.users)
            .chain(entries("group", &self.groups))
            .chain(entries("permission", &self.permissions))
            .chain(entries("token", &self.tokens))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FederationTargetRecord {
    pub target: FederationTarget,
    pub created_seq: u64,
    pub updated_seq: u64,
    /// The position the last full broadcast to it covered.
    pub broadcast_position: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub version: EntityVersion,
    /// The peer it came from (`None`: written here).
    pub source: Option<String>,
    /// Position of the event here that wrote it.
    pub applied_seq: u64,
    /// The entity no longer exists (deleted, revoked, or left out of a full broadcast).
    pub removed: bool,
    /// Removed because a full broadcast of its source no longer had it: the same
    /// version sent again (its filters changed back) brings it back.
    #[serde(default)]
    pub swept: bool,
}

/// The federated entities an event made here changes, as (`entity`, name, removed):
/// what the version table records and what the federation stream sends. (A rename
/// also changes the groups of the renamed user: see [`State::federated_changes`].)
pub fn federated_entities(event: &Event) -> Vec<(&'static str, &str, bool)> {
    match event {
        Event::UserCreated(c) => {
            let mut v = vec![("user", c.username.as_str(), false)];
            v.extend(c.groups.iter().map(|g| ("group", g.as_str(), false)));
            v
        }
        Event::UserUpdated(u) => vec![("user", u.username.as_str(), false)],
        Event::UserPasswordChanged { username, .. }
        | Event::UserPasswordExpired { username }
        | Event::UserPasswordUnexpired { username }
        | Event::UserLocked { username }
        | Event::UserUnlocked { username }
        | Event::UserScimSaved { username, .. } => vec![("user", username.as_str(), false)],
        Event::UserDeleted { username } => vec![("user", username.as_str(), true)],
        Event::UserRenamed { from, to } => {
            vec![("user", from.as_str(), true), ("user", to.as_str(), false)]
        }
        Event::GroupCreated(g) => vec![("group", g.name.as_str(), false)],
        Event::GroupUpdated(g) => vec![("group", g.name.as_str(), false)],
        Event::GroupScimSaved { name, .. } => vec![("group", name.as_str(), false)],
        Event::GroupDeleted { name } => vec![("group", name.as_str(), true)],
        Event::GroupMembersChanged { group, .. } => vec![("group", group.as_str(), false)],
        Event::UserGroupsChanged { added, removed, .. } => added
            .iter()
            .chain(removed)
            .map(|g| ("group", g.as_str(), false))
            .collect(),
        Event::PermissionTargetSaved(t) => vec![("permission", t.name.as_str(), false)],
        Event::PermissionTargetDeleted { name } => vec![("permission", name.as_str(), true)],
        Event::TokenIssued(t) if t.revocable => vec![("token", t.token_id.as_str(), false)],
        Event::TokenRefreshed {
            old_token_id,
            issued,
        } => {
            let mut v = vec![("token", old_token_id.as_str(), true)];
            if issued.revocable {
                v.push(("token", issued.token_id.as_str(), false));
            }
            v
        }
        Event::TokenRevoked { token_id } => vec![("token", token_id.as_str(), true)],
        _ => vec![],
    }
}

impl Federation {
    /// Federation target events. (Replicated entities are applied by the part they
    /// belong to; their versions are recorded by [`State::track_versions`].)
    pub(crate) fn apply(&mut self, event: &Event, seq: u64) {
        match event {
            Event::FederationTargetSaved(t) => {
                let rec =
                    self.targets
                        .entry(t.name.clone())
                        .or_insert_with(|| FederationTargetRecord {
                            created_seq: seq,
                            ..Default::default()
                        });
                rec.target = t.clone();
                rec.updated_seq = seq;
            }
            Event::FederationTargetDeleted { name } => {
                self.targets.remove(name);
            }
            Event::FederationBroadcastDone {
                target, position, ..
            } => {
                if let Some(rec) = self.targets.get_mut(target) {
                    rec.broadcast_position = Some(*position);
                }
            }
            _ => {}
        }
    }
}

impl State {
    /// The federated entities an event changed: those of [`federated_entities`] and
    /// `left`, the groups a deleted or renamed user left ([`State::groups_left_by`],
    /// read before the event).
    pub fn federated_changes(
        &self,
        event: &Event,
        left: &[String],
    ) -> Vec<(&'static str, String, bool)> {
        federated_entities(event)
            .into_iter()
            .map(|(e, n, r)| (e, n.to_string(), r))
            .chain(left.iter().map(|g| ("group", g.clone(), false)))
            .collect()
    }

    /// The version of `entity` `name` here: its entry, or one derived from its record
    /// (see [`Federation`]).
    pub fn version_of(&self, entity: &str, name: &str) -> Option<EntityVersion> {
        if let Some(r) = self.federation.versions.get(entity, name) {
            return Some(r.version.clone());
        }
        let own = || self.service_id.clone().unwrap_or_default();
        match entity {
            "user" => self.directory.users.get(name).map(|u| EntityVersion {
                time_ms: u.updated_ms,
                origin: own(),
                origin_seq: u.updated_seq,
            }),
            "group" => self.directory.groups.get(name).map(|g| EntityVersion {
                time_ms: g.updated_ms,
                origin: own(),
                origin_seq: g.updated_seq,
            }),
            _ => None,
        }
    }

    /// Record the versions of the federated entities the event wrote.
    pub(crate) fn track_versions(&mut self, env: &Envelope, left: &[String]) {
        let seq = env.seq;
        let replicated = match &env.event {
            Event::UserReplicated {
                source,
                version,
                user,
            } => Some((source, version, "user", &user.username, false, false)),
            Event::GroupReplicated {
                source,
                version,
                group,
            } => Some((source, version, "group", &group.name, false, false)),
            Event::PermissionReplicated {
                source,
                version,
                target,
            } => Some((source, version, "permission", &target.name, false, false)),
            Event::TokenReplicated {
                source,
                version,
                token,
                ..
            } => Some((source, version, "token", &token.token_id, false, false)),
            Event::ReplicaRemoved {
                source,
                version,
                entity,
                name,
                swept,
            } => Some((source, version, entity.as_str(), name, true, *swept)),
            _ => None,
        };
        if let Some((source, version, entity, name, removed, swept)) = replicated {
            if let Some(map) = self.federation.versions.of_mut(entity) {
                map.insert(
                    name.as_str().into(),
                    Shared::new(VersionRecord {
                        version: version.clone(),
                        source: Some(source.clone()),
                        applied_seq: seq,
                        removed,
                        swept,
                    }),
                );
            }
            return;
        }
        // The common case — a server that never received anything, a user or group
        // event — needs no entry at all (its version is derived from the record).
        let needs_entry = match &env.event {
            Event::UserDeleted { .. } | Event::GroupDeleted { .. } | Event::UserRenamed { .. } => {
                true
            }
            Event::PermissionTargetSaved(_)
            | Event::PermissionTargetDeleted { .. }
            | Event::TokenIssued(_)
            | Event::TokenRefreshed { .. }
            | Event::TokenRevoked { .. } => true,
            _ => {
                !self.federation.versions.users.is_empty()
                    || !self.federation.versions.groups.is_empty()
            }
        };
        if !needs_entry {
            return;
        }
        let touched = federated_entities(&env.event);
        if touched.is_empty() {
            return;
        }
        let origin = &env.origin;
        let targets_empty = self.federation.targets.is_empty();
        let groups = left.iter().map(|g| ("group", g.as_str(), false));
        for (entity, name, removed) in touched.into_iter().chain(groups) {
            let Some(map) = self.federation.versions.of_mut(entity) else {
                continue;
            };
            // Users and groups without an entry derive their version from the record;
            // the others, deletions, and entities that hold a peer's version need one.
            let always = matches!(entity, "permission" | "token") || removed;
            match map.get_mut(name) {
                // A token issued here and revoked here while the server has no
                // federation targets keeps no entry. The entry of a revoked token
                // serves two ends: to send the revocation to peers (there are none to
                // stream to, and a target added later gets a full broadcast, which no
                // longer holds the token), and to refuse a peer's stale copy (a copy
                // of a token whose version is this server's is refused by its origin,
                // see `domain::federation::apply_replicated`). Keeping it would grow
                // the state by one record per token for ever.
                Some(r)
                    if entity == "token"
                        && removed
                        && r.source.is_none()
                        && r.version.origin == *origin
                        && targets_empty =>
                {
                    map.remove(name);
                }
                Some(r) => {
                    let r = r.make_mut();
                    // Never below the version it replaces, whatever this server's clock
                    // says (a peer's clock may run ahead): a later write here must win.
                    r.version = EntityVersion {
                        time_ms: env.time_ms.max(r.version.time_ms + 1),
                        origin: origin.clone(),
                        origin_seq: seq,
                    };
                    r.source = None;
                    r.applied_seq = seq;
                    r.removed = removed;
                    r.swept = false;
                }
                None if always => {
                    map.insert(
                        name.into(),
                        Shared::new(VersionRecord {
                            version: EntityVersion {
                                time_ms: env.time_ms,
                                origin: origin.clone(),
                                origin_seq: seq,
                            },
                            source: None,
                            applied_seq: seq,
                            removed,
                            swept: false,
                        }),
                    );
                }
                None => {}
            }
        }
    }

    /// A replica removed by its source goes the way the local deletion (or revocation)
    /// of the entity goes. An unknown `entity` changes nothing.
    pub(crate) fn remove_replica(&mut self, entity: &str, name: &str, seq: u64, now: u64) {
        let local = match entity {
            "user" => Event::UserDeleted {
                username: name.to_string(),
            },
            "group" => Event::GroupDeleted {
                name: name.to_string(),
            },
            "permission" => Event::PermissionTargetDeleted {
                name: name.to_string(),
            },
            "token" => Event::TokenRevoked {
                token_id: name.to_string(),
            },
            _ => return,
        };
        self.apply_event(&local, seq, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_schemas::{FederationTarget, TokenIssued};

    const HERE: &str = "jfac@01here";
    const PEER: &str = "jfac@01peer";

    fn env(seq: u64, origin: &str, event: Event) -> Envelope {
        Envelope {
            seq,
            time_ms: 1_700_000_000_000 + seq,
            actor: "admin".into(),
            origin: origin.into(),
            request_id: format!("r{seq}"),
            event,
        }
    }

    /// A record, boxed or shared as the event it goes into holds it.
    fn token<P: From<TokenIssued>>(id: &str) -> P {
        P::from(TokenIssued {
            token_id: id.into(),
            subject: "alice".into(),
            transient: false,
            scope: "applied-permissions/user".into(),
            audience: "*@*".into(),
            issued_at: 1_700_000_000,
            expires_at: Some(1_800_000_000),
            refreshable: true,
            revocable: true,
            description: None,
            kid: "k1".into(),
            access_hash: format!("access-{id}"),
            refresh_hash: Some(format!("refresh-{id}")),
            reference_hash: None,
            self_issued: false,
            force_revocable: false,
        })
    }

    /// A state of this server (`HERE`), with a federation target when `target`.
    fn state(target: bool) -> (State, u64) {
        let mut s = State::default();
        let mut events = vec![Event::ServiceCreated {
            service_id: HERE.into(),
        }];
        if target {
            events.push(Event::FederationTargetSaved(FederationTarget {
                name: "east".into(),
                url: "https://east.example/access/".into(),
                entities: vec!["tokens".into()],
                include_patterns: vec![],
                exclude_patterns: vec![],
                active: true,
                ..Default::default()
            }));
        }
        let mut seq = 0;
        for e in events {
            seq += 1;
            s.apply(&env(seq, HERE, e));
        }
        (s, seq)
    }

    fn revoke(id: &str) -> Event {
        Event::TokenRevoked {
            token_id: id.into(),
        }
    }

    #[test]
    fn a_token_issued_and_revoked_here_without_targets_leaves_no_entry() {
        let (mut s, seq) = state(false);
        s.apply(&env(seq + 1, HERE, Event::TokenIssued(token("t1"))));
        assert!(s.federation.versions.tokens.contains_key("t1"));
        s.apply(&env(seq + 2, HERE, revoke("t1")));
        assert!(!s.federation.versions.tokens.contains_key("t1"));
        assert!(!s.tokens.by_id.contains_key("t1"));
        // A refresh ends the old token the same way; the new one has its entry.
        s.apply(&env(seq + 3, HERE, Event::TokenIssued(token("t2"))));
        s.apply(&env(
            seq + 4,
            HERE,
            Event::TokenRefreshed {
                old_token_id: "t2".into(),
                issued: token("t3"),
            },
        ));
        assert!(!s.federation.versions.tokens.contains_key("t2"));
        assert!(s.federation.versions.tokens.contains_key("t3"));
        // Many issued and revoked: the version table does not grow.
        for i in 0..100 {
            let id = format!("churn{i}");
            s.apply(&env(seq + 10 + 2 * i, HERE, Event::TokenIssued(token(&id))));
            s.apply(&env(seq + 11 + 2 * i, HERE, revoke(&id)));
        }
        assert_eq!(s.federation.versions.tokens.len(), 1);
    }

    #[test]
    fn a_revoked_token_keeps_its_tombstone_while_there_are_targets() {
        let (mut s, seq) = state(true);
        s.apply(&env(seq + 1, HERE, Event::TokenIssued(token("t1"))));
        s.apply(&env(seq + 2, HERE, revoke("t1")));
        let r = &s.federation.versions.tokens["t1"];
        assert!(r.removed && r.source.is_none());
        assert_eq!(r.version.origin_seq, seq + 2);
    }

    #[test]
    fn a_peer_token_revoked_here_keeps_its_tombstone_without_targets() {
        // Its peer may send its stale copy again: only the tombstone's greater
        // version refuses it.
        let (mut s, seq) = state(false);
        s.apply(&env(
            seq + 1,
            PEER,
            Event::TokenReplicated {
                source: "east".into(),
                version: EntityVersion {
                    time_ms: 1_700_000_000_000,
                    origin: PEER.into(),
                    origin_seq: 7,
                },
                issuer: PEER.into(),
                token: token("p1"),
            },
        ));
        s.apply(&env(seq + 2, HERE, revoke("p1")));
        let r = &s.federation.versions.tokens["p1"];
        assert!(r.removed);
        assert_eq!(r.version.origin, HERE);
    }
}

//! Read models of Gatehouse: pure folds of the event log.
//!
//! [`State::apply`] is the only way state changes. The live server, a replay from
//! scratch, a restart from a snapshot and (later) a point-in-time read all run this same
//! code, which is what makes "replay equals live" provable with [`State::digest`].
//!
//! **Architecture invariant:** nothing here knows about sled, HTTP, clocks or
//! randomness. `apply` is deterministic: the same events give the same bytes.
//!
//! `apply` is total: the domain (`decide`) checks every precondition before an event is
//! written, so an event that refers to something missing is simply a no-op here rather
//! than a reason to stop.
//!
//! One module per part of the model, each with its read model and the `apply` for its
//! events; [`State::apply`] hands every event to the part it is about.

mod access_keys;
mod directory;
mod federation;
mod keys;
mod ldap;
mod permissions;
mod projects;
mod repositories;
mod settings;
pub mod shared;
mod subscriptions;
mod tokens;

pub use access_keys::{access_key_username, AccessKeyRecord, AccessKeys, EntitlementRecord};
pub use directory::{Directory, Group, User, ANONYMOUS};
pub use federation::{
    federated_entities, Federation, FederationTargetRecord, VersionRecord, VersionTable, Versions,
};
pub use keys::Keys;
pub use ldap::Ldap;
pub use permissions::Permissions;
pub use projects::{predefined_roles, ProjectRecord, Projects};
pub use repositories::{Repositories, RepositoryRecord};
pub use settings::Settings;
pub use shared::{OrdMap, OrdSet, Shared, SortedSet};
pub use subscriptions::SubscriptionRecord;
pub use tokens::{past_use, Tokens};

use gatehouse_schemas::{Envelope, Event};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The whole read state. Maps are ordered so the encoding is canonical; the large ones are
/// persistent and the small parts sit behind [`Shared`], so that a clone shares what
/// does not change (see [`shared`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// `jfac@<ulid>`, set by the first event of the log.
    pub service_id: Option<String>,
    /// Position of the last applied event (0 before any).
    pub seq: u64,
    /// Time of the last applied event, unix milliseconds.
    pub time_ms: u64,
    pub directory: Directory,
    #[serde(default)]
    pub tokens: Tokens,
    #[serde(default)]
    pub keys: Shared<Keys>,
    #[serde(default)]
    pub permissions: Permissions,
    #[serde(default)]
    pub repositories: Shared<Repositories>,
    #[serde(default)]
    pub projects: Shared<Projects>,
    #[serde(default)]
    pub access_keys: AccessKeys,
    /// Signed checkpoints, oldest first.
    #[serde(default)]
    pub checkpoints: Shared<Vec<gatehouse_schemas::Checkpoint>>,
    /// Webhook subscriptions by key.
    #[serde(default)]
    pub subscriptions: Shared<BTreeMap<String, SubscriptionRecord>>,
    /// Federation targets and the version of every federated entity.
    #[serde(default)]
    pub federation: Federation,
    /// Security settings changed at run time. Left out while unset, so that the state
    /// of a log without settings events encodes (and digests) as it always did.
    /// INVARIANT: the last field (a positional encoding may only omit a trailing one).
    #[serde(default, skip_serializing_if = "Settings::is_unset")]
    pub settings: Settings,
}

impl State {
    /// Fold one event into the state. See the crate docs for why this cannot fail.
    pub fn apply(&mut self, envelope: &Envelope) {
        let seq = envelope.seq;
        let now = envelope.time_ms;
        self.seq = seq;
        self.time_ms = self.time_ms.max(envelope.time_ms);
        // A deleted or renamed user leaves its groups: their member lists change too.
        let left = self.groups_left_by(&envelope.event);
        let password_set = self.password_set_by(&envelope.event).map(str::to_string);
        self.apply_event(&envelope.event, seq, now);
        if let Some(username) = password_set {
            self.record_password_set(&username, now);
        }
        self.track_versions(envelope, &left);
    }

    /// Hand the event to the part of the model it is about (each part's `apply` ignores
    /// events it is not handed). `self.<part>.apply` changes that part and the parts
    /// passed to it; a `State` method is a rule that spans parts, kept in the file of
    /// the part the event is about: a deleted or renamed user and a deleted group in
    /// `directory.rs`, a removed replica in `federation.rs`. There is no `_` arm, so a
    /// new event does not compile until it is routed.
    fn apply_event(&mut self, event: &Event, seq: u64, now: u64) {
        match event {
            Event::ServiceCreated { service_id } => self.service_id = Some(service_id.clone()),
            Event::CheckpointSigned(c) => self.checkpoints.make_mut().push(c.clone()),
            Event::UserCreated(_)
            | Event::UserUpdated(_)
            | Event::UserPasswordChanged { .. }
            | Event::UserPasswordExpired { .. }
            | Event::UserLocked { .. }
            | Event::AnonymousAccessChanged { .. }
            | Event::UserUnlocked { .. }
            | Event::UserPasswordUnexpired { .. }
            | Event::UserScimSaved { .. }
            | Event::UserGroupsChanged { .. }
            | Event::GroupCreated(_)
            | Event::GroupUpdated(_)
            | Event::GroupScimSaved { .. }
            | Event::GroupMembersChanged { .. }
            | Event::UserReplicated { .. }
            | Event::GroupReplicated { .. } => self.directory.apply(event, seq, now),
            Event::UserDeleted { username } => self.delete_user(username, seq, now),
            Event::UserRenamed { from, to } => self.rename_user(from, to, seq, now),
            Event::GroupDeleted { name } => self.delete_group(name, seq, now),
            Event::TokenIssued(_)
            | Event::TokenRefreshed { .. }
            | Event::TokenRevoked { .. }
            | Event::TokensExpired { .. }
            | Event::TokenReplicated { .. } => self.tokens.apply(event, &mut self.federation),
            Event::SigningKeyAdded { .. }
            | Event::SigningKeysReset { .. }
            | Event::TrustedKeyAdded { .. }
            | Event::TrustedKeyRemoved { .. }
            | Event::SignedUrlKeyReplaced { .. }
            | Event::ServicePaired { .. } => self.keys.make_mut().apply(event),
            Event::PermissionTargetSaved(_)
            | Event::PermissionTargetDeleted { .. }
            | Event::PermissionReplicated { .. } => self.permissions.apply(event, seq),
            Event::RepositorySaved(_)
            | Event::RepositoryDeleted { .. }
            | Event::RepositoryAttached { .. }
            | Event::RepositoryUnassigned { .. }
            | Event::RepositoryShared { .. }
            | Event::RepositoryUnshared { .. } => {
                let projects = self.projects.make_mut();
                (self.repositories.make_mut()).apply(event, seq, &mut self.permissions, projects)
            }
            Event::ProjectSaved(_)
            | Event::ProjectDeleted { .. }
            | Event::ProjectRoleSaved { .. }
            | Event::ProjectRoleDeleted { .. }
            | Event::GlobalRoleSaved(_)
            | Event::GlobalRoleDeleted { .. }
            | Event::ProjectMemberSaved { .. }
            | Event::ProjectMemberRemoved { .. } => {
                let repositories = self.repositories.make_mut();
                self.projects.make_mut().apply(event, seq, repositories)
            }
            Event::AccessKeySaved(_)
            | Event::AccessKeyDeleted { .. }
            | Event::EntitlementSaved(_)
            | Event::EntitlementDeleted { .. } => self.access_keys.apply(event, seq),
            Event::SubscriptionSaved(_) | Event::SubscriptionDeleted { .. } => {
                subscriptions::apply(self.subscriptions.make_mut(), event, seq)
            }
            Event::FederationTargetSaved(_)
            | Event::FederationTargetDeleted { .. }
            | Event::FederationBroadcastDone { .. } => self.federation.apply(event, seq),
            Event::ReplicaRemoved { entity, name, .. } => {
                self.remove_replica(entity, name, seq, now)
            }
            Event::DefaultTokenExpiryChanged { .. }
            | Event::UserLockPolicyChanged(_)
            | Event::PasswordExpirationPolicyChanged(_)
            | Event::PasswordPolicyChanged(_)
            | Event::BasicAuthenticationChanged { .. } => self.settings.apply(event, now),
            Event::LdapSettingSaved(_)
            | Event::LdapSettingDeleted { .. }
            | Event::LdapGroupSettingSaved(_)
            | Event::LdapGroupSettingDeleted { .. } => self.settings.ldap.apply(event, seq),
        }
    }

    /// Canonical encoding of the whole state (used for snapshots and the digest).
    /// Positional (field names left out): a snapshot is derived data that is rebuilt from
    /// the log when its format changes, and leaving the names out halves decoding time.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_to(&mut out).expect("state always encodes");
        out
    }

    /// [`encode`](Self::encode), written to `out` as it goes: a snapshot streams into its
    /// file without holding the whole encoding in memory.
    pub fn encode_to<W: std::io::Write>(
        &self,
        out: &mut W,
    ) -> Result<(), rmp_serde::encode::Error> {
        rmp_serde::encode::write(out, self)
    }

    pub fn decode(bytes: &[u8]) -> Result<State, rmp_serde::decode::Error> {
        rmp_serde::from_slice(bytes)
    }

    /// blake3 over the canonical encoding: equal digests mean equal states.
    pub fn digest(&self) -> String {
        blake3::hash(&self.encode()).to_hex().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_schemas::samples;

    /// A snapshot writes its header, then streams the state through a small buffer into
    /// its file: the bytes after the header are exactly `encode`'s.
    #[test]
    fn encode_to_streams_what_encode_gives() {
        let mut state = State::default();
        for env in samples() {
            state.apply(&env);
        }
        let mut out = std::io::BufWriter::with_capacity(7, b"header".to_vec());
        state.encode_to(&mut out).unwrap();
        let out = out.into_inner().unwrap();
        assert_eq!(&out[..6], b"header");
        assert_eq!(&out[6..], &state.encode()[..]);
    }

    #[test]
    fn same_events_same_digest() {
        let mut a = State::default();
        let mut b = State::default();
        for e in samples() {
            a.apply(&e);
            b.apply(&e);
        }
        assert_eq!(a.digest(), b.digest());
        let restored = State::decode(&a.encode()).unwrap();
        assert_eq!(restored, a);
    }

    /// The server publishes a clone of the writer's state after every batch and the
    /// writer goes on changing its own: the clone must share every record the later
    /// events do not touch, and must not see those events.
    #[test]
    fn a_clone_shares_what_later_events_leave_alone_and_does_not_see_them() {
        use gatehouse_schemas::{Envelope, Event, UserCreated, UserStatus};
        let env = |seq: u64, event: Event| Envelope {
            seq,
            time_ms: seq,
            actor: "t".into(),
            origin: "o".into(),
            request_id: "r".into(),
            event,
        };
        let mut writer = State::default();
        for i in 0..200u64 {
            writer.apply(&env(
                i + 1,
                Event::UserCreated(UserCreated {
                    username: format!("u{i:03}"),
                    email: None,
                    password_hash: None,
                    admin: false,
                    profile_updatable: true,
                    internal_password_disabled: true,
                    disable_ui_access: false,
                    realm: "internal".into(),
                    status: UserStatus::Enabled,
                    groups: vec![],
                    scim: None,
                }),
            ));
        }
        let published = writer.clone();
        let digest = published.digest();
        writer.apply(&env(
            201,
            Event::UserLocked {
                username: "u100".into(),
            },
        ));
        assert_eq!(published.digest(), digest, "the clone saw a later event");
        assert_eq!(
            published.directory.users["u100"].status,
            UserStatus::Enabled
        );
        assert_eq!(writer.directory.users["u100"].status, UserStatus::Locked);
        for (name, user) in published.directory.users.iter() {
            let same = Shared::ptr_eq(user, &writer.directory.users[name]);
            assert_eq!(same, &**name != "u100", "{name}");
        }
    }
}

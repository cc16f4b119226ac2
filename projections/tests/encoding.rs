//! Guards the canonical encoding of `State` and the crate's public paths.
//!
//! A snapshot and `State::digest()` are the bytes of `State::encode()`: moving code
//! between files must not change them. The constants below were recorded from the code
//! before the read models were split into one file per aggregate; a change to the
//! encoding (a reordered or renamed field, a changed serde attribute) or to what `apply`
//! does changes them. Change them only on purpose, with the reason in the commit.

use gatehouse_projections::{
    access_key_username, federated_entities, predefined_roles, AccessKeyRecord, AccessKeys,
    Directory, EntitlementRecord, Federation, FederationTargetRecord, Group, Keys, OrdMap,
    Permissions, ProjectRecord, Projects, Repositories, RepositoryRecord, Shared, State,
    SubscriptionRecord, Tokens, User, VersionRecord, VersionTable, Versions,
};
use gatehouse_schemas::{
    AccessKey, AdminPrivileges, Checkpoint, Entitlement, EntityVersion, Envelope, Event,
    FederationTarget, GroupCreated, GroupUpdated, PermissionSection, PermissionTarget, Project,
    ProjectRole, ReplicatedGroup, ReplicatedUser, Repository, Subscription, SubscriptionHandler,
    TokenIssued, UserCreated, UserStatus, UserUpdated,
};
use std::collections::{BTreeMap, BTreeSet};

/// Digest of the state after the whole scenario.
const FINAL_DIGEST: &str = "9820f4f1362764f7d5d1a1f60559a57f4c7955ab00f970a4e9208461588f3a1c";
/// blake3 over the digests after every event of the scenario, one a line.
const TRAIL_DIGEST: &str = "13b7527076105d1362a71e1a2eab924a175079e5322b2687ec1bdd8dbd235080";

const HERE: &str = "jfac@01here";
const PEER: &str = "jfac@01peer";

fn env(seq: u64, origin: &str, event: Event) -> Envelope {
    Envelope {
        seq,
        // Not equal to seq, and once going backwards: `time_ms` keeps the maximum.
        time_ms: if seq == 40 {
            1_000
        } else {
            1_700_000_000_000 + seq * 7
        },
        actor: "admin".into(),
        origin: origin.into(),
        request_id: format!("r{seq}"),
        event,
    }
}

fn user(name: &str, groups: &[&str]) -> Event {
    Event::UserCreated(UserCreated {
        username: name.into(),
        email: Some(format!("{name}@example.com")),
        password_hash: Some(format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$h-{name}")),
        admin: false,
        profile_updatable: true,
        internal_password_disabled: false,
        disable_ui_access: false,
        realm: "internal".into(),
        status: UserStatus::Enabled,
        groups: groups.iter().map(|s| s.to_string()).collect(),
        scim: None,
    })
}

fn group(name: &str, auto_join: bool, admin: bool, members: &[&str]) -> GroupCreated {
    GroupCreated {
        name: name.into(),
        description: Some(format!("the {name}")),
        auto_join,
        admin_privileges: admin,
        realm: "internal".into(),
        realm_attributes: None,
        external_id: None,
        members: members.iter().map(|s| s.to_string()).collect(),
    }
}

/// A record, boxed or shared as the event it goes into holds it.
fn token<P: From<TokenIssued>>(id: &str, subject: &str, revocable: bool, transient: bool) -> P {
    P::from(TokenIssued {
        token_id: id.into(),
        subject: subject.into(),
        transient,
        scope: "applied-permissions/user".into(),
        audience: "*@*".into(),
        issued_at: 1_700_000_000,
        expires_at: Some(1_800_000_000),
        refreshable: true,
        revocable,
        description: Some(format!("token {id}")),
        kid: "k1".into(),
        access_hash: format!("access-{id}"),
        refresh_hash: Some(format!("refresh-{id}")),
        reference_hash: (!id.ends_with('3')).then(|| format!("reference-{id}")),
        self_issued: false,
        force_revocable: false,
    })
}

fn section(users: &[(&str, &[&str])], groups: &[(&str, &[&str])]) -> PermissionSection {
    let map = |entries: &[(&str, &[&str])]| -> BTreeMap<String, Vec<String>> {
        entries
            .iter()
            .map(|(n, a)| (n.to_string(), a.iter().map(|s| s.to_string()).collect()))
            .collect()
    };
    PermissionSection {
        include_patterns: vec!["**".into()],
        exclude_patterns: vec!["secret/**".into()],
        repositories: vec!["ANY LOCAL".into(), "libs-local".into()],
        users: map(users),
        groups: map(groups),
        ..Default::default()
    }
}

fn target(name: &str) -> Box<PermissionTarget> {
    Box::new(PermissionTarget {
        name: name.into(),
        repo: Some(section(
            &[("alice", &["read", "write"]), ("bob", &["read"])],
            &[("readers", &["read"])],
        )),
        build: Some(section(&[("alice", &["manage"])], &[])),
        release_bundle: None,
    })
}

fn repo(key: &str, rclass: &str) -> Event {
    Event::RepositorySaved(Repository {
        key: key.into(),
        rclass: rclass.into(),
        package_type: Some("maven".into()),
        description: None,
        environments: vec!["DEV".into()],
        ..Default::default()
    })
}

fn project(key: &str) -> Event {
    Event::ProjectSaved(Project {
        project_key: key.into(),
        display_name: key.to_uppercase(),
        description: Some("a project".into()),
        admin_privileges: AdminPrivileges {
            manage_members: true,
            manage_resources: false,
            manage_security_assets: true,
            index_resources: false,
            allow_ignore_rules: true,
        },
        storage_quota_bytes: -1,
        soft_limit: false,
        storage_quota_email_notification: true,
    })
}

fn member(project: &str, kind: &str, name: &str, roles: &[&str]) -> Event {
    Event::ProjectMemberSaved {
        project_key: project.into(),
        kind: kind.into(),
        name: name.into(),
        roles: roles.iter().map(|s| s.to_string()).collect(),
    }
}

fn access_key(org: &str, id: &str) -> Event {
    Event::AccessKeySaved(AccessKey {
        org: org.into(),
        id: id.into(),
        password_hash: format!("$argon2id$key-{id}"),
        expiry_ms: Some(1_900_000_000_000),
        existence_check: None,
        allowed_cidrs: vec!["10.0.0.0/8".into()],
        blocked_cidrs: vec![],
    })
}

fn entitlement(id: &str, keys: &[&str], access: &str) -> Event {
    Event::EntitlementSaved(Entitlement {
        id: id.into(),
        org: "acme".into(),
        repo: "libs-local".into(),
        package: Some("pkg".into()),
        version: None,
        path: None,
        access: access.into(),
        access_keys: keys.iter().map(|s| s.to_string()).collect(),
        tags: vec!["t".into()],
    })
}

fn subscription(key: &str, enabled: bool) -> Event {
    Event::SubscriptionSaved(Subscription {
        key: key.into(),
        description: Some("hook".into()),
        enabled,
        domain: "user".into(),
        event_types: vec!["created".into(), "deleted".into()],
        include_patterns: vec![],
        exclude_patterns: vec![],
        handlers: vec![SubscriptionHandler {
            handler_type: "webhook".into(),
            url: "https://hooks.example/in".into(),
            secret: Some("enc:v1:abc".into()),
            proxy: None,
            headers: vec![("X-A".into(), "1".into())],
            payload: None,
            secrets: vec![],
        }],
        criteria: None,
    })
}

fn fed_target(name: &str) -> Event {
    Event::FederationTargetSaved(FederationTarget {
        name: name.into(),
        url: format!("https://{name}.example/access/"),
        entities: vec![
            "users".into(),
            "groups".into(),
            "permissions".into(),
            "tokens".into(),
        ],
        include_patterns: vec!["*".into()],
        exclude_patterns: vec![],
        active: true,
        ..Default::default()
    })
}

fn version(time_ms: u64, origin_seq: u64) -> EntityVersion {
    EntityVersion {
        time_ms,
        origin: PEER.into(),
        origin_seq,
    }
}

/// Every kind of event, on entities that exist, so that each one changes something;
/// the events that reach across parts (deletions, a rename, repository and project
/// changes, replicas) come after what they reach.
fn scenario() -> Vec<Envelope> {
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let here = vec![
        Event::ServiceCreated {
            service_id: HERE.into(),
        },
        Event::SigningKeyAdded {
            kid: "k1".into(),
            public_key: "pk1".into(),
        },
        Event::GroupCreated(group("readers", true, false, &[])),
        Event::GroupCreated(group("admins", false, true, &[])),
        user("alice", &["readers"]),
        user("bob", &["readers", "admins"]),
        user("carol", &[]),
        Event::GroupCreated(group("writers", false, false, &["alice", "carol"])),
        Event::UserUpdated(UserUpdated {
            username: "alice".into(),
            email: Some("alice@corp.example".into()),
            admin: Some(true),
            internal_password_disabled: Some(true),
            ..Default::default()
        }),
        Event::UserUpdated(UserUpdated {
            username: "carol".into(),
            email: Some(String::new()),
            profile_updatable: Some(false),
            disable_ui_access: Some(true),
            status: Some(UserStatus::Disabled),
            ..Default::default()
        }),
        Event::UserPasswordChanged {
            username: "alice".into(),
            password_hash: "$argon2id$new".into(),
        },
        Event::UserPasswordExpired {
            username: "bob".into(),
        },
        Event::UserLocked {
            username: "bob".into(),
        },
        Event::UserUnlocked {
            username: "bob".into(),
        },
        Event::UserLocked {
            username: "carol".into(),
        },
        Event::GroupUpdated(GroupUpdated {
            name: "readers".into(),
            description: Some("readers of everything".into()),
            auto_join: Some(false),
            realm: Some("ldap".into()),
            realm_attributes: Some("cn=readers".into()),
            external_id: Some("ext-1".into()),
            ..Default::default()
        }),
        Event::GroupUpdated(GroupUpdated {
            name: "writers".into(),
            auto_join: Some(true),
            admin_privileges: Some(true),
            ..Default::default()
        }),
        Event::GroupMembersChanged {
            group: "admins".into(),
            added: s(&["alice", "nobody"]),
            removed: s(&["bob"]),
        },
        Event::UserGroupsChanged {
            username: "bob".into(),
            added: s(&["admins", "writers"]),
            removed: s(&["readers"]),
        },
        Event::UserScimSaved {
            username: "alice".into(),
            attributes: r#"{"name":{"givenName":"Alice"}}"#.into(),
        },
        Event::GroupScimSaved {
            name: "readers".into(),
            attributes: r#"{"displayName":"Readers"}"#.into(),
        },
        Event::TokenIssued(token("t1", "alice", true, false)),
        Event::TokenIssued(token("t22", "bob", true, false)),
        Event::TokenIssued(token("t3", "alice", false, false)),
        Event::TokenIssued(token("t44", "ghost", true, true)),
        Event::TokenIssued(token("t5", "alice", true, false)),
        Event::TokenRefreshed {
            old_token_id: "t22".into(),
            issued: token("t66", "bob", true, false),
        },
        Event::TokenRevoked {
            token_id: "t5".into(),
        },
        Event::TrustedKeyAdded {
            name: "other".into(),
            kid: "ok".into(),
            public_key: "opk".into(),
            spki: None,
        },
        Event::TrustedKeyAdded {
            name: "gone".into(),
            kid: "gk".into(),
            public_key: "gpk".into(),
            spki: None,
        },
        Event::TrustedKeyRemoved {
            name: "gone".into(),
        },
        Event::SignedUrlKeyReplaced {
            version: 3,
            org: None,
        },
        Event::ServicePaired {
            use_case: "federation".into(),
            name: "peer".into(),
            service_id: PEER.into(),
            kid: "pk".into(),
            public_key: "ppk".into(),
            base_url: None,
            master_token_id: None,
            pairing_token_id: None,
        },
        Event::SigningKeyAdded {
            kid: "k2".into(),
            public_key: "pk2".into(),
        },
        repo("libs-local", "local"),
        repo("remote-1", "remote"),
        repo("other-local", "local"),
        Event::PermissionTargetSaved(target("pt1")),
        Event::PermissionTargetSaved(target("pt-gone")),
        // seq 40: a clock that went backwards.
        Event::PermissionTargetDeleted {
            name: "pt-gone".into(),
        },
        project("p1"),
        project("p2"),
        project("p3"),
        Event::ProjectRoleSaved {
            project_key: "p1".into(),
            role: ProjectRole {
                name: "Custom".into(),
                description: Some("custom".into()),
                actions: s(&["READ_REPOSITORY"]),
                environments: s(&["DEV"]),
            },
        },
        Event::ProjectRoleSaved {
            project_key: "p1".into(),
            role: ProjectRole {
                name: "Only".into(),
                description: None,
                actions: s(&["READ_BUILD"]),
                environments: s(&["PROD"]),
            },
        },
        member("p1", "user", "alice", &["Custom", "Developer"]),
        member("p1", "user", "carol", &["Only"]),
        member("p1", "group", "readers", &["Viewer"]),
        member("p2", "user", "bob", &["Viewer"]),
        member("p2", "group", "admins", &["Project Admin"]),
        member("p2", "user", "alice", &["Viewer"]),
        Event::ProjectMemberRemoved {
            project_key: "p2".into(),
            kind: "user".into(),
            name: "alice".into(),
        },
        Event::ProjectRoleDeleted {
            project_key: "p1".into(),
            role: "Only".into(),
        },
        Event::RepositoryAttached {
            repo: "libs-local".into(),
            project_key: "p1".into(),
        },
        Event::RepositoryShared {
            repo: "libs-local".into(),
            project_key: Some("p2".into()),
        },
        Event::RepositoryShared {
            repo: "libs-local".into(),
            project_key: Some("p3".into()),
        },
        Event::RepositoryShared {
            repo: "libs-local".into(),
            project_key: None,
        },
        Event::RepositoryUnshared {
            repo: "libs-local".into(),
            project_key: None,
        },
        Event::RepositoryUnshared {
            repo: "libs-local".into(),
            project_key: Some("p3".into()),
        },
        Event::RepositoryAttached {
            repo: "other-local".into(),
            project_key: "p3".into(),
        },
        Event::RepositoryShared {
            repo: "other-local".into(),
            project_key: Some("p2".into()),
        },
        Event::RepositoryAttached {
            repo: "remote-1".into(),
            project_key: "p2".into(),
        },
        Event::RepositoryUnassigned {
            repo: "remote-1".into(),
        },
        access_key("acme", "k1"),
        access_key("acme", "k2"),
        access_key("acme", "k3"),
        entitlement("e1", &["k1", "k2"], "r"),
        entitlement("e2", &["k2", "k3"], "rw"),
        entitlement("e1", &["k1", "k3"], "rw"),
        entitlement("e3", &["k3"], "r"),
        Event::AccessKeyDeleted {
            org: "acme".into(),
            id: "k3".into(),
        },
        Event::EntitlementDeleted {
            org: "acme".into(),
            id: "e2".into(),
        },
        subscription("s1", true),
        subscription("s2", true),
        subscription("s1", false),
        Event::SubscriptionDeleted { key: "s2".into() },
        Event::CheckpointSigned(Checkpoint {
            position: 70,
            head_hash: "ab".repeat(32),
            time_ms: 1_700_000_000_500,
            service_id: HERE.into(),
            kid: "k2".into(),
            signature: "sig".into(),
        }),
        fed_target("east"),
        fed_target("west"),
        fed_target("east"),
        Event::FederationTargetDeleted {
            name: "west".into(),
        },
        Event::FederationBroadcastDone {
            target: "east".into(),
            position: 80,
            entities: 12,
        },
    ];
    let from_peer = vec![
        Event::UserReplicated {
            source: "east".into(),
            version: version(1_700_000_100_000, 10),
            user: ReplicatedUser {
                username: "dave".into(),
                email: Some("enc:dave".into()),
                password_hash: Some("$argon2id$dave".into()),
                admin: false,
                profile_updatable: true,
                internal_password_disabled: false,
                disable_ui_access: false,
                realm: "internal".into(),
                status: UserStatus::Enabled,
                password_expired: false,
            },
        },
        Event::UserReplicated {
            source: "east".into(),
            version: version(1_700_000_100_001, 11),
            user: ReplicatedUser {
                username: "carol".into(),
                email: Some("enc:carol".into()),
                password_hash: Some("$argon2id$carol2".into()),
                admin: true,
                profile_updatable: false,
                internal_password_disabled: false,
                disable_ui_access: true,
                realm: "saml".into(),
                status: UserStatus::Enabled,
                password_expired: true,
            },
        },
        Event::GroupReplicated {
            source: "east".into(),
            version: version(1_700_000_100_002, 12),
            group: ReplicatedGroup {
                name: "remote-group".into(),
                description: Some("from east".into()),
                auto_join: true,
                admin_privileges: false,
                realm: "internal".into(),
                realm_attributes: None,
                external_id: Some("x".into()),
                members: s(&["dave", "carol", "nobody"]),
            },
        },
        Event::GroupReplicated {
            source: "east".into(),
            version: version(1_700_000_100_003, 13),
            group: ReplicatedGroup {
                name: "writers".into(),
                description: None,
                auto_join: false,
                admin_privileges: true,
                realm: "internal".into(),
                realm_attributes: Some("attrs".into()),
                external_id: None,
                members: s(&["dave", "bob"]),
            },
        },
        Event::PermissionReplicated {
            source: "east".into(),
            version: version(1_700_000_100_004, 14),
            target: target("pt-east"),
        },
        Event::TokenReplicated {
            source: "east".into(),
            version: version(1_700_000_100_005, 15),
            issuer: PEER.into(),
            token: token("t77", "dave", false, false),
        },
        Event::TokenReplicated {
            source: "east".into(),
            version: version(1_700_000_100_006, 16),
            issuer: PEER.into(),
            token: token("t8", "carol", true, false),
        },
        Event::TokenReplicated {
            source: "east".into(),
            version: version(1_700_000_100_006, 26),
            issuer: PEER.into(),
            token: token("t99", "erin", true, false),
        },
        Event::ReplicaRemoved {
            source: "east".into(),
            version: version(1_700_000_100_007, 17),
            entity: "token".into(),
            name: "t8".into(),
            swept: false,
        },
        Event::ReplicaRemoved {
            source: "east".into(),
            version: version(1_700_000_100_008, 18),
            entity: "permission".into(),
            name: "pt-east".into(),
            swept: true,
        },
        Event::ReplicaRemoved {
            source: "east".into(),
            version: version(1_700_000_100_009, 19),
            entity: "unknown".into(),
            name: "x".into(),
            swept: false,
        },
    ];
    let after = vec![
        // A user event now that versions have entries: it gets one of its own.
        Event::UserUpdated(UserUpdated {
            username: "dave".into(),
            admin: Some(true),
            ..Default::default()
        }),
        user("erin", &["readers", "remote-group"]),
        Event::UserRenamed {
            from: "alice".into(),
            to: "alicia".into(),
        },
        // A rename onto an existing name does nothing.
        Event::UserRenamed {
            from: "bob".into(),
            to: "carol".into(),
        },
        Event::UserRenamed {
            from: "alicia".into(),
            to: "alice".into(),
        },
        Event::UserDeleted {
            username: "bob".into(),
        },
        Event::GroupDeleted {
            name: "readers".into(),
        },
        Event::ReplicaRemoved {
            source: "east".into(),
            version: version(1_700_000_200_000, 30),
            entity: "user".into(),
            name: "dave".into(),
            swept: true,
        },
        Event::ReplicaRemoved {
            source: "east".into(),
            version: version(1_700_000_200_001, 31),
            entity: "group".into(),
            name: "remote-group".into(),
            swept: false,
        },
        Event::ProjectDeleted {
            project_key: "p2".into(),
        },
        Event::RepositoryDeleted {
            key: "other-local".into(),
        },
        Event::TokenRevoked {
            token_id: "t77".into(),
        },
        Event::PermissionTargetSaved(target("pt2")),
        Event::TokenIssued(token("t9", "erin", true, false)),
        Event::TokenIssued(token("t10", "erin", true, false)),
        Event::TokensExpired {
            token_ids: vec!["t10".into()],
        },
        Event::UserCreated(UserCreated {
            username: "bob".into(),
            email: None,
            password_hash: None,
            admin: false,
            profile_updatable: false,
            internal_password_disabled: true,
            disable_ui_access: false,
            realm: "internal".into(),
            status: UserStatus::Invited,
            groups: vec![],
            scim: None,
        }),
    ];
    let mut seq = 0;
    let mut all = Vec::new();
    for (origin, events) in [(HERE, here), (PEER, from_peer), (HERE, after)] {
        for event in events {
            seq += 1;
            all.push(env(seq, origin, event));
        }
    }
    all
}

#[test]
fn the_encoding_of_a_state_that_has_everything_is_unchanged() {
    let mut state = State::default();
    let mut trail = String::new();
    for e in scenario() {
        state.apply(&e);
        trail.push_str(&state.digest());
        trail.push('\n');
    }
    // Every part of the model holds something, so every part's encoding counts.
    assert!(!state.directory.users.is_empty() && !state.directory.groups.is_empty());
    assert!(!state.directory.scim_ids.is_empty() || state.directory.users.contains_key("alice"));
    assert!(!state.tokens.by_id.is_empty() && !state.tokens.by_reference_hash.is_empty());
    assert!(!state.keys.trusted.is_empty() && !state.keys.pairings.is_empty());
    assert!(!state.permissions.targets.is_empty() && !state.repositories.by_key.is_empty());
    assert!(!state.projects.by_key.is_empty());
    assert!(!state.access_keys.keys.is_empty() && !state.access_keys.entitlements.is_empty());
    assert!(!state.access_keys.entitlements_by_key.is_empty());
    assert!(!state.checkpoints.is_empty() && !state.subscriptions.is_empty());
    assert!(!state.federation.targets.is_empty() && state.federation.versions.iter().count() > 0);
    assert!(!state.federation.token_issuers.is_empty());
    assert_eq!(State::decode(&state.encode()).unwrap(), state);

    let trail = blake3::hash(trail.as_bytes()).to_hex().to_string();
    assert_eq!(
        (state.digest().as_str(), trail.as_str()),
        (FINAL_DIGEST, TRAIL_DIGEST)
    );
}

/// Every public item is where code outside the crate finds it, with the same signature.
#[test]
fn public_paths_and_signatures() {
    let _: fn(&mut State, &Envelope) = State::apply;
    let _: fn(&State, &Event) -> Vec<String> = State::groups_left_by;
    type Changes = Vec<(&'static str, String, bool)>;
    let _: fn(&State, &Event, &[String]) -> Changes = State::federated_changes;
    let _: fn(&State, &str, &str) -> Option<EntityVersion> = State::version_of;
    let _: fn(&State) -> Vec<u8> = State::encode;
    let _: fn(&[u8]) -> Result<State, rmp_serde::decode::Error> = State::decode;
    let _: fn(&State) -> String = State::digest;
    let _: fn(&Event) -> Vec<(&'static str, &str, bool)> = federated_entities;
    let _: fn() -> Vec<ProjectRole> = predefined_roles;
    let _: fn(&str, &str) -> String = access_key_username;
    let _: for<'a> fn(&'a Versions, &str) -> Option<&'a VersionTable> = Versions::of;
    let _: for<'a> fn(&'a Versions, &str, &str) -> Option<&'a VersionRecord> = Versions::get;
    let _: for<'a> fn(&'a mut ProjectRecord, &str) -> &'a mut BTreeMap<String, BTreeSet<String>> =
        ProjectRecord::members_mut;
    let _: fn(&ProjectRecord, &str) -> Option<ProjectRole> = ProjectRecord::role;
    let _: fn(&Directory, &str) -> bool = Directory::is_admin;
    let versions = Versions::default();
    let _: Vec<(&'static str, &str, &VersionRecord)> = versions.iter().collect();

    // The types, by the fields code outside the crate reads.
    let s = State::default();
    let _: (&Option<String>, u64, u64) = (&s.service_id, s.seq, s.time_ms);
    let _: &Directory = &s.directory;
    let _: &Tokens = &s.tokens;
    let _: &Keys = &s.keys;
    let _: &Permissions = &s.permissions;
    let _: &Repositories = &s.repositories;
    let _: &Projects = &s.projects;
    let _: &AccessKeys = &s.access_keys;
    let _: &Vec<Checkpoint> = &s.checkpoints;
    let _: &BTreeMap<String, SubscriptionRecord> = &s.subscriptions;
    let _: &Federation = &s.federation;
    let _: &BTreeMap<String, FederationTargetRecord> = &s.federation.targets;
    let _: &BTreeMap<String, RepositoryRecord> = &s.repositories.by_key;
    // Persistent maps of shared records (see `gatehouse_projections::shared`).
    let _: &OrdMap<String, Shared<AccessKeyRecord>> = &s.access_keys.keys;
    let _: &OrdMap<String, Shared<EntitlementRecord>> = &s.access_keys.entitlements;
    let _: &OrdMap<std::sync::Arc<str>, Shared<User>> = &s.directory.users;
    let _: &OrdMap<std::sync::Arc<str>, Shared<Group>> = &s.directory.groups;
}

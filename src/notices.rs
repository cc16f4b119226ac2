//! What an event means to webhook subscribers: its domain, event type and the name of
//! the entity it is about (what `criteria` patterns match), by the table in README.
//! Pure: the webhook dispatcher classifies each committed event against the state just
//! before it, and matches subscriptions with [`matches`].

use gatehouse_projections::State;
use gatehouse_schemas::{Event, Subscription};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub domain: &'static str,
    pub event_type: &'static str,
    /// The user, group, token subject, target, entitlement, access key or project.
    pub name: String,
}

fn n(domain: &'static str, event_type: &'static str, name: &str) -> Notice {
    Notice {
        domain,
        event_type,
        name: name.to_string(),
    }
}

fn created_or_updated(existed: bool) -> &'static str {
    if existed {
        "updated"
    } else {
        "created"
    }
}

/// The event types a peer's copy of an existing user means here: `password_changed`,
/// `locked`, `unlocked` for those changes, `updated` for any other (or for a change
/// this cannot see: the e-mail is sealed under a new nonce each time).
fn replicated_user_types(
    was: &gatehouse_projections::User,
    now: &gatehouse_schemas::ReplicatedUser,
) -> Vec<&'static str> {
    use gatehouse_schemas::UserStatus::Locked;
    let mut types = Vec::new();
    if was.password_hash != now.password_hash {
        types.push("password_changed");
    }
    match (was.status == Locked, now.status == Locked) {
        (false, true) => types.push("locked"),
        (true, false) => types.push("unlocked"),
        _ => {}
    }
    let other = was.admin != now.admin
        || was.profile_updatable != now.profile_updatable
        || was.internal_password_disabled != now.internal_password_disabled
        || was.disable_ui_access != now.disable_ui_access
        || was.realm != now.realm
        || was.password_expired != now.password_expired
        || (was.status != now.status && was.status != Locked && now.status != Locked)
        || was.email.is_some() != now.email.is_some();
    if other || types.is_empty() {
        types.push("updated");
    }
    types
}

/// The notices of `event`, judged against the state just before it was applied.
pub fn classify(before: &State, event: &Event) -> Vec<Notice> {
    classify_alone(event).unwrap_or_else(|| classify_against(before, event))
}

/// The notices of an event about a user, group, token or other entity that the event
/// alone tells (`None`: they depend on the state before it, or the event is not one of
/// those). None of these events changes the subscriptions or the federation targets:
/// the webhook dispatcher judges them without bringing its read models up to them.
pub fn classify_alone(event: &Event) -> Option<Vec<Notice>> {
    Some(match event {
        // A new user joins its groups (asked for and auto-join) in the same event: each
        // group's members change too, as with any other way of joining.
        Event::UserCreated(c) => std::iter::once(n("user", "created", &c.username))
            .chain(c.groups.iter().map(|g| n("group", "members_changed", g)))
            .collect(),
        Event::UserUpdated(u) => vec![n("user", "updated", &u.username)],
        Event::UserScimSaved { username, .. } => vec![n("user", "updated", username)],
        Event::UserLocked { username } => vec![n("user", "locked", username)],
        Event::UserUnlocked { username } => vec![n("user", "unlocked", username)],
        Event::UserPasswordChanged { username, .. } => {
            vec![n("user", "password_changed", username)]
        }
        // The user's `password_expired` changes (a receiver mirroring users kept it stale).
        Event::UserPasswordExpired { username } | Event::UserPasswordUnexpired { username } => {
            vec![n("user", "updated", username)]
        }
        Event::GroupCreated(g) => vec![n("group", "created", &g.name)],
        Event::GroupUpdated(g) => vec![n("group", "updated", &g.name)],
        Event::GroupScimSaved { name, .. } => vec![n("group", "updated", name)],
        Event::GroupMembersChanged { group, .. } => vec![n("group", "members_changed", group)],
        Event::TokenIssued(t) => vec![n("token", "created", &t.subject)],
        Event::TokenRefreshed { issued, .. } => vec![n("token", "refreshed", &issued.subject)],
        Event::PermissionTargetDeleted { name } => vec![n("permission", "deleted", name)],
        Event::EntitlementDeleted { id, .. } => vec![n("entitlement", "deleted", id)],
        Event::ProjectDeleted { project_key } => vec![n("project", "deleted", project_key)],
        Event::TokenReplicated { token, .. } => vec![n("token", "created", &token.subject)],
        Event::ProjectMemberSaved { project_key, .. }
        | Event::ProjectMemberRemoved { project_key, .. } => {
            vec![n("project", "member_changed", project_key)]
        }
        _ => return None,
    })
}

/// The events [`classify_alone`] leaves: judged against the state before them.
fn classify_against(before: &State, event: &Event) -> Vec<Notice> {
    let dir = &before.directory;
    // The groups a user leaves by being deleted or renamed (their member lists change).
    let groups_of = |username: &str| -> Vec<Notice> {
        dir.users
            .get(username)
            .map(|u| {
                u.groups
                    .iter()
                    .filter(|g| dir.groups.contains_key(g.as_str()))
                    .map(|g| n("group", "members_changed", g))
                    .collect()
            })
            .unwrap_or_default()
    };
    // The projects whose members change when a user or group (`group`) goes or is
    // renamed, or a role is taken from its holders (`holds`): the member lists change
    // with no `ProjectMember*` event of their own, and a subscriber mirroring a
    // project's members kept stale ones.
    let projects_where = |holds: &dyn Fn(&gatehouse_projections::ProjectRecord) -> bool| {
        before
            .projects
            .by_key
            .values()
            .filter(|p| holds(p))
            .map(|p| n("project", "member_changed", &p.config.project_key))
            .collect::<Vec<_>>()
    };
    let member = |group: bool, name: &str| {
        projects_where(&|p| {
            if group {
                p.groups.contains_key(name)
            } else {
                p.users.contains_key(name)
            }
        })
    };
    let role_held = |p: &gatehouse_projections::ProjectRecord, role: &str| {
        p.users
            .values()
            .chain(p.groups.values())
            .any(|roles| roles.contains(role))
    };
    match event {
        // Decided with `GroupMembersChanged` events for its groups (each notified as it
        // comes); a log of earlier versions has none: then the groups it was in.
        Event::UserDeleted { username } => std::iter::once(n("user", "deleted", username))
            .chain(groups_of(username))
            .chain(member(false, username))
            .collect(),
        // The groups' member lists change by `GroupMembersChanged` events decided with
        // the rename (each notified as it comes); the projects' with it.
        Event::UserRenamed { from, to } => std::iter::once(n("user", "updated", to))
            .chain(member(false, from))
            .collect(),
        Event::GroupDeleted { name } => std::iter::once(n("group", "deleted", name))
            .chain(member(true, name))
            .collect(),
        // The entitlements that named the key lose it with no event of their own: each
        // is updated (a subscriber mirroring entitlements kept the deleted key).
        Event::AccessKeyDeleted { org, id } => {
            let name = gatehouse_projections::access_key_username(org, id);
            let entitlements = before.access_keys.entitlements_by_key.get(&name);
            std::iter::once(n("access_key", "deleted", &name))
                .chain(
                    entitlements
                        .into_iter()
                        .flatten()
                        .map(|e| n("entitlement", "updated", e)),
                )
                .collect()
        }
        Event::ProjectRoleDeleted { project_key, role } => before
            .projects
            .by_key
            .get(project_key)
            .filter(|p| role_held(p, role))
            .map(|_| vec![n("project", "member_changed", project_key)])
            .unwrap_or_default(),
        Event::GlobalRoleDeleted { name } => projects_where(&|p| role_held(p, name)),
        Event::UserGroupsChanged { added, removed, .. } => added
            .iter()
            .chain(removed)
            .filter(|g| dir.groups.contains_key(g.as_str()))
            .map(|g| n("group", "members_changed", g))
            .collect(),
        Event::TokenRevoked { token_id } => before
            .tokens
            .by_id
            .get(token_id.as_str())
            .map(|t| vec![n("token", "revoked", &t.subject)])
            .unwrap_or_default(),
        Event::PermissionTargetSaved(t) => vec![n(
            "permission",
            created_or_updated(before.permissions.targets.contains_key(&t.name)),
            &t.name,
        )],
        Event::EntitlementSaved(e) => vec![n(
            "entitlement",
            created_or_updated(before.access_keys.entitlements.contains_key(&e.id)),
            &e.id,
        )],
        Event::AccessKeySaved(k) => {
            let name = gatehouse_projections::access_key_username(&k.org, &k.id);
            let existed = before.access_keys.keys.contains_key(&name);
            vec![n("access_key", created_or_updated(existed), &name)]
        }
        Event::ProjectSaved(p) => vec![n(
            "project",
            created_or_updated(before.projects.by_key.contains_key(&p.project_key)),
            &p.project_key,
        )],
        // A peer's change is told as the same change made here would be: a password,
        // a lock, a membership (a subscriber of `members_changed` heard nothing of what
        // changed at a peer).
        Event::UserReplicated { user, .. } => match dir.users.get(user.username.as_str()) {
            None => vec![n("user", "created", &user.username)],
            Some(was) => replicated_user_types(was, user)
                .into_iter()
                .map(|t| n("user", t, &user.username))
                .collect(),
        },
        Event::GroupReplicated { group, .. } => match dir.groups.get(group.name.as_str()) {
            None => vec![n("group", "created", &group.name)],
            Some(was) => {
                let members_changed = was.members.len() != group.members.len()
                    || group.members.iter().any(|m| !was.members.contains(m));
                let updated = was.description != group.description
                    || was.auto_join != group.auto_join
                    || was.admin_privileges != group.admin_privileges
                    || was.realm != group.realm
                    || was.realm_attributes != group.realm_attributes
                    || was.external_id != group.external_id;
                let mut out = Vec::new();
                if updated || !members_changed {
                    out.push(n("group", "updated", &group.name));
                }
                if members_changed {
                    out.push(n("group", "members_changed", &group.name));
                }
                out
            }
        },
        Event::PermissionReplicated { target, .. } => vec![n(
            "permission",
            created_or_updated(before.permissions.targets.contains_key(&target.name)),
            &target.name,
        )],
        Event::ReplicaRemoved { entity, name, .. } => match entity.as_str() {
            "user" if dir.users.contains_key(name.as_str()) => {
                std::iter::once(n("user", "deleted", name))
                    .chain(groups_of(name))
                    .chain(member(false, name))
                    .collect()
            }
            "group" if dir.groups.contains_key(name.as_str()) => {
                std::iter::once(n("group", "deleted", name))
                    .chain(member(true, name))
                    .collect()
            }
            "permission" if before.permissions.targets.contains_key(name) => {
                vec![n("permission", "deleted", name)]
            }
            "token" => before
                .tokens
                .by_id
                .get(name.as_str())
                .map(|t| vec![n("token", "revoked", &t.subject)])
                .unwrap_or_default(),
            _ => vec![],
        },
        Event::FederationTargetSaved(t) => vec![n("federation", "target_changed", &t.name)],
        Event::FederationTargetDeleted { name } => {
            vec![n("federation", "target_changed", name)]
        }
        Event::FederationBroadcastDone { target, .. } => {
            vec![n("federation", "broadcast_done", target)]
        }
        _ => vec![],
    }
}

/// Does an enabled subscription want this notice? `includePatterns` (none: all) and
/// `excludePatterns` are globs on the entity's name; excludes win.
pub fn matches(sub: &Subscription, notice: &Notice) -> bool {
    // Ant's syntax, as the pattern was validated (`[` and `{` are letters).
    let glob = |p: &str| {
        globset::GlobBuilder::new(&crate::authorize::ant(p))
            .literal_separator(false)
            .build()
            .map(|g| g.compile_matcher().is_match(&notice.name))
            .unwrap_or(false)
    };
    sub.enabled
        && sub.domain == notice.domain
        && sub.event_types.iter().any(|t| t == notice.event_type)
        && (sub.include_patterns.is_empty() || sub.include_patterns.iter().any(|p| glob(p)))
        && !sub.exclude_patterns.iter().any(|p| glob(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_schemas::{samples, PermissionTarget};

    #[test]
    fn a_password_expired_or_unexpired_is_an_update_of_its_user() {
        for e in [
            Event::UserPasswordExpired {
                username: "u".into(),
            },
            Event::UserPasswordUnexpired {
                username: "u".into(),
            },
        ] {
            assert_eq!(
                classify(&State::default(), &e),
                vec![n("user", "updated", "u")]
            );
        }
    }

    #[test]
    fn every_domain_of_the_table_is_produced() {
        // Apply the sample of every event type in order, classifying each against the
        // state before it: every domain of the README table shows up.
        let mut state = State::default();
        let mut seen = std::collections::BTreeSet::new();
        for env in samples() {
            for notice in classify(&state, &env.event) {
                let known = crate::webhooks::payload::DOMAINS
                    .iter()
                    .any(|(d, types)| *d == notice.domain && types.contains(&notice.event_type));
                assert!(known, "{notice:?} is not in the table");
                seen.insert(notice.domain);
            }
            state.apply(&env);
        }
        for d in [
            "user",
            "group",
            "token",
            "permission",
            "entitlement",
            "access_key",
            "project",
            "federation",
        ] {
            assert!(seen.contains(d), "{d} never produced: {seen:?}");
        }
    }

    /// What the webhook dispatcher relies on to judge an event without bringing its read
    /// models up to it: the notices `classify_alone` gives are what `classify` gives
    /// against any state, and applying such an event leaves the subscriptions and the
    /// federation targets as they were.
    #[test]
    fn events_judged_alone_read_and_change_nothing_the_dispatcher_judges_with() {
        let all = samples();
        let mut full = State::default();
        for env in &all {
            full.apply(env);
        }
        let mut alone = 0;
        let mut state = State::default();
        for env in &all {
            if let Some(notices) = classify_alone(&env.event) {
                alone += 1;
                assert_eq!(notices, classify(&State::default(), &env.event), "{env:?}");
                assert_eq!(notices, classify(&full, &env.event), "{env:?}");
                assert_eq!(notices, classify(&state, &env.event), "{env:?}");
                for before in [state.clone(), full.clone()] {
                    let mut after = before.clone();
                    after.apply(env);
                    assert_eq!(after.subscriptions, before.subscriptions, "{env:?}");
                    assert_eq!(
                        after.federation.targets, before.federation.targets,
                        "{env:?}"
                    );
                }
            }
            state.apply(env);
        }
        assert!(alone >= 19, "{alone}");
    }

    /// A peer's copy of a user or group is told as the change it is, as the same change
    /// made here would be (`members_changed` was never heard of a peer's change).
    #[test]
    fn a_peers_copy_is_told_as_the_change_it_is() {
        // The samples in order, until a user and a group are there.
        let mut state = State::default();
        for env in samples() {
            state.apply(&env);
            let user =
                (state.directory.users.keys()).any(|u| **u != *gatehouse_projections::ANONYMOUS);
            if user && !state.directory.groups.is_empty() {
                break;
            }
        }
        let was = (state.directory.users.values())
            .find(|u| u.username != gatehouse_projections::ANONYMOUS)
            .expect("a user")
            .clone();
        let copy = gatehouse_schemas::ReplicatedUser {
            username: was.username.clone(),
            email: was.email.clone(),
            password_hash: was.password_hash.clone(),
            admin: was.admin,
            profile_updatable: was.profile_updatable,
            internal_password_disabled: was.internal_password_disabled,
            disable_ui_access: was.disable_ui_access,
            realm: was.realm.clone(),
            status: was.status,
            password_expired: was.password_expired,
        };
        let types = |u: &gatehouse_schemas::ReplicatedUser| -> Vec<&'static str> {
            let e = Event::UserReplicated {
                source: "jfac@peer".into(),
                version: Default::default(),
                user: u.clone(),
            };
            classify(&state, &e).iter().map(|n| n.event_type).collect()
        };
        assert_eq!(types(&copy), ["updated"]);
        let mut c = copy.clone();
        c.password_hash = Some("$argon2id$other".into());
        assert_eq!(types(&c), ["password_changed"]);
        let mut c = copy.clone();
        c.status = gatehouse_schemas::UserStatus::Locked;
        assert_eq!(types(&c), ["locked"]);
        let mut c = copy.clone();
        c.admin = !c.admin;
        c.password_hash = Some("$argon2id$other".into());
        assert_eq!(types(&c), ["password_changed", "updated"]);

        let g = state
            .directory
            .groups
            .values()
            .next()
            .expect("a group")
            .clone();
        let copy = gatehouse_schemas::ReplicatedGroup {
            name: g.name.clone(),
            description: g.description.clone(),
            auto_join: g.auto_join,
            admin_privileges: g.admin_privileges,
            realm: g.realm.clone(),
            realm_attributes: g.realm_attributes.clone(),
            external_id: g.external_id.clone(),
            members: g.members.iter().cloned().collect(),
        };
        let types = |g: &gatehouse_schemas::ReplicatedGroup| -> Vec<&'static str> {
            let e = Event::GroupReplicated {
                source: "jfac@peer".into(),
                version: Default::default(),
                group: g.clone(),
            };
            classify(&state, &e).iter().map(|n| n.event_type).collect()
        };
        assert_eq!(types(&copy), ["updated"]);
        let mut c = copy.clone();
        c.members.push("someone-new".into());
        assert_eq!(types(&c), ["members_changed"]);
        c.description = Some("changed".into());
        assert_eq!(types(&c), ["updated", "members_changed"]);
    }

    /// A project's members change when a member user or group is deleted or renamed, or
    /// a role its members hold is deleted: subscribers of `member_changed` hear it (they
    /// heard nothing, and kept stale members).
    #[test]
    fn side_effects_on_project_members_are_member_changed() {
        let mut state = State::default();
        for (key, user, group, role) in [
            ("alpha", "frank", "devs", "temp"),
            ("beta", "gina", "ops", "Developer"),
        ] {
            let mut p = gatehouse_projections::ProjectRecord::default();
            p.config.project_key = key.into();
            p.users.entry(user.into()).or_default().insert(role.into());
            p.groups
                .entry(group.into())
                .or_default()
                .insert("Viewer".into());
            state.projects.make_mut().by_key.insert(key.into(), p);
        }
        let projects = |e: Event| -> Vec<String> {
            classify(&state, &e)
                .into_iter()
                .filter(|n| n.domain == "project")
                .map(|n| format!("{} {}", n.name, n.event_type))
                .collect()
        };
        let frank_gone = Event::UserDeleted {
            username: "frank".into(),
        };
        assert_eq!(projects(frank_gone), ["alpha member_changed"]);
        let renamed = Event::UserRenamed {
            from: "gina".into(),
            to: "gina2".into(),
        };
        assert_eq!(projects(renamed), ["beta member_changed"]);
        let ops_gone = Event::GroupDeleted { name: "ops".into() };
        assert_eq!(projects(ops_gone), ["beta member_changed"]);
        let role_gone = Event::ProjectRoleDeleted {
            project_key: "alpha".into(),
            role: "temp".into(),
        };
        assert_eq!(projects(role_gone), ["alpha member_changed"]);
        let unheld = Event::ProjectRoleDeleted {
            project_key: "beta".into(),
            role: "temp".into(),
        };
        assert!(projects(unheld).is_empty());
        let global_gone = Event::GlobalRoleDeleted {
            name: "Viewer".into(),
        };
        assert_eq!(
            projects(global_gone),
            ["alpha member_changed", "beta member_changed"]
        );
    }

    /// Deleting an access key takes it out of the entitlements that named it: each is
    /// `updated` (a subscriber mirroring entitlements kept the deleted key).
    #[test]
    fn a_deleted_access_key_updates_the_entitlements_that_named_it() {
        let mut state = State::default();
        state
            .access_keys
            .entitlements_by_key
            .entry("k1@myorg".into())
            .or_default()
            .insert("01ENT".into());
        let gone = Event::AccessKeyDeleted {
            org: "myorg".into(),
            id: "k1".into(),
        };
        let notices: Vec<String> = classify(&state, &gone)
            .into_iter()
            .map(|n| format!("{} {} {}", n.domain, n.event_type, n.name))
            .collect();
        assert_eq!(
            notices,
            ["access_key deleted k1@myorg", "entitlement updated 01ENT"]
        );
    }

    #[test]
    fn saved_is_created_then_updated() {
        let mut state = State::default();
        let saved = Event::PermissionTargetSaved(Box::new(PermissionTarget {
            name: "t".into(),
            ..Default::default()
        }));
        assert_eq!(classify(&state, &saved)[0].event_type, "created");
        state
            .permissions
            .targets
            .insert("t".into(), PermissionTarget::default().into());
        assert_eq!(classify(&state, &saved)[0].event_type, "updated");
    }

    #[test]
    fn subscriptions_match_by_domain_type_and_patterns() {
        let sub = Subscription {
            key: "k".into(),
            enabled: true,
            domain: "user".into(),
            event_types: vec!["created".into()],
            include_patterns: vec!["qa-*".into()],
            exclude_patterns: vec!["qa-secret*".into()],
            ..Default::default()
        };
        let notice = |t: &'static str, name: &str| Notice {
            domain: "user",
            event_type: t,
            name: name.into(),
        };
        assert!(matches(&sub, &notice("created", "qa-bob")));
        assert!(!matches(&sub, &notice("deleted", "qa-bob")));
        assert!(!matches(&sub, &notice("created", "dev-bob")));
        assert!(!matches(&sub, &notice("created", "qa-secret-agent")));
        let off = Subscription {
            enabled: false,
            ..sub.clone()
        };
        assert!(!matches(&off, &notice("created", "qa-bob")));
        let all = Subscription {
            include_patterns: vec![],
            exclude_patterns: vec![],
            ..sub
        };
        assert!(matches(&all, &notice("created", "anyone@example.com")));
    }
}

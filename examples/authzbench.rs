//! The authorize decision at scale (used by `scripts/bench`): 100,000 users in 1,000
//! groups and 10,000 permission targets over 2,000 registered repositories, 200
//! projects (each owning 10 repositories, with 50 user and 5 group members holding
//! predefined roles), and 1,000 access keys with 10,000 entitlements.
//!
//! The first three counts can be raised for the large-site figures (`scripts/bench.d/million.sh`):
//! `AUTHZBENCH_USERS`, `AUTHZBENCH_GROUPS`, `AUTHZBENCH_TARGETS`.
//!
//! `authzbench DIR` prints the in-process decision latency (p50/p99 over 200,000 random
//! questions, users and access keys separately), the resident memory of the data set, and leaves DIR as a data directory a
//! server starts from (user `admin` with password `bench-admin-pw`).

use gatehouse::authorize::{decide_access_key, PermissionIndex, Subject, ACTIONS};
use gatehouse::log::EventLog;
use gatehouse_projections::State;
use gatehouse_schemas::{
    AccessKey, Entitlement, Envelope, Event, GroupCreated, PermissionSection, PermissionTarget,
    Project, Repository, UserCreated, UserStatus,
};
use std::time::Instant;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A count from the environment, or its default.
fn count(var: &str, default: usize) -> usize {
    match std::env::var(var) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{var} must be a whole number, not {v:?}")),
        Err(_) => default,
    }
}

const REPOS: usize = 2_000;
const PROJECTS: usize = 200;
const KEYS: usize = 1_000;
const ENTITLEMENTS: usize = 10_000;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0)
}

#[allow(non_snake_case)]
fn main() {
    let USERS = count("AUTHZBENCH_USERS", 100_000);
    let GROUPS = count("AUTHZBENCH_GROUPS", 1_000);
    let TARGETS = count("AUTHZBENCH_TARGETS", 10_000);
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: authzbench DIR"));
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    let mut events = vec![Event::ServiceCreated {
        service_id: "jfac@01benchauthzbenchauthzbenc".into(),
    }];
    let user = |name: String, groups: Vec<String>, password_hash: Option<String>, admin: bool| {
        Event::UserCreated(UserCreated {
            username: name,
            email: None,
            internal_password_disabled: password_hash.is_none(),
            password_hash,
            admin,
            profile_updatable: true,
            disable_ui_access: false,
            realm: "internal".into(),
            status: UserStatus::Enabled,
            groups,
            scim: None,
        })
    };
    events.push(user(
        "admin".into(),
        vec![],
        Some(gatehouse::auth::password::hash("bench-admin-pw")),
        true,
    ));
    for g in 0..GROUPS {
        events.push(Event::GroupCreated(GroupCreated {
            name: format!("group-{g}"),
            description: None,
            auto_join: false,
            admin_privileges: false,
            realm: "internal".into(),
            realm_attributes: None,
            external_id: None,
            members: vec![],
        }));
    }
    for u in 0..USERS {
        let groups = (0..1 + next(3))
            .map(|_| format!("group-{}", next(GROUPS)))
            .collect::<std::collections::BTreeSet<_>>();
        events.push(user(
            format!("user-{u}"),
            groups.into_iter().collect(),
            None,
            false,
        ));
    }
    let patterns = ["**", "org/**", "org/acme/**", "**/*.jar", "com/*/lib/**"];
    for t in 0..TARGETS {
        let mut section = PermissionSection {
            include_patterns: vec![patterns[next(patterns.len())].into()],
            exclude_patterns: if next(4) == 0 {
                vec!["**/*-SNAPSHOT/**".into()]
            } else {
                vec![]
            },
            repositories: (0..1 + next(3))
                .map(|_| format!("repo-{}", next(REPOS)))
                .collect(),
            ..Default::default()
        };
        for _ in 0..next(4) {
            section.users.insert(
                format!("user-{}", next(USERS)),
                vec![ACTIONS[next(ACTIONS.len())].into()],
            );
        }
        for _ in 0..1 + next(3) {
            section.groups.insert(
                format!("group-{}", next(GROUPS)),
                vec!["read".into(), ACTIONS[next(ACTIONS.len())].into()],
            );
        }
        events.push(Event::PermissionTargetSaved(Box::new(PermissionTarget {
            name: format!("target-{t}"),
            repo: Some(section),
            ..Default::default()
        })));
    }
    let classes = ["local", "remote", "federated", "virtual"];
    for r in 0..REPOS {
        events.push(Event::RepositorySaved(Repository {
            key: format!("repo-{r}"),
            rclass: classes[next(classes.len())].into(),
            environments: vec![["DEV", "PROD"][next(2)].into()],
            ..Default::default()
        }));
    }
    let roles = [
        "Project Admin",
        "Developer",
        "Contributor",
        "Viewer",
        "Release Manager",
    ];
    for p in 0..PROJECTS {
        let key = format!("p{p}");
        events.push(Event::ProjectSaved(Project {
            project_key: key.clone(),
            display_name: key.clone(),
            ..Default::default()
        }));
        for r in (p..REPOS).step_by(PROJECTS) {
            events.push(Event::RepositoryAttached {
                repo: format!("repo-{r}"),
                project_key: key.clone(),
            });
        }
        for (kind, n, count) in [("user", USERS, 50), ("group", GROUPS, 5)] {
            for _ in 0..count {
                events.push(Event::ProjectMemberSaved {
                    project_key: key.clone(),
                    kind: kind.into(),
                    name: format!("{kind}-{}", next(n)),
                    roles: vec![roles[next(roles.len())].into()],
                });
            }
        }
    }
    // key-0@org signs in with `bench-key-pw` (the HTTP measurement); the others' hashes
    // are never checked.
    let key_hash = gatehouse::auth::password::hash("bench-key-pw");
    for k in 0..KEYS {
        events.push(Event::AccessKeySaved(AccessKey {
            org: "org".into(),
            id: format!("key-{k}"),
            password_hash: key_hash.clone(),
            ..Default::default()
        }));
    }
    for e in 0..ENTITLEMENTS {
        events.push(Event::EntitlementSaved(Entitlement {
            id: format!("ent-{e}"),
            org: "org".into(),
            repo: format!("repo-{}", next(REPOS)),
            package: Some(["org", "com", "app"][next(3)].into()),
            access: ["r", "rw"][next(2)].into(),
            access_keys: (0..1 + next(3))
                .map(|_| format!("key-{}", next(KEYS)))
                .collect(),
            ..Default::default()
        }));
    }
    let rss_before = rss_kib();
    let mut state = State::default();
    let envelopes: Vec<Envelope> = events
        .into_iter()
        .enumerate()
        .map(|(i, event)| Envelope {
            seq: i as u64 + 1,
            time_ms: 1_800_000_000_000,
            actor: "bench".into(),
            origin: "jfac@01benchauthzbenchauthzbenc".into(),
            request_id: "bench".into(),
            event,
        })
        .collect();
    for e in &envelopes {
        state.apply(e);
    }
    let index = PermissionIndex::build(&state);
    let rss_after = rss_kib();

    let questions = 200_000;
    let mut times = Vec::with_capacity(questions);
    let mut allowed = 0;
    let segs = [
        "org",
        "acme",
        "com",
        "lib",
        "app",
        "1.0",
        "app-1.0.jar",
        "x-SNAPSHOT",
    ];
    for _ in 0..questions {
        let name = format!("user-{}", next(USERS));
        let repo = format!("repo-{}", next(REPOS));
        let path: Vec<&str> = (0..1 + next(5)).map(|_| segs[next(segs.len())]).collect();
        let path = path.join("/");
        let action = ACTIONS[next(ACTIONS.len())];
        let t = Instant::now();
        let subject = Subject::new(&state.directory, &name, false, None);
        let d = index.decide(&subject, &repo, &path, action);
        times.push(t.elapsed().as_nanos() as u64);
        allowed += d.allowed as usize;
    }
    let mut key_times = Vec::with_capacity(questions);
    let mut key_allowed = 0;
    for _ in 0..questions {
        let key = format!("key-{}@org", next(KEYS));
        let repo = format!("repo-{}", next(REPOS));
        let path: Vec<&str> = (0..1 + next(5)).map(|_| segs[next(segs.len())]).collect();
        let path = path.join("/");
        let action = ACTIONS[next(ACTIONS.len())];
        let t = Instant::now();
        let d = decide_access_key(&state, &key, &repo, &path, action);
        key_times.push(t.elapsed().as_nanos() as u64);
        key_allowed += d.allowed as usize;
    }
    times.sort_unstable();
    key_times.sort_unstable();
    let pct = |times: &[u64], p: f64| {
        times[((times.len() as f64 * p) as usize).min(times.len() - 1)] as f64 / 1000.0
    };
    println!("questions={questions} allowed={allowed} access_key_allowed={key_allowed}");
    println!("decision_p50_us={:.2}", pct(&times, 0.50));
    println!("decision_p99_us={:.2}", pct(&times, 0.99));
    println!("access_key_p50_us={:.2}", pct(&key_times, 0.50));
    println!("access_key_p99_us={:.2}", pct(&key_times, 0.99));
    println!(
        "dataset_rss_mib={:.0}",
        (rss_after.saturating_sub(rss_before)) as f64 / 1024.0
    );

    // A data directory with the same data, for the HTTP measurement.
    let mut log = EventLog::open(&dir).expect("open");
    for chunk in envelopes.chunks(10_000) {
        log.append(chunk).expect("append");
    }
    log.write_snapshot(&state).expect("snapshot");
    println!("events={}", envelopes.len());
    println!("users={USERS} groups={GROUPS} targets={TARGETS}");
}

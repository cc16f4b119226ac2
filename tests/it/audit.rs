//! The audit trail and point-in-time reads (issue 6): every recorded state comes back
//! exactly through `as_of`, by position and by time; diffs; the events API.

use crate::helpers::{Client, TestApp};
use gatehouse::Config;
use serde_json::{json, Value};
use std::collections::BTreeSet;

fn seq_of(r: &crate::helpers::Resp) -> u64 {
    r.header("x-gatehouse-seq")
        .unwrap_or_else(|| panic!("no X-Gatehouse-Seq: {} {}", r.status, r.text))
        .parse()
        .unwrap()
}

fn state(admin: &Client, as_of: Option<&str>) -> Value {
    let path = match as_of {
        Some(a) => format!("/access/api/v1/audit/state?as_of={a}"),
        None => "/access/api/v1/audit/state".to_string(),
    };
    let r = admin.get(&path);
    assert_eq!(r.status, 200, "{path}: {}", r.text);
    r.json()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// A random history over every kind of entity; after each write the whole state is
/// recorded; `as_of` at every recorded position must give exactly that state back, and
/// a diff between two positions must name exactly the entities created and deleted.
#[test]
fn as_of_gives_back_every_recorded_state_and_diffs_match() {
    // Frequent snapshots, so that rebuilding goes through snapshots as well as events;
    // two failed sign-ins lock a user.
    let app = TestApp::spawn_with(Config {
        snapshot_every: 25,
        lockout_threshold: 2,
        // Every failure counts (not only those from addresses the user signed in from),
        // and none is held back by the failed-sign-in limits.
        lockout_from: gatehouse::config::LockoutFrom::Any,
        signin_address_burst: 0,
        signin_user_burst: 0,
        ..Config::default()
    });
    let admin = app.admin();
    let mut x: u64 = 0x853c_49e6_748f_ea9b;
    let mut next = move |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    let mut recorded: Vec<(u64, Value, Value)> = Vec::new();
    let mut users: Vec<String> = vec![];
    let mut groups: Vec<String> = vec![];
    let mut projects: Vec<String> = vec![];
    let mut tokens: Vec<String> = vec![];
    let mut subscriptions: Vec<String> = vec![];
    let mut head = app.digest()["seq"].as_u64().unwrap();
    let mut n = 0;
    while recorded.len() < 200 {
        n += 1;
        let r = match next(18) {
            0 | 1 => {
                let name = format!("u{n}");
                users.push(name.clone());
                admin.post("/access/api/v2/users", &json!({"username": name, "password": "password-1", "email": format!("{name}@example.com")}))
            }
            2 if !users.is_empty() => {
                let u = &users[next(users.len())];
                admin.patch(
                    &format!("/access/api/v2/users/{u}"),
                    &json!({"email": format!("new{n}@example.com")}),
                )
            }
            3 if users.len() > 2 => {
                let u = users.remove(next(users.len()));
                admin.delete(&format!("/access/api/v2/users/{u}"))
            }
            4 => {
                let name = format!("g{n}");
                groups.push(name.clone());
                admin.post("/access/api/v2/groups", &json!({"name": name}))
            }
            5 if !groups.is_empty() && !users.is_empty() => {
                let g = &groups[next(groups.len())];
                let u = &users[next(users.len())];
                admin.patch(
                    &format!("/access/api/v2/groups/{g}/members"),
                    &json!({"add": [u]}),
                )
            }
            6 if groups.len() > 1 => {
                let g = groups.remove(next(groups.len()));
                admin.delete(&format!("/access/api/v2/groups/{g}"))
            }
            7 if !users.is_empty() => {
                let u = &users[next(users.len())];
                admin.put(&format!("/artifactory/api/v2/security/permissions/t{}", next(4)),
                    &json!({"repo": {"repositories": ["libs"], "actions": {"users": {u: ["read"]}}}}))
            }
            8 => admin.put(
                &format!("/artifactory/api/repositories/r{}", next(3)),
                &json!({"rclass": if next(2) == 0 { "local" } else { "remote" }}),
            ),
            9 => {
                let key = format!("p{n}");
                projects.push(key.clone());
                admin.post(
                    "/access/api/v1/projects",
                    &json!({"project_key": key, "display_name": format!("P {n}")}),
                )
            }
            10 if next(2) == 0 && !users.is_empty() => {
                // A revocable token (kept as a record).
                let u = users[next(users.len())].clone();
                let r = admin.post(
                    "/access/api/v1/tokens",
                    &json!({"username": u, "scope": "applied-permissions/user", "expires_in": 86400}),
                );
                if let Some(id) = r.json()["token_id"].as_str() {
                    tokens.push(id.to_string());
                }
                r
            }
            10 => admin.post(
                "/access/api/v1/orgs/acme/access_keys",
                &json!({"id": format!("k{n}"), "password": "password-1"}),
            ),
            11 if !tokens.is_empty() => {
                let id = tokens.remove(next(tokens.len()));
                admin.delete(&format!("/access/api/v1/tokens/{id}"))
            }
            12 => {
                // Disabled: nothing is delivered (deliveries are not this test's subject).
                let key = format!("s{n}");
                subscriptions.push(key.clone());
                admin.post(
                    "/event/api/v1/subscriptions",
                    &json!({"key": key, "enabled": false,
                            "event_filter": {"domain": "user", "event_types": ["created"]},
                            "handlers": [{"handler_type": "webhook", "url": "https://hooks.example.test/in",
                                          "secret": "hook-secret-1"}]}),
                )
            }
            13 if !subscriptions.is_empty() && next(3) == 0 => {
                let key = subscriptions.remove(next(subscriptions.len()));
                admin.delete(&format!("/event/api/v1/subscriptions/{key}"))
            }
            13 if !subscriptions.is_empty() => {
                let key = &subscriptions[next(subscriptions.len())];
                admin.put(
                    &format!("/event/api/v1/subscriptions/{key}"),
                    &json!({"key": key, "enabled": false, "description": format!("changed at {n}"),
                            "event_filter": {"domain": "group", "event_types": ["created", "deleted"]},
                            "handlers": [{"handler_type": "webhook", "url": format!("https://hooks.example.test/{n}")}]}),
                )
            }
            14 if !users.is_empty() => {
                // Failed sign-ins lock the user (the server writes that); or an unlock.
                let u = &users[next(users.len())];
                if next(2) == 0 {
                    for _ in 0..2 {
                        app.as_user(u, "not-the-password")
                            .get(&format!("/access/api/v2/users/{u}"));
                    }
                    admin.get("/api/system/ping")
                } else {
                    admin.post_empty(&format!("/access/api/v2/users/{u}/unlock"))
                }
            }
            15 if !users.is_empty() => {
                // A rename through SCIM (the id stays, the name moves).
                let i = next(users.len());
                let to = format!("renamed{n}");
                let r = admin.raw(
                    "PATCH",
                    &format!("/access/api/v1/scim/v2/Users/{}", users[i]),
                    Some("application/scim+json"),
                    Some(
                        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                               "Operations": [{"op": "replace", "path": "userName", "value": to}]})
                        .to_string()
                        .as_bytes(),
                    ),
                );
                if r.status < 300 {
                    users[i] = to;
                }
                r
            }
            16 if !projects.is_empty() && !users.is_empty() => {
                let p = &projects[next(projects.len())];
                let u = &users[next(users.len())];
                if next(3) == 0 {
                    admin.delete(&format!("/access/api/v1/projects/{p}/users/{u}"))
                } else {
                    admin.put(
                        &format!("/access/api/v1/projects/{p}/users/{u}"),
                        &json!({"roles": ["Developer"]}),
                    )
                }
            }
            _ => admin.post(
                "/access/api/v1/orgs/acme/entitlements",
                &json!({"repo": "libs", "access": "r", "tags": [format!("t{n}")]}),
            ),
        };
        if r.status >= 500 {
            panic!("{}", r.text);
        }
        // What was written, if anything (a refused write, or a sign-in that failed
        // without locking, writes nothing).
        let seq = app.digest()["seq"].as_u64().unwrap();
        if seq == head {
            continue;
        }
        if r.status < 300 && r.header("x-gatehouse-seq").is_some() {
            assert_eq!(seq_of(&r), seq, "{}", r.text);
        }
        head = seq;
        let users_page = admin.get("/access/api/v2/users").json();
        recorded.push((seq, state(&admin, None), users_page));
    }
    // Every kind of change happened.
    let kinds: BTreeSet<String> = admin.get("/access/api/v1/audit/events?limit=10000").json()
        ["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    for kind in [
        "TokenRevoked",
        "UserLocked",
        "UserUnlocked",
        "UserRenamed",
        "SubscriptionSaved",
        "SubscriptionDeleted",
    ] {
        assert!(kinds.contains(kind), "no {kind} in {kinds:?}");
    }
    let mut all_users: Vec<String> = recorded
        .iter()
        .flat_map(|(_, st, _)| keys(&st["directory"]["users"]))
        .collect();
    all_users.sort();
    all_users.dedup();
    for (seq, expected, users_page) in &recorded {
        let got = state(&admin, Some(&seq.to_string()));
        assert_eq!(&got, expected, "as_of={seq}");
        // One user's read is rebuilt from that user's own timeline: it must agree.
        for _ in 0..3 {
            let u = &all_users[next(all_users.len())];
            let r = admin.get(&format!("/access/api/v2/users/{u}?as_of={seq}"));
            let then = &expected["directory"]["users"][u];
            if then.is_null() {
                assert_eq!(r.status, 404, "{u} as_of={seq}: {}", r.text);
                continue;
            }
            assert_eq!(r.status, 200, "{u} as_of={seq}: {}", r.text);
            let view = r.json();
            let groups: BTreeSet<String> = then["groups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g.as_str().unwrap().to_string())
                .collect();
            let got_groups: BTreeSet<String> = view["groups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g.as_str().unwrap().to_string())
                .collect();
            assert_eq!(got_groups, groups, "{u} groups as_of={seq}");
            assert_eq!(view["status"], then["status"], "{u} status as_of={seq}");
            assert_eq!(view["admin"], then["admin"], "{u} admin as_of={seq}");
            assert_eq!(
                view["email"].is_null(),
                then["email"].is_null(),
                "{u} email as_of={seq}"
            );
        }
        let page = admin.get(&format!("/access/api/v2/users?as_of={seq}"));
        assert_eq!(page.status, 200, "{}", page.text);
        assert_eq!(&page.json(), users_page, "users as_of={seq}");
    }
    // Global roles and federation targets are in the diff too.
    let head = admin.get("/access/api/v1/system/state/digest").json()["seq"]
        .as_u64()
        .unwrap();
    let r = admin.post(
        "/access/api/v1/roles",
        &json!({"name": "Auditor", "type": "CUSTOM_GLOBAL", "environments": ["DEV"], "actions": ["READ_REPOSITORY"]}),
    );
    assert!(r.status < 300, "{}", r.text);
    let d = admin
        .get(&format!("/access/api/v1/audit/diff?from={head}"))
        .json();
    assert!(
        d["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["entity"] == "global_role" && c["id"] == "Auditor"),
        "{d}"
    );
    // A wrong moment is named as given (`from`, `to`), not as `as_of`.
    for (query, field) in [
        ("from=abc", "`from`"),
        ("from=1&to=zz", "`to`"),
        ("from=3&to=2", "`from`"),
        ("from=1&untill=2", "`untill`"),
    ] {
        let r = admin.get(&format!("/access/api/v1/audit/diff?{query}"));
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(r.error_message().contains(field), "{query}: {}", r.text);
    }
    for _ in 0..25 {
        let (i, j) = (next(recorded.len()), next(recorded.len()));
        let (i, j) = (i.min(j), i.max(j));
        let (from, a, _) = &recorded[i];
        let (to, b, _) = &recorded[j];
        let d = admin.get(&format!("/access/api/v1/audit/diff?from={from}&to={to}"));
        assert_eq!(d.status, 200, "{}", d.text);
        let changes = d.json()["changes"].as_array().unwrap().clone();
        for (entity, pick) in [
            (
                "user",
                (|s: &Value| s["directory"]["users"].clone()) as fn(&Value) -> Value,
            ),
            ("group", |s: &Value| s["directory"]["groups"].clone()),
            ("permission_target", |s: &Value| {
                s["permissions"]["targets"].clone()
            }),
            ("access_key", |s: &Value| s["access_keys"]["keys"].clone()),
            ("token", |s: &Value| s["tokens"]["by_id"].clone()),
            ("project", |s: &Value| s["projects"]["by_key"].clone()),
            ("subscription", |s: &Value| s["subscriptions"].clone()),
        ] {
            let (before, after) = (keys(&pick(a)), keys(&pick(b)));
            let named = |change: &str| -> BTreeSet<String> {
                changes
                    .iter()
                    .filter(|c| c["entity"] == entity && c["change"] == change)
                    .map(|c| c["id"].as_str().unwrap().to_string())
                    .collect()
            };
            assert_eq!(
                named("created"),
                after.difference(&before).cloned().collect(),
                "{entity} created {from}..{to}"
            );
            assert_eq!(
                named("deleted"),
                before.difference(&after).cloned().collect(),
                "{entity} deleted {from}..{to}"
            );
            for id in before.intersection(&after) {
                let changed = pick(a)[id] != pick(b)[id];
                let listed = named("changed").contains(id);
                if listed {
                    assert!(changed, "{entity} {id} listed as changed {from}..{to}");
                }
                // A subscription's definition changed: the diff says so.
                if entity == "subscription"
                    && pick(a)[id]["subscription"] != pick(b)[id]["subscription"]
                {
                    assert!(listed, "{entity} {id} changed {from}..{to}: {changes:?}");
                }
            }
        }
    }
}

#[test]
fn as_of_by_time_and_read_only_past() {
    let app = TestApp::spawn();
    let admin = app.admin();
    admin.post(
        "/access/api/v2/users",
        &json!({"username": "early", "password": "password-1"}),
    );
    std::thread::sleep(std::time::Duration::from_millis(30));
    let between = gatehouse::timefmt::format(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
        true,
    );
    std::thread::sleep(std::time::Duration::from_millis(30));
    admin.post(
        "/access/api/v2/users",
        &json!({"username": "late", "password": "password-1"}),
    );
    let names = |as_of: &str| -> Vec<String> {
        let r = admin.get(&format!("/access/api/v2/users?as_of={as_of}"));
        assert_eq!(r.status, 200, "{as_of}: {}", r.text);
        r.json()["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_string())
            .collect()
    };
    let then = names(&between);
    assert!(
        then.contains(&"early".to_string()) && !then.contains(&"late".to_string()),
        "{then:?}"
    );
    assert!(
        names("2000-01-01T00:00:00Z").is_empty(),
        "before the first event there is nothing"
    );
    let later = names("2999-01-01T00:00:00%2B01:00");
    assert!(later.contains(&"late".to_string()));
    // A user that did not exist then is 404 then.
    assert_eq!(
        admin
            .get(&format!("/access/api/v2/users/late?as_of={between}"))
            .status,
        404
    );
    assert_eq!(
        admin
            .get(&format!("/access/api/v2/users/early?as_of={between}"))
            .status,
        200
    );
    // SCIM reads are reads too.
    let scim = |path: &str| admin.get(&format!("/access/api/v1/scim/v2{path}"));
    assert_eq!(scim(&format!("/Users/late?as_of={between}")).status, 404);
    assert_eq!(scim(&format!("/Users/early?as_of={between}")).status, 200);
    assert_eq!(
        scim(&format!("/Users?as_of={between}")).json()["totalResults"],
        3,
        "admin, the built-in anonymous and early"
    );
    // Bad values and writes.
    for bad in ["yesterday", "99999999", "-1", "2025-13-01T00:00:00Z"] {
        let r = admin.get(&format!("/access/api/v2/users?as_of={bad}"));
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert!(r.error_message().contains("as_of"), "{}", r.text);
    }
    let r = admin.post(
        "/access/api/v2/users?as_of=1",
        &json!({"username": "x", "password": "password-1"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        admin.get("/access/api/v2/users/x").status,
        404,
        "nothing was written"
    );
}

#[test]
fn was_it_allowed_then() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("bob", "password-1");
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/t",
        &json!({"repo": {"repositories": ["libs"], "actions": {"users": {"bob": ["read"]}}}}),
    );
    let granted = seq_of(&r);
    let r = admin.delete("/artifactory/api/v2/security/permissions/t");
    let revoked = seq_of(&r);
    let bob = app.as_user("bob", "password-1");
    let ask = |as_of: Option<u64>| {
        let q = as_of.map(|a| format!("&as_of={a}")).unwrap_or_default();
        bob.get(&format!(
            "/access/api/v1/authorize?resource=libs/a.jar&action=read{q}"
        ))
    };
    assert_eq!(ask(None).status, 403);
    let then = ask(Some(granted));
    assert_eq!(then.status, 200, "{}", then.text);
    assert!(then.json()["via"]
        .as_str()
        .unwrap()
        .contains("permission target `t`"));
    assert_eq!(ask(Some(revoked)).status, 403);
    assert_eq!(ask(Some(granted - 1)).status, 403, "before the grant");
    // A user disabled at that moment could do nothing then: asked by itself or for it.
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/t2",
        &json!({"repo": {"repositories": ["libs"], "actions": {"users": {"bob": ["read"]}}}}),
    );
    assert!(r.status < 300, "{}", r.text);
    let r = admin.patch("/access/api/v2/users/bob", &json!({"status": "disabled"}));
    let disabled = seq_of(&r);
    admin.patch("/access/api/v2/users/bob", &json!({"status": "enabled"}));
    let then = ask(Some(disabled));
    assert_eq!(then.status, 403, "{}", then.text);
    assert!(then.text.contains("disabled then"), "{}", then.text);
    let r = admin.get(&format!(
        "/access/api/v1/authorize?resource=libs/a.jar&action=read&user=bob&as_of={disabled}"
    ));
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(ask(None).status, 200);
}

/// A user renamed since a moment is judged then under its name of then: today's name
/// was nobody's (it answered "no grant", and 404 to an admin's `user=`).
#[test]
fn a_renamed_user_is_judged_then_under_its_name_then() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("bob", "password-1");
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/t",
        &json!({"repo": {"repositories": ["libs"], "actions": {"users": {"bob": ["read"]}}}}),
    );
    let granted = seq_of(&r);
    let r = admin.raw(
        "PATCH",
        "/access/api/v1/scim/v2/Users/bob",
        Some("application/scim+json"),
        Some(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "userName", "value": "robert"}]})
            .to_string()
            .as_bytes(),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // The grant followed the rename; then, it named `bob`, and so did the account.
    let robert = app.as_user("robert", "password-1");
    let path = |q: &str| format!("/access/api/v1/authorize?resource=libs/a.jar&action=read{q}");
    assert_eq!(robert.get(&path("")).status, 200);
    let then = robert.get(&path(&format!("&as_of={granted}")));
    assert_eq!(then.status, 200, "{}", then.text);
    assert_eq!(then.json()["subject"], "bob", "{}", then.text);
    assert!(then.text.contains("permission target `t`"), "{}", then.text);
    let asked = admin.get(&path(&format!("&user=robert&as_of={granted}")));
    assert_eq!(asked.status, 200, "{}", asked.text);
    assert_eq!(asked.json()["subject"], "bob", "{}", asked.text);
    // Before the account, an admin's `user=` finds nobody of today's account.
    let r = admin.get(&path(&format!("&user=robert&as_of={}", granted - 2)));
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(r.text.contains("did not exist"), "{}", r.text);
}

#[test]
fn the_events_api_filters_pages_streams_and_redacts() {
    let app = TestApp::spawn();
    let admin = app.admin();
    for i in 0..30 {
        app.create_user(&format!("user{i}"), "Secret-Password-1");
    }
    app.create_group("ops");
    admin.patch(
        "/access/api/v2/groups/ops/members",
        &json!({"add": ["user7"]}),
    );
    let page = admin
        .get("/access/api/v1/audit/events?type=UserCreated&limit=10")
        .json();
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 10);
    assert!(events.iter().all(|e| e["type"] == "UserCreated"));
    assert_eq!(events[0]["body"]["password_hash"], "[redacted]");
    assert_eq!(
        events[0]["actor"], "system",
        "the first admin is created by the server"
    );
    assert_eq!(events[0]["hash"].as_str().unwrap().len(), 64);
    let next = page["next"].as_u64().expect("more pages");
    let rest = admin
        .get(&format!(
            "/access/api/v1/audit/events?type=UserCreated&from={next}&limit=1000"
        ))
        .json();
    assert_eq!(
        rest["events"].as_array().unwrap().len(),
        22,
        "32 users in all (admin and the built-in anonymous too)"
    );
    assert!(rest.get("next").is_none());
    let about7 = admin.get("/access/api/v1/audit/events?entity=user7").json();
    let kinds: Vec<&str> = about7["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["UserCreated", "GroupMembersChanged"]);
    let by_admin = admin
        .get("/access/api/v1/audit/events?actor=admin&type=GroupCreated")
        .json();
    assert_eq!(by_admin["events"].as_array().unwrap().len(), 1);
    let window = admin.get("/access/api/v1/audit/events?from=5&to=7").json();
    let positions: Vec<u64> = window["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, vec![5, 6, 7]);
    // NDJSON: every event of the range, one per line, no secrets.
    let r = admin.raw_with(
        "GET",
        "/access/api/v1/audit/events",
        None,
        None,
        &[("Accept", "application/x-ndjson")],
    );
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/x-ndjson"));
    let lines: Vec<Value> = r
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let head = app.digest()["seq"].as_u64().unwrap();
    assert_eq!(lines.len() as u64, head);
    assert!(!r.text.contains("$argon2"), "password hashes are redacted");
    for (i, e) in lines.iter().enumerate() {
        assert_eq!(e["position"], i as u64 + 1);
    }
    // Since / until.
    let t = lines[10]["time"].as_str().unwrap();
    let since = admin
        .get(&format!(
            "/access/api/v1/audit/events?since={t}&limit=10000"
        ))
        .json();
    assert!(since["events"][0]["position"].as_u64().unwrap() <= 11);
    // A misspelt or empty filter is refused (they answered every event, or none).
    for bad in [
        "type=Nope",
        "from=x",
        "since=yesterday",
        "limit=0",
        "type=",
        "type=,",
        "actr=admin",
        "untill=2020-01-01T00:00:00Z",
    ] {
        assert_eq!(
            admin
                .get(&format!("/access/api/v1/audit/events?{bad}"))
                .status,
            400,
            "{bad}"
        );
    }
    // The chain.
    let c = admin.get("/access/api/v1/audit/chain").json();
    assert_eq!(c["status"], "intact");
    assert_eq!(c["verified_to"], head);
    app.create_user("plain", "password-1");
    assert_eq!(
        app.as_user("plain", "password-1")
            .get("/access/api/v1/audit/events")
            .status,
        403
    );
}

fn gatehouse(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn digest_in(text: &str) -> String {
    text.split("state digest ")
        .nth(1)
        .unwrap_or_else(|| panic!("no digest in {text}"))
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// export → import reproduces the chain and the digest (both formats); replay gives the
/// same digest as verify, and `--to` stops where asked.
#[test]
fn export_import_and_replay_reproduce_the_digest() {
    let app = TestApp::spawn();
    let admin = app.admin();
    for i in 0..40 {
        app.create_user(&format!("user{i}"), "password-1");
    }
    app.create_group("g");
    admin.patch(
        "/access/api/v2/groups/g/members",
        &json!({"add": ["user1", "user2"]}),
    );
    let live = app.digest();
    let dir = app.dir.clone();
    let tmp = app.stop().expect("the temp dir");
    let d = dir.to_str().unwrap();
    let (ok, verified) = gatehouse(&["verify", "--data-dir", d]);
    assert!(ok, "{verified}");
    assert_eq!(digest_in(&verified), live["digest"].as_str().unwrap());
    let (ok, replayed) = gatehouse(&["replay", "--data-dir", d]);
    assert!(ok, "{replayed}");
    assert_eq!(digest_in(&replayed), digest_in(&verified));
    assert!(replayed.contains("events/s"), "{replayed}");
    let (ok, out) = gatehouse(&["replay", "--data-dir", d, "--to", "100000"]);
    assert!(!ok && out.contains("past the log's head"), "{out}");
    let (ok, partial) = gatehouse(&["replay", "--data-dir", d, "--to", "10"]);
    assert!(ok && partial.contains("position 10,"), "{partial}");
    assert_ne!(digest_in(&partial), digest_in(&verified));
    for format in ["binary", "ndjson"] {
        let file = tmp.path().join(format!("export.{format}"));
        let f = file.to_str().unwrap();
        let (ok, out) = gatehouse(&["export", "--data-dir", d, "--out", f, "--format", format]);
        assert!(ok, "{out}");
        assert!(out.contains("keys are not in an export"), "{out}");
        let text = std::fs::read(&file).unwrap();
        assert!(
            !text.windows(10).any(|w| w == b"password-1"),
            "no password in clear"
        );
        let target = tmp.path().join(format!("restored-{format}"));
        let t = target.to_str().unwrap();
        let (ok, out) = gatehouse(&["import", "--data-dir", t, "--in", f]);
        assert!(ok, "{out}");
        assert!(out.contains("copy <data-dir>/keys/"), "{out}");
        assert_eq!(digest_in(&out), digest_in(&verified), "{format}");
        let (ok, out) = gatehouse(&["import", "--data-dir", t, "--in", f]);
        assert!(!ok && out.contains("empty data directory"), "{out}");
        // A tampered export is refused, naming the position.
        let mut bytes = std::fs::read(&file).unwrap();
        if format == "binary" {
            // The last event's bytes, just before the end mark (48 bytes).
            let n = bytes.len() - 48;
            bytes[n - 3] ^= 0x01;
        } else {
            let text = String::from_utf8(bytes).unwrap();
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            let mut v: Value = serde_json::from_str(&lines[5]).unwrap();
            v["hash"] = json!("00".repeat(32));
            lines[5] = v.to_string();
            bytes = lines.join("\n").into_bytes();
        }
        let bad = tmp.path().join(format!("bad.{format}"));
        std::fs::write(&bad, bytes).unwrap();
        let target = tmp.path().join(format!("bad-restore-{format}"));
        let (ok, out) = gatehouse(&[
            "import",
            "--data-dir",
            target.to_str().unwrap(),
            "--in",
            bad.to_str().unwrap(),
        ]);
        assert!(
            !ok && out.contains("chain broken at position"),
            "{format}: {out}"
        );
        // Cut at an event's boundary (a copy that stopped early) or emptied: no end mark,
        // refused by verify and import (it verified "intact" and imported an older
        // history); `--allow-unterminated` takes an old, unmarked export as it is.
        let whole = std::fs::read(&file).unwrap();
        let cut = if format == "binary" {
            whole[..whole.len() - 48].to_vec()
        } else {
            let text = String::from_utf8(whole.clone()).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            (lines[..lines.len() - 1].join("\n") + "\n").into_bytes()
        };
        let cut_short = {
            let fewer = if format == "binary" {
                // The end mark kept, the last event taken out before it.
                let mut v = whole.clone();
                let records = gatehouse::log::export::read(&whole).unwrap();
                let last = records.last().unwrap();
                let at = whole.len() - 48 - (44 + last.bytes.len());
                v.drain(at..whole.len() - 48);
                v
            } else {
                let text = String::from_utf8(whole.clone()).unwrap();
                let mut lines: Vec<&str> = text.lines().collect();
                lines.remove(lines.len() - 2);
                (lines.join("\n") + "\n").into_bytes()
            };
            fewer
        };
        for (what, bytes, needle) in [
            ("cut", cut.clone(), "no end mark"),
            ("empty", Vec::new(), "no end mark"),
            ("one event fewer", cut_short, "end mark says"),
        ] {
            let path = tmp.path().join(format!("{what}.{format}"));
            std::fs::write(&path, &bytes).unwrap();
            let p = path.to_str().unwrap();
            let (ok, out) = gatehouse(&["verify", "--export", p]);
            assert!(!ok && out.contains(needle), "{format} {what}: {out}");
            let into = tmp.path().join(format!("restore-{what}-{format}"));
            let (ok, out) = gatehouse(&["import", "--data-dir", into.to_str().unwrap(), "--in", p]);
            assert!(!ok && out.contains(needle), "{format} {what}: {out}");
            assert!(
                !into.join("log").exists(),
                "{format} {what}: nothing written"
            );
        }
        let old = tmp.path().join(format!("unmarked.{format}"));
        std::fs::write(&old, &cut).unwrap();
        let into = tmp.path().join(format!("restore-unmarked-{format}"));
        let (ok, out) = gatehouse(&[
            "import",
            "--data-dir",
            into.to_str().unwrap(),
            "--in",
            old.to_str().unwrap(),
            "--allow-unterminated",
        ]);
        assert!(ok, "{format}: {out}");
        assert_eq!(digest_in(&out), digest_in(&verified), "{format}");
        // Nothing was left behind: the good export imports into the same directory (an
        // empty log was left, and this was refused).
        let (ok, out) = gatehouse(&["import", "--data-dir", target.to_str().unwrap(), "--in", f]);
        assert!(ok, "{format}: {out}");
        assert_eq!(digest_in(&out), digest_in(&verified), "{format}");
    }
}

/// Records of a binary export, and writing them back with a recomputed chain (and end
/// mark).
fn parse_binary(bytes: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let magic = b"GATEHOUSE-LOG\x01\n";
    let mut rest = &bytes[magic.len()..];
    let mut out = vec![];
    while !rest.is_empty() {
        let seq = u64::from_be_bytes(rest[..8].try_into().unwrap());
        if seq == u64::MAX {
            break; // the end mark
        }
        let len = u32::from_be_bytes(rest[40..44].try_into().unwrap()) as usize;
        out.push((seq, rest[44..44 + len].to_vec()));
        rest = &rest[44 + len..];
    }
    out
}

fn write_binary_rechained(records: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = b"GATEHOUSE-LOG\x01\n".to_vec();
    let mut prev = gatehouse::log::GENESIS_HASH;
    for (seq, bytes) in records {
        let hash = gatehouse::log::chain_hash(&prev, bytes);
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&hash);
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(bytes);
        prev = hash;
    }
    // The end mark: the count and the head, as `gatehouse export` writes it.
    out.extend_from_slice(&u64::MAX.to_be_bytes());
    out.extend_from_slice(&(records.len() as u64).to_be_bytes());
    out.extend_from_slice(&prev);
    out
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let i = haystack
        .windows(from.len())
        .position(|w| w == from)
        .expect("found");
    let mut out = haystack.to_vec();
    out[i..i + from.len()].copy_from_slice(to);
    out
}

/// Signed checkpoints: listed, verified in the data directory and offline in an export
/// with the server's public key; a history rewritten with a recomputed chain is caught.
#[test]
fn signed_checkpoints_catch_a_rewritten_history() {
    let app = TestApp::spawn();
    let admin = app.admin();
    for i in 0..10 {
        app.create_user(&format!("user{i}"), "password-1");
    }
    let r = admin.post_empty("/access/api/v1/audit/checkpoints");
    assert_eq!(r.status, 201, "{}", r.text);
    let first = r.json();
    assert_eq!(
        first["position"].as_u64().unwrap() + 1,
        seq_of(&r),
        "it signs the head before it"
    );
    app.create_user("later", "password-1");
    admin.post_empty("/access/api/v1/audit/checkpoints");
    let list = admin.get("/access/api/v1/audit/checkpoints").json();
    assert_eq!(list["checkpoints"].as_array().unwrap().len(), 2);
    let pem = admin.get("/access/api/v1/cert/root?formatted=true").text;
    let dir = app.dir.clone();
    let tmp = app.stop().unwrap();
    let d = dir.to_str().unwrap();
    let (ok, out) = gatehouse(&["verify", "--data-dir", d]);
    assert!(ok && out.contains("2 checkpoints verified"), "{out}");
    let key = tmp.path().join("root.pem");
    std::fs::write(&key, pem).unwrap();
    let k = key.to_str().unwrap();
    let export = tmp.path().join("log.bin");
    let e = export.to_str().unwrap();
    assert!(gatehouse(&["export", "--data-dir", d, "--out", e]).0);
    let (ok, out) = gatehouse(&["verify", "--export", e, "--key", k]);
    assert!(
        ok && out.contains("2 checkpoints verified with the given key"),
        "{out}"
    );
    // Rewrite user3's creation as userX's, recompute every hash after it: the chain is
    // consistent again, but the checkpoint says otherwise.
    let records = parse_binary(&std::fs::read(&export).unwrap());
    let forged: Vec<(u64, Vec<u8>)> = records
        .iter()
        .map(|(seq, b)| {
            let text = String::from_utf8_lossy(b);
            if text.contains("UserCreated") && text.contains("user3") {
                (*seq, replace(b, b"user3", b"userX"))
            } else {
                (*seq, b.clone())
            }
        })
        .collect();
    let forged_file = tmp.path().join("forged.bin");
    std::fs::write(&forged_file, write_binary_rechained(&forged)).unwrap();
    let (ok, out) = gatehouse(&[
        "verify",
        "--export",
        forged_file.to_str().unwrap(),
        "--key",
        k,
    ]);
    assert!(!ok && out.contains("does not match the chain"), "{out}");
    // `import` refuses it too, before writing anything (it imported it, and a history
    // its own checkpoint contradicts was served).
    let into = tmp.path().join("forged-import");
    let (ok, out) = gatehouse(&[
        "import",
        "--data-dir",
        into.to_str().unwrap(),
        "--in",
        forged_file.to_str().unwrap(),
    ]);
    assert!(!ok && out.contains("does not match the chain"), "{out}");
    assert!(!into.join("events.log").exists() && !into.join("log").exists());
    // Forging the checkpoint's hash too: its signature no longer verifies.
    let cp_position = first["position"].as_u64().unwrap();
    let real_hash = first["head_hash"].as_str().unwrap().to_string();
    let mut prev = gatehouse::log::GENESIS_HASH;
    let mut forged_hash = String::new();
    for (seq, b) in &forged {
        prev = gatehouse::log::chain_hash(&prev, b);
        if *seq == cp_position {
            forged_hash = prev.iter().map(|x| format!("{x:02x}")).collect();
        }
    }
    let both: Vec<(u64, Vec<u8>)> = forged
        .iter()
        .map(|(seq, b)| {
            if b.windows(real_hash.len())
                .any(|w| w == real_hash.as_bytes())
            {
                (
                    *seq,
                    replace(b, real_hash.as_bytes(), forged_hash.as_bytes()),
                )
            } else {
                (*seq, b.clone())
            }
        })
        .collect();
    std::fs::write(&forged_file, write_binary_rechained(&both)).unwrap();
    let (ok, out) = gatehouse(&[
        "verify",
        "--export",
        forged_file.to_str().unwrap(),
        "--key",
        k,
    ]);
    assert!(!ok && out.contains("signature does not verify"), "{out}");
}

/// The backup endpoint writes the same export form: importing it gives the same digest.
#[test]
fn a_backup_over_http_restores_with_import() {
    let app = TestApp::spawn();
    let admin = app.admin();
    for i in 0..5 {
        app.create_user(&format!("user{i}"), "password-1");
    }
    let r = admin.post_empty("/access/api/v1/system/backup/export");
    assert_eq!(r.status, 200, "{}", r.text);
    let file = r.json()["file"].as_str().unwrap().to_string();
    assert!(
        file.starts_with(app.dir.join("backup").to_str().unwrap()),
        "{file}"
    );
    let digest = app.digest()["digest"].as_str().unwrap().to_string();
    let target = tempfile::tempdir().unwrap();
    let t = target.path().join("restored");
    let (ok, out) = gatehouse(&["import", "--data-dir", t.to_str().unwrap(), "--in", &file]);
    assert!(ok, "{out}");
    assert_eq!(digest_in(&out), digest);
    app.create_user("plain", "password-1");
    assert_eq!(
        app.as_user("plain", "password-1")
            .post_empty("/access/api/v1/system/backup/export")
            .status,
        403
    );
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Streaming a 1,000,000-event range as NDJSON keeps the server's memory flat: the
/// answer is hundreds of megabytes, the server's resident memory grows by a bounded
/// amount (it streams through a small channel, it does not build the answer).
#[test]
fn streaming_a_million_events_keeps_memory_flat() {
    use gatehouse::log::EventLog;
    use gatehouse_schemas::{Envelope, Event};
    use std::io::BufRead;
    let events: u64 = std::env::var("GATEHOUSE_STREAM_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    // A real server makes the service, its admin and its keys; then a million events
    // are appended to its log directly (as a long life would have).
    let server = crate::helpers::ServerProcess::start(&dir);
    assert_eq!(server.admin().get("/access/api/v2/users/admin").status, 200);
    assert!(server.terminate().success());
    {
        let mut log = EventLog::open(&dir).unwrap();
        let (mut state, _) = log.load(gatehouse::log::StartupVerify::Tail).unwrap();
        let mut seq = log.head_seq();
        let time = log.head_time_ms();
        let mut batch = Vec::with_capacity(10_000);
        while seq < events {
            seq += 1;
            let env = Envelope {
                seq,
                time_ms: time,
                actor: "admin".into(),
                origin: state.service_id.clone().unwrap_or_default(),
                request_id: format!("r{seq}"),
                event: Event::TrustedKeyRemoved {
                    name: format!("peer-{seq}"),
                },
            };
            state.apply(&env);
            batch.push(env);
            if batch.len() == 10_000 {
                log.append(&batch).unwrap();
                batch.clear();
            }
        }
        log.append(&batch).unwrap();
        log.write_snapshot(&state).unwrap();
    }
    let server = crate::helpers::ServerProcess::start(&dir);
    let pid = server.pid();
    let admin = server.admin();
    let auth = admin.auth_header().unwrap();
    let before = rss_kib(pid);
    let resp = ureq::get(&format!("{}/access/api/v1/audit/events", server.base))
        .set("Authorization", &auth)
        .set("Accept", "application/x-ndjson")
        .call()
        .unwrap();
    let mut reader = std::io::BufReader::new(resp.into_reader());
    let mut line = String::new();
    let (mut lines, mut bytes, mut peak) = (0u64, 0u64, before);
    loop {
        line.clear();
        let n = reader.read_line(&mut line).unwrap();
        if n == 0 {
            break;
        }
        lines += 1;
        bytes += n as u64;
        if lines % 50_000 == 0 {
            peak = peak.max(rss_kib(pid));
        }
    }
    peak = peak.max(rss_kib(pid));
    assert_eq!(lines, events, "every event, once");
    let growth_mib = (peak.saturating_sub(before)) / 1024;
    assert!(
        bytes > 100 * 1024 * 1024,
        "the answer is big ({} MiB)",
        bytes / (1024 * 1024)
    );
    assert!(
        growth_mib < 64,
        "streaming {} MiB grew the server by {growth_mib} MiB",
        bytes / (1024 * 1024)
    );
    server.kill();
}

/// Personal data is never on disk in clear; a purge destroys the user's key, so what the
/// events, snapshots and exports hold of it is unreadable, while the chain verifies.
#[test]
fn a_purge_erases_personal_data_and_the_chain_still_verifies() {
    let app = TestApp::spawn_with(Config {
        snapshot_every: 5,
        ..Config::default()
    });
    let admin = app.admin();
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "erin", "password": "password-1", "email": "erin.private@example.com"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["email"], "erin.private@example.com");
    let r = admin.raw(
        "PATCH",
        "/access/api/v1/scim/v2/Users/erin",
        Some("application/scim+json"),
        Some(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "add", "value": {"name": {"givenName": "Erinprivatename"},
            "addresses": [{"streetAddress": "1 Privacy Lane"}]}}]})
            .to_string()
            .as_bytes(),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["name"]["givenName"], "Erinprivatename");
    let before = seq_of(&r);
    for i in 0..10 {
        app.create_user(&format!("other{i}"), "password-1");
    }
    let secrets: [&[u8]; 3] = [
        b"erin.private@example.com",
        b"Erinprivatename",
        b"Privacy Lane",
    ];
    for s in secrets {
        let hits = crate::helpers::files_containing(&app.dir, s);
        assert!(
            hits.is_empty(),
            "{} in clear in {hits:?}",
            String::from_utf8_lossy(s)
        );
    }
    // The past can still read it before the purge…
    let then = admin
        .get(&format!("/access/api/v2/users/erin?as_of={before}"))
        .json();
    assert_eq!(then["email"], "erin.private@example.com");
    // (The SCIM view of then, from the whole past state: its given name and e-mail.)
    let scim_then = |admin: &Client| {
        let r = admin.get(&format!("/access/api/v1/scim/v2/Users/erin?as_of={before}"));
        assert_eq!(r.status, 200, "{}", r.text);
        let u = r.json();
        json!([u["name"]["givenName"], u["emails"][0]["value"]])
    };
    assert_eq!(
        scim_then(&admin),
        json!(["Erinprivatename", "erin.private@example.com"])
    );
    let r = admin.delete("/access/api/v2/users/erin?purge=true");
    assert_eq!(r.status, 204, "{}", r.text);
    // …and no longer after it.
    let then = admin
        .get(&format!("/access/api/v2/users/erin?as_of={before}"))
        .json();
    assert_eq!(then["email"], "[erased]");
    assert_eq!(scim_then(&admin), json!(["[erased]", "[erased]"]));
    assert_eq!(
        admin
            .delete("/access/api/v2/users/other1?purge=maybe")
            .status,
        400
    );
    let dir = app.dir.clone();
    let tmp = app.stop().unwrap();
    let (ok, out) = gatehouse(&["verify", "--data-dir", dir.to_str().unwrap()]);
    assert!(ok, "the chain still verifies: {out}");
    for s in secrets {
        assert!(crate::helpers::files_containing(&dir, s).is_empty());
    }
    // A restart (snapshots, caches gone) brings nothing back.
    let app = TestApp::start(dir.clone(), Config::default()).unwrap();
    let admin = app.admin();
    let then = admin
        .get(&format!("/access/api/v2/users/erin?as_of={before}"))
        .json();
    assert_eq!(then["email"], "[erased]");
    assert_eq!(scim_then(&admin), json!(["[erased]", "[erased]"]));
    drop(app);
    // An export made after the purge cannot bring it back either.
    let export = tmp.path().join("after-purge.bin");
    assert!(
        gatehouse(&[
            "export",
            "--data-dir",
            dir.to_str().unwrap(),
            "--out",
            export.to_str().unwrap(),
            "--format",
            "ndjson"
        ])
        .0
    );
    let text = std::fs::read(&export).unwrap();
    for s in secrets {
        assert!(!text.windows(s.len()).any(|w| w == s));
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&p, to.join(entry.file_name())).unwrap();
        }
    }
}

/// A backup that continues a server's log is imported over HTTP (a server restored from
/// an older backup catches up); one that diverges is refused.
#[test]
fn a_later_backup_is_imported_over_http_and_a_foreign_one_refused() {
    let a = TestApp::spawn();
    let admin = a.admin();
    for i in 0..5 {
        a.create_user(&format!("early{i}"), "password-1");
    }
    let first = admin
        .post_empty("/access/api/v1/system/backup/export")
        .json()["file"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 0..7 {
        a.create_user(&format!("late{i}"), "password-1");
    }
    let second = admin
        .post_empty("/access/api/v1/system/backup/export")
        .json()["file"]
        .as_str()
        .unwrap()
        .to_string();
    let digest = a.digest()["digest"].as_str().unwrap().to_string();
    let a_dir = a.dir.clone();
    let _a_tmp = a.stop();
    // B: restored from the first backup, with A's keys (they are not in backups).
    let tmp = tempfile::tempdir().unwrap();
    let b_dir = tmp.path().join("b");
    let (ok, out) = gatehouse(&[
        "import",
        "--data-dir",
        b_dir.to_str().unwrap(),
        "--in",
        &first,
    ]);
    assert!(ok, "{out}");
    copy_dir(&a_dir.join("keys"), &b_dir.join("keys"));
    std::fs::copy(
        a_dir.join("initial-admin-password"),
        b_dir.join("initial-admin-password"),
    )
    .unwrap();
    std::fs::create_dir_all(b_dir.join("backup")).unwrap();
    std::fs::copy(&second, b_dir.join("backup").join("later.bin")).unwrap();
    std::fs::copy(
        format!("{second}.sig"),
        b_dir.join("backup").join("later.bin.sig"),
    )
    .unwrap();
    // The same backup with one event more, made up and chained: its signature is over
    // another last record, and it is refused (it was appended, in anyone's name).
    let mut records = parse_binary(&std::fs::read(&second).unwrap());
    let last_seq = records.last().unwrap().0;
    let (_, created) = records
        .iter()
        .rev()
        .find(|(_, b)| b.windows(5).any(|w| w == b"late6"))
        .unwrap()
        .clone();
    let forged = replace(&created, b"late6", b"lateX");
    let forged = gatehouse_schemas::decode(&forged)
        .map(|mut env| {
            env.seq = last_seq + 1;
            gatehouse_schemas::encode(&env)
        })
        .unwrap();
    records.push((last_seq + 1, forged));
    std::fs::write(
        b_dir.join("backup").join("grown.bin"),
        write_binary_rechained(&records),
    )
    .unwrap();
    std::fs::copy(
        format!("{second}.sig"),
        b_dir.join("backup").join("grown.bin.sig"),
    )
    .unwrap();
    std::fs::copy(&second, b_dir.join("backup").join("unsigned.bin")).unwrap();
    let b = TestApp::start(b_dir.clone(), Config::default()).unwrap();
    let b_admin0 = Client::new(&b.base, Some(("admin", &b.admin_password)));
    for file in ["grown.bin", "unsigned.bin"] {
        let r = b_admin0.post(
            "/access/api/v1/system/backup/import",
            &json!({"file": file}),
        );
        assert_eq!(r.status, 400, "{file}: {}", r.text);
        assert!(r.text.contains("signature"), "{file}: {}", r.text);
    }
    let b_admin = Client::new(&b.base, Some(("admin", &b.admin_password)));
    assert_eq!(b_admin.get("/access/api/v2/users/late3").status, 404);
    let r = b_admin.post(
        "/access/api/v1/system/backup/import",
        &json!({"file": "later.bin"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["imported"], 7);
    assert_eq!(b_admin.get("/access/api/v2/users/late3").status, 200);
    // Personal data this server cannot open is counted and said, not silent.
    let erased = b_admin.get("/access/api/v2/users/late3").json()["email"] == "[erased]";
    let unreadable = r.json()["unreadable_personal_data"].as_u64().unwrap();
    assert_eq!(erased, unreadable > 0, "{}", r.text);
    assert_eq!(r.header("x-gatehouse-notice").is_some(), unreadable > 0);
    assert_eq!(
        b.digest()["digest"],
        digest.as_str(),
        "the same state as A's"
    );
    let r = b_admin.post(
        "/access/api/v1/system/backup/import",
        &json!({"file": "later.bin"}),
    );
    assert_eq!(
        r.json()["imported"],
        0,
        "importing it again changes nothing"
    );
    // py-jfrog-client's body, `{"saas": false}` without `file`: the newest backup, as
    // with no body (it was a 400, "missing field `file`").
    let r = b_admin.post(
        "/access/api/v1/system/backup/import",
        &json!({"saas": false}),
    );
    assert_ne!(r.status, 400, "{}", r.text);
    assert!(!r.text.contains("missing field"), "{}", r.text);
    // Refused: names outside the backup folder, missing files, other histories.
    for (body, status) in [
        (json!({"file": "../log/db"}), 400),
        (json!({"file": ".hidden"}), 400),
        (json!({"file": "nope.bin"}), 404),
        (json!({"name": "x"}), 400),
    ] {
        assert_eq!(
            b_admin
                .post("/access/api/v1/system/backup/import", &body)
                .status,
            status,
            "{body}"
        );
    }
    let c = TestApp::spawn();
    let foreign = c
        .admin()
        .post_empty("/access/api/v1/system/backup/export")
        .json()["file"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::copy(&foreign, b_dir.join("backup").join("foreign.bin")).unwrap();
    std::fs::copy(
        format!("{foreign}.sig"),
        b_dir.join("backup").join("foreign.bin.sig"),
    )
    .unwrap();
    let r = b_admin.post(
        "/access/api/v1/system/backup/import",
        &json!({"file": "foreign.bin"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("by this server"), "{}", r.text);
    assert_eq!(b.digest()["digest"], digest.as_str(), "nothing changed");
}

/// Rebuilding a past state is work (a snapshot load plus a replay): only a caller with
/// valid credentials gets one, and only on a route that reads the past. Anyone else is
/// refused first, and routes that do not read the past answer as without `as_of`. The
/// server's debug log names every rebuild.
#[test]
fn as_of_rebuilds_nothing_for_anonymous_callers_or_other_routes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let log = tmp.path().join("server.log");
    let server = crate::helpers::ServerProcess::start_logging(&dir, &log);
    let admin = server.admin();
    for i in 0..3 {
        let r = admin.post(
            "/access/api/v2/users",
            &json!({"username": format!("user{i}"), "password": "password-1"}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let rebuilds = || {
        std::fs::read_to_string(&log)
            .unwrap()
            .matches("rebuilding the state as of a past position")
            .count()
    };
    let anon = Client::new(&server.base, None);
    let wrong = Client::new(&server.base, Some(("user1", "not-the-password")));
    for (client, path) in [
        (&anon, "/access/api/v2/users?as_of=1"),
        (&anon, "/access/api/v2/users/admin?as_of=2"),
        (&anon, "/access/api/v1/audit/state?as_of=2"),
        (&anon, "/access/api/v1/scim/v2/Users?as_of=2"),
        (
            &anon,
            "/access/api/v1/authorize?resource=libs/a.jar&action=read&as_of=2",
        ),
        (&wrong, "/access/api/v2/groups?as_of=1"),
        (&anon, "/access/api/v2/users?as_of=2000-01-01T00:00:00Z"),
    ] {
        let r = client.get(path);
        assert_eq!(r.status, 401, "{path}: {}", r.text);
    }
    // Routes that do not read the past say so (they answered the present under a 200:
    // an auditor asking for last month's settings got today's).
    for path in [
        "/api/system/ping?as_of=1",
        "/api/system/ping?as_of=yesterday",
        "/access/api/v1/config/token/default_expiry?as_of=1",
    ] {
        let r = admin.get(path);
        assert_eq!(r.status, 400, "{path}: {}", r.text);
        assert!(r.text.contains("has no past"), "{path}: {}", r.text);
    }
    assert_eq!(anon.get("/no/such/endpoint?as_of=1").status, 404);
    assert_eq!(rebuilds(), 0, "nothing was rebuilt for them");
    // Writes still refuse `as_of`, and a valid caller still reads the past.
    let r = admin.post(
        "/access/api/v2/users?as_of=1",
        &json!({"username": "x", "password": "password-1"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = admin.get("/access/api/v2/users?as_of=2");
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!r.text.contains("user0"), "{}", r.text);
    assert_eq!(rebuilds(), 1, "the probe sees a rebuild");
    server.kill();
}

/// A cleared and re-set e-mail is sealed with a new key; a purge destroys every key the
/// user's events used, so no past read shows any of its e-mails.
#[test]
fn a_purge_destroys_every_key_the_user_ever_had() {
    let app = TestApp::spawn_with(Config {
        snapshot_every: 3,
        ..Config::default()
    });
    let admin = app.admin();
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "fay", "password": "password-1", "email": "fay.first@example.com"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let first = seq_of(&r);
    let r = admin.patch("/access/api/v2/users/fay", &json!({"email": ""}));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = admin.patch(
        "/access/api/v2/users/fay",
        &json!({"email": "fay.second@example.com"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let second = seq_of(&r);
    app.create_user("bystander", "password-1");
    let emails = |admin: &Client| -> Vec<Value> {
        [first, second]
            .iter()
            .flat_map(|at| {
                // One user (its own timeline) and SCIM (the whole past state).
                let one = admin.get(&format!("/access/api/v2/users/fay?as_of={at}"));
                let scim = admin.get(&format!("/access/api/v1/scim/v2/Users/fay?as_of={at}"));
                assert_eq!((one.status, scim.status), (200, 200), "{}", scim.text);
                [
                    one.json()["email"].clone(),
                    scim.json()["emails"][0]["value"].clone(),
                ]
            })
            .collect()
    };
    let (a, b) = ("fay.first@example.com", "fay.second@example.com");
    assert_eq!(emails(&admin), vec![json!(a), json!(a), json!(b), json!(b)]);
    // Keys are files (older data directories) or lines of the batch file; a destroyed
    // key's line is overwritten with dashes.
    let count_keys = |dir: &std::path::Path| -> usize {
        std::fs::read_dir(dir.join("keys").join("personal"))
            .unwrap()
            .flatten()
            .map(|e| match e.file_name().to_str() {
                Some("batched.keys") => std::fs::read_to_string(e.path())
                    .unwrap()
                    .lines()
                    .filter(|l| !l.starts_with('-'))
                    .count(),
                _ => 1,
            })
            .sum()
    };
    let keys = count_keys(&app.dir);
    let r = admin.delete("/access/api/v2/users/fay?purge=true");
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(emails(&admin), vec![json!("[erased]"); 4]);
    assert_eq!(
        count_keys(&app.dir),
        keys - 2,
        "both of fay's keys are gone, nobody else's"
    );
    for s in [a, b] {
        let hits = crate::helpers::files_containing(&app.dir, s.as_bytes());
        assert!(hits.is_empty(), "{s} in clear in {hits:?}");
    }
    let dir = app.dir.clone();
    let _tmp = app.stop().unwrap();
    let (ok, out) = gatehouse(&["verify", "--data-dir", dir.to_str().unwrap()]);
    assert!(ok, "the chain still verifies: {out}");
    let app = TestApp::start(dir.clone(), Config::default()).unwrap();
    assert_eq!(emails(&app.admin()), vec![json!("[erased]"); 4]);
    for s in [a, b] {
        assert!(crate::helpers::files_containing(&dir, s.as_bytes()).is_empty());
    }
}

/// An erasure request often comes after the account is gone: a purge of a name no user
/// has now erases what its deleted users left (it was a 404, and a user deleted without
/// purge could never be erased), every earlier incarnation of the name included.
#[test]
fn a_user_deleted_without_purge_can_be_purged_later() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let create = |email: &str| {
        let r = admin.post(
            "/access/api/v2/users",
            &json!({"username": "yan", "email": email, "password": "password-1"}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        seq_of(&r)
    };
    let first = create("yan.private@example.com");
    assert_eq!(admin.delete("/access/api/v2/users/yan").status, 204);
    let past = |at: u64| {
        admin
            .get(&format!("/access/api/v2/users/yan?as_of={at}"))
            .json()["email"]
            .clone()
    };
    assert_eq!(past(first), "yan.private@example.com");
    let r = admin.delete("/access/api/v2/users/yan?purge=true");
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(past(first), "[erased]");
    // Re-created and deleted with purge: the earlier incarnation is erased too.
    let second = create("yan.second@example.com");
    let r = admin.delete("/access/api/v2/users/yan?purge=true");
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(past(second), "[erased]");
    for s in ["yan.private@example.com", "yan.second@example.com"] {
        let hits = crate::helpers::files_containing(&app.dir, s.as_bytes());
        assert!(hits.is_empty(), "{s} in clear in {hits:?}");
    }
    // A name that never was a user is still a 404.
    assert_eq!(
        admin
            .delete("/access/api/v2/users/nobody?purge=true")
            .status,
        404
    );
    assert_eq!(admin.delete("/access/api/v2/users/yan").status, 404);
    // A user renamed away from the name before its deletion held the name too (it was
    // missed: a 404, and its past under the name kept its e-mail).
    let kate = {
        let r = admin.post(
            "/access/api/v2/users",
            &json!({"username": "kate", "email": "kate.first@example.com", "password": "password-1"}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        seq_of(&r)
    };
    let r = admin.patch(
        "/access/api/v1/scim/v2/Users/kate",
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "userName", "value": "kate2"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(admin.delete("/access/api/v2/users/kate2").status, 204);
    let r = admin.delete("/access/api/v2/users/kate?purge=true");
    assert_eq!(r.status, 204, "{}", r.text);
    let r = admin.get(&format!("/access/api/v2/users/kate?as_of={kate}"));
    assert_eq!(r.json()["email"], "[erased]", "{}", r.text);
    let hits = crate::helpers::files_containing(&app.dir, b"kate.first@example.com");
    assert!(hits.is_empty(), "in clear in {hits:?}");
}

/// Checkpoints are events of the log they vouch for: a log stripped of them, its chain
/// recomputed, is consistent, but with `--key` nothing proves it, so it fails. A genuine
/// export says how far the key's signatures reach and how much comes after.
#[test]
fn stripping_the_checkpoints_does_not_pass_verification_with_the_key() {
    let app = TestApp::spawn();
    let admin = app.admin();
    for i in 0..4 {
        app.create_user(&format!("user{i}"), "password-1");
    }
    let r = admin.post_empty("/access/api/v1/audit/checkpoints");
    assert_eq!(r.status, 201, "{}", r.text);
    for i in 4..8 {
        app.create_user(&format!("user{i}"), "password-1");
    }
    let r = admin.post_empty("/access/api/v1/audit/checkpoints");
    let last = r.json()["position"].as_u64().unwrap();
    for i in 8..11 {
        app.create_user(&format!("user{i}"), "password-1");
    }
    let head = app.digest()["seq"].as_u64().unwrap();
    let pem = admin.get("/access/api/v1/cert/root?formatted=true").text;
    let dir = app.dir.clone();
    let tmp = app.stop().unwrap();
    let d = dir.to_str().unwrap();
    let key = tmp.path().join("root.pem");
    std::fs::write(&key, pem).unwrap();
    let k = key.to_str().unwrap();
    let export = tmp.path().join("log.bin");
    let e = export.to_str().unwrap();
    assert!(gatehouse(&["export", "--data-dir", d, "--out", e]).0);
    let (ok, out) = gatehouse(&["verify", "--export", e, "--key", k]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "positions 1 to {last} (the last verified checkpoint); {} events after it are not covered by a signature",
            head - last
        )),
        "{out}"
    );
    let (ok, out) = gatehouse(&["verify", "--data-dir", d, "--key", k]);
    assert!(
        ok && out.contains(&format!("positions 1 to {last} ")),
        "{out}"
    );
    // Strip every checkpoint, renumber the events after them, recompute the chain.
    let mut stripped = vec![];
    for (_, bytes) in parse_binary(&std::fs::read(&export).unwrap()) {
        let mut env = gatehouse_schemas::decode(&bytes).unwrap();
        if matches!(env.event, gatehouse_schemas::Event::CheckpointSigned(_)) {
            continue;
        }
        env.seq = stripped.len() as u64 + 1;
        stripped.push((env.seq, gatehouse_schemas::encode(&env)));
    }
    assert_eq!(stripped.len() as u64, head - 2);
    let forged = tmp.path().join("stripped.bin");
    let f = forged.to_str().unwrap();
    std::fs::write(&forged, write_binary_rechained(&stripped)).unwrap();
    let (ok, out) = gatehouse(&["verify", "--export", f]);
    assert!(
        ok && out.contains("0 checkpoints verified"),
        "without a key the chain alone is consistent: {out}"
    );
    let (ok, out) = gatehouse(&["verify", "--export", f, "--key", k]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "no checkpoint signed by the given key: none of the {} events is proven by it",
            head - 2
        )),
        "{out}"
    );
}

/// Past states come from checkpoints kept in memory, built when the first past read asks
/// for them (none before), bounded by `as-of-checkpoints`, and exactly what was recorded.
#[test]
fn past_reads_use_checkpoints_built_on_the_first_one() {
    let app = TestApp::spawn_with(Config {
        as_of_every: 5,
        as_of_checkpoints: 6,
        ..Config::default()
    });
    let admin = app.admin();
    let checkpoints = || -> f64 {
        let text = admin.get("/access/api/v1/metrics").text;
        text.lines()
            .find_map(|l| l.strip_prefix("gatehouse_as_of_checkpoints ")?.parse().ok())
            .unwrap_or_else(|| panic!("no gatehouse_as_of_checkpoints: {text}"))
    };
    let mut recorded = Vec::new();
    for i in 0..60 {
        let r = admin.post(
            "/access/api/v2/groups",
            &json!({"name": format!("g{i}"), "description": "a group"}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        let mut seq = seq_of(&r);
        if i % 3 == 2 {
            let d = admin.delete(&format!("/access/api/v2/groups/g{}", i - 1));
            assert_eq!(d.status, 204, "{}", d.text);
            seq = seq_of(&d);
        }
        recorded.push((seq, admin.get("/access/api/v2/groups").json()));
    }
    assert_eq!(checkpoints(), 0.0, "nothing is kept before a past read");
    let (first, groups) = &recorded[10];
    assert_eq!(
        &admin
            .get(&format!("/access/api/v2/groups?as_of={first}"))
            .json(),
        groups
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while checkpoints() < 2.0 {
        assert!(std::time::Instant::now() < deadline, "no checkpoints built");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for (seq, groups) in &recorded {
        let r = admin.get(&format!("/access/api/v2/groups?as_of={seq}"));
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(&r.json(), groups, "groups as_of={seq}");
    }
    let kept = checkpoints();
    assert!((2.0..=6.0).contains(&kept), "{kept} checkpoints");
}

/// A snapshot is a cache of the log's replay, and the server starts from the newest: one
/// rewritten (its checksum recomputed) was served while `verify` and the chain check
/// said "intact". Both now compare the state with the log's own replay.
#[test]
fn a_snapshot_that_does_not_match_the_log_is_caught() {
    let app = TestApp::spawn();
    for i in 0..5 {
        app.create_user(&format!("user{i}"), "password-1");
    }
    let dir = app.dir.clone();
    let tmp = app.stop().expect("the temp dir");
    {
        let log = gatehouse::log::EventLog::open(&dir).unwrap();
        let mut state = log.state_at(log.head_seq()).unwrap();
        // What no event did: anonymous access on.
        state.directory.anonymous_access = !state.directory.anonymous_access;
        log.write_snapshot(&state).unwrap();
    }
    let d = dir.to_str().unwrap();
    let (ok, out) = gatehouse(&["verify", "--data-dir", d]);
    assert!(!ok, "{out}");
    assert!(out.contains("does not match the log"), "{out}");
    let app = TestApp::start(dir.clone(), gatehouse::Config::default()).unwrap();
    let c = app.admin().get("/access/api/v1/audit/chain").json();
    assert_eq!(c["status"], "diverged", "{c}");
    drop(app);
    drop(tmp);
}

/// A permission target's grants key their principals (`"users": {"carol": [...]}`): the
/// audit trail's `entity` filter counts a grant as mentioning the user or group it names
/// (it matched only string values, so "what happened to carol" left out her grants).
#[test]
fn the_entity_filter_finds_permission_grants_to_a_principal() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("carol", "Carol-password-1");
    app.create_group("devs");
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/p1",
        &json!({"repo": {"repositories": ["ANY"], "actions": {
            "users": {"carol": ["read"]}, "groups": {"devs": ["read", "write"]}}}}),
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    for who in ["carol", "devs"] {
        let events = admin
            .get(&format!("/access/api/v1/audit/events?entity={who}"))
            .json();
        let kinds: Vec<&str> = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert!(kinds.contains(&"PermissionTargetSaved"), "{who}: {kinds:?}");
    }
    // A name that is only a field's name is not a principal.
    let events = admin
        .get("/access/api/v1/audit/events?entity=actions")
        .json();
    assert_eq!(events["events"], json!([]), "{events}");
}

/// A time before 1970 is a valid RFC 3339 time, before every event: the past is empty
/// then (it was refused as "not an RFC 3339 time").
#[test]
fn a_time_before_1970_reads_the_empty_past() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.get("/access/api/v2/users?as_of=1969-12-31T23:59:59Z");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["users"], json!([]), "{}", r.text);
    let r = admin.get("/access/api/v1/audit/events?since=1969-01-01T00:00:00Z&limit=1");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json()["events"].as_array().unwrap().len(),
        1,
        "{}",
        r.text
    );
}

/// "Was it allowed then?" asked anonymously: answered for then (it was answered for
/// now under the `as_of`: a grant to `anonymous` made today said yes of last week).
#[test]
fn an_anonymous_decision_as_of_a_past_position_is_that_positions() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.put(
        "/access/api/v1/config/security/anonymous_access",
        &json!({"enabled": true}),
    );
    assert!(r.status < 300, "{}", r.text);
    let before = seq_of(&r);
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/anon-read",
        &json!({"repo": {"repositories": ["libs"], "include-patterns": ["**"],
            "actions": {"users": {"anonymous": ["read"]}}}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let anon = app.anon();
    let ask = "/access/api/v1/authorize?resource=libs/x.jar&action=read";
    let now = anon.get(ask);
    assert_eq!(now.status, 200, "{}", now.text);
    // Refused then: for anonymous, a refusal is a challenge (as it is now).
    let then = anon.get(&format!("{ask}&as_of={before}"));
    assert_eq!(then.status, 401, "{}", then.text);
    let r = admin.get(&format!("{ask}&user=anonymous&as_of={before}"));
    assert_eq!(r.json()["allowed"], false, "{}", r.text);
    // Anonymous access off now: a challenge, whatever the past.
    admin.put(
        "/access/api/v1/config/security/anonymous_access",
        &json!({"enabled": false}),
    );
    assert_eq!(anon.get(&format!("{ask}&as_of={before}")).status, 401);
}

/// A diff shows a password reset (every hash compared as `[redacted]`: never a change)
/// and a user deleted and created again under its name as exactly that, never a value.
#[test]
fn a_diff_shows_password_resets_and_accounts_replaced() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let from = seq_of(&admin.post(
        "/access/api/v2/users",
        &json!({"username": "dave", "password": "Password-one-1"}),
    ));
    let r = admin.put(
        "/access/api/v2/users/dave/password",
        &json!({"password": "Password-two-2"}),
    );
    assert!(r.status < 300, "{}", r.text);
    let to = seq_of(&r);
    let d = admin
        .get(&format!("/access/api/v1/audit/diff?from={from}&to={to}"))
        .json();
    assert_eq!(
        d["changes"],
        json!([{"entity": "user", "id": "dave", "change": "changed", "fields": ["password_hash"]}]),
        "{d}"
    );
    assert!(!d.to_string().contains("argon2"), "{d}");
    assert_eq!(admin.delete("/access/api/v2/users/dave").status, 204);
    app.create_user("dave", "Password-one-1");
    let d = admin
        .get(&format!("/access/api/v1/audit/diff?from={to}"))
        .json();
    let dave: Vec<&Value> = d["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["id"] == "dave")
        .collect();
    assert_eq!(
        dave,
        [
            &json!({"entity": "user", "id": "dave", "change": "deleted"}),
            &json!({"entity": "user", "id": "dave", "change": "created"})
        ],
        "{d}"
    );
}

/// Whole-state reads take turns (two at a time): many at once all answer, the same.
#[test]
fn whole_state_reads_at_once_all_answer() {
    let app = TestApp::spawn();
    for i in 0..20 {
        app.create_group(&format!("g{i}"));
    }
    let base = app.base.clone();
    let password = app.admin_password.clone();
    let answers: Vec<(u16, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (base, password) = (base.clone(), password.clone());
                s.spawn(move || {
                    let c = Client::new(&base, Some(("admin", &password)));
                    let path = ["audit/state", "audit/chain", "audit/diff?from=1"][i % 3];
                    let r = c.get(&format!("/access/api/v1/{path}"));
                    (r.status, format!("{path} {}", r.text.len()))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
}

/// LDAP settings are events: `as_of` reads them as they were (it was a 400, "no past",
/// though README said so); a URL carrying credentials is refused without echoing them.
#[test]
fn ldap_settings_have_a_past_and_refuse_credentials_in_their_url() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let setting = |url: &str, enabled: bool| {
        json!({"key": "corp", "enabled": enabled, "ldap_url": url,
               "user_dn_pattern": "uid={0},ou=people"})
    };
    let r = admin.post(
        "/access/api/v1/ldap/settings",
        &setting(
            "ldap://cn=x:SECRET-MARKER-72@127.0.0.1:1/dc=example,dc=com",
            false,
        ),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(!r.text.contains("SECRET-MARKER-72"), "{}", r.text);
    let r = admin.post(
        "/access/api/v1/ldap/settings",
        &setting("ldap://127.0.0.1:1/dc=example,dc=com", false),
    );
    assert!(r.status < 300, "{}", r.text);
    let first = seq_of(&r);
    let r = admin.put(
        "/access/api/v1/ldap/settings/corp",
        &setting("ldap://127.0.0.1:2/dc=example,dc=com", false),
    );
    assert!(r.status < 300, "{}", r.text);
    let then = admin
        .get(&format!("/access/api/v1/ldap/settings/corp?as_of={first}"))
        .json();
    assert_eq!(
        then["ldap_url"], "ldap://127.0.0.1:1/dc=example,dc=com",
        "{then}"
    );
    let list = admin
        .get(&format!("/access/api/v1/ldap/settings?as_of={}", first - 1))
        .json();
    assert_eq!(list, json!([]));
    let now = admin.get("/access/api/v1/ldap/settings/corp").json();
    assert_eq!(now["ldap_url"], "ldap://127.0.0.1:2/dc=example,dc=com");
}

/// An import stopped before its end (killed, a full disk) leaves the data directory
/// marked unfinished: it verified as a shorter history, was served as one, and refused
/// a second import.
#[test]
fn an_import_cut_short_is_refused_until_the_directory_is_emptied() {
    use gatehouse::log::EventLog;
    use gatehouse_schemas::{Envelope, Event};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    {
        let mut log = EventLog::open(&dir).unwrap();
        let mut batch = Vec::with_capacity(10_000);
        for seq in 1..=200_000u64 {
            batch.push(Envelope {
                seq,
                time_ms: 1_700_000_000_000,
                actor: "admin".into(),
                origin: "o".into(),
                request_id: format!("r{seq}"),
                event: Event::TrustedKeyRemoved {
                    name: format!("peer-{seq}"),
                },
            });
            if batch.len() == 10_000 {
                log.append(&batch).unwrap();
                batch.clear();
            }
        }
    }
    let file = tmp.path().join("export.bin");
    let (ok, out) = gatehouse(&[
        "export",
        "--data-dir",
        dir.to_str().unwrap(),
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let into = tmp.path().join("into");
    let marker = into.join("import-unfinished");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args([
            "import",
            "--data-dir",
            into.to_str().unwrap(),
            "--in",
            file.to_str().unwrap(),
        ])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !marker.exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the import ended before it was marked"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let d = into.to_str().unwrap();
    for args in [
        vec!["verify", "--data-dir", d],
        vec![
            "export",
            "--data-dir",
            d,
            "--out",
            tmp.path().join("again.bin").to_str().unwrap(),
        ],
        vec!["import", "--data-dir", d, "--in", file.to_str().unwrap()],
    ] {
        let (ok, out) = gatehouse(&args);
        assert!(!ok && out.contains("did not finish"), "{args:?}: {out}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", d])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("did not finish"),
        "{out:?}"
    );
    // Emptied, the import runs to its end and leaves no mark.
    std::fs::remove_dir_all(&into).unwrap();
    let (ok, out) = gatehouse(&["import", "--data-dir", d, "--in", file.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("imported 200000 events"), "{out}");
    assert!(!marker.exists());
    let (ok, out) = gatehouse(&["verify", "--data-dir", d]);
    assert!(ok, "{out}");
}

/// After a rotation of the signing key, the older checkpoints are the old key's:
/// `verify --key` with either key passed none (every checkpoint had to be the given
/// key's); each key now proves the log up to its own last checkpoint.
#[test]
fn verify_with_a_key_holds_across_a_key_rotation() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("rot1", "password-1");
    let first = admin.post_empty("/access/api/v1/audit/checkpoints").json()["position"]
        .as_u64()
        .unwrap();
    let old_pem = admin.get("/access/api/v1/cert/root?formatted=true").text;
    assert_eq!(
        admin.post_empty("/access/api/v1/cert/root/rotate").status,
        200
    );
    app.create_user("rot2", "password-1");
    let second = admin.post_empty("/access/api/v1/audit/checkpoints").json()["position"]
        .as_u64()
        .unwrap();
    let new_pem = admin.get("/access/api/v1/cert/root?formatted=true").text;
    assert_ne!(old_pem, new_pem);
    let dir = app.dir.clone();
    let tmp = app.stop().unwrap();
    let d = dir.to_str().unwrap();
    for (name, pem, last) in [("old", &old_pem, first), ("new", &new_pem, second)] {
        let key = tmp.path().join(format!("{name}.pem"));
        std::fs::write(&key, pem).unwrap();
        let (ok, out) = gatehouse(&["verify", "--data-dir", d, "--key", key.to_str().unwrap()]);
        assert!(ok, "{name}: {out}");
        assert!(
            out.contains(&format!("positions 1 to {last} ")),
            "{name}: {out}"
        );
    }
    // A key that signed nothing here proves nothing.
    let stranger = TestApp::spawn();
    let key = tmp.path().join("stranger.pem");
    std::fs::write(
        &key,
        stranger
            .admin()
            .get("/access/api/v1/cert/root?formatted=true")
            .text,
    )
    .unwrap();
    let (ok, out) = gatehouse(&["verify", "--data-dir", d, "--key", key.to_str().unwrap()]);
    assert!(
        !ok && out.contains("no checkpoint signed by the given key"),
        "{out}"
    );
}

/// From a review: exports at one position shared one temporary file (answered 200 over a
/// backup cut short, or longer than its signature, or 500); a restore without `keys/`
/// kept trusting the lost key (README: tokens signed before are refused); a misspelt
/// `as_of` answered the present; empty `actor`/`entity` filters and a bad `limit` on
/// the NDJSON stream answered under a 200.
#[test]
fn backups_at_once_restores_without_keys_and_misspelt_reads() {
    let app = TestApp::spawn();
    let admin = app.admin();
    for i in 0..5 {
        app.create_user(&format!("user{i}"), "password-1");
    }
    let r = admin.raw(
        "POST",
        "/access/api/v1/tokens",
        Some("application/x-www-form-urlencoded"),
        Some(b"username=user1&scope=applied-permissions/user&expires_in=3600"),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    let files: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let r = admin.post_empty("/access/api/v1/system/backup/export");
                    assert_eq!(r.status, 200, "{}", r.text);
                    r.json()["file"].as_str().unwrap().to_string()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let target = tempfile::tempdir().unwrap();
    for (i, file) in files.iter().enumerate() {
        let (ok, out) = gatehouse(&["verify", "--export", file]);
        assert!(ok, "{file}: {out}");
        let t = target.path().join(format!("r{i}"));
        let (ok, out) = gatehouse(&["import", "--data-dir", t.to_str().unwrap(), "--in", file]);
        assert!(ok, "{out}");
    }
    let anon = app.anon();
    let bearer = |c: &crate::helpers::Client| c.with_header_auth(&format!("Bearer {token}"));
    assert_eq!(bearer(&anon).get("/access/api/v1/tokens/me").status, 200);
    // Restored without `keys/`: a new key, and the tokens of the lost one are refused.
    std::fs::copy(
        app.dir.join("initial-admin-password"),
        target.path().join("r0").join("initial-admin-password"),
    )
    .unwrap();
    let restored = TestApp::start(target.path().join("r0"), Default::default()).unwrap();
    let r = bearer(&restored.anon()).get("/access/api/v1/tokens/me");
    assert_eq!(r.status, 401, "{}", r.text);
    drop(restored);
    for q in [
        "asof=3",
        "AS_OF=3",
        "asOf=3",
        "as-of=3",
        "x=1&As_Of=3",
        "as%5Fof=3",
        "as+of=3",
    ] {
        let r = admin.get(&format!("/access/api/v2/groups?{q}"));
        assert_eq!(r.status, 400, "{q}: {}", r.text);
        assert!(r.text.contains("as_of"), "{}", r.text);
    }
    assert_eq!(admin.get("/access/api/v2/groups?as_of=3").status, 200);
    for q in ["actor=", "entity="] {
        let r = admin.get(&format!("/access/api/v1/audit/events?{q}"));
        assert_eq!(r.status, 400, "{q}: {}", r.text);
    }
    let r = admin.get_with(
        "/access/api/v1/audit/events?limit=abc",
        &[("Accept", "application/x-ndjson")],
    );
    assert_eq!(r.status, 400, "{}", r.text);
}

/// Rewrite `events.log` in place: user3's creation becomes userX's, every chain hash and
/// commit mark after it recomputed (what someone with the disk could do). The sparse
/// index and the snapshots go (they are hints, and would tell).
fn rewrite_log_in_place(dir: &std::path::Path) {
    let path = dir.join("events.log");
    let mut bytes = std::fs::read(&path).unwrap();
    let mut at = 0usize;
    let mut prev = gatehouse::log::GENESIS_HASH;
    while at + 4 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        if len == 0 {
            break;
        }
        if len == u32::MAX {
            bytes[at + 4..at + 36].copy_from_slice(&prev);
            at += 36;
            continue;
        }
        let body = at + 36..at + 36 + len as usize;
        let text = String::from_utf8_lossy(&bytes[body.clone()]).to_string();
        if text.contains("UserCreated") && text.contains("user3") {
            let changed = replace(&bytes[body.clone()], b"user3", b"userX");
            bytes[body.clone()].copy_from_slice(&changed);
        }
        prev = gatehouse::log::chain_hash(&prev, &bytes[body.clone()]);
        bytes[at + 4..at + 36].copy_from_slice(&prev);
        at = body.end;
    }
    std::fs::write(&path, bytes).unwrap();
    let _ = std::fs::remove_file(dir.join("events.idx"));
    let _ = std::fs::remove_dir_all(dir.join("snapshots"));
}

/// From a review: start-up (`startup-verify = "full"`) and `audit/chain` took a log its
/// own signed checkpoint contradicts (rewritten before it, the chain recomputed), and a
/// revoked token could work again; only `gatehouse verify` said so.
#[test]
fn start_up_and_the_chain_check_hold_the_log_to_its_checkpoints() {
    let app = TestApp::spawn();
    let admin = app.admin();
    for i in 0..10 {
        app.create_user(&format!("user{i}"), "password-1");
    }
    assert_eq!(
        admin.post_empty("/access/api/v1/audit/checkpoints").status,
        201
    );
    app.create_user("later", "password-1");
    let dir = app.dir.clone();
    let tmp = app.stop().unwrap();
    rewrite_log_in_place(&dir);
    // The chain itself holds: only the checkpoint tells.
    let (ok, out) = gatehouse(&["verify", "--data-dir", dir.to_str().unwrap()]);
    assert!(!ok && out.contains("does not match the chain"), "{out}");
    let err = match TestApp::start(dir.clone(), Default::default()) {
        Ok(_) => panic!("a log its checkpoint contradicts was served"),
        Err(e) => e,
    };
    assert!(err.contains("does not match the chain"), "{err}");
    // Started without the full check, it serves, and audit/chain says the log is broken.
    let app = TestApp::start(
        dir.clone(),
        Config {
            startup_verify: gatehouse::log::StartupVerify::Tail,
            ..Config::default()
        },
    )
    .unwrap();
    let chain = app.admin().get("/access/api/v1/audit/chain").json();
    assert_eq!(chain["status"], "broken", "{chain}");
    assert!(
        chain["reason"]
            .as_str()
            .unwrap()
            .contains("does not match the chain"),
        "{chain}"
    );
    drop(app);
    drop(tmp);
}

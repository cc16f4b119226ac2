//! The most repeated complaint about identity servers: "I created it and the next GET
//! said 404". Here every acknowledged write is visible to the very next read.

use crate::helpers::TestApp;
use serde_json::json;

#[test]
fn every_client_reads_its_own_write_at_once() {
    let app = TestApp::spawn();
    let clients = 16;
    let per_client = 150;
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let admin = app.admin();
            std::thread::spawn(move || {
                for i in 0..per_client {
                    let name = format!("ryw-{c}-{i}");
                    let desc = format!("written by client {c}, round {i}");
                    let r = admin.post(
                        "/access/api/v2/groups",
                        &json!({"name": name, "description": desc}),
                    );
                    assert_eq!(r.status, 201, "{}", r.text);
                    let seq: u64 = r.header("x-gatehouse-seq").unwrap().parse().unwrap();
                    let g = admin.get(&format!("/access/api/v2/groups/{name}"));
                    assert_eq!(g.status, 200, "read after write of {name} (seq {seq})");
                    assert_eq!(g.json()["description"], desc.as_str());
                    // An update is visible at once too.
                    let changed = format!("{desc} (changed)");
                    let r = admin.patch(
                        &format!("/access/api/v2/groups/{name}"),
                        &json!({"description": changed}),
                    );
                    assert_eq!(r.status, 200);
                    assert!(r.header("x-gatehouse-seq").unwrap().parse::<u64>().unwrap() > seq);
                    let g = admin.get(&format!("/access/api/v2/groups/{name}"));
                    assert_eq!(
                        g.json()["description"],
                        changed.as_str(),
                        "stale read of {name}"
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a client saw a stale or missing read");
    }
    let list = app.admin().get("/access/api/v2/groups?limit=99999").json();
    assert_eq!(
        list["groups"].as_array().unwrap().len(),
        clients * per_client
    );
}

/// Read-change-write handlers (a PATCH, a PUT of one part) under concurrency: every
/// change acknowledged with 2xx is in the state. Two at once both answered 200 and the
/// later write undid the other's change (a target kept 7 users of 30, an entitlement 9
/// keys of 20), and a PATCH brought back a target a DELETE had just removed.
#[test]
fn concurrent_changes_of_one_entity_lose_nothing() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let n = 12;
    for i in 0..n {
        app.create_user(&format!("u{i}"), "Password-123");
    }
    let all = |f: &(dyn Fn(usize, crate::helpers::Client) + Sync)| {
        std::thread::scope(|s| {
            for i in 0..n {
                let client = app.admin();
                s.spawn(move || f(i, client));
            }
        });
    };
    // Access v2 permission: each client adds its own user.
    let r = admin.post(
        "/access/api/v2/permissions",
        &json!({"name": "p", "resources": {"artifact": {"actions": {"users": {}, "groups": {}},
                "targets": {"libs": {"include_patterns": ["**"]}}}}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    all(&|i, c| {
        let r = c.patch(
            "/access/api/v2/permissions/p/artifact",
            &json!({"actions": {"users": {format!("u{i}"): ["READ"]}}}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
    });
    let p = admin.get("/access/api/v2/permissions/p").json();
    let users = p["resources"]["artifact"]["actions"]["users"]
        .as_object()
        .unwrap()
        .len();
    assert_eq!(users, n, "{p}");
    // Entitlement: each client adds its own access key and tag.
    let org = "/access/api/v1/orgs/acme";
    for i in 0..n {
        let r = admin.post(
            &format!("{org}/access_keys"),
            &json!({"id": format!("k{i}"), "password": "Key-password-1"}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let r = admin.post(
        &format!("{org}/entitlements"),
        &json!({"repo": "libs", "access": "r"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json()["id"].as_str().unwrap().to_string();
    all(&|i, c| {
        let r = c.patch(
            &format!("{org}/entitlements/{id}"),
            &json!({"access_keys_add": [format!("k{i}")], "tags_add": [format!("t{i}")]}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
    });
    let e = admin.get(&format!("{org}/entitlements/{id}")).json();
    assert_eq!(e["access_keys"].as_array().unwrap().len(), n, "{e}");
    assert_eq!(e["tags"].as_array().unwrap().len(), n, "{e}");
    // Project: each client sets another field... the description, by turns, and the
    // quota once: the quota must stay.
    let r = admin.post(
        "/access/api/v1/projects",
        &json!({"project_key": "web", "display_name": "Web"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    all(&|i, c| {
        let body = if i == 0 {
            json!({"storage_quota_bytes": 1073741824})
        } else {
            json!({"description": format!("d{i}")})
        };
        let r = c.put("/access/api/v1/projects/web", &body);
        assert_eq!(r.status, 200, "{}", r.text);
    });
    let p = admin.get("/access/api/v1/projects/web").json();
    assert_eq!(p["storage_quota_bytes"], 1073741824, "{p}");
    // A PATCH racing a DELETE never brings the target back.
    for round in 0..3 {
        let name = format!("gone{round}");
        let r = admin.post(
            "/access/api/v2/permissions",
            &json!({"name": name, "resources": {"artifact": {"actions": {"users": {}, "groups": {}},
                    "targets": {"libs": {"include_patterns": ["**"]}}}}}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        all(&|i, c| {
            if i == n / 2 {
                let r = c.delete(&format!("/access/api/v2/permissions/{name}"));
                assert!(r.status == 204 || r.status == 200, "{}", r.text);
            } else {
                let r = c.patch(
                    &format!("/access/api/v2/permissions/{name}/artifact"),
                    &json!({"actions": {"users": {format!("u{i}"): ["READ"]}}}),
                );
                assert!(r.status == 200 || r.status == 404, "{}", r.text);
            }
        });
        assert_eq!(
            admin
                .get(&format!("/access/api/v2/permissions/{name}"))
                .status,
            404
        );
    }
    // Artifactory's create-or-replace PUT of one new name from many clients: one 201,
    // the others replace it (200), none 409.
    let statuses = std::sync::Mutex::new(Vec::new());
    all(&|i, c| {
        let r = c.put(
            "/artifactory/api/security/users/artu",
            &json!({"email": format!("a{i}@example.com"), "password": format!("Password-{i}-x")}),
        );
        statuses.lock().unwrap().push(r.status);
    });
    let mut s = statuses.into_inner().unwrap();
    s.sort();
    assert_eq!(s.iter().filter(|&&x| x == 201).count(), 1, "{s:?}");
    assert!(s.iter().all(|&x| x == 201 || x == 200), "{s:?}");
}

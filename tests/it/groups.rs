use crate::helpers::TestApp;
use serde_json::json;

#[test]
fn create_get_list_conflict_and_delete() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("m1", "password-1");
    let r = admin.post(
        "/access/api/v2/groups",
        &json!({"name": "readers", "description": "read-only", "autoJoin": false, "adminPrivileges": false,
                "realm": "ldap", "realmAttributes": "cn=readers", "externalId": "00g1", "members": ["M1"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.header("x-gatehouse-seq").is_some());
    let g = r.json();
    assert_eq!(g["realm"], "ldap");
    assert_eq!(g["realm_attributes"], "cn=readers");
    assert_eq!(g["external_id"], "00g1");
    assert_eq!(
        g["members"],
        json!(["m1"]),
        "members are user names, compared lower-case"
    );
    assert_eq!(
        admin.get("/access/api/v2/users/m1").json()["groups"],
        json!(["readers"])
    );
    assert_eq!(
        admin
            .post("/access/api/v2/groups", &json!({"name": "readers"}))
            .status,
        409
    );
    assert_eq!(
        admin.get("/access/api/v2/groups/readers").json()["description"],
        "read-only"
    );
    assert_eq!(admin.get("/access/api/v2/groups/nope").status, 404);
    let r = admin.post(
        "/access/api/v2/groups",
        &json!({"name": "bad", "members": ["ghost"]}),
    );
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("members[0]"));
    let r = admin.post("/access/api/v2/groups", &json!({"description": "no name"}));
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("`name`"));

    let r = admin.delete("/access/api/v2/groups/readers");
    assert_eq!(r.status, 204);
    assert!(r.header("x-gatehouse-seq").is_some());
    assert_eq!(
        admin.get("/access/api/v2/users/m1").json()["groups"],
        json!([]),
        "deleting a group removes it from its members"
    );
    assert_eq!(admin.delete("/access/api/v2/groups/readers").status, 404);
}

#[test]
fn list_pages_with_cursor() {
    let app = TestApp::spawn();
    let admin = app.admin();
    for name in ["g1", "g2", "g3"] {
        app.create_group(name);
    }
    let first = admin.get("/access/api/v2/groups?limit=2").json();
    assert_eq!(first["groups"].as_array().unwrap().len(), 2);
    assert_eq!(first["groups"][0]["group_name"], "g1");
    assert!(first["groups"][0]["uri"]
        .as_str()
        .unwrap()
        .ends_with("/access/api/v2/groups/g1"));
    let cursor = first["cursor"].as_str().unwrap();
    let second = admin
        .get(&format!("/access/api/v2/groups?limit=2&cursor={cursor}"))
        .json();
    assert_eq!(
        second["groups"],
        json!([{"group_name": "g3", "uri": format!("{}/access/api/v2/groups/g3", app.base)}])
    );
    assert!(second.get("cursor").is_none());
    assert_eq!(admin.get("/access/api/v2/groups?limit=x").status, 400);
}

#[test]
fn patch_is_partial_accepts_both_spellings_and_replaces_members() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_group("devs");
    app.create_user("ann", "password-1");
    app.create_user("ben", "password-1");
    let r = admin.patch(
        "/access/api/v2/groups/devs",
        &json!({"description": "developers", "autoJoin": true}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let g = r.json();
    assert_eq!(
        (
            g["description"].clone(),
            g["auto_join"].clone(),
            g["admin_privileges"].clone()
        ),
        (json!("developers"), json!(true), json!(false))
    );
    // An auto-join group with admin privileges would make every new user an admin.
    let r = admin.patch(
        "/access/api/v2/groups/devs",
        &json!({"admin_privileges": true}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = admin.patch(
        "/access/api/v2/groups/devs",
        &json!({"auto_join": false, "admin_privileges": true, "members": ["ann", "ben"]}),
    );
    assert_eq!(r.json()["members"], json!(["ann", "ben"]));
    let r = admin.patch("/access/api/v2/groups/devs", &json!({"members": ["ben"]}));
    assert_eq!(r.json()["members"], json!(["ben"]));
    assert_eq!(r.json()["description"], "developers");
    let r = admin.patch("/access/api/v2/groups/devs", &json!({}));
    assert_eq!(r.status, 200, "an empty patch changes nothing");
    let r = admin.raw("PATCH", "/access/api/v2/groups/devs", None, Some(b""));
    assert_eq!(
        r.status, 200,
        "an empty payload returns 200 (seed 004): {}",
        r.text
    );
    assert_eq!(r.json()["description"], "developers");
    assert_eq!(
        admin
            .patch("/access/api/v2/groups/ghost", &json!({"description": "x"}))
            .status,
        404
    );
    assert_eq!(
        admin
            .patch("/access/api/v2/groups/devs", &json!({"name": "renamed"}))
            .status,
        400
    );
}

#[test]
fn members_add_and_remove_with_the_seed_rules() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_group("crew");
    app.create_user("cat", "password-1");
    app.create_user("dog", "password-1");
    let r = admin.patch(
        "/access/api/v2/groups/crew/members",
        &json!({"add": ["cat", "dog"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.header("x-gatehouse-seq").is_some());
    assert_eq!(r.json()["members"], json!(["cat", "dog"]));
    let r = admin.patch(
        "/access/api/v2/groups/crew/members",
        &json!({"remove": ["cat"]}),
    );
    assert_eq!(r.json()["members"], json!(["dog"]));
    assert_eq!(
        admin.get("/access/api/v2/users/cat").json()["groups"],
        json!([])
    );
    for (body, needle) in [
        (json!({}), "`add` or `remove`"),
        (json!({"add": ["cat"], "remove": ["cat"]}), "both"),
        (json!({"add": ["ghost"]}), "`ghost`"),
        (json!({"remove": ["ghost"]}), "`ghost`"),
    ] {
        let r = admin.patch("/access/api/v2/groups/crew/members", &body);
        assert_eq!(r.status, 400, "{body}");
        assert!(r.error_message().contains(needle), "{body}: {}", r.text);
    }
    assert_eq!(
        admin
            .patch(
                "/access/api/v2/groups/ghost/members",
                &json!({"add": ["cat"]})
            )
            .status,
        404
    );
}

/// Finding: a write whose answer was read after a concurrent delete was answered 404,
/// though its change was committed (in the log, audited, delivered). Answered now from
/// the state right after it. Rounds of the race: a 404 is only ever a write that did not
/// happen (no event carries its request id).
#[test]
fn a_committed_write_is_not_answered_404_because_a_delete_followed() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let mut wrong = Vec::new();
    for round in 0..30 {
        let name = format!("race{round}");
        app.create_group(&name);
        let path = format!("/access/api/v2/groups/{name}");
        let (patched, _) = std::thread::scope(|t| {
            let a = t.spawn(|| admin.patch(&path, &json!({"description": format!("d{round}")})));
            let b = t.spawn(|| admin.delete(&path));
            (a.join().unwrap(), b.join().unwrap())
        });
        if patched.status == 404 {
            wrong.push(patched.header("x-request-id").unwrap().to_string());
        } else {
            assert_eq!(patched.status, 200, "{}", patched.text);
        }
    }
    let audit = admin.get("/access/api/v1/audit/events?limit=1000");
    assert_eq!(audit.status, 200, "{}", audit.text);
    for id in wrong {
        assert!(
            !audit.text.contains(&id),
            "request {id} was committed and answered 404"
        );
    }
}

/// A group sent back as it was read writes nothing (it wrote an event, a webhook and an
/// audit/diff entry each time), through the v2 API and Artifactory's.
#[test]
fn a_group_sent_back_as_read_writes_nothing() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.post(
        "/access/api/v2/groups",
        &json!({"name": "readers", "description": "Read only", "auto_join": false, "external_id": "ext-1"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let seq = r.header("x-gatehouse-seq").unwrap().to_string();
    let read = admin.get("/access/api/v2/groups/readers").json();
    let r = admin.patch("/access/api/v2/groups/readers", &read);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("x-gatehouse-seq"),
        Some(seq.as_str()),
        "{}",
        r.text
    );
    let art = admin.get("/artifactory/api/security/groups/readers").json();
    let r = admin.put("/artifactory/api/security/groups/readers", &art);
    assert!(r.status < 300, "{}", r.text);
    assert_eq!(
        admin.get("/access/api/v1/system/state/digest").json()["seq"].to_string(),
        seq
    );
    // A real change still writes.
    let r = admin.patch(
        "/access/api/v2/groups/readers",
        &json!({"description": "Readers"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_ne!(r.header("x-gatehouse-seq"), Some(seq.as_str()));
}

/// From a review: README says a realm of `artifactory` is stored as `internal` in every
/// API; the v2 group API stored `artifactory`.
#[test]
fn an_artifactory_realm_is_internal_in_every_api() {
    let app = crate::helpers::TestApp::spawn();
    let admin = app.admin();
    let r = admin.post(
        "/access/api/v2/groups",
        &serde_json::json!({"name": "artg", "realm": "artifactory"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        admin.get("/access/api/v2/groups/artg").json()["realm"],
        "internal"
    );
    let r = admin.put(
        "/artifactory/api/security/groups/artg2",
        &serde_json::json!({"realm": "artifactory"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        admin.get("/access/api/v2/groups/artg2").json()["realm"],
        "internal"
    );
    let r = admin.post(
        "/access/api/v2/groups",
        &serde_json::json!({"name": "ldapg", "realm": "ldap"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.patch(
        "/access/api/v2/groups/ldapg",
        &serde_json::json!({"realm": "artifactory"}),
    );
    assert!(r.status < 300, "{}", r.text);
    assert_eq!(
        admin.get("/access/api/v2/groups/ldapg").json()["realm"],
        "internal"
    );
}

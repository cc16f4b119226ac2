use crate::helpers::TestApp;
use serde_json::json;

#[test]
fn create_get_and_conflict() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "Logenn@Example.com", "password": "s3cret-pass", "email": "logenn@example.com",
                "admin": false, "profile_updatable": true, "disable_ui_access": false}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.header("x-gatehouse-seq").unwrap().parse::<u64>().unwrap() > 2);
    let u = r.json();
    assert_eq!(u["username"], "logenn@example.com", "stored lower-case");
    assert_eq!(u["realm"], "internal");
    assert_eq!(u["status"], "enabled");
    assert_eq!(u["email"], "logenn@example.com");
    assert!(u.get("password").is_none(), "password is write-only");
    // Case-insensitive lookup and uniqueness.
    assert_eq!(
        admin.get("/access/api/v2/users/LOGENN@example.com").status,
        200
    );
    let dup = admin.post(
        "/access/api/v2/users",
        &json!({"username": "LOGENN@EXAMPLE.COM", "password": "another-pass"}),
    );
    assert_eq!(dup.status, 409);
    assert!(dup.error_message().contains("already exists"));
    let missing = admin.get("/access/api/v2/users/nobody");
    assert_eq!(missing.status, 404);
    assert!(missing.error_message().contains("nobody"));
}

#[test]
fn password_rules_on_create() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.post("/access/api/v2/users", &json!({"username": "nopw"}));
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("`password`"));
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "short", "password": "abc"}),
    );
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("at least 8"));
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "sso-user", "internal_password_disabled": true}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["internal_password_disabled"], true);
    let r = admin.put(
        "/access/api/v2/users/sso-user/password",
        &json!({"password": "new-password"}),
    );
    assert_eq!(r.status, 400, "internal password disabled: {}", r.text);
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "bad-group", "password": "password1", "groups": ["ghost"]}),
    );
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("groups[0]"));
}

#[test]
fn list_pages_with_limit_and_cursor() {
    let app = TestApp::spawn();
    let admin = app.admin();
    for i in 0..5 {
        let r = admin.post(
            "/access/api/v2/users",
            &json!({"username": format!("u{i}"), "internal_password_disabled": true}),
        );
        assert_eq!(r.status, 201);
    }
    let mut seen = Vec::new();
    let mut path = "/access/api/v2/users?limit=2".to_string();
    loop {
        let page = admin.get(&path).json();
        let users = page["users"].as_array().unwrap();
        assert!(users.len() <= 2);
        for u in users {
            assert!(u["uri"].as_str().unwrap().ends_with(&format!(
                "/access/api/v2/users/{}",
                u["username"].as_str().unwrap()
            )));
            // The built-in `anonymous` is disabled until anonymous access is turned on.
            let expected = if u["username"] == "anonymous" {
                "disabled"
            } else {
                "enabled"
            };
            assert_eq!(u["status"], expected);
            seen.push(u["username"].as_str().unwrap().to_string());
        }
        match page["cursor"].as_str() {
            Some(c) => path = format!("/access/api/v2/users?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ["admin", "anonymous", "u0", "u1", "u2", "u3", "u4"]);
    for bad in ["0", "100000", "abc", "-1"] {
        let r = admin.get(&format!("/access/api/v2/users?limit={bad}"));
        assert_eq!(r.status, 400, "limit={bad}");
        assert!(r.error_message().contains("`limit`"));
    }
}

#[test]
fn patch_is_partial_and_has_a_v1_spelling() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("pat", "password-1");
    let r = admin.patch(
        "/access/api/v2/users/pat",
        &json!({"email": "pat@example.com"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.header("x-gatehouse-seq").is_some());
    let u = r.json();
    assert_eq!(u["email"], "pat@example.com");
    assert_eq!(
        u["profile_updatable"], true,
        "untouched fields keep their values"
    );
    let r = admin.patch(
        "/access/api/v1/users/pat",
        &json!({"disable_ui_access": true, "admin": true}),
    );
    assert_eq!(r.status, 200);
    let u = admin.get("/access/api/v2/users/pat").json();
    assert_eq!(
        (
            u["disable_ui_access"].clone(),
            u["admin"].clone(),
            u["email"].clone()
        ),
        (json!(true), json!(true), json!("pat@example.com"))
    );
    assert_eq!(
        admin
            .patch("/access/api/v2/users/ghost", &json!({"admin": true}))
            .status,
        404
    );
    let r = admin.patch("/access/api/v2/users/pat", &json!({"username": "other"}));
    assert_eq!(r.status, 400);
    let r = admin.patch(
        "/access/api/v2/users/pat",
        &json!({"email": "not-an-address"}),
    );
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("`email`"));
    // Password through PATCH works and the old one stops.
    assert_eq!(
        admin
            .patch(
                "/access/api/v2/users/pat",
                &json!({"password": "password-2"})
            )
            .status,
        200
    );
    assert_eq!(
        app.as_user("pat", "password-1")
            .get("/access/api/v2/users/pat")
            .status,
        401
    );
    assert_eq!(
        app.as_user("pat", "password-2")
            .get("/access/api/v2/users/pat")
            .status,
        200
    );
}

#[test]
fn disabling_a_user_stops_its_sign_in_and_enabling_restores_it() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("dina", "password-1");
    let dina = app.as_user("dina", "password-1");
    assert_eq!(
        dina.get("/access/api/v2/users/dina").status,
        200,
        "signed in and cached"
    );
    let r = admin.patch("/access/api/v2/users/dina", &json!({"status": "disabled"}));
    assert_eq!(r.json()["status"], "disabled");
    let r = dina.get("/access/api/v2/users/dina");
    assert_eq!(
        r.status, 401,
        "the cached sign-in must not survive the status change"
    );
    assert!(r.error_message().contains("disabled"));
    admin.patch("/access/api/v2/users/dina", &json!({"status": "enabled"}));
    assert_eq!(dina.get("/access/api/v2/users/dina").status, 200);
    let r = admin.patch("/access/api/v2/users/dina", &json!({"status": "locked"}));
    assert_eq!(r.status, 400);
}

#[test]
fn delete_removes_the_user_from_its_groups() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_group("team");
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "gone", "password": "password-1", "groups": ["team"]}),
    );
    assert_eq!(r.json()["groups"], json!(["team"]));
    assert_eq!(
        admin.get("/access/api/v2/groups/team").json()["members"],
        json!(["gone"])
    );
    let r = admin.delete("/access/api/v2/users/gone");
    assert_eq!(r.status, 204);
    assert!(r.header("x-gatehouse-seq").is_some());
    assert_eq!(admin.get("/access/api/v2/users/gone").status, 404);
    assert_eq!(
        admin.get("/access/api/v2/groups/team").json()["members"],
        json!([])
    );
    assert_eq!(admin.delete("/access/api/v2/users/gone").status, 404);
    assert_eq!(
        app.as_user("gone", "password-1")
            .get("/access/api/v2/users/gone")
            .status,
        401
    );
    let r = admin.delete("/access/api/v2/users/admin");
    assert_eq!(r.status, 400, "cannot delete yourself");
}

#[test]
fn add_and_remove_groups_of_a_user_with_the_seed_rules() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("gina", "password-1");
    app.create_group("a");
    app.create_group("b");
    let r = admin.patch(
        "/access/api/v2/users/gina/groups",
        &json!({"add": ["a", "b"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["groups"], json!(["a", "b"]));
    let r = admin.patch("/access/api/v2/gina/groups", &json!({"remove": ["a"]}));
    assert_eq!(r.status, 200, "the seed's spelling without `users/`");
    assert_eq!(r.json()["groups"], json!(["b"]));
    let r = admin.patch("/access/api/v2/users/gina/groups", &json!({}));
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("`add` or `remove`"));
    let r = admin.patch(
        "/access/api/v2/users/gina/groups",
        &json!({"add": ["a"], "remove": ["a"]}),
    );
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("both"));
    let r = admin.patch("/access/api/v2/users/gina/groups", &json!({"add": ["zzz"]}));
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("`zzz`"));
    assert_eq!(
        admin
            .patch("/access/api/v2/users/nobody/groups", &json!({"add": ["a"]}))
            .status,
        404
    );
}

#[test]
fn password_change_by_self_or_admin_only() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("pia", "password-1");
    app.create_user("eve", "password-e");
    let r = app.as_user("pia", "password-1").put(
        "/access/api/v2/users/pia/password",
        &json!({"password": "password-2"}),
    );
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.header("x-gatehouse-seq").is_some());
    assert_eq!(
        app.as_user("pia", "password-1")
            .get("/access/api/v2/users/pia")
            .status,
        401
    );
    let r = app.as_user("eve", "password-e").put(
        "/access/api/v2/users/pia/password",
        &json!({"password": "hijacked!"}),
    );
    assert_eq!(r.status, 403);
    let r = admin.put(
        "/access/api/v2/pia/password",
        &json!({"password": "password-3"}),
    );
    assert_eq!(r.status, 204, "admin, through the seed's spelling");
    assert_eq!(
        app.as_user("pia", "password-3")
            .get("/access/api/v2/users/pia")
            .status,
        200
    );
    assert_eq!(
        admin
            .put(
                "/access/api/v2/users/ghost/password",
                &json!({"password": "password-3"})
            )
            .status,
        404
    );
    assert_eq!(
        admin
            .put("/access/api/v2/users/pia/password", &json!({}))
            .status,
        400
    );
    // `profile_updatable: false`: the password is the admin's to change (a shared
    // departmental account); it was stored and meant nothing.
    let r = admin.patch(
        "/access/api/v2/users/pia",
        &json!({"profile_updatable": false}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.as_user("pia", "password-3").put(
        "/access/api/v2/users/pia/password",
        &json!({"password": "password-4"}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(
        r.error_message().contains("profile_updatable"),
        "{}",
        r.text
    );
    let r = admin.put(
        "/access/api/v2/users/pia/password",
        &json!({"password": "password-4"}),
    );
    assert_eq!(r.status, 204, "{}", r.text);
}

#[test]
fn an_expired_password_only_allows_changing_it() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("exa", "password-1");
    let r = admin.post_empty("/access/api/v2/users/exa/password/expire");
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        admin
            .post_empty("/access/api/v2/exa/password/expire")
            .status,
        204,
        "seed spelling"
    );
    assert_eq!(
        admin
            .post_empty("/access/api/v2/users/ghost/password/expire")
            .status,
        404
    );
    // Not one's own: the only admin expired its own and every token of it stopped.
    for r in [
        admin.post_empty("/access/api/v2/users/admin/password/expire"),
        admin.post_empty("/artifactory/api/security/users/authorization/expirePassword/ADMIN"),
        admin.post(
            "/artifactory/api/security/users/authorization/expirePassword",
            &json!(["exa", "admin"]),
        ),
    ] {
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(r.error_message().contains("its own password"), "{}", r.text);
    }
    assert_eq!(admin.get("/access/api/v2/users").status, 200);
    // Compared as names are: an admin `émile` is `ÉMILE` (ASCII-only case folding let
    // it through on the Artifactory routes).
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "émile", "email": "emile@example.com", "password": "Password-123!", "admin": true}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let emile = app.as_user("émile", "Password-123!");
    let r = emile.post(
        "/artifactory/api/security/users/authorization/expirePassword",
        &json!(["ÉMILE"]),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(emile.get("/access/api/v2/users").status, 200);
    let exa = app.as_user("exa", "password-1");
    let r = exa.get("/access/api/v2/users/exa");
    assert_eq!(r.status, 403);
    assert!(r.error_message().contains("expired"));
    assert_eq!(
        exa.put(
            "/access/api/v2/users/exa/password",
            &json!({"password": "password-2"})
        )
        .status,
        204
    );
    let r = app
        .as_user("exa", "password-2")
        .get("/access/api/v2/users/exa");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["password_expired"], false);
}

#[test]
fn repeated_failures_lock_until_an_admin_unlocks() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("lou", "password-1");
    // Failures count towards the lock from an address the user signed in from (a
    // stranger's are only slowed down: tests/it/operations.rs).
    assert_eq!(
        app.as_user("lou", "password-1")
            .get("/access/api/v2/users/lou")
            .status,
        200
    );
    let wrong = app.as_user("lou", "wrong-password");
    for _ in 0..5 {
        assert_eq!(wrong.get("/access/api/v2/users/lou").status, 401);
    }
    assert_eq!(
        admin.get("/access/api/v2/users/lou").json()["status"],
        "locked"
    );
    let r = app
        .as_user("lou", "password-1")
        .get("/access/api/v2/users/lou");
    assert_eq!(
        r.status, 401,
        "locked users cannot sign in even with the right password"
    );
    assert!(r.error_message().contains("locked"));
    // A client's read-modify-write sends `locked` back: no change, not a 400 (and
    // nothing written); setting `locked` on an enabled user stays a 400 (see above).
    let seq = admin.get("/access/api/v1/system/state/digest").json()["seq"].clone();
    let read = admin.get("/access/api/v2/users/lou").json();
    let r = admin.patch("/access/api/v2/users/lou", &read);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["status"], "locked");
    assert_eq!(
        admin.get("/access/api/v1/system/state/digest").json()["seq"],
        seq
    );
    let r = admin.post_empty("/access/api/v2/users/lou/unlock");
    assert_eq!(r.status, 204);
    assert_eq!(
        admin.post_empty("/access/api/v2/lou/unlock").status,
        204,
        "seed spelling; idempotent"
    );
    assert_eq!(
        admin.post_empty("/access/api/v2/users/ghost/unlock").status,
        404
    );
    assert_eq!(
        app.as_user("lou", "password-1")
            .get("/access/api/v2/users/lou")
            .status,
        200
    );
    assert_eq!(
        admin.get("/access/api/v2/users/lou").json()["status"],
        "enabled"
    );
}

#[test]
fn admin_endpoints_say_401_without_credentials_and_403_for_users() {
    let app = TestApp::spawn();
    app.create_user("norm", "password-1");
    let anon = app.anon();
    let r = anon.get("/access/api/v2/users");
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
    r.error_message();
    let norm = app.as_user("norm", "password-1");
    for (method, path) in [
        ("GET", "/access/api/v2/users"),
        ("GET", "/access/api/v2/users/admin"),
        ("GET", "/access/api/v2/groups"),
        ("DELETE", "/access/api/v2/users/admin"),
        ("POST", "/access/api/v2/users/admin/unlock"),
    ] {
        let r = norm.raw(method, path, None, None);
        assert_eq!(r.status, 403, "{method} {path}");
        r.error_message();
    }
    let r = norm.post(
        "/access/api/v2/users",
        &json!({"username": "x", "password": "password-1"}),
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        norm.get("/access/api/v2/users/norm").status,
        200,
        "users may read themselves"
    );
    let r = anon
        .with_header_auth("Bearer abc")
        .get("/access/api/v2/users");
    assert_eq!(r.status, 401);
    let r = anon
        .with_header_auth("Basic !!!notbase64")
        .get("/access/api/v2/users");
    assert_eq!(r.status, 401);
}

#[test]
fn admin_group_members_are_admins_and_auto_join_groups_take_new_users() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.post(
        "/access/api/v2/groups",
        &json!({"name": "ops", "admin_privileges": true}),
    );
    assert_eq!(r.status, 201);
    let r = admin.post(
        "/access/api/v2/groups",
        &json!({"name": "everyone", "auto_join": true}),
    );
    assert_eq!(r.status, 201);
    app.create_user("opal", "password-1");
    assert_eq!(
        admin.get("/access/api/v2/users/opal").json()["groups"],
        json!(["everyone"])
    );
    let opal = app.as_user("opal", "password-1");
    assert_eq!(opal.get("/access/api/v2/users").status, 403);
    admin.patch(
        "/access/api/v2/groups/ops/members",
        &json!({"add": ["opal"]}),
    );
    assert_eq!(
        opal.get("/access/api/v2/users").status,
        200,
        "admin through an admin-privileged group"
    );
}

#[test]
fn a_password_shaped_like_a_reference_token_still_works_as_a_password() {
    let app = TestApp::spawn();
    let password = "Ab3".repeat(42) + "xy"; // 128 url-safe characters
    assert_eq!(password.len(), 128);
    app.create_user("gen", &password);
    assert_eq!(
        app.as_user("gen", &password)
            .get("/access/api/v2/users/gen")
            .status,
        200
    );
    assert_eq!(
        app.as_user("gen", &("x".repeat(128)))
            .get("/access/api/v2/users/gen")
            .status,
        401
    );
}

/// A user read with GET and sent back with PATCH as it is (its `groups` included) is
/// taken; `groups` that would change the memberships are still refused (they change
/// through `PATCH …/users/{name}/groups`).
#[test]
fn a_user_read_and_sent_back_as_it_is_is_taken() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_group("readers");
    app.create_group("writers");
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "rita", "password": "password-1", "groups": ["readers", "writers"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let mut doc = admin.get("/access/api/v2/users/rita").json();
    doc["email"] = json!("rita@example.com");
    let r = admin.patch("/access/api/v2/users/rita", &doc);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["email"], "rita@example.com");
    // The same groups in another order are the same groups.
    let r = admin.patch(
        "/access/api/v2/users/rita",
        &json!({"groups": ["writers", "readers"], "profile_updatable": false}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    for groups in [
        json!(["readers"]),
        json!(["readers", "writers", "admins"]),
        json!("readers"),
    ] {
        let r = admin.patch("/access/api/v2/users/rita", &json!({"groups": groups}));
        assert_eq!(r.status, 400, "{groups}: {}", r.text);
        assert!(r.error_message().contains("`groups`"), "{}", r.text);
    }
    assert_eq!(
        admin
            .patch("/access/api/v2/users/nobody", &json!({"groups": []}))
            .status,
        404
    );
}

/// A user's past begins with its account: a new user given a deleted user's name read
/// that person's e-mail, groups and tokens as its own past.
#[test]
fn a_reused_name_does_not_open_the_earlier_users_past() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "pat", "password": "Pat-old-pass-123!", "email": "pat.old@example.com"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let old = app.as_user("pat", "Pat-old-pass-123!");
    let r = old.post(
        "/access/api/v1/tokens",
        &json!({"expires_in": 0, "description": "old-pat-laptop"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let before = admin.get("/access/api/v1/system/state/digest").json()["seq"]
        .as_u64()
        .unwrap();
    assert_eq!(admin.delete("/access/api/v2/users/pat").status, 204);
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "pat", "password": "Pat-new-pass-123!", "email": "pat.new@example.com"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let now = r.header("x-gatehouse-seq").unwrap().parse::<u64>().unwrap();
    let new = app.as_user("pat", "Pat-new-pass-123!");
    for path in [
        format!("/access/api/v2/users/pat?as_of={before}"),
        format!("/access/api/v1/tokens?as_of={before}"),
        format!("/access/api/v1/authorize/effective?as_of={before}"),
    ] {
        let r = new.get(&path);
        assert_eq!(r.status, 403, "{path}: {}", r.text);
        assert!(!r.text.contains("pat.old"), "{}", r.text);
        assert!(!r.text.contains("old-pat-laptop"), "{}", r.text);
    }
    // From its own creation on, the past is its own; an admin reads any of it.
    let r = new.get(&format!("/access/api/v2/users/pat?as_of={now}"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["email"], "pat.new@example.com");
    let r = admin.get(&format!("/access/api/v2/users/pat?as_of={before}"));
    assert_eq!(r.json()["email"], "pat.old@example.com", "{}", r.text);
    // A user renamed to the name later reads no more of the earlier holder's past
    // (a rename keeps the account's creation position).
    app.create_user("bob", "Bob-pass-12345!");
    assert_eq!(admin.delete("/access/api/v2/users/pat").status, 204);
    let id = admin
        .get("/access/api/v1/scim/v2/Users?filter=userName%20eq%20%22bob%22")
        .json()["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = admin.patch(
        &format!("/access/api/v1/scim/v2/Users/{id}"),
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "userName", "value": "pat"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let renamed = app.as_user("pat", "Bob-pass-12345!");
    for at in [before, now] {
        let r = renamed.get(&format!("/access/api/v2/users/pat?as_of={at}"));
        assert_eq!(r.status, 403, "as of {at}: {}", r.text);
        assert!(
            !r.text.contains("pat.old") && !r.text.contains("pat.new"),
            "{}",
            r.text
        );
        let r = renamed.get(&format!("/access/api/v1/tokens?as_of={at}"));
        assert_eq!(r.status, 403, "{}", r.text);
    }
}

/// The last admin who can sign in is never locked by failed sign-ins: five tries of an
/// old password locked the only admin, and nobody was left to unlock it.
#[test]
fn the_last_admin_is_not_locked_out() {
    let app = TestApp::spawn();
    let admin = app.admin();
    assert_eq!(admin.get("/access/api/v2/users/admin").status, 200);
    // An admin without a password to sign in with does not count.
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "sso", "admin": true, "internal_password_disabled": true, "email": "s@example.com"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let wrong = app.as_user("admin", "an-old-password");
    for _ in 0..6 {
        assert_eq!(wrong.get("/access/api/v2/users/admin").status, 401);
    }
    let r = admin.get("/access/api/v2/users/admin");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["status"], "enabled");
    // Nor does an admin change leave the server without one who can sign in.
    for (path, body) in [
        ("/access/api/v2/users/admin", json!({"admin": false})),
        (
            "/access/api/v2/users/admin",
            json!({"internal_password_disabled": true}),
        ),
        (
            "/artifactory/api/security/users/admin",
            json!({"admin": false}),
        ),
    ] {
        let r = if path.starts_with("/artifactory") {
            admin.post(path, &body)
        } else {
            admin.patch(path, &body)
        };
        assert_eq!(r.status, 409, "{path} {body}: {}", r.text);
        assert!(r.text.contains("no admin who can sign in"), "{}", r.text);
    }
    assert_eq!(admin.get("/access/api/v2/users").status, 200);
    // A group that would make every new user an admin is refused; so is an admin anonymous.
    let r = admin.post(
        "/access/api/v2/groups",
        &json!({"name": "everyone-admins", "auto_join": true, "admin_privileges": true}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = admin.put(
        "/artifactory/api/security/groups/everyone-admins",
        &json!({"autoJoin": true, "adminPrivileges": true}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = admin.patch("/access/api/v2/users/anonymous", &json!({"admin": true}));
    assert_eq!(r.status, 400, "{}", r.text);
    // With a second admin, the first is locked as anyone else, and unlocked by the other.
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "ada", "password": "Ada-pass-123!", "admin": true, "email": "ada@example.com"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    for _ in 0..6 {
        assert_eq!(wrong.get("/access/api/v2/users/admin").status, 401);
    }
    let ada = app.as_user("ada", "Ada-pass-123!");
    assert_eq!(
        ada.get("/access/api/v2/users/admin").json()["status"],
        "locked"
    );
    assert_eq!(
        ada.post_empty("/access/api/v2/users/admin/unlock").status,
        204
    );
    assert_eq!(admin.get("/access/api/v2/users/admin").status, 200);
    // An admin only through a group: taking it out of the group is such a change too.
    let r = admin.post(
        "/access/api/v2/groups",
        &json!({"name": "admgrp", "admin_privileges": true, "members": ["admin"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    for name in ["ada", "sso"] {
        assert_eq!(
            admin.delete(&format!("/access/api/v2/users/{name}")).status,
            204
        );
    }
    let r = admin.patch("/access/api/v2/users/admin", &json!({"admin": false}));
    assert_eq!(r.status, 200, "admin through its group still: {}", r.text);
    let r = admin.patch(
        "/access/api/v2/groups/admgrp/members",
        &json!({"remove": ["admin"]}),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    let r = admin.patch(
        "/access/api/v2/groups/admgrp",
        &json!({"admin_privileges": false}),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(admin.get("/access/api/v2/users").status, 200);
}

/// One user as of a past position answers as the whole past state does: the anonymous
/// user's status follows the switch, and `effective_admin` its groups then (the fast
/// path missed both).
#[test]
fn one_user_in_the_past_is_the_whole_past_states_user() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.put(
        "/access/api/v1/config/security/anonymous_access",
        &json!({"enabled": true}),
    );
    assert!(r.status < 300, "{}", r.text);
    let on = r.header("x-gatehouse-seq").unwrap().to_string();
    app.create_user("nina", "password-1");
    let r = admin.post(
        "/access/api/v2/groups",
        &json!({"name": "admgrp", "members": ["nina"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.patch(
        "/access/api/v2/groups/admgrp",
        &json!({"admin_privileges": true}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let admin_at = r.header("x-gatehouse-seq").unwrap().to_string();
    let r = admin.get(&format!("/access/api/v2/users/anonymous?as_of={on}"));
    assert_eq!(r.json()["status"], "enabled", "{}", r.text);
    let r = admin.get(&format!("/access/api/v2/users/nina?as_of={admin_at}"));
    assert_eq!(r.json()["effective_admin"], true, "{}", r.text);
}

/// A PATCH that sets what a user already has writes nothing (the e-mail, sealed again,
/// looked changed: an event, a webhook, and `audit/diff` naming the e-mail).
#[test]
fn a_patch_to_the_same_values_writes_nothing() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "carol", "password": "password-1", "email": "carol@example.com"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let head = || app.digest()["seq"].as_u64().unwrap();
    let before = head();
    let r = admin.patch(
        "/access/api/v2/users/carol",
        &json!({"email": "carol@example.com", "admin": false, "status": "enabled"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(head(), before, "nothing written");
    let r = admin.patch(
        "/access/api/v2/users/carol",
        &json!({"email": "carol2@example.com"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(head(), before + 1);
}

/// The built-in `anonymous` is never an admin — not through an admin group with a
/// password set — and is never deleted or renamed (then created again, or provisioned,
/// as an admin with a password: what every request without credentials acts as).
#[test]
fn anonymous_is_never_an_admin_and_stays() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.post(
        "/access/api/v2/groups",
        &json!({"name": "admins", "admin_privileges": true}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    // No password for it either (it signed in with one, and got tokens, while anonymous
    // access was off): refused through every API.
    let r = admin.patch(
        "/access/api/v2/users/anonymous",
        &json!({"internal_password_disabled": false, "password": "Anon-pass-123"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.error_message().contains("password"), "{}", r.text);
    let r = admin.raw(
        "PUT",
        "/access/api/v1/scim/v2/Users/anonymous",
        Some("application/scim+json"),
        Some(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                   "userName": "anonymous", "password": "Anon-pass-123"})
            .to_string()
            .as_bytes(),
        ),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = admin.patch(
        "/access/api/v2/groups/admins/members",
        &json!({"add": ["anonymous"]}),
    );
    assert!(r.status == 200 || r.status == 204, "{}", r.text);
    let r = admin.put(
        "/access/api/v1/config/security/anonymous_access",
        &json!({"enabled": true}),
    );
    assert!(r.status == 200 || r.status == 204, "{}", r.text);
    let anon = app.as_user("anonymous", "Anon-pass-123");
    let r = anon.post(
        "/access/api/v2/users",
        &json!({"username": "mallory", "password": "Mallory-pass-1", "admin": true}),
    );
    assert_eq!(r.status, 401, "{}", r.text);
    // Without credentials (anonymous access on), in a group with admin privileges:
    // still no admin.
    let r = app.anon().post(
        "/access/api/v2/users",
        &json!({"username": "mallory", "password": "Mallory-pass-1", "admin": true}),
    );
    assert!(r.status == 401 || r.status == 403, "{}", r.text);
    let shown = admin.get("/access/api/v2/users/anonymous").json();
    assert_eq!(shown["effective_admin"], false, "{shown}");
    // Neither deleted (v2, SCIM) nor renamed.
    let r = admin.delete("/access/api/v2/users/anonymous");
    assert_eq!(r.status, 400, "{}", r.text);
    let r = admin.raw(
        "DELETE",
        "/access/api/v1/scim/v2/Users/anonymous",
        None,
        None,
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = admin.raw(
        "PATCH",
        "/access/api/v1/scim/v2/Users/anonymous",
        Some("application/scim+json"),
        Some(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "replace", "path": "userName", "value": "anon2"}]})
            .to_string()
            .as_bytes(),
        ),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(admin.get("/access/api/v2/users/anonymous").status, 200);
}

/// One spelling per name: a name not in Unicode normal form C (`josé` with a combining
/// accent) and names with invisible characters (`a\u{34F}dmin` reads as `admin`) are
/// refused; global roles follow the rules of names and of project roles' names.
#[test]
fn look_alike_names_are_refused() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let user = |name: &str| {
        admin.post(
            "/access/api/v2/users",
            &json!({"username": name, "password": "Passw0rd-long"}),
        )
    };
    assert_eq!(user("jos\u{e9}").status, 201);
    for name in [
        "jose\u{301}",
        "a\u{34f}dmin",
        "\u{3164}",
        "a\u{e0041}b",
        "a\u{fe0f}b",
        "a\u{2028}b",
    ] {
        let r = user(name);
        assert_eq!(r.status, 400, "{name:?}: {}", r.text);
        assert!(r.error_message().contains("username"), "{}", r.text);
    }
    let r = admin.post("/access/api/v2/groups", &json!({"name": "cafe\u{301}"}));
    assert_eq!(r.status, 400, "{}", r.text);
    let role = |name: &str, description: &str| {
        admin.post(
            "/access/api/v1/roles",
            &json!({"name": name, "description": description, "type": "CUSTOM_GLOBAL",
                    "actions": ["READ_REPOSITORY"], "environments": ["DEV"]}),
        )
    };
    for name in [
        "a/b",
        "..",
        "a\u{0}b",
        "a\nb",
        "Dev\u{200b}eloper",
        "r\u{fffd}",
    ] {
        let r = role(name, "");
        assert_eq!(r.status, 400, "{name:?}: {}", r.text);
    }
    let r = role("descrole", "a\u{0}b\u{1b}[31m");
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(role("Readers", "plain").status, 201);
    // Not a project's role's name either (it would be shadowed there).
    let r = admin.post(
        "/access/api/v1/projects",
        &json!({"project_key": "web", "display_name": "Web"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.post(
        "/access/api/v1/projects/web/roles",
        &json!({"name": "Shadow", "actions": ["READ_REPOSITORY"], "environments": ["DEV"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(role("shadow", "").status, 409);
}

/// A committed create or change of a user is answered from the state right after it, not
/// 404 because a concurrent delete followed (the client concluded the create failed; it
/// was in the log, audited and delivered).
#[test]
fn a_committed_user_write_is_not_answered_404_because_a_delete_followed() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let mut wrong = Vec::new();
    for round in 0..30 {
        let name = format!("race{round}");
        let path = format!("/access/api/v2/users/{name}");
        let (created, _) = std::thread::scope(|t| {
            let a = t.spawn(|| {
                admin.post(
                    "/access/api/v2/users",
                    &json!({"username": name, "password": "Password-123", "email": "r@example.com"}),
                )
            });
            let b = t.spawn(|| {
                // The delete right behind the create.
                for _ in 0..200 {
                    if admin.delete(&path).status == 204 {
                        break;
                    }
                }
            });
            (a.join().unwrap(), b.join().unwrap())
        });
        if created.status == 404 {
            wrong.push(created.header("x-request-id").unwrap().to_string());
        } else {
            assert_eq!(created.status, 201, "{}", created.text);
            assert!(created.header("x-gatehouse-seq").is_some());
        }
    }
    let audit = admin.get("/access/api/v1/audit/events?limit=1000&type=UserCreated");
    assert_eq!(audit.status, 200, "{}", audit.text);
    for id in wrong {
        assert!(
            !audit.text.contains(&id),
            "request {id} was committed and answered 404"
        );
    }
}

/// From a review: expiring the password of a user who has none (its internal password
/// disabled, or `anonymous`) was taken (204), and the user could then do nothing at all;
/// each expiry of an expired password wrote another event; a name that grows when
/// lower-cased (`İ`) was stored past 128 characters, and `ADMİN` became a user that
/// reads as `admin`.
#[test]
fn expiry_needs_a_password_and_names_are_checked_as_stored() {
    let app = crate::helpers::TestApp::spawn();
    let admin = app.admin();
    let r = admin.post(
        "/access/api/v2/users",
        &serde_json::json!({"username": "svc", "internal_password_disabled": true}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    for name in ["svc", "anonymous"] {
        let r = admin.post_empty(&format!("/access/api/v2/users/{name}/password/expire"));
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        assert!(r.text.contains("no password here"), "{}", r.text);
    }
    app.create_user("carol", "password-1");
    let r = admin.post_empty("/access/api/v2/users/carol/password/expire");
    assert!(r.status < 300, "{}", r.text);
    let seq = app.digest()["seq"].as_u64().unwrap();
    let r = admin.post_empty("/access/api/v2/users/carol/password/expire");
    assert!(r.status < 300, "{}", r.text);
    assert_eq!(
        app.digest()["seq"].as_u64().unwrap(),
        seq,
        "expiring an expired password writes nothing"
    );
    let long = "\u{130}".repeat(128);
    for name in [long.as_str(), "ADM\u{130}N", "admi\u{307}n"] {
        let r = admin.post(
            "/access/api/v2/users",
            &serde_json::json!({"username": name, "password": "builder-4242"}),
        );
        assert_eq!(r.status, 400, "{name:?}: {}", r.text);
        assert!(r.text.contains("username"), "{}", r.text);
    }
    // `İVAN` too (stored as `i̇van`); a plain `Ivan` is `ivan`.
    let r = admin.post(
        "/access/api/v2/users",
        &serde_json::json!({"username": "\u{130}VAN", "password": "builder-4242"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = admin.post(
        "/access/api/v2/users",
        &serde_json::json!({"username": "Ivan", "password": "builder-4242"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
}

/// From a review: a directory compares `uid` loosely (`ａlice` matches `alice`), so a
/// look-alike name in compatibility form signed in to another's entry as a new user:
/// new names in such forms are refused, through every API.
#[test]
fn names_in_compatibility_forms_are_refused() {
    let app = crate::helpers::TestApp::spawn();
    let admin = app.admin();
    for name in ["\u{ff41}lice", "\u{ff43}arol", "\u{fb01}nance"] {
        let r = admin.post(
            "/access/api/v2/users",
            &serde_json::json!({"username": name, "password": "builder-4242"}),
        );
        assert_eq!(r.status, 400, "{name:?}: {}", r.text);
        assert!(r.text.contains("compatibility"), "{}", r.text);
    }
    let r = admin.post(
        "/access/api/v2/users",
        &serde_json::json!({"username": "jos\u{e9}", "password": "builder-4242"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
}

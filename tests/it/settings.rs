//! Security settings as events (issue 13): default token expiry, user lock policy and
//! unlocking, password expiry of many users, password expiration policy, password
//! policy, basic authentication — in the spellings JFrog's client libraries use.

use crate::helpers::{Client, TestApp};
use gatehouse::Config;
use serde_json::{json, Value};

fn bearer(app: &TestApp, token: &str) -> Client {
    app.anon().with_header_auth(&format!("Bearer {token}"))
}

fn token_for(app: &TestApp, body: Value) -> Value {
    let r = app.admin().post("/access/api/v1/tokens", &body);
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

/// Status of a Basic sign-in of `user` reading itself.
fn sign_in(app: &TestApp, user: &str, password: &str) -> u16 {
    app.as_user(user, password)
        .get(&format!("/access/api/v2/users/{user}"))
        .status
}

fn status_of(app: &TestApp, user: &str) -> String {
    let r = app.admin().get(&format!("/access/api/v2/users/{user}"));
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["status"].as_str().unwrap().to_string()
}

#[test]
fn default_token_expiry_replaces_the_configured_one_and_survives_a_restart() {
    let app = TestApp::spawn_with(Config {
        default_expiry: 3600,
        ..Config::default()
    });
    let admin = app.admin();
    let path = "/access/api/v1/config/token/default_expiry";
    assert_eq!(
        admin.get(path).json(),
        json!({"default_token_expiration": 3600})
    );
    assert_eq!(token_for(&app, json!({}))["expires_in"], 3600);

    // A century at most (near u64::MAX made an `exp` no 64-bit date holds).
    let r = admin.put(
        path,
        &json!({"default_token_expiration": 18446744073709551615u64}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("default_token_expiration"), "{}", r.text);
    let r = admin.put(path, &json!({"default_token_expiration": 43200}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.header("x-gatehouse-seq").is_some());
    assert_eq!(r.json(), json!({"default_token_expiration": 43200}));
    // Every way of asking without an expiry: JSON, an empty JSON body, a form.
    assert_eq!(
        token_for(&app, json!({"description": "d"}))["expires_in"],
        43200
    );
    let empty = admin.raw(
        "POST",
        "/access/api/v1/tokens",
        Some("application/json"),
        Some(b""),
    );
    assert_eq!(empty.status, 200, "{}", empty.text);
    assert_eq!(empty.json()["expires_in"], 43200);
    let form = admin.raw(
        "POST",
        "/access/api/v1/tokens",
        Some("application/x-www-form-urlencoded"),
        Some(b"description=form&refreshable=True"),
    );
    assert_eq!(form.json()["expires_in"], 43200, "{}", form.text);
    // A given expiry still wins.
    assert_eq!(
        token_for(&app, json!({"expires_in": 600}))["expires_in"],
        600
    );
    // 0: tokens made without an expiry do not expire.
    assert_eq!(
        admin
            .put(path, &json!({"default_token_expiration": 0}))
            .status,
        200
    );
    assert!(token_for(&app, json!({})).get("expires_in").is_none());
    assert_eq!(
        admin
            .put(path, &json!({"default_token_expiration": 43200}))
            .status,
        200
    );

    // Bad input names the field; non-admins may neither read nor write it.
    let r = admin.put(path, &json!({"default_token_expiration": -1}));
    assert_eq!(r.status, 400);
    assert!(r.text.contains("default_token_expiration"), "{}", r.text);
    app.create_user("plain", "password-1");
    let plain = app.as_user("plain", "password-1");
    assert_eq!(plain.get(path).status, 403);
    assert_eq!(
        plain
            .put(path, &json!({"default_token_expiration": 5}))
            .status,
        403
    );

    // An event: a restart (replayed from the log) keeps it.
    let digest = app.digest();
    let dir = app.dir.clone();
    let _tmp = app.stop();
    let app = TestApp::start(
        dir,
        Config {
            default_expiry: 3600,
            ..Config::default()
        },
    )
    .unwrap();
    assert_eq!(app.digest(), digest);
    assert_eq!(
        app.admin().get(path).json(),
        json!({"default_token_expiration": 43200})
    );
    assert_eq!(token_for(&app, json!({}))["expires_in"], 43200);
}

#[test]
fn the_default_token_expiry_respects_the_configured_max_expiry() {
    let app = TestApp::spawn_with(Config {
        default_expiry: 3600,
        max_expiry: 7200,
        ..Config::default()
    });
    let admin = app.admin();
    let path = "/access/api/v1/config/token/default_expiry";
    for bad in [0, 7201] {
        let r = admin.put(path, &json!({"default_token_expiration": bad}));
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert!(r.text.contains("max-expiry"), "{}", r.text);
    }
    assert_eq!(
        admin
            .put(path, &json!({"default_token_expiration": 7200}))
            .status,
        200
    );
    // A non-admin's token without an expiry gets the new default, within its limit.
    app.create_user("nora", "password-1");
    let r = app
        .as_user("nora", "password-1")
        .post("/access/api/v1/tokens", &json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["expires_in"], 7200);
}

#[test]
fn the_lock_policy_decides_after_how_many_failures_a_user_is_locked() {
    // lockout-threshold 5; the sign-in rate limits (issue 16) are off here, so that every
    // wrong password is a 401 that the lock policy judges, not a 429.
    let app = TestApp::spawn_with(gatehouse::config::Config {
        signin_address_burst: 0,
        signin_user_burst: 0,
        ..gatehouse::config::Config::default()
    });
    let admin = app.admin();
    let path = "/artifactory/api/security/userLockPolicy";
    assert_eq!(
        admin.get(path).json(),
        json!({"enabled": true, "loginAttempts": 5})
    );
    let r = admin.put(path, &json!({"enabled": true, "loginAttempts": 3}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/plain")));
    assert_eq!(
        admin.get(path).json(),
        json!({"enabled": true, "loginAttempts": 3})
    );
    for bad in [json!({"loginAttempts": 0}), json!({"loginAttempts": 101})] {
        let r = admin.put(path, &bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert!(r.text.contains("loginAttempts"), "{}", r.text);
    }

    app.create_user("locky", "password-1");
    app.create_user("other", "password-1");
    let fail = |user: &str, n: usize| {
        for _ in 0..n {
            assert_eq!(sign_in(&app, user, "wrong-password"), 401);
        }
    };
    // Failures count towards the lock from an address the user has signed in from
    // (`lockout-from = "familiar"`, issue 16): locky has, once.
    assert_eq!(sign_in(&app, "locky", "password-1"), 200);
    fail("locky", 2);
    assert_eq!(status_of(&app, "locky"), "enabled");
    fail("locky", 1);
    assert_eq!(status_of(&app, "locky"), "locked");
    assert_eq!(
        admin.get("/artifactory/api/security/lockedUsers").json(),
        json!(["locky"])
    );

    // Unlock a list (unknown names are skipped), one by name, and all.
    let r = admin.post(
        "/artifactory/api/security/unlockUsers",
        &json!(["locky", "nobody"]),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(status_of(&app, "locky"), "enabled");
    assert_eq!(sign_in(&app, "locky", "password-1"), 200);
    fail("locky", 3);
    assert_eq!(sign_in(&app, "other", "password-1"), 200);
    fail("other", 3);
    assert_eq!(
        admin.get("/artifactory/api/security/lockedUsers").json(),
        json!(["locky", "other"])
    );
    let r = admin.post_empty("/artifactory/api/security/unlockUsers/Locky");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(status_of(&app, "locky"), "enabled");
    assert_eq!(status_of(&app, "other"), "locked");
    assert_eq!(
        admin
            .post_empty("/artifactory/api/security/unlockUsers/nobody")
            .status,
        200
    );
    fail("locky", 3);
    let r = admin.post_empty("/artifactory/api/security/unlockAllUsers");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        admin.get("/artifactory/api/security/lockedUsers").json(),
        json!([])
    );
    // The failure count started again with the unlock.
    // Failures count towards the lock from an address the user has signed in from
    // (`lockout-from = "familiar"`, issue 16): locky has, once.
    assert_eq!(sign_in(&app, "locky", "password-1"), 200);
    fail("locky", 2);
    assert_eq!(status_of(&app, "locky"), "enabled");
    assert_eq!(sign_in(&app, "locky", "password-1"), 200);

    // Disabled: failures never lock.
    let r = admin.put(path, &json!({"enabled": false, "loginAttempts": 3}));
    assert_eq!(r.status, 200, "{}", r.text);
    admin.post_empty("/artifactory/api/security/unlockAllUsers");
    fail("other", 8);
    assert_eq!(status_of(&app, "other"), "enabled");
    assert_eq!(sign_in(&app, "other", "password-1"), 200);

    // Admin only.
    let plain = app.as_user("other", "password-1");
    assert_eq!(plain.get(path).status, 403);
    assert_eq!(
        plain.get("/artifactory/api/security/lockedUsers").status,
        403
    );
    assert_eq!(
        plain
            .post_empty("/artifactory/api/security/unlockAllUsers")
            .status,
        403
    );
}

#[test]
fn passwords_of_some_or_all_users_expire_and_unexpire_without_a_change() {
    let app = TestApp::spawn();
    let admin = app.admin();
    for u in ["ann", "bob", "cat"] {
        app.create_user(u, "password-1");
    }
    // A token made before keeps working whatever happens to passwords.
    let token = token_for(
        &app,
        json!({"scope": "applied-permissions/admin", "expires_in": 3600}),
    )["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let by_token = bearer(&app, &token);

    let auth = "/artifactory/api/security/users/authorization";
    let r = admin.post(&format!("{auth}/expirePassword"), &json!(["ann", "Bob"]));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(sign_in(&app, "ann", "password-1"), 403);
    assert_eq!(sign_in(&app, "bob", "password-1"), 403);
    assert_eq!(sign_in(&app, "cat", "password-1"), 200);
    // An unknown name: 404 naming it, and nothing expired.
    let r = admin.post(&format!("{auth}/expirePassword"), &json!(["cat", "nobody"]));
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(r.text.contains("nobody"), "{}", r.text);
    assert_eq!(sign_in(&app, "cat", "password-1"), 200);

    // Unexpire one, without changing its password (new: no password change needed).
    let r = admin.post_empty(&format!("{auth}/unexpirePassword/ann"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(sign_in(&app, "ann", "password-1"), 200);
    assert_eq!(sign_in(&app, "bob", "password-1"), 403);
    assert_eq!(
        admin
            .post_empty(&format!("{auth}/unexpirePassword/nobody"))
            .status,
        404
    );
    assert_eq!(
        admin
            .post_empty(&format!("{auth}/expirePassword/cat"))
            .status,
        200
    );
    assert_eq!(sign_in(&app, "cat", "password-1"), 403);

    // Everyone but the calling admin (Access spelling): another admin's tokens stop.
    app.create_user("root2", "password-1");
    assert_eq!(
        admin
            .patch("/access/api/v2/users/root2", &json!({"admin": true}))
            .status,
        200
    );
    let other_admin = token_for(
        &app,
        json!({"username": "root2", "scope": "applied-permissions/user", "expires_in": 3600}),
    )["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = admin.post_empty("/access/api/v2/users/expire_password_for_all_users");
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("Passwords expired"), "{}", r.text);
    assert_eq!(sign_in(&app, "ann", "password-1"), 403);
    assert_eq!(sign_in(&app, "root2", "password-1"), 403);
    assert_eq!(
        bearer(&app, &other_admin)
            .get("/access/api/v2/users/ann")
            .status,
        403
    );
    assert_eq!(sign_in(&app, "admin", &app.admin_password), 200);
    assert_eq!(by_token.get("/access/api/v2/users/ann").status, 200);
    let r = by_token.post_empty("/access/api/v2/users/unexpire_password_for_all_users");
    assert_eq!(r.status, 200, "{}", r.text);
    for u in ["ann", "bob", "cat", "root2"] {
        assert_eq!(sign_in(&app, u, "password-1"), 200, "{u}");
    }
    assert_eq!(sign_in(&app, "admin", &app.admin_password), 200);

    // The Artifactory spelling of "all".
    let r = admin.post_empty(&format!("{auth}/expirePasswordForAllUsers"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(sign_in(&app, "bob", "password-1"), 403);
    let r = by_token.post_empty(&format!("{auth}/unexpirePasswordForAllUsers"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(sign_in(&app, "bob", "password-1"), 200);
    assert_eq!(sign_in(&app, "admin", &app.admin_password), 200);

    // Admin only.
    let plain = app.as_user("ann", "password-1");
    assert_eq!(
        plain
            .post_empty("/access/api/v2/users/expire_password_for_all_users")
            .status,
        403
    );
    assert_eq!(
        plain
            .post_empty(&format!("{auth}/unexpirePassword/ann"))
            .status,
        403
    );
}

#[test]
fn the_all_users_routes_do_not_shadow_a_user_of_that_name() {
    let app = TestApp::spawn();
    app.create_user("expire_password_for_all_users", "password-1");
    let r = app
        .admin()
        .get("/access/api/v2/users/expire_password_for_all_users");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["username"], "expire_password_for_all_users");
}

#[test]
fn the_password_expiration_policy_is_stored_and_answered_as_strings() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let path = "/artifactory/api/security/configuration/passwordExpirationPolicy";
    assert_eq!(
        admin.get(path).json(),
        json!({"enabled": "false", "passwordMaxAge": "60", "notifyByEmail": "true"})
    );
    // Strings, as py-jfrog-client sends them…
    let r = admin.put(
        path,
        &json!({"enabled": "true", "passwordMaxAge": "90", "notifyByEmail": "false"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let expected = json!({"enabled": "true", "passwordMaxAge": "90", "notifyByEmail": "false"});
    assert_eq!(r.json(), expected);
    assert_eq!(admin.get(path).json(), expected);
    // …or booleans and numbers, as JFrog documents them; what is left out is kept.
    let r = admin.put(path, &json!({"enabled": false, "passwordMaxAge": 30}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        admin.get(path).json(),
        json!({"enabled": "false", "passwordMaxAge": "30", "notifyByEmail": "false"})
    );
    for bad in [
        json!({"passwordMaxAge": 0}),
        json!({"passwordMaxAge": "1000"}),
        json!({"passwordMaxAge": "soon"}),
    ] {
        let r = admin.put(path, &bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert!(r.text.contains("passwordMaxAge"), "{}", r.text);
    }
    let r = admin.put(path, &json!({"enabled": "maybe"}));
    assert_eq!(r.status, 400);
    assert!(r.text.contains("enabled"), "{}", r.text);

    // Enabled, a fresh password is not expired (ages are counted from the policy on).
    assert_eq!(
        admin
            .put(path, &json!({"enabled": true, "passwordMaxAge": 1}))
            .status,
        200
    );
    app.create_user("fresh", "password-1");
    assert_eq!(sign_in(&app, "fresh", "password-1"), 200);
    assert_eq!(sign_in(&app, "admin", &app.admin_password), 200);
    app.create_user("plain", "password-1");
    assert_eq!(app.as_user("plain", "password-1").get(path).status, 403);
}

#[test]
fn the_password_policy_is_enforced_wherever_a_password_is_set() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let path = "/access/api/v1/config/security/password_policy";
    assert_eq!(
        admin.get(path).json(),
        json!({"uppercase": 0, "lowercase": 0, "digit": 0, "special_char": 0,
               "length": 8, "not_match_old": false})
    );
    let r = admin.put(
        path,
        &json!({"uppercase": 1, "lowercase": 0, "digit": 1, "special_char": 0,
                "length": 12, "not_match_old": false}),
    );
    assert_eq!(r.status, 204, "{}", r.text);

    let create = |name: &str, password: &str| {
        admin.post(
            "/access/api/v2/users",
            &json!({"username": name, "password": password}),
        )
    };
    let r = create("shorty", "Short-pw1");
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.text.contains("`password`") && r.text.contains("at least 12 characters"),
        "{}",
        r.text
    );
    let r = create("shorty", "long-enough-pw1");
    assert_eq!(r.status, 400);
    assert!(r.text.contains("upper-case"), "{}", r.text);
    let r = create("shorty", "Long-enough-pw");
    assert_eq!(r.status, 400);
    assert!(r.text.contains("digit"), "{}", r.text);
    assert_eq!(create("shorty", "Long-enough-pw1").status, 201);

    // The password change, the user update and SCIM are held to it too.
    let r = admin.put(
        "/access/api/v2/users/shorty/password",
        &json!({"password": "Short-pw2"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = admin.patch(
        "/access/api/v2/users/shorty",
        &json!({"password": "short-password-2"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = admin.raw(
        "POST",
        "/access/api/v1/scim/v2/Users",
        Some("application/scim+json"),
        Some(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                   "userName": "scimmy", "password": "Short-pw3"})
            .to_string()
            .as_bytes(),
        ),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("12 characters"), "{}", r.text);

    // PATCH changes only what it names.
    let r = admin.patch(path, &json!({"length": 8}));
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(admin.get(path).json()["length"], 8);
    assert_eq!(admin.get(path).json()["uppercase"], 1);
    assert_eq!(create("shorter", "Short-p1").status, 201);

    // not_match_old: the current password is refused, another one is not.
    let r = admin.patch(path, &json!({"not_match_old": true}));
    assert_eq!(r.status, 204);
    let r = admin.put(
        "/access/api/v2/users/shorter/password",
        &json!({"password": "Short-p1"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("current password"), "{}", r.text);
    let r = admin.put(
        "/access/api/v2/users/shorter/password",
        &json!({"password": "Other-p2"}),
    );
    assert_eq!(r.status, 204, "{}", r.text);

    // Bad policies name the field.
    for (bad, field) in [
        (json!({"uppercase": -1}), "uppercase"),
        (json!({"length": 0}), "length"),
        (json!({"length": 1025}), "length"),
        (json!({"not_match_old": "yes"}), "not_match_old"),
    ] {
        let r = admin.patch(path, &bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert!(r.text.contains(field), "{bad}: {}", r.text);
    }
    let plain = app.as_user("shorter", "Other-p2");
    assert_eq!(plain.get(path).status, 403);
    assert_eq!(plain.patch(path, &json!({"length": 1})).status, 403);
}

#[test]
fn basic_authentication_off_refuses_passwords_except_admins_tokens_keep_working() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let path = "/access/api/v1/config/security/authentication/basic_authentication_enabled";
    assert_eq!(admin.get(path).json(), json!({"enabled": true}));
    app.create_user("basil", "password-1");
    let token = token_for(
        &app,
        json!({"username": "basil", "expires_in": 3600, "include_reference_token": true}),
    );
    let access = token["access_token"].as_str().unwrap().to_string();
    let reference = token["reference_token"].as_str().unwrap().to_string();

    let r = admin.put(path, &json!({"enabled": false}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json(), json!({"enabled": false}));
    assert_eq!(admin.get(path).json(), json!({"enabled": false}));

    let r = app
        .as_user("basil", "password-1")
        .get("/access/api/v2/users/basil");
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.text.contains("access token"), "{}", r.text);
    // Unknown users get the same answer (it tells nothing about who exists).
    let unknown = app
        .as_user("nobody", "password-1")
        .get("/access/api/v2/users/nobody");
    assert_eq!(
        (unknown.status, unknown.text.clone()),
        (401, r.text.clone())
    );
    // Admins still sign in with their password; tokens work, as Bearer and as Basic.
    assert_eq!(sign_in(&app, "admin", &app.admin_password), 200);
    assert_eq!(
        bearer(&app, &access)
            .get("/access/api/v2/users/basil")
            .status,
        200
    );
    assert_eq!(
        app.as_user("basil", &reference)
            .get("/access/api/v2/users/basil")
            .status,
        200
    );
    // Refused sign-ins are not failed ones: they lock nobody.
    for _ in 0..6 {
        sign_in(&app, "basil", "wrong-password");
    }
    assert_eq!(status_of(&app, "basil"), "enabled");

    assert_eq!(admin.put(path, &json!({"enabled": true})).status, 200);
    assert_eq!(sign_in(&app, "basil", "password-1"), 200);
    assert_eq!(admin.put(path, &json!({"enabled": "no"})).status, 400);
    assert_eq!(
        app.as_user("basil", "password-1")
            .put(path, &json!({"enabled": false}))
            .status,
        403
    );
}

fn gatehouse(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "gatehouse {args:?}: {text}");
    text
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The same log as if every event had happened `shift_ms` earlier: an export whose
/// event times are moved back and whose hash chain is computed again.
fn aged_export(export: &std::path::Path, shift_ms: u64) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut prev = gatehouse::log::GENESIS_HASH;
    let mut out = String::new();
    let mut events = 0u64;
    for line in std::fs::read_to_string(export).unwrap().lines() {
        let mut record: Value = serde_json::from_str(line).unwrap();
        if record.get("end").is_some() {
            // The end mark names the head: the new one.
            out.push_str(
                &json!({"end": {"events": events, "head_hash": gatehouse::hex(&prev)}}).to_string(),
            );
            out.push('\n');
            continue;
        }
        events += 1;
        let bytes = b64.decode(record["event"].as_str().unwrap()).unwrap();
        let mut envelope = gatehouse_schemas::decode(&bytes).unwrap();
        envelope.time_ms -= shift_ms;
        let bytes = gatehouse_schemas::encode(&envelope);
        prev = gatehouse::log::chain_hash(&prev, &bytes);
        record["event"] = json!(b64.encode(&bytes));
        record["hash"] = json!(gatehouse::hex(&prev));
        out.push_str(&record.to_string());
        out.push('\n');
    }
    out
}

#[test]
fn under_the_expiration_policy_an_old_password_counts_as_expired_at_sign_in() {
    const DAY_MS: u64 = 24 * 3600 * 1000;
    let app = TestApp::spawn();
    let admin = app.admin();
    let policy = "/artifactory/api/security/configuration/passwordExpirationPolicy";
    let r = admin.put(policy, &json!({"enabled": "true", "passwordMaxAge": "2"}));
    assert_eq!(r.status, 200, "{}", r.text);
    app.create_user("aged", "password-1");
    app.create_user("renewed", "password-1");
    let token = token_for(
        &app,
        json!({"scope": "applied-permissions/admin", "expires_in": 86400}),
    )["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let old_dir = app.dir.clone();
    let _old = app.stop();

    // The same history, three days ago.
    let work = tempfile::tempdir().unwrap();
    let export = work.path().join("log.ndjson");
    gatehouse(&[
        "export",
        "--data-dir",
        old_dir.to_str().unwrap(),
        "--out",
        export.to_str().unwrap(),
        "--format",
        "ndjson",
    ]);
    let aged = work.path().join("aged.ndjson");
    std::fs::write(&aged, aged_export(&export, 3 * DAY_MS)).unwrap();
    let dir = work.path().join("data");
    gatehouse(&[
        "import",
        "--data-dir",
        dir.to_str().unwrap(),
        "--in",
        aged.to_str().unwrap(),
    ]);
    copy_dir(&old_dir.join("keys"), &dir.join("keys"));
    std::fs::copy(
        old_dir.join("initial-admin-password"),
        dir.join("initial-admin-password"),
    )
    .unwrap();
    let app = TestApp::start(dir, Config::default()).unwrap();

    // Three days old under a two-day policy: expired at sign-in, the admin too; the
    // user record itself was never expired by anyone.
    let r = app
        .as_user("aged", "password-1")
        .get("/access/api/v2/users/aged");
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.text.contains("expired"), "{}", r.text);
    assert_eq!(sign_in(&app, "admin", &app.admin_password), 403);
    // Changing the password is still allowed, and makes it young again.
    let r = app.as_user("renewed", "password-1").put(
        "/access/api/v2/users/renewed/password",
        &json!({"password": "password-2"}),
    );
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(sign_in(&app, "renewed", "password-2"), 200);
    // Un-expiring starts the age again, without a new password.
    let by_token = bearer(&app, &token);
    let r =
        by_token.post_empty("/artifactory/api/security/users/authorization/unexpirePassword/aged");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(sign_in(&app, "aged", "password-1"), 200);
    // "Unexpire all" also lifts what the policy expired.
    let r = by_token.post_empty("/access/api/v2/users/unexpire_password_for_all_users");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(sign_in(&app, "admin", &app.admin_password), 200);
    // Switched off, the age no longer matters.
    let r = by_token.put(policy, &json!({"enabled": false}));
    assert_eq!(r.status, 200, "{}", r.text);
}

/// From a review: with basic authentication off, a wrong password answered "invalid
/// credentials" for an admin's name and "disabled for users other than admins" for any
/// other, so anyone could tell which names are admins; re-sending the anonymous-access
/// setting as read wrote an event each time; `max-expiry` alone in the config file
/// stopped the server.
#[test]
fn settings_tell_nothing_write_nothing_unchanged_and_max_expiry_stands_alone() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("basil", "password-1");
    let path = "/access/api/v1/config/security/authentication/basic_authentication_enabled";
    assert_eq!(admin.put(path, &json!({"enabled": false})).status, 200);
    let answers: Vec<String> = ["admin", "basil", "nobody"]
        .iter()
        .map(|u| {
            let r = app
                .as_user(u, "wrong-password")
                .get("/access/api/v2/users/basil");
            assert_eq!(r.status, 401, "{u}: {}", r.text);
            r.error_message()
        })
        .collect();
    assert_eq!(answers[0], answers[1], "{answers:?}");
    assert_eq!(answers[1], answers[2], "{answers:?}");
    assert_eq!(admin.get("/access/api/v2/users/basil").status, 200);
    let anon = "/access/api/v1/config/security/anonymous_access";
    let read = admin.get(anon).json();
    assert_eq!(admin.put(anon, &read).status, 200);
    let seq = app.digest()["seq"].as_u64().unwrap();
    for _ in 0..2 {
        assert_eq!(admin.put(anon, &read).status, 200);
    }
    assert_eq!(
        app.digest()["seq"].as_u64().unwrap(),
        seq,
        "nothing written"
    );
    drop(app);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(&config, "max-expiry = 600\n").unwrap();
    let server = crate::helpers::ServerProcess::spawn_with_args(
        &dir.path().join("data"),
        "warn",
        std::process::Stdio::inherit(),
        Some(&config),
        "127.0.0.1:0",
        &[],
    );
    let admin = server.admin();
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "basil", "password": "password-1", "email": "b@example.com"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let basil = admin.with_header_auth(&format!("Basic {}", base64_of("basil:password-1")));
    let r = basil.raw(
        "POST",
        "/access/api/v1/tokens",
        Some("application/x-www-form-urlencoded"),
        Some(b"scope=applied-permissions/user"),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["expires_in"], 600, "{}", r.text);
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

//! Access tokens, keys, the circle of trust and signed URLs (issue 3).

use crate::helpers::{Client, TestApp};
use gatehouse::Config;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub fn create_token(client: &Client, body: Value) -> Value {
    let r = client.post("/access/api/v1/tokens", &body);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.header("x-gatehouse-seq").is_some());
    r.json()
}

fn bearer(app: &TestApp, token: &str) -> Client {
    app.anon().with_header_auth(&format!("Bearer {token}"))
}

#[test]
fn lifecycle_create_use_list_get_revoke() {
    let app = TestApp::spawn();
    let admin = app.admin();
    // Shorter than `revocable-expiry-threshold` (6 h): works, but is not kept as a record.
    let short = create_token(&admin, json!({"description": "short", "expires_in": 600}));
    assert_eq!(
        bearer(&app, short["access_token"].as_str().unwrap())
            .get("/access/api/v2/users")
            .status,
        200
    );
    assert_eq!(
        admin.get("/access/api/v1/tokens").json()["tokens"],
        json!([])
    );
    let t = create_token(
        &admin,
        json!({"description": "ci build", "expires_in": 86400}),
    );
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["scope"], "applied-permissions/user");
    assert!(t["expires_in"].as_u64().unwrap() <= 86400);
    assert!(
        t.get("refresh_token").is_none(),
        "not refreshable by default"
    );
    let token = t["access_token"].as_str().unwrap();
    let id = t["token_id"].as_str().unwrap();
    let me = bearer(&app, token);
    assert_eq!(
        me.get("/access/api/v2/users").status,
        200,
        "an admin's user-scoped token acts as the admin"
    );
    let list = admin.get("/access/api/v1/tokens").json();
    let listed = &list["tokens"].as_array().unwrap()[0];
    assert_eq!(listed["token_id"], id);
    assert_eq!(listed["description"], "ci build");
    assert!(listed["subject"]
        .as_str()
        .unwrap()
        .ends_with("/users/admin"));
    assert_eq!(
        admin.get("/access/api/v1/tokens?description=ci*").json()["tokens"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        admin.get("/access/api/v1/tokens?description=other*").json()["tokens"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        admin.get("/access/api/v1/tokens?refreshable=true").json()["tokens"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        admin.get("/access/api/v1/tokens?refreshable=maybe").status,
        400
    );
    assert_eq!(me.get("/access/api/v1/tokens/me").json()["token_id"], id);
    assert_eq!(
        admin.get(&format!("/access/api/v1/tokens/{id}")).status,
        200
    );
    assert_eq!(admin.get("/access/api/v1/tokens/nope").status, 404);
    assert_eq!(
        admin.get("/access/api/v1/tokens/me").status,
        400,
        "`me` with a password"
    );
    let r = me.delete("/access/api/v1/tokens/me");
    assert_eq!(r.status, 200, "{}", r.text);
    let r = me.get("/access/api/v2/users");
    assert_eq!(
        r.status, 401,
        "a revoked token fails on the very next request"
    );
    assert!(r.error_message().contains("revoked"));
    assert_eq!(
        admin.delete(&format!("/access/api/v1/tokens/{id}")).status,
        204,
        "already revoked"
    );
    assert_eq!(
        admin.delete("/access/api/v1/tokens/never-existed").status,
        204
    );
    assert_eq!(
        app.anon().post("/access/api/v1/tokens", &json!({})).status,
        401
    );
}

#[test]
fn non_admins_get_identity_tokens_for_themselves_only() {
    let config = Config {
        max_expiry: 7200,
        default_expiry: 3600,
        ..Config::default()
    };
    let app = TestApp::spawn_with(config);
    app.create_user("nina", "password-1");
    app.create_user("otto", "password-1");
    let nina = app.as_user("nina", "password-1");
    // Form-encoded, as curl -d sends it.
    let r = nina.raw(
        "POST",
        "/access/api/v1/tokens",
        Some("application/x-www-form-urlencoded"),
        Some(b"scope=applied-permissions/user&expires_in=600&refreshable=true"),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let t = r.json();
    assert!(t["refresh_token"].is_string());
    let token = t["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        bearer(&app, &token).get("/access/api/v2/users/nina").status,
        200
    );
    assert_eq!(
        bearer(&app, &token).get("/access/api/v2/users").status,
        403,
        "nina's token is not an admin's"
    );
    for (body, status, needle) in [
        (json!({"username": "otto"}), 403, "another user"),
        (json!({"scope": "applied-permissions/admin"}), 403, "admin"),
        (
            json!({"scope": "applied-permissions/groups:readers"}),
            403,
            "group",
        ),
        (json!({"expires_in": 0}), 403, "expires_in"),
        (json!({"expires_in": 99999}), 403, "expires_in"),
        (json!({"expires_in": "soon"}), 400, "expires_in"),
        (json!({"scope": "root"}), 400, "scope"),
        (json!({"scope": "x ".repeat(300)}), 400, "scope"),
        (json!({"grant_type": "password"}), 400, "grant_type"),
        // An unknown field is ignored, never masks a bad one.
        (
            json!({"colour": "red", "refreshable": 3}),
            400,
            "refreshable",
        ),
        (json!({"refreshable": "perhaps"}), 400, "refreshable"),
    ] {
        let r = nina.post("/access/api/v1/tokens", &body);
        assert_eq!(r.status, status, "{body}: {}", r.text);
        assert!(r.error_message().contains(needle), "{body}: {}", r.text);
    }
    // Otto cannot see or revoke nina's token.
    let id = t["token_id"].as_str().unwrap();
    let otto = app.as_user("otto", "password-1");
    assert_eq!(otto.get(&format!("/access/api/v1/tokens/{id}")).status, 403);
    assert_eq!(
        otto.delete(&format!("/access/api/v1/tokens/{id}")).status,
        403
    );
    assert_eq!(
        otto.get("/access/api/v1/tokens").json()["tokens"],
        json!([])
    );
    assert_eq!(
        nina.get("/access/api/v1/tokens").json()["tokens"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// A default expiry the non-admin limit refuses (0, "never", kept from before a
/// `max-expiry` was set) is the limit for non-admins: every request of theirs without
/// `expires_in` was a 403 for a value they did not choose. Admins keep "never".
#[test]
fn a_default_expiry_over_the_non_admin_limit_is_the_limit_for_non_admins() {
    let app = TestApp::spawn_with(Config {
        max_expiry: 7200,
        default_expiry: 0,
        ..Config::default()
    });
    app.create_user("nina", "password-1");
    let r = app
        .as_user("nina", "password-1")
        .post("/access/api/v1/tokens", &json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["expires_in"], 7200, "{}", r.text);
    let r = app
        .admin()
        .post("/access/api/v1/tokens", &json!({"username": "nina"}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json()["expires_in"].is_null(), "{}", r.text);
}

#[test]
fn tokens_as_passwords_reference_tokens_and_disabled_subjects() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("rita", "password-1");
    let t = create_token(
        &admin,
        json!({"username": "rita", "include_reference_token": true, "expires_in": 600}),
    );
    let access = t["access_token"].as_str().unwrap();
    let reference = t["reference_token"].as_str().unwrap();
    assert_eq!(reference.len(), 128);
    assert_eq!(
        app.as_user("rita", access)
            .get("/access/api/v2/users/rita")
            .status,
        200,
        "Basic with the token as password"
    );
    assert_eq!(
        app.as_user("admin", access)
            .get("/access/api/v2/users/rita")
            .status,
        401,
        "the token names rita"
    );
    assert_eq!(
        bearer(&app, reference)
            .get("/access/api/v2/users/rita")
            .status,
        200,
        "reference token as bearer"
    );
    assert_eq!(
        app.as_user("rita", reference)
            .get("/access/api/v2/users/rita")
            .status,
        200
    );
    admin.patch("/access/api/v2/users/rita", &json!({"status": "disabled"}));
    assert_eq!(
        bearer(&app, access).get("/access/api/v2/users/rita").status,
        401,
        "disabled subject"
    );
    admin.patch("/access/api/v2/users/rita", &json!({"status": "enabled"}));
    assert_eq!(
        bearer(&app, access).get("/access/api/v2/users/rita").status,
        200
    );
    admin.delete("/access/api/v2/users/rita");
    assert_eq!(
        bearer(&app, access).get("/access/api/v2/users/rita").status,
        401,
        "deleted subject"
    );
    assert_eq!(
        bearer(&app, "eyJhbGciOiJFZERTQSJ9.e30.AAAA")
            .get("/access/api/v2/users")
            .status,
        401
    );
}

/// A CI job that keeps sending an expired or revoked reference token as its Basic
/// password is told so, and does not lock its user out (the failures counted as wrong
/// passwords: five, and the user was locked).
#[test]
fn a_dead_reference_token_as_a_password_does_not_lock_its_user() {
    let app = TestApp::spawn_with(Config {
        lockout_threshold: 3,
        lockout_from: gatehouse::config::LockoutFrom::Any,
        signin_address_burst: 0,
        signin_user_burst: 0,
        ..Config::default()
    });
    let admin = app.admin();
    app.create_user("gina", "Gina-password-1");
    let short = create_token(
        &admin,
        json!({"username": "gina", "include_reference_token": true, "expires_in": 1}),
    );
    let expired = short["reference_token"].as_str().unwrap().to_string();
    let long = create_token(
        &admin,
        json!({"username": "gina", "include_reference_token": true, "expires_in": 600}),
    );
    let revoked = long["reference_token"].as_str().unwrap().to_string();
    let r = admin.delete(&format!(
        "/access/api/v1/tokens/{}",
        long["token_id"].as_str().unwrap()
    ));
    assert!(r.status < 300, "{}", r.text);
    std::thread::sleep(Duration::from_millis(2100));
    for _ in 0..5 {
        let r = app
            .as_user("gina", &expired)
            .get("/access/api/v2/users/gina");
        assert_eq!(r.status, 401, "{}", r.text);
        assert!(r.text.contains("expired"), "{}", r.text);
        let r = app
            .as_user("gina", &revoked)
            .get("/access/api/v2/users/gina");
        assert_eq!(r.status, 401, "{}", r.text);
        assert!(r.text.contains("reference token"), "{}", r.text);
    }
    let user = admin.get("/access/api/v2/users/gina").json();
    assert_eq!(user["status"], "enabled", "{user}");
    assert_eq!(
        app.as_user("gina", "Gina-password-1")
            .get("/access/api/v2/users/gina")
            .status,
        200
    );
    // Wrong passwords still lock.
    for _ in 0..3 {
        let r = app
            .as_user("gina", "Wrong-password-1")
            .get("/access/api/v2/users/gina");
        assert_eq!(r.status, 401, "{}", r.text);
    }
    assert_eq!(
        admin.get("/access/api/v2/users/gina").json()["status"],
        "locked"
    );
}

#[test]
fn transient_subjects_need_an_admin_and_a_non_user_scope() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.post("/access/api/v1/tokens", &json!({"username": "ghost"}));
    assert_eq!(r.status, 400, "user scope needs an existing user");
    let t = create_token(
        &admin,
        json!({"username": "ci-robot", "scope": "applied-permissions/admin", "expires_in": 600}),
    );
    let robot = bearer(&app, t["access_token"].as_str().unwrap());
    assert_eq!(
        robot.get("/access/api/v2/users").status,
        200,
        "admin-scoped transient subject"
    );
    // A refresh with an admin's `scope` keeps the issue's rule: no user scope for an
    // identity that is no user here.
    app.create_group("readers");
    let t = create_token(
        &admin,
        json!({"username": "ci-bot", "scope": "applied-permissions/groups:readers",
               "expires_in": 600, "refreshable": true, "include_reference_token": true,
               "description": "CI pipeline token"}),
    );
    let r = admin.post(
        "/access/api/v1/tokens",
        &json!({"grant_type": "refresh_token", "refresh_token": t["refresh_token"],
                "scope": "applied-permissions/user"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("does not exist"), "{}", r.text);
    // A user created later by that name does not take the transient identity's token
    // over: the token is refused, and the user neither sees nor revokes it.
    app.create_user("ci-bot", "Ci-bot-password-1");
    let bot = app.as_user("ci-bot", "Ci-bot-password-1");
    for credential in [&t["access_token"], &t["reference_token"]] {
        let r = bearer(&app, credential.as_str().unwrap()).get("/access/api/v2/users/ci-bot");
        assert_eq!(r.status, 401, "{}", r.text);
        assert!(r.text.contains("transient"), "{}", r.text);
    }
    let listed = bot.get("/access/api/v1/tokens").json();
    assert_eq!(listed["tokens"], json!([]), "{listed}");
    let id = t["token_id"].as_str().unwrap();
    assert_eq!(bot.get(&format!("/access/api/v1/tokens/{id}")).status, 403);
    assert_eq!(
        bot.delete(&format!("/access/api/v1/tokens/{id}")).status,
        403
    );
    assert!(admin.get(&format!("/access/api/v1/tokens/{id}")).status == 200);
}

#[test]
fn refresh_replaces_the_pair_and_keeps_the_scope() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("fred", "password-1");
    app.create_user("gail", "password-1");
    let fred = app.as_user("fred", "password-1");
    let t = create_token(&fred, json!({"refreshable": true, "expires_in": 600}));
    let old_access = t["access_token"].as_str().unwrap();
    let old_refresh = t["refresh_token"].as_str().unwrap();
    let gail = app.as_user("gail", "password-1");
    let r = gail.post(
        "/access/api/v1/tokens",
        &json!({"grant_type": "refresh_token", "refresh_token": old_refresh}),
    );
    assert_eq!(r.status, 403, "someone else's refresh token");
    let r = fred.raw(
        "POST",
        "/access/api/v1/tokens",
        Some("application/x-www-form-urlencoded"),
        Some(format!("grant_type=refresh_token&refresh_token={old_refresh}").as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let n = r.json();
    assert_ne!(n["access_token"], t["access_token"]);
    assert_eq!(n["scope"], t["scope"]);
    assert!(n["refresh_token"].is_string());
    assert_eq!(
        bearer(&app, old_access)
            .get("/access/api/v2/users/fred")
            .status,
        401,
        "the old pair stops working"
    );
    assert_eq!(
        bearer(&app, n["access_token"].as_str().unwrap())
            .get("/access/api/v2/users/fred")
            .status,
        200
    );
    let r = fred.post(
        "/access/api/v1/tokens",
        &json!({"grant_type": "refresh_token", "refresh_token": old_refresh}),
    );
    assert_eq!(r.status, 400, "a used refresh token");
    assert_eq!(
        fred.post(
            "/access/api/v1/tokens",
            &json!({"grant_type": "refresh_token"})
        )
        .status,
        400
    );
    assert_eq!(
        admin.get("/access/api/v1/tokens").json()["tokens"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn an_independent_jwt_library_verifies_our_tokens() {
    use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
    let app = TestApp::spawn();
    let admin = app.admin();
    let t = create_token(
        &admin,
        json!({"expires_in": 600, "audience": "jfrt@* jfac@*"}),
    );
    let token = t["access_token"].as_str().unwrap();
    let pem = admin.get("/access/api/v1/cert/root?formatted=true").text;
    // An X.509 certificate, as JFrog serves (trust stores import only certificates);
    // the JWT library takes its key from it.
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let unformatted = admin.get("/access/api/v1/cert/root").text;
    assert!(!unformatted.contains("BEGIN") && pem.contains(&unformatted[..40]));
    assert_eq!(admin.get("/access/api/v1/cert/ca").text, unformatted);
    assert_eq!(
        admin.get("/access/api/v1/cert/root").text,
        unformatted,
        "the same key, the same certificate"
    );
    assert_eq!(app.anon().get("/access/api/v1/cert/root").status, 401);
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["jfac@*"]);
    let data = decode::<Value>(
        token,
        &DecodingKey::from_ed_pem(pem.as_bytes()).unwrap(),
        &validation,
    )
    .expect("PEM verifies");
    assert_eq!(data.claims["jti"], t["token_id"]);
    assert!(data.claims["sub"]
        .as_str()
        .unwrap()
        .ends_with("/users/admin"));
    assert!(data.claims["iss"].as_str().unwrap().starts_with("jfac@"));
    assert_eq!(data.claims["scp"], "applied-permissions/user");
    // The public JWKS works too, found by `kid`.
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_str(&app.anon().get("/access/api/v1/cert/jwks").text).unwrap();
    let kid = decode_header(token).unwrap().kid.unwrap();
    let jwk = jwks.find(&kid).expect("kid in JWKS");
    decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .expect("JWKS verifies");
    // A changed claim fails the independent check.
    let parts: Vec<&str> = token.split('.').collect();
    use base64::Engine;
    let forged_claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"x/users/root","scp":"applied-permissions/admin","aud":"*@*","iss":"x","iat":1,"jti":"j"}"#);
    let forged = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
    assert!(decode::<Value>(&forged, &DecodingKey::from_jwk(jwk).unwrap(), &validation).is_err());
    assert_eq!(
        bearer(&app, &forged).get("/access/api/v2/users").status,
        401
    );
}

#[test]
fn rotation_keeps_old_tokens_working_and_signs_new_ones_with_the_new_key() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let old = create_token(&admin, json!({"expires_in": 600}));
    let old_kid = jsonwebtoken::decode_header(old["access_token"].as_str().unwrap())
        .unwrap()
        .kid
        .unwrap();
    let r = admin.post_empty("/access/api/v1/cert/root/rotate");
    assert_eq!(r.status, 200, "{}", r.text);
    // A certificate, as `reset` and `cert/root` give (it was a bare public key).
    assert!(r.json()["certificate"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    let new_kid = r.json()["kid"].as_str().unwrap().to_string();
    assert_ne!(new_kid, old_kid);
    let new = create_token(&admin, json!({"expires_in": 600}));
    assert_eq!(
        jsonwebtoken::decode_header(new["access_token"].as_str().unwrap())
            .unwrap()
            .kid
            .unwrap(),
        new_kid
    );
    assert_eq!(
        bearer(&app, old["access_token"].as_str().unwrap())
            .get("/access/api/v2/users")
            .status,
        200
    );
    assert_eq!(
        bearer(&app, new["access_token"].as_str().unwrap())
            .get("/access/api/v2/users")
            .status,
        200
    );
    let kids: Vec<String> = app.anon().get("/access/api/v1/cert/jwks").json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect();
    assert!(kids.contains(&old_kid) && kids.contains(&new_kid));
    // After a restart the keys (private halves from the data directory) still work.
    let dir = app.dir.clone();
    let _tmp = app.stop();
    let app = TestApp::start(dir, Config::default()).unwrap();
    assert_eq!(
        bearer(&app, old["access_token"].as_str().unwrap())
            .get("/access/api/v2/users")
            .status,
        200
    );
    let again = create_token(&app.admin(), json!({"expires_in": 600}));
    assert_eq!(
        jsonwebtoken::decode_header(again["access_token"].as_str().unwrap())
            .unwrap()
            .kid
            .unwrap(),
        new_kid
    );
}

fn wait_for_status(client: &Client, path: &str, status: u16) -> u16 {
    let start = Instant::now();
    loop {
        let s = client.get(path).status;
        if s == status || start.elapsed() > Duration::from_secs(10) {
            return s;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A question any signed-in caller may ask: 403 (not allowed) once the token is taken,
/// 401 when it is not.
const ASK: &str = "/access/api/v1/authorize?resource=r/x&action=read";

#[test]
fn circle_of_trust_between_two_servers_without_restart() {
    let a = TestApp::spawn();
    let b = TestApp::spawn();
    a.create_user("amy", "password-1");
    // Non-revocable (shorter than the 6 h threshold): the kind that crosses servers.
    let t = create_token(&a.admin(), json!({"username": "amy", "expires_in": 600}));
    let on_b = bearer(&b, t["access_token"].as_str().unwrap());
    let path = "/access/api/v2/users/amy";
    let r = on_b.get(path);
    assert_eq!(r.status, 401, "B does not trust A yet");
    assert!(r.error_message().contains("unknown signing key"));
    let pem = a
        .admin()
        .get("/access/api/v1/cert/root?formatted=true")
        .text;
    let r = b.admin().post(
        "/access/api/v1/cert/trusted",
        &json!({"name": "site-a", "certificate": pem}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        b.admin()
            .post(
                "/access/api/v1/cert/trusted",
                &json!({"name": "site-a", "certificate": pem})
            )
            .status,
        409
    );
    assert_eq!(
        b.admin()
            .post(
                "/access/api/v1/cert/trusted",
                &json!({"name": "junk", "certificate": "hello"})
            )
            .status,
        400
    );
    // amy is unknown on B: a transient subject, signed in (asking, refused: 403, not 401).
    assert_eq!(on_b.get(ASK).status, 403, "accepted once trusted");
    assert_eq!(
        b.admin().get("/access/api/v1/cert/trusted").json()["trusted"][0]["name"],
        "site-a"
    );
    // One-way: B's tokens are still unknown to A.
    let tb = create_token(
        &b.admin(),
        json!({"expires_in": 600, "scope": "applied-permissions/admin"}),
    );
    assert_eq!(
        bearer(&a, tb["access_token"].as_str().unwrap())
            .get("/access/api/v2/users")
            .status,
        401
    );
    assert_eq!(
        b.admin()
            .delete("/access/api/v1/cert/trusted/site-a")
            .status,
        204
    );
    assert_eq!(
        on_b.get(ASK).status,
        401,
        "rejected again once trust is removed"
    );
    assert_eq!(
        b.admin()
            .delete("/access/api/v1/cert/trusted/site-a")
            .status,
        404
    );
    // A revocable token from A is not valid on B even with trust (seed 003).
    b.admin().post(
        "/access/api/v1/cert/trusted",
        &json!({"name": "site-a", "certificate": pem}),
    );
    let long = create_token(&a.admin(), json!({"username": "amy", "expires_in": 86400}));
    let r = bearer(&b, long["access_token"].as_str().unwrap()).get(ASK);
    assert_eq!(r.status, 401);
    assert!(r.error_message().contains("revocable"));
    b.admin().delete("/access/api/v1/cert/trusted/site-a");
    // Trust by dropping the PEM into B's trusted/ folder, also without restart.
    std::fs::write(b.dir.join("trusted").join("site-a.pem"), &pem).unwrap();
    assert_eq!(wait_for_status(&on_b, ASK, 403), 403);
}

#[test]
fn signed_urls_valid_expired_tampered_and_after_key_replacement() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.post(
        "/artifactory/api/signed/url",
        &json!({"repo_path": "libs-release/org/acme/app-1.0.jar", "valid_for_secs": 3600}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let url = r.json().as_str().unwrap().to_string();
    assert!(url.contains("/artifactory/libs-release/org/acme/app-1.0.jar?sig="));
    let verify = |u: &str| {
        app.anon().get(&format!(
            "/artifactory/api/signed/url/verify?url={}",
            urlencode(u)
        ))
    };
    let ok = verify(&url);
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.json()["repo_path"], "libs-release/org/acme/app-1.0.jar");
    assert_eq!(
        verify(&url.replace("app-1.0.jar", "app-2.0.jar")).status,
        403,
        "another path"
    );
    let mut tampered = url.clone();
    let exp_at = tampered.find("exp=").unwrap() + 4;
    tampered.replace_range(exp_at..exp_at + 1, "9");
    assert_eq!(verify(&tampered).status, 403, "a longer expiry");
    // A signature parameter given twice: refused (the check took the last, `verify`
    // reported the first: a URL valid for an hour was said valid for centuries).
    for name in ["exp=32503680000000", "sig=AAAA", "v=1"] {
        let twice = url.replacen('?', &format!("?{name}&"), 1);
        let r = verify(&twice);
        assert_eq!(r.status, 403, "{name}: {}", r.text);
        assert!(r.text.contains("more than once"), "{}", r.text);
    }
    let short = admin
        .post(
            "/artifactory/api/signed/url",
            &json!({"repo_path": "libs/a.txt", "valid_for_secs": 1}),
        )
        .json()
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_millis(2100));
    let r = verify(&short);
    assert_eq!(r.status, 403);
    assert!(r.error_message().contains("expired"));
    let server_wide_keys = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(app.dir.join("keys"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("signed-url-") && !n.starts_with("signed-url-org-"))
            .collect();
        v.sort();
        v
    };
    let before = server_wide_keys();
    assert_eq!(before.len(), 1, "{before:?}");
    let r = admin.post_empty("/artifactory/api/signed/url/key");
    assert_eq!(r.status, 201);
    // Only the current key verifies: the one it replaced is no longer kept.
    let version = r.json()["version"].as_u64().unwrap();
    assert_eq!(
        server_wide_keys(),
        vec![format!("signed-url-{version}.secret")]
    );
    let r = verify(&url);
    assert_eq!(r.status, 403, "URLs signed before the key replacement fail");
    let fresh = admin
        .post(
            "/artifactory/api/signed/url",
            &json!({"repo_path": "libs-release/x"}),
        )
        .json()
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(verify(&fresh).status, 200);
    for body in [
        json!({"repo_path": ""}),
        json!({"repo_path": "a/../b"}),
        json!({"repo_path": "a/b", "valid_for_secs": 0}),
        json!({"repo_path": "a/b", "valid_for_secs": 40_000_000}),
        json!({"repo_path": "a/b", "expiry": 1}),
    ] {
        assert_eq!(
            admin.post("/artifactory/api/signed/url", &body).status,
            400,
            "{body}"
        );
    }
    app.create_user("uma", "password-1");
    assert_eq!(
        app.as_user("uma", "password-1")
            .post("/artifactory/api/signed/url", &json!({"repo_path": "a/b"}))
            .status,
        403
    );
}

/// A signed URL names its signer and lends only the signer's right: it ends when the
/// signer could no longer sign it — `manage` taken away, disabled, deleted, an admin no
/// longer one — and holds again when the right comes back before it expires. The
/// signer's name is covered by the signature (dropped or replaced: 403). It kept
/// working for a year after its signer lost every right.
#[test]
fn a_signed_url_holds_only_while_its_signer_may_sign_it() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("dave+ops@example.com", "password-1");
    app.create_user("erin", "password-1");
    let grant = |users: Value| {
        let r = admin.put(
            "/artifactory/api/v2/security/permissions/dl",
            &json!({"name": "dl", "repo": {"repositories": ["libs"], "actions": {"users": users}}}),
        );
        assert!(r.status == 200 || r.status == 201, "{}", r.text);
    };
    grant(json!({"dave+ops@example.com": ["read", "manage"], "erin": ["read", "manage"]}));
    let sign = |user: &str| {
        let r = app.as_user(user, "password-1").post(
            "/artifactory/api/signed/url",
            &json!({"repo_path": "libs/a.txt"}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        r.json().as_str().unwrap().to_string()
    };
    let url = sign("dave+ops@example.com");
    assert!(
        url.contains("&signer=dave%2Bops%40example.com")
            || url.contains("&signer=dave%2Bops@example.com"),
        "{url}"
    );
    let verify = |u: &str| {
        app.anon().get(&format!(
            "/artifactory/api/signed/url/verify?url={}",
            urlencode(u)
        ))
    };
    // nginx's form: the URL's own path and query in X-Original-URI, no credentials.
    let via_nginx = |u: &str| {
        let uri = &u[u.find("/artifactory/").unwrap()..];
        app.anon()
            .get_with(
                "/access/api/v1/authorize",
                &[("X-Original-URI", uri), ("X-Original-Method", "GET")],
            )
            .status
    };
    // authorize's `?resource=` form.
    let via_query = |u: &str| {
        let query = u.split_once('?').unwrap().1;
        app.anon()
            .get(&format!(
                "/access/api/v1/authorize?resource=libs/a.txt&action=read&{query}"
            ))
            .status
    };
    assert_eq!(verify(&url).status, 200, "{}", verify(&url).text);
    assert_eq!(via_nginx(&url), 200);
    assert_eq!(via_query(&url), 200);
    // One URL, one spelling: `exp=+…` is not the number (it was read as one).
    assert_eq!(verify(&url.replace("&exp=", "&exp=+")).status, 403);
    // The signer's name is signed: dropped or replaced, the URL fails.
    let erin_url = sign("erin");
    let (head, _) = url.split_once("&signer=").unwrap();
    assert_eq!(verify(head).status, 403, "without its signer");
    assert_eq!(
        verify(&erin_url.replace("signer=erin", "signer=admin")).status,
        403,
        "another signer"
    );
    // `manage` taken away: every form refuses; given back: it holds again.
    grant(json!({"dave+ops@example.com": ["read"], "erin": ["read", "manage"]}));
    let r = verify(&url);
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.error_message().contains("signer"), "{}", r.text);
    assert_eq!(via_nginx(&url), 401);
    assert_eq!(via_query(&url), 401);
    assert_eq!(verify(&erin_url).status, 200, "erin keeps hers");
    grant(json!({"dave+ops@example.com": ["read", "manage"], "erin": ["read", "manage"]}));
    assert_eq!(verify(&url).status, 200);
    // erin's password expired: her URLs stop, as her tokens do; a new password, and
    // they hold again.
    let r = admin.post_empty("/access/api/v2/users/erin/password/expire");
    assert!(r.status < 300, "{}", r.text);
    let r = verify(&erin_url);
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.error_message().contains("expired"), "{}", r.text);
    assert_eq!(via_nginx(&erin_url), 401);
    let r = admin.raw(
        "POST",
        "/artifactory/api/security/users/authorization/unexpirePassword/erin",
        None,
        None,
    );
    assert!(r.status < 300, "{}", r.text);
    assert_eq!(verify(&erin_url).status, 200);
    // `read` taken away: the URL lends read, which a manage-only user may not give
    // itself (it read anything it managed, without credentials), nor sign anew.
    grant(json!({"dave+ops@example.com": ["manage"], "erin": ["read", "manage"]}));
    assert_eq!(verify(&url).status, 403);
    assert_eq!(via_nginx(&url), 401);
    let r = app.as_user("dave+ops@example.com", "password-1").post(
        "/artifactory/api/signed/url",
        &json!({"repo_path": "libs/a.txt"}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.error_message().contains("`read`"), "{}", r.text);
    grant(json!({"dave+ops@example.com": ["read", "manage"], "erin": ["read", "manage"]}));
    assert_eq!(verify(&url).status, 200);
    // Disabled, then deleted.
    let r = admin.patch(
        "/access/api/v2/users/dave+ops@example.com",
        &json!({"status": "disabled"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(verify(&url).status, 403);
    assert_eq!(verify(&erin_url).status, 200);
    assert_eq!(admin.delete("/access/api/v2/users/erin").status, 204);
    let r = verify(&erin_url);
    assert_eq!(r.status, 403);
    assert!(r.error_message().contains("deleted"), "{}", r.text);
    // A new user under the deleted signer's name is someone else: the URL stays dead.
    app.create_user("erin", "password-1");
    grant(json!({"dave+ops@example.com": ["read", "manage"], "erin": ["read", "manage"]}));
    assert_eq!(verify(&erin_url).status, 403);
    assert_eq!(verify(&sign("erin")).status, 200);
    // A right the credential has and its user does not (an admin-scoped token given to
    // a plain user, a transient identity's admin token) signs nothing: the URL would
    // never verify.
    for (username, scope) in [
        ("erin", "applied-permissions/admin"),
        ("ci-bot", "applied-permissions/admin"),
    ] {
        let t = create_token(
            &admin,
            json!({"username": username, "scope": scope, "expires_in": 600}),
        );
        let r = bearer(&app, t["access_token"].as_str().unwrap()).post(
            "/artifactory/api/signed/url",
            &json!({"repo_path": "private/x.bin"}),
        );
        assert_eq!(r.status, 403, "{username}: {}", r.text);
        assert!(r.error_message().contains("own right"), "{}", r.text);
    }
    // An admin's URL (any path) ends when the signer is no longer an admin.
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "root2", "email": "root2@example.com", "password": "Password-1!", "admin": true}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app.as_user("root2", "Password-1!").post(
        "/artifactory/api/signed/url",
        &json!({"repo_path": "private/b.bin"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let root_url = r.json().as_str().unwrap().to_string();
    assert_eq!(verify(&root_url).status, 200);
    let r = admin.patch("/access/api/v2/users/root2", &json!({"admin": false}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(verify(&root_url).status, 403);
}

/// A signed URL is judged on the path a file server serves: percent-decoded and
/// normalised. A `repo_path` with `%2e%2e` (or a space, `?`, `#`) is a file's name, and
/// the URL encodes it so; a URL whose decoded path climbs out (`..`) never verifies.
#[test]
fn signed_url_paths_are_encoded_in_the_url_and_judged_decoded() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let sign = |repo_path: &str| {
        let r = admin.post(
            "/artifactory/api/signed/url",
            &json!({"repo_path": repo_path, "valid_for_secs": 600}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        r.json().as_str().unwrap().to_string()
    };
    let verify = |u: &str| {
        app.anon().get(&format!(
            "/artifactory/api/signed/url/verify?url={}",
            urlencode(u)
        ))
    };
    // A name with a space, a question mark, a hash and a percent sign.
    let url = sign("libs/public/my file?#%.txt");
    assert!(
        url.contains("/artifactory/libs/public/my%20file%3F%23%25.txt?sig="),
        "{url}"
    );
    let r = verify(&url);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["repo_path"], "libs/public/my file?#%.txt");
    // As nginx asks: the URL's own path and query in X-Original-URI.
    let uri = &url[url.find("/artifactory/").unwrap()..];
    let r = app.anon().get_with(
        "/access/api/v1/authorize",
        &[("X-Original-URI", uri), ("X-Original-Method", "GET")],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // `%2e%2e` in a repo_path is a directory named so, not `..`.
    let url = sign("libs/public/%2e%2e/private/a.txt");
    assert!(url.contains("/public/%252e%252e/private/"), "{url}");
    assert_eq!(verify(&url).status, 200);
    // The same signature on the URL as it was written before (the raw path, which a
    // file server decodes to `libs/private/a.txt`) is refused.
    let raw = url.replace("%252e%252e", "%2e%2e");
    let r = verify(&raw);
    assert_eq!(r.status, 403, "{}", r.text);
    let uri = &raw[raw.find("/artifactory/").unwrap()..];
    let r = app.anon().get_with(
        "/access/api/v1/authorize",
        &[("X-Original-URI", uri), ("X-Original-Method", "GET")],
    );
    assert!(r.status == 400 || r.status == 401, "{}", r.text);
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn pairing_is_single_use_expires_and_records_trust_on_both_sides() {
    let a = TestApp::spawn();
    let b = TestApp::spawn();
    let r = a
        .admin()
        .post_empty("/access/api/v1/service_trust/pairing/federation");
    assert_eq!(r.status, 200, "{}", r.text);
    let pairing = r.json()["pairing_token"].as_str().unwrap().to_string();
    assert_eq!(r.json()["expires_in"], 300);
    // A pairing token is for pairing only.
    assert_eq!(
        bearer(&a, &pairing).get("/access/api/v1/tokens").status,
        401
    );
    let r = b.admin().post(
        "/access/api/v1/service_trust/pairing/initiate",
        &json!({"pairing_token": pairing}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // Trust is recorded on both sides: short-lived tokens now cross both ways.
    a.create_user("ann", "password-1");
    let ta = create_token(&a.admin(), json!({"username": "ann", "expires_in": 600}));
    // Signed in at B (a peer's token is no one's whole identity there: it asks, it does
    // not manage tokens).
    let ann_at_b = bearer(&b, ta["access_token"].as_str().unwrap());
    assert_eq!(
        ann_at_b
            .get("/access/api/v1/authorize?resource=r/x&action=read")
            .status,
        403
    );
    assert_eq!(ann_at_b.get("/access/api/v1/tokens").status, 403);
    let tb = create_token(
        &b.admin(),
        json!({"scope": "applied-permissions/admin", "username": "b-robot", "expires_in": 600}),
    );
    assert_eq!(
        bearer(&a, tb["access_token"].as_str().unwrap())
            .get("/access/api/v2/users")
            .status,
        200
    );
    let b_id = b.digest()["service_id"].as_str().unwrap().to_string();
    let listed = a
        .admin()
        .get("/access/api/v1/service_trust/pairing/federation")
        .json();
    assert_eq!(listed["pairings"][0]["service_id"], b_id.as_str());
    assert_eq!(
        b.admin()
            .get("/access/api/v1/service_trust/pairing/federation")
            .json()["pairings"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Single use.
    let c = TestApp::spawn();
    let r = c.admin().post(
        "/access/api/v1/service_trust/pairing/initiate",
        &json!({"pairing_token": pairing}),
    );
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("used already"), "{}", r.text);
    assert_eq!(
        c.admin()
            .post(
                "/access/api/v1/service_trust/pairing/initiate",
                &json!({"pairing_token": "nope"})
            )
            .status,
        400
    );
    assert_eq!(
        c.admin()
            .post_empty("/access/api/v1/service_trust/pairing/bad%20case")
            .status,
        400
    );
}

#[test]
fn an_expired_pairing_token_is_refused() {
    let a = TestApp::spawn_with(Config {
        pairing_token_expiry: 1,
        ..Config::default()
    });
    let b = TestApp::spawn();
    let pairing = a
        .admin()
        .post_empty("/access/api/v1/service_trust/pairing/federation")
        .json()["pairing_token"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_millis(2100));
    let r = b.admin().post(
        "/access/api/v1/service_trust/pairing/initiate",
        &json!({"pairing_token": pairing}),
    );
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("expired"), "{}", r.text);
    assert_eq!(
        b.admin().get("/access/api/v1/cert/trusted").json()["trusted"],
        json!([])
    );
}

/// Findings of a review, each a way to keep or gain access one should not have.
#[test]
fn narrowed_tokens_recreated_users_expired_passwords_and_huge_expiries() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("alice", "password-1");
    app.create_group("readers");
    // A groups-only token for alice cannot act as alice herself.
    let t = create_token(
        &admin,
        json!({"username": "alice", "scope": "applied-permissions/groups:readers", "expires_in": 600}),
    );
    let narrow = bearer(&app, t["access_token"].as_str().unwrap());
    assert_eq!(
        narrow
            .put(
                "/access/api/v2/users/alice/password",
                &json!({"password": "taken-over-1"})
            )
            .status,
        403
    );
    assert_eq!(
        narrow
            .post("/access/api/v1/tokens", &json!({"expires_in": 0}))
            .status,
        403
    );
    // A user-scoped token of alice may.
    let full = create_token(
        &app.as_user("alice", "password-1"),
        json!({"expires_in": 86400, "refreshable": true}),
    );
    let short = create_token(
        &app.as_user("alice", "password-1"),
        json!({"expires_in": 600}),
    );
    // Her password expires: her tokens stop working too (except for changing it).
    admin.post_empty("/access/api/v2/users/alice/password/expire");
    let r = bearer(&app, full["access_token"].as_str().unwrap()).get("/access/api/v2/users/alice");
    assert_eq!(r.status, 403, "{}", r.text);
    // Nor is the pair refreshed (it was: a new pair that worked no better).
    let r = app.anon().raw(
        "POST",
        "/access/api/v1/tokens",
        Some("application/x-www-form-urlencoded"),
        Some(
            format!(
                "grant_type=refresh_token&refresh_token={}&access_token={}",
                full["refresh_token"].as_str().unwrap(),
                full["access_token"].as_str().unwrap()
            )
            .as_bytes(),
        ),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.text.contains("expired"), "{}", r.text);
    admin.put(
        "/access/api/v2/users/alice/password",
        &json!({"password": "password-2"}),
    );
    assert_eq!(
        bearer(&app, full["access_token"].as_str().unwrap())
            .get("/access/api/v2/users/alice")
            .status,
        200
    );
    // Delete and re-create `alice`: the old tokens belong to someone else.
    admin.delete("/access/api/v2/users/alice");
    app.create_user("alice", "password-3");
    for token in [&full["access_token"], &short["access_token"]] {
        assert_eq!(
            bearer(&app, token.as_str().unwrap())
                .get("/access/api/v2/users/alice")
                .status,
            401
        );
    }
    let r = app.as_user("alice", "password-3").post(
        "/access/api/v1/tokens",
        &json!({"grant_type": "refresh_token", "refresh_token": full["refresh_token"]}),
    );
    assert_eq!(r.status, 400, "the old refresh token is gone: {}", r.text);
    // Overflowing expiries are refused.
    let r = admin.post("/access/api/v1/tokens", &json!({"expires_in": u64::MAX}));
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("expires_in"));
    // A disabled user is not locked by failed sign-ins (unlock would re-enable it).
    app.create_user("dora", "password-1");
    admin.patch("/access/api/v2/users/dora", &json!({"status": "disabled"}));
    for _ in 0..6 {
        app.as_user("dora", "wrong-password")
            .get("/access/api/v2/users/dora");
    }
    assert_eq!(
        admin.get("/access/api/v2/users/dora").json()["status"],
        "disabled"
    );
}

/// The ids of the token records the server lists.
fn listed_ids(admin: &Client) -> Vec<String> {
    let list = admin.get("/access/api/v1/tokens").json();
    list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["token_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn records_of_tokens_past_use_are_forgotten_by_the_sweep() {
    // Kept as records from 1 s of life; a refresh token works 6 s past expiry; the
    // sweep looks every second.
    let app = TestApp::spawn_with(Config {
        revocable_expiry_threshold: 1,
        refresh_grace_period: 6,
        token_sweep_seconds: 1,
        ..Config::default()
    });
    let admin = app.admin();
    let plain = create_token(&admin, json!({"description": "plain", "expires_in": 2}));
    let refreshable = create_token(
        &admin,
        json!({"description": "refreshable", "expires_in": 2, "refreshable": true}),
    );
    let kept = create_token(&admin, json!({"description": "kept", "expires_in": 3600}));
    let forever = create_token(&admin, json!({"description": "forever", "expires_in": 0}));
    let id = |t: &Value| t["token_id"].as_str().unwrap().to_string();
    assert_eq!(listed_ids(&admin).len(), 4);

    // The plain one goes once expired; the refreshable one stays through its grace.
    let deadline = Instant::now() + Duration::from_secs(20);
    while listed_ids(&admin).contains(&id(&plain)) {
        assert!(
            Instant::now() < deadline,
            "an expired token was never forgotten"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let now = listed_ids(&admin);
    assert!(
        now.contains(&id(&refreshable)),
        "forgotten within its refresh grace"
    );
    assert!(now.contains(&id(&kept)) && now.contains(&id(&forever)));

    while listed_ids(&admin).contains(&id(&refreshable)) {
        assert!(
            Instant::now() < deadline,
            "a refreshable token past its grace was never forgotten"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = admin.post(
        "/access/api/v1/tokens",
        &json!({"grant_type": "refresh_token", "refresh_token": refreshable["refresh_token"]}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    // Tokens still in use stay, and forgetting is a logged event like any other.
    let mut left = listed_ids(&admin);
    left.sort();
    let mut want = vec![id(&kept), id(&forever)];
    want.sort();
    assert_eq!(left, want);
    let audit = admin
        .get("/access/api/v1/audit/events?type=TokensExpired&limit=10")
        .json();
    assert!(
        audit.to_string().contains(&id(&plain)),
        "no TokensExpired event in the audit trail: {audit}"
    );
}

/// A form body's names and values are percent- and plus-decoded, and a field given twice
/// is refused, naming it (form bodies are read pair by pair into the field map).
#[test]
fn a_form_body_is_decoded_and_a_repeated_field_is_refused() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let issue = |body: &[u8]| {
        admin.raw(
            "POST",
            "/access/api/v1/tokens",
            Some("application/x-www-form-urlencoded"),
            Some(body),
        )
    };
    let r = issue(b"scope=applied-permissions/user&expires_in=600&scope=applied-permissions/user");
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.text.contains("`scope`") && r.text.contains("more than once"),
        "{}",
        r.text
    );
    let r = issue(
        b"scope=applied-permissions%2Fuser&expires_in=86400&descr%69ption=nightly+build%20%26%20tests",
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // Long enough to be kept as a record, and listed with its description.
    let id = r.json()["token_id"].as_str().unwrap().to_string();
    let list = admin.get("/access/api/v1/tokens").json();
    let listed = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["token_id"] == id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(listed["description"], "nightly build & tests");
}

/// A token its subject issued for itself grants beyond the user's own rights only while
/// the user holds them: a demoted admin's admin token is no longer admin (nor is its
/// refresh), and a group-scoped token stops granting a group its user has left. Before,
/// both kept what they had at issue, and the demoted admin could re-promote itself.
/// A token an admin issues for another user is the admin's grant, and keeps its scope.
#[test]
fn a_self_issued_token_follows_its_users_admin_standing_and_groups() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.post(
        "/access/api/v2/groups",
        &json!({"name": "admins-g", "admin_privileges": true}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    app.create_group("writers");
    app.create_user("dave", "Dave-password-1");
    app.create_user("bob", "Bob-password-1");
    app.create_user("carl", "Carl-password-1");
    for (user, group) in [("dave", "admins-g"), ("bob", "writers")] {
        let r = admin.patch(
            &format!("/access/api/v2/users/{user}/groups"),
            &json!({"add": [group]}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/w",
        &json!({"repo": {"repositories": ["libs"], "actions": {"groups": {"writers": ["read", "write"]}}}}),
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    let dave = app.as_user("dave", "Dave-password-1");
    let own = create_token(
        &dave,
        json!({"scope": "applied-permissions/admin", "refreshable": true, "expires_in": 86400}),
    );
    let bob_token = create_token(
        &app.as_user("bob", "Bob-password-1"),
        json!({"scope": "applied-permissions/groups:writers", "expires_in": 600}),
    );
    let delegated = create_token(
        &admin,
        json!({"username": "carl", "scope": "applied-permissions/admin", "expires_in": 86400}),
    );
    let access = own["access_token"].as_str().unwrap();
    assert_eq!(bearer(&app, access).get("/access/api/v2/users").status, 200);
    let write = |token: &str| {
        bearer(&app, token)
            .get("/access/api/v1/authorize?resource=libs/x&action=write")
            .status
    };
    assert_eq!(write(bob_token["access_token"].as_str().unwrap()), 200);

    // Dave leaves the admins' group, bob the writers.
    for (user, group) in [("dave", "admins-g"), ("bob", "writers")] {
        let r = admin.patch(
            &format!("/access/api/v2/users/{user}/groups"),
            &json!({"remove": [group]}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(bearer(&app, access).get("/access/api/v2/users").status, 403);
    assert_eq!(write(bob_token["access_token"].as_str().unwrap()), 403);
    // Nor does it re-promote its user, or refresh into an admin token: its only scope
    // is no longer held, so there is nothing to refresh.
    let r = bearer(&app, access).patch(
        "/access/api/v2/users/dave/groups",
        &json!({"add": ["admins-g"]}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    let r = app.anon().post(
        "/access/api/v1/tokens",
        &json!({"grant_type": "refresh_token",
                "refresh_token": own["refresh_token"].as_str().unwrap(),
                "access_token": access}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    // A token with its user scope too refreshes to that scope alone.
    let r = admin.patch(
        "/access/api/v2/users/dave/groups",
        &json!({"add": ["admins-g"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let both = create_token(
        &dave,
        json!({"scope": "applied-permissions/user applied-permissions/admin", "refreshable": true, "expires_in": 86400}),
    );
    let r = admin.patch(
        "/access/api/v2/users/dave/groups",
        &json!({"remove": ["admins-g"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.anon().post(
        "/access/api/v1/tokens",
        &json!({"grant_type": "refresh_token",
                "refresh_token": both["refresh_token"].as_str().unwrap(),
                "access_token": both["access_token"].as_str().unwrap()}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json()["scope"],
        json!("applied-permissions/user"),
        "{}",
        r.text
    );
    // An admin's grant to another user is kept.
    let carl = delegated["access_token"].as_str().unwrap();
    assert_eq!(bearer(&app, carl).get("/access/api/v2/users").status, 200);
}

/// Seed 004: `me` is "the currently used token" — also one the server keeps no record
/// of (shorter-lived than the revocable threshold); `force_revocable` is said in the
/// token's extension; a groups-only token is not its user: it lists nothing and revokes
/// only itself; a token of a transient identity is not refreshed once a user of that
/// name exists; a token without expiry from a trusted JFrog is revocable, so refused.
#[test]
fn the_token_in_hand_and_what_a_narrow_token_may_do() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("alice", "Alice-password-1");
    app.create_group("g1");
    let r = admin.patch(
        "/access/api/v2/groups/g1/members",
        &json!({"add": ["alice"]}),
    );
    assert!(r.status == 200 || r.status == 204, "{}", r.text);
    let alice = app.as_user("alice", "Alice-password-1");

    let short = create_token(&alice, json!({"expires_in": 600}));
    let in_hand = bearer(&app, short["access_token"].as_str().unwrap());
    let me = in_hand.get("/access/api/v1/tokens/me");
    assert_eq!(me.status, 200, "{}", me.text);
    let me = me.json();
    assert_eq!(me["token_id"], short["token_id"], "{me}");
    assert_eq!(me["refreshable"], false);
    assert!(
        me["subject"].as_str().unwrap().ends_with("/users/alice"),
        "{me}"
    );
    let (iat, exp) = (
        me["issued_at"].as_u64().unwrap(),
        me["expiry"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 600, "{me}");
    // By its id it is not found: nothing is recorded (and the answer says what to ask).
    let r = alice.get(&format!(
        "/access/api/v1/tokens/{}",
        short["token_id"].as_str().unwrap()
    ));
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(r.error_message().contains("me"), "{}", r.text);

    let forced = create_token(&alice, json!({"expires_in": 600, "force_revocable": true}));
    let ext = claims(forced["access_token"].as_str().unwrap())["ext"].clone();
    let ext: Value = serde_json::from_str(ext.as_str().unwrap()).unwrap();
    assert_eq!(ext["force_revocable"], "true", "{ext}");
    assert_eq!(ext["revocable"], "true", "{ext}");
    // A refresh carries the flag on (it was lost).
    let pair = create_token(
        &alice,
        json!({"expires_in": 600, "force_revocable": true, "refreshable": true}),
    );
    let r = alice.raw(
        "POST",
        "/access/api/v1/tokens",
        Some("application/x-www-form-urlencoded"),
        Some(
            format!(
                "grant_type=refresh_token&refresh_token={}",
                pair["refresh_token"].as_str().unwrap()
            )
            .as_bytes(),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let ext = claims(r.json()["access_token"].as_str().unwrap())["ext"].clone();
    let ext: Value = serde_json::from_str(ext.as_str().unwrap()).unwrap();
    assert_eq!(ext["force_revocable"], "true", "{ext}");
    let plain = create_token(&alice, json!({"expires_in": 600}));
    let ext = claims(plain["access_token"].as_str().unwrap())["ext"].clone();
    assert!(
        !ext.as_str().unwrap_or("").contains("force_revocable"),
        "{ext}"
    );

    // A groups-only token (a CI job's) is not alice.
    let whole = create_token(&alice, json!({"expires_in": 86400}));
    let narrow = create_token(
        &alice,
        json!({"scope": "applied-permissions/groups:g1", "expires_in": 86400}),
    );
    let ci = bearer(&app, narrow["access_token"].as_str().unwrap());
    assert_eq!(ci.get("/access/api/v1/tokens").status, 403);
    let r = ci.delete(&format!(
        "/access/api/v1/tokens/{}",
        whole["token_id"].as_str().unwrap()
    ));
    assert_eq!(r.status, 403, "{}", r.text);
    let r = ci.post(
        "/access/api/v1/tokens/revoke",
        &json!({"token": whole["access_token"]}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    let alice_token = bearer(&app, whole["access_token"].as_str().unwrap());
    assert_eq!(alice_token.get("/access/api/v1/tokens").status, 200);
    // It may revoke itself (seed 004).
    let r = ci.delete(&format!(
        "/access/api/v1/tokens/{}",
        narrow["token_id"].as_str().unwrap()
    ));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        ci.get("/access/api/v1/authorize?resource=r/x&action=read")
            .status,
        401
    );
    // Alice herself lists and revokes.
    assert_eq!(alice.get("/access/api/v1/tokens").status, 200);
    let r = alice.delete(&format!(
        "/access/api/v1/tokens/{}",
        whole["token_id"].as_str().unwrap()
    ));
    assert_eq!(r.status, 200, "{}", r.text);

    // A trailing comma names an empty group, not an empty scope.
    let r = admin.post(
        "/access/api/v1/tokens",
        &json!({"username": "svc", "scope": "applied-permissions/groups:g1,"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.error_message().contains("empty group"), "{}", r.text);

    // A transient identity's refreshable token, then a user of its name.
    let ghost = create_token(
        &admin,
        json!({"username": "ghost", "scope": "applied-permissions/groups:g1",
               "expires_in": 86400, "refreshable": true}),
    );
    app.create_user("ghost", "Ghost-password-1");
    let r = app.anon().post(
        "/access/api/v1/tokens",
        &json!({"grant_type": "refresh_token", "refresh_token": ghost["refresh_token"],
                "access_token": ghost["access_token"]}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.error_message().contains("transient"), "{}", r.text);
}

/// The claims of a JWT, read without verifying (what a client sees).
fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// A pairing the initiating server would refuse — it trusts a different key under the
/// peer's name (the peer rotated its key since an earlier pairing) — is refused before
/// the peer is called: the peer neither uses up its pairing token nor issues a master
/// token for a trust that never came about; once the stale key is removed, the same
/// pairing token pairs.
#[test]
fn a_pairing_refused_here_leaves_nothing_at_the_peer() {
    let a = TestApp::spawn();
    let b = TestApp::spawn();
    let pair = |use_case: &str| -> (String, crate::helpers::Resp) {
        let r = a
            .admin()
            .post_empty(&format!("/access/api/v1/service_trust/pairing/{use_case}"));
        assert_eq!(r.status, 200, "{}", r.text);
        let token = r.json()["pairing_token"].as_str().unwrap().to_string();
        let r = b.admin().post(
            "/access/api/v1/service_trust/pairing/initiate",
            &json!({"pairing_token": token}),
        );
        (token, r)
    };
    let (_, r) = pair("federation");
    assert_eq!(r.status, 200, "{}", r.text);
    let masters = || crate::helpers::pairing_master_tokens(&a.admin());
    assert_eq!(masters(), 1);
    let r = a.admin().post_empty("/access/api/v1/cert/root/rotate");
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    let (token, r) = pair("mission-control");
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(r.error_message().contains("remove it first"), "{}", r.text);
    assert_eq!(masters(), 1, "no master token for a pairing that failed");
    // The stale key removed, the same (unused) pairing token pairs.
    let a_id = a.digest()["service_id"].as_str().unwrap().to_string();
    let r = b
        .admin()
        .delete(&format!("/access/api/v1/cert/trusted/{a_id}"));
    assert_eq!(r.status, 204, "{}", r.text);
    let r = b.admin().post(
        "/access/api/v1/service_trust/pairing/initiate",
        &json!({"pairing_token": token}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(masters(), 2);
}

/// A revoke that meets a refresh of the same token: whichever comes first, the answer
/// is true — never "Token revoked" while the refresh's new token lives on.
#[test]
fn a_revoke_raced_by_a_refresh_never_says_revoked_for_nothing() {
    let app = TestApp::spawn();
    app.create_user("rr", "Rr-password-1");
    for round in 0..20 {
        let t = create_token(
            &app.admin(),
            json!({"username": "rr", "refreshable": true, "expires_in": 86400}),
        );
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let (b1, b2) = (barrier.clone(), barrier);
        let (c1, c2) = (app.anon(), app.admin());
        let pair = json!({"grant_type": "refresh_token", "refresh_token": t["refresh_token"],
                          "access_token": t["access_token"]});
        let refresher = std::thread::spawn(move || {
            b1.wait();
            c1.post("/access/api/v1/tokens", &pair)
        });
        let id = t["token_id"].as_str().unwrap().to_string();
        let revoker = std::thread::spawn(move || {
            b2.wait();
            c2.delete(&format!("/access/api/v1/tokens/{id}")).status
        });
        let refreshed = refresher.join().unwrap();
        let revoked = revoker.join().unwrap();
        if revoked == 200 && refreshed.status == 200 {
            let new = refreshed.json()["access_token"]
                .as_str()
                .unwrap()
                .to_string();
            let works = bearer(&app, &new).get(ASK).status != 401;
            assert!(
                !works,
                "round {round}: revoked (200) and refreshed (200), the new token works"
            );
        }
    }
}

/// Answers that show a secret once — a token, a refreshed pair, a pairing token, an
/// access key's generated password — say `Cache-Control: no-store`.
#[test]
fn answers_that_carry_a_secret_are_not_stored_by_caches() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("ci", "Ci-password-1");
    let r = admin.post(
        "/access/api/v1/tokens",
        &json!({"username": "ci", "scope": "applied-permissions/user", "refreshable": true}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let pair = r.json();
    let r = app.anon().raw(
        "POST",
        "/access/api/v1/tokens",
        Some("application/x-www-form-urlencoded"),
        Some(
            format!(
                "grant_type=refresh_token&refresh_token={}&access_token={}",
                pair["refresh_token"].as_str().unwrap(),
                pair["access_token"].as_str().unwrap()
            )
            .as_bytes(),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let r = admin.post_empty("/access/api/v1/service_trust/pairing/federation");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let r = admin.post("/access/api/v1/orgs/o/access_keys", &json!({"id": "k"}));
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.json()["password"].is_string(), "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let r = admin.post(
        "/artifactory/api/signed/url",
        &json!({"repo_path": "libs-release/org/a.jar"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    // An ordinary read says nothing of caching.
    let r = admin.get("/access/api/v1/tokens");
    assert_eq!(r.header("cache-control"), None);
}

/// A token that names this server as its issuer is this server's only if one of its own
/// keys signed it: a trusted peer's key signing one with this server's `iss` passed for
/// a local token, and minted tokens here that a peer's are refused (and that servers
/// trusting this one, but not the peer, then accepted).
#[test]
fn a_peer_key_cannot_sign_tokens_in_this_servers_name() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let key = ed25519_dalek::SigningKey::from_bytes(&[5u8; 32]);
    let public = key.verifying_key();
    let kid = gatehouse::keys::kid_of(&public);
    let r = admin.post(
        "/access/api/v1/cert/trusted",
        &json!({"name": "peer-p", "certificate": gatehouse::keys::public_pem(&public)}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let own_id = app.digest()["service_id"].as_str().unwrap().to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let forge = |iss: &str| {
        gatehouse::auth::jwt::sign(
            &gatehouse::auth::jwt::Claims {
                sub: format!("{iss}/users/admin"),
                scp: "applied-permissions/admin".into(),
                aud: "*@*".into(),
                iss: iss.into(),
                iat: now,
                exp: Some(now + 300),
                nbf: None,
                jti: format!("forged-{iss}"),
                ext: None,
            },
            &kid,
            &gatehouse::keys::PrivateKey::from_seed(&key.to_bytes()).expect("a seed is a key"),
        )
    };
    let mint = |token: &str| {
        Client::new(&app.base, None)
            .with_header_auth(&format!("Bearer {token}"))
            .raw(
                "POST",
                "/access/api/v1/tokens",
                Some("application/x-www-form-urlencoded"),
                Some(b"username=admin&scope=applied-permissions/admin&expires_in=3600"),
            )
    };
    // The peer, as itself: its token works here, but mints nothing.
    let honest = forge("jfac@01peerpeerpeerpeerpeerpeer");
    let r = mint(&honest);
    assert_eq!(r.status, 403, "{}", r.text);
    // The peer, in this server's name: refused outright (it minted an admin token).
    let spoofed = forge(&own_id);
    let r = mint(&spoofed);
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.text.contains("not signed with its keys"), "{}", r.text);
    let r = Client::new(&app.base, None)
        .with_header_auth(&format!("Bearer {spoofed}"))
        .get("/access/api/v2/users");
    assert_eq!(r.status, 401, "{}", r.text);
    // The JWKS is this server's own keys, each once: not the peer's (a verifier of this
    // server's tokens took a peer's key for this server's), even trusted under two names.
    let r = admin.post(
        "/access/api/v1/cert/trusted",
        &json!({"name": "peer-p-again", "certificate": gatehouse::keys::public_pem(&public)}),
    );
    assert!(r.status == 201 || r.status == 409, "{}", r.text);
    let kids: Vec<String> = app.anon().get("/access/api/v1/cert/jwks").json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect();
    assert!(!kids.contains(&kid), "{kids:?}");
    assert_eq!(kids.len(), 1, "{kids:?}");

    // Finding: `nbf`, an `iat` in the future and a `crit` header were not looked at: a
    // trusted peer's token was taken before it was valid (RFC 7519 §4.1.5, RFC 7515
    // §4.1.11). Tokens written by hand, as a JWT library would.
    use base64::Engine as _;
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    let signer = gatehouse::keys::PrivateKey::from_seed(&key.to_bytes()).unwrap();
    let peer = "jfac@01peerpeerpeerpeerpeerpeer";
    let by_hand = |header: Value, extra: Value| {
        let mut claims = json!({"sub": format!("{peer}/users/admin"),
            "scp": "applied-permissions/user", "aud": "*@*", "iss": peer, "iat": now,
            "exp": now + 300, "jti": "by-hand"});
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        let input = format!("{}.{}", b64(&header), b64(&claims));
        let sig =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signer.sign(input.as_bytes()));
        format!("{input}.{sig}")
    };
    let use_it = |token: &str| {
        Client::new(&app.base, None)
            .with_header_auth(&format!("Bearer {token}"))
            .get("/access/api/v2/users/admin")
    };
    let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": kid});
    assert_eq!(use_it(&by_hand(header.clone(), json!({}))).status, 200);
    // `tokens/me` names the peer as issuer and subject (it named this server).
    let me = Client::new(&app.base, None)
        .with_header_auth(&format!("Bearer {}", by_hand(header.clone(), json!({}))))
        .get("/access/api/v1/tokens/me");
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json()["issuer"], json!(peer), "{}", me.text);
    assert_eq!(
        me.json()["subject"],
        json!(format!("{peer}/users/admin")),
        "{}",
        me.text
    );
    assert_eq!(
        use_it(&by_hand(header.clone(), json!({"nbf": now - 10}))).status,
        200
    );
    for (header, extra, why) in [
        (header.clone(), json!({"nbf": now + 3600}), "nbf"),
        (
            header.clone(),
            json!({"iat": now + 3600, "exp": now + 7200}),
            "iat",
        ),
        (
            json!({"alg": "EdDSA", "typ": "JWT", "kid": kid, "crit": ["exp2"], "exp2": 1}),
            json!({}),
            "crit",
        ),
        (
            json!({"alg": "EdDSA", "typ": "JWT", "kid": kid, "crit": null}),
            json!({}),
            "crit null",
        ),
    ] {
        let r = use_it(&by_hand(header, extra));
        assert_eq!(r.status, 401, "{why}: {}", r.text);
    }
}

/// Group names with a space or a comma are written in double quotes, as JFrog documents
/// (`applied-permissions/groups:"group 2","group,3"`); a group named like a scope word
/// is a group, never that word. A token that does nothing here says so when it is made:
/// groups that do not exist, an audience that leaves this server out. `jfrt@*` (a
/// token meant for Artifactory) is this server's.
#[test]
fn quoted_group_scopes_and_tokens_that_would_do_nothing_here() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("alice", "Password-123!");
    for group in ["qa team", "a,b", "x system:livelogs:r"] {
        let r = admin.post(
            "/access/api/v2/groups",
            &json!({"name": group, "members": ["alice"]}),
        );
        assert_eq!(r.status, 201, "{group}: {}", r.text);
    }
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/qa",
        &json!({"name": "qa", "repo": {"repositories": ["libs"], "actions": {"groups": {"qa team": ["read"], "a,b": ["write"]}}}}),
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    let alice = app.as_user("alice", "Password-123!");
    let t = create_token(
        &alice,
        json!({"scope": "applied-permissions/groups:\"qa team\",\"a,b\"", "expires_in": 600}),
    );
    let token = t["access_token"].as_str().unwrap();
    let ask = |action: &str| {
        bearer(&app, token)
            .get(&format!(
                "/access/api/v1/authorize?resource=libs/x.jar&action={action}"
            ))
            .status
    };
    assert_eq!(ask("read"), 200);
    assert_eq!(ask("write"), 200);
    assert_eq!(ask("delete"), 403);
    // A group named with a scope word in it is that group, not the word (a scope word
    // alone from a non-admin is refused; as a group of hers, it is taken).
    let r = alice.post(
        "/access/api/v1/tokens",
        &json!({"scope": "system:livelogs:r", "expires_in": 600}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    let t = create_token(
        &alice,
        json!({"scope": "applied-permissions/groups:\"x system:livelogs:r\"", "expires_in": 600}),
    );
    let scoped = bearer(&app, t["access_token"].as_str().unwrap());
    assert_eq!(scoped.get("/access/api/v2/users").status, 403);
    // Quotes that do not close: 400.
    let r = alice.post(
        "/access/api/v1/tokens",
        &json!({"scope": "applied-permissions/groups:\"qa team", "expires_in": 600}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    // Notices: a group that does not exist (admins may name any), an audience of
    // another service.
    let r = admin.post(
        "/access/api/v1/tokens",
        &json!({"username": "ci", "scope": "applied-permissions/groups:nosuch", "expires_in": 600}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let notice = r.header("x-gatehouse-notice").unwrap_or_default();
    assert!(notice.contains("`nosuch`"), "{notice}");
    let r = alice.post(
        "/access/api/v1/tokens",
        &json!({"audience": "jfxr@*", "expires_in": 600}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let notice = r.header("x-gatehouse-notice").unwrap_or_default();
    assert!(notice.contains("does not include this server"), "{notice}");
    let other = r.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        bearer(&app, &other)
            .get("/access/api/v2/users/alice")
            .status,
        401
    );
    // `jfrt@*`: a token for Artifactory, which this server answers for.
    let r = alice.post(
        "/access/api/v1/tokens",
        &json!({"audience": "jfrt@*", "expires_in": 600}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.header("x-gatehouse-notice").is_none(),
        "{:?}",
        r.header("x-gatehouse-notice")
    );
    let rt = r.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        bearer(&app, &rt).get("/access/api/v2/users/alice").status,
        200
    );
}

/// An empty form value is a value not given (`expires_in=` from a script's unset
/// variable was a 400), and a number too large is said to be one in a form as in JSON.
#[test]
fn empty_form_values_are_not_given_and_large_numbers_say_so() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let form = |body: &str| {
        admin.raw(
            "POST",
            "/access/api/v1/tokens",
            Some("application/x-www-form-urlencoded"),
            Some(body.as_bytes()),
        )
    };
    let r = form("username=ci&scope=applied-permissions/user&expires_in=&refreshable=");
    assert_eq!(r.status, 400, "ci does not exist: {}", r.text);
    app.create_user("ci", "password-1");
    let r = form("username=ci&expires_in=&refreshable=");
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json().get("refresh_token").is_none(), "{}", r.text);
    let r = form("username=ci&expires_in=99999999999999999999");
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.error_message().contains("too large"), "{}", r.text);
}

/// A CI job's token for a user that does not exist (a transient identity) reads and
/// revokes itself, by `me` and by its id, as any token may (seed 004); it was refused as
/// "another user's token".
#[test]
fn a_transient_token_reads_and_revokes_itself() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_group("g2");
    for by_id in [false, true] {
        let r = admin.raw(
            "POST",
            "/access/api/v1/tokens",
            Some("application/x-www-form-urlencoded"),
            Some(b"scope=applied-permissions/groups:g2&username=ghost4&expires_in=86400"),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        let token = r.json()["access_token"].as_str().unwrap().to_string();
        let id = r.json()["token_id"].as_str().unwrap().to_string();
        let ci = app.anon().with_header_auth(&format!("Bearer {token}"));
        let me = ci.get("/access/api/v1/tokens/me");
        assert_eq!(me.status, 200, "{}", me.text);
        assert_eq!(me.json()["token_id"], json!(id));
        let path = if by_id {
            format!("/access/api/v1/tokens/{id}")
        } else {
            "/access/api/v1/tokens/me".into()
        };
        let r = ci.delete(&path);
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(ci.get("/access/api/v1/tokens/me").status, 401);
    }
}

/// A token an admin issues for a user whose password has expired is refused at its
/// first use until the user changes it: the answer says so at once.
#[test]
fn a_token_for_a_user_whose_password_expired_says_it_will_be_refused() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("dave", "password-1");
    let r = admin.post_empty("/access/api/v2/users/dave/password/expire");
    assert!(r.status < 300, "{}", r.text);
    let r = admin.post("/access/api/v1/tokens", &json!({"username": "dave"}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.header("x-gatehouse-notice")
            .is_some_and(|n| n.contains("password of `dave` has expired")),
        "{:?}",
        r.header("x-gatehouse-notice")
    );
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        bearer(&app, &token).get("/access/api/v1/tokens/me").status,
        403
    );
    let r = admin.post("/access/api/v1/tokens", &json!({"username": "admin"}));
    assert!(r.header("x-gatehouse-notice").is_none(), "{}", r.text);
}

/// From a review: `exp` and `v` with leading zeros verified (other spellings of one
/// signed URL); two key replacements at once left the loser's key on disk under the
/// winner's version (URLs signed meanwhile stopped verifying); a trusted RSA key of 512
/// bits was taken.
#[test]
fn signed_url_spellings_key_races_and_weak_trusted_keys() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let verify = |u: &str| {
        app.anon().get(&format!(
            "/artifactory/api/signed/url/verify?url={}",
            urlencode(u)
        ))
    };
    let sign = || {
        let r = admin.post(
            "/artifactory/api/signed/url",
            &json!({"repo_path": "libs-release/r.txt", "valid_for_secs": 3600}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        r.json().as_str().unwrap().to_string()
    };
    let url = sign();
    assert_eq!(verify(&url).status, 200);
    for param in ["exp=", "v="] {
        let at = url.find(param).unwrap() + param.len();
        let mut zero = url.clone();
        zero.insert(at, '0');
        assert_eq!(verify(&zero).status, 403, "{zero}");
    }
    for _ in 0..5 {
        let urls: Vec<String> = std::thread::scope(|s| {
            let keys: Vec<_> = (0..2)
                .map(|_| s.spawn(|| admin.post_empty("/artifactory/api/signed/url/key").status))
                .collect();
            let signed: Vec<_> = (0..3).map(|_| s.spawn(sign)).collect();
            for k in keys {
                assert_eq!(k.join().unwrap(), 201);
            }
            signed.into_iter().map(|h| h.join().unwrap()).collect()
        });
        // Every URL signed with the version now current verifies (a fresh one tells it).
        let v_of = |u: &str| {
            u.split("v=")
                .nth(1)
                .and_then(|v| v.split('&').next())
                .unwrap()
                .to_string()
        };
        let fresh = sign();
        assert_eq!(verify(&fresh).status, 200);
        for u in urls.iter().filter(|u| v_of(u) == v_of(&fresh)) {
            let r = verify(u);
            assert_eq!(
                r.status, 200,
                "signed with the current key: {u}: {}",
                r.text
            );
        }
    }
    let weak = "-----BEGIN PUBLIC KEY-----\nMFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBANGEiLXPhFpyU3g8RGDppOW39Jiac1LU\nxbwsy1EsoHDO30gIafddnY7ngV9n0HR061tndyPsFz/tVM3T8uIKizECAwEAAQ==\n-----END PUBLIC KEY-----\n";
    let r = admin.post(
        "/access/api/v1/cert/trusted",
        &json!({"name": "weak", "certificate": weak}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("512 bits"), "{}", r.text);
}

/// Token parameters are read from the body, as JFrog reads them; a query string is not,
/// and the answer says so (`curl -X POST '…/tokens?username=ci'` got a token for its
/// caller, with the default scope, without a word) — on Artifactory's API too.
#[test]
fn a_query_string_on_a_token_request_is_said_not_read() {
    let app = TestApp::spawn();
    let admin = app.admin();
    for path in [
        "/access/api/v1/tokens?username=ci-bot&scope=applied-permissions%2Fadmin",
        "/artifactory/api/security/token?username=ci-bot",
    ] {
        let r = admin.raw(
            "POST",
            path,
            Some("application/x-www-form-urlencoded"),
            Some(b"expires_in=600"),
        );
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        // The default scope, not the admin scope the query asked for.
        if path.starts_with("/access/") {
            assert_eq!(r.json()["scope"], json!("applied-permissions/user"));
        }
        let notices: Vec<&str> = r
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("x-gatehouse-notice"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert!(
            notices
                .iter()
                .any(|n| n.contains("query string") && n.contains("`username`")),
            "{path}: {notices:?}"
        );
    }
    // Without a query string, no such notice.
    let r = admin.raw(
        "POST",
        "/access/api/v1/tokens",
        Some("application/x-www-form-urlencoded"),
        Some(b"expires_in=600"),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!r.headers.iter().any(|(_, v)| v.contains("query string")));
}

//! The seeds, as written (issue 20): token and trust rules, anonymous access and seed
//! 004's remaining endpoints. Each test names the seed passage it holds the server to.

use crate::helpers::{Client, TestApp};
use gatehouse::Config;
use serde_json::{json, Value};

fn bearer(app: &TestApp, token: &str) -> Client {
    app.anon().with_header_auth(&format!("Bearer {token}"))
}

fn form(client: &Client, body: &str) -> crate::helpers::Resp {
    client.raw(
        "POST",
        "/access/api/v1/tokens",
        Some("application/x-www-form-urlencoded"),
        Some(body.as_bytes()),
    )
}

fn token(client: &Client, body: Value) -> Value {
    let r = client.post("/access/api/v1/tokens", &body);
    assert_eq!(r.status, 200, "{body}: {}", r.text);
    r.json()
}

/// Seed 003: "If only the access token and the refresh token are provided (and no other
/// parameters), this pair is used for authentication. If username or any other parameter
/// is provided, then the request must be authenticated by a token that grants admin
/// permissions."
#[test]
fn refresh_with_the_pair_alone_and_other_parameters_only_for_admins() {
    let app = TestApp::spawn();
    app.create_group("writers");
    app.create_user("dave", "password-1");
    let admin = app.admin();
    // A CI job's transient, group-scoped, refreshable token.
    let t = token(
        &admin,
        json!({"username": "ci-job", "scope": "applied-permissions/groups:writers", "refreshable": true, "expires_in": 7200}),
    );
    let (at, rt) = (
        t["access_token"].as_str().unwrap(),
        t["refresh_token"].as_str().unwrap(),
    );
    // No credentials at all: the pair authenticates.
    let r = form(
        &app.anon(),
        &format!("grant_type=refresh_token&refresh_token={rt}&access_token={at}"),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let t2 = r.json();
    assert_eq!(t2["scope"], "applied-permissions/groups:writers");
    assert_eq!(
        bearer(&app, at).get("/access/api/v1/tokens/me").status,
        401,
        "the old token is gone"
    );
    // The token itself as bearer may refresh itself.
    let (at2, rt2) = (
        t2["access_token"].as_str().unwrap(),
        t2["refresh_token"].as_str().unwrap(),
    );
    let r = form(
        &bearer(&app, at2),
        &format!("grant_type=refresh_token&refresh_token={rt2}"),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let t3 = r.json();
    let (at3, rt3) = (
        t3["access_token"].as_str().unwrap(),
        t3["refresh_token"].as_str().unwrap(),
    );
    // A wrong access token is not a pair; no pair and no credentials is 401.
    let r = form(
        &app.anon(),
        &format!("grant_type=refresh_token&refresh_token={rt3}&access_token={at2}"),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = form(
        &app.anon(),
        &format!("grant_type=refresh_token&refresh_token={rt3}"),
    );
    assert_eq!(r.status, 401, "{}", r.text);
    // Any other parameter needs an admin: without credentials 401, a non-admin 403.
    let extra = format!(
        "grant_type=refresh_token&refresh_token={rt3}&access_token={at3}&scope=applied-permissions/admin"
    );
    assert_eq!(form(&app.anon(), &extra).status, 401);
    let dave = app.as_user("dave", "password-1");
    let d = token(&dave, json!({"refreshable": true, "expires_in": 30000}));
    let drt = d["refresh_token"].as_str().unwrap();
    for param in [
        "scope=applied-permissions/admin",
        "username=admin",
        "expires_in=100",
    ] {
        let r = form(
            &dave,
            &format!("grant_type=refresh_token&refresh_token={drt}&{param}"),
        );
        assert_eq!(r.status, 403, "{param}: {}", r.text);
        assert!(r.error_message().contains("admin"), "{}", r.text);
    }
    // An admin's parameters shape the new token.
    let r = form(
        &admin,
        &format!("grant_type=refresh_token&refresh_token={rt3}&access_token={at3}&expires_in=600&description=narrowed"),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let t4 = r.json();
    assert!(t4["expires_in"].as_u64().unwrap() <= 600);
    assert_eq!(t4["scope"], "applied-permissions/groups:writers");
}

/// Seed 003: "Administrators can set any scope, while non-admin users can only set the
/// scope to a subset of the groups to which they belong."
#[test]
fn non_admins_scope_tokens_to_their_own_groups() {
    let app = TestApp::spawn();
    app.create_group("readers");
    app.create_group("writers");
    app.create_user("dave", "password-1");
    let r = app.admin().patch(
        "/access/api/v2/users/dave/groups",
        &json!({"add": ["readers"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let dave = app.as_user("dave", "password-1");
    let t = token(
        &dave,
        json!({"scope": "applied-permissions/groups:readers"}),
    );
    assert_eq!(t["scope"], "applied-permissions/groups:readers");
    let r = dave.post(
        "/access/api/v1/tokens",
        &json!({"scope": "applied-permissions/groups:readers,writers"}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.error_message().contains("writers"));
    let r = dave.post(
        "/access/api/v1/tokens",
        &json!({"scope": "applied-permissions/admin"}),
    );
    assert_eq!(r.status, 403);
}

/// Seed 003: "If not used the default value will be 3600 meaning your token will be valid
/// for one hour."
#[test]
fn tokens_expire_after_an_hour_by_default() {
    let app = TestApp::spawn();
    let t = token(&app.admin(), json!({"description": "default"}));
    let e = t["expires_in"].as_u64().unwrap();
    assert!((3590..=3600).contains(&e), "{t}");
}

/// Seed 004: "allow-refreshable: when disabled, all the user tokens will be created as non
/// refreshable" (admins' too), and said so; seed 003's `system:livelogs:r` scope.
#[test]
fn allow_refreshable_false_binds_everyone_and_livelogs_scope() {
    let app = TestApp::spawn_with(Config {
        allow_refreshable: false,
        ..Config::default()
    });
    app.create_user("dave", "password-1");
    for client in [app.admin(), app.as_user("dave", "password-1")] {
        let r = client.post(
            "/access/api/v1/tokens",
            &json!({"refreshable": true, "expires_in": 3600}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.json().get("refresh_token").is_none(), "{}", r.text);
        assert!(r
            .header("x-gatehouse-notice")
            .is_some_and(|n| n.contains("allow-refreshable")));
    }
    let t = token(&app.admin(), json!({"scope": "system:livelogs:r"}));
    assert_eq!(t["scope"], "system:livelogs:r");
    assert_eq!(
        bearer(&app, t["access_token"].as_str().unwrap())
            .get("/access/api/v2/users")
            .status,
        403,
        "a live-logs token grants nothing else"
    );
    let r = app.as_user("dave", "password-1").post(
        "/access/api/v1/tokens",
        &json!({"scope": "system:livelogs:r"}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
}

/// A refresh after refreshable tokens were switched off ends the chain, and says so as
/// a create does (the refresh token went missing without a word).
#[test]
fn a_refresh_after_allow_refreshable_went_off_says_the_chain_ends() {
    let app = TestApp::spawn();
    let t = token(
        &app.admin(),
        json!({"refreshable": true, "expires_in": 3600}),
    );
    let dir = app.dir.clone();
    let tmp = app.stop();
    let app = TestApp::start(
        dir,
        Config {
            allow_refreshable: false,
            ..Config::default()
        },
    )
    .unwrap();
    let body = format!(
        "grant_type=refresh_token&refresh_token={}&access_token={}",
        t["refresh_token"].as_str().unwrap(),
        t["access_token"].as_str().unwrap()
    );
    let r = app.anon().raw(
        "POST",
        "/access/api/v1/tokens",
        Some("application/x-www-form-urlencoded"),
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json().get("refresh_token").is_none(), "{}", r.text);
    assert!(
        r.header("x-gatehouse-notice")
            .is_some_and(|n| n.contains("allow-refreshable")),
        "{:?}",
        r.header("x-gatehouse-notice")
    );
    app.stop();
    drop(tmp);
}

/// Seed 004, Revoke Token by ID: 204 when not found, 400 when the token cannot be
/// revoked here; a short-lived token is not revocable and says so.
#[test]
fn revoking_what_cannot_be_revoked_says_why() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let short = token(&admin, json!({"expires_in": 600}));
    let id = short["token_id"].as_str().unwrap();
    let r = admin.delete(&format!("/access/api/v1/tokens/{id}"));
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.error_message().contains("not revocable"));
    let r =
        bearer(&app, short["access_token"].as_str().unwrap()).delete("/access/api/v1/tokens/me");
    assert_eq!(r.status, 400, "{}", r.text);
    // By value too, in both APIs (it said 404, "no revocable token of this server", of
    // this server's own token that goes on working).
    let r = admin.raw(
        "DELETE",
        "/access/api/v1/tokens/revoke",
        Some("application/json"),
        Some(
            json!({"token": short["access_token"]})
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.error_message().contains("not revocable"), "{}", r.text);
    let r = admin.raw(
        "POST",
        "/artifactory/api/security/token/revoke",
        Some("application/x-www-form-urlencoded"),
        Some(format!("token={}", short["access_token"].as_str().unwrap()).as_bytes()),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        admin.delete("/access/api/v1/tokens/no-such-token").status,
        204
    );
    // An id like a real one, its last character changed: not found, 204 — whatever that
    // character is (the mark was the lowest bit: half of all such ids answered 400,
    // "not revocable", naming a token that never existed).
    let alphabet = "0123456789abcdefghjkmnpqrstvwxyz";
    let stem = &id[..id.len() - 1];
    for c in alphabet.chars().filter(|c| !id.ends_with(*c)) {
        let r = admin.delete(&format!("/access/api/v1/tokens/{stem}{c}"));
        assert_eq!(r.status, 204, "{stem}{c}: {}", r.text);
    }
}

/// Seed 003: "Resetting the certificate will effectively revoke all of the tokens that
/// have been generated … If you want to reset your certificates but maintain the tokens
/// … copy the old root.crt into the trusted directory." A rotation keeps them.
#[test]
fn resetting_the_certificate_revokes_every_token_unless_the_old_one_is_trusted() {
    let app = TestApp::spawn();
    app.create_user("dave", "password-1");
    let admin = app.admin();
    let old_root = admin.get("/access/api/v1/cert/root?formatted=true");
    assert_eq!(old_root.status, 200);
    let admin_token = token(&admin, json!({"scope": "applied-permissions/admin"}));
    let dave_token = token(
        &app.as_user("dave", "password-1"),
        json!({"expires_in": 86400, "include_reference_token": true, "refreshable": true}),
    );
    let reference = dave_token["reference_token"].as_str().unwrap();
    let at = admin_token["access_token"].as_str().unwrap();
    let dt = dave_token["access_token"].as_str().unwrap();
    // A rotation keeps earlier tokens.
    assert_eq!(
        admin.post_empty("/access/api/v1/cert/root/rotate").status,
        200
    );
    assert_eq!(bearer(&app, at).get("/access/api/v2/users").status, 200);
    let rotated_root = admin.get("/access/api/v1/cert/root?formatted=true").text;
    assert_eq!(
        app.as_user("dave", "password-1")
            .post_empty("/access/api/v1/cert/root/reset")
            .status,
        403
    );
    let r = admin.post_empty("/access/api/v1/cert/root/reset");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["retired"].as_array().unwrap().len(), 2);
    for t in [at, dt, reference] {
        let r = bearer(&app, t).get("/access/api/v1/tokens/me");
        assert_eq!(r.status, 401, "{}", r.text);
    }
    // The reference token as a password and the refresh pair end too (both outlived it).
    let r = app
        .as_user("dave", reference)
        .get("/access/api/v2/users/dave");
    assert_eq!(r.status, 401, "{}", r.text);
    let r = app.anon().post(
        "/access/api/v1/tokens",
        &json!({"grant_type": "refresh_token", "access_token": dt,
                "refresh_token": dave_token["refresh_token"]}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("retired"), "{}", r.text);
    // Ended tokens are listed and read no more, as revoked ones (they were listed).
    let dave_id = dave_token["token_id"].as_str().unwrap();
    let listed = |admin: &Client| -> Vec<String> {
        let r = admin.get("/access/api/v1/tokens");
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["token_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(!listed(&admin).contains(&dave_id.to_string()));
    let r = admin.get(&format!("/access/api/v1/tokens/{dave_id}"));
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(r.text.contains("retired"), "{}", r.text);
    let new = token(&admin, json!({}));
    assert_eq!(
        bearer(&app, new["access_token"].as_str().unwrap())
            .get("/access/api/v2/users")
            .status,
        200
    );
    // Trusting the old root certificate again brings its tokens back, revocable ones too.
    let r = admin.post(
        "/access/api/v1/cert/trusted",
        &json!({"name": "old-root", "certificate": old_root.text}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(bearer(&app, at).get("/access/api/v2/users").status, 200);
    assert_eq!(
        bearer(&app, dt).get("/access/api/v2/users/dave").status,
        200
    );
    assert_eq!(
        bearer(&app, reference)
            .get("/access/api/v2/users/dave")
            .status,
        200
    );
    assert!(listed(&admin).contains(&dave_id.to_string()));
    let r = admin.get(&format!("/access/api/v1/tokens/{dave_id}"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_ne!(rotated_root, old_root.text);
    // Keys retired by the reset are not in the JWKS.
    let jwks = admin.get("/access/api/v1/cert/jwks").json();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "{jwks}");
}

/// A token as a JFrog instance signs it: RS256 with the key of its root certificate.
fn jfrog_token(key_pem: &[u8], scope: &str) -> String {
    jfrog_token_expiring(key_pem, scope, true)
}

/// [`jfrog_token`], with or without `exp` (and never the `revocable` flag).
fn jfrog_token_expiring(key_pem: &[u8], scope: &str, expires: bool) -> String {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut header = Header::new(Algorithm::RS256);
    // JFrog's own key id (not derived the way Gatehouse derives its kids).
    header.kid = Some("zYaVB5EFZd9yimkB6FSl0-Iaa0tOZWK_owsPSU3SfgM".into());
    let claims = json!({
        "sub": "jfrt@01testjfrogservice0000000/users/admin",
        "scp": scope,
        "aud": "*@*",
        "iss": "jfrt@01testjfrogservice0000000",
        "iat": now,
        "jti": "4be13896-2fef-418d-b07c-951cbd05ba71",
    });
    let mut claims = claims;
    if expires {
        claims["exp"] = json!(now + 600);
    }
    encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(key_pem).unwrap(),
    )
    .unwrap()
}

fn wait_for(mut f: impl FnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < until {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

/// Seed 003: a real JFrog's root.crt (an X.509 certificate over an RSA key) joins the
/// circle of trust, from the trusted folder ("the root.crt will disappear from the
/// target's trusted folder and will be placed in the database") or the REST API, and
/// that JFrog's RS256 tokens verify.
#[test]
fn a_jfrog_root_certificate_joins_the_circle_of_trust() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let cert = include_str!("fixtures/jfrog-root.crt");
    let key = include_bytes!("fixtures/jfrog-rsa.key");
    let token = jfrog_token(key, "applied-permissions/admin");
    let r = bearer(&app, &token).get("/access/api/v2/users");
    assert_eq!(r.status, 401, "not trusted yet: {}", r.text);
    let file = app.dir.join("trusted").join("jfrog-us.crt");
    std::fs::write(&file, cert).unwrap();
    assert!(wait_for(|| bearer(&app, &token)
        .get("/access/api/v2/users")
        .status
        == 200));
    assert!(
        wait_for(|| !file.exists()),
        "the file is taken into the store"
    );
    let listed = admin.get("/access/api/v1/cert/trusted").json();
    let entry = listed["trusted"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "jfrog-us")
        .unwrap_or_else(|| panic!("{listed}"))
        .clone();
    assert_eq!(entry["alg"], "RS256");
    assert!(entry["certificate"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----"));
    // A token signed by another RSA key does not verify.
    let forged = {
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        parts[2] = parts[2].chars().rev().collect();
        parts.join(".")
    };
    assert_eq!(
        bearer(&app, &forged).get("/access/api/v2/users").status,
        401
    );
    // Untrusting it ends it; the REST API takes the certificate as well.
    assert_eq!(
        admin.delete("/access/api/v1/cert/trusted/jfrog-us").status,
        204
    );
    assert_eq!(bearer(&app, &token).get("/access/api/v2/users").status, 401);
    let r = admin.post(
        "/access/api/v1/cert/trusted",
        &json!({"name": "jfrog-eu", "certificate": cert}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(bearer(&app, &token).get("/access/api/v2/users").status, 200);
    // Seed 003: "only non-revokable tokens (tokens with expiry) can be used for
    // authentication on a different instance": one without `exp` is revocable.
    let for_ever = jfrog_token_expiring(key, "applied-permissions/admin", false);
    let r = bearer(&app, &for_ever).get("/access/api/v2/users");
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.text.contains("revocable"), "{}", r.text);
    // Something that is not a key is refused.
    let r = admin.post(
        "/access/api/v1/cert/trusted",
        &json!({"name": "bad", "certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}),
    );
    assert_eq!(r.status, 400);
}

/// Seed 004, pairing: PUT initiates, GET …/pairings/{use_case} lists `base_url`, both
/// also under /artifactory; an unknown use case is 404; revoking the master token or the
/// pairing token (seed 003: "an admin user can revoke trust by revoking this token") ends
/// the trust the pairing created.
#[test]
fn pairing_as_the_seed_writes_it() {
    let a = TestApp::spawn();
    let b = TestApp::spawn();
    let (aa, ba) = (a.admin(), b.admin());
    let r = aa.post_empty("/artifactory/api/v1/service_trust/pairing/unknown-use-case");
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(
        aa.get("/access/api/v1/service_trust/pairings/unknown-use-case")
            .status,
        404
    );
    let pair = |use_case: &str| -> String {
        let r = aa.post_empty(&format!(
            "/artifactory/api/v1/service_trust/pairing/{use_case}"
        ));
        assert_eq!(r.status, 200, "{}", r.text);
        let t = r.json();
        let r = ba.put(
            &format!("/artifactory/api/v1/service_trust/pairing/{use_case}"),
            &json!({"pairing_token": t["pairing_token"]}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            r.json()["message"],
            "Trust with Artifactory was established successfully"
        );
        t["token_id"].as_str().unwrap().to_string()
    };
    let _ = pair("federated-repo/libs");
    let listed = ba
        .get("/access/api/v1/service_trust/pairings/federated-repo/libs")
        .json();
    assert_eq!(listed[0]["base_url"], a.base.as_str(), "{listed}");
    let listed = aa
        .get("/artifactory/api/v1/service_trust/pairings/federated-repo/libs")
        .json();
    assert_eq!(listed[0]["base_url"], b.base.as_str(), "{listed}");
    // B's tokens work on A; revoking the master token A handed to B ends that.
    let bt = token(&ba, json!({"scope": "applied-permissions/admin"}));
    let on_a = bearer(&a, bt["access_token"].as_str().unwrap());
    assert_eq!(on_a.get("/access/api/v2/users").status, 200);
    let tokens = aa.get("/access/api/v1/tokens").json();
    let master = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| {
            t["description"]
                .as_str()
                .is_some_and(|d| d.starts_with("pairing master token"))
        })
        .unwrap_or_else(|| panic!("{tokens}"))["token_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = aa.delete(&format!("/access/api/v1/tokens/{master}"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(on_a.get("/access/api/v2/users").status, 401);
    assert_eq!(
        aa.get("/artifactory/api/v1/service_trust/pairings/federated-repo/libs")
            .json(),
        json!([])
    );
    // Pair again; revoking the (used) pairing token ends it as well.
    let pairing_token = pair("federation");
    assert_eq!(on_a.get("/access/api/v2/users").status, 200);
    let masters = || crate::helpers::pairing_master_tokens(&aa);
    assert_eq!(masters(), 1);
    let r = aa.delete(&format!("/access/api/v1/tokens/{pairing_token}"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(on_a.get("/access/api/v2/users").status, 401);
    // The pairing's master token (admin, for ever) ends with the trust.
    assert_eq!(masters(), 0);
}

/// Seed 002 "Allowing anonymous access to specific repositories", seed 004 "Requires a
/// valid user (can be anonymous)": an `anonymous` user from the start, disabled until an
/// admin turns anonymous access on; then requests without credentials are that user, and
/// a permission target granting `anonymous` read lets nginx serve the repository to
/// anyone. It never widens what signed-in users may do.
#[test]
fn anonymous_access_is_a_setting_and_reaches_only_what_anonymous_is_granted() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("dave", "password-1");
    let user = admin.get("/access/api/v2/users/anonymous");
    assert_eq!(user.status, 200, "{}", user.text);
    assert_eq!(user.json()["status"], "disabled");
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/public",
        &json!({"name": "public", "repo": {"repositories": ["public-repo"], "actions": {"users": {"anonymous": ["read"]}}}}),
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    let ask = |c: &Client, resource: &str| {
        c.get(&format!("/access/api/v1/authorize?resource={resource}"))
            .status
    };
    let nginx = |c: &Client| {
        c.get_with(
            "/access/api/v1/authorize",
            &[
                ("X-Original-URI", "/artifactory/public-repo/a.bin"),
                ("X-Original-Method", "GET"),
            ],
        )
        .status
    };
    assert_eq!(ask(&app.anon(), "public-repo/a.bin"), 401, "off by default");
    assert_eq!(
        admin
            .get("/access/api/v1/config/security/anonymous_access")
            .json()["enabled"],
        false
    );
    let dave = app.as_user("dave", "password-1");
    assert_eq!(
        dave.put(
            "/access/api/v1/config/security/anonymous_access",
            &json!({"enabled": true})
        )
        .status,
        403
    );
    let r = admin.put(
        "/access/api/v1/config/security/anonymous_access",
        &json!({"enabled": true}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        admin.get("/access/api/v2/users/anonymous").json()["status"],
        "enabled"
    );
    assert_eq!(ask(&app.anon(), "public-repo/a.bin"), 200);
    assert_eq!(nginx(&app.anon()), 200);
    // What anonymous may not do is a challenge, as Artifactory answers it: a client that
    // sends credentials only when asked (Maven, curl --anyauth) then signs in.
    assert_eq!(ask(&app.anon(), "private-repo/a.bin"), 401);
    let r = app
        .anon()
        .get("/access/api/v1/authorize?resource=public-repo/a.bin&action=write");
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.header("www-authenticate").is_some(), "{}", r.text);
    // Anonymous is a user like any other: no admin API.
    assert_eq!(app.anon().get("/access/api/v2/users").status, 403);
    // Signed-in users keep exactly their own grants; bad credentials are still 401.
    assert_eq!(ask(&dave, "public-repo/a.bin"), 403);
    assert_eq!(
        ask(&app.as_user("dave", "wrong-password"), "public-repo/a.bin"),
        401
    );
    let r = admin.put(
        "/access/api/v1/config/security/anonymous_access",
        &json!({"enabled": false}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(ask(&app.anon(), "public-repo/a.bin"), 401);
    assert_eq!(nginx(&app.anon()), 401);
}

/// Seed 004, SCIM: list results are "limited to the first 20" (`count` still up to 1000).
#[test]
fn scim_lists_default_to_twenty() {
    let app = TestApp::spawn();
    let admin = app.admin();
    for i in 0..25 {
        let r = admin.post(
            "/access/api/v2/users",
            &json!({"username": format!("s{i:02}"), "internal_password_disabled": true}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let page = admin.get("/access/api/v1/scim/v2/Users").json();
    assert_eq!(page["Resources"].as_array().unwrap().len(), 20);
    assert_eq!(page["itemsPerPage"], 20);
    assert_eq!(page["totalResults"], 27, "25, admin and anonymous");
    let more = admin.get("/access/api/v1/scim/v2/Users?count=25").json();
    assert_eq!(more["Resources"].as_array().unwrap().len(), 25);
}

/// Seed 004, project members and groups: "Requires … a Project Admin if
/// admin_privileges.manage_resources is set" (followed as written: see README), and the
/// sample's role `"developer"` is the predefined `Developer`.
#[test]
fn project_admins_manage_members_with_manage_resources() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("pa", "password-1");
    app.create_user("dev", "password-1");
    app.create_group("team");
    for (key, members, resources) in [("res", false, true), ("mem", true, false)] {
        let r = admin.post(
            "/access/api/v1/projects",
            &json!({"project_key": key, "display_name": key,
                "admin_privileges": {"manage_members": members, "manage_resources": resources}}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        let r = admin.put(
            &format!("/access/api/v1/projects/{key}/users/pa"),
            &json!({"roles": ["Project Admin"]}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let pa = app.as_user("pa", "password-1");
    let r = pa.put(
        "/access/api/v1/projects/res/users/dev",
        &json!({"roles": ["developer"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["roles"], json!(["Developer"]));
    assert_eq!(pa.get("/access/api/v1/projects/res/users").status, 200);
    assert_eq!(pa.get("/access/api/v1/projects/res/users/dev").status, 200);
    let r = pa.put(
        "/access/api/v1/projects/res/groups/team",
        &json!({"roles": ["viewer"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(pa.get("/access/api/v1/projects/res/groups").status, 200);
    assert_eq!(
        pa.delete("/access/api/v1/projects/res/groups/team").status,
        204
    );
    assert_eq!(
        pa.delete("/access/api/v1/projects/res/users/dev").status,
        204
    );
    for path in ["users", "groups", "users/pa"] {
        let r = pa.get(&format!("/access/api/v1/projects/mem/{path}"));
        assert_eq!(r.status, 403, "{path}: {}", r.text);
    }
}

/// Seed 002: "Manage — allows changing the permission settings for other users" of the
/// same permission target: a holder of `manage` may read the target and change its
/// members' actions, and nothing else.
#[test]
fn manage_lets_a_user_change_the_members_of_that_target_only() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("dave", "password-1");
    app.create_user("erin", "password-1");
    app.create_group("leads");
    let r = admin.patch(
        "/access/api/v2/users/dave/groups",
        &json!({"add": ["leads"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let path = "/artifactory/api/v2/security/permissions/team";
    let target = json!({"name": "team", "repo": {"repositories": ["team-repo"],
        "actions": {"users": {"erin": ["read"]}, "groups": {"leads": ["read", "manage"]}}}});
    let r = admin.put(path, &target);
    assert!(r.status == 201 || r.status == 200, "{}", r.text);
    admin.put(
        "/artifactory/api/v2/security/permissions/other",
        &json!({"name": "other", "repo": {"repositories": ["other-repo"], "actions": {"users": {"erin": ["read"]}}}}),
    );
    let dave = app.as_user("dave", "password-1");
    let erin = app.as_user("erin", "password-1");
    assert_eq!(dave.get(path).status, 200);
    assert_eq!(erin.get(path).status, 403, "read alone is not manage");
    assert_eq!(
        dave.get("/artifactory/api/v2/security/permissions/other")
            .status,
        403
    );
    // Dave gives erin write on the same repository.
    let mut changed = target.clone();
    changed["repo"]["actions"]["users"]["erin"] = json!(["read", "write"]);
    let r = dave.put(path, &changed);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        erin.get("/access/api/v1/authorize?resource=team-repo/a&action=write")
            .status,
        200
    );
    // The target as a GET shows it (no includes read as `["**"]`), changed and sent
    // back: a member change still (it was refused as a change of patterns).
    let mut read_back = dave.get(path).json();
    assert_eq!(read_back["repo"]["include-patterns"], json!(["**"]));
    read_back["repo"]["actions"]["users"]["erin"] = json!(["read"]);
    let r = dave.put(path, &read_back);
    assert_eq!(r.status, 200, "{}", r.text);
    let mut narrower = read_back.clone();
    narrower["repo"]["include-patterns"] = json!(["org/**"]);
    // Not the manager's to change: refused as its other refusals are (403).
    assert_eq!(dave.put(path, &narrower).status, 403);
    let r = dave.put(path, &changed);
    assert_eq!(r.status, 200, "{}", r.text);
    // Not its own actions, nor its groups' (a manage-only user gave itself read, write
    // and delete): "the permission settings for other users".
    let mut raised = changed.clone();
    raised["repo"]["actions"]["users"]["dave"] = json!(["read", "write", "delete"]);
    let r = dave.put(path, &raised);
    assert_eq!(r.status, 403, "{}", r.text);
    let mut raised = changed.clone();
    raised["repo"]["actions"]["groups"]["leads"] = json!(["read", "manage", "write"]);
    assert_eq!(dave.put(path, &raised).status, 403);
    assert_eq!(
        dave.get("/access/api/v1/authorize?resource=team-repo/a&action=write")
            .status,
        403
    );
    // But not more repositories, not another target, not a new one, not a deletion.
    let mut wider = changed.clone();
    wider["repo"]["repositories"] = json!(["team-repo", "other-repo"]);
    assert_eq!(dave.put(path, &wider).status, 403);
    assert_eq!(
        dave.put(
            "/artifactory/api/v2/security/permissions/other",
            &json!({"name": "other", "repo": {"repositories": ["other-repo"], "actions": {"users": {"dave": ["read"]}}}})
        )
        .status,
        403
    );
    assert_eq!(
        dave.post(
            "/artifactory/api/v2/security/permissions/mine",
            &json!({"name": "mine", "repo": {"repositories": ["team-repo"]}})
        )
        .status,
        403
    );
    assert_eq!(dave.delete(path).status, 403);
    assert_eq!(
        dave.get("/artifactory/api/v2/security/permissions").status,
        403
    );
    // The same repositories in another order are the same scope (the formats show them
    // each their own way: a manager's read-modify-write was refused).
    let pair = "/artifactory/api/v2/security/permissions/pair";
    let r = admin.put(
        pair,
        &json!({"name": "pair", "repo": {"repositories": ["z-repo", "a-repo"],
                "actions": {"groups": {"leads": ["read", "manage"]}}}}),
    );
    assert!(r.status < 300, "{}", r.text);
    let mut read = dave.get(pair).json();
    read["repo"]["repositories"] = json!(["a-repo", "z-repo"]);
    read["repo"]["actions"]["users"] = json!({"erin": ["read"]});
    let r = dave.put(pair, &read);
    assert_eq!(r.status, 200, "{}", r.text);
}

/// `manage` is a section's (seed 002: the permission settings of what it is held on): a
/// user managing a target's builds changes who may do what with builds, not with its
/// repositories — it gave itself write and manage on them.
#[test]
fn manage_on_one_section_changes_that_section_only() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("u6", "password-1");
    app.create_user("u7", "password-1");
    let path = "/artifactory/api/v2/security/permissions/p3";
    let target = json!({"name": "p3",
        "repo": {"repositories": ["secret-repo"], "include-patterns": ["**"],
            "actions": {"users": {"u6": ["read"]}}},
        "build": {"repositories": ["artifactory-build-info"], "include-patterns": ["**"],
            "actions": {"users": {"u7": ["read", "manage"]}}}});
    let r = admin.put(path, &target);
    assert_eq!(r.status, 201, "{}", r.text);
    // Artifactory's existence check.
    let head = admin.raw("HEAD", path, None, None);
    assert_eq!((head.status, head.text.as_str()), (200, ""));
    let missing = admin.raw(
        "HEAD",
        "/artifactory/api/v2/security/permissions/nope",
        None,
        None,
    );
    assert_eq!(missing.status, 404);
    let u7 = app.as_user("u7", "password-1");
    let mut raised = target.clone();
    raised["repo"]["actions"]["users"]["u7"] = json!(["read", "write", "delete", "manage"]);
    let r = u7.put(path, &raised);
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.error_message().contains("`repo`"), "{}", r.text);
    let asked = "/access/api/v1/authorize?resource=secret-repo/x.jar&action=write";
    assert_eq!(u7.get(asked).status, 403);
    // In the section it manages, it may.
    let mut builds = target.clone();
    builds["build"]["actions"]["users"]["u6"] = json!(["read"]);
    let r = u7.put(path, &builds);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["build"]["actions"]["users"]["u6"], json!(["read"]));
    assert_eq!(
        r.json()["repo"]["actions"]["users"],
        json!({"u6": ["read"]})
    );
}

/// Seeds 000/001/002, signed URLs: created by admins or users with `manage` on the
/// repository, 201 with JSON; an organisation may have its own URL-signing key (as
/// Bintray kept one per org), replaced without touching the others.
#[test]
fn signed_urls_by_managers_as_json_and_per_organisation_keys() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("dave", "password-1");
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/dl",
        &json!({"name": "dl", "repo": {"repositories": ["example-repo-local"], "actions": {"users": {"dave": ["read", "manage"]}}}}),
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    let dave = app.as_user("dave", "password-1");
    let r = dave.post(
        "/artifactory/api/signed/url",
        &json!({"repo_path": "example-repo-local/1.txt"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json")));
    let url = r.json().as_str().unwrap().to_string();
    let verify = |u: &str| {
        app.anon()
            .get(&format!(
                "/artifactory/api/signed/url/verify?url={}",
                crate::tokens::urlencode(u)
            ))
            .status
    };
    assert_eq!(verify(&url), 200);
    let r = dave.post(
        "/artifactory/api/signed/url",
        &json!({"repo_path": "other-repo/1.txt"}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    // An organisation's own key.
    let r = admin.post(
        "/artifactory/api/signed/url",
        &json!({"repo_path": "example-repo-local/2.txt", "org": "myorg"}),
    );
    assert_eq!(r.status, 404, "no key for myorg yet: {}", r.text);
    let r = admin.post("/artifactory/api/signed/url/key", &json!({"org": "myorg"}));
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["version"], 1);
    let r = admin.post(
        "/artifactory/api/signed/url",
        &json!({"repo_path": "example-repo-local/2.txt", "org": "myorg"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let org_url = r.json().as_str().unwrap().to_string();
    assert!(org_url.contains("&org=myorg"));
    assert_eq!(verify(&org_url), 200);
    // authorize's `?resource=` form takes it whole, `org` included (it was dropped, and
    // the URL refused there while accepted through X-Original-URI).
    let query = org_url.split_once('?').unwrap().1;
    let r = app.anon().get(&format!(
        "/access/api/v1/authorize?resource=example-repo-local/2.txt&action=read&{query}"
    ));
    assert_eq!(r.status, 200, "{}", r.text);
    // Replacing myorg's key ends myorg's URLs only; the default key's URLs still work.
    assert_eq!(
        admin
            .post("/artifactory/api/signed/url/key", &json!({"org": "myorg"}))
            .status,
        201
    );
    assert_eq!(verify(&org_url), 403);
    assert_eq!(verify(&url), 200);
    // Of myorg's keys only the current one is kept; the server-wide key stays.
    let mut keys: Vec<String> = std::fs::read_dir(app.dir.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("signed-url-"))
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        ["signed-url-1.secret", "signed-url-org-myorg-2.secret"],
        "{keys:?}"
    );
    assert_eq!(
        dave.post(
            "/artifactory/api/signed/url",
            &json!({"repo_path": "example-repo-local/1.txt", "org": "myorg"})
        )
        .status,
        403,
        "an organisation's key is for admins"
    );
    // An organisation whose name needs encoding (`my org`, `a&b`): its URLs verify in
    // every form (the name went into the URL raw, and none did).
    for org in ["my org", "a&b"] {
        let r = admin.post("/artifactory/api/signed/url/key", &json!({ "org": org }));
        assert_eq!(r.status, 201, "{}", r.text);
        let r = admin.post(
            "/artifactory/api/signed/url",
            &json!({"repo_path": "example-repo-local/3.txt", "org": org}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        let u = r.json().as_str().unwrap().to_string();
        assert!(!u.contains(' '), "{u}");
        assert_eq!(verify(&u), 200, "{org}: {u}");
        let uri = &u[u.find("/artifactory/").unwrap()..];
        let r = app.anon().get_with(
            "/access/api/v1/authorize",
            &[("X-Original-URI", uri), ("X-Original-Method", "GET")],
        );
        assert_eq!(r.status, 200, "{org}: {}", r.text);
        let query = u.split_once('?').unwrap().1;
        let r = app.anon().get(&format!(
            "/access/api/v1/authorize?resource=example-repo-local/3.txt&action=read&{query}"
        ));
        assert_eq!(r.status, 200, "{org}: {}", r.text);
    }
    // A URL is for a file: one for a whole repository verified and was refused by every
    // file server's check.
    let r = admin.post(
        "/artifactory/api/signed/url",
        &json!({"repo_path": "example-repo-local"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
}

/// Seed 001's own access key (`bob`, password `secret`) and seed 002's "keep Bintray
/// access-key passwords": the minimum length comes from the password policy, so an admin
/// who allows six characters can migrate it.
#[test]
fn a_bintray_access_key_password_is_kept_when_the_policy_allows_it() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let keys = "/access/api/v1/orgs/myorg/access_keys";
    let r = admin.post(keys, &json!({"id": "bob", "password": "secret"}));
    assert_eq!(
        r.status, 400,
        "the default policy: 8 characters: {}",
        r.text
    );
    let r = admin.put(
        "/access/api/v1/config/security/password_policy",
        &json!({"uppercase": 0, "lowercase": 0, "digit": 0, "special_char": 0,
                "length": 6, "not_match_old": false}),
    );
    assert_eq!(r.status, 204, "{}", r.text);
    let r = admin.post(keys, &json!({"id": "bob", "password": "secret"}));
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.post(
        "/access/api/v1/orgs/myorg/entitlements",
        &json!({"repo": "client1-images", "access": "r", "access_keys": ["bob"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app
        .as_user("bob@myorg", "secret")
        .get("/access/api/v1/authorize?resource=client1-images/x");
    assert_eq!(r.status, 200, "{}", r.text);
}

/// Seed 004's system endpoints where they mean something for an access server, and a
/// clear 404 for those about Artifactory's storage and licensing.
#[test]
fn system_endpoints_of_seed_004() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("dave", "password-1");
    let dave = app.as_user("dave", "password-1");
    for prefix in ["", "/artifactory"] {
        let r = admin.get(&format!("{prefix}/api/system"));
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.text.contains("service id: jfac@"), "{}", r.text);
        assert!(r.header("content-type").unwrap().starts_with("text/plain"));
        assert_eq!(dave.get(&format!("{prefix}/api/system")).status, 403);
    }
    assert_eq!(app.anon().get("/api/system").status, 401);
    let r = admin.get("/event/api/v1/system/ping");
    assert_eq!((r.status, r.text.as_str()), (200, "OK"));
    assert_eq!(dave.get("/event/api/v1/system/ping").status, 403);
    // verifyconnection: reach an endpoint the way webhooks do.
    let ok = admin.post(
        "/api/system/verifyconnection",
        &json!({"endpoint": format!("{}/api/system/ping", app.base)}),
    );
    assert_eq!(ok.status, 200, "{}", ok.text);
    let r = admin.post(
        "/api/system/verifyconnection",
        &json!({"endpoint": format!("{}/no/such/page", app.base), "username": "x", "password": "y"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.error_message().contains("HTTP 404"), "{}", r.text);
    let r = admin.post(
        "/api/system/verifyconnection",
        &json!({"endpoint": "ftp://example.com"}),
    );
    assert_eq!(r.status, 400);
    // The nginx configuration in front of a file server.
    let r = admin.get("/api/system/configuration/reverseProxy/nginx?listen=8080&root=/srv/files");
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("auth_request /_gatehouse_authorize;"));
    assert!(r
        .text
        .contains("proxy_pass http://gatehouse/access/api/v1/authorize;"));
    let addr = app.base.strip_prefix("http://").unwrap();
    assert!(r.text.contains(&format!("server {addr};")), "{}", r.text);
    assert!(r.text.contains("listen 8080;") && r.text.contains("alias /srv/files/;"));
    assert!(!r.text.contains("{{"), "every placeholder filled");
    // The header that names the placeholders is not filled in as nonsense.
    assert!(
        !r.text.contains("Placeholders") && !r.text.contains("/srv/files (the directory"),
        "{}",
        r.text
    );
    // Over https at an IP address nginx could never check the certificate (it checks
    // names only): a name is asked for, and used.
    let https = [("X-Forwarded-Proto", "https")];
    let path = "/api/system/configuration/reverseProxy/nginx?listen=8080";
    let r = admin.get_with(path, &https);
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("`name`"), "{}", r.text);
    let r = admin.get_with(&format!("{path}&name=gatehouse.internal"), &https);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.text.contains("proxy_ssl_name gatehouse.internal;")
            && r.text.contains("proxy_pass https://gatehouse/"),
        "{}",
        r.text
    );
    for bad in ["a;b", "$http_x", "a%22b"] {
        let r = admin.get_with(&format!("{path}&name={bad}"), &https);
        assert_eq!(r.status, 400, "{bad}");
    }
    // The scheme in any case (nginx reads it so).
    let r = admin.get_with(path, &[("X-Forwarded-Proto", "HTTPS")]);
    assert_eq!(r.status, 400, "{}", r.text);
    // Storage and licensing: a clear 404.
    for (method, path) in [
        ("GET", "/api/system/license"),
        ("POST", "/artifactory/api/system/licenses"),
        ("POST", "/api/system/migration/sha2/start"),
        ("POST", "/api/metadata_server/reindex"),
        ("POST", "/api/system/bootstrap_bundle"),
    ] {
        let r = admin.raw(method, path, Some("application/json"), Some(b"{}"));
        assert_eq!(r.status, 404, "{path}");
        assert!(
            r.error_message().contains("Gatehouse is an access server"),
            "{path}: {}",
            r.text
        );
    }
}

/// Seed 004's backup import has no body ("curl -XPOST …/backup/import"): the newest
/// export is imported.
#[test]
fn backup_import_without_a_body_takes_the_newest_export() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.post_empty("/access/api/v1/system/backup/import");
    assert_eq!(r.status, 404, "no export yet: {}", r.text);
    assert!(r.error_message().contains("backup/export"));
    let r = admin.post_empty("/access/api/v1/system/backup/export");
    assert_eq!(r.status, 200, "{}", r.text);
    let r = admin.post_empty("/access/api/v1/system/backup/import");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json()["imported"],
        0,
        "the newest export is this very log"
    );
    app.create_user("later", "password-1");
    let r = admin.post_empty("/access/api/v1/system/backup/import");
    assert_eq!(r.status, 409, "the newest export is behind now: {}", r.text);
}

const SUBS: &str = "/event/api/v1/subscriptions";

/// Every field of `expected` is in `actual` with the same value (objects recursively;
/// arrays element by element, same length). `actual` may carry more fields.
fn assert_contains(expected: &Value, actual: &Value, at: &str) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, v) in e {
                let got = a.get(k).unwrap_or(&Value::Null);
                assert_contains(v, got, &format!("{at}.{k}"));
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            assert_eq!(e.len(), a.len(), "{at}: {actual}");
            for (i, (x, y)) in e.iter().zip(a).enumerate() {
                assert_contains(x, y, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(expected, actual, "{at}"),
    }
}

/// A seed sample as answers show it: secret values are write-only here, so a handler's
/// `secret` shows as `secret_set` (README, "Differences from JFrog").
fn without_secrets(mut sample: Value) -> Value {
    for h in sample["handlers"].as_array_mut().unwrap() {
        if let Some(o) = h.as_object_mut() {
            if o.remove("secret").is_some() {
                o.insert("secret_set".into(), json!(true));
            }
        }
    }
    sample
}

/// Seed 004 "WEBHOOKS", the samples verbatim: the predefined webhook `Audits` (create,
/// get, update), the two subscriptions of the list sample, and the custom webhook
/// `trigger_action`. Artifact-domain subscriptions, `anyLocal` / `anyRemote` /
/// `repoKeys` criteria and a custom webhook's `proxy` are accepted and shown back as
/// sent; the status says that the artifact domain never fires here.
#[test]
fn the_seeds_sample_webhook_subscriptions_are_accepted_and_shown_as_sent() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let audits = json!({ "key": "Audits", "description": "Triggers Security and QA audits when a new artifact is created", "enabled": true, "event_filter": { "domain": "artifact", "event_types": [ "deployed", "moved", "copied" ], "criteria": { "anyLocal": true, "anyRemote": false, "includePatterns": [], "excludePatterns": [], "repoKeys": [] } }, "handlers": [ { "handler_type": "webhook", "url": "https://webhook.my-company.test/", "secret": "tell no one", "proxy": "mainProxy", "custom_http_headers": [ { "name": "X-MyCompany-Header", "value": "whatever" } ] } ] });
    let r = admin.post(SUBS, &audits);
    assert_eq!(r.status, 201, "{}", r.text);
    assert_contains(&without_secrets(audits.clone()), &r.json(), "created");
    assert!(!r.text.contains("tell no one"), "{}", r.text);
    let r = admin.get(&format!("{SUBS}/Audits"));
    assert_eq!(r.status, 200, "{}", r.text);
    let got = r.json();
    assert_contains(&without_secrets(audits.clone()), &got, "get");
    assert_eq!(got["status"]["fires"], false, "{got}");
    let reason = got["status"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("never fires") && reason.contains("artifact"),
        "{reason}"
    );
    assert!(
        got["status"]["notes"].to_string().contains("mainProxy"),
        "the unused proxy is said: {got}"
    );

    // The update sample (no key in the body).
    let update = json!({ "description": "Triggers Security and QA audits when a new artifact is created", "enabled": true, "event_filter": { "domain": "artifact", "event_types": [ "deployed", "moved", "copied" ], "criteria": { "anyLocal": true, "anyRemote": false, "includePatterns": [], "excludePatterns": [], "repoKeys": [] } }, "handlers": [ { "handler_type": "webhook", "url": "https://webhook.my-company.test/", "secret": "tell no one", "proxy": "mainProxy", "custom_http_headers": [ { "name": "X-MyCompany-Header", "value": "whatever" } ] } ] });
    let r = admin.put(&format!("{SUBS}/Audits"), &update);
    assert_eq!(r.status, 204, "{}", r.text);

    // The list sample's two subscriptions.
    let list = json!([{"key": "QaAudit", "description": "Triggers QAaudit when a new artifact is created", "enabled": true, "event_filter": { "domain": "artifact", "event_types": [ "deployed" ], "criteria": { "anyLocal": true, "anyRemote": false, "includePatterns": [], "excludePatterns": [], "repoKeys": [] } }, "handlers": [ { "handler_type": "webhook", "url": "https://qa.my-company.test/", "secret": "tell no one", "proxy": "mainProxy", "custom_http_headers": [ { "name": "X-MyCompany-Header", "value": "whatever" } ] } ] }, { "key": "SecurityAudit", "description": "Triggers Security audit when a new artifact is deployed", "enabled": true, "event_filter": { "domain": "artifact", "event_types": [ "deployed" ], "criteria": { "anyLocal": true, "anyRemote": false, "includePatterns": [], "excludePatterns": [], "repoKeys": [] } }, "handlers": [ { "handler_type": "webhook", "url": "https://security.my-company.test/", "secret": "hush hush" } ] } ]);
    for s in list.as_array().unwrap() {
        let r = admin.post(SUBS, s);
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let r = admin.get(SUBS);
    assert_eq!(r.status, 200);
    assert!(!r.text.contains("hush hush") && !r.text.contains("tell no one"));
    let all = r.json();
    for s in list.as_array().unwrap() {
        let got = all
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["key"] == s["key"])
            .unwrap_or_else(|| panic!("{} listed: {all}", s["key"]));
        assert_contains(&without_secrets(s.clone()), got, "list");
    }

    // The custom webhook: its answer is the seed's sample response.
    let custom = json!({ "key": "trigger_action", "enabled": true, "event_filter": { "domain": "artifact", "event_types": [ "deployed" ], "criteria": { "anyLocal": true } }, "handlers": [ { "handler_type": "custom-webhook", "url": "https://api.github.com/repos/your/repo/actions/workflows/artifact_deployed.yml/dispatches", "payload": "{ \"ref\": \"main\" , \"inputs\": { \"artifact_path\": \"{{.data.repo_key}}/{{.data.path}}\" } }", "proxy": "mainProxy", "secrets": [ { "name": "token", "value": "***" } ], "http_headers": [ { "name": "Authorization", "value": "Bearer {{.secrets.token}}" }, { "name": "Accept", "value": "application/vnd.github+json" }, { "name": "Content-Type", "value": "application/json" } ] } ] });
    let answer = json!({ "enabled": true, "event_filter": { "criteria": { "anyLocal": true }, "domain": "artifact", "event_types": [ "deployed" ] }, "handlers": [ { "handler_type": "custom-webhook", "http_headers": [ { "name": "Authorization", "value": "Bearer {{.secrets.token}}" }, { "name": "Accept", "value": "application/vnd.github+json" }, { "name": "Content-Type", "value": "application/json" } ], "payload": "{ \"ref\": \"main\" , \"inputs\": { \"artifact_path\": \"{{.data.repo_key}}/{{.data.path}}\" } }", "proxy": "mainProxy", "secrets": [ { "name": "token" } ], "url": "https://api.github.com/repos/your/repo/actions/workflows/artifact_deployed.yml/dispatches" } ], "key": "trigger_action" });
    let r = admin.post(SUBS, &custom);
    assert_eq!(r.status, 201, "{}", r.text);
    assert_contains(&answer, &r.json(), "custom created");
    let got = admin.get(&format!("{SUBS}/trigger_action")).json();
    assert_contains(&answer, &got, "custom get");
    assert_eq!(
        got["event_filter"]["criteria"],
        json!({"anyLocal": true}),
        "exactly as sent, nothing added"
    );

    // The domain rules stay honest: a criterion of another domain, a wrong type, an
    // event type the domain does not have, an unknown domain — each named.
    for (criteria, domain, types, field) in [
        (
            json!({"anyLocal": true}),
            "user",
            json!(["created"]),
            "criteria.anyLocal",
        ),
        (
            json!({"anyLocal": "yes"}),
            "artifact",
            json!(["deployed"]),
            "criteria.anyLocal",
        ),
        (
            json!({"repoKeys": "libs"}),
            "docker",
            json!(["pushed"]),
            "criteria.repoKeys",
        ),
        (
            json!({"selectedBuilds": ["b"]}),
            "artifact",
            json!(["deployed"]),
            "criteria.selectedBuilds",
        ),
        (json!({}), "artifact", json!(["pushed"]), "event_types[0]"),
        (json!({}), "bogus", json!(["x"]), "event_filter.domain"),
    ] {
        let mut s = custom.clone();
        s["key"] = json!("bad");
        s["event_filter"] = json!({"domain": domain, "event_types": types, "criteria": criteria});
        let r = admin.post(SUBS, &s);
        assert_eq!(r.status, 400, "{criteria} on {domain}: {}", r.text);
        assert!(r.error_message().contains(field), "{field}: {}", r.text);
    }
    // Every domain of the seed's table is accepted with its criteria.
    for (domain, event_type, criteria) in [
        (
            "artifact_property",
            "added",
            json!({"anyRemote": true, "repoKeys": ["libs-remote"]}),
        ),
        (
            "docker",
            "pushed",
            json!({"anyLocal": true, "anyFederated": false}),
        ),
        (
            "build",
            "uploaded",
            json!({"anyBuild": false, "selectedBuilds": ["app"], "includePatterns": ["app-*"]}),
        ),
        (
            "release_bundle",
            "signed",
            json!({"anyReleaseBundle": true, "registeredReleaseBundlesNames": []}),
        ),
        (
            "distribution",
            "distribute_completed",
            json!({"anyReleaseBundle": false, "registeredReleaseBundlesNames": ["rb"]}),
        ),
        (
            "artifactory_release_bundle",
            "received",
            json!({"anyReleaseBundle": true}),
        ),
        ("user", "created", json!({"includePatterns": ["qa-*"]})),
    ] {
        let key = format!("seed-{domain}");
        let s = json!({"key": key, "event_filter": {"domain": domain, "event_types": [event_type], "criteria": criteria},
                       "handlers": [{"handler_type": "webhook", "url": "https://hooks.example/in"}]});
        let r = admin.post(SUBS, &s);
        assert_eq!(r.status, 201, "{domain}: {}", r.text);
        let got = r.json();
        assert_eq!(got["event_filter"]["criteria"], criteria, "{domain}");
        assert_eq!(got["status"]["fires"], domain == "user", "{domain}: {got}");
    }
}

/// Seed 004: a subscription to a domain Gatehouse never produces is kept, says so in
/// its status and its deliveries, and gets nothing, while a user-domain subscription
/// beside it gets its event. The test endpoint still reaches the receiver (with data
/// shaped like an artifact event, so the seed's custom payload renders).
#[test]
fn a_never_firing_domain_says_so_and_gets_nothing_while_the_user_domain_does() {
    use crate::deliveries::Receiver;
    let app = TestApp::spawn();
    let admin = app.admin();
    let (artifacts, users) = (Receiver::start(), Receiver::start());
    let r = admin.post(
        SUBS,
        &json!({"key": "deployed", "event_filter": {"domain": "artifact", "event_types": ["deployed", "deleted"],
                 "criteria": {"anyLocal": true, "anyRemote": true, "repoKeys": [], "includePatterns": ["**"]}},
                "handlers": [{"handler_type": "webhook", "url": artifacts.url, "secret": "artifact-hook-secret"}]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.post(
        SUBS,
        &json!({"key": "people", "event_filter": {"domain": "user", "event_types": ["created"]},
                "handlers": [{"handler_type": "webhook", "url": users.url}]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    app.create_user("new-hire", "password-1");
    let got = users.wait_for(1, 30);
    assert_eq!(
        got[0].json()["data"]["username"],
        "new-hire",
        "{:?}",
        got[0].json()
    );

    // The dispatcher has judged that event for both subscriptions by now (it queues a
    // delivery before any worker sends one): the artifact one has nothing.
    let d = admin.get(&format!("{SUBS}/deployed/deliveries")).json();
    assert_eq!(d["pending_count"], 0, "{d}");
    assert_eq!(d["attempts"], json!([]), "{d}");
    assert_eq!(d["status"]["fires"], false, "{d}");
    assert!(
        d["status"]["reason"]
            .as_str()
            .unwrap()
            .contains("never fires"),
        "{d}"
    );
    assert!(artifacts.events().is_empty());
    let d = admin.get(&format!("{SUBS}/people/deliveries")).json();
    assert_eq!(d["status"]["fires"], true, "{d}");
    assert_eq!(d["status"]["reason"], Value::Null, "{d}");

    // The test endpoint with the seed's custom webhook, aimed at the receiver.
    let r = admin.post(
        &format!("{SUBS}/test"),
        &json!({ "key": "trigger_action", "enabled": true, "event_filter": { "domain": "artifact", "event_types": [ "deployed" ], "criteria": { "anyLocal": true } }, "handlers": [ { "handler_type": "custom-webhook", "url": artifacts.url, "payload": "{ \"ref\": \"main\" , \"inputs\": { \"artifact_path\": \"{{.data.repo_key}}/{{.data.path}}\" } }", "proxy": "mainProxy", "secrets": [ { "name": "token", "value": "***" } ], "http_headers": [ { "name": "Authorization", "value": "Bearer {{.secrets.token}}" }, { "name": "Accept", "value": "application/vnd.github+json" }, { "name": "Content-Type", "value": "application/json" } ] } ] }),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["result"], "success", "{}", r.text);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("never fires"),
        "{}",
        r.text
    );
    let got = artifacts.wait_for(1, 30);
    assert_eq!(
        got[0].json(),
        json!({"ref": "main", "inputs": {"artifact_path": "sample-repo/sample/dir/sample.txt"}})
    );
    assert_eq!(got[0].header("authorization"), Some("Bearer ***"));
}

/// The files of a `.tar.gz` support bundle, by name (without the `<id>/` folder).
fn untar(bytes: &[u8]) -> std::collections::BTreeMap<String, Vec<u8>> {
    use std::io::Read;
    let mut files = std::collections::BTreeMap::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    for entry in archive.entries().expect("a tar.gz") {
        let mut entry = entry.expect("an entry");
        let path = entry.path().unwrap().to_string_lossy().to_string();
        let name = path
            .split_once('/')
            .expect("inside the bundle's folder")
            .1
            .to_string();
        let mut body = Vec::new();
        entry.read_to_end(&mut body).unwrap();
        files.insert(name, body);
    }
    files
}

/// Whether `needle` is anywhere in the archive, compressed or not.
fn bundle_holds(
    raw: &[u8],
    files: &std::collections::BTreeMap<String, Vec<u8>>,
    needle: &str,
) -> bool {
    let n = needle.as_bytes();
    raw.windows(n.len()).any(|w| w == n)
        || files.values().any(|b| b.windows(n.len()).any(|w| w == n))
}

const BUNDLE: &str = "/api/system/support/bundle";

/// A GET whose answer is bytes: (status, content type, body).
pub(crate) fn get_bytes(client: &Client, path: &str) -> (u16, String, Vec<u8>) {
    let mut req = ureq::get(&format!("{}{path}", client.base_url()));
    if let Some(a) = client.auth_header() {
        req = req.set("Authorization", &a);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {path}: {e}"),
    };
    let (status, ct) = (resp.status(), resp.content_type().to_string());
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut body).unwrap();
    (status, ct, body)
}

/// Seed 004 "SUPPORT": create (the seed's parameters), list, metadata, archive and
/// delete, admin only. The archive is a real .tar.gz with the configuration (secrets as
/// `<secret>`), system information, the metrics, the chain and checkpoint status; an
/// in-process server keeps no log lines and the bundle says so.
#[test]
fn support_bundles_as_the_seed_writes_them() {
    const SCRAPE: &str = "scrape-token-never-in-a-bundle";
    let app = TestApp::spawn_with(Config {
        metrics_token: Some(gatehouse::config::Secret(SCRAPE.into())),
        ..Config::default()
    });
    let admin = app.admin();
    app.create_user("carol", "Carol-password-1");
    assert_eq!(
        admin.post_empty("/access/api/v1/audit/checkpoints").status,
        201
    );
    let carol = app.as_user("carol", "Carol-password-1");
    assert_eq!(carol.post(BUNDLE, &json!({})).status, 403);
    assert_eq!(carol.get("/api/system/support/bundles").status, 403);
    // A setting the API changed is what the bundle says is in force (it showed the
    // file's value).
    let r = admin.raw(
        "PUT",
        "/artifactory/api/security/userLockPolicy",
        Some("application/json"),
        Some(br#"{"enabled": true, "loginAttempts": 7}"#),
    );
    assert!(r.status < 300, "{}", r.text);
    let r = admin.put(
        "/access/api/v1/config/token/default_expiry",
        &json!({"default_token_expiration": 7200}),
    );
    assert!(r.status < 300, "{}", r.text);

    let r = admin.post(
        BUNDLE,
        &json!({"name": "B1", "description": "abc", "parameters": {"configuration": true, "system": true,
                "logs": {"include": true, "start_date": "2019-02-24", "end_date": "2019-02-24"},
                "thread_dump": {"count": 1, "interval": 0}}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let meta = r.json();
    let id = meta["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("B1-"), "{meta}");
    assert_eq!(meta["status"], "success");
    assert_eq!(meta["parameters"]["logs"]["start_date"], "2019-02-24");
    assert_eq!(meta["parameters"]["thread_dump"]["count"], 1);
    // The seed's own create sample sends blanks for the defaults; an empty body is fine.
    let r = admin.post(
        &format!("{BUNDLE}/"),
        &json!({"name": "", "description": " ", "parameters": {"configuration": " ", "system": " ",
                "logs": {"include": " ", "start_date": " ", "end_date": " "}}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["parameters"]["configuration"], true);
    let second = r.json()["id"].as_str().unwrap().to_string();
    let r = admin.post_empty(BUNDLE);
    assert_eq!(r.status, 200, "{}", r.text);
    let third = r.json()["id"].as_str().unwrap().to_string();
    for (body, field) in [
        (
            json!({"parameters": {"configuration": "maybe"}}),
            "parameters.configuration",
        ),
        (
            json!({"parameters": {"logs": {"start_date": "24/02/2019"}}}),
            "parameters.logs.start_date",
        ),
        (
            json!({"parameters": {"thread_dump": {"count": 1000}}}),
            "parameters.thread_dump.count",
        ),
        (json!({"name": "../etc"}), "name"),
    ] {
        let r = admin.post(BUNDLE, &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.error_message().contains(field), "{field}: {}", r.text);
    }

    let r = admin.get("/api/system/support/bundles");
    assert_eq!(r.status, 200, "{}", r.text);
    let list = r.json();
    assert_eq!(list["count"], 3, "{list}");
    assert_eq!(
        list["bundles"][0]["id"],
        id.as_str(),
        "oldest first: {list}"
    );
    assert_eq!(list["bundles"][0]["description"], "abc");
    let one = admin.get(&format!("{BUNDLE}/{id}")).json();
    assert_eq!(one["name"], "B1");
    assert!(
        one["access"]["bundle_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/{id}/archive")),
        "{one}"
    );
    assert_eq!(admin.get(&format!("{BUNDLE}/nope-1")).status, 404);
    assert_eq!(carol.get(&format!("{BUNDLE}/{id}/archive")).status, 403);

    let (status, content_type, raw) = get_bytes(&admin, &format!("{BUNDLE}/{id}/archive"));
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/gzip");
    let files = untar(&raw);
    for f in [
        "manifest.json",
        "configuration.txt",
        "system.txt",
        "metrics.txt",
        "chain.json",
        "logs/gatehouse.log",
        "threads.txt",
    ] {
        assert!(files.contains_key(f), "{f} in {:?}", files.keys());
    }
    let text = |f: &str| String::from_utf8_lossy(&files[f]).to_string();
    assert!(
        text("configuration.txt").contains("metrics_token: Some(\n        <secret>"),
        "{}",
        text("configuration.txt")
    );
    assert!(
        text("configuration.txt").contains("user lock policy: enabled true, login attempts 7"),
        "{}",
        text("configuration.txt")
    );
    assert!(text("system.txt").contains("log position"));
    assert!(
        text("system.txt").contains("token default expiry: 7200 s"),
        "{}",
        text("system.txt")
    );
    assert!(text("metrics.txt").contains("gatehouse_log_position"));
    let chain: Value = serde_json::from_slice(&files["chain.json"]).unwrap();
    assert_eq!(chain["verify"]["ok"], true, "{chain}");
    assert_eq!(chain["checkpoints"]["check"]["ok"], true, "{chain}");
    assert_eq!(chain["checkpoints"]["count"], 1, "{chain}");
    assert_eq!(
        chain["head"]["hash"], chain["verify"]["head_hash"],
        "{chain}"
    );
    assert!(
        text("logs/gatehouse.log").contains("keeps no log lines"),
        "{}",
        text("logs/gatehouse.log")
    );
    assert!(text("threads.txt").contains("tid\tstate\tname"));
    for secret in [SCRAPE, app.admin_password.as_str(), "Carol-password-1"] {
        assert!(
            !bundle_holds(&raw, &files, secret),
            "a secret is in the bundle"
        );
    }
    // The bundles live in <data-dir>/support/.
    assert!(app
        .dir
        .join("support")
        .join(format!("{id}.tar.gz"))
        .exists());

    // Without configuration and system, those files are left out.
    let r = admin.post(BUNDLE, &json!({"parameters": {"configuration": false, "system": "false", "logs": false, "thread_dump": {"count": 0}}}));
    assert_eq!(r.status, 200, "{}", r.text);
    let lean = r.json()["id"].as_str().unwrap().to_string();
    let files = untar(&get_bytes(&admin, &format!("{BUNDLE}/{lean}/archive")).2);
    assert_eq!(files.keys().collect::<Vec<_>>(), vec!["manifest.json"]);

    for gone in [&id, &second, &third, &lean] {
        assert_eq!(admin.delete(&format!("{BUNDLE}/{gone}")).status, 204);
    }
    assert_eq!(admin.delete(&format!("{BUNDLE}/{id}")).status, 404);
    assert_eq!(admin.get(&format!("{BUNDLE}/{id}/archive")).status, 404);
    assert_eq!(admin.get("/api/system/support/bundles").json()["count"], 0);
    assert!(!app
        .dir
        .join("support")
        .join(format!("{id}.tar.gz"))
        .exists());
}

/// The real binary keeps its newest log lines for bundles; nothing secret is in them:
/// not the admin password, a token, a webhook secret or the scrape token.
#[test]
fn a_support_bundle_carries_recent_log_lines_and_no_secret() {
    use crate::helpers::{ServerProcess, BINARY_ADMIN_PASSWORD};
    const SCRAPE: &str = "binary-scrape-token-kept-out";
    const HOOK_SECRET: &str = "webhook-secret-kept-out";
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(&config, format!("metrics-token = \"{SCRAPE}\"\n")).unwrap();
    let data = dir.path().join("data");
    let server = ServerProcess::spawn_with_args(
        &data,
        "info",
        std::process::Stdio::null(),
        Some(&config),
        "127.0.0.1:0",
        &[],
    );
    let admin = server.admin();
    let t = token(
        &admin,
        json!({"scope": "applied-permissions/admin", "refreshable": true, "expires_in": 0}),
    );
    let access = t["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        bearer_at(&server.base, &access)
            .get("/access/api/v1/system/ping")
            .status,
        200
    );
    let r = admin.post(
        SUBS,
        &json!({"key": "hook", "event_filter": {"domain": "user", "event_types": ["created"]},
                "handlers": [{"handler_type": "webhook", "url": "https://hooks.example/in", "secret": HOOK_SECRET}]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.post(BUNDLE, &json!({"name": "help"}));
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let raw = get_bytes(&admin, &format!("{BUNDLE}/{id}/archive")).2;
    let files = untar(&raw);
    let log = String::from_utf8_lossy(&files["logs/gatehouse.log"]).to_string();
    assert!(
        log.contains("/event/api/v1/subscriptions") && log.contains("request"),
        "the access lines of this server: {log}"
    );
    let config_text = String::from_utf8_lossy(&files["configuration.txt"]).to_string();
    assert!(config_text.contains("<secret>"), "{config_text}");
    // On disk, the owner's only (they were 0644 in a 0755 directory).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let support = data.join("support");
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&support), 0o700);
        for entry in std::fs::read_dir(&support).unwrap() {
            let path = entry.unwrap().path();
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
    for secret in [
        SCRAPE,
        BINARY_ADMIN_PASSWORD,
        HOOK_SECRET,
        access.as_str(),
        t["refresh_token"].as_str().unwrap(),
    ] {
        assert!(
            !bundle_holds(&raw, &files, secret),
            "a secret is in the bundle: {secret}"
        );
    }
    // A date range with no lines says so.
    let r = admin.post(
        BUNDLE,
        &json!({"parameters": {"logs": {"start_date": "2001-01-01", "end_date": "2001-01-02"}}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let files = untar(
        &get_bytes(
            &admin,
            &format!("{BUNDLE}/{}/archive", r.json()["id"].as_str().unwrap()),
        )
        .2,
    );
    assert!(String::from_utf8_lossy(&files["logs/gatehouse.log"])
        .contains("No log lines kept for this range"));
}

fn bearer_at(base: &str, token: &str) -> Client {
    Client::new(base, None).with_header_auth(&format!("Bearer {token}"))
}

/// Seed 004 "Enable Log Collection" collects logs into an Artifactory repository;
/// Gatehouse has none, and says so (and where its logs are) instead of pretending.
#[test]
fn log_shipping_says_why_there_is_none() {
    let app = TestApp::spawn();
    let r = app.admin().post(
        "/access/api/v1/logshipping/config",
        &json!({"enabled": true}),
    );
    assert_eq!(r.status, 404, "{}", r.text);
    let m = r.error_message();
    assert!(
        m.contains("no log shipping") && m.contains("audit/events") && m.contains("support/bundle"),
        "{m}"
    );
}

/// Rows of a second audit of the seeds: seeds 000/001 "Version level entitlements are
/// available in all repository types except Maven"; seed 004's recurring `realm` query
/// string of the user list; its federation curls, which end in a slash.
#[test]
fn seed_rows_found_differing_in_the_second_audit() {
    let app = TestApp::spawn();
    let admin = app.admin();
    for (key, kind) in [("mvn-local", "maven"), ("npm-local", "npm")] {
        let r = admin.put(
            &format!("/artifactory/api/repositories/{key}"),
            &json!({"rclass": "local", "packageType": kind}),
        );
        assert!(r.status == 200 || r.status == 201, "{}", r.text);
    }
    let org = "/access/api/v1/orgs/myorg";
    let r = admin.post(
        &format!("{org}/access_keys"),
        &json!({"id": "bob", "password": "secret-secret"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let version = |repo: &str| {
        admin.post(
            &format!("{org}/entitlements"),
            &json!({"repo": repo, "package": "com.acme:lib", "version": "1.0",
                    "access": "rw", "access_keys": ["bob"]}),
        )
    };
    let r = version("mvn-local");
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.error_message().contains("Maven"), "{}", r.text);
    assert_eq!(version("npm-local").status, 201);
    // A version entitlement kept from before its repository was registered as Maven
    // may still be narrowed (every PATCH of it was refused).
    let kept = version("later-mvn");
    assert_eq!(kept.status, 201, "{}", kept.text);
    let kept = kept.json()["id"].as_str().unwrap().to_string();
    let r = admin.put(
        "/artifactory/api/repositories/later-mvn",
        &json!({"rclass": "local", "packageType": "maven"}),
    );
    assert!(r.status < 300, "{}", r.text);
    let r = admin.patch(
        &format!("{org}/entitlements/{kept}"),
        &json!({"access": "r", "access_keys_remove": ["bob"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // The package of a Maven repository may be entitled.
    let r = admin.post(
        &format!("{org}/entitlements"),
        &json!({"repo": "mvn-local", "package": "com.acme:lib", "access": "r", "access_keys": ["bob"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    // … and covers the package where Maven keeps it (`com/acme/lib/…`: it matched
    // only `com.acme:lib/…`, which no Maven client asks for).
    let bob = app.anon().with_header_auth(&format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "bob@myorg:secret-secret"
        )
    ));
    for (path, allowed) in [
        ("mvn-local/com/acme/lib/1.0/lib-1.0.jar", true),
        ("mvn-local/com/acme/lib/maven-metadata.xml", true),
        ("mvn-local/com/acme/library/1.0/library-1.0.jar", false),
        ("mvn-local/com/acme/other/1.0/other-1.0.jar", false),
    ] {
        let r = bob.get(&format!(
            "/access/api/v1/authorize?resource={path}&action=read"
        ));
        assert_eq!(r.status == 200, allowed, "{path}: {}", r.text);
    }

    app.create_user("dave", "Dave-password-1");
    let names = |q: &str| -> Vec<String> {
        let r = admin.get(&format!("/access/api/v2/users?{q}"));
        assert_eq!(r.status, 200, "{q}: {}", r.text);
        r.json()["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(names("realm=internal").contains(&"dave".to_string()));
    assert_eq!(names("realm=ldap"), Vec::<String>::new());
    assert_eq!(names("realm=LDAP"), Vec::<String>::new());
    assert_eq!(names("realm=oidc"), Vec::<String>::new());

    let r = admin.get("/access/api/v1/system/federation/");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json(),
        admin.get("/access/api/v1/system/federation").json()
    );
}

/// From a review: an admin demoted or disabled after making a pairing token could still
/// exchange it for a never-expiring admin token and a trusted key of its choosing; the
/// exchange took the bearer scheme in one spelling only.
#[test]
fn a_pairing_token_is_worth_only_what_its_creator_still_is() {
    let a = TestApp::spawn();
    let b = TestApp::spawn();
    let aa = a.admin();
    let r = aa.post(
        "/access/api/v2/users",
        &json!({"username": "carol", "email": "c@example.com", "password": "Builder-42x!!", "admin": true}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let carol = a.as_user("carol", "Builder-42x!!");
    let r = carol.post_empty("/artifactory/api/v1/service_trust/pairing/federation");
    assert_eq!(r.status, 200, "{}", r.text);
    let pairing = r.json()["pairing_token"].as_str().unwrap().to_string();
    // Any spelling of the scheme reaches the body's check (a bad key: 400, not 401).
    let r = a
        .anon()
        .with_header_auth(&format!("bearer {pairing}"))
        .post(
            "/access/api/v1/service_trust/pairing/exchange",
            &json!({"service_id": "jfac@01evil2", "certificate": "not a key"}),
        );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = aa.patch("/access/api/v2/users/carol", &json!({"admin": false}));
    assert!(r.status < 300, "{}", r.text);
    let trusted_before = aa.get("/access/api/v1/cert/trusted").text;
    let r = b.admin().put(
        "/artifactory/api/v1/service_trust/pairing/federation",
        &json!({"pairing_token": pairing}),
    );
    assert!(r.status >= 400, "{}", r.text);
    assert!(r.text.contains("no longer an enabled admin"), "{}", r.text);
    assert_eq!(
        aa.get("/access/api/v1/cert/trusted").text,
        trusted_before,
        "no key was trusted"
    );
}

/// From a review: an RS256 token without `kid` was "not a JWT" (README: RS256 tokens are
/// tried against every trusted RSA key); a peer's subject with a line break or a
/// right-to-left override was taken, and reached the audit trail as an actor; a 50 KB
/// `kid` came back whole in the 401.
#[test]
fn a_trusted_jfrogs_tokens_need_no_kid_and_a_sane_subject() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.post(
        "/access/api/v1/cert/trusted",
        &json!({"name": "jfrog-eu", "certificate": include_str!("fixtures/jfrog-root.crt")}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let key = EncodingKey::from_rsa_pem(include_bytes!("fixtures/jfrog-rsa.key")).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sign = |sub: &str, kid: Option<String>| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = kid;
        let claims = json!({"sub": format!("jfrt@01testjfrogservice0000000/users/{sub}"),
            "scp": "applied-permissions/admin", "aud": "*@*", "iss": "jfrt@01testjfrogservice0000000",
            "iat": now, "exp": now + 600, "jti": format!("j-{}", sub.len())});
        encode(&header, &claims, &key).unwrap()
    };
    let r = bearer(&app, &sign("admin", None)).get("/access/api/v2/users");
    assert_eq!(r.status, 200, "no kid: {}", r.text);
    for bad in ["ad\nmin", "ad\u{202e}min", "a\u{0}b"] {
        let r = bearer(&app, &sign(bad, None)).get("/access/api/v2/users");
        assert_eq!(r.status, 401, "{bad:?}: {}", r.text);
    }
    // An EdDSA token naming an unknown key of 50 KB: the answer does not repeat it.
    let long_kid = "k".repeat(50_000);
    let header = format!(r#"{{"alg":"EdDSA","kid":"{long_kid}"}}"#);
    let b64 = |s: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let forged = format!(
        "{}.{}.{}",
        b64(header.as_bytes()),
        b64(b"{}"),
        b64(&[0u8; 64])
    );
    let r = bearer(&app, &forged).get("/access/api/v2/users");
    assert!(r.status == 401 || r.status == 431, "{}", r.status);
    assert!(r.text.len() < 2_000, "{} bytes", r.text.len());
}

/// From a review: a reference token was taken here while its audience left this server
/// out (its JWT was refused); another server's admin token refreshed a local pair into a
/// local admin token (issuing one with it is refused); a user created later under a
/// transient identity's name revoked that identity's token through Artifactory's API.
#[test]
fn reference_tokens_refreshes_and_revocations_keep_the_rules_of_issue() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_group("devs");
    app.create_user("alice", "Wonderland-42x");
    let alice = app.as_user("alice", "Wonderland-42x");
    let t = token(
        &alice,
        json!({"audience": "jfxr@*", "include_reference_token": true, "expires_in": 86400}),
    );
    let reference = t["reference_token"].as_str().unwrap();
    assert_eq!(
        bearer(&app, t["access_token"].as_str().unwrap())
            .get("/access/api/v1/tokens/me")
            .status,
        401
    );
    let r = bearer(&app, reference).get("/access/api/v2/users/alice");
    assert_eq!(r.status, 401, "{}", r.text);
    // Another server's admin token cannot turn a pair into a local admin token.
    let r = admin.post(
        "/access/api/v1/cert/trusted",
        &json!({"name": "jfrog-eu", "certificate": include_str!("fixtures/jfrog-root.crt")}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let peer = jfrog_token(
        include_bytes!("fixtures/jfrog-rsa.key"),
        "applied-permissions/admin",
    );
    let pair = token(&alice, json!({"refreshable": true, "expires_in": 86400}));
    let r = bearer(&app, &peer).post(
        "/access/api/v1/tokens",
        &json!({"grant_type": "refresh_token", "refresh_token": pair["refresh_token"],
                "access_token": pair["access_token"], "scope": "applied-permissions/admin", "expires_in": 0}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    // A transient identity's token is no later user's.
    let ci = token(
        &admin,
        json!({"username": "ci-job", "scope": "applied-permissions/groups:devs", "expires_in": 86400}),
    );
    app.create_user("ci-job", "Wonderland-42x");
    let r = app.as_user("ci-job", "Wonderland-42x").raw(
        "POST",
        "/artifactory/api/security/token/revoke",
        Some("application/x-www-form-urlencoded"),
        Some(format!("token_id={}", ci["token_id"].as_str().unwrap()).as_bytes()),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    let id = ci["token_id"].as_str().unwrap();
    assert_eq!(
        admin.get(&format!("/access/api/v1/tokens/{id}")).status,
        200,
        "still there"
    );
}

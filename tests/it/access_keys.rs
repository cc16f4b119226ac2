//! Bintray-style access keys and entitlements, and access keys as scoped principals in
//! the authorize decision (issue 4).

use crate::helpers::{Client, TestApp};
use gatehouse::Config;
use serde_json::json;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;

const ORG: &str = "/access/api/v1/orgs/myorg";

fn key(admin: &Client, body: serde_json::Value) -> serde_json::Value {
    let r = admin.post(&format!("{ORG}/access_keys"), &body);
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()
}

fn entitlement(admin: &Client, body: serde_json::Value) -> serde_json::Value {
    let r = admin.post(&format!("{ORG}/entitlements"), &body);
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()
}

/// (status, allowed, via) of an authorize question.
fn ask(
    client: &Client,
    resource: &str,
    action: &str,
    headers: &[(&str, &str)],
) -> (u16, bool, String) {
    let r = client.get_with(
        &format!("/access/api/v1/authorize?resource={resource}&action={action}"),
        headers,
    );
    let body: serde_json::Value = serde_json::from_str(&r.text).unwrap_or(json!({}));
    (
        r.status,
        body["allowed"].as_bool().unwrap_or(false),
        body["via"]
            .as_str()
            .or(body["errors"][0]["message"].as_str())
            .unwrap_or("")
            .to_string(),
    )
}

#[test]
fn access_keys_crud_without_ever_showing_a_password() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let k = key(
        &admin,
        json!({"id": "bob", "password": "secret-pass", "expiry": 7956915742000u64,
               "existence_check": {"url": "http://127.0.0.1:9/users/bob", "cache_for_secs": 60},
               "white_cidrs": ["127.0.0.1/22"], "black_cidrs": ["10.0.0.1/23"]}),
    );
    assert_eq!(k["username"], "bob@myorg");
    assert_eq!(
        k["allowed_cidrs"],
        json!(["127.0.0.1/22"]),
        "Bintray's white_cidrs"
    );
    assert_eq!(k["blocked_cidrs"], json!(["10.0.0.1/23"]));
    assert!(
        k.get("password").is_none(),
        "a given password is not echoed"
    );
    let generated = key(&admin, json!({"id": "carol"}));
    let pw = generated["password"]
        .as_str()
        .expect("a generated password is shown once");
    assert!(pw.len() >= 20);
    let text = admin.get(&format!("{ORG}/access_keys/carol")).text;
    assert!(!text.contains(pw) && !text.contains("argon2"), "{text}");
    let all = admin.get(&format!("{ORG}/access_keys")).text;
    assert!(!all.contains("argon2") && !all.contains("secret-pass"));
    assert_eq!(
        admin
            .post(&format!("{ORG}/access_keys"), &json!({"id": "bob"}))
            .status,
        409
    );
    let r = admin.post(
        "/access/api/v1/orgs/my:org/access_keys",
        &json!({"id": "zz", "password": "secret-pass"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.error_message().contains("`org`"), "{}", r.text);
    for (body, needle) in [
        (
            json!({"id": "x", "allowed_cidrs": ["10.0.0.0/33"]}),
            "allowed_cidrs[0]",
        ),
        (
            json!({"id": "x", "blocked_cidrs": ["nope"]}),
            "blocked_cidrs[0]",
        ),
        (json!({"id": "x", "password": "short"}), "password"),
        (json!({"id": "a@b"}), "id"),
        // Basic credentials end the user part at the first `:`: it could never sign in.
        (json!({"id": "a:b"}), "id"),
        (json!({}), "id"),
        (json!({"id": "x", "expiry": "tomorrow"}), "expiry"),
        (
            json!({"id": "x", "existence_check": {"url": "ftp://x"}}),
            "existence_check.url",
        ),
        (
            json!({"id": "x", "existence_check": {"url": "http://svc:Sup3r@127.0.0.1:9/check"}}),
            "existence_check.url",
        ),
        // URLs the call could not be made to: refused, not stored.
        (
            json!({"id": "x", "existence_check": {"url": "http://127.0.0.1:99999/check"}}),
            "existence_check.url",
        ),
        (
            json!({"id": "x", "existence_check": {"url": "http://127.0.0.1:0/check"}}),
            "existence_check.url",
        ),
        // An unknown field is ignored (named in X-Gatehouse-Ignored-Fields), never masks
        // a bad one.
        (
            json!({"id": "x", "colour": 1, "expiry": "tomorrow"}),
            "expiry",
        ),
    ] {
        let r = admin.post(&format!("{ORG}/access_keys"), &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.error_message().contains(needle), "{body}: {}", r.text);
    }
    // PATCH: null removes the expiry and the check.
    let r = admin.patch(
        &format!("{ORG}/access_keys/bob"),
        &json!({"expiry": null, "existence_check": null, "allowed_cidrs": []}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["expiry"], serde_json::Value::Null);
    assert_eq!(r.json()["existence_check"], serde_json::Value::Null);
    assert_eq!(
        admin
            .patch(&format!("{ORG}/access_keys/ghost"), &json!({}))
            .status,
        404
    );
    // Users and access keys sign in by the same names: one namespace.
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "bob@myorg", "password": "password-1"}),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    app.create_user("dave@otherorg", "password-1");
    let r = admin.post(
        "/access/api/v1/orgs/otherorg/access_keys",
        &json!({"id": "dave"}),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    // Only admins manage keys.
    app.create_user("plain", "password-1");
    let plain = app.as_user("plain", "password-1");
    assert_eq!(plain.get(&format!("{ORG}/access_keys")).status, 403);
    assert_eq!(admin.delete(&format!("{ORG}/access_keys/bob")).status, 204);
    assert_eq!(admin.delete(&format!("{ORG}/access_keys/bob")).status, 404);
    assert_eq!(admin.get(&format!("{ORG}/access_keys/bob")).status, 404);
}

#[test]
fn entitlements_crud_tags_and_search() {
    let app = TestApp::spawn();
    let admin = app.admin();
    key(&admin, json!({"id": "bob", "password": "secret-pass"}));
    key(&admin, json!({"id": "eve", "password": "secret-pass"}));
    let e1 = entitlement(
        &admin,
        json!({"repo": "client1-images", "access": "rw", "access_keys": ["bob"], "tags": ["gold", "eu"]}),
    );
    assert_eq!(e1["scope"], "repository `client1-images`");
    let e2 = entitlement(
        &admin,
        json!({"repo": "libs", "package": "app", "version": "1.0", "access": "r", "access_keys": ["bob", "eve"], "tags": ["eu"]}),
    );
    entitlement(
        &admin,
        json!({"repo": "libs", "path": "/docs/public/", "access": "r", "access_keys": ["eve"]}),
    );
    for (body, needle) in [
        (
            json!({"repo": "libs", "access": "x", "access_keys": []}),
            "access",
        ),
        (
            json!({"repo": "libs", "access": "r", "access_keys": ["ghost"]}),
            "access_keys[0]",
        ),
        (
            json!({"repo": "libs", "version": "1", "access": "r"}),
            "version",
        ),
        (
            json!({"repo": "libs", "package": "a", "path": "b", "access": "r"}),
            "path",
        ),
        (
            json!({"repo": "libs", "path": "a/../b", "access": "r"}),
            "path",
        ),
        (json!({"repo": "bad repo", "access": "r"}), "repo"),
        (
            json!({"repo": "libs", "access": "r", "tags": [""]}),
            "tags[0]",
        ),
        (json!({"access": "r"}), "repo"),
    ] {
        let r = admin.post(&format!("{ORG}/entitlements"), &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.error_message().contains(needle), "{body}: {}", r.text);
    }
    let ids = |query: &str| -> Vec<String> {
        let r = admin.get(&format!("{ORG}/entitlements{query}"));
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids("").len(), 3);
    assert_eq!(ids("?tag=eu").len(), 2);
    assert_eq!(ids("?tag=gold"), vec![e1["id"].as_str().unwrap()]);
    assert_eq!(ids("?access_key=eve").len(), 2);
    assert_eq!(
        ids("?repo=libs&package=app&version=1.0"),
        vec![e2["id"].as_str().unwrap()]
    );
    assert_eq!(ids("?repo=libs&path=docs/public").len(), 1);
    assert_eq!(ids("?access=rw").len(), 1);
    assert!(ids("?tag=eu&access_key=nobody").is_empty());
    // A misspelt filter is refused, not ignored (it answered every entitlement).
    let r = admin.get(&format!("{ORG}/entitlements?key=client1"));
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.error_message().contains("`key`"), "{}", r.text);
    assert!(admin
        .get("/access/api/v1/orgs/otherorg/entitlements")
        .json()
        .as_array()
        .unwrap()
        .is_empty());
    // Tags and keys added and removed on an existing entitlement.
    let path = format!("{ORG}/entitlements/{}", e1["id"].as_str().unwrap());
    let r = admin.patch(
        &path,
        &json!({"tags_add": ["vip"], "tags_remove": ["eu"], "access_keys_add": ["eve"], "access_keys_remove": ["bob"], "access": "r"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let e = admin.get(&path).json();
    assert_eq!(e["tags"], json!(["gold", "vip"]));
    assert_eq!(e["access_keys"], json!(["eve"]));
    assert_eq!(e["access"], "r");
    let r = admin.patch(&path, &json!({"access_keys_add": ["eve", "ghost"]}));
    assert_eq!(r.status, 400, "{}", r.text);
    // Named as sent, not by its place in the merged list.
    assert!(
        r.error_message().contains("`access_keys_add[1]`"),
        "{}",
        r.text
    );
    // What it is on cannot change (it was ignored, 200); sent back as it is, it is fine.
    let before = admin.get(&path).json();
    for (field, value) in [
        ("repo", json!("elsewhere")),
        ("package", json!("other-pkg")),
        ("path", json!("p")),
        ("id", json!("another-id")),
        // Wrong types are 400 too (they passed where the entitlement had no such value).
        ("version", json!(["1"])),
        ("path", json!(false)),
    ] {
        let r = admin.patch(&path, &json!({ field: value }));
        assert_eq!(r.status, 400, "{field}: {}", r.text);
        assert!(
            r.error_message().contains(&format!("`{field}`")),
            "{}",
            r.text
        );
    }
    assert_eq!(admin.get(&path).json(), before);
    let mut whole = before.clone();
    whole["access"] = json!("rw");
    let r = admin.patch(&path, &whole);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["access"], "rw");
    // A value both added and removed is a contradiction (the add won, silently).
    for body in [
        json!({"access_keys_add": ["eve"], "access_keys_remove": ["eve"]}),
        json!({"tags_add": ["x"], "tags_remove": ["x"]}),
    ] {
        let r = admin.patch(&path, &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text);
    }
    // Deleting a key takes it out of its entitlements.
    assert_eq!(admin.delete(&format!("{ORG}/access_keys/eve")).status, 204);
    assert_eq!(admin.get(&path).json()["access_keys"], json!([]));
    assert_eq!(admin.delete(&path).status, 204);
    assert_eq!(admin.get(&path).status, 404);
    assert_eq!(admin.delete(&path).status, 404);
    assert_eq!(
        admin
            .get(&format!(
                "/access/api/v1/orgs/otherorg/entitlements/{}",
                e2["id"].as_str().unwrap()
            ))
            .status,
        404,
        "an entitlement belongs to its org"
    );
}

#[test]
fn an_access_key_is_a_scoped_principal() {
    let app = TestApp::spawn();
    let admin = app.admin();
    key(&admin, json!({"id": "bob", "password": "secret-pass"}));
    entitlement(
        &admin,
        json!({"repo": "client1-images", "access": "rw", "access_keys": ["bob"]}),
    );
    entitlement(
        &admin,
        json!({"repo": "libs", "package": "app", "version": "1.0", "access": "r", "access_keys": ["bob"]}),
    );
    entitlement(
        &admin,
        json!({"repo": "docs", "path": "public/en", "access": "r", "access_keys": ["bob"]}),
    );
    let bob = app.as_user("bob@myorg", "secret-pass");
    let (status, ok, via) = ask(
        &bob,
        "client1-images/app/latest/manifest.json",
        "write",
        &[],
    );
    assert_eq!((status, ok), (200, true), "{via}");
    assert!(
        via.starts_with("entitlement `") && via.contains("access key `bob@myorg`"),
        "{via}"
    );
    assert!(ask(&bob, "client1-images/x", "read", &[]).1);
    assert!(
        !ask(&bob, "client1-images/x", "delete", &[]).1,
        "rw is push and pull"
    );
    assert!(ask(&bob, "libs/app/1.0/app-1.0.jar", "read", &[]).1);
    assert!(
        !ask(&bob, "libs/app/1.0/app-1.0.jar", "write", &[]).1,
        "r is read only"
    );
    assert!(
        !ask(&bob, "libs/app/1.1/app-1.1.jar", "read", &[]).1,
        "another version"
    );
    assert!(
        !ask(&bob, "libs/app/1.0-rc/x", "read", &[]).1,
        "a prefix is not a parent"
    );
    assert!(ask(&bob, "docs/public/en/index.html", "read", &[]).1);
    assert!(ask(&bob, "docs/public/en", "read", &[]).1);
    assert!(!ask(&bob, "docs/public/fr/index.html", "read", &[]).1);
    assert_eq!(ask(&bob, "other/x", "read", &[]).0, 403);
    // Scoped: nothing of the management API, no tokens, no asking for others.
    for path in [
        "/access/api/v2/users",
        "/access/api/v2/users/bob@myorg",
        "/access/api/v1/tokens",
        "/artifactory/api/repositories",
    ] {
        let r = bob.get(path);
        assert_eq!(r.status, 403, "{path}: {}", r.text);
    }
    let r = bob.post(
        "/access/api/v1/tokens",
        &json!({"scope": "applied-permissions/user"}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    let r = bob.get("/access/api/v1/authorize?resource=client1-images/x&action=read&user=admin");
    assert_eq!(r.status, 403, "{}", r.text);
    // Wrong password: 401 like any bad credentials.
    let wrong = app.as_user("bob@myorg", "not-the-pass");
    assert_eq!(ask(&wrong, "client1-images/x", "read", &[]).0, 401);
    // An admin may ask on the key's behalf and list what it holds.
    let r =
        admin.get("/access/api/v1/authorize?resource=libs/app/1.0/a&action=read&user=bob@myorg");
    assert_eq!(r.status, 200, "{}", r.text);
    let eff = admin
        .get("/access/api/v1/authorize/effective?user=bob@myorg")
        .json();
    assert_eq!(eff["entitlements"].as_array().unwrap().len(), 3, "{eff}");
    // A new password applies at once (the cached sign-in is keyed to the key's record).
    admin.patch(
        &format!("{ORG}/access_keys/bob"),
        &json!({"password": "other-pass"}),
    );
    assert_eq!(ask(&bob, "client1-images/x", "read", &[]).0, 401);
    assert!(
        ask(
            &app.as_user("bob@myorg", "other-pass"),
            "client1-images/x",
            "read",
            &[]
        )
        .1
    );
    // A deleted key signs in no more.
    admin.delete(&format!("{ORG}/access_keys/bob"));
    assert_eq!(
        ask(
            &app.as_user("bob@myorg", "other-pass"),
            "client1-images/x",
            "read",
            &[]
        )
        .0,
        401
    );
}

#[test]
fn expired_keys_and_client_networks() {
    let app = TestApp::spawn();
    let admin = app.admin();
    // A time already past is refused when given: this key expires a moment from now.
    let soon = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 1500;
    key(
        &admin,
        json!({"id": "old", "password": "secret-pass", "expiry": soon}),
    );
    key(
        &admin,
        json!({"id": "net", "password": "secret-pass", "allowed_cidrs": ["10.0.0.0/8"], "blocked_cidrs": ["10.9.0.0/16"]}),
    );
    key(
        &admin,
        json!({"id": "local", "password": "secret-pass", "allowed_cidrs": ["127.0.0.0/8"]}),
    );
    entitlement(
        &admin,
        json!({"repo": "r", "access": "r", "access_keys": ["old", "net", "local"]}),
    );
    std::thread::sleep(std::time::Duration::from_millis(2000));
    let (status, _, msg) = ask(&app.as_user("old@myorg", "secret-pass"), "r/x", "read", &[]);
    assert_eq!(status, 401);
    assert!(msg.contains("expired"), "{msg}");
    // An admin asking on its behalf hears the same: nothing (it said allowed).
    let (status, allowed, msg) = ask(&admin, "r/x&user=old@myorg", "read", &[]);
    assert_eq!((status, allowed), (403, false), "{msg}");
    assert!(msg.contains("expired"), "{msg}");
    let (status, allowed, msg) = ask(&admin, "r/x&user=local@myorg", "read", &[]);
    assert_eq!((status, allowed), (200, true), "{msg}");
    let local = app.as_user("local@myorg", "secret-pass");
    assert!(
        ask(&local, "r/x", "read", &[]).1,
        "127.0.0.1 is in 127.0.0.0/8"
    );
    let net = app.as_user("net@myorg", "secret-pass");
    let (status, _, msg) = ask(&net, "r/x", "read", &[]);
    assert_eq!(status, 401);
    assert!(msg.contains("not in the key's allowed CIDRs"), "{msg}");
    // Without a trusted proxy configured, X-Forwarded-For is the client's own claim.
    let xff = [("X-Forwarded-For", "10.1.2.3")];
    assert_eq!(
        ask(&net, "r/x", "read", &xff).0,
        401,
        "X-Forwarded-For is not believed"
    );
    assert!(
        ask(&local, "r/x", "read", &[("X-Forwarded-For", "192.0.2.1")]).1,
        "an untrusted X-Forwarded-For changes nothing"
    );
    drop(app);

    // Behind a trusted proxy (this test's loopback), the forwarded address counts.
    let config = Config {
        trusted_proxies: vec!["127.0.0.1/32".into()],
        ..Config::default()
    };
    let app = TestApp::spawn_with(config);
    let admin = app.admin();
    key(
        &admin,
        json!({"id": "net", "password": "secret-pass", "allowed_cidrs": ["10.0.0.0/8"], "blocked_cidrs": ["10.9.0.0/16"]}),
    );
    entitlement(
        &admin,
        json!({"repo": "r", "access": "r", "access_keys": ["net"]}),
    );
    let net = app.as_user("net@myorg", "secret-pass");
    assert!(ask(&net, "r/x", "read", &[("X-Forwarded-For", "10.1.2.3")]).1);
    // The right-most untrusted hop is the client; what it prepends is ignored.
    assert!(
        ask(
            &net,
            "r/x",
            "read",
            &[("X-Forwarded-For", "192.0.2.1, 10.1.2.3, 127.0.0.1")]
        )
        .1
    );
    assert_eq!(
        ask(
            &net,
            "r/x",
            "read",
            &[("X-Forwarded-For", "10.1.2.3, 192.0.2.1")]
        )
        .0,
        401
    );
    let (status, _, msg) = ask(&net, "r/x", "read", &[("X-Forwarded-For", "10.9.1.1")]);
    assert_eq!(status, 401);
    assert!(msg.contains("blocked"), "{msg}");
    // An entry that does not parse is the client's claim: the client is unknown, and a
    // key with CIDRs refuses it (the proxy's own address was taken instead, and a
    // blocked client passed by appending garbage). `address:port` is the address.
    let (status, _, msg) = ask(
        &net,
        "r/x",
        "read",
        &[("X-Forwarded-For", "10.9.1.1, garbage")],
    );
    assert_eq!(status, 401, "{msg}");
    assert!(msg.contains("unknown"), "{msg}");
    let (status, _, msg) = ask(&net, "r/x", "read", &[("X-Forwarded-For", "10.9.1.1:5555")]);
    assert_eq!(status, 401, "{msg}");
    assert!(msg.contains("blocked"), "{msg}");
    assert!(ask(&net, "r/x", "read", &[("X-Forwarded-For", "10.1.2.3:5555")]).1);
    // The same address in its IPv4-mapped IPv6 form (what a dual-stack listener sees):
    // still blocked, still allowed.
    let (status, _, msg) = ask(
        &net,
        "r/x",
        "read",
        &[("X-Forwarded-For", "::ffff:10.9.1.1")],
    );
    assert_eq!(status, 401, "{msg}");
    assert!(msg.contains("blocked"), "{msg}");
    assert!(
        ask(
            &net,
            "r/x",
            "read",
            &[("X-Forwarded-For", "::ffff:10.1.2.3")]
        )
        .1
    );
    // A network written in the mapped form is the IPv4 network.
    key(
        &admin,
        json!({"id": "mapped", "password": "secret-pass", "blocked_cidrs": ["::ffff:10.9.0.0/112"]}),
    );
    entitlement(
        &admin,
        json!({"repo": "r", "access": "r", "access_keys": ["mapped"]}),
    );
    let mapped = app.as_user("mapped@myorg", "secret-pass");
    let (status, _, msg) = ask(&mapped, "r/x", "read", &[("X-Forwarded-For", "10.9.1.1")]);
    assert_eq!(status, 401, "{msg}");
    assert!(ask(&mapped, "r/x", "read", &[("X-Forwarded-For", "10.1.2.3")]).1);
    assert_eq!(
        ask(&net, "r/x", "read", &[]).0,
        401,
        "the proxy itself is not in 10/8"
    );
}

/// A loopback HTTP server answering every request with the current `status`.
struct CheckServer {
    url: String,
    status: Arc<AtomicU16>,
    hits: Arc<AtomicUsize>,
}

fn check_server() -> CheckServer {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/users/bob", listener.local_addr().unwrap());
    let status = Arc::new(AtomicU16::new(200));
    let hits = Arc::new(AtomicUsize::new(0));
    let (s, h) = (status.clone(), hits.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            h.fetch_add(1, Ordering::SeqCst);
            let code = s.load(Ordering::SeqCst);
            let _ = write!(
                stream,
                "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    CheckServer { url, status, hits }
}

#[test]
fn the_existence_check_decides_and_is_cached() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let server = check_server();
    key(
        &admin,
        json!({"id": "bob", "password": "secret-pass",
                       "existence_check": {"url": server.url, "cache_for_secs": 0}}),
    );
    entitlement(
        &admin,
        json!({"repo": "r", "access": "r", "access_keys": ["bob"]}),
    );
    let bob = app.as_user("bob@myorg", "secret-pass");
    assert!(ask(&bob, "r/x", "read", &[]).1);
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
    // 404: the holder is gone; with no caching the next sign-in sees it.
    server.status.store(404, Ordering::SeqCst);
    let (status, _, msg) = ask(&bob, "r/x", "read", &[]);
    assert_eq!(status, 401);
    assert!(msg.contains("existence check"), "{msg}");
    // Cached for an hour: one call, then the remembered answer.
    server.status.store(200, Ordering::SeqCst);
    admin.patch(
        &format!("{ORG}/access_keys/bob"),
        &json!({"existence_check": {"url": server.url, "cache_for_secs": 3600}}),
    );
    let before = server.hits.load(Ordering::SeqCst);
    assert!(ask(&bob, "r/x", "read", &[]).1);
    server.status.store(404, Ordering::SeqCst);
    assert!(ask(&bob, "r/x", "read", &[]).1, "the answer is cached");
    assert_eq!(server.hits.load(Ordering::SeqCst), before + 1);
    // An unreachable check says no.
    admin.patch(
        &format!("{ORG}/access_keys/bob"),
        &json!({"existence_check": {"url": "http://127.0.0.1:9/nothing", "cache_for_secs": 0}}),
    );
    assert_eq!(ask(&bob, "r/x", "read", &[]).0, 401);
}

/// An expiry already past is refused, naming `expiry` (the key could never sign in);
/// 0 means none, as in JFrog's token APIs. A PATCH that changes nothing writes nothing
/// (no event, no `updated` delivery), for keys and entitlements alike.
#[test]
fn access_key_expiry_in_the_past_and_idle_patches() {
    let app = TestApp::spawn();
    let admin = app.admin();
    for expiry in [json!(1), json!(1_000_000_000_000u64)] {
        let r = admin.post(
            &format!("{ORG}/access_keys"),
            &json!({"id": "late", "password": "big-secret-1", "expiry": expiry}),
        );
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(r.text.contains("`expiry`"), "{}", r.text);
    }
    key(
        &admin,
        json!({"id": "zero", "password": "big-secret-1", "expiry": 0}),
    );
    let got = admin.get(&format!("{ORG}/access_keys/zero")).json();
    assert!(got["expiry"].is_null(), "{got}");
    let r = app
        .as_user("zero@myorg", "big-secret-1")
        .get("/access/api/v1/authorize?resource=r/x&action=read");
    assert_ne!(r.status, 401, "{}", r.text);
    let r = admin.patch(&format!("{ORG}/access_keys/zero"), &json!({"expiry": 2}));
    assert_eq!(r.status, 400, "{}", r.text);

    admin.put(
        "/artifactory/api/repositories/libs",
        &json!({"rclass": "local", "packageType": "generic"}),
    );
    let e = entitlement(
        &admin,
        json!({"repo": "libs", "access": "r", "access_keys": ["zero"]}),
    );
    let id = e["id"].as_str().unwrap().to_string();
    let seq = || app.digest()["seq"].as_u64().unwrap();
    let before = seq();
    for _ in 0..2 {
        let r = admin.patch(&format!("{ORG}/entitlements/{id}"), &json!({}));
        assert_eq!(r.status, 200, "{}", r.text);
        let r = admin.patch(
            &format!("{ORG}/entitlements/{id}"),
            &json!({"repo": "libs", "access": "r"}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        let r = admin.patch(&format!("{ORG}/access_keys/zero"), &json!({}));
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(seq(), before, "nothing changed, nothing written");
    let r = admin.patch(
        &format!("{ORG}/entitlements/{id}"),
        &json!({"tags_add": ["t"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(seq(), before + 1);
}

/// Forty PATCHes of one entitlement at the same moment, each adding its own tag: every
/// one is taken (200), and the entitlement holds all forty. Before, a third of them gave
/// up with 409: each retried at once and met the others again.
#[test]
fn concurrent_tag_additions_to_one_entitlement_all_land() {
    let app = TestApp::spawn();
    let admin = app.admin();
    admin.put(
        "/artifactory/api/repositories/libs",
        &json!({"rclass": "local", "packageType": "generic"}),
    );
    let e = entitlement(&admin, json!({"repo": "libs", "access": "r"}));
    let id = e["id"].as_str().unwrap().to_string();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..40)
            .map(|i| {
                let (app, id) = (&app, &id);
                scope.spawn(move || {
                    app.admin()
                        .patch(
                            &format!("{ORG}/entitlements/{id}"),
                            &json!({"tags_add": [format!("t{i}")]}),
                        )
                        .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    let got = admin.get(&format!("{ORG}/entitlements/{id}")).json();
    assert_eq!(got["tags"].as_array().unwrap().len(), 40, "{got}");
}

/// An entitlement holds at most 10,000 tags and 10,000 access keys (a 400 naming the
/// field); lists that size are merged in sets (compared item by item, 50,000 tags held a
/// request worker for 40 s while other requests timed out).
#[test]
fn an_entitlements_lists_are_bounded() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let tags: Vec<String> = (0..10_000).map(|i| format!("t{i:05}")).collect();
    let e = entitlement(&admin, json!({"repo": "big", "access": "r", "tags": tags}));
    let id = e["id"].as_str().unwrap().to_string();
    let r = admin.patch(
        &format!("{ORG}/entitlements/{id}"),
        &json!({"tags_add": ["one-more"]}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.error_message().contains("`tags`"), "{}", r.text);
    let r = admin.patch(
        &format!("{ORG}/entitlements/{id}"),
        &json!({"tags_add": ["one-more"], "tags_remove": ["t00000"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let more: Vec<String> = (0..10_001).map(|i| format!("t{i:05}")).collect();
    let r = admin.post(
        &format!("{ORG}/entitlements"),
        &json!({"repo": "big", "access": "r", "tags": more}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
}

/// A key read and sent back (its `org`, `username` included) changes nothing; another
/// `org` or `username` is a 400 (answered 200 and ignored, the client believed it had
/// moved the key); the key list takes no filters (`?org=x` was answered unfiltered).
#[test]
fn a_key_sent_back_as_read_and_names_it_cannot_change() {
    let app = TestApp::spawn();
    let admin = app.admin();
    key(&admin, json!({"id": "ci", "password": "ci-secret-123"}));
    let path = format!("{ORG}/access_keys/ci");
    let read = admin.get(&path).json();
    let seq = admin.get("/access/api/v1/system/state/digest").json()["seq"].clone();
    let r = admin.patch(&path, &read);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        admin.get("/access/api/v1/system/state/digest").json()["seq"],
        seq
    );
    for body in [json!({"org": "other"}), json!({"username": "x@y"})] {
        let r = admin.patch(&path, &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text);
    }
    let r = admin.get(&format!("{ORG}/access_keys?org=other"));
    assert_eq!(r.status, 400, "{}", r.text);
    // The audit trail finds the key by the name it has everywhere else, in its own
    // events and in an entitlement that names it (it found nothing).
    entitlement(
        &admin,
        json!({"repo": "libs", "access": "r", "access_keys": ["ci"]}),
    );
    let events = admin
        .get("/access/api/v1/audit/events?entity=ci@myorg")
        .json();
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["AccessKeySaved", "EntitlementSaved"], "{events}");
}

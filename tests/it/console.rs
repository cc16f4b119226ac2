//! The browser console's server side (issue 15): its page and headers, sign-in, the
//! session cookie as a credential that needs its CSRF token, and the ways a session
//! ends. The pages themselves are walked in a real browser by
//! scripts/conformance/console.sh.

use crate::helpers::{Client, Resp, TestApp};
use serde_json::json;

/// A signed-in console: the cookie and the CSRF token the page was given.
struct Session {
    client: Client,
    cookie: String,
    csrf: String,
}

impl Session {
    fn call(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> Resp {
        self.call_with(method, path, body, Some(&self.csrf))
    }

    fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
        csrf: Option<&str>,
    ) -> Resp {
        let mut headers = vec![("Cookie", self.cookie.as_str())];
        if let Some(t) = csrf {
            headers.push(("X-CSRF-Token", t));
        }
        let bytes = body.map(|b| b.to_string().into_bytes());
        self.client.raw_with(
            method,
            path,
            bytes.as_ref().map(|_| "application/json"),
            bytes.as_deref(),
            &headers,
        )
    }
}

fn sign_in_raw(app: &TestApp, user: &str, password: &str) -> Resp {
    sign_in_with(app, user, password, &[])
}

/// The sign-in form, as the browser posts it (form-encoded).
fn sign_in_with(app: &TestApp, user: &str, password: &str, headers: &[(&str, &str)]) -> Resp {
    let form = format!("username={}&password={}", enc(user), enc(password));
    app.anon().raw_with(
        "POST",
        "/ui/sign-in",
        Some("application/x-www-form-urlencoded"),
        Some(form.as_bytes()),
        headers,
    )
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn sign_in(app: &TestApp, user: &str, password: &str) -> Session {
    let r = sign_in_raw(app, user, password);
    assert_eq!(r.status, 200, "sign-in as {user}: {}", r.text);
    let set = r
        .header("set-cookie")
        .expect("a session cookie")
        .to_string();
    let cookie = set.split(';').next().unwrap().to_string();
    Session {
        client: app.anon(),
        cookie,
        csrf: r.json()["csrf"].as_str().unwrap().to_string(),
    }
}

#[test]
fn console_pages_carry_a_strict_content_security_policy() {
    let app = TestApp::spawn();
    let anon = app.anon();
    for path in [
        "/ui/",
        "/ui/assets/app.js",
        "/ui/assets/console.css",
        "/ui/session",
    ] {
        let r = anon.get(path);
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("default-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
    }
    let page = anon.get("/ui/");
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    // No inline code and nothing from another host: every script and style is ours.
    assert!(page
        .text
        .contains(r#"<script type="module" src="/ui/assets/app.js">"#));
    assert!(!page.text.contains("<style"), "inline style in the page");
    assert!(!page.text.contains("http://") && !page.text.contains("https://"));
    let js = anon.get("/ui/assets/app.js");
    assert_eq!(js.status, 200);
    assert!(js
        .header("content-type")
        .unwrap()
        .starts_with("text/javascript"));
    assert_eq!(anon.get("/ui/assets/nope.js").status, 404);
    // Not signed in: 401, and no Basic challenge that would pop up a browser dialog.
    let r = anon.get("/ui/session");
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.header("www-authenticate"), None);
}

#[test]
fn console_sign_in_gives_an_http_only_same_site_cookie() {
    let app = TestApp::spawn();
    let r = sign_in_raw(&app, "admin", &app.admin_password);
    assert_eq!(r.status, 200, "{}", r.text);
    let cookie = r.header("set-cookie").unwrap();
    assert!(cookie.starts_with("gatehouse_session="), "{cookie}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let v = r.json();
    assert_eq!(v["username"], "admin");
    assert_eq!(v["admin"], true);
    assert!(v["csrf"].as_str().unwrap().len() >= 32);
    // The session id is not the CSRF token, and neither is in the answer twice.
    assert!(!cookie.contains(v["csrf"].as_str().unwrap()));
    // Behind a proxy that terminates TLS (or with TLS on): Secure.
    let r = sign_in_with(
        &app,
        "admin",
        &app.admin_password,
        &[("X-Forwarded-Proto", "https")],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.header("set-cookie").unwrap().contains("; Secure"));
}

#[test]
fn console_sign_in_errors_name_the_field_and_set_no_cookie() {
    let app = TestApp::spawn();
    let r = sign_in_raw(&app, "admin", "wrong-password");
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.error_message(), "invalid credentials");
    assert_eq!(r.header("set-cookie"), None);
    let r = app.anon().raw(
        "POST",
        "/ui/sign-in",
        Some("application/x-www-form-urlencoded"),
        Some(b"password=x"),
    );
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("`username`"), "{}", r.text);
    // A page of another site cannot sign the browser in (login CSRF).
    let r = sign_in_with(
        &app,
        "admin",
        &app.admin_password,
        &[("Origin", "https://evil.example")],
    );
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.header("set-cookie"), None);
    // The same lock as Basic authentication: locked after the threshold of failures.
    app.create_user("mallory", "Mallory-pass-1");
    for _ in 0..10 {
        let r = sign_in_raw(&app, "mallory", "bad-password");
        if r.status != 401 {
            break;
        }
    }
    let r = sign_in_raw(&app, "mallory", "Mallory-pass-1");
    assert_ne!(r.status, 200, "signed in after many failures: {}", r.text);
}

#[test]
fn a_console_session_is_refused_without_its_csrf_token() {
    let app = TestApp::spawn();
    let s = sign_in(&app, "admin", &app.admin_password);
    let r = s.call("GET", "/access/api/v2/users", None);
    assert_eq!(r.status, 200, "{}", r.text);
    // The cookie alone authenticates nothing: not a write, not even a read (the request
    // is anonymous); a wrong token is refused.
    let r = s.call_with("GET", "/access/api/v2/users", None, None);
    assert_eq!(r.status, 401, "{}", r.text);
    let r = s.call_with(
        "POST",
        "/access/api/v2/groups",
        Some(json!({"name": "forged"})),
        None,
    );
    assert_eq!(r.status, 401, "{}", r.text);
    let r = s.call_with("GET", "/access/api/v2/users", None, Some(""));
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.error_message().contains("X-CSRF-Token"));
    // Public endpoints stay public for a browser that has the cookie.
    assert_eq!(
        s.call_with("GET", "/access/api/v1/cert/jwks", None, None)
            .status,
        200
    );
    let r = s.call_with(
        "POST",
        "/access/api/v2/groups",
        Some(json!({"name": "forged"})),
        Some("0000"),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(app.admin().get("/access/api/v2/groups/forged").status, 404);
    let r = s.call(
        "POST",
        "/access/api/v2/groups",
        Some(json!({"name": "made"})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    // The writer records who did it: the session's user.
    let ev = app
        .admin()
        .get("/access/api/v1/audit/events?type=GroupCreated&entity=made")
        .json();
    assert_eq!(ev["events"][0]["actor"], "admin", "{ev}");
    // Sign-out needs the token as well.
    let r = s.call_with("POST", "/ui/sign-out", None, None);
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(s.call("GET", "/ui/session", None).status, 200);
    // A cookie of no session is no credential (the request is anonymous): 401.
    let forged = Session {
        client: app.anon(),
        cookie: "gatehouse_session=0123456789abcdef".into(),
        csrf: s.csrf.clone(),
    };
    assert_eq!(forged.call("GET", "/access/api/v2/users", None).status, 401);
}

#[test]
fn a_console_session_ends_on_sign_out() {
    let app = TestApp::spawn();
    let s = sign_in(&app, "admin", &app.admin_password);
    assert_eq!(s.call("GET", "/access/api/v2/users", None).status, 200);
    let r = s.call("POST", "/ui/sign-out", None);
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(s.call("GET", "/access/api/v2/users", None).status, 401);
    assert_eq!(s.call("GET", "/ui/session", None).status, 401);
    assert_eq!(s.call("POST", "/ui/sign-out", None).status, 401);
}

#[test]
fn a_console_session_ends_when_the_user_changes_is_disabled_or_deleted_or_basic_auth_ends() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let ends = |what: &str, change: &dyn Fn()| {
        app.create_user("bob", "Bob-password-1");
        let s = sign_in(&app, "bob", "Bob-password-1");
        assert_eq!(
            s.call("GET", "/access/api/v2/users/bob", None).status,
            200,
            "{what}: before"
        );
        change();
        let r = s.call("GET", "/access/api/v2/users/bob", None);
        assert_eq!(r.status, 401, "{what}: the session outlived it: {}", r.text);
        assert_eq!(s.call("GET", "/ui/session", None).status, 401, "{what}");
        let _ = admin.delete("/access/api/v2/users/bob");
    };
    ends("password change by the user", &|| {
        let r = app.as_user("bob", "Bob-password-1").put(
            "/access/api/v2/users/bob/password",
            &json!({"password": "Bob-password-2"}),
        );
        assert!(r.status < 300, "{}", r.text);
    });
    ends("password set by an admin", &|| {
        let r = admin.patch(
            "/access/api/v2/users/bob",
            &json!({"password": "Bob-password-3"}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
    });
    ends("disabling", &|| {
        let r = admin.patch("/access/api/v2/users/bob", &json!({"status": "disabled"}));
        assert_eq!(r.status, 200, "{}", r.text);
    });
    ends("basic authentication switched off", &|| {
        let path = "/access/api/v1/config/security/authentication/basic_authentication_enabled";
        let r = admin.put(path, &json!({"enabled": false}));
        assert_eq!(r.status, 200, "{}", r.text);
    });
    // An admin's session goes on (admins still sign in with a password then), and so
    // does one of an admin through a group (it ended at its first use).
    let a = sign_in(&app, "admin", &app.admin_password);
    assert_eq!(a.call("GET", "/access/api/v2/users", None).status, 200);
    let r = admin.post(
        "/access/api/v2/groups",
        &json!({"name": "admins-grp", "admin_privileges": true}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "nora", "password": "Nora-password-1", "email": "nora@example.com", "groups": ["admins-grp"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let n = sign_in(&app, "nora", "Nora-password-1");
    assert_eq!(n.call("GET", "/ui/session", None).status, 200);
    assert_eq!(n.call("GET", "/access/api/v2/users", None).status, 200);
    let path = "/access/api/v1/config/security/authentication/basic_authentication_enabled";
    assert_eq!(admin.put(path, &json!({"enabled": true})).status, 200);
    ends("deletion", &|| {
        assert!(admin.delete("/access/api/v2/users/bob").status < 300);
        // A new user of the same name is someone else.
        app.create_user("bob", "Bob-password-1");
    });
    // A change that is not about credentials leaves the session alone.
    app.create_user("bob", "Bob-password-1");
    let s = sign_in(&app, "bob", "Bob-password-1");
    app.create_group("team");
    let r = admin.patch("/access/api/v2/users/bob/groups", &json!({"add": ["team"]}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(s.call("GET", "/access/api/v2/users/bob", None).status, 200);
}

#[test]
fn a_console_session_cannot_widen_what_the_api_allows() {
    let app = TestApp::spawn();
    app.create_user("carol", "Carol-password-1");
    app.create_user("dan", "Dan-password-1");
    let s = sign_in(&app, "carol", "Carol-password-1");
    assert_eq!(s.call("GET", "/ui/session", None).json()["admin"], false);
    // Itself, yes; the admin pages' API, no — exactly as with Basic.
    assert_eq!(
        s.call("GET", "/access/api/v2/users/carol", None).status,
        200
    );
    for path in [
        "/access/api/v2/users",
        "/access/api/v2/users/dan",
        "/access/api/v2/groups",
        "/access/api/v2/permissions",
        "/access/api/v1/audit/events",
        "/access/api/v1/audit/chain",
        "/access/api/v1/system/state/digest",
    ] {
        let r = s.call("GET", path, None);
        assert_eq!(r.status, 403, "{path}: {}", r.text);
    }
    let r = s.call(
        "POST",
        "/access/api/v2/groups",
        Some(json!({"name": "mine"})),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    let r = s.call(
        "PATCH",
        "/access/api/v2/users/carol",
        Some(json!({"admin": true})),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    let r = s.call(
        "GET",
        "/access/api/v1/authorize?resource=libs/a&action=read&user=dan",
        None,
    );
    assert_eq!(r.status, 403, "{}", r.text);
    // The decision for itself (a "no", with what decided).
    let r = s.call(
        "GET",
        "/access/api/v1/authorize?resource=libs/a&action=read",
        None,
    );
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.json()["subject"], "carol");
    // Its own tokens only.
    let r = s.call(
        "POST",
        "/access/api/v1/tokens",
        Some(json!({"username": "dan", "scope": "applied-permissions/user"})),
    );
    assert_eq!(r.status, 403, "{}", r.text);
}

#[test]
fn a_console_session_reads_the_past() {
    let app = TestApp::spawn();
    let s = sign_in(&app, "admin", &app.admin_password);
    app.create_group("readers");
    app.create_user("erin", "Erin-password-1");
    let before = app.digest()["seq"].as_u64().unwrap();
    let r = app.admin().post(
        "/access/api/v2/permissions",
        &json!({"name": "readers-read", "resources": {"artifact": {
            "actions": {"users": {"erin": ["READ"]}},
            "targets": {"libs": {"include_patterns": ["**"]}}}}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let ask = "/access/api/v1/authorize?resource=libs/a.txt&action=read&user=erin";
    let now = s.call("GET", ask, None);
    assert_eq!(now.status, 200, "{}", now.text);
    assert!(now.json()["via"].as_str().unwrap().contains("readers-read"));
    let then = s.call("GET", &format!("{ask}&as_of={before}"), None);
    assert_eq!(then.status, 403, "{}", then.text);
    assert_eq!(then.json()["allowed"], false);
    let r = s.call(
        "GET",
        &format!("/access/api/v2/permissions?as_of={before}"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["permissions"].as_array().unwrap().len(), 0);
    // The past is read-only, for a session as for anyone.
    let r = s.call(
        "POST",
        &format!("/access/api/v2/groups?as_of={before}"),
        Some(json!({"name": "late"})),
    );
    assert_eq!(r.status, 400, "{}", r.text);
}

/// `disable_ui_access`: the REST API only, as in JFrog. The console refuses the sign-in
/// (it was stored and shown, and the user got the whole console); the API still works.
#[test]
fn a_user_without_ui_access_cannot_sign_in_to_the_console() {
    let app = TestApp::spawn();
    let r = app.admin().post(
        "/access/api/v2/users",
        &json!({"username": "apionly", "password": "Api-only-password-1", "disable_ui_access": true}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = sign_in_raw(&app, "apionly", "Api-only-password-1");
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.header("set-cookie").is_none());
    assert!(r.text.contains("disable_ui_access"), "{}", r.text);
    assert_eq!(
        app.as_user("apionly", "Api-only-password-1")
            .get("/access/api/v2/users/apionly")
            .status,
        200
    );
}

/// One user's sign-ins in a loop end only that user's oldest sessions: they filled the
/// table and ended everyone else's.
#[test]
fn one_users_many_sign_ins_end_only_its_own_oldest_sessions() {
    let app = TestApp::spawn();
    app.create_user("mia", "Mia-password-1");
    let a = sign_in(&app, "admin", &app.admin_password);
    let first = sign_in(&app, "mia", "Mia-password-1");
    let mut last = None;
    for _ in 0..40 {
        last = Some(sign_in(&app, "mia", "Mia-password-1"));
    }
    assert_eq!(a.call("GET", "/ui/session", None).status, 200);
    assert_eq!(first.call("GET", "/ui/session", None).status, 401);
    assert_eq!(last.unwrap().call("GET", "/ui/session", None).status, 200);
}

/// HEAD is answered wherever GET is, without the body: the console's page and assets and
/// the API's reads answered 405 (link checkers and uptime probes use HEAD).
#[test]
fn head_is_answered_wherever_get_is() {
    let app = TestApp::spawn();
    let admin = app.admin();
    for (client, path, status) in [
        (app.anon(), "/ui/", 200),
        (app.anon(), "/ui/assets/app.js", 200),
        (admin.clone(), "/access/api/v2/users", 200),
        (admin.clone(), "/access/api/v2/users/admin", 200),
        (app.anon(), "/access/api/v2/users", 401),
        (admin.clone(), "/access/api/v2/users/nobody", 404),
    ] {
        let r = client.raw("HEAD", path, None, None);
        assert_eq!(r.status, status, "HEAD {path}: {}", r.text);
        assert!(r.text.is_empty(), "HEAD {path} has a body: {}", r.text);
    }
    // A resource without GET is still 405.
    let r = admin.raw("HEAD", "/ui/sign-in", None, None);
    assert_eq!(r.status, 405, "{}", r.text);
}

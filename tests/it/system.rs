use crate::helpers::TestApp;

#[test]
fn probes_answer_without_credentials() {
    let app = TestApp::spawn();
    let anon = app.anon();
    for path in ["/access/api/v1/system/ping", "/api/system/ping"] {
        let r = anon.get(path);
        assert_eq!((r.status, r.text.as_str()), (200, "OK"), "{path}");
        assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    }
    for path in ["/api/v1/system/readiness", "/api/v1/system/liveness"] {
        let r = anon.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.json()["status"], "OK");
    }
    let health = anon.get("/router/api/v1/system/health");
    assert_eq!(health.status, 200);
    let h = health.json();
    assert_eq!(h["router"]["state"], "HEALTHY");
    assert!(h["services"][0]["service_id"]
        .as_str()
        .unwrap()
        .starts_with("jfac@"));
    // HEAD as GET, without a body (a load balancer's probe; 405 before).
    for path in [
        "/access/api/v1/system/ping",
        "/api/system/ping",
        "/artifactory/api/system/ping",
        "/api/v1/system/readiness",
        "/api/v1/system/liveness",
        "/artifactory/api/v1/system/liveness",
        "/router/api/v1/system/health",
    ] {
        let r = anon.raw("HEAD", path, None, None);
        assert_eq!((r.status, r.text.as_str()), (200, ""), "{path}");
    }
    let version = anon.get("/api/system/version").json();
    // The Artifactory API level clients compare with Artifactory's releases (under 7.x
    // jfrog-client did nothing at all); Gatehouse's own version beside it.
    let api = version["version"].as_str().unwrap();
    let major: u32 = api.split('.').next().unwrap().parse().unwrap();
    assert!(major >= 7, "{version}");
    assert_eq!(version["gatehouse_version"], env!("CARGO_PKG_VERSION"));
    assert!(version["addons"].is_array());
}

#[test]
fn unknown_routes_are_404_and_wrong_methods_405_in_the_error_shape() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.get("/access/api/v2/nothing/here/at/all");
    assert_eq!(r.status, 404);
    assert!(r.error_message().contains("no such endpoint"));
    // A trailing slash is the path without it, as Artifactory takes it (every route
    // answered 404 with one), the query kept.
    assert_eq!(admin.get("/artifactory/api/system/").status, 200);
    let r = admin.get("/access/api/v2/users/?limit=1");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json()["users"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );
    assert_eq!(admin.get("/access/api/v2/nothing/").status, 404);
    // A long path is shown as far as a person reads it, not echoed whole.
    let long = format!("/access/api/v2/{}", "ab".repeat(10_000));
    let r = admin.get(&long);
    assert_eq!(r.status, 404);
    assert!(r.text.len() < 2_000, "{} bytes", r.text.len());
    let m = r.error_message();
    assert!(
        m.starts_with("no such endpoint: GET /access/api/v2/abab"),
        "{m}"
    );
    assert!(m.ends_with(&format!("… ({} bytes)", long.len())), "{m}");
    // A known route naming what it did not find: cut too.
    let r = admin.get(&format!(
        "/artifactory/api/repositories/{}",
        "a".repeat(60_000)
    ));
    assert_eq!(r.status, 404);
    assert!(r.text.len() < 4_000, "{} bytes", r.text.len());
    let r = admin.raw(
        "PUT",
        "/access/api/v2/users",
        Some("application/json"),
        Some(b"{}"),
    );
    assert_eq!(r.status, 405);
    r.error_message();
    // With the methods the path takes (HTTP's `Allow`), under the alias prefix too.
    assert_eq!(
        r.header("allow"),
        Some("GET, HEAD, POST"),
        "{:?}",
        r.headers
    );
    let r = admin.raw("DELETE", "/artifactory/access/api/v2/users", None, None);
    assert_eq!(
        (r.status, r.header("allow")),
        (405, Some("GET, HEAD, POST"))
    );
    let r = admin.raw("POST", "/api/system/ping", None, None);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    // The probes in their own scope (`system::PROBES`): the same answers.
    let r = admin.raw("POST", "/api/v1/system/readiness", None, None);
    assert_eq!(r.status, 405);
    r.error_message();
    let r = admin.get("/api/v1/system/readiness/more");
    assert_eq!(r.status, 404);
    assert!(r.error_message().contains("no such endpoint"));
}

#[test]
fn request_ids_are_echoed_or_generated() {
    let app = TestApp::spawn();
    let anon = app.anon();
    let r = anon.get("/api/system/ping");
    assert!(r.header("x-request-id").is_some_and(|v| v.len() == 16));
    let agent = ureq::agent();
    let resp = agent
        .get(&format!("{}/api/system/ping", app.base))
        .set("X-Request-Id", "ci-build-42")
        .call()
        .unwrap();
    assert_eq!(resp.header("x-request-id"), Some("ci-build-42"));
}

#[test]
fn first_start_writes_the_admin_password_file_private() {
    let app = TestApp::spawn();
    let path = app.dir.join("initial-admin-password");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert!(app.admin_password.len() >= 20);
    let me = app.admin().get("/access/api/v2/users/admin").json();
    assert_eq!(me["admin"], true);
    assert_eq!(me["realm"], "internal");
}

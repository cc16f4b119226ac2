//! `schemas/openapi.yaml` describes exactly the routes the server serves.

use crate::helpers::TestApp;
use std::collections::BTreeSet;

/// (METHOD, path) pairs from the OpenAPI document's `paths:` section. The document is
/// kept in the plain two-space layout this reads.
fn documented() -> BTreeSet<(String, String)> {
    documented_with_codes()
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect()
}

/// (METHOD, path, documented response codes).
fn documented_with_codes() -> Vec<(String, String, Vec<u16>)> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/openapi.yaml"))
            .unwrap();
    let mut out: Vec<(String, String, Vec<u16>)> = Vec::new();
    let mut in_paths = false;
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.starts_with("paths:") {
            in_paths = true;
            continue;
        }
        if in_paths && !line.starts_with(' ') && !line.trim().is_empty() {
            in_paths = false;
        }
        if !in_paths {
            continue;
        }
        if let Some(p) = line.strip_prefix("  /") {
            current = Some(format!("/{}", p.trim_end_matches(':')));
        } else if let Some(m) = line.strip_prefix("    ").filter(|m| !m.starts_with(' ')) {
            let m = m.trim_end_matches(':');
            if ["get", "head", "post", "put", "patch", "delete"].contains(&m) {
                out.push((
                    m.to_uppercase(),
                    current.clone().expect("a method under a path"),
                    Vec::new(),
                ));
            }
        } else if let Some(code) = line
            .strip_prefix("        '")
            .and_then(|c| c.strip_suffix("':"))
        {
            if let (Some(last), Ok(code)) = (out.last_mut(), code.parse()) {
                last.2.push(code);
            }
        }
    }
    out
}

#[test]
fn the_document_and_the_route_table_agree() {
    let served: BTreeSet<(String, String)> = gatehouse::http::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let documented = documented();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let phantom: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in openapi.yaml: {undocumented:?}"
    );
    assert!(
        phantom.is_empty(),
        "in openapi.yaml but not served: {phantom:?}"
    );
}

/// Every operation documented with 401 answers 401 without credentials, and every one
/// documented with 403 (and no self-service) answers 403 to a signed-in non-admin.
#[test]
fn documented_auth_codes_are_the_served_ones() {
    let app = TestApp::spawn();
    app.create_user("plain", "password-1");
    let anon = app.anon();
    let plain = app.as_user("plain", "password-1");
    for (method, path, codes) in documented_with_codes() {
        let concrete = path
            .replace("{username}", "admin")
            .replace("{name}", "probe");
        let body: Option<&[u8]> = if method == "GET" || method == "HEAD" || method == "DELETE" {
            None
        } else {
            Some(b"{}")
        };
        // The console's sign-in takes its credentials in the body; its sign-out's 403
        // is for a session without its CSRF token (tests/it/console.rs covers both).
        if path.starts_with("/ui/") {
            continue;
        }
        if codes.contains(&401) {
            let r = anon.raw(&method, &concrete, Some("application/json"), body);
            assert_eq!(
                r.status, 401,
                "{method} {path} without credentials: {}",
                r.text
            );
        } else {
            let r = anon.raw(&method, &concrete, Some("application/json"), body);
            assert!(
                r.status != 401 && r.status != 403,
                "{method} {path} is documented as public but answered {}",
                r.status
            );
        }
        // The 403s of the token endpoints and of authorize depend on what is asked (scope,
        // user, expiry, resource); tests/it/tokens.rs and permissions.rs cover them.
        // Federation peers authenticate with signed tokens, not users: 401 without one,
        // 403 for a batch token that does not match its claims.
        // Signing a URL depends on `manage` on the path asked (seed 002).
        let depends_on_question = path.starts_with("/access/api/v1/tokens")
            || path == "/artifactory/api/signed/url"
            || path.starts_with("/access/api/v1/authorize")
            || path.ends_with("/federation/receive")
            || path.ends_with("/federation/challenge");
        if codes.contains(&401) && codes.contains(&403) && !depends_on_question {
            let r = plain.raw(&method, &concrete, Some("application/json"), body);
            assert_eq!(
                r.status, 403,
                "{method} {path} as a non-admin (on another user): {}",
                r.text
            );
        }
    }
}

#[test]
fn every_documented_operation_is_served() {
    let app = TestApp::spawn();
    let anon = app.anon();
    for (method, path) in documented() {
        let concrete = path
            .replace("{username}", "probe")
            .replace("{name}", "probe");
        let r = anon.raw(
            &method,
            &concrete,
            Some("application/json"),
            if method == "GET" || method == "HEAD" {
                None
            } else {
                Some(b"{}")
            },
        );
        assert!(
            r.status != 405 && !(r.status == 404 && r.text.contains("no such endpoint")),
            "{method} {path} is documented but answered {}: {}",
            r.status,
            r.text
        );
        assert!(r.status < 500, "{method} {path}: {}", r.text);
    }
}

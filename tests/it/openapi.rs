//! `schemas/openapi.yaml` describes exactly the routes the server serves.

use crate::helpers::TestApp;
use std::collections::BTreeSet;

/// (METHOD, path) pairs from the OpenAPI document's `paths:` section. The document is
/// kept in the plain two-space layout this reads.
fn documented() -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/openapi.yaml")).unwrap();
    let mut out = BTreeSet::new();
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
            current = Some(format!("/{}", p.trim_end_matches(':').trim_end_matches(['\'', '"']).trim_start_matches(['\'', '"'])));
        } else if let Some(m) = line.strip_prefix("    ") {
            let m = m.trim_end_matches(':');
            if ["get", "post", "put", "patch", "delete"].contains(&m) {
                out.insert((m.to_uppercase(), current.clone().expect("a method under a path")));
            }
        }
    }
    out
}

#[test]
fn the_document_and_the_route_table_agree() {
    let served: BTreeSet<(String, String)> =
        gatehouse::http::ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    let documented = documented();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let phantom: Vec<_> = documented.difference(&served).collect();
    assert!(undocumented.is_empty(), "served but not in openapi.yaml: {undocumented:?}");
    assert!(phantom.is_empty(), "in openapi.yaml but not served: {phantom:?}");
}

#[test]
fn every_documented_operation_is_served() {
    let app = TestApp::spawn();
    let anon = app.anon();
    for (method, path) in documented() {
        let concrete = path.replace("{username}", "probe").replace("{name}", "probe");
        let r = anon.raw(&method, &concrete, Some("application/json"), if method == "GET" { None } else { Some(b"{}") });
        assert!(
            r.status != 405 && !(r.status == 404 && r.text.contains("no such endpoint")),
            "{method} {path} is documented but answered {}: {}",
            r.status,
            r.text
        );
        assert!(r.status < 500, "{method} {path}: {}", r.text);
    }
}

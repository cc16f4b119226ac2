//! No secret — password, access/refresh/reference token, private key, signed-URL key —
//! appears in the event log's bytes or in the server's log output.

use crate::helpers::{ServerProcess, BINARY_ADMIN_PASSWORD};
use serde_json::json;

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn secrets_never_reach_the_log_or_the_server_output() {
    let tmp = tempfile::tempdir().unwrap();
    let out_path = tmp.path().join("server.log");
    let data = tmp.path().join("data");
    let server = ServerProcess::start_logging(&data, &out_path);
    let admin = server.admin();
    let password = "Very-Secret-Password-42";
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "sam", "password": password}),
    );
    assert_eq!(r.status, 201);
    let sam = crate::helpers::Client::new(&server.base, Some(("sam", password)));
    let t = sam
        .post(
            "/access/api/v1/tokens",
            &json!({"refreshable": true, "include_reference_token": true, "expires_in": 600}),
        )
        .json();
    let access = t["access_token"].as_str().unwrap().to_string();
    let refresh = t["refresh_token"].as_str().unwrap().to_string();
    let reference = t["reference_token"].as_str().unwrap().to_string();
    let bearer = sam.with_header_auth(&format!("Bearer {access}"));
    assert_eq!(bearer.get("/access/api/v2/users/sam").status, 200);
    assert_eq!(
        sam.post(
            "/access/api/v1/tokens",
            &json!({"grant_type": "refresh_token", "refresh_token": refresh})
        )
        .status,
        200
    );
    admin.put(
        "/access/api/v2/users/sam/password",
        &json!({"password": "Another-Secret-Pass-7"}),
    );
    // Failed attempts (wrong passwords) are logged without the attempt.
    crate::helpers::Client::new(&server.base, Some(("sam", "Wrong-Guess-Secret-9")))
        .get("/access/api/v2/users/sam");
    // Access keys: a given password, a generated one, and a sign-in with each.
    let r = admin.post(
        "/access/api/v1/orgs/acme/access_keys",
        &json!({"id": "ext", "password": "Access-Key-Secret-5"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let generated = admin
        .post(
            "/access/api/v1/orgs/acme/access_keys",
            &json!({"id": "gen"}),
        )
        .json()["password"]
        .as_str()
        .unwrap()
        .to_string();
    for (id, pw) in [
        ("ext@acme", "Access-Key-Secret-5"),
        ("gen@acme", generated.as_str()),
    ] {
        let r = crate::helpers::Client::new(&server.base, Some((id, pw)))
            .get("/access/api/v1/authorize?resource=r/x&action=read");
        assert_eq!(r.status, 403, "signed in, nothing entitled: {}", r.text);
    }
    admin.post_empty("/access/api/v1/cert/root/rotate");
    admin.post_empty("/artifactory/api/signed/url/key");
    assert!(server.terminate().success());

    let mut secrets = vec![
        password.to_string(),
        "Another-Secret-Pass-7".into(),
        "Wrong-Guess-Secret-9".into(),
        BINARY_ADMIN_PASSWORD.into(),
        access.clone(),
        access.split('.').nth(2).unwrap().to_string(), // the signature alone
        refresh,
        reference,
        "Access-Key-Secret-5".into(),
        generated,
    ];
    for f in files_under(&data.join("keys")) {
        secrets.push(std::fs::read_to_string(&f).unwrap().trim().to_string());
    }
    assert!(secrets.len() >= 10, "keys were found: {secrets:?}");
    // The events (events.log), the snapshots (snapshots/) and what sled keeps (log/).
    let mut log_files = files_under(&data.join("log"));
    let snapshots = files_under(&data.join("snapshots"));
    assert!(!snapshots.is_empty(), "the server wrote a snapshot");
    log_files.extend(snapshots);
    log_files.push(data.join("events.log"));
    let mut haystacks: Vec<(String, Vec<u8>)> = log_files
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    let output = std::fs::read(&out_path).unwrap();
    assert!(
        contains(&output, "request"),
        "the server logged requests at debug level"
    );
    haystacks.push(("server output".into(), output));
    for (name, bytes) in &haystacks {
        for s in &secrets {
            assert!(
                !contains(bytes, s),
                "a secret ({}…) appears in {name}",
                &s[..6]
            );
        }
    }
}

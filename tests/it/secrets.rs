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

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut out).unwrap();
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
    // A webhook with a secret, delivered to a real receiver: the HTTP client's debug
    // lines name every header it sends (they were in the log, and so in support bundles).
    let rx = crate::webhooks::receiver();
    let r = admin.post(
        "/event/api/v1/subscriptions",
        &json!({"key": "hooked", "enabled": true,
                "event_filter": {"domain": "user", "event_types": ["created"]},
                "handlers": [{"handler_type": "webhook", "url": rx.url,
                              "secret": "Webhook-Secret-31"}]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "hooked-user", "password": "Hooked-User-Pass-8"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while rx.seen.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (head, _) = rx.seen.lock().unwrap()[0].clone();
    assert!(
        head.contains("Webhook-Secret-31"),
        "the secret was sent to the receiver: {head}"
    );
    // The support bundle keeps the recent log.
    let bundle = admin.post("/api/system/support/bundle", &json!({}));
    assert!(bundle.status < 300, "{} {}", bundle.status, bundle.text);
    let bundle_id = bundle.json()["id"].as_str().unwrap_or_default().to_string();
    let (status, _, archive) = crate::seeds::get_bytes(
        &admin,
        &format!("/api/system/support/bundle/{bundle_id}/archive"),
    );
    assert_eq!(status, 200);
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
        "Webhook-Secret-31".into(),
        "Hooked-User-Pass-8".into(),
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
    // Written to a file, the log is plain text: no terminal colour codes.
    assert!(
        !output.contains(&0x1b),
        "ANSI escapes in a log written to a file"
    );
    haystacks.push(("server output".into(), output));
    haystacks.push(("the support bundle".into(), gunzip(&archive)));
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

/// The shared log's password never reaches the terminal: not in `--help` (clap printed
/// the environment variable's value) and not from a connection string that does not
/// parse (it was printed as given).
#[test]
fn the_store_password_is_not_printed_by_help_or_a_bad_store() {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["serve", "verify", "export", "replay"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args([sub, "--help"])
            .env(
                "GATEHOUSE_STORE",
                "postgres://gh:HelpSecret77@127.0.0.1:1/gh",
            )
            .output()
            .unwrap();
        let all = [out.stdout, out.stderr].concat();
        assert!(!contains(&all, "HelpSecret77"), "{sub} --help printed it");
    }
    for store in [
        "postgres:/gh:BadSecret88@127.0.0.1:1/gh",
        "postgres//gh:BadSecret88@127.0.0.1:1/gh",
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--store", store])
            .env_remove("GATEHOUSE_STORE")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let all = [out.stdout, out.stderr].concat();
        assert!(
            !contains(&all, "BadSecret88"),
            "{store}: {}",
            String::from_utf8_lossy(&all)
        );
    }
}

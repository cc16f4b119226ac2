//! The log is the only source of truth: restart, crash, tamper, replay, fail-stop.

use crate::helpers::{verify, ServerProcess, TestApp};
use gatehouse::log::{chain_hash, EventLog, HASH_LEN};
use gatehouse::Config;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn populate(app: &TestApp) {
    let admin = app.admin();
    app.create_group("alpha");
    app.create_group("beta");
    for i in 0..6 {
        let r = admin.post(
            "/access/api/v2/users",
            &json!({"username": format!("user{i}@example.com"), "password": "password-1", "groups": ["alpha"]}),
        );
        assert_eq!(r.status, 201);
    }
    admin.patch(
        "/access/api/v2/groups/beta/members",
        &json!({"add": ["user1@example.com", "user2@example.com"]}),
    );
    admin.patch(
        "/access/api/v2/users/user3@example.com",
        &json!({"email": "three@example.com", "status": "disabled"}),
    );
    admin.delete("/access/api/v2/users/user4@example.com");
    admin.post_empty("/access/api/v2/users/user5@example.com/password/expire");
}

/// API reads, with the server's own address taken out of `uri` fields.
fn reads(app: &TestApp) -> Vec<String> {
    let admin = app.admin();
    let reads = vec![
        admin.get("/access/api/v2/users?limit=100").json(),
        admin.get("/access/api/v2/groups").json(),
        admin.get("/access/api/v2/users/user3@example.com").json(),
        admin.get("/access/api/v2/groups/alpha").json(),
        admin.get("/access/api/v2/groups/beta").json(),
    ];
    reads
        .iter()
        .map(|r| r.to_string().replace(&app.base, "BASE"))
        .collect()
}

#[test]
fn state_after_restart_equals_state_before() {
    // A tiny snapshot interval so the restart goes through snapshot + tail.
    let config = Config {
        snapshot_every: 4,
        ..Config::default()
    };
    let app = TestApp::spawn_with(config.clone());
    populate(&app);
    let digest = app.digest();
    let before = reads(&app);
    let password = app.admin_password.clone();
    let dir = app.dir.clone();
    let tmp = app.stop();

    let app = TestApp::start(dir.clone(), config).unwrap();
    assert_eq!(app.admin_password, password);
    assert_eq!(app.digest(), digest);
    assert_eq!(reads(&app), before);
    // Signing in still works (password hashes survived) and new writes continue the log.
    assert_eq!(
        app.as_user("user0@example.com", "password-1")
            .get("/access/api/v2/users/user0@example.com")
            .status,
        200
    );
    let r = app
        .admin()
        .post("/access/api/v2/groups", &json!({"name": "gamma"}));
    assert_eq!(
        r.header("x-gatehouse-seq").unwrap().parse::<u64>().unwrap(),
        digest["seq"].as_u64().unwrap() + 1
    );
    drop(app);
    drop(tmp);
}

#[test]
fn replay_from_scratch_equals_the_live_state() {
    let app = TestApp::spawn_with(Config {
        snapshot_every: 5,
        ..Config::default()
    });
    populate(&app);
    let live = app.digest();
    let dir = app.dir.clone();
    let _tmp = app.stop();
    // `gatehouse verify` replays every event from position 1 without any snapshot.
    let (ok, out) = verify(&dir);
    assert!(ok, "{out}");
    assert!(out.contains(&format!("{} events", live["seq"])), "{out}");
    assert!(
        out.contains(live["digest"].as_str().unwrap()),
        "replayed digest differs from live: {out} vs {live}"
    );
    // And a server that must rebuild without snapshots reaches the same state.
    EventLog::open(&dir).unwrap().clear_snapshots().unwrap();
    let app = TestApp::start(dir, Config::default()).unwrap();
    assert_eq!(app.digest(), live);
}

#[test]
fn a_flipped_byte_is_found_at_its_position_and_stops_start_up() {
    let app = TestApp::spawn();
    populate(&app);
    let dir = app.dir.clone();
    let _tmp = app.stop();
    let (ok, _) = verify(&dir);
    assert!(ok);
    {
        let log = EventLog::open(&dir).unwrap();
        let mut value = log.raw_value(5).unwrap().unwrap();
        let last = value.len() - 1;
        value[last] ^= 0x01;
        log.overwrite_raw(5, value).unwrap();
    }
    let (ok, out) = verify(&dir);
    assert!(!ok);
    assert!(out.contains("position 5"), "{out}");
    let err = TestApp::start(dir.clone(), Config::default())
        .err()
        .expect("start-up must refuse a broken chain");
    assert!(err.contains("position 5"), "{err}");
    // `tail` verification still catches it when there is no snapshot past it.
    EventLog::open(&dir).unwrap().clear_snapshots().unwrap();
    let config = Config {
        startup_verify: gatehouse::log::StartupVerify::Tail,
        ..Config::default()
    };
    let err = TestApp::start(dir, config).err().expect("refused");
    assert!(err.contains("position 5"), "{err}");
}

#[test]
fn a_missing_event_is_found() {
    let app = TestApp::spawn();
    populate(&app);
    let dir = app.dir.clone();
    let _tmp = app.stop();
    {
        // Re-hash everything after the removed event, as a careful forger would: the gap
        // itself must still be caught.
        let log = EventLog::open(&dir).unwrap();
        let head = log.head_seq();
        let mut values: Vec<Vec<u8>> = (1..=head)
            .map(|s| log.raw_value(s).unwrap().unwrap())
            .collect();
        values.remove(3); // drop position 4
        let mut prev = [0u8; HASH_LEN];
        for (i, v) in values.iter().enumerate() {
            let body = &v[HASH_LEN..];
            let h = chain_hash(&prev, body);
            let mut nv = h.to_vec();
            nv.extend_from_slice(body);
            log.overwrite_raw(i as u64 + 1, nv).unwrap();
            prev = h;
        }
        log.remove_raw(head).unwrap();
    }
    let (ok, out) = verify(&dir);
    assert!(!ok, "{out}");
    assert!(out.contains("position 4"), "{out}");
}

#[test]
fn two_reordered_events_are_found() {
    let app = TestApp::spawn();
    populate(&app);
    let dir = app.dir.clone();
    let _tmp = app.stop();
    {
        // Swap positions 6 and 7 and re-hash everything from there, as a forger would:
        // each event still names its own position, so the order gives it away.
        let log = EventLog::open(&dir).unwrap();
        let head = log.head_seq();
        let mut values: Vec<Vec<u8>> = (1..=head)
            .map(|s| log.raw_value(s).unwrap().unwrap())
            .collect();
        values.swap(5, 6);
        let mut prev = [0u8; HASH_LEN];
        for (i, v) in values.iter().enumerate() {
            let body = &v[HASH_LEN..];
            let h = chain_hash(&prev, body);
            let mut nv = h.to_vec();
            nv.extend_from_slice(body);
            log.overwrite_raw(i as u64 + 1, nv).unwrap();
            prev = h;
        }
    }
    let (ok, out) = verify(&dir);
    assert!(!ok, "{out}");
    assert!(out.contains("position 6"), "{out}");
}

#[test]
fn an_event_that_does_not_decode_stops_start_up() {
    let app = TestApp::spawn();
    populate(&app);
    let dir = app.dir.clone();
    let _tmp = app.stop();
    let head;
    {
        let log = EventLog::open(&dir).unwrap();
        head = log.head_seq();
        // A correctly chained record whose bytes are not an event.
        let prev = log.hash_at(head - 1).unwrap().unwrap();
        let garbage = b"\xc1 definitely not messagepack".to_vec();
        let mut value = chain_hash(&prev, &garbage).to_vec();
        value.extend_from_slice(&garbage);
        log.overwrite_raw(head, value).unwrap();
    }
    let err = TestApp::start(dir.clone(), Config::default())
        .err()
        .expect("must not skip an event");
    assert!(
        err.contains(&format!("position {head}")) && err.contains("does not decode"),
        "{err}"
    );
    let (ok, out) = verify(&dir);
    assert!(!ok);
    assert!(out.contains(&format!("position {head}")), "{out}");
}

/// The real binary under concurrent writes, killed with SIGKILL: every write that got a
/// 2xx is there after restart, and the chain verifies.
#[test]
fn acknowledged_writes_survive_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(tmp.path());
    // The writer of the real binary on its own log runs ahead of the HTTP workers where
    // the process may raise it (`background::raise_priority`), and is never lowered. (It
    // has its priority before the server listens: it wrote the first events by then.)
    let own = gatehouse::background::current_niceness().unwrap();
    let expected = if gatehouse::background::may_raise_priority() {
        own.min(gatehouse::background::WRITER_NICENESS)
    } else {
        own
    };
    assert_eq!(server.thread_niceness("gatehouse-writer"), vec![expected]);
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let admin = server.admin();
            let acked = acked.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("crash-{w}-{i}");
                    // The server may die mid-request: a transport error is expected then.
                    let url = format!("{}/access/api/v2/groups", admin_base(&admin));
                    let res = ureq::post(&url)
                        .set("Authorization", &basic())
                        .set("Content-Type", "application/json")
                        .send_string(&json!({"name": name}).to_string());
                    match res {
                        Ok(r) if r.status() == 201 => acked.lock().unwrap().push(name),
                        Ok(r) => panic!("unexpected status {}", r.status()),
                        Err(ureq::Error::Status(code, r)) => {
                            panic!("unexpected {code}: {}", r.into_string().unwrap_or_default())
                        }
                        Err(_) => break,
                    }
                    i += 1;
                }
            })
        })
        .collect();
    // Let writes flow, then kill without warning.
    std::thread::sleep(Duration::from_millis(1500));
    server.kill();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 50,
        "too few writes before the kill to mean anything: {}",
        acked.len()
    );

    let (ok, out) = verify(tmp.path());
    assert!(ok, "chain must verify after SIGKILL: {out}");
    let server = ServerProcess::start(tmp.path());
    let admin = server.admin();
    let listed = admin.get("/access/api/v2/groups?limit=99999").json();
    let present: std::collections::HashSet<String> = listed["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group_name"].as_str().unwrap().to_string())
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|n| !present.contains(*n)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    // A clean stop (SIGTERM) exits 0 after writing a snapshot.
    assert!(server.terminate().success());
    let (ok, out) = verify(tmp.path());
    assert!(ok, "{out}");
}

fn admin_base(c: &crate::helpers::Client) -> String {
    // The client keeps its base private; ask it for a URL by requesting nothing.
    c.base_url()
}

fn basic() -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("admin:{}", crate::helpers::BINARY_ADMIN_PASSWORD))
    )
}

/// A SCIM user's personal data is sealed with a key made for it, which the writer makes
/// durable with the batch that carries the user (not a file of its own): every
/// acknowledged user must still read its e-mail after a SIGKILL, not `[erased]`.
#[test]
fn acknowledged_scim_users_keep_their_personal_data_after_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(tmp.path());
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let admin = server.admin();
            let acked = acked.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("scim-crash-{w}-{i}");
                    let url = format!("{}/access/api/v1/scim/v2/Users", admin_base(&admin));
                    let body = json!({"userName": name, "name": {"givenName": "G"},
                        "emails": [{"value": format!("{name}@example.com"), "primary": true}]});
                    let res = ureq::post(&url)
                        .set("Authorization", &basic())
                        .set("Content-Type", "application/scim+json")
                        .send_string(&body.to_string());
                    match res {
                        Ok(r) if r.status() == 201 => acked.lock().unwrap().push(name),
                        Ok(r) => panic!("unexpected status {}", r.status()),
                        Err(ureq::Error::Status(code, r)) => {
                            panic!("unexpected {code}: {}", r.into_string().unwrap_or_default())
                        }
                        Err(_) => break,
                    }
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    server.kill();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 20,
        "too few writes before the kill: {}",
        acked.len()
    );
    let server = ServerProcess::start(tmp.path());
    let admin = server.admin();
    for name in &acked {
        let u = admin
            .get(&format!("/access/api/v1/scim/v2/Users/{name}"))
            .json();
        assert_eq!(
            u["emails"][0]["value"],
            format!("{name}@example.com"),
            "{u}"
        );
        assert_eq!(u["name"]["givenName"], "G", "{u}");
    }
    assert!(server.terminate().success());
}

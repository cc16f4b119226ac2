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
    // An export refuses to copy the damage (it said "exported" and a backup was signed).
    let file = dir.join("damaged.export");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args([
            "export",
            "--data-dir",
            dir.to_str().unwrap(),
            "--out",
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("position 5"), "{said}");
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
    // The snapshot taken at the old head says an acknowledged event is missing.
    let (ok, out) = verify(&dir);
    assert!(!ok, "{out}");
    // Without it, the chain itself shows the gap.
    std::fs::remove_dir_all(dir.join("snapshots")).unwrap();
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

/// Ctrl-C (SIGINT) stops as SIGTERM does: a request in flight is finished and answered,
/// and what it wrote is there after a restart (actix took SIGINT as a forced stop that
/// dropped it). README: "Stop the server with Ctrl-C or SIGTERM: it finishes in-flight
/// requests".
#[test]
fn ctrl_c_finishes_the_requests_in_flight() {
    use std::io::{Read, Write};
    for signal in ["-INT", "-TERM"] {
        let tmp = tempfile::tempdir().unwrap();
        let server = ServerProcess::start(tmp.path());
        let addr = server.base.trim_start_matches("http://").to_string();
        let mut conn = std::net::TcpStream::connect(&addr).unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        let body = format!(r#"{{"name":"in-flight{signal}"}}"#);
        let head = format!(
            "POST /access/api/v2/groups HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            basic(),
            body.len()
        );
        conn.write_all(head.as_bytes()).unwrap();
        conn.write_all(&body.as_bytes()[..4]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        server.signal(signal);
        std::thread::sleep(std::time::Duration::from_millis(500));
        conn.write_all(&body.as_bytes()[4..]).unwrap();
        let mut answer = Vec::new();
        let _ = conn.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 201"), "{signal}: {answer:?}");
        let mut server = server;
        assert!(server.child.wait().unwrap().success(), "{signal}");
        let again = ServerProcess::start(tmp.path());
        let r = again
            .admin()
            .get(&format!("/access/api/v2/groups/in-flight{signal}"));
        assert_eq!(r.status, 200, "{signal}: {}", r.text);
        assert!(again.terminate().success());
    }
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

/// The records of `events.log` up to the zeros: (offset, is a commit mark, length).
fn records(dir: &std::path::Path) -> Vec<(u64, bool, usize)> {
    let bytes = std::fs::read(dir.join("events.log")).unwrap();
    let mut out = vec![];
    let mut at = 0usize;
    while at + 36 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        if len == 0 {
            break;
        }
        if len == u32::MAX {
            out.push((at as u64, true, 36));
            at += 36;
        } else {
            out.push((at as u64, false, 36 + len as usize));
            at += 36 + len as usize;
        }
    }
    out
}

/// The offset of the record of event `position` (1-based).
fn event_offset(dir: &std::path::Path, position: usize) -> u64 {
    records(dir)
        .iter()
        .filter(|r| !r.1)
        .nth(position - 1)
        .unwrap()
        .0
}

fn write_at(path: &std::path::Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
    f.sync_all().unwrap();
}

/// A damaged record whose later batches are still there is damage, not a torn write:
/// `verify` and start-up refuse it (naming the position) and nothing is cut off — before,
/// everything from the damaged record on was cut as "never acknowledged", `verify`
/// included, and the server started without the acknowledged events.
#[test]
fn a_damaged_record_with_batches_after_it_stops_start_up_and_nothing_is_cut() {
    let app = TestApp::spawn();
    populate(&app);
    let dir = app.dir.clone();
    let _tmp = app.stop();
    // Without snapshots: the batches after the damage are the only evidence.
    EventLog::open(&dir).unwrap().clear_snapshots().unwrap();
    let log = dir.join("events.log");
    let offset = event_offset(&dir, 6);
    let marks: Vec<u64> = records(&dir).iter().filter(|r| r.1).map(|r| r.0).collect();
    let original = std::fs::read(&log).unwrap();
    // The length field's high byte: the record now runs past the end of the file.
    write_at(&log, offset + 3, &[0x40]);
    let before = std::fs::read(&log).unwrap();
    let (ok, out) = verify(&dir);
    assert!(!ok, "{out}");
    assert!(out.contains("position 6"), "{out}");
    assert_eq!(
        std::fs::read(&log).unwrap(),
        before,
        "verify changed the log"
    );
    let err = TestApp::start(dir.clone(), Config::default())
        .err()
        .expect("start-up must refuse a damaged log");
    assert!(err.contains("position 6"), "{err}");
    assert_eq!(std::fs::read(&log).unwrap(), before, "start-up cut the log");
    // A commit mark's length field damaged the same way.
    write_at(
        &log,
        offset + 3,
        &original[offset as usize + 3..offset as usize + 4],
    );
    assert_eq!(std::fs::read(&log).unwrap(), original);
    write_at(&log, marks[3], &[0xfe]);
    let (ok, out) = verify(&dir);
    assert!(!ok, "{out}");
    assert!(
        TestApp::start(dir, Config::default()).is_err(),
        "start-up must refuse a damaged mark"
    );
}

/// A log cut short (here in the middle of an event) under a snapshot taken further on:
/// the snapshot says acknowledged events are missing, and start-up refuses.
#[test]
fn a_log_cut_short_under_a_newer_snapshot_stops_start_up() {
    let app = TestApp::spawn();
    populate(&app);
    let head = app.digest()["seq"].as_u64().unwrap();
    let dir = app.dir.clone();
    let _tmp = app.stop();
    let log = dir.join("events.log");
    let offset = event_offset(&dir, 8);
    let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    f.set_len(offset + 20).unwrap();
    drop(f);
    let (ok, out) = verify(&dir);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("snapshot was taken at position {head}")),
        "{out}"
    );
    let err = TestApp::start(dir, Config::default())
        .err()
        .expect("start-up must refuse a log cut short");
    assert!(err.contains("position 8"), "{err}");
}

/// What a crash leaves — a batch half written after the last mark, never acknowledged —
/// is still cut off by the server; `verify` reads up to the last mark and leaves the file
/// as it is.
#[test]
fn a_torn_batch_is_still_cut_off_and_verify_leaves_it() {
    let app = TestApp::spawn();
    populate(&app);
    let live = app.digest();
    let dir = app.dir.clone();
    let _tmp = app.stop();
    let log = dir.join("events.log");
    let end = records(&dir).last().map(|r| r.0 + r.2 as u64).unwrap();
    // A record header and its event's first bytes up to a sector boundary, then nothing:
    // the rest never reached the disk (a crash leaves whole sectors of zeros).
    let to_boundary = (512 - (end % 512)) as usize;
    let written = if to_boundary < 36 + 8 {
        to_boundary + 512
    } else {
        to_boundary
    };
    let mut torn = 2000u32.to_le_bytes().to_vec();
    torn.extend_from_slice(&[0xab; 32]);
    torn.extend(std::iter::repeat_n(0x81u8, written - 36));
    write_at(&log, end, &torn);
    let before = std::fs::read(&log).unwrap();
    let (ok, out) = verify(&dir);
    assert!(ok, "{out}");
    assert_eq!(
        std::fs::read(&log).unwrap(),
        before,
        "verify changed the log"
    );
    let app = TestApp::start(dir, Config::default()).unwrap();
    assert_eq!(app.digest(), live);
}

/// Damage to the newest batch, which no later batch proves acknowledged, is told from
/// what a crash leaves (sectors of zeros): a length field changed, an event's byte
/// changed, a commit mark's tag changed — `verify` fails and start-up refuses, naming
/// the byte, and nothing is cut. Before, each was cut off as "never acknowledged": the
/// batch's acknowledged writes went without a word, `verify` passed, and the next write
/// took their positions.
#[test]
fn damage_to_the_newest_batch_is_not_taken_for_a_torn_write() {
    let app = TestApp::spawn();
    populate(&app);
    let head = app.digest()["seq"].as_u64().unwrap();
    let dir = app.dir.clone();
    let _tmp = app.stop();
    // Without snapshots (a snapshot at the head would prove the batch on its own).
    EventLog::open(&dir).unwrap().clear_snapshots().unwrap();
    let log = dir.join("events.log");
    let recs = records(&dir);
    let last_mark = recs.iter().rev().find(|r| r.1).unwrap().0;
    let last_event = recs.iter().rev().find(|r| !r.1).unwrap().0;
    let original = std::fs::read(&log).unwrap();
    let at = |o: u64| original[o as usize];
    for (what, offset, value) in [
        (
            "its length's lowest byte",
            last_event,
            at(last_event) ^ 0x01,
        ),
        (
            "its length's third byte",
            last_event + 2,
            at(last_event + 2) ^ 0x01,
        ),
        ("an event byte", last_event + 40, at(last_event + 40) ^ 0x20),
        ("the chain hash", last_event + 9, at(last_event + 9) ^ 0x04),
        ("the mark's tag", last_mark, 0xfe),
    ] {
        write_at(&log, offset, &[value]);
        let damaged = std::fs::read(&log).unwrap();
        let (ok, out) = verify(&dir);
        assert!(!ok, "{what}: {out}");
        let err = TestApp::start(dir.clone(), Config::default())
            .err()
            .unwrap_or_else(|| panic!("{what}: start-up must refuse the damaged batch"));
        assert!(
            err.contains("does not read") || err.contains("position"),
            "{what}: {err}"
        );
        assert_eq!(
            std::fs::read(&log).unwrap(),
            damaged,
            "{what}: the log was cut"
        );
        write_at(&log, offset, &[at(offset)]);
    }
    assert_eq!(std::fs::read(&log).unwrap(), original);
    let app = TestApp::start(dir, Config::default()).unwrap();
    assert_eq!(
        app.digest()["seq"].as_u64().unwrap(),
        head,
        "nothing was lost"
    );
}

/// A commit mark holds its batch's last chain hash. One whose hash the disk changed
/// loses nothing (the events verify, the server starts with all of them), but `verify`
/// says where the file is damaged — before, the mark's hash was never read.
#[test]
fn a_commit_mark_whose_hash_changed_fails_verify_and_loses_nothing() {
    let app = TestApp::spawn();
    populate(&app);
    let live = app.digest();
    let dir = app.dir.clone();
    let _tmp = app.stop();
    EventLog::open(&dir).unwrap().clear_snapshots().unwrap();
    let marks: Vec<u64> = records(&dir).iter().filter(|r| r.1).map(|r| r.0).collect();
    assert!(marks.len() > 4, "{marks:?}");
    let log = dir.join("events.log");
    let byte = std::fs::read(&log).unwrap()[marks[3] as usize + 10];
    write_at(&log, marks[3] + 10, &[byte ^ 0x20]);
    let (ok, out) = verify(&dir);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("commit mark at byte {}", marks[3])),
        "{out}"
    );
    let app = TestApp::start(dir, Config::default()).unwrap();
    assert_eq!(app.digest(), live, "nothing is lost");
}

/// What a crash can leave at the end: a batch and its mark written, the mark's hash only
/// up to a sector boundary (zeros after it, as the file was ahead of the writer). Its
/// sync never returned: the batch is cut off as torn, not replayed as committed.
#[test]
fn a_commit_mark_torn_at_a_sector_boundary_is_not_a_commit() {
    let app = TestApp::spawn();
    populate(&app);
    let live = app.digest();
    let dir = app.dir.clone();
    let _tmp = app.stop();
    let log = dir.join("events.log");
    let end = records(&dir).last().map(|r| r.0 + r.2 as u64).unwrap();
    // An event record of `len` bytes that do not decode, then its mark, whose hash's
    // 17th byte starts a sector.
    let mut len = (512 - (end + 36 + 4 + 16) % 512) % 512;
    if len == 0 {
        len = 512;
    }
    // The event's record is whole (its chain hash follows the last mark's); the mark is not.
    let bytes = std::fs::read(&log).unwrap();
    let last_mark = records(&dir).last().unwrap().0 as usize;
    let prev: [u8; 32] = bytes[last_mark + 4..last_mark + 36].try_into().unwrap();
    let body = vec![0x81u8; len as usize];
    let mut batch = (len as u32).to_le_bytes().to_vec();
    batch.extend_from_slice(&gatehouse::log::chain_hash(&prev, &body));
    batch.extend_from_slice(&body);
    let mark = end + batch.len() as u64;
    assert_eq!((mark + 4 + 16) % 512, 0);
    batch.extend_from_slice(&u32::MAX.to_le_bytes());
    batch.extend_from_slice(&[0xab; 16]);
    batch.extend_from_slice(&[0; 16]);
    write_at(&log, end, &batch);
    let (ok, out) = verify(&dir);
    assert!(ok, "{out}");
    let app = TestApp::start(dir.clone(), Config::default()).unwrap();
    assert_eq!(app.digest(), live);
    app.create_group("after-the-crash");
    let head = app.digest()["seq"].as_u64().unwrap();
    let _tmp = app.stop();
    let (ok, out) = verify(&dir);
    assert!(ok && out.contains(&format!("{head} events")), "{out}");
}

/// A changed byte in a snapshot's state: the checksum refuses it, and the server rebuilds
/// from the log rather than serving a state the log never had.
#[test]
fn a_snapshot_with_a_changed_byte_is_not_trusted() {
    let app = TestApp::spawn();
    populate(&app);
    let live = app.digest();
    let dir = app.dir.clone();
    let _tmp = app.stop();
    let snaps: Vec<_> = std::fs::read_dir(dir.join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "snap"))
        .collect();
    assert!(!snaps.is_empty());
    for snap in &snaps {
        let bytes = std::fs::read(snap).unwrap();
        // A description's letter: the state still decodes, to another state.
        let at = bytes
            .windows(5)
            .position(|w| w == b"alpha")
            .expect("a group's name in the snapshot") as u64;
        write_at(snap, at + 1, b"X");
    }
    // `verify` names it (the log is intact: exit 0); it said nothing.
    let (ok, out) = verify(&dir);
    assert!(ok, "{out}");
    assert!(out.contains("is damaged"), "{out}");
    let app = TestApp::start(dir.clone(), Config::default()).unwrap();
    assert_eq!(app.digest(), live, "the state is the log's");
    assert_eq!(app.admin().get("/access/api/v2/groups/alpha").status, 200);
    // The tail it replayed is snapshotted again at the stop (counted from the snapshot
    // it loaded, none, not from the newest file on disk).
    let _kept = app.stop();
    let rewritten = std::fs::read(&snaps[snaps.len() - 1]).unwrap();
    assert!(
        !rewritten.windows(5).any(|w| w == b"aXpha"),
        "the damaged snapshot was written again"
    );
}

/// A wrong index (its last entry right, an earlier one pointing at another event) does
/// not move the audit trail's positions.
#[test]
fn a_wrong_index_does_not_shift_the_audit_trail() {
    let app = TestApp::spawn();
    let admin = app.admin();
    for i in 0..140 {
        assert_eq!(
            admin
                .post("/access/api/v2/groups", &json!({"name": format!("g{i}")}))
                .status,
            201
        );
    }
    let head = app.digest()["seq"].as_u64().unwrap();
    assert!(head > 130, "{head}");
    let dir = app.dir.clone();
    let _tmp = app.stop();
    // Entries for positions 1, 65 and 129: the middle one now points at position 70.
    let index: Vec<u8> = [0u64, event_offset(&dir, 70), event_offset(&dir, 129)]
        .iter()
        .flat_map(|o| o.to_le_bytes())
        .collect();
    std::fs::write(dir.join("events.idx"), &index).unwrap();
    let app = TestApp::start(dir.clone(), Config::default()).unwrap();
    let r = app.admin().get("/access/api/v1/audit/events?from=66&to=67");
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let text = v.to_string();
    assert!(text.contains("66") && text.contains("67"), "{text}");
    let positions: Vec<u64> = v["events"]
        .as_array()
        .or_else(|| v.as_array())
        .expect("a list of events")
        .iter()
        .filter_map(|e| e["seq"].as_u64().or_else(|| e["position"].as_u64()))
        .collect();
    assert_eq!(positions, vec![66, 67], "{text}");
    // An entry into the middle of a record: the bytes there do not decode.
    let _kept = app.stop();
    let index: Vec<u8> = [0u64, event_offset(&dir, 70) + 7, event_offset(&dir, 129)]
        .iter()
        .flat_map(|o| o.to_le_bytes())
        .collect();
    std::fs::write(dir.join("events.idx"), &index).unwrap();
    let app = TestApp::start(dir, Config::default()).unwrap();
    let r = app.admin().get("/access/api/v1/audit/events?from=66&to=67");
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let positions: Vec<u64> = v["events"]
        .as_array()
        .or_else(|| v.as_array())
        .expect("a list of events")
        .iter()
        .filter_map(|e| e["seq"].as_u64().or_else(|| e["position"].as_u64()))
        .collect();
    assert_eq!(positions, vec![66, 67], "{v}");
}

/// A stop writes a snapshot when the start replayed events no snapshot holds, even with
/// no write since: the next start does not replay them again.
#[test]
fn a_stop_after_a_replay_from_the_log_writes_a_snapshot() {
    let app = TestApp::spawn();
    populate(&app);
    let dir = app.dir.clone();
    let _tmp = app.stop();
    std::fs::remove_dir_all(dir.join("snapshots")).unwrap();
    let app = TestApp::start(dir.clone(), Config::default()).unwrap();
    let head = app.digest()["seq"].as_u64().unwrap();
    let _kept = app.stop();
    let names: Vec<String> = std::fs::read_dir(dir.join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        names.contains(&format!("{head:020}.snap")),
        "a snapshot at {head}: {names:?}"
    );
}

/// Personal data no key opens, for users nobody purged, is said at start-up (an error in
/// the log): the key store is kept outside the log, which verifies without it, and a lost
/// one otherwise looks exactly like a purge. A purged user is not reported.
#[test]
fn a_lost_key_store_is_said_at_start_up() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let said = |log: &std::path::Path| {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains("cannot be decrypted")
    };
    let first = tmp.path().join("first.log");
    let server = ServerProcess::start_logging(&data, &first);
    let admin = server.admin();
    for name in ["kept", "purged"] {
        let r = admin.post(
            "/access/api/v2/users",
            &json!({"username": name, "password": "password-1",
                    "email": format!("{name}@example.com")}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let r = admin.delete("/access/api/v2/users/purged?purge=true");
    assert!(r.status < 300, "{}", r.text);
    assert!(server.terminate().success());
    // Every key in place (the purged one destroyed on purpose): nothing to say.
    let second = tmp.path().join("second.log");
    let server = ServerProcess::start_logging(&data, &second);
    assert_eq!(
        server.admin().get("/access/api/v2/users/kept").json()["email"],
        "kept@example.com"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(server.terminate().success());
    assert!(
        !said(&second),
        "{}",
        std::fs::read_to_string(&second).unwrap()
    );
    // The key store lost: said, with how many users.
    let keys = data.join("keys").join("personal");
    for entry in std::fs::read_dir(&keys).unwrap().flatten() {
        std::fs::remove_file(entry.path()).unwrap();
    }
    let third = tmp.path().join("third.log");
    let server = ServerProcess::start_logging(&data, &third);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !said(&third) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        server.admin().get("/access/api/v2/users/kept").json()["email"],
        "[erased]"
    );
    assert!(server.terminate().success());
    let text = std::fs::read_to_string(&third).unwrap();
    assert!(said(&third), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("cannot be decrypted"))
        .unwrap();
    // Without the terminal's colours around the field names.
    let plain: String = line
        .split('\u{1b}')
        .map(|part| part.split_once('m').map_or(part, |(_, rest)| rest))
        .collect();
    assert!(
        plain.contains("users=1") && plain.contains("first=kept"),
        "{plain}"
    );
}

/// `verify`, `export` and `import` read the log they are told on the command line: a
/// `--data-dir` typed there is not overridden by a `GATEHOUSE_STORE` left in the
/// environment for `serve` (before, it silently verified, exported or imported into the
/// shared log instead), and both typed is refused.
#[test]
fn a_typed_data_dir_beats_the_store_in_the_environment() {
    let app = TestApp::spawn();
    populate(&app);
    let head = app.digest()["seq"].as_u64().unwrap();
    let dir = app.dir.clone();
    let _tmp = app.stop();
    let gatehouse = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(args)
            .env("GATEHOUSE_STORE", "postgres://nobody:pw@127.0.0.1:1/none")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let out = gatehouse(&["verify".as_ref(), "--data-dir".as_ref(), dir.as_os_str()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("chain intact: {head} events")),
        "{stdout}"
    );
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("log.bin");
    let out = gatehouse(&[
        "export".as_ref(),
        "--data-dir".as_ref(),
        dir.as_os_str(),
        "--out".as_ref(),
        file.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let empty = work.path().join("copy");
    let out = gatehouse(&[
        "import".as_ref(),
        "--data-dir".as_ref(),
        empty.as_os_str(),
        "--in".as_ref(),
        file.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ok, out) = verify(&empty);
    assert!(ok && out.contains(&format!("{head} events")), "{out}");
    let out = gatehouse(&[
        "verify".as_ref(),
        "--data-dir".as_ref(),
        dir.as_os_str(),
        "--store".as_ref(),
        "postgres://nobody:pw@127.0.0.1:1/none".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not both"));
}

/// A new data directory is its owner's only (it holds password hashes and keys), and
/// an export is written private and whole: renamed into place when complete, and a
/// failed one leaves nothing that looks like an export.
#[test]
fn a_new_data_directory_and_an_export_are_private() {
    use crate::helpers::ServerProcess;
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new").join("data");
    let server = ServerProcess::start(&dir);
    assert_eq!(server.admin().get("/access/api/v2/users/admin").status, 200);
    assert!(server.terminate().success());
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{mode:o}");
    // One an operator made beforehand, readable by all, is made the owner's only too
    // (sled's files in it are 0644).
    let made = tmp.path().join("made");
    std::fs::create_dir(&made).unwrap();
    std::fs::set_permissions(&made, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = ServerProcess::start(&made);
    assert_eq!(server.admin().get("/access/api/v2/users/admin").status, 200);
    assert!(server.terminate().success());
    let mode = std::fs::metadata(&made).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{mode:o}");
    let out = tmp.path().join("log.bin");
    let run = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(args)
            .env("RUST_LOG", "warn")
            .env_remove("GATEHOUSE_STORE")
            .output()
            .unwrap()
    };
    let export = |from: &std::path::Path| {
        run(&[
            "export".as_ref(),
            "--data-dir".as_ref(),
            from.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ])
    };
    let done = export(&dir);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    // A `.partial` an earlier run left, readable by all: the export is private all the
    // same (it kept the old file's mode).
    std::fs::remove_file(&out).unwrap();
    let partial = tmp.path().join("log.bin.partial");
    std::fs::write(&partial, b"old").unwrap();
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(export(&dir).status.success());
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    // A directory whose sled leftovers (`log/`) are gone still has its log.
    let no_sled = tmp.path().join("no-sled");
    copy_dir(&dir, &no_sled);
    std::fs::remove_dir_all(no_sled.join("log")).unwrap();
    let said = run(&[
        "verify".as_ref(),
        "--data-dir".as_ref(),
        no_sled.as_os_str(),
    ]);
    assert!(said.status.success(), "{said:?}");
    // A log that does not read: no export, and no part of one.
    std::fs::remove_file(&out).unwrap();
    let bad = tmp.path().join("bad");
    copy_dir(&dir, &bad);
    EventLog::open(&bad).unwrap().clear_snapshots().unwrap();
    let log = bad.join("events.log");
    // The length field of event 2: the record runs past the end of the file.
    write_at(&log, event_offset(&bad, 2) + 3, &[0x40]);
    let failed = export(&bad);
    assert!(!failed.status.success());
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("log.bin"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A full disk refuses writes (503, saying so) and the server goes on: reads are
/// served, and writes are taken again once there is room; nothing acknowledged is lost
/// and the log verifies. (The process exited on the first write that found no room,
/// and a nearly full disk, with room for the batch but not for 8 MiB of zeros ahead,
/// stopped it too.) Needs a small file system of its own: a tmpfs, mounted as root.
#[test]
fn a_full_disk_refuses_writes_and_the_server_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=48m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: mounting a tmpfs needs root (this checks a full disk)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let dir = mnt.join("data");
    let server = ServerProcess::start(&dir);
    let admin = server.admin();
    assert_eq!(admin.get("/access/api/v2/users").status, 200);
    // Take the rest of the room (a write fails once it is gone).
    let filler = mnt.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![7u8; 1 << 16];
        while f.write_all(&block).is_ok() {}
    }
    // A write with personal data needs its key durable first (none made yet: the pool
    // is empty): refused, nothing written. (The key's flush failed after the log's, the
    // process stopped, and the event stayed in the log, unanswered, its e-mail
    // unreadable for ever.)
    let user =
        json!({"username": "fulluser", "password": "FullUser-1234", "email": "fu@x.example"});
    let r = admin.post("/access/api/v2/users", &user);
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.text.contains("disk"), "{}", r.text);
    assert_eq!(admin.get("/access/api/v2/users/fulluser").status, 404);
    let description = "d".repeat(1000);
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for i in 0..20_000 {
        let name = format!("g{i}");
        let r = admin.post(
            "/access/api/v2/groups",
            &json!({"name": name, "description": description}),
        );
        match r.status {
            201 => acknowledged.push(name),
            503 => {
                refused = Some(r.text);
                break;
            }
            other => panic!("{other}: {}", r.text),
        }
    }
    let refused = refused.expect("a write refused for want of room");
    assert!(refused.contains("disk"), "{refused}");
    // Still serving: reads, and the decision.
    assert_eq!(admin.get("/access/api/v2/users").status, 200);
    assert_eq!(admin.get("/api/system/ping").status, 200);
    // Room again: writes are taken.
    std::fs::remove_file(&filler).unwrap();
    let r = admin.post("/access/api/v2/groups", &json!({"name": "after"}));
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.post("/access/api/v2/users", &user);
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        admin.get("/access/api/v2/users/fulluser").json()["email"],
        "fu@x.example"
    );
    for name in acknowledged
        .iter()
        .rev()
        .take(20)
        .chain(["after".to_string()].iter())
    {
        assert_eq!(
            admin.get(&format!("/access/api/v2/groups/{name}")).status,
            200,
            "{name}"
        );
    }
    drop(server);
    let (ok, out) = verify(&dir);
    assert!(ok, "{out}");
}

/// The index of the log is written only after each batch's sync, so it proves how far
/// the log was acknowledged: a tail cut (or zeroed) over many batches is damage, not a
/// torn write — start-up and `verify` refuse, and nothing is cut; a missing events.log
/// beside its index is not a new site; `verify` writes nothing. The log's files are the
/// owner's only (they hold password hashes).
#[test]
fn the_index_proves_what_was_acknowledged_and_nothing_begins_anew() {
    let app = TestApp::spawn();
    let admin = app.admin();
    for i in 0..140 {
        let r = admin.post("/access/api/v2/groups", &json!({"name": format!("g{i}")}));
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let dir = app.dir.clone();
    let _tmp = app.stop();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["events.log", "events.idx"] {
            let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{f}: {mode:o}");
        }
    }
    EventLog::open(&dir).unwrap().clear_snapshots().unwrap();
    let log = dir.join("events.log");
    let index = std::fs::read(dir.join("events.idx")).unwrap();
    assert!(
        index.len() >= 3 * 8,
        "the index has entries for 1, 65 and 129"
    );

    // Without events.log: refused, and neither file is made or changed.
    let saved = dir.join("events.log.saved");
    std::fs::rename(&log, &saved).unwrap();
    let (ok, out) = verify(&dir);
    assert!(!ok, "{out}");
    assert!(out.contains("missing"), "{out}");
    assert!(!log.exists(), "verify made a log");
    let err = TestApp::start(dir.clone(), Config::default())
        .err()
        .expect("start-up must refuse a missing log");
    assert!(err.contains("missing"), "{err}");
    assert!(!log.exists(), "start-up made a log");
    assert_eq!(std::fs::read(dir.join("events.idx")).unwrap(), index);
    std::fs::rename(&saved, &log).unwrap();

    // Cut at event 100 (many batches acknowledged after it).
    let before = std::fs::read(&log).unwrap();
    let offset = event_offset(&dir, 100);
    let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    f.set_len(offset).unwrap();
    drop(f);
    let cut = std::fs::read(&log).unwrap();
    let (ok, out) = verify(&dir);
    assert!(!ok, "{out}");
    assert!(out.contains("index"), "{out}");
    let err = TestApp::start(dir.clone(), Config::default())
        .err()
        .expect("start-up must refuse a log cut short");
    assert!(err.contains("acknowledged"), "{err}");
    assert_eq!(std::fs::read(&log).unwrap(), cut, "nothing is cut");
    assert_eq!(std::fs::read(dir.join("events.idx")).unwrap(), index);
    // The whole log back: it starts with everything.
    std::fs::write(&log, &before).unwrap();
    let app = TestApp::start(dir, Config::default()).unwrap();
    assert_eq!(app.admin().get("/access/api/v2/groups/g139").status, 200);
}

/// What a crash in the middle of a snapshot or a backup export left is removed when the
/// server starts (`verify`, which changes nothing, leaves it). Before, only the next
/// snapshot to finish removed a snapshot's temporary file, and nothing a backup's: a
/// server crashing again and again filled its disk with them.
#[test]
fn unfinished_snapshots_and_backups_are_removed_at_start() {
    let app = TestApp::spawn();
    populate(&app);
    let dir = app.dir.clone();
    let _tmp = app.stop();
    let snap = dir.join("snapshots").join("00000000000000000042.snap.tmp");
    std::fs::write(&snap, vec![7u8; 4096]).unwrap();
    std::fs::create_dir_all(dir.join("backup")).unwrap();
    let partial = dir.join("backup").join(".gatehouse-42.bin.partial");
    std::fs::write(&partial, vec![7u8; 4096]).unwrap();
    let kept = dir.join("backup").join("notes.partial");
    std::fs::write(&kept, b"not ours").unwrap();
    let (ok, out) = verify(&dir);
    assert!(ok, "{out}");
    assert!(
        snap.exists() && partial.exists(),
        "verify changed the data directory"
    );
    let app = TestApp::start(dir.clone(), Config::default()).unwrap();
    assert!(
        !snap.exists(),
        "the snapshot's temporary file is still there"
    );
    assert!(!partial.exists(), "the unfinished backup is still there");
    assert!(
        kept.exists(),
        "a file that is not an unfinished backup was removed"
    );
    drop(app);
}

/// A power cut keeps any of a write's sectors: the newest batch's commit mark may be on
/// disk while a sector of its events is not (zeros). Its sync never returned, so it was
/// never acknowledged: the server starts without it, and `verify` passes. Before, it read
/// as committed and its replay stopped every start.
#[test]
fn the_newest_batch_with_its_mark_but_a_lost_sector_is_torn_not_damage() {
    let app = TestApp::spawn();
    populate(&app);
    let before = app.digest();
    // One more batch, large enough to span whole sectors.
    let r = app.admin().post(
        "/access/api/v2/groups",
        &json!({"name": "big", "description": "d".repeat(1000)}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let dir = app.dir.clone();
    let _tmp = app.stop();
    // Without snapshots (a snapshot at the head would prove the batch).
    EventLog::open(&dir).unwrap().clear_snapshots().unwrap();
    let log = dir.join("events.log");
    let recs = records(&dir);
    let marks: Vec<u64> = recs.iter().filter(|r| r.1).map(|r| r.0).collect();
    let (start, end) = (marks[marks.len() - 2] + 36, marks[marks.len() - 1]);
    // A whole sector inside the newest batch's events, never written.
    let sector = start.div_ceil(512) * 512;
    assert!(sector + 512 <= end, "the batch spans a whole sector");
    write_at(&log, sector, &[0u8; 512]);
    let (ok, out) = verify(&dir);
    assert!(ok, "{out}");
    let app = TestApp::start(dir.clone(), Config::default()).unwrap();
    assert_eq!(
        app.digest(),
        before,
        "the torn batch is gone, the rest is there"
    );
    assert_eq!(app.admin().get("/access/api/v2/groups/big").status, 404);
    app.create_group("after-the-power-cut");
    let head = app.digest()["seq"].as_u64().unwrap();
    let _tmp = app.stop();
    let (ok, out) = verify(&dir);
    assert!(ok && out.contains(&format!("{head} events")), "{out}");
}

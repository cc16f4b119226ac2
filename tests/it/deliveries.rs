//! Webhook delivery (issue 7): committed events reach real loopback receivers, in log
//! order, signed, at least once — through receiver outages, a SIGKILL of the server,
//! and receivers that always fail (dead letters, re-drive).

use crate::helpers::{Client, ServerProcess, TestApp};
use gatehouse::Config;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SUBS: &str = "/event/api/v1/subscriptions";

/// One request a receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub head: String,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A loopback HTTP receiver that records each request and answers `status` (or, when
/// `hang` is set, reads the request and never answers).
pub struct Receiver {
    pub url: String,
    pub status: Arc<AtomicU16>,
    pub hang: Arc<AtomicBool>,
    pub seen: Arc<Mutex<Vec<Received>>>,
    /// When set to n: the first attempt at every position divisible by n answers 503.
    pub flaky_every: Arc<AtomicU64>,
}

impl Receiver {
    pub fn start() -> Receiver {
        Self::on(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    pub fn on(listener: TcpListener) -> Receiver {
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let status = Arc::new(AtomicU16::new(200));
        let hang = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let flaky_every = Arc::new(AtomicU64::new(0));
        let failed_once = Arc::new(Mutex::new(std::collections::HashSet::new()));
        let (st, hg, sn, fl) = (
            status.clone(),
            hang.clone(),
            seen.clone(),
            flaky_every.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (st, hg, sn) = (st.clone(), hg.clone(), sn.clone());
                let flaky = (fl.clone(), failed_once.clone());
                // One thread per connection: a hanging one must not block the others.
                std::thread::spawn(move || serve(stream, st, hg, sn, flaky));
            }
        });
        Receiver {
            url,
            status,
            hang,
            seen,
            flaky_every,
        }
    }

    pub fn events(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }

    /// Wait until `n` requests arrived (panics after `secs`).
    pub fn wait_for(&self, n: usize, secs: u64) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let seen = self.events();
            if seen.len() >= n {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} deliveries after {secs} s: {:?}",
                seen.len(),
                seen.iter().map(|r| r.json()).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn serve(
    stream: std::net::TcpStream,
    status: Arc<AtomicU16>,
    hang: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Received>>>,
    (flaky_every, failed_once): (Arc<AtomicU64>, Arc<Mutex<std::collections::HashSet<u64>>>),
) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut head = String::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            head.push_str(&line);
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if hang.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_secs(3600));
            return;
        }
        let mut code = status.load(Ordering::SeqCst);
        let every = flaky_every.load(Ordering::SeqCst);
        if every > 0 {
            let position = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["position"].as_u64())
                .unwrap_or(1);
            if position % every == 0 && failed_once.lock().unwrap().insert(position) {
                code = 503;
            }
        }
        if (200..300).contains(&code) {
            seen.lock().unwrap().push(Received { head, body });
        }
        let stream = reader.get_mut();
        if write!(stream, "HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").is_err() {
            return;
        }
    }
}

/// The log positions of the deliveries a receiver got, in the order it got them.
fn positions_of(got: &[Received]) -> Vec<u64> {
    got.iter()
        .map(|r| r.json()["position"].as_u64().unwrap())
        .collect()
}

fn quick_retries() -> Config {
    Config {
        webhook_retry_base_ms: 30,
        webhook_retry_max_ms: 200,
        webhook_max_attempts: 3,
        webhook_timeout_ms: 2000,
        ..Config::default()
    }
}

fn subscribe(admin: &Client, key: &str, url: &str, types: &[&str], include: &[&str]) {
    let r = admin.post(
        SUBS,
        &json!({
            "key": key,
            "event_filter": {"domain": "user", "event_types": types,
                             "criteria": {"includePatterns": include}},
            "handlers": [{"handler_type": "webhook", "url": url, "secret": "s3cr3t-hook",
                          "custom_http_headers": [{"name": "X-Team", "value": "qa"}]}]
        }),
    );
    assert_eq!(r.status, 201, "{}", r.text);
}

fn create_user(admin: &Client, name: &str) -> u64 {
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": name, "email": format!("{name}@example.com"), "password": "Password-123"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    r.header("x-gatehouse-seq").unwrap().parse().unwrap()
}

fn hmac_hex(secret: &[u8], body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn a_receiver_gets_exactly_what_its_filter_selects_in_order_and_signed() {
    let app = TestApp::spawn_with(quick_retries());
    let admin = app.admin();
    let rx = Receiver::start();
    let other = Receiver::start();
    subscribe(&admin, "qa", &rx.url, &["created", "deleted"], &["qa-*"]);
    subscribe(&admin, "everyone", &other.url, &["created"], &[]);
    let p1 = create_user(&admin, "qa-one");
    create_user(&admin, "dev-one");
    let p3 = create_user(&admin, "qa-two");
    assert_eq!(
        admin
            .patch(
                "/access/api/v2/users/qa-one",
                &json!({"email": "new@example.com"})
            )
            .status,
        200
    );
    let del = admin.delete("/access/api/v2/users/qa-one");
    assert_eq!(del.status, 204, "{}", del.text);
    let p5: u64 = del.header("x-gatehouse-seq").unwrap().parse().unwrap();
    let got = rx.wait_for(3, 20);
    std::thread::sleep(Duration::from_millis(300));
    let got_all = rx.events();
    assert_eq!(got_all.len(), 3, "exactly the selected events");
    let events: Vec<Value> = got.iter().map(Received::json).collect();
    let summary: Vec<(String, String, u64)> = events
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap().to_string(),
                e["data"]["username"].as_str().unwrap().to_string(),
                e["position"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("created".into(), "qa-one".into(), p1),
            ("created".into(), "qa-two".into(), p3),
            ("deleted".into(), "qa-one".into(), p5),
        ]
    );
    for (r, e) in got.iter().zip(&events) {
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("x-team"), Some("qa"));
        let sig = format!("sha256={}", hmac_hex(b"s3cr3t-hook", &r.body));
        assert_eq!(r.header("x-gatehouse-signature"), Some(sig.as_str()));
        assert_eq!(r.header("x-jfrog-event-auth"), Some("s3cr3t-hook"));
        assert_eq!(
            r.header("x-gatehouse-idempotency-key"),
            Some(e["position"].to_string().as_str())
        );
        assert_eq!(e["domain"], "user");
        assert_eq!(e["subscription_key"], "qa");
        assert!(e["source"].as_str().unwrap().starts_with("jfac@"));
        assert!(e["timestamp"].as_str().unwrap().ends_with('Z'));
        // The entity as the REST API shows it: no password hash, ever.
        let text = String::from_utf8_lossy(&r.body);
        assert!(
            !text.contains("argon2") && !text.contains("Password-123"),
            "{text}"
        );
    }
    // Created: as it was created; deleted: as it was just before (the changed e-mail).
    assert_eq!(events[0]["data"]["email"], "qa-one@example.com");
    assert_eq!(events[2]["data"]["email"], "new@example.com");
    // The other subscription has its own order: all three creations (and the admin?
    // no: it existed before the subscription).
    let all = other.wait_for(3, 20);
    let names: Vec<String> = all
        .iter()
        .map(|r| r.json()["data"]["username"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["qa-one", "dev-one", "qa-two"]);
    // History and status are queryable.
    let d = admin.get(&format!("{SUBS}/qa/deliveries")).json();
    assert_eq!(d["cursor"], p5);
    assert_eq!(d["pending_count"], 0);
    let attempts = d["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{d}");
    assert_eq!(attempts[0]["position"], p5, "newest first");
    assert_eq!(attempts[0]["status_code"], 200);
    assert_eq!(attempts[0]["outcome"], "delivered");
    assert_eq!(attempts[0]["attempt"], 1);
    assert!(attempts[0]["latency_ms"].is_u64());
    assert_eq!(admin.get(&format!("{SUBS}/nope/deliveries")).status, 404);
    assert_eq!(
        app.as_user("qa-two", "Password-123")
            .get(&format!("{SUBS}/qa/deliveries"))
            .status,
        403
    );
    // A disabled subscription gets nothing new; a deleted one stops.
    let mut off = admin.get(&format!("{SUBS}/everyone")).json();
    off["enabled"] = json!(false);
    off["handlers"][0]
        .as_object_mut()
        .unwrap()
        .remove("secret_set");
    assert_eq!(admin.put(&format!("{SUBS}/everyone"), &off).status, 204);
    create_user(&admin, "qa-three");
    rx.wait_for(4, 20);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(other.events().len(), 3, "disabled: nothing new");
    assert_eq!(admin.delete(&format!("{SUBS}/qa")).status, 204);
    create_user(&admin, "qa-four");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(rx.events().len(), 4, "deleted: nothing new");
}

/// The dispatcher judges a group's creation without applying it to its read models at
/// once (the event alone tells its notice); a user added to that group right after (a
/// notice that depends on the group existing) must still be judged against read models
/// that include it: every pair, in order, also when both fall in one round.
#[test]
fn a_group_joined_right_after_its_creation_is_announced_as_changed() {
    let app = TestApp::spawn_with(quick_retries());
    let admin = app.admin();
    let rx = Receiver::start();
    create_user(&admin, "joiner");
    let r = admin.post(
        SUBS,
        &json!({"key": "groups", "event_filter": {"domain": "group", "event_types": ["created", "members_changed"]},
            "handlers": [{"handler_type": "webhook", "url": rx.url, "secret": "s3cr3t-hook"}]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let mut expected = Vec::new();
    for i in 0..20 {
        let name = format!("team-{i}");
        let g = admin.post("/access/api/v2/groups", &json!({"name": name}));
        assert_eq!(g.status, 201, "{}", g.text);
        let j = admin.patch(
            "/access/api/v2/users/joiner/groups",
            &json!({"add": [name]}),
        );
        assert_eq!(j.status, 200, "{}", j.text);
        expected.push(("created".to_string(), name.clone()));
        expected.push(("members_changed".to_string(), name));
    }
    let got = rx.wait_for(40, 30);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rx.events().len(), 40, "exactly one of each");
    let seen: Vec<(String, String)> = got
        .iter()
        .map(|r| {
            let e = r.json();
            (
                e["event_type"].as_str().unwrap().to_string(),
                e["data"]["name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(seen, expected);
}

/// A group's members change also when a user is created in it (asked for, or by
/// auto-join) and when the user is deleted: each fires `members_changed` for the group,
/// as joining and leaving by the groups API do.
#[test]
fn memberships_made_or_ended_by_creating_or_deleting_a_user_are_announced() {
    let app = TestApp::spawn_with(quick_retries());
    let admin = app.admin();
    let rx = Receiver::start();
    for (name, auto) in [("crew", false), ("everyone", true), ("quiet", false)] {
        let r = admin.post(
            "/access/api/v2/groups",
            &json!({"name": name, "auto_join": auto}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let r = admin.post(
        SUBS,
        &json!({"key": "members", "event_filter": {"domain": "group", "event_types": ["members_changed"]},
            "handlers": [{"handler_type": "webhook", "url": rx.url, "secret": "s3cr3t-hook"}]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "newbie", "email": "newbie@example.com", "password": "Password-123", "groups": ["crew"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(admin.delete("/access/api/v2/users/newbie").status < 300);
    let got = rx.wait_for(4, 30);
    std::thread::sleep(Duration::from_millis(300));
    let mut seen: Vec<String> = got
        .iter()
        .map(|r| {
            r.json()["data"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(rx.events().len(), 4, "{seen:?}");
    seen.sort();
    assert_eq!(seen, ["crew", "crew", "everyone", "everyone"]);
}

/// A server with subscription `later` (user created) to a port nothing listens on (yet),
/// retrying often and long.
fn subscribed_to_a_receiver_that_is_down() -> (TestApp, u16) {
    let app = TestApp::spawn_with(Config {
        webhook_max_attempts: 1000,
        ..quick_retries()
    });
    // Reserve a port, then close it: nothing listens there for a while.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    subscribe(
        &app.admin(),
        "later",
        &format!("http://127.0.0.1:{port}/hook"),
        &["created"],
        &[],
    );
    (app, port)
}

#[test]
fn deliveries_wait_for_a_receiver_that_is_down_and_keep_their_order() {
    let (app, port) = subscribed_to_a_receiver_that_is_down();
    let admin = app.admin();
    let mut positions = Vec::new();
    for i in 0..15 {
        positions.push(create_user(&admin, &format!("u{i:02}")));
    }
    std::thread::sleep(Duration::from_millis(800));
    let status = admin.get(&format!("{SUBS}/later/deliveries")).json();
    assert_eq!(status["pending_count"], 15, "{status}");
    assert!(status["last_error"].is_string(), "{status}");
    assert_eq!(status["attempts"][0]["outcome"], "retrying");
    // The receiver comes up: everything arrives, once each, in log order.
    let rx = Receiver::on(TcpListener::bind(("127.0.0.1", port)).unwrap());
    let got = rx.wait_for(15, 30);
    let seen = positions_of(&got);
    assert_eq!(seen, positions);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rx.events().len(), 15);
}

/// The outbox holds no bodies: a delivery's body is rendered from the log when it is
/// sent. So a user purged (crypto-shredded) while a delivery about them waits for its
/// receiver reaches the receiver without their personal data: it is rendered with the
/// key gone. (A body rendered and sealed at commit time would carry the e-mail still.)
#[test]
fn a_user_purged_while_the_receiver_is_down_is_delivered_without_their_personal_data() {
    let (app, port) = subscribed_to_a_receiver_that_is_down();
    let admin = app.admin();
    let first = create_user(&admin, "first");
    // The worker is retrying the first delivery (in order: the next one waits).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = admin.get(&format!("{SUBS}/later/deliveries")).json();
        if status["attempts"][0]["outcome"] == "retrying" {
            break;
        }
        assert!(Instant::now() < deadline, "{status}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let shredded = create_user(&admin, "shred-me");
    let r = admin.delete("/access/api/v2/users/shred-me?purge=true");
    assert_eq!(r.status, 204, "{}", r.text);
    let rx = Receiver::on(TcpListener::bind(("127.0.0.1", port)).unwrap());
    let got = rx.wait_for(2, 30);
    assert_eq!(positions_of(&got[..2]), vec![first, shredded]);
    assert_eq!(got[0].json()["data"]["email"], "first@example.com");
    let text = String::from_utf8_lossy(&got[1].body).to_string();
    assert!(!text.contains("shred-me@example.com"), "{text}");
    assert_eq!(got[1].json()["data"]["username"], "shred-me");
    assert_eq!(got[1].json()["data"]["email"], gatehouse::personal::ERASED);
}

/// Concurrent writers make rounds of several events, so outbox entries hold several
/// deliveries; a receiver that refuses some of them the first time makes the worker
/// stop in the middle of an entry. Everything still arrives exactly once (no crash
/// here), in log order.
#[test]
fn a_retry_in_the_middle_of_a_batch_keeps_order_and_repeats_nothing() {
    let app = TestApp::spawn_with(Config {
        webhook_max_attempts: 1000,
        ..quick_retries()
    });
    let admin = app.admin();
    let rx = Receiver::start();
    rx.flaky_every.store(7, Ordering::SeqCst);
    subscribe(&admin, "batched", &rx.url, &["created"], &[]);
    let positions = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..8)
        .map(|t| {
            let (client, positions) = (app.admin(), positions.clone());
            std::thread::spawn(move || {
                for i in 0..12 {
                    let p = create_user(&client, &format!("w{t}-{i:02}"));
                    positions.lock().unwrap().push(p);
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let mut positions = positions.lock().unwrap().clone();
    positions.sort_unstable();
    let got = rx.wait_for(positions.len(), 30);
    let seen = positions_of(&got);
    assert_eq!(seen, positions, "each once, in log order");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rx.events().len(), positions.len(), "nothing repeated");
    let status = admin.get(&format!("{SUBS}/batched/deliveries")).json();
    assert_eq!(status["pending_count"], 0, "{status}");
    let retried = status["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["outcome"] == "retrying")
        .count();
    assert!(
        retried > 0,
        "the receiver refused some first attempts: {status}"
    );
}

#[test]
fn an_outbox_that_fills_up_is_refilled_from_the_log_in_order() {
    // At most 4 deliveries wait on disk; the rest are read from the log again.
    let app = TestApp::spawn_with(Config {
        webhook_max_attempts: 1000,
        webhook_max_pending: 4,
        ..quick_retries()
    });
    let admin = app.admin();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    subscribe(
        &admin,
        "bounded",
        &format!("http://127.0.0.1:{port}/hook"),
        &["created", "deleted"],
        &[],
    );
    let mut positions = Vec::new();
    let mut most_pending = 0;
    for i in 0..40 {
        positions.push(create_user(&admin, &format!("b{i:02}")));
        let d = admin.get(&format!("{SUBS}/bounded/deliveries")).json();
        most_pending = most_pending.max(d["pending_count"].as_u64().unwrap());
    }
    // One deletion, rendered from the log as it was (the user just before it).
    let del = admin.delete("/access/api/v2/users/b03");
    positions.push(del.header("x-gatehouse-seq").unwrap().parse().unwrap());
    assert!(most_pending < 20, "the outbox stayed small: {most_pending}");
    let rx = Receiver::on(TcpListener::bind(("127.0.0.1", port)).unwrap());
    let got = rx.wait_for(41, 30);
    let seen = positions_of(&got);
    assert_eq!(seen, positions, "all of them, once, in log order");
    let last = got.last().unwrap().json();
    assert_eq!(last["event_type"], "deleted");
    assert_eq!(last["data"]["username"], "b03");
    assert_eq!(last["data"]["email"], "b03@example.com");
    // Caught up: new events go through the outbox again.
    let p = create_user(&admin, "after");
    let got = rx.wait_for(42, 20);
    assert_eq!(got[41].json()["position"], p);
}

#[test]
fn a_receiver_that_always_fails_ends_in_the_dead_letters_and_can_be_redriven() {
    let app = TestApp::spawn_with(quick_retries());
    let admin = app.admin();
    let rx = Receiver::start();
    rx.status.store(500, Ordering::SeqCst);
    subscribe(&admin, "flaky", &rx.url, &["created"], &[]);
    let p1 = create_user(&admin, "first");
    let p2 = create_user(&admin, "second");
    let deadline = Instant::now() + Duration::from_secs(20);
    let failed = loop {
        let f = admin.get(&format!("{SUBS}/flaky/failed")).json();
        if f["failed"].as_array().unwrap().len() == 2 {
            break f;
        }
        assert!(Instant::now() < deadline, "{f}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let first = &failed["failed"][0];
    assert_eq!(first["position"], p1);
    assert_eq!(first["attempts"], 3);
    assert_eq!(first["last_status"], 500);
    assert_eq!(failed["failed"][1]["position"], p2);
    let d = admin.get(&format!("{SUBS}/flaky/deliveries")).json();
    assert_eq!(d["failed_count"], 2);
    assert_eq!(d["pending_count"], 0);
    assert_eq!(d["cursor"], p2, "a dead letter does not hold up the rest");
    let outcomes: Vec<&str> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        vec!["failed", "retrying", "retrying", "failed", "retrying", "retrying"]
    );
    assert!(rx.events().is_empty());
    // The receiver is fixed; re-drive one event, then the rest.
    rx.status.store(200, Ordering::SeqCst);
    let r = admin.post_empty(&format!("{SUBS}/flaky/failed/redrive?position={p2}"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["redriven"], 1);
    let got = rx.wait_for(1, 20);
    assert_eq!(got[0].json()["position"], p2);
    let r = admin.post_empty(&format!("{SUBS}/flaky/failed/redrive"));
    assert_eq!(r.json()["redriven"], 1);
    let got = rx.wait_for(2, 20);
    assert_eq!(got[1].json()["position"], p1);
    assert_eq!(
        admin.get(&format!("{SUBS}/flaky/failed")).json()["failed"],
        json!([])
    );
    assert_eq!(
        admin
            .post_empty(&format!("{SUBS}/flaky/failed/redrive?position=x"))
            .status,
        400
    );
    assert_eq!(
        admin
            .post_empty(&format!("{SUBS}/nope/failed/redrive"))
            .status,
        404
    );
}

#[test]
fn a_hanging_receiver_holds_up_only_its_own_subscription() {
    let app = TestApp::spawn_with(Config {
        webhook_timeout_ms: 30_000,
        ..quick_retries()
    });
    let admin = app.admin();
    let stuck = Receiver::start();
    stuck.hang.store(true, Ordering::SeqCst);
    let fine = Receiver::start();
    subscribe(&admin, "stuck", &stuck.url, &["created"], &[]);
    subscribe(&admin, "fine", &fine.url, &["created"], &[]);
    let started = Instant::now();
    for i in 0..20 {
        create_user(&admin, &format!("h{i}"));
    }
    fine.wait_for(20, 20);
    // The stuck one is still on its first request; writes went on regardless.
    assert!(started.elapsed() < Duration::from_secs(25));
    let d = admin.get(&format!("{SUBS}/stuck/deliveries")).json();
    assert_eq!(d["pending_count"], 20, "{d}");
    // Stopping the server waits a moment for the hung request, not its 30 s timeout.
    let stopping = Instant::now();
    drop(app);
    assert!(stopping.elapsed() < Duration::from_secs(15));
}

#[test]
fn custom_webhooks_render_data_and_secrets_and_refuse_unknown_placeholders() {
    let app = TestApp::spawn_with(quick_retries());
    let admin = app.admin();
    let rx = Receiver::start();
    let custom = |payload: &str, header: &str| {
        json!({"key": "chat", "event_filter": {"domain": "group", "event_types": ["created", "members_changed"]},
            "handlers": [{"handler_type": "custom-webhook", "url": rx.url,
                          "payload": payload,
                          "secrets": [{"name": "token", "value": "chat-secret-789"}],
                          "http_headers": [{"name": "Authorization", "value": header}]}]})
    };
    for (payload, header, field) in [
        (
            "{\"text\": \"{{.data.nme\"}",
            "Bearer x",
            "handlers[0].payload",
        ),
        (
            "{\"text\": \"{{.user}}\"}",
            "Bearer x",
            "handlers[0].payload",
        ),
        (
            "{\"text\": \"{{.secrets.other}}\"}",
            "Bearer x",
            "handlers[0].payload",
        ),
        (
            "{\"text\": \"{{data.name}}\"}",
            "Bearer x",
            "handlers[0].payload",
        ),
        (
            "{}",
            "Bearer {{.secrets.nope}}",
            "handlers[0].http_headers[0].value",
        ),
    ] {
        let r = admin.post(SUBS, &custom(payload, header));
        assert_eq!(r.status, 400, "{payload}: {}", r.text);
        assert!(r.error_message().contains(field), "{}", r.text);
        assert!(
            r.error_message().contains("placeholder") || r.error_message().contains("not closed"),
            "{}",
            r.text
        );
    }
    let r = admin.post(
        SUBS,
        &custom(
            "{\"text\": \"{{.event_type}}: {{.data.name}} ({{.data.description}}) #{{.position}}\", \"key\": \"{{.secrets.token}}\"}",
            "Bearer {{.secrets.token}}",
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let g = admin.post(
        "/access/api/v2/groups",
        &json!({"name": "readers", "description": "They \"read\""}),
    );
    assert_eq!(g.status, 201, "{}", g.text);
    let pos = g.header("x-gatehouse-seq").unwrap().to_string();
    let got = rx.wait_for(1, 20);
    assert_eq!(
        got[0].header("authorization"),
        Some("Bearer chat-secret-789")
    );
    // Values are escaped for the JSON string they stand in: the payload stays JSON.
    assert_eq!(
        got[0].json(),
        json!({"text": format!("created: readers (They \"read\") #{pos}"), "key": "chat-secret-789"})
    );
    // The secret never reaches the disk in clear (the outbox holds bodies encrypted).
    let hits = crate::helpers::files_containing(&app.dir, b"chat-secret-789");
    assert!(hits.is_empty(), "{hits:?}");
}

#[test]
fn after_a_sigkill_every_acknowledged_event_is_delivered_at_least_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = tmp.path().join("gatehouse.toml");
    std::fs::write(
        &config,
        "webhook-retry-base-ms = 30\nwebhook-retry-max-ms = 200\nwebhook-max-attempts = 1000\n",
    )
    .unwrap();
    let rx = Receiver::start();
    let server = ServerProcess::start_with_config(&data, &config);
    subscribe(&server.admin(), "audit", &rx.url, &["created"], &[]);
    // Writers go on while the server is killed.
    let acknowledged = Arc::new(Mutex::new(Vec::<u64>::new()));
    let base = server.base.clone();
    let acks = acknowledged.clone();
    let writer = std::thread::spawn(move || {
        let admin = Client::new(
            &base,
            Some(("admin", crate::helpers::BINARY_ADMIN_PASSWORD)),
        );
        for i in 0.. {
            let r = admin.try_post(
                "/access/api/v2/users",
                &json!({"username": format!("k{i:04}"), "password": "Password-123"}),
            );
            match r {
                Some(r) if r.status == 201 => acks
                    .lock()
                    .unwrap()
                    .push(r.header("x-gatehouse-seq").unwrap().parse().unwrap()),
                _ => break,
            }
        }
    });
    // Kill it while deliveries are in flight (a delivery can arrive before its write's
    // answer does: wait for 30 answers too).
    rx.wait_for(30, 30);
    let deadline = Instant::now() + Duration::from_secs(30);
    while acknowledged.lock().unwrap().len() < 30 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill();
    writer.join().unwrap();
    let acked = acknowledged.lock().unwrap().clone();
    assert!(acked.len() >= 30, "{}", acked.len());
    let server = ServerProcess::start_with_config(&data, &config);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: std::collections::BTreeSet<u64> = positions_of(&rx.events()).into_iter().collect();
        if acked.iter().all(|p| got.contains(p)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "missing after restart: {:?}",
            acked
                .iter()
                .filter(|p| !got.contains(p))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Duplicates carry the same idempotency key and the same body.
    let mut by_key: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    let mut last = 0;
    for r in rx.events() {
        let key = r.header("x-gatehouse-idempotency-key").unwrap().to_string();
        let pos: u64 = r.json()["position"].as_u64().unwrap();
        assert_eq!(key, pos.to_string());
        if let Some(body) = by_key.get(&key) {
            assert_eq!(body, &r.body, "a duplicate is the same delivery");
        } else {
            assert!(pos > last, "first deliveries come in log order");
            last = pos;
            by_key.insert(key, r.body.clone());
        }
    }
    drop(server);
}

/// A dead letter about a user purged since is redriven without the user's e-mail: the
/// body is rendered again, with the key gone. Before, the renderer's memory of the
/// first rendering was sent, the e-mail in it.
#[test]
fn a_dead_letter_redriven_after_a_purge_carries_no_personal_data() {
    let app = TestApp::spawn_with(quick_retries());
    let admin = app.admin();
    let rx = Receiver::start();
    rx.status.store(500, Ordering::SeqCst);
    subscribe(&admin, "flap", &rx.url, &["created"], &[]);
    let p = create_user(&admin, "purgeme");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let f = admin.get(&format!("{SUBS}/flap/failed")).json();
        if f["failed"].as_array().unwrap().len() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{f}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = admin.delete("/access/api/v2/users/purgeme?purge=true");
    assert_eq!(r.status, 204, "{}", r.text);
    rx.status.store(200, Ordering::SeqCst);
    let r = admin.post_empty(&format!("{SUBS}/flap/failed/redrive"));
    assert_eq!(r.json()["redriven"], 1, "{}", r.text);
    let got = rx.wait_for(1, 20);
    assert_eq!(got[0].json()["position"], p);
    let text = String::from_utf8_lossy(&got[0].body).to_string();
    assert!(!text.contains("purgeme@example.com"), "{text}");
    assert_eq!(got[0].json()["data"]["email"], gatehouse::personal::ERASED);
}

/// A worker in the middle of a request when its subscription is deleted writes nothing
/// afterwards: its dead letter and history came back under a new subscription of the same
/// key (whose re-drive then said 1 and sent nothing).
#[test]
fn a_subscription_deleted_mid_request_leaves_nothing_to_its_successor() {
    let app = TestApp::spawn_with(Config {
        webhook_timeout_ms: 1000,
        webhook_max_attempts: 1,
        ..quick_retries()
    });
    let admin = app.admin();
    let stuck = Receiver::start();
    stuck.hang.store(true, Ordering::SeqCst);
    subscribe(&admin, "hd2", &stuck.url, &["created"], &[]);
    create_user(&admin, "hd2-1");
    // The worker is now waiting for the receiver (up to its one-second timeout).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(admin.delete(&format!("{SUBS}/hd2")).status, 204);
    // Its request times out and it would record the failure.
    std::thread::sleep(Duration::from_millis(1500));
    let fine = Receiver::start();
    subscribe(&admin, "hd2", &fine.url, &["created"], &[]);
    let failed = admin.get(&format!("{SUBS}/hd2/failed")).json();
    assert_eq!(failed["failed"], json!([]), "{failed}");
    let d = admin.get(&format!("{SUBS}/hd2/deliveries")).json();
    assert!(!d.to_string().contains(&stuck.url), "{d}");
    assert_eq!(d["failed_count"], 0, "{d}");
}

/// Finding: a request this server cannot make for an event (a header its data fills
/// with a line break) was retried through the whole backoff — minutes with the default
/// settings, the subscription held behind it — though every attempt fails the same way.
/// A dead letter at its first attempt now; the next event goes on.
#[test]
fn a_request_that_cannot_be_made_is_a_dead_letter_at_once() {
    let app = TestApp::spawn_with(Config {
        webhook_max_attempts: 10,
        webhook_retry_base_ms: 2000,
        ..quick_retries()
    });
    let admin = app.admin();
    let rx = Receiver::start();
    let r = admin.post(
        SUBS,
        &json!({"key": "desc", "event_filter": {"domain": "group", "event_types": ["created"]},
            "handlers": [{"handler_type": "custom-webhook", "url": rx.url, "payload": "{}",
                          "http_headers": [{"name": "X-Desc", "value": "{{.data.description}}"}]}]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let bad = admin.post(
        "/access/api/v2/groups",
        &json!({"name": "two-lines", "description": "line one\nline two"}),
    );
    assert_eq!(bad.status, 201, "{}", bad.text);
    let good = admin.post(
        "/access/api/v2/groups",
        &json!({"name": "one-line", "description": "fine"}),
    );
    assert_eq!(good.status, 201, "{}", good.text);
    // With ten attempts two seconds apart and more, the next event would wait minutes.
    let got = rx.wait_for(1, 10);
    assert_eq!(got.len(), 1);
    let failed = admin.get(&format!("{SUBS}/desc/failed")).json();
    assert_eq!(failed["failed"][0]["attempts"], 1, "{failed}");
    assert!(
        failed["failed"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot be sent"),
        "{failed}"
    );
}

/// A server moved by export and import (its keys copied, as README says) delivers what
/// happens after the move, not the whole history again: its new outbox started at
/// position 0 and sent every past event a subscription matched.
#[test]
fn a_moved_server_does_not_deliver_its_history_again() {
    let rx = Receiver::start();
    let app = TestApp::spawn();
    let admin = app.admin();
    subscribe(&admin, "moved", &rx.url, &["created"], &["**"]);
    for name in ["mo1", "mo2", "mo3"] {
        create_user(&admin, name);
    }
    rx.wait_for(3, 20);
    let old = app.dir.clone();
    let tmp = app.stop().expect("the temp dir");
    let export = tmp.path().join("moved.bin");
    let new = tmp.path().join("new");
    let run = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    run(&[
        "export".as_ref(),
        "--data-dir".as_ref(),
        old.as_os_str(),
        "--out".as_ref(),
        export.as_os_str(),
    ]);
    run(&[
        "import".as_ref(),
        "--data-dir".as_ref(),
        new.as_os_str(),
        "--in".as_ref(),
        export.as_os_str(),
    ]);
    let copy = std::process::Command::new("cp")
        .arg("-a")
        .arg(old.join("keys"))
        .arg(new.join("keys"))
        .status()
        .unwrap();
    assert!(copy.success());
    std::fs::copy(
        old.join("initial-admin-password"),
        new.join("initial-admin-password"),
    )
    .unwrap();
    let moved = TestApp::start(new, Config::default()).unwrap();
    create_user(&moved.admin(), "mo4");
    let seen = rx.wait_for(4, 20);
    std::thread::sleep(Duration::from_millis(500));
    let names: Vec<Value> = rx
        .events()
        .iter()
        .map(|r| r.json()["data"]["username"].clone())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert_eq!(seen[3].json()["data"]["username"], "mo4", "{names:?}");
}

//! Webhook subscriptions (issue 7, first part): CRUD with every status code, write-only
//! secrets, history through `as_of`, and the test endpoint against a real receiver.

use crate::helpers::TestApp;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

const SUBS: &str = "/event/api/v1/subscriptions";

fn definition(key: &str, url: &str) -> Value {
    json!({
        "key": key,
        "description": "Triggers an audit when a user is created",
        "enabled": true,
        "event_filter": {"domain": "user", "event_types": ["created", "deleted"],
                         "criteria": {"includePatterns": ["qa-*"], "excludePatterns": []}},
        "handlers": [{"handler_type": "webhook", "url": url, "secret": "tell-no-one-123",
                      "proxy": "mainProxy",
                      "custom_http_headers": [{"name": "X-MyCompany-Header", "value": "whatever"}]}]
    })
}

/// A loopback HTTP receiver: records each request's head and body, answers `status`.
pub(crate) struct Receiver {
    pub(crate) url: String,
    status: Arc<AtomicU16>,
    pub(crate) seen: Arc<Mutex<Vec<(String, Vec<u8>)>>>,
}

pub(crate) fn receiver() -> Receiver {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let status = Arc::new(AtomicU16::new(200));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (st, sn) = (status.clone(), seen.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream);
            let mut head = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            sn.lock().unwrap().push((head, body));
            let code = st.load(Ordering::SeqCst);
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    Receiver { url, status, seen }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn subscriptions_crud_with_write_only_secrets() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.post(SUBS, &definition("QaAudit", "https://qa.my-company.test/"));
    assert_eq!(r.status, 201, "{}", r.text);
    let created_at: u64 = r.header("x-gatehouse-seq").unwrap().parse().unwrap();
    assert!(!r.text.contains("tell-no-one-123"), "{}", r.text);
    assert_eq!(r.json()["handlers"][0]["secret_set"], true);
    assert_eq!(
        admin
            .post(SUBS, &definition("QaAudit", "https://x.test/"))
            .status,
        409
    );
    for (mutate, needle) in [
        (
            // JFrog's artifact domain is accepted (and never fires, tests/it/seeds.rs);
            // a domain nobody has is not.
            json!({"event_filter": {"domain": "artifacts", "event_types": ["deployed"]}}),
            "event_filter.domain",
        ),
        (
            json!({"event_filter": {"domain": "user", "event_types": ["exploded"]}}),
            "event_filter.event_types[0]",
        ),
        (
            json!({"event_filter": {"domain": "user", "event_types": []}}),
            "event_filter.event_types",
        ),
        (
            json!({"event_filter": {"domain": "user", "event_types": ["created"], "criteria": {"includePatterns": ["a\u{1}b"]}}}),
            "includePatterns[0]",
        ),
        (json!({"handlers": []}), "handlers"),
        (
            json!({"handlers": [{"handler_type": "webhook", "url": "ftp://x.test/"}]}),
            "handlers[0].url",
        ),
        (
            json!({"handlers": [{"handler_type": "webhook", "url": "file:///etc/passwd"}]}),
            "handlers[0].url",
        ),
        (
            json!({"handlers": [{"handler_type": "pigeon", "url": "https://x.test/"}]}),
            "handlers[0].handler_type",
        ),
        (
            json!({"handlers": [{"handler_type": "webhook", "url": "https://x.test/", "custom_http_headers": [{"name": "Bad Header", "value": "x"}]}]}),
            "custom_http_headers[0].name",
        ),
        (
            json!({"handlers": [{"handler_type": "custom-webhook", "url": "https://x.test/", "secrets": [{"name": "token"}]}]}),
            "secrets[0].value",
        ),
        // A secret named twice (the first was used, silently); placeholders in a URL
        // (sent literally); one criterion in both spellings (merged).
        (
            json!({"handlers": [{"handler_type": "custom-webhook", "url": "https://x.test/",
                   "secrets": [{"name": "t", "value": "a"}, {"name": "t", "value": "b"}]}]}),
            "secrets[1].name",
        ),
        (
            json!({"handlers": [{"handler_type": "custom-webhook", "url": "https://x.test/",
                   "secrets": [{"name": "t", "value": ""}]}]}),
            "secrets[0].value",
        ),
        (
            json!({"handlers": [{"handler_type": "custom-webhook", "url": "https://x.test/{{.secrets.t}}",
                   "secrets": [{"name": "t", "value": "a"}]}]}),
            "handlers[0].url",
        ),
        (
            json!({"event_filter": {"domain": "user", "event_types": ["created"],
                   "criteria": {"includePatterns": ["a"], "include_patterns": ["b"]}}}),
            "include_patterns",
        ),
        (json!({"key": "bad key"}), "key"),
        // An unknown field is ignored, never masks a bad one.
        (json!({"colour": "red", "key": "bad key"}), "key"),
    ] {
        let mut body = definition("Other", "https://x.test/");
        for (k, v) in mutate.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = admin.post(SUBS, &body);
        assert_eq!(r.status, 400, "{mutate}: {}", r.text);
        assert!(r.error_message().contains(needle), "{mutate}: {}", r.text);
    }
    let one = admin.get(&format!("{SUBS}/QaAudit")).json();
    assert_eq!(
        one["event_filter"]["criteria"]["includePatterns"],
        json!(["qa-*"])
    );
    assert_eq!(
        one["handlers"][0]["custom_http_headers"][0]["name"],
        "X-MyCompany-Header"
    );
    assert!(one["handlers"][0].get("secret").is_none());
    assert_eq!(admin.get(SUBS).json().as_array().unwrap().len(), 1);
    // An empty secret is none: not stored, not shown as set.
    let mut empty = definition("EmptySecret", "https://x.test/");
    empty["handlers"][0]["secret"] = json!("");
    let r = admin.post(SUBS, &empty);
    assert_eq!(r.status, 201, "{}", r.text);
    let got = admin.get(&format!("{SUBS}/EmptySecret")).json();
    assert_eq!(got["handlers"][0]["secret_set"], json!(false), "{got}");
    assert_eq!(admin.delete(&format!("{SUBS}/EmptySecret")).status, 204);
    // A replace without the secret keeps it for the same receiver (another path of the
    // same host); snake_case criteria are accepted too.
    let mut changed = definition("QaAudit", "https://qa.my-company.test/v2");
    changed["handlers"][0]
        .as_object_mut()
        .unwrap()
        .remove("secret");
    changed["event_filter"]["criteria"] = json!({"include_patterns": ["qa-*", "ops-*"]});
    let r = admin.put(&format!("{SUBS}/QaAudit"), &changed);
    assert_eq!(r.status, 204, "{}", r.text);
    let one = admin.get(&format!("{SUBS}/QaAudit")).json();
    assert_eq!(one["handlers"][0]["secret_set"], true);
    assert_eq!(one["handlers"][0]["url"], "https://qa.my-company.test/v2");
    assert_eq!(
        one["event_filter"]["criteria"]["includePatterns"],
        json!(["qa-*", "ops-*"])
    );
    // Custom webhooks show their secrets' names, never the values.
    let custom = json!({"key": "Chat", "event_filter": {"domain": "group", "event_types": ["members_changed"]},
        "handlers": [{"handler_type": "custom-webhook", "url": "https://chat.test/hook",
                      "payload": "{\"text\": \"{{.data.name}}\"}",
                      "secrets": [{"name": "token", "value": "chat-secret-456"}],
                      "http_headers": [{"name": "Authorization", "value": "Bearer {{.secrets.token}}"}]}]});
    let r = admin.post(SUBS, &custom);
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.json()["handlers"][0]["secrets"],
        json!([{"name": "token"}])
    );
    assert!(!admin.get(SUBS).text.contains("chat-secret-456"));
    assert_eq!(
        admin
            .put(
                &format!("{SUBS}/Nope"),
                &definition("Nope", "https://x.test/")
            )
            .status,
        404
    );
    assert_eq!(
        admin
            .put(
                &format!("{SUBS}/QaAudit"),
                &definition("Other", "https://x.test/")
            )
            .status,
        400
    );
    let deleted = admin.delete(&format!("{SUBS}/QaAudit"));
    assert_eq!(deleted.status, 204);
    assert_eq!(admin.delete(&format!("{SUBS}/QaAudit")).status, 404);
    assert_eq!(admin.get(&format!("{SUBS}/QaAudit")).status, 404);
    // Subscriptions are events: the past still has it.
    assert_eq!(
        admin
            .get(&format!("{SUBS}/QaAudit?as_of={created_at}"))
            .status,
        200
    );
    // Secrets are never on disk in clear.
    for secret in ["tell-no-one-123", "chat-secret-456"] {
        let hits = crate::helpers::files_containing(&app.dir, secret.as_bytes());
        assert!(hits.is_empty(), "{secret} in {hits:?}");
    }
    app.create_user("plain", "password-1");
    assert_eq!(app.as_user("plain", "password-1").get(SUBS).status, 403);
}

#[test]
fn the_test_endpoint_delivers_a_signed_sample_to_a_real_receiver() {
    use hmac::Mac;
    let app = TestApp::spawn();
    let admin = app.admin();
    let rx = receiver();
    let r = admin.post(&format!("{SUBS}/test"), &definition("QaAudit", &rx.url));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["result"], "success", "{}", r.text);
    let (head, body) = rx.seen.lock().unwrap()[0].clone();
    assert!(head.starts_with("POST /hook "), "{head}");
    assert_eq!(header(&head, "content-type"), Some("application/json"));
    assert_eq!(header(&head, "x-mycompany-header"), Some("whatever"));
    assert_eq!(header(&head, "x-jfrog-event-auth"), Some("tell-no-one-123"));
    // A test's own idempotency key, never a log position's (a receiver dropping keys it
    // saw would drop the real event at that position).
    let key = header(&head, "x-gatehouse-idempotency-key").unwrap_or_default();
    assert!(key.starts_with("test-"), "{key}");
    // The signature, checked with an independent HMAC.
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"tell-no-one-123").unwrap();
    mac.update(&body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        header(&head, "x-gatehouse-signature"),
        Some(format!("sha256={expected}").as_str())
    );
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event["domain"], "user");
    assert_eq!(event["event_type"], "created");
    assert_eq!(event["subscription_key"], "QaAudit");
    assert!(event["source"].as_str().unwrap().starts_with("jfac@"));
    // The sample has a real user event's shape: a template's `{{.data.username}}` is
    // filled in the test as it will be in deliveries (it rendered as nothing).
    assert_eq!(event["data"]["username"], "sample-user", "{event}");
    assert_eq!(event["data"]["status"], "enabled", "{event}");
    // A custom webhook: the template is filled.
    let custom = json!({"key": "Chat", "event_filter": {"domain": "group", "event_types": ["members_changed"]},
        "handlers": [{"handler_type": "custom-webhook", "url": rx.url,
                      "payload": "{\"text\": \"{{.data.name}} by {{.secrets.token}}\"}",
                      "secrets": [{"name": "token", "value": "s3"}],
                      "http_headers": [{"name": "Authorization", "value": "Bearer {{.secrets.token}}"}]}]});
    let r = admin.post(&format!("{SUBS}/test"), &custom);
    assert_eq!(r.json()["result"], "success", "{}", r.text);
    let (head, body) = rx.seen.lock().unwrap()[1].clone();
    assert_eq!(header(&head, "authorization"), Some("Bearer s3"));
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "{\"text\": \"sample-group by s3\"}"
    );
    // A secret a header cannot carry (non-ASCII letters) is refused by its field, never
    // showing the secret (ureq's message quoted the whole header; then every delivery
    // failed on it).
    let mut bad = custom.clone();
    bad["handlers"][0]["secrets"] = json!([{"name": "token", "value": "LEAKME-SECRET-ü"}]);
    let r = admin.post(&format!("{SUBS}/test"), &bad);
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("secrets[0].value"), "{}", r.text);
    assert!(!r.text.contains("LEAKME"), "{}", r.text);
    // In a header a secret is sent as it is: not escaped as inside a JSON string.
    let mut odd = custom.clone();
    odd["handlers"][0]["secrets"] = json!([{"name": "token", "value": "p\\q\"r"}]);
    let r = admin.post(&format!("{SUBS}/test"), &odd);
    assert_eq!(r.json()["result"], "success", "{}", r.text);
    let (head, _) = rx.seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(header(&head, "authorization"), Some("Bearer p\\q\"r"));
    // Failures say why.
    rx.status.store(500, Ordering::SeqCst);
    let r = admin.post(&format!("{SUBS}/test"), &definition("QaAudit", &rx.url));
    assert_eq!(r.json()["result"], "failure");
    assert!(
        r.json()["message"].as_str().unwrap().contains("500"),
        "{}",
        r.text
    );
    let r = admin.post(
        &format!("{SUBS}/test"),
        &definition("QaAudit", "http://127.0.0.1:9/nothing"),
    );
    assert_eq!(r.json()["result"], "failure", "{}", r.text);
    // Nothing was stored by testing.
    assert_eq!(admin.get(SUBS).json(), json!([]));
}

/// A subscription whose events are rare is not behind when nothing waits for it: the
/// events the dispatcher judged and found nothing in count as done. Before, its lag
/// metrics grew with every other write (an alert on `gatehouse_webhook_lag_seconds`
/// fired for a subscription with nothing to deliver).
#[test]
fn a_subscription_with_nothing_to_deliver_is_not_lagging() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let rx = receiver();
    assert_eq!(admin.post(SUBS, &definition("rare", &rx.url)).status, 201);
    // Users whose names the criteria leave out, and groups: nothing for `rare`.
    for i in 0..5 {
        app.create_group(&format!("g{i}"));
        app.create_user(&format!("other{i}"), "password-1");
    }
    let head = app.digest()["seq"].as_u64().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let d = admin.get(&format!("{SUBS}/rare/deliveries")).json();
        if d["cursor"].as_u64() == Some(head) {
            assert_eq!(d["pending_count"], json!(0), "{d}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still behind: {d}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let text = admin.get("/access/api/v1/metrics").text;
    assert!(
        text.contains(r#"gatehouse_webhook_lag_events{subscription="rare"} 0"#),
        "{text}"
    );
    assert!(rx.seen.lock().unwrap().is_empty());
    // After a restart, with no write: still not behind (the cursor went back to the last
    // delivery and the lag grew until the next write).
    let dir = app.dir.clone();
    let tmp = app.stop();
    let app = TestApp::start(dir, Default::default()).unwrap();
    let admin = app.admin();
    let d = admin.get(&format!("{SUBS}/rare/deliveries")).json();
    assert_eq!(d["cursor"].as_u64(), Some(head), "{d}");
    let text = admin.get("/access/api/v1/metrics").text;
    assert!(
        text.contains(r#"gatehouse_webhook_lag_events{subscription="rare"} 0"#),
        "{text}"
    );
    drop(app);
    drop(tmp);
}

/// From a review: URLs a delivery could not use were stored; a handler's headers could
/// set the request's framing (a `Content-Length` split one delivery into two requests at
/// the receiver) or the server's own signature; a PUT with reordered handlers sent one
/// receiver's secret to another.
#[test]
fn handler_urls_headers_and_kept_secrets_are_the_receivers_own() {
    let app = TestApp::spawn();
    let admin = app.admin();
    for url in [
        "http://host:99999/",
        "http://?x",
        "http://[::1/",
        "http://host:abc/",
        "https://.",
        "http://a%zz/",
    ] {
        let r = admin.post(SUBS, &definition("Bad", url));
        assert_eq!(r.status, 400, "{url}: {}", r.text);
        assert!(
            r.error_message().contains("handlers[0].url"),
            "{url}: {}",
            r.text
        );
    }
    for name in [
        "Content-Length",
        "transfer-encoding",
        "Host",
        "X-Gatehouse-Signature",
        "X-JFrog-Event-Auth",
    ] {
        let mut body = definition("Bad", "https://x.test/");
        body["handlers"][0]["custom_http_headers"] = json!([{"name": name, "value": "3"}]);
        let r = admin.post(SUBS, &body);
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        assert!(
            r.error_message().contains("custom_http_headers[0].name"),
            "{name}: {}",
            r.text
        );
    }
    // A fixed value HTTP cannot carry is refused when saved (it failed every delivery);
    // what a placeholder fills in is judged per delivery.
    let mut body = definition("Bad", "https://x.test/");
    body["handlers"][0]["custom_http_headers"] = json!([{"name": "X-Name", "value": "café"}]);
    let r = admin.post(SUBS, &body);
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.error_message().contains("custom_http_headers[0].value"),
        "{}",
        r.text
    );
    let mut body = definition("Fine", "https://x.test/");
    body["handlers"][0]["custom_http_headers"] =
        json!([{"name": "X-Name", "value": "by {{.data.username}} ok"}]);
    let r = admin.post(SUBS, &body);
    assert_eq!(r.status, 201, "{}", r.text);
    let two = json!({"key": "Swap", "event_filter": {"domain": "user", "event_types": ["created"]},
        "handlers": [{"handler_type": "webhook", "url": "https://trusted.test/hook", "secret": "trusted-secret"},
                     {"handler_type": "webhook", "url": "https://other.test/hook"}]});
    assert_eq!(admin.post(SUBS, &two).status, 201);
    let swapped = json!({"key": "Swap", "event_filter": {"domain": "user", "event_types": ["created"]},
        "handlers": [{"handler_type": "webhook", "url": "https://other.test/hook"},
                     {"handler_type": "webhook", "url": "https://trusted.test/hook"}]});
    let r = admin.put(&format!("{SUBS}/Swap"), &swapped);
    assert_eq!(r.status, 204, "{}", r.text);
    let one = admin.get(&format!("{SUBS}/Swap")).json();
    assert_eq!(one["handlers"][0]["url"], "https://other.test/hook");
    assert_eq!(one["handlers"][0]["secret_set"], false, "{one}");
    assert_eq!(one["handlers"][1]["secret_set"], true, "{one}");
    // Another host at the same place gets no secret it was not given.
    let moved = json!({"key": "Swap", "event_filter": {"domain": "user", "event_types": ["created"]},
        "handlers": [{"handler_type": "webhook", "url": "https://other.test/hook"},
                     {"handler_type": "webhook", "url": "https://elsewhere.test/hook"}]});
    assert_eq!(admin.put(&format!("{SUBS}/Swap"), &moved).status, 204);
    let one = admin.get(&format!("{SUBS}/Swap")).json();
    assert_eq!(one["handlers"][1]["secret_set"], false, "{one}");
}

/// Two handlers of one URL keep their own secrets across a PUT that leaves them out (the
/// first one's was given to both).
#[test]
fn handlers_of_one_url_keep_their_own_secrets() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let rx = receiver();
    let sub = |secrets: bool| {
        let handler = |s: &str| {
            let mut h = json!({"handler_type": "webhook", "url": rx.url});
            if secrets {
                h["secret"] = json!(s);
            }
            h
        };
        json!({"key": "dup", "event_filter": {"domain": "user", "event_types": ["created"]},
               "handlers": [handler("SECRET-A"), handler("SECRET-B")]})
    };
    assert_eq!(admin.post(SUBS, &sub(true)).status, 201);
    assert_eq!(admin.put(&format!("{SUBS}/dup"), &sub(false)).status, 204);
    app.create_user("dup-user", "password-1");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let secrets = loop {
        let seen = rx.seen.lock().unwrap().clone();
        if seen.len() >= 2 {
            break seen
                .iter()
                .filter_map(|(head, _)| header(head, "X-JFrog-Event-Auth").map(str::to_string))
                .collect::<std::collections::BTreeSet<_>>();
        }
        assert!(std::time::Instant::now() < deadline, "{seen:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(
        secrets,
        ["SECRET-A".to_string(), "SECRET-B".to_string()].into(),
        "each handler its own"
    );
}

/// A PUT that leaves secrets out keeps each for its own URL before any handler of the
/// same host at the same place can take it: `/c` at `/a`'s old place took `/a`'s secret
/// and `/a`, further down, took `/b`'s.
#[test]
fn a_secret_follows_its_url_before_its_place() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let rx = receiver();
    let at = |path: &str| rx.url.replace("/hook", path);
    let handler = |path: &str, secret: Option<&str>| {
        let mut h = json!({"handler_type": "webhook", "url": at(path)});
        if let Some(s) = secret {
            h["secret"] = json!(s);
        }
        h
    };
    let sub = |handlers: Vec<Value>| {
        json!({"key": "mix", "event_filter": {"domain": "user", "event_types": ["created"]},
               "handlers": handlers})
    };
    let r = admin.post(
        SUBS,
        &sub(vec![
            handler("/a", Some("secret-for-a")),
            handler("/b", Some("secret-for-b")),
        ]),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.put(
        &format!("{SUBS}/mix"),
        &sub(vec![handler("/c", None), handler("/a", None)]),
    );
    assert_eq!(r.status, 204, "{}", r.text);
    app.create_user("mix-user", "password-1");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let seen = loop {
        let seen = rx.seen.lock().unwrap().clone();
        if seen.len() >= 2 {
            break seen;
        }
        assert!(std::time::Instant::now() < deadline, "{seen:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let secret_of = |path: &str| {
        seen.iter()
            .find(|(head, _)| head.starts_with(&format!("POST {path} ")))
            .map(|(head, _)| header(head, "X-JFrog-Event-Auth").map(str::to_string))
            .unwrap_or_else(|| panic!("nothing reached {path}: {seen:?}"))
    };
    assert_eq!(secret_of("/a").as_deref(), Some("secret-for-a"));
    assert_eq!(secret_of("/c"), None);
}

/// Dead letters (and pending deliveries) name their handler by its place: a PUT that
/// moves handlers while some wait is refused (a swap sent one receiver's dead letter to
/// the other, with its secret); a handler put right in its place is taken, and so is
/// any change once nothing waits.
#[test]
fn handlers_do_not_move_under_waiting_deliveries() {
    let app = TestApp::spawn_with(gatehouse::Config {
        webhook_max_attempts: 1,
        ..gatehouse::Config::default()
    });
    let admin = app.admin();
    let (a, b) = (receiver(), receiver());
    a.status.store(500, Ordering::SeqCst);
    let handler = |url: &str| json!({"handler_type": "webhook", "url": url});
    let sub = |handlers: Vec<Value>| {
        json!({"key": "two", "event_filter": {"domain": "group", "event_types": ["created"]},
               "handlers": handlers})
    };
    let r = admin.post(SUBS, &sub(vec![handler(&a.url), handler(&b.url)]));
    assert_eq!(r.status, 201, "{}", r.text);
    app.create_group("gx1");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let d = admin.get(&format!("{SUBS}/two/deliveries")).json();
        if d["failed_count"] == 1 && d["pending_count"] == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{d}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let r = admin.put(
        &format!("{SUBS}/two"),
        &sub(vec![handler(&b.url), handler(&a.url)]),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    let r = admin.put(&format!("{SUBS}/two"), &sub(vec![handler(&b.url)]));
    assert_eq!(r.status, 409, "{}", r.text);
    // Put right in its place: taken, and its dead letter re-driven to it.
    let fixed = receiver();
    let r = admin.put(
        &format!("{SUBS}/two"),
        &sub(vec![handler(&fixed.url), handler(&b.url)]),
    );
    assert_eq!(r.status, 204, "{}", r.text);
    let r = admin.post(&format!("{SUBS}/two/failed/redrive"), &json!({}));
    assert!(r.status < 300, "{}", r.text);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while fixed.seen.lock().unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the dead letter never reached the fixed URL"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        b.seen.lock().unwrap().len(),
        1,
        "B got its own delivery once"
    );
}

/// Finding: with the `webhooks` key gone (a data directory moved without `keys/`), a
/// handler's secret could not be opened and deliveries went out without it — unsigned —
/// while the API said a secret was set. They fail now, saying why, and nothing is sent.
#[test]
fn a_secret_that_cannot_be_opened_fails_the_delivery_instead_of_dropping_it() {
    let hook = receiver();
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.post(
        SUBS,
        &json!({"key": "Signed", "event_filter": {"domain": "group", "event_types": ["created"]},
            "handlers": [{"handler_type": "webhook", "url": hook.url, "secret": "tell-no-one-123"}]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    app.create_group("before");
    crate::federation::wait_until(10, "the first delivery", || {
        !hook.seen.lock().unwrap().is_empty()
    });
    assert!(header(&hook.seen.lock().unwrap()[0].0, "X-Gatehouse-Signature").is_some());
    let dir = app.dir.clone();
    let tmp = app.stop();
    std::fs::remove_file(dir.join("keys").join("personal").join("webhooks")).unwrap();
    let app = TestApp::start(dir, Default::default()).unwrap();
    let admin = app.admin();
    app.create_group("after");
    crate::federation::wait_until(10, "a failed attempt recorded", || {
        admin
            .get(&format!("{SUBS}/Signed/deliveries"))
            .text
            .contains("cannot be decrypted")
    });
    let seen = hook.seen.lock().unwrap();
    assert!(
        seen.iter()
            .all(|(head, _)| header(head, "X-Gatehouse-Signature").is_some()),
        "an unsigned delivery went out"
    );
    drop(seen);
    drop(app);
    drop(tmp);
}

/// From a review: an upper-case scheme let `user:password@` through (stored and shown in
/// clear, sent as Basic credentials); a subscription keyed `test` could never be read,
/// changed or deleted; a secret or a plain webhook's header HTTP cannot carry was
/// stored, and every delivery went to the dead letters; a description with a tab was
/// refused as too long.
#[test]
fn subscriptions_refuse_what_could_never_be_delivered() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let url = "http://127.0.0.1:9/hook";
    let cases: Vec<(Value, &str)> = vec![
        (
            {
                let mut d = definition("creds", "HTTP://hookuser:HookPassw0rd@127.0.0.1:9/x");
                d["handlers"][0]["custom_http_headers"] = json!([]);
                d
            },
            "handlers[0].url",
        ),
        (definition("test", url), "`key`"),
        (
            {
                let mut d = definition("accent", url);
                d["handlers"][0]["secret"] = json!("p\u{e4}ssw\u{f6}rd");
                d
            },
            "handlers[0].secret",
        ),
        (
            {
                let mut d = definition("line", url);
                d["handlers"][0]["secret"] = json!("two\nlines");
                d
            },
            "handlers[0].secret",
        ),
        (
            {
                let mut d = definition("braces", url);
                d["handlers"][0]["custom_http_headers"] =
                    json!([{"name": "X-A", "value": "{{caf\u{e9}}}"}]);
                d
            },
            "handlers[0].custom_http_headers[0].value",
        ),
        (
            {
                let mut d = definition("tab", url);
                d["description"] = json!("tab\there");
                d
            },
            "control characters",
        ),
    ];
    for (body, names) in cases {
        let r = admin.post(SUBS, &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.text.contains(names), "{body}: {}", r.text);
        assert!(!r.text.contains("HookPassw0rd"), "{}", r.text);
    }
    // The test delivery still works without a key (it is called `test` there).
    let rx = receiver();
    let mut d = definition("any", &rx.url);
    d.as_object_mut().unwrap().remove("key");
    let r = admin.post(&format!("{SUBS}/test"), &d);
    assert_eq!(r.json()["result"], "success", "{}", r.text);
}

/// From a review: a handler's `content-type` (lower case) went out beside the server's
/// `Content-Type`; a new subscription whose receiver is down said it lagged by the
/// whole log, and by the age of the server's first event.
#[test]
fn a_handlers_content_type_replaces_the_servers_and_a_new_subscription_lags_from_its_creation() {
    let app = TestApp::spawn();
    let admin = app.admin();
    for i in 0..20 {
        app.create_group(&format!("before{i}"));
    }
    let rx = receiver();
    let def = json!({"key": "ct", "event_filter": {"domain": "group", "event_types": ["created"]},
        "handlers": [{"handler_type": "custom-webhook", "url": rx.url, "payload": "x",
                      "http_headers": [{"name": "content-type", "value": "text/plain"}]}]});
    let r = admin.post(&format!("{SUBS}/test"), &def);
    assert_eq!(r.json()["result"], "success", "{}", r.text);
    let (head, _) = rx.seen.lock().unwrap()[0].clone();
    let types: Vec<&str> = head
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("content-type:"))
        .collect();
    assert_eq!(types, vec!["content-type: text/plain"], "{head}");
    // A receiver that refuses everything: one event owed, not the whole log.
    let down = receiver();
    down.status.store(503, Ordering::SeqCst);
    let mut d = definition("late", &down.url);
    d["event_filter"] = json!({"domain": "group", "event_types": ["created"]});
    assert_eq!(admin.post(SUBS, &d).status, 201);
    app.create_group("after");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while down.seen.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no attempt");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let text = admin.get("/access/api/v1/metrics").text;
    let lag = text
        .lines()
        .find(|l| l.starts_with(r#"gatehouse_webhook_lag_events{subscription="late"}"#))
        .unwrap_or_default()
        .to_string();
    assert!(
        lag.ends_with(" 1") || lag.ends_with(" 2"),
        "lag counted from the subscription's creation: {lag}"
    );
    let d = admin.get(&format!("{SUBS}/late/deliveries")).json();
    assert!(d["cursor"].as_u64().unwrap() >= 21, "{d}");
}

/// From a review: a custom webhook's secret put into a header was not held to what HTTP
/// carries (a plain webhook's `secret` was): every delivery went into the dead letters.
#[test]
fn a_custom_webhooks_secret_in_a_header_is_one_http_carries() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let def = |value: &str, header: &str| {
        json!({"key": "cw1", "event_filter": {"domain": "user", "event_types": ["created"]},
            "handlers": [{"handler_type": "custom-webhook", "url": "http://127.0.0.1:9/cw", "payload": "{\"s\": \"{{.secrets.tok}}\"}",
                          "http_headers": [{"name": "Authorization", "value": header}],
                          "secrets": [{"name": "tok", "value": value}]}]})
    };
    let r = admin.post(
        SUBS,
        &def("p\u{e4}ssw\u{f6}rd", "Bearer {{ .secrets.tok }}"),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.text.contains("handlers[0].secrets[0].value"),
        "{}",
        r.text
    );
    // In the payload only, any text is fine.
    let r = admin.post(SUBS, &def("p\u{e4}ssw\u{f6}rd", "Bearer fixed"));
    assert_eq!(r.status, 201, "{}", r.text);
}

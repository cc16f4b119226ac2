//! Access Federation at scale (used by `scripts/bench`).
//!
//! `federationbench prepare DIR` writes a data directory with 100,000 users in 10,000
//! groups (two memberships each) and `admin` / `bench-admin-pw`, for a source server.
//!
//! `federationbench stream A B PASSWORD [SECONDS] [RATE]` creates users at A at RATE
//! writes/s (default 1,000) for SECONDS (default 10) while A streams to B, then reads
//! both audit trails and prints the propagation latency from A's commit to B's commit
//! (p50 / p99; both event times come from the same clock on this machine).

use gatehouse::log::EventLog;
use gatehouse_schemas::{Envelope, Event, GroupCreated, UserCreated, UserStatus};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USERS: usize = 100_000;
const GROUPS: usize = 10_000;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn prepare(dir: &std::path::Path) {
    let service_id = "jfac@01benchfederationsourceaa".to_string();
    let mut events = vec![
        Event::ServiceCreated {
            service_id: service_id.clone(),
        },
        Event::UserCreated(UserCreated {
            username: "admin".into(),
            email: None,
            password_hash: Some(gatehouse::auth::password::hash("bench-admin-pw")),
            admin: true,
            profile_updatable: true,
            internal_password_disabled: false,
            disable_ui_access: false,
            realm: "internal".into(),
            status: UserStatus::Enabled,
            groups: vec![],
            scim: None,
        }),
    ];
    for g in 0..GROUPS {
        events.push(Event::GroupCreated(GroupCreated {
            name: format!("group-{g}"),
            description: Some(format!("bench group {g}")),
            auto_join: false,
            admin_privileges: false,
            realm: "internal".into(),
            realm_attributes: None,
            external_id: None,
            members: vec![],
        }));
    }
    for u in 0..USERS {
        events.push(Event::UserCreated(UserCreated {
            username: format!("user-{u}"),
            email: None,
            password_hash: None,
            admin: false,
            profile_updatable: true,
            internal_password_disabled: true,
            disable_ui_access: false,
            realm: "internal".into(),
            status: UserStatus::Enabled,
            groups: vec![
                format!("group-{}", u % GROUPS),
                format!("group-{}", (u * 7 + 3) % GROUPS),
            ],
            scim: None,
        }));
    }
    let time = now_ms();
    let envelopes: Vec<Envelope> = events
        .into_iter()
        .enumerate()
        .map(|(i, event)| Envelope {
            seq: i as u64 + 1,
            time_ms: time,
            actor: "bench".into(),
            origin: service_id.clone(),
            request_id: "bench".into(),
            event,
        })
        .collect();
    let mut log = EventLog::open(dir).expect("open");
    let mut state = gatehouse_projections::State::default();
    for chunk in envelopes.chunks(1000) {
        for env in chunk {
            state.apply(env);
        }
        log.append(chunk).expect("append");
    }
    log.write_snapshot(&state).expect("snapshot");
    println!("events={}", envelopes.len());
}

fn get(agent: &ureq::Agent, url: &str, auth: &str) -> Value {
    agent
        .get(url)
        .set("Authorization", auth)
        .call()
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .into_json()
        .unwrap()
}

/// username -> commit time (ms) of the events of `kind` in a server's audit trail.
fn commit_times(
    agent: &ureq::Agent,
    base: &str,
    auth: &str,
    kind: &str,
    from: u64,
) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    let mut next = from;
    loop {
        let page = get(
            agent,
            &format!("{base}/access/api/v1/audit/events?type={kind}&from={next}&limit=10000"),
            auth,
        );
        for e in page["events"].as_array().unwrap() {
            let body = &e["body"];
            let name = body["username"]
                .as_str()
                .or_else(|| body["user"]["username"].as_str())
                .unwrap_or_default()
                .to_string();
            let t = e["time_ms"].as_u64().unwrap();
            out.insert(name, t);
        }
        match page["next"].as_u64() {
            Some(n) => next = n,
            None => return out,
        }
    }
}

fn stream(a: &str, b: &str, password: &str, secs: f64, rate: f64) {
    use base64::Engine;
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{password}"))
    );
    let agent = ureq::AgentBuilder::new()
        .max_idle_connections_per_host(64)
        .build();
    let a_from = get(
        &agent,
        &format!("{a}/access/api/v1/system/state/digest"),
        &auth,
    )["seq"]
        .as_u64()
        .unwrap();
    let b_from = get(
        &agent,
        &format!("{b}/access/api/v1/system/state/digest"),
        &auth,
    )["seq"]
        .as_u64()
        .unwrap();
    let threads = 16;
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (agent, done, count, a, auth) = (
                agent.clone(),
                done.clone(),
                count.clone(),
                a.to_string(),
                auth.clone(),
            );
            std::thread::spawn(move || {
                let interval = Duration::from_secs_f64(threads as f64 / rate);
                let mut next = Instant::now() + interval.mul_f64(t as f64 / threads as f64);
                let mut i = 0;
                while !done.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    }
                    next += interval;
                    let r = agent
                        .post(&format!("{a}/access/api/v2/users"))
                        .set("Authorization", &auth)
                        .send_json(json!({"username": format!("live-{t}-{i}"), "internal_password_disabled": true}));
                    assert!(r.is_ok(), "{r:?}");
                    count.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    done.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    let writes = count.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    // Wait for B to have them all.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (at_a, at_b) = loop {
        let at_a = commit_times(&agent, a, &auth, "UserCreated", a_from + 1);
        let at_b = commit_times(&agent, b, &auth, "UserReplicated", b_from + 1);
        if at_a.keys().all(|k| at_b.contains_key(k)) || Instant::now() > deadline {
            break (at_a, at_b);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut lat: Vec<u64> = at_a
        .iter()
        .filter_map(|(k, t)| at_b.get(k).map(|tb| tb.saturating_sub(*t)))
        .collect();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!("stream_writes_per_sec={:.0}", writes as f64 / elapsed);
    println!("stream_events_at_a={}", at_a.len());
    println!("stream_events_at_b={}", lat.len());
    println!("stream_latency_p50_ms={}", pct(0.50));
    println!("stream_latency_p99_ms={}", pct(0.99));
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("prepare") => prepare(std::path::Path::new(&args[2])),
        Some("stream") => stream(
            &args[2],
            &args[3],
            &args[4],
            args.get(5).and_then(|s| s.parse().ok()).unwrap_or(10.0),
            args.get(6).and_then(|s| s.parse().ok()).unwrap_or(1000.0),
        ),
        _ => {
            eprintln!("usage: federationbench prepare DIR | stream A B PASSWORD [SECONDS] [RATE]");
            std::process::exit(2);
        }
    }
}

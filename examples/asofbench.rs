//! Point-in-time reads and the audit export on a large log (used by `scripts/bench`).
//!
//! `asofbench DIR` takes DIR as `logbench` left it (1,000,000 events), writes a snapshot
//! every SPACING events (default 50,000) by replaying it once, then times rebuilding the
//! state at 30 random positions (what every `as_of` read does: nearest snapshot plus the
//! events after it), and renders the whole log the way the NDJSON audit export does.
//! Prints `key=value` lines.

use gatehouse::log::{EventLog, GENESIS_HASH};
use gatehouse_projections::State;
use std::io::Write;
use std::time::Instant;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: asofbench DIR"));
    let spacing: u64 = std::env::var("SPACING")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let mut log = EventLog::open(&dir).expect("open");
    log.set_snapshot_keep(0);
    let head = log.head_seq();
    // Snapshots every `spacing` events, as a server with `snapshot-every = spacing` and
    // `snapshot-keep = 0` would have written them.
    let mut state = State::default();
    let mut pending = Vec::new();
    log.walk(1, GENESIS_HASH, |env| {
        state.apply(&env);
        if state.seq % spacing == 0 {
            pending.push(state.clone());
        }
    })
    .expect("replay");
    let store = log.snapshot_store();
    for s in &pending {
        let hash = log.hash_at(s.seq).expect("hash").expect("exists");
        store.write(s, hash).expect("snapshot");
    }
    drop(pending);
    let (bytes, count) = log.snapshot_disk().expect("disk");
    println!("snapshots={count}");
    println!("snapshot_disk_mib={:.0}", bytes as f64 / (1024.0 * 1024.0));

    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut times = Vec::new();
    for _ in 0..30 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let position = 1 + x % head;
        let t = Instant::now();
        let s = log.state_at(position).expect("state_at");
        // One user's answer, as `GET /access/api/v2/users/{name}?as_of=` renders it.
        let user = s
            .directory
            .users
            .values()
            .next()
            .map(|u| u.username.clone());
        std::hint::black_box(user);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.partial_cmp(b).expect("numbers"));
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    println!("as_of_p50_ms={:.0}", pct(0.5));
    println!("as_of_p99_ms={:.0}", pct(0.99));

    // One user as of a random position, from its own timeline (what
    // `GET /access/api/v2/users/{name}?as_of=` does); the index is built once first.
    let users: Vec<String> = log
        .state_at(head)
        .expect("state")
        .directory
        .users
        .keys()
        .cloned()
        .collect();
    let mut timeline = gatehouse::timeline::Timeline::default();
    let t = Instant::now();
    timeline.extend(&log, head).expect("index");
    println!(
        "timeline_index_ms={:.0}",
        t.elapsed().as_secs_f64() * 1000.0
    );
    let mut one = Vec::new();
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let position = 1 + x % head;
        let name = &users[(x >> 20) as usize % users.len()];
        let t = Instant::now();
        let u = timeline.user_at(&log, name, position).expect("user_at");
        std::hint::black_box(u);
        one.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    // The fast path must agree with the whole-state rebuild.
    let mut found = 0;
    for _ in 0..10 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let position = 1 + x % head;
        let whole = log.state_at(position).expect("state");
        for name in users
            .iter()
            .skip((x >> 24) as usize % 1000)
            .step_by(997)
            .take(20)
        {
            let fast = timeline.user_at(&log, name, position).expect("user_at");
            let slow = whole.directory.users.get(name);
            let same = match (&fast, slow) {
                (Some(a), Some(b)) => {
                    a.username == b.username
                        && a.groups == b.groups
                        && a.status == b.status
                        && a.email == b.email
                }
                (None, None) => true,
                _ => false,
            };
            assert!(same, "{name} at {position}: {fast:?} vs {slow:?}");
            found += fast.is_some() as usize;
        }
    }
    println!("one_user_checked_against_full_rebuild={found}");
    one.sort_by(|a, b| a.partial_cmp(b).expect("numbers"));
    let pct1 = |p: f64| one[((one.len() as f64 * p) as usize).min(one.len() - 1)];
    println!("one_user_p50_ms={:.2}", pct1(0.5));
    println!("one_user_p99_ms={:.2}", pct1(0.99));

    // The NDJSON audit export: decode, render (with redaction), serialise every event.
    let t = Instant::now();
    let mut sink = std::io::sink();
    let mut n = 0u64;
    log.for_each_event(1, None, |_, hash, env| {
        let v = gatehouse::http::audit::render_event(&env, hash);
        serde_json::to_writer(&mut sink, &v).expect("write");
        sink.write_all(b"\n").expect("write");
        n += 1;
        true
    })
    .expect("export");
    println!(
        "ndjson_events_per_sec={:.0}",
        n as f64 / t.elapsed().as_secs_f64()
    );
}

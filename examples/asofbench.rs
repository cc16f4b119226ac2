//! Point-in-time reads and the audit export on a large log (used by `scripts/bench`).
//!
//! `asofbench DIR` takes DIR as `logbench` left it (1,000,000 events), keeps the
//! snapshots a server with the default settings would have on disk (one every
//! `snapshot-every` events, the newest `snapshot-keep`), builds the in-memory checkpoints
//! of the past (`gatehouse::history`, one every `as-of-every` events) as a server does on
//! its first `as_of` read, then times rebuilding the whole state at 200 random positions
//! (what every `as_of` read does), and renders the whole log the way the NDJSON audit
//! export does. Prints `key=value` lines.

use gatehouse::config::Config;
use gatehouse::history::History;
use gatehouse::log::{EventLog, GENESIS_HASH};
use gatehouse_projections::State;
use std::io::Write;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

/// mimalloc, counting the bytes in use, to tell what the checkpoints hold.
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { mimalloc::MiMalloc.realloc(p, l, n) }
    }
}
#[global_allocator]
static ALLOC: Counting = Counting;

fn mib(bytes: isize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: asofbench DIR"));
    let defaults = Config::default();
    let mut log = EventLog::open(&dir).expect("open");
    log.set_snapshot_keep(defaults.snapshot_keep);
    let head = log.head_seq();
    // The snapshots a server would have written with the defaults (`logbench` left one
    // near the head; the server keeps the newest `snapshot-keep`).
    {
        let mut state = State::default();
        let mut pending = Vec::new();
        log.walk(1, GENESIS_HASH, |env| {
            state.apply(env);
            if state.seq % defaults.snapshot_every == 0 {
                pending.push(state.clone());
            }
        })
        .expect("replay");
        let store = log.snapshot_store();
        for s in &pending {
            let hash = log.hash_at(s.seq).expect("hash").expect("exists");
            store.write(s, hash).expect("snapshot");
        }
    }
    let (bytes, count) = log.snapshot_disk().expect("disk");
    println!("snapshots={count}");
    println!("snapshot_disk_mib={:.0}", bytes as f64 / (1024.0 * 1024.0));

    // The checkpoints, as the server's history thread builds them; what they hold
    // besides the newest state (which a server shares with its live read models).
    let history = History::new(defaults.as_of_every, defaults.as_of_checkpoints);
    let before = LIVE.load(Ordering::Relaxed);
    let t = Instant::now();
    history.fill(&log, head).expect("history");
    println!("history_build_ms={:.0}", t.elapsed().as_secs_f64() * 1000.0);
    let with = LIVE.load(Ordering::Relaxed);
    let newest_alone = {
        let s = history
            .state_at(&log, history.newest())
            .expect("newest")
            .expect("kept");
        let a = LIVE.load(Ordering::Relaxed);
        let copy = State::decode(&s.encode()).expect("decode");
        let b = LIVE.load(Ordering::Relaxed);
        drop(copy);
        b - a
    };
    println!("checkpoints={} every={}", history.len(), history.every());
    println!("history_heap_mib={:.0}", mib(with - before));
    println!(
        "history_beyond_newest_mib={:.0}",
        mib(with - before - newest_alone)
    );

    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut times = Vec::new();
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let position = 1 + x % head;
        let t = Instant::now();
        let s = match history.state_at(&log, position).expect("state_at") {
            Some(s) => s,
            None => log.state_at(position).expect("state_at"),
        };
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
    let users: Vec<String> = history
        .state_at(&log, head)
        .expect("state")
        .expect("kept")
        .directory
        .users
        .keys()
        .map(|k| k.to_string())
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
        let whole = history
            .state_at(&log, position)
            .expect("state")
            .expect("kept");
        for name in users
            .iter()
            .skip((x >> 24) as usize % 1000)
            .step_by(997)
            .take(20)
        {
            let fast = timeline.user_at(&log, name, position).expect("user_at");
            let slow = whole.directory.users.get(name.as_str());
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

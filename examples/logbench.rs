//! In-process benchmark of the event log alone (used by `scripts/bench`).
//!
//! `cargo run --release --example logbench -- DIR [EVENTS]` appends EVENTS (default
//! 1,000,000) realistic events in group-commit batches of 1,000 (one flush each), then
//! replays the whole log with chain verification, and leaves DIR as a data directory a
//! server can start from (a snapshot 5,000 events before the head, as if the server
//! has just written one). Prints `key=value` lines for the script to tabulate.

use gatehouse::log::{EventLog, GENESIS_HASH};
use gatehouse_projections::State;
use gatehouse_schemas::{Envelope, Event, GroupCreated, UserCreated, UserStatus};
use std::time::Instant;

fn batch() -> u64 {
    std::env::var("BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

fn event(seq: u64) -> Event {
    if seq == 1 {
        return Event::ServiceCreated {
            service_id: "jfac@01benchbenchbenchbenchbenc".into(),
        };
    }
    // Per 10 events: 2 users, 1 group, 7 membership changes.
    let n = seq / 10;
    match seq % 10 {
        0 | 5 => Event::UserCreated(UserCreated {
            username: format!("user-{seq}@example.com"),
            email: Some(format!("user-{seq}@example.com")),
            password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$YmVuY2hzYWx0YmVuY2g$Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmE".into()),
            admin: false,
            profile_updatable: true,
            internal_password_disabled: false,
            disable_ui_access: false,
            realm: "internal".into(),
            status: UserStatus::Enabled,
            groups: vec![],
            scim: None,
        }),
        1 => Event::GroupCreated(GroupCreated {
            name: format!("group-{n}"),
            description: Some("a benchmark group".into()),
            auto_join: false,
            admin_privileges: false,
            realm: "internal".into(),
            realm_attributes: None,
            external_id: None,
            members: vec![],
        }),
        k => Event::GroupMembersChanged {
            group: format!("group-{}", n.saturating_sub(k % 3)),
            added: vec![format!("user-{}@example.com", (n.saturating_sub(k)) * 10)],
            removed: vec![],
        },
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("usage: logbench DIR [EVENTS]"));
    let total: u64 = args
        .next()
        .map(|s| s.parse().expect("EVENTS is a number"))
        .unwrap_or(1_000_000);
    let snapshot_at = total.saturating_sub(5_000);

    let mut log = EventLog::open(&dir).expect("open");
    assert_eq!(log.head_seq(), 0, "DIR must be empty");
    let mut state = State::default();
    let start = Instant::now();
    let mut append_time = 0f64;
    let mut seq = 1;
    while seq <= total {
        let end = (seq + batch() - 1).min(total);
        let envs: Vec<Envelope> = (seq..=end)
            .map(|s| Envelope {
                seq: s,
                time_ms: 1_763_000_000_000 + s,
                actor: "admin".into(),
                origin: "jfac@01benchbenchbenchbenchbenc".into(),
                request_id: format!("{s:016x}"),
                event: event(s),
            })
            .collect();
        let t = Instant::now();
        log.append(&envs).expect("append");
        append_time += t.elapsed().as_secs_f64();
        for e in &envs {
            state.apply(e);
        }
        if end == snapshot_at {
            log.write_snapshot(&state).expect("snapshot");
        }
        seq = end + 1;
    }
    println!("events={total}");
    // Encoding + hashing alone (the part of append that is not sled).
    let t = Instant::now();
    let mut prev = GENESIS_HASH;
    for s in 1..=total.min(200_000) {
        let env = Envelope {
            seq: s,
            time_ms: s,
            actor: "admin".into(),
            origin: "jfac@01benchbenchbenchbenchbenc".into(),
            request_id: format!("{s:016x}"),
            event: event(s),
        };
        let bytes = gatehouse_schemas::encode(&env);
        prev = gatehouse::log::chain_hash(&prev, &bytes);
    }
    std::hint::black_box(prev);
    println!(
        "stage_build_encode_hash_per_sec={:.0}",
        total.min(200_000) as f64 / t.elapsed().as_secs_f64()
    );
    println!("append_events_per_sec={:.0}", total as f64 / append_time);
    println!("build_secs={:.2}", start.elapsed().as_secs_f64());
    println!("flushes={}", total.div_ceil(batch()));

    // Replay from position 1: hash chain + decode + apply, as `gatehouse verify` does.
    let t = Instant::now();
    let mut replayed = State::default();
    let report = log
        .walk(1, GENESIS_HASH, |e| replayed.apply(e))
        .expect("chain verifies");
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(report.events, total);
    assert_eq!(
        replayed.digest(),
        state.digest(),
        "replay equals the state built while appending"
    );
    println!("replay_events_per_sec={:.0}", total as f64 / secs);
    // Where replay time goes: read, +hash, +decode (apply is the rest).
    let t = Instant::now();
    let n = log.raw_from(1).unwrap().len();
    println!(
        "stage_read_per_sec={:.0}",
        n as f64 / t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let mut prev = GENESIS_HASH;
    for r in log.raw_from(1).unwrap() {
        prev = gatehouse::log::chain_hash(&prev, &r.bytes);
    }
    println!(
        "stage_read_hash_per_sec={:.0}",
        total as f64 / t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    for r in log.raw_from(1).unwrap() {
        std::hint::black_box(gatehouse_schemas::decode(&r.bytes).unwrap());
    }
    println!(
        "stage_read_decode_per_sec={:.0}",
        total as f64 / t.elapsed().as_secs_f64()
    );
    println!(
        "users={} groups={}",
        state.directory.users.len(),
        state.directory.groups.len()
    );
}

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

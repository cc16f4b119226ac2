//! What a batch costs the writer thread besides its flush, in-process, on the read models
//! of a data directory (`authzbench DIR` leaves one): `publishbench DIR [BATCH] [BATCHES]`.
//!
//! Each batch is BATCH events, cycling through the writes the benchmarks make (a group
//! created, a token issued) and one that touches existing records (a user joins a
//! group). Two ways of making a batch visible to readers are timed on the same events:
//! `twice` — the events are applied to the writer's state and again to the read models
//! (two full copies); `clone` — applied once, then the read models are replaced by a
//! clone of the writer's state (what `Writer::publish` does), the previous version
//! dropped. Prints p50/p99 µs per batch of each.

use gatehouse::log::{EventLog, StartupVerify};
use gatehouse_projections::State;
use gatehouse_schemas::{Envelope, Event, GroupCreated, TokenIssued};
use std::time::Instant;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn events(state: &State, from: u64, n: usize, salt: &str) -> Vec<Envelope> {
    let users: Vec<&std::sync::Arc<str>> = state.directory.users.keys().take(1000).collect();
    let groups: Vec<&std::sync::Arc<str>> = state.directory.groups.keys().take(1000).collect();
    (0..n)
        .map(|i| {
            let seq = from + i as u64 + 1;
            let event = match seq % 3 {
                0 => Event::GroupCreated(GroupCreated {
                    name: format!("pb-{salt}-{seq}"),
                    description: None,
                    auto_join: false,
                    admin_privileges: false,
                    realm: "internal".into(),
                    realm_attributes: None,
                    external_id: None,
                    members: vec![],
                }),
                1 => Event::TokenIssued(std::sync::Arc::new(TokenIssued {
                    token_id: format!("pb-{salt}-{seq}"),
                    subject: users[seq as usize % users.len()].to_string(),
                    transient: false,
                    scope: "applied-permissions/user".into(),
                    audience: "*@*".into(),
                    issued_at: 1,
                    expires_at: Some(86_400),
                    refreshable: false,
                    revocable: true,
                    description: Some("bench".into()),
                    kid: "k".into(),
                    access_hash: format!("{:064x}", seq),
                    refresh_hash: None,
                    reference_hash: None,
                    self_issued: false,
                    force_revocable: false,
                })),
                _ => Event::UserGroupsChanged {
                    username: users[(seq as usize * 7) % users.len()].to_string(),
                    added: vec![groups[(seq as usize * 13) % groups.len()].to_string()],
                    removed: vec![],
                },
            };
            Envelope {
                seq,
                time_ms: seq,
                actor: "bench".into(),
                origin: "bench".into(),
                request_id: "bench".into(),
                event,
            }
        })
        .collect()
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("publishbench DIR [BATCH] [BATCHES]"));
    let batch: usize = args.next().map(|s| s.parse().unwrap()).unwrap_or(16);
    let batches: usize = args.next().map(|s| s.parse().unwrap()).unwrap_or(2000);
    let log = EventLog::open(&dir).expect("open");
    let (loaded, _) = log.load(StartupVerify::Tail).expect("load");
    drop(log);
    println!(
        "users={} groups={} batch={batch} batches={batches}",
        loaded.directory.users.len(),
        loaded.directory.groups.len()
    );
    for round in 0..2 {
        // twice: the writer's copy and the read models, each folding every event.
        let mut writer = loaded.clone();
        let mut shared = loaded.clone();
        let mut times = Vec::with_capacity(batches);
        for b in 0..batches {
            let envs = events(&writer, writer.seq, batch, &format!("t{round}-{b}"));
            let t = Instant::now();
            for e in &envs {
                writer.apply(e);
            }
            for e in &envs {
                shared.apply(e);
            }
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
        drop((writer, shared));
        println!(
            "twice_p50_us={:.1} twice_p99_us={:.1}",
            percentile(&mut times, 0.5),
            percentile(&mut times, 0.99)
        );
        // A deep clone per batch where the maps are not persistent (the code before them).
        if std::env::var_os("PUBLISHBENCH_TWICE_ONLY").is_some() {
            continue;
        }
        // clone: fold once, then the read models become a clone of the writer's state.
        let mut writer = loaded.clone();
        let mut shared = writer.clone();
        let mut times = Vec::with_capacity(batches);
        for b in 0..batches {
            let envs = events(&writer, writer.seq, batch, &format!("c{round}-{b}"));
            let t = Instant::now();
            for e in &envs {
                writer.apply(e);
            }
            let old = std::mem::replace(&mut shared, writer.clone());
            drop(old);
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
        assert_eq!(shared.seq, writer.seq);
        println!(
            "clone_p50_us={:.1} clone_p99_us={:.1}",
            percentile(&mut times, 0.5),
            percentile(&mut times, 0.99)
        );
    }
}

//! Memory probe for the event log (issue 16): append many small batches, shaped like the
//! server's (a few events each, one flush each), and print resident memory as it goes.
//!
//! `cargo run --release --example logprobe -- DIR [EVENTS] [BATCH] [file]`
//! With `file` as the fourth argument the same records go to a plain file instead (the
//! baseline: what the bytes themselves cost in memory, which is nothing).

use gatehouse::log::{chain_hash, EventLog, GENESIS_HASH};
use gatehouse_schemas::{encode, Envelope, Event};
use std::io::Write;

fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: f64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096.0 / 1048576.0
}

fn env(seq: u64) -> Envelope {
    Envelope {
        seq,
        time_ms: 1_763_000_000_000 + seq,
        actor: "admin".into(),
        origin: "jfac@01probeprobeprobeprobepro".into(),
        request_id: format!("{seq:016x}"),
        // About the size of a token-issued event.
        event: Event::GroupDeleted {
            name: format!("group-{seq}-{}", "x".repeat(200)),
        },
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(
        args.next()
            .expect("usage: logprobe DIR [EVENTS] [BATCH] [file]"),
    );
    let total: u64 = args.next().map(|s| s.parse().unwrap()).unwrap_or(60_000);
    let batch: u64 = args.next().map(|s| s.parse().unwrap()).unwrap_or(3);
    let mode = args.next().unwrap_or_default();
    let to_file = mode == "file";
    if mode == "state" {
        return state_probe(total);
    }
    std::fs::create_dir_all(&dir).unwrap();
    let cache_mib: u64 = std::env::var("CACHE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let mut log = if to_file {
        None
    } else {
        Some(EventLog::open_with_cache(&dir, cache_mib << 20).unwrap())
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("plain"))
        .unwrap();
    let start = log.as_ref().map(|l| l.head_seq()).unwrap_or(0);
    let mut prev = GENESIS_HASH;
    let mut bytes_written = 0u64;
    println!("events=0 rss_mib={:.1}", rss_mib());
    let mut seq = start + 1;
    while seq <= start + total {
        let envs: Vec<Envelope> = (seq..seq + batch).map(env).collect();
        match &mut log {
            Some(log) => log.append(&envs).unwrap(),
            None => {
                let mut buf = Vec::new();
                for e in &envs {
                    let b = encode(e);
                    prev = chain_hash(&prev, &b);
                    buf.extend_from_slice(&(b.len() as u32).to_le_bytes());
                    buf.extend_from_slice(&prev);
                    buf.extend_from_slice(&b);
                }
                bytes_written += buf.len() as u64;
                file.write_all(&buf).unwrap();
                file.sync_data().unwrap();
            }
        }
        seq += batch;
        let done = seq - start - 1;
        if done % 10_000 < batch {
            println!(
                "events={done} rss_mib={:.1} file_bytes={bytes_written}",
                rss_mib()
            );
        }
    }
}

/// Token issue + revoke pairs applied to the read models alone: what the state keeps.
fn state_probe(rounds: u64) {
    use gatehouse_schemas::TokenIssued;
    let mut state = gatehouse_projections::State::default();
    let mut seq = 0;
    let mut next = |event: Event| {
        seq += 1;
        Envelope {
            seq,
            time_ms: 1_763_000_000_000 + seq,
            actor: "u1".into(),
            origin: "jfac@01probeprobeprobeprobepro".into(),
            request_id: format!("{seq:016x}"),
            event,
        }
    };
    println!("rounds=0 rss_mib={:.1}", rss_mib());
    for i in 1..=rounds {
        let id = format!("{:026x}", i * 7919);
        let issued = next(Event::TokenIssued(std::sync::Arc::new(TokenIssued {
            token_id: id.clone(),
            subject: "u1".into(),
            transient: false,
            scope: "applied-permissions/user".into(),
            audience: "*@*".into(),
            issued_at: 1,
            expires_at: Some(21601),
            refreshable: false,
            revocable: true,
            description: None,
            kid: "k1".into(),
            access_hash: "a".repeat(64),
            refresh_hash: None,
            reference_hash: None,
            self_issued: false,
            force_revocable: false,
        })));
        state.apply(&issued);
        let revoked = next(Event::TokenRevoked { token_id: id });
        state.apply(&revoked);
        if i % (rounds / 5).max(1) == 0 {
            println!(
                "rounds={i} rss_mib={:.1} token_versions={} encoded_bytes={}",
                rss_mib(),
                state.federation.versions.tokens.len(),
                state.encode().len()
            );
        }
    }
}

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

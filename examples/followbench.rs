//! Follow lag of several nodes on one PostgreSQL log (used by `scripts/bench.d/postgres.sh`).
//!
//! `followbench A B PASSWORD [SAMPLES]` creates a group on node A, and from the moment
//! A acknowledged it (committed in PostgreSQL) polls node B for it, without
//! `X-Gatehouse-Min-Seq` (so B learns of it the ordinary way: LISTEN/NOTIFY, then it
//! reads and applies the rows). Prints the lag from A's acknowledgement to B answering
//! 200, p50 / p99 / max, in milliseconds; and the same with `X-Gatehouse-Min-Seq` on
//! B's first read (what a client that passes the position on waits).

use base64::Engine;
use std::time::{Duration, Instant};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: followbench A B PASSWORD [SAMPLES]");
        std::process::exit(2);
    }
    let (a, b, password) = (&args[1], &args[2], &args[3]);
    let samples: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(300);
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{password}"))
    );
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let run = std::process::id();
    let mut plain = Vec::with_capacity(samples);
    let mut min_seq = Vec::with_capacity(samples);
    for i in 0..samples * 2 {
        let name = format!("follow-{run}-{i}");
        let r = agent
            .post(&format!("{a}/access/api/v2/groups"))
            .set("Authorization", &auth)
            .set("Content-Type", "application/json")
            .send_string(&format!("{{\"name\":\"{name}\"}}"))
            .expect("a write on A");
        let seq = r.header("x-gatehouse-seq").unwrap_or("0").to_string();
        let acked = Instant::now();
        let with_seq = i % 2 == 1;
        loop {
            let mut req = agent
                .get(&format!("{b}/access/api/v2/groups/{name}"))
                .set("Authorization", &auth);
            if with_seq {
                req = req.set("X-Gatehouse-Min-Seq", &seq);
            }
            match req.call() {
                Ok(r) if r.status() == 200 => break,
                Ok(_) | Err(ureq::Error::Status(404, _)) => {}
                Err(e) => panic!("reading on B: {e}"),
            }
            assert!(
                acked.elapsed() < Duration::from_secs(10),
                "B never saw {name}"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        let ms = acked.elapsed().as_secs_f64() * 1000.0;
        if with_seq {
            min_seq.push(ms);
        } else {
            plain.push(ms);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    for (name, v) in [("follow", &mut plain), ("min_seq", &mut min_seq)] {
        v.sort_by(|x, y| x.partial_cmp(y).unwrap());
        println!("{name}_p50_ms={:.1}", percentile(v, 0.50));
        println!("{name}_p99_ms={:.1}", percentile(v, 0.99));
        println!("{name}_max_ms={:.1}", v.last().copied().unwrap_or(0.0));
    }
    println!("samples={samples}");
}

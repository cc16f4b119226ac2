//! In-process cost of what the request middleware records for each request (a counter by
//! route template and status, a latency histogram by route), on two threads at once, as
//! the HTTP workers do (used by `scripts/bench`). Prints `key=value` lines.

use gatehouse::metrics::Metrics;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROUTES: [&str; 4] = [
    "/api/system/ping",
    "/access/api/v2/users/{name}",
    "/access/api/v1/tokens",
    "/access/api/v2/groups",
];

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("a count"))
        .unwrap_or(2_000_000);
    let threads = 2;
    let metrics = Arc::new(Metrics::new());
    let t = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|w| {
            let metrics = metrics.clone();
            std::thread::spawn(move || {
                for i in 0..n {
                    let route = ROUTES[(i + w) % ROUTES.len()];
                    let status = if i % 16 == 0 { 404 } else { 200 };
                    metrics.record_request("GET", route, status, Duration::from_micros(120));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let elapsed = t.elapsed();
    // Wall time per record with both threads busy: the CPU each request pays.
    let ns = elapsed.as_nanos() as f64 * threads as f64 / (n * threads) as f64;
    let text = metrics.encode(|_| {});
    assert!(
        text.contains("/api/system/ping"),
        "the records were counted"
    );
    println!("threads={threads}");
    println!("records={}", n * threads);
    println!("ns_per_request={ns:.0}");
}

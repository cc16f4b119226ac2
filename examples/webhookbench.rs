//! Webhook delivery under load (used by `scripts/bench`), against a running server.
//!
//! `webhookbench BASE ADMIN_PASSWORD [SECONDS] [SERVER_PID]`:
//! 1. ten subscriptions to a fast loopback receiver while writes come at 2,000/s:
//!    does delivery keep up, and how long from commit (the event's timestamp) to
//!    receipt, p50 / p99;
//! 2. write rate with one subscription whose receiver hangs vs one whose receiver
//!    answers at once, and vs no subscription at all (the three in turn, three rounds,
//!    each in another order; medians): a hung receiver must not slow writes.
//!
//! Prints `key=value` lines; with the server's pid, also the server's CPU (user + system,
//! `/proc`) over the paced phase a delivery (its share of the writes included).

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A keep-alive receiver: records (receipt time, body) of every request, or hangs.
fn receiver(hang: bool) -> (String, Arc<Mutex<Vec<(u64, Vec<u8>)>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let s = s.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
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
                    }
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    if hang {
                        std::thread::sleep(Duration::from_secs(3600));
                        return;
                    }
                    s.lock().unwrap().push((now_ms(), body));
                    let _ = reader
                        .get_mut()
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                }
            });
        }
    });
    (url, seen)
}

struct Api {
    base: String,
    auth: String,
    agent: ureq::Agent,
}

impl Api {
    fn post(&self, path: &str, body: &Value) -> u16 {
        match self
            .agent
            .post(&format!("{}{}", self.base, path))
            .set("Authorization", &self.auth)
            .send_json(body.clone())
        {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(c, _)) => c,
            Err(e) => panic!("{path}: {e}"),
        }
    }
    fn put(&self, path: &str, body: &Value) -> u16 {
        match self
            .agent
            .put(&format!("{}{}", self.base, path))
            .set("Authorization", &self.auth)
            .send_json(body.clone())
        {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(c, _)) => c,
            Err(e) => panic!("{path}: {e}"),
        }
    }
    fn delete(&self, path: &str) {
        let _ = self
            .agent
            .delete(&format!("{}{}", self.base, path))
            .set("Authorization", &self.auth)
            .call();
    }
}

fn subscribe(api: &Api, key: &str, url: &str) {
    let code = api.post(
        "/event/api/v1/subscriptions",
        &json!({"key": key, "event_filter": {"domain": "group", "event_types": ["created"]},
                "handlers": [{"handler_type": "webhook", "url": url, "secret": "bench-secret"}]}),
    );
    assert_eq!(code, 201, "subscribe {key}");
}

/// Create groups from `threads` clients for `secs`; `rate` (writes/s in all) paces
/// them, 0 = as fast as they go. Returns (writes, seconds).
fn write_groups(api: &Arc<Api>, tag: &str, threads: usize, secs: f64, rate: f64) -> (u64, f64) {
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (api, done, count, tag) =
                (api.clone(), done.clone(), count.clone(), tag.to_string());
            std::thread::spawn(move || {
                let interval = if rate > 0.0 {
                    Duration::from_secs_f64(threads as f64 / rate)
                } else {
                    Duration::ZERO
                };
                let mut next = Instant::now() + interval.mul_f64(t as f64 / threads as f64);
                let mut i = 0u64;
                while !done.load(Ordering::Relaxed) {
                    if rate > 0.0 {
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        }
                        next += interval;
                    }
                    let code = api.post(
                        "/access/api/v2/groups",
                        &json!({"name": format!("{tag}-{t}-{i}")}),
                    );
                    assert_eq!(code, 201);
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
    (
        count.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .expect("usage: webhookbench BASE ADMIN_PASSWORD [SECONDS]");
    let password = args.next().expect("the admin password");
    let secs: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let server: Option<u32> = args.next().and_then(|s| s.parse().ok());
    // User + system CPU of the server so far, in µs (`/proc/<pid>/stat`, fields 14 and 15).
    let server_cpu_us = || -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", server?)).ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: f64 = rest.get(11)?.parse::<f64>().ok()? + rest.get(12)?.parse::<f64>().ok()?;
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Some(ticks * 1e6 / hz)
    };
    use base64::Engine;
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{password}"))
    );
    let api = Arc::new(Api {
        base,
        auth,
        agent: ureq::AgentBuilder::new()
            .max_idle_connections_per_host(64)
            .build(),
    });
    let threads = 32;

    // 1. Ten subscriptions, one fast receiver, 2,000 writes/s (first, on a fresh server).
    let (url, seen) = receiver(false);
    for i in 0..10 {
        subscribe(&api, &format!("fast{i}"), &url);
    }
    let rate = 2000.0;
    let cpu0 = server_cpu_us();
    let t0 = now_ms();
    // The pacing sets the rate; 64 writers (as many as the other benchmarks' clients)
    // so that a durable write's latency on a loaded machine does not hold it below 2,000/s.
    let (writes, s) = write_groups(&api, "paced", 64, secs * 2.0, rate);
    let writes_done = now_ms();
    let expected = writes as usize * 10;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().len() < expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let cpu1 = server_cpu_us();
    let seen = seen.lock().unwrap().clone();
    for i in 0..10 {
        api.delete(&format!("/event/api/v1/subscriptions/fast{i}"));
    }
    let mut latencies: Vec<u64> = Vec::with_capacity(seen.len());
    let mut last = 0;
    for (at, body) in &seen {
        let v: Value = serde_json::from_slice(body).unwrap();
        let committed =
            gatehouse::timefmt::parse(v["timestamp"].as_str().unwrap()).expect("a timestamp");
        latencies.push(at.saturating_sub(committed));
        last = last.max(*at);
    }
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!("paced_writes_per_sec={:.0}", writes as f64 / s);
    println!("deliveries_expected={expected}");
    println!("deliveries_received={}", seen.len());
    println!(
        "deliveries_per_sec={:.0}",
        seen.len() as f64 / ((last.max(writes_done) - t0) as f64 / 1000.0)
    );
    println!(
        "drain_after_last_write_ms={}",
        last.saturating_sub(writes_done)
    );
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        println!(
            "server_cpu_us_per_delivery={:.1}",
            (b - a) / seen.len().max(1) as f64
        );
    }
    println!("latency_p50_ms={}", pct(0.50));
    println!("latency_p99_ms={}", pct(0.99));

    // 2. A receiver that never answers, against a receiver that answers at once (one
    // subscription each), and against no subscription at all.
    let (hang_url, _) = receiver(true);
    let (ok_url, ok_seen) = receiver(false);
    subscribe(&api, "hang", &hang_url);
    subscribe(&api, "ok", &ok_url);
    let set_enabled = |key: &str, url: &str, on: bool| {
        let code = api.put(
            &format!("/event/api/v1/subscriptions/{key}"),
            &json!({"key": key, "enabled": on,
                    "event_filter": {"domain": "group", "event_types": ["created"]},
                    "handlers": [{"handler_type": "webhook", "url": url}]}),
        );
        assert_eq!(code, 204);
    };
    // Every round measures all three in turn, each round in another order (none, ok,
    // hung; then ok, hung, none; then hung, none, ok), so that each takes each place
    // once: the machine's drift and the growing state (each run adds its groups) hit
    // them alike. In a fixed order the hung run always came last, on the largest state.
    let (mut none, mut healthy, mut hung) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ok_writes, mut drains) = (0usize, Vec::new());
    for run in 0..3 {
        for place in 0..3 {
            set_enabled("hang", &hang_url, false);
            set_enabled("ok", &ok_url, false);
            match (run + place) % 3 {
                0 => {
                    let (n, s) = write_groups(&api, &format!("none{run}"), threads, secs, 0.0);
                    none.push(n as f64 / s);
                }
                1 => {
                    set_enabled("ok", &ok_url, true);
                    let (n, s) = write_groups(&api, &format!("ok{run}"), threads, secs, 0.0);
                    healthy.push(n as f64 / s);
                    set_enabled("ok", &ok_url, false);
                    // The answering receiver's worker may still be sending what that run
                    // wrote: let it finish, so that the next run is not charged for these
                    // deliveries.
                    ok_writes += n as usize;
                    let waited = Instant::now();
                    let deadline = waited + Duration::from_secs(60);
                    while ok_seen.lock().unwrap().len() < ok_writes && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    drains.push(waited.elapsed().as_millis());
                }
                _ => {
                    set_enabled("hang", &hang_url, true);
                    let (n, s) = write_groups(&api, &format!("hung{run}"), threads, secs, 0.0);
                    hung.push(n as f64 / s);
                }
            }
        }
    }
    api.delete("/event/api/v1/subscriptions/hang");
    api.delete("/event/api/v1/subscriptions/ok");
    println!("writes_no_subscription_per_sec={:.0}", median(none.clone()));
    println!(
        "writes_healthy_receiver_per_sec={:.0}",
        median(healthy.clone())
    );
    println!("writes_hung_receiver_per_sec={:.0}", median(hung.clone()));
    println!(
        "hung_vs_healthy={:.2}",
        median(hung.clone()) / median(healthy.clone())
    );
    println!(
        "hung_vs_none={:.2}",
        median(hung.clone()) / median(none.clone())
    );
    println!(
        "healthy_vs_none={:.2}",
        median(healthy.clone()) / median(none.clone())
    );
    println!("runs_none={none:.0?} runs_healthy={healthy:.0?} runs_hung={hung:.0?}");
    println!("healthy_drained_after_ms={drains:?}");
}

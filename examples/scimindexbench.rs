//! The SCIM filter index in-process: what it holds per user and what a lookup costs,
//! on 100,000 users shaped like the ones SCIM clients create (userName, display name,
//! name parts, one e-mail).
//!
//!     cargo run --release --example scimindexbench [users]

use gatehouse::scim::filter;
use gatehouse::scim::index::{values_of, FilterIndex};
use serde_json::json;
use std::time::Instant;

fn main() {
    let users: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let mut index = FilterIndex::default();
    let t = Instant::now();
    for i in 0..users {
        let name = format!("user-{i}");
        let doc = json!({"userName": name, "displayName": format!("User {i}"),
            "name": {"givenName": "Given", "familyName": format!("Family{}", i % 977)},
            "emails": [{"value": format!("{name}@example.com"), "primary": true}]});
        index.put(&name, values_of(&doc));
    }
    let build_ms = t.elapsed().as_millis();
    let bytes = index.heap_bytes();
    println!("users={users}");
    println!("build_ms={build_ms}");
    println!("index_bytes_per_user={}", bytes / users.max(1));
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for (op, fmt) in [("co", "er-"), ("sw", "user-"), ("ew", "r-")] {
        let mut us: Vec<f64> = (0..2000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let f = filter::parse(&format!("userName {op} \"{fmt}{}\"", x % 10_000)).unwrap();
                let t = Instant::now();
                let n = index.select(&f).map(|s| s.keys.len()).unwrap_or(0);
                std::hint::black_box(n);
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        us.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!("{op}_p50_us={:.1}", us[us.len() / 2]);
        println!("{op}_p99_us={:.1}", us[us.len() * 99 / 100]);
    }
}

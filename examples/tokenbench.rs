//! In-process cost of signing and of a cold (uncached) verification of a Gatehouse token
//! (used by `scripts/bench`). Prints `key=value` lines.

use gatehouse::auth::verify_token;
use gatehouse::keys::{public_b64, KeyRing};
use gatehouse::tokens::{mint, Spec};
use gatehouse_projections::State;
use std::time::Instant;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("a count"))
        .unwrap_or(20_000);
    let dir = tempfile_dir();
    let keys = KeyRing::open(&dir).expect("key dir");
    let (kid, public) = keys.generate().expect("a key");
    let mut state = State::default();
    state.service_id = Some("jfac@01benchbenchbenchbenchbenc".into());
    state
        .keys
        .make_mut()
        .signing
        .insert(kid.clone(), public_b64(&public));
    state.keys.make_mut().active = Some(kid.clone());
    let t = Instant::now();
    let tokens: Vec<String> = (0..n)
        .map(|i| {
            let subject = format!("user-{i}");
            let spec = Spec {
                service_id: "jfac@01benchbenchbenchbenchbenc",
                subject: &subject,
                transient: false,
                scope: "applied-permissions/user",
                audience: "*@*",
                description: None,
                expires_in: Some(600),
                refreshable: false,
                reference: false,
                revocable: false,
                now: 1_800_000_000,
                ext: vec![],
                user_seq: None,
                self_issued: false,
            };
            mint(&keys, &kid, &spec).expect("mint").access_token
        })
        .collect();
    let sign_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let t = Instant::now();
    for token in &tokens {
        verify_token(&keys, &state, token).expect("verifies");
    }
    let verify_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!("tokens={n}");
    println!("mint_us={sign_us:.1}");
    println!("cold_verify_us={verify_us:.1}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).unwrap();
    let dir = std::env::temp_dir().join(format!("gatehouse-tokenbench-{}", u64::from_le_bytes(b)));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

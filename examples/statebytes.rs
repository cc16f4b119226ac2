//! Heap bytes of each part of the read models loaded from a data directory (a counting
//! allocator around mimalloc), and what a clone of the whole state adds (structural
//! sharing: nothing): `statebytes DIR`. Each part is dropped in turn and the live bytes
//! it held are printed, in MiB.

use gatehouse::log::{EventLog, StartupVerify};
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
struct Counting;
static LIVE: AtomicI64 = AtomicI64::new(0);
static MI: mimalloc::MiMalloc = mimalloc::MiMalloc;
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as i64, Relaxed);
        MI.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as i64, Relaxed);
        MI.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as i64 - l.size() as i64, Relaxed);
        MI.realloc(p, l, n)
    }
}
#[global_allocator]
static ALLOC: Counting = Counting;
fn live() -> i64 {
    LIVE.load(Relaxed) >> 20
}
fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        / 1024
}
fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    let log = EventLog::open(&dir).expect("open");
    let (mut s, _) = log.load(StartupVerify::Tail).expect("load");
    drop(log);
    println!("live={} MiB rss={} MiB", live(), rss());
    let c = s.clone();
    println!("after clone live={}", live());
    drop(c);
    let mut last = live();
    macro_rules! part {
        ($name:literal, $e:expr) => {{
            let x = std::mem::take(&mut $e);
            drop(x);
            let r = live();
            println!("{}: {} MiB", $name, last - r);
            last = r;
        }};
    }
    part!("tokens", s.tokens);
    part!("federation.versions", s.federation.versions);
    part!("federation", s.federation);
    part!("access_keys.entitlements", s.access_keys.entitlements);
    part!("access_keys", s.access_keys);
    part!("permissions", s.permissions);
    part!("projects", s.projects);
    part!("repositories", s.repositories);
    part!("groups", s.directory.groups);
    part!("users", s.directory.users);
    part!("directory", s.directory);
    println!("rest={last}");
}

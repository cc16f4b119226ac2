//! Whether the threads the server cannot do without are running.
//!
//! A panic in a Rust thread ends that thread only: the process keeps serving. Before,
//! a writer that died on a bug left a server whose every write answered 503 while its
//! probes said `OK`, and a dead webhook dispatcher or federation sender stopped
//! deliveries and streams in silence. Each such thread holds an [`Alive`] for as long as
//! it runs; one that unwinds records itself here, and the probes (`ping`, `readiness`,
//! `liveness`, the router's `health`) answer 503 naming it, so that a load balancer
//! stops sending requests and an orchestrator restarts the process (which rebuilds
//! everything from the log). A thread that returns (a stop, a target removed) is not a
//! failure.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Set once any vital thread has died: the probes' one load on their fast path.
static ANY_STOPPED: AtomicBool = AtomicBool::new(false);
/// What stopped, in order, each as "<role> (thread <name> panicked)".
static STOPPED: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Threads of one subscription or one federation target that stopped, by thread name
/// (one line each however often it stops): the router's `health` names them, the other
/// probes do not — one subscription's bug would take the whole access server out of its
/// load balancer, and a restart may only meet it again. A line goes when a thread of
/// that name runs again or returns (its subscription or target removed).
static DEGRADED: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());

/// Held by a thread for as long as it runs; records its end if it panics.
pub struct Alive {
    role: &'static str,
    vital: bool,
}

impl Alive {
    /// A thread the server cannot do without; `role` says what stops with it ("the
    /// writer: every write is refused").
    pub fn new(role: &'static str) -> Alive {
        Alive { role, vital: true }
    }

    /// A thread of one part (a subscription's deliveries, a federation target's stream).
    pub fn part(role: &'static str) -> Alive {
        // Running again: what its predecessor of the same name left is over.
        forget_part();
        Alive { role, vital: false }
    }
}

/// Takes the current thread's line out of [`DEGRADED`].
fn forget_part() {
    if let Some(name) = std::thread::current().name() {
        DEGRADED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            if !self.vital {
                forget_part();
            }
            return;
        }
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed").to_string();
        tracing::error!(thread = %name, "a thread stopped: {}", self.role);
        let line = format!("{} (thread {name} panicked)", self.role);
        if self.vital {
            STOPPED.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            ANY_STOPPED.store(true, Ordering::Release);
        } else {
            DEGRADED
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name, line);
        }
    }
}

/// A part that runs but cannot do its work (the outbox store failing): `health` names it
/// as `DEGRADED` under `name` until [`recovered`] is called with that name.
pub fn impaired(name: &str, line: String) {
    DEGRADED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(name.to_string(), line);
}

/// The part named `name` works again.
pub fn recovered(name: &str) {
    DEGRADED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(name);
}

/// What vital has stopped, if anything (empty while all is well).
pub fn stopped() -> Vec<String> {
    if !ANY_STOPPED.load(Ordering::Acquire) {
        return Vec::new();
    }
    STOPPED.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The parts' threads that stopped (a subscription's, a federation target's).
pub fn degraded() -> Vec<String> {
    DEGRADED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_panics_is_recorded_and_one_that_returns_is_not() {
        std::thread::Builder::new()
            .name("returns".into())
            .spawn(|| {
                let _alive = Alive::new("a thread that returns");
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(!stopped().iter().any(|s| s.contains("returns")));
        let died = std::thread::Builder::new()
            .name("dies".into())
            .spawn(|| {
                let _alive = Alive::new("a thread that dies: nothing works");
                panic!("on purpose");
            })
            .unwrap()
            .join();
        assert!(died.is_err());
        let now = stopped();
        assert!(
            now.iter()
                .any(|s| s == "a thread that dies: nothing works (thread dies panicked)"),
            "{now:?}"
        );
        let part = std::thread::Builder::new()
            .name("part".into())
            .spawn(|| {
                let _alive = Alive::part("one subscription's deliveries");
                panic!("on purpose");
            })
            .unwrap()
            .join();
        assert!(part.is_err());
        assert!(!stopped().iter().any(|s| s.contains("subscription")));
        assert!(degraded()
            .iter()
            .any(|s| s.contains("one subscription's deliveries")));
        // Stopping again under the same name is still one line; running again under it
        // (a respawn), or returning (removed), takes the line away.
        let part_dies = || {
            std::thread::Builder::new()
                .name("part".into())
                .spawn(|| {
                    let _alive = Alive::part("one subscription's deliveries");
                    panic!("on purpose");
                })
                .unwrap()
                .join()
        };
        assert!(part_dies().is_err());
        assert_eq!(
            degraded()
                .iter()
                .filter(|s| s.contains("(thread part panicked)"))
                .count(),
            1
        );
        let (running, stop) = std::sync::mpsc::channel::<()>();
        let (started, wait) = std::sync::mpsc::channel::<()>();
        let respawned = std::thread::Builder::new()
            .name("part".into())
            .spawn(move || {
                let _alive = Alive::part("one subscription's deliveries");
                started.send(()).unwrap();
                let _ = stop.recv();
            })
            .unwrap();
        wait.recv().unwrap();
        assert!(!degraded().iter().any(|s| s.contains("thread part ")));
        drop(running);
        respawned.join().unwrap();
        assert!(part_dies().is_err());
        std::thread::Builder::new()
            .name("part".into())
            .spawn(|| {
                let _alive = Alive::part("one subscription's deliveries");
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(!degraded().iter().any(|s| s.contains("thread part ")));
    }
}

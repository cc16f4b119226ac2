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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Set once any vital thread has died: the probes' one load on their fast path.
static ANY_STOPPED: AtomicBool = AtomicBool::new(false);
/// What stopped, in order, each as "the <role> thread (<panic message>)".
static STOPPED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Held by a vital thread for as long as it runs; records its end if it panics.
pub struct Alive {
    role: &'static str,
}

impl Alive {
    /// `role` says what stops with the thread ("the writer: writes are refused").
    pub fn new(role: &'static str) -> Alive {
        Alive { role }
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("unnamed").to_string();
            tracing::error!(thread = %name, "a vital thread stopped: {}", self.role);
            STOPPED
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("{} (thread {name} panicked)", self.role));
            ANY_STOPPED.store(true, Ordering::Release);
        }
    }
}

/// What has stopped, if anything (empty while all is well).
pub fn stopped() -> Vec<String> {
    if !ANY_STOPPED.load(Ordering::Acquire) {
        return Vec::new();
    }
    STOPPED.lock().unwrap_or_else(|p| p.into_inner()).clone()
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
    }
}

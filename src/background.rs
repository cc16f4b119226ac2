//! Maintenance threads yield the CPU to requests: a snapshot being written.
//!
//! On a machine with few cores a snapshot of a large state takes a good part of a core
//! for a while; at the same priority it takes that from the requests being served
//! (measured: 8.5 % of the server's CPU during a SCIM create run). Nothing waits on it —
//! a later snapshot only makes the next start replay a longer tail — and it holds no
//! lock a request needs (it encodes its own copy of the state; the log's appends do not
//! go through the sled database the snapshots are kept in). So it runs at the lowest
//! priority and takes what requests leave; on an idle machine it is as fast as before.
//!
//! The walk that builds the past's checkpoints is not lowered: it holds the users'
//! timeline index while it builds it, and a one-user past read waits for that.

/// The `nice` value maintenance threads run at (the lowest priority).
pub const NICENESS: i32 = 19;

/// Lower the calling thread's priority to [`NICENESS`]. On Linux the `nice` value is a
/// property of each thread (`setpriority(PRIO_PROCESS, 0, …)` changes only the caller),
/// not of the whole process as POSIX says; elsewhere this does nothing rather than slow
/// the whole server. A refusal is harmless (the thread keeps its priority).
pub fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority has no memory effects; 0 names the calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, NICENESS);
    }
}

/// The calling thread's `nice` value, as the kernel reports it (for tests).
#[cfg(target_os = "linux")]
pub fn current_niceness() -> std::io::Result<i32> {
    let stat = std::fs::read_to_string(format!(
        "/proc/self/task/{}/stat",
        // SAFETY: gettid has no preconditions.
        unsafe { libc::gettid() }
    ))?;
    // Fields after the parenthesised name: state is the 3rd field, nice the 19th.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    after
        .split_whitespace()
        .nth(16)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| std::io::Error::other("no nice value in the thread's stat"))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn a_maintenance_thread_runs_at_the_lowest_priority_and_the_others_do_not() {
        let before = super::current_niceness().unwrap();
        let inside = std::thread::spawn(|| {
            super::lower_priority();
            super::current_niceness().unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(inside, super::NICENESS);
        // Only that thread: the caller keeps its own.
        assert_eq!(super::current_niceness().unwrap(), before);
    }
}

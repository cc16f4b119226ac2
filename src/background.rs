//! Thread priorities. Maintenance threads yield the CPU to requests: a snapshot being
//! written. The writer goes ahead of them (the last paragraph).
//!
//! On a machine with few cores a snapshot of a large state takes a good part of a core
//! for a while; at the same priority it takes that from the requests being served
//! (measured: 8.5 % of the server's CPU during a SCIM create run). Nothing waits on it —
//! a later snapshot only makes the next start replay a longer tail — and it holds no
//! lock a request needs (it encodes its own copy of the state; the log's appends do not
//! go through the sled database the snapshots are kept in). So it runs at the lowest
//! priority and takes what requests leave; on an idle machine it is as fast as before.
//! The lowest is `SCHED_IDLE`, not only `nice` 19: at `nice` 19 the snapshot of a
//! 250 MB state still took 50–60 % of a core for the second it was encoded, from the
//! HTTP workers (their share fell from 22 to 6–14 of 25 ticks a quarter-second, the
//! machine no idler), and the SCIM creates of that half fell by a third; under
//! `SCHED_IDLE` it took 2–8 ticks, mostly the machine's idle ones, ran three times as
//! long, and the worst half of a 16-half SCIM run went from 28–34k to 42–43k/s
//! (docs/benchmarks.md). A `SCHED_IDLE` thread still gets a sliver of a busy machine,
//! so a snapshot finishes on one that is never idle.
//!
//! The walk that builds the past's checkpoints is not lowered: it holds the users'
//! timeline index while it builds it, and a one-user past read waits for that.
//!
//! The writer goes the other way ([`raise_priority`]): it is the one thread every write
//! waits for, in turn, and on a busy machine the HTTP workers it wakes with its answers
//! took its core from it mid-batch — 0.10 involuntary context switches a group create,
//! every one a stall of the whole pipeline. Raised, 0.02, and a write costs less (see
//! docs/benchmarks.md). It is one thread: whatever it does (a batch, a catch-up, an
//! import, the snapshot at shutdown) takes at most one core from the workers. Not on a
//! shared log (`writer.rs`): there its batches wait on PostgreSQL's backends, which
//! would fall behind it.
//!
//! Under load the writer also stops taking the CPU from the workers the moment it wakes
//! ([`WriterLoad`]): when its batches show many clients waiting at once, it runs under
//! `SCHED_BATCH`, whose wake-ups do not preempt the running thread. A worker then finishes
//! what it was doing — the requests its last wake-up brought, whose commands join the
//! next batch — before the writer takes the core; the batches grow (12 → 20 commands a
//! batch for 64 clients on two cores) and each command carries a smaller share of the
//! flush and of the switches. With few clients waiting the writer goes back to
//! `SCHED_OTHER`, where its wake-ups do preempt: a closed loop of a few clients waits
//! for the writer, and a delay there is all latency (the same policy throughout cost
//! 3–14 % of the rate at 8 and 16 clients; docs/benchmarks.md). On an idle core the
//! policy changes nothing: a woken thread with a free core runs at once either way.

/// The `nice` value maintenance threads run at (the lowest priority).
pub const NICENESS: i32 = 19;

/// Lower the calling thread's priority to [`NICENESS`] and its policy to `SCHED_IDLE`
/// (no privilege needed for either). On Linux the `nice` value is a
/// property of each thread (`setpriority(PRIO_PROCESS, 0, …)` changes only the caller),
/// not of the whole process as POSIX says; elsewhere this does nothing rather than slow
/// the whole server. A refusal is harmless (the thread keeps its priority).
pub fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority and sched_setscheduler have no memory effects; 0 names the
    // calling thread.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, NICENESS);
        let param = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
    }
}

/// The `nice` value the writer thread, and the thread whose work a batch waits for beside
/// its flush, ask for: ahead of the HTTP workers (at 0).
pub const WRITER_NICENESS: i32 = -10;

/// Raise the calling thread's priority to [`WRITER_NICENESS`]; whether it runs there or
/// higher now. A thread already at or above it (a process started with `nice -15`) is
/// left as it is, never lowered. A negative `nice` needs the privilege to ask for it
/// (`CAP_SYS_NICE`, as root has, or an `RLIMIT_NICE` that allows it); without it the
/// thread keeps its priority and works as before. Linux only, as [`lower_priority`].
pub fn raise_priority() -> bool {
    #[cfg(target_os = "linux")]
    {
        if current_niceness().is_ok_and(|n| n <= WRITER_NICENESS) {
            return true;
        }
        // SAFETY: setpriority has no memory effects; 0 names the calling thread.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, WRITER_NICENESS) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    false
}

/// Whether the writer's batches say the machine is busy with waiting clients: an
/// average of the batches' sizes, and the calling thread's policy switched when it
/// crosses [`WriterLoad::BUSY_FROM`] (up) or [`WriterLoad::IDLE_UNDER`] (down). See the
/// module's last paragraph.
#[derive(Debug)]
pub struct WriterLoad {
    /// The moving average of the batch sizes, in 1/256ths of a command (each batch
    /// weighs an eighth).
    average: u32,
    busy: bool,
    /// False when the thread started under another policy than `SCHED_OTHER` (an
    /// operator's `chrt`): that one is left as it is.
    enabled: bool,
}

impl WriterLoad {
    /// For the calling thread, which starts under `SCHED_OTHER` (else it is left alone).
    pub fn new() -> WriterLoad {
        #[cfg(target_os = "linux")]
        // SAFETY: sched_getscheduler has no memory effects; 0 names the calling thread.
        let enabled = unsafe { libc::sched_getscheduler(0) } == libc::SCHED_OTHER;
        #[cfg(not(target_os = "linux"))]
        let enabled = false;
        WriterLoad {
            average: 0,
            busy: false,
            enabled,
        }
    }

    /// An average batch of this many commands or more: many clients are waiting.
    pub const BUSY_FROM: u32 = 10;
    /// Under this many on average: few are; the writer preempts again. Close to
    /// [`Self::BUSY_FROM`]: 16 clients on two cores make batches of 6 commands on
    /// average, 7 under `SCHED_BATCH` — which a lower line would keep there, at a cost
    /// (3–9 % of the rate with the line at 5).
    pub const IDLE_UNDER: u32 = 8;

    /// Count a batch of `commands` and switch the calling thread's policy if the average
    /// crossed a line. One batch larger than four times the line counts as four times
    /// the line (an import of a thousand events is not a thousand clients).
    pub fn batch(&mut self, commands: usize) {
        let n = (commands as u32).min(4 * Self::BUSY_FROM) << 8;
        self.average = self.average - self.average / 8 + n / 8;
        let busy = if self.busy {
            self.average >= Self::IDLE_UNDER << 8
        } else {
            self.average >= Self::BUSY_FROM << 8
        };
        if busy != self.busy && self.enabled && batch_scheduling(busy) {
            self.busy = busy;
        }
    }

    /// Whether the writer runs under `SCHED_BATCH` now.
    pub fn busy(&self) -> bool {
        self.busy
    }
}

impl Default for WriterLoad {
    fn default() -> Self {
        Self::new()
    }
}

/// Put the calling thread under `SCHED_BATCH` (`on`) or back under `SCHED_OTHER`, its
/// `nice` value kept (neither needs a privilege). Linux only: elsewhere `false`.
pub fn batch_scheduling(on: bool) -> bool {
    #[cfg(target_os = "linux")]
    {
        let policy = if on {
            libc::SCHED_BATCH
        } else {
            libc::SCHED_OTHER
        };
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: sched_setscheduler reads the struct it is given; 0 names the calling
        // thread.
        unsafe { libc::sched_setscheduler(0, policy, &param) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = on;
        false
    }
}

/// Whether the calling thread runs under `SCHED_BATCH` (for tests).
#[cfg(target_os = "linux")]
pub fn under_batch_scheduling() -> bool {
    // SAFETY: sched_getscheduler has no memory effects; 0 names the calling thread.
    unsafe { libc::sched_getscheduler(0) == libc::SCHED_BATCH }
}

/// See the Linux version.
#[cfg(not(target_os = "linux"))]
pub fn may_raise_priority() -> bool {
    false
}

/// See the Linux version.
#[cfg(not(target_os = "linux"))]
pub fn current_niceness() -> std::io::Result<i32> {
    Ok(0)
}

/// Whether this process may raise a thread's priority to [`WRITER_NICENESS`]:
/// `CAP_SYS_NICE` among its effective capabilities in the initial user namespace (in
/// another one — rootless containers, `unshare -r` — the kernel refuses it whatever
/// `CapEff` says), or an `RLIMIT_NICE` of at least `20 - WRITER_NICENESS` (for tests).
#[cfg(target_os = "linux")]
pub fn may_raise_priority() -> bool {
    const CAP_SYS_NICE: u32 = 23;
    let initial_namespace = std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"]);
    let capable = initial_namespace
        && std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("CapEff:"))
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            })
            .is_some_and(|caps| caps & (1 << CAP_SYS_NICE) != 0);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given and nothing else.
    let allowed = unsafe { libc::getrlimit(libc::RLIMIT_NICE, &mut limit) } == 0
        && limit.rlim_cur >= (20 - WRITER_NICENESS) as libc::rlim_t;
    capable || allowed
}

/// The calling thread's `nice` value, as the kernel reports it (for tests).
#[cfg(target_os = "linux")]
pub fn current_niceness() -> std::io::Result<i32> {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    niceness_of(std::path::Path::new(&format!("/proc/self/task/{tid}")))
}

/// The `nice` value of the thread whose `/proc` directory is `task`
/// (`/proc/<pid>/task/<tid>`; the tests read the real binary's threads with it).
#[cfg(target_os = "linux")]
pub fn niceness_of(task: &std::path::Path) -> std::io::Result<i32> {
    let stat = std::fs::read_to_string(task.join("stat"))?;
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
    /// Large batches put the thread under `SCHED_BATCH`, small ones take it back, with
    /// room between the two lines (a batch size between them changes nothing), and its
    /// `nice` value is the same throughout.
    #[test]
    fn the_writer_yields_while_its_batches_are_large() {
        std::thread::spawn(|| {
            let nice = super::current_niceness().unwrap();
            let mut load = super::WriterLoad::new();
            let mut rounds = 0;
            while !load.busy() && rounds < 20 {
                load.batch(20);
                rounds += 1;
                assert!(!super::under_batch_scheduling() || load.busy());
            }
            assert!(super::under_batch_scheduling());
            assert!((4..=8).contains(&rounds), "{rounds} batches of 20");
            for _ in 0..100 {
                load.batch(9);
            }
            assert!(load.busy() && super::under_batch_scheduling());
            assert_eq!(super::current_niceness().unwrap(), nice);
            for _ in 0..20 {
                load.batch(1);
            }
            assert!(!load.busy() && !super::under_batch_scheduling());
            for _ in 0..100 {
                load.batch(9);
            }
            assert!(!load.busy() && !super::under_batch_scheduling());
            // An import's batch of a thousand counts as forty.
            load.batch(1000);
            load.batch(1000);
            assert!(load.busy());
            for _ in 0..20 {
                load.batch(1);
            }
            assert!(!load.busy());
            assert_eq!(super::current_niceness().unwrap(), nice);
            // A thread an operator put under another policy keeps it.
            assert!(super::batch_scheduling(true));
            let mut theirs = super::WriterLoad::new();
            for n in [40; 20].into_iter().chain([1; 40]) {
                theirs.batch(n);
            }
            assert!(super::under_batch_scheduling());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_maintenance_thread_runs_at_the_lowest_priority_and_the_others_do_not() {
        let policy = || unsafe { libc::sched_getscheduler(0) };
        let before = (super::current_niceness().unwrap(), policy());
        let inside = std::thread::spawn(move || {
            super::lower_priority();
            (super::current_niceness().unwrap(), policy())
        })
        .join()
        .unwrap();
        assert_eq!(inside, (super::NICENESS, libc::SCHED_IDLE));
        // Only that thread: the caller keeps its own.
        assert_eq!((super::current_niceness().unwrap(), policy()), before);
    }

    /// A raised thread runs at the writer's priority where the process may ask for it
    /// (`CAP_SYS_NICE`, as root outside a user namespace has, or `RLIMIT_NICE`), keeps its
    /// own where it may not, is never lowered, and either way the caller keeps its own.
    #[test]
    fn the_writer_s_priority_is_raised_where_the_process_may() {
        let before = super::current_niceness().unwrap();
        let (raised, inside) = std::thread::spawn(|| {
            let raised = super::raise_priority();
            (raised, super::current_niceness().unwrap())
        })
        .join()
        .unwrap();
        let already = before <= super::WRITER_NICENESS;
        if super::may_raise_priority() || already {
            assert!(raised);
        }
        let expected = match (raised, already) {
            (_, true) => before,
            (true, false) => super::WRITER_NICENESS,
            (false, false) => before,
        };
        assert_eq!(inside, expected);
        assert_eq!(super::current_niceness().unwrap(), before);
    }
}

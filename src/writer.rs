//! The single writer: the only code that appends to the log.
//!
//! It owns the order of the log. Commands arrive on a bounded crossbeam channel; the
//! writer takes every command that is waiting (up to [`MAX_BATCH`]), decides each against
//! its own copy of the state (so a later command in the batch sees the earlier ones),
//! appends all their events with **one** flush (group commit), then publishes them to the
//! shared read models and only then acknowledges. So a 2xx means "on disk", and a client
//! that reads after its write always sees it.
//!
//! Why two versions of the state: the batch is decided before it is durable, and readers
//! must never see events that could still be lost. The writer's version runs ahead by at
//! most one batch; the shared one only ever holds flushed events. They are not two
//! copies: publishing replaces the shared version with a clone of the writer's, which
//! shares everything the batch did not touch (`gatehouse_projections::shared`).

use crate::domain::{decide, Command, DomainError};
use crate::log::postgres::{AppendError, PgLog};
use crate::log::{EventLog, LogError, RawEvent};
use gatehouse_projections::State;
use gatehouse_schemas::Envelope;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// How long the writer keeps trying to reach the shared log (PostgreSQL restarting)
/// before it answers the waiting commands 503.
const SHARED_RETRY: Duration = Duration::from_secs(20);

/// At most this many commands share one flush. Large enough to amortise the fsync,
/// small enough that a batch's latency stays in the low milliseconds.
pub const MAX_BATCH: usize = 1024;

/// Snapshots smaller than this are taken every `snapshot-every` events whatever their
/// size (they cost milliseconds); larger ones wait for more log (`snapshot_due`).
const PROPORTIONAL_SNAPSHOTS_FROM: u64 = 4 << 20;

/// A large snapshot is due once the log has grown by this many times its size.
const LOG_PER_SNAPSHOT_BYTE: u64 = 2;

/// Who asked, for the envelope.
#[derive(Debug, Clone)]
pub struct CommandContext {
    pub actor: String,
    pub request_id: String,
}

/// A committed command: the position of its last event (or the head, if it wrote none).
#[derive(Debug, Clone, Copy)]
pub struct Committed {
    pub seq: u64,
    /// How many events the command wrote.
    pub events: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("the event log is not available")]
    Unavailable,
    /// Several nodes: PostgreSQL did not answer within the outage wait. The batch may
    /// still turn up in the shared log (it may have been committed as the connection
    /// broke): said, so that a client reads before it sends the write again.
    #[error("the shared log (PostgreSQL) did not answer in time; this write is in doubt: it may still appear, so read before sending it again")]
    SharedLogUnavailable,
    /// Several nodes: PostgreSQL could not be reached within the outage wait, and nothing
    /// of the batch was sent to it (every 503 said "in doubt", and a client read before a
    /// retry that was safe all along).
    #[error("the shared log (PostgreSQL) could not be reached in time; nothing of this write was written: send it again")]
    SharedLogUnreachable,
    /// The disk holding the log is full: nothing of the batch was written.
    #[error("the disk holding the event log is full; writes are refused until there is room")]
    DiskFull,
}

enum Message {
    Submit {
        /// Boxed: a `Command` is 480 bytes (its largest variants), and the channel's
        /// slot, written on an HTTP worker and read on the writer's core, was copied
        /// whole — visible in `perf` on both threads; a box is one cache line there.
        command: Box<Command>,
        ctx: CommandContext,
        reply: oneshot::Sender<Result<Committed, SubmitError>>,
    },
    Shutdown {
        reply: std::sync::mpsc::Sender<()>,
    },
    /// Events from a backup that continue this log (checked by the caller and again by
    /// `EventLog::append_raw`): appended as they are, then applied.
    Import {
        records: Vec<crate::log::RawEvent>,
        reply: oneshot::Sender<Result<Committed, SubmitError>>,
    },
    /// Other nodes appended to the shared log: read and apply what is new.
    CatchUp,
}

/// The handle the HTTP layer holds. Cheap to clone.
#[derive(Clone)]
pub struct WriterHandle {
    tx: crossbeam_channel::Sender<Message>,
    doorbells: Arc<RwLock<Vec<crossbeam_channel::Sender<()>>>>,
    /// The position applied to the shared read models (read-your-writes waits on it).
    applied: tokio::sync::watch::Receiver<u64>,
    /// Catch-ups that read the shared log to its end, counted (see `caught_up_rounds`).
    rounds: tokio::sync::watch::Receiver<u64>,
    /// A catch-up is queued (so the follower does not flood the queue).
    catch_up_queued: Arc<AtomicBool>,
    user_changes: Arc<ChangedUsers>,
    before_commit: Arc<RwLock<Vec<BeforeCommit>>>,
    feed: Arc<CommittedFeed>,
    /// Several nodes write to one shared log: what another node wrote a moment ago may
    /// not be applied here yet.
    shared: bool,
}

/// The envelopes of the latest commits, handed to the webhook dispatcher while it wants
/// them, so that it does not read and decode from the log again what the writer has just
/// written (that was a third of its time per write with a subscription on every write).
/// The writer moves a batch's envelopes in instead of dropping them; bounded: past
/// [`CommittedFeed::LIMIT`] events waiting, a batch is not put in, and the follower reads
/// that part from the log, as it does for anything it finds missing. Only committed
/// batches are put in, in log order; the follower checks each position against its
/// cursor, so a gap or an old entry can never make it skip or repeat an event.
#[derive(Default)]
pub struct CommittedFeed {
    wanted: AtomicBool,
    waiting: std::sync::Mutex<FeedQueue>,
}

#[derive(Default)]
struct FeedQueue {
    batches: std::collections::VecDeque<Vec<Envelope>>,
    events: usize,
}

impl CommittedFeed {
    /// The most events waiting to be taken.
    pub const LIMIT: usize = 4096;

    /// Start (or stop) putting batches in. Stopping drops what waits.
    pub fn want(&self, on: bool) {
        if self.wanted.swap(on, Ordering::AcqRel) != on && !on {
            *self.waiting.lock().unwrap_or_else(|p| p.into_inner()) = FeedQueue::default();
        }
    }

    /// The writer: a committed batch, in log order.
    pub(crate) fn offer(&self, envelopes: Vec<Envelope>) {
        if !self.wanted.load(Ordering::Acquire) {
            return;
        }
        let mut q = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if q.events + envelopes.len() <= Self::LIMIT {
            q.events += envelopes.len();
            q.batches.push_back(envelopes);
        } else {
            drop(q);
            // Dropped outside the lock; the follower finds the gap and reads the log.
            drop(envelopes);
        }
    }

    /// Everything waiting, oldest first.
    pub fn take(&self) -> std::collections::VecDeque<Vec<Envelope>> {
        std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|p| p.into_inner())).batches
    }
}

/// Work that must be durable before a batch's events are written, done for the whole
/// batch on another thread while the writer decides it (personal-data keys made for the
/// batch's commands: `PersonalKeys::flush_pending`). An error refuses the batch (503):
/// nothing of it is written.
pub struct BeforeCommit {
    /// Whether a batch collected now has anything for `work` (cheap, asked on the
    /// writer's thread): a batch with nothing to make durable starts no thread. Whatever
    /// a command of the batch needs was handed over before the command was submitted, so
    /// it is already pending when the batch is collected.
    pub pending: Box<dyn Fn() -> bool + Send + Sync>,
    pub work: Box<dyn Fn() -> Result<(), String> + Send + Sync>,
}

/// The users named by the events applied to the shared read models since a reader last
/// took them: how the SCIM filter index (`scim::index`) follows every write without
/// re-reading the log. Noted while the shared state is write-locked, so a reader that
/// holds the state's read lock sees exactly the changes up to that state's position.
/// Nothing is noted until someone first takes them (a server nobody searches pays a
/// lock per batch, nothing more); past [`ChangedUsers::LIMIT`] names the set is dropped
/// and the reader told to start over.
#[derive(Default)]
pub struct ChangedUsers {
    inner: std::sync::Mutex<Changed>,
}

#[derive(Default)]
struct Changed {
    watched: bool,
    overflow: bool,
    names: std::collections::HashSet<String>,
}

/// What [`ChangedUsers::take`] gives.
pub enum Changes {
    /// These users may have changed (or are gone).
    Names(std::collections::HashSet<String>),
    /// Anything may have changed: start over.
    All,
}

impl ChangedUsers {
    pub const LIMIT: usize = 50_000;

    fn note(&self, envelopes: &[Envelope]) {
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if !c.watched || c.overflow {
            return;
        }
        for env in envelopes {
            users_named(&env.event, |n| {
                if !c.names.contains(n) {
                    c.names.insert(n.to_string());
                }
            });
        }
        if c.names.len() > Self::LIMIT {
            c.overflow = true;
            c.names = Default::default();
        }
    }

    /// The users named since the last call. The first call answers `All` (nothing was
    /// watched before it). Call it holding the shared state's read lock.
    pub fn take(&self) -> Changes {
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let first = !std::mem::replace(&mut c.watched, true);
        if std::mem::take(&mut c.overflow) || first {
            c.names = Default::default();
            return Changes::All;
        }
        Changes::Names(std::mem::take(&mut c.names))
    }
}

/// Every user an event names (and so may create, change, rename or delete).
pub fn users_named(event: &gatehouse_schemas::Event, mut f: impl FnMut(&str)) {
    use gatehouse_schemas::Event;
    match event {
        Event::UserCreated(c) => f(&c.username),
        Event::UserUpdated(u) => f(&u.username),
        Event::UserPasswordChanged { username, .. }
        | Event::UserPasswordExpired { username }
        | Event::UserPasswordUnexpired { username }
        | Event::UserLocked { username }
        | Event::UserUnlocked { username }
        | Event::UserDeleted { username }
        | Event::UserScimSaved { username, .. }
        | Event::UserGroupsChanged { username, .. } => f(username),
        Event::UserRenamed { from, to } => {
            f(from);
            f(to);
        }
        Event::GroupMembersChanged { added, removed, .. } => {
            added.iter().chain(removed).for_each(|u| f(u))
        }
        Event::GroupCreated(g) => g.members.iter().for_each(|u| f(u)),
        Event::UserReplicated { user, .. } => f(&user.username),
        Event::GroupReplicated { group, .. } => group.members.iter().for_each(|u| f(u)),
        Event::ReplicaRemoved { entity, name, .. } if entity == "user" => f(name),
        _ => {}
    }
}

impl WriterHandle {
    /// Run `work` for every batch, before it is acknowledged (see [`BeforeCommit`]).
    /// Whatever a command needs durable must have been handed over before the command
    /// was submitted.
    pub fn add_before_commit(&self, work: BeforeCommit) {
        self.before_commit
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(work);
    }

    /// The users changed since the last call (see [`ChangedUsers`]).
    pub fn user_changes(&self) -> &ChangedUsers {
        &self.user_changes
    }

    /// Submit a command and wait (asynchronously) until its events are durable and visible.
    pub async fn submit(
        &self,
        command: Command,
        ctx: CommandContext,
    ) -> Result<Committed, SubmitError> {
        let (reply, rx) = oneshot::channel();
        let msg = Message::Submit {
            command: Box::new(command),
            ctx,
            reply,
        };
        // The channel is bounded: when the writer is behind, this waits (back-pressure)
        // instead of queueing without limit. `send` blocks, so do it off the async thread
        // only when the channel is full.
        match self.tx.try_send(msg) {
            Ok(()) => {}
            Err(crossbeam_channel::TrySendError::Full(msg)) => {
                let tx = self.tx.clone();
                tokio::task::spawn_blocking(move || tx.send(msg))
                    .await
                    .map_err(|_| SubmitError::Unavailable)?
                    .map_err(|_| SubmitError::Unavailable)?;
            }
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => {
                return Err(SubmitError::Unavailable)
            }
        }
        rx.await.map_err(|_| SubmitError::Unavailable)?
    }

    /// Blocking variant for start-up code that runs outside the async runtime.
    pub fn submit_blocking(
        &self,
        command: Command,
        ctx: CommandContext,
    ) -> Result<Committed, SubmitError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Message::Submit {
                command: Box::new(command),
                ctx,
                reply,
            })
            .map_err(|_| SubmitError::Unavailable)?;
        rx.blocking_recv().map_err(|_| SubmitError::Unavailable)?
    }

    /// Append a backup's continuation of this log (see `Message::Import`).
    pub async fn import(
        &self,
        records: Vec<crate::log::RawEvent>,
    ) -> Result<Committed, SubmitError> {
        let (reply, rx) = oneshot::channel();
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || tx.send(Message::Import { records, reply }))
            .await
            .map_err(|_| SubmitError::Unavailable)?
            .map_err(|_| SubmitError::Unavailable)?;
        rx.await.map_err(|_| SubmitError::Unavailable)?
    }

    /// Ask the writer to finish what is queued, write a snapshot and stop.
    /// Ring `bell` after every commit that wrote events.
    pub fn add_doorbell(&self, bell: crossbeam_channel::Sender<()>) {
        self.doorbells
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(bell);
    }

    /// The envelopes of the latest commits, for the one follower that takes them (the
    /// webhook dispatcher).
    pub fn feed(&self) -> Arc<CommittedFeed> {
        self.feed.clone()
    }

    /// The position applied to the read models, to wait on.
    pub fn applied(&self) -> tokio::sync::watch::Receiver<u64> {
        self.applied.clone()
    }

    /// Several nodes: how many catch-ups have read the shared log to its end. A round
    /// that ends after another that ended after a moment began read everything
    /// committed before that moment — what a question "is this here yet" waits for,
    /// rather than for a change that, for a token revoked a while ago, never comes.
    pub fn caught_up_rounds(&self) -> tokio::sync::watch::Receiver<u64> {
        self.rounds.clone()
    }

    /// Several nodes share the log (see [`WriterHandle::shared`]).
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Ask the writer to read what other nodes appended to the shared log (no-op on a
    /// single node). At most one such request waits in the queue.
    pub fn nudge(&self) {
        nudge(&self.tx, &self.catch_up_queued);
    }

    /// Commands waiting in the queue (a metric).
    pub fn queue_len(&self) -> usize {
        self.tx.len()
    }

    pub fn shutdown(&self) {
        let (reply, rx) = std::sync::mpsc::channel();
        if self.tx.send(Message::Shutdown { reply }).is_ok() {
            let _ = rx.recv();
        }
    }
}

/// Queue a catch-up unless one is queued; false when the writer is gone.
fn nudge(tx: &crossbeam_channel::Sender<Message>, queued: &AtomicBool) -> bool {
    if queued.swap(true, Ordering::AcqRel) {
        return true;
    }
    match tx.try_send(Message::CatchUp) {
        Ok(()) => true,
        Err(e) => {
            queued.store(false, Ordering::Release);
            !e.is_disconnected()
        }
    }
}

/// Several nodes: wake the writer when another node appended (LISTEN/NOTIFY), and every
/// `poll` anyway (missed notifications, databases without LISTEN). It only rings: the
/// writer reads and applies, so followed events go through the same path as its own.
fn follow(
    mut pg: PgLog,
    tx: crossbeam_channel::Sender<Message>,
    queued: Arc<AtomicBool>,
    poll: Duration,
    stopped: Arc<AtomicBool>,
) {
    let mut listening = false;
    loop {
        if stopped.load(Ordering::Acquire) {
            return;
        }
        if !listening && pg.notify_supported() {
            listening = pg
                .client()
                .and_then(|c| {
                    c.batch_execute(&format!("LISTEN {}", crate::log::postgres::CHANNEL))
                        .map_err(|e| LogError::Database(e.to_string()))
                })
                .is_ok();
        }
        let mut broken = false;
        if listening {
            match pg.client() {
                Ok(client) => {
                    use postgres::fallible_iterator::FallibleIterator;
                    let waited = std::time::Instant::now();
                    let (failed, empty) = {
                        let mut n = client.notifications();
                        let first = n.timeout_iter(poll).next();
                        let mut failed = first.is_err();
                        // Take whatever else is already there: one catch-up covers them all.
                        loop {
                            match n.iter().next() {
                                Ok(Some(_)) => continue,
                                Ok(None) => break,
                                Err(_) => {
                                    failed = true;
                                    break;
                                }
                            }
                        }
                        (failed, matches!(first, Ok(None)))
                    };
                    // A connection PostgreSQL closed (a restart, `pg_terminate_backend`, an
                    // idle timeout, a pooler) answers the wait at once with nothing, and
                    // the client does not call itself closed: the loop spun, ringing the
                    // writer thousands of times a second (and, with PostgreSQL down, made
                    // as many connections). A wait that ends early with nothing is asked
                    // whether the connection still answers.
                    let early = empty && waited.elapsed() < poll / 2;
                    broken = failed
                        || client.is_closed()
                        || (early && client.is_valid(Duration::from_secs(5)).is_err());
                }
                Err(_) => broken = true,
            }
        } else {
            std::thread::sleep(poll);
        }
        if broken {
            listening = false;
            pg.drop_connection();
            std::thread::sleep(poll);
        }
        // The writer is gone (shutdown): so is the reason to follow.
        if !nudge(&tx, &queued) {
            return;
        }
    }
}

/// The shared log a writer appends to and follows.
pub struct SharedLog {
    pub log: PgLog,
    /// How often to look for other nodes' events when no notification came.
    pub poll: Duration,
    /// Whether to LISTEN for notifications (off: poll only).
    pub listen: bool,
}

/// A command waiting for the writer, and where its answer goes.
type Submission = (
    Box<Command>,
    CommandContext,
    oneshot::Sender<Result<Committed, SubmitError>>,
);
/// A command's answer.
type Outcome = Result<Committed, SubmitError>;

/// What became of a batch.
enum Appended {
    Done,
    /// Another node appended first; caught up, decide again.
    Conflict,
    /// Sent, commit unconfirmed: ask it again before deciding anything.
    InDoubt(Vec<RawEvent>),
    /// The shared log could not be reached, or failed before the commit: nothing was
    /// written (the writer's state is back at the read models); decide again later.
    NotWritten,
    /// Not written (the disk is full): the batch is refused, the writer goes on.
    Refused,
}

pub struct Writer {
    log: EventLog,
    /// The shared log of several nodes (`--store postgres://…`): the authority. `log` is
    /// then this node's copy of it, always a prefix of it.
    shared_log: Option<PgLog>,
    applied: tokio::sync::watch::Sender<u64>,
    rounds: tokio::sync::watch::Sender<u64>,
    catch_up_queued: Arc<AtomicBool>,
    /// Set when the writer stops: the follower stops too.
    follower_stop: Arc<AtomicBool>,
    state: State,
    shared: Arc<RwLock<State>>,
    snapshot_every: u64,
    since_snapshot: u64,
    /// Where the log file ended when the last snapshot was taken (see `snapshot_due`).
    snapshot_end: u64,
    /// The snapshot being written in the background, if any.
    snapshotting: Option<std::thread::JoinHandle<()>>,
    /// Consumers of the committed stream (webhooks, federation) to wake after a commit.
    /// A doorbell, not the data: they read the events from the log at their own cursor,
    /// so a full channel loses nothing.
    doorbells: Arc<RwLock<Vec<crossbeam_channel::Sender<()>>>>,
    /// Each commit's envelopes, which the webhook dispatcher takes instead of reading
    /// them from the log when they are there.
    feed: Arc<CommittedFeed>,
    user_changes: Arc<ChangedUsers>,
    before_commit: Arc<RwLock<Vec<BeforeCommit>>>,
    /// The thread that runs `before_commit` for the batches (started when first needed).
    before_thread: Option<crossbeam_channel::Sender<BeforeReply>>,
    metrics: Arc<crate::metrics::Metrics>,
    /// When a full disk was last logged (once every 10 s, not once a batch).
    disk_full_said: Option<Instant>,
    /// Since when the shared log has not taken a batch (`None` while it does). A batch
    /// queued behind one that waited for it gets what is left of that wait, not a fresh
    /// one: the commands in it were sent during the outage, and a client is told within
    /// `SHARED_RETRY` of its request, not twice that.
    outage_since: Option<Instant>,
}

/// A read of the published read models, taken with [`read_models`].
pub struct ReadGuard<'a> {
    guard: std::sync::RwLockReadGuard<'a, State>,
}

impl std::ops::Deref for ReadGuard<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.guard
    }
}

#[cfg(debug_assertions)]
thread_local! {
    /// Reads of the published read models this thread holds (debug builds only).
    static READS_HELD: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Read the published read models. std's `RwLock` lets a waiting writer go first, so a
/// second read on a thread that already holds one waits for the writer, which waits for
/// the first: a deadlock, and only while a write is being published (a revoke by value
/// hung a node so). The same holds for a read held across an `.await` while another
/// request on the same worker reads. Debug builds (the tests) refuse the second read
/// outright, so that any test reaching such a path finds it.
pub fn read_models(lock: &RwLock<State>) -> ReadGuard<'_> {
    #[cfg(debug_assertions)]
    READS_HELD.with(|held| {
        assert_eq!(
            held.get(),
            0,
            "a second read of the read models on a thread that holds one (deadlocks when the writer waits)"
        );
        held.set(1);
    });
    ReadGuard {
        guard: lock.read().unwrap_or_else(|p| p.into_inner()),
    }
}

impl Drop for ReadGuard<'_> {
    fn drop(&mut self) {
        #[cfg(debug_assertions)]
        READS_HELD.with(|held| held.set(0));
    }
}

/// Where the before-commit thread answers for one batch.
type BeforeReply = crossbeam_channel::Sender<Result<(), String>>;
/// A batch's before-commit work under way: its answer comes here.
type BeforeRun = crossbeam_channel::Receiver<Result<(), String>>;

/// See `Writer::snapshot_due`: `events` and `log_bytes` written since the last snapshot,
/// whose size was `last_size` (0: none yet in this process).
fn snapshot_due(events: u64, every: u64, last_size: u64, log_bytes: u64) -> bool {
    events >= every
        && (last_size < PROPORTIONAL_SNAPSHOTS_FROM
            || log_bytes >= last_size.saturating_mul(LOG_PER_SNAPSHOT_BYTE))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Writer {
    /// Start the writer thread. `shared` must hold the state at the log's head; the
    /// writer makes its own copy on its thread, so the server can start serving reads
    /// while a large state is still being copied (writes wait for it in the queue).
    pub fn spawn(
        log: EventLog,
        shared: Arc<RwLock<State>>,
        snapshot_every: u64,
        queue: usize,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> (WriterHandle, std::thread::JoinHandle<()>) {
        Self::spawn_shared(log, None, shared, snapshot_every, queue, metrics)
    }

    /// [`spawn`](Self::spawn), appending to a shared log first when there is one (and
    /// then following it: `follow_poll` is the polling interval).
    pub fn spawn_shared(
        log: EventLog,
        shared_log: Option<SharedLog>,
        shared: Arc<RwLock<State>>,
        snapshot_every: u64,
        queue: usize,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> (WriterHandle, std::thread::JoinHandle<()>) {
        let (tx, rx) = crossbeam_channel::bounded(queue);
        let doorbells: Arc<RwLock<Vec<crossbeam_channel::Sender<()>>>> = Default::default();
        let bells = doorbells.clone();
        let user_changes: Arc<ChangedUsers> = Default::default();
        let changes = user_changes.clone();
        let before_commit: Arc<RwLock<Vec<BeforeCommit>>> = Default::default();
        let before = before_commit.clone();
        let feed: Arc<CommittedFeed> = Default::default();
        let fed = feed.clone();
        let (applied, applied_rx) = tokio::sync::watch::channel(log.head_seq());
        let (rounds, rounds_rx) = tokio::sync::watch::channel(0u64);
        let catch_up_queued = Arc::new(AtomicBool::new(false));
        let queued = catch_up_queued.clone();
        let is_shared = shared_log.is_some();
        let (shared_log, follower) = match shared_log {
            None => (None, None),
            Some(SharedLog { log, poll, listen }) => {
                let follower = log.sibling().listening(listen);
                (Some(log), Some((follower, poll)))
            }
        };
        let follower_stop = Arc::new(AtomicBool::new(false));
        if let Some((follower, poll)) = follower {
            let stopped = follower_stop.clone();
            let tx = tx.clone();
            let queued = catch_up_queued.clone();
            std::thread::Builder::new()
                .name("gatehouse-follower".into())
                .spawn(move || {
                    let _alive = crate::vitals::Alive::new(
                        "the shared log's follower: other nodes' writes are not seen here",
                    );
                    follow(follower, tx, queued, poll, stopped)
                })
                .expect("spawn the follower thread");
        }
        let thread = std::thread::Builder::new()
            .name("gatehouse-writer".into())
            .spawn(move || {
                let _alive = crate::vitals::Alive::new("the writer: every write is refused");
                // Ahead of the HTTP workers where its batches wait only on this machine's
                // disk: see `background::raise_priority`. With a shared log they wait on
                // PostgreSQL's backends, at normal priority: three nodes' writers ahead of
                // them on one machine wrote a quarter fewer a second (5.5k against 7.4k).
                if shared_log.is_some() {
                    tracing::debug!("writer priority left as it is (a shared log)");
                } else if crate::background::raise_priority() {
                    tracing::debug!(
                        nice = crate::background::WRITER_NICENESS,
                        "writer priority raised"
                    );
                } else {
                    tracing::debug!(
                        "writer priority left as it is (no CAP_SYS_NICE, RLIMIT_NICE too low)"
                    );
                }
                let state = shared.read().unwrap_or_else(|p| p.into_inner()).clone();
                debug_assert_eq!(state.seq, log.head_seq());
                // The events since the snapshot the start loaded (which the metrics
                // hold; 0: none), not since this start: a start that replayed a long
                // tail snapshots it (at the latest when it stops), and the next start
                // does not replay it again.
                let loaded = metrics.snapshot_seq.load(Ordering::Relaxed);
                let since_snapshot = log.head_seq().saturating_sub(loaded);
                let writer = Writer {
                    log,
                    shared_log,
                    applied,
                    rounds,
                    catch_up_queued: queued,
                    follower_stop,
                    state,
                    shared,
                    snapshot_every: snapshot_every.max(1),
                    since_snapshot,
                    snapshot_end: 0,
                    snapshotting: None,
                    doorbells: bells,
                    feed: fed,
                    user_changes: changes,
                    before_commit: before,
                    before_thread: None,
                    metrics,
                    disk_full_said: None,
                    outage_since: None,
                };
                writer.run(rx)
            })
            .expect("spawn the writer thread");
        (
            WriterHandle {
                tx,
                doorbells,
                applied: applied_rx,
                rounds: rounds_rx,
                catch_up_queued,
                user_changes,
                before_commit,
                feed,
                shared: is_shared,
            },
            thread,
        )
    }

    fn run(mut self, rx: crossbeam_channel::Receiver<Message>) {
        // What other nodes wrote while this one was starting.
        self.catch_up();
        let mut shutdown_reply = None;
        let mut load = crate::background::WriterLoad::new();
        while shutdown_reply.is_none() {
            let Ok(first) = rx.recv() else { break };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            // Not on a shared log: as its priority (`spawn_shared`), measured on the
            // local log only.
            if self.shared_log.is_none() {
                load.batch(batch.len());
            }
            let mut submissions = Vec::with_capacity(batch.len());
            let mut catch_up = false;
            for m in batch {
                match m {
                    Message::Submit {
                        command,
                        ctx,
                        reply,
                    } => submissions.push((command, ctx, reply)),
                    Message::Shutdown { reply } => shutdown_reply = Some(reply),
                    Message::Import { records, reply } => {
                        // Everything submitted before it is committed first, in order.
                        self.commit(std::mem::take(&mut submissions));
                        let _ = reply.send(self.import(records));
                    }
                    Message::CatchUp => {
                        self.catch_up_queued.store(false, Ordering::Release);
                        catch_up = true;
                    }
                }
            }
            self.commit(submissions);
            if catch_up {
                self.catch_up();
            }
            if self.snapshot_due() {
                self.snapshot_in_background();
            }
        }
        if let Some(t) = self.snapshotting.take() {
            let _ = t.join();
        }
        if self.since_snapshot > 0 {
            self.snapshot();
        }
        self.follower_stop.store(true, Ordering::Release);
        tracing::info!(seq = self.state.seq, "writer stopped");
        if let Some(reply) = shutdown_reply {
            let _ = reply.send(());
        }
    }

    fn commit(&mut self, submissions: Vec<Submission>) {
        if submissions.is_empty() {
            return;
        }
        let mut work = Vec::with_capacity(submissions.len());
        let mut senders = Vec::with_capacity(submissions.len());
        for (command, ctx, reply) in submissions {
            work.push((command, ctx));
            senders.push(reply);
        }
        // What the batch's commands need durable besides their events, flushed on
        // another thread while this one decides, and before the log is written.
        let before_commit = self.before_commit.clone();
        let due = before_commit
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|b| (b.pending)());
        let before = due.then(|| self.start_before_commit());
        self.commit_batch(work, senders, before);
    }

    /// Hand this batch's before-commit work to the thread that does it (one thread for
    /// the writer's life: a thread spawned per batch cost more CPU than the work). Each
    /// batch has its own answer channel, so a batch that is never waited for (answered
    /// 503) cannot hand its answer to the next one.
    fn start_before_commit(&mut self) -> BeforeRun {
        let (reply, run) = crossbeam_channel::bounded(1);
        let jobs = self.before_thread.get_or_insert_with(|| {
            let (jobs, queue) = crossbeam_channel::unbounded::<BeforeReply>();
            let before_commit = self.before_commit.clone();
            std::thread::Builder::new()
                .name("gatehouse-keys".into())
                .spawn(move || {
                    // Every batch with keys to make durable waits for this thread: it runs
                    // at the writer's priority (inherited: the writer spawns it).
                    // Ends when the writer (and with it the sender) is gone.
                    while let Ok(reply) = queue.recv() {
                        let result = before_commit
                            .read()
                            .unwrap_or_else(|p| p.into_inner())
                            .iter()
                            .try_for_each(|b| (b.work)());
                        let _ = reply.send(result);
                    }
                })
                .expect("spawn the before-commit thread");
            jobs
        });
        // A send fails only when the thread is gone (it panicked): `run` then reports
        // a disconnection, and the batch stops the process as a failed flush does.
        let _ = jobs.send(reply);
        run
    }

    fn commit_batch(
        &mut self,
        work: Vec<(Box<Command>, CommandContext)>,
        senders: Vec<oneshot::Sender<Outcome>>,
        mut before: Option<BeforeRun>,
    ) {
        let now = Instant::now();
        let deadline = self
            .outage_since
            .map_or(now + SHARED_RETRY, |since| (since + SHARED_RETRY).max(now));
        let mut pause = Duration::from_millis(10);
        // A batch sent to the shared log whose commit was not confirmed.
        let mut in_doubt: Option<(Vec<Envelope>, Vec<RawEvent>, Vec<Outcome>)> = None;
        loop {
            let (envelopes, results, outcome) = match in_doubt.take() {
                Some((envelopes, records, results)) => {
                    let outcome = self.resolve(&envelopes, &records);
                    (envelopes, results, outcome)
                }
                None => {
                    let (envelopes, results) = self.decide_all(&work);
                    // The batch's keys are durable before its events are: a key flush
                    // that failed after the log's (a full disk) left events in the log,
                    // never answered, whose personal data no key could open, and
                    // stopped the process. Nothing is written then: the batch is
                    // answered 503 like a refused log write. (Usually there is nothing
                    // to wait for: keys come from a pool flushed ahead.)
                    if let Some(b) = before.take() {
                        let failed = match b.recv() {
                            Ok(Ok(())) => None,
                            Ok(Err(e)) => Some(e),
                            Err(_) => Some("the key thread is gone".to_string()),
                        };
                        if let Some(e) = failed {
                            tracing::error!(error = %e, "cannot make a batch's keys durable; refusing the batch (nothing written)");
                            // The batch was applied to the writer's state as it was
                            // decided: back to the committed state.
                            self.rewind();
                            let full = e.contains("os error 28") || e.contains("No space");
                            for reply in senders {
                                let _ = reply.send(Err(if full {
                                    SubmitError::DiskFull
                                } else {
                                    SubmitError::Unavailable
                                }));
                            }
                            return;
                        }
                    }
                    let flush = Instant::now();
                    let outcome = self.append(&envelopes);
                    self.metrics
                        .writer_flush_seconds
                        .observe(flush.elapsed().as_secs_f64());
                    self.metrics
                        .writer_batch_commands
                        .observe(work.len() as f64);
                    (envelopes, results, outcome)
                }
            };
            match &outcome {
                Appended::Done | Appended::Conflict | Appended::Refused => self.outage_since = None,
                Appended::InDoubt(_) | Appended::NotWritten => {
                    self.outage_since.get_or_insert_with(Instant::now);
                }
            }
            match outcome {
                Appended::Done => {
                    self.metrics.writer_events.inc_by(envelopes.len() as u64);
                    self.publish(envelopes);
                    for (reply, result) in senders.into_iter().zip(results) {
                        let _ = reply.send(result);
                    }
                    return;
                }
                Appended::Conflict => {
                    // Another node got there first: its events are applied now (through
                    // the same `State::apply`), and the commands are decided again
                    // against the state that includes them.
                    self.metrics.writer_conflicts.inc();
                    continue;
                }
                Appended::InDoubt(records) if Instant::now() < deadline => {
                    in_doubt = Some((envelopes, records, results));
                }
                Appended::NotWritten if Instant::now() < deadline => {}
                Appended::NotWritten => {
                    tracing::error!(
                        "the shared log stayed unreachable; answering 503 (nothing written)"
                    );
                    self.catch_up();
                    for reply in senders {
                        let _ = reply.send(Err(SubmitError::SharedLogUnreachable));
                    }
                    return;
                }
                Appended::Refused => {
                    for reply in senders {
                        let _ = reply.send(Err(SubmitError::DiskFull));
                    }
                    return;
                }
                Appended::InDoubt(_) => {
                    tracing::error!("the shared log stayed unavailable; answering 503");
                    // The batch may still turn up in the shared log: then it comes back
                    // through catch-up like any other node's events.
                    self.rewind();
                    self.catch_up();
                    for reply in senders {
                        let _ = reply.send(Err(SubmitError::SharedLogUnavailable));
                    }
                    return;
                }
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(500));
            // The database may have come back with other nodes' events.
            if in_doubt.is_none() {
                self.catch_up();
            }
        }
    }

    /// Decide every command against the writer's own state, in order (each sees the
    /// ones before it), applying their events to that state as it goes.
    fn decide_all(
        &mut self,
        work: &[(Box<Command>, CommandContext)],
    ) -> (Vec<Envelope>, Vec<Outcome>) {
        let origin = self.state.service_id.clone().unwrap_or_default();
        let mut envelopes: Vec<Envelope> = Vec::new();
        let mut results = Vec::with_capacity(work.len());
        let mut time = now_ms().max(self.log.head_time_ms());
        for (command, ctx) in work {
            match decide(&self.state, command) {
                Ok(events) => {
                    let count = events.len();
                    for event in events {
                        let origin = match &event {
                            // The first event names the service that writes it.
                            gatehouse_schemas::Event::ServiceCreated { service_id } => {
                                service_id.clone()
                            }
                            // A federated change keeps the service id it was made at.
                            e => match e.replicated_origin() {
                                Some(o) => o.to_string(),
                                None => self
                                    .state
                                    .service_id
                                    .clone()
                                    .unwrap_or_else(|| origin.clone()),
                            },
                        };
                        time = time.max(self.state.time_ms);
                        let env = Envelope {
                            seq: self.state.seq + 1,
                            time_ms: time,
                            actor: ctx.actor.clone(),
                            origin,
                            request_id: ctx.request_id.clone(),
                            event,
                        };
                        self.state.apply(&env);
                        envelopes.push(env);
                    }
                    results.push(Ok(Committed {
                        seq: self.state.seq,
                        events: count,
                    }));
                }
                Err(e) => results.push(Err(SubmitError::Domain(e))),
            }
        }
        (envelopes, results)
    }

    /// Make `envelopes` durable: in the shared log first when there is one (then in this
    /// node's copy), else in the local log.
    fn append(&mut self, envelopes: &[Envelope]) -> Appended {
        if envelopes.is_empty() {
            // On a shared log, a batch that writes nothing (refused, or no change) was
            // decided on this node's copy, which may lag: a group created on another node
            // a moment ago was "not found" here, a refresh token "unknown". Decided again
            // when the shared log holds more than the copy (one query; each round applies
            // something, so this ends).
            if self.shared_log.is_some() {
                let before = self.log.head_seq();
                let ahead = self
                    .shared_log
                    .as_mut()
                    .is_some_and(|pg| pg.head().is_ok_and(|(head, _)| head > before));
                if ahead {
                    self.rewind();
                    self.catch_up();
                    if self.log.head_seq() > before {
                        return Appended::Conflict;
                    }
                }
            }
            return Appended::Done;
        }
        let Some(pg) = self.shared_log.as_mut() else {
            return match self.log.append(envelopes) {
                Ok(()) => Appended::Done,
                // Nothing of the batch is in the log: refused (503), and the server goes
                // on serving reads and takes writes again when there is room (it stopped).
                Err(LogError::NoSpace(e)) => {
                    let now = Instant::now();
                    if self
                        .disk_full_said
                        .is_none_or(|t| now.duration_since(t) > Duration::from_secs(10))
                    {
                        tracing::error!(error = %e, "the disk is full: refusing writes (503) until there is room");
                        self.disk_full_said = Some(now);
                    }
                    self.rewind();
                    Appended::Refused
                }
                Err(e) => self.fail_stop(&e),
            };
        };
        let mut prev = self.log.head_hash();
        let records: Vec<RawEvent> = envelopes
            .iter()
            .map(|env| {
                let bytes = gatehouse_schemas::encode(env);
                let hash = crate::log::chain_hash(&prev, &bytes);
                prev = hash;
                RawEvent {
                    seq: env.seq,
                    hash,
                    bytes,
                }
            })
            .collect();
        match pg.append(self.log.head_seq(), &self.log.head_hash(), &records) {
            Ok(()) => {
                self.append_local(envelopes);
                Appended::Done
            }
            Err(AppendError::Conflict) => {
                self.rewind();
                self.catch_up();
                Appended::Conflict
            }
            Err(AppendError::Unavailable(e)) => {
                tracing::warn!(error = %e, "cannot append to the shared log; retrying");
                self.resolve(envelopes, &records)
            }
            Err(AppendError::NotWritten(e)) => {
                tracing::warn!(error = %e, "cannot reach the shared log (nothing written); retrying");
                self.rewind();
                Appended::NotWritten
            }
            Err(AppendError::Log(e)) => self.fail_stop(&e),
        }
    }

    /// Find out whether a batch whose commit was not confirmed is in the shared log.
    fn resolve(&mut self, envelopes: &[Envelope], records: &[RawEvent]) -> Appended {
        let pg = self.shared_log.as_mut().expect("only with a shared log");
        match pg.resolve(records) {
            Some(true) => {
                self.append_local(envelopes);
                Appended::Done
            }
            Some(false) => {
                self.rewind();
                self.catch_up();
                Appended::Conflict
            }
            None => Appended::InDoubt(records.to_vec()),
        }
    }

    /// The shared log has the events: this node's copy gets them too.
    fn append_local(&mut self, envelopes: &[Envelope]) {
        if let Err(e) = self.log.append(envelopes) {
            self.fail_stop(&e);
        }
    }

    /// Drop the writer's events that did not become durable: back to the read models,
    /// which only ever hold what is in the log.
    fn rewind(&mut self) {
        self.state = self
            .shared
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
    }

    /// Apply what other nodes appended to the shared log, in order, chain checked. The
    /// writer's state must not be ahead of the read models here (between batches, or
    /// after `rewind`).
    fn catch_up(&mut self) {
        loop {
            let Some(pg) = self.shared_log.as_mut() else {
                return;
            };
            let rows = match pg.read_after(self.log.head_seq(), self.log.head_hash(), 1000) {
                Ok(rows) => rows,
                Err(LogError::Database(e)) => {
                    // Followers ask often; the append path warns when it matters.
                    tracing::debug!(error = %e, "cannot read the shared log; will try again");
                    return;
                }
                Err(e) => self.fail_stop(&e),
            };
            if rows.is_empty() {
                self.rounds.send_modify(|r| *r += 1);
                return;
            }
            if let Err(e) = self.log.append_raw(&rows) {
                self.fail_stop(&e);
            }
            let mut envelopes = Vec::with_capacity(rows.len());
            for r in &rows {
                match gatehouse_schemas::decode(&r.bytes) {
                    Ok(env) => envelopes.push(env),
                    // append_raw decoded every one of them already.
                    Err(e) => self.fail_stop(&LogError::Undecodable {
                        seq: r.seq,
                        reason: e.to_string(),
                    }),
                }
            }
            for env in &envelopes {
                self.state.apply(env);
            }
            self.publish(envelopes);
        }
    }

    /// Durable events become visible: the read models become the writer's state, the
    /// followers of the committed stream rung, the applied position announced.
    ///
    /// The writer's state is the read models plus exactly `envelopes` (applied when they
    /// were decided, caught up or imported), so the read models are not folded a second
    /// time: they are replaced by a clone of the writer's state, which shares with it
    /// everything but the path to what the next batch changes (see
    /// `gatehouse_projections::shared`). One copy of the read models, not two.
    fn publish(&mut self, envelopes: Vec<Envelope>) {
        if envelopes.is_empty() {
            return;
        }
        debug_assert_eq!(envelopes.last().map(|e| e.seq), Some(self.state.seq));
        let published = self.state.clone();
        let replaced = {
            let mut shared = self.shared.write().unwrap_or_else(|p| p.into_inner());
            debug_assert_eq!(shared.seq + envelopes.len() as u64, published.seq);
            let replaced = std::mem::replace(&mut *shared, published);
            // Under the write lock: see `ChangedUsers`.
            self.user_changes.note(&envelopes);
            replaced
        };
        // Outside the lock: frees what only the previous read models held.
        drop(replaced);
        self.since_snapshot += envelopes.len() as u64;
        self.applied.send_replace(self.state.seq);
        // Before the doorbell, so that the dispatcher it wakes finds them.
        self.feed.offer(envelopes);
        self.ring();
    }

    /// The writer's state may now hold events that are not durable, or the log does not
    /// verify: nothing it decides from here could be trusted. A restart recovers from the
    /// log.
    fn fail_stop(&self, e: &LogError) -> ! {
        match e.position() {
            Some(seq) => {
                tracing::error!(error = %e, position = seq, "the event log is broken; stopping")
            }
            None => tracing::error!(error = %e, "cannot append to the event log; stopping"),
        }
        eprintln!("gatehouse: {e}; stopping");
        std::process::exit(70);
    }

    fn ring(&self) {
        for bell in self
            .doorbells
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = bell.try_send(());
        }
    }

    fn import(&mut self, records: Vec<crate::log::RawEvent>) -> Result<Committed, SubmitError> {
        if let Some(pg) = self.shared_log.as_mut() {
            // The shared log first: the backup must continue it, and it is the authority.
            let (after, prev) = (self.log.head_seq(), self.log.head_hash());
            if let Err(e) = pg.append(after, &prev, &records) {
                tracing::warn!(error = %e, "backup import refused by the shared log");
                return Err(match e {
                    AppendError::Unavailable(_) => SubmitError::SharedLogUnavailable,
                    AppendError::NotWritten(_) => SubmitError::SharedLogUnreachable,
                    e => SubmitError::Domain(DomainError::Conflict(format!(
                        "the backup does not continue this log: {e}"
                    ))),
                });
            }
        }
        if let Err(e) = self.log.append_raw(&records) {
            tracing::warn!(error = %e, "backup import refused");
            return Err(SubmitError::Domain(DomainError::Conflict(format!(
                "the backup does not continue this log: {e}"
            ))));
        }
        let mut envelopes = Vec::with_capacity(records.len());
        for r in &records {
            match gatehouse_schemas::decode(&r.bytes) {
                Ok(env) => envelopes.push(env),
                Err(e) => {
                    // append_raw decoded every one of them already.
                    tracing::error!(error = %e, "an imported event stopped decoding; stopping");
                    std::process::exit(70);
                }
            }
        }
        for env in &envelopes {
            self.state.apply(env);
        }
        let events = envelopes.len();
        self.publish(envelopes);
        Ok(Committed {
            seq: self.state.seq,
            events,
        })
    }

    /// Encoding and storing a large state takes long; the writer only pays for a copy and
    /// goes on committing while another thread writes it. One snapshot at a time: when
    /// the previous one is still being written, try again after the next batch.
    /// Every `snapshot-every` events; and once snapshots are large, only when the log has
    /// grown since the last one by at least twice that snapshot's size. A snapshot costs in
    /// proportion to the state, not to the writes: taken every N events, a large state's
    /// snapshots were a sixth of the server's CPU during a SCIM create run (two events a
    /// request), and a run without them was 17 % faster. Proportional, their cost per
    /// write is bounded, and a restart after a crash replays a tail at most twice the size
    /// of the snapshot it starts from (a clean stop writes a snapshot anyway). Twice, not
    /// once: replaying a byte of log costs a start-up far less than writing a byte of
    /// snapshot costs a running server (1M users, a 165 MB snapshot: ready in 2.0–2.2 s
    /// at the head, 2.7–2.9 s with a 1.2-times tail, 2.8–2.9 s with a 2.3-times one), while
    /// with the state growing under writes the snapshots written nearly back to back took
    /// a quarter of a group create's CPU (docs/benchmarks.md).
    fn snapshot_due(&self) -> bool {
        snapshot_due(
            self.since_snapshot,
            self.snapshot_every,
            self.log.last_snapshot_size() as u64,
            self.log.end_offset().saturating_sub(self.snapshot_end),
        )
    }

    fn snapshot_in_background(&mut self) {
        if self.snapshotting.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        self.snapshot_end = self.log.end_offset();
        let state = self.state.clone();
        let hash = self.log.head_hash();
        let store = self.log.snapshot_store();
        let metrics = self.metrics.clone();
        self.since_snapshot = 0;
        self.snapshotting = Some(
            std::thread::Builder::new()
                .name("gatehouse-snapshot".into())
                .spawn(move || {
                    crate::background::lower_priority();
                    match store.write(&state, hash) {
                        Ok(()) => {
                            metrics.snapshot_taken(state.seq);
                            tracing::debug!(seq = state.seq, "snapshot written")
                        }
                        // A missing snapshot only makes the next start slower; keep serving.
                        Err(e) => tracing::warn!(error = %e, "cannot write a snapshot"),
                    }
                })
                .expect("spawn the snapshot thread"),
        );
    }

    fn snapshot(&mut self) {
        match self.log.write_snapshot(&self.state) {
            Ok(()) => {
                self.since_snapshot = 0;
                self.metrics.snapshot_taken(self.state.seq);
                tracing::debug!(seq = self.state.seq, "snapshot written");
            }
            // A missing snapshot only makes the next start slower; keep serving.
            Err(e) => tracing::warn!(error = %e, "cannot write a snapshot"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small snapshots every `snapshot-every` events; a large one only once the log has
    /// grown by twice its size since it was taken.
    #[test]
    fn large_snapshots_wait_for_twice_their_size_of_log() {
        let big = 64 << 20;
        assert!(!snapshot_due(99, 100, 0, 0));
        assert!(snapshot_due(100, 100, 0, 0));
        assert!(snapshot_due(100, 100, 1 << 20, 1));
        assert!(!snapshot_due(1_000_000, 100, big, big));
        assert!(!snapshot_due(1_000_000, 100, big, 2 * big - 1));
        assert!(snapshot_due(1_000_000, 100, big, 2 * big));
        assert!(!snapshot_due(99, 100, big, 4 * big));
        assert!(snapshot_due(1_000_000, 100, u64::MAX, u64::MAX));
    }
    use std::sync::Mutex;

    /// A writer on a new log in a temporary directory (kept while the first is held),
    /// with a queue of `queue` commands.
    fn fresh_writer(
        queue: usize,
    ) -> (tempfile::TempDir, WriterHandle, std::thread::JoinHandle<()>) {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path()).unwrap();
        let shared = Arc::new(RwLock::new(State::default()));
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let (handle, thread) = Writer::spawn(log, shared, 1_000_000, queue, metrics);
        (dir, handle, thread)
    }

    /// The writer thread goes under `SCHED_BATCH` while its batches are large and back
    /// when they are small (`background::WriterLoad`). Large batches are made by holding
    /// the writer in a batch (its before-commit question waits on a gate) while forty
    /// commands queue behind it.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_writer_yields_while_many_commands_wait() {
        use std::sync::Condvar;
        let (_dir, handle, thread) = fresh_writer(256);
        // The gate: (closed, the writer waits at it); and the policy of each batch.
        let gate = Arc::new((Mutex::new((false, false)), Condvar::new()));
        let policies: Arc<Mutex<Vec<bool>>> = Default::default();
        let (g, seen) = (gate.clone(), policies.clone());
        handle.add_before_commit(BeforeCommit {
            pending: Box::new(move || {
                seen.lock()
                    .unwrap()
                    .push(crate::background::under_batch_scheduling());
                let (lock, turn) = &*g;
                let mut state = lock.lock().unwrap();
                state.1 = true;
                turn.notify_all();
                while state.0 {
                    state = turn.wait(state).unwrap();
                }
                state.1 = false;
                false
            }),
            work: Box::new(|| Ok(())),
        });
        let ctx = CommandContext {
            actor: "test".into(),
            request_id: "r".into(),
        };
        let command = |i: usize| Command::SetAnonymousAccess {
            enabled: i % 2 == 0,
        };
        let (lock, turn) = &*gate;
        for round in 0..10 {
            lock.lock().unwrap().0 = true;
            let first = {
                let (h, c) = (handle.clone(), ctx.clone());
                std::thread::spawn(move || h.submit_blocking(command(round), c))
            };
            let mut state = lock.lock().unwrap();
            while !state.1 {
                state = turn.wait(state).unwrap();
            }
            drop(state);
            let queued: Vec<_> = (0..40)
                .map(|i| {
                    let (h, c) = (handle.clone(), ctx.clone());
                    std::thread::spawn(move || h.submit_blocking(command(i), c))
                })
                .collect();
            while handle.tx.len() < 40 {
                std::thread::sleep(Duration::from_millis(1));
            }
            lock.lock().unwrap().0 = false;
            turn.notify_all();
            first.join().unwrap().unwrap();
            for q in queued {
                q.join().unwrap().unwrap();
            }
            if policies.lock().unwrap().last() == Some(&true) {
                break;
            }
        }
        let seen = policies.lock().unwrap().clone();
        assert_eq!(seen.last(), Some(&true), "batches of forty: {seen:?}");
        for i in 0..30 {
            handle.submit_blocking(command(i), ctx.clone()).unwrap();
        }
        let seen = policies.lock().unwrap().clone();
        assert_eq!(seen.last(), Some(&false), "then batches of one: {seen:?}");
        drop(handle);
        thread.join().unwrap();
    }

    /// The before-commit work of every batch runs on one thread that lives as long as
    /// the writer (not a thread spawned per batch), and a batch is answered only after
    /// its work ran.
    #[test]
    fn before_commit_work_runs_on_one_thread_for_every_batch() {
        let (_dir, handle, thread) = fresh_writer(16);
        // Which thread ran each batch's work (its id, name and priority), and the
        // priority of the writer's thread (which asks whether work is pending).
        type Runs = Vec<(std::thread::ThreadId, Option<String>, i32)>;
        let ran: Arc<Mutex<Runs>> = Default::default();
        let seen = ran.clone();
        let writer_nice: Arc<Mutex<Vec<i32>>> = Default::default();
        let asked = writer_nice.clone();
        handle.add_before_commit(BeforeCommit {
            pending: Box::new(move || {
                asked
                    .lock()
                    .unwrap()
                    .push(crate::background::current_niceness().unwrap());
                true
            }),
            work: Box::new(move || {
                let t = std::thread::current();
                seen.lock().unwrap().push((
                    t.id(),
                    t.name().map(str::to_string),
                    crate::background::current_niceness().unwrap(),
                ));
                Ok(())
            }),
        });
        let ctx = CommandContext {
            actor: "test".into(),
            request_id: "r".into(),
        };
        for i in 0..5 {
            let _ = handle.submit_blocking(
                Command::SetAnonymousAccess {
                    enabled: i % 2 == 0,
                },
                ctx.clone(),
            );
            assert_eq!(
                ran.lock().unwrap().len(),
                i + 1,
                "answered before its work ran"
            );
        }
        let ran = ran.lock().unwrap().clone();
        assert!(
            ran.iter().all(|r| r == &ran[0]),
            "one thread for every batch: {ran:?}"
        );
        assert_eq!(ran[0].1.as_deref(), Some("gatehouse-keys"));
        // Both ahead of the HTTP workers where the process may raise them (never lowered).
        let own = crate::background::current_niceness().unwrap();
        let raised = if crate::background::may_raise_priority() {
            own.min(crate::background::WRITER_NICENESS)
        } else {
            own
        };
        assert_eq!(ran[0].2, raised, "the before-commit thread's priority");
        let writer_nice = writer_nice.lock().unwrap().clone();
        assert!(!writer_nice.is_empty());
        assert!(
            writer_nice.iter().all(|n| *n == raised),
            "the writer's priority: {writer_nice:?}"
        );
        drop(handle);
        thread.join().unwrap();
    }
}

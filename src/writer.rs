//! The single writer: the only code that appends to the log.
//!
//! It owns the order of the log. Commands arrive on a bounded crossbeam channel; the
//! writer takes every command that is waiting (up to [`MAX_BATCH`]), decides each against
//! its own copy of the state (so a later command in the batch sees the earlier ones),
//! appends all their events with **one** flush (group commit), then applies them to the
//! shared read models and only then acknowledges. So a 2xx means "on disk", and a client
//! that reads after its write always sees it.
//!
//! Why two copies of the state: the batch is decided before it is durable, and readers
//! must never see events that could still be lost. The writer's copy runs ahead by at
//! most one batch; the shared copy only ever holds flushed events.

use crate::domain::{decide, Command, DomainError};
use crate::log::EventLog;
use gatehouse_projections::State;
use gatehouse_schemas::Envelope;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// At most this many commands share one flush. Large enough to amortise the fsync,
/// small enough that a batch's latency stays in the low milliseconds.
pub const MAX_BATCH: usize = 1024;

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
}

enum Message {
    Submit {
        command: Command,
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
}

/// The handle the HTTP layer holds. Cheap to clone.
#[derive(Clone)]
pub struct WriterHandle {
    tx: crossbeam_channel::Sender<Message>,
    doorbells: Arc<RwLock<Vec<crossbeam_channel::Sender<()>>>>,
}

impl WriterHandle {
    /// Submit a command and wait (asynchronously) until its events are durable and visible.
    pub async fn submit(
        &self,
        command: Command,
        ctx: CommandContext,
    ) -> Result<Committed, SubmitError> {
        let (reply, rx) = oneshot::channel();
        let msg = Message::Submit {
            command,
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
                command,
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

pub struct Writer {
    log: EventLog,
    state: State,
    shared: Arc<RwLock<State>>,
    snapshot_every: u64,
    since_snapshot: u64,
    /// The snapshot being written in the background, if any.
    snapshotting: Option<std::thread::JoinHandle<()>>,
    /// Consumers of the committed stream (webhooks, federation) to wake after a commit.
    /// A doorbell, not the data: they read the events from the log at their own cursor,
    /// so a full channel loses nothing.
    doorbells: Arc<RwLock<Vec<crossbeam_channel::Sender<()>>>>,
    metrics: Arc<crate::metrics::Metrics>,
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
        let (tx, rx) = crossbeam_channel::bounded(queue);
        let doorbells: Arc<RwLock<Vec<crossbeam_channel::Sender<()>>>> = Default::default();
        let bells = doorbells.clone();
        let thread = std::thread::Builder::new()
            .name("gatehouse-writer".into())
            .spawn(move || {
                let state = shared.read().unwrap_or_else(|p| p.into_inner()).clone();
                debug_assert_eq!(state.seq, log.head_seq());
                let writer = Writer {
                    log,
                    state,
                    shared,
                    snapshot_every: snapshot_every.max(1),
                    since_snapshot: 0,
                    snapshotting: None,
                    doorbells: bells,
                    metrics,
                };
                writer.run(rx)
            })
            .expect("spawn the writer thread");
        (WriterHandle { tx, doorbells }, thread)
    }

    fn run(mut self, rx: crossbeam_channel::Receiver<Message>) {
        let mut shutdown_reply = None;
        while shutdown_reply.is_none() {
            let Ok(first) = rx.recv() else { break };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            let mut submissions = Vec::with_capacity(batch.len());
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
                }
            }
            self.commit(submissions);
            if self.since_snapshot >= self.snapshot_every {
                self.snapshot_in_background();
            }
        }
        if let Some(t) = self.snapshotting.take() {
            let _ = t.join();
        }
        if self.since_snapshot > 0 {
            self.snapshot();
        }
        tracing::info!(seq = self.state.seq, "writer stopped");
        if let Some(reply) = shutdown_reply {
            let _ = reply.send(());
        }
    }

    fn commit(
        &mut self,
        submissions: Vec<(
            Command,
            CommandContext,
            oneshot::Sender<Result<Committed, SubmitError>>,
        )>,
    ) {
        let origin = self.state.service_id.clone().unwrap_or_default();
        let mut envelopes: Vec<Envelope> = Vec::new();
        let mut replies = Vec::with_capacity(submissions.len());
        let mut time = now_ms().max(self.log.head_time_ms());
        for (command, ctx, reply) in submissions {
            match decide(&self.state, &command) {
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
                    replies.push((
                        reply,
                        Ok(Committed {
                            seq: self.state.seq,
                            events: count,
                        }),
                    ));
                }
                Err(e) => replies.push((reply, Err(SubmitError::Domain(e)))),
            }
        }
        let commands = replies.len();
        let flush = std::time::Instant::now();
        let appended = self.log.append(&envelopes);
        if commands > 0 {
            self.metrics
                .writer_flush_seconds
                .observe(flush.elapsed().as_secs_f64());
            self.metrics.writer_batch_commands.observe(commands as f64);
            self.metrics.writer_events.inc_by(envelopes.len() as u64);
        }
        if let Err(e) = appended {
            // The writer's state now holds events that are not on disk: nothing it decides
            // from here could be trusted. Fail-stop; a restart recovers from the log.
            tracing::error!(error = %e, "cannot append to the event log; stopping");
            for (reply, _) in replies {
                let _ = reply.send(Err(SubmitError::Unavailable));
            }
            std::process::exit(70);
        }
        if !envelopes.is_empty() {
            {
                let mut shared = self.shared.write().unwrap_or_else(|p| p.into_inner());
                for env in &envelopes {
                    shared.apply(env);
                }
            }
            self.ring();
        }
        self.since_snapshot += envelopes.len() as u64;
        for (reply, result) in replies {
            let _ = reply.send(result);
        }
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
        {
            let mut shared = self.shared.write().unwrap_or_else(|p| p.into_inner());
            for env in &envelopes {
                shared.apply(env);
            }
        }
        self.since_snapshot += envelopes.len() as u64;
        self.ring();
        Ok(Committed {
            seq: self.state.seq,
            events: envelopes.len(),
        })
    }

    /// Encoding and storing a large state takes long; the writer only pays for a copy and
    /// goes on committing while another thread writes it. One snapshot at a time: when
    /// the previous one is still being written, try again after the next batch.
    fn snapshot_in_background(&mut self) {
        if self.snapshotting.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let state = self.state.clone();
        let hash = self.log.head_hash();
        let store = self.log.snapshot_store();
        let metrics = self.metrics.clone();
        self.since_snapshot = 0;
        self.snapshotting = Some(
            std::thread::Builder::new()
                .name("gatehouse-snapshot".into())
                .spawn(move || match store.write(&state, hash) {
                    Ok(()) => {
                        metrics.snapshot_taken(state.seq);
                        tracing::debug!(seq = state.seq, "snapshot written")
                    }
                    // A missing snapshot only makes the next start slower; keep serving.
                    Err(e) => tracing::warn!(error = %e, "cannot write a snapshot"),
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

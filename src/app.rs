//! Start-up and shutdown: open the log, rebuild the read models, start the writer, create
//! the service identity on a new log, bind the listener.

use crate::auth::{password, Authenticator};
use crate::config::Settings;
use crate::domain::Command;
use crate::http::{self, AppState};
use crate::keys::{self, KeyRing};
use crate::log::{EventLog, LogError};
use crate::writer::{CommandContext, Writer, WriterHandle};
use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use gatehouse_projections::State;
use std::net::TcpListener;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start: {0}")]
    Log(#[from] LogError),
    #[error("cannot start: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot start: {0}")]
    Other(String),
}

pub struct Application {
    port: u16,
    tls: bool,
    server: Server,
    writer: WriterHandle,
    writer_thread: std::thread::JoinHandle<()>,
    service_id: String,
    deliveries: Arc<crate::webhooks::Deliveries>,
    federation: Arc<crate::federation::Federation>,
    lease: Arc<crate::lease::Lease>,
}

/// Files the server keeps open besides its connections (the log, its index, sled's trees,
/// snapshots being written, key files, outgoing webhook and federation connections).
const OWN_FILES: u64 = 1024;

/// Raise the soft limit of open files to the hard one, and lower `max-connections` to
/// what still fits beside the server's own files (said in the log): connections took
/// every descriptor and the server's own writes failed ("Too many open files": a write
/// answered 503). The connections the server takes at once.
fn open_files_for(max_connections: usize) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read or write the struct passed, nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return max_connections;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    let fits = limit.rlim_cur.saturating_sub(OWN_FILES).max(64) as usize;
    if fits >= max_connections {
        return max_connections;
    }
    tracing::info!(
        open_files = limit.rlim_cur,
        configured = max_connections,
        max_connections = fits,
        "max-connections lowered to fit the open-file limit beside {OWN_FILES} files of the server's own (raise the limit to take more: ulimit -n, LimitNOFILE=)"
    );
    fits
}

/// Where the first admin's generated password is written (mode 0600).
pub const INITIAL_PASSWORD_FILE: &str = "initial-admin-password";

impl Application {
    /// Everything up to a bound, not yet running, server. `handle_signals: false` is for
    /// tests that run several servers in one process and stop them through the handle.
    pub async fn build(
        settings: Settings,
        handle_signals: bool,
    ) -> Result<Application, StartError> {
        let started = Instant::now();
        // The roots outgoing TLS trusts (`--ca-file` with the system's): before the
        // shared log, whose connection may be TLS too.
        crate::tls::init_client(settings.config.ca_file.as_deref())
            .map_err(|e| StartError::Other(e.to_string()))?;
        let mut log = EventLog::open_with_cache(
            &settings.data_dir,
            settings.config.log_cache_mib.max(1) * 1024 * 1024,
        )?;
        log.set_snapshot_keep(settings.config.snapshot_keep);
        // Several nodes: the shared log is the authority, and the data directory's log
        // this node's copy of it; bring the copy up to date before rebuilding from it.
        let shared_log = match settings.config.store.clone() {
            None => None,
            Some(url) => {
                // The PostgreSQL client blocks (it runs its own small runtime): not on
                // this async thread.
                let master = match &settings.config.master_key_file {
                    Some(f) => Some(
                        crate::keys::vault::KeyVault::read_master(f).map_err(StartError::Other)?,
                    ),
                    None => {
                        tracing::warn!(
                            "no master key file: keys stay per node (see README, Several nodes)"
                        );
                        None
                    }
                };
                let data_dir = settings.data_dir.clone();
                let (pg, copied, back) = tokio::task::spawn_blocking(move || {
                    // A data directory that holds events names a database that should
                    // hold them too: one without a Gatehouse log is the wrong one, refused
                    // before its tables are made there (a later `verify` of it said
                    // "chain intact: 0 events").
                    let local = log.head_seq();
                    if local > 0 && !crate::log::postgres::PgLog::has_log(&url.0)? {
                        return Err(LogError::Database(format!(
                            "{} holds no Gatehouse log, but this data directory holds {local} events: is it the right database? (nothing was written to it)",
                            crate::log::postgres::redact(&url.0)
                        )));
                    }
                    let mut pg = crate::log::postgres::PgLog::connect(&url.0)?;
                    let copied = pg.copy_into(&mut log)?;
                    if let Some(master) = master {
                        crate::keys::vault::KeyVault::open(pg.sibling(), master, &data_dir)?;
                    }
                    Ok::<_, LogError>((pg, copied, log))
                })
                .await
                .map_err(|e| StartError::Other(e.to_string()))??;
                log = back;
                tracing::info!(copied, "following the shared log");
                Some(pg)
            }
        };
        let open_ms = started.elapsed().as_millis() as u64;
        let (state, report) = log.load(settings.config.startup_verify)?;
        // The signed checkpoints vouch for the chain at their positions: a log rewritten
        // before one, its chain recomputed, verified, and a revoked token worked again.
        if settings.config.startup_verify == crate::log::StartupVerify::Full {
            crate::checkpoints::check(&state, |p| log.hash_at(p).ok().flatten(), None).map_err(
                |e| {
                    StartError::Other(format!(
                        "the event log does not verify: {e} (`gatehouse verify` says more)"
                    ))
                },
            )?;
        }
        tracing::info!(
            events = state.seq,
            snapshot = report.snapshot_seq,
            replayed = report.tail_events,
            open_ms,
            snapshot_decode_ms = report.snapshot_decode_ms,
            millis = started.elapsed().as_millis() as u64,
            "read models rebuilt from the log"
        );
        let metrics = Arc::new(crate::metrics::Metrics::new());
        if report.snapshot_seq > 0 {
            metrics.snapshot_taken(report.snapshot_seq);
        }
        if settings.config.tls_cert.is_some() != settings.config.tls_key.is_some() {
            return Err(StartError::Other(
                "a TLS certificate and its key go together (tls-cert and tls-key)".into(),
            ));
        }
        let cert_store = match (&settings.config.tls_cert, &settings.config.tls_key) {
            (Some(cert), Some(key)) => Some(
                crate::tls::CertStore::open(cert, key)
                    .map_err(|e| StartError::Other(e.to_string()))?,
            ),
            _ => None,
        };
        let needs_init = state.service_id.is_none();
        let shared = Arc::new(RwLock::new(state));
        let log_reader = log.reader();
        let history = Arc::new(crate::history::History::new(
            settings.config.as_of_every,
            settings.config.as_of_checkpoints,
        ));
        // What must not run twice runs on the node holding the lease (always this one
        // on sled).
        let lease = match &shared_log {
            None => crate::lease::Lease::always(),
            Some(pg) => {
                let renew = Duration::from_millis(settings.config.lease_renew_ms.max(10));
                crate::lease::Lease::start(
                    pg,
                    crate::lease::LeaseSettings {
                        renew,
                        ttl: Duration::from_millis(settings.config.lease_ttl_ms).max(renew * 2),
                    },
                )
            }
        };
        let (writer, writer_thread) = Writer::spawn_shared(
            log,
            shared_log.map(|log| crate::writer::SharedLog {
                log,
                poll: Duration::from_millis(settings.config.follow_poll_ms.max(10)),
                listen: settings.config.follow_listen,
            }),
            shared.clone(),
            settings.config.snapshot_every,
            settings.config.writer_queue,
            metrics.clone(),
        );
        if needs_init {
            if let Err(e) = initialize(&settings, &writer).await {
                // Another node of a shared log initialized it first: its identity wins.
                if shared
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .service_id
                    .is_none()
                {
                    return Err(e);
                }
            }
        }
        let keys = Arc::new(
            KeyRing::open(&settings.data_dir).map_err(|e| StartError::Other(e.to_string()))?,
        );
        if settings.config.store.is_some() && settings.config.master_key_file.is_none() {
            keys_of_another_node(&shared, &keys)?;
        }
        ensure_keys(&shared, &keys, &writer).await?;
        let service_id = shared
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .service_id
            .clone()
            .unwrap_or_default();

        let listener = TcpListener::bind(&settings.listen)
            .map_err(|e| StartError::Other(format!("cannot listen on {}: {e}", settings.listen)))?;
        let port = listener.local_addr()?.port();
        let max_connections = open_files_for(settings.config.max_connections);
        let index = Arc::new(crate::authorize::PermissionIndex::build(
            &shared.read().unwrap_or_else(|p| p.into_inner()),
        ));
        let personal = Arc::new(
            crate::personal::PersonalKeys::open(&settings.data_dir)
                .map_err(|e| StartError::Other(e.to_string()))?,
        );
        crate::keys::vault::watch_destroyed(&settings.data_dir, Arc::downgrade(&personal));
        check_personal_keys(
            shared.clone(),
            personal.clone(),
            settings.data_dir.join("keys").join("personal"),
        );
        // On its own log, new personal-data keys are made durable by the writer, one
        // flush per batch beside the log's (with a vault, each is written through).
        if !crate::keys::vault::serves(&settings.data_dir.join("keys").join("personal")) {
            let (p, q) = (personal.clone(), personal.clone());
            writer.add_before_commit(crate::writer::BeforeCommit {
                pending: Box::new(move || q.has_pending()),
                work: Box::new(move || p.flush_pending().map_err(|e| e.to_string())),
            });
            personal.set_batched();
        }
        // Webhook deliveries and the federation stream follow the committed log from
        // their own cursor.
        // Their outboxes are a sled database of their own: the writer's flush of the log
        // does not carry them, and sled flushes them in the background (a crash loses a
        // suffix of outbox writes together with the cursor that covers them: those
        // events are dispatched again from the log).
        let outbox = crate::log::open_db(
            sled::Config::new()
                .path(settings.data_dir.join("outbox"))
                .cache_capacity(settings.config.outbox_cache_mib.max(1) * 1024 * 1024)
                .flush_every_ms(Some(100)),
            &settings.data_dir,
        )?
        .open_tree(crate::webhooks::TREE)
        .map_err(crate::log::LogError::from)?;
        let federation = crate::federation::Federation::new(
            outbox.clone(),
            shared.clone(),
            keys.clone(),
            personal.clone(),
            writer.clone(),
            crate::federation::FederationSettings {
                max_lag_events: settings.config.federation_max_lag_events,
                retry_max_ms: settings.config.federation_retry_max_ms,
                timeout_ms: settings.config.federation_timeout_ms,
            },
            lease.clone(),
        );
        let (deliveries, bell) = crate::webhooks::Deliveries::start(
            &log_reader,
            outbox,
            shared.clone(),
            personal.clone(),
            crate::webhooks::DeliverySettings {
                max_pending: settings.config.webhook_max_pending,
                max_attempts: settings.config.webhook_max_attempts,
                retry_base_ms: settings.config.webhook_retry_base_ms,
                retry_max_ms: settings.config.webhook_retry_max_ms,
                timeout_ms: settings.config.webhook_timeout_ms,
            },
            federation.clone(),
            lease.clone(),
            history.clone(),
            writer.feed(),
        )?;
        writer.add_doorbell(bell);
        let data = web::Data::new(AppState {
            state: shared,
            writer: writer.clone(),
            keys: keys.clone(),
            permission_index: RwLock::new(index),
            permission_index_build: std::sync::Mutex::new(()),
            auth: Authenticator::new(
                keys,
                Duration::from_secs(settings.config.auth_cache_ttl_secs),
                settings.config.lockout_threshold,
            )
            .with_operations(&settings.config, metrics.clone())
            .with_personal(personal.clone()),
            metrics,
            // As in force: `max-connections` as lowered to fit the open-file limit (the
            // support bundle's configuration showed the file's value).
            config: crate::config::Config {
                max_connections,
                ..settings.config.clone()
            },
            started,
            timeline: std::sync::Mutex::new(crate::timeline::Timeline::default()),
            personal,
            deliveries: deliveries.clone(),
            federation: federation.clone(),
            lease: lease.clone(),
            log: log_reader,
            data_dir: settings.data_dir.clone(),
            past: std::sync::Mutex::new(Vec::new()),
            history: history.clone(),
            scim_renders: Default::default(),
            scim_index: Default::default(),
            sessions: Default::default(),
        });
        // Familiar addresses of the last run (the failed-sign-in limits): a server that
        // cannot keep them still serves, with every address a stranger's after a restart.
        if let Err(e) = data.auth.remember_familiar_in(&settings.data_dir) {
            tracing::warn!(error = %e, "cannot keep familiar sign-in addresses in the data directory: after a restart, every address counts as a stranger's");
        }
        // Checkpoints of the past, once a point-in-time read wants them: the index of
        // which events shape which user (one-user reads), one walk of the log, then a
        // clone of the read models every `as-of-every` events (O(1) each). Nothing
        // before: a server that never reads the past keeps neither in memory.
        if history.every() > 0 {
            let app = Arc::downgrade(&data.clone().into_inner());
            std::thread::Builder::new()
                .name("as-of-history".into())
                .spawn(move || follow_history(&history, &app))
                .map_err(StartError::Io)?;
        }
        // Key files dropped into `trusted/` are taken into the log (seed 003).
        actix_web::rt::spawn(http::certs::import_trusted_folder(data.clone()));
        // Signed checkpoints every `checkpoint-every` events, from a task that looks once
        // a second (the writer never waits for a signature).
        if settings.config.checkpoint_every > 0 {
            let every = settings.config.checkpoint_every;
            let app = data.clone();
            actix_web::rt::spawn(async move {
                loop {
                    actix_web::rt::time::sleep(Duration::from_secs(1)).await;
                    // Several nodes: one signer at a time (the lease holder). Two would
                    // be harmless (`decide` ignores a checkpoint at or below the last),
                    // but would sign checkpoints a few positions apart.
                    if !app.lease.held() {
                        continue;
                    }
                    let due = {
                        let s = app.read();
                        let last = s.checkpoints.last().map(|c| c.position).unwrap_or(0);
                        s.seq >= last + every
                    };
                    if !due {
                        continue;
                    }
                    let rid = http::extract::RequestId("checkpoint".into());
                    let signed = crate::checkpoints::sign(&app.read(), &app.keys, &app.log);
                    match signed {
                        Ok(c) => {
                            if let Err(e) = app
                                .submit(crate::domain::Command::RecordCheckpoint(c), "system", &rid)
                                .await
                            {
                                tracing::warn!(error = %e, "could not record a checkpoint");
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "could not sign a checkpoint"),
                    }
                }
            });
        }
        // Records of tokens past use are forgotten every `token-sweep-seconds`, so that
        // the read models of a server that issues tokens for days stay the same size.
        if settings.config.token_sweep_seconds > 0 {
            let every = Duration::from_secs(settings.config.token_sweep_seconds);
            let grace = settings.config.refresh_grace_period;
            let app = data.clone();
            actix_web::rt::spawn(async move {
                loop {
                    actix_web::rt::time::sleep(every).await;
                    // Several nodes: one sweeper (the lease holder); a second would only
                    // find the ids gone (`decide` skips them).
                    if !app.lease.held() {
                        continue;
                    }
                    let now = crate::auth::unix_secs();
                    let ids = crate::tokens::past_use_ids(&app.read(), now, grace);
                    let rid = http::extract::RequestId("token-sweep".into());
                    // In bounded commands: one batch of the writer stays small.
                    for chunk in ids.chunks(1000) {
                        let command = Command::ExpireTokens {
                            token_ids: chunk.to_vec(),
                            now,
                            grace,
                        };
                        if let Err(e) = app.submit(command, "system", &rid).await {
                            tracing::warn!(error = %e, "could not forget expired tokens");
                            break;
                        }
                    }
                    if !ids.is_empty() {
                        tracing::info!(tokens = ids.len(), "forgot the records of expired tokens");
                    }
                }
            });
        }
        // LDAP groups follow the directory on a schedule, on a thread of their own (the
        // directory client blocks; a slow directory delays only the next round).
        if settings.config.ldap_sync_interval > 0 {
            let every = Duration::from_secs(settings.config.ldap_sync_interval);
            // Only a weak handle between rounds: a server that stopped is not kept alive
            // (nor its data directory open) by this thread.
            let app = Arc::downgrade(&data.clone().into_inner());
            std::thread::Builder::new()
                .name("ldap-sync".into())
                .spawn(move || loop {
                    std::thread::sleep(every);
                    let Some(app) = app.upgrade() else { return };
                    // Several nodes: one of them syncs (the lease holder).
                    if !app.lease.held() {
                        continue;
                    }
                    crate::ldap::import_all(&app.state, &app.personal, &app.writer);
                })
                .map_err(StartError::Io)?;
        }
        let config = &settings.config;
        let workers = config
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .wrap(actix_web::middleware::from_fn(http::as_of_middleware))
                // Outside `as_of`: a console session is a credential by the time the
                // past is rebuilt for it.
                .wrap(actix_web::middleware::from_fn(
                    http::console::console_middleware,
                ))
                .wrap(actix_web::middleware::from_fn(http::min_seq_middleware))
                .wrap(actix_web::middleware::from_fn(http::request_middleware))
                .configure(http::configure)
        })
        .shutdown_timeout(10)
        .workers(workers.max(1))
        // The cap is per worker in actix; the setting is for the whole server.
        .max_connections(max_connections.div_ceil(workers.max(1)).max(1))
        .client_request_timeout(Duration::from_millis(config.header_timeout_ms))
        .keep_alive(match config.keep_alive_secs {
            0 => actix_web::http::KeepAlive::Disabled,
            n => actix_web::http::KeepAlive::Timeout(Duration::from_secs(n)),
        });
        server = match &cert_store {
            Some(store) => {
                let tls = store
                    .server_config()
                    .map_err(|e| StartError::Other(e.to_string()))?;
                server
                    .tls_handshake_timeout(Duration::from_millis(
                        config.header_timeout_ms.max(1000),
                    ))
                    .listen_rustls_0_23(listener, tls)?
            }
            None => server.listen(listener)?,
        };
        // SIGHUP: read the certificate and key again (new handshakes use them; open
        // connections are not touched). Without TLS there is nothing to reload, but the
        // signal's default action would end the process (an operator's `systemctl reload`
        // or a closed terminal): `gatehouse serve` takes it and says so instead. The handler
        // is installed here, before the server announces itself, so that no SIGHUP can
        // arrive while the default action still applies. An embedded server without TLS
        // leaves the signal to its host program.
        #[cfg(unix)]
        if cert_store.is_some() || handle_signals {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::hangup()) {
                Ok(mut hup) => {
                    let store = cert_store.clone();
                    actix_web::rt::spawn(async move {
                        while hup.recv().await.is_some() {
                            let Some(store) = store.clone() else {
                                tracing::info!(
                                    "SIGHUP: nothing to reload (no TLS certificate); still serving"
                                );
                                continue;
                            };
                            let result = tokio::task::spawn_blocking(move || store.reload()).await;
                            match result {
                                Ok(Ok(())) => tracing::info!("TLS certificate reloaded"),
                                Ok(Err(e)) => {
                                    tracing::warn!(error = %e, "TLS certificate not reloaded; keeping the old one")
                                }
                                Err(_) => {}
                            }
                        }
                    });
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "cannot listen for SIGHUP; the certificate will not be reloaded"
                ),
            }
        }
        // Stopping is this program's, not actix's: actix takes SIGINT (Ctrl-C) as a
        // forced stop that drops requests in flight, where README promises Ctrl-C and
        // SIGTERM alike finish them. A second one (or SIGQUIT) stops at once.
        let server = server.disable_signals().run();
        #[cfg(unix)]
        if handle_signals {
            use tokio::signal::unix::{signal, SignalKind};
            let handle = server.handle();
            let kinds = [
                SignalKind::interrupt(),
                SignalKind::terminate(),
                SignalKind::quit(),
            ];
            let streams: Result<Vec<_>, _> = kinds.into_iter().map(signal).collect();
            match streams {
                Ok(mut streams) => {
                    actix_web::rt::spawn(async move {
                        let mut graceful = true;
                        loop {
                            let (int, rest) = streams.split_at_mut(1);
                            let (term, quit) = rest.split_at_mut(1);
                            let forced = tokio::select! {
                                _ = int[0].recv() => !graceful,
                                _ = term[0].recv() => !graceful,
                                _ = quit[0].recv() => true,
                            };
                            if forced && !graceful {
                                // actix takes no second stop while the graceful one waits
                                // for its workers: the process ends here. Every
                                // acknowledged write is already durable (fsynced before
                                // its answer); only the final snapshot is skipped.
                                tracing::info!("stopping now (requests in flight are dropped)");
                                std::process::exit(130);
                            }
                            if forced {
                                tracing::info!("stopping now (requests in flight are dropped)");
                                handle.stop(false).await;
                                return;
                            }
                            tracing::info!(
                                "stopping: finishing requests in flight (signal again to stop at once)"
                            );
                            graceful = false;
                            let handle = handle.clone();
                            actix_web::rt::spawn(async move { handle.stop(true).await });
                        }
                    });
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "cannot listen for SIGINT/SIGTERM; stop the server with SIGKILL"
                ),
            }
        }
        Ok(Application {
            port,
            tls: cert_store.is_some(),
            server,
            writer,
            writer_thread,
            service_id,
            deliveries,
            federation,
            lease,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the listener speaks HTTPS.
    pub fn tls(&self) -> bool {
        self.tls
    }

    pub fn service_id(&self) -> &str {
        &self.service_id
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serve until stopped (SIGTERM/SIGINT or the handle), then let in-flight requests
    /// finish, stop the writer (which flushes and writes a snapshot) and return.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        let writer = self.writer;
        let thread = self.writer_thread;
        let deliveries = self.deliveries;
        let federation = self.federation;
        let lease = self.lease;
        // These calls block: keep them off the async threads.
        let _ = tokio::task::spawn_blocking(move || {
            writer.shutdown();
            let _ = thread.join();
            deliveries.stop();
            federation.stop();
            // Nothing sends any more: another node may take over at once.
            lease.release();
        })
        .await;
        tracing::info!("stopped");
        result
    }
}

/// A new log: the service identity and the `admin` user in one commit.
/// The history's thread: idle until the first past read wants it, then indexes the
/// users' timelines, walks the log once and keeps a clone of the live read models every
/// `as-of-every` events. Holds only a weak handle on the server between rounds.
fn follow_history(history: &crate::history::History, app: &std::sync::Weak<http::AppState>) {
    while !history.wait_wanted(Duration::from_secs(1)) {
        if app.strong_count() == 0 {
            return;
        }
    }
    let started = std::time::Instant::now();
    if let Some(app) = app.upgrade() {
        let head = app.read().seq;
        let mut t = app.timeline.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = t.extend(&app.log, head) {
            tracing::warn!(error = %e, "could not index user timelines");
        }
    }
    let mut built = false;
    loop {
        let Some(app) = app.upgrade() else { return };
        let live = app.read().clone();
        // Far behind (the first walk, or events came faster than this thread looks):
        // walk the log to keep the exact spacing; otherwise the live clone is enough.
        let walked = if history.is_empty() || live.seq > history.newest() + 2 * history.every() {
            history.fill(&app.log, live.seq)
        } else {
            Ok(())
        };
        if let Err(e) = walked {
            tracing::error!(error = %e, "cannot build the checkpoints of the past; point-in-time reads use the snapshots");
            return;
        }
        match app.log.hash_at(live.seq) {
            Ok(Some(hash)) => {
                history.offer(&live, hash);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot build the checkpoints of the past; point-in-time reads use the snapshots");
                return;
            }
        }
        if !built {
            built = true;
            tracing::info!(
                checkpoints = history.len(),
                position = live.seq,
                ms = started.elapsed().as_millis() as u64,
                "checkpoints of the past built"
            );
        }
        drop(live);
        drop(app);
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn initialize(settings: &Settings, writer: &WriterHandle) -> Result<(), StartError> {
    let service_id = format!("jfac@{}", crate::ids::new_ulid());
    let password = match std::env::var("GATEHOUSE_ADMIN_PASSWORD") {
        // The rules of any other password (a 3-character one was taken, and the admin
        // could then set no password as short through the API).
        Ok(p) if !p.is_empty() => {
            crate::domain::validate_password(&p, &crate::domain::default_password_policy())
                .map_err(|e| {
                    StartError::Other(format!(
                        "GATEHOUSE_ADMIN_PASSWORD: {}",
                        e.to_string().replace("invalid `password`", "the password")
                    ))
                })?;
            p
        }
        _ => {
            let p = password::generate();
            let path = settings.data_dir.join(INITIAL_PASSWORD_FILE);
            let p = write_private(&path, &p)?;
            tracing::info!(path = %path.display(), "the initial password of `admin` was written to this file");
            p
        }
    };
    let admin_password_hash = tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|e| StartError::Other(e.to_string()))?;
    let ctx = CommandContext {
        actor: "system".into(),
        request_id: "startup".into(),
    };
    writer
        .submit(
            Command::InitializeService {
                service_id: service_id.clone(),
                admin_password_hash,
            },
            ctx,
        )
        .await
        .map_err(|e| StartError::Other(e.to_string()))?;
    tracing::info!(%service_id, "new event log: service identity created");
    Ok(())
}

/// A node of a shared log without a master key keeps its keys to itself: it must not
/// start when the log's active signing key or signed-URL key is another node's. Making
/// new ones (what a lone node that lost its keys does) would take signing away from
/// every node that holds the current ones, and void every signed URL they issued.
fn keys_of_another_node(shared: &Arc<RwLock<State>>, keys: &KeyRing) -> Result<(), StartError> {
    let (active, url_version) = {
        let s = shared.read().unwrap_or_else(|p| p.into_inner());
        (s.keys.active.clone(), s.keys.signed_url_version)
    };
    let lacks_signing = active.is_some_and(|kid| keys.signing_key(&kid).is_none());
    let lacks_url = url_version > 0 && keys.signed_url_key(url_version).is_none();
    if lacks_signing || lacks_url {
        return Err(StartError::Other(
            "the shared log's signing keys were made by another node, and this node has no \
             master key file to fetch them with: start every node of a shared log with the \
             same --master-key-file (see README, Several nodes). Making new keys here would \
             stop the other nodes from signing tokens and void their signed URLs"
                .into(),
        ));
    }
    Ok(())
}

/// A log without a token-signing key or a signed-URL key (new, or written by a version
/// before tokens) gets them now: the private halves go to the data directory first, then
/// the log records the public facts.
async fn ensure_keys(
    shared: &Arc<RwLock<State>>,
    keys: &KeyRing,
    writer: &WriterHandle,
) -> Result<(), StartError> {
    let (active, url_version, any_private) = {
        let s = shared.read().unwrap_or_else(|p| p.into_inner());
        (
            s.keys.active.clone(),
            s.keys.signed_url_version,
            s.keys
                .signing
                .keys()
                .any(|kid| keys.signing_key(kid).is_some()),
        )
    };
    let ctx = || CommandContext {
        actor: "system".into(),
        request_id: "startup".into(),
    };
    let missing_private = active
        .as_deref()
        .is_some_and(|kid| keys.signing_key(kid).is_none());
    // A restore without `keys/` (no private half of any signing key here, one server)
    // retires the keys it lost. Not on a shared log: there a node started before the old
    // server's data directory joined (README, Keys shared by all nodes) retired, for the
    // whole cluster, the key the old node then brought back; and not while some private
    // halves are here (a reset retires every earlier key).
    let retire = missing_private && !any_private && !writer.is_shared();
    if active.is_none() || missing_private {
        if retire {
            tracing::warn!("no private half of any signing key is in the data directory (restored without `keys/`?); making a new key, and the tokens signed before are refused from now on (restore `keys/` with the log to keep them)");
        } else if missing_private {
            tracing::warn!("the private half of the active signing key is missing from the data directory; making a new key");
        }
        let (kid, public) = keys
            .generate()
            .map_err(|e| StartError::Other(e.to_string()))?;
        let public_key = keys::public_b64(&public);
        // A key whose private half is gone is retired, as README promises (it went on
        // verifying: a restore made without `keys/` to be rid of a leaked key still
        // took tokens the leaked key signed).
        let command = if retire {
            Command::ResetSigningKeys {
                kid: kid.clone(),
                public_key,
            }
        } else {
            Command::AddSigningKey {
                kid: kid.clone(),
                public_key,
            }
        };
        writer
            .submit(command, ctx())
            .await
            .map_err(|e| StartError::Other(e.to_string()))?;
        tracing::info!(%kid, "token signing key created");
    }
    if url_version == 0 || keys.signed_url_key(url_version).is_none() {
        let version = url_version + 1;
        keys.new_signed_url_key(version)
            .map_err(|e| StartError::Other(e.to_string()))?;
        let made = writer
            .submit(Command::ReplaceSignedUrlKey { version, org: None }, ctx())
            .await;
        if let Err(e) = made {
            // Nodes of a shared log started together: another one made it first (its
            // key is the shared one, fetched when missing here).
            let now = shared
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .keys
                .signed_url_version;
            if now < version || keys.signed_url_key(now).is_none() {
                return Err(StartError::Other(e.to_string()));
            }
        }
    }
    Ok(())
}

/// Write a private file (0600). A key file is also given to the other nodes of a shared
/// log (`keys::vault`), before anything can use it; when another node made that key
/// first, its copy is written instead. Returns what was written.
pub fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<String> {
    let kept = crate::keys::vault::written(path, contents)?;
    let text = kept.unwrap_or_else(|| contents.to_owned());
    write_private_local(path, &text)?;
    Ok(text)
}

/// [`write_private`] on this node only.
pub fn write_private_local(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    // Whole or not at all: written beside it, synced, then renamed into place. Written in
    // place, a full disk left an empty key file that the next start took for a damaged
    // key.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let written = crate::log::private_file(&tmp).and_then(|mut f| {
        f.write_all(contents.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    match path.parent() {
        Some(dir) => std::fs::File::open(dir).and_then(|d| d.sync_all()),
        None => Ok(()),
    }
}

/// How many users [`check_personal_keys`] looks at, at most.
const SAMPLE: usize = 10_000;

/// Look, off the start-up path, for users whose personal data no key opens, and say so
/// loudly: their e-mail addresses and SCIM attributes read `[erased]`, exactly as after a
/// purge, but nobody purged them — the key store (`keys/personal/`) was deleted,
/// damaged or not restored with the log. The log itself is intact (the chain and the
/// digest do not cover the keys, which are kept outside it so that they can be destroyed).
fn check_personal_keys(
    shared: Arc<RwLock<gatehouse_projections::State>>,
    personal: Arc<crate::personal::PersonalKeys>,
    dir: std::path::PathBuf,
) {
    let spawned = std::thread::Builder::new()
        .name("personal-keys-check".into())
        .spawn(move || {
            // A clone shares structure: O(1), and the writer goes on meanwhile.
            let state = shared.read().unwrap_or_else(|p| p.into_inner()).clone();
            // Every user of a site of up to 10,000, an even sample of a larger one (a
            // decryption each: a lost key store shows in any sample, and a million
            // users would be a second of CPU).
            let all = state.directory.users.len();
            let step = all.div_ceil(SAMPLE).max(1);
            let users = state
                .directory
                .users
                .values()
                .step_by(step)
                .map(|u| (u.username.as_ref(), [u.email.as_deref(), u.scim.as_deref()]));
            let unreadable = personal.unreadable(users);
            // A user purged while this ran (deleted, then its keys destroyed) is gone
            // from the live state: that one is no loss.
            let live = shared.read().unwrap_or_else(|p| p.into_inner()).clone();
            let lost: Vec<&String> = unreadable
                .iter()
                .filter(|u| live.directory.users.contains_key(u.as_str()))
                .collect();
            if let Some(first) = lost.first() {
                tracing::error!(
                    users = lost.len(),
                    of_checked = all.div_ceil(step),
                    first = %first,
                    keys = %dir.display(),
                    "personal data of users that were never purged cannot be decrypted: \
                     their keys are missing or damaged (restore the key store from the \
                     backup taken with the log); it reads [erased] meanwhile"
                );
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the check of the personal-data keys");
    }
}

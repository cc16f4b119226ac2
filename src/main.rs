//! The `gatehouse` command: `serve`, `verify`, `replay`, `export`, `import`.

use clap::{Parser, Subcommand};
use gatehouse::log::postgres::PgLog;
use gatehouse::log::{export, EventLog, LogError};
use gatehouse::{Application, Config, Settings};
use gatehouse_projections::State;
use std::path::PathBuf;
use std::process::ExitCode;

/// See Cargo.toml: replay and request handling allocate many small strings across threads.
/// (`--features system-allocator` leaves it out, so that heap profilers that hook malloc,
/// such as heaptrack, see every allocation.)
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "An event-sourced access-control server (JFrog Access REST dialect)"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server.
    Serve {
        /// Where the event log, snapshots and keys live.
        #[arg(long, env = "GATEHOUSE_DATA_DIR", default_value = "./gatehouse-data")]
        data_dir: PathBuf,
        /// Address to listen on (`127.0.0.1:0` picks a free port).
        #[arg(long, env = "GATEHOUSE_LISTEN", default_value = "127.0.0.1:8082")]
        listen: String,
        /// A TOML file of tunables (see README).
        #[arg(long, env = "GATEHOUSE_CONFIG")]
        config: Option<PathBuf>,
        /// Keep the event log in PostgreSQL, shared by several nodes
        /// (`postgres://user:pass@host:port/db`; also `store` in the config file). Without
        /// it: the log in the data directory (`events.log`).
        #[arg(long, env = "GATEHOUSE_STORE", hide_env_values = true)]
        store: Option<String>,
        /// With --store: the master key file (≥ 32 secret bytes, the same on every node)
        /// under which private keys are shared through PostgreSQL.
        #[arg(long, env = "GATEHOUSE_MASTER_KEY_FILE")]
        master_key_file: Option<PathBuf>,
        /// Serve HTTPS with this certificate chain (PEM; with --tls-key). Re-read on SIGHUP.
        #[arg(long, env = "GATEHOUSE_TLS_CERT")]
        tls_cert: Option<PathBuf>,
        /// The certificate's private key (PEM).
        #[arg(long, env = "GATEHOUSE_TLS_KEY")]
        tls_key: Option<PathBuf>,
        /// Root certificates (PEM) that outgoing calls trust besides the system's.
        #[arg(long, env = "GATEHOUSE_CA_FILE")]
        ca_file: Option<PathBuf>,
        /// `text` (the default) or `json` (one object a line).
        #[arg(long, env = "GATEHOUSE_LOG_FORMAT", value_enum, default_value = "text")]
        log_format: LogFormat,
    },
    /// Walk the hash chain, decode and replay every event, and check every signed
    /// checkpoint; exit 0 when all hold. With `--export FILE`, check an exported log
    /// offline instead (with `--key PEM`, the server's public key, checkpoints prove
    /// the log was not rewritten).
    Verify {
        #[arg(long, env = "GATEHOUSE_DATA_DIR", default_value = "./gatehouse-data")]
        data_dir: PathBuf,
        /// The shared log of several nodes (`postgres://user:pass@host:port/db`) instead
        /// of the one in the data directory.
        #[arg(long, env = "GATEHOUSE_STORE", hide_env_values = true)]
        store: Option<String>,
        /// An exported log (`gatehouse export`, or a backup) to check offline instead.
        #[arg(long)]
        export: Option<PathBuf>,
        /// The public key (PEM, as `GET /access/api/v1/cert/root?formatted=true` serves
        /// it) that must have signed the checkpoints.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Take an export without an end mark (one written before exports had one) as
        /// it is; without this, such a file is refused as possibly cut short.
        #[arg(long)]
        allow_unterminated: bool,
    },
    /// Rebuild every read model from the log (verifying the chain), with a progress bar,
    /// and print the state digest.
    Replay {
        #[arg(long, env = "GATEHOUSE_DATA_DIR", default_value = "./gatehouse-data")]
        data_dir: PathBuf,
        /// The shared log of several nodes (`postgres://user:pass@host:port/db`) instead
        /// of the one in the data directory.
        #[arg(long, env = "GATEHOUSE_STORE", hide_env_values = true)]
        store: Option<String>,
        /// Stop after this log position (default: the whole log).
        #[arg(long)]
        to: Option<u64>,
    },
    /// Write the log to a file: `ndjson` (one event a line, with its stored bytes) or
    /// `binary` (compact). `import` reads either back.
    Export {
        #[arg(long, env = "GATEHOUSE_DATA_DIR", default_value = "./gatehouse-data")]
        data_dir: PathBuf,
        /// The shared log of several nodes (`postgres://user:pass@host:port/db`) instead
        /// of the one in the data directory.
        #[arg(long, env = "GATEHOUSE_STORE", hide_env_values = true)]
        store: Option<String>,
        /// The file to write (0600: it holds password hashes).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "binary")]
        format: ExportFormat,
    },
    /// Load an export into an empty data directory (or, with `--store`, an empty shared
    /// log); the chain and the digest come out the same.
    Import {
        #[arg(long, env = "GATEHOUSE_DATA_DIR", default_value = "./gatehouse-data")]
        data_dir: PathBuf,
        /// The shared log of several nodes (`postgres://user:pass@host:port/db`) instead
        /// of the one in the data directory.
        #[arg(long, env = "GATEHOUSE_STORE", hide_env_values = true)]
        store: Option<String>,
        /// The export to load (`ndjson` or `binary`, as `gatehouse export` wrote it).
        #[arg(long = "in")]
        input: PathBuf,
        /// Take an export without an end mark (one written before exports had one) as
        /// it is; without this, such a file is refused as possibly cut short.
        #[arg(long)]
        allow_unterminated: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    Ndjson,
    Binary,
}

/// Said after an export and an import: what the file does not carry.
const KEYS_NOT_INCLUDED: &str = "note: the keys are not in an export: copy <data-dir>/keys/ with it into the new data directory before the server starts on it, or e-mails, SCIM attributes and secrets read [erased] and earlier tokens are refused (README, Command line)";

/// Transparent huge pages off for this process, unless the operator chose with
/// `MIMALLOC_ALLOW_THP` (mimalloc reads it itself: `1` keeps them, `0` turns them off).
///
/// Why: the read models only grow, and with huge pages each step of growth is a fault
/// that zeroes 2 MiB at once, on whichever thread touched it first — most often the
/// single writer thread, which every durable write waits for. Measured on the bench
/// machine (2 vCPUs, a VM that gives freed memory back to its host): during SCIM creates
/// 5.5 % of the server's CPU went to those faults, 18 % of the writer's (several ms a
/// fault); with 4 KiB pages 1.9 %, spread thin. The bench's 100k-user data set took
/// 210 MiB of resident memory instead of 263. Throughput moved within the noise.
/// (`prctl(PR_SET_THP_DISABLE)` is what mimalloc does for `MIMALLOC_ALLOW_THP=0`; it
/// holds for the whole process from its next fault on.)
fn no_huge_pages_unless_asked() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: prctl with integer arguments only; it changes a flag of this process.
        let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
}

/// Libraries whose debug and trace lines carry what the server sends them in clear:
/// ureq writes every outgoing request's headers (a webhook's `X-JFrog-Event-Auth`
/// secret, custom headers made from secrets; it masks only `Authorization`) and URLs,
/// tokio-postgres each statement's parameters, ldap3 its requests (a bind's password).
const SECRET_BEARING: [&str; 4] = ["ureq", "tokio_postgres", "postgres", "ldap3"];

/// Whether a log line may be written: anything but the debug and trace lines of
/// [`SECRET_BEARING`] libraries, whatever `RUST_LOG` asks for (those lines would also go
/// into support bundles, which keep the recent log). Their warnings and errors stay.
fn not_secret_bearing(meta: &tracing::Metadata<'_>) -> bool {
    *meta.level() <= tracing::Level::INFO || !is_secret_bearing(meta.target())
}

fn is_secret_bearing(target: &str) -> bool {
    SECRET_BEARING.iter().any(|lib| {
        target
            .strip_prefix(lib)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

fn main() -> ExitCode {
    no_huge_pages_unless_asked();
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(message) => {
            eprintln!("gatehouse: {message}");
            return ExitCode::from(2);
        }
    };
    let format = match &cli.command {
        Cmd::Serve { log_format, .. } => *log_format,
        _ => LogFormat::Text,
    };
    JSON_LOGS.store(
        format == LogFormat::Json,
        std::sync::atomic::Ordering::Relaxed,
    );
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,actix_server=warn".into());
    // `RUST_LOG` filters what is written, not what is counted: the refused connections
    // are counted from actix's ERROR lines whatever the level (with `RUST_LOG=off` the
    // counter never moved). Each layer has its own filter; the counting layer's takes
    // those lines only, so no other callsite is enabled for it.
    let counted = tracing_subscriber::filter::filter_fn(gatehouse::metrics::is_refusal_line)
        .with_max_level_hint(tracing::Level::ERROR);
    let written = tracing_subscriber::filter::filter_fn(not_secret_bearing);
    let registry = tracing_subscriber::registry()
        .with(gatehouse::metrics::RefusedConnections.with_filter(counted));
    match format {
        // Colours only for a terminal: a file, a journal or the support bundle's copy of
        // the recent lines (the same writer) gets plain text.
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_writer(gatehouse::recent_logs::Tee::install())
                    .with_filter(written)
                    .with_filter(filter),
            )
            .init(),
        // One JSON object a line; the event's fields at the top level (`request_id`,
        // `principal`, `route`, `status`, `duration_ms` for the access log).
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_writer(gatehouse::recent_logs::Tee::install())
                    .with_filter(written)
                    .with_filter(filter),
            )
            .init(),
    }
    match cli.command {
        Cmd::Serve {
            data_dir,
            listen,
            config,
            store,
            master_key_file,
            tls_cert,
            tls_key,
            ca_file,
            log_format: _,
        } => serve(
            data_dir,
            listen,
            config,
            (store, master_key_file),
            (tls_cert, tls_key, ca_file),
        ),
        Cmd::Verify {
            data_dir,
            store,
            export,
            key,
            allow_unterminated,
        } => verify(data_dir, store, export, key, allow_unterminated),
        Cmd::Replay {
            data_dir,
            store,
            to,
        } => match store {
            Some(url) => replay_shared(&url, to),
            None => replay(data_dir, to),
        },
        Cmd::Export {
            data_dir,
            store,
            out,
            format,
        } => export(data_dir, store, out, format),
        Cmd::Import {
            data_dir,
            store,
            input,
            allow_unterminated,
        } => match store {
            Some(url) => import_shared(&url, input, allow_unterminated),
            None => import(data_dir, input, allow_unterminated),
        },
    }
}

/// The command line. For `verify`, `replay`, `export` and `import` the data directory
/// and the shared log are alternatives: a `--data-dir` typed on the command line is the
/// log meant, whatever `GATEHOUSE_STORE` (set for `serve` on a node's host) says, and
/// both typed is a mistake, not a choice to make silently.
/// An empty `GATEHOUSE_*` variable is an unset one (systemd units and compose files
/// declare them empty): clap took `GATEHOUSE_TLS_CERT=` as `--tls-cert` with no value and
/// stopped with an error about a flag nobody typed. Run before any thread starts.
fn forget_empty_variables() {
    let empty: Vec<_> = std::env::vars_os()
        .filter(|(k, v)| v.is_empty() && k.to_str().is_some_and(|k| k.starts_with("GATEHOUSE_")))
        .map(|(k, _)| k)
        .collect();
    for k in empty {
        std::env::remove_var(k);
    }
}

fn parse_cli() -> Result<Cli, String> {
    use clap::parser::ValueSource;
    use clap::{CommandFactory, FromArgMatches};
    forget_empty_variables();
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let Some((name, sub)) = matches.subcommand() else {
        return Ok(cli);
    };
    if name == "serve" {
        return Ok(cli);
    }
    let typed = |id: &str| sub.value_source(id) == Some(ValueSource::CommandLine);
    let from_env = sub.value_source("store") == Some(ValueSource::EnvVariable);
    if typed("data_dir") && typed("store") {
        return Err(format!(
            "{name}: give --data-dir or --store, not both (the log of a data directory, or the shared one)"
        ));
    }
    if typed("data_dir") && from_env {
        eprintln!(
            "gatehouse: {name} reads --data-dir; GATEHOUSE_STORE in the environment is not used"
        );
        if let Cmd::Verify { store, .. }
        | Cmd::Replay { store, .. }
        | Cmd::Export { store, .. }
        | Cmd::Import { store, .. } = &mut cli.command
        {
            *store = None;
        }
    }
    Ok(cli)
}

type TlsFiles = (Option<PathBuf>, Option<PathBuf>, Option<PathBuf>);

/// `serve --log-format json`: every line on stderr is a JSON object, the last words too.
static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Why the server cannot start, on stderr: a log line (an ERROR object) with JSON logs,
/// `gatehouse: …` otherwise (a log shipper parsing each line as JSON got plain text at
/// exactly the moment the line mattered).
fn fatal(message: impl std::fmt::Display) {
    if JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::error!("{message}");
    } else {
        eprintln!("gatehouse: {message}");
    }
}

fn serve(
    data_dir: PathBuf,
    listen: String,
    config: Option<PathBuf>,
    (store, master_key_file): (Option<String>, Option<PathBuf>),
    (tls_cert, tls_key, ca_file): TlsFiles,
) -> ExitCode {
    let mut config = match Config::load(config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            fatal(e);
            return ExitCode::from(2);
        }
    };
    // Flags (and their environment variables) win over the config file, each on its
    // own: a key in the file and its certificate on the command line are a pair too.
    if tls_cert.is_some() {
        config.tls_cert = tls_cert;
    }
    if tls_key.is_some() {
        config.tls_key = tls_key;
    }
    if config.tls_cert.is_some() != config.tls_key.is_some() {
        fatal(
            "a TLS certificate and its key go together (--tls-cert and --tls-key, \
             GATEHOUSE_TLS_CERT and GATEHOUSE_TLS_KEY, or tls-cert and tls-key in the config file)",
        );
        return ExitCode::from(2);
    }
    // Before anything is created in the data directory.
    if let Err(e) = std::net::ToSocketAddrs::to_socket_addrs(listen.as_str()) {
        fatal(format!("cannot listen on `{listen}`: {e}"));
        return ExitCode::from(2);
    }
    if ca_file.is_some() {
        config.ca_file = ca_file;
    }
    if let Some(store) = store.filter(|s| !s.is_empty()) {
        config.store = Some(gatehouse::config::Secret(store));
    }
    if master_key_file.is_some() {
        config.master_key_file = master_key_file;
    }
    if config.store.is_none() {
        if let Some(f) = &config.master_key_file {
            // Said, not refused: a node's configuration may be used with a local data
            // directory on purpose (a copy for inspection); the key is simply not read.
            tracing::warn!(file = %f.display(), "a master key file is given without a store (--store): it is not used (it seals the private keys several nodes share through PostgreSQL; one server keeps them in <data-dir>/keys/)");
        }
    }
    if let Ok(token) = std::env::var("GATEHOUSE_METRICS_TOKEN") {
        // As the file's value: compared with what a scraper sends, trimmed.
        let token = token.trim();
        if !token.is_empty() {
            config.metrics_token = Some(gatehouse::config::Secret(token.to_string()));
        }
    }
    let settings = Settings {
        data_dir,
        listen,
        config,
    };
    let result = actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings.clone(), true).await?;
        let addr = settings
            .listen
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or("127.0.0.1")
            .to_string();
        // Tests and scripts read this line to learn the port (`--listen 127.0.0.1:0`).
        println!(
            "gatehouse listening on {}://{addr}:{} as {}",
            if app.tls() { "https" } else { "http" },
            app.port(),
            app.service_id()
        );
        app.run_until_stopped().await?;
        Ok::<(), gatehouse::app::StartError>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            if !JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
                eprintln!("gatehouse: {e}");
            }
            ExitCode::from(1)
        }
    }
}

fn verify(
    data_dir: PathBuf,
    store: Option<String>,
    export: Option<PathBuf>,
    key: Option<PathBuf>,
    allow_unterminated: bool,
) -> ExitCode {
    let key = match key.map(|k| std::fs::read_to_string(&k).map(|t| (k, t))) {
        None => None,
        Some(Ok((path, text))) => match gatehouse::keys::parse_public(&text) {
            Some(k) => Some(k),
            None => {
                eprintln!("gatehouse: {} holds no Ed25519 public key", path.display());
                return ExitCode::from(2);
            }
        },
        Some(Err(e)) => {
            eprintln!("gatehouse: cannot read the key: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(file) = export {
        return verify_export(&file, key, allow_unterminated);
    }
    if let Some(url) = store {
        return verify_shared(&url, key);
    }
    let log = match open_existing(&data_dir) {
        Ok(l) => l,
        Err(code) => return code,
    };
    // Snapshots are a cache of the log's replay, and the server starts from the newest:
    // each must be what the log replays to at its position (a snapshot rewritten with a
    // recomputed checksum was served while this said "intact").
    let snapshots = log.snapshot_positions().unwrap_or_default();
    let mut replayed_at = std::collections::BTreeMap::new();
    let mut state = State::default();
    let walked = log.verify_with(|env| {
        state.apply(env);
        if snapshots.binary_search(&env.seq).is_ok() {
            replayed_at.insert(env.seq, state.digest());
        }
    });
    if walked.is_ok() {
        for at in &snapshots {
            let stored = log.snapshot_at_or_before(*at).ok().flatten();
            let Some((snap, snap_state)) = stored.filter(|(s, _)| s.seq == *at) else {
                // Damaged on disk (its checksum or its encoding does not hold): the server
                // skips it, so nothing wrong is served, but the operator should know (it
                // was passed over in silence).
                println!(
                    "snapshot at position {at} is damaged (its checksum or encoding does not hold): the server skips it and starts from an older one or the log; remove the file"
                );
                continue;
            };
            if replayed_at.get(&snap.seq) != Some(&snap_state.digest()) {
                println!(
                    "snapshot at position {at} does not match the log: its state is not what the events replay to (remove the file; the server rebuilds from the log)"
                );
                return ExitCode::from(1);
            }
        }
    }
    match walked {
        Ok(report) => {
            let hash_at = |p: u64| log.hash_at(p).ok().flatten();
            match gatehouse::checkpoints::check(&state, hash_at, key.as_ref())
                .and_then(|c| signed_coverage(c, report.events, key.is_some()))
            {
                Ok(n) => {
                    println!(
                        "chain intact: {} events, head hash {}, {n} checkpoints verified, state digest {}",
                        report.events,
                        hex(&report.head_hash),
                        state.digest()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    println!("{e}");
                    ExitCode::from(1)
                }
            }
        }
        Err(e) => report_broken(e),
    }
}

/// With `--key`, how much of the log the key's signatures vouch for (printed), after
/// [`gatehouse::checkpoints::check`] verified every checkpoint (with it, or with the
/// log's own key of another kid: signed before a rotation). Checkpoints are events of the
/// log they vouch for: a log stripped of them, its chain recomputed, is consistent but
/// proven by nothing, so it fails; and what follows the last checkpoint is counted, since
/// no signature covers it.
fn signed_coverage(
    checked: gatehouse::checkpoints::Checked,
    events: u64,
    with_key: bool,
) -> Result<usize, String> {
    if !with_key {
        return Ok(checked.verified);
    }
    match checked.proven_to {
        None => Err(format!(
            "no checkpoint signed by the given key: none of the {events} events is proven by it"
        )),
        Some(last) => {
            println!(
                "proven by the given key: positions 1 to {last} (the last verified checkpoint); {} events after it are not covered by a signature",
                events.saturating_sub(last)
            );
            Ok(checked.verified)
        }
    }
}

fn verify_export(
    file: &std::path::Path,
    key: Option<ed25519_dalek::VerifyingKey>,
    allow_unterminated: bool,
) -> ExitCode {
    let records = match read_export(file, allow_unterminated) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            return ExitCode::from(2);
        }
    };
    let mut prev = gatehouse::log::GENESIS_HASH;
    let mut hashes = Vec::with_capacity(records.len());
    let mut state = State::default();
    for (i, r) in records.iter().enumerate() {
        let expected = i as u64 + 1;
        let computed = gatehouse::log::chain_hash(&prev, &r.bytes);
        if r.seq != expected || computed != r.hash {
            println!(
                "chain broken at position {expected}: the recorded hash does not match the event"
            );
            return ExitCode::from(1);
        }
        match gatehouse_schemas::decode(&r.bytes) {
            Ok(env) if env.seq == expected => state.apply(&env),
            _ => {
                println!("chain broken at position {expected}: the event does not decode");
                return ExitCode::from(1);
            }
        }
        hashes.push(computed);
        prev = computed;
    }
    let hash_at = |p: u64| hashes.get((p as usize).wrapping_sub(1)).copied();
    match gatehouse::checkpoints::check(&state, hash_at, key.as_ref())
        .and_then(|c| signed_coverage(c, records.len() as u64, key.is_some()))
    {
        Ok(n) => {
            println!(
                "export intact: {} events, head hash {}, {n} checkpoints verified{}, state digest {}",
                records.len(),
                hex(&prev),
                if key.is_some() { " with the given key" } else { "" },
                state.digest()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{e}");
            ExitCode::from(1)
        }
    }
}

fn open_existing(data_dir: &std::path::Path) -> Result<EventLog, ExitCode> {
    // The log is `events.log`; `log/` (sled) held it in older versions, and holds only
    // the lock now (a directory without it was said to have no log). `try_exists`: a
    // directory that cannot be read is not one without a log.
    let found = |name: &str| data_dir.join(name).try_exists();
    match (found("events.log"), found("log")) {
        (Ok(true), _) | (_, Ok(true)) => {}
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("gatehouse: cannot read {}: {e}", data_dir.display());
            return Err(ExitCode::from(2));
        }
        _ => {
            eprintln!("gatehouse: no event log in {}", data_dir.display());
            return Err(ExitCode::from(2));
        }
    }
    EventLog::open_to_read(data_dir).map_err(report_broken)
}

fn replay(data_dir: PathBuf, to: Option<u64>) -> ExitCode {
    let log = match open_existing(&data_dir) {
        Ok(l) => l,
        Err(code) => return code,
    };
    if let Some(to) = to.filter(|&t| t > log.head_seq()) {
        // As the API refuses a position past the head (it replayed to the head and said
        // nothing).
        eprintln!(
            "gatehouse: --to {to} is past the log's head ({})",
            log.head_seq()
        );
        return ExitCode::from(2);
    }
    let total = to.unwrap_or(log.head_seq());
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} events, {per_sec}, eta {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let mut state = State::default();
    let mut n = 0u64;
    let result = log.walk_range(1, gatehouse::log::GENESIS_HASH, Some(total), |env| {
        state.apply(env);
        n += 1;
        if n % 65_536 == 0 {
            bar.set_position(n);
        }
    });
    bar.set_position(n);
    bar.finish();
    match result {
        Ok(report) => {
            let secs = started.elapsed().as_secs_f64();
            println!(
                "replayed {} events in {:.2} s ({:.0} events/s), position {}, head hash {}, state digest {}",
                report.events,
                secs,
                report.events as f64 / secs.max(1e-9),
                state.seq,
                hex(&report.head_hash),
                state.digest()
            );
            ExitCode::SUCCESS
        }
        Err(e) => report_broken(e),
    }
}

fn export(
    data_dir: PathBuf,
    store: Option<String>,
    out: PathBuf,
    format: ExportFormat,
) -> ExitCode {
    let mut source = match store {
        Some(url) => match PgLog::open_existing(&url) {
            Ok(pg) => Source::Shared(Box::new(pg)),
            Err(e) => return report_broken(e),
        },
        None => match open_existing(&data_dir) {
            Ok(l) => Source::Local(Box::new(l)),
            Err(code) => return code,
        },
    };
    // Written beside `out` and renamed into place when whole: a failed export leaves no
    // file that looks like one. Private (0600): an export holds password hashes.
    // A device or a pipe (`--out /dev/stdout`) is written as it is: it cannot be renamed.
    let special = std::fs::metadata(&out).is_ok_and(|m| !m.is_file());
    let partial = if special {
        out.clone()
    } else {
        let mut name = out.file_name().unwrap_or_default().to_os_string();
        name.push(".partial");
        out.with_file_name(name)
    };
    let file = match gatehouse::log::private_file(&partial) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("gatehouse: cannot write {}: {e}", partial.display());
            return ExitCode::from(2);
        }
    };
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let format = match format {
        ExportFormat::Binary => export::Format::Binary,
        ExportFormat::Ndjson => export::Format::Ndjson,
    };
    let written = match &mut source {
        Source::Local(log) => export::write(log, &mut w, format),
        Source::Shared(pg) => export::write_with(&mut w, format, |f| {
            pg.for_each(None, |r| Ok(f(r.seq, &r.hash, &r.bytes)))
                .map(|_| ())
        }),
    };
    let finished = written.and_then(|n| {
        let file = w
            .into_inner()
            .map_err(|e| export::ExportError::Io(e.into_error()))?;
        if !special {
            file.sync_all().map_err(export::ExportError::Io)?;
            std::fs::rename(&partial, &out).map_err(export::ExportError::Io)?;
        }
        Ok(n)
    });
    match finished {
        Ok(n) => {
            println!("exported {n} events to {}", out.display());
            eprintln!("{KEYS_NOT_INCLUDED}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            if !special {
                let _ = std::fs::remove_file(&partial);
            }
            match e {
                export::ExportError::Log(e) => match e.position() {
                    Some(_) => report_broken(e),
                    None => {
                        println!("cannot export: {e}");
                        ExitCode::from(1)
                    }
                },
                e => {
                    eprintln!("gatehouse: {}: {e}", out.display());
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// Read an export (either format) into raw events.
fn read_export(
    input: &std::path::Path,
    allow_unterminated: bool,
) -> Result<Vec<gatehouse::log::RawEvent>, String> {
    let data = std::fs::read(input).map_err(|e| format!("cannot read {}: {e}", input.display()))?;
    export::read_with(&data, allow_unterminated)
}

fn import(data_dir: PathBuf, input: PathBuf, allow_unterminated: bool) -> ExitCode {
    let records = match read_export(&input, allow_unterminated) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            return ExitCode::from(2);
        }
    };
    // The whole export is checked before anything is written (a broken one left an empty
    // log behind, and the import of a good one was then refused).
    if let Err(at) = check_export(&records) {
        println!("chain broken at position {at}: the export does not verify");
        return ExitCode::from(1);
    }
    // Its signed checkpoints too, before anything is written: an export rewritten before
    // one, its chain recomputed, was imported (and a revoked token worked again), while
    // `gatehouse verify --export` refused it.
    let mut replayed = State::default();
    for r in &records {
        if let Ok(env) = gatehouse_schemas::decode(&r.bytes) {
            replayed.apply(&env);
        }
    }
    let hash_at = |p: u64| {
        let i = usize::try_from(p).ok()?.checked_sub(1)?;
        records.get(i).map(|r| r.hash)
    };
    if let Err(e) = gatehouse::checkpoints::check(&replayed, hash_at, None) {
        println!("{e}: the export does not verify");
        return ExitCode::from(1);
    }
    drop(replayed);
    let existed = data_dir.join("log").exists() || data_dir.join("events.log").exists();
    let mut log = match EventLog::open(&data_dir) {
        Ok(l) => l,
        Err(e) => return report_broken(e),
    };
    // An empty log (a data directory that was opened and never written) is empty.
    if existed && log.head_seq() > 0 {
        eprintln!(
            "gatehouse: {} already holds a log; import only into an empty data directory",
            data_dir.display()
        );
        return ExitCode::from(2);
    }
    // Until the last event is in and verified, the directory says the import is
    // unfinished: one cut short (killed, a full disk) verified as a shorter history, was
    // served as one, and refused a second import.
    let marker = data_dir.join(gatehouse::log::IMPORT_UNFINISHED);
    let marked = std::fs::write(&marker, b"gatehouse import\n")
        .and_then(|()| std::fs::File::open(&marker)?.sync_all())
        .and_then(|()| std::fs::File::open(&data_dir)?.sync_all());
    if let Err(e) = marked {
        eprintln!("gatehouse: cannot write {}: {e}", marker.display());
        return ExitCode::from(2);
    }
    for chunk in records.chunks(10_000) {
        if let Err(e) = log.append_raw(chunk) {
            return report_broken(e);
        }
    }
    let mut state = State::default();
    match log.verify_with(|env| state.apply(env)) {
        Ok(report) => {
            let head = records.last().map_or(0, |r| r.seq);
            if let Err(e) = gatehouse::webhooks::start_after_import(&data_dir, head) {
                return report_broken(e);
            }
            let done = std::fs::remove_file(&marker)
                .and_then(|()| std::fs::File::open(&data_dir)?.sync_all());
            if let Err(e) = done {
                eprintln!("gatehouse: cannot remove {}: {e}", marker.display());
                return ExitCode::from(2);
            }
            println!(
                "imported {} events, head hash {}, state digest {}",
                report.events,
                hex(&report.head_hash),
                state.digest()
            );
            eprintln!("{KEYS_NOT_INCLUDED}");
            ExitCode::SUCCESS
        }
        Err(e) => report_broken(e),
    }
}

/// Whether an export's records chain from the first position on; the first position
/// that does not, otherwise.
fn check_export(records: &[gatehouse::log::RawEvent]) -> Result<(), u64> {
    let mut prev = gatehouse::log::GENESIS_HASH;
    for (i, r) in records.iter().enumerate() {
        let expected = i as u64 + 1;
        let decoded = gatehouse_schemas::decode(&r.bytes);
        if r.seq != expected
            || gatehouse::log::chain_hash(&prev, &r.bytes) != r.hash
            || !decoded.is_ok_and(|e| e.seq == expected)
        {
            return Err(expected);
        }
        prev = r.hash;
    }
    Ok(())
}

/// Exit 1 for a log that does not verify; 2 for one that could not be read at all (the
/// data directory in use by a running server, a database that does not answer, a full
/// disk): a check run while the server was up reported tampering.
fn report_broken(e: LogError) -> ExitCode {
    match e.position() {
        Some(seq) => println!("chain broken at position {seq}: {e}"),
        None => println!("cannot read the log: {e}"),
    }
    let unreadable = matches!(
        e,
        LogError::Storage(sled::Error::Io(_))
            | LogError::Database(_)
            | LogError::NoSpace(_)
            | LogError::ImportUnfinished(_)
    );
    ExitCode::from(if unreadable { 2 } else { 1 })
}

fn hex(bytes: &[u8]) -> String {
    gatehouse::hex(bytes)
}

/// Where `gatehouse export` reads.
enum Source {
    Local(Box<EventLog>),
    Shared(Box<PgLog>),
}

/// A replayed shared log: the state, the hash at every position, the last position and
/// its hash.
type Replayed = (State, Vec<[u8; 32]>, u64, [u8; 32]);

/// The shared log read from position 1 (to `to`), chain checked, every event decoded and
/// applied: the state, the hashes by position, and the last position and its hash.
fn replay_rows(pg: &mut PgLog, to: Option<u64>) -> Result<Replayed, LogError> {
    let mut state = State::default();
    let mut hashes = Vec::new();
    let (seq, head) = pg.for_each(to, |r| {
        let env = gatehouse_schemas::decode(&r.bytes).map_err(|e| LogError::Undecodable {
            seq: r.seq,
            reason: e.to_string(),
        })?;
        if env.seq != r.seq {
            return Err(LogError::ChainBroken {
                seq: r.seq,
                reason: format!("the event stored here says it is position {}", env.seq),
            });
        }
        state.apply(&env);
        hashes.push(r.hash);
        Ok(true)
    })?;
    Ok((state, hashes, seq, head))
}

fn verify_shared(url: &str, key: Option<ed25519_dalek::VerifyingKey>) -> ExitCode {
    let mut pg = match PgLog::open_existing(url) {
        Ok(pg) => pg,
        Err(e) => return report_broken(e),
    };
    let (state, hashes, events, head) = match replay_rows(&mut pg, None) {
        Ok(r) => r,
        Err(e) => return report_broken(e),
    };
    let hash_at = |p: u64| hashes.get((p as usize).wrapping_sub(1)).copied();
    match gatehouse::checkpoints::check(&state, hash_at, key.as_ref())
        .and_then(|c| signed_coverage(c, events, key.is_some()))
    {
        Ok(n) => {
            println!(
                "chain intact: {events} events, head hash {}, {n} checkpoints verified, state digest {}",
                hex(&head),
                state.digest()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{e}");
            ExitCode::from(1)
        }
    }
}

fn replay_shared(url: &str, to: Option<u64>) -> ExitCode {
    let started = std::time::Instant::now();
    let mut pg = match PgLog::open_existing(url) {
        Ok(pg) => pg,
        Err(e) => return report_broken(e),
    };
    if let Some(to) = to {
        match pg.head() {
            Ok((head, _)) if to > head => {
                eprintln!("gatehouse: --to {to} is past the log's head ({head})");
                return ExitCode::from(2);
            }
            Ok(_) => {}
            Err(e) => return report_broken(e),
        }
    }
    match replay_rows(&mut pg, to) {
        Ok((state, _, events, head)) => {
            let secs = started.elapsed().as_secs_f64();
            println!(
                "replayed {events} events in {secs:.2} s ({:.0} events/s), position {}, head hash {}, state digest {}",
                events as f64 / secs.max(1e-9),
                state.seq,
                hex(&head),
                state.digest()
            );
            ExitCode::SUCCESS
        }
        Err(e) => report_broken(e),
    }
}

/// Load an export into an empty shared log (how one machine grows into several).
fn import_shared(url: &str, input: PathBuf, allow_unterminated: bool) -> ExitCode {
    let records = match read_export(&input, allow_unterminated) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gatehouse: {e}");
            return ExitCode::from(2);
        }
    };
    let mut pg = match PgLog::connect(url) {
        Ok(pg) => pg,
        Err(e) => return report_broken(e),
    };
    match pg.head() {
        Ok((0, _)) => {}
        Ok((n, _)) => {
            eprintln!(
                "gatehouse: the shared log already holds {n} events; import only into an empty one"
            );
            return ExitCode::from(2);
        }
        Err(e) => return report_broken(e),
    }
    // The whole export is checked before anything is written.
    if let Err(at) = check_export(&records) {
        println!("chain broken at position {at}: the export does not verify");
        return ExitCode::from(1);
    }
    // The subscriptions and federation targets of the imported log, whose deliveries
    // start after it (the cursors are raised in the import's transaction).
    let mut imported = State::default();
    for r in &records {
        match gatehouse_schemas::decode(&r.bytes) {
            Ok(env) => imported.apply(&env),
            Err(e) => {
                println!("the event at position {} does not decode: {e}", r.seq);
                return ExitCode::from(1);
            }
        }
    }
    let cursors: Vec<String> = imported
        .subscriptions
        .keys()
        .map(|k| gatehouse::lease::webhook_cursor(k))
        .chain(
            imported
                .federation
                .targets
                .keys()
                .map(|t| gatehouse::lease::federation_cursor(t)),
        )
        .collect();
    if let Err(e) = pg.import(&records, &cursors) {
        eprintln!("gatehouse: {e}");
        return ExitCode::from(1);
    }
    match replay_rows(&mut pg, None) {
        Ok((state, _, events, head)) => {
            println!(
                "imported {events} events, head hash {}, state digest {}",
                hex(&head),
                state.digest()
            );
            eprintln!("{KEYS_NOT_INCLUDED}");
            ExitCode::SUCCESS
        }
        Err(e) => report_broken(e),
    }
}

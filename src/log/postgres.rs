//! The shared log of several nodes, in PostgreSQL (`--store postgres://…`).
//!
//! One table, `gatehouse_events(position BIGINT PRIMARY KEY, hash BYTEA, bytes BYTEA)`:
//! the same records as the sled log (`hash = blake3(previous hash ‖ bytes)`, the encoded
//! envelope), one row per event. Why this makes a skipped, duplicated or reordered event
//! impossible by construction (the trap ZITADEL's projections fell into):
//! - the position is the primary key, and a writer only inserts `head+1…` right after the
//!   row at `head` whose hash it names (the insert is conditional on that row): two nodes
//!   that try the same position collide on the key, one transaction wins, the other rolls
//!   back and catches up. Positions are never assigned by a sequence, so there are no holes
//!   from rolled-back transactions and no commit-order/position-order mismatch: row `n+1`
//!   can only be written by a transaction that saw row `n` committed;
//! - a batch is one transaction, so a reader sees all of it or none of it;
//! - every reader recomputes the chain as it reads (`read_after`): a gap or a hash that
//!   does not match stops the node with the position.
//!
//! PostgreSQL features relied on (all also offered by CockroachDB and YugabyteDB): a
//! `BIGINT` primary key with unique-violation errors (SQLSTATE 23505), `BYTEA`,
//! multi-row `INSERT … SELECT … FROM unnest(…)` in one transaction, `INSERT … ON CONFLICT
//! DO NOTHING`, `CREATE TABLE IF NOT EXISTS`, `ORDER BY … LIMIT`. Optional: `LISTEN` /
//! `pg_notify` to wake followers (CockroachDB lacks them: nodes then poll).
//!
//! Per node, in the data directory, stays a copy of the log (`events.log`) up to the position the
//! node applied (a cache: snapshots, as-of reads, audit and webhooks read it) — it is
//! always a prefix of this table, checked at start-up.

use super::{chain_hash, ChainHash, EventLog, LogError, RawEvent, GENESIS_HASH};
use std::time::Duration;

/// The schema this code writes and reads. Bumped with a migration when it changes.
/// 1: events and keys. 2: leases and delivery cursors (`crate::lease`); the migration
/// from 1 only adds the two tables (`CREATE TABLE IF NOT EXISTS` below).
pub const SCHEMA_VERSION: i32 = 2;
/// The channel committed appends are announced on (payload: the new head).
pub const CHANNEL: &str = "gatehouse_events";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS gatehouse_schema (
    version INT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS gatehouse_keys (
    name TEXT PRIMARY KEY,
    sealed BYTEA NOT NULL,
    destroyed BOOLEAN NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS gatehouse_events (
    position BIGINT PRIMARY KEY CHECK (position > 0),
    hash BYTEA NOT NULL,
    bytes BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS gatehouse_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS gatehouse_cursors (
    name TEXT PRIMARY KEY,
    position BIGINT NOT NULL
);
";

/// Raise a shared delivery cursor (`$1` name, `$2` position); never lowers it.
const RAISE_CURSOR: &str = "INSERT INTO gatehouse_cursors (name, position) VALUES ($1, $2)
     ON CONFLICT (name) DO UPDATE
       SET position = GREATEST(gatehouse_cursors.position, EXCLUDED.position)";

/// A connection to the shared log.
pub struct PgLog {
    config: postgres::Config,
    client: Option<postgres::Client>,
    /// Whether `pg_notify` works here (not on CockroachDB): if not, followers poll.
    notify: bool,
    /// TLS to the database (`sslmode=require`, `verify-ca` or `verify-full`), its
    /// certificate verified against the server's roots (the system's and `--ca-file`).
    tls: bool,
}

/// Why an append did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another node wrote the position first: catch up, decide again, retry.
    #[error("another node appended at this position first")]
    Conflict,
    /// The connection broke during the commit: the outcome is unknown, and
    /// [`PgLog::resolve`] finds out.
    #[error("the shared log is unavailable: {0}")]
    Unavailable(String),
    /// The database could not be reached, or failed before the commit was sent: nothing
    /// of the batch was written.
    #[error("the shared log is unavailable (nothing written): {0}")]
    NotWritten(String),
    /// The row before the batch is not the one the writer built on: the local copy has
    /// diverged from the shared log. Fail-stop.
    #[error(transparent)]
    Log(#[from] LogError),
}

fn db(e: postgres::Error) -> LogError {
    LogError::Database(e.to_string())
}

fn hash_of(bytes: &[u8], seq: u64) -> Result<ChainHash, LogError> {
    bytes.try_into().map_err(|_| LogError::ChainBroken {
        seq,
        reason: "the stored hash is not 32 bytes".into(),
    })
}

/// The connection string without its password (for messages), in either form
/// PostgreSQL takes: a URL (`postgres://user:pw@host/db?password=pw`) or key=value pairs
/// (`host=h password='p w' dbname=d`).
pub fn redact(url: &str) -> String {
    // `password=` values first: a key=value string's password may hold an `@` itself.
    let url = redact_password_values(url);
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        // An `@` without `scheme://` before it in one word (`postgres:/u:pw@h/db`):
        // whatever comes before it may be a password.
        (None, Some(at)) if !url.contains(char::is_whitespace) => format!("***{}", &url[at..]),
        _ => url,
    }
}

/// Every `password=` value (a URL's query parameter, or a key=value pair, quoted or not)
/// as `***`.
fn redact_password_values(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.to_ascii_lowercase().find("password") {
        let (before, after) = rest.split_at(i + "password".len());
        out.push_str(before);
        let trimmed = after.trim_start();
        let Some(value) = trimmed.strip_prefix('=') else {
            rest = after;
            continue;
        };
        out.push_str(&after[..after.len() - trimmed.len()]);
        out.push('=');
        let value_start = value.len() - value.trim_start().len();
        out.push_str(&value[..value_start]);
        let value = &value[value_start..];
        let end = if let Some(quoted) = value.strip_prefix('\'') {
            // Up to the closing quote (a backslash escapes the next character).
            let mut escaped = false;
            let close = quoted.char_indices().find(|&(_, c)| {
                let close = c == '\'' && !escaped;
                escaped = c == '\\' && !escaped;
                close
            });
            close.map_or(value.len(), |(j, _)| j + 2)
        } else {
            value
                .find(|c: char| c.is_whitespace() || c == '&')
                .unwrap_or(value.len())
        };
        out.push_str("***");
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

impl PgLog {
    /// Connect, and create (or check) the schema.
    pub fn connect(url: &str) -> Result<PgLog, LogError> {
        let mut log = PgLog::unconnected(url)?;
        log.migrate()?;
        Ok(log)
    }

    /// Whether the database names a Gatehouse log (its events table), writing nothing.
    pub fn has_log(url: &str) -> Result<bool, LogError> {
        PgLog::unconnected(url)?.holds_a_log()
    }

    fn holds_a_log(&mut self) -> Result<bool, LogError> {
        let found: Option<String> = self
            .client()?
            .query_one("SELECT to_regclass('gatehouse_events')::text", &[])
            .map_err(db)?
            .get(0);
        Ok(found.is_some())
    }

    /// Connect to a shared log that must already be there, writing nothing: what
    /// `verify`, `replay` and `export` read. A database without one (empty, or the wrong
    /// one named) is an error, not "chain intact: 0 events" over tables made for it.
    pub fn open_existing(url: &str) -> Result<PgLog, LogError> {
        let mut log = PgLog::unconnected(url)?;
        if !log.holds_a_log()? {
            return Err(LogError::Database(format!(
                "{} holds no Gatehouse log (no table gatehouse_events): is it the right database?",
                redact(url)
            )));
        }
        log.refuse_newer_schema()?;
        Ok(log)
    }

    fn unconnected(url: &str) -> Result<PgLog, LogError> {
        // libpq's verifying modes are what TLS here always does (the certificate against
        // the roots, and its name): taken as `require`, which the client knows.
        let url = url
            .replace("sslmode=verify-full", "sslmode=require")
            .replace("sslmode=verify-ca", "sslmode=require");
        let mut config: postgres::Config = url
            .parse()
            // Not even redacted: a string that does not parse may hold its password
            // where `redact` does not look for one.
            .map_err(|e| {
                LogError::Database(format!(
                    "invalid --store (its value is not shown: it may hold a password): {e}"
                ))
            })?;
        // A connection whose peer stops answering (a network cut) ends within about
        // ten seconds: data not acknowledged by then aborts it (TCP_USER_TIMEOUT), and an
        // idle one is probed. The write then waits and retries as for a refused
        // connection, and answers 503 at the end of the wait.
        config
            .connect_timeout(Duration::from_secs(5))
            .tcp_user_timeout(Duration::from_secs(10))
            .keepalives_idle(Duration::from_secs(10))
            .keepalives_interval(Duration::from_secs(2))
            .keepalives_retries(3)
            .application_name("gatehouse");
        // `prefer` (libpq's default) stays in clear, as before: a TLS that verifies would
        // refuse the self-signed certificate a database offers by default (Debian's).
        // Over a Unix socket there is nothing to encrypt, and PostgreSQL offers no TLS
        // there: libpq ignores `sslmode` for it, and so does this.
        let tcp = config
            .get_hosts()
            .iter()
            .any(|h| matches!(h, postgres::config::Host::Tcp(_)))
            || !config.get_hostaddrs().is_empty();
        let tls = tcp && config.get_ssl_mode() == postgres::config::SslMode::Require;
        Ok(PgLog {
            config,
            client: None,
            notify: true,
            tls,
        })
    }

    /// A schema newer than this version knows is refused before anything is written.
    fn refuse_newer_schema(&mut self) -> Result<(), LogError> {
        let client = self.client()?;
        let exists: Option<String> = client
            .query_one("SELECT to_regclass('gatehouse_schema')::text", &[])
            .map_err(db)?
            .get(0);
        if exists.is_none() {
            return Ok(());
        }
        let newest: Option<i32> = client
            .query_one("SELECT max(version) FROM gatehouse_schema", &[])
            .map_err(db)?
            .get(0);
        if newest.unwrap_or(0) > SCHEMA_VERSION {
            return Err(LogError::Database(format!(
                "the shared log has schema version {}, newer than this gatehouse knows ({SCHEMA_VERSION}): upgrade gatehouse",
                newest.unwrap_or(0)
            )));
        }
        Ok(())
    }

    /// A second connection to the same database (the follower's), made on first use —
    /// so on the thread that uses it: the client blocks, and must not on an async one.
    pub fn sibling(&self) -> PgLog {
        PgLog {
            config: self.config.clone(),
            client: None,
            notify: self.notify,
            tls: self.tls,
        }
    }

    /// This connection will not LISTEN (followers then only poll).
    pub fn listening(mut self, listen: bool) -> PgLog {
        self.notify &= listen;
        self
    }

    pub fn notify_supported(&self) -> bool {
        self.notify
    }

    /// The open connection, reconnecting when it broke (a restart of PostgreSQL).
    pub fn client(&mut self) -> Result<&mut postgres::Client, LogError> {
        if self.client.as_ref().is_some_and(|c| c.is_closed()) {
            self.client = None;
        }
        if self.client.is_none() {
            self.reachable()?;
            let client = if self.tls {
                let tls =
                    tokio_postgres_rustls::MakeRustlsConnect::new((*crate::tls::client()).clone());
                self.config.connect(tls)
            } else {
                self.config.connect(postgres::NoTls)
            };
            self.client = Some(client.map_err(db)?);
        }
        Ok(self.client.as_mut().expect("connected"))
    }

    /// Whether anything listens at the configured TCP addresses, asked before the client
    /// connects. With PostgreSQL on this machine, stopped, on a port in the range the
    /// kernel hands out for outgoing connections, a reconnection could be given that very
    /// port and connect to itself: the client then waited for ever for the server's
    /// answer to its own start-up message (the node hung, held PostgreSQL's port so that
    /// it could not start again, and ignored SIGTERM). A probe that connects to itself,
    /// or is refused, at every address is "not reachable", and the client is not started.
    fn reachable(&self) -> Result<(), LogError> {
        use std::net::{TcpStream, ToSocketAddrs};
        let hosts = self.config.get_hosts();
        let ports = self.config.get_ports();
        let mut tried = Vec::new();
        for (i, host) in hosts.iter().enumerate() {
            let postgres::config::Host::Tcp(name) = host else {
                return Ok(()); // a Unix socket: nothing of the kind can happen
            };
            let port = match ports {
                [] => 5432,
                [one] => *one,
                many => many.get(i).copied().unwrap_or(5432),
            };
            let Ok(addrs) = (name.as_str(), port).to_socket_addrs() else {
                return Ok(()); // the client reports what it cannot resolve
            };
            for addr in addrs {
                match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
                    Ok(s) if s.local_addr().ok() == s.peer_addr().ok() => {
                        // Closed with a reset, not the usual handshake: that one leaves
                        // the port in TIME-WAIT for a minute, and it is PostgreSQL's port,
                        // which PostgreSQL then could not bind when it started again.
                        abort(&s);
                        tried.push(format!("{addr}: nothing listens (connected to itself)"))
                    }
                    Ok(_) => return Ok(()),
                    Err(e) => tried.push(format!("{addr}: {e}")),
                }
            }
        }
        if tried.is_empty() || !self.config.get_hostaddrs().is_empty() {
            return Ok(());
        }
        Err(LogError::Database(format!(
            "error connecting to server: {}",
            tried.join("; ")
        )))
    }

    /// Forget the connection (after an error whose cause is unknown).
    pub fn drop_connection(&mut self) {
        self.client = None;
    }

    fn migrate(&mut self) -> Result<(), LogError> {
        // Before anything is created or recorded: a newer schema is not this version's
        // to add its own version row to.
        self.refuse_newer_schema()?;
        // Nodes starting at once may race on `CREATE TABLE IF NOT EXISTS` (PostgreSQL
        // can report a duplicate catalogue entry): try again.
        let mut attempt = 0;
        loop {
            let client = self.client()?;
            // Quiet: "relation … already exists, skipping" on every start is no news.
            let result = client
                .batch_execute(&format!("SET client_min_messages = warning; {SCHEMA}"))
                .and_then(|_| {
                    client.execute(
                        "INSERT INTO gatehouse_schema (version) VALUES ($1) ON CONFLICT DO NOTHING",
                        &[&SCHEMA_VERSION],
                    )
                });
            match result {
                Ok(_) => break,
                Err(_) if attempt < 5 && !client.is_closed() => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(50 * attempt));
                }
                Err(e) => return Err(db(e)),
            }
        }
        // Again: another version may have recorded itself meanwhile.
        self.refuse_newer_schema()?;
        self.notify = self
            .client()?
            .execute("SELECT pg_notify($1, '0')", &[&CHANNEL])
            .is_ok();
        if !self.notify {
            tracing::info!("the shared log has no LISTEN/NOTIFY: nodes poll it");
        }
        Ok(())
    }

    /// The last position and its hash (`0` and the genesis hash when empty).
    pub fn head(&mut self) -> Result<(u64, ChainHash), LogError> {
        let row = self
            .client()?
            .query_opt(
                "SELECT position, hash FROM gatehouse_events ORDER BY position DESC LIMIT 1",
                &[],
            )
            .map_err(db)?;
        match row {
            None => Ok((0, GENESIS_HASH)),
            Some(row) => {
                let seq = row.get::<_, i64>(0) as u64;
                Ok((seq, hash_of(row.get::<_, &[u8]>(1), seq)?))
            }
        }
    }

    /// The stored hash at `seq`, if that row exists.
    pub fn hash_at(&mut self, seq: u64) -> Result<Option<ChainHash>, LogError> {
        let row = self
            .client()?
            .query_opt(
                "SELECT hash FROM gatehouse_events WHERE position = $1",
                &[&(seq as i64)],
            )
            .map_err(db)?;
        row.map(|r| hash_of(r.get::<_, &[u8]>(0), seq)).transpose()
    }

    /// Every record of an export into an empty shared log, in one transaction: an import
    /// cut short (killed, the database gone) leaves nothing, where batches of their own
    /// left a shorter history that verified and was served.
    /// `cursors`: the shared delivery cursors raised to the last record in the same
    /// transaction (deliveries of an imported log start after it; raised after the
    /// commit, a kill in between sent the history again).
    pub fn import(&mut self, records: &[RawEvent], cursors: &[String]) -> Result<(), LogError> {
        let client = self.client()?;
        let mut tx = client.transaction().map_err(db)?;
        tx.batch_execute("LOCK TABLE gatehouse_events IN EXCLUSIVE MODE")
            .map_err(db)?;
        let taken: bool = tx
            .query_one("SELECT EXISTS (SELECT 1 FROM gatehouse_events)", &[])
            .map_err(db)?
            .get(0);
        if taken {
            return Err(LogError::Database(
                "the shared log is no longer empty: another process wrote to it".into(),
            ));
        }
        for chunk in records.chunks(1000) {
            let positions: Vec<i64> = chunk.iter().map(|r| r.seq as i64).collect();
            let hashes: Vec<&[u8]> = chunk.iter().map(|r| r.hash.as_slice()).collect();
            let bytes: Vec<&[u8]> = chunk.iter().map(|r| r.bytes.as_slice()).collect();
            tx.execute(
                "INSERT INTO gatehouse_events (position, hash, bytes)
                 SELECT * FROM unnest($1::BIGINT[], $2::BYTEA[], $3::BYTEA[])",
                &[&positions, &hashes, &bytes],
            )
            .map_err(db)?;
        }
        let position = records.last().map_or(0, |r| r.seq) as i64;
        for name in cursors {
            tx.execute(RAISE_CURSOR, &[name, &position]).map_err(db)?;
        }
        tx.commit().map_err(db)
    }

    /// Raise the shared delivery cursor `name` to `position` (never lowers it).
    pub fn raise_cursor(&mut self, name: &str, position: u64) -> Result<(), LogError> {
        self.client()?
            .execute(RAISE_CURSOR, &[&name, &(position as i64)])
            .map_err(db)?;
        Ok(())
    }

    /// Append `records` (numbered `after+1…`, chained onto `prev`, the hash at `after`)
    /// in one transaction. The insert only happens when the row at `after` still has hash
    /// `prev`, so a batch can never land anywhere but right after what its writer saw.
    pub fn append(
        &mut self,
        after: u64,
        prev: &ChainHash,
        records: &[RawEvent],
    ) -> Result<(), AppendError> {
        if records.is_empty() {
            return Ok(());
        }
        let positions: Vec<i64> = records.iter().map(|r| r.seq as i64).collect();
        let hashes: Vec<&[u8]> = records.iter().map(|r| r.hash.as_slice()).collect();
        let bytes: Vec<&[u8]> = records.iter().map(|r| r.bytes.as_slice()).collect();
        let notify = self.notify;
        let head = records.last().expect("not empty").seq.to_string();
        let client = self
            .client()
            .map_err(|e| AppendError::NotWritten(e.to_string()))?;
        // Whether the commit was sent: an error before it leaves nothing written (the
        // server rolls back a transaction whose connection ends), one during it an
        // unknown outcome.
        let mut committing = false;
        // A position another node took is skipped (`ON CONFLICT DO NOTHING`), not an error
        // that PostgreSQL logs with its statement: with several writers that was most
        // of its log. Fewer rows than sent roll the whole batch back, and tell which.
        let result = (|| -> Result<Result<(), bool>, postgres::Error> {
            let mut tx = client.transaction()?;
            let inserted = tx.execute(
                "INSERT INTO gatehouse_events (position, hash, bytes)
                 SELECT * FROM unnest($1::BIGINT[], $2::BYTEA[], $3::BYTEA[])
                 WHERE $4::BIGINT = 0
                    OR EXISTS (SELECT 1 FROM gatehouse_events WHERE position = $4 AND hash = $5)
                 ON CONFLICT (position) DO NOTHING",
                &[
                    &positions,
                    &hashes,
                    &bytes,
                    &(after as i64),
                    &prev.as_slice(),
                ],
            )?;
            if inserted as usize != records.len() {
                // Taken: another node's batch follows what this writer saw (a conflict,
                // to decide again); otherwise what it saw is not there (broken).
                let taken: bool = tx
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM gatehouse_events WHERE position = $1)
                            AND ($2::BIGINT = 0 OR EXISTS (
                                SELECT 1 FROM gatehouse_events WHERE position = $2 AND hash = $3))",
                        &[&positions[0], &(after as i64), &prev.as_slice()],
                    )?
                    .get(0);
                tx.rollback()?;
                return Ok(Err(taken));
            }
            if notify {
                tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &head])?;
            }
            committing = true;
            tx.commit()?;
            Ok(Ok(()))
        })();
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(true)) => Err(AppendError::Conflict),
            Ok(Err(false)) => Err(AppendError::Log(LogError::ChainBroken {
                seq: after,
                reason: "this node's copy of the log does not end where the shared log has it"
                    .into(),
            })),
            Err(e) if e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION) => {
                Err(AppendError::Conflict)
            }
            Err(e) => {
                self.drop_connection();
                Err(if committing {
                    AppendError::Unavailable(e.to_string())
                } else {
                    AppendError::NotWritten(e.to_string())
                })
            }
        }
    }

    /// After an append whose outcome is unknown (the connection broke around the
    /// commit): `Some(true)` when the batch is in the table (the hash of its last record
    /// is there: hashes chain the whole content, so it is this very batch), `Some(false)`
    /// when it is not (not at all, or another node's batch is), `None` when the database
    /// still cannot be asked.
    pub fn resolve(&mut self, records: &[RawEvent]) -> Option<bool> {
        let last = records.last()?;
        match self.hash_at(last.seq) {
            Ok(found) => Some(found == Some(last.hash)),
            Err(_) => {
                self.drop_connection();
                None
            }
        }
    }

    /// Up to `limit` rows after position `after` (whose hash is `prev`), the chain checked
    /// on the way: a missing position or a hash that does not recompute is an error with
    /// the position (fail-stop for the caller).
    pub fn read_after(
        &mut self,
        after: u64,
        prev: ChainHash,
        limit: i64,
    ) -> Result<Vec<RawEvent>, LogError> {
        let rows = self
            .client()?
            .query(
                "SELECT position, hash, bytes FROM gatehouse_events
                 WHERE position > $1 ORDER BY position LIMIT $2",
                &[&(after as i64), &limit],
            )
            .map_err(|e| {
                let e = db(e);
                self.drop_connection();
                e
            })?;
        let mut out = Vec::with_capacity(rows.len());
        let mut prev = prev;
        for (expected, row) in (after + 1..).zip(rows) {
            let seq = row.get::<_, i64>(0) as u64;
            if seq != expected {
                return Err(LogError::ChainBroken {
                    seq: expected,
                    reason: format!("position {expected} is missing (next stored is {seq})"),
                });
            }
            let hash = hash_of(row.get::<_, &[u8]>(1), seq)?;
            let bytes: Vec<u8> = row.get(2);
            if chain_hash(&prev, &bytes) != hash {
                return Err(LogError::ChainBroken {
                    seq,
                    reason: "the stored hash does not match the event".into(),
                });
            }
            prev = hash;
            out.push(RawEvent { seq, hash, bytes });
        }
        Ok(out)
    }

    /// Rows from position 1 (to `to`, when given), chain checked, in pages, handed to
    /// `f` in order (it returns false to stop). Returns the last position handed over and
    /// its hash.
    pub fn for_each(
        &mut self,
        to: Option<u64>,
        mut f: impl FnMut(&RawEvent) -> Result<bool, LogError>,
    ) -> Result<(u64, ChainHash), LogError> {
        let (mut seq, mut prev) = (0u64, GENESIS_HASH);
        loop {
            let page = self.read_after(seq, prev, 10_000)?;
            if page.is_empty() {
                return Ok((seq, prev));
            }
            for r in &page {
                if to.is_some_and(|t| r.seq > t) || !f(r)? {
                    return Ok((seq, prev));
                }
                (seq, prev) = (r.seq, r.hash);
            }
        }
    }

    /// Bring the local copy up to the shared log's head (start-up, `gatehouse` tools);
    /// returns the rows copied. The local copy must be a prefix of the shared log.
    pub fn copy_into(&mut self, local: &mut EventLog) -> Result<u64, LogError> {
        self.check_prefix(local)?;
        let mut copied = 0;
        loop {
            let page = self.read_after(local.head_seq(), local.head_hash(), 10_000)?;
            if page.is_empty() {
                return Ok(copied);
            }
            local.append_raw(&page)?;
            copied += page.len() as u64;
        }
    }

    /// The local copy ends on a row of the shared log with the same hash.
    pub fn check_prefix(&mut self, local: &EventLog) -> Result<(), LogError> {
        let seq = local.head_seq();
        if seq == 0 {
            return Ok(());
        }
        match self.hash_at(seq)? {
            Some(h) if h == local.head_hash() => Ok(()),
            Some(_) => Err(LogError::ChainBroken {
                seq,
                reason: "this data directory's log ends here with another hash than the \
                         shared log has: they differ here or before (`gatehouse verify` of \
                         each names the first position that does not verify)"
                    .into(),
            }),
            None if self.head()?.0 == 0 => Err(LogError::Database(format!(
                "the shared log is empty but this data directory holds {seq} events: move them there with `gatehouse export` and `gatehouse import --store …`, or start with an empty data directory"
            ))),
            None => {
                let shared = self.head()?.0;
                Err(LogError::ChainBroken {
                    seq,
                    reason: format!(
                        "this data directory's log ends here, but the shared log ends at \
                         position {shared}: the shared log lost events, or this is another log"
                    ),
                })
            }
        }
    }
}

/// Close a socket at once with a reset (`SO_LINGER` of zero), leaving no TIME-WAIT.
fn abort(s: &std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor, and a `linger` of the size given.
    let _ = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
}

#[cfg(test)]
mod tests {
    /// Before the client starts: nothing listening is "not reachable" (the client is not
    /// started, so it cannot be handed the address it wants as its own and wait on
    /// itself); something listening is.
    #[test]
    fn the_client_is_started_only_when_something_listens() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = super::PgLog::unconnected(&format!("postgres://u@127.0.0.1:{port}/d")).unwrap();
        assert!(log.reachable().is_ok());
        drop(listener);
        let e = log.reachable().unwrap_err().to_string();
        assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
        let log = super::PgLog::unconnected("host=/var/run/postgresql user=u dbname=d").unwrap();
        assert!(log.reachable().is_ok(), "a Unix socket is not probed");
    }

    /// TLS when asked for over TCP (libpq's verifying modes too); never over a Unix
    /// socket, where PostgreSQL offers none (libpq ignores `sslmode` there).
    #[test]
    fn tls_is_asked_for_over_tcp_only() {
        let tls = |url: &str| super::PgLog::unconnected(url).unwrap().tls;
        assert!(tls("postgres://u@db:5432/d?sslmode=require"));
        assert!(tls("postgres://u@db/d?sslmode=verify-full"));
        assert!(tls("host=db user=u dbname=d sslmode=verify-ca"));
        assert!(!tls("postgres://u@db/d"));
        assert!(!tls("postgres://u@db/d?sslmode=prefer"));
        assert!(!tls(
            "host=/var/run/postgresql user=u dbname=d sslmode=require"
        ));
    }

    /// No form of connection string reaches a message with its password.
    #[test]
    fn a_connection_string_is_redacted_in_either_form() {
        use super::redact;
        assert_eq!(
            redact("postgres://gh:Secret1@db:5432/gh"),
            "postgres://gh:***@db:5432/gh"
        );
        assert_eq!(
            redact("postgres://db/gh?user=gh&password=Secret2&sslmode=require"),
            "postgres://db/gh?user=gh&password=***&sslmode=require"
        );
        assert_eq!(
            redact("host=127.0.0.1 port=5432 user=gh password=Secret3 dbname=gh"),
            "host=127.0.0.1 port=5432 user=gh password=*** dbname=gh"
        );
        assert_eq!(
            redact(r"host=h PASSWORD = 'Sec ret\'4' dbname=gh"),
            "host=h PASSWORD = *** dbname=gh"
        );
        // Mistyped forms: whatever stands before an `@` is taken for a password.
        assert_eq!(redact("postgres:/gh:Secret5@db/gh"), "***@db/gh");
        assert_eq!(
            redact("host=h user=u password=Se@cretPW dbname=x"),
            "host=h user=u password=*** dbname=x"
        );
        assert_eq!(redact("postgres//gh:Secret6@db/gh"), "***@db/gh");
        for s in [
            "postgres://gh:Secret1@db:5432/gh",
            "host=h password=Secret3",
            r"password='Sec ret\'4' host=h",
            "password=",
        ] {
            assert!(!redact(s).contains("Sec"), "{s} -> {}", redact(s));
        }
    }
}

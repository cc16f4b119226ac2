//! Settings: command-line flags (also `GATEHOUSE_*` environment variables) and the
//! optional `--config` file (TOML, kebab-case keys; every key has a default).

use crate::log::StartupVerify;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Tunables read from the `--config` file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Config {
    /// Write a snapshot of the read models every this many events (and at clean shutdown).
    pub snapshot_every: u64,
    /// Request bodies above this many bytes are answered 413.
    pub max_body_bytes: usize,
    /// This many failed sign-ins in a row lock the user until an admin unlocks it (only
    /// failures from familiar addresses count, unless `lockout-from = "any"`).
    pub lockout_threshold: u32,
    /// How long a verified password stays cached (seconds). 0 disables the cache.
    pub auth_cache_ttl_secs: u64,
    /// How much of the hash chain start-up verifies before serving: `full` or `tail`.
    pub startup_verify: StartupVerify,
    /// Commands that may wait for the writer before senders are made to wait.
    pub writer_queue: usize,
    /// HTTP worker threads (default: one per core).
    pub workers: Option<usize>,
    /// Token expiry (seconds) when a request gives none; 0 = tokens do not expire by default.
    pub default_expiry: u64,
    /// Longest expiry (seconds) a non-admin may ask for; 0 = unlimited (seed 004).
    pub max_expiry: u64,
    /// When false, tokens are created non-refreshable, admins' too (seed 004: "all the
    /// user tokens"); the answer says so in `X-Gatehouse-Notice`.
    pub allow_refreshable: bool,
    /// Tokens that live shorter than this (seconds) are not kept as revocable records.
    pub revocable_expiry_threshold: u64,
    /// How long after expiry a refresh token still works (seconds).
    pub refresh_grace_period: u64,
    /// Forget the records of tokens past use (expired, and past the refresh grace
    /// period when refreshable) every this many seconds (0: keep them).
    pub token_sweep_seconds: u64,
    /// Lifetime of a pairing token (seconds; seed 004: 5 minutes).
    pub pairing_token_expiry: u64,
    /// Reverse proxies (CIDRs) whose `X-Forwarded-For` is believed. Empty (the default):
    /// the client address is the TCP peer, and `X-Forwarded-For` is ignored, so no
    /// client can pick the address an access key's CIDRs are checked against.
    pub trusted_proxies: Vec<String>,
    /// How many snapshots to keep (0: all). Start-up needs only the newest; point-in-time
    /// reads start from the in-memory checkpoints (`as-of-every`), and from the nearest
    /// snapshot only while those are being built or when they are off.
    pub snapshot_keep: usize,
    /// Keep the read models in memory every this many events, once the first
    /// point-in-time read asks for the past (0: past states come from snapshots only).
    pub as_of_every: u64,
    /// Past this many checkpoints every other one is dropped and the spacing doubles.
    pub as_of_checkpoints: usize,
    /// Sign a checkpoint of the log every this many events (0: only on demand).
    pub checkpoint_every: u64,
    /// Import the LDAP group settings' groups every this many seconds (0: only on the
    /// admin's `refresh` call and at sign-in).
    pub ldap_sync_interval: u64,
    /// Deliveries a subscription may have waiting on disk; beyond, they are read from
    /// the log again once the receiver is back.
    pub webhook_max_pending: usize,
    /// Attempts of one webhook delivery before it goes to the dead letters.
    pub webhook_max_attempts: u32,
    /// First retry delay of a webhook delivery (milliseconds); it doubles per attempt.
    pub webhook_retry_base_ms: u64,
    /// Longest retry delay of a webhook delivery (milliseconds).
    pub webhook_retry_max_ms: u64,
    /// Timeout of one webhook request (milliseconds).
    pub webhook_timeout_ms: u64,
    /// Pending changes a federation target may fall behind by before the source drops
    /// them and sends it a full broadcast instead.
    pub federation_max_lag_events: usize,
    /// Longest delay between retries of the federation stream (milliseconds).
    pub federation_retry_max_ms: u64,
    /// Timeout of one request to a federation peer (milliseconds).
    pub federation_timeout_ms: u64,
    /// A bearer token that may read the metrics (besides admins). Also
    /// `GATEHOUSE_METRICS_TOKEN`.
    pub metrics_token: Option<Secret>,
    /// Failed sign-ins one client address may make at once (0: no limit) ...
    pub signin_address_burst: u32,
    /// ... and per minute after that.
    pub signin_address_per_minute: u32,
    /// Failed sign-ins on one user name from addresses it never signed in from, at once
    /// (0: no limit) ...
    pub signin_user_burst: u32,
    /// ... and per minute after that.
    pub signin_user_per_minute: u32,
    /// Which failed sign-ins count towards `lockout-threshold`: `familiar` (from an
    /// address the user signed in from within `familiar-address-days`) or `any`.
    pub lockout_from: LockoutFrom,
    /// How long an address stays familiar to a user after a successful sign-in (days).
    pub familiar_address_days: u64,
    /// Password checks (argon2id) that run at once (0: one less than the cores, at least 1).
    pub argon2_concurrency: usize,
    /// Password checks that may wait for one of those; beyond, 503 with `Retry-After`.
    pub argon2_queue: usize,
    /// Time a client has to send a request's headers (milliseconds; 0: no limit).
    pub header_timeout_ms: u64,
    /// Time a client has to send a request's body (milliseconds).
    pub body_timeout_ms: u64,
    /// Idle time before a kept-alive connection is closed (seconds; 0: no keep-alive).
    pub keep_alive_secs: u64,
    /// Open connections the server accepts at once (spread over the workers).
    pub max_connections: usize,
    /// TLS: the certificate chain (PEM). With `tls-key`, the server speaks HTTPS only.
    pub tls_cert: Option<PathBuf>,
    /// TLS: the private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
    /// Extra root certificates (PEM) that outgoing calls trust besides the system's.
    pub ca_file: Option<PathBuf>,
    /// sled's page cache of `<data-dir>/log` (MiB), which now holds only the data
    /// directory's lock and what an older version left there (events are in
    /// `events.log`, snapshots in `snapshots/*.snap`): a small cache serves, and sled's
    /// own default is 1 GiB.
    pub log_cache_mib: u64,
    /// sled's page cache for the webhook and federation outboxes (MiB).
    pub outbox_cache_mib: u64,
    /// The shared event log of several nodes (`postgres://user:pass@host:port/db`; also
    /// `--store` and `GATEHOUSE_STORE`). None: the log in the data directory (`events.log`).
    pub store: Option<Secret>,
    /// How often a node looks at the shared log for other nodes' events when no
    /// notification woke it (milliseconds; the only way on databases without LISTEN).
    pub follow_poll_ms: u64,
    /// Whether a node LISTENs for other nodes' appends (false: it only polls; for
    /// databases without LISTEN/NOTIFY such as CockroachDB, found out by itself too).
    pub follow_listen: bool,
    /// Several nodes: the file every node reads the master key from (at least 32 secret
    /// bytes); private keys are then shared through PostgreSQL, sealed under it. Also
    /// `--master-key-file` and `GATEHOUSE_MASTER_KEY_FILE`.
    pub master_key_file: Option<PathBuf>,
    /// How long a request with `X-Gatehouse-Min-Seq` waits for this node to apply that
    /// position before it is answered 503 (milliseconds).
    pub min_seq_wait_ms: u64,
    /// Several nodes: how often the node holding the lease for deliveries (webhooks,
    /// federation, checkpoints, LDAP sync) renews it, and the others try to take it
    /// (milliseconds).
    pub lease_renew_ms: u64,
    /// Several nodes: how long that lease lasts unrenewed, on the database's clock: a dead
    /// holder's work moves to another node within about this (milliseconds).
    pub lease_ttl_ms: u64,
}

/// Which failed sign-ins may lock a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockoutFrom {
    Familiar,
    Any,
}

/// A configured secret: never printed by `Debug`, nor by the error of a value of the
/// wrong type (serde's names the value: `metrics-token = 123456789` printed it).
#[derive(Clone)]
pub struct Secret(pub String);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        fn hidden<E: serde::de::Error>() -> E {
            E::custom("expected a string (the value given is not shown: it is a secret)")
        }
        impl<'de> serde::de::Visitor<'de> for Text {
            type Value = Secret;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Secret, E> {
                Err(hidden())
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Secret, E> {
                Err(hidden())
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Secret, E> {
                Err(hidden())
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Secret, E> {
                Err(hidden())
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
                Err(hidden())
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<Secret, A::Error> {
                Err(hidden())
            }
        }
        d.deserialize_any(Text)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            snapshot_every: 100_000,
            max_body_bytes: 1024 * 1024,
            lockout_threshold: 5,
            auth_cache_ttl_secs: 300,
            startup_verify: StartupVerify::Full,
            writer_queue: 8192,
            workers: None,
            default_expiry: 3600,
            max_expiry: 0,
            allow_refreshable: true,
            revocable_expiry_threshold: 6 * 3600,
            refresh_grace_period: 24 * 3600,
            token_sweep_seconds: 3600,
            pairing_token_expiry: 300,
            trusted_proxies: vec![],
            checkpoint_every: 10_000,
            ldap_sync_interval: 3600,
            snapshot_keep: 2,
            as_of_every: 10_000,
            as_of_checkpoints: 1_000,
            webhook_max_pending: 100_000,
            webhook_max_attempts: 10,
            webhook_retry_base_ms: 1000,
            webhook_retry_max_ms: 300_000,
            webhook_timeout_ms: 10_000,
            federation_max_lag_events: 100_000,
            federation_retry_max_ms: 5_000,
            federation_timeout_ms: 30_000,
            metrics_token: None,
            signin_address_burst: 20,
            signin_address_per_minute: 10,
            signin_user_burst: 10,
            signin_user_per_minute: 2,
            lockout_from: LockoutFrom::Familiar,
            familiar_address_days: 30,
            argon2_concurrency: 0,
            argon2_queue: 64,
            header_timeout_ms: 5_000,
            body_timeout_ms: 30_000,
            keep_alive_secs: 5,
            max_connections: 25_000,
            tls_cert: None,
            tls_key: None,
            ca_file: None,
            log_cache_mib: 8,
            outbox_cache_mib: 16,
            store: None,
            follow_poll_ms: 250,
            follow_listen: true,
            master_key_file: None,
            min_seq_wait_ms: 2_000,
            lease_renew_ms: 1_000,
            lease_ttl_ms: 5_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// Values past what their key can mean are refused by name: a queue, a thread count
    /// or a timer past its type's range panicked at start or on every request (an
    /// `Instant` overflow), and 0 or inverted values turned a retry or a timeout into a
    /// busy loop or nothing, silently.
    fn check_ranges(&self) -> Result<(), String> {
        const HOUR_MS: u64 = 3_600_000;
        const DAY: u64 = 86_400;
        const CENTURY: u64 = 100 * 365 * DAY;
        let ranges: [(&str, u64, u64, u64); 26] = [
            // Values that crashed the start (a semaphore past its most permits, a cache
            // size multiplied past 64 bits) or could never be served.
            (
                "argon2-concurrency",
                self.argon2_concurrency as u64,
                0,
                4096,
            ),
            ("argon2-queue", self.argon2_queue as u64, 0, 1 << 20),
            ("max-connections", self.max_connections as u64, 1, 1 << 20),
            ("log-cache-mib", self.log_cache_mib, 0, 1 << 20),
            ("outbox-cache-mib", self.outbox_cache_mib, 0, 1 << 20),
            ("writer-queue", self.writer_queue as u64, 1, 1 << 20),
            ("workers", self.workers.unwrap_or(1) as u64, 1, 1024),
            ("keep-alive-secs", self.keep_alive_secs, 0, 3600),
            ("auth-cache-ttl-secs", self.auth_cache_ttl_secs, 0, 7 * DAY),
            ("header-timeout-ms", self.header_timeout_ms, 0, HOUR_MS),
            ("body-timeout-ms", self.body_timeout_ms, 1, HOUR_MS),
            ("webhook-timeout-ms", self.webhook_timeout_ms, 1, HOUR_MS),
            (
                "federation-timeout-ms",
                self.federation_timeout_ms,
                1,
                HOUR_MS,
            ),
            (
                "webhook-retry-base-ms",
                self.webhook_retry_base_ms,
                1,
                HOUR_MS,
            ),
            (
                "webhook-retry-max-ms",
                self.webhook_retry_max_ms,
                1,
                7 * DAY * 1000,
            ),
            (
                "federation-retry-max-ms",
                self.federation_retry_max_ms,
                1,
                HOUR_MS,
            ),
            ("pairing-token-expiry", self.pairing_token_expiry, 1, DAY),
            ("follow-poll-ms", self.follow_poll_ms, 1, HOUR_MS),
            ("min-seq-wait-ms", self.min_seq_wait_ms, 0, 600_000),
            ("lease-ttl-ms", self.lease_ttl_ms, 2, 600_000),
            ("lease-renew-ms", self.lease_renew_ms, 1, 600_000),
            (
                "token-sweep-seconds",
                self.token_sweep_seconds,
                0,
                365 * DAY,
            ),
            ("default-expiry", self.default_expiry, 0, CENTURY),
            ("max-expiry", self.max_expiry, 0, CENTURY),
            (
                "refresh-grace-period",
                self.refresh_grace_period,
                0,
                CENTURY,
            ),
            (
                "revocable-expiry-threshold",
                self.revocable_expiry_threshold,
                0,
                CENTURY,
            ),
        ];
        for (key, value, min, max) in ranges {
            if value < min || value > max {
                return Err(format!(
                    "`{key}` must be from {min} to {max} (it is {value})"
                ));
            }
        }
        if self.snapshot_keep == 1 {
            // The newest snapshot is written while the one before stays readable: one
            // kept was two (quietly).
            return Err(
                "`snapshot-keep` must be 0 (all) or at least 2 (the one being replaced stays until the next is complete)"
                    .into(),
            );
        }
        if self.webhook_retry_max_ms < self.webhook_retry_base_ms {
            return Err("`webhook-retry-max-ms` must be at least `webhook-retry-base-ms`".into());
        }
        if self.lease_renew_ms >= self.lease_ttl_ms {
            return Err(
                "`lease-renew-ms` must be less than `lease-ttl-ms` (a lease renewed after it \
                 ended moves between nodes all the time)"
                    .into(),
            );
        }
        if let Some(t) = &self.metrics_token {
            if t.0.trim() != t.0 {
                return Err(
                    "`metrics-token` must not start or end with white space (a scraper's \
                     token is compared without it)"
                        .into(),
                );
            }
        }
        Ok(())
    }

    /// Password checks that run at once.
    pub fn argon2_slots(&self) -> usize {
        if self.argon2_concurrency > 0 {
            return self.argon2_concurrency;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        cores.saturating_sub(1).max(1)
    }

    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        // With the line and its key, which `message()` alone does not name (`invalid
        // value: integer `-1`, expected u32`); not the line itself, which may hold a
        // secret (a `store` URL with its password).
        let config: Config = toml::from_str(&text).map_err(|e| {
            let at = e.span().map(|span| {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                let key = (text.lines().nth(line - 1))
                    .and_then(|l| l.split_once('='))
                    .map(|(k, _)| k.trim().to_string());
                match key {
                    Some(k) if !k.is_empty() => format!("line {line}, `{k}`: "),
                    _ => format!("line {line}: "),
                }
            });
            ConfigError::Invalid {
                path: path.into(),
                message: format!("{}{}", at.unwrap_or_default(), e.message()),
            }
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.into(),
            message,
        };
        for (burst, per_minute, b, m) in [
            (
                config.signin_address_burst,
                config.signin_address_per_minute,
                "signin-address-burst",
                "signin-address-per-minute",
            ),
            (
                config.signin_user_burst,
                config.signin_user_per_minute,
                "signin-user-burst",
                "signin-user-per-minute",
            ),
        ] {
            if burst > 0 && per_minute == 0 {
                return Err(invalid(format!(
                    "`{m}` must be at least 1 while `{b}` is set (a limit that never refills \
                     refuses every sign-in after the burst, the right password too); \
                     `{b} = 0` turns the limit off"
                )));
            }
        }
        if config.familiar_address_days == 0 && config.lockout_from == LockoutFrom::Familiar {
            return Err(invalid(
                "`familiar-address-days` must be at least 1 with `lockout-from = \"familiar\"` \
                 (no address would ever be familiar, and no user ever locked)"
                    .into(),
            ));
        }
        if config
            .metrics_token
            .as_ref()
            .is_some_and(|t| t.0.trim().is_empty())
        {
            return Err(invalid("`metrics-token` must not be empty".into()));
        }
        if config.lockout_threshold == 0 {
            return Err(ConfigError::Invalid {
                path: path.into(),
                message: "`lockout-threshold` must be at least 1".into(),
            });
        }
        // `max-expiry` under `default-expiry` is no contradiction: non-admins get
        // `max-expiry` when they give none (`http::tokens`), admins the default. (A file
        // with `max-expiry = 600` alone stopped the server.)
        if let Some(bad) = config
            .trusted_proxies
            .iter()
            .find(|c| crate::auth::parse_cidr(c).is_none())
        {
            return Err(ConfigError::Invalid {
                path: path.into(),
                message: format!("`trusted-proxies`: `{bad}` is not a CIDR or an IP address"),
            });
        }
        if config.webhook_max_attempts == 0
            || config.webhook_timeout_ms == 0
            || config.webhook_max_pending == 0
        {
            return Err(ConfigError::Invalid {
                path: path.into(),
                message: "`webhook-max-attempts`, `webhook-max-pending` and `webhook-timeout-ms` must be at least 1"
                    .into(),
            });
        }
        // `tls-cert` and `tls-key` go together, but one may come from the command line:
        // checked once the flags are merged (`serve`, and `Application::build`).
        if config.max_connections == 0 || config.body_timeout_ms == 0 {
            return Err(ConfigError::Invalid {
                path: path.into(),
                message: "`max-connections` and `body-timeout-ms` must be at least 1".into(),
            });
        }
        if config.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid {
                path: path.into(),
                message: "`max-body-bytes` must be at least 1024".into(),
            });
        }
        config.check_ranges().map_err(invalid)?;
        Ok(config)
    }
}

/// Everything a server needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: String,
    pub config: Config,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gatehouse.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(Some(&path))
    }

    /// A secret of the wrong type is refused without its value in the message.
    #[test]
    fn a_secret_of_the_wrong_type_is_not_printed() {
        for text in [
            "metrics-token = 123456789",
            "metrics-token = 1234.5678",
            "metrics-token = [\"123456789\"]",
            "metrics-token = { a = \"123456789\" }",
        ] {
            let e = load(text).unwrap_err().to_string();
            assert!(e.contains("metrics-token") && e.contains("secret"), "{e}");
            assert!(!e.contains("123456789") && !e.contains("1234.5678"), "{e}");
        }
        let c = load("metrics-token = \"scrape-token-1\"").unwrap();
        assert_eq!(c.metrics_token.unwrap().0, "scrape-token-1");
    }

    #[test]
    fn keys_are_optional_and_kebab_case() {
        let c = load("snapshot-every = 7\nstartup-verify = \"tail\"\n").unwrap();
        assert_eq!(c.snapshot_every, 7);
        assert_eq!(c.startup_verify, StartupVerify::Tail);
        assert_eq!(c.lockout_threshold, Config::default().lockout_threshold);
        assert_eq!(Config::load(None).unwrap().max_body_bytes, 1024 * 1024);
    }

    #[test]
    fn mistakes_are_named() {
        let e = load("snapshot-evry = 7\n").unwrap_err().to_string();
        assert!(e.contains("snapshot-evry"), "{e}");
        let e = load("lockout-threshold = 0\n").unwrap_err().to_string();
        assert!(e.contains("lockout-threshold"), "{e}");
        // One snapshot kept was two, quietly.
        let e = load("snapshot-keep = 1\n").unwrap_err().to_string();
        assert!(e.contains("snapshot-keep"), "{e}");
        assert_eq!(load("snapshot-keep = 0\n").unwrap().snapshot_keep, 0);
        let e = load("startup-verify = \"sometimes\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sometimes") || e.contains("variant"), "{e}");
        // A wrong type names its key and line, not only the type.
        let e = load("snapshot-every = 7\nlockout-threshold = -1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2, `lockout-threshold`"), "{e}");
        // Values that would turn a protection into a trap are refused, by name.
        for (text, key) in [
            (
                "signin-address-per-minute = 0\n",
                "signin-address-per-minute",
            ),
            ("signin-user-per-minute = 0\n", "signin-user-per-minute"),
            ("familiar-address-days = 0\n", "familiar-address-days"),
            ("metrics-token = \" \"\n", "metrics-token"),
            ("metrics-token = \"tok \"\n", "metrics-token"),
            // Past what the key can mean: a panic at start or on every request before.
            ("writer-queue = 9223372036854775807\n", "writer-queue"),
            ("workers = 9223372036854775807\n", "workers"),
            ("workers = 0\n", "workers"),
            ("keep-alive-secs = 9223372036854775807\n", "keep-alive-secs"),
            (
                "auth-cache-ttl-secs = 9223372036854775807\n",
                "auth-cache-ttl-secs",
            ),
            ("federation-timeout-ms = 0\n", "federation-timeout-ms"),
            ("webhook-retry-max-ms = 0\n", "webhook-retry-max-ms"),
            (
                "webhook-retry-base-ms = 5000\nwebhook-retry-max-ms = 10\n",
                "webhook-retry-max-ms",
            ),
            ("pairing-token-expiry = 0\n", "pairing-token-expiry"),
            ("lease-renew-ms = 10000\nlease-ttl-ms = 100\n", "lease"),
            ("follow-poll-ms = 0\n", "follow-poll-ms"),
            ("writer-queue = 0\n", "writer-queue"),
            (
                "argon2-concurrency = 9223372036854775807\n",
                "argon2-concurrency",
            ),
            ("log-cache-mib = 17592186044416\n", "log-cache-mib"),
            ("outbox-cache-mib = 17592186044416\n", "outbox-cache-mib"),
            ("max-connections = 0\n", "max-connections"),
        ] {
            let e = load(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
        // ... and taken where they mean what they say.
        load("signin-address-burst = 0\nsignin-address-per-minute = 0\n").unwrap();
        load("lockout-from = \"any\"\nfamiliar-address-days = 0\n").unwrap();
    }

    #[test]
    fn operations_keys_parse_and_the_scrape_token_is_not_printed() {
        let c = load(
            "metrics-token = \"s3cret-scrape\"\nlockout-from = \"any\"\nsignin-user-burst = 0\n",
        )
        .unwrap();
        assert_eq!(c.lockout_from, LockoutFrom::Any);
        assert_eq!(c.signin_user_burst, 0);
        assert!(!format!("{c:?}").contains("s3cret-scrape"));
        let e = load("lockout-from = \"nobody\"\n").unwrap_err().to_string();
        assert!(e.contains("nobody") || e.contains("variant"), "{e}");
    }
}

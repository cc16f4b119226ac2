//! Metrics in the Prometheus text format (OpenMetrics flavour, as `prometheus-client`
//! writes it), served at `/access/api/v1/metrics` and `/metrics`.
//!
//! One [`Metrics`] per server (no global registry): counters and histograms are updated
//! where things happen (HTTP middleware, writer thread, authenticator); gauges that
//! describe a state (queue depth, log position, snapshot age, webhook and federation
//! backlogs, locked users, process memory) are read when scraped, so they cost nothing
//! between scrapes.
//!
//! **Architecture invariant:** a label value is never user input that can grow without
//! bound: routes are actix's *templates* (`/access/api/v2/users/{username}`), never the
//! raw path; per-subscription and per-target series are named by admins.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: &'static str,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    pub by: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubscriptionLabels {
    pub subscription: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LeaseLabels {
    pub name: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    pub target: String,
}

fn latency_histogram() -> Histogram {
    // 100 µs .. ~3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// Connections closed before a request was read, counted by the log filter that keeps
/// them out of the log (`main.rs`): actix reports a client's malformed request head at
/// ERROR, though the server did nothing wrong (a port scanner filled the log with them). One process-wide family, shared by every
/// `Metrics` (the log filter is set up before the server exists).
pub static CONNECTIONS_REFUSED: std::sync::LazyLock<Family<ReasonLabels, Counter>> =
    std::sync::LazyLock::new(Family::default);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// `malformed`: the request head did not parse, or had too many header lines.
    pub reason: &'static str,
}

/// A log layer that keeps actix's ERROR lines about a client's unreadable request out of
/// the log and counts them in [`CONNECTIONS_REFUSED`] instead (the client got its 400 or
/// 431; the server is fine). Every other line passes.
pub struct RefusedConnections;

/// The lines [`RefusedConnections`] reads: actix's ERROR lines about a connection (its
/// filter, so that it enables no other callsite).
pub fn is_refusal_line(meta: &tracing::Metadata<'_>) -> bool {
    *meta.level() == tracing::Level::ERROR && meta.target() == "actix_http::h1::dispatcher"
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RefusedConnections {
    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        let meta = event.metadata();
        if !is_refusal_line(meta) {
            return true;
        }
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if f.name() == "message" {
                    self.0 = format!("{v:?}");
                }
            }
        }
        let mut m = Message(String::new());
        event.record(&mut m);
        // (A request head that does not arrive in time is answered 408 with a TRACE line
        // only, on HTTP/1: nothing to keep out, and nothing that reaches here to count.)
        let reason = match m.0.strip_prefix("stream error: ") {
            Some(r) if r.starts_with("request parse error") => "malformed",
            _ => return true,
        };
        CONNECTIONS_REFUSED
            .get_or_create(&ReasonLabels { reason })
            .inc();
        false
    }
}

pub struct Metrics {
    registry: Registry,
    /// One scrape at a time: the per-subscription families are cleared and refilled.
    scrape: Mutex<()>,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub writer_batch_commands: Histogram,
    pub writer_flush_seconds: Histogram,
    pub writer_events: Counter,
    /// Batches another node appended at the same position first (shared log).
    pub writer_conflicts: Counter,
    pub writer_queue_depth: Gauge,
    pub log_position: Gauge,
    pub snapshot_age_seconds: Gauge,
    pub snapshot_age_events: Gauge,
    /// Unix milliseconds and position of the newest snapshot written (or loaded).
    pub snapshot_at_ms: AtomicU64,
    pub snapshot_seq: AtomicU64,
    pub auth_cache_hits: Family<KindLabels, Counter>,
    pub auth_cache_misses: Family<KindLabels, Counter>,
    pub signins_failed: Counter,
    pub signins_limited: Family<LimitLabels, Counter>,
    pub lockouts: Counter,
    pub users_locked: Gauge,
    pub argon2_verifications: Counter,
    pub argon2_waiting: Gauge,
    pub argon2_rejected: Counter,
    pub webhook_pending: Family<SubscriptionLabels, Gauge>,
    pub webhook_dead_letters: Family<SubscriptionLabels, Gauge>,
    pub webhook_lag_events: Family<SubscriptionLabels, Gauge>,
    pub webhook_lag_seconds: Family<SubscriptionLabels, Gauge>,
    pub federation_pending: Family<TargetLabels, Gauge>,
    pub federation_lag_events: Family<TargetLabels, Gauge>,
    pub federation_lag_seconds: Family<TargetLabels, Gauge>,
    pub federation_broadcast_owed: Family<TargetLabels, Gauge>,
    /// 1 on the node holding a lease (several nodes; always 1 on sled).
    pub lease_held: Family<LeaseLabels, Gauge>,
    pub as_of_rebuilds: Counter,
    pub as_of_rebuild_seconds: Histogram,
    pub as_of_checkpoints: Gauge,
    pub resident_memory_bytes: Gauge,
    pub open_fds: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::default();
        let m = Metrics {
            registry: Registry::default(),
            scrape: Mutex::new(()),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            writer_batch_commands: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            writer_flush_seconds: latency_histogram(),
            writer_events: Counter::default(),
            writer_conflicts: Counter::default(),
            writer_queue_depth: Gauge::default(),
            log_position: Gauge::default(),
            snapshot_age_seconds: Gauge::default(),
            snapshot_age_events: Gauge::default(),
            snapshot_at_ms: AtomicU64::new(0),
            snapshot_seq: AtomicU64::new(0),
            auth_cache_hits: Family::default(),
            auth_cache_misses: Family::default(),
            signins_failed: Counter::default(),
            signins_limited: Family::default(),
            lockouts: Counter::default(),
            users_locked: Gauge::default(),
            argon2_verifications: Counter::default(),
            argon2_waiting: Gauge::default(),
            argon2_rejected: Counter::default(),
            webhook_pending: Family::default(),
            webhook_dead_letters: Family::default(),
            webhook_lag_events: Family::default(),
            webhook_lag_seconds: Family::default(),
            federation_pending: Family::default(),
            federation_lag_events: Family::default(),
            federation_lag_seconds: Family::default(),
            federation_broadcast_owed: Family::default(),
            lease_held: Family::default(),
            as_of_rebuilds: Counter::default(),
            as_of_rebuild_seconds: latency_histogram(),
            as_of_checkpoints: Gauge::default(),
            resident_memory_bytes: Gauge::default(),
            open_fds: Gauge::default(),
        };
        let g = &mut r;
        g.register(
            "gatehouse_http_requests",
            "HTTP requests by method, route template and status",
            m.requests.clone(),
        );
        g.register(
            "gatehouse_http_request_duration_seconds",
            "HTTP request latency by method and route template",
            m.request_seconds.clone(),
        );
        g.register(
            "gatehouse_http_connections_refused",
            "Connections closed with a 400 or 431 before a request could be read (a request \
             head that does not parse or has too many header lines), by reason",
            CONNECTIONS_REFUSED.clone(),
        );
        g.register(
            "gatehouse_writer_batch_commands",
            "Commands committed together by one flush (group commit)",
            m.writer_batch_commands.clone(),
        );
        g.register(
            "gatehouse_writer_flush_duration_seconds",
            "Time to append and flush one batch to the event log",
            m.writer_flush_seconds.clone(),
        );
        g.register(
            "gatehouse_writer_events",
            "Events appended by the writer",
            m.writer_events.clone(),
        );
        g.register(
            "gatehouse_writer_conflicts",
            "Batches decided again because another node appended at the same position first",
            m.writer_conflicts.clone(),
        );
        g.register(
            "gatehouse_writer_queue_depth",
            "Commands waiting for the writer",
            m.writer_queue_depth.clone(),
        );
        g.register(
            "gatehouse_log_position",
            "Position of the last event of the log (visible to readers)",
            m.log_position.clone(),
        );
        g.register(
            "gatehouse_snapshot_age_seconds",
            "Seconds since the newest snapshot was written or loaded by this process",
            m.snapshot_age_seconds.clone(),
        );
        g.register(
            "gatehouse_snapshot_age_events",
            "Events appended since the newest snapshot",
            m.snapshot_age_events.clone(),
        );
        g.register(
            "gatehouse_auth_cache_hits",
            "Credentials answered from a cache (kind: password, token, ldap)",
            m.auth_cache_hits.clone(),
        );
        g.register(
            "gatehouse_auth_cache_misses",
            "Credentials that had to be verified (kind: password, token, ldap)",
            m.auth_cache_misses.clone(),
        );
        g.register(
            "gatehouse_signins_failed",
            "Sign-ins with a wrong password or an unknown name",
            m.signins_failed.clone(),
        );
        g.register(
            "gatehouse_signins_limited",
            "Sign-ins refused with 429 by the failed-sign-in limits (by: address, user)",
            m.signins_limited.clone(),
        );
        g.register(
            "gatehouse_lockouts",
            "Users locked by repeated failed sign-ins",
            m.lockouts.clone(),
        );
        g.register(
            "gatehouse_users_locked",
            "Users currently locked",
            m.users_locked.clone(),
        );
        g.register(
            "gatehouse_argon2_verifications",
            "Password hashes verified (argon2id), dummy ones for unknown names included",
            m.argon2_verifications.clone(),
        );
        g.register(
            "gatehouse_argon2_waiting",
            "Password checks waiting for or holding an argon2 slot",
            m.argon2_waiting.clone(),
        );
        g.register(
            "gatehouse_argon2_rejected",
            "Password checks refused with 503 because the argon2 queue was full",
            m.argon2_rejected.clone(),
        );
        g.register(
            "gatehouse_webhook_pending",
            "Webhook deliveries waiting in a subscription's outbox",
            m.webhook_pending.clone(),
        );
        g.register(
            "gatehouse_webhook_dead_letters",
            "Webhook deliveries that exhausted their attempts",
            m.webhook_dead_letters.clone(),
        );
        g.register(
            "gatehouse_webhook_lag_events",
            "Events of the log after a subscription's delivery cursor",
            m.webhook_lag_events.clone(),
        );
        g.register(
            "gatehouse_webhook_lag_seconds",
            "Age of the oldest event a subscription has not finished delivering",
            m.webhook_lag_seconds.clone(),
        );
        g.register(
            "gatehouse_federation_pending",
            "Changes waiting to be sent to a federation target",
            m.federation_pending.clone(),
        );
        g.register(
            "gatehouse_federation_lag_events",
            "Events of the log after a federation target's cursor while changes wait for it (0 when none do)",
            m.federation_lag_events.clone(),
        );
        g.register(
            "gatehouse_federation_lag_seconds",
            "Age of the oldest change waiting for a federation target",
            m.federation_lag_seconds.clone(),
        );
        g.register(
            "gatehouse_federation_broadcast_owed",
            "1 when a federation target is owed a full broadcast (it fell too far behind)",
            m.federation_broadcast_owed.clone(),
        );
        g.register(
            "gatehouse_lease_held",
            "1 when this node holds the lease (name) for work that runs on one node at a time: webhook delivery, federation stream, checkpoints, LDAP sync",
            m.lease_held.clone(),
        );
        g.register(
            "gatehouse_as_of_rebuilds",
            "Past states rebuilt for point-in-time (`as_of`) reads",
            m.as_of_rebuilds.clone(),
        );
        g.register(
            "gatehouse_as_of_rebuild_duration_seconds",
            "Time to rebuild one past state",
            m.as_of_rebuild_seconds.clone(),
        );
        g.register(
            "gatehouse_as_of_checkpoints",
            "Past states kept in memory for `as_of` reads (built on the first one)",
            m.as_of_checkpoints.clone(),
        );
        g.register(
            "process_resident_memory_bytes",
            "Resident memory of the server process",
            m.resident_memory_bytes.clone(),
        );
        g.register(
            "process_open_fds",
            "Open file descriptors of the server process",
            m.open_fds.clone(),
        );
        Metrics { registry: r, ..m }
    }

    /// A snapshot of position `seq` now exists (written, or loaded at start-up).
    /// One answered request: its count by route template and status, and its latency.
    /// Runs on every request (`examples/metricsbench.rs` measures it).
    pub fn record_request(
        &self,
        method: &'static str,
        route: &str,
        status: u16,
        elapsed: std::time::Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route: route.to_string(),
                status,
            })
            .inc();
        self.request_seconds
            .get_or_create(&RouteLabels {
                method,
                route: route.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    pub fn snapshot_taken(&self, seq: u64) {
        self.snapshot_seq.store(seq, Ordering::Relaxed);
        self.snapshot_at_ms
            .store(crate::auth::unix_millis(), Ordering::Relaxed);
    }

    /// The text exposition, after `refresh` has set the gauges read at scrape time.
    pub fn encode(&self, refresh: impl FnOnce(&Metrics)) -> String {
        let _one = self.scrape.lock().unwrap_or_else(|p| p.into_inner());
        refresh(self);
        if let Some((rss, fds)) = process_usage() {
            self.resident_memory_bytes.set(rss as i64);
            self.open_fds.set(fds as i64);
        }
        let mut out = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// (resident bytes, open file descriptors) of this process, from /proc (Linux).
pub fn process_usage() -> Option<(u64, u64)> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some((pages * 4096, fds))
}

/// A method as a label: the standard ones by name, anything a client invents as `other`.
pub fn method_label(m: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    #[test]
    fn every_family_is_written_once_and_the_text_ends_with_eof() {
        let m = super::Metrics::new();
        m.signins_failed.inc();
        let text = m.encode(|_| {});
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(text.contains("gatehouse_signins_failed_total 1"), "{text}");
        assert_eq!(
            text.matches("# TYPE gatehouse_writer_batch_commands ")
                .count(),
            1
        );
    }
}

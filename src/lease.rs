//! One node at a time: the work that must not run twice on several nodes of a shared log
//! (webhook delivery, the federation stream, signed checkpoints, the LDAP sync) runs only
//! on the node that holds a lease in PostgreSQL, and is handed over when that node dies.
//!
//! ```text
//! every node: lease thread ──every renew-ms──► INSERT … ON CONFLICT (name) DO UPDATE
//!                                               … WHERE holder = me OR expires_at < now()
//!                                               RETURNING holder          (gatehouse_leases)
//!             workers: held? send, then raise the cursor (GREATEST)      (gatehouse_cursors)
//!                      not held? send nothing; drop outbox entries below the shared cursor
//! ```
//!
//! - The expiry is on the database's clock (`now()`), so nodes' clocks do not matter. A
//!   node counts itself the holder only until `sent + ttl × 4/5` on its own monotonic
//!   clock, where `sent` is when it *sent* the renewal that succeeded: the database set
//!   the expiry later than that, so the node stops before the row expires even when its
//!   renewals hang (a cut network) and the database's clock runs a little fast. A failed
//!   renewal drops the lease at once.
//! - Every node keeps following the log and filling its outboxes (so a node that takes
//!   over has them ready); only the holder sends. After each recorded batch it raises the
//!   shared cursor of that subscription / target to the position delivered; the others
//!   prune what lies below it. A new holder first reads the cursors, then sends from
//!   them: nothing is lost; what the old holder sent but had not recorded yet is sent
//!   again with the same idempotency key (at least once, as on one node).
//! - On sled (no `--store`) there is nobody to share with: [`Lease::always`] is held,
//!   forever, and has no cursors.
//!
//! PostgreSQL features used (CockroachDB and YugabyteDB have them too): `INSERT … ON
//! CONFLICT … DO UPDATE … WHERE … RETURNING`, `GREATEST`, `now()`, `TIMESTAMPTZ` and
//! `INTERVAL` arithmetic.

use crate::log::postgres::PgLog;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// The one lease there is: webhook dispatch, federation streams, checkpoints, LDAP sync.
pub const DISPATCH: &str = "dispatch";

/// The shared cursor of a webhook subscription.
pub fn webhook_cursor(key: &str) -> String {
    format!("webhook:{key}")
}

/// The `health` line of a shared log out of reach (see `Lease::round`).
const SHARED_LOG_HEALTH: &str = "shared-log";

/// The shared cursor of a federation target.
pub fn federation_cursor(target: &str) -> String {
    format!("federation:{target}")
}

#[derive(Debug, Clone, Copy)]
pub struct LeaseSettings {
    /// How often the holder renews (and the others try to take it).
    pub renew: Duration,
    /// How long a lease lasts without renewal (on the database's clock).
    pub ttl: Duration,
}

pub struct Lease {
    name: &'static str,
    /// Who this node is in `gatehouse_leases.holder` (unique per process).
    me: String,
    /// The cursors' connection (worker threads raise them); `None` on sled.
    pg: Option<Mutex<PgLog>>,
    settings: LeaseSettings,
    /// Held until this instant; `None`: not held. Ignored on sled.
    until: Mutex<Option<Instant>>,
    /// Bumped each time this node takes the lease (workers prune once per epoch).
    epoch: AtomicU64,
    /// The shared cursors as last read (or raised here).
    cursors: RwLock<HashMap<String, u64>>,
    /// Who holds it, as last seen (for the status answer).
    holder: RwLock<Option<String>>,
    stop: AtomicBool,
}

impl Lease {
    /// One node on sled: always the holder.
    pub fn always() -> Arc<Lease> {
        Arc::new(Lease {
            name: DISPATCH,
            me: "this node".into(),
            pg: None,
            settings: LeaseSettings {
                renew: Duration::from_secs(1),
                ttl: Duration::from_secs(5),
            },
            until: Mutex::new(None),
            epoch: AtomicU64::new(0),
            cursors: RwLock::new(HashMap::new()),
            holder: RwLock::new(None),
            stop: AtomicBool::new(false),
        })
    }

    /// Several nodes: take the lease when it is free, keep it while alive (a thread of
    /// its own with its own connection; `pg` is made on first use, on that thread).
    pub fn start(pg: &PgLog, settings: LeaseSettings) -> Arc<Lease> {
        let me = format!(
            "{}/{}/{}",
            hostname(),
            std::process::id(),
            crate::ids::new_ulid()
        );
        let lease = Arc::new(Lease {
            name: DISPATCH,
            me,
            pg: Some(Mutex::new(pg.sibling())),
            settings,
            until: Mutex::new(None),
            epoch: AtomicU64::new(0),
            cursors: RwLock::new(HashMap::new()),
            holder: RwLock::new(None),
            stop: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&lease);
        let mut conn = pg.sibling();
        std::thread::Builder::new()
            .name("gatehouse-lease".into())
            .spawn(move || {
                let _alive = crate::vitals::Alive::new(
                    "the lease: deliveries, streams and maintenance may run nowhere",
                );
                loop {
                    let Some(lease) = weak.upgrade() else { return };
                    if lease.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    lease.round(&mut conn);
                    let pause = lease.settings.renew;
                    drop(lease);
                    std::thread::sleep(pause);
                }
            })
            .expect("spawn the lease thread");
        lease
    }

    /// One renewal (or attempt to take it), then the cursors.
    fn round(&self, conn: &mut PgLog) {
        let sent = Instant::now();
        let was_held = self.held();
        match self.try_renew(conn) {
            Ok((mine, holder, cursors)) => {
                crate::vitals::recovered(SHARED_LOG_HEALTH);
                // Cursors first: a worker that sees the lease held sees them fresh.
                {
                    let mut c = self.cursors.write().unwrap_or_else(|p| p.into_inner());
                    for (name, pos) in cursors {
                        let e = c.entry(name).or_insert(0);
                        *e = (*e).max(pos);
                    }
                }
                *self.holder.write().unwrap_or_else(|p| p.into_inner()) = holder;
                let mut until = self.until.lock().unwrap_or_else(|p| p.into_inner());
                if mine {
                    if !was_held {
                        self.epoch.fetch_add(1, Ordering::SeqCst);
                        tracing::info!(lease = self.name, holder = %self.me, "lease taken: this node delivers");
                    }
                    *until = Some(sent + self.settings.ttl * 4 / 5);
                } else {
                    if was_held {
                        tracing::warn!(lease = self.name, "lease lost to another node");
                    }
                    *until = None;
                }
            }
            Err(e) => {
                conn.drop_connection();
                // Every round is a look at the database: `health` says it is out of
                // reach while it is (it said HEALTHY while every write answered 503).
                crate::vitals::impaired(
                    SHARED_LOG_HEALTH,
                    format!("the shared log (PostgreSQL) cannot be reached: writes answer 503 until it can ({e})"),
                );
                let mut until = self.until.lock().unwrap_or_else(|p| p.into_inner());
                if until.is_some() {
                    tracing::warn!(lease = self.name, error = %e, "lease not renewed: this node stops delivering");
                }
                *until = None;
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn try_renew(
        &self,
        conn: &mut PgLog,
    ) -> Result<(bool, Option<String>, Vec<(String, u64)>), crate::log::LogError> {
        let ttl_ms = self.settings.ttl.as_millis() as i64;
        let db = |e: postgres::Error| crate::log::LogError::Database(e.to_string());
        let client = conn.client()?;
        let mine = client
            .query_opt(
                "INSERT INTO gatehouse_leases (name, holder, expires_at)
                 VALUES ($1, $2, now() + $3::BIGINT * INTERVAL '1 millisecond')
                 ON CONFLICT (name) DO UPDATE
                   SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
                   WHERE gatehouse_leases.holder = EXCLUDED.holder
                      OR gatehouse_leases.expires_at < now()
                 RETURNING holder",
                &[&self.name, &self.me, &ttl_ms],
            )
            .map_err(db)?
            .is_some();
        let holder = if mine {
            Some(self.me.clone())
        } else {
            client
                .query_opt(
                    "SELECT holder FROM gatehouse_leases WHERE name = $1 AND expires_at >= now()",
                    &[&self.name],
                )
                .map_err(db)?
                .map(|r| r.get::<_, String>(0))
        };
        let cursors = client
            .query("SELECT name, position FROM gatehouse_cursors", &[])
            .map_err(db)?
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1).max(0) as u64))
            .collect();
        Ok((mine, holder, cursors))
    }

    /// Whether this node may do the work now.
    pub fn held(&self) -> bool {
        if self.pg.is_none() {
            return true;
        }
        self.until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| Instant::now() < t)
    }

    /// Changes each time this node takes the lease (0 on sled).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Whether there are other nodes to share the work with.
    pub fn shared(&self) -> bool {
        self.pg.is_some()
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// This node's holder id.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// Who holds the lease, as last seen (this node on sled).
    pub fn holder(&self) -> Option<String> {
        if self.pg.is_none() {
            return Some(self.me.clone());
        }
        if self.held() {
            return Some(self.me.clone());
        }
        self.holder
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .filter(|h| *h != self.me)
    }

    /// The shared cursor `name` as last read (0: none yet).
    pub fn cursor(&self, name: &str) -> u64 {
        self.cursors
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// The holder delivered up to `position`: raise the shared cursor (never lowers it).
    /// A failure is only logged: the next batch raises it further, and meanwhile a new
    /// holder would repeat a little more (same idempotency keys).
    pub fn advance(&self, name: &str, position: u64) {
        let Some(pg) = &self.pg else { return };
        {
            let mut c = self.cursors.write().unwrap_or_else(|p| p.into_inner());
            let e = c.entry(name.to_string()).or_insert(0);
            if *e >= position {
                return;
            }
            *e = position;
        }
        let mut pg = pg.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = pg.raise_cursor(name, position) {
            pg.drop_connection();
            tracing::warn!(cursor = name, position, error = %e, "cannot record a delivery cursor in the shared log");
        }
    }

    /// Give the lease up (a clean shutdown, after the workers stopped): another node
    /// takes it at its next renewal instead of after the time-to-live.
    pub fn release(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let Some(pg) = &self.pg else { return };
        *self.until.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let mut pg = pg.lock().unwrap_or_else(|p| p.into_inner());
        if let Ok(c) = pg.client() {
            let _ = c.execute(
                "UPDATE gatehouse_leases SET expires_at = now() - INTERVAL '1 second'
                 WHERE name = $1 AND holder = $2",
                &[&self.name, &self.me],
            );
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "node".into())
}

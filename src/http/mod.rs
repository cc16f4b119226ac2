//! The REST surface (actix-web). One module per resource; handlers extract, call one
//! function (usually `WriterHandle::submit`), and map the result.
//!
//! **Architecture invariant:** no handler touches the log; writes go through commands,
//! reads come from the shared read models.

mod access_keys;
mod access_permissions;
mod anonymous;
mod artifactory;
pub mod audit;
mod authorize;
pub mod certs;
pub mod console;
pub mod error;
pub mod extract;
pub mod federation;
mod groups;
mod ldap;
mod metrics;
mod pairing;
pub(crate) mod permissions;
mod projects;
mod repositories;
mod roles;
pub mod scim;
mod settings;
mod signed_urls;
mod support;
mod support_bundle;
mod system;
mod tokens;
mod users;
pub mod webhooks;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::domain::Command;
use crate::personal::FreshKey;
use crate::writer::{CommandContext, Committed, WriterHandle};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use error::ApiError;
use extract::RequestId;
use gatehouse_projections::State;
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// What every handler can reach.
pub struct AppState {
    pub state: Arc<RwLock<State>>,
    pub writer: WriterHandle,
    pub auth: Authenticator,
    pub keys: Arc<crate::keys::KeyRing>,
    /// Compiled permission targets; rebuilt when a permission event made it stale.
    pub permission_index: RwLock<Arc<crate::authorize::PermissionIndex>>,
    /// Held while a new permission index is built: requests that find the index behind
    /// wait for the one build rather than each making its own.
    pub permission_index_build: std::sync::Mutex<()>,
    pub config: Config,
    pub started: Instant,
    /// A read handle on the log (audit, point-in-time reads). Never appends.
    pub log: crate::log::EventLog,
    pub data_dir: std::path::PathBuf,
    /// Which events shape which user (for fast one-user `as_of` reads).
    pub timeline: std::sync::Mutex<crate::timeline::Timeline>,
    /// Keys of users' personal data (outside the log; destroyed by a purge).
    pub personal: Arc<crate::personal::PersonalKeys>,
    /// Recently rebuilt past states, newest last (point-in-time reads come in bursts).
    pub past: std::sync::Mutex<Vec<Arc<State>>>,
    /// Checkpoints of the read models in memory, built on the first past read.
    pub history: Arc<crate::history::History>,
    /// Webhook delivery (outbox, workers, history, dead letters).
    pub deliveries: Arc<crate::webhooks::Deliveries>,
    /// The federation stream's senders and status.
    pub federation: Arc<crate::federation::Federation>,
    /// Several nodes: whether this one holds the lease for deliveries (always on sled).
    pub lease: Arc<crate::lease::Lease>,
    /// Rendered SCIM users, reused while nothing they show changed.
    pub scim_renders: crate::scim::render_cache::RenderCache,
    /// The index of SCIM `co`/`sw`/`ew` filters (built on first use, then kept current).
    pub scim_index: std::sync::Mutex<crate::scim::index::LiveIndex>,
    /// Counters and histograms (`/metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The browser console's sign-in sessions (in memory: a restart ends them).
    pub sessions: crate::console::Sessions,
}

/// The state a write is answered from ([`AppState::state_after`]): the live one (its
/// read lock), or the state right after the write.
pub enum Answering<'a> {
    Live(crate::writer::ReadGuard<'a>),
    Past(Arc<State>),
}

impl std::ops::Deref for Answering<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        match self {
            Answering::Live(s) => s,
            Answering::Past(s) => s,
        }
    }
}

/// The key id of a user's encrypted personal data, if any is encrypted.
pub fn user_key_id(u: &gatehouse_projections::User) -> Option<String> {
    u.email
        .as_deref()
        .and_then(crate::personal::key_id)
        .or_else(|| u.scim.as_deref().and_then(crate::personal::key_id))
        .map(str::to_string)
}

/// How many past states are kept rebuilt.
const PAST_CACHE: usize = 4;

/// A request's view of the read models: the live state, or the state as of the position
/// its `as_of` named (put in the request by [`as_of_middleware`]).
pub enum View<'a> {
    Live(crate::writer::ReadGuard<'a>),
    Past(Arc<State>),
}

impl std::ops::Deref for View<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        match self {
            View::Live(g) => g,
            View::Past(s) => s,
        }
    }
}

/// The past state a request reads (request extension).
#[derive(Clone)]
pub struct AsOf(pub Arc<State>);

/// How long a new personal-data key waits for a key store that cannot take it (the
/// shared log's database, away), as a write waits for the log.
const KEY_STORE_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// The past position a one-user read asks about (request extension): that read rebuilds
/// only the user (`crate::timeline`), not the whole state.
#[derive(Clone, Copy)]
pub struct AsOfPosition(pub u64);

/// `GET /access/api/v2/users/{name}`: answered from the user's own timeline.
fn one_user_read(req: &ServiceRequest) -> bool {
    req.method() == actix_web::http::Method::GET
        && req
            .path()
            .strip_prefix("/access/api/v2/users/")
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
}

impl AppState {
    /// Read the read models. Poisoning cannot leave them half-applied (the writer applies
    /// under the lock without panicking paths), so a poisoned lock is still readable.
    pub fn read(&self) -> crate::writer::ReadGuard<'_> {
        crate::writer::read_models(&self.state)
    }

    /// On a shared log, wait until what any node committed before now is applied here
    /// (two catch-up rounds of the writer, the second begun after the first ended; at
    /// most 2 s). A question answered "unknown" from this node's copy — a token to revoke
    /// or refresh, issued on another node a moment ago — is asked again after it (the
    /// revoke answered 204 and revoked nothing). Nothing to wait for on a single node.
    pub async fn caught_up(&self) {
        if !self.writer.is_shared() {
            return;
        }
        let mut rounds = self.writer.caught_up_rounds();
        let start = *rounds.borrow_and_update();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        while *rounds.borrow_and_update() < start + 2 {
            self.writer.nudge();
            match tokio::time::timeout_at(deadline, rounds.changed()).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
    }

    /// The compiled permission index for `state`, the current state the caller holds (one
    /// read lock fewer on the decision's path; the caller must not hold the index's lock).
    pub fn permission_index(&self, state: &State) -> Arc<crate::authorize::PermissionIndex> {
        let index = self
            .permission_index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if index.is_current(state) {
            return index;
        }
        let _building = self
            .permission_index_build
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // Built meanwhile by the request this one waited for?
        let index = self
            .permission_index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if index.is_current(state) {
            return index;
        }
        let fresh = Arc::new(index.refreshed(state));
        // Kept unless the one there is of a later state (a request holding an older
        // state than the one that built it).
        if !index.is_newer_than(state) {
            *self
                .permission_index
                .write()
                .unwrap_or_else(|p| p.into_inner()) = fresh.clone();
        }
        fresh
    }

    /// The permission index a decision about `past` (or, without, about the live state)
    /// is made with, built on the blocking pool when it must be built: a build takes as
    /// long as the targets are many (a second on a large site), and on an HTTP worker it
    /// held every request of that worker (pings too) after each permission write. The
    /// caller reads the state afterwards and asks [`permission_index`](Self::permission_index)
    /// again if it moved on meanwhile (that is quick unless a permission changed again).
    pub async fn decision_index(
        app: &web::Data<AppState>,
        past: Option<&Arc<State>>,
    ) -> Result<Arc<crate::authorize::PermissionIndex>, ApiError> {
        let off = |e: actix_web::error::BlockingError| ApiError::Internal(e.to_string());
        if let Some(state) = past {
            let state = state.clone();
            return web::block(move || Arc::new(crate::authorize::PermissionIndex::build(&state)))
                .await
                .map_err(off);
        }
        let state = {
            let s = app.read();
            let index = app
                .permission_index
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if index.is_current(&s) {
                return Ok(index);
            }
            // O(1): the state shares its structure; no lock is held across the build.
            s.clone()
        };
        let app = app.clone();
        web::block(move || app.permission_index(&state))
            .await
            .map_err(off)
    }

    /// The key that encrypts this user's personal data (its existing one, or a new one).
    pub async fn personal_key(&self, username: &str) -> Result<String, ApiError> {
        let existing = self
            .read()
            .directory
            .users
            .get(username)
            .and_then(|u| user_key_id(u));
        match existing {
            Some(id) => Ok(id),
            None => self.new_personal_key().await.map(FreshKey::into_id),
        }
    }

    /// A new personal-data key, durable before the event that needs it is acknowledged:
    /// batched (the writer flushes it with the command's batch), or, with a key vault, its
    /// own file fsynced and written through on the blocking pool. With its bytes, so what
    /// seals the first values with it needs no look-up ([`seal_fresh_all`](Self::seal_fresh_all)).
    pub async fn new_personal_key(&self) -> Result<FreshKey, ApiError> {
        if self.personal.is_batched() {
            // No I/O: a key made durable ahead, or one the writer makes durable with the
            // command's batch.
            return self
                .personal
                .create_pooled()
                .map_err(|e| ApiError::Internal(e.to_string()));
        }
        let keys = self.personal.clone();
        web::block(move || {
            // The key vault of several nodes is the shared log's database: while it is
            // away the key waits as a write waits, then the answer is a 503 (it was a
            // 500 at once, while other writes waited and went through).
            let started = std::time::Instant::now();
            loop {
                match keys.create_fresh() {
                    Ok(k) => return Ok(k),
                    Err(e) if started.elapsed() < KEY_STORE_WAIT => {
                        tracing::debug!(error = %e, "a personal-data key could not be stored; retrying");
                        std::thread::sleep(std::time::Duration::from_millis(250));
                    }
                    Err(e) => {
                        return Err(ApiError::Unavailable(format!(
                            "the key store is not available ({e}); nothing was written"
                        )))
                    }
                }
            }
        })
        .await
        .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))?
    }

    /// Encrypt a piece of personal data with key `id`.
    pub fn seal(&self, id: &str, plain: &str) -> Result<String, ApiError> {
        self.personal
            .encrypt(id, plain)
            .map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// [`seal`](Self::seal) of several values with a key just made, at once
    /// ([`PersonalKeys::encrypt_all`](crate::personal::PersonalKeys::encrypt_all)).
    pub fn seal_fresh_all<const N: usize>(
        &self,
        key: &FreshKey,
        plains: [&str; N],
    ) -> Result<[String; N], ApiError> {
        self.personal
            .encrypt_all_fresh(key, plains)
            .map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// The state this request reads: as of its `as_of`, or live.
    pub fn view(&self, req: &HttpRequest) -> View<'_> {
        match req.extensions().get::<AsOf>() {
            Some(a) => View::Past(a.0.clone()),
            None => View::Live(self.read()),
        }
    }

    /// `as_of` as a log position: a position, or an RFC 3339 time (the last event at or
    /// before it; 0 before the first event).
    pub fn resolve_as_of(&self, value: &str) -> Result<u64, ApiError> {
        let head = self.read().seq;
        if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            let pos: u64 = value.parse().map_err(|_| {
                ApiError::BadRequest(format!("invalid `as_of`: `{value}` is too large"))
            })?;
            if pos > head {
                return Err(ApiError::BadRequest(format!(
                    "invalid `as_of`: position {pos} is after the last event ({head})"
                )));
            }
            return Ok(pos);
        }
        let ms = crate::timefmt::parse(value).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "invalid `as_of`: `{}` is neither a log position nor an RFC 3339 time",
                value.escape_debug()
            ))
        })?;
        self.log
            .position_at_time(ms, head)
            .map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// The state a write's answer is read from: the live one while what the answer shows
    /// is in it (`shows`); else — a later write deleted it between the commit and this
    /// read — the state right after the write (its change is in the log, and was
    /// answered 404). Rebuilding is rare, and a moment's work on this thread.
    pub fn state_after(
        &self,
        committed: &crate::writer::Committed,
        shows: impl Fn(&State) -> bool,
    ) -> Result<Answering<'_>, ApiError> {
        let live = self.read();
        if shows(&live) || committed.events == 0 {
            return Ok(Answering::Live(live));
        }
        drop(live);
        // Not through `state_at`: that one asks for as-of checkpoints (a server that
        // never reads the past would start keeping them for one race) and caches the
        // state among the past reads; an answer needs the state once.
        let rebuilt = self
            .history
            .state_or_snapshot(&self.log, committed.seq)
            .map_err(|e| {
                ApiError::Internal(format!("cannot rebuild position {}: {e}", committed.seq))
            })?;
        Ok(Answering::Past(Arc::new(rebuilt)))
    }

    /// The state right after `position` (from a snapshot plus the events after it).
    pub fn state_at(&self, position: u64) -> Result<Arc<State>, ApiError> {
        if let Some(s) = self
            .past
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|s| s.seq == position)
        {
            return Ok(s.clone());
        }
        tracing::debug!(position, "rebuilding the state as of a past position");
        let started = Instant::now();
        self.history.want();
        // No checkpoint close enough yet (or none kept): the nearest snapshot.
        let rebuilt = self.history.state_or_snapshot(&self.log, position);
        let state =
            Arc::new(rebuilt.map_err(|e| {
                ApiError::Internal(format!("cannot rebuild position {position}: {e}"))
            })?);
        self.metrics.as_of_rebuilds.inc();
        self.metrics
            .as_of_rebuild_seconds
            .observe(started.elapsed().as_secs_f64());
        let mut past = self.past.lock().unwrap_or_else(|p| p.into_inner());
        past.push(state.clone());
        if past.len() > PAST_CACHE {
            past.remove(0);
        }
        Ok(state)
    }

    /// Submit a command on behalf of `actor`.
    pub async fn submit(
        &self,
        command: Command,
        actor: &str,
        rid: &RequestId,
    ) -> Result<Committed, ApiError> {
        let ctx = CommandContext {
            actor: actor.to_string(),
            request_id: rid.0.clone(),
        };
        Ok(self.writer.submit(command, ctx).await?)
    }
}

pub const SEQ_HEADER: &str = "x-gatehouse-seq";
/// Read-your-writes across nodes: the position a request needs this node to have applied.
pub const MIN_SEQ_HEADER: &str = "x-gatehouse-min-seq";

/// `X-Gatehouse-Min-Seq: n` (any request): wait until this node has applied position `n`
/// (a write's `X-Gatehouse-Seq`, possibly from another node of a shared log), at most
/// `min-seq-wait-ms`, then answer 503 with `Retry-After`. So a client that carries the
/// position of its last write never reads a state from before it, on any node.
pub async fn min_seq_middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // Answered as a response, not an error, as `as_of_middleware` says why.
    match min_seq_wait(&req).await {
        Ok(()) => next.call(req).await.map(|mut res| {
            conflict_position(&mut res);
            warm_permission_index(&res);
            res.map_into_left_body()
        }),
        Err(e) => Ok(req.error_response(e).map_into_right_body()),
    }
}

/// After a write that left the permission index behind (a target, a project, a
/// membership the index reads), it is built on the blocking pool at once, so that the
/// next decision — an nginx `auth_request` — does not wait for it. A write that
/// changed nothing of it costs a look.
fn warm_permission_index<B>(res: &ServiceResponse<B>) {
    if res.request().method() == actix_web::http::Method::GET
        || !res.status().is_success()
        || !res.headers().contains_key(SEQ_HEADER)
    {
        return;
    }
    let Some(app) = res.request().app_data::<web::Data<AppState>>().cloned() else {
        return;
    };
    let stale = {
        let s = app.read();
        !app.permission_index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_current(&s)
    };
    if stale {
        actix_web::rt::spawn(async move {
            let _ = AppState::decision_index(&app, None).await;
        });
    }
}

/// A 409 says something is already there (or changed meanwhile): it carries the
/// position this node has applied, which includes what the refusal was decided on (a
/// write's answer is sent once its batch is applied), so that a client told "exists"
/// can pass it on as `X-Gatehouse-Min-Seq` and read the thing on any node.
fn conflict_position<B>(res: &mut ServiceResponse<B>) {
    if res.status() != actix_web::http::StatusCode::CONFLICT
        || res.headers().contains_key(SEQ_HEADER)
    {
        return;
    }
    let Some(seq) = res
        .request()
        .app_data::<web::Data<AppState>>()
        .map(|app| app.read().seq)
    else {
        return;
    };
    res.headers_mut()
        .insert(HeaderName::from_static(SEQ_HEADER), HeaderValue::from(seq));
}

/// Wait until this node has applied the position `X-Gatehouse-Min-Seq` asks for.
async fn min_seq_wait(req: &ServiceRequest) -> Result<(), ApiError> {
    // A name made once: a `&str` name is parsed on every look-up (every request asks).
    const MIN_SEQ: HeaderName = HeaderName::from_static(MIN_SEQ_HEADER);
    let Some(value) = req.headers().get(MIN_SEQ) else {
        return Ok(());
    };
    let wanted: u64 = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| {
            ApiError::BadRequest(
                "invalid `X-Gatehouse-Min-Seq`: expected a log position (a non-negative integer)"
                    .into(),
            )
        })?;
    let app = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal("no application state".into()))?;
    if app.read().seq < wanted {
        let mut applied = app.writer.applied();
        // Do not wait for the next notification or poll: read the shared log now.
        app.writer.nudge();
        let wait = std::time::Duration::from_millis(app.config.min_seq_wait_ms);
        let reached = actix_web::rt::time::timeout(wait, applied.wait_for(|s| *s >= wanted))
            .await
            .is_ok_and(|r| r.is_ok());
        if !reached {
            return Err(ApiError::Overloaded(format!(
                "`X-Gatehouse-Min-Seq`: this node has applied position {}, not yet {wanted}; try again",
                app.read().seq
            )));
        }
    }
    Ok(())
}

/// `Cache-Control: no-store`, for an answer that carries a secret shown once (a token,
/// a generated password): no cache along the way, nor the client's, keeps a copy.
pub fn no_store(mut res: HttpResponse) -> HttpResponse {
    res.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    res
}

/// A response to a write, carrying the log position of its last event.
pub fn written(mut res: HttpResponse, committed: Committed) -> HttpResponse {
    res.headers_mut().insert(
        HeaderName::from_static(SEQ_HEADER),
        HeaderValue::from(committed.seq),
    );
    res
}

/// Every route this server serves, as `(METHOD, OpenAPI path)`. The OpenAPI test checks
/// this list, `schemas/openapi.yaml` and the live server against each other.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/ui"),
    ("GET", "/ui/"),
    ("GET", "/ui/assets/{file}"),
    ("POST", "/ui/sign-in"),
    ("POST", "/ui/sign-out"),
    ("GET", "/ui/session"),
    ("GET", "/access/api/v1/system/ping"),
    ("GET", "/api/system/ping"),
    ("GET", "/artifactory/api/system/ping"),
    ("GET", "/artifactory/api/system/version"),
    ("GET", "/artifactory/api/v1/system/readiness"),
    ("GET", "/artifactory/api/v1/system/liveness"),
    ("GET", "/api/v1/system/readiness"),
    ("GET", "/api/v1/system/liveness"),
    ("GET", "/router/api/v1/system/health"),
    ("GET", "/api/system/version"),
    ("GET", "/api/system"),
    ("POST", "/api/system/verifyconnection"),
    ("GET", "/api/system/configuration/reverseProxy/nginx"),
    ("GET", "/event/api/v1/system/ping"),
    ("POST", "/api/system/support/bundle"),
    ("GET", "/api/system/support/bundles"),
    ("GET", "/api/system/support/bundle/{id}"),
    ("DELETE", "/api/system/support/bundle/{id}"),
    ("GET", "/api/system/support/bundle/{id}/archive"),
    ("GET", "/access/api/v1/system/state/digest"),
    ("GET", "/access/api/v2/users"),
    ("POST", "/access/api/v2/users"),
    ("GET", "/access/api/v2/users/{username}"),
    ("PATCH", "/access/api/v2/users/{username}"),
    ("DELETE", "/access/api/v2/users/{username}"),
    ("PATCH", "/access/api/v1/users/{username}"),
    ("PATCH", "/access/api/v2/users/{username}/groups"),
    ("PUT", "/access/api/v2/users/{username}/password"),
    ("POST", "/access/api/v2/users/{username}/password/expire"),
    ("POST", "/access/api/v2/users/{username}/unlock"),
    ("PATCH", "/access/api/v2/{username}/groups"),
    ("PUT", "/access/api/v2/{username}/password"),
    ("POST", "/access/api/v2/{username}/password/expire"),
    ("POST", "/access/api/v2/{username}/unlock"),
    ("GET", "/access/api/v2/groups"),
    ("POST", "/access/api/v2/groups"),
    ("GET", "/access/api/v2/groups/{name}"),
    ("PATCH", "/access/api/v2/groups/{name}"),
    ("DELETE", "/access/api/v2/groups/{name}"),
    ("PATCH", "/access/api/v2/groups/{name}/members"),
    ("POST", "/access/api/v1/tokens"),
    ("GET", "/access/api/v1/tokens"),
    ("GET", "/access/api/v1/tokens/{id}"),
    ("DELETE", "/access/api/v1/tokens/{id}"),
    ("GET", "/access/api/v1/cert/root"),
    ("POST", "/access/api/v1/cert/root/rotate"),
    ("POST", "/access/api/v1/cert/root/reset"),
    ("GET", "/access/api/v1/config/security/anonymous_access"),
    ("PUT", "/access/api/v1/config/security/anonymous_access"),
    ("GET", "/access/api/v1/cert/jwks"),
    ("GET", "/access/api/v1/cert/trusted"),
    ("POST", "/access/api/v1/cert/trusted"),
    ("DELETE", "/access/api/v1/cert/trusted/{name}"),
    ("POST", "/artifactory/api/signed/url"),
    ("GET", "/artifactory/api/signed/url/verify"),
    ("POST", "/artifactory/api/signed/url/key"),
    ("POST", "/access/api/v1/service_trust/pairing/{use_case}"),
    ("GET", "/access/api/v1/service_trust/pairing/{use_case}"),
    ("PUT", "/access/api/v1/service_trust/pairing/{use_case}"),
    ("GET", "/access/api/v1/service_trust/pairings/{use_case}"),
    (
        "POST",
        "/artifactory/api/v1/service_trust/pairing/{use_case}",
    ),
    (
        "PUT",
        "/artifactory/api/v1/service_trust/pairing/{use_case}",
    ),
    (
        "DELETE",
        "/artifactory/api/v1/service_trust/pairing/{use_case}",
    ),
    (
        "GET",
        "/artifactory/api/v1/service_trust/pairings/{use_case}",
    ),
    ("POST", "/access/api/v1/service_trust/pairing/initiate"),
    ("POST", "/access/api/v1/service_trust/pairing/exchange"),
    ("GET", "/artifactory/api/v2/security/permissions"),
    ("GET", "/artifactory/api/v2/security/permissions/{name}"),
    ("HEAD", "/artifactory/api/v2/security/permissions/{name}"),
    ("POST", "/artifactory/api/v2/security/permissions/{name}"),
    ("PUT", "/artifactory/api/v2/security/permissions/{name}"),
    ("DELETE", "/artifactory/api/v2/security/permissions/{name}"),
    ("GET", "/access/api/v1/cert/ca"),
    ("GET", "/access/api/v1/roles"),
    ("POST", "/access/api/v1/roles"),
    ("GET", "/access/api/v1/roles/{role}"),
    ("PUT", "/access/api/v1/roles/{role}"),
    ("DELETE", "/access/api/v1/roles/{role}"),
    ("GET", "/access/api/v2/projects"),
    ("GET", "/access/api/v1/projects/_/repositories/{repo}"),
    ("GET", "/artifactory/api/system/service_id"),
    ("DELETE", "/access/api/v1/tokens/revoke"),
    ("POST", "/access/api/v1/tokens/revoke"),
    ("GET", "/artifactory/api/security/users"),
    ("GET", "/artifactory/api/security/users/{name}"),
    ("PUT", "/artifactory/api/security/users/{name}"),
    ("POST", "/artifactory/api/security/users/{name}"),
    ("DELETE", "/artifactory/api/security/users/{name}"),
    ("GET", "/artifactory/api/security/groups"),
    ("GET", "/artifactory/api/security/groups/{name}"),
    ("PUT", "/artifactory/api/security/groups/{name}"),
    ("POST", "/artifactory/api/security/groups/{name}"),
    ("DELETE", "/artifactory/api/security/groups/{name}"),
    ("GET", "/artifactory/api/security/permissions"),
    ("GET", "/artifactory/api/security/permissions/{name}"),
    ("PUT", "/artifactory/api/security/permissions/{name}"),
    ("DELETE", "/artifactory/api/security/permissions/{name}"),
    ("POST", "/artifactory/api/security/token"),
    ("GET", "/artifactory/api/security/token"),
    ("POST", "/artifactory/api/security/token/revoke"),
    ("GET", "/access/api/v2/permissions"),
    ("POST", "/access/api/v2/permissions"),
    ("GET", "/access/api/v2/permissions/{name}"),
    ("PUT", "/access/api/v2/permissions/{name}"),
    ("DELETE", "/access/api/v2/permissions/{name}"),
    ("GET", "/access/api/v2/permissions/{name}/{resource_type}"),
    ("PUT", "/access/api/v2/permissions/{name}/{resource_type}"),
    ("PATCH", "/access/api/v2/permissions/{name}/{resource_type}"),
    (
        "DELETE",
        "/access/api/v2/permissions/{name}/{resource_type}",
    ),
    ("GET", "/artifactory/api/repositories"),
    ("GET", "/artifactory/api/repositories/existence"),
    ("GET", "/artifactory/api/repositories/configurations"),
    ("GET", "/artifactory/api/repositories/{key}"),
    ("PUT", "/artifactory/api/repositories/{key}"),
    ("POST", "/artifactory/api/repositories/{key}"),
    ("DELETE", "/artifactory/api/repositories/{key}"),
    ("GET", "/access/api/v1/projects"),
    ("POST", "/access/api/v1/projects"),
    ("GET", "/access/api/v1/projects/{project_key}"),
    ("PUT", "/access/api/v1/projects/{project_key}"),
    ("DELETE", "/access/api/v1/projects/{project_key}"),
    ("GET", "/access/api/v1/projects/{project_key}/users"),
    ("GET", "/access/api/v1/projects/{project_key}/users/{name}"),
    ("PUT", "/access/api/v1/projects/{project_key}/users/{name}"),
    (
        "DELETE",
        "/access/api/v1/projects/{project_key}/users/{name}",
    ),
    ("GET", "/access/api/v1/projects/{project_key}/groups"),
    ("GET", "/access/api/v1/projects/{project_key}/groups/{name}"),
    ("PUT", "/access/api/v1/projects/{project_key}/groups/{name}"),
    (
        "DELETE",
        "/access/api/v1/projects/{project_key}/groups/{name}",
    ),
    ("GET", "/access/api/v1/projects/{project_key}/roles"),
    ("POST", "/access/api/v1/projects/{project_key}/roles"),
    ("GET", "/access/api/v1/projects/{project_key}/roles/{role}"),
    ("PUT", "/access/api/v1/projects/{project_key}/roles/{role}"),
    (
        "DELETE",
        "/access/api/v1/projects/{project_key}/roles/{role}",
    ),
    (
        "PUT",
        "/access/api/v1/projects/_/attach/repositories/{repo}/{project_key}",
    ),
    (
        "DELETE",
        "/access/api/v1/projects/_/attach/repositories/{repo}",
    ),
    ("PUT", "/access/api/v1/projects/_/share/repositories/{repo}"),
    (
        "DELETE",
        "/access/api/v1/projects/_/share/repositories/{repo}",
    ),
    (
        "PUT",
        "/access/api/v1/projects/_/share/repositories/{repo}/{project_key}",
    ),
    (
        "DELETE",
        "/access/api/v1/projects/_/share/repositories/{repo}/{project_key}",
    ),
    ("GET", "/access/api/v1/orgs/{org}/access_keys"),
    ("POST", "/access/api/v1/orgs/{org}/access_keys"),
    ("GET", "/access/api/v1/orgs/{org}/access_keys/{id}"),
    ("PATCH", "/access/api/v1/orgs/{org}/access_keys/{id}"),
    ("DELETE", "/access/api/v1/orgs/{org}/access_keys/{id}"),
    ("GET", "/access/api/v1/orgs/{org}/entitlements"),
    ("POST", "/access/api/v1/orgs/{org}/entitlements"),
    ("GET", "/access/api/v1/orgs/{org}/entitlements/{id}"),
    ("PATCH", "/access/api/v1/orgs/{org}/entitlements/{id}"),
    ("DELETE", "/access/api/v1/orgs/{org}/entitlements/{id}"),
    ("POST", "/access/api/v1/scim/v2/Users/.search"),
    ("POST", "/access/api/v1/scim/v2/Groups/.search"),
    ("POST", "/access/api/v1/scim/v2/.search"),
    ("GET", "/access/api/v1/scim/v2/Users"),
    ("POST", "/access/api/v1/scim/v2/Users"),
    ("GET", "/access/api/v1/scim/v2/Users/{id}"),
    ("PUT", "/access/api/v1/scim/v2/Users/{id}"),
    ("PATCH", "/access/api/v1/scim/v2/Users/{id}"),
    ("DELETE", "/access/api/v1/scim/v2/Users/{id}"),
    ("GET", "/access/api/v1/scim/v2/Groups"),
    ("POST", "/access/api/v1/scim/v2/Groups"),
    ("GET", "/access/api/v1/scim/v2/Groups/{id}"),
    ("PUT", "/access/api/v1/scim/v2/Groups/{id}"),
    ("PATCH", "/access/api/v1/scim/v2/Groups/{id}"),
    ("DELETE", "/access/api/v1/scim/v2/Groups/{id}"),
    ("GET", "/access/api/v1/scim/v2/ServiceProviderConfig"),
    ("GET", "/access/api/v1/scim/v2/ServiceProviderConfigs"),
    ("GET", "/access/api/v1/scim/v2/ResourceTypes"),
    ("GET", "/access/api/v1/scim/v2/ResourceTypes/{id}"),
    ("GET", "/access/api/v1/scim/v2/Schemas"),
    ("GET", "/access/api/v1/scim/v2/Schemas/{id}"),
    ("GET", "/access/api/v1/audit/events"),
    ("GET", "/access/api/v1/audit/chain"),
    ("GET", "/access/api/v1/audit/state"),
    ("GET", "/access/api/v1/audit/diff"),
    ("GET", "/access/api/v1/audit/checkpoints"),
    ("POST", "/access/api/v1/system/backup/export"),
    ("POST", "/access/api/v1/system/backup/import"),
    ("POST", "/access/api/v1/audit/checkpoints"),
    ("GET", "/event/api/v1/subscriptions"),
    ("POST", "/event/api/v1/subscriptions"),
    ("POST", "/event/api/v1/subscriptions/test"),
    ("GET", "/event/api/v1/subscriptions/{key}"),
    ("PUT", "/event/api/v1/subscriptions/{key}"),
    ("DELETE", "/event/api/v1/subscriptions/{key}"),
    ("GET", "/event/api/v1/subscriptions/{key}/deliveries"),
    ("GET", "/event/api/v1/subscriptions/{key}/failed"),
    ("POST", "/event/api/v1/subscriptions/{key}/failed/redrive"),
    ("GET", "/access/api/v1/system/federation"),
    ("POST", "/access/api/v1/system/federation"),
    ("POST", "/access/api/v1/system/federation/validate_server"),
    ("PUT", "/access/api/v1/system/federation/full_broadcast"),
    ("POST", "/access/api/v1/system/federation/receive"),
    ("POST", "/access/api/v1/system/federation/challenge"),
    ("GET", "/access/api/v1/system/federation/{name}"),
    ("PATCH", "/access/api/v1/system/federation/{name}"),
    ("DELETE", "/access/api/v1/system/federation/{name}"),
    ("GET", "/access/api/v1/system/federation/{name}/status"),
    (
        "PUT",
        "/access/api/v1/system/federation/{access_id}/full_broadcast",
    ),
    ("GET", "/access/api/v1/authorize"),
    ("HEAD", "/access/api/v1/authorize"),
    ("GET", "/access/api/v1/authorize/effective"),
    ("POST", "/access/api/v2/users/expire_password_for_all_users"),
    (
        "POST",
        "/access/api/v2/users/unexpire_password_for_all_users",
    ),
    ("GET", "/access/api/v1/ldap/settings"),
    ("POST", "/access/api/v1/ldap/settings"),
    ("GET", "/access/api/v1/ldap/settings/{key}"),
    ("PUT", "/access/api/v1/ldap/settings/{key}"),
    ("DELETE", "/access/api/v1/ldap/settings/{key}"),
    ("GET", "/access/api/v1/ldap/groups"),
    ("POST", "/access/api/v1/ldap/groups"),
    ("GET", "/access/api/v1/ldap/groups/{name}"),
    ("PUT", "/access/api/v1/ldap/groups/{name}"),
    ("DELETE", "/access/api/v1/ldap/groups/{name}"),
    ("POST", "/access/api/v1/ldap/groups/{name}/refresh"),
    ("GET", "/access/api/v1/config/token/default_expiry"),
    ("PUT", "/access/api/v1/config/token/default_expiry"),
    ("GET", "/access/api/v1/config/security/password_policy"),
    ("PUT", "/access/api/v1/config/security/password_policy"),
    ("PATCH", "/access/api/v1/config/security/password_policy"),
    (
        "GET",
        "/access/api/v1/config/security/authentication/basic_authentication_enabled",
    ),
    (
        "PUT",
        "/access/api/v1/config/security/authentication/basic_authentication_enabled",
    ),
    ("GET", "/artifactory/api/security/userLockPolicy"),
    ("PUT", "/artifactory/api/security/userLockPolicy"),
    ("GET", "/artifactory/api/security/lockedUsers"),
    ("POST", "/artifactory/api/security/unlockUsers"),
    ("POST", "/artifactory/api/security/unlockUsers/{userName}"),
    ("POST", "/artifactory/api/security/unlockAllUsers"),
    (
        "GET",
        "/artifactory/api/security/configuration/passwordExpirationPolicy",
    ),
    (
        "PUT",
        "/artifactory/api/security/configuration/passwordExpirationPolicy",
    ),
    (
        "POST",
        "/artifactory/api/security/users/authorization/expirePassword",
    ),
    (
        "POST",
        "/artifactory/api/security/users/authorization/expirePassword/{userName}",
    ),
    (
        "POST",
        "/artifactory/api/security/users/authorization/unexpirePassword/{userName}",
    ),
    (
        "POST",
        "/artifactory/api/security/users/authorization/expirePasswordForAllUsers",
    ),
    (
        "POST",
        "/artifactory/api/security/users/authorization/unexpirePasswordForAllUsers",
    ),
    ("GET", "/access/api/v1/metrics"),
    ("GET", "/metrics"),
];

/// 405, with the `Allow` header HTTP asks for: the methods [`ROUTES`] lists for the
/// matched path (under the `/artifactory/access` prefix too).
async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    use actix_web::ResponseError;
    let mut res = ApiError::MethodNotAllowed.error_response();
    let allowed = req.match_pattern().map(|pattern| {
        let pattern = pattern
            .strip_prefix("/artifactory/access/")
            .map_or(pattern.clone(), |rest| format!("/access/{rest}"));
        let mut methods: Vec<&str> = (ROUTES.iter())
            .filter(|(_, path)| *path == pattern)
            .map(|(method, _)| *method)
            .collect();
        // HEAD is answered wherever GET is (`request_middleware`).
        if let Some(at) = methods.iter().position(|m| *m == "GET") {
            if !methods.contains(&"HEAD") {
                methods.insert(at + 1, "HEAD");
            }
        }
        methods.dedup();
        methods.join(", ")
    });
    if let Some(value) = allowed
        .filter(|a| !a.is_empty())
        .and_then(|a| HeaderValue::from_str(&a).ok())
    {
        res.headers_mut()
            .insert(actix_web::http::header::ALLOW, value);
    }
    res
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    // The path is shown as far as a person reads it: a 40 KB path was answered whole
    // (a scanner's request made a response as large as itself).
    const SHOWN: usize = 256;
    let path = req.path();
    let shown = match path.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}… ({} bytes)", &path[..cut], path.len()),
        None => path.to_string(),
    };
    Err(ApiError::NotFound(format!(
        "no such endpoint: {} {shown}",
        req.method()
    )))
}

/// A resource whose unmatched methods answer 405 in the API's error shape.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

/// Register every route. Specific paths come before the seed's alias spellings
/// (`/access/api/v2/{username}/unlock`) so that the aliases never shadow them.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // actix tries resources in the order they are registered (a regex match for each
    // one with path parameters): the hot paths go first — the decision file servers
    // and nginx ask on every request, then the probes, then token issue (CI jobs ask
    // for a token per job; behind the other modules the regexes tried before it were 4%
    // of its CPU), then SCIM (which identity providers poll). None of their paths
    // overlaps another module's. The modules before `groups` with path parameters
    // (tokens, SCIM, LDAP, users) sit in a scope of their common prefix: a scope is
    // one prefix comparison, so a request for a later module no longer tries their
    // regexes (16 of them were 5.6 % of a group create's CPU). A path under a scope's
    // prefix that none of its resources takes answers the application's 404, as it did
    // when it fell through: no later module has a path under those prefixes. The
    // settings go after the directory's modules (but the two `…_for_all_users` paths,
    // which `users/{username}` would take), as they share no path with them.
    authorize::configure(cfg);
    system::configure(cfg);
    tokens::configure(cfg);
    scim::configure(cfg);
    settings::configure_for_all_users(cfg);
    ldap::configure(cfg);
    users::configure(cfg);
    groups::configure(cfg);
    settings::configure(cfg);
    certs::configure(cfg);
    anonymous::configure(cfg);
    support::configure(cfg);
    support_bundle::configure(cfg);
    signed_urls::configure(cfg);
    pairing::configure(cfg);
    permissions::configure(cfg);
    access_permissions::configure(cfg);
    artifactory::configure(cfg);
    repositories::configure(cfg);
    projects::configure(cfg);
    roles::configure(cfg);
    access_keys::configure(cfg);
    audit::configure(cfg);
    webhooks::configure(cfg);
    federation::configure(cfg);
    metrics::configure(cfg);
    console::configure(cfg);
    users::configure_aliases(cfg);
    cfg.default_service(web::to(not_found));
}

/// The GET routes that answer for the past (their handlers read `app.view`, or the
/// one-user timeline), by route pattern. A new point-in-time read joins this list; any
/// other request is served as if it had no `as_of`, and nothing is rebuilt for it.
pub const AS_OF_READS: &[&str] = &[
    "/access/api/v1/ldap/settings",
    "/access/api/v1/ldap/settings/{key}",
    "/access/api/v1/ldap/groups",
    "/access/api/v1/ldap/groups/{name}",
    "/access/api/v2/users",
    "/access/api/v2/users/{username}",
    "/access/api/v2/groups",
    "/access/api/v2/groups/{name}",
    "/access/api/v1/tokens",
    "/access/api/v1/tokens/{id}",
    "/artifactory/api/v2/security/permissions",
    "/artifactory/api/v2/security/permissions/{name}",
    "/access/api/v2/permissions",
    "/access/api/v1/roles",
    "/access/api/v1/roles/{role}",
    "/access/api/v2/projects",
    "/artifactory/api/security/users",
    "/artifactory/api/security/users/{name}",
    "/artifactory/api/security/groups",
    "/artifactory/api/security/groups/{name}",
    "/artifactory/api/security/permissions",
    "/artifactory/api/security/permissions/{name}",
    "/access/api/v2/permissions/{name}",
    "/access/api/v2/permissions/{name}/{resource_type}",
    "/artifactory/api/repositories",
    "/artifactory/api/repositories/existence",
    "/artifactory/api/repositories/configurations",
    "/artifactory/api/repositories/{key}",
    "/access/api/v1/projects",
    "/access/api/v1/projects/{project_key}",
    "/access/api/v1/projects/{project_key}/users",
    "/access/api/v1/projects/{project_key}/users/{name}",
    "/access/api/v1/projects/{project_key}/groups",
    "/access/api/v1/projects/{project_key}/groups/{name}",
    "/access/api/v1/projects/{project_key}/roles",
    "/access/api/v1/projects/{project_key}/roles/{role}",
    "/access/api/v1/orgs/{org}/access_keys",
    "/access/api/v1/orgs/{org}/access_keys/{id}",
    "/access/api/v1/orgs/{org}/entitlements",
    "/access/api/v1/orgs/{org}/entitlements/{id}",
    "/access/api/v1/scim/v2/Users",
    "/access/api/v1/scim/v2/Users/{id}",
    "/access/api/v1/scim/v2/Groups",
    "/access/api/v1/scim/v2/Groups/{id}",
    "/access/api/v1/audit/state",
    "/access/api/v1/audit/checkpoints",
    "/event/api/v1/subscriptions",
    "/event/api/v1/subscriptions/{key}",
    "/access/api/v1/system/federation",
    "/access/api/v1/system/federation/{name}",
    AUTHORIZE,
    "/access/api/v1/authorize/effective",
];

/// The decision, which (unlike the rest of the API) access keys may ask.
const AUTHORIZE: &str = "/access/api/v1/authorize";

/// `as_of=<position or RFC 3339 time>`: reads answer from the state of that moment
/// (rebuilt off the HTTP threads); writes refuse it.
///
/// A rebuild costs a snapshot load plus a replay, so it is done only for a caller whose
/// credentials are valid, on a route that reads the past ([`AS_OF_READS`]): anyone else
/// is answered 401/403 here (one authentication, so a bad password counts one failure)
/// before anything is resolved or rebuilt.
pub async fn as_of_middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // A refusal is answered here as a response, not returned as an error: an error
    // passed the request middleware by, and the refusal had no access line, no request
    // id and no count (guessing passwords with `?as_of=1` left none of them).
    match as_of_prepare(&mut req).await {
        Ok(()) => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
        Err(e) => Ok(req.error_response(e).map_into_right_body()),
    }
}

/// A query parameter that spells `as_of` otherwise (its letters, in any case, with `_`
/// or `-` anywhere or nowhere), percent-decoded.
fn misspelt_as_of(query: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split('=').next())
        .filter(|raw| raw.len() >= 4 && raw.len() <= 16 && *raw != "as_of")
        // Borrowed unless the name has escapes. `as%5Fof` too: parameters are read by
        // their names as sent, so it was never `as_of` (and answered the present).
        .map(|raw| percent_encoding::percent_decode_str(raw).decode_utf8_lossy())
        .find(|name| {
            name.chars()
                .filter(|c| !matches!(c, '_' | '-' | '+' | ' '))
                .map(|c| c.to_ascii_lowercase())
                .eq("asof".chars())
        })
        .map(|name| name.into_owned())
}

/// What [`as_of_middleware`] does before the request goes on: checks, authenticates,
/// resolves and rebuilds; `Err` is the answer.
async fn as_of_prepare(req: &mut ServiceRequest) -> Result<(), ApiError> {
    // `asOf`, `AS_OF`, `as-of`: most reads ignore parameters they do not know, so an
    // auditor asking for the past in another spelling was answered the present.
    if let Some(name) = misspelt_as_of(req.query_string()) {
        return Err(ApiError::BadRequest(format!(
            "unknown parameter `{}`: the past is asked for with `as_of`",
            name.escape_debug()
        )));
    }
    let value = query_param(req.request(), "as_of")?;
    if let Some(value) = value {
        if !matches!(
            *req.method(),
            actix_web::http::Method::GET | actix_web::http::Method::HEAD
        ) {
            return Err(ApiError::BadRequest(
                "invalid `as_of`: the past is read-only (as_of is for GET requests)".into(),
            ));
        }
        let pattern = req.match_pattern();
        let Some(pattern) = pattern.filter(|p| AS_OF_READS.contains(&p.as_str())) else {
            // A read that has no past answered the present under a 200 (an auditor asking
            // for last month's settings got today's): said instead. Unknown routes keep
            // their 404.
            if req.match_pattern().is_some() {
                return Err(ApiError::BadRequest(format!(
                    "invalid `as_of`: `{}` has no past (the reads that do are listed in README, Audit and the past)",
                    req.path()
                ))
                );
            }
            return Ok(());
        };
        let app = req
            .app_data::<web::Data<AppState>>()
            .cloned()
            .ok_or_else(|| ApiError::Internal("no application state".into()))?;
        let caller = if pattern == AUTHORIZE {
            // As the decision itself authenticates: access keys too.
            let header = extract::authorization(req.request()).map(str::to_string);
            let session = extract::session_caller(req.request());
            if header.is_none() && session.is_none() && authorize::is_signed(req.request()) {
                // A signed URL: judged now, as always, with nothing rebuilt.
                return Ok(());
            }
            let rid = extract::request_id(req.request());
            let ip = client_ip(req.request(), &app.config);
            let p = match (header.is_none(), session) {
                (true, Some(p)) => p,
                // Anonymous (while anonymous access is on) is asked about then, as anyone
                // else (it was answered for now under the `as_of`); without it, the
                // decision's own 401.
                (true, None) => match app
                    .auth
                    .authenticate(None, &app.state, &app.writer, &rid.0, ip)
                    .await
                {
                    Ok(p) => p,
                    Err(_) => return Ok(()),
                },
                _ => app
                    .auth
                    .authenticate(header.as_deref(), &app.state, &app.writer, &rid.0, ip)
                    .await
                    .map_err(ApiError::from)?,
            };
            if p.password_expired {
                return Err(ApiError::Forbidden(
                    "the password has expired; change it first".into(),
                ));
            }
            p
        } else {
            extract::authenticate_caller(req.request().clone()).await?
        };
        // Several nodes: a position another node wrote a moment ago is waited for, as
        // `X-Gatehouse-Min-Seq` waits (it was "after the last event" one time in four
        // when asked of another node right after the write).
        if let Ok(wanted) = value.parse::<u64>() {
            if app.writer.is_shared() && app.read().seq < wanted {
                let mut applied = app.writer.applied();
                app.writer.nudge();
                let wait = std::time::Duration::from_millis(app.config.min_seq_wait_ms);
                let _ =
                    actix_web::rt::time::timeout(wait, applied.wait_for(|s| *s >= wanted)).await;
            }
        }
        let position = app.resolve_as_of(&value)?;
        // A user's past begins with its account: before it, its name was someone else's
        // (a new user of a deleted user's name read that person's e-mail, groups and
        // tokens as its own past).
        // Its name may also have been someone else's at that position and taken since by
        // a rename: the record of that name then was another account's.
        if !caller.admin {
            // The state's read lock is not held across the wait below.
            let created = {
                let now = app.read();
                if caller.access_key {
                    now.access_keys
                        .keys
                        .get(caller.username.as_str())
                        .map(|k| k.created_seq)
                } else {
                    now.directory
                        .users
                        .get(caller.username.as_str())
                        .map(|u| u.created_seq)
                }
            };
            let before = created.is_some_and(|c| position < c);
            let someone_else = match created {
                Some(c) if !before && !caller.access_key => {
                    let (app2, name) = (app.clone(), caller.username.clone());
                    web::block(move || {
                        app2.timeline
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .user_at(&app2.log, &name, position)
                    })
                    .await
                    .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))?
                    .map_err(|e| ApiError::Internal(e.to_string()))?
                    .is_some_and(|then| then.created_seq != c)
                }
                _ => false,
            };
            if before || someone_else {
                return Err(ApiError::Forbidden(format!(
                    "invalid `as_of`: at position {position} the name `{}` was not this account's; its past begins with it",
                    caller.username
                ))
                );
            }
        }
        if one_user_read(req) {
            req.extensions_mut().insert(AsOfPosition(position));
        } else if position != app.read().seq {
            let state = web::block(move || app.state_at(position))
                .await
                .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))??;
            req.extensions_mut().insert(AsOf(state));
        }
    }
    Ok(())
}

/// Request id, a tracing line per request, and the `X-Request-Id` response header.
pub async fn request_middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
    let rid = req
        .headers()
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(new_request_id);
    req.extensions_mut().insert(RequestId(rid.clone()));
    serve_artifactory_prefix(&mut req);
    without_trailing_slash(&mut req);
    art_api_header_as_bearer(&mut req);
    let method = req.method().clone();
    // HEAD is GET without the body (RFC 9110 9.3.2), wherever GET is served: routes
    // registered for GET answered 405 (the console's pages, most API reads). The wire
    // codec saw HEAD and sends no body.
    if method == actix_web::http::Method::HEAD {
        req.head_mut().method = actix_web::http::Method::GET;
    }
    let start = Instant::now();
    let mut res = next.call(req).await?;
    let status = res.status().as_u16();
    let elapsed = start.elapsed();
    // The route *template*, never the path: bounded label values, and no query string
    // (signed-URL signatures) or path segment a client chose can reach the log.
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    if let Some(app) = res.request().app_data::<web::Data<AppState>>() {
        app.metrics.record_request(
            crate::metrics::method_label(&method),
            &route,
            status,
            elapsed,
        );
    }
    if extract::access_log_enabled() {
        let extensions = res.request().extensions();
        let principal = extensions.get::<extract::PrincipalName>();
        tracing::info!(
            target: "gatehouse::access",
            request_id = %rid,
            principal = principal.map_or("-", |p| p.0.as_str()),
            %method,
            route = %route,
            status,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
    }
    let ignored = res
        .request()
        .extensions()
        .get::<extract::IgnoredFields>()
        .cloned();
    if let Some(extract::IgnoredFields(fields)) = ignored {
        let listed = ignored_fields_header(&fields);
        tracing::debug!(request_id = %rid, fields = %listed, "ignored unknown body fields");
        if let Ok(v) = HeaderValue::from_str(&listed) {
            res.headers_mut()
                .insert(HeaderName::from_static("x-gatehouse-ignored-fields"), v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&rid) {
        res.headers_mut()
            .insert(HeaderName::from_static("x-request-id"), v);
    }
    Ok(res)
}

/// A read-change-write (a PATCH, a PUT of one part of an entity) whose command is sent
/// as [`Command::IfUnchanged`](crate::domain::Command::IfUnchanged): run again while
/// another write came between its read and its write (412 from the domain), at most 32
/// times. Without it two at once both answered 200 and one change was lost.
///
/// On a shared log its read may be of a copy that trails the other nodes: a 404 is
/// asked again once this node has caught up (an object created on another node a moment
/// ago was "not found" here).
pub(crate) async fn read_change_write<T>(
    app: &AppState,
    mut once: impl AsyncFnMut() -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let mut caught_up = false;
    for attempt in 0..32u32 {
        match once().await {
            Err(ApiError::NotFound(_)) if !caught_up && app.writer.is_shared() => {
                caught_up = true;
                app.caught_up().await;
            }
            // Another write came first: again, after a pause drawn at random from a
            // window that doubles (up to 16 ms). Retried at once, forty PATCHes of one
            // entitlement at the same moment kept meeting each other, and a third of
            // them gave up with 409 (their changes commute: `tags_add`); with 16 tries
            // up to 8 ms apart, one in forty still did on a loaded machine.
            Err(ApiError::PreconditionFailed(_)) => {
                let window = 250u64 << attempt.min(6);
                let pause = rand::random::<u64>() % window;
                tokio::time::sleep(std::time::Duration::from_micros(pause)).await;
            }
            done => return done,
        }
    }
    Err(ApiError::Conflict(
        "it kept changing while this request was made; try again".into(),
    ))
}

/// What a path segment cannot hold as it is (RFC 3986 `pchar`): controls, space, and
/// `"#%/<>?[\]^`{|}`; everything outside ASCII is encoded too.
const NOT_IN_A_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// A name as one URL path segment, for the `uri` and `location` fields of answers: a
/// user `a#b` had the `uri` `…/users/a#b`, which names user `a`.
pub fn segment(name: &str) -> std::borrow::Cow<'_, str> {
    percent_encoding::utf8_percent_encode(name, NOT_IN_A_SEGMENT).into()
}

/// What a query parameter's value cannot hold as it is: a segment's set and the query's
/// own separators (`&`, `=`, `+`, `;`).
const NOT_IN_A_QUERY_VALUE: &percent_encoding::AsciiSet =
    &NOT_IN_A_SEGMENT.add(b'&').add(b'=').add(b'+').add(b';');

/// A value as one query parameter's value (what [`percent_decode`] gives back).
pub fn query_value(value: &str) -> std::borrow::Cow<'_, str> {
    percent_encoding::utf8_percent_encode(value, NOT_IN_A_QUERY_VALUE).into()
}

/// The longest name of an ignored field shown, and the longest list.
const IGNORED_NAME_MAX: usize = 64;
const IGNORED_LIST_MAX: usize = 1024;

/// `X-Gatehouse-Ignored-Fields`: the ignored fields' paths, comma-separated, in visible
/// ASCII (other bytes percent-encoded), each cut at [`IGNORED_NAME_MAX`] bytes and the
/// list at about [`IGNORED_LIST_MAX`] ("… and N more"). The names come from the body: a
/// 100 KB key made a 100 KB header that clients refuse to read (Python's `http.client`:
/// `LineTooLong`), after the write it answered was committed.
fn ignored_fields_header(fields: &[String]) -> String {
    let mut out = String::new();
    for (i, field) in fields.iter().enumerate() {
        let mut name = String::new();
        for &b in field.as_bytes() {
            if name.len() >= IGNORED_NAME_MAX {
                name.push_str("...");
                break;
            }
            if b.is_ascii_graphic() && b != b'%' && b != b',' {
                name.push(b as char);
            } else {
                name.push_str(&format!("%{b:02X}"));
            }
        }
        if !out.is_empty() && out.len() + name.len() + 2 > IGNORED_LIST_MAX {
            out.push_str(&format!(", ... and {} more", fields.len() - i));
            break;
        }
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(&name);
    }
    out
}

/// Artifactory serves Access under its own prefix (`/artifactory/access/api/…`), and
/// clients such as pyartifactory call it there: the same routes, handlers and answers.
/// Rewritten before routing (this middleware wraps the router).
fn serve_artifactory_prefix(req: &mut ServiceRequest) {
    let Some(rest) = req.path().strip_prefix("/artifactory/access/") else {
        return;
    };
    let target = format!("/access/{rest}");
    reroute(req, target);
}

/// Route the request as if it had asked `path` (its query kept): before routing.
fn reroute(req: &mut ServiceRequest, mut path: String) {
    if let Some(q) = req.uri().query() {
        path.push('?');
        path.push_str(q);
    }
    if let Ok(uri) = path.parse::<actix_web::http::Uri>() {
        req.match_info_mut().get_mut().update(&uri);
        req.head_mut().uri = uri;
    }
}

/// An API path with a trailing slash is the path without it, as Artifactory takes it
/// (rtpy's `system_info()` asks `GET /artifactory/api/system/`; every route answered
/// 404 there). Not the console's (`/ui/` is its page). Only a `/` at the end is looked
/// at: nothing on the common path.
fn without_trailing_slash(req: &mut ServiceRequest) {
    let path = req.path();
    if path.len() < 2 || !path.ends_with('/') || path.starts_with("/ui") {
        return;
    }
    let target = path.trim_end_matches('/').to_string();
    if !target.is_empty() {
        reroute(req, target);
    }
}

/// `X-JFrog-Art-Api: <token>` (dohq-artifactory's `apikey=`): Artifactory's header
/// for a credential without a user name. Gatehouse keeps no API keys (JFrog removed
/// them), so the header is taken for what a client can put there today: an access or
/// reference token, exactly as `Authorization: Bearer` — and only when no
/// `Authorization` header was sent.
fn art_api_header_as_bearer(req: &mut ServiceRequest) {
    use actix_web::http::header::AUTHORIZATION;
    if req.headers().contains_key(AUTHORIZATION) {
        return;
    }
    const X_JFROG_ART_API: HeaderName = HeaderName::from_static("x-jfrog-art-api");
    let Some(value) = req
        .headers()
        .get(X_JFROG_ART_API)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
    else {
        return;
    };
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {value}")) {
        req.headers_mut().insert(AUTHORIZATION, v);
    }
}

pub(crate) fn new_request_id() -> String {
    // Unique, not secret: the thread's CSPRNG, without a system call each. `crate::hex`
    // (a table), not `write!("{x:02x}")` a byte, which was 8 % of a ping's instructions.
    crate::hex(&rand::random::<[u8; 8]>())
}

/// Optional query parameters, parsed by hand so that errors name the parameter.
pub fn query_param(req: &HttpRequest, name: &str) -> Result<Option<String>, ApiError> {
    let q = req.query_string();
    let mut found = None;
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == name {
            // Given twice, which one was meant? The first was taken, silently (as a key
            // given twice in a body is refused).
            if found.is_some() {
                return Err(ApiError::BadRequest(format!(
                    "invalid `{name}`: given more than once"
                )));
            }
            found = Some(v);
        }
    }
    found
        .map(|v| {
            percent_decode_query(v).ok_or_else(|| {
                ApiError::BadRequest(format!("invalid `{name}`: bad percent-encoding"))
            })
        })
        .transpose()
}

/// Records above which a list is rendered off the HTTP workers (see `read_off_worker`).
pub const LARGE_LIST: usize = 2000;

/// `f` over the state `s`: here for a small job; for a `large` one, on the blocking pool,
/// over a copy of the state (a clone shares its structure) with its lock let go. A list
/// of tens of thousands rendered on an HTTP worker held it for seconds, and the requests
/// queued behind it on that worker timed out.
pub async fn read_off_worker<T: Send + 'static>(
    s: View<'_>,
    large: bool,
    f: impl FnOnce(&State) -> T + Send + 'static,
) -> Result<T, ApiError> {
    if !large {
        return Ok(f(&s));
    }
    let state: State = (*s).clone();
    drop(s);
    web::block(move || f(&state))
        .await
        .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))
}

/// Refuse a query parameter that is none of `known` (nor `as_of`, which every read
/// takes): a search whose filter is misspelt answered everything, and a script acting
/// on the answer acted on all of it.
pub fn only_query_params(req: &HttpRequest, known: &[&str]) -> Result<(), ApiError> {
    for pair in req.query_string().split('&').filter(|p| !p.is_empty()) {
        let (k, _) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode_query(k).unwrap_or_else(|| k.to_string());
        if name != "as_of" && !known.contains(&name.as_str()) {
            let filters = match known {
                [] => "it has none but `as_of`".to_string(),
                _ => format!("use {}", known.join(", ")),
            };
            return Err(ApiError::BadRequest(format!(
                "invalid query parameter `{}`: not a filter of this list ({filters})",
                name.escape_default(),
            )));
        }
    }
    Ok(())
}

/// Query values: `+` is a space (application/x-www-form-urlencoded).
fn percent_decode_query(s: &str) -> Option<String> {
    percent_decode_with(s, true)
}

/// Paths: `+` is a plus sign.
pub fn percent_decode(s: &str) -> Option<String> {
    percent_decode_with(s, false)
}

fn percent_decode_with(s: &str, plus_is_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// `limit` as the seed defines it: 1..=99999, default 1000.
pub fn limit_param(req: &HttpRequest) -> Result<usize, ApiError> {
    match query_param(req, "limit")? {
        None => Ok(1000),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=99_999).contains(&n) => Ok(n),
            // The value is not repeated (README: a wrong value is named, never echoed).
            _ => Err(ApiError::BadRequest(
                "invalid `limit`: expected a number between 1 and 99999".into(),
            )),
        },
    }
}

/// One page of a name-ordered map: at most `limit` values after `cursor`, and the cursor
/// of the next page when there is one. A cursor is the last name of the previous page, so
/// paging stays correct while entries are added or removed.
pub fn page<'a, K, V>(
    map: &'a std::collections::BTreeMap<K, V>,
    cursor: Option<&str>,
    limit: usize,
) -> (Vec<&'a V>, Option<String>)
where
    K: Ord + std::borrow::Borrow<str>,
{
    use std::ops::Bound::{Excluded, Unbounded};
    let iter: Box<dyn Iterator<Item = (&K, &V)>> = match cursor {
        Some(c) => Box::new(map.range::<str, _>((Excluded(c), Unbounded))),
        None => Box::new(map.iter()),
    };
    page_of(iter, limit)
}

/// [`page`] of a map of the read models (a persistent map of shared records).
pub fn page_shared<'a, K, V>(
    map: &'a gatehouse_projections::OrdMap<K, gatehouse_projections::Shared<V>>,
    cursor: Option<&str>,
    limit: usize,
) -> (Vec<&'a V>, Option<String>)
where
    K: Ord + Clone + std::borrow::Borrow<str>,
{
    use std::ops::Bound::{Excluded, Unbounded};
    let iter: Box<dyn Iterator<Item = (&K, &V)>> = match cursor {
        Some(c) => {
            let range: (std::ops::Bound<&str>, std::ops::Bound<&str>) = (Excluded(c), Unbounded);
            Box::new(map.range::<_, str>(range).map(|(k, v)| (k, &**v)))
        }
        None => Box::new(map.iter().map(|(k, v)| (k, &**v))),
    };
    page_of(iter, limit)
}

fn page_of<'a, K: std::borrow::Borrow<str> + ?Sized + 'a, V: ?Sized>(
    mut iter: Box<dyn Iterator<Item = (&'a K, &'a V)> + 'a>,
    limit: usize,
) -> (Vec<&'a V>, Option<String>) {
    let mut out = Vec::with_capacity(limit.min(1024));
    let mut last = None;
    for (name, value) in iter.by_ref().take(limit) {
        out.push(value);
        last = Some(name);
    }
    let next = if iter.next().is_some() {
        last.map(|n| n.borrow().to_string())
    } else {
        None
    };
    (out, next)
}

/// A page of `items` (named, in ascending order of their names) from `cursor` on, in
/// ascending or (`descendingOrder`) descending order: in descending order a cursor is the
/// last name of the previous page and the page holds the names before it.
pub fn page_ordered<'a, V: ?Sized>(
    items: impl DoubleEndedIterator<Item = (&'a str, &'a V)> + 'a,
    cursor: Option<&str>,
    limit: usize,
    descending: bool,
) -> (Vec<&'a V>, Option<String>) {
    let iter: Box<dyn Iterator<Item = (&'a str, &'a V)> + 'a> = match (descending, cursor) {
        (false, None) => Box::new(items),
        (false, Some(c)) => {
            let c = c.to_string();
            Box::new(items.filter(move |(k, _)| *k > c.as_str()))
        }
        (true, None) => Box::new(items.rev()),
        (true, Some(c)) => {
            let c = c.to_string();
            Box::new(items.rev().filter(move |(k, _)| *k < c.as_str()))
        }
    };
    page_of(iter, limit)
}

/// A boolean query parameter: `true` or `false` in any case (Python's `requests` sends
/// `True`); absent is false.
pub fn bool_param(req: &HttpRequest, name: &str) -> Result<bool, ApiError> {
    match query_param(req, name)? {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(ApiError::BadRequest(format!(
            "invalid `{name}`: `{}` (use true or false)",
            other.escape_debug()
        ))),
    }
}

/// Add `cursor` to a list response when there is a next page.
pub fn with_cursor(mut body: serde_json::Value, next: Option<String>) -> serde_json::Value {
    if let Some(c) = next {
        body["cursor"] = serde_json::Value::String(c);
    }
    body
}

/// The caller's address: the TCP peer, or — only when the peer is one of the configured
/// `trusted-proxies` — the right-most `X-Forwarded-For` entry that is not itself a
/// trusted proxy (the left-most entries are whatever the client chose to send).
pub fn client_ip(req: &HttpRequest, config: &Config) -> Option<std::net::IpAddr> {
    client_ip_as_sent(req, config).map(|ip| ip.to_canonical())
}

/// [`client_ip`] before an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) becomes IPv4.
fn client_ip_as_sent(req: &HttpRequest, config: &Config) -> Option<std::net::IpAddr> {
    let peer = req.peer_addr()?.ip().to_canonical();
    let trusted = |ip: std::net::IpAddr| crate::auth::cidrs_contain(&config.trusted_proxies, ip);
    if config.trusted_proxies.is_empty() || !trusted(peer) {
        if req.headers().contains_key("x-original-uri") {
            untrusted_auth_proxy(peer);
        }
        return Some(peer);
    }
    // Several headers are one list, in order. What a trusted proxy passed on that does
    // not parse is the client's own claim (it is left of every trusted hop), so the
    // client is unknown: `None`, which access keys with CIDRs refuse and the sign-in
    // limits count in one shared bucket. (It was the proxy's own address: a forged
    // `X-Forwarded-For: é` passed a key's blocked CIDRs and the per-address limit.)
    let mut hops = Vec::new();
    for value in req.headers().get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else {
            return None;
        };
        hops.extend(value.split(',').map(str::trim));
    }
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        // `a.b.c.d:port` and `[v6]:port`, as some proxies write them, are the address.
        let ip = hop
            .parse::<std::net::IpAddr>()
            .ok()
            .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()));
        match ip.map(|ip| ip.to_canonical()) {
            Some(ip) if trusted(ip) => client = ip,
            Some(ip) => return Some(ip),
            None => return None,
        }
    }
    Some(client)
}

/// An `auth_request` (it sends `X-Original-URI`) from a proxy `trusted-proxies` does not
/// list: every client behind it has the proxy's address, for the limits and the lock.
/// Said once, as a warning: it is a setting to make, not a request to refuse.
fn untrusted_auth_proxy(peer: std::net::IpAddr) {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            proxy = %peer,
            "authorize is asked through a proxy (X-Original-URI) that `trusted-proxies` does \
             not list: every client behind it shares its address, for access keys' CIDRs, \
             the failed sign-in limits and the lock (add the proxy's address to \
             `trusted-proxies`; see README, Behind a reverse proxy)"
        );
    }
}

/// The base URL the client used, for `uri` fields.
pub fn base_url(req: &HttpRequest) -> String {
    base_url_with(req, "")
}

/// [`base_url`] followed by `path`, in one allocation.
pub fn base_url_with(req: &HttpRequest, path: &str) -> String {
    use actix_web::http::header::{self, HeaderName};
    // Named once: a `&str` name is parsed on every look-up.
    const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
    const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
    let headers = req.headers();
    if !headers.contains_key(header::FORWARDED)
        && !headers.contains_key(X_FORWARDED_PROTO)
        && !headers.contains_key(X_FORWARDED_HOST)
    {
        // What `connection_info` answers when no proxy header is there (actix-web's
        // `ConnectionInfo::new`), without building the rest of it (the peer's address
        // as text, the `Forwarded` parse): it showed in the profile of a SCIM create.
        let config = req.app_config();
        let scheme = req
            .uri()
            .scheme_str()
            .or_else(|| config.secure().then_some("https"))
            .unwrap_or("http");
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()))
            .unwrap_or_else(|| config.host());
        return [scheme, "://", host, path].concat();
    }
    let info = req.connection_info();
    [info.scheme(), "://", info.host(), path].concat()
}

#[cfg(test)]
mod tests {
    /// The ignored fields' header is bounded and visible ASCII whatever the body's keys.
    #[test]
    fn the_ignored_fields_header_is_short_and_ascii() {
        use super::{ignored_fields_header, IGNORED_LIST_MAX, IGNORED_NAME_MAX};
        assert_eq!(
            ignored_fields_header(&["colour".into(), "meta.owner".into()]),
            "colour, meta.owner"
        );
        assert_eq!(ignored_fields_header(&["é x,%".into()]), "%C3%A9%20x%2C%25");
        let long = "k".repeat(100_000);
        let one = ignored_fields_header(std::slice::from_ref(&long));
        assert_eq!(one, format!("{}...", "k".repeat(IGNORED_NAME_MAX)));
        let many: Vec<String> = (0..1000).map(|i| format!("field{i}")).collect();
        let list = ignored_fields_header(&many);
        assert!(list.len() <= IGNORED_LIST_MAX + 32, "{}", list.len());
        assert!(list.starts_with("field0, field1, "), "{list}");
        assert!(list.ends_with("more"), "{list}");
        let shown = list.matches(", ").count();
        assert!(
            list.ends_with(&format!("... and {} more", 1000 - shown)),
            "{list}"
        );
        for fields in [vec![long], many, vec!["\u{0}\n\u{7f}".into()]] {
            let v = ignored_fields_header(&fields);
            assert!(v.bytes().all(|b| b == b' ' || b.is_ascii_graphic()), "{v}");
            assert!(actix_web::http::header::HeaderValue::from_str(&v).is_ok());
        }
    }

    /// Request ids are 16 lower-case hex digits, both digits of a byte drawn from all 16.
    #[test]
    fn request_ids_are_sixteen_hex_digits() {
        let mut seen = [[false; 16]; 2];
        let ids: std::collections::HashSet<String> =
            (0..1000).map(|_| super::new_request_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert_eq!(id.len(), 16, "{id}");
            for (i, c) in id.chars().enumerate() {
                let d = c.to_digit(16).filter(|_| !c.is_ascii_uppercase());
                let d = d.unwrap_or_else(|| panic!("{id}: not lower-case hex")) as usize;
                seen[i % 2][d] = true;
            }
        }
        assert!(
            seen.iter().flatten().all(|s| *s),
            "some hex digit never appears"
        );
    }

    /// `base_url` says what `connection_info` says, with and without proxy headers.
    #[test]
    fn base_url_agrees_with_connection_info() {
        use actix_web::test::TestRequest;
        let cases = [
            TestRequest::default(),
            TestRequest::default().insert_header(("host", "gh.example:8080")),
            TestRequest::default().uri("https://abs.example/x"),
            TestRequest::default().insert_header((
                "host",
                actix_web::http::header::HeaderValue::from_bytes(b"h\xffbad").unwrap(),
            )),
            TestRequest::default()
                .insert_header(("host", "inner"))
                .insert_header(("x-forwarded-proto", "https, http"))
                .insert_header(("x-forwarded-host", "outer.example")),
            TestRequest::default()
                .insert_header(("host", "inner"))
                .insert_header(("forwarded", "for=1.2.3.4;proto=https;host=fw.example")),
            TestRequest::default()
                .insert_header(("host", "inner"))
                .insert_header(("x-forwarded-for", "9.9.9.9")),
            TestRequest::default()
                .insert_header(("host", "inner"))
                .insert_header(("x-forwarded-host", "only-host.example")),
        ];
        for case in cases {
            let req = case.to_http_request();
            let expected = {
                let info = req.connection_info();
                format!("{}://{}", info.scheme(), info.host())
            };
            assert_eq!(super::base_url(&req), expected, "{:?}", req.headers());
            assert_eq!(super::base_url_with(&req, "/p"), format!("{expected}/p"));
        }
    }

    /// A misspelt pattern would silently turn a point-in-time read into a live one.
    #[test]
    fn every_as_of_read_is_a_get_route() {
        for p in super::AS_OF_READS {
            assert!(
                super::ROUTES.contains(&("GET", p)),
                "`{p}` is not a GET route"
            );
        }
    }
}

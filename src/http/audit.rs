//! The audit trail (admin): the log's events by position, time, entity, actor and type
//! (JSON pages, or NDJSON streamed for any range), the chain's status, the whole state
//! as of any point, and what changed between two points.
//!
//! Secrets never leave: password and token hashes are shown as `[redacted]`.

use super::error::ApiError;
use super::extract::Admin;
use super::{query_param, resource, AppState};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use gatehouse_projections::State;
use gatehouse_schemas::Envelope;
use serde_json::{json, Map, Value};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/access/api/v1/audit/events").route(web::get().to(events)))
        .service(resource("/access/api/v1/audit/chain").route(web::get().to(chain)))
        .service(resource("/access/api/v1/audit/state").route(web::get().to(state)))
        .service(resource("/access/api/v1/audit/diff").route(web::get().to(diff)))
        .service(resource("/access/api/v1/system/backup/export").route(web::post().to(backup)))
        .service(resource("/access/api/v1/system/backup/import").route(web::post().to(restore)))
        .service(
            resource("/access/api/v1/audit/checkpoints")
                .route(web::get().to(list_checkpoints))
                .route(web::post().to(create_checkpoint)),
        );
}

/// Sign a checkpoint of the log as it is now (see `crate::checkpoints`).
fn sign_checkpoint(app: &AppState) -> Result<gatehouse_schemas::Checkpoint, ApiError> {
    crate::checkpoints::sign(&app.read(), &app.keys, &app.log).map_err(ApiError::Internal)
}

fn checkpoint_json(c: &gatehouse_schemas::Checkpoint) -> Value {
    json!({
        "position": c.position,
        "head_hash": c.head_hash,
        "time": crate::timefmt::format(c.time_ms, true),
        "service_id": c.service_id,
        "kid": c.kid,
        "signature": c.signature,
    })
}

/// `GET /access/api/v1/audit/checkpoints`: every signed checkpoint, oldest first.
async fn list_checkpoints(
    app: web::Data<AppState>,
    _admin: Admin,
    req: HttpRequest,
) -> HttpResponse {
    let s = app.view(&req);
    let items: Vec<Value> = s.checkpoints.iter().map(checkpoint_json).collect();
    HttpResponse::Ok().json(json!({ "checkpoints": items }))
}

/// `POST /access/api/v1/audit/checkpoints`: sign one now (201).
async fn create_checkpoint(
    app: web::Data<AppState>,
    admin: Admin,
    rid: super::extract::RequestId,
) -> Result<HttpResponse, ApiError> {
    let c = sign_checkpoint(&app)?;
    let committed = app
        .submit(
            crate::domain::Command::RecordCheckpoint(c.clone()),
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(super::written(
        HttpResponse::Created().json(checkpoint_json(&c)),
        committed,
    ))
}

/// Keys whose values are secrets (or hashes of them): never shown.
const REDACTED_KEYS: &[&str] = &[
    "password_hash",
    "access_hash",
    "refresh_hash",
    "reference_hash",
];

/// Replace secret values; drop maps keyed by token hashes.
pub fn redact(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("by_refresh_hash");
            map.remove("by_reference_hash");
            for (k, x) in map.iter_mut() {
                if REDACTED_KEYS.contains(&k.as_str()) && !x.is_null() {
                    *x = json!("[redacted]");
                } else {
                    redact(x);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        // A SCIM group document of an earlier version may hold the `display`s a client
        // gave its members (personal data kept in clear): left out.
        Value::String(text) if text.contains(super::scim::MEMBER_DISPLAYS) => {
            if let Ok(Value::Object(mut doc)) = serde_json::from_str::<Value>(text) {
                doc.remove(super::scim::MEMBER_DISPLAYS);
                *text = Value::Object(doc).to_string();
            }
        }
        _ => {}
    }
}

/// One event as the audit trail shows it.
pub fn render_event(env: &Envelope, hash: &[u8; 32]) -> Value {
    let mut body = serde_json::to_value(&env.event).unwrap_or(Value::Null);
    // Externally tagged: `{"UserCreated": {...}}` -> `{...}` (moved out, not copied).
    if let Value::Object(m) = &mut body {
        if m.len() == 1 {
            body = std::mem::take(m)
                .into_iter()
                .next()
                .map_or(Value::Null, |(_, inner)| inner);
        }
    }
    redact(&mut body);
    json!({
        "position": env.seq,
        "time": crate::timefmt::format(env.time_ms, true),
        "time_ms": env.time_ms,
        "actor": env.actor,
        "origin": env.origin,
        "request_id": env.request_id,
        "type": env.event.kind(),
        "body": body,
        "hash": hex(hash),
    })
}

fn hex(bytes: &[u8]) -> String {
    crate::hex(bytes)
}

/// Does any string in `v` equal `needle`, or is `needle` a principal keyed in a
/// `users`/`groups` map (a permission target's grants: `"users": {"carol": [...]}`, which
/// a grant to carol did not count as mentioning her)?
///
/// An access key is named `<id>@<org>` everywhere else (its user name, diffs, webhooks):
/// an object with that `org` whose `id` (a key's event) or `access_keys` (an
/// entitlement's) holds the id mentions it too (`entity=ci@myorg` found nothing).
fn mentions(v: &Value, needle: &str) -> bool {
    match v {
        Value::String(s) => s == needle,
        Value::Array(items) => items.iter().any(|x| mentions(x, needle)),
        Value::Object(m) => {
            let key = needle
                .rsplit_once('@')
                .filter(|(_, org)| m.get("org").and_then(Value::as_str) == Some(*org));
            let names_key = key.is_some_and(|(id, _)| {
                m.get("id").and_then(Value::as_str) == Some(id)
                    || m.get("access_keys")
                        .and_then(Value::as_array)
                        .is_some_and(|keys| keys.iter().any(|k| k.as_str() == Some(id)))
            });
            names_key
                || m.iter().any(|(k, x)| {
                    let principals = matches!(k.as_str(), "users" | "groups")
                        && x.as_object().is_some_and(|p| p.contains_key(needle));
                    principals || mentions(x, needle)
                })
        }
        _ => false,
    }
}

/// What an events query asks.
struct EventQuery {
    from: u64,
    to: u64,
    types: Option<Vec<String>>,
    actor: Option<String>,
    entity: Option<String>,
}

impl EventQuery {
    fn matches(&self, env: &Envelope) -> bool {
        if let Some(t) = &self.types {
            if !t.iter().any(|t| t == env.event.kind()) {
                return false;
            }
        }
        if let Some(a) = &self.actor {
            if &env.actor != a {
                return false;
            }
        }
        if let Some(e) = &self.entity {
            let body = serde_json::to_value(&env.event).unwrap_or(Value::Null);
            if !mentions(&body, e) {
                return false;
            }
        }
        true
    }
}

fn position_param(req: &HttpRequest, name: &str) -> Result<Option<u64>, ApiError> {
    match query_param(req, name)? {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ApiError::BadRequest(format!("invalid `{name}`: `{v}` is not a log position"))
        }),
    }
}

fn time_param(req: &HttpRequest, name: &str) -> Result<Option<u64>, ApiError> {
    match query_param(req, name)? {
        None => Ok(None),
        Some(v) => crate::timefmt::parse(&v).map(Some).ok_or_else(|| {
            ApiError::BadRequest(format!("invalid `{name}`: `{v}` is not an RFC 3339 time"))
        }),
    }
}

fn event_query(app: &AppState, req: &HttpRequest) -> Result<EventQuery, ApiError> {
    // A misspelt filter (`actr=alice`, `untill=`) answered every event.
    super::only_query_params(
        req,
        &[
            "from", "to", "since", "until", "type", "actor", "entity", "limit",
        ],
    )?;
    let head = app.read().seq;
    let internal = |e: crate::log::LogError| ApiError::Internal(e.to_string());
    let mut from = position_param(req, "from")?.unwrap_or(1).max(1);
    let mut to = position_param(req, "to")?.unwrap_or(head).min(head);
    if let Some(since) = time_param(req, "since")? {
        // The first event at or after `since`.
        let before = app
            .log
            .position_at_time(since.saturating_sub(1), head)
            .map_err(internal)?;
        from = from.max(before + 1);
    }
    if let Some(until) = time_param(req, "until")? {
        to = to.min(app.log.position_at_time(until, head).map_err(internal)?);
    }
    let types = query_param(req, "type")?.map(|t| {
        t.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
    });
    if let Some(types) = &types {
        if types.is_empty() {
            // `type=` or `type=,` answered nothing at all.
            return Err(ApiError::BadRequest(
                "invalid `type`: give one or more event types, separated by commas".into(),
            ));
        }
        if let Some(bad) = types
            .iter()
            .find(|t| !gatehouse_schemas::Event::KINDS.contains(&t.as_str()))
        {
            return Err(ApiError::BadRequest(format!(
                "invalid `type`: `{bad}` is not an event type (see GET /access/api/v1/audit/events?type=...: {})",
                gatehouse_schemas::Event::KINDS.join(", ")
            )));
        }
    }
    Ok(EventQuery {
        from,
        to,
        types,
        actor: named(req, "actor")?,
        entity: named(req, "entity")?,
    })
}

/// A filter that names something: given empty, it matched nothing under a 200 (`type=`
/// was already a 400).
fn named(req: &HttpRequest, name: &str) -> Result<Option<String>, ApiError> {
    match query_param(req, name)? {
        Some(v) if v.is_empty() => Err(ApiError::BadRequest(format!(
            "invalid `{name}`: empty (leave it out to match every {name})"
        ))),
        other => Ok(other),
    }
}

fn wants_ndjson(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/x-ndjson"))
}

/// `GET /access/api/v1/audit/events`: a page (`limit`, default 100, at most 10,000;
/// `next` is the position to continue from), or with `Accept: application/x-ndjson`
/// every matching event of the range, streamed.
async fn events(
    app: web::Data<AppState>,
    _admin: Admin,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = event_query(&app, &req)?;
    // Checked for the stream too (`limit=abc` answered every event under a 200); the
    // stream is every matching event of the range, as README says.
    let limit = match query_param(&req, "limit")? {
        None => 100,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=10_000).contains(&n) => n,
            _ => {
                return Err(ApiError::BadRequest(
                    "invalid `limit`: expected a number between 1 and 10000".into(),
                ))
            }
        },
    };
    if wants_ndjson(&req) {
        return Ok(stream_ndjson(&app, q));
    }
    let log = app.log.reader();
    let (page, next) = web::block(move || -> Result<(Vec<Value>, Option<u64>), ApiError> {
        let mut page = Vec::new();
        let mut next = None;
        if q.from <= q.to {
            log.for_each_event(q.from, Some(q.to), |seq, hash, env| {
                if q.matches(&env) {
                    if page.len() == limit {
                        next = Some(seq);
                        return false;
                    }
                    page.push(render_event(&env, hash));
                }
                true
            })
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        }
        Ok((page, next))
    })
    .await
    .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))??;
    let mut body = json!({"events": page});
    if let Some(n) = next {
        body["next"] = json!(n);
    }
    Ok(HttpResponse::Ok().json(body))
}

/// Stream the range as NDJSON from a reader thread through a small bounded channel, so
/// memory stays flat however long the range is; a client that goes away stops it.
fn stream_ndjson(app: &AppState, q: EventQuery) -> HttpResponse {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<web::Bytes, std::io::Error>>(16);
    let log = app.log.reader();
    std::thread::spawn(move || {
        let mut buf = Vec::with_capacity(64 * 1024);
        let result = log.for_each_event(q.from, Some(q.to), |_, hash, env| {
            if !q.matches(&env) {
                return true;
            }
            if serde_json::to_writer(&mut buf, &render_event(&env, hash)).is_err() {
                return false;
            }
            buf.push(b'\n');
            if buf.len() >= 60 * 1024 {
                let chunk =
                    web::Bytes::from(std::mem::replace(&mut buf, Vec::with_capacity(64 * 1024)));
                return tx.blocking_send(Ok(chunk)).is_ok();
            }
            true
        });
        if !buf.is_empty() {
            let _ = tx.blocking_send(Ok(web::Bytes::from(buf)));
        }
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(stream)
}

/// `GET /access/api/v1/audit/chain`: verify the whole hash chain now.
/// How many whole-state reads (`state`, `chain`, `diff`) run at once; the others wait.
/// Each holds a rendering or a replayed state as large as the read models (sixteen at
/// once took a server of 100 MB to 579 MB, thirty-two `state`s to 1.4 GB).
static WHOLE_STATE_READS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

async fn whole_state_turn() -> Result<tokio::sync::SemaphorePermit<'static>, ApiError> {
    WHOLE_STATE_READS
        .acquire()
        .await
        .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))
}

async fn chain(app: web::Data<AppState>, _admin: Admin) -> Result<HttpResponse, ApiError> {
    let _turn = whole_state_turn().await?;
    let log = app.log.reader();
    // The state served now, to be compared with the log's own replay: the server starts
    // from a snapshot, and one rewritten with a recomputed checksum was served while
    // the chain said "intact".
    let live = app.read().clone();
    let result = web::block(move || {
        let mut replayed = State::default();
        let report = log.verify_with(|env| {
            if env.seq <= live.seq {
                replayed.apply(env)
            }
        })?;
        let same = replayed.seq != live.seq || replayed.digest() == live.digest();
        // The signed checkpoints too: a history rewritten before one, its chain
        // recomputed, chains from end to end.
        crate::checkpoints::check(&replayed, |p| log.hash_at(p).ok().flatten(), None).map_err(
            |reason| crate::log::LogError::ChainBroken {
                seq: checkpoint_position(&reason),
                reason,
            },
        )?;
        Ok::<_, crate::log::LogError>((report, same, live.seq))
    })
    .await
    .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))?;
    Ok(HttpResponse::Ok().json(match result {
        Ok((_, false, at)) => json!({
            "status": "diverged",
            "broken_at": at,
            "reason": format!("the state served differs from the log's replay at position {at}: \
                the server started from a snapshot that does not match the log (`gatehouse verify` \
                names it; remove it and restart)"),
        }),
        Ok((report, true, _)) => json!({
            "status": "intact",
            "verified_to": report.events,
            "events": report.events,
            "head_hash": hex(&report.head_hash),
        }),
        Err(e) => {
            let broken = e.position();
            json!({
                "status": "broken",
                "verified_to": broken.map(|p| p.saturating_sub(1)),
                "broken_at": broken,
                "reason": e.to_string(),
            })
        }
    }))
}

/// The position a checkpoint's refusal names ("checkpoint at position N …").
fn checkpoint_position(reason: &str) -> u64 {
    reason
        .strip_prefix("checkpoint at position ")
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The whole state as JSON, secrets redacted.
pub fn state_json(s: &State) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    redact(&mut v);
    v
}

/// `GET /access/api/v1/audit/state[?as_of=…]`.
async fn state(
    app: web::Data<AppState>,
    _admin: Admin,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    // Rendered on the blocking pool (a large state is megabytes of JSON and seconds of
    // work: on an HTTP worker it held every request of that worker); the state is a
    // clone that shares its structure, taken without holding the lock across the work.
    let _turn = whole_state_turn().await?;
    let s: State = (*app.view(&req)).clone();
    let body = web::block(move || serde_json::to_vec(&state_json(&s)))
        .await
        .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(body))
}

/// The records a diff compares, as they are: secrets included (not redacted, which made
/// every password hash `[redacted]` on both sides: a password reset never showed), since
/// a diff answers with the names of what changed, never a value.
fn collections(s: &State) -> Vec<(&'static str, Map<String, Value>)> {
    let j = |v: Value| match v {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    vec![
        (
            "user",
            j(serde_json::to_value(&s.directory.users).unwrap_or_default()),
        ),
        (
            "group",
            j(serde_json::to_value(&s.directory.groups).unwrap_or_default()),
        ),
        (
            "token",
            j(serde_json::to_value(&s.tokens.by_id).unwrap_or_default()),
        ),
        (
            "permission_target",
            j(serde_json::to_value(&s.permissions.targets).unwrap_or_default()),
        ),
        (
            "repository",
            j(serde_json::to_value(&s.repositories.by_key).unwrap_or_default()),
        ),
        (
            "project",
            j(serde_json::to_value(&s.projects.by_key).unwrap_or_default()),
        ),
        (
            "access_key",
            j(serde_json::to_value(&s.access_keys.keys).unwrap_or_default()),
        ),
        (
            "entitlement",
            j(serde_json::to_value(&s.access_keys.entitlements).unwrap_or_default()),
        ),
        (
            "trusted_key",
            j(serde_json::to_value(&s.keys.trusted).unwrap_or_default()),
        ),
        (
            // The definition itself, so that changed fields name its parts (`handlers`,
            // `event_types`, …) rather than the whole record.
            "subscription",
            j(serde_json::to_value(
                s.subscriptions
                    .iter()
                    .map(|(k, r)| (k, &r.subscription))
                    .collect::<std::collections::BTreeMap<_, _>>(),
            )
            .unwrap_or_default()),
        ),
        // Access-widening changes an auditor diffs for: global roles, federation targets
        // (what goes to which peer), LDAP settings (the manager password stays sealed).
        (
            "global_role",
            j(serde_json::to_value(&s.projects.global_roles).unwrap_or_default()),
        ),
        (
            "federation_target",
            j(serde_json::to_value(
                s.federation
                    .targets
                    .iter()
                    .map(|(k, r)| (k, &r.target))
                    .collect::<std::collections::BTreeMap<_, _>>(),
            )
            .unwrap_or_default()),
        ),
        (
            "ldap_setting",
            j(serde_json::to_value(&s.settings.ldap.settings).unwrap_or_default()),
        ),
        (
            "ldap_group_setting",
            j(serde_json::to_value(&s.settings.ldap.group_settings).unwrap_or_default()),
        ),
    ]
}

/// Bookkeeping fields that change with every event touching an entity.
fn bookkeeping(field: &str) -> bool {
    field.ends_with("_seq") || field.ends_with("_ms")
}

/// What changed from `a` to `b`, entity by entity.
pub fn diff_states(a: &State, b: &State) -> Vec<Value> {
    let mut out = Vec::new();
    for ((kind, before), (_, after)) in collections(a).into_iter().zip(collections(b)) {
        for (id, old) in &before {
            // Another record under the same name (deleted and created again between the
            // two positions) is a deletion and a creation, not a change of fields.
            let created = |v: &Value| v.get("created_seq").cloned();
            let replaced = after
                .get(id)
                .is_some_and(|new| created(new).is_some() && created(new) != created(old));
            if replaced {
                out.push(json!({"entity": kind, "id": id, "change": "deleted"}));
                out.push(json!({"entity": kind, "id": id, "change": "created"}));
                continue;
            }
            match after.get(id) {
                None => out.push(json!({"entity": kind, "id": id, "change": "deleted"})),
                Some(new) if new != old => {
                    let mut fields: Vec<&String> = match (old, new) {
                        (Value::Object(o), Value::Object(n)) => o
                            .keys()
                            .chain(n.keys())
                            .filter(|k| !bookkeeping(k) && o.get(*k) != n.get(*k))
                            .collect(),
                        _ => vec![],
                    };
                    fields.sort();
                    fields.dedup();
                    if !fields.is_empty() {
                        out.push(json!({"entity": kind, "id": id, "change": "changed", "fields": fields}));
                    }
                }
                Some(_) => {}
            }
        }
        for id in after.keys() {
            if !before.contains_key(id) {
                out.push(json!({"entity": kind, "id": id, "change": "created"}));
            }
        }
    }
    out
}

/// `GET /access/api/v1/audit/diff?from=…&to=…` (positions or RFC 3339 times).
async fn diff(
    app: web::Data<AppState>,
    _admin: Admin,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    super::only_query_params(&req, &["from", "to"])?;
    let from = query_param(&req, "from")?
        .ok_or_else(|| ApiError::BadRequest("invalid `from`: required".into()))?;
    let to = query_param(&req, "to")?.unwrap_or_else(|| app.read().seq.to_string());
    // Errors name the parameter given (they said `as_of`, which this request has not).
    let named = |field: &'static str| {
        move |e: ApiError| match e {
            ApiError::BadRequest(m) => {
                ApiError::BadRequest(m.replacen("`as_of`", &format!("`{field}`"), 1))
            }
            other => other,
        }
    };
    let from = app.resolve_as_of(&from).map_err(named("from"))?;
    let to = app.resolve_as_of(&to).map_err(named("to"))?;
    if from > to {
        return Err(ApiError::BadRequest(format!(
            "invalid `from`: position {from} is after `to` ({to})"
        )));
    }
    let app2 = app.clone();
    let _turn = whole_state_turn().await?;
    // The comparison and its rendering too, off the HTTP workers (seconds on a large
    // state).
    let body = web::block(move || -> Result<_, ApiError> {
        let (a, b) = (app2.state_at(from)?, app2.state_at(to)?);
        serde_json::to_vec(&json!({
            "from": from,
            "to": to,
            "changes": diff_states(&a, &b),
        }))
        .map_err(|e| ApiError::Internal(e.to_string()))
    })
    .await
    .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))??;
    Ok(HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(body))
}

/// `POST /access/api/v1/system/backup/export` (seed 004): write the whole log in the
/// binary export form to `<data-dir>/backup/gatehouse-<position>.bin` — what
/// `gatehouse import` restores into an empty data directory (the private keys are not
/// in it: they stay files in `<data-dir>/keys/`).
async fn backup(app: web::Data<AppState>, _admin: Admin) -> Result<HttpResponse, ApiError> {
    let log = app.log.reader();
    let position = app.read().seq;
    let dir = app.data_dir.join("backup");
    let app2 = app.clone();
    let (path, events) = web::block(move || -> Result<_, ApiError> {
        // One export at a time: two at one position wrote one temporary file at once
        // (answered 200 over a backup cut short or longer than its signature, or 500).
        static EXPORTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = EXPORTING.lock().unwrap_or_else(|p| p.into_inner());
        let io = |e: std::io::Error| ApiError::Internal(format!("cannot write the backup: {e}"));
        crate::log::private_dir(&dir).map_err(io)?;
        let tmp = dir.join(format!(".gatehouse-{position}.bin.partial"));
        // Private (0600): a backup holds password hashes.
        let file = crate::log::private_file(&tmp).map_err(io)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        let n = crate::log::export::write(&log, &mut w, crate::log::export::Format::Binary)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        // Named by its last position (writes made meanwhile are in it; the name said the
        // position read before, and the newest backup is found by its name).
        let path = dir.join(format!("gatehouse-{n}.bin"));
        let file = w.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        // Signed by this server (the active key) over its last record: only a backup this
        // server made continues its log over HTTP (events added to a file, their chain
        // recomputed, were appended in anyone's name).
        let hash = log
            .hash_at(n)
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .ok_or_else(|| ApiError::Internal(format!("position {n} is not in the log")))?;
        let signed = {
            let s = app2.read();
            crate::checkpoints::sign_position(&s, &app2.keys, n, &hash, crate::auth::unix_millis())
        }
        .map_err(|e| ApiError::Unavailable(format!("cannot sign the backup: {e}")))?;
        let sig = signature_file(&path);
        let sig_tmp = dir.join(format!(".gatehouse-{position}.bin.sig.partial"));
        let mut f = crate::log::private_file(&sig_tmp).map_err(io)?;
        std::io::Write::write_all(&mut f, &serde_json::to_vec(&signed).unwrap_or_default())
            .map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&sig_tmp, &sig).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok((path, n))
    })
    .await
    .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))??;
    Ok(HttpResponse::Ok().json(json!({
        "file": path.display().to_string(),
        "events": events,
    })))
}

/// Where a backup's signature is kept: beside it, `<file>.sig`.
fn signature_file(backup: &std::path::Path) -> std::path::PathBuf {
    let mut name = backup.as_os_str().to_os_string();
    name.push(".sig");
    std::path::PathBuf::from(name)
}

/// The export `gatehouse-<position>.bin` with the highest position.
fn newest_backup(dir: &std::path::Path) -> Option<String> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n: u64 = name
                .strip_prefix("gatehouse-")?
                .strip_suffix(".bin")?
                .parse()
                .ok()?;
            Some((n, name))
        })
        .max()
        .map(|(_, name)| name)
}

/// A file name in `<data-dir>/backup/` (no directories); none: the newest. Any other
/// field but JFrog's `saas` (py-jfrog-client's `ImportAccessConfigurationRequest`
/// carries it; the cloud's import, meaning nothing here) is refused: a misspelt `file`
/// must not import the newest backup instead.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreBody {
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    saas: Option<bool>,
}

/// `POST /access/api/v1/system/backup/import` `{"file": "gatehouse-123.bin"}` (seed 004):
/// a backup from `<data-dir>/backup/` that *continues* this server's log — the same
/// chain up to this server's head, and more after it (a replica's or a later backup) —
/// is checked whole (every hash, every event decodes) and its further events are
/// appended as they are. A backup that diverges from this log, or is behind it, is
/// refused (409): a different history is restored offline, into an empty data
/// directory, with `gatehouse import`.
///
/// Without a body (the seed's own `curl`), or one without `file` (py-jfrog-client sends
/// `{"saas": false}`), the newest export in `<data-dir>/backup/`.
async fn restore(
    app: web::Data<AppState>,
    _admin: Admin,
    super::extract::OptionalBody(body): super::extract::OptionalBody<RestoreBody>,
) -> Result<HttpResponse, ApiError> {
    let name = match body.and_then(|b| b.file) {
        Some(file) => file,
        None => newest_backup(&app.data_dir.join("backup")).ok_or_else(|| {
            ApiError::NotFound(
                "no backup in <data-dir>/backup/ (make one with POST /access/api/v1/system/backup/export)"
                    .into(),
            )
        })?,
    };
    // The `file` an export answered (its path under the data directory) names the same
    // file (it was refused for its directories).
    // (Compared as directories, not as text: `./d`, `d/` and an absolute path name it too.)
    let backup_dir = app.data_dir.join("backup");
    let answered = format!("{}/", backup_dir.display());
    let name = match name.strip_prefix(&answered) {
        Some(rest) => rest.to_string(),
        None => {
            let p = std::path::Path::new(&name);
            let same_dir = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .and_then(|d| d.canonicalize().ok())
                .is_some_and(|d| backup_dir.canonicalize().is_ok_and(|b| b == d));
            match p.file_name().and_then(|f| f.to_str()).filter(|_| same_dir) {
                Some(f) => f.to_string(),
                None => name,
            }
        }
    };
    if name.is_empty()
        || name.contains('/')
        || name.contains('\\')
        || name.starts_with('.')
        || name.len() > 255
    {
        return Err(ApiError::BadRequest(
            "invalid `file`: a file name in <data-dir>/backup/, without directories".into(),
        ));
    }
    let path = app.data_dir.join("backup").join(&name);
    if !path.is_file() {
        return Err(ApiError::NotFound(format!(
            "no backup `{name}` in <data-dir>/backup/"
        )));
    }
    let log = app.log.reader();
    let head = app.read().seq;
    let state = app.read().clone();
    let records = web::block(move || -> Result<Vec<crate::log::RawEvent>, ApiError> {
        let data = std::fs::read(&path)
            .map_err(|e| ApiError::Internal(format!("cannot read the backup: {e}")))?;
        let unsigned = |why: String| {
            ApiError::BadRequest(format!(
                "invalid `file`: {why}; only a backup this server made (POST …/backup/export) continues its log here — restore others into an empty data directory with `gatehouse import`"
            ))
        };
        let signed: gatehouse_schemas::Checkpoint = std::fs::read(signature_file(&path))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| unsigned("it has no signature (`<file>.sig`)".into()))?;
        // Signed at its last position (checked below): whole without the end mark,
        // and backups written before there was one continue the log as they did.
        let records = crate::log::export::read_with(&data, true)
            .map_err(|e| ApiError::BadRequest(format!("invalid `file`: {e}")))?;
        // The whole backup must be a sound chain, not just the part that is new.
        let mut prev = crate::log::GENESIS_HASH;
        for (i, r) in records.iter().enumerate() {
            let expected = i as u64 + 1;
            if r.seq != expected || crate::log::chain_hash(&prev, &r.bytes) != r.hash {
                return Err(ApiError::BadRequest(format!(
                    "invalid `file`: the backup's chain is broken at position {expected}"
                )));
            }
            prev = r.hash;
        }
        let last = records.len() as u64;
        let signed_ok = signed.position == last
            && state.service_id.as_deref() == Some(signed.service_id.as_str())
            && records
                .last()
                .is_some_and(|r| crate::hex(&r.hash) == signed.head_hash);
        if !signed_ok {
            return Err(unsigned(format!(
                "its signature is not over its last record ({last}) by this server"
            )));
        }
        crate::checkpoints::signature_holds(&state, &signed, None).map_err(unsigned)?;
        if (records.len() as u64) < head {
            return Err(ApiError::Conflict(format!(
                "the backup ends at position {} and this log is at {head}: it is behind",
                records.len()
            )));
        }
        if head > 0 {
            let ours = log
                .hash_at(head)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            if ours != Some(records[head as usize - 1].hash) {
                return Err(ApiError::Conflict(format!(
                    "the backup's history differs from this log's at or before position {head}; restore it into an empty data directory with `gatehouse import`"
                )));
            }
        }
        Ok(records.into_iter().skip(head as usize).collect())
    })
    .await
    .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))??;
    // Personal data sealed with keys this server does not have (users made at the other
    // server after this log's head) can never be read here: said, not silent (it read
    // `[erased]`, as after a purge).
    let unreadable: usize = records
        .iter()
        .filter_map(|r| gatehouse_schemas::decode(&r.bytes).ok())
        .map(|env| {
            let mut v = serde_json::to_value(&env.event).unwrap_or(Value::Null);
            count_unreadable(&app.personal, &mut v)
        })
        .sum();
    let imported = records.len();
    let committed = if imported == 0 {
        crate::writer::Committed {
            seq: head,
            events: 0,
        }
    } else {
        app.writer.import(records).await?
    };
    let mut answer = HttpResponse::Ok();
    if unreadable > 0 {
        answer.insert_header((
            "X-Gatehouse-Notice",
            format!("{unreadable} sealed value(s) of personal data in the imported events use keys this server does not have: they read [erased] here"),
        ));
    }
    Ok(super::written(
        answer.json(json!({"imported": imported, "position": committed.seq, "unreadable_personal_data": unreadable})),
        committed,
    ))
}

/// Sealed values in `v` that `keys` cannot open.
fn count_unreadable(keys: &crate::personal::PersonalKeys, v: &mut Value) -> usize {
    match v {
        Value::String(text) => {
            usize::from(crate::personal::key_id(text).is_some() && keys.decrypt(text).is_none())
        }
        Value::Array(items) => items.iter_mut().map(|x| count_unreadable(keys, x)).sum(),
        Value::Object(map) => map.values_mut().map(|x| count_unreadable(keys, x)).sum(),
        _ => 0,
    }
}

//! Access Federation (seed 004) under `/access/api/v1/system/federation`: targets,
//! validation of the circle of trust, full broadcasts, the stream's status, and the
//! receiving side (`receive`, `challenge`) that peers call. How changes travel and why
//! they converge is in `crate::federation`.

use super::error::ApiError;
use super::extract::{Admin, Body, RequestId};
use super::{resource, written, AppState};
use crate::authorize::valid_pattern;
use crate::domain::{self, unfederated_user, Command, Replicated, ReplicatedChange};
use crate::federation::{self as fed, Batch, ChangeWire, ENTITIES};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use gatehouse_schemas::FederationTarget;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;

const BASE: &str = "/access/api/v1/system/federation";

/// Batches of a full broadcast carry thousands of entities: far more than the general
/// request limit.
const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;

/// How far ahead of our clock a peer's version may be.
const MAX_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Fixed paths first: `{name}` would take them otherwise.
    cfg.service(
        resource(BASE)
            .route(web::get().to(list))
            .route(web::post().to(register)),
    )
    // Seed 004's curls end the list and register paths with a slash.
    .service(
        resource(&format!("{BASE}/"))
            .route(web::get().to(list))
            .route(web::post().to(register)),
    )
    .service(resource(&format!("{BASE}/validate_server")).route(web::post().to(validate)))
    .service(resource(&format!("{BASE}/full_broadcast")).route(web::put().to(broadcast_all)))
    .service(resource(&format!("{BASE}/receive")).route(web::post().to(receive)))
    .service(resource(&format!("{BASE}/challenge")).route(web::post().to(challenge)))
    .service(
        resource(&format!("{BASE}/{{name}}"))
            .route(web::get().to(get))
            .route(web::patch().to(patch))
            .route(web::delete().to(delete)),
    )
    .service(resource(&format!("{BASE}/{{name}}/status")).route(web::get().to(status)))
    .service(
        resource(&format!("{BASE}/{{access_id}}/full_broadcast"))
            .route(web::put().to(broadcast_from)),
    );
}

#[derive(Deserialize, Default, PartialEq)]
struct FiltersIn {
    #[serde(
        default,
        alias = "include_patterns",
        rename = "includePatterns",
        deserialize_with = "crate::views::null_as_default"
    )]
    include_patterns: Vec<String>,
    #[serde(
        default,
        alias = "exclude_patterns",
        rename = "excludePatterns",
        deserialize_with = "crate::views::null_as_default"
    )]
    exclude_patterns: Vec<String>,
}

/// Register and patch bodies; the seed shows both spellings of the filters.
#[derive(Deserialize)]
struct TargetIn {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    entities: Option<Vec<String>>,
    // Both spellings, each its own field: a target's GET answer shows both, and sent
    // back (to register it again) it was "duplicate field `groupFilters`".
    #[serde(default, rename = "permissionFilters")]
    permission_filters: Option<FiltersIn>,
    #[serde(default, rename = "permission_filters")]
    permission_filters_snake: Option<FiltersIn>,
    #[serde(default, rename = "groupFilters")]
    group_filters: Option<FiltersIn>,
    #[serde(default, rename = "group_filters")]
    group_filters_snake: Option<FiltersIn>,
    #[serde(default)]
    active: Option<bool>,
}

/// One of a field's two spellings: either, or both when they say the same.
fn either(
    camel: Option<FiltersIn>,
    snake: Option<FiltersIn>,
    field: &str,
    snake_field: &str,
) -> Result<Option<FiltersIn>, ApiError> {
    match (camel, snake) {
        (Some(a), Some(b)) if a != b => Err(bad(format!(
            "invalid `{field}`: `{snake_field}` is sent too, and says otherwise (send one)"
        ))),
        (a, b) => Ok(a.or(b)),
    }
}

fn bad(msg: String) -> ApiError {
    ApiError::BadRequest(msg)
}

/// The fixed paths under `BASE` that a target's name would collide with.
const RESERVED: [&str; 4] = ["validate_server", "full_broadcast", "receive", "challenge"];

fn check_name(name: &str) -> Result<(), ApiError> {
    // It goes in a URL path, where `.` and `..` are no segment a client can send.
    if name == "." || name == ".." {
        return Err(bad("invalid `name`: must not be `.` or `..`".into()));
    }
    // The fixed routes beside `{BASE}/{name}`: a target of one of these names could be
    // made but never read, changed or removed (each answered 405), and broke every
    // later full broadcast.
    if RESERVED.contains(&name) {
        return Err(bad(format!(
            "invalid `name`: `{name}` is the name of a route here (not {})",
            RESERVED.join(", ")
        )));
    }
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
    {
        return Err(bad(format!(
            "invalid `name`: `{}` (1 to 64 letters, digits, `-`, `_`, `.`, `@`)",
            name.escape_debug()
        )));
    }
    Ok(())
}

fn check_url(url: &str) -> Result<(), ApiError> {
    if super::webhooks::has_credentials(url) {
        return Err(bad(
            "invalid `url`: a user name or password in the URL would be stored and shown in \
             clear (peers authenticate with the circle of trust's tokens)"
                .into(),
        ));
    }
    // The webhooks' rule (http/https, a host, no whitespace), and no query or fragment:
    // paths are appended to it.
    let ok = super::webhooks::check_url("url", url).is_ok() && !url.contains(['?', '#']);
    if !ok {
        return Err(bad(
            "invalid `url`: the peer's Access base URL (http:// or https://, e.g. `https://access.example.com/access/`)".into(),
        ));
    }
    Ok(())
}

fn check_filters(name: &str, f: &FiltersIn) -> Result<(), ApiError> {
    for (field, list) in [
        ("includePatterns", &f.include_patterns),
        ("excludePatterns", &f.exclude_patterns),
    ] {
        for (i, p) in list.iter().enumerate() {
            if !valid_pattern(p) || p.len() > 1024 {
                return Err(bad(format!(
                    "invalid `{name}.{field}[{i}]`: `{}` is not a valid pattern",
                    p.escape_debug()
                )));
            }
        }
    }
    Ok(())
}

/// Apply the fields of `body` to `t` (all of them for a register, some for a patch).
fn apply_fields(t: &mut FederationTarget, body: TargetIn) -> Result<(), ApiError> {
    if let Some(url) = body.url {
        check_url(&url)?;
        t.url = url;
    }
    if let Some(entities) = body.entities {
        let mut seen = BTreeSet::new();
        for (i, e) in entities.iter().enumerate() {
            if !ENTITIES.iter().any(|(p, _)| p == e) {
                return Err(bad(format!(
                    "invalid `entities[{i}]`: `{}` (use users, groups, permissions, tokens)",
                    e.escape_debug()
                )));
            }
            seen.insert(e.clone());
        }
        if seen.is_empty() {
            return Err(bad("invalid `entities`: give at least one".into()));
        }
        t.entities = ENTITIES
            .iter()
            .map(|(p, _)| p.to_string())
            .filter(|p| seen.contains(p))
            .collect();
    }
    let permission_filters = either(
        body.permission_filters,
        body.permission_filters_snake,
        "permissionFilters",
        "permission_filters",
    )?;
    let group_filters = either(
        body.group_filters,
        body.group_filters_snake,
        "groupFilters",
        "group_filters",
    )?;
    if let Some(f) = permission_filters {
        check_filters("permissionFilters", &f)?;
        t.include_patterns = f.include_patterns;
        t.exclude_patterns = f.exclude_patterns;
    }
    if let Some(f) = group_filters {
        check_filters("groupFilters", &f)?;
        t.group_include_patterns = f.include_patterns;
        t.group_exclude_patterns = f.exclude_patterns;
    }
    if let Some(a) = body.active {
        t.active = a;
    }
    Ok(())
}

async fn list(app: web::Data<AppState>, _admin: Admin, req: HttpRequest) -> HttpResponse {
    let s = app.view(&req);
    let all: Vec<Value> = s
        .federation
        .targets
        .values()
        .map(|r| crate::views::federation_target(&r.target))
        .collect();
    // `targets` is what JFrog's OpenAPI description (and py-jfrog-client) reads;
    // `configurations` stays for clients of the earlier shape.
    HttpResponse::Ok().json(json!({ "targets": all, "configurations": all }))
}

async fn get(
    app: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let s = app.view(&req);
    let r = s
        .federation
        .targets
        .get(path.as_str())
        .ok_or_else(|| ApiError::NotFound(format!("no such federation target `{path}`")))?;
    Ok(HttpResponse::Ok().json(crate::views::federation_target(&r.target)))
}

async fn register(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    Body(body): Body<TargetIn>,
) -> Result<HttpResponse, ApiError> {
    let name = body
        .name
        .clone()
        .ok_or_else(|| bad("invalid `name`: required".into()))?;
    check_name(&name)?;
    if body.url.is_none() {
        return Err(bad("invalid `url`: required".into()));
    }
    // Seed 004 answers a name that is taken with 404 "Already exists".
    if app.read().federation.targets.contains_key(&name) {
        return Err(ApiError::NotFound(format!(
            "federation target `{name}` already exists"
        )));
    }
    let mut t = FederationTarget {
        name,
        entities: vec!["users".into(), "groups".into(), "permissions".into()],
        active: true,
        ..Default::default()
    };
    apply_fields(&mut t, body)?;
    let committed = app
        .submit(
            Command::SaveFederationTarget {
                target: t.clone(),
                create_only: true,
            },
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(
        HttpResponse::Created().json(crate::views::federation_target(&t)),
        committed,
    ))
}

async fn patch(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
    Body(body): Body<TargetIn>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    if body.name.as_ref().is_some_and(|n| *n != name) {
        return Err(bad("invalid `name`: a target cannot be renamed".into()));
    }
    let mut t = app
        .read()
        .federation
        .targets
        .get(&name)
        .map(|r| r.target.clone())
        .ok_or_else(|| ApiError::NotFound(format!("no such federation target `{name}`")))?;
    apply_fields(&mut t, body)?;
    let committed = app
        .submit(
            Command::SaveFederationTarget {
                target: t.clone(),
                create_only: false,
            },
            &admin.0.username,
            &rid,
        )
        .await?;
    // The target as it is now (JFrog's description answers 200 with it).
    Ok(written(
        HttpResponse::Ok().json(crate::views::federation_target(&t)),
        committed,
    ))
}

async fn delete(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let committed = app
        .submit(
            Command::DeleteFederationTarget {
                name: path.into_inner(),
            },
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(HttpResponse::NoContent().finish(), committed))
}

/// `GET …/{name}/status`: the stream's cursor, lag (events and seconds), last error and
/// the last full broadcast's progress.
async fn status(
    app: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    let (target, head, broadcast_position) = {
        let s = app.read();
        let r = s
            .federation
            .targets
            .get(&name)
            .ok_or_else(|| ApiError::NotFound(format!("no such federation target `{name}`")))?;
        (r.target.clone(), s.seq, r.broadcast_position)
    };
    let f = app.federation.clone();
    let n = name.clone();
    let owed = app.federation.broadcast_owed(&name);
    let (cursor, pending, oldest, st) = web::block(move || f.stream_status(&n))
        .await
        .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))?;
    let now = crate::auth::unix_millis();
    let oldest = super::metrics::owed_since(&app, owed, cursor, head).or(oldest);
    Ok(HttpResponse::Ok().json(json!({
        "name": name,
        "active": target.active,
        "head": head,
        "cursor": cursor,
        // Owed a full broadcast, it has nothing pending (dropped) and is as far behind as
        // it gets: it said 0 exactly then.
        "lag_events": if owed { head.saturating_sub(cursor).max(pending as u64) } else { pending as u64 },
        // What waits in the outbox (dropped when a broadcast is owed).
        "pending_events": pending,
        "lag_seconds": oldest.map(|t| now.saturating_sub(t) as f64 / 1000.0).unwrap_or(0.0),
        "last_error": st.last_error,
        "last_success": st.last_success_ms.map(|t| crate::timefmt::format(t, true)),
        "broadcast_position": broadcast_position,
        "broadcast_owed": owed,
        "broadcast": st.broadcast,
        // Changes the target refused for good (it named them), left out so that the
        // rest went on; since this server started.
        "refused_changes": st.refused_changes,
        "last_refused": st.last_refused.map(|r| json!({
            "entity": r.entity,
            "name": r.name,
            "reason": r.reason,
            "time": crate::timefmt::format(r.time_ms, true),
        })),
    })))
}

/// Run a full broadcast to each of `targets` and wait for it.
async fn run_broadcasts(app: &AppState, targets: Vec<String>) -> Result<HttpResponse, ApiError> {
    let mut failures = Vec::new();
    for name in targets {
        let rx = app
            .federation
            .request_broadcast(&name)
            .map_err(ApiError::Unavailable)?;
        let result = web::block(move || rx.recv_timeout(std::time::Duration::from_secs(3600)))
            .await
            .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))?;
        match result {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => failures.push(format!("`{name}`: {e}")),
            Err(_) => failures.push(format!("`{name}`: the broadcast did not finish")),
        }
    }
    if failures.is_empty() {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::Unavailable(format!(
            "full broadcast failed for {}",
            failures.join("; ")
        )))
    }
}

fn active_targets(app: &AppState) -> Vec<String> {
    app.read()
        .federation
        .targets
        .values()
        .filter(|r| r.target.active)
        .map(|r| r.target.name.clone())
        .collect()
}

/// `PUT …/full_broadcast`: everything selected, to every active target; 204 when done.
async fn broadcast_all(app: web::Data<AppState>, _admin: Admin) -> Result<HttpResponse, ApiError> {
    let targets = active_targets(&app);
    run_broadcasts(&app, targets).await
}

/// `PUT …/{access_id}/full_broadcast`: the same, naming this server's service id; or
/// naming one target, whose broadcast is queued.
async fn broadcast_from(
    app: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let own = app.read().service_id.clone().unwrap_or_default();
    if path.as_str() != own {
        // A target's name (as py-jfrog-client passes it): that target's broadcast is
        // queued and runs in the background (202); `…/{name}/status` shows it.
        if app.read().federation.targets.contains_key(path.as_str()) {
            app.federation
                .request_broadcast(&path)
                .map_err(ApiError::Unavailable)?;
            return Ok(HttpResponse::Accepted().finish());
        }
        return Err(ApiError::NotFound(format!(
            "`{path}` is neither this server's access id (`{own}`) nor a federation target"
        )));
    }
    let targets = active_targets(&app);
    run_broadcasts(&app, targets).await
}

#[derive(Deserialize)]
struct ValidateIn {
    url: String,
}

/// `POST …/validate_server {url}`: 204 when the circle of trust holds both ways. We
/// send the target a challenge signed with our key (it must trust us to answer) and
/// check its answer, signed with its key, against our own trust (we must trust it).
async fn validate(
    app: web::Data<AppState>,
    _admin: Admin,
    Body(body): Body<ValidateIn>,
) -> Result<HttpResponse, ApiError> {
    check_url(&body.url)?;
    let mut nonce = [0u8; 16];
    getrandom::getrandom(&mut nonce).map_err(|e| ApiError::Internal(e.to_string()))?;
    let nonce = crate::hex(&nonce);
    let token = {
        let s = app.read();
        fed::sign(&app.keys, &s, fed::CHALLENGE_SCOPE, "*@*", &nonce).map_err(ApiError::Internal)?
    };
    let url = fed::peer_endpoint(&body.url, "challenge");
    let timeout = app.config.federation_timeout_ms;
    let answer = web::block(move || {
        let agent = crate::tls::agent()
            .timeout(std::time::Duration::from_millis(timeout))
            .redirects(0)
            .build();
        match agent.post(&url).send_json(json!({ "token": token })) {
            Ok(r) => crate::tls::json_answer::<Value>(r),
            Err(ureq::Error::Status(code, r)) => Err(format!(
                "{code} {}",
                r.into_string()
                    .unwrap_or_default()
                    .chars()
                    .take(500)
                    .collect::<String>()
            )),
            Err(e) => Err(format!("unreachable: {e}")),
        }
    })
    .await
    .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))?;
    let failed = |why: String| {
        ApiError::PreconditionFailed(format!(
            "circle of trust validation failed (response from target server: {why})"
        ))
    };
    let answer = answer.map_err(failed)?;
    let their_token = answer["token"]
        .as_str()
        .ok_or_else(|| failed("no signed answer".into()))?;
    let claims = {
        let s = app.read();
        crate::auth::verify_token(&app.keys, &s, their_token)
    }
    .map_err(|e| {
        ApiError::PreconditionFailed(format!(
            "circle of trust validation failed: this server does not trust the target's key ({e})"
        ))
    })?;
    let now = crate::auth::unix_secs();
    let own = app.read().service_id.clone().unwrap_or_default();
    if claims.scp != fed::ANSWER_SCOPE
        || claims.jti != nonce
        || claims.aud != own
        || answer["service_id"].as_str() != Some(claims.iss.as_str())
        || claims.exp.is_none_or(|e| e <= now)
    {
        return Err(failed("an answer that does not match the challenge".into()));
    }
    // This server itself answers its own challenge: as a target, every batch it sent
    // would be refused ("comes from this server itself") and a broadcast owed for ever.
    if claims.iss == own {
        return Err(failed(
            "the URL is this server's own; a federation target is another server".into(),
        ));
    }
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
struct ChallengeIn {
    #[serde(default)]
    token: Option<String>,
}

/// `POST …/challenge {token}` (peers): answer a validation challenge signed by a key we
/// trust, with its nonce signed by ours; 401 when we do not trust the signer.
async fn challenge(
    app: web::Data<AppState>,
    Body(body): Body<ChallengeIn>,
) -> Result<HttpResponse, ApiError> {
    let token = body
        .token
        .ok_or_else(|| ApiError::Unauthorized("a challenge needs a signed `token`".into()))?;
    let s = app.read();
    let claims = crate::auth::verify_token(&app.keys, &s, &token).map_err(|e| {
        ApiError::Unauthorized(format!(
            "the challenge is not signed by a trusted key ({e})"
        ))
    })?;
    let now = crate::auth::unix_secs();
    if claims.scp != fed::CHALLENGE_SCOPE || claims.exp.is_some_and(|e| e <= now) {
        return Err(ApiError::Unauthorized(
            "not a current federation challenge".into(),
        ));
    }
    let own = s.service_id.clone().unwrap_or_default();
    let answer = fed::sign(&app.keys, &s, fed::ANSWER_SCOPE, &claims.iss, &claims.jti)
        .map_err(ApiError::Internal)?;
    Ok(HttpResponse::Ok().json(json!({ "service_id": own, "token": answer })))
}

/// Check a batch's token (trusted signer, batch scope, current) before its body is read,
/// and return its claims; the body is checked against `jti` once read.
/// The longest a batch token may live (peers sign for 60 s; the rest is clock skew).
const BATCH_TOKEN_MAX_SECS: u64 = 120;

fn authenticate_batch(
    app: &AppState,
    req: &HttpRequest,
) -> Result<crate::auth::jwt::Claims, ApiError> {
    let token = super::extract::authorization(req)
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::Unauthorized("a federation batch needs a signed bearer token".into())
        })?;
    let claims = {
        let s = app.read();
        crate::auth::verify_token(&app.keys, &s, token)
    }
    .map_err(|e| {
        ApiError::Unauthorized(format!("the batch is not signed by a trusted key ({e})"))
    })?;
    let now = crate::auth::unix_secs();
    if claims.exp.is_some_and(|e| e <= now) {
        return Err(ApiError::Unauthorized(
            "the batch's token has expired".into(),
        ));
    }
    if claims.exp.is_none() {
        return Err(ApiError::Unauthorized("a batch token must expire".into()));
    }
    // Peers sign batches for a minute (`fed::sign`): a longer-lived one is not a batch
    // this version sends, and would leave a captured batch replayable for as long.
    if claims
        .exp
        .is_some_and(|e| e.saturating_sub(claims.iat) > BATCH_TOKEN_MAX_SECS)
    {
        return Err(ApiError::Unauthorized(format!(
            "a batch token lives at most {BATCH_TOKEN_MAX_SECS} seconds"
        )));
    }
    if claims.scp != fed::BATCH_SCOPE {
        return Err(ApiError::Forbidden(
            "the token is not a federation batch token".into(),
        ));
    }
    Ok(claims)
}

/// A version time more than [`MAX_CLOCK_SKEW_MS`] ahead of this server's clock: refused
/// until the clock catches up (the one refusal of a change that is not for good).
fn from_the_future(time_ms: u64) -> bool {
    time_ms > crate::auth::unix_millis() + MAX_CLOCK_SKEW_MS
}

/// A change from the wire, checked, with its e-mail sealed with our key for the user.
async fn change_in(app: &AppState, i: usize, c: ChangeWire) -> Result<ReplicatedChange, ApiError> {
    let field = |f: &str| format!("changes[{i}].{f}");
    let invalid = |f: &str, m: &str| bad(format!("invalid `{}`: {m}", field(f)));
    if c.version.origin.is_empty() {
        return Err(invalid("version.origin", "required"));
    }
    // A version from the future would win every conflict for as long as that lasts.
    if from_the_future(c.version.time_ms) {
        return Err(invalid(
            "version.time_ms",
            "is more than 5 minutes ahead of this server's clock",
        ));
    }
    let change = match (c.op.as_str(), c.entity.as_str()) {
        // A user's name as names are kept (its upsert is checked so): `Admin` and
        // `ANONYMOUS` were written as removals (tombstones) of names no user can have,
        // and forwarded to every target.
        ("remove", "user") => {
            let name = domain::normalize_username(&field("name"), &c.name)?;
            if name != c.name || unfederated_user(&name) {
                return Err(invalid(
                    "name",
                    "must be a user name as this server keeps it, and not a built-in user",
                ));
            }
            Replicated::Removed {
                entity: c.entity.clone(),
                name,
            }
        }
        // Names as this server keeps them: a tombstone of a name no group, target or
        // token can have was written and forwarded to every target.
        ("remove", "group" | "permission" | "token") => {
            check_replicated_name(&c.entity, &c.name).map_err(|m| invalid("name", &m))?;
            Replicated::Removed {
                entity: c.entity.clone(),
                name: c.name.clone(),
            }
        }
        ("upsert", "user") => {
            let mut u = c
                .user
                .ok_or_else(|| invalid("user", "required for a user"))?;
            let name = domain::normalize_username("user.username", &u.username)?;
            if name != u.username || name != c.name {
                return Err(invalid(
                    "user.username",
                    "must be the change's lower-case `name`",
                ));
            }
            if let Some(email) = u.email.take().filter(|e| !e.is_empty()) {
                domain::validate_email(&email)?;
                let key = app.personal_key(&u.username).await?;
                u.email = Some(app.seal(&key, &email)?);
            }
            Replicated::User(u)
        }
        ("upsert", "group") => {
            let g = c
                .group
                .ok_or_else(|| invalid("group", "required for a group"))?;
            domain::validate_group_name("group.name", &g.name)?;
            if g.name != c.name {
                return Err(invalid("group.name", "must be the change's `name`"));
            }
            Replicated::Group(g)
        }
        ("upsert", "permission") => {
            let t = c
                .permission
                .ok_or_else(|| invalid("permission", "required for a permission target"))?;
            if t.name != c.name || t.name.is_empty() {
                return Err(invalid("permission.name", "must be the change's `name`"));
            }
            // The rule every local write of a target keeps (names, patterns, actions,
            // the sections' repositories): before, anything a trusted peer sent was
            // written, and served by every read and by `authorize`. Stored in its normal
            // form (a target an older peer version kept with a repeat, say, still comes
            // across); one that breaks a rule is refused, naming it.
            let t =
                domain::normalize_target(t).map_err(|e| invalid("permission", &e.to_string()))?;
            Replicated::Permission(t)
        }
        ("upsert", "token") => {
            let t = c
                .token
                .ok_or_else(|| invalid("token", "required for a token"))?;
            if t.token_id != c.name {
                return Err(invalid("token.token_id", "must be the change's `name`"));
            }
            check_replicated_name("token", &t.token_id).map_err(|m| invalid("name", &m))?;
            Replicated::Token {
                issuer: c
                    .issuer
                    .ok_or_else(|| invalid("issuer", "required for a token"))?,
                token: t,
            }
        }
        (op, entity) => {
            return Err(bad(format!(
            "invalid `{}`: `{}` of `{}` (use upsert or remove of user, group, permission, token)",
            field("op"),
            op.escape_debug(),
            entity.escape_debug()
        )))
        }
    };
    Ok(ReplicatedChange {
        version: c.version,
        change,
    })
}

/// A replicated group's, target's or token's name as this server keeps them.
fn check_replicated_name(entity: &str, name: &str) -> Result<(), String> {
    match entity {
        "token" => {
            // Token ids are this family's ULIDs or a peer's: printable, short.
            if name.is_empty()
                || name.len() > 128
                || name.chars().any(|c| c.is_control() || c.is_whitespace())
            {
                return Err("a token id is 1-128 printable characters without spaces".into());
            }
            Ok(())
        }
        _ => domain::validate_group_name("name", name).map_err(|e| match e {
            domain::DomainError::Invalid { message, .. } => message,
            other => other.to_string(),
        }),
    }
}

/// `POST …/receive` (peers): a batch of the stream or of a full broadcast, signed by a
/// trusted peer. Applied idempotently through the writer, with the change's origin.
async fn receive(
    app: web::Data<AppState>,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // Only a trusted peer gets to send a (large) body.
    let claims = authenticate_batch(&app, &req)?;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| bad(format!("cannot read the body: {e}")))?;
        if body.len() + chunk.len() > MAX_BATCH_BYTES {
            return Err(ApiError::PayloadTooLarge(MAX_BATCH_BYTES));
        }
        body.extend_from_slice(&chunk);
    }
    if claims.jti != blake3::hash(&body).to_hex().as_str() {
        return Err(ApiError::Unauthorized(
            "the batch does not match its signature (changed in transit?)".into(),
        ));
    }
    let signer = claims.iss;
    let batch: Batch = super::extract::from_value(
        &req,
        serde_json::from_slice(&body).map_err(|e| bad(format!("invalid batch: {e}")))?,
    )?;
    if batch.source != signer {
        return Err(ApiError::Forbidden(format!(
            "the batch says it comes from `{}` but is signed by `{signer}`",
            batch.source.escape_debug()
        )));
    }
    // A target pointed at this server itself (its broadcast sent everything to itself,
    // and status called it a success).
    if app.read().service_id.as_deref() == Some(signer.as_str()) {
        return Err(bad(
            "the batch comes from this server itself: the federation target points back at it"
                .into(),
        ));
    }
    let rid = RequestId(format!("federation-{}", crate::auth::unix_millis()));
    let actor = format!("federation:{signer}");
    match batch.kind.as_str() {
        // Each answer names this server (its service id): a sender that finds another
        // one at the target's address (a wiped or replaced server) owes it a broadcast.
        "begin" => {
            let s = app.read();
            Ok(HttpResponse::Ok().json(json!({ "position": s.seq, "service_id": s.service_id })))
        }
        "changes" => {
            let received = batch.changes.len();
            let mut changes = Vec::with_capacity(received);
            for (i, c) in batch.changes.into_iter().enumerate() {
                if c.entity == "user" && unfederated_user(&c.name) {
                    continue;
                }
                // A version from the future is refused only until the clock catches up:
                // not named, so that the sender retries it.
                let early = from_the_future(c.version.time_ms);
                let change = match change_in(&app, i, c).await {
                    Ok(change) => change,
                    // Invalid here whatever comes with it: named, so that the sender
                    // leaves it out and sends the rest (a batch retried as it was could
                    // never be taken, and held up the whole stream).
                    Err(e @ ApiError::BadRequest(_)) if !early => {
                        let mut answer = actix_web::ResponseError::error_response(&e);
                        answer.headers_mut().insert(
                            actix_web::http::header::HeaderName::from_static(
                                fed::REFUSED_CHANGE_HEADER,
                            ),
                            actix_web::http::header::HeaderValue::from(i),
                        );
                        return Ok(answer);
                    }
                    Err(e) => return Err(e),
                };
                // A token already past use here is not taken (this server's sweep
                // forgot it, or would at once): a peer that has not swept yet would
                // otherwise bring it back.
                if let Replicated::Token { token, .. } = &change.change {
                    let (now, grace) = (crate::auth::unix_secs(), app.config.refresh_grace_period);
                    if gatehouse_projections::past_use(token, now, grace) {
                        continue;
                    }
                }
                changes.push(change);
            }
            let committed = app
                .submit(
                    Command::ApplyReplicated {
                        source: signer,
                        changes,
                    },
                    &actor,
                    &rid,
                )
                .await?;
            let service_id = app.read().service_id.clone();
            Ok(written(
                HttpResponse::Ok().json(json!({
                    "received": received,
                    "applied": committed.events,
                    "service_id": service_id,
                })),
                committed,
            ))
        }
        "end" => {
            let since = batch
                .since
                .ok_or_else(|| bad("invalid `since`: required at the end of a broadcast".into()))?;
            let names = batch
                .names
                .ok_or_else(|| bad("invalid `names`: required at the end of a broadcast".into()))?;
            let committed = app
                .submit(
                    Command::EndBroadcast {
                        source: signer,
                        since,
                        names,
                    },
                    &actor,
                    &rid,
                )
                .await?;
            Ok(written(
                HttpResponse::Ok().json(json!({ "removed": committed.events })),
                committed,
            ))
        }
        other => Err(bad(format!(
            "invalid `kind`: `{}` (use begin, changes, end)",
            other.escape_debug()
        ))),
    }
}

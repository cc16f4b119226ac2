//! Health probes and version: no authentication (load balancers call these).

use super::error::ApiError;
use super::extract::Admin;
use super::{resource, AppState};
use actix_web::{web, HttpResponse};
use serde_json::json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // HEAD is answered as GET everywhere (`request_middleware`): load balancers probe with it.
    cfg.service(resource("/access/api/v1/system/ping").route(web::get().to(ping)))
        .service(resource("/router/api/v1/system/health").route(web::get().to(health)));
    // Artifactory's probes under its own base too (seed 004 lists them in Artifactory's
    // REST API; clients and `jf rt ping` ask `/artifactory/api/system/ping`).
    for prefix in ["", "/artifactory"] {
        cfg.service(resource(&format!("{prefix}/api/system/ping")).route(web::get().to(ping)))
            .service(
                resource(&format!("{prefix}/api/v1/system/readiness"))
                    .route(web::get().to(readiness)),
            )
            .service(
                resource(&format!("{prefix}/api/v1/system/liveness"))
                    .route(web::get().to(liveness)),
            )
            .service(
                resource(&format!("{prefix}/api/system/version")).route(web::get().to(version)),
            );
    }
    cfg.service(resource("/access/api/v1/system/state/digest").route(web::get().to(digest)))
        .service(resource("/artifactory/api/system/service_id").route(web::get().to(service_id)));
}

/// `GET /artifactory/api/system/service_id`: the service id (`jfac@…`, the tokens'
/// issuer), as plain text. Any signed-in caller may read it, as in Artifactory.
async fn service_id(
    app: web::Data<AppState>,
    _caller: super::extract::Caller,
) -> Result<HttpResponse, ApiError> {
    let id = app
        .read()
        .service_id
        .clone()
        .ok_or_else(|| ApiError::Unavailable("the server is starting".into()))?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(id))
}

/// `OK`, or (seed 004: "if not will return an HTTP error code with a reason") 503 naming
/// what stopped (see `crate::vitals`).
async fn ping() -> HttpResponse {
    let stopped = crate::vitals::stopped();
    if !stopped.is_empty() {
        return HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body(format!("stopped: {}", stopped.join("; ")));
    }
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("OK")
}

/// A probe's JSON answer when something vital stopped: 503, with the reasons.
fn stopped_answer(stopped: &[String]) -> HttpResponse {
    HttpResponse::ServiceUnavailable().json(json!({
        "status": "UNHEALTHY",
        "code": "UNHEALTHY",
        "message": format!("stopped: {}", stopped.join("; ")),
    }))
}

/// `status` (Gatehouse's, and the router's) and `code` (what Artifactory answers and its
/// clients read). Not live once a vital thread died: only a restart brings it back.
async fn liveness() -> HttpResponse {
    let stopped = crate::vitals::stopped();
    if !stopped.is_empty() {
        return stopped_answer(&stopped);
    }
    HttpResponse::Ok().json(json!({"status": "OK", "code": "OK"}))
}

/// Ready when the log has a service identity, i.e. start-up (load + verify) finished,
/// and every vital thread runs.
async fn readiness(app: web::Data<AppState>) -> HttpResponse {
    let stopped = crate::vitals::stopped();
    if !stopped.is_empty() {
        return stopped_answer(&stopped);
    }
    if app.read().service_id.is_some() {
        HttpResponse::Ok().json(json!({"status": "OK", "code": "OK"}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({"status": "NOT_READY", "code": "NOT_READY"}))
    }
}

async fn health(app: web::Data<AppState>) -> HttpResponse {
    let (service_id, seq) = {
        let s = app.read();
        (s.service_id.clone().unwrap_or_default(), s.seq)
    };
    let node_id = service_id.clone();
    let stopped = crate::vitals::stopped();
    let degraded = crate::vitals::degraded();
    let (state, message) = if !stopped.is_empty() {
        ("UNHEALTHY", format!("stopped: {}", stopped.join("; ")))
    } else if !degraded.is_empty() {
        // Served (200: the server decides and writes), with what does not run named.
        ("DEGRADED", format!("degraded: {}", degraded.join("; ")))
    } else {
        (
            "HEALTHY",
            format!(
                "OK; log position {seq}, up {}s",
                app.started.elapsed().as_secs()
            ),
        )
    };
    let body = json!({
        // The router's message follows its state (it said "OK" beside DEGRADED).
        "router": {"node_id": node_id, "state": state, "message": match state { "HEALTHY" => "OK", other => other }},
        // The router itself answers; the service's state says what runs.
        "services": [{
            "service_id": service_id,
            "node_id": node_id,
            "state": state,
            "message": message,
        }]
    });
    if stopped.is_empty() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// The Artifactory version whose REST API this server speaks: the newest `Since` of the
/// seeds' endpoints it serves. Clients compare `version` with Artifactory's releases and
/// take old code paths (or none) below them: jfrog-client did nothing under 7.49.3, and
/// JFrog's Vault plugin skips the token signature check under 7.12.0.
pub const ARTIFACTORY_API_VERSION: &str = "7.53.0";

async fn version() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "version": ARTIFACTORY_API_VERSION,
        "revision": option_env!("GATEHOUSE_REVISION").unwrap_or("dev"),
        "addons": [],
        // Gatehouse's own version, beside the API's it speaks.
        "gatehouse_version": env!("CARGO_PKG_VERSION"),
    }))
}

/// Gatehouse's own: the position and blake3 digest of the live read models, so anyone can
/// check that a replay of the log (`gatehouse verify`) gives exactly this state.
async fn digest(app: web::Data<AppState>, _admin: Admin) -> Result<HttpResponse, ApiError> {
    let s = app.read();
    let mut body = json!({"seq": s.seq, "digest": s.digest(), "service_id": s.service_id});
    // Several nodes: which one does the work that runs on one node at a time.
    if app.lease.shared() {
        body["lease"] = json!({
            "name": app.lease.name(),
            "held": app.lease.held(),
            "node": app.lease.me(),
            "holder": app.lease.holder(),
        });
    }
    Ok(HttpResponse::Ok().json(body))
}

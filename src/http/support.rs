//! Seed 004's system endpoints where they mean something for an access server: system
//! information, the event service's ping, an outgoing connection check, the nginx
//! configuration that puts Gatehouse in front of a file server; and a clear 404 for the
//! ones about Artifactory's storage and licensing, which Gatehouse does not have.

use super::error::ApiError;
use super::extract::{Admin, Body};
use super::{base_url, query_param, resource, AppState};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

pub fn configure(cfg: &mut web::ServiceConfig) {
    for prefix in ["", "/artifactory"] {
        cfg.service(resource(&format!("{prefix}/api/system")).route(web::get().to(info)))
            .service(
                resource(&format!("{prefix}/api/system/verifyconnection"))
                    .route(web::post().to(verify_connection)),
            )
            .service(
                resource(&format!(
                    "{prefix}/api/system/configuration/reverseProxy/nginx"
                ))
                .route(web::get().to(nginx)),
            );
        for (path, what) in NOT_HERE {
            let what: &'static str = what;
            cfg.service(
                resource(&format!("{prefix}{path}")).route(web::route().to(move || not_here(what))),
            );
        }
    }
    cfg.service(resource("/event/api/v1/system/ping").route(web::get().to(event_ping)))
        .service(
            resource("/access/api/v1/logshipping/config").route(web::route().to(log_shipping)),
        );
}

/// Artifactory endpoints about storage and licensing (seed 004), and what they are.
pub const NOT_HERE: &[(&str, &str)] = &[
    ("/api/system/license", "licenses"),
    ("/api/system/licenses", "licenses"),
    (
        "/api/system/migration/sha2/start",
        "SHA-2 migration of stored artifacts",
    ),
    (
        "/api/system/migration/sha2/stop",
        "SHA-2 migration of stored artifacts",
    ),
    (
        "/api/metadata_server/reindex",
        "metadata server to re-index",
    ),
    ("/api/system/bootstrap_bundle", "HA bootstrap bundle"),
];

async fn not_here(what: &'static str) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "Gatehouse is an access server and has no {what}: this Artifactory endpoint concerns artifact storage or licensing (see README, differences from JFrog)"
    )))
}

/// `POST /access/api/v1/logshipping/config` (seed 004, JFrog Cloud only) collects logs
/// into an Artifactory system repository, `jfrog-logs`. Gatehouse has no repositories to
/// collect into, so there is nothing honest to switch on: 404, saying where its logs are.
async fn log_shipping() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(
        "Gatehouse has no log shipping: JFrog collects logs into an Artifactory repository (`jfrog-logs`), and Gatehouse keeps no repositories. Its audit trail is the event log itself (GET /access/api/v1/audit/events, POST /access/api/v1/system/backup/export); request and server logs go to stderr (`--log-format json` for a shipper such as journald, Vector or Fluent Bit); support bundles (POST /api/system/support/bundle) carry the newest lines (see README, differences from JFrog)".into(),
    ))
}

/// `GET /api/system` (admin): system information, as text.
async fn info(app: web::Data<AppState>, _admin: Admin, req: HttpRequest) -> HttpResponse {
    let text = system_text(&app, &base_url(&req));
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(text)
}

/// The system information text (also in support bundles).
pub(super) fn system_text(app: &AppState, base: &str) -> String {
    let s = app.read();
    let c = &app.config;
    let text = format!(
        "Gatehouse {version}\n\
         service id: {service_id}\n\
         base URL: {base}\n\
         data directory: {dir}\n\
         log position: {seq}\n\
         users: {users}\n\
         groups: {groups}\n\
         permission targets: {targets}\n\
         projects: {projects}\n\
         revocable tokens: {tokens}\n\
         trusted keys: {trusted}\n\
         webhook subscriptions: {subs}\n\
         federation targets: {fed}\n\
         checkpoints: {checkpoints}\n\
         anonymous access: {anon}\n\
         token default expiry: {dexp} s; max expiry: {mexp} s; refreshable allowed: {refr}\n\
         OS: {os} {arch}; CPUs: {cpus}\n",
        version = env!("CARGO_PKG_VERSION"),
        service_id = s.service_id.as_deref().unwrap_or(""),
        base = base,
        dir = app.data_dir.display(),
        seq = s.seq,
        users = s.directory.users.len(),
        groups = s.directory.groups.len(),
        targets = s.permissions.targets.len(),
        projects = s.projects.by_key.len(),
        tokens = s.tokens.by_id.len(),
        trusted = s.keys.trusted.len(),
        subs = s.subscriptions.len(),
        fed = s.federation.targets.len(),
        checkpoints = s.checkpoints.len(),
        anon = if s.directory.anonymous_access {
            "on"
        } else {
            "off"
        },
        // In force: the API's setting over the file's.
        dexp = crate::domain::settings::default_token_expiry(&s, c.default_expiry),
        mexp = c.max_expiry,
        refr = c.allow_refreshable,
        os = std::env::consts::OS,
        arch = std::env::consts::ARCH,
        cpus = std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    text
}

/// `GET /event/api/v1/system/ping` (admin): the event (webhook) service answers.
async fn event_ping(_admin: Admin) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("OK")
}

#[derive(Deserialize)]
struct Connection {
    endpoint: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// `POST /api/system/verifyconnection` (admin): reach `endpoint` as webhooks and
/// federation reach theirs (a GET with a timeout, no redirects, Basic credentials when
/// given); 200 when it answers 2xx, 400 with what it answered otherwise (seed 004).
async fn verify_connection(
    app: web::Data<AppState>,
    _admin: Admin,
    Body(body): Body<Connection>,
) -> Result<HttpResponse, ApiError> {
    let url = body.endpoint.trim().to_string();
    // Any case of the scheme, as webhook URLs take it.
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    if !matches!(scheme.as_deref(), Some("http" | "https")) {
        return Err(ApiError::BadRequest(
            "invalid `endpoint`: an http:// or https:// URL".into(),
        ));
    }
    let timeout = std::time::Duration::from_millis(app.config.webhook_timeout_ms.max(1));
    let auth = body.username.map(|u| {
        use base64::Engine;
        let pair = format!("{u}:{}", body.password.unwrap_or_default());
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    });
    let target = url.clone();
    let outcome = web::block(move || -> Result<u16, String> {
        // The agent webhooks and federation use: the system's roots and `--ca-file`
        // (a bare one trusted neither, and refused what a webhook reached).
        let agent = crate::tls::agent().timeout(timeout).redirects(0).build();
        let mut req = agent.get(&target);
        if let Some(a) = &auth {
            req = req.set("Authorization", a);
        }
        match req.call() {
            Ok(r) => Ok(r.status()),
            Err(ureq::Error::Status(code, r)) => {
                let text: String = r
                    .into_string()
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect();
                Err(format!("HTTP {code}: {}", text.trim()))
            }
            Err(e) => Err(e.to_string()),
        }
    })
    .await
    .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))?;
    match outcome {
        Ok(code) if (200..300).contains(&code) => Ok(HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body("Successfully connected to endpoint")),
        Ok(code) => Err(ApiError::BadRequest(format!(
            "Received error from endpoint url: HTTP {code}"
        ))),
        Err(e) => Err(ApiError::BadRequest(format!(
            "Received error from endpoint url: {e}"
        ))),
    }
}

/// `GET /api/system/configuration/reverseProxy/nginx` (admin): the nginx configuration
/// that puts Gatehouse in front of a file server (`auth_request` on every request), from
/// the template the nginx test runs. `listen`, `root` and `prefix` fill its placeholders.
async fn nginx(_admin: Admin, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    const TEMPLATE: &str = include_str!("../../scripts/nginx/nginx.conf.template");
    let listen = query_param(&req, "listen")?.unwrap_or_else(|| "80".into());
    let root = query_param(&req, "root")?.unwrap_or_else(|| "/srv/artifactory".into());
    let prefix = query_param(&req, "prefix")?.unwrap_or_else(|| "/var/lib/nginx/gatehouse".into());
    for (name, v) in [("listen", &listen), ("root", &root), ("prefix", &prefix)] {
        if v.chars()
            .any(|c| c.is_control() || c == ';' || c == '{' || c == '}')
        {
            return Err(ApiError::BadRequest(format!("invalid `{name}`")));
        }
    }
    let base = base_url(&req);
    let (scheme, addr) = base.split_once("://").unwrap_or(("http", &base));
    let addr = addr.trim_end_matches('/');
    // An upstream `server` without a port means 80, even for https.
    let addr = match addr.rsplit_once(':') {
        Some((_, port)) if !port.ends_with(']') => addr.to_string(),
        _ if scheme == "https" => format!("{addr}:443"),
        _ => format!("{addr}:80"),
    };
    // The name the certificate is for: `name`, else the host without its port. nginx
    // checks certificate names only, never IP addresses: over https, an address for a
    // host made every request fail (503, "Gatehouse cannot be reached") whatever the
    // certificate held.
    let host = addr
        .rsplit_once(':')
        .map_or(addr.as_str(), |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let name = match query_param(&req, "name")? {
        Some(n) => {
            // A DNS name (nginx would read `$…` as a variable, quotes as syntax).
            if n.is_empty()
                || n.len() > 253
                || !n
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            {
                return Err(ApiError::BadRequest(
                    "invalid `name`: a DNS name (letters, digits, `.` and `-`)".into(),
                ));
            }
            n
        }
        None if scheme.eq_ignore_ascii_case("https") && host.parse::<std::net::IpAddr>().is_ok() => {
            return Err(ApiError::BadRequest(format!(
                "Gatehouse is reached at an IP address ({host}) over https, and nginx checks a certificate's names, never its addresses: give `name`, a DNS name Gatehouse's certificate holds (nginx still connects to {addr})"
            )))
        }
        None => host,
    };
    let ca =
        query_param(&req, "ca")?.unwrap_or_else(|| "/etc/ssl/certs/ca-certificates.crt".into());
    if ca
        .chars()
        .any(|c| c.is_control() || c == ';' || c == '{' || c == '}' || c == ' ')
    {
        return Err(ApiError::BadRequest("invalid `ca`".into()));
    }
    // The template's header names its placeholders: filled in, it read as nonsense.
    let mut in_placeholders = false;
    let template: String = TEMPLATE
        .lines()
        .filter(|l| {
            if l.starts_with("# Placeholders:") {
                in_placeholders = true;
            } else if in_placeholders && *l == "#" {
                in_placeholders = false;
                return false;
            }
            !in_placeholders
        })
        .flat_map(|l| [l, "\n"])
        .collect();
    let text = template
        .replace("{{GATEHOUSE_SCHEME}}", scheme)
        .replace("{{GATEHOUSE_NAME}}", &name)
        .replace("{{GATEHOUSE_CA}}", &ca)
        .replace("{{GATEHOUSE_ADDR}}", &addr)
        .replace("{{LISTEN}}", &listen)
        .replace("{{ROOT}}", &root)
        .replace("{{PREFIX}}", &prefix);
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(text))
}

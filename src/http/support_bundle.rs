//! Support bundles (seed 004 "SUPPORT"): what an operator sends when asking for help.
//! `POST /api/system/support/bundle` writes a `.tar.gz` into `<data-dir>/support/` with
//! the configuration (secrets shown as `<secret>`), system information, the Prometheus
//! metrics, the chain and checkpoint status (a full verification), the newest log lines
//! this process kept and a list of its threads; list, metadata, archive and delete
//! follow the seed's paths. Admin only.
//!
//! Nothing secret goes in: the configuration's only secret (`metrics-token`) prints as
//! `<secret>`, metrics and log lines carry none by design, and no read model (which
//! holds hashes and sealed values) is copied in.

use super::error::ApiError;
use super::extract::{Admin, OptionalBody};
use super::{base_url, resource, AppState};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

pub fn configure(cfg: &mut web::ServiceConfig) {
    for prefix in ["", "/artifactory"] {
        // The seed writes the create and list paths with a trailing slash too.
        for slash in ["", "/"] {
            cfg.service(
                resource(&format!("{prefix}/api/system/support/bundle{slash}"))
                    .route(web::post().to(create)),
            )
            .service(
                resource(&format!("{prefix}/api/system/support/bundles{slash}"))
                    .route(web::get().to(list)),
            );
        }
        cfg.service(
            resource(&format!("{prefix}/api/system/support/bundle/{{id}}"))
                .route(web::get().to(metadata))
                .route(web::delete().to(delete)),
        )
        .service(
            resource(&format!(
                "{prefix}/api/system/support/bundle/{{id}}/archive"
            ))
            .route(web::get().to(archive)),
        );
    }
}

/// Bundles kept; creating one more removes the oldest (each holds up to a few MB of logs).
const KEEP: usize = 20;
/// Thread listings a bundle may take, and the longest pause between two (ms).
const MAX_THREAD_DUMPS: u64 = 10;
const MAX_THREAD_INTERVAL_MS: u64 = 1_000;

fn dir(app: &AppState) -> PathBuf {
    app.data_dir.join("support")
}

fn bad(msg: String) -> ApiError {
    ApiError::BadRequest(msg)
}

fn io(e: std::io::Error) -> ApiError {
    ApiError::Internal(format!("support bundle storage: {e}"))
}

/// What the request asked for (every item optional, seed 004).
struct Params {
    configuration: bool,
    system: bool,
    logs: bool,
    start_date: Option<String>,
    end_date: Option<String>,
    thread_dump_count: u64,
    thread_dump_interval: u64,
}

/// A flag: `true`/`false`, or the same as a string; absent, null or blank (the seed's
/// own sample sends `" "`) is the default.
fn flag(v: &Value, field: &str, default: bool) -> Result<bool, ApiError> {
    match v {
        Value::Null => Ok(default),
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.trim().is_empty() => Ok(default),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(bad(format!("invalid `{field}`: true or false"))),
    }
}

fn number(v: &Value, field: &str, default: u64, max: u64) -> Result<u64, ApiError> {
    let n = match v {
        Value::Null => return Ok(default),
        Value::String(s) if s.trim().is_empty() => return Ok(default),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    };
    match n {
        Some(n) if n <= max => Ok(n),
        _ => Err(bad(format!(
            "invalid `{field}`: a whole number from 0 to {max}"
        ))),
    }
}

/// `YYYY-MM-DD` (UTC), or blank for none.
fn date(v: &Value, field: &str) -> Result<Option<String>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) if day_start(s.trim()).is_some() => Ok(Some(s.trim().to_string())),
        _ => Err(bad(format!("invalid `{field}`: a date, YYYY-MM-DD"))),
    }
}

fn day_start(d: &str) -> Option<u64> {
    if d.len() != 10 {
        return None;
    }
    crate::timefmt::parse(&format!("{d}T00:00:00Z"))
}

fn text_field(v: &Value, field: &str, max: usize) -> Result<Option<String>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s)
            if s.chars().count() > max || s.chars().any(|c| c.is_control() && c != '\n') =>
        {
            Err(bad(format!("invalid `{field}`: at most {max} characters")))
        }
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(bad(format!("invalid `{field}`: a string"))),
    }
}

fn params(body: &Value) -> Result<(Option<String>, Option<String>, Params), ApiError> {
    if !body.is_object() && !body.is_null() {
        return Err(bad("invalid request body: expected a JSON object".into()));
    }
    let name = text_field(&body["name"], "name", 64)?
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    if let Some(n) = &name {
        if !n
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(bad(format!(
                "invalid `name`: `{}` (letters, digits, `-`, `_`, `.`)",
                n.escape_debug()
            )));
        }
    }
    let description = text_field(&body["description"], "description", 1000)?;
    let p = &body["parameters"];
    if !p.is_object() && !p.is_null() {
        return Err(bad("invalid `parameters`: expected a JSON object".into()));
    }
    let logs = &p["logs"];
    // `"logs": true` is taken as `{"include": true}`.
    let (logs_include, start_date, end_date) = match logs {
        Value::Object(_) => (
            flag(&logs["include"], "parameters.logs.include", true)?,
            date(&logs["start_date"], "parameters.logs.start_date")?,
            date(&logs["end_date"], "parameters.logs.end_date")?,
        ),
        other => (flag(other, "parameters.logs", true)?, None, None),
    };
    if let (Some(s), Some(e)) = (&start_date, &end_date) {
        if s > e {
            return Err(bad(
                "invalid `parameters.logs.end_date`: before `start_date`".into(),
            ));
        }
    }
    let td = &p["thread_dump"];
    if !td.is_object() && !td.is_null() {
        return Err(bad(
            "invalid `parameters.thread_dump`: expected `{count, interval}`".into(),
        ));
    }
    Ok((
        name,
        description,
        Params {
            configuration: flag(&p["configuration"], "parameters.configuration", true)?,
            system: flag(&p["system"], "parameters.system", true)?,
            logs: logs_include,
            start_date,
            end_date,
            thread_dump_count: number(
                &td["count"],
                "parameters.thread_dump.count",
                1,
                MAX_THREAD_DUMPS,
            )?,
            thread_dump_interval: number(
                &td["interval"],
                "parameters.thread_dump.interval",
                0,
                MAX_THREAD_INTERVAL_MS,
            )?,
        },
    ))
}

/// A bundle id: the name and the creation time in ms (seed 004: `B1-1551008826805`).
fn check_id(id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 100
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !id.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!(
            "support bundle `{}` not found",
            id.escape_debug()
        )))
    }
}

fn meta_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.json"))
}

fn archive_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.tar.gz"))
}

fn read_meta(dir: &Path, id: &str) -> Result<Value, ApiError> {
    check_id(id)?;
    match std::fs::read(meta_path(dir, id)) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| ApiError::Internal(format!("support bundle {id}: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ApiError::NotFound(format!(
            "support bundle `{id}` not found"
        ))),
        Err(e) => Err(io(e)),
    }
}

/// Every bundle's metadata, oldest first.
fn all_meta(dir: &Path) -> Result<Vec<Value>, ApiError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(io(e)),
    };
    let mut out = Vec::new();
    for e in entries {
        let path = e.map_err(io)?.path();
        if path.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        if let Ok(v) = std::fs::read(&path)
            .map_err(|_| ())
            .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|_| ()))
        {
            out.push(v);
        }
    }
    out.sort_by_key(|m| (m["created_ms"].as_u64().unwrap_or(0), m["id"].to_string()));
    Ok(out)
}

/// The metadata as answers show it (the stored record has `created_ms` for sorting).
fn meta_out(m: &Value, base: &str) -> Value {
    let mut m = m.clone();
    if let Some(o) = m.as_object_mut() {
        o.remove("created_ms");
        if let Some(id) = o.get("id").and_then(|v| v.as_str()).map(str::to_string) {
            if let Some(svc) = o.get_mut("access").and_then(|v| v.as_object_mut()) {
                svc.insert(
                    "bundle_url".into(),
                    json!(format!("{base}/api/system/support/bundle/{id}/archive")),
                );
            }
        }
    }
    m
}

/// `POST /api/system/support/bundle`: build a bundle now and answer its metadata.
async fn create(
    app: web::Data<AppState>,
    _admin: Admin,
    req: HttpRequest,
    OptionalBody(body): OptionalBody<Value>,
) -> Result<HttpResponse, ApiError> {
    let body = body.unwrap_or(Value::Null);
    let (name, description, p) = params(&body)?;
    let base = base_url(&req);
    let system_text = super::support::system_text(&app, &base);
    let app2 = app.clone();
    let meta = web::block(move || build(&app2, name, description, p, system_text))
        .await
        .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))??;
    tracing::info!(bundle = %meta["id"].as_str().unwrap_or(""), "support bundle created");
    Ok(HttpResponse::Ok().json(meta_out(&meta, &base)))
}

/// `GET /api/system/support/bundles`: `{bundles: [{id, name, description, created,
/// status}], count}`, oldest first (seed 004).
async fn list(app: web::Data<AppState>, _admin: Admin) -> Result<HttpResponse, ApiError> {
    let d = dir(&app);
    let all = web::block(move || all_meta(&d))
        .await
        .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))??;
    let bundles: Vec<Value> = all
        .iter()
        .map(|m| {
            json!({
                "id": m["id"], "name": m["name"], "description": m["description"],
                "created": m["created"], "status": m["status"],
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"count": bundles.len(), "bundles": bundles})))
}

/// `GET /api/system/support/bundle/{id}`: the bundle's metadata.
async fn metadata(
    app: web::Data<AppState>,
    _admin: Admin,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let m = read_meta(&dir(&app), &path)?;
    Ok(HttpResponse::Ok().json(meta_out(&m, &base_url(&req))))
}

/// `GET /api/system/support/bundle/{id}/archive`: the `.tar.gz` itself.
async fn archive(
    app: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let d = dir(&app);
    read_meta(&d, &id)?;
    let file = archive_path(&d, &id);
    let bytes = web::block(move || std::fs::read(file))
        .await
        .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))?
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ApiError::NotFound(format!("support bundle `{id}` has no archive"))
            } else {
                io(e)
            }
        })?;
    Ok(HttpResponse::Ok()
        .content_type("application/gzip")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{}.tar.gz\"", path_safe(&id)),
        ))
        .body(bytes))
}

fn path_safe(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect()
}

/// `DELETE /api/system/support/bundle/{id}`: 204; 404 when there is no such bundle.
async fn delete(
    app: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let d = dir(&app);
    read_meta(&d, &path)?;
    remove(&d, &path).map_err(io)?;
    Ok(HttpResponse::NoContent().finish())
}

fn remove(d: &Path, id: &str) -> std::io::Result<()> {
    for p in [archive_path(d, id), meta_path(d, id)] {
        match std::fs::remove_file(p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Build the archive (then its metadata, so a listed bundle always has its archive) and
/// drop the oldest bundles beyond [`KEEP`].
fn build(
    app: &AppState,
    name: Option<String>,
    description: Option<String>,
    p: Params,
    system_text: String,
) -> Result<Value, ApiError> {
    let d = dir(app);
    std::fs::create_dir_all(&d).map_err(io)?;
    // The owner's only, as the log, snapshots and exports are: a bundle holds the recent
    // log (user names, addresses), the configuration and the metrics.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    let now = crate::auth::unix_millis();
    let name = name.unwrap_or_else(|| "bundle".into());
    let mut id = format!("{name}-{now}");
    let mut n = 1;
    while meta_path(&d, &id).exists() {
        n += 1;
        id = format!("{name}-{now}-{n}");
    }
    let service_id = app.read().service_id.clone().unwrap_or_default();
    let parameters = json!({
        "configuration": p.configuration,
        "system": p.system,
        "logs": {"include": p.logs, "start_date": p.start_date, "end_date": p.end_date},
        "thread_dump": {"count": p.thread_dump_count, "interval": p.thread_dump_interval},
    });
    let meta = json!({
        "name": name,
        "description": description,
        "id": id,
        "access": {"service_id": service_id},
        "parameters": parameters,
        "created": crate::timefmt::format(now, false),
        "created_ms": now,
        "status": "success",
        "format": "tar.gz",
    });

    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut manifest = meta.clone();
    if let Some(o) = manifest.as_object_mut() {
        o.remove("created_ms");
        o.insert(
            "contents".into(),
            json!({
                "configuration.txt": "the effective configuration; secrets print as <secret>",
                "system.txt": "version, service, counts, settings, OS",
                "metrics.txt": "the Prometheus metrics, as GET /metrics answers",
                "chain.json": "head position and hash, a full verification of the hash chain and of every signed checkpoint",
                "logs/gatehouse.log": "the newest log lines this process kept (or why there are none)",
                "threads.txt": "the process's threads and their states",
            }),
        );
    }
    files.push((
        "manifest.json".into(),
        serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
    ));
    if p.configuration {
        files.push(("configuration.txt".into(), configuration(app).into_bytes()));
    }
    if p.system {
        files.push(("system.txt".into(), system_text.into_bytes()));
        let metrics = app.metrics.encode(|m| super::metrics::refresh(app, m));
        files.push(("metrics.txt".into(), metrics.into_bytes()));
        files.push((
            "chain.json".into(),
            serde_json::to_vec_pretty(&chain(app)).unwrap_or_default(),
        ));
    }
    if p.logs {
        files.push((
            "logs/gatehouse.log".into(),
            logs(p.start_date.as_deref(), p.end_date.as_deref()).into_bytes(),
        ));
    }
    if p.thread_dump_count > 0 {
        files.push((
            "threads.txt".into(),
            threads(p.thread_dump_count, p.thread_dump_interval).into_bytes(),
        ));
    }

    let tmp = d.join(format!(".{id}.tar.gz.tmp"));
    write_archive(&tmp, &id, now, &files).map_err(io)?;
    std::fs::rename(&tmp, archive_path(&d, &id)).map_err(io)?;
    {
        use std::io::Write;
        crate::log::owner_only(
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true),
        )
        .open(meta_path(&d, &id))
        .and_then(|mut f| f.write_all(&serde_json::to_vec_pretty(&meta).unwrap_or_default()))
        .map_err(io)?;
    }

    let all = all_meta(&d)?;
    if all.len() > KEEP {
        for old in &all[..all.len() - KEEP] {
            if let Some(old_id) = old["id"].as_str() {
                let _ = remove(&d, old_id);
            }
        }
    }
    Ok(meta)
}

fn write_archive(
    path: &Path,
    id: &str,
    now_ms: u64,
    files: &[(String, Vec<u8>)],
) -> std::io::Result<()> {
    let file = crate::log::owner_only(
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true),
    )
    .open(path)?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(now_ms / 1000);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, format!("{id}/{name}"), bytes.as_slice())?;
    }
    let gz = tar.into_inner()?;
    let file = gz.finish()?;
    file.sync_all()
}

/// The effective configuration: the settings the API changed (kept in the log, over the
/// file's), then the configuration as in force. `Config`'s `Debug` prints secrets as
/// `<secret>`.
fn configuration(app: &AppState) -> String {
    let (lock, expiry, basic) = {
        let s = app.read();
        (
            crate::domain::settings::user_lock_policy(&s, app.config.lockout_threshold),
            crate::domain::settings::default_token_expiry(&s, app.config.default_expiry),
            crate::domain::settings::basic_authentication(&s),
        )
    };
    format!(
        "# The effective configuration of this server. Settings the API changes are kept\n\
         # in the log and win over the file's; in force now:\n\
         user lock policy: enabled {}, login attempts {}\n\
         default token expiry: {expiry} s\n\
         basic authentication: {basic}\n\n\
         # The configuration (file, environment and defaults; max_connections as lowered\n\
         # to the open-file limit). Secrets print as <secret>.\n\
         data directory: {}\n\n{:#?}\n",
        lock.enabled,
        lock.login_attempts,
        app.data_dir.display(),
        app.config
    )
}

/// Head, a full verification of the chain, and every signed checkpoint checked against
/// it (what `gatehouse verify` does, on the live log).
fn chain(app: &AppState) -> Value {
    let state = app.read().clone();
    let head_hash = app
        .log
        .hash_at(state.seq)
        .ok()
        .flatten()
        .map(|h| crate::hex(&h));
    let verify = match app.log.verify() {
        Ok(r) => json!({"ok": true, "events": r.events, "head_hash": crate::hex(&r.head_hash)}),
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    };
    let checkpoints =
        match crate::checkpoints::check(&state, |p| app.log.hash_at(p).ok().flatten(), None) {
            Ok(c) => json!({"ok": true, "verified": c.verified}),
            Err(e) => json!({"ok": false, "error": e}),
        };
    let newest = state.checkpoints.last().map(|c| {
        json!({"position": c.position, "head_hash": c.head_hash, "kid": c.kid,
               "time": crate::timefmt::format(c.time_ms, true)})
    });
    json!({
        "head": {"position": state.seq, "hash": head_hash},
        "verify": verify,
        "checkpoints": {"count": state.checkpoints.len(), "newest": newest, "check": checkpoints},
        "state_digest": state.digest(),
    })
}

fn logs(start: Option<&str>, end: Option<&str>) -> String {
    let from = start.and_then(day_start).unwrap_or(0);
    let to = end
        .and_then(day_start)
        .map(|t| t + 86_400_000 - 1)
        .unwrap_or(u64::MAX);
    match crate::recent_logs::between(from, to) {
        Some(lines) if lines.is_empty() => {
            "# No log lines kept for this range (the server keeps its newest lines in memory).\n"
                .into()
        }
        Some(lines) => {
            let mut out = lines.join("\n");
            out.push('\n');
            out
        }
        None => {
            "# This server keeps no log lines: it was not started by `gatehouse serve` \
                 (an embedded server logs where its host program says). See the host's log."
                .to_string()
                + "\n"
        }
    }
}

/// The threads of this process from `/proc` (name and state), `count` times, `interval`
/// ms apart: Gatehouse has no JVM thread dump, and this is what shows a stuck worker.
fn threads(count: u64, interval_ms: u64) -> String {
    let mut out = String::new();
    for i in 0..count {
        if i > 0 && interval_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(interval_ms));
        }
        out.push_str(&format!(
            "# listing {} of {count} at {}\n",
            i + 1,
            crate::timefmt::format(crate::auth::unix_millis(), true)
        ));
        match std::fs::read_dir("/proc/self/task") {
            Ok(tasks) => {
                let mut rows: Vec<(u64, String)> = tasks
                    .filter_map(|t| t.ok())
                    .filter_map(|t| {
                        let tid: u64 = t.file_name().to_str()?.parse().ok()?;
                        let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
                        // `tid (name) S …`: the name may hold spaces and parentheses.
                        let close = stat.rfind(')')?;
                        let name = stat.get(stat.find('(')? + 1..close)?.to_string();
                        let state = stat.get(close + 2..close + 3).unwrap_or("?").to_string();
                        Some((tid, format!("{tid}\t{state}\t{name}")))
                    })
                    .collect();
                rows.sort();
                out.push_str("tid\tstate\tname\n");
                for (_, r) in rows {
                    out.push_str(&r);
                    out.push('\n');
                }
            }
            Err(e) => out.push_str(&format!("# no thread list on this system: {e}\n")),
        }
    }
    out
}

//! Signed URLs (seed 002 "Step 5"): a time-limited link to one path in a repository that
//! a file server can check without credentials. The signature is a keyed blake3 over the
//! path and the expiry, with a key that lives in the data directory and is separate from
//! the token keys; replacing it makes every earlier URL fail.

use super::error::ApiError;
use super::extract::{Admin, Body, RequestId};
use super::{base_url, query_param, resource, written, AppState};
use crate::auth::unix_secs;
use crate::domain::Command;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/artifactory/api/signed/url").route(web::post().to(create)))
        .service(resource("/artifactory/api/signed/url/verify").route(web::get().to(verify)))
        .service(resource("/artifactory/api/signed/url/key").route(web::post().to(replace_key)));
}

const DEFAULT_VALID_SECS: u64 = 24 * 3600;
const MAX_VALID_SECS: u64 = 365 * 24 * 3600;

fn signature(key: &[u8; 32], version: u64, repo_path: &str, expiry_ms: u64) -> String {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(format!("{version}\n{expiry_ms}\n{repo_path}").as_bytes());
    URL_SAFE_NO_PAD.encode(&h.finalize().as_bytes()[..24])
}

#[derive(Deserialize)]
struct CreateBody {
    repo_path: String,
    #[serde(default)]
    valid_for_secs: Option<u64>,
    /// Epoch milliseconds.
    #[serde(default)]
    expiry: Option<u64>,
}

fn check_repo_path(p: &str) -> Result<String, ApiError> {
    let p = p.trim_start_matches('/');
    let (repo, _) = p.split_once('/').unwrap_or((p, ""));
    if repo.is_empty()
        || p.len() > 2048
        || p.chars().any(|c| c.is_control())
        || p.split('/').any(|s| s == "..")
    {
        return Err(ApiError::BadRequest("invalid `repo_path`: expected `<repository>/<path>` without `..` or control characters".into()));
    }
    Ok(p.to_string())
}

async fn create(
    app: web::Data<AppState>,
    _admin: Admin,
    req: HttpRequest,
    Body(body): Body<CreateBody>,
) -> Result<HttpResponse, ApiError> {
    let repo_path = check_repo_path(&body.repo_path)?;
    let now_ms = unix_secs() * 1000;
    let expiry_ms = match (body.valid_for_secs, body.expiry) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "invalid request body: give `valid_for_secs` or `expiry`, not both".into(),
            ))
        }
        (Some(0), None) => {
            return Err(ApiError::BadRequest(
                "invalid `valid_for_secs`: must be positive".into(),
            ))
        }
        (Some(s), None) if s > MAX_VALID_SECS => {
            return Err(ApiError::BadRequest(format!(
                "invalid `valid_for_secs`: at most {MAX_VALID_SECS} (365 days)"
            )))
        }
        (Some(s), None) => now_ms + s * 1000,
        (None, Some(e)) if e <= now_ms => {
            return Err(ApiError::BadRequest(
                "invalid `expiry`: must be in the future (epoch milliseconds)".into(),
            ))
        }
        (None, Some(e)) if e > now_ms + MAX_VALID_SECS * 1000 => {
            return Err(ApiError::BadRequest(
                "invalid `expiry`: at most 365 days from now".into(),
            ))
        }
        (None, Some(e)) => e,
        (None, None) => now_ms + DEFAULT_VALID_SECS * 1000,
    };
    let version = app.read().keys.signed_url_version;
    let key = app
        .keys
        .signed_url_key(version)
        .ok_or_else(|| ApiError::Unavailable("no signed-URL key yet".into()))?;
    let sig = signature(&key, version, &repo_path, expiry_ms);
    let url = format!(
        "{}/artifactory/{repo_path}?sig={sig}&exp={expiry_ms}&v={version}",
        base_url(&req)
    );
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(url))
}

/// `GET …/verify?url=<the signed URL>`: 200 with the path when valid, 403 with the reason.
async fn verify(app: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let url = query_param(&req, "url")?
        .ok_or_else(|| ApiError::BadRequest("invalid `url`: required".into()))?;
    let exp = expiry_of(&url);
    let repo_path = check(&app, &url)?;
    Ok(HttpResponse::Ok().json(json!({"valid": true, "repo_path": repo_path, "expiry": exp})))
}

fn expiry_of(url: &str) -> Option<u64> {
    url.split_once('?')?
        .1
        .split('&')
        .find_map(|p| p.strip_prefix("exp="))
        .and_then(|v| v.parse().ok())
}

/// Check a signed URL; its `repo_path` when valid, 403 with the reason otherwise.
pub fn check(app: &AppState, url: &str) -> Result<String, ApiError> {
    let (path, query) = url
        .split_once('?')
        .ok_or_else(|| ApiError::Forbidden("the URL is not signed".into()))?;
    let repo_path = path
        .split_once("/artifactory/")
        .map(|(_, p)| p.to_string())
        .ok_or_else(|| ApiError::BadRequest("invalid `url`: not an /artifactory/ URL".into()))?;
    let mut sig = None;
    let mut exp = None;
    let mut version = None;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("sig", v)) => sig = Some(v.to_string()),
            Some(("exp", v)) => exp = v.parse::<u64>().ok(),
            Some(("v", v)) => version = v.parse::<u64>().ok(),
            _ => {}
        }
    }
    let (Some(sig), Some(exp), Some(version)) = (sig, exp, version) else {
        return Err(ApiError::Forbidden("the URL is not signed".into()));
    };
    let current = app.read().keys.signed_url_version;
    let key = app
        .keys
        .signed_url_key(current)
        .ok_or_else(|| ApiError::Unavailable("no signed-URL key yet".into()))?;
    let expected = signature(&key, current, &repo_path, exp);
    // Compare in constant time: the signature is the credential.
    let valid = version == current && constant_time_eq(expected.as_bytes(), sig.as_bytes());
    if !valid {
        return Err(ApiError::Forbidden(
            "the URL's signature is not valid (tampered, or signed with a replaced key)".into(),
        ));
    }
    if exp <= unix_secs() * 1000 {
        return Err(ApiError::Forbidden("the signed URL has expired".into()));
    }
    Ok(repo_path)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn replace_key(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
) -> Result<HttpResponse, ApiError> {
    let version = app.read().keys.signed_url_version + 1;
    app.keys.new_signed_url_key(version).map_err(|e| {
        tracing::error!(error = %e, "cannot store a new signed-URL key");
        ApiError::Internal(rid.0.clone())
    })?;
    let committed = app
        .submit(
            Command::ReplaceSignedUrlKey { version },
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(
        HttpResponse::Ok().json(json!({"version": version})),
        committed,
    ))
}

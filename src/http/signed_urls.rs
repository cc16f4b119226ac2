//! Signed URLs (seed 002 "Step 5"): a time-limited link to one path in a repository that
//! a file server can check without credentials. The signature is a keyed blake3 over the
//! path, the expiry and the signer's name, with a key that lives in the data directory
//! and is separate from the token keys; replacing it makes every earlier URL fail. A URL
//! names its signer (`signer=`, as Artifactory's `sig` carries an `iss`) and holds only
//! while the signer could still sign it: enabled, and an admin or holding `manage` on
//! the path (for an organisation's key, an admin).

use super::error::ApiError;
use super::extract::{Admin, Body, Caller, OptionalBody, RequestId};
use super::{base_url, query_param, resource, written, AppState};
use crate::auth::unix_millis;
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

/// The signature over a URL's parts. `signer` is `None` only for URLs made before
/// signers were named (they verify as they did, until they expire or the key is
/// replaced); a path never holds a newline, so the two forms cannot be mistaken.
/// `signer` is the signer's name and the position its user was created at: a user made
/// later under the same name is someone else, whose rights the URL does not lend.
fn signature(
    key: &[u8; 32],
    version: u64,
    repo_path: &str,
    expiry_ms: u64,
    signer: Option<(&str, u64)>,
) -> String {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(format!("{version}\n{expiry_ms}\n{repo_path}").as_bytes());
    if let Some((signer, created_seq)) = signer {
        h.update(format!("\n{signer}\n{created_seq}").as_bytes());
    }
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
    /// Sign with this organisation's own key (admins only) rather than the default.
    #[serde(default)]
    org: Option<String>,
}

fn check_repo_path(p: &str) -> Result<String, ApiError> {
    // The path `authorize` decides on: without empty and `.` segments (the signer's
    // `manage` is judged there, not on `org//secret/…`).
    let p = super::authorize::normalize_path(p);
    let (repo, path) = p.split_once('/').unwrap_or((&p, ""));
    // A URL is for a file (seed 002: "a specific artifact"): one for a whole repository
    // was issued and verified, and every file server's check refused it.
    if path.is_empty() {
        return Err(ApiError::BadRequest(
            "invalid `repo_path`: expected `<repository>/<path>` (a file, not a whole repository)"
                .into(),
        ));
    }
    if repo.is_empty()
        || p.len() > 2048
        || p.chars().any(|c| c.is_control())
        || p.split('/').any(|s| s == "..")
    {
        return Err(ApiError::BadRequest("invalid `repo_path`: expected `<repository>/<path>` without `..` or control characters".into()));
    }
    Ok(p.into_owned())
}

/// Seed 002: "Signed URLs can be created by admins or users with Manage permission" (on
/// the repository path). An organisation's key is for admins.
fn may_sign(
    app: &AppState,
    caller: &Caller,
    repo_path: &str,
    org: Option<&str>,
) -> Result<(), ApiError> {
    may_sign_as(
        app,
        &caller.0.username,
        caller.0.admin,
        caller.0.token.as_ref().map(|t| t.scope.as_str()),
        repo_path,
        org,
    )
}

/// Whether `signer` (an admin or not, through a token of `scope` or not) may sign a URL
/// for `repo_path` with the default key or `org`'s: when it is made, and again each
/// time it is used.
fn may_sign_as(
    app: &AppState,
    signer: &str,
    admin: bool,
    scope: Option<&str>,
    repo_path: &str,
    org: Option<&str>,
) -> Result<(), ApiError> {
    if admin {
        return Ok(());
    }
    if org.is_some() {
        return Err(ApiError::Forbidden(
            "only an admin can sign with an organisation's key".into(),
        ));
    }
    let (repo, path) = repo_path.split_once('/').unwrap_or((repo_path, ""));
    let s = app.read();
    let subject = crate::authorize::Subject::new(&s.directory, signer, false, scope);
    // With the state already read: a second read lock while holding one can wait
    // forever behind a writer queued in between.
    let index = app.permission_index(&s);
    // `manage` (seed 002), and `read`: the URL lends read, and a manage-only user may
    // not give itself read (its own actions are not its to change).
    for action in ["manage", "read"] {
        let d = index.decide(&subject, repo, path, action);
        if !d.allowed {
            return Err(ApiError::Forbidden(format!(
                "a signed URL needs an admin, or `manage` and `read` on `{repo_path}` (`{action}`: {})",
                d.via
            )));
        }
    }
    Ok(())
}

async fn create(
    app: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    Body(body): Body<CreateBody>,
) -> Result<HttpResponse, ApiError> {
    let repo_path = check_repo_path(&body.repo_path)?;
    if let Some(org) = &body.org {
        crate::domain::validate_group_name("org", org)?;
    }
    may_sign(&app, &caller, &repo_path, body.org.as_deref())?;
    let now_ms = unix_millis();
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
    let org = body.org.as_deref();
    let version = current_version(&app, org);
    let key = app
        .keys
        .signed_url_key_of(org, version)
        .ok_or_else(|| match org {
            Some(o) => ApiError::NotFound(format!(
                "organisation `{o}` has no signed-URL key yet (POST /artifactory/api/signed/url/key with `org`)"
            )),
            None => ApiError::Unavailable("no signed-URL key yet".into()),
        })?;
    let signer = caller.0.username.as_str();
    // The URL lends what its signer's user may sign, checked at each use: a right that
    // comes from the credential alone (a token's admin scope, a transient identity)
    // made a URL that never verified.
    let created_seq = signer_record(&app, signer)
        .and_then(|(seq, admin)| {
            may_sign_as(&app, signer, admin, None, &repo_path, body.org.as_deref()).map(|()| seq)
        })
        .map_err(|e| match e {
            ApiError::Forbidden(why) => ApiError::Forbidden(format!(
                "a signed URL lends its signer's own right, which `{signer}` does not have (only through this credential's scope): {why}"
            )),
            other => other,
        })?;
    let sig = signature(
        &key,
        version,
        &repo_path,
        expiry_ms,
        Some((signer, created_seq)),
    );
    // Encoded as `signer` is: an organisation named `my org` or `a&b` made a URL no
    // client could send, or one whose `org` ended at the `&`.
    let org_param = org
        .map(|o| format!("&org={}", super::query_value(o)))
        .unwrap_or_default();
    // The path percent-encoded segment by segment: the signature covers the path a file
    // server serves (decoded), and a `%`, `?`, `#` or space in a file's name must reach
    // it as part of the name (written raw, `?` began the query and `%2e%2e` became `..`).
    let path = repo_path
        .split('/')
        .map(super::segment)
        .collect::<Vec<_>>()
        .join("/");
    let url = format!(
        "{}/artifactory/{path}?sig={sig}&exp={expiry_ms}&v={version}&signer={}{org_param}",
        base_url(&req),
        super::query_value(signer)
    );
    // Seed 002: "201 Created", `application/json` (the URL as a JSON string). The URL is
    // a bearer credential until it expires: kept by no cache.
    Ok(super::no_store(HttpResponse::Created().json(url)))
}

/// A number written as digits only, and one way (no leading zero: `exp=0179…` and `v=01`
/// verified as other spellings of one signed URL).
fn digits(v: &str) -> Option<u64> {
    (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) && (v == "0" || !v.starts_with('0')))
        .then(|| v.parse().ok())
        .flatten()
}

fn current_version(app: &AppState, org: Option<&str>) -> u64 {
    let s = app.read();
    match org {
        None => s.keys.signed_url_version,
        Some(o) => s.keys.org_signed_url_versions.get(o).copied().unwrap_or(0),
    }
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

/// Check a signed URL; its `repo_path` when valid, 403 with the reason otherwise. The
/// path is judged as a file server serves it: percent-decoded and without empty and `.`
/// segments (judged raw, `libs/public/%2e%2e/private/a` verified while nginx served
/// `libs/private/a`; a file name with a space, encoded by a client, did not verify).
pub fn check(app: &AppState, url: &str) -> Result<String, ApiError> {
    // A fragment is no part of what a client sends (as `authorize` judges the URI: the
    // verify answered 403 where the download was allowed).
    let url = url.split_once('#').map_or(url, |(u, _)| u);
    let (path, query) = url
        .split_once('?')
        .ok_or_else(|| ApiError::Forbidden("the URL is not signed".into()))?;
    let raw = path
        .split_once("/artifactory/")
        .map(|(_, p)| p)
        .ok_or_else(|| ApiError::BadRequest("invalid `url`: not an /artifactory/ URL".into()))?;
    let decoded = super::percent_decode(raw)
        .ok_or_else(|| ApiError::BadRequest("invalid `url`: bad percent-encoding".into()))?;
    let repo_path = check_repo_path(&decoded).map_err(|_| {
        ApiError::Forbidden(
            "the URL's path is not a repository path (`..`, control characters)".into(),
        )
    })?;
    check_signed(app, &repo_path, query)?;
    Ok(repo_path)
}

/// Check the signature parameters (`sig`, `exp`, `v`, `org`) of `query` for
/// `repo_path`, the path as served (decoded, normalised); 403 with the reason.
pub fn check_signed(app: &AppState, repo_path: &str, query: &str) -> Result<(), ApiError> {
    let mut sig = None;
    let mut exp = None;
    let mut version = None;
    let mut org = None;
    let mut signer = None;
    // Each signature parameter once: with two, the check took the last and `verify`
    // reported the first (a URL valid for a minute was reported valid for centuries to a
    // file server that caches by it).
    let mut seen = [false; 5];
    for pair in query.split('&') {
        let slot = match pair.split_once('=') {
            Some(("sig", _)) => Some(0),
            Some(("exp", _)) => Some(1),
            Some(("v", _)) => Some(2),
            Some(("org", _)) => Some(3),
            Some(("signer", _)) => Some(4),
            _ => None,
        };
        if let Some(i) = slot {
            if std::mem::replace(&mut seen[i], true) {
                let name = pair.split_once('=').map_or(pair, |(n, _)| n);
                return Err(ApiError::Forbidden(format!(
                    "the URL gives `{name}` more than once"
                )));
            }
        }
        match pair.split_once('=') {
            Some(("sig", v)) => sig = Some(v.to_string()),
            // Digits only: `+5` read as 5 gave one URL two spellings.
            Some(("exp", v)) => exp = digits(v),
            Some(("v", v)) => version = digits(v),
            Some(("org", v)) => {
                org =
                    Some(super::percent_decode(v).ok_or_else(|| {
                        ApiError::Forbidden("the URL's `org` is not valid".into())
                    })?)
            }
            Some(("signer", v)) => {
                signer =
                    Some(super::percent_decode(v).ok_or_else(|| {
                        ApiError::Forbidden("the URL's `signer` is not valid".into())
                    })?)
            }
            _ => {}
        }
    }
    let (Some(sig), Some(exp), Some(version)) = (sig, exp, version) else {
        return Err(ApiError::Forbidden("the URL is not signed".into()));
    };
    if org
        .as_deref()
        .is_some_and(|o| crate::domain::validate_group_name("org", o).is_err())
    {
        return Err(ApiError::Forbidden("the URL's `org` is not valid".into()));
    }
    let current = current_version(app, org.as_deref());
    let key = app
        .keys
        .signed_url_key_of(org.as_deref(), current)
        .ok_or_else(|| {
            ApiError::Forbidden("the URL's organisation has no signed-URL key".into())
        })?;
    // The signer's user as it is now: none (deleted, or never) signs with position 0,
    // which no user is created at — the signature fails as a forged one does, and says
    // nothing about which names exist.
    let now = signer.as_deref().map(|name| {
        let s = app.read();
        let user = s.directory.users.get(name);
        let created_seq = user.map_or(0, |u| u.created_seq);
        // Able to sign in: enabled, and its password not expired (its tokens stop then
        // too; its URLs went on lending its right).
        let state = user.map(|u| {
            (
                u.status == gatehouse_schemas::UserStatus::Enabled && !u.password_expired,
                s.directory.user_is_admin(u),
            )
        });
        (name, created_seq, state)
    });
    let expected = signature(
        &key,
        current,
        repo_path,
        exp,
        now.map(|(name, seq, _)| (name, seq)),
    );
    // Compare in constant time: the signature is the credential.
    let valid = version == current && constant_time_eq(expected.as_bytes(), sig.as_bytes());
    if !valid {
        return Err(ApiError::Forbidden(
            "the URL's signature is not valid (tampered, signed with a replaced key, or its signer was deleted)".into(),
        ));
    }
    if exp <= unix_millis() {
        return Err(ApiError::Forbidden("the signed URL has expired".into()));
    }
    // A URL lends its signer's right to read the path: it ends when the signer could no
    // longer sign it — disabled or locked (as the signer's tokens do), or no longer an
    // admin nor holding `manage` on the path.
    if let Some((signer, _, state)) = now {
        match state {
            Some((true, admin)) => may_sign_as(app, signer, admin, None, repo_path, org.as_deref())
                .map_err(|e| match e {
                    ApiError::Forbidden(why) => ApiError::Forbidden(format!(
                        "the URL's signer may no longer sign it: {why}"
                    )),
                    other => other,
                })?,
            _ => {
                return Err(ApiError::Forbidden(format!(
                    "the URL's signer `{signer}` is disabled or locked, or its password has expired"
                )))
            }
        }
    }
    Ok(())
}

/// The signer's user: the position it was created at and whether it is an admin; 403
/// when there is none (a transient identity) or it may not sign in.
fn signer_record(app: &AppState, signer: &str) -> Result<(u64, bool), ApiError> {
    let s = app.read();
    match s.directory.users.get(signer) {
        Some(u) if u.status == gatehouse_schemas::UserStatus::Enabled && !u.password_expired => {
            Ok((u.created_seq, s.directory.user_is_admin(u)))
        }
        Some(_) => Err(ApiError::Forbidden(format!(
            "`{signer}` is disabled or locked, or its password has expired"
        ))),
        None => Err(ApiError::Forbidden(format!(
            "`{signer}` is not a user here (a transient identity)"
        ))),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Deserialize)]
struct KeyBody {
    #[serde(default)]
    org: Option<String>,
}

/// Replace the server-wide key, or (`{"org": …}` or `?org=`) an organisation's own key,
/// as Bintray kept one per organisation. Seed 002: 201.
async fn replace_key(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    req: HttpRequest,
    OptionalBody(body): OptionalBody<KeyBody>,
) -> Result<HttpResponse, ApiError> {
    let org = match body.and_then(|b| b.org) {
        Some(o) => Some(o),
        None => query_param(&req, "org")?,
    };
    if let Some(o) = &org {
        crate::domain::validate_group_name("org", o)?;
    }
    // One replacement at a time: two at once both wrote the key file of the next
    // version, one committed, and the other's key was the one on disk — URLs signed
    // with the committed version stopped verifying.
    static REPLACING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = REPLACING.lock().await;
    let version = current_version(&app, org.as_deref()) + 1;
    let made = match &org {
        None => app.keys.new_signed_url_key(version),
        Some(o) => app.keys.new_org_signed_url_key(o, version),
    };
    made.map_err(|e| {
        tracing::error!(error = %e, "cannot store a new signed-URL key");
        ApiError::Internal(rid.0.clone())
    })?;
    let committed = app
        .submit(
            Command::ReplaceSignedUrlKey {
                version,
                org: org.clone(),
            },
            &admin.0.username,
            &rid,
        )
        .await?;
    // Committed: the versions before it verify nothing any more.
    app.keys.retire_signed_url_keys(org.as_deref(), version);
    let mut body = json!({"version": version});
    if let Some(o) = org {
        body["org"] = json!(o);
    }
    Ok(written(HttpResponse::Created().json(body), committed))
}

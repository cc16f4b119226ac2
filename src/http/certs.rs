//! Keys that verify tokens: the root key (PEM), the JWKS document, rotation, and the
//! circle of trust (seed 003, seed 004 "Get Root Certificate").

use super::error::ApiError;
use super::extract::{Admin, Body, RequestId};
use super::{query_param, resource, written, AppState};
use crate::domain::{self, Command};
use crate::keys;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/access/api/v1/cert/root").route(web::get().to(root)))
        .service(resource("/access/api/v1/cert/ca").route(web::get().to(root)))
        .service(resource("/access/api/v1/cert/root/rotate").route(web::post().to(rotate)))
        .service(resource("/access/api/v1/cert/root/reset").route(web::post().to(reset)))
        .service(resource("/access/api/v1/cert/jwks").route(web::get().to(jwks)))
        .service(
            resource("/access/api/v1/cert/trusted")
                .route(web::get().to(list_trusted))
                .route(web::post().to(add_trusted)),
        )
        .service(
            resource("/access/api/v1/cert/trusted/{name}").route(web::delete().to(remove_trusted)),
        );
}

/// The root certificate (X.509, self-signed over the active signing key, see
/// `keys::certificate`): base64 DER on one line, or PEM with `?formatted=true`. Also at
/// `cert/ca`, where JFrog serves its CA.
async fn root(
    app: web::Data<AppState>,
    _admin: Admin,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let formatted = match query_param(&req, "formatted")?.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => {
            return Err(ApiError::BadRequest(format!(
                "invalid `formatted`: `{}` (use true or false)",
                v.escape_debug()
            )))
        }
    };
    let (kid, service_id) = {
        let s = app.read();
        (
            s.keys.active.clone(),
            s.service_id.clone().unwrap_or_default(),
        )
    };
    let kid = kid.ok_or_else(|| ApiError::Unavailable("no signing key yet".into()))?;
    let key = app
        .keys
        .signing_key(&kid)
        .ok_or_else(|| ApiError::Internal(format!("the private key `{kid}` is missing")))?;
    let der = keys::certificate::root_certificate(key.dalek(), &kid, &service_id)
        .map_err(ApiError::Internal)?;
    let body = if formatted {
        keys::certificate::pem(&der)
    } else {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&der)
    };
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(body))
}

/// Every key that verifies tokens here (RFC 7517/8037), public so JWT libraries can fetch it.
async fn jwks(app: web::Data<AppState>) -> HttpResponse {
    let s = app.read();
    let keys: Vec<_> = app
        .keys
        .own_verifying(&s)
        .into_iter()
        .map(|(kid, k)| json!({"kty": "OKP", "crv": "Ed25519", "x": keys::public_b64(&k), "kid": kid, "alg": "EdDSA", "use": "sig"}))
        .collect();
    HttpResponse::Ok().json(json!({ "keys": keys }))
}

/// A new key pair, its private half stored (a storage failure is the server's, not the
/// caller's: 500 with the request id).
fn new_signing_key(
    app: &AppState,
    rid: &RequestId,
) -> Result<(String, ed25519_dalek::VerifyingKey), ApiError> {
    app.keys.generate().map_err(|e| {
        tracing::error!(error = %e, "cannot store a new signing key");
        ApiError::Internal(rid.0.clone())
    })
}

/// New tokens are signed with a new key; the old one keeps verifying until its tokens expire.
async fn rotate(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
) -> Result<HttpResponse, ApiError> {
    let (kid, public) = new_signing_key(&app, &rid)?;
    let cmd = Command::AddSigningKey {
        kid: kid.clone(),
        public_key: keys::public_b64(&public),
    };
    let committed = app.submit(cmd, &admin.0.username, &rid).await?;
    // A certificate, as `reset` and `cert/root` give (it was the bare public key under
    // the same name).
    let service_id = app.read().service_id.clone().unwrap_or_default();
    let certificate = certificate_pem(&app, &kid, &service_id)?;
    Ok(written(
        HttpResponse::Ok().json(json!({"kid": kid, "certificate": certificate})),
        committed,
    ))
}

/// The self-signed root certificate (PEM) over signing key `kid`.
fn certificate_pem(app: &AppState, kid: &str, service_id: &str) -> Result<String, ApiError> {
    let key = app
        .keys
        .signing_key(kid)
        .ok_or_else(|| super::tokens::no_private_key(kid))?;
    let der = keys::certificate::root_certificate(key.dalek(), kid, service_id)
        .map_err(ApiError::Internal)?;
    Ok(keys::certificate::pem(&der))
}

/// Seed 003: "resetting the certificate will effectively revoke all of the tokens that
/// have been generated"; to keep them, "copy the old root.crt into the trusted
/// directory" (or `POST cert/trusted` it). The retired keys' private halves are deleted.
async fn reset(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
) -> Result<HttpResponse, ApiError> {
    let (kid, public) = new_signing_key(&app, &rid)?;
    let cmd = Command::ResetSigningKeys {
        kid: kid.clone(),
        public_key: keys::public_b64(&public),
    };
    let committed = app.submit(cmd, &admin.0.username, &rid).await?;
    let (retired, service_id) = {
        let s = app.read();
        (
            s.keys.retired.iter().cloned().collect::<Vec<_>>(),
            s.service_id.clone().unwrap_or_default(),
        )
    };
    for old in &retired {
        app.keys.forget_signing_key(old);
    }
    let certificate = certificate_pem(&app, &kid, &service_id)?;
    Ok(written(
        HttpResponse::Ok().json(json!({
            "kid": kid,
            "certificate": certificate,
            "retired": retired,
        })),
        committed,
    ))
}

async fn list_trusted(app: web::Data<AppState>, _admin: Admin) -> HttpResponse {
    let s = app.read();
    let trusted: Vec<_> = s
        .keys
        .trusted
        .iter()
        .map(|(name, (kid, p))| {
            let key = keys::peer::PeerKey::from_stored(p);
            let pem = key.as_ref().map(|k| k.pem()).unwrap_or_default();
            let alg = key.as_ref().map_or("", |k| k.algorithm());
            json!({"name": name, "kid": kid, "certificate": pem, "alg": alg})
        })
        .collect();
    HttpResponse::Ok().json(json!({ "trusted": trusted }))
}

#[derive(Deserialize)]
struct TrustedBody {
    name: String,
    certificate: String,
}

async fn add_trusted(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    Body(body): Body<TrustedBody>,
) -> Result<HttpResponse, ApiError> {
    domain::validate_group_name("name", &body.name)?;
    let key = keys::peer::parse_peer(&body.certificate).ok_or_else(|| {
        ApiError::BadRequest("invalid `certificate`: not an X.509 certificate or public key (Ed25519 or RSA; send the root.crt or the PEM a peer serves at /access/api/v1/cert/root?formatted=true)".into())
    })?;
    if let Some(bits) = key.weak_rsa_bits() {
        return Err(ApiError::BadRequest(format!(
            "invalid `certificate`: an RSA key of {bits} bits (at least 2048)"
        )));
    }
    let kid = key.kid();
    let cmd = Command::AddTrustedKey {
        name: body.name.clone(),
        kid: kid.clone(),
        public_key: key.stored(),
    };
    let committed = app.submit(cmd, &admin.0.username, &rid).await?;
    Ok(written(
        HttpResponse::build(StatusCode::CREATED).json(json!({"name": body.name, "kid": kid})),
        committed,
    ))
}

async fn remove_trusted(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let committed = app
        .submit(
            Command::RemoveTrustedKey {
                name: path.into_inner(),
            },
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(HttpResponse::NoContent().finish(), committed))
}

/// Seed 003: "the root.crt will disappear from the target's trusted folder and will be
/// placed in the database". Once a second, each key file in `<data-dir>/trusted/` is
/// recorded (`TrustedKeyAdded`, named after the file) and then removed; until then it
/// already verifies tokens (`KeyRing` reads the folder), so there is no gap.
pub async fn import_trusted_folder(app: web::Data<AppState>) {
    let rid = RequestId("trusted-folder".into());
    // Files left in place are said once each (an own key was warned of every second).
    let mut said: std::collections::HashSet<std::path::PathBuf> = Default::default();
    loop {
        actix_web::rt::time::sleep(std::time::Duration::from_secs(1)).await;
        for (path, key) in app.keys.trusted_folder_files() {
            let kid = key.kid();
            let (known, own, taken) = {
                let s = app.read();
                let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                (
                    s.keys.trusted.values().any(|(k, _)| *k == kid),
                    s.keys.is_live_signing_key(&kid),
                    s.keys.trusted.contains_key(stem),
                )
            };
            if own {
                if said.insert(path.clone()) {
                    tracing::warn!(path = %path.display(), "a file in trusted/ holds one of this server's own keys; left in place");
                }
                continue;
            }
            if !known {
                let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                let name = if domain::validate_group_name("name", stem).is_err() {
                    format!("trusted-{kid}")
                } else if taken {
                    format!("{stem}-{kid}")
                } else {
                    stem.to_string()
                };
                let cmd = Command::AddTrustedKey {
                    name: name.clone(),
                    kid: kid.clone(),
                    public_key: key.stored(),
                };
                if let Err(e) = app.submit(cmd, "system", &rid).await {
                    tracing::warn!(path = %path.display(), error = %e, "cannot take a trusted file into the store");
                    continue;
                }
                tracing::info!(path = %path.display(), name = %name, kid = %kid, "trusted key taken from the trusted folder into the store");
            }
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove an imported trusted file");
            }
            app.keys.rescan_trusted_folder();
        }
    }
}

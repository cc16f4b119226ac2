//! Pairing tokens (seed 004 "Pairing Token"): two servers establish a two-way circle of
//! trust without copying certificates by hand.
//!
//! 1. An admin of A creates a pairing token for a use case: a 5-minute, single-use,
//!    revocable token whose audience is A itself and whose `ext` carries A's base URL and
//!    exchange URL.
//! 2. An admin of B hands it to B (`initiate`). B calls A's exchange URL with the token
//!    as bearer and its own public key; A checks the token, uses it up, trusts B's key
//!    and answers with its own; B checks that A's key signed the token and trusts it.
//!    Each side records a `ServicePaired` event.

use super::error::ApiError;
use super::extract::{Admin, Body, RequestId};
use super::{base_url, resource, written, AppState};
use crate::auth::{unix_secs, verify_token};
use crate::domain::Command;
use crate::keys::{self, public_from_b64};
use crate::tokens::{self, Spec, PAIRING_SCOPE_PREFIX};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Fixed paths before the `{use_case}` one.
    cfg.service(
        resource("/access/api/v1/service_trust/pairing/initiate").route(web::post().to(initiate)),
    )
    .service(
        resource("/access/api/v1/service_trust/pairing/exchange").route(web::post().to(exchange)),
    )
    .service(
        resource("/access/api/v1/service_trust/pairing/{use_case:.+}")
            .route(web::post().to(create))
            .route(web::put().to(initiate_seed))
            .route(web::get().to(list)),
    )
    .service(
        resource("/access/api/v1/service_trust/pairings/{use_case:.+}")
            .route(web::get().to(list_seed)),
    )
    // Where JFrog serves them (seed 004).
    .service(
        resource("/artifactory/api/v1/service_trust/pairing/{use_case:.+}")
            .route(web::post().to(create))
            .route(web::put().to(initiate_seed))
            .route(web::delete().to(unregister)),
    )
    .service(
        resource("/artifactory/api/v1/service_trust/pairings/{use_case:.+}")
            .route(web::get().to(list_seed)),
    );
}

/// The use cases a pairing means something for: Gatehouse's Access Federation, and
/// JFrog's (seed 004: `federated-repo/<namespace>`, `mission-control`,
/// `artifactory-cold`). Another is 404, as the seed says.
const KNOWN_USE_CASES: &[&str] = &[
    "federation",
    "federated-repo",
    "mission-control",
    "artifactory-cold",
];

fn check_known_use_case(u: &str) -> Result<(), ApiError> {
    check_use_case(u)?;
    let family = u.split('/').next().unwrap_or("");
    if KNOWN_USE_CASES.contains(&family) {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!(
            "unknown use case `{u}` (use one of: {})",
            KNOWN_USE_CASES.join(", ")
        )))
    }
}

const EXCHANGE_PATH: &str = "/access/api/v1/service_trust/pairing/exchange";

fn check_use_case(u: &str) -> Result<(), ApiError> {
    if u.is_empty()
        || u.len() > 128
        || u.starts_with('/')
        || !u
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./*".contains(&b))
    {
        return Err(ApiError::BadRequest(
            "invalid `use_case`: 1 to 128 letters, digits, `-`, `_`, `.`, `/` or `*`".into(),
        ));
    }
    Ok(())
}

/// The base URL peers should use: `X-JFrog-Override-Base-Url` when a proxy sets it.
fn own_base_url(req: &HttpRequest) -> String {
    req.headers()
        .get("x-jfrog-override-base-url")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_end_matches('/').to_string())
        .unwrap_or_else(|| base_url(req))
}

async fn create(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let use_case = path.into_inner();
    check_known_use_case(&use_case)?;
    let (service_id, kid, user_seq) = {
        let s = app.read();
        (
            s.service_id.clone().unwrap_or_default(),
            s.keys.active.clone(),
            s.directory
                .users
                .get(admin.0.username.as_str())
                .map(|u| u.created_seq),
        )
    };
    let kid = kid.ok_or_else(|| ApiError::Unavailable("no signing key yet".into()))?;
    let base = own_base_url(&req);
    let now = unix_secs();
    let scope = format!("{PAIRING_SCOPE_PREFIX}{use_case}:x");
    let spec = Spec {
        service_id: &service_id,
        subject: &admin.0.username,
        transient: false,
        scope: &scope,
        audience: &service_id,
        description: Some("pairing token"),
        expires_in: Some(app.config.pairing_token_expiry.max(1)),
        refreshable: false,
        reference: false,
        revocable: true,
        now,
        ext: vec![
            ("base_url", base.clone()),
            ("exchange_url", format!("{base}{EXCHANGE_PATH}")),
            ("use_case", use_case.clone()),
        ],
        user_seq,
        self_issued: false,
    };
    let minted =
        tokens::mint(&app.keys, &kid, &spec).ok_or_else(|| super::tokens::no_private_key(&kid))?;
    let committed = app
        .submit(
            Command::IssueToken(minted.record.clone()),
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(
        super::no_store(HttpResponse::Ok().json(json!({
            "pairing_token": minted.access_token,
            "token_id": minted.record.token_id,
            "expires_in": app.config.pairing_token_expiry.max(1),
            "use_case": use_case,
        }))),
        committed,
    ))
}

async fn list(
    app: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    check_known_use_case(&path)?;
    let s = app.read();
    let pairings: Vec<_> = s
        .keys
        .pairings
        .get(path.as_str())
        .map(|m| {
            m.iter()
                .map(|(service_id, name)| json!({"service_id": service_id, "name": name, "kid": s.keys.trusted.get(name).map(|(k, _)| k)}))
                .collect()
        })
        .unwrap_or_default();
    Ok(HttpResponse::Ok().json(json!({"use_case": path.as_str(), "pairings": pairings})))
}

/// Seed 004 "Get Pairings": `[{"base_url": …}]`, the paired peers of a use case.
async fn list_seed(
    app: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    check_known_use_case(&path)?;
    let s = app.read();
    let urls = s.keys.pairing_base_urls.get(path.as_str());
    let pairings: Vec<_> = s
        .keys
        .pairings
        .get(path.as_str())
        .map(|m| {
            m.keys()
                .map(|service_id| {
                    json!({
                        "base_url": urls.and_then(|u| u.get(service_id)),
                        "service_id": service_id,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(HttpResponse::Ok().json(pairings))
}

#[derive(Deserialize)]
struct ExchangeBody {
    service_id: String,
    certificate: String,
    /// The peer's base URL (older Gatehouse peers do not send it).
    #[serde(default)]
    base_url: Option<String>,
}

/// The bearer token of a request, checked before its body is read.
struct BearerToken(String);

impl actix_web::FromRequest for BearerToken {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let token = super::extract::authorization(req)
            // The scheme in any case, as everywhere else (RFC 9110 §11.1).
            .and_then(|v| {
                v.get(..7)
                    .filter(|p| p.eq_ignore_ascii_case("bearer "))
                    .map(|_| &v[7..])
            })
            .map(|t| BearerToken(t.trim().to_string()))
            .ok_or_else(|| {
                ApiError::Unauthorized("present the pairing token as a bearer token".into())
            });
        std::future::ready(token)
    }
}

/// A's side: a peer presents our pairing token (as bearer) and its key.
async fn exchange(
    app: web::Data<AppState>,
    BearerToken(token): BearerToken,
    rid: RequestId,
    Body(body): Body<ExchangeBody>,
) -> Result<HttpResponse, ApiError> {
    let peer = keys::parse_public(&body.certificate).ok_or_else(|| {
        ApiError::BadRequest("invalid `certificate`: not an Ed25519 public key".into())
    })?;
    crate::domain::validate_group_name("service_id", &body.service_id)?;
    let (claims, own_key) = {
        let s = app.read();
        let service_id = s.service_id.clone().unwrap_or_default();
        // Only a token signed with one of our own keys: a trusted peer's key verifies too,
        // but a peer must not be able to forge our pairing tokens.
        let kid = crate::auth::jwt::parse(&token)
            .map(|u| u.header.kid)
            .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
        if !s.keys.is_live_signing_key(&kid) {
            return Err(ApiError::Unauthorized(
                "not a pairing token of this server".into(),
            ));
        }
        let claims = verify_token(&app.keys, &s, &token)
            .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
        if claims.iss != service_id
            || claims.aud != service_id
            || !claims.scp.starts_with(PAIRING_SCOPE_PREFIX)
        {
            return Err(ApiError::Unauthorized(
                "not a pairing token of this server".into(),
            ));
        }
        if claims.exp.is_some_and(|e| e <= unix_secs()) {
            return Err(ApiError::Unauthorized(
                "the pairing token has expired".into(),
            ));
        }
        if !s.tokens.by_id.contains_key(claims.jti.as_str()) {
            return Err(ApiError::Unauthorized(
                "the pairing token was used already or revoked".into(),
            ));
        }
        // The master token and the trusted key are an admin's gift: its creator must
        // still be an enabled admin (one demoted or disabled since made itself admin
        // again, or a key that signs admin tokens, with a pairing token made before).
        let creator_ok = claims
            .username()
            .and_then(|n| s.directory.users.get(n))
            .is_some_and(|u| {
                u.status == gatehouse_schemas::UserStatus::Enabled
                    && !u.password_expired
                    && s.directory.user_is_admin(u)
            });
        if !creator_ok {
            return Err(ApiError::Unauthorized(
                "the pairing token's creator is no longer an enabled admin".into(),
            ));
        }
        let own = s
            .keys
            .active
            .as_ref()
            .and_then(|k| s.keys.signing.get(k))
            .and_then(|p| public_from_b64(p));
        (
            claims,
            own.ok_or_else(|| ApiError::Unavailable("no signing key yet".into()))?,
        )
    };
    let use_case = claims
        .scp
        .strip_prefix(PAIRING_SCOPE_PREFIX)
        .and_then(|r| r.strip_suffix(":x"))
        .unwrap_or("default")
        .to_string();
    // Seed 004: "the result of a pairing is the master token": an admin token for the
    // peer, kept as a record here; revoking it ends the trust this pairing created.
    let actor = claims.username().unwrap_or("system").to_string();
    let (service_id, kid, user_seq) = {
        let s = app.read();
        (
            s.service_id.clone().unwrap_or_default(),
            s.keys.active.clone(),
            s.directory.users.get(actor.as_str()).map(|u| u.created_seq),
        )
    };
    let kid = kid.ok_or_else(|| ApiError::Unavailable("no signing key yet".into()))?;
    let description = format!("pairing master token for {} ({use_case})", body.service_id);
    let spec = Spec {
        service_id: &service_id,
        subject: &actor,
        transient: user_seq.is_none(),
        scope: "applied-permissions/admin",
        audience: &service_id,
        description: Some(&description),
        expires_in: None,
        refreshable: false,
        reference: false,
        revocable: true,
        now: unix_secs(),
        ext: vec![],
        user_seq,
        self_issued: false,
    };
    let master =
        tokens::mint(&app.keys, &kid, &spec).ok_or_else(|| super::tokens::no_private_key(&kid))?;
    let cmd = Command::CompletePairing {
        pairing_token_id: Some(claims.jti.clone()),
        use_case,
        service_id: body.service_id,
        kid: keys::kid_of(&peer),
        public_key: keys::public_b64(&peer),
        base_url: body
            .base_url
            .filter(|u| u.starts_with("http://") || u.starts_with("https://")),
        master: Some(master.record.clone()),
    };
    let committed = app.submit(cmd, &actor, &rid).await?;
    Ok(written(
        HttpResponse::Ok().json(json!({
            "service_id": service_id,
            "certificate": keys::public_pem(&own_key),
            "master_token": master.access_token,
            "master_token_id": master.record.token_id,
        })),
        committed,
    ))
}

#[derive(Deserialize)]
struct InitiateBody {
    pairing_token: String,
}

#[derive(Deserialize)]
struct ExchangeReply {
    service_id: String,
    certificate: String,
}

#[derive(Deserialize)]
struct UnregisterBody {
    base_url: String,
}

/// `DELETE /artifactory/api/v1/service_trust/pairing/{use_case}` with `{"base_url"}`
/// (py-jfrog-client's `unregister_pairing_token`): end the trust of the pairings of that
/// use case with the peer at that URL — its key removed, the master token handed to it
/// revoked, as removing the key does.
async fn unregister(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
    Body(body): Body<UnregisterBody>,
) -> Result<HttpResponse, ApiError> {
    check_known_use_case(&path)?;
    let wanted = body.base_url.trim_end_matches('/');
    let names: Vec<String> = {
        let s = app.read();
        let urls = s.keys.pairing_base_urls.get(path.as_str());
        s.keys
            .pairings
            .get(path.as_str())
            .into_iter()
            .flatten()
            .filter(|(service_id, _)| {
                urls.and_then(|u| u.get(*service_id))
                    .is_some_and(|u| u.trim_end_matches('/') == wanted)
            })
            .map(|(_, name)| name.clone())
            .filter(|name| s.keys.trusted.contains_key(name))
            .collect()
    };
    if names.is_empty() {
        return Err(ApiError::NotFound(format!(
            "no pairing for `{}` with a peer at `{}`",
            path.as_str(),
            body.base_url.escape_debug()
        )));
    }
    let mut last = None;
    for name in names {
        last = Some(
            app.submit(Command::RemoveTrustedKey { name }, &admin.0.username, &rid)
                .await?,
        );
    }
    let body = json!({"message": "Pairing was removed successfully"});
    Ok(match last {
        Some(committed) => written(HttpResponse::Ok().json(body), committed),
        None => HttpResponse::Ok().json(body),
    })
}

/// Seed 004 "Initiate Pairing": `PUT …/service_trust/pairing/{use_case}` with
/// `{pairing_token}`; the token must be for that use case.
async fn initiate_seed(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    req: HttpRequest,
    path: web::Path<String>,
    Body(body): Body<InitiateBody>,
) -> Result<HttpResponse, ApiError> {
    check_known_use_case(&path)?;
    let asked = crate::auth::jwt::parse(&body.pairing_token)
        .ok()
        .and_then(|u| u.claims.ext)
        .and_then(|e| serde_json::from_str::<serde_json::Value>(&e).ok())
        .and_then(|v| v["use_case"].as_str().map(str::to_string));
    if asked.as_deref().is_some_and(|u| u != path.as_str()) {
        return Err(ApiError::BadRequest(format!(
            "invalid `pairing_token`: it is for the use case `{}`, not `{}`",
            asked.unwrap_or_default(),
            path.as_str()
        )));
    }
    initiate(app, admin, rid, req, Body(body)).await
}

/// B's side: an admin hands us a peer's pairing token; we call the peer and trust it.
async fn initiate(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    req: HttpRequest,
    Body(body): Body<InitiateBody>,
) -> Result<HttpResponse, ApiError> {
    // We cannot verify the token before we know the peer's key: read it, call the peer,
    // then check that the key it answers with signed this token.
    let unverified = crate::auth::jwt::parse(&body.pairing_token)
        .map_err(|_| ApiError::BadRequest("invalid `pairing_token`: not a JWT".into()))?;
    let claims = unverified.claims.clone();
    let ext: serde_json::Value = claims
        .ext
        .as_deref()
        .and_then(|e| serde_json::from_str(e).ok())
        .unwrap_or_default();
    let exchange_url = ext["exchange_url"]
        .as_str()
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        .ok_or_else(|| {
            ApiError::BadRequest("invalid `pairing_token`: no exchange URL in its extension".into())
        })?
        .to_string();
    if !claims.scp.starts_with(PAIRING_SCOPE_PREFIX) {
        return Err(ApiError::BadRequest(
            "invalid `pairing_token`: not a pairing token".into(),
        ));
    }
    let (own_id, own_key) = {
        let s = app.read();
        // Refuse before the peer commits its side: a pairing this server would refuse
        // (it never replaces a key it trusts under the peer's name) left the peer
        // trusting this server, its pairing token used and a master token issued.
        if let Some((kid, _)) = s.keys.trusted.get(claims.iss.as_str()) {
            if *kid != unverified.header.kid {
                return Err(ApiError::Conflict(format!(
                    "this server already trusts a different key as `{}` (an older key of that service?): remove it first (DELETE /access/api/v1/cert/trusted/{}), then pair with a new pairing token",
                    claims.iss,
                    super::segment(&claims.iss)
                )));
            }
        }
        let own = s
            .keys
            .active
            .as_ref()
            .and_then(|k| s.keys.signing.get(k))
            .and_then(|p| public_from_b64(p));
        (
            s.service_id.clone().unwrap_or_default(),
            own.ok_or_else(|| ApiError::Unavailable("no signing key yet".into()))?,
        )
    };
    let request = json!({"service_id": own_id, "certificate": keys::public_pem(&own_key), "base_url": own_base_url(&req)});
    let token = body.pairing_token.clone();
    let reply = web::block(move || -> Result<ExchangeReply, String> {
        let agent = crate::tls::agent()
            .timeout(std::time::Duration::from_secs(10))
            .build();
        match agent
            .post(&exchange_url)
            .set("Authorization", &format!("Bearer {token}"))
            .send_json(request)
        {
            Ok(r) => crate::tls::json_answer::<ExchangeReply>(r)
                .map_err(|e| format!("unreadable answer: {e}")),
            Err(ureq::Error::Status(code, r)) => {
                let text = r.into_string().unwrap_or_default();
                Err(format!(
                    "the peer answered {code}: {}",
                    text.chars().take(300).collect::<String>()
                ))
            }
            Err(e) => Err(format!("cannot reach the peer: {e}")),
        }
    })
    .await
    .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))?
    .map_err(|e| ApiError::BadRequest(format!("pairing failed: {e}")))?;
    let peer = keys::parse_public(&reply.certificate).ok_or_else(|| {
        ApiError::BadRequest("pairing failed: the peer's certificate is not an Ed25519 key".into())
    })?;
    if reply.service_id != claims.iss {
        return Err(ApiError::BadRequest(
            "pairing failed: the peer is not the service that issued the token".into(),
        ));
    }
    unverified.verify(&peer).map_err(|_| {
        ApiError::BadRequest("pairing failed: the peer's key did not sign the pairing token".into())
    })?;
    crate::domain::validate_group_name("service_id", &reply.service_id)?;
    let use_case = ext["use_case"].as_str().unwrap_or("default").to_string();
    let kid = keys::kid_of(&peer);
    let cmd = Command::CompletePairing {
        pairing_token_id: None,
        use_case: use_case.clone(),
        service_id: reply.service_id.clone(),
        kid: kid.clone(),
        public_key: keys::public_b64(&peer),
        base_url: ext["base_url"]
            .as_str()
            .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
            .map(str::to_string),
        master: None,
    };
    let committed = app.submit(cmd, &admin.0.username, &rid).await?;
    Ok(written(
        HttpResponse::Ok().json(json!({
            "message": "Trust with Artifactory was established successfully",
            "service_id": reply.service_id,
            "kid": kid,
            "use_case": use_case,
        })),
        committed,
    ))
}

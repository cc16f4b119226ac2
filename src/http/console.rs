//! The browser console at `/ui/`: its page and assets, sign-in, sign-out, and the
//! session cookie as a credential for the API.
//!
//! The console is a client of the REST API like any other: its JavaScript calls the same
//! `/access/api/…` endpoints, so it can never reach more than the API allows its user.
//! What this module adds is the session: a cookie (`HttpOnly; SameSite=Strict`, `Secure`
//! under TLS) that stands for the signed-in user *only* together with the session's CSRF
//! token in `X-CSRF-Token` — on every API request, not just writes, so a page of another
//! site can use the cookie for nothing at all.

use super::error::ApiError;
use super::extract::{request_id, FormOrJson, SessionCaller};
use super::{resource, AppState};
use crate::console::{self, Sessions};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde_json::json;

/// The console's CSRF header, a name made once (every request asks for it).
const CSRF: header::HeaderName = header::HeaderName::from_static(console::CSRF_HEADER);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/ui").route(web::get().to(to_index)))
        .service(resource("/ui/").route(web::get().to(index)))
        .service(resource("/ui/assets/{file}").route(web::get().to(asset)))
        .service(resource("/ui/sign-in").route(web::post().to(sign_in)))
        .service(resource("/ui/sign-out").route(web::post().to(sign_out)))
        .service(resource("/ui/session").route(web::get().to(session)));
}

/// Nothing but this origin's own files; no framing; no inline code.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'";

/// The headers every console answer carries (added by [`console_middleware`], so error
/// answers have them too).
fn harden(headers: &mut actix_web::http::header::HeaderMap) {
    let set = |h: &mut actix_web::http::header::HeaderMap, k: &'static str, v: &'static str| {
        h.insert(
            header::HeaderName::from_static(k),
            HeaderValue::from_static(v),
        );
    };
    set(headers, "content-security-policy", CSP);
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "x-frame-options", "DENY");
    set(headers, "referrer-policy", "no-referrer");
    set(headers, "cross-origin-opener-policy", "same-origin");
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, "cache-control", "no-store");
    }
}

/// The session id from the request's `Cookie` header(s).
pub fn session_cookie(req: &HttpRequest) -> Option<String> {
    for value in req.headers().get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                if k == console::COOKIE && !v.is_empty() {
                    return Some(v.to_string());
                }
            }
        }
    }
    None
}

fn served_over_tls(app: &AppState, req: &HttpRequest) -> bool {
    app.config.tls_cert.is_some() || req.connection_info().scheme() == "https"
}

fn cookie(app: &AppState, req: &HttpRequest, value: &str, end: bool) -> String {
    let mut c = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Strict",
        console::COOKIE
    );
    if served_over_tls(app, req) {
        c.push_str("; Secure");
    }
    if end {
        c.push_str("; Max-Age=0");
    }
    c
}

fn sessions(app: &AppState) -> &Sessions {
    &app.sessions
}

/// For API requests (not `/ui/…`) without an `Authorization` header that carry a
/// console session cookie: a valid session with the right `X-CSRF-Token` makes the
/// session's user the caller ([`SessionCaller`]); a wrong token is refused (403); no
/// token, or a cookie of no live session, and the cookie is ignored (the request is then
/// as anonymous as one without it). Console pages get their security headers.
pub async fn console_middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let path = req.path();
    if path == "/ui" || path.starts_with("/ui/") {
        let mut res = next.call(req).await?;
        harden(res.headers_mut());
        res.headers_mut().remove(header::WWW_AUTHENTICATE);
        return Ok(res.map_into_left_body());
    }
    // A refusal here is answered as a response, not an error (see `as_of_middleware`).
    let refuse = |req: ServiceRequest, e: ApiError| Ok(req.error_response(e).map_into_right_body());
    // The console's own calls (they carry the CSRF header): a 401 must not make the
    // browser pop up its Basic dialog, which would hang the page behind it.
    let from_console = req.headers().contains_key(CSRF);
    if !req.headers().contains_key(header::AUTHORIZATION) {
        if let Some(id) = session_cookie(req.request()) {
            let Some(app) = req.app_data::<web::Data<AppState>>().cloned() else {
                return refuse(req, ApiError::Internal("no application state".into()));
            };
            let found = {
                let s = app.read();
                sessions(&app).lookup(&id, &s).map(|info| {
                    (
                        crate::auth::Authenticator::session_principal(&s, &info.username),
                        info,
                    )
                })
            };
            // Without the header the cookie is no credential at all (a link followed or
            // a page opened in the browser is as anonymous as one without the cookie);
            // with a wrong one the request is refused.
            let sent = req
                .headers()
                .get(CSRF)
                .map(|v| v.to_str().unwrap_or("").to_string());
            if let (Some((principal, info)), Some(sent)) = (found, sent) {
                if !console::same_secret(&sent, &info.csrf) {
                    return refuse(req, ApiError::Forbidden(
                        "a console session must send its CSRF token in `X-CSRF-Token` with every request".into(),
                    ));
                }
                match principal {
                    Ok(principal) => {
                        req.extensions_mut().insert(SessionCaller(principal));
                    }
                    Err(e) => return refuse(req, ApiError::from(e)),
                }
            }
        }
    }
    let mut res = next.call(req).await?;
    if from_console {
        res.headers_mut().remove(header::WWW_AUTHENTICATE);
    }
    Ok(res.map_into_left_body())
}

async fn to_index() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/ui/"))
        .finish()
}

async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(console::INDEX)
}

async fn asset(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let name = req.match_info().get("file").unwrap_or("");
    let (ct, bytes) = console::asset(name)
        .ok_or_else(|| ApiError::NotFound(format!("no console asset `{name}`")))?;
    Ok(HttpResponse::Ok()
        .content_type(ct)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(bytes))
}

/// A request from a page of another origin (the browser says so in `Origin`) may not
/// sign in: that would sign the victim's browser into the attacker's account.
fn same_origin(req: &HttpRequest) -> bool {
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return true;
    };
    let info = req.connection_info();
    origin
        .split_once("://")
        .is_some_and(|(_, host)| host.eq_ignore_ascii_case(info.host()))
}

/// `POST /ui/sign-in` (`username`, `password`, as a form or JSON): a session and its
/// CSRF token, or the API's error.
async fn sign_in(
    app: web::Data<AppState>,
    req: HttpRequest,
    body: FormOrJson,
) -> Result<HttpResponse, ApiError> {
    if !same_origin(&req) {
        return Err(ApiError::Forbidden(
            "sign-in is accepted only from the console's own pages".into(),
        ));
    }
    body.only(&req, &["username", "password"]);
    let username = body
        .string("username")?
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| ApiError::BadRequest("invalid `username`: required".into()))?;
    let password = body
        .string("password")?
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::BadRequest("invalid `password`: required".into()))?;
    let rid = request_id(&req);
    let ip = super::client_ip(&req, &app.config);
    let principal = app
        .auth
        .password_sign_in(
            username.trim(),
            &password,
            &app.state,
            &app.writer,
            &rid.0,
            ip,
        )
        .await?;
    super::extract::note_principal(&req, &principal.username);
    let (id, csrf, position) = {
        let s = app.read();
        // `disable_ui_access`: the REST API only, as in JFrog (the password was right;
        // the answer says why the console is closed to this user).
        if (s.directory.users.get(principal.username.as_str())).is_some_and(|u| u.disable_ui_access)
        {
            return Err(ApiError::Forbidden(
                "this user may use the REST API only (`disable_ui_access`)".into(),
            ));
        }
        let (id, csrf) = sessions(&app)
            .create(&s, &principal.username)
            .ok_or_else(|| ApiError::Unauthorized("invalid credentials".into()))?;
        (id, csrf, s.seq)
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::SET_COOKIE, cookie(&app, &req, &id, false)))
        .json(json!({
            "username": principal.username,
            "admin": principal.admin,
            "password_expired": principal.password_expired,
            "csrf": csrf,
            "position": position,
        })))
}

/// The session of this request's cookie, checked now; 401 without one.
fn current(app: &AppState, req: &HttpRequest) -> Result<(String, console::SessionInfo), ApiError> {
    let id = session_cookie(req)
        .ok_or_else(|| ApiError::Unauthorized("not signed in to the console".into()))?;
    let s = app.read();
    let info = sessions(app)
        .lookup(&id, &s)
        .ok_or_else(|| ApiError::Unauthorized("the console session has ended".into()))?;
    Ok((id, info))
}

/// `GET /ui/session`: who is signed in, the CSRF token for the page, the log's head.
/// Another site's page cannot read this answer (no CORS), and the cookie is
/// `SameSite=Strict`.
async fn session(app: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (_, info) = current(&app, &req)?;
    let s = app.read();
    let p = crate::auth::Authenticator::session_principal(&s, &info.username)?;
    Ok(HttpResponse::Ok().json(json!({
        "username": p.username,
        "admin": p.admin,
        "password_expired": p.password_expired,
        "csrf": info.csrf,
        "position": s.seq,
    })))
}

/// `POST /ui/sign-out` (with `X-CSRF-Token`): the session ends here, on the server.
async fn sign_out(app: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (id, info) = current(&app, &req)?;
    let sent = req
        .headers()
        .get(CSRF)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !console::same_secret(sent, &info.csrf) {
        return Err(ApiError::Forbidden(
            "sign-out needs the session's CSRF token in `X-CSRF-Token`".into(),
        ));
    }
    sessions(&app).end(&id);
    Ok(HttpResponse::NoContent()
        .insert_header((header::SET_COOKIE, cookie(&app, &req, "", true)))
        .finish())
}

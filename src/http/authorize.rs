//! `GET /access/api/v1/authorize`: the one decision for every credential kind, usable
//! directly or as an nginx `auth_request` target.

use super::error::ApiError;
use super::extract::request_id;
use super::{percent_decode, query_param, resource, signed_urls, AppState};
use crate::authorize::{decide_access_key, Decision, Subject, ACTIONS};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use gatehouse_schemas::UserStatus;
use serde_json::json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // HEAD: the same decision without a body, for proxies that only read the status.
    // nginx keeps an upstream connection for the next auth_request only when the answer
    // has no body to skip (`proxy_method HEAD` in scripts/nginx): with a body it closes
    // the connection after every subrequest, and each check pays a TCP connect and accept.
    // HEAD is answered as GET everywhere (`request_middleware`).
    // Decisions are never stored by a cache on the way (a cache in front of the check
    // kept a revoked token's "yes"): `no-store` on every answer, refusals included.
    let no_store = || {
        actix_web::middleware::DefaultHeaders::new()
            .add((actix_web::http::header::CACHE_CONTROL, "no-store"))
    };
    cfg.service(
        resource("/access/api/v1/authorize")
            .wrap(no_store())
            .route(web::get().to(authorize)),
    )
    .service(
        resource("/access/api/v1/authorize/effective")
            .wrap(no_store())
            .route(web::get().to(effective)),
    );
}

/// What is asked: from the query (`resource`, `action`), or from nginx's
/// `X-Original-URI` / `X-Original-Method` when the query has no `resource`.
struct Question {
    repo: String,
    path: String,
    action: String,
    /// A signed URL's query (`sig`, `exp`, `v`): the original URI's, or this request's
    /// own when it asks with `resource=` and carries `sig=` beside it.
    signed_query: Option<String>,
}

fn header_str<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A header as UTF-8 text: a path nginx passes on raw (`café` as its UTF-8 bytes) is
/// text too (`to_str` takes visible ASCII only, and the question was refused).
fn header_utf8<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get(name)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
}

/// Whether the request carries a signed URL's signature (its own query, or the
/// original URI nginx passes on).
pub(super) fn is_signed(req: &HttpRequest) -> bool {
    has_sig(req.query_string())
        || header_str(req, "x-original-uri")
            .and_then(|u| u.split_once('?'))
            .is_some_and(|(_, q)| has_sig(q))
}

fn has_sig(query: &str) -> bool {
    query.split('&').any(|p| p.starts_with("sig="))
}

/// The signed-URL parameters of this request's own query (`…&sig=…&exp=…&v=…`, what
/// `POST /artifactory/api/signed/url` puts in a URL), put back together for
/// `signed_urls::check`; `None` without `sig`.
fn own_signed_query(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    if !has_sig(req.query_string()) {
        return Ok(None);
    }
    let mut parts = Vec::new();
    // `org`: a URL signed with an organisation's key names it (it was dropped here, so
    // such a URL was refused on this form and accepted through X-Original-URI).
    for name in ["sig", "exp", "v", "signer", "org"] {
        if let Some(v) = query_param(req, name)? {
            // Decoded by `query_param`, and decoded again by the check: encoded back.
            parts.push(format!("{name}={}", super::query_value(&v)));
        }
    }
    Ok(Some(parts.join("&")))
}

fn question(req: &HttpRequest) -> Result<Question, ApiError> {
    let (resource, action, signed_query) = match query_param(req, "resource")? {
        Some(r) => {
            let action = query_param(req, "action")?.unwrap_or_else(|| "read".into());
            (normalized(r), action, own_signed_query(req)?)
        }
        None => {
            let uri = match header_utf8(req, "x-original-uri") {
                Some(uri) => uri,
                None if req.headers().contains_key("x-original-uri") => {
                    return Err(ApiError::BadRequest(
                        "invalid X-Original-URI: not UTF-8 text".into(),
                    ))
                }
                None => {
                    return Err(ApiError::BadRequest(
                        "invalid request: give `resource` (and `action`) or X-Original-URI".into(),
                    ))
                }
            };
            // The path a file server serves ends at a `#` (nginx takes what is before it
            // as the file): judged with what follows, `secret.key#` escaped an exclude
            // of `**/*.key` and `a.key#.md` met an include of `**/*.md`.
            let uri = uri.split('#').next().unwrap_or_default();
            let (path, query) = match uri.split_once('?') {
                Some((p, q)) => (p, Some(q.to_string())),
                None => (uri, None),
            };
            let path = percent_decode(path).ok_or_else(|| {
                ApiError::BadRequest("invalid X-Original-URI: bad percent-encoding".into())
            })?;
            // Normalised before the prefix comes off: `/./artifactory/release-bundles/…`
            // is what nginx serves under `location /artifactory/`, not a repository
            // named `artifactory`.
            let path = normalized(path.to_string());
            let resource = match path.strip_prefix("artifactory/") {
                Some(rest) => rest.to_string(),
                None if path == "artifactory" => String::new(),
                None => path,
            };
            // Without the method the action is unknown: refused, not taken as a read
            // (a proxy configured with `X-Original-URI` alone let every reader write
            // and delete through it).
            let method = header_str(req, "x-original-method").ok_or_else(|| {
                ApiError::BadRequest(
                    "X-Original-URI without X-Original-Method: the proxy must send the request's method (nginx: `proxy_set_header X-Original-Method $request_method;`)".into(),
                )
            })?;
            let action = match method {
                "GET" | "HEAD" | "OPTIONS" | "PROPFIND" => "read",
                // WebDAV's writes to the path itself too (a file server with
                // `dav_methods`); COPY and MOVE also write where their `Destination`
                // says, which is not judged here: refused (400).
                "PUT" | "POST" | "PATCH" | "MKCOL" | "PROPPATCH" | "LOCK" | "UNLOCK" => "write",
                "DELETE" => "delete",
                other => {
                    return Err(ApiError::BadRequest(format!(
                        "invalid X-Original-Method: `{}`",
                        other.escape_debug()
                    )))
                }
            };
            (resource, action.to_string(), query.filter(|q| has_sig(q)))
        }
    };
    if !ACTIONS.contains(&action.as_str()) {
        return Err(ApiError::BadRequest(format!(
            "invalid `action`: `{}` (use {})",
            action.escape_debug(),
            ACTIONS.join(", ")
        )));
    }
    let invalid =
        || ApiError::BadRequest("invalid `resource`: expected `<repository>/<path>`".into());
    if resource.split('/').any(|s| s == "..") || resource.chars().any(|c| c.is_control()) {
        return Err(invalid());
    }
    // Both forms were normalised above (`normalized`).
    let (repo, path) = resource.split_once('/').unwrap_or((&resource, ""));
    if repo.is_empty() {
        return Err(invalid());
    }
    Ok(Question {
        repo: repo.to_string(),
        path: path.to_string(),
        action,
        signed_query,
    })
}

/// `resource` without empty and `.` segments (borrowed when it has none: the common case
/// on the hot path).
/// A resource as decided on: the path a file server serves, without empty and `.`
/// segments (nginx merges slashes and resolves `.` before it opens a file). Judged as
/// sent, `libs/org//secret/a` escaped an exclude of `org/secret/**`, and
/// `./release-bundles/…` read `.` as a repository that `ANY` reaches. The string itself
/// when it has none (the hot path allocates nothing more).
fn normalized(resource: String) -> String {
    match normalize_path(&resource) {
        std::borrow::Cow::Borrowed(_) => resource,
        std::borrow::Cow::Owned(clean) => clean,
    }
}

pub(super) fn normalize_path(resource: &str) -> std::borrow::Cow<'_, str> {
    if !resource.split('/').any(|s| s.is_empty() || s == ".") {
        return std::borrow::Cow::Borrowed(resource);
    }
    let kept: Vec<&str> = (resource.split('/'))
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    std::borrow::Cow::Owned(kept.join("/"))
}

/// The answer's body, serialised straight from borrowed fields (this is the hot path of
/// every `auth_request`: no intermediate JSON tree).
#[derive(serde::Serialize)]
struct Answer<'a> {
    allowed: bool,
    subject: &'a str,
    via: &'a str,
    resource: Resource<'a>,
    action: &'a str,
}

/// `<repo>/<path>` without building the string first.
struct Resource<'a>(&'a str, &'a str);

impl serde::Serialize for Resource<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}/{}", self.0, self.1))
    }
}

fn answer(q: &Question, subject: &str, d: Decision) -> HttpResponse {
    let body = Answer {
        allowed: d.allowed,
        subject,
        via: &d.via,
        resource: Resource(&q.repo, &q.path),
        action: &q.action,
    };
    if d.allowed {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::Forbidden().json(body)
    }
}

async fn authorize(app: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let auth_header = super::extract::authorization(&req);
    // A console session (cookie and CSRF token checked) is a credential like a header.
    let session = match &auth_header {
        None => super::extract::session_caller(&req),
        Some(_) => None,
    };
    let signed = is_signed(&req);
    // Credentials first: an anonymous caller learns nothing, not even what is malformed
    // (unless anonymous access is on: then it is the `anonymous` user).
    if auth_header.is_none()
        && session.is_none()
        && !signed
        && !app.read().directory.anonymous_access
    {
        return Err(crate::auth::AuthError::Missing.into());
    }
    let q = question(&req)?;
    // A signed URL is its own credential (when no other is given): read access to
    // exactly its path, until it expires. One that does not verify is a bad credential
    // (401); a good one asked for more than reading its path is refused (403).
    if auth_header.is_none() && session.is_none() {
        if let Some(query) = q.signed_query.as_deref() {
            // The question's path is already decoded and normalised: the signature must
            // be over exactly it.
            let path = format!("{}/{}", q.repo, q.path);
            match signed_urls::check_signed(&app, &path, query) {
                Ok(()) => {}
                Err(ApiError::Forbidden(why)) => {
                    return Err(ApiError::Unauthorized(format!("invalid signed URL: {why}")))
                }
                Err(e) => return Err(e),
            }
            let ok = q.action == "read";
            let via = if ok {
                "signed URL"
            } else {
                "a signed URL grants read of its own path only"
            };
            let d = Decision {
                allowed: ok,
                via: via.into(),
            };
            return Ok(answer(&q, "signed-url", d));
        }
    }
    let rid = request_id(&req);
    let ip = super::client_ip(&req, &app.config);
    let without_credentials = auth_header.is_none() && session.is_none();
    let principal = match session {
        Some(p) => p,
        None => {
            app.auth
                .authenticate(auth_header, &app.state, &app.writer, &rid.0, ip)
                .await?
        }
    };
    super::extract::note_principal(&req, &principal.username);
    if principal.password_expired {
        return Err(ApiError::Forbidden(
            "the password has expired; change it first".into(),
        ));
    }
    if principal.access_key {
        if query_param(&req, "user")?.is_some() {
            return Err(ApiError::Forbidden(
                "only an admin can ask on behalf of another user".into(),
            ));
        }
        let s = app.view(&req);
        let d = decide_access_key(&s, &principal.username, &q.repo, &q.path, &q.action);
        return Ok(answer(&q, &principal.username, d));
    }
    // `as_of`: who asks is judged now; what they were allowed, then (the grants and
    // memberships of that moment).
    let past = req.extensions().get::<super::AsOf>().map(|a| a.0.clone());
    let index = AppState::decision_index(&app, past.as_ref()).await?;
    let s = app.view(&req);
    let index = current_for(&app, index, past.is_some(), &s);
    // In the past, the caller's account under its name of then: a user renamed since
    // was judged by today's name, which was nobody's then (refused) or another's.
    let principal = match past {
        Some(_) => {
            let mut principal = principal;
            if let Some(name) = account_name_then(&app.read(), &s, &principal.username) {
                principal.username = name;
            }
            principal
        }
        None => principal,
    };
    let caller_admin = admin_at(&principal, past.is_some(), &s);
    let subject = match query_param(&req, "user")? {
        Some(other) => {
            if !principal.admin {
                return Err(ApiError::Forbidden(
                    "only an admin can ask on behalf of another user".into(),
                ));
            }
            let name = crate::domain::normalize_username("user", &other)?;
            // `user=` names today's account; in the past, it is asked about under its
            // name of then (renamed since: today's name was nobody's, or another's).
            let exists_now =
                past.is_some() && app.read().directory.users.contains_key(name.as_str());
            let name = if exists_now {
                match account_name_then(&app.read(), &s, &name) {
                    Some(then) => then,
                    None => {
                        return Err(ApiError::NotFound(format!(
                            "user `{name}` did not exist at that position"
                        )))
                    }
                }
            } else {
                name
            };
            if !s.directory.users.contains_key(name.as_str()) {
                if let Some(key) = s.access_keys.keys.get(&name) {
                    // An expired key signs in to nothing (401): it is allowed nothing. Its
                    // moment is now, or the last event of the past asked about.
                    let moment = if past.is_some() {
                        s.time_ms
                    } else {
                        crate::auth::unix_millis()
                    };
                    let d = if key.key.expiry_ms.is_some_and(|e| e <= moment) {
                        Decision {
                            allowed: false,
                            via: std::borrow::Cow::Borrowed("the access key has expired"),
                        }
                    } else {
                        decide_access_key(&s, &name, &q.repo, &q.path, &q.action)
                    };
                    return Ok(answer(&q, &name, d));
                }
            }
            let Some(user) = s.directory.users.get(name.as_str()) else {
                return Err(ApiError::NotFound(format!("user `{name}` not found")));
            };
            // What that user would get: nothing while it cannot be served (before, the
            // grants answered for a disabled or locked user, one whose password expired,
            // and anonymous with anonymous access off).
            let anonymous = name == gatehouse_projections::ANONYMOUS;
            if let Some(why) = cannot_be_served(&s, user) {
                let d = Decision {
                    allowed: false,
                    via: std::borrow::Cow::Borrowed(why),
                };
                return Ok(answer(&q, &name, d));
            }
            // Anonymous requests are never an admin's, whatever its record says.
            let admin = !anonymous && s.directory.is_admin(&name);
            Subject::new(&s.directory, &name, admin, None)
        }
        None => {
            // "Was it allowed then?" for oneself: a user disabled or locked at that moment
            // could do nothing (as `user=` answers for it).
            if past.is_some() {
                let then = s
                    .directory
                    .users
                    .get(principal.username.as_str())
                    .and_then(|u| refused_then(u));
                if let Some(why) = then {
                    let d = Decision {
                        allowed: false,
                        via: std::borrow::Cow::Borrowed(why),
                    };
                    return Ok(answer(&q, &principal.username, d));
                }
            }
            let scope = scope_at(&principal, past.is_some(), &s);
            Subject::new(
                &s.directory,
                &principal.username,
                caller_admin,
                scope.as_deref(),
            )
        }
    };
    let decision = index.decide(&subject, &q.repo, &q.path, &q.action);
    // Without credentials, what anonymous may not do is a challenge (401), not a
    // refusal: clients that send credentials only when challenged (Maven, curl
    // --anyauth) got a 403 once anonymous access was on, and never signed in.
    if !decision.allowed && without_credentials {
        return Err(crate::auth::AuthError::Missing.into());
    }
    Ok(answer(&q, &subject.username, decision))
}

/// Everything the caller (or, for an admin, `user=`) holds, and why.
/// Why `user` would be refused every request now, if it would be: disabled or locked, its
/// password expired, or anonymous with anonymous access off.
/// Why a user asking about itself in the past was refused everything then: disabled,
/// locked, or its password expired (its own requests were answered 403; the past answer
/// said yes, while `user=` said no).
fn refused_then(user: &gatehouse_projections::User) -> Option<&'static str> {
    match user.status {
        UserStatus::Enabled if user.password_expired => {
            Some("the user's password had expired then")
        }
        UserStatus::Enabled => None,
        UserStatus::Locked => Some("the user was locked then"),
        _ => Some("the user was disabled then"),
    }
}

fn cannot_be_served(
    s: &gatehouse_projections::State,
    user: &gatehouse_projections::User,
) -> Option<&'static str> {
    if user.username == gatehouse_projections::ANONYMOUS {
        return (!s.directory.anonymous_access).then_some("anonymous access is off");
    }
    match user.status {
        UserStatus::Locked => Some("the user is locked"),
        UserStatus::Enabled if user.password_expired => Some("the user's password has expired"),
        UserStatus::Enabled => None,
        _ => Some("the user is disabled"),
    }
}

/// The scope `principal`'s token has in `s`: now, as signed in; in the past, a token its
/// user issued for itself holds what the user held then (its groups, its admin), not
/// what it holds now.
fn scope_at<'a>(
    principal: &'a crate::auth::Principal,
    past: bool,
    s: &gatehouse_projections::State,
) -> Option<std::borrow::Cow<'a, str>> {
    let t = principal.token.as_ref()?;
    if !past || !t.self_issued {
        return Some(std::borrow::Cow::Borrowed(&t.scope));
    }
    let issued = t.issued_scope.as_deref().unwrap_or(&t.scope);
    Some(match s.directory.users.get(principal.username.as_str()) {
        Some(user) => {
            std::borrow::Cow::Owned(crate::auth::own_scope(issued, &s.directory, user).into_owned())
        }
        None => std::borrow::Cow::Borrowed(&t.scope),
    })
}

/// The name that today's user `name` (in `now`) had in `then`, found by its account's
/// creation; `None` when that account did not exist then.
fn account_name_then(
    now: &gatehouse_projections::State,
    then: &gatehouse_projections::State,
    name: &str,
) -> Option<String> {
    let created = now.directory.users.get(name)?.created_seq;
    if then
        .directory
        .users
        .get(name)
        .is_some_and(|u| u.created_seq == created)
    {
        return Some(name.to_owned());
    }
    then.directory
        .users
        .values()
        .find(|u| u.created_seq == created)
        .map(|u| u.username.clone())
}

/// Whether `principal` is an admin in `s`: now, its credentials say; in the past, its
/// token's scope or its user's admin flag as they were then.
fn admin_at(
    principal: &crate::auth::Principal,
    past: bool,
    s: &gatehouse_projections::State,
) -> bool {
    if !past {
        return principal.admin;
    }
    match &principal.token {
        // A token its user issued for itself grants admin only while the user is one:
        // then as now (the literal `applied-permissions/admin` answered admin for a time
        // the user was not, which its password and its user token denied).
        Some(t) if t.self_issued => {
            let scope = t.issued_scope.as_deref().unwrap_or(&t.scope);
            s.directory
                .users
                .get(principal.username.as_str())
                .is_some_and(|user| {
                    let own = crate::auth::own_scope(scope, &s.directory, user);
                    crate::auth::scope_grants_admin(&own, &s.directory, || {
                        s.directory.user_is_admin(user)
                    })
                })
        }
        Some(t) => crate::auth::scope_is_admin(&t.scope, &s.directory, Some(&principal.username)),
        None => s.directory.is_admin(&principal.username),
    }
}

/// The index built for the decision, or, when a permission changed again while it was
/// built (the live state read after it is newer), one of that state: the decision is
/// made with grants and memberships of one moment.
fn current_for(
    app: &AppState,
    index: std::sync::Arc<crate::authorize::PermissionIndex>,
    past: bool,
    s: &gatehouse_projections::State,
) -> std::sync::Arc<crate::authorize::PermissionIndex> {
    if past || index.is_current(s) {
        index
    } else {
        app.permission_index(s)
    }
}

async fn effective(
    app: web::Data<AppState>,
    caller: super::extract::Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let caller = caller.0;
    let past = req.extensions().get::<super::AsOf>().map(|a| a.0.clone());
    let index = AppState::decision_index(&app, past.as_ref()).await?;
    let s = app.view(&req);
    let index = current_for(&app, index, past.is_some(), &s);
    // `user=` naming the caller is the caller, with its credentials' scope (it listed
    // every grant of the user to a token scoped to one group).
    let other = query_param(&req, "user")?
        .map(|u| crate::domain::normalize_username("user", &u))
        .transpose()?
        .filter(|name| *name != caller.username);
    let subject = match other {
        Some(name) => {
            if name != caller.username && !caller.admin {
                return Err(ApiError::Forbidden(
                    "only an admin can list another user's permissions".into(),
                ));
            }
            if let Some(key) = s
                .access_keys
                .keys
                .get(&name)
                .filter(|_| !s.directory.users.contains_key(name.as_str()))
            {
                // An expired key is allowed nothing (as authorize answers for it).
                let moment = if past.is_some() {
                    s.time_ms
                } else {
                    crate::auth::unix_millis()
                };
                if key.key.expiry_ms.is_some_and(|e| e <= moment) {
                    return Ok(HttpResponse::Ok().json(json!({
                        "subject": name,
                        "access_key": true,
                        "entitlements": [],
                        "refused": "the access key has expired",
                    })));
                }
                let entitlements: Vec<_> = s
                    .access_keys
                    .entitlements_by_key
                    .get(&name)
                    .into_iter()
                    .flatten()
                    .filter_map(|id| s.access_keys.entitlements.get(id))
                    .map(|e| crate::views::entitlement(&e.entitlement))
                    .collect();
                return Ok(HttpResponse::Ok().json(json!({
                    "subject": name,
                    "access_key": true,
                    "entitlements": entitlements,
                })));
            }
            let Some(user) = s.directory.users.get(name.as_str()) else {
                return Err(ApiError::NotFound(format!("user `{name}` not found")));
            };
            // Nothing, and why, for a user every request of which would be refused (its
            // grants were listed as held).
            if let Some(why) = cannot_be_served(&s, user) {
                return Ok(HttpResponse::Ok().json(json!({
                    "subject": name,
                    "admin": false,
                    "groups": [],
                    "permissions": [],
                    "project_roles": [],
                    "refused": why,
                })));
            }
            // Anonymous is never an admin, whatever its groups say (as authorize judges).
            let admin = name != gatehouse_projections::ANONYMOUS && s.directory.is_admin(&name);
            Subject::new(&s.directory, &name, admin, None)
        }
        None => {
            // Oneself in the past: disabled or locked then, allowed nothing then (as
            // authorize answers it).
            let then = past.is_some().then(|| {
                s.directory
                    .users
                    .get(caller.username.as_str())
                    .and_then(|u| refused_then(u))
            });
            if let Some(why) = then.flatten() {
                return Ok(HttpResponse::Ok().json(json!({
                    "subject": caller.username,
                    "admin": false,
                    "groups": [],
                    "permissions": [],
                    "project_roles": [],
                    "refused": why,
                })));
            }
            // An admin then or not, as `authorize?as_of` judges it (it was the caller's
            // admin flag of now).
            let scope = scope_at(&caller, past.is_some(), &s);
            Subject::new(
                &s.directory,
                &caller.username,
                admin_at(&caller, past.is_some(), &s),
                scope.as_deref(),
            )
        }
    };
    Ok(HttpResponse::Ok().json(json!({
        "subject": subject.username,
        "admin": subject.admin,
        "groups": subject.groups,
        "permissions": crate::authorize::effective(&s, &subject),
        "project_roles": crate::authorize::effective_project_roles(&index, &subject),
    })))
}

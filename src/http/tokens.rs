//! Access tokens (seed 004 "Access Tokens", seed 003): create, refresh, list, get, revoke.

use super::error::ApiError;
use super::extract::{Caller, FormOrJson, MaybeCaller, RequestId};
use super::{query_param, resource, written, AppState};
use crate::auth::{unix_secs, Principal};
use crate::domain::{self, Command};
use crate::json::Json;
use crate::tokens::{self, Spec};
use actix_web::http::header::ContentType;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

/// In a scope: see `http::configure`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/access/api/v1/tokens")
            .wrap(actix_web::middleware::from_fn(oauth_error_fields))
            .service(
                resource("")
                    .route(web::post().to(create))
                    .route(web::get().to(list)),
            )
            // Before `{id}`, which would take `revoke` for a token id.
            .service(
                resource("/revoke")
                    .route(web::delete().to(revoke_by_value))
                    .route(web::post().to(revoke_by_value)),
            )
            .service(
                resource("/{id}")
                    .route(web::get().to(get))
                    .route(web::delete().to(revoke)),
            ),
    );
}

/// OAuth 2.0's error fields (RFC 6749, 5.2) beside `errors` in a token endpoint's
/// client errors: `error` and `error_description`, which the client libraries read
/// (pyartifactory said "Unknown error" for every refusal, dohq only "403 Client Error:
/// Forbidden"). Also on errors of the extractors (a wrong password), which are answers
/// by the time they come here.
pub(super) async fn oauth_error_fields<B: actix_web::body::MessageBody + 'static>(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::EitherBody<B>>, actix_web::Error> {
    let res = next.call(req).await?;
    let status = res.status();
    // A token answered passes as it is (its body is not boxed again).
    if !status.is_client_error() {
        return Ok(res.map_into_left_body());
    }
    let json = res
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    if !json {
        return Ok(res.map_into_left_body());
    }
    let (req, res) = res.into_parts();
    let (res, body) = res.into_parts();
    let bytes = actix_web::body::to_bytes(body)
        .await
        .map_err(|e| actix_web::error::ErrorInternalServerError(e.into().to_string()))?;
    let mut value: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) => {
            return Ok(
                actix_web::dev::ServiceResponse::new(req, res.set_body(bytes))
                    .map_into_boxed_body()
                    .map_into_right_body(),
            )
        }
    };
    let message = value["errors"][0]["message"].as_str().map(str::to_string);
    if let (Some(message), Some(body)) = (message, value.as_object_mut()) {
        let error = match status.as_u16() {
            401 => "invalid_client",
            403 => "unauthorized_client",
            _ => "invalid_request",
        };
        body.insert("error".into(), error.into());
        body.insert("error_description".into(), message.into());
    }
    let bytes = serde_json::to_vec(&value).unwrap_or_else(|_| bytes.to_vec());
    Ok(
        actix_web::dev::ServiceResponse::new(req, res.set_body(bytes))
            .map_into_boxed_body()
            .map_into_right_body(),
    )
}

const USER_SCOPE: &str = "applied-permissions/user";
const ADMIN_SCOPE: &str = "applied-permissions/admin";
/// Seed 003: "system:livelogs:r" lets a token read live logs. Gatehouse has no live-log
/// viewer, so the scope is accepted (from admins) and grants nothing else here.
const LIVELOGS_SCOPE: &str = "system:livelogs:r";
const MAX_SCOPE_CHARS: usize = 500;
const MAX_AUDIENCE_CHARS: usize = 255;
const MAX_DESCRIPTION_CHARS: usize = 1024;
/// A hundred years: longer is a typo (and would overflow a timestamp).
const MAX_EXPIRES_IN: u64 = 100 * 365 * 24 * 3600;

/// A caller signed in with a token may mint only what that token itself could do: a
/// groups-only token or a peer's token must not become a full identity token here.
/// The active signing key's private half is not on this node (another node of a shared
/// log made it, and they share no master key): said in the answer and the log, not as a
/// bare 500.
pub(super) fn no_private_key(kid: &str) -> ApiError {
    tracing::error!(
        kid,
        "cannot sign a token: this node does not hold the private half of the active \
         signing key (nodes of a shared log need the same --master-key-file)"
    );
    ApiError::Unavailable(format!(
        "this node does not hold the private half of the active signing key `{kid}` \
         (nodes of a shared log need the same master key file)"
    ))
}

fn token_may_mint(caller: &Principal) -> Result<(), ApiError> {
    match &caller.token {
        Some(t) if !t.local => Err(ApiError::Forbidden(
            "a token from another server cannot create tokens here".into(),
        )),
        Some(t) if !caller.admin && !crate::scope::has(&t.scope, USER_SCOPE) => Err(
            ApiError::Forbidden("this token's scope does not allow creating tokens".into()),
        ),
        _ => Ok(()),
    }
}
const FIELDS: &[&str] = &[
    "grant_type",
    "username",
    "scope",
    "expires_in",
    "refreshable",
    "description",
    "audience",
    "include_reference_token",
    "force_revocable",
    "refresh_token",
    "access_token",
];

/// Check the scope's syntax: space-separated `applied-permissions/{user,admin,groups:a,b}`.
fn parse_scope(scope: &str) -> Result<(), ApiError> {
    if scope.chars().count() > MAX_SCOPE_CHARS {
        return Err(ApiError::BadRequest(format!(
            "invalid `scope`: at most {MAX_SCOPE_CHARS} characters"
        )));
    }
    if crate::scope::parts(scope).next().is_none() {
        return Err(ApiError::BadRequest(
            "invalid `scope`: must not be empty".into(),
        ));
    }
    for part in crate::scope::parts(scope) {
        if part == USER_SCOPE || part == ADMIN_SCOPE || part == LIVELOGS_SCOPE {
            continue;
        }
        if !crate::scope::balanced(part) {
            return Err(ApiError::BadRequest(format!(
                "invalid `scope`: `{}` opens a quote it does not close",
                part.escape_debug()
            )));
        }
        match part.strip_prefix(crate::scope::GROUPS) {
            Some(groups) if !groups.is_empty() => {
                for g in crate::scope::group_names(groups) {
                    // A trailing comma, or a space after one (which ends the scope
                    // token), leaves an empty group name: say so, not "empty scope".
                    // A name with a space or a comma is written in double quotes.
                    if g.is_empty() {
                        return Err(ApiError::BadRequest(format!(
                            "invalid `scope`: `{}` names an empty group (groups are separated by commas; a name with a space or a comma goes in double quotes)",
                            part.escape_debug()
                        )));
                    }
                    domain::validate_group_name("scope", g)?;
                }
            }
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "invalid `scope`: unknown scope `{}` (use applied-permissions/user, applied-permissions/admin, applied-permissions/groups:<g1>,<g2> or system:livelogs:r)",
                    part.escape_debug()
                )))
            }
        }
    }
    Ok(())
}

/// The answer to a token issue or refresh (written with [`crate::json`]: built as a
/// `Value` and serialised, it was a tenth of what a token issue spent beside signing),
/// its keys in the order the `Value`, a sorted map, wrote them.
fn token_response(m: &tokens::Minted, now: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(m.access_token.len() + 256);
    let mut o = Json::open(&mut out);
    o.str("access_token", Some(&m.access_token));
    o.u64(
        "expires_in",
        m.record.expires_at.map(|e| e.saturating_sub(now)),
    );
    o.str("reference_token", m.reference_token.as_deref());
    o.str("refresh_token", m.refresh_token.as_deref());
    o.str("scope", Some(&m.record.scope));
    o.str("token_id", Some(&m.record.token_id));
    o.str("token_type", Some("Bearer"));
    o.close();
    out
}

pub(super) async fn create(
    app: web::Data<AppState>,
    caller: MaybeCaller,
    rid: RequestId,
    req: HttpRequest,
    FormOrJson(fields): FormOrJson,
) -> Result<HttpResponse, ApiError> {
    let form = FormOrJson(fields);
    // `project_key` (JFrog's project-scoped tokens, with `applied-permissions/roles:`
    // scopes, which are not kept here): a string, accepted and named as ignored.
    form.only(&req, FIELDS);
    form.str("project_key")?;
    let mut answer = match form.str("grant_type")? {
        None | Some("client_credentials") => {
            let caller = caller
                .0
                .ok_or_else(|| ApiError::Unauthorized("authentication is required".into()))?;
            issue(&app, &caller, &rid, &form).await
        }
        Some("refresh_token") => refresh(&app, caller.0.as_ref(), &rid, &form).await,
        Some(other) => Err(ApiError::BadRequest(format!(
            "invalid `grant_type`: `{}` (use client_credentials or refresh_token)",
            other.escape_debug()
        ))),
    }?;
    // The parameters are read from the body, as JFrog reads them; a query string is not
    // (`curl -X POST '…/tokens?username=ci&scope=…'` got a token for its caller, with the
    // default scope, without a word): said.
    if let Some(names) = query_names(req.query_string()) {
        if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&format!(
            "the query string ({names}) is not read: token parameters go in the body (form or JSON)"
        )) {
            answer.headers_mut().append(
                actix_web::http::header::HeaderName::from_static(NOTICE_HEADER),
                v,
            );
        }
    }
    Ok(answer)
}

/// The names in a query string, quoted and comma-separated for a notice (at most five;
/// `None` when there is none).
fn query_names(query: &str) -> Option<String> {
    let names: Vec<String> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, _)| format!("`{}`", k.escape_default()))
        .take(5)
        .collect();
    (!names.is_empty()).then(|| names.join(", "))
}

/// The fields a refresh by the token pair alone may carry (seed 003: "if only the access
/// token and the refresh token are provided (and no other parameters), this pair is used
/// for authentication").
const PAIR_FIELDS: &[&str] = &["grant_type", "refresh_token", "access_token"];

pub(super) async fn issue(
    app: &AppState,
    caller: &Principal,
    rid: &RequestId,
    form: &FormOrJson,
) -> Result<HttpResponse, ApiError> {
    let cfg = &app.config;
    token_may_mint(caller)?;
    let username = match form.str("username")? {
        Some(u) => domain::normalize_username("username", u)?,
        None => caller.username.clone(),
    };
    let scope = form.str("scope")?.unwrap_or(USER_SCOPE);
    parse_scope(scope)?;
    let scope = single_spaced(scope);
    if !caller.admin {
        if username != caller.username {
            return Err(ApiError::Forbidden(
                "only an admin can create tokens for another user".into(),
            ));
        }
        check_non_admin_scope(app, caller, &scope)?;
    }
    if form
        .unsigned("expires_in")?
        .is_some_and(|e| e > MAX_EXPIRES_IN)
    {
        return Err(ApiError::BadRequest(format!(
            "invalid `expires_in`: at most {MAX_EXPIRES_IN} seconds (0 = never expires)"
        )));
    }
    // The default set through `config/token/default_expiry`, else the configured one.
    let mut default_expiry =
        crate::domain::settings::default_token_expiry(&app.read(), cfg.default_expiry);
    // A default the non-admin limit refuses (0, "never", or above `max-expiry`: set
    // through the API or the file before the limit was) is the limit for them: every
    // non-admin request without `expires_in` was refused (403) for a value they did not
    // choose.
    if !caller.admin
        && cfg.max_expiry > 0
        && (default_expiry == 0 || default_expiry > cfg.max_expiry)
    {
        default_expiry = cfg.max_expiry;
    }
    let expires_in = match form.unsigned("expires_in")? {
        Some(0) => None,
        Some(n) => Some(n),
        None if default_expiry == 0 => None,
        None => Some(default_expiry),
    };
    if !caller.admin && cfg.max_expiry > 0 && expires_in.is_none_or(|e| e > cfg.max_expiry) {
        return Err(ApiError::Forbidden(format!(
            "`expires_in` must be between 1 and {} seconds for non-admin tokens",
            cfg.max_expiry
        )));
    }
    // Seed 004: "when disabled, all the user tokens will be created as non refreshable"
    // -- JFrog answers 200 without a refresh token, for admins too; the answer here says
    // so in `X-Gatehouse-Notice` rather than leaving the caller to notice the absence.
    let asked_refreshable = form.boolean("refreshable")?.unwrap_or(false);
    let refreshable = asked_refreshable && cfg.allow_refreshable;
    let description = form.str("description")?;
    let audience = form.str("audience")?.unwrap_or("*@*");
    check_text_fields(description, audience)?;
    let reference = form.boolean("include_reference_token")?.unwrap_or(false);
    let force_revocable = form.boolean("force_revocable")?.unwrap_or(false);
    let (service_id, kid, user_seq) = {
        let s = app.read();
        (
            s.service_id.clone().unwrap_or_default(),
            s.keys.active.clone(),
            s.directory
                .users
                .get(username.as_str())
                .map(|u| u.created_seq),
        )
    };
    let user_exists = user_seq.is_some();
    if !user_exists && crate::scope::has(&scope, USER_SCOPE) {
        return Err(ApiError::BadRequest(format!(
            "invalid `username`: user `{username}` does not exist (tokens for other identities need a group or admin scope)"
        )));
    }
    let kid = kid.ok_or_else(|| ApiError::Unavailable("no signing key yet".into()))?;
    let revocable = force_revocable
        || refreshable
        || reference
        || expires_in.is_none_or(|e| e >= cfg.revocable_expiry_threshold);
    let now = unix_secs();
    let spec = Spec {
        service_id: &service_id,
        subject: &username,
        transient: !user_exists,
        scope: &scope,
        audience,
        description,
        expires_in,
        refreshable,
        reference,
        revocable,
        now,
        // Seed 004: "we will add the force_revocable flag to the token's extension".
        ext: if force_revocable {
            vec![("force_revocable", "true".to_string())]
        } else {
            vec![]
        },
        user_seq,
        // For itself: what it grants beyond the user's own rights lasts only while the
        // user holds them (a demoted admin's admin token, a group left).
        self_issued: user_exists && username == caller.username,
    };
    let minted = tokens::mint(&app.keys, &kid, &spec).ok_or_else(|| no_private_key(&kid))?;
    let committed = app
        .submit(
            Command::IssueToken(minted.record.clone()),
            &caller.username,
            rid,
        )
        .await?;
    let mut response = HttpResponse::Ok();
    // The token is shown once: kept by no cache.
    response.insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"));
    if asked_refreshable && !refreshable {
        response.insert_header((NOTICE, REFRESHABLE_DISABLED));
    } else if form.0.is_empty() && caller.admin {
        // py-jfrog-client's generated `create_token` sends an empty JSON body whatever
        // it was given: an admin's script asking a token for a CI user got its own
        // admin-subject token. Valid (the seed's defaults), so said, not refused.
        response.insert_header((NOTICE, EMPTY_REQUEST));
    }
    // Valid, but a token that does nothing here: said at once, not found out when the
    // token is first used (a typo in a group name, an audience of another service).
    for notice in useless_here(&app.read(), &scope, audience, &service_id) {
        response.append_header((NOTICE, notice));
    }
    // A user whose password has expired: its tokens stop until it changes it (an admin
    // issuing one for it got a token refused at its first use, without a word).
    if app
        .read()
        .directory
        .users
        .get(username.as_str())
        .is_some_and(|u| u.password_expired)
    {
        response.append_header((
            NOTICE,
            format!(
                "the password of `{}` has expired: the token is refused until the user changes it",
                username.escape_default()
            ),
        ));
    }
    Ok(written(
        response
            .content_type(ContentType::json())
            .body(token_response(&minted, now)),
        committed,
    ))
}

/// `scope`'s parts joined by one space, as records keep it: borrowed when it is so
/// already (as nearly every request's is), rather than split and joined again.
fn single_spaced(scope: &str) -> std::borrow::Cow<'_, str> {
    if scope
        .split(' ')
        .all(|part| !part.is_empty() && !part.contains(char::is_whitespace))
    {
        std::borrow::Cow::Borrowed(scope)
    } else {
        std::borrow::Cow::Owned(crate::scope::parts(scope).collect::<Vec<_>>().join(" "))
    }
}

const NOTICE: &str = "X-Gatehouse-Notice";
const NOTICE_HEADER: &str = "x-gatehouse-notice";

/// What of a token's scope and audience means nothing on this server: groups that do not
/// exist (an admin may name any; a token for them grants nothing until they do), and an
/// audience that leaves this server out (the token is for another service).
fn useless_here(
    s: &gatehouse_projections::State,
    scope: &str,
    audience: &str,
    service_id: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for part in crate::scope::parts(scope) {
        let Some(list) = part.strip_prefix(crate::scope::GROUPS) else {
            continue;
        };
        for g in crate::scope::group_names(list) {
            if out.len() >= 5 {
                break;
            }
            if !s.directory.groups.contains_key(g) {
                out.push(format!(
                    "the scope names the group `{}`, which does not exist: the token grants nothing through it until it does",
                    g.escape_default()
                ));
            }
        }
    }
    if !crate::auth::audience_matches(audience, service_id) {
        out.push(format!(
            "the audience `{}` does not include this server (`{service_id}`): the token will be refused here",
            audience.escape_default()
        ));
    }
    out
}
const EMPTY_REQUEST: &str =
    "the request gave no parameters (an empty body): the token is for the caller itself, with the default scope and expiry";
const REFRESHABLE_DISABLED: &str =
    "refreshable tokens are disabled on this server (allow-refreshable = false): the token is not refreshable";

/// Seed 003: "non-admin users can only set the scope to a subset of the groups to which
/// they belong"; the admin scope and `system:livelogs:r` are for admins.
fn check_non_admin_scope(app: &AppState, caller: &Principal, scope: &str) -> Result<(), ApiError> {
    let s = app.read();
    let mine = s
        .directory
        .users
        .get(caller.username.as_str())
        .map(|u| &u.groups);
    for part in crate::scope::parts(scope) {
        if part == USER_SCOPE {
            continue;
        }
        let Some(groups) = part.strip_prefix(crate::scope::GROUPS) else {
            return Err(ApiError::Forbidden(format!(
                "only an admin can create tokens with the scope `{part}`"
            )));
        };
        for g in crate::scope::group_names(groups) {
            if !mine.is_some_and(|m| m.contains(g)) {
                return Err(ApiError::Forbidden(format!(
                    "non-admin users can scope a token only to groups they belong to; `{}` is not one of yours",
                    g.escape_debug()
                )));
            }
        }
    }
    Ok(())
}

/// Refresh (seed 003): with the pair alone (`access_token` and `refresh_token`, nothing
/// else) the pair is the credential; with any other parameter the caller must be an
/// admin, and the parameters shape the new token; otherwise the caller must be the
/// token's user (or the token itself, as bearer) or an admin.
pub(super) async fn refresh(
    app: &AppState,
    caller: Option<&Principal>,
    rid: &RequestId,
    form: &FormOrJson,
) -> Result<HttpResponse, ApiError> {
    let refresh_token = form.string("refresh_token")?.ok_or_else(|| {
        ApiError::BadRequest(
            "invalid `refresh_token`: required for grant_type=refresh_token".into(),
        )
    })?;
    let access_token = form.string("access_token")?;
    let extra: Vec<&String> = form
        .0
        .iter()
        .filter(|(k, v)| !PAIR_FIELDS.contains(&k.as_str()) && !v.is_null())
        .map(|(k, _)| k)
        .collect();
    if !extra.is_empty() {
        match caller {
            None => {
                return Err(ApiError::Unauthorized(
                    "authentication is required: a refresh with other parameters than the token pair must be made by an admin".into(),
                ))
            }
            Some(c) if !c.admin => {
                return Err(ApiError::Forbidden(format!(
                    "only an admin can refresh a token with other parameters than the token pair (got `{}`)",
                    extra.iter().map(|k| k.as_str()).collect::<Vec<_>>().join("`, `")
                )))
            }
            // What may not create a token may not make one by a refresh either: another
            // server's admin token turned any refreshable pair into a local admin token.
            Some(c) => token_may_mint(c)?,
        }
    }
    let now = unix_secs();
    // Unknown here may be only not applied here yet (issued on another node).
    let known = app
        .read()
        .tokens
        .by_refresh_hash
        .contains_key(&tokens::hash_hex(&refresh_token));
    if !known {
        app.caught_up().await;
    }
    let (old, service_id, kid) = {
        let s = app.read();
        let old = s
            .tokens
            .by_refresh_hash
            .get(&tokens::hash_hex(&refresh_token))
            .and_then(|id| s.tokens.by_id.get(id.as_str()))
            .cloned()
            .ok_or_else(|| {
                // A pair another server issued is that server's to refresh (seed 004's
                // "created by a different instance"): said so, read from the access
                // token's unverified issuer (it grants nothing, it only words the 400).
                let service_id = s.service_id.as_deref().unwrap_or_default();
                let issuer = access_token
                    .as_deref()
                    .and_then(|a| crate::auth::jwt::parse(a).ok())
                    .map(|u| u.into_claims().iss)
                    .filter(|iss| !iss.is_empty() && iss != service_id);
                match issuer {
                    Some(iss) => ApiError::BadRequest(format!(
                        "invalid `refresh_token`: the token was issued by `{}`; refresh it there",
                        iss.escape_default()
                    )),
                    None => ApiError::BadRequest(
                        "invalid `refresh_token`: unknown, revoked or already used".into(),
                    ),
                }
            })?;
        if let Some(issuer) = s.federation.token_issuers.get(&old.token_id) {
            // A federated record: only the server that issued the token refreshes it.
            return Err(ApiError::BadRequest(format!(
                "invalid `refresh_token`: the token was issued by `{issuer}`; refresh it there"
            )));
        }
        // A certificate reset ends every earlier token (seed 003), their refresh too (a
        // pair from before the reset minted a fresh token with the new key).
        if !app.keys.still_trusted(&s, &old.kid) {
            return Err(ApiError::BadRequest(
                "invalid `refresh_token`: its token's signing key was retired (the certificate was reset)"
                    .into(),
            ));
        }
        (
            old,
            s.service_id.clone().unwrap_or_default(),
            s.keys.active.clone(),
        )
    };
    // The pair authenticates: the access token must be the one this refresh token
    // belongs to (compared by hash; it may have expired, within the grace period).
    let pair = match &access_token {
        Some(a) if tokens::hash_hex(a) == old.access_hash => true,
        Some(_) => {
            return Err(ApiError::BadRequest(
                "invalid `access_token`: it is not the token this refresh token belongs to".into(),
            ))
        }
        None => false,
    };
    let admin = caller.is_some_and(|c| c.admin);
    if !pair && !admin {
        let caller = caller
            .ok_or_else(|| ApiError::Unauthorized("authentication is required (or give the token pair: `access_token` and `refresh_token`)".into()))?;
        let is_the_token = caller
            .token
            .as_ref()
            .is_some_and(|t| t.local && t.token_id == old.token_id);
        if !is_the_token {
            if old.subject != caller.username {
                return Err(ApiError::Forbidden(
                    "the refresh token belongs to another user".into(),
                ));
            }
            token_may_mint(caller)?;
        }
    }
    let (user_seq, enabled, password_expired) = app
        .read()
        .directory
        .users
        .get(old.subject.as_str())
        .map_or((None, true, false), |u| {
            (
                Some(u.created_seq),
                u.status == gatehouse_schemas::UserStatus::Enabled,
                u.password_expired,
            )
        });
    // Said as what it is, not as a bad `username` the caller never sent.
    if !enabled {
        return Err(ApiError::Forbidden(format!(
            "user `{}` is disabled or locked: its tokens are not refreshed",
            old.subject
        )));
    }
    // As an issue is refused then (the new pair would not work until the password is
    // changed, and the refresh outlived the expiry).
    if password_expired {
        return Err(ApiError::Forbidden(format!(
            "the password of `{}` has expired: change it, then refresh",
            old.subject
        )));
    }
    // As at sign-in: a token made for an identity that was no user stays that identity's;
    // a refresh after a user of that name was created handed out a pair that never worked.
    if old.transient && user_seq.is_some() {
        return Err(ApiError::BadRequest(format!(
            "invalid `refresh_token`: the token was issued to a transient identity `{}`; a user of that name was created since",
            old.subject
        )));
    }
    if old
        .expires_at
        .is_some_and(|e| e + app.config.refresh_grace_period < now)
    {
        return Err(ApiError::BadRequest(
            "invalid `refresh_token`: the token expired beyond the grace period".into(),
        ));
    }
    // An admin's parameters shape the new token; the subject stays.
    if let Some(u) = form.string("username")? {
        if domain::normalize_username("username", &u)? != old.subject {
            return Err(ApiError::BadRequest(format!(
                "invalid `username`: a refreshed token keeps its subject `{}`",
                old.subject
            )));
        }
    }
    let sent_scope = form.string("scope")?;
    let scope = match &sent_scope {
        Some(sc) => {
            parse_scope(sc)?;
            single_spaced(sc).into_owned()
        }
        None => old.scope.clone(),
    };
    // The issue's rule for an identity that is not a user here (a refresh with an admin's
    // `scope` minted a user-scoped token for no user).
    if user_seq.is_none() && crate::scope::has(&scope, USER_SCOPE) {
        return Err(ApiError::BadRequest(format!(
            "invalid `scope`: user `{}` does not exist (tokens for other identities need a group or admin scope)",
            old.subject
        )));
    }
    // A scope an admin sends for someone else's token is the admin's to give: the new
    // token is no longer the subject's own (which would cut it to what the subject holds).
    let self_issued = old.self_issued
        && !(sent_scope.is_some() && caller.is_some_and(|c| c.admin && c.username != old.subject));
    // A token its subject issued for itself is refreshed with what the subject holds now
    // (a refresh restored a demoted admin's admin token, which could then re-promote it).
    let scope = if self_issued {
        let s = app.read();
        match s.directory.users.get(old.subject.as_str()) {
            Some(user) => crate::auth::own_scope(&scope, &s.directory, user).into_owned(),
            None => scope,
        }
    } else {
        scope
    };
    if scope.trim().is_empty() {
        return Err(ApiError::Forbidden(
            "the token's scope is no longer held by its user (admin or group membership ended): nothing to refresh"
                .into(),
        ));
    }
    if form
        .unsigned("expires_in")?
        .is_some_and(|e| e > MAX_EXPIRES_IN)
    {
        return Err(ApiError::BadRequest(format!(
            "invalid `expires_in`: at most {MAX_EXPIRES_IN} seconds (0 = never expires)"
        )));
    }
    let mut expires_in = match form.unsigned("expires_in")? {
        Some(0) => None,
        Some(n) => Some(n),
        None => old.expires_at.map(|e| e.saturating_sub(old.issued_at)),
    };
    // A refresh made without an admin takes the non-admin limit in force now (seed 004:
    // with `max-expiry` set "non-expirable tokens are forbidden"): a pair issued before
    // the limit refreshed for ever into tokens that never expire.
    let max = app.config.max_expiry;
    if max > 0 && !caller.is_some_and(|c| c.admin) && expires_in.is_none_or(|e| e > max) {
        expires_in = Some(max);
    }
    let sent_description = form.string("description")?;
    let sent_audience = form.string("audience")?;
    // What this request sends, by the rules of an issue (what the old token had stays
    // as it was: older tokens were issued under looser rules).
    check_text_fields(
        sent_description.as_deref(),
        sent_audience.as_deref().unwrap_or("*@*"),
    )?;
    let description = sent_description.or(old.description.clone());
    let audience = sent_audience.unwrap_or(old.audience.clone());
    let asked_refreshable = form.boolean("refreshable")?.unwrap_or(true);
    let refreshable = asked_refreshable && app.config.allow_refreshable;
    let reference = form
        .boolean("include_reference_token")?
        .unwrap_or(old.reference_hash.is_some());
    let kid = kid.ok_or_else(|| ApiError::Unavailable("no signing key yet".into()))?;
    let spec = Spec {
        service_id: &service_id,
        subject: &old.subject,
        transient: old.transient,
        scope: &scope,
        audience: &audience,
        description: description.as_deref(),
        expires_in,
        refreshable,
        reference,
        revocable: true,
        now,
        // Carried on (seed 004's flag in the `ext`; the refreshed token lost it).
        ext: if old.force_revocable {
            vec![("force_revocable", "true".to_string())]
        } else {
            vec![]
        },
        user_seq,
        self_issued,
    };
    let minted = tokens::mint(&app.keys, &kid, &spec).ok_or_else(|| no_private_key(&kid))?;
    let cmd = Command::RefreshToken {
        old_token_id: old.token_id.clone(),
        issued: minted.record.clone(),
    };
    let actor = caller.map_or(old.subject.as_str(), |c| c.username.as_str());
    let committed = app.submit(cmd, actor, rid).await?;
    let mut response = HttpResponse::Ok();
    // The chain ends here (refreshable tokens switched off since the last refresh): said,
    // as at create, not left for the client to find the refresh token missing.
    if asked_refreshable && !refreshable {
        response.insert_header((NOTICE, REFRESHABLE_DISABLED));
    }
    Ok(written(
        super::no_store(
            response
                .content_type(ContentType::json())
                .body(token_response(&minted, now)),
        ),
        committed,
    ))
}

pub(super) async fn list(
    app: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let description = query_param(&req, "description")?;
    let refreshable = match query_param(&req, "refreshable")?.as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "invalid `refreshable`: `{}` (use true or false)",
                other.escape_debug()
            )))
        }
    };
    let matches_description = move |d: Option<&String>| match &description {
        None => true,
        Some(pattern) => match pattern.strip_suffix('*') {
            Some(prefix) => d.is_some_and(|d| d.starts_with(prefix)),
            None => d.is_some_and(|d| d == pattern),
        },
    };
    let s = app.view(&req);
    // Seed 004: "403 – The authenticated principal has no permissions to get tokens
    // (not a user or not an admin token)": a transient identity's token is no user's.
    if !caller.0.admin && !s.directory.users.contains_key(caller.0.username.as_str()) {
        return Err(ApiError::Forbidden(format!(
            "`{}` is not a user here: only users and admins list tokens",
            caller.0.username
        )));
    }
    // A groups-only token (a CI job's) or a peer's token is not the user: it listed every
    // token of the user, descriptions included.
    if !caller.0.admin && !caller.0.whole_identity() {
        return Err(ApiError::Forbidden(
            "this token's scope does not allow listing the user's tokens (sign in as the user)"
                .into(),
        ));
    }
    let large = s.tokens.by_id.len() > super::LARGE_LIST;
    let (admin, username) = (caller.0.admin, caller.0.username.clone());
    let ended: std::collections::HashSet<String> = s
        .keys
        .retired
        .iter()
        .filter(|kid| ended_by_reset(&app, &s, kid))
        .cloned()
        .collect();
    let body = super::read_off_worker(s, large, move |s| {
        let service_id = s.service_id.clone().unwrap_or_default();
        let tokens: Vec<_> = s
            .tokens
            .by_id
            .values()
            .filter(|t| !ended.contains(t.kid.as_str()))
            .filter(|t| admin || (t.subject == username && !t.transient))
            .filter(|t| refreshable.is_none_or(|r| t.refreshable == r))
            .filter(|t| matches_description(t.description.as_ref()))
            .map(|t| crate::views::token(t, issuer_of(s, t, &service_id)))
            .collect();
        serde_json::to_vec(&json!({ "tokens": tokens }))
    })
    .await?
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(body))
}

/// Whether `kid` is one of this server's keys that a certificate reset retired and that
/// is not trusted again: every token signed with one is ended (seed 003, "resetting the
/// certificate will effectively revoke all of the tokens"), so lists and reads leave it
/// out as they leave out a revoked one (they listed tokens no request could use). The
/// records stay: trusting the old certificate again brings the tokens back.
fn ended_by_reset(app: &AppState, s: &gatehouse_projections::State, kid: &str) -> bool {
    s.keys.retired.contains(kid) && !app.keys.still_trusted(s, kid)
}

/// `me` means the token the caller signed in with.
/// `reading`: a peer's token (federation) reads its own record here; it is revoked where
/// it was issued.
fn resolve_id(caller: &Principal, id: &str, reading: bool) -> Result<String, ApiError> {
    if id != "me" {
        return Ok(id.to_string());
    }
    match &caller.token {
        Some(t) if t.local || reading => Ok(t.token_id.clone()),
        Some(_) => Err(ApiError::BadRequest(
            "the token was issued by another server and cannot be managed here".into(),
        )),
        None => Err(ApiError::BadRequest(
            "`me` refers to the token you signed in with; this request used a password".into(),
        )),
    }
}

async fn get(
    app: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = resolve_id(&caller.0, &path, true)?;
    let s = app.view(&req);
    let own = s.service_id.as_deref().unwrap_or("");
    let found = s.tokens.by_id.get(id.as_str());
    if found.is_some_and(|t| ended_by_reset(&app, &s, &t.kid)) {
        return Err(ApiError::NotFound(format!(
            "token `{id}` not found: its signing key was retired (the certificate was reset)"
        )));
    }
    let Some(t) = found else {
        // A short-lived token that is not revocable has no record (seed 004: tokens
        // under the revocable threshold): `me` answers from the token itself, which
        // the server just verified, rather than "not found" for the token in hand.
        if let Some(cred) = caller.0.token.as_ref().filter(|_| path.as_str() == "me") {
            // A trusted peer's token names its issuer (it was answered as this
            // server's).
            let issuer = cred.issuer.as_deref().unwrap_or(own);
            let mut v = json!({
                "token_id": cred.token_id,
                "subject": format!("{issuer}/users/{}", caller.0.username),
                "issued_at": cred.issued_at,
                "issuer": issuer,
                "refreshable": false,
                "scope": cred.scope,
            });
            if let Some(e) = cred.expires_at {
                v["expiry"] = json!(e);
            }
            return Ok(HttpResponse::Ok().json(v));
        }
        return Err(ApiError::NotFound(format!(
            "token `{id}` not found (a token that is not revocable is not recorded: ask for `me` with it)"
        )));
    };
    // A token reads itself, whoever it was issued for (a CI job's transient one too).
    let itself = is_itself(&caller.0, &id);
    if !caller.0.admin && !itself && (t.subject != caller.0.username || t.transient) {
        return Err(ApiError::Forbidden(
            "only an admin can read other users' tokens".into(),
        ));
    }
    Ok(HttpResponse::Ok().json(crate::views::token(t, issuer_of(&s, t, own))))
}

/// The server that issued `t`: a peer for a token replicated here (federation), this
/// server otherwise (a replicated token was shown as this server's own).
fn issuer_of<'a>(
    s: &'a gatehouse_projections::State,
    t: &gatehouse_schemas::TokenIssued,
    own: &'a str,
) -> &'a str {
    s.federation
        .token_issuers
        .get(&t.token_id)
        .map_or(own, |issuer| issuer.as_str())
}

async fn revoke(
    app: web::Data<AppState>,
    caller: Caller,
    rid: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = resolve_id(&caller.0, &path, false)?;
    // Unknown here may be only not applied here yet (issued on another node).
    let known = app.read().tokens.by_id.contains_key(id.as_str());
    if !known {
        app.caught_up().await;
    }
    let (owner, issuer, non_revocable) = {
        let s = app.read();
        (
            // A transient identity's token is no user's own (a user created later by
            // that name does not own it).
            s.tokens
                .by_id
                .get(id.as_str())
                .map(|t| (!t.transient).then(|| t.subject.clone())),
            s.federation.token_issuers.get(&id).cloned(),
            crate::tokens::id_marks_non_revocable(&id),
        )
    };
    // Seed 004: "400 - If the token was created by a different Artifactory instance (and
    // therefore cannot be revoked)".
    if let Some(issuer) = issuer {
        return Err(ApiError::BadRequest(format!(
            "token `{id}` was issued by `{issuer}` and cannot be revoked here; revoke it there"
        )));
    }
    let Some(owner) = owner else {
        // A used pairing token: revoking it ends the trust its pairing created.
        let paired = app.read().keys.pairing_tokens.contains_key(&id);
        if paired && caller.0.admin {
            let committed = app
                .submit(
                    Command::RevokeToken { token_id: id },
                    &caller.0.username,
                    &rid,
                )
                .await?;
            return Ok(written(
                HttpResponse::Ok()
                    .content_type("text/plain; charset=utf-8")
                    .body("Token revoked"),
                committed,
            ));
        }
        // Short-lived tokens are not recorded; their id says what they are. (The answer
        // tells a caller nothing it did not know: it is read from the id it sent.)
        if non_revocable {
            return Err(ApiError::BadRequest(format!(
                "token `{id}` is not revocable here: its id marks a token that is not recorded — one living shorter than revocable-expiry-threshold ({} seconds) without force_revocable, or one another server issued (revoke it there); it ends when it expires",
                app.config.revocable_expiry_threshold
            )));
        }
        // Unknown or already revoked: 204, as the seed says.
        return Ok(HttpResponse::NoContent().finish());
    };
    // A token revokes itself, whoever it was issued for: a CI job's transient token
    // (issued for a user that does not exist) was refused its own revocation.
    if !caller.0.admin
        && !is_itself(&caller.0, &id)
        && owner.as_deref() != Some(caller.0.username.as_str())
    {
        return Err(ApiError::Forbidden(
            "only an admin can revoke other users' tokens".into(),
        ));
    }
    may_revoke_own(&caller.0, &id)?;
    let committed = app
        .submit(
            Command::RevokeToken { token_id: id },
            &caller.0.username,
            &rid,
        )
        .await?;
    if committed.events == 0 {
        // Gone between the read and the write (a refresh replaced it, or another revoke
        // came first): nothing was revoked, so not "Token revoked" — the answer for an
        // unknown id (a refreshed token's successor lives on; revoke that one).
        return Ok(HttpResponse::NoContent().finish());
    }
    Ok(written(
        HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body("Token revoked"),
        committed,
    ))
}

/// The id of the token whose value is `value`: a reference token by its hash, a JWT by
/// its `jti` — and only when the record's hash is this value's, so a forged JWT naming
/// another token's id finds nothing.
pub(super) fn token_id_of_value(s: &gatehouse_projections::State, value: &str) -> Option<String> {
    let hash = tokens::hash_hex(value);
    if let Some(id) = s.tokens.by_reference_hash.get(&hash) {
        return Some(id.clone());
    }
    use base64::Engine;
    let payload = value.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let jti = claims.get("jti")?.as_str()?;
    let record = s.tokens.by_id.get(jti)?;
    (record.access_hash == hash).then(|| jti.to_string())
}

/// The answer to revoking by a value no record here has: 400 when it is a token this
/// server signed (short-lived, not recorded: it ends when it expires, as revoking it by
/// id says), else 404 (it said "no revocable token of this server" of this server's own).
pub(super) fn unrecorded(app: &AppState, value: &str) -> ApiError {
    let s = app.read();
    // Signed here, and its id marks a token that was never recorded (a revoked one, or
    // one whose record expired, keeps the 404: nothing revocable has the value).
    let short_lived = crate::auth::verify_token(&app.keys, &s, value).is_ok_and(|c| {
        s.service_id.as_deref() == Some(c.iss.as_str())
            && crate::tokens::id_marks_non_revocable(&c.jti)
    });
    if short_lived {
        return ApiError::BadRequest(format!(
            "the token is not revocable here: it is not recorded (shorter-lived than revocable-expiry-threshold, {} seconds, without force_revocable); it ends when it expires",
            app.config.revocable_expiry_threshold
        ));
    }
    ApiError::NotFound("no revocable token of this server has this value".into())
}

/// Revoke the token `id` for `caller` (its owner or an admin).
pub(super) async fn revoke_id(
    app: &AppState,
    caller: &Principal,
    rid: &RequestId,
    id: String,
) -> Result<crate::writer::Committed, ApiError> {
    let (owner, issuer) = {
        let s = app.read();
        (
            // A transient identity's token is no user's own (a user created later by
            // that name revoked a CI job's token here, as `DELETE …/{id}` refuses).
            s.tokens
                .by_id
                .get(id.as_str())
                .map(|t| (!t.transient).then(|| t.subject.clone())),
            s.federation.token_issuers.get(&id).cloned(),
        )
    };
    // A federated copy of another server's token: revoking it here would end only this
    // copy, and the token would go on working at its issuer (by id this was a 400; by
    // value and through Artifactory's API it answered 200).
    if let Some(issuer) = issuer {
        return Err(ApiError::BadRequest(format!(
            "token `{id}` was issued by `{issuer}` and cannot be revoked here; revoke it there"
        )));
    }
    let Some(owner) = owner else {
        // A short-lived token's id says it is one (the caller must not believe it
        // revoked: it works until it expires), as `DELETE …/tokens/{id}` says.
        if crate::tokens::id_marks_non_revocable(&id) {
            return Err(ApiError::BadRequest(format!(
                "token `{id}` is not revocable here: it is not recorded (shorter-lived than revocable-expiry-threshold, without force_revocable); it ends when it expires"
            )));
        }
        return Err(ApiError::NotFound(format!("token `{id}` not found")));
    };
    if !caller.admin
        && !is_itself(caller, &id)
        && owner.as_deref() != Some(caller.username.as_str())
    {
        return Err(ApiError::Forbidden(
            "only an admin can revoke other users' tokens".into(),
        ));
    }
    may_revoke_own(caller, &id)?;
    let committed = app
        .submit(
            Command::RevokeToken {
                token_id: id.clone(),
            },
            &caller.username,
            rid,
        )
        .await?;
    if committed.events == 0 {
        // Gone between the read and the write (refreshed, or revoked by another).
        return Err(ApiError::NotFound(format!("token `{id}` not found")));
    }
    Ok(committed)
}

/// Whether `caller` signed in with the token `id` itself: a token of this server (a
/// peer's token names its own `jti`, which may be any id here).
fn is_itself(caller: &Principal, id: &str) -> bool {
    caller
        .token
        .as_ref()
        .is_some_and(|t| t.local && t.token_id == id)
}

/// A user revokes its own tokens signed in as itself; any token may revoke itself (seed
/// 004: "the target token ID is of the token being used for authentication"). A
/// groups-only or a peer's token revoked every other token of its user.
fn may_revoke_own(caller: &Principal, id: &str) -> Result<(), ApiError> {
    if caller.admin || is_itself(caller, id) || caller.whole_identity() {
        return Ok(());
    }
    Err(ApiError::Forbidden(
        "this token's scope allows revoking only itself (sign in as the user to revoke its other tokens)"
            .into(),
    ))
}

/// `DELETE /access/api/v1/tokens/revoke` with `{"token": "<access or reference
/// token>"}` (JSON or form): revoke by value. 404 for a value with no record here (a
/// token that was never revocable, or is not this server's), so that a caller never
/// believes a token revoked that still works.
async fn revoke_by_value(
    app: web::Data<AppState>,
    caller: Caller,
    rid: RequestId,
    req: HttpRequest,
    FormOrJson(fields): FormOrJson,
) -> Result<HttpResponse, ApiError> {
    let form = FormOrJson(fields);
    form.only(&req, &["token"]);
    let value = form
        .string("token")?
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::BadRequest("invalid `token`: required".into()))?;
    // The read is dropped before `unrecorded` reads again (a second read on this thread
    // waits for a waiting writer, which waits for the first: a node hung so).
    let mut found = token_id_of_value(&app.read(), &value);
    if found.is_none() {
        // Not applied here yet, maybe (issued on another node).
        app.caught_up().await;
        found = token_id_of_value(&app.read(), &value);
    }
    let id = found.ok_or_else(|| unrecorded(&app, &value))?;
    let committed = revoke_id(&app, &caller.0, &rid, id.clone()).await?;
    Ok(written(
        HttpResponse::Ok().json(json!({ "revoked_token_id": id })),
        committed,
    ))
}

/// A token's `description` and `audience`, on issue and on refresh: bounded, printable
/// (no control characters; a description may have line breaks and tabs), the audience
/// not blank.
fn check_text_fields(description: Option<&str>, audience: &str) -> Result<(), ApiError> {
    domain::validate_text("description", description, MAX_DESCRIPTION_CHARS)?;
    if audience.chars().count() > MAX_AUDIENCE_CHARS
        || audience.split_whitespace().next().is_none()
        || audience.chars().any(char::is_control)
    {
        return Err(ApiError::BadRequest(format!(
            "invalid `audience`: 1 to {MAX_AUDIENCE_CHARS} characters, no control characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_schemas::TokenIssued;

    /// A scope is kept with one space between its parts, whatever spacing it came with;
    /// one already so is not copied.
    #[test]
    fn scopes_are_kept_single_spaced() {
        for (given, kept, copied) in [
            (
                "applied-permissions/user",
                "applied-permissions/user",
                false,
            ),
            ("a b c", "a b c", false),
            ("a  b", "a b", true),
            (" a b", "a b", true),
            ("a b ", "a b", true),
            ("a\tb\n", "a b", true),
            ("a\u{a0}b", "a b", true),
            ("", "", true),
        ] {
            let got = single_spaced(given);
            assert_eq!(got, kept, "{given:?}");
            assert_eq!(
                matches!(got, std::borrow::Cow::Owned(_)),
                copied,
                "{given:?}"
            );
        }
    }

    /// The answer is the JSON the `Value` it replaced wrote, byte for byte, with and
    /// without each optional part, and with a scope that needs escaping.
    #[test]
    fn the_token_answer_is_what_the_value_was() {
        for bits in 0..8u8 {
            for scope in [
                "applied-permissions/user",
                "applied-permissions/groups:\"a\\b\",é\n",
            ] {
                let m = tokens::Minted {
                    record: std::sync::Arc::new(TokenIssued {
                        token_id: "01j0000000000000000000000a".into(),
                        subject: "alice".into(),
                        transient: false,
                        scope: scope.into(),
                        audience: "*@*".into(),
                        issued_at: 1_700_000_000,
                        expires_at: (bits & 1 == 1).then_some(1_700_003_600),
                        refreshable: bits & 2 == 2,
                        revocable: true,
                        description: None,
                        kid: "k".into(),
                        access_hash: "h".into(),
                        refresh_hash: None,
                        reference_hash: None,
                        self_issued: bits & 4 == 4,
                        force_revocable: false,
                    }),
                    access_token: "eyJh.eyJz.c2ln".into(),
                    refresh_token: (bits & 2 == 2).then(|| "r3fr3sh".to_string()),
                    reference_token: (bits & 4 == 4).then(|| "r3f3r3nc3".to_string()),
                };
                let now = 1_700_000_100;
                let mut value = json!({
                    "token_id": m.record.token_id,
                    "access_token": m.access_token,
                    "scope": m.record.scope,
                    "token_type": "Bearer",
                });
                if let Some(r) = &m.refresh_token {
                    value["refresh_token"] = json!(r);
                }
                if let Some(e) = m.record.expires_at {
                    value["expires_in"] = json!(e.saturating_sub(now));
                }
                if let Some(r) = &m.reference_token {
                    value["reference_token"] = json!(r);
                }
                assert_eq!(
                    String::from_utf8(token_response(&m, now)).unwrap(),
                    value.to_string(),
                    "bits {bits}, scope {scope:?}"
                );
            }
        }
    }
}

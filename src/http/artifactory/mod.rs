//! Artifactory's security API (`/artifactory/api/security/…`): the dialect
//! pyartifactory and dohq-artifactory speak. Another view over the same users, groups,
//! permission targets and tokens as the Access API — the same commands and events, so
//! a user created here is the user `/access/api/v2/users` shows, and the other way
//! round. Only the shapes differ (camelCase JSON, v1 permission letters, form bodies).

use super::error::ApiError;
use actix_web::{web, HttpResponse};

mod groups;
mod permissions;
mod tokens;
mod users;

pub fn configure(cfg: &mut web::ServiceConfig) {
    users::configure(cfg);
    groups::configure(cfg);
    permissions::configure(cfg);
    tokens::configure(cfg);
    // API keys and encrypted passwords: the client libraries call them (pyartifactory,
    // dohq-artifactory, py-jfrog-client), JFrog has deprecated them, and Gatehouse has
    // neither. Said so, with what to use, rather than "no such endpoint".
    for path in [
        "/artifactory/api/security/apiKey",
        "/artifactory/api/security/apiKey/{username}",
        "/artifactory/api/security/encryptedPassword",
    ] {
        cfg.service(super::resource(path).route(web::route().to(no_api_keys)));
    }
}

async fn no_api_keys() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(
        "Gatehouse has no API keys nor encrypted passwords (JFrog deprecated both): use an access token or a reference token (POST /access/api/v1/tokens, `include_reference_token=true`), which also works where an API key did (`X-JFrog-Art-Api`, or as the password of Basic authentication)".into(),
    ))
}

/// Artifactory answers most security writes with a short sentence in plain text.
fn text(status: actix_web::http::StatusCode, message: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(message)
}

/// 201 for a write that created the entity, 200 for one that changed it.
fn created_or_ok(existed: bool) -> actix_web::http::StatusCode {
    if existed {
        actix_web::http::StatusCode::OK
    } else {
        actix_web::http::StatusCode::CREATED
    }
}

/// The body's `name`, if given, names what the path names: a user's ignoring case
/// (user names are made lower case: `ÉMILE` is `émile`, not only ASCII letters), a
/// group's or a permission target's exactly (they are case-sensitive: `team` sent to
/// `…/groups/Team` changed `Team`).
fn name_matches(body_name: Option<&str>, path: &str) -> Result<(), ApiError> {
    matches_name(body_name, path, false)
}

fn user_name_matches(body_name: Option<&str>, path: &str) -> Result<(), ApiError> {
    matches_name(body_name, path, true)
}

fn matches_name(body_name: Option<&str>, path: &str, any_case: bool) -> Result<(), ApiError> {
    match body_name {
        Some(n) if n != path && !(any_case && n.to_lowercase() == path.to_lowercase()) => Err(
            ApiError::BadRequest("invalid `name`: must match the name in the path".into()),
        ),
        _ => Ok(()),
    }
}

//! Anonymous access (seed 002 "Allowing anonymous access to specific repositories", seed
//! 004 "Requires a valid user (can be anonymous)"): a setting, off by default. When on,
//! a request without credentials acts as the built-in `anonymous` user, which has what
//! permission targets grant it and nothing else; signed-in callers are unaffected.

use super::error::ApiError;
use super::extract::{Admin, Body, RequestId};
use super::{resource, written, AppState};
use crate::domain::Command;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/access/api/v1/config/security/anonymous_access")
            .route(web::get().to(get))
            .route(web::put().to(put)),
    );
}

async fn get(app: web::Data<AppState>, _admin: Admin) -> HttpResponse {
    let enabled = app.read().directory.anonymous_access;
    HttpResponse::Ok().json(json!({ "enabled": enabled }))
}

#[derive(Deserialize)]
struct Setting {
    enabled: bool,
}

async fn put(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    Body(body): Body<Setting>,
) -> Result<HttpResponse, ApiError> {
    let committed = app
        .submit(
            Command::SetAnonymousAccess {
                enabled: body.enabled,
            },
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(
        HttpResponse::Ok().json(json!({ "enabled": body.enabled })),
        committed,
    ))
}

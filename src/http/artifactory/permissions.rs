//! `/artifactory/api/security/permissions[/{name}]`: permission targets in
//! Artifactory's v1 format — the repository section only, letters for actions. A PUT
//! keeps the target's build and release-bundle sections, which v1 cannot show.

use super::super::error::ApiError;
use super::super::extract::{Admin, Body, RequestId};
use super::super::{base_url, resource, written, AppState};
use super::{created_or_ok, name_matches, text};
use crate::domain::{self, Command};
use crate::views::permissions::{permission_v1, v1_section_in, PermissionV1};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use gatehouse_schemas::PermissionTarget;
use serde_json::json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/artifactory/api/security/permissions").route(web::get().to(list)))
        .service(
            resource("/artifactory/api/security/permissions/{name}")
                .route(web::get().to(get))
                .route(web::put().to(put))
                .route(web::delete().to(delete)),
        );
}

async fn list(app: web::Data<AppState>, _admin: Admin, req: HttpRequest) -> HttpResponse {
    let base = base_url(&req);
    let s = app.view(&req);
    let items: Vec<_> = s
        .permissions
        .targets
        .keys()
        .map(|n| json!({"name": n, "uri": format!("{base}/artifactory/api/security/permissions/{}", crate::http::segment(n))}))
        .collect();
    HttpResponse::Ok().json(items)
}

async fn get(
    app: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let s = app.view(&req);
    let t = s
        .permissions
        .targets
        .get(path.as_str())
        .ok_or_else(|| ApiError::NotFound(format!("permission target `{path}` not found")))?;
    Ok(HttpResponse::Ok().json(permission_v1(t)))
}

/// The domain's (v2) names of a repository section's fields, and v1's.
const V1_FIELDS: &[(&str, &str)] = &[
    ("repo.actions", "principals"),
    ("repo.repositories", "repositories"),
    ("repo.include-patterns", "includesPattern"),
    ("repo.exclude-patterns", "excludesPattern"),
];

async fn put(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
    Body(body): Body<PermissionV1>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    name_matches(body.name.as_deref(), &name)?;
    let repo = v1_section_in(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid `{}`: {}", e.field, e.message)))?;
    // v1 describes the repository section only: the others are kept as read, and only
    // while they are still so (a group deleted meanwhile came back into the build
    // section, and a concurrent PATCH of it was lost).
    let (existed, committed) = crate::http::read_change_write(&app, async || {
        let current = (app.read().permissions.targets.get(&name)).map(|t| (**t).clone());
        let target = PermissionTarget {
            name: name.clone(),
            repo: Some(repo.clone()),
            ..current.clone().unwrap_or_default()
        };
        let mut target = domain::normalize_target(target)?;
        domain::keep_repository_patterns(current.as_ref(), &mut target);
        let existed = current.is_some();
        let command = Command::IfUnchanged {
            read: domain::AsRead::PermissionTarget(name.clone(), current.map(Box::new)),
            command: Box::new(Command::SavePermissionTarget {
                target,
                create_only: false,
            }),
        };
        let committed = app.submit(command, &admin.0.username, &rid).await?;
        Ok((existed, committed))
    })
    .await
    // The domain names fields as Artifactory's v2 does: as v1 spells them here.
    .map_err(|e| e.renaming_fields(V1_FIELDS))?;
    Ok(crate::http::permissions::with_bundle_notice(
        written(
            HttpResponse::build(created_or_ok(existed)).finish(),
            committed,
        ),
        &app,
        &name,
    ))
}

async fn delete(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    let committed = app
        .submit(
            Command::DeletePermissionTarget { name: name.clone() },
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(
        text(
            StatusCode::OK,
            format!("Permission Target '{name}' has been removed successfully."),
        ),
        committed,
    ))
}

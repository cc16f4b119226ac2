//! Global roles (`/access/api/v1/roles`): the predefined project roles and custom
//! `CUSTOM_GLOBAL` roles, which any project may give its members beside its own; and
//! `GET /access/api/v2/projects?role_name=`, the projects where a role is held.

use super::error::ApiError;
use super::extract::{Admin, Body, RequestId};
use super::projects::{role_in, RoleIn};
use super::{limit_param, query_param, resource, written, AppState};
use crate::domain::Command;
use actix_web::{web, HttpRequest, HttpResponse};
use gatehouse_projections::predefined_roles;
use gatehouse_schemas::ProjectRole;
use serde_json::{json, Value};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/access/api/v1/roles")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        resource("/access/api/v1/roles/{role}")
            .route(web::get().to(get))
            .route(web::put().to(update))
            .route(web::delete().to(delete)),
    )
    .service(resource("/access/api/v2/projects").route(web::get().to(projects_for_role)));
}

const CUSTOM_GLOBAL: &str = "CUSTOM_GLOBAL";

/// `Project Admin` is `ADMIN`, the other predefined roles `PREDEFINED` (the only three
/// types py-jfrog-client's model knows).
fn role_out(r: &ProjectRole, kind: &str) -> Value {
    json!({
        "name": r.name,
        "description": r.description,
        "type": kind,
        "environments": r.environments,
        "actions": r.actions,
    })
}

fn predefined_out(r: &ProjectRole) -> Value {
    role_out(
        r,
        if r.name == "Project Admin" {
            "ADMIN"
        } else {
            "PREDEFINED"
        },
    )
}

fn find(app: &AppState, name: &str) -> Result<Value, ApiError> {
    if let Some(r) = predefined_roles().iter().find(|r| r.name == name) {
        return Ok(predefined_out(r));
    }
    app.read()
        .projects
        .global_roles
        .get(name)
        .map(|r| role_out(r, CUSTOM_GLOBAL))
        .ok_or_else(|| ApiError::NotFound(format!("role `{name}` not found")))
}

async fn list(app: web::Data<AppState>, _admin: Admin) -> HttpResponse {
    let mut out: Vec<Value> = predefined_roles().iter().map(predefined_out).collect();
    out.extend(
        app.read()
            .projects
            .global_roles
            .values()
            .map(|r| role_out(r, CUSTOM_GLOBAL)),
    );
    HttpResponse::Ok().json(out)
}

async fn get(
    app: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(find(&app, &path)?))
}

/// Only custom global roles are made or changed here.
fn global_role(name: &str, mut body: RoleIn) -> Result<ProjectRole, ApiError> {
    match body.kind.take().as_deref() {
        None | Some(CUSTOM_GLOBAL) => {}
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "invalid `type`: `{}` (use CUSTOM_GLOBAL)",
                other.escape_debug()
            )))
        }
    }
    role_in(name, body)
}

async fn create(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    Body(body): Body<RoleIn>,
) -> Result<HttpResponse, ApiError> {
    let name = body
        .name
        .clone()
        .ok_or_else(|| ApiError::BadRequest("invalid `name`: is required".into()))?;
    let role = global_role(&name, body)?;
    let committed = app
        .submit(
            Command::SaveGlobalRole {
                role,
                create_only: true,
            },
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(
        HttpResponse::Created().json(find(&app, &name)?),
        committed,
    ))
}

async fn update(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
    Body(body): Body<RoleIn>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    if body.name.as_ref().is_some_and(|n| *n != name) {
        return Err(ApiError::BadRequest(
            "invalid `name`: a role cannot be renamed".into(),
        ));
    }
    let role = global_role(&name, body)?;
    let committed = app
        .submit(
            Command::SaveGlobalRole {
                role,
                create_only: false,
            },
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(
        HttpResponse::Ok().json(find(&app, &name)?),
        committed,
    ))
}

async fn delete(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let committed = app
        .submit(
            Command::DeleteGlobalRole {
                name: path.into_inner(),
            },
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(HttpResponse::NoContent().finish(), committed))
}

/// `?role_name=`: the projects where a member (user or group) holds that role; without
/// it, every project. Ordered by key (`descending_order=true` reverses), paged by
/// `limit` and `cursor` (the last key of the previous page).
async fn projects_for_role(
    app: web::Data<AppState>,
    _admin: Admin,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let role = query_param(&req, "role_name")?;
    let limit = limit_param(&req)?;
    let cursor = query_param(&req, "cursor")?.filter(|c| !c.is_empty());
    let descending = match query_param(&req, "descending_order")?.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "invalid `descending_order`: `{}` (use true or false)",
                other.escape_debug()
            )))
        }
    };
    let s = app.read();
    let holds = |p: &gatehouse_projections::ProjectRecord| match &role {
        None => true,
        Some(r) => p
            .users
            .values()
            .chain(p.groups.values())
            .any(|rs| rs.contains(r)),
    };
    let mut matching: Vec<_> = s.projects.by_key.values().filter(|p| holds(p)).collect();
    if descending {
        matching.reverse();
    }
    let after = |k: &str| match &cursor {
        None => true,
        Some(c) if descending => k < c.as_str(),
        Some(c) => k > c.as_str(),
    };
    let page: Vec<_> = matching
        .into_iter()
        .filter(|p| after(&p.config.project_key))
        .take(limit + 1)
        .collect();
    let next = (page.len() > limit).then(|| page[limit - 1].config.project_key.clone());
    let projects: Vec<Value> = page
        .iter()
        .take(limit)
        .map(|p| json!({"name": p.config.display_name, "projectKey": p.config.project_key}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"projects": projects, "cursor": next})))
}

//! Global roles (`/access/api/v1/roles`): JFrog's roles that every project can give its
//! members — the predefined ones and custom global ones (`CUSTOM_GLOBAL`) — and the
//! projects where a role is held (`/access/api/v2/projects?role_name=`).

use super::error::ApiError;
use super::extract::{Admin, Body, RequestId};
use super::{limit_param, query_param, resource, with_cursor, written, AppState};
use crate::domain::{self, Command};
use actix_web::{web, HttpRequest, HttpResponse};
use gatehouse_schemas::ProjectRole;
use serde::Deserialize;
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
    .service(resource("/access/api/v2/projects").route(web::get().to(projects_by_role)));
}

const CUSTOM_GLOBAL: &str = "CUSTOM_GLOBAL";

/// A role as JFrog's roles API shows it; `type` is `ADMIN` (Project Admin),
/// `PREDEFINED` or `CUSTOM_GLOBAL`.
fn role_out(r: &ProjectRole, kind: &str) -> Value {
    json!({
        "name": r.name,
        "description": r.description,
        "type": kind,
        "environments": r.environments,
        "actions": r.actions,
    })
}

pub(crate) fn predefined_kind(name: &str) -> &'static str {
    if name == "Project Admin" {
        "ADMIN"
    } else {
        "PREDEFINED"
    }
}

#[derive(Deserialize)]
struct RoleIn {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    /// Left out of an update: the role's own, as stored (see `projects::RoleIn`).
    #[serde(default)]
    environments: Option<Vec<String>>,
    #[serde(default)]
    actions: Option<Vec<String>>,
}

fn role_in(name: &str, body: RoleIn) -> Result<ProjectRole, ApiError> {
    // A predefined role's own type, sent back as read, is no change of type (the domain
    // says whether anything else changed).
    let predefined = gatehouse_projections::predefined_roles()
        .iter()
        .any(|r| r.name == name);
    if let Some(k) = &body.kind {
        if k != CUSTOM_GLOBAL && !(predefined && k == predefined_kind(name)) {
            return Err(ApiError::BadRequest(format!(
                "invalid `type`: `{}` (roles made here are {CUSTOM_GLOBAL})",
                k.escape_debug()
            )));
        }
    }
    Ok(domain::normalize_role(ProjectRole {
        name: name.to_string(),
        description: body.description.filter(|d| !d.is_empty()),
        actions: body.actions.unwrap_or_default(),
        environments: body.environments.unwrap_or_default(),
    })?)
}

/// The role name in the path (`Project%20Admin`, which the router has decoded): itself
/// where a global or predefined role has it, else the one such role whose name differs
/// only in case (as the project API reads them: `project admin` was a 404 here).
fn path_role(s: &gatehouse_projections::State, raw: &str) -> String {
    let names = || {
        gatehouse_projections::predefined_roles()
            .into_iter()
            .map(|r| r.name)
            .chain(s.projects.global_roles.keys().cloned())
    };
    if names().any(|n| n == raw) {
        return raw.to_string();
    }
    let mut alike: Vec<String> = names().filter(|n| n.eq_ignore_ascii_case(raw)).collect();
    match alike.len() {
        1 => alike.remove(0),
        _ => raw.to_string(),
    }
}

async fn list(app: web::Data<AppState>, _admin: Admin, req: HttpRequest) -> HttpResponse {
    let s = app.view(&req);
    let mut roles: Vec<Value> = gatehouse_projections::predefined_roles()
        .iter()
        .map(|r| role_out(r, predefined_kind(&r.name)))
        .collect();
    roles.extend(
        s.projects
            .global_roles
            .values()
            .map(|r| role_out(r, CUSTOM_GLOBAL)),
    );
    HttpResponse::Ok().json(roles)
}

async fn get(
    app: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let s = app.view(&req);
    let name = path_role(&s, &path);
    if let Some(r) = gatehouse_projections::predefined_roles()
        .into_iter()
        .find(|r| r.name == name)
    {
        return Ok(HttpResponse::Ok().json(role_out(&r, predefined_kind(&r.name))));
    }
    let r = s
        .projects
        .global_roles
        .get(&name)
        .ok_or_else(|| ApiError::NotFound(format!("role `{name}` not found")))?;
    Ok(HttpResponse::Ok().json(role_out(r, CUSTOM_GLOBAL)))
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
        .ok_or_else(|| ApiError::BadRequest("invalid `name`: required".into()))?;
    let role = role_in(&name, body)?;
    let committed = app
        .submit(
            Command::SaveGlobalRole {
                role: role.clone(),
                create_only: true,
            },
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(
        HttpResponse::Created().json(role_out(&role, CUSTOM_GLOBAL)),
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
    let name = path_role(&app.read(), &path);
    if body
        .name
        .as_ref()
        .is_some_and(|n| !n.eq_ignore_ascii_case(&name))
    {
        return Err(ApiError::BadRequest(
            "invalid `name`: a role cannot be renamed".into(),
        ));
    }
    // What the update leaves out stays as stored.
    let mut body = body;
    let was = {
        let s = app.read();
        s.projects.global_roles.get(&name).cloned().or_else(|| {
            gatehouse_projections::predefined_roles()
                .into_iter()
                .find(|r| r.name == name)
        })
    };
    if let Some(was) = &was {
        super::projects::complete_role(
            &mut body.description,
            &mut body.actions,
            &mut body.environments,
            was,
        );
    }
    let role = role_in(&name, body)?;
    let kind = if was.is_some() && !app.read().projects.global_roles.contains_key(&name) {
        predefined_kind(&name)
    } else {
        CUSTOM_GLOBAL
    };
    let committed = app
        .submit(
            Command::SaveGlobalRole {
                role: role.clone(),
                create_only: false,
            },
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(
        HttpResponse::Ok().json(role_out(&role, kind)),
        committed,
    ))
}

async fn delete(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    // Resolved before the write: the state's read lock, held by a temporary in the
    // submitted command, would be held across the write that waits for it.
    let name = path_role(&app.read(), &path);
    let committed = app
        .submit(Command::DeleteGlobalRole { name }, &admin.0.username, &rid)
        .await?;
    Ok(written(HttpResponse::NoContent().finish(), committed))
}

/// `GET /access/api/v2/projects[?role_name=]`: projects (by key, `limit`, `cursor`,
/// `descending_order`), only those where a member holds `role_name` when it is given;
/// those the caller may read, as v1's list (seed 004: "all projects the requesting user
/// manages" — a Project Admin was refused here while v1 listed its projects).
async fn projects_by_role(
    app: web::Data<AppState>,
    caller: super::extract::Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let role = query_param(&req, "role_name")?;
    let limit = limit_param(&req)?;
    let cursor = query_param(&req, "cursor")?;
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
    let s = app.view(&req);
    let holds = |p: &gatehouse_projections::ProjectRecord| match &role {
        None => true,
        Some(r) => p
            .users
            .values()
            .chain(p.groups.values())
            // Ignoring case, as role assignment and the users list's `role` filter do.
            .any(|roles| roles.iter().any(|held| held.eq_ignore_ascii_case(r))),
    };
    let mut keys: Vec<&String> = s
        .projects
        .by_key
        .iter()
        .filter(|(k, p)| holds(p) && super::projects::may_view(&s, &caller.0, k))
        .map(|(k, _)| k)
        .collect();
    if descending {
        keys.reverse();
    }
    // After the cursor's key, whether or not that project still exists (deleted between
    // two pages, the listing ended there and every later project was missed): keys are
    // in order, ascending or descending.
    let start = match &cursor {
        Some(c) => keys
            .iter()
            .position(|k| {
                if descending {
                    k.as_str() < c.as_str()
                } else {
                    k.as_str() > c.as_str()
                }
            })
            .unwrap_or(keys.len()),
        None => 0,
    };
    let page: Vec<&String> = keys.iter().skip(start).take(limit).copied().collect();
    let next = (start + page.len() < keys.len())
        .then(|| page.last().map(|k| k.to_string()))
        .flatten();
    let projects: Vec<Value> = page
        .iter()
        .map(|k| {
            let p = &s.projects.by_key[*k];
            json!({"name": p.config.display_name, "projectKey": k})
        })
        .collect();
    Ok(HttpResponse::Ok().json(with_cursor(json!({ "projects": projects }), next)))
}

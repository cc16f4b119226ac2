//! Permissions, JFrog Access format (`/access/api/v2/permissions`): the API
//! py-jfrog-client and JFrog's current documentation use. A view over the same
//! permission targets as the Artifactory v2 and v1 formats (`crate::views::permissions`).

use super::error::ApiError;
use super::extract::{Admin, Body, RequestId};
use super::{
    base_url, limit_param, page_shared, query_param, resource, with_cursor, written, AppState,
};
use crate::domain::{self, Command};
use crate::views::permissions::{
    access_permission_in, access_permission_out, access_resource_in, access_resource_out,
    access_resource_patch, section_of, section_of_mut, AccessPermission, AccessResource,
    AccessResourcePatch, WireError, RESOURCE_TYPES,
};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use gatehouse_schemas::PermissionTarget;
use serde_json::json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/access/api/v2/permissions")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        resource("/access/api/v2/permissions/{name}")
            .route(web::get().to(get))
            .route(web::put().to(replace))
            .route(web::delete().to(delete)),
    )
    .service(
        resource("/access/api/v2/permissions/{name}/{resource_type}")
            .route(web::get().to(get_resource))
            .route(web::put().to(replace_resource))
            .route(web::patch().to(patch_resource))
            .route(web::delete().to(delete_resource)),
    );
}

fn wire(e: WireError) -> ApiError {
    ApiError::BadRequest(format!("invalid `{}`: {}", e.field, e.message))
}

fn resource_type(t: &str) -> Result<&str, ApiError> {
    RESOURCE_TYPES
        .iter()
        .find(|r| **r == t)
        .copied()
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "resource type `{}` not found (use {})",
                t.escape_debug(),
                RESOURCE_TYPES.join(", ")
            ))
        })
}

fn current(app: &AppState, name: &str) -> Result<PermissionTarget, ApiError> {
    app.read()
        .permissions
        .targets
        .get(name)
        .map(|t| (**t).clone())
        .ok_or_else(|| ApiError::NotFound(format!("permission `{name}` not found")))
}

/// Normalise by the domain's rules and save; answer with the target as stored.
async fn save(
    app: &AppState,
    admin: &Admin,
    rid: &RequestId,
    target: PermissionTarget,
    create_only: bool,
    was: Option<PermissionTarget>,
) -> Result<(PermissionTarget, crate::writer::Committed), ApiError> {
    let target = domain::normalize_target(target.clone()).map_err(|e| match e {
        domain::DomainError::Invalid { field, message } => ApiError::BadRequest(format!(
            "invalid `{}`: {message}",
            access_field(&target, &field)
        )),
        other => other.into(),
    })?;
    let sent = target.clone();
    let name = target.name.clone();
    let mut command = Command::SavePermissionTarget {
        target,
        create_only,
    };
    if let Some(was) = was {
        // A change of what was read: only while it is still so.
        command = Command::IfUnchanged {
            read: domain::AsRead::PermissionTarget(name.clone(), Some(Box::new(was))),
            command: Box::new(command),
        };
    }
    // The writer's rules (a principal that does not exist) name fields as Artifactory's
    // v2 does: named as this client sent them.
    let committed = app
        .submit(command, &admin.0.username, rid)
        .await
        .map_err(|e| match e {
            ApiError::BadRequest(m) => {
                match m.strip_prefix("invalid `").and_then(|r| r.split_once('`')) {
                    Some((field, rest)) => ApiError::BadRequest(format!(
                        "invalid `{}`{rest}",
                        access_field(&sent, field)
                    )),
                    None => ApiError::BadRequest(m),
                }
            }
            other => other,
        })?;
    Ok((current(app, &name)?, committed))
}

/// The Access v2 name of a field that the domain's rule names as Artifactory's v2 does
/// (`repo.repositories[0]` → `resources.artifact.targets.libs`): what this client sent.
/// The section's own patterns are the first target's here.
fn access_field(t: &PermissionTarget, field: &str) -> String {
    let (section, rest) = field.split_once('.').unwrap_or((field, ""));
    let (resource, s) = match section {
        "repo" => ("artifact", t.repo.as_ref()),
        "build" => ("build", t.build.as_ref()),
        "releaseBundle" => ("release_bundle", t.release_bundle.as_ref()),
        _ => return field.to_string(),
    };
    let base = format!("resources.{resource}");
    let wire = |r: &str| {
        r.replace("include-patterns", "include_patterns")
            .replace("exclude-patterns", "exclude_patterns")
    };
    let index = |list: &str| {
        rest.strip_prefix(list)?
            .strip_prefix('[')?
            .strip_suffix(']')?
            .parse::<usize>()
            .ok()
    };
    let repositories = s.map(|s| s.repositories.as_slice()).unwrap_or_default();
    if let Some(name) = index("repositories").and_then(|i| repositories.get(i)) {
        return format!("{base}.targets.{name}");
    }
    if let Some(first) = repositories.first() {
        if rest.starts_with("include-patterns") || rest.starts_with("exclude-patterns") {
            return format!("{base}.targets.{first}.{}", wire(rest));
        }
    }
    match rest {
        "" => base,
        _ => format!("{base}.{}", wire(rest)),
    }
}

/// `GET /access/api/v2/permissions`: names and URIs, by name, `limit` and `cursor`.
async fn list(
    app: web::Data<AppState>,
    _admin: Admin,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let limit = limit_param(&req)?;
    let cursor = query_param(&req, "cursor")?;
    let base = base_url(&req);
    let s = app.view(&req);
    let (items, next) = page_shared(&s.permissions.targets, cursor.as_deref(), limit);
    let permissions: Vec<_> = items
        .iter()
        .map(|t| json!({"name": t.name, "uri": format!("{base}/access/api/v2/permissions/{}", super::segment(&t.name))}))
        .collect();
    Ok(HttpResponse::Ok().json(with_cursor(json!({ "permissions": permissions }), next)))
}

/// `POST /access/api/v2/permissions`: create (409 when the name is taken).
async fn create(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    Body(body): Body<AccessPermission>,
) -> Result<HttpResponse, ApiError> {
    let name = body
        .name
        .clone()
        .ok_or_else(|| ApiError::BadRequest("invalid `name`: required".into()))?;
    let target = access_permission_in(&name, body).map_err(wire)?;
    let (t, committed) = save(&app, &admin, &rid, target, true, None).await?;
    let res = written(
        HttpResponse::Created().json(access_permission_out(&t)),
        committed,
    );
    Ok(super::permissions::with_bundle_notice(res, &app, &t.name))
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
        .ok_or_else(|| ApiError::NotFound(format!("permission `{path}` not found")))?;
    Ok(HttpResponse::Ok().json(access_permission_out(t)))
}

/// `PUT /access/api/v2/permissions/{name}`: create or replace the whole permission.
async fn replace(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
    Body(body): Body<AccessPermission>,
) -> Result<HttpResponse, ApiError> {
    if body.name.as_ref().is_some_and(|n| n != path.as_str()) {
        return Err(ApiError::BadRequest(
            "invalid `name`: must match the name in the path".into(),
        ));
    }
    let existed = app.read().permissions.targets.contains_key(path.as_str());
    let target = access_permission_in(&path, body).map_err(wire)?;
    let (t, committed) = save(&app, &admin, &rid, target, false, None).await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let res = written(
        HttpResponse::build(status).json(access_permission_out(&t)),
        committed,
    );
    Ok(super::permissions::with_bundle_notice(res, &app, &t.name))
}

async fn delete(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let committed = app
        .submit(
            Command::DeletePermissionTarget {
                name: path.into_inner(),
            },
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(HttpResponse::NoContent().finish(), committed))
}

async fn get_resource(
    app: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let kind = resource_type(&path.1)?;
    let s = app.view(&req);
    let t = s
        .permissions
        .targets
        .get(&path.0)
        .ok_or_else(|| ApiError::NotFound(format!("permission `{}` not found", path.0)))?;
    let section = section_of(t, kind).ok_or_else(|| {
        ApiError::NotFound(format!("permission `{}` has no `{kind}` resource", path.0))
    })?;
    Ok(HttpResponse::Ok().json(access_resource_out(section)))
}

/// Answer with the resource as stored after a change of it.
fn resource_answer(
    app: &AppState,
    t: &PermissionTarget,
    kind: &str,
    committed: crate::writer::Committed,
) -> HttpResponse {
    let body = section_of(t, kind)
        .map(access_resource_out)
        .unwrap_or_default();
    let res = written(HttpResponse::Ok().json(body), committed);
    super::permissions::with_bundle_notice(res, app, &t.name)
}

/// `PUT …/{name}/{resourceType}`: set one resource of an existing permission.
async fn replace_resource(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<(String, String)>,
    Body(body): Body<AccessResource>,
) -> Result<HttpResponse, ApiError> {
    let kind = resource_type(&path.1)?;
    let section = access_resource_in(kind, body).map_err(wire)?;
    let (t, committed) = super::read_change_write(&app, async || {
        let was = current(&app, &path.0)?;
        let mut target = was.clone();
        *section_of_mut(&mut target, kind).expect("a known resource type") = Some(section.clone());
        save(&app, &admin, &rid, target, false, Some(was)).await
    })
    .await?;
    Ok(resource_answer(&app, &t, kind, committed))
}

/// `PATCH …/{name}/{resourceType}`: change the named users, groups and targets of one
/// resource (see `AccessResourcePatch`); a resource the permission lacks starts empty.
async fn patch_resource(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<(String, String)>,
    Body(body): Body<AccessResourcePatch>,
) -> Result<HttpResponse, ApiError> {
    let kind = resource_type(&path.1)?;
    let (t, committed) = super::read_change_write(&app, async || {
        let was = current(&app, &path.0)?;
        let mut target = was.clone();
        let slot = section_of_mut(&mut target, kind).expect("a known resource type");
        let mut section = slot.take().unwrap_or_default();
        access_resource_patch(kind, &mut section, body.clone()).map_err(wire)?;
        *slot = Some(section);
        save(&app, &admin, &rid, target, false, Some(was)).await
    })
    .await?;
    Ok(resource_answer(&app, &t, kind, committed))
}

/// `DELETE …/{name}/{resourceType}`: the permission without that resource (204).
async fn delete_resource(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let kind = resource_type(&path.1)?;
    let (_, committed) = super::read_change_write(&app, async || {
        let was = current(&app, &path.0)?;
        let mut target = was.clone();
        let slot = section_of_mut(&mut target, kind).expect("a known resource type");
        if slot.take().is_none() {
            return Err(ApiError::NotFound(format!(
                "permission `{}` has no `{kind}` resource",
                path.0
            )));
        }
        save(&app, &admin, &rid, target, false, Some(was)).await
    })
    .await?;
    Ok(written(HttpResponse::NoContent().finish(), committed))
}

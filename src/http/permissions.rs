//! Permission targets, Artifactory v2 format (seed 002 "Assigning Permissions").

use super::error::ApiError;
use super::extract::{Admin, Body, Caller, RequestId};
use super::{base_url, resource, written, AppState};
use crate::domain::{self, Command};
use crate::views::{SectionWire, TargetWire};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use gatehouse_schemas::{PermissionSection, PermissionTarget};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/artifactory/api/v2/security/permissions").route(web::get().to(list)))
        .service(
            resource("/artifactory/api/v2/security/permissions/{name}")
                // HEAD, Artifactory's existence check, is GET's status without the body.
                .route(web::get().to(get))
                .route(web::post().to(create))
                .route(web::put().to(replace))
                .route(web::delete().to(delete)),
        );
}

fn section_in(w: SectionWire) -> PermissionSection {
    PermissionSection {
        include_patterns: w.include_patterns,
        exclude_patterns: w.exclude_patterns,
        repositories: w.repositories,
        users: w.actions.users,
        groups: w.actions.groups,
        patterns_by_repository: Default::default(),
    }
}

/// The wire form as the model's target, normalised and checked by the domain's rules
/// (`domain::normalize_target`), which every API family of permissions shares.
fn target_in(name: &str, w: TargetWire) -> Result<PermissionTarget, ApiError> {
    if w.name.as_ref().is_some_and(|n| n != name) {
        return Err(ApiError::BadRequest(
            "invalid `name`: must match the name in the path".into(),
        ));
    }
    Ok(domain::normalize_target(PermissionTarget {
        name: name.to_string(),
        repo: w.repo.map(section_in),
        build: w.build.map(section_in),
        release_bundle: w.release_bundle.map(section_in),
    })?)
}

async fn list(app: web::Data<AppState>, _admin: Admin, req: HttpRequest) -> HttpResponse {
    let base = base_url(&req);
    let s = app.view(&req);
    let items: Vec<_> = s
        .permissions
        .targets
        .keys()
        .map(|n| serde_json::json!({"name": n, "uri": format!("{base}/artifactory/api/v2/security/permissions/{}", super::segment(n))}))
        .collect();
    HttpResponse::Ok().json(items)
}

/// The grants the caller's credentials carry: a token scoped to some groups manages only
/// through those groups (it rewrote targets through its user's own `manage`).
fn manager_subject(s: &gatehouse_projections::State, caller: &Caller) -> crate::authorize::Subject {
    crate::authorize::Subject::new(
        &s.directory,
        &caller.0.username,
        false,
        caller.0.token.as_ref().map(|t| t.scope.as_str()),
    )
}

/// Admins, and (seed 002, the Manage action) users holding `manage` on this target.
fn admin_or_manager(
    s: &gatehouse_projections::State,
    caller: &Caller,
    name: &str,
) -> Result<bool, ApiError> {
    if caller.0.admin {
        return Ok(true);
    }
    let subject = manager_subject(s, caller);
    let manager = s.permissions.targets.get(name).is_some_and(|t| {
        domain::managed_sections(
            t,
            subject.own_grants.then_some(subject.username.as_str()),
            |g| subject.groups.contains(g),
        )
        .contains(&true)
    });
    if manager {
        Ok(false)
    } else {
        Err(ApiError::Forbidden(
            "this operation requires an admin, or `manage` on this permission target".into(),
        ))
    }
}

async fn get(
    app: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let s = app.view(&req);
    admin_or_manager(&s, &caller, &path)?;
    let t = s
        .permissions
        .targets
        .get(path.as_str())
        .ok_or_else(|| ApiError::NotFound(format!("permission target `{path}` not found")))?;
    Ok(HttpResponse::Ok().json(crate::views::target_out(t)))
}

async fn save(
    app: &AppState,
    caller: &Caller,
    rid: &RequestId,
    name: &str,
    body: TargetWire,
    create_only: bool,
) -> Result<HttpResponse, ApiError> {
    let mut target = target_in(name, body)?;
    let (existed, subject) = {
        let s = app.read();
        let current = s.permissions.targets.get(name);
        domain::keep_repository_patterns(current.map(|t| &**t), &mut target);
        (current.is_some(), manager_subject(&s, caller))
    };
    let command = if caller.0.admin {
        Command::SavePermissionTarget {
            target,
            create_only,
        }
    } else {
        Command::SavePermissionTargetAsManager {
            target,
            manager: caller.0.username.clone(),
            own_grants: subject.own_grants,
            groups: subject.groups.into_iter().collect(),
        }
    };
    let committed = app.submit(command, &caller.0.username, rid).await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let s = app.state_after(&committed, |s| s.permissions.targets.contains_key(name))?;
    let t = s
        .permissions
        .targets
        .get(name)
        .ok_or_else(|| ApiError::NotFound(format!("permission target `{name}` not found")))?;
    let res = written(
        HttpResponse::build(status).json(crate::views::target_out(t)),
        committed,
    );
    drop(s);
    Ok(with_bundle_notice(res, app, name))
}

/// `X-Gatehouse-Notice` when target `name`, as saved, leaves `repo` grants that no
/// longer apply: a repository a release-bundle section names is decided by those
/// sections only, so saving one silently switched off grants of targets nobody touched.
pub(crate) fn with_bundle_notice(
    mut res: HttpResponse,
    app: &AppState,
    name: &str,
) -> HttpResponse {
    let shadowed = crate::authorize::shadowed_repo_grants(&app.read(), name);
    if shadowed.is_empty() {
        return res;
    }
    let list = shadowed
        .iter()
        .map(|(repo, targets)| format!("`{repo}` ({})", targets.join(", ")))
        .collect::<Vec<_>>()
        .join("; ");
    let text = format!(
        "`repo` grants do not apply on repositories a release-bundle section names (grant them there): {list}"
    );
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&text) {
        res.headers_mut().append(
            actix_web::http::header::HeaderName::from_static("x-gatehouse-notice"),
            v,
        );
    }
    res
}

async fn create(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
    Body(body): Body<TargetWire>,
) -> Result<HttpResponse, ApiError> {
    save(&app, &Caller(admin.0), &rid, &path, body, true).await
}

/// A manager's extractor check runs before the body is read, like `Admin`'s.
struct AdminOrManager(Caller);

impl actix_web::FromRequest for AdminOrManager {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let caller = Caller::from_request(req, payload);
        let name = req.match_info().get("name").unwrap_or("").to_string();
        let app = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let caller = caller.await?;
            let app = app.ok_or_else(|| ApiError::Internal("no application state".into()))?;
            admin_or_manager(&app.read(), &caller, &name)?;
            Ok(AdminOrManager(caller))
        })
    }
}

async fn replace(
    app: web::Data<AppState>,
    caller: AdminOrManager,
    rid: RequestId,
    path: web::Path<String>,
    Body(body): Body<TargetWire>,
) -> Result<HttpResponse, ApiError> {
    save(&app, &caller.0, &rid, &path, body, false).await
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

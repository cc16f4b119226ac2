//! The repository registry (`/artifactory/api/repositories`): the few facts about a
//! repository that access decisions need — its class (for `ANY LOCAL` / `ANY REMOTE`),
//! its environments (for project roles) — and its project assignment and sharing.
//! Gatehouse stores no artifacts; a file server registers its repositories here.

use super::error::ApiError;
use super::extract::{Admin, Body, Caller, RequestId};
use super::{resource, written, AppState};
use crate::domain::Command;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use gatehouse_projections::RepositoryRecord;
use gatehouse_schemas::Repository;
use serde::Deserialize;
use serde_json::json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/artifactory/api/repositories").route(web::get().to(list)))
        .service(
            resource("/artifactory/api/repositories/{key}")
                .route(web::get().to(get))
                .route(web::put().to(save))
                .route(web::delete().to(delete)),
        );
}

pub use crate::domain::{normalize_environment, validate_repo_key, REPOSITORY_CLASSES as CLASSES};

#[derive(Deserialize)]
struct RepositoryIn {
    #[serde(default)]
    key: Option<String>,
    rclass: String,
    #[serde(default, rename = "packageType", alias = "package_type")]
    package_type: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    environments: Option<Vec<String>>,
    /// Accepted so that a GET body can be sent back; assignment itself is the projects
    /// API's job (`PUT /access/api/v1/projects/_/attach/repositories/...`).
    #[serde(default, rename = "projectKey", alias = "project_key")]
    project_key: Option<String>,
    /// Read-only, like `projectKey`: accepted so a GET body can be sent back unchanged;
    /// sharing is changed with `/access/api/v1/projects/_/share/...`.
    #[serde(default, rename = "sharedWithAllProjects")]
    _shared_with_all: Option<serde_json::Value>,
    #[serde(default, rename = "sharedWithProjects")]
    _shared_with: Option<serde_json::Value>,
}

pub fn repository_out(r: &RepositoryRecord) -> serde_json::Value {
    let c = &r.config;
    json!({
        "key": c.key,
        "rclass": c.rclass,
        "packageType": c.package_type,
        "description": c.description,
        "environments": crate::authorize::repository_environments(c),
        "projectKey": r.project,
        "sharedWithAllProjects": r.shared_with_all,
        "sharedWithProjects": r.shared_with,
    })
}

async fn list(app: web::Data<AppState>, caller: Caller, req: HttpRequest) -> HttpResponse {
    let s = app.view(&req);
    let sees = Visible::of(&app, &s, &caller, &req);
    let items: Vec<_> = (s.repositories.by_key.values())
        .filter(|r| sees.repository(r))
        .map(repository_out)
        .collect();
    HttpResponse::Ok().json(items)
}

async fn get(
    app: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let s = app.view(&req);
    let r = (s.repositories.by_key.get(path.as_str()))
        .filter(|r| Visible::of(&app, &s, &caller, &req).repository(r))
        .ok_or_else(|| ApiError::NotFound(format!("repository `{path}` not found")))?;
    Ok(HttpResponse::Ok().json(repository_out(r)))
}

/// The repositories a caller may know of: all for an admin; for anyone else, those a
/// permission target or a project role grants it something in, as Artifactory lists only
/// what its user may use (every key was listed to every signed-in user).
enum Visible {
    All,
    Some {
        names: std::collections::BTreeSet<String>,
        any: bool,
        any_local: bool,
        any_remote: bool,
    },
}

impl Visible {
    fn of(
        app: &AppState,
        s: &gatehouse_projections::State,
        caller: &Caller,
        req: &HttpRequest,
    ) -> Visible {
        let caller = &caller.0;
        if caller.admin {
            return Visible::All;
        }
        let subject = crate::authorize::Subject::new(
            &s.directory,
            &caller.username,
            false,
            caller.token.as_ref().map(|t| t.scope.as_str()),
        );
        let mut names = std::collections::BTreeSet::new();
        for e in crate::authorize::effective(s, &subject) {
            let repositories = e["repositories"].as_array().cloned().unwrap_or_default();
            names.extend(
                repositories
                    .iter()
                    .filter_map(|r| r.as_str().map(str::to_string)),
            );
        }
        // A past state's index is built for this request only: the shared one is the
        // live state's (`authorize` reads it on every request).
        let past = actix_web::HttpMessage::extensions(req)
            .get::<super::AsOf>()
            .is_some();
        let index = if past {
            std::sync::Arc::new(crate::authorize::PermissionIndex::build(s))
        } else {
            app.permission_index(s)
        };
        for e in crate::authorize::effective_project_roles(&index, &subject) {
            if let Some(r) = e["repository"].as_str() {
                names.insert(r.to_string());
            }
        }
        Visible::Some {
            any: names.contains("ANY"),
            any_local: names.contains("ANY LOCAL"),
            any_remote: names.contains("ANY REMOTE"),
            names,
        }
    }

    fn repository(&self, r: &RepositoryRecord) -> bool {
        match self {
            Visible::All => true,
            Visible::Some {
                names,
                any,
                any_local,
                any_remote,
            } => {
                let class = r.config.rclass.as_str();
                *any || names.contains(&r.config.key)
                    || (*any_local && matches!(class, "local" | "federated"))
                    || (*any_remote && class == "remote")
            }
        }
    }
}

/// Create (201) or replace (200) a repository's registration.
async fn save(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
    Body(body): Body<RepositoryIn>,
) -> Result<HttpResponse, ApiError> {
    let key = path.into_inner();
    validate_repo_key("key", &key)?;
    if body.key.as_ref().is_some_and(|k| *k != key) {
        return Err(ApiError::BadRequest(
            "invalid `key`: must match the key in the path".into(),
        ));
    }
    if !CLASSES.contains(&body.rclass.as_str()) {
        return Err(ApiError::BadRequest(format!(
            "invalid `rclass`: `{}` (use {})",
            body.rclass.escape_debug(),
            CLASSES.join(", ")
        )));
    }
    let mut environments = Vec::new();
    for (i, e) in body.environments.unwrap_or_default().iter().enumerate() {
        let e = normalize_environment(&format!("environments[{i}]"), e)?;
        if !environments.contains(&e) {
            environments.push(e);
        }
    }
    for (field, v) in [
        ("packageType", &body.package_type),
        ("description", &body.description),
    ] {
        if v.as_ref()
            .is_some_and(|v| v.len() > 1024 || v.chars().any(char::is_control))
        {
            return Err(ApiError::BadRequest(format!(
                "invalid `{field}`: at most 1024 characters, no control characters"
            )));
        }
    }
    let existed = {
        let s = app.read();
        let current = s.repositories.by_key.get(&key);
        if let Some(p) = &body.project_key {
            if current.and_then(|r| r.project.as_ref()) != Some(p) {
                return Err(ApiError::BadRequest(format!(
                    "invalid `projectKey`: assign a repository with PUT /access/api/v1/projects/_/attach/repositories/{key}/{p}"
                )));
            }
        }
        current.is_some()
    };
    let committed = app
        .submit(
            Command::SaveRepository(Repository {
                key: key.clone(),
                rclass: body.rclass,
                package_type: body.package_type,
                description: body.description,
                environments,
            }),
            &admin.0.username,
            &rid,
        )
        .await?;
    let s = app.read();
    let r = s
        .repositories
        .by_key
        .get(&key)
        .ok_or_else(|| ApiError::NotFound(format!("repository `{key}` not found")))?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(written(
        HttpResponse::build(status).json(repository_out(r)),
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
            Command::DeleteRepository {
                key: path.into_inner(),
            },
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(HttpResponse::NoContent().finish(), committed))
}

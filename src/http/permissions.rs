//! Permission targets, Artifactory v2 format (seed 002 "Assigning Permissions").

use super::error::ApiError;
use super::extract::{Admin, Body, RequestId};
use super::{base_url, resource, written, AppState};
use crate::authorize::{
    is_any_repository, valid_pattern, ACTIONS, BUILD_INFO_REPOSITORY, RELEASE_BUNDLES_REPOSITORY,
};
use crate::domain::{self, Command};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use gatehouse_schemas::{PermissionSection, PermissionTarget};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/artifactory/api/v2/security/permissions").route(web::get().to(list)))
        .service(
            resource("/artifactory/api/v2/security/permissions/{name}")
                .route(web::get().to(get))
                .route(web::post().to(create))
                .route(web::put().to(replace))
                .route(web::delete().to(delete)),
        );
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ActionsWire {
    #[serde(default)]
    users: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    groups: BTreeMap<String, Vec<String>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SectionWire {
    #[serde(
        rename = "include-patterns",
        alias = "include_patterns",
        alias = "includePatterns",
        default
    )]
    include_patterns: Vec<String>,
    #[serde(
        rename = "exclude-patterns",
        alias = "exclude_patterns",
        alias = "excludePatterns",
        default
    )]
    exclude_patterns: Vec<String>,
    #[serde(default)]
    repositories: Vec<String>,
    #[serde(default)]
    actions: ActionsWire,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TargetWire {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    repo: Option<SectionWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    build: Option<SectionWire>,
    #[serde(
        rename = "releaseBundle",
        alias = "release_bundle",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    release_bundle: Option<SectionWire>,
}

fn section_in(field: &str, w: SectionWire) -> Result<PermissionSection, ApiError> {
    for (kind, list) in [
        ("include-patterns", &w.include_patterns),
        ("exclude-patterns", &w.exclude_patterns),
    ] {
        for (i, p) in list.iter().enumerate() {
            if !valid_pattern(p) || p.len() > 1024 {
                return Err(ApiError::BadRequest(format!(
                    "invalid `{field}.{kind}[{i}]`: `{}` is not a valid pattern",
                    p.escape_debug()
                )));
            }
        }
    }
    // Each section is about its own repositories (see `crate::authorize::ResourceKind`):
    // refuse what would be stored but never consulted.
    let mut repositories = w.repositories;
    for (i, r) in repositories.iter().enumerate() {
        let at = format!("{field}.repositories[{i}]");
        let misplaced = match field {
            "build" if r != BUILD_INFO_REPOSITORY => Some(format!(
                "build permissions apply to `{BUILD_INFO_REPOSITORY}` only"
            )),
            "releaseBundle" if is_any_repository(r) || r == BUILD_INFO_REPOSITORY => {
                Some("name the release-bundle repositories (default `release-bundles`)".to_string())
            }
            "repo" if r == BUILD_INFO_REPOSITORY => {
                Some("build info is granted in the `build` section".to_string())
            }
            "repo" if r == RELEASE_BUNDLES_REPOSITORY => {
                Some("release bundles are granted in the `releaseBundle` section".to_string())
            }
            _ => None,
        };
        if let Some(why) = misplaced {
            return Err(ApiError::BadRequest(format!(
                "invalid `{at}`: `{}`: {why}",
                r.escape_debug()
            )));
        }
        if !is_any_repository(r) {
            domain::validate_group_name(&at, r)?;
        }
    }
    // Stored as Artifactory shows them: with the repository they default to.
    if repositories.is_empty() {
        match field {
            "build" => repositories.push(BUILD_INFO_REPOSITORY.to_string()),
            "releaseBundle" => repositories.push(RELEASE_BUNDLES_REPOSITORY.to_string()),
            _ => {}
        }
    }
    let check_actions = |who: &str, name: &str, actions: &[String]| -> Result<(), ApiError> {
        match actions.iter().find(|a| !ACTIONS.contains(&a.as_str())) {
            Some(a) => Err(ApiError::BadRequest(format!(
                "invalid `{field}.actions.{who}.{name}`: unknown action `{}` (use {})",
                a.escape_debug(),
                ACTIONS.join(", ")
            ))),
            None => Ok(()),
        }
    };
    let mut users = BTreeMap::new();
    for (name, actions) in w.actions.users {
        let name = domain::normalize_username(&format!("{field}.actions.users"), &name)?;
        check_actions("users", &name, &actions)?;
        users.insert(name, actions);
    }
    for (name, actions) in &w.actions.groups {
        domain::validate_group_name(&format!("{field}.actions.groups"), name)?;
        check_actions("groups", name, actions)?;
    }
    Ok(PermissionSection {
        include_patterns: w.include_patterns,
        exclude_patterns: w.exclude_patterns,
        repositories,
        users,
        groups: w.actions.groups,
    })
}

fn section_out(s: &PermissionSection) -> SectionWire {
    SectionWire {
        include_patterns: s.include_patterns.clone(),
        exclude_patterns: s.exclude_patterns.clone(),
        repositories: s.repositories.clone(),
        actions: ActionsWire {
            users: s.users.clone(),
            groups: s.groups.clone(),
        },
    }
}

pub(crate) fn target_out(t: &PermissionTarget) -> TargetWire {
    TargetWire {
        name: Some(t.name.clone()),
        repo: t.repo.as_ref().map(section_out),
        build: t.build.as_ref().map(section_out),
        release_bundle: t.release_bundle.as_ref().map(section_out),
    }
}

fn target_in(name: &str, w: TargetWire) -> Result<PermissionTarget, ApiError> {
    domain::validate_group_name("name", name)?;
    if w.name.as_ref().is_some_and(|n| n != name) {
        return Err(ApiError::BadRequest(
            "invalid `name`: must match the name in the path".into(),
        ));
    }
    Ok(PermissionTarget {
        name: name.to_string(),
        repo: w.repo.map(|s| section_in("repo", s)).transpose()?,
        build: w.build.map(|s| section_in("build", s)).transpose()?,
        release_bundle: w
            .release_bundle
            .map(|s| section_in("releaseBundle", s))
            .transpose()?,
    })
}

async fn list(app: web::Data<AppState>, _admin: Admin, req: HttpRequest) -> HttpResponse {
    let base = base_url(&req);
    let s = app.view(&req);
    let items: Vec<_> = s
        .permissions
        .targets
        .keys()
        .map(|n| serde_json::json!({"name": n, "uri": format!("{base}/artifactory/api/v2/security/permissions/{n}")}))
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
    Ok(HttpResponse::Ok().json(target_out(t)))
}

async fn save(
    app: &AppState,
    admin: &Admin,
    rid: &RequestId,
    name: &str,
    body: TargetWire,
    create_only: bool,
) -> Result<HttpResponse, ApiError> {
    let target = target_in(name, body)?;
    let existed = app.read().permissions.targets.contains_key(name);
    let committed = app
        .submit(
            Command::SavePermissionTarget {
                target,
                create_only,
            },
            &admin.0.username,
            rid,
        )
        .await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let s = app.read();
    let t = s
        .permissions
        .targets
        .get(name)
        .ok_or_else(|| ApiError::NotFound(format!("permission target `{name}` not found")))?;
    Ok(written(
        HttpResponse::build(status).json(target_out(t)),
        committed,
    ))
}

async fn create(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
    Body(body): Body<TargetWire>,
) -> Result<HttpResponse, ApiError> {
    save(&app, &admin, &rid, &path, body, true).await
}

async fn replace(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
    Body(body): Body<TargetWire>,
) -> Result<HttpResponse, ApiError> {
    save(&app, &admin, &rid, &path, body, false).await
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

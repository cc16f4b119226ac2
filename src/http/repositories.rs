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
        // Before `{key}`, which took them for repositories named so ("repository
        // `existence` not found").
        .service(
            resource("/artifactory/api/repositories/existence").route(web::get().to(existence)),
        )
        .service(
            resource("/artifactory/api/repositories/configurations")
                .route(web::get().to(configurations)),
        )
        .service(
            resource("/artifactory/api/repositories/{key}")
                .route(web::get().to(get))
                .route(web::put().to(save))
                .route(web::post().to(update))
                .route(web::delete().to(delete)),
        );
}

pub use crate::domain::{normalize_environment, validate_repo_key, REPOSITORY_CLASSES as CLASSES};

#[derive(Deserialize, Clone)]
struct RepositoryIn {
    #[serde(default)]
    key: Option<String>,
    /// Required on create; an update (`POST`) keeps it (a repository's class never
    /// changes).
    #[serde(default)]
    rclass: Option<String>,
    #[serde(default, rename = "packageType", alias = "package_type")]
    package_type: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    environments: Option<Vec<String>>,
    /// A remote repository's upstream URL (kept only for `remote`; other classes have
    /// none, and Artifactory ignores it there).
    #[serde(default)]
    url: Option<String>,
    /// A virtual repository's repositories, in order (kept only for `virtual`).
    #[serde(default)]
    repositories: Option<Vec<String>>,
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
    let mut out = json!({
        "key": c.key,
        "rclass": c.rclass,
        "packageType": c.package_type,
        "description": c.description,
        "environments": crate::authorize::repository_environments(c),
        "projectKey": r.project,
        "sharedWithAllProjects": r.shared_with_all,
        "sharedWithProjects": r.shared_with,
    });
    // Artifactory answers these only for the class they belong to.
    if let Some(url) = &c.url {
        out["url"] = json!(url);
    }
    if c.rclass == "virtual" {
        out["repositories"] = json!(c.repositories);
    }
    out
}

/// `GET …/repositories[?type=&packageType=&project=]`: Artifactory's list items (`key`,
/// `type` in upper case, `description`, `url`, `packageType`; clients parse these and
/// failed without `type` and `url`) with Gatehouse's own fields beside them; the filters
/// narrow it (they were ignored: a script asking for remote repositories got all).
async fn list(
    app: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let kind = super::query_param(&req, "type")?.map(|t| t.to_lowercase());
    if let Some(k) = &kind {
        if !CLASSES.contains(&k.as_str()) {
            return Err(ApiError::BadRequest(format!(
                "invalid `type`: `{}` (use {})",
                k.escape_debug(),
                CLASSES.join(", ")
            )));
        }
    }
    let package = super::query_param(&req, "packageType")?;
    let project = super::query_param(&req, "project")?;
    let s = app.view(&req);
    let sees = Visible::of(&app, &s, &caller, &req);
    let base = super::base_url(&req);
    let items: Vec<_> = (s.repositories.by_key.values())
        .filter(|r| sees.repository(r))
        .filter(|r| kind.as_ref().is_none_or(|k| *k == r.config.rclass))
        .filter(|r| {
            package.as_ref().is_none_or(|p| {
                r.config
                    .package_type
                    .as_ref()
                    .is_some_and(|t| t.eq_ignore_ascii_case(p))
            })
        })
        .filter(|r| {
            project
                .as_ref()
                .is_none_or(|p| r.project.as_ref() == Some(p))
        })
        .map(|r| {
            let mut item = repository_out(r);
            item["type"] = json!(r.config.rclass.to_uppercase());
            item["url"] = json!(format!(
                "{base}/artifactory/{}",
                super::segment(&r.config.key)
            ));
            item
        })
        .collect();
    Ok(HttpResponse::Ok().json(items))
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

/// The values of a query parameter that may be given several times (`type=local&type=remote`),
/// each of them comma-separated lists too; lower case.
fn listed(req: &HttpRequest, name: &str) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    for pair in req.query_string().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k != name {
            continue;
        }
        let v = super::percent_decode(&v.replace('+', " ")).ok_or_else(|| {
            ApiError::BadRequest(format!("invalid `{name}`: bad percent-encoding"))
        })?;
        out.extend(
            v.split(',')
                .map(|t| t.trim().to_lowercase())
                .filter(|t| !t.is_empty()),
        );
    }
    Ok(out)
}

/// Repository classes asked for by `name`, each one of [`CLASSES`] (400 naming it).
fn classes_asked(req: &HttpRequest, name: &str) -> Result<Vec<String>, ApiError> {
    let asked = listed(req, name)?;
    if let Some(bad) = asked.iter().find(|t| !CLASSES.contains(&t.as_str())) {
        return Err(ApiError::BadRequest(format!(
            "invalid `{name}`: `{}` (use {})",
            bad.escape_debug(),
            CLASSES.join(", ")
        )));
    }
    Ok(asked)
}

/// `GET …/repositories/existence?type=local&type=remote&projectKey=p`: whether the caller
/// can see a repository of those classes (any class when none is given), in that project
/// when one is given, and which of the classes asked have one (py-jfrog-client's
/// `check_if_repository_exists`).
async fn existence(
    app: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    super::only_query_params(&req, &["type", "projectKey"])?;
    let asked = classes_asked(&req, "type")?;
    let project = super::query_param(&req, "projectKey")?;
    let s = app.view(&req);
    let sees = Visible::of(&app, &s, &caller, &req);
    let mut matching: Vec<String> = Vec::new();
    for r in s
        .repositories
        .by_key
        .values()
        .filter(|r| sees.repository(r))
    {
        let class = r.config.rclass.as_str();
        let in_project = project
            .as_ref()
            .is_none_or(|p| r.project.as_ref() == Some(p));
        let wanted = asked.is_empty() || asked.iter().any(|a| a == class);
        let upper = class.to_uppercase();
        if in_project && wanted && !matching.contains(&upper) {
            matching.push(upper);
        }
    }
    matching.sort();
    let mut body = json!({"exists": !matching.is_empty(), "matchingRepoTypes": matching});
    if let Some(p) = project {
        body["projectKey"] = json!(p);
    }
    Ok(HttpResponse::Ok().json(body))
}

/// `GET …/repositories/configurations?repoType=local,remote&packageType=maven`: the
/// configuration of every repository the caller can see, by class (`LOCAL`, `REMOTE`,
/// `VIRTUAL`, `FEDERATED`), as `GET …/repositories/{key}` shows each
/// (py-jfrog-client's `get_all_repository_configurations`).
async fn configurations(
    app: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    super::only_query_params(&req, &["repoType", "packageType"])?;
    let classes = classes_asked(&req, "repoType")?;
    let packages = listed(&req, "packageType")?;
    let s = app.view(&req);
    let sees = Visible::of(&app, &s, &caller, &req);
    let mut by_class = serde_json::Map::new();
    for r in s
        .repositories
        .by_key
        .values()
        .filter(|r| sees.repository(r))
    {
        let class = r.config.rclass.as_str();
        if !classes.is_empty() && !classes.iter().any(|c| c == class) {
            continue;
        }
        let package_ok = packages.is_empty()
            || r.config
                .package_type
                .as_ref()
                .is_some_and(|t| packages.iter().any(|p| t.eq_ignore_ascii_case(p)));
        if !package_ok {
            continue;
        }
        let list = by_class
            .entry(class.to_uppercase())
            .or_insert_with(|| json!([]));
        if let Some(list) = list.as_array_mut() {
            list.push(repository_out(r));
        }
    }
    Ok(HttpResponse::Ok().json(serde_json::Value::Object(by_class)))
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
/// The repository `key` as `body` describes it, checked; fields `body` leaves out are
/// `current`'s (an update), or empty (a create, which must name `rclass`).
fn repository_from(
    key: &str,
    body: RepositoryIn,
    current: Option<&RepositoryRecord>,
) -> Result<Repository, ApiError> {
    validate_repo_key("key", key)?;
    if body.key.as_ref().is_some_and(|k| *k != key) {
        return Err(ApiError::BadRequest(
            "invalid `key`: must match the key in the path".into(),
        ));
    }
    let was = current.map(|r| &r.config);
    let rclass = match (body.rclass, was) {
        (Some(c), Some(w)) if c != w.rclass => {
            return Err(ApiError::BadRequest(format!(
                "invalid `rclass`: `{}` is a {} repository; its class does not change",
                key, w.rclass
            )))
        }
        (Some(c), _) => c,
        (None, Some(w)) => w.rclass.clone(),
        (None, None) => return Err(ApiError::BadRequest("invalid `rclass`: required".into())),
    };
    if !CLASSES.contains(&rclass.as_str()) {
        return Err(ApiError::BadRequest(format!(
            "invalid `rclass`: `{}` (use {})",
            rclass.escape_debug(),
            CLASSES.join(", ")
        )));
    }
    let environments = match body.environments {
        Some(given) => {
            let mut environments = Vec::new();
            for (i, e) in given.iter().enumerate() {
                let e = normalize_environment(&format!("environments[{i}]"), e)?;
                if !environments.contains(&e) {
                    environments.push(e);
                }
            }
            environments
        }
        None => was.map(|w| w.environments.clone()).unwrap_or_default(),
    };
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
    if let Some(p) = &body.project_key {
        if current.and_then(|r| r.project.as_ref()) != Some(p) {
            return Err(ApiError::BadRequest(format!(
                "invalid `projectKey`: assign a repository with PUT /access/api/v1/projects/_/attach/repositories/{key}/{p}"
            )));
        }
    }
    // A remote repository's upstream and a virtual one's members belong to their class:
    // given for another class they are ignored, as Artifactory ignores them.
    let url = match (&body.url, rclass.as_str()) {
        (Some(u), "remote") => {
            super::webhooks::check_url("url", u)?;
            // Stored with its scheme in lower case (`HTTPS://…` is the same URL).
            Some(match u.split_once("://") {
                Some((scheme, rest)) => format!("{}://{rest}", scheme.to_ascii_lowercase()),
                None => u.clone(),
            })
        }
        (None, "remote") => was.and_then(|w| w.url.clone()),
        _ => None,
    };
    let repositories = match (&body.repositories, rclass.as_str()) {
        (Some(given), "virtual") => {
            let mut members: Vec<String> = Vec::new();
            for (i, m) in given.iter().enumerate() {
                let field = format!("repositories[{i}]");
                validate_repo_key(&field, m)?;
                if m == key {
                    return Err(ApiError::BadRequest(format!(
                        "invalid `{field}`: a virtual repository does not contain itself"
                    )));
                }
                if !members.contains(m) {
                    members.push(m.clone());
                }
            }
            members
        }
        (None, "virtual") => was.map(|w| w.repositories.clone()).unwrap_or_default(),
        _ => Vec::new(),
    };
    Ok(Repository {
        key: key.to_string(),
        rclass,
        url,
        repositories,
        package_type: body
            .package_type
            .or_else(|| was.and_then(|w| w.package_type.clone())),
        description: body
            .description
            .or_else(|| was.and_then(|w| w.description.clone())),
        environments,
    })
}

/// A remote's `url` or a virtual's `repositories` given for another class: not kept,
/// and named as ignored, as every field not kept is.
fn note_other_class(req: &HttpRequest, body: &RepositoryIn, rclass: &str) {
    let mut ignored = Vec::new();
    if body.url.is_some() && rclass != "remote" {
        ignored.push("url".to_string());
    }
    if body.repositories.is_some() && rclass != "virtual" {
        ignored.push("repositories".to_string());
    }
    super::extract::note_ignored(req, ignored);
}

async fn save(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    req: HttpRequest,
    path: web::Path<String>,
    Body(body): Body<RepositoryIn>,
) -> Result<HttpResponse, ApiError> {
    let key = path.into_inner();
    let (repository, existed) = {
        let s = app.read();
        let current = s.repositories.by_key.get(&key);
        // A PUT is the whole configuration: its class is required, and fields it leaves
        // out are not kept.
        if body.rclass.is_none() {
            return Err(ApiError::BadRequest("invalid `rclass`: required".into()));
        }
        let mut r = repository_from(&key, body.clone(), current)?;
        note_other_class(&req, &body, &r.rclass);
        if body.package_type.is_none() {
            r.package_type = None;
        }
        if body.description.is_none() {
            r.description = None;
        }
        if body.environments.is_none() {
            r.environments.clear();
        }
        if body.url.is_none() {
            r.url = None;
        }
        if body.repositories.is_none() {
            r.repositories.clear();
        }
        (r, current.is_some())
    };
    let committed = app
        .submit(Command::SaveRepository(repository), &admin.0.username, &rid)
        .await?;
    answer_saved(&app, &key, existed, committed)
}

/// `POST …/repositories/{key}` (Artifactory's "Update Repository Configuration", seed
/// 002): the fields given change, the others stay (it was a 405, and every client library
/// updates a repository this way).
async fn update(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    req: HttpRequest,
    path: web::Path<String>,
    Body(body): Body<RepositoryIn>,
) -> Result<HttpResponse, ApiError> {
    let key = path.into_inner();
    if let Some(current) = app.read().repositories.by_key.get(&key) {
        note_other_class(&req, &body, &current.config.rclass);
    }
    let committed = super::read_change_write(&app, async || {
        let (was, repository) = {
            let s = app.read();
            let current = s
                .repositories
                .by_key
                .get(&key)
                .ok_or_else(|| ApiError::NotFound(format!("repository `{key}` not found")))?;
            (
                current.config.clone(),
                repository_from(&key, body.clone(), Some(current))?,
            )
        };
        app.submit(
            Command::IfUnchanged {
                read: crate::domain::AsRead::Repository(key.clone(), Some(was)),
                command: Box::new(Command::SaveRepository(repository)),
            },
            &admin.0.username,
            &rid,
        )
        .await
    })
    .await?;
    answer_saved(&app, &key, true, committed)
}

fn answer_saved(
    app: &AppState,
    key: &str,
    existed: bool,
    committed: crate::writer::Committed,
) -> Result<HttpResponse, ApiError> {
    let s = app.read();
    let r = s
        .repositories
        .by_key
        .get(key)
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

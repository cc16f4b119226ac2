//! `/artifactory/api/security/groups[/{name}]`: groups in Artifactory's shape.

use super::super::error::ApiError;
use super::super::extract::{Admin, Body, RequestId};
use super::super::groups::{normalize_members, path_name};
use super::super::{base_url, resource, written, AppState};
use super::{name_matches, text};
use crate::domain::{self, Command, GroupChanges, NewGroup};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/artifactory/api/security/groups").route(web::get().to(list)))
        .service(
            resource("/artifactory/api/security/groups/{name}")
                .route(web::get().to(get))
                .route(web::put().to(put))
                .route(web::post().to(post))
                .route(web::delete().to(delete)),
        );
}

/// Artifactory's group fields; py-jfrog-client sends the snake_case spellings here too.
#[derive(Deserialize, Default, Clone)]
struct GroupIn {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, rename = "autoJoin", alias = "auto_join")]
    auto_join: Option<bool>,
    #[serde(default, rename = "adminPrivileges", alias = "admin_privileges")]
    admin_privileges: Option<bool>,
    #[serde(default)]
    realm: Option<String>,
    #[serde(default, rename = "realmAttributes", alias = "realm_attributes")]
    realm_attributes: Option<String>,
    #[serde(default, rename = "userNames", alias = "usersNames", alias = "members")]
    user_names: Option<Vec<String>>,
    /// Artifactory's group JSON carries it; it is the group's `external_id` (one value
    /// for every API; it was dropped here).
    #[serde(default, rename = "externalId", alias = "external_id")]
    external_id: Option<String>,
}

/// The group fields the domain's errors name, as this API spells them.
const FIELDS: &[(&str, &str)] = &[
    ("auto_join", "autoJoin"),
    ("admin_privileges", "adminPrivileges"),
    ("realm_attributes", "realmAttributes"),
    ("external_id", "externalId"),
    ("members", "userNames"),
];

async fn list(app: web::Data<AppState>, _admin: Admin, req: HttpRequest) -> HttpResponse {
    let base = base_url(&req);
    let s = app.view(&req);
    let groups: Vec<_> = s
        .directory
        .groups
        .values()
        .map(|g| json!({"name": g.name, "uri": format!("{base}/artifactory/api/security/groups/{}", crate::http::segment(&g.name))}))
        .collect();
    HttpResponse::Ok().json(groups)
}

async fn get(
    app: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let name = path_name(&path)?;
    let s = app.view(&req);
    let g = s
        .directory
        .groups
        .get(name.as_str())
        .ok_or_else(|| ApiError::NotFound(format!("group `{name}` not found")))?;
    Ok(HttpResponse::Ok().json(crate::views::artifactory_group(g)))
}

fn changes(body: GroupIn) -> Result<GroupChanges, ApiError> {
    Ok(GroupChanges {
        description: body.description,
        auto_join: body.auto_join,
        admin_privileges: body.admin_privileges,
        realm: body.realm,
        realm_attributes: body.realm_attributes,
        external_id: body.external_id,
        members: body
            .user_names
            .map(|m| normalize_members("userNames", m))
            .transpose()?,
    })
}

/// `PUT …/groups/{name}`: create (201) or change (200); no body in the answer.
async fn put(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
    Body(body): Body<GroupIn>,
) -> Result<HttpResponse, ApiError> {
    let name = path_name(&path)?;
    name_matches(body.name.as_deref(), &name)?;
    domain::validate_group_name("name", &name)?;
    // Create or replace, also when another request creates or deletes the group between
    // the look and the write (then the other way is taken: it answered 409 or 404).
    let mut tries = 0;
    loop {
        let exists = || app.read().directory.groups.contains_key(name.as_str());
        let existed = exists();
        let body = body.clone();
        let cmd = if existed {
            Command::UpdateGroup {
                name: name.clone(),
                changes: changes(body)?,
            }
        } else {
            Command::CreateGroup(NewGroup {
                name: name.clone(),
                description: body.description,
                auto_join: body.auto_join.unwrap_or(false),
                admin_privileges: body.admin_privileges.unwrap_or(false),
                realm: body.realm,
                realm_attributes: body.realm_attributes,
                external_id: body.external_id.filter(|e| !e.is_empty()),
                members: normalize_members("userNames", body.user_names.unwrap_or_default())?,
            })
        };
        match app.submit(cmd, &admin.0.username, &rid).await {
            Err(ApiError::Taken(_) | ApiError::Conflict(_) | ApiError::NotFound(_))
                if tries < 3 && exists() != existed =>
            {
                tries += 1;
            }
            result => {
                let committed = result.map_err(|e| e.renaming_fields(FIELDS))?;
                // A replace answers the group as it is now (py-jfrog-client's
                // `create_or_replace_group` reads a group from a 200, and failed on an
                // empty body after the change was made); a create, 201 with none.
                let answer = if existed {
                    let s = app.read();
                    match s.directory.groups.get(name.as_str()) {
                        Some(g) => HttpResponse::Ok().json(crate::views::artifactory_group(g)),
                        None => HttpResponse::Ok().finish(),
                    }
                } else {
                    HttpResponse::Created().finish()
                };
                return Ok(written(answer, committed));
            }
        }
    }
}

/// `POST …/groups/{name}`: change the fields given; `userNames` replaces the members.
async fn post(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
    Body(body): Body<GroupIn>,
) -> Result<HttpResponse, ApiError> {
    let name = path_name(&path)?;
    name_matches(body.name.as_deref(), &name)?;
    let cmd = Command::UpdateGroup {
        name: name.clone(),
        changes: changes(body)?,
    };
    let committed = app
        .submit(cmd, &admin.0.username, &rid)
        .await
        .map_err(|e| e.renaming_fields(FIELDS))?;
    Ok(written(HttpResponse::Ok().finish(), committed))
}

async fn delete(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = path_name(&path)?;
    let committed = app
        .submit(
            Command::DeleteGroup { name: name.clone() },
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(
        text(
            StatusCode::OK,
            format!("Group '{name}' has been removed successfully."),
        ),
        committed,
    ))
}

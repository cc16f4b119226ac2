//! Groups, v2 API (seed 004 "Groups"). Input accepts the seed's camelCase spellings too.

use super::error::ApiError;
use super::extract::{Admin, Body, OptionalBody, RequestId};
use super::users::AddRemove;
use super::{
    base_url, limit_param, page_shared, query_param, resource, with_cursor, written, AppState,
};
use crate::domain::{self, Command, GroupChanges, NewGroup};
use actix_web::http::header::ContentType;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/access/api/v2/groups")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        resource("/access/api/v2/groups/{name}")
            .route(web::get().to(get))
            .route(web::patch().to(patch))
            .route(web::delete().to(delete)),
    )
    .service(
        resource("/access/api/v2/groups/{name}/members").route(web::patch().to(change_members)),
    );
}

fn group_response(
    app: &AppState,
    name: &str,
    status: StatusCode,
    committed: &crate::writer::Committed,
) -> Result<HttpResponse, ApiError> {
    let s = app.state_after(committed, |s| s.directory.groups.contains_key(name))?;
    let group = s
        .directory
        .groups
        .get(name)
        .ok_or_else(|| ApiError::NotFound(format!("group `{name}` not found")))?;
    Ok(HttpResponse::build(status)
        .content_type(ContentType::json())
        .body(crate::views::GroupView::from(&**group).to_json()))
}

pub(super) fn path_name(name: &str) -> Result<String, ApiError> {
    domain::validate_group_name("name", name)?;
    Ok(name.to_string())
}

/// Members are user names: compare them the way users are stored (lower case).
pub(super) fn normalize_members(field: &str, names: Vec<String>) -> Result<Vec<String>, ApiError> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| Ok(domain::normalize_username(&format!("{field}[{i}]"), n)?))
        .collect()
}

async fn list(
    app: web::Data<AppState>,
    _admin: Admin,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let limit = limit_param(&req)?;
    let cursor = query_param(&req, "cursor")?;
    // JFrog's filters: a part of the name (any case), and the order (they were ignored:
    // a script asking for `ga` got every group).
    let name_part = query_param(&req, "groupName")?.map(|g| g.to_lowercase());
    let descending = super::bool_param(&req, "descendingOrder")?;
    let (project, role) = super::projects::project_role_filter(&req)?;
    let base = base_url(&req);
    let s = app.view(&req);
    let members = project
        .as_deref()
        .map(|p| super::projects::members_holding(&s, p, "group", role.as_deref()))
        .transpose()?;
    let (page, next) = if name_part.is_none() && !descending && members.is_none() {
        page_shared(&s.directory.groups, cursor.as_deref(), limit)
    } else {
        let filtered: Vec<(&str, &gatehouse_projections::Group)> = s
            .directory
            .groups
            .iter()
            .filter(|(_, g)| {
                name_part
                    .as_ref()
                    .is_none_or(|p| g.name.to_lowercase().contains(p.as_str()))
            })
            .filter(|(_, g)| members.as_ref().is_none_or(|m| m.contains(g.name.as_str())))
            .map(|(k, g)| (std::borrow::Borrow::<str>::borrow(k), &**g))
            .collect();
        super::page_ordered(filtered.into_iter(), cursor.as_deref(), limit, descending)
    };
    let groups: Vec<_> = page
        .iter()
        .map(|g| serde_json::json!({"group_name": g.name, "uri": format!("{base}/access/api/v2/groups/{}", super::segment(&g.name))}))
        .collect();
    Ok(HttpResponse::Ok().json(with_cursor(serde_json::json!({ "groups": groups }), next)))
}

#[derive(Deserialize, Default)]
struct GroupBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, alias = "autoJoin")]
    auto_join: Option<bool>,
    #[serde(default, alias = "adminPrivileges")]
    admin_privileges: Option<bool>,
    #[serde(default)]
    realm: Option<String>,
    #[serde(default, alias = "realmAttributes")]
    realm_attributes: Option<String>,
    #[serde(default, alias = "externalId")]
    external_id: Option<String>,
    #[serde(default, deserialize_with = "crate::views::names_or_json_text")]
    members: Option<Vec<String>>,
}

async fn create(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    Body(body): Body<GroupBody>,
) -> Result<HttpResponse, ApiError> {
    let admin = &admin.0;
    let name = body
        .name
        .clone()
        .ok_or_else(|| ApiError::BadRequest("invalid request body: missing field `name`".into()))?;
    domain::validate_group_name("name", &name)?;
    let members = normalize_members("members", body.members.unwrap_or_default())?;
    let cmd = Command::CreateGroup(NewGroup {
        name: name.clone(),
        description: body.description,
        auto_join: body.auto_join.unwrap_or(false),
        admin_privileges: body.admin_privileges.unwrap_or(false),
        realm: body.realm,
        realm_attributes: body.realm_attributes,
        external_id: body.external_id,
        members,
    });
    let committed = app.submit(cmd, &admin.username, &rid).await?;
    Ok(written(
        group_response(&app, &name, StatusCode::CREATED, &committed)?,
        committed,
    ))
}

async fn get(
    app: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let name = path_name(&path)?;
    let s = app.view(&req);
    let group = s
        .directory
        .groups
        .get(name.as_str())
        .ok_or_else(|| ApiError::NotFound(format!("group `{name}` not found")))?;
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(crate::views::GroupView::from(&**group).to_json()))
}

async fn patch(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
    OptionalBody(body): OptionalBody<GroupBody>,
) -> Result<HttpResponse, ApiError> {
    let admin = &admin.0;
    let body = body.unwrap_or_default();
    let name = path_name(&path)?;
    if body.name.as_ref().is_some_and(|n| *n != name) {
        return Err(ApiError::BadRequest(
            "invalid `name`: a group cannot be renamed".into(),
        ));
    }
    let members = body
        .members
        .map(|m| normalize_members("members", m))
        .transpose()?;
    let changes = GroupChanges {
        description: body.description,
        auto_join: body.auto_join,
        admin_privileges: body.admin_privileges,
        realm: body.realm,
        realm_attributes: body.realm_attributes,
        external_id: body.external_id,
        members,
    };
    let committed = app
        .submit(
            Command::UpdateGroup {
                name: name.clone(),
                changes,
            },
            &admin.username,
            &rid,
        )
        .await?;
    Ok(written(
        group_response(&app, &name, StatusCode::OK, &committed)?,
        committed,
    ))
}

async fn delete(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let admin = &admin.0;
    let name = path_name(&path)?;
    let committed = app
        .submit(Command::DeleteGroup { name }, &admin.username, &rid)
        .await?;
    Ok(written(HttpResponse::NoContent().finish(), committed))
}

async fn change_members(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
    Body(body): Body<AddRemove>,
) -> Result<HttpResponse, ApiError> {
    let admin = &admin.0;
    let name = path_name(&path)?;
    let (add, remove) = body.lists()?;
    let add = normalize_members("add", add)?;
    let remove = normalize_members("remove", remove)?;
    let committed = app
        .submit(
            Command::ChangeGroupMembers {
                group: name.clone(),
                add,
                remove,
                if_match: None,
                displays: vec![],
            },
            &admin.username,
            &rid,
        )
        .await?;
    let s = app.state_after(&committed, |s| {
        s.directory.groups.contains_key(name.as_str())
    })?;
    let group = s
        .directory
        .groups
        .get(name.as_str())
        .ok_or_else(|| ApiError::NotFound(format!("group `{name}` not found")))?;
    Ok(written(
        HttpResponse::Ok().json(serde_json::json!({"members": group.members})),
        committed,
    ))
}

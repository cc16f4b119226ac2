//! `/artifactory/api/security/users[/{name}]`: users in Artifactory's shape.

use super::super::error::ApiError;
use super::super::extract::{Admin, Body, RequestId};
use super::super::users::{create_user, path_username, update_user, CreateUser, PatchUser};
use super::super::{base_url, resource, written, AppState};
use super::{created_or_ok, text, user_name_matches};
use crate::domain::Command;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/artifactory/api/security/users").route(web::get().to(list)))
        .service(
            resource("/artifactory/api/security/users/{name}")
                .route(web::get().to(get))
                .route(web::put().to(put))
                .route(web::post().to(post))
                .route(web::delete().to(delete)),
        );
}

/// Artifactory's user fields (camelCase; the Access spellings are taken too). `null`
/// means "not given" (dohq sends `"password": null` on every update).
#[derive(Deserialize, Default, Clone)]
struct UserIn {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    admin: Option<bool>,
    #[serde(default, rename = "profileUpdatable", alias = "profile_updatable")]
    profile_updatable: Option<bool>,
    #[serde(default, rename = "disableUIAccess", alias = "disable_ui_access")]
    disable_ui_access: Option<bool>,
    #[serde(
        default,
        rename = "internalPasswordDisabled",
        alias = "internal_password_disabled"
    )]
    internal_password_disabled: Option<bool>,
    #[serde(default)]
    groups: Option<Vec<String>>,
}

async fn list(app: web::Data<AppState>, _admin: Admin, req: HttpRequest) -> HttpResponse {
    let base = base_url(&req);
    let s = app.view(&req);
    let users: Vec<_> = s
        .directory
        .users
        .values()
        .map(|u| {
            json!({
                "name": u.username,
                "uri": format!("{base}/artifactory/api/security/users/{}", crate::http::segment(&u.username)),
                "realm": u.realm,
            })
        })
        .collect();
    HttpResponse::Ok().json(users)
}

async fn get(
    app: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let name = path_username(&path)?;
    let s = app.view(&req);
    let u = s
        .directory
        .users
        .get(name.as_str())
        .ok_or_else(|| ApiError::NotFound(format!("user `{name}` not found")))?;
    Ok(HttpResponse::Ok().json(crate::views::artifactory_user(u, &app.personal)))
}

/// The fields of `body` as a change of an existing user (`groups` replaces the
/// membership).
async fn update(
    app: &AppState,
    admin: &crate::auth::Principal,
    rid: &RequestId,
    username: &str,
    body: UserIn,
) -> Result<crate::writer::Committed, ApiError> {
    let patch = PatchUser {
        username: None,
        // "" clears the e-mail, as in the v2 API (it was a silent no-op here).
        email: body.email,
        password: body.password,
        admin: body.admin,
        profile_updatable: body.profile_updatable,
        internal_password_disabled: body.internal_password_disabled,
        disable_ui_access: body.disable_ui_access,
        status: None,
        groups: None,
        realm: None,
    };
    // One command: a group that does not exist refuses the other changes too.
    update_user(app, admin, rid, username, patch, body.groups)
        .await
        .map_err(|e| e.renaming_fields(FIELDS))
}

/// The user fields the domain's errors name, as this API spells them.
const FIELDS: &[(&str, &str)] = &[
    ("username", "name"),
    ("profile_updatable", "profileUpdatable"),
    ("disable_ui_access", "disableUIAccess"),
    ("internal_password_disabled", "internalPasswordDisabled"),
];

/// `PUT …/users/{name}`: create the user (201), or change the one there is (200).
async fn put(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
    Body(body): Body<UserIn>,
) -> Result<HttpResponse, ApiError> {
    let name = path_username(&path)?;
    user_name_matches(body.name.as_deref(), &name)?;
    // Create or replace, also when another request creates or deletes the user between
    // the look and the write (then the other way is taken: it answered 409 or 404).
    let mut tries = 0;
    loop {
        let exists = || app.read().directory.users.contains_key(name.as_str());
        let existed = exists();
        let body = body.clone();
        let result = if existed {
            update(&app, &admin.0, &rid, &name, body).await
        } else {
            let create = CreateUser {
                username: name.clone(),
                password: body.password,
                email: body.email.filter(|e| !e.is_empty()),
                groups: body.groups,
                admin: body.admin,
                profile_updatable: body.profile_updatable,
                internal_password_disabled: body.internal_password_disabled,
                disable_ui_access: body.disable_ui_access,
                realm: None,
                status: None,
            };
            create_user(&app, &admin.0, &rid, create)
                .await
                .map(|c| c.1)
                .map_err(|e| e.renaming_fields(FIELDS))
        };
        match result {
            Err(ApiError::Taken(_) | ApiError::Conflict(_) | ApiError::NotFound(_))
                if tries < 3 && exists() != existed =>
            {
                tries += 1;
            }
            result => {
                return Ok(written(
                    HttpResponse::build(created_or_ok(existed)).finish(),
                    result?,
                ))
            }
        }
    }
}

/// `POST …/users/{name}`: change the fields given (absent or `null`: unchanged);
/// `groups` replaces the membership.
async fn post(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
    Body(body): Body<UserIn>,
) -> Result<HttpResponse, ApiError> {
    let name = path_username(&path)?;
    user_name_matches(body.name.as_deref(), &name)?;
    if !app.read().directory.users.contains_key(name.as_str()) {
        return Err(ApiError::NotFound(format!("user `{name}` not found")));
    }
    let committed = update(&app, &admin.0, &rid, &name, body).await?;
    Ok(written(HttpResponse::Ok().finish(), committed))
}

async fn delete(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = path_username(&path)?;
    if name == admin.0.username {
        return Err(ApiError::BadRequest(
            "you cannot delete the user you are signed in as".into(),
        ));
    }
    let committed = app
        .submit(
            Command::DeleteUser {
                username: name.clone(),
            },
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(
        text(
            StatusCode::OK,
            format!("User '{name}' has been removed successfully."),
        ),
        committed,
    ))
}

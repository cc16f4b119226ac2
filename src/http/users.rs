//! Users, v2 API (seed 004 "Users").

use super::error::ApiError;
use super::extract::{Admin, Body, Caller, RequestId, SelfOrAdmin};
use super::{
    base_url, limit_param, page_shared, query_param, resource, with_cursor, written, AppState,
};
use crate::domain::{self, Command, NewUser, UserChanges, INTERNAL_REALM};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use gatehouse_schemas::UserStatus;
use serde::Deserialize;

/// In a scope: see `http::configure`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/access/api/v2/users")
            .service(
                resource("")
                    .route(web::get().to(list))
                    .route(web::post().to(create)),
            )
            .service(
                resource("/{username}")
                    .route(web::get().to(get))
                    .route(web::patch().to(patch))
                    .route(web::delete().to(delete)),
            )
            .service(resource("/{username}/groups").route(web::patch().to(change_groups)))
            .service(resource("/{username}/password").route(web::put().to(change_password)))
            .service(resource("/{username}/password/expire").route(web::post().to(expire_password)))
            .service(resource("/{username}/unlock").route(web::post().to(unlock))),
    )
    .service(resource("/access/api/v1/users/{username}").route(web::patch().to(patch)));
}

/// The seed prints these without the `users/` segment; real scripts copy them.
pub fn configure_aliases(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/access/api/v2/{username}/groups").route(web::patch().to(change_groups)))
        .service(
            resource("/access/api/v2/{username}/password").route(web::put().to(change_password)),
        )
        .service(
            resource("/access/api/v2/{username}/password/expire")
                .route(web::post().to(expire_password)),
        )
        .service(resource("/access/api/v2/{username}/unlock").route(web::post().to(unlock)));
}

pub(super) fn path_username(path: &str) -> Result<String, ApiError> {
    Ok(domain::normalize_username("username", path)?)
}

/// Render the user as it is right after the caller's write (`committed`): a delete that
/// followed it is not the answer (a committed create was answered 404).
fn user_response(
    app: &AppState,
    username: &str,
    status: actix_web::http::StatusCode,
    committed: &crate::writer::Committed,
) -> Result<HttpResponse, ApiError> {
    let s = app.state_after(committed, |s| s.directory.users.contains_key(username))?;
    let user = s
        .directory
        .users
        .get(username)
        .ok_or_else(|| ApiError::NotFound(format!("user `{username}` not found")))?;
    // With `effective_admin`, as a GET shows it (JFrog's answers carry it since 7.66).
    let view = crate::views::UserView::new(user, &app.personal).in_directory(&s.directory, user);
    Ok(HttpResponse::build(status).json(view))
}

async fn list(
    app: web::Data<AppState>,
    _admin: Admin,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let limit = limit_param(&req)?;
    let cursor = query_param(&req, "cursor")?;
    // JFrog's filters: a part of the name (any case), a status, admins only.
    let name_part = query_param(&req, "username")?.map(|u| u.to_lowercase());
    let status = query_param(&req, "status")?;
    if let Some(st) = &status {
        if !["enabled", "disabled", "locked", "invited"].contains(&st.as_str()) {
            return Err(ApiError::BadRequest(format!(
                "invalid `status`: `{}` (use enabled, disabled, locked or invited)",
                st.escape_debug()
            )));
        }
    }
    // Seed 004's recurring `realm` query string (an ignored one answered every user):
    // "internal, saml, oauth, ldap, crowd, scim, etc." — any realm, matched ignoring case
    // (a federated user keeps its peer's).
    let realm = query_param(&req, "realm")?.map(|r| r.to_ascii_lowercase());
    let only_admins = super::bool_param(&req, "onlyAdmins")?;
    let descending = super::bool_param(&req, "descendingOrder")?;
    let (project, role) = super::projects::project_role_filter(&req)?;
    let s = app.view(&req);
    let base = base_url(&req);
    // A page of thousands, or a filter over a large directory, is done off the workers.
    let large = s.directory.users.len() > super::LARGE_LIST
        && (limit > 1000
            || descending
            || name_part.is_some()
            || status.is_some()
            || realm.is_some()
            || only_admins
            || project.is_some());
    let body = super::read_off_worker(s, large, move |s| -> Result<Vec<u8>, ApiError> {
        let members = project
            .as_deref()
            .map(|p| super::projects::members_holding(s, p, "user", role.as_deref()))
            .transpose()?;
        let users_iter = s
            .directory
            .users
            .iter()
            .filter(|(_, u)| {
                name_part
                    .as_ref()
                    .is_none_or(|p| u.username.contains(p.as_str()))
            })
            .filter(|(_, u)| status.as_ref().is_none_or(|st| u.status.as_str() == st))
            .filter(|(_, u)| {
                realm
                    .as_ref()
                    .is_none_or(|r| u.realm.eq_ignore_ascii_case(r))
            })
            // An admin through a group with admin privileges is an admin too (a script
            // listing who holds admin rights missed them).
            .filter(|(_, u)| !only_admins || s.directory.user_is_admin(u))
            .filter(|(_, u)| {
                members
                    .as_ref()
                    .is_none_or(|m| m.contains(u.username.as_str()))
            })
            .map(|(k, u)| (std::borrow::Borrow::<str>::borrow(k), &**u));
        let unfiltered = name_part.is_none()
            && status.is_none()
            && realm.is_none()
            && !only_admins
            && members.is_none();
        let (page_items, next) = if unfiltered && !descending {
            // The common case walks the map from the cursor on, collecting nothing.
            page_shared(&s.directory.users, cursor.as_deref(), limit)
        } else {
            let filtered: Vec<(&str, &gatehouse_projections::User)> = users_iter.collect();
            super::page_ordered(filtered.into_iter(), cursor.as_deref(), limit, descending)
        };
        let users: Vec<_> = page_items
            .iter()
            .map(|u| {
                serde_json::json!({
                    "username": u.username,
                    "realm": u.realm,
                    "status": u.status.as_str(),
                    "uri": format!("{base}/access/api/v2/users/{}", super::segment(&u.username)),
                })
            })
            .collect();
        serde_json::to_vec(&with_cursor(serde_json::json!({ "users": users }), next))
            .map_err(|e| ApiError::Internal(e.to_string()))
    })
    .await??;
    Ok(HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(body))
}

#[derive(Deserialize)]
pub(super) struct CreateUser {
    pub username: String,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    #[serde(default)]
    pub admin: Option<bool>,
    #[serde(default)]
    pub profile_updatable: Option<bool>,
    #[serde(default)]
    pub internal_password_disabled: Option<bool>,
    #[serde(default)]
    pub disable_ui_access: Option<bool>,
    /// Accepted for symmetry with responses; users created here are always `internal`
    /// (another realm is named as ignored).
    #[serde(default)]
    pub realm: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

/// Under the password policy in force (`username`: the user whose password it replaces).
async fn hash_password(
    app: &AppState,
    username: Option<&str>,
    password: String,
) -> Result<String, ApiError> {
    super::settings::new_password_hash(app, username, password).await
}

fn parse_status(s: &str) -> Result<UserStatus, ApiError> {
    match s {
        "enabled" => Ok(UserStatus::Enabled),
        "disabled" => Ok(UserStatus::Disabled),
        other => Err(ApiError::BadRequest(format!(
            "invalid `status`: `{}` (use `enabled` or `disabled`)",
            other.escape_debug()
        ))),
    }
}

async fn create(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    req: HttpRequest,
    Body(body): Body<CreateUser>,
) -> Result<HttpResponse, ApiError> {
    // "The parameter realm will be internal" (seed 004): another is said to be ignored.
    if body.realm.as_deref().is_some_and(|r| r != INTERNAL_REALM) {
        super::extract::note_ignored(&req, ["realm".to_string()]);
    }
    let (username, committed) = create_user(&app, &admin.0, &rid, body).await?;
    Ok(written(
        user_response(
            &app,
            &username,
            actix_web::http::StatusCode::CREATED,
            &committed,
        )?,
        committed,
    ))
}

/// Create a user (any API family that creates users comes here); its name and the
/// commit.
pub(super) async fn create_user(
    app: &AppState,
    admin: &crate::auth::Principal,
    rid: &RequestId,
    body: CreateUser,
) -> Result<(String, crate::writer::Committed), ApiError> {
    let username = domain::normalize_username("username", &body.username)?;
    if let Some(email) = &body.email {
        domain::validate_email(email)?;
    }
    let groups = body.groups.unwrap_or_default();
    for (i, g) in groups.iter().enumerate() {
        domain::validate_group_name(&format!("groups[{i}]"), g)?;
    }
    let internal_password_disabled = body.internal_password_disabled.unwrap_or(false);
    if internal_password_disabled && body.password.is_some() {
        return Err(ApiError::BadRequest(
            "invalid `password`: must be absent when `internal_password_disabled` is true".into(),
        ));
    }
    // A user read elsewhere and sent back as it was may be `disabled`.
    let disabled = match body.status.as_deref() {
        None => false,
        Some(s) => parse_status(s)? == UserStatus::Disabled,
    };
    let password_hash = match body.password {
        Some(p) => Some(hash_password(&app, None, p).await?),
        None if internal_password_disabled => None,
        None => {
            return Err(ApiError::BadRequest(
                "invalid `password`: is required unless `internal_password_disabled` is true"
                    .into(),
            ))
        }
    };
    // Personal data is encrypted with the user's own key before it enters an event.
    let email = match body.email.filter(|e| !e.is_empty()) {
        Some(e) => {
            let key = app.new_personal_key().await?;
            let [sealed] = app.seal_fresh_all(&key, [&e])?;
            Some(sealed)
        }
        None => None,
    };
    let cmd = Command::CreateUser(NewUser {
        username: username.clone(),
        email,
        password_hash,
        admin: body.admin.unwrap_or(false),
        profile_updatable: body.profile_updatable.unwrap_or(true),
        internal_password_disabled,
        disable_ui_access: body.disable_ui_access.unwrap_or(false),
        groups,
        disabled,
    });
    let committed = app.submit(cmd, &admin.username, rid).await?;
    Ok((username, committed))
}

async fn get(
    app: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let username = path_username(&path)?;
    if !caller.0.admin && caller.0.username != username {
        return Err(ApiError::Forbidden(
            "only an admin can read other users".into(),
        ));
    }
    let past = req.extensions().get::<super::AsOfPosition>().copied();
    if let Some(super::AsOfPosition(position)) = past {
        // One user as it was: replay only the events that shaped it.
        let app2 = app.clone();
        let name = username.clone();
        let state = web::block(move || {
            app2.timeline
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .user_state_at(&app2.log, &name, position)
        })
        .await
        .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
        let user = state
            .directory
            .users
            .get(username.as_str())
            .ok_or_else(|| ApiError::NotFound(format!("user `{username}` not found")))?;
        // As now: with `effective_admin` (its groups' admin privileges then).
        return Ok(HttpResponse::Ok().json(
            crate::views::UserView::new(user, &app.personal).in_directory(&state.directory, user),
        ));
    }
    let s = app.view(&req);
    let user = s
        .directory
        .users
        .get(username.as_str())
        .ok_or_else(|| ApiError::NotFound(format!("user `{username}` not found")))?;
    Ok(HttpResponse::Ok()
        .json(crate::views::UserView::new(user, &app.personal).in_directory(&s.directory, user)))
}

#[derive(Deserialize)]
pub(super) struct PatchUser {
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub admin: Option<bool>,
    #[serde(default)]
    pub profile_updatable: Option<bool>,
    #[serde(default)]
    pub internal_password_disabled: Option<bool>,
    #[serde(default)]
    pub disable_ui_access: Option<bool>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub groups: Option<serde_json::Value>,
    #[serde(default)]
    pub realm: Option<String>,
}

async fn patch(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
    req: HttpRequest,
    Body(body): Body<PatchUser>,
) -> Result<HttpResponse, ApiError> {
    let username = path_username(&path)?;
    // A user's realm is where it came from, not a field to change: said to be ignored
    // unless it is the realm the user has.
    if let Some(realm) = &body.realm {
        let same = (app.read().directory.users.get(username.as_str()))
            .is_none_or(|u| u.realm.as_str() == realm.as_str());
        if !same {
            super::extract::note_ignored(&req, ["realm".to_string()]);
        }
    }
    // A user read with GET and sent back as it is carries its `groups`: taken when they
    // are the user's groups as they stand, refused when they would change them.
    if let Some(groups) = &body.groups {
        let unchanged = {
            let s = app.read();
            let current = s.directory.users.get(username.as_str()).map(|u| {
                u.groups
                    .iter()
                    .map(|g| g.as_str())
                    .collect::<std::collections::BTreeSet<_>>()
            });
            let sent = groups.as_array().and_then(|a| {
                a.iter()
                    .map(|g| g.as_str())
                    .collect::<Option<std::collections::BTreeSet<_>>>()
            });
            current.is_none() || current == sent
        };
        if !unchanged {
            return Err(ApiError::BadRequest(format!(
                "invalid `groups`: change memberships with PATCH /access/api/v2/users/{username}/groups"
            )));
        }
    }
    let committed = update_user(&app, &admin.0, &rid, &username, body, None).await?;
    Ok(written(
        user_response(&app, &username, actix_web::http::StatusCode::OK, &committed)?,
        committed,
    ))
}

/// Change the fields of a user that `body` gives (`groups` is not one of them: see
/// `ChangeUserGroups`).
pub(super) async fn update_user(
    app: &AppState,
    admin: &crate::auth::Principal,
    rid: &RequestId,
    username: &str,
    body: PatchUser,
    groups: Option<Vec<String>>,
) -> Result<crate::writer::Committed, ApiError> {
    let username = username.to_string();
    if let Some(n) = &body.username {
        if n.to_lowercase() != username {
            return Err(ApiError::BadRequest(
                "invalid `username`: a user cannot be renamed".into(),
            ));
        }
    }
    if let Some(email) = &body.email {
        domain::validate_email(email)?;
    }
    let status = match body.status.as_deref() {
        // The status a read showed, sent back as it is (a client's read-modify-write of
        // a locked or invited user): no statement. Only `unlock` unlocks.
        Some(s @ ("locked" | "invited"))
            if app
                .read()
                .directory
                .users
                .get(username.as_str())
                .is_some_and(|u| u.status.as_str() == s) =>
        {
            None
        }
        other => other.map(parse_status).transpose()?,
    };
    if status == Some(UserStatus::Disabled) && username == admin.username {
        return Err(ApiError::BadRequest(
            "invalid `status`: you cannot disable yourself".into(),
        ));
    }
    let password_hash = match body.password {
        Some(p) => Some(hash_password(&app, Some(&username), p).await?),
        None => None,
    };
    super::read_change_write(&app, async || {
        // The e-mail it already has is no change (sealed again it looked like one: an
        // event, a webhook, and `audit/diff` listing the e-mail as changed) — while it
        // still has it (`AsRead::UserEmail`).
        let (current_email, created_seq) = {
            let s = app.read();
            let u = s.directory.users.get(username.as_str());
            (u.map(|u| u.email.clone()), u.map(|u| u.created_seq))
        };
        let unchanged = |e: &str| match &current_email {
            Some(Some(sealed)) => app.personal.decrypt(sealed).as_deref() == Some(e),
            Some(None) => e.is_empty(),
            None => false,
        };
        let mut guard = None;
        let email = match body.email.clone() {
            Some(e) if unchanged(&e) => {
                guard = current_email
                    .clone()
                    .map(|was| domain::AsRead::UserEmail(username.clone(), was));
                None
            }
            Some(e) if !e.is_empty() => {
                // Sealed with the key of the user read: only for that user (a purge and
                // a new user of the name between this read and the write left the new
                // one an e-mail under the destroyed key, and every later write a 500).
                guard = created_seq.map(|seq| domain::AsRead::UserCreated(username.clone(), seq));
                let key = app.personal_key(&username).await?;
                Some(app.seal(&key, &e)?)
            }
            other => other,
        };
        let changes = UserChanges {
            email,
            password_hash: password_hash.clone(),
            admin: body.admin,
            profile_updatable: body.profile_updatable,
            internal_password_disabled: body.internal_password_disabled,
            disable_ui_access: body.disable_ui_access,
            status,
            groups: groups.clone(),
        };
        let mut command = Command::UpdateUser {
            username: username.clone(),
            changes,
        };
        if let Some(read) = guard {
            command = Command::IfUnchanged {
                read,
                command: Box::new(command),
            };
        }
        app.submit(command, &admin.username, rid).await
    })
    .await
}

/// `?purge=true` also destroys the key of the user's personal data (crypto-shredding):
/// the events stay and the chain still verifies, but the e-mail and SCIM attributes in
/// them — and in snapshots, backups and exports — can no longer be read.
async fn delete(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let admin = &admin.0;
    let username = path_username(&path)?;
    if username == admin.username {
        return Err(ApiError::BadRequest(
            "you cannot delete the user you are signed in as".into(),
        ));
    }
    let purge = match query_param(&req, "purge")?.as_deref() {
        None | Some("false") => false,
        Some("true") | Some("") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "invalid `purge`: `{}` (use true or false)",
                other.escape_debug()
            )))
        }
    };
    let (exists, current) = {
        let s = app.read();
        let u = s.directory.users.get(username.as_str());
        (u.is_some(), u.and_then(|u| crate::http::user_key_id(u)))
    };
    // A purge of a name no user has now erases what its deleted users left (it was a
    // 404, and a user deleted without purge could never be erased).
    let committed = if !exists && purge {
        let s = app.read();
        crate::writer::Committed {
            seq: s.seq,
            events: 0,
        }
    } else {
        app.submit(
            Command::DeleteUser {
                username: username.clone(),
            },
            &admin.username,
            &rid,
        )
        .await?
    };
    if purge {
        // Every key the user's events ever used, not only its current record's: after a
        // cleared and re-set e-mail the older values are sealed with another key. Found
        // from the log once the deletion is in it, so a write that raced the deletion
        // is covered too.
        let app2 = app.clone();
        let position = committed.seq;
        let name = username.clone();
        let keys = web::block(move || {
            app2.timeline
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .personal_keys_of_deleted(&app2.log, &name, position)
        })
        .await
        .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))?
        .map_err(|e| ApiError::Internal(format!("cannot find the keys to purge: {e}")))?
        .ok_or_else(|| ApiError::NotFound(format!("user `{username}` not found")))?;
        for key in keys.iter().chain(current.as_ref()) {
            app.personal
                .destroy(key)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
        }
    }
    Ok(written(HttpResponse::NoContent().finish(), committed))
}

#[derive(Deserialize)]
pub struct AddRemove {
    #[serde(default, deserialize_with = "crate::views::names_or_json_text")]
    pub add: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::views::names_or_json_text")]
    pub remove: Option<Vec<String>>,
}

impl AddRemove {
    /// The seed's first rule: at least one list must be given.
    pub fn lists(self) -> Result<(Vec<String>, Vec<String>), ApiError> {
        if self.add.is_none() && self.remove.is_none() {
            return Err(ApiError::BadRequest(
                "invalid request body: either `add` or `remove` is required".into(),
            ));
        }
        Ok((
            self.add.unwrap_or_default(),
            self.remove.unwrap_or_default(),
        ))
    }
}

async fn change_groups(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
    Body(body): Body<AddRemove>,
) -> Result<HttpResponse, ApiError> {
    let admin = &admin.0;
    let username = path_username(&path)?;
    let (add, remove) = body.lists()?;
    let committed = app
        .submit(
            Command::ChangeUserGroups {
                username: username.clone(),
                add,
                remove,
            },
            &admin.username,
            &rid,
        )
        .await?;
    let s = app.state_after(&committed, |s| {
        s.directory.users.contains_key(username.as_str())
    })?;
    let user = s
        .directory
        .users
        .get(username.as_str())
        .ok_or_else(|| ApiError::NotFound(format!("user `{username}` not found")))?;
    let answer = HttpResponse::Ok().json(serde_json::json!({"groups": user.groups}));
    drop(s);
    Ok(written(answer, committed))
}

#[derive(Deserialize)]
struct NewPassword {
    password: String,
}

async fn change_password(
    app: web::Data<AppState>,
    caller: SelfOrAdmin,
    rid: RequestId,
    path: web::Path<String>,
    Body(body): Body<NewPassword>,
) -> Result<HttpResponse, ApiError> {
    let username = path_username(&path)?;
    let caller = caller.0;
    // JFrog's `profile_updatable: false` is for an account whose password an admin keeps
    // (a departmental user whose one password its members share): its user may not
    // change it. The flag was stored and shown, and meant nothing.
    if !caller.admin {
        let locked_profile = app
            .read()
            .directory
            .users
            .get(username.as_str())
            .is_some_and(|u| !u.profile_updatable);
        if locked_profile {
            return Err(ApiError::Forbidden(format!(
                "`{username}` may not change its own password (`profile_updatable` is false): an admin changes it"
            )));
        }
    }
    let password_hash = hash_password(&app, Some(&username), body.password).await?;
    let committed = app
        .submit(
            Command::ChangePassword {
                username,
                password_hash,
            },
            &caller.username,
            &rid,
        )
        .await?;
    Ok(written(HttpResponse::NoContent().finish(), committed))
}

async fn expire_password(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let admin = &admin.0;
    let username = path_username(&path)?;
    not_ones_own_expiry(&admin.username, [username.as_str()])?;
    let committed = app
        .submit(Command::ExpirePassword { username }, &admin.username, &rid)
        .await?;
    Ok(written(HttpResponse::NoContent().finish(), committed))
}

/// An admin does not expire its own password: an expired password stops every token of
/// its user but for changing it, so the admin's own automation stopped (the only admin,
/// locked out of everything but a password change). Expiring every password leaves the
/// caller out for the same reason.
pub(super) fn not_ones_own_expiry<'a>(
    caller: &str,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<(), ApiError> {
    // Compared as user names are (lower case, Unicode): `ÉMILE` is `émile`.
    let caller = caller.to_lowercase();
    if names.into_iter().any(|n| n.trim().to_lowercase() == caller) {
        return Err(ApiError::BadRequest(format!(
            "invalid `username`: `{caller}` cannot expire its own password (its tokens would stop until it is changed); change it instead"
        )));
    }
    Ok(())
}

async fn unlock(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let admin = &admin.0;
    let username = path_username(&path)?;
    let committed = app
        .submit(
            Command::UnlockUser {
                username: username.clone(),
            },
            &admin.username,
            &rid,
        )
        .await?;
    app.auth.forget_failures(&username);
    Ok(written(HttpResponse::NoContent().finish(), committed))
}

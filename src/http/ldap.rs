//! LDAP settings and LDAP group settings in JFrog Access's spelling
//! (`/access/api/v1/ldap/settings`, `/access/api/v1/ldap/groups`, snake_case fields),
//! and the group import (`POST /access/api/v1/ldap/groups/{name}/refresh`).
//!
//! The manager password is write-only: it is sealed (like webhook secrets) before it
//! enters the event, answered as `null`, and kept when a replacing body leaves it out.

use super::error::ApiError;
use super::extract::{Admin, Body, RequestId};
use super::{resource, written, AppState};
use crate::domain::ldap::SyncOperation;
use crate::domain::Command;
use actix_web::{web, HttpRequest, HttpResponse};
use gatehouse_schemas::{LdapGroupSetting, LdapSetting};
use serde::Deserialize;
use serde_json::{json, Value};

const LDAP: &str = "/access/api/v1/ldap";
/// The personal-data key that seals LDAP manager passwords (a server secret).
const SECRETS_KEY: &str = "ldapsecrets";

/// In a scope: see `http::configure`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(LDAP)
            .service(
                resource("/settings")
                    .route(web::get().to(list_settings))
                    .route(web::post().to(create_setting)),
            )
            .service(
                resource("/settings/{key}")
                    .route(web::get().to(get_setting))
                    .route(web::put().to(put_setting))
                    .route(web::delete().to(delete_setting)),
            )
            .service(
                resource("/groups")
                    .route(web::get().to(list_groups))
                    .route(web::post().to(create_group)),
            )
            .service(resource("/groups/{name}/refresh").route(web::post().to(refresh)))
            .service(
                resource("/groups/{name}")
                    .route(web::get().to(get_group))
                    .route(web::put().to(put_group))
                    .route(web::delete().to(delete_group)),
            ),
    );
}

// --- LDAP settings ------------------------------------------------------------------

fn setting_json(s: &LdapSetting) -> Value {
    json!({
        "key": s.key,
        "enabled": s.enabled,
        "ldap_url": s.ldap_url,
        "user_dn_pattern": s.user_dn_pattern,
        "search": {
            "search_filter": s.search_filter,
            "search_base": s.search_base,
            "search_sub_tree": s.search_sub_tree,
            "manager_dn": s.manager_dn,
            // Write-only.
            "manager_password": null,
        },
        "auto_create_user": s.auto_create_user,
        "email_attribute": s.email_attribute,
        "ldap_poisoning_protection": s.ldap_poisoning_protection,
        "allow_user_to_access_profile": s.allow_user_to_access_profile,
        "paging_support_enabled": s.paging_support_enabled,
        "start_tls": s.start_tls,
        "ca_certificate": s.ca_certificate,
    })
}

#[derive(Deserialize, Default)]
struct SearchIn {
    #[serde(default)]
    search_filter: Option<String>,
    #[serde(default)]
    search_base: Option<String>,
    #[serde(default)]
    search_sub_tree: Option<bool>,
    #[serde(default)]
    manager_dn: Option<String>,
    #[serde(default)]
    manager_password: Option<String>,
}

#[derive(Deserialize)]
struct SettingIn {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    ldap_url: Option<String>,
    #[serde(default)]
    user_dn_pattern: Option<String>,
    #[serde(default)]
    search: Option<SearchIn>,
    #[serde(default)]
    auto_create_user: Option<bool>,
    #[serde(default)]
    email_attribute: Option<String>,
    #[serde(default)]
    ldap_poisoning_protection: Option<bool>,
    #[serde(default)]
    allow_user_to_access_profile: Option<bool>,
    #[serde(default)]
    paging_support_enabled: Option<bool>,
    #[serde(default)]
    start_tls: Option<bool>,
    #[serde(default)]
    ca_certificate: Option<String>,
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// The whole setting a body describes; fields it leaves out keep their value in
/// `previous` (a replace), or JFrog's default (a create).
fn setting_from(
    app: &AppState,
    key: String,
    body: SettingIn,
    previous: Option<&LdapSetting>,
) -> Result<LdapSetting, ApiError> {
    // A PUT replaces: what it leaves out takes its default, not its old value (a CA left
    // out, or `null` as the GET shows it, stayed; only the manager's password, which no
    // GET shows, is kept when left out).
    let p = LdapSetting {
        enabled: true,
        auto_create_user: true,
        email_attribute: Some("mail".into()),
        search_sub_tree: true,
        ldap_poisoning_protection: true,
        manager_password: previous.and_then(|p| p.manager_password.clone()),
        ..Default::default()
    };
    let search = body.search.unwrap_or_default();
    let password_left_out = search.manager_password.is_none();
    let manager_password = match search.manager_password {
        // Left out (or `null`, as JFrog's own GET shows it): unchanged.
        None => p.manager_password.clone(),
        Some(pw) if pw.is_empty() => None,
        Some(pw) => {
            let id = app
                .personal
                .named(SECRETS_KEY)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            Some(app.seal(&id, &pw)?)
        }
    };
    let keep = |v: Option<String>, old: &Option<String>| match v {
        Some(v) => non_empty(Some(v)),
        None => old.clone(),
    };
    let setting = LdapSetting {
        key,
        enabled: body.enabled.unwrap_or(p.enabled),
        ldap_url: body
            .ldap_url
            .map(|u| u.trim().to_string())
            .unwrap_or(p.ldap_url.clone()),
        user_dn_pattern: keep(body.user_dn_pattern, &p.user_dn_pattern),
        search_filter: keep(search.search_filter, &p.search_filter),
        search_base: keep(search.search_base, &p.search_base),
        search_sub_tree: search.search_sub_tree.unwrap_or(p.search_sub_tree),
        manager_dn: keep(search.manager_dn, &p.manager_dn),
        manager_password,
        auto_create_user: body.auto_create_user.unwrap_or(p.auto_create_user),
        email_attribute: keep(body.email_attribute, &p.email_attribute),
        ldap_poisoning_protection: body
            .ldap_poisoning_protection
            .unwrap_or(p.ldap_poisoning_protection),
        allow_user_to_access_profile: body
            .allow_user_to_access_profile
            .unwrap_or(p.allow_user_to_access_profile),
        paging_support_enabled: body
            .paging_support_enabled
            .unwrap_or(p.paging_support_enabled),
        start_tls: body.start_tls.unwrap_or(p.start_tls),
        ca_certificate: keep(body.ca_certificate, &p.ca_certificate),
    };
    // The kept password goes only where it went, as it went. A PUT that pointed the
    // setting at other servers (or turned StartTLS off) and left the password out sent
    // it to wherever the admin said on the next sign-in, in clear over `ldap://`: a
    // write-only secret read back by anyone holding an admin token.
    if let (true, Some(old), Some(_)) = (password_left_out, previous, &setting.manager_password) {
        let moved = crate::ldap::servers(&old.ldap_url) != crate::ldap::servers(&setting.ldap_url)
            || (old.start_tls && !setting.start_tls)
            // Another CA to trust, or none (then the system roots and `--ca-file`, which
            // trust far more): whoever holds such a key could answer for the servers.
            || old.ca_certificate != setting.ca_certificate;
        if moved {
            return Err(ApiError::BadRequest(
                "invalid `search.manager_password`: required again when `ldap_url` names other \
                 servers, `start_tls` is turned off or `ca_certificate` changes or goes (the kept \
                 password goes only where it went)"
                    .into(),
            ));
        }
    }
    Ok(setting)
}

async fn list_settings(app: web::Data<AppState>, _admin: Admin, req: HttpRequest) -> HttpResponse {
    // `as_of`: the settings of then (they are events).
    let s = app.view(&req);
    let list: Vec<Value> = s
        .settings
        .ldap
        .settings
        .values()
        .map(setting_json)
        .collect();
    HttpResponse::Ok().json(list)
}

async fn get_setting(
    app: web::Data<AppState>,
    _admin: Admin,
    key: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let s = app.view(&req);
    let setting = s
        .settings
        .ldap
        .settings
        .get(key.as_str())
        .ok_or_else(|| ApiError::NotFound(format!("LDAP setting `{key}` not found")))?;
    Ok(HttpResponse::Ok().json(setting_json(setting)))
}

async fn save_setting(
    app: &AppState,
    admin: &Admin,
    rid: &RequestId,
    setting: LdapSetting,
    created: bool,
) -> Result<HttpResponse, ApiError> {
    let key = setting.key.clone();
    let committed = app
        .submit(Command::SaveLdapSetting(setting), &admin.0.username, rid)
        .await?;
    let body = {
        let s = app.read();
        s.settings.ldap.settings.get(&key).map(setting_json)
    };
    let res = if created {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    };
    Ok(written(res, committed))
}

async fn create_setting(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    Body(body): Body<SettingIn>,
) -> Result<HttpResponse, ApiError> {
    let key = non_empty(body.key.clone())
        .ok_or_else(|| ApiError::BadRequest("invalid `key`: is required".into()))?;
    if app.read().settings.ldap.settings.contains_key(&key) {
        return Err(ApiError::Conflict(format!(
            "LDAP setting `{key}` already exists"
        )));
    }
    if body.ldap_url.as_deref().is_none_or(|u| u.trim().is_empty()) {
        return Err(ApiError::BadRequest(
            "invalid `ldap_url`: is required".into(),
        ));
    }
    let setting = setting_from(&app, key, body, None)?;
    save_setting(&app, &admin, &rid, setting, true).await
}

/// Create or replace; a body that names another `key` than the path is refused.
async fn put_setting(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    key: web::Path<String>,
    Body(body): Body<SettingIn>,
) -> Result<HttpResponse, ApiError> {
    let key = key.into_inner();
    if let Some(k) = non_empty(body.key.clone()) {
        if k != key {
            return Err(ApiError::BadRequest(format!(
                "invalid `key`: `{k}` is not the key in the path (`{key}`)"
            )));
        }
    }
    let previous = app.read().settings.ldap.settings.get(&key).cloned();
    let created = previous.is_none();
    let setting = setting_from(&app, key, body, previous.as_ref())?;
    save_setting(&app, &admin, &rid, setting, created).await
}

async fn delete_setting(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let committed = app
        .submit(
            Command::DeleteLdapSetting {
                key: key.into_inner(),
            },
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(HttpResponse::NoContent().finish(), committed))
}

// --- LDAP group settings ------------------------------------------------------------

fn group_json(g: &LdapGroupSetting) -> Value {
    json!({
        "name": g.name,
        "enabled_ldap": g.enabled_ldap,
        "group_base_dn": g.group_base_dn,
        "group_name_attribute": g.group_name_attribute,
        "group_member_attribute": g.group_member_attribute,
        "sub_tree": g.sub_tree,
        "force_attribute_search": g.force_attribute_search,
        "filter": g.filter,
        "description_attribute": g.description_attribute,
        "strategy": g.strategy,
    })
}

#[derive(Deserialize)]
struct GroupIn {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    enabled_ldap: Option<String>,
    #[serde(default)]
    group_base_dn: Option<String>,
    #[serde(default)]
    group_name_attribute: Option<String>,
    #[serde(default)]
    group_member_attribute: Option<String>,
    #[serde(default)]
    sub_tree: Option<bool>,
    #[serde(default)]
    force_attribute_search: Option<bool>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    description_attribute: Option<String>,
    #[serde(default)]
    strategy: Option<String>,
}

fn group_from(name: String, b: GroupIn, previous: Option<&LdapGroupSetting>) -> LdapGroupSetting {
    // A PUT replaces, as for LDAP settings: what it leaves out (or sends as `null`) takes
    // its default, not its old value (a base left out stayed, and `null` kept it too).
    // Only the LDAP setting it belongs to is kept when left out: it names the binding.
    let p = LdapGroupSetting {
        enabled_ldap: previous.map(|p| p.enabled_ldap.clone()).unwrap_or_default(),
        group_name_attribute: "cn".into(),
        group_member_attribute: "uniqueMember".into(),
        sub_tree: true,
        filter: Some("(objectClass=groupOfNames)".into()),
        description_attribute: Some("description".into()),
        strategy: "STATIC".into(),
        ..Default::default()
    };
    let keep = |v: Option<String>, old: &Option<String>| match v {
        Some(v) => non_empty(Some(v)),
        None => old.clone(),
    };
    LdapGroupSetting {
        name,
        enabled_ldap: b
            .enabled_ldap
            .map(|v| v.trim().to_string())
            .unwrap_or(p.enabled_ldap.clone()),
        group_base_dn: keep(b.group_base_dn, &p.group_base_dn),
        group_name_attribute: non_empty(b.group_name_attribute)
            .unwrap_or(p.group_name_attribute.clone()),
        group_member_attribute: non_empty(b.group_member_attribute)
            .unwrap_or(p.group_member_attribute.clone()),
        sub_tree: b.sub_tree.unwrap_or(p.sub_tree),
        force_attribute_search: b.force_attribute_search.unwrap_or(p.force_attribute_search),
        filter: keep(b.filter, &p.filter),
        description_attribute: keep(b.description_attribute, &p.description_attribute),
        strategy: b
            .strategy
            .map(|s| s.trim().to_ascii_uppercase())
            .unwrap_or(p.strategy.clone()),
    }
}

async fn list_groups(app: web::Data<AppState>, _admin: Admin, req: HttpRequest) -> HttpResponse {
    // `as_of`: the settings of then (they are events).
    let s = app.view(&req);
    let list: Vec<Value> = s
        .settings
        .ldap
        .group_settings
        .values()
        .map(group_json)
        .collect();
    HttpResponse::Ok().json(list)
}

async fn get_group(
    app: web::Data<AppState>,
    _admin: Admin,
    name: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let s = app.view(&req);
    let g = s
        .settings
        .ldap
        .group_settings
        .get(name.as_str())
        .ok_or_else(|| ApiError::NotFound(format!("LDAP group setting `{name}` not found")))?;
    Ok(HttpResponse::Ok().json(group_json(g)))
}

async fn save_group(
    app: &AppState,
    admin: &Admin,
    rid: &RequestId,
    g: LdapGroupSetting,
    created: bool,
) -> Result<HttpResponse, ApiError> {
    let name = g.name.clone();
    let committed = app
        .submit(Command::SaveLdapGroupSetting(g), &admin.0.username, rid)
        .await?;
    let body = app
        .read()
        .settings
        .ldap
        .group_settings
        .get(&name)
        .map(group_json);
    let res = if created {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    };
    Ok(written(res, committed))
}

async fn create_group(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    Body(body): Body<GroupIn>,
) -> Result<HttpResponse, ApiError> {
    let name = non_empty(body.name.clone())
        .ok_or_else(|| ApiError::BadRequest("invalid `name`: is required".into()))?;
    if app.read().settings.ldap.group_settings.contains_key(&name) {
        return Err(ApiError::Conflict(format!(
            "LDAP group setting `{name}` already exists"
        )));
    }
    let g = group_from(name, body, None);
    save_group(&app, &admin, &rid, g, true).await
}

async fn put_group(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    name: web::Path<String>,
    Body(body): Body<GroupIn>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    if let Some(n) = non_empty(body.name.clone()) {
        if n != name {
            return Err(ApiError::BadRequest(format!(
                "invalid `name`: `{n}` is not the name in the path (`{name}`)"
            )));
        }
    }
    let previous = app.read().settings.ldap.group_settings.get(&name).cloned();
    let created = previous.is_none();
    let g = group_from(name, body, previous.as_ref());
    save_group(&app, &admin, &rid, g, created).await
}

async fn delete_group(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let committed = app
        .submit(
            Command::DeleteLdapGroupSetting {
                name: name.into_inner(),
            },
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(HttpResponse::NoContent().finish(), committed))
}

// --- import -------------------------------------------------------------------------

/// Import the group setting's groups now: `operation` `IMPORT` (create missing groups),
/// `UPDATE` (bring existing ones in step) or `UPDATE_AND_IMPORT` (the default);
/// `username` limits membership changes to that user.
async fn refresh(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    name: web::Path<String>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let operation = match super::query_param(&req, "operation")?
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("") | Some("UPDATE_AND_IMPORT") => SyncOperation::UpdateAndImport,
        Some("IMPORT") => SyncOperation::Import,
        // JFrog's documentation spells it `UDPATE` once; both are taken.
        Some("UPDATE") | Some("UDPATE") => SyncOperation::Update,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "invalid `operation`: `{}` is not `IMPORT`, `UPDATE` or `UPDATE_AND_IMPORT`",
                other.escape_debug()
            )))
        }
    };
    let (strategy, enabled) = {
        let s = app.read();
        let g =
            s.settings.ldap.group_settings.get(&name).ok_or_else(|| {
                ApiError::NotFound(format!("LDAP group setting `{name}` not found"))
            })?;
        let enabled = s
            .settings
            .ldap
            .settings
            .get(&g.enabled_ldap)
            .is_some_and(|l| l.enabled);
        (g.strategy.clone(), enabled)
    };
    if !enabled {
        return Err(ApiError::Conflict(format!(
            "the LDAP setting of group setting `{name}` is disabled"
        )));
    }
    if strategy == "HIERARCHICAL" {
        return Err(ApiError::BadRequest(format!(
            "invalid `name`: group setting `{name}` is HIERARCHICAL; its groups are read from users' DNs at sign-in and cannot be imported"
        )));
    }
    let only_user = super::query_param(&req, "username")?
        .as_deref()
        .map(|u| u.trim().to_lowercase())
        .filter(|u| !u.is_empty());
    let ctx = crate::writer::CommandContext {
        actor: admin.0.username.clone(),
        request_id: rid.0.clone(),
    };
    let shared = app.clone();
    let done = web::block(move || {
        crate::ldap::import(
            &shared.state,
            &shared.personal,
            &shared.writer,
            ctx,
            &name,
            operation,
            only_user,
        )
    })
    .await
    .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))?;
    let done = done.map_err(|e| match e {
        crate::ldap::ImportError::Directory(d) => ApiError::Unavailable(d.to_string()),
        crate::ldap::ImportError::Submit(s) => s.into(),
    })?;
    Ok(written(
        HttpResponse::Ok().json(json!({
            "groups": done.groups,
            "events": done.events,
        })),
        crate::writer::Committed {
            seq: done.seq,
            events: done.events,
        },
    ))
}

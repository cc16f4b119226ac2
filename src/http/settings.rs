//! Security settings and the actions on many users at once, in the spellings of JFrog
//! Access (`/access/api/v1/config/…`, `/access/api/v2/users/…_for_all_users`) and of
//! Artifactory's security API (`userLockPolicy`, `lockedUsers`, `unlockUsers`,
//! `passwordExpirationPolicy`, `users/authorization/…`). Every setting is an event
//! (`domain::settings`); until one is written the configuration file's value holds.

use super::error::ApiError;
use super::extract::{Admin, Body, OptionalBody, RequestId};
use super::{resource, written, AppState};
use crate::domain::settings as rules;
use crate::domain::{self, Command, SettingChange};
use actix_web::{guard, web, HttpResponse};
use gatehouse_schemas::{PasswordExpirationPolicy, PasswordPolicy, UserLockPolicy};
use serde::Deserialize;
use serde_json::{json, Value};

const SECURITY: &str = "/artifactory/api/security";

/// Registered before `users::configure`: `users/{username}` would take the two
/// `…_for_all_users` paths otherwise. Their resources only match POST, so any other
/// method still reaches a user of that name.
pub fn configure_for_all_users(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/access/api/v2/users/expire_password_for_all_users")
            .guard(guard::Post())
            .route(web::post().to(expire_all)),
    )
    .service(
        web::resource("/access/api/v2/users/unexpire_password_for_all_users")
            .guard(guard::Post())
            .route(web::post().to(unexpire_all)),
    );
}

/// The settings themselves and Artifactory's security actions: registered after the
/// directory's modules (none of whose paths they share), so that a request for a user
/// or a group is not first compared with these fourteen (their tries were 3.6 % of a
/// group create's instructions), and before `artifactory`, whose
/// `security/users/{name}` would take `security/users/authorization/…`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/access/api/v1/config/token/default_expiry")
            .route(web::get().to(get_default_expiry))
            .route(web::put().to(put_default_expiry)),
    )
    .service(
        resource("/access/api/v1/config/security/password_policy")
            .route(web::get().to(get_password_policy))
            .route(web::put().to(put_password_policy))
            .route(web::patch().to(patch_password_policy)),
    )
    .service(
        resource("/access/api/v1/config/security/authentication/basic_authentication_enabled")
            .route(web::get().to(get_basic_auth))
            .route(web::put().to(put_basic_auth)),
    )
    .service(
        resource(&format!("{SECURITY}/userLockPolicy"))
            .route(web::get().to(get_lock_policy))
            .route(web::put().to(put_lock_policy)),
    )
    .service(resource(&format!("{SECURITY}/lockedUsers")).route(web::get().to(locked_users)))
    .service(resource(&format!("{SECURITY}/unlockUsers")).route(web::post().to(unlock_users)))
    .service(
        resource(&format!("{SECURITY}/unlockUsers/{{userName}}"))
            .route(web::post().to(unlock_user)),
    )
    .service(resource(&format!("{SECURITY}/unlockAllUsers")).route(web::post().to(unlock_all)))
    .service(
        resource(&format!(
            "{SECURITY}/configuration/passwordExpirationPolicy"
        ))
        .route(web::get().to(get_expiration_policy))
        .route(web::put().to(put_expiration_policy)),
    )
    .service(
        resource(&format!("{SECURITY}/users/authorization/expirePassword"))
            .route(web::post().to(expire_listed)),
    )
    .service(
        resource(&format!(
            "{SECURITY}/users/authorization/expirePasswordForAllUsers"
        ))
        .route(web::post().to(expire_all)),
    )
    .service(
        resource(&format!(
            "{SECURITY}/users/authorization/unexpirePasswordForAllUsers"
        ))
        .route(web::post().to(unexpire_all)),
    )
    .service(
        resource(&format!(
            "{SECURITY}/users/authorization/expirePassword/{{userName}}"
        ))
        .route(web::post().to(expire_one)),
    )
    .service(
        resource(&format!(
            "{SECURITY}/users/authorization/unexpirePassword/{{userName}}"
        ))
        .route(web::post().to(unexpire_one)),
    );
}

/// Check a new password against the password policy in force and hash it. `username`
/// is the user whose password it replaces, if any: under `not_match_old` it must not be
/// the current one. Every place that sets a user's password comes through here.
pub async fn new_password_hash(
    app: &AppState,
    username: Option<&str>,
    password: String,
) -> Result<String, ApiError> {
    let (policy, current) = {
        let s = app.read();
        let current = username
            .and_then(|u| s.directory.users.get(u))
            .and_then(|u| u.password_hash.clone());
        (rules::password_policy(&s), current)
    };
    domain::validate_password(&password, &policy)?;
    let current = current.filter(|_| policy.not_match_old);
    let hashed = web::block(move || match current {
        Some(old) if crate::auth::password::verify(&password, &old) => None,
        _ => Some(crate::auth::password::hash(&password)),
    })
    .await
    .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))?;
    hashed.ok_or_else(|| {
        ApiError::BadRequest("invalid `password`: must not be the current password".into())
    })
}

fn text(message: impl Into<String>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(message.into())
}

async fn change(
    app: &AppState,
    admin: &Admin,
    rid: &RequestId,
    change: SettingChange,
) -> Result<crate::writer::Committed, ApiError> {
    app.submit(Command::ChangeSetting(change), &admin.0.username, rid)
        .await
}

// --- default token expiry ---------------------------------------------------------

fn default_expiry_json(app: &AppState) -> Value {
    let seconds = rules::default_token_expiry(&app.read(), app.config.default_expiry);
    json!({ "default_token_expiration": seconds })
}

async fn get_default_expiry(app: web::Data<AppState>, _admin: Admin) -> HttpResponse {
    HttpResponse::Ok().json(default_expiry_json(&app))
}

#[derive(Deserialize)]
struct DefaultExpiry {
    default_token_expiration: u64,
}

async fn put_default_expiry(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    Body(body): Body<DefaultExpiry>,
) -> Result<HttpResponse, ApiError> {
    let committed = change(
        &app,
        &admin,
        &rid,
        SettingChange::DefaultTokenExpiry {
            seconds: body.default_token_expiration,
            max_expiry: app.config.max_expiry,
        },
    )
    .await?;
    Ok(written(
        HttpResponse::Ok().json(default_expiry_json(&app)),
        committed,
    ))
}

// --- user lock policy and unlocking -------------------------------------------------

fn lock_policy(app: &AppState) -> UserLockPolicy {
    rules::user_lock_policy(&app.read(), app.config.lockout_threshold)
}

async fn get_lock_policy(app: web::Data<AppState>, _admin: Admin) -> HttpResponse {
    let p = lock_policy(&app);
    HttpResponse::Ok().json(json!({"enabled": p.enabled, "loginAttempts": p.login_attempts}))
}

#[derive(Deserialize)]
struct LockPolicyIn {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default, rename = "loginAttempts")]
    login_attempts: Option<u32>,
}

async fn put_lock_policy(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    Body(body): Body<LockPolicyIn>,
) -> Result<HttpResponse, ApiError> {
    let current = lock_policy(&app);
    let policy = UserLockPolicy {
        enabled: body.enabled.unwrap_or(current.enabled),
        login_attempts: body.login_attempts.unwrap_or(current.login_attempts),
    };
    let committed = change(&app, &admin, &rid, SettingChange::UserLockPolicy(policy)).await?;
    Ok(written(
        text("Successfully configured user lock policy"),
        committed,
    ))
}

async fn locked_users(app: web::Data<AppState>, _admin: Admin) -> HttpResponse {
    let s = app.read();
    let names: Vec<&str> = s
        .directory
        .users
        .values()
        .filter(|u| u.status == gatehouse_schemas::UserStatus::Locked)
        .map(|u| u.username.as_str())
        .collect();
    HttpResponse::Ok().json(names)
}

/// Unlock these users or (`None`) every locked one; their failure counts start again.
async fn unlock(
    app: &AppState,
    admin: &Admin,
    rid: &RequestId,
    usernames: Option<Vec<String>>,
) -> Result<HttpResponse, ApiError> {
    let names: Vec<String> = match &usernames {
        Some(list) => list.iter().map(|n| n.to_lowercase()).collect(),
        None => app
            .read()
            .directory
            .users
            .values()
            .filter(|u| u.status == gatehouse_schemas::UserStatus::Locked)
            .map(|u| u.username.clone())
            .collect(),
    };
    let committed = app
        .submit(Command::UnlockUsers { usernames }, &admin.0.username, rid)
        .await?;
    for name in &names {
        app.auth.forget_failures(name);
    }
    Ok(written(text("Completed unlocking users"), committed))
}

async fn unlock_users(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    Body(names): Body<Vec<String>>,
) -> Result<HttpResponse, ApiError> {
    unlock(&app, &admin, &rid, Some(names)).await
}

async fn unlock_user(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    unlock(&app, &admin, &rid, Some(vec![path.into_inner()])).await
}

async fn unlock_all(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
) -> Result<HttpResponse, ApiError> {
    unlock(&app, &admin, &rid, None).await
}

// --- password expiration --------------------------------------------------------------

/// Artifactory answers strings here and py-jfrog-client's model insists on them; JFrog's
/// documentation shows booleans and numbers, so both are accepted on the way in.
fn expiration_json(p: &PasswordExpirationPolicy) -> Value {
    json!({
        "enabled": p.enabled.to_string(),
        "passwordMaxAge": p.max_age_days.to_string(),
        "notifyByEmail": p.notify_by_email.to_string(),
    })
}

async fn get_expiration_policy(app: web::Data<AppState>, _admin: Admin) -> HttpResponse {
    HttpResponse::Ok().json(expiration_json(&rules::password_expiration(&app.read())))
}

#[derive(Deserialize)]
struct ExpirationIn {
    #[serde(default)]
    enabled: Option<Value>,
    #[serde(default, rename = "passwordMaxAge")]
    password_max_age: Option<Value>,
    #[serde(default, rename = "notifyByEmail")]
    notify_by_email: Option<Value>,
}

/// `true`/`false`, or their strings in any case.
fn flag(field: &str, v: Option<Value>, current: bool) -> Result<bool, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(current),
        Some(Value::Bool(b)) => Ok(b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(ApiError::BadRequest(format!(
            "invalid `{field}`: `{other}` is not true or false"
        ))),
    }
}

/// A whole number, or its string.
fn number(field: &str, v: Option<Value>, current: u32) -> Result<u32, ApiError> {
    let bad = |v: &Value| ApiError::BadRequest(format!("invalid `{field}`: `{v}` is not a number"));
    match v {
        None | Some(Value::Null) => Ok(current),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| bad(&Value::Number(n))),
        Some(Value::String(s)) => s.trim().parse().map_err(|_| bad(&Value::String(s))),
        Some(other) => Err(bad(&other)),
    }
}

async fn put_expiration_policy(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    Body(body): Body<ExpirationIn>,
) -> Result<HttpResponse, ApiError> {
    let current = rules::password_expiration(&app.read());
    let policy = PasswordExpirationPolicy {
        enabled: flag("enabled", body.enabled, current.enabled)?,
        max_age_days: number(
            "passwordMaxAge",
            body.password_max_age,
            current.max_age_days,
        )?,
        notify_by_email: flag(
            "notifyByEmail",
            body.notify_by_email,
            current.notify_by_email,
        )?,
    };
    let committed = change(
        &app,
        &admin,
        &rid,
        SettingChange::PasswordExpirationPolicy(policy),
    )
    .await?;
    Ok(written(
        HttpResponse::Ok().json(expiration_json(&rules::password_expiration(&app.read()))),
        committed,
    ))
}

/// A plain-text answer naming how many users an action changed.
fn counted(what: &str, committed: &crate::writer::Committed) -> HttpResponse {
    let n = committed.events;
    text(format!(
        "{what} for {n} user{}",
        if n == 1 { "" } else { "s" }
    ))
}

async fn expire_all(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
) -> Result<HttpResponse, ApiError> {
    let committed = app
        .submit(
            Command::ExpirePasswords {
                usernames: None,
                except: Some(admin.0.username.clone()),
            },
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(counted("Passwords expired", &committed), committed))
}

async fn unexpire_all(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
) -> Result<HttpResponse, ApiError> {
    let cmd = Command::UnexpirePasswords {
        usernames: None,
        now_ms: crate::auth::unix_millis(),
    };
    let committed = app.submit(cmd, &admin.0.username, &rid).await?;
    Ok(written(
        counted("Passwords unexpired", &committed),
        committed,
    ))
}

async fn expire_listed(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    Body(names): Body<Vec<String>>,
) -> Result<HttpResponse, ApiError> {
    super::users::not_ones_own_expiry(&admin.0.username, names.iter().map(String::as_str))?;
    let cmd = Command::ExpirePasswords {
        usernames: Some(names),
        except: None,
    };
    let committed = app.submit(cmd, &admin.0.username, &rid).await?;
    Ok(written(counted("Passwords expired", &committed), committed))
}

async fn expire_one(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    super::users::not_ones_own_expiry(&admin.0.username, [path.as_str()])?;
    let cmd = Command::ExpirePasswords {
        usernames: Some(vec![path.into_inner()]),
        except: None,
    };
    let committed = app.submit(cmd, &admin.0.username, &rid).await?;
    Ok(written(text("Password expired"), committed))
}

async fn unexpire_one(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let username = domain::normalize_username("userName", &path)?;
    let committed = app
        .submit(
            Command::UnexpirePassword { username },
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(text("Password unexpired"), committed))
}

// --- password policy ------------------------------------------------------------------

fn policy_json(p: &PasswordPolicy) -> Value {
    json!({
        "uppercase": p.uppercase,
        "lowercase": p.lowercase,
        "digit": p.digit,
        "special_char": p.special_char,
        "length": p.length,
        "not_match_old": p.not_match_old,
    })
}

async fn get_password_policy(app: web::Data<AppState>, _admin: Admin) -> HttpResponse {
    HttpResponse::Ok().json(policy_json(&rules::password_policy(&app.read())))
}

/// Counts are unsigned: a negative one is refused by the body parser, naming the field.
#[derive(Deserialize)]
struct PolicyIn {
    #[serde(default)]
    uppercase: Option<u32>,
    #[serde(default)]
    lowercase: Option<u32>,
    #[serde(default)]
    digit: Option<u32>,
    #[serde(default)]
    special_char: Option<u32>,
    #[serde(default)]
    length: Option<u32>,
    #[serde(default)]
    not_match_old: Option<bool>,
}

impl PolicyIn {
    fn over(self, base: PasswordPolicy) -> PasswordPolicy {
        PasswordPolicy {
            uppercase: self.uppercase.unwrap_or(base.uppercase),
            lowercase: self.lowercase.unwrap_or(base.lowercase),
            digit: self.digit.unwrap_or(base.digit),
            special_char: self.special_char.unwrap_or(base.special_char),
            length: self.length.unwrap_or(base.length),
            not_match_old: self.not_match_old.unwrap_or(base.not_match_old),
        }
    }
}

/// PUT replaces (what is left out takes the built-in default); PATCH merges into the
/// policy in force.
async fn save_password_policy(
    app: &AppState,
    admin: &Admin,
    rid: &RequestId,
    body: PolicyIn,
    replace: bool,
) -> Result<HttpResponse, ApiError> {
    let base = if replace {
        domain::default_password_policy()
    } else {
        rules::password_policy(&app.read())
    };
    let committed = change(
        app,
        admin,
        rid,
        SettingChange::PasswordPolicy(body.over(base)),
    )
    .await?;
    Ok(written(HttpResponse::NoContent().finish(), committed))
}

async fn put_password_policy(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    Body(body): Body<PolicyIn>,
) -> Result<HttpResponse, ApiError> {
    save_password_policy(&app, &admin, &rid, body, true).await
}

async fn patch_password_policy(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    OptionalBody(body): OptionalBody<PolicyIn>,
) -> Result<HttpResponse, ApiError> {
    let body = body.unwrap_or(PolicyIn {
        uppercase: None,
        lowercase: None,
        digit: None,
        special_char: None,
        length: None,
        not_match_old: None,
    });
    save_password_policy(&app, &admin, &rid, body, false).await
}

// --- basic authentication -------------------------------------------------------------

async fn get_basic_auth(app: web::Data<AppState>, _admin: Admin) -> HttpResponse {
    HttpResponse::Ok().json(json!({"enabled": rules::basic_authentication(&app.read())}))
}

#[derive(Deserialize)]
struct BasicAuthIn {
    enabled: bool,
}

async fn put_basic_auth(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    Body(body): Body<BasicAuthIn>,
) -> Result<HttpResponse, ApiError> {
    let committed = change(
        &app,
        &admin,
        &rid,
        SettingChange::BasicAuthentication(body.enabled),
    )
    .await?;
    Ok(written(
        HttpResponse::Ok().json(json!({"enabled": rules::basic_authentication(&app.read())})),
        committed,
    ))
}

//! Bintray-style access keys and entitlements (seeds 000/001), under
//! `/access/api/v1/orgs/{org}/…`. An access key signs in as `<id>@<org>` with its
//! password and is *scoped*: it reaches only what its entitlements grant, through the
//! authorize decision (`crate::authorize::decide_access_key`). Admin only.

use super::error::ApiError;
use super::extract::{Admin, Body, RequestId};
use super::{query_param, resource, written, AppState};
use crate::auth::{parse_cidr, password};
use crate::domain::{self, Command};
use actix_web::{web, HttpRequest, HttpResponse};
use gatehouse_projections::access_key_username;
use gatehouse_schemas::{AccessKey, Entitlement, ExistenceCheck};
use serde::Deserialize;
use serde_json::Value;

const BASE: &str = "/access/api/v1/orgs/{org}";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource(&format!("{BASE}/access_keys"))
            .route(web::get().to(list_keys))
            .route(web::post().to(create_key)),
    )
    .service(
        resource(&format!("{BASE}/access_keys/{{id}}"))
            .route(web::get().to(get_key))
            .route(web::patch().to(update_key))
            .route(web::delete().to(delete_key)),
    )
    .service(
        resource(&format!("{BASE}/entitlements"))
            .route(web::get().to(list_entitlements))
            .route(web::post().to(create_entitlement)),
    )
    .service(
        resource(&format!("{BASE}/entitlements/{{id}}"))
            .route(web::get().to(get_entitlement))
            .route(web::patch().to(update_entitlement))
            .route(web::delete().to(delete_entitlement)),
    );
}

fn check_cidrs(field: &str, list: &[String]) -> Result<(), ApiError> {
    for (i, c) in list.iter().enumerate() {
        if parse_cidr(c).is_none() {
            return Err(ApiError::BadRequest(format!(
                "invalid `{field}[{i}]`: `{}` is not a CIDR (like 10.0.0.0/8) or an IP address",
                c.escape_debug()
            )));
        }
    }
    Ok(())
}

#[derive(Deserialize, Clone)]
struct ExistenceCheckIn {
    url: String,
    #[serde(default)]
    cache_for_secs: u64,
}

fn existence_in(c: ExistenceCheckIn) -> Result<ExistenceCheck, ApiError> {
    let url = c.url.trim();
    // As webhook and federation URLs are checked: parsed as the client that calls it
    // parses it (a port out of range or an empty host was stored, and the key then
    // failed every sign-in), and no credentials in it (stored, shown and audited).
    super::webhooks::check_url("existence_check.url", url)?;
    if c.cache_for_secs > 30 * 24 * 3600 {
        return Err(ApiError::BadRequest(
            "invalid `existence_check.cache_for_secs`: at most 30 days".into(),
        ));
    }
    Ok(ExistenceCheck {
        url: url.to_string(),
        cache_for_secs: c.cache_for_secs,
    })
}

#[derive(Deserialize, Clone)]
struct KeyIn {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    password: Option<String>,
    /// Unix milliseconds (Bintray's `expiry`); `null` in a PATCH removes the expiry.
    #[serde(default, deserialize_with = "present")]
    expiry: Option<Value>,
    /// `null` in a PATCH removes the check.
    #[serde(default, deserialize_with = "present")]
    existence_check: Option<Value>,
    #[serde(default, alias = "white_cidrs")]
    allowed_cidrs: Option<Vec<String>>,
    #[serde(default, alias = "black_cidrs")]
    blocked_cidrs: Option<Vec<String>>,
    /// As a read shows them: sent back as they are, nothing; another value is a 400
    /// (answered 200 and ignored, the client believed it had moved or renamed the key).
    #[serde(default)]
    org: Option<String>,
    #[serde(default)]
    username: Option<String>,
}

impl KeyIn {
    /// `org` and `username`, where given, name the key `key` (of `org`, as `<id>@<org>`).
    fn names(&self, key: &AccessKey) -> Result<(), ApiError> {
        if self
            .org
            .as_ref()
            .is_some_and(|o| o.to_lowercase() != key.org)
        {
            return Err(ApiError::BadRequest(
                "invalid `org`: must match the org in the path (a key does not move)".into(),
            ));
        }
        let name = access_key_username(&key.org, &key.id);
        if self
            .username
            .as_ref()
            .is_some_and(|u| u.to_lowercase() != name)
        {
            return Err(ApiError::BadRequest(format!(
                "invalid `username`: must be `{name}` (`<id>@<org>`; a key is not renamed)"
            )));
        }
        Ok(())
    }
}

/// A field that is present, even as `null` (absent stays `None` through `default`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// A given password meets the password policy in force; a generated one (random, 144
/// bits) is not held to it.
async fn hash(app: &AppState, password: String) -> Result<String, ApiError> {
    super::settings::new_password_hash(app, None, password).await
}

async fn hash_generated(password: String) -> Result<String, ApiError> {
    web::block(move || password::hash(&password))
        .await
        .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))
}

/// Apply the fields of `body` to `key`; returns the generated password, if one was made.
async fn apply_key_fields(
    app: &AppState,
    key: &mut AccessKey,
    body: KeyIn,
    creating: bool,
) -> Result<Option<String>, ApiError> {
    let mut generated = None;
    match body.password {
        Some(p) => key.password_hash = hash(app, p).await?,
        None if creating => {
            let p = password::generate();
            key.password_hash = hash_generated(p.clone()).await?;
            generated = Some(p);
        }
        None => {}
    }
    match body.expiry {
        None => {}
        Some(Value::Null) => key.expiry_ms = None,
        Some(v) => {
            let ms = v.as_u64().ok_or_else(|| {
                ApiError::BadRequest(
                    "invalid `expiry`: unix time in milliseconds, or null for none".into(),
                )
            })?;
            // 0 is "none" as in JFrog's token APIs (an admin's script sends it); a time
            // already past made a key that could never sign in, without a word.
            if ms == 0 {
                key.expiry_ms = None;
            } else if key.expiry_ms == Some(ms) {
                // Sent back as it is (a read, edited elsewhere, written back): no change,
                // even once that time has passed.
            } else if ms <= crate::auth::unix_millis() {
                return Err(ApiError::BadRequest(format!(
                    "invalid `expiry`: {ms} is in the past (unix time in milliseconds; 0 or null for none)"
                )));
            } else {
                key.expiry_ms = Some(ms);
            }
        }
    }
    match body.existence_check {
        None => {}
        Some(Value::Null) => key.existence_check = None,
        Some(v) => {
            // Through the body's own reader: a bad field inside is named by its path.
            let c: ExistenceCheckIn = serde_path_to_error::deserialize(v).map_err(|e| {
                let path = e.path().to_string();
                let field = match path.as_str() {
                    "." | "" => "existence_check".to_string(),
                    inner => format!("existence_check.{inner}"),
                };
                let message = super::extract::without_value(&e.into_inner().to_string());
                ApiError::BadRequest(format!("invalid `{field}`: {message}"))
            })?;
            key.existence_check = Some(existence_in(c)?);
        }
    }
    if let Some(list) = body.allowed_cidrs {
        check_cidrs("allowed_cidrs", &list)?;
        key.allowed_cidrs = list;
    }
    if let Some(list) = body.blocked_cidrs {
        check_cidrs("blocked_cidrs", &list)?;
        key.blocked_cidrs = list;
    }
    Ok(generated)
}

async fn list_keys(
    app: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let org = domain::normalize_key_part("org", &path)?;
    // No search here: a parameter is a filter the client believed applied (`as_of` is
    // the middleware's).
    super::only_query_params(&req, &[])?;
    let s = app.view(&req);
    let items: Vec<_> = s
        .access_keys
        .keys
        .values()
        .filter(|k| k.key.org == org)
        .map(|k| crate::views::access_key(&k.key))
        .collect();
    Ok(HttpResponse::Ok().json(items))
}

/// 201 with the key; `password` is in the answer only when the server generated it
/// (the one time it is ever shown).
async fn create_key(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
    Body(body): Body<KeyIn>,
) -> Result<HttpResponse, ApiError> {
    let org = domain::normalize_key_part("org", &path)?;
    let id = body
        .id
        .clone()
        .ok_or_else(|| ApiError::BadRequest("invalid `id`: required".into()))?;
    let id = domain::normalize_key_part("id", &id)?;
    // A key signs in as `<id>@<org>:<password>` over Basic, whose user part ends at the
    // first `:` (RFC 7617): a key with one in its name could never sign in. Refused when
    // made only: one made before can still be read and deleted.
    for (field, v) in [("org", &org), ("id", &id)] {
        if v.contains(':') {
            return Err(ApiError::BadRequest(format!(
                "invalid `{field}`: must not contain `:` (the key signs in as `<id>@<org>:<password>`)"
            )));
        }
    }
    let mut key = AccessKey {
        org,
        id,
        ..Default::default()
    };
    body.names(&key)?;
    let generated = apply_key_fields(&app, &mut key, body, true).await?;
    let committed = app
        .submit(
            Command::SaveAccessKey {
                key: key.clone(),
                create_only: true,
            },
            &admin.0.username,
            &rid,
        )
        .await?;
    let mut out = crate::views::access_key(&key);
    if let Some(p) = generated {
        out["password"] = Value::String(p);
    }
    Ok(written(
        super::no_store(HttpResponse::Created().json(out)),
        committed,
    ))
}

fn find_key(s: &gatehouse_projections::State, org: &str, id: &str) -> Result<AccessKey, ApiError> {
    let name = access_key_username(
        &domain::normalize_key_part("org", org)?,
        &domain::normalize_key_part("id", id)?,
    );
    s.access_keys
        .keys
        .get(&name)
        .map(|r| r.key.clone())
        .ok_or_else(|| ApiError::NotFound(format!("access key `{name}` not found")))
}

async fn get_key(
    app: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let key = find_key(&app.view(&req), &path.0, &path.1)?;
    Ok(HttpResponse::Ok().json(crate::views::access_key(&key)))
}

async fn update_key(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<(String, String)>,
    Body(body): Body<KeyIn>,
) -> Result<HttpResponse, ApiError> {
    let mut body = body;
    // Hashed once, before the read-change-write (which may run more than once).
    let password_hash = match body.password.take() {
        Some(p) => Some(hash(&app, p).await?),
        None => None,
    };
    let (key, committed) = super::read_change_write(&app, async || {
        let was = find_key(&app.read(), &path.0, &path.1)?;
        let mut key = was.clone();
        if body.id.as_ref().is_some_and(|i| i.to_lowercase() != key.id) {
            return Err(ApiError::BadRequest(
                "invalid `id`: must match the id in the path".into(),
            ));
        }
        body.names(&key)?;
        apply_key_fields(&app, &mut key, body.clone(), false).await?;
        if let Some(h) = &password_hash {
            key.password_hash = h.clone();
        }
        let name = access_key_username(&key.org, &key.id);
        let committed = app
            .submit(
                Command::IfUnchanged {
                    read: domain::AsRead::AccessKey(name, Some(was)),
                    command: Box::new(Command::SaveAccessKey {
                        key: key.clone(),
                        create_only: false,
                    }),
                },
                &admin.0.username,
                &rid,
            )
            .await?;
        Ok((key, committed))
    })
    .await?;
    Ok(written(
        HttpResponse::Ok().json(crate::views::access_key(&key)),
        committed,
    ))
}

async fn delete_key(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let org = domain::normalize_key_part("org", &path.0)?;
    let id = domain::normalize_key_part("id", &path.1)?;
    let committed = app
        .submit(
            Command::DeleteAccessKey { org, id },
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(HttpResponse::NoContent().finish(), committed))
}

// ---- entitlements -----------------------------------------------------------------

#[derive(Deserialize)]
struct EntitlementIn {
    repo: String,
    #[serde(default)]
    package: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    path: Option<String>,
    access: String,
    #[serde(default, deserialize_with = "crate::views::null_as_default")]
    access_keys: Vec<String>,
    #[serde(default, deserialize_with = "crate::views::null_as_default")]
    tags: Vec<String>,
}

#[derive(Deserialize, Clone)]
struct EntitlementPatch {
    #[serde(default)]
    access: Option<String>,
    #[serde(default)]
    access_keys: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::views::null_as_default")]
    access_keys_add: Vec<String>,
    #[serde(default, deserialize_with = "crate::views::null_as_default")]
    access_keys_remove: Vec<String>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::views::null_as_default")]
    tags_add: Vec<String>,
    #[serde(default, deserialize_with = "crate::views::null_as_default")]
    tags_remove: Vec<String>,
    /// What an entitlement is on cannot change: named again as it is (a whole object
    /// sent back) is fine, another value is a 400 (it was ignored, and the client told
    /// 200 believed it had moved the entitlement).
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    repo: Option<serde_json::Value>,
    #[serde(default)]
    package: Option<serde_json::Value>,
    #[serde(default)]
    version: Option<serde_json::Value>,
    #[serde(default)]
    path: Option<serde_json::Value>,
}

/// `remove` naming what `add` names is a contradiction (users' and groups' `{add,
/// remove}` answer it 400 too); it was settled silently, the add winning.
fn check_add_remove(field: &str, add: &[String], remove: &[String]) -> Result<(), ApiError> {
    let remove: std::collections::HashSet<&String> = remove.iter().collect();
    match add.iter().find(|a| remove.contains(a)) {
        Some(both) => Err(ApiError::BadRequest(format!(
            "invalid `{field}_remove`: `{}` is in `{field}_add` too",
            both.escape_debug()
        ))),
        None => Ok(()),
    }
}

fn check_access(a: &str) -> Result<(), ApiError> {
    if a == "r" || a == "rw" {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "invalid `access`: `{}` (use r or rw)",
            a.escape_debug()
        )))
    }
}

fn check_segment(field: &str, v: &str) -> Result<(), ApiError> {
    if v.trim().is_empty()
        || v.len() > 256
        || v.contains('/')
        || v == "."
        || v == ".."
        || v.chars().any(|c| c.is_control())
    {
        return Err(ApiError::BadRequest(format!(
            "invalid `{field}`: one path segment, 1 to 256 characters, not blank"
        )));
    }
    Ok(())
}

fn check_tags(field: &str, tags: &[String]) -> Result<(), ApiError> {
    for (i, t) in tags.iter().enumerate() {
        if t.trim().is_empty() || t.chars().count() > 128 || t.chars().any(char::is_control) {
            return Err(ApiError::BadRequest(format!(
                "invalid `{field}[{i}]`: 1 to 128 characters, no control characters"
            )));
        }
    }
    Ok(())
}

/// Key ids as stored (lower-case), each checked.
fn key_ids(field: &str, ids: &[String]) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::with_capacity(ids.len());
    for (i, k) in ids.iter().enumerate() {
        out.push(domain::normalize_key_part(&format!("{field}[{i}]"), k)?);
    }
    Ok(out)
}

/// `list` without `remove`, then with each of `add` it does not hold yet, in order. In
/// sets: compared item by item, 50,000 tags held a request worker for 40 s.
fn merged(list: &mut Vec<String>, add: &[String], remove: &[String]) {
    use std::collections::HashSet;
    let remove: HashSet<&String> = remove.iter().collect();
    list.retain(|x| !remove.contains(x));
    let mut held: HashSet<String> = list.iter().cloned().collect();
    for a in add {
        if held.insert(a.clone()) {
            list.push(a.clone());
        }
    }
}

/// The most tags, and access keys, one entitlement holds.
const MAX_LISTED: usize = 10_000;

fn check_listed(field: &str, list: &[String]) -> Result<(), ApiError> {
    if list.len() > MAX_LISTED {
        return Err(ApiError::BadRequest(format!(
            "invalid `{field}`: at most {MAX_LISTED} on one entitlement"
        )));
    }
    Ok(())
}

async fn create_entitlement(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
    Body(body): Body<EntitlementIn>,
) -> Result<HttpResponse, ApiError> {
    let org = domain::normalize_key_part("org", &path)?;
    super::repositories::validate_repo_key("repo", &body.repo)?;
    if let Some(p) = &body.package {
        check_segment("package", p)?;
    }
    if let Some(v) = &body.version {
        check_segment("version", v)?;
        if body.package.is_none() {
            return Err(ApiError::BadRequest(
                "invalid `version`: a version entitlement needs its `package`".into(),
            ));
        }
    }
    if let Some(p) = &body.path {
        if body.package.is_some() {
            return Err(ApiError::BadRequest(
                "invalid `path`: give a package (and version) or a path, not both".into(),
            ));
        }
        let trimmed = p.trim_matches('/');
        if trimmed.is_empty()
            || p.len() > 1024
            || trimmed
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
            || p.chars().any(char::is_control)
        {
            return Err(ApiError::BadRequest(
                "invalid `path`: a relative path inside the repository, like `a/b`".into(),
            ));
        }
    }
    check_access(&body.access)?;
    let ids = key_ids("access_keys", &body.access_keys)?;
    check_tags("tags", &body.tags)?;
    let mut keys = Vec::new();
    merged(&mut keys, &ids, &[]);
    let mut tags = Vec::new();
    merged(&mut tags, &body.tags, &[]);
    check_listed("access_keys", &keys)?;
    check_listed("tags", &tags)?;
    let entitlement = Entitlement {
        id: crate::ids::new_ulid(),
        org,
        repo: body.repo,
        package: body.package,
        version: body.version,
        path: body.path.map(|p| p.trim_matches('/').to_string()),
        access: body.access,
        access_keys: keys,
        tags,
    };
    let committed = app
        .submit(
            Command::SaveEntitlement {
                entitlement: entitlement.clone(),
                create_only: true,
            },
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(
        HttpResponse::Created().json(crate::views::entitlement(&entitlement)),
        committed,
    ))
}

/// List and search: every filter given must match (`tag`, `access_key`, `access`,
/// `repo`, `package`, `version`, `path`).
async fn list_entitlements(
    app: web::Data<AppState>,
    _admin: Admin,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let org = domain::normalize_key_part("org", &path)?;
    super::only_query_params(
        &req,
        &[
            "tag",
            "access_key",
            "access",
            "repo",
            "package",
            "version",
            "path",
        ],
    )?;
    let tag = query_param(&req, "tag")?;
    let key = query_param(&req, "access_key")?.map(|k| k.to_lowercase());
    let access = query_param(&req, "access")?;
    if let Some(a) = &access {
        check_access(a)?;
    }
    let repo = query_param(&req, "repo")?;
    let package = query_param(&req, "package")?;
    let version = query_param(&req, "version")?;
    let epath = query_param(&req, "path")?.map(|p| p.trim_matches('/').to_string());
    let s = app.view(&req);
    let items: Vec<_> = s
        .access_keys
        .entitlements
        .values()
        .map(|r| &r.entitlement)
        .filter(|e| e.org == org)
        .filter(|e| tag.as_ref().is_none_or(|t| e.tags.contains(t)))
        .filter(|e| key.as_ref().is_none_or(|k| e.access_keys.contains(k)))
        .filter(|e| access.as_ref().is_none_or(|a| e.access == *a))
        .filter(|e| repo.as_ref().is_none_or(|r| e.repo == *r))
        .filter(|e| {
            package
                .as_ref()
                .is_none_or(|p| e.package.as_ref() == Some(p))
        })
        .filter(|e| {
            version
                .as_ref()
                .is_none_or(|v| e.version.as_ref() == Some(v))
        })
        .filter(|e| epath.as_ref().is_none_or(|p| e.path.as_ref() == Some(p)))
        .map(crate::views::entitlement)
        .collect();
    Ok(HttpResponse::Ok().json(items))
}

fn find_entitlement(
    s: &gatehouse_projections::State,
    org: &str,
    id: &str,
) -> Result<Entitlement, ApiError> {
    let org = domain::normalize_key_part("org", org)?;
    s.access_keys
        .entitlements
        .get(id)
        .filter(|e| e.entitlement.org == org)
        .map(|e| e.entitlement.clone())
        .ok_or_else(|| ApiError::NotFound(format!("entitlement `{id}` not found in org `{org}`")))
}

async fn get_entitlement(
    app: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let e = find_entitlement(&app.view(&req), &path.0, &path.1)?;
    Ok(HttpResponse::Ok().json(crate::views::entitlement(&e)))
}

/// Change access, replace or add/remove keys and tags (Bintray's `tags_add`,
/// `tags_remove`, `access_keys_add`, `access_keys_remove`).
async fn update_entitlement(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<(String, String)>,
    Body(body): Body<EntitlementPatch>,
) -> Result<HttpResponse, ApiError> {
    let (e, committed) = super::read_change_write(&app, async || {
        let was = find_entitlement(&app.read(), &path.0, &path.1)?;
        let e = change_entitlement(&app, was.clone(), body.clone())?;
        let committed = app
            .submit(
                Command::IfUnchanged {
                    read: domain::AsRead::Entitlement(e.id.clone(), Some(was)),
                    command: Box::new(Command::SaveEntitlement {
                        entitlement: e.clone(),
                        create_only: false,
                    }),
                },
                &admin.0.username,
                &rid,
            )
            .await?;
        Ok((e, committed))
    })
    .await?;
    Ok(written(
        HttpResponse::Ok().json(crate::views::entitlement(&e)),
        committed,
    ))
}

/// The entitlement `e` with the changes of `body`.
fn change_entitlement(
    app: &AppState,
    mut e: Entitlement,
    body: EntitlementPatch,
) -> Result<Entitlement, ApiError> {
    let before = (e.access_keys.len(), e.tags.len());
    for (field, given, stored) in [
        ("id", &body.id, Some(e.id.as_str())),
        ("repo", &body.repo, Some(e.repo.as_str())),
        ("package", &body.package, e.package.as_deref()),
        ("version", &body.version, e.version.as_deref()),
        ("path", &body.path, e.path.as_deref()),
    ] {
        match given {
            // `null`: not given (as everywhere), or the absent value sent back.
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::String(v)) if Some(v.as_str()) == stored => {}
            Some(serde_json::Value::String(_)) => {
                return Err(ApiError::BadRequest(format!(
                    "invalid `{field}`: what an entitlement is on cannot change (delete it and create another)"
                )))
            }
            Some(_) => {
                return Err(ApiError::BadRequest(format!(
                    "invalid `{field}`: expected a string"
                )))
            }
        }
    }
    if let Some(a) = body.access {
        check_access(&a)?;
        e.access = a;
    }
    if let Some(keys) = &body.access_keys {
        let keys = key_ids("access_keys", keys)?;
        e.access_keys.clear();
        merged(&mut e.access_keys, &keys, &[]);
    }
    let add = key_ids("access_keys_add", &body.access_keys_add)?;
    // Named as sent (the domain's rule names the merged list, which the client did not).
    {
        let s = app.read();
        for (i, k) in add.iter().enumerate() {
            let name = gatehouse_projections::access_key_username(&e.org, k);
            if !s.access_keys.keys.contains_key(&name) {
                return Err(ApiError::BadRequest(format!(
                    "invalid `access_keys_add[{i}]`: org `{}` has no access key `{k}`",
                    e.org
                )));
            }
        }
    }
    let remove = key_ids("access_keys_remove", &body.access_keys_remove)?;
    check_add_remove("access_keys", &add, &remove)?;
    merged(&mut e.access_keys, &add, &remove);
    if let Some(tags) = &body.tags {
        check_tags("tags", tags)?;
        e.tags.clear();
        merged(&mut e.tags, tags, &[]);
    }
    check_tags("tags_add", &body.tags_add)?;
    check_add_remove("tags", &body.tags_add, &body.tags_remove)?;
    merged(&mut e.tags, &body.tags_add, &body.tags_remove);
    // Over the limit only by growing: one stored before the limit may still shrink.
    if e.access_keys.len() > before.0 {
        check_listed("access_keys", &e.access_keys)?;
    }
    if e.tags.len() > before.1 {
        check_listed("tags", &e.tags)?;
    }
    Ok(e)
}

async fn delete_entitlement(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let org = domain::normalize_key_part("org", &path.0)?;
    let id = path.1.clone();
    let committed = app
        .submit(
            Command::DeleteEntitlement { org, id },
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(HttpResponse::NoContent().finish(), committed))
}

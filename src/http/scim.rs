//! SCIM 2.0 under `/access/api/v1/scim/v2` (RFC 7644; seed 004 "SCIM"): Users and
//! Groups (list with filter/paging/sorting/projection, `.search`, create, get, replace,
//! patch, delete, `If-Match`), ServiceProviderConfig, ResourceTypes and Schemas.
//!
//! Resources are rendered from the directory (`render_user`, `render_group`); writes
//! turn the resource a client sent (or a PATCHed rendering) into one domain command, so
//! SCIM and the v2 API write the same events. Every error is a SCIM error body.

use super::error::ApiError;
use super::extract::{authenticate, request_id, RequestId};
use super::{written, AppState, View};
use crate::domain::{self, Command, NewGroup, NewUser, UserChanges};
use crate::personal::PersonalKeys;
use crate::scim::common_user::CommonUser;
use crate::scim::filter::{self, Filter};
use crate::scim::render_cache::{Rendered, Stamp};
use crate::scim::{self, patch, Kind};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use gatehouse_projections::{Group, State, User};
use gatehouse_schemas::UserStatus;
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub const BASE: &str = "/access/api/v1/scim/v2";
const CONTENT_TYPE: &str = "application/scim+json";

/// [`CONTENT_TYPE`] as a header value made once: `content_type(&str)` checked and copied
/// the text into a new buffer on every answer.
fn content_type() -> header::HeaderValue {
    header::HeaderValue::from_static(CONTENT_TYPE)
}
/// The most resources one list answer holds (`filter.maxResults`).
pub const MAX_RESULTS: usize = 1000;
/// Seed 004: list results are "limited to the first 20" unless `count` asks for more.
const DEFAULT_COUNT: usize = 20;

/// A SCIM error (RFC 7644 §3.12).
#[derive(Debug)]
pub struct ScimError {
    status: StatusCode,
    scim_type: Option<&'static str>,
    detail: String,
    /// `Retry-After` (seconds) of a 429 or a 503 from the sign-in limits.
    retry_after: Option<u64>,
}

impl ScimError {
    fn new(status: StatusCode, scim_type: Option<&'static str>, detail: impl Into<String>) -> Self {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
            retry_after: None,
        }
    }

    fn bad(scim_type: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }

    fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, detail)
    }
}

impl std::fmt::Display for ScimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.detail)
    }
}

impl ResponseError for ScimError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = json!({
            "schemas": [scim::ERROR_SCHEMA],
            "status": self.status.as_u16().to_string(),
            "detail": super::error::shown(self.detail.clone()),
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t);
        }
        let mut res = HttpResponse::build(self.status);
        res.content_type(content_type());
        if self.status == StatusCode::UNAUTHORIZED {
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"gatehouse\""));
        }
        if let Some(secs) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        res.body(body.to_string())
    }
}

impl From<ApiError> for ScimError {
    fn from(e: ApiError) -> Self {
        let status = e.status_code();
        let scim_type = match &e {
            // RFC 7644's `uniqueness` is for a value already in use; another clash (the
            // last admin who can sign in) is a 409 without a scimType.
            ApiError::Taken(_) => Some("uniqueness"),
            ApiError::BadRequest(_) => Some("invalidValue"),
            _ => None,
        };
        let retry_after = match &e {
            ApiError::TooManyRequests(_, secs) | ApiError::UnavailableFor(_, secs) => Some(*secs),
            ApiError::Overloaded(_) => Some(1),
            _ => None,
        };
        ScimError {
            retry_after,
            ..ScimError::new(status, scim_type, e.to_string())
        }
    }
}

impl From<domain::DomainError> for ScimError {
    fn from(e: domain::DomainError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<scim::Invalid> for ScimError {
    fn from(e: scim::Invalid) -> Self {
        ScimError::bad("invalidValue", e.0)
    }
}

impl From<patch::PatchError> for ScimError {
    fn from(e: patch::PatchError) -> Self {
        use patch::PatchError::*;
        match e {
            Syntax(m) => ScimError::bad("invalidSyntax", m),
            Path(m) => ScimError::bad("invalidPath", m),
            NoTarget(m) => ScimError::bad("noTarget", m),
            Value(m) => ScimError::bad("invalidValue", m),
            Mutability(m) => ScimError::bad("mutability", m),
        }
    }
}

type Result<T> = std::result::Result<T, ScimError>;

/// In a scope: see `http::configure`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // A method a resource does not take: 405 with the ones it does (`Allow`, RFC 9110).
    let r = |p: &str, allow: &'static str| {
        web::resource(p).default_service(web::to(move || method_not_allowed(allow)))
    };
    cfg.service(
        web::scope(BASE)
            .service(r("/Users/.search", "POST").route(web::post().to(search_users)))
            .service(r("/Groups/.search", "POST").route(web::post().to(search_groups)))
            .service(r("/.search", "POST").route(web::post().to(search_all)))
            .service(
                r("/Users", "GET, POST")
                    .route(web::get().to(list_users))
                    .route(web::post().to(create_user)),
            )
            .service(
                r("/Users/{id}", "GET, PUT, PATCH, DELETE")
                    .route(web::get().to(get_user))
                    .route(web::put().to(put_user))
                    .route(web::patch().to(patch_user))
                    .route(web::delete().to(delete_user)),
            )
            .service(
                r("/Groups", "GET, POST")
                    .route(web::get().to(list_groups))
                    .route(web::post().to(create_group)),
            )
            .service(
                r("/Groups/{id}", "GET, PUT, PATCH, DELETE")
                    .route(web::get().to(get_group))
                    .route(web::put().to(put_group))
                    .route(web::patch().to(patch_group))
                    .route(web::delete().to(delete_group)),
            )
            .service(
                r("/ServiceProviderConfig", "GET").route(web::get().to(service_provider_config)),
            )
            .service(
                r("/ServiceProviderConfigs", "GET").route(web::get().to(service_provider_config)),
            )
            .service(r("/ResourceTypes", "GET").route(web::get().to(resource_types)))
            .service(r("/ResourceTypes/{id}", "GET").route(web::get().to(resource_type)))
            .service(r("/Schemas", "GET").route(web::get().to(list_schemas)))
            .service(r("/Schemas/{id}", "GET").route(web::get().to(get_schema)))
            .service(web::resource(["/Me", "/Me/{tail:.*}"]).to(me))
            .service(web::resource("/Bulk").to(bulk))
            .service(web::resource("/{tail:.*}").to(unknown)),
    );
}

/// The request body, at most `max-body-bytes` as every other body (actix's own `Bytes`
/// extractor stopped at 256 KiB with a plain-text 413: a large group's PATCH from an
/// identity provider), with its errors in SCIM's shape.
struct ScimBody(web::Bytes);

impl actix_web::FromRequest for ScimBody {
    type Error = ScimError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let body = super::extract::body_bytes(req, payload);
        Box::pin(async move { Ok(ScimBody(body.await?)) })
    }
}

async fn method_not_allowed(allow: &'static str) -> HttpResponse {
    let mut res = ScimError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        format!("method not allowed (this resource takes {allow})"),
    )
    .error_response();
    res.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    res
}

async fn unknown(req: HttpRequest) -> Result<HttpResponse> {
    Err(ScimError::not_found(format!(
        "no such SCIM endpoint: {}",
        req.path()
    )))
}

/// RFC 7644 §3.11: a provider without `/Me` SHOULD answer 501 (it answered 404, as an
/// unknown path). Provisioning clients sign in as admins, not as the users they manage.
async fn me() -> Result<HttpResponse> {
    Err(ScimError::new(
        StatusCode::NOT_IMPLEMENTED,
        None,
        "`/Me` is not supported: SCIM here is for provisioning, by an admin",
    ))
}

/// `/Bulk`: `ServiceProviderConfig` says `bulk.supported: false`; the endpoint answers
/// 501 as RFC 7644 §3.7 has a provider that does not offer it (it was a 404, "no such
/// SCIM endpoint", as a typo would be).
async fn bulk() -> Result<HttpResponse> {
    Err(ScimError::new(
        StatusCode::NOT_IMPLEMENTED,
        None,
        "`/Bulk` is not supported (ServiceProviderConfig: bulk.supported is false): send each operation on its own",
    ))
}

/// SCIM is for provisioning clients: admins (an admin token, or Basic).
async fn admin(req: &HttpRequest) -> Result<crate::auth::Principal> {
    // Boxed: the authentication's future (a password check, an LDAP sign-in) is 6 KiB,
    // and a handler's future is moved into its box on every request (a create's was 6.7
    // KiB with it inline, 2.6 KiB without); the other modules' `Admin` extractor boxes it
    // too.
    let p = Box::pin(authenticate(req.clone())).await?;
    if p.password_expired || !p.admin {
        return Err(ScimError::new(
            StatusCode::FORBIDDEN,
            None,
            "SCIM provisioning requires an admin",
        ));
    }
    Ok(p)
}

fn app_of(req: &HttpRequest) -> web::Data<AppState> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .expect("the application state is registered")
}

fn base_url(req: &HttpRequest) -> String {
    super::base_url_with(req, BASE)
}

fn scim_json(status: StatusCode, body: &Value) -> HttpResponse {
    // `to_vec`, not `to_string`: `Display` goes through `fmt::Write` a piece at a time,
    // which showed in the profile of the `userName eq` hot path.
    HttpResponse::build(status)
        .content_type(content_type())
        .body(serde_json::to_vec(body).unwrap_or_default())
}

/// A resource answer (`body`, projected) with the `ETag` and `Location` of `full`.
fn resource_response(status: StatusCode, full: &Value, body: &Value) -> HttpResponse {
    let meta = &full["meta"];
    with_version_and_location(
        scim_json(status, body),
        meta["version"].as_str(),
        meta["location"].as_str(),
    )
}

/// `res` with a resource's `meta.version` as its `ETag` and `meta.location` as its
/// `Location` (each left out when absent or not a valid header value). An owned
/// `String` becomes its header value as it is; a borrowed one is copied.
fn with_version_and_location<V>(
    mut res: HttpResponse,
    version: Option<V>,
    location: Option<V>,
) -> HttpResponse
where
    header::HeaderValue: TryFrom<V>,
{
    for (name, value) in [(header::ETAG, version), (header::LOCATION, location)] {
        if let Some(v) = value.and_then(|v| header::HeaderValue::try_from(v).ok()) {
            res.headers_mut().insert(name, v);
        }
    }
    res
}

fn version(seq: u64) -> String {
    // Not `format!`: written in place (every SCIM answer has one).
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(seq);
    let mut v = String::with_capacity(digits.len() + 4);
    v.push_str("W/\"");
    v.push_str(digits);
    v.push('"');
    v
}

/// The versions an `If-Match` / `If-None-Match` value lists (`None`: `*`, any), by
/// their opaque part: weak comparison (RFC 7232 §2.3.2), as this server's tags are weak
/// and SCIM clients send them back as they got them. A tag that is not one of ours
/// lists nothing.
fn listed_versions(value: &str) -> Option<Vec<u64>> {
    let value = value.trim();
    if value == "*" {
        return None;
    }
    Some(
        value
            .split(',')
            .filter_map(|tag| {
                let tag = tag.trim();
                let tag = tag.strip_prefix("W/").unwrap_or(tag);
                tag.strip_prefix('"')?.strip_suffix('"')?.parse().ok()
            })
            .collect(),
    )
}

/// `If-Match` against the resource's version `current`: no header or `*` is no
/// condition; a list matches when it names `current` (then the write is conditional on
/// it, checked again by the writer); anything else is 412.
fn if_match(req: &HttpRequest, current: u64) -> Result<Option<u64>> {
    let Some(v) = req.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    let v = v.to_str().unwrap_or("");
    match listed_versions(v) {
        None => Ok(None),
        Some(listed) if listed.contains(&current) => Ok(Some(current)),
        Some(_) => Err(ScimError::new(
            StatusCode::PRECONDITION_FAILED,
            None,
            format!("`If-Match: {v}` does not name the resource's version ({current})"),
        )),
    }
}

/// `If-None-Match` on a GET: 304 when it is `*` or lists the version `current`, with
/// the `ETag` (RFC 7232 §4.1).
fn not_modified(req: &HttpRequest, current: u64) -> Option<HttpResponse> {
    let v = req.headers().get(header::IF_NONE_MATCH)?.to_str().ok()?;
    let hit = listed_versions(v).is_none_or(|listed| listed.contains(&current));
    hit.then(|| {
        let mut res = HttpResponse::NotModified().finish();
        if let Ok(tag) = header::HeaderValue::try_from(version(current)) {
            res.headers_mut().insert(header::ETAG, tag);
        }
        res
    })
}

fn parse_body(bytes: &[u8], req: &HttpRequest) -> Result<Value> {
    check_content_type(req)?;
    parse_json(bytes)
}

/// A body must be SCIM's JSON (or plain JSON); none named is taken as JSON.
fn check_content_type(req: &HttpRequest) -> Result<()> {
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        // The two spellings clients send, compared whole first: the general check below
        // (UTF-8, split, trim, two case-blind compares) was 600 instructions a create.
        if matches!(
            ct.as_bytes(),
            b"application/scim+json" | b"application/json"
        ) {
            return Ok(());
        }
        let ct = ct.to_str().unwrap_or("");
        let essence = super::extract::media_type(ct);
        if !essence.eq_ignore_ascii_case("application/scim+json")
            && !essence.eq_ignore_ascii_case("application/json")
        {
            return Err(ScimError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                None,
                "send `Content-Type: application/scim+json` (or application/json)",
            ));
        }
    }
    Ok(())
}

fn parse_json(bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice::<UniqueKeys>(bytes)
        .map(|u| u.0)
        .map_err(|e| ScimError::bad("invalidSyntax", format!("malformed JSON: {e}")))
}

/// A JSON value none of whose objects has a key twice. RFC 8259 §4 leaves duplicates to
/// the parser and serde_json keeps the last: `{"userName":"a","userName":"b"}` created
/// `b`, and `{"op":"add","op":"remove"}` removed — while a proxy or a log reading the
/// first saw another request. The rest of the API refuses them too.
struct UniqueKeys(Value);

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(UniqueKeysVisitor).map(UniqueKeys)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(UniqueKeys(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let UniqueKeys(v) = map.next_value()?;
            if out.contains_key(&k) {
                return Err(serde::de::Error::custom(format!(
                    "key `{k}` given more than once"
                )));
            }
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

// ---- rendering ----------------------------------------------------------------------

pub fn user_id(u: &User) -> &str {
    u.scim_id.as_deref().unwrap_or(&u.username)
}

/// The user a SCIM id names.
fn user_by_id<'a>(s: &'a State, id: &str) -> Option<&'a User> {
    // A renamed user's id (its old name, lower-case as names are) ignoring case too, as
    // any other user's is (`GINA` found `gina` only while it had not been renamed).
    let renamed = s
        .directory
        .scim_ids
        .get(id)
        .or_else(|| s.directory.scim_ids.get(&id.to_lowercase()));
    if let Some(name) = renamed {
        return s.directory.users.get(name.as_str()).map(|u| &**u);
    }
    s.directory
        .users
        .get(id)
        .or_else(|| s.directory.users.get(id.to_lowercase().as_str()))
        .map(|u| &**u)
        .filter(|u| u.scim_id.is_none())
}

fn attributes_of(stored: &Option<String>) -> Map<String, Value> {
    stored
        .as_deref()
        .and_then(|a| serde_json::from_str::<Value>(a).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default()
}

/// A group's `displayName`, as a user's `groups[].display` shows it: read alone from the
/// stored document, since every rendering of every member asks for it.
fn group_display(g: &Group) -> String {
    let Some(doc) = g.scim.as_deref() else {
        return g.name.clone();
    };
    // Documents written before members stopped being stored (see `group_input`) hold
    // every member: skipping them is still a scan of the whole text, so a large one's
    // display name is remembered by (group, version), which names one content.
    const LARGE: usize = 4096;
    if doc.len() < LARGE {
        return display_name_of(doc).unwrap_or_else(|| g.name.clone());
    }
    thread_local! {
        static LARGE_DOCS: std::cell::RefCell<std::collections::HashMap<(String, u64), Option<String>>> =
            std::cell::RefCell::new(std::collections::HashMap::new());
    }
    LARGE_DOCS.with(|cache| {
        let mut cache = cache.borrow_mut();
        let key = (g.name.clone(), g.updated_seq);
        if let Some(d) = cache.get(&key) {
            return d.clone().unwrap_or_else(|| g.name.clone());
        }
        // Bounded: old large documents are few, and each goes at its group's next write.
        if cache.len() >= 1024 {
            cache.clear();
        }
        let d = display_name_of(doc);
        cache.insert(key, d.clone());
        d.unwrap_or_else(|| g.name.clone())
    })
}

/// `displayName` of a stored group document, skipping the rest without building it.
fn display_name_of(doc: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Display {
        #[serde(rename = "displayName")]
        display_name: Option<String>,
    }
    serde_json::from_str::<Display>(doc)
        .ok()
        .and_then(|d| d.display_name)
}

pub fn render_user(s: &State, u: &User, base: &str, keys: &PersonalKeys) -> Value {
    // Personal data is stored encrypted; after a purge it reads as erased.
    let attributes = u.scim.as_deref().map(|a| keys.decrypt(a));
    let email = u.email.as_deref().map(|e| keys.show(e));
    render_user_from(s, u, base, attributes, email)
}

/// [`render_user`] with the user's stored attributes and e-mail already decrypted
/// (`Some(None)`: erased).
fn render_user_from(
    s: &State,
    u: &User,
    base: &str,
    attributes: Option<Option<String>>,
    email: Option<String>,
) -> Value {
    let doc = match attributes {
        Some(Some(plain)) => attributes_of(&Some(plain)),
        Some(None) => erased_attributes(),
        None => Map::new(),
    };
    render_user_doc(s, u, base, doc, email)
}

/// What a user's stored attributes read as once their key is destroyed (a purge), also
/// in the past (`as_of`): which of them there were is sealed too, so the personal ones a
/// client names people by read `[erased]`, as the e-mail does; `active` is still the
/// domain's (its placeholder here only says it shows).
fn erased_attributes() -> Map<String, Value> {
    let erased = crate::personal::ERASED;
    let mut doc = Map::new();
    doc.insert("active".into(), json!(true));
    doc.insert("displayName".into(), json!(erased));
    doc.insert(
        "name".into(),
        json!({"familyName": erased, "formatted": erased, "givenName": erased}),
    );
    doc
}

/// [`render_user_from`] with the user's stored attributes already parsed (`doc`: empty
/// when there are none, or they are erased).
fn render_user_doc(
    s: &State,
    u: &User,
    base: &str,
    doc: Map<String, Value>,
    email: Option<String>,
) -> Value {
    let mut doc = own_attributes(u, doc, email);
    if !u.groups.is_empty() {
        let groups: Vec<Value> = u
            .groups
            .iter()
            .filter_map(|g| s.directory.groups.get(g.as_str()))
            .map(|g| json!({"value": g.name, "display": group_display(g), "$ref": format!("{base}/Groups/{}", super::segment(&g.name)), "type": "direct"}))
            .collect();
        doc.insert("groups".into(), json!(groups));
    }
    let mut schemas = vec![json!(scim::USER_SCHEMA)];
    if doc.contains_key(scim::ENTERPRISE_SCHEMA) {
        schemas.push(json!(scim::ENTERPRISE_SCHEMA));
    }
    doc.insert("schemas".into(), json!(schemas));
    let id = user_id(u);
    let created = scim::rfc3339(u.created_ms);
    let modified = if u.updated_ms == u.created_ms {
        created.clone()
    } else {
        scim::rfc3339(u.updated_ms)
    };
    doc.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "created": created,
            "lastModified": modified,
            "location": format!("{base}/Users/{}", super::segment(id)),
            "version": version(u.updated_seq),
        }),
    );
    Value::Object(doc)
}

/// The part of a user's rendering that is its own (its stored attributes, `id`,
/// `userName`, `active`, `emails`), without what comes from its groups, `schemas` and
/// `meta`: all that the filter index reads (`scim::index::values_of`).
fn user_own_attributes(
    u: &User,
    attributes: Option<Option<String>>,
    email: Option<String>,
) -> Map<String, Value> {
    let doc = match attributes {
        None => Map::new(),
        Some(Some(plain)) => attributes_of(&Some(plain)),
        Some(None) => erased_attributes(),
    };
    own_attributes(u, doc, email)
}

/// SCIM's `active`: the administrative status (RFC 7643 §4.1.1), which a lock by failed
/// sign-ins does not change. Renderings and filters both read it here.
fn scim_active(u: &User) -> bool {
    matches!(u.status, UserStatus::Enabled | UserStatus::Locked)
}

/// The `active` a rendering shows (`sent`: the stored attributes have one): the
/// domain's, where the client last set it; a user SCIM never described (or one that is
/// not active) always shows it. `active` is the administrative status (RFC 7643
/// §4.1.1): a user locked by failed sign-ins is active — shown `false`, a client's
/// read-modify-write sent it back, and `active: false` disables.
fn shown_active(u: &User, sent: bool) -> Option<bool> {
    let active = scim_active(u);
    (u.scim.is_none() || sent || !active).then_some(active)
}

/// [`user_own_attributes`] over the user's stored attributes, already parsed.
fn own_attributes(
    u: &User,
    mut doc: Map<String, Value>,
    email: Option<String>,
) -> Map<String, Value> {
    doc.insert("id".into(), json!(user_id(u)));
    doc.insert("userName".into(), json!(u.username));
    if let Some(active) = shown_active(u, doc.contains_key("active")) {
        doc.insert("active".into(), json!(active));
    }
    // The domain's e-mail is the primary one (the v2 API may have changed it, or
    // cleared it: then the entry it was read from goes, or the cleared address stayed
    // visible, and found by filters).
    if email.is_none() {
        if let Some(list) = doc.get_mut("emails").and_then(Value::as_array_mut) {
            let at = list
                .iter()
                .position(|e| e["primary"] == json!(true))
                .or((!list.is_empty()).then_some(0));
            // Only an entry the e-mail was read from (one with a value; an empty one
            // is no address and stays as sent, as the create's answer showed it).
            if let Some(at) =
                at.filter(|&at| list[at]["value"].as_str().is_some_and(|v| !v.is_empty()))
            {
                list.remove(at);
            }
            if list.is_empty() {
                doc.remove("emails");
            }
        }
    }
    if let Some(email) = email {
        let emails = doc.entry("emails").or_insert_with(|| json!([]));
        if let Some(list) = emails.as_array_mut() {
            if !list.iter().any(|e| e["value"] == json!(email)) {
                match list.iter_mut().find(|e| e["primary"] == json!(true)) {
                    Some(primary) => primary["value"] = json!(email),
                    None => list.insert(0, json!({"value": email, "primary": true})),
                }
            }
        }
    }
    doc
}

/// The values the filter index keeps of a user (see [`user_own_attributes`]).
fn index_values(u: &User, keys: &PersonalKeys) -> Vec<(u8, Box<str>)> {
    let attributes = u.scim.as_deref().map(|a| keys.decrypt(a));
    let email = u.email.as_deref().map(|e| keys.show(e));
    crate::scim::index::values_of(&Value::Object(user_own_attributes(u, attributes, email)))
}

/// [`render_user`], serialised, from the render cache when nothing it shows changed.
fn rendered_user(app: &AppState, s: &State, u: &User, base: &str) -> Arc<Rendered> {
    let stamp = Stamp {
        updated_seq: u.updated_seq,
        group_seqs: u
            .groups
            .iter()
            .map(|g| {
                s.directory
                    .groups
                    .get(g.as_str())
                    .map_or(0, |g| g.updated_seq)
            })
            .collect(),
        keys_epoch: app.personal.epoch(),
        base: base.to_string(),
    };
    if let Some(r) = app.scim_renders.get(&u.username, &stamp) {
        return r;
    }
    let full = render_user(s, u, base, &app.personal);
    let r = Arc::new(Rendered {
        json: serde_json::to_vec(&full).unwrap_or_default(),
        version: version(u.updated_seq),
        location: format!("{base}/Users/{}", super::segment(user_id(u))),
    });
    app.scim_renders.put(&u.username, stamp, r.clone());
    r
}

/// `userName eq "x"` with the whole resource asked for: the list answer written around
/// the cached rendering, byte for byte what [`list_response`] would serialise (its keys
/// in the same, sorted, order).
fn username_eq_answer(
    app: &AppState,
    s: &State,
    kinds: &[Kind],
    q: &Query,
    base: &str,
) -> Option<Vec<u8>> {
    if kinds != [Kind::User]
        || q.sort_by.is_some()
        || !q.attributes.is_empty()
        || !q.excluded.is_empty()
    {
        return None;
    }
    let name = q.filter.as_ref().and_then(Filter::as_username_eq)?;
    let user = s.directory.users.get(name.to_lowercase().as_str());
    let shown = user.filter(|_| q.start == 1 && q.count > 0);
    let mut out = Vec::with_capacity(1600);
    out.extend_from_slice(b"{\"Resources\":[");
    if let Some(u) = shown {
        out.extend_from_slice(&rendered_user(app, s, u, base).json);
    }
    out.extend_from_slice(
        format!(
            "],\"itemsPerPage\":{},\"schemas\":[\"{}\"],\"startIndex\":{},\"totalResults\":{}}}",
            usize::from(shown.is_some()),
            scim::LIST_SCHEMA,
            q.start,
            usize::from(user.is_some()),
        )
        .as_bytes(),
    );
    Some(out)
}

pub use crate::domain::MEMBER_DISPLAYS;

pub fn render_group(s: &State, g: &Group, base: &str, keys: &PersonalKeys) -> Value {
    render_group_as(s, g, base, keys, true)
}

/// A group's SCIM document, with its `members` only when `with_members`: rendering them
/// costs a line of JSON for each member, and a client that excludes them (IdPs look
/// groups up by name with `excludedAttributes=members`) should not wait for them.
fn render_group_as(
    s: &State,
    g: &Group,
    base: &str,
    keys: &PersonalKeys,
    with_members: bool,
) -> Value {
    let mut doc = attributes_of(&g.scim);
    // Membership is the directory's. Documents written by earlier versions also hold the
    // members as a client last sent them, with their `display`: not shown (they do not
    // say which user a display was said of: a deleted user's showed on a new user of the
    // same id) and never stored again (`group_input`).
    doc.remove("members");
    let displays = doc.remove(MEMBER_DISPLAYS);
    doc.insert("id".into(), json!(g.name));
    if !doc.contains_key("displayName") {
        doc.insert("displayName".into(), json!(g.name));
    }
    // The external id is the group's own, as the v2 API shows it; a document of an
    // earlier version may still hold the one SCIM last wrote, which it showed (until the
    // next write of either API takes it out).
    if !doc.contains_key("externalId") {
        if let Some(e) = g.external_id.as_deref().filter(|e| !e.is_empty()) {
            doc.insert("externalId".into(), json!(e));
        }
    }
    if with_members && !g.members.is_empty() {
        let members: Vec<Value> = g
            .members
            .iter()
            .filter_map(|m| s.directory.users.get(m.as_str()))
            .map(|u| member_entry(user_id(u), member_display(displays.as_ref(), u, keys), base))
            .collect();
        doc.insert("members".into(), json!(members));
    }
    doc.insert("schemas".into(), json!([scim::GROUP_SCHEMA]));
    doc.insert(
        "meta".into(),
        json!({
            "resourceType": "Group",
            "created": scim::rfc3339(g.created_ms),
            "lastModified": scim::rfc3339(g.updated_ms),
            "location": format!("{base}/Groups/{}", super::segment(&g.name)),
            "version": version(g.updated_seq),
        }),
    );
    Value::Object(doc)
}

/// What a client said of this very member (sealed; `[erased]` never shows: after a
/// purge it is the user name again), or its user name. `displays`: the group's
/// `MEMBER_DISPLAYS`.
fn member_display(displays: Option<&Value>, u: &User, keys: &PersonalKeys) -> String {
    displays
        .and_then(|d| d.get(itoa::Buffer::new().format(u.created_seq)))
        .and_then(Value::as_str)
        .filter(|v| crate::personal::key_id(v).is_some())
        .and_then(|v| keys.decrypt(v))
        .unwrap_or_else(|| u.username.clone())
}

/// A member's `display` sealed for the group's document (`MEMBER_DISPLAYS`), or `None`
/// when there is nothing to keep: the user name (shown anyway), or a user without a key.
/// `kept`: the group's sealed displays, whose value for this member is kept as it is when
/// it says the same (sealing again made every write of an unchanged group a new version).
fn sealed_display(
    u: &User,
    display: &str,
    kept: Option<&Value>,
    keys: &PersonalKeys,
) -> Result<Option<Value>> {
    if display == u.username {
        return Ok(None);
    }
    let Some(key) = super::user_key_id(u) else {
        return Ok(None);
    };
    if let Some(old) = kept.and_then(|d| d.get(itoa::Buffer::new().format(u.created_seq))) {
        if old.as_str().and_then(|v| keys.decrypt(v)).as_deref() == Some(display) {
            return Ok(Some(old.clone()));
        }
    }
    // A new one keeps a display name's rules (one line, no control characters, at
    // most 256 characters); an empty one says nothing.
    if display.is_empty() {
        return Ok(None);
    }
    domain::validate_display_name("members.display", display)
        .map_err(|e| ScimError::bad("invalidValue", e.to_string()))?;
    keys.encrypt(&key, display)
        .map(|sealed| Some(json!(sealed)))
        .map_err(|e| ScimError::new(StatusCode::INTERNAL_SERVER_ERROR, None, e.to_string()))
}

/// One element of a group's `members`.
fn member_entry(id: &str, display: String, base: &str) -> Value {
    json!({"value": id, "display": display, "$ref": format!("{base}/Users/{}", super::segment(id)), "type": "User"})
}

// ---- discovery -----------------------------------------------------------------------

async fn service_provider_config(req: HttpRequest) -> Result<HttpResponse> {
    admin(&req).await?;
    let base = base_url(&req);
    Ok(scim_json(
        StatusCode::OK,
        &json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "documentationUri": "https://github.com/gatehouse/gatehouse#scim",
            "patch": {"supported": true},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": true, "maxResults": MAX_RESULTS},
            "changePassword": {"supported": true},
            "sort": {"supported": true},
            "etag": {"supported": true},
            "authenticationSchemes": [
                {"type": "oauthbearertoken", "name": "OAuth Bearer Token",
                 "description": "An admin access token (POST /access/api/v1/tokens)", "primary": true},
                {"type": "httpbasic", "name": "HTTP Basic",
                 "description": "An admin's user name and password"}
            ],
            "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")}
        }),
    ))
}

fn resource_type_doc(kind: Kind, base: &str) -> Value {
    let mut doc = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": kind.name(),
        "name": kind.name(),
        "endpoint": format!("/{}", kind.endpoint()),
        "description": if kind == Kind::User { "User Account" } else { "Group" },
        "schema": kind.core(),
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{}", kind.name())},
    });
    if !kind.extensions().is_empty() {
        doc["schemaExtensions"] = json!(kind
            .extensions()
            .iter()
            .map(|e| json!({"schema": e, "required": false}))
            .collect::<Vec<_>>());
    }
    doc
}

fn list_response(resources: Vec<Value>, total: usize, start: usize) -> Value {
    json!({
        "schemas": [scim::LIST_SCHEMA],
        "totalResults": total,
        "itemsPerPage": resources.len(),
        "startIndex": start,
        "Resources": resources,
    })
}

async fn resource_types(req: HttpRequest) -> Result<HttpResponse> {
    admin(&req).await?;
    let base = base_url(&req);
    let all = vec![
        resource_type_doc(Kind::User, &base),
        resource_type_doc(Kind::Group, &base),
    ];
    Ok(scim_json(StatusCode::OK, &list_response(all, 2, 1)))
}

async fn resource_type(req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse> {
    admin(&req).await?;
    let base = base_url(&req);
    let kind = match path.as_str() {
        "User" => Kind::User,
        "Group" => Kind::Group,
        other => {
            return Err(ScimError::not_found(format!(
                "resource type `{other}` not found"
            )))
        }
    };
    Ok(scim_json(StatusCode::OK, &resource_type_doc(kind, &base)))
}

fn schema_doc(s: &Value, base: &str) -> Value {
    let mut s = s.clone();
    let id = s["id"].as_str().unwrap_or("").to_string();
    s["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:Schema"]);
    s["meta"] = json!({"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")});
    s
}

async fn list_schemas(req: HttpRequest) -> Result<HttpResponse> {
    admin(&req).await?;
    let base = base_url(&req);
    let all: Vec<Value> = scim::schemas()
        .iter()
        .map(|s| schema_doc(s, &base))
        .collect();
    let n = all.len();
    Ok(scim_json(StatusCode::OK, &list_response(all, n, 1)))
}

async fn get_schema(req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse> {
    admin(&req).await?;
    let base = base_url(&req);
    let s = scim::schema(&path)
        .ok_or_else(|| ScimError::not_found(format!("schema `{path}` not found")))?;
    Ok(scim_json(StatusCode::OK, &schema_doc(s, &base)))
}

// ---- queries -------------------------------------------------------------------------

/// What a list or `.search` asks.
struct Query {
    filter: Option<Filter>,
    start: usize,
    count: usize,
    sort_by: Option<filter::AttrPath>,
    descending: bool,
    attributes: Vec<String>,
    excluded: Vec<String>,
}

fn check_paths(kinds: &[Kind], f: &Filter) -> Result<()> {
    f.check_dates()
        .map_err(|e| ScimError::bad("invalidFilter", e))?;
    for p in f.paths() {
        let known = kinds.iter().any(|k| {
            scim::known_path(*k, p.urn.as_deref(), &p.attr, p.sub.as_deref())
                || scim::attribute(*k, p.urn.as_deref(), &p.attr).is_some_and(|a| {
                    // Inside `emails[...]`, paths name sub-attributes.
                    p.sub.is_none() && a["type"] != "complex"
                })
                || kinds.iter().any(|k| {
                    scim::schemas()
                        .iter()
                        .filter(|s| {
                            s["id"]
                                .as_str()
                                .is_some_and(|id| id == k.core() || k.extensions().contains(&id))
                        })
                        .flat_map(|s| s["attributes"].as_array().into_iter().flatten())
                        .filter_map(|a| a["subAttributes"].as_array())
                        .flatten()
                        .any(|sa| {
                            sa["name"]
                                .as_str()
                                .is_some_and(|n| n.eq_ignore_ascii_case(&p.attr))
                        })
                })
        });
        if !known {
            return Err(ScimError::bad(
                "invalidFilter",
                format!("unknown attribute `{p}` in the filter"),
            ));
        }
    }
    Ok(())
}

fn number(field: &str, v: &str) -> Result<i64> {
    v.parse::<i64>()
        .map_err(|_| ScimError::bad("invalidValue", format!("`{field}` must be an integer")))
}

fn make_query(
    kinds: &[Kind],
    filter: Option<&str>,
    start: Option<i64>,
    count: Option<i64>,
    sort_by: Option<&str>,
    sort_order: Option<&str>,
    attributes: Vec<String>,
    excluded: Vec<String>,
) -> Result<Query> {
    let filter = match filter.filter(|f| !f.trim().is_empty()) {
        Some(f) => {
            let parsed = filter::parse(f)
                .map_err(|e| ScimError::bad("invalidFilter", format!("invalid filter: {e}")))?;
            check_paths(kinds, &parsed)?;
            Some(parsed)
        }
        None => None,
    };
    let start = start.unwrap_or(1).max(1) as usize;
    let count = match count {
        None => DEFAULT_COUNT,
        Some(c) if c < 0 => 0,
        Some(c) if c as usize > MAX_RESULTS => {
            return Err(ScimError::bad(
                "tooMany",
                format!("`count` is at most {MAX_RESULTS}"),
            ))
        }
        Some(c) => c as usize,
    };
    let sort_by = match sort_by {
        Some(s) => Some(
            filter::parse_attr_path(s)
                .map_err(|e| ScimError::bad("invalidValue", format!("invalid `sortBy`: {e}")))?,
        ),
        None => None,
    };
    let descending = match sort_order.map(str::to_ascii_lowercase).as_deref() {
        None | Some("ascending") => false,
        Some("descending") => true,
        Some(o) => {
            return Err(ScimError::bad(
                "invalidValue",
                format!("invalid `sortOrder` `{o}` (ascending or descending)"),
            ))
        }
    };
    for a in attributes.iter().chain(excluded.iter()) {
        let ok = kinds.iter().any(|k| {
            scim::extension(*k, a).is_some()
                || filter::parse_attr_path(a).is_ok_and(|p| {
                    scim::known_path(*k, p.urn.as_deref(), &p.attr, p.sub.as_deref())
                })
        });
        if !ok {
            return Err(ScimError::bad(
                "invalidValue",
                format!("unknown attribute `{a}`"),
            ));
        }
    }
    Ok(Query {
        filter,
        start,
        count,
        sort_by,
        descending,
        attributes,
        excluded,
    })
}

fn list_param(req: &HttpRequest, name: &str) -> Result<Vec<String>> {
    Ok(super::query_param(req, name)
        .map_err(ScimError::from)?
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default())
}

fn query_from_request(kinds: &[Kind], req: &HttpRequest) -> Result<Query> {
    let q = |n: &str| super::query_param(req, n).map_err(ScimError::from);
    let start = q("startIndex")?
        .map(|v| number("startIndex", &v))
        .transpose()?;
    let count = q("count")?.map(|v| number("count", &v)).transpose()?;
    make_query(
        kinds,
        q("filter")?.as_deref(),
        start,
        count,
        q("sortBy")?.as_deref(),
        q("sortOrder")?.as_deref(),
        list_param(req, "attributes")?,
        list_param(req, "excludedAttributes")?,
    )
}

fn query_from_body(kinds: &[Kind], body: &Value) -> Result<Query> {
    let str_field = |n: &str| -> Result<Option<String>> {
        match filter::get_ci(body, n) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ScimError::bad(
                "invalidValue",
                format!("`{n}` must be a string"),
            )),
        }
    };
    let int_field = |n: &str| -> Result<Option<i64>> {
        match filter::get_ci(body, n) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| ScimError::bad("invalidValue", format!("`{n}` must be an integer"))),
        }
    };
    let list_field = |n: &str| -> Result<Vec<String>> {
        match filter::get_ci(body, n) {
            None | Some(Value::Null) => Ok(vec![]),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_str().map(str::to_string).ok_or_else(|| {
                        ScimError::bad("invalidValue", format!("`{n}` must be a list of strings"))
                    })
                })
                .collect(),
            Some(Value::String(s)) => Ok(s.split(',').map(|x| x.trim().to_string()).collect()),
            Some(_) => Err(ScimError::bad(
                "invalidValue",
                format!("`{n}` must be a list of strings"),
            )),
        }
    };
    make_query(
        kinds,
        str_field("filter")?.as_deref(),
        int_field("startIndex")?,
        int_field("count")?,
        str_field("sortBy")?.as_deref(),
        str_field("sortOrder")?.as_deref(),
        list_field("attributes")?,
        list_field("excludedAttributes")?,
    )
}

fn sort_key(v: &Value, path: &filter::AttrPath, core: &str) -> String {
    let base = match &path.urn {
        Some(u) if !u.eq_ignore_ascii_case(core) => filter::get_ci(v, u),
        _ => Some(v),
    };
    let mut x = base.and_then(|b| filter::get_ci(b, &path.attr));
    if let Some(Value::Array(items)) = x {
        x = items
            .iter()
            .find(|i| i["primary"] == json!(true))
            .or(items.first());
    }
    if let Some(sub) = &path.sub {
        x = x.and_then(|y| filter::get_ci(y, sub));
    } else if x.is_some_and(Value::is_object) {
        x = x.and_then(|y| filter::get_ci(y, "value"));
    }
    match x {
        Some(Value::String(s)) => s.to_lowercase(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// `f` on a user's rendering `r`, with its `active` as the domain has it: a user created
/// without `active` is enabled (it signs in), but shows none (`shown_active`: what a
/// client did not send, or removed, stays absent), and `active eq true` must find it.
fn user_matches(f: &Filter, u: &User, r: &mut Value) -> bool {
    let Some(doc) = r.as_object_mut() else {
        return false;
    };
    if doc.contains_key("active") {
        return f.matches(r, scim::USER_SCHEMA);
    }
    // The administrative status, as a rendering shows it (`shown_active`): a locked
    // user is active (`active eq false` found locked users to deprovision).
    doc.insert("active".into(), json!(scim_active(u)));
    let hit = f.matches(r, scim::USER_SCHEMA);
    if let Some(doc) = r.as_object_mut() {
        doc.remove("active");
    }
    hit
}

/// The users a filter selects, narrowed by the filter index (`scim::index`).
enum Narrowed<'s> {
    /// Exactly the matching users: `total` of them, `page` the ones to show.
    Exact { total: usize, page: Vec<&'s User> },
    /// A superset of them, in the directory's order, to check with the whole filter.
    Candidates(Vec<&'s User>),
}

/// Bring the filter index up to `s` (the live state, read-locked by the caller): the
/// users the writer noted since the last time are rendered again, or all of them when
/// the index is new, fell too far behind, or the personal-data keys changed (a purge).
fn sync_index(app: &AppState, s: &State, live: &mut crate::scim::index::LiveIndex) {
    use crate::writer::Changes;
    let epoch = app.personal.epoch();
    let changes = app.writer.user_changes().take();
    match changes {
        Changes::Names(names) if live.epoch == Some(epoch) => {
            for name in names {
                match s.directory.users.get(name.as_str()) {
                    Some(u) => live.index.put(&name, index_values(u, &app.personal)),
                    None => live.index.remove(&name),
                }
            }
        }
        _ => {
            live.index.clear();
            for (key, u) in &s.directory.users {
                live.index.put(key, index_values(u, &app.personal));
            }
            live.epoch = Some(epoch);
        }
    }
}

/// What the filter index says of a user query on the live state (`None`: it cannot help).
fn narrow<'s>(app: &AppState, s: &'s State, kinds: &[Kind], q: &Query) -> Option<Narrowed<'s>> {
    use crate::scim::index::FilterIndex;
    let f = q.filter.as_ref()?;
    if kinds != [Kind::User] || !FilterIndex::helps(f) {
        return None;
    }
    let mut live = app.scim_index.lock().unwrap_or_else(|p| p.into_inner());
    sync_index(app, s, &mut live);
    let sel = live.index.select(f)?;
    let user = |k: &str| s.directory.users.get(k).map(|u| &**u);
    if sel.exact && q.sort_by.is_none() {
        let page = sel
            .keys
            .iter()
            .skip(q.start - 1)
            .take(q.count)
            .filter_map(|k| user(k))
            .collect();
        return Some(Narrowed::Exact {
            total: sel.keys.len(),
            page,
        });
    }
    Some(Narrowed::Candidates(
        sel.keys.iter().filter_map(|k| user(k)).collect(),
    ))
}

/// A list answer of the users a look-up found, paged and projected as `q` asks.
fn user_page(found: Vec<Value>, q: &Query) -> Value {
    let total = found.len();
    let page: Vec<Value> = found
        .into_iter()
        .skip(q.start - 1)
        .take(q.count)
        .map(|mut r| {
            scim::project(Kind::User, &mut r, &q.attributes, &q.excluded);
            r
        })
        .collect();
    list_response(page, total, q.start)
}

/// Run a query over users and/or groups.
fn run_query(
    s: &State,
    kinds: &[Kind],
    q: &Query,
    base: &str,
    keys: &PersonalKeys,
    narrowed: Option<Narrowed<'_>>,
) -> Value {
    let candidates = match narrowed {
        Some(Narrowed::Exact { total, page }) => {
            let page: Vec<Value> = page
                .into_iter()
                .map(|u| {
                    let mut r = render_user(s, u, base, keys);
                    scim::project(Kind::User, &mut r, &q.attributes, &q.excluded);
                    r
                })
                .collect();
            return list_response(page, total, q.start);
        }
        Some(Narrowed::Candidates(users)) => Some(users),
        None => None,
    };
    // `userName eq "x"` is answered from the directory's index, not by a scan.
    if kinds == [Kind::User] && q.sort_by.is_none() {
        if let Some(name) = q.filter.as_ref().and_then(Filter::as_username_eq) {
            let found: Vec<Value> = s
                .directory
                .users
                .get(name.to_lowercase().as_str())
                .map(|u| render_user(s, u, base, keys))
                .into_iter()
                .collect();
            return user_page(found, q);
        }
    }
    // `id eq "x"` (how clients look a user up by its id): the user it names, not a scan.
    if kinds == [Kind::User] && q.sort_by.is_none() {
        if let Some((f, id)) = q
            .filter
            .as_ref()
            .and_then(|f| Some((f, f.as_user_eq("id")?)))
        {
            let mut found = Vec::new();
            if let Some(u) = user_by_id(s, id) {
                let mut r = render_user(s, u, base, keys);
                if user_matches(f, u, &mut r) {
                    found.push(r);
                }
            }
            return user_page(found, q);
        }
    }
    // Groups' members are rendered only when shown or looked at.
    let show_members = scim::keeps(Kind::Group, "members", &q.attributes, &q.excluded);
    let match_members = show_members
        || q.filter.as_ref().is_some_and(|f| {
            f.paths()
                .iter()
                .any(|p| !group_attribute_without_members(p))
        })
        || q.sort_by
            .as_ref()
            .is_some_and(|p| !group_attribute_without_members(p));
    // Without a filter or sort, only the page is rendered.
    if q.filter.is_none() && q.sort_by.is_none() {
        enum Item<'a> {
            U(&'a User),
            G(&'a Group),
        }
        let with_users = kinds.contains(&Kind::User);
        let with_groups = kinds.contains(&Kind::Group);
        let users = if with_users {
            s.directory.users.len()
        } else {
            0
        };
        let groups = if with_groups {
            s.directory.groups.len()
        } else {
            0
        };
        let items = s
            .directory
            .users
            .values()
            .filter(|_| with_users)
            .map(|u| Item::U(u))
            .chain(
                s.directory
                    .groups
                    .values()
                    .filter(|_| with_groups)
                    .map(|g| Item::G(g)),
            );
        let page: Vec<Value> = items
            .skip(q.start - 1)
            .take(q.count)
            .map(|item| {
                let (kind, mut r) = match item {
                    Item::U(u) => (Kind::User, render_user(s, u, base, keys)),
                    Item::G(g) => (Kind::Group, render_group_as(s, g, base, keys, show_members)),
                };
                scim::project(kind, &mut r, &q.attributes, &q.excluded);
                r
            })
            .collect();
        return list_response(page, users + groups, q.start);
    }
    let mut hits: Vec<(Kind, Value)> = Vec::new();
    if kinds.contains(&Kind::User) {
        let users: Box<dyn Iterator<Item = &User>> = match candidates {
            Some(c) => Box::new(c.into_iter()),
            None => Box::new(s.directory.users.values().map(|u| &**u)),
        };
        for u in users {
            let mut r = render_user(s, u, base, keys);
            if q.filter.as_ref().is_none_or(|f| user_matches(f, u, &mut r)) {
                hits.push((Kind::User, r));
            }
        }
    }
    if kinds.contains(&Kind::Group) {
        // `id eq "x"` (alone or in an `and`: Entra asks `id eq "g" and members.value eq
        // "u"` to learn whether u is a member) names one group: the others, members and
        // all, were rendered to be refused.
        let named = q.filter.as_ref().and_then(group_id_eq);
        let groups: Box<dyn Iterator<Item = &Group>> = match named {
            Some(id) => Box::new(s.directory.groups.get(id).map(|g| &**g).into_iter()),
            None => Box::new(s.directory.groups.values().map(|g| &**g)),
        };
        for g in groups {
            let r = render_group_as(s, g, base, keys, match_members);
            if q.filter
                .as_ref()
                .is_none_or(|f| f.matches(&r, scim::GROUP_SCHEMA))
            {
                hits.push((Kind::Group, r));
            }
        }
    }
    if let Some(p) = &q.sort_by {
        hits.sort_by_cached_key(|(k, r)| sort_key(r, p, k.core()));
        if q.descending {
            hits.reverse();
        }
    }
    let total = hits.len();
    let page: Vec<Value> = hits
        .into_iter()
        .skip(q.start - 1)
        .take(q.count)
        .map(|(k, mut r)| {
            scim::project(k, &mut r, &q.attributes, &q.excluded);
            r
        })
        .collect();
    list_response(page, total, q.start)
}

/// The group id a filter requires (`id eq "x"`, or an `and` with one), if it does.
fn group_id_eq(f: &Filter) -> Option<&str> {
    match f {
        Filter::Compare(p, filter::Op::Eq, Value::String(v))
            if p.attr.eq_ignore_ascii_case("id") && p.sub.is_none() && p.urn.is_none() =>
        {
            Some(v)
        }
        Filter::And(a, b) => group_id_eq(a).or_else(|| group_id_eq(b)),
        _ => None,
    }
}

/// Whether a filter or sort path names one of a group's attributes other than its
/// members (which a group rendered without them can be matched on).
fn group_attribute_without_members(p: &filter::AttrPath) -> bool {
    p.urn
        .as_deref()
        .is_none_or(|u| u.eq_ignore_ascii_case(scim::GROUP_SCHEMA))
        && ["id", "displayName", "externalId", "meta", "schemas"]
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&p.attr))
}

async fn list(req: HttpRequest, kinds: &[Kind]) -> Result<HttpResponse> {
    admin(&req).await?;
    let q = query_from_request(kinds, &req)?;
    let app = app_of(&req);
    let view = app.view(&req);
    answer_listing(&app, view, kinds, q, base_url(&req)).await
}

/// The answer to a list or search `q` over `s` (the live state or a past one: the index
/// follows the live state only). The state's lock is let go before a scan is awaited
/// (held, every write waited).
async fn answer_listing(
    app: &AppState,
    s: View<'_>,
    kinds: &[Kind],
    q: Query,
    base: String,
) -> Result<HttpResponse> {
    let state = {
        if let Some(body) = username_eq_answer(app, &s, kinds, &q, &base) {
            return Ok(HttpResponse::Ok().content_type(content_type()).body(body));
        }
        let narrowed = match &s {
            View::Live(_) => narrow(app, &s, kinds, &q),
            View::Past(_) => None,
        };
        match scan_copy(&s, kinds, &q, narrowed.is_none()) {
            Some(state) => state,
            None => {
                return Ok(scim_json(
                    StatusCode::OK,
                    &run_query(&s, kinds, &q, &base, &app.personal, narrowed),
                ))
            }
        }
    };
    drop(s);
    scan_off_worker(app, state, kinds, q, base).await
}

/// Resources above which a query that reads them all (a filter or sort the index cannot
/// narrow) runs on a blocking thread.
const SCAN_OFF_WORKER: usize = 2000;

/// A copy of the state (a clone shares its structure) when `q` reads every resource of a
/// large directory (`unnarrowed`: the index cannot narrow it; a filter or a sort): a scan
/// (`active eq false`, `sortBy`) rendered every user on an HTTP worker for half a second
/// and more, and the requests queued on it waited. `None`: answered where it is.
fn scan_copy(s: &State, kinds: &[Kind], q: &Query, unnarrowed: bool) -> Option<State> {
    let looked_up = q.sort_by.is_none()
        && q.filter.as_ref().is_some_and(|f| match kinds {
            [Kind::User] => f.as_username_eq().is_some() || f.as_user_eq("id").is_some(),
            [Kind::Group] => group_id_eq(f).is_some(),
            _ => false,
        });
    let scans = unnarrowed
        && !looked_up
        && (q.filter.is_some() || q.sort_by.is_some())
        && s.directory.users.len() + s.directory.groups.len() > SCAN_OFF_WORKER;
    scans.then(|| s.clone())
}

/// `run_query` over `state` on a blocking thread (see `scan_copy`); the caller has let go
/// of the state's lock (held across the wait, it kept every write waiting).
async fn scan_off_worker(
    app: &AppState,
    state: State,
    kinds: &[Kind],
    q: Query,
    base: String,
) -> Result<HttpResponse> {
    let (keys, kinds) = (app.personal.clone(), kinds.to_vec());
    let body = web::block(move || run_query(&state, &kinds, &q, &base, &keys, None))
        .await
        .map_err(|_| ScimError::new(StatusCode::SERVICE_UNAVAILABLE, None, "shutting down"))?;
    Ok(scim_json(StatusCode::OK, &body))
}

async fn search(req: HttpRequest, body: web::Bytes, kinds: &[Kind]) -> Result<HttpResponse> {
    admin(&req).await?;
    let body = parse_body(&body, &req)?;
    if let Some(schemas) = filter::get_ci(&body, "schemas") {
        if !schemas
            .as_array()
            .is_some_and(|a| a.iter().any(|s| s == scim::SEARCH_SCHEMA))
        {
            return Err(ScimError::bad(
                "invalidSyntax",
                format!("`schemas` must contain {}", scim::SEARCH_SCHEMA),
            ));
        }
    }
    let q = query_from_body(kinds, &body)?;
    let app = app_of(&req);
    let live = View::Live(app.read());
    answer_listing(&app, live, kinds, q, base_url(&req)).await
}

async fn list_users(req: HttpRequest) -> Result<HttpResponse> {
    list(req, &[Kind::User]).await
}

async fn list_groups(req: HttpRequest) -> Result<HttpResponse> {
    list(req, &[Kind::Group]).await
}

async fn search_users(req: HttpRequest, ScimBody(body): ScimBody) -> Result<HttpResponse> {
    search(req, body, &[Kind::User]).await
}

async fn search_groups(req: HttpRequest, ScimBody(body): ScimBody) -> Result<HttpResponse> {
    search(req, body, &[Kind::Group]).await
}

async fn search_all(req: HttpRequest, ScimBody(body): ScimBody) -> Result<HttpResponse> {
    search(req, body, &[Kind::User, Kind::Group]).await
}

// ---- users ---------------------------------------------------------------------------

/// The answer to a single-resource request: projected as `attributes` /
/// `excludedAttributes` ask, with the `ETag` and `Location` of the whole resource.
fn answer(req: &HttpRequest, kind: Kind, status: StatusCode, full: Value) -> Result<HttpResponse> {
    let attributes = list_param(req, "attributes")?;
    let excluded = list_param(req, "excludedAttributes")?;
    if attributes.is_empty() && excluded.is_empty() {
        return Ok(resource_response(status, &full, &full));
    }
    let mut r = full.clone();
    scim::project(kind, &mut r, &attributes, &excluded);
    Ok(resource_response(status, &full, &r))
}

/// `answer` for a group, its members rendered only when the projection shows them (a
/// group of 20,000 members excluded took as long as one shown).
fn answer_group(
    req: &HttpRequest,
    status: StatusCode,
    s: &State,
    g: &Group,
    keys: &PersonalKeys,
) -> Result<HttpResponse> {
    let attributes = list_param(req, "attributes")?;
    let excluded = list_param(req, "excludedAttributes")?;
    let with_members = scim::keeps(Kind::Group, "members", &attributes, &excluded);
    let full = render_group_as(s, g, &base_url(req), keys, with_members);
    if attributes.is_empty() && excluded.is_empty() {
        return Ok(resource_response(status, &full, &full));
    }
    let mut r = full.clone();
    scim::project(Kind::Group, &mut r, &attributes, &excluded);
    Ok(resource_response(status, &full, &r))
}

/// Check `attributes` / `excludedAttributes` before a write, so that a bad one cannot
/// answer 400 after the change was made.
fn check_projection(req: &HttpRequest) -> Result<()> {
    list_param(req, "attributes")?;
    list_param(req, "excludedAttributes")?;
    Ok(())
}

async fn get_user(req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse> {
    admin(&req).await?;
    let app = app_of(&req);
    let base = base_url(&req);
    let s = app.view(&req);
    let u = user_by_id(&s, &path)
        .ok_or_else(|| ScimError::not_found(format!("user `{path}` not found")))?;
    if let Some(res) = not_modified(&req, u.updated_seq) {
        return Ok(res);
    }
    let attributes = list_param(&req, "attributes")?;
    let excluded = list_param(&req, "excludedAttributes")?;
    if attributes.is_empty() && excluded.is_empty() {
        // The whole resource: the cached rendering as it is.
        let r = rendered_user(&app, &s, u, &base);
        let res = HttpResponse::Ok()
            .content_type(content_type())
            .body(r.json.clone());
        return Ok(with_version_and_location(
            res,
            Some(&r.version),
            Some(&r.location),
        ));
    }
    answer(
        &req,
        Kind::User,
        StatusCode::OK,
        render_user(&s, u, &base, &app.personal),
    )
}

/// What a SCIM user resource means to the domain.
struct UserInput<'a> {
    username: String,
    email: Option<String>,
    active: Option<bool>,
    password: Option<String>,
    /// What is stored of the resource (normalised, without `userName` and `password`),
    /// serialised: the document that is sealed into the event.
    attributes: String,
    /// The same, as the answer to a create renders it.
    shown: Shown<'a>,
}

/// What the answer to a create is rendered from (see [`scim::common_user`]).
enum Shown<'a> {
    /// The normalised document.
    Doc(Map<String, Value>),
    /// A body of the common shape, as read, and where `name` starts in the stored
    /// attributes ([`CommonUser::attributes`]).
    Common(CommonUser<'a>, usize),
}

fn user_input(body: &Value) -> Result<UserInput<'static>> {
    let mut attrs = scim::normalize(Kind::User, body)?;
    let username = attrs
        .remove("userName")
        .and_then(|v| v.as_str().map(str::to_string))
        .ok_or_else(|| ScimError::bad("invalidValue", "`userName` is required"))?;
    let active = attrs.get("active").and_then(|v| v.as_bool());
    let password = attrs
        .remove("password")
        .and_then(|v| v.as_str().map(str::to_string));
    let email = attrs
        .get("emails")
        .and_then(Value::as_array)
        .and_then(|list| scim::primary_or_first(list, |e| e["primary"] == json!(true)))
        .and_then(|e| e["value"].as_str())
        .map(str::to_string);
    let (username, email) = checked_user(&username, email)?;
    // The other addresses too, each an address (one that is not blocked every later
    // change of the primary until the client took it out).
    if let Some(list) = attrs.get("emails").and_then(Value::as_array) {
        for e in list {
            // The primary was checked with the user name.
            if let Some(v) = e["value"]
                .as_str()
                .filter(|v| !v.is_empty() && *v != email.as_deref().unwrap_or_default())
            {
                checked_email(v)?;
            }
        }
    }
    Ok(UserInput {
        username,
        email,
        active,
        password,
        // `to_string`, not `Value`'s `Display` (a piece at a time through `fmt::Write`).
        attributes: serde_json::to_string(&attrs).unwrap_or_default(),
        shown: Shown::Doc(attrs),
    })
}

/// [`user_input`] of a body of the common shape, without a `Value` tree.
fn common_user_input(body: CommonUser<'_>) -> Result<UserInput<'_>> {
    let email = body.email().map(str::to_string);
    let (username, email) = checked_user(&body.user_name, email)?;
    // Every address, as the generic path checks them (the primary was checked with the
    // user name: a second look at it was 0.7 % of a create's instructions).
    for e in body.emails.iter().flatten() {
        let checked = email.as_deref().unwrap_or_default();
        if let Some(v) = e
            .value
            .as_deref()
            .filter(|v| !v.is_empty() && *v != checked)
        {
            checked_email(v)?;
        }
    }
    let (attributes, name_at) = body.attributes();
    Ok(UserInput {
        username,
        email,
        active: body.active,
        password: None,
        attributes,
        shown: Shown::Common(body, name_at),
    })
}

/// The user name as the domain keeps it, and the e-mail, checked. An empty address is
/// none, as the v2 API takes it (it was kept as `""`: an address the v2 API showed, and
/// that filters found).
fn checked_user(username: &str, email: Option<String>) -> Result<(String, Option<String>)> {
    let username = domain::normalize_username("userName", username)
        .map_err(|e| ScimError::bad("invalidValue", e.to_string()))?;
    let email = email.filter(|e| !e.is_empty());
    if let Some(e) = &email {
        checked_email(e)?;
    }
    Ok((username, email))
}

/// An address of `emails`, named by SCIM's path of the attribute it came from.
fn checked_email(e: &str) -> Result<()> {
    domain::validate_email(e).map_err(|e| match e {
        domain::DomainError::Invalid { message, .. } => {
            ScimError::bad("invalidValue", format!("invalid `emails.value`: {message}"))
        }
        other => ScimError::bad("invalidValue", other.to_string()),
    })
}

/// Under the password policy in force (`username`: the user whose password it replaces).
async fn hash(app: &AppState, username: Option<&str>, password: String) -> Result<String> {
    // Boxed, as in `admin`: few SCIM writes carry a password.
    Box::pin(crate::http::settings::new_password_hash(
        app, username, password,
    ))
    .await
    .map_err(|e| match e {
        ApiError::BadRequest(m) => ScimError::bad("invalidValue", m),
        _ => ScimError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "the server is shutting down",
        ),
    })
}

async fn create_user(req: HttpRequest, ScimBody(body): ScimBody) -> Result<HttpResponse> {
    let caller = admin(&req).await?;
    let projected = !list_param(&req, "attributes")?.is_empty()
        || !list_param(&req, "excludedAttributes")?.is_empty();
    check_content_type(&req)?;
    // The common shape read straight into its fields; anything else as a `Value` (a
    // second parse, for bodies of another shape: the typed one stops at its first
    // unknown key).
    let input = match CommonUser::parse(&body).filter(|_| !projected) {
        Some(common) => common_user_input(common)?,
        None => user_input(&parse_json(&body)?)?,
    };
    // Personal data enters the log encrypted with the user's own key.
    let app = app_of(&req);
    let password_hash = match input.password {
        Some(p) => Some(hash(&app, None, p).await?),
        None => None,
    };
    let key = app.new_personal_key().await?;
    let (sealed_email, sealed_attributes) = match input.email.as_deref() {
        Some(e) => {
            let [email, attributes] = app.seal_fresh_all(&key, [e, &input.attributes])?;
            (Some(email), attributes)
        }
        None => {
            let [attributes] = app.seal_fresh_all(&key, [&input.attributes])?;
            (None, attributes)
        }
    };
    // What the answer shows, without decrypting what was just encrypted (nor parsing
    // again the document that was just normalised).
    let (plain_email, shown) = (input.email.clone(), input.shown);
    let new = NewUser {
        username: input.username.clone(),
        email: sealed_email,
        internal_password_disabled: password_hash.is_none(),
        password_hash,
        admin: false,
        profile_updatable: true,
        disable_ui_access: false,
        groups: vec![],
        disabled: false,
    };
    let app = app_of(&req);
    let rid: RequestId = request_id(&req);
    let committed = app
        .submit(
            create_command(new, input.active, sealed_attributes),
            &caller.username,
            &rid,
        )
        .await?;
    let base = base_url(&req);
    let s = app.state_after(&committed, |s| {
        s.directory.users.contains_key(input.username.as_str())
    })?;
    let u = s
        .directory
        .users
        .get(input.username.as_str())
        .ok_or_else(|| ScimError::not_found("the user was deleted meanwhile"))?;
    // Unless another write changed the user meanwhile: every event that changes a user
    // moves its `updated_seq`, so the user is as this command left it when its last
    // event is the user's last change.
    let unchanged = u.updated_seq == committed.seq;
    let full = match shown {
        Shown::Common(body, name_at) if unchanged => {
            let stored = (input.attributes.as_str(), name_at);
            if let Some(res) = common_created(u, &base, &body, stored, plain_email.as_deref()) {
                return Ok(written(res, committed));
            }
            render_user(&s, u, &base, &app.personal)
        }
        Shown::Doc(doc) if unchanged => render_user_doc(&s, u, &base, doc, plain_email),
        _ => render_user(&s, u, &base, &app.personal),
    };
    Ok(written(
        answer(&req, Kind::User, StatusCode::CREATED, full)?,
        committed,
    ))
}

/// The command of a SCIM create: `new` (its e-mail sealed), inactive when the client
/// said `active: false`, with its `attributes` sealed.
fn create_command(new: NewUser, active: Option<bool>, attributes: String) -> Command {
    Command::ScimSaveUser {
        username: new.username.clone(),
        create: Some(new),
        changes: UserChanges {
            status: (active == Some(false)).then_some(UserStatus::Disabled),
            ..Default::default()
        },
        attributes,
        rename_to: None,
        if_match: None,
    }
}

/// The 201 to a create of the common shape, rendered from the body as read: what
/// [`render_user_doc`] renders, when nothing it adds needs the generic path (no
/// groups, never modified, the domain's e-mail among the e-mails as sent).
fn common_created(
    u: &User,
    base: &str,
    body: &CommonUser<'_>,
    stored: (&str, usize),
    email: Option<&str>,
) -> Option<HttpResponse> {
    let (bytes, version, location) = common_created_body(u, base, body, stored, email)?;
    let res = HttpResponse::build(StatusCode::CREATED)
        .content_type(content_type())
        .body(bytes);
    // Owned: the strings become the header values without a copy.
    Some(with_version_and_location(
        res,
        Some(version),
        Some(location),
    ))
}

/// [`common_created`]'s body, `ETag` and `Location`; `stored`: the attributes and where
/// `name` starts in them, as [`CommonUser::attributes`] gave them.
fn common_created_body(
    u: &User,
    base: &str,
    body: &CommonUser<'_>,
    stored: (&str, usize),
    email: Option<&str>,
) -> Option<(Vec<u8>, String, String)> {
    let listed = |e: &str| {
        body.emails
            .iter()
            .flatten()
            .any(|x| x.value.as_deref() == Some(e))
    };
    if !u.groups.is_empty() || u.updated_ms != u.created_ms || email.is_some_and(|e| !listed(e)) {
        return None;
    }
    let id = user_id(u);
    let version = version(u.updated_seq);
    let location = [base, "/Users/", &super::segment(id)].concat();
    let created = scim::rfc3339(u.created_ms);
    let bytes = scim::common_user::answer(
        body,
        stored,
        &scim::common_user::Created {
            id,
            user_name: &u.username,
            active: shown_active(u, body.active.is_some()),
            created: &created,
            location: &location,
            version: &version,
        },
    )?;
    Some((bytes, version, location))
}

/// Store `doc` (a whole user as the client wants it) over the user named `username`.
/// `states_active`: the request itself says `active` (a PATCH's document carries the
/// rendered one, `false` for a locked user, which is no statement).
async fn replace_user(
    req: &HttpRequest,
    caller: &crate::auth::Principal,
    username: &str,
    doc: &Value,
    if_match: Option<u64>,
    states_active: bool,
) -> Result<HttpResponse> {
    let mut input = user_input(doc)?;
    // Not said: no statement. Said away (a PATCH `remove`, `null`): the default, active.
    input.active = match (states_active, input.active) {
        (false, _) => None,
        (true, None) => Some(true),
        (true, said) => said,
    };
    let app = app_of(req);
    let (had_password_disabled, current_status, stored_email, stored_attributes) = {
        let s = app.read();
        let u = s
            .directory
            .users
            .get(username)
            .ok_or_else(|| ScimError::not_found(format!("user `{username}` not found")))?;
        (
            u.internal_password_disabled,
            u.status,
            u.email.clone(),
            u.scim.clone(),
        )
    };
    let key = app.personal_key(username).await?;
    // What did not change keeps its stored ciphertext: re-encrypting it (a new nonce)
    // would write an event, and a new version, for nothing.
    let current_email = stored_email
        .as_deref()
        .and_then(|e| app.personal.decrypt(e));
    let email = match &input.email {
        Some(e) if current_email.as_deref() == Some(e.as_str()) => None,
        Some(e) => Some(app.seal(&key, e)?),
        None if stored_email.is_none() => None,
        None => Some(String::new()),
    };
    let mut changes = UserChanges {
        email,
        ..Default::default()
    };
    let sealed_attributes = match &stored_attributes {
        Some(stored)
            if app.personal.decrypt(stored).as_deref() == Some(input.attributes.as_str()) =>
        {
            stored.clone()
        }
        _ => app.seal(&key, &input.attributes)?,
    };
    // No `active` means no statement: the status stays (a PUT without it enabled a
    // user an admin had disabled).
    match input.active {
        // Only `unlock` unlocks (Okta's profile pushes all say `active: true`).
        Some(true) if !matches!(current_status, UserStatus::Enabled | UserStatus::Locked) => {
            changes.status = Some(UserStatus::Enabled)
        }
        // Deprovisioning a locked user disables it: left locked, an unlock later gave
        // the deprovisioned user its sign-in back (v2's `disabled` does the same).
        Some(false) if matches!(current_status, UserStatus::Enabled | UserStatus::Locked) => {
            changes.status = Some(UserStatus::Disabled)
        }
        _ => {}
    }
    if username == caller.username && changes.status == Some(UserStatus::Disabled) {
        return Err(ScimError::bad(
            "invalidValue",
            "you cannot disable yourself",
        ));
    }
    if let Some(p) = input.password {
        changes.password_hash = Some(hash(&app, Some(username), p).await?);
        if had_password_disabled {
            changes.internal_password_disabled = Some(false);
        }
    }
    let rid: RequestId = request_id(req);
    let committed = app
        .submit(
            Command::ScimSaveUser {
                username: username.to_string(),
                create: None,
                changes,
                attributes: sealed_attributes,
                rename_to: Some(input.username.clone()).filter(|n| n != username),
                if_match,
            },
            &caller.username,
            &rid,
        )
        .await?;
    let base = base_url(req);
    let s = app.state_after(&committed, |s| {
        s.directory.users.contains_key(input.username.as_str())
    })?;
    let u = s
        .directory
        .users
        .get(input.username.as_str())
        .ok_or_else(|| ScimError::not_found("the user was deleted meanwhile"))?;
    Ok(written(
        answer(
            req,
            Kind::User,
            StatusCode::OK,
            render_user(&s, u, &base, &app.personal),
        )?,
        committed,
    ))
}

fn current_user(req: &HttpRequest, id: &str) -> Result<(String, Value, u64)> {
    let app = app_of(req);
    let base = base_url(req);
    let s = app.read();
    let u =
        user_by_id(&s, id).ok_or_else(|| ScimError::not_found(format!("user `{id}` not found")))?;
    Ok((
        u.username.clone(),
        render_user(&s, u, &base, &app.personal),
        u.updated_seq,
    ))
}

async fn put_user(
    req: HttpRequest,
    path: web::Path<String>,
    ScimBody(body): ScimBody,
) -> Result<HttpResponse> {
    let caller = admin(&req).await?;
    check_projection(&req)?;
    let body = parse_body(&body, &req)?;
    if let Some(id) = filter::get_ci(&body, "id").and_then(Value::as_str) {
        // Compared with the id of the user the path finds (ignoring case, as the
        // look-up does): the right id sent to a path in another case was refused.
        let found = {
            let app = app_of(&req);
            let s = app.read();
            user_by_id(&s, &path).map(|u| user_id(u).to_string())
        };
        if found.as_deref().unwrap_or(path.as_str()) != id && id != path.as_str() {
            return Err(ScimError::bad("mutability", "`id` cannot be changed"));
        }
    }
    // Without `If-Match`, still only over the version read: the replacement is written
    // as a change of what was read (its status, e-mail, attributes), and a write that
    // came in between (an admin enabling the user) made `active: false` a no-op that
    // answered 200. Read again and replace again instead.
    write_user(&req, &caller, &path, |_| {
        Ok((body.clone(), body.get("active").is_some()))
    })
    .await
}

/// Write user `id` as `make` turns what it is now into: over the version read, and —
/// when the client gave no `If-Match` — read again and made again while another write
/// comes between (or a rename: see [`retry_after`]).
async fn write_user(
    req: &HttpRequest,
    caller: &crate::auth::Principal,
    id: &str,
    make: impl Fn(Value) -> Result<(Value, bool)>,
) -> Result<HttpResponse> {
    for _ in 0..16 {
        let (username, doc, seq) = current_user(req, id)?;
        let asked = if_match(req, seq)?;
        let (doc, states_active) = make(doc)?;
        match replace_user(req, caller, &username, &doc, Some(seq), states_active).await {
            Err(e) if asked.is_none() && retry_after(req, id, &username, &e) => continue,
            done => return done,
        }
    }
    Err(ScimError::new(
        StatusCode::CONFLICT,
        None,
        "the resource kept changing while this request was made; try again",
    ))
}

/// Whether an unconditional replace or patch of user `id`, tried as `username`, is to
/// be tried again: the user changed since it was read (412), or was renamed meanwhile
/// (404 for the old name while the id still names the user).
fn retry_after(req: &HttpRequest, id: &str, username: &str, e: &ScimError) -> bool {
    e.status == StatusCode::PRECONDITION_FAILED
        || (e.status == StatusCode::NOT_FOUND
            && current_user(req, id).is_ok_and(|(now, _, _)| now != username))
}

async fn patch_user(
    req: HttpRequest,
    path: web::Path<String>,
    ScimBody(body): ScimBody,
) -> Result<HttpResponse> {
    let caller = admin(&req).await?;
    check_projection(&req)?;
    let body = parse_body(&body, &req)?;
    // Without `If-Match` the client asked for no condition: a write that came between
    // this read and this write is read again and the patch applied to it (identity
    // providers add members to one group from many requests at once; 14 of 20 got 412).
    write_user(&req, &caller, &path, |mut doc| {
        let before = doc.get("active").cloned();
        patch::apply(Kind::User, &mut doc, &body)?;
        // The rendered `active` left as it was is no statement: an unrelated patch of a
        // locked user (rendered `active: false`) would disable it.
        let states_active = doc.get("active") != before.as_ref() || mentions_active(&body);
        Ok((doc, states_active))
    })
    .await
}

/// Whether a PATCH's operations name `active` (by path, or in a value without one).
fn mentions_active(body: &Value) -> bool {
    let field = |v: &Value, name: &str| {
        v.as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
            .map(|(_, v)| v.clone())
    };
    let Some(Value::Array(ops)) = field(body, "Operations") else {
        return false;
    };
    ops.iter().any(|op| match field(op, "path") {
        Some(Value::String(p)) => {
            let p = p.trim();
            p.eq_ignore_ascii_case("active") || p.to_ascii_lowercase().ends_with(":user:active")
        }
        _ => field(op, "value").is_some_and(|v| field(&v, "active").is_some()),
    })
}

async fn delete_user(req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse> {
    let caller = admin(&req).await?;
    let (username, _, seq) = current_user(&req, &path)?;
    if username == caller.username {
        return Err(ScimError::bad(
            "invalidValue",
            "you cannot delete the user you are signed in as",
        ));
    }
    let app = app_of(&req);
    let rid: RequestId = request_id(&req);
    let committed = app
        .submit(
            Command::ScimDelete {
                group: false,
                name: username.clone(),
                if_match: if_match(&req, seq)?,
            },
            &caller.username,
            &rid,
        )
        .await?;
    app.scim_renders.remove(&username);
    Ok(written(HttpResponse::NoContent().finish(), committed))
}

// ---- groups --------------------------------------------------------------------------

struct GroupInput {
    display_name: String,
    members: Vec<String>,
    /// Kept as the group's own `external_id` (one value for SCIM and the v2 API), not in
    /// its document.
    external_id: Option<String>,
    attributes: String,
}

/// `current`: the group replaced, whose sealed member displays are kept where they say
/// the same.
fn group_input(
    s: &State,
    body: &Value,
    keys: &PersonalKeys,
    current: Option<&Group>,
) -> Result<GroupInput> {
    let kept = current.map(|g| attributes_of(&g.scim));
    let kept = kept.as_ref().and_then(|d| d.get(MEMBER_DISPLAYS));
    let mut attrs = scim::normalize(Kind::Group, body)?;
    let display_name = attrs
        .get("displayName")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ScimError::bad("invalidValue", "`displayName` is required"))?;
    // And a name's rules against look-alikes (no invisible characters, one spelling): a
    // rename took zero-width and bidi characters a create refuses.
    domain::validate_display_name("displayName", &display_name)
        .and_then(|()| domain::validate_new_name("displayName", &display_name))
        .map_err(|e| ScimError::bad("invalidValue", e.to_string()))?;
    let external_id = match attrs.remove("externalId") {
        Some(Value::String(e)) => Some(e).filter(|e| !e.is_empty()),
        _ => None,
    };
    // Members are kept in the directory: storing them whole made the document as large
    // as the group, parsed again by every rendering of a member. Kept are only the
    // `display`s a client gave (other than the user name, which shows anyway), by member,
    // sealed with the member's key (see MEMBER_DISPLAYS).
    let mut members = Vec::new();
    let mut displays = Map::new();
    if let Some(Value::Array(list)) = attrs.remove("members") {
        let mut seen = std::collections::HashSet::with_capacity(list.len());
        for (i, m) in list.iter().enumerate() {
            let id = m["value"].as_str().ok_or_else(|| {
                ScimError::bad("invalidValue", format!("`members[{i}].value` is required"))
            })?;
            let u = user_by_id(s, id).ok_or_else(|| {
                ScimError::bad(
                    "invalidValue",
                    format!("`members[{i}]`: no user has the id `{id}` (groups cannot be members)"),
                )
            })?;
            if seen.insert(u.username.as_str()) {
                members.push(u.username.clone());
            }
            if let Some(d) = m.get("display").and_then(Value::as_str) {
                if let Some(sealed) = sealed_display(u, d, kept, keys)? {
                    displays.insert(u.created_seq.to_string(), sealed);
                }
            }
        }
    }
    if !displays.is_empty() {
        attrs.insert(MEMBER_DISPLAYS.into(), Value::Object(displays));
    }
    Ok(GroupInput {
        display_name,
        members,
        external_id,
        attributes: Value::Object(attrs).to_string(),
    })
}

async fn get_group(req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse> {
    admin(&req).await?;
    let app = app_of(&req);
    let s = app.view(&req);
    let g = s
        .directory
        .groups
        .get(path.as_str())
        .ok_or_else(|| ScimError::not_found(format!("group `{path}` not found")))?;
    if let Some(res) = not_modified(&req, g.updated_seq) {
        return Ok(res);
    }
    answer_group(&req, StatusCode::OK, &s, g, &app.personal)
}

async fn create_group(req: HttpRequest, ScimBody(body): ScimBody) -> Result<HttpResponse> {
    let caller = admin(&req).await?;
    check_projection(&req)?;
    let body = parse_body(&body, &req)?;
    let app = app_of(&req);
    let input = {
        let s = app.read();
        let input = group_input(&s, &body, &app.personal, None)?;
        // The name is the id of a group whose displayName was changed since: no filter
        // on displayName finds it, so the bare "already exists" named nothing a client
        // could look up.
        if let Some(g) = s.directory.groups.get(input.display_name.as_str()) {
            let shown = group_display(g);
            if shown != g.name {
                return Err(ScimError::new(
                    StatusCode::CONFLICT,
                    Some("uniqueness"),
                    format!(
                        "group `{}` already exists: it is the id of the group now shown as `{}` (a group keeps the id it was created with when its displayName changes)",
                        g.name, shown
                    ),
                ));
            }
        }
        input
    };
    // The group's name (its id) is the display name it was created with; a later
    // `displayName` is an attribute, the id stays.
    let name = input.display_name.clone();
    domain::validate_group_name("displayName", &name)
        .map_err(|e| ScimError::bad("invalidValue", e.to_string()))?;
    let rid: RequestId = request_id(&req);
    let committed = app
        .submit(
            Command::ScimSaveGroup {
                name: name.clone(),
                create: Some(NewGroup {
                    name: name.clone(),
                    description: None,
                    auto_join: false,
                    admin_privileges: false,
                    realm: None,
                    realm_attributes: None,
                    external_id: input.external_id,
                    members: input.members,
                }),
                members: None,
                external_id: None,
                attributes: input.attributes,
                if_match: None,
            },
            &caller.username,
            &rid,
        )
        .await?;
    let s = app.state_after(&committed, |s| {
        s.directory.groups.contains_key(name.as_str())
    })?;
    let g = s
        .directory
        .groups
        .get(name.as_str())
        .ok_or_else(|| ScimError::not_found("the group was deleted meanwhile"))?;
    Ok(written(
        answer_group(&req, StatusCode::CREATED, &s, g, &app.personal)?,
        committed,
    ))
}

async fn replace_group(
    req: &HttpRequest,
    caller: &crate::auth::Principal,
    name: &str,
    doc: &Value,
    if_match: Option<u64>,
) -> Result<HttpResponse> {
    let app = app_of(req);
    let input = {
        let s = app.read();
        let current = s.directory.groups.get(name).map(|g| &**g);
        group_input(&s, doc, &app.personal, current)?
    };
    let rid: RequestId = request_id(req);
    let committed = app
        .submit(
            Command::ScimSaveGroup {
                name: name.to_string(),
                create: None,
                members: Some(input.members),
                external_id: input.external_id,
                attributes: input.attributes,
                if_match,
            },
            &caller.username,
            &rid,
        )
        .await?;
    let s = app.state_after(&committed, |s| s.directory.groups.contains_key(name))?;
    let g = s
        .directory
        .groups
        .get(name)
        .ok_or_else(|| ScimError::not_found("the group was deleted meanwhile"))?;
    Ok(written(
        answer_group(req, StatusCode::OK, &s, g, &app.personal)?,
        committed,
    ))
}

fn current_group(req: &HttpRequest, id: &str) -> Result<(Value, u64)> {
    let app = app_of(req);
    let base = base_url(req);
    let s = app.read();
    let g = s
        .directory
        .groups
        .get(id)
        .ok_or_else(|| ScimError::not_found(format!("group `{id}` not found")))?;
    Ok((render_group(&s, g, &base, &app.personal), g.updated_seq))
}

async fn put_group(
    req: HttpRequest,
    path: web::Path<String>,
    ScimBody(body): ScimBody,
) -> Result<HttpResponse> {
    let caller = admin(&req).await?;
    check_projection(&req)?;
    let body = parse_body(&body, &req)?;
    let (_, seq) = current_group(&req, &path)?;
    if let Some(id) = filter::get_ci(&body, "id").and_then(Value::as_str) {
        if id != path.as_str() {
            return Err(ScimError::bad("mutability", "`id` cannot be changed"));
        }
    }
    let m = if_match(&req, seq)?;
    replace_group(&req, &caller, &path, &body, m).await
}

/// The ids a PATCH adds to or removes from a group's members, when that is all it does:
/// `add` or `remove` of `members` with a list of `{"value": id}` (a `display` the user
/// name, as IdPs send it, or none) and `remove` of `members[value eq "id"]`. `None` for
/// anything else (the whole document is patched then).
fn member_operations(body: &Value) -> Option<Vec<&str>> {
    let ops = body
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Operations"))?
        .1
        .as_array()?;
    let mut named = Vec::new();
    for op in ops {
        let kind = filter::get_ci(op, "op")?.as_str()?;
        let add = kind.eq_ignore_ascii_case("add");
        if !add && !kind.eq_ignore_ascii_case("remove") {
            return None;
        }
        let path = filter::get_ci(op, "path")?.as_str()?;
        if path.eq_ignore_ascii_case("members") {
            let value = filter::get_ci(op, "value")?;
            let listed = match value {
                Value::Array(a) => a.as_slice(),
                Value::Object(_) => std::slice::from_ref(value),
                _ => return None,
            };
            for m in listed {
                let m = m.as_object()?;
                if m.keys()
                    .any(|k| !["value", "display"].contains(&k.as_str()))
                {
                    return None;
                }
                named.push(m.get("value")?.as_str()?);
            }
        } else {
            let p = filter::parse_patch_path(path).ok()?;
            let Some(Filter::Compare(inner, filter::Op::Eq, Value::String(id))) = &p.filter else {
                return None;
            };
            let plain = |a: &filter::AttrPath| a.urn.is_none() && a.sub.is_none();
            if add
                || !plain(&p.attr)
                || !p.attr.attr.eq_ignore_ascii_case("members")
                || p.sub.is_some()
                || !plain(inner)
                || inner.attr != "value"
            {
                return None;
            }
            // Borrowed from the body: the same text the filter was parsed from.
            let at = path.find(id.as_str())?;
            named.push(&path[at..at + id.len()]);
        }
    }
    Some(named)
}

/// A PATCH that only adds and removes members (what IdPs send to keep a group in step,
/// often one member at a time, in parallel), written as that difference. The whole
/// group was rendered, patched, read back and compared for each one: a cost of the
/// group's size for every member added, and an IdP syncing a large group one member at
/// a time made that quadratic. Worked out by `patch::apply` itself (its rules and its
/// errors) on the group rendered with only the members the operations name. `None` when
/// the PATCH is not of that kind.
async fn patch_members(
    req: &HttpRequest,
    caller: &crate::auth::Principal,
    name: &str,
    body: &Value,
) -> Option<Result<HttpResponse>> {
    member_operations(body)?;
    let app = app_of(req);
    let rid: RequestId = request_id(req);
    let read = || {
        let s = app.read();
        let g = s.directory.groups.get(name)?;
        Some(
            member_delta(&s, g, body, &base_url(req), &app.personal)?
                .map(|delta| (delta, g.updated_seq)),
        )
    };
    let mut attempts = 0;
    let committed = loop {
        let (delta, seq) = match read()? {
            Ok(read) => read,
            Err(e) => return Some(Err(e)),
        };
        // Nothing here depends on the version read, but for `If-Match`: the additions,
        // removals and displays apply to the group as the writer has it (displays member
        // by member), so parallel PATCHes of other members never conflict.
        let asked = match if_match(req, seq) {
            Ok(asked) => asked,
            Err(e) => return Some(Err(e)),
        };
        let (add, remove) = (delta.add.clone(), delta.remove.clone());
        match app
            .submit(
                Command::ChangeGroupMembers {
                    group: name.to_string(),
                    add: delta.add,
                    remove: delta.remove,
                    if_match: asked,
                    displays: delta.displays,
                },
                &caller.username,
                &rid,
            )
            .await
        {
            Ok(c) => break c,
            // A member renamed between the read and the write (its SCIM id stays, its
            // name changed): the names read no longer exist, and an IdP's removal was
            // answered 400 and dropped. Read again while the ids name other users.
            Err(e @ (ApiError::BadRequest(_) | ApiError::NotFound(_))) => {
                attempts += 1;
                let moved = attempts < 8
                    && read().is_some_and(|again| {
                        again.is_ok_and(|(d, _)| d.add != add || d.remove != remove)
                    });
                if !moved {
                    return Some(Err(e.into()));
                }
            }
            Err(e) => return Some(Err(e.into())),
        }
    };
    let s = match app.state_after(&committed, |s| s.directory.groups.contains_key(name)) {
        Ok(s) => s,
        Err(e) => return Some(Err(e.into())),
    };
    let Some(g) = s.directory.groups.get(name) else {
        return Some(Err(ScimError::not_found("the group was deleted meanwhile")));
    };
    Some(answer_group(req, StatusCode::OK, &s, g, &app.personal).map(|r| written(r, committed)))
}

/// What a member-only PATCH changes: the user names it adds and removes, and the displays
/// kept for the members it names (by `created_seq`: sealed, or dropped), where they change.
#[derive(Debug)]
struct MemberDelta {
    add: Vec<String>,
    remove: Vec<String>,
    displays: Vec<(u64, Option<String>)>,
}

/// The difference a member-only PATCH makes to `g` (see `patch_members`), or `None` when
/// the PATCH is not of that kind.
fn member_delta(
    s: &State,
    g: &Group,
    body: &Value,
    base: &str,
    keys: &PersonalKeys,
) -> Option<Result<MemberDelta>> {
    let named = member_operations(body)?;
    let stored = attributes_of(&g.scim);
    // A document of an earlier version, with its members in it: the whole-document path
    // writes it anew.
    if stored.contains_key("members") {
        return None;
    }
    let displays = stored.get(MEMBER_DISPLAYS);
    let mut before: Vec<&User> = Vec::new();
    for id in &named {
        if let Some(u) = user_by_id(s, id).filter(|u| g.members.contains(&u.username)) {
            if !before.iter().any(|b| b.username == u.username) {
                before.push(u);
            }
        }
    }
    let mut doc = render_group_as(s, g, base, keys, false);
    if !before.is_empty() {
        let members = before
            .iter()
            .map(|u| member_entry(user_id(u), member_display(displays, u, keys), base))
            .collect();
        doc["members"] = Value::Array(members);
    }
    if let Err(e) = patch::apply(Kind::Group, &mut doc, body) {
        return Some(Err(e.into()));
    }
    let after: Vec<(&User, Option<&str>)> = match doc["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let id = m["value"].as_str().unwrap_or_default();
            user_by_id(s, id)
                .map(|u| (u, m.get("display").and_then(Value::as_str)))
                .ok_or_else(|| {
                    ScimError::bad(
                        "invalidValue",
                        format!("`members`: no user has the id `{id}` (groups cannot be members)"),
                    )
                })
        })
        .collect::<Result<Vec<_>>>()
    {
        Ok(after) => after,
        Err(e) => return Some(Err(e)),
    };
    let stays = |u: &User| after.iter().any(|(a, _)| a.username == u.username);
    let mut add: Vec<String> = Vec::new();
    for (u, _) in &after {
        if !before.iter().any(|b| b.username == u.username) && !add.contains(&u.username) {
            add.push(u.username.clone());
        }
    }
    let remove: Vec<String> = before
        .iter()
        .filter(|u| !stays(u))
        .map(|u| u.username.clone())
        .collect();
    // The displays kept for the members named: as the whole-document path keeps them,
    // from what the result says of each (a member kept shows its display as it was; the
    // last one said wins; the user name is none), and none for a member removed. Only
    // those that change, member by member.
    let mut wanted: Vec<(u64, Option<String>)> = Vec::new();
    for u in before.iter().copied().chain(after.iter().map(|(u, _)| *u)) {
        if !wanted.iter().any(|(seq, _)| *seq == u.created_seq) {
            wanted.push((u.created_seq, None));
        }
    }
    for (u, display) in &after {
        if let Some(d) = display {
            match sealed_display(u, d, displays, keys) {
                Ok(Some(Value::String(sealed))) => {
                    if let Some(w) = wanted.iter_mut().find(|(seq, _)| *seq == u.created_seq) {
                        w.1 = Some(sealed);
                    }
                }
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }
    let now = |seq: u64| {
        displays
            .and_then(|d| d.get(seq.to_string()))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    wanted.retain(|(seq, d)| *d != now(*seq));
    Some(Ok(MemberDelta {
        add,
        remove,
        displays: wanted,
    }))
}

/// The PATCH with every member id that names a user spelled as that user's id: `U1` for
/// `u1` was found by an `add` (as by a create) and by a `members[value eq "U1"]` filter,
/// but not by a `remove` with a list of values. `None` when nothing is respelled.
fn canonical_member_ids(s: &State, body: &Value) -> Option<Value> {
    let mut body = body.clone();
    let mut changed = false;
    let ops = body
        .as_object_mut()?
        .iter_mut()
        .find(|(k, _)| k.eq_ignore_ascii_case("Operations"))?
        .1
        .as_array_mut()?;
    let canonical = |id: &str| {
        user_by_id(s, id)
            .map(|u| user_id(u).to_string())
            .filter(|c| c != id)
    };
    for op in ops.iter_mut().filter_map(Value::as_object_mut) {
        let path_key = op.keys().find(|k| k.eq_ignore_ascii_case("path")).cloned();
        let Some(path_key) = path_key else { continue };
        let Some(path) = op[&path_key].as_str().map(str::to_string) else {
            continue;
        };
        if path.eq_ignore_ascii_case("members") {
            let value_key = op.keys().find(|k| k.eq_ignore_ascii_case("value")).cloned();
            let Some(value) = value_key.and_then(|k| op.get_mut(&k)) else {
                continue;
            };
            let listed = match value {
                Value::Array(a) => a.as_mut_slice(),
                other => std::slice::from_mut(other),
            };
            for m in listed.iter_mut() {
                if let Some(v) = m.get_mut("value") {
                    if let Some(c) = v.as_str().and_then(canonical) {
                        *v = Value::String(c);
                        changed = true;
                    }
                }
            }
        } else if let Ok(p) = filter::parse_patch_path(&path) {
            if let (true, None, Some(Filter::Compare(inner, filter::Op::Eq, Value::String(id)))) = (
                p.attr.attr.eq_ignore_ascii_case("members") && p.attr.urn.is_none(),
                &p.sub,
                &p.filter,
            ) {
                if inner.attr == "value" && inner.urn.is_none() && inner.sub.is_none() {
                    if let Some(c) = canonical(id) {
                        op[&path_key] = json!(format!("members[value eq {}]", json!(c)));
                        changed = true;
                    }
                }
            }
        }
    }
    changed.then_some(body)
}

/// Members above which a group's PATCH is applied on a blocking thread.
const LARGE_GROUP: usize = 1000;

async fn patch_group(
    req: HttpRequest,
    path: web::Path<String>,
    ScimBody(body): ScimBody,
) -> Result<HttpResponse> {
    let caller = admin(&req).await?;
    check_projection(&req)?;
    let body = parse_body(&body, &req)?;
    let body =
        std::sync::Arc::new(canonical_member_ids(&app_of(&req).read(), &body).unwrap_or(body));
    if let Some(done) = patch_members(&req, &caller, &path, &body).await {
        return done;
    }
    // As for users: without `If-Match`, a write that came between is read again.
    for _ in 0..16 {
        let (mut doc, seq) = current_group(&req, &path)?;
        let asked = if_match(&req, seq)?;
        let members = doc["members"].as_array().map_or(0, Vec::len);
        if members > LARGE_GROUP {
            // Each value-filtered operation reads every member: a thousand of them on a
            // group of 10,000 held this HTTP worker for seconds, and the requests queued
            // on it (a ping) timed out. Done off the workers.
            let body = body.clone();
            doc = web::block(move || patch::apply(Kind::Group, &mut doc, &body).map(|()| doc))
                .await
                .map_err(|_| {
                    ScimError::new(StatusCode::SERVICE_UNAVAILABLE, None, "shutting down")
                })??;
        } else {
            patch::apply(Kind::Group, &mut doc, &body)?;
        }
        match replace_group(&req, &caller, &path, &doc, Some(seq)).await {
            Err(e) if asked.is_none() && e.status == StatusCode::PRECONDITION_FAILED => continue,
            done => return done,
        }
    }
    Err(ScimError::new(
        StatusCode::CONFLICT,
        None,
        "the resource kept changing while this request was made; try again",
    ))
}

async fn delete_group(req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse> {
    let caller = admin(&req).await?;
    let (_, seq) = current_group(&req, &path)?;
    let app = app_of(&req);
    let rid: RequestId = request_id(&req);
    let committed = app
        .submit(
            Command::ScimDelete {
                group: true,
                name: path.into_inner(),
                if_match: if_match(&req, seq)?,
            },
            &caller.username,
            &rid,
        )
        .await?;
    Ok(written(HttpResponse::NoContent().finish(), committed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// A string of the kinds clients send, and some they should not.
    fn text(rng: &mut StdRng) -> String {
        const PIECES: &[&str] = &[
            "ann",
            "Bob",
            "x",
            "@",
            "example.com",
            ".",
            "-",
            "_",
            " ",
            "é",
            "名",
            "\"",
            "\\",
            "\n",
            "\u{1}",
            "/",
            "1",
        ];
        let n = rng.random_range(0..6);
        (0..n)
            .map(|_| PIECES[rng.random_range(0..PIECES.len())])
            .collect()
    }

    /// A value for a string attribute: mostly a string, sometimes null or a wrong type.
    fn string_value(rng: &mut StdRng) -> Value {
        match rng.random_range(0..20) {
            0 => Value::Null,
            1 => json!(7),
            2 => json!("y".repeat(65_537)),
            3 => json!(format!("{}@example.com", text(rng))),
            _ => json!(text(rng)),
        }
    }

    fn bool_value(rng: &mut StdRng) -> Value {
        match rng.random_range(0..12) {
            0 => Value::Null,
            1 => json!("True"),
            2 => json!(1),
            n => json!(n % 2 == 0),
        }
    }

    /// An object with a random choice of `names` (plus, rarely, a name not among them or
    /// one in another case).
    fn object(
        rng: &mut StdRng,
        names: &[&str],
        value: impl Fn(&mut StdRng, &str) -> Value,
    ) -> Value {
        let mut o = Map::new();
        for n in names {
            if rng.random_bool(0.5) {
                o.insert(n.to_string(), value(rng, n));
            }
        }
        match rng.random_range(0..25) {
            0 => {
                o.insert("nickname".into(), json!("x"));
            }
            1 => {
                o.insert(names[0].to_uppercase(), json!("x"));
            }
            _ => {}
        }
        Value::Object(o)
    }

    fn email(rng: &mut StdRng) -> Value {
        object(rng, &["value", "display", "type", "primary"], |rng, n| {
            if n == "primary" {
                bool_value(rng)
            } else {
                string_value(rng)
            }
        })
    }

    fn body(rng: &mut StdRng) -> Value {
        object(
            rng,
            &[
                "userName",
                "schemas",
                "name",
                "emails",
                "active",
                "displayName",
                "externalId",
            ],
            |rng, n| match n {
                "schemas" => json!([scim::USER_SCHEMA]),
                "active" => bool_value(rng),
                "name" => match rng.random_range(0..10) {
                    0 => Value::Null,
                    1 => json!([]),
                    _ => object(
                        rng,
                        &[
                            "givenName",
                            "familyName",
                            "formatted",
                            "middleName",
                            "honorificPrefix",
                            "honorificSuffix",
                        ],
                        |rng, _| string_value(rng),
                    ),
                },
                "emails" => match rng.random_range(0..10) {
                    0 => Value::Null,
                    1 => email(rng),
                    _ => Value::Array((0..rng.random_range(0..4)).map(|_| email(rng)).collect()),
                },
                // Mostly a name the domain takes.
                "userName" if rng.random_bool(0.8) => json!(format!("u{}", rng.random::<u32>())),
                _ => string_value(rng),
            },
        )
    }

    /// The user the domain creates from `input` (a new user of a SCIM create), as the
    /// writer would: decided, then applied at a random position and time.
    fn created_user(input: &UserInput, rng: &mut StdRng) -> User {
        let create = NewUser {
            username: input.username.clone(),
            email: input.email.as_ref().map(|_| "sealed".to_string()),
            internal_password_disabled: true,
            profile_updatable: true,
            ..NewUser::default()
        };
        let command = create_command(create, input.active, "sealed".into());
        let mut state = State::default();
        for event in domain::decide(&state, &command).expect("a valid create") {
            let (seq, time_ms) = (rng.random_range(1..1_000_000), rng.random_range(0..1 << 42));
            let (actor, origin, request_id) = ("admin".into(), String::new(), String::new());
            state.apply(&gatehouse_schemas::Envelope {
                seq,
                time_ms,
                actor,
                origin,
                request_id,
                event,
            });
        }
        let mut user = state
            .directory
            .users
            .get(input.username.as_str())
            .expect("created")
            .as_ref()
            .clone();
        // A user renamed since keeps its first name as its SCIM id.
        if rng.random_bool(0.2) {
            user.scim_id = Some("a-stable-id".into());
        }
        user
    }

    /// On random bodies: when the common shape takes a body, it stores, refuses and
    /// answers exactly as the generic path (`normalize`, `render_user_doc`) does.
    #[test]
    fn the_common_shape_stores_and_answers_what_the_generic_path_does() {
        let mut rng = StdRng::seed_from_u64(18);
        let base = "http://127.0.0.1:8080/access/api/v1/scim/v2";
        let state = State::default();
        let (mut taken, mut answered, mut refused, mut generic_only) = (0, 0, 0, 0);
        for _ in 0..8_000 {
            let bytes = serde_json::to_vec(&body(&mut rng)).unwrap();
            let value: Value = serde_json::from_slice(&bytes).unwrap();
            let generic = user_input(&value);
            let Some(common) = CommonUser::parse(&bytes) else {
                generic_only += 1;
                continue;
            };
            taken += 1;
            let fast = common_user_input(common);
            let (generic, fast) = match (generic, fast) {
                (Err(g), Err(f)) => {
                    assert_eq!((g.status, g.detail), (f.status, f.detail));
                    refused += 1;
                    continue;
                }
                (Ok(g), Ok(f)) => (g, f),
                (g, f) => panic!(
                    "{}: generic {:?}, common shape {:?}",
                    String::from_utf8_lossy(&bytes),
                    g.err().map(|e| e.detail),
                    f.err().map(|e| e.detail)
                ),
            };
            assert_eq!(
                (
                    &generic.username,
                    &generic.email,
                    generic.active,
                    &generic.password
                ),
                (&fast.username, &fast.email, fast.active, &fast.password)
            );
            assert_eq!(
                generic.attributes,
                fast.attributes,
                "{}",
                String::from_utf8_lossy(&bytes)
            );
            let u = created_user(&generic, &mut rng);
            let (Shown::Doc(doc), Shown::Common(common, name_at)) = (generic.shown, fast.shown)
            else {
                panic!("each path shows what it read");
            };
            let stored = (fast.attributes.as_str(), name_at);
            let Some((answer, version, location)) =
                common_created_body(&u, base, &common, stored, fast.email.as_deref())
            else {
                continue;
            };
            answered += 1;
            let full = render_user_doc(&state, &u, base, doc, generic.email);
            assert_eq!(
                String::from_utf8(answer).unwrap(),
                serde_json::to_string(&full).unwrap()
            );
            assert_eq!(full["meta"]["version"], json!(version));
            assert_eq!(full["meta"]["location"], json!(location));
        }
        // Each kind of case happened often enough to mean something.
        assert!(
            answered > 1_000 && refused > 200 && generic_only > 3_000,
            "{taken} {answered} {refused} {generic_only}"
        );
    }

    /// What the common shape leaves to the generic path, even where it would parse.
    #[test]
    fn the_common_shape_leaves_the_rest_to_the_generic_path() {
        for body in [
            // A duplicated key: the generic path takes the last.
            r#"{"userName":"a","userName":"b"}"#,
            // Two primaries: the generic path refuses them.
            r#"{"userName":"a","emails":[{"value":"a@x.io","primary":true},{"value":"b@x.io","primary":true}]}"#,
            // A value the generic path converts.
            r#"{"userName":"a","active":"True"}"#,
            // Another spelling, another attribute, a single value for a list.
            r#"{"username":"a"}"#,
            r#"{"userName":"a","nickName":"b"}"#,
            r#"{"userName":"a","emails":{"value":"a@x.io"}}"#,
            r#"{"userName":"a","password":"secret-Pa55"}"#,
        ] {
            assert!(CommonUser::parse(body.as_bytes()).is_none(), "{body}");
        }
        let ok = CommonUser::parse(br#"{"userName":"a","name":{},"emails":[{}]}"#).unwrap();
        assert!(ok.name.is_none() && ok.emails.is_none());
    }

    /// A state from events, as the log would replay them.
    fn replayed(events: Vec<gatehouse_schemas::Event>) -> State {
        let mut state = State::default();
        for (i, event) in events.into_iter().enumerate() {
            state.apply(&gatehouse_schemas::Envelope {
                seq: i as u64 + 1,
                time_ms: 1_000 + i as u64,
                actor: "admin".into(),
                origin: String::new(),
                request_id: String::new(),
                event,
            });
        }
        state
    }

    fn user_created(name: &str) -> gatehouse_schemas::Event {
        gatehouse_schemas::Event::UserCreated(gatehouse_schemas::UserCreated {
            username: name.into(),
            email: None,
            password_hash: None,
            admin: false,
            profile_updatable: false,
            internal_password_disabled: true,
            disable_ui_access: false,
            realm: "internal".into(),
            status: UserStatus::Enabled,
            groups: vec![],
            scim: None,
        })
    }

    /// `GroupScimSaved` events of earlier versions hold the members as the client sent
    /// them: they still replay, and render from the directory (the member's own name as
    /// its `display`), the group's display name still read from them, large or small.
    #[test]
    fn scim_group_documents_with_members_from_earlier_versions_render_from_the_directory() {
        use gatehouse_schemas::{Event, GroupCreated};
        let many: Vec<Value> = (0..400)
            .map(|i| json!({"value": format!("gone-{i}"), "display": format!("Someone {i}")}))
            .collect();
        for extra in [vec![], many] {
            let mut said = vec![json!({"value": "bob", "display": "Bobby"})];
            said.extend(extra);
            let old_doc = json!({"displayName": "Big Team", "externalId": "e1", "members": said});
            let state = replayed(vec![
                user_created("bob"),
                user_created("carol"),
                Event::GroupCreated(GroupCreated {
                    name: "big".into(),
                    description: None,
                    auto_join: false,
                    admin_privileges: false,
                    realm: "internal".into(),
                    realm_attributes: None,
                    external_id: None,
                    members: vec!["bob".into(), "carol".into()],
                }),
                Event::GroupScimSaved {
                    name: "big".into(),
                    attributes: old_doc.to_string(),
                },
            ]);
            let base = "http://h/access/api/v1/scim/v2";
            let dir = tempfile::tempdir().unwrap();
            let keys = PersonalKeys::open(dir.path()).unwrap();
            let g = render_group(&state, &state.directory.groups["big"], base, &keys);
            assert_eq!(g["displayName"], "Big Team");
            assert_eq!(g["externalId"], "e1");
            assert_eq!(
                g["members"],
                json!([
                    {"value": "bob", "display": "bob", "$ref": format!("{base}/Users/bob"), "type": "User"},
                    {"value": "carol", "display": "carol", "$ref": format!("{base}/Users/carol"), "type": "User"},
                ])
            );
            let bob = &state.directory.users["bob"];
            let u = render_user(&state, bob, base, &keys);
            assert_eq!(u["groups"][0]["display"], "Big Team");
            // Its next write stores no members (nor the external id: the group's own).
            let input = group_input(&state, &g, &keys, None).expect("a valid group");
            assert_eq!(input.members, ["bob", "carol"]);
            assert_eq!(input.external_id.as_deref(), Some("e1"));
            let stored: Value = serde_json::from_str(&input.attributes).unwrap();
            assert_eq!(stored, json!({"displayName": "Big Team"}));
        }
    }

    /// A PATCH of member additions and removals, worked out as a difference, leaves the
    /// group with exactly the members, and the displays kept for them, that the
    /// whole-document path leaves it with, and fails where that fails: random operations
    /// on random groups.
    #[test]
    fn member_patches_as_a_difference_agree_with_the_whole_document() {
        use gatehouse_schemas::{Event, GroupCreated};
        let base = "http://h/access/api/v1/scim/v2";
        let dir = tempfile::tempdir().unwrap();
        let keys = PersonalKeys::open(dir.path()).unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let ids = ["u0", "u1", "u2", "U3", "u4", "u5", "other", "nobody"];
        let displays = ["Name A", "Name B", "u1", "u2"];
        let (mut failures, mut changes, mut kept) = (0, 0, 0);
        for round in 0..600 {
            let mut events: Vec<Event> = (0..6)
                .map(|i| {
                    let mut e = user_created(&format!("u{i}"));
                    if let Event::UserCreated(u) = &mut e {
                        let key = keys.create().unwrap();
                        u.email = Some(keys.encrypt(&key, &format!("u{i}@example.com")).unwrap());
                    }
                    e
                })
                .collect();
            let members: Vec<String> = (0..6)
                .filter(|_| rng.random_bool(0.5))
                .map(|i| format!("u{i}"))
                .collect();
            for name in ["g", "other"] {
                events.push(Event::GroupCreated(GroupCreated {
                    name: name.into(),
                    description: None,
                    auto_join: false,
                    admin_privileges: false,
                    realm: "internal".into(),
                    realm_attributes: None,
                    external_id: None,
                    members: if name == "g" { members.clone() } else { vec![] },
                }));
            }
            let state = replayed(events.clone());
            if round % 3 == 0 {
                // Displays a client gave some members earlier.
                let said: Vec<Value> = members
                    .iter()
                    .filter(|_| rng.random_bool(0.5))
                    .map(|m| json!({"value": m, "display": format!("Said of {m}")}))
                    .collect();
                let doc = json!({"displayName": "G", "externalId": "e", "members": said});
                let input = group_input(&state, &doc, &keys, None).unwrap();
                events.push(Event::GroupScimSaved {
                    name: "g".into(),
                    attributes: input.attributes,
                });
            }
            let state = replayed(events);
            let g = &state.directory.groups["g"];
            let pick = |rng: &mut StdRng| {
                let id = ids[rng.random_range(0..ids.len())];
                match rng.random_range(0..3) {
                    0 => json!({"value": id}),
                    1 => json!({"value": id, "display": id.to_lowercase()}),
                    _ => {
                        json!({"value": id, "display": displays[rng.random_range(0..displays.len())]})
                    }
                }
            };
            let ops: Vec<Value> = (0..rng.random_range(1..4))
                .map(|_| {
                    let list: Vec<Value> = (0..rng.random_range(0..4))
                        .map(|_| pick(&mut rng))
                        .collect();
                    let id = ids[rng.random_range(0..ids.len())];
                    match rng.random_range(0..4) {
                        0 => {
                            let op = ["add", "Add"][rng.random_range(0..2)];
                            json!({"op": op, "path": "members", "value": list})
                        }
                        1 => json!({"op": "Remove", "path": "members", "value": list}),
                        2 => json!({"op": "remove", "path": "members", "value": pick(&mut rng)}),
                        _ => json!({"op": "remove", "path": format!("members[value eq \"{id}\"]")}),
                    }
                })
                .collect();
            let body = json!({"schemas": [scim::PATCH_SCHEMA], "Operations": ops});
            let body = canonical_member_ids(&state, &body).unwrap_or(body);
            let fast = member_delta(&state, g, &body, base, &keys)
                .expect("a member-only PATCH is worked out as a difference");
            let mut doc = render_group(&state, g, base, &keys);
            let whole = patch::apply(Kind::Group, &mut doc, &body)
                .map_err(ScimError::from)
                .and_then(|()| group_input(&state, &doc, &keys, Some(g)));
            // What each member of the result shows as its display.
            let shown = |attributes: Option<&str>, members: &[String]| -> Vec<(String, String)> {
                let doc = attributes_of(&attributes.map(str::to_string));
                let d = doc.get(MEMBER_DISPLAYS);
                let mut v: Vec<(String, String)> = members
                    .iter()
                    .map(|m| {
                        let u = &state.directory.users[m.as_str()];
                        (m.clone(), member_display(d, u, &keys))
                    })
                    .collect();
                v.sort();
                v
            };
            match (fast, whole) {
                (Ok(delta), Ok(input)) => {
                    let mut now: Vec<String> = g
                        .members
                        .iter()
                        .map(|m| m.to_string())
                        .filter(|m| !delta.remove.contains(m))
                        .collect();
                    now.extend(
                        delta
                            .add
                            .iter()
                            .filter(|a| !g.members.contains(*a))
                            .cloned(),
                    );
                    now.sort();
                    let mut wanted = input.members.clone();
                    wanted.sort();
                    assert_eq!(now, wanted, "{body}");
                    let written = domain::with_member_displays(g.scim.as_deref(), &delta.displays);
                    let fast_doc = written.as_deref().or(g.scim.as_deref());
                    assert_eq!(
                        shown(fast_doc, &now),
                        shown(Some(&input.attributes), &wanted),
                        "{body}"
                    );
                    // Displays said again are kept as they were sealed (no new version).
                    if delta.displays.is_empty() && g.scim.as_deref() == Some(&input.attributes) {
                        kept += 1;
                    }
                    changes += usize::from(!delta.add.is_empty() || !delta.remove.is_empty());
                }
                (Err(a), Err(b)) => {
                    assert_eq!(a.status, b.status, "{body}");
                    failures += 1;
                }
                (a, b) => panic!(
                    "{body}: as a difference {a:?}, whole {:?}",
                    b.map(|i| i.members)
                ),
            }
        }
        assert!(
            failures > 20 && changes > 100 && kept > 20,
            "{failures} failures, {changes} changes, {kept} unchanged documents"
        );
    }
}

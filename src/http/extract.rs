//! Extractors: the JSON body (with field-naming errors and a size limit), the caller
//! (`Principal`), and the request id.

use super::error::ApiError;
use super::AppState;
use crate::auth::Principal;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::pin::Pin;

/// The request id: from the client's `X-Request-Id` when it is sane, else generated.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl FromRequest for RequestId {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Ok(request_id(req)))
    }
}

pub fn request_id(req: &HttpRequest) -> RequestId {
    req.extensions()
        .get::<RequestId>()
        .cloned()
        .unwrap_or_else(|| RequestId("-".into()))
}

/// The name of the authenticated caller (request extension), for the access log.
#[derive(Debug, Clone)]
pub struct PrincipalName(pub String);

/// Note the authenticated caller's name for the access log, if the access log is on
/// (`gatehouse::access` at `info`): otherwise nothing reads it, and noting it cost a
/// copy of the name and an allocation every authenticated request.
pub fn note_principal(req: &HttpRequest, username: &str) {
    if access_log_enabled() {
        req.extensions_mut()
            .insert(PrincipalName(username.to_string()));
    }
}

/// Whether the access log's lines are written (the filter may change at run time).
pub fn access_log_enabled() -> bool {
    tracing::enabled!(target: "gatehouse::access", tracing::Level::INFO)
}

/// A JSON request body of type `T`.
///
/// Unlike actix's `Json`, a bad body is answered in the API's error shape and the
/// message names the field (`invalid request body at `groups[1]`: ...`).
pub struct Body<T>(pub T);

/// The raw request body (at most `max-body-bytes`) and its content type.
struct RawBody {
    bytes: web::BytesMut,
    content_type: Option<String>,
}

fn read_body(
    req: &HttpRequest,
    payload: &mut Payload,
) -> Pin<Box<dyn Future<Output = Result<RawBody, ApiError>>>> {
    let (limit, timeout_ms) = req
        .app_data::<web::Data<AppState>>()
        .map(|s| (s.config.max_body_bytes, s.config.body_timeout_ms))
        .unwrap_or((1 << 20, 30_000));
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("").to_string());
    let declared_len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut payload = payload.take();
    Box::pin(async move {
        if declared_len.is_some_and(|n| n > limit) {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        // Read chunk by chunk so a body without Content-Length cannot exceed the limit,
        // and within `body-timeout-ms` so a slow client cannot hold a request open.
        let mut bytes = web::BytesMut::new();
        let read = async {
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    ApiError::BadRequest(format!("cannot read the request body: {e}"))
                })?;
                if bytes.len() + chunk.len() > limit {
                    return Err(ApiError::PayloadTooLarge(limit));
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(())
        };
        actix_web::rt::time::timeout(std::time::Duration::from_millis(timeout_ms), read)
            .await
            .map_err(|_| ApiError::RequestTimeout(timeout_ms))??;
        Ok(RawBody {
            bytes,
            content_type,
        })
    })
}

/// The raw body, at most `max-body-bytes` and within `body-timeout-ms`, as every other
/// body is read (for SCIM, which reads its own JSON and answers in its own error shape).
pub fn body_bytes(
    req: &HttpRequest,
    payload: &mut Payload,
) -> impl Future<Output = Result<web::Bytes, ApiError>> {
    let body = read_body(req, payload);
    async move { body.await.map(|b| b.bytes.freeze()) }
}

fn unsupported(ct: Option<&str>, wanted: &str) -> ApiError {
    match ct {
        Some(ct) => ApiError::UnsupportedMediaType(format!(
            "content type `{ct}` is not supported; send `Content-Type: {wanted}`"
        )),
        None => ApiError::UnsupportedMediaType(format!(
            "missing content type; send `Content-Type: {wanted}`"
        )),
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Body<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = OptionalBody::<T>::from_request(req, payload);
        Box::pin(async move {
            match body.await? {
                OptionalBody(Some(v)) => Ok(Body(v)),
                OptionalBody(None) => Err(ApiError::BadRequest(
                    "a JSON request body is required".into(),
                )),
            }
        })
    }
}

/// A JSON body that may also be absent altogether (the seed's group PATCH: "if the
/// request payload is empty, returns 200").
pub struct OptionalBody<T>(pub Option<T>);

impl<T: DeserializeOwned + 'static> FromRequest for OptionalBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(req, payload);
        let req = req.clone();
        gated(&req.clone(), async move {
            let RawBody {
                bytes,
                content_type,
            } = body.await?;
            if bytes.iter().all(|b| b.is_ascii_whitespace()) {
                return Ok(OptionalBody(None));
            }
            if !content_type.as_deref().is_some_and(is_json) {
                return Err(unsupported(content_type.as_deref(), "application/json"));
            }
            parse_json_noting(&req, &bytes).map(|v| OptionalBody(Some(v)))
        })
    }
}

/// A flat body sent either as `application/x-www-form-urlencoded` or as a JSON object
/// (the token endpoint takes both, seed 004). Form values arrive as strings; the typed
/// getters accept either spelling and name the field when a value is wrong.
pub struct FormOrJson(pub serde_json::Map<String, serde_json::Value>);

/// Authentication of this request has finished (either way). actix-web polls a handler's
/// extractors together and answers with the first error *any* of them returns, so a
/// body error would otherwise beat a 401/403 whose password check is still running; the
/// body extractors wait for this before they report an error.
///
/// A flag and the wakers of whoever waits, shared by the extractors of one request: they
/// all run on the request's own worker thread (a request is not `Send`), so no lock and
/// no atomic. It was a `tokio::sync::watch` channel: its eight-way notification list,
/// allocated and notified on every authenticated request, was 1–2 % of a group create's
/// CPU in a `perf` profile, for a wait that only an error ever makes.
#[derive(Clone)]
struct AuthGate(std::rc::Rc<GateState>);

#[derive(Default)]
struct GateState {
    done: std::cell::Cell<bool>,
    waiting: std::cell::RefCell<Vec<std::task::Waker>>,
}

impl AuthGate {
    /// Ready once authentication has finished.
    fn opened(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.0.done.get() {
                return std::task::Poll::Ready(());
            }
            let mut waiting = self.0.waiting.borrow_mut();
            if !waiting.iter().any(|w| w.will_wake(cx.waker())) {
                waiting.push(cx.waker().clone());
            }
            std::task::Poll::Pending
        })
    }
}

/// Opens the gate when dropped, i.e. when the authenticating future ends or is dropped.
struct AuthDone(std::rc::Rc<GateState>);

impl Drop for AuthDone {
    fn drop(&mut self) {
        self.0.done.set(true);
        let waiting = std::mem::take(&mut *self.0.waiting.borrow_mut());
        for waker in waiting {
            waker.wake();
        }
    }
}

/// Called synchronously by authenticating extractors, before later extractors run.
fn auth_started(req: &HttpRequest) -> AuthDone {
    let state = std::rc::Rc::new(GateState::default());
    req.extensions_mut().insert(AuthGate(state.clone()));
    AuthDone(state)
}

/// A body extractor's future whose error waits until authentication has finished.
fn gated<T: 'static>(
    req: &HttpRequest,
    fut: impl Future<Output = Result<T, ApiError>> + 'static,
) -> Pin<Box<dyn Future<Output = Result<T, ApiError>>>> {
    let gate = req.extensions().get::<AuthGate>().cloned();
    Box::pin(async move {
        let result = fut.await;
        if result.is_err() {
            if let Some(gate) = gate {
                gate.opened().await;
            }
        }
        result
    })
}

impl FromRequest for FormOrJson {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(req, payload);
        gated(req, async move {
            let RawBody {
                bytes,
                content_type,
            } = body.await?;
            let ct = content_type.as_deref().unwrap_or("");
            if bytes.iter().all(|b| b.is_ascii_whitespace()) {
                return Ok(FormOrJson(serde_json::Map::new()));
            }
            if is_json(ct) {
                return parse_json(&bytes).map(|UniqueKeys(map)| FormOrJson(map));
            }
            if media_type(ct).eq_ignore_ascii_case("application/x-www-form-urlencoded")
                || content_type.is_none()
            {
                // The pairs straight into the map (what serde_urlencoded reads with, without
                // its serde layer and a `Vec` of owned pairs first: 4.2k instructions of a
                // token issue's body). Undecodable bytes read as U+FFFD there: refused
                // here, as a JSON body's are (they were written to the log as U+FFFD).
                let mut map = serde_json::Map::new();
                // Decoded whole, the body is UTF-8 exactly when every name and value is
                // (the separators are ASCII); asked only when a U+FFFD shows, which a
                // correctly encoded U+FFFD (`%EF%BF%BD`) shows too.
                let not_utf8 = || {
                    percent_encoding::percent_decode(&bytes)
                        .decode_utf8()
                        .is_err()
                };
                for (k, v) in form_urlencoded::parse(&bytes) {
                    if (k.contains('\u{FFFD}') || v.contains('\u{FFFD}')) && not_utf8() {
                        return Err(ApiError::BadRequest(format!(
                            "invalid `{}`: not UTF-8 (form values are UTF-8, percent-encoded)",
                            k.escape_debug()
                        )));
                    }
                    match map.entry(k.into_owned()) {
                        serde_json::map::Entry::Occupied(o) => {
                            return Err(ApiError::BadRequest(format!(
                                "invalid `{}`: given more than once",
                                o.key()
                            )));
                        }
                        serde_json::map::Entry::Vacant(slot) => {
                            slot.insert(serde_json::Value::String(v.into_owned()));
                        }
                    }
                }
                return Ok(FormOrJson(map));
            }
            Err(unsupported(
                content_type.as_deref(),
                "application/x-www-form-urlencoded` or `application/json",
            ))
        })
    }
}

/// What a JSON value is, for an error that must not quote it (see [`without_value`]).
fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A JSON object whose keys are each given once: serde_json's own map keeps the last of
/// a key given twice (`{"username":"a","username":"b"}` read as `b`), where the form
/// branch above refuses it; the two readings of a body agree.
struct UniqueKeys(serde_json::Map<String, serde_json::Value>);

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = UniqueKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut access: A,
            ) -> Result<UniqueKeys, A::Error> {
                let mut map = serde_json::Map::new();
                while let Some(key) = access.next_key::<String>()? {
                    if map.contains_key(&key) {
                        return Err(serde::de::Error::custom(format_args!(
                            "invalid `{key}`: given more than once"
                        )));
                    }
                    let value = access.next_value()?;
                    map.insert(key, value);
                }
                Ok(UniqueKeys(map))
            }
        }
        d.deserialize_map(Keys)
    }
}

impl FormOrJson {
    /// Note the fields outside `known` as ignored (accepted, not acted on, named in the
    /// answer's `X-Gatehouse-Ignored-Fields`): JFrog accepts fields it does not know.
    pub fn only(&self, req: &HttpRequest, known: &[&str]) {
        note_ignored(
            req,
            self.0
                .keys()
                .filter(|k| !known.contains(&k.as_str()))
                .cloned(),
        );
    }

    pub fn string(&self, name: &str) -> Result<Option<String>, ApiError> {
        Ok(self.str(name)?.map(str::to_string))
    }

    /// [`string`](Self::string), borrowed from the body.
    pub fn str(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.0.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(ApiError::BadRequest(format!(
                "invalid `{name}`: expected a string, got {}",
                kind(other)
            ))),
        }
    }

    pub fn boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.0.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(serde_json::Value::Bool(b)) => Ok(Some(*b)),
            Some(serde_json::Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(serde_json::Value::String(s)) if s.eq_ignore_ascii_case("false") => {
                Ok(Some(false))
            }
            Some(other) => Err(ApiError::BadRequest(format!(
                "invalid `{name}`: expected true or false, got {}",
                kind(other)
            ))),
        }
    }

    pub fn unsigned(&self, name: &str) -> Result<Option<u64>, ApiError> {
        let bad = |v: &dyn std::fmt::Display| {
            ApiError::BadRequest(format!(
                "invalid `{name}`: expected a non-negative whole number, got {v}"
            ))
        };
        // Named by its kind, never by its value (README: a value in the wrong field may be
        // a secret pasted there, and answers and logs do not repeat it).
        match self.0.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            // A whole number written as a float (`5.0`, `1e3`) is that number.
            Some(serde_json::Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
                (Some(v), _) => Ok(Some(v)),
                (None, Some(f)) if f.is_sign_negative() => Err(bad(&"a negative number")),
                (None, Some(f)) if f.fract() != 0.0 => Err(bad(&"a fractional number")),
                (None, Some(f)) if f < 18_446_744_073_709_551_615.0 => Ok(Some(f as u64)),
                _ => Err(bad(&"a number too large")),
            },
            // An empty form value (`expires_in=`, a script's unset variable) is a value
            // not given, as `null` is.
            Some(serde_json::Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(serde_json::Value::String(s)) => {
                let s = s.trim();
                s.parse::<u64>().map(Some).map_err(|_| {
                    let digits = s.strip_prefix('+').unwrap_or(s);
                    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                        bad(&"a number too large")
                    } else {
                        bad(&"text that is not one")
                    }
                })
            }
            Some(other) => Err(bad(&kind(other))),
        }
    }
}

/// A `Content-Type`'s media type, without its parameters (`; charset=…`) and blanks;
/// compare it without case (`eq_ignore_ascii_case`): no lower-cased copy on the paths
/// every body takes.
pub(super) fn media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

fn is_json(content_type: &str) -> bool {
    let essence = media_type(content_type);
    let starts = |p: &str| {
        essence
            .get(..p.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(p))
    };
    let ends = |p: &str| {
        essence
            .len()
            .checked_sub(p.len())
            .and_then(|i| essence.get(i..))
            .is_some_and(|t| t.eq_ignore_ascii_case(p))
    };
    essence.eq_ignore_ascii_case("application/json") || (starts("application/") && ends("+json"))
}

/// The fields of a request's body that no wire type knows: accepted and ignored, as
/// JFrog does, and named in the answer (`X-Gatehouse-Ignored-Fields`, by
/// `request_middleware`) and the debug log, so that a typo does not go unnoticed.
#[derive(Clone, Default, Debug)]
pub struct IgnoredFields(pub Vec<String>);

/// Add `fields` to the request's [`IgnoredFields`].
pub fn note_ignored(req: &HttpRequest, fields: impl IntoIterator<Item = String>) {
    let mut fields = fields.into_iter().peekable();
    if fields.peek().is_none() {
        return;
    }
    let mut ext = req.extensions_mut();
    match ext.get_mut::<IgnoredFields>() {
        Some(known) => known.0.extend(fields),
        None => {
            ext.insert(IgnoredFields(fields.collect()));
        }
    }
}

/// Deserialize an already parsed JSON body (for handlers that must check who is asking
/// before they judge the body), naming the path of the first bad field; fields no wire
/// type knows are noted as ignored.
pub fn from_value<T: DeserializeOwned>(
    req: &HttpRequest,
    v: serde_json::Value,
) -> Result<T, ApiError> {
    if v.is_array() && expects_object::<T>() {
        return Err(ApiError::BadRequest(
            "invalid request body: expected a JSON object, got an array".into(),
        ));
    }
    let mut ignored = Vec::new();
    let mut note = |path: serde_ignored::Path| ignored.push(field_path(&path));
    let result = serde_path_to_error::deserialize(serde_ignored::Deserializer::new(v, &mut note));
    note_ignored(req, ignored);
    result.map_err(|err| {
        let path = err.path().to_string();
        let inner = without_value(&err.into_inner().to_string());
        if path == "." || path.is_empty() {
            ApiError::BadRequest(format!("invalid request body: {inner}"))
        } else {
            ApiError::BadRequest(format!("invalid request body at `{path}`: {inner}"))
        }
    })
}

/// serde's "invalid type" message without the value it quotes (`invalid type: string
/// "…", expected a sequence` → `invalid type: string, expected a sequence`): the type is
/// what is wrong, and the value may be a secret sent in the wrong place (a password as
/// `secrets`), which an error answer would echo to proxies' and clients' logs.
pub(crate) fn without_value(message: &str) -> String {
    let message = plain_expectation(message);
    let Some((what, rest)) = ["invalid type: ", "invalid value: "]
        .iter()
        .find_map(|p| message.strip_prefix(p).map(|rest| (p, rest)))
    else {
        return message;
    };
    let Some((got, expected)) = rest.rsplit_once(", expected ") else {
        return message;
    };
    match [
        "string",
        "integer",
        "floating point",
        "character",
        "byte array",
    ]
    .iter()
    .find(|kind| got.starts_with(*kind))
    {
        Some(kind) => format!("{what}{kind}, expected {expected}"),
        None => message,
    }
}

/// serde's "expected …" in words a client knows (the house style: no Rust type names
/// in messages): `struct CreateUser` is an object, `u64` a non-negative integer.
fn plain_expectation(message: &str) -> String {
    let Some((head, expected)) = message.rsplit_once("expected ") else {
        return message.to_string();
    };
    // serde_json adds where it was: ` at line 1 column 9`.
    let (expected, at) = match expected.find(" at line ") {
        Some(i) => expected.split_at(i),
        None => (expected, ""),
    };
    let plain = match expected {
        e if e.starts_with("struct ") || e == "a map" => "an object",
        e if e.starts_with("enum ") => "one of the documented values",
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a non-negative integer",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer",
        "f32" | "f64" => "a number",
        "a sequence" => "a list",
        _ => return message.to_string(),
    };
    format!("{head}expected {plain}{at}")
}

/// A field's path as a client wrote it: serde_ignored marks the value inside an
/// `Option` with a `?` segment (`admin_privileges.?.bogus`), which no body has.
fn field_path(path: &serde_ignored::Path) -> String {
    let text = path.to_string();
    if !text.contains('?') {
        return text;
    }
    text.split('.')
        .filter(|segment| *segment != "?")
        .collect::<Vec<_>>()
        .join(".")
}

/// Deserialize JSON, naming the path of the first bad field; fields no wire type knows
/// are noted as ignored.
pub fn parse_json_noting<T: DeserializeOwned>(
    req: &HttpRequest,
    bytes: &[u8],
) -> Result<T, ApiError> {
    let mut ignored = Vec::new();
    let result = parse_json_with(bytes, |path| ignored.push(path));
    note_ignored(req, ignored);
    result
}

/// Deserialize JSON, naming the path of the first bad field (unknown fields are dropped
/// silently: for bodies that are not a client's request).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    parse_json_with(bytes, |_| {})
}

fn parse_json_with<T: DeserializeOwned>(
    bytes: &[u8],
    mut on_ignored: impl FnMut(String),
) -> Result<T, ApiError> {
    // serde reads a struct from a JSON array too (`[]` as `{}`): a body that must be an
    // object is refused when it is an array, as its description says.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') && expects_object::<T>() {
        return Err(ApiError::BadRequest(
            "invalid request body: expected a JSON object, got an array".into(),
        ));
    }
    // Without tracking the path first: the path of the bad field is only wanted for an
    // error, and tracking it (every key and seed wrapped) was a third of parsing a
    // group's body. A body that fails is read again with it, for the message; the
    // fields noted as ignored are those of that second reading.
    let mut ignored = Vec::new();
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let fast = {
        let mut note = |path: serde_ignored::Path| ignored.push(field_path(&path));
        T::deserialize(serde_ignored::Deserializer::new(&mut *de, &mut note))
    };
    if let Ok(value) = fast {
        // One JSON value and nothing after it: `{"name":"a"}{"name":"b"}` is not a
        // body whose first half may be written.
        de.end()
            .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
        ignored.into_iter().for_each(&mut on_ignored);
        return Ok(value);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let mut note = |path: serde_ignored::Path| on_ignored(field_path(&path));
    let de = serde_ignored::Deserializer::new(de, &mut note);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::BadRequest(format!("malformed JSON: {inner}"));
        }
        let inner = without_value(&inner.to_string());
        if path == "." || path.is_empty() {
            ApiError::BadRequest(format!("invalid request body: {inner}"))
        } else {
            ApiError::BadRequest(format!("invalid request body at `{path}`: {inner}"))
        }
    })
}

/// An authenticated caller whose password is not expired.
pub struct Caller(pub Principal);

/// An authenticated caller who may have an expired password (only the change-password
/// endpoint accepts this).
pub struct CallerAllowExpired(pub Principal);

/// The user of a console session whose cookie and CSRF token checked out (request
/// extension, put there by `console::console_middleware`). It stands in for an
/// `Authorization` header only when the request has none.
#[derive(Debug, Clone)]
pub struct SessionCaller(pub Principal);

/// The `Authorization` header as text. `HeaderValue::to_str` checks a value byte by
/// byte, which for a bearer token (about 500 bytes) was a visible part of an authorize
/// decision; this is the same answer for what the HTTP parser lets through (visible
/// ASCII and tabs: no other control characters), checked a word at a time.
pub fn authorization(req: &HttpRequest) -> Option<&str> {
    let bytes = req.headers().get(header::AUTHORIZATION)?.as_bytes();
    if !bytes.is_ascii() || bytes.contains(&0x7f) {
        // Credentials that cannot be read are bad credentials (401), not none: taken as
        // absent, the request ran as `anonymous` where anonymous access is on.
        return Some("");
    }
    std::str::from_utf8(bytes).ok()
}

/// The console session's user of this request, if any (see [`SessionCaller`]).
pub fn session_caller(req: &HttpRequest) -> Option<Principal> {
    req.extensions().get::<SessionCaller>().map(|s| s.0.clone())
}

pub async fn authenticate(req: HttpRequest) -> Result<Principal, ApiError> {
    let app = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal("no application state".into()))?;
    let header = authorization(&req);
    let rid = request_id(&req);
    let ip = super::client_ip(&req, &app.config);
    let principal = match (header, session_caller(&req)) {
        (None, Some(p)) => p,
        (header, _) => {
            app.auth
                .authenticate(header, &app.state, &app.writer, &rid.0, ip)
                .await?
        }
    };
    note_principal(&req, &principal.username);
    // An access key is scoped to its entitlements: it may ask the authorize decision
    // (which authenticates on its own), nothing else.
    if principal.access_key {
        return Err(ApiError::Forbidden(format!(
            "`{}` is an access key: it is scoped to its entitlements and can only ask GET /access/api/v1/authorize",
            principal.username
        )));
    }
    Ok(principal)
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let done = auth_started(req);
        let req = req.clone();
        Box::pin(async move {
            let _done = done;
            Ok(Caller(authenticate_caller(req).await?))
        })
    }
}

/// What [`Caller`] checks: valid credentials, not an access key, password not expired.
pub async fn authenticate_caller(req: HttpRequest) -> Result<Principal, ApiError> {
    let p = authenticate(req).await?;
    if p.password_expired {
        return Err(ApiError::Forbidden(format!(
            "the password of `{}` has expired; change it with PUT /access/api/v2/users/{}/password",
            p.username, p.username
        )));
    }
    Ok(p)
}

impl FromRequest for CallerAllowExpired {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let done = auth_started(req);
        let req = req.clone();
        Box::pin(async move {
            let _done = done;
            Ok(CallerAllowExpired(authenticate(req).await?))
        })
    }
}

/// An authenticated admin. Put it before the body in a handler's arguments: extractors
/// run in order, so a non-admin gets 403 before its body is even read.
pub struct Admin(pub Principal);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let caller = Caller::from_request(req, payload);
        Box::pin(async move {
            let Caller(p) = caller.await?;
            if !p.admin {
                return Err(ApiError::Forbidden(
                    "this operation requires an admin".into(),
                ));
            }
            Ok(Admin(p))
        })
    }
}

/// The user named by the `{username}` path segment itself (even with an expired
/// password), or an admin. Checked before the body is read, like [`Admin`].
pub struct SelfOrAdmin(pub Principal);

impl FromRequest for SelfOrAdmin {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let target = req.match_info().get("username").map(|u| u.to_lowercase());
        let caller = CallerAllowExpired::from_request(req, payload);
        Box::pin(async move {
            let CallerAllowExpired(p) = caller.await?;
            let is_self = target.as_deref() == Some(p.username.as_str());
            // Acting as oneself needs the whole identity (see `Principal::whole_identity`).
            if is_self && !p.admin && !p.whole_identity() {
                return Err(ApiError::Forbidden(
                    "this token's scope does not allow acting as the user itself".into(),
                ));
            }
            if !is_self && !p.admin {
                return Err(ApiError::Forbidden(
                    "only an admin or the user itself can do this".into(),
                ));
            }
            if !is_self && p.password_expired {
                return Err(ApiError::Forbidden(
                    "your password has expired; change your own password first".into(),
                ));
            }
            Ok(SelfOrAdmin(p))
        })
    }
}

/// A caller who may have sent no credentials at all (`None`): the refresh of a token
/// pair authenticates with the pair itself (seed 003). Credentials that are sent are
/// checked like [`Caller`]'s, before the body is read.
pub struct MaybeCaller(pub Option<Principal>);

impl FromRequest for MaybeCaller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let done = auth_started(req);
        let req = req.clone();
        Box::pin(async move {
            let _done = done;
            if !req.headers().contains_key(header::AUTHORIZATION) && session_caller(&req).is_none()
            {
                return Ok(MaybeCaller(None));
            }
            Ok(MaybeCaller(Some(authenticate_caller(req).await?)))
        })
    }
}

/// Whether `T` is read from a JSON object (a struct or a map): asks `T`'s `Deserialize`
/// what it wants first, with a deserializer that only records the question.
fn expects_object<T: DeserializeOwned>() -> bool {
    use serde::de::{Deserializer, Error, Visitor};
    #[derive(Debug)]
    struct Asked;
    impl std::fmt::Display for Asked {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("probe")
        }
    }
    impl std::error::Error for Asked {}
    impl Error for Asked {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Asked
        }
    }
    struct Probe<'a>(&'a mut bool);
    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = Asked;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Asked> {
            Err(Asked)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            _: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Asked> {
            *self.0 = true;
            Err(Asked)
        }
        fn deserialize_map<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Asked> {
            *self.0 = true;
            Err(Asked)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct enum
            identifier ignored_any
        }
    }
    let mut object = false;
    let _ = T::deserialize(Probe(&mut object));
    object
}

#[cfg(test)]
mod tests {
    use super::is_json;

    /// A wrongly typed value is not quoted back; other messages stay as they are.
    #[test]
    fn type_errors_do_not_quote_the_value() {
        use super::without_value;
        assert_eq!(
            without_value("invalid type: string \"Pa55, expected word\", expected a sequence at line 1 column 9"),
            "invalid type: string, expected a list at line 1 column 9"
        );
        assert_eq!(
            without_value("invalid type: integer `12345678`, expected a string"),
            "invalid type: integer, expected a string"
        );
        // No Rust type names (house style).
        assert_eq!(
            without_value("invalid type: null, expected struct CreateUser at line 1 column 4"),
            "invalid type: null, expected an object at line 1 column 4"
        );
        assert_eq!(
            without_value("invalid value: integer `-1`, expected u64"),
            "invalid value: integer, expected a non-negative integer"
        );
        assert_eq!(
            without_value("invalid type: string \"10\", expected i64"),
            "invalid type: string, expected an integer"
        );
        assert_eq!(
            without_value("invalid value: string \"hunter2\", expected one of a, b"),
            "invalid value: string, expected one of a, b"
        );
        for kept in [
            "invalid type: map, expected a string",
            "unknown variant `x`, expected one of `a`, `b`",
            "missing field `name`",
        ] {
            assert_eq!(without_value(kept), kept);
        }
    }

    /// JSON media types in any case, with parameters and `+json` suffixes; nothing else
    /// (the comparison no longer lower-cases a copy).
    #[test]
    fn json_media_types_are_told_from_others() {
        for yes in [
            "application/json",
            "Application/JSON; charset=utf-8",
            " application/scim+json ",
            "APPLICATION/VND.API+JSON;x=y",
            "application/+json",
        ] {
            assert!(is_json(yes), "{yes}");
        }
        for no in [
            "",
            "text/json",
            "application/jsonx",
            "application/json+x",
            "application/x-www-form-urlencoded",
            "json",
            "application/é+json\u{301}",
            "+json",
        ] {
            assert!(!is_json(no), "{no}");
        }
    }
}

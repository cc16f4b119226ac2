//! Webhook subscriptions (seed 004 "WEBHOOKS", under `/event/api/v1`): list, create,
//! get, replace, delete, and `POST …/subscriptions/test`, which sends a sample event to
//! a definition's handlers and says how the receiver answered.
//!
//! Subscriptions are events (so they have a history and `as_of`). Secret values are
//! write-only: they are stored encrypted with the server's `webhooks` key (outside the
//! log) and answers show only that a secret is set, or the names of named secrets.
//! Delivery of committed events is `crate::webhooks`; its history, dead letters and
//! re-drive are served here too.

use super::error::ApiError;
use super::extract::{Admin, Body, RequestId};
use super::{resource, written, AppState};
use crate::authorize::valid_pattern;
use crate::domain::Command;
use actix_web::{web, HttpRequest, HttpResponse};
use gatehouse_schemas::{Subscription, SubscriptionHandler};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/event/api/v1/subscriptions")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(resource("/event/api/v1/subscriptions/test").route(web::post().to(test)))
    .service(
        resource("/event/api/v1/subscriptions/{key}")
            .route(web::get().to(get))
            .route(web::put().to(replace))
            .route(web::delete().to(delete)),
    )
    .service(
        resource("/event/api/v1/subscriptions/{key}/deliveries").route(web::get().to(deliveries)),
    )
    .service(resource("/event/api/v1/subscriptions/{key}/failed").route(web::get().to(failed)))
    .service(
        resource("/event/api/v1/subscriptions/{key}/failed/redrive").route(web::post().to(redrive)),
    );
}

use crate::webhooks::payload::{
    check_template, criteria_fields, never_fires, CriterionKind, DOMAINS, FOREIGN_DOMAINS,
};
use crate::webhooks::SECRETS_KEY;

#[derive(Deserialize)]
struct FilterIn {
    domain: String,
    event_types: Vec<String>,
    /// Kept as sent (see `check_criteria`).
    #[serde(default)]
    criteria: Option<Value>,
}

#[derive(Deserialize)]
struct HeaderIn {
    name: String,
    value: String,
}

#[derive(Deserialize)]
struct SecretIn {
    name: String,
    /// Absent on a replace: keep the value stored under this name.
    #[serde(default)]
    value: Option<String>,
}

#[derive(Deserialize)]
struct HandlerIn {
    handler_type: String,
    url: String,
    /// Absent on a replace: keep the stored one.
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    proxy: Option<String>,
    #[serde(default, deserialize_with = "crate::views::null_as_default")]
    custom_http_headers: Vec<HeaderIn>,
    #[serde(default, deserialize_with = "crate::views::null_as_default")]
    http_headers: Vec<HeaderIn>,
    #[serde(default)]
    payload: Option<String>,
    #[serde(default, deserialize_with = "crate::views::null_as_default")]
    secrets: Vec<SecretIn>,
}

#[derive(Deserialize)]
struct SubscriptionIn {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
    event_filter: FilterIn,
    handlers: Vec<HandlerIn>,
}

fn bad(msg: String) -> ApiError {
    ApiError::BadRequest(msg)
}

fn check_key(key: &str) -> Result<(), ApiError> {
    // It goes in a URL path, where `.` and `..` are no segment a client can send.
    if key == "." || key == ".." {
        return Err(bad("invalid `key`: must not be `.` or `..`".into()));
    }

    if key.is_empty()
        || key.len() > 64
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(bad(format!(
            "invalid `key`: `{}` (1 to 64 letters, digits, `-`, `_`, `.`)",
            key.escape_debug()
        )));
    }
    Ok(())
}

/// Only `http` and `https` (in any case: schemes are case-insensitive, RFC 3986 §3.1),
/// with a host, no whitespace.
pub(crate) fn check_url(field: &str, url: &str) -> Result<(), ApiError> {
    let scheme = |s: &str| {
        url.get(..s.len())
            .filter(|p| p.eq_ignore_ascii_case(s))
            .map(|_| &url[s.len()..])
    };
    let rest = scheme("http://").or_else(|| scheme("https://"));
    let ok = rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/') && !r.starts_with(':'))
        && url.len() <= 2048
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(bad(format!(
            "invalid `{field}`: an http:// or https:// URL"
        )));
    }
    if has_credentials(url) {
        // The advice fits webhooks only: an access key's existence check has no secret.
        let advice = if field.starts_with("existence_check") || field == "url" {
            // An access key's existence check has no secret; a repository's `url` (the
            // only bare `url` checked here) has its credentials elsewhere in Artifactory.
            ""
        } else {
            "; give the receiver's credentials as a secret (`secret`, or `secrets` in a header)"
        };
        return Err(bad(format!(
            "invalid `{field}`: a user name or password in the URL would be stored and shown \
             in clear{advice}"
        )));
    }
    // Parsed as the client that sends to it parses it: a port out of range, an empty or
    // invalid host, a broken IPv6 address were stored and then failed every delivery.
    match url::Url::parse(url) {
        Ok(u) if u.port() == Some(0) => Err(bad(format!("invalid `{field}`: port 0"))),
        Ok(u) if u.host_str().is_some_and(|h| !h.is_empty() && h != ".") => Ok(()),
        Ok(_) => Err(bad(format!("invalid `{field}`: the URL has no host"))),
        Err(e) => Err(bad(format!("invalid `{field}`: {e}"))),
    }
}

/// Headers a handler may not set: they frame the request or are the server's own (a
/// `Content-Length` of a handler split one delivery into two requests at the receiver;
/// a second `X-Gatehouse-Signature` could stand in for the real one).
const RESERVED_HEADERS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "expect",
    "x-jfrog-event-auth",
];

/// The expressions of a template's `{{…}}` placeholders, trimmed.
fn placeholders(template: &str) -> impl Iterator<Item = &str> {
    template
        .split("{{")
        .skip(1)
        .filter_map(|rest| rest.split_once("}}").map(|(expr, _)| expr.trim()))
}

/// Whether an http(s) URL carries `user[:password]@` before its host.
pub(crate) fn has_credentials(url: &str) -> bool {
    // The scheme in any case (`HTTP://u:p@host` went through, and was stored in clear).
    let after = |scheme: &str| {
        url.get(..scheme.len())
            .filter(|p| p.eq_ignore_ascii_case(scheme))
            .map(|_| &url[scheme.len()..])
    };
    let rest = after("http://")
        .or_else(|| after("https://"))
        .unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.contains('@')
        || url::Url::parse(url).is_ok_and(|u| !u.username().is_empty() || u.password().is_some())
}

/// `templated`: the handler fills `{{…}}` placeholders in its headers (`custom-webhook`);
/// a plain `webhook` sends them as they are, so all of the value must travel in HTTP.
fn check_header(field: &str, h: &HeaderIn, templated: bool) -> Result<(String, String), ApiError> {
    let name_ok = !h.name.is_empty()
        && h.name.len() <= 128
        && h.name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !name_ok {
        return Err(bad(format!(
            "invalid `{field}.name`: `{}` is not a header name",
            h.name.escape_debug()
        )));
    }
    let lower = h.name.to_ascii_lowercase();
    if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("x-gatehouse-") {
        return Err(bad(format!(
            "invalid `{field}.name`: `{}` is set by the server itself (framing, or its own signature and secret headers)",
            h.name
        )));
    }
    if h.value.len() > 4096 || h.value.chars().any(|c| c.is_control()) {
        return Err(bad(format!(
            "invalid `{field}.value`: at most 4096 characters, no control characters"
        )));
    }
    // What is written as it is (outside `{{…}}` placeholders, filled in per delivery)
    // must be something HTTP carries: `café` was stored, and every delivery then failed
    // through all its retries into the dead letters.
    let mut fixed = String::with_capacity(h.value.len());
    let mut rest = h.value.as_str();
    while let Some(open) = rest.find("{{").filter(|_| templated) {
        fixed.push_str(&rest[..open]);
        match rest[open..].find("}}") {
            Some(close) => rest = &rest[open + close + 2..],
            None => {
                rest = &rest[open..];
                break;
            }
        }
    }
    fixed.push_str(rest);
    if !fixed
        .bytes()
        .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
    {
        return Err(bad(format!(
            "invalid `{field}.value`: HTTP takes visible ASCII only in a header (`{}`)",
            h.value.escape_debug()
        )));
    }
    Ok((h.name.clone(), h.value.clone()))
}

/// Check `event_filter.criteria` against the fields its domain knows (each of the
/// right type), and return the include and exclude patterns. The object itself is
/// stored as sent; a field the domain does not know is refused, so that nothing is
/// kept that would silently mean nothing.
fn check_criteria(
    domain: &str,
    criteria: Option<&Value>,
) -> Result<(Vec<String>, Vec<String>), ApiError> {
    let Some(c) = criteria else {
        return Ok((vec![], vec![]));
    };
    let Some(map) = c.as_object() else {
        return Err(bad(
            "invalid `event_filter.criteria`: expected a JSON object".into(),
        ));
    };
    let fields = criteria_fields(domain);
    // One criterion in two spellings is a 400, as everywhere else (their lists were
    // merged, and shown as one: not "as sent").
    for (a, b) in [
        ("includePatterns", "include_patterns"),
        ("excludePatterns", "exclude_patterns"),
    ] {
        if map.contains_key(a) && map.contains_key(b) {
            return Err(bad(format!(
                "invalid `event_filter.criteria`: `{a}` and `{b}` are one field given twice"
            )));
        }
    }
    let (mut include, mut exclude) = (vec![], vec![]);
    for (name, value) in map {
        let Some((_, kind)) = fields.iter().find(|(f, _)| f == name) else {
            return Err(bad(format!(
                "invalid `event_filter.criteria.{}`: not a criterion of the `{domain}` domain (use {})",
                name.escape_debug(),
                fields
                    .iter()
                    .map(|(f, _)| *f)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let field = format!("event_filter.criteria.{name}");
        match kind {
            CriterionKind::Bool => {
                if !value.is_boolean() && !value.is_null() {
                    return Err(bad(format!("invalid `{field}`: expected true or false")));
                }
            }
            CriterionKind::Strings | CriterionKind::Patterns => {
                let list: &[Value] = match value {
                    Value::Null => &[],
                    Value::Array(a) => a,
                    _ => {
                        return Err(bad(format!(
                            "invalid `{field}`: expected a list of strings"
                        )))
                    }
                };
                let mut strings = Vec::new();
                for (i, v) in list.iter().enumerate() {
                    let Some(p) = v.as_str() else {
                        return Err(bad(format!("invalid `{field}[{i}]`: expected a string")));
                    };
                    let ok = if *kind == CriterionKind::Patterns {
                        valid_pattern(p) && p.len() <= 1024
                    } else {
                        !p.is_empty() && p.len() <= 1024 && !p.chars().any(|c| c.is_control())
                    };
                    if !ok {
                        return Err(bad(format!(
                            "invalid `{field}[{i}]`: `{}` is not a valid {}",
                            p.escape_debug(),
                            if *kind == CriterionKind::Patterns {
                                "pattern"
                            } else {
                                "name"
                            }
                        )));
                    }
                    strings.push(p.to_string());
                }
                match name.as_str() {
                    "includePatterns" | "include_patterns" => include.extend(strings),
                    "excludePatterns" | "exclude_patterns" => exclude.extend(strings),
                    _ => {}
                }
            }
        }
    }
    Ok((include, exclude))
}

/// The criteria as sent, but with the snake_case spellings Gatehouse also accepts
/// (`include_patterns`) under JFrog's names (`includePatterns`): exact in what we send.
fn jfrog_spelling(criteria: Value) -> Value {
    let Value::Object(map) = criteria else {
        return criteria;
    };
    let mut out = serde_json::Map::new();
    for (k, v) in map {
        let k = match k.as_str() {
            "include_patterns" => "includePatterns".to_string(),
            "exclude_patterns" => "excludePatterns".to_string(),
            _ => k,
        };
        match (out.get_mut(&k), v) {
            (Some(Value::Array(have)), Value::Array(more)) => have.extend(more),
            (Some(have), v) if have.is_null() => *have = v,
            (Some(_), _) => {}
            (None, v) => {
                out.insert(k, v);
            }
        }
    }
    Value::Object(out)
}

/// For each handler of a PUT, the earlier handler whose secret (and secrets) it keeps
/// when it leaves them out — the same receiver only: a handler of the same type and URL
/// (the one at the same place first, so two handlers of one URL keep their own), or else,
/// for a handler no URL matched, the one of the same origin (scheme, host, port) at the
/// same place. Matched by URL first for every handler, then by origin: matched in one
/// pass, a new handler at the place of an earlier one of the same host took its secret
/// before that one's own URL, further down, could claim it (`/c` got `/a`'s secret and
/// `/a` got `/b`'s). Kept by position alone, a reordered list sent one receiver's secret
/// to another.
fn kept_handlers(previous: Option<&Subscription>, new: &[HandlerIn]) -> Vec<Option<usize>> {
    let mut kept = vec![None; new.len()];
    let Some(p) = previous else { return kept };
    let mut taken = vec![false; p.handlers.len()];
    for (i, h) in new.iter().enumerate() {
        let same = |j: usize| {
            !taken[j] && p.handlers[j].handler_type == h.handler_type && p.handlers[j].url == h.url
        };
        let j = (i < p.handlers.len() && same(i))
            .then_some(i)
            .or_else(|| (0..p.handlers.len()).find(|&j| same(j)));
        if let Some(j) = j {
            taken[j] = true;
            kept[i] = Some(j);
        }
    }
    let origin = |u: &str| url::Url::parse(u).ok().map(|u| u.origin());
    for (i, h) in new.iter().enumerate() {
        if kept[i].is_some() || i >= p.handlers.len() || taken[i] {
            continue;
        }
        let b = &p.handlers[i];
        if b.handler_type == h.handler_type
            && origin(&b.url).is_some()
            && origin(&b.url) == origin(&h.url)
        {
            taken[i] = true;
            kept[i] = Some(i);
        }
    }
    kept
}

/// Validate a definition and turn it into what is stored; `previous` supplies secrets a
/// replace leaves out.
fn subscription_in(
    app: &AppState,
    key: String,
    w: SubscriptionIn,
    previous: Option<&Subscription>,
) -> Result<Subscription, ApiError> {
    check_key(&key)?;
    if let Some(d) = &w.description {
        if d.chars().count() > 1000 {
            return Err(bad("invalid `description`: at most 1000 characters".into()));
        }
        if d.chars().any(|c| c.is_control() && c != '\n') {
            return Err(bad(
                "invalid `description`: no control characters but line breaks".into(),
            ));
        }
    }
    let f = w.event_filter;
    let types = DOMAINS
        .iter()
        .chain(FOREIGN_DOMAINS)
        .find(|(d, _)| *d == f.domain)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            bad(format!(
                "invalid `event_filter.domain`: `{}` (use {})",
                f.domain.escape_debug(),
                DOMAINS
                    .iter()
                    .chain(FOREIGN_DOMAINS)
                    .map(|(d, _)| *d)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    if f.event_types.is_empty() {
        return Err(bad(
            "invalid `event_filter.event_types`: give at least one".into()
        ));
    }
    for (i, t) in f.event_types.iter().enumerate() {
        if !types.contains(&t.as_str()) {
            return Err(bad(format!(
                "invalid `event_filter.event_types[{i}]`: `{}` is not a `{}` event (use {})",
                t.escape_debug(),
                f.domain,
                types.join(", ")
            )));
        }
    }
    let criteria = match f.criteria {
        None | Some(Value::Null) => None,
        Some(c) => Some(c),
    };
    let (include_patterns, exclude_patterns) = check_criteria(&f.domain, criteria.as_ref())?;
    let criteria = criteria.map(jfrog_spelling);
    if w.handlers.is_empty() {
        return Err(bad("invalid `handlers`: give at least one".into()));
    }
    let seal = |plain: &str| -> Result<String, ApiError> {
        let id = app
            .personal
            .named(SECRETS_KEY)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        app.seal(&id, plain)
    };
    // A secret given again as it is stored keeps its ciphertext (sealed anew, with a new
    // nonce, the subscription differed and every re-save wrote an event).
    let seal_or_keep = |stored: Option<&String>, plain: &str| -> Result<String, ApiError> {
        match stored {
            Some(c) if app.personal.decrypt(c).as_deref() == Some(plain) => Ok(c.clone()),
            _ => seal(plain),
        }
    };
    let kept_from = kept_handlers(previous, &w.handlers);
    let mut handlers = Vec::new();
    for (i, h) in w.handlers.into_iter().enumerate() {
        let field = format!("handlers[{i}]");
        let before = kept_from[i].and_then(|j| previous.map(|p| &p.handlers[j]));
        check_url(&format!("{field}.url"), &h.url)?;
        // The name of a proxy set up in Artifactory (stored and shown, not used here).
        crate::domain::validate_text(&format!("{field}.proxy"), h.proxy.as_deref(), 256)?;
        if h.proxy.as_deref().is_some_and(|p| p.contains(['\n', '\t'])) {
            return Err(bad(format!("invalid `{field}.proxy`: must be one line")));
        }
        match h.handler_type.as_str() {
            "webhook" => {
                if h.payload.is_some() || !h.secrets.is_empty() || !h.http_headers.is_empty() {
                    return Err(bad(format!(
                        "invalid `{field}`: `payload`, `secrets` and `http_headers` belong to `custom-webhook` handlers"
                    )));
                }
                let headers = h
                    .custom_http_headers
                    .iter()
                    .enumerate()
                    .map(|(j, x)| {
                        check_header(&format!("{field}.custom_http_headers[{j}]"), x, false)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let secret = match &h.secret {
                    Some(s) if s.len() > 1024 => {
                        return Err(bad(format!(
                            "invalid `{field}.secret`: at most 1024 characters"
                        )))
                    }
                    // Sent as `X-JFrog-Event-Auth`: a value HTTP cannot carry was stored,
                    // and every delivery went into the dead letters.
                    Some(s) if !s.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) => {
                        return Err(bad(format!(
                            "invalid `{field}.secret`: it is sent in a header, where HTTP takes visible ASCII and spaces only"
                        )))
                    }
                    // An empty secret is none (it was stored, shown as `secret_set`, and
                    // sent as an empty `X-JFrog-Event-Auth`): it clears one, as an empty
                    // LDAP manager password does.
                    Some(s) if s.is_empty() => None,
                    Some(s) => Some(seal_or_keep(before.and_then(|b| b.secret.as_ref()), s)?),
                    None => before.and_then(|b| b.secret.clone()),
                };
                handlers.push(SubscriptionHandler {
                    handler_type: h.handler_type,
                    url: h.url,
                    secret,
                    proxy: h.proxy,
                    headers,
                    payload: None,
                    secrets: vec![],
                });
            }
            "custom-webhook" => {
                if h.secret.is_some() || !h.custom_http_headers.is_empty() {
                    return Err(bad(format!(
                        "invalid `{field}`: `secret` and `custom_http_headers` belong to `webhook` handlers (use `secrets`, `http_headers`)"
                    )));
                }
                if h.payload.as_ref().is_some_and(|p| p.len() > 65_536) {
                    return Err(bad(format!("invalid `{field}.payload`: at most 64 KiB")));
                }
                let headers = h
                    .http_headers
                    .iter()
                    .enumerate()
                    .map(|(j, x)| check_header(&format!("{field}.http_headers[{j}]"), x, true))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut secrets = Vec::new();
                for (j, s) in h.secrets.iter().enumerate() {
                    let name_ok = !s.name.is_empty()
                        && s.name.len() <= 64
                        && s.name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if !name_ok {
                        return Err(bad(format!(
                            "invalid `{field}.secrets[{j}].name`: letters, digits and `_`"
                        )));
                    }
                    // Two of one name: deliveries used the first, silently.
                    if h.secrets[..j].iter().any(|o| o.name == s.name) {
                        return Err(bad(format!(
                            "invalid `{field}.secrets[{j}].name`: `{}` is given twice",
                            s.name
                        )));
                    }
                    let value = match &s.value {
                        // Substituted into headers and payloads: an empty one went out as
                        // `Bearer ` (a handler's plain `secret` may be empty: none).
                        Some(v) if v.is_empty() => {
                            return Err(bad(format!(
                                "invalid `{field}.secrets[{j}].value`: empty (leave the secret out of `secrets` instead)"
                            )))
                        }
                        Some(v) => seal_or_keep(
                            before
                                .and_then(|b| b.secrets.iter().find(|(n, _)| *n == s.name))
                                .map(|(_, c)| c),
                            v,
                        )?,
                        None => before
                            .and_then(|b| b.secrets.iter().find(|(n, _)| *n == s.name))
                            .map(|(_, v)| v.clone())
                            .ok_or_else(|| {
                                bad(format!(
                                    "invalid `{field}.secrets[{j}].value`: required for a new secret"
                                ))
                            })?,
                    };
                    secrets.push((s.name.clone(), value));
                }
                let names: Vec<&str> = secrets.iter().map(|(n, _)| n.as_str()).collect();
                // Placeholders are filled in the payload and the headers only: in the URL
                // they went out literally (`/%7B%7B.secrets.t%7D%7D/`).
                if h.url.contains("{{") {
                    return Err(bad(format!(
                        "invalid `{field}.url`: placeholders (`{{{{…}}}}`) are filled in `payload` and `http_headers` only"
                    )));
                }
                if let Some(t) = &h.payload {
                    check_template(t, &names)
                        .map_err(|e| bad(format!("invalid `{field}.payload`: {e}")))?;
                }
                for (j, (_, v)) in headers.iter().enumerate() {
                    check_template(v, &names).map_err(|e| {
                        bad(format!("invalid `{field}.http_headers[{j}].value`: {e}"))
                    })?;
                }
                // A secret put into a header travels as the header does: visible ASCII
                // (`Bearer {{.secrets.tok}}` with `pässwörd` was stored, and every
                // delivery went into the dead letters).
                for (j, s) in h.secrets.iter().enumerate() {
                    let sendable = |v: &str| v.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
                    let in_header = headers
                        .iter()
                        .any(|(_, v)| placeholders(v).any(|p| p == format!(".secrets.{}", s.name)));
                    if in_header && s.value.as_deref().is_some_and(|v| !sendable(v)) {
                        return Err(bad(format!(
                            "invalid `{field}.secrets[{j}].value`: it is put into a header, where HTTP takes visible ASCII and spaces only"
                        )));
                    }
                }
                handlers.push(SubscriptionHandler {
                    handler_type: h.handler_type,
                    url: h.url,
                    secret: None,
                    proxy: h.proxy,
                    headers,
                    payload: h.payload,
                    secrets,
                });
            }
            other => {
                return Err(bad(format!(
                    "invalid `{field}.handler_type`: `{}` (use webhook or custom-webhook)",
                    other.escape_debug()
                )))
            }
        }
    }
    // What a read shows of a subscription without criteria, sent back, is none (stored
    // as sent, a client's round trip wrote a changed subscription).
    let shown_without =
        json!({"includePatterns": include_patterns, "excludePatterns": exclude_patterns});
    let criteria = criteria
        .filter(|c| *c != shown_without || previous.is_some_and(|p| p.criteria.is_some()))
        .map(|c| c.to_string());
    Ok(Subscription {
        key,
        description: w.description,
        enabled: w.enabled.unwrap_or(true),
        domain: f.domain,
        event_types: f.event_types,
        include_patterns,
        exclude_patterns,
        handlers,
        criteria,
    })
}

/// A subscription as answers show it: no secret values.
fn subscription_out(s: &Subscription) -> Value {
    let handlers: Vec<Value> = s
        .handlers
        .iter()
        .map(|h| {
            let headers: Vec<Value> = h
                .headers
                .iter()
                .map(|(n, v)| json!({"name": n, "value": v}))
                .collect();
            if h.handler_type == "webhook" {
                json!({
                    "handler_type": h.handler_type,
                    "url": h.url,
                    "secret_set": h.secret.is_some(),
                    "proxy": h.proxy,
                    "custom_http_headers": headers,
                })
            } else {
                json!({
                    "handler_type": h.handler_type,
                    "url": h.url,
                    "payload": h.payload,
                    "proxy": h.proxy,
                    "secrets": h.secrets.iter().map(|(n, _)| json!({"name": n})).collect::<Vec<_>>(),
                    "http_headers": headers,
                })
            }
        })
        .collect();
    // Criteria exactly as sent; subscriptions saved before they were kept show the
    // pattern lists.
    let criteria = s
        .criteria
        .as_deref()
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
        .unwrap_or_else(|| {
            json!({"includePatterns": s.include_patterns, "excludePatterns": s.exclude_patterns})
        });
    json!({
        "key": s.key,
        "description": s.description,
        "enabled": s.enabled,
        "event_filter": {
            "domain": s.domain,
            "event_types": s.event_types,
            "criteria": criteria,
        },
        "handlers": handlers,
        "status": status_out(s),
    })
}

/// What Gatehouse will do with a subscription: `fires` is false for a domain it never
/// produces (JFrog's artifact, build, … domains), with the reason; `notes` say what of
/// the definition is kept but has no effect here.
fn status_out(s: &Subscription) -> Value {
    let reason = never_fires(&s.domain);
    let mut notes: Vec<String> = Vec::new();
    if !s.enabled {
        notes.push("disabled: events that happen while it is disabled are not sent; what it matched while enabled is still delivered".into());
    }
    for (i, h) in s.handlers.iter().enumerate() {
        if let Some(p) = &h.proxy {
            notes.push(format!(
                "handlers[{i}].proxy `{}` is kept as sent but not used: Gatehouse has no list of proxy servers and sends deliveries directly",
                p.escape_debug()
            ));
        }
    }
    if reason.is_some() {
        notes.push("criteria of JFrog's domains (anyLocal, anyRemote, repoKeys, …) are kept as sent; they select nothing here".into());
    }
    json!({
        "fires": reason.is_none() && s.enabled,
        "reason": reason,
        "notes": notes,
    })
}

async fn list(app: web::Data<AppState>, _admin: Admin, req: HttpRequest) -> HttpResponse {
    let s = app.view(&req);
    let items: Vec<Value> = s
        .subscriptions
        .values()
        .map(|r| subscription_out(&r.subscription))
        .collect();
    HttpResponse::Ok().json(items)
}

async fn get(
    app: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let s = app.view(&req);
    let r = s
        .subscriptions
        .get(path.as_str())
        .ok_or_else(|| ApiError::NotFound(format!("subscription `{path}` not found")))?;
    Ok(HttpResponse::Ok().json(subscription_out(&r.subscription)))
}

async fn create(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    Body(body): Body<SubscriptionIn>,
) -> Result<HttpResponse, ApiError> {
    let key = body
        .key
        .clone()
        .ok_or_else(|| bad("invalid `key`: required".into()))?;
    // `/subscriptions/test` is the test delivery's path: a subscription of that key was
    // made, then could never be read, changed or deleted (405).
    if key == "test" {
        return Err(bad(
            "invalid `key`: `test` is taken by `POST /event/api/v1/subscriptions/test` (the test delivery)".into(),
        ));
    }
    let sub = subscription_in(&app, key, body, None)?;
    let committed = app
        .submit(
            Command::SaveSubscription {
                subscription: sub.clone(),
                create_only: true,
            },
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(
        HttpResponse::Created().json(subscription_out(&sub)),
        committed,
    ))
}

/// PUT answers 204 (seed 004); secrets left out keep their stored values.
/// Pending deliveries and dead letters name their handler by its place in the list: a
/// PUT that moves handlers to other places, or removes some, while deliveries wait would
/// send them to other receivers, with those receivers' secrets (a reordered list did).
/// Refused then (409). Handlers added at the end, a handler edited in its place (a URL
/// put right, so that its dead letters can be re-driven to it), and any change once
/// nothing waits, are taken.
fn handlers_keep_their_places(
    app: &AppState,
    previous: &Subscription,
    new: &Subscription,
) -> Result<(), ApiError> {
    let same = |a: &SubscriptionHandler, b: &SubscriptionHandler| {
        a.handler_type == b.handler_type && a.url == b.url
    };
    let moved = new.handlers.len() < previous.handlers.len()
        || previous.handlers.iter().enumerate().any(|(i, a)| {
            !new.handlers.get(i).is_some_and(|b| same(a, b))
                && new.handlers.iter().any(|b| same(a, b))
        });
    if !moved {
        return Ok(());
    }
    let status = app
        .deliveries
        // Only what waits counts here, not the cursor.
        .status(&new.key, 0)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if status.pending + status.failed > 0 {
        return Err(ApiError::Conflict(format!(
            "{} deliveries wait and {} dead letters are kept for this subscription, each for the handler at its place in the list: moving or removing handlers now would send them to other receivers. Let them finish (re-drive the dead letters), or delete the subscription and create it anew, or add new handlers at the end",
            status.pending, status.failed
        )));
    }
    Ok(())
}

async fn replace(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
    Body(body): Body<SubscriptionIn>,
) -> Result<HttpResponse, ApiError> {
    let key = path.into_inner();
    if body.key.as_ref().is_some_and(|k| *k != key) {
        return Err(bad("invalid `key`: must match the key in the path".into()));
    }
    let previous = app
        .read()
        .subscriptions
        .get(&key)
        .map(|r| r.subscription.clone())
        .ok_or_else(|| ApiError::NotFound(format!("subscription `{key}` not found")))?;
    let sub = subscription_in(&app, key, body, Some(&previous))?;
    handlers_keep_their_places(&app, &previous, &sub)?;
    let committed = app
        .submit(
            Command::SaveSubscription {
                subscription: sub,
                create_only: false,
            },
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(HttpResponse::NoContent().finish(), committed))
}

async fn delete(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let committed = app
        .submit(
            Command::DeleteSubscription {
                key: path.into_inner(),
            },
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(HttpResponse::NoContent().finish(), committed))
}

/// `POST /event/api/v1/subscriptions/test`: send a sample event for the given definition
/// (not stored) to each of its handlers.
async fn test(
    app: web::Data<AppState>,
    _admin: Admin,
    req: HttpRequest,
    Body(body): Body<Value>,
) -> Result<HttpResponse, ApiError> {
    let key = body["key"].as_str().unwrap_or("test").to_string();
    let def: SubscriptionIn = super::extract::from_value(&req, body.clone())?;
    // Secrets of the definition are used as given (in clear, for this request only).
    let clear: Vec<(Option<String>, Vec<(String, String)>)> = def
        .handlers
        .iter()
        .map(|h| {
            (
                h.secret.clone(),
                h.secrets
                    .iter()
                    .map(|s| (s.name.clone(), s.value.clone().unwrap_or_default()))
                    .collect(),
            )
        })
        .collect();
    let sub = subscription_in(&app, key.clone(), def, None)?;
    let (service_id, position, time_ms) = {
        let s = app.read();
        (s.service_id.clone().unwrap_or_default(), s.seq, s.time_ms)
    };
    let data = crate::webhooks::payload::sample_data(&sub.domain);
    let event = json!({
        "domain": sub.domain,
        "event_type": sub.event_types[0],
        "subscription_key": key,
        "source": service_id,
        "position": position,
        "timestamp": crate::timefmt::format(time_ms, true),
        "data": data,
    });
    let mut failures = Vec::new();
    let mut statuses = Vec::new();
    let timeout = std::time::Duration::from_millis(app.config.webhook_timeout_ms);
    for (h, (secret, secrets)) in sub.handlers.iter().zip(clear) {
        let (bytes, headers) = crate::webhooks::build_request(
            h,
            &event.to_string(),
            secret.as_deref(),
            &secrets,
            // Its own key, never a position's: a receiver that drops repeated keys must
            // not take the real event at this position for the test it already saw.
            &format!("test-{position}-{}", super::new_request_id()),
        );
        let url = h.url.clone();
        let result = web::block(move || {
            let mut client = crate::webhooks::client::Client::new(timeout);
            crate::webhooks::post(&mut client, &url, &bytes, &headers)
        })
        .await
        .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))?;
        match result {
            Ok(code) if (200..300).contains(&code) => {
                statuses.push(format!("{} answered {code}", h.url))
            }
            Ok(code) => failures.push(format!("{} answered {code}", h.url)),
            Err(e) => failures.push(format!("{}: {e}", h.url)),
        }
    }
    // A test of a domain that never fires here still reaches the receiver (it tests the
    // receiver), and says that real events will not follow.
    let never = never_fires(&sub.domain)
        .map(|r| format!(" (note: {r})"))
        .unwrap_or_default();
    Ok(HttpResponse::Ok().json(if failures.is_empty() {
        json!({"result": "success", "message": format!("{}{never}", statuses.join("; "))})
    } else {
        json!({"result": "failure", "message": format!("{}{never}", failures.join("; "))})
    }))
}

/// The position where subscription `key` was made, or 404.
fn existing(app: &AppState, key: &str) -> Result<u64, ApiError> {
    match app.read().subscriptions.get(key) {
        Some(r) => Ok(r.created_seq),
        None => Err(ApiError::NotFound(format!(
            "subscription `{key}` not found"
        ))),
    }
}

fn storage(e: sled::Error) -> ApiError {
    ApiError::Internal(format!("the delivery store: {e}"))
}

fn pending_out(p: &crate::webhooks::Pending) -> Value {
    json!({
        "position": p.position,
        "idempotency_key": crate::webhooks::idempotency_key(p.position, p.notice),
        "handler": p.handler,
        "domain": p.domain,
        "event_type": p.event_type,
        "name": p.name,
        "attempts": p.attempts,
        "last_status": p.last_status,
        "last_error": p.last_error,
        "committed": crate::timefmt::format(p.committed_ms, true),
    })
}

/// `GET …/subscriptions/{key}/deliveries?limit=`: the subscription's cursor, what is
/// pending, and its newest attempts (status code, latency, attempt count), newest first.
async fn deliveries(
    app: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let created_seq = existing(&app, &path)?;
    let limit = super::limit_param(&req)?;
    let status = app.deliveries.status(&path, created_seq).map_err(storage)?;
    let attempts = app.deliveries.history(&path, limit).map_err(storage)?;
    let pending = app.deliveries.pending(&path, limit).map_err(storage)?;
    let attempts: Vec<Value> = attempts
        .iter()
        .map(|a| {
            json!({
                "position": a.position,
                "idempotency_key": crate::webhooks::idempotency_key(a.position, a.notice),
                "handler": a.handler,
                "event_type": a.event_type,
                "url": a.url,
                "status_code": a.status,
                "error": a.error,
                "latency_ms": a.latency_ms,
                "attempt": a.attempt,
                "outcome": a.outcome,
                "time": crate::timefmt::format(a.time_ms, true),
            })
        })
        .collect();
    let sub_status = app
        .read()
        .subscriptions
        .get(path.as_str())
        .map(|r| status_out(&r.subscription))
        .unwrap_or(Value::Null);
    Ok(HttpResponse::Ok().json(json!({
        "subscription_key": path.as_str(),
        "status": sub_status,
        "cursor": status.cursor,
        "pending_count": status.pending,
        "failed_count": status.failed,
        "last_error": status.last_error,
        "pending": pending.iter().map(pending_out).collect::<Vec<_>>(),
        "attempts": attempts,
    })))
}

/// `GET …/subscriptions/{key}/failed`: the dead letters, oldest first.
async fn failed(
    app: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    existing(&app, &path)?;
    let limit = super::limit_param(&req)?;
    let list = app.deliveries.failed(&path, limit).map_err(storage)?;
    Ok(HttpResponse::Ok().json(json!({
        "failed": list.iter().map(pending_out).collect::<Vec<_>>(),
    })))
}

/// `POST …/subscriptions/{key}/failed/redrive[?position=N]`: deliver the dead letters
/// (all, or those of one event) again, from a fresh attempt count.
async fn redrive(
    app: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    existing(&app, &path)?;
    let position = match super::query_param(&req, "position")? {
        None => None,
        Some(p) => Some(p.parse::<u64>().map_err(|_| {
            bad(format!(
                "invalid `position`: `{}` is not a log position",
                p.escape_debug()
            ))
        })?),
    };
    let key = path.into_inner();
    let d = app.deliveries.clone();
    let n = web::block(move || d.redrive(&key, position))
        .await
        .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))?
        .map_err(storage)?;
    Ok(HttpResponse::Ok().json(json!({ "redriven": n })))
}

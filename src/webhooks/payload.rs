//! What a delivery carries: the webhook domains and event types, custom payload
//! templates, and the HMAC signature. Used by delivery (`webhooks`) and by the
//! subscription API, which checks templates when they are saved.

use serde_json::Value;

/// Domains and their event types (documented in README and openapi.yaml).
pub const DOMAINS: &[(&str, &[&str])] = &[
    (
        "user",
        &[
            "created",
            "updated",
            "deleted",
            "locked",
            "unlocked",
            "password_changed",
        ],
    ),
    (
        "group",
        &["created", "updated", "deleted", "members_changed"],
    ),
    ("token", &["created", "refreshed", "revoked"]),
    ("permission", &["created", "updated", "deleted"]),
    ("entitlement", &["created", "updated", "deleted"]),
    ("access_key", &["created", "updated", "deleted"]),
    (
        "project",
        &["created", "updated", "deleted", "member_changed"],
    ),
    ("federation", &["target_changed", "broadcast_done"]),
];

/// HMAC-SHA256 of `body` with `secret`, hex.
pub fn signature(secret: &str, body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    crate::hex(&mac.finalize().into_bytes())
}

/// The fields of a delivery body a template may name (besides `.data.…` and
/// `.secrets.<name>`).
const EVENT_FIELDS: &[&str] = &[
    "domain",
    "event_type",
    "subscription_key",
    "source",
    "position",
    "timestamp",
    "data",
];

/// Check a template's placeholders: `{{.data}}`, `{{.data.<path>}}`, the event fields,
/// and `{{.secrets.<name>}}` for a secret the handler defines. Anything else would
/// render as nothing, silently, at every delivery: refuse it now.
pub fn check_template(template: &str, secret_names: &[&str]) -> Result<(), String> {
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start..].find("}}") else {
            return Err("a `{{` is not closed by `}}`".into());
        };
        let expr = rest[start + 2..start + end].trim();
        let known = match expr.strip_prefix('.') {
            Some(path) => {
                if let Some(name) = path.strip_prefix("secrets.") {
                    secret_names.contains(&name)
                } else if let Some(p) = path.strip_prefix("data.") {
                    !p.is_empty() && p.split('.').all(|s| !s.is_empty())
                } else {
                    EVENT_FIELDS.contains(&path)
                }
            }
            None => false,
        };
        if !known {
            return Err(format!(
                "unknown placeholder `{{{{{}}}}}` (use {{{{.data.<field>}}}}, {{{{.secrets.<name>}}}} of a defined secret, or one of .{})",
                expr.escape_debug(),
                EVENT_FIELDS.join(", .")
            ));
        }
        rest = &rest[start + end + 2..];
    }
    Ok(())
}

/// `s` as the inside of a JSON string literal (without the quotes).
fn json_escaped(s: &str) -> String {
    let quoted = Value::String(s.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

/// Fill a custom payload template: `{{.secrets.name}}`, and any path into the event
/// (`{{.data.name}}`, `{{.event_type}}`, `{{.domain}}`, …).
pub fn render_template(template: &str, data: &Value, secrets: &[(String, String)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let expr = rest[start + 2..start + end].trim();
        let value = if let Some(name) = expr.strip_prefix(".secrets.") {
            secrets
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| json_escaped(v))
                .unwrap_or_default()
        } else if let Some(path) = expr.strip_prefix('.') {
            let mut v = data;
            for part in path.split('.') {
                v = &v[part];
            }
            // Escaped as inside a JSON string (where placeholders stand in payloads), so
            // a quote in the data cannot break the payload or add fields to it.
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            json_escaped(&text)
        } else {
            String::new()
        };
        out.push_str(&value);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

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

/// Domains of the JFrog Platform whose events happen in Artifactory, Distribution or
/// Docker registries (seed 004's table), with their event types. Gatehouse keeps no
/// artifacts, builds or release bundles, so it never produces these events: a
/// subscription to one is accepted (a JFrog configuration can be moved here unchanged)
/// and says in its status that it never fires.
pub const FOREIGN_DOMAINS: &[(&str, &[&str])] = &[
    (
        "artifact",
        &["deployed", "deleted", "moved", "copied", "cached"],
    ),
    ("artifact_property", &["added", "deleted"]),
    ("docker", &["pushed", "deleted", "promoted"]),
    ("build", &["uploaded", "deleted", "promoted"]),
    ("release_bundle", &["created", "signed", "deleted"]),
    (
        "distribution",
        &[
            "distribute_started",
            "distribute_completed",
            "distribute_aborted",
            "distribute_failed",
            "delete_started",
            "delete_completed",
            "delete_failed",
        ],
    ),
    (
        "artifactory_release_bundle",
        &[
            "received",
            "delete_started",
            "delete_completed",
            "delete_failed",
        ],
    ),
];

/// A criteria field and the JSON type it must have.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CriterionKind {
    Bool,
    Strings,
    Patterns,
}

/// The criteria a domain's subscriptions may carry (JFrog's names; the snake_case
/// spellings of the pattern lists are accepted too). On Gatehouse's own domains the
/// patterns are globs on the entity's name; the rest belong to JFrog's domains.
pub fn criteria_fields(domain: &str) -> &'static [(&'static str, CriterionKind)] {
    use CriterionKind::*;
    const OWN: &[(&str, CriterionKind)] = &[
        ("includePatterns", Patterns),
        ("excludePatterns", Patterns),
        ("include_patterns", Patterns),
        ("exclude_patterns", Patterns),
    ];
    const REPOS: &[(&str, CriterionKind)] = &[
        ("anyLocal", Bool),
        ("anyRemote", Bool),
        ("anyFederated", Bool),
        ("repoKeys", Strings),
        ("includePatterns", Patterns),
        ("excludePatterns", Patterns),
    ];
    const BUILDS: &[(&str, CriterionKind)] = &[
        ("anyBuild", Bool),
        ("selectedBuilds", Strings),
        ("includePatterns", Patterns),
        ("excludePatterns", Patterns),
    ];
    const BUNDLES: &[(&str, CriterionKind)] = &[
        ("anyReleaseBundle", Bool),
        ("registeredReleaseBundlesNames", Strings),
        ("registeredReleaseBundleNames", Strings),
        ("includePatterns", Patterns),
        ("excludePatterns", Patterns),
    ];
    match domain {
        "artifact" | "artifact_property" | "docker" => REPOS,
        "build" => BUILDS,
        "release_bundle" | "distribution" | "artifactory_release_bundle" => BUNDLES,
        _ => OWN,
    }
}

/// Why a subscription to `domain` never fires here, or `None` when Gatehouse produces
/// that domain's events.
pub fn never_fires(domain: &str) -> Option<String> {
    FOREIGN_DOMAINS.iter().any(|(d, _)| *d == domain).then(|| {
        format!(
            "the `{domain}` domain never fires on Gatehouse: it is an access server and keeps no artifacts, builds or release bundles, so no `{domain}` event is ever produced or sent (domains that fire: {})",
            DOMAINS.iter().map(|(d, _)| *d).collect::<Vec<_>>().join(", ")
        )
    })
}

/// A sample `data` for a test delivery of `domain`, shaped like the real thing so that
/// a custom payload (`{{.data.repo_key}}/{{.data.path}}`) renders as it would at JFrog.
pub fn sample_data(domain: &str) -> Value {
    match domain {
        "artifact" | "artifact_property" => serde_json::json!({
            "repo_key": "sample-repo", "path": "sample/dir/sample.txt", "name": "sample.txt",
            "size": 0, "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "note": "a test delivery from Gatehouse (this domain never fires here)"
        }),
        "docker" => serde_json::json!({
            "repo_key": "sample-docker", "path": "sample/latest/manifest.json", "name": "manifest.json",
            "image_name": "sample", "tag": "latest",
            "note": "a test delivery from Gatehouse (this domain never fires here)"
        }),
        "build" => serde_json::json!({
            "build_name": "sample_build_name", "build_number": "1",
            "note": "a test delivery from Gatehouse (this domain never fires here)"
        }),
        d if FOREIGN_DOMAINS.iter().any(|(f, _)| *f == d) => serde_json::json!({
            "release_bundle_name": "sample", "release_bundle_version": "1.0.0",
            "note": "a test delivery from Gatehouse (this domain never fires here)"
        }),
        // Gatehouse's own domains: the shape a real event's `data` has (rendered by the
        // same views), so that a template tried here fills as it will (`{{.data.username}}`
        // rendered as nothing in the test, and was filled in real deliveries).
        own => {
            let mut data = own_sample(own);
            if let Some(o) = data.as_object_mut() {
                o.insert("note".into(), "a test delivery from Gatehouse".into());
            }
            data
        }
    }
}

/// A sample entity of one of Gatehouse's own domains, as its events' `data` shows one.
fn own_sample(domain: &str) -> Value {
    use gatehouse_schemas as s;
    use serde_json::json;
    match domain {
        "user" => json!({
            "username": "sample-user", "email": "sample-user@example.com",
            "groups": ["sample-group"], "realm": "internal", "status": "enabled",
            "admin": false, "profile_updatable": true, "internal_password_disabled": false,
            "disable_ui_access": false, "password_expired": false,
        }),
        "group" => json!({
            "name": "sample-group", "description": "a sample group", "auto_join": false,
            "admin_privileges": false, "realm": "internal", "realm_attributes": null,
            "external_id": null, "members": ["sample-user"],
        }),
        "token" => json!({
            "token_id": "sample-token-id", "subject": "sample-service/users/sample-user",
            "issued_at": 0, "issuer": "sample-service", "refreshable": false,
            "scope": "applied-permissions/user", "description": "a sample token",
        }),
        "permission" => crate::views::permission(&s::PermissionTarget {
            name: "sample-permission".into(),
            repo: Some(s::PermissionSection {
                repositories: vec!["sample-repo".into()],
                include_patterns: vec!["**".into()],
                users: [("sample-user".to_string(), vec!["read".to_string()])]
                    .into_iter()
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        "entitlement" => crate::views::entitlement(&s::Entitlement {
            id: "sample-entitlement".into(),
            org: "sample-org".into(),
            repo: "sample-repo".into(),
            access: "r".into(),
            access_keys: vec!["sample-key".into()],
            ..Default::default()
        }),
        "access_key" => crate::views::access_key(&s::AccessKey {
            org: "sample-org".into(),
            id: "sample-key".into(),
            ..Default::default()
        }),
        "project" => crate::views::project(&s::Project {
            project_key: "sample".into(),
            display_name: "Sample project".into(),
            ..Default::default()
        }),
        "federation" => crate::views::federation_target(&s::FederationTarget {
            name: "sample-peer".into(),
            url: "https://peer.example.com/access".into(),
            entities: vec!["users".into(), "groups".into()],
            active: true,
            ..Default::default()
        }),
        _ => json!({"name": "sample"}),
    }
}

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
    render(template, data, secrets, json_escaped)
}

/// [`render_template`] for a header's value: the values as they are, not escaped as in
/// a JSON string (a secret `p\q"r` was sent as `p\\q\"r`, the wrong credentials). A
/// value HTTP cannot carry (a line break) is refused when the request is sent.
pub fn render_header(template: &str, data: &Value, secrets: &[(String, String)]) -> String {
    render(template, data, secrets, str::to_string)
}

fn render(
    template: &str,
    data: &Value,
    secrets: &[(String, String)],
    escape: fn(&str) -> String,
) -> String {
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
                .map(|(_, v)| escape(v))
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
            escape(&text)
        } else {
            String::new()
        };
        out.push_str(&value);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

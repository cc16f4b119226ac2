//! SCIM 2.0 (RFC 7643 / RFC 7644): the schemas Gatehouse serves, checking and
//! normalising resources against them, filters (`filter.rs`) and PATCH (`patch.rs`).
//! The REST endpoints are in `http/scim.rs`.
//!
//! `rfc7643-schemas.json` is the complete core User, core Group and Enterprise User
//! schema of RFC 7643 §8.7.1 (as shipped by the Apache-2.0 `scim2-server` project).
//!
//! SCIM and the v2 API are two views of the same users and groups. What only SCIM
//! knows (name parts, typed e-mails, addresses, the enterprise extension, …) is kept as
//! one JSON document per user or group, written by `UserScimSaved` / `GroupScimSaved`
//! events (a user created over SCIM has it in its `UserCreated`); what the domain knows (the user name, `active`, the primary e-mail, group
//! membership) comes from the domain's own fields.

pub mod common_user;
pub mod filter;
pub mod index;
pub mod patch;
pub mod render_cache;

use serde_json::{Map, Value};
use std::sync::OnceLock;

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const SEARCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// The schema documents, with `meta` as the RFC shows them.
pub fn schemas() -> &'static Vec<Value> {
    static SCHEMAS: OnceLock<Vec<Value>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        serde_json::from_str(include_str!("rfc7643-schemas.json"))
            .expect("the embedded SCIM schemas are valid JSON")
    })
}

pub fn schema(id: &str) -> Option<&'static Value> {
    schemas()
        .iter()
        .find(|s| s["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(id)))
}

/// The two resource types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
}

impl Kind {
    pub fn core(self) -> &'static str {
        match self {
            Kind::User => USER_SCHEMA,
            Kind::Group => GROUP_SCHEMA,
        }
    }

    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Kind::User => &[ENTERPRISE_SCHEMA],
            Kind::Group => &[],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Group => "Group",
        }
    }

    pub fn endpoint(self) -> &'static str {
        match self {
            Kind::User => "Users",
            Kind::Group => "Groups",
        }
    }
}

/// An attribute's definition (a schema's `attributes` entry).
pub type Attr = Value;

/// `externalId` is common to every resource (RFC 7643 §3.1), not part of a schema.
fn external_id_attr() -> &'static Value {
    static A: OnceLock<Value> = OnceLock::new();
    A.get_or_init(|| {
        serde_json::json!({"name": "externalId", "type": "string", "multiValued": false,
            "required": false, "caseExact": true, "mutability": "readWrite",
            "returned": "default", "uniqueness": "none"})
    })
}

/// An attribute definition read once from its schema document: what [`normalize`] asks
/// of every attribute of every write (`Value` lookups by key for each field of each
/// definition, again for every request, were most of what normalising a SCIM create
/// cost).
struct Def {
    name: &'static str,
    json: &'static Value,
    ty: &'static str,
    multi: bool,
    read_only: bool,
    subs: Vec<Def>,
}

impl Def {
    fn of(json: &'static Value) -> Def {
        Def {
            name: json["name"].as_str().unwrap_or(""),
            json,
            ty: json["type"].as_str().unwrap_or("string"),
            multi: json["multiValued"].as_bool().unwrap_or(false),
            read_only: json["mutability"] == "readOnly",
            subs: json["subAttributes"]
                .as_array()
                .map(|a| a.iter().map(Def::of).collect())
                .unwrap_or_default(),
        }
    }

    fn sub(&self, name: &str) -> Option<&Def> {
        find_def(&self.subs, name)
    }
}

fn find_def<'a>(defs: &'a [Def], name: &str) -> Option<&'a Def> {
    defs.iter().find(|d| d.name.eq_ignore_ascii_case(name))
}

fn external_id_def() -> &'static Def {
    static D: OnceLock<Def> = OnceLock::new();
    D.get_or_init(|| Def::of(external_id_attr()))
}

/// The top-level attribute definitions of a schema (empty for an unknown one).
fn defs_of(schema_id: &str) -> &'static [Def] {
    static DEFS: OnceLock<Vec<(&'static str, Vec<Def>)>> = OnceLock::new();
    DEFS.get_or_init(|| {
        schemas()
            .iter()
            .map(|s| {
                let attrs = s["attributes"]
                    .as_array()
                    .map(|a| a.iter().map(Def::of).collect())
                    .unwrap_or_default();
                (s["id"].as_str().unwrap_or(""), attrs)
            })
            .collect()
    })
    .iter()
    .find(|(id, _)| id.eq_ignore_ascii_case(schema_id))
    .map(|(_, d)| d.as_slice())
    .unwrap_or(&[])
}

fn find_attr<'a>(attrs: &'a [Value], name: &str) -> Option<&'a Value> {
    attrs.iter().find(|a| {
        a["name"]
            .as_str()
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
    })
}

fn attribute_def(kind: Kind, urn: Option<&str>, name: &str) -> Option<&'static Def> {
    match urn {
        Some(u) if !u.eq_ignore_ascii_case(kind.core()) => {
            let ext = kind
                .extensions()
                .iter()
                .find(|e| e.eq_ignore_ascii_case(u))?;
            find_def(defs_of(ext), name)
        }
        _ => {
            if name.eq_ignore_ascii_case("externalId") {
                return Some(external_id_def());
            }
            find_def(defs_of(kind.core()), name)
        }
    }
}

/// The definition of a top-level attribute of `kind` (in the core schema, or `urn`'s).
pub fn attribute(kind: Kind, urn: Option<&str>, name: &str) -> Option<&'static Value> {
    attribute_def(kind, urn, name).map(|d| d.json)
}

pub fn sub_attribute<'a>(attr: &'a Value, name: &str) -> Option<&'a Value> {
    find_attr(attr["subAttributes"].as_array()?, name)
}

/// The extension URN a key names, if it is one of `kind`'s.
pub fn extension(kind: Kind, key: &str) -> Option<&'static str> {
    kind.extensions()
        .iter()
        .find(|e| e.eq_ignore_ascii_case(key))
        .copied()
}

/// Is a path one `kind` knows (for filters and `attributes=`)? Common attributes
/// (`id`, `meta.*`, `schemas`, `externalId`) count.
pub fn known_path(kind: Kind, urn: Option<&str>, attr: &str, sub: Option<&str>) -> bool {
    if urn.is_none() {
        let a = attr.to_ascii_lowercase();
        if a == "id" || a == "schemas" || a == "externalid" {
            return sub.is_none();
        }
        if a == "meta" {
            return sub.is_none_or(|s| {
                [
                    "resourcetype",
                    "created",
                    "lastmodified",
                    "location",
                    "version",
                ]
                .contains(&s.to_ascii_lowercase().as_str())
            });
        }
    }
    if urn.is_some_and(|u| extension(kind, u).is_some())
        && sub.is_none()
        && attribute(kind, urn, attr).is_none()
    {
        return false;
    }
    match attribute(kind, urn, attr) {
        None => false,
        Some(a) => sub.is_none_or(|s| sub_attribute(a, s).is_some()),
    }
}

/// A value that does not fit the schema (400, `invalidValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

/// Where a value is, for an error message: written out only when there is an error
/// (a `format!` per attribute of every write showed in the profile).
#[derive(Clone, Copy)]
enum At<'a> {
    Name(&'a str),
    Item(&'a At<'a>, usize),
    Sub(&'a At<'a>, &'a str),
}

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            At::Name(n) => f.write_str(n),
            At::Item(p, i) => write!(f, "{p}[{i}]"),
            At::Sub(p, n) => write!(f, "{p}.{n}"),
        }
    }
}

fn check_simple(path: At, def: &Def, v: &Value) -> Result<Value, Invalid> {
    let ty = def.ty;
    let ok = match ty {
        "string" | "reference" | "binary" | "dateTime" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "decimal" => v.is_number(),
        _ => true,
    };
    if !ok {
        // Some provisioning clients send booleans as strings ("True").
        if ty == "boolean" {
            if let Some(b) = v.as_str().and_then(|s| {
                if s.eq_ignore_ascii_case("true") {
                    Some(true)
                } else if s.eq_ignore_ascii_case("false") {
                    Some(false)
                } else {
                    None
                }
            }) {
                return Ok(Value::Bool(b));
            }
        }
        return Err(Invalid(format!("`{path}` must be a {ty}")));
    }
    if let Some(s) = v.as_str() {
        if s.len() > 65_536 {
            return Err(Invalid(format!("`{path}` is longer than 65536 bytes")));
        }
    }
    Ok(v.clone())
}

/// Check one attribute's value against its definition and give it its canonical shape
/// (canonical sub-attribute names, a single value of a multi-valued attribute wrapped in
/// a list, nulls dropped). `None` means "absent".
fn normalize_value(path: At, def: &Def, v: &Value) -> Result<Option<Value>, Invalid> {
    if v.is_null() {
        return Ok(None);
    }
    if def.multi {
        let items: &[Value] = match v {
            Value::Array(a) => a,
            other => std::slice::from_ref(other),
        };
        let mut out = Vec::with_capacity(items.len());
        let mut primaries = 0;
        for (i, item) in items.iter().enumerate() {
            if let Some(x) = normalize_single(At::Item(&path, i), def, item)? {
                if x.get("primary") == Some(&Value::Bool(true)) {
                    primaries += 1;
                }
                out.push(x);
            }
        }
        if primaries > 1 {
            return Err(Invalid(format!(
                "`{path}`: at most one value may be primary"
            )));
        }
        if out.is_empty() {
            return Ok(None);
        }
        return Ok(Some(Value::Array(out)));
    }
    if v.is_array() {
        return Err(Invalid(format!("`{path}` is single-valued")));
    }
    normalize_single(path, def, v)
}

fn normalize_single(path: At, def: &Def, v: &Value) -> Result<Option<Value>, Invalid> {
    if v.is_null() {
        return Ok(None);
    }
    if def.ty == "complex" {
        // Entra ID sends the enterprise `manager` as the manager's id alone (a known
        // deviation of its SCIM client): taken as `{"value": id}`, or every update that
        // touched the manager failed, with the other operations of its request.
        if let (Some(id), "manager") = (v.as_str(), def.name) {
            return normalize_single(path, def, &serde_json::json!({ "value": id }));
        }
        let Some(obj) = v.as_object() else {
            return Err(Invalid(format!("`{path}` must be an object")));
        };
        let mut out = Map::new();
        let mut seen = std::collections::HashSet::new();
        for (k, sv) in obj {
            let sub = def
                .sub(k)
                .ok_or_else(|| Invalid(format!("`{path}` has no sub-attribute `{k}`")))?;
            let name = if sub.name.is_empty() { k } else { sub.name };
            once(&mut seen, name, k)?;
            // A read-only sub-attribute the server publishes as such (`manager.
            // displayName`) is not the client's to write: ignored, as read-only
            // attributes are at the top (RFC 7643 §2.2).
            if sub.read_only {
                continue;
            }
            if let Some(x) = normalize_value(At::Sub(&path, name), sub, sv)? {
                out.insert(name.to_string(), x);
            }
        }
        if out.is_empty() {
            return Ok(None);
        }
        return Ok(Some(Value::Object(out)));
    }
    check_simple(path, def, v).map(Some)
}

/// Normalise a resource as a client sent it: canonical attribute names, values checked
/// against the schema, read-only attributes (`id`, `meta`, `groups`) dropped, unknown
/// attributes refused. `schemas` is kept as sent.
pub fn normalize(kind: Kind, input: &Value) -> Result<Map<String, Value>, Invalid> {
    let Some(obj) = input.as_object() else {
        return Err(Invalid("the resource must be a JSON object".into()));
    };
    let mut out = Map::new();
    let mut seen = std::collections::HashSet::new();
    for (k, v) in obj {
        if k.eq_ignore_ascii_case("schemas")
            || k.eq_ignore_ascii_case("id")
            || k.eq_ignore_ascii_case("meta")
        {
            continue;
        }
        if let Some(ext) = extension(kind, k) {
            once(&mut seen, ext, k)?;
            if v.is_null() {
                continue;
            }
            let Some(ext_obj) = v.as_object() else {
                return Err(Invalid(format!("`{ext}` must be an object")));
            };
            let mut e = Map::new();
            let mut seen_here = std::collections::HashSet::new();
            for (ek, ev) in ext_obj {
                if ek.eq_ignore_ascii_case("schemas") {
                    continue;
                }
                let def = attribute_def(kind, Some(ext), ek)
                    .ok_or_else(|| Invalid(format!("unknown attribute `{ext}:{ek}`")))?;
                let name = if def.name.is_empty() { ek } else { def.name };
                once(&mut seen_here, name, ek)?;
                if def.read_only {
                    continue;
                }
                if let Some(x) = normalize_value(At::Name(name), def, ev)? {
                    e.insert(name.to_string(), x);
                }
            }
            if !e.is_empty() {
                out.insert(ext.to_string(), Value::Object(e));
            }
            continue;
        }
        // `urn:…:core:2.0:User:userName` written out in full.
        let (urn, attr) = match k.rfind(':') {
            Some(i) if k.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) => {
                (Some(&k[..i]), &k[i + 1..])
            }
            _ => (None, k.as_str()),
        };
        if urn.is_some_and(|u| !u.eq_ignore_ascii_case(kind.core())) {
            return Err(Invalid(format!("unknown attribute `{k}`")));
        }
        let def = attribute_def(kind, None, attr)
            .ok_or_else(|| Invalid(format!("unknown attribute `{k}`")))?;
        if def.read_only {
            continue;
        }
        let name = if def.name.is_empty() { attr } else { def.name };
        once(&mut seen, name, k)?;
        if let Some(x) = normalize_value(At::Name(name), def, v)? {
            out.insert(name.to_string(), x);
        }
    }
    Ok(out)
}

/// Attribute names are case-insensitive and may be written with their schema's URN (RFC
/// 7643 §2.1): two spellings of one attribute are one attribute given twice — refused,
/// as a key given twice is (one of them was kept by the order of the map, silently).
fn once(
    seen: &mut std::collections::HashSet<String>,
    name: &str,
    as_sent: &str,
) -> Result<(), Invalid> {
    if seen.insert(name.to_ascii_lowercase()) {
        Ok(())
    } else {
        Err(Invalid(format!(
            "attribute `{name}` is given more than once (again as `{as_sent}`)"
        )))
    }
}

/// Keep only what `attributes` asks for (plus what is always returned), or drop what
/// `excludedAttributes` names. Paths are `attr`, `attr.sub` or URN-qualified.
/// Whether a projection keeps anything of the top-level attribute `attr` (a multi-valued
/// complex one): `project` itself applied to a document holding only that attribute, so
/// that the answer is `project`'s own.
pub fn keeps(kind: Kind, attr: &str, attributes: &[String], excluded: &[String]) -> bool {
    if attributes.is_empty() && excluded.is_empty() {
        return true;
    }
    let mut probe = Value::Object(Map::from_iter([(
        attr.to_string(),
        serde_json::json!([{"value": "v", "display": "d", "$ref": "r", "type": "User"}]),
    )]));
    project(kind, &mut probe, attributes, excluded);
    probe.get(attr).is_some()
}

pub fn project(kind: Kind, resource: &mut Value, attributes: &[String], excluded: &[String]) {
    let Some(obj) = resource.as_object_mut() else {
        return;
    };
    let split = |p: &str| -> (Option<String>, String, Option<String>) {
        if let Some(ext) = extension(kind, p) {
            return (Some(ext.to_string()), String::new(), None);
        }
        match filter::parse_attr_path(p) {
            Ok(a) => (a.urn, a.attr, a.sub),
            Err(_) => (None, p.to_string(), None),
        }
    };
    let always = ["id", "schemas", "username"];
    if !attributes.is_empty() {
        let wanted: Vec<_> = attributes.iter().map(|p| split(p)).collect();
        let keys: Vec<String> = obj.keys().cloned().collect();
        for k in keys {
            let lower = k.to_ascii_lowercase();
            if always.contains(&lower.as_str()) && !(lower == "username" && kind == Kind::Group) {
                continue;
            }
            if let Some(ext) = extension(kind, &k) {
                // Keep the extension's wanted attributes only.
                let whole = wanted.iter().any(|(u, a, _)| {
                    u.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(ext)) && a.is_empty()
                });
                if whole {
                    continue;
                }
                let names: Vec<&String> = wanted
                    .iter()
                    .filter(|(u, a, _)| {
                        u.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(ext)) && !a.is_empty()
                    })
                    .map(|(_, a, _)| a)
                    .collect();
                if let Some(Value::Object(e)) = obj.get_mut(&k) {
                    e.retain(|ek, _| names.iter().any(|n| n.eq_ignore_ascii_case(ek)));
                    if e.is_empty() {
                        obj.remove(&k);
                    }
                }
                continue;
            }
            let subs: Vec<&Option<String>> = wanted
                .iter()
                .filter(|(u, a, _)| {
                    u.as_deref()
                        .is_none_or(|u| u.eq_ignore_ascii_case(kind.core()))
                        && a.eq_ignore_ascii_case(&k)
                })
                .map(|(_, _, s)| s)
                .collect();
            if subs.is_empty() {
                obj.remove(&k);
            } else if subs.iter().all(|s| s.is_some()) {
                let keep: Vec<&str> = subs.iter().filter_map(|s| s.as_deref()).collect();
                let retain = |v: &mut Value| {
                    if let Value::Object(o) = v {
                        o.retain(|sk, _| keep.iter().any(|n| n.eq_ignore_ascii_case(sk)));
                    }
                };
                match obj.get_mut(&k) {
                    Some(Value::Array(items)) => items.iter_mut().for_each(retain),
                    Some(v) => retain(v),
                    None => {}
                }
            }
        }
    }
    for p in excluded {
        let (urn, attr, sub) = split(p);
        let lower = attr.to_ascii_lowercase();
        if urn.is_none() && always.contains(&lower.as_str()) {
            continue;
        }
        match (urn.as_deref().and_then(|u| extension(kind, u)), sub) {
            (Some(ext), _) if attr.is_empty() => {
                obj.remove(ext);
            }
            (Some(ext), _) => {
                if let Some(Value::Object(e)) = obj.get_mut(ext) {
                    let key = e.keys().find(|k| k.eq_ignore_ascii_case(&attr)).cloned();
                    if let Some(key) = key {
                        e.remove(&key);
                    }
                }
            }
            (None, None) => {
                let key = obj.keys().find(|k| k.eq_ignore_ascii_case(&attr)).cloned();
                if let Some(key) = key {
                    obj.remove(&key);
                }
            }
            (None, Some(s)) => {
                let key = obj.keys().find(|k| k.eq_ignore_ascii_case(&attr)).cloned();
                let strip = |v: &mut Value| {
                    if let Value::Object(o) = v {
                        let sk = o.keys().find(|k| k.eq_ignore_ascii_case(&s)).cloned();
                        if let Some(sk) = sk {
                            o.remove(&sk);
                        }
                    }
                };
                match key.and_then(|k| obj.get_mut(&k)) {
                    Some(Value::Array(items)) => items.iter_mut().for_each(strip),
                    Some(v) => strip(v),
                    None => {}
                }
            }
        }
    }
}

/// Of a multi-valued attribute's values, the one the domain keeps (its e-mail): the
/// primary one, else the first.
pub fn primary_or_first<T>(values: &[T], primary: impl Fn(&T) -> bool) -> Option<&T> {
    values.iter().find(|v| primary(v)).or(values.first())
}

/// RFC 3339 (UTC, seconds) for a unix time in milliseconds.
pub fn rfc3339(ms: u64) -> String {
    crate::timefmt::format(ms, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_schemas_are_complete() {
        let user = schema(USER_SCHEMA).unwrap();
        let names: Vec<&str> = user["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        for n in [
            "userName",
            "name",
            "emails",
            "addresses",
            "x509Certificates",
            "groups",
            "password",
        ] {
            assert!(names.contains(&n), "{n}");
        }
        assert!(schema(ENTERPRISE_SCHEMA).is_some());
        assert!(schema(GROUP_SCHEMA).is_some());
    }

    #[test]
    fn normalize_names_types_and_read_only() {
        let n = normalize(
            Kind::User,
            &json!({"USERNAME": "a", "Name": {"GivenName": "B"}, "emails": {"value": "a@b"},
                    "groups": [{"value": "x"}], "id": "zzz", "active": "True",
                    ENTERPRISE_SCHEMA: {"employeenumber": "7"}}),
        )
        .unwrap();
        assert_eq!(n["userName"], "a");
        assert_eq!(n["name"]["givenName"], "B");
        assert_eq!(n["emails"], json!([{"value": "a@b"}]));
        assert_eq!(n["active"], true);
        assert!(n.get("groups").is_none() && n.get("id").is_none());
        assert_eq!(n[ENTERPRISE_SCHEMA]["employeeNumber"], "7");
        for bad in [
            json!({"colour": 1}),
            json!({"active": 3}),
            json!({"name": "x"}),
            json!({"emails": [{"value": "a", "primary": true}, {"value": "b", "primary": true}]}),
            json!({"userName": ["a"]}),
            json!({"name": {"nick": "x"}}),
        ] {
            assert!(normalize(Kind::User, &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_763_000_000_000), "2025-11-13T02:13:20Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    }
}

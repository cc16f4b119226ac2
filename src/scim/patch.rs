//! SCIM PATCH (RFC 7644 §3.5.2): `add`, `replace` and `remove` operations applied to a
//! resource as the API renders it. The result is then checked and stored like a PUT, so
//! PATCH can never store what PUT would refuse.

use super::filter::{get_ci, parse_patch_path, Filter};
use super::{attribute, extension, sub_attribute, Kind, PATCH_SCHEMA};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchError {
    /// `invalidSyntax`
    Syntax(String),
    /// `invalidPath`
    Path(String),
    /// `noTarget`
    NoTarget(String),
    /// `invalidValue`
    Value(String),
    /// `mutability`
    Mutability(String),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Replace,
    Remove,
}

/// The most operations one request may carry.
pub const MAX_OPERATIONS: usize = 1000;

pub fn apply(kind: Kind, doc: &mut Value, body: &Value) -> Result<(), PatchError> {
    let Some(obj) = body.as_object() else {
        return Err(PatchError::Syntax(
            "the body must be a PatchOp object".into(),
        ));
    };
    if let Some(schemas) = get_ci(body, "schemas") {
        let ok = schemas.as_array().is_some_and(|a| {
            a.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(PATCH_SCHEMA))
            })
        });
        if !ok {
            return Err(PatchError::Syntax(format!(
                "`schemas` must contain {PATCH_SCHEMA}"
            )));
        }
    }
    let ops = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Operations"))
        .and_then(|(_, v)| v.as_array())
        .ok_or_else(|| PatchError::Syntax("`Operations` (a list) is required".into()))?;
    if ops.len() > MAX_OPERATIONS {
        return Err(PatchError::Syntax(format!(
            "at most {MAX_OPERATIONS} operations"
        )));
    }
    for (i, op) in ops.iter().enumerate() {
        let name = get_ci(op, "op")
            .and_then(Value::as_str)
            .ok_or_else(|| PatchError::Syntax(format!("Operations[{i}].op is required")))?;
        let op_kind = match name.to_ascii_lowercase().as_str() {
            "add" => Op::Add,
            "replace" => Op::Replace,
            "remove" => Op::Remove,
            other => {
                return Err(PatchError::Syntax(format!(
                    "Operations[{i}].op `{other}` is not add, replace or remove"
                )))
            }
        };
        let path = get_ci(op, "path")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty());
        let value = get_ci(op, "value");
        match (path, op_kind) {
            (None, Op::Remove) => return Err(PatchError::NoTarget("remove needs a `path`".into())),
            (None, _) => {
                let value = value.ok_or_else(|| {
                    PatchError::Value(format!("Operations[{i}].value is required"))
                })?;
                let Some(attrs) = value.as_object() else {
                    return Err(PatchError::Value(
                        "without a path, the value must be an object of attributes".into(),
                    ));
                };
                for (k, v) in attrs {
                    if let Some(ext) = extension(kind, k) {
                        let Some(ext_attrs) = v.as_object() else {
                            return Err(PatchError::Value(format!("`{ext}` must be an object")));
                        };
                        for (ek, ev) in ext_attrs {
                            if ek.eq_ignore_ascii_case("schemas") {
                                continue;
                            }
                            one(kind, doc, &format!("{ext}:{ek}"), op_kind, Some(ev))?;
                        }
                    } else if k.eq_ignore_ascii_case("schemas")
                        || k.eq_ignore_ascii_case("id")
                        || k.eq_ignore_ascii_case("meta")
                    {
                        continue;
                    } else {
                        one(kind, doc, k, op_kind, Some(v))?;
                    }
                }
            }
            (Some(p), _) => {
                if op_kind != Op::Remove && value.is_none() {
                    return Err(PatchError::Value(format!(
                        "Operations[{i}].value is required"
                    )));
                }
                one(kind, doc, p, op_kind, value)?;
            }
        }
    }
    Ok(())
}

fn key_ci(map: &Map<String, Value>, name: &str) -> Option<String> {
    map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

/// The object that holds a top-level attribute: the resource, or an extension's object.
fn holder<'a>(
    doc: &'a mut Value,
    ext: Option<&str>,
    create: bool,
) -> Option<&'a mut Map<String, Value>> {
    let root = doc.as_object_mut()?;
    match ext {
        None => Some(root),
        Some(e) => {
            let key = key_ci(root, e).unwrap_or_else(|| e.to_string());
            if !root.contains_key(&key) {
                if !create {
                    return None;
                }
                root.insert(key.clone(), Value::Object(Map::new()));
            }
            root.get_mut(&key)?.as_object_mut()
        }
    }
}

fn merge_into(target: &mut Value, v: &Value) {
    match (target.as_object_mut(), v.as_object()) {
        (Some(t), Some(o)) => {
            for (k, x) in o {
                let key = key_ci(t, k).unwrap_or_else(|| k.clone());
                t.insert(key, x.clone());
            }
        }
        _ => *target = v.clone(),
    }
}

/// The element a `sub eq "x"` filter describes, for adding where nothing matched.
fn element_from_filter(f: &Filter) -> Option<Map<String, Value>> {
    match f {
        Filter::Compare(p, super::filter::Op::Eq, v) if p.sub.is_none() && p.urn.is_none() => {
            let mut m = Map::new();
            m.insert(p.attr.clone(), v.clone());
            Some(m)
        }
        Filter::And(a, b) => {
            let mut m = element_from_filter(a)?;
            m.extend(element_from_filter(b)?);
            Some(m)
        }
        _ => None,
    }
}

fn one(
    kind: Kind,
    doc: &mut Value,
    path: &str,
    op: Op,
    value: Option<&Value>,
) -> Result<(), PatchError> {
    // A bare extension URN names the extension's whole object.
    if let Some(ext) = extension(kind, path) {
        let root = doc
            .as_object_mut()
            .ok_or_else(|| PatchError::Syntax("not an object".into()))?;
        let key = key_ci(root, ext).unwrap_or_else(|| ext.to_string());
        match op {
            Op::Remove => {
                root.remove(&key);
            }
            _ => {
                let v = value.unwrap_or(&Value::Null);
                if !v.is_object() {
                    return Err(PatchError::Value(format!("`{ext}` must be an object")));
                }
                let target = root.entry(key).or_insert_with(|| Value::Object(Map::new()));
                if op == Op::Add || op == Op::Replace {
                    merge_into(target, v);
                }
            }
        }
        return Ok(());
    }
    let p = parse_patch_path(path).map_err(|e| PatchError::Path(format!("`{path}`: {e}")))?;
    let ext = match &p.attr.urn {
        None => None,
        Some(u) if u.eq_ignore_ascii_case(kind.core()) => None,
        Some(u) => Some(
            extension(kind, u).ok_or_else(|| PatchError::Path(format!("unknown schema `{u}`")))?,
        ),
    };
    let lower = p.attr.attr.to_ascii_lowercase();
    if ext.is_none() && matches!(lower.as_str(), "id" | "meta" | "schemas") {
        return Err(PatchError::Mutability(format!(
            "`{}` cannot be changed",
            p.attr.attr
        )));
    }
    let def = attribute(kind, ext, &p.attr.attr)
        .ok_or_else(|| PatchError::Path(format!("unknown attribute `{path}`")))?;
    if def["mutability"] == "readOnly" {
        return Err(PatchError::Mutability(format!(
            "`{}` is read-only",
            p.attr.attr
        )));
    }
    let sub = match p.attr.sub.clone().or(p.sub.clone()) {
        None => None,
        Some(s) => Some(
            sub_attribute(def, &s)
                .and_then(|d| d["name"].as_str())
                .map(str::to_string)
                .ok_or_else(|| {
                    PatchError::Path(format!("`{}` has no sub-attribute `{s}`", p.attr.attr))
                })?,
        ),
    };
    // RFC 7643 §2.2 "immutable": set when the value is created, never updated — a
    // group member's `value`, `$ref` and `type` (a replaced `value` made the member
    // another user under the first one's `display`). The member itself is removed and
    // another added instead.
    if let Some(s) = &sub {
        if sub_attribute(def, s).is_some_and(|d| d["mutability"] == "immutable") {
            return Err(immutable_error(&p.attr.attr, s));
        }
    }
    if op == Op::Remove && def["required"] == true && sub.is_none() && p.filter.is_none() {
        return Err(PatchError::Mutability(format!(
            "`{}` is required",
            p.attr.attr
        )));
    }
    let multi = def["multiValued"].as_bool().unwrap_or(false);
    let name = def["name"].as_str().unwrap_or(&p.attr.attr).to_string();
    let map = match holder(doc, ext, op != Op::Remove) {
        Some(m) => m,
        None => return Ok(()),
    };
    let key = key_ci(map, &name).unwrap_or(name.clone());
    let value = value.cloned().unwrap_or(Value::Null);

    if let Some(filter) = &p.filter {
        if !multi {
            return Err(PatchError::Path(format!("`{name}` is not multi-valued")));
        }
        let items = match map.get_mut(&key) {
            Some(Value::Array(a)) => a,
            _ => {
                if op == Op::Remove {
                    return Ok(());
                }
                map.insert(key.clone(), Value::Array(vec![]));
                match map.get_mut(&key) {
                    Some(Value::Array(a)) => a,
                    _ => unreachable!("just inserted an array"),
                }
            }
        };
        let core = kind.core();
        let hits: Vec<usize> = (0..items.len())
            .filter(|&i| filter.matches(&items[i], core))
            .collect();
        match op {
            Op::Remove => {
                match &sub {
                    Some(s) => {
                        for &i in &hits {
                            if let Some(o) = items[i].as_object_mut() {
                                if let Some(k) = key_ci(o, s) {
                                    o.remove(&k);
                                }
                            }
                        }
                        // An entry whose `value` is removed (Entra removes an e-mail as
                        // `emails[type eq "work"].value`) is gone: a value-less e-mail
                        // stayed, `type` and `primary` and nothing to send to.
                        if s.eq_ignore_ascii_case("value") {
                            items.retain(|item| {
                                item.as_object()
                                    .is_none_or(|o| key_ci(o, "value").is_some())
                            });
                        }
                    }
                    None => {
                        // `hits` is ascending: walk it alongside (a large group's
                        // `members[…]` remove looked each index up in it).
                        let mut i = 0;
                        let mut next = hits.iter().peekable();
                        items.retain(|_| {
                            let hit = next.next_if_eq(&&i).is_some();
                            i += 1;
                            !hit
                        });
                    }
                }
                if items.is_empty() {
                    map.remove(&key);
                }
            }
            Op::Replace if hits.is_empty() => {
                // RFC 7644 §3.5.2.3: a value filter that selects nothing is a failure for
                // replace (it created a value, as add does).
                return Err(PatchError::NoTarget(format!(
                    "no value of `{name}` matches `{path}`"
                )));
            }
            Op::Add | Op::Replace => {
                if hits.is_empty() {
                    // `add` of `emails[type eq "work"].value` with no work e-mail yet: add one.
                    let mut element = element_from_filter(filter).ok_or_else(|| {
                        PatchError::NoTarget(format!("no value of `{name}` matches `{path}`"))
                    })?;
                    match &sub {
                        Some(s) => {
                            element.insert(s.clone(), value);
                        }
                        None => {
                            if let Some(o) = value.as_object() {
                                element.extend(o.clone());
                            }
                        }
                    }
                    items.push(Value::Object(element));
                    return Ok(());
                }
                // RFC 7644 §3.5.2: a value made primary takes primary from the others
                // (as an added one does), so `emails[type eq "work"].primary` = true
                // is no longer refused as a second primary.
                let becomes_primary = match &sub {
                    Some(s) => s == "primary" && is_true(Some(&value)),
                    None => is_true(get_ci(&value, "primary")),
                };
                // A whole value merged in (`members[value eq "x"]` with `{"value": "y"}`)
                // may not change what is immutable in it either: that was the same
                // replacement of one member by another, by another path.
                if sub.is_none() {
                    let immutable: Vec<&str> = def["subAttributes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|d| d["mutability"] == "immutable")
                        .filter_map(|d| d["name"].as_str())
                        .collect();
                    for &i in &hits {
                        for name in &immutable {
                            if let Some(new) = get_ci(&value, name) {
                                if get_ci(&items[i], name) != Some(new) {
                                    return Err(immutable_error(&p.attr.attr, name));
                                }
                            }
                        }
                    }
                }
                for &i in &hits {
                    match &sub {
                        Some(s) => {
                            if let Some(o) = items[i].as_object_mut() {
                                let k = key_ci(o, s).unwrap_or(s.clone());
                                o.insert(k, value.clone());
                            }
                        }
                        None => merge_into(&mut items[i], &value),
                    }
                }
                if becomes_primary {
                    let mut next = hits.iter().peekable();
                    for (i, item) in items.iter_mut().enumerate() {
                        if next.next_if_eq(&&i).is_some() {
                            continue;
                        }
                        if let Some(o) = item.as_object_mut() {
                            if let Some(k) = key_ci(o, "primary") {
                                o.insert(k, Value::Bool(false));
                            }
                        }
                    }
                }
            }
        }
        return Ok(());
    }

    if let Some(s) = &sub {
        // `name.givenName`, or a sub-attribute of every value of a multi-valued one.
        match op {
            Op::Remove => match map.get_mut(&key) {
                Some(Value::Array(items)) => {
                    for item in items.iter_mut() {
                        if let Some(o) = item.as_object_mut() {
                            if let Some(k) = key_ci(o, s) {
                                o.remove(&k);
                            }
                        }
                    }
                    // Every value's `value` removed: the values are gone (as above).
                    if s.eq_ignore_ascii_case("value") {
                        items.retain(|item| {
                            item.as_object()
                                .is_none_or(|o| key_ci(o, "value").is_some())
                        });
                        if items.is_empty() {
                            map.remove(&key);
                        }
                    }
                }
                Some(Value::Object(o)) => {
                    if let Some(k) = key_ci(o, s) {
                        o.remove(&k);
                    }
                }
                _ => {}
            },
            Op::Add | Op::Replace => {
                let target = map.entry(key.clone()).or_insert_with(|| {
                    if multi {
                        Value::Array(vec![])
                    } else {
                        Value::Object(Map::new())
                    }
                });
                match target {
                    Value::Array(items) => {
                        for item in items.iter_mut() {
                            if let Some(o) = item.as_object_mut() {
                                let k = key_ci(o, s).unwrap_or(s.clone());
                                o.insert(k, value.clone());
                            }
                        }
                    }
                    Value::Object(o) => {
                        let k = key_ci(o, s).unwrap_or(s.clone());
                        o.insert(k, value);
                    }
                    other => *other = Value::Object(Map::from_iter([(s.clone(), value)])),
                }
            }
        }
        return Ok(());
    }

    match op {
        Op::Remove => {
            // `remove` of members with a value list (as some identity providers send it)
            // removes exactly those values; one value (an object, or the bare `value` of
            // one) is a list of one — it removed every member.
            let listed =
                match &value {
                    Value::Array(a) => Some(a.clone()),
                    Value::Object(_) => Some(vec![value.clone()]),
                    Value::String(_) | Value::Number(_) => Some(vec![Value::Object(
                        Map::from_iter([("value".into(), value.clone())]),
                    )]),
                    _ => None,
                };
            match (map.get_mut(&key), listed) {
                (Some(Value::Array(items)), Some(remove)) if multi => {
                    // Compared by their JSON text, in a set: a list of thousands against
                    // a group of thousands was quadratic.
                    let ids: std::collections::HashSet<String> = remove
                        .iter()
                        .filter_map(|r| get_ci(r, "value"))
                        .map(Value::to_string)
                        .collect();
                    items.retain(|i| {
                        !get_ci(i, "value").is_some_and(|v| ids.contains(&v.to_string()))
                    });
                    if items.is_empty() {
                        map.remove(&key);
                    }
                }
                _ => {
                    map.remove(&key);
                }
            }
        }
        Op::Add if multi => {
            let new: Vec<Value> = match value {
                Value::Array(a) => a,
                Value::Null => vec![],
                other => vec![other],
            };
            let items = map.entry(key).or_insert_with(|| Value::Array(vec![]));
            if !items.is_array() {
                *items = Value::Array(vec![]);
            }
            let Value::Array(items) = items else {
                unreachable!("made an array")
            };
            // Values already there are not added again (RFC 7644 §3.5.2.1: no change),
            // looked up by their JSON text in a set (serde_json's maps are ordered, so
            // equal values print alike): adding thousands of members to thousands was
            // quadratic. Looked up before a new primary takes primary from the others: a
            // primary e-mail added again demoted itself and came in twice.
            let mut present: std::collections::HashSet<String> =
                items.iter().map(Value::to_string).collect();
            let new: Vec<Value> = new
                .into_iter()
                .filter(|n| present.insert(n.to_string()))
                .collect();
            let becomes_primary = new.iter().any(|n| is_true(get_ci(n, "primary")));
            if becomes_primary {
                // A new primary value takes primary from the others (RFC 7644 §3.5.2).
                for i in items.iter_mut() {
                    if let Some(o) = i.as_object_mut() {
                        if let Some(k) = key_ci(o, "primary") {
                            o.insert(k, Value::Bool(false));
                        }
                    }
                }
            }
            items.extend(new);
        }
        Op::Add | Op::Replace => {
            if def["type"] == "complex" && !multi {
                let target = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
                if value.is_object() && target.is_object() {
                    merge_into(target, &value);
                } else {
                    *target = value;
                }
            } else {
                map.insert(key, value);
            }
        }
    }
    Ok(())
}

/// `true`, or the string `"True"` as Entra sends booleans (which the stored document
/// reads as `true`: a second primary, refused, where the first should have given way).
fn is_true(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// The refusal of a change to an immutable sub-attribute (RFC 7643 §2.2).
fn immutable_error(attr: &str, sub: &str) -> PatchError {
    let what = if attr.eq_ignore_ascii_case("members") {
        "member"
    } else {
        "value"
    };
    PatchError::Mutability(format!(
        "`{attr}.{sub}` is immutable: remove the {what} and add another"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patch(doc: &mut Value, ops: Value) -> Result<(), PatchError> {
        apply(
            Kind::User,
            doc,
            &json!({"schemas": [PATCH_SCHEMA], "Operations": ops}),
        )
    }

    fn group() -> Value {
        json!({"id": "g", "displayName": "Tour Guides", "members": [
            {"value": "2819c223", "display": "Babs Jensen"},
            {"value": "902c246b", "display": "Mandy Pepperidge"}
        ]})
    }

    fn user() -> Value {
        json!({"id": "u", "userName": "bjensen", "name": {"familyName": "Jensen"},
               "emails": [{"value": "a@example.com", "type": "work", "primary": true},
                          {"value": "b@example.com", "type": "home"}]})
    }

    /// The examples of RFC 7644 §3.5.2.1–3, in order.
    #[test]
    fn rfc_7644_patch_examples() {
        // 3.5.2.1: add a member.
        let mut g = group();
        apply(Kind::Group, &mut g, &json!({"schemas": [PATCH_SCHEMA], "Operations": [{
            "op": "add", "path": "members",
            "value": [{"display": "Babs Jensen", "$ref": "https://example.com/v2/Users/2819c223", "value": "2819c223"}]}]})).unwrap();
        assert_eq!(g["members"].as_array().unwrap().len(), 3);
        // 3.5.2.1: add without a path (emails and nickname).
        let mut u = user();
        patch(&mut u, json!([{"op": "add", "value": {"emails": [{"value": "babs@jensen.org", "type": "home"}], "nickName": "Babs"}}])).unwrap();
        assert_eq!(u["emails"].as_array().unwrap().len(), 3);
        assert_eq!(u["nickName"], "Babs");
        // 3.5.2.2: remove one member by filter.
        let mut g = group();
        apply(
            Kind::Group,
            &mut g,
            &json!({"Operations": [{"op": "remove", "path": "members[value eq \"2819c223\"]"}]}),
        )
        .unwrap();
        assert_eq!(
            g["members"],
            json!([{"value": "902c246b", "display": "Mandy Pepperidge"}])
        );
        // 3.5.2.2: remove all members.
        let mut g = group();
        apply(
            Kind::Group,
            &mut g,
            &json!({"Operations": [{"op": "remove", "path": "members"}]}),
        )
        .unwrap();
        assert!(g.get("members").is_none());
        // 3.5.2.2: remove all members, then add one (replace all members).
        let mut g = group();
        apply(
            Kind::Group,
            &mut g,
            &json!({"Operations": [
            {"op": "remove", "path": "members"},
            {"op": "add", "path": "members", "value": [{"value": "2819c223"}]}]}),
        )
        .unwrap();
        assert_eq!(g["members"], json!([{"value": "2819c223"}]));
        // 3.5.2.2: remove the values a complex filter selects.
        let mut u = user();
        patch(&mut u, json!([{"op": "remove", "path": "emails[type eq \"work\" and value ew \"example.com\"]"}])).unwrap();
        assert_eq!(
            u["emails"],
            json!([{"value": "b@example.com", "type": "home"}])
        );
        // 3.5.2.2: remove a sub-attribute of matching values.
        let mut u = user();
        patch(
            &mut u,
            json!([{"op": "remove", "path": "emails[type eq \"work\"].primary"}]),
        )
        .unwrap();
        assert!(u["emails"][0].get("primary").is_none());
        // Entra's removal of an e-mail: its `value` through a filter; the entry goes.
        let mut u = user();
        patch(
            &mut u,
            json!([{"op": "remove", "path": "emails[type eq \"work\"].value"}]),
        )
        .unwrap();
        assert_eq!(
            u["emails"],
            json!([{"value": "b@example.com", "type": "home"}])
        );
        patch(&mut u, json!([{"op": "remove", "path": "emails.value"}])).unwrap();
        assert!(u.get("emails").is_none(), "{u}");
        // A member's `value` (and `$ref`, `type`) is immutable: never replaced in place.
        for path in [
            "members[value eq \"x\"].value",
            "members.value",
            "members[value eq \"x\"].type",
        ] {
            let before = g.clone();
            let e = apply(
                Kind::Group,
                &mut g,
                &json!({"Operations": [{"op": "replace", "path": path, "value": "y"}]}),
            );
            assert!(matches!(e, Err(PatchError::Mutability(_))), "{path}: {e:?}");
            assert_eq!(g, before, "{path}");
        }
        // Nor by merging a whole value in through a filter (replace or add); the same
        // value, or a display, merges.
        let member = g["members"][0]["value"].as_str().unwrap().to_string();
        let path = format!("members[value eq \"{member}\"]");
        for op in ["replace", "add"] {
            let before = g.clone();
            let e = apply(
                Kind::Group,
                &mut g,
                &json!({"Operations": [{"op": op, "path": path, "value": {"value": "someone-else"}}]}),
            );
            assert!(matches!(e, Err(PatchError::Mutability(_))), "{op}: {e:?}");
            assert_eq!(g, before, "{op}");
        }
        apply(
            Kind::Group,
            &mut g,
            &json!({"Operations": [{"op": "replace", "path": path, "value": {"value": member, "display": "Shown"}}]}),
        )
        .unwrap();
        assert_eq!(g["members"][0]["display"], "Shown");
        // 3.5.2.3: replace all members.
        let mut g = group();
        apply(Kind::Group, &mut g, &json!({"Operations": [{"op": "replace", "path": "members", "value": [{"value": "x"}]}]})).unwrap();
        assert_eq!(g["members"], json!([{"value": "x"}]));
        // 3.5.2.3: replace a complex attribute of matching values.
        let mut u = user();
        patch(&mut u, json!([{"op": "replace", "path": "emails[type eq \"work\"]", "value": {"type": "work", "value": "new@example.com"}}])).unwrap();
        assert_eq!(u["emails"][0]["value"], "new@example.com");
        assert_eq!(
            u["emails"][0]["primary"], true,
            "sub-attributes not given stay"
        );
        // 3.5.2.3: replace a sub-attribute of matching values.
        let mut u = user();
        patch(&mut u, json!([{"op": "replace", "path": "emails[type eq \"home\"].value", "value": "h@example.com"}])).unwrap();
        assert_eq!(u["emails"][1]["value"], "h@example.com");
        // 3.5.2.3: replace without a path.
        let mut u = user();
        patch(&mut u, json!([{"op": "replace", "value": {"name": {"givenName": "Barbara"}, "userName": "bj2"}}])).unwrap();
        assert_eq!(u["userName"], "bj2");
        assert_eq!(
            u["name"],
            json!({"familyName": "Jensen", "givenName": "Barbara"})
        );
    }

    #[test]
    fn errors_carry_the_rfc_scim_types() {
        let mut u = user();
        assert!(matches!(
            patch(&mut u, json!([{"op": "remove"}])),
            Err(PatchError::NoTarget(_))
        ));
        assert!(matches!(
            patch(
                &mut u,
                json!([{"op": "replace", "path": "emails[type eq \"pager\" or value pr].display", "value": "x"}])
            ),
            Ok(())
        ));
        assert!(matches!(
            patch(
                &mut u,
                json!([{"op": "replace", "path": "ims[type eq \"x\" or type eq \"y\"]", "value": {"value": "a"}}])
            ),
            Err(PatchError::NoTarget(_))
        ));
        assert!(matches!(
            patch(
                &mut u,
                json!([{"op": "replace", "path": "colour", "value": 1}])
            ),
            Err(PatchError::Path(_))
        ));
        assert!(matches!(
            patch(
                &mut u,
                json!([{"op": "replace", "path": "emails[", "value": 1}])
            ),
            Err(PatchError::Path(_))
        ));
        assert!(matches!(
            patch(
                &mut u,
                json!([{"op": "replace", "path": "groups", "value": []}])
            ),
            Err(PatchError::Mutability(_))
        ));
        assert!(matches!(
            patch(
                &mut u,
                json!([{"op": "replace", "path": "id", "value": "x"}])
            ),
            Err(PatchError::Mutability(_))
        ));
        assert!(matches!(
            patch(&mut u, json!([{"op": "remove", "path": "userName"}])),
            Err(PatchError::Mutability(_))
        ));
        assert!(matches!(
            patch(&mut u, json!([{"op": "jump", "path": "userName"}])),
            Err(PatchError::Syntax(_))
        ));
        assert!(matches!(
            apply(Kind::User, &mut u, &json!({"Operations": 1})),
            Err(PatchError::Syntax(_))
        ));
        assert!(matches!(
            apply(
                Kind::User,
                &mut u,
                &json!({"schemas": ["x"], "Operations": []})
            ),
            Err(PatchError::Syntax(_))
        ));
    }

    /// Finding: `replace` through a value filter that matched nothing created a value
    /// (RFC 7644 §3.5.2.3: 400 `noTarget`); `add` still creates one.
    #[test]
    fn scim_replace_through_a_filter_that_selects_nothing_is_no_target() {
        for (path, value) in [
            ("emails[type eq \"other\"].value", json!("x@example.com")),
            (
                "emails[type eq \"other\"]",
                json!({"value": "x@example.com"}),
            ),
            ("addresses[type eq \"home\"]", json!({"locality": "Town"})),
            ("addresses[type eq \"home\"].locality", json!("Town")),
        ] {
            let mut u = user();
            let before = u.clone();
            assert!(
                matches!(
                    patch(
                        &mut u,
                        json!([{"op": "replace", "path": path, "value": value}])
                    ),
                    Err(PatchError::NoTarget(_))
                ),
                "{path}"
            );
            let mut u = before.clone();
            patch(&mut u, json!([{"op": "add", "path": path, "value": value}])).unwrap();
            assert_ne!(u, before, "add {path} creates the value");
        }
    }

    /// Finding: making a value primary through a filter kept the old primary too (then
    /// refused: "at most one value may be primary"); RFC 7644 §3.5.2 moves it.
    #[test]
    fn scim_a_value_made_primary_through_a_filter_takes_it_from_the_others() {
        for (path, value) in [
            ("emails[type eq \"home\"].primary", json!(true)),
            ("emails[type eq \"home\"]", json!({"primary": true})),
        ] {
            let mut u = user();
            patch(
                &mut u,
                json!([{"op": "replace", "path": path, "value": value}]),
            )
            .unwrap();
            assert_eq!(
                u["emails"],
                json!([{"value": "a@example.com", "type": "work", "primary": false},
                       {"value": "b@example.com", "type": "home", "primary": true}]),
                "{path}"
            );
            assert!(super::super::normalize(Kind::User, &u).is_ok(), "{path}");
        }
        // Made not primary: the others stay as they are.
        let mut u = user();
        patch(
            &mut u,
            json!([{"op": "replace", "path": "emails[type eq \"work\"].primary", "value": false}]),
        )
        .unwrap();
        assert_eq!(u["emails"][0]["primary"], false);
        assert!(u["emails"][1].get("primary").is_none());
    }

    #[test]
    fn extension_attributes_and_case() {
        let mut u = user();
        patch(&mut u, json!([
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value", "value": "boss"},
            {"op": "Replace", "path": "NAME.GIVENNAME", "value": "B"},
            {"op": "add", "value": {"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Tours"}}}
        ])).unwrap();
        let e = &u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"];
        assert_eq!(e["manager"]["value"], "boss");
        assert_eq!(e["department"], "Tours");
        assert_eq!(u["name"]["givenName"], "B");
        // Azure AD's way of removing members: a value list.
        let mut g = group();
        apply(Kind::Group, &mut g, &json!({"Operations": [{"op": "Remove", "path": "members", "value": [{"value": "902c246b"}]}]})).unwrap();
        assert_eq!(g["members"].as_array().unwrap().len(), 1);
    }
}

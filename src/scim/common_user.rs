//! The common shape of a SCIM user create — `schemas`, `userName`, `name`, `emails`,
//! `active`, `displayName`, `externalId`, each spelled as the schema spells it — read
//! into typed fields and written back without a `serde_json::Value` tree.
//!
//! Why: in the profile of a SCIM create, building, normalising, rendering and dropping
//! `Value` trees (a `BTreeMap` node per object) was most of what a SCIM create cost
//! beyond a group create (issue 18). Identity providers send this shape on every create.
//!
//! [`normalize`](super::normalize) stays the definition. A body that is not exactly
//! this shape — another attribute, another spelling of a name, a value the normaliser
//! would convert (`"True"`) or refuse (two primaries, a string over the limit), a
//! duplicated key — is `None` here and takes the generic path. The tests of
//! `http::scim` check on random bodies that both paths store and answer the same bytes.

use crate::json::Json;
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::borrow::Cow;

/// The longest string value [`normalize`](super::normalize) accepts.
const MAX_STRING: usize = 65_536;

/// A create body of the common shape. Missing and `null` are both `None`, as the
/// normaliser drops nulls. Strings without escapes are borrowed from the body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommonUser<'a> {
    #[serde(rename = "userName", borrow)]
    pub user_name: Cow<'a, str>,
    /// Any value: the normaliser ignores what a client sends as `schemas`.
    #[allow(dead_code)]
    schemas: Option<IgnoredAny>,
    pub active: Option<bool>,
    #[serde(rename = "displayName", borrow)]
    pub display_name: Option<Text<'a>>,
    #[serde(rename = "externalId", borrow)]
    pub external_id: Option<Text<'a>>,
    #[serde(borrow)]
    pub name: Option<Name<'a>>,
    #[serde(borrow)]
    pub emails: Option<Vec<Email<'a>>>,
}

/// The sub-attributes of `name`, declared in the order a `serde_json::Map` sorts them
/// (the order [`name`] writes them in, as the generic path does).
#[derive(Deserialize, PartialEq, Eq, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Name<'a> {
    #[serde(borrow)]
    pub family_name: Option<Text<'a>>,
    #[serde(borrow)]
    pub formatted: Option<Text<'a>>,
    #[serde(borrow)]
    pub given_name: Option<Text<'a>>,
    #[serde(borrow)]
    pub honorific_prefix: Option<Text<'a>>,
    #[serde(borrow)]
    pub honorific_suffix: Option<Text<'a>>,
    #[serde(borrow)]
    pub middle_name: Option<Text<'a>>,
}

/// One of `emails`, its sub-attributes in sorted order.
#[derive(Deserialize, PartialEq, Eq, Debug)]
#[serde(deny_unknown_fields)]
pub struct Email<'a> {
    #[serde(borrow)]
    pub display: Option<Text<'a>>,
    pub primary: Option<bool>,
    #[serde(rename = "type", borrow)]
    pub kind: Option<Text<'a>>,
    #[serde(borrow)]
    pub value: Option<Text<'a>>,
}

/// A string of the body, borrowed from it unless it holds an escape. Why not
/// `Option<Cow<str>>`: the derive borrows a bare `Cow<str>` field, but reads one inside an
/// `Option` as an owned `String` (an allocation and a copy per attribute of every create).
#[derive(Deserialize, PartialEq, Eq, Debug)]
#[serde(transparent)]
pub struct Text<'a>(#[serde(borrow)] pub Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl Name<'_> {
    fn is_empty(&self) -> bool {
        self.strings().all(|s| s.is_none())
    }

    fn strings(&self) -> impl Iterator<Item = &Option<Text<'_>>> {
        [
            &self.family_name,
            &self.formatted,
            &self.given_name,
            &self.honorific_prefix,
            &self.honorific_suffix,
            &self.middle_name,
        ]
        .into_iter()
    }
}

impl Email<'_> {
    fn is_empty(&self) -> bool {
        self.display.is_none()
            && self.primary.is_none()
            && self.kind.is_none()
            && self.value.is_none()
    }
}

impl<'a> CommonUser<'a> {
    /// `body` read as the common shape, normalised as [`normalize`](super::normalize)
    /// would (empty objects and lists dropped); `None` when it is not that shape or
    /// the normaliser would change or refuse something in it.
    pub fn parse(body: &'a [u8]) -> Option<CommonUser<'a>> {
        // Checked as UTF-8 once, whole (ASCII a word at a time), then read as a `str`:
        // from bytes, serde_json checks every string it borrows on its own, a call for
        // each of a dozen short strings (a tenth of this parse under callgrind).
        let text = std::str::from_utf8(body).ok()?;
        let mut u: CommonUser = serde_json::from_str(text).ok()?;
        if u.name.as_ref().is_some_and(Name::is_empty) {
            u.name = None;
        }
        if let Some(list) = &mut u.emails {
            list.retain(|e| !e.is_empty());
            if list.iter().filter(|e| e.primary == Some(true)).count() > 1 {
                return None;
            }
            if list.is_empty() {
                u.emails = None;
            }
        }
        let long = |s: &Option<Text>| s.as_ref().is_some_and(|s| s.len() > MAX_STRING);
        let too_long = u.user_name.len() > MAX_STRING
            || long(&u.display_name)
            || long(&u.external_id)
            || u.name.as_ref().is_some_and(|n| n.strings().any(long))
            || u.emails
                .iter()
                .flatten()
                .any(|e| long(&e.display) || long(&e.kind) || long(&e.value));
        (!too_long).then_some(u)
    }

    /// The e-mail the domain keeps: the primary one, else the first.
    pub fn email(&self) -> Option<&str> {
        super::primary_or_first(self.emails.as_deref()?, |e| e.primary == Some(true))
            .and_then(|e| e.value.as_deref())
    }

    /// What is stored of the resource (without `userName`), serialised as the generic
    /// path serialises its normalised `Map`: keys sorted, nothing absent written; and
    /// where the attributes that sort after `id` and `meta` (`name`) start in it, for
    /// [`answer`] to put those two in between.
    pub fn attributes(&self) -> (String, usize) {
        let mut out = Vec::with_capacity(256);
        let mut o = Json::open(&mut out);
        leading(&mut o, self);
        let name_at = o.out().len();
        name(&mut o, self.name.as_ref());
        o.close();
        // Only `&str`s and ASCII went in.
        (String::from_utf8(out).unwrap_or_default(), name_at)
    }
}

/// The attributes that sort before `id` (and `meta`).
fn leading(o: &mut Json, body: &CommonUser) {
    o.bool("active", body.active);
    o.str("displayName", body.display_name.as_deref());
    if let Some(list) = &body.emails {
        o.key("emails");
        o.out().push(b'[');
        for (i, e) in list.iter().enumerate() {
            if i > 0 {
                o.out().push(b',');
            }
            let mut e_o = Json::open(o.out());
            e_o.str("display", e.display.as_deref());
            e_o.bool("primary", e.primary);
            e_o.str("type", e.kind.as_deref());
            e_o.str("value", e.value.as_deref());
            e_o.close();
        }
        o.out().push(b']');
    }
    o.str("externalId", body.external_id.as_deref());
}

fn name(o: &mut Json, name: Option<&Name>) {
    let Some(n) = name else { return };
    o.key("name");
    let mut n_o = Json::open(o.out());
    n_o.str("familyName", n.family_name.as_deref());
    n_o.str("formatted", n.formatted.as_deref());
    n_o.str("givenName", n.given_name.as_deref());
    n_o.str("honorificPrefix", n.honorific_prefix.as_deref());
    n_o.str("honorificSuffix", n.honorific_suffix.as_deref());
    n_o.str("middleName", n.middle_name.as_deref());
    n_o.close();
}

/// `schemas` of a user as JSON (checked against the schema's name in a test).
const USER_SCHEMAS: &[u8] = b"[\"urn:ietf:params:scim:schemas:core:2.0:User\"]";

/// What the server knows of the user just created, for [`answer`].
pub struct Created<'a> {
    pub id: &'a str,
    pub user_name: &'a str,
    /// `active` as shown: `Some` when the client sent it or the user is not enabled.
    pub active: Option<bool>,
    pub created: &'a str,
    pub location: &'a str,
    /// Its version, `W/"…"` (the `ETag`).
    pub version: &'a str,
}

/// The 201 answer's body, byte for byte what the generic path serialises for a user
/// without groups whose e-mails already hold its domain e-mail (its keys sorted): the
/// stored attributes with `id` and `meta` put in, and `schemas` and `userName` after
/// them. Why spliced: rendering the e-mails and the name a second time (every string
/// checked for escapes again) was a tenth of what a SCIM create's handler spent.
/// `stored` and `name_at` are what [`CommonUser::attributes`] gave for `body`. `None`
/// when the answer shows `active` otherwise than the body said it.
pub fn answer(
    body: &CommonUser,
    (stored, name_at): (&str, usize),
    user: &Created,
) -> Option<Vec<u8>> {
    if user.active != body.active {
        return None;
    }
    let (lead, rest) = stored.split_at_checked(name_at)?;
    // `rest` is `,"name":{…}}`, `"name":{…}}` (nothing before it) or `}`.
    let name = rest
        .strip_suffix('}')
        .unwrap_or(rest)
        .trim_start_matches(',');
    let mut out = Vec::with_capacity(stored.len() + 256);
    out.extend_from_slice(lead.as_bytes());
    let mut o = Json::resume(&mut out, lead.len() == 1);
    o.str("id", Some(user.id));
    o.key("meta");
    let mut meta = Json::open(o.out());
    meta.plain("created", user.created);
    meta.plain("lastModified", user.created);
    meta.str("location", Some(user.location));
    meta.plain("resourceType", "User");
    // `W/"7"`: its quotes are its only characters to escape; through `str` they took
    // serde_json's escaping path, the dearest string of the answer.
    debug_assert!(!user.version.bytes().any(|b| b < 0x20 || b == b'\\'));
    meta.key("version");
    let v = meta.out();
    v.push(b'"');
    for &b in user.version.as_bytes() {
        if b == b'"' {
            v.push(b'\\');
        }
        v.push(b);
    }
    v.push(b'"');
    meta.close();
    if !name.is_empty() {
        o.out().push(b',');
        o.out().extend_from_slice(name.as_bytes());
    }
    o.key("schemas");
    o.out().extend_from_slice(USER_SCHEMAS);
    o.str("userName", Some(user.user_name));
    o.close();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schemas_constant_is_the_user_schema_as_json() {
        let expected = serde_json::to_vec(&[super::super::USER_SCHEMA]).unwrap();
        assert_eq!(USER_SCHEMAS, expected.as_slice());
    }

    fn borrowed(s: &Option<Text>) -> bool {
        matches!(s, Some(Text(Cow::Borrowed(_))))
    }

    /// Every string of the common shape is borrowed from the body unless it holds an
    /// escape; `null` and missing read as `None`.
    #[test]
    fn strings_without_escapes_are_borrowed_from_the_body() {
        let body = br#"{"userName":"ann","displayName":"Ann","externalId":"x-1",
            "name":{"familyName":"F","formatted":"Ann F","givenName":"G",
                    "honorificPrefix":"Dr","honorificSuffix":"III","middleName":"M"},
            "emails":[{"value":"ann@example.com","type":"work","display":"A","primary":true}]}"#;
        let u = CommonUser::parse(body).unwrap();
        assert!(matches!(u.user_name, Cow::Borrowed("ann")));
        assert!(borrowed(&u.display_name) && borrowed(&u.external_id));
        let n = u.name.as_ref().unwrap();
        assert!(n.strings().all(borrowed), "{n:?}");
        let e = &u.emails.as_ref().unwrap()[0];
        assert!(borrowed(&e.value) && borrowed(&e.kind) && borrowed(&e.display));
        assert_eq!(u.email(), Some("ann@example.com"));

        let body = br#"{"userName":"ann","displayName":"Ren\u00e9e \"R\"","externalId":null,
            "name":{"givenName":null,"familyName":"F\\G"}}"#;
        let u = CommonUser::parse(body).unwrap();
        assert_eq!(u.display_name, Some(Text(Cow::Owned("Renée \"R\"".into()))));
        assert_eq!(u.external_id, None);
        let n = u.name.unwrap();
        assert_eq!(n.given_name, None);
        assert_eq!(n.family_name.as_deref(), Some("F\\G"));
        assert_eq!(n.middle_name, None);
        // A wrong type is still not the common shape, nor an object sent as a list.
        assert!(CommonUser::parse(br#"{"userName":"ann","displayName":7}"#).is_none());
        assert!(CommonUser::parse(br#"{"userName":"ann","name":[]}"#).is_none());
        assert!(CommonUser::parse(br#"{"userName":"ann","emails":[[]]}"#).is_none());
    }
}

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

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
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
    pub display_name: Option<Cow<'a, str>>,
    #[serde(rename = "externalId", borrow)]
    pub external_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub name: Option<Name<'a>>,
    #[serde(borrow)]
    pub emails: Option<Vec<Email<'a>>>,
}

/// The sub-attributes of `name`, declared in the order a `serde_json::Map` sorts them,
/// so that they serialise as the generic path does.
#[derive(Deserialize, Serialize, PartialEq, Eq, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Name<'a> {
    #[serde(skip_serializing_if = "Option::is_none", borrow)]
    pub family_name: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none", borrow)]
    pub formatted: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none", borrow)]
    pub given_name: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none", borrow)]
    pub honorific_prefix: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none", borrow)]
    pub honorific_suffix: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none", borrow)]
    pub middle_name: Option<Cow<'a, str>>,
}

/// One of `emails`, its sub-attributes in sorted order.
#[derive(Deserialize, Serialize, PartialEq, Eq, Debug)]
#[serde(deny_unknown_fields)]
pub struct Email<'a> {
    #[serde(skip_serializing_if = "Option::is_none", borrow)]
    pub display: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none", borrow)]
    pub kind: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none", borrow)]
    pub value: Option<Cow<'a, str>>,
}

impl Name<'_> {
    fn is_empty(&self) -> bool {
        self.strings().all(|s| s.is_none())
    }

    fn strings(&self) -> impl Iterator<Item = &Option<Cow<'_, str>>> {
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
        let mut u: CommonUser = serde_json::from_slice(body).ok()?;
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
        let long = |s: &Option<Cow<str>>| s.as_ref().is_some_and(|s| s.len() > MAX_STRING);
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
    /// path serialises its normalised `Map`: keys sorted, nothing absent written.
    pub fn attributes(&self) -> String {
        #[derive(Serialize)]
        struct Stored<'a> {
            #[serde(flatten)]
            leading: Leading<'a>,
            #[serde(skip_serializing_if = "Option::is_none")]
            name: Option<&'a Name<'a>>,
        }
        serde_json::to_string(&Stored {
            leading: self.leading(self.active),
            name: self.name.as_ref(),
        })
        .unwrap_or_default()
    }

    /// The attributes that sort before `id`, with `active` as shown.
    fn leading(&self, active: Option<bool>) -> Leading<'_> {
        Leading {
            active,
            display_name: self.display_name.as_deref(),
            emails: self.emails.as_deref(),
            external_id: self.external_id.as_deref(),
        }
    }
}

/// The attributes that sort before `id` (and `meta`), shared by what is stored and the
/// answer, which puts `id` and `meta` between them and `name`.
#[derive(Serialize)]
struct Leading<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    active: Option<bool>,
    #[serde(rename = "displayName", skip_serializing_if = "Option::is_none")]
    display_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    emails: Option<&'a [Email<'a>]>,
    #[serde(rename = "externalId", skip_serializing_if = "Option::is_none")]
    external_id: Option<&'a str>,
}

/// What the server knows of the user just created, for [`answer`].
pub struct Created<'a> {
    pub id: &'a str,
    pub user_name: &'a str,
    /// `active` as shown: `Some` when the client sent it or the user is not enabled.
    pub active: Option<bool>,
    pub created: &'a str,
    pub location: &'a str,
    pub version: &'a str,
}

/// The 201 answer's body, byte for byte what the generic path serialises for a user
/// without groups whose e-mails already hold its domain e-mail (its keys sorted).
pub fn answer(body: &CommonUser, user: &Created) -> Vec<u8> {
    #[derive(Serialize)]
    struct Meta<'a> {
        created: &'a str,
        #[serde(rename = "lastModified")]
        last_modified: &'a str,
        location: &'a str,
        #[serde(rename = "resourceType")]
        resource_type: &'a str,
        version: &'a str,
    }
    #[derive(Serialize)]
    struct Answer<'a> {
        #[serde(flatten)]
        leading: Leading<'a>,
        id: &'a str,
        meta: Meta<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<&'a Name<'a>>,
        schemas: [&'a str; 1],
        #[serde(rename = "userName")]
        user_name: &'a str,
    }
    serde_json::to_vec(&Answer {
        leading: body.leading(user.active),
        id: user.id,
        meta: Meta {
            created: user.created,
            last_modified: user.created,
            location: user.location,
            resource_type: "User",
            version: user.version,
        },
        name: body.name.as_ref(),
        schemas: [super::USER_SCHEMA],
        user_name: user.user_name,
    })
    .unwrap_or_default()
}

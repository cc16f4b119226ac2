//! Decides the LDAP realm: LDAP settings and group settings, the user a successful
//! directory sign-in creates (realm `ldap`, no password hash) and its directory groups,
//! and the import of a directory's groups with their members.
//!
//! What the directory said travels in the command (the directory is asked before the
//! command is sent): `decide` stays pure. Users and groups of realm `ldap` are ordinary
//! directory entries; only their membership follows the directory. A group of another
//! realm that has a directory group's name is left alone (a directory must not take over
//! an internal group), and only users of realm `ldap` are made members by a sync (an
//! internal user of the same name is someone else).

use super::{names, DomainError};
use gatehouse_projections::State;
use gatehouse_schemas::{
    Event, GroupCreated, GroupUpdated, LdapGroupSetting, LdapSetting, UserCreated, UserStatus,
};
use std::collections::BTreeSet;

pub const LDAP_REALM: &str = "ldap";
pub const STRATEGIES: &[&str] = &["STATIC", "DYNAMIC", "HIERARCHICAL"];

/// A group as the directory shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryGroup {
    /// Lower-case (JFrog: LDAP groups are synchronised by lower-case name).
    pub name: String,
    pub description: Option<String>,
    /// `ldapGroupName=…;groupsStrategy=…;groupDn=…`, as JFrog writes it.
    pub realm_attributes: String,
    /// The user names of its members (lower-case); `None` when not read (a sign-in reads
    /// only the signing-in user's groups).
    pub members: Option<Vec<String>>,
}

/// What a successful directory sign-in tells.
#[derive(Debug, Clone)]
pub struct LdapSignIn {
    pub username: String,
    /// Sealed personal data: the e-mail of a new user, or a changed one (`None`: none,
    /// or unchanged; `Some("")`: the directory has none any more, cleared).
    pub email: Option<String>,
    /// The LDAP setting's `auto_create_user`.
    pub auto_create: bool,
    /// The user's directory groups; `None` when no group setting reads them.
    pub groups: Option<Vec<DirectoryGroup>>,
}

/// Where an import read its groups: a group of realm `ldap` made from there that the
/// directory no longer lists (deleted, moved, or out of the setting's filter) loses its
/// members from the directory, as a member taken out of a listed group does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFrom {
    /// The group base searched (the setting's group base under the URL's base DN).
    pub base: String,
    /// Searched below `base` at any depth (else only its children).
    pub sub_tree: bool,
    /// The group setting's strategy, as written in the groups' realm attributes.
    pub strategy: String,
}

/// A DN compared as text: lower case, no blanks around its separators.
pub fn normal_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    let mut escaped = false;
    // The length of `out` up to its last escaped character: an escaped space or
    // separator is part of a value, never a blank around a separator.
    let mut kept = 0;
    for c in dn.trim().chars() {
        if escaped {
            out.extend(c.to_lowercase());
            kept = out.len();
            escaped = false;
            continue;
        }
        if c == '\\' {
            escaped = true;
            out.push(c);
            continue;
        }
        if c == ',' || c == '=' {
            while out.len() > kept && out.ends_with(' ') {
                out.pop();
            }
        } else if c == ' ' && out.len() > kept && (out.ends_with(',') || out.ends_with('=')) {
            continue;
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// The DN's parent: what follows the first separator that is not escaped.
fn parent_dn(dn: &str) -> Option<&str> {
    let mut escaped = false;
    for (i, c) in dn.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => return Some(&dn[i + 1..]),
            _ => {}
        }
    }
    None
}

impl ListedFrom {
    /// Whether a group with these realm attributes is one an import from here lists
    /// while the directory has it.
    fn covers(&self, realm_attributes: &str) -> bool {
        let Some((head, dn)) = realm_attributes.split_once(";groupDn=") else {
            return false;
        };
        let strategy = head
            .split(';')
            .find_map(|kv| kv.strip_prefix("groupsStrategy="))
            .unwrap_or("");
        if !strategy.eq_ignore_ascii_case(&self.strategy) {
            return false;
        }
        let (dn, base) = (normal_dn(dn), normal_dn(&self.base));
        match parent_dn(&dn) {
            // Compared as DNs: `cn=a\\,dc=example` is not under `dc=example`.
            Some(parent) if self.sub_tree => dn_within(parent, &base),
            Some(parent) => parent == base,
            None => false,
        }
    }
}

/// Which part of a group import to do (JFrog's `operation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncOperation {
    /// Create groups that are missing (with their members).
    Import,
    /// Bring existing groups' description and members in step.
    Update,
    UpdateAndImport,
}

pub(super) fn save_setting(state: &State, s: &LdapSetting) -> Result<Vec<Event>, DomainError> {
    names::validate_group_name("key", &s.key)?;
    let url = s.ldap_url.trim();
    if url.is_empty() {
        return Err(DomainError::invalid("ldap_url", "is required"));
    }
    for (i, u) in url.split_whitespace().enumerate() {
        let lower = u.to_ascii_lowercase();
        if !(lower.starts_with("ldap://") || lower.starts_with("ldaps://")) {
            return Err(DomainError::invalid(
                "ldap_url",
                format!(
                    "URL {} (`{}`) must start with `ldap://` or `ldaps://`",
                    i + 1,
                    u.escape_debug()
                ),
            ));
        }
        // The host and port are checked now: a bad one was stored and every sign-in then
        // answered "not available".
        let rest = &u[u.find("://").map_or(0, |p| p + 3)..];
        let authority = rest.split('/').next().unwrap_or("");
        // Credentials in the URL were stored, shown, logged and put in error answers in
        // clear (the bind's are `manager_dn` and the sealed `manager_password`); the URL
        // is not echoed here either.
        if authority.contains('@') {
            return Err(DomainError::invalid(
                "ldap_url",
                format!(
                    "URL {} carries a user name or password, which would be stored and shown in clear: give them as manager_dn and manager_password",
                    i + 1
                ),
            ));
        }
        let port = authority
            .rsplit_once(':')
            .filter(|(host, _)| !host.ends_with(']') || authority.starts_with('['))
            .map(|(_, p)| p);
        let host_ok = !authority.is_empty() && !authority.starts_with(':');
        let port_ok =
            port.is_none_or(|p| !authority.ends_with(']') && p.parse::<u16>().is_ok_and(|n| n > 0));
        if !host_ok || (!authority.ends_with(']') && !port_ok) {
            return Err(DomainError::invalid(
                "ldap_url",
                format!(
                    "URL {} (`{}`) needs a host and a valid port",
                    i + 1,
                    u.escape_debug()
                ),
            ));
        }
    }
    let pattern = s.user_dn_pattern.as_deref().unwrap_or("").trim();
    let filter = s.search_filter.as_deref().unwrap_or("").trim();
    if pattern.is_empty() && filter.is_empty() {
        return Err(DomainError::invalid(
            "user_dn_pattern",
            "give a user DN pattern or a `search.search_filter`",
        ));
    }
    if !pattern.is_empty() && !pattern.contains("{0}") {
        return Err(DomainError::invalid(
            "user_dn_pattern",
            "must contain `{0}` (the user name)",
        ));
    }
    if !filter.is_empty() && !filter.contains("{0}") {
        return Err(DomainError::invalid(
            "search.search_filter",
            "must contain `{0}` (the user name)",
        ));
    }
    if !filter.is_empty() {
        valid_filter("search.search_filter", &filter.replace("{0}", "user"))?;
    }
    if !pattern.is_empty() {
        valid_dn("user_dn_pattern", &pattern.replace("{0}", "user"))?;
    }
    for base in s.search_base.as_deref().unwrap_or("").split('|') {
        valid_dn("search.search_base", base)?;
    }
    valid_dn("search.manager_dn", s.manager_dn.as_deref().unwrap_or(""))?;
    for u in url.split_whitespace() {
        let rest = &u[u.find("://").map_or(0, |p| p + 3)..];
        // A base written with percent escapes is sent decoded: checked when it has none.
        // RFC 4516's `?attributes?scope?filter` is not taken: the whole path was the base
        // DN, every bind went to a DN that does not exist, and right passwords locked.
        if rest.contains('?') {
            return Err(DomainError::invalid(
                "ldap_url",
                "`?attributes?scope?filter` is not taken: give the base DN alone in the URL, the filter in `search.search_filter`",
            ));
        }
        if let Some((_, base)) = rest.split_once('/').filter(|(_, b)| !b.contains('%')) {
            valid_dn("ldap_url", base)?;
        }
    }
    if let Some(pem) = s.ca_certificate.as_deref().filter(|p| !p.trim().is_empty()) {
        crate::tls::client_with_roots(pem)
            .map_err(|e| DomainError::invalid("ca_certificate", e.to_string()))?;
    }
    if let Some(a) = s
        .email_attribute
        .as_deref()
        .filter(|a| !a.trim().is_empty())
    {
        valid_attribute("email_attribute", a)?;
    }
    if s.manager_password.is_some() && s.manager_dn.as_deref().unwrap_or("").is_empty() {
        return Err(DomainError::invalid(
            "search.manager_dn",
            "is required with a manager password (send `manager_password: \"\"` to remove the password)",
        ));
    }
    // A manager with no password can never bind: every sign-in answered 503.
    if s.manager_password.is_none() && !s.manager_dn.as_deref().unwrap_or("").is_empty() {
        return Err(DomainError::invalid(
            "search.manager_password",
            "is required with a manager DN",
        ));
    }
    if state.settings.ldap.settings.get(&s.key) == Some(s) {
        return Ok(vec![]);
    }
    Ok(vec![Event::LdapSettingSaved(s.clone())])
}

pub(super) fn delete_setting(state: &State, key: &str) -> Result<Vec<Event>, DomainError> {
    let ldap = &state.settings.ldap;
    if !ldap.settings.contains_key(key) {
        return Err(DomainError::NotFound(format!("LDAP setting `{key}`")));
    }
    if let Some(g) = ldap.group_settings_of(key).next() {
        return Err(DomainError::Conflict(format!(
            "LDAP group setting `{}` reads this directory; delete it first",
            g.name
        )));
    }
    Ok(vec![Event::LdapSettingDeleted { key: key.into() }])
}

/// An attribute description as RFC 4512 writes one: a name (`member`, `memberOf`) or a
/// numeric OID, with options (`cn;lang-en`).
fn valid_attribute(field: &str, name: &str) -> Result<(), DomainError> {
    let mut parts = name.split(';');
    let head = parts.next().unwrap_or("");
    let descr = head.starts_with(|c: char| c.is_ascii_alphabetic())
        && head.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let oid = !head.is_empty()
        && head
            .split('.')
            .all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    let options =
        parts.all(|o| !o.is_empty() && o.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if (descr || oid) && options {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            format!(
                "`{}` is not an attribute name (letters, digits and `-`, or a numeric OID)",
                name.escape_debug()
            ),
        ))
    }
}

/// A DN the directory can be sent (RFC 4514): RDNs between unescaped `,` (or `;`), each
/// of `attribute=value` pairs joined by `+`. Empty is the URL's base. One that does not
/// parse was stored, and every sign-in then answered "not available" (invalidDNSyntax).
fn valid_dn(field: &str, dn: &str) -> Result<(), DomainError> {
    let dn = dn.trim();
    if dn.is_empty() {
        return Ok(());
    }
    let bad = |why: &str| {
        DomainError::invalid(field, format!("`{}` is not a DN: {why}", dn.escape_debug()))
    };
    // Split outside escapes (`\,`, `\2C`): the parts between `,`/`;` and `+`.
    let mut pairs: Vec<String> = Vec::new();
    let mut part = String::new();
    let mut chars = dn.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let next = chars.next().ok_or_else(|| bad("it ends with `\\`"))?;
                part.push(c);
                part.push(next);
            }
            ',' | ';' | '+' => pairs.push(std::mem::take(&mut part)),
            c => part.push(c),
        }
    }
    pairs.push(part);
    for pair in &pairs {
        let Some((attr, value)) = pair.split_once('=') else {
            return Err(bad(
                "every part is `attribute=value` (an empty part, or one without `=`)",
            ));
        };
        valid_attribute(field, attr.trim())?;
        valid_value(value.trim()).map_err(|why| bad(&why))?;
    }
    Ok(())
}

/// An attribute value as RFC 4514 writes it (the directory refused the rest, and every
/// sign-in or sync of the setting failed): `"`, `<`, `>` and NUL only escaped, an escape
/// a special character or two hex digits, a value starting with `#` hex pairs.
fn valid_value(value: &str) -> Result<(), String> {
    if let Some(hex) = value.strip_prefix('#') {
        if hex.is_empty() || hex.len() % 2 != 0 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "the value `{}` starts with `#`, which makes it hex pairs (escape it as `\\#` to mean the character)",
                value.escape_debug()
            ));
        }
        return Ok(());
    }
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('\\' | '"' | '+' | ',' | ';' | '<' | '>' | ' ' | '#' | '=') => {}
                Some(h) if h.is_ascii_hexdigit() => {
                    if !chars.next().is_some_and(|l| l.is_ascii_hexdigit()) {
                        return Err(format!(
                            "`\\{h}` in `{}` is not an escape (a special character, or two hex digits)",
                            value.escape_debug()
                        ));
                    }
                }
                other => {
                    return Err(format!(
                        "`\\{}` in `{}` is not an escape (a special character, or two hex digits)",
                        other.map(String::from).unwrap_or_default().escape_debug(),
                        value.escape_debug()
                    ))
                }
            },
            '"' | '<' | '>' | '\0' => {
                return Err(format!(
                    "`{}` in a value is written escaped (`\\{}`)",
                    c.escape_debug(),
                    c.escape_debug()
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// An LDAP search filter the directory can be sent (RFC 4515): one that does not parse
/// was stored, and every sign-in of the directory then answered "not available".
fn valid_filter(field: &str, filter: &str) -> Result<(), DomainError> {
    let filter = filter.trim();
    ldap3::parse_filter(crate::ldap::wrap(filter))
        .map(|_| ())
        .map_err(|()| {
            DomainError::invalid(
                field,
                format!(
                    "`{}` is not an LDAP filter (RFC 4515)",
                    filter.escape_debug()
                ),
            )
        })
}

pub(super) fn save_group_setting(
    state: &State,
    g: &LdapGroupSetting,
) -> Result<Vec<Event>, DomainError> {
    names::validate_group_name("name", &g.name)?;
    if !state.settings.ldap.settings.contains_key(&g.enabled_ldap) {
        return Err(DomainError::invalid(
            "enabled_ldap",
            format!("LDAP setting `{}` does not exist", g.enabled_ldap),
        ));
    }
    if !STRATEGIES.contains(&g.strategy.as_str()) {
        return Err(DomainError::invalid(
            "strategy",
            "must be `STATIC`, `DYNAMIC` or `HIERARCHICAL`",
        ));
    }
    if g.group_name_attribute.trim().is_empty() {
        return Err(DomainError::invalid("group_name_attribute", "is required"));
    }
    valid_dn("group_base_dn", g.group_base_dn.as_deref().unwrap_or(""))?;
    if g.strategy != "HIERARCHICAL" && g.group_member_attribute.trim().is_empty() {
        return Err(DomainError::invalid(
            "group_member_attribute",
            "is required",
        ));
    }
    // Attribute names go into filters as they are (`(member=<dn>)`): `member=*)(x` was
    // taken, and an import read memberships from a filter of the admin's making.
    for (field, name) in [
        (
            "group_name_attribute",
            Some(g.group_name_attribute.as_str()),
        ),
        (
            "group_member_attribute",
            Some(g.group_member_attribute.as_str()),
        ),
        ("description_attribute", g.description_attribute.as_deref()),
    ] {
        if let Some(name) = name.filter(|n| !n.trim().is_empty()) {
            valid_attribute(field, name)?;
        }
    }
    if let Some(f) = g.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        valid_filter("filter", f)?;
    }
    if state.settings.ldap.group_settings.get(&g.name) == Some(g) {
        return Ok(vec![]);
    }
    Ok(vec![Event::LdapGroupSettingSaved(g.clone())])
}

pub(super) fn delete_group_setting(state: &State, name: &str) -> Result<Vec<Event>, DomainError> {
    if !state.settings.ldap.group_settings.contains_key(name) {
        return Err(DomainError::NotFound(format!(
            "LDAP group setting `{name}`"
        )));
    }
    Ok(vec![Event::LdapGroupSettingDeleted { name: name.into() }])
}

/// Whether a directory group may be written as group `name` here: absent, or of realm
/// `ldap` already.
fn ours(state: &State, name: &str) -> bool {
    state
        .directory
        .groups
        .get(name)
        .is_none_or(|g| g.realm == LDAP_REALM)
}

fn new_group(g: &DirectoryGroup, members: Vec<String>) -> Event {
    Event::GroupCreated(GroupCreated {
        name: g.name.clone(),
        description: g.description.clone(),
        auto_join: false,
        admin_privileges: false,
        realm: LDAP_REALM.into(),
        realm_attributes: Some(g.realm_attributes.clone()),
        external_id: None,
        members,
    })
}

/// A directory group's name as every other way in takes a new one (no invisible
/// characters, normal form C); a group already here is taken as it is.
fn new_name_allowed(state: &State, name: &str) -> bool {
    state.directory.groups.contains_key(name) || names::validate_new_name("group", name).is_ok()
}

/// A directory sign-in succeeded: create the user (first time) and bring its directory
/// groups in step.
pub(super) fn signed_in(state: &State, s: &LdapSignIn) -> Result<Vec<Event>, DomainError> {
    let dir = &state.directory;
    let username = names::normalize_username("username", &s.username)?;
    let existing = dir.users.get(username.as_str());
    if let Some(u) = existing {
        if u.realm != LDAP_REALM {
            return Err(DomainError::Conflict(format!(
                "user `{username}` is not of realm `ldap`"
            )));
        }
    } else {
        if !s.auto_create {
            return Err(DomainError::NotFound(format!(
                "user `{username}` (the LDAP setting does not create users)"
            )));
        }
        // As every other way in: no invisible characters, normal form C (the directory
        // matched `jose` and a combining accent to `josé`, and a look-alike of the
        // internal `josé` was made; `a\u{34f}dmin` shows as `admin`).
        names::validate_new_name("username", &username)?;
        if state.access_keys.keys.contains_key(&username) || dir.scim_ids.contains_key(&username) {
            return Err(DomainError::Conflict(format!(
                "`{username}` is taken by another identity"
            )));
        }
    }
    let mut events = Vec::new();
    // The directory groups it may join (created when missing).
    let wanted: Option<BTreeSet<String>> = s.groups.as_ref().map(|groups| {
        let mut wanted = BTreeSet::new();
        for g in groups {
            if names::validate_group_name("group", &g.name).is_err()
                || !new_name_allowed(state, &g.name)
                || !ours(state, &g.name)
            {
                continue;
            }
            if !dir.groups.contains_key(g.name.as_str()) && !wanted.contains(&g.name) {
                events.push(new_group(g, vec![]));
            }
            wanted.insert(g.name.clone());
        }
        wanted
    });
    match existing {
        None => {
            let mut groups: BTreeSet<String> = dir.auto_join_groups.iter().cloned().collect();
            groups.extend(wanted.unwrap_or_default());
            events.push(Event::UserCreated(UserCreated {
                username: username.clone(),
                email: s.email.clone(),
                password_hash: None,
                admin: false,
                profile_updatable: false,
                internal_password_disabled: true,
                disable_ui_access: false,
                realm: LDAP_REALM.into(),
                status: UserStatus::Enabled,
                groups: groups.into_iter().collect(),
                scim: None,
            }));
        }
        Some(user) => {
            if let Some(email) = &s.email {
                events.push(Event::UserUpdated(gatehouse_schemas::UserUpdated {
                    username: username.clone(),
                    email: Some(email.clone()),
                    ..Default::default()
                }));
            }
            if let Some(wanted) = wanted {
                let current: BTreeSet<String> = user
                    .groups
                    .iter()
                    .filter(|g| {
                        dir.groups
                            .get(g.as_str())
                            .is_some_and(|g| g.realm == LDAP_REALM)
                    })
                    .cloned()
                    .collect();
                let added: Vec<String> = wanted.difference(&current).cloned().collect();
                let removed: Vec<String> = current.difference(&wanted).cloned().collect();
                if !added.is_empty() || !removed.is_empty() {
                    events.push(Event::UserGroupsChanged {
                        username,
                        added,
                        removed,
                    });
                }
            }
        }
    }
    Ok(events)
}

/// Import a directory's groups: create missing ones, bring existing ones' description,
/// realm attributes and members in step. Members are the directory's members that are
/// users of realm `ldap` here (the others join at their first sign-in). With `only_user`,
/// only that user's memberships change. With `listed_from`, the groups made from there
/// that the directory did not list lose their directory members (the group itself
/// stays: permissions may name it).
pub(super) fn sync_groups(
    state: &State,
    groups: &[DirectoryGroup],
    operation: SyncOperation,
    only_user: Option<&str>,
    listed_from: Option<&ListedFrom>,
) -> Result<Vec<Event>, DomainError> {
    let dir = &state.directory;
    let is_ldap_user = |u: &str| dir.users.get(u).is_some_and(|u| u.realm == LDAP_REALM);
    let in_scope = |u: &str| only_user.is_none_or(|o| o == u);
    let mut events = Vec::new();
    let mut seen = BTreeSet::new();
    for g in groups {
        if names::validate_group_name("group", &g.name).is_err()
            || !new_name_allowed(state, &g.name)
            || !ours(state, &g.name)
            || !seen.insert(g.name.clone())
        {
            continue;
        }
        let members: BTreeSet<String> = g
            .members
            .iter()
            .flatten()
            .filter(|m| is_ldap_user(m) && in_scope(m))
            .cloned()
            .collect();
        match dir.groups.get(g.name.as_str()) {
            None => {
                if operation != SyncOperation::Update {
                    events.push(new_group(g, members.into_iter().collect()));
                }
            }
            Some(existing) => {
                if operation == SyncOperation::Import {
                    continue;
                }
                let attrs = Some(g.realm_attributes.clone());
                let described = |d: &Option<String>| d.clone().unwrap_or_default();
                if described(&existing.description) != described(&g.description)
                    || existing.realm_attributes != attrs
                {
                    events.push(Event::GroupUpdated(GroupUpdated {
                        name: g.name.clone(),
                        description: Some(g.description.clone().unwrap_or_default()),
                        realm_attributes: attrs,
                        ..Default::default()
                    }));
                }
                if g.members.is_none() {
                    continue;
                }
                let current: BTreeSet<String> = existing
                    .members
                    .iter()
                    .filter(|m| is_ldap_user(m) && in_scope(m))
                    .cloned()
                    .collect();
                let added: Vec<String> = members.difference(&current).cloned().collect();
                let removed: Vec<String> = current.difference(&members).cloned().collect();
                if !added.is_empty() || !removed.is_empty() {
                    events.push(Event::GroupMembersChanged {
                        group: g.name.clone(),
                        added,
                        removed,
                    });
                }
            }
        }
    }
    if let Some(from) = listed_from.filter(|_| operation != SyncOperation::Import) {
        for (name, group) in dir.groups.iter() {
            if group.realm != LDAP_REALM
                || seen.contains(name.as_ref() as &str)
                || !group
                    .realm_attributes
                    .as_deref()
                    .is_some_and(|a| from.covers(a))
            {
                continue;
            }
            let removed: Vec<String> = group
                .members
                .iter()
                .filter(|m| is_ldap_user(m) && in_scope(m))
                .cloned()
                .collect();
            if !removed.is_empty() {
                events.push(Event::GroupMembersChanged {
                    group: name.to_string(),
                    added: vec![],
                    removed,
                });
            }
        }
    }
    Ok(events)
}

/// `dn` is `base` or below it, compared as DNs (case, blanks around separators).
pub fn dn_within(dn: &str, base: &str) -> bool {
    let (dn, base) = (normal_dn(dn), normal_dn(base));
    // Below it: what precedes the base ends with a separator that is not escaped (an
    // even number of backslashes before it: `cn=a\\,…` ends its value with one).
    let separated = |above: &str| {
        above
            .strip_suffix(',')
            .is_some_and(|rest| rest.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 0)
    };
    dn == base || dn.strip_suffix(base.as_str()).is_some_and(separated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_schemas::Envelope;

    fn apply(state: &mut State, events: Vec<Event>) {
        for event in events {
            let seq = state.seq + 1;
            state.apply(&Envelope {
                seq,
                time_ms: seq,
                actor: "t".into(),
                origin: "o".into(),
                request_id: "r".into(),
                event,
            });
        }
    }

    fn group(name: &str, members: Option<&[&str]>) -> DirectoryGroup {
        DirectoryGroup {
            name: name.into(),
            description: None,
            realm_attributes: format!(
                "ldapGroupName={name};groupsStrategy=STATIC;groupDn=cn={name}"
            ),
            members: members.map(|m| m.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn sign_in(name: &str, groups: &[&str]) -> LdapSignIn {
        LdapSignIn {
            username: name.into(),
            email: None,
            auto_create: true,
            groups: Some(groups.iter().map(|g| group(g, None)).collect()),
        }
    }

    #[test]
    fn attribute_names_are_names() {
        for ok in [
            "member",
            "uniqueMember",
            "memberOf",
            "cn;lang-en",
            "2.5.4.3",
            "x-attr",
        ] {
            assert!(valid_attribute("f", ok).is_ok(), "{ok}");
        }
        for bad in [
            "member=*)(x",
            "",
            "1abc",
            "a b",
            "cn;",
            "2..5",
            "(cn)",
            "mail*",
        ] {
            let e = valid_attribute("group_member_attribute", bad).unwrap_err();
            assert!(
                e.to_string().contains("group_member_attribute"),
                "{bad}: {e}"
            );
        }
    }

    /// Credentials in an LDAP URL are refused, without echoing them (they were stored,
    /// shown and logged in clear).
    #[test]
    fn an_ldap_url_with_credentials_is_refused_without_echo() {
        let setting = gatehouse_schemas::LdapSetting {
            key: "corp".into(),
            ldap_url: "ldap://cn=x:SECRET-72@127.0.0.1:389/dc=example,dc=com".into(),
            user_dn_pattern: Some("uid={0},ou=people".into()),
            ..Default::default()
        };
        let e = save_setting(&State::default(), &setting)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ldap_url") && e.contains("manager_password"),
            "{e}"
        );
        assert!(!e.contains("SECRET-72"), "{e}");
        let plain = gatehouse_schemas::LdapSetting {
            ldap_url: "ldap://127.0.0.1:389/dc=example,dc=com".into(),
            ..setting
        };
        assert!(save_setting(&State::default(), &plain).is_ok());
    }

    #[test]
    fn dns_are_read_as_rfc_4514_writes_them() {
        for ok in [
            "",
            "ou=people",
            "uid=a\\,b,ou=people, dc=example;dc=com",
            "cn=Dave Jones+uid=dave,ou=people",
            "uid=smith\\2C john,ou=x",
            "cn=,ou=x",
            "2.5.4.3=x",
            "cn=#04024869,ou=x",
            "cn=a\\+b\\<c\\>\\\"d\\#e,ou=x",
            "cn=a=b,ou=x",
        ] {
            assert!(valid_dn("f", ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "notadn",
            "uid=x,,ou=people",
            "ou=people,",
            "=x",
            "uid=x\\",
            "a b=x",
            "ou=a\"b",
            "ou=<x>",
            "uid=x\\zz,ou=p",
            "uid=x\\2g,ou=p",
            "cn=#zz",
            "cn=#123",
        ] {
            let e = valid_dn("search.search_base", bad).unwrap_err().to_string();
            assert!(e.contains("search.search_base"), "{bad:?}: {e}");
        }
    }

    /// A directory's names are new names like any other: no invisible characters,
    /// normal form C (a look-alike of an internal user or group was made).
    #[test]
    fn look_alike_names_from_the_directory_are_not_made() {
        let s = State::default();
        for name in ["jose\u{301}", "a\u{34f}dmin"] {
            let e = signed_in(&s, &sign_in(name, &[])).unwrap_err().to_string();
            assert!(e.contains("username"), "{name:?}: {e}");
        }
        let events = signed_in(&s, &sign_in("bob", &["a\u{34f}dmins", "devs"])).unwrap();
        let groups: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::GroupCreated(g) => Some(g.name.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(groups, ["devs"]);
        let events = sync_groups(
            &s,
            &[group("a\u{34f}dmins", Some(&[])), group("ops", Some(&[]))],
            SyncOperation::UpdateAndImport,
            None,
            None,
        )
        .unwrap();
        assert!(
            events
                .iter()
                .all(|e| !matches!(e, Event::GroupCreated(g) if g.name != "ops")),
            "{events:?}"
        );
    }

    #[test]
    fn sign_in_creates_then_follows_the_directory_groups_only() {
        let mut s = State::default();
        // An internal group of a directory group's name is not taken over.
        apply(
            &mut s,
            vec![Event::GroupCreated(GroupCreated {
                name: "admins".into(),
                description: None,
                auto_join: false,
                admin_privileges: true,
                realm: "internal".into(),
                realm_attributes: None,
                external_id: None,
                members: vec![],
            })],
        );
        let events = signed_in(&s, &sign_in("alice", &["devs", "ops", "admins"])).unwrap();
        apply(&mut s, events);
        let alice = &s.directory.users["alice"];
        assert_eq!(alice.realm, LDAP_REALM);
        assert!(alice.password_hash.is_none());
        assert_eq!(
            alice.groups.iter().cloned().collect::<Vec<_>>(),
            ["devs", "ops"]
        );
        assert!(s.directory.groups["admins"].members.is_empty());
        // An internal group an admin added her to stays; `ops` goes.
        apply(
            &mut s,
            vec![Event::UserGroupsChanged {
                username: "alice".into(),
                added: vec!["admins".into()],
                removed: vec![],
            }],
        );
        let events = signed_in(&s, &sign_in("alice", &["devs"])).unwrap();
        assert_eq!(
            events,
            [Event::UserGroupsChanged {
                username: "alice".into(),
                added: vec![],
                removed: vec!["ops".into()],
            }]
        );
        apply(&mut s, events);
        assert!(signed_in(&s, &sign_in("alice", &["devs"]))
            .unwrap()
            .is_empty());
        // Not created when the setting does not create users.
        let mut no = sign_in("bob", &[]);
        no.auto_create = false;
        assert!(signed_in(&s, &no).is_err());
    }

    #[test]
    fn sync_adds_only_ldap_users_and_removes_who_left() {
        let mut s = State::default();
        let events = signed_in(&s, &sign_in("alice", &[])).unwrap();
        apply(&mut s, events);
        apply(
            &mut s,
            vec![Event::UserCreated(UserCreated {
                username: "bob".into(),
                email: None,
                password_hash: Some("x".into()),
                admin: false,
                profile_updatable: true,
                internal_password_disabled: false,
                disable_ui_access: false,
                realm: "internal".into(),
                status: UserStatus::Enabled,
                groups: vec![],
                scim: None,
            })],
        );
        let dir = [group("devs", Some(&["alice", "bob", "carol"]))];
        let events = sync_groups(&s, &dir, SyncOperation::UpdateAndImport, None, None).unwrap();
        apply(&mut s, events);
        let devs = &s.directory.groups["devs"];
        assert_eq!(devs.realm, LDAP_REALM);
        assert_eq!(devs.members.iter().cloned().collect::<Vec<_>>(), ["alice"]);
        // UPDATE does not create; IMPORT does not touch existing groups.
        let more = [group("new", Some(&["alice"])), group("devs", Some(&[]))];
        let events = sync_groups(&s, &more, SyncOperation::Import, None, None).unwrap();
        assert!(matches!(&events[..], [Event::GroupCreated(g)] if g.name == "new"));
        let events = sync_groups(&s, &more, SyncOperation::Update, None, None).unwrap();
        assert_eq!(
            events,
            [Event::GroupMembersChanged {
                group: "devs".into(),
                added: vec![],
                removed: vec!["alice".into()],
            }]
        );
        // Limited to one user: others' memberships are left alone.
        let events = sync_groups(&s, &more, SyncOperation::Update, Some("zed"), None).unwrap();
        assert!(events.is_empty());
    }

    #[test]
    fn groups_the_directory_no_longer_lists_lose_their_members() {
        let mut s = State::default();
        for who in ["alice", "bob"] {
            let events = signed_in(&s, &sign_in(who, &[])).unwrap();
            apply(&mut s, events);
        }
        let dn_group = |name: &str, dn: &str, strategy: &str| DirectoryGroup {
            name: name.into(),
            description: None,
            realm_attributes: format!(
                "ldapGroupName={name};groupsStrategy={strategy};groupDn={dn}"
            ),
            members: Some(vec!["alice".into(), "bob".into()]),
        };
        let listed = [
            dn_group("devs", "cn=devs,ou=groups,dc=x", "STATIC"),
            dn_group("ops", "CN=ops, OU=Groups, DC=x", "STATIC"),
            dn_group("deep", "cn=deep,ou=eng,ou=groups,dc=x", "STATIC"),
            dn_group("dyn", "cn=dyn,ou=groups,dc=x", "DYNAMIC"),
            dn_group("else", "cn=else,ou=other,dc=x", "STATIC"),
            dn_group("comma", "cn=a\\,b,ou=groups,dc=x", "STATIC"),
            // Under `cn=a\,ou=groups` (one value with a comma), right under `dc=x`: not
            // under the base, though its text ends with `,ou=groups,dc=x`.
            dn_group("escaped", "cn=e,cn=a\\,ou=groups,dc=x", "STATIC"),
        ];
        let events = sync_groups(&s, &listed, SyncOperation::UpdateAndImport, None, None).unwrap();
        apply(&mut s, events);
        let from = |sub_tree| ListedFrom {
            base: "ou=groups, dc=X".into(),
            sub_tree,
            strategy: "STATIC".into(),
        };
        let emptied = |s: &State, from: &ListedFrom, op, only: Option<&str>| -> Vec<String> {
            let events = sync_groups(s, &listed[..1], op, only, Some(from)).unwrap();
            events
                .iter()
                .map(|e| match e {
                    Event::GroupMembersChanged {
                        group,
                        added,
                        removed,
                    } => {
                        assert!(added.is_empty());
                        format!("{group}:{}", removed.join("+"))
                    }
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        // Only `devs` is listed now. One level: the children of the base of this strategy.
        assert_eq!(
            emptied(&s, &from(false), SyncOperation::Update, None),
            ["comma:alice+bob", "ops:alice+bob"]
        );
        // Any depth: `deep` too; never another strategy's group or another base's.
        assert_eq!(
            emptied(&s, &from(true), SyncOperation::UpdateAndImport, None),
            ["comma:alice+bob", "deep:alice+bob", "ops:alice+bob"]
        );
        // Limited to one user, or an import of new groups only: nothing else moves.
        assert_eq!(
            emptied(&s, &from(false), SyncOperation::Update, Some("bob")),
            ["comma:bob", "ops:bob"]
        );
        assert!(emptied(&s, &from(false), SyncOperation::Import, None).is_empty());
        // The groups stay (permissions may name them), empty.
        let events = sync_groups(
            &s,
            &listed[..1],
            SyncOperation::Update,
            None,
            Some(&from(false)),
        )
        .unwrap();
        apply(&mut s, events);
        assert!(s.directory.groups["ops"].members.is_empty());
        assert_eq!(s.directory.groups["dyn"].members.len(), 2);
        // Emptied once, nothing more to write.
        assert!(emptied(&s, &from(false), SyncOperation::Update, None).is_empty());
    }
}

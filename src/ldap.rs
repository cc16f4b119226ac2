//! The directory client of the LDAP realm (`ldap3`, blocking: callers run it on the
//! blocking pool or on the sync thread).
//!
//! Sign-in is search-then-bind (a manager bind, a search by the setting's filter, then a
//! bind as the entry found) or a bind as the DN the setting's pattern makes. An empty
//! password is refused before the directory is contacted: LDAP treats a bind with a DN
//! and no password as an *unauthenticated* bind that succeeds (RFC 4513 §5.1.2), which
//! must never count as a sign-in.
//!
//! Errors are two kinds: the credentials are wrong (`Ok(None)`), or the directory cannot
//! answer (`DirectoryError`: unreachable, TLS refused, the manager's bind refused) —
//! the caller answers 503 for those, never 401, so a directory that is down is not
//! mistaken for a wrong password (and nothing about it is cached).

use crate::domain::ldap::{DirectoryGroup, ListedFrom};
use gatehouse_schemas::{LdapGroupSetting, LdapSetting};
use ldap3::{dn_escape, ldap_escape, LdapConn, LdapConnSettings, LdapError, Scope, SearchEntry};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// How long a connection attempt (and each operation) may take.
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("the LDAP directory of setting `{key}` is not available: {message}")]
    Unavailable { key: String, message: String },
    #[error("LDAP setting `{key}`: {message}")]
    Config { key: String, message: String },
}

impl DirectoryError {
    /// What a sign-in's answer says: the setting, not the directory's address or the
    /// low-level error (the log has those; admins' own calls show them whole).
    pub fn public(&self) -> String {
        match self {
            DirectoryError::Unavailable { key, .. } => format!(
                "the LDAP directory of setting `{key}` is not available (the server log says why)"
            ),
            DirectoryError::Config { key, .. } => {
                format!("LDAP setting `{key}` cannot be used (the server log says why)")
            }
        }
    }
}

/// A user the directory signed in.
#[derive(Debug, Clone)]
pub struct DirectoryUser {
    pub dn: String,
    pub email: Option<String>,
    /// `None` when no group setting reads this directory.
    pub groups: Option<Vec<DirectoryGroup>>,
}

/// One `ldap[s]://host:port` and the base DN its URL names.
struct Endpoint {
    url: String,
    ldaps: bool,
    base: String,
}

fn endpoints(s: &LdapSetting) -> Vec<Endpoint> {
    s.ldap_url
        .split_whitespace()
        .map(|u| {
            let (scheme, rest) = u.split_once("://").unwrap_or(("ldap", u));
            let (hostport, base) = rest.split_once('/').unwrap_or((rest, ""));
            Endpoint {
                url: format!("{}://{hostport}", scheme.to_ascii_lowercase()),
                ldaps: scheme.eq_ignore_ascii_case("ldaps"),
                base: percent_decode(base),
            }
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `rel` under `base` (a DN pattern, search base or group base is relative to the URL's
/// base DN, as in JFrog); an absolute one (ending in the base) is taken as it is.
fn under(rel: &str, base: &str) -> String {
    let rel = rel.trim().trim_end_matches(',');
    if rel.is_empty() {
        return base.to_string();
    }
    if base.is_empty()
        || rel
            .to_ascii_lowercase()
            .ends_with(&base.to_ascii_lowercase())
    {
        return rel.to_string();
    }
    format!("{rel},{base}")
}

/// A connection to the first endpoint that answers, and its base DN.
pub struct Directory {
    conn: LdapConn,
    base: String,
    key: String,
}

fn unavailable(key: &str, e: impl std::fmt::Display) -> DirectoryError {
    DirectoryError::Unavailable {
        key: key.into(),
        message: e.to_string(),
    }
}

fn rc(e: &LdapError) -> Option<u32> {
    match e {
        LdapError::LdapResult { result } => Some(result.rc),
        _ => None,
    }
}

/// The result codes of a bind that mean "these credentials do not sign in" rather than
/// "the directory cannot answer": invalidCredentials, noSuchObject,
/// inappropriateAuthentication, insufficientAccessRights, unwillingToPerform. Not
/// invalidDNSyntax: with the user's name escaped into the DN, a DN the directory cannot
/// read is the setting's `user_dn_pattern` at fault — counted as a wrong password, it
/// locked users who typed the right one.
const REFUSED: &[u32] = &[49, 32, 48, 50, 53];

impl Directory {
    pub fn connect(s: &LdapSetting) -> Result<Directory, DirectoryError> {
        let tls = match s.ca_certificate.as_deref().filter(|p| !p.trim().is_empty()) {
            Some(pem) => {
                crate::tls::client_with_roots(pem).map_err(|e| DirectoryError::Config {
                    key: s.key.clone(),
                    message: format!("`ca_certificate`: {e}"),
                })?
            }
            None => crate::tls::client(),
        };
        let mut last = String::from("no URL");
        for ep in endpoints(s) {
            let settings = LdapConnSettings::new()
                .set_conn_timeout(TIMEOUT)
                .set_config(Arc::clone(&tls))
                .set_starttls(s.start_tls && !ep.ldaps);
            match LdapConn::with_settings(settings, &ep.url) {
                Ok(conn) => {
                    return Ok(Directory {
                        conn,
                        base: ep.base,
                        key: s.key.clone(),
                    })
                }
                Err(e) => {
                    tracing::info!(setting = %s.key, url = %ep.url, error = %e, "LDAP directory not reachable");
                    last = format!("{}: {e}", ep.url);
                }
            }
        }
        Err(unavailable(&s.key, last))
    }

    /// Bind as the setting's manager (when it has one); an anonymous connection otherwise.
    fn bind_manager(
        &mut self,
        s: &LdapSetting,
        password: Option<&str>,
    ) -> Result<(), DirectoryError> {
        let Some(dn) = s.manager_dn.as_deref().filter(|d| !d.is_empty()) else {
            return Ok(());
        };
        // No password: an unauthenticated bind would only pretend to be the manager.
        let Some(password) = password.filter(|p| !p.is_empty()) else {
            return Err(DirectoryError::Config {
                key: s.key.clone(),
                message: "the manager DN has no password".into(),
            });
        };
        match self
            .conn
            .with_timeout(TIMEOUT)
            .simple_bind(dn, password)
            .and_then(|r| r.success())
        {
            Ok(_) => Ok(()),
            Err(e) if rc(&e) == Some(49) => Err(DirectoryError::Config {
                key: s.key.clone(),
                message: "the directory refused the manager's credentials".into(),
            }),
            Err(e) => Err(unavailable(&self.key, e)),
        }
    }

    /// Entries under `base` matching `filter`; a base that does not exist has none.
    fn search(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        match self
            .conn
            .with_timeout(TIMEOUT)
            .search(base, scope, filter, attrs.to_vec())
            .and_then(|r| r.success())
        {
            Ok((entries, _)) => Ok(entries.into_iter().map(SearchEntry::construct).collect()),
            Err(e) if rc(&e) == Some(32) => Ok(vec![]),
            Err(e) => Err(unavailable(&self.key, e)),
        }
    }

    /// Sign `username` in with `password`: `Ok(None)` when the directory says no (or
    /// knows no such user).
    pub fn sign_in(
        &mut self,
        s: &LdapSetting,
        manager_password: Option<&str>,
        groups: &[LdapGroupSetting],
        username: &str,
        password: &str,
    ) -> Result<Option<DirectoryUser>, DirectoryError> {
        if password.is_empty() {
            return Ok(None);
        }
        let email_attr = s.email_attribute.clone().filter(|a| !a.is_empty());
        let mut attrs: Vec<String> = email_attr.iter().cloned().collect();
        for g in groups.iter().filter(|g| g.strategy == "DYNAMIC") {
            attrs.push(g.group_member_attribute.clone());
        }
        let attr_refs: Vec<&str> = attrs.iter().map(String::as_str).collect();
        let filter = s.search_filter.as_deref().unwrap_or("").trim();
        let mut entry: Option<SearchEntry> = None;
        let dn = if !filter.is_empty() {
            self.bind_manager(s, manager_password)?;
            let f = wrap(&filter.replace("{0}", &ldap_escape(username)));
            let scope = if s.search_sub_tree {
                Scope::Subtree
            } else {
                Scope::OneLevel
            };
            let bases: Vec<String> = match s.search_base.as_deref().filter(|b| !b.is_empty()) {
                Some(b) => b.split('|').map(|b| under(b, &self.base)).collect(),
                None => vec![self.base.clone()],
            };
            let mut found = Vec::new();
            for base in bases {
                found.extend(self.search(&base, scope, &f, &attr_refs)?);
            }
            // None, or more than one: not a sign-in (an ambiguous filter must not pick).
            if found.len() != 1 {
                return Ok(None);
            }
            let e = found.pop().expect("one entry");
            let dn = e.dn.clone();
            entry = Some(e);
            dn
        } else if let Some(pattern) = s.user_dn_pattern.as_deref().filter(|p| !p.is_empty()) {
            under(&pattern.replace("{0}", &dn_escape(username)), &self.base)
        } else {
            return Err(DirectoryError::Config {
                key: s.key.clone(),
                message: "neither a user DN pattern nor a search filter".into(),
            });
        };
        match self
            .conn
            .with_timeout(TIMEOUT)
            .simple_bind(&dn, password)
            .and_then(|r| r.success())
        {
            Ok(_) => {}
            Err(e) if rc(&e).is_some_and(|c| REFUSED.contains(&c)) => return Ok(None),
            Err(e) => return Err(unavailable(&self.key, e)),
        }
        // Read the rest as the manager where there is one (the user may not see groups).
        if s.manager_dn.as_deref().is_some_and(|d| !d.is_empty()) {
            self.bind_manager(s, manager_password)?;
        }
        let entry = match entry {
            Some(e) => Some(e),
            None if !attr_refs.is_empty() => self
                .search(&dn, Scope::Base, "(objectClass=*)", &attr_refs)?
                .pop(),
            None => None,
        };
        let email = match (&email_attr, &entry) {
            (Some(a), Some(e)) => first(&e.attrs, a),
            _ => None,
        };
        let groups = if groups.is_empty() {
            None
        } else {
            let mut found = Vec::new();
            for g in groups {
                found.extend(self.groups_of(g, &dn, entry.as_ref())?);
            }
            Some(found)
        };
        Ok(Some(DirectoryUser { dn, email, groups }))
    }

    /// The groups of group setting `g` that the user with entry `dn` belongs to.
    fn groups_of(
        &mut self,
        g: &LdapGroupSetting,
        dn: &str,
        entry: Option<&SearchEntry>,
    ) -> Result<Vec<DirectoryGroup>, DirectoryError> {
        let base = under(g.group_base_dn.as_deref().unwrap_or(""), &self.base);
        let name_attr = g.group_name_attribute.as_str();
        let desc_attr = g.description_attribute.clone().unwrap_or_default();
        let mut attrs = vec![name_attr];
        if !desc_attr.is_empty() {
            attrs.push(&desc_attr);
        }
        let scope = if g.sub_tree {
            Scope::Subtree
        } else {
            Scope::OneLevel
        };
        match g.strategy.as_str() {
            "STATIC" => {
                let f = format!(
                    "(&{}({}={}))",
                    group_filter(g),
                    g.group_member_attribute,
                    ldap_escape(dn)
                );
                Ok(self
                    .search(&base, scope, &f, &attrs)?
                    .into_iter()
                    .filter_map(|e| directory_group(g, &e, None))
                    .collect())
            }
            "DYNAMIC" => {
                let dns: Vec<String> = entry
                    .and_then(|e| all(&e.attrs, &g.group_member_attribute))
                    .unwrap_or_default();
                let mut out = Vec::new();
                for group_dn in dns {
                    if !group_dn
                        .to_ascii_lowercase()
                        .ends_with(&base.to_ascii_lowercase())
                    {
                        continue;
                    }
                    let entries = self.search(&group_dn, Scope::Base, &group_filter(g), &attrs)?;
                    out.extend(entries.iter().filter_map(|e| directory_group(g, e, None)));
                }
                Ok(out)
            }
            // The user's DN names its groups: each RDN above the entry's own whose
            // attribute is the group name attribute (`ou=devs,ou=eng,…`).
            _ => Ok(rdns(dn)
                .into_iter()
                .skip(1)
                .filter(|(a, _)| a.eq_ignore_ascii_case(name_attr))
                .map(|(_, v)| {
                    let name = v.to_lowercase();
                    DirectoryGroup {
                        realm_attributes: realm_attributes(
                            &name,
                            g,
                            &group_dn_of(dn, name_attr, &v),
                        ),
                        name,
                        description: None,
                        members: None,
                    }
                })
                .collect()),
        }
    }

    /// Every group of group setting `g` with its members' user names (the login
    /// attribute of `s`), for an import. `HIERARCHICAL` groups exist only in users' DNs
    /// and are found at sign-in.
    pub fn list_groups(
        &mut self,
        s: &LdapSetting,
        manager_password: Option<&str>,
        g: &LdapGroupSetting,
    ) -> Result<(Vec<DirectoryGroup>, ListedFrom), DirectoryError> {
        self.bind_manager(s, manager_password)?;
        let base = under(g.group_base_dn.as_deref().unwrap_or(""), &self.base);
        let listed_from = ListedFrom {
            base: base.clone(),
            sub_tree: g.sub_tree,
            strategy: g.strategy.clone(),
        };
        let login = login_attribute(s);
        let scope = if g.sub_tree {
            Scope::Subtree
        } else {
            Scope::OneLevel
        };
        let desc_attr = g.description_attribute.clone().unwrap_or_default();
        match g.strategy.as_str() {
            "STATIC" => {
                let mut attrs = vec![g.group_name_attribute.as_str(), &g.group_member_attribute];
                if !desc_attr.is_empty() {
                    attrs.push(&desc_attr);
                }
                let entries = self.search(&base, scope, &group_filter(g), &attrs)?;
                let mut names: HashMap<String, Option<String>> = HashMap::new();
                let mut out = Vec::new();
                for e in entries {
                    let member_dns = all(&e.attrs, &g.group_member_attribute).unwrap_or_default();
                    let mut members = Vec::new();
                    for m in member_dns {
                        let name = match names.get(&m) {
                            Some(n) => n.clone(),
                            None => {
                                let n = self.username_of(&m, &login)?;
                                names.insert(m.clone(), n.clone());
                                n
                            }
                        };
                        members.extend(name);
                    }
                    out.extend(directory_group(g, &e, Some(members)));
                }
                Ok((out, listed_from))
            }
            "DYNAMIC" => {
                let mut attrs = vec![g.group_name_attribute.as_str()];
                if !desc_attr.is_empty() {
                    attrs.push(&desc_attr);
                }
                let entries = self.search(&base, scope, &group_filter(g), &attrs)?;
                let user_base = under(
                    s.search_base
                        .as_deref()
                        .and_then(|b| b.split('|').next())
                        .unwrap_or(""),
                    &self.base,
                );
                let mut out = Vec::new();
                for e in entries {
                    let f = format!("({}={})", g.group_member_attribute, ldap_escape(&e.dn));
                    let members = self
                        .search(&user_base, Scope::Subtree, &f, &[login.as_str()])?
                        .iter()
                        .filter_map(|u| first(&u.attrs, &login).map(|n| n.to_lowercase()))
                        .collect();
                    out.extend(directory_group(g, &e, Some(members)));
                }
                Ok((out, listed_from))
            }
            _ => Err(DirectoryError::Config {
                key: s.key.clone(),
                message: format!(
                    "group setting `{}`: HIERARCHICAL groups are read from users' DNs at sign-in; they cannot be imported",
                    g.name
                ),
            }),
        }
    }

    /// The user name of the entry `dn`: its RDN value when the RDN is the login
    /// attribute, else the attribute read from the entry.
    fn username_of(&mut self, dn: &str, login: &str) -> Result<Option<String>, DirectoryError> {
        if let Some((a, v)) = rdns(dn).into_iter().next() {
            if a.eq_ignore_ascii_case(login) {
                return Ok(Some(v.to_lowercase()));
            }
        }
        Ok(self
            .search(dn, Scope::Base, "(objectClass=*)", &[login])?
            .first()
            .and_then(|e| first(&e.attrs, login))
            .map(|n| n.to_lowercase()))
    }
}

impl Drop for Directory {
    fn drop(&mut self) {
        let _ = self.conn.unbind();
    }
}

/// A filter as the directory is sent it: a bare `uid=x` in parentheses.
pub(crate) fn wrap(filter: &str) -> String {
    if filter.starts_with('(') {
        filter.to_string()
    } else {
        format!("({filter})")
    }
}

fn group_filter(g: &LdapGroupSetting) -> String {
    match g.filter.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
        Some(f) => wrap(f),
        None => "(objectClass=*)".into(),
    }
}

/// The attribute users sign in by: `uid` of `(uid={0})` or of `uid={0},ou=people`.
pub fn login_attribute(s: &LdapSetting) -> String {
    let from = |text: &str| {
        let i = text.find("={0}")?;
        let start = text[..i]
            .rfind(|c: char| c == '(' || c == '&' || c == '|' || c == ',' || c == '!')
            .map_or(0, |p| p + 1);
        Some(text[start..i].trim().to_string()).filter(|a| !a.is_empty())
    };
    s.search_filter
        .as_deref()
        .and_then(from)
        .or_else(|| s.user_dn_pattern.as_deref().and_then(from))
        .unwrap_or_else(|| "uid".into())
}

/// The RDNs of a DN, first (the entry's own) first, values unescaped. Multi-valued RDNs
/// keep their first part.
fn rdns(dn: &str) -> Vec<(String, String)> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in dn.chars() {
        if escaped {
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts
        .into_iter()
        .filter_map(|p| {
            let first = p.split('+').next().unwrap_or("");
            let (a, v) = first.split_once('=')?;
            Some((a.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// The DN of the hierarchy level `attr=value` within `dn`.
fn group_dn_of(dn: &str, attr: &str, value: &str) -> String {
    let needle = format!(
        "{}={}",
        attr.to_ascii_lowercase(),
        value.to_ascii_lowercase()
    );
    match dn.to_ascii_lowercase().find(&needle) {
        Some(i) => dn[i..].to_string(),
        None => dn.to_string(),
    }
}

fn find<'a>(attrs: &'a HashMap<String, Vec<String>>, name: &str) -> Option<&'a Vec<String>> {
    attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn first(attrs: &HashMap<String, Vec<String>>, name: &str) -> Option<String> {
    find(attrs, name).and_then(|v| v.first().cloned())
}

fn all(attrs: &HashMap<String, Vec<String>>, name: &str) -> Option<Vec<String>> {
    find(attrs, name).cloned()
}

fn realm_attributes(name: &str, g: &LdapGroupSetting, dn: &str) -> String {
    format!(
        "ldapGroupName={name};groupsStrategy={};groupDn={dn}",
        g.strategy
    )
}

fn directory_group(
    g: &LdapGroupSetting,
    e: &SearchEntry,
    members: Option<Vec<String>>,
) -> Option<DirectoryGroup> {
    let name = first(&e.attrs, &g.group_name_attribute)?.to_lowercase();
    let description = g
        .description_attribute
        .as_deref()
        .filter(|a| !a.is_empty())
        .and_then(|a| first(&e.attrs, a))
        // The directory's text, made to fit the rule every group's description keeps.
        .map(|d| crate::domain::fit_text(&d, 1024));
    Some(DirectoryGroup {
        realm_attributes: realm_attributes(&name, g, &e.dn),
        name,
        description,
        members,
    })
}

/// Sign in against the enabled LDAP settings in key order: the first that knows the
/// credentials wins. A directory that cannot answer is an error only when no other one
/// signed the user in. `unseal` opens the sealed manager password.
pub fn sign_in(
    ldap: &gatehouse_projections::Ldap,
    unseal: &dyn Fn(&str) -> Option<String>,
    username: &str,
    password: &str,
) -> Result<Option<(String, DirectoryUser)>, DirectoryError> {
    if password.is_empty() {
        return Ok(None);
    }
    let mut failure = None;
    for s in ldap.settings.values().filter(|s| s.enabled) {
        let groups: Vec<LdapGroupSetting> = ldap.group_settings_of(&s.key).cloned().collect();
        let manager = s.manager_password.as_deref().and_then(unseal);
        let attempt = Directory::connect(s)
            .and_then(|mut d| d.sign_in(s, manager.as_deref(), &groups, username, password));
        match attempt {
            Ok(Some(u)) => return Ok(Some((s.key.clone(), u))),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(setting = %s.key, error = %e, "LDAP sign-in could not be checked");
                failure = Some(e);
            }
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

/// Read the groups of group setting `name` for an import, and where they were read.
pub fn list_groups(
    ldap: &gatehouse_projections::Ldap,
    unseal: &dyn Fn(&str) -> Option<String>,
    name: &str,
) -> Result<(Vec<DirectoryGroup>, ListedFrom), DirectoryError> {
    let g = ldap
        .group_settings
        .get(name)
        .ok_or_else(|| DirectoryError::Config {
            key: name.into(),
            message: "no such LDAP group setting".into(),
        })?;
    let s = ldap
        .settings
        .get(&g.enabled_ldap)
        .ok_or_else(|| DirectoryError::Config {
            key: g.enabled_ldap.clone(),
            message: "no such LDAP setting".into(),
        })?;
    let manager = s.manager_password.as_deref().and_then(unseal);
    Directory::connect(s)?.list_groups(s, manager.as_deref(), g)
}

/// The group settings an import on a schedule reads: those of enabled LDAP settings
/// whose strategy can be imported.
pub fn importable(ldap: &gatehouse_projections::Ldap) -> Vec<String> {
    let enabled: BTreeMap<&str, bool> = ldap
        .settings
        .values()
        .map(|s| (s.key.as_str(), s.enabled))
        .collect();
    ldap.group_settings
        .values()
        .filter(|g| enabled.get(g.enabled_ldap.as_str()) == Some(&true))
        .filter(|g| g.strategy != "HIERARCHICAL")
        .map(|g| g.name.clone())
        .collect()
}

/// What an import did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Imported {
    /// Groups the directory has (for this group setting).
    pub groups: usize,
    /// Events written (groups created or updated, membership changes).
    pub events: usize,
    pub seq: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Submit(#[from] crate::writer::SubmitError),
}

/// Import group setting `name`'s groups (blocking: the directory, then the writer).
pub fn import(
    state: &std::sync::RwLock<gatehouse_projections::State>,
    personal: &crate::personal::PersonalKeys,
    writer: &crate::writer::WriterHandle,
    ctx: crate::writer::CommandContext,
    name: &str,
    operation: crate::domain::ldap::SyncOperation,
    only_user: Option<String>,
) -> Result<Imported, ImportError> {
    let ldap = state
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .settings
        .ldap
        .clone();
    let (groups, listed_from) = list_groups(&ldap, &|v| personal.decrypt(v), name)?;
    let count = groups.len();
    let committed = writer.submit_blocking(
        crate::domain::Command::SyncLdapGroups {
            groups,
            operation,
            only_user,
            listed_from: Some(listed_from),
        },
        ctx,
    )?;
    Ok(Imported {
        groups: count,
        events: committed.events,
        seq: committed.seq,
    })
}

/// Import every importable group setting now (the schedule's round); failures are
/// logged and the next round tries again.
pub fn import_all(
    state: &std::sync::RwLock<gatehouse_projections::State>,
    personal: &crate::personal::PersonalKeys,
    writer: &crate::writer::WriterHandle,
) {
    let names = importable(
        &state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .settings
            .ldap,
    );
    for name in names {
        let ctx = crate::writer::CommandContext {
            actor: "system".into(),
            request_id: "ldap-sync".into(),
        };
        match import(
            state,
            personal,
            writer,
            ctx,
            &name,
            crate::domain::ldap::SyncOperation::UpdateAndImport,
            None,
        ) {
            Ok(done) => {
                tracing::debug!(group_setting = %name, groups = done.groups, events = done.events, "LDAP groups synchronised")
            }
            Err(e) => {
                tracing::warn!(group_setting = %name, error = %e, "LDAP groups not synchronised")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_base() {
        let s = LdapSetting {
            ldap_url: "ldaps://a.example:636/dc=example,dc=com ldap://b:389/dc=x%2Cy".into(),
            ..Default::default()
        };
        let e = endpoints(&s);
        assert_eq!(e[0].url, "ldaps://a.example:636");
        assert!(e[0].ldaps);
        assert_eq!(e[0].base, "dc=example,dc=com");
        assert_eq!(e[1].base, "dc=x,y");
        assert_eq!(
            under("ou=people", "dc=example,dc=com"),
            "ou=people,dc=example,dc=com"
        );
        assert_eq!(under("", "dc=e"), "dc=e");
        assert_eq!(under("ou=p,dc=e", "dc=e"), "ou=p,dc=e");
    }

    #[test]
    fn login_attribute_from_filter_or_pattern() {
        let mut s = LdapSetting {
            search_filter: Some("(&(objectClass=person)(sAMAccountName={0}))".into()),
            ..Default::default()
        };
        assert_eq!(login_attribute(&s), "sAMAccountName");
        s.search_filter = None;
        s.user_dn_pattern = Some("uid={0},ou=people".into());
        assert_eq!(login_attribute(&s), "uid");
    }

    #[test]
    fn rdns_unescape() {
        let r = rdns("uid=a\\,b,ou=devs,ou=eng,dc=e");
        assert_eq!(r[0], ("uid".into(), "a,b".into()));
        assert_eq!(r[1], ("ou".into(), "devs".into()));
        assert_eq!(
            group_dn_of("uid=a,ou=Devs,dc=e", "ou", "devs"),
            "ou=Devs,dc=e"
        );
    }
}

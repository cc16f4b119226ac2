//! The directory client of the LDAP realm (`ldap3`, blocking: callers run it on the
//! blocking pool or on the sync thread).
//!
//! Sign-in is search-then-bind (a manager bind, a search by the setting's filter, then a
//! bind as the entry found) or a bind as the DN the setting's pattern makes. An empty
//! password is refused before the directory is contacted: LDAP treats a bind with a DN
//! and no password as an *unauthenticated* bind that succeeds (RFC 4513 §5.1.2), which
//! must never count as a sign-in.
//!
//! Errors are two kinds: the credentials are not taken (`Ok(Err(Miss))`: the password is
//! wrong, or no directory knows the name), or the directory cannot
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

/// Why a directory did not sign a user in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Miss {
    /// A directory refused the password (a bind to a DN the setting's pattern makes is
    /// refused alike for a wrong password and a missing entry: it counts as this).
    Refused,
    /// No directory knows the name (or a search filter matched several entries): the
    /// password was never checked, so it is not a failure of the user's.
    Unknown,
}

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
    /// Whether the user's entry was read for its e-mail: an entry the user may not read
    /// (an ACL, with no manager) says nothing about it, and a kept e-mail stays.
    pub email_read: bool,
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

/// The servers of an `ldap_url` (scheme, host and port of each), in no order.
pub fn servers(ldap_url: &str) -> std::collections::BTreeSet<String> {
    ldap_url
        .split_whitespace()
        .map(|u| {
            let (scheme, rest) = u.split_once("://").unwrap_or(("ldap", u));
            let hostport = rest.split_once('/').map_or(rest, |(h, _)| h);
            format!(
                "{}://{}",
                scheme.to_ascii_lowercase(),
                hostport.to_ascii_lowercase()
            )
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
    // Compared as DNs: `ou=people, dc=example, dc=com` is under `dc=example,dc=com` (it
    // was taken as relative, the base added again, and every sign-in found nobody).
    if base.is_empty() || crate::domain::ldap::dn_within(rel, base) {
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
    /// Run `work` on a connection to the setting's URLs in turn, until one answers: a
    /// URL that does not open, or that opens and then cannot answer (a timeout, busy,
    /// unavailable), is given up for the next (a first server that accepted connections
    /// and never answered made every sign-in a 503, the second never asked).
    pub fn with_failover<T>(
        s: &LdapSetting,
        mut work: impl FnMut(&mut Directory) -> Result<T, DirectoryError>,
    ) -> Result<T, DirectoryError> {
        let tls = match s.ca_certificate.as_deref().filter(|p| !p.trim().is_empty()) {
            Some(pem) => {
                crate::tls::client_with_roots(pem).map_err(|e| DirectoryError::Config {
                    key: s.key.clone(),
                    message: format!("`ca_certificate`: {e}"),
                })?
            }
            None => crate::tls::client(),
        };
        let mut last = unavailable(&s.key, "no URL");
        for ep in endpoints(s) {
            let settings = LdapConnSettings::new()
                .set_conn_timeout(TIMEOUT)
                .set_config(Arc::clone(&tls))
                .set_starttls(s.start_tls && !ep.ldaps);
            let url = ep.url.clone();
            let conn = match LdapConn::with_settings(settings, &ep.url) {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::info!(setting = %s.key, url = %url, error = %e, "LDAP directory not reachable");
                    last = unavailable(&s.key, format!("{url}: {e}"));
                    continue;
                }
            };
            let mut directory = Directory {
                conn,
                base: ep.base,
                key: s.key.clone(),
            };
            match work(&mut directory) {
                Err(e @ DirectoryError::Unavailable { .. }) => {
                    tracing::info!(setting = %s.key, url = %url, error = %e, "LDAP directory did not answer; trying the next URL");
                    last = e;
                }
                done => return done,
            }
        }
        Err(last)
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

    /// Sign `username` in with `password`: `Ok(Err(Miss))` when the directory says no,
    /// or knows no such user.
    pub fn sign_in(
        &mut self,
        s: &LdapSetting,
        manager_password: Option<&str>,
        groups: &[LdapGroupSetting],
        username: &str,
        password: &str,
    ) -> Result<Result<DirectoryUser, Miss>, DirectoryError> {
        if password.is_empty() {
            return Ok(Err(Miss::Refused));
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
            let bases = self.search_bases(s);
            let mut found = Vec::new();
            for base in bases {
                found.extend(self.search(&base, scope, &f, &attr_refs)?);
            }
            // None, or more than one: not a sign-in (an ambiguous filter must not pick).
            if found.len() != 1 {
                return Ok(Err(Miss::Unknown));
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
            Err(e) if rc(&e).is_some_and(|c| REFUSED.contains(&c)) => {
                // A bind to a DN the pattern made is refused alike for a wrong password
                // and a missing entry; with a manager the entry is looked for, so that a
                // name this directory does not hold is no failure of the user's (right
                // passwords of a user of another, paused setting locked it).
                let pattern = entry.is_none();
                let manager = s.manager_dn.as_deref().is_some_and(|d| !d.is_empty());
                if pattern && manager {
                    self.bind_manager(s, manager_password)?;
                    if self
                        .search(&dn, Scope::Base, "(objectClass=*)", &["1.1"])?
                        .is_empty()
                    {
                        return Ok(Err(Miss::Unknown));
                    }
                }
                return Ok(Err(Miss::Refused));
            }
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
        let email_read = email_attr.is_some() && entry.is_some();
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
        Ok(Ok(DirectoryUser {
            dn,
            email,
            email_read,
            groups,
        }))
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
                    if !crate::domain::ldap::dn_within(&group_dn, &base) {
                        continue;
                    }
                    let entries = self.search(&group_dn, Scope::Base, &group_filter(g), &attrs)?;
                    out.extend(entries.iter().filter_map(|e| directory_group(g, e, None)));
                }
                Ok(out)
            }
            // The user's DN names its groups: each RDN above the entry's own whose
            // attribute is the group name attribute (`ou=devs,ou=eng,…`), below the
            // group base (every user under `ou=people` joined a group `people`).
            _ => Ok(rdns(dn)
                .into_iter()
                .skip(1)
                .filter(|rdn| {
                    let group_dn = &dn[rdn.at..];
                    crate::domain::ldap::dn_within(group_dn, &base)
                        && !crate::domain::ldap::dn_within(&base, group_dn)
                })
                .flat_map(|rdn| {
                    let group_dn = &dn[rdn.at..];
                    rdn.pairs
                        .into_iter()
                        .filter(|(a, _)| a.eq_ignore_ascii_case(name_attr))
                        .map(move |(_, v)| {
                            let name = v.to_lowercase();
                            DirectoryGroup {
                                realm_attributes: realm_attributes(&name, g, group_dn),
                                name,
                                description: None,
                                members: None,
                            }
                        })
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
                                // Only an entry where this setting's sign-in finds users:
                                // any `uid=alice` elsewhere in the tree was taken for the
                                // user `alice` (who got its groups and their grants).
                                let n = if self.users_could_be(s, &m) {
                                    self.username_of(&m, &login)?
                                } else {
                                    None
                                };
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
                let places = self.user_places(s);
                let mut out = Vec::new();
                for e in entries {
                    let f = format!("({}={})", g.group_member_attribute, ldap_escape(&e.dn));
                    // Only entries where this setting's sign-in finds users, as for
                    // STATIC groups: searched under the first base alone and always its
                    // whole subtree, members in the other bases were left out and any
                    // `uid=alice` below the first was taken for the user `alice`.
                    let mut members = std::collections::BTreeSet::new();
                    for (place, scope) in &places {
                        for u in self.search(place, *scope, &f, &[login.as_str()])? {
                            if !self.users_could_be(s, &u.dn) {
                                continue;
                            }
                            if let Some(name) = self.username_of_entry(&u, &login) {
                                members.insert(name);
                            }
                        }
                    }
                    out.extend(directory_group(g, &e, Some(members.into_iter().collect())));
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

    /// Where setting `s` searches for users: its search bases (`|` between them) under
    /// the URL's base, or that base.
    fn search_bases(&self, s: &LdapSetting) -> Vec<String> {
        match s.search_base.as_deref().filter(|b| !b.is_empty()) {
            Some(b) => b.split('|').map(|b| under(b, &self.base)).collect(),
            None => vec![self.base.clone()],
        }
    }

    /// Where setting `s` finds users, with how deep: its search bases (with a search
    /// filter), else its DN pattern's parent (one level), else nowhere.
    fn user_places(&self, s: &LdapSetting) -> Vec<(String, Scope)> {
        if !s.search_filter.as_deref().unwrap_or("").trim().is_empty() {
            let scope = if s.search_sub_tree {
                Scope::Subtree
            } else {
                Scope::OneLevel
            };
            return self
                .search_bases(s)
                .into_iter()
                .map(|b| (b, scope))
                .collect();
        }
        let Some(pattern) = s.user_dn_pattern.as_deref().filter(|p| !p.is_empty()) else {
            return Vec::new();
        };
        let pattern = under(pattern, &self.base);
        rdns(&pattern)
            .get(1)
            .map(|r| vec![(pattern[r.at..].to_string(), Scope::OneLevel)])
            .unwrap_or_default()
    }

    /// The user name of a user entry read with its login attribute: that attribute, or
    /// its RDN's value when the RDN is the login attribute (`cn=Dave Jones+uid=dave`).
    fn username_of_entry(&self, entry: &SearchEntry, login: &str) -> Option<String> {
        if let Some(name) = first(&entry.attrs, login) {
            return Some(name.to_lowercase());
        }
        rdns(&entry.dn).into_iter().next().and_then(|own| {
            own.pairs
                .into_iter()
                .find(|(a, _)| a.eq_ignore_ascii_case(login))
                .map(|(_, v)| v.to_lowercase())
        })
    }

    /// Whether `dn` is where setting `s` signs users in: under one of its search bases
    /// (directly, without `search_sub_tree`), or its DN pattern's parent.
    fn users_could_be(&self, s: &LdapSetting, dn: &str) -> bool {
        use crate::domain::ldap::dn_within;
        let Some(parent) = rdns(dn).get(1).map(|r| &dn[r.at..]) else {
            return false;
        };
        let same = |a: &str, b: &str| dn_within(a, b) && dn_within(b, a);
        if !s.search_filter.as_deref().unwrap_or("").trim().is_empty() {
            let bases = self.search_bases(s);
            return bases.iter().any(|base| {
                if s.search_sub_tree {
                    dn_within(parent, base)
                } else {
                    same(parent, base)
                }
            });
        }
        let Some(pattern) = s.user_dn_pattern.as_deref().filter(|p| !p.is_empty()) else {
            return false;
        };
        let pattern = under(pattern, &self.base);
        rdns(&pattern)
            .get(1)
            .is_some_and(|r| same(parent, &pattern[r.at..]))
    }

    /// The user name of the entry `dn`: its RDN value when the RDN is the login
    /// attribute, else the attribute read from the entry.
    fn username_of(&mut self, dn: &str, login: &str) -> Result<Option<String>, DirectoryError> {
        // The login attribute among the entry's own RDN's pairs (`cn=Dave Jones+uid=dave`).
        if let Some(own) = rdns(dn).into_iter().next() {
            if let Some((_, v)) = own
                .pairs
                .iter()
                .find(|(a, _)| a.eq_ignore_ascii_case(login))
            {
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

/// One RDN of a DN: where it starts in the DN (what follows is its parent's DN) and its
/// attribute-value pairs (several in a multi-valued RDN, `cn=Dave Jones+uid=dave`).
#[derive(Debug, PartialEq)]
struct Rdn {
    at: usize,
    pairs: Vec<(String, String)>,
}

/// The RDNs of a DN, the entry's own first, read as RFC 4514 writes them: `,` (or `;`)
/// between RDNs and `+` between the pairs of one, each outside an escape; a value's
/// `\,` style escapes and `\2C` style hex escapes (of UTF-8 bytes) undone; spaces
/// around a value that are not escaped dropped. A value written as BER in hex (`#04…`)
/// is left out: only the entry itself can say what it is. Before, escapes were undone
/// before a multi-valued RDN was split and hex escapes kept as text: a member
/// `uid=a\+b` was read as the user `a`, and `uid=smith\2C john` as `smith2c john`, so a
/// group import made `a` a member and took both real members out.
fn rdns(dn: &str) -> Vec<Rdn> {
    #[derive(Default)]
    struct Reader {
        pairs: Vec<(String, String)>,
        attr: Vec<u8>,
        value: Vec<u8>,
        in_value: bool,
        // The value's length up to its last escaped byte: spaces before it stay.
        kept: usize,
        ber: bool,
    }
    impl Reader {
        fn pair(&mut self) {
            let mut end = self.value.len();
            while end > self.kept && self.value[end - 1] == b' ' {
                end -= 1;
            }
            let attr = String::from_utf8_lossy(&self.attr).trim().to_string();
            if self.in_value && !attr.is_empty() && !self.ber {
                let value = String::from_utf8_lossy(&self.value[..end]).into_owned();
                self.pairs.push((attr, value));
            }
            self.attr.clear();
            self.value.clear();
            self.in_value = false;
            self.kept = 0;
            self.ber = false;
        }
        fn push(&mut self, byte: u8, escaped: bool) {
            if !self.in_value {
                self.attr.push(byte);
            } else if escaped {
                self.value.push(byte);
                self.kept = self.value.len();
            } else if !(byte == b' ' && self.value.is_empty()) {
                if byte == b'#' && self.value.is_empty() {
                    self.ber = true;
                }
                self.value.push(byte);
            }
        }
    }
    let b = dn.as_bytes();
    let mut r = Reader::default();
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' && i + 1 < b.len() {
            let hex = |x: u8| (x as char).to_digit(16);
            match (hex(b[i + 1]), b.get(i + 2).and_then(|&x| hex(x))) {
                (Some(h), Some(l)) => {
                    r.push((h * 16 + l) as u8, true);
                    i += 3;
                }
                _ => {
                    r.push(b[i + 1], true);
                    i += 2;
                }
            }
            continue;
        }
        match c {
            b'=' if !r.in_value => r.in_value = true,
            b'+' => r.pair(),
            b',' | b';' => {
                r.pair();
                out.push(Rdn {
                    at,
                    pairs: std::mem::take(&mut r.pairs),
                });
                // The next RDN starts at its first character that is not a space.
                at = i + 1;
                while at < b.len() && b[at] == b' ' {
                    at += 1;
                }
            }
            _ => r.push(c, false),
        }
        i += 1;
    }
    r.pair();
    out.push(Rdn {
        at,
        pairs: std::mem::take(&mut r.pairs),
    });
    out
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
/// signed the user in; otherwise the miss is `Refused` when any directory refused the
/// password, `Unknown` when none knew the name (a user of a setting that was disabled,
/// while another stays enabled: not a wrong password of the user's). `unseal` opens the
/// sealed manager password.
pub fn sign_in(
    ldap: &gatehouse_projections::Ldap,
    unseal: &dyn Fn(&str) -> Option<String>,
    username: &str,
    password: &str,
) -> Result<Result<(String, DirectoryUser), Miss>, DirectoryError> {
    if password.is_empty() {
        return Ok(Err(Miss::Refused));
    }
    let mut miss = Miss::Unknown;
    let mut failure = None;
    for s in ldap.settings.values().filter(|s| s.enabled) {
        let groups: Vec<LdapGroupSetting> = ldap.group_settings_of(&s.key).cloned().collect();
        let manager = s.manager_password.as_deref().and_then(unseal);
        let attempt = Directory::with_failover(s, |d| {
            d.sign_in(s, manager.as_deref(), &groups, username, password)
        });
        match attempt {
            Ok(Ok(u)) => return Ok(Ok((s.key.clone(), u))),
            Ok(Err(Miss::Refused)) => miss = Miss::Refused,
            Ok(Err(Miss::Unknown)) => {}
            Err(e) => {
                tracing::warn!(setting = %s.key, error = %e, "LDAP sign-in could not be checked");
                failure = Some(e);
            }
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(Err(miss)),
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
    Directory::with_failover(s, |d| d.list_groups(s, manager.as_deref(), g))
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
    fn a_base_written_with_blanks_is_still_the_base() {
        let base = "dc=example,dc=com";
        assert_eq!(
            under("ou=people, dc=example, dc=com", base),
            "ou=people, dc=example, dc=com"
        );
        assert_eq!(
            under("OU=People,DC=Example,DC=com", base),
            "OU=People,DC=Example,DC=com"
        );
        assert_eq!(under("ou=people", base), "ou=people,dc=example,dc=com");
        assert_eq!(under("", base), base);
        // A DN that only ends like the base is not under it.
        assert_eq!(
            under("dc=myexample,dc=com", base),
            "dc=myexample,dc=com,dc=example,dc=com"
        );
        assert!(crate::domain::ldap::dn_within(
            "cn=devs,ou=groups, dc=example,dc=com",
            base
        ));
        assert!(!crate::domain::ldap::dn_within(
            "cn=a\\,dc=example,dc=com",
            "dc=com,dc=example,dc=com"
        ));
        // A value ending in an escaped backslash, or in an escaped space.
        assert!(crate::domain::ldap::dn_within(
            "cn=a\\\\,ou=groups,dc=example,dc=com",
            base
        ));
        assert!(crate::domain::ldap::dn_within(
            "cn=x\\ ,ou=groups,dc=example,dc=com",
            base
        ));
        assert_eq!(
            crate::domain::ldap::normal_dn("cn=x\\ , OU=G"),
            "cn=x\\ ,ou=g"
        );
        assert_eq!(
            crate::domain::ldap::normal_dn("cn=a\\, b,ou=g"),
            "cn=a\\, b,ou=g"
        );
    }

    #[test]
    fn rdns_read_as_rfc_4514_writes_them() {
        let pairs = |dn: &str| -> Vec<Vec<(String, String)>> {
            rdns(dn).into_iter().map(|r| r.pairs).collect()
        };
        let p = |a: &str, v: &str| (a.to_string(), v.to_string());
        let dn = "uid=a\\,b,ou=devs, ou=eng,dc=e";
        let r = rdns(dn);
        assert_eq!(r[0].pairs, vec![p("uid", "a,b")]);
        assert_eq!(r[1].pairs, vec![p("ou", "devs")]);
        assert_eq!(&dn[r[2].at..], "ou=eng,dc=e");
        // A `+` escaped is part of the value; one that is not separates pairs.
        assert_eq!(pairs("uid=a\\+b,dc=e")[0], vec![p("uid", "a+b")]);
        assert_eq!(
            pairs("cn=Dave Jones+uid=dave,dc=e")[0],
            vec![p("cn", "Dave Jones"), p("uid", "dave")]
        );
        // Hex escapes are UTF-8 bytes; escaped spaces stay, the others go.
        assert_eq!(
            pairs("uid=smith\\2C john,dc=e")[0],
            vec![p("uid", "smith, john")]
        );
        assert_eq!(pairs("cn=Ren\\C3\\A9,dc=e")[0], vec![p("cn", "René")]);
        assert_eq!(pairs("cn= x\\ ,dc=e")[0], vec![p("cn", "x ")]);
        assert_eq!(pairs("cn=\\ x ,dc=e")[0], vec![p("cn", " x")]);
        // BER values are the entry's to say.
        assert!(pairs("uid=#04024869,dc=e")[0].is_empty());
    }
}

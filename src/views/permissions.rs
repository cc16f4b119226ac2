//! Permission targets in the three formats JFrog's clients speak, all views of the one
//! model (`PermissionTarget`): the Artifactory v2 format (`repo`, `build`,
//! `releaseBundle` sections, lower-case actions), JFrog Access's permissions API
//! (`resources.artifact|build|release_bundle`, upper-case actions, patterns per target)
//! and Artifactory's v1 format (one repository section, `principals` with letters).
//! Reading a body into the model is here too; the model's rules (names, patterns,
//! actions) are the domain's (`domain::normalize_target`).

use gatehouse_schemas::{PermissionSection, PermissionTarget, RepositoryPatterns};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

// ---- Artifactory v2 ----

#[derive(Serialize, Deserialize, Default)]
pub struct ActionsWire {
    #[serde(default, deserialize_with = "super::unique_map")]
    pub users: BTreeMap<String, Vec<String>>,
    #[serde(default, deserialize_with = "super::unique_map")]
    pub groups: BTreeMap<String, Vec<String>>,
}

#[derive(Serialize, Deserialize)]
pub struct SectionWire {
    #[serde(
        rename = "include-patterns",
        alias = "include_patterns",
        alias = "includePatterns",
        default,
        deserialize_with = "super::null_as_default"
    )]
    pub include_patterns: Vec<String>,
    #[serde(
        rename = "exclude-patterns",
        alias = "exclude_patterns",
        alias = "excludePatterns",
        default,
        deserialize_with = "super::null_as_default"
    )]
    pub exclude_patterns: Vec<String>,
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub repositories: Vec<String>,
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub actions: ActionsWire,
}

#[derive(Serialize, Deserialize)]
pub struct TargetWire {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<SectionWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<SectionWire>,
    #[serde(
        rename = "releaseBundle",
        alias = "release_bundle",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub release_bundle: Option<SectionWire>,
}

/// Include patterns as answered: none (or only empty ones) means everything, and says
/// so — `[]` read as "nothing" while the section granted every path (JFrog's default is
/// `["**"]`, and the v1 view already showed `**`).
fn shown_includes(patterns: &[String]) -> Vec<String> {
    if patterns.iter().all(|p| p.is_empty()) {
        vec!["**".to_string()]
    } else {
        patterns.to_vec()
    }
}

fn section_out(s: &PermissionSection) -> SectionWire {
    SectionWire {
        include_patterns: shown_includes(&s.include_patterns),
        exclude_patterns: s.exclude_patterns.clone(),
        repositories: s.repositories.clone(),
        actions: ActionsWire {
            users: s.users.clone(),
            groups: s.groups.clone(),
        },
    }
}

pub fn target_out(t: &PermissionTarget) -> TargetWire {
    TargetWire {
        name: Some(t.name.clone()),
        repo: t.repo.as_ref().map(section_out),
        build: t.build.as_ref().map(section_out),
        release_bundle: t.release_bundle.as_ref().map(section_out),
    }
}

pub fn permission(t: &PermissionTarget) -> Value {
    serde_json::to_value(target_out(t)).unwrap_or_default()
}

// ---- JFrog Access permissions API (`/access/api/v2/permissions`) ----

/// The resource types of the Access format and the model's section each is.
pub const RESOURCE_TYPES: &[&str] = &["artifact", "build", "release_bundle"];

#[derive(Serialize, Deserialize, Default, Clone, PartialEq, Debug)]
pub struct AccessPatterns {
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub include_patterns: Vec<String>,
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub exclude_patterns: Vec<String>,
}

#[derive(Serialize, Deserialize, Default, Clone, Debug)]
pub struct AccessActions {
    #[serde(default, deserialize_with = "super::unique_map")]
    pub users: BTreeMap<String, Vec<String>>,
    #[serde(default, deserialize_with = "super::unique_map")]
    pub groups: BTreeMap<String, Vec<String>>,
}

#[derive(Serialize, Deserialize, Default, Clone, Debug)]
pub struct AccessResource {
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub actions: AccessActions,
    #[serde(default, deserialize_with = "super::unique_map")]
    pub targets: BTreeMap<String, AccessPatterns>,
}

/// A partial change of one resource (`PATCH …/{name}/{resourceType}`): the users,
/// groups and targets it names are set (an empty action list takes a principal out);
/// the others are kept.
#[derive(Deserialize, Default, Debug, Clone)]
pub struct AccessResourcePatch {
    #[serde(default)]
    pub actions: Option<AccessActionsPatch>,
    #[serde(default, deserialize_with = "super::unique_map_opt")]
    pub targets: Option<BTreeMap<String, Option<AccessPatterns>>>,
}

#[derive(Deserialize, Default, Debug, Clone)]
pub struct AccessActionsPatch {
    #[serde(default, deserialize_with = "super::unique_map_opt")]
    pub users: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default, deserialize_with = "super::unique_map_opt")]
    pub groups: Option<BTreeMap<String, Vec<String>>>,
}

#[derive(Serialize, Deserialize, Default, Debug)]
pub struct AccessResources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<AccessResource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<AccessResource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_bundle: Option<AccessResource>,
}

#[derive(Serialize, Deserialize, Default, Debug)]
pub struct AccessPermission {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub resources: AccessResources,
}

/// Why a body could not be read into the model: the field, and what is wrong.
#[derive(Debug)]
pub struct WireError {
    pub field: String,
    pub message: String,
}

/// `READ` → `read`; the Access format's words for the model's actions. Lower case is
/// taken too (liberal in what is accepted).
fn action_in(field: &str, a: &str) -> Result<String, WireError> {
    let lower = a.to_ascii_lowercase();
    match lower.as_str() {
        "read" | "annotate" | "write" | "delete" | "manage" | "distribute" => Ok(lower),
        "managed_xray_metadata" | "managed_xray_meta" | "managedxraymeta" => {
            Ok("managedXrayMeta".into())
        }
        // Artifactory's older words for the same actions.
        "deploy" => Ok("write".into()),
        "admin" => Ok("manage".into()),
        _ => Err(WireError {
            field: field.to_string(),
            message: format!(
                "unknown action `{}` (use READ, ANNOTATE, WRITE, DELETE, MANAGE, DISTRIBUTE, MANAGED_XRAY_METADATA)",
                a.escape_debug()
            ),
        }),
    }
}

fn actions_in(
    field: &str,
    who: &str,
    m: BTreeMap<String, Vec<String>>,
) -> Result<BTreeMap<String, Vec<String>>, WireError> {
    let mut out = BTreeMap::new();
    for (name, actions) in m {
        let at = format!("{field}.actions.{who}.{name}");
        let mut list = Vec::new();
        for a in &actions {
            let a = action_in(&at, a)?;
            if !list.contains(&a) {
                list.push(a);
            }
        }
        out.insert(name, list);
    }
    Ok(out)
}

/// The Access format's names of the `ANY` repositories.
fn target_name_in(name: &str) -> String {
    match name {
        "ALL-LOCAL" => "ANY LOCAL".into(),
        "ALL-REMOTE" => "ANY REMOTE".into(),
        other => other.to_string(),
    }
}

/// One resource of the Access format as a model section. The section's own patterns
/// are those of its first target; a target whose patterns differ keeps its own.
pub fn access_resource_in(field: &str, r: AccessResource) -> Result<PermissionSection, WireError> {
    let users = actions_in(field, "users", r.actions.users)?;
    let groups = actions_in(field, "groups", r.actions.groups)?;
    let mut section = PermissionSection {
        users,
        groups,
        ..Default::default()
    };
    let mut first = true;
    for (key, p) in r.targets {
        let name = target_name_in(&key);
        // `ALL-LOCAL` beside `ANY LOCAL` is one repository named twice: the second's
        // patterns replaced the first's, while the other formats showed the first's.
        if section.repositories.contains(&name) {
            return Err(WireError {
                field: format!("{field}.targets.{key}"),
                message: format!("names `{name}` again (given twice under two spellings)"),
            });
        }
        if first {
            section.include_patterns = p.include_patterns.clone();
            section.exclude_patterns = p.exclude_patterns.clone();
            first = false;
        }
        section.patterns_by_repository.insert(
            name.clone(),
            RepositoryPatterns {
                include_patterns: p.include_patterns,
                exclude_patterns: p.exclude_patterns,
            },
        );
        section.repositories.push(name);
    }
    Ok(section)
}

/// `read` → `READ`, `managedXrayMeta` → `MANAGED_XRAY_METADATA`.
fn access_action_out(a: &str) -> String {
    match a {
        "managedXrayMeta" => "MANAGED_XRAY_METADATA".into(),
        other => other.to_ascii_uppercase(),
    }
}

pub fn access_resource_out(s: &PermissionSection) -> AccessResource {
    let upper = |m: &BTreeMap<String, Vec<String>>| {
        m.iter()
            .map(|(k, v)| (k.clone(), v.iter().map(|a| access_action_out(a)).collect()))
            .collect()
    };
    AccessResource {
        actions: AccessActions {
            users: upper(&s.users),
            groups: upper(&s.groups),
        },
        targets: s
            .repositories
            .iter()
            .map(|r| {
                let p = s.patterns_by_repository.get(r);
                (
                    r.clone(),
                    AccessPatterns {
                        include_patterns: shown_includes(
                            p.map_or(&s.include_patterns, |p| &p.include_patterns),
                        ),
                        exclude_patterns: p
                            .map_or(&s.exclude_patterns, |p| &p.exclude_patterns)
                            .clone(),
                    },
                )
            })
            .collect(),
    }
}

/// The model's section a resource type is (`artifact` is the `repo` section).
pub fn section_of<'a>(
    t: &'a PermissionTarget,
    resource_type: &str,
) -> Option<&'a PermissionSection> {
    match resource_type {
        "artifact" => t.repo.as_ref(),
        "build" => t.build.as_ref(),
        "release_bundle" => t.release_bundle.as_ref(),
        _ => None,
    }
}

pub fn section_of_mut<'a>(
    t: &'a mut PermissionTarget,
    resource_type: &str,
) -> Option<&'a mut Option<PermissionSection>> {
    match resource_type {
        "artifact" => Some(&mut t.repo),
        "build" => Some(&mut t.build),
        "release_bundle" => Some(&mut t.release_bundle),
        _ => None,
    }
}

pub fn access_permission_in(
    name: &str,
    p: AccessPermission,
) -> Result<PermissionTarget, WireError> {
    let r = p.resources;
    Ok(PermissionTarget {
        name: name.to_string(),
        repo: r
            .artifact
            .map(|x| access_resource_in("resources.artifact", x))
            .transpose()?,
        build: r
            .build
            .map(|x| access_resource_in("resources.build", x))
            .transpose()?,
        release_bundle: r
            .release_bundle
            .map(|x| access_resource_in("resources.release_bundle", x))
            .transpose()?,
    })
}

pub fn access_permission_out(t: &PermissionTarget) -> AccessPermission {
    AccessPermission {
        name: Some(t.name.clone()),
        resources: AccessResources {
            artifact: t.repo.as_ref().map(access_resource_out),
            build: t.build.as_ref().map(access_resource_out),
            release_bundle: t.release_bundle.as_ref().map(access_resource_out),
        },
    }
}

/// Apply a partial change to a section (see [`AccessResourcePatch`]).
pub fn access_resource_patch(
    field: &str,
    s: &mut PermissionSection,
    patch: AccessResourcePatch,
) -> Result<(), WireError> {
    if let Some(actions) = patch.actions {
        for (who, given, map) in [
            ("users", actions.users, &mut s.users),
            ("groups", actions.groups, &mut s.groups),
        ] {
            let mut seen = std::collections::BTreeSet::new();
            for (name, list) in actions_in(field, who, given.unwrap_or_default())? {
                // User names are stored lower-case: `RT` is the user `rt` (a PATCH of
                // `RT` answered 200 and changed nothing).
                let name = if who == "users" {
                    name.to_lowercase()
                } else {
                    name
                };
                // Two spellings of one user: which one won depended on the keys' order.
                if !seen.insert(name.clone()) {
                    return Err(WireError {
                        field: format!("{field}.actions.{who}.{name}"),
                        message: format!(
                            "the user `{name}` is given twice (user names do not depend on case)"
                        ),
                    });
                }
                if list.is_empty() {
                    map.remove(&name);
                } else {
                    map.insert(name, list);
                }
            }
        }
    }
    if let Some(targets) = patch.targets {
        // Every repository with the patterns it has now, so that moving the section's
        // own patterns to its first repository's (below) changes no other repository.
        for r in &s.repositories {
            s.patterns_by_repository
                .entry(r.clone())
                .or_insert_with(|| RepositoryPatterns {
                    include_patterns: s.include_patterns.clone(),
                    exclude_patterns: s.exclude_patterns.clone(),
                });
        }
        let mut named = std::collections::BTreeSet::new();
        for (key, p) in targets {
            let name = target_name_in(&key);
            // One repository under its two spellings, as in a whole section.
            if !named.insert(name.clone()) {
                return Err(WireError {
                    field: format!("{field}.targets.{key}"),
                    message: format!("names `{name}` again (given twice under two spellings)"),
                });
            }
            match p {
                None => {
                    s.repositories.retain(|r| *r != name);
                    s.patterns_by_repository.remove(&name);
                }
                Some(p) => {
                    if s.repositories.is_empty() {
                        s.include_patterns = p.include_patterns.clone();
                        s.exclude_patterns = p.exclude_patterns.clone();
                    }
                    if !s.repositories.contains(&name) {
                        s.repositories.push(name.clone());
                    }
                    s.patterns_by_repository.insert(
                        name,
                        RepositoryPatterns {
                            include_patterns: p.include_patterns,
                            exclude_patterns: p.exclude_patterns,
                        },
                    );
                }
            }
        }
        // The section's patterns are its first repository's, as the Artifactory formats
        // show them (they kept the old ones after every repository's changed).
        if let Some(first) = s
            .repositories
            .first()
            .and_then(|r| s.patterns_by_repository.get(r))
        {
            s.include_patterns = first.include_patterns.clone();
            s.exclude_patterns = first.exclude_patterns.clone();
        }
    }
    Ok(())
}

// ---- Artifactory v1 (`/artifactory/api/security/permissions`) ----

/// v1's letters for the model's actions.
const LETTERS: &[(&str, &str)] = &[
    ("read", "r"),
    ("write", "w"),
    ("annotate", "n"),
    ("delete", "d"),
    ("manage", "m"),
    ("distribute", "x"),
    ("managedXrayMeta", "mxm"),
];

#[derive(Serialize, Deserialize, Default, Debug)]
pub struct PrincipalsV1 {
    #[serde(default, deserialize_with = "super::unique_map")]
    pub users: BTreeMap<String, Vec<String>>,
    #[serde(default, deserialize_with = "super::unique_map")]
    pub groups: BTreeMap<String, Vec<String>>,
}

#[derive(Serialize, Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase")]
pub struct PermissionV1 {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub includes_pattern: Option<String>,
    #[serde(default)]
    pub excludes_pattern: Option<String>,
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub repositories: Vec<String>,
    #[serde(default, deserialize_with = "super::null_as_default")]
    pub principals: PrincipalsV1,
}

fn letters_in(
    field: &str,
    m: BTreeMap<String, Vec<String>>,
) -> Result<BTreeMap<String, Vec<String>>, WireError> {
    let mut out = BTreeMap::new();
    for (name, letters) in m {
        let mut actions = Vec::new();
        for l in &letters {
            let action = LETTERS
                .iter()
                .find(|(a, x)| x == l || a == l)
                .map(|(a, _)| a.to_string())
                .ok_or_else(|| WireError {
                    field: format!("{field}.{name}"),
                    message: format!(
                        "unknown permission `{}` (use r, w, n, d, m, x, mxm)",
                        l.escape_debug()
                    ),
                })?;
            if !actions.contains(&action) {
                actions.push(action);
            }
        }
        out.insert(name, actions);
    }
    Ok(out)
}

fn patterns_in(p: Option<&str>) -> Vec<String> {
    p.map(|p| {
        p.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

/// A v1 body as the target's repository section (v1 has no other; the target's build
/// and release-bundle sections are the caller's to keep).
pub fn v1_section_in(p: PermissionV1) -> Result<PermissionSection, WireError> {
    Ok(PermissionSection {
        include_patterns: patterns_in(p.includes_pattern.as_deref()),
        exclude_patterns: patterns_in(p.excludes_pattern.as_deref()),
        repositories: p.repositories,
        users: letters_in("principals.users", p.principals.users)?,
        groups: letters_in("principals.groups", p.principals.groups)?,
        patterns_by_repository: BTreeMap::new(),
    })
}

pub fn v1_out(t: &PermissionTarget) -> PermissionV1 {
    let empty = PermissionSection::default();
    let s = t.repo.as_ref().unwrap_or(&empty);
    let letters = |m: &BTreeMap<String, Vec<String>>| {
        m.iter()
            .map(|(k, v)| {
                let l = LETTERS
                    .iter()
                    .filter(|(a, _)| v.iter().any(|x| x == a))
                    .map(|(_, l)| l.to_string())
                    .collect();
                (k.clone(), l)
            })
            .collect()
    };
    let include = shown_includes(&s.include_patterns).join(",");
    PermissionV1 {
        name: Some(t.name.clone()),
        includes_pattern: Some(include),
        excludes_pattern: Some(s.exclude_patterns.join(",")),
        repositories: s.repositories.clone(),
        principals: PrincipalsV1 {
            users: letters(&s.users),
            groups: letters(&s.groups),
        },
    }
}

pub fn permission_v1(t: &PermissionTarget) -> Value {
    serde_json::to_value(v1_out(t)).unwrap_or_default()
}

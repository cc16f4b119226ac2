//! Decides permission targets, and the repositories they (and projects) grant on.

use super::{normalize_username, repository_must_exist, validate_group_name, DomainError};
use crate::authorize::{
    is_any_repository, valid_pattern, ACTIONS, BUILD_INFO_REPOSITORY, RELEASE_BUNDLES_REPOSITORY,
};
use gatehouse_projections::State;
use gatehouse_schemas::{Event, PermissionSection, PermissionTarget, Repository};
use std::collections::BTreeMap;

/// A permission target as it is stored: its names checked, user names in their
/// canonical form, and each section's default repository filled in. Every API family
/// that writes targets (Artifactory v2 and v1, Access v2 permissions) goes through this
/// one rule; fields are named as in the Artifactory v2 format (`repo`, `build`,
/// `releaseBundle`), the model's own names.
pub fn normalize_target(t: PermissionTarget) -> Result<PermissionTarget, DomainError> {
    validate_group_name("name", &t.name)?;
    Ok(PermissionTarget {
        name: t.name,
        repo: t.repo.map(|s| normalize_section("repo", s)).transpose()?,
        build: t.build.map(|s| normalize_section("build", s)).transpose()?,
        release_bundle: t
            .release_bundle
            .map(|s| normalize_section("releaseBundle", s))
            .transpose()?,
    })
}

/// A path pattern a section may hold: one the matcher reads, at most 1,024 bytes, no
/// control characters (no path has them).
fn pattern_ok(p: &str) -> bool {
    // No comma: Artifactory's v1 format joins a section's patterns with commas, and a
    // pattern holding one came back from a v1 round trip as two, wider ones.
    // No `..` segment: a judged path never has one (a request with one is refused), so
    // such a pattern could never match (Ant does not resolve it either).
    valid_pattern(p)
        && p.len() <= 1024
        && !p.chars().any(|c| c.is_control() || c == ',')
        && !p.split('/').any(|s| s == "..")
        // Nothing but `.` and empty segments (`.`, `./.`): matches nothing as written.
        && (p.is_empty() || !crate::authorize::normal_pattern(p).is_empty())
}

fn normalize_section(field: &str, w: PermissionSection) -> Result<PermissionSection, DomainError> {
    for (kind, list) in [
        ("include-patterns", &w.include_patterns),
        ("exclude-patterns", &w.exclude_patterns),
    ] {
        for (i, p) in list.iter().enumerate() {
            if !pattern_ok(p) {
                return Err(DomainError::invalid(
                    format!("{field}.{kind}[{i}]"),
                    format!(
                        "`{}` is not a valid pattern{}",
                        p.escape_debug(),
                        if p.contains(',') {
                            " (a comma separates patterns in Artifactory's v1 format: give each pattern on its own)"
                        } else if p.split('/').any(|s| s == "..") {
                            " (a `..` segment: paths are judged without them, so it could never match)"
                        } else if crate::authorize::normal_pattern(p).is_empty() {
                            " (`.` segments only: paths are judged without them, so it could never match; `**` is everything)"
                        } else {
                            ""
                        }
                    ),
                ));
            }
        }
    }
    // Each section is about its own repositories (see `crate::authorize::ResourceKind`):
    // refuse what would be stored but never consulted.
    // A repository named twice is one repository (the normal form).
    let mut repositories: Vec<String> = Vec::with_capacity(w.repositories.len());
    for r in w.repositories {
        if !repositories.contains(&r) {
            repositories.push(r);
        }
    }
    for (i, r) in repositories.iter().enumerate() {
        let at = format!("{field}.repositories[{i}]");
        let misplaced = match field {
            "build" if r != BUILD_INFO_REPOSITORY => Some(format!(
                "build permissions apply to `{BUILD_INFO_REPOSITORY}` only"
            )),
            "releaseBundle" if is_any_repository(r) || r == BUILD_INFO_REPOSITORY => {
                Some("name the release-bundle repositories (default `release-bundles`)".to_string())
            }
            "repo" if r == BUILD_INFO_REPOSITORY => {
                Some("build info is granted in the `build` section".to_string())
            }
            "repo" if r == RELEASE_BUNDLES_REPOSITORY => {
                Some("release bundles are granted in the `releaseBundle` section".to_string())
            }
            _ => None,
        };
        if let Some(why) = misplaced {
            return Err(DomainError::invalid(
                at,
                format!("`{}`: {why}", r.escape_debug()),
            ));
        }
        if !is_any_repository(r) {
            // `any local` is no repository (a key has no space) and would match nothing;
            // `any` alone may be a repository's key, and is left alone.
            if let Some(meant) = ["ANY LOCAL", "ANY REMOTE"]
                .into_iter()
                .find(|a| a.eq_ignore_ascii_case(r.trim()))
            {
                return Err(DomainError::invalid(
                    at,
                    format!("`{}`: write `{meant}` (upper case)", r.escape_debug()),
                ));
            }
            validate_group_name(&at, r)?;
        }
    }
    // Stored as Artifactory shows them: with the repository they default to.
    if repositories.is_empty() {
        match field {
            "build" => repositories.push(BUILD_INFO_REPOSITORY.to_string()),
            "releaseBundle" => repositories.push(RELEASE_BUNDLES_REPOSITORY.to_string()),
            _ => {}
        }
    }
    let check_actions = |who: &str, name: &str, actions: &[String]| -> Result<(), DomainError> {
        match actions.iter().find(|a| !ACTIONS.contains(&a.as_str())) {
            Some(a) => Err(DomainError::invalid(
                format!("{field}.actions.{who}.{name}"),
                format!(
                    "unknown action `{}` (use {})",
                    a.escape_debug(),
                    ACTIONS.join(", ")
                ),
            )),
            None => Ok(()),
        }
    };
    // An action given twice is one action (the normal form).
    let once = |actions: Vec<String>| {
        let mut out: Vec<String> = Vec::with_capacity(actions.len());
        for a in actions {
            if !out.contains(&a) {
                out.push(a);
            }
        }
        out
    };
    let mut users = BTreeMap::new();
    for (given, actions) in w.users {
        let name = normalize_username(&format!("{field}.actions.users"), &given)?;
        check_actions("users", &name, &actions)?;
        // `RT` and `rt` are one user: which spelling's actions were kept depended on
        // the order of the keys.
        if users.insert(name.clone(), once(actions)).is_some() {
            return Err(DomainError::invalid(
                format!("{field}.actions.users.{}", given.escape_debug()),
                format!("the user `{name}` is given twice (user names do not depend on case)"),
            ));
        }
    }
    let mut groups = BTreeMap::new();
    for (name, actions) in w.groups {
        validate_group_name(&format!("{field}.actions.groups"), &name)?;
        check_actions("groups", &name, &actions)?;
        groups.insert(name, once(actions));
    }
    // Patterns of one repository: checked like the section's; kept only for a
    // repository of the section and only where they differ (the normal form, so that
    // the same grant written through any API is the same target).
    let mut patterns_by_repository = BTreeMap::new();
    for (repo, p) in w.patterns_by_repository {
        for (kind, list) in [
            ("include-patterns", &p.include_patterns),
            ("exclude-patterns", &p.exclude_patterns),
        ] {
            for (i, pat) in list.iter().enumerate() {
                if !pattern_ok(pat) {
                    return Err(DomainError::invalid(
                        format!("{field}.targets.{repo}.{kind}[{i}]"),
                        format!("`{}` is not a valid pattern", pat.escape_debug()),
                    ));
                }
            }
        }
        let same =
            p.include_patterns == w.include_patterns && p.exclude_patterns == w.exclude_patterns;
        if !same && repositories.contains(&repo) {
            patterns_by_repository.insert(repo, p);
        }
    }
    Ok(PermissionSection {
        include_patterns: w.include_patterns,
        exclude_patterns: w.exclude_patterns,
        repositories,
        users,
        groups,
        patterns_by_repository,
    })
}

/// A target written in the Artifactory formats (v2, v1), which have one set of patterns a
/// section, over `current`, which may hold patterns per repository (written through
/// Access's API). A section sent with the patterns those formats showed for it — a read
/// sent back, with other changes or none — keeps each listed repository's own patterns;
/// before, such a round trip gave every repository the first one's, and took access away
/// without a word. Patterns that differ from what was shown are a change, for all.
pub fn keep_repository_patterns(current: Option<&PermissionTarget>, target: &mut PermissionTarget) {
    let Some(current) = current else {
        return;
    };
    let pairs = [
        (&current.repo, &mut target.repo),
        (&current.build, &mut target.build),
        (&current.release_bundle, &mut target.release_bundle),
    ];
    for (old, new) in pairs {
        let (Some(old), Some(new)) = (old, new) else {
            continue;
        };
        // As those formats show patterns: no include pattern is `**`, an empty one is
        // none (a v1 read shows `[]` as `**`: sent back, it took every repository's own
        // patterns away and widened access).
        let shown = |list: &[String], include: bool| -> Vec<String> {
            let mut v: Vec<String> = list
                .iter()
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect();
            if include && v.is_empty() {
                v.push("**".into());
            }
            v
        };
        if old.patterns_by_repository.is_empty()
            || !new.patterns_by_repository.is_empty()
            || shown(&new.include_patterns, true) != shown(&old.include_patterns, true)
            || shown(&new.exclude_patterns, false) != shown(&old.exclude_patterns, false)
        {
            continue;
        }
        // Each listed repository keeps what applied to it: its own patterns, or the
        // section's.
        let section = gatehouse_schemas::RepositoryPatterns {
            include_patterns: old.include_patterns.clone(),
            exclude_patterns: old.exclude_patterns.clone(),
        };
        let mut each: BTreeMap<String, gatehouse_schemas::RepositoryPatterns> = new
            .repositories
            .iter()
            .map(|repo| {
                let own = old.patterns_by_repository.get(repo);
                (repo.clone(), own.unwrap_or(&section).clone())
            })
            .collect();
        // The section's are its first repository's, as those formats show them (with the
        // old first repository dropped, they showed its patterns, which applied to no
        // repository left); a repository's own equal to them are not kept apart.
        let first = new
            .repositories
            .first()
            .and_then(|r| each.get(r))
            .cloned()
            .unwrap_or(section);
        each.retain(|_, p| {
            p.include_patterns != first.include_patterns
                || p.exclude_patterns != first.exclude_patterns
        });
        new.include_patterns = first.include_patterns;
        new.exclude_patterns = first.exclude_patterns;
        new.patterns_by_repository = each;
    }
}

/// Whether two normalised targets say the same: repositories and actions in any order
/// (the formats show them each their own way: a client's round trip reordered them),
/// each repository with its own patterns, and patterns by what they match (no includes
/// is `**`, as every read shows it; an empty pattern, JFrog's default exclude, is none).
fn same_grants(a: &PermissionTarget, b: &PermissionTarget) -> bool {
    use std::collections::BTreeSet;
    type Patterns<'a> = (BTreeSet<&'a str>, BTreeSet<&'a str>);
    type Grants<'a> = BTreeMap<&'a str, BTreeSet<&'a str>>;
    type Canonical<'a> = (
        Vec<(&'a str, Patterns<'a>)>,
        Option<Patterns<'a>>,
        Grants<'a>,
        Grants<'a>,
    );
    fn patterns<'a>(include: &'a [String], exclude: &'a [String]) -> Patterns<'a> {
        let set = |p: &'a [String]| -> BTreeSet<&'a str> {
            p.iter()
                .map(String::as_str)
                .filter(|p| !p.is_empty())
                .collect()
        };
        let mut include = set(include);
        if include.is_empty() {
            include.insert("**");
        }
        (include, set(exclude))
    }
    fn grants(g: &BTreeMap<String, Vec<String>>) -> Grants<'_> {
        g.iter()
            .map(|(k, v)| (k.as_str(), v.iter().map(String::as_str).collect()))
            .collect()
    }
    fn canonical(s: &Option<PermissionSection>) -> Option<Canonical<'_>> {
        s.as_ref().map(|s| {
            let section = || patterns(&s.include_patterns, &s.exclude_patterns);
            let mut repos: Vec<_> = (s.repositories.iter())
                .map(|r| {
                    let own = s.patterns_by_repository.get(r);
                    let own = own.map(|p| patterns(&p.include_patterns, &p.exclude_patterns));
                    (r.as_str(), own.unwrap_or_else(section))
                })
                .collect();
            repos.sort();
            // The section's own patterns say something only where no repository has
            // its own (then they are every repository's, in any order).
            let shared = s.patterns_by_repository.is_empty().then(section);
            (repos, shared, grants(&s.users), grants(&s.groups))
        })
    }
    a.name == b.name
        && canonical(&a.repo) == canonical(&b.repo)
        && canonical(&a.build) == canonical(&b.build)
        && canonical(&a.release_bundle) == canonical(&b.release_bundle)
}

/// Create (`create_only`) or create-or-replace a permission target.
pub(super) fn save_target(
    state: &State,
    target: &PermissionTarget,
    create_only: bool,
) -> Result<Vec<Event>, DomainError> {
    // INVARIANT: a stored target is normalised; an API that skipped the rule cannot
    // write one that is not.
    if normalize_target(target.clone())? != *target {
        return Err(DomainError::invalid(
            "name",
            "the permission target is not in its normal form",
        ));
    }
    if create_only && state.permissions.targets.contains_key(&target.name) {
        return Err(DomainError::AlreadyExists(format!(
            "permission target `{}`",
            target.name
        )));
    }
    // Saved again as it is (a client's read-modify-write, a tool re-applying its
    // configuration): nothing to write (it wrote an event and fired webhooks each time).
    if state
        .permissions
        .targets
        .get(&target.name)
        .is_some_and(|t| same_grants(t, target))
    {
        return Ok(vec![]);
    }
    principals_exist(state, target)?;
    Ok(vec![Event::PermissionTargetSaved(Box::new(target.clone()))])
}

/// The users and groups a target names anew exist (Artifactory: "Permission target
/// contains a reference to a non-existing user"): a grant to a name nobody has went to
/// whoever took the name later — a group an IdP created, a user of that name. Names the
/// stored target already held are not asked again (a deleted principal's grants go with
/// it; a target saved by an earlier version may still name one).
fn principals_exist(state: &State, target: &PermissionTarget) -> Result<(), DomainError> {
    let old = state.permissions.targets.get(&target.name);
    let sections = [
        ("repo", &target.repo, old.and_then(|o| o.repo.as_ref())),
        ("build", &target.build, old.and_then(|o| o.build.as_ref())),
        (
            "releaseBundle",
            &target.release_bundle,
            old.and_then(|o| o.release_bundle.as_ref()),
        ),
    ];
    for (name, section, before) in sections {
        let Some(section) = section else { continue };
        for user in section.users.keys() {
            let held = before.is_some_and(|b| b.users.contains_key(user));
            if !held && !state.directory.users.contains_key(user.as_str()) {
                return Err(DomainError::invalid(
                    format!("{name}.actions.users"),
                    format!("the permission target names a user that does not exist: `{user}`"),
                ));
            }
        }
        for group in section.groups.keys() {
            let held = before.is_some_and(|b| b.groups.contains_key(group));
            if !held && !state.directory.groups.contains_key(group.as_str()) {
                return Err(DomainError::invalid(
                    format!("{name}.actions.groups"),
                    format!("the permission target names a group that does not exist: `{group}`"),
                ));
            }
        }
    }
    Ok(())
}

/// Seed 002: "Manage — allows changing the permission settings for other users" of the
/// same target. Whether `username` holds `manage` in any section of `target`, directly or
/// through one of its groups.
pub fn manages(state: &State, username: &str, target: &PermissionTarget) -> bool {
    let groups = state.directory.users.get(username).map(|u| &u.groups);
    managed_sections(target, Some(username), |g| {
        groups.is_some_and(|gs| gs.contains(g))
    })
    .contains(&true)
}

/// The sections of `target` (repositories, builds, release bundles, in that order) whose
/// grants hold `manage` for the user's own grants (`user`, `None` for a groups-only
/// token) or a group `in_group` accepts. `manage` is a section's: it lets its holder
/// change who may do what there, not in the target's other sections.
pub fn managed_sections(
    target: &PermissionTarget,
    user: Option<&str>,
    in_group: impl Fn(&str) -> bool,
) -> [bool; 3] {
    [&target.repo, &target.build, &target.release_bundle].map(|s| {
        s.as_ref().is_some_and(|s| {
            let has = |actions: &Vec<String>| actions.iter().any(|a| a == "manage");
            user.is_some_and(|u| s.users.get(u).is_some_and(has))
                || s.groups.iter().any(|(g, a)| in_group(g) && has(a))
        })
    })
}

/// A manager (not an admin) changes only who may do what, in the sections it manages:
/// the same sections over the same repositories and patterns, only the users' and
/// groups' actions differ, and only where its grants (`own_grants`, `groups`: what its
/// credentials carry, as far as it still holds them) hold `manage`.
pub(super) fn save_target_as_manager(
    state: &State,
    target: &PermissionTarget,
    manager: &str,
    own_grants: bool,
    groups: &[String],
) -> Result<Vec<Event>, DomainError> {
    let old = state
        .permissions
        .targets
        .get(&target.name)
        .ok_or_else(|| DomainError::NotFound(format!("permission target `{}`", target.name)))?;
    let held = state.directory.users.get(manager).map(|u| &u.groups);
    let managed = managed_sections(old, own_grants.then_some(manager), |g| {
        groups.iter().any(|c| c == g) && held.is_some_and(|h| h.contains(g))
    });
    if !managed.contains(&true) {
        return Err(DomainError::Forbidden(format!(
            "`{manager}` does not hold `manage` on `{}`",
            target.name
        )));
    }
    let grants =
        |s: &Option<PermissionSection>| s.as_ref().map(|s| (s.users.clone(), s.groups.clone()));
    for (i, (name, a, b)) in [
        ("repo", &old.repo, &target.repo),
        ("build", &old.build, &target.build),
        ("releaseBundle", &old.release_bundle, &target.release_bundle),
    ]
    .into_iter()
    .enumerate()
    {
        if !managed[i] && grants(a) != grants(b) {
            return Err(DomainError::Forbidden(format!(
                "`{manager}` holds `manage` on other sections of `{}`, not on `{name}`: its actions are not for it to change",
                target.name
            )));
        }
    }
    // Not its own actions, nor those of its groups: seed 002's Manage changes "the
    // permission settings for other users", and a manage-only user gave itself read,
    // write and delete (projects refuse raising oneself the same way). Nor anonymous's
    // (or its groups'): what anonymous may do, the manager may do without credentials.
    let anonymous = state
        .directory
        .users
        .get(gatehouse_projections::ANONYMOUS)
        .map(|u| &u.groups);
    let own = |s: &Option<PermissionSection>| {
        s.as_ref().map(|s| {
            let sorted =
                |a: &Vec<String>| a.iter().cloned().collect::<std::collections::BTreeSet<_>>();
            let users: std::collections::BTreeMap<String, _> = s
                .users
                .iter()
                .filter(|(u, _)| {
                    u.eq_ignore_ascii_case(manager)
                        || u.eq_ignore_ascii_case(gatehouse_projections::ANONYMOUS)
                })
                .map(|(u, a)| (u.to_lowercase(), sorted(a)))
                .collect();
            let groups: std::collections::BTreeMap<String, _> = s
                .groups
                .iter()
                .filter(|(g, _)| {
                    held.is_some_and(|h| h.contains(*g))
                        || anonymous.is_some_and(|h| h.contains(*g))
                })
                .map(|(g, a)| (g.clone(), sorted(a)))
                .collect();
            (users, groups)
        })
    };
    for (name, a, b) in [
        ("repo", &old.repo, &target.repo),
        ("build", &old.build, &target.build),
        ("releaseBundle", &old.release_bundle, &target.release_bundle),
    ] {
        if own(a) != own(b) {
            return Err(DomainError::Forbidden(format!(
                "`{manager}` may change other users' and groups' actions on `{}`, not its own, its groups', nor anonymous's (`{name}`)",
                target.name
            )));
        }
    }
    // Compared by what they mean: no includes is `**` (as a GET shows them: a manager
    // sending the target back as read was refused), empty patterns are none.
    fn includes(p: &[String]) -> Vec<&str> {
        let v: Vec<&str> = p
            .iter()
            .map(String::as_str)
            .filter(|p| !p.is_empty())
            .collect();
        if v.is_empty() {
            vec!["**"]
        } else {
            v
        }
    }
    fn excludes(p: &[String]) -> Vec<&str> {
        p.iter()
            .map(String::as_str)
            .filter(|p| !p.is_empty())
            .collect()
    }
    // Each repository with the patterns that apply to it, in any order (a reorder is no
    // change of scope: the formats show the repositories each their own way, and a
    // manager's read-modify-write was refused); the section's own patterns where no
    // repository has its own.
    type Patterns<'a> = (Vec<&'a str>, Vec<&'a str>);
    type Scope<'a> = (Vec<(&'a str, Patterns<'a>)>, Option<Patterns<'a>>);
    fn scope(s: &Option<PermissionSection>) -> Option<Scope<'_>> {
        s.as_ref().map(|s| {
            let section = || (includes(&s.include_patterns), excludes(&s.exclude_patterns));
            let mut repos: Vec<_> = (s.repositories.iter())
                .map(|r| {
                    let own = s.patterns_by_repository.get(r);
                    let own =
                        own.map(|p| (includes(&p.include_patterns), excludes(&p.exclude_patterns)));
                    (r.as_str(), own.unwrap_or_else(section))
                })
                .collect();
            repos.sort();
            (repos, s.patterns_by_repository.is_empty().then(section))
        })
    }
    for (name, a, b) in [
        ("repo", &old.repo, &target.repo),
        ("build", &old.build, &target.build),
        ("releaseBundle", &old.release_bundle, &target.release_bundle),
    ] {
        // A refusal of what the manager may do, as for another section's actions: 403
        // (it was a 400, as if the body were malformed).
        if scope(a) != scope(b) {
            return Err(DomainError::Forbidden(format!(
                "`{manager}` may change the actions of users and groups only: the repositories, patterns and sections of `{}` stay as they are (`{name}`)",
                target.name
            )));
        }
    }
    save_target(state, target, false)
}

/// The targets that grant to a user (`group` false) or group `name`, saved without it:
/// what its deletion writes with it, as Artifactory drops a deleted principal's entries,
/// so that a later user or group of the same name (from SCIM, LDAP, an admin) does not
/// inherit grants meant for another. Written as events, so that the log says when and
/// why the grants went (and `as_of` of an earlier position still shows them).
pub(super) fn without_principal(state: &State, group: bool, name: &str) -> Vec<Event> {
    without_principals(state, &[(group, name)], &Default::default())
}

/// [`without_principal`] for several principals at once (each target saved once,
/// without all of them), leaving out the targets named in `skip`.
pub(super) fn without_principals(
    state: &State,
    principals: &[(bool, &str)],
    skip: &std::collections::BTreeSet<&str>,
) -> Vec<Event> {
    let grants = |s: &PermissionSection| {
        principals.iter().any(|(group, name)| {
            if *group {
                s.groups.contains_key(*name)
            } else {
                s.users.contains_key(*name)
            }
        })
    };
    let mut events = Vec::new();
    for target in state.permissions.targets.values() {
        let sections = [&target.repo, &target.build, &target.release_bundle];
        if skip.contains(target.name.as_str()) || !sections.into_iter().flatten().any(grants) {
            continue;
        }
        let mut t = (**target).clone();
        for section in [&mut t.repo, &mut t.build, &mut t.release_bundle]
            .into_iter()
            .flatten()
        {
            for (group, name) in principals {
                if *group {
                    section.groups.remove(*name);
                } else {
                    section.users.remove(*name);
                }
            }
        }
        events.push(Event::PermissionTargetSaved(Box::new(t)));
    }
    events
}

pub(super) fn delete_target(state: &State, name: &str) -> Result<Vec<Event>, DomainError> {
    if !state.permissions.targets.contains_key(name) {
        return Err(DomainError::NotFound(format!("permission target `{name}`")));
    }
    Ok(vec![Event::PermissionTargetDeleted {
        name: name.to_string(),
    }])
}

pub(super) fn save_repository(state: &State, r: &Repository) -> Result<Vec<Event>, DomainError> {
    // The repository rules, here so that no API can store a repository they refuse.
    super::validate_repo_key("key", &r.key)?;
    // Keys are case-sensitive, but Artifactory refuses a new key that differs from an
    // existing one by case only (`LIBS-RELEASE` beside `libs-release`).
    if !state.repositories.by_key.contains_key(r.key.as_str()) {
        // `ANY` in a permission target means every repository: a repository of that key
        // could never be granted by name, and "read on repository ANY" read everywhere.
        if is_any_repository(&r.key) {
            return Err(DomainError::invalid(
                "key",
                format!(
                    "`{}` means every repository in a permission target: no repository has that key",
                    r.key
                ),
            ));
        }
        if let Some(other) =
            (state.repositories.by_key.keys()).find(|k| k.eq_ignore_ascii_case(&r.key))
        {
            return Err(DomainError::AlreadyExists(format!(
                "repository `{other}` (keys that differ by case only are one repository to Artifactory)"
            )));
        }
    }
    if !super::REPOSITORY_CLASSES.contains(&r.rclass.as_str()) {
        return Err(DomainError::invalid(
            "rclass",
            format!(
                "`{}` (use {})",
                r.rclass.escape_debug(),
                super::REPOSITORY_CLASSES.join(", ")
            ),
        ));
    }
    for (i, e) in r.environments.iter().enumerate() {
        if super::normalize_environment(&format!("environments[{i}]"), e)? != *e {
            return Err(DomainError::invalid(
                format!("environments[{i}]"),
                "environments are stored upper-case",
            ));
        }
    }
    if let Some(url) = &r.url {
        let scheme = url.starts_with("http://") || url.starts_with("https://");
        if r.rclass != "remote"
            || !scheme
            || url.len() > 2048
            || url.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(DomainError::invalid(
                "url",
                "an http:// or https:// URL, of a remote repository",
            ));
        }
    }
    if !r.repositories.is_empty() && r.rclass != "virtual" {
        return Err(DomainError::invalid(
            "repositories",
            "only a virtual repository has repositories",
        ));
    }
    for (i, m) in r.repositories.iter().enumerate() {
        super::validate_repo_key(&format!("repositories[{i}]"), m)?;
        if *m == r.key || r.repositories[..i].contains(m) {
            return Err(DomainError::invalid(
                format!("repositories[{i}]"),
                "not the repository itself, and each once",
            ));
        }
    }
    // Saved again as it is: nothing to write (no environments are `DEV`'s, as a read
    // shows them).
    let same = |was: &Repository| {
        let environments = crate::authorize::repository_environments;
        *was == Repository {
            environments: was.environments.clone(),
            ..r.clone()
        } && environments(was) == environments(r)
    };
    if state
        .repositories
        .by_key
        .get(r.key.as_str())
        .is_some_and(|rec| same(&rec.config))
    {
        return Ok(vec![]);
    }
    Ok(vec![Event::RepositorySaved(r.clone())])
}

pub(super) fn delete_repository(state: &State, key: &str) -> Result<Vec<Event>, DomainError> {
    repository_must_exist(state, key)?;
    Ok(vec![Event::RepositoryDeleted {
        key: key.to_string(),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{decide, Command};
    use gatehouse_schemas::RepositoryPatterns;

    fn target(users: &[(&str, &[&str])], build_repos: Vec<String>) -> PermissionTarget {
        PermissionTarget {
            name: "t".into(),
            repo: Some(PermissionSection {
                repositories: vec!["libs".into()],
                users: users
                    .iter()
                    .map(|(u, a)| (u.to_string(), a.iter().map(|x| x.to_string()).collect()))
                    .collect(),
                ..Default::default()
            }),
            build: Some(PermissionSection {
                repositories: build_repos,
                ..Default::default()
            }),
            release_bundle: None,
        }
    }

    #[test]
    fn every_api_gets_the_same_rules_and_decide_refuses_what_skipped_them() {
        let mut state = State::default();
        let bob = crate::domain::NewUser {
            username: "bob".into(),
            internal_password_disabled: true,
            ..Default::default()
        };
        for (i, event) in decide(&state, &Command::CreateUser(bob))
            .unwrap()
            .into_iter()
            .enumerate()
        {
            state.apply(&gatehouse_schemas::Envelope {
                seq: i as u64 + 1,
                time_ms: 0,
                actor: "test".into(),
                origin: String::new(),
                request_id: String::new(),
                event,
            });
        }
        // Normalising fills the build section's repository and lower-cases names.
        let raw = target(&[("Bob", &["read"])], vec![]);
        let normal = normalize_target(raw.clone()).unwrap();
        assert_eq!(
            normal.build.as_ref().unwrap().repositories,
            vec![BUILD_INFO_REPOSITORY]
        );
        assert!(normal.repo.as_ref().unwrap().users.contains_key("bob"));
        // decide takes the normal form and refuses the raw one.
        let save = |t: PermissionTarget| {
            decide(
                &state,
                &Command::SavePermissionTarget {
                    target: t,
                    create_only: true,
                },
            )
        };
        assert!(save(normal).is_ok());
        assert!(save(raw).is_err());
        // An unknown action is refused, naming the field.
        let e = normalize_target(target(&[("bob", &["fly"])], vec![])).unwrap_err();
        assert!(e.to_string().contains("repo.actions.users.bob"), "{e}");
        // Per-repository patterns equal to the section's are dropped; others kept.
        let mut t = target(&[("bob", &["read"])], vec![]);
        let repo = t.repo.as_mut().unwrap();
        repo.patterns_by_repository
            .insert("libs".into(), Default::default());
        repo.patterns_by_repository.insert(
            "other".into(),
            RepositoryPatterns {
                include_patterns: vec!["a/**".into()],
                exclude_patterns: vec![],
            },
        );
        let n = normalize_target(t).unwrap();
        assert!(
            n.repo.unwrap().patterns_by_repository.is_empty(),
            "`other` is not a repository of the section, `libs` is the same"
        );
    }
}

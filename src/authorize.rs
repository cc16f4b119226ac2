//! The decision: may this subject do this action on `<repository>/<path>`, and why.
//!
//! Three kinds of grant meet here:
//! - permission targets, compiled into a [`TargetIndex`] (globs compiled once, targets
//!   grouped by repository) that is rebuilt only when a permission or repository event
//!   changed them, so a decision looks at the targets of one repository plus the `ANY`
//!   ones, never at all;
//! - project roles, compiled into a [`ProjectIndex`] (repository -> who holds which
//!   actions there through which project role), rebuilt when a project event changed it;
//! - entitlements of access keys ([`decide_access_key`]), looked up by key.
//!
//! A permission target has three sections, and a question is decided by the sections
//! of its repository's kind only ([`ResourceKind`]): `build` sections for the
//! build-info repository, `releaseBundle` sections for release-bundle repositories,
//! `repo` sections (and project roles) for every other repository.
//!
//! Case rules: user names are case-insensitive (stored lower-case, seed 004 "User names
//! are converted to lowercase automatically"); group names, repository keys and paths
//! are case-sensitive — Artifactory addresses a repository by its exact key (it only
//! refuses to *create* a key that differs from an existing one by case) and its paths
//! are case-sensitive.

use gatehouse_projections::{Directory, State};
use gatehouse_schemas::PermissionSection;
use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use smallvec::SmallVec;
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock};

/// The five repository actions (seed 002 "Assigning Permissions").
///
/// `distribute` and `managedXrayMeta` are Artifactory's too (pyartifactory and dohq send
/// them): stored and decided like the others, though nothing here distributes or runs
/// Xray, so only a file server that asks about them makes them matter.
pub const ACTIONS: &[&str] = &[
    "read",
    "annotate",
    "write",
    "delete",
    "manage",
    "distribute",
    "managedXrayMeta",
];

/// Where Artifactory keeps build info (`<build-name>/<build-number>-<started>.json`).
/// Build sections apply here and nowhere else: Artifactory fixes their `repositories`
/// to this one ("default, can't be changed"), so a stored list is not consulted.
pub const BUILD_INFO_REPOSITORY: &str = "artifactory-build-info";

/// The default release-bundle repository (bundles live at `<name>/<version>/…`); a
/// `releaseBundle` section with no `repositories` applies to it.
pub const RELEASE_BUNDLES_REPOSITORY: &str = "release-bundles";

/// `ANY`, `ANY LOCAL`, `ANY REMOTE`: words for artifact repositories, meaningless in a
/// `releaseBundle` section (refused on input; ignored in one stored before that).
pub fn is_any_repository(name: &str) -> bool {
    matches!(name, "ANY" | "ANY LOCAL" | "ANY REMOTE")
}

/// Every repository a release-bundle section of some target is about.
fn bundle_repositories_named(state: &State) -> std::collections::BTreeSet<&str> {
    state
        .permissions
        .targets
        .values()
        .filter_map(|t| t.release_bundle.as_ref())
        .flat_map(bundle_repositories)
        .collect()
}

/// Repositories where `repo` grants of the targets named are shadowed after target
/// `name` was saved: those its `repo` section names that a release-bundle section names
/// (anywhere), and those its release-bundle section names that other targets' `repo`
/// sections name — each with the targets whose `repo` grants no longer apply there.
/// (A repository a release-bundle section names is decided by those sections only.)
pub fn shadowed_repo_grants(state: &State, name: &str) -> Vec<(String, Vec<String>)> {
    let Some(saved) = state.permissions.targets.get(name) else {
        return Vec::new();
    };
    let bundles = bundle_repositories_named(state);
    let own_bundles: std::collections::BTreeSet<&str> = saved
        .release_bundle
        .as_ref()
        .map(bundle_repositories)
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for t in state.permissions.targets.values() {
        let Some(repo) = &t.repo else { continue };
        for r in &repo.repositories {
            let mine = t.name == name && bundles.contains(r.as_str());
            if mine || own_bundles.contains(r.as_str()) {
                out.entry(r.clone()).or_default().push(t.name.clone());
            }
        }
    }
    out.into_iter().collect()
}

/// Which sections decide a question about a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// An artifact repository: `repo` sections (by name, `ANY`, class) and project roles.
    Repository,
    /// [`BUILD_INFO_REPOSITORY`]: `build` sections; patterns are on `<build-name>/…`.
    Build,
    /// [`RELEASE_BUNDLES_REPOSITORY`] or a repository a `releaseBundle` section names:
    /// `releaseBundle` sections only; patterns are on `<bundle-name>/<version>/…`.
    ReleaseBundle,
}

/// The repositories a stored `releaseBundle` section applies to.
fn bundle_repositories(s: &PermissionSection) -> Vec<&str> {
    let named: Vec<&str> = s
        .repositories
        .iter()
        .map(String::as_str)
        .filter(|r| !is_any_repository(r) && *r != BUILD_INFO_REPOSITORY)
        .collect();
    if s.repositories.is_empty() {
        vec![RELEASE_BUNDLES_REPOSITORY]
    } else {
        named
    }
}

/// Who is asking, after credentials and token scope are taken into account.
#[derive(Debug, Clone)]
pub struct Subject {
    pub username: String,
    pub admin: bool,
    /// Groups whose grants apply (all the user's groups, or exactly those of a
    /// `applied-permissions/groups:` token).
    pub groups: BTreeSet<String>,
    /// Whether the user's own grants apply (not for a groups-only token).
    pub own_grants: bool,
}

impl Subject {
    /// The subject for a principal with an optional token scope.
    pub fn new(dir: &Directory, username: &str, admin: bool, scope: Option<&str>) -> Subject {
        let user_groups: BTreeSet<String> = dir
            .users
            .get(username)
            .map(|u| u.groups.iter().cloned().collect())
            .unwrap_or_default();
        let Some(scope) = scope else {
            return Subject {
                username: username.into(),
                admin,
                groups: user_groups,
                own_grants: true,
            };
        };
        let mut groups = BTreeSet::new();
        let mut own = false;
        for part in crate::scope::parts(scope) {
            if part == crate::scope::USER {
                own = true;
                groups.extend(user_groups.iter().cloned());
            } else if let Some(list) = part.strip_prefix(crate::scope::GROUPS) {
                groups.extend(
                    crate::scope::group_names(list)
                        .filter(|g| dir.groups.contains_key(*g))
                        .map(str::to_string),
                );
            }
        }
        Subject {
            username: username.into(),
            admin,
            groups,
            own_grants: own,
        }
    }
}

/// The answer, with the grant that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The grant that allowed, or why nothing did (a fixed text: no allocation for the
    /// most common answer, a refusal).
    pub via: Cow<'static, str>,
}

impl Decision {
    fn denied(via: &'static str) -> Decision {
        Decision {
            allowed: false,
            via: Cow::Borrowed(via),
        }
    }
}

/// A repository key as the indexes keep it: up to 24 bytes inline in the map's slot, so
/// that a probe that finds it does not then wait for another cache line holding the name.
type RepoKey = SmallVec<[u8; 24]>;

/// Maps keyed by repository, hashed with foldhash: a decision makes two look-ups, and
/// std's SipHash (made for keys an attacker picks) cost more than the probes themselves.
/// The keys are names an admin wrote; foldhash's per-process random seed still keeps them
/// from being chosen to collide.
type RepoMap<V> = HashMap<RepoKey, V, foldhash::fast::RandomState>;

fn repo_key(name: &str) -> RepoKey {
    RepoKey::from_slice(name.as_bytes())
}

/// The bit of an action in a grant's mask (its place in [`ACTIONS`]); stored actions are
/// checked against [`ACTIONS`] on the way in, so every one has a bit.
fn action_bit(action: &str) -> Option<u8> {
    ACTIONS.iter().position(|a| *a == action).map(|i| 1 << i)
}

fn action_mask<'a>(actions: impl IntoIterator<Item = &'a str>) -> u8 {
    actions
        .into_iter()
        .filter_map(action_bit)
        .fold(0, |mask, bit| mask | bit)
}

/// A principal as the indexes know it: a keyed hash of (user or group, name), the same
/// in every index and computed from a subject without touching memory. Looking names up
/// in maps cost a decision more than anything else (each probe a cache miss on a large
/// site); a grant found by its key is confirmed against the stored name before it counts.
fn principal_key(group: bool, name: &str) -> u64 {
    static KEYS: OnceLock<foldhash::fast::RandomState> = OnceLock::new();
    KEYS.get_or_init(Default::default).hash_one((group, name))
}

/// One of the subject's principals, and whose it is (for `via` and the confirmation).
#[derive(Clone, Copy)]
enum Who<'a> {
    User(&'a str),
    Group(&'a str),
}

impl Who<'_> {
    fn is(&self, group: bool, name: &str) -> bool {
        match self {
            Who::User(n) => !group && *n == name,
            Who::Group(n) => group && *n == name,
        }
    }
}

/// The subject's principals in the order a decision tries them: its own (when its own
/// grants apply), then its groups by name — the order `via` has always followed.
type SubjectKeys<'a> = SmallVec<[(u64, Who<'a>); 8]>;

fn subject_keys(subject: &Subject) -> SubjectKeys<'_> {
    let own = subject.own_grants.then(|| {
        (
            principal_key(false, &subject.username),
            Who::User(&subject.username),
        )
    });
    let groups = subject
        .groups
        .iter()
        .map(|g| (principal_key(true, g), Who::Group(g)));
    own.into_iter().chain(groups).collect()
}

/// One principal's actions through one section (or project grant).
#[derive(Clone, Copy)]
struct Grant {
    /// The section in [`TargetIndex::sections`] (or grant in a project index's list).
    item: u32,
    /// The principal in [`TargetIndex::names`] (unused in a project index, whose grants
    /// name their member).
    name: u32,
    actions: u8,
}

/// The grants of the sections that name one repository (or `ANY`, …). A decision reads
/// `keys` straight through: on a large site it is not in the cache, and a sequential read
/// of 4-byte fingerprints (sixteen a cache line) fetches its lines together where a search
/// or a map probe would wait for each in turn.
#[derive(Default)]
struct Bucket {
    /// The low half of each grant's principal key; a match is a candidate only (the
    /// stored name confirms it).
    keys: Vec<u32>,
    grants: Vec<Grant>,
}

/// Up to this many fingerprints, a bucket is read straight through; beyond it (an `ANY`
/// bucket on a site with thousands of targets on it) or for a subject in many groups,
/// each of the subject's keys is found by binary search in the sorted fingerprints.
const SCAN_MAX: usize = 128;

impl Bucket {
    fn push(&mut self, key: u64, grant: Grant) {
        self.keys.push(key as u32);
        self.grants.push(grant);
    }

    /// Sort by fingerprint (then section): either way of reading finds the same grants.
    fn finish(&mut self) {
        let mut order: Vec<usize> = (0..self.keys.len()).collect();
        order.sort_unstable_by_key(|&i| (self.keys[i], self.grants[i].item));
        self.keys = order.iter().map(|&i| self.keys[i]).collect();
        self.grants = order.iter().map(|&i| self.grants[i]).collect();
    }

    /// The first grant, in the subject's order and then in section order, that has the
    /// action, belongs to one of `who` and passes `confirm` (the name, the patterns).
    fn first<'a>(
        &self,
        who: &SubjectKeys<'a>,
        bit: u8,
        confirm: impl FnMut(&Grant, Who<'a>) -> bool,
    ) -> Option<(&Grant, Who<'a>)> {
        first_of(std::iter::once(self), who, bit, confirm)
    }

    /// The grants of this bucket with the action for one of `who`, each with the rank of
    /// its principal in `who` (candidates: the name and patterns are not checked yet).
    fn candidates<'g>(
        &'g self,
        who: &SubjectKeys<'_>,
        bit: u8,
        found: &mut SmallVec<[(usize, &'g Grant); 8]>,
    ) {
        let mut take = |i: usize, rank: usize| {
            let g = &self.grants[i];
            if g.actions & bit != 0 {
                found.push((rank, g));
            }
        };
        if self.keys.len() <= SCAN_MAX && who.len() <= 8 {
            for (i, &k) in self.keys.iter().enumerate() {
                // Every one of the subject's principals with this fingerprint: two of
                // them may share it, and the name decides which the grant is for.
                for (rank, _) in who.iter().enumerate().filter(|(_, (w, _))| *w as u32 == k) {
                    take(i, rank);
                }
            }
        } else {
            for (rank, (w, _)) in who.iter().enumerate() {
                let k = *w as u32;
                let from = self.keys.partition_point(|&x| x < k);
                let run = self.keys[from..].iter().take_while(|&&x| x == k).count();
                (from..from + run).for_each(|i| take(i, rank));
            }
        }
    }
}

/// [`Bucket::first`] over several buckets read as one: the first grant of all of them,
/// in the subject's order and then in section order.
fn first_of<'g, 'a>(
    buckets: impl IntoIterator<Item = &'g Bucket>,
    who: &SubjectKeys<'a>,
    bit: u8,
    mut confirm: impl FnMut(&Grant, Who<'a>) -> bool,
) -> Option<(&'g Grant, Who<'a>)> {
    let mut found: SmallVec<[(usize, &Grant); 8]> = SmallVec::new();
    for bucket in buckets {
        bucket.candidates(who, bit, &mut found);
    }
    found.sort_unstable_by_key(|(rank, g)| (*rank, g.item));
    found
        .into_iter()
        .map(|(rank, g)| (g, who[rank].1))
        .find(|&(g, whose)| confirm(g, whose))
}

struct CompiledSection {
    target: Box<str>,
    include: Arc<Patterns>,
    exclude: Arc<Patterns>,
}

/// A section's compiled patterns, and whether they cover the repository itself (the
/// empty path). globset's `*` matches an empty string where Ant's needs a segment: an
/// include `*` answered a question about the repository itself yes, and `org/**` no.
/// Only patterns of `**` alone reach it (no patterns at all, for an include).
struct Patterns {
    set: GlobSet,
    root: bool,
}

impl Patterns {
    fn new(patterns: &[String], default_all: bool) -> Patterns {
        let written: Vec<std::borrow::Cow<'_, str>> = patterns
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| normal_pattern(p))
            .collect();
        let root = if written.is_empty() {
            default_all
        } else {
            written
                .iter()
                .any(|p| !p.is_empty() && ant(p).split('/').all(|s| s == "**"))
        };
        Patterns {
            set: glob_set(patterns, default_all),
            root,
        }
    }

    fn matches(&self, path: &str, c: &globset::Candidate<'_>) -> bool {
        if path.is_empty() {
            self.root
        } else {
            self.set.is_match_candidate(c)
        }
    }
}

/// What `ANY LOCAL` / `ANY REMOTE` make of a registered repository's class.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AnyClass {
    Local,
    Remote,
    Neither,
}

/// What the index knows of one repository key: which sections decide about it, the
/// class words that reach it, and the grants of the sections that name it.
struct RepoEntry {
    kind: ResourceKind,
    class: AnyClass,
    grants: Bucket,
    /// Wide sections that name this repository, read with `grants` as one bucket (their
    /// places in [`TargetIndex::wide`]).
    wide: SmallVec<[u32; 2]>,
}

impl RepoEntry {
    fn new(kind: ResourceKind, class: AnyClass) -> RepoEntry {
        RepoEntry {
            kind,
            class,
            grants: Bucket::default(),
            wide: SmallVec::new(),
        }
    }
}

/// From this many principals on, a section that names several repositories keeps its
/// grants once, in a bucket of its own that each repository's entry refers to, rather
/// than a copy in every repository's bucket: a target of 20,000 users on 2,000
/// repositories made 40 million copies, and the first decision after any permission
/// write took a minute and 2.5 GB to build them.
const WIDE_FROM: usize = 64;

/// Compiled sections (`repo`, `build`, `releaseBundle`) of every permission target.
pub struct TargetIndex {
    pub built_from: u64,
    sections: Vec<CompiledSection>,
    /// The users and groups the grants name, for confirming a grant found by its key.
    names: Vec<(bool, Box<str>)>,
    /// Registered repositories, those sections name, and the release-bundle
    /// repositories (always with [`RELEASE_BUNDLES_REPOSITORY`]): one look-up a decision.
    repos: RepoMap<RepoEntry>,
    any: Bucket,
    any_local: Bucket,
    any_remote: Bucket,
    /// `build` sections (all of them apply to [`BUILD_INFO_REPOSITORY`]).
    builds: Bucket,
    /// The grants of wide sections (see [`WIDE_FROM`]), one bucket each.
    wide: Vec<Bucket>,
    /// The number of principals from which a section is wide.
    wide_from: usize,
}

/// Both compiled indexes; each part is rebuilt only when its own data changed.
pub struct PermissionIndex {
    pub targets: Arc<TargetIndex>,
    pub projects: Arc<ProjectIndex>,
}

impl PermissionIndex {
    pub fn build(state: &State) -> PermissionIndex {
        PermissionIndex {
            targets: Arc::new(TargetIndex::build(state)),
            projects: Arc::new(ProjectIndex::build(state)),
        }
    }

    /// Whether the state moved on since this index was built.
    pub fn is_current(&self, state: &State) -> bool {
        self.targets.built_from == state.permissions.changed_seq
            && self.projects.built_from == state.projects.changed_seq
    }

    /// Whether this index was built from a later state than `state` (in either part).
    pub fn is_newer_than(&self, state: &State) -> bool {
        self.targets.built_from > state.permissions.changed_seq
            || self.projects.built_from > state.projects.changed_seq
    }

    /// A current index, reusing the parts that did not change.
    pub fn refreshed(&self, state: &State) -> PermissionIndex {
        PermissionIndex {
            targets: if self.targets.built_from == state.permissions.changed_seq {
                self.targets.clone()
            } else {
                Arc::new(TargetIndex::build(state))
            },
            projects: if self.projects.built_from == state.projects.changed_seq {
                self.projects.clone()
            } else {
                Arc::new(ProjectIndex::build(state))
            },
        }
    }

    /// May `subject` do `action` on `path` in `repo`? `via` names the deciding grant:
    /// admin, then permission targets, then project roles (whose actions here are
    /// repository actions: they do not reach build info or release bundles).
    pub fn decide(&self, subject: &Subject, repo: &str, path: &str, action: &str) -> Decision {
        if subject.admin {
            return Decision {
                allowed: true,
                via: Cow::Borrowed("admin"),
            };
        }
        let Some(bit) = action_bit(action) else {
            return Decision::denied("no grant");
        };
        let who = subject_keys(subject);
        let (d, kind) = self.targets.decide(&who, repo, path, bit);
        if d.allowed || kind != ResourceKind::Repository {
            return d;
        }
        self.projects.decide(&who, repo, bit).unwrap_or(d)
    }
}

/// Project role actions that are repository actions, and the action each one is.
pub const ROLE_REPOSITORY_ACTIONS: &[(&str, &str)] = &[
    ("READ_REPOSITORY", "read"),
    ("ANNOTATE_REPOSITORY", "annotate"),
    ("DEPLOY_CACHE_REPOSITORY", "write"),
    ("DELETE_OVERWRITE_REPOSITORY", "delete"),
    // Xray's metadata, as the Access API's `MANAGED_XRAY_METADATA` and v1's `mxm` are:
    // not `manage` (a role for Xray metadata could sign URLs and so read every file).
    ("MANAGE_XRAY_MD_REPOSITORY", "managedXrayMeta"),
];

/// Every role action JFrog projects know (the repository ones feed the decision; the
/// others are kept for the products that ask about builds, bundles and pipelines).
pub const ROLE_ACTIONS: &[&str] = &[
    "READ_REPOSITORY",
    "ANNOTATE_REPOSITORY",
    "DEPLOY_CACHE_REPOSITORY",
    "DELETE_OVERWRITE_REPOSITORY",
    "MANAGE_XRAY_MD_REPOSITORY",
    "READ_RELEASE_BUNDLE",
    "ANNOTATE_RELEASE_BUNDLE",
    "CREATE_RELEASE_BUNDLE",
    "DISTRIBUTE_RELEASE_BUNDLE",
    "DELETE_RELEASE_BUNDLE",
    "MANAGE_XRAY_MD_RELEASE_BUNDLE",
    "READ_BUILD",
    "ANNOTATE_BUILD",
    "DEPLOY_BUILD",
    "DELETE_BUILD",
    "MANAGE_XRAY_MD_BUILD",
    "READ_SOURCES_PIPELINE",
    "TRIGGER_PIPELINE",
    "READ_INTEGRATIONS_PIPELINE",
    "READ_POOLS_PIPELINE",
    "MANAGE_INTEGRATIONS_PIPELINE",
    "MANAGE_SOURCES_PIPELINE",
    "MANAGE_POOLS_PIPELINE",
    "TRIGGER_SECURITY",
    "ISSUES_SECURITY",
    "REPORTS_SECURITY",
    "WATCHES_SECURITY",
    "POLICIES_SECURITY",
    "RULES_SECURITY",
    "MANAGE_MEMBERS",
    "MANAGE_RESOURCES",
];

/// Environments of a repository; one without any is in `DEV` (JFrog's default).
pub fn repository_environments(r: &gatehouse_schemas::Repository) -> Vec<String> {
    if r.environments.is_empty() {
        vec!["DEV".into()]
    } else {
        r.environments.clone()
    }
}

/// One member's repository actions in one repository, through one project role.
#[derive(Debug, Clone)]
struct ProjectGrant {
    project: String,
    role: String,
    group: bool,
    member: String,
    actions: Vec<&'static str>,
}

/// Project roles compiled per repository: the repository's own project and the projects
/// it is shared with, each member's roles whose environments meet the repository's.
pub struct ProjectIndex {
    pub built_from: u64,
    /// Repository -> its grants, and the same grants by member.
    by_repo: RepoMap<(Vec<ProjectGrant>, Bucket)>,
}

impl ProjectIndex {
    pub fn build(state: &State) -> ProjectIndex {
        let mut by_repo = RepoMap::default();
        for (key, repo) in &state.repositories.by_key {
            let envs = repository_environments(&repo.config);
            let projects = state.projects.by_key.values().filter(|p| {
                let k = &p.config.project_key;
                repo.project.as_ref() == Some(k)
                    || repo.shared_with_all
                    || repo.shared_with.contains(k)
            });
            let mut grants = Vec::new();
            for p in projects {
                let members = p
                    .users
                    .iter()
                    .map(|m| (false, m))
                    .chain(p.groups.iter().map(|m| (true, m)));
                for (group, (member, roles)) in members {
                    for role_name in roles {
                        let Some(role) = state.projects.role_in(p, role_name) else {
                            continue;
                        };
                        if !role.environments.iter().any(|e| envs.contains(e)) {
                            continue;
                        }
                        let actions: Vec<&'static str> = ROLE_REPOSITORY_ACTIONS
                            .iter()
                            .filter(|(name, _)| role.actions.iter().any(|a| a == name))
                            .map(|(_, action)| *action)
                            .collect();
                        if actions.is_empty() {
                            continue;
                        }
                        grants.push(ProjectGrant {
                            project: p.config.project_key.clone(),
                            role: role.name.clone(),
                            group,
                            member: member.clone(),
                            actions,
                        });
                    }
                }
            }
            if !grants.is_empty() {
                let mut bucket = Bucket::default();
                for (i, g) in grants.iter().enumerate() {
                    let grant = Grant {
                        item: i as u32,
                        name: 0,
                        actions: action_mask(g.actions.iter().copied()),
                    };
                    bucket.push(principal_key(g.group, &g.member), grant);
                }
                bucket.finish();
                by_repo.insert(repo_key(key), (grants, bucket));
            }
        }
        ProjectIndex {
            built_from: state.projects.changed_seq,
            by_repo,
        }
    }

    /// The project role that lets `who` do the action of `bit` anywhere in `repo`, if any.
    fn decide(&self, who: &SubjectKeys, repo: &str, bit: u8) -> Option<Decision> {
        let (grants, bucket) = self.by_repo.get(repo.as_bytes())?;
        let (g, _) = bucket.first(who, bit, |g, whose| {
            let g = &grants[g.item as usize];
            whose.is(g.group, &g.member)
        })?;
        let g = &grants[g.item as usize];
        Some(Decision {
            allowed: true,
            via: Cow::Owned(format!(
                "project `{}` role `{}` ({} `{}`)",
                g.project,
                g.role,
                if g.group { "group" } else { "user" },
                g.member
            )),
        })
    }

    /// What `subject` holds through project roles, repository by repository.
    fn effective(
        &self,
        subject: &Subject,
        applies: impl Fn(&str) -> bool,
    ) -> Vec<serde_json::Value> {
        let mut out: Vec<serde_json::Value> = Vec::new();
        // Keys were made from `&str`: the lossy conversion never replaces anything.
        let mut repos: Vec<_> = self
            .by_repo
            .iter()
            .map(|(k, (grants, _))| (String::from_utf8_lossy(k), grants))
            .collect();
        repos.retain(|(repo, _)| applies(repo));
        repos.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (repo, grants) in repos {
            for g in grants {
                let holds = if g.group {
                    subject.groups.contains(&g.member)
                } else {
                    subject.own_grants && g.member == subject.username
                };
                if holds {
                    out.push(serde_json::json!({
                        "repository": repo,
                        "project": g.project,
                        "role": g.role,
                        "via": format!("{} `{}`", if g.group { "group" } else { "user" }, g.member),
                        "actions": g.actions,
                    }));
                }
            }
        }
        out
    }
}

/// The entitlement that lets the access key `<id>@<org>` do `action` on `path` in
/// `repo`. `r` grants read; `rw` grants read, annotate and write (push and pull, in
/// Bintray's words) — never delete or manage.
pub fn decide_access_key(
    state: &State,
    key: &str,
    repo: &str,
    path: &str,
    action: &str,
) -> Decision {
    let ids = state.access_keys.entitlements_by_key.get(key);
    for id in ids.into_iter().flatten() {
        let Some(e) = state.access_keys.entitlements.get(id) else {
            continue;
        };
        let e = &e.entitlement;
        let access_ok = match e.access.as_str() {
            "rw" => matches!(action, "read" | "annotate" | "write"),
            _ => action == "read",
        };
        if access_ok && e.repo == repo && entitlement_covers(e, path, is_maven(state, repo)) {
            return Decision {
                allowed: true,
                via: Cow::Owned(format!(
                    "entitlement `{}` ({} on {}, access key `{key}`)",
                    e.id,
                    e.access,
                    entitlement_scope(e)
                )),
            };
        }
    }
    Decision::denied("no entitlement")
}

/// Whether `repo` is registered as a Maven repository.
fn is_maven(state: &State, repo: &str) -> bool {
    state
        .repositories
        .by_key
        .get(repo)
        .and_then(|r| r.config.package_type.as_deref())
        .is_some_and(|t| t.eq_ignore_ascii_case("maven"))
}

/// The scope of an entitlement as a path prefix inside its repository: a package's
/// files live under `<package>/`, a version's under `<package>/<version>/` (Bintray's
/// generic layout), a path entitlement covers the path and everything below it. In a
/// Maven repository a package `groupId:artifactId` lives under `group/id/artifactId/`
/// (Maven's layout: `com.acme:lib` granted nothing on `com/acme/lib/1.0/lib-1.0.jar`).
fn entitlement_prefix(e: &gatehouse_schemas::Entitlement, maven: bool) -> Option<String> {
    match (&e.package, &e.version, &e.path) {
        (Some(p), Some(v), _) => Some(format!("{p}/{v}")),
        (Some(p), None, _) => Some(match p.split_once(':').filter(|_| maven) {
            Some((group, artifact)) => format!("{}/{artifact}", group.replace('.', "/")),
            None => p.clone(),
        }),
        (None, _, Some(path)) => Some(path.trim_matches('/').to_string()).filter(|p| !p.is_empty()),
        _ => None,
    }
}

fn entitlement_covers(e: &gatehouse_schemas::Entitlement, path: &str, maven: bool) -> bool {
    match entitlement_prefix(e, maven) {
        None => true,
        Some(prefix) => {
            path == prefix
                || path
                    .strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        }
    }
}

/// What an entitlement covers, in words (``package `repo/app` ``), for messages.
pub fn entitlement_scope(e: &gatehouse_schemas::Entitlement) -> String {
    match (&e.package, &e.version, &e.path) {
        (Some(p), Some(v), _) => format!("version `{}/{p}/{v}`", e.repo),
        (Some(p), None, _) => format!("package `{}/{p}`", e.repo),
        (None, _, Some(path)) => format!("path `{}/{path}`", e.repo),
        _ => format!("repository `{}`", e.repo),
    }
}

/// Ant-style glob: `*` and `?` stay inside one path segment, `**` crosses them.
fn glob(pattern: &str) -> Option<Glob> {
    GlobBuilder::new(&ant(pattern))
        .literal_separator(true)
        .backslash_escape(false)
        .build()
        .ok()
}

/// An Ant pattern in globset's syntax: Ant knows `*`, `?` and `**` only, so `[`, `]`,
/// `{` and `}` are letters (globset read `x[1]` as a class and `{a,b}` as
/// alternatives, and refused `org/[draft/**`); and a pattern ending in `/` means
/// everything under it, as `/**` (Ant's rule; globset matched nothing there).
pub fn ant(pattern: &str) -> std::borrow::Cow<'_, str> {
    if !pattern.ends_with('/') && !pattern.contains(['[', ']', '{', '}']) {
        return std::borrow::Cow::Borrowed(pattern);
    }
    let mut out = String::with_capacity(pattern.len() + 8);
    for c in pattern.chars() {
        match c {
            '[' | ']' | '{' | '}' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            c => out.push(c),
        }
    }
    if out.ends_with('/') {
        out.push_str("**");
    }
    std::borrow::Cow::Owned(out)
}

/// A pattern as Ant reads it against the paths judged here: Ant drops a pattern's empty
/// segments (`org//x`, a leading `/`), and a judged path has no `.` segments (nor empty
/// ones). So `org//secret/**`, `/org/secret/**` and `./org/secret/**` are
/// `org/secret/**`: compiled as written they matched no path, and an exclude written so
/// excluded nothing. A trailing `/` stays (it means `/**`); a pattern of slashes alone
/// is `**`.
pub fn normal_pattern(p: &str) -> std::borrow::Cow<'_, str> {
    let clean = !p.starts_with('/') && !p.contains("//") && !p.split('/').any(|s| s == ".");
    if clean {
        return std::borrow::Cow::Borrowed(p);
    }
    let mut out = p
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect::<Vec<_>>()
        .join("/");
    if p.ends_with('/') {
        out.push_str(if out.is_empty() { "**" } else { "/" });
    }
    std::borrow::Cow::Owned(out)
}

/// Patterns were validated on the way in; an unparsable one (which cannot happen for
/// stored targets) matches nothing, never everything.
fn glob_set(patterns: &[String], default_all: bool) -> GlobSet {
    let mut b = GlobSetBuilder::new();
    let mut any = false;
    for p in patterns.iter().filter(|p| !p.is_empty()) {
        let p: &str = &normal_pattern(p);
        if p.is_empty() {
            // `.` and the like: no judged path has such a segment, so it matches
            // nothing — it is not "no patterns" (which is `**` for an include).
            any = true;
            continue;
        }
        if let Some(g) = glob(p) {
            b.add(g);
            any = true;
        }
        // Ant: a trailing `/**` matches zero or more directories, so `org/acme/**` also
        // matches `org/acme` itself; globset needs at least one more segment. So does a
        // trailing `/`, which means `/**` (and `org/**/` is `org/**/**`: `org` too).
        let trimmed = p.strip_suffix('/').unwrap_or(p);
        let under = trimmed
            .strip_suffix("/**")
            .or((trimmed.len() < p.len()).then_some(trimmed));
        if let Some(g) = under.filter(|s| !s.is_empty()).and_then(glob) {
            b.add(g);
        }
    }
    if !any && default_all {
        b.add(glob("**").expect("`**` is a glob"));
    }
    b.build().unwrap_or_else(|_| GlobSet::empty())
}

/// Check a pattern as a client sends it (for a clear 400 naming it).
pub fn valid_pattern(p: &str) -> bool {
    p.is_empty() || (!p.chars().any(char::is_control) && glob(&normal_pattern(p)).is_some())
}

impl TargetIndex {
    pub fn build(state: &State) -> TargetIndex {
        TargetIndex::build_with(state, WIDE_FROM)
    }

    /// [`build`](Self::build), with sections wide from `wide_from` principals on (the
    /// tests build both ways and compare every decision).
    fn build_with(state: &State, wide_from: usize) -> TargetIndex {
        let class = |rclass: &str| match rclass {
            "local" | "federated" => AnyClass::Local,
            "remote" => AnyClass::Remote,
            _ => AnyClass::Neither,
        };
        let mut repos: RepoMap<RepoEntry> = state
            .repositories
            .by_key
            .iter()
            .map(|(k, r)| {
                let entry = RepoEntry::new(ResourceKind::Repository, class(&r.config.rclass));
                (repo_key(k), entry)
            })
            .collect();
        // Release-bundle repositories first: a `repo` section that names one is never
        // consulted there, whichever target comes first.
        let bundle_sections = state
            .permissions
            .targets
            .values()
            .filter_map(|t| t.release_bundle.as_ref());
        let bundle_repos = bundle_sections
            .flat_map(bundle_repositories)
            .chain([RELEASE_BUNDLES_REPOSITORY]);
        for name in bundle_repos {
            repos
                .entry(repo_key(name))
                .or_insert_with(|| RepoEntry::new(ResourceKind::ReleaseBundle, AnyClass::Neither))
                .kind = ResourceKind::ReleaseBundle;
        }
        let mut index = TargetIndex {
            built_from: state.permissions.changed_seq,
            sections: vec![],
            names: vec![],
            repos,
            any: Bucket::default(),
            any_local: Bucket::default(),
            any_remote: Bucket::default(),
            builds: Bucket::default(),
            wide: Vec::new(),
            wide_from,
        };
        // Each distinct list of patterns compiled once: sites repeat the same few patterns
        // (`**`, `org/**`) across thousands of targets, and a compiled set is large.
        let mut globs = HashMap::new();
        let mut names = HashMap::new();
        for target in state.permissions.targets.values() {
            let sections = [
                (&target.repo, ResourceKind::Repository),
                (&target.build, ResourceKind::Build),
                (&target.release_bundle, ResourceKind::ReleaseBundle),
            ];
            for (section, kind) in sections {
                if let Some(section) = section {
                    index.add(&mut globs, &mut names, &target.name, section, kind);
                }
            }
        }
        for entry in index.repos.values_mut() {
            entry.grants.finish();
        }
        let buckets = [
            &mut index.any,
            &mut index.any_local,
            &mut index.any_remote,
            &mut index.builds,
        ];
        for bucket in buckets.into_iter().chain(index.wide.iter_mut()) {
            bucket.finish();
        }
        index
    }

    /// Which sections decide a question about `repo`.
    pub fn kind(&self, repo: &str) -> ResourceKind {
        self.entry(repo).1
    }

    /// What the index holds for `repo` (build info keeps nothing here: its sections are
    /// all in `builds`), and which sections decide about it.
    fn entry(&self, repo: &str) -> (Option<&RepoEntry>, ResourceKind) {
        if repo == BUILD_INFO_REPOSITORY {
            return (None, ResourceKind::Build);
        }
        let entry = self.repos.get(repo.as_bytes());
        (entry, entry.map_or(ResourceKind::Repository, |e| e.kind))
    }

    fn add(
        &mut self,
        globs: &mut Globs,
        names: &mut Names,
        target: &str,
        s: &PermissionSection,
        kind: ResourceKind,
    ) {
        let repos: Vec<&str> = match kind {
            ResourceKind::Repository => s.repositories.iter().map(String::as_str).collect(),
            ResourceKind::Build => vec![BUILD_INFO_REPOSITORY],
            ResourceKind::ReleaseBundle => bundle_repositories(s),
        };
        // Repositories with patterns of their own (Access v2 permissions keep patterns
        // per target) get a compiled section each; the rest share the section's.
        let (own, shared): (Vec<&str>, Vec<&str>) = repos
            .into_iter()
            .partition(|r| s.patterns_by_repository.contains_key(*r));
        if !shared.is_empty() {
            let patterns = (&s.include_patterns[..], &s.exclude_patterns[..]);
            self.add_compiled((globs, names), target, s, patterns, kind, &shared);
        }
        for repo in own {
            let p = &s.patterns_by_repository[repo];
            let patterns = (&p.include_patterns[..], &p.exclude_patterns[..]);
            self.add_compiled((globs, names), target, s, patterns, kind, &[repo]);
        }
    }

    fn add_compiled(
        &mut self,
        (globs, names): (&mut Globs, &mut Names),
        target: &str,
        s: &PermissionSection,
        (include, exclude): (&[String], &[String]),
        kind: ResourceKind,
        repos: &[&str],
    ) {
        let mut compiled = |patterns: &[String], default_all: bool| {
            globs
                .entry((patterns.to_vec(), default_all))
                .or_insert_with(|| Arc::new(Patterns::new(patterns, default_all)))
                .clone()
        };
        let item = self.sections.len() as u32;
        self.sections.push(CompiledSection {
            target: target.into(),
            include: compiled(include, true),
            exclude: compiled(exclude, false),
        });
        // User names are case-insensitive: a key written by hand in another case still
        // means its lower-case user.
        let users = s.users.iter().map(|(u, a)| (false, u.to_lowercase(), a));
        let groups = s.groups.iter().map(|(g, a)| (true, g.clone(), a));
        let grants: Vec<(u64, Grant)> = users
            .chain(groups)
            .map(|(group, name, actions)| {
                let key = principal_key(group, &name);
                let grant = Grant {
                    item,
                    name: *names
                        .entry((group, name))
                        .or_insert_with_key(|(group, name)| {
                            self.names.push((*group, name.as_str().into()));
                            self.names.len() as u32 - 1
                        }),
                    actions: action_mask(actions.iter().map(String::as_str)),
                };
                (key, grant)
            })
            .collect();
        // A wide section's grants once, referred to by each repository it names.
        let wide = (repos.len() > 1 && grants.len() >= self.wide_from).then(|| {
            let mut bucket = Bucket::default();
            for &(key, grant) in &grants {
                bucket.push(key, grant);
            }
            self.wide.push(bucket);
            self.wide.len() as u32 - 1
        });
        for &repo in repos {
            let entry = match (kind, repo) {
                (ResourceKind::Build, _) => Err(&mut self.builds),
                (ResourceKind::ReleaseBundle, name) => match self.repos.get_mut(name.as_bytes()) {
                    Some(entry) => Ok(entry),
                    None => continue,
                },
                (ResourceKind::Repository, "ANY") => Err(&mut self.any),
                // By the class of the registered repository; an unregistered one is of
                // no known class, so neither matches it (never grant more than written).
                (ResourceKind::Repository, "ANY LOCAL") => Err(&mut self.any_local),
                (ResourceKind::Repository, "ANY REMOTE") => Err(&mut self.any_remote),
                // Build info and release-bundle repositories are decided by their own
                // sections only: a `repo` section naming one is never consulted there.
                (ResourceKind::Repository, BUILD_INFO_REPOSITORY) => continue,
                (ResourceKind::Repository, name) => {
                    let entry = self.repos.entry(repo_key(name)).or_insert_with(|| {
                        RepoEntry::new(ResourceKind::Repository, AnyClass::Neither)
                    });
                    if entry.kind != ResourceKind::Repository {
                        continue;
                    }
                    Ok(entry)
                }
            };
            // `Err`: a bucket of its own (`ANY`, builds), filled once whatever the width.
            let bucket = match (entry, wide) {
                (Ok(entry), Some(w)) => {
                    entry.wide.push(w);
                    continue;
                }
                (Ok(entry), None) => &mut entry.grants,
                (Err(bucket), _) => bucket,
            };
            for &(key, grant) in &grants {
                bucket.push(key, grant);
            }
        }
    }

    /// May `who` do the action of `bit` on `path` in `repo`? `via` names the deciding
    /// grant; with the decision, which sections decide about `repo`.
    fn decide(
        &self,
        who: &SubjectKeys,
        repo: &str,
        path: &str,
        bit: u8,
    ) -> (Decision, ResourceKind) {
        let (entry, kind) = self.entry(repo);
        // Only the sections of the repository's kind: `ANY` in a `repo` section means any
        // artifact repository, never build info or release bundles (Artifactory keeps
        // those under their own sections, and reserves their repository keys).
        let own = entry.map(|e| (&e.grants, &e.wide[..]));
        let none: &[u32] = &[];
        let buckets = match kind {
            ResourceKind::Build => [Some((&self.builds, none)), None, None],
            ResourceKind::ReleaseBundle => [own, None, None],
            ResourceKind::Repository => {
                let by_class = match entry.map(|e| e.class) {
                    Some(AnyClass::Local) => Some(&self.any_local),
                    Some(AnyClass::Remote) => Some(&self.any_remote),
                    _ => None,
                };
                [own, Some((&self.any, none)), by_class.map(|b| (b, none))]
            }
        };
        // Built once per decision, and only when a grant has the action: globset
        // normalises the path for every set otherwise.
        let mut candidate = None;
        for (bucket, wide) in buckets.into_iter().flatten() {
            let wide = wide.iter().map(|&w| &self.wide[w as usize]);
            let found = first_of(std::iter::once(bucket).chain(wide), who, bit, |g, whose| {
                let (group, name) = &self.names[g.name as usize];
                let s = &self.sections[g.item as usize];
                let c = candidate.get_or_insert_with(|| globset::Candidate::new(path));
                whose.is(*group, name) && s.include.matches(path, c) && !s.exclude.matches(path, c)
            });
            if let Some((g, whose)) = found {
                let target = &self.sections[g.item as usize].target;
                let via = match whose {
                    Who::User(u) => format!("permission target `{target}` (user `{u}`)"),
                    Who::Group(g) => format!("permission target `{target}` (group `{g}`)"),
                };
                let d = Decision {
                    allowed: true,
                    via: Cow::Owned(via),
                };
                return (d, kind);
            }
        }
        (Decision::denied("no grant"), kind)
    }
}

/// Compiled pattern sets by (patterns, whether none means all), while an index is built.
type Globs = HashMap<(Vec<String>, bool), Arc<Patterns>>;

/// The numbers of (user or group, name) in [`TargetIndex::names`], while it is built.
type Names = HashMap<(bool, String), u32>;

/// What a subject holds through project roles.
pub fn effective_project_roles(
    index: &PermissionIndex,
    subject: &Subject,
) -> Vec<serde_json::Value> {
    // As `decide` judges: project roles reach repositories only (not build info, not a
    // repository a release-bundle section names), and were listed on those too.
    index.projects.effective(subject, |repo| {
        index.targets.kind(repo) == ResourceKind::Repository
    })
}

/// Everything a subject holds, section by section of each target (`section` is `repo`,
/// `build` or `releaseBundle`, `repositories` what the section applies to), and through
/// whom (user or group).
pub fn effective(state: &State, subject: &Subject) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    // A repository a release-bundle section names is decided by release-bundle sections
    // only: `repo` sections naming it grant nothing there (as `decide` judges), and
    // were listed as held.
    let bundle_repos = bundle_repositories_named(state);
    for t in state.permissions.targets.values() {
        let sections = [
            ("repo", t.repo.as_ref()),
            ("build", t.build.as_ref()),
            ("releaseBundle", t.release_bundle.as_ref()),
        ];
        for (kind, s) in sections {
            let Some(s) = s else { continue };
            let repositories: Vec<String> = match kind {
                "repo" => s
                    .repositories
                    .iter()
                    .filter(|r| !bundle_repos.contains(r.as_str()))
                    .cloned()
                    .collect(),
                "build" => vec![BUILD_INFO_REPOSITORY.to_string()],
                _ => bundle_repositories(s)
                    .into_iter()
                    .map(String::from)
                    .collect(),
            };
            if repositories.is_empty() {
                continue;
            }
            // One entry per set of patterns: a repository with patterns of its own is
            // listed with them (every repository was listed with the section's).
            let mut by_patterns: Vec<(&[String], &[String], Vec<String>)> = Vec::new();
            for r in repositories {
                let (include, exclude) = match s.patterns_by_repository.get(&r) {
                    Some(p) => (&p.include_patterns[..], &p.exclude_patterns[..]),
                    None => (&s.include_patterns[..], &s.exclude_patterns[..]),
                };
                match by_patterns
                    .iter_mut()
                    .find(|(i, e, _)| *i == include && *e == exclude)
                {
                    Some((_, _, repos)) => repos.push(r),
                    None => by_patterns.push((include, exclude, vec![r])),
                }
            }
            for (include, exclude, repositories) in by_patterns {
                if let Some(entry) =
                    effective_section(&t.name, kind, repositories, include, exclude, s, subject)
                {
                    out.push(entry);
                }
            }
        }
    }
    out
}

fn effective_section(
    target: &str,
    kind: &str,
    repositories: Vec<String>,
    include: &[String],
    exclude: &[String],
    s: &PermissionSection,
    subject: &Subject,
) -> Option<serde_json::Value> {
    let mut grants = Vec::new();
    if subject.own_grants {
        if let Some(a) = s.users.get(&subject.username) {
            grants.push(
                serde_json::json!({"via": format!("user `{}`", subject.username), "actions": a}),
            );
        }
    }
    for g in &subject.groups {
        if let Some(a) = s.groups.get(g) {
            grants.push(serde_json::json!({"via": format!("group `{g}`"), "actions": a}));
        }
    }
    if grants.is_empty() {
        return None;
    }
    Some(serde_json::json!({
        "permission_target": target,
        "section": kind,
        "repositories": repositories,
        "include_patterns": if include.iter().all(|p| p.is_empty()) { vec!["**".to_string()] } else { include.to_vec() },
        "exclude_patterns": exclude,
        "grants": grants,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_schemas::PermissionTarget;

    /// Patterns are Ant's: brackets and braces are letters, and a trailing `/` means
    /// everything under it (globset read `x[1]` as a class, `{a,b}` as alternatives, and
    /// a trailing `/` as nothing).
    #[test]
    fn patterns_are_ants_not_globsets() {
        let set = |p: &str| glob_set(&[p.to_string()], false);
        let m = |p: &str, path: &str| set(p).is_match(path);
        assert!(m("org/x[1]/**", "org/x[1]/f"));
        assert!(!m("org/x[1]/**", "org/x1/f"));
        assert!(m("org/{a,b}/**", "org/{a,b}/f"));
        assert!(!m("org/{a,b}/**", "org/a/f"));
        assert!(m("org/[draft/**", "org/[draft/f"));
        assert!(valid_pattern("org/[draft/**") && valid_pattern("a]b}c{"));
        assert!(m("docs/", "docs/x") && m("docs/", "docs/a/b") && m("docs/", "docs"));
        assert!(!m("docs/", "docsx/a"));
        assert!(m("org/*/x?.jar", "org/acme/x1.jar") && !m("org/*/x?.jar", "org/a/b/x1.jar"));
        assert!(m("org/**", "org") && m("org/**", "org/a/b"));
        // `org/**/` is `org/**/**`: `org` itself too, as `org/**`.
        assert!(m("org/**/", "org") && m("org/**/", "org/a") && !m("org/**/", "orgx"));
        // Finding: empty and `.` segments (which no judged path has) made a pattern match
        // nothing: an exclude `org//secret/**` excluded nothing. Read as Ant reads them.
        for p in [
            "org//secret/**",
            "/org/secret/**",
            "./org/secret/**",
            "org/./secret/**",
            "org/secret//",
            "//org/secret/",
        ] {
            assert!(m(p, "org/secret/passwords.txt"), "{p}");
            assert!(m(p, "org/secret"), "{p}");
            assert!(!m(p, "org/public/readme"), "{p}");
            assert!(valid_pattern(p), "{p}");
        }
        assert!(m("/", "a/b") && m("//", "a"));
        // A pattern of `.` alone matches nothing (it is not "no patterns": an include
        // `.` granted the whole repository once normalised away).
        let include = |p: &str| glob_set(&[p.to_string()], true);
        assert!(!include(".").is_match("a/b") && !include("./.").is_match("x"));
        assert!(!Patterns::new(&[".".to_string()], true).root);
        assert!(Patterns::new(&[], true).root);
        assert_eq!(normal_pattern("org/**"), "org/**");
        assert_eq!(normal_pattern("/a//b/./c/"), "a/b/c/");
    }

    fn state_with(section: PermissionSection) -> State {
        let mut s = State::default();
        s.permissions.targets.insert(
            "t".into(),
            PermissionTarget {
                name: "t".into(),
                repo: Some(section),
                ..Default::default()
            }
            .into(),
        );
        s
    }

    fn bob() -> Subject {
        Subject {
            username: "bob".into(),
            admin: false,
            groups: ["devs".to_string()].into(),
            own_grants: true,
        }
    }

    #[test]
    fn pattern_semantics_table() {
        let section = PermissionSection {
            include_patterns: vec!["org/acme/**".into(), "*.txt".into()],
            exclude_patterns: vec!["**/*-SNAPSHOT/**".into(), "org/acme/secret/**".into()],
            repositories: vec!["libs".into()],
            // The API stores user names lower-case; a key that is not (written by hand
            // into a state) still means its lower-case user: names are case-insensitive.
            users: [
                ("bob".to_string(), vec!["read".to_string()]),
                ("Cara".to_string(), vec!["read".to_string()]),
            ]
            .into(),
            groups: [("devs".to_string(), vec!["write".to_string()])].into(),
            ..Default::default()
        };
        let index = PermissionIndex::build(&state_with(section));
        let cara = Subject {
            username: "cara".into(),
            groups: BTreeSet::new(),
            ..bob()
        };
        // Group names are case-sensitive (two groups may differ by case only).
        let dana = Subject {
            username: "dana".into(),
            groups: ["Devs".to_string()].into(),
            ..bob()
        };
        // (subject, repo, path, action, allowed)
        let table = [
            (&bob(), "libs", "org/acme/app/1.0/app-1.0.jar", "read", true),
            (
                &bob(),
                "libs",
                "org/acme/app/1.0/app-1.0.jar",
                "write",
                true,
            ),
            (
                &bob(),
                "libs",
                "org/acme/app/1.0/app-1.0.jar",
                "delete",
                false,
            ),
            (
                &bob(),
                "libs",
                "org/acme/app/1.0-SNAPSHOT/app.jar",
                "read",
                false,
            ),
            (&bob(), "libs", "org/acme/secret/key.pem", "read", false),
            (&bob(), "libs", "readme.txt", "read", true),
            (&bob(), "libs", "org/acme", "read", true),
            (&bob(), "libs", "docs/readme.txt", "read", false),
            (&bob(), "other", "org/acme/app.jar", "read", false),
            // Paths are case-sensitive, in patterns and in excludes.
            (&bob(), "libs", "Org/Acme/app.jar", "read", false),
            (&bob(), "libs", "readme.TXT", "read", false),
            (&bob(), "libs", "org/acme/Secret/key.pem", "read", true),
            // Repository keys are case-sensitive: Artifactory addresses a repository by
            // its exact key.
            (&bob(), "Libs", "org/acme/app.jar", "read", false),
            (&bob(), "LIBS", "org/acme/app.jar", "read", false),
            // User names are not.
            (&cara, "libs", "org/acme/app.jar", "read", true),
            (&cara, "libs", "org/acme/app.jar", "write", false),
            (&dana, "libs", "org/acme/app.jar", "write", false),
        ];
        for (who, repo, path, action, allowed) in table {
            assert_eq!(
                index.decide(who, repo, path, action).allowed,
                allowed,
                "{} {repo} {path} {action}",
                who.username
            );
        }
    }

    #[test]
    fn build_and_release_bundle_sections_decide_their_own_repositories() {
        let mut state = State::default();
        let section =
            |include: &[&str], repos: &[&str], users: &[(&str, &str)], groups: &[(&str, &str)]| {
                PermissionSection {
                    include_patterns: include.iter().map(|p| p.to_string()).collect(),
                    exclude_patterns: vec![],
                    repositories: repos.iter().map(|r| r.to_string()).collect(),
                    users: users
                        .iter()
                        .map(|(u, a)| (u.to_string(), vec![a.to_string()]))
                        .collect(),
                    groups: groups
                        .iter()
                        .map(|(g, a)| (g.to_string(), vec![a.to_string()]))
                        .collect(),
                    ..Default::default()
                }
            };
        state.permissions.targets.insert(
            "ci".into(),
            PermissionTarget {
                name: "ci".into(),
                repo: Some(section(&[], &["ANY"], &[("bob", "read")], &[])),
                build: Some(section(
                    &["app-*/**"],
                    &[BUILD_INFO_REPOSITORY],
                    &[("bob", "write")],
                    &[],
                )),
                release_bundle: Some(section(
                    &["app/**"],
                    &[RELEASE_BUNDLES_REPOSITORY, "edge-bundles"],
                    &[],
                    &[("devs", "read")],
                )),
            }
            .into(),
        );
        state.permissions.targets.insert(
            "default-bundles".into(),
            PermissionTarget {
                name: "default-bundles".into(),
                release_bundle: Some(section(&[], &[], &[("bob", "annotate")], &[])),
                ..Default::default()
            }
            .into(),
        );
        let index = PermissionIndex::build(&state);
        let b = BUILD_INFO_REPOSITORY;
        let rb = RELEASE_BUNDLES_REPOSITORY;
        // (repo, path, action, allowed, via)
        let table = [
            (
                b,
                "app-web/12-1700000000000.json",
                "write",
                true,
                "permission target `ci` (user `bob`)",
            ),
            (
                b,
                "app-web",
                "write",
                true,
                "permission target `ci` (user `bob`)",
            ),
            (b, "other/1-1700000000000.json", "write", false, "no grant"),
            // `ANY` in the `repo` section is every artifact repository, not build info.
            (
                b,
                "app-web/12-1700000000000.json",
                "read",
                false,
                "no grant",
            ),
            (
                rb,
                "app/1.0/manifest.json",
                "read",
                true,
                "permission target `ci` (group `devs`)",
            ),
            (
                "edge-bundles",
                "app/1.0",
                "read",
                true,
                "permission target `ci` (group `devs`)",
            ),
            (rb, "app/1.0", "write", false, "no grant"),
            (rb, "other/1.0", "read", false, "no grant"),
            // No `repositories` in a `releaseBundle` section: the default repository.
            (
                rb,
                "other/1.0",
                "annotate",
                true,
                "permission target `default-bundles` (user `bob`)",
            ),
            ("edge-bundles", "other/1.0", "annotate", false, "no grant"),
            // Nor does it reach a release-bundle repository (bob's `ANY` read).
            (rb, "other/1.0", "read", false, "no grant"),
            ("edge-bundles", "other/1.0", "read", false, "no grant"),
            (
                "libs",
                "app-web/1.jar",
                "read",
                true,
                "permission target `ci` (user `bob`)",
            ),
            ("libs", "app-web/1.jar", "write", false, "no grant"),
        ];
        for (repo, path, action, allowed, via) in table {
            let d = index.decide(&bob(), repo, path, action);
            assert_eq!(
                (d.allowed, &*d.via),
                (allowed, via),
                "{repo} {path} {action}"
            );
        }
        assert_eq!(
            index.targets.kind("edge-bundles"),
            ResourceKind::ReleaseBundle
        );
        assert_eq!(index.targets.kind("libs"), ResourceKind::Repository);
    }

    /// Grants are found by a 32-bit fingerprint of their principal's key: two names
    /// that share one must not lend each other their grants.
    #[test]
    fn a_fingerprint_match_is_confirmed_by_the_name() {
        // A birthday search: two names with the same fingerprint in this process.
        let mut seen = HashMap::new();
        let (granted, other) = (0u32..)
            .find_map(|i| {
                let name = format!("g{i}");
                let print = principal_key(true, &name) as u32;
                seen.insert(print, name.clone()).map(|first| (first, name))
            })
            .expect("a collision in 2^32 names");
        assert_eq!(
            principal_key(true, &granted) as u32,
            principal_key(true, &other) as u32
        );
        let mut state = state_with(PermissionSection {
            repositories: vec!["libs".into()],
            groups: [(granted.clone(), vec!["read".to_string()])].into(),
            ..Default::default()
        });
        // The same group through a project role on the repository.
        let mut p = gatehouse_projections::ProjectRecord::default();
        p.config.project_key = "pa".into();
        p.groups
            .entry(granted.clone())
            .or_default()
            .insert("Developer".into());
        state.projects.make_mut().by_key.insert("pa".into(), p);
        state.repositories.make_mut().by_key.insert(
            "libs".into(),
            gatehouse_projections::RepositoryRecord {
                config: gatehouse_schemas::Repository {
                    key: "libs".into(),
                    rclass: "local".into(),
                    ..Default::default()
                },
                project: Some("pa".into()),
                ..Default::default()
            },
        );
        let index = PermissionIndex::build(&state);
        let member_of = |g: &str| Subject {
            username: "bob".into(),
            admin: false,
            groups: [g.to_string()].into(),
            own_grants: false,
        };
        let d = index.decide(&member_of(&granted), "libs", "a.jar", "read");
        assert_eq!(
            (d.allowed, &*d.via),
            (true, &*format!("permission target `t` (group `{granted}`)"))
        );
        let d = index.decide(&member_of(&granted), "libs", "a.jar", "write");
        assert_eq!(
            (d.allowed, &*d.via),
            (
                true,
                &*format!("project `pa` role `Developer` (group `{granted}`)")
            )
        );
        for action in ["read", "write"] {
            let d = index.decide(&member_of(&other), "libs", "a.jar", action);
            assert_eq!((d.allowed, &*d.via), (false, "no grant"), "{action}");
        }
        // A subject in both groups: the grant of the one later in name order is found
        // though the earlier one has the same fingerprint.
        let (early, late) = if granted < other {
            (&granted, &other)
        } else {
            (&other, &granted)
        };
        let mut state = state_with(PermissionSection {
            repositories: vec!["libs".into()],
            groups: [(late.clone(), vec!["read".to_string()])].into(),
            ..Default::default()
        });
        state.permissions.targets.insert(
            "t2".into(),
            PermissionTarget {
                name: "t2".into(),
                repo: Some(PermissionSection {
                    repositories: vec!["ANY".into()],
                    groups: [(early.clone(), vec!["write".to_string()])].into(),
                    ..Default::default()
                }),
                ..Default::default()
            }
            .into(),
        );
        let both = Subject {
            groups: [early.clone(), late.clone()].into(),
            ..member_of(early)
        };
        let d = PermissionIndex::build(&state).decide(&both, "libs", "a.jar", "read");
        assert_eq!(
            (d.allowed, &*d.via),
            (true, &*format!("permission target `t` (group `{late}`)"))
        );
    }

    /// xorshift: a tiny deterministic generator (a number below `n` a call), so that a
    /// failure on random data is reproducible.
    fn xorshift(mut x: u64) -> impl FnMut(usize) -> usize {
        move |n| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        }
    }

    /// A large bucket (an `ANY` section naming hundreds of principals) and a subject in
    /// many groups are read by binary search instead of straight through: the same
    /// answers, and the same `via`.
    #[test]
    fn large_buckets_and_many_groups_decide_as_small_ones() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let mut state = State::default();
        let mut parts = [State::default(), State::default()];
        for t in 0..4 {
            let mut section = PermissionSection {
                repositories: vec![["ANY", "libs"][t % 2].into()],
                include_patterns: vec![["**", "a/**"][t / 2].into()],
                ..Default::default()
            };
            for _ in 0..150 {
                let action = ACTIONS[next(ACTIONS.len())].to_string();
                section
                    .users
                    .insert(format!("u{}", next(400)), vec![action.clone()]);
                section
                    .groups
                    .insert(format!("g{}", next(400)), vec![action]);
            }
            let name = format!("t{t}");
            let target = PermissionTarget {
                name: name.clone(),
                repo: Some(section),
                ..Default::default()
            };
            state
                .permissions
                .targets
                .insert(name.clone(), target.clone().into());
            // The repository's own sections come first, then the `ANY` ones.
            parts[1 - t % 2]
                .permissions
                .targets
                .insert(name, target.into());
        }
        let index = PermissionIndex::build(&state);
        assert!(index.targets.any.keys.len() > SCAN_MAX);
        let mut allowed = 0;
        for round in 0..2000 {
            let groups = 1 + next(if round % 2 == 0 { 3 } else { 30 });
            let subject = Subject {
                username: format!("u{}", next(400)),
                admin: false,
                groups: (0..groups).map(|_| format!("g{}", next(400))).collect(),
                own_grants: next(4) != 0,
            };
            let repo = ["libs", "other"][next(2)];
            let path = ["a/b.jar", "c.jar"][next(2)];
            let action = ACTIONS[next(ACTIONS.len())];
            let d = index.decide(&subject, repo, path, action);
            assert_eq!(
                d.allowed,
                reference(&state, &subject, repo, path, action),
                "{subject:?} {action} {repo}/{path}"
            );
            // The repository's own sections, then the `ANY` ones; in each, the subject's
            // first principal (its own, then its groups by name) with a grant decides.
            if d.allowed {
                allowed += 1;
                let whos = subject
                    .own_grants
                    .then(|| format!("(user `{}`)", subject.username))
                    .into_iter()
                    .chain(subject.groups.iter().map(|g| format!("(group `{g}`)")));
                let mut order = parts
                    .iter()
                    .flat_map(|part| whos.clone().map(move |w| (part, w)));
                let first = order
                    .find(|(part, who)| {
                        let one = Subject {
                            own_grants: who.starts_with("(user"),
                            groups: subject
                                .groups
                                .iter()
                                .filter(|g| who == &format!("(group `{g}`)"))
                                .cloned()
                                .collect(),
                            ..subject.clone()
                        };
                        reference(part, &one, repo, path, action)
                    })
                    .map(|(_, who)| who);
                assert!(
                    first.is_some_and(|w| d.via.ends_with(&w)),
                    "{subject:?} allowed via {}",
                    d.via
                );
            }
        }
        assert!(allowed > 200, "only {allowed} of 2000 allowed");
    }

    #[test]
    fn any_repository_and_defaults() {
        let section = PermissionSection {
            repositories: vec!["ANY".into()],
            groups: [("devs".to_string(), vec!["read".to_string()])].into(),
            ..Default::default()
        };
        let index = PermissionIndex::build(&state_with(section));
        let d = index.decide(&bob(), "whatever", "a/b/c", "read");
        assert!(d.allowed);
        assert!(d.via.contains("group `devs`"));
        let groups_only = Subject {
            own_grants: false,
            groups: BTreeSet::new(),
            ..bob()
        };
        assert!(!index.decide(&groups_only, "whatever", "a", "read").allowed);
        let local_only = PermissionSection {
            repositories: vec!["ANY LOCAL".into()],
            ..Default::default()
        };
        assert!(
            !PermissionIndex::build(&state_with(local_only))
                .decide(&bob(), "libs", "a", "read")
                .allowed
        );
    }

    /// Ant semantics, written out the slow and obvious way: `**` is zero or more whole
    /// path segments; `*` any characters and `?` one character, inside one segment.
    fn ant_match(pattern: &str, path: &str) -> bool {
        fn seg(p: &[char], s: &[char]) -> bool {
            match (p.first(), s.first()) {
                (None, None) => true,
                (Some('*'), _) => seg(&p[1..], s) || (!s.is_empty() && seg(p, &s[1..])),
                (Some('?'), Some(_)) => seg(&p[1..], &s[1..]),
                (Some(a), Some(b)) if a == b => seg(&p[1..], &s[1..]),
                _ => false,
            }
        }
        fn segs(p: &[&str], s: &[&str]) -> bool {
            match p.first() {
                None => s.is_empty(),
                Some(&"**") => segs(&p[1..], s) || (!s.is_empty() && segs(p, &s[1..])),
                Some(first) => {
                    !s.is_empty()
                        && seg(
                            &first.chars().collect::<Vec<_>>(),
                            &s[0].chars().collect::<Vec<_>>(),
                        )
                        && segs(&p[1..], &s[1..])
                }
            }
        }
        // Ant's reading: empty segments dropped (`.` too: judged paths have none), a
        // trailing `/` is `/**`.
        let mut p: Vec<&str> = pattern
            .split('/')
            .filter(|t| !t.is_empty() && *t != ".")
            .collect();
        if pattern.ends_with('/') {
            p.push("**");
        }
        let s: Vec<&str> = if path.is_empty() {
            vec![]
        } else {
            path.split('/').collect()
        };
        segs(&p, &s)
    }

    /// The reference decision: scan every target and every project, no index.
    fn reference(state: &State, subject: &Subject, repo: &str, path: &str, action: &str) -> bool {
        if subject.admin {
            return true;
        }
        let class = state
            .repositories
            .by_key
            .get(repo)
            .map(|r| r.config.rclass.as_str());
        let any_word = |r: &str| r == "ANY" || r == "ANY LOCAL" || r == "ANY REMOTE";
        // Which repositories a release-bundle section is about: those it names (not the
        // `ANY` words, not build info), or `release-bundles` when it names none.
        let bundle_covers = |s: &PermissionSection, repo: &str| {
            if s.repositories.is_empty() {
                repo == "release-bundles"
            } else {
                s.repositories
                    .iter()
                    .any(|r| r == repo && !any_word(r) && r != "artifactory-build-info")
            }
        };
        let is_bundle_repo = repo == "release-bundles"
            || state
                .permissions
                .targets
                .values()
                .filter_map(|t| t.release_bundle.as_ref())
                .any(|s| bundle_covers(s, repo));
        let is_build_repo = repo == "artifactory-build-info";
        let by_target = state.permissions.targets.values().any(|t| {
            // The sections that may answer, and whether each is about this repository.
            // Each with the entries of its `repositories` that are about this repository
            // (the patterns of an entry are its own, where it has some).
            let candidates: Vec<(&PermissionSection, Vec<&str>)> = if is_build_repo {
                t.build.iter().map(|s| (s, vec![repo])).collect()
            } else if is_bundle_repo {
                t.release_bundle
                    .iter()
                    .map(|s| {
                        (
                            s,
                            if bundle_covers(s, repo) {
                                vec![repo]
                            } else {
                                vec![]
                            },
                        )
                    })
                    .collect()
            } else {
                t.repo
                    .iter()
                    .map(|s| {
                        let entries = s
                            .repositories
                            .iter()
                            .map(String::as_str)
                            .filter(|r| {
                                *r == repo
                                    || *r == "ANY"
                                    || (*r == "ANY LOCAL"
                                        && matches!(class, Some("local") | Some("federated")))
                                    || (*r == "ANY REMOTE" && class == Some("remote"))
                            })
                            .collect();
                        (s, entries)
                    })
                    .collect()
            };
            let pairs = candidates
                .into_iter()
                .flat_map(|(s, entries)| entries.into_iter().map(move |e| (s, e)));
            pairs.into_iter().any(|(s, entry)| {
                let (include_patterns, exclude_patterns) = match s.patterns_by_repository.get(entry)
                {
                    Some(p) => (&p.include_patterns, &p.exclude_patterns),
                    None => (&s.include_patterns, &s.exclude_patterns),
                };
                let repo_ok = true;
                let includes: Vec<&String> =
                    include_patterns.iter().filter(|p| !p.is_empty()).collect();
                let included = if includes.is_empty() {
                    true
                } else {
                    includes.iter().any(|p| ant_match(p, path))
                };
                let excluded = exclude_patterns
                    .iter()
                    .filter(|p| !p.is_empty())
                    .any(|p| ant_match(p, path));
                let user_grant = subject.own_grants
                    && s.users
                        .get(&subject.username)
                        .is_some_and(|a| a.iter().any(|x| x == action));
                let group_grant = subject.groups.iter().any(|g| {
                    s.groups
                        .get(g)
                        .is_some_and(|a| a.iter().any(|x| x == action))
                });
                repo_ok && included && !excluded && (user_grant || group_grant)
            })
        });
        if by_target {
            return true;
        }
        // Project roles grant repository actions: not on build info or release bundles.
        if is_build_repo || is_bundle_repo {
            return false;
        }
        // Project roles: a project that owns or shares the repository, a role the
        // subject holds there whose environments meet the repository's, with the action.
        let Some(r) = state.repositories.by_key.get(repo) else {
            return false;
        };
        let envs = if r.config.environments.is_empty() {
            vec!["DEV".to_string()]
        } else {
            r.config.environments.clone()
        };
        let role_action = match action {
            "read" => "READ_REPOSITORY",
            "annotate" => "ANNOTATE_REPOSITORY",
            "write" => "DEPLOY_CACHE_REPOSITORY",
            "delete" => "DELETE_OVERWRITE_REPOSITORY",
            "managedXrayMeta" => "MANAGE_XRAY_MD_REPOSITORY",
            // No project role grants `distribute` or `manage`.
            _ => return false,
        };
        state.projects.by_key.values().any(|p| {
            let k = &p.config.project_key;
            let visible =
                r.project.as_ref() == Some(k) || r.shared_with_all || r.shared_with.contains(k);
            let mut roles: Vec<&String> = Vec::new();
            if subject.own_grants {
                roles.extend(p.users.get(&subject.username).into_iter().flatten());
            }
            for g in &subject.groups {
                roles.extend(p.groups.get(g).into_iter().flatten());
            }
            visible
                && roles.iter().any(|name| {
                    state.projects.role_in(p, name).is_some_and(|role| {
                        role.actions.iter().any(|a| a == role_action)
                            && role.environments.iter().any(|e| envs.contains(e))
                    })
                })
        })
    }

    #[test]
    fn the_index_agrees_with_a_brute_force_reference() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let patterns = [
            "**", "a/**", "**/*.jar", "a/*/c", "*/b/**", "a/?/c", "b", "a/b*", "**/c", "*",
            "a//b/**", "/a/**", "./b", "**/", "*/",
        ];
        // `b1` is a release-bundle repository when a `releaseBundle` section names it;
        // `repo` sections that name it (or build info) are then never consulted there.
        let repos = [
            "r1",
            "r2",
            "ANY",
            "ANY LOCAL",
            "ANY REMOTE",
            "b1",
            "artifactory-build-info",
        ];
        // Build sections apply to build info whatever they list.
        let build_repos: [&[&str]; 4] = [&[], &["artifactory-build-info"], &["r1"], &["ANY"]];
        // Mostly bundle repositories; now and then an artifact repository (`r2`) turned
        // into one, or the `ANY` word that means nothing there.
        let bundle_repos: [&[&str]; 8] = [
            &[],
            &[],
            &["release-bundles"],
            &["b1"],
            &["release-bundles", "b1"],
            &["b1", "ANY"],
            &["ANY"],
            &["r2"],
        ];
        let classes = ["local", "remote", "federated", "virtual"];
        let envs = ["DEV", "PROD", "QA"];
        let role_names = ["Project Admin", "Developer", "Viewer", "custom"];
        let names = ["u1", "u2", "u3"];
        let groups = ["g1", "g2"];
        let segments = ["a", "b", "c", "x.jar", "bb"];
        let random_section = |next: &mut dyn FnMut(usize) -> usize, repositories: &[&str]| {
            let mut section = PermissionSection {
                repositories: repositories.iter().map(|r| r.to_string()).collect(),
                ..Default::default()
            };
            for _ in 0..next(3) {
                section
                    .include_patterns
                    .push(patterns[next(patterns.len())].into());
            }
            for _ in 0..next(2) {
                section
                    .exclude_patterns
                    .push(patterns[next(patterns.len())].into());
            }
            for _ in 0..next(3) {
                section.users.insert(
                    names[next(names.len())].into(),
                    vec![ACTIONS[next(ACTIONS.len())].into()],
                );
            }
            for _ in 0..next(3) {
                section.groups.insert(
                    groups[next(groups.len())].into(),
                    vec![ACTIONS[next(ACTIONS.len())].into()],
                );
            }
            // Sometimes patterns of one repository's own (the Access v2 format).
            let keys: Vec<String> = if repositories.is_empty() {
                vec!["release-bundles".into()]
            } else {
                repositories.iter().map(|r| r.to_string()).collect()
            };
            for key in keys {
                if next(3) == 0 {
                    let mut own = gatehouse_schemas::RepositoryPatterns::default();
                    for _ in 0..next(3) {
                        own.include_patterns
                            .push(patterns[next(patterns.len())].into());
                    }
                    for _ in 0..next(2) {
                        own.exclude_patterns
                            .push(patterns[next(patterns.len())].into());
                    }
                    section.patterns_by_repository.insert(key, own);
                }
            }
            section
        };
        let (mut by_project, mut by_build, mut by_bundle) = (0, 0, 0);
        for round in 0..200 {
            let mut state = State::default();
            for t in 0..(1 + next(6)) {
                // Now and then two repositories: a section with several is the one that
                // may be wide (its grants kept once, see `WIDE_FROM`).
                let mut named = vec![repos[next(repos.len())]];
                if next(3) == 0 {
                    named.push(repos[next(repos.len())]);
                }
                let repo = random_section(&mut next, &named);
                let build = match next(2) {
                    0 => {
                        let r = build_repos[next(build_repos.len())];
                        Some(random_section(&mut next, r))
                    }
                    _ => None,
                };
                let release_bundle = match next(3) {
                    0 => {
                        let r = bundle_repos[next(bundle_repos.len())];
                        Some(random_section(&mut next, r))
                    }
                    _ => None,
                };
                let name = format!("t{t}");
                state.permissions.targets.insert(
                    name.clone(),
                    gatehouse_schemas::PermissionTarget {
                        name,
                        repo: Some(repo),
                        build,
                        release_bundle,
                    }
                    .into(),
                );
            }
            // Repositories r1, r2, b1 (r3 stays unregistered), with classes and
            // environments; b1 is in projects too, so project roles must stay out of it
            // whenever it holds release bundles.
            for key in ["r1", "r2", "b1"] {
                let mut environments = Vec::new();
                for e in envs {
                    if next(3) == 0 {
                        environments.push(e.to_string());
                    }
                }
                state.repositories.make_mut().by_key.insert(
                    key.into(),
                    gatehouse_projections::RepositoryRecord {
                        config: gatehouse_schemas::Repository {
                            key: key.into(),
                            rclass: classes[next(classes.len())].into(),
                            environments,
                            ..Default::default()
                        },
                        ..Default::default()
                    },
                );
            }
            // Two projects with random members, a random custom role, and repositories
            // assigned and shared at random.
            for key in ["pa", "pb"] {
                let mut p = gatehouse_projections::ProjectRecord::default();
                p.config.project_key = key.into();
                let actions: Vec<String> = ROLE_REPOSITORY_ACTIONS
                    .iter()
                    .filter(|_| next(2) == 0)
                    .map(|(a, _)| a.to_string())
                    .collect();
                p.roles.insert(
                    "custom".into(),
                    gatehouse_schemas::ProjectRole {
                        name: "custom".into(),
                        description: None,
                        actions,
                        environments: vec![envs[next(envs.len())].into()],
                    },
                );
                for _ in 0..next(3) {
                    p.users
                        .entry(names[next(names.len())].into())
                        .or_default()
                        .insert(role_names[next(role_names.len())].into());
                }
                for _ in 0..next(2) {
                    p.groups
                        .entry(groups[next(groups.len())].into())
                        .or_default()
                        .insert(role_names[next(role_names.len())].into());
                }
                state.projects.make_mut().by_key.insert(key.into(), p);
            }
            for r in state.repositories.make_mut().by_key.values_mut() {
                r.project = [None, Some("pa".to_string()), Some("pb".to_string())][next(3)].clone();
                r.shared_with_all = next(5) == 0;
                if next(4) == 0 {
                    r.shared_with.insert(["pa", "pb"][next(2)].into());
                }
            }
            let index = PermissionIndex::build(&state);
            // Every section of several repositories wide, and none: the same decisions,
            // down to `via`, as the index as built.
            let (all_wide, flat) = (
                TargetIndex::build_with(&state, 0),
                TargetIndex::build_with(&state, usize::MAX),
            );
            for _ in 0..150 {
                let subject = Subject {
                    username: names[next(names.len())].into(),
                    admin: next(20) == 0,
                    groups: groups
                        .iter()
                        .filter(|_| next(2) == 0)
                        .map(|g| g.to_string())
                        .collect(),
                    own_grants: next(4) != 0,
                };
                // Depth 0 now and then: a question about the repository itself.
                let depth = next(5);
                let path: Vec<&str> = (0..depth).map(|_| segments[next(segments.len())]).collect();
                let path = path.join("/");
                let repo = [
                    "r1",
                    "r2",
                    "r3",
                    "b1",
                    "artifactory-build-info",
                    "release-bundles",
                ][next(6)];
                let action = ACTIONS[next(ACTIONS.len())];
                let expected = reference(&state, &subject, repo, &path, action);
                let decision = index.decide(&subject, repo, &path, action);
                if let Some(bit) = action_bit(action) {
                    let who = subject_keys(&subject);
                    let (d, kind) = index.targets.decide(&who, repo, &path, bit);
                    for other in [&all_wide, &flat] {
                        let (o, other_kind) = other.decide(&who, repo, &path, bit);
                        assert!(
                            o.allowed == d.allowed && o.via == d.via && other_kind == kind,
                            "{subject:?} {action} {repo}/{path}: {} / {}",
                            o.via,
                            d.via
                        );
                    }
                }
                let got = decision.allowed;
                if got && decision.via.starts_with("project") {
                    by_project += 1;
                }
                // An allowed decision names one of the subject's own principals.
                if got && !subject.admin {
                    let user = format!("(user `{}`)", subject.username);
                    let named = (subject.own_grants && decision.via.ends_with(&user))
                        || subject
                            .groups
                            .iter()
                            .any(|g| decision.via.ends_with(&format!("(group `{g}`)")));
                    assert!(named, "{subject:?} allowed via {}", decision.via);
                }
                if got && !subject.admin {
                    match index.targets.kind(repo) {
                        ResourceKind::Build => by_build += 1,
                        ResourceKind::ReleaseBundle => by_bundle += 1,
                        ResourceKind::Repository => {}
                    }
                }
                assert_eq!(
                    got, expected,
                    "round {round}: {subject:?} {action} {repo}/{path} with {:#?} {:#?} {:#?}",
                    state.permissions.targets, state.repositories, state.projects
                );
            }
        }
        // The random data must exercise project roles, build and release-bundle
        // sections, not just `repo` sections.
        assert!(
            by_project > 100,
            "only {by_project} decisions came from project roles"
        );
        assert!(by_build > 100, "only {by_build} build decisions allowed");
        assert!(
            by_bundle > 100,
            "only {by_bundle} release-bundle decisions allowed"
        );
    }
}

//! Projects (seed 004 "PROJECTS"): projects, their members and roles, and repository
//! assignment and sharing. Roles' repository actions feed the authorize decision
//! (`crate::authorize::ProjectIndex`).
//!
//! Who may do what, as the seed says: a platform admin everything; a member holding the
//! `Project Admin` role in a project may read it, and manage its members, roles and
//! repository assignment when `admin_privileges.manage_resources` is set (seed 004
//! names that flag for the members endpoints too). Creating, changing and deleting
//! projects, moving and sharing repositories stay with platform admins.

use super::error::ApiError;
use super::extract::{from_value, Admin, Body, Caller, RequestId};
use super::{query_param, resource, written, AppState};
use crate::auth::Principal;
use crate::authorize::Subject;
use crate::domain::validate_project_key;
use crate::domain::{self, Command};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use gatehouse_projections::{predefined_roles, ProjectRecord, State};
use gatehouse_schemas::{AdminPrivileges, Project, ProjectRole};
use serde::Deserialize;
use serde_json::json;

const BASE: &str = "/access/api/v1/projects";

pub fn configure(cfg: &mut web::ServiceConfig) {
    let r = |p: &str| resource(&format!("{BASE}{p}"));
    cfg.service(
        r("")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(r("/_/attach/repositories/{repo}/{project_key}").route(web::put().to(attach)))
    .service(r("/_/attach/repositories/{repo}").route(web::delete().to(unassign)))
    .service(r("/_/repositories/{repo}").route(web::get().to(repository_status)))
    .service(
        r("/_/share/repositories/{repo}/{project_key}")
            .route(web::put().to(share_one))
            .route(web::delete().to(unshare_one)),
    )
    .service(
        r("/_/share/repositories/{repo}")
            .route(web::put().to(share_all))
            .route(web::delete().to(unshare_all)),
    )
    .service(
        r("/{project_key}")
            .route(web::get().to(get))
            .route(web::put().to(update))
            .route(web::delete().to(delete)),
    )
    .service(r("/{project_key}/users").route(web::get().to(list_users)))
    .service(
        r("/{project_key}/users/{name}")
            .route(web::get().to(get_user))
            .route(web::put().to(put_user))
            .route(web::delete().to(delete_user)),
    )
    .service(r("/{project_key}/groups").route(web::get().to(list_groups)))
    .service(
        r("/{project_key}/groups/{name}")
            .route(web::get().to(get_group))
            .route(web::put().to(put_group))
            .route(web::delete().to(delete_group)),
    )
    .service(
        r("/{project_key}/roles")
            .route(web::get().to(list_roles))
            .route(web::post().to(create_role)),
    )
    .service(
        r("/{project_key}/roles/{role}")
            .route(web::get().to(get_role))
            .route(web::put().to(update_role))
            .route(web::delete().to(delete_role)),
    );
}

/// What a request needs beyond being a project admin.
#[derive(Clone, Copy)]
enum Need {
    View,
    Members,
    Resources,
}

/// The roles the caller holds in the project (directly or through a group its
/// credentials carry).
fn held_roles(s: &State, p: &ProjectRecord, caller: &Principal) -> Vec<String> {
    roles_of(
        s,
        p,
        caller,
        caller.token.as_ref().map(|t| t.scope.as_str()),
    )
}

/// The roles the caller's user holds in the project seen through `scope` (`None`: every
/// role of the user, whatever its credential).
fn roles_of(s: &State, p: &ProjectRecord, caller: &Principal, scope: Option<&str>) -> Vec<String> {
    let subject = Subject::new(&s.directory, &caller.username, caller.admin, scope);
    let mut roles: Vec<String> = Vec::new();
    if subject.own_grants {
        roles.extend(p.users.get(&caller.username).into_iter().flatten().cloned());
    }
    for g in &subject.groups {
        roles.extend(p.groups.get(g).into_iter().flatten().cloned());
    }
    roles
}

/// Whether the caller may read the project (the lists show those only).
pub(super) fn may_view(s: &State, caller: &Principal, key: &str) -> bool {
    check(s, caller, key, Need::View).is_ok()
}

/// Check the caller may act on the project; 404 for an admin asking about a missing
/// project, 403 for anyone else (a non-admin learns nothing about other projects).
/// Project Admins act within the project's `admin_privileges`; a custom role with the
/// `MANAGE_MEMBERS` or `MANAGE_RESOURCES` action grants exactly that (and reading the
/// project).
fn check(s: &State, caller: &Principal, key: &str, need: Need) -> Result<(), ApiError> {
    let project = s.projects.by_key.get(key);
    if caller.admin {
        return project
            .map(|_| ())
            .ok_or_else(|| ApiError::NotFound(format!("project `{key}` not found")));
    }
    let denied = || {
        Err(ApiError::Forbidden(format!(
            "this needs an admin or a Project Admin of `{key}`"
        )))
    };
    let Some(p) = project else { return denied() };
    let held = held_roles(s, p, caller);
    let project_admin = held.iter().any(|r| r == "Project Admin");
    // A project's own roles, then the global ones (a global role with MANAGE_MEMBERS was
    // accepted and then ignored here).
    let custom_grants = |action: &str| {
        held.iter()
            .filter_map(|r| p.roles.get(r).or_else(|| s.projects.global_roles.get(r)))
            .any(|r| r.actions.iter().any(|a| a == action))
    };
    let (members, resources) = (
        custom_grants("MANAGE_MEMBERS"),
        custom_grants("MANAGE_RESOURCES"),
    );
    if !project_admin && !members && !resources {
        return denied();
    }
    let privileges = &p.config.admin_privileges;
    match need {
        Need::View => Ok(()),
        // Seed 004 names `manage_resources` for every members and groups endpoint of a
        // project; followed as written (README, differences from JFrog).
        Need::Members if members || (project_admin && privileges.manage_resources) => Ok(()),
        Need::Resources if resources || (project_admin && privileges.manage_resources) => Ok(()),
        Need::Members => Err(ApiError::Forbidden(format!(
            "managing the members of `{key}` needs admin_privileges.manage_resources for its Project Admins (seed 004), or a role with MANAGE_MEMBERS"
        ))),
        Need::Resources => Err(ApiError::Forbidden(format!(
            "managing the resources of `{key}` needs admin_privileges.manage_resources for its Project Admins, or a role with MANAGE_RESOURCES"
        ))),
    }
}

/// The roles of a caller that manages the project only through a custom role's
/// `MANAGE_MEMBERS` / `MANAGE_RESOURCES` (not an admin, not a Project Admin whose
/// privileges allow it), with the groups it is in; `None` for the others. Such a caller
/// must not raise itself: with `MANAGE_MEMBERS` it made itself Project Admin, with
/// `MANAGE_RESOURCES` it rewrote its own role into every repository action.
fn custom_role_manager(
    s: &State,
    caller: &Principal,
    key: &str,
) -> Option<(Vec<String>, Vec<String>)> {
    if caller.admin {
        return None;
    }
    let p = s.projects.by_key.get(key)?;
    let privileged_admin = held_roles(s, p, caller)
        .iter()
        .any(|r| r == "Project Admin")
        && p.config.admin_privileges.manage_resources;
    if privileged_admin {
        return None;
    }
    // What it must not change is every role its user holds, not only those its
    // credential shows: a token scoped to one group hid the user's own roles, changed
    // them, and every other credential of the user then had what it gave itself.
    let held = roles_of(s, p, caller, None);
    let groups = s
        .directory
        .users
        .get(caller.username.as_str())
        .map(|u| u.groups.iter().cloned().collect())
        .unwrap_or_default();
    Some((held, groups))
}

/// A member manager through a custom role may not make a Project Admin, nor unmake
/// one: it stripped a project of its administrators (changing their roles, removing
/// them), which only an admin could then put back.
fn refuse_unmaking_project_admin(
    s: &State,
    key: &str,
    kind: &str,
    name: &str,
) -> Result<(), ApiError> {
    let holds = s.projects.by_key.get(key).is_some_and(|p| {
        members_of(p, kind)
            .get(name)
            .is_some_and(|roles| roles.contains("Project Admin"))
    });
    if holds {
        return Err(ApiError::Forbidden(format!(
            "{kind} `{name}` is a Project Admin of `{key}`: only an admin or a Project Admin can change its roles or remove it"
        )));
    }
    Ok(())
}

/// A text field of a project: not blank when required, at most `max` characters, no
/// control characters.
fn check_text(field: &str, v: &str, max: usize, required: bool) -> Result<(), ApiError> {
    if required && v.trim().is_empty() {
        return Err(ApiError::BadRequest(format!(
            "invalid `{field}`: must not be empty"
        )));
    }
    if v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "invalid `{field}`: at most {max} characters, no control characters"
        )));
    }
    Ok(())
}

#[derive(Deserialize, Default, Clone)]
struct PrivilegesIn {
    manage_members: Option<bool>,
    manage_resources: Option<bool>,
    manage_security_assets: Option<bool>,
    index_resources: Option<bool>,
    allow_ignore_rules: Option<bool>,
}

#[derive(Deserialize, Clone)]
struct ProjectIn {
    project_key: Option<String>,
    display_name: Option<String>,
    description: Option<String>,
    /// The seed's update sample spells it `admin_priviledges`.
    #[serde(alias = "admin_priviledges")]
    admin_privileges: Option<PrivilegesIn>,
    storage_quota_bytes: Option<i64>,
    soft_limit: Option<bool>,
    storage_quota_email_notification: Option<bool>,
}

/// Apply the fields given to `base` (all of them for a new project).
fn merge(mut base: Project, body: ProjectIn) -> Result<Project, ApiError> {
    if let Some(v) = body.display_name {
        check_text("display_name", &v, 64, true)?;
        base.display_name = v;
    }
    if let Some(v) = body.description {
        check_text("description", &v, 2048, false)?;
        base.description = Some(v).filter(|d| !d.is_empty());
    }
    if let Some(p) = body.admin_privileges {
        let a: &mut AdminPrivileges = &mut base.admin_privileges;
        for (slot, v) in [
            (&mut a.manage_members, p.manage_members),
            (&mut a.manage_resources, p.manage_resources),
            (&mut a.manage_security_assets, p.manage_security_assets),
            (&mut a.index_resources, p.index_resources),
            (&mut a.allow_ignore_rules, p.allow_ignore_rules),
        ] {
            if let Some(v) = v {
                *slot = v;
            }
        }
    }
    if let Some(q) = body.storage_quota_bytes {
        if q < -1 {
            return Err(ApiError::BadRequest(
                "invalid `storage_quota_bytes`: -1 (no quota) or a number of bytes".into(),
            ));
        }
        base.storage_quota_bytes = q;
    }
    if let Some(v) = body.soft_limit {
        base.soft_limit = v;
    }
    if let Some(v) = body.storage_quota_email_notification {
        base.storage_quota_email_notification = v;
    }
    Ok(base)
}

fn project_key(path: &str) -> Result<String, ApiError> {
    validate_project_key("project_key", path)?;
    Ok(path.to_string())
}

async fn list(app: web::Data<AppState>, caller: Caller, req: HttpRequest) -> HttpResponse {
    let s = app.view(&req);
    let items: Vec<_> = s
        .projects
        .by_key
        .values()
        // Those the caller may read (`check`'s `View`): admins every one, and a Project
        // Admin or a custom-role manager its own (a manager by custom role was not listed
        // though it could read and manage the project).
        .filter(|p| may_view(&s, &caller.0, &p.config.project_key))
        .map(|p| crate::views::project(&p.config))
        .collect();
    HttpResponse::Ok().json(items)
}

async fn create(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    Body(body): Body<ProjectIn>,
) -> Result<HttpResponse, ApiError> {
    let key = body
        .project_key
        .clone()
        .ok_or_else(|| ApiError::BadRequest("invalid `project_key`: required".into()))?;
    validate_project_key("project_key", &key)?;
    if body.display_name.is_none() {
        return Err(ApiError::BadRequest(
            "invalid `display_name`: required".into(),
        ));
    }
    let base = Project {
        project_key: key.clone(),
        storage_quota_bytes: -1,
        storage_quota_email_notification: true,
        ..Default::default()
    };
    let project = merge(base, body)?;
    let committed = app
        .submit(
            Command::SaveProject {
                project: project.clone(),
                create_only: true,
            },
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(
        HttpResponse::Created().json(crate::views::project(&project)),
        committed,
    ))
}

async fn get(
    app: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let s = app.view(&req);
    check(&s, &caller.0, &path, Need::View)?;
    Ok(HttpResponse::Ok().json(crate::views::project(
        &s.projects.by_key[path.as_str()].config,
    )))
}

async fn update(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
    Body(body): Body<ProjectIn>,
) -> Result<HttpResponse, ApiError> {
    let key = project_key(&path)?;
    if body.project_key.as_ref().is_some_and(|k| *k != key) {
        return Err(ApiError::BadRequest(
            "invalid `project_key`: must match the key in the path".into(),
        ));
    }
    let (project, committed) = super::read_change_write(&app, async || {
        let was = app
            .read()
            .projects
            .by_key
            .get(&key)
            .map(|p| p.config.clone())
            .ok_or_else(|| ApiError::NotFound(format!("project `{key}` not found")))?;
        let project = merge(was.clone(), body.clone())?;
        let committed = app
            .submit(
                Command::IfUnchanged {
                    read: crate::domain::AsRead::Project(key.clone(), Some(was)),
                    command: Box::new(Command::SaveProject {
                        project: project.clone(),
                        create_only: false,
                    }),
                },
                &admin.0.username,
                &rid,
            )
            .await?;
        Ok((project, committed))
    })
    .await?;
    Ok(written(
        HttpResponse::Ok().json(crate::views::project(&project)),
        committed,
    ))
}

async fn delete(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let key = project_key(&path)?;
    let committed = app
        .submit(
            Command::DeleteProject { project_key: key },
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(HttpResponse::NoContent().finish(), committed))
}

// ---- members ----------------------------------------------------------------------

#[derive(Deserialize)]
struct MemberIn {
    #[serde(default)]
    name: Option<String>,
    roles: Vec<String>,
}

/// The users and groups lists' project filters: JFrog's `projectKey` and `role` (a role
/// needs its project). Permissions by resource (`resourceType`, `resourceName`) are not
/// a filter of these lists: said, not ignored (an ignored filter answered every user,
/// and a script acting on "the Developers of X" acted on all).
pub(super) fn project_role_filter(
    req: &HttpRequest,
) -> Result<(Option<String>, Option<String>), ApiError> {
    for unsupported in ["resourceType", "resourceName"] {
        if query_param(req, unsupported)?.is_some() {
            return Err(ApiError::BadRequest(format!(
                "invalid `{unsupported}`: this list is not filtered by permission resource (ask `GET /access/api/v1/authorize/effective?user=`)"
            )));
        }
    }
    let project = query_param(req, "projectKey")?;
    let role = query_param(req, "role")?;
    if role.is_some() && project.is_none() {
        return Err(ApiError::BadRequest(
            "invalid `role`: a role is a project's; give `projectKey` too".into(),
        ));
    }
    Ok((project, role))
}

/// The users (or groups, `kind` = `group`) holding a role in project `key` — `role` if
/// given (any case) — for the lists' `projectKey` and `role` filters; 404 naming an
/// unknown project.
pub(super) fn members_holding<'a>(
    s: &'a State,
    key: &str,
    kind: &str,
    role: Option<&str>,
) -> Result<std::collections::BTreeSet<&'a str>, ApiError> {
    let p = s
        .projects
        .by_key
        .get(key)
        .ok_or_else(|| ApiError::NotFound(format!("project `{key}` not found")))?;
    Ok(members_of(p, kind)
        .iter()
        .filter(|(_, roles)| role.is_none_or(|r| roles.iter().any(|x| x.eq_ignore_ascii_case(r))))
        .map(|(m, _)| m.as_str())
        .collect())
}

fn members_of<'a>(
    p: &'a ProjectRecord,
    kind: &str,
) -> &'a std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    if kind == "group" {
        &p.groups
    } else {
        &p.users
    }
}

fn list_members(
    app: &AppState,
    req: &HttpRequest,
    caller: &Principal,
    key: &str,
    kind: &str,
) -> Result<HttpResponse, ApiError> {
    let s = app.view(req);
    check(&s, caller, key, Need::Members)?;
    let items: Vec<_> = members_of(&s.projects.by_key[key], kind)
        .iter()
        .map(|(name, roles)| json!({"name": name, "roles": roles}))
        .collect();
    // `{members: [...]}`, as JFrog's API answers (py-jfrog-client's model, JFrog's
    // Terraform provider); seed 004's sample shows the bare list, which both fail on.
    Ok(HttpResponse::Ok().json(json!({ "members": items })))
}

fn get_member(
    app: &AppState,
    req: &HttpRequest,
    caller: &Principal,
    key: &str,
    kind: &str,
    name: &str,
) -> Result<HttpResponse, ApiError> {
    let s = app.view(req);
    check(&s, caller, key, Need::Members)?;
    let name = member_name(kind, name)?;
    let roles = members_of(&s.projects.by_key[key], kind)
        .get(&name)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "{kind} `{name}` is not a member of project `{key}`"
            ))
        })?;
    Ok(HttpResponse::Ok().json(json!({"name": name, "roles": roles})))
}

fn member_name(kind: &str, name: &str) -> Result<String, ApiError> {
    if kind == "group" {
        domain::validate_group_name("name", name)?;
        Ok(name.to_string())
    } else {
        Ok(domain::normalize_username("name", name)?)
    }
}

async fn put_member(
    app: &AppState,
    req: &HttpRequest,
    caller: &Principal,
    rid: &RequestId,
    key: &str,
    kind: &str,
    name: &str,
    body: serde_json::Value,
) -> Result<HttpResponse, ApiError> {
    {
        let s = app.read();
        check(&s, caller, key, Need::Members)?;
    }
    let key = key.to_string();
    let name = member_name(kind, name)?;
    let body: MemberIn = from_value(req, body)?;
    if let Some(n) = &body.name {
        if member_name(kind, n)? != name {
            return Err(ApiError::BadRequest(
                "invalid `name`: must match the name in the path".into(),
            ));
        }
    }
    // Nobody but an admin gives itself (or a group it is in) a role that manages the
    // project: a Project Admin's would outlive `admin_privileges` being switched off.
    let mut managing = false;
    if !caller.admin {
        let s = app.read();
        // Nor anonymous a role (or a group it is in): what anonymous may do, anyone may,
        // without credentials — a member manager gave anonymous `Developer` and wrote
        // and deleted what its own account could not.
        let anonymous = match kind {
            "user" => name == gatehouse_projections::ANONYMOUS,
            _ => s
                .directory
                .users
                .get(gatehouse_projections::ANONYMOUS)
                .is_some_and(|u| u.groups.contains(name.as_str())),
        };
        if anonymous {
            return Err(ApiError::Forbidden(
                "only an admin gives anonymous (or a group it is in) a role: what anonymous may do, anyone may, without credentials".into(),
            ));
        }
        let own = match kind {
            "user" => name == caller.username,
            _ => s
                .directory
                .users
                .get(caller.username.as_str())
                .is_some_and(|u| u.groups.contains(name.as_str())),
        };
        managing = s.projects.by_key.get(&key).is_some_and(|p| {
            body.roles.iter().any(|r| {
                p.roles
                    .iter()
                    .chain(s.projects.global_roles.iter())
                    .any(|(n, role)| n.eq_ignore_ascii_case(r) && grants_management(&role.actions))
            })
        });
        if own && managing {
            return Err(self_management());
        }
    }
    // Bound first: a guard in an `if let` lives through its block, where the state is
    // read again (a second read on this thread deadlocks when the writer waits).
    let manager = custom_role_manager(&app.read(), caller, &key);
    if let Some((_, groups)) = manager {
        let own = match kind {
            "user" => name == caller.username,
            _ => groups.contains(&name),
        };
        if own {
            return Err(ApiError::Forbidden(
                "a member manager cannot change its own roles (or those of a group it is in): an admin or a Project Admin can".into(),
            ));
        }
        if body
            .roles
            .iter()
            .any(|r| r.eq_ignore_ascii_case("Project Admin"))
        {
            return Err(ApiError::Forbidden(
                "only an admin or a Project Admin can make a Project Admin".into(),
            ));
        }
        // Nor hand management on: given to a second account, it came back to the
        // giver (a Project Admin's, past its privileges being switched off).
        if managing {
            return Err(ApiError::Forbidden(
                "a member manager cannot give a role that manages the project (MANAGE_MEMBERS, MANAGE_RESOURCES): an admin or a Project Admin can".into(),
            ));
        }
        refuse_unmaking_project_admin(&app.read(), &key, kind, &name)?;
    }
    let committed = app
        .submit(
            Command::SetProjectMember {
                project_key: key.clone(),
                kind: kind.into(),
                name: name.clone(),
                roles: body.roles,
            },
            &caller.username,
            rid,
        )
        .await?;
    let s = app.read();
    let roles = s
        .projects
        .by_key
        .get(&key)
        .and_then(|p| members_of(p, kind).get(&name).cloned())
        .unwrap_or_default();
    Ok(written(
        HttpResponse::Ok().json(json!({"name": name, "roles": roles})),
        committed,
    ))
}

async fn delete_member(
    app: &AppState,
    caller: &Principal,
    rid: &RequestId,
    key: &str,
    kind: &str,
    name: &str,
) -> Result<HttpResponse, ApiError> {
    {
        let s = app.read();
        check(&s, caller, key, Need::Members)?;
    }
    let key = key.to_string();
    let name = member_name(kind, name)?;
    if custom_role_manager(&app.read(), caller, &key).is_some() {
        refuse_unmaking_project_admin(&app.read(), &key, kind, &name)?;
    }
    let committed = app
        .submit(
            Command::RemoveProjectMember {
                project_key: key,
                kind: kind.into(),
                name,
            },
            &caller.username,
            rid,
        )
        .await?;
    Ok(written(HttpResponse::NoContent().finish(), committed))
}

async fn list_users(
    app: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    list_members(&app, &req, &caller.0, &path, "user")
}

async fn list_groups(
    app: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    list_members(&app, &req, &caller.0, &path, "group")
}

async fn get_user(
    app: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    get_member(&app, &req, &caller.0, &path.0, "user", &path.1)
}

async fn get_group(
    app: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    get_member(&app, &req, &caller.0, &path.0, "group", &path.1)
}

async fn put_user(
    app: web::Data<AppState>,
    caller: Caller,
    rid: RequestId,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    Body(body): Body<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    put_member(&app, &req, &caller.0, &rid, &path.0, "user", &path.1, body).await
}

async fn put_group(
    app: web::Data<AppState>,
    caller: Caller,
    rid: RequestId,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    Body(body): Body<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    put_member(&app, &req, &caller.0, &rid, &path.0, "group", &path.1, body).await
}

async fn delete_user(
    app: web::Data<AppState>,
    caller: Caller,
    rid: RequestId,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    delete_member(&app, &caller.0, &rid, &path.0, "user", &path.1).await
}

async fn delete_group(
    app: web::Data<AppState>,
    caller: Caller,
    rid: RequestId,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    delete_member(&app, &caller.0, &rid, &path.0, "group", &path.1).await
}

// ---- roles ------------------------------------------------------------------------

#[derive(Deserialize)]
struct RoleIn {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    /// Left out of an update: the role's own, as stored (JFrog's clients send only what
    /// changes; a description left out was erased, actions left out were a 400).
    #[serde(default)]
    actions: Option<Vec<String>>,
    #[serde(default)]
    environments: Option<Vec<String>>,
    /// Roles made through the API are always `CUSTOM` (the seed's sample sends
    /// `PREDEFINED` and gets `CUSTOM` back).
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

fn role_out(r: &ProjectRole, kind: &str) -> serde_json::Value {
    json!({
        "name": r.name,
        "description": r.description,
        "actions": r.actions,
        "type": kind,
        "environments": r.environments,
    })
}

/// A role's `type` as a project shows it: its own (`CUSTOM`), a global role its members
/// hold (`CUSTOM_GLOBAL`), or a predefined one.
fn role_kind(s: &State, p: &ProjectRecord, name: &str) -> &'static str {
    if p.roles.contains_key(name) {
        "CUSTOM"
    } else if s.projects.global_roles.contains_key(name) {
        "CUSTOM_GLOBAL"
    } else {
        super::roles::predefined_kind(name)
    }
}

/// The global roles the project's members hold: they decide there too, and a Project
/// Admin (who may not read `/access/api/v1/roles`) could not see what they grant.
fn global_roles_held<'a>(s: &'a State, p: &ProjectRecord) -> Vec<&'a ProjectRole> {
    let held: std::collections::BTreeSet<&String> = p
        .users
        .values()
        .chain(p.groups.values())
        .flatten()
        .filter(|name| !p.roles.contains_key(name.as_str()))
        .collect();
    held.into_iter()
        .filter_map(|name| s.projects.global_roles.get(name.as_str()))
        .collect()
}

fn role_in(name: &str, body: RoleIn) -> Result<ProjectRole, ApiError> {
    check_text("name", name, 64, true)?;
    if name.trim() != name {
        return Err(ApiError::BadRequest(
            "invalid `name`: must not start or end with whitespace".into(),
        ));
    }
    // It goes in a URL path, where `.` and `..` are no segment a client can send.
    if name == "." || name == ".." {
        return Err(ApiError::BadRequest(
            "invalid `name`: must not be `.` or `..`".into(),
        ));
    }
    if let Some(k) = &body.kind {
        // `PREDEFINED` as the seed's sample sends it, `ADMIN` as a read of Project
        // Admin shows it (the domain refuses a change of a predefined role).
        if k != "CUSTOM" && k != "PREDEFINED" && k != "ADMIN" {
            return Err(ApiError::BadRequest(format!(
                "invalid `type`: `{}` (use CUSTOM)",
                k.escape_debug()
            )));
        }
    }
    if let Some(d) = &body.description {
        check_text("description", d, 2048, false)?;
    }
    Ok(crate::domain::normalize_role(ProjectRole {
        name: name.to_string(),
        description: body.description.filter(|d| !d.is_empty()),
        actions: body.actions.unwrap_or_default(),
        environments: body.environments.unwrap_or_default(),
    })?)
}

/// A role update's fields completed from the role as stored (`was`): what the update
/// leaves out stays (both roles APIs).
pub(super) fn complete_role(
    description: &mut Option<String>,
    actions: &mut Option<Vec<String>>,
    environments: &mut Option<Vec<String>>,
    was: &ProjectRole,
) {
    if description.is_none() {
        description.clone_from(&was.description);
    }
    actions.get_or_insert_with(|| was.actions.clone());
    environments.get_or_insert_with(|| was.environments.clone());
}

fn completed(mut body: RoleIn, was: Option<&ProjectRole>) -> RoleIn {
    if let Some(was) = was {
        complete_role(
            &mut body.description,
            &mut body.actions,
            &mut body.environments,
            was,
        );
    }
    body
}

async fn list_roles(
    app: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let s = app.view(&req);
    // A member manager assigns roles: it may see which there are (it could read one by
    // name, not find the names).
    check(&s, &caller.0, &path, Need::Resources)
        .or_else(|_| check(&s, &caller.0, &path, Need::Members))?;
    let p = &s.projects.by_key[path.as_str()];
    let items: Vec<_> = predefined_roles()
        .iter()
        .map(|r| role_out(r, super::roles::predefined_kind(&r.name)))
        .chain(p.roles.values().map(|r| role_out(r, "CUSTOM")))
        .chain(
            global_roles_held(&s, p)
                .into_iter()
                .map(|r| role_out(r, "CUSTOM_GLOBAL")),
        )
        .collect();
    Ok(HttpResponse::Ok().json(items))
}

async fn get_role(
    app: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let key = path.0.clone();
    let s = app.view(&req);
    check(&s, &caller.0, &key, Need::View)?;
    let p = &s.projects.by_key[&key];
    // An exact name first, then the one role whose name differs only in case: members
    // are given roles ignoring case (seed 004's `"developer"`), and a client reading
    // such a name back and asking for it found nothing.
    // A global role only when the project's members hold it (as the list shows).
    let held = global_roles_held(&s, p);
    let find = |name: &str| {
        p.role(name)
            .or_else(|| held.iter().find(|r| r.name == name).map(|r| (*r).clone()))
    };
    let role = find(&path.1)
        .or_else(|| {
            let names = crate::domain::role_names_ignoring_case(&s, p, &path.1);
            match names.as_slice() {
                [one] => find(one),
                _ => None,
            }
        })
        .ok_or_else(|| {
            ApiError::NotFound(format!("role `{}` not found in project `{key}`", path.1))
        })?;
    Ok(HttpResponse::Ok().json(role_out(&role, role_kind(&s, p, &role.name))))
}

/// The project role `name` names: itself where the project (or the predefined roles)
/// has it, else the one such role whose name differs only in case (names are matched
/// ignoring case on read and in assignments).
fn project_role_name(s: &State, key: &str, name: &str) -> String {
    let Some(p) = s.projects.by_key.get(key) else {
        return name.to_string();
    };
    let here = |n: &str| p.roles.contains_key(n) || predefined_roles().iter().any(|r| r.name == n);
    if here(name) {
        return name.to_string();
    }
    let names: Vec<String> = crate::domain::role_names_ignoring_case(s, p, name)
        .into_iter()
        .filter(|n| here(n))
        .collect();
    match names.as_slice() {
        [one] => one.clone(),
        _ => name.to_string(),
    }
}

async fn save_role(
    app: &AppState,
    req: &HttpRequest,
    caller: &Principal,
    rid: &RequestId,
    key: &str,
    name: Option<&str>,
    body: serde_json::Value,
    create_only: bool,
) -> Result<HttpResponse, ApiError> {
    {
        let s = app.read();
        check(&s, caller, key, Need::Resources)?;
    }
    let key = key.to_string();
    let body: RoleIn = from_value(req, body)?;
    // An update names its role ignoring case, as a read does (`PUT …/roles/R1` of `r1`
    // was a 404 where `GET` found it).
    let resolved = name
        .filter(|_| !create_only)
        .map(|n| project_role_name(&app.read(), &key, n));
    let name = resolved.as_deref().or(name);
    let name = match name {
        Some(n) => {
            if body
                .name
                .as_ref()
                .is_some_and(|b| b != n && !b.eq_ignore_ascii_case(n))
            {
                return Err(ApiError::BadRequest(
                    "invalid `name`: must match the role in the path (roles cannot be renamed)"
                        .into(),
                ));
            }
            n.to_string()
        }
        None => body
            .name
            .clone()
            .ok_or_else(|| ApiError::BadRequest("invalid `name`: required".into()))?,
    };
    let body = if create_only {
        body
    } else {
        let was = {
            let s = app.read();
            s.projects
                .by_key
                .get(&key)
                .and_then(|p| p.roles.get(&name).cloned())
                .or_else(|| predefined_roles().into_iter().find(|r| r.name == name))
        };
        completed(body, was.as_ref())
    };
    let role = role_in(&name, body)?;
    refuse_own_role(app, caller, &key, &role.name)?;
    if !caller.admin && grants_management(&role.actions) {
        let held = {
            let s = app.read();
            s.projects
                .by_key
                .get(&key)
                .map(|p| roles_of(&s, p, caller, None))
                .unwrap_or_default()
        };
        if held.iter().any(|r| r.eq_ignore_ascii_case(&role.name)) {
            return Err(self_management());
        }
        // A member manager by custom role does not hand management on by writing it
        // into a role: given to a second account (or held by a Project Admin whose
        // privileges are off), a role it then rewrote came back to it with MANAGE_*.
        if custom_role_manager(&app.read(), caller, &key).is_some() {
            return Err(ApiError::Forbidden(
                "a member manager cannot make a role that manages the project (MANAGE_MEMBERS, MANAGE_RESOURCES): an admin or a Project Admin can".into(),
            ));
        }
    }
    let committed = app
        .submit(
            Command::SaveProjectRole {
                project_key: key,
                role: role.clone(),
                create_only,
            },
            &caller.username,
            rid,
        )
        .await?;
    let status = if create_only {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    // The role's type as a read shows it (a predefined one sent back as read is still
    // predefined).
    let kind = if predefined_roles().iter().any(|r| r.name == role.name) {
        super::roles::predefined_kind(&role.name)
    } else {
        "CUSTOM"
    };
    Ok(written(
        HttpResponse::build(status).json(role_out(&role, kind)),
        committed,
    ))
}

/// Whether a role's actions manage the project (its members or its resources).
fn grants_management(actions: &[String]) -> bool {
    actions
        .iter()
        .any(|a| a == "MANAGE_MEMBERS" || a == "MANAGE_RESOURCES")
}

fn self_management() -> ApiError {
    ApiError::Forbidden(
        "only an admin gives a role that manages the project (MANAGE_MEMBERS, MANAGE_RESOURCES) to itself or a group it is in: a Project Admin's would outlive its admin_privileges".into(),
    )
}

/// A caller managing resources only through a custom role cannot change or delete a
/// role it holds (it widened its own role to every repository action).
fn refuse_own_role(
    app: &AppState,
    caller: &Principal,
    key: &str,
    role: &str,
) -> Result<(), ApiError> {
    if let Some((held, _)) = custom_role_manager(&app.read(), caller, key) {
        if held.iter().any(|r| r.eq_ignore_ascii_case(role)) {
            return Err(ApiError::Forbidden(format!(
                "a role holder cannot change or delete its own role `{role}`: an admin or a Project Admin can"
            )));
        }
    }
    Ok(())
}

async fn create_role(
    app: web::Data<AppState>,
    caller: Caller,
    rid: RequestId,
    path: web::Path<String>,
    req: HttpRequest,
    Body(body): Body<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    save_role(&app, &req, &caller.0, &rid, &path, None, body, true).await
}

async fn update_role(
    app: web::Data<AppState>,
    caller: Caller,
    rid: RequestId,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    Body(body): Body<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    save_role(
        &app,
        &req,
        &caller.0,
        &rid,
        &path.0,
        Some(&path.1),
        body,
        false,
    )
    .await
}

async fn delete_role(
    app: web::Data<AppState>,
    caller: Caller,
    rid: RequestId,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let key = path.0.clone();
    {
        let s = app.read();
        check(&s, &caller.0, &key, Need::Resources)?;
    }
    let role = project_role_name(&app.read(), &key, &path.1);
    refuse_own_role(&app, &caller.0, &key, &role)?;
    let committed = app
        .submit(
            Command::DeleteProjectRole {
                project_key: key,
                role,
            },
            &caller.0.username,
            &rid,
        )
        .await?;
    Ok(written(HttpResponse::NoContent().finish(), committed))
}

// ---- repositories -----------------------------------------------------------------

fn force_param(req: &HttpRequest) -> Result<bool, ApiError> {
    match query_param(req, "force")?.as_deref() {
        None | Some("false") => Ok(false),
        Some("true") | Some("") => Ok(true),
        Some(other) => Err(ApiError::BadRequest(format!(
            "invalid `force`: `{}` (use true or false)",
            other.escape_debug()
        ))),
    }
}

/// `GET …/_/repositories/{repo}`: which project a repository is assigned to and whom
/// it is shared with (admin). Shares here are never read-only (README).
async fn repository_status(
    app: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let s = app.view(&req);
    let r = s
        .repositories
        .by_key
        .get(path.as_str())
        .ok_or_else(|| ApiError::NotFound(format!("repository `{path}` not found")))?;
    Ok(HttpResponse::Ok().json(json!({
        "resource_name": r.config.key,
        "assigned_to": r.project,
        "environments": crate::authorize::repository_environments(&r.config),
        "shared_with_projects": r.shared_with,
        "shared_with_all_projects": r.shared_with_all,
        "shared_read_only": false,
    })))
}

async fn attach(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (repo, key) = path.into_inner();
    let key = project_key(&key)?;
    let force = force_param(&req)?;
    let committed = app
        .submit(
            Command::AttachRepository {
                repo,
                project_key: key,
                force,
            },
            &admin.0.username,
            &rid,
        )
        .await?;
    Ok(written(HttpResponse::NoContent().finish(), committed))
}

/// Unassign: an admin, or an admin of the repository's project with `manage_resources`.
async fn unassign(
    app: web::Data<AppState>,
    caller: Caller,
    rid: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let repo = path.into_inner();
    if !caller.0.admin {
        let s = app.read();
        let owner = s
            .repositories
            .by_key
            .get(&repo)
            .and_then(|r| r.project.clone());
        match owner {
            Some(p) => check(&s, &caller.0, &p, Need::Resources)?,
            None => {
                return Err(ApiError::Forbidden(
                    "this needs an admin or a Project Admin of the repository's project".into(),
                ))
            }
        }
    }
    let committed = app
        .submit(
            Command::UnassignRepository { repo },
            &caller.0.username,
            &rid,
        )
        .await?;
    Ok(written(HttpResponse::NoContent().finish(), committed))
}

async fn share(
    app: &AppState,
    admin: &Admin,
    rid: &RequestId,
    repo: String,
    target: Option<String>,
    on: bool,
) -> Result<HttpResponse, ApiError> {
    let target = target.map(|k| project_key(&k)).transpose()?;
    let command = if on {
        Command::ShareRepository {
            repo,
            project_key: target,
        }
    } else {
        Command::UnshareRepository {
            repo,
            project_key: target,
        }
    };
    let committed = app.submit(command, &admin.0.username, rid).await?;
    Ok(written(HttpResponse::NoContent().finish(), committed))
}

async fn share_all(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    share(&app, &admin, &rid, path.into_inner(), None, true).await
}

async fn unshare_all(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    share(&app, &admin, &rid, path.into_inner(), None, false).await
}

async fn share_one(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (repo, key) = path.into_inner();
    share(&app, &admin, &rid, repo, Some(key), true).await
}

async fn unshare_one(
    app: web::Data<AppState>,
    admin: Admin,
    rid: RequestId,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (repo, key) = path.into_inner();
    share(&app, &admin, &rid, repo, Some(key), false).await
}

//! Repositories, projects, roles, members and sharing, and project roles in the
//! authorize decision (issue 4).

use crate::helpers::{Client, TestApp};
use serde_json::json;

const P: &str = "/access/api/v1/projects";

fn repo(admin: &Client, key: &str, rclass: &str, envs: &[&str]) {
    let r = admin.put(
        &format!("/artifactory/api/repositories/{key}"),
        &json!({"rclass": rclass, "environments": envs}),
    );
    assert!(r.status == 201 || r.status == 200, "{}", r.text);
}

fn project(admin: &Client, key: &str) {
    let r = admin.post(
        P,
        &json!({"project_key": key, "display_name": format!("Project {key}"),
                "admin_privileges": {"manage_members": true, "manage_resources": true}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
}

/// `allowed` of GET /access/api/v1/authorize as `client`, with the status checked.
fn allowed(client: &Client, resource: &str, action: &str) -> (bool, String) {
    let r = client.get(&format!(
        "/access/api/v1/authorize?resource={resource}&action={action}"
    ));
    assert!(r.status == 200 || r.status == 403, "{}", r.text);
    let body = r.json();
    assert_eq!(body["allowed"], r.status == 200);
    (
        body["allowed"].as_bool().unwrap(),
        body["via"].as_str().unwrap_or("").to_string(),
    )
}

#[test]
fn repositories_crud_and_any_local_any_remote() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.put(
        "/artifactory/api/repositories/libs-local",
        &json!({"rclass": "local", "packageType": "maven", "environments": ["dev", "PROD"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["environments"], json!(["DEV", "PROD"]));
    assert!(r.header("x-gatehouse-seq").is_some());
    let r = admin.put(
        "/artifactory/api/repositories/libs-local",
        &json!({"rclass": "local"}),
    );
    assert_eq!(r.status, 200, "replace: {}", r.text);
    assert_eq!(
        r.json()["environments"],
        json!(["DEV"]),
        "no environments means DEV"
    );
    repo(&admin, "central-remote", "remote", &[]);
    for (body, needle) in [
        (json!({"rclass": "attic"}), "rclass"),
        (
            json!({"rclass": "local", "environments": ["a b"]}),
            "environments[0]",
        ),
        (json!({"rclass": "local", "key": "other"}), "key"),
        (json!({"rclass": "local", "projectKey": "p1"}), "projectKey"),
        (json!({}), "rclass"),
    ] {
        let r = admin.put("/artifactory/api/repositories/libs-local", &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.error_message().contains(needle), "{body}: {}", r.text);
    }
    let r = admin.put(
        "/artifactory/api/repositories/bad%20key",
        &json!({"rclass": "local"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    app.create_user("reader", "password-1");
    let reader = app.as_user("reader", "password-1");
    // A user without grants is shown none of them (see
    // `dialect::a_non_admin_lists_only_the_repositories_it_may_use`); an admin, both.
    let listed = |c: &crate::helpers::Client| {
        c.get("/artifactory/api/repositories")
            .json()
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(listed(&reader), 0);
    assert_eq!(listed(&admin), 2);
    assert_eq!(
        reader
            .put(
                "/artifactory/api/repositories/x",
                &json!({"rclass": "local"})
            )
            .status,
        403
    );
    // ANY LOCAL / ANY REMOTE follow the registered class.
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/locals",
        &json!({"repo": {"repositories": ["ANY LOCAL"], "actions": {"users": {"reader": ["read"]}}}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(allowed(&reader, "libs-local/a.jar", "read").0);
    assert!(!allowed(&reader, "central-remote/a.jar", "read").0);
    assert!(
        !allowed(&reader, "unregistered/a.jar", "read").0,
        "an unregistered repository is of no known class"
    );
    admin.put(
        "/artifactory/api/v2/security/permissions/locals",
        &json!({"repo": {"repositories": ["ANY REMOTE"], "actions": {"users": {"reader": ["read"]}}}}),
    );
    assert!(!allowed(&reader, "libs-local/a.jar", "read").0);
    assert!(allowed(&reader, "central-remote/a.jar", "read").0);
    // A deleted repository has no class any more.
    assert_eq!(
        admin
            .delete("/artifactory/api/repositories/central-remote")
            .status,
        204
    );
    assert!(!allowed(&reader, "central-remote/a.jar", "read").0);
    assert_eq!(
        admin
            .delete("/artifactory/api/repositories/central-remote")
            .status,
        404
    );
    assert_eq!(
        admin
            .get("/artifactory/api/repositories/central-remote")
            .status,
        404
    );
}

#[test]
fn projects_crud_roles_and_members() {
    let app = TestApp::spawn();
    let admin = app.admin();
    // The seed's sample body.
    let r = admin.post(
        P,
        &json!({ "display_name": "artifactory", "description": "The binary repository manager",
                 "admin_privileges": { "manage_members": true, "manage_resources": true,
                   "manage_security_assets": true, "index_resources": true, "allow_ignore_rules": true },
                 "storage_quota_bytes": 0, "project_key": "rtfct" }),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["admin_privileges"]["index_resources"], true);
    assert_eq!(
        admin
            .post(P, &json!({"project_key": "rtfct", "display_name": "x"}))
            .status,
        409
    );
    assert_eq!(
        admin
            .post(
                P,
                &json!({"project_key": "other", "display_name": "Artifactory"})
            )
            .status,
        409,
        "display names are unique"
    );
    for (body, needle) in [
        (
            json!({"project_key": "A1", "display_name": "x"}),
            "project_key",
        ),
        (
            json!({"project_key": "x", "display_name": "x"}),
            "project_key",
        ),
        (json!({"project_key": "ok1"}), "display_name"),
        (json!({"display_name": "x"}), "project_key"),
        (
            json!({"project_key": "ok1", "display_name": "x", "storage_quota_bytes": -5}),
            "storage_quota_bytes",
        ),
        (
            // An unknown field is ignored, never masks a bad one.
            json!({"project_key": "ok1", "display_name": "x", "colour": "red", "soft_limit": 3}),
            "soft_limit",
        ),
    ] {
        let r = admin.post(P, &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.error_message().contains(needle), "{body}: {}", r.text);
    }
    // PUT patches the fields given; the seed's update sample spells admin_priviledges.
    let r = admin.put(
        &format!("{P}/rtfct"),
        &json!({"description": "modified project description",
                "admin_priviledges": {"index_resources": false}, "storage_quota_bytes": 10000}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let p = admin.get(&format!("{P}/rtfct")).json();
    assert_eq!(p["display_name"], "artifactory");
    assert_eq!(p["description"], "modified project description");
    assert_eq!(p["admin_privileges"]["index_resources"], false);
    assert_eq!(p["admin_privileges"]["manage_members"], true);
    assert_eq!(p["storage_quota_bytes"], 10000);
    assert_eq!(admin.get(P).json().as_array().unwrap().len(), 1);
    assert_eq!(admin.get(&format!("{P}/nope")).status, 404);
    assert_eq!(admin.put(&format!("{P}/nope"), &json!({})).status, 404);

    // Roles: the predefined ones are there and fixed; custom ones are CRUD.
    let roles = admin.get(&format!("{P}/rtfct/roles")).json();
    let names: Vec<&str> = roles
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for n in [
        "Project Admin",
        "Developer",
        "Contributor",
        "Viewer",
        "Release Manager",
    ] {
        assert!(names.contains(&n), "{names:?}");
    }
    let r = admin.post(
        &format!("{P}/rtfct/roles"),
        &json!({"name": "senior developer", "actions": ["READ_REPOSITORY"], "type": "PREDEFINED", "environments": ["DEV"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.json()["type"],
        "CUSTOM",
        "as in the seed's sample response"
    );
    assert_eq!(
        admin
            .get(&format!("{P}/rtfct/roles/senior%20developer"))
            .json()["actions"],
        json!(["READ_REPOSITORY"])
    );
    for (body, needle) in [
        (
            json!({"name": "r2", "actions": ["FLY"], "environments": ["DEV"]}),
            "actions[0]",
        ),
        (
            json!({"name": "r2", "actions": [], "environments": ["DEV"]}),
            "actions",
        ),
        (
            json!({"name": "r2", "actions": ["READ_BUILD"], "environments": []}),
            "environments",
        ),
        (
            json!({"name": "r2", "actions": ["READ_BUILD"], "environments": ["D V"]}),
            "environments[0]",
        ),
        (
            json!({"actions": ["READ_BUILD"], "environments": ["DEV"]}),
            "name",
        ),
    ] {
        let r = admin.post(&format!("{P}/rtfct/roles"), &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.error_message().contains(needle), "{body}: {}", r.text);
    }
    let dev = json!({"name": "Developer", "actions": ["READ_REPOSITORY"], "environments": ["DEV"]});
    assert_eq!(admin.post(&format!("{P}/rtfct/roles"), &dev).status, 409);
    assert_eq!(
        admin
            .put(&format!("{P}/rtfct/roles/Developer"), &dev)
            .status,
        400
    );
    assert_eq!(
        admin.delete(&format!("{P}/rtfct/roles/Developer")).status,
        400
    );
    let r = admin.put(
        &format!("{P}/rtfct/roles/senior%20developer"),
        &json!({"actions": ["READ_REPOSITORY", "DEPLOY_CACHE_REPOSITORY"], "environments": ["DEV", "PROD"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        admin
            .put(
                &format!("{P}/rtfct/roles/ghost"),
                &json!({"actions": ["READ_BUILD"], "environments": ["DEV"]})
            )
            .status,
        404
    );

    // Members.
    app.create_user("bob", "password-1");
    app.create_group("devs");
    let r = admin.put(
        &format!("{P}/rtfct/users/Bob"),
        &json!({"name": "bob", "roles": ["Developer", "senior developer"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json(),
        json!({"name": "bob", "roles": ["Developer", "senior developer"]})
    );
    assert_eq!(
        admin.get(&format!("{P}/rtfct/users")).json(),
        json!({"members": [{"name": "bob", "roles": ["Developer", "senior developer"]}]})
    );
    assert_eq!(
        admin
            .put(
                &format!("{P}/rtfct/users/ghost"),
                &json!({"roles": ["Developer"]})
            )
            .status,
        404
    );
    let r = admin.put(
        &format!("{P}/rtfct/users/bob"),
        &json!({"roles": ["Pilot"]}),
    );
    assert_eq!(r.status, 400);
    assert!(r.error_message().contains("roles[0]"), "{}", r.text);
    assert_eq!(
        admin
            .put(&format!("{P}/rtfct/users/bob"), &json!({"roles": []}))
            .status,
        400
    );
    assert_eq!(
        admin
            .put(
                &format!("{P}/rtfct/groups/devs"),
                &json!({"roles": ["Viewer"]})
            )
            .status,
        200
    );
    assert_eq!(
        admin.get(&format!("{P}/rtfct/groups/devs")).json()["roles"],
        json!(["Viewer"])
    );
    // Deleting a role takes it from its holders.
    assert_eq!(
        admin
            .delete(&format!("{P}/rtfct/roles/senior%20developer"))
            .status,
        204
    );
    assert_eq!(
        admin.get(&format!("{P}/rtfct/users/bob")).json()["roles"],
        json!(["Developer"])
    );
    assert_eq!(admin.delete(&format!("{P}/rtfct/groups/devs")).status, 204);
    assert_eq!(admin.get(&format!("{P}/rtfct/groups/devs")).status, 404);
    assert_eq!(admin.delete(&format!("{P}/rtfct/groups/devs")).status, 404);
    // Deleting a user takes it out of projects.
    assert_eq!(admin.delete("/access/api/v2/users/bob").status, 204);
    assert_eq!(
        admin.get(&format!("{P}/rtfct/users")).json(),
        json!({"members": []})
    );
    assert_eq!(admin.delete(&format!("{P}/rtfct")).status, 204);
    assert_eq!(admin.get(&format!("{P}/rtfct")).status, 404);
    assert_eq!(admin.delete(&format!("{P}/rtfct")).status, 404);
}

#[test]
fn project_admins_act_within_their_privileges() {
    let app = TestApp::spawn();
    let admin = app.admin();
    project(&admin, "alpha");
    let r = admin.post(
        P,
        &json!({"project_key": "beta", "display_name": "Beta", "admin_privileges": {"manage_members": true, "manage_resources": false}}),
    );
    assert_eq!(r.status, 201);
    app.create_user("pa", "password-1");
    app.create_user("dev", "password-1");
    for p in ["alpha", "beta"] {
        let r = admin.put(
            &format!("{P}/{p}/users/pa"),
            &json!({"roles": ["Project Admin"]}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let pa = app.as_user("pa", "password-1");
    let listed = pa.get(P).json();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert_eq!(pa.get(&format!("{P}/alpha")).status, 200);
    // Seed 004: the members endpoints need manage_resources (alpha has it, beta not).
    assert_eq!(
        pa.put(
            &format!("{P}/alpha/users/dev"),
            &json!({"roles": ["Developer"]})
        )
        .status,
        200
    );
    assert_eq!(
        pa.put(
            &format!("{P}/beta/users/dev"),
            &json!({"roles": ["Developer"]})
        )
        .status,
        403
    );
    // Platform-level operations stay with admins.
    assert_eq!(
        pa.post(P, &json!({"project_key": "gamma", "display_name": "G"}))
            .status,
        403
    );
    assert_eq!(pa.delete(&format!("{P}/alpha")).status, 403);
    // A plain member sees nothing.
    let dev = app.as_user("dev", "password-1");
    assert_eq!(dev.get(P).json(), json!([]));
    assert_eq!(dev.get(&format!("{P}/alpha")).status, 403);
    assert_eq!(dev.get(&format!("{P}/alpha/users")).status, 403);
    assert_eq!(
        dev.get(&format!("{P}/nope")).status,
        403,
        "non-admins learn nothing about other projects"
    );
}

#[test]
fn project_roles_grant_and_revoke_through_the_decision() {
    let app = TestApp::spawn();
    let admin = app.admin();
    repo(&admin, "alpha-dev", "local", &["DEV"]);
    repo(&admin, "alpha-prod", "local", &["PROD"]);
    project(&admin, "alpha");
    project(&admin, "beta");
    for r in ["alpha-dev", "alpha-prod"] {
        let res = admin.put(&format!("{P}/_/attach/repositories/{r}/alpha"), &json!({}));
        assert_eq!(res.status, 204, "{}", res.text);
    }
    app.create_user("bob", "password-1");
    app.create_user("carol", "password-1");
    app.create_group("qa");
    let bob = app.as_user("bob", "password-1");
    let carol = app.as_user("carol", "password-1");
    assert!(!allowed(&bob, "alpha-dev/a/b.jar", "read").0);

    // Developer: DEV only, read/annotate/deploy/delete.
    admin.put(
        &format!("{P}/alpha/users/bob"),
        &json!({"roles": ["Developer"]}),
    );
    let (ok, via) = allowed(&bob, "alpha-dev/a/b.jar", "write");
    assert!(ok);
    assert_eq!(via, "project `alpha` role `Developer` (user `bob`)");
    assert!(allowed(&bob, "alpha-dev/a/b.jar", "delete").0);
    assert!(!allowed(&bob, "alpha-dev/a/b.jar", "manage").0);
    assert!(
        !allowed(&bob, "alpha-prod/a/b.jar", "read").0,
        "Developer is DEV only"
    );
    // Viewer through a group: read in DEV and PROD.
    admin.put(
        &format!("{P}/alpha/groups/qa"),
        &json!({"roles": ["Viewer"]}),
    );
    admin.patch(
        "/access/api/v2/groups/qa/members",
        &json!({"add": ["carol"]}),
    );
    let (ok, via) = allowed(&carol, "alpha-prod/x", "read");
    assert!(ok);
    assert!(via.contains("group `qa`"), "{via}");
    assert!(!allowed(&carol, "alpha-prod/x", "write").0);
    // Leaving the group ends it at once.
    admin.patch(
        "/access/api/v2/groups/qa/members",
        &json!({"remove": ["carol"]}),
    );
    assert!(!allowed(&carol, "alpha-prod/x", "read").0);
    // A custom role with PROD deploy.
    admin.post(
        &format!("{P}/alpha/roles"),
        &json!({"name": "shipper", "actions": ["DEPLOY_CACHE_REPOSITORY"], "environments": ["PROD"]}),
    );
    admin.put(
        &format!("{P}/alpha/users/bob"),
        &json!({"roles": ["Developer", "shipper"]}),
    );
    assert!(allowed(&bob, "alpha-prod/a", "write").0);
    assert!(!allowed(&bob, "alpha-prod/a", "read").0);
    // Changing the role's environments applies on the next request.
    admin.put(
        &format!("{P}/alpha/roles/shipper"),
        &json!({"actions": ["DEPLOY_CACHE_REPOSITORY"], "environments": ["QA"]}),
    );
    assert!(!allowed(&bob, "alpha-prod/a", "write").0);
    // Removing the member revokes.
    assert_eq!(admin.delete(&format!("{P}/alpha/users/bob")).status, 204);
    assert!(!allowed(&bob, "alpha-dev/a/b.jar", "read").0);

    // Sharing: a beta Viewer reads alpha-prod only while it is shared with beta.
    admin.put(
        &format!("{P}/beta/users/carol"),
        &json!({"roles": ["Viewer"]}),
    );
    assert!(!allowed(&carol, "alpha-prod/x", "read").0);
    assert_eq!(
        admin
            .put(
                &format!("{P}/_/share/repositories/alpha-prod/beta"),
                &json!({})
            )
            .status,
        204
    );
    let (ok, via) = allowed(&carol, "alpha-prod/x", "read");
    assert!(ok && via.contains("project `beta`"), "{via}");
    assert_eq!(
        admin
            .delete(&format!("{P}/_/share/repositories/alpha-prod/beta"))
            .status,
        204
    );
    assert!(!allowed(&carol, "alpha-prod/x", "read").0);
    assert_eq!(
        admin
            .delete(&format!("{P}/_/share/repositories/alpha-prod/beta"))
            .status,
        404
    );
    // Shared with all projects.
    assert_eq!(
        admin
            .put(&format!("{P}/_/share/repositories/alpha-prod"), &json!({}))
            .status,
        204
    );
    assert!(allowed(&carol, "alpha-prod/x", "read").0);
    assert_eq!(
        admin
            .delete(&format!("{P}/_/share/repositories/alpha-prod"),)
            .status,
        204
    );
    assert!(!allowed(&carol, "alpha-prod/x", "read").0);
    assert_eq!(
        admin
            .put(
                &format!("{P}/_/share/repositories/alpha-prod/alpha"),
                &json!({})
            )
            .status,
        400,
        "a repository is not shared with its own project"
    );
    assert_eq!(
        admin
            .put(&format!("{P}/_/share/repositories/ghost"), &json!({}))
            .status,
        404
    );

    // Moving needs force; the roles follow the repository's new project.
    let r = admin.put(
        &format!("{P}/_/attach/repositories/alpha-prod/beta"),
        &json!({}),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    let r = admin.put(
        &format!("{P}/_/attach/repositories/alpha-prod/beta?force=true"),
        &json!({}),
    );
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(allowed(&carol, "alpha-prod/x", "read").0);
    assert_eq!(
        admin.get("/artifactory/api/repositories/alpha-prod").json()["projectKey"],
        "beta"
    );
    // Unassign ends it.
    assert_eq!(
        admin
            .delete(&format!("{P}/_/attach/repositories/alpha-prod"))
            .status,
        204
    );
    assert!(!allowed(&carol, "alpha-prod/x", "read").0);
    assert_eq!(
        admin
            .delete(&format!("{P}/_/attach/repositories/alpha-prod"))
            .status,
        404
    );
    // Deleting a project unassigns its repositories.
    admin.put(
        &format!("{P}/alpha/users/bob"),
        &json!({"roles": ["Developer"]}),
    );
    assert!(allowed(&bob, "alpha-dev/a", "read").0);
    // … and ends their shares: a deleted project's repository shared with all projects
    // (or with beta) gave every other project's members their role's rights on it.
    assert_eq!(
        admin
            .put(&format!("{P}/_/share/repositories/alpha-dev"), &json!({}))
            .status,
        204
    );
    assert_eq!(
        admin
            .put(
                &format!("{P}/_/share/repositories/alpha-dev/beta"),
                &json!({})
            )
            .status,
        204
    );
    assert!(allowed(&carol, "alpha-dev/x", "read").0);
    assert_eq!(admin.delete(&format!("{P}/alpha")).status, 204);
    assert!(!allowed(&bob, "alpha-dev/a", "read").0);
    assert!(
        !allowed(&carol, "alpha-dev/x", "read").0,
        "the share outlived its project"
    );
    let repo = admin.get("/artifactory/api/repositories/alpha-dev").json();
    assert_eq!(repo["projectKey"], serde_json::Value::Null);
    assert_eq!(repo["sharedWithAllProjects"], false, "{repo}");
    assert_eq!(repo["sharedWithProjects"], json!([]), "{repo}");
    // The effective listing explains project grants too.
    admin.put(
        &format!("{P}/_/attach/repositories/alpha-dev/beta"),
        &json!({}),
    );
    admin.put(
        &format!("{P}/beta/users/bob"),
        &json!({"roles": ["Contributor"]}),
    );
    let eff = bob.get("/access/api/v1/authorize/effective").json();
    assert_eq!(eff["project_roles"][0]["repository"], "alpha-dev", "{eff}");
    assert_eq!(eff["project_roles"][0]["role"], "Contributor");
}

/// A member who manages the project only through a custom role cannot raise itself: with
/// `MANAGE_MEMBERS` it made itself Project Admin (in a project whose Project Admins may
/// not even manage members), with `MANAGE_RESOURCES` it rewrote its own role into every
/// repository action. A project role cannot take a global role's name (it shadowed it).
#[test]
fn custom_role_managers_cannot_raise_themselves() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.post(P, &json!({"project_key": "other", "display_name": "Other"}));
    assert_eq!(r.status, 201, "{}", r.text);
    repo(&admin, "other-dev", "local", &["DEV"]);
    assert_eq!(
        admin
            .put(
                &format!("{P}/_/attach/repositories/other-dev/other"),
                &json!({})
            )
            .status,
        204
    );
    for (role, action) in [
        ("Gatekeeper", "MANAGE_MEMBERS"),
        ("ResMgr", "MANAGE_RESOURCES"),
    ] {
        let r = admin.post(
            &format!("{P}/other/roles"),
            &json!({"name": role, "actions": [action], "environments": ["DEV"]}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    }
    app.create_user("carl", "Carl-password-1");
    app.create_user("rm", "Rm-password-1");
    app.create_user("dora", "Dora-password-1");
    admin.put(
        &format!("{P}/other/users/carl"),
        &json!({"roles": ["Gatekeeper"]}),
    );
    admin.put(
        &format!("{P}/other/users/rm"),
        &json!({"roles": ["ResMgr"]}),
    );
    let carl = app.as_user("carl", "Carl-password-1");
    let rm = app.as_user("rm", "Rm-password-1");

    let r = carl.put(
        &format!("{P}/other/users/carl"),
        &json!({"roles": ["Gatekeeper", "Project Admin"]}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    let r = carl.put(
        &format!("{P}/other/users/dora"),
        &json!({"roles": ["project admin"]}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    // What the role is for still works: others' roles, below Project Admin — and it may
    // list the roles it assigns (the list was 403).
    let r = carl.get(&format!("{P}/other/roles"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("Gatekeeper"), "{}", r.text);
    let r = carl.put(
        &format!("{P}/other/users/dora"),
        &json!({"roles": ["Developer"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!allowed(&carl, "other-dev/x", "delete").0);
    // Nor unmake one: a Project Admin's roles are not the member manager's to change,
    // nor is it to remove it (it stripped a project of its administrators).
    app.create_user("pat", "Pat-password-1");
    let r = admin.put(
        &format!("{P}/other/users/pat"),
        &json!({"roles": ["Project Admin"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = carl.put(
        &format!("{P}/other/users/pat"),
        &json!({"roles": ["Viewer"]}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.error_message().contains("Project Admin"), "{}", r.text);
    assert_eq!(carl.delete(&format!("{P}/other/users/pat")).status, 403);
    let held = admin.get(&format!("{P}/other/users/pat")).json();
    assert_eq!(held["roles"], json!(["Project Admin"]), "{held}");
    // Nor hand management on: a Project Admin (whose privileges here are off) gave
    // itself MANAGE_MEMBERS through a second account it had given the role.
    let r = carl.put(
        &format!("{P}/other/users/dora"),
        &json!({"roles": ["Gatekeeper"]}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(
        r.error_message().contains("manages the project"),
        "{}",
        r.text
    );
    let held = admin.get(&format!("{P}/other/users/dora")).json();
    assert_eq!(held["roles"], json!(["Developer"]), "{held}");
    // Nor by writing MANAGE_* into a role someone holds (the resource manager `rm`
    // makes a role, `carl` gives it, `rm` rewrites it), or into a new one.
    let r = rm.post(
        &format!("{P}/other/roles"),
        &json!({"name": "Plain", "actions": ["READ_REPOSITORY"], "environments": ["DEV"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = carl.put(
        &format!("{P}/other/users/dora"),
        &json!({"roles": ["Plain"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = rm.put(
        &format!("{P}/other/roles/Plain"),
        &json!({"actions": ["READ_REPOSITORY", "MANAGE_MEMBERS"], "environments": ["DEV"]}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    let r = rm.post(
        &format!("{P}/other/roles"),
        &json!({"name": "Mgr2", "actions": ["MANAGE_MEMBERS"], "environments": ["DEV"]}),
    );
    assert_eq!(r.status, 403, "{}", r.text);

    let r = rm.put(
        &format!("{P}/other/roles/ResMgr"),
        &json!({"actions": ["MANAGE_RESOURCES", "READ_REPOSITORY", "DELETE_OVERWRITE_REPOSITORY"],
                "environments": ["DEV", "PROD"]}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(rm.delete(&format!("{P}/other/roles/ResMgr")).status, 403);
    assert!(!allowed(&rm, "other-dev/x", "delete").0);
    let r = rm.post(
        &format!("{P}/other/roles"),
        &json!({"name": "Readers", "actions": ["READ_REPOSITORY"], "environments": ["DEV"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    // The projects a manager by custom role may read are listed to it.
    let listed = carl.get(P).json();
    assert_eq!(listed.as_array().map(|a| a.len()), Some(1), "{listed}");
    assert_eq!(listed[0]["project_key"], "other");

    // A global role's name is taken for project roles.
    let r = admin.post(
        "/access/api/v1/roles",
        &json!({"name": "G1", "type": "CUSTOM_GLOBAL", "actions": ["READ_REPOSITORY"], "environments": ["DEV"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.post(
        &format!("{P}/other/roles"),
        &json!({"name": "G1", "actions": ["DELETE_OVERWRITE_REPOSITORY"], "environments": ["DEV"]}),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    // A global role's MANAGE_MEMBERS counts in every project it is held in.
    let r = admin.post(
        "/access/api/v1/roles",
        &json!({"name": "GM", "type": "CUSTOM_GLOBAL", "actions": ["MANAGE_MEMBERS"], "environments": ["DEV"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    app.create_user("gina", "Gina-password-1");
    admin.put(&format!("{P}/other/users/gina"), &json!({"roles": ["GM"]}));
    let gina = app.as_user("gina", "Gina-password-1");
    assert_eq!(gina.get(&format!("{P}/other/users")).status, 200);
}

/// A member manager by custom role cannot change its own roles — not by its password
/// (the user case compared `"users"` with `"user"` and never matched), not through a
/// token scoped to a group (which hid the roles it held directly); a Project Admin's
/// self-given custom role ends with `admin_privileges`; a role cannot be named a case
/// variant of another; a forced move ends the previous owner's shares.
#[test]
fn member_managers_cannot_raise_themselves_by_any_credential() {
    let app = TestApp::spawn();
    let admin = app.admin();
    project(&admin, "web");
    repo(&admin, "web-dev", "local", &["DEV"]);
    repo(&admin, "web-prod", "local", &["PROD"]);
    for r in ["web-dev", "web-prod"] {
        let path = format!("{P}/_/attach/repositories/{r}/web");
        assert_eq!(admin.put(&path, &json!({})).status, 204);
    }
    for (name, actions) in [
        ("member-mgr", json!(["MANAGE_MEMBERS"])),
        ("resmgr", json!(["MANAGE_RESOURCES"])),
        ("dev-role", json!(["READ_REPOSITORY"])),
    ] {
        let r = admin.post(
            &format!("{P}/web/roles"),
            &json!({"name": name, "actions": actions, "environments": ["DEV"]}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    }
    app.create_user("carol", "Carol-password-1");
    app.create_user("erin", "Erin-password-1");
    let carol = app.as_user("carol", "Carol-password-1");

    // By password: its own roles are out of reach, others' are not.
    admin.put(
        &format!("{P}/web/users/carol"),
        &json!({"roles": ["member-mgr"]}),
    );
    let r = carol.put(
        &format!("{P}/web/users/carol"),
        &json!({"roles": ["member-mgr", "Release Manager"]}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    let r = carol.put(
        &format!("{P}/web/users/CAROL"),
        &json!({"roles": ["member-mgr", "resmgr"]}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(!allowed(&carol, "web-prod/x.jar", "delete").0);
    let r = carol.put(
        &format!("{P}/web/users/erin"),
        &json!({"roles": ["Developer"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);

    // Through a token scoped to a group that holds MANAGE_RESOURCES: the role carol
    // holds directly is still hers.
    app.create_group("mgrs");
    let r = admin.patch(
        "/access/api/v2/groups/mgrs/members",
        &json!({"add": ["carol"]}),
    );
    assert!(r.status == 200 || r.status == 204, "{}", r.text);
    admin.put(
        &format!("{P}/web/groups/mgrs"),
        &json!({"roles": ["resmgr"]}),
    );
    admin.put(
        &format!("{P}/web/users/carol"),
        &json!({"roles": ["dev-role"]}),
    );
    let t = admin.post(
        "/access/api/v1/tokens",
        &json!({"username": "carol", "scope": "applied-permissions/groups:mgrs", "expires_in": 3600}),
    );
    assert_eq!(t.status, 200, "{}", t.text);
    let scoped = app.anon().with_header_auth(&format!(
        "Bearer {}",
        t.json()["access_token"].as_str().unwrap()
    ));
    let wider = json!({"actions": ["READ_REPOSITORY", "DELETE_OVERWRITE_REPOSITORY"],
                       "environments": ["DEV", "PROD"]});
    let r = scoped.put(&format!("{P}/web/roles/dev-role"), &wider);
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(!allowed(&carol, "web-prod/x", "delete").0);
    // What the group's role is for still works through the token.
    let r = scoped.post(
        &format!("{P}/web/roles"),
        &json!({"name": "readers", "actions": ["READ_REPOSITORY"], "environments": ["DEV"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);

    // A Project Admin cannot give itself a role that manages the project (it would
    // outlive admin_privileges), nor make one it holds manage it; an admin can, and what
    // an admin gave counts whatever the privileges.
    app.create_user("dave", "Dave-password-1");
    let dave = app.as_user("dave", "Dave-password-1");
    admin.put(
        &format!("{P}/web/users/dave"),
        &json!({"roles": ["Project Admin", "dev-role"]}),
    );
    let r = dave.post(
        &format!("{P}/web/roles"),
        &json!({"name": "shadow", "actions": ["MANAGE_MEMBERS", "MANAGE_RESOURCES"], "environments": ["DEV"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = dave.put(
        &format!("{P}/web/users/dave"),
        &json!({"roles": ["Project Admin", "shadow"]}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    let r = dave.put(
        &format!("{P}/web/roles/dev-role"),
        &json!({"actions": ["READ_REPOSITORY", "MANAGE_MEMBERS"], "environments": ["DEV"]}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    let r = admin.put(
        &format!("{P}/web"),
        &json!({"admin_privileges": {"manage_members": false, "manage_resources": false}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = dave.put(
        &format!("{P}/web/users/erin"),
        &json!({"roles": ["Release Manager"]}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    let r = dave.post(
        &format!("{P}/web/roles"),
        &json!({"name": "wide", "actions": ["DELETE_OVERWRITE_REPOSITORY"], "environments": ["PROD"]}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    // Reading the project stays.
    assert_eq!(dave.get(&format!("{P}/web")).status, 200);
    // What an admin gives a Project Admin counts (more roles are never fewer rights).
    let r = admin.put(
        &format!("{P}/web/users/dave"),
        &json!({"roles": ["Project Admin", "member-mgr"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = dave.put(
        &format!("{P}/web/users/erin"),
        &json!({"roles": ["Release Manager"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);

    // A role named like another but for case is refused (assignments match ignoring
    // case: `developer` is the predefined Developer).
    for name in ["developer", "PROJECT ADMIN", "Resmgr"] {
        let r = admin.post(
            &format!("{P}/web/roles"),
            &json!({"name": name, "actions": ["READ_REPOSITORY"], "environments": ["DEV"]}),
        );
        assert_eq!(r.status, 409, "{name}: {}", r.text);
    }
    let r = admin.put(
        &format!("{P}/web/users/erin"),
        &json!({"roles": ["developer"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["roles"], json!(["Developer"]));

    // A forced move ends the shares the previous owner made.
    let r = admin.post(P, &json!({"project_key": "other", "display_name": "Other"}));
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.post(P, &json!({"project_key": "third", "display_name": "Third"}));
    assert_eq!(r.status, 201, "{}", r.text);
    let share = format!("{P}/_/share/repositories/web-dev/other");
    assert_eq!(admin.put(&share, &json!({})).status, 204, "share");
    admin.put(
        &format!("{P}/other/users/erin"),
        &json!({"roles": ["Developer"]}),
    );
    let erin = app.as_user("erin", "Erin-password-1");
    admin.delete(&format!("{P}/web/users/erin"));
    assert!(allowed(&erin, "web-dev/x", "write").0);
    let r = admin.put(
        &format!("{P}/_/attach/repositories/web-dev/third?force=true"),
        &json!({}),
    );
    assert_eq!(r.status, 204, "{}", r.text);
    let r = admin.get(&format!("{P}/_/repositories/web-dev")).json();
    assert_eq!(r["assigned_to"], "third", "{r}");
    assert_eq!(r["shared_with_projects"], json!([]), "{r}");
    assert!(!allowed(&erin, "web-dev/x", "write").0);
}

/// A project role's `MANAGE_XRAY_MD_REPOSITORY` is Xray's metadata action, as the Access
/// API's `MANAGED_XRAY_METADATA` is: not `manage`, which signs URLs (a role for Xray
/// metadata alone could make itself a read link to every file of the repository).
#[test]
fn a_role_for_xray_metadata_does_not_manage_the_repository() {
    let app = TestApp::spawn();
    let admin = app.admin();
    repo(&admin, "web-dev", "local", &["DEV"]);
    project(&admin, "web");
    let r = admin.put(
        &format!("{P}/_/attach/repositories/web-dev/web"),
        &json!({}),
    );
    assert_eq!(r.status, 204, "{}", r.text);
    let r = admin.post(
        &format!("{P}/web/roles"),
        &json!({"name": "xraymd", "type": "CUSTOM", "actions": ["MANAGE_XRAY_MD_REPOSITORY"],
                "environments": ["DEV"]}),
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    app.create_user("gina", "password-1");
    let r = admin.put(
        &format!("{P}/web/users/gina"),
        &json!({"roles": ["xraymd"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let gina = app.as_user("gina", "password-1");
    assert!(allowed(&gina, "web-dev/any/file.bin", "managedXrayMeta").0);
    assert!(!allowed(&gina, "web-dev/any/file.bin", "manage").0);
    assert!(!allowed(&gina, "web-dev/any/file.bin", "read").0);
    let r = gina.post(
        "/artifactory/api/signed/url",
        &json!({"repo_path": "web-dev/any/file.bin"}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
}

/// v2's project list shows a Project Admin its projects, as v1's does (it was 403); an
/// update that changes nothing writes nothing (a project, a member's roles); a role is
/// found by a name in another case, as members are given roles.
#[test]
fn v2_lists_a_project_admins_projects_and_idle_updates_write_nothing() {
    let app = TestApp::spawn();
    let admin = app.admin();
    project(&admin, "alpha");
    project(&admin, "beta");
    app.create_user("pa", "password-1");
    app.create_user("dev", "password-1");
    let r = admin.put(
        &format!("{P}/alpha/users/pa"),
        &json!({"roles": ["Project Admin"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let pa = app.as_user("pa", "password-1");
    let r = pa.get("/access/api/v2/projects");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json()["projects"],
        json!([{"name": "Project alpha", "projectKey": "alpha"}])
    );
    let r = app
        .as_user("dev", "password-1")
        .get("/access/api/v2/projects");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["projects"], json!([]));
    assert_eq!(
        admin.get("/access/api/v2/projects").json()["projects"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let seq = || app.digest()["seq"].as_u64().unwrap();
    let r = admin.put(
        &format!("{P}/alpha/users/dev"),
        &json!({"roles": ["developer"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let before = seq();
    for _ in 0..2 {
        let r = admin.put(
            &format!("{P}/alpha/users/dev"),
            &json!({"roles": ["Developer"]}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        let r = admin.put(&format!("{P}/alpha"), &json!({}));
        assert_eq!(r.status, 200, "{}", r.text);
        let r = admin.put(
            &format!("{P}/alpha"),
            &json!({"display_name": "Project alpha"}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(seq(), before, "nothing changed, nothing written");
    let r = admin.put(&format!("{P}/alpha"), &json!({"description": "now"}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(seq(), before + 1);

    // `developer` as the member's roles show it, asked for by that name.
    for name in ["Developer", "developer", "DEVELOPER"] {
        let r = admin.get(&format!("{P}/alpha/roles/{name}"));
        assert_eq!(r.status, 200, "{name}: {}", r.text);
        assert_eq!(r.json()["name"], "Developer", "{name}");
    }
    assert_eq!(admin.get(&format!("{P}/alpha/roles/nobody")).status, 404);
}

/// A project's roles list and role GET show the global roles its members hold (a
/// Project Admin, who may not read `/access/api/v1/roles`, could not see what they
/// grant); `role_name` matches ignoring case as assignments do; a role or share saved
/// again as it is writes nothing.
#[test]
fn global_roles_held_show_in_the_project_and_repeats_write_nothing() {
    let app = TestApp::spawn();
    let admin = app.admin();
    repo(&admin, "web-prod", "local", &["PROD"]);
    project(&admin, "api");
    project(&admin, "web");
    app.create_user("dave", "password-1");
    let global =
        json!({"name": "Auditor2", "actions": ["READ_REPOSITORY"], "environments": ["PROD"]});
    let r = admin.post("/access/api/v1/roles", &global);
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.put(
        &format!("{P}/api/users/dave"),
        &json!({"roles": ["auditor2"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let roles = admin.get(&format!("{P}/api/roles")).json();
    let auditor = roles
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "Auditor2")
        .unwrap_or_else(|| panic!("{roles}"));
    assert_eq!(auditor["type"], "CUSTOM_GLOBAL");
    let r = admin.get(&format!("{P}/api/roles/Auditor2"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["type"], "CUSTOM_GLOBAL");
    // Not held in `web`: not shown there.
    assert_eq!(admin.get(&format!("{P}/web/roles/Auditor2")).status, 404);
    let r = admin.get("/access/api/v2/projects?role_name=AUDITOR2");
    assert!(r.text.contains("\"api\""), "{}", r.text);
    // Saved again as they are: the same position, nothing written.
    let seq = |r: &crate::helpers::Resp| r.header("x-gatehouse-seq").map(str::to_string);
    let role = json!({"name": "PA2", "actions": ["READ_REPOSITORY"], "environments": ["DEV"]});
    let r = admin.post(
        &format!("{P}/api/roles"),
        &json!({"name": "PA2", "actions": ["READ_REPOSITORY"], "environments": ["PROD"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let first = admin.put(&format!("{P}/api/roles/PA2"), &role);
    assert!(first.status < 300, "{}", first.text);
    let again = admin.put(&format!("{P}/api/roles/PA2"), &role);
    assert!(again.status < 300, "{}", again.text);
    assert_eq!(seq(&first), seq(&again));
    let first = admin.put("/access/api/v1/roles/Auditor2", &global);
    let again = admin.put("/access/api/v1/roles/Auditor2", &global);
    assert!(again.status < 300, "{}", again.text);
    assert_eq!(seq(&first), seq(&again));
    let r = admin.put(
        &format!("{P}/_/attach/repositories/web-prod/web"),
        &json!({}),
    );
    assert!(r.status < 300, "{}", r.text);
    let first = admin.put(
        &format!("{P}/_/share/repositories/web-prod/api"),
        &json!({}),
    );
    assert!(first.status < 300, "{}", first.text);
    let again = admin.put(
        &format!("{P}/_/share/repositories/web-prod/api"),
        &json!({}),
    );
    assert!(again.status < 300, "{}", again.text);
    assert_eq!(seq(&first), seq(&again));
    // Predefined roles sent back as read, through both APIs: nothing changes (each was
    // a 400, "predefined roles cannot be changed", or an invalid `type`); Project Admin
    // is `ADMIN` in both; a change of a predefined role stays a 400.
    let head = || admin.get("/access/api/v1/system/state/digest").json()["seq"].clone();
    let before = head();
    for path in [
        format!("{P}/api/roles/Developer"),
        format!("{P}/api/roles/Project%20Admin"),
        "/access/api/v1/roles/Developer".to_string(),
        "/access/api/v1/roles/Project%20Admin".to_string(),
    ] {
        let read = admin.get(&path).json();
        let kind = if path.ends_with("Admin") {
            "ADMIN"
        } else {
            "PREDEFINED"
        };
        assert_eq!(read["type"], kind, "{path}: {read}");
        let r = admin.put(&path, &read);
        assert!(r.status < 300, "{path}: {}", r.text);
        // Answered as what it is (it said CUSTOM, CUSTOM_GLOBAL).
        assert_eq!(r.json()["type"], kind, "{path}: {}", r.text);
        let mut changed = read.clone();
        changed["actions"] = json!(["READ_REPOSITORY"]);
        assert_eq!(admin.put(&path, &changed).status, 400, "{path}");
    }
    assert_eq!(head(), before);
}

/// Only an admin gives anonymous (or a group it is in) a project role: a member manager
/// gave anonymous `Developer`, then wrote and deleted without credentials what its own
/// account could not.
#[test]
fn only_an_admin_gives_anonymous_a_project_role() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.put(
        "/access/api/v1/config/security/anonymous_access",
        &json!({"enabled": true}),
    );
    assert!(r.status < 300, "{}", r.text);
    repo(&admin, "web-dev", "local", &["DEV"]);
    project(&admin, "web");
    let r = admin.put(
        &format!("{P}/_/attach/repositories/web-dev/web"),
        &json!({}),
    );
    assert!(r.status < 300, "{}", r.text);
    let r = admin.post(
        &format!("{P}/web/roles"),
        &json!({"name": "MemMgr", "type": "CUSTOM", "environments": ["DEV"], "actions": ["MANAGE_MEMBERS"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    app.create_user("mm", "password-1");
    let r = admin.put(&format!("{P}/web/users/mm"), &json!({"roles": ["MemMgr"]}));
    assert_eq!(r.status, 200, "{}", r.text);
    app.create_group("public");
    let r = admin.patch(
        "/access/api/v2/groups/public/members",
        &json!({"add": ["anonymous"]}),
    );
    assert!(r.status < 300, "{}", r.text);
    let mm = app.as_user("mm", "password-1");
    for path in [
        format!("{P}/web/users/anonymous"),
        format!("{P}/web/groups/public"),
    ] {
        let r = mm.put(&path, &json!({"roles": ["Developer"]}));
        assert_eq!(r.status, 403, "{path}: {}", r.text);
        assert!(r.text.contains("anonymous"), "{}", r.text);
    }
    let r = app
        .anon()
        .get("/access/api/v1/authorize?resource=web-dev/x.bin&action=write");
    assert_ne!(r.status, 200, "{}", r.text);
    // An admin may.
    let r = admin.put(
        &format!("{P}/web/users/anonymous"),
        &json!({"roles": ["Viewer"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

/// A role update changes what it gives and keeps the rest (JFrog's clients send only
/// what changes: a description left out was erased, actions left out were a 400); the
/// v2 projects list goes on after a cursor whose project was deleted (it ended there);
/// a repository without environments is `DEV` in its project status too.
#[test]
fn role_updates_keep_what_they_leave_out_and_paging_survives_a_deleted_cursor() {
    let app = TestApp::spawn();
    let admin = app.admin();
    project(&admin, "web");
    let r = admin.post(
        &format!("{P}/web/roles"),
        &json!({"name": "Senior Dev", "description": "sd", "type": "CUSTOM",
                "actions": ["READ_REPOSITORY"], "environments": ["DEV"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.put(
        &format!("{P}/web/roles/Senior%20Dev"),
        &json!({"type": "CUSTOM", "actions": ["READ_REPOSITORY", "ANNOTATE_REPOSITORY"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let role = r.json();
    assert_eq!(role["description"], "sd", "{role}");
    assert_eq!(role["environments"], json!(["DEV"]), "{role}");
    let r = admin.put(
        &format!("{P}/web/roles/Senior%20Dev"),
        &json!({"type": "CUSTOM", "description": "senior"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json()["actions"].as_array().unwrap().len(),
        2,
        "{}",
        r.text
    );
    let r = admin.post(
        "/access/api/v1/roles",
        &json!({"name": "auditor", "description": "reads everything",
                "actions": ["READ_REPOSITORY"], "environments": ["DEV", "PROD"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.put(
        "/access/api/v1/roles/auditor",
        &json!({"name": "auditor", "type": "CUSTOM_GLOBAL", "description": "x"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json()["environments"],
        json!(["DEV", "PROD"]),
        "{}",
        r.text
    );
    let r = admin.put(
        "/access/api/v1/roles/auditor",
        &json!({"name": "auditor", "actions": ["READ_REPOSITORY"], "environments": ["DEV"]}),
    );
    assert_eq!(r.json()["description"], "x", "{}", r.text);
    // Names ignoring case, as reads and assignments take them (updates and deletions
    // were 404).
    let r = admin.put(
        &format!("{P}/web/roles/senior%20dev"),
        &json!({"description": "lower-case path"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["name"], "Senior Dev", "{}", r.text);
    let r = admin.get("/access/api/v1/roles/project%20admin");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["name"], "Project Admin");
    let r = admin.put(
        "/access/api/v1/roles/AUDITOR",
        &json!({"description": "upper-case path"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["name"], "auditor", "{}", r.text);
    assert_eq!(
        admin.delete(&format!("{P}/web/roles/SENIOR%20DEV")).status,
        204
    );
    assert_eq!(
        admin.get(&format!("{P}/web/roles/Senior%20Dev")).status,
        404
    );

    for key in ["pg1", "pg2", "pg3", "pg4"] {
        project(&admin, key);
    }
    let first = admin.get("/access/api/v2/projects?limit=2").json();
    let cursor = first["cursor"].as_str().unwrap().to_string();
    assert_eq!(admin.delete(&format!("{P}/{cursor}")).status, 204);
    let next = admin
        .get(&format!("/access/api/v2/projects?limit=10&cursor={cursor}"))
        .json();
    let keys: Vec<&str> = next["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["projectKey"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 3, "{first} then {next}");

    repo(&admin, "plain", "local", &[]);
    let r = admin.get(&format!("{P}/_/repositories/plain"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["environments"], json!(["DEV"]), "{}", r.text);
}

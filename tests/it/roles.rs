//! Global roles (`/access/api/v1/roles`) as project roles, and the projects where a
//! role is held (`GET /access/api/v2/projects?role_name=`) (issue 13).

use crate::helpers::{Client, TestApp};
use serde_json::json;

const ROLES: &str = "/access/api/v1/roles";
const P: &str = "/access/api/v1/projects";

fn allowed(client: &Client, resource: &str, action: &str) -> bool {
    let r = client.get(&format!(
        "/access/api/v1/authorize?resource={resource}&action={action}"
    ));
    assert!(r.status == 200 || r.status == 403, "{}", r.text);
    r.status == 200
}

#[test]
fn global_roles_are_listed_with_the_predefined_ones_and_given_in_any_project() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.post(
        ROLES,
        &json!({"name": "ci-auditor", "description": "global", "type": "CUSTOM_GLOBAL",
                "environments": ["DEV", "PROD"], "actions": ["READ_REPOSITORY"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let list = admin.get(ROLES).json();
    let types: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (name, kind) in [
        ("Project Admin", "ADMIN"),
        ("Developer", "PREDEFINED"),
        ("Viewer", "PREDEFINED"),
        ("ci-auditor", "CUSTOM_GLOBAL"),
    ] {
        assert!(
            types.contains(&(name.to_string(), kind.to_string())),
            "{name} {kind} in {types:?}"
        );
    }
    let one = admin.get(&format!("{ROLES}/ci-auditor")).json();
    assert_eq!(one["environments"], json!(["DEV", "PROD"]));
    assert_eq!(one["actions"], json!(["READ_REPOSITORY"]));
    assert_eq!(
        admin.get(&format!("{ROLES}/Project%20Admin")).json()["type"],
        "ADMIN"
    );
    assert_eq!(admin.get(&format!("{ROLES}/nothing")).status, 404);

    // One name, one role: predefined names, global names and project role names clash.
    for name in ["Viewer", "ci-auditor"] {
        let r = admin.post(
            ROLES,
            &json!({"name": name, "type": "CUSTOM_GLOBAL", "environments": ["DEV"],
                    "actions": ["READ_REPOSITORY"]}),
        );
        assert_eq!(r.status, 409, "{name}: {}", r.text);
    }
    let r = admin.post(P, &json!({"project_key": "alpha", "display_name": "Alpha"}));
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.post(
        &format!("{P}/alpha/roles"),
        &json!({"name": "ci-auditor", "type": "CUSTOM", "environments": ["DEV"],
                "actions": ["READ_REPOSITORY"]}),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    let r = admin.post(
        &format!("{P}/alpha/roles"),
        &json!({"name": "alpha-only", "type": "CUSTOM", "environments": ["DEV"],
                "actions": ["READ_REPOSITORY"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.post(
        ROLES,
        &json!({"name": "alpha-only", "type": "CUSTOM_GLOBAL", "environments": ["DEV"],
                "actions": ["READ_REPOSITORY"]}),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    let r = admin.post(
        ROLES,
        &json!({"name": "x", "type": "CUSTOM", "environments": ["DEV"],
                "actions": ["READ_REPOSITORY"]}),
    );
    assert_eq!(r.status, 400, "{}", r.text);

    // Given in a project, it decides like a project role.
    let r = admin.put(
        "/artifactory/api/repositories/alpha-dev",
        &json!({"rclass": "local", "environments": ["DEV"]}),
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    let r = admin.put(
        &format!("{P}/_/attach/repositories/alpha-dev/alpha"),
        &json!({}),
    );
    assert!(r.status < 300, "{}", r.text);
    app.create_user("audra", "password-1");
    let audra = app.as_user("audra", "password-1");
    assert!(!allowed(&audra, "alpha-dev/a.txt", "read"));
    let r = admin.put(
        &format!("{P}/alpha/users/audra"),
        &json!({"roles": ["ci-auditor"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(allowed(&audra, "alpha-dev/a.txt", "read"));
    assert!(!allowed(&audra, "alpha-dev/a.txt", "write"));
    // Changing the global role changes the decision at once.
    let r = admin.put(
        &format!("{ROLES}/ci-auditor"),
        &json!({"name": "ci-auditor", "type": "CUSTOM_GLOBAL", "description": "changed",
                "environments": ["DEV"], "actions": ["READ_REPOSITORY", "DEPLOY_CACHE_REPOSITORY"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["description"], "changed");
    assert!(allowed(&audra, "alpha-dev/a.txt", "write"));
    assert_eq!(
        admin
            .put(
                &format!("{ROLES}/Viewer"),
                &json!({"environments": ["DEV"], "actions": ["READ_REPOSITORY"]})
            )
            .status,
        400
    );

    // Where it is held.
    let r = admin.post(P, &json!({"project_key": "beta", "display_name": "Beta"}));
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.get("/access/api/v2/projects?role_name=ci-auditor");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json(),
        json!({"projects": [{"name": "Alpha", "projectKey": "alpha"}], "cursor": null})
    );
    let all = admin.get("/access/api/v2/projects?limit=1").json();
    assert_eq!(all["projects"][0]["projectKey"], "alpha");
    assert_eq!(all["cursor"], "alpha");
    let rest = admin
        .get("/access/api/v2/projects?limit=1&cursor=alpha")
        .json();
    assert_eq!(
        rest,
        json!({"projects": [{"name": "Beta", "projectKey": "beta"}], "cursor": null})
    );

    // Deleted: members lose it (one left with no role leaves), and the decision with it.
    assert_eq!(admin.delete(&format!("{ROLES}/Viewer")).status, 400);
    assert_eq!(admin.delete(&format!("{ROLES}/ci-auditor")).status, 204);
    assert_eq!(admin.get(&format!("{ROLES}/ci-auditor")).status, 404);
    assert!(!allowed(&audra, "alpha-dev/a.txt", "read"));
    assert_eq!(admin.get(&format!("{P}/alpha/users/audra")).status, 404);
    assert_eq!(
        admin
            .get("/access/api/v2/projects?role_name=ci-auditor")
            .json()["projects"],
        json!([])
    );
    assert_eq!(audra.get(ROLES).status, 403);
}

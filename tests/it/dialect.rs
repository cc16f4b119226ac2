//! The dialect as real clients speak it (issue 13): liberal in what is accepted, exact in
//! what is sent. Bodies are the ones py-jfrog-client, pyartifactory and dohq-artifactory
//! send; `scripts/conformance/clients.sh` drives the libraries themselves.

use crate::helpers::TestApp;
use serde_json::json;

#[test]
fn fields_jfrog_defines_are_accepted_and_unknown_ones_named_in_a_header() {
    let app = TestApp::spawn();
    let admin = app.admin();
    // py-jfrog-client's user model sends every field JFrog defines, most of them null.
    let r = admin.post(
        "/access/api/v2/users",
        &json!({
            "username": "carol",
            "password": "Carol-password-1",
            "email": "carol@example.com",
            "admin": false,
            "profile_updatable": true,
            "disable_ui_access": null,
            "internal_password_disabled": false,
            "groups": null,
            "watch_manager": false,
            "policy_manager": false,
            "reports_manager": true,
            "policy_viewer": false,
            "manage_resources": false,
            "manage_webhook": false,
            "no_such_field_anywhere": 7,
        }),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let ignored = r.header("x-gatehouse-ignored-fields").unwrap_or("");
    assert!(ignored.contains("no_such_field_anywhere"), "{ignored}");
    assert_eq!(r.json()["groups"], json!([]), "null means not given");

    // Inside an optional object the path is as written (serde_ignored's `?` for the
    // value in an `Option` showed as `admin_privileges.?.bogus`).
    let r = admin.post(
        "/access/api/v1/projects",
        &json!({"project_key": "ign", "display_name": "Ign", "admin_privileges": {"bogus": true}, "foo": 1}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.header("x-gatehouse-ignored-fields"),
        Some("admin_privileges.bogus, foo")
    );

    // A body with nothing unknown carries no such header.
    let r = admin.post("/access/api/v2/groups", &json!({"name": "plain"}));
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("x-gatehouse-ignored-fields"), None);

    // Wrong types and invalid values stay a 400 naming the field, and write nothing.
    let seq = app.digest()["seq"].as_u64().unwrap();
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "dave", "password": "Dave-password-1", "email": "d@example.com", "admin": "yes"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.error_message().contains("admin"), "{}", r.text);
    assert_eq!(app.digest()["seq"].as_u64().unwrap(), seq);
}

#[test]
fn a_v2_permission_target_as_pyartifactory_sends_it() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("ann", "Ann-password-1");
    // pyartifactory: `groups: null`, `exclude-patterns: [""]`.
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/py-target",
        &json!({
            "name": "py-target",
            "repo": {
                "repositories": ["libs-local"],
                "actions": {"users": {"ann": ["read", "write"]}, "groups": null},
                "include-patterns": ["**"],
                "exclude-patterns": [""],
            },
            "build": null,
            "releaseBundle": null,
        }),
    );
    assert!(
        r.status == 200 || r.status == 201,
        "{} {}",
        r.status,
        r.text
    );
    let r = admin.get("/artifactory/api/v2/security/permissions/py-target");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["repo"]["actions"]["users"]["ann"],
        json!(["read", "write"])
    );
}

fn allowed(app: &TestApp, user: &str, resource: &str, action: &str) -> bool {
    let r = app.admin().get(&format!(
        "/access/api/v1/authorize?user={user}&resource={resource}&action={action}"
    ));
    assert!(r.status == 200 || r.status == 403, "{}", r.text);
    r.json()["allowed"].as_bool().unwrap()
}

#[test]
fn an_access_v2_permission_is_one_target_in_all_three_formats() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("pat", "Pat-password-1");
    app.create_group("devs");
    // Patterns per target: libs-a everything but secret/, libs-b only org/.
    let r = admin.post(
        "/access/api/v2/permissions",
        &json!({
            "name": "p1",
            "resources": {
                "artifact": {
                    "actions": {"users": {"pat": ["READ", "WRITE"]}, "groups": {"devs": ["READ"]}},
                    "targets": {
                        "libs-a": {"include_patterns": ["**"], "exclude_patterns": ["secret/**"]},
                        "libs-b": {"include_patterns": ["org/**"], "exclude_patterns": []},
                    },
                },
                "build": {
                    "actions": {"groups": {"devs": ["READ"]}},
                    "targets": {"artifactory-build-info": {"include_patterns": ["app-*/**"]}},
                },
            },
        }),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let p = r.json();
    // A principal that does not exist is named as this format spells the field (it
    // was Artifactory's `repo.actions.groups`).
    let r = admin.post(
        "/access/api/v2/permissions",
        &json!({"name": "p0", "resources": {"artifact": {
            "actions": {"groups": {"nobody-group": ["READ"]}},
            "targets": {"libs-a": {"include_patterns": ["**"]}}}}}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.text.contains("resources.artifact.actions.groups") && !r.text.contains("repo.actions"),
        "{}",
        r.text
    );
    assert_eq!(
        p["resources"]["artifact"]["actions"]["users"]["pat"],
        json!(["READ", "WRITE"])
    );
    assert_eq!(
        p["resources"]["artifact"]["targets"]["libs-b"],
        json!({"include_patterns": ["org/**"], "exclude_patterns": []})
    );
    // The same name again is a conflict.
    let again = admin.post("/access/api/v2/permissions", &json!({"name": "p1"}));
    assert_eq!(again.status, 409, "{}", again.text);

    // The decision uses each target's own patterns, whichever API wrote them.
    assert!(allowed(&app, "pat", "libs-a/x/y.jar", "write"));
    assert!(!allowed(&app, "pat", "libs-a/secret/y.jar", "read"));
    assert!(allowed(&app, "pat", "libs-b/org/y.jar", "read"));
    assert!(!allowed(&app, "pat", "libs-b/com/y.jar", "read"));

    // Artifactory v2 and v1 see the same target.
    let v2 = admin
        .get("/artifactory/api/v2/security/permissions/p1")
        .json();
    assert_eq!(v2["repo"]["repositories"], json!(["libs-a", "libs-b"]));
    assert_eq!(
        v2["repo"]["actions"]["users"]["pat"],
        json!(["read", "write"])
    );
    assert_eq!(v2["build"]["include-patterns"], json!(["app-*/**"]));
    let v1 = admin.get("/artifactory/api/security/permissions/p1").json();
    assert_eq!(v1["repositories"], json!(["libs-a", "libs-b"]));
    assert_eq!(v1["principals"]["users"]["pat"], json!(["r", "w"]));
    assert_eq!(v1["principals"]["groups"]["devs"], json!(["r"]));
    let listed = admin.get("/access/api/v2/permissions").json();
    assert_eq!(listed["permissions"][0]["name"], "p1");
    assert!(listed["permissions"][0]["uri"]
        .as_str()
        .unwrap()
        .ends_with("/access/api/v2/permissions/p1"));

    // One resource: PATCH sets the principals it names and keeps the others.
    let r = admin.patch(
        "/access/api/v2/permissions/p1/artifact",
        &json!({"actions": {"users": {"pat": ["READ", "DELETE"]}}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json()["actions"]["users"]["pat"],
        json!(["READ", "DELETE"])
    );
    assert_eq!(r.json()["actions"]["groups"]["devs"], json!(["READ"]));
    assert!(allowed(&app, "pat", "libs-a/x/y.jar", "delete"));
    assert!(!allowed(&app, "pat", "libs-a/x/y.jar", "write"));
    let r = admin.get("/access/api/v2/permissions/p1/build");
    assert_eq!(r.status, 200, "{}", r.text);
    let r = admin.delete("/access/api/v2/permissions/p1/build");
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(admin.get("/access/api/v2/permissions/p1/build").status, 404);
    assert!(admin
        .get("/artifactory/api/v2/security/permissions/p1")
        .json()
        .get("build")
        .is_none());
    assert_eq!(
        admin.get("/access/api/v2/permissions/p1/nonsense").status,
        404
    );

    // A bad action names its field; nothing is written.
    let seq = app.digest()["seq"].as_u64().unwrap();
    let r = admin.put(
        "/access/api/v2/permissions/p1/artifact",
        &json!({"actions": {"users": {"pat": ["FLY"]}}, "targets": {"libs-a": {}}}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.error_message().contains("artifact.actions.users.pat"),
        "{}",
        r.text
    );
    assert_eq!(app.digest()["seq"].as_u64().unwrap(), seq);

    // v1 PUT replaces the repository section and keeps the others.
    admin.patch(
        "/access/api/v2/permissions/p1/release_bundle",
        &json!({"actions": {"groups": {"devs": ["READ"]}}}),
    );
    let r = admin.put(
        "/artifactory/api/security/permissions/p1",
        &json!({"name": "p1", "includesPattern": "org/**,com/**", "excludesPattern": "",
                "repositories": ["libs-c"], "principals": {"users": {"pat": ["r", "m"]}}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // v1 names a missing principal's field its own way.
    let r = admin.put(
        "/artifactory/api/security/permissions/p9",
        &json!({"name": "p9", "repositories": ["libs-c"],
                "principals": {"groups": {"nobody-group": ["r"]}}}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("`principals.groups`"), "{}", r.text);
    let v2 = admin
        .get("/artifactory/api/v2/security/permissions/p1")
        .json();
    assert_eq!(v2["repo"]["include-patterns"], json!(["org/**", "com/**"]));
    assert_eq!(
        v2["repo"]["actions"]["users"]["pat"],
        json!(["read", "manage"])
    );
    assert!(v2.get("releaseBundle").is_some(), "{v2}");
    let r = admin.delete("/access/api/v2/permissions/p1");
    assert_eq!(r.status, 204);
    assert_eq!(
        admin.get("/artifactory/api/security/permissions/p1").status,
        404
    );
}

#[test]
fn artifactory_security_users_and_groups_are_the_same_directory() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_group("readers");
    // pyartifactory's / dohq's create.
    let r = admin.put(
        "/artifactory/api/security/users/Art",
        &json!({"name": "art", "email": "art@example.com", "password": "Art-password-1",
                "admin": false, "profileUpdatable": true, "disableUIAccess": false,
                "internalPasswordDisabled": false, "groups": ["readers"], "realm": "internal",
                "watchManager": false}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    // The Access API sees the same user.
    let v2 = admin.get("/access/api/v2/users/art").json();
    assert_eq!(v2["email"], "art@example.com");
    assert_eq!(v2["groups"], json!(["readers"]));
    let a = admin.get("/artifactory/api/security/users/art").json();
    assert_eq!(a["name"], "art");
    assert_eq!(a["profileUpdatable"], true);
    assert_eq!(a["status"], "ENABLED");
    assert_eq!(a["groups"], json!(["readers"]));
    // dohq's update: nulls stay unchanged; groups replace the membership.
    app.create_group("writers");
    let r = admin.post(
        "/artifactory/api/security/users/art",
        &json!({"name": "art", "password": null, "email": null, "admin": true, "groups": ["writers"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let v2 = admin.get("/access/api/v2/users/art").json();
    assert_eq!(v2["admin"], true);
    assert_eq!(v2["email"], "art@example.com");
    assert_eq!(v2["groups"], json!(["writers"]));
    assert!(admin
        .get("/artifactory/api/security/users")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["name"] == "art"));
    assert_eq!(
        app.as_user("art", "Art-password-1")
            .get("/access/api/v2/users/art")
            .status,
        200
    );
    // A wrong type is still a 400 that names the field.
    let r = admin.post(
        "/artifactory/api/security/users/art",
        &json!({"admin": "yes"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.error_message().contains("admin"), "{}", r.text);
    assert_eq!(
        admin
            .post("/artifactory/api/security/users/nobody", &json!({}))
            .status,
        404
    );

    // Groups: camelCase and snake_case, userNames always shown.
    let r = admin.put(
        "/artifactory/api/security/groups/team",
        &json!({"name": "team", "description": "the team", "autoJoin": false,
                "adminPrivileges": false, "realm": "artifactory", "userNames": ["art"],
                "external": false, "newUserDefault": false}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let g = admin.get("/artifactory/api/security/groups/team").json();
    assert_eq!(g["userNames"], json!(["art"]));
    assert_eq!(g["realm"], "internal");
    assert_eq!(g["autoJoin"], false);
    assert_eq!(
        admin.get("/access/api/v2/groups/team").json()["members"],
        json!(["art"])
    );
    let r = admin.post(
        "/artifactory/api/security/groups/team",
        &json!({"auto_join": true, "userNames": []}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let g = admin.get("/access/api/v2/groups/team").json();
    assert_eq!(g["auto_join"], true);
    assert_eq!(g["members"], json!([]));
    // Errors name the fields as this API spells them (they named Access's).
    let r = admin.post(
        "/artifactory/api/security/groups/team",
        &json!({"autoJoin": true, "adminPrivileges": true}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.error_message().contains("`autoJoin`") || r.error_message().contains("`adminPrivileges`"),
        "{}",
        r.text
    );
    assert!(!r.error_message().contains("auto_join"), "{}", r.text);
    let r = admin.put(
        "/artifactory/api/security/groups/team",
        &json!({"userNames": ["nobody"]}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.error_message().contains("`userNames[0]`"), "{}", r.text);
    let r = admin.delete("/artifactory/api/security/groups/team");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(admin.get("/access/api/v2/groups/team").status, 404);
    let r = admin.delete("/artifactory/api/security/users/art");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(admin.get("/access/api/v2/users/art").status, 404);
    // Non-admins are refused.
    app.create_user("plain", "Plain-password-1");
    let plain = app.as_user("plain", "Plain-password-1");
    assert_eq!(plain.get("/artifactory/api/security/users").status, 403);
}

fn form(
    client: &crate::helpers::Client,
    method: &str,
    path: &str,
    body: &str,
) -> crate::helpers::Resp {
    client.raw(
        method,
        path,
        Some("application/x-www-form-urlencoded"),
        Some(body.as_bytes()),
    )
}

#[test]
fn tokens_are_revoked_by_value_and_spoken_to_under_artifactory_prefixes() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("tim", "Tim-password-1");
    app.create_group("builders");
    let tim = app.as_user("tim", "Tim-password-1");
    // pyartifactory creates tokens under Artifactory's prefix for Access.
    let r = form(
        &admin,
        "POST",
        "/artifactory/access/api/v1/tokens",
        "username=tim&scope=applied-permissions/user&expires_in=86400",
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    let bearer = app.anon().with_header_auth(&format!("Bearer {token}"));
    assert_eq!(bearer.get("/access/api/v1/tokens/me").status, 200);
    // Revoking by value: a forged JWT that names this token's id finds nothing.
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    parts[2] = parts[2].chars().rev().collect();
    let forged = parts.join(".");
    let r = admin.send(
        "DELETE",
        "/access/api/v1/tokens/revoke",
        &json!({"token": forged}),
    );
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(bearer.get("/access/api/v1/tokens/me").status, 200);
    // Another user may not revoke it; its owner (or an admin) may, by value, as a form.
    app.create_user("eve", "Eve-password-1");
    let r = form(
        &app.as_user("eve", "Eve-password-1"),
        "DELETE",
        "/access/api/v1/tokens/revoke",
        &format!("token={token}"),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    let r = form(
        &tim,
        "DELETE",
        "/artifactory/access/api/v1/tokens/revoke",
        &format!("token={token}"),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json()["revoked_token_id"].is_string());
    assert_eq!(bearer.get("/access/api/v1/tokens/me").status, 401);
    // Again: nothing revocable has this value any more.
    let r = admin.send(
        "DELETE",
        "/access/api/v1/tokens/revoke",
        &json!({"token": token}),
    );
    assert_eq!(r.status, 404, "{}", r.text);

    // dohq: Artifactory's token API, with its scope words.
    let r = form(
        &admin,
        "POST",
        "/artifactory/api/security/token",
        "username=tim&scope=member-of-groups:builders api:*&expires_in=86400",
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let t = r.json();
    assert_eq!(t["scope"], "applied-permissions/groups:builders");
    let id = admin.get("/artifactory/api/security/token").json()["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["subject"].as_str().unwrap().ends_with("/users/tim"))
        .map(|x| x["token_id"].as_str().unwrap().to_string())
        .unwrap();
    let r = form(
        &admin,
        "POST",
        "/artifactory/api/security/token/revoke",
        &format!("token_id={id}"),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.text, "Token revoked");
    let r = form(
        &admin,
        "POST",
        "/artifactory/api/security/token/revoke",
        &format!("token_id={id}"),
    );
    assert_eq!(r.status, 404, "{}", r.text);
    // A short-lived token is not revocable, and is said to be (it was "not found"; the
    // caller must not believe it gone).
    let t = admin.post(
        "/access/api/v1/tokens",
        &json!({"username": "tim", "expires_in": 600}),
    );
    let short = t.json()["token_id"].as_str().unwrap().to_string();
    let r = form(
        &admin,
        "POST",
        "/artifactory/api/security/token/revoke",
        &format!("token_id={short}"),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("not revocable"), "{}", r.text);
}

#[test]
fn art_api_header_filters_and_the_xray_actions() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("una", "Una-password-1");
    app.create_user("ursula", "Ursula-password-1");
    // dohq's `apikey=`: the header carries a token where no Authorization is sent.
    let t = admin.post(
        "/access/api/v1/tokens",
        &json!({"username": "una", "expires_in": 86400}),
    );
    let token = t.json()["access_token"].as_str().unwrap().to_string();
    let r = app.anon().get_with(
        "/access/api/v2/users/una",
        &[("X-JFrog-Art-Api", token.as_str())],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.anon().get_with(
        "/access/api/v2/users/una",
        &[("X-JFrog-Art-Api", "not-a-token")],
    );
    assert_eq!(r.status, 401, "{}", r.text);
    // Users v2 list filters.
    let names = |q: &str| -> Vec<String> {
        admin.get(&format!("/access/api/v2/users{q}")).json()["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_string())
            .collect()
    };
    // (`anonymous`, the built-in user, contains a `u` too.)
    assert_eq!(names("?username=U"), vec!["anonymous", "una", "ursula"]);
    assert_eq!(names("?onlyAdmins=true"), vec!["admin"]);
    assert_eq!(names("?status=enabled&username=urs"), vec!["ursula"]);
    assert_eq!(admin.get("/access/api/v2/users?status=sleepy").status, 400);
    // distribute / managedXrayMeta in all three formats.
    let r = admin.put(
        "/artifactory/api/security/permissions/x1",
        &json!({"repositories": ["r1"], "principals": {"users": {"una": ["r", "x", "mxm"]}}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let v2 = admin
        .get("/artifactory/api/v2/security/permissions/x1")
        .json();
    assert_eq!(
        v2["repo"]["actions"]["users"]["una"],
        json!(["read", "distribute", "managedXrayMeta"])
    );
    let a = admin.get("/access/api/v2/permissions/x1").json();
    assert_eq!(
        a["resources"]["artifact"]["actions"]["users"]["una"],
        json!(["READ", "DISTRIBUTE", "MANAGED_XRAY_METADATA"])
    );
    assert_eq!(
        admin.get("/artifactory/api/security/permissions/x1").json()["principals"]["users"]["una"],
        json!(["r", "x", "mxm"])
    );
}

#[test]
fn a_repository_status_and_a_broadcast_to_one_named_target() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.put(
        "/artifactory/api/repositories/p-dev",
        &json!({"rclass": "local", "environments": ["DEV"]}),
    );
    assert!(r.status < 300, "{}", r.text);
    for key in ["pone", "ptwo"] {
        let r = admin.post(
            "/access/api/v1/projects",
            &json!({"project_key": key, "display_name": key}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let status = |app: &TestApp| {
        app.admin()
            .get("/access/api/v1/projects/_/repositories/p-dev")
            .json()
    };
    assert_eq!(status(&app)["assigned_to"], json!(null));
    assert!(
        admin
            .put(
                "/access/api/v1/projects/_/attach/repositories/p-dev/pone",
                &json!({})
            )
            .status
            < 300
    );
    assert!(
        admin
            .put(
                "/access/api/v1/projects/_/share/repositories/p-dev/ptwo",
                &json!({})
            )
            .status
            < 300
    );
    let s = status(&app);
    assert_eq!(s["resource_name"], "p-dev");
    assert_eq!(s["assigned_to"], "pone");
    assert_eq!(s["shared_with_projects"], json!(["ptwo"]));
    assert_eq!(s["environments"], json!(["DEV"]));
    assert_eq!(
        admin
            .get("/access/api/v1/projects/_/repositories/nope")
            .status,
        404
    );

    // py-jfrog-client names the target in the broadcast path: queued (202).
    let r = admin.post(
        "/access/api/v1/system/federation",
        &json!({"name": "far", "url": "http://127.0.0.1:9/access/"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.put(
        "/access/api/v1/system/federation/far/full_broadcast",
        &json!({}),
    );
    assert_eq!(r.status, 202, "{}", r.text);
    let r = admin.put(
        "/access/api/v1/system/federation/nobody/full_broadcast",
        &json!({}),
    );
    assert_eq!(r.status, 404, "{}", r.text);
}

#[test]
fn global_roles_are_held_in_any_project_and_decide() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("gwen", "Gwen-password-1");
    let r = admin.put(
        "/artifactory/api/repositories/g-dev",
        &json!({"rclass": "local", "environments": ["DEV"]}),
    );
    assert!(r.status < 300, "{}", r.text);
    let r = admin.post(
        "/access/api/v1/projects",
        &json!({"project_key": "gp", "display_name": "G P"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(
        admin
            .put(
                "/access/api/v1/projects/_/attach/repositories/g-dev/gp",
                &json!({})
            )
            .status
            < 300
    );
    // py-jfrog-client's create.
    let r = admin.post(
        "/access/api/v1/roles",
        &json!({"name": "ci-auditor", "description": "global", "type": "CUSTOM_GLOBAL",
                "environments": ["dev", "PROD"], "actions": ["READ_REPOSITORY"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["environments"], json!(["DEV", "PROD"]));
    assert_eq!(admin.post("/access/api/v1/roles", &json!({"name": "ci-auditor", "environments": ["DEV"], "actions": ["READ_REPOSITORY"]})).status, 409);
    assert_eq!(
        admin
            .post(
                "/access/api/v1/roles",
                &json!({"name": "Viewer", "environments": ["DEV"], "actions": ["READ_REPOSITORY"]})
            )
            .status,
        409
    );
    let r = admin.post("/access/api/v1/roles", &json!({"name": "x", "type": "PREDEFINED", "environments": ["DEV"], "actions": ["READ_REPOSITORY"]}));
    assert_eq!(r.status, 400, "{}", r.text);
    let r = admin.post(
        "/access/api/v1/roles",
        &json!({"name": "x", "environments": ["DEV"], "actions": ["FLY"]}),
    );
    assert!(
        r.status == 400 && r.error_message().contains("actions[0]"),
        "{}",
        r.text
    );
    let all = admin.get("/access/api/v1/roles").json();
    let kinds: Vec<(String, String)> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().into(),
                r["type"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("Project Admin".into(), "ADMIN".into())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("Viewer".into(), "PREDEFINED".into())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("ci-auditor".into(), "CUSTOM_GLOBAL".into())),
        "{kinds:?}"
    );
    assert_eq!(
        admin.get("/access/api/v1/roles/Project%20Admin").json()["type"],
        "ADMIN"
    );

    // A project gives it to a member; the decision follows it.
    assert!(!allowed(&app, "gwen", "g-dev/a.jar", "read"));
    let r = admin.put(
        "/access/api/v1/projects/gp/users/gwen",
        &json!({"roles": ["ci-auditor"]}),
    );
    assert!(r.status < 300, "{}", r.text);
    assert!(allowed(&app, "gwen", "g-dev/a.jar", "read"));
    assert!(!allowed(&app, "gwen", "g-dev/a.jar", "write"));
    let by_role = admin
        .get("/access/api/v2/projects?role_name=ci-auditor")
        .json();
    assert_eq!(
        by_role["projects"],
        json!([{"name": "G P", "projectKey": "gp"}])
    );
    assert_eq!(
        admin.get("/access/api/v2/projects?role_name=Viewer").json()["projects"],
        json!([])
    );
    // Changed: the decision follows at once.
    let r = admin.put(
        "/access/api/v1/roles/ci-auditor",
        &json!({"name": "ci-auditor", "type": "CUSTOM_GLOBAL", "environments": ["DEV"],
                "actions": ["READ_REPOSITORY", "DEPLOY_CACHE_REPOSITORY"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(allowed(&app, "gwen", "g-dev/a.jar", "write"));
    // Deleted: every member loses it.
    assert_eq!(admin.delete("/access/api/v1/roles/ci-auditor").status, 204);
    assert_eq!(admin.get("/access/api/v1/roles/ci-auditor").status, 404);
    assert!(!allowed(&app, "gwen", "g-dev/a.jar", "read"));
    assert_eq!(
        admin.get("/access/api/v1/projects/gp/users/gwen").status,
        404
    );
    assert_eq!(admin.delete("/access/api/v1/roles/Viewer").status, 400);
}

#[test]
fn an_array_is_not_an_object() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/t",
        &json!({"repo": {"repositories": ["r"], "actions": {"users": {"admin": ["read"]}}}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let seq = app.digest()["seq"].as_u64().unwrap();
    for (method, path) in [
        ("PUT", "/artifactory/api/v2/security/permissions/t"),
        ("PUT", "/access/api/v2/permissions/t"),
        ("PUT", "/artifactory/api/security/permissions/t"),
        ("POST", "/artifactory/api/security/groups/g"),
        ("PATCH", "/access/api/v2/users/admin"),
    ] {
        let r = admin.raw(
            method,
            path,
            Some("application/json"),
            Some(b"[null, null]"),
        );
        assert_eq!(r.status, 400, "{method} {path}: {}", r.text);
        assert!(
            r.error_message().contains("expected a JSON object"),
            "{}",
            r.text
        );
    }
    assert_eq!(
        app.digest()["seq"].as_u64().unwrap(),
        seq,
        "nothing written"
    );
    // A list where a list is meant still is one.
    let r = admin.send("PATCH", "/access/api/v2/groups/nope/members", &json!([]));
    assert!(r.status == 400 || r.status == 404, "{}", r.text);
}

/// A change through Artifactory's users API is one decision: a group that does not exist
/// refuses the e-mail, admin flag and password sent with it (before, those were
/// committed and the 400 came after, naming `add[0]`, a field nobody sent).
#[test]
fn an_artifactory_user_change_with_an_unknown_group_writes_nothing() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_group("devs");
    let r = admin.put(
        "/artifactory/api/security/users/victim",
        &json!({"email": "v@example.com", "password": "Victim-password-1", "groups": ["devs"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let seq = app.digest()["seq"].as_u64().unwrap();
    for method in ["POST", "PUT"] {
        let body = json!({"admin": true, "email": "new@example.com", "password": "Attacker-password-1", "groups": ["devs", "no-such-group"]});
        let path = "/artifactory/api/security/users/victim";
        let r = if method == "POST" {
            admin.post(path, &body)
        } else {
            admin.put(path, &body)
        };
        assert_eq!(r.status, 400, "{method}: {}", r.text);
        assert!(r.error_message().contains("groups[1]"), "{}", r.text);
        assert_eq!(app.digest()["seq"].as_u64().unwrap(), seq, "{method} wrote");
    }
    let user = admin.get("/access/api/v2/users/victim").json();
    assert_eq!(user["admin"], json!(false));
    assert_eq!(user["groups"], json!(["devs"]));
    assert_eq!(
        app.as_user("victim", "Attacker-password-1")
            .get("/access/api/v2/users/victim")
            .status,
        401
    );
    // Sent with a group that exists, the same change is made whole, in one commit.
    app.create_group("ops");
    let seq = app.digest()["seq"].as_u64().unwrap();
    let r = admin.post(
        "/artifactory/api/security/users/victim",
        &json!({"admin": true, "groups": ["ops"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let user = admin.get("/access/api/v2/users/victim").json();
    assert_eq!(
        (user["admin"].clone(), user["groups"].clone()),
        (json!(true), json!(["ops"]))
    );
    let events = admin
        .get(&format!("/access/api/v1/audit/events?from={}", seq + 1))
        .json();
    let rids: std::collections::BTreeSet<String> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["request_id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(rids.len(), 1, "one request, one commit: {events}");
}

/// A deleted user's or group's grants leave the permission targets with it, as events
/// of the same request: a later principal of the same name does not inherit them, and
/// `as_of` an earlier position still shows them.
#[test]
fn a_deleted_principal_takes_its_grants_with_it() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_group("readers");
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "carol", "password": "Carol-password-1", "email": "c@example.com"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.put(
        "/artifactory/api/repositories/libs",
        &json!({"rclass": "local", "packageType": "generic"}),
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/t",
        &json!({"name": "t", "repo": {"repositories": ["libs"], "actions": {
            "users": {"carol": ["read"], "admin": ["read"]}, "groups": {"readers": ["read"]}}}}),
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    let before = app.digest()["seq"].as_u64().unwrap();
    assert!(allowed(&app, "carol", "libs/a", "read"));
    assert_eq!(admin.delete("/access/api/v2/users/carol").status, 204);
    assert_eq!(admin.delete("/access/api/v2/groups/readers").status, 204);
    let t = admin
        .get("/artifactory/api/v2/security/permissions/t")
        .json();
    assert_eq!(
        t["repo"]["actions"]["users"],
        json!({"admin": ["read"]}),
        "{t}"
    );
    assert_eq!(
        t["repo"]["actions"]
            .get("groups")
            .cloned()
            .unwrap_or(json!({})),
        json!({}),
        "{t}"
    );
    // The same names again start with nothing.
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "carol", "password": "Carol-password-2", "email": "c2@example.com"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    app.create_group("readers");
    assert!(!allowed(&app, "carol", "libs/a", "read"));
    // The past is as it was.
    let then = admin
        .get(&format!(
            "/artifactory/api/v2/security/permissions/t?as_of={before}"
        ))
        .json();
    assert_eq!(
        then["repo"]["actions"]["users"]["carol"],
        json!(["read"]),
        "{then}"
    );
}

/// A target with patterns per repository (written through Access's API), read in the
/// Artifactory formats (one set of patterns a section) and sent back: each repository
/// keeps its own patterns. Before, the round trip gave every repository the first one's
/// and took access away silently; a manager's round trip was refused as a change.
#[test]
fn an_artifactory_round_trip_keeps_patterns_per_repository() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("pat", "Pat-password-1");
    app.create_user("mo", "Mo-password-1");
    let r = admin.post(
        "/access/api/v2/permissions",
        &json!({
            "name": "multi",
            "resources": {"artifact": {
                "actions": {"users": {"pat": ["READ"], "mo": ["MANAGE", "READ"]}},
                "targets": {
                    "repo-a": {"include_patterns": ["only-a/**"], "exclude_patterns": []},
                    "repo-b": {"include_patterns": ["**"], "exclude_patterns": []},
                },
            }},
        }),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let v2_path = "/artifactory/api/v2/security/permissions/multi";
    let v1_path = "/artifactory/api/security/permissions/multi";
    let check = |when: &str| {
        assert!(allowed(&app, "pat", "repo-b/any/x.jar", "read"), "{when}");
        assert!(
            allowed(&app, "pat", "repo-a/only-a/x.jar", "read"),
            "{when}"
        );
        assert!(
            !allowed(&app, "pat", "repo-a/other/x.jar", "read"),
            "{when}"
        );
    };
    check("as written");
    let v2 = admin.get(v2_path).json();
    assert_eq!(admin.put(v2_path, &v2).status, 200);
    check("after a v2 round trip");
    let v1 = admin.get(v1_path).json();
    assert_eq!(admin.put(v1_path, &v1).status, 200);
    check("after a v1 round trip");
    // A manager changing only actions, by the same round trip.
    let mut v2 = app.as_user("mo", "Mo-password-1").get(v2_path).json();
    v2["repo"]["actions"]["users"]["pat"] = json!(["read", "annotate"]);
    let r = app.as_user("mo", "Mo-password-1").put(v2_path, &v2);
    assert_eq!(r.status, 200, "{}", r.text);
    check("after a manager's round trip");
    // Patterns other than the ones shown are a change, for every repository.
    let mut v2 = admin.get(v2_path).json();
    v2["repo"]["include-patterns"] = json!(["only-a/**"]);
    v2["repo"]["exclude-patterns"] = json!(["only-a/secret/**"]);
    assert_eq!(admin.put(v2_path, &v2).status, 200);
    assert!(!allowed(&app, "pat", "repo-b/any/x.jar", "read"));
    assert!(allowed(&app, "pat", "repo-b/only-a/x.jar", "read"));
}

/// Repository keys are case-sensitive, but a new one differing from an existing key by
/// case only is refused, as Artifactory does; the existing one is still changed.
#[test]
fn a_repository_key_differing_only_by_case_is_refused() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let body = json!({"rclass": "local", "packageType": "generic"});
    let r = admin.put("/artifactory/api/repositories/Libs-release", &body);
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    let seq = app.digest()["seq"].as_u64().unwrap();
    let r = admin.put("/artifactory/api/repositories/LIBS-RELEASE", &body);
    assert!(r.status == 400 || r.status == 409, "{}", r.text);
    assert!(r.error_message().contains("Libs-release"), "{}", r.text);
    assert_eq!(app.digest()["seq"].as_u64().unwrap(), seq);
    let r = admin.put("/artifactory/api/repositories/Libs-release", &body);
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
}

/// Access's v2 user create: a user read elsewhere and sent back `disabled` is created
/// disabled (it was a 400), and a realm other than `internal` — "the parameter realm
/// will be internal" — is named as ignored (it was ignored silently).
#[test]
fn a_v2_user_may_be_created_disabled_and_a_realm_is_named_as_ignored() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "dora", "password": "Dora-password-1", "email": "d@example.com",
                "status": "disabled", "realm": "saml"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["status"], json!("disabled"));
    assert_eq!(r.json()["realm"], json!("internal"));
    assert_eq!(r.header("x-gatehouse-ignored-fields"), Some("realm"));
    assert_eq!(
        app.as_user("dora", "Dora-password-1")
            .get("/access/api/v2/users/dora")
            .status,
        401
    );
    let r = admin.patch(
        "/access/api/v2/users/dora",
        &json!({"realm": "internal", "status": "enabled"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-gatehouse-ignored-fields"), None);
    let r = admin.patch("/access/api/v2/users/dora", &json!({"realm": "ldap"}));
    assert_eq!(r.header("x-gatehouse-ignored-fields"), Some("realm"));
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "eli", "password": "Eli-password-1", "status": "locked"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
}

/// The repository list shows a non-admin only the repositories it is granted something
/// in (by name, `ANY`, `ANY LOCAL`/`ANY REMOTE`, or a project role), as Artifactory's
/// does; every key was listed to every signed-in user. Admins see all.
#[test]
fn a_non_admin_lists_only_the_repositories_it_may_use() {
    let app = TestApp::spawn();
    let admin = app.admin();
    for (key, class) in [
        ("libs", "local"),
        ("secret-internal", "local"),
        ("central", "remote"),
    ] {
        let r = admin.put(
            &format!("/artifactory/api/repositories/{key}"),
            &json!({"rclass": class, "packageType": "generic"}),
        );
        assert!(r.status == 200 || r.status == 201, "{}", r.text);
    }
    app.create_user("bob", "Bob-password-1");
    app.create_user("alice", "Alice-password-1");
    app.create_user("rita", "Rita-password-1");
    for (name, repos, user) in [
        ("a", json!(["libs"]), "alice"),
        ("r", json!(["ANY REMOTE"]), "rita"),
    ] {
        let r = admin.put(
            &format!("/artifactory/api/v2/security/permissions/{name}"),
            &json!({"repo": {"repositories": repos, "actions": {"users": {user: ["read"]}}}}),
        );
        assert!(r.status == 200 || r.status == 201, "{}", r.text);
    }
    let keys = |c: &crate::helpers::Client| -> Vec<String> {
        let r = c.get("/artifactory/api/repositories");
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["key"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(keys(&admin).len(), 3);
    assert!(keys(&app.as_user("bob", "Bob-password-1")).is_empty());
    assert_eq!(
        keys(&app.as_user("alice", "Alice-password-1")),
        vec!["libs"]
    );
    assert_eq!(
        keys(&app.as_user("rita", "Rita-password-1")),
        vec!["central"]
    );
    let r = app
        .as_user("bob", "Bob-password-1")
        .get("/artifactory/api/repositories/secret-internal");
    assert_eq!(r.status, 404, "{}", r.text);
}

/// What the JFrog client libraries ask of the repository and system APIs: Artifactory's
/// update (`POST …/repositories/{key}`, a 405 before), list items with `type` and `url`
/// (their parsers failed without them), the list's filters (ignored before), and the
/// probes under `/artifactory` (404 before).
#[test]
fn repositories_and_probes_as_the_client_libraries_ask() {
    let app = TestApp::spawn();
    let admin = app.admin();
    for (key, rclass, package) in [
        ("libs-local", "local", "maven"),
        ("npm-remote", "remote", "npm"),
    ] {
        let r = admin.put(
            &format!("/artifactory/api/repositories/{key}"),
            &json!({"rclass": rclass, "packageType": package, "description": "first"}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    }
    // Update: the fields given change, the others stay; the class does not change.
    let r = admin.post(
        "/artifactory/api/repositories/libs-local",
        &json!({"key": "libs-local", "description": "changed"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let got = admin.get("/artifactory/api/repositories/libs-local").json();
    assert_eq!(
        (got["description"].clone(), got["packageType"].clone()),
        (json!("changed"), json!("maven")),
        "{got}"
    );
    let r = admin.post(
        "/artifactory/api/repositories/libs-local",
        &json!({"rclass": "remote"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        admin
            .post("/artifactory/api/repositories/nope", &json!({}))
            .status,
        404
    );
    // The list as Artifactory's, and its filters.
    let list = admin.get("/artifactory/api/repositories").json();
    let first = &list.as_array().unwrap()[0];
    assert_eq!(first["type"], "LOCAL", "{list}");
    assert!(
        first["url"]
            .as_str()
            .unwrap()
            .ends_with("/artifactory/libs-local"),
        "{list}"
    );
    let keys = |q: &str| -> Vec<String> {
        let r = admin.get(&format!("/artifactory/api/repositories?{q}"));
        assert_eq!(r.status, 200, "{q}: {}", r.text);
        r.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["key"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(keys("type=remote"), ["npm-remote"]);
    assert_eq!(keys("type=LOCAL"), ["libs-local"]);
    assert_eq!(keys("packageType=NPM"), ["npm-remote"]);
    assert_eq!(keys("type=local&packageType=npm"), Vec::<String>::new());
    assert_eq!(
        admin.get("/artifactory/api/repositories?type=odd").status,
        400
    );
    // Probes under Artifactory's base.
    let anon = app.anon();
    assert_eq!(anon.get("/artifactory/api/system/ping").text, "OK");
    assert_eq!(anon.get("/artifactory/api/system/version").status, 200);
    assert_eq!(
        anon.get("/artifactory/api/v1/system/readiness").json()["code"],
        "OK"
    );
    assert_eq!(
        anon.get("/artifactory/api/v1/system/liveness").json()["code"],
        "OK"
    );
}

/// The user and group lists' filters, as the client libraries send them: they were
/// ignored (a filtered query answered everyone), and admins through a group were not
/// admins to `onlyAdmins`.
#[test]
fn user_and_group_list_filters_as_the_client_libraries_send_them() {
    let app = TestApp::spawn();
    let admin = app.admin();
    for name in ["amy", "bea", "cal"] {
        app.create_user(name, "Password-123");
    }
    let r = admin.post(
        "/access/api/v2/groups",
        &json!({"name": "admins3", "admin_privileges": true, "members": ["cal"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    app.create_group("ga1");
    app.create_group("gb2");
    let names = |path: &str, list: &str, field: &str| -> Vec<String> {
        let r = admin.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        r.json()[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u[field].as_str().unwrap().to_string())
            .collect()
    };
    let users = |q: &str| names(&format!("/access/api/v2/users?{q}"), "users", "username");
    assert!(
        users("onlyAdmins=True").contains(&"cal".to_string()),
        "an admin through a group"
    );
    assert_eq!(users("descendingOrder=true&limit=2"), ["cal", "bea"]);
    let r = admin
        .get("/access/api/v2/users?descendingOrder=true&limit=2")
        .json();
    let cursor = r["cursor"].as_str().unwrap().to_string();
    assert_eq!(
        users(&format!("descendingOrder=true&limit=2&cursor={cursor}")),
        ["anonymous", "amy"]
    );
    // A project's members, by role.
    let r = admin.post(
        "/access/api/v1/projects",
        &json!({"project_key": "web", "display_name": "Web"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    admin.put(
        "/access/api/v1/projects/web/users/amy",
        &json!({"roles": ["Developer"]}),
    );
    admin.put(
        "/access/api/v1/projects/web/users/bea",
        &json!({"roles": ["Viewer"]}),
    );
    assert_eq!(users("projectKey=web"), ["amy", "bea"]);
    assert_eq!(users("projectKey=web&role=developer"), ["amy"]);
    assert_eq!(
        admin.get("/access/api/v2/users?projectKey=nope").status,
        404
    );
    assert_eq!(admin.get("/access/api/v2/users?role=Developer").status, 400);
    assert_eq!(
        admin.get("/access/api/v2/users?resourceType=repo").status,
        400
    );
    let user = admin.get("/access/api/v2/users/cal").json();
    assert_eq!(
        (user["admin"].clone(), user["effective_admin"].clone()),
        (json!(false), json!(true)),
        "{user}"
    );
    // The answer to an update carries it too (JFrog's since 7.66), as a create's does.
    let user = admin
        .patch(
            "/access/api/v2/users/cal",
            &json!({"disable_ui_access": true}),
        )
        .json();
    assert_eq!(user["effective_admin"], json!(true), "{user}");
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "newbie", "email": "newbie@example.com", "password": "Password-123!"}),
    );
    assert_eq!(r.json()["effective_admin"], json!(false), "{}", r.text);
    let groups = |q: &str| {
        names(
            &format!("/access/api/v2/groups?{q}"),
            "groups",
            "group_name",
        )
    };
    assert_eq!(groups("groupName=GA"), ["ga1"]);
    assert_eq!(groups("descendingOrder=true"), ["gb2", "ga1", "admins3"]);
    // A project's groups, by role, as for users (they were ignored: every group).
    for (group, role) in [("ga1", "Viewer"), ("gb2", "Developer")] {
        let r = admin.put(
            &format!("/access/api/v1/projects/web/groups/{group}"),
            &json!({"roles": [role]}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(groups("projectKey=web"), ["ga1", "gb2"]);
    assert_eq!(groups("projectKey=web&role=viewer"), ["ga1"]);
    assert_eq!(
        admin.get("/access/api/v2/groups?projectKey=nope").status,
        404
    );
    assert_eq!(admin.get("/access/api/v2/groups?role=Viewer").status, 400);
    assert_eq!(
        admin
            .get("/access/api/v2/groups?resourceType=repository&resourceName=x")
            .status,
        400
    );
}

/// From a review of the Artifactory security API: seed 004's own samples write `add` and
/// `members` as a string holding the list (refused with 400); Artifactory's `externalId`
/// of a group was dropped; `realm: internal` left an LDAP group's realm as it was; an
/// e-mail of "" did not clear it; a non-ASCII upper-case name in the body did not match
/// the same name in the path.
#[test]
fn artifactory_security_fields_mean_what_they_mean_in_every_api() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("user1", "password-1");
    app.create_user("user2", "password-1");
    app.create_group("team");
    let r = admin.patch(
        "/access/api/v2/groups/team/members",
        &json!({"add": "[\"user1\", \"user2\"]"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["members"], json!(["user1", "user2"]), "{}", r.text);
    let r = admin.patch(
        "/access/api/v2/groups/team",
        &json!({"members": "[\"user2\"]"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["members"], json!(["user2"]), "{}", r.text);
    // externalId, and realm internal taking an LDAP group back.
    let r = admin.put(
        "/artifactory/api/security/groups/ext",
        &json!({"externalId": "123", "description": "d", "realm": "ldap"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let g = admin.get("/access/api/v2/groups/ext").json();
    assert_eq!(g["external_id"], "123", "{g}");
    assert_eq!(g["realm"], "ldap", "{g}");
    // Artifactory's read shows it too (one value in every API: it was never shown).
    let a = admin.get("/artifactory/api/security/groups/ext").json();
    assert_eq!(a["externalId"], "123", "{a}");
    let r = admin.post(
        "/artifactory/api/security/groups/ext",
        &json!({"realm": "internal"}),
    );
    assert!(r.status < 300, "{}", r.text);
    assert_eq!(
        admin.get("/access/api/v2/groups/ext").json()["realm"],
        "internal"
    );
    // "" clears the e-mail, as in the v2 API.
    let r = admin.put(
        "/artifactory/api/security/users/bob",
        &json!({"password": "Bob-pass-1234", "email": "bob@example.com"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.post("/artifactory/api/security/users/bob", &json!({"email": ""}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        admin.get("/access/api/v2/users/bob").json()["email"],
        json!(null)
    );
    // A name in the body is the name in the path in any case.
    let r = admin.put(
        "/artifactory/api/security/users/%C3%89MILE",
        &json!({"name": "ÉMILE", "password": "Long-pass-123", "email": "e@example.com"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.post(
        "/artifactory/api/security/users/%C3%A9mile",
        &json!({"name": "Émile", "email": "e2@example.com"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

/// What the client libraries call beyond the conformance script: API keys and encrypted
/// passwords are said to be absent, with what to use instead (not "no such endpoint");
/// py-jfrog-client's `unregister_pairing_token` (DELETE with `base_url`) ends a
/// pairing; its `create_token`, which sends an empty body, is told so.
#[test]
fn what_the_client_libraries_call_besides() {
    let a = TestApp::spawn();
    let b = TestApp::spawn();
    let admin = a.admin();
    for (method, path) in [
        ("GET", "/artifactory/api/security/apiKey"),
        ("POST", "/artifactory/api/security/apiKey"),
        ("DELETE", "/artifactory/api/security/apiKey/bob"),
        ("GET", "/artifactory/api/security/encryptedPassword"),
    ] {
        let r = admin.raw(method, path, None, None);
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text);
        assert!(r.text.contains("reference token"), "{}", r.text);
    }
    // An empty JSON body: a token for the caller, and a notice saying so.
    let r = admin.raw(
        "POST",
        "/access/api/v1/tokens",
        Some("application/json"),
        Some(b""),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.header("x-gatehouse-notice")
            .is_some_and(|n| n.contains("empty body")),
        "{:?}",
        r.header("x-gatehouse-notice")
    );
    let r = admin.post("/access/api/v1/tokens", &json!({"expires_in": 600}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.header("x-gatehouse-notice").is_none());

    // Pair B with A (A issues), then unregister B at A by its base URL.
    let r = admin.post_empty("/artifactory/api/v1/service_trust/pairing/federated-repo/r");
    assert_eq!(r.status, 200, "{}", r.text);
    let r = b.admin().put(
        "/artifactory/api/v1/service_trust/pairing/federated-repo/r",
        &json!({"pairing_token": r.json()["pairing_token"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let listed = admin
        .get("/artifactory/api/v1/service_trust/pairings/federated-repo/r")
        .json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    let r = admin.raw(
        "DELETE",
        "/artifactory/api/v1/service_trust/pairing/federated-repo/r",
        Some("application/json"),
        Some(
            json!({"base_url": "http://elsewhere.example"})
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(r.status, 404, "{}", r.text);
    let r = admin.raw(
        "DELETE",
        "/artifactory/api/v1/service_trust/pairing/federated-repo/r",
        Some("application/json"),
        Some(
            json!({"base_url": format!("{}/", b.base)})
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        admin
            .get("/artifactory/api/v1/service_trust/pairings/federated-repo/r")
            .json(),
        json!([])
    );
}

/// Ill-formed requests found by a hostile-input review: a query parameter given twice
/// (the first was taken, silently); a body name that differs from a case-sensitive
/// group's or permission target's name in the path only by case (it changed the one in
/// the path); user names still match ignoring case.
#[test]
fn twice_given_parameters_and_names_by_case() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.get("/access/api/v2/users?limit=1&limit=abc");
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.error_message().contains("more than once"), "{}", r.text);
    assert_eq!(admin.get("/access/api/v2/users?limit=1").status, 200);
    for name in ["Team", "team"] {
        let r = admin.post("/access/api/v2/groups", &json!({"name": name}));
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let r = admin.put(
        "/artifactory/api/security/groups/Team",
        &json!({"name": "team", "description": "meant for team"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = admin.put(
        "/artifactory/api/security/permissions/PermX",
        &json!({"name": "permx", "repositories": ["ANY"], "principals": {"users": {"admin": ["r"]}}}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = admin.put(
        "/artifactory/api/security/users/alice",
        &json!({"name": "Alice", "email": "alice@example.com", "password": "Alice-password-1"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
}

/// A form body whose percent-encoded bytes are not UTF-8 is refused, naming the field
/// (it was written to the log as U+FFFD, where the same bytes in JSON are a 400).
#[test]
fn form_values_that_are_not_utf8_are_refused() {
    let app = TestApp::spawn();
    let admin = app.admin();
    for body in [
        "expires_in=60&description=%ffbad",
        "expires_in=60&description=caf%E9",
    ] {
        let r = admin.raw(
            "POST",
            "/access/api/v1/tokens",
            Some("application/x-www-form-urlencoded"),
            Some(body.as_bytes()),
        );
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.error_message().contains("description"), "{}", r.text);
    }
    let r = admin.raw(
        "POST",
        "/access/api/v1/tokens",
        Some("application/x-www-form-urlencoded"),
        Some(b"expires_in=60&description=caf%C3%A9"),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // A U+FFFD encoded as UTF-8 is a character like any other.
    let r = admin.raw(
        "POST",
        "/access/api/v1/tokens",
        Some("application/x-www-form-urlencoded"),
        Some(b"expires_in=60&description=bad%20%EF%BF%BD%20char"),
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

/// A remote repository's `url` and a virtual one's `repositories` are kept and read back
/// (they were dropped, and pyartifactory's `create_repo(RemoteRepository(...))` failed
/// reading the repository back: its model requires `url`). A PUT replaces them, a POST
/// keeps what it leaves out; given for another class they are ignored; a URL with
/// credentials, a bad member key or the repository itself are 400s naming the field; a
/// deleted repository leaves the virtual ones that listed it.
#[test]
fn a_remote_url_and_a_virtual_repositorys_members_are_kept() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let put = |key: &str, body: serde_json::Value| {
        admin.put(&format!("/artifactory/api/repositories/{key}"), &body)
    };
    let r = put(
        "central",
        json!({"rclass": "remote", "packageType": "maven",
               "url": "https://repo1.maven.org/maven2/"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["url"], json!("https://repo1.maven.org/maven2/"));
    assert_eq!(r.header("x-gatehouse-ignored-fields"), None);
    assert_eq!(put("libs", json!({"rclass": "local"})).status, 201);
    let r = put(
        "maven",
        json!({"rclass": "virtual", "repositories": ["libs", "central", "libs"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let got = admin.get("/artifactory/api/repositories/maven").json();
    assert_eq!(got["repositories"], json!(["libs", "central"]));
    assert!(got.get("url").is_none(), "{got}");
    let got = admin.get("/artifactory/api/repositories/central").json();
    assert_eq!(got["url"], json!("https://repo1.maven.org/maven2/"));
    assert!(got.get("repositories").is_none(), "{got}");

    // Schemes are case-insensitive.
    let r = admin.post(
        "/artifactory/api/repositories/central",
        &json!({"url": "HTTPS://repo1.maven.org/maven2/"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["url"], json!("https://repo1.maven.org/maven2/"));
    let r = admin.post(
        "/artifactory/api/repositories/central",
        &json!({"url": "https://repo1.maven.org/maven2/"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // A POST changes what it gives and keeps the rest.
    let r = admin.post(
        "/artifactory/api/repositories/central",
        &json!({"description": "Maven Central"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["url"], json!("https://repo1.maven.org/maven2/"));
    let r = admin.post(
        "/artifactory/api/repositories/maven",
        &json!({"repositories": ["central"]}),
    );
    assert_eq!(r.json()["repositories"], json!(["central"]));
    // A PUT is the whole configuration.
    let r = put("central", json!({"rclass": "remote"}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json().get("url").is_none(), "{}", r.text);
    // Another class's fields are ignored, not stored.
    let r = put(
        "libs",
        json!({"rclass": "local", "url": "https://example.com/"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json().get("url").is_none(), "{}", r.text);
    assert_eq!(r.header("x-gatehouse-ignored-fields"), Some("url"));
    let r = put(
        "central",
        json!({"rclass": "remote", "repositories": ["libs"]}),
    );
    assert_eq!(r.header("x-gatehouse-ignored-fields"), Some("repositories"));

    // Bad values are 400s naming the field, and nothing is written.
    let seq = app.digest()["seq"].as_u64().unwrap();
    for (key, body, field) in [
        (
            "central",
            json!({"rclass": "remote", "url": "ftp://example.com/"}),
            "url",
        ),
        (
            "central",
            json!({"rclass": "remote", "url": "https://bob:secret@example.com/"}),
            "url",
        ),
        ("central", json!({"rclass": "remote", "url": 7}), "url"),
        (
            "maven",
            json!({"rclass": "virtual", "repositories": ["no/pe"]}),
            "repositories[0]",
        ),
        (
            "maven",
            json!({"rclass": "virtual", "repositories": ["libs", "maven"]}),
            "repositories[1]",
        ),
    ] {
        let r = put(key, body.clone());
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.error_message().contains(field), "{body}: {}", r.text);
    }
    assert_eq!(app.digest()["seq"].as_u64().unwrap(), seq);

    // A deleted repository leaves the virtual repositories that listed it.
    let r = put(
        "maven",
        json!({"rclass": "virtual", "repositories": ["libs", "central"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        admin.delete("/artifactory/api/repositories/libs").status,
        204
    );
    let got = admin.get("/artifactory/api/repositories/maven").json();
    assert_eq!(got["repositories"], json!(["central"]));
}

/// A permission target (v2, v1, one section), a repository, a webhook subscription (its
/// secret given again) and a federation target, each sent back as it was read: nothing
/// is written (each wrote an event, fired webhooks and added an audit entry every time
/// a client read-modify-wrote it, or a tool re-applied its configuration).
#[test]
fn entities_saved_again_as_read_write_nothing() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("bob", "Bob-password-1");
    let head = || admin.get("/access/api/v1/system/state/digest").json()["seq"].clone();
    let v2 = "/artifactory/api/v2/security/permissions/devs";
    let r = admin.post(
        v2,
        &json!({"name": "devs", "repo": {"repositories": ["libs", "docs"],
                "include-patterns": ["org/**"], "exclude-patterns": [],
                "actions": {"users": {"bob": ["read", "write"]}}}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.put(
        "/artifactory/api/repositories/libs",
        &json!({"rclass": "local", "packageType": "maven", "description": "Libraries"}),
    );
    assert!(r.status < 300, "{}", r.text);
    let r = admin.post(
        "/event/api/v1/subscriptions",
        &json!({"key": "hook", "enabled": true,
                "event_filter": {"domain": "user", "event_types": ["created"]},
                "handlers": [{"handler_type": "webhook", "url": "http://127.0.0.1:9/hook",
                              "secret": "tell-no-one-123"}]}),
    );
    assert!(r.status < 300, "{}", r.text);
    let r = admin.post(
        "/access/api/v1/system/federation",
        &json!({"name": "peer", "url": "http://127.0.0.1:9", "entities": ["users"],
                "active": true}),
    );
    assert!(r.status < 300, "{}", r.text);
    // Written through JFrog's Access permissions API with no patterns (a read shows
    // `**`) and actions in another order than a v1 read shows them.
    let access = "/access/api/v2/permissions/bare";
    let r = admin.put(
        access,
        &json!({"resources": {"artifact": {"actions": {"users": {"bob": ["WRITE", "READ"]}},
                                           "targets": {"libs": {}}}}}),
    );
    assert!(r.status < 300, "{}", r.text);
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/dflt",
        &json!({"name": "dflt", "repo": {"repositories": ["libs"], "exclude-patterns": [""],
                "actions": {"users": {"bob": ["read"]}}}}),
    );
    assert!(r.status < 300, "{}", r.text);
    let before = head();
    for path in [
        access.to_string(),
        "/artifactory/api/v2/security/permissions/bare".into(),
        "/artifactory/api/security/permissions/bare".into(),
        "/artifactory/api/security/permissions/dflt".into(),
        "/artifactory/api/v2/security/permissions/dflt".into(),
        "/access/api/v2/permissions/dflt".into(),
    ] {
        let read = admin.get(&path).json();
        let r = admin.put(&path, &read);
        assert!(r.status < 300, "{path}: {}", r.text);
        assert_eq!(head(), before, "{path}: {read}");
    }

    let read = admin.get(v2).json();
    let r = admin.put(v2, &read);
    assert!(r.status < 300, "{}", r.text);
    let v1 = "/artifactory/api/security/permissions/devs";
    let read = admin.get(v1).json();
    let r = admin.put(v1, &read);
    assert!(r.status < 300, "{}", r.text);
    let section = "/access/api/v2/permissions/devs/artifact";
    let read = admin.get(section).json();
    let r = admin.put(section, &read);
    assert!(r.status < 300, "{}", r.text);
    let repo = "/artifactory/api/repositories/libs";
    let read = admin.get(repo).json();
    let r = admin.put(repo, &read);
    assert!(r.status < 300, "{}", r.text);
    let mut read = admin.get("/event/api/v1/subscriptions/hook").json();
    read["handlers"][0]["secret"] = json!("tell-no-one-123");
    let r = admin.put("/event/api/v1/subscriptions/hook", &read);
    assert!(r.status < 300, "{}", r.text);
    let read = admin.get("/access/api/v1/system/federation/peer").json();
    let r = admin.patch("/access/api/v1/system/federation/peer", &read);
    assert!(r.status < 300, "{}", r.text);
    assert_eq!(
        head(),
        before,
        "nothing written: {}",
        admin
            .get(&format!("/access/api/v1/audit/events?from={before}"))
            .text
    );

    // A real change still writes.
    let mut read = admin.get(v2).json();
    read["repo"]["actions"]["users"]["bob"] = json!(["read"]);
    let r = admin.put(v2, &read);
    assert!(r.status < 300, "{}", r.text);
    assert_ne!(head(), before);
    let before = head();
    let mut read = admin.get("/event/api/v1/subscriptions/hook").json();
    read["handlers"][0]["secret"] = json!("a-new-secret-456");
    let r = admin.put("/event/api/v1/subscriptions/hook", &read);
    assert!(r.status < 300, "{}", r.text);
    assert_ne!(head(), before, "a new secret is a change");
}

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

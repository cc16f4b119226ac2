//! Permission targets and the authorize decision (issue 4, first part).

use crate::helpers::TestApp;
use crate::tokens::{create_token, urlencode};
use serde_json::json;

fn target() -> serde_json::Value {
    json!({
        "name": "java-developers",
        "repo": {
            "include-patterns": ["org/acme/**"],
            "exclude-patterns": ["**/*-SNAPSHOT/**"],
            "repositories": ["libs-release"],
            "actions": {"users": {"Bob": ["read", "write"]}, "groups": {"readers": ["read"]}}
        }
    })
}

#[test]
fn permission_targets_crud_in_the_v2_format() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let path = "/artifactory/api/v2/security/permissions/java-developers";
    let r = admin.post(path, &target());
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.header("x-gatehouse-seq").is_some());
    let t = r.json();
    assert_eq!(t["repo"]["include-patterns"], json!(["org/acme/**"]));
    assert_eq!(
        t["repo"]["actions"]["users"]["bob"],
        json!(["read", "write"]),
        "user names are stored lower-case"
    );
    assert_eq!(admin.post(path, &target()).status, 409);
    assert_eq!(admin.get(path).json(), t);
    let list = admin.get("/artifactory/api/v2/security/permissions").json();
    assert_eq!(list[0]["name"], "java-developers");
    let mut changed = target();
    changed["repo"]["repositories"] = json!(["ANY"]);
    assert_eq!(admin.put(path, &changed).status, 200, "replace");
    assert_eq!(
        admin.get(path).json()["repo"]["repositories"],
        json!(["ANY"])
    );
    assert_eq!(
        admin
            .put(
                "/artifactory/api/v2/security/permissions/new-one",
                &json!({"repo": {"repositories": ["x"]}})
            )
            .status,
        201
    );
    for (body, needle) in [
        (
            json!({"repo": {"actions": {"users": {"bob": ["fly"]}}}}),
            "repo.actions.users.bob",
        ),
        (
            json!({"repo": {"include-patterns": ["a/[b"]}}),
            "repo.include-patterns[0]",
        ),
        (json!({"name": "other"}), "`name`"),
        (
            json!({"repo": {"repositories": ["a/b"]}}),
            "repo.repositories[0]",
        ),
        (json!({"repo": {"colour": 1}}), "colour"),
    ] {
        let r = admin.put(path, &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.error_message().contains(needle), "{body}: {}", r.text);
    }
    assert_eq!(admin.delete(path).status, 204);
    assert_eq!(admin.get(path).status, 404);
    assert_eq!(admin.delete(path).status, 404);
    app.create_user("norm", "password-1");
    assert_eq!(
        app.as_user("norm", "password-1")
            .get("/artifactory/api/v2/security/permissions")
            .status,
        403
    );
}

#[test]
fn the_decision_follows_grants_memberships_and_token_scopes_at_once() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("bob", "password-1");
    app.create_user("cara", "password-1");
    app.create_group("readers");
    app.create_group("others");
    assert_eq!(
        admin
            .post(
                "/artifactory/api/v2/security/permissions/java-developers",
                &target()
            )
            .status,
        201
    );
    let ask = |who: &crate::helpers::Client, resource: &str, action: &str| {
        let r = who.get(&format!(
            "/access/api/v1/authorize?resource={}&action={action}",
            urlencode(resource)
        ));
        (r.status, r.json())
    };
    let bob = app.as_user("bob", "password-1");
    let (status, body) = ask(&bob, "libs-release/org/acme/app/1.0/app.jar", "write");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["allowed"], true);
    assert!(body["via"].as_str().unwrap().contains("java-developers"));
    assert_eq!(
        ask(&bob, "libs-release/org/acme/app/1.0/app.jar", "delete").0,
        403
    );
    assert_eq!(
        ask(
            &bob,
            "libs-release/org/acme/app/1.0-SNAPSHOT/app.jar",
            "read"
        )
        .0,
        403,
        "excluded"
    );
    assert_eq!(
        ask(&bob, "libs-snapshot/org/acme/app.jar", "read").0,
        403,
        "another repository"
    );
    let (status, body) = ask(&bob, "libs-release/other/x.jar", "read");
    assert_eq!((status, body["allowed"].clone()), (403, json!(false)));
    // Group grants follow membership on the very next request.
    let cara = app.as_user("cara", "password-1");
    assert_eq!(ask(&cara, "libs-release/org/acme/a.jar", "read").0, 403);
    admin.patch(
        "/access/api/v2/groups/readers/members",
        &json!({"add": ["cara"]}),
    );
    assert_eq!(ask(&cara, "libs-release/org/acme/a.jar", "read").0, 200);
    admin.patch(
        "/access/api/v2/groups/readers/members",
        &json!({"remove": ["cara"]}),
    );
    assert_eq!(ask(&cara, "libs-release/org/acme/a.jar", "read").0, 403);
    // Token scopes: groups:<g> grants exactly that group's permissions.
    let t = create_token(
        &admin,
        json!({"username": "cara", "scope": "applied-permissions/groups:readers", "expires_in": 600}),
    );
    let cara_token = app
        .anon()
        .with_header_auth(&format!("Bearer {}", t["access_token"].as_str().unwrap()));
    assert_eq!(
        ask(&cara_token, "libs-release/org/acme/a.jar", "read").0,
        200
    );
    let t = create_token(
        &admin,
        json!({"username": "bob", "scope": "applied-permissions/groups:others", "expires_in": 600}),
    );
    let bob_groups_only = app
        .anon()
        .with_header_auth(&format!("Bearer {}", t["access_token"].as_str().unwrap()));
    assert_eq!(
        ask(&bob_groups_only, "libs-release/org/acme/a.jar", "read").0,
        403,
        "bob's own grants are not in that scope"
    );
    // Admins: everything, and may ask for someone else.
    assert_eq!(ask(&admin, "anything/at/all", "manage").1["via"], "admin");
    let r = admin
        .get("/access/api/v1/authorize?resource=libs-release/org/acme/a.jar&action=write&user=bob");
    assert_eq!((r.status, r.json()["subject"].clone()), (200, json!("bob")));
    assert_eq!(
        bob.get("/access/api/v1/authorize?resource=libs-release/a&user=cara")
            .status,
        403
    );
    assert_eq!(
        admin
            .get("/access/api/v1/authorize?resource=a/b&user=ghost")
            .status,
        404
    );
    // Bad questions and bad credentials.
    assert_eq!(ask(&bob, "libs-release/a", "fly").0, 400);
    assert_eq!(
        app.anon()
            .get("/access/api/v1/authorize?resource=libs-release/a")
            .status,
        401
    );
    assert_eq!(
        app.as_user("bob", "wrong-pass")
            .get("/access/api/v1/authorize?resource=libs-release/a")
            .status,
        401
    );
    // The effective listing explains the grants.
    let eff = bob.get("/access/api/v1/authorize/effective").json();
    assert_eq!(
        eff["permissions"][0]["permission_target"],
        "java-developers"
    );
    assert_eq!(eff["permissions"][0]["grants"][0]["via"], "user `bob`");
    assert_eq!(
        eff["permissions"][0]["grants"][0]["actions"],
        json!(["read", "write"])
    );
    let r = admin.get("/access/api/v1/authorize/effective?user=cara");
    assert_eq!(r.json()["permissions"], json!([]), "cara left `readers`");
    assert_eq!(
        bob.get("/access/api/v1/authorize/effective?user=cara")
            .status,
        403
    );
    // Revoking the grant takes effect at once.
    admin.delete("/artifactory/api/v2/security/permissions/java-developers");
    assert_eq!(
        ask(&bob, "libs-release/org/acme/app/1.0/app.jar", "write").0,
        403
    );
}

#[test]
fn nginx_style_requests_and_signed_urls() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("bob", "password-1");
    admin.post(
        "/artifactory/api/v2/security/permissions/java-developers",
        &target(),
    );
    let bob = app.as_user("bob", "password-1");
    let nginx = |client: &crate::helpers::Client, method: &str, uri: &str| {
        let agent = ureq::agent();
        let mut req = agent
            .get(&format!("{}/access/api/v1/authorize", app.base))
            .set("X-Original-URI", uri)
            .set("X-Original-Method", method);
        if let Some(auth) = client_auth(client) {
            req = req.set("Authorization", &auth);
        }
        match req.call() {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(code, _)) => code,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(
        nginx(&bob, "GET", "/artifactory/libs-release/org/acme/a.jar"),
        200
    );
    assert_eq!(
        nginx(&bob, "PUT", "/artifactory/libs-release/org/acme/a.jar"),
        200,
        "bob may write"
    );
    assert_eq!(
        nginx(&bob, "DELETE", "/artifactory/libs-release/org/acme/a.jar"),
        403
    );
    assert_eq!(
        nginx(
            &app.anon(),
            "GET",
            "/artifactory/libs-release/org/acme/a.jar"
        ),
        401
    );
    let url = admin
        .post(
            "/artifactory/api/signed/url",
            &json!({"repo_path": "libs-release/org/acme/a.jar"}),
        )
        .text;
    let uri = &url[url.find("/artifactory/").unwrap()..];
    assert_eq!(
        nginx(&app.anon(), "GET", uri),
        200,
        "a signed URL is a credential for reading its path"
    );
    assert_eq!(nginx(&app.anon(), "PUT", uri), 403, "but not for writing");
    let other = uri.replace("a.jar", "b.jar");
    assert_eq!(
        nginx(&app.anon(), "GET", &other),
        403,
        "nor for another path"
    );
}

fn client_auth(c: &crate::helpers::Client) -> Option<String> {
    c.auth_header()
}

#[test]
fn a_plus_in_a_path_is_a_plus() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("bob", "password-1");
    let t = json!({"repo": {"repositories": ["libs"], "include-patterns": ["**"], "exclude-patterns": ["c++/**"],
                            "actions": {"users": {"bob": ["read"]}}}});
    admin.put("/artifactory/api/v2/security/permissions/cpp", &t);
    let r = ureq::get(&format!("{}/access/api/v1/authorize", app.base))
        .set("X-Original-URI", "/artifactory/libs/c++/x.h")
        .set(
            "Authorization",
            &app.as_user("bob", "password-1").auth_header().unwrap(),
        )
        .call();
    let status = match r {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        status, 403,
        "c++/x.h is excluded; decoding + as a space would let it through"
    );
}

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
    // Artifactory: "Permission target contains a reference to a non-existing user".
    let path = "/artifactory/api/v2/security/permissions/java-developers";
    let r = admin.post(path, &target());
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.error_message().contains("`bob`"), "{}", r.text);
    app.create_user("bob", "password-1");
    let r = admin.post(path, &target());
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.error_message().contains("`readers`"), "{}", r.text);
    app.create_group("readers");
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
            json!({"repo": {"include-patterns": ["a/\u{0}b"]}}),
            "repo.include-patterns[0]",
        ),
        (json!({"name": "other"}), "`name`"),
        (
            json!({"repo": {"repositories": ["a/b"]}}),
            "repo.repositories[0]",
        ),
        // A lower-case `any local` matched nothing (no key has a space).
        (
            json!({"repo": {"repositories": ["libs", "any local"]}}),
            "repo.repositories[1]",
        ),
        // An unknown field is ignored, never masks a bad one.
        (
            json!({"repo": {"colour": 1, "repositories": ["a/b"]}}),
            "repo.repositories[0]",
        ),
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
    app.create_group("readers");
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
        .json()
        .as_str()
        .unwrap()
        .to_string();
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
        401,
        "nor for another path: the signature does not hold for it, a bad credential"
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
        .set("X-Original-Method", "GET")
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

/// `?resource=…&action=…` in authorize, as an anonymous caller with nothing but a signed
/// URL's query parameters.
fn ask_signed(
    app: &TestApp,
    resource: &str,
    action: &str,
    signed_query: &str,
) -> crate::helpers::Resp {
    app.anon().get(&format!(
        "/access/api/v1/authorize?resource={}&action={action}&{signed_query}",
        urlencode(resource)
    ))
}

/// The query (`sig=…&exp=…&v=…`) of a signed URL made for `repo_path`.
fn signed_query(admin: &crate::helpers::Client, repo_path: &str, valid_for_secs: u64) -> String {
    let r = admin.post(
        "/artifactory/api/signed/url",
        &json!({"repo_path": repo_path, "valid_for_secs": valid_for_secs}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let url = r.json().as_str().unwrap().to_string();
    url.split_once('?').unwrap().1.to_string()
}

#[test]
fn a_signed_urls_sig_works_directly_in_authorize_for_reading_only() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let path = "libs-release/org/acme/a.jar";
    let query = signed_query(&admin, path, 3600);
    assert!(query.starts_with("sig=") && query.contains("&exp=") && query.contains("&v="));
    let r = ask_signed(&app, path, "read", &query);
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_eq!(
        (
            body["allowed"].clone(),
            body["via"].clone(),
            body["subject"].clone()
        ),
        (json!(true), json!("signed URL"), json!("signed-url"))
    );
    // The parameters in any order, and `action` left out (read).
    let mut parts: Vec<&str> = query.split('&').collect();
    parts.reverse();
    let r = app.anon().get(&format!(
        "/access/api/v1/authorize?{}&resource={}",
        parts.join("&"),
        urlencode(path)
    ));
    assert_eq!(r.status, 200, "{}", r.text);
    // A good signature never grants more than reading.
    for action in ["write", "annotate", "delete", "manage"] {
        let r = ask_signed(&app, path, action, &query);
        assert_eq!(r.status, 403, "{action}: {}", r.text);
        assert_eq!(r.json()["allowed"], false);
        assert!(r.json()["via"]
            .as_str()
            .unwrap()
            .contains("read of its own path only"));
    }
    // Tampered: another path, a changed signature, a longer expiry, a missing part.
    let r = ask_signed(&app, "libs-release/org/acme/b.jar", "read", &query);
    assert_eq!(r.status, 401, "another path: {}", r.text);
    assert!(r.error_message().contains("signature"), "{}", r.text);
    let sig_at = query.find("sig=").unwrap() + 4;
    let mut bad_sig = query.clone();
    let c = if &query[sig_at..sig_at + 1] == "A" {
        "B"
    } else {
        "A"
    };
    bad_sig.replace_range(sig_at..sig_at + 1, c);
    assert_eq!(
        ask_signed(&app, path, "read", &bad_sig).status,
        401,
        "changed sig"
    );
    let exp_at = query.find("exp=").unwrap() + 4;
    let mut later = query.clone();
    later.replace_range(exp_at..exp_at + 1, "9");
    assert_eq!(
        ask_signed(&app, path, "read", &later).status,
        401,
        "longer expiry"
    );
    let no_exp: Vec<&str> = query
        .split('&')
        .filter(|p| !p.starts_with("exp="))
        .collect();
    assert_eq!(
        ask_signed(&app, path, "read", &no_exp.join("&")).status,
        401,
        "no expiry"
    );
    // Tampered and asking to write: still 401 (the credential is checked first).
    assert_eq!(ask_signed(&app, path, "write", &bad_sig).status, 401);
    // Expired.
    let short = signed_query(&admin, path, 1);
    assert_eq!(ask_signed(&app, path, "read", &short).status, 200);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let r = ask_signed(&app, path, "read", &short);
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.error_message().contains("expired"), "{}", r.text);
    // The same through nginx's headers: expired is 401 there too.
    let r = app.anon().get_with(
        "/access/api/v1/authorize",
        &[
            ("X-Original-URI", &format!("/artifactory/{path}?{short}")),
            ("X-Original-Method", "GET"),
        ],
    );
    assert_eq!(r.status, 401, "{}", r.text);
    // After the key is replaced, earlier URLs are bad credentials.
    assert_eq!(
        admin.post_empty("/artifactory/api/signed/url/key").status,
        201
    );
    assert_eq!(ask_signed(&app, path, "read", &query).status, 401);
    // Real credentials win over a `sig` beside them: bob has no grant here.
    app.create_user("bob", "password-1");
    let fresh = signed_query(&admin, path, 3600);
    let r = app.as_user("bob", "password-1").get(&format!(
        "/access/api/v1/authorize?resource={}&{fresh}",
        urlencode(path)
    ));
    assert_eq!((r.status, r.json()["subject"].clone()), (403, json!("bob")));
}

#[test]
fn build_and_release_bundle_sections_decide_through_authorize() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("bob", "password-1");
    app.create_user("cara", "password-1");
    app.create_group("release-managers");
    admin.patch(
        "/access/api/v2/groups/release-managers/members",
        &json!({"add": ["cara"]}),
    );
    let t = json!({
        "repo": {"repositories": ["ANY"], "actions": {"users": {"bob": ["read"]}}},
        "build": {
            "include-patterns": ["app-*/**"],
            "actions": {"users": {"bob": ["read", "write"]}}
        },
        "releaseBundle": {
            "include-patterns": ["app/**"],
            "repositories": ["release-bundles", "edge-bundles"],
            "actions": {"groups": {"release-managers": ["read", "annotate"]}}
        }
    });
    let path = "/artifactory/api/v2/security/permissions/ci";
    let r = admin.put(path, &t);
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.json()["build"]["repositories"],
        json!(["artifactory-build-info"]),
        "the build section applies to the build-info repository, as Artifactory shows it"
    );
    let ask = |who: &crate::helpers::Client, resource: &str, action: &str| {
        let r = who.get(&format!(
            "/access/api/v1/authorize?resource={}&action={action}",
            urlencode(resource)
        ));
        (
            r.status,
            r.json()["via"].as_str().unwrap_or_default().to_string(),
        )
    };
    let bob = app.as_user("bob", "password-1");
    let cara = app.as_user("cara", "password-1");
    let by_bob = "permission target `ci` (user `bob`)".to_string();
    let by_managers = "permission target `ci` (group `release-managers`)".to_string();
    let build = "artifactory-build-info/app-web/12-1700000000000.json";
    assert_eq!(ask(&bob, build, "write"), (200, by_bob.clone()));
    assert_eq!(ask(&bob, build, "delete").0, 403);
    assert_eq!(
        ask(
            &bob,
            "artifactory-build-info/other/1-1700000000000.json",
            "read"
        )
        .0,
        403,
        "outside the build patterns; bob's `ANY` read is for artifact repositories"
    );
    assert_eq!(ask(&cara, build, "read").0, 403);
    assert_eq!(
        ask(&bob, "libs/app-web/1.jar", "read"),
        (200, by_bob.clone())
    );
    assert_eq!(
        ask(&bob, "libs/app-web/1.jar", "write").0,
        403,
        "build write is not artifact write"
    );
    let bundle = "release-bundles/app/1.0/manifest.json";
    assert_eq!(ask(&cara, bundle, "annotate"), (200, by_managers.clone()));
    assert_eq!(
        ask(&cara, "edge-bundles/app/2.0", "read"),
        (200, by_managers.clone())
    );
    assert_eq!(ask(&cara, bundle, "write").0, 403);
    assert_eq!(
        ask(&cara, "release-bundles/tools/1.0", "read").0,
        403,
        "outside the patterns"
    );
    assert_eq!(
        ask(&bob, bundle, "read").0,
        403,
        "bob's `ANY` does not reach bundles"
    );
    assert_eq!(ask(&bob, "edge-bundles/app/2.0", "read").0, 403);
    // Membership still decides on the next request.
    admin.patch(
        "/access/api/v2/groups/release-managers/members",
        &json!({"remove": ["cara"]}),
    );
    assert_eq!(ask(&cara, bundle, "read").0, 403);
    // The effective listing shows every section, with what it applies to.
    let eff = bob.get("/access/api/v1/authorize/effective").json();
    let sections: Vec<(String, serde_json::Value)> = eff["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["section"].as_str().unwrap().to_string(),
                p["repositories"].clone(),
            )
        })
        .collect();
    assert_eq!(
        sections,
        vec![
            ("repo".to_string(), json!(["ANY"])),
            ("build".to_string(), json!(["artifactory-build-info"])),
        ]
    );
    // Sections naming repositories they can never apply to are refused, naming the field.
    for (body, needle) in [
        (
            json!({"build": {"repositories": ["libs"]}}),
            "build.repositories[0]",
        ),
        (
            json!({"repo": {"repositories": ["artifactory-build-info"]}}),
            "repo.repositories[0]",
        ),
        (
            json!({"repo": {"repositories": ["libs", "release-bundles"]}}),
            "repo.repositories[1]",
        ),
        (
            json!({"releaseBundle": {"repositories": ["ANY"]}}),
            "releaseBundle.repositories[0]",
        ),
    ] {
        let r = admin.put(path, &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.error_message().contains(needle), "{body}: {}", r.text);
    }
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/bundles",
        &json!({"releaseBundle": {"actions": {"users": {"bob": ["read"]}}}}),
    );
    assert_eq!(
        r.json()["releaseBundle"]["repositories"],
        json!(["release-bundles"]),
        "the default release-bundle repository"
    );
    assert_eq!(
        ask(&bob, "release-bundles/tools/1.0", "read").0,
        200,
        "{}",
        r.text
    );
}

#[test]
fn an_admin_scoped_token_and_a_token_as_basic_password_through_authorize() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("bob", "password-1");
    app.create_user("cara", "password-1");
    app.create_group("others");
    app.create_group("readers");
    admin.post(
        "/artifactory/api/v2/security/permissions/java-developers",
        &target(),
    );
    let ask = |who: &crate::helpers::Client, resource: &str, action: &str| {
        let r = who.get(&format!(
            "/access/api/v1/authorize?resource={}&action={action}",
            urlencode(resource)
        ));
        (r.status, r.json())
    };
    let token = |body: serde_json::Value| {
        let t = create_token(&admin, body);
        (
            t["access_token"].as_str().unwrap().to_string(),
            t["token_id"].as_str().unwrap().to_string(),
        )
    };
    // `applied-permissions/admin`: everything, for a user who is no admin himself…
    let (admin_scoped, _) =
        token(json!({"username": "bob", "scope": "applied-permissions/admin", "expires_in": 600}));
    let bob_admin = app
        .anon()
        .with_header_auth(&format!("Bearer {admin_scoped}"));
    let (status, body) = ask(&bob_admin, "anything/at/all", "manage");
    assert_eq!(
        (status, body["via"].clone(), body["subject"].clone()),
        (200, json!("admin"), json!("bob"))
    );
    let r = bob_admin.get("/access/api/v1/authorize?resource=libs-release/a&user=cara");
    assert_eq!(
        (r.status, r.json()["subject"].clone()),
        (403, json!("cara")),
        "may ask for others"
    );
    // …and for a subject that is no user here (transient).
    let (transient, _) = token(
        json!({"username": "ci-bot", "scope": "applied-permissions/admin", "expires_in": 600}),
    );
    let bot = app.anon().with_header_auth(&format!("Bearer {transient}"));
    assert_eq!(ask(&bot, "libs-release/x", "delete").1["via"], "admin");
    let bob = app.as_user("bob", "password-1");
    assert_eq!(
        ask(&bob, "anything/at/all", "manage").0,
        403,
        "bob's own rights"
    );
    // A token as the password of HTTP Basic: the same decision, the same scope rules.
    use base64::Engine;
    let basic = |user: &str, secret: &str| {
        app.anon().with_header_auth(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
        ))
    };
    let (bob_token, bob_token_id) = token(json!({"username": "bob", "expires_in": 86400}));
    let (status, body) = ask(
        &basic("bob", &bob_token),
        "libs-release/org/acme/a.jar",
        "write",
    );
    assert_eq!(
        (status, body["subject"].clone()),
        (200, json!("bob")),
        "{body}"
    );
    assert!(body["via"].as_str().unwrap().contains("java-developers"));
    assert_eq!(
        ask(
            &basic("bob", &bob_token),
            "libs-release/org/acme/a.jar",
            "delete"
        )
        .0,
        403
    );
    assert_eq!(
        ask(
            &basic("cara", &bob_token),
            "libs-release/org/acme/a.jar",
            "read"
        )
        .0,
        401,
        "the token is bob's, not cara's"
    );
    let (groups_only, _) = token(
        json!({"username": "bob", "scope": "applied-permissions/groups:others", "expires_in": 600}),
    );
    assert_eq!(
        ask(
            &basic("bob", &groups_only),
            "libs-release/org/acme/a.jar",
            "read"
        )
        .0,
        403,
        "the token's scope narrows Basic as it does Bearer"
    );
    assert_eq!(
        ask(&basic("bob", &admin_scoped), "anything", "manage").1["via"],
        "admin"
    );
    assert_eq!(
        admin
            .delete(&format!("/access/api/v1/tokens/{bob_token_id}"))
            .status,
        200
    );
    assert_eq!(
        ask(
            &basic("bob", &bob_token),
            "libs-release/org/acme/a.jar",
            "read"
        )
        .0,
        401,
        "revoked"
    );
}

/// A path is decided as a file server serves it: empty and `.` segments (sent raw, or
/// as `%2e`) do not escape an exclude, and `./` before a repository does not turn `ANY`
/// into a grant on release bundles. Before, `libs/org//secret/a` was allowed.
#[test]
fn empty_and_dot_segments_do_not_escape_a_pattern() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("alice", "Alice-password-1");
    app.create_user("ivan", "Ivan-password-1");
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/t-pat",
        &json!({"repo": {"repositories": ["libs"], "include-patterns": ["org/**"],
                "exclude-patterns": ["org/secret/**"], "actions": {"users": {"alice": ["read"]}}}}),
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/t-any",
        &json!({"repo": {"repositories": ["ANY"], "actions": {"users": {"ivan": ["read"]}}}}),
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    let ask = |who: &str, password: &str, uri: &str| {
        let r = app.as_user(who, password).get_with(
            "/access/api/v1/authorize",
            &[("X-Original-URI", uri), ("X-Original-Method", "GET")],
        );
        r.status
    };
    let alice = |uri: &str| ask("alice", "Alice-password-1", uri);
    assert_eq!(alice("/artifactory/libs/org/public/a"), 200);
    for uri in [
        "/artifactory/libs/org/secret/a",
        "/artifactory/libs/org//secret/a",
        "/artifactory/libs/org/./secret/a",
        "/artifactory/libs/org/%2e/secret/a",
        "/artifactory/libs//org/secret/a",
        "/artifactory/./libs/org/secret/a",
        "/./artifactory/libs/org/secret/a",
        "//artifactory/libs/org/secret/a",
    ] {
        assert_eq!(alice(uri), 403, "{uri}");
    }
    let r = app
        .as_user("alice", "Alice-password-1")
        .get("/access/api/v1/authorize?resource=libs/org//secret/a&action=read");
    assert_eq!(r.status, 403, "{}", r.text);
    let ivan = |uri: &str| ask("ivan", "Ivan-password-1", uri);
    assert_eq!(ivan("/artifactory/libs/x"), 200);
    assert_eq!(ivan("/artifactory/release-bundles/rb/1.0/x"), 403);
    assert_eq!(ivan("/artifactory/./release-bundles/rb/1.0/x"), 403);
    assert_eq!(ivan("/artifactory/.//artifactory-build-info/b/1.json"), 403);
    // The prefix itself behind `.` or `%2e` segments: still a bundle.
    assert_eq!(ivan("/./artifactory/release-bundles/rb/1.0/x"), 403);
    assert_eq!(ivan("/%2e/artifactory/release-bundles/rb/1.0/x"), 403);
    assert_eq!(ivan("/.//artifactory/release-bundles/rb/1.0/x"), 403);
}

/// `user=` answers what that user would get: nothing while it is disabled, or anonymous
/// while anonymous access is off (before, its grants answered), and anonymous is never
/// an admin.
#[test]
fn asking_for_a_user_who_cannot_be_served_is_a_denial_saying_why() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("eve", "Eve-password-1");
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/t-eve",
        &json!({"repo": {"repositories": ["libs"], "actions": {"users": {"eve": ["read"], "anonymous": ["read"]}}}}),
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    let ask = |user: &str| {
        admin.get(&format!(
            "/access/api/v1/authorize?resource=libs/x&action=read&user={user}"
        ))
    };
    assert_eq!(ask("eve").status, 200);
    let r = admin.patch("/access/api/v2/users/eve", &json!({"status": "disabled"}));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = ask("eve");
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(
        r.json()["via"].as_str().unwrap().contains("disabled"),
        "{}",
        r.text
    );
    // Anonymous access is off by default.
    let r = ask("anonymous");
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(
        r.json()["via"]
            .as_str()
            .unwrap()
            .contains("anonymous access is off"),
        "{}",
        r.text
    );
}

/// A token scoped to some groups manages a permission target only through those groups:
/// it rewrote a target through its user's own `manage`, giving itself what its scope
/// never held.
#[test]
fn a_token_scoped_to_groups_manages_targets_only_through_them() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("mgr", "password-1");
    app.create_group("r3-readers");
    let r = admin.patch(
        "/access/api/v2/groups/r3-readers/members",
        &json!({"add": ["mgr"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/r3",
        &json!({"name": "r3", "repo": {"repositories": ["r3-repo"], "include-patterns": ["**"],
                "actions": {"users": {"mgr": ["manage"]}, "groups": {"r3-readers": ["read"]}}}}),
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    let t = create_token(
        &admin,
        json!({"username": "mgr", "scope": "applied-permissions/groups:r3-readers", "expires_in": 600}),
    );
    let scoped = app
        .anon()
        .with_header_auth(&format!("Bearer {}", t["access_token"].as_str().unwrap()));
    let widened = json!({"name": "r3", "repo": {"repositories": ["r3-repo"], "include-patterns": ["**"],
        "actions": {"users": {"mgr": ["manage"]}, "groups": {"r3-readers": ["read", "write", "delete"]}}}});
    let r = scoped.get("/artifactory/api/v2/security/permissions/r3");
    assert_eq!(r.status, 403, "{}", r.text);
    let r = scoped.put("/artifactory/api/v2/security/permissions/r3", &widened);
    assert_eq!(r.status, 403, "{}", r.text);
    let r = scoped.get("/access/api/v1/authorize?resource=r3-repo/a&action=delete");
    assert_eq!(r.status, 403, "{}", r.text);
    // The user's own credentials hold `manage`: a change of others' actions is theirs to
    // make — not of a group they are in (that raised themselves: seed 002's Manage is
    // "for other users").
    let mgr = app.as_user("mgr", "password-1");
    let r = mgr.put("/artifactory/api/v2/security/permissions/r3", &widened);
    assert_eq!(r.status, 403, "{}", r.text);
    app.create_group("r3-others");
    let others = json!({"name": "r3", "repo": {"repositories": ["r3-repo"], "include-patterns": ["**"],
        "actions": {"users": {"mgr": ["manage"]}, "groups": {"r3-readers": ["read"], "r3-others": ["read", "write"]}}}});
    let r = mgr.put("/artifactory/api/v2/security/permissions/r3", &others);
    assert_eq!(r.status, 200, "{}", r.text);
    // Nor anonymous's: with anonymous access on, what anonymous may do the manager may do
    // without credentials (it gave anonymous write, and wrote).
    let r = admin.put(
        "/access/api/v1/config/security/anonymous_access",
        &json!({"enabled": true}),
    );
    assert!(r.status < 300, "{}", r.text);
    let mut to_anonymous = others.clone();
    to_anonymous["repo"]["actions"]["users"]["anonymous"] = json!(["read", "write"]);
    let r = mgr.put("/artifactory/api/v2/security/permissions/r3", &to_anonymous);
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.text.contains("anonymous"), "{}", r.text);
    let r = app
        .anon()
        .get("/access/api/v1/authorize?resource=r3-repo/a&action=write");
    assert_ne!(r.status, 200, "{}", r.text);
}

/// What a model-based review of the three formats found: a v1 read sent back widened a
/// repository's own patterns to `**`; a PATCH of an upper-case user name changed nothing
/// and answered 200; after a PATCH of every repository's patterns the Artifactory formats
/// showed patterns no repository used; a pattern holding a comma came back from v1 as
/// two; duplicates were stored.
#[test]
fn round_trips_and_patches_neither_widen_nor_misreport() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("rt", "password-1");
    let allowed = |resource: &str, action: &str| {
        admin
            .get(&format!(
                "/access/api/v1/authorize?resource={resource}&action={action}&user=rt"
            ))
            .json()["allowed"]
            == true
    };
    let r = admin.put(
        "/access/api/v2/permissions/r1",
        &json!({"name": "r1", "resources": {"artifact": {"actions": {"users": {"rt": ["READ", "WRITE", "DELETE"]}},
            "targets": {"docs-repo": {"include_patterns": []}, "libs-repo": {"include_patterns": ["public/**"]}}}}}),
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    assert!(!allowed("libs-repo/internal/x.jar", "read"));
    // A v1 read sent back as it is.
    let v1 = admin.get("/artifactory/api/security/permissions/r1").json();
    let r = admin.put("/artifactory/api/security/permissions/r1", &v1);
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    assert!(!allowed("libs-repo/internal/x.jar", "read"), "widened");
    assert!(allowed("libs-repo/public/x.jar", "read"));
    assert!(allowed("docs-repo/any/x", "read"));

    // A PATCH names the user in another case: it is the same user.
    let r = admin.patch(
        "/access/api/v2/permissions/r1/artifact",
        &json!({"actions": {"users": {"RT": ["READ"]}}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!allowed("docs-repo/a", "delete"), "{}", r.text);
    let r = admin.patch(
        "/access/api/v2/permissions/r1/artifact",
        &json!({"actions": {"users": {"Rt": []}}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!allowed("docs-repo/a", "read"), "{}", r.text);
    // Two spellings of one user in one body are refused, naming the field.
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/dup",
        &json!({"name": "dup", "repo": {"repositories": ["d1"], "actions": {"users": {"RT": ["read", "write"], "rt": ["read"]}}}}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("given twice"), "{}", r.text);
    let r = admin.patch(
        "/access/api/v2/permissions/r1/artifact",
        &json!({"actions": {"users": {"RT": ["READ", "WRITE"], "rt": []}}}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("given twice"), "{}", r.text);
    // Duplicates are one.
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/dup",
        &json!({"name": "dup", "repo": {"repositories": ["d1", "d1"], "actions": {"users": {"rt": ["read", "read"]}}}}),
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    let t = admin
        .get("/artifactory/api/v2/security/permissions/dup")
        .json();
    assert_eq!(t["repo"]["repositories"], json!(["d1"]), "{t}");
    assert_eq!(t["repo"]["actions"]["users"]["rt"], json!(["read"]), "{t}");
    // A comma inside a pattern is refused (v1 would split it).
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/comma",
        &json!({"name": "comma", "repo": {"repositories": ["c-repo"], "include-patterns": ["org/a,b/**"],
                "actions": {"users": {"rt": ["read"]}}}}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("include-patterns[0]"), "{}", r.text);

    // Every repository's patterns changed by a PATCH: the section shows the first's.
    let r = admin.put(
        "/access/api/v2/permissions/pt",
        &json!({"name": "pt", "resources": {"artifact": {"actions": {"users": {"rt": ["READ"]}},
            "targets": {"a-repo": {"include_patterns": ["old/**"]}, "b-repo": {"include_patterns": ["old/**"]}, "c-repo": {"include_patterns": ["old/**"]}}}}}),
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    let r = admin.patch(
        "/access/api/v2/permissions/pt/artifact",
        &json!({"targets": {"a-repo": {"include_patterns": ["new/**"]}, "b-repo": {"include_patterns": ["new/**"]}}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let v2 = admin
        .get("/artifactory/api/v2/security/permissions/pt")
        .json();
    assert_eq!(v2["repo"]["include-patterns"], json!(["new/**"]), "{v2}");
    assert!(allowed("a-repo/new/x", "read"));
    assert!(!allowed("a-repo/old/x", "read"));
    // c-repo was not in the PATCH: it keeps its own.
    assert!(allowed("c-repo/old/x", "read"));
    assert!(!allowed("c-repo/new/x", "read"));

    // The first repository dropped by a v2 PUT that sends the patterns back as shown:
    // the section shows the new first repository's (it kept showing the dropped one's,
    // which applied to no repository left, and hid an exclude that decides).
    let r = admin.put(
        "/access/api/v2/permissions/pp",
        &json!({"name": "pp", "resources": {"artifact": {"actions": {"users": {"rt": ["READ"]}},
            "targets": {"repoA": {"include_patterns": ["a/**"], "exclude_patterns": []},
                        "repoB": {"include_patterns": ["b/**"], "exclude_patterns": ["b/secret/**"]},
                        "repoC": {"include_patterns": ["a/**"], "exclude_patterns": []}}}}}),
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/pp",
        &json!({"name": "pp", "repo": {"include-patterns": ["a/**"], "exclude-patterns": [],
            "repositories": ["repoB", "repoC"], "actions": {"users": {"rt": ["read"]}}}}),
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    let v2 = admin
        .get("/artifactory/api/v2/security/permissions/pp")
        .json();
    assert_eq!(v2["repo"]["include-patterns"], json!(["b/**"]), "{v2}");
    assert_eq!(
        v2["repo"]["exclude-patterns"],
        json!(["b/secret/**"]),
        "{v2}"
    );
    assert!(allowed("repoB/b/x", "read"));
    assert!(!allowed("repoB/b/secret/x", "read"));
    // repoC had the old section's patterns: it keeps them.
    assert!(allowed("repoC/a/x", "read"));
    assert!(!allowed("repoC/b/x", "read"));
}

/// `authorize/effective` says what `authorize` decides: a repository's own patterns
/// (every repository was listed with the section's), nothing for a user who would be
/// refused (a disabled user's grants were listed), never admin for anonymous, and a
/// token's scope also when the caller names itself.
#[test]
fn effective_permissions_say_what_authorize_decides() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("ef", "password-1");
    app.create_group("g-a");
    app.create_group("g-b");
    let r = admin.patch(
        "/access/api/v2/users/ef/groups",
        &json!({"add": ["g-a", "g-b"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = admin.put(
        "/access/api/v2/permissions/r5",
        &json!({"name": "r5", "resources": {"artifact": {"actions": {"users": {"ef": ["READ"]}, "groups": {"g-a": ["READ"], "g-b": ["WRITE"]}},
            "targets": {"a-repo": {"include_patterns": ["**"]}, "b-repo": {"include_patterns": ["pub/**"]}}}}}),
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    let ef = app.as_user("ef", "password-1");
    let e = ef.get("/access/api/v1/authorize/effective").json();
    let entries = e["permissions"].as_array().unwrap();
    let for_repo = |repo: &str| {
        entries
            .iter()
            .find(|x| x["repositories"].as_array().unwrap().contains(&json!(repo)))
            .unwrap()
            .clone()
    };
    assert_eq!(for_repo("a-repo")["include_patterns"], json!(["**"]), "{e}");
    assert_eq!(
        for_repo("b-repo")["include_patterns"],
        json!(["pub/**"]),
        "{e}"
    );
    // A token scoped to g-a sees g-a's grants, named by itself or not.
    let t = crate::tokens::create_token(
        &admin,
        json!({"username": "ef", "scope": "applied-permissions/groups:g-a", "expires_in": 600}),
    );
    let scoped = app
        .anon()
        .with_header_auth(&format!("Bearer {}", t["access_token"].as_str().unwrap()));
    for path in [
        "/access/api/v1/authorize/effective",
        "/access/api/v1/authorize/effective?user=ef",
    ] {
        let e = scoped.get(path).json();
        let text = e["permissions"].to_string();
        assert!(text.contains("group `g-a`"), "{path}: {e}");
        assert!(
            !text.contains("g-b") && !text.contains("user `ef`"),
            "{path}: {e}"
        );
    }
    // Anonymous in an admin group is still no admin.
    let r = admin.post(
        "/access/api/v2/groups",
        &json!({"name": "admins-grp", "admin_privileges": true, "members": ["anonymous"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.put(
        "/access/api/v1/config/security/anonymous_access",
        &json!({"enabled": true}),
    );
    assert!(r.status < 300, "{}", r.text);
    let e = admin
        .get("/access/api/v1/authorize/effective?user=anonymous")
        .json();
    assert_eq!(e["admin"], false, "{e}");
    // A disabled user holds nothing, and the answer says why.
    let r = admin.patch("/access/api/v2/users/ef", &json!({"status": "disabled"}));
    assert_eq!(r.status, 200, "{}", r.text);
    let disabled_at = r.header("x-gatehouse-seq").unwrap().to_string();
    let e = admin
        .get("/access/api/v1/authorize/effective?user=ef")
        .json();
    assert_eq!(e["permissions"], json!([]), "{e}");
    assert_eq!(e["refused"], "the user is disabled", "{e}");
    // Enabled again: asked of the moment it was disabled, it held nothing then.
    let r = admin.patch("/access/api/v2/users/ef", &json!({"status": "enabled"}));
    assert_eq!(r.status, 200, "{}", r.text);
    for path in [
        format!("/access/api/v1/authorize/effective?as_of={disabled_at}"),
        format!("/access/api/v1/authorize/effective?user=ef&as_of={disabled_at}"),
    ] {
        let e = ef.get(&path).json();
        assert_eq!(e["permissions"], json!([]), "{path}: {e}");
        assert_eq!(e["refused"], "the user was disabled then", "{path}: {e}");
    }
}

/// Artifactory's v1 PUT describes the repository section only, and keeps the others as
/// it read them — only while they are still so: a group deleted at the same moment came
/// back into the build section (and a later group of its name had its grants).
#[test]
fn a_v1_put_does_not_bring_back_what_a_concurrent_delete_removed() {
    let app = TestApp::spawn();
    let admin = app.admin();
    for round in 0..25 {
        let (group, target) = (format!("gb{round}"), format!("bt{round}"));
        let r = admin.post("/access/api/v2/groups", &json!({"name": group}));
        assert_eq!(r.status, 201, "{}", r.text);
        let r = admin.post(
            "/access/api/v2/permissions",
            &json!({"name": target, "resources": {
                "artifact": {"actions": {"users": {"admin": ["READ"]}},
                             "targets": {"r1": {"include_patterns": ["**"]}}},
                "build": {"actions": {"groups": {group.clone(): ["READ", "WRITE"]}},
                          "targets": {"artifactory-build-info": {"include_patterns": ["**"]}}}}}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let (b1, b2) = (barrier.clone(), barrier);
        let (c1, c2) = (app.admin(), app.admin());
        let g = group.clone();
        let deleter = std::thread::spawn(move || {
            b1.wait();
            c1.delete(&format!("/access/api/v2/groups/{g}")).status
        });
        let t = target.clone();
        let putter = std::thread::spawn(move || {
            b2.wait();
            c2.put(
                &format!("/artifactory/api/security/permissions/{t}"),
                &json!({"name": t, "includesPattern": "**", "repositories": ["r1"],
                        "principals": {"users": {"admin": ["r", "w"]}}}),
            )
            .status
        });
        assert_eq!(deleter.join().unwrap(), 204);
        assert_eq!(putter.join().unwrap(), 200);
        let shown = admin
            .get(&format!("/access/api/v2/permissions/{target}"))
            .json();
        assert!(
            shown["resources"]["build"]["actions"]["groups"]
                .get(&group)
                .is_none(),
            "round {round}: the deleted group is back: {shown}"
        );
    }
}

/// `authorize/effective?as_of=` asked about oneself: an admin then or not, as the user
/// was then (it was today's admin flag, where `authorize?as_of` and `users/{self}?as_of`
/// used that moment's).
#[test]
fn effective_of_oneself_in_the_past_uses_the_admin_flag_of_then() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "erin", "password": "Erin-password-1", "email": "e@example.com",
                "admin": true}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let admin_then = r.header("x-gatehouse-seq").unwrap().to_string();
    let r = admin.patch("/access/api/v2/users/erin", &json!({"admin": false}));
    assert_eq!(r.status, 200, "{}", r.text);
    let demoted = r.header("x-gatehouse-seq").unwrap().to_string();
    let r = admin.patch("/access/api/v2/users/erin", &json!({"admin": true}));
    assert_eq!(r.status, 200, "{}", r.text);
    let erin = app.as_user("erin", "Erin-password-1");
    let e = erin
        .get(&format!(
            "/access/api/v1/authorize/effective?as_of={admin_then}"
        ))
        .json();
    assert_eq!(e["admin"], true, "{e}");
    let e = erin
        .get(&format!(
            "/access/api/v1/authorize/effective?as_of={demoted}"
        ))
        .json();
    assert_eq!(e["admin"], false, "{e}");
    let by_admin = admin
        .get(&format!(
            "/access/api/v1/authorize/effective?user=erin&as_of={demoted}"
        ))
        .json();
    assert_eq!(by_admin["admin"], false, "{by_admin}");
    // A token erin issues for herself with the admin scope grants admin while she is
    // one: then as now (the scope alone answered admin for the moment she was not).
    let token = create_token(
        &erin,
        json!({"scope": "applied-permissions/admin", "expires_in": 0}),
    );
    let bearer = app.anon().with_header_auth(&format!(
        "Bearer {}",
        token["access_token"].as_str().unwrap()
    ));
    for (at, expected) in [(&admin_then, true), (&demoted, false)] {
        let e = bearer
            .get(&format!("/access/api/v1/authorize/effective?as_of={at}"))
            .json();
        assert_eq!(e["admin"], expected, "as of {at}: {e}");
        let r = bearer.get(&format!(
            "/access/api/v1/authorize?resource=libs-local/z&action=read&as_of={at}"
        ));
        assert_eq!(
            r.status,
            if expected { 200 } else { 403 },
            "as of {at}: {}",
            r.text
        );
    }
    let r = bearer.get("/access/api/v1/authorize?resource=libs-local/z&action=read");
    assert_eq!(r.status, 200, "an admin now: {}", r.text);
}

/// A signed URL's expiry is in milliseconds and judged to the millisecond: an expiry a
/// few milliseconds past was taken (the check ran on whole seconds), and a URL answered
/// for up to a second after it expired.
#[test]
fn a_signed_url_expires_to_the_millisecond() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    let r = admin.post(
        "/artifactory/api/signed/url",
        &json!({"repo_path": "libs/a.jar", "expiry": now_ms() - 10}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = admin.post(
        "/artifactory/api/signed/url",
        &json!({"repo_path": "libs/a.jar", "expiry": now_ms() + 300}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let url: String = serde_json::from_str(&r.text).unwrap();
    let uri = &url[url.find("/artifactory/").unwrap()..];
    std::thread::sleep(std::time::Duration::from_millis(400));
    let r = app.anon().get_with(
        "/access/api/v1/authorize",
        &[("X-Original-URI", uri), ("X-Original-Method", "GET")],
    );
    assert_eq!(r.status, 401, "{}", r.text);
}

/// An `Authorization` header that is not ASCII is a bad credential (401), not none: with
/// anonymous access on, the request ran as `anonymous`.
#[test]
fn an_unreadable_authorization_header_is_refused_not_anonymous() {
    use std::io::{Read, Write};
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.put(
        "/access/api/v1/config/security/anonymous_access",
        &json!({"enabled": true}),
    );
    assert!(r.status < 300, "{}", r.text);
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/anon-read",
        &json!({"repo": {"repositories": ["libs"], "actions": {"users": {"anonymous": ["read"]}}}}),
    );
    assert!(r.status < 300, "{}", r.text);
    let addr = app.base.trim_start_matches("http://").to_string();
    let ask = |auth: &[u8]| -> String {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        let mut req = b"GET /access/api/v1/authorize?resource=libs/a.jar HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".to_vec();
        if !auth.is_empty() {
            req.extend_from_slice(b"Authorization: ");
            req.extend_from_slice(auth);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"\r\n");
        s.write_all(&req).unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer
    };
    // Without a header: anonymous, allowed by its grant.
    let anon = ask(b"");
    assert!(anon.starts_with("HTTP/1.1 200"), "{anon}");
    for bad in [&b"Basic \xc3\xa9"[..], &b"Bearer \xc3\xa9xyz"[..]] {
        let answer = ask(bad);
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    }
}

/// No include patterns means every path, and every view says so: the Access and v2 views
/// showed `[]` (read as "nothing") while the v1 view said `**` and the target granted
/// every path.
#[test]
fn no_include_patterns_are_shown_as_everything_in_every_view() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("user2", "password-1");
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/exempty",
        &json!({"name": "exempty", "repo": {"include-patterns": [], "exclude-patterns": ["a/**"],
                "repositories": ["generic-local"], "actions": {"users": {"user2": ["read"]}}}}),
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    let v2 = admin
        .get("/artifactory/api/v2/security/permissions/exempty")
        .json();
    assert_eq!(v2["repo"]["include-patterns"], json!(["**"]), "{v2}");
    let access = admin.get("/access/api/v2/permissions/exempty").json();
    assert_eq!(
        access["resources"]["artifact"]["targets"]["generic-local"]["include_patterns"],
        json!(["**"]),
        "{access}"
    );
    let v1 = admin
        .get("/artifactory/api/security/permissions/exempty")
        .json();
    assert_eq!(v1["includesPattern"], "**", "{v1}");
    // And it grants what it shows.
    let r =
        admin.get("/access/api/v1/authorize?resource=generic-local/c/b.jar&action=read&user=user2");
    assert_eq!(r.status, 200, "{}", r.text);
    let r =
        admin.get("/access/api/v1/authorize?resource=generic-local/a/b.jar&action=read&user=user2");
    assert_eq!(r.status, 403, "{}", r.text);
}

/// Finding: an exclude written with an empty or `.` segment (`org//secret/**`, a leading
/// `/`, `./`) was stored and compiled as written, and matched no path the server judges
/// (paths are judged without such segments): the files it was to protect stayed readable.
/// Read as Ant reads them now; a `..` segment, which no judged path has, is refused.
#[test]
fn excludes_with_empty_or_dot_segments_exclude_and_dot_dot_is_refused() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("carol", "password-1");
    let path = "/artifactory/api/v2/security/permissions/e1";
    for exclude in [
        "org//secret/**",
        "/org/secret/**",
        "./org/secret/**",
        "org/./secret/",
    ] {
        let r = admin.put(
            path,
            &json!({"name": "e1", "repo": {"repositories": ["r1"], "include-patterns": ["**"],
                "exclude-patterns": [exclude], "actions": {"users": {"carol": ["read"]}}}}),
        );
        assert!(r.status == 200 || r.status == 201, "{exclude}: {}", r.text);
        let ask = |resource: &str| {
            admin
                .get(&format!(
                    "/access/api/v1/authorize?resource={resource}&action=read&user=carol"
                ))
                .json()["allowed"]
                .clone()
        };
        assert_eq!(
            ask("r1/org/secret/passwords.txt"),
            json!(false),
            "{exclude}"
        );
        assert_eq!(ask("r1/org/public/readme"), json!(true), "{exclude}");
    }
    let r = admin.put(
        path,
        &json!({"name": "e1", "repo": {"repositories": ["r1"],
            "exclude-patterns": ["org/secret/../secret/**"], "actions": {"users": {"carol": ["read"]}}}}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.text.contains("exclude-patterns[0]") && r.text.contains("`..`"),
        "{}",
        r.text
    );
}

/// A proxy that sends `X-Original-URI` without `X-Original-Method` is refused (400
/// naming the header), not judged as a read: every reader wrote and deleted through it.
/// Every decision carries `Cache-Control: no-store`, refusals too, so that no cache on
/// the way keeps a "yes" past a revocation.
#[test]
fn a_uri_without_its_method_is_refused_and_decisions_are_not_stored() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("alice", "Alice-password-1");
    admin.put(
        "/artifactory/api/v2/security/permissions/readers",
        &json!({"name": "readers", "repo": {"repositories": ["libs"],
                "actions": {"users": {"alice": ["read"]}}}}),
    );
    let alice = app.as_user("alice", "Alice-password-1");
    let uri = ("X-Original-URI", "/artifactory/libs/app.jar");
    let r = alice.get_with("/access/api/v1/authorize", &[uri]);
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.error_message().contains("X-Original-Method"),
        "{}",
        r.text
    );
    for (method, status) in [("GET", 200), ("PUT", 403), ("DELETE", 403)] {
        let r = alice.get_with(
            "/access/api/v1/authorize",
            &[uri, ("X-Original-Method", method)],
        );
        assert_eq!(r.status, status, "{method}: {}", r.text);
        assert_eq!(r.header("cache-control"), Some("no-store"), "{method}");
    }
    let r = app
        .anon()
        .get("/access/api/v1/authorize?resource=libs/app.jar&action=read");
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let r = alice.get("/access/api/v1/authorize/effective");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

/// From a review: a user asking about itself in the past was allowed while its password
/// had expired then (its own requests were answered 403; `user=` said no); the effective
/// view listed grants `authorize` never honours (project roles on the release-bundle
/// repository, a `repo` grant on a repository a release-bundle section names); a
/// repository could be registered as `ANY`.
#[test]
fn past_self_answers_and_effective_views_agree_with_authorize() {
    let app = crate::helpers::TestApp::spawn();
    let admin = app.admin();
    let repo = |key: &str| {
        let r = admin.put(
            &format!("/artifactory/api/repositories/{key}"),
            &serde_json::json!({"rclass": "local"}),
        );
        assert_eq!(r.status, 201, "{key}: {}", r.text);
    };
    repo("exp-repo");
    app.create_user("eve", "Passw0rd-long");
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/exp-t",
        &serde_json::json!({"repo": {"repositories": ["exp-repo"], "actions": {"users": {"eve": ["read"]}}}}),
    );
    assert!(r.status < 300, "{}", r.text);
    let r = admin.post_empty("/artifactory/api/security/users/authorization/expirePassword/eve");
    assert!(r.status < 300, "{}", r.text);
    let then = app.digest()["seq"].as_u64().unwrap();
    let eve = app.as_user("eve", "Passw0rd-long");
    let ask = "/access/api/v1/authorize?resource=exp-repo/a&action=read";
    assert_eq!(eve.get(ask).status, 403);
    let r = admin.post_empty("/artifactory/api/security/users/authorization/unexpirePassword/eve");
    assert!(r.status < 300, "{}", r.text);
    let past = eve.get(&format!("{ask}&as_of={then}"));
    assert_eq!(past.json()["allowed"], false, "{}", past.text);
    assert!(past.text.contains("password had expired"), "{}", past.text);
    let effective = eve.get(&format!("/access/api/v1/authorize/effective?as_of={then}"));
    assert!(
        effective.json()["refused"].is_string(),
        "{}",
        effective.text
    );
    // Project roles reach repositories only.
    repo("release-bundles");
    repo("shipit");
    let r = admin.post(
        "/access/api/v1/projects",
        &serde_json::json!({"project_key": "gp", "display_name": "GP"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    for key in ["release-bundles", "shipit"] {
        let r = admin.put(
            &format!("/access/api/v1/projects/_/attach/repositories/{key}/gp"),
            &serde_json::json!({}),
        );
        assert!(r.status < 300, "{}", r.text);
    }
    let r = admin.put(
        "/access/api/v1/projects/gp/users/eve",
        &serde_json::json!({"roles": ["Developer"]}),
    );
    assert!(r.status < 300, "{}", r.text);
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/ship-repo",
        &serde_json::json!({"repo": {"repositories": ["shipit"], "actions": {"users": {"eve": ["read"]}}}}),
    );
    assert!(r.status < 300, "{}", r.text);
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/ship-rb",
        &serde_json::json!({"releaseBundle": {"repositories": ["shipit"], "actions": {"users": {"admin": ["read"]}}}}),
    );
    assert!(r.status < 300, "{}", r.text);
    for resource in ["release-bundles/b1/1.0/x", "shipit/a"] {
        let r = admin.get(&format!(
            "/access/api/v1/authorize?resource={resource}&action=read&user=eve"
        ));
        assert_eq!(r.json()["allowed"], false, "{resource}: {}", r.text);
    }
    let effective = admin
        .get("/access/api/v1/authorize/effective?user=eve")
        .text;
    assert!(!effective.contains("release-bundles"), "{effective}");
    assert!(!effective.contains("shipit"), "{effective}");
    // No repository has the key `ANY`.
    let r = admin.put(
        "/artifactory/api/repositories/ANY",
        &serde_json::json!({"rclass": "local"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
}

/// From a review: a release-bundle section naming a repository silently switched off
/// the `repo` grants of other targets on it: the write that does so says it now.
#[test]
fn a_release_bundle_section_that_shadows_repo_grants_says_so() {
    let app = crate::helpers::TestApp::spawn();
    let admin = app.admin();
    app.create_user("eve", "Passw0rd-long");
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/ship-repo",
        &serde_json::json!({"repo": {"repositories": ["shipit"], "actions": {"users": {"eve": ["read"]}}}}),
    );
    assert!(r.status < 300, "{}", r.text);
    assert!(
        r.header("x-gatehouse-notice").is_none(),
        "{:?}",
        r.header("x-gatehouse-notice")
    );
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/ship-rb",
        &serde_json::json!({"releaseBundle": {"repositories": ["shipit"], "actions": {"users": {"admin": ["read"]}}}}),
    );
    assert!(r.status < 300, "{}", r.text);
    let notice = r
        .header("x-gatehouse-notice")
        .unwrap_or_default()
        .to_string();
    assert!(notice.contains("`shipit` (ship-repo)"), "{notice}");
    // And the target whose grants are shadowed, when it is written again.
    let r = admin.put(
        "/artifactory/api/v2/security/permissions/ship-repo",
        &serde_json::json!({"repo": {"repositories": ["shipit"], "actions": {"users": {"eve": ["read", "write"]}}}}),
    );
    assert!(r.status < 300, "{}", r.text);
    assert!(r
        .header("x-gatehouse-notice")
        .is_some_and(|n| n.contains("shipit")));
}

//! Malformed bodies, overlong names, odd unicode, wrong content types: always a clear
//! 4xx in the error shape, never a 500, never a write, and the server stays healthy.

use crate::helpers::TestApp;
use serde_json::json;

#[test]
fn a_table_of_bad_requests_gets_4xx_and_writes_nothing() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_group("g");
    let r = admin.put(
        "/access/api/v2/permissions/dupany2",
        &serde_json::json!({"resources": {"artifact": {"actions": {"groups": {"g": ["READ"]}},
                                                       "targets": {"libs": {}}}}}),
    );
    assert!(r.status < 300, "{}", r.text);
    let seq_before = app.digest()["seq"].as_u64().unwrap();
    let long = "a".repeat(129);
    let deep = "[".repeat(5000);
    let big = format!("{{\"username\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let json_ct = Some("application/json");
    // (method, path, content type, body, expected status, text the message must contain)
    let cases: Vec<(&str, &str, Option<&str>, Vec<u8>, u16, &str)> = vec![
        (
            "POST",
            "/access/api/v2/users",
            json_ct,
            b"{".to_vec(),
            400,
            "malformed JSON",
        ),
        (
            "POST",
            "/access/api/v2/users",
            json_ct,
            b"[]".to_vec(),
            400,
            "invalid request body",
        ),
        (
            "POST",
            "/access/api/v2/users",
            json_ct,
            b"\"just a string\"".to_vec(),
            400,
            "invalid request body",
        ),
        (
            "POST",
            "/access/api/v2/users",
            json_ct,
            b"null".to_vec(),
            400,
            "invalid request body",
        ),
        (
            "POST",
            "/access/api/v2/users",
            json_ct,
            b"".to_vec(),
            400,
            "body is required",
        ),
        (
            "POST",
            "/access/api/v2/users",
            json_ct,
            b"{}".to_vec(),
            400,
            "`username`",
        ),
        (
            "POST",
            "/access/api/v2/users",
            json_ct,
            br#"{"username": null}"#.to_vec(),
            400,
            "username",
        ),
        (
            "POST",
            "/access/api/v2/users",
            json_ct,
            br#"{"username": 42}"#.to_vec(),
            400,
            "`username`",
        ),
        (
            "POST",
            "/access/api/v2/users",
            json_ct,
            br#"{"username": ""}"#.to_vec(),
            400,
            "`username`",
        ),
        (
            "POST",
            "/access/api/v2/users",
            json_ct,
            format!(r#"{{"username": "{long}", "password": "password-1"}}"#).into_bytes(),
            400,
            "at most 128",
        ),
        (
            "POST",
            "/access/api/v2/users",
            json_ct,
            br#"{"username": "a\u0000b", "password": "password-1"}"#.to_vec(),
            400,
            "U+0000",
        ),
        (
            "POST",
            "/access/api/v2/users",
            json_ct,
            br#"{"username": "evil\u202egnp", "password": "password-1"}"#.to_vec(),
            400,
            "U+202E",
        ),
        (
            "POST",
            "/access/api/v2/users",
            json_ct,
            br#"{"username": "zero\u200bwidth", "password": "password-1"}"#.to_vec(),
            400,
            "U+200B",
        ),
        (
            "POST",
            "/access/api/v2/users",
            json_ct,
            br#"{"username": "a/b", "password": "password-1"}"#.to_vec(),
            400,
            "U+002F",
        ),
        (
            "POST",
            "/access/api/v2/users",
            json_ct,
            br#"{"username": " padded", "password": "password-1"}"#.to_vec(),
            400,
            "whitespace",
        ),
        (
            "POST",
            "/access/api/v2/users",
            json_ct,
            br#"{"username": "x", "password": "password-1", "admin": "yes"}"#.to_vec(),
            400,
            "`admin`",
        ),
        (
            "POST",
            "/access/api/v2/users",
            json_ct,
            br#"{"username": "x", "password": "password-1", "groups": "g"}"#.to_vec(),
            400,
            "`groups`",
        ),
        (
            "POST",
            "/access/api/v2/users",
            json_ct,
            br#"{"username": "x", "password": "password-1", "groups": [1]}"#.to_vec(),
            400,
            "`groups[0]`",
        ),
        (
            "POST",
            "/access/api/v2/users",
            json_ct,
            // An unknown field is ignored (X-Gatehouse-Ignored-Fields), never masks a bad one.
            br#"{"username": "x", "password": "password-1", "colour": "red", "admin": 3}"#.to_vec(),
            400,
            "admin",
        ),
        (
            "POST",
            "/access/api/v2/users",
            json_ct,
            format!(r#"{{"username": "x", "password": "{}"}}"#, "p".repeat(2000)).into_bytes(),
            400,
            "`password`",
        ),
        (
            "POST",
            "/access/api/v2/users",
            json_ct,
            b"{\"username\": \"\xff\xfe\"}".to_vec(),
            400,
            "JSON",
        ),
        (
            "POST",
            "/access/api/v2/users",
            json_ct,
            deep.into_bytes(),
            400,
            "invalid",
        ),
        (
            "POST",
            "/access/api/v2/groups",
            json_ct,
            format!("{{\"name\": \"n\", \"members\": {}", "[".repeat(5000)).into_bytes(),
            400,
            "invalid",
        ),
        (
            "POST",
            "/access/api/v2/users",
            json_ct,
            big.into_bytes(),
            413,
            "larger than",
        ),
        (
            "POST",
            "/access/api/v2/users",
            Some("text/plain"),
            br#"{"username": "x"}"#.to_vec(),
            415,
            "application/json",
        ),
        (
            "POST",
            "/access/api/v2/users",
            Some("application/x-www-form-urlencoded"),
            b"username=x".to_vec(),
            415,
            "application/json",
        ),
        (
            "POST",
            "/access/api/v2/users",
            None,
            br#"{"username": "x"}"#.to_vec(),
            415,
            "content type",
        ),
        (
            "POST",
            "/access/api/v2/groups",
            json_ct,
            br#"{"name": "g2", "description": 7}"#.to_vec(),
            400,
            "`description`",
        ),
        (
            "POST",
            "/access/api/v2/groups",
            json_ct,
            br#"{"name": "g\u0007"}"#.to_vec(),
            400,
            "U+0007",
        ),
        (
            "PATCH",
            "/access/api/v2/groups/g/members",
            json_ct,
            br#"{"add": "not-a-list"}"#.to_vec(),
            400,
            "`add`",
        ),
        (
            "PATCH",
            "/access/api/v2/groups/g",
            json_ct,
            br#"{"autoJoin": "maybe"}"#.to_vec(),
            400,
            "autoJoin",
        ),
        (
            "PATCH",
            "/access/api/v2/users/admin",
            json_ct,
            br#"{"status": "sleeping"}"#.to_vec(),
            400,
            "`status`",
        ),
        (
            "PUT",
            "/access/api/v2/users/admin/password",
            json_ct,
            br#"{"password": ["x"]}"#.to_vec(),
            400,
            "`password`",
        ),
        (
            "GET",
            "/access/api/v2/users/%FF%FE",
            None,
            vec![],
            400,
            "username",
        ),
        (
            "GET",
            "/access/api/v2/users?limit=1e3",
            None,
            vec![],
            400,
            "`limit`",
        ),
        // A body is one JSON value: its first half is not written.
        (
            "POST",
            "/access/api/v2/groups",
            json_ct,
            br#"{"name":"cat1"}{"name":"cat2"}"#.to_vec(),
            400,
            "trailing characters",
        ),
        (
            "POST",
            "/access/api/v2/groups",
            json_ct,
            br#"{"name":"zz1"} x"#.to_vec(),
            400,
            "malformed JSON",
        ),
        (
            "POST",
            "/access/api/v1/tokens",
            json_ct,
            br#"{"scope":"applied-permissions/user"} {}"#.to_vec(),
            400,
            "malformed JSON",
        ),
        // A key given twice is refused as the form reading refuses it (the last one won).
        (
            "POST",
            "/access/api/v1/tokens",
            json_ct,
            br#"{"username":"admin","username":"ghost","scope":"applied-permissions/user"}"#
                .to_vec(),
            400,
            "`username`: given more than once",
        ),
        // Free text without control characters, on every way in.
        (
            "POST",
            "/access/api/v1/tokens",
            Some("application/x-www-form-urlencoded"),
            b"scope=applied-permissions/user&description=a%00b".to_vec(),
            400,
            "`description`",
        ),
        (
            "POST",
            "/access/api/v1/tokens",
            Some("application/x-www-form-urlencoded"),
            b"scope=applied-permissions/user&audience=jfrt%40%2A%0Ax".to_vec(),
            400,
            "`audience`",
        ),
        (
            "PUT",
            "/artifactory/api/security/groups/ctl",
            json_ct,
            br#"{"name":"ctl","description":"a\u0000b"}"#.to_vec(),
            400,
            "`description`",
        ),
        (
            "POST",
            "/event/api/v1/subscriptions",
            json_ct,
            br#"{"key":"px","event_filter":{"domain":"user","event_types":["created"]},
                 "handlers":[{"handler_type":"webhook","url":"https://x.example/","proxy":"a\u0000b"}]}"#
                .to_vec(),
            400,
            "`handlers[0].proxy`",
        ),
        // Nested fields named by their path; a token's `project_key` is a string.
        (
            "POST",
            "/access/api/v1/orgs/acme/access_keys",
            json_ct,
            br#"{"id":"ek","existence_check":{"url":5}}"#.to_vec(),
            400,
            "`existence_check.url`",
        ),
        (
            "POST",
            "/access/api/v1/tokens",
            json_ct,
            br#"{"scope":"applied-permissions/user","project_key":{"a":1}}"#.to_vec(),
            400,
            "`project_key`: expected a string, got an object",
        ),
        // Credentials in a URL would be stored, shown and logged in clear.
        (
            "POST",
            "/event/api/v1/subscriptions",
            json_ct,
            br#"{"key":"cred","event_filter":{"domain":"user","event_types":["created"]},
                 "handlers":[{"handler_type":"webhook","url":"https://u:pw@x.example/"}]}"#
                .to_vec(),
            400,
            "`handlers[0].url`: a user name or password",
        ),
        (
            "POST",
            "/access/api/v1/system/federation",
            json_ct,
            br#"{"name":"fedx","url":"http://u:pw@127.0.0.1:9/access/","entities":["users"]}"#
                .to_vec(),
            400,
            "`url`: a user name or password",
        ),
        // Names that go in a URL path and that no client could then reach.
        (
            "POST",
            "/event/api/v1/subscriptions",
            json_ct,
            br#"{"key":"..","event_filter":{"domain":"user","event_types":["created"]},
                 "handlers":[{"handler_type":"webhook","url":"https://x.example/"}]}"#
                .to_vec(),
            400,
            "`key`",
        ),
        (
            "POST",
            "/access/api/v1/system/federation",
            json_ct,
            br#"{"name":".","url":"http://127.0.0.1:9/access/","entities":["users"]}"#.to_vec(),
            400,
            "`name`",
        ),
        // A key given twice in a map of grants: refused (the last one was kept, while
        // a proxy or validator reading the first saw another grant).
        (
            "PUT",
            "/artifactory/api/v2/security/permissions/dupmap",
            json_ct,
            br#"{"repo":{"repositories":["libs"],"actions":{"users":{"admin":["read","write","manage"],"admin":["read"]}}}}"#
                .to_vec(),
            400,
            "given more than once",
        ),
        (
            "POST",
            "/access/api/v2/permissions",
            json_ct,
            br#"{"name":"dup","resources":{"artifact":{"actions":{"users":{},"groups":{}},
                 "targets":{"libs":{"include_patterns":["**"]},"libs":{"include_patterns":["secret/**"]}}}}}"#
                .to_vec(),
            400,
            "given more than once",
        ),
        // A blank realm was stored and shown as `""`.
        (
            "POST",
            "/access/api/v2/groups",
            json_ct,
            br#"{"name":"blank-realm","realm":"  "}"#.to_vec(),
            400,
            "`realm`",
        ),
        (
            "PATCH",
            "/access/api/v2/groups/g",
            json_ct,
            br#"{"realm":""}"#.to_vec(),
            400,
            "`realm`",
        ),
        // One repository under its two spellings: the second's patterns replaced the
        // first's, which the other formats went on showing.
        (
            "POST",
            "/access/api/v2/permissions",
            json_ct,
            br#"{"name":"dupany","resources":{"artifact":{"actions":{"users":{},"groups":{}},
                 "targets":{"ALL-LOCAL":{"include_patterns":["a/**"]},"ANY LOCAL":{"include_patterns":["b/**"]}}}}}"#
                .to_vec(),
            400,
            "given twice under two spellings",
        ),
        (
            "PATCH",
            "/access/api/v2/permissions/dupany2/artifact",
            json_ct,
            br#"{"targets":{"ALL-LOCAL":{},"ANY LOCAL":{"include_patterns":["x/**"]}}}"#.to_vec(),
            400,
            "given twice under two spellings",
        ),
        // Access's v2 permissions: errors name the fields as this format has them.
        (
            "POST",
            "/access/api/v2/permissions",
            json_ct,
            br#"{"name":"p1","resources":{"artifact":{"actions":{"users":{},"groups":{}},
                 "targets":{"a/b":{"include_patterns":["**"]}}}}}"#
                .to_vec(),
            400,
            "`resources.artifact.targets.a/b`",
        ),
        (
            "POST",
            "/access/api/v2/permissions",
            json_ct,
            br#"{"name":"p2","resources":{"artifact":{"actions":{"users":{},"groups":{}},
                 "targets":{"libs":{"include_patterns":["a\u0000b"]}}}}}"#
                .to_vec(),
            400,
            "`resources.artifact.targets.libs.include_patterns[0]`",
        ),
        (
            "POST",
            "/access/api/v1/orgs/acme/entitlements",
            json_ct,
            br#"{"repo":"r1","access":"r","package":"   "}"#.to_vec(),
            400,
            "`package`",
        ),
    ];
    for (method, path, ct, body, status, needle) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).to_string();
        let r = admin.raw(
            method,
            path,
            ct,
            if body.is_empty() && method == "GET" {
                None
            } else {
                Some(&body)
            },
        );
        assert_eq!(
            r.status, status,
            "{method} {path} {ct:?} {shown}: {}",
            r.text
        );
        let message = r.error_message();
        assert!(
            message.contains(needle),
            "{method} {path} {shown}: message {message:?} should mention {needle:?}"
        );
    }
    assert_eq!(
        app.anon().get("/api/system/ping").status,
        200,
        "still healthy"
    );
    assert_eq!(
        app.digest()["seq"].as_u64().unwrap(),
        seq_before,
        "no bad request wrote anything"
    );
    // Odd but legitimate names from identity providers are fine.
    for name in [
        "李雷",
        "josé.garcía@example.com",
        "2819c223-7f76-453a-919d-413861904646",
        "o'neil+ci",
    ] {
        let r = admin.post(
            "/access/api/v2/users",
            &json!({"username": name, "password": "password-1"}),
        );
        assert_eq!(r.status, 201, "{name}: {}", r.text);
        let path = format!("/access/api/v2/users/{}", urlencode(name));
        assert_eq!(admin.get(&path).status, 200, "{name}");
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.@".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Who is asking is judged before what is asked: a non-admin's bad body gets 403, a
/// wrong password's 401, even on the first request, while the password check (argon2,
/// not cached yet) is still running when the body has already failed to parse.
#[test]
fn authorization_errors_come_before_body_errors_even_uncached() {
    let app = TestApp::spawn();
    for i in 0..5 {
        let name = format!("plain{i}");
        app.create_user(&name, "password-1");
        // A fresh user each round: its first request cannot hit the sign-in cache.
        let plain = app.as_user(&name, "password-1");
        let r = plain.raw(
            "POST",
            "/access/api/v2/groups",
            Some("application/json"),
            Some(b"{not json"),
        );
        assert_eq!(r.status, 403, "round {i}: {}", r.text);
        let r = app.as_user(&name, "wrong-password").raw(
            "PUT",
            "/artifactory/api/repositories/x",
            Some("text/plain"),
            Some(b"x"),
        );
        assert_eq!(r.status, 401, "round {i}: {}", r.text);
    }
}

/// What a review of the API found written or refused wrongly: SCIM bodies as large as
/// any other body (not actix's 256 KiB, and errors in SCIM's shape), a SCIM group's
/// `externalId` by the v2 rule, a role no URL could reach, and the ignored-fields header
/// bounded whatever the body's keys.
#[test]
fn scim_bodies_role_names_and_the_ignored_fields_header() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let scim_ct = Some("application/scim+json");
    // A 300 KB user (five name parts of 60,000 characters): read, under the 1 MiB limit.
    let part = "x".repeat(60_000);
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "big-scim-user",
        "name": {"formatted": part, "familyName": part, "givenName": part,
                 "middleName": part, "honorificPrefix": part},
    })
    .to_string();
    assert!(body.len() > 300_000);
    let r = admin.raw(
        "POST",
        "/access/api/v1/scim/v2/Users",
        scim_ct,
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 201, "{}", &r.text[..r.text.len().min(300)]);
    // Over the limit: 413, in SCIM's error shape.
    let huge = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                      "displayName": "x".repeat(2 * 1024 * 1024)})
    .to_string();
    let r = admin.raw(
        "POST",
        "/access/api/v1/scim/v2/Groups",
        scim_ct,
        Some(huge.as_bytes()),
    );
    assert_eq!(r.status, 413, "{}", r.text);
    let v = r.json();
    assert_eq!(v["status"], "413", "SCIM's error shape: {v}");
    assert!(
        v["schemas"][0]
            .as_str()
            .is_some_and(|s| s.ends_with(":Error")),
        "{v}"
    );
    // A SCIM group's externalId keeps the rule a v2 group's has.
    let r = admin.raw(
        "POST",
        "/access/api/v1/scim/v2/Groups",
        scim_ct,
        Some(
            br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],
                 "displayName":"ctl-group","externalId":"a\u0000b"}"#,
        ),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("external_id"), "{}", r.text);
    assert_eq!(admin.get("/access/api/v2/groups/ctl-group").status, 404);

    // An address that is not one, named by SCIM's path.
    let r = admin.raw(
        "POST",
        "/access/api/v1/scim/v2/Users",
        scim_ct,
        Some(
            br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
                 "userName":"bad-mail","emails":[{"value":"not an address","primary":true}]}"#,
        ),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("`emails.value`"), "{}", r.text);

    // Project roles: `.` and `..` are no path segment a client can send.
    let r = admin.post(
        "/access/api/v1/projects",
        &json!({"project_key": "webx", "display_name": "Web"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    for name in [".", ".."] {
        let r = admin.post(
            "/access/api/v1/projects/webx/roles",
            &json!({"name": name, "type": "CUSTOM", "actions": ["READ_REPOSITORY"],
                    "environments": ["DEV"]}),
        );
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        assert!(r.error_message().contains("`name`"), "{}", r.text);
    }

    // The ignored fields' header: bounded and ASCII, and the write answered normally.
    let long_key = "k".repeat(100_000);
    let r = admin.post(
        "/access/api/v2/groups",
        &json!({"name": "ignored-long", long_key: 1, "färg": "blå"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let listed = r
        .header("x-gatehouse-ignored-fields")
        .expect("the ignored fields are named")
        .to_string();
    assert!(listed.len() < 1200, "{} bytes", listed.len());
    assert!(listed.is_ascii(), "{listed}");
    assert!(listed.contains("f%C3%A4rg"), "{listed}");
}

/// The `uri` and `location` an answer gives for a name are URLs of that name: a name with
/// `#`, `?`, `%` or a space is percent-encoded (before, `a#b`'s `uri` named user `a`).
#[test]
fn uris_of_odd_names_lead_back_to_them() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let names = ["a#b", "q?x=1", "per%2fcent", "sp ace", "李雷"];
    for name in names {
        let r = admin.post(
            "/access/api/v2/users",
            &json!({"username": name, "password": "password-1"}),
        );
        assert_eq!(r.status, 201, "{name}: {}", r.text);
        let r = admin.post("/access/api/v2/groups", &json!({"name": name}));
        assert_eq!(r.status, 201, "{name}: {}", r.text);
    }
    let follow = |uri: &str| {
        let path = uri.strip_prefix(&app.base).unwrap_or(uri);
        admin.get(path)
    };
    let users = admin.get("/access/api/v2/users?limit=100").json();
    let groups = admin.get("/access/api/v2/groups").json();
    for name in names {
        let user = users["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == name)
            .unwrap_or_else(|| panic!("{name} listed: {users}"));
        let r = follow(user["uri"].as_str().unwrap());
        assert_eq!(r.status, 200, "{name} by {}: {}", user["uri"], r.text);
        assert_eq!(r.json()["username"], name);
        let group = groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["group_name"] == name)
            .unwrap_or_else(|| panic!("{name} listed: {groups}"));
        let r = follow(group["uri"].as_str().unwrap());
        assert_eq!(r.status, 200, "{name} by {}: {}", group["uri"], r.text);
        assert_eq!(r.json()["name"], name);
    }
    // SCIM's `meta.location` and `Location`, for a user made over SCIM.
    let r = admin.raw(
        "POST",
        "/access/api/v1/scim/v2/Users",
        Some("application/scim+json"),
        Some(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                   "userName": "scim sp#ace"})
            .to_string()
            .as_bytes(),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let location = r.json()["meta"]["location"].as_str().unwrap().to_string();
    assert_eq!(r.header("location"), Some(location.as_str()));
    let r = follow(&location);
    assert_eq!(r.status, 200, "{location}: {}", r.text);
    assert_eq!(r.json()["userName"], "scim sp#ace");
}

/// A value of the wrong type is named by its field and type, not quoted back: it may be
/// a secret sent in the wrong place.
#[test]
fn a_wrongly_typed_value_is_not_quoted_back() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let secret = "Sent-In-The-Wrong-Place-77";
    let r = admin.post(
        "/event/api/v1/subscriptions",
        &json!({"key": "k1", "event_filter": {"domain": "user", "event_types": ["created"]},
                "handlers": [{"handler_type": "custom-webhook", "url": "https://x.example/",
                              "secrets": secret}]}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let message = r.error_message();
    assert!(message.contains("secrets"), "{message}");
    assert!(message.contains("invalid type: string"), "{message}");
    assert!(!r.text.contains(secret), "{}", r.text);
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "numbers", "password": 12345678901u64}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(!r.text.contains("12345678901"), "{}", r.text);
    // Line breaks as a form's text area sends them are text; a refresh that sends no
    // description keeps the old one unchecked.
    let r = admin.post(
        "/access/api/v1/tokens",
        &json!({"scope": "applied-permissions/user", "refreshable": true,
                "description": "first line\r\nsecond line"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let t = r.json();
    let r = admin.post(
        "/access/api/v1/tokens",
        &json!({"grant_type": "refresh_token", "refresh_token": t["refresh_token"],
                "access_token": t["access_token"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

/// A number field given text is named by kind, not by value (the value was quoted back).
#[test]
fn a_wrong_number_is_not_quoted_back() {
    let app = crate::helpers::TestApp::spawn();
    let admin = app.admin();
    for body in [
        serde_json::json!({"expires_in": "LEAKMARK-exp"}),
        serde_json::json!({"expires_in": -4.5}),
    ] {
        let r = admin.post("/access/api/v1/tokens", &body);
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(r.text.contains("expires_in"), "{}", r.text);
        assert!(
            !r.text.contains("LEAKMARK") && !r.text.contains("4.5"),
            "{}",
            r.text
        );
    }
    // A whole number written as a float is that number; one past 64 bits is said so.
    let post = |body: &[u8]| {
        admin.raw(
            "POST",
            "/access/api/v1/tokens",
            Some("application/json"),
            Some(body),
        )
    };
    let r = post(br#"{"expires_in": 1e3}"#);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["expires_in"], 1000, "{}", r.text);
    let r = post(br#"{"expires_in": 18446744073709551616}"#);
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("too large"), "{}", r.text);
    let r = admin.get("/access/api/v2/users?limit=LEAKMARK");
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(!r.text.contains("LEAKMARK"), "{}", r.text);
}

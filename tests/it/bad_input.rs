//! Malformed bodies, overlong names, odd unicode, wrong content types: always a clear
//! 4xx in the error shape, never a 500, never a write, and the server stays healthy.

use crate::helpers::TestApp;
use serde_json::json;

#[test]
fn a_table_of_bad_requests_gets_4xx_and_writes_nothing() {
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_group("g");
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

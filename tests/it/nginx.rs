//! nginx, for real: a static file tree behind nginx's `auth_request`, with Gatehouse
//! deciding (scripts/nginx/nginx.conf.template). Runs when `nginx` is installed
//! (`.ci/run` installs Debian's package); says so loudly when it is not.

use crate::helpers::TestApp;
use crate::tokens::create_token;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn nginx_binary() -> Option<String> {
    ["nginx", "/usr/sbin/nginx"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("-v")
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(str::to_string)
}

struct Nginx(Child);

impl Drop for Nginx {
    /// SIGTERM, not SIGKILL: the master must stay alive long enough to stop its workers.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn status(req: ureq::Request) -> u16 {
    match req.call() {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{e}"),
    }
}

/// nginx from the template in front of a tree holding
/// `libs-release/org/acme/app.jar`, deciding with `app`: (the directory of nginx's files, nginx, its
/// base URL), in the order they must be dropped last to first.
fn serve_tree(nginx: &str, app: &TestApp) -> (tempfile::TempDir, Nginx, String) {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    std::fs::create_dir_all(root.join("libs-release/org/acme")).unwrap();
    std::fs::write(root.join("libs-release/org/acme/app.jar"), b"jar bytes").unwrap();
    // nginx workers may run as `nobody`: let them read the tree.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for d in [
            work.path().to_path_buf(),
            root.clone(),
            root.join("libs-release"),
            root.join("libs-release/org"),
            root.join("libs-release/org/acme"),
        ] {
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(
            root.join("libs-release/org/acme/app.jar"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }
    let port = free_port();
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/nginx/nginx.conf.template"
    ))
    .unwrap();
    let conf = template
        .replace("{{PREFIX}}", &work.path().display().to_string())
        .replace("{{LISTEN}}", &format!("127.0.0.1:{port}"))
        .replace("{{ROOT}}", &root.display().to_string())
        .replace("{{GATEHOUSE_SCHEME}}", "http")
        .replace("{{GATEHOUSE_NAME}}", "localhost")
        .replace("{{GATEHOUSE_CA}}", "/etc/ssl/certs/ca-certificates.crt")
        .replace(
            "{{GATEHOUSE_ADDR}}",
            app.base.strip_prefix("http://").expect("an http base URL"),
        );
    let conf_path = work.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new(nginx)
        .arg("-p")
        .arg(work.path())
        .arg("-c")
        .arg(&conf_path)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start nginx");
    let guard = Nginx(child);
    let base = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "nginx did not start: {}",
            std::fs::read_to_string(work.path().join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (work, guard, base)
}

#[test]
fn nginx_serves_files_only_when_gatehouse_allows() {
    let Some(nginx) = nginx_binary() else {
        eprintln!("SKIPPED nginx_serves_files_only_when_gatehouse_allows: nginx is not installed (apt-get install nginx)");
        return;
    };
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("rob", "password-1");
    let target = json!({"repo": {"repositories": ["libs-release"], "actions": {"users": {"rob": ["read"]}}}});
    assert_eq!(
        admin
            .put("/artifactory/api/v2/security/permissions/readers", &target)
            .status,
        201
    );

    let (_work, _guard, base) = serve_tree(&nginx, &app);
    let file = format!("{base}/artifactory/libs-release/org/acme/app.jar");
    let agent = ureq::agent();
    assert_eq!(status(agent.get(&file)), 401, "anonymous");
    let token = create_token(&admin, json!({"username": "rob", "expires_in": 600}))["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = agent
        .get(&file)
        .set("Authorization", &format!("Bearer {token}"))
        .call()
        .expect("rob may read");
    assert_eq!(resp.into_string().unwrap(), "jar bytes");
    assert_eq!(
        status(
            agent
                .put(&file)
                .set("Authorization", &format!("Bearer {token}"))
        ),
        403,
        "read-only token cannot PUT"
    );
    app.create_user("eve", "password-1");
    use base64::Engine;
    let eve = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("eve:password-1")
    );
    assert_eq!(
        status(agent.get(&file).set("Authorization", &eve)),
        403,
        "no grant for eve"
    );
    // A signed URL works without credentials until it expires.
    let signed = admin
        .post(
            "/artifactory/api/signed/url",
            &json!({"repo_path": "libs-release/org/acme/app.jar", "valid_for_secs": 2}),
        )
        .json()
        .as_str()
        .unwrap()
        .to_string();
    let signed_uri = &signed[signed.find("/artifactory/").unwrap()..];
    assert_eq!(status(agent.get(&format!("{base}{signed_uri}"))), 200);
    std::thread::sleep(Duration::from_millis(3100));
    assert_eq!(
        status(agent.get(&format!("{base}{signed_uri}"))),
        401,
        "expired: a bad credential, which nginx passes on"
    );
}

/// auth_request passes on only 401 and 403; the template keeps Gatehouse's 429 (failed
/// sign-ins limited) with its Retry-After instead of nginx's 500.
#[test]
fn a_rate_limited_client_gets_429_with_retry_after_through_nginx() {
    let Some(nginx) = nginx_binary() else {
        eprintln!("SKIPPED a_rate_limited_client_gets_429_with_retry_after_through_nginx: nginx is not installed (apt-get install nginx)");
        return;
    };
    let app = TestApp::spawn_with(gatehouse::Config {
        signin_address_burst: 1,
        signin_address_per_minute: 1,
        ..gatehouse::Config::default()
    });
    let (_work, _guard, base) = serve_tree(&nginx, &app);
    let file = format!("{base}/artifactory/libs-release/org/acme/app.jar");
    use base64::Engine;
    let wrong = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("nobody:wrong-password")
    );
    let agent = ureq::agent();
    let mut limited = None;
    for _ in 0..5 {
        match agent.get(&file).set("Authorization", &wrong).call() {
            Err(ureq::Error::Status(401, _)) => continue,
            Err(ureq::Error::Status(code, r)) => {
                limited = Some((code, r.header("retry-after").map(str::to_string)));
                break;
            }
            other => panic!("{:?}", other.map(|r| r.status())),
        }
    }
    let (code, retry_after) = limited.expect("the failed sign-ins are limited");
    assert_eq!(code, 429, "nginx passes Gatehouse's 429 on");
    let secs: u64 = retry_after
        .expect("with Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!(secs >= 1);
}

/// The peers' ports of the connections to `port` on 127.0.0.1 in state ESTABLISHED,
/// seen from the server's side (local port `port`), from /proc/net/tcp.
#[cfg(target_os = "linux")]
fn established_to(port: u16) -> std::collections::BTreeSet<u16> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let port_of = |addr: &str| {
        addr.rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
    };
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 3 && f[3] == "01" && port_of(f[1]) == Some(port))
                .then(|| port_of(f[2]))
                .flatten()
        })
        .collect()
}

/// The template's pool: many checks through nginx, allowed, denied and anonymous, all
/// decided right, and nginx keeps its connection to Gatehouse open between them (it
/// closes it after every check when the answer has a body, as a GET's has).
#[test]
fn nginx_keeps_its_connections_to_gatehouse_between_checks() {
    let Some(nginx) = nginx_binary() else {
        eprintln!("SKIPPED nginx_keeps_its_connections_to_gatehouse_between_checks: nginx is not installed (apt-get install nginx)");
        return;
    };
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("rob", "password-1");
    app.create_user("eve", "password-1");
    let target = json!({"repo": {"repositories": ["libs-release"], "actions": {"users": {"rob": ["read"]}}}});
    assert_eq!(
        admin
            .put("/artifactory/api/v2/security/permissions/readers", &target)
            .status,
        201
    );
    let (_work, _guard, base) = serve_tree(&nginx, &app);
    let file = format!("{base}/artifactory/libs-release/org/acme/app.jar");
    use base64::Engine;
    let basic = |u: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:password-1"))
        )
    };
    let (rob, eve) = (basic("rob"), basic("eve"));
    // The test's own clients may hold connections to Gatehouse: only new ones count.
    #[cfg(target_os = "linux")]
    let port: u16 = app.base.rsplit_once(':').unwrap().1.parse().unwrap();
    #[cfg(target_os = "linux")]
    let before = established_to(port);
    let agent = ureq::agent();
    for i in 0..30 {
        match i % 3 {
            0 => {
                let r = agent.get(&file).set("Authorization", &rob).call().unwrap();
                assert_eq!(r.into_string().unwrap(), "jar bytes", "check {i}");
            }
            1 => assert_eq!(
                status(agent.get(&file).set("Authorization", &eve)),
                403,
                "check {i}"
            ),
            _ => assert_eq!(status(agent.get(&file)), 401, "check {i}"),
        }
    }
    #[cfg(target_os = "linux")]
    assert!(
        established_to(port).difference(&before).count() >= 1,
        "nginx closed its connection to Gatehouse after the checks: no pool"
    );
}

/// HEAD asks the same question as GET and is answered with the status alone, on one
/// kept-alive connection for many questions.
#[test]
fn authorize_answers_head_without_a_body_on_one_connection() {
    use std::io::{BufRead, BufReader, Read, Write};
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("rob", "password-1");
    let target = json!({"repo": {"repositories": ["libs-release"], "actions": {"users": {"rob": ["read"]}}}});
    assert_eq!(
        admin
            .put("/artifactory/api/v2/security/permissions/readers", &target)
            .status,
        201
    );
    use base64::Engine;
    let rob = base64::engine::general_purpose::STANDARD.encode("rob:password-1");
    let addr = app.base.strip_prefix("http://").unwrap();
    let stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    for i in 0..40 {
        let (uri, method, auth, want) = match i % 4 {
            0 => ("/artifactory/libs-release/a.jar", "GET", true, 200),
            1 => ("/artifactory/libs-release/a.jar", "PUT", true, 403),
            2 => ("/artifactory/other-repo/a.jar", "GET", true, 403),
            _ => ("/artifactory/libs-release/a.jar", "GET", false, 401),
        };
        let auth = if auth {
            format!("Authorization: Basic {rob}\r\n")
        } else {
            String::new()
        };
        write!(
            writer,
            "HEAD /access/api/v1/authorize HTTP/1.1\r\nHost: {addr}\r\nX-Original-URI: {uri}\r\nX-Original-Method: {method}\r\n{auth}\r\n"
        )
        .unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(
            line.starts_with(&format!("HTTP/1.1 {want} ")),
            "question {i}: {line:?}"
        );
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            assert!(
                !header.to_ascii_lowercase().starts_with("connection: close"),
                "question {i}: the connection is closed"
            );
            if header == "\r\n" {
                break;
            }
        }
    }
    // Nothing but the 40 heads came back: no body after any of them.
    writer.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    assert!(rest.is_empty(), "a body after a HEAD answer: {rest:?}");
}

/// The template sets `X-Forwarded-For` to the address nginx saw: with nginx among the
/// `trusted-proxies`, an `X-Forwarded-For` the client sends itself is not believed, so it
/// cannot pick a fresh address for every guess and stay under the failed sign-in limit.
#[test]
fn a_forwarded_for_sent_by_the_client_does_not_reach_gatehouse_through_nginx() {
    let Some(nginx) = nginx_binary() else {
        eprintln!("SKIPPED a_forwarded_for_sent_by_the_client_does_not_reach_gatehouse_through_nginx: nginx is not installed (apt-get install nginx)");
        return;
    };
    let app = TestApp::spawn_with(gatehouse::Config {
        signin_address_burst: 2,
        signin_address_per_minute: 1,
        trusted_proxies: vec!["127.0.0.1/32".into()],
        ..gatehouse::Config::default()
    });
    let (_work, _guard, base) = serve_tree(&nginx, &app);
    let file = format!("{base}/artifactory/libs-release/org/acme/app.jar");
    use base64::Engine;
    let agent = ureq::agent();
    let mut limited = false;
    for i in 0..8 {
        // A different name each time: only the address limit can stop the guesses.
        let wrong = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("nobody{i}:wrong-password"))
        );
        let r = agent
            .get(&file)
            .set("Authorization", &wrong)
            .set("X-Forwarded-For", &format!("203.0.113.{i}"))
            .call();
        match r {
            Err(ureq::Error::Status(401, _)) => continue,
            Err(ureq::Error::Status(429, _)) => {
                limited = true;
                break;
            }
            other => panic!("{:?}", other.map(|r| r.status())),
        }
    }
    assert!(limited, "forged addresses escaped the failed sign-in limit");
}

/// What a review found behind the template: a raw `#` ended the path nginx served but not
/// the one judged (an exclude of `**/*.key` did not hold); a directory was judged on its
/// own path and nginx served its `index.html`; a signed URL's `sig` went to nginx's
/// access log.
#[test]
fn the_path_nginx_serves_is_the_path_judged() {
    let Some(nginx) = nginx_binary() else {
        eprintln!("SKIPPED the_path_nginx_serves_is_the_path_judged: nginx is not installed (apt-get install nginx)");
        return;
    };
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("mal", "password-1");
    let target = json!({"repo": {"repositories": ["libs-release"], "include-patterns": ["**"],
        "exclude-patterns": ["**/*.key", "**/*.html"], "actions": {"users": {"mal": ["read"]}}}});
    let r = admin.put("/artifactory/api/v2/security/permissions/no-keys", &target);
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    let (work, _guard, base) = serve_tree(&nginx, &app);
    let root = work.path().join("root/libs-release");
    std::fs::create_dir_all(root.join("site")).unwrap();
    std::fs::write(root.join("org/acme/signing.key"), b"TOP-SECRET-KEY").unwrap();
    std::fs::write(root.join("site/index.html"), b"internal html").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.join("site"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        for f in ["org/acme/signing.key", "site/index.html"] {
            std::fs::set_permissions(root.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    use base64::Engine;
    let mal = base64::engine::general_purpose::STANDARD.encode("mal:password-1");
    let port: u16 = base.rsplit(':').next().unwrap().parse().unwrap();
    let raw = |target: &str| -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {mal}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    assert!(raw("/artifactory/libs-release/org/acme/app.jar").starts_with("HTTP/1.1 200"));
    for target in [
        "/artifactory/libs-release/org/acme/signing.key",
        "/artifactory/libs-release/org/acme/signing.key#",
        "/artifactory/libs-release/org/acme/signing.key#.jar",
        "/artifactory/libs-release/site/index.html",
        "/artifactory/libs-release/site/",
    ] {
        let answer = raw(target);
        assert!(!answer.starts_with("HTTP/1.1 200"), "{target}: {answer}");
        assert!(
            !answer.contains("TOP-SECRET") && !answer.contains("internal html"),
            "{target}"
        );
    }
    // What Gatehouse cannot judge is the client's bad request, not a server error (every
    // 400 of Gatehouse reached the client as nginx's 500).
    for target in [
        "/artifactory/libs-release/org/%2e%2e/secret/x",
        "/artifactory/libs-release/org/%ff.jar",
    ] {
        let answer = raw(target);
        assert!(answer.starts_with("HTTP/1.1 400"), "{target}: {answer}");
    }
    // A signed URL's signature stays out of nginx's access log.
    let signed = admin
        .post(
            "/artifactory/api/signed/url",
            &json!({"repo_path": "libs-release/org/acme/app.jar", "valid_for_secs": 60}),
        )
        .json()
        .as_str()
        .unwrap()
        .to_string();
    let signed_uri = &signed[signed.find("/artifactory/").unwrap()..];
    assert_eq!(
        status(ureq::agent().get(&format!("{base}{signed_uri}"))),
        200
    );
    let log = std::fs::read_to_string(work.path().join("access.log")).unwrap_or_default();
    assert!(
        log.contains("/artifactory/libs-release/org/acme/app.jar"),
        "{log}"
    );
    assert!(!log.contains("sig="), "{log}");
}

/// What the shipped template sends Gatehouse and keeps: a client with ninety-odd headers
/// is still judged (every client header went to the check, Gatehouse refused the lot
/// with 431, nginx answered 500); no user name in nginx's log (a token typed as the user
/// name was written there whole); every download marked `private, no-cache`; Gatehouse
/// unreachable is a 503 with `Retry-After` (it was a 500).
#[test]
fn the_template_sends_only_what_the_check_needs_and_logs_no_user_name() {
    let Some(nginx) = nginx_binary() else {
        eprintln!("SKIPPED the_template_sends_only_what_the_check_needs_and_logs_no_user_name: nginx is not installed (apt-get install nginx)");
        return;
    };
    let app = TestApp::spawn();
    let admin = app.admin();
    app.create_user("rob", "password-1");
    let target = json!({"repo": {"repositories": ["libs-release"], "actions": {"users": {"rob": ["read"]}}}});
    assert_eq!(
        admin
            .put("/artifactory/api/v2/security/permissions/readers", &target)
            .status,
        201
    );
    let (work, guard, base) = serve_tree(&nginx, &app);
    let file = format!("{base}/artifactory/libs-release/org/acme/app.jar");
    use base64::Engine;
    let basic = |user: &str, pw: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
        )
    };
    let mut req = ureq::get(&file).set("Authorization", &basic("rob", "password-1"));
    for i in 0..100 {
        req = req.set(&format!("X-Client-{i}"), "v");
    }
    let resp = req.call().expect("judged with a hundred headers");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.header("Cache-Control"), Some("private, no-cache"));
    // A token typed as the user name: refused, and not written to the log.
    let secret_name = "looks-like-a-token-0123456789abcdef";
    assert_eq!(
        status(ureq::get(&file).set("Authorization", &basic(secret_name, ""))),
        401
    );
    let log = std::fs::read_to_string(work.path().join("access.log")).unwrap();
    assert!(log.contains("app.jar"), "{log}");
    assert!(!log.contains(secret_name), "{log}");
    assert!(!log.contains("rob"), "{log}");
    // Gatehouse gone: nginx says it cannot reach it, and when to try again.
    drop(app);
    let answer = ureq::get(&file)
        .set("Authorization", &basic("rob", "password-1"))
        .call();
    match answer {
        Err(ureq::Error::Status(503, r)) => assert_eq!(r.header("Retry-After"), Some("5")),
        other => panic!("{:?}", other.map(|r| r.status())),
    }
    drop(guard);
}

//! Starting servers and talking to them.

use gatehouse::{Application, Config, Settings};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A server running in this process (its own actix system on its own thread).
pub struct TestApp {
    pub base: String,
    pub dir: PathBuf,
    pub admin_password: String,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    _tmp: Option<tempfile::TempDir>,
}

impl TestApp {
    pub fn spawn() -> TestApp {
        Self::spawn_with(Config::default())
    }

    pub fn spawn_with(config: Config) -> TestApp {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut app = Self::start(tmp.path().to_path_buf(), config).expect("server starts");
        app._tmp = Some(tmp);
        app
    }

    /// Start on an existing data directory (restart tests).
    pub fn start(dir: PathBuf, config: Config) -> Result<TestApp, String> {
        let settings = Settings {
            data_dir: dir.clone(),
            listen: "127.0.0.1:0".into(),
            config,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                match Application::build(settings, false).await {
                    Ok(app) => {
                        tx.send(Ok((app.port(), app.handle()))).unwrap();
                        app.run_until_stopped().await.unwrap();
                    }
                    Err(e) => tx.send(Err(e.to_string())).unwrap(),
                }
            })
        });
        let (port, handle) = match rx.recv().expect("server thread reports") {
            Ok(v) => v,
            Err(e) => {
                thread.join().unwrap();
                return Err(e);
            }
        };
        let admin_password = std::fs::read_to_string(dir.join("initial-admin-password"))
            .expect("the initial admin password file")
            .trim()
            .to_string();
        Ok(TestApp {
            base: format!("http://127.0.0.1:{port}"),
            dir,
            admin_password,
            handle,
            thread: Some(thread),
            _tmp: None,
        })
    }

    /// Graceful stop (drain, final snapshot); returns the temp dir so the data survives.
    pub fn stop(mut self) -> Option<tempfile::TempDir> {
        self.shutdown();
        self._tmp.take()
    }

    fn shutdown(&mut self) {
        if let Some(t) = self.thread.take() {
            let h = self.handle.clone();
            actix_web::rt::System::new().block_on(h.stop(true));
            t.join().unwrap();
        }
    }

    pub fn admin(&self) -> Client {
        Client::new(&self.base, Some(("admin", &self.admin_password)))
    }

    pub fn anon(&self) -> Client {
        Client::new(&self.base, None)
    }

    pub fn as_user(&self, user: &str, password: &str) -> Client {
        Client::new(&self.base, Some((user, password)))
    }

    /// Create a user with a password (admin), panicking on failure.
    pub fn create_user(&self, name: &str, password: &str) {
        let r = self.admin().post(
            "/access/api/v2/users",
            &serde_json::json!({"username": name, "password": password}),
        );
        assert_eq!(r.status, 201, "create user {name}: {}", r.text);
    }

    pub fn create_group(&self, name: &str) {
        let r = self
            .admin()
            .post("/access/api/v2/groups", &serde_json::json!({"name": name}));
        assert_eq!(r.status, 201, "create group {name}: {}", r.text);
    }

    pub fn digest(&self) -> Value {
        let r = self.admin().get("/access/api/v1/system/state/digest");
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A minimal HTTP client with optional Basic credentials.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    auth: Option<String>,
}

pub struct Resp {
    pub status: u16,
    pub text: String,
    pub headers: Vec<(String, String)>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The API's error message (`errors[0].message`), checking the error shape.
    pub fn error_message(&self) -> String {
        let v = self.json();
        assert_eq!(
            v["errors"][0]["status"].as_u64(),
            Some(self.status as u64),
            "error shape: {}",
            self.text
        );
        v["errors"][0]["message"]
            .as_str()
            .expect("message")
            .to_string()
    }
}

impl Client {
    pub fn new(base: &str, creds: Option<(&str, &str)>) -> Client {
        use base64::Engine;
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(60))
            .build();
        let auth = creds.map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        Client {
            agent,
            base: base.to_string(),
            auth,
        }
    }

    pub fn auth_header(&self) -> Option<String> {
        self.auth.clone()
    }

    pub fn base_url(&self) -> String {
        self.base.clone()
    }

    pub fn with_header_auth(&self, value: &str) -> Client {
        Client {
            agent: self.agent.clone(),
            base: self.base.clone(),
            auth: Some(value.to_string()),
        }
    }

    pub fn raw(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&[u8]>,
    ) -> Resp {
        self.raw_with(method, path, content_type, body, &[])
    }

    /// A GET with extra request headers.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.raw_with("GET", path, None, None, headers)
    }

    pub fn raw_with(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self
            .agent
            .request(method, &format!("{}{}", self.base, path));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        if let Some(a) = &self.auth {
            req = req.set("Authorization", a);
        }
        if let Some(ct) = content_type {
            req = req.set("Content-Type", ct);
        }
        let result = match body {
            Some(b) => req.send_bytes(b),
            None => req.call(),
        };
        let resp = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        Self::read(resp)
    }

    /// A POST that answers `None` when the server is gone (crash tests).
    pub fn try_post(&self, path: &str, body: &Value) -> Option<Resp> {
        let mut req = self
            .agent
            .request("POST", &format!("{}{}", self.base, path))
            .set("Content-Type", "application/json");
        if let Some(a) = &self.auth {
            req = req.set("Authorization", a);
        }
        match req.send_bytes(body.to_string().as_bytes()) {
            Ok(r) | Err(ureq::Error::Status(_, r)) => Some(Self::read(r)),
            Err(_) => None,
        }
    }

    fn read(resp: ureq::Response) -> Resp {
        let status = resp.status();
        let headers = resp
            .headers_names()
            .into_iter()
            .map(|n| {
                let v = resp.header(&n).unwrap_or("").to_string();
                (n, v)
            })
            .collect();
        let text = resp.into_string().unwrap_or_default();
        Resp {
            status,
            text,
            headers,
        }
    }

    pub fn get(&self, path: &str) -> Resp {
        self.raw("GET", path, None, None)
    }

    pub fn delete(&self, path: &str) -> Resp {
        self.raw("DELETE", path, None, None)
    }

    pub fn send(&self, method: &str, path: &str, body: &Value) -> Resp {
        self.raw(
            method,
            path,
            Some("application/json"),
            Some(body.to_string().as_bytes()),
        )
    }

    pub fn post(&self, path: &str, body: &Value) -> Resp {
        self.send("POST", path, body)
    }

    pub fn patch(&self, path: &str, body: &Value) -> Resp {
        self.send("PATCH", path, body)
    }

    pub fn put(&self, path: &str, body: &Value) -> Resp {
        self.send("PUT", path, body)
    }

    /// POST with no body at all (the seed's "Request: Blank" endpoints).
    pub fn post_empty(&self, path: &str) -> Resp {
        self.raw("POST", path, None, Some(b""))
    }
}

/// The real `gatehouse` binary as a child process.
pub struct ServerProcess {
    pub child: Child,
    pub base: String,
}

pub const BINARY_ADMIN_PASSWORD: &str = "binary-admin-pw";

impl ServerProcess {
    pub fn start(dir: &Path) -> ServerProcess {
        Self::spawn(dir, "warn", Stdio::inherit(), None, "127.0.0.1:0")
    }

    /// Start with a `--config` file.
    pub fn start_with_config(dir: &Path, config: &Path) -> ServerProcess {
        Self::spawn(dir, "warn", Stdio::inherit(), Some(config), "127.0.0.1:0")
    }

    /// Start on a given address (a restart that peers must find again), with a config.
    pub fn start_on(dir: &Path, listen: &str, config: &Path) -> ServerProcess {
        Self::spawn(dir, "warn", Stdio::inherit(), Some(config), listen)
    }

    /// Start with every log line (debug level) written to `log`.
    pub fn start_logging(dir: &Path, log: &Path) -> ServerProcess {
        Self::spawn(
            dir,
            "debug",
            Stdio::from(std::fs::File::create(log).unwrap()),
            None,
            "127.0.0.1:0",
        )
    }

    fn spawn(
        dir: &Path,
        level: &str,
        stderr: Stdio,
        config: Option<&Path>,
        listen: &str,
    ) -> ServerProcess {
        Self::spawn_with_args(dir, level, stderr, config, listen, &[])
    }

    /// Start with extra `serve` arguments (`--tls-cert`, `--log-format`, ...); the base
    /// URL is `https://` when the server says so.
    pub fn spawn_with_args(
        dir: &Path,
        level: &str,
        stderr: Stdio,
        config: Option<&Path>,
        listen: &str,
        args: &[&std::ffi::OsStr],
    ) -> ServerProcess {
        Self::spawn_with_env(dir, level, stderr, config, listen, args, &[])
    }

    /// [`spawn_with_args`](Self::spawn_with_args), with environment variables set for
    /// the server besides the test's own.
    pub fn spawn_with_env(
        dir: &Path,
        level: &str,
        stderr: Stdio,
        config: Option<&Path>,
        listen: &str,
        args: &[&std::ffi::OsStr],
        env: &[(&str, &str)],
    ) -> ServerProcess {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        cmd.envs(env.iter().copied());
        cmd.args(["serve", "--data-dir"])
            .arg(dir)
            .args(["--listen", listen])
            .args(args);
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        let mut child = cmd
            .env("GATEHOUSE_ADMIN_PASSWORD", BINARY_ADMIN_PASSWORD)
            .env("RUST_LOG", level)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start gatehouse");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://") || w.starts_with("https://"))
            .unwrap_or_else(|| panic!("no listening line, got {line:?}"))
            .to_string();
        ServerProcess { child, base: url }
    }

    pub fn admin(&self) -> Client {
        Client::new(&self.base, Some(("admin", BINARY_ADMIN_PASSWORD)))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The `nice` value of each of the process's threads named `name`, from `/proc`
    /// (which keeps the first 15 bytes of a thread's name).
    pub fn thread_niceness(&self, name: &str) -> Vec<i32> {
        let name = &name[..name.len().min(15)];
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.pid())).unwrap();
        tasks
            .filter_map(|t| {
                let t = t.ok()?.path();
                let comm = std::fs::read_to_string(t.join("comm")).ok()?;
                if comm.trim_end() != name {
                    return None;
                }
                gatehouse::background::niceness_of(&t).ok()
            })
            .collect()
    }

    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().unwrap();
    }

    pub fn terminate(self) -> std::process::ExitStatus {
        self.stop_with("-TERM")
    }

    /// Send a signal (`-INT`, `-TERM`, …) and wait for the process to end.
    pub fn stop_with(mut self, signal: &str) -> std::process::ExitStatus {
        self.signal(signal);
        self.child.wait().unwrap()
    }

    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        Command::new("kill").args([signal, &pid]).status().unwrap();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `gatehouse verify --data-dir DIR`: (exit success, stdout).
pub fn verify(dir: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["verify", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

/// Files under `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut hits = vec![];
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            hits.extend(files_containing(&p, needle));
        } else if std::fs::read(&p)
            .map(|b| b.windows(needle.len()).any(|w| w == needle))
            .unwrap_or(false)
        {
            hits.push(p.display().to_string());
        }
    }
    hits
}

/// How many "pairing master token" records `admin` lists (a pairing's master token, handed
/// to the peer: admin, no expiry).
pub fn pairing_master_tokens(admin: &Client) -> usize {
    admin.get("/access/api/v1/tokens").json()["tokens"]
        .as_array()
        .map_or(0, |tokens| {
            tokens
                .iter()
                .filter(|t| {
                    t["description"]
                        .as_str()
                        .is_some_and(|d| d.starts_with("pairing master token"))
                })
                .count()
        })
}

//! Several nodes on one PostgreSQL log (`--store postgres://…`), for real: each test
//! starts its own PostgreSQL from the distribution's package (`initdb`/`pg_ctl` in a
//! temporary directory, 127.0.0.1, a free port) and real `gatehouse` processes. Runs when
//! PostgreSQL is installed (`.ci/run` installs Debian's package); says so loudly when not.

use crate::helpers::{Client, ServerProcess, BINARY_ADMIN_PASSWORD};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const INSTALL: &str = "apt-get install postgresql";

/// A PostgreSQL cluster of its own, stopped (immediately) when dropped.
struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_root: bool,
    /// More `-c` settings for the server (TLS).
    extra: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        .collect();
    // The newest version when several are installed.
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop()
}

impl Postgres {
    /// Start one, or say why not (the caller returns: the test is skipped).
    fn start(test: &str) -> Option<Postgres> {
        let Some(bin) = pg_bin() else {
            println!("SKIPPED {test}: PostgreSQL is not installed ({INSTALL})");
            eprintln!("SKIPPED {test}: PostgreSQL is not installed ({INSTALL})");
            return None;
        };
        let as_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let dir = tempfile::tempdir().unwrap();
        if as_root {
            // PostgreSQL refuses to run as root: its files belong to `postgres`.
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown the PostgreSQL directory to the postgres user");
        }
        let mut pg = Postgres {
            bin,
            dir,
            port: free_port(),
            as_root,
            extra: String::new(),
        };
        let data = pg.dir.path().join("data");
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "gatehouse", "--no-sync", "-E", "UTF8"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The port was free when picked; another test's server may have taken it since
        // (initdb takes a second): another one then.
        for _ in 0..3 {
            if pg.try_start().is_ok() {
                return Some(pg);
            }
            pg.port = free_port();
        }
        pg.ctl_start();
        Some(pg)
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn ctl_start(&self) {
        if let Err(e) = self.try_start() {
            panic!("pg_ctl start: {e}");
        }
    }

    fn try_start(&self) -> Result<(), String> {
        let data = self.dir.path().join("data");
        // fsync off: the tests kill processes, never the machine; it keeps them fast.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100 {}",
            self.port,
            self.dir.path().display(),
            self.extra
        );
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(["-o", &options, "-l"])
            .arg(self.dir.path().join("log"))
            .args(["-w", "-t", "60", "start"])
            .stdout(Stdio::null())
            .output()
            .unwrap();
        if !out.status.success() {
            return Err(format!(
                "{} {}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
            ));
        }
        Ok(())
    }

    /// Stop at once (as a crash would: no checkpoint), or cleanly.
    fn ctl_stop(&self, mode: &str) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", mode, "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    fn url(&self) -> String {
        format!("postgres://gatehouse@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.ctl_stop("immediate");
    }
}

/// A node of the shared log: a real `gatehouse serve --store …`.
/// A node of the shared log at `url`, with the master key every node of these tests
/// shares (the same bytes, written into its own data directory). Nodes of one log need
/// one master key: without it, a second node does not start (see
/// `a_second_node_without_the_master_key_does_not_take_signing_from_the_first`).
fn node(dir: &Path, url: &str, config: Option<&Path>) -> ServerProcess {
    let master = dir.join("test-master.key");
    std::fs::write(&master, [0x5au8; 48]).unwrap();
    ServerProcess::spawn_with_args(
        dir,
        "warn",
        Stdio::inherit(),
        config,
        "127.0.0.1:0",
        &[
            OsStr::new("--store"),
            OsStr::new(url),
            OsStr::new("--master-key-file"),
            master.as_os_str(),
        ],
    )
}

/// Without a master key a node keeps its keys to itself: that is one node on
/// PostgreSQL. A second such node found the first one's keys unusable and made new
/// ones, and from then on the first answered 500 to every token request and every
/// signed URL it had issued failed. Now the second refuses to start, and says why.
#[test]
fn a_second_node_without_the_master_key_does_not_take_signing_from_the_first() {
    let Some(pg) = Postgres::start(
        "a_second_node_without_the_master_key_does_not_take_signing_from_the_first",
    ) else {
        return;
    };
    let url = pg.url();
    let keyless = |dir: &Path| {
        ServerProcess::spawn_with_args(
            dir,
            "warn",
            Stdio::inherit(),
            None,
            "127.0.0.1:0",
            &[OsStr::new("--store"), OsStr::new(&url)],
        )
    };
    let a_dir = tempfile::tempdir().unwrap();
    let a = keyless(a_dir.path());
    let token = |base: &str| {
        admin(base).post(
            "/access/api/v1/tokens",
            &json!({"username": "admin", "scope": "applied-permissions/user"}),
        )
    };
    assert_eq!(token(&a.base).status, 200);
    let b_dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(b_dir.path())
        .args(["--store", &url])
        .env("GATEHOUSE_ADMIN_PASSWORD", BINARY_ADMIN_PASSWORD)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--master-key-file"), "{stderr}");
    let r = token(&a.base);
    assert_eq!(r.status, 200, "{}", r.text);
    // The lone node restarts with its own keys.
    assert!(a.terminate().success());
    let a = keyless(a_dir.path());
    assert_eq!(token(&a.base).status, 200);
}

fn gatehouse(args: &[&OsStr]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("GATEHOUSE_STORE")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `head hash …` and `state digest …` of a verify/import/replay line.
fn head_and_digest(line: &str) -> (String, String) {
    let after = |key: &str| {
        line.split(key)
            .nth(1)
            .and_then(|r| r.split([',', ' ', '\n']).find(|w| !w.is_empty()))
            .unwrap_or_else(|| panic!("no `{key}` in {line:?}"))
            .to_string()
    };
    (after("head hash "), after("state digest "))
}

fn admin(base: &str) -> Client {
    Client::new(base, Some(("admin", BINARY_ADMIN_PASSWORD)))
}

fn digest(base: &str) -> Value {
    let r = admin(base).get("/access/api/v1/system/state/digest");
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

/// Wait until every node has applied `seq`, then return their digests.
fn digests_at(bases: &[String], seq: u64) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let all: Vec<Value> = bases.iter().map(|b| digest(b)).collect();
        if all.iter().all(|d| d["seq"].as_u64() == Some(seq)) {
            return all;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the nodes did not all reach position {seq}: {all:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The shared log's events, read with `gatehouse export --store` (which checks the chain).
fn shared_events(url: &str) -> Vec<gatehouse_schemas::Envelope> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("log.bin");
    let (ok, out) = gatehouse(&[
        OsStr::new("export"),
        OsStr::new("--store"),
        OsStr::new(url),
        OsStr::new("--out"),
        file.as_os_str(),
    ]);
    assert!(ok, "{out}");
    let records = gatehouse::log::export::read(&std::fs::read(&file).unwrap()).unwrap();
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            assert_eq!(r.seq, i as u64 + 1, "positions are contiguous");
            gatehouse_schemas::decode(&r.bytes).unwrap()
        })
        .collect()
}

fn groups_created(events: &[gatehouse_schemas::Envelope]) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for e in events {
        if let gatehouse_schemas::Event::GroupCreated(g) = &e.event {
            *n.entry(g.name.clone()).or_insert(0) += 1;
        }
    }
    n
}

/// Acknowledged writes of a load: group name → the position the server answered.
type Acked = Arc<Mutex<Vec<(String, u64)>>>;

/// Writers on every node at once: each creates its own groups, and all of them race for
/// the same `shared-*` names (exactly one may win each). Returns the acknowledged ones.
fn load(bases: &[String], writers_per_node: usize, per_writer: usize, tag: &str) -> Acked {
    let acked: Acked = Default::default();
    std::thread::scope(|scope| {
        for (n, base) in bases.iter().enumerate() {
            for w in 0..writers_per_node {
                let acked = acked.clone();
                let client = admin(base);
                scope.spawn(move || {
                    for i in 0..per_writer {
                        let name = if i % 3 == 0 {
                            format!("{tag}-shared-{i}")
                        } else {
                            format!("{tag}-n{n}-w{w}-{i}")
                        };
                        // A node that is gone, or a 503 while PostgreSQL restarts, is not
                        // an acknowledgement: only a 201 is.
                        let Some(r) =
                            client.try_post("/access/api/v2/groups", &json!({"name": name}))
                        else {
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        };
                        if r.status == 201 {
                            let seq = r.header("x-gatehouse-seq").unwrap().parse().unwrap();
                            acked.lock().unwrap().push((name, seq));
                        } else {
                            assert!(
                                [409, 503].contains(&r.status),
                                "{name}: {} {}",
                                r.status,
                                r.text
                            );
                        }
                    }
                });
            }
        }
    });
    acked
}

/// Every acknowledged write is in the shared log exactly once, at the position it was
/// acknowledged with; every `shared-*` name was created exactly once.
fn check_exactly_once(url: &str, acked: &Acked) -> Vec<gatehouse_schemas::Envelope> {
    let events = shared_events(url);
    let created = groups_created(&events);
    for (name, seq) in acked.lock().unwrap().iter() {
        assert_eq!(created.get(name), Some(&1), "{name} is in the log once");
        match &events[*seq as usize - 1].event {
            gatehouse_schemas::Event::GroupCreated(g) => assert_eq!(&g.name, name),
            e => panic!("position {seq} holds {e:?}, not {name}"),
        }
    }
    for (name, n) in &created {
        assert_eq!(*n, 1, "{name} created {n} times");
    }
    events
}

fn verify_shared(url: &str) -> (String, String) {
    let (ok, out) = gatehouse(&[OsStr::new("verify"), OsStr::new("--store"), OsStr::new(url)]);
    assert!(ok && out.contains("chain intact"), "{out}");
    head_and_digest(&out)
}

/// A node's own copy of the log (its data directory, after it stopped) is the shared
/// chain: it applied every event, in order, and skipped none.
fn verify_copy(dir: &Path) -> (String, String) {
    let (ok, out) = gatehouse(&[
        OsStr::new("verify"),
        OsStr::new("--data-dir"),
        dir.as_os_str(),
    ]);
    assert!(ok && out.contains("chain intact"), "{out}");
    head_and_digest(&out)
}

#[test]
fn three_nodes_write_at_once_into_one_chain_with_every_write_exactly_once() {
    let Some(pg) =
        Postgres::start("three_nodes_write_at_once_into_one_chain_with_every_write_exactly_once")
    else {
        return;
    };
    let url = pg.url();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes: Vec<ServerProcess> = dirs.iter().map(|d| node(d.path(), &url, None)).collect();
    // On a shared log the writer is not raised ahead of the HTTP workers (its batches
    // wait on PostgreSQL's backends, which are not): it keeps the priority it started with.
    let own = gatehouse::background::current_niceness().unwrap();
    for n in &nodes {
        assert_eq!(n.thread_niceness("gatehouse-writer"), vec![own]);
    }
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
    let acked = load(&bases, 3, 24, "a");
    let events = check_exactly_once(&url, &acked);
    // Every conflicting name was won by exactly one writer.
    let names: HashSet<String> = acked
        .lock()
        .unwrap()
        .iter()
        .map(|(n, _)| n.clone())
        .collect();
    for i in (0..24).step_by(3) {
        assert!(
            names.contains(&format!("a-shared-{i}")),
            "a-shared-{i} acknowledged"
        );
    }
    let head = events.len() as u64;
    let digests = digests_at(&bases, head);
    assert!(
        digests.iter().all(|d| d["digest"] == digests[0]["digest"]),
        "{digests:?}"
    );
    let (hash, digest) = verify_shared(&url);
    assert_eq!(digest, digests[0]["digest"].as_str().unwrap());
    // Writers meeting at a position are not errors in PostgreSQL's own log.
    let pg_log = std::fs::read_to_string(pg.dir.path().join("log")).unwrap_or_default();
    assert!(
        !pg_log.contains("duplicate key"),
        "conflicts logged as errors by PostgreSQL"
    );
    for (n, d) in nodes.into_iter().zip(&dirs) {
        assert!(n.terminate().success());
        let (copy_hash, copy_digest) = verify_copy(d.path());
        assert_eq!((&copy_hash, &copy_digest), (&hash, &digest));
    }
}

#[test]
fn a_killed_node_and_a_restarted_postgres_lose_and_duplicate_nothing() {
    let Some(pg) =
        Postgres::start("a_killed_node_and_a_restarted_postgres_lose_and_duplicate_nothing")
    else {
        return;
    };
    let url = pg.url();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes: Vec<Option<ServerProcess>> = dirs
        .iter()
        .map(|d| Some(node(d.path(), &url, None)))
        .collect();
    let bases: Vec<String> = nodes
        .iter()
        .map(|n| n.as_ref().unwrap().base.clone())
        .collect();
    let acked: Acked = Default::default();
    std::thread::scope(|scope| {
        let writers = scope.spawn(|| load(&bases, 2, 60, "k"));
        // In the middle of the load: SIGKILL one node, then restart PostgreSQL at once
        // (immediate mode: no shutdown checkpoint, connections cut).
        std::thread::sleep(Duration::from_millis(400));
        nodes[2].take().unwrap().kill();
        std::thread::sleep(Duration::from_millis(200));
        pg.ctl_stop("immediate");
        std::thread::sleep(Duration::from_millis(300));
        pg.ctl_start();
        let got = writers.join().unwrap();
        acked.lock().unwrap().extend(got.lock().unwrap().drain(..));
    });
    // The nodes carry on after PostgreSQL is back, and the killed one rejoins from its
    // data directory.
    let after = load(&bases[..2], 1, 6, "after");
    // Two nodes, six writes each: four names of their own, two they race for.
    assert_eq!(
        after.lock().unwrap().len(),
        10,
        "writes succeed after the restart"
    );
    acked
        .lock()
        .unwrap()
        .extend(after.lock().unwrap().drain(..));
    nodes[2] = Some(node(dirs[2].path(), &url, None));
    let bases = [
        bases[0].clone(),
        bases[1].clone(),
        nodes[2].as_ref().unwrap().base.clone(),
    ];
    let events = check_exactly_once(&url, &acked);
    let digests = digests_at(&bases, events.len() as u64);
    assert!(
        digests.iter().all(|d| d["digest"] == digests[0]["digest"]),
        "{digests:?}"
    );
    let (hash, digest) = verify_shared(&url);
    for (n, d) in nodes.into_iter().zip(&dirs) {
        assert!(n.unwrap().terminate().success());
        assert_eq!(verify_copy(d.path()), (hash.clone(), digest.clone()));
    }
}

#[test]
fn min_seq_makes_a_read_on_another_node_see_the_write() {
    let Some(pg) = Postgres::start("min_seq_makes_a_read_on_another_node_see_the_write") else {
        return;
    };
    let url = pg.url();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = node(a_dir.path(), &url, None);
    // B neither listens nor polls in the time of this test: only X-Gatehouse-Min-Seq
    // makes it read the shared log, so a stale read would show. The wait is the
    // default's (2 s): nothing here relies on it running out but the position no node
    // has, and a catch-up slower than 300 ms on a loaded machine answered 503.
    let config = b_dir.path().join("gatehouse.toml");
    std::fs::write(
        &config,
        "follow-listen = false\nfollow-poll-ms = 600000\nmin-seq-wait-ms = 2000\n",
    )
    .unwrap();
    let b = node(b_dir.path(), &url, Some(&config));
    for i in 0..10 {
        let r = a.admin().post(
            "/access/api/v2/groups",
            &json!({"name": format!("ryw-{i}")}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        let seq = r.header("x-gatehouse-seq").unwrap().to_string();
        let read = b.admin().get_with(
            &format!("/access/api/v2/groups/ryw-{i}"),
            &[("X-Gatehouse-Min-Seq", &seq)],
        );
        assert_eq!(
            read.status, 200,
            "ryw-{i} at {seq} on the other node: {}",
            read.text
        );
    }
    // `as_of` a position another node just wrote: waited for as Min-Seq waits (it was
    // "after the last event").
    for i in 0..5 {
        let r = a.admin().post(
            "/access/api/v2/groups",
            &json!({"name": format!("past-{i}")}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        let seq = r.header("x-gatehouse-seq").unwrap().to_string();
        let read = b
            .admin()
            .get(&format!("/access/api/v2/groups/past-{i}?as_of={seq}"));
        assert_eq!(read.status, 200, "past-{i} as of {seq}: {}", read.text);
    }
    // A 409 carries a position that includes what it was refused for: C, which does
    // not follow either, is told that A's group exists (its write met A's in the shared
    // log), and B reads the group with C's position. A 409 had no position to pass on.
    let c_dir = tempfile::tempdir().unwrap();
    let c_config = c_dir.path().join("gatehouse.toml");
    std::fs::copy(&config, &c_config).unwrap();
    let c = node(c_dir.path(), &url, Some(&c_config));
    let r = a
        .admin()
        .post("/access/api/v2/groups", &json!({"name": "taken"}));
    assert_eq!(r.status, 201, "{}", r.text);
    let created: u64 = r.header("x-gatehouse-seq").unwrap().parse().unwrap();
    let r = c
        .admin()
        .post("/access/api/v2/groups", &json!({"name": "taken"}));
    assert_eq!(r.status, 409, "{}", r.text);
    let told = r
        .header("x-gatehouse-seq")
        .expect("a 409 carries X-Gatehouse-Seq")
        .to_string();
    assert!(
        told.parse::<u64>().unwrap() >= created,
        "{told} < {created}"
    );
    let read = b.admin().get_with(
        "/access/api/v2/groups/taken",
        &[("X-Gatehouse-Min-Seq", &told)],
    );
    assert_eq!(read.status, 200, "{}", read.text);
    // A position no node has: bounded wait, then 503 with Retry-After.
    let r = b.admin().get_with(
        "/access/api/v2/groups/ryw-0",
        &[("X-Gatehouse-Min-Seq", "1000000")],
    );
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.header("retry-after").is_some());
    assert!(r.text.contains("X-Gatehouse-Min-Seq"), "{}", r.text);
    let r = b.admin().get_with(
        "/access/api/v2/groups/ryw-0",
        &[("X-Gatehouse-Min-Seq", "soon")],
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("X-Gatehouse-Min-Seq"), "{}", r.text);
}

#[test]
fn a_log_moves_from_sled_to_postgres_and_back_with_the_same_chain_and_digest() {
    let Some(pg) = Postgres::start(
        "a_log_moves_from_sled_to_postgres_and_back_with_the_same_chain_and_digest",
    ) else {
        return;
    };
    let url = pg.url();
    let one = tempfile::tempdir().unwrap();
    {
        let server = ServerProcess::start(one.path());
        for i in 0..20 {
            let r = server.admin().post(
                "/access/api/v2/groups",
                &json!({"name": format!("moved-{i}")}),
            );
            assert_eq!(r.status, 201, "{}", r.text);
        }
        assert!(server.terminate().success());
    }
    let original = verify_copy(one.path());
    // A node whose data directory holds events, started on a database without a
    // Gatehouse log: the wrong database, refused before anything is made there.
    let mut refused = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(one.path())
        .args(["--store", &url])
        .env_remove("GATEHOUSE_STORE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = refused.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = refused.kill();
            panic!("a node started on a database without a log kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = refused.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !status.success() && said.contains("holds no Gatehouse log"),
        "{said}"
    );
    let (ok, out) = gatehouse(&[
        OsStr::new("verify"),
        OsStr::new("--store"),
        OsStr::new(&url),
    ]);
    assert!(!ok && out.contains("holds no Gatehouse log"), "{out}");
    let files = tempfile::tempdir().unwrap();
    let (out1, out2) = (
        files.path().join("one.bin"),
        files.path().join("two.ndjson"),
    );
    let s = |p: &Path| p.as_os_str().to_owned();
    let (ok, out) = gatehouse(&[
        OsStr::new("export"),
        OsStr::new("--data-dir"),
        &s(one.path()),
        OsStr::new("--out"),
        &s(&out1),
    ]);
    assert!(ok, "{out}");
    let (ok, out) = gatehouse(&[
        OsStr::new("import"),
        OsStr::new("--store"),
        OsStr::new(&url),
        OsStr::new("--in"),
        &s(&out1),
    ]);
    assert!(ok, "{out}");
    assert_eq!(head_and_digest(&out), original);
    assert_eq!(verify_shared(&url), original);
    // A second import into a log that is not empty is refused.
    let (ok, out) = gatehouse(&[
        OsStr::new("import"),
        OsStr::new("--store"),
        OsStr::new(&url),
        OsStr::new("--in"),
        &s(&out1),
    ]);
    assert!(!ok && out.contains("already holds"), "{out}");
    // A node on the shared log starts from it, with a new data directory, and serves it.
    let node_dir = tempfile::tempdir().unwrap();
    {
        let n = node(node_dir.path(), &url, None);
        let r = n.admin().get("/access/api/v2/groups/moved-19");
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(n.terminate().success());
    }
    // (It may have added events of its own at start: keys it did not have.)
    let shared = verify_shared(&url);
    assert_eq!(verify_copy(node_dir.path()), shared);
    let (ok, out) = gatehouse(&[
        OsStr::new("replay"),
        OsStr::new("--store"),
        OsStr::new(&url),
    ]);
    assert!(ok, "{out}");
    let (ok, out) = gatehouse(&[
        OsStr::new("export"),
        OsStr::new("--store"),
        OsStr::new(&url),
        OsStr::new("--out"),
        &s(&out2),
        OsStr::new("--format"),
        OsStr::new("ndjson"),
    ]);
    assert!(ok, "{out}");
    let two = tempfile::tempdir().unwrap();
    let back = two.path().join("data");
    let (ok, out) = gatehouse(&[
        OsStr::new("import"),
        OsStr::new("--data-dir"),
        &s(&back),
        OsStr::new("--in"),
        &s(&out2),
    ]);
    assert!(ok, "{out}");
    assert_eq!(head_and_digest(&out), shared);
    assert_eq!(verify_copy(&back), shared);
}

#[test]
fn a_row_that_breaks_the_chain_stops_every_node_with_its_position() {
    let Some(pg) =
        Postgres::start("a_row_that_breaks_the_chain_stops_every_node_with_its_position")
    else {
        return;
    };
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let mut a = node(dir.path(), &url, None);
    let r = a
        .admin()
        .post("/access/api/v2/groups", &json!({"name": "before"}));
    assert_eq!(r.status, 201, "{}", r.text);
    let head: i64 = r.header("x-gatehouse-seq").unwrap().parse().unwrap();
    // Someone writes a row behind Gatehouse's back: right position, wrong hash.
    let mut sql = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    sql.execute(
        "INSERT INTO gatehouse_events (position, hash, bytes) VALUES ($1, $2, $3)",
        &[&(head + 1), &vec![7u8; 32], &b"forged".to_vec()],
    )
    .unwrap();
    sql.execute("SELECT pg_notify('gatehouse_events', 'forged')", &[])
        .unwrap();
    // The node reads it, refuses it, and stops (fail-stop), naming the position.
    let started = Instant::now();
    let status = loop {
        if let Some(s) = a.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the node kept serving"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(70));
    let (ok, out) = gatehouse(&[
        OsStr::new("verify"),
        OsStr::new("--store"),
        OsStr::new(&url),
    ]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("chain broken at position {}", head + 1)),
        "{out}"
    );
    // A node that starts on it stops before serving, naming the position too.
    let fresh = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(fresh.path())
        .args(["--store", &url])
        .env("GATEHOUSE_ADMIN_PASSWORD", BINARY_ADMIN_PASSWORD)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains(&format!("position {}", head + 1)), "{text}");
    // A gap is refused the same way.
    sql.execute(
        "DELETE FROM gatehouse_events WHERE position = $1",
        &[&(head + 1)],
    )
    .unwrap();
    sql.execute(
        "INSERT INTO gatehouse_events (position, hash, bytes) VALUES ($1, $2, $3)",
        &[&(head + 2), &vec![7u8; 32], &b"forged".to_vec()],
    )
    .unwrap();
    let (ok, out) = gatehouse(&[
        OsStr::new("verify"),
        OsStr::new("--store"),
        OsStr::new(&url),
    ]);
    assert!(
        !ok && out.contains(&format!("position {} is missing", head + 1)),
        "{out}"
    );
    drop(a);
}

/// A node with the master key file (`--master-key-file`).
fn keyed_node(dir: &Path, url: &str, master: &Path) -> ServerProcess {
    ServerProcess::spawn_with_args(
        dir,
        "warn",
        Stdio::inherit(),
        None,
        "127.0.0.1:0",
        &[
            OsStr::new("--store"),
            OsStr::new(url),
            OsStr::new("--master-key-file"),
            master.as_os_str(),
        ],
    )
}

#[test]
fn nodes_share_their_keys_sealed_under_the_master_key() {
    let Some(pg) = Postgres::start("nodes_share_their_keys_sealed_under_the_master_key") else {
        return;
    };
    let url = pg.url();
    let secrets = tempfile::tempdir().unwrap();
    let master = secrets.path().join("master.key");
    std::fs::write(&master, [0x5au8; 48]).unwrap();
    let (a_dir, b_dir, c_dir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let a = keyed_node(a_dir.path(), &url, &master);
    // Personal data is sealed with a key A makes for the user.
    let r = a.admin().post(
        "/access/api/v2/users",
        &json!({"username": "pat", "password": "s3cret-pass-1", "email": "pat@example.com"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let seq = r.header("x-gatehouse-seq").unwrap().to_string();
    let b = keyed_node(b_dir.path(), &url, &master);
    // B opens what A sealed.
    let u = b
        .admin()
        .get_with("/access/api/v2/users/pat", &[("X-Gatehouse-Min-Seq", &seq)]);
    assert_eq!(u.status, 200, "{}", u.text);
    assert_eq!(u.json()["email"], "pat@example.com", "{}", u.text);
    // And A opens what B seals, made after B started.
    let r = b.admin().post(
        "/access/api/v2/users",
        &json!({"username": "sam", "password": "s3cret-pass-2", "email": "sam@example.com"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let seq = r.header("x-gatehouse-seq").unwrap().to_string();
    let u = a
        .admin()
        .get_with("/access/api/v2/users/sam", &[("X-Gatehouse-Min-Seq", &seq)]);
    assert_eq!(u.json()["email"], "sam@example.com", "{}", u.text);
    // A purge on one node erases the user's personal data on every node (B read it with
    // the key before, so B held a copy of it).
    let then = |node: &ServerProcess| {
        let r = node
            .admin()
            .get(&format!("/access/api/v2/users/sam?as_of={seq}"));
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()["email"].clone()
    };
    assert_eq!(then(&b), "sam@example.com");
    let r = a.admin().delete("/access/api/v2/users/sam?purge=true");
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(then(&a), "[erased]");
    let started = Instant::now();
    while then(&b) != "[erased]" {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "B still shows the purged e-mail"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A token made on one node works on the other (as it would without shared keys), and
    // no node started with a signing key of its own: one key for all of them, even for a
    // node with an empty data directory.
    let c = keyed_node(c_dir.path(), &url, &master);
    let signing_keys = shared_events(&url)
        .iter()
        .filter(|e| matches!(e.event, gatehouse_schemas::Event::SigningKeyAdded { .. }))
        .count();
    assert_eq!(signing_keys, 1, "one signing key for every node");
    // In PostgreSQL the keys are sealed: none of A's key files is there in clear.
    let mut sql = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let sealed: Vec<Vec<u8>> = sql
        .query("SELECT sealed FROM gatehouse_keys", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        sealed.len() >= 3,
        "signing, signed-URL and personal keys are shared"
    );
    let mut files = vec![];
    for d in [
        a_dir.path().join("keys"),
        a_dir.path().join("keys/personal"),
    ] {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            if e.path().is_file() {
                files.push(
                    std::fs::read_to_string(e.path())
                        .unwrap()
                        .trim()
                        .to_string(),
                );
            }
        }
    }
    assert!(!files.is_empty());
    for f in &files {
        assert!(
            !sealed
                .iter()
                .any(|s| s.windows(f.len()).any(|w| w == f.as_bytes())),
            "a key is in the database in clear"
        );
    }
    // A node with another master key cannot open them, and says so.
    let wrong = secrets.path().join("wrong.key");
    std::fs::write(&wrong, [0x11u8; 48]).unwrap();
    let d = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(d.path())
        .args(["--store", &url, "--master-key-file"])
        .arg(&wrong)
        .env("GATEHOUSE_ADMIN_PASSWORD", BINARY_ADMIN_PASSWORD)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("master key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop((a, b, c));
}

/// Every `keys/…` file of the nodes' data directories, by name: a name two nodes hold
/// must hold one key.
fn shared_key_files(dirs: &[&Path]) -> HashMap<String, Vec<String>> {
    let mut files: HashMap<String, Vec<String>> = HashMap::new();
    for dir in dirs {
        for sub in ["keys", "keys/personal"] {
            let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
                continue;
            };
            for e in entries.flatten() {
                let name = format!("{sub}/{}", e.file_name().to_string_lossy());
                if e.path().is_file() && !name.ends_with(".tmp") {
                    let text = std::fs::read_to_string(e.path()).unwrap();
                    files.entry(name).or_default().push(text.trim().to_string());
                }
            }
        }
    }
    files
}

fn assert_one_key_per_name(dirs: &[&Path]) {
    for (name, copies) in shared_key_files(dirs) {
        assert!(
            copies.windows(2).all(|w| w[0] == w[1]),
            "nodes hold different keys under `{name}`"
        );
    }
}

/// Keys with a fixed name (the signed-URL key of a version, the webhook-secret key) made
/// by two nodes at once are one key: the first node's. Nodes started together on an
/// empty database each made signed-URL key 1, all but one failed to start, and the
/// losers' keys signed URLs that no other node accepted.
#[test]
fn nodes_that_make_the_same_key_at_once_keep_one() {
    let Some(pg) = Postgres::start("nodes_that_make_the_same_key_at_once_keep_one") else {
        return;
    };
    let url = pg.url();
    let secrets = tempfile::tempdir().unwrap();
    let master = secrets.path().join("master.key");
    std::fs::write(&master, [0x5au8; 48]).unwrap();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes: Vec<ServerProcess> = std::thread::scope(|s| {
        let started: Vec<_> = dirs
            .iter()
            .map(|d| {
                let (url, master) = (&url, &master);
                s.spawn(move || keyed_node(d.path(), url, master))
            })
            .collect();
        started.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let paths: Vec<&Path> = dirs.iter().map(|d| d.path()).collect();
    assert_one_key_per_name(&paths);
    // Key replacements racing on two nodes, and a subscription with a secret (the first
    // makes the webhook-secret key) on each of two nodes at once.
    for round in 0..4 {
        std::thread::scope(|s| {
            for n in [&nodes[0], &nodes[2]] {
                s.spawn(move || {
                    n.admin()
                        .post("/artifactory/api/signed/url/key", &json!({}))
                });
            }
            if round == 0 {
                for (i, n) in [&nodes[0], &nodes[1]].into_iter().enumerate() {
                    s.spawn(move || {
                        let r = n.admin().post(
                            "/event/api/v1/subscriptions",
                            &json!({
                                "key": format!("hook{i}"),
                                "event_filter": {"domain": "group", "event_types": ["created"]},
                                "handlers": [{"handler_type": "webhook",
                                              "url": "http://127.0.0.1:9/",
                                              "secret": "s3cr3t-hook"}]
                            }),
                        );
                        assert_eq!(r.status, 201, "{}", r.text);
                    });
                }
            }
        });
        assert_one_key_per_name(&paths);
    }
    // A URL signed on any node verifies on every node.
    let head = nodes
        .iter()
        .map(|n| digest(&n.base)["seq"].as_u64().unwrap())
        .max()
        .unwrap()
        .to_string();
    for signer in &nodes {
        let r = signer.admin().raw_with(
            "POST",
            "/artifactory/api/signed/url",
            Some("application/json"),
            Some(
                json!({"repo_path": "libs/a.jar", "valid_for_secs": 600})
                    .to_string()
                    .as_bytes(),
            ),
            &[("X-Gatehouse-Min-Seq", &head)],
        );
        assert_eq!(r.status, 201, "{}", r.text);
        let signed = r.text.trim().trim_matches('"').to_string();
        let path = signed
            .split_once("/artifactory")
            .map(|(_, p)| p)
            .unwrap()
            .to_string();
        let query = format!("/artifactory{path}")
            .replace('%', "%25")
            .replace('?', "%3F")
            .replace('&', "%26")
            .replace('=', "%3D");
        for checker in &nodes {
            let r = checker.admin().get_with(
                &format!("/artifactory/api/signed/url/verify?url={query}"),
                &[("X-Gatehouse-Min-Seq", &head)],
            );
            assert_eq!(
                r.status, 200,
                "signed on {} and checked on {}: {}",
                signer.base, checker.base, r.text
            );
        }
    }
    // A node whose own webhook-secret key differs from the shared one (an old server's
    // data directory joining after a new node made the key) does not start: either key
    // may have sealed data in the log, and taking the shared one destroyed the only
    // copy of the other. Its file is left as it was.
    let old = tempfile::tempdir().unwrap();
    let own = old.path().join("keys/personal/webhooks");
    std::fs::create_dir_all(own.parent().unwrap()).unwrap();
    std::fs::write(&own, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(old.path())
        .args(["--store", &url, "--master-key-file"])
        .arg(&master)
        .env("GATEHOUSE_ADMIN_PASSWORD", BINARY_ADMIN_PASSWORD)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the node started with a webhook-secret key that differs from the shared one");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut said = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut said).unwrap();
    assert!(
        said.contains("keys/personal/webhooks") && said.contains("differs"),
        "{said}"
    );
    assert_eq!(
        std::fs::read_to_string(&own).unwrap().trim(),
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
    );
    drop(nodes);
}

/// Each node's view of the delivery lease (the digest answer's `lease`).
fn lease_of(base: &str) -> Value {
    digest(base)["lease"].clone()
}

/// Wait until exactly one of `bases` holds the lease; its index.
fn holder_among(bases: &[String]) -> usize {
    let started = Instant::now();
    loop {
        let held: Vec<usize> = (0..bases.len())
            .filter(|&i| lease_of(&bases[i])["held"] == true)
            .collect();
        if held.len() == 1 {
            return held[0];
        }
        assert!(held.len() < 2, "two nodes hold the lease at once: {held:?}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no node took the lease: {:?}",
            bases.iter().map(|b| lease_of(b)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Idempotency key → how many times the receiver got it.
fn deliveries_per_key(rx: &crate::deliveries::Receiver) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for r in rx.events() {
        let key = r.header("x-gatehouse-idempotency-key").unwrap().to_string();
        *n.entry(key).or_insert(0) += 1;
    }
    n
}

/// Wait until the receiver got every position in `seqs` at least once.
fn wait_for_keys(rx: &crate::deliveries::Receiver, seqs: &[u64], secs: u64) {
    let started = Instant::now();
    loop {
        let got = deliveries_per_key(rx);
        let missing: Vec<&u64> = seqs
            .iter()
            .filter(|s| !got.contains_key(&s.to_string()))
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "after {secs} s the receiver still lacks {} deliveries: {missing:?}",
            missing.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_webhook_lease_moves_to_another_node_when_its_holder_is_killed_and_the_receiver_gets_everything(
) {
    let Some(pg) = Postgres::start(
        "the_webhook_lease_moves_to_another_node_when_its_holder_is_killed_and_the_receiver_gets_everything",
    ) else {
        return;
    };
    let url = pg.url();
    let conf_dir = tempfile::tempdir().unwrap();
    let config = conf_dir.path().join("gatehouse.toml");
    // The lease at its defaults (renewed every second, 5 s to live); a checkpoint every
    // 20 events, to see that one node signs them (any node can: the keys are shared).
    std::fs::write(&config, "checkpoint-every = 20\n").unwrap();
    let master = conf_dir.path().join("master.key");
    std::fs::write(&master, [0x5au8; 48]).unwrap();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes: Vec<Option<ServerProcess>> = dirs
        .iter()
        .map(|d| {
            Some(ServerProcess::spawn_with_args(
                d.path(),
                "warn",
                Stdio::inherit(),
                Some(&config),
                "127.0.0.1:0",
                &[
                    OsStr::new("--store"),
                    OsStr::new(&url),
                    OsStr::new("--master-key-file"),
                    master.as_os_str(),
                ],
            ))
        })
        .collect();
    let bases: Vec<String> = nodes
        .iter()
        .map(|n| n.as_ref().unwrap().base.clone())
        .collect();
    let rx = crate::deliveries::Receiver::start();
    let r = admin(&bases[0]).post(
        "/event/api/v1/subscriptions",
        &json!({
            "key": "groups",
            "event_filter": {"domain": "group", "event_types": ["created"],
                             "criteria": {"includePatterns": ["lease-*"]}},
            "handlers": [{"handler_type": "webhook", "url": rx.url, "secret": "s3cr3t-hook"}]
        }),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    // Writes on all three nodes: every one is delivered once, by the holder alone.
    let write = |base: &str, name: &str| -> Option<u64> {
        let r = admin(base).try_post("/access/api/v2/groups", &json!({ "name": name }))?;
        (r.status == 201).then(|| r.header("x-gatehouse-seq").unwrap().parse().unwrap())
    };
    let mut before = Vec::new();
    for i in 0..30 {
        before.push(write(&bases[i % 3], &format!("lease-before-{i}")).expect("written"));
    }
    wait_for_keys(&rx, &before, 30);
    std::thread::sleep(Duration::from_millis(500));
    let per_key = deliveries_per_key(&rx);
    for s in &before {
        assert_eq!(
            per_key.get(&s.to_string()),
            Some(&1),
            "position {s} delivered once, not once per node: {per_key:?}"
        );
    }
    assert_eq!(
        rx.events().len(),
        before.len(),
        "nothing else was delivered"
    );
    // One node holds the lease, and says so (digest answer and metric).
    let holder = holder_among(&bases);
    for (i, b) in bases.iter().enumerate() {
        let m = admin(b).get("/access/api/v1/metrics");
        assert_eq!(m.status, 200, "{}", m.text);
        let want = format!(
            "gatehouse_lease_held{{name=\"dispatch\"}} {}",
            (i == holder) as u8
        );
        assert!(
            m.text.contains(&want),
            "node {i}: no `{want}` in\n{}",
            m.text
        );
    }
    // Only the holder attempted anything; the others' outboxes followed its cursor.
    for (i, b) in bases.iter().enumerate() {
        let d = admin(b)
            .get("/event/api/v1/subscriptions/groups/deliveries")
            .json();
        let attempts = d["attempts"].as_array().unwrap().len();
        if i == holder {
            assert_eq!(attempts, before.len(), "{d}");
        } else {
            assert_eq!(attempts, 0, "node {i} does not hold the lease: {d}");
        }
    }
    // Writes go on on the two other nodes; the holder is SIGKILLed in the middle.
    let survivors: Vec<String> = (0..3)
        .filter(|&i| i != holder)
        .map(|i| bases[i].clone())
        .collect();
    let after: Mutex<Vec<u64>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for (w, base) in survivors.iter().enumerate() {
            let after = &after;
            let write = &write;
            scope.spawn(move || {
                for i in 0..40 {
                    if let Some(seq) = write(base, &format!("lease-after-{w}-{i}")) {
                        after.lock().unwrap().push(seq);
                    }
                    std::thread::sleep(Duration::from_millis(25));
                }
            });
        }
        std::thread::sleep(Duration::from_millis(300));
        nodes[holder].take().unwrap().kill();
    });
    let after = after.into_inner().unwrap();
    assert_eq!(after.len(), 80, "every write on a surviving node succeeded");
    // Another node takes over (within the lease's time to live) and delivers the rest
    // from the shared cursor.
    let new_holder = holder_among(&survivors);
    wait_for_keys(&rx, &after, 60);
    let per_key = deliveries_per_key(&rx);
    for s in before.iter().chain(&after) {
        let n = per_key[&s.to_string()];
        // At least once; twice only for what the dead holder sent but had not recorded.
        assert!(n <= 2, "position {s} delivered {n} times: {per_key:?}");
    }
    let twice = per_key.values().filter(|&&n| n == 2).count();
    assert!(
        twice <= 64 + 2,
        "only the last unrecorded chunk is repeated, not everything: {twice} twice"
    );
    let other = 1 - new_holder;
    let d = admin(&survivors[other])
        .get("/event/api/v1/subscriptions/groups/deliveries")
        .json();
    assert_eq!(d["attempts"].as_array().unwrap().len(), 0, "{d}");
    // Checkpoints were signed by one node at a time: each at least 20 events after the
    // last (two signers would each sign when due, a few positions apart).
    let events = shared_events(&url);
    let checkpoints: Vec<u64> = events
        .iter()
        .filter_map(|e| match &e.event {
            gatehouse_schemas::Event::CheckpointSigned(c) => Some(c.position),
            _ => None,
        })
        .collect();
    assert!(!checkpoints.is_empty(), "checkpoints were signed");
    for w in checkpoints.windows(2) {
        assert!(w[1] >= w[0] + 20, "checkpoints too close: {checkpoints:?}");
    }
    drop(nodes);
}

#[test]
fn a_database_of_schema_version_1_is_migrated_and_served() {
    let Some(pg) = Postgres::start("a_database_of_schema_version_1_is_migrated_and_served") else {
        return;
    };
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let a = node(dir.path(), &url, None);
    let r = a
        .admin()
        .post("/access/api/v2/groups", &json!({"name": "old"}));
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(a.terminate().success());
    // Back to what a node of schema version 1 (before leases) left behind.
    let mut sql = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    sql.batch_execute(
        "DROP TABLE gatehouse_leases; DROP TABLE gatehouse_cursors;
         DELETE FROM gatehouse_schema WHERE version > 1;",
    )
    .unwrap();
    let a = node(dir.path(), &url, None);
    let r = a.admin().get("/access/api/v2/groups/old");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(holder_among(std::slice::from_ref(&a.base)), 0);
    let version: i32 = sql
        .query_one("SELECT max(version) FROM gatehouse_schema", &[])
        .unwrap()
        .get(0);
    assert_eq!(version, 2);
    drop(a);
}

#[test]
fn the_federation_stream_moves_with_the_lease_and_the_peer_gets_every_change() {
    let Some(pg) = Postgres::start(
        "the_federation_stream_moves_with_the_lease_and_the_peer_gets_every_change",
    ) else {
        return;
    };
    let url = pg.url();
    let conf_dir = tempfile::tempdir().unwrap();
    let config = conf_dir.path().join("gatehouse.toml");
    std::fs::write(&config, "federation-retry-max-ms = 200\n").unwrap();
    let master = conf_dir.path().join("master.key");
    std::fs::write(&master, [0x3cu8; 48]).unwrap();
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    // Site A: two nodes on one PostgreSQL log (sharing keys: the peer trusts one key).
    let mut nodes: Vec<Option<ServerProcess>> = dirs
        .iter()
        .map(|d| {
            Some(ServerProcess::spawn_with_args(
                d.path(),
                "warn",
                Stdio::inherit(),
                Some(&config),
                "127.0.0.1:0",
                &[
                    OsStr::new("--store"),
                    OsStr::new(&url),
                    OsStr::new("--master-key-file"),
                    master.as_os_str(),
                ],
            ))
        })
        .collect();
    let bases: Vec<String> = nodes
        .iter()
        .map(|n| n.as_ref().unwrap().base.clone())
        .collect();
    // Site B: one node on sled.
    let b_dir = tempfile::tempdir().unwrap();
    let b = ServerProcess::start(b_dir.path());
    let pem = |base: &str| {
        admin(base)
            .get("/access/api/v1/cert/root?formatted=true")
            .text
    };
    let r = admin(&bases[0]).post(
        "/access/api/v1/cert/trusted",
        &json!({"name": "peer-b", "certificate": pem(&b.base)}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = b.admin().post(
        "/access/api/v1/cert/trusted",
        &json!({"name": "peer-a", "certificate": pem(&bases[0])}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin(&bases[0]).post(
        "/access/api/v1/system/federation",
        &json!({"name": "site-b", "url": format!("{}/access/", b.base), "entities": ["groups"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let group_at_b = |name: &str| {
        b.admin()
            .get(&format!("/access/api/v2/groups/{name}"))
            .status
            == 200
    };
    let wait_at_b = |names: &[String]| {
        let started = Instant::now();
        while !names.iter().all(|n| group_at_b(n)) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "B lacks {:?}",
                names.iter().filter(|n| !group_at_b(n)).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let mut names = Vec::new();
    for i in 0..10 {
        let name = format!("fed-before-{i}");
        let r = admin(&bases[i % 2]).post("/access/api/v2/groups", &json!({ "name": name }));
        assert_eq!(r.status, 201, "{}", r.text);
        names.push(name);
    }
    wait_at_b(&names);
    // Only the lease holder streamed to B.
    let holder = holder_among(&bases);
    let status = |base: &str| {
        admin(base)
            .get("/access/api/v1/system/federation/site-b/status")
            .json()
    };
    // The sender records a success once B has answered, which is after B shows the
    // groups: wait for it.
    let succeeded = |base: &str| {
        crate::federation::wait_until(30, "the sender records its success", || {
            status(base)["last_success"].is_string()
        })
    };
    succeeded(&bases[holder]);
    assert!(
        status(&bases[1 - holder])["last_success"].is_null(),
        "the node without the lease sent nothing: {}",
        status(&bases[1 - holder])
    );
    // The broadcast owed at registration was the holder's to send, and it sent it: the
    // other node no longer owes it (it did for good, and sent the whole selection again
    // when it took the lease).
    crate::federation::wait_until(30, "the other node sees the broadcast sent", || {
        status(&bases[1 - holder])["broadcast_owed"] == false
    });
    // The holder is SIGKILLed; writes go on on the other node, which takes the stream
    // over from the shared cursor.
    nodes[holder].take().unwrap().kill();
    let other = bases[1 - holder].clone();
    for i in 0..10 {
        let name = format!("fed-after-{i}");
        let r = admin(&other).post("/access/api/v2/groups", &json!({ "name": name }));
        assert_eq!(r.status, 201, "{}", r.text);
        names.push(name);
    }
    assert_eq!(holder_among(std::slice::from_ref(&other)), 0);
    wait_at_b(&names);
    succeeded(&other);
    assert_eq!(
        status(&other)["broadcast"]["state"],
        "idle",
        "the new holder streamed on, with no broadcast again: {}",
        status(&other)
    );
    drop((nodes, b));
}

/// `verify`, `replay` and `export` of a database that holds no Gatehouse log (empty, or
/// the wrong one named) say so and create nothing. Before, they made the tables and
/// answered "chain intact: 0 events".
#[test]
fn reading_a_database_without_a_log_says_so_and_creates_nothing() {
    let Some(pg) = Postgres::start("reading_a_database_without_a_log_says_so_and_creates_nothing")
    else {
        return;
    };
    let url = pg.url();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("log.bin");
    for _ in 0..2 {
        for args in [
            vec![
                OsStr::new("verify"),
                OsStr::new("--store"),
                OsStr::new(&url),
            ],
            vec![
                OsStr::new("replay"),
                OsStr::new("--store"),
                OsStr::new(&url),
            ],
            vec![
                OsStr::new("export"),
                OsStr::new("--store"),
                OsStr::new(&url),
                OsStr::new("--out"),
                out.as_os_str(),
            ],
        ] {
            let (ok, text) = gatehouse(&args);
            assert!(!ok, "{args:?}: {text}");
            assert!(text.contains("holds no Gatehouse log"), "{args:?}: {text}");
        }
    }
    assert!(!out.exists());
}

/// A write that needs a new personal-data key waits for the key vault (the shared log's
/// database) as any write waits for the log: it answered 500 at once while PostgreSQL was
/// away, where a group create waited and went through.
#[test]
fn a_user_created_while_postgres_is_away_waits_for_it() {
    let Some(pg) = Postgres::start("a_user_created_while_postgres_is_away_waits_for_it") else {
        return;
    };
    let url = pg.url();
    let secrets = tempfile::tempdir().unwrap();
    let master = secrets.path().join("master.key");
    std::fs::write(&master, [0x5au8; 48]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = keyed_node(dir.path(), &url, &master);
    let admin = a.admin();
    pg.ctl_stop("fast");
    std::thread::scope(|scope| {
        let create = scope.spawn(|| {
            admin.post(
                "/access/api/v2/users",
                &json!({"username": "away", "password": "s3cret-pass-1", "email": "away@example.com"}),
            )
        });
        std::thread::sleep(Duration::from_millis(1500));
        pg.ctl_start();
        let r = create.join().unwrap();
        assert_eq!(r.status, 201, "{}", r.text);
    });
    let u = admin.get("/access/api/v2/users/away");
    assert_eq!(u.json()["email"], "away@example.com", "{}", u.text);
    assert!(a.terminate().success());
}

/// A revocable token made on one node works at once on another: the other node catches
/// up with the shared log before it calls a fresh token revoked (one in seven was
/// refused, "revoked").
#[test]
fn a_fresh_token_works_at_once_on_another_node() {
    let Some(pg) = Postgres::start("a_fresh_token_works_at_once_on_another_node") else {
        return;
    };
    let url = pg.url();
    let secrets = tempfile::tempdir().unwrap();
    let master = secrets.path().join("master.key");
    std::fs::write(&master, [0x5au8; 48]).unwrap();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = keyed_node(a_dir.path(), &url, &master);
    let b = keyed_node(b_dir.path(), &url, &master);
    let mut refused = Vec::new();
    for _ in 0..40 {
        let r = a.admin().post(
            "/access/api/v1/tokens",
            &json!({"username": "admin", "expires_in": 86400, "scope": "applied-permissions/admin"}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        let token = r.json()["access_token"].as_str().unwrap().to_string();
        let on_b = Client::new(&b.base, None).with_header_auth(&format!("Bearer {token}"));
        let r = on_b.get("/access/api/v2/users/admin");
        if r.status != 200 {
            refused.push(r.text);
        }
    }
    assert!(refused.is_empty(), "{refused:?}");
    // A revoked one is still refused, as revoked.
    let r = a.admin().post(
        "/access/api/v1/tokens",
        &json!({"username": "admin", "expires_in": 86400, "scope": "applied-permissions/admin"}),
    );
    let id = r.json()["token_id"].as_str().unwrap().to_string();
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    let r = a.admin().delete(&format!("/access/api/v1/tokens/{id}"));
    assert!(r.status == 200 || r.status == 204, "{}", r.text);
    let on_b = Client::new(&b.base, None).with_header_auth(&format!("Bearer {token}"));
    // B applies the revocation a notification later (the follow lag).
    let deadline = Instant::now() + Duration::from_secs(10);
    let r = loop {
        let r = on_b.get("/access/api/v2/users/admin");
        if r.status != 200 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.text.contains("revoked"), "{}", r.text);
    assert!(a.terminate().success());
    assert!(b.terminate().success());
}

/// `sslmode=require` (and libpq's `verify-full`, taken as it) connects over TLS, the
/// database's certificate verified against the roots (`--ca-file` for a node,
/// `SSL_CERT_FILE` for the command line): a managed PostgreSQL that requires TLS could
/// not be used, and the log went in clear. Without the CA the certificate is refused.
#[test]
fn a_node_talks_tls_to_postgres_when_asked_and_verifies_its_certificate() {
    let Some(mut pg) =
        Postgres::start("a_node_talks_tls_to_postgres_when_asked_and_verifies_its_certificate")
    else {
        return;
    };
    // A CA and the database's certificate for 127.0.0.1, made here.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Gatehouse PostgreSQL test CA");
    let ca = params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = leaf.signed_by(&key, &ca, &ca_key).unwrap();
    let data = pg.dir.path().join("data");
    std::fs::write(data.join("server.crt"), cert.pem()).unwrap();
    std::fs::write(data.join("server.key"), key.serialize_pem()).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }
    if pg.as_root {
        let ok = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(data.join("server.crt"))
            .arg(data.join("server.key"))
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok);
    }
    pg.ctl_stop("fast");
    pg.extra = "-c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key".into();
    pg.ctl_start();
    let tmp = tempfile::tempdir().unwrap();
    let ca_file = tmp.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let url = format!("{}?sslmode=require", pg.url());

    // A node trusting the CA: it works, over TLS.
    let dir = tmp.path().join("node");
    let master = tmp.path().join("master.key");
    std::fs::write(&master, [0x5au8; 48]).unwrap();
    let node = ServerProcess::spawn_with_args(
        &dir,
        "warn",
        Stdio::inherit(),
        None,
        "127.0.0.1:0",
        &[
            OsStr::new("--store"),
            OsStr::new(&url),
            OsStr::new("--master-key-file"),
            master.as_os_str(),
            OsStr::new("--ca-file"),
            ca_file.as_os_str(),
        ],
    );
    let r = admin(&node.base).post("/access/api/v2/groups", &json!({"name": "over-tls"}));
    assert_eq!(r.status, 201, "{}", r.text);
    let out = pg
        .command("psql")
        .args(["-h", "127.0.0.1", "-p", &pg.port.to_string(), "-U", "gatehouse", "-d", "postgres", "-Atc"])
        .arg("SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'gatehouse'")
        .output()
        .unwrap();
    let counts = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (tls, all) = counts
        .split_once('|')
        .unwrap_or_else(|| panic!("psql: {counts} {}", String::from_utf8_lossy(&out.stderr)));
    assert!(
        all.parse::<u32>().unwrap() > 0 && tls == all,
        "TLS connections of all: {counts}"
    );
    drop(node);

    // The command line: libpq's verify-full, trusting the CA through SSL_CERT_FILE.
    let strict = format!("{}?sslmode=verify-full", pg.url());
    let run = |ca: Option<&Path>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        c.args(["verify", "--store", &strict])
            .env("RUST_LOG", "warn")
            .env_remove("GATEHOUSE_STORE")
            .env_remove("SSL_CERT_DIR");
        match ca {
            Some(ca) => c.env("SSL_CERT_FILE", ca),
            None => c.env("SSL_CERT_FILE", "/nonexistent"),
        };
        let out = c.output().unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, out) = run(Some(&ca_file));
    assert!(ok && out.contains("chain intact"), "{out}");
    // Without the CA the database's certificate is refused: no connection in clear.
    let (ok, out) = run(None);
    assert!(!ok && out.to_lowercase().contains("certificate"), "{out}");
}

/// The transactions the database has run (every node's, every connection's).
fn transactions(url: &str) -> i64 {
    let mut sql = postgres::Client::connect(url, postgres::NoTls).unwrap();
    sql.query_one(
        "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database \
         WHERE datname = current_database()",
        &[],
    )
    .unwrap()
    .get(0)
}

/// After PostgreSQL closed the nodes' connections (a restart, `pg_terminate_backend`,
/// an idle timeout), the nodes go back to as few transactions as before. Before, the
/// follower's LISTEN connection, closed under it, answered every wait at once: each
/// node spun, ringing its writer, which asked the database thousands of times a second
/// (with PostgreSQL down, as many connections, one of which could take PostgreSQL's own
/// port and stop it from starting again). The nodes still see each other's writes.
#[test]
fn nodes_do_not_spin_after_postgres_closed_their_connections() {
    let Some(pg) = Postgres::start("nodes_do_not_spin_after_postgres_closed_their_connections")
    else {
        return;
    };
    let url = pg.url();
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes: Vec<ServerProcess> = dirs.iter().map(|d| node(d.path(), &url, None)).collect();
    let window = |what: &str| {
        // PostgreSQL publishes a backend's counts within a second of its transactions.
        std::thread::sleep(Duration::from_millis(1500));
        let before = transactions(&url);
        std::thread::sleep(Duration::from_secs(3));
        let n = transactions(&url) - before;
        eprintln!("{what}: {n} transactions in 3 s");
        n
    };
    let quiet = window("idle");
    pg.ctl_stop("fast");
    pg.ctl_start();
    let restarted = window("after a restart");
    let mut sql = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    sql.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE pid <> pg_backend_pid() AND datname = current_database()",
        &[],
    )
    .unwrap();
    drop(sql);
    let terminated = window("after pg_terminate_backend");
    // A spinning node ran thousands a second; idle ones a few dozen.
    for (what, n) in [("restart", restarted), ("terminate", terminated)] {
        assert!(
            n <= quiet * 4 + 300,
            "{what}: {n} transactions against {quiet} idle"
        );
    }
    let r = admin(&nodes[0].base).post(
        "/access/api/v2/groups",
        &json!({"name": "after-the-restart"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let seq = r.header("x-gatehouse-seq").unwrap().to_string();
    let r = admin(&nodes[1].base).get_with(
        "/access/api/v2/groups/after-the-restart",
        &[("X-Gatehouse-Min-Seq", seq.as_str())],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // A token revoked on the node it is then shown to: refused (measured, not asserted:
    // it waited the whole 2 s of a catch-up that never brought anything new; now two
    // catch-ups that read the log to its end).
    let r = admin(&nodes[0].base).post(
        "/access/api/v1/tokens",
        &json!({"username": "admin", "scope": "applied-permissions/admin", "expires_in": 0}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    let id = r.json()["token_id"].as_str().unwrap().to_string();
    let r = admin(&nodes[0].base).delete(&format!("/access/api/v1/tokens/{id}"));
    assert!(r.status == 200 || r.status == 204, "{}", r.text);
    let revoked_at = r.header("x-gatehouse-seq").unwrap().to_string();
    // On the other node with the revocation's position, as README's "Consistency" says a
    // client must: without it that node may have applied the token's issue and not yet
    // its revocation (the follow lag), and the token still worked there once in CI.
    for (base, min_seq) in [(&nodes[0].base, None), (&nodes[1].base, Some(&revoked_at))] {
        let started = Instant::now();
        let headers: Vec<(&str, &str)> = min_seq
            .map(|s| ("X-Gatehouse-Min-Seq", s.as_str()))
            .into_iter()
            .collect();
        let r = Client::new(base, None)
            .with_header_auth(&format!("Bearer {token}"))
            .get_with("/access/api/v1/tokens/me", &headers);
        eprintln!("revoked token refused in {:?}", started.elapsed());
        assert_eq!(r.status, 401, "{}", r.text);
    }
}

/// While PostgreSQL cannot be reached, `health` says so (DEGRADED, naming the shared
/// log), and HEALTHY again once it can: it said HEALTHY while every write answered 503.
#[test]
fn health_says_when_the_shared_log_cannot_be_reached() {
    let Some(pg) = Postgres::start("health_says_when_the_shared_log_cannot_be_reached") else {
        return;
    };
    let url = pg.url();
    let conf = tempfile::tempdir().unwrap();
    let config = conf.path().join("gatehouse.toml");
    std::fs::write(&config, "lease-renew-ms = 200\nlease-ttl-ms = 1000\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let n = node(dir.path(), &url, Some(&config));
    let health = || admin(&n.base).get("/router/api/v1/system/health").text;
    assert!(health().contains("HEALTHY"), "{}", health());
    pg.ctl_stop("fast");
    crate::federation::wait_until(30, "health names the shared log", || {
        let h = health();
        h.contains("DEGRADED") && h.contains("shared log")
    });
    pg.ctl_start();
    crate::federation::wait_until(30, "health is HEALTHY again", || {
        let h = health();
        h.contains("HEALTHY") && !h.contains("DEGRADED")
    });
    drop(n);
}

/// From a review: a node that had not applied another node's write yet answered from
/// its copy when it refused or wrote nothing — deleting a group just made elsewhere was
/// a 404, a refresh of a pair just issued "unknown, revoked or already used", and a
/// revoke by id answered 204 and revoked nothing (the token kept working everywhere);
/// a change that looks its object up before it writes was a 404.
#[test]
fn a_lagging_node_decides_refusals_against_the_shared_log() {
    let Some(pg) = Postgres::start("a_lagging_node_decides_refusals_against_the_shared_log") else {
        return;
    };
    let url = pg.url();
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = node(a_dir.path(), &url, None);
    // B neither listens nor polls in the time of this test.
    let config = b_dir.path().join("gatehouse.toml");
    std::fs::write(&config, "follow-listen = false\nfollow-poll-ms = 600000\n").unwrap();
    let b = node(b_dir.path(), &url, Some(&config));
    let r = a
        .admin()
        .post("/access/api/v2/groups", &json!({"name": "stale0"}));
    assert_eq!(r.status, 201, "{}", r.text);
    let r = b.admin().delete("/access/api/v2/groups/stale0");
    assert_eq!(r.status, 204, "{}", r.text);
    let issue = |refreshable: bool| {
        let body = format!(
            "username=admin&scope=applied-permissions/admin&expires_in=36000&refreshable={refreshable}"
        );
        let r = a.admin().raw(
            "POST",
            "/access/api/v1/tokens",
            Some("application/x-www-form-urlencoded"),
            Some(body.as_bytes()),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()
    };
    let t = issue(false);
    let id = t["token_id"].as_str().unwrap();
    let r = b.admin().delete(&format!("/access/api/v1/tokens/{id}"));
    assert_eq!(r.status, 200, "revoked, not 204: {}", r.text);
    let seq = r.header("x-gatehouse-seq").unwrap().to_string();
    let me = a
        .admin()
        .with_header_auth(&format!("Bearer {}", t["access_token"].as_str().unwrap()))
        .get_with("/access/api/v1/tokens/me", &[("X-Gatehouse-Min-Seq", &seq)]);
    assert_eq!(me.status, 401, "{}", me.text);
    let pair = issue(true);
    let body = format!(
        "grant_type=refresh_token&refresh_token={}&access_token={}",
        pair["refresh_token"].as_str().unwrap(),
        pair["access_token"].as_str().unwrap()
    );
    let r = b.admin().raw(
        "POST",
        "/access/api/v1/tokens",
        Some("application/x-www-form-urlencoded"),
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // Changes that look their object up before they write (a repository updated with
    // POST, one resource of an Access permission): asked again once B caught up (they
    // answered 404 from B's copy).
    let r = a.admin().put(
        "/artifactory/api/repositories/stale-repo",
        &json!({"rclass": "local", "packageType": "generic"}),
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    let r = b.admin().post(
        "/artifactory/api/repositories/stale-repo",
        &json!({"rclass": "local", "description": "from B"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = a.admin().post(
        "/access/api/v2/permissions",
        &json!({"name": "stale-p", "resources": {"artifact": {
            "actions": {"users": {"admin": ["READ"]}},
            "targets": {"stale-repo": {"include_patterns": ["**"]}},
        }}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = b.admin().patch(
        "/access/api/v2/permissions/stale-p/artifact",
        &json!({"actions": {"users": {"admin": ["READ", "WRITE"]}}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

/// A write that never reached the shared log (PostgreSQL stopped through the whole wait)
/// is answered as such: nothing written, safe to send again, with `Retry-After` (every
/// such 503 said "in doubt: read before sending it again").
#[test]
fn a_write_that_never_reached_postgres_says_nothing_was_written() {
    let Some(pg) = Postgres::start("a_write_that_never_reached_postgres_says_nothing_was_written")
    else {
        return;
    };
    let url = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let a = node(dir.path(), &url, None);
    let admin = a.admin();
    pg.ctl_stop("fast");
    let r = admin.post("/access/api/v2/groups", &json!({"name": "never-sent"}));
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(
        r.text.contains("nothing of this write was written"),
        "{}",
        r.text
    );
    assert!(!r.text.contains("in doubt"), "{}", r.text);
    assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
    pg.ctl_start();
    let r = admin.post("/access/api/v2/groups", &json!({"name": "never-sent"}));
    assert_eq!(r.status, 201, "sent again, made once: {}", r.text);
    assert!(a.terminate().success());
}

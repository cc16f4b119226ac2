//! Access Federation (issue 8) between real `gatehouse` processes on loopback, each
//! with its own data directory: register, validate, full broadcast, the live stream,
//! filters, a SIGKILLed target, a ring of three, tokens, and bad batches.

use crate::helpers::{Client, ServerProcess, BINARY_ADMIN_PASSWORD};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const FED: &str = "/access/api/v1/system/federation";

/// One Gatehouse site: a data directory, a fixed port (so peers find it after a
/// restart) and the running process.
struct Site {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    config: PathBuf,
    listen: String,
    process: Option<ServerProcess>,
}

impl Site {
    fn start() -> Site {
        Self::start_with("")
    }

    fn start_with(extra_config: &str) -> Site {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let config = tmp.path().join("gatehouse.toml");
        std::fs::write(
            &config,
            format!("federation-retry-max-ms = 200\n{extra_config}"),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let process = Some(ServerProcess::start_on(&data, &listen, &config));
        Site {
            _tmp: tmp,
            data,
            config,
            listen,
            process,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.listen)
    }

    fn admin(&self) -> Client {
        Client::new(&self.url(), Some(("admin", BINARY_ADMIN_PASSWORD)))
    }

    fn kill(&mut self) {
        self.process.take().unwrap().kill();
    }

    fn restart(&mut self) {
        self.process = Some(ServerProcess::start_on(
            &self.data,
            &self.listen,
            &self.config,
        ));
    }

    fn service_id(&self) -> String {
        self.admin()
            .get("/access/api/v1/system/state/digest")
            .json()["service_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn pem(&self) -> String {
        self.admin()
            .get("/access/api/v1/cert/root?formatted=true")
            .text
    }

    /// This site trusts `other`'s key (one direction of the circle of trust).
    fn trust(&self, name: &str, other: &Site) {
        let r = self.admin().post(
            "/access/api/v1/cert/trusted",
            &json!({"name": name, "certificate": other.pem()}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    }

    fn register(&self, name: &str, to: &Site, body: Value) {
        let mut b = body;
        b["name"] = json!(name);
        b["url"] = json!(format!("{}/access/", to.url()));
        let r = self.admin().post(FED, &b);
        assert_eq!(r.status, 201, "{}", r.text);
    }

    fn user(&self, name: &str) -> Option<Value> {
        let r = self.admin().get(&format!("/access/api/v2/users/{name}"));
        (r.status == 200).then(|| r.json())
    }

    fn group(&self, name: &str) -> Option<Value> {
        let r = self.admin().get(&format!("/access/api/v2/groups/{name}"));
        (r.status == 200).then(|| r.json())
    }

    /// Events in this site's log that mention `entity`.
    fn events_about(&self, entity: &str) -> Vec<Value> {
        self.admin()
            .get(&format!(
                "/access/api/v1/audit/events?entity={entity}&limit=10000"
            ))
            .json()["events"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn digest(&self) -> String {
        self.admin()
            .get("/access/api/v1/system/state/digest")
            .json()["digest"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// Poll `ok` until it holds; fails the test after `secs` seconds, naming `what`.
pub(crate) fn wait_until(secs: u64, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "not after {secs} s: {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn create_user(site: &Site, name: &str, email: &str) {
    let r = site.admin().post(
        "/access/api/v2/users",
        &json!({"username": name, "email": email, "password": "Password-123"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
}

fn create_group(site: &Site, name: &str, members: &[&str]) {
    let r = site.admin().post(
        "/access/api/v2/groups",
        &json!({"name": name, "members": members}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
}

fn create_target(site: &Site, name: &str, group: &str) {
    let r = site.admin().put(
        &format!("/artifactory/api/v2/security/permissions/{name}"),
        &json!({"name": name, "repo": {"repositories": ["libs"], "include-patterns": ["**"],
                "actions": {"groups": {group: ["read"]}}}}),
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
}

fn trust_both(a: &Site, b: &Site) {
    a.trust("peer-b", b);
    b.trust("peer-a", a);
}

#[test]
fn a_to_b_register_validate_broadcast_then_stream() {
    let a = Site::start();
    let b = Site::start();
    trust_both(&a, &b);
    create_user(&a, "alice", "alice@example.com");
    create_user(&a, "bob", "bob@example.com");
    create_group(&a, "team_a", &["alice", "bob"]);
    create_target(&a, "team_a_read", "team_a");
    create_target(&a, "team_b_read", "team_a");
    // Register: the seed's form, both spellings of the filters, the seed's codes.
    let r = a.admin().post(
        FED,
        &json!({"name": "site-b", "url": format!("{}/access/", b.url()),
                "entities": ["users", "groups", "permissions"],
                "permissionFilters": {"includePatterns": ["team_a_*"], "excludePatterns": ["none_federated_*"]},
                "active": true}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let registered_at = r.header("x-gatehouse-seq").unwrap().to_string();
    assert_eq!(
        r.json(),
        json!({"name": "site-b", "url": format!("{}/access/", b.url()),
               "entities": ["users", "groups", "permissions"],
               "permissionFilters": {"includePatterns": ["team_a_*"], "excludePatterns": ["none_federated_*"]},
               "permission_filters": {"include_patterns": ["team_a_*"], "exclude_patterns": ["none_federated_*"]},
               "groupFilters": {"includePatterns": [], "excludePatterns": []},
               "group_filters": {"include_patterns": [], "exclude_patterns": []},
               "active": true})
    );
    let again = a
        .admin()
        .post(FED, &json!({"name": "site-b", "url": b.url()}));
    assert_eq!(again.status, 404, "the seed's code for a name in use");
    for (body, field) in [
        (json!({"name": "x", "url": "ftp://b"}), "url"),
        (
            json!({"name": "x", "url": b.url(), "entities": ["widgets"]}),
            "entities[0]",
        ),
        (
            json!({"name": "x", "url": b.url(), "entities": []}),
            "entities",
        ),
        (json!({"name": "bad name", "url": b.url()}), "name"),
        (json!({"name": "x"}), "url"),
        (
            json!({"name": "x", "url": b.url(), "permission_filters": {"include_patterns": ["a\u{1}b"]}}),
            "includePatterns[0]",
        ),
        (
            // An unknown field is ignored, never masks a bad one.
            json!({"name": "x", "url": b.url(), "colour": "red", "active": "yes"}),
            "active",
        ),
    ] {
        let r = a.admin().post(FED, &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.error_message().contains(field), "{body}: {}", r.text);
    }
    let list = a.admin().get(FED).json();
    assert_eq!(list["configurations"].as_array().unwrap().len(), 1);
    assert_eq!(list["targets"], list["configurations"]);
    assert_eq!(a.admin().get(&format!("{FED}/nope")).status, 404);
    // PATCH with the snake_case spelling; answers in the seed's form.
    let r = a.admin().patch(
        &format!("{FED}/site-b"),
        &json!({"permission_filters": {"include_patterns": ["team_a_*"], "exclude_patterns": []}, "active": true}),
    );
    // 200 with the target, as JFrog's description has it (py-jfrog-client reads it).
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json()["permission_filters"]["include_patterns"],
        json!(["team_a_*"])
    );
    assert_eq!(
        a.admin().get(&format!("{FED}/site-b")).json()["permissionFilters"],
        json!({"includePatterns": ["team_a_*"], "excludePatterns": []})
    );
    assert_eq!(
        a.admin()
            .patch(&format!("{FED}/nope"), &json!({"active": false}))
            .status,
        404
    );
    // The circle of trust holds both ways.
    let r = a.admin().post(
        &format!("{FED}/validate_server"),
        &json!({"url": format!("{}/access/", b.url())}),
    );
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        a.admin()
            .post(
                &format!("{FED}/validate_server"),
                &json!({"url": "nonsense"})
            )
            .status,
        400
    );
    // Full broadcast (by this server's access id): B serves A's entities.
    let a_id = a.service_id();
    let r = a
        .admin()
        .put(&format!("{FED}/{a_id}/full_broadcast"), &json!({}));
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        a.admin()
            .put(&format!("{FED}/jfac@nobody/full_broadcast"), &json!({}))
            .status,
        404
    );
    let alice = b.user("alice").expect("alice reached B");
    assert_eq!(alice["email"], "alice@example.com");
    assert_eq!(alice["groups"], json!(["team_a"]));
    assert_eq!(
        b.group("team_a").unwrap()["members"],
        json!(["alice", "bob"])
    );
    assert_eq!(
        b.admin()
            .get("/artifactory/api/v2/security/permissions/team_a_read")
            .status,
        200
    );
    assert_eq!(
        b.admin()
            .get("/artifactory/api/v2/security/permissions/team_b_read")
            .status,
        404,
        "filtered out by the permission patterns"
    );
    // Her password works at B; B's own admin is B's.
    assert_eq!(
        Client::new(&b.url(), Some(("alice", "Password-123")))
            .get("/access/api/v2/users/alice")
            .status,
        200
    );
    // B's audit trail says where the change came from.
    let events = b.events_about("alice");
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "UserReplicated" && e["origin"] == a_id.as_str()),
        "{events:?}"
    );
    // The status call.
    let st = a.admin().get(&format!("{FED}/site-b/status")).json();
    assert_eq!(st["broadcast"]["state"], "done", "{st}");
    assert!(st["broadcast_position"].as_u64().unwrap() > 0, "{st}");
    // A change at A appears at B: the live stream.
    create_user(&a, "carol", "carol@example.com");
    assert_eq!(
        a.admin()
            .patch(
                "/access/api/v2/users/alice",
                &json!({"email": "alice@new.example"})
            )
            .status,
        200
    );
    assert_eq!(a.admin().delete("/access/api/v2/users/bob").status, 204);
    wait_until(10, "the stream reached B", || {
        b.user("carol").is_some()
            && b.user("alice")
                .is_some_and(|u| u["email"] == "alice@new.example")
            && b.user("bob").is_none()
    });
    assert_eq!(b.group("team_a").unwrap()["members"], json!(["alice"]));
    wait_until(5, "the stream is idle", || {
        a.admin().get(&format!("{FED}/site-b/status")).json()["lag_events"] == 0
    });
    let st = a.admin().get(&format!("{FED}/site-b/status")).json();
    assert!(
        st["cursor"].as_u64().unwrap() > 0 && st["last_error"].is_null(),
        "{st}"
    );
    // A second broadcast changes nothing (idempotent)...
    let before = b.digest();
    let r = a.admin().put(&format!("{FED}/full_broadcast"), &json!({}));
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(b.digest(), before, "a batch applied twice changes nothing");
    // ...and one after B got something A no longer has removes it.
    assert_eq!(
        a.admin()
            .delete("/artifactory/api/v2/security/permissions/team_a_read")
            .status,
        204
    );
    wait_until(10, "the deletion reached B", || {
        b.admin()
            .get("/artifactory/api/v2/security/permissions/team_a_read")
            .status
            == 404
    });
    // Deleting the target.
    assert_eq!(a.admin().delete(&format!("{FED}/site-b")).status, 204);
    assert_eq!(a.admin().delete(&format!("{FED}/site-b")).status, 404);
    assert_eq!(a.admin().get(&format!("{FED}/site-b")).status, 404);
    // Targets are events: the past still has it.
    let past = a
        .admin()
        .get(&format!("{FED}/site-b?as_of={registered_at}"));
    assert_eq!(past.status, 200, "{}", past.text);
    assert_eq!(
        past.json()["permissionFilters"]["excludePatterns"],
        json!(["none_federated_*"])
    );
    create_user(&a, "dave", "dave@example.com");
    std::thread::sleep(Duration::from_millis(500));
    assert!(b.user("dave").is_none());
}

#[test]
fn validation_fails_when_trust_is_one_way() {
    let a = Site::start();
    let b = Site::start();
    // A trusts B, B does not trust A: B refuses the challenge.
    a.trust("peer-b", &b);
    let r = a
        .admin()
        .post(&format!("{FED}/validate_server"), &json!({"url": b.url()}));
    assert_eq!(r.status, 412, "{}", r.text);
    assert!(
        r.error_message().contains("response from target server"),
        "{}",
        r.text
    );
    assert!(r.error_message().contains("401"), "{}", r.text);
    // The other way round: B trusts C, C does not trust B.
    let c = Site::start();
    c.trust("peer-b", &b);
    let r = b
        .admin()
        .post(&format!("{FED}/validate_server"), &json!({"url": c.url()}));
    assert_eq!(r.status, 412, "{}", r.text);
    assert!(
        r.error_message().contains("does not trust the target"),
        "{}",
        r.text
    );
    // Nobody listening.
    let r = a.admin().post(
        &format!("{FED}/validate_server"),
        &json!({"url": "http://127.0.0.1:9"}),
    );
    assert_eq!(r.status, 412, "{}", r.text);
    // Both ways: 204.
    b.trust("peer-a", &a);
    let r = a
        .admin()
        .post(&format!("{FED}/validate_server"), &json!({"url": b.url()}));
    assert_eq!(r.status, 204, "{}", r.text);
}

#[test]
fn entity_selection_and_permission_filters_are_respected() {
    let a = Site::start();
    let b = Site::start();
    trust_both(&a, &b);
    create_user(&a, "erin", "erin@example.com");
    create_group(&a, "hidden", &["erin"]);
    create_target(&a, "team_a_read", "hidden");
    create_target(&a, "secret_read", "hidden");
    a.register(
        "site-b",
        &b,
        json!({"entities": ["users", "permissions"],
               "permission_filters": {"include_patterns": ["*_read"], "exclude_patterns": ["secret_*"]}}),
    );
    assert_eq!(
        a.admin()
            .put(&format!("{FED}/full_broadcast"), &json!({}))
            .status,
        204
    );
    // Live changes too: a new group and a change to the hidden one.
    create_group(&a, "hidden2", &["erin"]);
    let r = a.admin().patch(
        "/access/api/v2/groups/hidden",
        &json!({"description": "still hidden"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    create_target(&a, "secret_two_read", "hidden");
    create_user(&a, "frank", "frank@example.com");
    wait_until(10, "frank reached B", || b.user("frank").is_some());
    assert!(b.user("erin").is_some());
    assert_eq!(b.user("erin").unwrap()["groups"], json!([]));
    for g in ["hidden", "hidden2"] {
        assert!(b.group(g).is_none(), "group {g} must never reach B");
    }
    let perms = |name: &str| {
        b.admin()
            .get(&format!("/artifactory/api/v2/security/permissions/{name}"))
            .status
    };
    assert_eq!(perms("team_a_read"), 200);
    assert_eq!(perms("secret_read"), 404);
    assert_eq!(perms("secret_two_read"), 404);
    // Not even an event of a group names it (the replicated target's grant does: a
    // permission target names the groups it grants, and the audit trail finds them).
    let about_hidden = b.events_about("hidden");
    assert!(
        about_hidden
            .iter()
            .all(|e| e["type"] == "PermissionReplicated"
                && e["body"]["target"]["name"] == "team_a_read"),
        "{about_hidden:?}"
    );
    // The filters change: the next full broadcast removes what this source no longer
    // sends (nothing was deleted at A, so only the broadcast's end can do it)...
    let filters = |exclude: Value| {
        let r = a.admin().patch(
            &format!("{FED}/site-b"),
            &json!({"permission_filters": {"include_patterns": ["*_read"], "exclude_patterns": exclude}}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        let r = a.admin().put(&format!("{FED}/full_broadcast"), &json!({}));
        assert_eq!(r.status, 204, "{}", r.text);
    };
    filters(json!(["secret_*", "team_a_*"]));
    assert_eq!(perms("team_a_read"), 404, "swept by the broadcast");
    assert!(b.user("erin").is_some(), "users are still selected");
    // ...and brings it back when they change back.
    filters(json!(["secret_*"]));
    assert_eq!(perms("team_a_read"), 200);
}

/// `group_filters` select the groups a target gets (they were accepted, named as ignored
/// in a header no client library shows, and every group went to the peer).
#[test]
fn group_filters_select_the_groups_a_target_gets() {
    let a = Site::start();
    let b = Site::start();
    trust_both(&a, &b);
    create_user(&a, "gail", "gail@example.com");
    create_group(&a, "team-a", &["gail"]);
    create_group(&a, "team-x", &["gail"]);
    create_group(&a, "others", &["gail"]);
    let r = a.admin().post(
        FED,
        &json!({"name": "site-b", "url": format!("{}/access/", b.url()),
                "entities": ["users", "groups"],
                "group_filters": {"include_patterns": ["team-*"], "exclude_patterns": ["team-x"]},
                "active": true}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r
        .header("x-gatehouse-ignored-fields")
        .is_none_or(|h| !h.contains("group_filters")));
    assert_eq!(
        r.json()["groupFilters"]["includePatterns"],
        json!(["team-*"])
    );
    let r = a.admin().put(&format!("{FED}/full_broadcast"), &json!({}));
    assert_eq!(r.status, 204, "{}", r.text);
    create_group(&a, "team-b", &["gail"]);
    create_group(&a, "misc", &["gail"]);
    wait_until(10, "team-b reached B", || b.group("team-b").is_some());
    assert!(b.group("team-a").is_some());
    for g in ["team-x", "others", "misc"] {
        assert!(b.group(g).is_none(), "group {g} must not reach B");
    }
}

#[test]
fn a_target_too_far_behind_gets_a_full_broadcast_by_itself() {
    let a = Site::start_with("federation-max-lag-events = 5\n");
    let mut b = Site::start();
    trust_both(&a, &b);
    a.register("site-b", &b, json!({"entities": ["users"]}));
    create_user(&a, "early", "early@example.com");
    wait_until(10, "the stream works", || b.user("early").is_some());
    b.kill();
    for i in 0..12 {
        create_user(&a, &format!("late{i}"), &format!("late{i}@example.com"));
    }
    // More than 5 pending: A drops them and owes B a broadcast — and says how far
    // behind B is (its lag read 0 once the backlog was dropped).
    wait_until(15, "A gave up on the backlog", || {
        let st = a.admin().get(&format!("{FED}/site-b/status")).json();
        st["broadcast_owed"] == true && st["pending_events"].as_u64().unwrap() <= 5
    });
    let st = a.admin().get(&format!("{FED}/site-b/status")).json();
    assert!(st["lag_events"].as_u64().unwrap() >= 12, "{st}");
    // And for how long: since the first event B has not acknowledged (it read 0 for as
    // long as B was away, the outbox being dropped), in the status and the metrics.
    std::thread::sleep(Duration::from_millis(1100));
    let st = a.admin().get(&format!("{FED}/site-b/status")).json();
    assert!(st["lag_seconds"].as_f64().unwrap() >= 1.0, "{st}");
    let metrics = a.admin().get("/access/api/v1/metrics").text;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("gatehouse_federation_lag_seconds{target=\"site-b\"}"))
        .unwrap_or_else(|| panic!("{metrics}"))
        .to_string();
    assert!(!line.ends_with(" 0"), "{line}");
    b.restart();
    wait_until(20, "the broadcast brought B up to date", || {
        (0..12).all(|i| b.user(&format!("late{i}")).is_some())
    });
    // B holds every user once the last batch is in; A marks the broadcast done
    // right after B's answer arrives, so the status may lag the users briefly.
    wait_until(10, "A marked the broadcast done", || {
        let st = a.admin().get(&format!("{FED}/site-b/status")).json();
        st["broadcast"]["state"] == "done" && st["broadcast_owed"] == false
    });
}

/// Users, groups and permissions of a site as comparable JSON (the federated subset).
fn federated_subset(site: &Site) -> BTreeMap<String, Value> {
    let admin = site.admin();
    let mut out = BTreeMap::new();
    for u in admin.get("/access/api/v2/users?limit=10000").json()["users"]
        .as_array()
        .unwrap()
    {
        let name = u["username"].as_str().unwrap();
        if name != "admin" {
            out.insert(format!("user:{name}"), site.user(name).unwrap());
        }
    }
    for g in admin.get("/access/api/v2/groups?limit=10000").json()["groups"]
        .as_array()
        .unwrap()
    {
        let name = g["group_name"]
            .as_str()
            .or_else(|| g["name"].as_str())
            .unwrap();
        out.insert(format!("group:{name}"), site.group(name).unwrap());
    }
    out
}

#[test]
fn a_target_killed_with_sigkill_converges_with_nothing_lost_or_duplicated() {
    let a = Site::start();
    let mut b = Site::start();
    trust_both(&a, &b);
    create_group(&a, "crew", &[]);
    a.register("site-b", &b, json!({"entities": ["users", "groups"]}));
    assert_eq!(
        a.admin()
            .put(&format!("{FED}/full_broadcast"), &json!({}))
            .status,
        204
    );
    let writer = {
        let base = a.url();
        std::thread::spawn(move || {
            let admin = Client::new(&base, Some(("admin", BINARY_ADMIN_PASSWORD)));
            for i in 0..120 {
                let name = format!("w{i:03}");
                let r = admin.post(
                    "/access/api/v2/users",
                    &json!({"username": name, "email": format!("{name}@example.com"), "password": "Password-123"}),
                );
                assert_eq!(r.status, 201, "{}", r.text);
                if i % 10 == 0 {
                    let r = admin.patch(
                        "/access/api/v2/groups/crew/members",
                        &json!({"add": [name]}),
                    );
                    assert_eq!(r.status, 200, "{}", r.text);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    wait_until(20, "some users reached B", || b.user("w010").is_some());
    b.kill();
    std::thread::sleep(Duration::from_millis(500));
    let st = a.admin().get(&format!("{FED}/site-b/status")).json();
    writer.join().unwrap();
    b.restart();
    wait_until(30, "B converged", || {
        let st = a.admin().get(&format!("{FED}/site-b/status")).json();
        st["lag_events"] == 0 && federated_subset(&a) == federated_subset(&b)
    });
    assert!(
        st["lag_events"].as_u64().unwrap() > 0 || st["last_error"].is_string(),
        "B was behind while it was down: {st}"
    );
    // Nothing duplicated: each user was written once at B.
    for i in 0..120 {
        let name = format!("w{i:03}");
        let created: Vec<Value> = b
            .events_about(&name)
            .into_iter()
            .filter(|e| e["type"] == "UserReplicated")
            .collect();
        assert_eq!(created.len(), 1, "{name}: {created:?}");
    }
}

#[test]
fn a_ring_of_three_writes_each_change_once_per_server() {
    let a = Site::start();
    let b = Site::start();
    let c = Site::start();
    for (x, y) in [(&a, &b), (&b, &c), (&c, &a)] {
        trust_both(x, y);
    }
    a.register(
        "to-b",
        &b,
        json!({"entities": ["users", "groups", "permissions", "tokens"]}),
    );
    b.register(
        "to-c",
        &c,
        json!({"entities": ["users", "groups", "permissions", "tokens"]}),
    );
    c.register(
        "to-a",
        &a,
        json!({"entities": ["users", "groups", "permissions", "tokens"]}),
    );
    create_user(&a, "ringo", "ringo@example.com");
    wait_until(10, "ringo went round", || c.user("ringo").is_some());
    // Let a loop show itself if there were one.
    std::thread::sleep(Duration::from_millis(1500));
    for (site, kind) in [
        (&a, "UserCreated"),
        (&b, "UserReplicated"),
        (&c, "UserReplicated"),
    ] {
        let events = site.events_about("ringo");
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["type"], kind);
    }
    // A change made at C goes round too and stops at C.
    let r = c.admin().patch(
        "/access/api/v2/users/ringo",
        &json!({"email": "ringo@c.example"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    wait_until(10, "the change went round", || {
        a.user("ringo")
            .is_some_and(|u| u["email"] == "ringo@c.example")
            && b.user("ringo")
                .is_some_and(|u| u["email"] == "ringo@c.example")
    });
    std::thread::sleep(Duration::from_millis(1500));
    for site in [&a, &b, &c] {
        assert_eq!(site.events_about("ringo").len(), 2);
    }
}

#[test]
fn a_token_issued_at_a_works_at_b_until_it_is_revoked_at_a() {
    let a = Site::start();
    let b = Site::start();
    trust_both(&a, &b);
    a.register("site-b", &b, json!({"entities": ["users", "tokens"]}));
    create_user(&a, "tess", "tess@example.com");
    // A revocable token (longer than the revocable-expiry-threshold).
    let r = a.admin().post(
        "/access/api/v1/tokens",
        &json!({"username": "tess", "expires_in": 86400, "scope": "applied-permissions/user"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    let token_id = r.json()["token_id"].as_str().unwrap().to_string();
    let on_b = Client::new(&b.url(), None).with_header_auth(&format!("Bearer {token}"));
    wait_until(10, "the token works at B", || {
        on_b.get("/access/api/v2/users/tess").status == 200
    });
    // B shows it as A's token.
    let shown = b
        .admin()
        .get(&format!("/access/api/v1/tokens/{token_id}"))
        .json();
    assert_eq!(shown["issuer"], json!(a.service_id()), "{shown}");
    assert!(
        shown["subject"]
            .as_str()
            .unwrap()
            .starts_with(&a.service_id()),
        "{shown}"
    );
    // The token reads its own record at B (it was a 400: "issued by another server");
    // it is revoked where it was issued.
    let me = on_b.get("/access/api/v1/tokens/me");
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json()["token_id"], json!(token_id));
    assert_eq!(on_b.delete("/access/api/v1/tokens/me").status, 400);
    // By value and through Artifactory's API, the same: a 200 there revoked only B's
    // copy, and the token went on working at A.
    let r = b.admin().raw(
        "DELETE",
        "/access/api/v1/tokens/revoke",
        Some("application/json"),
        Some(json!({"token": token}).to_string().as_bytes()),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("revoke it there"), "{}", r.text);
    let r = b.admin().raw(
        "POST",
        "/artifactory/api/security/token/revoke",
        Some("application/x-www-form-urlencoded"),
        Some(format!("token_id={token_id}").as_bytes()),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(on_b.get("/access/api/v2/users/tess").status, 200);
    // An expired password (replicated) stops it at B too.
    let r = a
        .admin()
        .post_empty("/access/api/v2/users/tess/password/expire");
    assert!(r.status == 200 || r.status == 204, "{}", r.text);
    wait_until(10, "the expired password stops the token at B", || {
        on_b.get("/access/api/v2/users/tess").status == 403
    });
    let r = a
        .admin()
        .delete(&format!("/access/api/v1/tokens/{token_id}"));
    assert!(r.status == 200 || r.status == 204, "{}", r.text);
    let revoked = Instant::now();
    wait_until(2, "the revocation reached B within 2 s", || {
        on_b.get("/access/api/v2/users/tess").status == 401
    });
    eprintln!("revocation at B after {:?}", revoked.elapsed());
}

/// A short-lived (not revocable) admin token of a user deleted at its own site, and one
/// of a user renamed there: refused at the peer that heard of it (each was taken as a
/// transient identity's, admin by its scope, and made users there).
#[test]
fn a_peer_token_of_a_user_deleted_or_renamed_since_is_refused() {
    let a = Site::start();
    let b = Site::start();
    trust_both(&a, &b);
    a.register("site-b", &b, json!({"entities": ["users"]}));
    let admin_token = |name: &str| {
        let r = a.admin().post(
            "/access/api/v2/users",
            &json!({"username": name, "email": format!("{name}@example.com"),
                    "password": "Passw0rd-long!x", "admin": true}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        let r = a.admin().post(
            "/access/api/v1/tokens",
            &json!({"username": name, "expires_in": 3000, "scope": "applied-permissions/admin"}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        let token = r.json()["access_token"].as_str().unwrap().to_string();
        let on_b = Client::new(&b.url(), None).with_header_auth(&format!("Bearer {token}"));
        wait_until(10, "the user and the token work at B", || {
            on_b.get(&format!("/access/api/v2/users/{name}")).status == 200
        });
        on_b
    };
    let eve = admin_token("eve");
    let dan = admin_token("dan");
    assert_eq!(a.admin().delete("/access/api/v2/users/eve").status, 204);
    let r = a.admin().raw(
        "PATCH",
        "/access/api/v1/scim/v2/Users/dan",
        Some("application/scim+json"),
        Some(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "replace", "path": "userName", "value": "daniel"}]})
            .to_string()
            .as_bytes(),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    wait_until(10, "the deletion and the rename reach B", || {
        b.admin().get("/access/api/v2/users/eve").status == 404
            && b.admin().get("/access/api/v2/users/daniel").status == 200
    });
    for on_b in [&eve, &dan] {
        let r = on_b.get("/access/api/v2/users");
        assert_eq!(r.status, 401, "{}", r.text);
        let r = on_b.post(
            "/access/api/v2/users",
            &json!({"username": "planted", "email": "p@example.com",
                    "password": "Passw0rd-long!x", "admin": true}),
        );
        assert_eq!(r.status, 401, "{}", r.text);
    }
    assert_eq!(b.admin().get("/access/api/v2/users/planted").status, 404);
}

/// A peer's new user takes a name only where a local create could: not an access key's
/// (the key stopped signing in, the peer's user signed in by its name), not a renamed
/// user's SCIM id (two SCIM resources had one id). The rest of the stream goes on.
#[test]
fn a_peer_user_does_not_take_an_access_key_or_a_scim_id() {
    let a = Site::start();
    let b = Site::start();
    trust_both(&a, &b);
    let r = a.admin().post(
        "/access/api/v1/orgs/myorg/access_keys",
        &json!({"id": "client1", "password": "client1-secret-XY1"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    create_user(&a, "bob", "bob@example.com");
    let r = a.admin().raw(
        "PATCH",
        "/access/api/v1/scim/v2/Users/bob",
        Some("application/scim+json"),
        Some(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "replace", "path": "userName", "value": "robert"}]})
            .to_string()
            .as_bytes(),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    for name in ["client1@myorg", "bob", "carol"] {
        create_user(&b, name, &format!("{}@example.com", name.replace('@', ".")));
    }
    b.register("site-a", &a, json!({"entities": ["users"]}));
    wait_until(10, "carol reaches A", || {
        a.admin().get("/access/api/v2/users/carol").status == 200
    });
    assert_eq!(
        a.admin().get("/access/api/v2/users/client1@myorg").status,
        404
    );
    assert_eq!(a.admin().get("/access/api/v2/users/bob").status, 404);
    let key = Client::new(&a.url(), Some(("client1@myorg", "client1-secret-XY1")));
    let r = key.get("/access/api/v1/authorize?resource=libs/x.jar");
    assert_ne!(r.status, 401, "the key still signs in: {}", r.text);
    let ids = a
        .admin()
        .get("/access/api/v1/scim/v2/Users?filter=userName%20eq%20%22robert%22")
        .json();
    assert_eq!(ids["Resources"][0]["id"], "bob", "{ids}");
    let all = a
        .admin()
        .get("/access/api/v1/scim/v2/Users?count=100")
        .json();
    let with_id_bob = all["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["id"] == "bob")
        .count();
    assert_eq!(with_id_bob, 1, "{all}");
}

/// A target whose server was wiped (a new service id at the same address) gets a full
/// broadcast by itself: the stream went on with what followed, status said all was
/// well, and every earlier user was missing there.
#[test]
fn a_target_wiped_and_started_again_gets_everything_again() {
    let a = Site::start();
    let mut b = Site::start();
    trust_both(&a, &b);
    a.register("site-b", &b, json!({"entities": ["users"]}));
    create_user(&a, "early", "early@example.com");
    wait_until(10, "early reaches B", || b.user("early").is_some());
    let old_id = b.service_id();
    b.kill();
    std::fs::remove_dir_all(&b.data).unwrap();
    b.restart();
    assert_ne!(b.service_id(), old_id);
    b.trust("peer-a", &a);
    create_user(&a, "late", "late@example.com");
    wait_until(15, "late and early reach the new B", || {
        b.user("late").is_some() && b.user("early").is_some()
    });
}

/// A copy swept at the middle of a chain (its source's filters no longer select it) is
/// swept downstream too: the sweep's removal carries the version the next site holds,
/// and was dropped there as not newer — an orphan its origin never changed or deleted
/// again.
#[test]
fn a_sweep_is_passed_on_down_a_chain() {
    let a = Site::start();
    let b = Site::start();
    let c = Site::start();
    trust_both(&a, &b);
    trust_both(&b, &c);
    let all = json!({"entities": ["groups", "permissions"]});
    a.register("to-b", &b, all.clone());
    b.register("to-c", &c, all);
    create_group(&a, "devs", &[]);
    create_target(&a, "team_a_perm", "devs");
    let at = |site: &Site| {
        site.admin()
            .get("/artifactory/api/v2/security/permissions/team_a_perm")
            .status
    };
    wait_until(15, "the target reaches C", || at(&c) == 200);
    let r = a.admin().patch(
        &format!("{FED}/to-b"),
        &json!({"permission_filters": {"include_patterns": ["zzz*"], "exclude_patterns": []}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    wait_until(15, "B swept it", || at(&b) == 404);
    wait_until(15, "C swept it too", || at(&c) == 404);
    assert_eq!(at(&a), 200);
}

/// A key of our own (from `seed`), trusted by `b` as `test-peer`, to sign batches the
/// way a peer would; and its key id.
fn trust_test_peer(b: &Site, seed: u8) -> (ed25519_dalek::SigningKey, String) {
    let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
    let public = key.verifying_key();
    let r = b.admin().post(
        "/access/api/v1/cert/trusted",
        &json!({"name": "test-peer", "certificate": gatehouse::keys::public_pem(&public)}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    (key, gatehouse::keys::kid_of(&public))
}

/// A batch's bearer token as a peer `iss` signs it with `key` (`kid`): scope `scp`, the
/// body's blake3 as `jti`.
fn sign_batch(
    body: &[u8],
    scp: &str,
    iss: &str,
    key: &ed25519_dalek::SigningKey,
    kid: &str,
    now: u64,
) -> String {
    gatehouse::auth::jwt::sign(
        &gatehouse::auth::jwt::Claims {
            sub: format!("{iss}/federation"),
            scp: scp.into(),
            aud: "*@*".into(),
            iss: iss.into(),
            iat: now,
            exp: Some(now + 60),
            nbf: None,
            jti: blake3::hash(body).to_hex().to_string(),
            ext: None,
        },
        kid,
        &gatehouse::keys::PrivateKey::from_seed(&key.to_bytes()).expect("a seed is a key"),
    )
}

#[test]
fn tampered_or_untrusted_batches_are_refused_and_change_nothing() {
    let b = Site::start();
    // A key of our own, trusted by B, to sign batches the way a peer would.
    let (key, kid) = trust_test_peer(&b, 7);
    let untrusted = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let untrusted_kid = gatehouse::keys::kid_of(&untrusted.verifying_key());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sign = |body: &[u8], scp: &str, iss: &str, k: &ed25519_dalek::SigningKey, kid: &str| {
        sign_batch(body, scp, iss, k, kid, now)
    };
    let peer = "jfac@01testpeer";
    let batch = |name: &str| {
        serde_json::to_vec(&json!({"source": peer, "kind": "changes", "changes": [
            {"entity": "user", "name": name, "op": "upsert",
             "version": {"time_ms": 1, "origin": peer, "origin_seq": 1},
             "user": {"username": name, "email": null, "password_hash": null, "admin": false,
                      "profile_updatable": true, "internal_password_disabled": false,
                      "disable_ui_access": false, "realm": "internal", "status": "enabled",
                      "password_expired": false}}]}))
        .unwrap()
    };
    let post = |body: &[u8], token: Option<String>| {
        let c = match token {
            Some(t) => Client::new(&b.url(), None).with_header_auth(&format!("Bearer {t}")),
            None => Client::new(&b.url(), None),
        };
        c.raw(
            "POST",
            &format!("{FED}/receive"),
            Some("application/json"),
            Some(body),
        )
    };
    let before = b.digest();
    let body = batch("mallory");
    // No token; a key B does not trust; a body changed after signing; another scope;
    // a source that is not the signer.
    assert_eq!(post(&body, None).status, 401);
    assert_eq!(
        post(
            &body,
            Some(sign(
                &body,
                "federation:batch",
                peer,
                &untrusted,
                &untrusted_kid
            ))
        )
        .status,
        401
    );
    let signed = sign(&body, "federation:batch", peer, &key, &kid);
    let mut tampered = body.clone();
    let at = tampered.windows(7).position(|w| w == b"mallory").unwrap();
    tampered[at] = b'n';
    let r = post(&tampered, Some(signed.clone()));
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.error_message().contains("does not match"), "{}", r.text);
    assert_eq!(
        post(
            &body,
            Some(sign(&body, "applied-permissions/admin", peer, &key, &kid))
        )
        .status,
        403
    );
    assert_eq!(
        post(
            &body,
            Some(sign(
                &body,
                "federation:batch",
                "jfac@someone-else",
                &key,
                &kid
            ))
        )
        .status,
        403
    );
    // A token that lives a year: no peer signs a batch for that long.
    let long = gatehouse::auth::jwt::sign(
        &gatehouse::auth::jwt::Claims {
            sub: format!("{peer}/federation"),
            scp: "federation:batch".into(),
            aud: "*@*".into(),
            iss: peer.into(),
            iat: now,
            exp: Some(now + 365 * 86400),
            nbf: None,
            jti: blake3::hash(&body).to_hex().to_string(),
            ext: None,
        },
        &kid,
        &gatehouse::keys::PrivateKey::from_seed(&key.to_bytes()).expect("a seed is a key"),
    );
    let r = post(&body, Some(long));
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(b.digest(), before, "nothing changed");
    assert!(b.user("mallory").is_none() && b.user("nallory").is_none());
    // Bad input in a signed batch: 400 naming the field.
    let bad = serde_json::to_vec(&json!({"source": peer, "kind": "changes", "changes": [
        {"entity": "user", "name": "Bad Name", "op": "upsert",
         "version": {"time_ms": 1, "origin": peer, "origin_seq": 1}}]}))
    .unwrap();
    let r = post(&bad, Some(sign(&bad, "federation:batch", peer, &key, &kid)));
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.error_message().contains("changes[0].user"), "{}", r.text);
    assert_eq!(b.digest(), before);
    // The genuine batch is accepted, once.
    let r = post(&body, Some(signed.clone()));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["applied"], 1);
    assert!(b.user("mallory").is_some());
    let after = b.digest();
    let r = post(
        &body,
        Some(sign(&body, "federation:batch", peer, &key, &kid)),
    );
    assert_eq!(
        r.json()["applied"],
        0,
        "delivered twice: nothing the second time"
    );
    assert_eq!(b.digest(), after);
}

#[test]
fn a_peer_token_already_past_use_is_not_taken() {
    let b = Site::start();
    let (key, kid) = trust_test_peer(&b, 11);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let peer = "jfac@01testpeer";
    let token = |id: &str, expires_at: u64| {
        json!({"entity": "token", "name": id, "op": "upsert", "issuer": peer,
               "version": {"time_ms": 1, "origin": peer, "origin_seq": 1},
               "token": {"token_id": id, "subject": "tess", "transient": true,
                         "scope": "applied-permissions/groups:readers", "audience": "*@*",
                         "issued_at": now - 7200, "expires_at": expires_at,
                         "refreshable": false, "revocable": true, "description": null,
                         "kid": "k", "access_hash": format!("a-{id}"),
                         "refresh_hash": null, "reference_hash": null}})
    };
    // Expired an hour ago (not refreshable, so no grace), and valid for another hour.
    let body = serde_json::to_vec(&json!({"source": peer, "kind": "changes", "changes": [
        token("expired-at-peer", now - 3600), token("valid-at-peer", now + 3600)]}))
    .unwrap();
    let signed = sign_batch(&body, "federation:batch", peer, &key, &kid, now);
    let r = Client::new(&b.url(), None)
        .with_header_auth(&format!("Bearer {signed}"))
        .raw(
            "POST",
            &format!("{FED}/receive"),
            Some("application/json"),
            Some(&body),
        );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["received"], 2);
    assert_eq!(r.json()["applied"], 1, "{}", r.text);
    let listed = b.admin().get("/access/api/v1/tokens").json().to_string();
    assert!(
        listed.contains("valid-at-peer") && !listed.contains("expired-at-peer"),
        "{listed}"
    );
}

/// A change the receiver refuses for good is named in its 400
/// (`X-Gatehouse-Refused-Change`, the index in the batch), so that the sender can leave
/// it out; a version from the future is refused without the name (it is taken once the
/// clock catches up, so the sender retries it).
#[test]
fn a_refused_change_is_named_in_the_answer() {
    let b = Site::start();
    let (key, kid) = trust_test_peer(&b, 11);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let peer = "jfac@01testpeer";
    let user = |name: &str, origin: &str, time_ms: u64| {
        json!({"entity": "user", "name": name, "op": "upsert",
               "version": {"time_ms": time_ms, "origin": origin, "origin_seq": 1},
               "user": {"username": name, "email": null, "password_hash": null, "admin": false,
                        "profile_updatable": true, "internal_password_disabled": false,
                        "disable_ui_access": false, "realm": "internal", "status": "enabled",
                        "password_expired": false}})
    };
    let post = |changes: Value| {
        let body =
            serde_json::to_vec(&json!({"source": peer, "kind": "changes", "changes": changes}))
                .unwrap();
        let signed = sign_batch(&body, "federation:batch", peer, &key, &kid, now_ms / 1000);
        Client::new(&b.url(), None)
            .with_header_auth(&format!("Bearer {signed}"))
            .raw(
                "POST",
                &format!("{FED}/receive"),
                Some("application/json"),
                Some(&body),
            )
    };
    let before = b.digest();
    let r = post(json!([user("fine", peer, 1), user("no-origin", "", 1)]));
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("changes[1].version.origin"), "{}", r.text);
    assert_eq!(
        r.header("x-gatehouse-refused-change"),
        Some("1"),
        "{:?}",
        r.headers
    );
    let r = post(json!([user("early", peer, now_ms + 3_600_000)]));
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.header("x-gatehouse-refused-change"),
        None,
        "{:?}",
        r.headers
    );
    assert_eq!(b.digest(), before, "nothing was applied");
    let r = post(json!([user("fine", peer, 1)]));
    assert_eq!(r.status, 200, "{}", r.text);
}

/// One change the peer refuses for good no longer holds back the stream: it is left
/// out (the log and the target's status say so) and every change after it goes on, in
/// the broadcast the target's registration owes and in the live stream. Before, the
/// batch was retried as it was, for ever, and nothing after it reached the peer.
#[test]
fn a_change_the_peer_refuses_is_left_out_and_the_rest_go_on() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::{Arc, Mutex};
    let a = Site::start();
    // A peer that refuses any change of the user `poison`, naming it as a Gatehouse
    // peer does, and takes everything else.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/access/", listener.local_addr().unwrap());
    let taken: Arc<Mutex<Vec<String>>> = Arc::default();
    let refusals = Arc::new(Mutex::new(0u32));
    let (t, n) = (taken.clone(), refusals.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let batch: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let names: Vec<String> = batch["changes"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .map(|c| c["name"].as_str().unwrap_or("").to_string())
                        .collect()
                })
                .unwrap_or_default();
            let (status, extra, answer) = match batch["kind"].as_str() {
                Some("begin") => (
                    200,
                    String::new(),
                    r#"{"position":0,"service_id":"jfac@fake"}"#.to_string(),
                ),
                Some("changes") => match names.iter().position(|n| n == "poison") {
                    Some(i) => {
                        *n.lock().unwrap() += 1;
                        (
                            400,
                            format!("x-gatehouse-refused-change: {i}\r\n"),
                            format!(
                                r#"{{"errors":[{{"status":400,"message":"invalid `changes[{i}].name`"}}]}}"#
                            ),
                        )
                    }
                    None => {
                        t.lock().unwrap().extend(names.iter().cloned());
                        (
                            200,
                            String::new(),
                            format!(
                                r#"{{"received":{0},"applied":{0},"service_id":"jfac@fake"}}"#,
                                names.len()
                            ),
                        )
                    }
                },
                _ => (200, String::new(), r#"{"removed":0}"#.to_string()),
            };
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    create_user(&a, "before", "before@example.com");
    create_user(&a, "poison", "poison@example.com");
    create_user(&a, "after", "after@example.com");
    let r = a.admin().post(
        FED,
        &json!({"name": "to-fake", "url": url, "entities": ["users"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let has = |name: &str| taken.lock().unwrap().iter().any(|n| n == name);
    wait_until(20, "the broadcast's users reached the peer", || {
        has("before") && has("after")
    });
    // The live stream: a change of `poison` between two others.
    create_user(&a, "live1", "live1@example.com");
    let r = a.admin().patch(
        "/access/api/v2/users/poison",
        &json!({"email": "poison2@example.com"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    create_user(&a, "live2", "live2@example.com");
    wait_until(20, "the stream's users reached the peer", || {
        has("live1") && has("live2")
    });
    assert!(!has("poison"));
    assert!(
        *refusals.lock().unwrap() >= 2,
        "the broadcast's and the stream's"
    );
    let st = a.admin().get(&format!("{FED}/to-fake/status")).json();
    assert!(st["refused_changes"].as_u64().unwrap() >= 2, "{st}");
    assert_eq!(st["last_refused"]["name"], "poison", "{st}");
    assert_eq!(st["last_refused"]["entity"], "user", "{st}");
    assert!(
        st["last_refused"]["reason"]
            .as_str()
            .unwrap()
            .contains("changes["),
        "{st}"
    );
}

/// A peer's answer is read up to a bound: one that announces gigabytes and keeps sending
/// is refused as too large, at once. Before, the server read on (into memory) until the
/// federation timeout.
#[test]
fn a_peer_answer_larger_than_the_bound_is_not_read_on() {
    use std::io::{Read, Write};
    let app = crate::helpers::TestApp::spawn();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = [0u8; 4096];
            let _ = stream.read(&mut head);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4000000000\r\n\r\n{\"token\":\"",
            );
            let chunk = vec![b'a'; 64 * 1024];
            while stream.write_all(&chunk).is_ok() {}
        }
    });
    let started = std::time::Instant::now();
    let r = app.admin().post(
        "/access/api/v1/system/federation/validate_server",
        &json!({"url": format!("http://127.0.0.1:{port}/access")}),
    );
    assert_eq!(r.status, 412, "{}", r.text);
    assert!(r.text.contains("larger than"), "{}", r.text);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "read until the timeout"
    );
}

/// What a review of three sites found, each once wrong: a deleted user's token went on
/// working at a peer that takes tokens but not users; a rename left the renamed user
/// out of its groups at the peer; a user deleted at A kept its grants in B's own
/// permission target (a later user of the name inherited them); a delete made while the
/// stream was replaced by a broadcast was lost at the peer; `anonymous` was federated (a
/// peer's copy switched anonymous access off); a peer's group change took this server's
/// own `admin` out of the group.
#[test]
fn deletes_renames_and_built_in_users_reach_peers_as_they_are_here() {
    let a = Site::start();
    let b = Site::start();
    let c = Site::start();
    trust_both(&a, &b);
    a.trust("peer-c", &c);
    c.trust("peer-a", &a);
    let anonymous_on = |site: &Site, on: bool| {
        let r = site.admin().put(
            "/access/api/v1/config/security/anonymous_access",
            &json!({ "enabled": on }),
        );
        assert!(r.status == 200 || r.status == 204, "{}", r.text);
    };
    anonymous_on(&b, true);
    anonymous_on(&a, true);
    anonymous_on(&a, false);
    a.register(
        "site-b",
        &b,
        json!({"entities": ["users", "groups", "tokens"]}),
    );
    a.register("site-c", &c, json!({"entities": ["tokens"]}));
    create_user(&a, "ren1", "ren1@example.com");
    create_group(&a, "team", &["ren1"]);
    create_user(&a, "eve", "eve@example.com");
    create_user(&a, "lag5", "lag5@example.com");
    create_user(&a, "edt", "edt@example.com");
    let r = a.admin().put(&format!("{FED}/full_broadcast"), &json!({}));
    assert_eq!(r.status, 204, "{}", r.text);
    wait_until(10, "the users reached B", || {
        ["ren1", "eve", "lag5", "edt"]
            .iter()
            .all(|u| b.user(u).is_some())
            && b.group("team").is_some()
    });
    // `anonymous` is B's own: A's disabled copy did not come.
    assert_eq!(b.user("anonymous").unwrap()["status"], "enabled");

    // B's own admin joins the group at B; A's next change of the group keeps it there.
    let r = b.admin().patch(
        "/access/api/v2/groups/team/members",
        &json!({"add": ["admin"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // A rename at A: the group follows at B, with B's admin still in it.
    let scim_id = a
        .admin()
        .get("/access/api/v1/scim/v2/Users?filter=userName%20eq%20%22ren1%22")
        .json()["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = a.admin().patch(
        &format!("/access/api/v1/scim/v2/Users/{scim_id}"),
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "userName", "value": "ren2"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let members = |site: &Site| -> Vec<String> {
        site.group("team").map_or(vec![], |g| {
            g["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_str().unwrap().to_string())
                .collect()
        })
    };
    wait_until(10, "the renamed user is in the group at B", || {
        b.user("ren2").is_some() && members(&b) == ["admin", "ren2"]
    });
    assert_eq!(members(&a), ["ren2"]);

    // B's own permission target names lag5 (A's user); A deletes lag5.
    let r = b.admin().put(
        "/artifactory/api/v2/security/permissions/b-local",
        &json!({"name": "b-local", "repo": {"repositories": ["libs-b"], "include-patterns": ["**"],
                "actions": {"users": {"lag5": ["read", "write"], "eve": ["read"]}}}}),
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    // eve's own token, revocable; C takes tokens only and knows no eve.
    let r = a.admin().post(
        "/access/api/v1/tokens",
        &json!({"username": "eve", "expires_in": 86400, "scope": "applied-permissions/user"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    let on_c = Client::new(&c.url(), None).with_header_auth(&format!("Bearer {token}"));
    let ask_c = || {
        on_c.get("/access/api/v1/authorize?resource=libs/a.jar")
            .status
    };
    wait_until(10, "eve's token works at C", || ask_c() != 401);
    for u in ["lag5", "eve"] {
        assert_eq!(
            a.admin()
                .delete(&format!("/access/api/v2/users/{u}"))
                .status,
            204
        );
    }
    wait_until(10, "eve's token ends at C with her deletion at A", || {
        ask_c() == 401
    });
    wait_until(10, "the deleted users left B's own target", || {
        let t = b
            .admin()
            .get("/artifactory/api/v2/security/permissions/b-local")
            .json();
        b.user("lag5").is_none() && t["repo"]["actions"]["users"] == json!({})
    });
    // A later lag5 at B inherits nothing.
    create_user(&b, "lag5", "new-lag5@example.com");
    let r = b
        .admin()
        .get("/access/api/v1/authorize?resource=libs-b/a.jar&action=read&user=lag5");
    assert_eq!(r.json()["allowed"], false, "{}", r.text);

    // edt changed at B (B's own write), then deleted at A while A's stream to B is
    // replaced by a broadcast: the later delete wins at B.
    let r = b.admin().patch(
        "/access/api/v2/users/edt",
        &json!({"email": "edt-at-b@example.com"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let active = |on: bool| {
        let r = a
            .admin()
            .patch(&format!("{FED}/site-b"), &json!({ "active": on }));
        assert!(r.status == 200 || r.status == 204, "{}", r.text);
    };
    active(false);
    assert_eq!(a.admin().delete("/access/api/v2/users/edt").status, 204);
    active(true);
    let r = a.admin().put(&format!("{FED}/full_broadcast"), &json!({}));
    assert_eq!(r.status, 204, "{}", r.text);
    wait_until(10, "the delete reached B by the broadcast", || {
        b.user("edt").is_none()
    });
}

/// Two servers federating with each other (the two-way setup README recommends): a user
/// renamed at A keeps its grants on both. B took the rename as a removal of the old name
/// and dropped it from its copy of A's permission target as a new local write, which
/// outranked A's own rewrite of the target (already naming the new name) and went back
/// to A: both ended with no grant.
#[test]
fn a_rename_keeps_its_grants_when_two_servers_federate_both_ways() {
    let a = Site::start();
    let b = Site::start();
    trust_both(&a, &b);
    let both = json!({"entities": ["users", "groups", "permissions"]});
    a.register("site-b", &b, both.clone());
    b.register("site-a", &a, both);
    create_user(&a, "fay", "fay@example.com");
    let r = a.admin().put(
        "/artifactory/api/v2/security/permissions/team",
        &json!({"name": "team", "repo": {"repositories": ["libs"], "include-patterns": ["**"],
                "actions": {"users": {"fay": ["read", "write"]}}}}),
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    let grants = |site: &Site| -> Value {
        site.admin()
            .get("/artifactory/api/v2/security/permissions/team")
            .json()["repo"]["actions"]["users"]
            .clone()
    };
    wait_until(10, "the target reached B", || {
        grants(&b) == json!({"fay": ["read", "write"]})
    });
    let r = a.admin().patch(
        "/access/api/v1/scim/v2/Users/fay",
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "userName", "value": "fay2"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let want = json!({"fay2": ["read", "write"]});
    let settled = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        grants(&b) == want
    });
    assert!(
        settled,
        "A {} B {}\nB events: {:#}",
        grants(&a),
        grants(&b),
        json!(b.events_about("team"))
    );
    // Settled: both streams idle, each side's copy as A wrote it.
    wait_until(10, "the streams settle", || {
        let lag = |s: &Site, t: &str| {
            s.admin().get(&format!("{FED}/{t}/status")).json()["lag_events"].clone()
        };
        lag(&a, "site-b") == 0 && lag(&b, "site-a") == 0
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(grants(&a), want);
    assert_eq!(grants(&b), want);
    let fay2 = Client::new(&a.url(), Some(("fay2", "Password-123")));
    let r = fay2.get("/access/api/v1/authorize?resource=libs/x.jar&action=write");
    assert_eq!(r.status, 200, "{}", r.text);
}

/// A target named like one of the fixed routes beside `…/federation/{name}` could be
/// made and never read, changed or removed (405), and broke every later full broadcast:
/// refused, naming the field.
#[test]
fn a_target_may_not_take_the_name_of_a_route() {
    let app = crate::helpers::TestApp::spawn();
    let admin = app.admin();
    let seq = app.digest()["seq"].as_u64().unwrap();
    for name in ["validate_server", "full_broadcast", "receive", "challenge"] {
        let r = admin.post(
            FED,
            &json!({"name": name, "url": "http://127.0.0.1:1/access/", "entities": ["users"]}),
        );
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        assert!(r.error_message().contains("`name`"), "{name}: {}", r.text);
    }
    assert_eq!(app.digest()["seq"].as_u64().unwrap(), seq);
}

/// Two targets of one source to the same peer, each selecting its own permission
/// targets: a full broadcast of either (or of one selecting nothing) leaves what the
/// other sent — the end of a broadcast named only its own selection, and the peer
/// removed everything else this source had sent.
#[test]
fn broadcasts_of_two_targets_to_one_peer_keep_each_others_entities() {
    let a = Site::start();
    let b = Site::start();
    trust_both(&a, &b);
    create_user(&a, "alice", "alice@example.com");
    create_group(&a, "team", &["alice"]);
    create_target(&a, "team_a_read", "team");
    create_target(&a, "team_b_read", "team");
    for (name, pattern) in [
        ("b-team-a", "team_a_*"),
        ("b-team-b", "team_b_*"),
        ("b-none", "none_*"),
    ] {
        a.register(
            name,
            &b,
            json!({"entities": ["permissions"], "permissionFilters": {"includePatterns": [pattern]}}),
        );
    }
    let on_b = |name: &str| {
        b.admin()
            .get(&format!("/artifactory/api/v2/security/permissions/{name}"))
            .status
    };
    let r = a.admin().put(&format!("{FED}/full_broadcast"), &json!({}));
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!((on_b("team_a_read"), on_b("team_b_read")), (200, 200));
    for target in ["b-none", "b-team-a", "b-team-b"] {
        let r = a
            .admin()
            .put(&format!("{FED}/{target}/full_broadcast"), &json!({}));
        assert_eq!(r.status, 202, "{}", r.text);
        wait_until(20, "the broadcast is done", || {
            a.admin().get(&format!("{FED}/{target}/status")).json()["broadcast"]["state"] == "done"
        });
        assert_eq!(
            (on_b("team_a_read"), on_b("team_b_read")),
            (200, 200),
            "after {target}'s broadcast"
        );
    }
    // A target whose filter selects nothing has nothing waiting, whatever is written:
    // no lag (the metric counted every write it did not select).
    for i in 0..5 {
        create_user(&a, &format!("other{i}"), &format!("other{i}@example.com"));
    }
    let text = a.admin().get("/access/api/v1/metrics").text;
    assert!(
        text.contains(r#"gatehouse_federation_lag_events{target="b-none"} 0"#),
        "{text}"
    );
    // What is gone here still goes at the peer.
    a.admin()
        .delete("/artifactory/api/v2/security/permissions/team_b_read");
    let r = a.admin().put(&format!("{FED}/full_broadcast"), &json!({}));
    assert_eq!(r.status, 204, "{}", r.text);
    wait_until(10, "the deletion reached B", || on_b("team_b_read") == 404);
    assert_eq!(on_b("team_a_read"), 200);
}

/// The same peer spelled two ways (`127.0.0.1` and `localhost`): a broadcast of one
/// target keeps what the other sent. "The same peer" was the URL's text, and the end of
/// the broadcast swept away at the peer what the other target had sent.
#[test]
fn a_broadcast_keeps_what_a_target_to_the_same_peer_spelled_otherwise_sent() {
    let a = Site::start();
    let b = Site::start();
    trust_both(&a, &b);
    create_user(&a, "alice", "alice@example.com");
    create_group(&a, "team", &["alice"]);
    create_target(&a, "team_a_read", "team");
    create_target(&a, "team_b_read", "team");
    a.register(
        "b-team-a",
        &b,
        json!({"entities": ["permissions"], "permissionFilters": {"includePatterns": ["team_a_*"]}}),
    );
    let on_b = |name: &str| {
        b.admin()
            .get(&format!("/artifactory/api/v2/security/permissions/{name}"))
            .status
    };
    let done = |target: &str| {
        wait_until(20, "the broadcast is done", || {
            a.admin().get(&format!("{FED}/{target}/status")).json()["broadcast"]["state"] == "done"
        })
    };
    wait_until(20, "team_a_read reached B", || on_b("team_a_read") == 200);
    done("b-team-a");
    // Registered after the first one's broadcast: its own (owed) broadcast knows the
    // first target's peer by the service id it answered.
    let localhost = format!("{}/access/", b.url()).replace("127.0.0.1", "localhost");
    let r = a.admin().post(
        FED,
        &json!({"name": "b-team-b", "url": localhost, "entities": ["permissions"],
                "permissionFilters": {"includePatterns": ["team_b_*"]}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    wait_until(20, "team_b_read reached B", || on_b("team_b_read") == 200);
    done("b-team-b");
    assert_eq!(on_b("team_a_read"), 200, "after b-team-b's first broadcast");
    for target in ["b-team-a", "b-team-b"] {
        let r = a
            .admin()
            .put(&format!("{FED}/{target}/full_broadcast"), &json!({}));
        assert_eq!(r.status, 202, "{}", r.text);
        done(target);
        assert_eq!(
            (on_b("team_a_read"), on_b("team_b_read")),
            (200, 200),
            "after {target}'s broadcast"
        );
    }
}

/// A target deleted and registered again, or made to select more, owes its peer a full
/// broadcast, sent by itself: the peer kept a user deleted meanwhile and never got one
/// created meanwhile, while status said nothing was pending.
#[test]
fn a_target_registered_again_or_widened_catches_up_by_itself() {
    let a = Site::start();
    let b = Site::start();
    trust_both(&a, &b);
    create_user(&a, "u1", "u1@example.com");
    create_group(&a, "g1", &[]);
    a.register("to-b", &b, json!({"entities": ["users"]}));
    wait_until(10, "u1 reached B", || b.user("u1").is_some());
    let saved = a.admin().get(&format!("{FED}/to-b")).json();
    assert_eq!(a.admin().delete(&format!("{FED}/to-b")).status, 204);
    assert_eq!(a.admin().delete("/access/api/v2/users/u1").status, 204);
    create_user(&a, "while-gone", "wg@example.com");
    let r = a.admin().post(FED, &saved);
    assert_eq!(r.status, 201, "{}", r.text);
    wait_until(20, "B caught up", || {
        b.user("u1").is_none() && b.user("while-gone").is_some()
    });
    wait_until(10, "the broadcast is recorded", || {
        a.admin().get(&format!("{FED}/to-b/status")).json()["broadcast"]["state"] == "done"
    });
    // A broadcast is a success, and moves the cursor (status showed neither).
    let st = a.admin().get(&format!("{FED}/to-b/status")).json();
    assert!(st["last_success"].is_string(), "{st}");
    assert_eq!(st["broadcast_owed"], false, "{st}");
    assert!(st["cursor"].as_u64().unwrap() > 0, "{st}");
    // Selecting groups too: the group made before comes by itself.
    assert!(b.group("g1").is_none());
    let r = a.admin().patch(
        &format!("{FED}/to-b"),
        &json!({"entities": ["users", "groups"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    wait_until(20, "g1 reached B", || b.group("g1").is_some());
}

/// A target pointed back at this server: its broadcast fails, saying so (it sent every
/// entity to itself and counted a success).
#[test]
fn a_target_pointing_at_its_own_server_fails_saying_so() {
    let a = Site::start();
    create_user(&a, "u1", "u1@example.com");
    a.register("self", &a, json!({"entities": ["users"]}));
    let r = a
        .admin()
        .put(&format!("{FED}/self/full_broadcast"), &json!({}));
    assert_eq!(r.status, 202, "{}", r.text);
    wait_until(20, "the broadcast fails", || {
        a.admin().get(&format!("{FED}/self/status")).json()["broadcast"]["state"] == "failed"
    });
    let st = a.admin().get(&format!("{FED}/self/status")).json();
    assert!(
        st["broadcast"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("this server itself"),
        "{st}"
    );
}

/// A permission target a peer sends keeps the rules of a local write: one naming an
/// action no server has, or a pattern the matcher cannot read, is refused, naming it;
/// one only out of its normal form (a user name in upper case, no default repository) is
/// stored in it. Before, whatever a trusted peer sent was written and served. A removal
/// of a name no group, target or token can have is refused too.
#[test]
fn replicated_permission_targets_keep_the_rules_of_a_local_write() {
    let b = Site::start();
    let (key, kid) = trust_test_peer(&b, 12);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let peer = "jfac@01rulespeer";
    let send = |changes: serde_json::Value| {
        let body =
            serde_json::to_vec(&json!({"source": peer, "kind": "changes", "changes": changes}))
                .unwrap();
        let signed = sign_batch(&body, "federation:batch", peer, &key, &kid, now);
        Client::new(&b.url(), None)
            .with_header_auth(&format!("Bearer {signed}"))
            .raw(
                "POST",
                &format!("{FED}/receive"),
                Some("application/json"),
                Some(&body),
            )
    };
    let target = |name: &str, build: serde_json::Value| {
        json!({"entity": "permission", "name": name, "op": "upsert",
               "version": {"time_ms": 1, "origin": peer, "origin_seq": 1},
               "permission": {"name": name, "build": build}})
    };
    let before = b.digest();
    for (build, named) in [
        (
            json!({"include_patterns": ["**"], "exclude_patterns": [], "repositories": [],
                   "users": {"ann": ["fly"]}, "groups": {}}),
            "unknown action `fly`",
        ),
        (
            json!({"include_patterns": ["a,b"], "exclude_patterns": [], "repositories": [],
                   "users": {}, "groups": {}}),
            "not a valid pattern",
        ),
        (
            json!({"include_patterns": ["**"], "exclude_patterns": [],
                   "repositories": ["libs-release"], "users": {}, "groups": {}}),
            "build permissions apply to",
        ),
    ] {
        let r = send(json!([target("bad", build)]));
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(r.text.contains("changes[0].permission"), "{}", r.text);
        assert!(r.text.contains(named), "{named}: {}", r.text);
    }
    for (entity, name) in [
        ("group", "bad\u{1}name"),
        ("permission", ""),
        ("token", "a b"),
    ] {
        let r = send(json!([{"entity": entity, "name": name, "op": "remove",
                             "version": {"time_ms": 1, "origin": peer, "origin_seq": 2}}]));
        assert_eq!(r.status, 400, "{entity}: {}", r.text);
        assert!(r.text.contains("changes[0].name"), "{}", r.text);
    }
    assert_eq!(b.digest(), before, "nothing refused was written");
    // Out of its normal form only: stored in it.
    let r = send(json!([target(
        "from-peer",
        json!({"include_patterns": ["**"], "exclude_patterns": [], "repositories": [],
               "users": {"ANN": ["read", "read"]}, "groups": {}})
    )]));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["applied"], 1, "{}", r.text);
    let t = b
        .admin()
        .get("/artifactory/api/v2/security/permissions/from-peer")
        .json();
    assert_eq!(
        t["build"]["repositories"],
        json!(["artifactory-build-info"]),
        "{t}"
    );
    assert_eq!(
        t["build"]["actions"]["users"],
        json!({"ann": ["read"]}),
        "{t}"
    );
}

/// Finding: a group that reached a peer before its members' users kept no members
/// there for good — the users' arrival (a target made to select users too, which
/// broadcasts) brought the group again at the version the peer had, and the version rule
/// refused it. The same version naming members now known is applied again.
#[test]
fn a_groups_members_arrive_with_their_users_later() {
    let a = Site::start();
    let b = Site::start();
    trust_both(&a, &b);
    create_user(&a, "mia", "mia@example.com");
    create_user(&a, "noa", "noa@example.com");
    create_group(&a, "crew", &["mia", "noa"]);
    a.register("site-b", &b, json!({"entities": ["groups"]}));
    wait_until(10, "the group reached B", || b.group("crew").is_some());
    assert_eq!(b.group("crew").unwrap()["members"], json!([]));
    let r = a.admin().patch(
        &format!("{FED}/site-b"),
        &json!({"entities": ["users", "groups"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    wait_until(20, "the members followed their users", || {
        b.group("crew")
            .is_some_and(|g| g["members"] == json!(["mia", "noa"]))
    });
}

/// From a review: a batch that removed a permission target and a user it granted put the
/// target back right after its removal (cleaned of the user against the state before
/// the batch), and it went on granting at the peer.
#[test]
fn a_target_deleted_with_a_principal_it_granted_stays_deleted_at_the_peer() {
    let a = Site::start();
    let mut b = Site::start();
    trust_both(&a, &b);
    a.register(
        "site-b",
        &b,
        json!({"entities": ["users", "groups", "permissions"]}),
    );
    create_user(&a, "victim", "victim@example.com");
    create_user(&a, "member1", "member1@example.com");
    create_group(&a, "devs", &["member1"]);
    let r = a.admin().put(
        "/artifactory/api/v2/security/permissions/prodwrite",
        &json!({"name": "prodwrite", "repo": {"repositories": ["ANY"], "include-patterns": ["**"],
                "actions": {"users": {"victim": ["read"]}, "groups": {"devs": ["read", "write"]}}}}),
    );
    assert!(r.status < 300, "{}", r.text);
    let target = "/artifactory/api/v2/security/permissions/prodwrite";
    wait_until(15, "the target reached B", || {
        b.admin().get(target).status == 200
    });
    b.kill();
    assert!(a.admin().delete(target).status < 300);
    assert!(a.admin().delete("/access/api/v2/users/victim").status < 300);
    b.restart();
    wait_until(20, "B took the deletions", || b.user("victim").is_none());
    std::thread::sleep(Duration::from_millis(500));
    let r = b.admin().get(target);
    assert_eq!(r.status, 404, "the target came back at B: {}", r.text);
    let r = b
        .admin()
        .get("/access/api/v1/authorize?resource=libs/x.jar&action=write&user=member1");
    assert_eq!(r.json()["allowed"], false, "{}", r.text);
}

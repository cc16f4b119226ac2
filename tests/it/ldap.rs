//! The LDAP realm against a real directory: OpenLDAP's `slapd` from the distribution,
//! started here in a temporary directory on 127.0.0.1 with LDAPS (a certificate made in
//! the test, whose CA the LDAP setting names), loaded with a small tree: two users, two
//! groups, alice in both; every operation needs TLS (`security tls=1`). Runs when `slapd` is installed (`.ci/run` installs Debian's
//! package); says so loudly when it is not.

use crate::helpers::{Client, ServerProcess, TestApp};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SLAPD: &str = "/usr/sbin/slapd";
const SLAPADD: &str = "/usr/sbin/slapadd";
const INSTALL: &str = "apt-get install slapd ldap-utils";
const BASE: &str = "dc=example,dc=com";
const MANAGER_DN: &str = "cn=admin,dc=example,dc=com";
const MANAGER_PASSWORD: &str = "Directory-Manager-Secret-8731";
const ALICE_PASSWORD: &str = "alice-Directory-pw-1";
const BOB_PASSWORD: &str = "bob-Directory-pw-2";

fn installed(test: &str) -> bool {
    if Path::new(SLAPD).exists() && Path::new(SLAPADD).exists() {
        return true;
    }
    eprintln!("SKIPPED {test}: slapd is not installed ({INSTALL})");
    false
}

/// A running slapd; stopped (and its files removed) on drop.
struct Slapd {
    child: Option<Child>,
    /// LDAPS.
    port: u16,
    /// Plain LDAP, for StartTLS.
    plain_port: u16,
    dir: tempfile::TempDir,
    ca_pem: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tree() -> String {
    format!(
        "dn: {BASE}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,{BASE}
objectClass: organizationalUnit
ou: people

dn: ou=groups,{BASE}
objectClass: organizationalUnit
ou: groups

dn: uid=alice,ou=people,{BASE}
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: Liddell
mail: alice@example.com
userPassword: {ALICE_PASSWORD}

dn: uid=bob,ou=people,{BASE}
objectClass: inetOrgPerson
uid: bob
cn: Bob
sn: Builder
mail: bob@example.com
userPassword: {BOB_PASSWORD}

dn: cn=developers,ou=groups,{BASE}
objectClass: groupOfNames
cn: developers
description: People who write the code
member: uid=alice,ou=people,{BASE}
member: uid=bob,ou=people,{BASE}

dn: cn=operators,ou=groups,{BASE}
objectClass: groupOfNames
cn: operators
description: People who run it
member: uid=alice,ou=people,{BASE}
"
    )
}

impl Slapd {
    fn start() -> Slapd {
        Slapd::start_with("")
    }

    /// Started with `acl` (slapd.conf `access` lines) at the end of its database section.
    fn start_with(acl: &str) -> Slapd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // A CA and a server certificate for 127.0.0.1, made here.
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Gatehouse LDAP test CA");
        let ca = params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut leaf =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])
                .unwrap();
        leaf.distinguished_name
            .push(rcgen::DnType::CommonName, "127.0.0.1");
        let cert = leaf.signed_by(&key, &ca, &ca_key).unwrap();
        std::fs::write(d.join("server.pem"), cert.pem()).unwrap();
        std::fs::write(d.join("server.key"), key.serialize_pem()).unwrap();
        std::fs::create_dir_all(d.join("db")).unwrap();
        let conf = format!(
            "include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {dir}/slapd.pid
TLSCertificateFile {dir}/server.pem
TLSCertificateKeyFile {dir}/server.key
security tls=1
database mdb
maxsize 10485760
suffix \"{BASE}\"
rootdn \"{MANAGER_DN}\"
rootpw {MANAGER_PASSWORD}
directory {dir}/db
{acl}
",
            dir = d.display()
        );
        std::fs::write(d.join("slapd.conf"), conf).unwrap();
        std::fs::write(d.join("tree.ldif"), tree()).unwrap();
        let out = Command::new(SLAPADD)
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .arg("-l")
            .arg(d.join("tree.ldif"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "slapadd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut slapd = Slapd {
            child: None,
            port: free_port(),
            plain_port: free_port(),
            dir,
            ca_pem: ca.pem(),
        };
        slapd.run();
        slapd
    }

    /// Start (again) on the same port and data.
    fn run(&mut self) {
        let d = self.dir.path();
        let child = Command::new(SLAPD)
            .arg("-f")
            .arg(d.join("slapd.conf"))
            .arg("-h")
            .arg(format!(
                "ldaps://127.0.0.1:{}/ ldap://127.0.0.1:{}/",
                self.port, self.plain_port
            ))
            // -d keeps it in the foreground (a child of this test), logging nothing.
            .args(["-d", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start slapd");
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", self.plain_port)).is_err()
        {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "slapd did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("ldaps://127.0.0.1:{}/{BASE}", self.port)
    }

    fn plain_url(&self) -> String {
        format!("ldap://127.0.0.1:{}/{BASE}", self.plain_port)
    }

    /// A connection bound as the directory's manager (with the same client crate the
    /// server uses, trusting the test CA).
    fn manager(&self) -> ldap3::LdapConn {
        use ldap3::{LdapConn, LdapConnSettings};
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let settings = LdapConnSettings::new().set_config(std::sync::Arc::new(config));
        let mut conn =
            LdapConn::with_settings(settings, &format!("ldaps://127.0.0.1:{}", self.port)).unwrap();
        conn.simple_bind(MANAGER_DN, MANAGER_PASSWORD)
            .unwrap()
            .success()
            .unwrap();
        conn
    }

    fn modify(&self, dn: &str, m: ldap3::Mod<&str>) {
        let mut conn = self.manager();
        conn.modify(dn, vec![m]).unwrap().success().unwrap();
        let _ = conn.unbind();
    }

    /// Add `user` to or delete it from `group` in the directory.
    fn modify_group(&self, group: &str, op: &str, user: &str) {
        use ldap3::Mod;
        let member = format!("uid={user},ou=people,{BASE}");
        let values = std::collections::HashSet::from([member.as_str()]);
        let m = match op {
            "add" => Mod::Add("member", values),
            _ => Mod::Delete("member", values),
        };
        self.modify(&format!("cn={group},ou=groups,{BASE}"), m);
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The LDAP setting (search then bind as the manager, LDAPS with the test CA) and a
/// STATIC group setting.
fn configure(admin: &Client, slapd: &Slapd) {
    configure_with(admin, slapd, &slapd.url(), false);
}

fn configure_with(admin: &Client, slapd: &Slapd, url: &str, start_tls: bool) {
    let r = admin.post(
        "/access/api/v1/ldap/settings",
        &json!({
            "key": "corp",
            "enabled": true,
            "ldap_url": url,
            "start_tls": start_tls,
            "search": {
                "search_filter": "(uid={0})",
                "search_base": "ou=people",
                "search_sub_tree": true,
                "manager_dn": MANAGER_DN,
                "manager_password": MANAGER_PASSWORD
            },
            "auto_create_user": true,
            "email_attribute": "mail",
            "ca_certificate": slapd.ca_pem,
        }),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["search"]["manager_password"], Value::Null);
    let r = admin.post(
        "/access/api/v1/ldap/groups",
        &json!({
            "name": "corp-groups",
            "enabled_ldap": "corp",
            "group_base_dn": "ou=groups",
            "group_name_attribute": "cn",
            "group_member_attribute": "member",
            "sub_tree": true,
            "filter": "(objectClass=groupOfNames)",
            "description_attribute": "description",
            "strategy": "STATIC"
        }),
    );
    assert_eq!(r.status, 201, "{}", r.text);
}

fn groups_of(admin: &Client, user: &str) -> Vec<String> {
    let r = admin.get(&format!("/access/api/v2/users/{user}"));
    assert_eq!(r.status, 200, "{}", r.text);
    let mut g: Vec<String> = r.json()["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    g.sort();
    g
}

fn members_of(admin: &Client, group: &str) -> Vec<String> {
    let r = admin.get(&format!("/access/api/v2/groups/{group}"));
    assert_eq!(r.status, 200, "{}", r.text);
    let mut m: Vec<String> = r.json()["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    m.sort();
    m
}

/// A request that needs a signed-in user (any user may read its own record).
fn sign_in(base: &str, user: &str, password: &str) -> crate::helpers::Resp {
    Client::new(base, Some((user, password))).get(&format!("/access/api/v2/users/{user}"))
}

#[test]
fn ldap_first_sign_in_creates_the_user_with_its_groups() {
    if !installed("ldap_first_sign_in_creates_the_user_with_its_groups") {
        return;
    }
    let slapd = Slapd::start();
    let app = TestApp::spawn();
    let admin = app.admin();
    // Before any LDAP setting, a directory user is just an unknown name.
    assert_eq!(sign_in(&app.base, "alice", ALICE_PASSWORD).status, 401);
    configure(&admin, &slapd);
    // Settings read back in JFrog's shape; the manager password never comes back.
    let r = admin.get("/access/api/v1/ldap/settings/corp");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["search"]["manager_dn"], MANAGER_DN);
    assert_eq!(r.json()["search"]["manager_password"], Value::Null);
    assert!(!r.text.contains(MANAGER_PASSWORD));

    // Refused: a wrong password, an empty password, a name the directory does not know.
    assert_eq!(sign_in(&app.base, "alice", "not-her-password").status, 401);
    assert_eq!(sign_in(&app.base, "alice", "").status, 401);
    assert_eq!(sign_in(&app.base, "mallory", "whatever-1").status, 401);
    assert_eq!(admin.get("/access/api/v2/users/alice").status, 404);
    assert_eq!(admin.get("/access/api/v2/users/mallory").status, 404);

    // First sign-in: the user, realm `ldap`, no password, its e-mail and both groups.
    let r = sign_in(&app.base, "alice", ALICE_PASSWORD);
    assert_eq!(r.status, 200, "{}", r.text);
    let u = admin.get("/access/api/v2/users/alice").json();
    assert_eq!(u["realm"], "ldap", "{u}");
    assert_eq!(u["email"], "alice@example.com", "{u}");
    assert_eq!(groups_of(&admin, "alice"), ["developers", "operators"]);
    let g = admin.get("/access/api/v2/groups/developers").json();
    assert_eq!(g["realm"], "ldap", "{g}");
    assert_eq!(
        g["realm_attributes"],
        format!(
            "ldapGroupName=developers;groupsStrategy=STATIC;groupDn=cn=developers,ou=groups,{BASE}"
        ),
        "{g}"
    );
    assert_eq!(g["description"], "People who write the code");
    // Again (from the verified-credential cache), and still not with a wrong password.
    assert_eq!(sign_in(&app.base, "alice", ALICE_PASSWORD).status, 200);
    assert_eq!(sign_in(&app.base, "alice", "not-her-password").status, 401);
    assert_eq!(sign_in(&app.base, "alice", "").status, 401);

    // The groups work as groups: a permission target on `operators` reaches alice.
    let target = json!({"name": "ops-read", "repo": {"repositories": ["libs"], "actions": {"groups": {"operators": ["read"]}}}});
    let r = admin.post("/artifactory/api/v2/security/permissions/ops-read", &target);
    assert_eq!(r.status, 201, "{}", r.text);
    let alice = Client::new(&app.base, Some(("alice", ALICE_PASSWORD)));
    let r = alice.get("/access/api/v1/authorize?resource=libs/a.jar&action=read");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["allowed"], true, "{}", r.text);
    assert!(r.text.contains("ops-read"), "{}", r.text);

    // Tokens of an LDAP user work and are revoked as any.
    let t = crate::tokens::create_token(&alice, json!({"expires_in": 86400}));
    let token = t["access_token"].as_str().unwrap();
    let bearer = app.anon().with_header_auth(&format!("Bearer {token}"));
    assert_eq!(bearer.get("/access/api/v2/users/alice").status, 200);
    let id = t["token_id"].as_str().unwrap();
    let revoked = admin.delete(&format!("/access/api/v1/tokens/{id}")).status;
    assert!(matches!(revoked, 200 | 204), "{revoked}");
    assert_eq!(bearer.get("/access/api/v2/users/alice").status, 401);

    // Disabled here stays refused, whatever the directory says — and what it says of
    // the user's groups is not written by a refused sign-in (its group changes were,
    // with the disabled user as their actor).
    let r = admin.patch("/access/api/v2/users/alice", &json!({"status": "disabled"}));
    assert_eq!(r.status, 200, "{}", r.text);
    slapd.modify_group("developers", "delete", "alice");
    let seq = app.digest()["seq"].as_u64().unwrap();
    assert_eq!(sign_in(&app.base, "alice", ALICE_PASSWORD).status, 401);
    assert_eq!(
        app.digest()["seq"].as_u64().unwrap(),
        seq,
        "nothing written"
    );
    assert!(groups_of(&admin, "alice").contains(&"developers".to_string()));
    let r = admin.patch("/access/api/v2/users/alice", &json!({"status": "enabled"}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(sign_in(&app.base, "alice", ALICE_PASSWORD).status, 200);
    assert!(!groups_of(&admin, "alice").contains(&"developers".to_string()));

    // An internal user of the same name as a directory user keeps its own password.
    app.create_user("bob", "internal-Bob-pw-3");
    assert_eq!(sign_in(&app.base, "bob", BOB_PASSWORD).status, 401);
    assert_eq!(sign_in(&app.base, "bob", "internal-Bob-pw-3").status, 200);
    assert_eq!(
        admin.get("/access/api/v2/users/bob").json()["realm"],
        "internal"
    );
}

#[test]
fn ldap_membership_follows_the_directory_at_sign_in_and_sync() {
    if !installed("ldap_membership_follows_the_directory_at_sign_in_and_sync") {
        return;
    }
    let slapd = Slapd::start();
    // No cache, so that every sign-in asks the directory (and brings its groups).
    let app = TestApp::spawn_with(gatehouse::Config {
        auth_cache_ttl_secs: 0,
        ..Default::default()
    });
    let admin = app.admin();
    configure(&admin, &slapd);
    // Import before anyone signed in: the groups, with no members yet (the directory's
    // members become users at their first sign-in).
    let r = admin.post_empty("/access/api/v1/ldap/groups/corp-groups/refresh");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["groups"], 2);
    assert_eq!(members_of(&admin, "developers"), Vec::<String>::new());
    assert_eq!(
        admin.get("/access/api/v2/groups/operators").json()["realm"],
        "ldap"
    );

    // bob's first sign-in, eight times at once: one user, all signed in.
    let base = app.base.clone();
    let all: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| sign_in(&base, "bob", BOB_PASSWORD).status))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(all, [200; 8]);
    let r = admin.get("/access/api/v1/audit/events?type=UserCreated&limit=100");
    assert_eq!(
        r.text.matches("\"username\":\"bob\"").count(),
        1,
        "{}",
        r.text
    );
    assert_eq!(groups_of(&admin, "bob"), ["developers"]);
    // bob joins `operators` in the directory: his next sign-in brings it.
    slapd.modify_group("operators", "add", "bob");
    assert_eq!(sign_in(&app.base, "bob", BOB_PASSWORD).status, 200);
    assert_eq!(groups_of(&admin, "bob"), ["developers", "operators"]);

    // bob's e-mail changes in the directory: his next sign-in brings it too.
    assert_eq!(
        admin.get("/access/api/v2/users/bob").json()["email"],
        "bob@example.com"
    );
    slapd.modify(
        &format!("uid=bob,ou=people,{BASE}"),
        ldap3::Mod::Replace(
            "mail",
            std::collections::HashSet::from(["robert@example.com"]),
        ),
    );
    assert_eq!(sign_in(&app.base, "bob", BOB_PASSWORD).status, 200);
    assert_eq!(
        admin.get("/access/api/v2/users/bob").json()["email"],
        "robert@example.com"
    );

    assert_eq!(sign_in(&app.base, "alice", ALICE_PASSWORD).status, 200);
    assert_eq!(members_of(&admin, "operators"), ["alice", "bob"]);
    // alice leaves `operators` in the directory: the next sync takes her out, as an event.
    slapd.modify_group("operators", "delete", "alice");
    let before = admin.get("/access/api/v1/system/state/digest").json();
    let r = admin.post_empty("/access/api/v1/ldap/groups/corp-groups/refresh?operation=UPDATE");
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json()["events"].as_u64().unwrap() >= 1, "{}", r.text);
    assert_eq!(members_of(&admin, "operators"), ["bob"]);
    assert_eq!(groups_of(&admin, "alice"), ["developers"]);
    // The past still shows her there (membership changes are events like any other).
    let seq = before["seq"].as_u64().unwrap();
    let r = admin.get(&format!("/access/api/v2/groups/operators?as_of={seq}"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("alice"), "{}", r.text);
    // A second sync with nothing changed writes nothing.
    let r = admin.post_empty("/access/api/v1/ldap/groups/corp-groups/refresh");
    assert_eq!(r.json()["events"], 0, "{}", r.text);
    // `operators` is deleted in the directory: the next sync empties it here (its
    // members kept the group's permissions until each signed in again).
    let mut conn = slapd.manager();
    conn.delete(&format!("cn=operators,ou=groups,{BASE}"))
        .unwrap()
        .success()
        .unwrap();
    let _ = conn.unbind();
    let r = admin.post_empty("/access/api/v1/ldap/groups/corp-groups/refresh");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["groups"], 1, "{}", r.text);
    assert_eq!(members_of(&admin, "operators"), Vec::<String>::new());
    assert_eq!(groups_of(&admin, "bob"), ["developers"]);
    assert_eq!(
        admin.get("/access/api/v2/groups/operators").status,
        200,
        "the group stays: permissions may name it"
    );
    // Changes of the setting are events, and the audit trail shows them.
    let r = admin.get("/access/api/v1/audit/events?type=LdapGroupSettingSaved&limit=10");
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("corp-groups"), "{}", r.text);
}

#[test]
fn ldap_groups_follow_the_directory_on_a_schedule() {
    if !installed("ldap_groups_follow_the_directory_on_a_schedule") {
        return;
    }
    let slapd = Slapd::start();
    let app = TestApp::spawn_with(gatehouse::Config {
        ldap_sync_interval: 1,
        ..Default::default()
    });
    let admin = app.admin();
    // A directory whose certificate the setting's CA did not sign is not one.
    let other_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other_ca = params.self_signed(&other_key).unwrap().pem();
    let r = admin.post(
        "/access/api/v1/ldap/settings",
        &json!({"key": "impostor", "ldap_url": slapd.url(), "user_dn_pattern": "uid={0},ou=people",
                "ca_certificate": other_ca}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = sign_in(&app.base, "alice", ALICE_PASSWORD);
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(
        admin.delete("/access/api/v1/ldap/settings/impostor").status,
        204
    );
    // Plain LDAP without StartTLS: the directory refuses to bind in clear.
    let r = admin.post(
        "/access/api/v1/ldap/settings",
        &json!({"key": "cleartext", "ldap_url": slapd.plain_url(), "user_dn_pattern": "uid={0},ou=people"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = sign_in(&app.base, "alice", ALICE_PASSWORD);
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(
        admin
            .delete("/access/api/v1/ldap/settings/cleartext")
            .status,
        204
    );
    // Plain LDAP upgraded with StartTLS, verified against the test CA.
    configure_with(&admin, &slapd, &slapd.plain_url(), true);
    assert_eq!(sign_in(&app.base, "alice", ALICE_PASSWORD).status, 200);
    assert_eq!(sign_in(&app.base, "bob", BOB_PASSWORD).status, 200);
    slapd.modify_group("operators", "add", "bob");
    slapd.modify_group("operators", "delete", "alice");
    // No sign-in and no API call: the scheduled import brings the change (polled, with a
    // generous deadline; the interval is one second).
    let deadline = Instant::now() + Duration::from_secs(30);
    while members_of(&admin, "operators") != ["bob"] {
        assert!(
            Instant::now() < deadline,
            "the scheduled sync did not bring the directory's change: {:?}",
            members_of(&admin, "operators")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(groups_of(&admin, "alice"), ["developers"]);
    let r = admin.get("/access/api/v1/audit/events?type=GroupMembersChanged&limit=10");
    assert!(
        r.text.contains("\"system\""),
        "made by the server: {}",
        r.text
    );
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The directory stopped: LDAP sign-ins are refused with 503 (never 200, never a cached
/// failure), internal users are not affected. And the manager password (and the users'
/// directory passwords) never appear in the log, the data directory, an export, an
/// answer or the server's output (debug level).
/// Settings the directory cannot use are refused when saved (they were stored, and every
/// sign-in then answered "not available"); a DN pattern the directory cannot read is the
/// setting's fault, not a wrong password (it locked users who typed the right one); a
/// directory user's password, which is not here, cannot be expired.
#[test]
fn ldap_settings_the_directory_cannot_use_are_refused_or_not_blamed_on_users() {
    if !installed("ldap_settings_the_directory_cannot_use_are_refused_or_not_blamed_on_users") {
        return;
    }
    let slapd = Slapd::start();
    let app = TestApp::spawn_with(gatehouse::Config {
        lockout_threshold: 2,
        lockout_from: gatehouse::config::LockoutFrom::Any,
        signin_address_burst: 0,
        signin_user_burst: 0,
        ..gatehouse::Config::default()
    });
    let admin = app.admin();
    configure(&admin, &slapd);
    let put = |body: Value| admin.put("/access/api/v1/ldap/settings/corp", &body);
    // (The manager's password given again: a PUT without the CA, or with another, asks
    // for it first.)
    for (body, field) in [
        (
            json!({"ldap_url": slapd.url(), "search": {"search_filter": "(&(uid={0})", "manager_password": MANAGER_PASSWORD}}),
            "search.search_filter",
        ),
        (
            json!({"ldap_url": "ldap://127.0.0.1:notaport/dc=example,dc=com", "search": {"search_filter": "(uid={0})", "manager_password": MANAGER_PASSWORD}}),
            "ldap_url",
        ),
        (
            json!({"ldap_url": slapd.url(), "search": {"search_filter": "(uid={0})", "manager_password": MANAGER_PASSWORD}, "ca_certificate": "garbage"}),
            "ca_certificate",
        ),
    ] {
        let r = put(body.clone());
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.text.contains(field), "{body}: {}", r.text);
    }
    let r = admin.put(
        "/access/api/v1/ldap/groups/corp-groups",
        &json!({"enabled_ldap": "corp", "group_name_attribute": "cn", "group_member_attribute": "member",
                "strategy": "STATIC", "filter": "(((("}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(sign_in(&app.base, "alice", ALICE_PASSWORD).status, 200);
    let r = admin.post(
        "/artifactory/api/security/users/authorization/expirePassword",
        &json!(["alice"]),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("no password here"), "{}", r.text);
    assert_eq!(sign_in(&app.base, "alice", ALICE_PASSWORD).status, 200);
    // A DN pattern, search base, manager DN or group base the directory would read as
    // invalid DN syntax is refused when saved (it was stored, and every sign-in then
    // answered "not available").
    let r = put(
        json!({"ldap_url": slapd.url(), "user_dn_pattern": "uid={0},,ou=people",
                       "search": {"search_filter": "", "manager_dn": MANAGER_DN}, "ca_certificate": slapd.ca_pem}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("user_dn_pattern"), "{}", r.text);
    let r = put(
        json!({"ldap_url": slapd.url(), "search": {"search_filter": "(uid={0})", "search_base": "notadn",
               "manager_dn": MANAGER_DN}, "ca_certificate": slapd.ca_pem}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("search.search_base"), "{}", r.text);
    let r = admin.put(
        "/access/api/v1/ldap/groups/corp-groups",
        &json!({"enabled_ldap": "corp", "strategy": "STATIC", "group_base_dn": "groups"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("group_base_dn"), "{}", r.text);
    // A PUT replaces: the CA it leaves out is gone (it stayed) — and the kept manager's
    // password is not sent where the wider system roots would trust: it is asked again.
    let r = put(
        json!({"ldap_url": slapd.url(), "search": {"search_filter": "(uid={0})", "manager_dn": MANAGER_DN}}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("manager_password"), "{}", r.text);
    let r = put(
        json!({"ldap_url": slapd.url(), "search": {"search_filter": "(uid={0})", "manager_dn": MANAGER_DN,
               "manager_password": MANAGER_PASSWORD}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let got = admin.get("/access/api/v1/ldap/settings/corp").json();
    assert_eq!(got["ca_certificate"], Value::Null, "{got}");
    // A group setting's PUT replaces too: a base left out, or `null`, is gone (it stayed).
    let r = admin.put(
        "/access/api/v1/ldap/groups/corp-groups",
        &json!({"enabled_ldap": "corp", "strategy": "STATIC", "group_base_dn": null}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let g = admin.get("/access/api/v1/ldap/groups/corp-groups").json();
    assert_eq!(g["group_base_dn"], Value::Null, "{g}");
    assert_eq!(g["group_member_attribute"], "uniqueMember", "{g}");
}

#[test]
fn ldap_directory_down_and_secrets() {
    if !installed("ldap_directory_down_and_secrets") {
        return;
    }
    let mut slapd = Slapd::start();
    let tmp = tempfile::tempdir().unwrap();
    let out_path = tmp.path().join("server.log");
    let data = tmp.path().join("data");
    let server = ServerProcess::start_logging(&data, &out_path);
    let admin = server.admin();
    configure(&admin, &slapd);
    let r = admin.post(
        "/access/api/v2/users",
        &json!({"username": "carol", "password": "Internal-Carol-pw-4"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(sign_in(&server.base, "alice", ALICE_PASSWORD).status, 200);
    assert_eq!(
        sign_in(&server.base, "bob", "bob-wrong-guess-5").status,
        401
    );
    let r = admin.post_empty("/access/api/v1/ldap/groups/corp-groups/refresh");
    assert_eq!(r.status, 200, "{}", r.text);

    slapd.stop();
    // bob was never verified: the directory must answer, and it cannot.
    let r = sign_in(&server.base, "bob", BOB_PASSWORD);
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.text.contains("LDAP"), "{}", r.text);
    // The setting, not the directory's address: anyone can send a made-up name.
    assert!(r.text.contains("`corp`"), "{}", r.text);
    assert!(!r.text.contains("127.0.0.1"), "{}", r.text);
    // A wrong password is not a "no" either while the directory cannot say so.
    assert_eq!(
        sign_in(&server.base, "bob", "bob-wrong-guess-5").status,
        503
    );
    // An empty password never gets that far.
    assert_eq!(sign_in(&server.base, "bob", "").status, 401);
    let r = admin.post_empty("/access/api/v1/ldap/groups/corp-groups/refresh");
    assert_eq!(r.status, 503, "{}", r.text);
    // Internal users: unaffected.
    assert_eq!(
        sign_in(&server.base, "carol", "Internal-Carol-pw-4").status,
        200
    );
    assert_eq!(sign_in(&server.base, "carol", "wrong-Carol-pw").status, 401);
    assert_eq!(admin.get("/access/api/v1/ldap/settings").status, 200);
    // Back: bob signs in.
    slapd.run();
    assert_eq!(sign_in(&server.base, "bob", BOB_PASSWORD).status, 200);

    // Answers that show the setting or its events.
    let mut answers = Vec::new();
    for path in [
        "/access/api/v1/ldap/settings",
        "/access/api/v1/ldap/settings/corp",
        "/access/api/v1/audit/events?limit=10000",
    ] {
        let r = admin.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        answers.push((path.to_string(), r.text.into_bytes()));
    }
    let r = admin.post_empty("/access/api/v1/system/backup/export");
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(server.terminate().success());

    let secrets = [
        MANAGER_PASSWORD,
        ALICE_PASSWORD,
        BOB_PASSWORD,
        "bob-wrong-guess-5",
    ];
    let mut haystacks: Vec<(String, Vec<u8>)> = files_under(&data)
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    assert!(
        haystacks.iter().any(|(p, _)| p.contains("backup")),
        "the export was written"
    );
    let output = std::fs::read(&out_path).unwrap();
    assert!(contains(&output, "request"), "debug output was written");
    haystacks.push(("server output".into(), output));
    haystacks.extend(answers);
    for (name, bytes) in &haystacks {
        for s in secrets {
            assert!(
                !contains(bytes, s),
                "a secret ({}…) appears in {name}",
                &s[..6]
            );
        }
    }
}

/// Names that need escapes in a DN, a search base written with blanks, a directory
/// paused by its admin, a setting pointed elsewhere, an e-mail the directory dropped.
/// Before: a group import read the member `uid=a\+b` as the user `a` (who got the
/// group's permissions) and `uid=smith\2C john` as `smith2c john` (both real members
/// taken out); `ou=people, dc=example, dc=com` was taken as relative and every sign-in
/// found nobody; each sign-in while no setting was enabled counted towards the lock; a
/// PUT naming another server kept the manager's password and sent it there; the
/// dropped e-mail stayed.
#[test]
fn ldap_escaped_names_blank_bases_a_paused_directory_and_a_moved_setting() {
    if !installed("ldap_escaped_names_blank_bases_a_paused_directory_and_a_moved_setting") {
        return;
    }
    use ldap3::Mod;
    use std::collections::HashSet;
    let slapd = Slapd::start();
    let app = TestApp::spawn_with(gatehouse::Config {
        auth_cache_ttl_secs: 0,
        lockout_threshold: 2,
        lockout_from: gatehouse::config::LockoutFrom::Any,
        signin_address_burst: 0,
        signin_user_burst: 0,
        ..Default::default()
    });
    let admin = app.admin();
    configure(&admin, &slapd);
    let users = [
        ("uid=a\\+b", "a+b", "aplusb-Directory-pw-5"),
        ("uid=a", "a", "a-Directory-pw-6"),
        ("uid=smith\\2C john", "smith, john", "john-Directory-pw-4"),
    ];
    let mut conn = slapd.manager();
    for (rdn, uid, pw) in users {
        conn.add(
            &format!("{rdn},ou=people,{BASE}"),
            vec![
                ("objectClass", HashSet::from(["inetOrgPerson"])),
                ("uid", HashSet::from([uid])),
                ("cn", HashSet::from([uid])),
                ("sn", HashSet::from(["x"])),
                ("userPassword", HashSet::from([pw])),
            ],
        )
        .unwrap()
        .success()
        .unwrap();
    }
    let plus = format!("uid=a\\+b,ou=people,{BASE}");
    let comma = format!("uid=smith\\2C john,ou=people,{BASE}");
    conn.modify(
        &format!("cn=developers,ou=groups,{BASE}"),
        vec![Mod::Add(
            "member",
            HashSet::from([plus.as_str(), comma.as_str()]),
        )],
    )
    .unwrap()
    .success()
    .unwrap();
    let _ = conn.unbind();
    let signed_in = |user: &str, pw: &str| {
        let path = user
            .replace('+', "%2B")
            .replace(' ', "%20")
            .replace(',', "%2C");
        Client::new(&app.base, Some((user, pw)))
            .get(&format!("/access/api/v2/users/{path}"))
            .status
    };
    for (_, uid, pw) in users {
        assert_eq!(signed_in(uid, pw), 200, "{uid}");
    }
    let r = admin.post_empty("/access/api/v1/ldap/groups/corp-groups/refresh");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(members_of(&admin, "developers"), ["a+b", "smith, john"]);
    assert_eq!(groups_of(&admin, "a"), Vec::<String>::new());

    // The search base as an absolute DN with blanks after its commas.
    let put = |body: Value| admin.put("/access/api/v1/ldap/settings/corp", &body);
    let setting = |enabled: bool, url: &str| {
        json!({"enabled": enabled, "ldap_url": url, "ca_certificate": slapd.ca_pem,
               "search": {"search_filter": "(uid={0})", "search_base": "ou=people, dc=example, dc=com",
                          "manager_dn": MANAGER_DN}})
    };
    let r = put(setting(true, &slapd.url()));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(sign_in(&app.base, "alice", ALICE_PASSWORD).status, 200);
    assert_eq!(sign_in(&app.base, "bob", BOB_PASSWORD).status, 200);

    // The directory paused: refused, not counted (the lock is at two).
    let r = put(setting(false, &slapd.url()));
    assert_eq!(r.status, 200, "{}", r.text);
    for _ in 0..4 {
        assert_eq!(sign_in(&app.base, "alice", ALICE_PASSWORD).status, 401);
    }
    let r = put(setting(true, &slapd.url()));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = sign_in(&app.base, "alice", ALICE_PASSWORD);
    assert_eq!(r.status, 200, "{}", r.text);

    // alice's setting paused while another stays enabled, one that knows no alice: her
    // right password is refused, not counted (before: "no such user" counted, and she
    // was locked when her directory came back).
    let r = admin.post(
        "/access/api/v1/ldap/settings",
        &json!({"key": "elsewhere", "enabled": true, "ldap_url": slapd.url(),
                "ca_certificate": slapd.ca_pem,
                "search": {"search_filter": "(uid={0})", "search_base": "ou=groups",
                           "search_sub_tree": true, "manager_dn": MANAGER_DN,
                           "manager_password": MANAGER_PASSWORD}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = put(setting(false, &slapd.url()));
    assert_eq!(r.status, 200, "{}", r.text);
    for _ in 0..4 {
        assert_eq!(sign_in(&app.base, "alice", ALICE_PASSWORD).status, 401);
    }
    let r = put(setting(true, &slapd.url()));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = sign_in(&app.base, "alice", ALICE_PASSWORD);
    assert_eq!(r.status, 200, "{}", r.text);
    let r = admin.delete("/access/api/v1/ldap/settings/elsewhere");
    assert!(r.status == 200 || r.status == 204, "{}", r.text);
    // The same with a setting that binds to a DN pattern and has a manager: the entry
    // is looked for, and a name it does not hold is not counted either.
    let r = admin.post(
        "/access/api/v1/ldap/settings",
        &json!({"key": "by-pattern", "enabled": true, "ldap_url": slapd.url(),
                "ca_certificate": slapd.ca_pem, "user_dn_pattern": "uid={0},ou=groups",
                "search": {"manager_dn": MANAGER_DN, "manager_password": MANAGER_PASSWORD}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = put(setting(false, &slapd.url()));
    assert_eq!(r.status, 200, "{}", r.text);
    for _ in 0..4 {
        assert_eq!(sign_in(&app.base, "alice", ALICE_PASSWORD).status, 401);
    }
    let r = put(setting(true, &slapd.url()));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = sign_in(&app.base, "alice", ALICE_PASSWORD);
    assert_eq!(r.status, 200, "{}", r.text);
    let r = admin.delete("/access/api/v1/ldap/settings/by-pattern");
    assert!(r.status == 200 || r.status == 204, "{}", r.text);

    // Pointed at other servers (or StartTLS off) without the password: given again.
    let elsewhere = format!("ldaps://127.0.0.1:{}/{BASE}", free_port());
    let r = put(setting(true, &elsewhere));
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("search.manager_password"), "{}", r.text);
    let mut with_password = setting(true, &elsewhere);
    with_password["search"]["manager_password"] = json!(MANAGER_PASSWORD);
    assert_eq!(put(with_password).status, 200);
    let mut back = setting(true, &slapd.url());
    back["search"]["manager_password"] = json!(MANAGER_PASSWORD);
    assert_eq!(put(back).status, 200);

    // bob's e-mail dropped in the directory: dropped here at his next sign-in.
    assert_eq!(
        admin.get("/access/api/v2/users/bob").json()["email"],
        "bob@example.com"
    );
    slapd.modify(
        &format!("uid=bob,ou=people,{BASE}"),
        Mod::Delete("mail", HashSet::new()),
    );
    assert_eq!(sign_in(&app.base, "bob", BOB_PASSWORD).status, 200);
    let bob = admin.get("/access/api/v2/users/bob").json();
    assert!(bob["email"].is_null() || bob["email"] == "", "{bob}");
    // A setting that reads no e-mail says nothing about them: an admin's stays.
    let mut no_mail = setting(true, &slapd.url());
    no_mail["email_attribute"] = json!("");
    assert_eq!(put(no_mail).status, 200);
    let r = admin.patch(
        "/access/api/v2/users/bob",
        &json!({"email": "bob@corp.example"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(sign_in(&app.base, "bob", BOB_PASSWORD).status, 200);
    assert_eq!(
        admin.get("/access/api/v2/users/bob").json()["email"],
        "bob@corp.example"
    );

    // Attribute names are names (they go into filters as they are).
    let r = admin.put(
        "/access/api/v1/ldap/groups/corp-groups",
        &json!({"enabled_ldap": "corp", "group_name_attribute": "cn",
                "group_member_attribute": "member=*)(x", "strategy": "STATIC"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("group_member_attribute"), "{}", r.text);
}

/// Finding: a sign-in that could not read the user's entry (an ACL, no manager: the
/// entry is read as the user) cleared the e-mail an admin had set, at every sign-in —
/// the directory had said nothing about e-mails.
#[test]
fn an_entry_the_user_cannot_read_says_nothing_about_its_e_mail() {
    if !installed("an_entry_the_user_cannot_read_says_nothing_about_its_e_mail") {
        return;
    }
    let slapd = Slapd::start_with(&format!(
        "access to dn.exact=\"uid=bob,ou=people,{BASE}\" attrs=userPassword by anonymous auth by * none
access to dn.exact=\"uid=bob,ou=people,{BASE}\" by * none
access to * by * read"
    ));
    let app = TestApp::spawn();
    let admin = app.admin();
    let setting = |paging: bool| {
        json!({
            "key": "corp",
            "enabled": true,
            "ldap_url": slapd.url(),
            "user_dn_pattern": "uid={0},ou=people",
            "auto_create_user": true,
            "email_attribute": "mail",
            "ca_certificate": slapd.ca_pem,
            "paging_support_enabled": paging,
        })
    };
    let r = admin.post("/access/api/v1/ldap/settings", &setting(false));
    assert_eq!(r.status, 201, "{}", r.text);
    // alice's entry is readable: her e-mail is the directory's.
    assert_eq!(sign_in(&app.base, "alice", ALICE_PASSWORD).status, 200);
    assert_eq!(
        admin.get("/access/api/v2/users/alice").json()["email"],
        "alice@example.com"
    );
    // bob binds, but may not read his entry: no e-mail learned, none cleared.
    assert_eq!(sign_in(&app.base, "bob", BOB_PASSWORD).status, 200);
    let r = admin.patch(
        "/access/api/v2/users/bob",
        &json!({"email": "bob@corp.example"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // Another version of the setting: the next sign-in asks the directory again.
    let r = admin.put("/access/api/v1/ldap/settings/corp", &setting(true));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(sign_in(&app.base, "bob", BOB_PASSWORD).status, 200);
    assert_eq!(
        admin.get("/access/api/v2/users/bob").json()["email"],
        "bob@corp.example"
    );
}

/// An import counts a group member as a user only where the setting signs users in: an
/// entry `uid=alice` elsewhere in the tree was taken for the user `alice`, who got its
/// group and that group's grants. HIERARCHICAL groups come from below the group base
/// only (every user under `ou=people` joined a group `people`).
#[test]
fn a_member_outside_the_user_bases_and_a_dn_above_the_group_base_are_not_taken() {
    use std::collections::HashSet;
    if !installed("a_member_outside_the_user_bases_and_a_dn_above_the_group_base_are_not_taken") {
        return;
    }
    let slapd = Slapd::start();
    let app = TestApp::spawn_with(gatehouse::Config {
        auth_cache_ttl_secs: 0,
        ..Default::default()
    });
    let admin = app.admin();
    configure(&admin, &slapd);
    let mut conn = slapd.manager();
    let add = |conn: &mut ldap3::LdapConn, dn: String, attrs: Vec<(&str, HashSet<&str>)>| {
        conn.add(&dn, attrs).unwrap().success().unwrap();
    };
    add(
        &mut conn,
        format!("ou=contractors,{BASE}"),
        vec![
            ("objectClass", HashSet::from(["organizationalUnit"])),
            ("ou", HashSet::from(["contractors"])),
        ],
    );
    let other_alice = format!("uid=alice,ou=contractors,{BASE}");
    add(
        &mut conn,
        other_alice.clone(),
        vec![
            ("objectClass", HashSet::from(["inetOrgPerson"])),
            ("uid", HashSet::from(["alice"])),
            ("cn", HashSet::from(["Other Alice"])),
            ("sn", HashSet::from(["x"])),
        ],
    );
    add(
        &mut conn,
        format!("cn=contractors,ou=groups,{BASE}"),
        vec![
            ("objectClass", HashSet::from(["groupOfNames"])),
            ("cn", HashSet::from(["contractors"])),
            ("member", HashSet::from([other_alice.as_str()])),
        ],
    );
    for ou in ["eng", "devs"] {
        let parent = if ou == "eng" {
            format!("ou=people,{BASE}")
        } else {
            format!("ou=eng,ou=people,{BASE}")
        };
        add(
            &mut conn,
            format!("ou={ou},{parent}"),
            vec![
                ("objectClass", HashSet::from(["organizationalUnit"])),
                ("ou", HashSet::from([ou])),
            ],
        );
    }
    add(
        &mut conn,
        format!("uid=dave,ou=devs,ou=eng,ou=people,{BASE}"),
        vec![
            ("objectClass", HashSet::from(["inetOrgPerson"])),
            ("uid", HashSet::from(["dave"])),
            ("cn", HashSet::from(["Dave"])),
            ("sn", HashSet::from(["x"])),
            ("userPassword", HashSet::from(["dave-Directory-pw-4"])),
        ],
    );
    let _ = conn.unbind();
    assert_eq!(sign_in(&app.base, "alice", ALICE_PASSWORD).status, 200);
    let r = admin.post_empty("/access/api/v1/ldap/groups/corp-groups/refresh");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(members_of(&admin, "contractors"), Vec::<String>::new());
    assert!(!groups_of(&admin, "alice").contains(&"contractors".to_string()));
    // HIERARCHICAL under `ou=eng,ou=people`: dave's `devs`, not `eng` (the base) nor
    // `people` (above it).
    let r = admin.post(
        "/access/api/v1/ldap/groups",
        &json!({
            "name": "hier",
            "enabled_ldap": "corp",
            "group_base_dn": "ou=eng,ou=people",
            "group_name_attribute": "ou",
            "strategy": "HIERARCHICAL"
        }),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        sign_in(&app.base, "dave", "dave-Directory-pw-4").status,
        200
    );
    let groups = groups_of(&admin, "dave");
    assert!(groups.contains(&"devs".to_string()), "{groups:?}");
    assert!(!groups.contains(&"people".to_string()), "{groups:?}");
    assert!(!groups.contains(&"eng".to_string()), "{groups:?}");
}

/// A DYNAMIC import takes members where the setting's sign-in finds users: every search
/// base, as deep as `search_sub_tree` says (it searched only the first base, always its
/// whole subtree: a member in the second base was left out, and a `uid=alice` below the
/// first was taken for the user `alice`).
#[test]
fn a_dynamic_import_takes_members_from_every_user_base_and_no_deeper() {
    use std::collections::HashSet;
    if !installed("a_dynamic_import_takes_members_from_every_user_base_and_no_deeper") {
        return;
    }
    let slapd = Slapd::start();
    let app = TestApp::spawn();
    let admin = app.admin();
    let r = admin.post(
        "/access/api/v1/ldap/settings",
        &json!({
            "key": "corp",
            "enabled": true,
            "ldap_url": slapd.url(),
            "search": {
                "search_filter": "(uid={0})",
                "search_base": "ou=people|ou=staff",
                "search_sub_tree": false,
                "manager_dn": MANAGER_DN,
                "manager_password": MANAGER_PASSWORD
            },
            "auto_create_user": true,
            "ca_certificate": slapd.ca_pem,
        }),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = admin.post(
        "/access/api/v1/ldap/groups",
        &json!({
            "name": "dyn-groups",
            "enabled_ldap": "corp",
            "group_base_dn": "ou=groups",
            "group_name_attribute": "cn",
            "group_member_attribute": "seeAlso",
            "sub_tree": true,
            "filter": "(objectClass=organizationalRole)",
            "strategy": "DYNAMIC"
        }),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let group = format!("cn=builders,ou=groups,{BASE}");
    let mut conn = slapd.manager();
    let mut add = |dn: String, attrs: Vec<(&str, HashSet<&str>)>| {
        conn.add(&dn, attrs).unwrap().success().unwrap();
    };
    add(
        group.clone(),
        vec![
            ("objectClass", HashSet::from(["organizationalRole"])),
            ("cn", HashSet::from(["builders"])),
        ],
    );
    for (ou, parent) in [
        ("staff", BASE.to_string()),
        ("interns", format!("ou=people,{BASE}")),
    ] {
        add(
            format!("ou={ou},{parent}"),
            vec![
                ("objectClass", HashSet::from(["organizationalUnit"])),
                ("ou", HashSet::from([ou])),
            ],
        );
    }
    // dan in the first base, carol in the second, and an `alice` below the first (not
    // where sign-in looks: `search_sub_tree` is off; the user `alice` is the one in
    // `ou=people`, no member).
    for (uid, place) in [
        ("dan", format!("ou=people,{BASE}")),
        ("carol", format!("ou=staff,{BASE}")),
        ("alice", format!("ou=interns,ou=people,{BASE}")),
    ] {
        add(
            format!("uid={uid},{place}"),
            vec![
                ("objectClass", HashSet::from(["inetOrgPerson"])),
                ("uid", HashSet::from([uid])),
                ("cn", HashSet::from([uid])),
                ("sn", HashSet::from(["x"])),
                ("seeAlso", HashSet::from([group.as_str()])),
                ("userPassword", HashSet::from(["a-Directory-pw-5"])),
            ],
        );
    }
    let _ = conn.unbind();
    // Only users of the directory that signed in are made members.
    for (user, password) in [
        ("alice", ALICE_PASSWORD),
        ("carol", "a-Directory-pw-5"),
        ("dan", "a-Directory-pw-5"),
    ] {
        assert_eq!(sign_in(&app.base, user, password).status, 200, "{user}");
    }
    let r = admin.post_empty("/access/api/v1/ldap/groups/dyn-groups/refresh");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        members_of(&admin, "builders"),
        vec!["carol".to_string(), "dan".to_string()]
    );
}

/// A first URL whose server accepts the connection and never answers is given up for
/// the next one (every sign-in was a 503 after 5 s, the second server never asked).
#[test]
fn a_directory_that_accepts_and_never_answers_fails_over_to_the_next_url() {
    if !installed("a_directory_that_accepts_and_never_answers_fails_over_to_the_next_url") {
        return;
    }
    let slapd = Slapd::start();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().flatten() {
            held.push(s);
        }
    });
    let app = TestApp::spawn_with(gatehouse::Config {
        auth_cache_ttl_secs: 0,
        ..Default::default()
    });
    let admin = app.admin();
    let url = format!("ldap://127.0.0.1:{port}/{BASE} {}", slapd.url());
    configure_with(&admin, &slapd, &url, false);
    assert_eq!(sign_in(&app.base, "alice", ALICE_PASSWORD).status, 200);
    let r = admin.post_empty("/access/api/v1/ldap/groups/corp-groups/refresh");
    assert_eq!(r.status, 200, "{}", r.text);
}

/// From a review: an RFC 4516 URL (`?attributes?scope?filter`) was saved with its whole
/// path as the base DN (every bind failed, and right passwords locked users); a manager
/// DN without a password was saved and every sign-in answered 503.
#[test]
fn ldap_settings_refuse_url_queries_and_a_manager_without_password() {
    let app = TestApp::spawn();
    let admin = app.admin();
    let put = |body: Value| admin.put("/access/api/v1/ldap/settings/v", &body);
    let r = put(
        json!({"ldap_url": "ldap://127.0.0.1:38901/dc=example,dc=com??sub?(objectClass=*)",
                       "user_dn_pattern": "uid={0},ou=people"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("ldap_url"), "{}", r.text);
    let r = put(
        json!({"ldap_url": "ldap://127.0.0.1:38901/dc=example,dc=com",
                       "search": {"search_filter": "(uid={0})", "manager_dn": "cn=reader,dc=example,dc=com"}}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("manager_password"), "{}", r.text);
    let r = put(
        json!({"ldap_url": "ldap://127.0.0.1:38901/dc=example,dc=com",
                       "search": {"search_filter": "(uid={0})", "manager_dn": "cn=reader,dc=example,dc=com",
                                  "manager_password": "secret-1"}}),
    );
    assert!(r.status < 300, "{}", r.text);
}

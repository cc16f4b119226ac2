//! Access Federation, sending side: the live stream and the full broadcast.
//!
//! ```text
//! log ──► dispatcher (crate::webhooks, one copy of the read models for every consumer)
//!           │  each committed event that changes a federated entity, per active target
//!           ▼  whose selection takes it: an outbox entry (sled, encrypted, with the cursor)
//!         one sender per target ──batches, signed──► POST <peer>/access/api/v1/system/federation/receive
//! ```
//!
//! What travels is entities, not events: the user, group, permission target or token
//! record as it is right after the change (or its removal), with the **version** of that
//! write — (time at the origin, origin service id, position at the origin). A receiver
//! applies a change only when its version is greater than the one it has, so:
//! - a batch delivered twice changes nothing the second time (idempotent);
//! - a change that went round a ring A → B → C → A stops at its origin, and in a mesh
//!   each server applies it once, however many paths it takes;
//! - the same entity changed at two sites ends the same everywhere: the later write
//!   wins, ties broken by service id then position (last writer wins, deterministic).
//!
//! Servers forward what they received as well as what they wrote (that is how a ring
//! carries a change to every member); the version check is what stops it.
//!
//! Batches are authenticated by a short-lived JWT signed with this server's key whose
//! `jti` is the blake3 of the body: the receiver checks the signature against its circle
//! of trust and the hash against the body, so a tampered batch is refused.
//!
//! A target that is down accumulates entries (on disk) and gets them, in order, when it
//! is back. Past `federation-max-lag-events` pending entries the source drops them and
//! sends the target a full broadcast by itself once it answers again.

use crate::auth::jwt;
use crate::domain::unfederated_user;
use crate::keys::KeyRing;
use crate::personal::PersonalKeys;
use crate::webhooks::prefixed;
use crate::writer::{CommandContext, WriterHandle};
use gatehouse_projections::State;
use gatehouse_schemas::{
    EntityVersion, Event, FederationTarget, PermissionTarget, ReplicatedGroup, ReplicatedUser,
    TokenIssued,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A peer's URL as it names the peer: without a trailing `/` or `/access` (both forms
/// register the same server) and with its scheme and host in lower case.
fn peer_base(url: &str) -> String {
    let trimmed = url.trim_end_matches('/');
    let trimmed = trimmed.strip_suffix("/access").unwrap_or(trimmed);
    match trimmed.split_once("://") {
        Some((scheme, rest)) => {
            let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            format!(
                "{}://{}{path}",
                scheme.to_ascii_lowercase(),
                host.to_ascii_lowercase()
            )
        }
        None => trimmed.to_string(),
    }
}

/// Entities a target may select, and the entity names their changes carry.
pub const ENTITIES: &[(&str, &str)] = &[
    ("users", "user"),
    ("groups", "group"),
    ("permissions", "permission"),
    ("tokens", "token"),
];

/// Changes per batch of the live stream and of a full broadcast.
const STREAM_BATCH: usize = 512;
const BROADCAST_BATCH: usize = 2000;
/// The most bytes of changes one batch carries (beyond its first change): batches were
/// cut by count alone, and 470 changes of a group of a thousand members made a body
/// over the receiver's 64 MiB (`MAX_BATCH_BYTES`), refused with 413 and sent again for
/// ever, the target's whole stream stuck behind it.
const BATCH_BYTES: usize = 16 * 1024 * 1024;

/// The scopes of the tokens federation peers sign.
pub const BATCH_SCOPE: &str = "federation:batch";
pub const CHALLENGE_SCOPE: &str = "federation:challenge";
pub const ANSWER_SCOPE: &str = "federation:challenge-answer";

#[derive(Debug, Clone)]
pub struct FederationSettings {
    pub max_lag_events: usize,
    pub retry_max_ms: u64,
    pub timeout_ms: u64,
}

/// One change on the wire. `user.email` is in clear here (the receiver encrypts it
/// with its own key); hashes stay hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeWire {
    /// `user` | `group` | `permission` | `token`.
    pub entity: String,
    pub name: String,
    /// `upsert` | `remove`.
    pub op: String,
    pub version: EntityVersion,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<ReplicatedUser>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<ReplicatedGroup>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<PermissionTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenIssued>,
    /// The service id that issued `token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

/// What one POST to a peer's receive endpoint carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// The sending server's service id (must be the token's issuer).
    pub source: String,
    /// `changes` (the stream, or a part of a full broadcast), `begin` or `end` (of a
    /// full broadcast).
    pub kind: String,
    #[serde(default)]
    pub changes: Vec<ChangeWire>,
    /// `end`: the receiver's position that `begin` answered.
    #[serde(default)]
    pub since: Option<u64>,
    /// `end`: every entity name the broadcast sent, by entity.
    #[serde(default)]
    pub names: Option<BTreeMap<String, BTreeSet<String>>>,
}

/// The entities an event changes that federation carries: those it wrote here and
/// those it received from a peer (forwarded on: see the module docs).
pub fn changed_entities(
    state: &State,
    event: &Event,
    left: &[String],
) -> Vec<(&'static str, String, bool)> {
    match event {
        Event::UserReplicated { user, .. } => vec![("user", user.username.clone(), false)],
        Event::GroupReplicated { group, .. } => vec![("group", group.name.clone(), false)],
        Event::PermissionReplicated { target, .. } => {
            vec![("permission", target.name.clone(), false)]
        }
        Event::TokenReplicated { token, .. } => vec![("token", token.token_id.clone(), false)],
        Event::ReplicaRemoved { entity, name, .. } => {
            let e = match entity.as_str() {
                "user" => "user",
                "group" => "group",
                "permission" => "permission",
                "token" => "token",
                _ => return vec![],
            };
            vec![(e, name.clone(), true)]
        }
        other => state.federated_changes(other, left),
    }
}

/// Does `target` take changes of `entity` named `name`?
pub fn selects(target: &FederationTarget, entity: &str, name: &str) -> bool {
    let Some((plural, _)) = ENTITIES.iter().find(|(_, e)| *e == entity) else {
        return false;
    };
    if !target.entities.iter().any(|e| e == plural) {
        return false;
    }
    if entity == "user" && unfederated_user(name) {
        return false;
    }
    let (include, exclude) = match entity {
        "permission" => (&target.include_patterns, &target.exclude_patterns),
        // `group_filters`: it was accepted and dropped, and every group went to the peer.
        "group" => (
            &target.group_include_patterns,
            &target.group_exclude_patterns,
        ),
        _ => return true,
    };
    // Ant's syntax, as the pattern was validated (`[` and `{` are letters).
    let glob = |p: &str| {
        globset::GlobBuilder::new(&crate::authorize::ant(p))
            .literal_separator(false)
            .build()
            .map(|g| g.compile_matcher().is_match(name))
            .unwrap_or(false)
    };
    (include.is_empty() || include.iter().any(|p| glob(p))) && !exclude.iter().any(|p| glob(p))
}

/// The version of `entity` `name` in `state` (one made up from the record for data
/// written before versions were kept).
fn version_of(state: &State, entity: &str, name: &str) -> EntityVersion {
    state
        .version_of(entity, name)
        .unwrap_or_else(|| EntityVersion {
            time_ms: 0,
            origin: state.service_id.clone().unwrap_or_default(),
            origin_seq: 0,
        })
}

/// The change that brings a peer to `state`'s `entity` `name` (an upsert when it
/// exists, a removal otherwise).
pub fn render(state: &State, personal: &PersonalKeys, entity: &str, name: &str) -> ChangeWire {
    let version = version_of(state, entity, name);
    let mut c = ChangeWire {
        entity: entity.to_string(),
        name: name.to_string(),
        op: "upsert".into(),
        version,
        user: None,
        group: None,
        permission: None,
        token: None,
        issuer: None,
    };
    let own = state.service_id.clone().unwrap_or_default();
    let found = match entity {
        "user" => state.directory.users.get(name).map(|u| {
            c.user = Some(ReplicatedUser {
                username: u.username.clone(),
                // In clear for the peer to seal with its own key; `None` when erased.
                email: u.email.as_deref().and_then(|e| personal.decrypt(e)),
                password_hash: u.password_hash.clone(),
                admin: u.admin,
                profile_updatable: u.profile_updatable,
                internal_password_disabled: u.internal_password_disabled,
                disable_ui_access: u.disable_ui_access,
                realm: u.realm.clone(),
                status: u.status,
                password_expired: u.password_expired,
            })
        }),
        "group" => state.directory.groups.get(name).map(|g| {
            c.group = Some(ReplicatedGroup {
                name: g.name.clone(),
                description: g.description.clone(),
                auto_join: g.auto_join,
                admin_privileges: g.admin_privileges,
                realm: g.realm.clone(),
                realm_attributes: g.realm_attributes.clone(),
                external_id: g.external_id.clone(),
                members: g
                    .members
                    .iter()
                    .filter(|m| !unfederated_user(m))
                    .cloned()
                    .collect(),
            })
        }),
        "permission" => state
            .permissions
            .targets
            .get(name)
            .map(|t| c.permission = Some((**t).clone())),
        "token" => state.tokens.by_id.get(name).map(|t| {
            c.token = Some((**t).clone());
            c.issuer = Some(
                state
                    .federation
                    .token_issuers
                    .get(name)
                    .cloned()
                    .unwrap_or(own.clone()),
            );
        }),
        _ => None,
    };
    if found.is_none() {
        c.op = "remove".into();
    }
    c
}

/// The receive endpoint of a peer whose Access base URL is `url` (`https://h/access/`,
/// `http://h:8082`, …).
pub fn peer_endpoint(url: &str, path: &str) -> String {
    let base = url.trim_end_matches('/');
    let base = if base.ends_with("/access") {
        base.to_string()
    } else {
        format!("{base}/access")
    };
    format!("{base}/api/v1/system/federation/{path}")
}

/// Sign a federation token: `scp` says what for, `jti` carries the nonce or the body
/// hash, it lives a minute.
pub fn sign(
    keys: &KeyRing,
    state: &State,
    scp: &str,
    aud: &str,
    jti: &str,
) -> Result<String, String> {
    let kid = state
        .keys
        .active
        .clone()
        .ok_or_else(|| "this server has no signing key yet".to_string())?;
    let key = keys
        .signing_key(&kid)
        .ok_or_else(|| "the private half of the signing key is missing".to_string())?;
    let own = state.service_id.clone().unwrap_or_default();
    let now = crate::auth::unix_millis() / 1000;
    let claims = jwt::Claims {
        sub: format!("{own}/federation"),
        scp: scp.into(),
        aud: aud.into(),
        iss: own,
        iat: now,
        exp: Some(now + 60),
        nbf: None,
        jti: jti.into(),
        ext: None,
    };
    Ok(jwt::sign(&claims, &kid, &key))
}

/// A full broadcast's progress, as the status call shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BroadcastProgress {
    /// `idle`, `running`, `done` or `failed`.
    pub state: String,
    pub sent: u64,
    pub total: u64,
    pub position: u64,
    pub started: Option<u64>,
    pub finished: Option<u64>,
    pub error: Option<String>,
}

/// How a target's stream is doing (for the status call).
#[derive(Debug, Clone, Default)]
pub struct StreamStatus {
    pub last_error: Option<String>,
    pub last_success_ms: Option<u64>,
    pub broadcast: BroadcastProgress,
    /// Changes the target refused for good and that were left out (since this start).
    pub refused_changes: u64,
    pub last_refused: Option<RefusedChange>,
}

/// The last change a target refused for good.
#[derive(Debug, Clone)]
pub struct RefusedChange {
    pub entity: String,
    pub name: String,
    pub reason: String,
    pub time_ms: u64,
}

struct SenderHandle {
    doorbell: crossbeam_channel::Sender<()>,
    broadcast: crossbeam_channel::Sender<crossbeam_channel::Sender<Result<u64, String>>>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// The sending side, shared by the dispatcher, the senders and the HTTP layer.
pub struct Federation {
    tree: sled::Tree,
    shared: Arc<RwLock<State>>,
    keys: Arc<KeyRing>,
    personal: Arc<PersonalKeys>,
    writer: WriterHandle,
    settings: FederationSettings,
    senders: Mutex<HashMap<String, SenderHandle>>,
    status: Mutex<HashMap<String, StreamStatus>>,
    stop: AtomicBool,
    /// Several nodes: only the lease holder streams (see `crate::lease`).
    lease: Arc<crate::lease::Lease>,
}

fn entry_key(target: &str, position: u64, n: u16) -> Vec<u8> {
    let mut k = prefixed(b'f', target);
    k.extend_from_slice(&position.to_be_bytes());
    k.extend_from_slice(&n.to_be_bytes());
    k
}

fn position_of(key: &[u8]) -> u64 {
    key.len()
        .checked_sub(10)
        .and_then(|i| key.get(i..i + 8))
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

/// The key that says a full broadcast is owed to `target`.
pub fn owed_key(target: &str) -> Vec<u8> {
    prefixed(b'n', target)
}

/// The key of the service id the target last answered with.
fn peer_key(target: &str) -> Vec<u8> {
    prefixed(b'i', target)
}

/// One pending change for a target.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    committed_ms: u64,
    /// The target's `created_seq` when it was queued (see the webhook outbox).
    #[serde(default)]
    generation: u64,
    /// The change as JSON, encrypted (it may hold an e-mail).
    change: String,
}

impl Federation {
    pub fn new(
        tree: sled::Tree,
        shared: Arc<RwLock<State>>,
        keys: Arc<KeyRing>,
        personal: Arc<PersonalKeys>,
        writer: WriterHandle,
        settings: FederationSettings,
        lease: Arc<crate::lease::Lease>,
    ) -> Arc<Federation> {
        Arc::new(Federation {
            tree,
            shared,
            keys,
            personal,
            writer,
            settings,
            senders: Mutex::new(HashMap::new()),
            status: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
            lease,
        })
    }

    /// Called by the dispatcher for every committed event, with the read models right
    /// after it: queue the changes each active target selects.
    pub fn dispatch(
        &self,
        state: &State,
        env: &gatehouse_schemas::Envelope,
        left: &[String],
        secrets_key: &str,
        batch: &mut sled::Batch,
        touched: &mut Vec<String>,
    ) -> Result<(), String> {
        if state.federation.targets.is_empty() {
            return Ok(());
        }
        let changes = changed_entities(state, &env.event, left);
        if changes.is_empty() {
            return Ok(());
        }
        let mut rendered: Vec<Option<String>> = vec![None; changes.len()];
        for (name, rec) in &state.federation.targets {
            if !rec.target.active || rec.created_seq >= env.seq {
                continue;
            }
            for (i, (entity, ename, _)) in changes.iter().enumerate() {
                if !selects(&rec.target, entity, ename) {
                    continue;
                }
                if rendered[i].is_none() {
                    let c = render(state, &self.personal, entity, ename);
                    let text = serde_json::to_string(&c).map_err(|e| e.to_string())?;
                    rendered[i] = Some(
                        self.personal
                            .encrypt(secrets_key, &text)
                            .map_err(|e| e.to_string())?,
                    );
                }
                let p = Pending {
                    committed_ms: env.time_ms,
                    generation: rec.created_seq,
                    change: rendered[i].clone().unwrap_or_default(),
                };
                batch.insert(
                    entry_key(name, env.seq, i as u16),
                    rmp_serde::to_vec_named(&p).expect("a pending change encodes"),
                );
                touched.push(name.clone());
            }
        }
        Ok(())
    }

    /// A target was deleted: its pending changes and cursor go with it.
    pub fn forget(&self, target: &str) -> Result<(), String> {
        let mut batch = sled::Batch::default();
        for item in self.tree.scan_prefix(prefixed(b'f', target)) {
            let (k, _) = item.map_err(|e| e.to_string())?;
            batch.remove(k);
        }
        batch.remove(prefixed(b'g', target));
        batch.remove(prefixed(b'n', target));
        batch.remove(peer_key(target));
        self.tree.apply_batch(batch).map_err(|e| e.to_string())?;
        // Its status too: a target registered again under the name showed the last
        // broadcast of the one deleted.
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(target);
        Ok(())
    }

    pub fn wake(&self, target: &str) {
        if let Some(s) = self
            .senders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(target)
        {
            let _ = s.doorbell.try_send(());
        }
    }

    /// One sender per target that exists (active or not: an inactive one keeps what
    /// it has pending until it is active again or deleted).
    pub fn sync_senders(self: &Arc<Self>, names: &[String]) {
        let mut senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        let gone: Vec<String> = senders
            .keys()
            .filter(|k| !names.contains(k))
            .cloned()
            .collect();
        for k in gone {
            if let Some(s) = senders.remove(&k) {
                s.stop.store(true, Ordering::SeqCst);
                let _ = s.doorbell.try_send(());
                drop(s.thread);
            }
            // A sender of its that died no longer says anything about the server.
            crate::vitals::recovered(&format!("gatehouse-federation-{k}"));
        }
        for name in names {
            if senders.contains_key(name) || self.stop.load(Ordering::SeqCst) {
                continue;
            }
            let (tx, rx) = crossbeam_channel::bounded(1);
            let (btx, brx) = crossbeam_channel::unbounded();
            let stop = Arc::new(AtomicBool::new(false));
            let sender = Sender {
                name: name.clone(),
                federation: self.clone(),
                doorbell: rx,
                broadcasts: brx,
                stop: stop.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("gatehouse-federation-{name}"))
                .spawn(move || {
                    let _alive = crate::vitals::Alive::part(
                        "a federation target's sender: its stream and broadcasts stop",
                    );
                    sender.run()
                })
                .expect("spawn a federation sender");
            senders.insert(
                name.clone(),
                SenderHandle {
                    doorbell: tx,
                    broadcast: btx,
                    stop,
                    thread,
                },
            );
        }
    }

    /// Ask the sender of `target` for a full broadcast; the receiver gets the number of
    /// entities sent, or why it failed.
    pub fn request_broadcast(
        self: &Arc<Self>,
        target: &str,
    ) -> Result<crossbeam_channel::Receiver<Result<u64, String>>, String> {
        // A target registered a moment ago may not have its sender yet.
        let names: Vec<String> = self
            .shared
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .federation
            .targets
            .keys()
            .cloned()
            .collect();
        self.sync_senders(&names);
        let senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        let s = senders
            .get(target)
            .ok_or_else(|| format!("federation target `{target}` has no sender yet"))?;
        let (tx, rx) = crossbeam_channel::bounded(1);
        s.broadcast
            .send(tx)
            .map_err(|_| "the sender stopped".to_string())?;
        let _ = s.doorbell.try_send(());
        Ok(rx)
    }

    /// Whether `target` is owed a full broadcast (it fell too far behind, or was made
    /// active again).
    pub fn broadcast_owed(&self, target: &str) -> bool {
        self.tree.contains_key(owed_key(target)).unwrap_or(false)
    }

    /// The position the target acknowledged (stream or broadcast), 0 before any.
    fn cursor(&self, target: &str) -> u64 {
        self.tree
            .get(prefixed(b'g', target))
            .ok()
            .flatten()
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0)
    }

    /// The status call: (cursor, pending changes, oldest pending commit time, status).
    pub fn stream_status(&self, target: &str) -> (u64, usize, Option<u64>, StreamStatus) {
        let cursor = self.cursor(target);
        let mut pending = 0;
        let mut oldest = None;
        for item in self.tree.scan_prefix(prefixed(b'f', target)) {
            let Ok((_, v)) = item else { break };
            if oldest.is_none() {
                oldest = rmp_serde::from_slice::<Pending>(&v)
                    .ok()
                    .map(|p| p.committed_ms);
            }
            pending += 1;
        }
        let mut status = self
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(target)
            .cloned()
            .unwrap_or_default();
        if status.broadcast.state.is_empty() {
            // None since this server started (the last one's position is in the log).
            status.broadcast.state = "idle".into();
        }
        (cursor, pending, oldest, status)
    }

    fn set_status(&self, target: &str, f: impl FnOnce(&mut StreamStatus)) {
        let mut all = self.status.lock().unwrap_or_else(|p| p.into_inner());
        f(all.entry(target.to_string()).or_default());
    }

    /// Stop the senders (waiting a moment for one in the middle of a request).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let senders: Vec<SenderHandle> = self
            .senders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, s)| s)
            .collect();
        for s in &senders {
            s.stop.store(true, Ordering::SeqCst);
            let _ = s.doorbell.try_send(());
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        for s in senders {
            while !s.thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if s.thread.is_finished() {
                let _ = s.thread.join();
            }
        }
        let _ = self.tree.flush();
    }

    /// POST a batch to `url`'s receive endpoint, signed; the answer's JSON.
    fn post(
        &self,
        agent: &ureq::Agent,
        url: &str,
        batch: &Batch,
    ) -> Result<serde_json::Value, PostError> {
        let body = serde_json::to_vec(batch).map_err(|e| PostError::Other(e.to_string()))?;
        let hash = blake3::hash(&body).to_hex().to_string();
        let token = {
            let s = self.shared.read().unwrap_or_else(|p| p.into_inner());
            sign(&self.keys, &s, BATCH_SCOPE, "*@*", &hash).map_err(PostError::Other)?
        };
        match agent
            .post(&peer_endpoint(url, "receive"))
            .set("Authorization", &format!("Bearer {token}"))
            .set("Content-Type", "application/json")
            .send_bytes(&body)
        {
            Ok(r) => crate::tls::json_answer(r).map_err(PostError::Other),
            Err(ureq::Error::Status(code, r)) => {
                let refused = r
                    .header(REFUSED_CHANGE_HEADER)
                    .and_then(|v| v.trim().parse::<usize>().ok());
                let message = format!(
                    "the target answered {code}: {}",
                    r.into_string()
                        .unwrap_or_default()
                        .chars()
                        .take(500)
                        .collect::<String>()
                );
                Err(match (code, refused) {
                    (400, Some(index)) => PostError::Refused { index, message },
                    (413, _) => PostError::TooLarge(message),
                    _ => PostError::Other(message),
                })
            }
            Err(e) => Err(PostError::Other(format!("the target is unreachable: {e}"))),
        }
    }

    /// Send `changes` to a peer as one batch, or as several when the peer finds it too
    /// large. A change the peer refuses for good — it names the change
    /// ([`REFUSED_CHANGE_HEADER`]), or the change alone is over its size limit — is left
    /// out and recorded, and the rest go on: retried as it was, the batch could never
    /// succeed, and one change held back every change after it, for ever (a broadcast
    /// owed after the lag overflowed failed on it too). The peer's answer to the last
    /// batch it took, if it took one.
    fn send_changes(
        &self,
        agent: &ureq::Agent,
        target: &str,
        url: &str,
        source: &str,
        changes: Vec<ChangeWire>,
    ) -> Result<Option<serde_json::Value>, String> {
        let mut batch = Batch {
            source: source.to_string(),
            kind: "changes".into(),
            changes,
            since: None,
            names: None,
        };
        // A batch left empty by refusals is still sent when it was empty to begin with
        // (an outbox entry that rendered to nothing still moves the cursor, as before).
        let mut first = true;
        while first || !batch.changes.is_empty() {
            first = false;
            match self.post(agent, url, &batch) {
                Ok(answer) => return Ok(Some(answer)),
                Err(PostError::Refused { index, message }) if index < batch.changes.len() => {
                    let change = batch.changes.remove(index);
                    self.refused(target, &change, &message);
                }
                Err(PostError::TooLarge(message)) if batch.changes.len() == 1 => {
                    let change = batch.changes.remove(0);
                    self.refused(target, &change, &message);
                }
                Err(PostError::TooLarge(_)) if batch.changes.len() > 1 => {
                    let second = batch.changes.split_off(batch.changes.len() / 2);
                    let first_half = std::mem::take(&mut batch.changes);
                    let a = self.send_changes(agent, target, url, source, first_half)?;
                    let b = self.send_changes(agent, target, url, source, second)?;
                    return Ok(b.or(a));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// A change a peer refused for good: said in the log and in the target's status.
    fn refused(&self, target: &str, change: &ChangeWire, reason: &str) {
        tracing::warn!(
            target = %target,
            entity = %change.entity,
            name = %change.name,
            reason = %reason,
            "federation target refused a change: it is left out, the rest go on"
        );
        self.set_status(target, |s| {
            s.refused_changes += 1;
            s.last_refused = Some(RefusedChange {
                entity: change.entity.clone(),
                name: change.name.clone(),
                reason: reason.to_string(),
                time_ms: crate::auth::unix_millis(),
            });
        });
    }
}

/// The header a Gatehouse peer's 400 to a batch names the refused change with (its
/// index in the batch's `changes`), when that change is invalid there whatever is sent
/// around it. Its absence (another error, an older peer) leaves the batch to be retried.
pub const REFUSED_CHANGE_HEADER: &str = "x-gatehouse-refused-change";

/// Why a batch was not taken.
enum PostError {
    /// One change of it, for good (400 naming it).
    Refused { index: usize, message: String },
    /// Over the peer's size limit (413).
    TooLarge(String),
    /// Anything else: unreachable, untrusted, a server error — worth a retry.
    Other(String),
}

impl From<PostError> for String {
    fn from(e: PostError) -> String {
        match e {
            PostError::Refused { message, .. }
            | PostError::TooLarge(message)
            | PostError::Other(message) => message,
        }
    }
}

/// Streams one target's outbox, and runs its full broadcasts.
struct Sender {
    name: String,
    federation: Arc<Federation>,
    doorbell: crossbeam_channel::Receiver<()>,
    broadcasts: crossbeam_channel::Receiver<crossbeam_channel::Sender<Result<u64, String>>>,
    stop: Arc<AtomicBool>,
}

impl Sender {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || self.federation.stop.load(Ordering::SeqCst)
    }

    fn pause(&self, ms: u64) {
        let until = Instant::now() + Duration::from_millis(ms);
        while !self.stopped() && self.broadcasts.is_empty() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(20)));
        }
    }

    fn target(&self) -> Option<(FederationTarget, u64)> {
        self.federation
            .shared
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .federation
            .targets
            .get(&self.name)
            .map(|r| (r.target.clone(), r.created_seq))
    }

    fn run(self) {
        let f = self.federation.clone();
        let agent = crate::tls::agent()
            .timeout(Duration::from_millis(f.settings.timeout_ms))
            .redirects(0)
            .build();
        let mut failures: u32 = 0;
        // The lease epoch this sender last caught up with the shared cursor for.
        let mut followed = if f.lease.shared() {
            u64::MAX
        } else {
            f.lease.epoch()
        };
        while !self.stopped() {
            let Some((target, generation)) = self.target() else {
                self.pause(100);
                continue;
            };
            let holder = f.lease.held();
            // Broadcasts asked for over the API, or owed after too much lag.
            let owed = f
                .tree
                .contains_key(prefixed(b'n', &self.name))
                .unwrap_or(false);
            let asked: Vec<_> = self.broadcasts.try_iter().collect();
            // A broadcast an admin asked this node for runs here, lease or not (sending
            // it twice changes nothing: receivers keep the newer version); an owed one
            // only on the holder.
            if !asked.is_empty() || (owed && target.active && holder) {
                if owed {
                    // What is pending is older than the copy the broadcast will send:
                    // drop it, so that a target that stays away cannot fill the disk.
                    self.drop_pending();
                }
                let result = self.broadcast(&agent, &target);
                if result.is_err() && asked.is_empty() {
                    failures += 1;
                    self.pause(self.backoff(failures));
                } else if result.is_ok() {
                    failures = 0;
                }
                for reply in asked {
                    let _ = reply.send(result.clone());
                }
                continue;
            }
            // Several nodes: another node streams; drop what it has sent. Having just
            // taken over: start where the last holder stopped.
            if !holder {
                self.follow_shared();
                let _ = self.doorbell.recv_timeout(Duration::from_millis(500));
                continue;
            }
            if followed != f.lease.epoch() {
                followed = f.lease.epoch();
                self.follow_shared();
            }
            if !target.active {
                let _ = self.doorbell.recv_timeout(Duration::from_millis(500));
                continue;
            }
            let mut keys = Vec::new();
            let mut changes = Vec::new();
            let mut bytes = 0usize;
            for item in f
                .tree
                .scan_prefix(prefixed(b'f', &self.name))
                .take(STREAM_BATCH)
            {
                let Ok((k, v)) = item else { break };
                let text = rmp_serde::from_slice::<Pending>(&v)
                    .ok()
                    // Left over from an earlier target of the same name: not sent.
                    .filter(|p| p.generation == 0 || p.generation == generation)
                    .and_then(|p| f.personal.decrypt(&p.change));
                let size = text.as_ref().map_or(0, String::len);
                if !keys.is_empty() && bytes + size > BATCH_BYTES {
                    break;
                }
                bytes += size;
                keys.push(k);
                if let Some(c) = text.and_then(|t| serde_json::from_str::<ChangeWire>(&t).ok()) {
                    changes.push(c);
                }
            }
            if keys.is_empty() {
                let _ = self.doorbell.recv_timeout(Duration::from_millis(500));
                continue;
            }
            let source = f
                .shared
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .service_id
                .clone()
                .unwrap_or_default();
            match f.send_changes(&agent, &self.name, &target.url, &source, changes) {
                Ok(answer) => {
                    failures = 0;
                    let last = keys.last().map(|k| position_of(k)).unwrap_or(0);
                    if let Some(answer) = answer {
                        self.check_peer(&answer, last);
                    }
                    let mut b = sled::Batch::default();
                    for k in keys {
                        b.remove(k);
                    }
                    b.insert(prefixed(b'g', &self.name), &last.to_be_bytes());
                    if let Err(e) = f.tree.apply_batch(b) {
                        tracing::warn!(error = %e, "cannot record a federation delivery");
                    } else {
                        f.lease
                            .advance(&crate::lease::federation_cursor(&self.name), last);
                    }
                    f.set_status(&self.name, |s| {
                        s.last_success_ms = Some(crate::auth::unix_millis());
                        s.last_error = None;
                    });
                }
                Err(e) => {
                    failures += 1;
                    tracing::debug!(target = %self.name, error = %e, "federation stream: retrying");
                    f.set_status(&self.name, |s| s.last_error = Some(e));
                    self.check_lag();
                    self.pause(self.backoff(failures));
                }
            }
        }
    }

    /// Several nodes: the lease holder streamed this target up to the shared cursor.
    /// Drop the pending changes before it and move this node's cursor there; an outbox
    /// that still outgrows `federation-max-lag-events` (the target is away) is dropped
    /// for a full broadcast, as on the holder.
    fn follow_shared(&self) {
        let f = &self.federation;
        let shared = f.lease.cursor(&crate::lease::federation_cursor(&self.name));
        if shared > 0 {
            let mut b = sled::Batch::default();
            for k in f
                .tree
                .scan_prefix(prefixed(b'f', &self.name))
                .keys()
                .flatten()
            {
                if position_of(&k) >= shared {
                    break;
                }
                b.remove(k);
            }
            let mine = f.cursor(&self.name);
            if mine < shared {
                b.insert(prefixed(b'g', &self.name), &shared.to_be_bytes());
            }
            // A broadcast owed here as of a position the holder has streamed past was
            // sent by the holder: every node kept it owed, and each lease handover sent
            // the whole selection again. (A marker without its position, from an older
            // version, stays.)
            let owed_at = f
                .tree
                .get(owed_key(&self.name))
                .ok()
                .flatten()
                .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                .map(u64::from_be_bytes);
            if owed_at.is_some_and(|at| at <= shared) {
                b.remove(owed_key(&self.name));
            }
            if let Err(e) = f.tree.apply_batch(b) {
                tracing::warn!(error = %e, "cannot follow the shared federation cursor");
            }
        }
        self.check_lag();
    }

    /// Exponential, capped, with "equal jitter" (half fixed, half random), so that the
    /// senders of many sources do not knock on a target that comes back in lockstep.
    fn backoff(&self, failures: u32) -> u64 {
        let max = self.federation.settings.retry_max_ms.max(2);
        let step = (50u64 << failures.min(16)).min(max);
        let mut r = [0u8; 8];
        let _ = getrandom::getrandom(&mut r);
        step / 2 + u64::from_le_bytes(r) % (step / 2 + 1)
    }

    /// Too far behind: drop what is pending and owe the target a full broadcast.
    /// The target answered as service `answer["service_id"]`: another server than the
    /// one the stream filled (its data directory wiped, or a new server at the address)
    /// has nothing the stream sent before, and would get only what follows — a full
    /// broadcast is owed (status said all was well while the peer held none of it).
    fn check_peer(&self, answer: &serde_json::Value, last: u64) {
        let f = &self.federation;
        let Some(id) = answer["service_id"].as_str() else {
            // A peer of an earlier version says nothing: nothing to compare.
            return;
        };
        let known = f.tree.get(peer_key(&self.name)).ok().flatten();
        match known {
            Some(k) if k.as_ref() == id.as_bytes() => {}
            Some(k) => {
                tracing::warn!(
                    target = %self.name,
                    was = %String::from_utf8_lossy(&k),
                    now = id,
                    "federation target is another server now (wiped or replaced): a full broadcast follows"
                );
                let mut b = sled::Batch::default();
                b.insert(owed_key(&self.name), &last.to_be_bytes());
                b.insert(peer_key(&self.name), id.as_bytes());
                if let Err(e) = f.tree.apply_batch(b) {
                    tracing::warn!(error = %e, "cannot record an owed full broadcast");
                }
            }
            None => {
                let _ = f.tree.insert(peer_key(&self.name), id.as_bytes());
            }
        }
    }

    fn check_lag(&self) {
        let f = &self.federation;
        let max = f.settings.max_lag_events;
        let pending = f
            .tree
            .scan_prefix(prefixed(b'f', &self.name))
            .keys()
            .take(max + 1)
            .count();
        if pending <= max {
            return;
        }
        tracing::warn!(target = %self.name, pending, "federation target too far behind: a full broadcast will follow");
        // Owed as of the last change dropped (see `follow_shared`).
        let last = f
            .tree
            .scan_prefix(prefixed(b'f', &self.name))
            .keys()
            .flatten()
            .last()
            .map_or(0, |k| position_of(&k));
        if let Err(e) = f.tree.insert(owed_key(&self.name), &last.to_be_bytes()) {
            tracing::warn!(error = %e, "cannot record an owed full broadcast");
            return;
        }
        self.drop_pending();
    }

    fn drop_pending(&self) {
        let f = &self.federation;
        let mut b = sled::Batch::default();
        for k in f
            .tree
            .scan_prefix(prefixed(b'f', &self.name))
            .keys()
            .flatten()
        {
            b.remove(k);
        }
        if let Err(e) = f.tree.apply_batch(b) {
            tracing::warn!(error = %e, "cannot drop a lagging federation stream");
        }
    }

    /// Send everything the target selects, as of now, then what is gone.
    fn broadcast(&self, agent: &ureq::Agent, target: &FederationTarget) -> Result<u64, String> {
        let f = &self.federation;
        let started = crate::auth::unix_millis();
        f.set_status(&self.name, |s| {
            s.broadcast = BroadcastProgress {
                state: "running".into(),
                started: Some(started),
                ..Default::default()
            }
        });
        let result = self.broadcast_inner(agent, target);
        f.set_status(&self.name, |s| match &result {
            Ok(_) => {
                s.broadcast.state = "done".into();
                s.broadcast.finished = Some(crate::auth::unix_millis());
                s.last_error = None;
            }
            Err(e) => {
                s.broadcast.state = "failed".into();
                s.broadcast.finished = Some(crate::auth::unix_millis());
                s.broadcast.error = Some(e.clone());
                s.last_error = Some(e.clone());
            }
        });
        result
    }

    fn broadcast_inner(
        &self,
        agent: &ureq::Agent,
        target: &FederationTarget,
    ) -> Result<u64, String> {
        let f = &self.federation;
        // A copy, so the writer is not held up while thousands of entities are sent.
        let state = f.shared.read().unwrap_or_else(|p| p.into_inner()).clone();
        // The target as of that copy: what it selects now (the sender read it before;
        // a change to it in between was owed a broadcast that this one may take for
        // its own, below).
        let target = &state
            .federation
            .targets
            .get(&self.name)
            .map(|r| r.target.clone())
            .unwrap_or_else(|| target.clone());
        let source = state.service_id.clone().unwrap_or_default();
        let mut names: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut all: Vec<(&'static str, String)> = Vec::new();
        let begin = f
            .post(
                agent,
                &target.url,
                &Batch {
                    source: source.clone(),
                    kind: "begin".into(),
                    changes: vec![],
                    since: None,
                    names: None,
                },
            )
            .map_err(String::from)?;
        let since = begin["position"]
            .as_u64()
            .ok_or_else(|| "the target did not say where the broadcast begins".to_string())?;
        // The server this broadcast fills is the one the stream goes on to.
        let peer_id = begin["service_id"].as_str();
        if let Some(id) = peer_id {
            let _ = f.tree.insert(peer_key(&self.name), id.as_bytes());
        }
        // The other targets to the same peer: the same URL, or (spelled otherwise:
        // `localhost` and `127.0.0.1`, a second DNS name) a peer that answered them
        // with the service id this one answers with. By URL alone, a broadcast swept
        // away at the peer what a target spelled otherwise had sent.
        let same_peer: Vec<&FederationTarget> = state
            .federation
            .targets
            .values()
            .map(|r| &r.target)
            .filter(|t| {
                t.name != target.name
                    && (peer_base(&t.url) == peer_base(&target.url)
                        || peer_id.is_some_and(|id| {
                            f.tree
                                .get(peer_key(&t.name))
                                .ok()
                                .flatten()
                                .is_some_and(|k| k.as_ref() == id.as_bytes())
                        }))
            })
            .collect();
        for (plural, entity) in ENTITIES {
            if !target.entities.iter().any(|e| e == plural) {
                continue;
            }
            let list: Vec<String> = match *entity {
                "user" => state
                    .directory
                    .users
                    .keys()
                    .map(|k| k.to_string())
                    .collect(),
                "group" => state
                    .directory
                    .groups
                    .keys()
                    .map(|k| k.to_string())
                    .collect(),
                "permission" => state.permissions.targets.keys().cloned().collect(),
                _ => state.tokens.by_id.keys().map(|k| k.to_string()).collect(),
            };
            // The names sent at the end are what this target selects and what every other
            // target of this server to the same peer selects: the peer removes what
            // this source sent earlier and no longer sends it (gone here, or no longer
            // selected). Its own selection alone, and a broadcast of one target removed
            // what another target to the same peer had sent (all of it, for a target
            // whose filter selects nothing).
            let kept = names.entry(entity.to_string()).or_default();
            for n in list {
                if selects(target, entity, &n) {
                    all.push((entity, n.clone()));
                    kept.insert(n);
                } else if same_peer.iter().any(|t| selects(t, entity, &n)) {
                    kept.insert(n);
                }
            }
        }
        // Deletions, as their tombstones: a broadcast replaces what the stream had
        // pending (after a lag overflow, or when a target is made active again), and
        // without them a delete made here meanwhile was lost at the peer (its copy, last
        // changed there, was not the broadcast's to sweep) and never went on round a ring.
        for (entity, name, rec) in state.federation.versions.iter() {
            let plural = ENTITIES.iter().find(|(_, e)| *e == entity).map(|(p, _)| *p);
            if rec.removed
                && plural.is_some_and(|p| target.entities.iter().any(|e| e == p))
                && selects(target, entity, name)
                && !names.get(entity).is_some_and(|kept| kept.contains(name))
            {
                all.push((entity, name.to_string()));
            }
        }
        let total = all.len() as u64;
        f.set_status(&self.name, |s| {
            s.broadcast.total = total;
            s.broadcast.position = state.seq;
        });
        let mut sent = 0u64;
        let mut rest = all.iter().peekable();
        while rest.peek().is_some() {
            if self.stopped() {
                return Err("the server is stopping".into());
            }
            // By count and by bytes (see `BATCH_BYTES`), at least one change a batch.
            let mut changes: Vec<ChangeWire> = Vec::new();
            let mut bytes = 0usize;
            while changes.len() < BROADCAST_BATCH {
                let Some((e, n)) = rest.peek() else { break };
                let change = render(&state, &f.personal, e, n);
                let size = serde_json::to_vec(&change).map_or(0, |v| v.len());
                if !changes.is_empty() && bytes + size > BATCH_BYTES {
                    break;
                }
                bytes += size;
                changes.push(change);
                rest.next();
            }
            let count = changes.len() as u64;
            f.send_changes(agent, &self.name, &target.url, &source, changes)?;
            sent += count;
            f.set_status(&self.name, |s| s.broadcast.sent = sent);
        }
        f.post(
            agent,
            &target.url,
            &Batch {
                source,
                kind: "end".into(),
                changes: vec![],
                since: Some(since),
                names: Some(names),
            },
        )
        .map_err(String::from)?;
        // What was pending up to the copy's position is in the broadcast.
        let mut b = sled::Batch::default();
        for k in f
            .tree
            .scan_prefix(prefixed(b'f', &self.name))
            .keys()
            .flatten()
        {
            if position_of(&k) <= state.seq {
                b.remove(k);
            }
        }
        // The peer has everything up to the copy's position: the cursor says so, and the
        // broadcast is a success (status showed neither: an old cursor, no success).
        let cursor = f.cursor(&self.name);
        if cursor < state.seq {
            b.insert(prefixed(b'g', &self.name), &state.seq.to_be_bytes());
        }
        f.tree.apply_batch(b).map_err(|e| e.to_string())?;
        // The broadcast owed is sent, unless it was owed again after the copy (a target
        // made to select users too while its first broadcast ran): removing that marker
        // too, the entities it now selects never went, and a group's members stayed
        // missing at the peer for good. Removed only if it is still the one read.
        let owed = owed_key(&self.name);
        if let Ok(Some(marker)) = f.tree.get(&owed) {
            let at = <[u8; 8]>::try_from(marker.as_ref())
                .ok()
                .map(u64::from_be_bytes);
            if at.is_none_or(|at| at <= state.seq) {
                let _ = f
                    .tree
                    .compare_and_swap(&owed, Some(marker), None::<&[u8]>)
                    .map_err(|e| e.to_string())?;
            }
        }
        if cursor < state.seq {
            f.lease
                .advance(&crate::lease::federation_cursor(&self.name), state.seq);
        }
        f.set_status(&self.name, |s| {
            s.last_success_ms = Some(crate::auth::unix_millis());
            s.last_error = None;
        });
        let ctx = CommandContext {
            actor: "system".into(),
            request_id: "federation-broadcast".into(),
        };
        if let Err(e) = f.writer.submit_blocking(
            crate::domain::Command::RecordBroadcast {
                target: self.name.clone(),
                position: state.seq,
                entities: total,
            },
            ctx,
        ) {
            tracing::warn!(error = %e, "could not record a full broadcast");
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_endpoints_take_either_form_of_base_url() {
        for url in [
            "https://access.example.com/access/",
            "https://access.example.com/access",
            "https://access.example.com",
            "https://access.example.com/",
        ] {
            assert_eq!(
                peer_endpoint(url, "receive"),
                "https://access.example.com/access/api/v1/system/federation/receive"
            );
        }
    }

    #[test]
    fn selection_by_entity_and_permission_patterns() {
        let t = FederationTarget {
            name: "b".into(),
            url: "http://b".into(),
            entities: vec!["users".into(), "permissions".into()],
            include_patterns: vec!["team_a_*".into()],
            exclude_patterns: vec!["team_a_secret*".into()],
            active: true,
            ..Default::default()
        };
        assert!(selects(&t, "user", "alice"));
        assert!(
            !selects(&t, "user", "admin"),
            "each server keeps its own admin"
        );
        assert!(!selects(&t, "group", "readers"));
        assert!(selects(&t, "permission", "team_a_read"));
        assert!(!selects(&t, "permission", "team_b_read"));
        assert!(!selects(&t, "permission", "team_a_secret_write"));
        assert!(!selects(&t, "token", "id"));
        // Group filters select groups (they were accepted and dropped: every group went).
        let g = FederationTarget {
            entities: vec!["groups".into()],
            group_include_patterns: vec!["team-*".into()],
            group_exclude_patterns: vec!["team-x".into()],
            ..t
        };
        assert!(selects(&g, "group", "team-a"));
        assert!(!selects(&g, "group", "team-x"));
        assert!(!selects(&g, "group", "others"));
    }

    use crate::domain::{decide, Command, Replicated, ReplicatedChange};
    use gatehouse_schemas::{Envelope, UserUpdated};

    fn at(state: &mut State, time_ms: u64, origin: &str, event: Event) {
        let env = Envelope {
            seq: state.seq + 1,
            time_ms,
            actor: "t".into(),
            origin: origin.into(),
            request_id: "t".into(),
            event,
        };
        state.apply(&env);
    }

    fn from_a(name: &str, time_ms: u64, origin_seq: u64) -> ReplicatedChange {
        ReplicatedChange {
            version: EntityVersion {
                time_ms,
                origin: "jfac@a".into(),
                origin_seq,
            },
            change: Replicated::User(ReplicatedUser {
                username: name.into(),
                realm: "internal".into(),
                ..Default::default()
            }),
        }
    }

    fn apply_from_a(b: &mut State, changes: Vec<ReplicatedChange>) -> usize {
        let events = decide(
            b,
            &Command::ApplyReplicated {
                source: "jfac@a".into(),
                changes,
            },
        )
        .unwrap();
        let n = events.len();
        for e in events {
            let origin = e.replicated_origin().unwrap_or("jfac@b").to_string();
            at(b, 500, &origin, e);
        }
        n
    }

    #[test]
    fn a_local_write_wins_over_a_peer_whose_clock_runs_ahead() {
        let mut b = State::default();
        at(
            &mut b,
            0,
            "jfac@b",
            Event::ServiceCreated {
                service_id: "jfac@b".into(),
            },
        );
        // A's clock is ahead: its write says 1000 while B's clock says 500.
        assert_eq!(apply_from_a(&mut b, vec![from_a("u", 1000, 5)]), 1);
        assert_eq!(
            apply_from_a(&mut b, vec![from_a("u", 1000, 5)]),
            0,
            "idempotent"
        );
        // B edits the user at 600 by its own clock: the edit is versioned above A's.
        at(
            &mut b,
            600,
            "jfac@b",
            Event::UserUpdated(UserUpdated {
                username: "u".into(),
                admin: Some(true),
                ..Default::default()
            }),
        );
        let v = b.version_of("user", "u").unwrap();
        assert_eq!((v.time_ms, v.origin.as_str()), (1001, "jfac@b"));
        // So A's earlier write, sent again, loses; a later one of A's wins.
        assert_eq!(apply_from_a(&mut b, vec![from_a("u", 1000, 5)]), 0);
        assert_eq!(apply_from_a(&mut b, vec![from_a("u", 1002, 9)]), 1);
        assert!(!b.directory.users["u"].admin);
    }

    #[test]
    fn what_a_broadcast_swept_comes_back_with_the_same_version() {
        let mut b = State::default();
        at(
            &mut b,
            0,
            "jfac@b",
            Event::ServiceCreated {
                service_id: "jfac@b".into(),
            },
        );
        assert_eq!(apply_from_a(&mut b, vec![from_a("w", 100, 3)]), 1);
        // A's next broadcast no longer has `w` (its filters changed): swept.
        let events = decide(
            &b,
            &Command::EndBroadcast {
                source: "jfac@a".into(),
                since: b.seq,
                names: [("user".to_string(), BTreeSet::new())].into(),
            },
        )
        .unwrap();
        assert_eq!(events.len(), 1);
        for e in events {
            at(&mut b, 600, "jfac@a", e);
        }
        assert!(!b.directory.users.contains_key("w"));
        // The filters change back: the same version brings it back, once.
        assert_eq!(apply_from_a(&mut b, vec![from_a("w", 100, 3)]), 1);
        assert!(b.directory.users.contains_key("w"));
        assert_eq!(apply_from_a(&mut b, vec![from_a("w", 100, 3)]), 0);
        // A deletion at the origin is not swept: the old version does not revive it.
        let removed = ReplicatedChange {
            version: EntityVersion {
                time_ms: 200,
                origin: "jfac@a".into(),
                origin_seq: 4,
            },
            change: Replicated::Removed {
                entity: "user".into(),
                name: "w".into(),
            },
        };
        assert_eq!(apply_from_a(&mut b, vec![removed]), 1);
        assert_eq!(apply_from_a(&mut b, vec![from_a("w", 100, 3)]), 0);
    }

    #[test]
    fn versions_order_by_time_then_origin_then_position() {
        let v = |t, o: &str, s| EntityVersion {
            time_ms: t,
            origin: o.into(),
            origin_seq: s,
        };
        assert!(v(2, "a", 1) > v(1, "z", 9));
        assert!(v(1, "b", 1) > v(1, "a", 9));
        assert!(v(1, "a", 2) > v(1, "a", 1));
    }
}

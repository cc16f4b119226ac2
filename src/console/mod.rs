//! The browser console's server side without HTTP: its sessions and its assets.
//!
//! A session is made by signing in with a password (the same check as Basic
//! authentication) and lives in memory only: a restart ends every session, and so do
//! sign-out, the idle and absolute limits, and any change to the user's credentials —
//! a session is bound to the user's `created_seq` and `credentials_seq`, which every
//! password, status (disable, lock) or expiry event moves, and deleting the user removes
//! it. The session id travels only in an `HttpOnly` cookie; the map is keyed by a
//! blake3 of it, so a memory dump of the map alone does not hand out live cookies.
//! Each session has a CSRF token that the page sends in `X-CSRF-Token` with every API
//! call: the cookie alone authenticates nothing (http/console.rs).

use gatehouse_projections::State;
use gatehouse_schemas::UserStatus;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cookie that carries the session id.
pub const COOKIE: &str = "gatehouse_session";
/// The request header that must carry the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session unused for this long ends.
pub const IDLE: Duration = Duration::from_secs(60 * 60);
/// A session ends this long after sign-in, used or not.
pub const ABSOLUTE: Duration = Duration::from_secs(12 * 60 * 60);
/// Above this many live sessions the oldest are dropped (sessions cost memory, and
/// signing in costs an argon2 check, so this bounds a flood rather than a workload).
const MAX_SESSIONS: usize = 10_000;
/// Sessions one user may hold: a new sign-in past it ends that user's least recently
/// used session. Without it one user's sign-ins in a loop filled the table and ended
/// everyone else's sessions.
const MAX_SESSIONS_PER_USER: usize = 32;

struct Session {
    username: String,
    created_seq: u64,
    credentials_seq: u64,
    csrf: String,
    signed_in: Instant,
    last_used: Instant,
}

/// What a valid session tells a request.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub username: String,
    pub csrf: String,
}

#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
}

fn random_token() -> String {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).expect("the OS has randomness");
    crate::hex(&b)
}

fn key(id: &str) -> [u8; 32] {
    *blake3::hash(id.as_bytes()).as_bytes()
}

/// Equal in time independent of where the first difference is.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Sessions {
    /// A new session for `username` as it is in `state` now: `(cookie id, csrf token)`.
    /// `None` when the user is not (or no longer) there.
    pub fn create(&self, state: &State, username: &str) -> Option<(String, String)> {
        let user = state.directory.users.get(username)?;
        let (id, csrf) = (random_token(), random_token());
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let theirs: Vec<([u8; 32], Instant)> = map
            .iter()
            .filter(|(_, s)| s.username == user.username)
            .map(|(k, s)| (*k, s.last_used))
            .collect();
        if theirs.len() >= MAX_SESSIONS_PER_USER {
            if let Some((oldest, _)) = theirs.iter().min_by_key(|(_, used)| *used) {
                map.remove(oldest);
            }
        }
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| live(s, now));
            if map.len() >= MAX_SESSIONS {
                if let Some(oldest) = map.iter().min_by_key(|(_, s)| s.last_used).map(|(k, _)| *k) {
                    map.remove(&oldest);
                }
            }
        }
        map.insert(
            key(&id),
            Session {
                username: user.username.clone(),
                created_seq: user.created_seq,
                credentials_seq: user.credentials_seq,
                csrf: csrf.clone(),
                signed_in: now,
                last_used: now,
            },
        );
        Some((id, csrf))
    }

    /// The session of cookie `id` if it is still valid against `state` (and mark it
    /// used); an invalid one is removed, so it can never come back.
    pub fn lookup(&self, id: &str, state: &State) -> Option<SessionInfo> {
        let k = key(id);
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let s = map.get_mut(&k)?;
        let bound = state
            .directory
            .users
            .get(s.username.as_str())
            .is_some_and(|u| {
                u.created_seq == s.created_seq
                    && u.credentials_seq == s.credentials_seq
                    && u.status == UserStatus::Enabled
                    // Set after sign-in: the session ends with it (REST API only).
                    && !u.disable_ui_access
                    // A session stands for a password sign-in: with basic authentication
                    // switched off, only admins' go on (as only admins may sign in).
                    && (state.directory.user_is_admin(u)
                        || crate::domain::settings::basic_authentication(state))
            });
        if !bound || !live(s, now) {
            map.remove(&k);
            return None;
        }
        s.last_used = now;
        Some(SessionInfo {
            username: s.username.clone(),
            csrf: s.csrf.clone(),
        })
    }

    /// End the session of cookie `id` (sign-out). True if there was one.
    pub fn end(&self, id: &str) -> bool {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key(id))
            .is_some()
    }

    /// Live sessions (for tests and metrics).
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn live(s: &Session, now: Instant) -> bool {
    now.duration_since(s.last_used) < IDLE && now.duration_since(s.signed_in) < ABSOLUTE
}

/// The console's files, compiled into the binary: `(name, content type, bytes)`.
pub const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/console.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/api.js"),
    ),
    (
        "pages.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/pages.js"),
    ),
    (
        "history.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/history.js"),
    ),
];

/// The one HTML page (every view is drawn into it by app.js).
pub const INDEX: &str = include_str!("assets/index.html");

pub fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, ct, b)| (*ct, *b))
}

//! Credentials -> principal.
//!
//! Today: HTTP Basic with a username and password. Passwords are argon2id hashes, which
//! cost ~18 ms to check by design; so a successful check is cached under a *keyed* blake3
//! of the credentials (the key is random per process, so the cache is useless to anyone
//! who reads memory dumps of another run) together with the user's `credentials_seq`.
//! Any password, status or expiry event bumps that position, and deleting the user
//! removes it, so a cached entry stops matching at once: no explicit invalidation races.
//!
//! Failed sign-ins are counted in memory; the threshold-th failure in a row writes a
//! `UserLocked` event (the lock itself is durable, the counter is not).

pub mod password;

use crate::domain::Command;
use crate::writer::{CommandContext, WriterHandle};
use base64::Engine;
use gatehouse_projections::State;
use gatehouse_schemas::UserStatus;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Principal {
    pub username: String,
    pub admin: bool,
    /// The password must be changed before anything else is allowed.
    pub password_expired: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("authentication is required")]
    Missing,
    #[error("invalid credentials")]
    Invalid,
    #[error("unsupported authorization scheme (use Basic)")]
    UnsupportedScheme,
    #[error("user `{0}` is locked after too many failed sign-ins; an admin must unlock it")]
    Locked(String),
    #[error("user `{0}` is disabled")]
    Disabled(String),
    #[error("the service is shutting down")]
    Unavailable,
}

struct CachedLogin {
    username: String,
    credentials_seq: u64,
    expires: Instant,
}

/// Above this many entries the cache is emptied rather than grown (a flood of distinct
/// valid credentials is not a workload worth optimising).
const MAX_CACHED: usize = 100_000;

pub struct Authenticator {
    key: [u8; 32],
    ttl: Duration,
    cache: Mutex<HashMap<[u8; 32], CachedLogin>>,
    failures: Mutex<HashMap<String, u32>>,
    lockout_threshold: u32,
    /// Password checks in progress, so that identical concurrent ones run once.
    inflight: Mutex<HashMap<[u8; 32], Arc<tokio::sync::OnceCell<bool>>>>,
}

impl Authenticator {
    pub fn new(ttl: Duration, lockout_threshold: u32) -> Authenticator {
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key).expect("the OS has randomness");
        Authenticator {
            key,
            ttl,
            cache: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            lockout_threshold,
            inflight: Mutex::new(HashMap::new()),
        }
    }

    fn cache_key(&self, username: &str, password: &str) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(&(username.len() as u64).to_le_bytes());
        h.update(username.as_bytes());
        h.update(password.as_bytes());
        *h.finalize().as_bytes()
    }

    /// Authenticate the `Authorization` header value.
    pub async fn authenticate(
        &self,
        header: Option<&str>,
        state: &Arc<RwLock<State>>,
        writer: &WriterHandle,
        request_id: &str,
    ) -> Result<Principal, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let (scheme, value) = header.split_once(' ').ok_or(AuthError::UnsupportedScheme)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(AuthError::UnsupportedScheme);
        }
        let decoded = base64::engine::general_purpose::STANDARD.decode(value.trim()).map_err(|_| AuthError::Invalid)?;
        let decoded = String::from_utf8(decoded).map_err(|_| AuthError::Invalid)?;
        let (username, password) = decoded.split_once(':').ok_or(AuthError::Invalid)?;
        let username = username.to_lowercase();
        self.password_login(&username, password, state, writer, request_id).await
    }

    async fn password_login(
        &self,
        username: &str,
        password: &str,
        state: &Arc<RwLock<State>>,
        writer: &WriterHandle,
        request_id: &str,
    ) -> Result<Principal, AuthError> {
        let (hash, status, credentials_seq) = {
            let s = state.read().unwrap_or_else(|p| p.into_inner());
            let user = s.directory.users.get(username).ok_or(AuthError::Invalid)?;
            (user.password_hash.clone(), user.status, user.credentials_seq)
        };
        if status == UserStatus::Locked {
            return Err(AuthError::Locked(username.into()));
        }
        let hash = hash.ok_or(AuthError::Invalid)?;
        let key = self.cache_key(username, password);
        let cached = !self.ttl.is_zero() && {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache.get(&key).is_some_and(|c| {
                c.username == username && c.credentials_seq == credentials_seq && c.expires > Instant::now()
            })
        };
        if !cached {
            let ok = self.verify_once(key, password, hash).await;
            if !ok {
                self.record_failure(username, writer, request_id).await?;
                return Err(AuthError::Invalid);
            }
            self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(username);
            if !self.ttl.is_zero() {
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
                cache.insert(
                    key,
                    CachedLogin { username: username.into(), credentials_seq, expires: Instant::now() + self.ttl },
                );
            }
        }
        // Read the user again: it may have changed while argon2 ran.
        let s = state.read().unwrap_or_else(|p| p.into_inner());
        let user = s.directory.users.get(username).ok_or(AuthError::Invalid)?;
        if user.credentials_seq != credentials_seq {
            return Err(AuthError::Invalid);
        }
        match user.status {
            UserStatus::Enabled => {}
            UserStatus::Locked => return Err(AuthError::Locked(username.into())),
            UserStatus::Disabled | UserStatus::Invited => return Err(AuthError::Disabled(username.into())),
        }
        Ok(Principal {
            username: user.username.clone(),
            admin: s.directory.is_admin(username),
            password_expired: user.password_expired,
        })
    }

    /// Run argon2 for these credentials once, however many requests carry them at the
    /// same moment: a fleet of CI jobs that start together (or a restart that empties the
    /// cache) would otherwise pay ~18 ms of CPU per request until the first one finishes.
    async fn verify_once(&self, key: [u8; 32], password: &str, hash: String) -> bool {
        let cell = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            inflight.entry(key).or_insert_with(|| Arc::new(tokio::sync::OnceCell::new())).clone()
        };
        let pw = password.to_string();
        let ok = *cell
            .get_or_init(|| async move {
                tokio::task::spawn_blocking(move || password::verify(&pw, &hash)).await.unwrap_or(false)
            })
            .await;
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if inflight.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            inflight.remove(&key);
        }
        ok
    }

    async fn record_failure(&self, username: &str, writer: &WriterHandle, request_id: &str) -> Result<(), AuthError> {
        let count = {
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            let n = failures.entry(username.to_string()).or_insert(0);
            *n += 1;
            *n
        };
        if count >= self.lockout_threshold {
            tracing::warn!(user = username, failures = count, "locking user after repeated failed sign-ins");
            let ctx = CommandContext { actor: "system".into(), request_id: request_id.into() };
            writer
                .submit(Command::LockUser { username: username.into() }, ctx)
                .await
                .map_err(|_| AuthError::Unavailable)?;
            self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(username);
        }
        Ok(())
    }

    /// An admin unlocked the user: its failure count starts again.
    pub fn forget_failures(&self, username: &str) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(username);
    }
}

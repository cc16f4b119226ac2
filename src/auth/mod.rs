//! Credentials -> principal.
//!
//! Today: HTTP Basic with a username and password. Passwords are argon2id hashes, which
//! cost ~18 ms to check by design; so a successful check is cached under a *keyed* blake3
//! of the credentials (the key is random per process, so the cache is useless to anyone
//! who reads memory dumps of another run) together with the user's `credentials_seq`.
//! Any password, status or expiry event bumps that position, and deleting the user
//! removes it, so a cached entry stops matching at once: no explicit invalidation races.
//!
//! Failed sign-ins are counted in memory; the threshold-th failure in a row (the user
//! lock policy in force: `domain::settings::lock_threshold`) writes a
//! `UserLocked` event (the lock itself is durable, the counter is not).

pub mod jwt;
pub mod password;

use crate::domain::{settings, Command};
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
    /// Set when the caller signed in with an access token.
    pub token: Option<TokenCredential>,
    /// Signed in with a Bintray-style access key (`<id>@<org>`): a *scoped* principal
    /// that reaches only what its entitlements allow (the authorize decision), nothing
    /// of the management API.
    pub access_key: bool,
}

impl Principal {
    /// Signed in as the user itself: a password, or a local token with the user scope
    /// (not a groups-only token, not a peer's token). Acting as oneself — changing one's
    /// password, minting, listing or revoking one's tokens — needs it.
    pub fn whole_identity(&self) -> bool {
        match &self.token {
            None => true,
            Some(t) => t.local && crate::scope::has(&t.scope, crate::scope::USER),
        }
    }
}

/// What a token-authenticated caller presented.
#[derive(Debug, Clone)]
pub struct TokenCredential {
    pub token_id: String,
    /// Issued by this server (rather than a trusted peer).
    pub local: bool,
    pub scope: String,
    /// A token its subject issued for itself: what its scope grants beyond the user's
    /// own rights lasts while the user holds them. With `issued_scope`, the scope as
    /// issued when `scope` is narrower now (a past decision judges it against the
    /// directory of then).
    pub self_issued: bool,
    pub issued_scope: Option<String>,
    /// The peer that issued it (`iss`), for a trusted peer's token; `None` for this
    /// server's own.
    pub issuer: Option<String>,
    /// When it was issued and until when it holds (seconds): `tokens/me` answers from
    /// them for a token the server keeps no record of (short-lived, not revocable).
    pub issued_at: u64,
    pub expires_at: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("authentication is required")]
    Missing,
    #[error("invalid credentials")]
    Invalid,
    #[error("unsupported authorization scheme (use Basic or Bearer)")]
    UnsupportedScheme,
    #[error("invalid token: {0}")]
    Token(String),
    /// A revocable token of this service, issued moments ago, whose record is not here:
    /// revoked, or (several nodes) issued on another node and not applied here yet. The
    /// caller catches up with the shared log and asks again before saying so.
    #[error("invalid token: the token is not known here (revoked, or issued on another node moments ago)")]
    NotYetHere,
    #[error("user `{0}` is locked after too many failed sign-ins; an admin must unlock it")]
    Locked(String),
    #[error("user `{0}` is disabled")]
    Disabled(String),
    #[error(
        "sign-in with a password is disabled for users other than admins; use an access token"
    )]
    BasicDisabled,
    #[error("access key refused: {0}")]
    AccessKey(String),
    #[error("the service is shutting down")]
    Unavailable,
    /// Too many failed sign-ins from this address or on this name; try again later.
    #[error("too many failed sign-ins; try again in {0} seconds")]
    Limited(u64),
    /// Too many password checks are waiting already.
    #[error("too many sign-ins are being checked; try again in a moment")]
    Busy,
    /// An LDAP directory that the sign-in needs cannot answer (unreachable, TLS, the
    /// manager's bind refused): not a wrong password, and nothing of it is cached.
    #[error("{0}")]
    Directory(String),
}

/// A JWT whose signature verified, with what every request needs already worked out.
struct VerifiedToken {
    claims: jwt::Claims,
    kid: String,
    revocable: bool,
    transient: bool,
    /// `created_seq` of the user the token was issued to (a re-created user of the same
    /// name is someone else).
    user_seq: Option<u64>,
    /// Issued by its subject for itself ([`own_scope`] applies).
    self_issued: bool,
}

/// What the directory said to one sign-in: who signed in (the setting's key and the
/// entry), nobody, or why it could not say.
type DirectoryOutcome =
    Result<Result<(String, crate::ldap::DirectoryUser), crate::ldap::Miss>, String>;

struct CachedLogin {
    username: String,
    credentials_seq: u64,
    /// For a directory sign-in, `Ldap::changed_seq` when it was checked (0 otherwise):
    /// changed LDAP settings check the directory again.
    ldap_seq: u64,
    expires: Instant,
}

/// Above this many entries the cache is emptied rather than grown (a flood of distinct
/// valid credentials is not a workload worth optimising).
const MAX_CACHED: usize = 100_000;

/// A token issued less than this long ago whose record is missing may have been issued
/// on another node that shares the log (see [`Authenticator::caught_up`]).
const FRESH_TOKEN_SECS: u64 = 60;
/// How long a request waits for this node to apply the shared log before it says so.
const CATCH_UP_WAIT: Duration = Duration::from_secs(2);

pub struct Authenticator {
    keys: Arc<crate::keys::KeyRing>,
    /// Verified JWT signatures by blake3 of the token. Only the signature check is cached:
    /// expiry, revocation and the subject are checked on every request, so a revoked token
    /// fails at once.
    tokens: Mutex<HashMap<[u8; 32], Arc<VerifiedToken>>>,
    key: [u8; 32],
    ttl: Duration,
    cache: Mutex<HashMap<[u8; 32], CachedLogin>>,
    failures: Mutex<HashMap<String, u32>>,
    /// The configured `lockout-threshold`; a user lock policy set at run time replaces it.
    lockout_threshold: u32,
    /// Password checks in progress, so that identical concurrent ones run once.
    inflight: Mutex<HashMap<[u8; 32], Arc<tokio::sync::OnceCell<bool>>>>,
    /// Directory sign-ins in progress, likewise (the outcome is shared only with the
    /// requests that waited for it, then dropped: nothing of it is cached).
    directory_inflight: Mutex<HashMap<[u8; 32], Arc<tokio::sync::OnceCell<DirectoryOutcome>>>>,
    /// Outcomes of access keys' existence checks: key name -> (the key record's
    /// `updated_seq`, when asked, answer). Kept for the key's `cache_for_secs`.
    existence: Mutex<HashMap<String, (u64, Instant, bool)>>,
    ops: Operations,
    /// Opens sealed LDAP manager passwords and seals the e-mail of users a directory
    /// sign-in creates (unset in tools that build no server: no LDAP sign-in then).
    personal: Option<Arc<crate::personal::PersonalKeys>>,
}

/// What issue 16 added around password checks: metrics, failed-sign-in limits, the
/// argon2 queue and the dummy hash that unknown names are checked against.
struct Operations {
    metrics: Arc<crate::metrics::Metrics>,
    limits: crate::limits::SignInLimits,
    lockout_from: crate::config::LockoutFrom,
    /// Password checks that may run at once (argon2 is ~18 ms of one core each).
    slots: tokio::sync::Semaphore,
    /// Checks running or waiting; beyond `slots + queue`, refused with 503.
    waiting: std::sync::atomic::AtomicUsize,
    queue: usize,
    /// The cache-hit counters of `metrics` for passwords and tokens, taken from their
    /// family on the first hit: every authenticated request counts one, and asking the
    /// family hashes the label each time.
    password_hits: std::sync::OnceLock<prometheus_client::metrics::counter::Counter>,
    token_hits: std::sync::OnceLock<prometheus_client::metrics::counter::Counter>,
}

impl Operations {
    fn new(config: &crate::config::Config, metrics: Arc<crate::metrics::Metrics>) -> Self {
        let rule = |burst, per_minute| crate::limits::BucketRule { burst, per_minute };
        // Made now rather than on the first unknown name (which would pay for it twice).
        let _ = password::dummy_hash();
        Operations {
            metrics,
            limits: crate::limits::SignInLimits::new(
                rule(
                    config.signin_address_burst,
                    config.signin_address_per_minute,
                ),
                rule(config.signin_user_burst, config.signin_user_per_minute),
                Duration::from_secs(config.familiar_address_days.saturating_mul(86_400)),
            ),
            lockout_from: config.lockout_from,
            slots: tokio::sync::Semaphore::new(config.argon2_slots()),
            waiting: Default::default(),
            queue: config.argon2_slots() + config.argon2_queue,
            password_hits: Default::default(),
            token_hits: Default::default(),
        }
    }
}

/// The key under which simultaneous checks of the same credentials share one run: the
/// credentials' cache key bound to the version of what they are checked against
/// (`parts`). Returned as a value: a blake3 `Hasher` is 1.9 KiB, and one kept alive
/// across the check's await was most of every authentication's future (6 KiB, copied
/// more than once a request).
fn inflight_key(cache_key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(cache_key);
    for p in parts {
        h.update(p);
    }
    *h.finalize().as_bytes()
}

/// How far ahead of this server's clock a peer's may run: a token it issued a moment
/// ago (`iat`), or valid from a moment from now (`nbf`), is taken.
const CLOCK_SKEW_SECS: u64 = 60;

impl Authenticator {
    pub fn new(
        keys: Arc<crate::keys::KeyRing>,
        ttl: Duration,
        lockout_threshold: u32,
    ) -> Authenticator {
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key).expect("the OS has randomness");
        Authenticator {
            keys,
            tokens: Mutex::new(HashMap::new()),
            key,
            ttl,
            cache: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            lockout_threshold,
            inflight: Mutex::new(HashMap::new()),
            directory_inflight: Mutex::new(HashMap::new()),
            existence: Mutex::new(HashMap::new()),
            ops: Operations::new(
                &crate::config::Config::default(),
                Arc::new(crate::metrics::Metrics::new()),
            ),
            personal: None,
        }
    }

    /// The personal-data keys (LDAP manager passwords, e-mails of directory users).
    pub fn with_personal(mut self, personal: Arc<crate::personal::PersonalKeys>) -> Self {
        self.personal = Some(personal);
        self
    }

    /// Limits, queue and metrics as configured (the defaults otherwise).
    pub fn with_operations(
        mut self,
        config: &crate::config::Config,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        self.ops = Operations::new(config, metrics);
        self
    }

    /// Keep the addresses users sign in from in `data_dir` (see
    /// [`crate::limits::SignInLimits::remember_in`]): familiar after a restart too.
    pub fn remember_familiar_in(&self, data_dir: &std::path::Path) -> std::io::Result<()> {
        self.ops.limits.remember_in(data_dir)
    }

    /// The metrics this authenticator counts into.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.ops.metrics
    }

    /// Whether these credentials were verified for `username` at `credentials_seq` (and,
    /// for a directory sign-in, under these LDAP settings) and are still fresh. A hit
    /// also forgets the user's failures in a row, as a successful check does.
    fn in_cache(
        &self,
        key: &[u8; 32],
        username: &str,
        credentials_seq: u64,
        ldap_seq: Option<u64>,
        kind: &'static str,
    ) -> bool {
        let hit = !self.ttl.is_zero() && {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache.get(key).is_some_and(|c| {
                c.username == username
                    && c.credentials_seq == credentials_seq
                    && ldap_seq.is_none_or(|l| c.ldap_seq == l)
                    && c.expires > Instant::now()
            })
        };
        if hit {
            self.cache_hit(kind);
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            if !failures.is_empty() {
                failures.remove(username);
            }
        }
        hit
    }

    fn cache_key(&self, username: &str, password: &str) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(&(username.len() as u64).to_le_bytes());
        h.update(username.as_bytes());
        h.update(password.as_bytes());
        *h.finalize().as_bytes()
    }

    /// Authenticate the `Authorization` header value. `client_ip` is the caller's
    /// address as far as it can be trusted (access keys may be limited by CIDR).
    pub async fn authenticate(
        &self,
        header: Option<&str>,
        state: &Arc<RwLock<State>>,
        writer: &WriterHandle,
        request_id: &str,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<Principal, AuthError> {
        let Some(header) = header else {
            return anonymous(state);
        };
        let (scheme, value) = header.split_once(' ').ok_or(AuthError::UnsupportedScheme)?;
        if scheme.eq_ignore_ascii_case("bearer") {
            return self
                .caught_up(writer, || self.token_login(value.trim(), state, None))
                .await;
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(AuthError::UnsupportedScheme);
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|_| AuthError::Invalid)?;
        let decoded = String::from_utf8(decoded).map_err(|_| AuthError::Invalid)?;
        let (username, password) = decoded.split_once(':').ok_or(AuthError::Invalid)?;
        let username = username.to_lowercase();
        // A token used as the password (seed 003): `user:<access or reference token>`.
        let token_shaped = looks_like_token(password);
        if token_shaped {
            let login = self
                .caught_up(writer, || {
                    self.token_login(password, state, Some(&username))
                })
                .await;
            match login {
                Ok(p) => return Ok(p),
                // 128 url-safe characters may also be a generated password: if no
                // reference token has this hash, try it as one. One that has (expired)
                // is told as such, not tried as a password.
                Err(AuthError::Token(_))
                    if !password.contains('.') && !known_reference(state, password) => {}
                Err(e) => return Err(e),
            }
        }
        // `<id>@<org>` that is not a user's name: an access key (the domain keeps the
        // two namespaces apart).
        if username.contains('@') {
            let is_key = {
                let s = crate::writer::read_models(state);
                !s.directory.users.contains_key(username.as_str())
                    && s.access_keys.keys.contains_key(&username)
            };
            if is_key {
                // Boxed, as the other rare paths are: see `password_login`.
                return Box::pin(self.access_key_login(&username, password, state, client_ip))
                    .await;
            }
        }
        self.password_login(&username, password, state, writer, request_id, client_ip)
            .await
            .map_err(|e| match e {
                // Most likely a revoked or forgotten reference token, not a guess.
                AuthError::Invalid if token_shaped && !password.contains('.') => AuthError::Token(
                    "not a live reference token (unknown, revoked or expired), nor the password"
                        .into(),
                ),
                e => e,
            })
    }

    /// The console's sign-in form: a user name and password, checked exactly as Basic
    /// authentication checks them (limits, lock, basic-authentication setting, status).
    pub async fn password_sign_in(
        &self,
        username: &str,
        password: &str,
        state: &Arc<RwLock<State>>,
        writer: &WriterHandle,
        request_id: &str,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<Principal, AuthError> {
        let username = username.to_lowercase();
        self.password_login(&username, password, state, writer, request_id, client_ip)
            .await
    }

    /// The principal of a console session's user as it is now (the session itself was
    /// checked against the user's `credentials_seq` and status already).
    pub fn session_principal(state: &State, username: &str) -> Result<Principal, AuthError> {
        let user = state
            .directory
            .users
            .get(username)
            .ok_or(AuthError::Invalid)?;
        match user.status {
            UserStatus::Enabled => {}
            UserStatus::Locked => return Err(AuthError::Locked(username.into())),
            _ => return Err(AuthError::Disabled(username.into())),
        }
        Ok(Principal {
            username: user.username.clone(),
            admin: state.directory.is_admin(username),
            password_expired: user.password_expired
                || state.settings.password_too_old(user, unix_millis()),
            token: None,
            access_key: false,
        })
    }

    /// Sign in with an access key: password (argon2id, cached like users' passwords),
    /// then expiry, client address and the existence check. The reasons are told only
    /// to a caller that knew the password.
    async fn access_key_login(
        &self,
        name: &str,
        password: &str,
        state: &Arc<RwLock<State>>,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<Principal, AuthError> {
        let record = {
            let s = crate::writer::read_models(state);
            s.access_keys
                .keys
                .get(name)
                .cloned()
                .ok_or(AuthError::Invalid)?
        };
        let seq = record.updated_seq;
        let key = record.key.clone();
        let cache_key = self.cache_key(name, password);
        let cached = !self.ttl.is_zero() && {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache.get(&cache_key).is_some_and(|c| {
                c.username == name && c.credentials_seq == seq && c.expires > Instant::now()
            })
        };
        if cached {
            self.cache_hit("password");
        } else {
            self.cache_miss("password");
            let reservation = self.check_limits(name, client_ip, false).await?;
            let inflight_key = inflight_key(&cache_key, &[&seq.to_le_bytes()]);
            let ok = self
                .verify_once(inflight_key, password, key.password_hash.clone())
                .await?;
            if !ok {
                self.ops.metrics.signins_failed.inc();
                reservation.failed();
                return Err(AuthError::Invalid);
            }
            if !self.ttl.is_zero() {
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
                cache.insert(
                    cache_key,
                    CachedLogin {
                        username: name.into(),
                        credentials_seq: seq,
                        ldap_seq: 0,
                        expires: Instant::now() + self.ttl,
                    },
                );
            }
        }
        if key.expiry_ms.is_some_and(|e| e <= unix_millis()) {
            return Err(AuthError::AccessKey("the access key has expired".into()));
        }
        if !key.allowed_cidrs.is_empty() || !key.blocked_cidrs.is_empty() {
            let ip = client_ip
                .ok_or_else(|| AuthError::AccessKey("the client address is unknown".into()))?;
            if !key.allowed_cidrs.is_empty() && !cidrs_contain(&key.allowed_cidrs, ip) {
                return Err(AuthError::AccessKey(format!(
                    "client address {ip} is not in the key's allowed CIDRs"
                )));
            }
            if cidrs_contain(&key.blocked_cidrs, ip) {
                return Err(AuthError::AccessKey(format!(
                    "client address {ip} is in the key's blocked CIDRs"
                )));
            }
        }
        if let Some(check) = &key.existence_check {
            if !self.exists(name, seq, check).await {
                return Err(AuthError::AccessKey(
                    "the existence check did not confirm the key's holder".into(),
                ));
            }
        }
        // The key may have changed (or gone) while argon2 ran.
        let s = crate::writer::read_models(state);
        if s.access_keys.keys.get(name).map(|r| r.updated_seq) != Some(seq) {
            return Err(AuthError::Invalid);
        }
        Ok(Principal {
            username: name.into(),
            admin: false,
            password_expired: false,
            token: None,
            access_key: true,
        })
    }

    /// Ask the key's existence-check URL (GET; any 2xx means the holder still exists),
    /// or remember the last answer for `cache_for_secs`. An unreachable URL counts as
    /// "no": a key must not outlive its holder because the check is down.
    async fn exists(
        &self,
        name: &str,
        seq: u64,
        check: &gatehouse_schemas::ExistenceCheck,
    ) -> bool {
        let ttl = Duration::from_secs(check.cache_for_secs);
        if let Some((s, at, ok)) = self
            .existence
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            if *s == seq && at.elapsed() < ttl {
                return *ok;
            }
        }
        let url = check.url.clone();
        let ok = tokio::task::spawn_blocking(move || {
            let agent = crate::tls::agent()
                .timeout(Duration::from_secs(5))
                .redirects(0)
                .build();
            match agent.get(&url).call() {
                Ok(r) => (200..300).contains(&r.status()),
                Err(e) => {
                    tracing::info!(error = %e, "access key existence check said no");
                    false
                }
            }
        })
        .await
        .unwrap_or(false);
        let mut cache = self.existence.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(name.to_string(), (seq, Instant::now(), ok));
        ok
    }

    /// `login`, asked again after catching up with the shared log while it says the
    /// token may only not be applied here yet (a token made on another node a moment ago
    /// was refused as revoked, one time in seven); on a single node, or once caught up,
    /// such a token was revoked.
    async fn caught_up(
        &self,
        writer: &WriterHandle,
        login: impl Fn() -> Result<Principal, AuthError>,
    ) -> Result<Principal, AuthError> {
        let revoked = || Err(AuthError::Token("the token has been revoked".into()));
        match login() {
            Err(AuthError::NotYetHere) if writer.is_shared() => {}
            Err(AuthError::NotYetHere) => return revoked(),
            other => return other,
        }
        // Two catch-ups that read the shared log to its end, the second begun after the
        // first ended: then everything committed before this request is applied here.
        // Waiting for a change instead, a token revoked a while ago (nothing new to
        // apply) was refused only at the deadline, 2 s on every request.
        let mut rounds = writer.caught_up_rounds();
        let start = *rounds.borrow_and_update();
        let deadline = tokio::time::Instant::now() + CATCH_UP_WAIT;
        loop {
            writer.nudge();
            let changed = tokio::time::timeout_at(deadline, rounds.changed()).await;
            let done = *rounds.borrow_and_update() >= start + 2;
            match login() {
                Err(AuthError::NotYetHere) if matches!(changed, Ok(Ok(()))) && !done => continue,
                Err(AuthError::NotYetHere) => return revoked(),
                other => return other,
            }
        }
    }

    /// Authenticate a JWT or a 128-character reference token.
    pub fn token_login(
        &self,
        token: &str,
        state: &Arc<RwLock<State>>,
        expected_user: Option<&str>,
    ) -> Result<Principal, AuthError> {
        let now = unix_secs();
        let s = crate::writer::read_models(state);
        let service_id = s.service_id.clone().unwrap_or_default();
        let (subject, transient_ok, scope, token_id, local, user_seq, self_issued, times, issuer) =
            if !token.contains('.') {
                let hash = blake3::hash(token.as_bytes()).to_hex().to_string();
                let record = s
                    .tokens
                    .by_reference_hash
                    .get(&hash)
                    .and_then(|id| s.tokens.by_id.get(id.as_str()))
                    .ok_or_else(|| AuthError::Token("unknown or revoked reference token".into()))?;
                if record.expires_at.is_some_and(|e| e <= now) {
                    return Err(AuthError::Token("the token has expired".into()));
                }
                // A reference token stands for its access token: it ends with the key that
                // signed that one (a certificate reset retires every earlier key, seed 003).
                if !self.keys.still_trusted(&s, &record.kid) {
                    return Err(AuthError::Token(
                        "the token's signing key was retired (the certificate was reset)".into(),
                    ));
                }
                // Its audience as the access token's: one meant for another service was
                // refused as a JWT and taken as a reference token.
                if !record.audience.is_empty() && !audience_matches(&record.audience, &service_id) {
                    return Err(AuthError::Token(format!(
                        "the token is not meant for `{service_id}`"
                    )));
                }
                (
                    record.subject.clone(),
                    record.transient,
                    record.scope.clone(),
                    record.token_id.clone(),
                    true,
                    None,
                    record.self_issued,
                    (record.issued_at, record.expires_at),
                    None,
                )
            } else {
                let verified = self.verified_token(token, &s)?;
                let claims = &verified.claims;
                if claims.exp.is_some_and(|e| e <= now) {
                    return Err(AuthError::Token("the token has expired".into()));
                }
                // RFC 7519 §4.1.5: not before `nbf`; and a token issued in the future is
                // no token yet either (a peer's clock may run a little ahead: a minute).
                if claims.nbf.is_some_and(|n| n > now + CLOCK_SKEW_SECS) {
                    return Err(AuthError::Token(
                        "the token is not valid yet (`nbf`)".into(),
                    ));
                }
                // A peer's only: this server's own `iat` comes from its own clock, and a
                // clock stepped back (or nodes of one shared log a little apart) must not
                // refuse tokens just issued.
                if claims.iss != service_id && claims.iat > now + CLOCK_SKEW_SECS {
                    return Err(AuthError::Token(
                        "the token was issued in the future (`iat`)".into(),
                    ));
                }
                if !audience_matches(&claims.aud, &service_id) {
                    return Err(AuthError::Token(format!(
                        "the token is not meant for `{service_id}`"
                    )));
                }
                let local = claims.iss == service_id;
                // A token this server issued is signed with one of its own keys (one
                // retired by a reset verifies only while trusted again): a trusted peer's
                // key signing a token that names this server as issuer passed for a local
                // token (it then minted tokens here, which peers' are refused).
                if local && !s.keys.signing.contains_key(&verified.kid) {
                    return Err(AuthError::Token(format!(
                        "the token names `{service_id}` as its issuer but was not signed with its keys"
                    )));
                }
                let record = s.tokens.by_id.get(claims.jti.as_str());
                if verified.revocable {
                    // A peer's revocable token works here only while its record, federated
                    // from the issuer, is here: its revocation there removes it here.
                    let federated =
                        s.federation.token_issuers.get(&claims.jti) == Some(&claims.iss);
                    if !local && !federated {
                        return Err(AuthError::Token(
                        "revocable tokens are only valid on the server that issued them (and its federation targets)".into(),
                    ));
                    }
                    if record.is_none() {
                        if local && claims.iat.saturating_add(FRESH_TOKEN_SECS) >= now {
                            return Err(AuthError::NotYetHere);
                        }
                        return Err(AuthError::Token("the token has been revoked".into()));
                    }
                }
                let subject = claims
                    .username()
                    .ok_or_else(|| AuthError::Token("the token has no user subject".into()))?
                    .to_string();
                // A peer's subject is held to the rules of a name here: a line break or a
                // right-to-left override reached the audit trail as an actor.
                if !local && crate::domain::normalize_username("sub", &subject).is_err() {
                    return Err(AuthError::Token(
                        "the token's subject is not a user name this server takes".into(),
                    ));
                }
                // Local tokens name transient subjects in their record or extension; a peer's
                // subject that is unknown here is transient by nature.
                let transient_ok =
                    !local || record.is_some_and(|r| r.transient) || verified.transient;
                (
                    subject,
                    transient_ok,
                    claims.scp.clone(),
                    claims.jti.clone(),
                    local,
                    verified.user_seq,
                    // A peer's too: its user record here (replicated) says what it holds now.
                    verified.self_issued || record.is_some_and(|r| r.self_issued),
                    (claims.iat, claims.exp),
                    (!local).then(|| claims.iss.clone()),
                )
            };
        if scope.starts_with(crate::tokens::PAIRING_SCOPE_PREFIX) {
            return Err(AuthError::Token(
                "a pairing token can only be used to pair".into(),
            ));
        }
        if let Some(expected) = expected_user {
            if expected != subject {
                return Err(AuthError::Invalid);
            }
        }
        let mut password_expired = false;
        let mut scope = scope;
        let mut issued_scope = None;
        let admin = match s.directory.users.get(subject.as_str()) {
            Some(user) => {
                // A token made for an identity that was no user here stays that identity's:
                // a user created later by that name does not take it over.
                if local && transient_ok {
                    return Err(AuthError::Token(format!(
                        "the token was issued to a transient identity `{subject}`; a user of that name was created since"
                    )));
                }
                if local && user_seq.is_some_and(|n| n != user.created_seq) {
                    return Err(AuthError::Token(format!(
                        "the token was issued to an earlier user named `{subject}`"
                    )));
                }
                // A peer's token for this user too: the user record (replicated) says
                // the password expired, and "an expired password also stops the user's
                // tokens" holds for every token that names the user here.
                password_expired = user.password_expired;
                match user.status {
                    UserStatus::Enabled => {}
                    UserStatus::Locked => return Err(AuthError::Locked(subject)),
                    _ => return Err(AuthError::Disabled(subject)),
                }
                if self_issued {
                    if let std::borrow::Cow::Owned(now) = own_scope(&scope, &s.directory, user) {
                        issued_scope = Some(std::mem::replace(&mut scope, now));
                    }
                }
                scope_grants_admin(&scope, &s.directory, || s.directory.user_is_admin(user))
            }
            // A peer's token for a user deleted (or renamed) here after it was issued:
            // that user's, not a transient identity's (an admin deleted at its own site
            // stayed admin at every peer with a short-lived token, and could create
            // users there).
            None if !local && deleted_since(&s, &subject, times.0) => {
                return Err(AuthError::Token(format!(
                    "user `{subject}` no longer exists"
                )))
            }
            None if transient_ok => scope_is_admin(&scope, &s.directory, None),
            None => {
                return Err(AuthError::Token(format!(
                    "user `{subject}` no longer exists"
                )))
            }
        };
        Ok(Principal {
            username: subject,
            admin,
            password_expired,
            token: Some(TokenCredential {
                token_id,
                local,
                scope,
                self_issued,
                issued_scope,
                issuer,
                issued_at: times.0,
                expires_at: times.1,
            }),
            access_key: false,
        })
    }

    /// Verify a JWT's signature, from the cache when this exact token was seen before.
    fn verified_token(&self, token: &str, s: &State) -> Result<Arc<VerifiedToken>, AuthError> {
        let key = *blake3::hash(token.as_bytes()).as_bytes();
        let cached = self
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        if let Some(v) = cached {
            // The key that signed it must still be trusted (a removed peer key stops it).
            if self.keys.still_trusted(s, &v.kid) {
                self.cache_hit("token");
                return Ok(v);
            }
        }
        self.cache_miss("token");
        let (claims, kid) = verify_token_kid(&self.keys, s, token)?;
        let user_seq = claims
            .ext
            .as_deref()
            .and_then(|e| serde_json::from_str::<serde_json::Value>(e).ok())
            .and_then(|v| v["user_seq"].as_str().and_then(|n| n.parse().ok()));
        let verified = Arc::new(VerifiedToken {
            revocable: claims.revocable(),
            transient: ext_flag(&claims, "transient"),
            self_issued: ext_flag(&claims, "self_issued"),
            user_seq,
            claims,
            kid,
        });
        let mut cache = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(key, verified.clone());
        Ok(verified)
    }

    #[allow(clippy::too_many_arguments)]
    async fn password_login(
        &self,
        username: &str,
        password: &str,
        state: &Arc<RwLock<State>>,
        writer: &WriterHandle,
        request_id: &str,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<Principal, AuthError> {
        let result = self
            .check_password(username, password, state, writer, request_id, client_ip)
            .await;
        // Basic authentication off: an admin's wrong password is refused in the words a
        // non-admin's is ("invalid credentials" for admins alone told anyone which names
        // are admins, the only ones still worth guessing a password for).
        if matches!(result, Err(AuthError::Invalid)) {
            let basic = settings::basic_authentication(&crate::writer::read_models(state));
            if !basic {
                return Err(AuthError::BasicDisabled);
            }
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn check_password(
        &self,
        username: &str,
        password: &str,
        state: &Arc<RwLock<State>>,
        writer: &WriterHandle,
        request_id: &str,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<Principal, AuthError> {
        // An unknown name (or one without a password) is checked against a dummy hash:
        // it costs the same argon2 work and goes through the same limits as a known one,
        // so neither the time nor the answer tells which names exist.
        // The built-in anonymous user never signs in with a password (a name everyone
        // knows: refusing it at once tells nothing).
        if username == gatehouse_projections::ANONYMOUS {
            self.ops.metrics.signins_failed.inc();
            return Err(AuthError::Invalid);
        }
        let key = self.cache_key(username, password);
        let (hash, status, credentials_seq, lock_threshold, directory) = {
            let s = crate::writer::read_models(state);
            // Basic authentication switched off: only admins still sign in with a
            // password (so that no one is locked out), and it is said before the user
            // is looked up, so it tells nothing about who exists.
            if !settings::basic_authentication(&s) && !s.directory.is_admin(username) {
                return Err(AuthError::BasicDisabled);
            }
            let threshold = settings::lock_threshold(&s, self.lockout_threshold);
            // Users of realm `ldap` sign in against the directory, and so do unknown
            // names while an LDAP setting is enabled (the first sign-in creates them).
            match s.directory.users.get(username) {
                Some(user) => {
                    let directory = user.realm == crate::domain::ldap::LDAP_REALM;
                    // Checked before: the principal from this one look-up of the user, as
                    // the state is now (no password hash copied, no second look-up).
                    if !directory
                        && user.password_hash.is_some()
                        && self.in_cache(&key, username, user.credentials_seq, None, "password")
                    {
                        return signed_in(&s, user);
                    }
                    (
                        user.password_hash.clone(),
                        Some(user.status),
                        user.credentials_seq,
                        threshold,
                        directory,
                    )
                }
                // A password shaped like a reference token (a revoked one, most likely)
                // is not sent to the directory as a bind password: a dead credential of
                // this server went to the LDAP server in clear.
                None => (
                    None,
                    None,
                    0,
                    threshold,
                    s.settings.ldap.any_enabled() && !looks_like_token(password),
                ),
            }
        };
        // The directory, argon2 and the lockout's write are boxed: taken on a cache miss
        // or a failure only, their futures inline made every authentication's future about
        // 6 KiB, copied more than once a request (`memmove` under `Caller::from_request`
        // in a perf profile of a group create).
        if directory {
            return Box::pin(self.directory_login(
                username,
                password,
                state,
                writer,
                request_id,
                client_ip,
                (status, lock_threshold),
            ))
            .await;
        }
        // A miss (a hit answered above): the password is checked, then cached.
        {
            self.cache_miss("password");
            let familiar = self.ops.limits.is_familiar(username, client_ip);
            let reservation = self.check_limits(username, client_ip, familiar).await?;
            // The in-flight check is for this password *and this hash*: a request that saw
            // a newer password must never share the result of a check of an older one.
            let inflight_key = inflight_key(
                &key,
                &[&credentials_seq.to_le_bytes(), &[hash.is_some() as u8]],
            );
            let known = hash.is_some();
            let checked = hash.unwrap_or_else(|| password::dummy_hash().to_string());
            let ok = Box::pin(self.verify_once(inflight_key, password, checked)).await? && known;
            if !ok {
                self.ops.metrics.signins_failed.inc();
                reservation.failed();
                // Only an enabled user can be locked: locking a disabled one would turn
                // a later unlock into an enable. A password shaped like a reference token
                // is a revoked or forgotten token far more likely than a guess (a CI job
                // that kept one locked its user out): it does not count towards the lock
                // (the rate limits above still apply; guessing never sends 128 random
                // characters).
                let counts = (familiar || self.ops.lockout_from == crate::config::LockoutFrom::Any)
                    && !looks_like_token(password);
                if let (Some(UserStatus::Enabled), Some(threshold), true) =
                    (status, lock_threshold, counts)
                {
                    Box::pin(self.record_failure(username, threshold, writer, request_id)).await?;
                }
                return Err(AuthError::Invalid);
            }
            self.ops.limits.signed_in(username, client_ip);
            self.failures
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(username);
            if !self.ttl.is_zero() {
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
                cache.insert(
                    key,
                    CachedLogin {
                        username: username.into(),
                        credentials_seq,
                        ldap_seq: 0,
                        expires: Instant::now() + self.ttl,
                    },
                );
            }
        }
        // Read the user again: it may have changed while argon2 ran. Locked and disabled
        // are told only now, to a caller that knew the password.
        let s = crate::writer::read_models(state);
        let user = s.directory.users.get(username).ok_or(AuthError::Invalid)?;
        if user.credentials_seq != credentials_seq {
            return Err(AuthError::Invalid);
        }
        signed_in(&s, user)
    }

    /// Sign in against the LDAP directory (see `crate::ldap`). Verified credentials are
    /// cached as passwords are, under the user's `credentials_seq` and the LDAP
    /// settings' position; a failure or a directory that cannot answer never is.
    #[allow(clippy::too_many_arguments)]
    async fn directory_login(
        &self,
        username: &str,
        password: &str,
        state: &Arc<RwLock<State>>,
        writer: &WriterHandle,
        request_id: &str,
        client_ip: Option<std::net::IpAddr>,
        (status, lock_threshold): (Option<UserStatus>, Option<u32>),
    ) -> Result<Principal, AuthError> {
        // An empty password is refused before the directory hears of it: LDAP takes a
        // DN with an empty password as an unauthenticated bind, which "succeeds".
        if password.is_empty() {
            self.ops.metrics.signins_failed.inc();
            return Err(AuthError::Invalid);
        }
        let key = self.cache_key(username, password);
        let (user_seq, ldap_seq) = {
            let s = crate::writer::read_models(state);
            (
                s.directory.users.get(username).map(|u| u.credentials_seq),
                s.settings.ldap.changed_seq,
            )
        };
        let cached =
            user_seq.is_some_and(|seq| self.in_cache(&key, username, seq, Some(ldap_seq), "ldap"));
        if !cached {
            self.cache_miss("ldap");
            // No enabled setting can check the password (an admin disabled the directory
            // for maintenance, or deleted it): refused, but not counted against the user.
            // Counted, every CI job that retried was locked, and stayed locked when the
            // directory came back.
            if !state
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .settings
                .ldap
                .any_enabled()
            {
                self.ops.metrics.signins_failed.inc();
                return Err(AuthError::Invalid);
            }
            let familiar = self.ops.limits.is_familiar(username, client_ip);
            let reservation = self.check_limits(username, client_ip, familiar).await?;
            let ldap = {
                let s = crate::writer::read_models(state);
                s.settings.ldap.clone()
            };
            let found = self
                .directory_once(
                    inflight_key(&key, &[&ldap_seq.to_le_bytes()]),
                    &ldap,
                    username,
                    password,
                )
                .await?
                .map_err(AuthError::Directory)?;
            let (setting, found) = match found {
                Ok(found) => found,
                Err(miss) => {
                    self.ops.metrics.signins_failed.inc();
                    reservation.failed();
                    // A name no enabled directory knows (its setting was disabled while
                    // another stays enabled): the password was never checked, so it is
                    // not counted against the user (right passwords locked it).
                    let counts = miss == crate::ldap::Miss::Refused
                        && (familiar || self.ops.lockout_from == crate::config::LockoutFrom::Any);
                    if let (Some(UserStatus::Enabled), Some(threshold), true) =
                        (status, lock_threshold, counts)
                    {
                        self.record_failure(username, threshold, writer, request_id)
                            .await?;
                    }
                    return Err(AuthError::Invalid);
                }
            };
            // Disabled or locked here stays refused (below), and nothing the directory
            // said is written for such a user: its groups and e-mail changed on a refused
            // sign-in, with the refused user as the actor.
            match status {
                Some(UserStatus::Locked) => return Err(AuthError::Locked(username.into())),
                Some(UserStatus::Disabled | UserStatus::Invited) => {
                    return Err(AuthError::Disabled(username.into()))
                }
                _ => {}
            }
            // The log learns what the directory said: the user on its first sign-in (its
            // e-mail sealed like any personal data), its directory groups every time, and
            // its e-mail when the directory's differs from the one kept here.
            let stored = {
                let s = crate::writer::read_models(state);
                s.directory.users.get(username).map(|u| u.email.clone())
            };
            // Whether the directory said anything about e-mails: a setting without
            // `email_attribute`, or an entry the user could not read (an ACL, no
            // manager), says nothing, and one kept here (an admin's) stays.
            let reads_email = found.email_read
                && ldap
                    .settings
                    .get(&setting)
                    .and_then(|s| s.email_attribute.as_deref())
                    .is_some_and(|a| !a.trim().is_empty());
            let email = match (found.email, &self.personal) {
                (Some(e), Some(keys))
                    if !e.is_empty() && crate::domain::validate_email(&e).is_ok() =>
                {
                    let current = stored
                        .as_ref()
                        .map(|m| m.as_deref().and_then(|m| keys.decrypt(m)));
                    match current {
                        Some(Some(c)) if c == e => None,
                        _ => {
                            // The user's own key when it has one (a purge must erase this
                            // too), else a new one.
                            let key = stored
                                .flatten()
                                .as_deref()
                                .and_then(crate::personal::key_id)
                                .map(str::to_string);
                            let keys = keys.clone();
                            tokio::task::spawn_blocking(move || {
                                let id = match key {
                                    Some(id) => id,
                                    None => keys.create().ok()?,
                                };
                                keys.encrypt(&id, &e).ok()
                            })
                            .await
                            .ok()
                            .flatten()
                        }
                    }
                }
                // The directory has no e-mail for the user any more (or none that is
                // one): the one kept here goes too (`Some("")` clears it). It stayed, and
                // notifications went to an address the directory had dropped.
                (e, _)
                    if reads_email
                        && !e.as_deref().is_some_and(|e| {
                            !e.is_empty() && crate::domain::validate_email(e).is_ok()
                        }) =>
                {
                    match &stored {
                        Some(Some(_)) => Some(String::new()),
                        _ => None,
                    }
                }
                _ => None,
            };
            let command = Command::LdapSignedIn(crate::domain::ldap::LdapSignIn {
                username: username.to_string(),
                email,
                auto_create: ldap
                    .settings
                    .get(&setting)
                    .is_some_and(|s| s.auto_create_user),
                groups: found.groups,
            });
            let ctx = CommandContext {
                actor: username.into(),
                request_id: request_id.into(),
            };
            match writer.submit(command, ctx).await {
                Ok(_) => {}
                Err(
                    crate::writer::SubmitError::Unavailable
                    | crate::writer::SubmitError::SharedLogUnavailable
                    | crate::writer::SubmitError::SharedLogUnreachable
                    | crate::writer::SubmitError::DiskFull,
                ) => return Err(AuthError::Unavailable),
                Err(crate::writer::SubmitError::Domain(e)) => {
                    tracing::info!(user = username, error = %e, "LDAP sign-in not taken");
                    return Err(AuthError::Invalid);
                }
            }
            self.ops.limits.signed_in(username, client_ip);
            self.failures
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(username);
            let seq = state
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .directory
                .users
                .get(username)
                .map(|u| u.credentials_seq);
            if let (Some(credentials_seq), false) = (seq, self.ttl.is_zero()) {
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
                cache.insert(
                    key,
                    CachedLogin {
                        username: username.into(),
                        credentials_seq,
                        ldap_seq,
                        expires: Instant::now() + self.ttl,
                    },
                );
            }
        }
        // Disabled or locked here stays refused, whatever the directory says.
        let s = crate::writer::read_models(state);
        let user = s.directory.users.get(username).ok_or(AuthError::Invalid)?;
        match user.status {
            UserStatus::Enabled => {}
            UserStatus::Locked => return Err(AuthError::Locked(username.into())),
            UserStatus::Disabled | UserStatus::Invited => {
                return Err(AuthError::Disabled(username.into()))
            }
        }
        Ok(Principal {
            username: user.username.clone(),
            admin: s.directory.is_admin(username),
            password_expired: user.password_expired,
            token: None,
            access_key: false,
        })
    }

    /// Ask the directory once, however many requests carry these credentials at the same
    /// moment (a fleet of jobs starting together would otherwise bind once each).
    async fn directory_once(
        &self,
        key: [u8; 32],
        ldap: &gatehouse_projections::Ldap,
        username: &str,
        password: &str,
    ) -> Result<DirectoryOutcome, AuthError> {
        let cell = {
            let mut inflight = self
                .directory_inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            inflight
                .entry(key)
                .or_insert_with(|| Arc::new(tokio::sync::OnceCell::new()))
                .clone()
        };
        let personal = self.personal.clone();
        let (name, pw, checked) = (username.to_string(), password.to_string(), ldap.clone());
        let outcome = cell
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || {
                    let unseal = |v: &str| personal.as_ref().and_then(|k| k.decrypt(v));
                    crate::ldap::sign_in(&checked, &unseal, &name, &pw).map_err(|e| {
                        // The details (the directory's address, its TLS names) are for the
                        // log: the answer goes to anyone who sends a made-up user name.
                        tracing::warn!(error = %e, "an LDAP sign-in could not be checked");
                        e.public()
                    })
                })
                .await
                .map_err(|_| AuthError::Unavailable)
            })
            .await
            .cloned();
        let mut inflight = self
            .directory_inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if inflight.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            inflight.remove(&key);
        }
        outcome
    }

    fn cache_hit(&self, kind: &'static str) {
        let family = || {
            self.ops
                .metrics
                .auth_cache_hits
                .get_or_create(&crate::metrics::KindLabels { kind })
                .clone()
        };
        match kind {
            "password" => self.ops.password_hits.get_or_init(family).inc(),
            "token" => self.ops.token_hits.get_or_init(family).inc(),
            _ => family().inc(),
        };
    }

    fn cache_miss(&self, kind: &'static str) {
        self.ops
            .metrics
            .auth_cache_misses
            .get_or_create(&crate::metrics::KindLabels { kind })
            .inc();
    }

    /// Refuse a password check that the failed-sign-in limits hold back; one they let
    /// through has its failure paid for in advance (given back unless it fails).
    async fn check_limits(
        &self,
        name: &str,
        client_ip: Option<std::net::IpAddr>,
        familiar: bool,
    ) -> Result<crate::limits::Reservation<'_>, AuthError> {
        // No token now but checks in flight hold some: wait for them to end (a check
        // is tens of milliseconds), up to a few seconds.
        let started = Instant::now();
        let refused = loop {
            match self.ops.limits.reserve(name, client_ip, familiar) {
                Ok(r) => return Ok(r),
                Err(Some(refused)) => break refused,
                Err(None) if started.elapsed() < Duration::from_secs(5) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(None) => break (crate::limits::LimitedBy::Address, Duration::from_secs(1)),
            }
        };
        let (by, wait) = refused;
        self.ops
            .metrics
            .signins_limited
            .get_or_create(&crate::metrics::LimitLabels { by: by.label() })
            .inc();
        Err(AuthError::Limited(wait.as_secs_f64().ceil().max(1.0) as u64))
    }

    /// Run argon2 for these credentials once, however many requests carry them at the
    /// same moment: a fleet of CI jobs that start together (or a restart that empties the
    /// cache) would otherwise pay ~18 ms of CPU per request until the first one finishes.
    ///
    /// At most `argon2-concurrency` checks run at once and `argon2-queue` wait; more are
    /// refused (`Busy`), so a storm of passwords cannot take every core (or the whole
    /// blocking pool) from token and cached requests.
    async fn verify_once(
        &self,
        key: [u8; 32],
        password: &str,
        hash: String,
    ) -> Result<bool, AuthError> {
        use std::sync::atomic::Ordering;
        let cell = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            inflight
                .entry(key)
                .or_insert_with(|| Arc::new(tokio::sync::OnceCell::new()))
                .clone()
        };
        let pw = password.to_string();
        let ops = &self.ops;
        let result = cell
            .get_or_try_init(|| async move {
                if ops.waiting.fetch_add(1, Ordering::SeqCst) >= ops.queue {
                    ops.waiting.fetch_sub(1, Ordering::SeqCst);
                    ops.metrics.argon2_rejected.inc();
                    return Err(AuthError::Busy);
                }
                ops.metrics.argon2_waiting.inc();
                let ok = match ops.slots.acquire().await {
                    Ok(_permit) => {
                        ops.metrics.argon2_verifications.inc();
                        tokio::task::spawn_blocking(move || password::verify(&pw, &hash))
                            .await
                            .unwrap_or(false)
                    }
                    Err(_) => false,
                };
                ops.metrics.argon2_waiting.dec();
                ops.waiting.fetch_sub(1, Ordering::SeqCst);
                Ok(ok)
            })
            .await
            .copied();
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if inflight.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            inflight.remove(&key);
        }
        result
    }

    async fn record_failure(
        &self,
        username: &str,
        threshold: u32,
        writer: &WriterHandle,
        request_id: &str,
    ) -> Result<(), AuthError> {
        let count = {
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            let n = failures.entry(username.to_string()).or_insert(0);
            *n += 1;
            *n
        };
        if count >= threshold {
            let ctx = CommandContext {
                actor: "system".into(),
                request_id: request_id.into(),
            };
            let committed = writer
                .submit(
                    Command::LockUser {
                        username: username.into(),
                    },
                    ctx,
                )
                .await
                .map_err(|_| AuthError::Unavailable)?;
            // Counted and said only when the user was locked (the last admin who can sign
            // in is not).
            if committed.events > 0 {
                self.ops.metrics.lockouts.inc();
                tracing::warn!(
                    user = username,
                    failures = count,
                    "locked user after repeated failed sign-ins"
                );
            } else {
                tracing::warn!(
                    user = username,
                    failures = count,
                    "repeated failed sign-ins; not locked (locked already, or the last admin who can sign in)"
                );
            }
            self.failures
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(username);
        }
        Ok(())
    }

    /// An admin unlocked the user: its failure count starts again.
    pub fn forget_failures(&self, username: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(username);
    }
}

/// The principal of a user whose password was just accepted: locked and disabled are
/// told only now, to a caller that knew the password.
/// Whether a user named `name` was deleted (or renamed away) here at or after
/// `issued_at` (unix seconds): its tombstone in the federation's version table, which
/// every deletion leaves (its time is the deletion's at its origin).
fn deleted_since(s: &State, name: &str, issued_at: u64) -> bool {
    s.federation
        .versions
        .get("user", name)
        .is_some_and(|r| r.removed && r.version.time_ms >= issued_at.saturating_mul(1000))
}

fn signed_in(s: &State, user: &gatehouse_projections::User) -> Result<Principal, AuthError> {
    match user.status {
        UserStatus::Enabled => {}
        UserStatus::Locked => return Err(AuthError::Locked(user.username.clone())),
        UserStatus::Disabled | UserStatus::Invited => {
            return Err(AuthError::Disabled(user.username.clone()))
        }
    }
    Ok(Principal {
        username: user.username.clone(),
        admin: s.directory.user_is_admin(user),
        // Expired by an admin, or older than the password expiration policy allows.
        password_expired: user.password_expired || s.settings.password_too_old(user, unix_millis()),
        token: None,
        access_key: false,
    })
}

/// A request without credentials: the `anonymous` user when anonymous access is on (and
/// the user enabled), otherwise "authentication is required".
fn anonymous(state: &Arc<RwLock<State>>) -> Result<Principal, AuthError> {
    let s = crate::writer::read_models(state);
    let name = gatehouse_projections::ANONYMOUS;
    let on = s.directory.anonymous_access
        && s.directory
            .users
            .get(name)
            .is_some_and(|u| u.status == UserStatus::Enabled);
    if !on {
        return Err(AuthError::Missing);
    }
    Ok(Principal {
        username: name.to_string(),
        admin: false,
        password_expired: false,
        token: None,
        access_key: false,
    })
}

/// Full, uncached verification of a JWT against the keys that verify tokens here.
pub fn verify_token(
    keys: &crate::keys::KeyRing,
    s: &State,
    token: &str,
) -> Result<jwt::Claims, AuthError> {
    verify_token_kid(keys, s, token).map(|(c, _)| c)
}

/// [`verify_token`], and the kid (ours) of the key that verified it. EdDSA tokens name
/// their key; RS256 tokens (a trusted JFrog's) are tried against the trusted RSA keys.
pub fn verify_token_kid(
    keys: &crate::keys::KeyRing,
    s: &State,
    token: &str,
) -> Result<(jwt::Claims, String), AuthError> {
    let unverified = jwt::parse(token).map_err(|e| AuthError::Token(e.to_string()))?;
    let candidates = keys.candidate_keys(s, &unverified.header.alg, &unverified.header.kid);
    if candidates.is_empty() {
        // The kid as sent, cut short: a 50 KB one came back whole in the 401.
        let kid: String = unverified.header.kid.chars().take(64).collect();
        return Err(AuthError::Token(format!(
            "unknown signing key `{}`",
            kid.escape_debug()
        )));
    }
    for (kid, key) in &candidates {
        if unverified.check(key).is_ok() {
            return Ok((unverified.into_claims(), kid.clone()));
        }
    }
    Err(AuthError::Token(jwt::JwtError::BadSignature.to_string()))
}

fn ext_flag(claims: &jwt::Claims, name: &str) -> bool {
    claims
        .ext
        .as_deref()
        .and_then(|e| serde_json::from_str::<serde_json::Value>(e).ok())
        .is_some_and(|v| v[name] == "true" || v[name] == true)
}

/// JWTs are three base64url parts; reference tokens are 128 url-safe characters.
pub fn looks_like_token(s: &str) -> bool {
    (s.len() > 40 && s.starts_with("eyJ") && s.matches('.').count() == 2)
        || (s.len() == crate::tokens::REFERENCE_TOKEN_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

/// Whether a reference token with this value is on record (expired or not).
fn known_reference(state: &Arc<RwLock<State>>, value: &str) -> bool {
    let hash = blake3::hash(value.as_bytes()).to_hex().to_string();
    let s = crate::writer::read_models(state);
    s.tokens.by_reference_hash.contains_key(&hash)
}

/// `aud` is a space-separated list of service ids; `*@*` and `<type>@*` are wildcards.
/// This server is Access (`jfac`) and answers Artifactory's access API and its file
/// servers' questions too, so `jfrt@*` (what JFrog users give a token meant for
/// Artifactory) and `jfrt@<this server's id>` name it as well.
pub fn audience_matches(aud: &str, service_id: &str) -> bool {
    let (kind, id) = service_id.split_once('@').unwrap_or((service_id, ""));
    aud.split_whitespace().any(|a| {
        let (k, i) = a.split_once('@').unwrap_or((a, ""));
        let kind_ok = k == "*" || k == kind || k == "jfrt";
        kind_ok && (i == "*" || i == id)
    })
}

/// What a token its subject issued for itself grants now: its whole scope while the
/// subject is an admin; otherwise not `applied-permissions/admin`, and its group scopes
/// cut to the groups the subject is a member of now (seed 003: a non-admin scopes a
/// token to a subset of its own groups). Checked at issue only, a demoted admin kept
/// admin through such a token, and a user removed from a group kept its grants.
pub fn own_scope<'a>(
    scope: &'a str,
    dir: &gatehouse_projections::Directory,
    user: &gatehouse_projections::User,
) -> std::borrow::Cow<'a, str> {
    use crate::scope::{ADMIN, GROUPS};
    let reaches = |s: &str| s == ADMIN || s.starts_with(GROUPS);
    if !crate::scope::parts(scope).any(reaches) || dir.user_is_admin(user) {
        return std::borrow::Cow::Borrowed(scope);
    }
    let mut kept: Vec<String> = Vec::new();
    for s in crate::scope::parts(scope) {
        if s == ADMIN {
            continue;
        }
        match s.strip_prefix(GROUPS) {
            Some(groups) => {
                let named = crate::scope::group_names(groups).count();
                let mine: Vec<&str> = crate::scope::group_names(groups)
                    .filter(|g| user.groups.iter().any(|m| m.as_str() == *g))
                    .collect();
                if mine.len() == named {
                    // Every group still the user's: the part as it was issued, never
                    // written again (a name with a quote in it, quoted, read back as
                    // other groups — `x",admins,"y` became `x`, `admins`, `y`).
                    kept.push(s.to_string());
                } else if !mine.is_empty() {
                    kept.push(crate::scope::groups_part(mine));
                }
            }
            None => kept.push(s.to_string()),
        }
    }
    std::borrow::Cow::Owned(kept.join(" "))
}

/// What a token's scope grants in admin terms.
pub fn scope_is_admin(
    scope: &str,
    dir: &gatehouse_projections::Directory,
    user: Option<&str>,
) -> bool {
    scope_grants_admin(scope, dir, || user.is_some_and(|u| dir.is_admin(u)))
}

/// [`scope_is_admin`] with the user's own admin standing from `user_admin`, asked only
/// when the scope carries `applied-permissions/user` (a caller holding the user record
/// saves a look-up by name).
pub fn scope_grants_admin(
    scope: &str,
    dir: &gatehouse_projections::Directory,
    user_admin: impl Fn() -> bool,
) -> bool {
    use crate::scope::{ADMIN, GROUPS, USER};
    crate::scope::parts(scope).any(|s| {
        s == ADMIN
            || (s == USER && user_admin())
            || s.strip_prefix(GROUPS).is_some_and(|gs| {
                crate::scope::group_names(gs)
                    .any(|g| dir.groups.get(g).is_some_and(|g| g.admin_privileges))
            })
    })
}

/// Whether `ip` is in one of the CIDRs (validated on the way in; a bare address is a
/// one-address network).
pub fn cidrs_contain(cidrs: &[String], ip: std::net::IpAddr) -> bool {
    // `::ffff:10.1.1.1` is 10.1.1.1 (what a dual-stack listener sees for every IPv4
    // peer): judged as IPv6, it escaped `10.0.0.0/8` blocks and missed allow-lists.
    let ip = ip.to_canonical();
    cidrs.iter().any(|c| match parse_cidr(c) {
        Some(net) => net.contains(&ip),
        None => false,
    })
}

/// `10.0.0.0/8`, `2001:db8::/32`, or a bare address.
pub fn parse_cidr(s: &str) -> Option<ipnet::IpNet> {
    let net = s
        .parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))?;
    // `::ffff:10.9.0.0/104` is 10.9.0.0/8: addresses are compared as IPv4 when mapped
    // (`cidrs_contain`), so the networks are too.
    if let ipnet::IpNet::V6(v6) = net {
        if let (Some(v4), true) = (v6.addr().to_ipv4_mapped(), v6.prefix_len() >= 96) {
            return ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .ok()
                .map(ipnet::IpNet::V4);
        }
    }
    Some(net)
}

pub fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

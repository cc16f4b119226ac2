//! Limits on failed sign-ins: token buckets per client address and per user name, and
//! the addresses each user signed in from ("familiar" addresses).
//!
//! Only *failures* take a token; a bucket that is empty refuses further password checks
//! (429 with `Retry-After`) before any argon2 work. A credential in the sign-in cache
//! never reaches these buckets, so a user whose password was verified recently is not
//! slowed by someone else's guessing.
//!
//! How this combines with the lock (`lockout-threshold`): a failure counts towards
//! locking a user only when it comes from an address that user signed in from before
//! (see [`SignInLimits::is_familiar`]); failures from any other address are slowed by
//! the per-name bucket instead, which refills by itself. So a stranger can slow down
//! guessing on a name but cannot lock its owner out, and the owner, signing in from a
//! familiar address, is not held back by the per-name bucket (only by its own
//! address's). This is the idea of "smart lockout" in Azure AD (familiar and unfamiliar
//! locations are counted apart).
//!
//! Familiar addresses outlive a restart ([`SignInLimits::remember_in`]): kept only in
//! memory, every address was a stranger's after one, and ten wrong guesses on a name then
//! kept its owner — the last admin too — from signing in with a password at all.
//!
//! Not `governor`: its limiters cannot say whether a key is limited without taking a
//! cell, and here a check must be free while only a failure is charged.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Above this many keys, buckets that have refilled are forgotten (they hold no
/// information), and if that is not enough the oldest half goes.
const MAX_KEYS: usize = 100_000;
/// Addresses remembered per user.
const FAMILIAR_PER_USER: usize = 16;
/// The most (user, address) pairs the file of familiar addresses keeps.
const MAX_REMEMBERED: usize = 200_000;
/// How often a pair signing in again is written to that file again (its time moves on).
const REMEMBER_EVERY_SECS: u64 = 3600;
/// The file of familiar addresses in the data directory, and the key of its hashes.
pub const FAMILIAR_FILE: &str = "familiar-addresses";
const FAMILIAR_KEY_FILE: &str = "familiar-addresses.key";

/// Familiar addresses as they outlive a restart: a keyed hash of (user, address) and
/// the last time it was written, in `<data-dir>/familiar-addresses`, one line a pair,
/// appended (`<hash> <unix seconds>`). The addresses themselves are never written
/// (personal data), nor without a key (`familiar-addresses.key`, 0600: an address space
/// small enough to try whole cannot be matched without it). A hint, not a record: a line
/// lost in a crash makes an address unfamiliar until the next sign-in from it.
struct Remembered {
    key: [u8; 32],
    at: HashMap<[u8; 16], u64>,
    file: std::fs::File,
}

impl Remembered {
    fn hash(&self, user: &str, ip: IpAddr) -> [u8; 16] {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(user.as_bytes());
        h.update(&[0]);
        match ip {
            IpAddr::V4(v4) => h.update(&v4.octets()),
            IpAddr::V6(v6) => h.update(&v6.octets()),
        };
        let mut out = [0u8; 16];
        out.copy_from_slice(&h.finalize().as_bytes()[..16]);
        out
    }
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn hex16(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn hex_of(h: &[u8; 16]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Clone, Copy)]
pub struct BucketRule {
    /// Failures allowed at once.
    pub burst: u32,
    /// Failures allowed per minute after that (the refill rate).
    pub per_minute: u32,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// Checks that took a token and have not ended yet (see [`SignInLimits::reserve`]).
    outstanding: u32,
}

/// What taking a token from a bucket came to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Take {
    Taken,
    /// None left now, but checks in flight hold some: they may give theirs back.
    Wait,
    /// None left: try again after this long.
    Limited(Duration),
}

struct Buckets<K> {
    rule: BucketRule,
    map: Mutex<HashMap<K, Bucket>>,
}

impl<K: std::hash::Hash + Eq + Clone> Buckets<K> {
    fn new(rule: BucketRule) -> Self {
        Buckets {
            rule,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn refill_per_sec(&self) -> f64 {
        self.rule.per_minute as f64 / 60.0
    }

    fn level(&self, b: &Bucket, now: Instant) -> f64 {
        let t = b.tokens + now.duration_since(b.at).as_secs_f64() * self.refill_per_sec();
        t.min(self.rule.burst as f64)
    }

    /// `Some(wait)` when the bucket of `key` has no token left.
    fn limited(&self, key: &K, now: Instant) -> Option<Duration> {
        if self.rule.burst == 0 {
            return None; // 0 disables the limit
        }
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let b = map.get(key)?;
        let level = self.level(b, now);
        if level >= 1.0 {
            return None;
        }
        Some(self.wait_from(level))
    }

    /// How long a bucket at `level` (below one token) takes to hold one.
    fn wait_from(&self, level: f64) -> Duration {
        let rate = self.refill_per_sec();
        if rate <= 0.0 {
            return Duration::from_secs(3600);
        }
        Duration::from_secs_f64((1.0 - level) / rate)
    }

    /// Take a token from the bucket of `key` for a check, in one step with the test:
    /// checked apart from the charge, every guess sent at the same moment found the
    /// bucket full.
    fn take(&self, key: &K, now: Instant) -> Take {
        if self.rule.burst == 0 {
            return Take::Taken;
        }
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = map.get(key) {
            let level = self.level(b, now);
            if level < 1.0 {
                return if b.outstanding > 0 {
                    Take::Wait
                } else {
                    Take::Limited(self.wait_from(level))
                };
            }
        }
        self.charge_in(&mut map, key.clone(), now);
        if let Some(b) = map.get_mut(key) {
            b.outstanding += 1;
        }
        Take::Taken
    }

    /// A check that took a token ended: it failed (`refund` false: the token stays
    /// spent) or succeeded (given back).
    fn settle(&self, key: &K, refund: bool, now: Instant) {
        if self.rule.burst == 0 {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = map.get_mut(key) {
            let level = self.level(b, now);
            *b = Bucket {
                tokens: if refund {
                    (level + 1.0).min(self.rule.burst as f64)
                } else {
                    level
                },
                at: now,
                outstanding: b.outstanding.saturating_sub(1),
            };
        }
    }

    fn charge(&self, key: K, now: Instant) {
        if self.rule.burst == 0 {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        self.charge_in(&mut map, key, now);
    }

    /// `charge` under the map's lock, held by the caller.
    fn charge_in(&self, map: &mut HashMap<K, Bucket>, key: K, now: Instant) {
        if map.len() >= MAX_KEYS && !map.contains_key(&key) {
            let full = self.rule.burst as f64;
            map.retain(|_, b| self.level(b, now) < full || b.outstanding > 0);
            if map.len() >= MAX_KEYS / 2 {
                let mut ages: Vec<(K, Instant)> = map
                    .iter()
                    .filter(|(_, b)| b.outstanding == 0)
                    .map(|(k, b)| (k.clone(), b.at))
                    .collect();
                ages.sort_by_key(|(_, at)| *at);
                for (k, _) in ages.into_iter().take(map.len() / 2) {
                    map.remove(&k);
                }
            }
        }
        let burst = self.rule.burst as f64;
        let b = map.entry(key).or_insert(Bucket {
            tokens: burst,
            at: now,
            outstanding: 0,
        });
        let level = self.level(b, now);
        *b = Bucket {
            tokens: (level - 1.0).max(0.0),
            at: now,
            outstanding: b.outstanding,
        };
    }
}

/// Which bucket refused a sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitedBy {
    Address,
    User,
}

impl LimitedBy {
    pub fn label(self) -> &'static str {
        match self {
            LimitedBy::Address => "address",
            LimitedBy::User => "user",
        }
    }
}

pub struct SignInLimits {
    by_address: Buckets<IpAddr>,
    by_name: Buckets<String>,
    familiar: Mutex<HashMap<String, Vec<(IpAddr, Instant)>>>,
    familiar_for: Duration,
    remembered: Mutex<Option<Remembered>>,
}

/// IPv6 clients are counted per /64: one host usually holds a whole /64, and counting
/// single addresses would give it 2^64 buckets.
/// The bucket of an address; requests whose address is unknown (a trusted proxy passed on
/// an `X-Forwarded-For` that does not parse) share one, the unspecified address: they
/// skipped the address limit altogether, so a forged header was a way past it.
fn bucket_of(ip: Option<IpAddr>) -> IpAddr {
    ip.map_or(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), address_key)
}

fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl SignInLimits {
    pub fn new(by_address: BucketRule, by_name: BucketRule, familiar_for: Duration) -> Self {
        SignInLimits {
            by_address: Buckets::new(by_address),
            by_name: Buckets::new(by_name),
            familiar: Mutex::new(HashMap::new()),
            familiar_for,
            remembered: Mutex::new(None),
        }
    }

    /// Keep familiar addresses in `data_dir` from now on, and take those it kept before
    /// (within `familiar_for`). The file is rewritten without what has expired.
    pub fn remember_in(&self, data_dir: &std::path::Path) -> std::io::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let private = |path: &std::path::Path, append: bool| {
            std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(append)
                .truncate(!append)
                .mode(0o600)
                .open(path)
        };
        // Beside the file, not in `keys/` (whose files are all signing keys).
        let key_path = data_dir.join(FAMILIAR_KEY_FILE);
        let key = match std::fs::read(&key_path) {
            Ok(k) if k.len() == 32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&k);
                key
            }
            _ => {
                let mut key = [0u8; 32];
                getrandom::getrandom(&mut key).map_err(std::io::Error::other)?;
                let mut f = private(&key_path, false)?;
                f.write_all(&key)?;
                f.sync_all()?;
                key
            }
        };
        let path = data_dir.join(FAMILIAR_FILE);
        let now = unix_secs();
        let keep = self.familiar_for.as_secs();
        let mut at: HashMap<[u8; 16], u64> = HashMap::new();
        // Line by line, as bytes: a damaged line (a torn append, a stray byte) is skipped
        // and the rest kept (read as one string, one bad byte emptied the file); a time
        // ahead of the clock is no sign-in that happened.
        let mut skipped = 0usize;
        match std::fs::read(&path) {
            Ok(bytes) => {
                for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    let parsed = std::str::from_utf8(line)
                        .ok()
                        .and_then(|l| l.split_once(' '))
                        .and_then(|(h, t)| Some((hex16(h)?, t.parse::<u64>().ok()?)))
                        .filter(|(_, t)| *t <= now + 86_400);
                    match parsed {
                        Some((h, t)) if now.saturating_sub(t) < keep => {
                            let e = at.entry(h).or_insert(t);
                            *e = (*e).max(t);
                        }
                        Some(_) => {}
                        None => skipped += 1,
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if skipped > 0 {
            tracing::warn!(lines = skipped, "{FAMILIAR_FILE}: damaged lines skipped (their addresses are unfamiliar until the next sign-in from them)");
        }
        if at.len() > MAX_REMEMBERED {
            let mut newest: Vec<([u8; 16], u64)> = at.into_iter().collect();
            newest.sort_by_key(|(_, t)| std::cmp::Reverse(*t));
            newest.truncate(MAX_REMEMBERED);
            at = newest.into_iter().collect();
        }
        let tmp = data_dir.join(format!("{FAMILIAR_FILE}.tmp"));
        {
            let mut f = std::io::BufWriter::new(private(&tmp, false)?);
            for (h, t) in &at {
                writeln!(f, "{} {t}", hex_of(h))?;
            }
            f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        let file = private(&path, true)?;
        *self.remembered.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Remembered { key, at, file });
        Ok(())
    }

    /// Whether `user` signed in successfully from `ip` (within `familiar_for`).
    pub fn is_familiar(&self, user: &str, ip: Option<IpAddr>) -> bool {
        let Some(ip) = ip.map(address_key) else {
            return false;
        };
        let now = Instant::now();
        let live = self
            .familiar
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(user)
            .is_some_and(|v| {
                v.iter()
                    .any(|(a, at)| *a == ip && now.duration_since(*at) < self.familiar_for)
            });
        live || self
            .remembered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|r| {
                r.at.get(&r.hash(user, ip))
                    .is_some_and(|t| unix_secs().saturating_sub(*t) < self.familiar_for.as_secs())
            })
    }

    /// `user` signed in successfully from `ip`.
    pub fn signed_in(&self, user: &str, ip: Option<IpAddr>) {
        let Some(ip) = ip.map(address_key) else {
            return;
        };
        let now = Instant::now();
        let mut all = self.familiar.lock().unwrap_or_else(|p| p.into_inner());
        if all.len() >= MAX_KEYS && !all.contains_key(user) {
            all.clear();
        }
        let v = all.entry(user.to_string()).or_default();
        v.retain(|(a, _)| *a != ip);
        if v.len() >= FAMILIAR_PER_USER {
            v.remove(0);
        }
        v.push((ip, now));
        drop(all);
        let mut remembered = self.remembered.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = remembered.as_mut() {
            let h = r.hash(user, ip);
            let secs = unix_secs();
            if r.at
                .get(&h)
                .is_none_or(|t| secs.saturating_sub(*t) >= REMEMBER_EVERY_SECS)
            {
                if r.at.len() >= MAX_REMEMBERED {
                    r.at.clear();
                }
                r.at.insert(h, secs);
                use std::io::Write as _;
                // One write of the whole line (a torn one is skipped at the next start).
                let line = format!("{} {secs}\n", hex_of(&h));
                if let Err(e) = r.file.write_all(line.as_bytes()) {
                    tracing::warn!(error = %e, "cannot write a familiar address to {FAMILIAR_FILE}: it is familiar until the next restart only");
                }
            }
        }
    }

    /// Refuse a password check before it runs: `Some((bucket, wait))` when the
    /// address's bucket is empty, or — for an address unfamiliar to `user` — the name's.
    pub fn check(
        &self,
        user: &str,
        ip: Option<IpAddr>,
        familiar: bool,
    ) -> Option<(LimitedBy, Duration)> {
        let now = Instant::now();
        if let Some(wait) = self.by_address.limited(&bucket_of(ip), now) {
            return Some((LimitedBy::Address, wait));
        }
        if !familiar {
            if let Some(wait) = self.by_name.limited(&user.to_string(), now) {
                return Some((LimitedBy::User, wait));
            }
        }
        None
    }

    /// A password check may go ahead: its failure is paid for in advance (a token of
    /// each bucket that applies), and given back when the check succeeds — when the
    /// [`Reservation`] is dropped without [`Reservation::failed`]. Checked and charged
    /// apart, sixty guesses sent at once all found the buckets full and were all checked.
    /// `Err(None)`: no token now, but checks in flight hold some — ask again in a moment
    /// (a fleet signing in at once with the right password is not refused: the checks
    /// give their tokens back as they succeed).
    pub fn reserve(
        &self,
        user: &str,
        ip: Option<IpAddr>,
        familiar: bool,
    ) -> Result<Reservation<'_>, Option<(LimitedBy, Duration)>> {
        let now = Instant::now();
        let address = bucket_of(ip);
        match self.by_address.take(&address, now) {
            Take::Taken => {}
            Take::Wait => return Err(None),
            Take::Limited(wait) => return Err(Some((LimitedBy::Address, wait))),
        }
        let name = (!familiar).then(|| user.to_string());
        if let Some(n) = &name {
            let refused = match self.by_name.take(n, now) {
                Take::Taken => None,
                Take::Wait => Some(None),
                Take::Limited(wait) => Some(Some((LimitedBy::User, wait))),
            };
            if let Some(refused) = refused {
                self.by_address.settle(&address, true, now);
                return Err(refused);
            }
        }
        Ok(Reservation {
            limits: self,
            address,
            name,
            spent: false,
        })
    }

    /// A password check failed.
    pub fn failed(&self, user: &str, ip: Option<IpAddr>, familiar: bool) {
        let now = Instant::now();
        self.by_address.charge(bucket_of(ip), now);
        if !familiar {
            self.by_name.charge(user.to_string(), now);
        }
    }
}

/// A password check the limits let through (see [`SignInLimits::reserve`]).
pub struct Reservation<'a> {
    limits: &'a SignInLimits,
    address: IpAddr,
    name: Option<String>,
    spent: bool,
}

impl Reservation<'_> {
    /// The check failed: what was taken stays taken.
    pub fn failed(mut self) {
        self.spent = true;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let now = Instant::now();
        let refund = !self.spent;
        self.limits.by_address.settle(&self.address, refund, now);
        if let Some(n) = &self.name {
            self.limits.by_name.settle(n, refund, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Guesses sent at the same moment: only as many as the burst get checked, the
    /// others are held back; checks that succeed give their token back.
    #[test]
    fn reservations_at_once_stop_at_the_burst_and_successes_give_back() {
        let l = limits();
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let held: Vec<_> = (0..60)
            .filter_map(|i| l.reserve(&format!("u{i}"), Some(ip), true).ok())
            .collect();
        assert_eq!(held.len(), 3);
        // While they are in flight, the others wait (not refused: they may succeed).
        assert!(matches!(l.reserve("y", Some(ip), true), Err(None)));
        drop(held); // all three succeeded
        let failing: Vec<_> = (0..60)
            .filter_map(|i| l.reserve(&format!("u{i}"), Some(ip), true).ok())
            .collect();
        assert_eq!(failing.len(), 3);
        failing.into_iter().for_each(Reservation::failed);
        assert_eq!(
            l.reserve("x", Some(ip), true).err().flatten().map(|e| e.0),
            Some(LimitedBy::Address)
        );
        // A stranger's guesses at one name stop at the name's burst, from any address.
        let taken: Vec<_> = (0..10)
            .filter_map(|i| {
                let ip: IpAddr = format!("198.51.100.{i}").parse().unwrap();
                l.reserve("ann", Some(ip), false).ok()
            })
            .collect();
        assert_eq!(taken.len(), 2);
    }

    fn limits() -> SignInLimits {
        SignInLimits::new(
            BucketRule {
                burst: 3,
                per_minute: 60,
            },
            BucketRule {
                burst: 2,
                per_minute: 6,
            },
            Duration::from_secs(3600),
        )
    }

    #[test]
    fn a_bucket_empties_after_its_burst_and_says_how_long_to_wait() {
        let l = limits();
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        for i in 0..3 {
            assert_eq!(l.check(&format!("u{i}"), Some(ip), true), None);
            l.failed(&format!("u{i}"), Some(ip), true);
        }
        let (by, wait) = l.check("other", Some(ip), true).unwrap();
        assert_eq!(by, LimitedBy::Address);
        assert!(
            wait <= Duration::from_secs(1) && wait > Duration::ZERO,
            "{wait:?}"
        );
        // Another address is not affected.
        assert_eq!(
            l.check("other", Some("203.0.113.8".parse().unwrap()), true),
            None
        );
    }

    /// Clients whose address is unknown share one bucket: a forged header is no way past
    /// the address limit (it skipped it).
    #[test]
    fn unknown_addresses_share_a_bucket() {
        let l = limits();
        for i in 0..3 {
            assert_eq!(l.check(&format!("u{i}"), None, true), None);
            l.failed(&format!("u{i}"), None, true);
        }
        let (by, _) = l.check("other", None, true).unwrap();
        assert_eq!(by, LimitedBy::Address);
        assert_eq!(
            l.check("other", Some("203.0.113.8".parse().unwrap()), true),
            None
        );
    }

    #[test]
    fn the_name_bucket_holds_back_strangers_only() {
        let l = limits();
        let owner: IpAddr = "198.51.100.2".parse().unwrap();
        l.signed_in("ann", Some(owner));
        for i in 0..2 {
            let ip: IpAddr = format!("203.0.113.{i}").parse().unwrap();
            assert!(!l.is_familiar("ann", Some(ip)));
            l.failed("ann", Some(ip), false);
        }
        let stranger: IpAddr = "203.0.113.50".parse().unwrap();
        assert_eq!(
            l.check("ann", Some(stranger), false).map(|x| x.0),
            Some(LimitedBy::User)
        );
        assert!(l.is_familiar("ann", Some(owner)));
        assert_eq!(l.check("ann", Some(owner), true), None);
    }

    #[test]
    fn ipv6_hosts_count_per_slash_64() {
        let l = limits();
        for i in 0..3 {
            let ip: IpAddr = format!("2001:db8:1:2::{i}").parse().unwrap();
            l.failed("x", Some(ip), true);
        }
        assert!(l
            .check("x", Some("2001:db8:1:2::99".parse().unwrap()), true)
            .is_some());
        assert!(l
            .check("x", Some("2001:db8:1:3::1".parse().unwrap()), true)
            .is_none());
    }

    /// Familiar addresses outlive a restart; a damaged line (a stray byte, a torn
    /// append) or a time ahead of the clock is skipped, the rest kept (one bad byte
    /// emptied the whole file).
    #[test]
    fn familiar_addresses_are_kept_and_a_damaged_line_costs_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let ann: IpAddr = "198.51.100.2".parse().unwrap();
        let bob: IpAddr = "2001:db8:1:2::9".parse().unwrap();
        let l = limits();
        l.remember_in(dir.path()).unwrap();
        l.signed_in("ann", Some(ann));
        l.signed_in("bob", Some(bob));
        drop(l);
        let path = dir.path().join(FAMILIAR_FILE);
        let kept = std::fs::read_to_string(&path).unwrap();
        assert_eq!(kept.lines().count(), 2, "{kept}");
        assert!(
            !kept.contains("198.51") && !kept.contains("2001:db8"),
            "{kept}"
        );
        let future = format!("{} {}\n", "ab".repeat(16), unix_secs() + 10 * 86_400);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(b"\xff\xfe torn\n");
        bytes.extend_from_slice(future.as_bytes());
        bytes.extend_from_slice(b"0123");
        std::fs::write(&path, bytes).unwrap();
        let l = limits();
        l.remember_in(dir.path()).unwrap();
        assert!(l.is_familiar("ann", Some(ann)));
        // Another host of bob's /64 is bob's too; another user at ann's address is not.
        assert!(l.is_familiar("bob", Some("2001:db8:1:2::1".parse().unwrap())));
        assert!(!l.is_familiar("bob", Some(ann)));
        let rewritten = std::fs::read_to_string(&path).unwrap();
        assert_eq!(rewritten.lines().count(), 2, "{rewritten}");
    }
}

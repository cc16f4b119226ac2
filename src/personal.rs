//! Personal data (e-mail addresses, SCIM name parts, addresses, …) is encrypted before
//! it enters an event, with a key per user kept *outside* the event log, as a file in
//! `<data-dir>/keys/personal/`. Deleting a user with `?purge=true` deletes that file
//! (crypto-shredding): the chain still verifies, the events are untouched, and the
//! personal data in them, in snapshots and in exports can no longer be read. Reads
//! (also of the past) then show `[erased]`.
//!
//! A value is stored as `enc:v1:<key id>:<base64url(nonce ‖ ciphertext)>`
//! (XChaCha20-Poly1305, a random 24-byte nonce; values sealed together share its first 16
//! bytes, see [`PersonalKeys::encrypt_all`]). Values written before this existed are
//! plain text and are shown as they are.
//!
//! Keys made while the server runs on its own log (no key vault) are not a file each:
//! they go to one append-only file, `keys/personal/batched.keys` (0600, a line `id key`
//! each), written by the writer thread for every batch of commands with **one** flush,
//! before that batch's events are written (see `Writer::add_before_commit`; a flush that
//! fails refuses the batch: no event without its key). One
//! fsync per new user was most of what a SCIM create cost. Destroying such a key
//! overwrites its line in place (and flushes), as a key file is overwritten before it
//! is unlinked. Key files of older data directories are still read.
//!
//! Better still, keys are made ahead: a pool of [`POOL`] keys is appended to the same
//! file and flushed by a background thread *before* any of them is handed out, so a new
//! user usually takes a key that is already durable, and its batch has nothing to flush
//! but the log (the key file's fsync per batch cost as much CPU as the rest of the
//! writer). Only when the pool is empty does a key wait for its batch's flush, as above.
//! A crash leaves at most a pool of keys that never encrypted anything (harmless lines).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};

/// The append-only file of batched keys (not a valid key id, so never taken for one).
pub const STORE: &str = "batched.keys";

const PREFIX: &str = "enc:v1:";
/// What a read shows for personal data whose key was destroyed.
pub const ERASED: &str = "[erased]";

pub struct PersonalKeys {
    dir: PathBuf,
    cache: KeyCache,
    /// Moves on every destroyed key: what was decrypted before may now read as erased
    /// (caches of decrypted renderings compare it).
    epoch: std::sync::atomic::AtomicU64,
    /// Keys go to [`STORE`] in batches ([`flush_pending`](Self::flush_pending)).
    batched: AtomicBool,
    /// Made, in the cache, not yet durable.
    pending: Mutex<Vec<(String, [u8; 32])>>,
    /// Serialises appends to and overwrites in [`STORE`]; `true` once it was read.
    store: Mutex<bool>,
    /// Keys already durable in [`STORE`] and in the cache, not yet given to anyone
    /// (batched mode), each with its bytes: a request takes them from here rather than
    /// looking the key up in the cache (a look-up of a key made a pool ago missed the
    /// processor's caches: about 1 µs of a SCIM create in a perf profile).
    pool: Mutex<Vec<FreshKey>>,
    /// Wakes the thread that refills `pool` (started with the first batched key).
    refill: Mutex<Option<std::sync::mpsc::SyncSender<()>>>,
    /// Held while a named key is looked for and made: two first users of one (eight
    /// webhook subscriptions made at once on a new server) each made their own, one
    /// answered 500, and the secrets sealed with the key that lost on disk could never
    /// be opened again. It counts the keys made by name and destroyed: what a read of the
    /// disk found is remembered only if that count did not move meanwhile (see
    /// [`key_from_disk`](Self::key_from_disk)).
    naming: Mutex<u64>,
}

/// Key id → key (`None`: destroyed), in [`KeyCache::SHARDS`] maps, each behind its own
/// lock, chosen by a hash of the id.
///
/// Why shards: a SCIM create inserts its user's key on the request path, and a single
/// table that grows rehashes every key into a new table twice its size while holding the
/// write lock. At a few hundred thousand users that new table is tens of MiB touched for
/// the first time, and every request that seals or opens personal data waited for it:
/// SCIM create p99 was 63–222 ms in four 5 s runs on one server (`wrk --latency`), 14–15
/// ms with shards; group creates, which take no key, 8–14 ms. A shard grows by a
/// sixty-fourth of that, and only requests whose keys fall in it wait.
///
/// foldhash, not SipHash: the ids are ULIDs this server made, so there is no flooding to
/// defend against, and hashing was a quarter of an insert in the profile.
struct KeyCache {
    shards: Box<[RwLock<Shard>]>,
    /// Picks the shard; seeded apart from the shards' own hashers, whose bits choose the
    /// bucket inside a shard (the same bits for both would crowd every shard's keys into
    /// a sixty-fourth of its buckets).
    pick: foldhash::fast::FixedState,
}

/// One shard: the keys whose id is a ULID in the form [`create`](PersonalKeys::create)
/// gives it (every user's key) by the id's 16 bytes, any other name (a server secret's)
/// by its text.
///
/// Why two maps: a `String` key was an allocation per user, and every look-up followed
/// its pointer to compare the text (a cache miss on a table of a million keys); 16
/// bytes held in the entry are neither, and an entry is 49 bytes instead of 57 plus the
/// text's allocation.
#[derive(Default)]
struct Shard {
    ulids: HashMap<[u8; 16], Option<[u8; 32]>, foldhash::fast::RandomState>,
    names: HashMap<String, Option<[u8; 32]>, foldhash::fast::RandomState>,
}

impl Shard {
    fn get(&self, id: &str) -> Option<Option<[u8; 32]>> {
        match ulid_bytes(id) {
            Some(u) => self.ulids.get(&u).copied(),
            None => self.names.get(id).copied(),
        }
    }

    /// Takes `&str`: a ULID id needs no `String`, so none is made for it.
    fn insert(&mut self, id: &str, key: Option<[u8; 32]>) {
        match ulid_bytes(id) {
            Some(u) => self.ulids.insert(u, key),
            None => self.names.insert(id.to_string(), key),
        };
    }

    fn insert_new(&mut self, id: &str, key: [u8; 32]) {
        match ulid_bytes(id) {
            Some(u) => self.insert_new_ulid(u, key),
            None => {
                self.names.entry(id.to_string()).or_insert(Some(key));
            }
        }
    }

    /// A key whose id is the ULID `u` (its text as `ids::lowercase` writes it).
    fn insert_new_ulid(&mut self, u: [u8; 16], key: [u8; 32]) {
        self.ulids.entry(u).or_insert(Some(key));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.ulids.len() + self.names.len()
    }
}

/// The 16 bytes of `id` when it is a ULID exactly as `ids::new_ulid` writes it (lower
/// case), so that two different ids never share an entry; `None` for any other text.
/// Decoded here by a table rather than by the `ulid` crate, whose decoder reads any case
/// and drops what overflows 128 bits, so that only re-encoding could tell a canonical id:
/// that round trip cost about 900 instructions a SCIM create under callgrind.
fn ulid_bytes(id: &str) -> Option<[u8; 16]> {
    /// Crockford's base32 in lower case, as ULIDs are written: 0-31, 0xff for anything
    /// else (including i, l, o and u, which an encoder never writes).
    const DIGITS: [u8; 256] = {
        let alphabet = b"0123456789abcdefghjkmnpqrstvwxyz";
        let mut t = [0xffu8; 256];
        let mut i = 0;
        while i < alphabet.len() {
            t[alphabet[i] as usize] = i as u8;
            i += 1;
        }
        t
    };
    let bytes: &[u8; ulid::ULID_LEN] = id.as_bytes().try_into().ok()?;
    // 26 digits carry 130 bits: the first one holds the top 3 of 128, so it is at most 7.
    if DIGITS[bytes[0] as usize] > 7 {
        return None;
    }
    let mut value: u128 = 0;
    for &b in bytes {
        let d = DIGITS[b as usize];
        if d == 0xff {
            return None;
        }
        value = (value << 5) | u128::from(d);
    }
    Some(value.to_be_bytes())
}

impl KeyCache {
    const SHARDS: usize = 64;

    fn new() -> KeyCache {
        KeyCache {
            shards: (0..Self::SHARDS)
                .map(|_| RwLock::new(Shard::default()))
                .collect(),
            pick: foldhash::fast::FixedState::with_seed(0x6761_7465_686f_7573),
        }
    }

    fn shard(&self, id: &str) -> &RwLock<Shard> {
        use std::hash::BuildHasher;
        // The top bits: foldhash mixes best there.
        let h = self.pick.hash_one(id);
        &self.shards[(h >> (64 - Self::SHARDS.trailing_zeros())) as usize]
    }

    /// `Some(key)` when the id is known (`Some(None)`: destroyed).
    fn get(&self, id: &str) -> Option<Option<[u8; 32]>> {
        self.shard(id)
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
    }

    fn insert(&self, id: &str, key: Option<[u8; 32]>) {
        self.shard(id)
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, key);
    }

    /// Unless the id is known already (a destroyed key stays destroyed).
    fn insert_new(&self, id: &str, key: [u8; 32]) {
        self.shard(id)
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert_new(id, key);
    }

    /// [`insert_new`](Self::insert_new) of `id`, the text of the ULID whose bytes are
    /// `u`, without reading them back from it.
    fn insert_new_ulid(&self, id: &str, u: [u8; 16], key: [u8; 32]) {
        debug_assert_eq!(ulid_bytes(id), Some(u));
        self.shard(id)
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert_new_ulid(u, key);
    }
}

/// A key just made for a user, with its bytes: what seals its first values needs no
/// look-up. It has no `Debug`, so its bytes are never printed.
pub struct FreshKey {
    id: String,
    key: [u8; 32],
}

impl FreshKey {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn into_id(self) -> String {
        self.id
    }
}

/// Keys made durable ahead in one append and one flush (see the module's comment);
/// refilled when half are taken.
pub const POOL: usize = 2048;

#[derive(Debug, thiserror::Error)]
#[error("personal data keys: {0}")]
pub struct KeyStoreError(String);

/// The keys in a [`STORE`] file: (id, key as its file holds it), destroyed ones left out.
pub fn stored_keys(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once(' '))
        .filter(|(id, k)| PersonalKeys::valid_id(id) && k.len() == 43)
        .map(|(id, k)| (id.to_string(), k.to_string()))
        .collect()
}

/// The key id a stored value was encrypted with, if it is encrypted.
pub fn key_id(value: &str) -> Option<&str> {
    value.strip_prefix(PREFIX)?.split_once(':').map(|(k, _)| k)
}

impl PersonalKeys {
    pub fn open(data_dir: &Path) -> Result<PersonalKeys, KeyStoreError> {
        let dir = data_dir.join("keys").join("personal");
        std::fs::create_dir_all(&dir).map_err(|e| KeyStoreError(e.to_string()))?;
        Ok(PersonalKeys {
            dir,
            cache: KeyCache::new(),
            epoch: std::sync::atomic::AtomicU64::new(0),
            batched: AtomicBool::new(false),
            pending: Mutex::new(Vec::new()),
            store: Mutex::new(false),
            pool: Mutex::new(Vec::new()),
            refill: Mutex::new(None),
            naming: Mutex::new(0),
        })
    }

    /// From now on new keys are batched: whoever turns this on must call
    /// [`flush_pending`](Self::flush_pending) before acknowledging anything sealed with
    /// them (the writer does, before each batch).
    pub fn set_batched(&self) {
        self.batched.store(true, Ordering::SeqCst);
    }

    pub fn is_batched(&self) -> bool {
        self.batched.load(Ordering::SeqCst)
    }

    /// Whether keys wait for [`flush_pending`](Self::flush_pending).
    pub fn has_pending(&self) -> bool {
        !self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// Make every key made so far durable: one append and one flush for all of them.
    pub fn flush_pending(&self) -> Result<(), KeyStoreError> {
        let _store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        self.append_to_store(batch.iter().map(|(id, key)| (id.as_str(), key)))
    }

    /// Append `batch` (id, key) to [`STORE`] and flush it (the caller holds `store`).
    fn append_to_store<'a>(
        &self,
        batch: impl ExactSizeIterator<Item = (&'a str, &'a [u8; 32])>,
    ) -> Result<(), KeyStoreError> {
        use std::io::Write;
        #[cfg(unix)]
        use std::os::unix::fs::OpenOptionsExt;
        if batch.len() == 0 {
            return Ok(());
        }
        let mut text = String::with_capacity(batch.len() * 72);
        for (id, key) in batch {
            text.push_str(id);
            text.push(' ');
            // Appended in place (base64_simd, as `seal_all`): no string per key.
            base64_simd::URL_SAFE_NO_PAD.encode_append(key, &mut text);
            text.push('\n');
        }
        let path = self.dir.join(STORE);
        let new = !path.exists();
        let mut opts = std::fs::OpenOptions::new();
        opts.append(true).create(true);
        #[cfg(unix)]
        opts.mode(0o600);
        let err = |e: std::io::Error| KeyStoreError(e.to_string());
        let mut f = opts.open(&path).map_err(err)?;
        let before = f.metadata().map_err(err)?.len();
        if let Err(e) = f.write_all(text.as_bytes()).and_then(|()| f.sync_data()) {
            // A write cut short (a full disk) must not leave half a line: the next
            // batch's keys, appended to it, would read as part of it and be lost.
            let _ = f.set_len(before).and_then(|()| f.sync_data());
            return Err(err(e));
        }
        if new {
            std::fs::File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(err)?;
        }
        Ok(())
    }

    /// Read [`STORE`] into the cache, once (a key missing from the cache may be there).
    fn load_store(&self) {
        let mut loaded = self.store.lock().unwrap_or_else(|p| p.into_inner());
        if *loaded {
            return;
        }
        *loaded = true;
        let Ok(text) = std::fs::read_to_string(self.dir.join(STORE)) else {
            return;
        };
        for line in text.lines() {
            let Some((id, k)) = line.split_once(' ') else {
                continue;
            };
            let key = URL_SAFE_NO_PAD
                .decode(k)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok());
            if let (true, Some(key)) = (Self::valid_id(id), key) {
                self.cache.insert_new(id, key);
            }
        }
    }

    /// Overwrite key `id`'s line in [`STORE`] (if it is there) and flush.
    fn destroy_in_store(&self, id: &str) -> Result<(), KeyStoreError> {
        use std::io::{Seek, SeekFrom, Write};
        let _store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(i, _)| i != id);
        let path = self.dir.join(STORE);
        let Ok(text) = std::fs::read(&path) else {
            return Ok(());
        };
        let err = |e: std::io::Error| KeyStoreError(e.to_string());
        let mut offset = 0;
        let mut found = false;
        let mut f = None;
        for line in text.split(|b| *b == b'\n') {
            if line.len() > id.len() && line.starts_with(id.as_bytes()) && line[id.len()] == b' ' {
                let file = match &mut f {
                    Some(file) => file,
                    None => f.insert(
                        std::fs::OpenOptions::new()
                            .write(true)
                            .open(&path)
                            .map_err(err)?,
                    ),
                };
                file.seek(SeekFrom::Start(offset as u64)).map_err(err)?;
                file.write_all(&vec![b'-'; line.len()]).map_err(err)?;
                found = true;
            }
            offset += line.len() + 1;
        }
        if let (true, Some(file)) = (found, f) {
            file.sync_data().map_err(err)?;
        }
        Ok(())
    }

    fn valid_id(id: &str) -> bool {
        !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
    }

    fn key(&self, id: &str) -> Option<[u8; 32]> {
        if !Self::valid_id(id) {
            return None;
        }
        if let Some(k) = self.cache.get(id) {
            return k;
        }
        self.load_store();
        if let Some(k) = self.cache.get(id) {
            return k;
        }
        self.key_from_disk(id)
    }

    /// A key's own file (or the key vault's copy), into the cache as found (`None`
    /// too, so that values whose key is gone do not read the disk each time).
    fn key_from_disk(&self, id: &str) -> Option<[u8; 32]> {
        let seen = self.disk_changes();
        let k = self.read_key_file(id);
        self.remember_from_disk(id, k, seen);
        k
    }

    /// How many keys were made by name or destroyed so far.
    fn disk_changes(&self) -> u64 {
        *self.naming.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A key's own file, or the key vault's copy.
    fn read_key_file(&self, id: &str) -> Option<[u8; 32]> {
        let path = self.dir.join(id);
        std::fs::read_to_string(&path)
            .ok()
            // Another node of a shared log may have made it.
            .or_else(|| crate::keys::vault::fetch(&path))
            .and_then(|t| URL_SAFE_NO_PAD.decode(t.trim()).ok())
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
    }

    /// Put what a read of the disk found in the cache, unless a key was made by name or
    /// destroyed since `seen`: the read may be older than what that put there. A reader
    /// that found no file an instant before [`named`](Self::named) wrote it, and cached
    /// that after `named` cached the key, hid the key from everyone (sealing with it
    /// failed with "does not exist"); one that read a key just before it was destroyed
    /// would have brought it back.
    fn remember_from_disk(&self, id: &str, k: Option<[u8; 32]>, seen: u64) {
        let changes = self.naming.lock().unwrap_or_else(|p| p.into_inner());
        if *changes == seen {
            self.cache.insert(id, k);
        }
    }

    /// Make [`POOL`] keys durable in one append and flush, then offer them.
    fn refill_pool(&self) -> Result<(), KeyStoreError> {
        let mut bytes = vec![0u8; POOL * 32];
        getrandom::getrandom(&mut bytes).map_err(|e| KeyStoreError(e.to_string()))?;
        let keys: Vec<(ulid::Ulid, String, [u8; 32])> = bytes
            .chunks_exact(32)
            .map(|k| {
                let u = ulid::Ulid::new();
                let key = <[u8; 32]>::try_from(k).expect("32 bytes");
                (u, crate::ids::lowercase(u), key)
            })
            .collect();
        {
            let _store = self.store.lock().unwrap_or_else(|p| p.into_inner());
            self.append_to_store(keys.iter().map(|(_, id, key)| (id.as_str(), key)))?;
        }
        // Durable now: into the cache here, on this thread, rather than one by one on
        // the request that takes each (the insert was 0.8 of the 9.7 µs a SCIM create's
        // handler took in a perf profile); then they may be handed out (the newest last,
        // taken first).
        let mut fresh: Vec<FreshKey> = Vec::with_capacity(keys.len());
        for (u, id, key) in keys.into_iter().rev() {
            // By the ULID's bytes: reading them back from the text cost as much again.
            self.cache.insert_new_ulid(&id, u.0.to_be_bytes(), key);
            fresh.push(FreshKey { id, key });
        }
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        fresh.append(&mut pool);
        *pool = fresh;
        Ok(())
    }

    /// Ask the refill thread for more keys (starting it the first time).
    fn ask_refill(self: &std::sync::Arc<Self>) {
        let mut refill = self.refill.lock().unwrap_or_else(|p| p.into_inner());
        if refill.is_none() {
            // One doorbell waiting is enough: a full channel means a refill is asked.
            let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
            let keys = std::sync::Arc::downgrade(self);
            let spawned = std::thread::Builder::new()
                .name("gatehouse-keypool".into())
                .spawn(move || {
                    while rx.recv().is_ok() {
                        let Some(keys) = keys.upgrade() else { break };
                        if keys.pool_len() >= POOL / 2 {
                            continue;
                        }
                        if let Err(e) = keys.refill_pool() {
                            // New keys then wait for their batch's flush, as without a pool.
                            tracing::warn!(error = %e, "cannot make personal-data keys ahead");
                        }
                    }
                });
            match spawned {
                Ok(_) => *refill = Some(tx),
                // Without the thread there is no pool: each new key is flushed with its
                // batch, as before there was one. Tried again at the next ask.
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the personal-key pool thread");
                    return;
                }
            }
        }
        if let Some(tx) = refill.as_ref() {
            let _ = tx.try_send(());
        }
    }

    fn pool_len(&self) -> usize {
        self.pool.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// [`create`](Self::create), taking a key made durable ahead when there is one (and
    /// asking for more when the pool runs low): nothing for the batch to flush then.
    pub fn create_pooled(self: &std::sync::Arc<Self>) -> Result<FreshKey, KeyStoreError> {
        if !self.batched.load(Ordering::SeqCst) {
            return self.create_fresh();
        }
        let (taken, left) = {
            let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            (pool.pop(), pool.len())
        };
        if left < POOL / 2 {
            self.ask_refill();
        }
        // In the cache since the pool took it (`refill_pool`).
        taken.map_or_else(|| self.create_fresh(), Ok)
    }

    /// A new key for a user: a 0600 file, written before any value that needs it.
    pub fn create(&self) -> Result<String, KeyStoreError> {
        self.create_fresh().map(FreshKey::into_id)
    }

    /// [`create`](Self::create), with the key's bytes.
    pub fn create_fresh(&self) -> Result<FreshKey, KeyStoreError> {
        let id = crate::ids::new_ulid();
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key).map_err(|e| KeyStoreError(e.to_string()))?;
        if self.batched.load(Ordering::SeqCst) {
            // In the cache at once; durable with the batch that carries its first use.
            self.cache.insert(&id, Some(key));
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((id.clone(), key));
            return Ok(FreshKey { id, key });
        }
        crate::app::write_private(&self.dir.join(&id), &URL_SAFE_NO_PAD.encode(key))
            .map_err(|e| KeyStoreError(e.to_string()))?;
        self.cache.insert(&id, Some(key));
        Ok(FreshKey { id, key })
    }

    /// A key with a fixed name (for server secrets such as webhook secrets), made on
    /// first use.
    pub fn named(&self, name: &str) -> Result<String, KeyStoreError> {
        if !Self::valid_id(name) {
            return Err(KeyStoreError(format!("`{name}` is not a key name")));
        }
        if self.key(name).is_some() {
            return Ok(name.to_string());
        }
        let mut changes = self.naming.lock().unwrap_or_else(|p| p.into_inner());
        // Looked for again, from the cache or the file another caller just wrote.
        if self.cache.get(name).flatten().is_some() {
            return Ok(name.to_string());
        }
        if let Some(key) = self.read_key_file(name) {
            self.cache.insert(name, Some(key));
        } else {
            let mut key = [0u8; 32];
            getrandom::getrandom(&mut key).map_err(|e| KeyStoreError(e.to_string()))?;
            // Another node of a shared log may have made it first: its key is the one.
            let kept =
                crate::app::write_private(&self.dir.join(name), &URL_SAFE_NO_PAD.encode(key))
                    .map_err(|e| KeyStoreError(e.to_string()))?;
            let key = crate::keys::vault::parse32(&kept)
                .ok_or_else(|| KeyStoreError(format!("the shared key `{name}` is damaged")))?;
            self.cache.insert(name, Some(key));
        }
        *changes += 1;
        Ok(name.to_string())
    }

    /// Encrypt `plain` with key `id`.
    pub fn encrypt(&self, id: &str, plain: &str) -> Result<String, KeyStoreError> {
        let [sealed] = self.encrypt_all(id, [plain])?;
        Ok(sealed)
    }

    /// [`encrypt`](Self::encrypt) of several values with key `id` at once: one look-up of
    /// the key, one draw of randomness and one HChaCha20 subkey for all of them (a SCIM
    /// create seals two values; the subkey and the key look-up were a fifth of sealing).
    /// Their nonces share the first 16 bytes, drawn at random, and differ in the last 8
    /// (a random number plus the value's index): unique per value, which is all
    /// XChaCha20-Poly1305 asks of a nonce. Each value opens on its own, as any other.
    pub fn encrypt_all<const N: usize>(
        &self,
        id: &str,
        plains: [&str; N],
    ) -> Result<[String; N], KeyStoreError> {
        let key = self
            .key(id)
            .ok_or_else(|| KeyStoreError(format!("key `{id}` does not exist")))?;
        seal_all(id, &key, plains)
    }

    /// [`encrypt_all`](Self::encrypt_all) with a key just made: no look-up.
    pub fn encrypt_all_fresh<const N: usize>(
        &self,
        fresh: &FreshKey,
        plains: [&str; N],
    ) -> Result<[String; N], KeyStoreError> {
        seal_all(&fresh.id, &fresh.key, plains)
    }

    /// The plain text of a stored value: itself when it is not encrypted, `None` when
    /// its key was destroyed (or it was tampered with).
    pub fn decrypt(&self, stored: &str) -> Option<String> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Some(stored.to_string());
        };
        let (id, data) = rest.split_once(':')?;
        let key = self.key(id)?;
        let mut blob = base64_simd::URL_SAFE_NO_PAD
            .decode_to_vec(data.as_bytes())
            .ok()?;
        if blob.len() < 24 {
            return None;
        }
        let (nonce, sealed) = blob.split_at_mut(24);
        let nonce: [u8; 24] = (&*nonce).try_into().ok()?;
        let plain = xchacha::open_in_place(&key, &nonce, sealed)?;
        String::from_utf8(plain.to_vec()).ok()
    }

    /// Of `users` (name, stored values), the names of those whose first sealed value no
    /// key here opens. A purge deletes its user before it destroys the keys, so a user
    /// still there should always be readable; one that is not lost its key some other
    /// way (the key store deleted, damaged or not restored with the log).
    pub fn unreadable<'a>(
        &self,
        users: impl Iterator<Item = (&'a str, [Option<&'a str>; 2])>,
    ) -> Vec<String> {
        users
            .filter(|(_, values)| {
                values
                    .iter()
                    .flatten()
                    .find(|v| v.starts_with(PREFIX))
                    .is_some_and(|sealed| self.decrypt(sealed).is_none())
            })
            .map(|(name, _)| name.to_string())
            .collect()
    }

    /// [`decrypt`](Self::decrypt), or [`ERASED`].
    pub fn show(&self, stored: &str) -> String {
        self.decrypt(stored).unwrap_or_else(|| ERASED.to_string())
    }

    /// Destroy a key: every value encrypted with it becomes unreadable, everywhere.
    pub fn destroy(&self, id: &str) -> Result<(), KeyStoreError> {
        if !Self::valid_id(id) {
            return Ok(());
        }
        // Everywhere: the other nodes of a shared log must not find it again (and drop
        // their copies: `keys::vault::watch_destroyed`).
        crate::keys::vault::destroyed(&self.dir.join(id))
            .map_err(|e| KeyStoreError(e.to_string()))?;
        self.destroy_here(id)
    }

    /// [`destroy`](Self::destroy) on this node only (another node destroyed it).
    pub fn destroy_here(&self, id: &str) -> Result<(), KeyStoreError> {
        if !Self::valid_id(id) {
            return Ok(());
        }
        self.destroy_in_store(id)?;
        let path = self.dir.join(id);
        if path.exists() {
            // Overwrite before unlinking, so the key's bytes do not linger in the file's
            // blocks; then make the removal itself durable.
            std::fs::write(&path, [b'0'; 44]).map_err(|e| KeyStoreError(e.to_string()))?;
            std::fs::remove_file(&path).map_err(|e| KeyStoreError(e.to_string()))?;
            if let Ok(d) = std::fs::File::open(&self.dir) {
                let _ = d.sync_all();
            }
        }
        {
            let mut changes = self.naming.lock().unwrap_or_else(|p| p.into_inner());
            self.cache.insert(id, None);
            *changes += 1;
        }
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// How many keys this process destroyed (see the field).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Seal `plains` with `key` (id `id`): see [`PersonalKeys::encrypt_all`].
fn seal_all<const N: usize>(
    id: &str,
    key: &[u8; 32],
    plains: [&str; N],
) -> Result<[String; N], KeyStoreError> {
    // A random 24-byte nonce never repeats in practice; the thread's CSPRNG (seeded
    // from the OS) makes it without a system call.
    let mut nonce = [0u8; 24];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
    let sub = xchacha::Subkey::new(key, &nonce)
        .ok_or_else(|| KeyStoreError("encryption failed".into()))?;
    let first = u64::from_le_bytes(nonce[16..].try_into().unwrap_or_default());
    let mut sealed = Vec::with_capacity(N);
    for (i, plain) in (0u64..).zip(plains) {
        nonce[16..].copy_from_slice(&first.wrapping_add(i).to_le_bytes());
        // nonce ‖ ciphertext ‖ tag, encrypted in place in one buffer, and the stored
        // text written into one string of its final size.
        let mut blob = Vec::with_capacity(24 + plain.len() + 16);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(plain.as_bytes());
        let tag = sub
            .seal_in_place(&nonce, &mut blob[24..])
            .ok_or_else(|| KeyStoreError("encryption failed".into()))?;
        blob.extend_from_slice(&tag);
        let mut out =
            String::with_capacity(PREFIX.len() + id.len() + 1 + blob.len().div_ceil(3) * 4);
        out.push_str(PREFIX);
        out.push_str(id);
        out.push(':');
        base64_simd::URL_SAFE_NO_PAD.encode_append(&blob, &mut out);
        sealed.push(out);
    }
    // One value for each of the N plain texts.
    sealed
        .try_into()
        .map_err(|_| KeyStoreError("encryption failed".into()))
}

/// XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03): the 32-byte subkey is HChaCha20 of the
/// key and the nonce's first 16 bytes (RustCrypto's `chacha20`), then ChaCha20-Poly1305
/// (RFC 8439) with the nonce `0000 ‖ nonce[16..24]` — ring's, already in the tree for TLS.
/// Why not the `chacha20poly1305` crate as before: its Poly1305 backend (AVX2) precomputes
/// for long messages, and for the few hundred bytes of a personal value that set-up was
/// most of the cost; sealing was the largest single part of a SCIM create (two values
/// each). The values are the same (`tests::same_values_as_the_chacha20poly1305_crate`).
mod xchacha {
    use chacha20::cipher::consts::U10;
    use chacha20::cipher::generic_array::GenericArray;
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};

    /// The ChaCha20-Poly1305 key of every nonce that starts with the same 16 bytes.
    pub struct Subkey(LessSafeKey);

    impl Subkey {
        /// HChaCha20 of `key` and `nonce[..16]`.
        pub fn new(key: &[u8; 32], nonce: &[u8; 24]) -> Option<Subkey> {
            let sub = chacha20::hchacha::<U10>(
                GenericArray::from_slice(key),
                GenericArray::from_slice(&nonce[..16]),
            );
            Some(Subkey(LessSafeKey::new(
                UnboundKey::new(&CHACHA20_POLY1305, &sub).ok()?,
            )))
        }

        /// Encrypt `text` in place under `nonce` (whose first 16 bytes made this subkey);
        /// the 16-byte tag.
        pub fn seal_in_place(&self, nonce: &[u8; 24], text: &mut [u8]) -> Option<[u8; 16]> {
            let tag = self
                .0
                .seal_in_place_separate_tag(inner(nonce), Aad::empty(), text)
                .ok()?;
            tag.as_ref().try_into().ok()
        }

        /// Decrypt `sealed` (ciphertext ‖ tag) in place under `nonce`.
        fn open_in_place<'a>(
            &self,
            nonce: &[u8; 24],
            sealed: &'a mut [u8],
        ) -> Option<&'a mut [u8]> {
            self.0
                .open_in_place(inner(nonce), Aad::empty(), sealed)
                .ok()
        }
    }

    /// The ChaCha20 nonce under the subkey: `0000 ‖ nonce[16..24]`.
    fn inner(nonce: &[u8; 24]) -> Nonce {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&nonce[16..]);
        Nonce::assume_unique_for_key(n)
    }

    /// Encrypt `text` in place; the 16-byte tag.
    #[cfg(test)]
    pub fn seal_in_place(key: &[u8; 32], nonce: &[u8; 24], text: &mut [u8]) -> Option<[u8; 16]> {
        Subkey::new(key, nonce)?.seal_in_place(nonce, text)
    }

    /// Decrypt `sealed` (ciphertext ‖ tag) in place; the plain text, `None` when the tag
    /// does not verify.
    pub fn open_in_place<'a>(
        key: &[u8; 32],
        nonce: &[u8; 24],
        sealed: &'a mut [u8],
    ) -> Option<&'a mut [u8]> {
        Subkey::new(key, nonce)?.open_in_place(nonce, sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A named key made by many first users at once is one key: every value sealed
    /// under it opens, also after a restart (each made its own, one failed renaming the
    /// shared temporary file, and what the losers sealed never opened again).
    #[test]
    fn a_named_key_made_at_once_by_many_is_one_key() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let keys = std::sync::Arc::new(PersonalKeys::open(dir.path()).unwrap());
            let sealed: Vec<String> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..8)
                    .map(|i| {
                        let keys = keys.clone();
                        scope.spawn(move || {
                            let id = keys.named("webhooks").unwrap();
                            keys.encrypt(&id, &format!("secret-{i}")).unwrap()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let reopened = PersonalKeys::open(dir.path()).unwrap();
            for (i, s) in sealed.iter().enumerate() {
                assert_eq!(reopened.decrypt(s), Some(format!("secret-{i}")), "{i}");
            }
        }
    }

    /// A read of the disk that found nothing just before a named key was made, and
    /// comes back after, does not hide that key (the interleaving that made the test
    /// above fail once in CI: sealing with the key then failed with "does not exist"); nor
    /// does one that found a key just before it was destroyed bring it back.
    #[test]
    fn a_read_of_the_disk_older_than_a_change_is_not_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let keys = PersonalKeys::open(dir.path()).unwrap();
        let seen = keys.disk_changes();
        let found = keys.read_key_file("webhooks");
        assert_eq!(found, None);
        let id = keys.named("webhooks").unwrap();
        keys.remember_from_disk("webhooks", found, seen);
        let sealed = keys.encrypt(&id, "secret").unwrap();
        assert_eq!(keys.decrypt(&sealed).as_deref(), Some("secret"));

        let seen = keys.disk_changes();
        let found = keys.read_key_file("webhooks");
        assert!(found.is_some());
        keys.destroy("webhooks").unwrap();
        keys.remember_from_disk("webhooks", found, seen);
        assert_eq!(keys.decrypt(&sealed), None);

        // With nothing in between, what was read is remembered.
        let seen = keys.disk_changes();
        keys.remember_from_disk("other", Some([9; 32]), seen);
        assert_eq!(keys.key("other"), Some([9; 32]));
    }

    /// Values sealed here open with the `chacha20poly1305` crate's XChaCha20-Poly1305 (as
    /// every value stored before was sealed) and the other way round, at every length
    /// around the block sizes; a changed byte never opens.
    #[test]
    fn same_values_as_the_chacha20poly1305_crate() {
        use chacha20poly1305::aead::{Aead, KeyInit};
        use chacha20poly1305::{XChaCha20Poly1305, XNonce};
        for len in (0..300).chain([1000, 4096]) {
            let key: [u8; 32] = rand::random();
            let nonce: [u8; 24] = rand::random();
            let plain: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let reference = XChaCha20Poly1305::new((&key).into());
            let theirs = reference
                .encrypt(XNonce::from_slice(&nonce), plain.as_slice())
                .unwrap();
            let mut ours = plain.clone();
            let tag = xchacha::seal_in_place(&key, &nonce, &mut ours).unwrap();
            ours.extend_from_slice(&tag);
            assert_eq!(ours, theirs, "length {len}");
            let mut sealed = theirs.clone();
            assert_eq!(
                xchacha::open_in_place(&key, &nonce, &mut sealed).unwrap(),
                plain.as_slice()
            );
            let mut tampered = theirs.clone();
            tampered[len / 2] ^= 1;
            assert!(xchacha::open_in_place(&key, &nonce, &mut tampered).is_none());
            let mut other_nonce = nonce;
            other_nonce[20] ^= 1;
            let mut sealed = theirs.clone();
            assert!(xchacha::open_in_place(&key, &other_nonce, &mut sealed).is_none());
        }
    }

    /// The cache's shards share the keys: a rehash (growth) holds one shard's lock over a
    /// sixty-fourth of the keys, not every request's over all of them. And a key is found
    /// in the shard it went to, whatever the map that shard picked.
    #[test]
    fn the_key_cache_spreads_keys_over_its_shards() {
        let cache = KeyCache::new();
        let n = KeyCache::SHARDS * 200;
        let ids: Vec<String> = (0..n).map(|_| crate::ids::new_ulid()).collect();
        for (i, id) in ids.iter().enumerate() {
            cache.insert(id, Some([i as u8; 32]));
        }
        let sizes: Vec<usize> = cache
            .shards
            .iter()
            .map(|s| s.read().unwrap().len())
            .collect();
        assert_eq!(sizes.iter().sum::<usize>(), n);
        // 200 expected in each: a fair pick stays far inside these bounds.
        assert!(
            sizes.iter().all(|&s| (100..=300).contains(&s)),
            "keys per shard: {sizes:?}"
        );
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(cache.get(id), Some(Some([i as u8; 32])));
        }
        // A destroyed key stays destroyed when the store is read again.
        cache.insert(&ids[0], None);
        cache.insert_new(&ids[0], [7; 32]);
        assert_eq!(cache.get(&ids[0]), Some(None));
        assert_eq!(cache.get("unknown"), None);
    }

    /// `ulid_bytes` takes exactly the ids that are the lower-case encoding of their value,
    /// as the `ulid` crate encodes and decodes them: random values, and random 26-byte
    /// texts over an alphabet with upper case, the letters an encoder never writes and
    /// first digits past 7.
    #[test]
    fn ulid_bytes_agrees_with_the_ulid_crate() {
        use rand::Rng;
        let mut rng = rand::rng();
        for _ in 0..20_000 {
            let u = ulid::Ulid(rng.random());
            let id = crate::ids::lowercase(u);
            assert_eq!(ulid_bytes(&id), Some(u.0.to_be_bytes()), "{id}");
        }
        let alphabet = b"0123456789abcdefghjkmnpqrstvwxyzABCZilouILOU89-";
        for _ in 0..200_000 {
            let len = if rng.random_bool(0.9) {
                26
            } else {
                rng.random_range(0..30)
            };
            let text: String = (0..len)
                .map(|i| {
                    // Mostly valid digits, so that most texts get far into the decode.
                    let pool = if i > 0 && rng.random_bool(0.9) {
                        32
                    } else {
                        alphabet.len()
                    };
                    alphabet[rng.random_range(0..pool)] as char
                })
                .collect();
            let canonical = ulid::Ulid::from_string(&text)
                .ok()
                .filter(|u| crate::ids::lowercase(*u) == text);
            assert_eq!(
                ulid_bytes(&text),
                canonical.map(|u| u.0.to_be_bytes()),
                "{text}"
            );
        }
    }

    /// Only a ULID as `new_ulid` writes it is kept by its bytes: another spelling of the
    /// same value (upper case), an overflowing one, or any other name is kept by its text,
    /// so two ids never share a key. (Round trips of new ids: `ulid_bytes_agrees_with_the_ulid_crate`.)
    #[test]
    fn the_key_cache_keeps_ulids_by_value_and_other_names_by_text() {
        let id = crate::ids::new_ulid();
        let upper = id.to_ascii_uppercase();
        let overflowing = format!("8{}", &id[1..]);
        for other in [upper.as_str(), &overflowing, &id[1..], "webhooksecret", ""] {
            assert_eq!(ulid_bytes(other), None, "{other}");
        }
        assert_eq!(ulid_bytes("7zzzzzzzzzzzzzzzzzzzzzzzzz"), Some([0xff; 16]));
        let cache = KeyCache::new();
        cache.insert(&id, Some([1; 32]));
        cache.insert(&upper, Some([2; 32]));
        cache.insert_new("webhooksecret", [3; 32]);
        cache.insert_new(&id, [4; 32]);
        assert_eq!(cache.get(&id), Some(Some([1; 32])));
        assert_eq!(cache.get(&upper), Some(Some([2; 32])));
        assert_eq!(cache.get("webhooksecret"), Some(Some([3; 32])));
        assert_eq!(cache.get(&overflowing), None);
        cache.insert(&id, None);
        assert_eq!(cache.get(&id), Some(None));
        assert_eq!(cache.get(&upper), Some(Some([2; 32])));
    }

    #[test]
    fn encrypt_decrypt_destroy() {
        let dir = tempfile::tempdir().unwrap();
        let keys = PersonalKeys::open(dir.path()).unwrap();
        let id = keys.create().unwrap();
        let stored = keys.encrypt(&id, "alice@example.com").unwrap();
        assert!(!stored.contains("alice"));
        assert_eq!(key_id(&stored), Some(id.as_str()));
        assert_eq!(keys.decrypt(&stored).as_deref(), Some("alice@example.com"));
        assert_eq!(
            keys.decrypt("plain@old.example").as_deref(),
            Some("plain@old.example")
        );
        keys.destroy(&id).unwrap();
        assert_eq!(keys.show(&stored), ERASED);
        // A fresh store (another process) cannot read it either.
        let again = PersonalKeys::open(dir.path()).unwrap();
        assert_eq!(again.decrypt(&stored), None);
    }

    /// The SIMD base64 of sealed values is the `base64` crate's (URL-safe, no padding),
    /// both ways, at every length around its block sizes.
    #[test]
    fn sealed_text_is_the_base64_crates() {
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
            let mut ours = String::from("enc:");
            base64_simd::URL_SAFE_NO_PAD.encode_append(&bytes, &mut ours);
            assert_eq!(ours[4..], URL_SAFE_NO_PAD.encode(&bytes), "length {len}");
            let back = base64_simd::URL_SAFE_NO_PAD.decode_to_vec(ours[4..].as_bytes());
            assert_eq!(back.unwrap(), bytes);
        }
    }

    /// Values sealed together open alone (here and with the `chacha20poly1305` crate's
    /// XChaCha20-Poly1305, given the key), and no two of them, nor of many such batches,
    /// share a nonce.
    #[test]
    fn values_sealed_together_open_alone_under_distinct_nonces() {
        use chacha20poly1305::aead::{Aead, KeyInit};
        use chacha20poly1305::{XChaCha20Poly1305, XNonce};
        let dir = tempfile::tempdir().unwrap();
        let keys = PersonalKeys::open(dir.path()).unwrap();
        let id = keys.create().unwrap();
        let key = keys.key(&id).unwrap();
        let reference = XChaCha20Poly1305::new((&key).into());
        let mut nonces = std::collections::HashSet::new();
        for round in 0..1000 {
            let plains = ["alice@example.com", "", "{\"name\":\"x\"}"];
            let plains = plains.map(|p| if round % 2 == 0 { p } else { "é\u{0}" });
            let sealed = keys.encrypt_all(&id, plains).unwrap();
            for (s, p) in sealed.iter().zip(plains) {
                assert_eq!(key_id(s), Some(id.as_str()));
                assert_eq!(keys.decrypt(s).as_deref(), Some(p));
                let data = s.rsplit_once(':').unwrap().1;
                let blob = URL_SAFE_NO_PAD.decode(data).unwrap();
                let (nonce, ciphertext) = blob.split_at(24);
                let opened = reference
                    .decrypt(XNonce::from_slice(nonce), ciphertext)
                    .unwrap();
                assert_eq!(opened, p.as_bytes());
                assert!(nonces.insert(nonce.to_vec()), "a nonce was used twice");
            }
        }
    }

    /// A key taken from the pool was durable before it was handed out: another process
    /// reads what it sealed with no flush of the batch, the batch has nothing pending,
    /// and destroying it still removes it from the file for good.
    #[test]
    fn pooled_keys_are_durable_before_they_are_handed_out() {
        let dir = tempfile::tempdir().unwrap();
        let keys = std::sync::Arc::new(PersonalKeys::open(dir.path()).unwrap());
        keys.set_batched();
        // The pool starts empty: the first key waits for its batch, and a refill is asked.
        let first = keys.create_pooled().unwrap();
        let [first_sealed] = keys
            .encrypt_all_fresh(&first, ["first@example.com"])
            .unwrap();
        let first = first.into_id();
        assert!(keys.has_pending());
        keys.flush_pending().unwrap();
        assert_eq!(
            PersonalKeys::open(dir.path())
                .unwrap()
                .decrypt(&first_sealed)
                .as_deref(),
            Some("first@example.com")
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while keys.pool_len() < POOL && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(keys.pool_len(), POOL);
        // In the cache already: taking one costs the request no insert.
        for FreshKey { id, .. } in keys.pool.lock().unwrap().iter() {
            assert!(
                matches!(keys.cache.get(id), Some(Some(_))),
                "{id} not cached"
            );
        }
        let fresh: Vec<FreshKey> = (0..3).map(|_| keys.create_pooled().unwrap()).collect();
        assert!(!keys.has_pending(), "nothing for the batch to flush");
        let ids: Vec<String> = fresh.iter().map(|k| k.id().to_string()).collect();
        assert!(!ids.contains(&first));
        // Sealed with the bytes the pool handed out, opened below with the stored ones.
        let sealed: Vec<String> = fresh
            .iter()
            .map(|k| {
                let [s] = keys
                    .encrypt_all_fresh(k, [&format!("{}@example.com", k.id())])
                    .unwrap();
                s
            })
            .collect();
        let other = PersonalKeys::open(dir.path()).unwrap();
        for (id, s) in ids.iter().zip(&sealed) {
            assert_eq!(other.decrypt(s).unwrap(), format!("{id}@example.com"));
        }
        keys.destroy(&ids[1]).unwrap();
        let text = std::fs::read_to_string(dir.path().join("keys/personal").join(STORE)).unwrap();
        assert!(!text.contains(&ids[1]));
        assert_eq!(
            PersonalKeys::open(dir.path()).unwrap().decrypt(&sealed[1]),
            None
        );
        assert!(PersonalKeys::open(dir.path())
            .unwrap()
            .decrypt(&sealed[2])
            .is_some());
    }

    /// Batched keys: readable at once, durable (readable by another process) after
    /// `flush_pending`, never in the batch file once destroyed.
    #[test]
    fn batched_keys_flush_together_and_destroy_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let keys = PersonalKeys::open(dir.path()).unwrap();
        keys.set_batched();
        let ids: Vec<String> = (0..5).map(|_| keys.create().unwrap()).collect();
        let sealed: Vec<String> = ids
            .iter()
            .map(|id| keys.encrypt(id, &format!("{id}@example.com")).unwrap())
            .collect();
        assert_eq!(
            keys.decrypt(&sealed[0]).unwrap(),
            format!("{}@example.com", ids[0])
        );
        // Not durable yet: another process cannot read them.
        assert_eq!(
            PersonalKeys::open(dir.path()).unwrap().decrypt(&sealed[1]),
            None
        );
        keys.flush_pending().unwrap();
        let store = dir.path().join("keys/personal").join(STORE);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&store).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_dir(dir.path().join("keys/personal"))
                .unwrap()
                .count(),
            1,
            "one file"
        );
        let again = PersonalKeys::open(dir.path()).unwrap();
        for (id, s) in ids.iter().zip(&sealed) {
            assert_eq!(again.decrypt(s).unwrap(), format!("{id}@example.com"));
        }
        // More keys append to the same file.
        let later = keys.create().unwrap();
        let later_sealed = keys.encrypt(&later, "later").unwrap();
        keys.flush_pending().unwrap();
        let key_text = |id: &str| {
            std::fs::read_to_string(&store)
                .unwrap()
                .lines()
                .find(|l| l.starts_with(id))
                .map(str::to_string)
        };
        let destroyed_line = key_text(&ids[2]).unwrap();
        keys.destroy(&ids[2]).unwrap();
        assert_eq!(keys.decrypt(&sealed[2]), None);
        let text = std::fs::read_to_string(&store).unwrap();
        assert!(
            !text.contains(&destroyed_line) && !text.contains(&ids[2]),
            "{text}"
        );
        let fresh = PersonalKeys::open(dir.path()).unwrap();
        assert_eq!(fresh.decrypt(&sealed[2]), None);
        assert_eq!(
            fresh.decrypt(&sealed[3]).unwrap(),
            format!("{}@example.com", ids[3])
        );
        assert_eq!(fresh.decrypt(&later_sealed).unwrap(), "later");
        // A key destroyed before it was flushed never reaches the file.
        let short = keys.create().unwrap();
        keys.destroy(&short).unwrap();
        keys.flush_pending().unwrap();
        assert!(key_text(&short).is_none());
    }
}

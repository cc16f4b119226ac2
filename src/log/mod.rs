//! The event log: an append-only, hash-chained sequence of events.
//!
//! - The events are in an append-only file, `<data-dir>/events.log` (see [`segment`]):
//!   for each event `len (u32 LE) ‖ chain hash (32 bytes) ‖ encoded envelope`, where
//!   `chain hash = blake3(previous chain hash ‖ encoded envelope)` and the hash before
//!   the first event is 32 zero bytes, and a commit mark after every appended batch.
//! - Snapshots are files in `<data-dir>/snapshots/` (see [`snapshots`]), one encoded
//!   [`Snapshot`] of the read models each, named by its position. Snapshots are derived
//!   data: a bad one is skipped, never trusted over the log.
//!
//! Logs written before the file existed kept their events in that sled database too
//! (tree `events`, chunks of up to 64 events keyed by their first position); opening
//! such a data directory moves them into the file once (see [`EventLog::open_with_cache`]).
//!
//! Only the writer thread appends (see `crate::writer`); readers of ranges (verify,
//! replay) may run at any time: they read only up to the end of the last acknowledged
//! batch.

pub mod export;
pub mod postgres;
pub mod segment;
pub mod snapshots;

pub(crate) use segment::owner_only;
pub use snapshots::{Snapshot, SnapshotStore};

use gatehouse_projections::State;
use gatehouse_schemas::{decode, encode, Envelope};
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;

pub const HASH_LEN: usize = 32;
pub type ChainHash = [u8; HASH_LEN];
pub const GENESIS_HASH: ChainHash = [0u8; HASH_LEN];
/// Most events stored under one sled key by the sled-only log of earlier versions.
pub const CHUNK_EVENTS: usize = 64;

/// Storage and integrity failures. All of them are fatal for the server.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("storage error: {0}")]
    Storage(#[from] sled::Error),
    #[error("the hash chain breaks at position {seq}: {reason}")]
    ChainBroken { seq: u64, reason: String },
    #[error("the event at position {seq} does not decode: {reason}")]
    Undecodable { seq: u64, reason: String },
    /// The shared log (`--store postgres://…`) could not be read or written.
    #[error("shared log: {0}")]
    Database(String),
    /// A batch could not be written for want of space (before its sync: nothing of it is
    /// in the log, which ends at the previous batch's mark). Not a broken log: the
    /// writer refuses that batch and goes on.
    #[error("the disk is full: {0}")]
    NoSpace(std::io::Error),
    /// `gatehouse import` into this data directory stopped before its end: the log
    /// holds part of the export, which verifies, and would be served as the history.
    #[error("an import into {0} did not finish (`{IMPORT_UNFINISHED}` is there): the log holds only part of the export; empty the data directory and import again")]
    ImportUnfinished(String),
}

/// The file `gatehouse import` keeps in the data directory while it writes: a log it
/// left there is refused until the directory is emptied.
pub const IMPORT_UNFINISHED: &str = "import-unfinished";

impl LogError {
    /// The position the error is about, if any (for exit messages and tests).
    pub fn position(&self) -> Option<u64> {
        match self {
            LogError::Storage(_)
            | LogError::Database(_)
            | LogError::NoSpace(_)
            | LogError::ImportUnfinished(_) => None,
            LogError::ChainBroken { seq, .. } | LogError::Undecodable { seq, .. } => Some(*seq),
        }
    }
}

/// A stored event before decoding.
#[derive(Debug, Clone)]
pub struct RawEvent {
    pub seq: u64,
    pub hash: ChainHash,
    pub bytes: Vec<u8>,
}

/// What a walk over the chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub events: u64,
    pub head_hash: ChainHash,
}

/// How much of the chain start-up checks before serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartupVerify {
    /// Every event's hash from position 1: detects any change to the log, costs a read of
    /// the whole log. A snapshot's state is trusted as written (its checksum read);
    /// `gatehouse verify` and `GET …/audit/chain` compare it with the log's replay.
    Full,
    /// From the newest snapshot on: the snapshot's stored chain hash anchors the tail.
    Tail,
}

pub struct EventLog {
    db: sled::Db,
    /// The file of events, shared by every handle on this log.
    shared: Arc<segment::Shared>,
    /// The writer's append handle (`None` in a [`reader`](Self::reader)).
    file: Option<segment::Appender>,
    snapshots: SnapshotStore,
    head_seq: u64,
    head_hash: ChainHash,
    head_time_ms: u64,
}

/// Remove `<data-dir>/backup/.gatehouse-*.partial` (a backup export a crash stopped:
/// never imported, as its name says) and say how many bytes they held.
fn remove_unfinished_backups(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir.join("backup")) else {
        return 0;
    };
    let mut freed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let unfinished = name
            .to_str()
            .is_some_and(|n| n.starts_with(".gatehouse-") && n.ends_with(".partial"));
        if unfinished {
            let size = entry.metadata().map_or(0, |m| m.len());
            if std::fs::remove_file(entry.path()).is_ok() {
                freed += size;
            }
        }
    }
    freed
}

#[cfg(test)]
fn key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

fn seq_of(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

pub fn chain_hash(prev: &ChainHash, encoded: &[u8]) -> ChainHash {
    let mut h = blake3::Hasher::new();
    h.update(prev);
    h.update(encoded);
    *h.finalize().as_bytes()
}

/// Split a chunk into `(hash, encoded)` records. `first` is the chunk's first position,
/// used only to name the position of a malformed record.
fn parse_chunk(first: u64, chunk: &[u8]) -> Result<Vec<(ChainHash, &[u8])>, LogError> {
    let mut out = Vec::new();
    let mut rest = chunk;
    while !rest.is_empty() {
        let seq = first + out.len() as u64;
        let broken = || LogError::ChainBroken {
            seq,
            reason: "the stored record is truncated".into(),
        };
        let len = u32::from_le_bytes(
            rest.get(..4)
                .ok_or_else(broken)?
                .try_into()
                .expect("4 bytes"),
        ) as usize;
        let hash: ChainHash = rest
            .get(4..4 + HASH_LEN)
            .ok_or_else(broken)?
            .try_into()
            .expect("32 bytes");
        let bytes = rest
            .get(4 + HASH_LEN..4 + HASH_LEN + len)
            .ok_or_else(broken)?;
        out.push((hash, bytes));
        rest = &rest[4 + HASH_LEN + len..];
    }
    Ok(out)
}

#[cfg(test)]
fn push_record(chunk: &mut Vec<u8>, hash: &ChainHash, bytes: &[u8]) {
    chunk.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    chunk.extend_from_slice(hash);
    chunk.extend_from_slice(bytes);
}

/// Open a sled database, waiting briefly for its lock: sled releases its file lock when
/// its background flusher lets go of the database, a moment after the last handle is
/// dropped, so a quick restart in the same process (or right after another process
/// exits) may find it still held. sled wraps the OS error in one of its own, so look at
/// both.
pub fn open_db(config: sled::Config, dir: &Path) -> Result<sled::Db, LogError> {
    let locked = |e: &std::io::Error| {
        e.kind() == std::io::ErrorKind::WouldBlock
            || e.to_string().contains("could not acquire lock")
    };
    let mut attempts = 0;
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e)) if locked(&e) && attempts < 150 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(sled::Error::Io(e)) if locked(&e) => {
                return Err(LogError::Storage(sled::Error::Io(std::io::Error::new(
                    e.kind(),
                    format!("{} is in use by another gatehouse process", dir.display()),
                ))))
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Events per message between the reading thread and the applying thread of a walk.
const WALK_BATCH: usize = 1024;

/// Verified, not yet decoded events on their way from the reading to the decoding
/// thread of a walk: their bytes back to back, one allocation a batch.
#[derive(Default)]
struct RawBatch {
    bytes: Vec<u8>,
    /// (position, end of its bytes)
    ends: Vec<(u64, usize)>,
}

impl RawBatch {
    fn push(&mut self, seq: u64, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
        self.ends.push((seq, self.bytes.len()));
    }

    /// Empty, keeping the memory for the next batch.
    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    fn iter(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&(seq, end)| {
            let b = &self.bytes[start..end];
            start = end;
            (seq, b)
        })
    }
}

/// Move the events of a log written by an earlier version (sled tree `events`) into
/// `events.log`, once: they are copied as stored (hashes included, nothing verified or
/// repaired, so a tampered log stays detectably tampered), the new file is synced and
/// renamed into place, and only then is the sled tree dropped. A crash before the
/// rename leaves the sled tree to copy again; after it, only the tree to drop.
fn migrate_from_sled(db: &sled::Db, dir: &Path) -> Result<(), LogError> {
    if !db.tree_names().iter().any(|n| n.as_ref() == b"events") {
        return Ok(());
    }
    let events = db.open_tree("events")?;
    let path = dir.join(segment::LOG_FILE);
    if !events.is_empty() && !path.exists() {
        // Streamed: a large log is not held in memory twice.
        let tmp = dir.join(format!("{}.migrating", segment::LOG_FILE));
        let mut out = segment::Rewriter::create(&tmp)?;
        let mut count = 0u64;
        for item in events.iter() {
            let (k, v) = item?;
            let first = seq_of(&k).ok_or_else(|| LogError::ChainBroken {
                seq: 0,
                reason: "a key is not a position".into(),
            })?;
            if first != count + 1 {
                // Positions are implied by order in the file: a gap must stay a gap that
                // verification finds, so stop here and leave the sled log as it is.
                return Err(LogError::ChainBroken {
                    seq: count + 1,
                    reason: format!("position {} is missing (next stored is {first})", count + 1),
                });
            }
            for (hash, bytes) in parse_chunk(first, &v)? {
                out.push(&hash, bytes)?;
                count += 1;
            }
        }
        let (index, _) = out.finish()?;
        std::fs::rename(&tmp, &path).map_err(segment::io)?;
        segment::sync_dir(dir)?;
        segment::write_index(&dir.join(segment::INDEX_FILE), &index)?;
        tracing::info!(
            events = count,
            "moved the event log from sled into events.log"
        );
    }
    db.drop_tree("events")?;
    db.flush()?;
    Ok(())
}

/// Create `dir` (and its parents) if missing, readable by its owner only: a data
/// directory holds password hashes and keys. One that exists keeps its mode (the
/// operator's choice).
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// A data directory made by someone else (`mkdir` before the first start) is made the
/// owner's only, as one the server makes is: sled creates its files readable by all
/// (0644), and those hold pending deliveries and the read models' pages.
fn data_dir_owner_only(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(dir) else {
            return;
        };
        if meta.permissions().mode() & 0o077 != 0 {
            match std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
                Ok(()) => tracing::warn!(
                    data_dir = %dir.display(),
                    "the data directory was readable by others: made its owner's only (0700)"
                ),
                Err(e) => tracing::warn!(
                    data_dir = %dir.display(),
                    error = %e,
                    "the data directory is readable by others and could not be made its owner's only"
                ),
            }
        }
    }
}

/// Create (or truncate) `path` for writing, readable by its owner only: exports,
/// backups and key files hold password hashes or secrets.
pub fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let file = opts.open(path)?;
    // The mode applies only to a file it creates: one already there (a `.partial` left
    // by an earlier run) kept its own, and an export was renamed into place readable by
    // all.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

impl EventLog {
    /// Open (or create) the log under `dir`, with the default page cache.
    pub fn open(dir: &Path) -> Result<EventLog, LogError> {
        EventLog::open_with_cache(dir, 8 * 1024 * 1024)
    }

    /// Open (or create) the log under `dir` with a page cache of `cache_bytes`.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<EventLog, LogError> {
        EventLog::open_as(dir, cache_bytes, true)
    }

    /// Open the log under `dir` to read it (`verify`, `replay`): a torn end that the
    /// server would cut off is left as it is.
    pub fn open_to_read(dir: &Path) -> Result<EventLog, LogError> {
        EventLog::open_as(dir, 8 * 1024 * 1024, false)
    }

    fn open_as(dir: &Path, cache_bytes: u64, repair: bool) -> Result<EventLog, LogError> {
        if dir.join(IMPORT_UNFINISHED).exists() {
            return Err(LogError::ImportUnfinished(dir.display().to_string()));
        }
        private_dir(dir).map_err(|e| LogError::Storage(sled::Error::Io(e)))?;
        if repair {
            data_dir_owner_only(dir);
        }
        let db = open_db(
            sled::Config::new()
                .path(dir.join("log"))
                // sled's default 1 GiB page cache is far more than an access server
                // needs, and fills slowly as the log grows: memory would creep for hours.
                .cache_capacity(cache_bytes),
            dir,
        )?;
        let snapshots = SnapshotStore::open(dir)?;
        if repair {
            // What a crash in the middle of a snapshot or a backup left: never read,
            // and removed only by the next one to finish, which a server that keeps
            // crashing may never reach (the disk fills with them).
            let snaps = snapshots.remove_unfinished()?;
            let backups = remove_unfinished_backups(dir);
            if snaps + backups > 0 {
                tracing::info!(
                    snapshots = snaps,
                    backups = backups,
                    "removed the files (bytes) of snapshots and backups a crash left unfinished"
                );
            }
        }
        snapshots.migrate_from_sled(&db)?;
        migrate_from_sled(&db, dir)?;
        let expect = segment::Expect {
            repair,
            snapshot_at: snapshots.newest_claimed()?,
        };
        let opened = segment::open(dir, |bytes| decode(bytes).ok().map(|e| e.seq), expect)?;
        let head_time_ms = match &opened.head_bytes {
            None => 0,
            Some(bytes) => {
                decode(bytes)
                    .map_err(|e| LogError::Undecodable {
                        seq: opened.head_seq,
                        reason: e.to_string(),
                    })?
                    .time_ms
            }
        };
        Ok(EventLog {
            db,
            shared: opened.shared,
            file: Some(opened.file),
            snapshots,
            head_seq: opened.head_seq,
            head_hash: opened.head_hash,
            head_time_ms,
        })
    }

    pub fn head_seq(&self) -> u64 {
        self.head_seq
    }

    pub fn head_hash(&self) -> ChainHash {
        self.head_hash
    }

    pub fn head_time_ms(&self) -> u64 {
        self.head_time_ms
    }

    /// Append envelopes (already numbered `head+1..`) and flush them to disk before
    /// returning: when this returns `Ok`, the events survive a crash.
    pub fn append(&mut self, envelopes: &[Envelope]) -> Result<(), LogError> {
        if envelopes.is_empty() {
            return Ok(());
        }
        let mut prev = self.head_hash;
        let mut seq = self.head_seq;
        let mut time = self.head_time_ms;
        let mut records = Vec::with_capacity(envelopes.len());
        for env in envelopes {
            // INVARIANT: the writer numbers envelopes contiguously and never lets time go back.
            assert_eq!(env.seq, seq + 1, "envelopes must be numbered contiguously");
            assert!(env.time_ms >= time, "event time must never decrease");
            let bytes = encode(env);
            let hash = chain_hash(&prev, &bytes);
            records.push((hash, bytes));
            prev = hash;
            seq = env.seq;
            time = env.time_ms;
        }
        // One write and one sync for all of them: this is the group commit.
        self.write_records(&records)?;
        self.head_hash = prev;
        self.head_seq = seq;
        self.head_time_ms = time;
        Ok(())
    }

    fn write_records(&mut self, records: &[(ChainHash, Vec<u8>)]) -> Result<(), LogError> {
        let file = self
            .file
            .as_mut()
            .expect("INVARIANT: only the writer's handle appends");
        let refs: Vec<(ChainHash, &[u8])> =
            records.iter().map(|(h, b)| (*h, b.as_slice())).collect();
        segment::append(&self.shared, file, self.head_seq + 1, &refs)
    }

    /// Append events exactly as another log stored them (an import): each must be the
    /// next position, its time must not go back, and the hash this log computes must be
    /// the one the export recorded — so an import reproduces the chain bit for bit.
    pub fn append_raw(&mut self, records: &[RawEvent]) -> Result<(), LogError> {
        let mut prev = self.head_hash;
        let mut seq = self.head_seq;
        let mut time = self.head_time_ms;
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            if r.seq != seq + 1 {
                return Err(LogError::ChainBroken {
                    seq: seq + 1,
                    reason: format!("position {} follows {seq}", r.seq),
                });
            }
            let env = decode(&r.bytes).map_err(|e| LogError::Undecodable {
                seq: r.seq,
                reason: e.to_string(),
            })?;
            if env.seq != r.seq || env.time_ms < time {
                return Err(LogError::ChainBroken {
                    seq: r.seq,
                    reason: "the event's own position or time does not fit".into(),
                });
            }
            let hash = chain_hash(&prev, &r.bytes);
            if hash != r.hash {
                return Err(LogError::ChainBroken {
                    seq: r.seq,
                    reason: "the recorded hash does not match the event".into(),
                });
            }
            out.push((hash, r.bytes.clone()));
            prev = hash;
            seq = r.seq;
            time = env.time_ms;
        }
        self.write_records(&out)?;
        self.head_hash = prev;
        self.head_seq = seq;
        self.head_time_ms = time;
        Ok(())
    }

    /// Raw stored events `from..=to`, handed to `f` (an export); `f` returns false to stop.
    pub fn for_each_stored(
        &self,
        from: u64,
        to: Option<u64>,
        mut f: impl FnMut(u64, &ChainHash, &[u8]) -> bool,
    ) -> Result<(), LogError> {
        self.for_each_raw(from.max(1), to, |seq, hash, bytes| Ok(f(seq, hash, bytes)))
    }

    /// Visit stored events from position `from`, in order, without copying them, up to
    /// the end of the last acknowledged batch. The position passed is the one implied by
    /// the record's place in the file.
    fn for_each_raw(
        &self,
        from: u64,
        to: Option<u64>,
        mut f: impl FnMut(u64, &ChainHash, &[u8]) -> Result<bool, LogError>,
    ) -> Result<(), LogError> {
        let from = from.max(1);
        if to.is_some_and(|t| t < from) {
            return Ok(());
        }
        let start = self.shared.start_for(from);
        // The acknowledged end, once: an append meanwhile is not the index's doing.
        let head_end = self.shared.end();
        let end = match to {
            Some(to) => self.shared.end_for(to).min(head_end),
            None => head_end,
        };
        if let Some(next) = self.scan_from(start, end, head_end, from, to, &mut f)? {
            // The index (`events.idx`, a hint) gave a place whose event is another
            // position, or ended the range before its last position: read the rest from
            // the start of the file to its acknowledged end, whatever the index says.
            tracing::warn!(
                position = next,
                "the log's index (events.idx) is wrong; reading from the start (delete the \
                 file while the server is stopped: it is rebuilt from the log)"
            );
            let all = (0, 1);
            if self
                .scan_from(all, head_end, head_end, next, to, &mut f)?
                .is_some()
            {
                return Err(LogError::ChainBroken {
                    seq: next,
                    reason: "the log ends before this position".into(),
                });
            }
        }
        Ok(())
    }

    /// [`for_each_raw`](Self::for_each_raw) from `(offset, position)` up to byte `end`
    /// (`head_end`: the acknowledged end): `Some(next)` when the index that chose them
    /// may be wrong (the event at a non-zero `offset` does not decode or is another
    /// position, a record runs past an `end` the index gave, or the range ended before
    /// `to` short of the log's end), with `next` the first position not yet given to
    /// `f`. Read from the start, the log itself then says whether it is damaged.
    fn scan_from(
        &self,
        (offset, mut seq): (u64, u64),
        end: u64,
        head_end: u64,
        from: u64,
        to: Option<u64>,
        f: &mut impl FnMut(u64, &ChainHash, &[u8]) -> Result<bool, LogError>,
    ) -> Result<Option<u64>, LogError> {
        let indexed = offset > 0 || end < head_end;
        let mut first = offset > 0;
        let mut misplaced = false;
        let mut stopped = false;
        let mut last_hash = None;
        let torn = segment::scan(&self.shared.path, offset, end, |at, record| {
            let (hash, bytes) = match record {
                segment::Record::Event { hash, bytes } => (hash, bytes),
                segment::Record::Mark { hash } => {
                    // A mark holds its batch's last hash: one that does not says the disk
                    // changed bytes. Noted (verify fails on it); the events still verify.
                    if last_hash.is_some_and(|h| h != hash) {
                        self.shared.note_damaged_mark(at, seq - 1);
                    }
                    return Ok(true);
                }
            };
            last_hash = Some(hash);
            let this = seq;
            if std::mem::take(&mut first) && !decode(bytes).is_ok_and(|e| e.seq == this) {
                misplaced = true;
                return Ok(false);
            }
            seq += 1;
            if this < from {
                return Ok(true);
            }
            if to.is_some_and(|t| this > t) {
                stopped = true;
                return Ok(false);
            }
            let go_on = f(this, &hash, bytes)?;
            stopped = !go_on;
            Ok(go_on)
        })?;
        let next = seq.max(from);
        if misplaced || (torn.is_err() && indexed) {
            return Ok(Some(next));
        }
        if torn.is_err() {
            return Err(LogError::ChainBroken {
                seq,
                reason: "the stored record is truncated".into(),
            });
        }
        let short = to.is_some_and(|t| seq <= t) && end < head_end;
        Ok((short && !stopped).then_some(next))
    }

    /// Raw events from position `from` (inclusive) to the end.
    pub fn raw_from(&self, from: u64) -> Result<Vec<RawEvent>, LogError> {
        let mut out = Vec::new();
        self.for_each_raw(from, None, |seq, hash, bytes| {
            out.push(RawEvent {
                seq,
                hash: *hash,
                bytes: bytes.to_vec(),
            });
            Ok(true)
        })?;
        Ok(out)
    }

    /// The stored event at `seq`, if it exists.
    pub fn raw_at(&self, seq: u64) -> Result<Option<RawEvent>, LogError> {
        let mut found = None;
        self.for_each_raw(seq, Some(seq), |s, hash, bytes| {
            found = Some(RawEvent {
                seq: s,
                hash: *hash,
                bytes: bytes.to_vec(),
            });
            Ok(false)
        })?;
        Ok(found)
    }

    /// The stored chain hash at `seq`, if that event exists.
    pub fn hash_at(&self, seq: u64) -> Result<Option<ChainHash>, LogError> {
        Ok(self.raw_at(seq)?.map(|r| r.hash))
    }

    /// Walk the chain from position `from` (whose predecessor hash is `prev`), checking
    /// that positions are contiguous, every hash recomputes and every event decodes with
    /// its own position. Calls `each` with every decoded envelope, in order.
    ///
    /// Reading and hashing, and decoding, run on two helper threads while `each` runs
    /// on the caller's, so a replay uses both cores. `each` borrows the envelope: the
    /// decoder frees what it allocated (see `walk_range`).
    pub fn walk(
        &self,
        from: u64,
        prev: ChainHash,
        each: impl FnMut(&Envelope),
    ) -> Result<ChainReport, LogError> {
        self.walk_range(from, prev, None, each)
    }

    /// [`walk`](Self::walk), stopping after position `to` when given.
    pub fn walk_range(
        &self,
        from: u64,
        prev: ChainHash,
        to: Option<u64>,
        mut each: impl FnMut(&Envelope),
    ) -> Result<ChainReport, LogError> {
        // Three stages, each on its own thread: read and verify the chain, decode, apply
        // (the caller's). Decoding named msgpack is about as costly as the other two
        // together, so with two of them on one thread that thread held replay back.
        let (raw_tx, raw_rx) = crossbeam_channel::bounded::<RawBatch>(8);
        // Emptied batches go back to the reader to be filled again. Why: a batch freed on
        // the decoder's thread is not soon reusable by the reader's allocator, so without
        // this every batch took fresh memory, and the kernel clearing fresh pages (slow
        // on the VMs we measure on: a page not used lately costs µs to touch) was a third
        // of the reader's time in a replay, the stage the others waited for.
        let (spare_tx, spare_rx) = crossbeam_channel::bounded::<RawBatch>(10);
        let (tx, rx) = crossbeam_channel::bounded::<Vec<Envelope>>(8);
        // The same for decoded batches: applied, they go back to the decoder whole, so
        // their strings are freed by the thread that allocated them and reused at once
        // (freed on the caller's thread, they made the decoder take fresh memory too).
        let (spare_out_tx, spare_out_rx) = crossbeam_channel::bounded::<Vec<Envelope>>(10);
        std::thread::scope(|scope| {
            let reader = scope.spawn(move || -> Result<ChainReport, LogError> {
                let mut prev = prev;
                let mut expected = from.max(1);
                let mut count = 0;
                let next_batch = || spare_rx.try_recv().unwrap_or_default();
                let mut batch = next_batch();
                let read = self.for_each_raw(expected, to, |seq, hash, bytes| {
                    if seq != expected {
                        return Err(LogError::ChainBroken {
                            seq: expected,
                            reason: format!(
                                "position {expected} is missing (next stored is {seq})"
                            ),
                        });
                    }
                    let computed = chain_hash(&prev, bytes);
                    if computed != *hash {
                        return Err(LogError::ChainBroken {
                            seq,
                            reason: "the stored hash does not match the event".into(),
                        });
                    }
                    batch.push(seq, bytes);
                    if batch.ends.len() == WALK_BATCH {
                        // A closed channel means the caller stopped: stop reading too.
                        if raw_tx
                            .send(std::mem::replace(&mut batch, next_batch()))
                            .is_err()
                        {
                            return Ok(false);
                        }
                    }
                    prev = computed;
                    expected += 1;
                    count += 1;
                    Ok(true)
                });
                // What was verified before a break is decoded and applied too.
                if !batch.ends.is_empty() {
                    let _ = raw_tx.send(batch);
                }
                read?;
                Ok(ChainReport {
                    events: count,
                    head_hash: prev,
                })
            });
            let decoder = scope.spawn(move || -> Result<(), LogError> {
                for mut raw in raw_rx.iter() {
                    let mut out = match spare_out_rx.try_recv() {
                        Ok(mut used) => {
                            used.clear();
                            used
                        }
                        Err(_) => Vec::with_capacity(raw.ends.len()),
                    };
                    let mut failed = None;
                    for (seq, bytes) in raw.iter() {
                        match decode(bytes) {
                            Ok(env) if env.seq == seq => out.push(env),
                            Ok(env) => {
                                failed = Some(LogError::ChainBroken {
                                    seq,
                                    reason: format!(
                                        "the event stored at position {seq} says it is position {}",
                                        env.seq
                                    ),
                                });
                                break;
                            }
                            Err(e) => {
                                failed = Some(LogError::Undecodable {
                                    seq,
                                    reason: e.to_string(),
                                });
                                break;
                            }
                        }
                    }
                    raw.clear();
                    // The reader may have finished: then nobody wants the batch back.
                    let _ = spare_tx.try_send(raw);
                    let stopped = tx.send(out).is_err();
                    if let Some(e) = failed {
                        return Err(e);
                    }
                    if stopped {
                        return Ok(());
                    }
                }
                Ok(())
            });
            // Events before a break are still applied: the caller sees everything up to
            // the first bad position, and the error names that position.
            for batch in rx.iter() {
                for env in &batch {
                    each(env);
                }
                let _ = spare_out_tx.try_send(batch);
            }
            // The decoder only saw positions before any the reader refused, so its
            // error, if it has one, is the first.
            let decoded = decoder
                .join()
                .expect("the log decoder thread does not panic");
            let read = reader.join().expect("the log reader thread does not panic");
            decoded?;
            read
        })
    }

    /// A second handle on the same log for readers (audit, point-in-time reads). It
    /// shares the storage; its `head_*` are those of the moment it was made.
    /// INVARIANT: a reader never appends (only the writer thread does).
    pub fn reader(&self) -> EventLog {
        EventLog {
            db: self.db.clone(),
            shared: self.shared.clone(),
            file: None,
            snapshots: self.snapshots.clone(),
            head_seq: self.head_seq,
            head_hash: self.head_hash,
            head_time_ms: self.head_time_ms,
        }
    }

    /// How many snapshots to keep (0: all; at least 2 otherwise).
    pub fn set_snapshot_keep(&mut self, keep: usize) {
        self.snapshots.keep = keep;
    }

    /// Bytes the stored snapshots take, and how many there are.
    pub fn snapshot_disk(&self) -> Result<(u64, usize), LogError> {
        self.snapshots.disk()
    }

    /// The newest snapshot at or before `seq` that decodes.
    pub fn snapshot_at_or_before(&self, seq: u64) -> Result<Option<(Snapshot, State)>, LogError> {
        for at in self.snapshots.positions()?.into_iter().rev() {
            if at > seq {
                continue;
            }
            if let Some(snap) = self.snapshots.read(at)? {
                if let Ok(state) = State::decode(snap.state_bytes()) {
                    if state.seq == snap.seq {
                        return Ok(Some((snap, state)));
                    }
                }
            }
        }
        Ok(None)
    }

    /// The read models as they were right after position `seq` (0: before the first
    /// event): the nearest snapshot at or before it plus the events after it, through
    /// the same `State::apply` as the live server, verifying the chain on the way.
    pub fn state_at(&self, seq: u64) -> Result<State, LogError> {
        let (mut state, from, prev) = match self.snapshot_at_or_before(seq)? {
            Some((snap, state)) => (state, snap.seq + 1, snap.head_hash),
            None => (State::default(), 1, GENESIS_HASH),
        };
        if seq >= from {
            self.walk_range(from, prev, Some(seq), |env| state.apply(env))?;
        }
        if state.seq != seq {
            return Err(LogError::ChainBroken {
                seq: state.seq + 1,
                reason: format!("position {seq} is not in the log"),
            });
        }
        Ok(state)
    }

    /// Decoded events with their stored hashes, positions `from..=to`, without verifying
    /// the chain (the audit trail's reading; `verify` checks the chain). `f` returns
    /// false to stop.
    pub fn for_each_event(
        &self,
        from: u64,
        to: Option<u64>,
        mut f: impl FnMut(u64, &ChainHash, Envelope) -> bool,
    ) -> Result<(), LogError> {
        self.for_each_raw(from.max(1), to, |seq, hash, bytes| {
            let env = decode(bytes).map_err(|e| LogError::Undecodable {
                seq,
                reason: e.to_string(),
            })?;
            Ok(f(seq, hash, env))
        })
    }

    /// The decoded event at `seq`.
    pub fn event_at(&self, seq: u64) -> Result<Option<Envelope>, LogError> {
        match self.raw_at(seq)? {
            None => Ok(None),
            Some(r) => decode(&r.bytes)
                .map(Some)
                .map_err(|e| LogError::Undecodable {
                    seq,
                    reason: e.to_string(),
                }),
        }
    }

    /// The last position whose event happened at or before `time_ms` (0 when none did),
    /// among positions `1..=head`. Event times never decrease, so this is a binary search.
    pub fn position_at_time(&self, time_ms: u64, head: u64) -> Result<u64, LogError> {
        let (mut lo, mut hi) = (0u64, head);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            let t = self.event_at(mid)?.map(|e| e.time_ms).unwrap_or(u64::MAX);
            if t <= time_ms {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        Ok(lo)
    }

    /// Verify the whole chain.
    pub fn verify(&self) -> Result<ChainReport, LogError> {
        self.verify_with(|_| {})
    }

    /// Verify the whole chain, handing every decoded event to `each` (to replay it).
    /// Every commit mark read must hold its batch's last hash too.
    pub fn verify_with(&self, each: impl FnMut(&Envelope)) -> Result<ChainReport, LogError> {
        let report = self.walk(1, GENESIS_HASH, each)?;
        let damaged = *self
            .shared
            .damaged_mark
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match damaged {
            Some((at, seq)) => Err(LogError::ChainBroken {
                seq,
                reason: format!(
                    "the commit mark at byte {at} of events.log does not hold the hash of \
                     the batch it ends: the disk changed bytes there (the events verify; \
                     restore the log from a backup or an export)"
                ),
            }),
            None => Ok(report),
        }
    }

    /// Rebuild the read models: newest usable snapshot, then the tail of the log.
    /// With [`StartupVerify::Full`] the events before the snapshot are verified too
    /// (hashes only: they need not be decoded, the snapshot already holds their effect).
    pub fn load(&self, verify: StartupVerify) -> Result<(State, LoadReport), LogError> {
        let snapshot_seq = match (verify, self.snapshots.positions()?.last()) {
            (StartupVerify::Full, Some(&seq)) => seq.min(self.head_seq),
            _ => 0,
        };
        let mut snapshot_decode_ms = 0;
        // The prefix check and the snapshot decoding are independent: run them side by side.
        let (prefix, snapshot) = std::thread::scope(|scope| {
            let prefix = scope.spawn(|| self.verify_prefix(snapshot_seq));
            let t = std::time::Instant::now();
            let snapshot = self.usable_snapshot();
            snapshot_decode_ms = t.elapsed().as_millis() as u64;
            (
                prefix.join().expect("the prefix check does not panic"),
                snapshot,
            )
        });
        let prefix_hash = prefix?;
        let (mut state, from, prev) = match snapshot? {
            Some((snap, state)) => {
                if verify == StartupVerify::Full && snap.seq > snapshot_seq {
                    self.verify_prefix(snap.seq)?;
                } else if verify == StartupVerify::Full
                    && snap.seq == snapshot_seq
                    && prefix_hash != snap.head_hash
                {
                    return Err(LogError::ChainBroken {
                        seq: snap.seq,
                        reason: "the snapshot disagrees with the log".into(),
                    });
                }
                (state, snap.seq + 1, snap.head_hash)
            }
            None => (State::default(), 1, GENESIS_HASH),
        };
        let snapshot_seq = from - 1;
        let report = self.walk(from, prev, |env| state.apply(env))?;
        Ok((
            state,
            LoadReport {
                snapshot_seq,
                tail_events: report.events,
                snapshot_decode_ms,
            },
        ))
    }

    /// Hash-only check of positions `1..=to`; returns the chain hash at `to`.
    fn verify_prefix(&self, to: u64) -> Result<ChainHash, LogError> {
        let mut prev = GENESIS_HASH;
        let mut expected = 1;
        if to == 0 {
            return Ok(prev);
        }
        self.for_each_raw(1, Some(to), |seq, hash, bytes| {
            if seq != expected {
                return Err(LogError::ChainBroken {
                    seq: expected,
                    reason: format!("position {expected} is missing"),
                });
            }
            prev = chain_hash(&prev, bytes);
            if prev != *hash {
                return Err(LogError::ChainBroken {
                    seq,
                    reason: "the stored hash does not match the event".into(),
                });
            }
            expected += 1;
            Ok(true)
        })?;
        if expected != to + 1 {
            return Err(LogError::ChainBroken {
                seq: expected,
                reason: format!("position {expected} is missing"),
            });
        }
        Ok(prev)
    }

    /// Positions of the snapshots on disk, oldest first.
    pub fn snapshot_positions(&self) -> Result<Vec<u64>, LogError> {
        self.snapshots.positions()
    }

    /// The newest snapshot that decodes and whose hash agrees with the log.
    fn usable_snapshot(&self) -> Result<Option<(Snapshot, State)>, LogError> {
        for at in self.snapshots.positions()?.into_iter().rev() {
            let Some(snap) = self.snapshots.read(at)?.filter(|s| s.seq == at) else {
                tracing::warn!(seq = at, "skipping a snapshot that does not decode");
                continue;
            };
            if snap.seq > self.head_seq || self.hash_at(snap.seq)? != Some(snap.head_hash) {
                tracing::warn!(
                    seq = snap.seq,
                    "skipping a snapshot that does not match the log"
                );
                continue;
            }
            match State::decode(snap.state_bytes()) {
                Ok(state) if state.seq == snap.seq => return Ok(Some((snap, state))),
                _ => tracing::warn!(
                    seq = snap.seq,
                    "skipping a snapshot whose state does not decode"
                ),
            }
        }
        Ok(None)
    }

    /// Store a snapshot of `state` (which must be the state at the head) and keep only
    /// the newest `snapshot-keep`.
    pub fn write_snapshot(&self, state: &State) -> Result<(), LogError> {
        debug_assert_eq!(state.seq, self.head_seq);
        self.snapshot_store().write(state, self.head_hash)
    }

    /// The size of the last snapshot this process wrote (0: none yet).
    pub fn last_snapshot_size(&self) -> usize {
        self.snapshots.last_size()
    }

    /// Where the log file's acknowledged records end (bytes): how much log a stretch of
    /// writes took.
    pub fn end_offset(&self) -> u64 {
        self.shared.end()
    }

    pub fn snapshot_store(&self) -> SnapshotStore {
        self.snapshots.clone()
    }

    /// Rewrite the stored events with `edit` applied to the record at `seq` (tests only:
    /// it rewrites the whole file, and is not safe while another handle appends).
    fn edit_chunk(
        &self,
        seq: u64,
        edit: impl FnOnce(&mut Vec<(ChainHash, Vec<u8>)>, usize),
    ) -> Result<(), LogError> {
        let mut records: Vec<(ChainHash, Vec<u8>)> = Vec::new();
        self.for_each_raw(1, None, |_, h, b| {
            records.push((*h, b.to_vec()));
            Ok(true)
        })?;
        let index = (seq.max(1) - 1) as usize;
        if index >= records.len() {
            return Ok(());
        }
        edit(&mut records, index);
        let head = records.len() as u64;
        let (new_index, end) = segment::write_all_records(&self.shared.path, records)?;
        segment::write_index(&self.shared.index_path, &new_index)?;
        *self.shared.index.write().unwrap_or_else(|p| p.into_inner()) = new_index;
        self.shared
            .head
            .store(head, std::sync::atomic::Ordering::Release);
        self.shared
            .end
            .store(end, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// For tests and repair tools: overwrite the stored `hash ‖ bytes` at `seq`.
    #[doc(hidden)]
    pub fn overwrite_raw(&self, seq: u64, value: Vec<u8>) -> Result<(), LogError> {
        let hash: ChainHash = value[..HASH_LEN].try_into().expect("at least 32 bytes");
        let bytes = value[HASH_LEN..].to_vec();
        self.edit_chunk(seq, |records, i| records[i] = (hash, bytes))
    }

    /// For tests: remove the stored event at `seq` (later events in its chunk move up).
    #[doc(hidden)]
    pub fn remove_raw(&self, seq: u64) -> Result<(), LogError> {
        self.edit_chunk(seq, |records, i| {
            records.remove(i);
        })
    }

    /// For tests: the stored `hash ‖ bytes` at `seq`.
    #[doc(hidden)]
    pub fn raw_value(&self, seq: u64) -> Result<Option<Vec<u8>>, LogError> {
        Ok(self
            .raw_at(seq)?
            .map(|r| [r.hash.as_slice(), &r.bytes].concat()))
    }

    /// For tests: drop every snapshot so the next start replays from scratch.
    #[doc(hidden)]
    pub fn clear_snapshots(&self) -> Result<(), LogError> {
        self.snapshots.clear()
    }
}

pub struct LoadReport {
    pub snapshot_seq: u64,
    pub tail_events: u64,
    /// Time spent finding and decoding the snapshot.
    pub snapshot_decode_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_schemas::Event;

    fn env(seq: u64) -> Envelope {
        Envelope {
            seq,
            time_ms: 1000 + seq,
            actor: "t".into(),
            origin: "o".into(),
            request_id: "r".into(),
            event: Event::GroupDeleted {
                name: format!("g{seq}"),
            },
        }
    }

    /// An event of about 4 KiB at `seq`: a few thousand of them fill megabytes of log.
    fn big(seq: u64) -> Envelope {
        Envelope {
            event: Event::GroupDeleted {
                name: format!("g{seq}-{}", "x".repeat(4000)),
            },
            ..env(seq)
        }
    }

    /// The walk reads, decodes and applies on three threads: an event that does not
    /// decode in the middle of a batch still stops it at its own position, after every
    /// event before it was applied, and before a broken link further on.
    #[test]
    fn a_walk_stops_at_the_first_bad_position_after_applying_the_ones_before() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(dir.path()).unwrap();
        let n = 3 * WALK_BATCH as u64;
        log.append(&(1..=n).map(env).collect::<Vec<_>>()).unwrap();
        let bad = WALK_BATCH as u64 + 17;
        let prev = log.hash_at(bad - 1).unwrap().unwrap();
        let garbage = b"\xc1 not messagepack".to_vec();
        let mut value = chain_hash(&prev, &garbage).to_vec();
        value.extend_from_slice(&garbage);
        log.overwrite_raw(bad, value).unwrap();
        // And a link that is broken later: the earlier position is the one reported.
        let mut broken = [0u8; 32].to_vec();
        broken.extend_from_slice(&encode(&env(n - 5)));
        log.overwrite_raw(n - 5, broken).unwrap();
        let mut seen = Vec::new();
        let err = log.walk(1, GENESIS_HASH, |e| seen.push(e.seq)).unwrap_err();
        assert!(
            matches!(err, LogError::Undecodable { seq, .. } if seq == bad),
            "{err}"
        );
        assert_eq!(seen, (1..bad).collect::<Vec<_>>());
        // (Its replacement also breaks the link to the next one, which comes after.)
        // From further on: the broken link, with everything before it applied.
        let mut seen = Vec::new();
        let err = log
            .walk(bad + 2, log.hash_at(bad + 1).unwrap().unwrap(), |e| {
                seen.push(e.seq)
            })
            .unwrap_err();
        assert!(
            matches!(err, LogError::ChainBroken { seq, .. } if seq == n - 5),
            "{err}"
        );
        assert_eq!(seen, (bad + 2..n - 5).collect::<Vec<_>>());
    }

    /// Model test against a naive reference (a Vec), with a restart in the middle.
    #[test]
    fn log_matches_a_vec_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut model: Vec<Envelope> = Vec::new();
        for round in 0..3 {
            let mut log = EventLog::open(dir.path()).unwrap();
            assert_eq!(log.head_seq(), model.len() as u64);
            for batch in 0..5u64 {
                let start = log.head_seq() + 1;
                // Sizes 1, 38, 75, 112, 149: single events and batches across chunk limits.
                let envs: Vec<_> = (start..start + batch * 37 + 1).map(env).collect();
                log.append(&envs).unwrap();
                model.extend(envs);
            }
            let mut seen = Vec::new();
            let report = log.walk(1, GENESIS_HASH, |e| seen.push(e.clone())).unwrap();
            assert_eq!(seen, model, "round {round}");
            assert_eq!(report.head_hash, log.head_hash());
            // Walking from the middle of a chunk, anchored on the stored hash before it.
            let from = model.len() as u64 / 2 + 1;
            let mut tail = Vec::new();
            log.walk(from, log.hash_at(from - 1).unwrap().unwrap(), |e| {
                tail.push(e.clone())
            })
            .unwrap();
            assert_eq!(tail, model[from as usize - 1..]);
            assert_eq!(log.raw_at(from).unwrap().unwrap().seq, from);
            // Ranges that end on either side of an indexed position (a bounded scan
            // stops at the index entry after its end) hold exactly their events.
            let stride = segment::STRIDE;
            for to in [
                1,
                stride - 1,
                stride,
                stride + 1,
                2 * stride,
                5 * stride + 3,
            ] {
                let to = to.min(model.len() as u64);
                for from in [1, to / 2 + 1, to] {
                    let prev = match from {
                        1 => GENESIS_HASH,
                        _ => log.hash_at(from - 1).unwrap().unwrap(),
                    };
                    let mut range = Vec::new();
                    log.walk_range(from, prev, Some(to), |e| range.push(e.clone()))
                        .unwrap();
                    assert_eq!(
                        range,
                        model[from as usize - 1..to as usize],
                        "{from}..={to}"
                    );
                    assert_eq!(log.raw_at(to).unwrap().unwrap().seq, to);
                }
            }
        }
    }

    /// A data directory written by a version that kept the events in sled opens with
    /// every event, hash and position as they were, and once moved it stays moved.
    #[test]
    fn a_sled_log_of_an_earlier_version_is_moved_into_the_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let envs: Vec<Envelope> = (1..=150).map(env).collect();
        let mut prev = GENESIS_HASH;
        {
            // The old layout: chunks of up to 64 records keyed by their first position.
            let db = sled::open(dir.path().join("log")).unwrap();
            let events = db.open_tree("events").unwrap();
            for group in envs.chunks(CHUNK_EVENTS) {
                let mut chunk = Vec::new();
                for e in group {
                    let bytes = encode(e);
                    prev = chain_hash(&prev, &bytes);
                    push_record(&mut chunk, &prev, &bytes);
                }
                events.insert(key(group[0].seq), chunk).unwrap();
            }
            db.flush().unwrap();
        }
        for _ in 0..2 {
            let mut log = EventLog::open(dir.path()).unwrap();
            assert_eq!(log.head_seq(), 150);
            assert_eq!(log.head_hash(), prev);
            assert_eq!(log.head_time_ms(), 1150);
            let mut seen = Vec::new();
            let report = log.walk(1, GENESIS_HASH, |e| seen.push(e.clone())).unwrap();
            assert_eq!(report.head_hash, prev);
            assert_eq!(seen[..150], envs[..]);
            assert!(!log.db.tree_names().iter().any(|n| n.as_ref() == b"events"));
            // And it goes on from there (the second round sees this event too).
            if log.head_seq() == 150 {
                log.append(&[env(151)]).unwrap();
                prev = log.head_hash();
                assert_eq!(log.verify().unwrap().events, 151);
                break;
            }
        }
        let log = EventLog::open(dir.path()).unwrap();
        assert_eq!((log.head_seq(), log.head_hash()), (151, prev));
    }

    /// A tampered sled log is moved as it is: the break is still found, at its position.
    #[test]
    fn a_tampered_sled_log_stays_detectably_tampered_after_the_move() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path().join("log")).unwrap();
            let events = db.open_tree("events").unwrap();
            let mut chunk = Vec::new();
            let mut prev = GENESIS_HASH;
            for seq in 1..=10 {
                let mut bytes = encode(&env(seq));
                prev = chain_hash(&prev, &bytes);
                if seq == 7 {
                    let last = bytes.len() - 1;
                    bytes[last] ^= 1;
                }
                push_record(&mut chunk, &prev, &bytes);
            }
            events.insert(key(1), chunk).unwrap();
            db.flush().unwrap();
        }
        let log = EventLog::open(dir.path()).unwrap();
        let err = log.verify().unwrap_err();
        assert_eq!(err.position(), Some(7), "{err}");
    }

    /// What a crash in the middle of a write leaves after the last acknowledged batch —
    /// whole events of a batch whose commit mark never made it, and half a record, over
    /// the zeros written ahead — is cut off on open, and appending goes on from the
    /// acknowledged head.
    #[test]
    fn a_torn_tail_that_was_never_acknowledged_is_cut_off() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let (head_hash, acknowledged_len) = {
            let mut log = EventLog::open(dir.path()).unwrap();
            for start in [1u64, 4, 70] {
                let end = if start == 4 { 69 } else { start + 2 };
                log.append(&(start..=end).map(env).collect::<Vec<_>>())
                    .unwrap();
            }
            (log.head_hash(), log.shared.end())
        };
        // The file runs on in zeros written ahead: they stay across a clean reopen.
        let len = || {
            std::fs::metadata(dir.path().join(segment::LOG_FILE))
                .unwrap()
                .len()
        };
        let ahead = len();
        assert!(ahead > acknowledged_len);
        drop(EventLog::open(dir.path()).unwrap());
        assert_eq!(len(), ahead);
        // Two whole events without their mark, then half of a third.
        let mut torn = Vec::new();
        let mut prev = head_hash;
        for seq in 73..=75 {
            let bytes = encode(&env(seq));
            prev = chain_hash(&prev, &bytes);
            push_record(&mut torn, &prev, &bytes);
        }
        torn.truncate(torn.len() - 20);
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join(segment::LOG_FILE))
            .unwrap()
            .write_all_at(&torn, acknowledged_len)
            .unwrap();
        let mut log = EventLog::open(dir.path()).unwrap();
        assert_eq!((log.head_seq(), log.head_hash()), (72, head_hash));
        assert_eq!(len(), acknowledged_len, "cut off, zeros and all");
        assert_eq!(log.raw_at(73).unwrap().map(|r| r.seq), None);
        // A shorter batch in its place leaves none of the torn bytes after its mark.
        log.append(&(73..=73).map(env).collect::<Vec<_>>()).unwrap();
        drop(log);
        let mut log = EventLog::open(dir.path()).unwrap();
        assert_eq!(log.head_seq(), 73);
        log.append(&(74..=80).map(env).collect::<Vec<_>>()).unwrap();
        assert_eq!(log.verify().unwrap().events, 80);
    }

    /// The writer keeps the file's length itself (a `stat` before each batch made every
    /// sync write the inode too): across the zeros written ahead, again and again, what
    /// it knows is what the file is, the bytes after the last mark are zeros, and a
    /// reopen finds every event.
    #[test]
    fn the_writer_knows_the_file_s_length_without_asking() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(segment::LOG_FILE);
        let mut log = EventLog::open(dir.path()).unwrap();
        let mut lengths = std::collections::BTreeSet::new();
        let mut seq = 0;
        while lengths.len() < 3 {
            log.append(&(seq + 1..=seq + 100).map(big).collect::<Vec<_>>())
                .unwrap();
            seq += 100;
            // Once the zeros being written ahead are in (`known_len` waits for them).
            let known = log.file.as_mut().unwrap().known_len();
            let on_disk = std::fs::metadata(&path).unwrap().len();
            assert_eq!(known, on_disk, "after position {seq}");
            lengths.insert(on_disk);
            let end = log.shared.end();
            assert!(end < on_disk, "zeros ahead of the records");
            // The helper keeps at least half a window of them ahead, and no more than
            // two (it does not run away with the disk).
            assert!(on_disk - end >= segment::AHEAD / 2, "after position {seq}");
            assert!(on_disk - end <= segment::AHEAD * 2, "after position {seq}");
            let file = std::fs::File::open(&path).unwrap();
            let mut tail = vec![0u8; (on_disk - end).min(1 << 16) as usize];
            file.read_exact_at(&mut tail, end).unwrap();
            assert!(tail.iter().all(|&b| b == 0), "after position {seq}");
        }
        drop(log);
        let log = EventLog::open(dir.path()).unwrap();
        assert_eq!(log.head_seq(), seq);
        assert_eq!(log.verify().unwrap().events, seq);
    }

    /// The log's pages further back than `KEEP_CACHED` from its end leave the page cache
    /// as it grows (each time zeros are written ahead), the last ones stay, and every
    /// event still reads back (from the disk).
    #[cfg(target_os = "linux")]
    #[test]
    fn old_pages_of_the_log_leave_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(segment::LOG_FILE);
        let mut log = EventLog::open(dir.path()).unwrap();
        let mut seq = 0;
        while log.shared.end() < segment::KEEP_CACHED + 3 * segment::AHEAD {
            log.append(&(seq + 1..=seq + 100).map(big).collect::<Vec<_>>())
                .unwrap();
            seq += 100;
        }
        log.file.as_mut().unwrap().known_len();
        let end = log.shared.end();
        // Dropped up to `KEEP_CACHED` before where the records were when the zeros were
        // last written ahead (at most a window and a batch before the end), but for the
        // folio across that point (2 MiB at most).
        let dropped = end - segment::KEEP_CACHED - 2 * segment::AHEAD;
        let Some(old) = segment::resident_pages(&path, 0, dropped) else {
            return; // tmpfs: its pages are the file
        };
        assert_eq!(
            old,
            0,
            "pages cached of the log's first {} MiB",
            dropped >> 20
        );
        assert!(segment::resident_pages(&path, end - (1 << 20), end).unwrap() > 0);
        assert_eq!(log.raw_at(1).unwrap().map(|r| r.seq), Some(1));
        drop(log);
        let log = EventLog::open(dir.path()).unwrap();
        assert_eq!(log.verify().unwrap().events, seq);
    }

    /// A crash of the machine that lost a batch's pages (zeros) but kept a later one's
    /// (pages reach the disk in any order before a sync): the log ends at the last mark
    /// before the hole, and nothing after it is taken for an event.
    #[test]
    fn a_hole_of_zeros_before_later_records_is_cut_off_with_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(segment::LOG_FILE);
        let (head_hash, acknowledged_len, lost_end) = {
            let mut log = EventLog::open(dir.path()).unwrap();
            log.append(&(1..=3).map(env).collect::<Vec<_>>()).unwrap();
            let (head, len) = (log.head_hash(), log.shared.end());
            log.append(&(4..=6).map(env).collect::<Vec<_>>()).unwrap();
            let lost_end = log.shared.end();
            log.append(&(7..=9).map(env).collect::<Vec<_>>()).unwrap();
            (head, len, lost_end)
        };
        // The second batch's bytes are zeros (a hole of whole record headers, so that
        // what follows it parses in step); the third batch is intact.
        let bytes = std::fs::read(&path).unwrap();
        let mut holed = bytes[..acknowledged_len as usize].to_vec();
        holed.extend(std::iter::repeat_n(0u8, 5 * segment::HEADER));
        holed.extend_from_slice(&bytes[lost_end as usize..]);
        std::fs::write(&path, &holed).unwrap();
        let log = EventLog::open(dir.path()).unwrap();
        assert_eq!((log.head_seq(), log.head_hash()), (3, head_hash));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), acknowledged_len);
        assert_eq!(log.verify().unwrap().events, 3);
    }

    /// The index is a hint: missing, cut short or wrong, it is rebuilt from the file.
    #[test]
    fn a_missing_or_wrong_index_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let hash = {
            let mut log = EventLog::open(dir.path()).unwrap();
            for start in (1..=400u64).step_by(40) {
                log.append(&(start..start + 40).map(env).collect::<Vec<_>>())
                    .unwrap();
            }
            log.head_hash()
        };
        let index = dir.path().join(segment::INDEX_FILE);
        let good = std::fs::read(&index).unwrap();
        assert_eq!(good.len(), 7 * 8, "positions 1, 65, … 385");
        let wrong_entry = {
            let mut w = good.clone();
            w[6 * 8] += 1;
            w
        };
        for broken in [
            Vec::new(),
            good[..16].to_vec(),
            good[..13].to_vec(),
            wrong_entry,
            vec![0xff; 24],
        ] {
            std::fs::write(&index, &broken).unwrap();
            let log = EventLog::open(dir.path()).unwrap();
            assert_eq!((log.head_seq(), log.head_hash()), (400, hash));
            for seq in [1, 64, 65, 200, 385, 400] {
                assert_eq!(log.event_at(seq).unwrap().unwrap().seq, seq);
            }
            assert_eq!(std::fs::read(&index).unwrap(), good);
        }
    }

    #[test]
    fn snapshot_plus_tail_equals_full_replay() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(dir.path()).unwrap();
        let mut state = State::default();
        for seq in 1..=10 {
            let e = env(seq);
            log.append(std::slice::from_ref(&e)).unwrap();
            state.apply(&e);
            if seq == 6 {
                log.write_snapshot(&state).unwrap();
            }
        }
        let (loaded, report) = log.load(StartupVerify::Full).unwrap();
        assert_eq!(report.snapshot_seq, 6);
        assert_eq!(report.tail_events, 4);
        assert_eq!(loaded.digest(), state.digest());
    }

    /// A data directory of an earlier version: its snapshots in sled become files, the
    /// tree goes, and the log loads from the moved snapshot (not a replay from scratch).
    #[test]
    fn snapshots_kept_in_sled_move_into_files_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::default();
        let head_hash = {
            let mut log = EventLog::open(dir.path()).unwrap();
            for seq in 1..=5 {
                let e = env(seq);
                log.append(std::slice::from_ref(&e)).unwrap();
                state.apply(&e);
            }
            log.head_hash()
        };
        {
            // As an earlier version stored it.
            let db = sled::open(dir.path().join("log")).unwrap();
            let tree = db.open_tree("snapshots").unwrap();
            let mut value = 5u64.to_be_bytes().to_vec();
            value.extend_from_slice(&head_hash);
            value.extend_from_slice(&state.encode());
            tree.insert(key(5), value).unwrap();
            tree.insert(key(9), b"not a snapshot".to_vec()).unwrap();
            db.flush().unwrap();
            std::fs::remove_dir_all(dir.path().join(snapshots::DIR)).unwrap();
        }
        let log = EventLog::open(dir.path()).unwrap();
        assert_eq!(log.snapshot_store().positions().unwrap(), vec![5]);
        let (loaded, report) = log.load(StartupVerify::Full).unwrap();
        assert_eq!((report.snapshot_seq, report.tail_events), (5, 0));
        assert_eq!(loaded.digest(), state.digest());
        assert!(!log
            .db
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == b"snapshots"));
    }
}

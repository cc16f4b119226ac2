//! The event log: an append-only, hash-chained sequence of events in sled.
//!
//! Layout in the sled database (one directory, `<data-dir>/log`):
//! - tree `events`: key = position as 8 big-endian bytes (so sled's order is log order),
//!   value = `chain hash (32 bytes) ‖ encoded envelope`, where
//!   `chain hash = blake3(previous chain hash ‖ encoded envelope)` and the hash before
//!   the first event is 32 zero bytes.
//! - tree `snapshots`: key = position, value = an encoded [`Snapshot`] of the read models
//!   after that position. Snapshots are derived data: a bad one is skipped, never trusted
//!   over the log.
//!
//! Only the writer thread appends (see `crate::writer`); readers of ranges (verify,
//! replay) may run at any time because sled gives them a consistent view per key.

use gatehouse_projections::State;
use gatehouse_schemas::{decode, encode, Envelope};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const HASH_LEN: usize = 32;
pub type ChainHash = [u8; HASH_LEN];
pub const GENESIS_HASH: ChainHash = [0u8; HASH_LEN];

/// Storage and integrity failures. All of them are fatal for the server.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("storage error: {0}")]
    Storage(#[from] sled::Error),
    #[error("the hash chain breaks at position {seq}: {reason}")]
    ChainBroken { seq: u64, reason: String },
    #[error("the event at position {seq} does not decode: {reason}")]
    Undecodable { seq: u64, reason: String },
}

impl LogError {
    /// The position the error is about, if any (for exit messages and tests).
    pub fn position(&self) -> Option<u64> {
        match self {
            LogError::Storage(_) => None,
            LogError::ChainBroken { seq, .. } | LogError::Undecodable { seq, .. } => Some(*seq),
        }
    }
}

/// A stored event before decoding.
pub struct RawEvent {
    pub seq: u64,
    pub hash: ChainHash,
    pub bytes: Vec<u8>,
}

/// The read models as of `seq`, plus the chain hash at `seq` so the tail can be verified
/// from there without reading the events before it.
#[derive(Serialize, Deserialize)]
pub struct Snapshot {
    pub seq: u64,
    pub head_hash: ChainHash,
    /// `State::encode()` bytes.
    pub state: Vec<u8>,
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
    /// Every event from position 1: detects any tampering, costs a read of the whole log.
    Full,
    /// From the newest snapshot on: the snapshot's stored chain hash anchors the tail.
    Tail,
}

pub struct EventLog {
    db: sled::Db,
    events: sled::Tree,
    snapshots: sled::Tree,
    head_seq: u64,
    head_hash: ChainHash,
    head_time_ms: u64,
}

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

impl EventLog {
    /// Open (or create) the log under `dir`.
    pub fn open(dir: &Path) -> Result<EventLog, LogError> {
        std::fs::create_dir_all(dir).map_err(|e| LogError::Storage(sled::Error::Io(e)))?;
        let db = sled::Config::new()
            .path(dir.join("log"))
            // The default 1 GiB page cache is far more than an access server needs.
            .cache_capacity(256 * 1024 * 1024)
            .open()?;
        let events = db.open_tree("events")?;
        let snapshots = db.open_tree("snapshots")?;
        let mut log = EventLog { db, events, snapshots, head_seq: 0, head_hash: GENESIS_HASH, head_time_ms: 0 };
        if let Some((k, v)) = log.events.last()? {
            let seq = seq_of(&k).ok_or_else(|| LogError::ChainBroken { seq: 0, reason: "a key is not a position".into() })?;
            let (hash, bytes) = split(seq, &v)?;
            let env = decode(bytes).map_err(|e| LogError::Undecodable { seq, reason: e.to_string() })?;
            log.head_seq = seq;
            log.head_hash = hash;
            log.head_time_ms = env.time_ms;
        }
        Ok(log)
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
        let mut batch = sled::Batch::default();
        let mut prev = self.head_hash;
        let mut seq = self.head_seq;
        let mut time = self.head_time_ms;
        for env in envelopes {
            // INVARIANT: the writer numbers envelopes contiguously and never lets time go back.
            assert_eq!(env.seq, seq + 1, "envelopes must be numbered contiguously");
            assert!(env.time_ms >= time, "event time must never decrease");
            let bytes = encode(env);
            let hash = chain_hash(&prev, &bytes);
            let mut value = Vec::with_capacity(HASH_LEN + bytes.len());
            value.extend_from_slice(&hash);
            value.extend_from_slice(&bytes);
            batch.insert(&key(env.seq), value);
            prev = hash;
            seq = env.seq;
            time = env.time_ms;
        }
        // One atomic batch and one flush for all of them: this is the group commit.
        self.events.apply_batch(batch)?;
        self.db.flush()?;
        self.head_hash = prev;
        self.head_seq = seq;
        self.head_time_ms = time;
        Ok(())
    }

    /// Raw events from position `from` (inclusive) to the end.
    pub fn raw_from(&self, from: u64) -> impl Iterator<Item = Result<RawEvent, LogError>> + '_ {
        self.events.range(key(from.max(1))..).map(|item| {
            let (k, v) = item?;
            let seq = seq_of(&k).ok_or_else(|| LogError::ChainBroken { seq: 0, reason: "a key is not a position".into() })?;
            let (hash, bytes) = split(seq, &v)?;
            Ok(RawEvent { seq, hash, bytes: bytes.to_vec() })
        })
    }

    /// The stored chain hash at `seq`, if that event exists.
    pub fn hash_at(&self, seq: u64) -> Result<Option<ChainHash>, LogError> {
        match self.events.get(key(seq))? {
            Some(v) => Ok(Some(split(seq, &v)?.0)),
            None => Ok(None),
        }
    }

    /// Walk the chain from position `from` (whose predecessor hash is `prev`), checking
    /// that positions are contiguous, every hash recomputes and every event decodes with
    /// its own position. Calls `each` with every decoded envelope.
    pub fn walk(
        &self,
        from: u64,
        prev: ChainHash,
        mut each: impl FnMut(Envelope),
    ) -> Result<ChainReport, LogError> {
        let mut prev = prev;
        let mut expected = from.max(1);
        let mut count = 0;
        for raw in self.raw_from(expected) {
            let raw = raw?;
            if raw.seq != expected {
                return Err(LogError::ChainBroken {
                    seq: expected,
                    reason: format!("position {expected} is missing (next stored is {})", raw.seq),
                });
            }
            let computed = chain_hash(&prev, &raw.bytes);
            if computed != raw.hash {
                return Err(LogError::ChainBroken { seq: raw.seq, reason: "the stored hash does not match the event".into() });
            }
            let env = decode(&raw.bytes).map_err(|e| LogError::Undecodable { seq: raw.seq, reason: e.to_string() })?;
            if env.seq != raw.seq {
                return Err(LogError::ChainBroken {
                    seq: raw.seq,
                    reason: format!("the event stored at position {} says it is position {}", raw.seq, env.seq),
                });
            }
            each(env);
            prev = computed;
            expected += 1;
            count += 1;
        }
        Ok(ChainReport { events: count, head_hash: prev })
    }

    /// Verify the whole chain.
    pub fn verify(&self) -> Result<ChainReport, LogError> {
        self.walk(1, GENESIS_HASH, |_| {})
    }

    /// Verify the whole chain, handing every decoded event to `each` (to replay it).
    pub fn verify_with(&self, each: impl FnMut(Envelope)) -> Result<ChainReport, LogError> {
        self.walk(1, GENESIS_HASH, each)
    }

    /// Rebuild the read models: newest usable snapshot, then the tail of the log.
    /// With [`StartupVerify::Full`] the events before the snapshot are verified too.
    pub fn load(&self, verify: StartupVerify) -> Result<(State, LoadReport), LogError> {
        let snapshot = self.usable_snapshot()?;
        let (mut state, from, prev) = match snapshot {
            Some((snap, state)) => (state, snap.seq + 1, snap.head_hash),
            None => (State::default(), 1, GENESIS_HASH),
        };
        let snapshot_seq = from - 1;
        if verify == StartupVerify::Full && snapshot_seq > 0 {
            // Hash-only walk of the prefix; must end exactly at the snapshot's hash.
            let mut p = GENESIS_HASH;
            let mut expected = 1;
            for raw in self.events.range(..=key(snapshot_seq)) {
                let (k, v) = raw?;
                let seq = seq_of(&k).unwrap_or(0);
                if seq != expected {
                    return Err(LogError::ChainBroken { seq: expected, reason: format!("position {expected} is missing") });
                }
                let (hash, bytes) = split(seq, &v)?;
                p = chain_hash(&p, bytes);
                if p != hash {
                    return Err(LogError::ChainBroken { seq, reason: "the stored hash does not match the event".into() });
                }
                expected += 1;
            }
        }
        let report = self.walk(from, prev, |env| state.apply(&env))?;
        Ok((state, LoadReport { snapshot_seq, tail_events: report.events }))
    }

    /// The newest snapshot that decodes and whose hash agrees with the log.
    fn usable_snapshot(&self) -> Result<Option<(Snapshot, State)>, LogError> {
        for item in self.snapshots.iter().rev() {
            let (_, v) = item?;
            let Ok(snap) = rmp_serde::from_slice::<Snapshot>(&v) else {
                tracing::warn!("skipping a snapshot that does not decode");
                continue;
            };
            if snap.seq > self.head_seq || self.hash_at(snap.seq)? != Some(snap.head_hash) {
                tracing::warn!(seq = snap.seq, "skipping a snapshot that does not match the log");
                continue;
            }
            match State::decode(&snap.state) {
                Ok(state) if state.seq == snap.seq => return Ok(Some((snap, state))),
                _ => tracing::warn!(seq = snap.seq, "skipping a snapshot whose state does not decode"),
            }
        }
        Ok(None)
    }

    /// Store a snapshot of `state` (which must be the state at the head) and keep only
    /// the two newest ones.
    pub fn write_snapshot(&self, state: &State) -> Result<(), LogError> {
        debug_assert_eq!(state.seq, self.head_seq);
        let snap = Snapshot { seq: state.seq, head_hash: self.head_hash, state: state.encode() };
        let bytes = rmp_serde::to_vec_named(&snap).expect("snapshot encodes");
        self.snapshots.insert(key(snap.seq), bytes)?;
        let keep: Vec<_> = self.snapshots.iter().keys().rev().skip(2).collect::<Result<_, _>>()?;
        for k in keep {
            self.snapshots.remove(k)?;
        }
        self.db.flush()?;
        Ok(())
    }

    /// For tests and repair tools: overwrite the stored bytes at `seq`.
    #[doc(hidden)]
    pub fn overwrite_raw(&self, seq: u64, value: Vec<u8>) -> Result<(), LogError> {
        self.events.insert(key(seq), value)?;
        self.db.flush()?;
        Ok(())
    }

    /// For tests: remove the stored event at `seq`.
    #[doc(hidden)]
    pub fn remove_raw(&self, seq: u64) -> Result<(), LogError> {
        self.events.remove(key(seq))?;
        self.db.flush()?;
        Ok(())
    }

    /// For tests: the stored value (hash ‖ bytes) at `seq`.
    #[doc(hidden)]
    pub fn raw_value(&self, seq: u64) -> Result<Option<Vec<u8>>, LogError> {
        Ok(self.events.get(key(seq))?.map(|v| v.to_vec()))
    }

    /// For tests: drop every snapshot so the next start replays from scratch.
    #[doc(hidden)]
    pub fn clear_snapshots(&self) -> Result<(), LogError> {
        self.snapshots.clear()?;
        self.db.flush()?;
        Ok(())
    }
}

pub struct LoadReport {
    pub snapshot_seq: u64,
    pub tail_events: u64,
}

fn split(seq: u64, value: &[u8]) -> Result<(ChainHash, &[u8]), LogError> {
    if value.len() < HASH_LEN {
        return Err(LogError::ChainBroken { seq, reason: "the stored record is shorter than its hash".into() });
    }
    let (h, b) = value.split_at(HASH_LEN);
    Ok((h.try_into().expect("32 bytes"), b))
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
            event: Event::GroupDeleted { name: format!("g{seq}") },
        }
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
                let envs: Vec<_> = (start..start + batch + 1).map(env).collect();
                log.append(&envs).unwrap();
                model.extend(envs);
            }
            let mut seen = Vec::new();
            let report = log.walk(1, GENESIS_HASH, |e| seen.push(e)).unwrap();
            assert_eq!(seen, model, "round {round}");
            assert_eq!(report.head_hash, log.head_hash());
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
}

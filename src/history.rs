//! Any past state, fast: checkpoints of the read models every `as-of-every` events, kept
//! in memory. A clone of `State` shares every map node and record with the states before
//! and after it (`gatehouse_projections::shared`), so a checkpoint costs only what
//! changed since the one before it, not a copy of the state. A past position is then the
//! nearest checkpoint at or before it plus at most about `every` events, through the same
//! `State::apply` as the live server, verifying the chain on the way — where a snapshot
//! on disk would cost decoding the whole state plus up to `snapshot-every` events.
//!
//! Built on first use: a server that never reads the past pays nothing. The first read
//! asks for it (`want`); a background thread (`app.rs`) walks the log once from position
//! 1 (`fill`), then keeps adding clones of the live read models as the log grows
//! (`offer`). Reads that find no checkpoint close enough (while the walk is under way)
//! fall back to the snapshots. Past `max` checkpoints, every other one is dropped and the
//! spacing doubles, so the memory stays bounded on a log that grows for ever.

use crate::log::{ChainHash, EventLog, LogError, GENESIS_HASH};
use gatehouse_projections::State;
use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

pub struct History {
    inner: Mutex<Inner>,
    wanted: Condvar,
    max: usize,
}

struct Inner {
    /// Spacing of the checkpoints (events); 0: no history, reads use snapshots.
    every: u64,
    wanted: bool,
    checkpoints: BTreeMap<u64, Checkpoint>,
}

struct Checkpoint {
    state: State,
    /// The chain hash at the checkpoint's position, to verify the events after it.
    hash: ChainHash,
}

impl History {
    /// `every`: checkpoint spacing in events (0 = off); `max`: how many to keep before
    /// the spacing doubles.
    pub fn new(every: u64, max: usize) -> History {
        History {
            inner: Mutex::new(Inner {
                every,
                wanted: false,
                checkpoints: BTreeMap::new(),
            }),
            wanted: Condvar::new(),
            max: max.max(2),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current spacing (0: off).
    pub fn every(&self) -> u64 {
        self.lock().every
    }

    pub fn len(&self) -> usize {
        self.lock().checkpoints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ask for the history to be built (the first past read does).
    pub fn want(&self) {
        let mut inner = self.lock();
        if inner.every > 0 && !inner.wanted {
            inner.wanted = true;
            self.wanted.notify_all();
        }
    }

    /// Wait up to `timeout` for someone to want the history; true once wanted.
    pub fn wait_wanted(&self, timeout: Duration) -> bool {
        let inner = self.lock();
        let (inner, _) = self
            .wanted
            .wait_timeout_while(inner, timeout, |i| !i.wanted)
            .unwrap_or_else(|p| p.into_inner());
        inner.wanted
    }

    /// Position of the newest checkpoint (0: none).
    pub fn newest(&self) -> u64 {
        self.lock()
            .checkpoints
            .last_key_value()
            .map(|(s, _)| *s)
            .unwrap_or(0)
    }

    /// Keep `state` (whose position has chain hash `hash`) if it is at least `every`
    /// events after the newest checkpoint. O(1): the clone shares its structure.
    pub fn offer(&self, state: &State, hash: ChainHash) -> bool {
        let mut inner = self.lock();
        if inner.every == 0 {
            return false;
        }
        let newest = inner.checkpoints.last_key_value().map(|(s, _)| *s);
        if newest.is_some_and(|n| state.seq < n + inner.every) {
            return false;
        }
        inner.checkpoints.insert(
            state.seq,
            Checkpoint {
                state: state.clone(),
                hash,
            },
        );
        if inner.checkpoints.len() > self.max {
            thin(&mut inner);
        }
        true
    }

    /// Walk the log from the newest checkpoint (or position 1) to `to`, keeping a
    /// checkpoint every `every` events on the way.
    pub fn fill(&self, log: &EventLog, to: u64) -> Result<(), LogError> {
        let (mut state, from, prev) = {
            let mut inner = self.lock();
            if inner.every == 0 {
                return Ok(());
            }
            // Position 0, the empty state: the first `every` events start from it.
            inner.checkpoints.entry(0).or_insert_with(|| Checkpoint {
                state: State::default(),
                hash: GENESIS_HASH,
            });
            match inner.checkpoints.last_key_value() {
                Some((seq, c)) => (c.state.clone(), seq + 1, c.hash),
                None => (State::default(), 1, GENESIS_HASH),
            }
        };
        if to < from {
            return Ok(());
        }
        let mut next = from - 1 + self.every();
        let mut failed = None;
        log.walk_range(from, prev, Some(to), |env| {
            state.apply(env);
            if state.seq >= next && failed.is_none() {
                match log.hash_at(state.seq) {
                    Ok(Some(hash)) => {
                        self.offer(&state, hash);
                        next = state.seq + self.every();
                    }
                    Ok(None) => {}
                    Err(e) => failed = Some(e),
                }
            }
        })?;
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The state right after `seq`, from the nearest checkpoint at or before it, if
    /// there is one within `2 × every` events (else `None`: use the snapshots).
    pub fn state_at(&self, log: &EventLog, seq: u64) -> Result<Option<State>, LogError> {
        let (mut state, prev) = {
            let inner = self.lock();
            match inner.checkpoints.range(..=seq).next_back() {
                Some((at, c)) if inner.every > 0 && seq - at <= 2 * inner.every => {
                    (c.state.clone(), c.hash)
                }
                _ => return Ok(None),
            }
        };
        if seq > state.seq {
            log.walk_range(state.seq + 1, prev, Some(seq), |env| state.apply(env))?;
        }
        if state.seq != seq {
            return Err(LogError::ChainBroken {
                seq: state.seq + 1,
                reason: format!("position {seq} is not in the log"),
            });
        }
        Ok(Some(state))
    }

    /// [`state_at`](Self::state_at), or else from the nearest snapshot: what readers of
    /// the past that do not ask for the history use (a webhook worker far behind). They
    /// gain from it once a point-in-time read has had it built.
    pub fn state_or_snapshot(&self, log: &EventLog, seq: u64) -> Result<State, LogError> {
        match self.state_at(log, seq)? {
            Some(state) => Ok(state),
            None => log.state_at(seq),
        }
    }
}

/// Drop every other checkpoint (never the newest, which the next one is measured from)
/// and double the spacing.
fn thin(inner: &mut Inner) {
    inner.every = inner.every.saturating_mul(2);
    let newest = inner.checkpoints.last_key_value().map(|(s, _)| *s);
    let mut last_kept: Option<u64> = None;
    let every = inner.every;
    inner.checkpoints.retain(|seq, _| {
        let keep = Some(*seq) == newest || last_kept.is_none_or(|l| *seq >= l + every);
        if keep {
            last_kept = Some(*seq);
        }
        keep
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seq: u64) -> State {
        State {
            seq,
            ..State::default()
        }
    }

    #[test]
    fn offers_closer_than_the_spacing_are_refused() {
        let h = History::new(10, 100);
        assert!(h.offer(&at(3), GENESIS_HASH));
        assert!(!h.offer(&at(12), GENESIS_HASH));
        assert!(h.offer(&at(13), GENESIS_HASH));
        assert_eq!(h.len(), 2);
        assert_eq!(h.newest(), 13);
    }

    #[test]
    fn past_the_maximum_every_other_checkpoint_goes_and_the_spacing_doubles() {
        let h = History::new(10, 4);
        for seq in [10, 20, 30, 40, 50] {
            assert!(h.offer(&at(seq), GENESIS_HASH));
        }
        assert_eq!(h.every(), 20);
        let kept: Vec<u64> = h.lock().checkpoints.keys().copied().collect();
        assert_eq!(kept, vec![10, 30, 50]);
        // The next is measured from the newest with the new spacing.
        assert!(!h.offer(&at(60), GENESIS_HASH));
        assert!(h.offer(&at(70), GENESIS_HASH));
    }

    fn group(seq: u64) -> gatehouse_schemas::Envelope {
        use gatehouse_schemas::{Envelope, Event, GroupCreated};
        let event = if seq % 3 == 0 {
            Event::GroupDeleted {
                name: format!("g{}", seq - 1),
            }
        } else {
            Event::GroupCreated(GroupCreated {
                name: format!("g{seq}"),
                description: None,
                auto_join: false,
                admin_privileges: false,
                realm: "internal".into(),
                realm_attributes: None,
                external_id: None,
                members: vec![],
            })
        };
        Envelope {
            seq,
            time_ms: 1000 + seq,
            actor: "t".into(),
            origin: "o".into(),
            request_id: "r".into(),
            event,
        }
    }

    /// Every past state the history gives is the one the snapshots-and-replay path
    /// gives, across thinning, a live clone and a later walk from it; positions with no
    /// checkpoint close enough are left to the snapshots.
    #[test]
    fn past_states_from_checkpoints_are_the_replayed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EventLog::open(dir.path()).unwrap();
        log.append(&(1..=100).map(group).collect::<Vec<_>>())
            .unwrap();
        let h = History::new(7, 4);
        h.fill(&log, 60).unwrap();
        // 0, 7, 14, 21, 28: thinned at the fifth to 0, 14, 28 (every 14), then 42, 56.
        let kept: Vec<u64> = h.lock().checkpoints.keys().copied().collect();
        assert_eq!(kept, vec![0, 28, 56]);
        assert_eq!(h.every(), 28);
        // The live read models at 100, offered as the server's thread does.
        let live = log.state_at(100).unwrap();
        assert!(h.offer(&live, log.hash_at(100).unwrap().unwrap()));
        let mut answered = Vec::new();
        for p in 0..=100 {
            if let Some(s) = h.state_at(&log, p).unwrap() {
                assert_eq!(s.seq, p);
                assert_eq!(s.digest(), log.state_at(p).unwrap().digest(), "at {p}");
                answered.push(p);
            }
        }
        // Within 2 × 28 of a checkpoint at or before: 0..=56 from 0, up to 112 from 56.
        assert_eq!(answered, (0..=100).collect::<Vec<_>>());
        // A later walk starts from the newest checkpoint, the live clone.
        log.append(&(101..=160).map(group).collect::<Vec<_>>())
            .unwrap();
        // 128 is kept, and makes five: thinned to 0, 56, 128 (every 56).
        h.fill(&log, 160).unwrap();
        assert_eq!(h.newest(), 128);
        assert_eq!(h.every(), 56);
        for p in [101, 127, 128, 130, 160] {
            let s = h.state_at(&log, p).unwrap().expect("close enough");
            assert_eq!(s.digest(), log.state_at(p).unwrap().digest(), "at {p}");
        }
        assert!(h.state_at(&log, 161).is_err(), "past the head");
    }

    #[test]
    fn off_keeps_nothing_and_is_never_wanted() {
        let h = History::new(0, 10);
        assert!(!h.offer(&at(100), GENESIS_HASH));
        h.want();
        assert!(!h.wait_wanted(Duration::from_millis(1)));
    }
}

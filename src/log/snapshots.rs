//! Snapshots of the read models: one file each in `<data-dir>/snapshots/`, named by the
//! position they were taken at (`00000000000000123456.snap`), holding
//! `seq (8 bytes BE) ‖ chain hash (32) ‖ State::encode() ‖ blake3(State::encode())`,
//! the top bit of `seq` set to say the checksum is there (files written before it have
//! neither, and are read as they are). Derived data: one that does not decode or whose
//! checksum does not match is skipped, never trusted over the log. The chain hash ties
//! a snapshot to the log; the checksum, its state to what was written: without it, a
//! changed byte in the state decoded to another state, which was served.
//!
//! Why files and not a sled tree (as before): a snapshot is streamed from the state into
//! the file through a small buffer. Stored as one sled value it had to be built whole in
//! memory first, and sled copied it twice more on the way to disk: for a site of a
//! hundred thousand users that was hundreds of MiB of freshly faulted pages a snapshot
//! (page clearing and copying were three quarters of the snapshot thread's CPU in a SCIM
//! create run), and as much again in resident memory while it was written.
//!
//! A snapshot is written to `<name>.tmp`, synced, renamed into place and the directory
//! synced, so a crash leaves either the whole file or none (a stray `.tmp` is ignored
//! and removed by the next write). Data directories of earlier versions keep their
//! snapshots in the sled database `<data-dir>/log`, tree `snapshots`: they are moved into
//! files once, on open ([`SnapshotStore::migrate_from_sled`]).

use super::segment::{drop_cached, io, sync_dir, write_back};
use super::{ChainHash, LogError, HASH_LEN};
use gatehouse_projections::State;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The directory of snapshot files, under the data directory.
pub const DIR: &str = "snapshots";
const SUFFIX: &str = ".snap";
const HEADER: usize = 8 + HASH_LEN;
/// Set in the stored `seq` of a snapshot that ends with its state's checksum.
const CHECKSUMMED: u64 = 1 << 63;

/// The read models as of `seq`, plus the chain hash at `seq` so the tail can be verified
/// from there without reading the events before it.
pub struct Snapshot {
    pub seq: u64,
    pub head_hash: ChainHash,
    /// The whole stored file; the state's encoding is [`state_bytes`](Self::state_bytes).
    bytes: Vec<u8>,
    /// Where the state's encoding ends in `bytes` (its checksum follows).
    state_end: usize,
}

impl Snapshot {
    /// The snapshot in a file's `bytes`: `None` when it has no header, or when its
    /// checksum (if it has one) does not match its state.
    pub(super) fn parse(bytes: Vec<u8>) -> Option<Snapshot> {
        let stored = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let head_hash: ChainHash = bytes.get(8..HEADER)?.try_into().ok()?;
        let state_end = if stored & CHECKSUMMED != 0 {
            let end = bytes.len().checked_sub(HASH_LEN).filter(|&e| e >= HEADER)?;
            if blake3::hash(&bytes[HEADER..end]).as_bytes()[..] != bytes[end..] {
                return None;
            }
            end
        } else {
            bytes.len()
        };
        Some(Snapshot {
            seq: stored & !CHECKSUMMED,
            head_hash,
            bytes,
            state_end,
        })
    }

    /// `State::encode()` of the read models at `seq`.
    pub fn state_bytes(&self) -> &[u8] {
        &self.bytes[HEADER..self.state_end]
    }
}

/// Passes what is written on to `inner`, hashing it on the way.
struct Hashing<'a, W: Write> {
    inner: &'a mut W,
    hasher: blake3::Hasher,
    /// The first error of the file below, kept: the encoder reports it as its own
    /// ("error while writing multi-byte MessagePack value"), and a full disk was never
    /// named in the log.
    failed: Option<std::io::Error>,
}

impl<W: Write> Write for Hashing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = match self.inner.write(buf) {
            Ok(n) => n,
            Err(e) => {
                let said = std::io::Error::new(e.kind(), e.to_string());
                self.failed.get_or_insert(e);
                return Err(said);
            }
        };
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Encode `state` into `out`, and the blake3 of what was written. An error of `out`
/// is returned as it is (`No space left on device`), not as the encoder's own.
fn encode_hashed<W: Write>(state: &State, out: &mut W) -> std::io::Result<blake3::Hash> {
    // Hashed 64 KiB at a time: the encoder writes a few bytes at a time, and blake3 is
    // quick on long inputs, slow on many short ones.
    let mut hashing = std::io::BufWriter::with_capacity(
        64 * 1024,
        Hashing {
            inner: out,
            hasher: blake3::Hasher::new(),
            failed: None,
        },
    );
    if let Err(e) = state.encode_to(&mut hashing) {
        let failed = hashing.get_mut().failed.take();
        return Err(failed.unwrap_or_else(|| std::io::Error::other(e)));
    }
    let hashing = hashing.into_inner().map_err(|e| e.into_error())?;
    Ok(hashing.hasher.finalize())
}

/// Writes and finds snapshots; cheap to clone, so a background thread can write while
/// the writer goes on appending and readers look for the one before a past position.
#[derive(Clone)]
pub struct SnapshotStore {
    dir: Arc<PathBuf>,
    /// How many snapshots to keep (0: all). Older ones only serve point-in-time reads.
    pub(super) keep: usize,
    /// The size of the last snapshot written (0: none yet), shared by every handle: the
    /// writer takes large snapshots less often (`writer::snapshot_due`).
    last_size: Arc<AtomicUsize>,
}

fn file_name(seq: u64) -> String {
    format!("{seq:020}{SUFFIX}")
}

fn seq_of(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl SnapshotStore {
    /// The store in `<data_dir>/snapshots` (created if missing).
    pub fn open(data_dir: &Path) -> Result<SnapshotStore, LogError> {
        let dir = data_dir.join(DIR);
        std::fs::create_dir_all(&dir).map_err(io)?;
        Ok(SnapshotStore {
            dir: Arc::new(dir),
            keep: 2,
            last_size: Arc::default(),
        })
    }

    /// The positions of the stored snapshots, oldest first.
    pub fn positions(&self) -> Result<Vec<u64>, LogError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&*self.dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            if let Some(seq) = entry.file_name().to_str().and_then(seq_of) {
                out.push(seq);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// The newest position a snapshot file says it was taken at (0: none), from the
    /// files' headers alone (its name and its first 8 bytes agree): how far the log was
    /// acknowledged, for [`segment::open`](super::segment::open) to hold the log to.
    pub fn newest_claimed(&self) -> Result<u64, LogError> {
        use std::io::Read;
        for seq in self.positions()?.into_iter().rev() {
            let mut head = [0u8; 8];
            let read = std::fs::File::open(self.dir.join(file_name(seq)))
                .and_then(|mut f| f.read_exact(&mut head));
            match read {
                Ok(()) if u64::from_be_bytes(head) & !CHECKSUMMED == seq => return Ok(seq),
                Ok(()) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::UnexpectedEof
                    ) => {}
                Err(e) => return Err(io(e)),
            }
        }
        Ok(0)
    }

    /// The snapshot taken at `seq`, if its file is there and has a header. `None` also
    /// when a newer snapshot's write removed it meanwhile: callers go on to an older one.
    pub fn read(&self, seq: u64) -> Result<Option<Snapshot>, LogError> {
        match std::fs::read(self.dir.join(file_name(seq))) {
            Ok(bytes) => Ok(Snapshot::parse(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    /// Bytes the stored snapshots take, and how many there are.
    pub fn disk(&self) -> Result<(u64, usize), LogError> {
        let mut bytes = 0;
        let positions = self.positions()?;
        for seq in &positions {
            match std::fs::metadata(self.dir.join(file_name(*seq))) {
                Ok(m) => bytes += m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(e)),
            }
        }
        Ok((bytes, positions.len()))
    }

    /// The size of the last snapshot this process wrote (0: none yet).
    pub fn last_size(&self) -> usize {
        self.last_size.load(Ordering::Relaxed)
    }

    /// Store a snapshot of `state`, whose last event has chain hash `head_hash`, and keep
    /// only the `keep` newest (start-up needs the newest; `as_of` reads start from the
    /// nearest one before their position, so more of them make the past faster).
    pub fn write(&self, state: &State, head_hash: ChainHash) -> Result<(), LogError> {
        let size = self.write_file(state.seq, |out| {
            out.write_all(&(state.seq | CHECKSUMMED).to_be_bytes())?;
            out.write_all(&head_hash)?;
            let checksum = encode_hashed(state, &mut *out)?;
            out.write_all(checksum.as_bytes())
        })?;
        self.last_size.store(size as usize, Ordering::Relaxed);
        self.prune()
    }

    /// Write the file of the snapshot at `seq` with `fill`, atomically: a temporary file,
    /// synced, renamed into place, the directory synced. Returns its size.
    fn write_file(
        &self,
        seq: u64,
        fill: impl FnOnce(&mut std::io::BufWriter<Trickle>) -> std::io::Result<()>,
    ) -> Result<u64, LogError> {
        let path = self.dir.join(file_name(seq));
        let tmp = self.dir.join(format!("{}.tmp", file_name(seq)));
        let file = super::private_file(&tmp).map_err(io)?;
        // A small buffer the encoder writes through: the state is never held encoded in
        // memory as a whole (see the module's comment).
        let mut out = std::io::BufWriter::with_capacity(256 * 1024, Trickle::new(file));
        let written = fill(&mut out)
            .and_then(|()| out.into_inner().map_err(|e| e.into_error()))
            .and_then(|trickle| {
                let file = trickle.file;
                file.sync_data()?;
                let size = file.metadata()?.len();
                // All on disk: none of it stays in the page cache (`Trickle::flush_behind`).
                drop_cached(&file, 0, size);
                Ok(size)
            });
        let size = match written {
            Ok(size) => size,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(io(e));
            }
        };
        std::fs::rename(&tmp, &path).map_err(io)?;
        sync_dir(&self.dir)?;
        Ok(size)
    }

    /// Remove all but the `keep` newest snapshots, and the temporary file of any write
    /// that did not finish (one snapshot is written at a time, so none is under way).
    fn prune(&self) -> Result<(), LogError> {
        self.remove_unfinished()?;
        if self.keep == 0 {
            return Ok(());
        }
        let positions = self.positions()?;
        let old = positions.len().saturating_sub(self.keep.max(2));
        for seq in &positions[..old] {
            match std::fs::remove_file(self.dir.join(file_name(*seq))) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(e)),
            }
        }
        Ok(())
    }

    /// Remove the temporary files of snapshot writes that did not finish (a crash in
    /// the middle of one), and say how many bytes they held. Done at start as well as
    /// after each snapshot: a server that crashed again and again before its next
    /// snapshot kept every one (twelve crashes, 394 MiB beside 23 MiB of snapshots).
    pub fn remove_unfinished(&self) -> Result<u64, LogError> {
        let mut freed = 0;
        for entry in std::fs::read_dir(&*self.dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name();
            if name
                .to_str()
                .is_some_and(|n| n.strip_suffix(".tmp").and_then(seq_of).is_some())
            {
                let size = entry.metadata().map_or(0, |m| m.len());
                if std::fs::remove_file(entry.path()).is_ok() {
                    freed += size;
                }
            }
        }
        Ok(freed)
    }

    /// Drop every snapshot (tests: the next start replays from scratch).
    pub fn clear(&self) -> Result<(), LogError> {
        for seq in self.positions()? {
            match std::fs::remove_file(self.dir.join(file_name(seq))) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(e)),
            }
        }
        sync_dir(&self.dir)
    }

    /// Move the snapshots an earlier version kept in sled (tree `snapshots`, key =
    /// position BE, value = the same bytes as a file) into files, once: each is written
    /// and synced before the tree is emptied, so a crash in between only copies again.
    pub(super) fn migrate_from_sled(&self, db: &sled::Db) -> Result<(), LogError> {
        if !db.tree_names().iter().any(|n| n.as_ref() == b"snapshots") {
            return Ok(());
        }
        let tree = db.open_tree("snapshots")?;
        let mut moved = 0;
        for item in tree.iter() {
            let (k, v) = item?;
            let Some(seq) = k.as_ref().try_into().ok().map(u64::from_be_bytes) else {
                continue;
            };
            // The stored value says its own position; a value that does not is not a
            // snapshot to carry over.
            if Snapshot::parse(v.to_vec()).is_some_and(|s| s.seq == seq) {
                self.write_file(seq, |out| out.write_all(&v))?;
                moved += 1;
            }
        }
        db.drop_tree("snapshots")?;
        db.flush()?;
        if moved > 0 {
            tracing::info!(
                snapshots = moved,
                "moved the snapshots from sled into files"
            );
        }
        Ok(())
    }
}

/// A snapshot file written out to the disk as it grows, a window at a time, rather than
/// all at once by the sync at its end.
///
/// A snapshot of a large state is hundreds of MiB. Left to the final sync, all of it sat
/// dirty in the page cache and then went to the device in one burst, and the log's syncs
/// (every acknowledged write waits for one) queued behind it: in a SCIM create run the
/// runs in which a snapshot was written had a p99 of 11–110 ms against 6–7 ms without
/// one. Here each window's write-back is started as soon as it is written, and the
/// window before it is waited for (by the thread writing the snapshot: while serving, the
/// low-priority snapshot thread, never the writer), so never more than two windows are in
/// flight: the same pattern as PostgreSQL's
/// `checkpoint_flush_after` or RocksDB's `bytes_per_sync`. The final `sync_data` still
/// makes the whole file durable; this only changes when its bytes travel.
pub(crate) struct Trickle {
    file: std::fs::File,
    /// Bytes written so far, and where the window not yet handed to write-back starts.
    written: u64,
    window_start: u64,
    /// The window handed to write-back last, waited for when the next one is handed.
    in_flight: Option<(u64, u64)>,
}

impl Trickle {
    /// 1 MiB: large enough that the calls cost nothing next to the bytes, small enough
    /// that the log's syncs do not wait long behind a burst. The device takes a write of
    /// up to 4 MiB at a time (`max_sectors_kb` here) and works through them in order, so
    /// a log sync queued behind two 8 MiB windows waited for 16 MiB: while a 250 MB
    /// snapshot was written the disk's writes averaged 0.6–0.9 ms against 0.07 without
    /// one (`/proc/diskstats`, a quarter-second at a time); with 1 MiB windows, 0.17.
    const WINDOW: u64 = 1 << 20;

    fn new(file: std::fs::File) -> Trickle {
        Trickle {
            file,
            written: 0,
            window_start: 0,
            in_flight: None,
        }
    }

    /// Start the write-back of the window that just filled, and wait for the one before.
    fn flush_behind(&mut self) {
        let (start, end) = (self.window_start, self.written);
        self.window_start = end;
        let before = self.in_flight.replace((start, end));
        write_back(&self.file, start, end - start, false);
        if let Some((from, to)) = before {
            write_back(&self.file, from, to - from, true);
            // On disk now: out of the page cache, so that the next window's pages are
            // these, and a snapshot does not take its size of memory (as the log's pages,
            // `segment`'s comment; start-up and `as_of` read it back from the disk).
            drop_cached(&self.file, from, to);
        }
    }
}

impl Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.window_start >= Self::WINDOW {
            self.flush_behind();
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_as_positions_and_nothing_else_is_taken_for_a_snapshot() {
        assert_eq!(file_name(42), "00000000000000000042.snap");
        assert_eq!(seq_of(&file_name(42)), Some(42));
        assert_eq!(seq_of(&file_name(u64::MAX)), Some(u64::MAX));
        for other in [
            "00000000000000000042.snap.tmp",
            "42.snap",
            "0000000000000000004x.snap",
            "00000000000000000042",
        ] {
            assert_eq!(seq_of(other), None, "{other}");
        }
    }

    /// A file of several windows, written in pieces of odd sizes, holds every byte in
    /// order, and its windows were handed to write-back one after the other as it grew:
    /// contiguous, each at least a window long, the last one ending where the writes had
    /// got to.
    #[test]
    fn a_large_file_is_written_whole_and_handed_to_write_back_window_by_window() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let mut trickle = Trickle::new(std::fs::File::create(&path).unwrap());
        let total = 3 * Trickle::WINDOW + Trickle::WINDOW / 2;
        let mut expected = Vec::with_capacity(total as usize);
        let mut handed = Vec::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        while (expected.len() as u64) < total {
            let piece: Vec<u8> = (0..Trickle::WINDOW / 8 + 7)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            trickle.write_all(&piece).unwrap();
            expected.extend_from_slice(&piece);
            if handed.last() != trickle.in_flight.as_ref() {
                handed.extend(trickle.in_flight);
            }
        }
        assert_eq!(handed.len(), 3, "{handed:?}");
        let mut from = 0;
        for &(start, end) in &handed {
            assert_eq!(start, from);
            assert!(end - start >= Trickle::WINDOW, "{handed:?}");
            from = end;
        }
        assert_eq!(trickle.window_start, from);
        assert_eq!(trickle.written, expected.len() as u64);
        // The windows written back and waited for (all but the last one handed) left the
        // page cache, but for the folio across the end of the last (2 MiB at most); the
        // last one, still being written back, did not.
        #[cfg(target_os = "linux")]
        {
            use super::super::segment::resident_pages;
            let waited = handed[handed.len() - 2].1 - (2 << 20);
            if let Some(resident) = resident_pages(&path, 0, waited) {
                assert_eq!(resident, 0, "of {} pages", waited / 4096);
                assert!(resident_pages(&path, from, trickle.written).unwrap() > 0);
            }
        }
        trickle.file.sync_data().unwrap();
        drop(trickle);
        assert!(std::fs::read(&path).unwrap() == expected);
    }

    /// A disk that fills up in the middle of a snapshot is named as such.
    #[test]
    fn a_full_disk_is_named_not_hidden_behind_the_encoder() {
        struct Full(usize);
        impl Write for Full {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if self.0 < buf.len() {
                    return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
                }
                self.0 -= buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let big = State {
            seq: 5,
            service_id: Some("x".repeat(200_000)),
            ..State::default()
        };
        let e = encode_hashed(&big, &mut Full(1000)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
        assert!(encode_hashed(&big, &mut Full(usize::MAX)).is_ok());
    }

    #[test]
    fn keeps_the_newest_and_reads_what_it_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SnapshotStore::open(dir.path()).unwrap();
        store.keep = 2;
        for seq in [3u64, 7, 11] {
            let state = State {
                seq,
                ..State::default()
            };
            store.write(&state, [seq as u8; HASH_LEN]).unwrap();
        }
        assert_eq!(store.positions().unwrap(), vec![7, 11]);
        let snap = store.read(11).unwrap().expect("the newest is there");
        assert_eq!((snap.seq, snap.head_hash), (11, [11u8; HASH_LEN]));
        assert_eq!(State::decode(snap.state_bytes()).unwrap().seq, 11);
        assert!(store.read(3).unwrap().is_none(), "pruned");
        let (bytes, n) = store.disk().unwrap();
        assert_eq!(n, 2);
        assert_eq!(bytes, 2 * store.last_size() as u64);
        // A write that never finished is not a snapshot, and goes with the next write.
        std::fs::write(
            dir.path().join(DIR).join("00000000000000000012.snap.tmp"),
            b"x",
        )
        .unwrap();
        assert_eq!(store.positions().unwrap(), vec![7, 11]);
        let state = State {
            seq: 13,
            ..State::default()
        };
        store.write(&state, [0; HASH_LEN]).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path().join(DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.iter().all(|n| n.ends_with(".snap")), "{names:?}");
    }
}

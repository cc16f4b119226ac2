//! The event log's bytes: one append-only file, `<data-dir>/events.log`.
//!
//! Why not sled: sled keeps the pages it wrote in memory up to its cache size and then
//! some (a probe of 200,000 small appends: +70 MiB with the 64 MiB cache, +20 MiB with a
//! 4 MiB one), so a busy server's memory climbed for its first hundreds of thousands of
//! events. A file written with `write` + `fdatasync` costs the process nothing: the
//! kernel's page cache holds what was written, and gives it back when asked.
//!
//! Layout: records back to back, positions implied by their order (position 1 first):
//! - an event: `len (u32 LE) ‖ chain hash (32) ‖ encoded envelope (len bytes)`, as the
//!   records in sled's chunks were;
//! - after every appended batch, a commit mark: `u32::MAX (LE) ‖ chain hash of the
//!   batch's last event`. A batch is acknowledged after its mark is written and synced,
//!   so on open everything after the last mark (a torn write of a batch that was never
//!   acknowledged) is cut off: a batch is all there or not at all, as sled's atomic batch was.
//!
//! The file is kept longer than its records by zeros written ahead (`AHEAD`, then again
//! whenever the records reach them), and a batch is written in place over them: an
//! `fdatasync` of an append that grows the file must also commit the new size through
//! ext4's journal, one of data alone need not (a probe here: 1.8× the syncs a second,
//! two thirds of the CPU per sync). Zeros end a scan (no record is empty), so they
//! read as the end of the log, as a hole left by a crash does.
//!
//! What was written does not stay in the page cache: each time the zeros ahead are
//! written, the helper first drops the file's pages older than the last `KEEP_CACHED`
//! bytes (synced long before). An append-only log is read again only near its end (or
//! whole, at start-up), and kept it filled the cache a page every few writes, for good.
//! On the virtual machines we measure on that cost CPU too: a page the guest has not
//! used lately costs tens of microseconds to touch (the host backs it on first use, and
//! free memory is handed back to the host), and the page cache takes its large folios
//! from just that memory: with 1.2 GB of log cached, writing the zeros ahead took 5 µs
//! of CPU a SCIM create, and the writer spun on the file's lock meanwhile. Dropped
//! first, the freed pages are the ones the next zeros take, still warm. For the same
//! reason a scan that starts before the cached tail (a replay, a full verify) reads
//! around the cache (`Direct`, reading ahead on a helper thread): through the cache,
//! each 4 KiB read would take a new page.
//!
//! `<data-dir>/events.idx` is a sparse index: the file offset of position `k·STRIDE + 1`,
//! as u64 LE, for k = 0, 1, …. It is a hint (written after the log is synced, not synced
//! itself): on open its last entry is checked (the event there must say it is that
//! position), entries past the end are dropped, and whatever is missing is rebuilt by
//! reading from the last good entry. Deleting it rebuilds it from the whole file.

use super::{ChainHash, LogError, HASH_LEN};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Positions between two index entries.
pub const STRIDE: u64 = 64;
/// The length field of a commit mark.
const MARK: u32 = u32::MAX;
pub(crate) const HEADER: usize = 4 + HASH_LEN;
/// Bytes read from the file at a time by a scan.
const READ_BLOCK: usize = 1 << 20;
/// Zeros written ahead of the records at a time.
pub(crate) const AHEAD: u64 = 8 << 20;
/// How much of the log, back from its end, stays in the page cache (for the readers that
/// follow the head: webhook and federation streams); what is older is dropped.
pub(crate) const KEEP_CACHED: u64 = 32 << 20;

pub const LOG_FILE: &str = "events.log";
pub const INDEX_FILE: &str = "events.idx";

pub(crate) fn io(e: std::io::Error) -> LogError {
    LogError::Storage(sled::Error::Io(e))
}

/// What all handles on one log share: where the acknowledged part ends, and the index.
pub(crate) struct Shared {
    pub path: PathBuf,
    pub index_path: PathBuf,
    /// Offset just after the last acknowledged commit mark. Readers never look past it.
    pub end: AtomicU64,
    /// Position of the last acknowledged event.
    pub head: AtomicU64,
    /// `index[k]` = offset of position `k·STRIDE + 1`.
    pub index: RwLock<Vec<u64>>,
    /// The first commit mark a read found not to hold its batch's last hash: (its byte
    /// offset, the position before it). Set once; `verify` fails on it.
    pub damaged_mark: std::sync::Mutex<Option<(u64, u64)>>,
}

/// One stored record, as a scan hands it out.
pub(crate) enum Record<'a> {
    Event {
        hash: ChainHash,
        bytes: &'a [u8],
    },
    /// A commit mark, with the chain hash it holds (its batch's last event's).
    Mark {
        hash: ChainHash,
    },
}

/// Read records from `offset` up to `end`, handing each (with the byte offset it starts
/// at) to `f`, which returns false to stop. A record that runs past `end` is reported
/// as `Err(offset)` of its start (a torn tail, or a broken file).
pub(crate) fn scan(
    path: &Path,
    offset: u64,
    end: u64,
    mut f: impl FnMut(u64, Record<'_>) -> Result<bool, LogError>,
) -> Result<Result<(), u64>, LogError> {
    if offset >= end {
        return Ok(Ok(()));
    }
    let mut file = Source::open(path, offset, end).map_err(io)?;
    // No larger than what is left to read: a read of a few records (the newest events,
    // one event by position) must not allocate and zero a whole block.
    let mut buf: Vec<u8> = Vec::with_capacity(READ_BLOCK.min((end - offset) as usize));
    let mut start = 0usize; // first unparsed byte in buf
    let mut base = offset; // file offset of buf[0]
    let mut eof = false;
    loop {
        // Parse every complete record in buf[start..].
        loop {
            let rest = &buf[start..];
            if rest.len() < HEADER {
                break;
            }
            let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes"));
            let hash: ChainHash = rest[4..HEADER].try_into().expect("32 bytes");
            let at = base + start as u64;
            if len == MARK {
                start += HEADER;
                if !f(at, Record::Mark { hash })? {
                    return Ok(Ok(()));
                }
                continue;
            }
            if len == 0 {
                // No event encodes to nothing: zeros are a hole a crash of the machine
                // left where written pages never reached the disk. Everything from
                // here on is torn.
                return Ok(Err(at));
            }
            let total = HEADER + len as usize;
            if rest.len() < total {
                // Past the end of the readable part: no amount of reading helps.
                if at + total as u64 > end {
                    return Ok(Err(at));
                }
                break;
            }
            let bytes = &rest[HEADER..total];
            start += total;
            if !f(at, Record::Event { hash, bytes })? {
                return Ok(Ok(()));
            }
        }
        if eof {
            return Ok(if start == buf.len() {
                Ok(())
            } else {
                Err(base + start as u64)
            });
        }
        // Keep the unparsed rest, read more after it.
        buf.drain(..start);
        base += start as u64;
        start = 0;
        let left = usize::try_from(file.left()).unwrap_or(usize::MAX);
        if left == 0 {
            eof = true;
            continue;
        }
        let want = READ_BLOCK
            .max(buf.len() * 2)
            .min(buf.len().saturating_add(left));
        let have = buf.len();
        buf.resize(want, 0);
        let mut filled = have;
        while filled < want {
            let n = file.read(&mut buf[filled..]).map_err(io)?;
            if n == 0 {
                eof = true;
                break;
            }
            filled += n;
        }
        buf.truncate(filled);
    }
}

/// The alignment `O_DIRECT` asks of offsets, lengths and buffers (a page: enough for
/// disks of 512- and 4096-byte blocks).
const DIRECT_ALIGN: usize = 4096;

/// Where a scan reads from: the file through the page cache, or around it.
enum Source {
    Buffered(std::io::Take<File>),
    Direct(Direct),
}

impl Source {
    fn open(path: &Path, offset: u64, end: u64) -> std::io::Result<Source> {
        // A scan that starts further back than what stays cached reads around the cache.
        if end - offset > KEEP_CACHED {
            if let Some(direct) = Direct::open(path, offset, end)? {
                return Ok(Source::Direct(direct));
            }
        }
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(Source::Buffered(file.take(end - offset)))
    }

    /// Bytes not read yet.
    fn left(&self) -> u64 {
        match self {
            Source::Buffered(f) => f.limit(),
            Source::Direct(d) => d.end - d.pos,
        }
    }
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Source::Buffered(f) => f.read(buf),
            Source::Direct(d) => d.read(buf),
        }
    }
}

/// A long scan's reads, around the page cache (`O_DIRECT`), a helper thread reading the
/// next blocks while the scan parses this one.
///
/// Why: a page the guest has not used lately costs tens of microseconds to touch on the
/// virtual machines we measure on (see the module comment), and a read through the page
/// cache of a log that is not cached (older pages are dropped) takes a new page for
/// every 4 KiB read: 272 MB of log read with `dd` after the memory had been idle took
/// 0.66 s of system CPU, the same read with `iflag=direct` 0.01 s (0.12 s wall). In a
/// replay that copy was half of the reading thread's time. The helper overlaps the
/// disk's time with the scan's work, as the kernel's read-ahead does for cached reads.
///
/// Only whole blocks before the acknowledged end are read directly; its last partial
/// block (which the writer's next batch shares) is read through the cache, so a direct
/// read never makes the kernel write back a page the writer is filling. Where the file
/// system refuses `O_DIRECT` (tmpfs), the scan reads through the cache.
struct Direct {
    /// Blocks read ahead, in file order; and the ones handed back to be filled again.
    filled: Option<crossbeam_channel::Receiver<std::io::Result<Block>>>,
    empty: Option<crossbeam_channel::Sender<Block>>,
    ahead: Option<std::thread::JoinHandle<()>>,
    /// The block being handed out.
    block: Option<Block>,
    /// The same file without `O_DIRECT` (the flag is per open file), for the last block.
    cached: File,
    /// The next byte to hand out, where direct reads stop, and the end of the scan.
    pos: u64,
    direct_end: u64,
    end: u64,
}

/// One block read directly: `READ_BLOCK` bytes aligned at `at` in a buffer a little
/// longer (a `Vec` promises no alignment), holding `len` bytes of the file from `offset`.
struct Block {
    buf: Vec<u8>,
    at: usize,
    offset: u64,
    len: usize,
}

/// Blocks a direct scan keeps: one being parsed, the others being read ahead.
const DIRECT_BLOCKS: usize = 4;

impl Direct {
    #[cfg(target_os = "linux")]
    fn open(path: &Path, pos: u64, end: u64) -> std::io::Result<Option<Direct>> {
        use std::os::unix::fs::{FileExt, OpenOptionsExt};
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(None),
            Err(e) => return Err(e),
        };
        let cached = File::open(path)?;
        let direct_end = end - end % DIRECT_ALIGN as u64;
        let (filled_tx, filled) = crossbeam_channel::bounded(DIRECT_BLOCKS);
        let (empty, empty_rx) = crossbeam_channel::bounded::<Block>(DIRECT_BLOCKS);
        for _ in 0..DIRECT_BLOCKS {
            let buf = vec![0u8; READ_BLOCK + DIRECT_ALIGN];
            let at = buf.as_ptr().align_offset(DIRECT_ALIGN);
            let _ = empty.send(Block {
                buf,
                at,
                offset: 0,
                len: 0,
            });
        }
        let first = pos - pos % DIRECT_ALIGN as u64;
        let ahead = std::thread::Builder::new()
            .name("gatehouse-log-read".into())
            .spawn(move || {
                let mut offset = first;
                while offset < direct_end {
                    // Closed channels: the scan is over (finished, stopped or failed).
                    let Ok(mut block) = empty_rx.recv() else {
                        return;
                    };
                    let len = (direct_end - offset).min(READ_BLOCK as u64) as usize;
                    let mut filled = 0;
                    let result = loop {
                        let into = &mut block.buf[block.at + filled..block.at + len];
                        match file.read_at(into, offset + filled as u64) {
                            Ok(0) => break Ok(()),
                            Ok(n) => {
                                filled += n;
                                // A direct read returns whole blocks; a short one is the
                                // file's end.
                                if filled == len || filled % DIRECT_ALIGN != 0 {
                                    break Ok(());
                                }
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(e) => break Err(e),
                        }
                    };
                    block.offset = offset;
                    block.len = filled;
                    let short = filled < len;
                    let failed = result.is_err();
                    if filled_tx.send(result.map(|()| block)).is_err() || short || failed {
                        return;
                    }
                    offset += len as u64;
                }
            })?;
        Ok(Some(Direct {
            filled: Some(filled),
            empty: Some(empty),
            ahead: Some(ahead),
            block: None,
            cached,
            pos,
            direct_end,
            end,
        }))
    }

    #[cfg(not(target_os = "linux"))]
    fn open(_: &Path, _: u64, _: u64) -> std::io::Result<Option<Direct>> {
        Ok(None)
    }

    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        if self.pos >= self.end || buf.is_empty() {
            return Ok(0);
        }
        if self.pos >= self.direct_end {
            // The last partial block, through the page cache.
            let n = (self.end - self.pos).min(buf.len() as u64) as usize;
            let n = self.cached.read_at(&mut buf[..n], self.pos)?;
            self.pos += n as u64;
            return Ok(n);
        }
        let in_block = self
            .block
            .as_ref()
            .is_some_and(|b| self.pos >= b.offset && self.pos < b.offset + b.len as u64);
        if !in_block {
            if let (Some(done), Some(empty)) = (self.block.take(), &self.empty) {
                let _ = empty.send(done);
            }
            let next = self.filled.as_ref().and_then(|f| f.recv().ok());
            match next {
                Some(Ok(block)) if self.pos < block.offset + block.len as u64 => {
                    self.block = Some(block)
                }
                // The file is shorter than its acknowledged end: let the scan see it.
                Some(Ok(_)) | None => return Ok(0),
                Some(Err(e)) if e.raw_os_error() == Some(libc::EINVAL) => {
                    // The device wants a larger alignment: the rest through the cache.
                    self.direct_end = self.pos;
                    return self.read(buf);
                }
                Some(Err(e)) => return Err(e),
            }
        }
        let block = self.block.as_ref().expect("a block holds pos");
        let from = (self.pos - block.offset) as usize;
        let n = (block.len - from).min(buf.len());
        let start = block.at + from;
        buf[..n].copy_from_slice(&block.buf[start..start + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Drop for Direct {
    fn drop(&mut self) {
        // Closing both channels ends the helper wherever it waits; then it is joined, so
        // no read of a finished scan is still running.
        self.filled.take();
        self.empty.take();
        if let Some(ahead) = self.ahead.take() {
            let _ = ahead.join();
        }
    }
}

/// The acknowledged end of a log file and its head, found on open.
pub(crate) struct Opened {
    pub shared: Arc<Shared>,
    pub file: Appender,
    pub head_seq: u64,
    pub head_hash: ChainHash,
    /// The bytes of the head event (to read its time), if there is one.
    pub head_bytes: Option<Vec<u8>>,
}

fn read_index(path: &Path) -> Vec<u64> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

pub(crate) fn write_index(path: &Path, index: &[u64]) -> Result<(), LogError> {
    let bytes: Vec<u8> = index.iter().flat_map(|o| o.to_le_bytes()).collect();
    owner_only(OpenOptions::new().write(true).create(true).truncate(true))
        .open(path)
        .and_then(|mut f| f.write_all(&bytes))
        .map_err(io)
}

/// Files of the log are the owner's only (0600), as exports and backups are: they hold
/// password and token hashes, and a data directory made by hand may be readable by all.
pub(crate) fn owner_only(opts: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(opts, 0o600);
    opts
}

/// Sync a directory, so that a file created (or renamed) in it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io)
}

/// What [`open`] may change, and what else says how far the log was acknowledged.
pub(crate) struct Expect {
    /// Cut off a torn tail (the server does; `verify` and `replay` only read).
    pub repair: bool,
    /// The newest position a snapshot in the data directory says it was taken at (0:
    /// none). Snapshots are taken only of acknowledged events, so the log reached it.
    pub snapshot_at: u64,
}

/// Open (or create) the log file in `dir`: check the index hint, find the last commit
/// mark, cut off anything after it when that is a torn write (never when it holds
/// acknowledged events: then the log is damaged, and this fails), and bring the index
/// up to date.
pub(crate) fn open(
    dir: &Path,
    decode_seq: impl Fn(&[u8]) -> Option<u64>,
    expect: Expect,
) -> Result<Opened, LogError> {
    let path = dir.join(LOG_FILE);
    let index_path = dir.join(INDEX_FILE);
    let created = !path.exists();
    let mut index = read_index(&index_path);
    // An index entry is written only after the batch holding its event was synced: an
    // index that starts at 0 and increases proves its newest entry's event was
    // acknowledged, wherever the log now ends (a tail cut or zeroed over many batches
    // was cut off as "never acknowledged"; a missing events.log began a new site).
    let monotonic = index.first().is_none_or(|&o| o == 0) && index.windows(2).all(|w| w[0] < w[1]);
    let index_proves = match index.len() as u64 {
        0 => 0,
        n if monotonic => (n - 1) * STRIDE + 1,
        _ => 0,
    };
    if created && (index_proves > 0 || !expect.repair) {
        return Err(LogError::ChainBroken {
            seq: 1,
            reason: if index_proves > 0 {
                format!(
                    "{LOG_FILE} is missing, but its index ({INDEX_FILE}) shows position \
                     {index_proves} was acknowledged: the log was removed or not restored \
                     (restore it; to begin a new site, use an empty data directory)"
                )
            } else {
                format!("{LOG_FILE} is missing: there is no log to read")
            },
        });
    }
    // Not in append mode: batches are written in place, over the zeros written ahead.
    let file = owner_only(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false),
    )
    .open(&path)
    .map_err(io)?;
    if created {
        file.sync_all().map_err(io)?;
        sync_dir(dir)?;
    }
    let mut len = file.metadata().map_err(io)?.len();
    // The hint must start at 0 and increase, within the file.
    let sane = monotonic && index.last().is_none_or(|&o| o < len);
    if !sane {
        index.clear();
    }
    // The newest entry must point at the event it claims; otherwise rebuild from 0.
    if let Some(&last) = index.last() {
        let expected = (index.len() as u64 - 1) * STRIDE + 1;
        let mut ok = false;
        scan(&path, last, len, |_, r| {
            if let Record::Event { bytes, .. } = r {
                ok = decode_seq(bytes) == Some(expected);
            }
            Ok(false)
        })?
        .ok();
        if !ok {
            tracing::warn!("the log's index does not match the log: rebuilding it");
            index.clear();
        }
    }
    let indexed = index.len();
    let mut damaged_mark = None;
    let mut last_batch = None;
    // From the last entry to the end: the last mark is the acknowledged end.
    let (mut end, mut head_seq, mut head_event) =
        match tail(&path, &mut index, len, &mut damaged_mark, &mut last_batch)? {
            Some(found) => found,
            // No mark after the newest entry, which was written only after a mark covered
            // it: the hint is wrong. Read the whole file instead.
            None => {
                tracing::warn!("the log's index points past the last commit: rebuilding it");
                index.clear();
                tail(&path, &mut index, len, &mut damaged_mark, &mut last_batch)?
                    .unwrap_or((0, 0, None))
            }
        };
    // The newest batch torn by a power cut that kept its mark: it ends where the batch
    // before it ended (and is cut off below with the rest of what was never acknowledged).
    if let Some(batch) = last_batch.filter(|b| b.start < end) {
        if newest_batch_torn(&file, &path, &batch, end)? {
            tracing::warn!(
                from = batch.start,
                "the newest batch has its commit mark but sectors that were never written: \
                 a write a power cut tore, never acknowledged"
            );
            index.retain(|&o| o < batch.start);
            if damaged_mark.is_some_and(|(at, _)| at >= batch.start) {
                damaged_mark = None;
            }
            (end, head_seq, head_event) = (batch.start, batch.seq, batch.event);
        }
    }
    // The reading stopped early, or the log was cut short: a record that does not
    // read is taken for the end only when nothing acknowledged lies beyond it.
    if head_seq < index_proves && head_seq >= expect.snapshot_at {
        return Err(LogError::ChainBroken {
            seq: head_seq + 1,
            reason: format!(
                "the log reads only to position {head_seq}, but its index ({INDEX_FILE}, \
                 written only after each batch's sync) shows position {index_proves} was \
                 acknowledged: acknowledged events are missing ({LOG_FILE} is damaged or was \
                 cut short; if an older copy of the log was restored on purpose, remove \
                 {INDEX_FILE} too)"
            ),
        });
    }
    if head_seq < expect.snapshot_at {
        return Err(LogError::ChainBroken {
            seq: head_seq + 1,
            reason: format!(
                "the log reads only to position {head_seq}, but a snapshot was taken at \
                 position {}: acknowledged events are missing (events.log is damaged or \
                 was cut short; a snapshot that is not of this log must be moved out of \
                 snapshots/)",
                expect.snapshot_at
            ),
        });
    }
    let mut head_hash = super::GENESIS_HASH;
    let mut head_bytes = None;
    if let Some(offset) = head_event {
        scan(&path, offset, end, |_, r| {
            if let Record::Event { hash, bytes } = r {
                head_hash = hash;
                head_bytes = Some(bytes.to_vec());
            }
            Ok(false)
        })?
        .ok();
    }
    // After the last mark: the zeros written ahead, which stay, or a batch that was
    // never acknowledged, cut off (its bytes must not be left for a later batch to end
    // short of, where a scan could take them for records).
    if end < len && !zeros(&file, end, len)? {
        if let Some(mark) = committed_after(&file, end, len)? {
            return Err(LogError::ChainBroken {
                seq: head_seq + 1,
                reason: format!(
                    "the record at byte {end} does not read, and the batch whose commit \
                     mark is at byte {mark} was followed by another: acknowledged events \
                     are there (the log is damaged, not torn by a crash)"
                ),
            });
        }
        if let Some((at, why)) = damaged_after(&file, end, len, head_hash)? {
            return Err(LogError::ChainBroken {
                seq: head_seq + 1,
                reason: format!(
                    "the record at byte {at}, after the last commit mark, does not read: {why}. \
                     A crash leaves sectors of zeros, not changed bytes: the newest batch, \
                     acknowledged, is damaged (restore the log from a backup or an export)"
                ),
            });
        }
        if expect.repair {
            tracing::warn!(
                acknowledged = end,
                length = len,
                "cutting off the end of the log that was never acknowledged"
            );
            file.set_len(end).map_err(io)?;
            file.sync_all().map_err(io)?;
            len = end;
        } else {
            tracing::warn!(
                acknowledged = end,
                length = len,
                "the end of the log was never acknowledged (left as it is: the server cuts it off)"
            );
        }
    }
    // `verify` and `replay` change nothing in the data directory.
    if expect.repair && (index.len() != indexed || !sane) {
        write_index(&index_path, &index)?;
    }
    let shared = Arc::new(Shared {
        path,
        index_path,
        end: AtomicU64::new(end),
        head: AtomicU64::new(head_seq),
        index: RwLock::new(index),
        damaged_mark: std::sync::Mutex::new(None),
    });
    if let Some((at, seq)) = damaged_mark {
        shared.note_damaged_mark(at, seq);
    }
    Ok(Opened {
        shared,
        file: Appender {
            file,
            len,
            index: None,
            extending: None,
            cached_from: 0,
            ahead_failing: false,
        },
        head_seq,
        head_hash,
        head_bytes,
    })
}

/// In `from..to` (what follows the last commit mark a scan could read up to): the
/// offset of a commit mark that was followed by another batch. The writer writes a
/// batch only once the one before it is synced and acknowledged, so such a mark means
/// acknowledged events lie past a record that does not read. A torn write is one batch
/// that never finished: at most its own mark, at its end, and nothing after it.
///
/// A mark is told from bytes that only look like one (`u32::MAX` inside an event) by
/// the record after it: the next batch's first event, whose stored chain hash is the
/// hash of the mark's hash and its own bytes. Nothing but the chain makes that match.
fn committed_after(file: &File, from: u64, to: u64) -> Result<Option<u64>, LogError> {
    use std::os::unix::fs::FileExt;
    /// The largest event looked at after a mark (no request makes one near it).
    const EVENT_MAX: u64 = 64 << 20;
    let read = |at: u64, len: usize| -> Result<Option<Vec<u8>>, LogError> {
        let mut buf = vec![0u8; len];
        match file.read_exact_at(&mut buf, at) {
            Ok(()) => Ok(Some(buf)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(io(e)),
        }
    };
    let marker = MARK.to_le_bytes();
    let mut block = vec![0u8; READ_BLOCK];
    let mut at = from;
    while at < to {
        let n = block.len().min((to - at) as usize);
        let got = file.read_at(&mut block[..n], at).map_err(io)?;
        if got < marker.len() {
            break;
        }
        for i in 0..=got - marker.len() {
            if block[i..i + marker.len()] != marker {
                continue;
            }
            let mark = at + i as u64;
            let next = mark + HEADER as u64;
            if next + HEADER as u64 > to {
                continue;
            }
            let (Some(head), Some(record)) = (read(mark, HEADER)?, read(next, HEADER)?) else {
                continue;
            };
            let len = u64::from(u32::from_le_bytes(record[..4].try_into().expect("4 bytes")));
            if len == 0 || len == u64::from(MARK) || len > EVENT_MAX {
                continue;
            }
            if next + HEADER as u64 + len > to {
                continue;
            }
            let Some(bytes) = read(next + HEADER as u64, len as usize)? else {
                continue;
            };
            let prev: ChainHash = head[4..].try_into().expect("32 bytes");
            if super::chain_hash(&prev, &bytes)[..] == record[4..HEADER] {
                return Ok(Some(mark));
            }
        }
        // The last three bytes again: a marker may straddle two blocks.
        at += (got - (marker.len() - 1)) as u64;
    }
    Ok(None)
}

/// In `from..to` (what follows the last commit mark, after `committed_after` found no
/// batch past it): why the first record there that does not read is damage rather than
/// a write a crash tore, if it is. A crash leaves the batch it was writing cut short or
/// with some of its 512-byte sectors never written — zeros, as the file is zeroed ahead
/// of its end — and never other bytes: the record that stops the reading then runs past
/// the last byte written or overlaps a sector of zeros. One whose every sector was written was changed after
/// it was written, and so was a record whose bytes verify with another length than its
/// own, or a commit mark that holds the chain's hash under another tag. Before, all of
/// these were cut off as "never acknowledged": the newest batch's acknowledged writes
/// went without a word, and `verify` passed.
fn damaged_after(
    file: &File,
    from: u64,
    to: u64,
    prev: ChainHash,
) -> Result<Option<(u64, String)>, LogError> {
    use std::os::unix::fs::FileExt;
    const SECTOR: u64 = 512;
    /// How far past a record's start its bytes are looked for under another length.
    const LENGTH_SEARCH: usize = 1 << 20;
    // The data: up to the last byte that is not zero (the zeros ahead are no record).
    let mut data_end = to;
    let mut block = vec![0u8; READ_BLOCK];
    while data_end > from {
        let n = block.len().min((data_end - from) as usize);
        let at = data_end - n as u64;
        file.read_exact_at(&mut block[..n], at).map_err(io)?;
        match block[..n].iter().rposition(|&b| b != 0) {
            Some(i) => {
                data_end = at + i as u64 + 1;
                break;
            }
            None => data_end = at,
        }
    }
    // Records are read up to a bound: past it, the bytes count as zeros (a torn write).
    let limit = data_end.min(from + (LENGTH_SEARCH as u64) * 2);
    let mut buf = vec![0u8; (limit - from) as usize];
    file.read_exact_at(&mut buf, from).map_err(io)?;
    // Before `from` lie the committed records (written): a sector that holds any of
    // them was written, whatever its bytes.
    let byte = |at: u64| -> u8 {
        if at < from {
            1
        } else if at < limit {
            buf[(at - from) as usize]
        } else {
            0
        }
    };
    // Whether a whole sector of zeros (one never written) overlaps `a..b`.
    let zero_sector = |a: u64, b: u64| -> bool {
        let mut s = a - a % SECTOR;
        while s < b {
            if s >= limit || (s..s + SECTOR).all(|i| byte(i) == 0) {
                return true;
            }
            s += SECTOR;
        }
        false
    };
    let mut prev = prev;
    let mut at = from;
    while at < limit {
        if at + HEADER as u64 > limit {
            return Ok(None);
        }
        let head = &buf[(at - from) as usize..(at - from) as usize + HEADER];
        let tag = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
        let stored: ChainHash = head[4..].try_into().expect("32 bytes");
        // No record has length 0: bytes never written (a first batch's, whose previous
        // hash is the zeros of the genesis, would read as a mark's tag changed).
        if tag == 0 {
            return Ok(None);
        }
        if tag == MARK {
            if stored == prev {
                at += HEADER as u64;
                continue;
            }
            if zero_sector(at, at + HEADER as u64) {
                return Ok(None);
            }
            return Ok(Some((
                at,
                "a commit mark whose every sector was written holds a hash that is not the chain's"
                    .into(),
            )));
        }
        if stored == prev {
            return Ok(Some((
                at,
                "a commit mark (it holds the chain's hash) whose tag was changed".into(),
            )));
        }
        let len = u64::from(tag);
        let body = at + HEADER as u64;
        // Its bytes, those past the last one that is not zero read as the zeros they are
        // (an event may end in zero bytes, and a write may stop right after it).
        if (body + len <= limit || len <= LENGTH_SEARCH as u64) && body + len <= to {
            let bytes: Vec<u8> = (body..body + len).map(byte).collect();
            if super::chain_hash(&prev, &bytes) == stored {
                prev = stored;
                at = body + len;
                continue;
            }
        }
        // The record's bytes under another length: its length field was changed.
        let mut hasher = blake3::Hasher::new();
        hasher.update(&prev);
        let search_end = limit.min(body + LENGTH_SEARCH as u64);
        let mut i = body;
        while i < search_end {
            hasher.update(&[byte(i)]);
            i += 1;
            if i - body != len && *hasher.finalize().as_bytes() == stored {
                return Ok(Some((
                    at,
                    format!(
                        "its bytes are whole ({} of them) under a length field that says {len}",
                        i - body
                    ),
                )));
            }
        }
        // Torn: it runs past the last byte written (the write stopped inside it: a
        // process killed in the middle of `write` stops at a page boundary, a power
        // cut at a sector's), or a sector of it was never written.
        if len == 0
            || body.saturating_add(len) > data_end
            || zero_sector(at, body.saturating_add(len))
        {
            return Ok(None);
        }
        return Ok(Some((
            at,
            "it does not match its chain hash, and every sector of it was written".into(),
        )));
    }
    Ok(None)
}

/// Whether the bytes of `file` in `from..to` are all zeros.
fn zeros(file: &File, from: u64, to: u64) -> Result<bool, LogError> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; READ_BLOCK.min((to - from) as usize)];
    let mut at = from;
    while at < to {
        let n = buf.len().min((to - at) as usize);
        file.read_exact_at(&mut buf[..n], at).map_err(io)?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

/// The writer's handle on the file, with the length it knows the file to have.
///
/// Appends check that length rather than asking the file system: a `stat` of the file
/// makes the next write's mtime fine-grained (multigrain timestamps: Linux 6.13+, ext4
/// among the file systems that have them), so the inode changed on every batch and each
/// `fdatasync` wrote it too, two device writes a batch instead of one (a probe here: 2.0
/// block requests a sync with a `stat` before each write, 1.5 without).
pub(crate) struct Appender {
    file: File,
    len: u64,
    /// The index file, opened for appending when first extended and kept open: an open
    /// and a close every `STRIDE` events were two of the writer's system calls. Appends
    /// go to the end of whatever the file holds (O_APPEND), also after the file was
    /// rewritten in place (`write_index`).
    index: Option<File>,
    /// The next `AHEAD` of zeros, being written past `len` by a helper thread: where they
    /// will end, and the thread.
    extending: Option<(u64, std::thread::JoinHandle<std::io::Result<()>>)>,
    /// Below this offset the log's pages were dropped from the page cache (as far as
    /// this handle knows: 0 after opening, when a start-up may have read all of it).
    cached_from: u64,
    /// The last zeros ahead failed (said once, until they are written again).
    ahead_failing: bool,
}

impl Appender {
    #[cfg(test)]
    pub fn known_len(&mut self) -> u64 {
        self.finish_extending();
        self.len
    }

    /// Make the file at least `needed` bytes long, with zeros after `records_end`
    /// (not synced here: the batch's sync that follows covers them and the new length),
    /// and keep the next `AHEAD` of zeros coming on a helper thread.
    ///
    /// Why a helper: written here, on the writer's thread, 8 MiB of zeros were copied
    /// into the page cache in the middle of a batch and then sent to the disk by that
    /// batch's sync, every 8 MiB of log (every 0.2 s of SCIM creates): a stall the
    /// commands of that batch waited through. The helper writes them a megabyte at a
    /// time, each sent to the disk before the next, and syncs them (with the file's new
    /// length) itself, so the writer's syncs find at most a megabyte of them. Zeros
    /// never go below `records_end`, whatever `len` says (the tampering tools of the
    /// tests rewrite the file under the writer's handle).
    fn write_ahead(&mut self, records_end: u64, needed: u64) -> std::io::Result<()> {
        let done = self
            .extending
            .as_ref()
            .is_some_and(|(_, helper)| helper.is_finished());
        if done || (self.len < needed && self.extending.is_some()) {
            self.finish_extending();
        }
        if self.len < needed {
            // The helper did not keep up (or failed): the zeros this batch needs, here —
            // a window ahead, or (a disk almost full) only what the batch takes.
            let target = (needed + AHEAD).div_ceil(AHEAD) * AHEAD;
            let from = self.len.max(records_end);
            match write_zeros(&self.file, from, target, false) {
                Ok(()) => self.len = target,
                Err(_) => {
                    write_zeros(&self.file, from, needed, false)?;
                    // What the failed window did write is given back: on a nearly full
                    // disk it was all the room left (key files, snapshots).
                    let _ = self.file.set_len(needed);
                    self.len = needed;
                }
            }
        }
        // Less than half a window of zeros left: the next window, from the helper
        // (`len` is at least `needed` here). Spawned by the appending thread, the writer,
        // it inherits the writer's raised priority (`background::raise_priority`), and
        // should: a batch waits for it when it falls behind.
        if self.extending.is_none() && self.len < needed + AHEAD / 2 {
            let (from, to) = (self.len, self.len + AHEAD);
            // The log's pages further back than `KEEP_CACHED` leave the page cache first,
            // so that the zeros' pages are the ones just freed (see the module's comment).
            let behind = records_end.saturating_sub(KEEP_CACHED);
            let dropped = (behind > self.cached_from).then_some((self.cached_from, behind));
            self.cached_from = self.cached_from.max(behind);
            let helper = self.file.try_clone().and_then(|file| {
                std::thread::Builder::new()
                    .name("gatehouse-log-ahead".into())
                    .spawn(move || {
                        if let Some((start, end)) = dropped {
                            drop_cached(&file, start, end);
                        }
                        write_zeros(&file, from, to, true)
                    })
            });
            match helper {
                Ok(helper) => self.extending = Some((to, helper)),
                // Written with a later batch instead.
                Err(e) => tracing::warn!(error = %e, "cannot start writing the log's zeros ahead"),
            }
        }
        Ok(())
    }

    /// Cut the file back to `end` (a batch that was not acknowledged), once no helper
    /// writes zeros past it any more.
    fn cut_back(&mut self, end: u64) {
        self.finish_extending();
        if self.file.set_len(end).is_ok() {
            self.len = end;
        }
    }

    /// Wait for the helper writing zeros ahead; count them when it succeeded.
    fn finish_extending(&mut self) {
        let Some((to, helper)) = self.extending.take() else {
            return;
        };
        match helper.join() {
            Ok(Ok(())) => {
                self.len = self.len.max(to);
                self.ahead_failing = false;
            }
            // The next batch that needs them writes them itself. Said once until they
            // are written again (it was a line a batch on a full disk: thousands).
            Ok(Err(e)) => {
                // What the helper did write is given back (see `write_ahead`).
                let _ = self.file.set_len(self.len);
                if !self.ahead_failing {
                    self.ahead_failing = true;
                    tracing::warn!(error = %e, "cannot write the log's zeros ahead (said once until it works again)")
                }
            }
            Err(_) => tracing::warn!("the thread writing the log's zeros ahead failed"),
        }
    }
}

impl Drop for Appender {
    /// No helper outlives the log it writes zeros into (a reopen, a test's rewrite).
    fn drop(&mut self) {
        self.finish_extending();
    }
}

/// Ask the kernel to drop the cached pages of `from..to` of `file` (`POSIX_FADV_DONTNEED`:
/// clean pages are freed at once; the caller has synced them). Only a hint: a page
/// read again comes back from the disk, and a failure changes nothing but memory.
pub(crate) fn drop_cached(file: &File, from: u64, to: u64) {
    // The page cache holds a file in folios of up to 2 MiB, and drops only those wholly
    // inside the range: starting 2 MiB-aligned, a range that goes on from where the
    // last one ended also drops the folio that lay across that end (dropping what is
    // gone already costs nothing).
    const FOLIO: u64 = 2 << 20;
    let from = from / FOLIO * FOLIO;
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: posix_fadvise reads only the descriptor and the range.
        unsafe {
            libc::posix_fadvise(
                file.as_raw_fd(),
                from as libc::off_t,
                to.saturating_sub(from) as libc::off_t,
                libc::POSIX_FADV_DONTNEED,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, from, to);
}

/// How many of the pages of `from..to` of the file at `path` are in the page cache
/// (`mincore` over a mapping, which reads none of them in); `None` on a file system whose
/// files live in the page cache (tmpfs), where nothing can be dropped.
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn resident_pages(path: &Path, from: u64, to: u64) -> Option<usize> {
    use std::os::unix::io::AsRawFd;
    let file = File::open(path).unwrap();
    // SAFETY: a zeroed statfs is valid; fstatfs fills it.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::fstatfs(file.as_raw_fd(), &mut fs) }, 0);
    if fs.f_type == libc::TMPFS_MAGIC {
        return None;
    }
    let page = 4096u64;
    let (from, to) = (from / page * page, to.div_ceil(page) * page);
    let len = (to - from) as usize;
    // SAFETY: a read-only shared mapping of a range of the file, unmapped below; mincore
    // writes one byte per page into `pages`, which has that many.
    unsafe {
        let at = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            from as libc::off_t,
        );
        assert_ne!(at, libc::MAP_FAILED);
        let mut pages = vec![0u8; len / page as usize];
        assert_eq!(libc::mincore(at, len, pages.as_mut_ptr()), 0);
        libc::munmap(at, len);
        Some(pages.iter().filter(|&&p| p & 1 == 1).count())
    }
}

/// Write zeros over `from..to` of `file`, a `READ_BLOCK` at a time; `durable`: each block
/// sent to the disk before the next is written, and the whole synced at the end.
fn write_zeros(file: &File, from: u64, to: u64, durable: bool) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let zeros = vec![0u8; READ_BLOCK];
    let mut at = from;
    while at < to {
        let n = zeros.len().min((to - at) as usize);
        file.write_all_at(&zeros[..n], at)?;
        if durable {
            write_back(file, at, n as u64, true);
        }
        at += n as u64;
    }
    if durable {
        file.sync_data()?;
    }
    Ok(())
}

/// Start sending `from..from + len` of `file` to the disk, and with `wait` wait until it
/// is there (`sync_file_range`: the data only, not a flush of the device's cache nor the
/// file's metadata — a later `sync_data` makes it durable). Failures are ignored: the
/// caller's sync covers the range anyway; this only moves when its bytes travel.
pub(crate) fn write_back(file: &File, from: u64, len: u64, wait: bool) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        let flags = if wait {
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER
        } else {
            libc::SYNC_FILE_RANGE_WRITE
        };
        // SAFETY: sync_file_range reads only the descriptor and the range.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                from as libc::off64_t,
                len as libc::off64_t,
                flags,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, from, len, wait);
}

/// Read from the newest index entry (or the start) to `len`: the end just after the last
/// commit mark, the position of the last event before it and that event's offset. Index
/// entries for positions a mark covers are added to `index`. `None` when the read
/// started at an index entry and found no mark after it.
///
/// A mark that does not hold its batch's last hash is noted in `damaged` (the events
/// verify on their own: nothing is lost, but the disk changed bytes), except a last mark
/// whose hash ends in zeros from a sector boundary on: the pages of a batch whose sync
/// never returned, which is not taken for a commit (the batch is cut off as torn).
fn tail(
    path: &Path,
    index: &mut Vec<u64>,
    len: u64,
    damaged: &mut Option<(u64, u64)>,
    last_batch: &mut Option<LastBatch>,
) -> Result<Option<(u64, u64, Option<u64>)>, LogError> {
    let (from, mut seq) = match index.last() {
        Some(&o) => (o, (index.len() as u64 - 1) * STRIDE),
        None => (0, 0),
    };
    let indexed = index.len() as u64;
    let mut committed: Option<(u64, u64, Option<u64>)> = None;
    // The commit before the newest, and the chain hash there: where the newest batch
    // starts, and what its first event chains from.
    let mut committed_hash: Option<ChainHash> = None;
    *last_batch = None;
    let mut last_event = None;
    let mut last_hash = None;
    let mut torn_mark = None;
    let mut pending = Vec::new();
    let _torn = scan(path, from, len, |at, r| {
        match r {
            Record::Event { hash, .. } => {
                seq += 1;
                if (seq - 1) % STRIDE == 0 && (seq - 1) / STRIDE >= indexed {
                    pending.push(at);
                }
                last_event = Some(at);
                last_hash = Some(hash);
            }
            Record::Mark { hash } => {
                if last_hash.is_some_and(|h| h != hash) {
                    if torn_write(at, &hash) && torn_mark.is_none() {
                        torn_mark = Some((at, seq));
                        return Ok(true);
                    }
                    damaged.get_or_insert((at, seq));
                }
                // A torn-looking mark with a commit after it was damage, not a crash.
                if let Some(earlier) = torn_mark.take() {
                    damaged.get_or_insert(earlier);
                }
                *last_batch = match (committed, committed_hash) {
                    (Some((start, seq, event)), Some(hash)) => Some(LastBatch {
                        start,
                        seq,
                        event,
                        hash,
                    }),
                    (None, _) if from == 0 => Some(LastBatch {
                        start: 0,
                        seq: 0,
                        event: None,
                        hash: super::GENESIS_HASH,
                    }),
                    _ => None,
                };
                committed = Some((at + HEADER as u64, seq, last_event));
                committed_hash = last_hash;
                // Entries for positions after a mark are kept only once a mark covers them.
                index.append(&mut pending);
            }
        }
        Ok(true)
    })?;
    Ok(match committed {
        Some(c) => Some(c),
        None if from == 0 => Some((0, 0, None)),
        None => None,
    })
}

/// Where the newest committed batch starts, and the commit before it (its end, position,
/// last event's offset, chain hash).
#[derive(Clone, Copy)]
struct LastBatch {
    start: u64,
    seq: u64,
    event: Option<u64>,
    hash: ChainHash,
}

/// Whether the newest batch, `batch.start..end`, has its mark but was torn all the same:
/// a power cut keeps any of a write's sectors, the mark's among them, and loses others
/// (zeros: the file is zeroed ahead). Its sync never returned, so it was never
/// acknowledged — but it read as committed, and its replay stopped the start for good.
/// True when one of its events does not follow the chain and a whole sector of it is
/// zeros; damage without such a sector is left to the replay, which names it.
fn newest_batch_torn(
    file: &File,
    path: &Path,
    batch: &LastBatch,
    end: u64,
) -> Result<bool, LogError> {
    use std::os::unix::fs::FileExt;
    const SECTOR: u64 = 512;
    let mut prev = batch.hash;
    let mut broken = false;
    scan(path, batch.start, end, |_, r| {
        match r {
            Record::Event { hash, bytes } => {
                if super::chain_hash(&prev, bytes) != hash {
                    broken = true;
                    return Ok(false);
                }
                prev = hash;
            }
            // A mark whose hash differs, its events whole, is damage the events survive
            // (`note_damaged_mark`), not a torn write.
            Record::Mark { .. } => {}
        }
        Ok(true)
    })?
    .ok();
    if !broken || end - batch.start > 64 << 20 {
        return Ok(false);
    }
    let mut bytes = vec![0u8; (end - batch.start) as usize];
    file.read_exact_at(&mut bytes, batch.start).map_err(io)?;
    let first = batch.start.div_ceil(SECTOR) * SECTOR;
    let mut s = first;
    while s + SECTOR <= end {
        let i = (s - batch.start) as usize;
        if bytes[i..i + SECTOR as usize].iter().all(|&b| b == 0) {
            return Ok(true);
        }
        s += SECTOR;
    }
    Ok(false)
}

/// Whether a commit mark at `at` holding `hash` reads as written only in part: its hash
/// zeros from a sector boundary to its end (the file is zeros ahead of the writer, and
/// a crash leaves whole sectors unwritten).
fn torn_write(at: u64, hash: &ChainHash) -> bool {
    const SECTOR: u64 = 512;
    let first = at + 4;
    (0..hash.len())
        .any(|k| (first + k as u64).is_multiple_of(SECTOR) && hash[k..].iter().all(|&b| b == 0))
}

impl Shared {
    /// Note a commit mark that does not hold its batch's last hash (said once, as an
    /// error: the events verify on their own, but the disk changed bytes it was given).
    pub fn note_damaged_mark(&self, at: u64, seq: u64) {
        let mut damaged = self.damaged_mark.lock().unwrap_or_else(|p| p.into_inner());
        if damaged.is_none() {
            tracing::error!(
                byte = at,
                position = seq,
                "the commit mark after this position does not hold its batch's hash: the \
                 disk changed bytes of events.log (the events verify; `gatehouse verify` \
                 fails until the log is restored from a backup or an export)"
            );
            *damaged = Some((at, seq));
        }
    }

    /// Where to start reading for position `from`: (offset, position of the first event
    /// there).
    pub fn start_for(&self, from: u64) -> (u64, u64) {
        let index = self.index.read().unwrap_or_else(|p| p.into_inner());
        if index.is_empty() || from <= 1 {
            return (0, 1);
        }
        let k = ((from - 1) / STRIDE).min(index.len() as u64 - 1);
        (index[k as usize], k * STRIDE + 1)
    }

    pub fn end(&self) -> u64 {
        self.end.load(Ordering::Acquire)
    }

    /// Where the records of the positions up to `to` end at the latest: the offset of
    /// the first indexed position after `to`, or the acknowledged end. A scan of a range
    /// reads no further (nor, for an old range, around the cache as a long one does).
    pub fn end_for(&self, to: u64) -> u64 {
        let end = self.end();
        let index = self.index.read().unwrap_or_else(|p| p.into_inner());
        match index.get(to.div_ceil(STRIDE) as usize) {
            Some(&offset) => offset.min(end),
            None => end,
        }
    }
}

/// Append `records` (`hash ‖ bytes` for positions `first..`) and a commit mark, sync, then
/// publish the new end and index entries. Only the writer calls this.
pub(crate) fn append(
    shared: &Shared,
    file: &mut Appender,
    first: u64,
    records: &[(ChainHash, &[u8])],
) -> Result<(), LogError> {
    let Some((last_hash, _)) = records.last() else {
        return Ok(());
    };
    let start = shared.end();
    let size: usize = records.iter().map(|(_, b)| HEADER + b.len()).sum::<usize>() + HEADER;
    let mut buf = Vec::with_capacity(size);
    let mut new_entries = Vec::new();
    for (i, (hash, bytes)) in records.iter().enumerate() {
        let seq = first + i as u64;
        if (seq - 1) % STRIDE == 0 {
            new_entries.push(start + buf.len() as u64);
        }
        buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        buf.extend_from_slice(hash);
        buf.extend_from_slice(bytes);
    }
    buf.extend_from_slice(&MARK.to_le_bytes());
    buf.extend_from_slice(last_hash);
    let written = file
        .write_ahead(start, start + buf.len() as u64)
        .and_then(|()| {
            use std::os::unix::fs::FileExt;
            file.file.write_all_at(&buf, start)
        });
    if let Err(e) = written {
        // Not acknowledged: take the partial batch back off so the file ends at a mark.
        file.cut_back(start);
        // No space for it (the zeros ahead or the batch itself): nothing was synced, the
        // log is whole; the writer refuses this batch and the next ones until there is.
        if matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)) {
            return Err(LogError::NoSpace(e));
        }
        return Err(io(e));
    }
    if let Err(e) = file.file.sync_data() {
        // A failed sync is not retried: the kernel may have dropped the pages it could
        // not write and call the next sync a success (the writer stops).
        file.cut_back(start);
        return Err(io(e));
    }
    // Acknowledged. The index is a hint: appended, not synced.
    if !new_entries.is_empty() {
        let mut index = shared.index.write().unwrap_or_else(|p| p.into_inner());
        index.extend_from_slice(&new_entries);
        let bytes: Vec<u8> = new_entries.iter().flat_map(|o| o.to_le_bytes()).collect();
        let index_file = match file.index.take() {
            Some(f) => Ok(f),
            None => {
                owner_only(OpenOptions::new().append(true).create(true)).open(&shared.index_path)
            }
        };
        match index_file.and_then(|mut f| f.write_all(&bytes).map(|()| f)) {
            Ok(f) => file.index = Some(f),
            // Opened again next time.
            Err(e) => {
                tracing::warn!(error = %e, "cannot extend the log's index (it is rebuilt on the next start)")
            }
        }
    }
    shared
        .head
        .store(first + records.len() as u64 - 1, Ordering::Release);
    shared
        .end
        .store(start + buf.len() as u64, Ordering::Release);
    Ok(())
}

/// Writes a whole log file from its first record: for the migration from sled (into a
/// new file that is then renamed into place) and the tampering tools of the tests.
pub(crate) struct Rewriter {
    out: std::io::BufWriter<File>,
    index: Vec<u64>,
    offset: u64,
    count: u64,
    last: Option<ChainHash>,
}

impl Rewriter {
    pub fn create(path: &Path) -> Result<Rewriter, LogError> {
        let file = owner_only(OpenOptions::new().write(true).create(true).truncate(true))
            .open(path)
            .map_err(io)?;
        Ok(Rewriter {
            out: std::io::BufWriter::with_capacity(READ_BLOCK, file),
            index: Vec::new(),
            offset: 0,
            count: 0,
            last: None,
        })
    }

    pub fn push(&mut self, hash: &ChainHash, bytes: &[u8]) -> Result<(), LogError> {
        if self.count % STRIDE == 0 {
            self.index.push(self.offset);
        }
        self.out
            .write_all(&(bytes.len() as u32).to_le_bytes())
            .and_then(|()| self.out.write_all(hash))
            .and_then(|()| self.out.write_all(bytes))
            .map_err(io)?;
        self.offset += (HEADER + bytes.len()) as u64;
        self.count += 1;
        self.last = Some(*hash);
        Ok(())
    }

    /// One commit mark after everything, then sync: (the index, the file's length).
    pub fn finish(mut self) -> Result<(Vec<u64>, u64), LogError> {
        if let Some(hash) = self.last {
            self.out
                .write_all(&MARK.to_le_bytes())
                .and_then(|()| self.out.write_all(&hash))
                .map_err(io)?;
            self.offset += HEADER as u64;
        }
        let file = self.out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        Ok((self.index, self.offset))
    }
}

/// Replace the whole file with `records` (positions 1..) and one commit mark.
pub(crate) fn write_all_records(
    path: &Path,
    records: impl IntoIterator<Item = (ChainHash, Vec<u8>)>,
) -> Result<(Vec<u64>, u64), LogError> {
    let mut w = Rewriter::create(path)?;
    for (hash, bytes) in records {
        w.push(&hash, &bytes)?;
    }
    w.finish()
}

// Linux only: `Direct` is (elsewhere scans read through the cache), and so is
// `resident_pages`.
#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn read_all(mut source: Source, chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; chunk];
        loop {
            let n = source.read(&mut buf).unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    /// Reads around the page cache hand out exactly the bytes a cached read does, from
    /// any offset to any end (neither aligned), in reads of any size, and stop where a
    /// file shorter than its supposed end stops.
    #[test]
    fn direct_reads_give_the_bytes_cached_reads_give() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let len = 3 * READ_BLOCK + 12_345;
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4099) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let Some(_) = Direct::open(&path, 0, len as u64).unwrap() else {
            eprintln!("this file system refuses O_DIRECT: nothing to compare");
            return;
        };
        let cases = [
            (0, len as u64),
            (1, len as u64 - 1),
            (4095, 2 * READ_BLOCK as u64 + 4097),
            (READ_BLOCK as u64 - 3, READ_BLOCK as u64 + 5),
            (len as u64 - 100, len as u64),
            (100, len as u64 + 50_000), // past the file's end
        ];
        for (from, to) in cases {
            for chunk in [1 << 20, 4096, 1000, 7] {
                if chunk < 1000 && to - from > 100_000 {
                    continue;
                }
                let direct = Direct::open(&path, from, to).unwrap().unwrap();
                let got = read_all(Source::Direct(direct), chunk);
                let want = &bytes[from as usize..(to as usize).min(len)];
                assert!(got == want, "{from}..{to} in reads of {chunk}");
            }
        }
        // And they go around the cache: once the file's pages are dropped, reading it
        // whole brings none of its whole blocks back (the last partial one is read
        // through the cache).
        let file = File::open(&path).unwrap();
        file.sync_all().unwrap();
        drop_cached(&file, 0, len as u64);
        let aligned = (len - len % DIRECT_ALIGN) as u64;
        if resident_pages(&path, 0, aligned) == Some(0) {
            let direct = Direct::open(&path, 0, len as u64).unwrap().unwrap();
            assert!(read_all(Source::Direct(direct), 1 << 20) == bytes);
            assert_eq!(resident_pages(&path, 0, aligned), Some(0));
        }
        // A scan that stops early (a walk's caller stopped, a record was torn) ends the
        // helper reading ahead: dropping the reader neither hangs nor leaves it running.
        for taken in [0, 10, READ_BLOCK + 1] {
            let mut direct = Source::Direct(Direct::open(&path, 0, len as u64).unwrap().unwrap());
            let mut buf = vec![0u8; taken];
            direct.read_exact(&mut buf).unwrap();
            assert!(buf == bytes[..taken]);
            drop(direct);
        }
    }
}

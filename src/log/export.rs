//! The log's portable forms, shared by `gatehouse export|import|verify --export` and
//! `POST /access/api/v1/system/backup/export`: binary (compact) or NDJSON (one event a
//! line). Both carry each event's stored bytes and chain hash, so an import reproduces
//! the chain bit for bit and an offline check needs nothing else.

use super::{ChainHash, EventLog, LogError, RawEvent};
use base64::Engine;
use std::io::Write;

/// The binary form: this header, then per event `position (u64 BE) ‖ hash (32) ‖
/// length (u32 BE) ‖ the stored bytes`, then the end mark: `END ‖ the number of events
/// (u64 BE) ‖ the last event's hash (32)`. NDJSON ends with the line
/// `{"end": {"events": n, "head_hash": "<hex>"}}`. Without the end mark, an export cut
/// at an event's boundary (or an empty file) read as a whole, shorter log: it verified
/// "intact" and imported an older history.
pub const MAGIC: &[u8] = b"GATEHOUSE-LOG\x01\n";

/// The end mark's first eight bytes, where a position would be: no event has it.
const END: u64 = u64::MAX;

/// What a reader says of an export without an end mark.
pub const UNTERMINATED: &str = "the export has no end mark: it was cut short, or written by a Gatehouse older than the end mark (such a file is taken as it is with --allow-unterminated, after checking it is whole)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Binary,
    Ndjson,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("cannot write: {0}")]
    Io(#[from] std::io::Error),
}

fn hex(bytes: &[u8]) -> String {
    crate::hex(bytes)
}

/// Write every stored event; returns how many.
pub fn write(log: &EventLog, out: &mut impl Write, format: Format) -> Result<u64, ExportError> {
    write_with(out, format, |f| log.for_each_stored(1, None, f))
}

/// Write the events that `source` hands to its visitor, in order (the visitor returns
/// false to stop): the sled log's, or the shared log's (`gatehouse export --store`).
/// Each record's hash is checked against the chain as it goes: an export of a damaged
/// log fails there (it copied the damage and said "exported", and a backup was signed).
pub fn write_with(
    out: &mut impl Write,
    format: Format,
    source: impl FnOnce(&mut dyn FnMut(u64, &ChainHash, &[u8]) -> bool) -> Result<(), LogError>,
) -> Result<u64, ExportError> {
    let mut io_error = None;
    let mut broken = None;
    let mut n = 0u64;
    let mut head = super::GENESIS_HASH;
    if format == Format::Binary {
        out.write_all(MAGIC)?;
    }
    source(&mut |seq, hash, bytes| {
        if super::chain_hash(&head, bytes) != *hash {
            broken = Some(seq);
            return false;
        }
        head = *hash;
        let written = match format {
            Format::Binary => out
                .write_all(&seq.to_be_bytes())
                .and_then(|_| out.write_all(hash))
                .and_then(|_| out.write_all(&(bytes.len() as u32).to_be_bytes()))
                .and_then(|_| out.write_all(bytes)),
            Format::Ndjson => {
                let line = serde_json::json!({
                    "position": seq,
                    "hash": hex(hash),
                    "event": base64::engine::general_purpose::STANDARD.encode(bytes),
                });
                serde_json::to_writer(&mut *out, &line)
                    .map_err(std::io::Error::other)
                    .and_then(|_| out.write_all(b"\n"))
            }
        };
        n += 1;
        match written {
            Ok(()) => true,
            Err(e) => {
                io_error = Some(e);
                false
            }
        }
    })?;
    if let Some(e) = io_error {
        return Err(e.into());
    }
    if let Some(seq) = broken {
        return Err(LogError::ChainBroken {
            seq,
            reason: "the record's hash does not follow from the one before: the log is damaged here (nothing exported past it)".into(),
        }
        .into());
    }
    match format {
        Format::Binary => {
            out.write_all(&END.to_be_bytes())?;
            out.write_all(&n.to_be_bytes())?;
            out.write_all(&head)?;
        }
        Format::Ndjson => {
            let line = serde_json::json!({"end": {"events": n, "head_hash": hex(&head)}});
            serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::other)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(n)
}

fn unhex(s: &str) -> Option<ChainHash> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Read either form back into raw events (not yet checked: `EventLog::append_raw` and
/// `gatehouse verify --export` check them), requiring the end mark.
pub fn read(data: &[u8]) -> Result<Vec<RawEvent>, String> {
    read_with(data, false)
}

/// [`read`]; `unterminated_ok` takes an export without an end mark (one written before
/// there was one) as it is.
pub fn read_with(data: &[u8], unterminated_ok: bool) -> Result<Vec<RawEvent>, String> {
    let (events, end) = read_parts(data)?;
    match end {
        Some((count, head)) => {
            let last = events.last().map_or(super::GENESIS_HASH, |e| e.hash);
            if count != events.len() as u64 || head != last {
                return Err(format!(
                    "the export's end mark says {count} events ending in {}, and it holds {} ending in {}: it is not the file that was written",
                    hex(&head),
                    events.len(),
                    hex(&last)
                ));
            }
        }
        // Nothing at all, and no mark: not a log, whatever the flag says.
        None if events.is_empty() => {
            return Err("the export is empty: no events and no end mark".into())
        }
        None if unterminated_ok => {}
        None => return Err(UNTERMINATED.into()),
    }
    Ok(events)
}

type EndMark = Option<(u64, ChainHash)>;

fn read_parts(data: &[u8]) -> Result<(Vec<RawEvent>, EndMark), String> {
    let mut out = Vec::new();
    if let Some(mut rest) = data.strip_prefix(MAGIC) {
        while !rest.is_empty() {
            if rest.len() >= 8 && rest[..8] == END.to_be_bytes() {
                if rest.len() != 48 {
                    return Err("the export's end mark is cut short, or followed by more".into());
                }
                let count = u64::from_be_bytes(rest[8..16].try_into().expect("8 bytes"));
                let head: ChainHash = rest[16..48].try_into().expect("32 bytes");
                return Ok((out, Some((count, head))));
            }
            if rest.len() < 44 {
                return Err("the export ends in the middle of an event".into());
            }
            let seq = u64::from_be_bytes(rest[..8].try_into().expect("8 bytes"));
            let hash: ChainHash = rest[8..40].try_into().expect("32 bytes");
            let len = u32::from_be_bytes(rest[40..44].try_into().expect("4 bytes")) as usize;
            let bytes = rest
                .get(44..44 + len)
                .ok_or("the export ends in the middle of an event")?
                .to_vec();
            out.push(RawEvent { seq, hash, bytes });
            rest = &rest[44 + len..];
        }
        return Ok((out, None));
    }
    let mut end = None;
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        if end.is_some() {
            return Err(format!("line {}: an event after the end mark", i + 1));
        }
        let v: serde_json::Value = serde_json::from_slice(line).map_err(|e| {
            if i == 0 {
                format!("not a Gatehouse export (neither the binary form nor NDJSON events): line 1: {e}")
            } else {
                format!("line {}: {e}", i + 1)
            }
        })?;
        if let Some(mark) = v.get("end") {
            let count = mark["events"]
                .as_u64()
                .ok_or(format!("line {}: the end mark has no event count", i + 1))?;
            let head = mark["head_hash"]
                .as_str()
                .and_then(unhex)
                .ok_or(format!("line {}: the end mark has no head hash", i + 1))?;
            end = Some((count, head));
            continue;
        }
        let seq = v["position"]
            .as_u64()
            .ok_or(format!("line {}: no position", i + 1))?;
        let hash = v["hash"]
            .as_str()
            .and_then(unhex)
            .ok_or(format!("line {}: no hash", i + 1))?;
        let bytes = v["event"]
            .as_str()
            .and_then(|e| base64::engine::general_purpose::STANDARD.decode(e).ok())
            .ok_or(format!("line {}: no event", i + 1))?;
        out.push(RawEvent { seq, hash, bytes });
    }
    Ok((out, end))
}

//! The newest lines the server logged, kept in memory (a bounded ring) so that a support
//! bundle can carry them: Gatehouse logs to stderr only (journald, docker, systemd keep
//! the files), so without this a bundle could not say what the server just did.
//!
//! `gatehouse serve` installs [`Tee`] as the log writer; a server embedded in another
//! program (the tests' in-process servers) has none, and bundles say so. Log lines never
//! carry secrets (DESIGN.md), so neither does the ring.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// At most this many lines ...
const MAX_LINES: usize = 10_000;
/// ... and about this many bytes are kept.
const MAX_BYTES: usize = 4 * 1024 * 1024;

struct Ring {
    lines: VecDeque<(u64, String)>,
    bytes: usize,
}

static RING: Mutex<Ring> = Mutex::new(Ring {
    lines: VecDeque::new(),
    bytes: 0,
});
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// A `tracing_subscriber` writer: each formatted event goes to stderr and into the ring.
#[derive(Clone, Copy, Default)]
pub struct Tee;

impl Tee {
    /// Mark the ring as filled by this process's logger.
    pub fn install() -> Tee {
        INSTALLED.store(true, Ordering::SeqCst);
        Tee
    }
}

/// One event's formatted text (the fmt layer writes an event through one writer).
pub struct TeeWriter(Vec<u8>);

impl Write for TeeWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for TeeWriter {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let _ = std::io::stderr().write_all(&self.0);
        record(&String::from_utf8_lossy(&self.0));
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Tee {
    type Writer = TeeWriter;
    fn make_writer(&'a self) -> TeeWriter {
        TeeWriter(Vec::new())
    }
}

fn record(text: &str) {
    let now = crate::auth::unix_millis();
    let mut ring = RING.lock().unwrap_or_else(|e| e.into_inner());
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        // ANSI colours (a terminal) are no use in a file someone reads elsewhere.
        let line = strip_ansi(line);
        ring.bytes += line.len();
        ring.lines.push_back((now, line));
    }
    while ring.lines.len() > MAX_LINES || ring.bytes > MAX_BYTES {
        match ring.lines.pop_front() {
            Some((_, l)) => ring.bytes -= l.len(),
            None => break,
        }
    }
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... final byte in @..~
            for d in chars.by_ref() {
                if ('@'..='~').contains(&d) && d != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The kept lines logged between `from_ms` and `to_ms` (inclusive), oldest first; `None`
/// when this process keeps none (its logger is not [`Tee`]).
pub fn between(from_ms: u64, to_ms: u64) -> Option<Vec<String>> {
    if !INSTALLED.load(Ordering::SeqCst) {
        return None;
    }
    let ring = RING.lock().unwrap_or_else(|e| e.into_inner());
    Some(
        ring.lines
            .iter()
            .filter(|(t, _)| (from_ms..=to_ms).contains(t))
            .map(|(_, l)| l.clone())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn ansi_colours_are_dropped() {
        assert_eq!(
            super::strip_ansi("\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m x"),
            "2026  INFO x"
        );
    }
}

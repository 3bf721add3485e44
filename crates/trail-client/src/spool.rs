//! The disk spool: append-only NDJSON segment files (`seg-<n>.ndjson`, one
//! event per line), each append fsync'd before it counts as spooled.
//! Segments are replayed oldest first and a segment is deleted only once
//! every event in it has been acknowledged. A line torn by a crash (no
//! trailing newline, or not JSON) is skipped on replay.
//!
//! The directory is created on the first append, never before: a recorder
//! that never needs its spool leaves no file behind.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A segment is closed and a new one started past this size.
const SEGMENT_BYTES: u64 = 4 << 20;

/// One spool directory, owned by one process at a time.
pub struct Spool {
    dir: PathBuf,
    /// The segment being appended to, with its number and size.
    current: Option<(u64, File, u64)>,
    /// The next segment number.
    next: u64,
    /// Lines of each segment acknowledged in this process (so a segment
    /// whose replay stopped half way is not resent from its start).
    acked: HashMap<u64, usize>,
    /// Events in the spool not yet acknowledged.
    pending: u64,
}

impl Spool {
    /// Opens `dir` (which may not exist yet) and counts what it holds.
    pub fn open(dir: &Path) -> io::Result<Spool> {
        let mut spool = Spool {
            dir: dir.to_owned(),
            current: None,
            next: 0,
            acked: HashMap::new(),
            pending: 0,
        };
        let segments = spool.segments()?;
        if let Some(last) = segments.last() {
            spool.next = last + 1;
        }
        for n in segments {
            spool.pending += read_lines(&spool.path(n))?.len() as u64;
        }
        Ok(spool)
    }

    /// Events spooled and not yet acknowledged.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    fn path(&self, n: u64) -> PathBuf {
        self.dir.join(format!("seg-{n:020}.ndjson"))
    }

    /// Segment numbers on disk, oldest first.
    pub fn segments(&self) -> io::Result<Vec<u64>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error),
        };
        let mut out = Vec::new();
        for entry in entries {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(n) = name
                .strip_prefix("seg-")
                .and_then(|rest| rest.strip_suffix(".ndjson"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                out.push(n);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Appends events (one JSON line each) and fsyncs them.
    pub fn append(&mut self, lines: &[String]) -> io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for line in lines {
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
        }
        if self.current.as_ref().is_some_and(|c| c.2 >= SEGMENT_BYTES) {
            self.current = None;
        }
        if self.current.is_none() {
            std::fs::create_dir_all(&self.dir)?;
            let n = self.next;
            self.next += 1;
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(self.path(n))?;
            sync_dir(&self.dir)?;
            self.current = Some((n, file, 0));
        }
        let current = self.current.as_mut().expect("a current segment");
        current.1.write_all(&bytes)?;
        current.1.sync_data()?;
        current.2 += bytes.len() as u64;
        self.pending += lines.len() as u64;
        Ok(())
    }

    /// Closes the segment being appended to, so every segment on disk is
    /// sealed and can be replayed.
    pub fn seal(&mut self) {
        self.current = None;
    }

    /// The events of segment `n` not yet acknowledged in this process.
    pub fn unacked(&self, n: u64) -> io::Result<Vec<String>> {
        let mut lines = read_lines(&self.path(n))?;
        let done = self.acked.get(&n).copied().unwrap_or(0).min(lines.len());
        lines.drain(..done);
        Ok(lines)
    }

    /// Marks `count` more events of segment `n` acknowledged.
    pub fn ack(&mut self, n: u64, count: usize) {
        *self.acked.entry(n).or_default() += count;
        self.pending = self.pending.saturating_sub(count as u64);
    }

    /// Deletes segment `n`, every event of which is acknowledged.
    pub fn remove(&mut self, n: u64) -> io::Result<()> {
        if self.current.as_ref().is_some_and(|c| c.0 == n) {
            self.current = None;
        }
        std::fs::remove_file(self.path(n))?;
        self.acked.remove(&n);
        sync_dir(&self.dir)
    }
}

/// The complete JSON lines of a segment; a torn last line is left out.
fn read_lines(path: &Path) -> io::Result<Vec<String>> {
    let bytes = std::fs::read(path)?;
    let mut out = Vec::new();
    let mut rest = &bytes[..];
    while let Some(end) = rest.iter().position(|&b| b == b'\n') {
        let line = &rest[..end];
        rest = &rest[end + 1..];
        if line.is_empty() {
            continue;
        }
        match std::str::from_utf8(line) {
            Ok(text) if serde_json::from_str::<serde_json::Value>(text).is_ok() => {
                out.push(text.to_owned())
            }
            _ => tracing::warn!(path = %path.display(), "skipping a torn spool line"),
        }
    }
    if !rest.is_empty() {
        tracing::warn!(path = %path.display(), "skipping a torn spool line at the end");
    }
    Ok(out)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()?;
    }
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_replays_in_order_and_skips_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        let mut spool = Spool::open(&path).unwrap();
        assert!(!path.exists(), "opening must not create the directory");
        spool
            .append(&["{\"a\":1}".into(), "{\"a\":2}".into()])
            .unwrap();
        spool.seal();
        spool.append(&["{\"a\":3}".into()]).unwrap();
        drop(spool);
        // A crash mid-write leaves a partial line.
        let segments = Spool::open(&path).unwrap().segments().unwrap();
        assert_eq!(segments.len(), 2);
        let last = path.join(format!("seg-{:020}.ndjson", segments[1]));
        let mut file = OpenOptions::new().append(true).open(last).unwrap();
        file.write_all(b"{\"a\":4").unwrap();
        let mut spool = Spool::open(&path).unwrap();
        assert_eq!(spool.pending(), 3);
        assert_eq!(
            spool.unacked(segments[0]).unwrap(),
            vec!["{\"a\":1}", "{\"a\":2}"]
        );
        spool.ack(segments[0], 1);
        assert_eq!(spool.unacked(segments[0]).unwrap(), vec!["{\"a\":2}"]);
        spool.ack(segments[0], 1);
        spool.remove(segments[0]).unwrap();
        assert_eq!(spool.unacked(segments[1]).unwrap(), vec!["{\"a\":3}"]);
        assert_eq!(spool.pending(), 1);
        // New appends go to a new segment after the old ones.
        spool.append(&["{\"a\":5}".into()]).unwrap();
        assert_eq!(spool.segments().unwrap().len(), 2);
        assert!(spool.segments().unwrap()[1] > segments[1]);
    }
}

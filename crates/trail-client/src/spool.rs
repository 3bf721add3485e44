//! The disk spool: append-only NDJSON segment files (`seg-<n>.ndjson`, one
//! event per line). The batcher's appends are fsync'd before they count as
//! spooled; an append from `record()` itself (queue full) is written at
//! once, so it survives the process being killed, and fsync'd by the
//! batcher within one flush interval (and before any flush returns), so
//! the caller never waits for the disk.
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
    /// Written to the current segment and not yet fsync'd.
    dirty: bool,
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
            dirty: false,
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

    /// Appends events (one JSON line each); fsyncs them when `sync`, else
    /// leaves that to [`Spool::sync`].
    pub fn append(&mut self, lines: &[String], sync: bool) -> io::Result<()> {
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
            // A number taken meanwhile (by another process on the same
            // directory, which is not supported but must not lose events)
            // is skipped.
            let (n, file) = loop {
                let n = self.next;
                self.next += 1;
                match OpenOptions::new()
                    .create_new(true)
                    .append(true)
                    .open(self.path(n))
                {
                    Ok(file) => break (n, file),
                    Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(error) => return Err(error),
                }
            };
            sync_dir(&self.dir)?;
            self.current = Some((n, file, 0));
        }
        let current = self.current.as_mut().expect("a current segment");
        current.1.write_all(&bytes)?;
        current.2 += bytes.len() as u64;
        self.pending += lines.len() as u64;
        if sync {
            current.1.sync_data()?;
            self.dirty = false;
        } else {
            self.dirty = true;
        }
        Ok(())
    }

    /// Fsyncs what was appended without it.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.dirty {
            if let Some(current) = &self.current {
                current.1.sync_data()?;
            }
            self.dirty = false;
        }
        Ok(())
    }

    /// The segment being appended to, if any.
    pub fn current(&self) -> Option<u64> {
        self.current.as_ref().map(|c| c.0)
    }

    /// Closes the segment being appended to (after an fsync), so it can be
    /// replayed; the next append starts a new one.
    pub fn seal(&mut self) -> io::Result<()> {
        self.sync()?;
        self.current = None;
        Ok(())
    }

    /// How many events of segment `n` were acknowledged in this process.
    pub fn acked(&self, n: u64) -> usize {
        self.acked.get(&n).copied().unwrap_or(0)
    }

    /// The path of segment `n`.
    pub fn segment_path(&self, n: u64) -> PathBuf {
        self.path(n)
    }

    /// The events of segment `n` not yet acknowledged in this process.
    #[cfg(test)]
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
pub fn read_lines(path: &Path) -> io::Result<Vec<String>> {
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
            .append(&["{\"a\":1}".into(), "{\"a\":2}".into()], true)
            .unwrap();
        spool.seal().unwrap();
        spool.append(&["{\"a\":3}".into()], false).unwrap();
        spool.sync().unwrap();
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
        spool.append(&["{\"a\":5}".into()], true).unwrap();
        assert_eq!(spool.segments().unwrap().len(), 2);
        assert!(spool.segments().unwrap()[1] > segments[1]);
    }
}

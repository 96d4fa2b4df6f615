//! The query log's output, used only by the query-log writer thread (after
//! the answer, off the query path): lines are gathered in a buffer and
//! written in batches, and the counters say what reached the output:
//!
//! - a record counts as written when the write of its batch succeeded, not
//!   when it entered the buffer;
//! - a batch that fails (disk full, I/O error) is cut back to its last whole
//!   line: the file is truncated there, so it never holds a torn half-line,
//!   and the records that did not make it count as dropped;
//! - a reopen (SIGUSR1) writes the buffer first; what cannot be written
//!   then is dropped and counted, never lost silently.
//!
//! Only a regular file or standard output (`-`) is a target: opening a FIFO
//! without a reader would block start-up for ever, and a device or socket
//! is not a log. The open never blocks (`O_NONBLOCK`).

#![deny(clippy::arithmetic_side_effects)]

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Where records go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Standard output (`-`): for containers and journald.
    Stdout,
    /// A regular file, appended to and reopened on SIGUSR1.
    File(PathBuf),
}

impl Target {
    /// `-` is stdout, anything else a file path.
    pub fn parse(s: &str) -> Self {
        if s == "-" {
            Self::Stdout
        } else {
            Self::File(s.into())
        }
    }
}

/// A batch is written once it holds this much.
pub const BATCH_BYTES: usize = 64 * 1024;

/// What one write of a batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Records that reached the output.
    pub written: u64,
    /// Records that did not.
    pub dropped: u64,
    /// The write failed.
    pub failed: bool,
}

enum Out {
    Stdout(io::Stdout),
    File(File),
}

/// The open output and the lines not yet written.
pub struct LogFile {
    out: Out,
    buf: Vec<u8>,
    records: u64,
}

impl LogFile {
    /// Opens the target (a file is created and appended to).
    pub fn open(target: &Target) -> io::Result<Self> {
        let out = match target {
            Target::Stdout => Out::Stdout(io::stdout()),
            Target::File(p) => Out::File(open_append(p).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot open query log {}: {e}", p.display()),
                )
            })?),
        };
        Ok(Self {
            out,
            buf: Vec::with_capacity(BATCH_BYTES),
            records: 0,
        })
    }

    /// Adds one whole line (with its newline); writes the batch when it is
    /// full, and says what that write did.
    pub fn push(&mut self, line: &[u8]) -> Tally {
        self.buf.extend_from_slice(line);
        self.records = self.records.saturating_add(1);
        if self.buf.len() >= BATCH_BYTES {
            self.flush()
        } else {
            Tally::default()
        }
    }

    /// Writes the batch: whole lines only.
    pub fn flush(&mut self) -> Tally {
        if self.buf.is_empty() {
            return Tally::default();
        }
        let records = std::mem::take(&mut self.records);
        let tally = match &mut self.out {
            Out::Stdout(s) => {
                let mut lock = s.lock();
                let r = lock.write_all(&self.buf).and_then(|()| lock.flush());
                match r {
                    Ok(()) => Tally {
                        written: records,
                        ..Tally::default()
                    },
                    Err(_) => Tally {
                        dropped: records,
                        failed: true,
                        ..Tally::default()
                    },
                }
            }
            Out::File(f) => write_file(f, &self.buf, records),
        };
        self.buf.clear();
        tally
    }

    /// Writes what is buffered, then replaces the output with a fresh open
    /// of `target`; when that open fails the old output is kept.
    pub fn reopen(&mut self, target: &Target) -> (Tally, io::Result<()>) {
        let tally = self.flush();
        match Self::open(target) {
            Ok(new) => {
                self.out = new.out;
                (tally, Ok(()))
            }
            Err(e) => (tally, Err(e)),
        }
    }
}

/// Opens `path` to append, creating it; refuses anything but a regular
/// file without blocking (a FIFO without a reader fails with ENXIO).
fn open_append(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENXIO) => not_regular("a FIFO"),
            _ => e,
        })?;
    if !f.metadata()?.file_type().is_file() {
        return Err(not_regular("not a regular file"));
    }
    Ok(f)
}

fn not_regular(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{what}: the query log must be a regular file, or `-` for standard output"),
    )
}

/// Appends `buf` (whole lines, `records` of them) to `f`; on failure cuts
/// the file back to the last whole line written and counts the rest as
/// dropped.
fn write_file(f: &mut File, buf: &[u8], records: u64) -> Tally {
    let start = f.metadata().map(|m| m.len());
    let (sent, error) = write_counting(f, buf);
    if error.is_none() {
        return Tally {
            written: records,
            ..Tally::default()
        };
    }
    let keep = whole_lines(buf, sent);
    let kept = lines_in(buf.get(..keep).unwrap_or_default());
    if let Ok(start) = start {
        // A torn line would corrupt the next record too: remove it.
        let _ = f.set_len(start.saturating_add(u64::try_from(keep).unwrap_or(0)));
    }
    Tally {
        written: kept,
        dropped: records.saturating_sub(kept),
        failed: true,
    }
}

/// Writes `buf` until done or an error: the bytes accepted, and the error.
fn write_counting(w: &mut impl Write, buf: &[u8]) -> (usize, Option<io::Error>) {
    let mut sent = 0usize;
    while let Some(rest) = buf.get(sent..).filter(|r| !r.is_empty()) {
        match w.write(rest) {
            Ok(0) => return (sent, Some(io::ErrorKind::WriteZero.into())),
            Ok(n) => sent = sent.saturating_add(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (sent, Some(e)),
        }
    }
    (sent, None)
}

/// The length of the longest prefix of `buf[..sent]` that ends a line.
fn whole_lines(buf: &[u8], sent: usize) -> usize {
    buf.get(..sent)
        .and_then(|b| b.iter().rposition(|&c| c == b'\n'))
        .map_or(0, |i| i.saturating_add(1))
}

fn lines_in(buf: &[u8]) -> u64 {
    u64::try_from(buf.iter().filter(|&&c| c == b'\n').count()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    /// Accepts `room` bytes, a few at a time, then fails as a full disk does.
    struct Full {
        room: usize,
        got: Vec<u8>,
    }

    impl Write for Full {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            let n = b.len().min(self.room).min(7);
            self.got.extend_from_slice(&b[..n]);
            self.room -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_write_that_stops_midway_keeps_only_whole_lines() {
        let buf = b"{\"a\":1}\n{\"b\":22}\n{\"c\":333}\n";
        for room in 0..buf.len() {
            let mut w = Full {
                room,
                got: Vec::new(),
            };
            let (sent, err) = write_counting(&mut w, buf);
            assert_eq!(sent, room);
            assert!(err.is_some());
            let keep = whole_lines(buf, sent);
            assert!(keep == 0 || buf[keep - 1] == b'\n', "{room}");
            assert!(keep <= sent);
            let kept = lines_in(&buf[..keep]);
            assert_eq!(kept, lines_in(&w.got[..keep]));
            assert!(
                w.got[keep..].iter().all(|&c| c != b'\n'),
                "{room}: a whole line was cut"
            );
        }
        let mut w = Full {
            room: 100,
            got: Vec::new(),
        };
        assert_eq!(write_counting(&mut w, buf).0, buf.len());
    }

    #[test]
    fn a_fifo_without_a_reader_and_a_device_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("q.fifo");
        crate::files::mkfifo(&fifo);
        for path in [fifo.as_path(), Path::new("/dev/null")] {
            let e = LogFile::open(&Target::File(path.into()))
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains("must be a regular file, or `-`"), "{e}");
        }
    }

    #[test]
    fn records_count_as_written_when_their_batch_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.jsonl");
        let mut log = LogFile::open(&Target::File(path.clone())).unwrap();
        assert_eq!(
            log.push(b"{}\n"),
            Tally::default(),
            "buffered, not yet written"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        assert_eq!(log.flush().written, 1);
        assert_eq!(std::fs::read(&path).unwrap(), b"{}\n");
    }
}

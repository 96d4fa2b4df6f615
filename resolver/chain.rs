//! Hash chaining of the query log (`query_log.chain: true`): every line
//! ends with `"chain":"HEX"`, the SHA-256 of the previous line's chain and
//! of this line without its chain field, so an edited, removed or inserted
//! line breaks the chain from there on. `cutoff report --verify` checks it
//! and names the first broken line.
//!
//! Sealed by the query log's writer thread, never on the query path. A
//! process starts its chain from [`GENESIS`] (32 zero bytes), so each
//! restart of `serve` shows as a chain start; the verifier lists them.

use std::io::BufRead;

use sha2::{Digest, Sha256};

/// The `prev` of a process's first line.
pub const GENESIS: [u8; 32] = [0; 32];

/// The chain field's text before the hash.
const FIELD: &[u8] = b",\"chain\":\"";

/// The writer's side: the previous line's chain.
#[derive(Debug)]
pub struct Chain {
    prev: [u8; 32],
}

impl Default for Chain {
    fn default() -> Self {
        Self { prev: GENESIS }
    }
}

fn link(prev: &[u8; 32], record: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(record);
    h.finalize().into()
}

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Chain {
    /// Adds the chain field to one encoded line (a JSON object and its
    /// newline); a line of another shape is left alone.
    pub fn seal(&mut self, line: &mut Vec<u8>) {
        if !line.ends_with(b"}\n") {
            return;
        }
        let next = link(&self.prev, &line[..line.len().saturating_sub(1)]);
        self.prev = next;
        line.truncate(line.len().saturating_sub(2));
        line.extend_from_slice(FIELD);
        line.extend_from_slice(hex(&next).as_bytes());
        line.extend_from_slice(b"\"}\n");
    }
}

/// What a check of one or more logs found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verified {
    /// Lines read.
    pub lines: u64,
    /// Lines before the first chained one (a log written before the chain
    /// was switched on).
    pub unchained: u64,
    /// Where a chain starts, as (file index, 1-based line): the first
    /// chained line, and every restart of `serve`.
    pub starts: Vec<(usize, u64)>,
}

/// Why a chain does not hold.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    /// A line's chain is not the hash of its predecessor and itself.
    #[error("line {line}: {why}")]
    Broken {
        /// The file (index into those given).
        file: usize,
        /// The first broken line (1-based).
        line: u64,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A file could not be read.
    #[error("line {line}: cannot read: {kind}")]
    Read {
        /// The file (index into those given).
        file: usize,
        /// The line being read.
        line: u64,
        /// What went wrong.
        kind: std::io::ErrorKind,
    },
}

/// The record and its chain, when `line` ends with a chain field.
fn split(line: &[u8]) -> Option<(Vec<u8>, [u8; 32])> {
    let body = line.strip_suffix(b"\"}")?;
    let at = body.len().checked_sub(64 + FIELD.len())?;
    let (record, field) = body.split_at(at);
    let hex = field.strip_prefix(FIELD)?;
    let mut hash = [0u8; 32];
    for (i, pair) in hex.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        *hash.get_mut(i)? = u8::from_str_radix(s, 16).ok()?;
    }
    let mut record = record.to_vec();
    record.push(b'}');
    Some((record, hash))
}

/// Checks the chain through `readers` in order (rotated files oldest
/// first: each continues the previous one's chain).
pub fn verify<R: BufRead>(readers: impl IntoIterator<Item = R>) -> Result<Verified, ChainError> {
    let mut v = Verified::default();
    let mut prev: Option<[u8; 32]> = None;
    for (file, reader) in readers.into_iter().enumerate() {
        let mut n = 0u64;
        for line in reader.split(b'\n') {
            n = n.saturating_add(1);
            let line = line.map_err(|e| ChainError::Read {
                file,
                line: n,
                kind: e.kind(),
            })?;
            v.lines = v.lines.saturating_add(1);
            let broken = |why| ChainError::Broken { file, line: n, why };
            let Some((record, hash)) = split(&line) else {
                if prev.is_none() {
                    v.unchained = v.unchained.saturating_add(1);
                    continue;
                }
                return Err(broken(
                    "no chain field after a chained line (edited, or the chain was switched off)",
                ));
            };
            let continues = prev.is_some_and(|p| link(&p, &record) == hash);
            // A chain starts at a restart of `serve` (from GENESIS), or at
            // the first line given when that continues a file not given
            // (then only the lines after it can be checked).
            let starts = link(&GENESIS, &record) == hash || (prev.is_none() && v.lines == 1);
            if !continues {
                if !starts {
                    return Err(broken(
                        "its chain does not follow from the line before it (a line was edited, removed or inserted)",
                    ));
                }
                v.starts.push((file, n));
            }
            prev = Some(hash);
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(records: &[&str], chain: &mut Chain) -> Vec<u8> {
        let mut out = Vec::new();
        for r in records {
            let mut line = format!("{r}\n").into_bytes();
            chain.seal(&mut line);
            out.extend_from_slice(&line);
        }
        out
    }

    const RECORDS: [&str; 3] = [
        r#"{"time":"2026-12-01T00:00:00Z","qname":"a.kaspersky.com"}"#,
        r#"{"time":"2026-12-01T00:00:01Z","qname":"b.kaspersky.com"}"#,
        r#"{"time":"2026-12-01T00:00:02Z","qname":"c.kaspersky.com"}"#,
    ];

    #[test]
    fn a_sealed_log_verifies_and_each_line_stays_json() {
        let log = sealed(&RECORDS, &mut Chain::default());
        for line in log.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            assert_eq!(v["chain"].as_str().map(str::len), Some(64));
        }
        let v = verify([&log[..]]).unwrap();
        assert_eq!((v.lines, v.unchained, v.starts), (3, 0, vec![(0, 1)]));
    }

    fn assert_broken_at(log: &[u8], line: u64) {
        match verify([log]) {
            Err(ChainError::Broken {
                file: 0, line: l, ..
            }) if l == line => {}
            other => panic!("expected a break at line {line}: {other:?}"),
        }
    }

    #[test]
    fn an_edited_line_is_named() {
        let log = sealed(&RECORDS, &mut Chain::default());
        let text = String::from_utf8(log)
            .unwrap()
            .replace("b.kaspersky", "x.kaspersky");
        assert_broken_at(text.as_bytes(), 2);
    }

    #[test]
    fn a_removed_line_is_named_by_its_successor() {
        let log = String::from_utf8(sealed(&RECORDS, &mut Chain::default())).unwrap();
        let kept: Vec<&str> = log
            .lines()
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, l)| l)
            .collect();
        let text = kept.join("\n") + "\n";
        assert_broken_at(text.as_bytes(), 2);
    }

    #[test]
    fn a_restart_starts_a_new_chain_and_is_listed() {
        let mut log = sealed(&RECORDS[..2], &mut Chain::default());
        log.extend(sealed(&RECORDS[2..], &mut Chain::default()));
        assert_eq!(verify([&log[..]]).unwrap().starts, vec![(0, 1), (0, 3)]);
    }

    #[test]
    fn a_rotated_log_continues_in_the_next_file() {
        let mut chain = Chain::default();
        let old = sealed(&RECORDS[..2], &mut chain);
        let new = sealed(&RECORDS[2..], &mut chain);
        assert_eq!(verify([&old[..], &new[..]]).unwrap().starts, vec![(0, 1)]);
        // The newer file alone: its first line continues a file not given.
        assert_eq!(verify([&new[..]]).unwrap().starts, vec![(0, 1)]);
        // Out of order, the older file reads as a restart.
        assert_eq!(
            verify([&new[..], &old[..]]).unwrap().starts,
            vec![(0, 1), (1, 1)]
        );
    }

    #[test]
    fn unchained_lines_count_before_the_chain_and_break_it_after() {
        let mut log = format!("{}\n", RECORDS[0]).into_bytes();
        log.extend(sealed(&RECORDS[1..2], &mut Chain::default()));
        let v = verify([&log[..]]).unwrap();
        assert_eq!((v.unchained, v.starts), (1, vec![(0, 2)]));
        log.extend(format!("{}\n", RECORDS[2]).into_bytes());
        assert_broken_at(&log, 3);
    }
}

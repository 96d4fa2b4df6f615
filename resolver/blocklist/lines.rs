//! Line lists, in the formats users bring: plain domains, hosts files,
//! adblock `||name^` and `*.name` wildcards, with `#`/`!` comments and CRLF.
//!
//! A bad line is reported with its number, skipped and counted; it never
//! aborts the load (one typo must not switch off a whole list).

use std::io::BufRead;
use std::net::IpAddr;

use crate::matcher::{Coverage, MAX_NAME_LEN};

/// How many bad lines are kept verbatim for the report (all are counted).
pub(crate) const KEPT_PROBLEMS: usize = 20; // keep in step with `LineReport::first`

/// Longest line read; longer lines are bad lines.
const MAX_LINE: usize = 4096;

/// One bad line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineProblem {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// Bad lines of one list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineReport {
    /// Number of bad lines.
    pub count: usize,
    /// The first 20 of them.
    pub first: Vec<LineProblem>,
}

impl LineReport {
    pub(crate) fn push(&mut self, line: usize, reason: impl Into<String>) {
        self.count += 1;
        if self.first.len() < KEPT_PROBLEMS {
            self.first.push(LineProblem {
                line,
                reason: reason.into(),
            });
        }
    }
}

/// Reads a line list, calling `add(name, coverage)` for every good entry
/// (names are normalised: lowercase ASCII, no trailing dot). Only an I/O
/// error stops the read.
pub fn read_lines<R: BufRead>(
    mut reader: R,
    default: Coverage,
    mut add: impl FnMut(&[u8], Coverage),
) -> std::io::Result<LineReport> {
    let mut report = LineReport::default();
    let mut buf = Vec::with_capacity(256);
    let mut number = 0usize;
    loop {
        buf.clear();
        // Bounded read: a 1 GiB line without a newline must not be buffered whole.
        let n =
            std::io::Read::take(&mut reader, MAX_LINE as u64 + 1).read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        number += 1;
        if buf.len() > MAX_LINE && buf.last() != Some(&b'\n') {
            report.push(number, format!("line longer than {MAX_LINE} bytes"));
            skip_rest_of_line(&mut reader)?;
            continue;
        }
        let Ok(text) = std::str::from_utf8(&buf) else {
            report.push(number, "not UTF-8");
            continue;
        };
        match parse_line(text, default) {
            Ok(entries) => {
                for (name, coverage) in entries {
                    add(name.as_bytes(), coverage);
                }
            }
            Err(reason) => report.push(number, reason.to_string()),
        }
    }
    Ok(report)
}

fn skip_rest_of_line<R: BufRead>(reader: &mut R) -> std::io::Result<()> {
    loop {
        let (done, used) = {
            let chunk = reader.fill_buf()?;
            if chunk.is_empty() {
                return Ok(());
            }
            match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (true, i + 1),
                None => (false, chunk.len()),
            }
        };
        reader.consume(used);
        if done {
            return Ok(());
        }
    }
}

/// Host names that hosts files map to themselves; never list entries.
const HOSTS_NOISE: &[&str] = &[
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "ip6-localnet",
    "ip6-mcastprefix",
    "ip6-allnodes",
    "ip6-allrouters",
    "ip6-allhosts",
    "0.0.0.0",
];

/// Why a list line was not read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// `@@…`: adblock exceptions.
    #[error("adblock exception `@@{0}` is not supported: use a rule with `action: allow`")]
    Exception(String),
    /// `||name^$modifier` with a modifier other than `important`.
    #[error("adblock modifier `${0}` is not supported")]
    Modifier(String),
    /// `||name` without the closing `^`.
    #[error("adblock rule must end with `^` (e.g. `||example.com^`)")]
    NoCaret,
    /// A hosts line that maps names to a real address.
    #[error("hosts line maps to {0}; only 0.0.0.0, 127.0.0.1, :: and ::1 are read as blocks")]
    NotASink(IpAddr),
    /// Several words that are not a hosts line.
    #[error(
        "more than one word on a line (expected a domain, a hosts line, `||name^` or `*.name`)"
    )]
    Words,
    /// The name itself is not a domain.
    #[error(transparent)]
    Domain(#[from] DomainError),
}

/// Why a text is not a domain name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Nothing (or only a dot).
    #[error("empty domain")]
    Empty,
    /// A Unicode name that IDNA refuses.
    #[error("`{0}` is not a valid internationalised name")]
    Idna(String),
    /// More than 253 bytes.
    #[error("`{0}` is longer than 253 bytes")]
    TooLong(String),
    /// Two dots in a row.
    #[error("`{0}` has an empty label")]
    EmptyLabel(String),
    /// A label of more than 63 bytes.
    #[error("`{0}` has a label longer than 63 bytes")]
    LongLabel(String),
    /// A character outside letters, digits, `-` and `_`.
    #[error("`{text}` contains `{found}`, which a domain name cannot")]
    Character {
        /// The name as written.
        text: String,
        /// The character, escaped.
        found: String,
    },
}

/// Parses one line into zero or more entries.
pub(crate) fn parse_line(
    line: &str,
    default: Coverage,
) -> Result<Vec<(String, Coverage)>, LineError> {
    let line = line.trim_end_matches(['\n', '\r']).trim();
    if line.is_empty() || line.starts_with('#') || line.starts_with('!') || line.starts_with('[') {
        return Ok(Vec::new());
    }
    // Inline comments: `name # why`.
    let line = line.split(" #").next().unwrap_or(line).trim();
    let line = line.split("\t#").next().unwrap_or(line).trim();

    if let Some(rest) = line.strip_prefix("@@") {
        return Err(LineError::Exception(rest.to_owned()));
    }
    if let Some(rest) = line.strip_prefix("||") {
        let (body, modifiers) = rest.split_once('$').unwrap_or((rest, ""));
        if !modifiers.is_empty() && modifiers != "important" {
            return Err(LineError::Modifier(modifiers.to_owned()));
        }
        let Some(name) = body.strip_suffix('^') else {
            return Err(LineError::NoCaret);
        };
        return Ok(vec![(domain(name)?, Coverage::Suffix)]);
    }
    if let Some(rest) = line.strip_prefix("*.") {
        return Ok(vec![(domain(rest)?, Coverage::Below)]);
    }

    let mut fields = line.split_whitespace();
    let first = fields.next().unwrap_or_default();
    if let Ok(ip) = first.parse::<IpAddr>() {
        // hosts-file line: ADDRESS NAME [NAME...]
        if !is_sink_address(ip) {
            return Err(LineError::NotASink(ip));
        }
        let mut out = Vec::new();
        for name in fields {
            if HOSTS_NOISE.contains(&name.to_ascii_lowercase().as_str()) {
                continue;
            }
            out.push((domain(name)?, default));
        }
        return Ok(out);
    }
    if fields.next().is_some() {
        return Err(LineError::Words);
    }
    Ok(vec![(domain(first)?, default)])
}

fn is_sink_address(ip: IpAddr) -> bool {
    ip.is_unspecified() || ip.is_loopback()
}

/// Normalises and checks a domain name: lowercase ASCII (Unicode names are
/// turned into punycode), no trailing dot, labels of 1 to 63 letters, digits,
/// hyphens or underscores, at most 253 bytes in all.
pub fn domain(text: &str) -> Result<String, DomainError> {
    let text = text.trim();
    let text = text.strip_suffix('.').unwrap_or(text);
    if text.is_empty() {
        return Err(DomainError::Empty);
    }
    let ascii = if text.is_ascii() {
        text.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(text).map_err(|_| DomainError::Idna(text.to_owned()))?
    };
    if ascii.len() > MAX_NAME_LEN {
        return Err(DomainError::TooLong(text.to_owned()));
    }
    for label in ascii.split('.') {
        if label.is_empty() {
            return Err(DomainError::EmptyLabel(text.to_owned()));
        }
        if label.len() > 63 {
            return Err(DomainError::LongLabel(text.to_owned()));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(DomainError::Character {
                text: text.to_owned(),
                found: c.escape_default().to_string(),
            });
        }
    }
    Ok(ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> (Vec<(String, Coverage)>, LineReport) {
        let mut out = Vec::new();
        let report = read_lines(text.as_bytes(), Coverage::Suffix, |n, c| {
            out.push((String::from_utf8(n.to_vec()).unwrap(), c))
        })
        .unwrap();
        (out, report)
    }

    #[test]
    fn every_common_format_is_read() {
        let (entries, report) = read(
            "# comment\r\n! adblock comment\r\nExample.com.\r\n0.0.0.0 a.example.net b.example.net\n127.0.0.1 localhost\n::1 c.example.org\n||d.example.io^\n||e.example.io^$important\n*.f.example.dev\n[Adblock Plus 2.0]\ng.example.com # inline\n",
        );
        assert_eq!(report.count, 0, "{report:?}");
        let names: Vec<_> = entries
            .iter()
            .map(|(n, c)| format!("{n}:{}", c.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                "example.com:suffix",
                "a.example.net:suffix",
                "b.example.net:suffix",
                "c.example.org:suffix",
                "d.example.io:suffix",
                "e.example.io:suffix",
                "f.example.dev:below",
                "g.example.com:suffix"
            ]
        );
    }

    #[test]
    fn bad_lines_are_counted_with_their_numbers_and_skipped() {
        let (entries, report) = read(
            "good.example\nbad domain here\n1.2.3.4 mapped.example\n||path.example/x^\n@@||ok.example^\nbad_chär!.com\nalso-good.example\n",
        );
        assert_eq!(entries.len(), 2);
        assert_eq!(report.count, 5);
        let lines: Vec<usize> = report.first.iter().map(|p| p.line).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6]);
        assert!(report.first[3].reason.contains("action: allow"));
    }

    #[test]
    fn overlong_line_is_a_bad_line_not_a_failure() {
        let text = format!("{}\nok.example\n", "a".repeat(100_000));
        let (entries, report) = read(&text);
        assert_eq!(entries.len(), 1);
        assert_eq!(report.count, 1);
        assert_eq!(report.first[0].line, 1);
    }

    #[test]
    fn unicode_names_become_punycode() {
        assert_eq!(domain("пример.рф").unwrap(), "xn--e1afmkfd.xn--p1ai");
        assert_eq!(domain("XN--P1AI").unwrap(), "xn--p1ai");
    }

    #[test]
    fn names_that_dns_cannot_carry_are_rejected() {
        assert!(domain(&"a".repeat(64)).is_err());
        assert!(domain("a..b").is_err());
        assert!(domain(&format!("{}.com", "a.".repeat(127))).is_err());
        assert!(domain("a b").is_err());
        assert!(domain(".").is_err());
    }

    #[test]
    fn non_utf8_line_is_a_bad_line() {
        let mut out = 0;
        let report = read_lines(
            &b"ok.example\n\xff\xfe.example\n"[..],
            Coverage::Suffix,
            |_, _| out += 1,
        )
        .unwrap();
        assert_eq!((out, report.count), (1, 1));
    }
}

//! The JSON query log: one line per query (or per log/block decision),
//! written by one thread behind a bounded queue.
//!
//! Sits after the answer in the query flow: the record is queued after the
//! reply has been sent, with `try_send`, so a slow or full disk drops records
//! (counted) and never delays an answer. The file is reopened on SIGUSR1 for
//! logrotate. Names are written in presentation form with every byte outside
//! letters, digits, `-` and `_` escaped (`\DDD`, `\.`, `\\`), so any name from
//! the wire gives exactly one valid JSON line that round-trips it.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hickory_proto::rr::{Name, RecordType};
use jiff::Timestamp;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::blocklist::Category;
use crate::config::{ClientMode, Config, QueryLogConfig};
use crate::logfile::{LogFile, Tally};
use crate::metrics::Metrics;
use crate::policy::{Phase, Verdict};
use crate::query::Protocol;

/// What the writer needs to turn a record's indices into names: the config
/// that answered and its upstreams. The running runtime is one; a test
/// passes a config alone.
pub trait Names: Send + Sync + std::fmt::Debug {
    /// The config whose networks, rules and lists the indices point into.
    fn config(&self) -> &Config;
    /// The upstream at `index`, as the log writes it.
    fn upstream(&self, index: usize) -> Option<String>;
}

/// One query, as the log records it. Names are resolved from `runtime` by the
/// writer, off the query path.
#[derive(Debug)]
pub struct Record {
    /// When the query arrived.
    pub time: Timestamp,
    /// The runtime that answered (for names and the config version).
    pub runtime: Arc<dyn Names>,
    /// The client.
    pub client: SocketAddr,
    /// udp or tcp.
    pub protocol: Protocol,
    /// The question section as the client sent it (name, type, class).
    pub question: Box<[u8]>,
    /// The decision.
    pub verdict: Verdict,
    /// The client's network.
    pub network: Option<usize>,
    /// The rule and its phase.
    pub rule: Option<(usize, Phase)>,
    /// The list, category and entry matched.
    pub matched: Option<(usize, Option<Category>, Box<[u8]>)>,
    /// The answer's response code.
    pub rcode: Option<u8>,
    /// Microseconds from receipt to answer.
    pub duration_us: u64,
    /// Index of the upstream that answered.
    pub upstream: Option<usize>,
    /// Served from the cache.
    pub cached: bool,
    /// Only a zone-wide entry covered the name (a name no entry classifies).
    pub unclassified: bool,
}

/// Where records go (defined beside the file it opens).
pub use crate::logfile::Target;

enum Msg {
    Record(Box<Record>),
    Flush(std::sync::mpsc::Sender<()>),
}

/// The sending side: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct QueryLog {
    tx: mpsc::Sender<Msg>,
    reopen: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

impl QueryLog {
    /// Starts the writer thread. The target is opened first, so a path that
    /// cannot be opened is an error at start-up.
    pub fn start(target: Target, queue: usize, metrics: Arc<Metrics>) -> io::Result<Self> {
        let out = LogFile::open(&target)?;
        let (tx, rx) = mpsc::channel(queue.max(1));
        let reopen = Arc::new(AtomicBool::new(false));
        let (r, m) = (reopen.clone(), metrics.clone());
        std::thread::Builder::new()
            .name("cutoff-querylog".into())
            .spawn(move || writer(rx, target, out, r, m))?;
        Ok(Self {
            tx,
            reopen,
            metrics,
        })
    }

    /// Queues a record; a full queue drops it and counts the drop.
    pub fn send(&self, record: Record) {
        if self.tx.try_send(Msg::Record(Box::new(record))).is_err() {
            self.metrics.log_dropped.increment(1);
        }
    }

    /// Asks the writer to reopen its file before the next record (SIGUSR1).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Relaxed);
    }

    /// Waits (up to `wait`) until everything queued so far is written.
    pub fn flush(&self, wait: std::time::Duration) {
        let (tx, rx) = std::sync::mpsc::channel();
        if self.tx.try_send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(wait);
        }
    }
}

fn writer(
    mut rx: mpsc::Receiver<Msg>,
    target: Target,
    mut out: LogFile,
    reopen: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
) {
    // Records count as written when their batch reaches the output, and
    // as dropped when it does not (logfile.rs).
    let count = |t: Tally| {
        metrics.log_records.increment(t.written);
        metrics.log_dropped.increment(t.dropped);
        if t.failed {
            metrics.log_errors.increment(1);
        }
    };
    let mut line = Vec::with_capacity(512);
    // The hash chain lives here, in the writer: never on the query path.
    let mut chain = crate::chain::Chain::default();
    loop {
        // Write as fast as records come; flush whenever the queue runs dry,
        // so nothing sits in the buffer while the server is idle.
        let msg = match rx.try_recv() {
            Ok(m) => m,
            Err(mpsc::error::TryRecvError::Empty) => {
                count(out.flush());
                match rx.blocking_recv() {
                    Some(m) => m,
                    None => break,
                }
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        };
        if reopen.swap(false, Ordering::Relaxed) {
            let (tally, opened) = out.reopen(&target);
            count(tally);
            if let Err(e) = opened {
                tracing::error!("query log: {e}; keeping the old file");
            }
        }
        match msg {
            Msg::Flush(done) => {
                count(out.flush());
                let _ = done.send(());
            }
            Msg::Record(r) => {
                line.clear();
                if encode(&r, &mut line).is_err() {
                    continue;
                }
                if r.runtime.config().query_log.chain {
                    chain.seal(&mut line);
                }
                count(out.push(&line));
            }
        }
    }
    count(out.flush());
}

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    client: String,
    client_port: Option<u16>,
    network: Option<&'a str>,
    protocol: &'static str,
    qname: String,
    qtype: String,
    action: &'static str,
    rule: Option<&'a str>,
    list: Option<&'a str>,
    category: Option<&'static str>,
    entry: Option<String>,
    unclassified: bool,
    phase: Option<&'static str>,
    rcode: Option<String>,
    duration_us: u64,
    upstream: Option<String>,
    cached: bool,
    config_version: &'a str,
}

/// Encodes one record as a JSON line (with the trailing newline).
pub fn encode(r: &Record, out: &mut Vec<u8>) -> serde_json::Result<()> {
    let c = r.runtime.config();
    let log = &c.query_log;
    let (client, client_port) = client_text(r.client, log);
    let line = Line {
        time: format!("{:.9}", r.time),
        client,
        client_port,
        network: r.network.map(|n| c.networks[n].name.as_str()),
        protocol: r.protocol.as_str(),
        qname: escape_labels(&question_labels(&r.question)),
        qtype: qtype_text(question_type(&r.question)),
        action: r.verdict.as_str(),
        rule: r.rule.map(|(i, _)| c.rules[i].name.as_str()),
        list: r
            .matched
            .as_ref()
            .map(|(l, _, _)| c.lists[*l].name.as_str()),
        category: r
            .matched
            .as_ref()
            .and_then(|(_, cat, _)| cat.map(Category::as_str)),
        entry: r
            .matched
            .as_ref()
            .map(|(_, _, e)| String::from_utf8_lossy(e).into_owned()),
        unclassified: r.unclassified,
        phase: r.rule.map(|(_, p)| p.as_str()),
        rcode: r.rcode.map(rcode_text),
        duration_us: r.duration_us,
        upstream: r.upstream.and_then(|u| r.runtime.upstream(u)),
        cached: r.cached,
        config_version: &c.version,
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.push(b'\n');
    Ok(())
}

/// A client address as the query log writes it (by `query_log.client`).
pub fn client_text(addr: SocketAddr, log: &QueryLogConfig) -> (String, Option<u16>) {
    let ip = addr.ip().to_canonical();
    match log.client {
        ClientMode::Full => (ip.to_string(), Some(addr.port())),
        ClientMode::Truncate => {
            let net = match ip {
                IpAddr::V4(_) => ipnet::IpNet::new(ip, 24),
                IpAddr::V6(_) => ipnet::IpNet::new(ip, 56),
            };
            (
                net.map_or_else(|_| ip.to_string(), |n| n.trunc().to_string()),
                None,
            )
        }
        ClientMode::Hash => {
            // SHA-256 keyed by the salt: stable across versions and hosts with
            // the same salt, not reversible without it (the address space is
            // small: keep the salt secret).
            let mut h = Sha256::new();
            h.update(log.salt.as_bytes());
            h.update([0u8]);
            match ip {
                IpAddr::V4(a) => h.update(a.octets()),
                IpAddr::V6(a) => h.update(a.octets()),
            }
            let d = h.finalize();
            let hex: String = d.iter().take(8).map(|b| format!("{b:02x}")).collect();
            (format!("hash:{hex}"), None)
        }
    }
}

/// The name of a question section as the log writes it (escaped).
pub fn question_name(question: &[u8]) -> String {
    escape_labels(&question_labels(question))
}

/// The labels of the name at the start of a question section.
fn question_labels(q: &[u8]) -> Vec<&[u8]> {
    let mut labels = Vec::new();
    let mut at = 0;
    while let Some(&len) = q.get(at) {
        let len = usize::from(len);
        if len == 0 || len > 63 {
            break;
        }
        let Some(label) = q.get(at + 1..at + 1 + len) else {
            break;
        };
        labels.push(label);
        at += 1 + len;
    }
    labels
}

/// The QTYPE at the end of a question section.
fn question_type(q: &[u8]) -> RecordType {
    match q.len().checked_sub(4).and_then(|i| q.get(i..i + 2)) {
        Some(t) => RecordType::from(u16::from_be_bytes([t[0], t[1]])),
        None => RecordType::Unknown(0),
    }
}

/// A name in presentation form, no trailing dot, every byte outside
/// `[A-Za-z0-9_-]` escaped: `.` and `\` inside a label as `\.` and `\\`,
/// anything else as `\DDD`.
pub fn escape_name(name: &Name) -> String {
    escape_labels(&name.iter().collect::<Vec<_>>())
}

/// [`escape_name`] for labels as on the wire.
pub fn escape_labels(labels: &[&[u8]]) -> String {
    let mut s = String::with_capacity(64);
    for (i, label) in labels.iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        for &b in *label {
            match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => s.push(char::from(b)),
                b'.' | b'\\' => {
                    s.push('\\');
                    s.push(char::from(b));
                }
                _ => {
                    s.push_str(&format!("\\{b:03}"));
                }
            }
        }
    }
    s
}

/// The wire labels of a name written by [`escape_name`].
pub fn unescape_name(text: &str) -> Option<Vec<Vec<u8>>> {
    let mut labels = vec![Vec::new()];
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'.' => labels.push(Vec::new()),
            b'\\' => {
                let next = *bytes.get(i + 1)?;
                if next.is_ascii_digit() {
                    let d = std::str::from_utf8(bytes.get(i + 1..i + 4)?).ok()?;
                    labels.last_mut()?.push(d.parse().ok()?);
                    i += 3;
                } else {
                    labels.last_mut()?.push(next);
                    i += 1;
                }
            }
            b => labels.last_mut()?.push(b),
        }
        i += 1;
    }
    if text.is_empty() {
        Some(Vec::new())
    } else {
        Some(labels)
    }
}

fn qtype_text(t: RecordType) -> String {
    match t {
        RecordType::Unknown(n) => format!("TYPE{n}"),
        other => other.to_string(),
    }
}

/// The name of a response code.
pub fn rcode_text(rcode: u8) -> String {
    match rcode {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        n => format!("RCODE{n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(labels: &[&[u8]]) -> Name {
        Name::from_labels(labels.iter().map(|l| l.to_vec())).unwrap()
    }

    #[test]
    fn hostile_names_give_one_json_line_that_round_trips() {
        let cases: Vec<Vec<&[u8]>> = vec![
            vec![b"evil\nname", b"com"],
            vec![b"quote\"d", b"back\\slash"],
            vec![b"\x1b[31mred", b"\x00nul"],
            vec![b"\xff\xfe\x80", b"example"],
            vec![b"a.b", b"c"],
            vec![b"<script>", b"x"],
            vec![&[b'a'; 63], &[b'b'; 63], &[b'c'; 63], &[b'd'; 61]],
        ];
        for labels in cases {
            let n = name(&labels);
            let text = escape_name(&n);
            let json = serde_json::to_string(&serde_json::json!({ "qname": text })).unwrap();
            assert!(!json.contains('\n') && !json.contains('\r'), "{json}");
            assert!(json.bytes().all(|b| (0x20..0x7f).contains(&b)), "{json}");
            let back: serde_json::Value = serde_json::from_str(&json).unwrap();
            let labels_back = unescape_name(back["qname"].as_str().unwrap()).unwrap();
            let original: Vec<Vec<u8>> = labels.iter().map(|l| l.to_vec()).collect();
            assert_eq!(labels_back, original);
        }
    }

    /// A config alone, with one named upstream, as the writer sees it.
    #[derive(Debug)]
    struct Fixed(Config);

    impl Names for Fixed {
        fn config(&self) -> &Config {
            &self.0
        }

        fn upstream(&self, index: usize) -> Option<String> {
            (index == 0).then(|| "udp://192.0.2.53:53".to_owned())
        }
    }

    #[test]
    fn a_record_is_one_json_line_with_the_names_its_indices_point_to() {
        let config = crate::config::load_default().unwrap();
        let (network, rule, list) = (
            config.networks[0].name.clone(),
            config.rules[0].name.clone(),
            config.lists[0].name.clone(),
        );
        let version = config.version.clone();
        let record = Record {
            time: "2024-10-01T00:00:00Z".parse().unwrap(),
            runtime: Arc::new(Fixed(config)),
            client: "192.168.7.42:5353".parse().unwrap(),
            protocol: Protocol::Tcp,
            question: b"\x03dnl\x09kaspersky\x03com\x00\x00\x1c\x00\x01"
                .as_slice()
                .into(),
            verdict: Verdict::Block,
            network: Some(0),
            rule: Some((0, Phase::After)),
            matched: Some((
                0,
                Some(Category::Update),
                b"kaspersky.com".as_slice().into(),
            )),
            rcode: Some(3),
            duration_us: 17,
            upstream: Some(0),
            cached: true,
            unclassified: false,
        };
        let mut out = Vec::new();
        encode(&record, &mut out).unwrap();
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(out.last(), Some(&b'\n'));
        let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let expected = serde_json::json!({
            "time": "2024-10-01T00:00:00.000000000Z",
            "client": "192.168.7.42",
            "client_port": 5353,
            "network": network,
            "protocol": "tcp",
            "qname": "dnl.kaspersky.com",
            "qtype": "AAAA",
            "action": "block",
            "rule": rule,
            "list": list,
            "category": "update",
            "entry": "kaspersky.com",
            "unclassified": false,
            "phase": "after",
            "rcode": "NXDOMAIN",
            "duration_us": 17,
            "upstream": "udp://192.0.2.53:53",
            "cached": true,
            "config_version": version,
        });
        assert_eq!(line, expected);
    }

    #[test]
    fn unknown_types_are_written_as_type_and_number() {
        assert_eq!(qtype_text(RecordType::Unknown(65280)), "TYPE65280");
        assert_eq!(qtype_text(RecordType::AAAA), "AAAA");
    }

    #[test]
    fn times_have_a_fixed_width_so_they_sort_as_text() {
        let t: Timestamp = "2024-10-01T00:00:00.5Z".parse().unwrap();
        assert_eq!(format!("{t:.9}"), "2024-10-01T00:00:00.500000000Z");
    }

    #[test]
    fn client_addresses_can_be_truncated_or_hashed() {
        let mut log = QueryLogConfig::default();
        let a: SocketAddr = "192.168.7.42:5353".parse().unwrap();
        assert_eq!(client_text(a, &log), ("192.168.7.42".into(), Some(5353)));
        log.client = ClientMode::Truncate;
        assert_eq!(client_text(a, &log).0, "192.168.7.0/24");
        let v6: SocketAddr = "[2001:db8:1:2:3::9]:53".parse().unwrap();
        assert_eq!(client_text(v6, &log).0, "2001:db8:1::/56");
        log.client = ClientMode::Hash;
        log.salt = "s1".into();
        let h1 = client_text(a, &log).0;
        assert!(h1.starts_with("hash:") && !h1.contains("192.168"));
        log.salt = "s2".into();
        assert_ne!(client_text(a, &log).0, h1);
    }
}

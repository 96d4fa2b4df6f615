//! The properties the fuzz targets check, written once: each cargo-fuzz
//! target in `fuzz_targets/` calls one of these on its input, and
//! `tests/fuzz_corpus.rs` calls the same function on every corpus and crash
//! file, so `cargo test` replays them on stable without cargo-fuzz.
//!
//! Each function panics when a property fails; returning means the input
//! passed or was not one the property is about (for example a packet that
//! `parse_query` sends the slow way).

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use axum::http::Uri;
use cutoff::answer;
use cutoff::blocklist;
use cutoff::cache::{Entry, Key};
use cutoff::config::{AnswerMode, Blocking};
use cutoff::matcher::{Coverage, NameBuf};
use cutoff::policy::{Snapshot, Verdict};
use cutoff::query::Question;
use cutoff::querylog;
use cutoff::since;
use cutoff::wire;
use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::Name;
use jiff::Timestamp;

/// Longest config text tried: real configs are a few KiB, and YAML parse
/// time grows with the input.
pub(crate) const MAX_CONFIG: usize = 64 * 1024;

/// Largest UDP answer to a query without EDNS (RFC 1035).
const MAX_PLAIN_UDP: usize = 512;

/// `parse_query` and `walk` never panic; whatever `parse_query` accepts,
/// hickory-proto parses too and reads the same ID, question and EDNS, and
/// `walk` finds the same section boundaries.
pub(crate) fn wire_query(data: &[u8]) {
    let layout = wire::walk(data);
    let Some(q) = wire::parse_query(data) else {
        return;
    };
    let layout = layout.expect("walk reads every packet parse_query accepts");
    assert_eq!(layout.question_end, q.question_end, "end of the question");
    assert_eq!(layout.opt.is_some(), q.edns.is_some(), "OPT record");
    assert!(
        layout.ttls.is_empty(),
        "a plain query has no records but OPT"
    );
    let m = Message::from_vec(data)
        .unwrap_or_else(|e| panic!("parse_query accepted a packet hickory rejects: {e}"));
    assert_eq!(m.metadata.id, q.id, "ID");
    assert_eq!(m.metadata.message_type, MessageType::Query, "QR");
    let [question] = m.queries.as_slice() else {
        panic!("parse_query accepted {} questions", m.queries.len());
    };
    assert_eq!(u16::from(question.query_type()), q.qtype, "QTYPE");
    assert_eq!(u16::from(question.query_class()), q.qclass, "QCLASS");
    let ours: Vec<Vec<u8>> = q.labels().map(<[u8]>::to_ascii_lowercase).collect();
    let theirs: Vec<Vec<u8>> = question
        .name()
        .iter()
        .map(<[u8]>::to_ascii_lowercase)
        .collect();
    assert_eq!(ours, theirs, "question name");
    match (&m.edns, q.edns) {
        (None, None) => {}
        (Some(e), Some(o)) => {
            assert_eq!(e.max_payload(), o.size.max(512), "EDNS payload size");
            assert_eq!(e.flags().dnssec_ok, o.dnssec_ok, "DO bit");
        }
        (theirs, ours) => panic!("EDNS: hickory {theirs:?}, parse_query {ours:?}"),
    }
}

/// The default policy, compiled once per process.
fn snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        Snapshot::new(cutoff::config::load_default().expect("the embedded default config loads"))
    })
}

/// Instants on both sides of the default rule's cut-off (2024-09-29), so
/// the same name is logged and blocked.
fn instants() -> [Timestamp; 2] {
    [
        Timestamp::from_second(1_704_067_200).expect("2024-01-01"),
        Timestamp::from_second(1_767_225_600).expect("2026-01-01"),
    ]
}

/// The policy engine and the answer builders (CoreDNS `fuzz.Do`): the
/// first 4 bytes are the client's IPv4 address, the rest a query. Every
/// answer built for a query `parse_query` accepts re-parses, keeps the ID,
/// question and EDNS presence, has QR=1 and fits the transport; a blocked
/// answer's SOA is owned by the entry that matched.
pub(crate) fn decide(data: &[u8]) {
    let Some((ip, packet)) = data.split_first_chunk::<4>() else {
        return;
    };
    let client = IpAddr::V4(Ipv4Addr::from(*ip));
    let Some(q) = wire::parse_query(packet) else {
        return;
    };
    let snapshot = snapshot();
    let config = &snapshot.config;
    check_answer(&q, &answer::refused(&q), None);
    check_answer(&q, &answer::any(&q, config.blocking.ttl), None);
    let Some(name) = NameBuf::from_labels(q.labels()) else {
        return;
    };
    let name = name.as_bytes();
    for now in instants() {
        let d = snapshot.decide(client, name, now);
        assert_eq!(d.verdict == Verdict::Refuse, d.network.is_none(), "{d:?}");
        if d.verdict != Verdict::Block {
            continue;
        }
        let m = d.matched.expect("a block names the entry that matched");
        assert!(
            name == m.entry || name.ends_with(&[&b"."[..], m.entry].concat()),
            "the entry is a parent of the name (or the name): {d:?}"
        );
        let rule = d.rule.map_or("?", |(r, _)| config.rules[r].name.as_str());
        let list = config.lists[m.list].name.as_str();
        let why = |t: &mut String| answer::why(t, rule, list, m.entry, None);
        for mode in AnswerMode::ALL {
            let blocking = Blocking {
                answer: mode,
                ..config.blocking
            };
            let bytes = answer::blocked(&q, &blocking, m.entry, &why);
            check_answer(&q, &bytes, Some(m.entry));
        }
    }
}

/// One synthesised answer to `q`; `zone` is the blocked entry that must own
/// any SOA in it.
fn check_answer(q: &Question<'_>, bytes: &[u8], zone: Option<&[u8]>) {
    let max = if q.edns.is_some() {
        usize::from(cutoff::wire::MAX_UDP)
    } else {
        MAX_PLAIN_UDP
    };
    assert!(bytes.len() <= max, "{} bytes, limit {max}", bytes.len());
    let m = Message::from_vec(bytes)
        .unwrap_or_else(|e| panic!("our answer does not parse: {e}: {bytes:02x?}"));
    assert_eq!(m.metadata.message_type, MessageType::Response, "QR=1");
    assert_eq!(m.metadata.id, q.id, "ID");
    assert_eq!(m.edns.is_some(), q.edns.is_some(), "OPT only when asked");
    assert_eq!(
        bytes.get(12..q.question_end),
        Some(q.question()),
        "question bytes"
    );
    let [question] = m.queries.as_slice() else {
        panic!("{} questions in the answer", m.queries.len());
    };
    assert_eq!(u16::from(question.query_type()), q.qtype, "QTYPE");
    assert_eq!(u16::from(question.query_class()), q.qclass, "QCLASS");
    let asked: Vec<&[u8]> = q.labels().collect();
    let answered: Vec<&[u8]> = question.name().iter().collect();
    assert_eq!(asked, answered, "question name");
    for record in m.answers.iter().chain(&m.authorities) {
        let labels: Vec<Vec<u8>> = record.name.iter().map(<[u8]>::to_ascii_lowercase).collect();
        let owner = labels.join(&b'.');
        match (record.record_type().is_soa(), zone) {
            (true, Some(zone)) => assert_eq!(owner, zone, "SOA owner"),
            (true, None) => panic!("a SOA in an answer that blocks nothing"),
            (false, _) => assert_eq!(labels, asked_lower(q), "record owner"),
        }
    }
}

fn asked_lower(q: &Question<'_>) -> Vec<Vec<u8>> {
    q.labels().map(<[u8]>::to_ascii_lowercase).collect()
}

/// The list reader never panics, and every name it accepts is one
/// `blocklist::domain` accepts unchanged and DNS can carry: at most 253
/// bytes, labels of 1 to 63, a name hickory-proto can build.
pub(crate) fn list_line(data: &[u8]) {
    let report = blocklist::read_lines(data, Coverage::Suffix, |name, _| {
        let text = std::str::from_utf8(name).expect("accepted names are UTF-8");
        assert_eq!(blocklist::domain(text).as_deref(), Ok(text), "idempotent");
        assert!(name.len() <= 253, "{} bytes", name.len());
        for label in text.split('.') {
            assert!((1..=63).contains(&label.len()), "label `{label}`");
        }
        // hickory's `from_ascii` would also apply host-name rules (no
        // leading `-`), which DNS itself does not have: build from labels.
        let parsed = Name::from_labels(text.split('.').map(str::as_bytes))
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(
            usize::from(parsed.num_labels()),
            text.split('.').count(),
            "{text}"
        );
    })
    .expect("reading from memory cannot fail");
    assert!(report.first.len() <= report.count, "{report:?}");
    let lines = data.split(|&b| b == b'\n').count();
    assert!(report.count <= lines, "more bad lines than lines");
}

/// The config loader never panics (a bad config is an `Err`), and a config
/// that loads has printable names and compiles into a policy that decides.
pub(crate) fn config(data: &[u8]) {
    if data.len() > MAX_CONFIG {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = cutoff::config::from_str(text, "fuzz", Path::new("/nonexistent")) else {
        return;
    };
    let names = config
        .networks
        .iter()
        .map(|n| &n.name)
        .chain(config.lists.iter().map(|l| &l.name))
        .chain(config.rules.iter().map(|r| &r.name));
    for name in names {
        assert!(!name.is_empty(), "empty name");
        assert!(
            !name.chars().any(char::is_control),
            "control character in {name:?}"
        );
    }
    let snapshot = Snapshot::new(config);
    for client in [Ipv4Addr::LOCALHOST, Ipv4Addr::new(192, 168, 1, 20)] {
        let _ = snapshot.decide(
            client.into(),
            b"s05.upd.kaspersky.com",
            Timestamp::UNIX_EPOCH,
        );
    }
}

/// Query-log names: labels cut from the input (up to 10, each 1 to 63
/// bytes, at most 255 bytes on the wire) escape into a JSON string of
/// printable ASCII that reads back to the same labels.
pub(crate) fn querylog_name(data: &[u8]) {
    let labels = labels_from(data);
    let refs: Vec<&[u8]> = labels.iter().map(Vec::as_slice).collect();
    let text = querylog::escape_labels(&refs);
    let json = serde_json::to_string(&text).expect("a string serialises");
    assert!(
        json.bytes().all(|b| (0x20..0x7f).contains(&b)),
        "raw control or non-ASCII byte in {json}"
    );
    let back: String = serde_json::from_str(&json).expect("our JSON parses");
    assert_eq!(back, text, "JSON round trip");
    let unescaped = querylog::unescape_name(&back).expect("an escaped name unescapes");
    assert_eq!(unescaped, labels, "escape round trip of {text}");
}

/// Splits `data` into wire labels: a length byte (taken mod 63, plus 1) and
/// that many bytes, while the name stays within 255 bytes on the wire.
fn labels_from(data: &[u8]) -> Vec<Vec<u8>> {
    let mut labels = Vec::new();
    let mut wire_len = 1; // the root label
    let mut rest = data;
    while labels.len() < 10 {
        let Some((&len, tail)) = rest.split_first() else {
            break;
        };
        let len = (usize::from(len) % 63 + 1).min(tail.len());
        if len == 0 || wire_len + 1 + len > 255 {
            break;
        }
        labels.push(tail[..len].to_vec());
        wire_len += 1 + len;
        rest = &tail[len..];
    }
    labels
}

/// Any bytes as an upstream answer: `cache::Entry::new` never panics; an
/// answer it reads renders for clients with and without EDNS, and its stale
/// copy (RFC 8767), into messages `wire::walk` still reads, with every TTL
/// of the stale copy at 30; its question makes a cache key.
pub(crate) fn cache_entry(data: &[u8]) {
    let Some(e) = Entry::new(data.to_vec(), 0, 86_400) else {
        return;
    };
    let question = data.get(12..e.layout.question_end).unwrap_or(&[]);
    let now = Instant::now();
    let stale = e.stale_copy(now);
    for entry in [&e, &stale] {
        for edns in [true, false] {
            let out = entry.render(0x4242, question, edns, now);
            assert!(wire::walk(&out).is_some(), "a rendered answer walks");
        }
    }
    let layout = wire::walk(&stale.bytes).expect("a stale copy walks");
    for at in layout.ttls {
        assert_eq!(wire::ttl_at(&stale.bytes, usize::from(at)), 30);
    }
    // The first question name as wire labels, if it is uncompressed.
    let mut labels = Vec::new();
    let mut at = 12;
    while let Some(&len) = data.get(at).filter(|l| **l != 0 && **l < 64) {
        let Some(label) = data.get(at + 1..at + 1 + usize::from(len)) else {
            return;
        };
        labels.push(label);
        at += 1 + usize::from(len);
    }
    if let Some(k) = Key::new(labels.iter().copied(), 1, 1, 0) {
        assert!(k.as_bytes().len() <= 260);
    }
}

/// The instant `since` inputs are read against: fixed, so a run repeats.
fn since_now() -> Timestamp {
    Timestamp::from_second(1_796_112_000).expect("2026-12-01")
}

/// `since::parse` never panics on any text; what it accepts prints as an
/// instant that parses back to itself (`cutoff report --url` sends it so),
/// a duration lands exactly that far before now, and every refusal says
/// what is accepted.
pub(crate) fn since(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let now = since_now();
    match since::parse(text, now) {
        Ok(t) => {
            assert_eq!(since::parse(&t.to_string(), now), Ok(t), "{text:?} → {t}");
            let trimmed = text.trim();
            if let Some(n) = trimmed
                .strip_suffix('d')
                .and_then(|n| n.parse::<i64>().ok())
            {
                let back = i128::from(now.as_second()) - i128::from(t.as_second());
                assert_eq!(back, i128::from(n) * 86_400, "{text:?}");
            }
        }
        Err(e) => assert!(e.to_string().contains(since::ACCEPTED), "{text:?}: {e}"),
    }
}

/// `/api/v1/clients?QUERY` as the admin endpoint reads it: any query string
/// that makes a valid URI gives an instant or an error (a 400), never a
/// panic; a `since` that loads is the same as `since::parse` of it.
pub(crate) fn clients_query(data: &[u8]) {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(uri) = format!("/api/v1/clients?{query}").parse::<Uri>() else {
        return;
    };
    let now = since_now();
    if let Ok(Some(t)) = cutoff::http::clients_since(&uri, now) {
        assert!(t >= Timestamp::MIN, "{t}");
        let alone = format!("/api/v1/clients?since={t}")
            .parse::<Uri>()
            .expect("an instant is URI-safe");
        assert_eq!(
            cutoff::http::clients_since(&alone, now).ok(),
            Some(Some(t)),
            "{query:?}"
        );
    }
}

/// Longest value tried by [`config_values`]: real durations, sizes and
/// instants are a few dozen bytes.
const MAX_VALUE: usize = 256;

/// One text as each duration, size and instant value of a config in turn
/// (`upstream_timeout`, `tcp.idle_timeout`, `cache.stale_refresh`,
/// `cache.stale_for`, `cache.max_bytes`, a rule's `from`):
/// `config::from_str` never panics, and a config that loads holds the value
/// inside its documented range. The text goes in as a YAML double-quoted
/// string, so the parsers see it as written.
pub(crate) fn config_values(data: &[u8]) {
    use std::time::Duration;
    if data.len() > MAX_VALUE {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let v = serde_json::to_string(text).expect("a string serialises");
    let hour = Duration::from_secs(3600);
    let short = |d: Duration| !d.is_zero() && d <= hour;
    let load =
        |yaml: String| cutoff::config::from_str(&yaml, "fuzz", Path::new("/nonexistent")).ok();
    if let Some(c) = load(format!("upstream_timeout: {v}\n")) {
        assert!(short(c.serve.upstream_timeout), "{text:?}");
    }
    if let Some(c) = load(format!("tcp: {{idle_timeout: {v}}}\n")) {
        assert!(short(c.serve.tcp_idle_timeout), "{text:?}");
    }
    if let Some(c) = load(format!("cache: {{stale_refresh: {v}}}\n")) {
        assert!(short(c.serve.cache_stale_refresh), "{text:?}");
    }
    if let Some(c) = load(format!("cache: {{stale_for: {v}}}\n")) {
        assert!(
            c.serve.cache_stale_for <= Duration::from_secs(7 * 86_400),
            "{text:?}"
        );
    }
    if let Some(c) = load(format!("cache: {{max_bytes: {v}}}\n")) {
        let b = c.serve.cache_max_bytes;
        assert!(
            b == 0 || (64 << 10..=64 << 30).contains(&b),
            "{text:?} gave {b} bytes"
        );
    }
    let rule = format!(
        "lists:\n  k: {{builtin: kaspersky}}\n\
         rules:\n  - {{name: r, lists: [k], action: block, before: log, from: {v}}}\n"
    );
    if let Some(c) = load(rule) {
        let r = c.rules.iter().find(|r| r.name == "r").expect("the rule");
        let from = r.from.expect("a rule that loads has its instant");
        // What it prints reads back as the same instant.
        assert_eq!(
            from.to_string().parse::<Timestamp>().ok(),
            Some(from),
            "{text:?}"
        );
    }
}

/// Any bytes as an upstream answer the cache declined, read as the
/// pipeline reads an opaque answer for the response policy (`wire::walk`,
/// `wire::records`, `wire::name_text`): nothing panics; every record's
/// RDATA lies inside the message, after the header, in order; a CNAME
/// target reads as at most 254 bytes of lowercase text.
pub(crate) fn opaque_answer(data: &[u8]) {
    let _ = wire::walk(data);
    let _ = wire::rcode(data);
    let Some(records) = wire::records(data) else {
        return;
    };
    let mut end = 12;
    for r in &records {
        assert!(
            r.rdata.start >= end && r.rdata.start <= r.rdata.end && r.rdata.end <= data.len(),
            "{r:?} in {} bytes",
            data.len()
        );
        end = r.rdata.end;
        if r.section == wire::Section::Answer
            && r.rtype == 5
            && let Some(t) = wire::name_text(data, r.rdata.start, r.rdata.end)
        {
            assert!(t.len() <= 254, "{} bytes of name", t.len());
            assert!(!t.iter().any(u8::is_ascii_uppercase), "lowercased");
        }
    }
}

//! The steps of one query, in order. This is the only place where the order
//! lives; each step says why it sits where it does.
//!
//! [`prepare`] runs without awaiting and answers everything that needs no
//! upstream (refusals, blocks, ANY, cache hits) right in the listener's
//! loop; only a cache miss becomes a [`Pending`] that [`finish`] forwards.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, RecordType};
use jiff::Timestamp;

use crate::answer;
use crate::cache::{Entry, Key, Lookup};
use crate::config::Denied;
use crate::matcher::NameBuf;
use crate::policy::{Decision, Verdict};
use crate::reload::{Runtime, State};
use crate::wire;

/// The transport a query came over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// UDP: answers are limited to the client's EDNS size.
    Udp,
    /// TCP.
    Tcp,
}

impl Protocol {
    /// `udp` or `tcp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
        }
    }
}

/// How a query was answered (for logs and metrics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Path {
    /// No answer at all (QR=1 packets, dropped clients).
    Dropped,
    /// Answered locally without a policy decision (malformed, ANY, errors).
    Local,
    /// Refused by `access`.
    Refused,
    /// Blocked by a rule.
    Blocked,
    /// Served from the cache.
    Cached,
    /// Forwarded to an upstream.
    Forwarded,
    /// No upstream answered.
    Failed,
}

/// A query waiting for its upstream answer.
#[derive(Debug)]
pub struct Pending {
    runtime: Arc<Runtime>,
    query: Message,
    packet: Vec<u8>,
    client: IpAddr,
    protocol: Protocol,
    key: Key,
}

/// What [`prepare`] decided.
#[derive(Debug)]
pub enum Step {
    /// The answer (or `None`: send nothing).
    Reply(Option<Vec<u8>>, Path),
    /// Forward; call [`finish`].
    Forward(Box<Pending>),
}

/// The largest answer the client can take over `protocol` (RFC 6891; never
/// more than 1232 bytes over UDP, DNS Flag Day 2020).
fn limit(query: &Message, protocol: Protocol) -> usize {
    match (protocol, &query.edns) {
        (Protocol::Tcp, _) => usize::from(u16::MAX),
        (Protocol::Udp, None) => 512,
        (Protocol::Udp, Some(e)) => usize::from(e.max_payload().clamp(512, answer::MAX_UDP)),
    }
}

/// Everything up to the upstream: decode, refuse, decide, block, cache.
pub fn prepare(state: &State, packet: &[u8], src: SocketAddr, protocol: Protocol) -> Step {
    // QR=1 is an answer, never a question: replying could start a packet
    // loop between two servers (RUSTSEC-2023-0041). Too short: not DNS.
    if packet.len() < 12 || packet[2] & 0x80 != 0 {
        return Step::Reply(None, Path::Dropped);
    }
    let id = wire::id(packet);
    let op = OpCode::from_u8((packet[2] >> 3) & 0x0f);
    let query = match Message::from_vec(packet) {
        Ok(q) if q.metadata.message_type == MessageType::Query => q,
        Ok(_) => return Step::Reply(None, Path::Dropped),
        Err(_) => {
            return Step::Reply(
                Some(answer::header_only(id, op, ResponseCode::FormErr)),
                Path::Local,
            );
        }
    };
    let max = limit(&query, protocol);
    let reply = |m: &Message, path| Step::Reply(Some(answer::encode(m, max)), path);
    if query.metadata.op_code != OpCode::Query {
        return reply(&answer::error(&query, ResponseCode::NotImp), Path::Local);
    }
    let [question] = query.queries.as_slice() else {
        return reply(&answer::error(&query, ResponseCode::FormErr), Path::Local);
    };
    let client = src.ip().to_canonical();
    // One lock-free load: this query uses this runtime to the end, even if a
    // reload swaps in another meanwhile.
    let runtime = state.current.load_full();
    // The root has no labels (and no list can hold it): it is decided as the
    // empty name, which only `access` can refuse.
    let name = NameBuf::from_labels(question.name().iter());
    let name = name.as_ref().map_or(&b""[..], NameBuf::as_bytes);
    // The decision comes before any upstream I/O: a blocked name never leaves the box.
    let now = Timestamp::now();
    let decision = runtime.policy.decide(client, name, now);
    match decision.verdict {
        Verdict::Refuse => {
            return match runtime.policy.config.access.denied {
                Denied::Drop => Step::Reply(None, Path::Refused),
                Denied::Refuse => reply(&answer::refused(&query), Path::Refused),
            };
        }
        Verdict::Block => return reply(&blocked(&runtime, &query, &decision, None), Path::Blocked),
        Verdict::Allow | Verdict::Log => {}
    }
    // ANY is answered here and never forwarded (RFC 8482; amplification).
    if question.query_type() == RecordType::ANY {
        return reply(
            &answer::any(&query, runtime.policy.config.blocking.ttl),
            Path::Local,
        );
    }
    let key = Key {
        name: name.into(),
        qtype: u16::from(question.query_type()),
        qclass: u16::from(question.query_class()),
        flags: flags(&query),
    };
    if let Lookup::Hit(entry) = state.cache.get(&key, Instant::now()) {
        let (bytes, path) = respond(
            &runtime,
            &query,
            packet,
            client,
            &entry,
            protocol,
            Path::Cached,
        );
        return Step::Reply(Some(bytes), path);
    }
    Step::Forward(Box::new(Pending {
        runtime,
        query,
        packet: packet.to_vec(),
        client,
        protocol,
        key,
    }))
}

/// Forwards a cache miss (shared with identical misses in flight) and
/// answers from what comes back.
pub async fn finish(state: &State, p: Pending) -> (Option<Vec<u8>>, Path) {
    let Some(upstream_query) = upstream_query(&p.query) else {
        let m = answer::error(&p.query, ResponseCode::ServFail);
        return (
            Some(answer::encode(&m, limit(&p.query, p.protocol))),
            Path::Local,
        );
    };
    let max_ttl = p.runtime.policy.config.serve.cache_max_ttl;
    let upstreams = &p.runtime.upstreams;
    let entry = state
        .cache
        .fetch(&p.key, || async {
            match upstreams.forward(&upstream_query).await {
                Ok(a) => Entry::new(a.bytes, a.endpoint, max_ttl),
                Err(e) => {
                    tracing::debug!(error = %e, "forwarding failed");
                    None
                }
            }
        })
        .await;
    let Some(entry) = entry else {
        let m = answer::unreachable(&p.query, "no upstream answered in time");
        return (
            Some(answer::encode(&m, limit(&p.query, p.protocol))),
            Path::Failed,
        );
    };
    let (bytes, path) = respond(
        &p.runtime,
        &p.query,
        &p.packet,
        p.client,
        &entry,
        p.protocol,
        Path::Forwarded,
    );
    (Some(bytes), path)
}

/// DO and CD change what an upstream returns, so they are part of the key.
fn flags(query: &Message) -> u8 {
    let dnssec_ok = query.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
    u8::from(dnssec_ok) | (u8::from(query.metadata.checking_disabled) << 1)
}

/// The query sent upstream: the client's question lowercased (so identical
/// questions share one upstream query and one cache entry), RD set, EDNS
/// with our UDP size and the client's DO bit.
fn upstream_query(q: &Message) -> Option<Vec<u8>> {
    let question = q.queries.first()?;
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.metadata.checking_disabled = q.metadata.checking_disabled;
    let mut uq =
        hickory_proto::op::Query::query(question.name().to_lowercase(), question.query_type());
    uq.set_query_class(if question.query_class() == DNSClass::IN {
        DNSClass::IN
    } else {
        question.query_class()
    });
    m.add_query(uq);
    let mut edns = hickory_proto::op::Edns::new();
    edns.set_max_payload(answer::MAX_UDP);
    edns.set_dnssec_ok(q.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok));
    m.set_edns(edns);
    m.to_vec().ok()
}

/// The answer from an upstream entry for this client: CNAME targets are
/// checked against the policy first (a CNAME into a blocked zone is the
/// blocked name), then the bytes are rendered and fitted to the transport.
fn respond(
    runtime: &Runtime,
    query: &Message,
    packet: &[u8],
    client: IpAddr,
    entry: &Entry,
    protocol: Protocol,
    path: Path,
) -> (Vec<u8>, Path) {
    let max = limit(query, protocol);
    let now = Timestamp::now();
    for target in &entry.targets {
        let d = runtime.policy.decide(client, target, now);
        if d.verdict == Verdict::Block {
            let name = String::from_utf8_lossy(target);
            let m = blocked(runtime, query, &d, Some(&name));
            return (answer::encode(&m, max), Path::Blocked);
        }
    }
    let question = wire::walk(packet)
        .and_then(|l| packet.get(12..l.question_end))
        .unwrap_or(&[]);
    let mut bytes = entry.render(
        wire::id(packet),
        question,
        query.edns.is_some(),
        Instant::now(),
    );
    if bytes.len() > max {
        let layout_end = wire::walk(&bytes).map_or(12, |l| l.question_end);
        bytes = wire::truncate(&bytes, layout_end, query.edns.is_some());
    }
    (bytes, path)
}

/// The blocked answer, its EDE naming the rule and list (and the CNAME
/// target, when the block came from one).
fn blocked(runtime: &Runtime, query: &Message, d: &Decision<'_>, via: Option<&str>) -> Message {
    let c = &runtime.policy.config;
    let rule = d.rule.map_or("?", |(r, _)| c.rules[r].name.as_str());
    let (list, entry) = d.matched.map_or(("?", &b""[..]), |m| {
        (c.lists[m.list].name.as_str(), m.entry)
    });
    let entry_text = String::from_utf8_lossy(entry);
    let why = match via {
        Some(target) => {
            format!("blocked by rule {rule} (list {list}, entry {entry_text}) via CNAME {target}")
        }
        None => format!("blocked by rule {rule} (list {list}, entry {entry_text})"),
    };
    answer::blocked(query, &c.blocking, &answer::zone_name(entry), &why)
}

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
use crate::blocklist::Category;
use crate::cache::{BoxedKey, Entry, Key, Lookup};
use crate::config::Denied;
use crate::matcher::NameBuf;
use crate::policy::{Decision, Phase, Verdict};
use crate::reload::{Runtime, State};
use crate::wire;

mod fast;
mod observe;

pub use observe::observe;

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

/// What happened to one query, for metrics, the client table and the query
/// log (see [`observe`]).
#[derive(Debug)]
pub struct Outcome {
    /// How it was answered.
    pub path: Path,
    /// udp or tcp.
    pub protocol: Protocol,
    /// The client.
    pub client: SocketAddr,
    /// When it arrived.
    pub start: Instant,
    /// When it arrived, as wall-clock time (the instant the policy decided at).
    pub time: Timestamp,
    /// The runtime that decided (none for packets dropped before decoding).
    pub runtime: Option<Arc<Runtime>>,
    /// The question's wire bytes, kept only when there is a query log.
    pub question: Option<Box<[u8]>>,
    /// The decision.
    pub verdict: Option<Verdict>,
    /// The client's network.
    pub network: Option<usize>,
    /// The rule and its phase.
    pub rule: Option<(usize, Phase)>,
    /// The list, category and entry a rule matched (or, without a rule, the
    /// first entry that covered the name).
    pub matched: Option<(usize, Option<Category>, Box<[u8]>)>,
    /// The upstream that answered.
    pub upstream: Option<usize>,
}

impl Outcome {
    fn new(protocol: Protocol, client: SocketAddr, start: Instant) -> Self {
        Self {
            path: Path::Dropped,
            protocol,
            client,
            start,
            time: Timestamp::now(),
            runtime: None,
            question: None,
            verdict: None,
            network: None,
            rule: None,
            matched: None,
            upstream: None,
        }
    }

    fn decided(&mut self, d: &Decision<'_>) {
        self.verdict = Some(d.verdict);
        self.network = d.network;
        self.rule = d.rule;
        self.matched = d.matched.map(|m| (m.list, m.category, m.entry.into()));
    }
}

/// A query waiting for its upstream answer.
#[derive(Debug)]
pub struct Pending {
    runtime: Arc<Runtime>,
    query: Message,
    packet: Vec<u8>,
    key: BoxedKey,
    outcome: Outcome,
}

/// What [`prepare`] decided.
#[derive(Debug)]
pub enum Step {
    /// The answer (or `None`: send nothing).
    Reply(Option<Vec<u8>>, Outcome),
    /// Forward; call [`finish`].
    Forward(Pending),
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
    let mut out = Outcome::new(protocol, src, Instant::now());
    // QR=1 is an answer, never a question: replying could start a packet
    // loop between two servers (RUSTSEC-2023-0041). Too short: not DNS.
    if packet.len() < 12 || packet[2] & 0x80 != 0 {
        return Step::Reply(None, out);
    }
    if state.query_log.is_some() {
        out.question = wire::walk(packet)
            .and_then(|l| packet.get(12..l.question_end))
            .map(Into::into);
    }
    // Plain queries (nearly all) are decided and answered from their bytes;
    // anything unusual, and every cache miss, takes the full parse below.
    if let Some(q) = wire::parse_query(packet)
        && let Some(reply) = fast::answer(state, &q, src, protocol, &mut out)
    {
        return Step::Reply(reply, out);
    }
    let id = wire::id(packet);
    let op = OpCode::from_u8((packet[2] >> 3) & 0x0f);
    let query = match Message::from_vec(packet) {
        Ok(q) if q.metadata.message_type == MessageType::Query => q,
        Ok(_) => return Step::Reply(None, out),
        Err(_) => {
            out.path = Path::Local;
            return Step::Reply(
                Some(answer::header_only(id, op, ResponseCode::FormErr)),
                out,
            );
        }
    };
    let max = limit(&query, protocol);
    out.path = Path::Local;
    if query.metadata.op_code != OpCode::Query {
        let bytes = answer::encode(&answer::error(&query, ResponseCode::NotImp), max);
        return Step::Reply(Some(bytes), out);
    }
    let [question] = query.queries.as_slice() else {
        let bytes = answer::encode(&answer::error(&query, ResponseCode::FormErr), max);
        return Step::Reply(Some(bytes), out);
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
    let decision = runtime.policy.decide(client, name, out.time);
    out.decided(&decision);
    let reply = match decision.verdict {
        Verdict::Refuse => {
            out.path = Path::Refused;
            match runtime.policy.config.access.denied {
                Denied::Drop => None,
                Denied::Refuse => Some(answer::encode(&answer::refused(&query), max)),
            }
        }
        Verdict::Block => {
            out.path = Path::Blocked;
            Some(answer::encode(
                &blocked(&runtime, &query, &decision, None),
                max,
            ))
        }
        // ANY is answered here and never forwarded (RFC 8482; amplification).
        Verdict::Allow | Verdict::Log if question.query_type() == RecordType::ANY => {
            Some(answer::encode(
                &answer::any(&query, runtime.policy.config.blocking.ttl),
                max,
            ))
        }
        Verdict::Allow | Verdict::Log => {
            // Wire-format labels, not the dotted text: `a\.b.example` is
            // not `a.b.example`.
            let qtype = u16::from(question.query_type());
            let qclass = u16::from(question.query_class());
            let Some(key) = Key::new(question.name().iter(), qtype, qclass, flags(&query)) else {
                let bytes = answer::encode(&answer::error(&query, ResponseCode::FormErr), max);
                out.runtime = Some(runtime);
                return Step::Reply(Some(bytes), out);
            };
            if let Lookup::Hit(entry) = state.cache.get(&key, Instant::now()) {
                out.path = Path::Cached;
                out.upstream = Some(entry.upstream);
                let bytes = respond(&runtime, &query, packet, client, &entry, protocol, &mut out);
                out.runtime = Some(runtime);
                return Step::Reply(Some(bytes), out);
            }
            out.runtime = Some(runtime.clone());
            return Step::Forward(Pending {
                runtime,
                query,
                packet: packet.to_vec(),
                key: key.boxed(),
                outcome: out,
            });
        }
    };
    out.runtime = Some(runtime);
    Step::Reply(reply, out)
}

/// Forwards a cache miss (shared with identical misses in flight) and
/// answers from what comes back.
pub async fn finish(state: &State, p: Pending) -> (Option<Vec<u8>>, Outcome) {
    let Pending {
        runtime,
        query,
        packet,
        key,
        mut outcome,
    } = p;
    let max = limit(&query, outcome.protocol);
    let Some(upstream_query) = upstream_query(&query) else {
        return (None, outcome);
    };
    let max_ttl = runtime.policy.config.serve.cache_max_ttl;
    let upstreams = &runtime.upstreams;
    let handles = &runtime.counters.upstream;
    let entry = state
        .cache
        .fetch(&key, || async {
            match upstreams.forward(&upstream_query, handles).await {
                Ok(a) => Entry::new(a.bytes, a.endpoint, max_ttl),
                Err(e) => {
                    tracing::debug!(error = %e, "forwarding failed");
                    None
                }
            }
        })
        .await;
    // Every upstream failed: an answer that expired less than
    // `cache.stale_for` ago is served stale (RFC 8767) rather than SERVFAIL.
    let entry = match entry {
        Some(e) => Some((e, Path::Forwarded)),
        None => state
            .cache
            .stale(&key, Instant::now())
            .map(|e| (e, Path::Cached)),
    };
    let bytes = match entry {
        Some((entry, path)) => {
            outcome.path = path;
            outcome.upstream = Some(entry.upstream);
            let client = outcome.client.ip().to_canonical();
            let protocol = outcome.protocol;
            respond(
                &runtime,
                &query,
                &packet,
                client,
                &entry,
                protocol,
                &mut outcome,
            )
        }
        None => {
            outcome.path = Path::Failed;
            answer::encode(
                &answer::unreachable(&query, "no upstream answered in time"),
                max,
            )
        }
    };
    (Some(bytes), outcome)
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

/// What an upstream answer's CNAME targets and addresses mean for this
/// client: the first that a rule blocks, else the first that a rule logs
/// (only when the name itself was plainly allowed).
enum Recheck<'a> {
    Block(Decision<'a>, String),
    Log(Decision<'a>),
    Clear,
}

fn recheck<'a>(
    runtime: &'a Runtime,
    client: IpAddr,
    entry: &'a Entry,
    verdict: Option<Verdict>,
    now: Timestamp,
) -> Recheck<'a> {
    let mut logged = None;
    let mut note = |d: Decision<'a>, via: String| -> Option<Recheck<'a>> {
        match d.verdict {
            Verdict::Block => Some(Recheck::Block(d, via)),
            Verdict::Log if verdict == Some(Verdict::Allow) && logged.is_none() => {
                logged = Some(d);
                None
            }
            _ => None,
        }
    };
    for target in &entry.targets {
        let d = runtime.policy.decide(client, target, now);
        if let Some(block) = note(d, format!("via CNAME {}", String::from_utf8_lossy(target))) {
            return block;
        }
    }
    // Answers pointing into listed prefixes (response-IP rules): the
    // address is what the client would connect to, whatever the name.
    if runtime.policy.has_address_lists() {
        for addr in &entry.addresses {
            let d = runtime.policy.decide_address(client, *addr, now);
            if let Some(block) = note(d, format!("answer address {addr}")) {
                return block;
            }
        }
    }
    logged.map_or(Recheck::Clear, Recheck::Log)
}

/// Cuts an answer to the transport's size: a UDP client gets TC=1 and
/// retries over TCP.
fn fit(bytes: Vec<u8>, max: usize, edns: bool) -> Vec<u8> {
    if bytes.len() <= max {
        return bytes;
    }
    let end = wire::walk(&bytes).map_or(12, |l| l.question_end);
    wire::truncate(&bytes, end, edns)
}

/// The answer from an upstream entry for this client: CNAME targets and
/// addresses are checked against the policy first (a CNAME into a blocked
/// zone is the blocked name), then the bytes are rendered and fitted.
fn respond(
    runtime: &Runtime,
    query: &Message,
    packet: &[u8],
    client: IpAddr,
    entry: &Entry,
    protocol: Protocol,
    out: &mut Outcome,
) -> Vec<u8> {
    let max = limit(query, protocol);
    match recheck(runtime, client, entry, out.verdict, out.time) {
        Recheck::Block(d, via) => {
            out.decided(&d);
            out.path = Path::Blocked;
            return answer::encode(&blocked(runtime, query, &d, Some(&via)), max);
        }
        Recheck::Log(d) => out.decided(&d),
        Recheck::Clear => {}
    }
    let question = wire::walk(packet)
        .and_then(|l| packet.get(12..l.question_end))
        .unwrap_or(&[]);
    let bytes = entry.render(
        wire::id(packet),
        question,
        query.edns.is_some(),
        Instant::now(),
    );
    fit(bytes, max, query.edns.is_some())
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
        Some(via) => format!("blocked by rule {rule} (list {list}, entry {entry_text}) {via}"),
        None => format!("blocked by rule {rule} (list {list}, entry {entry_text})"),
    };
    answer::blocked(query, &c.blocking, &answer::zone_name(entry), &why)
}

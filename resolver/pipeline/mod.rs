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
use hickory_proto::rr::RecordType;
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
mod forward;
mod observe;

pub use forward::finish;
pub use observe::observe;

/// The transport a query came over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// UDP: answers are limited to the client's EDNS size.
    Udp,
    /// TCP.
    Tcp,
    /// DNS over TLS (RFC 7858): TCP framing inside a TLS session.
    Dot,
}

impl Protocol {
    /// `udp`, `tcp` or `dot`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Dot => "dot",
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
    /// Only a zone-wide entry covered the name (discovery of new endpoints).
    pub unclassified: bool,
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
            unclassified: false,
            upstream: None,
        }
    }

    fn decided(&mut self, d: &Decision<'_>) {
        self.verdict = Some(d.verdict);
        self.network = d.network;
        self.rule = d.rule;
        self.matched = d.matched.map(|m| (m.list, m.category, m.entry.into()));
        self.unclassified = d.matched.is_some_and(|m| m.unclassified);
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
        (Protocol::Tcp | Protocol::Dot, _) => usize::from(u16::MAX),
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
        // RFC 6891 §6.1.3: an EDNS version we do not speak gets BADVERS,
        // whatever the name (after `access`: a refused client learns nothing).
        _ if query.edns.as_ref().is_some_and(|e| e.version() > 0) => Some(answer::badvers(&query)),
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
            let flags = flags(packet, dnssec_ok(&query));
            let Some(key) = Key::new(question.name().iter(), qtype, qclass, flags) else {
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

/// DO, CD and AD change what an upstream returns, so they are part of the
/// key (AD only without DO: with DO the upstream sets AD anyway). Read from
/// the packet: bytes 2 and 3 of the header.
pub(crate) fn flags(packet: &[u8], dnssec_ok: bool) -> u8 {
    let byte3 = packet.get(3).copied().unwrap_or(0);
    let cd = byte3 & 0x10 != 0;
    let ad = byte3 & 0x20 != 0 && !dnssec_ok;
    u8::from(dnssec_ok) | (u8::from(cd) << 1) | (u8::from(ad) << 2)
}

fn dnssec_ok(query: &Message) -> bool {
    query.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok)
}

/// What an upstream answer's CNAME targets and addresses mean for this
/// client: the first that a rule blocks, else the first that a rule logs
/// (only when the name itself was plainly allowed). A name an `allow` rule
/// decided is not re-checked: allow beats block, and an exemption (the
/// Threat Intelligence hosts) must hold whatever its answer points at.
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
    allowed_by_rule: bool,
    now: Timestamp,
) -> Recheck<'a> {
    if allowed_by_rule {
        return Recheck::Clear;
    }
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
/// retries over TCP. `edns` is the client's DO bit when it sent an OPT.
fn fit(bytes: Vec<u8>, max: usize, edns: Option<bool>) -> Vec<u8> {
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
    let allowed_by_rule = out.verdict == Some(Verdict::Allow) && out.rule.is_some();
    match recheck(
        runtime,
        client,
        entry,
        out.verdict,
        allowed_by_rule,
        out.time,
    ) {
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
    let edns = query.edns.as_ref().map(|e| e.flags().dnssec_ok);
    let bytes = entry.render(wire::id(packet), question, edns.is_some(), Instant::now());
    finish_forwarded(bytes, packet, entry, edns, max)
}

/// The last touches on a forwarded or cached answer: header bits from the
/// client's query, an OPT for an EDNS client when the upstream sent none,
/// and the transport's size. A few byte writes; no allocation unless an OPT
/// is added or the answer is truncated.
fn finish_forwarded(
    mut bytes: Vec<u8>,
    packet: &[u8],
    entry: &Entry,
    edns: Option<bool>,
    max: usize,
) -> Vec<u8> {
    if let [_, _, b2, b3, ..] = *packet {
        wire::set_forwarded_flags(&mut bytes, b2, b3, edns == Some(true));
    }
    if let Some(dnssec_ok) = edns {
        // An answer relayed with odd OPTs (two, or one outside the
        // additional section) has no usable `layout.opt` but must not get a
        // third: the records themselves say whether one is there.
        let had_opt = entry.layout.opt.is_some() || wire::any_opt(&bytes);
        wire::ensure_opt(&mut bytes, had_opt, dnssec_ok);
    }
    fit(bytes, max, edns)
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
    let blocking = runtime.policy.blocking_for(d);
    answer::blocked(query, &blocking, &answer::zone_name(entry), &why)
}

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
use crate::cache::{Entry, Key, Lookup};
use crate::config::{Action, Denied, LogEvents};
use crate::matcher::NameBuf;
use crate::metrics::Dropped;
use crate::policy::{Decision, Phase, Verdict};
use crate::querylog::Record;
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
    key: Key,
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
        && let Some(reply) = fast(state, &q, src, protocol, &mut out)
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
            let key = Key {
                name: name.into(),
                qtype: u16::from(question.query_type()),
                qclass: u16::from(question.query_class()),
                flags: flags(&query),
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
                key,
                outcome: out,
            });
        }
    };
    out.runtime = Some(runtime);
    Step::Reply(reply, out)
}

/// The fast path: decide and answer a plain query from its bytes; the
/// answer (`Some(None)`: send nothing), or `None` for the full path (a cache
/// miss, or an answer that needs the `Message` builders).
fn fast(
    state: &State,
    q: &wire::Query<'_>,
    src: SocketAddr,
    protocol: Protocol,
    out: &mut Outcome,
) -> Option<Option<Vec<u8>>> {
    let name = NameBuf::from_labels(q.labels())?;
    let client = src.ip().to_canonical();
    let runtime = state.current.load_full();
    // The decision comes before any upstream I/O: a blocked name never leaves the box.
    let decision = runtime.policy.decide(client, name.as_bytes(), out.time);
    let c = &runtime.policy.config;
    let max = match (protocol, q.edns) {
        (Protocol::Tcp, _) => usize::from(u16::MAX),
        (Protocol::Udp, None) => 512,
        (Protocol::Udp, Some(e)) => usize::from(e.size.clamp(512, answer::MAX_UDP)),
    };
    let bytes = match decision.verdict {
        Verdict::Refuse => {
            out.path = Path::Refused;
            match c.access.denied {
                Denied::Drop => None,
                Denied::Refuse => Some(answer::fast::refused(q)),
            }
        }
        Verdict::Block => {
            let m = decision.matched?;
            out.path = Path::Blocked;
            let rule = decision.rule.map_or("?", |(r, _)| c.rules[r].name.as_str());
            let list = c.lists[m.list].name.as_str();
            let zone_at = name.as_bytes().len() - m.entry.len();
            let why = |t: &mut String| answer::fast::why(t, rule, list, m.entry);
            Some(answer::fast::blocked(q, &c.blocking, zone_at, &why))
        }
        // ANY is answered here and never forwarded (RFC 8482; amplification).
        Verdict::Allow | Verdict::Log if q.qtype == u16::from(RecordType::ANY) => {
            out.path = Path::Local;
            Some(answer::fast::any(q, c.blocking.ttl))
        }
        Verdict::Allow | Verdict::Log => {
            let (_, cd) = q.flags();
            let dnssec_ok = q.edns.is_some_and(|e| e.dnssec_ok);
            let key = Key {
                name: name.as_bytes().into(),
                qtype: q.qtype,
                qclass: q.qclass,
                flags: u8::from(dnssec_ok) | (u8::from(cd) << 1),
            };
            let Lookup::Hit(entry) = state.cache.get(&key, Instant::now()) else {
                return None;
            };
            // An answer that a CNAME target or address turns into a block is
            // built by the full path (rare; it re-decides the same way).
            let now = out.time;
            let mut logged: Option<Decision<'_>> = None;
            for target in &entry.targets {
                let d = runtime.policy.decide(client, target, now);
                match d.verdict {
                    Verdict::Block => return None,
                    Verdict::Log if decision.verdict == Verdict::Allow => {
                        logged = logged.or(Some(d))
                    }
                    _ => {}
                }
            }
            if runtime.policy.has_address_lists() {
                for addr in &entry.addresses {
                    let d = runtime.policy.decide_address(client, *addr, now);
                    match d.verdict {
                        Verdict::Block => return None,
                        Verdict::Log if decision.verdict == Verdict::Allow => {
                            logged = logged.or(Some(d))
                        }
                        _ => {}
                    }
                }
            }
            out.decided(&decision);
            if let Some(d) = &logged {
                out.decided(d);
            }
            out.path = Path::Cached;
            out.upstream = Some(entry.upstream);
            let mut bytes = entry.render(q.id, q.question(), q.edns.is_some(), Instant::now());
            if bytes.len() > max {
                let end = wire::walk(&bytes).map_or(12, |l| l.question_end);
                bytes = wire::truncate(&bytes, end, q.edns.is_some());
            }
            out.runtime = Some(runtime);
            return Some(Some(bytes));
        }
    };
    out.decided(&decision);
    let bytes = bytes.map(|b| {
        if b.len() > max {
            wire::truncate(&b, q.question_end, q.edns.is_some())
        } else {
            b
        }
    });
    out.runtime = Some(runtime);
    Some(bytes)
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
    let bytes = match entry {
        Some(entry) => {
            outcome.path = Path::Forwarded;
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

/// After the reply is sent: metrics, then the client table, then the query
/// log. Nothing here can delay the answer: it has already gone.
pub fn observe(state: &State, reply: Option<&[u8]>, out: Outcome) {
    let m = &state.metrics;
    if let Some(bytes) = reply {
        m.rcode(wire::rcode(bytes));
    }
    match (&out.path, reply) {
        (Path::Dropped, _) => m.dropped(Dropped::QrSet),
        (Path::Refused, None) => m.dropped(Dropped::Access),
        (Path::Cached, _) => m.cache_hits.increment(1),
        (Path::Forwarded | Path::Failed, _) => m.cache_misses.increment(1),
        _ => {}
    }
    let elapsed = out.start.elapsed();
    m.duration(&out.path, elapsed.as_secs_f64());
    let (Some(runtime), Some(verdict)) = (&out.runtime, out.verdict) else {
        return;
    };
    let counters = &runtime.counters;
    counters.query(out.network, verdict, out.protocol);
    let now = out.time;
    if let (Some(net), Some((list, category, _))) = (out.network, &out.matched) {
        if let Some((rule, _)) = out.rule {
            let action = match verdict {
                Verdict::Block => Action::Block,
                Verdict::Log => Action::Log,
                _ => Action::Allow,
            };
            counters.matched(net, rule, *list, *category, action);
        }
        if runtime.policy.config.lists[*list].tracked {
            let client = out.client.ip().to_canonical();
            state
                .clients
                .record(&runtime.network_names[net], client, *category, verdict, now);
        }
    }
    let Some(log) = &state.query_log else {
        return;
    };
    if runtime.policy.config.query_log.events == LogEvents::Matched
        && !matches!(verdict, Verdict::Log | Verdict::Block)
    {
        return;
    }
    let Some(question) = out.question else {
        return;
    };
    log.send(Record {
        time: now,
        runtime: runtime.clone(),
        client: out.client,
        protocol: out.protocol,
        question,
        verdict,
        network: out.network,
        rule: out.rule,
        matched: out.matched,
        rcode: reply.map(wire::rcode),
        duration_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        upstream: out.upstream,
        cached: out.path == Path::Cached,
    });
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
    out: &mut Outcome,
) -> Vec<u8> {
    let max = limit(query, protocol);
    let now = out.time;
    for target in &entry.targets {
        let d = runtime.policy.decide(client, target, now);
        if d.verdict == Verdict::Block
            || (d.verdict == Verdict::Log && out.verdict == Some(Verdict::Allow))
        {
            out.decided(&d);
        }
        if d.verdict == Verdict::Block {
            let name = String::from_utf8_lossy(target);
            let m = blocked(runtime, query, &d, Some(&name));
            out.path = Path::Blocked;
            return answer::encode(&m, max);
        }
    }
    // Answers pointing into listed prefixes (response-IP rules): the
    // address is what the client would connect to, whatever the name.
    if runtime.policy.has_address_lists() {
        for addr in &entry.addresses {
            let d = runtime.policy.decide_address(client, *addr, now);
            if d.verdict == Verdict::Block
                || (d.verdict == Verdict::Log && out.verdict == Some(Verdict::Allow))
            {
                out.decided(&d);
            }
            if d.verdict == Verdict::Block {
                let m = blocked(runtime, query, &d, Some(&format!("answer address {addr}")));
                out.path = Path::Blocked;
                return answer::encode(&m, max);
            }
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
    bytes
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
        Some(via) if via.starts_with("answer address") => {
            format!("blocked by rule {rule} (list {list}, entry {entry_text}): {via}")
        }
        Some(target) => {
            format!("blocked by rule {rule} (list {list}, entry {entry_text}) via CNAME {target}")
        }
        None => format!("blocked by rule {rule} (list {list}, entry {entry_text})"),
    };
    answer::blocked(query, &c.blocking, &answer::zone_name(entry), &why)
}

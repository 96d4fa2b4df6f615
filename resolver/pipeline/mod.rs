//! The steps of one query, in order. This is the only place where the order
//! lives, and every query walks it once; each step says why it sits where
//! it does:
//!
//! ```text
//! view → access → network → decide → blocked answer | ANY | cache | forward
//!      → recheck → fit → reply → observe
//! ```
//!
//! [`prepare`] runs without awaiting and answers everything that needs no
//! upstream (refusals, blocks, ANY, cache hits) right in the listener's
//! loop; only a cache miss becomes a [`Pending`] that [`finish`] forwards.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use jiff::Timestamp;

use crate::answer::{self, rcode};
use crate::blocklist::Category;
use crate::cache::{BoxedKey, Entry, Key, Lookup};
use crate::config::Denied;
use crate::matcher::NameBuf;
use crate::policy::{Decision, Phase, Verdict};
use crate::query::Question;
pub use crate::query::{Answered, Protocol};
use crate::runtime::{Runtime, State};
use crate::wire;

mod forward;
mod observe;

pub use forward::finish;
pub use observe::observe;

/// What happened to one query, for metrics, the client table and the query
/// log (see [`observe`]).
#[derive(Debug)]
pub struct Outcome {
    /// How it was answered.
    pub answered: Answered,
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
    /// The question's wire bytes, kept when there is a query log or a list
    /// matched the name (the status page's recent lookups).
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
    /// A temporary allow turned a block or log into an answer.
    pub temporary_allow: bool,
    /// The upstream that answered.
    pub upstream: Option<usize>,
}

impl Outcome {
    fn new(protocol: Protocol, client: SocketAddr, start: Instant) -> Self {
        Self {
            answered: Answered::Dropped,
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
            temporary_allow: false,
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

/// A query waiting for its upstream answer: its bytes (as the question
/// view reads them), the runtime that decided it and the cache key.
#[derive(Debug)]
pub struct Pending {
    runtime: Arc<Runtime>,
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

/// Everything up to the upstream: view, refuse, decide, block, cache.
pub fn prepare(state: &State, packet: &[u8], src: SocketAddr, protocol: Protocol) -> Step {
    let mut out = Outcome::new(protocol, src, Instant::now());
    // QR=1 is an answer, never a question: replying could start a packet
    // loop between two servers (RUSTSEC-2023-0041). Too short: not DNS.
    let header = match *packet {
        [a, b, c, d, ..] if packet.len() >= 12 && c & 0x80 == 0 => [a, b, c, d],
        _ => return Step::Reply(None, out),
    };
    // Nearly every query is read as it came; the rare one the byte reader
    // declines (compression, several records, options it does not check)
    // is parsed in full and re-encoded into bytes it reads.
    let canonical;
    let q = match wire::parse_query(packet) {
        Some(q) => q,
        None => match wire::canonical(packet) {
            Ok(bytes) => {
                canonical = bytes;
                match wire::parse_query(&canonical) {
                    Some(q) => q,
                    None => return formerr(header, out),
                }
            }
            Err(wire::Declined::Response) => return Step::Reply(None, out),
            Err(wire::Declined::Malformed | wire::Declined::Questions) => {
                return formerr(header, out);
            }
        },
    };
    if state.query_log.is_some() {
        out.question = Some(q.question().into());
    }
    match decide(state, &q, &mut out) {
        Decided::Answer(reply, runtime) => {
            out.runtime = runtime;
            Step::Reply(reply.map(|r| fit(r, &q, protocol)), out)
        }
        Decided::Onward(runtime) => forward_or_cached(state, &q, runtime, out),
    }
}

/// What [`decide`] made of a query.
enum Decided {
    /// Answered here (`None`: send nothing), with the runtime that decided
    /// (none for an opcode that is not served, which no policy sees).
    Answer(Option<Vec<u8>>, Option<Arc<Runtime>>),
    /// On to the cache, and upstream on a miss.
    Onward(Arc<Runtime>),
}

fn formerr(header: [u8; 4], mut out: Outcome) -> Step {
    out.answered = Answered::Local;
    Step::Reply(Some(answer::header_only(header, rcode::FORMERR)), out)
}

/// access → network → decide → blocked | ANY, or on to the cache.
fn decide(state: &State, q: &Question<'_>, out: &mut Outcome) -> Decided {
    if q.opcode != 0 {
        out.answered = Answered::Local;
        return Decided::Answer(Some(answer::error(q, rcode::NOTIMP)), None);
    }
    let client = out.client.ip().to_canonical();
    // One lock-free load: this query uses this runtime to the end, even if a
    // reload swaps in another meanwhile.
    let runtime = state.current.load_full();
    // An RPZ zone's SOA (or a refusal) for secondaries: before `access`,
    // which `rpz.allow_transfer` replaces for these names.
    if let Some(reply) = crate::rpz::answer(state, &runtime, q, out.client, out.protocol) {
        out.answered = Answered::Local;
        return Decided::Answer(Some(reply), Some(runtime));
    }
    // The root has no labels (and no list can hold it): it is decided as the
    // empty name, which only `access` can refuse.
    let name = NameBuf::from_labels(q.labels());
    let name = name.as_ref().map_or(&b""[..], NameBuf::as_bytes);
    // The decision comes before any upstream I/O: a blocked name never leaves the box.
    let mut decision = runtime.policy.decide(client, name, out.time);
    // A temporary allow (`cutoff allow`) opens a blocked or logged name for
    // a while on a network that permits it; like an `allow` rule, its
    // answers are not re-checked. Still before any upstream I/O.
    if state
        .allows
        .opens(&runtime.policy, &decision, name, out.time)
    {
        decision.verdict = Verdict::Allow;
        decision.rule = None;
        out.temporary_allow = true;
    }
    out.decided(&decision);
    // The status page's recent lookups keep the question of every name a
    // list matched, also without a query log.
    if out.question.is_none() && out.matched.is_some() {
        out.question = Some(q.question().into());
    }
    let c = &runtime.policy.config;
    let reply = match decision.verdict {
        Verdict::Refuse => {
            out.answered = Answered::Refused;
            match c.access.denied {
                Denied::Drop => None,
                Denied::Refuse => Some(answer::refused(q)),
            }
        }
        // RFC 6891 §6.1.3: an EDNS version we do not speak gets BADVERS,
        // whatever the name (after `access`: a refused client learns nothing).
        _ if q.edns.is_some_and(|e| e.version > 0) => {
            out.answered = Answered::Local;
            Some(answer::badvers(q))
        }
        Verdict::Block => {
            out.answered = Answered::Blocked;
            Some(blocked(&runtime, q, &decision, None))
        }
        // ANY is answered here and never forwarded (RFC 8482; amplification).
        Verdict::Allow | Verdict::Log if q.qtype == 255 => {
            out.answered = Answered::Local;
            Some(answer::any(q, c.blocking.ttl))
        }
        Verdict::Allow | Verdict::Log => return Decided::Onward(runtime),
    };
    Decided::Answer(reply, Some(runtime))
}

/// cache → (hit) recheck → fit, or (miss) the query to forward.
fn forward_or_cached(
    state: &State,
    q: &Question<'_>,
    runtime: Arc<Runtime>,
    mut out: Outcome,
) -> Step {
    // Wire-format labels, not the dotted text: `a\.b.example` is not
    // `a.b.example`.
    let flags = flags(q.packet, q.dnssec_ok());
    let Some(key) = Key::new(q.labels(), q.qtype, q.qclass, flags) else {
        out.answered = Answered::Local;
        out.runtime = Some(runtime);
        let bytes = fit(answer::error(q, rcode::FORMERR), q, out.protocol);
        return Step::Reply(Some(bytes), out);
    };
    if let Lookup::Hit(entry) = state.cache.get(&key, Instant::now()) {
        out.answered = Answered::Cached;
        out.upstream = Some(entry.upstream);
        let bytes = respond(&runtime, q, &entry, &mut out);
        out.runtime = Some(runtime);
        return Step::Reply(Some(bytes), out);
    }
    out.runtime = Some(runtime.clone());
    Step::Forward(Pending {
        runtime,
        packet: q.packet.to_vec(),
        key: key.boxed(),
        outcome: out,
    })
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
    let mut note = |d: Decision<'a>, via: &dyn Fn() -> String| -> Option<Recheck<'a>> {
        match d.verdict {
            Verdict::Block => Some(Recheck::Block(d, via())),
            Verdict::Log if verdict == Some(Verdict::Allow) && logged.is_none() => {
                logged = Some(d);
                None
            }
            _ => None,
        }
    };
    for target in &entry.targets {
        let d = runtime.policy.decide(client, target, now);
        let via = || format!("via CNAME {}", String::from_utf8_lossy(target));
        if let Some(block) = note(d, &via) {
            return block;
        }
    }
    // Answers pointing into listed prefixes (response-IP rules): the
    // address is what the client would connect to, whatever the name.
    if runtime.policy.has_address_lists() {
        for addr in &entry.addresses {
            let d = runtime.policy.decide_address(client, *addr, now);
            if let Some(block) = note(d, &|| format!("answer address {addr}")) {
                return block;
            }
        }
    }
    logged.map_or(Recheck::Clear, Recheck::Log)
}

/// Cuts an answer to the transport's size: a UDP client gets TC=1 (its DO
/// echoed in the OPT) and retries over TCP.
fn fit(bytes: Vec<u8>, q: &Question<'_>, protocol: Protocol) -> Vec<u8> {
    if bytes.len() <= q.limit(protocol, crate::wire::MAX_UDP) {
        return bytes;
    }
    let end = wire::outline(&bytes).map_or(12, |l| l.question_end);
    wire::truncate(&bytes, end, q.edns.map(|e| e.dnssec_ok))
}

/// The answer from an upstream entry for this client: CNAME targets and
/// addresses are checked against the policy first (a CNAME into a blocked
/// zone is the blocked name), then the bytes are rendered and fitted.
fn respond(runtime: &Runtime, q: &Question<'_>, entry: &Entry, out: &mut Outcome) -> Vec<u8> {
    let client = out.client.ip().to_canonical();
    let allowed_by_rule =
        out.verdict == Some(Verdict::Allow) && (out.rule.is_some() || out.temporary_allow);
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
            out.answered = Answered::Blocked;
            return fit(blocked(runtime, q, &d, Some(&via)), q, out.protocol);
        }
        Recheck::Log(d) => out.decided(&d),
        Recheck::Clear => {}
    }
    let bytes = entry.render(q.id, q.question(), q.edns.is_some(), Instant::now());
    finish_forwarded(bytes, q, entry, out.protocol)
}

/// The last touches on a forwarded or cached answer: header bits from the
/// client's query, an OPT for an EDNS client when the upstream sent none,
/// and the transport's size. A few byte writes; no allocation unless an OPT
/// is added or the answer is truncated.
fn finish_forwarded(
    mut bytes: Vec<u8>,
    q: &Question<'_>,
    entry: &Entry,
    protocol: Protocol,
) -> Vec<u8> {
    let (b2, b3) = q.flag_bytes();
    wire::set_forwarded_flags(&mut bytes, b2, b3, q.dnssec_ok());
    if let Some(e) = q.edns {
        // An answer relayed with odd OPTs (two, or one outside the
        // additional section) has no usable `layout.opt` but must not get a
        // third: the records themselves say whether one is there.
        let had_opt = entry.layout.opt.is_some() || wire::any_opt(&bytes);
        wire::ensure_opt(&mut bytes, had_opt, e.dnssec_ok);
    }
    fit(bytes, q, protocol)
}

/// The blocked answer, its EDE naming the rule and list (and the CNAME
/// target or address, when the block came from a re-check).
fn blocked(runtime: &Runtime, q: &Question<'_>, d: &Decision<'_>, via: Option<&str>) -> Vec<u8> {
    let c = &runtime.policy.config;
    // `_dns.resolver.arpa` SVCB with encrypted listeners: cutoff's own.
    if let Some(records) = d.rule.and_then(|(r, _)| c.designation(r, q)) {
        return answer::designation(q, records, c.blocking.ttl);
    }
    let rule = d
        .rule
        .and_then(|(r, _)| c.rules.get(r))
        .map_or("?", |r| r.name.as_str());
    let (list, entry) = d.matched.map_or(("?", &b""[..]), |m| {
        (
            c.lists.get(m.list).map_or("?", |l| l.name.as_str()),
            m.entry,
        )
    });
    let why = |t: &mut String| answer::why(t, rule, list, entry, via);
    answer::blocked(q, &runtime.policy.blocking_for(d), entry, &why)
}

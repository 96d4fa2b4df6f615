//! The fast path of [`super::prepare`]: a plain query (one question, no
//! compression, at most an OPT) is decided and answered from its bytes, with
//! no `Message` and no allocation but the answer. Cache misses and answers
//! that need the `Message` builders go back to the full path, which gives
//! the same answers (`answer::tests::fast_answers_equal_the_message_answers`).

use std::net::SocketAddr;
use std::time::Instant;

use hickory_proto::rr::RecordType;

use super::{Outcome, Path, Protocol, Recheck, finish_forwarded, recheck};
use crate::answer;
use crate::cache::{Key, Lookup};
use crate::config::Denied;
use crate::matcher::NameBuf;
use crate::policy::Verdict;
use crate::reload::State;
use crate::wire;

/// The fast path: decide and answer a plain query from its bytes; the
/// answer (`Some(None)`: send nothing), or `None` for the full path (a cache
/// miss, or an answer that needs the `Message` builders).
pub(super) fn answer(
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
        (Protocol::Tcp | Protocol::Dot, _) => usize::from(u16::MAX),
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
            let blocking = runtime.policy.blocking_for(&decision);
            Some(answer::fast::blocked(q, &blocking, zone_at, &why))
        }
        // ANY is answered here and never forwarded (RFC 8482; amplification).
        Verdict::Allow | Verdict::Log if q.qtype == u16::from(RecordType::ANY) => {
            out.path = Path::Local;
            Some(answer::fast::any(q, c.blocking.ttl))
        }
        Verdict::Allow | Verdict::Log => {
            let dnssec_ok = q.edns.is_some_and(|e| e.dnssec_ok);
            let flags = super::flags(q.packet, dnssec_ok);
            let key = Key::new(q.labels(), q.qtype, q.qclass, flags)?;
            let Lookup::Hit(entry) = state.cache.get(&key, Instant::now()) else {
                return None;
            };
            // An answer that a CNAME target or address turns into a block is
            // built by the full path (rare; it re-decides the same way).
            out.decided(&decision);
            let allowed_by_rule = decision.verdict == Verdict::Allow && decision.rule.is_some();
            match recheck(
                &runtime,
                client,
                &entry,
                Some(decision.verdict),
                allowed_by_rule,
                out.time,
            ) {
                Recheck::Block(..) => return None,
                Recheck::Log(d) => out.decided(&d),
                Recheck::Clear => {}
            }
            out.path = Path::Cached;
            out.upstream = Some(entry.upstream);
            let bytes = entry.render(q.id, q.question(), q.edns.is_some(), Instant::now());
            let edns = q.edns.map(|e| e.dnssec_ok);
            let bytes = finish_forwarded(bytes, q.packet, &entry, edns, max);
            out.runtime = Some(runtime);
            return Some(Some(bytes));
        }
    };
    out.decided(&decision);
    let bytes = bytes.map(|b| {
        if b.len() > max {
            wire::truncate(&b, q.question_end, q.edns.map(|e| e.dnssec_ok))
        } else {
            b
        }
    });
    out.runtime = Some(runtime);
    Some(bytes)
}

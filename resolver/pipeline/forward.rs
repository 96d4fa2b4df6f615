//! The forwarding step of a query, after [`super::prepare`] found no
//! cached answer: the query sent upstream, the shared fetch through the
//! cache, and what the client gets when it fails or when the cache cannot
//! read the answer (relayed uncached, never SERVFAIL).

use std::net::IpAddr;
use std::time::Instant;

use hickory_proto::op::ResponseCode;

use super::{Answered, Outcome, Pending, fit, respond};
use crate::answer;
use crate::cache::Entry;
use crate::query::Question;
use crate::runtime::State;
use crate::wire;

/// Forwards a cache miss (shared with identical misses in flight) and
/// answers from what comes back.
pub async fn finish(state: &State, p: Pending) -> (Option<Vec<u8>>, Outcome) {
    let Pending {
        runtime,
        packet,
        key,
        mut outcome,
    } = p;
    // `prepare` read these bytes already: they read the same way again.
    let Some(query) = wire::parse_query(&packet) else {
        return (None, outcome);
    };
    let upstream_query = upstream_query(&query);
    let max_ttl = runtime.policy.config.serve.cache_max_ttl;
    let upstreams = &runtime.upstreams;
    let handles = &runtime.counters.upstream;
    // Why forwarding failed, for the EDE text (only the query that ran the
    // fetch sees it; those that shared it get the short text).
    let failure = std::sync::Mutex::new(None);
    let entry = state
        .cache
        .fetch(&key, || async {
            match upstreams.forward(&upstream_query, handles).await {
                Ok(a) => match Entry::take(a.bytes, a.endpoint, max_ttl) {
                    Ok(entry) => Some(entry),
                    Err(bytes) => opaque_entry(bytes, a.endpoint),
                },
                Err(e) => {
                    let (ede, text) = failed(&e);
                    if let Ok(mut f) = failure.lock() {
                        *f = Some((ede, text));
                    }
                    None
                }
            }
        })
        .await;
    // Every upstream failed: an answer that expired less than
    // `cache.stale_for` ago is served stale (RFC 8767) rather than SERVFAIL.
    let entry = match entry {
        Some(e) => Some((e, Answered::Forwarded)),
        None => state
            .cache
            .stale(&key, Instant::now())
            .map(|e| (e, Answered::Cached)),
    };
    let bytes = match entry {
        Some((entry, answered)) => {
            outcome.answered = answered;
            outcome.upstream = Some(entry.upstream);
            respond(&runtime, &query, &entry, &mut outcome)
        }
        None => {
            outcome.answered = Answered::Failed;
            let (ede, text) = failure
                .into_inner()
                .ok()
                .flatten()
                .unwrap_or((answer::Ede::NoReachableAuthority, SHARED_FAILURE.into()));
            fit(
                answer::unreachable(&query, ede, &text),
                &query,
                outcome.protocol,
            )
        }
    };
    (Some(bytes), outcome)
}

/// The EDE text of a query whose identical twin ran the forwarding.
const SHARED_FAILURE: &str = "no upstream answered (asked once for identical queries)";

/// The EDE code and text for a failed forward: 22 when the budget ran out,
/// 23 when every upstream failed at once; the text names each upstream and
/// how it failed (timeout, refused, unreachable).
fn failed(e: &crate::upstream::ForwardError) -> (answer::Ede, String) {
    tracing::debug!(error = %e, "forwarding failed");
    let ede = if e.timed_out() {
        answer::Ede::NoReachableAuthority
    } else {
        answer::Ede::NetworkError
    };
    (ede, e.to_string())
}

/// An upstream answer the cache declined to read (a record it cannot
/// parse): relayed as it is, never cached. Its CNAME targets and A/AAAA
/// addresses are read from the bytes, so the response policy still sees
/// them.
fn opaque_entry(bytes: Vec<u8>, upstream: usize) -> Option<Entry> {
    let layout = wire::walk(&bytes)?;
    let rcode = ResponseCode::from_low(wire::rcode(&bytes));
    let mut targets = Vec::new();
    let mut addresses = Vec::new();
    // The cache's record reader, more forgiving here: an address of the
    // wrong length is skipped instead of refusing the answer.
    for r in wire::records(&bytes)?
        .iter()
        .filter(|r| r.section == wire::Section::Answer)
    {
        let rdata = bytes.get(r.rdata.clone())?;
        match (r.rtype, rdata.len()) {
            (1, 4) => addresses.push(IpAddr::from(<[u8; 4]>::try_from(rdata).ok()?)),
            (28, 16) => addresses.push(IpAddr::from(<[u8; 16]>::try_from(rdata).ok()?)),
            (5, _) => targets.push(wire::name_text(&bytes, r.rdata.start, r.rdata.end)?),
            _ => {}
        }
    }
    Some(Entry {
        bytes: bytes.into_boxed_slice(),
        layout,
        stored: Instant::now(),
        ttl: std::time::Duration::ZERO,
        rcode,
        targets: targets.into_boxed_slice(),
        addresses: addresses.into_boxed_slice(),
        upstream,
    })
}

/// The query sent upstream, written from the client's bytes: the question
/// name lowercased (so identical questions share one upstream query and one
/// cache entry), RD set, CD and AD as the client sent them (RFC 6840 §5.7:
/// AD=1 asks a validating upstream for the AD bit), EDNS with our UDP size
/// and the client's DO bit (left out for upstreams that reject EDNS, see
/// `upstream`). The ID is 0: `upstream` gives every try a random one.
fn upstream_query(q: &Question<'_>) -> Vec<u8> {
    let (_, b3) = q.flag_bytes();
    let mut out = Vec::with_capacity(q.question_end + 11);
    out.extend_from_slice(&[0, 0, 0x01, b3 & 0x30, 0, 1, 0, 0, 0, 0, 0, 1]);
    // Label lengths are at most 63, below b'A': only letters change.
    let name = q.packet.get(12..q.name_end).unwrap_or_default();
    out.extend(name.iter().map(u8::to_ascii_lowercase));
    out.extend_from_slice(q.packet.get(q.name_end..q.question_end).unwrap_or_default());
    out.extend_from_slice(&[0, 0, 41]);
    out.extend_from_slice(&crate::wire::MAX_UDP.to_be_bytes());
    out.extend_from_slice(&[0, 0, if q.dnssec_ok() { 0x80 } else { 0 }, 0, 0, 0]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_query_is_the_clients_question_lowercased_with_our_edns() {
        let mut q = vec![0xab, 0xcd, 0x00, 0x30, 0, 1, 0, 0, 0, 0, 0, 1];
        q.extend_from_slice(b"\x03WwW\x07ExAmple\x00\x00\x41\x00\x01");
        q.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0x80, 0, 0, 4, 0, 10, 0, 0]);
        let view = wire::parse_query(&q).unwrap();
        let up = upstream_query(&view);
        let m = hickory_proto::op::Message::from_vec(&up).unwrap();
        assert!(
            m.metadata.recursion_desired,
            "RD=1 whatever the client sent"
        );
        assert!(m.metadata.checking_disabled && m.metadata.authentic_data);
        assert_eq!(m.queries[0].name().to_ascii(), "www.example.");
        assert_eq!(u16::from(m.queries[0].query_type()), 0x41, "QTYPE kept");
        let edns = m.edns.unwrap();
        assert_eq!(edns.max_payload(), crate::wire::MAX_UDP);
        assert!(edns.flags().dnssec_ok);
        assert!(
            edns.options().as_ref().is_empty(),
            "no client option goes upstream"
        );
    }

    #[test]
    fn an_opaque_answer_still_shows_its_cname_target_and_addresses() {
        // alias.example.com: CNAME (compressed) to s05.upd.kaspersky.com,
        // an A for it, and a NULL record with no RDATA.
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0];
        m.extend_from_slice(b"\x05alias\x07example\x03com\x00\x00\x01\x00\x01");
        let target_at = m.len() + 12;
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 1, 0x2c, 0, 20]);
        m.extend_from_slice(b"\x03S05\x03upd\x09kaspersky\xc0\x1a");
        assert_eq!(m.len(), target_at + 20);
        let ptr = u8::try_from(target_at).unwrap();
        m.extend_from_slice(&[0xc0, ptr, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4, 203, 0, 113, 5]);
        m.extend_from_slice(&[0xc0, 12, 0, 10, 0, 1, 0, 0, 1, 0x2c, 0, 0]);
        let e = opaque_entry(m, 0).unwrap();
        assert_eq!(&*e.targets, &[Box::from(&b"s05.upd.kaspersky.com"[..])]);
        assert_eq!(&*e.addresses, &["203.0.113.5".parse::<IpAddr>().unwrap()]);
        assert!(e.ttl.is_zero(), "never cached");
        let mut looped = vec![0x12, 0x34, 0x81, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0xc0, 12];
        looped.push(0);
        assert!(
            wire::name_text(&looped, 12, looped.len()).is_none(),
            "a pointer loop ends"
        );
    }
}

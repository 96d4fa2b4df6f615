//! The hot-path builders: answers written straight from a plain query's
//! bytes ([`crate::wire::Query`]), no parse and no allocation but the
//! output. They produce what the `Message`-based builders in the parent
//! module produce (a test compares them).

use std::fmt::Write as _;

use super::{Ede, MAX_EDE_TEXT, MAX_UDP};
use crate::config::{AnswerMode, Blocking};
use crate::wire::Query;

const MNAME: &[u8] = b"\x06cutoff\x07invalid\x00";

/// Header and question of a reply to `q` with `rcode` and the counts.
fn start(q: &Query<'_>, rcode: u8, an: u16, ns: u16, capacity: usize) -> Vec<u8> {
    let p = q.packet;
    let mut out = Vec::with_capacity(capacity);
    out.extend_from_slice(&p[0..2]);
    out.push(0x80 | (p[2] & 0x01));
    out.push(0x80 | (p[3] & 0x10) | (rcode & 0x0f));
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&an.to_be_bytes());
    out.extend_from_slice(&ns.to_be_bytes());
    out.extend_from_slice(&[0, u8::from(q.edns.is_some())]);
    out.extend_from_slice(q.question());
    out
}

/// The OPT record mirroring the client's (only when it sent one), with
/// an Extended DNS Error whose text `text` writes.
/// Writes an EDE text into the buffer it is given.
type Text<'a> = &'a dyn Fn(&mut String);

fn opt(out: &mut Vec<u8>, q: &Query<'_>, ede: Option<(Ede, Text<'_>)>) {
    let Some(e) = q.edns else { return };
    out.extend_from_slice(&[0, 0, 41]);
    out.extend_from_slice(&MAX_UDP.to_be_bytes());
    out.extend_from_slice(&[0, 0, if e.dnssec_ok { 0x80 } else { 0 }, 0]);
    let Some((code, text)) = ede else {
        out.extend_from_slice(&[0, 0]);
        return;
    };
    let mut t = String::new();
    text(&mut t);
    let mut cut = t.len().min(MAX_EDE_TEXT);
    while !t.is_char_boundary(cut) {
        cut -= 1;
    }
    let t = &t.as_bytes()[..cut];
    let optlen = 4 + 2 + t.len();
    out.extend_from_slice(&u16::try_from(optlen).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(&[0, 15]);
    out.extend_from_slice(&u16::try_from(2 + t.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(&(code as u16).to_be_bytes());
    out.extend_from_slice(t);
}

/// A record whose owner is a compression pointer.
fn record_head(out: &mut Vec<u8>, owner: usize, rtype: u16, ttl: u32, rdlen: usize) {
    let ptr = 0xc000 | u16::try_from(owner).unwrap_or(12);
    out.extend_from_slice(&ptr.to_be_bytes());
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&u16::try_from(rdlen).unwrap_or(0).to_be_bytes());
}

fn soa(out: &mut Vec<u8>, zone_at: usize, ttl: u32) {
    // RDATA: mname, rname ("blocked" + a pointer to mname), 5 numbers.
    let rdlen = MNAME.len() + 8 + 2 + 20;
    record_head(out, zone_at, 6, ttl, rdlen);
    let mname_at = out.len();
    out.extend_from_slice(MNAME);
    out.extend_from_slice(b"\x07blocked");
    out.extend_from_slice(&(0xc000 | u16::try_from(mname_at).unwrap_or(0)).to_be_bytes());
    for n in [1u32, 3600, 600, 86400, ttl] {
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// The blocked answer. `zone_at` is where, in the question name, the
/// matched entry starts (the SOA's owner); `why` writes the EDE text.
pub fn blocked(q: &Query<'_>, b: &Blocking, zone_at: usize, why: &dyn Fn(&mut String)) -> Vec<u8> {
    let zone = 12 + zone_at;
    let with_soa = |rcode: u8| {
        let mut o = start(q, rcode, 0, 1, 160);
        soa(&mut o, zone, b.ttl);
        o
    };
    let mut out = match (b.answer, q.qtype) {
        (AnswerMode::NxDomain, _) => with_soa(3),
        (AnswerMode::NoData, _) => with_soa(0),
        (AnswerMode::Refused, _) => start(q, 5, 0, 0, 96),
        (AnswerMode::Sinkhole, 1) => {
            let mut o = start(q, 0, 1, 0, 128);
            record_head(&mut o, 12, 1, b.ttl, 4);
            o.extend_from_slice(&b.sinkhole_ipv4.octets());
            o
        }
        (AnswerMode::Sinkhole, 28) => {
            let mut o = start(q, 0, 1, 0, 128);
            record_head(&mut o, 12, 28, b.ttl, 16);
            o.extend_from_slice(&b.sinkhole_ipv6.octets());
            o
        }
        (AnswerMode::Sinkhole, _) => with_soa(0),
    };
    opt(&mut out, q, Some((Ede::Blocked, why)));
    out
}

/// REFUSED for a client outside `access`.
pub fn refused(q: &Query<'_>) -> Vec<u8> {
    let mut out = start(q, 5, 0, 0, 96);
    opt(
        &mut out,
        q,
        Some((Ede::Prohibited, &|t: &mut String| {
            t.push_str("client not allowed to use this resolver");
        })),
    );
    out
}

/// The RFC 8482 answer to ANY.
pub fn any(q: &Query<'_>, ttl: u32) -> Vec<u8> {
    let mut out = start(q, 0, 1, 0, 96);
    record_head(&mut out, 12, 13, ttl, 9);
    out.extend_from_slice(b"\x07RFC8482\x00");
    opt(&mut out, q, None);
    out
}

/// The EDE text of a blocked answer.
pub fn why(t: &mut String, rule: &str, list: &str, entry: &[u8]) {
    let _ = write!(
        t,
        "blocked by rule {rule} (list {list}, entry {})",
        String::from_utf8_lossy(entry)
    );
}

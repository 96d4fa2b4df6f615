//! Answers cutoff makes itself, written as bytes straight from the
//! query's question view: blocked names (NXDOMAIN + SOA, NODATA, REFUSED or
//! sinkhole addresses, each with an Extended DNS Error), refusals, upstream
//! failures, RFC 8482 answers to ANY, BADVERS and protocol errors.
//!
//! Sits at the end of the query flow for everything that is not forwarded.
//! Every answer mirrors the client's EDNS (an OPT only when the query had
//! one, RFC 6891) and keeps its ID, opcode, question and RD/CD flags. These
//! are the only builders: hickory's `Message` survives only as the test
//! oracle that reads what they write (`tests.rs`).

use std::fmt::Write as _;

use crate::config::{AnswerMode, Blocking};
use crate::query::Question;
use crate::wire::MAX_UDP;

/// Extended DNS Error codes we send (RFC 8914).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ede {
    /// 15: the name is blocked by policy.
    Blocked = 15,
    /// 18: the client may not use this resolver.
    Prohibited = 18,
    /// 22: no upstream answered within the budget.
    NoReachableAuthority = 22,
    /// 23: every upstream failed at once (refused, unreachable).
    NetworkError = 23,
    /// 21: the query type is not supported (ANY).
    NotSupported = 21,
}

/// Longest EDE text we send (keeps blocked answers well inside 512 bytes).
const MAX_EDE_TEXT: usize = 200;

/// Response codes cutoff writes itself.
pub mod rcode {
    /// NOERROR.
    pub const NOERROR: u8 = 0;
    /// FORMERR: the query could not be read.
    pub const FORMERR: u8 = 1;
    /// SERVFAIL: no upstream answered.
    pub const SERVFAIL: u8 = 2;
    /// NXDOMAIN.
    pub const NXDOMAIN: u8 = 3;
    /// NOTIMP: an opcode cutoff does not serve.
    pub const NOTIMP: u8 = 4;
    /// REFUSED.
    pub const REFUSED: u8 = 5;
}

const MNAME: &[u8] = b"\x06cutoff\x07invalid\x00";

/// Writes an EDE text into the buffer it is given (only called when the
/// client speaks EDNS, so nothing is formatted for the others).
pub type Text<'a> = &'a dyn Fn(&mut String);

/// Header and question of a reply to `q` with `rcode` and the counts: the
/// ID, opcode, RD and CD of the query, RA=1 (cutoff recurses for its
/// clients), AA=0 and AD=0 (cutoff is neither the authority nor a
/// validator).
fn start(q: &Question<'_>, rcode: u8, an: u16, ns: u16, capacity: usize) -> Vec<u8> {
    let (b2, b3) = q.flag_bytes();
    let mut out = Vec::with_capacity(capacity);
    out.extend_from_slice(&q.id.to_be_bytes());
    out.push(0x80 | ((q.opcode & 0x0f) << 3) | (b2 & 0x01));
    out.push(0x80 | (b3 & 0x10) | (rcode & 0x0f));
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&an.to_be_bytes());
    out.extend_from_slice(&ns.to_be_bytes());
    out.extend_from_slice(&[0, u8::from(q.edns.is_some())]);
    out.extend_from_slice(q.question());
    out
}

/// The OPT record mirroring the client's (only when it sent one): our UDP
/// size, version 0, `ext_rcode` (the upper rcode bits), DO echoed, and an
/// Extended DNS Error whose text `text` writes.
fn opt(out: &mut Vec<u8>, q: &Question<'_>, ext_rcode: u8, ede: Option<(Ede, Text<'_>)>) {
    let Some(e) = q.edns else { return };
    out.extend_from_slice(&[0, 0, 41]);
    out.extend_from_slice(&MAX_UDP.to_be_bytes());
    out.extend_from_slice(&[ext_rcode, 0, if e.dnssec_ok { 0x80 } else { 0 }, 0]);
    let Some((code, text)) = ede else {
        out.extend_from_slice(&[0, 0]);
        return;
    };
    let mut t = String::new();
    text(&mut t);
    let mut cut = t.len().min(MAX_EDE_TEXT);
    while !t.is_char_boundary(cut) {
        cut = cut.saturating_sub(1);
    }
    let t = t.as_bytes().get(..cut).unwrap_or_default();
    // At most 200 bytes of text: both lengths fit in a u16.
    let len = |n: usize| u16::try_from(n).unwrap_or(0).to_be_bytes();
    out.extend_from_slice(&len(4 + 2 + t.len()));
    out.extend_from_slice(&[0, 15]);
    out.extend_from_slice(&len(2 + t.len()));
    out.extend_from_slice(&(code as u16).to_be_bytes());
    out.extend_from_slice(t);
}

/// An owner name: a compression pointer into the message, or the name
/// written out (a CNAME target's zone is not in the question).
#[derive(Clone, Copy)]
enum Owner<'a> {
    At(usize),
    Text(&'a [u8]),
}

fn owner(out: &mut Vec<u8>, o: Owner<'_>) {
    match o {
        Owner::At(at) => {
            let ptr = 0xc000 | u16::try_from(at).unwrap_or(12);
            out.extend_from_slice(&ptr.to_be_bytes());
        }
        Owner::Text(text) => {
            // Dotted text from a list entry; a label that cannot be written
            // (empty or longer than 63) makes it the root.
            let start = out.len();
            for label in text.split(|&b| b == b'.') {
                match u8::try_from(label.len()) {
                    Ok(len @ 1..=63) => {
                        out.push(len);
                        out.extend_from_slice(label);
                    }
                    _ => {
                        out.truncate(start);
                        break;
                    }
                }
            }
            if out.len().saturating_sub(start) > 254 {
                out.truncate(start);
            }
            out.push(0);
        }
    }
}

fn record_head(out: &mut Vec<u8>, o: Owner<'_>, rtype: u16, ttl: u32, rdlen: usize) {
    owner(out, o);
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&u16::try_from(rdlen).unwrap_or(0).to_be_bytes());
}

/// A synthetic SOA for the blocked zone, so resolvers and stubs cache the
/// negative answer (RFC 2308) for `ttl` seconds.
fn soa(out: &mut Vec<u8>, zone: Owner<'_>, ttl: u32) {
    // RDATA: mname, rname ("blocked" + a pointer to mname), 5 numbers.
    let rdlen = MNAME.len() + 8 + 2 + 20;
    record_head(out, zone, 6, ttl, rdlen);
    let mname_at = out.len();
    out.extend_from_slice(MNAME);
    out.extend_from_slice(b"\x07blocked");
    out.extend_from_slice(&(0xc000 | u16::try_from(mname_at).unwrap_or(0)).to_be_bytes());
    for n in [1u32, 3600, 600, 86400, ttl] {
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Where, in the question, the name `zone` (dotted text) starts: the
/// offset of the first label of the question name's suffix that spells it.
fn zone_in_question(q: &Question<'_>, zone: &[u8]) -> Option<usize> {
    let mut at = 12;
    loop {
        let wire = q.packet.get(at..q.name_end)?;
        if spells(wire, zone) {
            return Some(at);
        }
        let len = usize::from(*wire.first()?);
        if len == 0 {
            return None;
        }
        at += 1 + len;
    }
}

/// Whether wire-format labels (ending in the root label) spell `text`,
/// case-insensitively. Allocates nothing.
fn spells(wire: &[u8], text: &[u8]) -> bool {
    let mut rest = text;
    let mut at = 0;
    loop {
        let Some(&len) = wire.get(at) else {
            return false;
        };
        if len == 0 {
            return rest.is_empty();
        }
        if at > 0 {
            match rest.split_first() {
                Some((b'.', r)) => rest = r,
                _ => return false,
            }
        }
        let len = usize::from(len);
        let (Some(label), Some(head)) = (wire.get(at + 1..at + 1 + len), rest.get(..len)) else {
            return false;
        };
        if !label.eq_ignore_ascii_case(head) {
            return false;
        }
        rest = rest.get(len..).unwrap_or_default();
        at += 1 + len;
    }
}

/// The blocked answer. `zone` is the list entry that matched (the SOA
/// owner, pointing into the question when the question is under it); `why`
/// writes the EDE text.
pub fn blocked(q: &Question<'_>, b: &Blocking, zone: &[u8], why: Text<'_>) -> Vec<u8> {
    let zone = zone_in_question(q, zone).map_or(Owner::Text(zone), Owner::At);
    let with_soa = |rcode: u8| {
        let mut o = start(q, rcode, 0, 1, 160);
        soa(&mut o, zone, b.ttl);
        o
    };
    let mut out = match (b.answer, q.qtype) {
        (AnswerMode::NxDomain, _) => with_soa(rcode::NXDOMAIN),
        (AnswerMode::NoData, _) => with_soa(rcode::NOERROR),
        (AnswerMode::Refused, _) => start(q, rcode::REFUSED, 0, 0, 96),
        (AnswerMode::Sinkhole, 1) => {
            let mut o = start(q, rcode::NOERROR, 1, 0, 128);
            record_head(&mut o, Owner::At(12), 1, b.ttl, 4);
            o.extend_from_slice(&b.sinkhole_ipv4.octets());
            o
        }
        (AnswerMode::Sinkhole, 28) => {
            let mut o = start(q, rcode::NOERROR, 1, 0, 128);
            record_head(&mut o, Owner::At(12), 28, b.ttl, 16);
            o.extend_from_slice(&b.sinkhole_ipv6.octets());
            o
        }
        (AnswerMode::Sinkhole, _) => with_soa(rcode::NOERROR),
    };
    opt(&mut out, q, 0, Some((Ede::Blocked, why)));
    out
}

/// REFUSED for a client outside `access`.
pub fn refused(q: &Question<'_>) -> Vec<u8> {
    let mut out = start(q, rcode::REFUSED, 0, 0, 96);
    let text = |t: &mut String| t.push_str("client not allowed to use this resolver");
    opt(&mut out, q, 0, Some((Ede::Prohibited, &text)));
    out
}

/// SERVFAIL when no upstream answered: EDE 22 when the budget ran out, 23
/// when every upstream failed at once; `detail` says how each failed.
pub fn unreachable(q: &Question<'_>, code: Ede, detail: &str) -> Vec<u8> {
    let mut out = start(q, rcode::SERVFAIL, 0, 0, 256);
    opt(
        &mut out,
        q,
        0,
        Some((code, &|t: &mut String| t.push_str(detail))),
    );
    out
}

/// The minimal RFC 8482 answer to QTYPE=ANY: one HINFO "RFC8482" record.
/// ANY is never forwarded (amplification).
pub fn any(q: &Question<'_>, ttl: u32) -> Vec<u8> {
    let mut out = start(q, rcode::NOERROR, 1, 0, 96);
    record_head(&mut out, Owner::At(12), 13, ttl, 9);
    out.extend_from_slice(b"\x07RFC8482\x00");
    opt(&mut out, q, 0, None);
    out
}

/// An error answer (FORMERR, NOTIMP, ...) with the question and no
/// records. NOTIMP (an opcode cutoff does not serve) says nothing about
/// recursion: no RA.
pub fn error(q: &Question<'_>, code: u8) -> Vec<u8> {
    let mut out = start(q, code, 0, 0, 64);
    if code == rcode::NOTIMP
        && let Some(b3) = out.get_mut(3)
    {
        *b3 &= 0x7f;
    }
    opt(&mut out, q, 0, None);
    out
}

/// BADVERS (RFC 6891 §6.1.3) to a query with an EDNS version above 0: the
/// question, no records, an OPT of version 0 carrying the upper rcode bits
/// (BADVERS is 16: 0 in the header, 1 in the OPT's extended-rcode byte).
pub fn badvers(q: &Question<'_>) -> Vec<u8> {
    let mut out = start(q, rcode::NOERROR, 0, 0, 64);
    opt(&mut out, q, 1, None);
    out
}

/// FORMERR or NOTIMP for a message whose header was readable but whose body
/// was not: header only, the ID and opcode kept (`header` is its first 4
/// bytes).
pub fn header_only(header: [u8; 4], code: u8) -> Vec<u8> {
    let [id0, id1, b2, _] = header;
    // RA=1 as on every answer, but NOTIMP says nothing about recursion.
    let ra = if code == rcode::NOTIMP { 0 } else { 0x80 };
    let mut out = vec![id0, id1, 0x80 | (b2 & 0x78), ra | (code & 0x0f)];
    out.extend_from_slice(&[0; 8]);
    out
}

/// The EDE text of a blocked answer (`via`: the CNAME target or answer
/// address that a re-check blocked).
pub fn why(t: &mut String, rule: &str, list: &str, entry: &[u8], via: Option<&str>) {
    let _ = write!(
        t,
        "blocked by rule {rule} (list {list}, entry {})",
        String::from_utf8_lossy(entry)
    );
    if let Some(via) = via {
        let _ = write!(t, " {via}");
    }
}

#[cfg(test)]
mod tests;

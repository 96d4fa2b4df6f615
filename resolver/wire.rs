//! Byte-level reading and writing of DNS messages: the question view of
//! every query ([`parse_query`], and [`canonical`] for the rare query it
//! declines), the offsets of every TTL (to age cached answers in place), the
//! OPT record (to strip it for clients that sent none), and small header
//! edits.
//!
//! Sits under `cache` and `pipeline`: a query is read once when it arrives,
//! a forwarded answer is walked once when it comes back; serving it again
//! only patches bytes.
//!
//! Every byte is read with a checked accessor (`get`), never an index that
//! could panic: the release profile aborts on panic, and these bytes come
//! from the network.

#![deny(clippy::indexing_slicing)]

mod question;
mod records;

pub use question::{Declined, canonical, parse_query};
pub use records::{Record, Section, name_text, records};

/// The UDP payload size we advertise and never exceed (DNS Flag Day 2020).
pub const MAX_UDP: u16 = 1232;

/// Offsets into one message, found by [`walk`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// End of the question section.
    pub question_end: usize,
    /// Offset of each TTL field outside the OPT record.
    pub ttls: Vec<u16>,
    /// Byte range of the OPT record, if any.
    pub opt: Option<(usize, usize)>,
}

/// The big-endian u16 at `i`, when the message holds it.
pub(crate) fn u16_at(msg: &[u8], i: usize) -> Option<u16> {
    let b = msg.get(i..i.checked_add(2)?)?;
    Some(u16::from_be_bytes(b.try_into().ok()?))
}

/// Writes `bytes` at `i`; nothing when the message is too short.
fn put(msg: &mut [u8], i: usize, bytes: &[u8]) {
    if let Some(dst) = i
        .checked_add(bytes.len())
        .and_then(|end| msg.get_mut(i..end))
    {
        dst.copy_from_slice(bytes);
    }
}

/// A record's TYPE and RDLENGTH from its 10 fixed bytes after the owner.
fn type_and_rdlen(fixed: &[u8]) -> Option<(u16, usize)> {
    Some((u16_at(fixed, 0)?, usize::from(u16_at(fixed, 8)?)))
}

/// Walks a message's sections. `None` when it is malformed or truncated.
pub fn walk(msg: &[u8]) -> Option<Layout> {
    walk_with(msg, true)
}

/// [`walk`] without the TTL offsets (`ttls` left empty), so without an
/// allocation: for the callers that only check a message or want its
/// question's end or its OPT.
pub fn outline(msg: &[u8]) -> Option<Layout> {
    walk_with(msg, false)
}

fn walk_with(msg: &[u8], with_ttls: bool) -> Option<Layout> {
    if msg.len() < 12 || msg.len() > usize::from(u16::MAX) {
        return None;
    }
    let count = |i: usize| u16_at(msg, i).map(usize::from);
    let (qd, an, ns, ar) = (count(4)?, count(6)?, count(8)?, count(10)?);
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(msg, at)? + 4;
    }
    if at > msg.len() {
        return None;
    }
    // Room for every record's TTL (one slot too many with an OPT), so the
    // offsets are not copied to fit when an answer is cached. A record takes
    // 11 bytes at least: counts the message cannot hold reserve nothing.
    let records = an + ns + ar;
    let room = if with_ttls {
        records.min(msg.len().saturating_sub(at) / 11)
    } else {
        0
    };
    let mut layout = Layout {
        question_end: at,
        ttls: Vec::with_capacity(room),
        opt: None,
    };
    for _ in 0..records {
        let start = at;
        at = skip_name(msg, at)?;
        let (rtype, rdlen) = type_and_rdlen(msg.get(at..at + 10)?)?;
        let end = at + 10 + rdlen;
        if end > msg.len() {
            return None;
        }
        if rtype == 41 {
            layout.opt = Some((start, end));
        } else {
            let ttl = u16::try_from(at + 4).ok()?;
            if with_ttls {
                layout.ttls.push(ttl);
            }
        }
        at = end;
    }
    Some(layout)
}

/// Skips a (possibly compressed) name starting at `at`; returns the offset
/// after it.
pub(crate) fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *msg.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => {
                msg.get(at + 1)?;
                return Some(at + 2);
            }
            l if l & 0xc0 == 0 => at += 1 + usize::from(l),
            _ => return None,
        }
    }
}

/// Reads a TTL at `offset` (0 past the end: offsets come from [`walk`]).
pub fn ttl_at(msg: &[u8], offset: usize) -> u32 {
    offset
        .checked_add(4)
        .and_then(|end| msg.get(offset..end))
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_be_bytes)
}

/// Writes a TTL at `offset` (nothing past the end).
pub fn set_ttl_at(msg: &mut [u8], offset: usize, ttl: u32) {
    put(msg, offset, &ttl.to_be_bytes());
}

/// The message ID (0 for fewer than 2 bytes).
pub fn id(msg: &[u8]) -> u16 {
    u16_at(msg, 0).unwrap_or(0)
}

/// Sets the message ID.
pub fn set_id(msg: &mut [u8], id: u16) {
    put(msg, 0, &id.to_be_bytes());
}

/// Whether the TC flag is set.
pub fn truncated(msg: &[u8]) -> bool {
    msg.get(2).is_some_and(|b| b & 0x02 != 0)
}

/// The response code in the header (low 4 bits).
pub fn rcode(msg: &[u8]) -> u8 {
    msg.get(3).map_or(0, |b| b & 0x0f)
}

/// Adds `by` to the additional count (saturating, in either direction).
fn add_to_arcount(msg: &mut [u8], by: i32) {
    let ar = i32::from(u16_at(msg, 10).unwrap_or(0)).saturating_add(by);
    let ar = u16::try_from(ar.max(0)).unwrap_or(u16::MAX);
    put(msg, 10, &ar.to_be_bytes());
}

/// Removes the OPT record (for a client that sent no EDNS: RFC 6891 forbids
/// an OPT in the answer). Only done when the OPT is the last record, so no
/// compression pointer can point past it; otherwise `false`.
pub fn strip_opt(msg: &mut Vec<u8>, layout: &Layout) -> bool {
    match layout.opt {
        Some((start, end)) if end == msg.len() => {
            msg.truncate(start);
            add_to_arcount(msg, -1);
            true
        }
        Some(_) => false,
        None => true,
    }
}

/// A minimal truncated reply built from `msg`: its header with TC=1, its
/// question, no records; with an OPT advertising 1232 when `edns` is
/// `Some(dnssec_ok)`, DO echoed (RFC 3225).
pub fn truncate(msg: &[u8], question_end: usize, edns: Option<bool>) -> Vec<u8> {
    let mut out = msg.get(..question_end).unwrap_or(msg).to_vec();
    if let Some(b) = out.get_mut(2) {
        *b |= 0x02;
    }
    if let Some(counts) = out.get_mut(6..12) {
        counts.fill(0);
    }
    if let Some(dnssec_ok) = edns {
        push_opt(&mut out, dnssec_ok);
    }
    out
}

/// Appends an OPT record (1232 bytes, version 0, DO as given, no options)
/// and counts it.
fn push_opt(out: &mut Vec<u8>, dnssec_ok: bool) {
    out.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0]);
    out.extend_from_slice(&[if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
    add_to_arcount(out, 1);
}

/// Gives an answer for an EDNS client an OPT when the upstream sent none
/// (RFC 6891 §7: every reply to an EDNS query carries one).
pub fn ensure_opt(msg: &mut Vec<u8>, had_opt: bool, dnssec_ok: bool) {
    if !had_opt && msg.len() >= 12 {
        push_opt(msg, dnssec_ok);
    }
}

/// Whether any record of `msg` is an OPT, in any section; `true` as well
/// when the message cannot be walked, so that nothing is added to such a
/// message. Allocates nothing.
pub fn any_opt(msg: &[u8]) -> bool {
    let count = |i: usize| u16_at(msg, i).map(usize::from);
    let (Some(qd), Some(an), Some(ns), Some(ar)) = (count(4), count(6), count(8), count(10)) else {
        return true;
    };
    let mut at = 12;
    for _ in 0..qd {
        match skip_name(msg, at) {
            Some(end) => at = end + 4,
            None => return true,
        }
    }
    for _ in 0..an + ns + ar {
        let Some(end) = skip_name(msg, at) else {
            return true;
        };
        let Some((rtype, rdlen)) = msg.get(end..end + 10).and_then(type_and_rdlen) else {
            return true;
        };
        if rtype == 41 {
            return true;
        }
        at = end + 10 + rdlen;
        if at > msg.len() {
            return true;
        }
    }
    false
}

/// Sets the header bits of a forwarded or cached answer from the client's
/// query (`rd_byte`, `cd_byte`: its bytes 2 and 3), not from what the
/// upstream sent: RD and CD copied, RA=1 (cutoff recurses for its
/// clients), AA=0 (cutoff is not the authority), AD kept only when the
/// client asked with AD=1 or DO=1 (RFC 6840 §5.7-5.8), Z cleared.
pub fn set_forwarded_flags(msg: &mut [u8], query_byte2: u8, query_byte3: u8, dnssec_ok: bool) {
    let Some([b2, b3]) = msg.get_mut(2..4) else {
        return;
    };
    // Byte 2: QR opcode(4) AA TC RD. Byte 3: RA Z AD CD rcode(4).
    *b2 = (*b2 & 0xfa) | (query_byte2 & 0x01);
    let ad_wanted = dnssec_ok || query_byte3 & 0x20 != 0;
    let ad = if ad_wanted { *b3 & 0x20 } else { 0 };
    *b3 = 0x80 | ad | (query_byte3 & 0x10) | (*b3 & 0x0f);
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// example.com A? answered with one A record and an OPT, as bytes.
    fn sample() -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 1];
        m.extend_from_slice(b"\x07example\x03com\x00\x00\x01\x00\x01");
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4, 192, 0, 2, 1]);
        m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        m
    }

    #[test]
    fn walk_finds_ttls_and_the_opt_record() {
        let m = sample();
        let l = walk(&m).unwrap();
        assert_eq!(l.question_end, 29);
        assert_eq!(l.ttls, vec![35]);
        assert_eq!(ttl_at(&m, 35), 300);
        assert_eq!(l.opt, Some((45, 56)));
        assert!(
            l.ttls.capacity() <= 2,
            "one offset per record, reserved once"
        );
    }

    #[test]
    fn an_outline_is_the_walk_without_ttls_and_fails_where_the_walk_fails() {
        let m = sample();
        let (w, o) = (walk(&m).unwrap(), outline(&m).unwrap());
        assert_eq!((o.question_end, o.opt), (w.question_end, w.opt));
        assert!(
            o.ttls.is_empty() && o.ttls.capacity() == 0,
            "nothing allocated"
        );
        for bad in [&m[..40], &m[..30], &[0u8; 5][..]] {
            assert!(walk(bad).is_none() && outline(bad).is_none());
        }
    }

    #[test]
    fn record_counts_the_message_cannot_hold_fail_the_walk() {
        // 196,605 records claimed, room for two: the offsets reserved are
        // what the bytes can hold, and the walk fails at the third.
        let mut m = sample();
        m[6..12].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert!(walk(&m).is_none() && outline(&m).is_none());
    }

    #[test]
    fn stripping_the_opt_fixes_the_additional_count() {
        let mut m = sample();
        let l = walk(&m).unwrap();
        assert!(strip_opt(&mut m, &l));
        assert_eq!(m.len(), 45);
        assert_eq!(&m[10..12], &[0, 0]);
        assert!(walk(&m).unwrap().opt.is_none());
    }

    #[test]
    fn truncated_reply_keeps_the_question_and_sets_tc() {
        let m = sample();
        let t = truncate(&m, 29, Some(true));
        assert!(truncated(&t));
        let l = walk(&t).unwrap();
        assert!(l.ttls.is_empty());
        let (start, _) = l.opt.unwrap();
        assert_eq!(t[start + 7], 0x80, "DO is echoed");
        assert_eq!(&t[4..6], &[0, 1]);
        assert_eq!(&t[10..12], &[0, 1]);
    }

    #[test]
    fn forwarded_flags_come_from_the_query_not_the_upstream() {
        // Upstream: QR AA RD, RA=0 AD=1 CD=0 NXDOMAIN.
        let mut m = sample();
        m[2] = 0x85;
        m[3] = 0x23;
        // Query: RD=0, AD=0 CD=1, DO=0.
        set_forwarded_flags(&mut m, 0x00, 0x10, false);
        assert_eq!((m[2], m[3]), (0x80, 0x93));
        // Query: RD=1, AD=1: AD is kept.
        m[3] = 0x23;
        set_forwarded_flags(&mut m, 0x01, 0x20, false);
        assert_eq!((m[2], m[3]), (0x81, 0xa3));
        // DO=1 keeps it too.
        set_forwarded_flags(&mut m, 0x01, 0x00, true);
        assert_eq!(m[3], 0xa3);
    }

    #[test]
    fn malformed_messages_are_rejected() {
        let m = sample();
        assert!(walk(&m[..40]).is_none());
        assert!(walk(&[0; 5]).is_none());
        let mut bad = m.clone();
        bad[12] = 0x80; // reserved label type
        assert!(walk(&bad).is_none());
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod any_opt_tests {
    use super::any_opt;

    /// A reply to `a.` IN A with `extra` records appended (counted in ARCOUNT).
    fn reply(additional: &[&[u8]]) -> Vec<u8> {
        let mut m = vec![
            0,
            1,
            0x81,
            0x80,
            0,
            1,
            0,
            0,
            0,
            0,
            0,
            additional.len() as u8,
        ];
        m.extend_from_slice(&[1, b'a', 0, 0, 1, 0, 1]);
        for r in additional {
            m.extend_from_slice(r);
        }
        m
    }

    #[test]
    fn an_opt_anywhere_is_found_and_a_message_without_one_is_not() {
        let opt: &[u8] = &[0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0];
        let a: &[u8] = &[0, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1];
        assert!(!any_opt(&reply(&[])));
        assert!(!any_opt(&reply(&[a])));
        assert!(any_opt(&reply(&[a, opt])));
        assert!(any_opt(&reply(&[opt, opt])));
        // Cut short: cannot be walked, so nothing may be added.
        let mut cut = reply(&[a]);
        cut.truncate(cut.len() - 2);
        assert!(any_opt(&cut));
    }
}

//! The bytes of the RPZ feed: reading a question for a zone (with the
//! serial an IXFR carries), and writing the SOA answer, refusals, the
//! messages of a zone transfer and a NOTIFY. Names are written without
//! compression (RFC 1035 allows it, and a transfer is read once).
//!
//! Reads what a network peer sent, so nothing here may panic and every
//! index is checked.

use crate::export::{Owner, RPZ_APEX_A, RPZ_SOA, RPZ_TTL, rpz_record};

/// QTYPE values this module answers or writes.
pub(crate) mod qtype {
    /// SOA.
    pub(crate) const SOA: u16 = 6;
    /// NS.
    pub(crate) const NS: u16 = 2;
    /// A.
    pub(crate) const A: u16 = 1;
    /// CNAME.
    pub(crate) const CNAME: u16 = 5;
    /// OPT.
    pub(crate) const OPT: u16 = 41;
    /// IXFR (RFC 1995).
    pub(crate) const IXFR: u16 = 251;
    /// AXFR (RFC 5936).
    pub(crate) const AXFR: u16 = 252;
}

/// RCODEs written here.
pub(crate) mod rcode {
    /// NOERROR.
    pub(crate) const NOERROR: u8 = 0;
    /// SERVFAIL: the zone is configured but not built yet.
    pub(crate) const SERVFAIL: u8 = 2;
    /// REFUSED: not in `allow_transfer`, or not a question this feed answers.
    pub(crate) const REFUSED: u8 = 5;
}

/// The most bytes one transfer message carries before the next starts:
/// well under the 65535 a TCP frame allows, so no message is ever cut
/// (and TC is never set, RFC 5936 §2.2).
pub(crate) const MESSAGE_BUDGET: usize = 16 * 1024;

/// A question as this module reads it: one question, a name without
/// compression, and (for IXFR) the client's serial from its authority SOA.
#[derive(Debug)]
pub(crate) struct Asked<'p> {
    /// The ID.
    pub(crate) id: u16,
    /// RD, echoed.
    pub(crate) rd: bool,
    /// The question section (name, type, class), echoed.
    pub(crate) question: &'p [u8],
    /// The question name, as on the wire (with the root label).
    pub(crate) name: &'p [u8],
    /// QTYPE.
    pub(crate) qtype: u16,
    /// An OPT was in the additional section: the answers carry one too.
    pub(crate) edns: bool,
    /// The serial of the SOA in an IXFR's authority section.
    pub(crate) serial: Option<u32>,
}

fn u16_at(m: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([
        *m.get(at)?,
        *m.get(at.checked_add(1)?)?,
    ]))
}

fn u32_at(m: &[u8], at: usize) -> Option<u32> {
    let b = m.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The end of an uncompressed name starting at `at`.
fn plain_name_end(m: &[u8], mut at: usize) -> Option<usize> {
    let start = at;
    loop {
        let len = usize::from(*m.get(at)?);
        if len > 63 {
            return None;
        }
        at = at.checked_add(1 + len)?;
        if at.checked_sub(start)? > 255 {
            return None;
        }
        if len == 0 {
            return Some(at);
        }
    }
}

/// The end of a possibly compressed name starting at `at` (a pointer ends it).
fn skip_name(m: &[u8], mut at: usize) -> Option<usize> {
    for _ in 0..128 {
        let len = *m.get(at)?;
        match len {
            0 => return at.checked_add(1),
            l if l & 0xc0 == 0xc0 => return at.checked_add(2),
            l if l > 63 => return None,
            l => at = at.checked_add(1 + usize::from(l))?,
        }
    }
    None
}

/// Reads a query: `None` for anything that is not one question with a
/// plain name (the pipeline deals with those as it always does).
pub(crate) fn read(m: &[u8]) -> Option<Asked<'_>> {
    let b2 = *m.get(2)?;
    // QR=0, opcode QUERY.
    if b2 & 0x80 != 0 || (b2 >> 3) & 0x0f != 0 || u16_at(m, 4)? != 1 {
        return None;
    }
    let ancount = u16_at(m, 6)?;
    let nscount = u16_at(m, 8)?;
    let arcount = u16_at(m, 10)?;
    let name_end = plain_name_end(m, 12)?;
    let qtype = u16_at(m, name_end)?;
    let question_end = name_end.checked_add(4)?;
    let question = m.get(12..question_end)?;
    let mut at = question_end;
    let mut serial = None;
    let mut edns = false;
    let records = u32::from(ancount) + u32::from(nscount) + u32::from(arcount);
    for i in 0..records {
        let rr_type_at = skip_name(m, at)?;
        let rtype = u16_at(m, rr_type_at)?;
        let rdlen = usize::from(u16_at(m, rr_type_at.checked_add(8)?)?);
        let rdata = rr_type_at.checked_add(10)?;
        let in_authority = i >= u32::from(ancount) && i < u32::from(ancount) + u32::from(nscount);
        if in_authority && rtype == qtype::SOA {
            let after_rname = skip_name(m, skip_name(m, rdata)?)?;
            serial = u32_at(m, after_rname);
        }
        if rtype == qtype::OPT {
            edns = true;
        }
        at = rdata.checked_add(rdlen)?;
    }
    Some(Asked {
        id: u16_at(m, 0)?,
        rd: b2 & 0x01 != 0,
        question,
        name: m.get(12..name_end)?,
        qtype,
        edns,
        serial,
    })
}

/// Appends `name` (dotted, absolute, no trailing dot; empty: the root)
/// then `origin` (wire form, with its root label). `None` when a label or
/// the whole name is too long.
fn put_name(out: &mut Vec<u8>, name: &str, origin: &[u8]) -> Option<()> {
    let start = out.len();
    if !name.is_empty() {
        for label in name.split('.') {
            let len = u8::try_from(label.len())
                .ok()
                .filter(|l| (1..=63).contains(l))?;
            out.push(len);
            out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
        }
    }
    out.extend_from_slice(origin);
    if out.len().saturating_sub(start) > 255 {
        out.truncate(start);
        return None;
    }
    Some(())
}

/// `a.b` → its wire form with the root label.
pub(crate) fn wire_name(name: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    put_name(&mut out, name, &[0])?;
    Some(out)
}

/// Appends one record: owner, type, class IN, TTL, then `rdata`.
fn put_rr(out: &mut Vec<u8>, owner: &[u8], rtype: u16, rdata: &[u8]) -> Option<()> {
    out.extend_from_slice(owner);
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&RPZ_TTL.to_be_bytes());
    out.extend_from_slice(&u16::try_from(rdata.len()).ok()?.to_be_bytes());
    out.extend_from_slice(rdata);
    Some(())
}

/// The zone's SOA record.
pub(crate) fn soa(zone: &[u8], serial: u32) -> Vec<u8> {
    let s = RPZ_SOA;
    let mut rdata = Vec::with_capacity(64);
    let dotless = |n: &'static str| n.trim_end_matches('.');
    let _ = put_name(&mut rdata, dotless(s.mname), &[0]);
    let _ = put_name(&mut rdata, dotless(s.rname), &[0]);
    for v in [serial, s.refresh, s.retry, s.expire, s.minimum] {
        rdata.extend_from_slice(&v.to_be_bytes());
    }
    let mut out = Vec::with_capacity(rdata.len() + zone.len() + 10);
    let _ = put_rr(&mut out, zone, qtype::SOA, &rdata);
    out
}

/// The NS and the apex A record, written after the first SOA of a transfer.
pub(crate) fn apex(zone: &[u8]) -> [Vec<u8>; 2] {
    let mut ns = Vec::new();
    let mut ns_rdata = Vec::new();
    let _ = put_name(&mut ns_rdata, RPZ_SOA.mname.trim_end_matches('.'), &[0]);
    let _ = put_rr(&mut ns, zone, qtype::NS, &ns_rdata);
    let mut a = Vec::new();
    let _ = put_rr(&mut a, zone, qtype::A, &RPZ_APEX_A.octets());
    [ns, a]
}

/// One owner's CNAME record, as the zone file writes it; `None` when its
/// name is too long under this zone (it is left out of the transfer).
pub(crate) fn owner(zone: &[u8], o: &Owner) -> Option<Vec<u8>> {
    let (owner, target) = rpz_record(o);
    let mut name = Vec::with_capacity(owner.len() + zone.len() + 2);
    put_name(&mut name, &owner, zone)?;
    let mut rdata = Vec::new();
    put_name(&mut rdata, target.trim_end_matches('.'), &[0])?;
    let mut rr = Vec::with_capacity(name.len() + rdata.len() + 10);
    put_rr(&mut rr, &name, qtype::CNAME, &rdata)?;
    Some(rr)
}

/// A header: ID, QR=1, AA=1, RD echoed, the rcode and the counts.
fn header(out: &mut Vec<u8>, id: u16, rd: bool, rcode: u8, counts: [u16; 4]) {
    out.extend_from_slice(&id.to_be_bytes());
    out.push(0x84 | u8::from(rd));
    out.push(rcode & 0x0f);
    for c in counts {
        out.extend_from_slice(&c.to_be_bytes());
    }
}

/// An OPT record: 1232 bytes, version 0, no options.
fn opt(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
}

/// An answer with `records` in its answer section (none: just the rcode).
pub(crate) fn reply(a: &Asked<'_>, rcode: u8, records: &[&[u8]]) -> Vec<u8> {
    let size = 12 + a.question.len() + 11 + records.iter().map(|r| r.len()).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    let an = u16::try_from(records.len()).unwrap_or(0);
    header(&mut out, a.id, a.rd, rcode, [1, an, 0, u16::from(a.edns)]);
    out.extend_from_slice(a.question);
    for r in records.iter().take(usize::from(an)) {
        out.extend_from_slice(r);
    }
    if a.edns {
        opt(&mut out);
    }
    out
}

/// What every message of one transfer repeats: the query's ID, RD, its
/// question (in the first message only) and whether it had EDNS.
#[derive(Debug)]
pub(crate) struct Head {
    id: u16,
    rd: bool,
    question: Vec<u8>,
    edns: bool,
}

impl Head {
    /// The head of the answers to `a`.
    pub(crate) fn of(a: &Asked<'_>) -> Self {
        Self {
            id: a.id,
            rd: a.rd,
            question: a.question.to_vec(),
            edns: a.edns,
        }
    }

    /// Starts a transfer message (the first carries the question).
    pub(crate) fn start(&self, first: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(MESSAGE_BUDGET + 512);
        let qd = u16::from(first);
        header(
            &mut out,
            self.id,
            self.rd,
            rcode::NOERROR,
            [qd, 0, 0, u16::from(self.edns)],
        );
        if first {
            out.extend_from_slice(&self.question);
        }
        out
    }

    /// Ends a message started by [`Head::start`] that holds `count` records.
    pub(crate) fn finish(&self, out: &mut Vec<u8>, count: u16) {
        if let Some(an) = out.get_mut(6..8) {
            an.copy_from_slice(&count.to_be_bytes());
        }
        if self.edns {
            opt(out);
        }
    }
}

/// A NOTIFY for `zone` (RFC 1996 §3.7), its SOA in the answer section as
/// the hint of the new serial.
pub(crate) fn notify(id: u16, zone: &[u8], soa: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + zone.len() + 4 + soa.len());
    out.extend_from_slice(&id.to_be_bytes());
    // Opcode NOTIFY (4), AA.
    out.extend_from_slice(&[0x24, 0x00, 0, 1, 0, 1, 0, 0, 0, 0]);
    out.extend_from_slice(zone);
    out.extend_from_slice(&qtype::SOA.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(soa);
    out
}

/// Whether `m` answers the NOTIFY `id`, and its rcode.
pub(crate) fn notify_answer(m: &[u8], id: u16) -> Option<u8> {
    let b2 = *m.get(2)?;
    let ours = u16_at(m, 0)? == id && b2 & 0x80 != 0 && (b2 >> 3) & 0x0f == 4;
    ours.then(|| m.get(3).map_or(0, |b| b & 0x0f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::Effect;
    use crate::rpz::transfer::tests::owner;
    use hickory_proto::op::Message;

    fn axfr_query(edns: bool) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)];
        q.extend(wire_name("Cutoff.RPZ").unwrap());
        q.extend_from_slice(&[0, 252, 0, 1]);
        if edns {
            opt(&mut q);
        }
        q
    }

    #[test]
    fn an_ixfr_question_yields_the_clients_serial() {
        let zone = wire_name("cutoff.rpz").unwrap();
        let mut q = vec![0, 9, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0];
        q.extend(&zone);
        q.extend_from_slice(&[0, 251, 0, 1]);
        // The authority SOA, its owner a pointer to the question name.
        let soa = soa(&[0xc0, 12], 41);
        q.extend(soa);
        let a = read(&q).unwrap();
        assert_eq!(a.qtype, qtype::IXFR);
        assert_eq!(a.serial, Some(41));
        assert_eq!(a.name, &zone[..]);
    }

    #[test]
    fn answers_responses_and_compressed_questions_are_not_read() {
        let mut q = axfr_query(false);
        q[2] = 0x80;
        assert!(read(&q).is_none());
        let mut q = vec![0, 9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 6, 0, 1];
        assert!(read(&q).is_none());
        q.truncate(5);
        assert!(read(&q).is_none());
    }

    #[test]
    fn names_too_long_for_the_zone_are_left_out() {
        let zone = wire_name("cutoff.rpz").unwrap();
        let long = vec!["a".repeat(60); 4].join(".");
        assert!(super::owner(&zone, &owner(&long, false, Effect::Block)).is_none());
        assert!(super::owner(&zone, &owner("short.example", false, Effect::Block)).is_some());
    }

    #[test]
    fn a_notify_reply_is_matched_by_id_and_opcode() {
        let zone = wire_name("cutoff.rpz").unwrap();
        let n = notify(77, &zone, &soa(&zone, 3));
        let parsed = Message::from_vec(&n).unwrap();
        assert_eq!(u8::from(parsed.metadata.op_code), 4);
        let mut reply = n.clone();
        reply[2] |= 0x80;
        assert_eq!(notify_answer(&reply, 77), Some(0));
        assert_eq!(notify_answer(&reply, 78), None);
        assert_eq!(notify_answer(&n, 77), None);
    }
}

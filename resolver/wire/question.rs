//! Reading a query into its question view ([`crate::query::Question`]):
//! straight from its bytes for nearly every query, and for the rare query
//! the byte reader declines, through a full parse that re-encodes it into
//! bytes the reader takes (so the pipeline has one path, not two).
//!
//! Sits at the start of the query flow, right after the listener.

use hickory_proto::op::{Message, MessageType};

use crate::query::{Edns, Question};

/// Why a query has no question view.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Declined {
    /// QR=1: an answer, never answered (no packet loops).
    #[error("a response, not a query")]
    Response,
    /// Not a DNS message that hickory-proto can read.
    #[error("malformed message")]
    Malformed,
    /// No question, or more than one.
    #[error("not exactly one question")]
    Questions,
}

/// Reads a plain query: one question with an uncompressed name, no records
/// but an optional OPT that ends the packet, no TC and no rcode bits. `None`
/// sends it through [`canonical`]; so this only has to be right, not
/// complete.
pub fn parse_query(p: &[u8]) -> Option<Question<'_>> {
    if p.len() < 17 || p.len() > 4096 {
        return None;
    }
    let (b2, b3) = (*p.get(2)?, *p.get(3)?);
    // QR=0, AA=0, TC=0, no rcode; one question, no answers or authorities,
    // at most one additional (the OPT).
    if b2 & 0x86 != 0 || b3 & 0x0f != 0 {
        return None;
    }
    let count = |i: usize| Some(u16::from_be_bytes([*p.get(i)?, *p.get(i + 1)?]));
    if count(4)? != 1 || count(6)? != 0 || count(8)? != 0 || count(10)? > 1 {
        return None;
    }
    let mut at = 12;
    loop {
        let len = usize::from(*p.get(at)?);
        if len == 0 {
            at += 1;
            break;
        }
        // Compression (or a reserved label type): the full parse.
        if len > 63 {
            return None;
        }
        at += 1 + len;
        // A name is at most 255 bytes on the wire, the root label included.
        if at > 12 + 254 {
            return None;
        }
    }
    let name_end = at;
    let fixed: [u8; 4] = p.get(at..at + 4)?.try_into().ok()?;
    let (qtype, qclass) = (
        u16::from_be_bytes([fixed[0], fixed[1]]),
        u16::from_be_bytes([fixed[2], fixed[3]]),
    );
    let question_end = at + 4;
    let edns = if count(10)? == 1 {
        let opt: [u8; 11] = p.get(question_end..question_end + 11)?.try_into().ok()?;
        // Root owner, TYPE 41; the record must end the packet.
        if opt[0] != 0 || opt[1] != 0 || opt[2] != 41 {
            return None;
        }
        let rdlen = usize::from(u16::from_be_bytes([opt[9], opt[10]]));
        if question_end + 11 + rdlen != p.len() || !options_fit(p.get(question_end + 11..)?) {
            return None;
        }
        Some(Edns {
            size: u16::from_be_bytes([opt[3], opt[4]]),
            dnssec_ok: opt[7] & 0x80 != 0,
            version: opt[6],
        })
    } else {
        if question_end != p.len() {
            return None;
        }
        None
    };
    Some(Question {
        packet: p,
        id: u16::from_be_bytes([*p.first()?, *p.get(1)?]),
        opcode: (b2 >> 3) & 0x0f,
        name_end,
        question_end,
        qtype,
        qclass,
        edns,
    })
}

/// Whether EDNS options fill `rdata` exactly, as the full parse requires
/// (else FORMERR). ECS (code 8), whose body the full parse also checks,
/// goes through [`canonical`].
fn options_fit(mut rdata: &[u8]) -> bool {
    while let Some(&[c0, c1, l0, l1]) = rdata.get(..4) {
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        match rdata.get(4 + len..) {
            Some(rest) if [c0, c1] != [0, 8] => rdata = rest,
            _ => return false,
        }
    }
    rdata.is_empty()
}

/// A query [`parse_query`] declined, parsed in full and written again as
/// the bytes it reads: the ID, opcode, RD, AD and CD; the one question with
/// its name uncompressed (its case kept); an OPT with the client's size,
/// version and DO bit, and no options (cutoff forwards none). Everything
/// else (other records, TC, rcode bits) has no bearing on the answer.
pub fn canonical(packet: &[u8]) -> Result<Vec<u8>, Declined> {
    let m = Message::from_vec(packet).map_err(|_| Declined::Malformed)?;
    if m.metadata.message_type != MessageType::Query {
        return Err(Declined::Response);
    }
    let [question] = m.queries.as_slice() else {
        return Err(Declined::Questions);
    };
    let [id0, id1, b2, b3, ..] = *packet else {
        return Err(Declined::Malformed);
    };
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&[id0, id1, b2 & 0x79, b3 & 0x30]);
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(m.edns.is_some())]);
    for label in question.name().iter() {
        out.push(u8::try_from(label.len()).map_err(|_| Declined::Malformed)?);
        out.extend_from_slice(label);
    }
    out.push(0);
    out.extend_from_slice(&u16::from(question.query_type()).to_be_bytes());
    out.extend_from_slice(&u16::from(question.query_class()).to_be_bytes());
    if let Some(e) = &m.edns {
        out.extend_from_slice(&[0, 0, 41]);
        out.extend_from_slice(&e.max_payload().to_be_bytes());
        let dnssec_ok = if e.flags().dnssec_ok { 0x80 } else { 0 };
        out.extend_from_slice(&[0, e.version(), dnssec_ok, 0, 0, 0]);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn plain() -> Vec<u8> {
        let mut q = vec![0xab, 0xcd, 0x01, 0x10, 0, 1, 0, 0, 0, 0, 0, 1];
        q.extend_from_slice(b"\x03s05\x03upd\x09kaspersky\x03com\x00\x00\x01\x00\x01");
        q.extend_from_slice(&[0, 0, 41, 0x10, 0x00, 0, 0, 0x80, 0, 0, 0]);
        q
    }

    #[test]
    fn plain_queries_are_read_without_a_full_parse() {
        let q = plain();
        let p = parse_query(&q).unwrap();
        assert_eq!((p.id, p.qtype, p.qclass, p.opcode), (0xabcd, 1, 1, 0));
        assert_eq!(
            p.edns,
            Some(Edns {
                size: 4096,
                dnssec_ok: true,
                version: 0,
            })
        );
        let labels: Vec<&[u8]> = p.labels().collect();
        assert_eq!(labels, [&b"s05"[..], b"upd", b"kaspersky", b"com"]);
        assert_eq!(p.flags(), (true, true));
        // Compressed, two questions, a response, trailing bytes: declined.
        let mut compressed = q.clone();
        compressed[12] = 0xc0;
        assert!(parse_query(&compressed).is_none());
        let mut two = q.clone();
        two[5] = 2;
        assert!(parse_query(&two).is_none());
        let mut response = q.clone();
        response[2] |= 0x80;
        assert!(parse_query(&response).is_none());
        let mut trailing = q.clone();
        trailing.push(0);
        assert!(parse_query(&trailing).is_none());
        // A dot inside a label, another opcode, EDNS version 1: read (the
        // pipeline answers them).
        let mut dotted = q.clone();
        dotted[14] = b'.';
        assert!(parse_query(&dotted).is_some());
        let mut notify = q.clone();
        notify[2] = 4 << 3;
        assert_eq!(parse_query(&notify).unwrap().opcode, 4);
        let mut v1 = q.clone();
        v1[q.len() - 5] = 1;
        assert_eq!(parse_query(&v1).unwrap().edns.unwrap().version, 1);
        // EDNS options must fill the OPT's RDATA exactly (a cookie here).
        let mut cookie = q.clone();
        cookie[q.len() - 1] = 12;
        cookie.extend_from_slice(&[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(parse_query(&cookie).is_some());
        let mut overrun = cookie.clone();
        overrun[q.len() + 3] = 9;
        assert!(parse_query(&overrun).is_none());
        let mut short = cookie;
        short.pop();
        short[q.len() - 1] = 11;
        assert!(parse_query(&short).is_none());
        // 255 bytes on the wire is the longest name; 256 is declined (and
        // the full parse rejects it).
        for (last, read) in [(61, true), (62, false)] {
            let mut long = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
            for len in [63, 63, 63, last] {
                long.push(len);
                long.extend(std::iter::repeat_n(b'a', usize::from(len)));
            }
            long.extend_from_slice(&[0, 0, 1, 0, 1]);
            assert_eq!(
                parse_query(&long).is_some(),
                read,
                "{} bytes",
                long.len() - 16
            );
        }
        let root = [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1];
        assert_eq!(parse_query(&root).unwrap().labels().count(), 0);
    }

    #[test]
    fn a_declined_query_is_reencoded_into_bytes_the_reader_takes() {
        // An ECS option (whose body only the full parse checks) and TC=1.
        let mut q = plain();
        q[2] |= 0x02;
        let len = q.len();
        q[len - 1] = 11;
        q.extend_from_slice(&[0, 8, 0, 7, 0, 1, 24, 0, 192, 0, 2]);
        assert!(parse_query(&q).is_none());
        let c = canonical(&q).unwrap();
        let v = parse_query(&c).expect("the canonical bytes are read");
        assert_eq!((v.id, v.qtype, v.qclass), (0xabcd, 1, 1));
        assert_eq!(v.question(), &plain()[12..39]);
        assert_eq!(v.flags(), (true, true));
        assert!(v.dnssec_ok());
        assert_eq!(&c[2..4], &[0x01, 0x10], "TC cleared, RD and CD kept");
        // Two questions, garbage, an answer.
        let mut two = plain();
        two[5] = 2;
        two.truncate(39);
        two.extend_from_slice(b"\x01a\x00\x00\x01\x00\x01");
        two[11] = 0;
        assert_eq!(canonical(&two), Err(Declined::Questions));
        assert_eq!(canonical(&[0; 5]), Err(Declined::Malformed));
        let mut answer = plain();
        answer[2] |= 0x80;
        assert_eq!(canonical(&answer), Err(Declined::Response));
    }
}

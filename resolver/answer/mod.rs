//! Answers cutoff makes itself: blocked names (NXDOMAIN + SOA, NODATA,
//! REFUSED or sinkhole addresses, each with an Extended DNS Error), refusals,
//! upstream failures, RFC 8482 answers to ANY, and protocol errors.
//!
//! Sits at the end of the query flow for everything that is not forwarded.
//! Every answer mirrors the client's EDNS (an OPT only when the query had
//! one, RFC 6891) and keeps its ID, question and RD/CD flags.

use hickory_proto::op::{Edns, Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::rdata::{A, AAAA, HINFO, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::config::{AnswerMode, Blocking};

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

/// The UDP payload size we advertise and never exceed (DNS Flag Day 2020).
pub const MAX_UDP: u16 = 1232;

/// A response skeleton for `query`: same ID, opcode, question, RD and CD;
/// RA set; an OPT mirroring the client's when it sent one.
pub fn reply(query: &Message, rcode: ResponseCode) -> Message {
    let mut m = Message::response(query.metadata.id, query.metadata.op_code);
    m.metadata.recursion_desired = query.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.metadata.checking_disabled = query.metadata.checking_disabled;
    m.metadata.response_code = rcode;
    m.queries = query.queries.clone();
    if let Some(e) = &query.edns {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP);
        edns.set_dnssec_ok(e.flags().dnssec_ok);
        m.set_edns(edns);
    }
    m
}

/// Adds an Extended DNS Error (only when the client speaks EDNS).
pub fn add_ede(m: &mut Message, code: Ede, text: &str) {
    if let Some(edns) = m.edns.as_mut() {
        let mut payload = (code as u16).to_be_bytes().to_vec();
        payload.extend_from_slice(text.as_bytes());
        edns.options_mut().insert(EdnsOption::Unknown(
            u16::from(EdnsCode::Unknown(15)),
            payload,
        ));
    }
}

/// A synthetic SOA for the blocked zone, so resolvers and stubs cache the
/// negative answer (RFC 2308) for `ttl` seconds.
fn soa(zone: &Name, ttl: u32) -> Record {
    let mname = Name::from_ascii("cutoff.invalid.").unwrap_or_else(|_| Name::root());
    let rname = Name::from_ascii("blocked.cutoff.invalid.").unwrap_or_else(|_| Name::root());
    Record::from_rdata(
        zone.clone(),
        ttl,
        RData::SOA(SOA::new(mname, rname, 1, 3600, 600, 86400, ttl)),
    )
}

/// The answer to a blocked query: `zone` is the list entry that matched
/// (the SOA owner), `why` the EDE text naming the rule and list.
pub fn blocked(query: &Message, blocking: &Blocking, zone: &Name, why: &str) -> Message {
    let (qname, qtype) = match query.queries.first() {
        Some(q) => (q.name().clone(), q.query_type()),
        None => (Name::root(), RecordType::A),
    };
    let mut m = match blocking.answer {
        AnswerMode::NxDomain => {
            let mut m = reply(query, ResponseCode::NXDomain);
            m.add_authority(soa(zone, blocking.ttl));
            m
        }
        AnswerMode::NoData => {
            let mut m = reply(query, ResponseCode::NoError);
            m.add_authority(soa(zone, blocking.ttl));
            m
        }
        AnswerMode::Refused => reply(query, ResponseCode::Refused),
        AnswerMode::Sinkhole => {
            let mut m = reply(query, ResponseCode::NoError);
            match qtype {
                RecordType::A => {
                    m.add_answer(Record::from_rdata(
                        qname,
                        blocking.ttl,
                        RData::A(A(blocking.sinkhole_ipv4)),
                    ));
                }
                RecordType::AAAA => {
                    m.add_answer(Record::from_rdata(
                        qname,
                        blocking.ttl,
                        RData::AAAA(AAAA(blocking.sinkhole_ipv6)),
                    ));
                }
                _ => {
                    m.add_authority(soa(zone, blocking.ttl));
                }
            }
            m
        }
    };
    add_ede(&mut m, Ede::Blocked, why);
    m
}

/// REFUSED for a client outside `access`.
pub fn refused(query: &Message) -> Message {
    let mut m = reply(query, ResponseCode::Refused);
    add_ede(
        &mut m,
        Ede::Prohibited,
        "client not allowed to use this resolver",
    );
    m
}

/// SERVFAIL when no upstream answered: EDE 22 when the budget ran out, 23
/// when every upstream failed at once; `detail` says how each failed.
pub fn unreachable(query: &Message, code: Ede, detail: &str) -> Message {
    let mut m = reply(query, ResponseCode::ServFail);
    let mut cut = detail.len().min(MAX_EDE_TEXT);
    while !detail.is_char_boundary(cut) {
        cut -= 1;
    }
    add_ede(&mut m, code, &detail[..cut]);
    m
}

/// The minimal RFC 8482 answer to QTYPE=ANY: one HINFO "RFC8482" record.
/// ANY is never forwarded (amplification).
pub fn any(query: &Message, ttl: u32) -> Message {
    let mut m = reply(query, ResponseCode::NoError);
    if let Some(q) = query.queries.first() {
        m.add_answer(Record::from_rdata(
            q.name().clone(),
            ttl,
            RData::HINFO(HINFO::new("RFC8482".to_owned(), String::new())),
        ));
    }
    m
}

/// An error answer (FORMERR, NOTIMP, ...) with no records. NOTIMP (an
/// opcode cutoff does not serve) says nothing about recursion: no RA.
pub fn error(query: &Message, rcode: ResponseCode) -> Message {
    let mut m = reply(query, rcode);
    if rcode == ResponseCode::NotImp {
        m.metadata.recursion_available = false;
    }
    m
}

/// BADVERS (RFC 6891 §6.1.3) to a query with an EDNS version above 0: the
/// question, no records, an OPT of version 0 carrying the upper rcode bits.
pub fn badvers(query: &Message) -> Vec<u8> {
    let mut m = reply(query, ResponseCode::NoError);
    let dnssec_ok = m.edns.take().is_some_and(|e| e.flags().dnssec_ok);
    let Ok(mut bytes) = m.to_vec() else {
        return header_only(m.metadata.id, m.metadata.op_code, ResponseCode::ServFail);
    };
    // BADVERS is 16: 0 in the header, 1 in the OPT's extended-rcode byte.
    bytes.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 1, 0]);
    bytes.extend_from_slice(&[if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
    if bytes.len() >= 12 {
        let ar = u16::from_be_bytes([bytes[10], bytes[11]]).saturating_add(1);
        bytes[10..12].copy_from_slice(&ar.to_be_bytes());
    }
    bytes
}

/// FORMERR or NOTIMP for a message whose header was readable but whose body
/// was not: header only, the ID and opcode kept.
pub fn header_only(id: u16, op: OpCode, rcode: ResponseCode) -> Vec<u8> {
    let mut m = Message::response(id, op);
    m.metadata.response_code = rcode;
    // RA=1 as on every answer, but NOTIMP says nothing about recursion.
    m.metadata.recursion_available = rcode != ResponseCode::NotImp;
    m.to_vec().unwrap_or_default()
}

/// Encodes a synthesised answer for a transport with room for `limit`
/// bytes; an answer that does not fit is sent truncated (TC=1).
pub fn encode(m: &Message, limit: usize) -> Vec<u8> {
    let Ok(bytes) = m.to_vec() else {
        return header_only(m.metadata.id, m.metadata.op_code, ResponseCode::ServFail);
    };
    if bytes.len() <= limit {
        return bytes;
    }
    match crate::wire::walk(&bytes) {
        Some(layout) => crate::wire::truncate(
            &bytes,
            layout.question_end,
            m.edns.as_ref().map(|e| e.flags().dnssec_ok),
        ),
        None => header_only(m.metadata.id, m.metadata.op_code, ResponseCode::ServFail),
    }
}

/// The owner name to use for a blocked zone's SOA.
pub fn zone_name(entry: &[u8]) -> Name {
    std::str::from_utf8(entry)
        .ok()
        .and_then(|s| Name::from_ascii(format!("{s}.")).ok())
        .unwrap_or_else(Name::root)
}

/// Longest EDE text we send (keeps blocked answers well inside 512 bytes).
const MAX_EDE_TEXT: usize = 200;

/// The hot-path builders: answers written straight from a plain query's
/// bytes.
pub mod fast;

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;

    fn query(name: &str, qtype: RecordType, edns: bool) -> Message {
        let mut q = Message::query();
        q.metadata.id = 4242;
        q.metadata.recursion_desired = true;
        q.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        if edns {
            q.set_edns(Edns::new());
        }
        q
    }

    fn blocking(answer: AnswerMode) -> Blocking {
        Blocking {
            answer,
            ttl: 300,
            sinkhole_ipv4: "0.0.0.0".parse().unwrap(),
            sinkhole_ipv6: "::".parse().unwrap(),
        }
    }

    fn ede(m: &Message) -> Option<(u16, String)> {
        let edns = m.edns.as_ref()?;
        match edns.option(EdnsCode::Unknown(15))? {
            EdnsOption::Unknown(_, data) => Some((
                u16::from_be_bytes([data[0], data[1]]),
                String::from_utf8_lossy(&data[2..]).into_owned(),
            )),
            _ => None,
        }
    }

    #[test]
    fn nxdomain_answer_carries_a_soa_and_ede_15() {
        let q = query("s05.upd.kaspersky.com.", RecordType::A, true);
        let m = blocked(
            &q,
            &blocking(AnswerMode::NxDomain),
            &zone_name(b"upd.kaspersky.com"),
            "rule r, list k",
        );
        let back = Message::from_vec(&encode(&m, 512)).unwrap();
        assert_eq!(back.metadata.id, 4242);
        assert_eq!(back.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(back.authorities.len(), 1);
        assert_eq!(back.authorities[0].name.to_ascii(), "upd.kaspersky.com.");
        assert_eq!(ede(&back), Some((15, "rule r, list k".into())));
    }

    #[test]
    fn sinkhole_answers_a_and_aaaa_and_nodata_otherwise() {
        let b = blocking(AnswerMode::Sinkhole);
        let z = zone_name(b"kaspersky.com");
        let a = blocked(&query("kaspersky.com.", RecordType::A, false), &b, &z, "x");
        assert_eq!(a.answers[0].data, RData::A(A("0.0.0.0".parse().unwrap())));
        assert!(a.edns.is_none(), "no OPT for a client without EDNS");
        let aaaa = blocked(
            &query("kaspersky.com.", RecordType::AAAA, true),
            &b,
            &z,
            "x",
        );
        assert_eq!(
            aaaa.answers[0].data,
            RData::AAAA(AAAA("::".parse().unwrap()))
        );
        let mx = blocked(&query("kaspersky.com.", RecordType::MX, true), &b, &z, "x");
        assert!(mx.answers.is_empty());
        assert_eq!(mx.metadata.response_code, ResponseCode::NoError);
        assert_eq!(mx.authorities.len(), 1);
    }

    /// The fast builders give what the `Message` builders give.
    #[test]
    fn fast_answers_equal_the_message_answers() {
        for edns in [false, true] {
            for mode in [
                AnswerMode::NxDomain,
                AnswerMode::NoData,
                AnswerMode::Refused,
                AnswerMode::Sinkhole,
            ] {
                for qtype in [RecordType::A, RecordType::AAAA, RecordType::MX] {
                    let q = query("s05.UPD.kaspersky.com.", qtype, edns);
                    let bytes = q.to_vec().unwrap();
                    let wq = crate::wire::parse_query(&bytes).unwrap();
                    let b = blocking(mode);
                    let fast = fast::blocked(&wq, &b, 4, &|t: &mut String| {
                        fast::why(t, "r", "k", b"upd.kaspersky.com")
                    });
                    let slow = blocked(
                        &q,
                        &b,
                        &zone_name(b"upd.kaspersky.com"),
                        "blocked by rule r (list k, entry upd.kaspersky.com)",
                    );
                    let (f, s) = (
                        Message::from_vec(&fast).unwrap(),
                        Message::from_vec(&encode(&slow, 4096)).unwrap(),
                    );
                    assert_eq!(f.metadata, s.metadata, "{mode:?} {qtype} {edns}");
                    assert_eq!(f.queries, s.queries);
                    assert_eq!(f.answers, s.answers, "{mode:?} {qtype}");
                    assert_eq!(f.authorities.len(), s.authorities.len());
                    for (a, b) in f.authorities.iter().zip(&s.authorities) {
                        assert_eq!(
                            a.name.to_ascii().to_lowercase(),
                            b.name.to_ascii().to_lowercase()
                        );
                        assert_eq!((a.ttl, &a.data), (b.ttl, &b.data));
                    }
                    assert_eq!(f.edns, s.edns, "{mode:?} {qtype} {edns}");
                }
            }
            let q = query("example.com.", RecordType::ANY, edns);
            let bytes = q.to_vec().unwrap();
            let wq = crate::wire::parse_query(&bytes).unwrap();
            assert_eq!(
                Message::from_vec(&fast::any(&wq, 300)).unwrap(),
                Message::from_vec(&encode(&any(&q, 300), 512)).unwrap()
            );
            assert_eq!(
                Message::from_vec(&fast::refused(&wq)).unwrap(),
                Message::from_vec(&encode(&refused(&q), 512)).unwrap()
            );
        }
    }

    #[test]
    fn badvers_has_rcode_16_and_an_opt_of_version_0() {
        let mut q = query("example.com.", RecordType::A, true);
        if let Some(e) = q.edns.as_mut() {
            e.set_version(1);
            e.set_dnssec_ok(true);
        }
        let back = Message::from_vec(&badvers(&q)).unwrap();
        // 16 is BADVERS for EDNS (hickory names it BADSIG, its TSIG twin).
        assert_eq!(u16::from(back.metadata.response_code), 16);
        let edns = back.edns.unwrap();
        assert_eq!(edns.version(), 0);
        assert!(edns.flags().dnssec_ok);
        assert!(back.answers.is_empty());
        assert_eq!(back.queries.len(), 1);
    }

    #[test]
    fn any_gets_the_rfc8482_hinfo() {
        let m = any(&query("example.com.", RecordType::ANY, false), 3600);
        assert_eq!(m.answers.len(), 1);
        assert!(matches!(&m.answers[0].data, RData::HINFO(h) if &*h.cpu == b"RFC8482"));
        assert!(encode(&m, 512).len() <= 512);
    }

    #[test]
    fn an_answer_too_big_for_the_transport_is_truncated() {
        let q = query("example.com.", RecordType::A, true);
        let mut m = reply(&q, ResponseCode::NoError);
        for i in 0..100u8 {
            m.add_answer(Record::from_rdata(
                Name::from_ascii("example.com.").unwrap(),
                60,
                RData::A(A([10, 0, 0, i].into())),
            ));
        }
        let bytes = encode(&m, 512);
        assert!(bytes.len() <= 512);
        let back = Message::from_vec(&bytes).unwrap();
        assert!(back.metadata.truncation);
        assert!(back.answers.is_empty());
        assert_eq!(back.queries.len(), 1);
    }
}

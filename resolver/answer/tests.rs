//! hickory-proto as the oracle: every answer the byte builders write is
//! read back by a full parser and checked field by field.

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, RecordType};

use super::*;
use crate::wire;

fn query(name: &str, qtype: RecordType, edns: bool) -> Vec<u8> {
    let mut q = Message::query();
    q.metadata.id = 4242;
    q.metadata.recursion_desired = true;
    q.metadata.checking_disabled = true;
    q.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if edns {
        let mut e = Edns::new();
        e.set_dnssec_ok(true);
        q.set_edns(e);
    }
    q.to_vec().unwrap()
}

fn blocking(answer: AnswerMode) -> Blocking {
    Blocking {
        answer,
        ttl: 300,
        sinkhole_ipv4: "0.0.0.0".parse().unwrap(),
        sinkhole_ipv6: "::".parse().unwrap(),
    }
}

fn read(bytes: &[u8]) -> Message {
    Message::from_vec(bytes).unwrap()
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

/// The header every answer of cutoff's own carries, whatever it says.
fn check_header(m: &Message, edns: bool) {
    assert_eq!(m.metadata.id, 4242);
    assert!(m.metadata.recursion_desired && m.metadata.checking_disabled);
    assert!(!m.metadata.authoritative && !m.metadata.authentic_data);
    assert_eq!(m.queries.len(), 1);
    assert_eq!(m.edns.is_some(), edns, "an OPT only for an EDNS query");
    if let Some(e) = &m.edns {
        assert!(e.flags().dnssec_ok, "DO echoed");
        assert_eq!(e.max_payload(), wire::MAX_UDP);
    }
}

#[test]
fn every_blocking_mode_reads_back_as_its_answer() {
    let why = |t: &mut String| why(t, "r", "k", b"upd.kaspersky.com", None);
    for mode in AnswerMode::ALL {
        for qtype in [RecordType::A, RecordType::AAAA, RecordType::MX] {
            for edns in [false, true] {
                let bytes = query("s05.UPD.kaspersky.com.", qtype, edns);
                let q = wire::parse_query(&bytes).unwrap();
                let m = read(&blocked(&q, &blocking(mode), b"upd.kaspersky.com", &why));
                check_header(&m, edns);
                let (rcode, answers, soa) = match (mode, qtype) {
                    (AnswerMode::NxDomain, _) => (ResponseCode::NXDomain, 0, true),
                    (AnswerMode::NoData, _) => (ResponseCode::NoError, 0, true),
                    (AnswerMode::Refused, _) => (ResponseCode::Refused, 0, false),
                    (AnswerMode::Sinkhole, RecordType::A | RecordType::AAAA) => {
                        (ResponseCode::NoError, 1, false)
                    }
                    (AnswerMode::Sinkhole, _) => (ResponseCode::NoError, 0, true),
                };
                assert_eq!(m.metadata.response_code, rcode, "{mode:?} {qtype}");
                assert_eq!(m.answers.len(), answers, "{mode:?} {qtype}");
                assert_eq!(m.authorities.len(), usize::from(soa), "{mode:?} {qtype}");
                if soa {
                    let a = &m.authorities[0];
                    assert_eq!(a.name.to_ascii().to_lowercase(), "upd.kaspersky.com.");
                    assert_eq!(a.ttl, 300);
                    assert!(matches!(&a.data, RData::SOA(s) if s.minimum == 300));
                }
                match m.answers.first().map(|r| &r.data) {
                    Some(RData::A(a)) => assert_eq!(*a, A("0.0.0.0".parse().unwrap())),
                    Some(RData::AAAA(a)) => assert_eq!(*a, AAAA("::".parse().unwrap())),
                    None => {}
                    Some(other) => panic!("{mode:?}: {other:?}"),
                }
                let text = "blocked by rule r (list k, entry upd.kaspersky.com)";
                assert_eq!(ede(&m), edns.then(|| (15, text.to_owned())));
            }
        }
    }
}

#[test]
fn a_zone_outside_the_question_is_written_out_as_the_soa_owner() {
    // A CNAME target was blocked: its zone is not a suffix of the question.
    let bytes = query("alias.example.com.", RecordType::A, true);
    let q = wire::parse_query(&bytes).unwrap();
    let why = |t: &mut String| why(t, "r", "k", b"kaspersky.com", Some("via CNAME x"));
    let m = read(&blocked(
        &q,
        &blocking(AnswerMode::NxDomain),
        b"kaspersky.com",
        &why,
    ));
    assert_eq!(m.authorities[0].name.to_ascii(), "kaspersky.com.");
    let text = "blocked by rule r (list k, entry kaspersky.com) via CNAME x";
    assert_eq!(ede(&m), Some((15, text.into())));
    // `example.com` ends the question only by length, not by its labels.
    let m = read(&blocked(
        &q,
        &blocking(AnswerMode::NxDomain),
        b"xample.com",
        &why,
    ));
    assert_eq!(m.authorities[0].name.to_ascii(), "xample.com.");
    // The root name, and an entry that is no name at all.
    let root = query(".", RecordType::A, false);
    let r = wire::parse_query(&root).unwrap();
    let m = read(&blocked(&r, &blocking(AnswerMode::NxDomain), b"", &why));
    assert!(m.authorities[0].name.is_root());
    let m = read(&blocked(&q, &blocking(AnswerMode::NxDomain), b"a..b", &why));
    assert!(m.authorities[0].name.is_root());
}

#[test]
fn refusals_any_errors_and_badvers_read_back() {
    for edns in [false, true] {
        let bytes = query("example.com.", RecordType::ANY, edns);
        let q = wire::parse_query(&bytes).unwrap();
        let m = read(&refused(&q));
        check_header(&m, edns);
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        assert!(m.metadata.recursion_available);
        let text = "client not allowed to use this resolver";
        assert_eq!(ede(&m), edns.then(|| (18, text.to_owned())));

        let m = read(&any(&q, 3600));
        check_header(&m, edns);
        assert_eq!(m.answers.len(), 1);
        assert!(matches!(&m.answers[0].data, RData::HINFO(h) if &*h.cpu == b"RFC8482"));

        let m = read(&error(&q, rcode::NOTIMP));
        check_header(&m, edns);
        assert_eq!(m.metadata.response_code, ResponseCode::NotImp);
        assert!(
            !m.metadata.recursion_available,
            "NOTIMP says nothing of recursion"
        );
        let m = read(&error(&q, rcode::FORMERR));
        assert!(m.metadata.recursion_available);

        let long = "x".repeat(500);
        let m = read(&unreachable(&q, Ede::NoReachableAuthority, &long));
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        assert_eq!(ede(&m), edns.then(|| (22, "x".repeat(MAX_EDE_TEXT))));
    }
    let mut bytes = query("example.com.", RecordType::A, true);
    let version_at = bytes.len() - 5;
    bytes[version_at] = 1;
    let q = wire::parse_query(&bytes).unwrap();
    let m = read(&badvers(&q));
    // 16 is BADVERS for EDNS (hickory names it BADSIG, its TSIG twin).
    assert_eq!(u16::from(m.metadata.response_code), 16);
    let e = m.edns.as_ref().unwrap();
    assert_eq!(e.version(), 0);
    assert!(e.flags().dnssec_ok);
    assert!(m.answers.is_empty());
    assert_eq!(m.queries.len(), 1);
}

#[test]
fn a_header_only_error_keeps_the_id_and_opcode() {
    let m = read(&header_only([0xab, 0xcd, 5 << 3 | 1, 0], rcode::NOTIMP));
    assert_eq!(m.metadata.id, 0xabcd);
    assert_eq!(u8::from(m.metadata.op_code), 5);
    assert_eq!(m.metadata.response_code, ResponseCode::NotImp);
    assert!(!m.metadata.recursion_available);
    let m = read(&header_only([0, 1, 0, 0], rcode::FORMERR));
    assert!(m.metadata.recursion_available);
    assert!(m.queries.is_empty());
}

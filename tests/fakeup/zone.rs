//! The fixed zone under `example.com` that [`super::Fakeup`] answers from.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::{EDE_CODE, EDE_INFO_CODE, EDE_TEXT, TTL, Transport, reply};

/// The answer from the fixed zone: `example.com` and `www` (A, AAAA),
/// `short-ttl` (A, TTL 2), `a.b` and `a\\.b` (A, two addresses), `alias` (CNAME into `upd.kaspersky.com`),
/// `kasperskyip` (A in 91.103.64.0/21), `many` (40 A), `huge` (12 TXT; TC over
/// UDP), `tc-only` (TC over UDP, A over TCP), `servfail-ede` (SERVFAIL with
/// EDE 6 under EDNS); known names without the type get NODATA, all other
/// names NXDOMAIN, both with the SOA in authority.
pub(super) fn zone(query: &Message, transport: Transport) -> Message {
    let mut answer = reply(query, ResponseCode::NoError);
    let Some(question) = query.queries.first() else {
        answer.metadata.response_code = ResponseCode::FormErr;
        return answer;
    };
    let qname = question.name();
    let qtype = question.query_type();
    let wants = |rtype: RecordType| qtype == rtype || qtype == RecordType::ANY;
    let record = |ttl: u32, rdata: RData| Record::from_rdata(qname.clone(), ttl, rdata);
    let a = |ip: [u8; 4]| RData::A(A(Ipv4Addr::from(ip)));
    let udp = transport == Transport::Udp;

    let ascii = qname.to_ascii().to_ascii_lowercase();
    match ascii.strip_suffix('.').unwrap_or(&ascii) {
        "example.com" | "www.example.com" => {
            if wants(RecordType::A) {
                answer.answers.push(record(TTL, a([192, 0, 2, 1])));
            }
            if wants(RecordType::AAAA) {
                let ip = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
                answer.answers.push(record(TTL, RData::AAAA(AAAA(ip))));
            }
        }
        "short-ttl.example.com" if wants(RecordType::A) => {
            answer.answers.push(record(2, a([192, 0, 2, 2])));
        }
        // Three labels, and two (`a.b` holds a dot): distinct names.
        "a.b.example.com" if wants(RecordType::A) => {
            answer.answers.push(record(TTL, a([192, 0, 2, 31])));
        }
        "a\\.b.example.com" if wants(RecordType::A) => {
            answer.answers.push(record(TTL, a([192, 0, 2, 32])));
        }
        "alias.example.com" => {
            let target = name("s05.upd.kaspersky.com.");
            answer
                .answers
                .push(record(TTL, RData::CNAME(CNAME(target.clone()))));
            if wants(RecordType::A) {
                let rdata = a([203, 0, 113, 5]);
                answer.answers.push(Record::from_rdata(target, TTL, rdata));
            }
        }
        "kasperskyip.example.com" if wants(RecordType::A) => {
            answer.answers.push(record(TTL, a([91, 103, 66, 155])));
        }
        "many.example.com" if wants(RecordType::A) => {
            for last in 1..=40 {
                answer.answers.push(record(TTL, a([198, 51, 100, last])));
            }
        }
        "huge.example.com" | "tc-only.example.com" if udp => {
            answer.metadata.truncation = true;
            return answer;
        }
        "huge.example.com" if wants(RecordType::TXT) => {
            for index in 0..12 {
                let text = format!("{index:02}{}", "x".repeat(248));
                answer
                    .answers
                    .push(record(TTL, RData::TXT(TXT::new(vec![text]))));
            }
        }
        "tc-only.example.com" if wants(RecordType::A) => {
            answer.answers.push(record(TTL, a([192, 0, 2, 99])));
        }
        "servfail-ede.example.com" => {
            answer.metadata.response_code = ResponseCode::ServFail;
            if let Some(edns) = answer.edns.as_mut() {
                let mut payload = EDE_INFO_CODE.to_be_bytes().to_vec();
                payload.extend_from_slice(EDE_TEXT.as_bytes());
                let option = EdnsOption::Unknown(EDE_CODE, payload);
                edns.options_mut().insert(option);
            }
            return answer;
        }
        // Names in the zone without records of the asked type: NODATA.
        "short-ttl.example.com"
        | "a.b.example.com"
        | "a\\.b.example.com"
        | "kasperskyip.example.com"
        | "many.example.com"
        | "huge.example.com"
        | "tc-only.example.com" => {}
        // Everything else, `nx.example.com` and below included.
        _ => answer.metadata.response_code = ResponseCode::NXDomain,
    }
    if answer.answers.is_empty() {
        answer.authorities.push(soa());
    }
    answer
}

/// The zone's SOA record, sent in the authority section of negative answers.
fn soa() -> Record {
    let rdata = SOA::new(
        name("ns.example.com."),
        name("hostmaster.example.com."),
        1,
        3600,
        600,
        86_400,
        60,
    );
    Record::from_rdata(name("example.com."), 60, RData::SOA(rdata))
}

/// Parses a name written in this file.
fn name(ascii: &str) -> Name {
    Name::from_ascii(ascii).expect("fakeup: a zone name in the source is valid")
}

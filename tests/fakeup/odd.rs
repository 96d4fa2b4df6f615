//! The odd upstreams of the conformance tests, as modes of [`super::Fakeup`]
//! and names of its zone: FORMERR to EDNS, EDNS ignored, an authoritative
//! (AA=1, RA=0), a validating resolver (AD), answers whose records hickory
//! cannot parse (written here as bytes), and `hold.example.com`, whose
//! answer waits until the test releases it.

use hickory_proto::op::{Message, ResponseCode};

use super::{Mode, reply};

/// Whether the answer to `query` waits for [`super::Fakeup::release`].
pub(super) fn held(query: &Message) -> bool {
    name(query).as_deref() == Some("hold.example.com")
}

fn name(query: &Message) -> Option<String> {
    let ascii = query
        .queries
        .first()?
        .name()
        .to_ascii()
        .to_ascii_lowercase();
    Some(ascii.strip_suffix('.').unwrap_or(&ascii).to_owned())
}

/// The answer of an odd mode or name, when it is one.
pub(super) fn answer(query: &Message, mode: Mode) -> Option<Vec<u8>> {
    if mode == Mode::FormErrOnEdns && query.edns.is_some() {
        let mut m = reply(query, ResponseCode::FormErr);
        m.edns = None;
        return m.to_vec().ok();
    }
    let records: &[(u16, &[u8])] = match name(query)?.as_str() {
        // NULL with no RDATA.
        "null-empty.example.com" => &[(10, b"")],
        // A type nobody knows, with no RDATA.
        "unknown-empty.example.com" => &[(65280, b"")],
        // APL with no items (RFC 3123 allows it).
        "apl-empty.example.com" => &[(42, b"")],
        // CAA whose tag has 16 letters (flags, tag length, tag, value).
        "caa-long.example.com" => &[(257, b"\x00\x10abcdefghijklmnopvalue")],
        // An A record, and a second OPT after the first.
        "two-opt.example.com" => &[(1, b"\xc0\x00\x02\x01")],
        // A CNAME into the Kaspersky update zone, beside a NULL with no RDATA.
        "opaque-alias.example.com" => &[(5, b"\x03s05\x03upd\x09kaspersky\x03com\x00"), (10, b"")],
        _ => return None,
    };
    let mut m = reply(query, ResponseCode::NoError);
    m.edns = None;
    let mut bytes = m.to_vec().ok()?;
    for (rtype, rdata) in records {
        // Owner: a pointer to the question name; class IN; TTL 300.
        bytes.extend_from_slice(&[0xc0, 12]);
        bytes.extend_from_slice(&rtype.to_be_bytes());
        bytes.extend_from_slice(&[0, 1, 0, 0, 1, 0x2c]);
        bytes.extend_from_slice(&u16::try_from(rdata.len()).ok()?.to_be_bytes());
        bytes.extend_from_slice(rdata);
    }
    bytes[7] = u8::try_from(records.len()).ok()?;
    let rtype = records.first().map_or(0, |r| r.0);
    let opts: u8 = match (query.edns.is_some(), rtype) {
        (_, 1) => 2,
        (true, _) => 1,
        (false, _) => 0,
    };
    for _ in 0..opts {
        bytes.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    }
    bytes[11] = opts;
    Some(bytes)
}

/// The header and OPT changes of the modes that only change those.
pub(super) fn adjust(mut bytes: Vec<u8>, query: &Message, mode: Mode) -> Vec<u8> {
    match mode {
        Mode::IgnoreEdns => {
            if let Ok(mut m) = Message::from_vec(&bytes) {
                m.edns = None;
                if let Ok(b) = m.to_vec() {
                    bytes = b;
                }
            }
        }
        Mode::Authoritative => {
            bytes[2] |= 0x04;
            bytes[3] &= !0x80;
        }
        Mode::Validating => {
            let dnssec_ok = query.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
            if query.authentic_data || dnssec_ok {
                bytes[3] |= 0x20;
            }
        }
        _ => {}
    }
    bytes
}

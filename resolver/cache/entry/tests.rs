//! Unit tests of [`Entry`]: answers hickory-proto's full parse refuses are
//! still read and cached; what cannot be read safely is refused.

use hickory_proto::op::Message;

use super::*;

/// A response to `example.com` of `qtype` with `records` (owner, type,
/// ttl, rdata) in the answer section and `extra` raw bytes of additional
/// records (`ar` of them).
fn response(
    qtype: u16,
    rcode: u8,
    records: &[(u16, u32, &[u8])],
    ar: u16,
    extra: &[u8],
) -> Vec<u8> {
    let an = u16::try_from(records.len()).unwrap();
    let mut m = vec![0x12, 0x34, 0x81, 0x80 | rcode, 0, 1];
    m.extend_from_slice(&an.to_be_bytes());
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&ar.to_be_bytes());
    m.extend_from_slice(b"\x07example\x03com\x00");
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    for (rtype, ttl, rdata) in records {
        m.extend_from_slice(&[0xc0, 12]);
        m.extend_from_slice(&rtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        m.extend_from_slice(&ttl.to_be_bytes());
        m.extend_from_slice(&u16::try_from(rdata.len()).unwrap().to_be_bytes());
        m.extend_from_slice(rdata);
    }
    m.extend_from_slice(extra);
    m
}

const OPT: &[u8] = &[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0];

#[test]
fn answers_the_full_parse_refuses_are_read_and_cached() {
    let caa = b"\x00\x10abcdefghijklmnopvalue";
    let cases: [(&str, Vec<u8>); 5] = [
        (
            "NULL with empty RDATA",
            response(10, 0, &[(10, 300, b"")], 1, OPT),
        ),
        (
            "an unknown type with empty RDATA",
            response(65_280, 0, &[(65_280, 300, b"")], 0, &[]),
        ),
        (
            "an APL with no items",
            response(42, 0, &[(42, 300, b"")], 1, OPT),
        ),
        (
            "a CAA with a 16-letter tag",
            response(257, 0, &[(257, 300, caa)], 1, OPT),
        ),
        (
            "an A answer with two OPT records",
            response(1, 0, &[(1, 300, &[192, 0, 2, 7])], 2, &[OPT, OPT].concat()),
        ),
    ];
    for (what, bytes) in cases {
        assert!(
            Message::from_vec(&bytes).is_err(),
            "hickory now parses {what}"
        );
        let e = Entry::new(bytes.clone(), 0, 86400).unwrap_or_else(|| panic!("{what}"));
        assert_eq!(e.rcode, ResponseCode::NoError, "{what}");
        assert_eq!(&*e.bytes, &bytes[..], "{what}");
        let ttl = if what.contains("two OPT") { 0 } else { 300 };
        assert_eq!(
            e.ttl,
            Duration::from_secs(ttl),
            "{what}: two OPTs are relayed, not kept"
        );
    }
}

#[test]
fn addresses_and_cname_targets_are_read_at_the_wire_level() {
    let bytes = response(
        1,
        0,
        &[
            (5, 600, b"\x03Cdn\x07Example\x03NET\x00"),
            (1, 120, &[192, 0, 2, 1]),
            (
                28,
                300,
                &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            ),
        ],
        0,
        &[],
    );
    let e = Entry::new(bytes, 2, 86400).unwrap();
    assert_eq!(e.targets.len(), 1);
    assert_eq!(&*e.targets[0], b"cdn.example.net");
    let addrs: Vec<String> = e.addresses.iter().map(ToString::to_string).collect();
    assert_eq!(addrs, ["192.0.2.1", "2001:db8::1"]);
    // The shortest TTL in the answer section.
    assert_eq!(e.ttl, Duration::from_secs(120));
    assert_eq!(e.upstream, 2);
}

#[test]
fn negative_answers_keep_the_soa_minimum() {
    // NXDOMAIN, SOA TTL 3600 with MINIMUM 60 in the authority section.
    let mut soa = b"\x02ns\xc0\x0c\x04root\xc0\x0c".to_vec();
    for v in [1u32, 7200, 900, 86400, 60] {
        soa.extend_from_slice(&v.to_be_bytes());
    }
    let mut bytes = response(1, 3, &[(6, 3600, &soa)], 0, &[]);
    // Move the record from the answer to the authority section.
    bytes[6..10].copy_from_slice(&[0, 0, 0, 1]);
    let e = Entry::new(bytes, 0, 86400).unwrap();
    assert_eq!(e.rcode, ResponseCode::NXDomain);
    assert_eq!(e.ttl, Duration::from_secs(60));
}

#[test]
fn answers_that_cannot_be_read_safely_are_refused() {
    // An A record of five bytes: no address to check against response rules.
    assert!(
        Entry::new(
            response(1, 0, &[(1, 300, &[1, 2, 3, 4, 5])], 0, &[]),
            0,
            86400
        )
        .is_none()
    );
    // A CNAME whose target points forwards.
    assert!(Entry::new(response(5, 0, &[(5, 300, b"\xc0\x40")], 0, &[]), 0, 86400).is_none());
    // A record running past the end.
    let mut cut = response(1, 0, &[(1, 300, &[192, 0, 2, 1])], 0, &[]);
    cut.pop();
    assert!(Entry::new(cut, 0, 86400).is_none());
}

#[test]
fn servfail_and_truncated_answers_are_not_kept() {
    let servfail = response(1, 2, &[], 0, &[]);
    assert!(Entry::new(servfail, 0, 86400).unwrap().ttl.is_zero());
    let mut tc = response(1, 0, &[(1, 300, &[192, 0, 2, 1])], 0, &[]);
    tc[2] |= 0x02;
    assert!(Entry::new(tc, 0, 86400).unwrap().ttl.is_zero());
}

#[test]
fn render_sets_id_question_spelling_and_ages_ttls() {
    let bytes = response(1, 0, &[(1, 300, &[192, 0, 2, 1])], 1, OPT);
    let mut e = Entry::new(bytes, 0, 86400).unwrap();
    e.stored -= Duration::from_secs(100);
    let q = b"\x07ExAmPle\x03COM\x00\x00\x01\x00\x01";
    let out = e.render(7, q, false, Instant::now());
    let m = Message::from_vec(&out).unwrap();
    assert_eq!(m.metadata.id, 7);
    assert_eq!(m.queries[0].name().to_ascii(), "ExAmPle.COM.");
    assert_eq!(m.answers[0].ttl, 200);
    assert!(m.edns.is_none());
}

#[test]
fn entries_expire_with_their_ttl() {
    let bytes = response(1, 0, &[(1, 2, &[192, 0, 2, 1])], 0, &[]);
    let mut e = Entry::new(bytes, 0, 86400).unwrap();
    assert!(e.fresh(Instant::now()));
    e.stored -= Duration::from_secs(3);
    assert!(!e.fresh(Instant::now()));
}

#[test]
fn a_stale_copy_of_an_answer_without_opt_gets_one_for_its_ede() {
    let bytes = response(1, 0, &[(1, 300, &[192, 0, 2, 1])], 0, &[]);
    let e = Entry::new(bytes, 0, 86400).unwrap();
    let s = e.stale_copy(Instant::now());
    let m = Message::from_vec(&s.bytes).unwrap();
    assert_eq!(m.answers[0].ttl, STALE_TTL);
    assert!(m.edns.is_some());
    assert!(s.bytes.ends_with(STALE_EDE));
    assert_eq!(&*s.addresses, &*e.addresses);
}

#[test]
fn an_exact_sized_answer_moves_into_its_entry_and_an_unreadable_one_comes_back() {
    let bytes = response(1, 0, &[(1, 300, &[192, 0, 2, 1])], 0, &[]).into_boxed_slice();
    let (at, len) = (bytes.as_ptr(), bytes.len());
    let e = Entry::take(bytes.into_vec(), 0, 86400).unwrap();
    assert_eq!((e.bytes.as_ptr(), e.bytes.len()), (at, len), "not copied");
    // Spare capacity (a receive buffer) is copied out, not shrunk in place.
    let mut roomy = Vec::with_capacity(4096);
    roomy.extend_from_slice(&e.bytes);
    let buffer = roomy.as_ptr();
    let copied = Entry::take(roomy, 0, 86400).unwrap();
    assert_ne!(copied.bytes.as_ptr(), buffer);
    assert_eq!(copied.bytes, e.bytes);
    let mut cut = response(1, 0, &[(1, 300, &[192, 0, 2, 1])], 0, &[]);
    cut.pop();
    let back = Entry::take(cut.clone(), 0, 86400).unwrap_err();
    assert_eq!(back, cut, "handed back as it was, to be relayed");
}

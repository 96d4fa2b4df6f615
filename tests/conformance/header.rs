//! Points 7, 8, 9 and 10 of issue #9: header bits are set from the query
//! (RD copied, RA=1, AA=0, CD forwarded, AD asked for and kept only when
//! asked for, never on cutoff's own answers, no RA on NOTIMP), EDNS version
//! 1 gets BADVERS, and every reply to an EDNS query carries an OPT with the
//! client's DO bit, truncated ones included.

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::RecordType;

use super::common::{Bits, FORWARD, ask, query_with};
use crate::fakeup::{Fakeup, Mode};
use crate::harness::serve;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_bits_come_from_the_query_not_from_an_authoritative_upstream() {
    let up = Fakeup::start().await;
    up.set_mode(Mode::Authoritative);
    let s = serve(FORWARD, up.addr()).await;
    for (rd, cd) in [(false, false), (true, false), (false, true), (true, true)] {
        let bits = Bits {
            rd,
            cd,
            ..Bits::default()
        };
        // Forwarded first, then from the cache: the same bits both times.
        for pass in ["forwarded", "cached"] {
            let m = ask(s.addr, &query_with("www.example.com.", RecordType::A, bits)).await;
            let h = &m.metadata;
            assert_eq!(h.response_code, ResponseCode::NoError);
            assert_eq!(
                h.recursion_desired, rd,
                "RD copied ({pass}, rd={rd} cd={cd})"
            );
            assert!(h.recursion_available, "RA=1 ({pass})");
            assert!(!h.authoritative, "AA cleared ({pass})");
            assert_eq!(h.checking_disabled, cd, "CD copied ({pass})");
            assert_eq!(m.answers.len(), 1);
        }
    }
    let seen = up.seen_name("www.example.com");
    assert!(seen.iter().any(|q| q.cd), "CD=1 was forwarded: {seen:?}");
    assert!(seen.iter().any(|q| !q.cd));
    assert!(seen.iter().all(|q| q.rd), "cutoff recurses: RD=1 upstream");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ad_is_asked_for_with_ad_1_and_only_then_relayed() {
    let up = Fakeup::start().await;
    up.set_mode(Mode::Validating);
    let s = serve(FORWARD, up.addr()).await;
    let ad = Bits {
        ad: true,
        ..Bits::default()
    };
    // AD=1, DO=0: what dig and glibc's trust-ad send (RFC 6840 §5.7).
    let m = ask(s.addr, &query_with("www.example.com.", RecordType::A, ad)).await;
    assert!(m.metadata.authentic_data, "{m:?}");
    let seen = up.seen_name("www.example.com");
    assert!(
        seen.iter().all(|q| q.ad && !q.dnssec_ok),
        "AD=1 forwarded, DO left as it was: {seen:?}"
    );
    // AD=0, DO=0 after it: no AD, even with the AD answer in the cache.
    let m = ask(
        s.addr,
        &query_with("www.example.com.", RecordType::A, Bits::default()),
    )
    .await;
    assert!(!m.metadata.authentic_data, "{m:?}");
    // cutoff's own answers never claim AD.
    let m = ask(
        s.addr,
        &query_with("s05.upd.kaspersky.com.", RecordType::A, ad),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(!m.metadata.authentic_data);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notimp_answers_carry_no_ra() {
    let up = Fakeup::start().await;
    let s = serve(FORWARD, up.addr()).await;
    let mut q = query_with("www.example.com.", RecordType::A, Bits::default());
    q.metadata.op_code = OpCode::Status;
    let m = ask(s.addr, &q).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NotImp);
    assert!(!m.metadata.recursion_available, "{m:?}");
    assert!(up.seen().is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edns_version_1_gets_badvers_and_is_not_forwarded() {
    let up = Fakeup::start().await;
    let s = serve(FORWARD, up.addr()).await;
    for (name, dnssec_ok) in [
        ("www.example.com.", false),
        ("s05.upd.kaspersky.com.", true),
    ] {
        let bits = Bits {
            edns: Some((1232, dnssec_ok, 1)),
            ..Bits::default()
        };
        let m = ask(s.addr, &query_with(name, RecordType::A, bits)).await;
        assert_eq!(
            u16::from(m.metadata.response_code),
            16,
            "BADVERS for {name}"
        );
        let edns = m.edns.as_ref().expect("an OPT");
        assert_eq!(edns.version(), 0, "we speak version 0");
        assert_eq!(edns.flags().dnssec_ok, dnssec_ok, "DO echoed");
        assert!(m.answers.is_empty() && m.authorities.is_empty());
        assert_eq!(m.queries.len(), 1);
    }
    assert!(up.seen().is_empty(), "{:?}", up.seen());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edns_query_gets_an_opt_even_when_the_upstream_sent_none() {
    let up = Fakeup::start().await;
    up.set_mode(Mode::IgnoreEdns);
    let s = serve(FORWARD, up.addr()).await;
    let bits = Bits {
        edns: Some((1232, true, 0)),
        ..Bits::default()
    };
    for pass in ["forwarded", "cached"] {
        let m = ask(s.addr, &query_with("www.example.com.", RecordType::A, bits)).await;
        assert_eq!(m.answers.len(), 1);
        let edns = m.edns.as_ref().unwrap_or_else(|| panic!("an OPT ({pass})"));
        assert!(edns.flags().dnssec_ok, "DO echoed ({pass})");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_replies_echo_the_do_bit() {
    let up = Fakeup::start().await;
    let s = serve(FORWARD, up.addr()).await;
    for dnssec_ok in [true, false] {
        let bits = Bits {
            edns: Some((512, dnssec_ok, 0)),
            ..Bits::default()
        };
        // 40 A records do not fit in 512 bytes.
        let m: Message = ask(
            s.addr,
            &query_with("many.example.com.", RecordType::A, bits),
        )
        .await;
        assert!(m.metadata.truncation, "{m:?}");
        let edns = m.edns.as_ref().expect("an OPT on TC=1");
        assert_eq!(edns.flags().dnssec_ok, dnssec_ok);
    }
    s.stop().await;
}

//! Discovery of Designated Resolvers (RFC 9462, issue 13): with encrypted
//! listeners `_dns.resolver.arpa` SVCB names cutoff's own DoT and DoH
//! endpoints; without them it is NODATA; never forwarded either way.

use std::process::Command;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::svcb::{SvcParamKey, SvcParamValue};
use hickory_proto::rr::{RData, RecordType};

use crate::dot::write_pair;
use crate::fakeup::Fakeup;
use crate::harness::{query, serve, udp};
use crate::util::needs_tool;

/// A port nobody listens on now (the config must say the real port: DDR
/// announces what is written, and port 0 is no port a client can use).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// One SVCB record: (priority, target, alpn, port, ipv4hint, dohpath).
type Row = (u16, String, Vec<String>, u16, Vec<String>, Option<String>);

/// `_dns.resolver.arpa` `qtype` over UDP.
async fn ask(s: &crate::harness::Running, qtype: RecordType) -> Message {
    let q = query("_dns.resolver.arpa.", qtype, Some(1232));
    let (m, _) = udp(s.addr, "127.0.0.1", &q).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    m
}

/// The SVCB records of an answer.
fn svcb(m: &Message) -> Vec<Row> {
    m.answers
        .iter()
        .map(|r| {
            let RData::SVCB(s) = &r.data else {
                panic!("not SVCB: {r:?}");
            };
            let mut row = (
                s.svc_priority,
                s.target_name.to_string(),
                Vec::new(),
                0,
                Vec::new(),
                None,
            );
            for (key, value) in &s.svc_params {
                match (key, value) {
                    (_, SvcParamValue::Alpn(a)) => row.2.clone_from(&a.0),
                    (_, SvcParamValue::Port(p)) => row.3 = *p,
                    (_, SvcParamValue::Ipv4Hint(h)) => {
                        row.4 = h.0.iter().map(|a| a.to_string()).collect();
                    }
                    (SvcParamKey::Unknown(7), SvcParamValue::Unknown(v)) => {
                        row.5 = Some(String::from_utf8(v.0.clone()).expect("utf8"));
                    }
                    other => panic!("unexpected parameter {other:?}"),
                }
            }
            row
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_encrypted_listeners_ddr_names_cutoffs_own_dot_and_doh_endpoints() {
    let dir = tempfile::tempdir().expect("dir");
    write_pair(dir.path());
    let (dot, doh) = (free_port(), free_port());
    let d = dir.path().display();
    // No rule blocks anything: DDR is cutoff's own answer, on every network.
    let yaml = format!(
        "upstreams: [\"{{upstream}}\"]
listen_tls: [\"127.0.0.1:{dot}\"]
listen_https: [\"127.0.0.1:{doh}\", \"127.0.0.2:{doh}\"]
tls: {{certificate: {d}/cert.pem, key: {d}/key.pem, name: dns.test}}
forward_only: true
"
    );
    let up = Fakeup::start().await;
    let s = serve(&yaml, up.addr()).await;
    let m = ask(&s, RecordType::SVCB).await;
    let records = svcb(&m);
    assert_eq!(
        records,
        vec![
            (
                1,
                "dns.test.".to_owned(),
                vec!["dot".to_owned()],
                dot,
                vec!["127.0.0.1".to_owned()],
                None
            ),
            (
                2,
                "dns.test.".to_owned(),
                vec!["h2".to_owned()],
                doh,
                vec!["127.0.0.1".to_owned(), "127.0.0.2".to_owned()],
                Some("/dns-query{?dns}".to_owned())
            ),
        ],
        "{m:?}"
    );
    // Other types at the name: NODATA.
    let m = ask(&s, RecordType::A).await;
    assert!(m.answers.is_empty(), "{m:?}");
    assert!(up.seen_name("_dns.resolver.arpa").is_empty());
    if needs_tool("kdig", "apt-get install knot-dnsutils") {
        let port = s.addr.port().to_string();
        let out = tokio::task::spawn_blocking(move || {
            Command::new("kdig")
                .args(["@127.0.0.1", "-p", &port, "+time=3", "+retry=0"])
                .args(["-t", "SVCB", "_dns.resolver.arpa"])
                .output()
                .expect("kdig")
        })
        .await
        .expect("kdig");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!(
                "SVCB\t1 dns.test. alpn=dot port={dot} ipv4hint=127.0.0.1"
            )),
            "{text}"
        );
        assert!(text.contains("alpn=h2"), "{text}");
    }
    assert!(up.seen_name("_dns.resolver.arpa").is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_encrypted_listeners_ddr_is_nodata_and_never_forwarded() {
    let yaml = "upstreams: [\"{upstream}\"]
bypass: {ddr: on}
forward_only: true
";
    let up = Fakeup::start().await;
    let s = serve(yaml, up.addr()).await;
    let m = ask(&s, RecordType::SVCB).await;
    assert!(m.answers.is_empty(), "{m:?}");
    assert!(up.seen_name("_dns.resolver.arpa").is_empty());
    s.stop().await;
}

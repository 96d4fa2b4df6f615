//! What the conformance tests share: a config with only an upstream, raw
//! queries with chosen header bits, and a UDP exchange that keeps the bytes.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

use crate::harness::udp_raw;

/// Forward everything to the fake upstream; block the Kaspersky list for
/// everyone (so the tests can tell cutoff's own answers apart).
pub(crate) const FORWARD: &str = "
upstreams: [\"{upstream}\"]
lists:
  kaspersky: {builtin: kaspersky}
rules:
  - {name: cut, lists: [kaspersky], categories: [update, telemetry, activation], action: block}
";

/// Header bits and EDNS of a test query.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bits {
    pub(crate) rd: bool,
    pub(crate) cd: bool,
    pub(crate) ad: bool,
    /// `Some((payload, dnssec_ok, version))`: an OPT.
    pub(crate) edns: Option<(u16, bool, u8)>,
}

impl Default for Bits {
    fn default() -> Self {
        Self {
            rd: true,
            cd: false,
            ad: false,
            edns: Some((1232, false, 0)),
        }
    }
}

/// A query with these bits.
pub(crate) fn query_with(name: &str, qtype: RecordType, bits: Bits) -> Message {
    let mut q = Message::query();
    q.metadata.id = rand::random();
    q.metadata.op_code = OpCode::Query;
    q.metadata.recursion_desired = bits.rd;
    q.metadata.checking_disabled = bits.cd;
    q.metadata.authentic_data = bits.ad;
    q.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    if let Some((size, dnssec_ok, version)) = bits.edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        e.set_dnssec_ok(dnssec_ok);
        e.set_version(version);
        q.set_edns(e);
    }
    q
}

/// Sends `q` over UDP from 127.0.0.1 and returns the reply's bytes (waits
/// up to `wait`).
pub(crate) async fn udp_bytes(server: SocketAddr, q: &Message, wait: Duration) -> Vec<u8> {
    let bytes = q.to_vec().expect("encode");
    let reply = udp_raw(server, "127.0.0.1", &bytes, wait)
        .await
        .expect("a reply over UDP");
    assert_eq!(reply[..2], bytes[..2], "the reply has the query's ID");
    reply
}

/// The reply to `q` over UDP, parsed.
pub(crate) async fn ask(server: SocketAddr, q: &Message) -> Message {
    let reply = udp_bytes(server, q, Duration::from_secs(10)).await;
    Message::from_vec(&reply).expect("the reply parses")
}

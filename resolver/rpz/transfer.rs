//! One answer to AXFR or IXFR of an RPZ zone (RFC 5936): the SOA, the
//! zone's records, the SOA again, in as many messages as it takes, each
//! encoded when the TCP connection writes it. Sits in the TCP connection's
//! loop (`server::tcp`), before the pipeline.

use std::net::SocketAddr;
use std::sync::Arc;

use super::wire::{self, qtype, rcode};
use super::{Zone, zone_of};
use crate::runtime::State;

/// The TCP connection's step for AXFR and IXFR of an RPZ zone (`None`: not
/// one, on to the pipeline): the messages to write, in order, each encoded
/// when the connection asks for it (a large zone is never held twice).
/// IXFR gets the whole zone as AXFR would (RFC 1995 §4), or only the SOA
/// when the client already has this serial.
pub fn transfer(state: &State, msg: &[u8], client: SocketAddr) -> Option<Transfer> {
    let asked = wire::read(msg)?;
    if asked.qtype != qtype::AXFR && asked.qtype != qtype::IXFR {
        return None;
    }
    let runtime = state.current.load();
    let rpz = runtime.policy.config.rpz.as_ref()?;
    let (i, apex) = zone_of(rpz, asked.name)?;
    if !rpz.allows(client.ip()) || !apex {
        return Some(Transfer::single(wire::reply(&asked, rcode::REFUSED, &[])));
    }
    let Some(zone) = state.rpz.zone(&rpz.zones[i].name) else {
        return Some(Transfer::single(wire::reply(&asked, rcode::SERVFAIL, &[])));
    };
    let soa = wire::soa(&zone.wire, zone.serial());
    if asked.qtype == qtype::IXFR && asked.serial == Some(zone.serial()) {
        return Some(Transfer::single(wire::reply(
            &asked,
            rcode::NOERROR,
            &[&soa],
        )));
    }
    tracing::info!(zone = %zone.name, serial = zone.serial(), %client, "zone transfer");
    let apex = wire::apex(&zone.wire);
    Some(Transfer {
        single: None,
        whole: Some(Whole {
            head: wire::Head::of(&asked),
            soa,
            apex,
            zone,
            next: 0,
        }),
    })
}

/// The messages of one answer to AXFR or IXFR.
#[derive(Debug)]
pub struct Transfer {
    /// A one-message answer (a refusal, or the SOA only).
    single: Option<Vec<u8>>,
    /// The whole zone.
    whole: Option<Whole>,
}

/// A zone transfer under way: the records are numbered SOA, NS, A, the
/// owners, SOA, and `next` is the first not yet written.
#[derive(Debug)]
struct Whole {
    head: wire::Head,
    soa: Vec<u8>,
    apex: [Vec<u8>; 2],
    zone: Arc<Zone>,
    next: usize,
}

impl Transfer {
    fn single(message: Vec<u8>) -> Self {
        Self {
            single: Some(message),
            whole: None,
        }
    }
}

impl Whole {
    /// Record `i` (`None` past the end; an empty record for an owner whose
    /// name is too long under the zone, which is skipped).
    fn record(&self, i: usize) -> Option<Vec<u8>> {
        let owners = &self.zone.export.owners;
        match i {
            0 => Some(self.soa.clone()),
            1 | 2 => self.apex.get(i - 1).cloned(),
            _ => match owners.get(i - 3) {
                Some(o) => Some(wire::owner(&self.zone.wire, o).unwrap_or_default()),
                None if i == owners.len() + 3 => Some(self.soa.clone()),
                None => None,
            },
        }
    }
}

impl Iterator for Transfer {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        if let Some(m) = self.single.take() {
            return Some(m);
        }
        let w = self.whole.as_mut()?;
        let mut rr = w.record(w.next)?;
        let mut out = w.head.start(w.next == 0);
        let mut count: u16 = 0;
        loop {
            // Never more than the budget once a record is in (RFC 5936
            // §2.2: a transfer is never truncated, it takes more messages).
            if count > 0 && out.len().saturating_add(rr.len()) > wire::MESSAGE_BUDGET {
                break;
            }
            if !rr.is_empty() {
                out.extend_from_slice(&rr);
                count = count.saturating_add(1);
            }
            w.next = w.next.saturating_add(1);
            match w.record(w.next) {
                Some(r) if count < u16::MAX => rr = r,
                _ => break,
            }
        }
        w.head.finish(&mut out, count);
        Some(out)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::export::{Effect, Export, Owner};
    use hickory_proto::op::Message;
    use hickory_proto::rr::{RData, RecordType};

    /// An owner for the tests.
    pub(crate) fn owner(name: &str, below: bool, effect: Effect) -> Owner {
        Owner {
            name: name.into(),
            below,
            effect,
            rule: "r".into(),
            list: "l".into(),
            category: None,
            sources: Vec::new(),
        }
    }

    #[test]
    fn a_transfer_starts_and_ends_with_the_soa_and_splits_without_truncation() {
        let mut owners: Vec<Owner> = (0..3000)
            .map(|i| owner(&format!("host{i}.example.com"), i % 2 == 0, Effect::Block))
            .collect();
        owners.push(owner(
            &vec!["a".repeat(60); 4].join("."),
            false,
            Effect::Block,
        ));
        owners.push(owner("ok.example.com", false, Effect::Pass));
        let zone = Arc::new(Zone {
            name: "cutoff.rpz".into(),
            wire: wire::wire_name("cutoff.rpz").unwrap(),
            export: Export {
                owners,
                serial: 7,
                ..Export::default()
            },
        });
        let mut q = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1];
        q.extend(wire::wire_name("Cutoff.RPZ").unwrap());
        q.extend_from_slice(&[0, 252, 0, 1]);
        q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        let asked = wire::read(&q).unwrap();
        let t = Transfer {
            single: None,
            whole: Some(Whole {
                head: wire::Head::of(&asked),
                soa: wire::soa(&zone.wire, 7),
                apex: wire::apex(&zone.wire),
                zone: zone.clone(),
                next: 0,
            }),
        };
        let msgs: Vec<Vec<u8>> = t.collect();
        assert!(msgs.len() > 3, "{} messages", msgs.len());
        let mut all = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            assert!(m.len() <= wire::MESSAGE_BUDGET + 11, "{}", m.len());
            let parsed = Message::from_vec(m).unwrap();
            assert_eq!(parsed.metadata.id, 0x1234);
            assert!(!parsed.metadata.truncation);
            assert!(parsed.metadata.authoritative);
            assert_eq!(parsed.queries.len(), usize::from(i == 0));
            assert!(parsed.edns.is_some());
            all.extend(parsed.answers);
        }
        // SOA, NS, A, every owner but the one too long, SOA.
        assert_eq!(all.len(), 2 + 2 + 3001);
        assert_eq!(all[0].record_type(), RecordType::SOA);
        assert_eq!(all.last().unwrap().record_type(), RecordType::SOA);
        let RData::SOA(s) = &all[0].data else {
            panic!("not an SOA")
        };
        assert_eq!(s.serial, 7);
        let find = |n: &str| all.iter().find(|r| r.name.to_string() == n).unwrap();
        assert_eq!(
            find("ok.example.com.cutoff.rpz.").data.to_string(),
            "rpz-passthru."
        );
        assert_eq!(
            find("*.host0.example.com.cutoff.rpz.").data.to_string(),
            "."
        );
    }
}

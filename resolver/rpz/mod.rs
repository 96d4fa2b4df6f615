//! The RPZ feed of a running cutoff (`rpz:` in the config): each zone is
//! what `cutoff export --format rpz` would write for its network and lists
//! now, served three ways: the zone file at `/rpz/NAME.rpz` on the admin
//! endpoint, SOA over UDP and TCP, and AXFR (IXFR answered as a full
//! transfer, RFC 1995 §4) over TCP, to clients in `rpz.allow_transfer`
//! only; everyone else gets REFUSED. When a zone's content changes
//! (reload, list refresh, a rule's `from`/`until` passing) its serial
//! grows and the configured secondaries get a NOTIFY.
//!
//! Where it sits: beside the query flow. [`run`] builds the zones off the
//! query path and swaps them in whole; the pipeline asks [`answer`] first
//! for a question under a zone (one comparison when no zone is
//! configured) and the TCP connection asks [`transfer`] for AXFR/IXFR.

mod notify;
mod transfer;
mod wire;

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;

use crate::config::{Config, Rpz};
pub use crate::export::zones::{Feed, Zone, Zones};
use crate::export::{self, Selection};
use crate::query::{Protocol, Question};
use crate::runtime::{Runtime, State};
pub use transfer::{Transfer, transfer};
use wire::{Asked, qtype, rcode};

/// How often [`run`] looks for a new runtime (a pointer comparison).
const LOOK: Duration = Duration::from_secs(1);

/// Whether the zones in force were built from `runtime` (tests wait on it).
pub fn built_from(state: &State, runtime: &Arc<Runtime>) -> bool {
    std::ptr::addr_eq(state.rpz.built_from(), Arc::as_ptr(runtime))
}

/// Where a question name falls: the index of the configured zone it is
/// at or under, and whether it is the apex.
fn zone_of(rpz: &Rpz, name: &[u8]) -> Option<(usize, bool)> {
    // At each label start, the rest of the name may be a zone's wire form.
    let mut at = 0;
    let mut apex = true;
    while let Some(&len) = name.get(at) {
        if len == 0 {
            return None;
        }
        let rest = name.get(at..)?;
        if let Some(i) = rpz.zones.iter().position(|z| same_wire(rest, &z.name)) {
            return Some((i, apex));
        }
        apex = false;
        at = at.checked_add(1 + usize::from(len))?;
    }
    None
}

/// Whether the wire name `w` spells the dotted `name` (case-insensitive).
fn same_wire(w: &[u8], name: &str) -> bool {
    let mut at = 0;
    for label in name.split('.') {
        let Some(&len) = w.get(at) else { return false };
        let Some(l) = w.get(at + 1..at + 1 + usize::from(len)) else {
            return false;
        };
        if !l.eq_ignore_ascii_case(label.as_bytes()) {
            return false;
        }
        at += 1 + usize::from(len);
    }
    w.get(at..) == Some(&[0][..])
}

/// The pipeline's step for a question at or under an RPZ zone (`None`:
/// not one, go on): REFUSED outside `allow_transfer`, the SOA for SOA (and
/// for IXFR over UDP, RFC 1995 §2: "use TCP"), SERVFAIL while the zone is
/// first being built, REFUSED for anything else (the zone is only read
/// whole, by transfer).
pub fn answer(
    state: &State,
    runtime: &Runtime,
    q: &Question<'_>,
    client: SocketAddr,
    protocol: Protocol,
) -> Option<Vec<u8>> {
    let rpz = runtime.policy.config.rpz.as_ref()?;
    let name = q.packet.get(12..q.name_end)?;
    let (i, apex) = zone_of(rpz, name)?;
    let asked = Asked {
        id: q.id,
        rd: q.flags().0,
        question: q.question(),
        name,
        qtype: q.qtype,
        edns: q.edns.is_some(),
        serial: None,
    };
    if !rpz.allows(client.ip()) {
        return Some(wire::reply(&asked, rcode::REFUSED, &[]));
    }
    let soa_asked = q.qtype == qtype::SOA || (q.qtype == qtype::IXFR && protocol == Protocol::Udp);
    if !apex || !soa_asked {
        return Some(wire::reply(&asked, rcode::REFUSED, &[]));
    }
    let Some(zone) = state.rpz.zone(&rpz.zones[i].name) else {
        return Some(wire::reply(&asked, rcode::SERVFAIL, &[]));
    };
    let soa = wire::soa(&zone.wire, zone.serial());
    Some(wire::reply(&asked, rcode::NOERROR, &[&soa]))
}

/// Builds the zones of `config` at `now`. A zone whose owners are those of
/// the zone it replaces keeps its serial; a changed or new one gets the
/// current time in seconds, or one more than before if that is not larger
/// (serials only grow, whatever the clock did).
pub fn build(runtime: &Arc<Runtime>, old: &Zones, now: Timestamp) -> Zones {
    let weak: Weak<Runtime> = Arc::downgrade(runtime);
    let from: Weak<dyn std::any::Any + Send + Sync> = weak;
    let Some(rpz) = &runtime.policy.config.rpz else {
        return Zones {
            zones: Vec::new(),
            from,
        };
    };
    let seconds = u32::try_from(now.as_second()).unwrap_or(u32::MAX);
    let mut zones = Vec::new();
    for z in &rpz.zones {
        let sel = Selection {
            network: Some(z.network.clone()),
            lists: z.lists.clone(),
        };
        let prior = old.zones.iter().find(|o| o.name == z.name);
        let mut e = match export::plan(&runtime.policy, &sel, now) {
            Ok(e) => e,
            Err(err) => {
                tracing::error!(zone = %z.name, "RPZ zone not rebuilt, keeping the one in force: {err}");
                zones.extend(prior.cloned());
                continue;
            }
        };
        let Some(wire) = wire::wire_name(&z.name) else {
            continue;
        };
        e.serial = match prior {
            Some(p) if p.export.owners == e.owners && p.export.patterns == e.patterns => p.serial(),
            Some(p) => seconds.max(p.serial().saturating_add(1)),
            None => seconds,
        };
        zones.push(Arc::new(Zone {
            name: z.name.clone(),
            wire,
            export: e,
        }));
    }
    Zones { zones, from }
}

/// The next instant a rule's action changes (after `now`), when the zones
/// must be decided again even without a reload.
fn next_change(config: &Config, now: Timestamp) -> Option<Timestamp> {
    config
        .rules
        .iter()
        .flat_map(|r| [r.from, r.until])
        .flatten()
        .filter(|t| *t > now)
        .min()
}

/// Runs until `stop`: builds the zones at start, again whenever a new
/// runtime is in force or a rule's action changes with time, and sends
/// NOTIFY for every zone whose serial changed.
pub async fn run(state: Arc<State>, mut stop: watch::Receiver<bool>) {
    // A weak pointer notices a new runtime without keeping the old alive.
    let mut seen: Weak<Runtime> = Weak::new();
    let mut due: Option<Timestamp> = None;
    loop {
        let runtime = state.current.load_full();
        let now = Timestamp::now();
        let fresh = !std::ptr::eq(seen.as_ptr(), Arc::as_ptr(&runtime));
        if fresh || due.is_some_and(|t| t <= now) {
            seen = Arc::downgrade(&runtime);
            due = next_change(&runtime.policy.config, now);
            rebuild(&state, runtime, now).await;
        } else {
            drop(runtime);
        }
        tokio::select! {
            () = tokio::time::sleep(LOOK) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn rebuild(state: &Arc<State>, runtime: Arc<Runtime>, now: Timestamp) {
    let old = state.rpz.load();
    let notify_to = runtime
        .policy
        .config
        .rpz
        .as_ref()
        .map(|r| r.notify.clone())
        .unwrap_or_default();
    let built = {
        let old = old.clone();
        tokio::task::spawn_blocking(move || build(&runtime, &old, now)).await
    };
    let Ok(zones) = built else {
        return;
    };
    let changed: Vec<Arc<Zone>> = zones
        .zones
        .iter()
        .filter(|z| {
            old.zones
                .iter()
                .find(|o| o.name == z.name)
                .is_none_or(|o| o.serial() != z.serial())
        })
        .cloned()
        .collect();
    for z in &zones.zones {
        state.metrics.rpz_serial(&z.name, z.serial());
    }
    if !notify_to.is_empty() {
        let results = notify::Sent::ALL.map(notify::Sent::as_str);
        state.metrics.rpz_notify_series(&results);
    }
    state.rpz.store(Arc::new(zones));
    for z in changed {
        tracing::info!(zone = %z.name, serial = z.serial(), owners = z.export.owners.len(), "RPZ zone serial");
        for to in &notify_to {
            let (state, z, to) = (state.clone(), z.clone(), *to);
            tokio::spawn(async move {
                let result = notify::send(&z.wire, &wire::soa(&z.wire, z.serial()), to).await;
                state.metrics.rpz_notified(result.as_str());
                match result {
                    notify::Sent::Ok => {
                        tracing::info!(zone = %z.name, serial = z.serial(), %to, "NOTIFY answered");
                    }
                    other => {
                        tracing::warn!(zone = %z.name, serial = z.serial(), %to, "NOTIFY not answered: {}", other.as_str());
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_at_or_under_a_zone_is_found_case_insensitively() {
        let rpz = Rpz {
            zones: vec![crate::config::RpzZone {
                name: "cutoff.rpz".into(),
                network: "default".into(),
                lists: vec![],
            }],
            allow_transfer: vec![],
            notify: vec![],
        };
        let w = |n: &str| wire::wire_name(n).unwrap();
        assert_eq!(zone_of(&rpz, &w("CutOff.Rpz")), Some((0, true)));
        assert_eq!(zone_of(&rpz, &w("a.b.cutoff.rpz")), Some((0, false)));
        assert_eq!(zone_of(&rpz, &w("xcutoff.rpz")), None);
        assert_eq!(zone_of(&rpz, &w("rpz")), None);
        assert_eq!(zone_of(&rpz, &[0]), None);
    }
}

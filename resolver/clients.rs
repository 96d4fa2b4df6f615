//! The remediation table: per network, every client that asked for a listed
//! (Kaspersky) name, with first and last seen, count, categories, and how
//! many lookups were blocked or only logged. Served at `/api/v1/clients`,
//! read by `cutoff report`, and counted into `cutoff_kaspersky_clients`.
//!
//! Sits after the answer, only for queries that matched a list entry. Memory
//! is bounded: at the cap, the clients seen longest ago are forgotten first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::blocklist::Category;
use crate::policy::Verdict;

/// Clients kept by default.
pub const DEFAULT_CAP: usize = 100_000;

/// One client of one network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRow {
    /// The network's name.
    pub network: String,
    /// The client's address (as the query log writes it).
    pub client: String,
    /// First lookup of a listed name.
    pub first_seen: Timestamp,
    /// Last lookup of a listed name.
    pub last_seen: Timestamp,
    /// Lookups of listed names.
    pub count: u64,
    /// Categories asked for, sorted.
    pub categories: Vec<String>,
    /// Lookups answered with the blocked answer.
    pub blocked: u64,
    /// Lookups only logged (forwarded).
    pub logged: u64,
}

#[derive(Debug)]
struct Stats {
    first: Timestamp,
    last: Timestamp,
    count: u64,
    categories: u16,
    blocked: u64,
    logged: u64,
}

/// The table.
#[derive(Debug)]
pub struct ClientTable {
    cap: usize,
    map: Mutex<HashMap<(Arc<str>, IpAddr), Stats>>,
}

impl ClientTable {
    /// A table holding at most `cap` clients.
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Records one lookup of a listed name.
    pub fn record(
        &self,
        network: &Arc<str>,
        client: IpAddr,
        category: Option<Category>,
        verdict: Verdict,
        now: Timestamp,
    ) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.cap && !map.contains_key(&(network.clone(), client)) {
            // Forget the tenth of the table seen longest ago (amortised O(1)).
            let mut lasts: Vec<Timestamp> = map.values().map(|s| s.last).collect();
            let cut = lasts.len() / 10;
            let (_, nth, _) = lasts.select_nth_unstable(cut);
            let nth = *nth;
            map.retain(|_, s| s.last > nth);
        }
        let s = map.entry((network.clone(), client)).or_insert(Stats {
            first: now,
            last: now,
            count: 0,
            categories: 0,
            blocked: 0,
            logged: 0,
        });
        s.last = now;
        s.count += 1;
        if let Some(c) = category {
            s.categories |= 1 << (c as u16);
        }
        match verdict {
            Verdict::Block => s.blocked += 1,
            Verdict::Log => s.logged += 1,
            _ => {}
        }
    }

    /// Distinct clients per network seen at or after `since`.
    pub fn distinct_since(&self, since: Timestamp) -> HashMap<Arc<str>, usize> {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: HashMap<Arc<str>, usize> = HashMap::new();
        for ((net, _), s) in map.iter() {
            if s.last >= since {
                *out.entry(net.clone()).or_default() += 1;
            }
        }
        out
    }

    /// Every client seen at or after `since`, by network then count, with
    /// addresses written by `render` (the query log's `client` mode, so a
    /// truncated or hashed deployment does not leak addresses here; clients
    /// that render alike are merged).
    pub fn rows(
        &self,
        since: Option<Timestamp>,
        render: impl Fn(IpAddr) -> String,
    ) -> Vec<ClientRow> {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let mut merged: HashMap<(String, String), (Stats, u16)> = HashMap::new();
        for ((net, ip), s) in map.iter() {
            if since.is_some_and(|t| s.last < t) {
                continue;
            }
            let e = merged.entry((net.to_string(), render(*ip))).or_insert((
                Stats {
                    first: s.first,
                    last: s.last,
                    count: 0,
                    categories: 0,
                    blocked: 0,
                    logged: 0,
                },
                0,
            ));
            e.0.first = e.0.first.min(s.first);
            e.0.last = e.0.last.max(s.last);
            e.0.count += s.count;
            e.0.blocked += s.blocked;
            e.0.logged += s.logged;
            e.1 |= s.categories;
        }
        drop(map);
        let mut rows: Vec<ClientRow> = merged
            .into_iter()
            .map(|((network, client), (s, cats))| ClientRow {
                network,
                client,
                first_seen: s.first,
                last_seen: s.last,
                count: s.count,
                categories: Category::ALL
                    .iter()
                    .filter(|c| cats & (1 << (**c as u16)) != 0)
                    .map(|c| c.as_str().to_owned())
                    .collect(),
                blocked: s.blocked,
                logged: s.logged,
            })
            .collect();
        sort(&mut rows);
        rows
    }
}

/// Orders rows by network, then most lookups first, then client.
pub fn sort(rows: &mut [ClientRow]) {
    rows.sort_by(|a, b| {
        a.network
            .cmp(&b.network)
            .then(b.count.cmp(&a.count))
            .then(a.client.cmp(&b.client))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_are_aggregated_per_network_and_client() {
        let t = ClientTable::new(10);
        let lab: Arc<str> = "lab".into();
        let ip: IpAddr = "10.1.1.1".parse().unwrap();
        let t0: Timestamp = "2024-10-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2024-10-02T00:00:00Z".parse().unwrap();
        t.record(&lab, ip, Some(Category::Update), Verdict::Block, t0);
        t.record(&lab, ip, Some(Category::Telemetry), Verdict::Log, t1);
        let rows = t.rows(None, |ip| ip.to_string());
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.count, r.blocked, r.logged), (2, 1, 1));
        assert_eq!((r.first_seen, r.last_seen), (t0, t1));
        assert_eq!(r.categories, ["update", "telemetry"]);
        assert_eq!(t.distinct_since(t1).get(&lab), Some(&1));
        assert!(
            t.rows(Some("2024-10-03T00:00:00Z".parse().unwrap()), |ip| ip
                .to_string())
                .is_empty()
        );
    }

    #[test]
    fn the_table_stays_within_its_cap() {
        let t = ClientTable::new(100);
        let net: Arc<str> = "default".into();
        let start: Timestamp = "2024-10-01T00:00:00Z".parse().unwrap();
        for i in 0..1000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            t.record(
                &net,
                ip,
                None,
                Verdict::Log,
                start + jiff::SignedDuration::from_secs(i64::from(i)),
            );
        }
        let rows = t.rows(None, |ip| ip.to_string());
        assert!(rows.len() <= 100, "{}", rows.len());
        assert!(
            rows.iter().any(|r| r.client == "10.0.3.231"),
            "the latest client is kept"
        );
    }
}

//! The table of open TCP connections, shared by every TCP listener.
//!
//! Sits in `server`, at accept, before a connection task starts. Two limits
//! keep one client from holding every slot by reopening connections as
//! they close (issue 15.7):
//! - a source prefix (/32 IPv4, /56 IPv6, or the `rate_limit` prefixes
//!   when set) may hold at most `tcp.max_per_client` connections; its next
//!   one is closed at once;
//! - when the table holds `tcp.max_connections`, the connection idle the
//!   longest (no query waiting for an answer) is told to close, and the new
//!   one takes its slot; only when every connection has a query in hand is
//!   the new one refused.

#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio::time::Instant;

/// A client's key: its address cut to the prefix (see
/// [`crate::ratelimit::prefix_key`]).
pub(super) type ClientKey = (bool, u128);

/// One open connection, as the table and its task both see it.
#[derive(Debug)]
pub(super) struct Slot {
    key: ClientKey,
    epoch: Instant,
    /// Milliseconds since the table's epoch at the last complete query.
    last_query: AtomicU64,
    /// Whether a query read on it still waits for its answer.
    busy: AtomicBool,
    evict: Notify,
}

impl Slot {
    /// Records that a whole query was read now.
    pub(super) fn touch(&self) {
        self.last_query
            .store(ms_since(self.epoch), Ordering::Relaxed);
    }

    /// Records whether queries wait for answers (a busy connection is
    /// never evicted).
    pub(super) fn set_busy(&self, busy: bool) {
        self.busy.store(busy, Ordering::Relaxed);
    }

    /// Resolves once the table has chosen this connection to make room.
    pub(super) async fn evicted(&self) {
        self.evict.notified().await;
    }
}

/// What admitting a new connection gave.
#[derive(Debug)]
pub(super) enum Admit {
    /// Admitted; `evicted` says whether an idle connection was told to go.
    Open { lease: Lease, evicted: bool },
    /// Its prefix already holds `tcp.max_per_client` connections.
    OverClient,
    /// The table is full and every connection has a query in hand.
    Full,
}

/// A connection's place in the table, given back on drop.
#[derive(Debug)]
pub(super) struct Lease {
    table: Arc<Table>,
    id: u64,
    /// The connection's shared state.
    pub(super) slot: Arc<Slot>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.table.inner.lock() {
            inner.remove(self.id);
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    open: HashMap<u64, Arc<Slot>>,
    per_client: HashMap<ClientKey, usize>,
}

impl Inner {
    fn remove(&mut self, id: u64) {
        let Some(slot) = self.open.remove(&id) else {
            return;
        };
        if let Some(n) = self.per_client.get_mut(&slot.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_client.remove(&slot.key);
            }
        }
    }

    /// The connection idle the longest, if any is idle.
    fn oldest_idle(&self) -> Option<u64> {
        self.open
            .iter()
            .filter(|(_, s)| !s.busy.load(Ordering::Relaxed))
            .min_by_key(|(id, s)| (s.last_query.load(Ordering::Relaxed), **id))
            .map(|(id, _)| *id)
    }
}

/// The open connections with their limits.
#[derive(Debug)]
pub(super) struct Table {
    max: usize,
    per_client: usize,
    epoch: Instant,
    inner: Mutex<Inner>,
}

impl Table {
    /// An empty table for `max` connections, `per_client` from one prefix.
    pub(super) fn new(max: usize, per_client: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            per_client,
            epoch: Instant::now(),
            inner: Mutex::default(),
        })
    }

    /// Admits a connection from `key`, making room if the table is full.
    pub(super) fn admit(self: &Arc<Self>, key: ClientKey) -> Admit {
        let Ok(mut inner) = self.inner.lock() else {
            return Admit::Full;
        };
        if inner.per_client.get(&key).copied().unwrap_or(0) >= self.per_client {
            return Admit::OverClient;
        }
        let mut evicted = false;
        if inner.open.len() >= self.max {
            let Some(victim) = inner.oldest_idle() else {
                return Admit::Full;
            };
            // Out of the table now, so the count stays at the cap; its
            // task closes the socket as soon as it sees the signal.
            if let Some(slot) = inner.open.get(&victim) {
                slot.evict.notify_one();
            }
            inner.remove(victim);
            evicted = true;
        }
        let id = inner.next;
        inner.next = inner.next.wrapping_add(1);
        let slot = Arc::new(Slot {
            key,
            epoch: self.epoch,
            last_query: AtomicU64::new(ms_since(self.epoch)),
            busy: AtomicBool::new(false),
            evict: Notify::new(),
        });
        inner.open.insert(id, slot.clone());
        let n = inner.per_client.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        Admit::Open {
            lease: Lease {
                table: self.clone(),
                id,
                slot,
            },
            evicted,
        }
    }
}

fn ms_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn open(t: &Arc<Table>, key: ClientKey) -> (Lease, bool) {
        match t.admit(key) {
            Admit::Open { lease, evicted } => (lease, evicted),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_prefix_at_its_cap_is_refused_while_another_is_admitted() {
        let t = Table::new(10, 2);
        let a = (false, 1);
        let _l1 = open(&t, a);
        let l2 = open(&t, a);
        assert!(matches!(t.admit(a), Admit::OverClient));
        assert!(matches!(t.admit((false, 2)), Admit::Open { .. }));
        drop(l2);
        assert!(matches!(t.admit(a), Admit::Open { .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_evicts_the_connection_idle_longest_and_spares_busy_ones() {
        let t = Table::new(2, 10);
        let (first, _) = open(&t, (false, 1));
        tokio::time::advance(std::time::Duration::from_millis(5)).await;
        let (second, _) = open(&t, (false, 1));
        tokio::time::advance(std::time::Duration::from_millis(5)).await;
        // The first had a query since, so the second is now idle longest.
        first.slot.touch();
        let (third, evicted) = open(&t, (false, 2));
        assert!(evicted);
        second.slot.evicted().await;
        // Everything busy: nothing to evict.
        first.slot.set_busy(true);
        third.slot.set_busy(true);
        assert!(matches!(t.admit((false, 3)), Admit::Full));
        // The evicted lease's drop does not free a slot twice.
        drop(second);
        assert!(matches!(t.admit((false, 3)), Admit::Full));
    }
}

//! The cache's table: entries by key, bounded in bytes (and optionally in
//! count), evicted with SIEVE (Zhang et al., NSDI 2024) so that names asked
//! again survive a flood of names asked once.
//!
//! Sits under [`super::Cache`], behind its lock. SIEVE keeps one FIFO queue
//! and a "visited" bit per entry: a hit only sets the bit (no reordering, so
//! a hit is cheap), and the eviction hand walks from the oldest entry
//! towards the newest, clearing bits and evicting the first entry without
//! one. A name asked once is evicted on the hand's first pass; a name asked
//! again between two passes stays.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::HashTable;

use super::entry::{Entry, chunk};

/// No slot.
const NIL: u32 = u32::MAX;

/// Default `cache.stale_refresh`: how long a name whose refresh failed is
/// served stale without asking the upstreams again (RFC 8767 §5, "failure
/// recheck timer"; BIND's `stale-refresh-time`).
pub const RECHECK: Duration = Duration::from_secs(30);

/// What bounds the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes accounted (keys, entries, the table itself); 0: no cache.
    pub max_bytes: usize,
    /// Entries held, when `cache.size` caps them too.
    pub max_entries: Option<usize>,
    /// How long past its TTL an entry may still be served stale.
    pub stale_for: Duration,
    /// How long a name is served stale after a failed refresh before the
    /// upstreams are asked again (in the background).
    pub stale_refresh: Duration,
}

#[derive(Debug)]
struct Slot {
    key: Box<[u8]>,
    entry: Option<Arc<Entry>>,
    /// Towards the newest entry.
    prev: u32,
    /// Towards the oldest entry (for free slots: the next free one).
    next: u32,
    visited: bool,
    /// Serve stale without asking the upstreams until then.
    recheck: Option<Instant>,
    cost: usize,
}

/// What a lookup found.
#[derive(Debug)]
pub(super) enum Found {
    /// Within its TTL.
    Fresh(Arc<Entry>),
    /// Expired, and its last refresh failed: served stale. `refresh` is
    /// set once per `stale_refresh` interval, when the upstreams should be
    /// asked again in the background.
    Stale { entry: Arc<Entry>, refresh: bool },
    /// Nothing that may be served without asking an upstream.
    Nothing,
}

/// Seeded per process: keys are query names, which clients choose.
type Hasher = foldhash::fast::RandomState;

#[derive(Debug)]
pub(super) struct Store {
    limits: Limits,
    table: HashTable<u32>,
    slots: Vec<Slot>,
    free: u32,
    /// Newest entry.
    head: u32,
    /// Oldest entry.
    tail: u32,
    hand: u32,
    len: usize,
    heap: usize,
    hasher: Hasher,
}

impl Store {
    pub(super) fn new(limits: Limits) -> Self {
        Self {
            limits,
            table: HashTable::new(),
            slots: Vec::new(),
            free: NIL,
            head: NIL,
            tail: NIL,
            hand: NIL,
            len: 0,
            heap: 0,
            hasher: Hasher::default(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Every byte the cache is charged for: each entry's key and heap
    /// allocations, plus the slot array and hash table at their capacity.
    pub(super) fn bytes(&self) -> usize {
        let buckets = match self.table.capacity() {
            0 => 0,
            c => (c * 8).div_ceil(7).next_power_of_two(),
        };
        // hashbrown: one u32 and one control byte per bucket, plus a group.
        let table = if buckets == 0 {
            0
        } else {
            chunk(buckets * 5 + 16)
        };
        self.heap + chunk(self.slots.capacity() * size_of::<Slot>()) + table
    }

    fn find(&self, key: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        self.table
            .find(hash, |&i| *self.slots[i as usize].key == *key)
            .copied()
    }

    /// The entry for `key`, marking it used. Entries past their stale
    /// window are dropped here.
    pub(super) fn get(&mut self, key: &[u8], now: Instant) -> Found {
        let Some(i) = self.find(key) else {
            return Found::Nothing;
        };
        let stale_for = self.limits.stale_for;
        let every = self.limits.stale_refresh;
        let slot = &mut self.slots[i as usize];
        let Some(entry) = slot.entry.clone() else {
            return Found::Nothing;
        };
        if entry.fresh(now) {
            slot.visited = true;
            Found::Fresh(entry)
        } else if now >= entry.expires() + stale_for {
            self.remove(i);
            Found::Nothing
        } else if let Some(r) = slot.recheck {
            slot.visited = true;
            // Past the recheck time this lookup is still answered stale, and
            // asks for one refresh; the next is a whole interval away, so a
            // dead upstream is asked about a name at most once an interval.
            let refresh = now >= r;
            if refresh {
                slot.recheck = Some(now + every);
            }
            Found::Stale { entry, refresh }
        } else {
            Found::Nothing
        }
    }

    /// The expired entry for `key` when an upstream just failed for it:
    /// it is served stale, and so are its next lookups until its refresh
    /// brings a fresh answer.
    pub(super) fn stale(&mut self, key: &[u8], now: Instant) -> Option<Arc<Entry>> {
        let i = self.find(key)?;
        let stale_for = self.limits.stale_for;
        let every = self.limits.stale_refresh;
        let slot = &mut self.slots[i as usize];
        let entry = slot.entry.clone()?;
        if stale_for.is_zero() || now >= entry.expires() + stale_for {
            return None;
        }
        slot.recheck = Some(now + every);
        slot.visited = true;
        Some(entry)
    }

    /// Stores `entry`, replacing any under `key`, then evicts until the
    /// limits hold.
    pub(super) fn put(&mut self, key: &[u8], entry: Arc<Entry>, now: Instant) {
        if self.limits.max_bytes == 0 || self.limits.max_entries == Some(0) || entry.ttl.is_zero() {
            return;
        }
        let cost = chunk(key.len()) + entry.heap_cost();
        if let Some(i) = self.find(key) {
            let slot = &mut self.slots[i as usize];
            self.heap = self.heap - slot.cost + cost;
            slot.cost = cost;
            slot.entry = Some(entry);
            slot.recheck = None;
        } else {
            let slot = Slot {
                key: key.into(),
                entry: Some(entry),
                prev: NIL,
                next: self.head,
                visited: false,
                recheck: None,
                cost,
            };
            let i = if self.free == NIL {
                let Ok(i) = u32::try_from(self.slots.len()) else {
                    return;
                };
                if i == NIL {
                    return;
                }
                self.slots.push(slot);
                i
            } else {
                let i = self.free;
                self.free = self.slots[i as usize].next;
                self.slots[i as usize] = slot;
                i
            };
            if self.head != NIL {
                self.slots[self.head as usize].prev = i;
            }
            self.head = i;
            if self.tail == NIL {
                self.tail = i;
            }
            let Self {
                table,
                slots,
                hasher,
                ..
            } = self;
            table.insert_unique(hasher.hash_one(key), i, |&j| {
                hasher.hash_one(&*slots[j as usize].key)
            });
            self.len += 1;
            self.heap += cost;
        }
        while self.len > 0
            && (self.bytes() > self.limits.max_bytes
                || self.limits.max_entries.is_some_and(|m| self.len > m))
        {
            self.evict(now);
        }
    }

    /// SIEVE: from the hand towards the newest entry, wrapping to the
    /// oldest, clear visited bits until an unvisited entry (or one past its
    /// stale window) is found; evict it.
    fn evict(&mut self, now: Instant) {
        let stale_for = self.limits.stale_for;
        let mut at = if self.hand == NIL {
            self.tail
        } else {
            self.hand
        };
        while at != NIL {
            let slot = &mut self.slots[at as usize];
            let dead = slot
                .entry
                .as_ref()
                .is_none_or(|e| now >= e.expires() + stale_for);
            if !slot.visited || dead {
                break;
            }
            slot.visited = false;
            at = if slot.prev == NIL {
                self.tail
            } else {
                slot.prev
            };
        }
        if at != NIL {
            self.hand = self.slots[at as usize].prev;
            self.remove(at);
        }
    }

    /// Unlinks slot `i`, drops its entry and puts it on the free list.
    fn remove(&mut self, i: u32) {
        let hash = self.hasher.hash_one(&*self.slots[i as usize].key);
        if let Ok(found) = self.table.find_entry(hash, |&j| j == i) {
            found.remove();
        }
        let (prev, next) = {
            let s = &self.slots[i as usize];
            (s.prev, s.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
        if self.hand == i {
            self.hand = prev;
        }
        let s = &mut self.slots[i as usize];
        self.heap -= s.cost;
        self.len -= 1;
        *s = Slot {
            key: Box::default(),
            entry: None,
            prev: NIL,
            next: self.free,
            visited: false,
            recheck: None,
            cost: 0,
        };
        self.free = i;
    }
}

/// The bytes an entry is charged beyond its answer, for a name of about 20
/// bytes and one address: the key, the entry and its allocations, its slot
/// and hash bucket (docs/performance.md states it).
#[cfg(test)]
pub(super) const PER_ENTRY_OVERHEAD: usize = 400;

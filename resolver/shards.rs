//! A table split into shards by key hash, each behind its own lock, so the
//! receive loops of several workers seldom wait for one another.
//!
//! Sits beside the query flow as a leaf: the rate limiter's buckets and
//! the answer cache's stores use it (docs/adr/0009-udp-workers-and-batches.md
//! lists what is shared per query and how). A lock is held for one lookup and update, never across
//! an await; a poisoned shard is used as it is (its data is counters and
//! buckets, consistent after any panic of a holder).

use std::hash::{BuildHasher, Hash};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Shards per table by default: well above the worker counts a resolver
/// host runs, small enough that a whole-table pass stays cheap.
pub const SHARDS: usize = 16;

/// Tables of `T` (at least one), one chosen per key.
#[derive(Debug)]
pub struct Shards<T> {
    shards: Box<[Mutex<T>]>,
    // Its own seed: the tables inside hash the same keys with theirs, and
    // one hash for both would leave each shard's table with clustered keys.
    hasher: foldhash::fast::RandomState,
}

impl<T: Default> Default for Shards<T> {
    fn default() -> Self {
        Self::with(SHARDS, |_| T::default())
    }
}

impl<T> Shards<T> {
    /// `n` shards (at least one), shard `i` made by `make(i)`.
    pub fn with(n: usize, make: impl FnMut(usize) -> T) -> Self {
        Self {
            shards: (0..n.max(1)).map(make).map(Mutex::new).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// How many shards there are.
    pub fn count(&self) -> usize {
        self.shards.len()
    }

    /// The shard that holds `key`, locked.
    pub fn lock<K: Hash + ?Sized>(&self, key: &K) -> MutexGuard<'_, T> {
        // The high half: the low bits are what tables inside look at first.
        let h = usize::try_from(self.hasher.hash_one(key) >> 32).unwrap_or(0);
        // `with` makes at least one shard: the remainder is an index.
        self.shards[h % self.shards.len()]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Every shard in turn, locked one at a time (for whole-table reads).
    pub fn each(&self, mut f: impl FnMut(&mut T)) {
        for s in &self.shards {
            f(&mut s.lock().unwrap_or_else(PoisonError::into_inner));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn a_key_always_finds_its_own_shard_and_keys_spread_over_all() {
        let t: Shards<HashMap<u32, u32>> = Shards::default();
        for k in 0..4096u32 {
            *t.lock(&k).entry(k).or_default() += 1;
        }
        for k in 0..4096u32 {
            assert_eq!(t.lock(&k).get(&k), Some(&1), "key {k} where it was put");
        }
        let mut sizes = vec![];
        t.each(|m| sizes.push(m.len()));
        assert_eq!(sizes.len(), SHARDS);
        assert_eq!(sizes.iter().sum::<usize>(), 4096);
        // 256 expected per shard; a shard with a tenth of that means one hash bit is stuck.
        assert!(sizes.iter().all(|n| *n > 25), "{sizes:?}");
    }

    #[test]
    fn one_shard_holds_every_key_and_none_is_made_one() {
        let made = std::cell::Cell::new(0);
        let t: Shards<Vec<u32>> = Shards::with(0, |_| {
            made.set(made.get() + 1);
            Vec::new()
        });
        assert_eq!((t.count(), made.get()), (1, 1));
        for k in 0..100u32 {
            t.lock(&k).push(k);
        }
        assert_eq!(t.lock(&0u32).len(), 100);
    }
}

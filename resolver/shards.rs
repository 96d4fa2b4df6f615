//! A table split into shards by key hash, each behind its own lock, so the
//! receive loops of several workers seldom wait for one another.
//!
//! Sits beside the query flow as a leaf: the rate limiter's buckets use it
//! (docs/adr/0009-udp-workers-and-batches.md lists what is shared per
//! query and how). A lock is held for one lookup and update, never across
//! an await; a poisoned shard is used as it is (its data is counters and
//! buckets, consistent after any panic of a holder).

use std::hash::{BuildHasher, Hash};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Shards per table: a power of two, well above the worker counts a
/// resolver host runs, small enough that a whole-table pass stays cheap.
pub const SHARDS: usize = 16;
const _: () = assert!(SHARDS == 16, "`lock` takes the top four bits of the hash");

/// `SHARDS` tables of `T`, one chosen per key.
#[derive(Debug)]
pub struct Shards<T> {
    shards: Box<[Mutex<T>]>,
    // Its own seed: the tables inside hash the same keys with theirs, and
    // one hash for both would leave each shard's table with clustered keys.
    hasher: foldhash::fast::RandomState,
}

impl<T: Default> Default for Shards<T> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

impl<T> Shards<T> {
    /// The shard that holds `key`, locked.
    pub fn lock<K: Hash>(&self, key: &K) -> MutexGuard<'_, T> {
        // The top four bits (SHARDS is 16): below SHARDS by construction.
        let i = usize::try_from(self.hasher.hash_one(key) >> 60).unwrap_or(0);
        self.shards[i % SHARDS]
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
}

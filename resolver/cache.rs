//! A bounded TTL cache of upstream answers, and the sharing of concurrent
//! identical misses (one upstream query for many clients: the DNSpooq
//! birthday defence).
//!
//! Sits after the policy decision and before `upstream` in the query flow:
//! only allowed and logged names get here. Answers are kept as the upstream's
//! bytes (exactly their length) with the offsets of their TTLs, so a hit
//! costs a copy and a few byte patches, not a parse. Negative answers are
//! kept for the SOA's negative TTL (RFC 2308); SERVFAIL and truncated
//! answers are not kept. The cache is bounded in bytes (`cache.max_bytes`),
//! evicts with SIEVE ([`store`]) in each of its shards (a cache of
//! [`SHARD_FROM`] bytes or more is split by key hash into
//! [`crate::shards::SHARDS`] stores with a lock and a share of the limits
//! each, so workers seldom wait for one another), and keeps expired answers for
//! `cache.stale_for` to serve them stale when every upstream fails
//! (RFC 8767); a name served stale is refreshed in the background
//! ([`refresh`]), never on a client's time.
//!
//! Keys are the question name in lowercased wire format (label lengths
//! included), so `a.b.example` and `a\.b.example` never share an entry, and
//! a lookup borrows its key from the stack: no allocation per hit.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hashbrown::HashMap;
use hashbrown::hash_map::EntryRef;
use tokio::sync::{OnceCell, mpsc};

use crate::shards::{SHARDS, Shards};

mod entry;
pub mod refresh;
mod store;

pub use entry::{Entry, STALE_TTL};
use store::{Found, Store};
pub use store::{Limits, RECHECK};

/// Longest key: flags, type, class, and a 255-byte wire-format name.
const KEY_MAX: usize = 5 + 255;

/// What identifies a cached answer: DO/CD flags, query type and class, and
/// the lowercased wire-format name, as one byte string built on the stack.
#[derive(Clone, Copy)]
pub struct Key {
    buf: [u8; KEY_MAX],
    len: usize,
}

impl Key {
    /// The key of a question given as wire labels (the root has none);
    /// `flags` holds the query's DO (bit 0) and CD (bit 1), which change
    /// what upstreams return. `None` when the name is longer than 255 bytes
    /// on the wire or a label longer than 63.
    pub fn new<'a>(
        labels: impl Iterator<Item = &'a [u8]>,
        qtype: u16,
        qclass: u16,
        flags: u8,
    ) -> Option<Self> {
        let mut buf = [0u8; KEY_MAX];
        buf[0] = flags;
        buf[1..3].copy_from_slice(&qtype.to_be_bytes());
        buf[3..5].copy_from_slice(&qclass.to_be_bytes());
        let mut len = 5;
        for label in labels {
            let n = u8::try_from(label.len()).ok().filter(|n| *n <= 63)?;
            // Room for this label and the root label after it.
            if len + 1 + label.len() + 1 > KEY_MAX {
                return None;
            }
            buf[len] = n;
            for (dst, src) in buf[len + 1..].iter_mut().zip(label) {
                *dst = src.to_ascii_lowercase();
            }
            len += 1 + label.len();
        }
        buf[len] = 0;
        Some(Self { buf, len: len + 1 })
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The key kept while its query waits for an upstream (a heap copy, so
    /// a waiting query does not carry the whole stack buffer).
    pub fn boxed(&self) -> BoxedKey {
        BoxedKey(self.as_bytes().into())
    }
}

/// A [`Key`] on the heap, for queries waiting on an upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoxedKey(Box<[u8]>);

impl BoxedKey {
    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The query an upstream is sent for this key, as the pipeline sends
    /// it for a client: RD, the key's CD and AD, EDNS with our UDP size
    /// and the key's DO bit (the upstream code sets a random ID).
    pub fn query(&self) -> Option<Vec<u8>> {
        let flags = *self.0.first()?;
        let question = self.0.get(1..5)?;
        let name = self.0.get(5..)?;
        let (dnssec_ok, cd, ad) = (flags & 1 != 0, flags & 2 != 0, flags & 4 != 0);
        let byte3 = if cd { 0x10 } else { 0 } | if ad { 0x20 } else { 0 };
        let mut q = Vec::with_capacity(12 + name.len() + 4 + 11);
        q.extend_from_slice(&[0, 0, 0x01, byte3, 0, 1, 0, 0, 0, 0, 0, 1]);
        q.extend_from_slice(name);
        // The key holds the type, then the class: the question's order.
        q.extend_from_slice(question);
        q.extend_from_slice(&[0, 0, 41]);
        q.extend_from_slice(&crate::wire::MAX_UDP.to_be_bytes());
        q.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
        Some(q)
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Key")
            .field(&self.as_bytes().escape_ascii().to_string())
            .finish()
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

type Flight = Arc<OnceCell<Option<Arc<Entry>>>>;

/// The smallest `cache.max_bytes` that is split into shards: each gets at
/// least 256 KiB, room for many answers even of the largest size. Smaller
/// caches are one store, whose eviction order is exact.
pub const SHARD_FROM: usize = SHARDS * 256 * 1024;

/// How many stores a cache within `limits` is split into.
fn shard_count(limits: &Limits) -> usize {
    let entries_allow = limits.max_entries.is_none_or(|n| n >= SHARDS * 64);
    if limits.max_bytes >= SHARD_FROM && entries_allow {
        SHARDS
    } else {
        1
    }
}

/// One shard's part of `limits`, for `n` shards.
fn share(limits: Limits, n: usize) -> Limits {
    let n = n.max(1);
    Limits {
        max_bytes: limits.max_bytes / n,
        // Rounded down: the shards together never hold more than `size`
        // (sharding needs 64 entries a shard, so none is left with 0).
        max_entries: limits.max_entries.map(|e| e / n),
        ..limits
    }
}
/// The upstream queries in flight, by key (hashbrown's, for lookups by a
/// borrowed key that copy it only when it is inserted).
type Flights = Mutex<HashMap<Box<[u8]>, Flight, foldhash::fast::RandomState>>;

/// The cache and the table of upstream queries in flight.
#[derive(Debug)]
pub struct Cache {
    limits: Limits,
    inner: Shards<Store>,
    flights: Flights,
    stale_answers: metrics::Counter,
    /// Names served stale whose upstreams should be asked again; bounded,
    /// so a request that finds it full is dropped (the next interval asks
    /// again).
    refresh_tx: mpsc::Sender<BoxedKey>,
    refresh_rx: Mutex<Option<mpsc::Receiver<BoxedKey>>>,
}

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    /// An answer to serve: fresh, or a stale copy while the upstreams fail.
    Hit(Arc<Entry>),
    /// Nothing usable.
    Miss,
}

impl Cache {
    /// A cache within `limits` (`max_bytes` 0 disables caching but keeps
    /// the sharing of identical misses); `stale_answers` counts the stale
    /// answers it hands out.
    pub fn new(limits: Limits, stale_answers: metrics::Counter) -> Self {
        let (refresh_tx, refresh_rx) = mpsc::channel(refresh::QUEUE);
        Self {
            limits,
            inner: {
                let n = shard_count(&limits);
                Shards::with(n, |_| Store::new(share(limits, n)))
            },
            flights: Mutex::new(HashMap::default()),
            stale_answers,
            refresh_tx,
            refresh_rx: Mutex::new(Some(refresh_rx)),
        }
    }

    /// The names to refresh in the background, for [`refresh::run`]; only
    /// the first caller gets them.
    pub fn refreshes(&self) -> Option<mpsc::Receiver<BoxedKey>> {
        self.refresh_rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// The store that holds `key`, locked.
    fn store(&self, key: &[u8]) -> std::sync::MutexGuard<'_, Store> {
        self.inner.lock(key)
    }

    /// The sum over the stores of `f`.
    fn sum(&self, f: impl Fn(&Store) -> usize) -> usize {
        let mut total = 0;
        self.inner.each(|s| total += f(s));
        total
    }

    /// Number of answers held (expired ones kept for serve-stale included).
    pub fn len(&self) -> usize {
        self.sum(Store::len)
    }

    /// Whether it holds no answer.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes accounted against `cache.max_bytes`.
    pub fn bytes(&self) -> usize {
        self.sum(Store::bytes)
    }

    /// The limits it was built with.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// How many stores it is split into.
    pub fn shards(&self) -> usize {
        self.inner.count()
    }

    /// A fresh answer for `key`, or a stale one once its refresh failed
    /// (RFC 8767). At most once every `cache.stale_refresh` a stale hit
    /// also asks for a background refresh: the client is answered at once
    /// and the upstreams are asked off its path.
    pub fn get(&self, key: &Key, now: Instant) -> Lookup {
        let found = self.store(key.as_bytes()).get(key.as_bytes(), now);
        match found {
            Found::Fresh(e) => Lookup::Hit(e),
            Found::Stale { entry, refresh } => {
                self.stale_answers.increment(1);
                if refresh {
                    // Full: dropped; the name is asked about next interval.
                    let _ = self.refresh_tx.try_send(key.boxed());
                }
                Lookup::Hit(Arc::new(entry.stale_copy(now)))
            }
            Found::Nothing => Lookup::Miss,
        }
    }

    /// After every upstream failed for `key`: its expired answer, as a
    /// stale copy (TTL 30, EDE 3), when it expired less than
    /// `cache.stale_for` ago.
    pub fn stale(&self, key: &BoxedKey, now: Instant) -> Option<Arc<Entry>> {
        let entry = self.store(key.as_bytes()).stale(key.as_bytes(), now)?;
        self.stale_answers.increment(1);
        Some(Arc::new(entry.stale_copy(now)))
    }

    /// Stores `entry` under `key` (nothing for a zero TTL), evicting what
    /// the limits require.
    pub fn insert(&self, key: &BoxedKey, entry: Arc<Entry>) {
        self.store(key.as_bytes())
            .put(key.as_bytes(), entry, Instant::now());
    }

    /// The answer for `key` from `fetch`, running `fetch` once for all
    /// callers asking for the same key at the same time, and caching it.
    pub async fn fetch<F, Fut>(&self, key: &BoxedKey, fetch: F) -> Option<Arc<Entry>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Option<Entry>>,
    {
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
            flights.entry_ref(key.as_bytes()).or_default().clone()
        };
        // Leaves the table when done, and also when the caller is dropped
        // mid-flight (a DoH stream reset, a closed TCP connection): else
        // every cancelled name would stay in it for good.
        let leave = Leave {
            flights: &self.flights,
            key: key.as_bytes(),
            flight,
        };
        leave
            .flight
            .get_or_init(|| async {
                let entry = fetch().await.map(Arc::new);
                if let Some(e) = &entry {
                    self.insert(key, e.clone());
                }
                entry
            })
            .await
            .clone()
    }
}

/// A caller's place in [`Cache::fetch`]'s table of flights: on drop, the
/// flight leaves the table if it is still the one there (a later one under
/// the same key stays).
struct Leave<'a> {
    flights: &'a Flights,
    key: &'a [u8],
    flight: Flight,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if let EntryRef::Occupied(f) = flights.entry_ref(self.key)
            && Arc::ptr_eq(f.get(), &self.flight)
        {
            f.remove();
        }
    }
}

/// Default `cache.max_bytes`: 16 MiB, room for some 40,000 typical answers
/// and small next to a Raspberry Pi's memory.
pub const DEFAULT_MAX_BYTES: usize = 16 << 20;

/// Default `cache.stale_for`: one day (RFC 8767 suggests 1 to 3 days).
pub const DEFAULT_STALE_FOR: Duration = Duration::from_secs(86_400);

#[cfg(test)]
mod tests;

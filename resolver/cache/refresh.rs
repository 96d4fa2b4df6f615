//! Background refresh of names served stale (RFC 8767 §5).
//!
//! Sits beside the query flow, never in it. Once every upstream failed
//! for a name, its expired answer is served stale; at most once every
//! `cache.stale_refresh` a stale hit queues the name here, and this task
//! asks the upstreams for it. A good answer replaces the stale one, so the
//! next client gets fresh data without having waited on an upstream; a
//! failure leaves the name stale until the next interval.
//!
//! Bounded: at most [`QUEUE`] names wait and [`CONCURRENT`] are asked at
//! once; a refresh shares the in-flight fetch of an identical client miss.
//! Only names a client was just answered from the cache get here, and the
//! cache is read after the policy decision, so a blocked name is never
//! refreshed.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::{BoxedKey, Entry};
use crate::runtime::State;

/// Names waiting for a refresh.
pub const QUEUE: usize = 256;

/// Refreshes running at once.
pub const CONCURRENT: usize = 8;

/// Refreshes the names `rx` yields until `shutdown` turns true.
pub async fn run(
    state: Arc<State>,
    mut rx: mpsc::Receiver<BoxedKey>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut running = JoinSet::new();
    loop {
        let key = tokio::select! {
            k = rx.recv() => match k {
                Some(k) => k,
                None => break,
            },
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        while running.len() >= CONCURRENT {
            running.join_next().await;
        }
        let state = state.clone();
        running.spawn(async move { refresh(&state, &key).await });
        while running.try_join_next().is_some() {}
    }
    running.abort_all();
}

/// Asks the upstreams of the running config for `key` once; a cacheable
/// answer replaces the stale one. Counted in `cutoff_cache_refreshes_total`.
async fn refresh(state: &State, key: &BoxedKey) {
    let Some(query) = key.query() else {
        return;
    };
    let runtime = state.current.load_full();
    let max_ttl = runtime.policy.config.serve.cache_max_ttl;
    let upstreams = &runtime.upstreams;
    let handles = &runtime.counters.upstream;
    let entry = state
        .cache
        .fetch(key, || async {
            let answer = upstreams.forward(&query, handles).await.ok()?;
            Entry::new(answer.bytes, answer.endpoint, max_ttl)
        })
        .await;
    // SERVFAIL and zero-TTL answers are not stored: the name stays stale.
    let fresh = entry.is_some_and(|e| !e.ttl.is_zero());
    state.metrics.cache_refresh(fresh);
}

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

use std::future::Future;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::BoxedKey;

/// Names waiting for a refresh.
pub const QUEUE: usize = 256;

/// Refreshes running at once.
pub const CONCURRENT: usize = 8;

/// Refreshes the names `rx` yields until `shutdown` turns true, each by
/// one call of `refresh` (the server passes one that asks the running
/// config's upstreams, so this module needs nothing above the cache).
pub async fn run<F, Fut>(
    refresh: F,
    mut rx: mpsc::Receiver<BoxedKey>,
    mut shutdown: watch::Receiver<bool>,
) where
    F: Fn(BoxedKey) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
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
        running.spawn(refresh(key));
        while running.try_join_next().is_some() {}
    }
    running.abort_all();
}

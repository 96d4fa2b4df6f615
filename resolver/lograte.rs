//! Keeps the log readable under attack: a tracing layer that lets each
//! message site (one `warn!` line in the code, ours or a dependency's)
//! print at most [`BURST`] times per [`WINDOW`], and counts the rest.
//! `serve` reports the counts every few seconds in one line
//! ([`report_suppressed`]), so a flood of malformed packets writes a few
//! lines, not megabytes that push cutoff's own messages out of journald's
//! rate limit.
//!
//! Outside the query flow: it only sees log events that the level filter
//! let through, which at the default level no query produces.

#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::callsite::Identifier;
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Messages one site may print per window.
pub const BURST: u32 = 5;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(10);

/// Events held back since the last report, by target (module path).
static SUPPRESSED: Mutex<Vec<(&'static str, u64)>> = Mutex::new(Vec::new());

struct Slot {
    start: Instant,
    count: u32,
}

/// The layer: add it to the subscriber before the formatting layer.
#[derive(Default)]
pub struct RateLimit {
    sites: Mutex<HashMap<Identifier, Slot>>,
}

impl RateLimit {
    /// A limiter with empty windows.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether one more event of `site` may print at `now`.
    fn allow(&self, site: Identifier, now: Instant) -> bool {
        let Ok(mut sites) = self.sites.lock() else {
            return true;
        };
        let slot = sites.entry(site).or_insert(Slot {
            start: now,
            count: 0,
        });
        if now.saturating_duration_since(slot.start) >= WINDOW {
            *slot = Slot {
                start: now,
                count: 0,
            };
        }
        slot.count = slot.count.saturating_add(1);
        slot.count <= BURST
    }
}

impl<S: Subscriber> Layer<S> for RateLimit {
    fn event_enabled(&self, event: &Event<'_>, _ctx: Context<'_, S>) -> bool {
        let meta = event.metadata();
        if self.allow(meta.callsite(), Instant::now()) {
            return true;
        }
        if let Ok(mut s) = SUPPRESSED.lock() {
            match s.iter_mut().find(|(t, _)| *t == meta.target()) {
                Some((_, n)) => *n = n.saturating_add(1),
                None => s.push((meta.target(), 1)),
            }
        }
        false
    }
}

/// Takes the counts held back since the last call, most first.
pub fn take_suppressed() -> Vec<(&'static str, u64)> {
    let mut taken = SUPPRESSED
        .lock()
        .map(|mut s| std::mem::take(&mut *s))
        .unwrap_or_default();
    taken.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
    taken
}

/// Logs one line saying how many messages were held back, if any.
pub fn report_suppressed() {
    let taken = take_suppressed();
    if taken.is_empty() {
        return;
    }
    let total: u64 = taken.iter().fold(0u64, |a, (_, n)| a.saturating_add(*n));
    let by: Vec<String> = taken.iter().map(|(t, n)| format!("{t}: {n}")).collect();
    tracing::warn!(
        "{total} log message(s) suppressed (at most {BURST} per message per {}s): {}",
        WINDOW.as_secs(),
        by.join(", ")
    );
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::unwrap_used)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    /// Counts the events that reach it.
    struct Count(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl<S: Subscriber> Layer<S> for Count {
        fn on_event(&self, _: &Event<'_>, _: Context<'_, S>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[test]
    fn one_site_prints_a_burst_per_window_and_the_rest_is_counted() {
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let subscriber = tracing_subscriber::registry()
            .with(RateLimit::new())
            .with(Count(seen.clone()));
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..1_000 {
                tracing::warn!(target: "flood", "per packet");
            }
            tracing::warn!(target: "other", "another site still prints");
        });
        assert_eq!(
            seen.load(std::sync::atomic::Ordering::Relaxed),
            BURST as usize + 1
        );
        let taken = take_suppressed();
        assert!(
            taken.contains(&("flood", 1_000 - u64::from(BURST))),
            "{taken:?}"
        );
    }

    #[test]
    fn a_new_window_allows_a_new_burst() {
        let l = RateLimit::new();
        let site = tracing::callsite::Identifier(&SITE);
        let t0 = Instant::now();
        for _ in 0..BURST {
            assert!(l.allow(site.clone(), t0));
        }
        assert!(!l.allow(site.clone(), t0));
        assert!(l.allow(site, t0 + WINDOW));
    }

    struct Site;
    impl tracing::callsite::Callsite for Site {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &tracing::Metadata<'_> {
            unimplemented!()
        }
    }
    static SITE: Site = Site;
}

//! Keeping URL lists current while serving: a task beside the listeners
//! downloads each `lists.NAME.url` when it is due, stores a good body as
//! the last-good copy (`blocklist::lastgood`) and then reloads, so the new
//! list reaches queries exactly as a SIGHUP reload does: a whole new
//! runtime built off the query path and swapped in with one store.
//!
//! Nothing here runs on the query path and nothing blocks it: a download
//! that fails, hangs or brings garbage leaves the running list and its
//! copy in place, with a log line and `cutoff_list_refresh_total`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::blocklist::feed::FeedSource;
use crate::blocklist::lastgood::{self, Outcome};
use crate::blocklist::{Source, UrlSource};
use crate::config::Config;
use crate::runtime::State;

/// How soon a failed download is tried again (or `refresh`, if shorter).
pub const RETRY: Duration = Duration::from_secs(300);

/// How often the task looks at the config in force, so a list added by a
/// reload is fetched without waiting for another list's turn.
const LOOK: Duration = Duration::from_secs(60);

/// What a list downloads: a URL list, or the signed feed of the shipped list.
#[derive(Clone, Debug)]
pub enum Download {
    /// `lists.NAME.url`.
    List(UrlSource),
    /// `lists.NAME.feed`.
    Feed(FeedSource),
}

impl Download {
    /// The URL, limits and copy.
    pub fn source(&self) -> &UrlSource {
        match self {
            Self::List(u) => u,
            Self::Feed(f) => &f.source,
        }
    }

    /// One download, checked and stored (never touching the running list).
    pub async fn update(&self) -> Outcome {
        match self {
            Self::List(u) => lastgood::update(u).await,
            Self::Feed(f) => crate::blocklist::feed::update(f).await,
        }
    }
}

/// The URL lists and feeds of a config, by name.
pub fn url_lists(config: &Config) -> Vec<(String, Download)> {
    config
        .lists
        .iter()
        .filter_map(|l| match &l.source {
            Source::Url(u) => Some((l.name.clone(), Download::List((**u).clone()))),
            Source::Feed(f) => Some((l.name.clone(), Download::Feed((**f).clone()))),
            _ => None,
        })
        .collect()
}

/// `required` URL lists that have no last-good copy: `serve` refuses to
/// start with any.
pub fn missing_required(config: &Config) -> Vec<String> {
    url_lists(config)
        .into_iter()
        .filter(|(_, d)| d.source().required && !d.source().copy.is_file())
        .map(|(name, d)| {
            let u = d.source();
            format!(
                "list `{name}` is `required: true` and has no last-good copy at {}: run `cutoff lists update` (serve never waits on the network)",
                u.copy.display()
            )
        })
        .collect()
}

/// How long until a list is due: now when it has no copy, else its
/// refresh interval after the last successful check.
pub fn due_in(source: &UrlSource) -> Duration {
    let Some(meta) = lastgood::meta(source).filter(|_| source.copy.is_file()) else {
        return Duration::ZERO;
    };
    let age = jiff::Timestamp::now()
        .as_second()
        .saturating_sub(meta.checked);
    let age = Duration::from_secs(u64::try_from(age).unwrap_or(0));
    source.refresh.saturating_sub(age)
}

/// Downloads one list, logs and counts the outcome.
pub async fn refresh_one(state: &State, name: &str, download: &Download) -> Outcome {
    let source = download.source();
    let started = std::time::Instant::now();
    let outcome = download.update().await;
    let ms = started.elapsed().as_millis();
    match &outcome {
        Outcome::Updated { entries, was } => {
            tracing::info!(list = name, entries, was = ?was, url = %source.url, ms, "list downloaded");
        }
        Outcome::Unchanged { entries } => {
            tracing::debug!(list = name, entries, "list unchanged");
        }
        Outcome::Failed(e) => {
            tracing::warn!(
                list = name,
                "list download failed, keeping the last-good copy: {e}"
            );
        }
        Outcome::Rejected(e) => {
            tracing::warn!(
                list = name,
                "list download refused, keeping the last-good copy: {e}"
            );
        }
        Outcome::Store(e) => tracing::error!(
            list = name,
            "cannot store the downloaded list in {}: {e}; keeping the last-good copy",
            source.copy.display()
        ),
    }
    let at = outcome
        .succeeded()
        .then(|| jiff::Timestamp::now().as_millisecond() as f64 / 1000.0);
    state.metrics.list_refreshed(name, outcome.label(), at);
    outcome
}

/// Runs until `stop`: downloads each URL list of the config in force when
/// it is due and calls `reload` after any list changed.
pub async fn run<F, Fut>(state: Arc<State>, mut stop: watch::Receiver<bool>, reload: F)
where
    F: Fn(Arc<State>) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut next: HashMap<String, Instant> = HashMap::new();
    loop {
        let lists = url_lists(&state.current.load().policy.config);
        let mut changed = false;
        for (name, download) in &lists {
            let source = download.source();
            let at = match next.get(name) {
                Some(at) => *at,
                None => {
                    // The last success survives restarts with the copy, so
                    // a restart does not look like a list that never refreshed.
                    let last = lastgood::meta(source)
                        .filter(|_| source.copy.is_file())
                        .map(|m| m.checked as f64);
                    state.metrics.list_refresh(name, lastgood::RESULTS, last);
                    let at = Instant::now() + due_in(source);
                    next.insert(name.clone(), at);
                    at
                }
            };
            if at > Instant::now() {
                continue;
            }
            let outcome = tokio::select! {
                o = refresh_one(&state, name, download) => o,
                _ = stop.wait_for(|s| *s) => return,
            };
            changed |= outcome.changed();
            let wait = if outcome.succeeded() {
                source.refresh
            } else {
                source.refresh.min(RETRY)
            };
            next.insert(name.clone(), Instant::now() + wait);
        }
        next.retain(|name, _| lists.iter().any(|(n, _)| n == name));
        if changed {
            reload(state.clone()).await;
        }
        let now = Instant::now();
        let sleep = next
            .values()
            .map(|at| at.saturating_duration_since(now))
            .min()
            .unwrap_or(LOOK)
            .min(LOOK);
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

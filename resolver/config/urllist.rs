//! Validation of a URL list (`lists.NAME.url` and its download settings):
//! the URL is checked, never fetched, so `cutoff check` works offline and
//! start-up never waits on the network. The list itself is read from its
//! last-good copy under `state_dir` (`blocklist::lastgood`).

use std::path::Path;

use super::check::Checker;
use super::raw::{At, RawList};
use super::settings::{duration, long_duration, parsed, size};
use crate::blocklist::{self, MAX_LIST_BYTES, MAX_LIST_ENTRIES, UrlSource};

/// Where URL lists keep their copies, and the CA they trust.
pub(super) struct Places<'a> {
    pub(super) base: &'a Path,
    pub(super) state_dir: &'a Path,
    pub(super) ca: Option<&'a Path>,
}

/// The shortest `refresh`: list hosts ask for no more than this.
const MIN_REFRESH: std::time::Duration = std::time::Duration::from_secs(60);

fn switch(c: &mut Checker<'_>, a: &Option<At<String>>) -> bool {
    match a.as_ref().map(|a| (a, a.value.as_str())) {
        None | Some((_, "false")) => false,
        Some((_, "true")) => true,
        Some((a, other)) => {
            c.error(a, format!("`{other}` is not true or false"));
            false
        }
    }
}

/// The download settings of a list with `url`, or problems recorded.
pub(super) fn source(
    c: &mut Checker<'_>,
    l: &RawList,
    url: &At<String>,
    state_dir: &Path,
    ca: Option<&Path>,
) -> Option<UrlSource> {
    let mut ok = true;
    let allow_http = switch(c, &l.allow_http);
    let required = switch(c, &l.required);
    if let Err(e) = blocklist::fetch::check_url(&url.value, allow_http) {
        c.error(url, e.to_string());
        ok = false;
    }
    let refresh = parsed(
        c,
        &mut ok,
        &l.refresh,
        |t| long_duration(t).filter(|d| *d >= MIN_REFRESH),
        "a duration from 1m to 7d, like 30m, 6h or 1d",
    )
    .unwrap_or(blocklist::DEFAULT_REFRESH);
    let timeout = parsed(
        c,
        &mut ok,
        &l.timeout,
        duration,
        "a duration like 1500ms, 30s or 2m (up to 1 hour)",
    )
    .unwrap_or(blocklist::DEFAULT_FETCH_TIMEOUT);
    let most = format!(
        "a size from 64KiB to {}MiB, like 8MiB",
        MAX_LIST_BYTES >> 20
    );
    let max_bytes = parsed(
        c,
        &mut ok,
        &l.max_bytes,
        |t| {
            size(t)
                .and_then(|n| u64::try_from(n).ok())
                .filter(|n| (1..=MAX_LIST_BYTES).contains(n))
        },
        &most,
    )
    .unwrap_or(MAX_LIST_BYTES);
    let max_lines = l.max_lines.as_ref().map_or(MAX_LIST_ENTRIES, |a| {
        usize::try_from(a.value).unwrap_or(MAX_LIST_ENTRIES)
    });
    let copy = state_dir
        .join("lists")
        .join(format!("{}.list", l.name.value));
    ok.then(|| UrlSource {
        url: url.value.clone(),
        refresh,
        timeout,
        max_bytes,
        max_lines,
        allow_http,
        required,
        copy,
        ca: ca.map(Path::to_path_buf),
    })
}

/// The signed feed of a `builtin: kaspersky` list (`feed`, `feed_key`),
/// with the download settings of a URL list; its copy is `NAME.yaml`.
pub(super) fn feed(
    c: &mut Checker<'_>,
    l: &RawList,
    url: &At<String>,
    places: &Places<'_>,
) -> Option<blocklist::feed::FeedSource> {
    if l.builtin.as_ref().map(|b| b.value.as_str()) != Some("kaspersky") {
        c.error(url, "only `builtin: kaspersky` takes a `feed`");
        return None;
    }
    if let Some(a) = &l.max_lines {
        c.error(a, "a feed is a catalogue: `max_lines` does not apply");
    }
    let key = l
        .feed_key
        .as_ref()
        .map_or(blocklist::feed::PUBLIC_KEY, |a| a.value.as_str());
    if let Some(a) = &l.feed_key
        && minisign_verify::PublicKey::from_base64(&a.value).is_err()
    {
        c.error(
            a,
            "not a minisign public key (the base64 line of a `minisign -G` .pub file)",
        );
        return None;
    }
    let mut source = source(c, l, url, places.state_dir, places.ca)?;
    source.copy.set_extension("yaml");
    let feed = blocklist::feed::FeedSource {
        source,
        key: key.to_owned(),
    };
    if let Err(e) = blocklist::feed::stored(&feed) {
        c.warn(
            url,
            format!("the stored feed copy is ignored: {e}; the embedded list is used"),
        );
    }
    Some(feed)
}

/// Keys that only a URL list takes.
pub(super) fn stray_keys(c: &mut Checker<'_>, l: &RawList) {
    let given = [
        l.refresh.as_ref(),
        l.timeout.as_ref(),
        l.max_bytes.as_ref(),
        l.allow_http.as_ref(),
        l.required.as_ref(),
    ];
    for a in given.into_iter().flatten() {
        c.error(a, "only a list with `url` takes this");
    }
    if let Some(a) = &l.max_lines {
        c.error(a, "only a list with `url` takes this");
    }
}

/// A URL list with no copy yet: a warning (`serve` refuses to start
/// without a `required` one; `cutoff lists update` must still load).
pub(super) fn missing_copy(c: &mut Checker<'_>, at: &At<String>, name: &str, u: &UrlSource) {
    let then = if u.required {
        "`required: true`: `serve` refuses to start until `cutoff lists update` has stored one"
    } else {
        "served without it until the first download succeeds"
    };
    c.warn(
        at,
        format!(
            "list `{name}` has no last-good copy at {} yet: {then}",
            u.copy.display()
        ),
    );
}

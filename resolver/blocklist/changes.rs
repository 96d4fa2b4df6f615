//! What a download changed: the entries of a list's copy before and after
//! `cutoff lists update`, as names added and removed. Outside the query
//! flow (the command line only); the copies are read from disk, each name
//! once, into a sorted list (a 1M-entry list takes some tens of MiB for
//! the moment the command runs).

use std::io::BufReader;

use super::feed::{self, FeedSource};
use super::{Catalogue, KASPERSKY_YAML, UrlSource};
use crate::matcher::Coverage;

/// The entries of a list as sorted text: `name` covers the name and what
/// is below it, `=name` only the name, `*.name` only what is below it.
pub type Entries = Vec<String>;

fn entry(name: &str, coverage: Coverage) -> String {
    match coverage {
        Coverage::Suffix => name.to_owned(),
        Coverage::Exact => format!("={name}"),
        Coverage::Below => format!("*.{name}"),
    }
}

/// The entries of a URL list's stored copy (empty without one).
pub fn url_copy(source: &UrlSource) -> Entries {
    let mut out = Vec::new();
    if let Ok(file) = std::fs::File::open(&source.copy) {
        let _ = super::lines::read_lines(BufReader::new(file), Coverage::Suffix, |name, c| {
            out.push(entry(&String::from_utf8_lossy(name), c));
        });
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The active entries of the feed's list in use: the stored copy when it
/// verifies and is newer than the embedded list, else the embedded list.
pub fn feed_copy(source: &FeedSource) -> Entries {
    let embedded = || Catalogue::parse(KASPERSKY_YAML, "builtin:kaspersky").ok();
    let stored = feed::stored(source).ok().flatten();
    let cat = match (stored, embedded()) {
        (Some(s), Some(e))
            if feed::compare_versions(&s.version, &e.version)
                == Some(std::cmp::Ordering::Greater) =>
        {
            Some(s)
        }
        (_, e) => e,
    };
    let mut out: Entries = cat
        .map(|c| {
            c.entries
                .iter()
                .filter(|e| e.enabled)
                .map(|e| entry(&e.domain, e.coverage))
                .collect()
        })
        .unwrap_or_default();
    out.sort_unstable();
    out.dedup();
    out
}

/// Entries in `after` and not in `before` (added), and the reverse
/// (removed), each sorted; both inputs sorted.
pub fn diff(before: &[String], after: &[String]) -> (Vec<String>, Vec<String>) {
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    let (mut b, mut a) = (before.iter().peekable(), after.iter().peekable());
    loop {
        match (b.peek(), a.peek()) {
            (Some(x), Some(y)) if x == y => {
                b.next();
                a.next();
            }
            (Some(x), Some(y)) if x < y => removed.extend(b.next().cloned()),
            (Some(_), Some(_)) | (None, Some(_)) => added.extend(a.next().cloned()),
            (Some(_), None) => removed.extend(b.next().cloned()),
            (None, None) => return (added, removed),
        }
    }
}

/// `+2 added: a, b` / `-1 removed: c`, at most `first` names each, then
/// how many more.
pub fn describe(sign: char, what: &str, names: &[String], first: usize) -> Option<String> {
    if names.is_empty() {
        return None;
    }
    let shown: Vec<&str> = names.iter().take(first).map(String::as_str).collect();
    let mut line = format!("{sign}{} {what}: {}", names.len(), shown.join(", "));
    if names.len() > first {
        line.push_str(&format!(", and {} more", names.len() - first));
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn names_only_in_the_new_copy_are_added_and_only_in_the_old_removed() {
        let (added, removed) = diff(&v(&["a", "c", "d"]), &v(&["b", "c", "e", "f"]));
        assert_eq!(added, v(&["b", "e", "f"]));
        assert_eq!(removed, v(&["a", "d"]));
        assert_eq!(diff(&v(&["a"]), &v(&["a"])), (vec![], vec![]));
    }

    #[test]
    fn a_long_change_names_the_first_few_and_counts_the_rest() {
        let names = v(&["a", "b", "c", "d"]);
        assert_eq!(
            describe('+', "added", &names, 2).as_deref(),
            Some("+4 added: a, b, and 2 more")
        );
        assert_eq!(describe('-', "removed", &[], 2), None);
    }
}

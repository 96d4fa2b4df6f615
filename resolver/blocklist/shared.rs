//! Reusing loaded lists across reloads: a list file whose bytes have not
//! changed since it was loaded is not read into a second index.
//!
//! Sits in `config::load` (through `config::lists`), before the query
//! path. A reload after a SIGHUP or a URL list refresh validates the whole
//! config again; without this, every list, changed or not, was built anew
//! beside the running one, so the peak held every list twice. Now only the
//! lists whose files changed are built; the others are the running
//! policy's own `Arc`s. Which list is "the same" is decided by its spec and
//! the SHA-256 of the file's bytes, never by a timestamp (a file rewritten
//! within one timestamp tick keeps its mtime).
//!
//! Only lists still held somewhere are reused (the table keeps `Weak`s),
//! so nothing here keeps memory alive after a policy is dropped.

use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use sha2::{Digest, Sha256};

use super::{List, ListError, ListSpec, Source, is_catalogue};

type Sum = [u8; 32];

/// The lists loaded from files and still held, with the digest of the
/// bytes each was built from.
static LOADED: Mutex<Vec<Loaded>> = Mutex::new(Vec::new());

struct Loaded {
    sum: Sum,
    spec: ListSpec,
    list: Weak<List>,
}

/// Loads a list as [`super::load`] does, but returns the list already held
/// (by the running policy) when its file holds the same bytes and its spec
/// is the same.
pub fn load_shared(spec: &ListSpec) -> Result<Arc<List>, ListError> {
    let Some(path) = file_of(spec) else {
        return super::load(spec).map(Arc::new);
    };
    if let Some(sum) = sum_of(path)
        && let Some(list) = held(spec, &sum)
    {
        return Ok(list);
    }
    // The digest kept is of the bytes this load read, so a file replaced
    // between the look-up and the load is never filed under the old bytes.
    let mut digest = Sha256::new();
    let list = if is_catalogue(path) {
        super::read_catalogue_file(spec, path, Some(&mut digest))?
    } else {
        super::read_line_file(spec, path, Some(&mut digest))?
    };
    let list = Arc::new(list);
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    loaded.retain(|l| l.list.strong_count() > 0);
    loaded.push(Loaded {
        sum: digest.finalize().into(),
        spec: spec.clone(),
        list: Arc::downgrade(&list),
    });
    Ok(list)
}

/// The file a list is built from alone (no embedded data, no signature).
fn file_of(spec: &ListSpec) -> Option<&Path> {
    match &spec.source {
        Source::File(path) => Some(path),
        Source::Url(u) if u.copy.exists() => Some(&u.copy),
        _ => None,
    }
}

/// The running list built from the same spec and bytes, if one is held.
fn held(spec: &ListSpec, sum: &Sum) -> Option<Arc<List>> {
    let loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    loaded
        .iter()
        .filter(|l| {
            l.sum == *sum
                && l.spec.name == spec.name
                && l.spec.source == spec.source
                && l.spec.category == spec.category
                && l.spec.coverage == spec.coverage
        })
        .find_map(|l| l.list.upgrade())
}

/// SHA-256 of a file's bytes, read in pieces, bounded like a list read;
/// `None` when it cannot be read (the load then reports why).
fn sum_of(path: &Path) -> Option<Sum> {
    let file = crate::files::open_regular(path).ok()?;
    let mut file = file.take(super::MAX_LIST_BYTES + 1);
    let mut digest = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            return Some(digest.finalize().into());
        }
        digest.update(buf.get(..n)?);
    }
}

/// A reader that feeds every byte it passes on into a digest, when given one.
pub(super) struct Digesting<'d, R> {
    inner: R,
    digest: Option<&'d mut Sha256>,
}

impl<'d, R> Digesting<'d, R> {
    pub(super) fn new(inner: R, digest: Option<&'d mut Sha256>) -> Self {
        Self { inner, digest }
    }

    pub(super) fn inner(&self) -> &R {
        &self.inner
    }
}

impl<R: Read> Read for Digesting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(d) = self.digest.as_deref_mut() {
            d.update(buf.get(..n).unwrap_or_default());
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::Coverage;

    fn spec(path: &Path) -> ListSpec {
        ListSpec {
            name: "ads".into(),
            source: Source::File(path.to_path_buf()),
            category: None,
            coverage: Coverage::Suffix,
        }
    }

    #[test]
    fn an_unchanged_file_gives_the_list_already_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ads.txt");
        std::fs::write(&path, "a.example\nbad line here\n").unwrap();
        let first = load_shared(&spec(&path)).unwrap();
        let again = load_shared(&spec(&path)).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(again.problems.count, 1);
    }

    #[test]
    fn a_file_rewritten_with_other_bytes_of_the_same_length_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ads.txt");
        std::fs::write(&path, "a.example\n").unwrap();
        let first = load_shared(&spec(&path)).unwrap();
        std::fs::write(&path, "b.example\n").unwrap();
        let second = load_shared(&spec(&path)).unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(second.lookup(b"b.example").is_some());
        assert!(second.lookup(b"a.example").is_none());
    }

    #[test]
    fn another_spec_over_the_same_file_gets_its_own_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ads.txt");
        std::fs::write(&path, "a.example\n").unwrap();
        let suffix = load_shared(&spec(&path)).unwrap();
        let exact = load_shared(&ListSpec {
            coverage: Coverage::Exact,
            ..spec(&path)
        })
        .unwrap();
        assert!(!Arc::ptr_eq(&suffix, &exact));
        assert!(exact.lookup(b"www.a.example").is_none());
        assert!(suffix.lookup(b"www.a.example").is_some());
    }

    #[test]
    fn a_list_no_longer_held_is_built_anew() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ads.txt");
        std::fs::write(&path, "a.example\n").unwrap();
        let first = Arc::downgrade(&load_shared(&spec(&path)).unwrap());
        assert_eq!(first.strong_count(), 0);
        let again = load_shared(&spec(&path)).unwrap();
        assert!(again.lookup(b"a.example").is_some());
    }

    #[test]
    fn a_second_config_load_shares_the_unchanged_list_and_rereads_the_changed_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "a.example\n").unwrap();
        std::fs::write(dir.path().join("b.txt"), "b.example\n").unwrap();
        let yaml = "upstreams: [\"127.0.0.1:9\"]\nlists:\n  a: {path: a.txt}\n  b: {path: b.txt}\nrules:\n  - {name: r, lists: [a, b], action: block}\n";
        let load = || crate::config::from_str(yaml, "test", dir.path()).unwrap();
        let running = load();
        std::fs::write(dir.path().join("b.txt"), "c.example\n").unwrap();
        let reloaded = load();
        assert!(Arc::ptr_eq(&running.lists[0], &reloaded.lists[0]));
        assert!(!Arc::ptr_eq(&running.lists[1], &reloaded.lists[1]));
        assert!(reloaded.lists[1].lookup(b"c.example").is_some());
        assert_ne!(running.version, reloaded.version);
    }
}

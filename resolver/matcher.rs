//! "Is this name, or a parent of it, in the set?"
//!
//! Sits under `policy::decide`: every list is compiled into one [`SuffixSet`],
//! and a decision walks the query name's suffixes through it, most specific
//! first. The walk is label-aware (`notkaspersky.com` is not under
//! `kaspersky.com`), case-insensitive, ignores a trailing dot and allocates
//! nothing.
//!
//! Layout, chosen for a million entries in little memory: every name lives in
//! one byte arena (`[len][tag][name bytes]`), and an open-addressing table of
//! `u64` slots holds `arena offset + 1` in the low half and the upper half of the
//! name's hash in the high half, so a probe rejects almost every non-match
//! without touching the arena. Linear probing at a load factor of at most 0.7.
//!
//! The most specific entry decides: the walk goes from the whole name towards
//! its parents and stops at the first entry that applies. At one level, a
//! literal name beats a single-label pattern (`downloads*.example.com`), and an
//! exact entry beats a suffix entry of the same name (that one covers only the
//! names below it then). Both of these are rare, so they live beside the main
//! table and cost nothing when a set has none.

use std::hash::BuildHasher;

/// How an entry covers names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Coverage {
    /// Only the name itself.
    Exact,
    /// The name and every name below it.
    Suffix,
    /// Only names strictly below it (`*.example.com`).
    Below,
}

impl Coverage {
    fn bits(self) -> u8 {
        match self {
            Self::Exact => 0,
            Self::Suffix => 1,
            Self::Below => 2,
        }
    }

    fn from_bits(bits: u8) -> Self {
        match bits & 0b11 {
            0 => Self::Exact,
            2 => Self::Below,
            _ => Self::Suffix,
        }
    }

    /// Whether an entry of this coverage matches when it equals the whole
    /// query name (`whole`) or only one of its parents.
    fn applies(self, whole: bool) -> bool {
        match self {
            Self::Exact => whole,
            Self::Suffix => true,
            Self::Below => !whole,
        }
    }

    /// Short name used in output (`exact`, `suffix`, `below`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Suffix => "suffix",
            Self::Below => "below",
        }
    }
}

/// What a match found: the entry's name (a suffix of the query), its coverage
/// and the caller's one-byte payload (the category, for lists).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit<'q> {
    /// The matched entry, borrowed from the query name (lowercase, no dot);
    /// for a pattern, the part of the query the pattern matched.
    pub entry: &'q [u8],
    /// How the entry covers names.
    pub coverage: Coverage,
    /// The payload stored with the entry.
    pub payload: u8,
    /// The pattern that matched, as an index for [`SuffixSet::pattern`].
    pub pattern: Option<u16>,
}

/// A single-label pattern: one `*` in the first label, matching zero or more
/// characters of one label (`downloads*.kaspersky-labs.com` covers
/// `downloads.…`, `downloads7.…` and `downloads-us1.…`, not `a.downloads.…`).
#[derive(Clone, Debug)]
struct Pattern {
    /// The whole pattern as written (normalised).
    text: Box<str>,
    /// What comes before the `*` in the first label.
    head: Box<[u8]>,
    /// What comes after it.
    tail: Box<[u8]>,
    /// The labels after the first one.
    parent: Box<[u8]>,
    coverage: Coverage,
    payload: u8,
}

impl Pattern {
    fn matches(&self, label: &[u8], parent: &[u8]) -> bool {
        // Lengths first: almost every level is rejected without a byte compare.
        parent.len() == self.parent.len()
            && label.len() >= self.head.len() + self.tail.len()
            && *parent == *self.parent
            && label.starts_with(&self.head)
            && label.ends_with(&self.tail)
    }
}

/// Why a pattern is not valid (the list reader reports it with its line).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// More than one `*`, or a `*` outside the first label.
    #[error("a pattern has one `*`, in its first label (e.g. downloads*.example.com)")]
    Shape,
    /// A pattern needs a parent zone (`foo*` alone would match top-level names).
    #[error("a pattern needs at least one label after the one with `*`")]
    NoParent,
    /// Too many patterns in one set.
    #[error("a list holds at most 4096 patterns")]
    TooMany,
}

/// The most patterns one set may hold (they are scanned, not hashed).
pub const MAX_PATTERNS: usize = 4096;

/// Longest DNS name in presentation form without the trailing dot.
pub const MAX_NAME_LEN: usize = 253;

/// A stack buffer holding a query name lowercased, without its trailing dot.
pub struct NameBuf {
    bytes: [u8; MAX_NAME_LEN],
    len: usize,
}

impl NameBuf {
    /// Lowercases `name` and strips one trailing dot; `None` when the result is
    /// empty (the root) or longer than a DNS name can be.
    pub fn new(name: &[u8]) -> Option<Self> {
        let name = name.strip_suffix(b".").unwrap_or(name);
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return None;
        }
        let mut bytes = [0u8; MAX_NAME_LEN];
        for (dst, src) in bytes.iter_mut().zip(name) {
            *dst = src.to_ascii_lowercase();
        }
        Some(Self {
            bytes,
            len: name.len(),
        })
    }

    /// Joins wire-format labels with dots, lowercased; `None` for the root
    /// or a name longer than 253 bytes.
    pub fn from_labels<'a>(labels: impl Iterator<Item = &'a [u8]>) -> Option<Self> {
        let mut bytes = [0u8; MAX_NAME_LEN];
        let mut len = 0usize;
        for label in labels {
            let need = label.len() + usize::from(len > 0);
            if len + need > MAX_NAME_LEN {
                return None;
            }
            if len > 0 {
                bytes[len] = b'.';
                len += 1;
            }
            for (dst, src) in bytes[len..].iter_mut().zip(label) {
                // A dot inside a label (`a\.b`) is not a label boundary: it
                // becomes a byte no entry holds, so `x\.kaspersky.com` is
                // not under `kaspersky.com` and matches only `com`.
                *dst = match src.to_ascii_lowercase() {
                    b'.' => b'\\',
                    other => other,
                };
            }
            len += label.len();
        }
        (len > 0).then_some(Self { bytes, len })
    }

    /// The normalised name.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

const EMPTY: u64 = 0;
/// Coverage bits of a record merged into an earlier one with the same name.
const DEAD: u8 = 3;
const MAX_LOAD_NUM: usize = 7;
const MAX_LOAD_DEN: usize = 10;

/// An immutable-after-build set of domain names with per-entry coverage and a
/// one-byte payload. Build with [`SuffixSet::insert`], then [`SuffixSet::finish`].
#[derive(Clone)]
pub struct SuffixSet {
    arena: Vec<u8>,
    slots: Vec<u64>,
    len: usize,
    pending: usize,
    min_labels: u8,
    max_labels: u8,
    hasher: foldhash::fast::RandomState,
    /// Exact entries whose name is also a suffix entry with another payload.
    exact: Option<Box<Self>>,
    /// Single-label patterns, scanned at each level (few by design).
    patterns: Vec<Pattern>,
    /// Label counts of the patterns (the level they apply at).
    pattern_labels: (u8, u8),
    /// For small sets without patterns: a bit per hash of each entry's last
    /// `min_labels` labels, so a name under none of them is turned away
    /// with one hash instead of one per level.
    floor_filter: Option<Box<[u64; FILTER_WORDS]>>,
}

/// Sets of at most this many names are searched by comparing suffixes, not
/// by hashing (the `bypass:` lists hold one or two).
const TINY: usize = 4;
/// Sets of at most this many names get a floor filter.
const FILTERED: usize = 512;
const FILTER_WORDS: usize = 16;

impl std::fmt::Debug for SuffixSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SuffixSet")
            .field("len", &self.len)
            .field("arena_bytes", &self.arena.len())
            .field("slots", &self.slots.len())
            .field("patterns", &self.patterns.len())
            .finish()
    }
}

impl Default for SuffixSet {
    fn default() -> Self {
        Self::new()
    }
}

impl SuffixSet {
    /// An empty set.
    pub fn new() -> Self {
        Self {
            arena: Vec::new(),
            slots: vec![EMPTY; 16],
            len: 0,
            pending: 0,
            min_labels: u8::MAX,
            max_labels: 0,
            hasher: foldhash::fast::RandomState::default(),
            exact: None,
            patterns: Vec::new(),
            pattern_labels: (u8::MAX, 0),
            floor_filter: None,
        }
    }

    /// Number of distinct entries (names and patterns).
    pub fn len(&self) -> usize {
        self.len + self.exact.as_ref().map_or(0, |e| e.len) + self.patterns.len()
    }

    /// Whether the set holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes held by the set (arena and table).
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity()
            + self.slots.capacity() * std::mem::size_of::<u64>()
            + self.exact.as_ref().map_or(0, |e| e.heap_bytes())
            + self
                .patterns
                .iter()
                .map(|p| 2 * p.text.len() + std::mem::size_of::<Pattern>())
                .sum::<usize>()
    }

    /// Adds a single-label pattern (normalised: lowercase, no trailing dot),
    /// such as `downloads*.kaspersky-labs.com` or `ksn-*-geo.kaspersky-labs.com`.
    pub fn insert_pattern(
        &mut self,
        pattern: &str,
        coverage: Coverage,
        payload: u8,
    ) -> Result<(), PatternError> {
        let (first, parent) = pattern.split_once('.').ok_or(PatternError::NoParent)?;
        let (head, tail) = first.split_once('*').ok_or(PatternError::Shape)?;
        if tail.contains('*') || parent.contains('*') {
            return Err(PatternError::Shape);
        }
        if parent.is_empty() {
            return Err(PatternError::NoParent);
        }
        if self.patterns.len() >= MAX_PATTERNS {
            return Err(PatternError::TooMany);
        }
        if let Some(same) = self.patterns.iter_mut().find(|p| *p.text == *pattern) {
            same.coverage = widest(same.coverage, coverage);
            return Ok(());
        }
        let labels = label_count(pattern.as_bytes());
        self.pattern_labels = (
            self.pattern_labels.0.min(labels),
            self.pattern_labels.1.max(labels),
        );
        self.patterns.push(Pattern {
            text: pattern.into(),
            head: head.as_bytes().into(),
            tail: tail.as_bytes().into(),
            parent: parent.as_bytes().into(),
            coverage,
            payload: payload & 0x3f,
        });
        Ok(())
    }

    /// The text of a pattern that a [`Hit`] names.
    pub fn pattern(&self, index: u16) -> Option<&str> {
        self.patterns.get(usize::from(index)).map(|p| &*p.text)
    }

    /// Reserves room for about `bytes` of names in `entries` entries.
    pub fn reserve(&mut self, entries: usize, bytes: usize) {
        self.arena.reserve(bytes + 2 * entries);
    }

    /// Adds a name that is already normalised (lowercase ASCII, no trailing
    /// dot, 1..=253 bytes; the list reader guarantees it). Lookups see it
    /// after [`SuffixSet::finish`], which also merges duplicates.
    pub fn insert(&mut self, name: &[u8], coverage: Coverage, payload: u8) {
        debug_assert!(!name.is_empty() && name.len() <= MAX_NAME_LEN);
        // `name.len() <= 253` always fits a byte; payloads use the low 6 bits.
        self.arena.push(name.len() as u8);
        self.arena.push((payload & 0x3f) | (coverage.bits() << 6));
        self.arena.extend_from_slice(name);
        self.pending += 1;
        let labels = label_count(name);
        self.min_labels = self.min_labels.min(labels);
        self.max_labels = self.max_labels.max(labels);
    }

    /// Builds the lookup table once, at its final size (so loading a million
    /// names never holds two tables), and merges duplicate names: the wider
    /// coverage is kept, with the first payload. Returns how many inserted
    /// names were duplicates.
    pub fn finish(&mut self) -> usize {
        let live = self.len + self.pending;
        self.slots = vec![EMPTY; (live * MAX_LOAD_DEN / MAX_LOAD_NUM + 1).max(16)];
        self.len = 0;
        self.pending = 0;
        let mut duplicates = 0;
        let mut at = 0usize;
        while at < self.arena.len() {
            let len = usize::from(self.arena[at]);
            let tag = self.arena[at + 1];
            let record = at;
            at += 2 + len;
            if tag >> 6 == DEAD {
                continue;
            }
            let name = &self.arena[record + 2..record + 2 + len];
            let hash = self.hasher.hash_one(name);
            match self.find(name, hash) {
                Some(first) => {
                    let old_tag = self.arena[first + 1];
                    let old = Coverage::from_bits(old_tag >> 6);
                    let new = Coverage::from_bits(tag >> 6);
                    let split = (old == Coverage::Exact) != (new == Coverage::Exact)
                        && (old_tag & 0x3f) != (tag & 0x3f);
                    if split {
                        // Exact beats suffix: the exact entry decides for the
                        // name itself, the other one for the names below it.
                        let (exact_tag, below_tag) = if old == Coverage::Exact {
                            (old_tag, tag)
                        } else {
                            (tag, old_tag)
                        };
                        let name = self.arena[record + 2..record + 2 + len].to_vec();
                        self.exact.get_or_insert_with(Default::default).insert(
                            &name,
                            Coverage::Exact,
                            exact_tag & 0x3f,
                        );
                        self.arena[first + 1] = below_tag;
                    } else {
                        let wider = widest(old, new);
                        self.arena[first + 1] = (old_tag & 0x3f) | (wider.bits() << 6);
                        duplicates += 1;
                    }
                    self.arena[record + 1] = DEAD << 6;
                }
                None => {
                    self.place(record, hash);
                    self.len += 1;
                }
            }
        }
        self.arena.shrink_to_fit();
        if let Some(exact) = &mut self.exact {
            duplicates += exact.finish();
        }
        self.floor_filter = None;
        if self.len > TINY && self.len <= FILTERED && self.patterns.is_empty() {
            let mut filter = Box::new([0u64; FILTER_WORDS]);
            let floor = self.min_labels;
            let names: Vec<Vec<u8>> = self.names().map(|(n, _, _)| n.to_vec()).collect();
            for name in names {
                let bit = self.filter_bit(floor_suffix(&name, label_count(&name), floor));
                filter[bit / 64] |= 1 << (bit % 64);
            }
            self.floor_filter = Some(filter);
        }
        duplicates
    }

    fn filter_bit(&self, suffix: &[u8]) -> usize {
        (self.hasher.hash_one(suffix) as usize) % (FILTER_WORDS * 64)
    }

    /// The most specific entry covering `name` (normalised: lowercase, no
    /// trailing dot), if any.
    pub fn lookup<'q>(&self, name: &'q [u8]) -> Option<Hit<'q>> {
        if name.is_empty() {
            return None;
        }
        let simple = self.exact.is_none() && self.patterns.is_empty();
        if simple && self.len <= TINY {
            return self.lookup_tiny(name);
        }
        if let Some(exact) = &self.exact
            && let Some(hit) = exact.lookup_table(name, 0, label_count(name))
        {
            return Some(hit);
        }
        let mut labels = label_count(name);
        if simple && let Some(filter) = &self.floor_filter {
            if labels < self.min_labels {
                return None;
            }
            let bit = self.filter_bit(floor_suffix(name, labels, self.min_labels));
            if filter[bit / 64] & (1 << (bit % 64)) == 0 {
                return None;
            }
        }
        let floor = self.min_labels.min(self.pattern_labels.0);
        let mut start = 0usize;
        loop {
            let suffix = &name[start..];
            let dot = suffix.iter().position(|&b| b == b'.');
            if let Some(hit) = self.lookup_table(suffix, start, labels) {
                return Some(hit);
            }
            if let Some(dot) = dot
                && labels >= self.pattern_labels.0
                && labels <= self.pattern_labels.1
            {
                let (label, parent) = (&suffix[..dot], &suffix[dot + 1..]);
                let found = self
                    .patterns
                    .iter()
                    .enumerate()
                    .find(|(_, p)| p.coverage.applies(start == 0) && p.matches(label, parent));
                if let Some((i, p)) = found {
                    return Some(Hit {
                        entry: suffix,
                        coverage: p.coverage,
                        payload: p.payload,
                        pattern: u16::try_from(i).ok(),
                    });
                }
            }
            if labels <= floor {
                return None;
            }
            start += dot? + 1;
            labels -= 1;
        }
    }

    /// The most specific entry of a tiny set, by comparing the name's
    /// suffixes with each entry: cheaper than a hash for one or two names.
    fn lookup_tiny<'q>(&self, name: &'q [u8]) -> Option<Hit<'q>> {
        let mut best: Option<Hit<'q>> = None;
        for (entry, coverage, payload) in self.names() {
            let whole = entry.len() == name.len();
            let covers = name.ends_with(entry)
                && (whole || name[name.len() - entry.len() - 1] == b'.')
                && coverage.applies(whole);
            if covers && best.is_none_or(|b| b.entry.len() < entry.len()) {
                best = Some(Hit {
                    entry: &name[name.len() - entry.len()..],
                    coverage,
                    payload,
                    pattern: None,
                });
            }
        }
        best
    }

    /// The table's entry for exactly `suffix` (which starts at `start` in
    /// the query name and has `labels` labels), if one applies there.
    fn lookup_table<'q>(&self, suffix: &'q [u8], start: usize, labels: u8) -> Option<Hit<'q>> {
        if self.len == 0 || labels < self.min_labels || labels > self.max_labels {
            return None;
        }
        let offset = self.find(suffix, self.hasher.hash_one(suffix))?;
        let tag = self.arena[offset + 1];
        let coverage = Coverage::from_bits(tag >> 6);
        coverage.applies(start == 0).then_some(Hit {
            entry: suffix,
            coverage,
            payload: tag & 0x3f,
            pattern: None,
        })
    }

    /// Every distinct entry: the names in insertion order, then the exact
    /// entries that share a name with a suffix entry, then the patterns
    /// (as written, with their `*`): (name, coverage, payload).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Coverage, u8)> + '_ {
        let exact: Box<dyn Iterator<Item = (&[u8], Coverage, u8)> + '_> = match &self.exact {
            Some(e) => Box::new(e.iter()),
            None => Box::new(std::iter::empty()),
        };
        self.names().chain(exact).chain(
            self.patterns
                .iter()
                .map(|p| (p.text.as_bytes(), p.coverage, p.payload)),
        )
    }

    fn names(&self) -> impl Iterator<Item = (&[u8], Coverage, u8)> + '_ {
        let mut at = 0usize;
        std::iter::from_fn(move || {
            loop {
                let len = usize::from(*self.arena.get(at)?);
                let tag = self.arena[at + 1];
                let name = &self.arena[at + 2..at + 2 + len];
                at += 2 + len;
                if tag >> 6 != DEAD {
                    return Some((name, Coverage::from_bits(tag >> 6), tag & 0x3f));
                }
            }
        })
    }

    fn slot_index(&self, hash: u64) -> usize {
        // Lemire's multiply-shift maps the hash onto any table size without a modulo.
        ((u128::from(hash) * self.slots.len() as u128) >> 64) as usize
    }

    fn find(&self, name: &[u8], hash: u64) -> Option<usize> {
        let tag = hash >> 32;
        let mut i = self.slot_index(hash);
        loop {
            let slot = self.slots[i];
            if slot == EMPTY {
                return None;
            }
            if slot >> 32 == tag {
                let offset = (slot & 0xffff_ffff) as usize - 1;
                let len = usize::from(self.arena[offset]);
                if &self.arena[offset + 2..offset + 2 + len] == name {
                    return Some(offset);
                }
            }
            i += 1;
            if i == self.slots.len() {
                i = 0;
            }
        }
    }

    fn place(&mut self, offset: usize, hash: u64) {
        let slot = (hash & 0xffff_ffff_0000_0000) | (offset as u64 + 1);
        let mut i = self.slot_index(hash);
        while self.slots[i] != EMPTY {
            i += 1;
            if i == self.slots.len() {
                i = 0;
            }
        }
        self.slots[i] = slot;
    }
}

fn widest(a: Coverage, b: Coverage) -> Coverage {
    if a == b {
        a
    } else {
        // Suffix with anything, or Exact with Below, covers the name and all below.
        Coverage::Suffix
    }
}

/// The last `keep` labels of `name` (which has `labels` labels).
fn floor_suffix(name: &[u8], labels: u8, keep: u8) -> &[u8] {
    let mut skip = labels.saturating_sub(keep);
    let mut at = 0;
    while skip > 0 {
        match name[at..].iter().position(|&b| b == b'.') {
            Some(dot) => at += dot + 1,
            None => break,
        }
        skip -= 1;
    }
    &name[at..]
}

fn label_count(name: &[u8]) -> u8 {
    // A 253-byte name has at most 127 labels, so this fits a byte.
    (name.iter().filter(|&&b| b == b'.').count() + 1) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(entries: &[(&str, Coverage)]) -> SuffixSet {
        let mut s = SuffixSet::new();
        for (i, (name, cov)) in entries.iter().enumerate() {
            s.insert(name.as_bytes(), *cov, i as u8);
        }
        s.finish();
        s
    }

    fn hit(s: &SuffixSet, q: &str) -> Option<String> {
        let buf = NameBuf::new(q.as_bytes())?;
        s.lookup(buf.as_bytes())
            .map(|h| String::from_utf8(h.entry.to_vec()).unwrap())
    }

    #[test]
    fn suffix_entry_covers_the_name_and_names_below() {
        let s = set(&[("kaspersky.com", Coverage::Suffix)]);
        assert_eq!(hit(&s, "kaspersky.com").as_deref(), Some("kaspersky.com"));
        assert_eq!(
            hit(&s, "a.b.kaspersky.com").as_deref(),
            Some("kaspersky.com")
        );
    }

    #[test]
    fn parent_of_an_entry_is_not_covered() {
        let s = set(&[("upd.kaspersky.com", Coverage::Suffix)]);
        assert_eq!(hit(&s, "kaspersky.com"), None);
        assert_eq!(hit(&s, "com"), None);
    }

    #[test]
    fn matching_stops_at_label_boundaries() {
        let s = set(&[("kaspersky.com", Coverage::Suffix)]);
        assert_eq!(hit(&s, "notkaspersky.com"), None);
        assert_eq!(hit(&s, "kaspersky.com.evil.net"), None);
        assert_eq!(hit(&s, "xkaspersky.com"), None);
    }

    #[test]
    fn exact_entry_covers_only_its_own_name() {
        let s = set(&[("touch.kaspersky.com", Coverage::Exact)]);
        assert_eq!(
            hit(&s, "touch.kaspersky.com").as_deref(),
            Some("touch.kaspersky.com")
        );
        assert_eq!(hit(&s, "a.touch.kaspersky.com"), None);
    }

    #[test]
    fn wildcard_entry_covers_only_names_below_it() {
        let s = set(&[("example.com", Coverage::Below)]);
        assert_eq!(hit(&s, "example.com"), None);
        assert_eq!(hit(&s, "www.example.com").as_deref(), Some("example.com"));
    }

    #[test]
    fn most_specific_entry_wins() {
        let s = set(&[
            ("kaspersky.com", Coverage::Suffix),
            ("upd.kaspersky.com", Coverage::Suffix),
            ("s05.upd.kaspersky.com", Coverage::Exact),
        ]);
        assert_eq!(
            hit(&s, "s05.upd.kaspersky.com").as_deref(),
            Some("s05.upd.kaspersky.com")
        );
        assert_eq!(
            hit(&s, "s99.upd.kaspersky.com").as_deref(),
            Some("upd.kaspersky.com")
        );
        assert_eq!(
            hit(&s, "x.s05.upd.kaspersky.com").as_deref(),
            Some("upd.kaspersky.com")
        );
        assert_eq!(
            hit(&s, "www.kaspersky.com").as_deref(),
            Some("kaspersky.com")
        );
    }

    #[test]
    fn lookup_ignores_case_and_one_trailing_dot() {
        let s = set(&[("kaspersky.com", Coverage::Suffix)]);
        assert_eq!(
            hit(&s, "DNL-01.Geo.KASPERSKY.com.").as_deref(),
            Some("kaspersky.com")
        );
        assert_eq!(hit(&s, "."), None);
        assert_eq!(hit(&s, ""), None);
    }

    #[test]
    fn punycode_names_match_as_ascii_labels() {
        let s = set(&[("xn--80ak6aa92e.com", Coverage::Suffix)]);
        assert_eq!(
            hit(&s, "www.XN--80AK6AA92E.com").as_deref(),
            Some("xn--80ak6aa92e.com")
        );
        assert_eq!(hit(&s, "xn--80ak6aa92e.net"), None);
    }

    #[test]
    fn duplicate_keeps_the_wider_coverage_and_the_first_payload() {
        let mut s = SuffixSet::new();
        s.insert(b"a.com", Coverage::Exact, 3);
        s.insert(b"a.com", Coverage::Suffix, 3);
        s.insert(b"b.com", Coverage::Suffix, 5);
        s.insert(b"b.com", Coverage::Suffix, 6);
        s.insert(b"c.com", Coverage::Exact, 7);
        assert_eq!(s.finish(), 2);
        assert_eq!(s.len(), 3);
        assert_eq!(s.iter().count(), 3);
        let h = s.lookup(b"x.a.com").unwrap();
        assert_eq!((h.coverage, h.payload), (Coverage::Suffix, 3));
        assert_eq!(s.lookup(b"b.com").unwrap().payload, 5);
    }

    #[test]
    fn many_entries_survive_growth_and_shrink() {
        let mut s = SuffixSet::new();
        for i in 0..20_000u32 {
            s.insert(
                format!("host{i}.example{}.net", i % 7).as_bytes(),
                Coverage::Exact,
                (i % 60) as u8,
            );
        }
        s.finish();
        assert_eq!(s.len(), 20_000);
        for i in (0..20_000u32).step_by(97) {
            let q = format!("host{i}.example{}.net", i % 7);
            let h = s.lookup(q.as_bytes()).unwrap();
            assert_eq!(h.payload, (i % 60) as u8);
        }
        assert!(s.lookup(b"host20001.example1.net").is_none());
        assert_eq!(s.iter().count(), 20_000);
    }

    #[test]
    fn subzone_entry_overrides_its_zone() {
        let mut s = SuffixSet::new();
        s.insert(b"kaspersky-labs.com", Coverage::Suffix, 1);
        s.insert(b"scr.kaspersky-labs.com", Coverage::Suffix, 4);
        s.finish();
        assert_eq!(s.lookup(b"a.scr.kaspersky-labs.com").unwrap().payload, 4);
        assert_eq!(s.lookup(b"new.kaspersky-labs.com").unwrap().payload, 1);
    }

    #[test]
    fn exact_entry_beats_suffix() {
        let mut s = SuffixSet::new();
        s.insert(b"kaspersky.com", Coverage::Suffix, 5);
        s.insert(b"kaspersky.com", Coverage::Exact, 4);
        s.insert(b"b.com", Coverage::Exact, 2);
        s.insert(b"b.com", Coverage::Below, 3);
        assert_eq!(s.finish(), 0);
        let apex = s.lookup(b"kaspersky.com").unwrap();
        assert_eq!((apex.payload, apex.coverage), (4, Coverage::Exact));
        let below = s.lookup(b"www.kaspersky.com").unwrap();
        assert_eq!((below.payload, below.coverage), (5, Coverage::Suffix));
        assert_eq!(s.lookup(b"b.com").unwrap().payload, 2);
        assert_eq!(s.lookup(b"x.b.com").unwrap().payload, 3);
        assert_eq!(s.len(), 4);
        assert_eq!(s.iter().count(), 4);
    }

    #[test]
    fn pattern_covers_one_label_of_its_zone() {
        let mut s = SuffixSet::new();
        s.insert(b"kaspersky-labs.com", Coverage::Suffix, 1);
        s.insert_pattern("downloads*.kaspersky-labs.com", Coverage::Suffix, 2)
            .unwrap();
        s.insert_pattern("ksn-*-geo.kaspersky-labs.com", Coverage::Exact, 3)
            .unwrap();
        s.finish();
        let p = |q: &str| s.lookup(q.as_bytes()).map(|h| (h.payload, h.pattern));
        assert_eq!(p("downloads.kaspersky-labs.com"), Some((2, Some(0))));
        assert_eq!(p("downloads7.kaspersky-labs.com"), Some((2, Some(0))));
        assert_eq!(p("ftp.downloads3.kaspersky-labs.com"), Some((2, Some(0))));
        assert_eq!(p("ksn-file-geo.kaspersky-labs.com"), Some((3, Some(1))));
        assert_eq!(p("ksn--geo.kaspersky-labs.com"), Some((3, Some(1))));
        // Exact pattern: not below; a prefix alone is not enough.
        assert_eq!(p("x.ksn-file-geo.kaspersky-labs.com"), Some((1, None)));
        assert_eq!(p("ksn-file.kaspersky-labs.com"), Some((1, None)));
        assert_eq!(p("mydownloads.kaspersky-labs.com"), Some((1, None)));
        assert_eq!(p("downloads.kaspersky-labs.com.evil.example"), None);
        assert_eq!(p("downloads1.example.com"), None);
        assert_eq!(s.pattern(1), Some("ksn-*-geo.kaspersky-labs.com"));
    }

    #[test]
    fn literal_name_beats_a_pattern_at_the_same_level() {
        let mut s = SuffixSet::new();
        s.insert(b"downloads9.example.com", Coverage::Exact, 7);
        s.insert_pattern("downloads*.example.com", Coverage::Suffix, 2)
            .unwrap();
        s.finish();
        assert_eq!(s.lookup(b"downloads9.example.com").unwrap().payload, 7);
        assert_eq!(s.lookup(b"downloads8.example.com").unwrap().payload, 2);
        // A pattern is more specific than a suffix entry of its parent's parent.
        assert_eq!(s.lookup(b"a.downloads9.example.com").unwrap().payload, 2);
    }

    #[test]
    fn malformed_patterns_are_refused() {
        let mut s = SuffixSet::new();
        assert_eq!(
            s.insert_pattern("a*b*.example.com", Coverage::Suffix, 1),
            Err(PatternError::Shape)
        );
        assert_eq!(
            s.insert_pattern("a.b*.example.com", Coverage::Suffix, 1),
            Err(PatternError::Shape)
        );
        assert_eq!(
            s.insert_pattern("foo*", Coverage::Suffix, 1),
            Err(PatternError::NoParent)
        );
        assert!(s.is_empty());
    }

    #[test]
    fn tiny_and_filtered_sets_find_what_the_table_finds() {
        for n in [1usize, 3, 4, 5, 40, 600] {
            let mut s = SuffixSet::new();
            for i in 0..n {
                let cov = [Coverage::Exact, Coverage::Suffix, Coverage::Below][i % 3];
                s.insert(
                    format!("h{i}.zone{}.example", i % 7).as_bytes(),
                    cov,
                    (i % 60) as u8,
                );
            }
            s.insert(b"zone1.example", Coverage::Suffix, 61);
            s.finish();
            for i in 0..n {
                let name = format!("h{i}.zone{}.example", i % 7);
                let below = format!("x.{name}");
                let want = |q: &str| {
                    let cov = [Coverage::Exact, Coverage::Suffix, Coverage::Below][i % 3];
                    let whole = q == name;
                    if cov.applies(whole) {
                        Some((i % 60) as u8)
                    } else if q.ends_with(".zone1.example") {
                        Some(61)
                    } else {
                        None
                    }
                };
                assert_eq!(
                    s.lookup(name.as_bytes()).map(|h| h.payload),
                    want(&name),
                    "{n} {name}"
                );
                assert_eq!(
                    s.lookup(below.as_bytes()).map(|h| h.payload),
                    want(&below),
                    "{n} {below}"
                );
            }
            assert_eq!(s.lookup(b"a.zone1.example").map(|h| h.payload), Some(61));
            assert_eq!(s.lookup(b"zone1.example").map(|h| h.payload), Some(61));
            assert_eq!(s.lookup(b"other.example"), None);
            assert_eq!(s.lookup(b"example"), None);
            assert_eq!(s.lookup(b"xzone1.example"), None);
        }
    }

    #[test]
    fn dot_inside_a_label_is_not_a_label_boundary() {
        let s = set(&[
            ("kaspersky.com", Coverage::Suffix),
            ("safe.example.com", Coverage::Suffix),
            ("example.com", Coverage::Suffix),
        ]);
        let labels = |ls: &[&[u8]]| NameBuf::from_labels(ls.iter().copied()).unwrap();
        let escaped = labels(&[b"x.kaspersky", b"com"]);
        assert_eq!(escaped.as_bytes(), b"x\\kaspersky.com");
        assert_eq!(s.lookup(escaped.as_bytes()), None);
        // `x\.safe.example.com` is a child of `example.com`, not of `safe.example.com`.
        let name = labels(&[b"x.safe", b"example", b"com"]);
        let hit = s.lookup(name.as_bytes()).unwrap();
        assert_eq!(hit.entry, b"example.com");
        let plain = labels(&[b"x", b"kaspersky", b"com"]);
        assert_eq!(s.lookup(plain.as_bytes()).unwrap().entry, b"kaspersky.com");
    }

    #[test]
    fn name_buffer_rejects_names_longer_than_dns_allows() {
        let long = "a".repeat(254);
        assert!(NameBuf::new(long.as_bytes()).is_none());
        assert!(NameBuf::new(format!("{}.", "a".repeat(253)).as_bytes()).is_some());
    }
}

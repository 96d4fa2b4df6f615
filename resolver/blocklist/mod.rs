//! Named domain lists: the shipped Kaspersky catalogue and the files users
//! bring, read into one [`SuffixSet`] each.
//!
//! Sits before the query path: `config::load` reads every list while it
//! validates, so a running server only ever holds lists that loaded. Two
//! formats: the categorised catalogue (`catalogue`, YAML, used for the shipped
//! list) and line lists (`lines`: plain, hosts, adblock, wildcard).

mod catalogue;
pub mod changes;
pub mod feed;
pub mod fetch;
pub mod lastgood;
mod lines;
mod shared;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use catalogue::{Catalogue, CatalogueEntry, Confidence};
pub use lines::{DomainError, LineError, LineProblem, LineReport, domain, read_lines};
pub use shared::load_shared;

use ipnet::IpNet;

use crate::matcher::{Coverage, Hit, SuffixSet};
use crate::networks::PrefixTable;

/// The shipped Kaspersky catalogue, compiled into the binary.
pub const KASPERSKY_YAML: &str = include_str!("../../blocklists/kaspersky/kaspersky.yaml");

/// Well-known public DoH/DoT resolver names, compiled into the binary.
pub const PUBLIC_RESOLVERS_YAML: &str =
    include_str!("../../blocklists/public-resolvers/public-resolvers.yaml");

/// Kaspersky's announced prefixes, compiled into the binary.
pub const KASPERSKY_NETWORKS: &str = include_str!("../../blocklists/kaspersky/networks.txt");

/// The largest list file read (bytes): above the big public blocklists,
/// and below what the unit's `MemoryMax=256M` holds twice (a reload keeps
/// the old policy while it builds the new one).
pub const MAX_LIST_BYTES: u64 = 64 << 20;
/// The most entries one list may hold: about 45 bytes each in memory, so
/// a list at the cap takes about 100 MB (docs/configuration.md).
pub const MAX_LIST_ENTRIES: usize = 2_000_000;

/// Names of the lists built into the binary (`builtin: NAME` in the config).
pub const BUILTIN: &[&str] = &["kaspersky", "kaspersky-networks", "public-resolvers"];

/// What an entry is for; rules select entries by category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Signature and software update servers.
    Update,
    /// Kaspersky Security Network (KSN) reputation and statistics.
    Telemetry,
    /// Activation and licensing.
    Activation,
    /// Installers, product and tool downloads, download managers.
    Download,
    /// Product web services and portals.
    Web,
    /// Corporate and brand domains.
    Brand,
    /// The UltraAV/UltraVPN migration (not Kaspersky).
    Migration,
    /// BIS-exempt services (Threat Intelligence, Security Training): never
    /// blocked by the shipped policies.
    Exempt,
    /// Public DNS resolvers (DoH, DoT) that clients can use to route around
    /// this one.
    Resolver,
}

/// The matcher payload bit that marks a zone-wide entry: a name it decides
/// that no more specific entry names is *unclassified*.
const ZONE_BIT: u8 = 0x20;

impl Category {
    /// Every category, in payload order.
    pub const ALL: [Self; 9] = [
        Self::Update,
        Self::Telemetry,
        Self::Activation,
        Self::Download,
        Self::Web,
        Self::Brand,
        Self::Migration,
        Self::Exempt,
        Self::Resolver,
    ];

    /// Slots for per-category counts: index 0 counts entries without one.
    pub const SLOTS: usize = Self::ALL.len() + 1;

    /// The word used in config, output and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Update => "update",
            Self::Telemetry => "telemetry",
            Self::Activation => "activation",
            Self::Download => "download",
            Self::Web => "web",
            Self::Brand => "brand",
            Self::Migration => "migration",
            Self::Exempt => "exempt",
            Self::Resolver => "resolver",
        }
    }

    /// Parses the config word.
    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == word)
    }

    /// Whether the category names Kaspersky's own services (the client
    /// table and `cutoff report` track these, not migration or resolvers).
    pub fn is_kaspersky(self) -> bool {
        !matches!(self, Self::Migration | Self::Resolver)
    }

    /// The matcher payload: 0 means "no category", 1..=9 the categories.
    pub(crate) fn payload(category: Option<Self>) -> u8 {
        category.map_or(0, |c| c as u8 + 1)
    }

    pub(crate) fn from_payload(payload: u8) -> Option<Self> {
        Self::ALL
            .get(usize::from(payload & !ZONE_BIT).checked_sub(1)?)
            .copied()
    }

    /// The index of a payload's category in per-category counts.
    fn slot(payload: u8) -> usize {
        usize::from(payload & !ZONE_BIT).min(Self::ALL.len())
    }
}

/// What a zone-wide catalogue entry says about the zone as a whole
/// (blocklists/README.md, "Zones").
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZoneKind {
    /// Update, KSN, licensing, downloads: all of it is blocked after the
    /// cut-off unless a more specific entry says otherwise.
    Infrastructure,
    /// A web zone with infrastructure subzones (listed as their own zones).
    Mixed,
    /// Product web services.
    Web,
    /// Corporate and country sites.
    Brand,
}

impl ZoneKind {
    /// The word used in the catalogue and in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Infrastructure => "infrastructure",
            Self::Mixed => "mixed",
            Self::Web => "web",
            Self::Brand => "brand",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a list comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Compiled into the binary.
    Builtin(String),
    /// A file on disk.
    File(PathBuf),
    /// CIDRs written in the config (`prefixes:`).
    Prefixes(Vec<IpNet>),
    /// A line list downloaded from a URL, served from its last-good copy.
    Url(Box<UrlSource>),
    /// The shipped Kaspersky catalogue, replaced by its signed feed's copy
    /// when that verifies and is newer.
    Feed(Box<feed::FeedSource>),
}

/// A URL list (`lists.NAME.url`) and how it is fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlSource {
    /// The URL as written.
    pub url: String,
    /// Time between refreshes (`refresh`, default 6h).
    pub refresh: std::time::Duration,
    /// The most one fetch may take, redirects and body included (`timeout`).
    pub timeout: std::time::Duration,
    /// Largest body, before and after gunzip (`max_bytes`).
    pub max_bytes: u64,
    /// Most entries (`max_lines`).
    pub max_lines: usize,
    /// `allow_http: true`: plain `http://` is allowed.
    pub allow_http: bool,
    /// `required: true`: a list with no copy stops the start instead of
    /// serving without it.
    pub required: bool,
    /// The last-good copy (`state_dir/lists/NAME.list`).
    pub copy: PathBuf,
    /// Extra trusted CA certificates (`upstream_ca`).
    pub ca: Option<PathBuf>,
}

/// Default `refresh` of a URL list.
pub const DEFAULT_REFRESH: std::time::Duration = std::time::Duration::from_secs(6 * 3600);
/// Default `timeout` of one fetch.
pub const DEFAULT_FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Builtin(name) => write!(f, "builtin:{name}"),
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Prefixes(p) => write!(f, "{} prefixes in the config", p.len()),
            Self::Url(u) => write!(f, "{}", u.url),
            Self::Feed(feed) => write!(f, "builtin:kaspersky (feed {})", feed.source.url),
        }
    }
}

/// How to read a list.
#[derive(Clone, Debug)]
pub struct ListSpec {
    /// The list's name in the config.
    pub name: String,
    /// Where it comes from.
    pub source: Source,
    /// Category given to entries of a line list (catalogues carry their own).
    pub category: Option<Category>,
    /// Coverage of plain and hosts-file lines (`||x^` is always a suffix,
    /// `*.x` always below).
    pub coverage: Coverage,
}

/// A loaded list: the active entries in a [`SuffixSet`], and what was seen.
#[derive(Debug)]
pub struct List {
    /// The list's name in the config.
    pub name: String,
    /// Where it came from.
    pub source: Source,
    /// The list's own version, when the format carries one (catalogues).
    pub version: Option<String>,
    /// Active entries.
    pub set: SuffixSet,
    /// Active entries per category; index 0 counts entries without one.
    pub active: [usize; Category::SLOTS],
    /// Entries present but marked disabled.
    pub disabled: usize,
    /// Lines or entries that were repeated.
    pub duplicates: usize,
    /// Bad lines: skipped, counted, the first few kept for the report.
    pub problems: LineReport,
    /// Per-entry provenance, for catalogues.
    pub catalogue: Option<Catalogue>,
    /// Address prefixes (for response-IP rules), with their text.
    pub addresses: PrefixTable<usize>,
    /// The prefixes as written, indexed by the values of `addresses`.
    pub prefixes: Vec<String>,
    /// Whether lookups matching this list count as "asking for Kaspersky"
    /// (client table, `cutoff_kaspersky_clients`, `cutoff report`): the
    /// shipped lists, catalogue files and line lists given a `category`.
    pub tracked: bool,
}

/// What a list lookup found: the entry, its category, and whether it was a
/// zone-wide entry standing in for a name no entry classifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found<'q> {
    /// The entry (for a pattern, the part of the query it matched).
    pub hit: Hit<'q>,
    /// The entry's category.
    pub category: Option<Category>,
    /// A zone-wide entry decided a name below the zone's apex.
    pub unclassified: bool,
}

impl List {
    /// The most specific active entry covering `name` (normalised).
    pub fn lookup<'q>(&self, name: &'q [u8]) -> Option<Found<'q>> {
        self.set.lookup(name).map(|hit| Found {
            hit,
            category: Category::from_payload(hit.payload),
            unclassified: hit.payload & ZONE_BIT != 0 && hit.entry.len() < name.len(),
        })
    }

    /// The pattern text of a hit that came from a pattern entry.
    pub fn pattern(&self, hit: &Hit<'_>) -> Option<&str> {
        hit.pattern.and_then(|i| self.set.pattern(i))
    }

    /// The most specific prefix holding `ip` (as written), for address lists.
    pub fn lookup_address(&self, ip: std::net::IpAddr) -> Option<&str> {
        self.addresses
            .lookup(ip)
            .and_then(|(_, i)| self.prefixes.get(*i))
            .map(String::as_str)
    }

    /// Number of active entries (names and prefixes).
    pub fn active_total(&self) -> usize {
        self.set.len() + self.prefixes.len()
    }

    /// Active entries per category, for the categories that have any.
    pub fn active_by_category(&self) -> BTreeMap<Option<Category>, usize> {
        let mut out = BTreeMap::new();
        for (i, &n) in self.active.iter().enumerate() {
            if n > 0 {
                let key = u8::try_from(i).ok().and_then(Category::from_payload);
                out.insert(key, n);
            }
        }
        out
    }
}

/// Why a list could not be loaded at all (bad lines are not errors).
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A catalogue file is not valid.
    #[error("{origin}: {message}")]
    Catalogue {
        /// The file or builtin name.
        origin: String,
        /// What is wrong, with its line.
        message: String,
    },
    /// The file is larger than a list may be.
    #[error("{} is larger than a list may be ({} MiB, {} entries): is it a list?", .0.display(), MAX_LIST_BYTES >> 20, MAX_LIST_ENTRIES)]
    TooLarge(PathBuf),
    /// No builtin list has this name.
    #[error("no builtin list named `{0}` (builtin lists: {builtins})", builtins = BUILTIN.join(", "))]
    UnknownBuiltin(String),
}

/// Reads a list as its spec says. Catalogue files are recognised by a
/// `.yaml`/`.yml` extension; everything else is read line by line.
pub fn load(spec: &ListSpec) -> Result<List, ListError> {
    match &spec.source {
        Source::Builtin(name) if name == "kaspersky" => {
            let cat = Catalogue::parse(KASPERSKY_YAML, "builtin:kaspersky")?;
            Ok(from_catalogue(spec, cat))
        }
        Source::Builtin(name) if name == "public-resolvers" => {
            let cat = Catalogue::parse(PUBLIC_RESOLVERS_YAML, "builtin:public-resolvers")?;
            Ok(from_catalogue(spec, cat))
        }
        Source::Builtin(name) if name == "kaspersky-networks" => {
            let nets: Vec<IpNet> = KASPERSKY_NETWORKS
                .lines()
                .map(|l| l.split('#').next().unwrap_or("").trim())
                .filter(|l| !l.is_empty())
                .filter_map(|l| l.parse().ok())
                .collect();
            Ok(from_prefixes(spec, &nets))
        }
        Source::Builtin(name) => Err(ListError::UnknownBuiltin(name.clone())),
        Source::Prefixes(nets) => Ok(from_prefixes(spec, nets)),
        Source::File(path) if is_catalogue(path) => read_catalogue_file(spec, path, None),
        Source::Feed(feed) => {
            // A copy that does not verify is ignored here; `config` warns.
            let newer = feed::stored(feed).ok().flatten().filter(|c| {
                feed::embedded_version().is_some_and(|v| {
                    feed::compare_versions(&c.version, &v) == Some(std::cmp::Ordering::Greater)
                })
            });
            let cat = match newer {
                Some(c) => c,
                None => Catalogue::parse(KASPERSKY_YAML, "builtin:kaspersky")?,
            };
            Ok(from_catalogue(spec, cat))
        }
        Source::Url(u) if !u.copy.exists() => {
            // No copy yet: served empty until the first fetch (start-up
            // never waits on the network); `config` decides if that is allowed.
            let mut list = empty(spec, None, None);
            seal(&mut list);
            Ok(list)
        }
        Source::Url(u) => read_line_file(spec, &u.copy, None),
        Source::File(path) => read_line_file(spec, path, None),
    }
}

/// Reads a catalogue file, bounded in bytes; `digest` is fed the text read.
fn read_catalogue_file(
    spec: &ListSpec,
    path: &Path,
    digest: Option<&mut sha2::Sha256>,
) -> Result<List, ListError> {
    let mut text = String::new();
    let file = crate::files::open_regular(path).map_err(|source| ListError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    std::io::Read::read_to_string(
        &mut std::io::Read::take(file, MAX_LIST_BYTES + 1),
        &mut text,
    )
    .map_err(|source| ListError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if text.len() as u64 > MAX_LIST_BYTES {
        return Err(ListError::TooLarge(path.to_path_buf()));
    }
    if let Some(d) = digest {
        sha2::Digest::update(d, text.as_bytes());
    }
    let cat = Catalogue::parse(&text, &path.display().to_string())?;
    Ok(from_catalogue(spec, cat))
}

/// Reads a line list file, bounded in bytes and entries; `digest` is fed
/// every byte read.
fn read_line_file(
    spec: &ListSpec,
    path: &Path,
    digest: Option<&mut sha2::Sha256>,
) -> Result<List, ListError> {
    let file = crate::files::open_regular(path).map_err(|source| ListError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut list = empty(spec, None, None);
    // Size the arena from the file once: no doubling of a large list's bytes.
    let bytes = file.metadata().map_or(0, |m| m.len());
    let bytes = usize::try_from(bytes).unwrap_or(0);
    list.set.reserve(bytes / 16, bytes);
    let payload = Category::payload(spec.category);
    // Bounded: a path such as /dev/zero, or a runaway file, must not
    // hang the load or eat the memory (`cutoff check` would never end).
    let limited = std::io::Read::take(file, MAX_LIST_BYTES + 1);
    let mut limited = std::io::BufReader::new(shared::Digesting::new(limited, digest));
    let mut entries = 0usize;
    let report = read_lines(&mut limited, spec.coverage, |name, cov| {
        entries += 1;
        if entries <= MAX_LIST_ENTRIES {
            list.set.insert(name, cov, payload);
        }
    })
    .map_err(|source| ListError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if limited.get_ref().inner().limit() == 0 || entries > MAX_LIST_ENTRIES {
        return Err(ListError::TooLarge(path.to_path_buf()));
    }
    list.problems = report;
    seal(&mut list);
    Ok(list)
}

fn is_catalogue(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

fn empty(spec: &ListSpec, version: Option<String>, catalogue: Option<Catalogue>) -> List {
    List {
        name: spec.name.clone(),
        source: spec.source.clone(),
        version,
        set: SuffixSet::new(),
        active: [0; Category::SLOTS],
        disabled: 0,
        duplicates: 0,
        problems: LineReport::default(),
        catalogue,
        addresses: PrefixTable::default(),
        prefixes: Vec::new(),
        tracked: match &spec.source {
            Source::Builtin(name) => name != "public-resolvers",
            Source::File(p) => is_catalogue(p) || spec.category.is_some(),
            Source::Feed(_) => true,
            Source::Prefixes(_) | Source::Url(_) => spec.category.is_some(),
        },
    }
}

fn from_prefixes(spec: &ListSpec, nets: &[IpNet]) -> List {
    let mut list = empty(spec, None, None);
    for net in nets {
        if list
            .addresses
            .insert(net.trunc(), list.prefixes.len())
            .is_some()
        {
            list.duplicates += 1;
        } else {
            list.prefixes.push(net.trunc().to_string());
        }
    }
    // Re-index after duplicates so every value points at its own text.
    let mut table = PrefixTable::default();
    for (i, text) in list.prefixes.iter().enumerate() {
        if let Ok(n) = text.parse::<IpNet>() {
            table.insert(n, i);
        }
    }
    list.addresses = table;
    list.active[0] = list.prefixes.len();
    list.set.finish();
    list
}

/// A list built into the config itself (the `bypass:` names): not tracked
/// as Kaspersky, no category.
pub fn synthetic(name: &str, entries: &[(&str, Coverage)]) -> List {
    let spec = ListSpec {
        name: name.to_owned(),
        source: Source::Builtin(name.to_owned()),
        category: None,
        coverage: Coverage::Suffix,
    };
    let mut list = empty(&spec, None, None);
    list.tracked = false;
    for (entry, coverage) in entries {
        list.set.insert(entry.as_bytes(), *coverage, 0);
    }
    seal(&mut list);
    list
}

/// Builds the lookup table and counts what it holds.
fn seal(list: &mut List) {
    list.duplicates += list.set.finish();
    for (_, _, payload) in list.set.iter() {
        list.active[Category::slot(payload)] += 1;
    }
}

fn from_catalogue(spec: &ListSpec, cat: Catalogue) -> List {
    let mut list = empty(spec, Some(cat.version.clone()), None);
    for entry in &cat.entries {
        if !entry.enabled {
            list.disabled += 1;
            continue;
        }
        let zone = if entry.zone.is_some() { ZONE_BIT } else { 0 };
        let payload = Category::payload(Some(entry.category)) | zone;
        if entry.domain.contains('*') {
            // The catalogue reader has checked the pattern's shape.
            if let Err(e) = list
                .set
                .insert_pattern(&entry.domain, entry.coverage, payload)
            {
                list.problems.push(0, format!("`{}`: {e}", entry.domain));
            }
        } else {
            list.set
                .insert(entry.domain.as_bytes(), entry.coverage, payload);
        }
    }
    list.problems = cat.problems.clone();
    seal(&mut list);
    list.catalogue = Some(cat);
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin() -> List {
        load(&ListSpec {
            name: "kaspersky".into(),
            source: Source::Builtin("kaspersky".into()),
            category: None,
            coverage: Coverage::Suffix,
        })
        .unwrap()
    }

    fn category_of(list: &List, name: &str) -> Option<Category> {
        list.lookup(name.as_bytes()).and_then(|f| f.category)
    }

    #[test]
    fn shipped_list_parses_without_problems() {
        let list = builtin();
        assert!(list.problems.count == 0, "{:?}", list.problems);
        assert!(list.active_total() > 150, "{}", list.active_total());
        assert_eq!(list.disabled, 10);
        assert_eq!(list.version.as_deref(), Some("2026.12.01"));
    }

    #[test]
    fn shipped_list_covers_numbered_hosts_no_source_names_yet() {
        let list = builtin();
        assert_eq!(
            category_of(&list, "s42.upd.kaspersky.com"),
            Some(Category::Update)
        );
        assert_eq!(
            category_of(&list, "dnl-77.geo.kaspersky.com"),
            Some(Category::Update)
        );
        assert_eq!(
            category_of(&list, "ksn-new.geoksn.kaspersky.com"),
            Some(Category::Telemetry)
        );
        assert_eq!(
            category_of(&list, "dc9.ksn.kaspersky-labs.com"),
            Some(Category::Telemetry)
        );
    }

    #[test]
    fn shipped_list_gives_the_most_specific_category() {
        let list = builtin();
        assert_eq!(
            category_of(&list, "activation-v2.geo.kaspersky.com"),
            Some(Category::Activation)
        );
        assert_eq!(
            category_of(&list, "opentip.kaspersky.com"),
            Some(Category::Exempt)
        );
        assert_eq!(
            category_of(&list, "api.tip.kaspersky.com"),
            Some(Category::Exempt)
        );
        assert_eq!(
            category_of(&list, "mx12.kaspersky-labs.com"),
            Some(Category::Brand)
        );
        assert_eq!(
            category_of(&list, "gc.kis.v2.scr.kaspersky-labs.com"),
            Some(Category::Web)
        );
        assert_eq!(
            category_of(&list, "www.kaspersky.com"),
            Some(Category::Brand)
        );
        assert_eq!(
            category_of(&list, "ultravpn.com"),
            Some(Category::Migration)
        );
        assert_eq!(category_of(&list, "example.com"), None);
    }

    #[test]
    fn low_confidence_hosts_under_kaspersky_zones_are_active() {
        let list = builtin();
        let cat = list.catalogue.as_ref().unwrap();
        let tel = cat
            .entries
            .iter()
            .find(|e| e.domain == "telemetry.kaspersky.com")
            .unwrap();
        assert!(tel.enabled);
        assert_eq!(tel.confidence, Confidence::Low);
        assert_eq!(
            category_of(&list, "telemetry.kaspersky.com"),
            Some(Category::Telemetry)
        );
        // Outside Kaspersky's zones, an uncorroborated domain stays disabled.
        assert_eq!(category_of(&list, "kasperskyupdate.com"), None);
        // Every disabled entry says why in its notes.
        for e in cat.entries.iter().filter(|e| !e.enabled) {
            assert!(
                e.notes.as_deref().is_some_and(|n| n.contains("Disabled:")),
                "{}",
                e.domain
            );
        }
    }

    #[test]
    fn zone_entries_mark_the_names_they_alone_decide_as_unclassified() {
        let list = builtin();
        fn found<'q>(list: &List, q: &'q str) -> Found<'q> {
            list.lookup(q.as_bytes()).unwrap()
        }
        let found = |q| found(&list, q);
        let new = found("brand-new-host.kaspersky-labs.com");
        assert_eq!(new.hit.entry, b"kaspersky-labs.com");
        assert_eq!(new.category, Some(Category::Update));
        assert!(new.unclassified);
        // The apex itself, and names a subzone or host entry covers, are classified.
        assert!(!found("kaspersky-labs.com").unclassified);
        assert!(!found("dnl-42.geo.kaspersky.com").unclassified);
        assert!(!found("downloads7.kaspersky-labs.com").unclassified);
        assert!(found("new-portal.kaspersky.com").unclassified);
        assert_eq!(
            list.pattern(&found("ksn-new-geo.kaspersky-labs.com").hit),
            Some("ksn-*-geo.kaspersky-labs.com")
        );
    }

    #[test]
    fn shipped_list_on_disk_equals_the_embedded_one() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("blocklists/kaspersky/kaspersky.yaml");
        let disk = load(&ListSpec {
            name: "k".into(),
            source: Source::File(path),
            category: None,
            coverage: Coverage::Suffix,
        })
        .unwrap();
        let embedded = builtin();
        assert_eq!(disk.active, embedded.active);
        assert_eq!(disk.disabled, embedded.disabled);
    }

    #[test]
    fn line_list_gets_the_configured_category() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("extra.txt");
        std::fs::write(
            &path,
            "example.org\n0.0.0.0 ads.example.net\nbad line here\n",
        )
        .unwrap();
        let list = load(&ListSpec {
            name: "extra".into(),
            source: Source::File(path),
            category: Some(Category::Update),
            coverage: Coverage::Suffix,
        })
        .unwrap();
        assert_eq!(list.active_total(), 2);
        assert_eq!(list.problems.count, 1);
        assert_eq!(
            category_of(&list, "www.example.org"),
            Some(Category::Update)
        );
    }

    #[test]
    fn kaspersky_networks_cover_the_announced_prefixes() {
        let list = load(&ListSpec {
            name: "kn".into(),
            source: Source::Builtin("kaspersky-networks".into()),
            category: None,
            coverage: Coverage::Suffix,
        })
        .unwrap();
        assert_eq!(list.active_total(), 16);
        assert_eq!(
            list.lookup_address("91.103.66.155".parse().unwrap()),
            Some("91.103.64.0/21")
        );
        assert_eq!(
            list.lookup_address("37.203.129.5".parse().unwrap()),
            Some("37.203.128.0/23")
        );
        assert_eq!(list.lookup_address("4.28.136.36".parse().unwrap()), None);
    }

    #[test]
    fn a_file_that_never_ends_is_refused_not_read_forever() {
        let err = load(&ListSpec {
            name: "zero".into(),
            source: Source::File("/dev/zero".into()),
            category: None,
            coverage: Coverage::Suffix,
        })
        .unwrap_err();
        // Refused before any read: not a regular file.
        assert!(matches!(err, ListError::Read { .. }), "{err}");
        assert!(err.to_string().contains("a character device"), "{err}");
    }

    #[test]
    fn missing_file_is_an_error_naming_the_path() {
        let err = load(&ListSpec {
            name: "x".into(),
            source: Source::File("/nonexistent/list.txt".into()),
            category: None,
            coverage: Coverage::Suffix,
        })
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/list.txt"), "{err}");
    }
}

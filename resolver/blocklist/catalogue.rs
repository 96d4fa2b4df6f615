//! The categorised list format of `blocklists/kaspersky/kaspersky.yaml`:
//! every entry with its coverage, category, confidence, sources and an
//! `enabled` flag. Format reference: `blocklists/README.md`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{Category, LineReport, ListError, ZoneKind};
use crate::matcher::{Coverage, SuffixSet};

/// How sure the sources are that a name is Kaspersky's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// Kaspersky's own documentation, or several curated sources.
    High,
    /// One curated source.
    Medium,
    /// Uncorroborated; shipped disabled.
    Low,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalogue {
    list: String,
    version: String,
    description: String,
    sources: BTreeMap<String, String>,
    entries: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    domain: Spanned<String>,
    #[serde(rename = "match")]
    coverage: MatchWord,
    category: Category,
    confidence: Confidence,
    enabled: bool,
    #[serde(default)]
    zone: Option<ZoneKind>,
    sources: Vec<String>,
    #[serde(default)]
    notes: Option<String>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum MatchWord {
    Exact,
    Suffix,
}

/// One entry of a catalogue.
#[derive(Clone, Debug)]
pub struct CatalogueEntry {
    /// The normalised domain.
    pub domain: String,
    /// Exact name or the name and everything below it.
    pub coverage: Coverage,
    /// What the name is for.
    pub category: Category,
    /// How sure the sources are.
    pub confidence: Confidence,
    /// Whether the entry is active.
    pub enabled: bool,
    /// For a zone-wide entry (a registrable domain or a subzone), what the
    /// zone is; names it decides that no other entry names are unclassified.
    pub zone: Option<ZoneKind>,
    /// Source addresses (resolved from the catalogue's source keys).
    pub sources: Vec<String>,
    /// Free text.
    pub notes: Option<String>,
}

/// A parsed catalogue.
#[derive(Clone, Debug)]
pub struct Catalogue {
    /// The list's own name.
    pub list: String,
    /// The list's version (bumped on every change).
    pub version: String,
    /// One line about the list.
    pub description: String,
    /// Every entry, enabled or not, in file order.
    pub entries: Vec<CatalogueEntry>,
    /// Entries that were skipped (bad domain, unknown source key).
    pub problems: LineReport,
}

impl Catalogue {
    /// Parses catalogue YAML; `origin` names the file in errors. A broken
    /// file is an error; a bad entry is skipped and reported with its line.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ListError> {
        let raw: RawCatalogue = serde_saphyr::from_str(text).map_err(|e| ListError::Catalogue {
            origin: origin.to_owned(),
            message: e.to_string().lines().next().unwrap_or("invalid").to_owned(),
        })?;
        let mut problems = LineReport::default();
        let mut entries = Vec::with_capacity(raw.entries.len());
        for e in raw.entries {
            let line = usize::try_from(e.domain.referenced.line()).unwrap_or(0);
            let domain = match entry_domain(&e.domain.value) {
                Ok(d) => d,
                Err(reason) => {
                    problems.push(line, reason.to_string());
                    continue;
                }
            };
            if domain.contains('*') && e.zone.is_some() {
                problems.push(
                    line,
                    format!("`{domain}`: a pattern cannot be a zone (give the zone its own entry)"),
                );
                continue;
            }
            let mut sources = Vec::with_capacity(e.sources.len());
            for key in &e.sources {
                match raw.sources.get(key) {
                    Some(address) => sources.push(address.clone()),
                    None => problems.push(line, format!("`{domain}`: unknown source key `{key}`")),
                }
            }
            if sources.is_empty() {
                problems.push(
                    line,
                    format!("`{domain}`: no source; every entry needs one"),
                );
                continue;
            }
            entries.push(CatalogueEntry {
                domain,
                coverage: match e.coverage {
                    MatchWord::Exact => Coverage::Exact,
                    MatchWord::Suffix => Coverage::Suffix,
                },
                category: e.category,
                confidence: e.confidence,
                enabled: e.enabled,
                zone: e.zone,
                sources,
                notes: e.notes,
            });
        }
        Ok(Self {
            list: raw.list,
            version: raw.version,
            description: raw.description,
            entries,
            problems,
        })
    }

    /// Entries per zone kind, enabled or not (for the coverage statement).
    pub fn zones(&self) -> impl Iterator<Item = &CatalogueEntry> {
        self.entries.iter().filter(|e| e.zone.is_some())
    }

    /// The entry with this domain and coverage, for `explain`.
    pub fn entry(&self, domain: &str, coverage: Coverage) -> Option<&CatalogueEntry> {
        self.entries
            .iter()
            .find(|e| e.domain == domain && e.coverage == coverage)
    }
}

/// Why a catalogue entry's domain was not read.
#[derive(Debug, thiserror::Error)]
enum EntryError {
    /// A plain name that is not a domain.
    #[error(transparent)]
    Domain(#[from] super::DomainError),
    /// A `*` pattern of the wrong shape.
    #[error(
        "`{0}` is not a valid pattern: a pattern is an ASCII domain name with one `*` in its first label"
    )]
    Shape(String),
    /// A pattern the matcher refuses.
    #[error("`{text}`: {reason}")]
    Pattern {
        /// The pattern as written.
        text: String,
        /// Why the matcher refused it.
        reason: crate::matcher::PatternError,
    },
}

/// A catalogue domain: a name, or a single-label pattern such as
/// `downloads*.kaspersky-labs.com` (one `*`, in the first label).
fn entry_domain(text: &str) -> Result<String, EntryError> {
    if !text.contains('*') {
        return Ok(super::lines::domain(text)?);
    }
    let bad = || EntryError::Shape(text.to_owned());
    if !text.is_ascii() {
        return Err(bad());
    }
    // Check the rest as a name with the `*` standing for one letter.
    let name = super::lines::domain(&text.replacen('*', "x", 1)).map_err(|_| bad())?;
    let at = text.trim().find('*').unwrap_or(0);
    let mut pattern = name;
    pattern.replace_range(at..=at, "*");
    SuffixSet::new()
        .insert_pattern(&pattern, Coverage::Suffix, 0)
        .map_err(|reason| EntryError::Pattern {
            text: text.to_owned(),
            reason,
        })?;
    Ok(pattern)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str =
        "list: t\nversion: \"1\"\ndescription: d\nsources:\n  A: https://a.example/\n";

    #[test]
    fn bad_entries_are_skipped_with_their_line() {
        let text = format!(
            "{HEAD}entries:\n  - domain: ok.example\n    match: exact\n    category: update\n    confidence: high\n    enabled: true\n    sources: [A]\n  - domain: bad domain\n    match: suffix\n    category: web\n    confidence: low\n    enabled: false\n    sources: [A]\n  - domain: nokey.example\n    match: suffix\n    category: web\n    confidence: low\n    enabled: false\n    sources: [B]\n"
        );
        let cat = Catalogue::parse(&text, "t.yaml").unwrap();
        assert_eq!(cat.entries.len(), 1);
        assert_eq!(cat.problems.count, 3);
        assert_eq!(cat.problems.first[0].line, 13);
    }

    #[test]
    fn patterns_are_checked_with_their_line() {
        let entry = |d: &str| {
            format!(
                "  - domain: \"{d}\"\n    match: suffix\n    category: update\n    confidence: high\n    enabled: true\n    sources: [A]\n"
            )
        };
        let text = format!(
            "{HEAD}entries:\n{}{}{}",
            entry("Downloads*.Example.com"),
            entry("a*b*.example.com"),
            entry("x.y*.example.com")
        );
        let cat = Catalogue::parse(&text, "t.yaml").unwrap();
        assert_eq!(cat.entries.len(), 1);
        assert_eq!(cat.entries[0].domain, "downloads*.example.com");
        assert_eq!(cat.problems.count, 2);
        assert_eq!(cat.problems.first[0].line, 13);
    }

    #[test]
    fn unknown_field_rejects_the_file() {
        let text = format!("{HEAD}entries: []\nextra: 1\n");
        let err = Catalogue::parse(&text, "t.yaml").unwrap_err();
        assert!(err.to_string().contains("t.yaml"), "{err}");
    }
}

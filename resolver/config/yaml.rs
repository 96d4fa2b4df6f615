//! YAML text → a tree of nodes that remember their line, and a reader that
//! walks the tree collecting every problem instead of stopping at the first.
//!
//! serde-saphyr parses (syntax errors, alias bombs and other budget breaches
//! stop here with their line), the rest of `config` only sees [`Node`]s. That
//! keeps the YAML crate behind this one file.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::Problem;

/// A parsed YAML value with the place it was written.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) value: Value,
    pub(crate) line: u32,
    /// Where a scalar's text starts and how long it is, in bytes of the
    /// source; used to read a plain `no` or `1.10` as the text written.
    raw: Option<(u64, u64)>,
    /// The scalar's text, filled in from `raw` after parsing.
    text: Option<String>,
}

/// The shapes a YAML node can have.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Null,
    Bool,
    Int(i128),
    Float,
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Self::Null => "nothing",
            Self::Bool => "a boolean",
            Self::Int(_) => "a number",
            Self::Float => "a number",
            Self::Str(_) => "a string",
            Self::Seq(_) => "a list",
            Self::Map(_) => "a mapping",
        }
    }
}

struct Tree(Value);

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tree;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<Tree, E> {
                Ok(Tree(Value::Null))
            }
            fn visit_none<E>(self) -> Result<Tree, E> {
                Ok(Tree(Value::Null))
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Tree, D2::Error> {
                Tree::deserialize(d)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Tree, E> {
                Ok(Tree(Value::Bool))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Tree, E> {
                Ok(Tree(Value::Int(v.into())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Tree, E> {
                Ok(Tree(Value::Int(v.into())))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Tree, E> {
                Ok(Tree(Value::Int(v)))
            }
            fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Tree, E> {
                i128::try_from(v)
                    .map(|v| Tree(Value::Int(v)))
                    .map_err(|_| E::custom("number too large"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Tree, E> {
                Ok(Tree(Value::Float))
            }
            fn visit_str<E>(self, v: &str) -> Result<Tree, E> {
                Ok(Tree(Value::Str(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Tree, E> {
                Ok(Tree(Value::Str(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Tree, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = a.next_element::<Spanned<Tree>>()? {
                    items.push(item);
                }
                Ok(Tree(Value::Seq(items.into_iter().map(node).collect())))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Tree, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = a.next_key::<Spanned<Tree>>()? {
                    let value = a.next_value::<Spanned<Tree>>()?;
                    entries.push((node(key), node(value)));
                }
                Ok(Tree(Value::Map(entries)))
            }
        }
        d.deserialize_any(V)
    }
}

fn node(s: Spanned<Tree>) -> Node {
    let span = s.referenced.span();
    Node {
        value: s.value.0,
        line: u32::try_from(s.referenced.line()).unwrap_or(u32::MAX),
        raw: span.byte_offset().zip(span.byte_len()),
        text: None,
    }
}

/// Parses YAML text into a [`Node`] tree; a syntax error (or a breached
/// resource budget) is one problem with its line.
pub(crate) fn parse(text: &str) -> Result<Node, Problem> {
    let text_of_file = text;
    if text.trim().is_empty() {
        return Ok(Node {
            value: Value::Map(Vec::new()),
            line: 1,
            raw: None,
            text: None,
        });
    }
    // Duplicate keys reach our reader, which reports each with its path.
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
    };
    match serde_saphyr::from_str_with_options::<Spanned<Tree>>(text, options) {
        Ok(tree) => {
            let mut root = node(tree);
            attach_raw(&mut root, text);
            Ok(root)
        }
        Err(e) => {
            let line = e.location().map(|l| u32::try_from(l.line()).unwrap_or(0));
            // The first line of serde-saphyr's message is the problem; the
            // rest is a source snippet we print ourselves.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid YAML").trim();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            let message = match first.split_once(": ") {
                Some((loc, rest)) if loc.starts_with("line ") => rest.to_owned(),
                _ => first.to_owned(),
            };
            let (line, message) = match line {
                Some(l) => {
                    let (l, m) = super::yaml_error::locate(text_of_file, l, &message);
                    (Some(l), m)
                }
                None => (None, message),
            };
            Err(Problem::new(line, "", format!("not valid YAML: {message}")))
        }
    }
}

/// Keeps the source text of plain scalars so that `no`, `on` or `1.10` can
/// still be read as the text the admin wrote when a string is expected.
fn attach_raw(node: &mut Node, text: &str) {
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(|n| attach_raw(n, text)),
        Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            attach_raw(k, text);
            attach_raw(v, text);
        }),
        Value::Bool | Value::Int(_) | Value::Float => {
            node.text = node.raw.and_then(|(start, len)| {
                let start = usize::try_from(start).ok()?;
                let end = start.checked_add(usize::try_from(len).ok()?)?;
                text.get(start..end).map(str::to_owned)
            });
        }
        _ => {}
    }
}

/// Whether `node` is what YAML makes of an unquoted `[IPv6]` or `[IPv6]:port`
/// in a flow list: a one-item list holding the address, or a one-entry
/// mapping whose key is such a list.
fn unquoted_ipv6(node: &Node) -> bool {
    // The plain text YAML split at its `:` indicators, put back together.
    fn text(n: &Node) -> Option<String> {
        match &n.value {
            Value::Str(s) => Some(s.clone()),
            Value::Null => Some(String::new()),
            Value::Int(i) => Some(i.to_string()),
            Value::Map(e) => match e.as_slice() {
                [(k, v)] => Some(format!("{}:{}", text(k)?, text(v)?)),
                _ => None,
            },
            _ => None,
        }
    }
    match &node.value {
        Value::Seq(items) => match items.as_slice() {
            [n] => text(n).is_some_and(|t| t.parse::<std::net::Ipv6Addr>().is_ok()),
            _ => false,
        },
        Value::Map(entries) => matches!(entries.as_slice(), [(k, _)] if unquoted_ipv6(k)),
        _ => false,
    }
}

/// A key path such as `rules[2].lists[0]`, built while walking.
#[derive(Clone, Debug, Default)]
pub(crate) struct Path(String);

impl Path {
    pub(crate) fn key(&self, key: &str) -> Self {
        if self.0.is_empty() {
            Self(key.to_owned())
        } else {
            Self(format!("{}.{key}", self.0))
        }
    }

    pub(crate) fn index(&self, i: usize) -> Self {
        Self(format!("{}[{i}]", self.0))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Walks nodes and records problems; every accessor returns `None` after
/// recording why, so callers keep going and report the next problem too.
pub(crate) struct Reader {
    pub(crate) problems: Vec<Problem>,
}

/// A mapping being read as a struct: its known keys were checked.
pub(crate) struct Fields<'n> {
    entries: &'n [(Node, Node)],
    path: Path,
}

impl<'n> Fields<'n> {
    /// The value under `key`, with its path.
    pub(crate) fn get(&self, key: &str) -> Option<(&'n Node, Path)> {
        self.entries
            .iter()
            .find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key))
            .map(|(_, v)| (v, self.path.key(key)))
    }
}

impl Reader {
    pub(crate) fn new() -> Self {
        Self {
            problems: Vec::new(),
        }
    }

    pub(crate) fn problem(&mut self, line: u32, path: &Path, message: impl Into<String>) {
        self.problems
            .push(Problem::new(Some(line), path.as_str(), message.into()));
    }

    fn wrong_type(&mut self, node: &Node, path: &Path, expected: &str) {
        let mut message = format!("expected {expected}, found {}", node.value.kind());
        if unquoted_ipv6(node) {
            message.push_str(
                "; an IPv6 address in brackets must be quoted in YAML, e.g. \"[::1]:53\" (unquoted, `[` starts a list)",
            );
        }
        self.problem(node.line, path, message);
    }

    /// Reads a mapping as a struct with the given keys; every other key is
    /// a problem (the rest of the mapping is still read).
    pub(crate) fn fields<'n>(
        &mut self,
        node: &'n Node,
        path: &Path,
        known: &[&str],
    ) -> Option<Fields<'n>> {
        let entries = match &node.value {
            Value::Map(entries) => entries.as_slice(),
            Value::Null => &[],
            _ => {
                self.wrong_type(node, path, "a mapping");
                return None;
            }
        };
        let mut seen: Vec<&str> = Vec::new();
        for (k, _) in entries {
            match &k.value {
                Value::Str(key) if known.contains(&key.as_str()) => {
                    if seen.contains(&key.as_str()) {
                        self.problem(k.line, &path.key(key), "key given twice");
                    }
                    seen.push(key);
                }
                Value::Str(key) => {
                    let hint = suggest(key, known)
                        .map(|s| format!(" (did you mean `{s}`?)"))
                        .unwrap_or_default();
                    self.problem(
                        k.line,
                        &path.key(key),
                        format!(
                            "unknown key `{key}`{hint}; known keys: {}",
                            known.join(", ")
                        ),
                    );
                }
                _ => self.wrong_type(k, path, "a string key"),
            }
        }
        Some(Fields {
            entries,
            path: path.clone(),
        })
    }

    /// Reads a mapping with free-form string keys (names chosen by the admin).
    pub(crate) fn named<'n>(
        &mut self,
        node: &'n Node,
        path: &Path,
    ) -> Vec<(String, u32, &'n Node)> {
        let entries = match &node.value {
            Value::Map(entries) => entries,
            Value::Null => return Vec::new(),
            _ => {
                self.wrong_type(node, path, "a mapping of names");
                return Vec::new();
            }
        };
        let mut out: Vec<(String, u32, &Node)> = Vec::new();
        for (k, v) in entries {
            let Some(name) = self.string(k, path) else {
                continue;
            };
            if out.iter().any(|(n, _, _)| *n == name) {
                self.problem(k.line, &path.key(&name), "name given twice");
                continue;
            }
            out.push((name, k.line, v));
        }
        out
    }

    /// Reads a string; plain scalars that YAML typed otherwise (`no`, `1.10`)
    /// are taken as written.
    pub(crate) fn string(&mut self, node: &Node, path: &Path) -> Option<String> {
        match (&node.value, &node.text) {
            (Value::Str(s), _) => Some(s.clone()),
            (Value::Bool | Value::Int(_) | Value::Float, Some(text)) => Some(text.clone()),
            (Value::Int(i), None) => Some(i.to_string()),
            _ => {
                self.wrong_type(node, path, "a string");
                None
            }
        }
    }

    /// Reads a list of strings; a single string is taken as a list of one.
    pub(crate) fn strings(&mut self, node: &Node, path: &Path) -> Vec<(String, u32, Path)> {
        match &node.value {
            Value::Seq(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, n)| {
                    let p = path.index(i);
                    self.string(n, &p).map(|s| (s, n.line, p))
                })
                .collect(),
            Value::Null => Vec::new(),
            _ => self
                .string(node, path)
                .map(|s| vec![(s, node.line, path.clone())])
                .unwrap_or_default(),
        }
    }

    /// Reads a list of nodes.
    pub(crate) fn seq<'n>(&mut self, node: &'n Node, path: &Path) -> &'n [Node] {
        match &node.value {
            Value::Seq(items) => items,
            Value::Null => &[],
            _ => {
                self.wrong_type(node, path, "a list");
                &[]
            }
        }
    }

    /// Reads a whole number in `min..=max`.
    pub(crate) fn int(&mut self, node: &Node, path: &Path, min: i128, max: i128) -> Option<i128> {
        match node.value {
            Value::Int(i) if (min..=max).contains(&i) => Some(i),
            Value::Int(i) => {
                self.problem(
                    node.line,
                    path,
                    format!("{i} is out of range {min}..={max}"),
                );
                None
            }
            _ => {
                self.wrong_type(node, path, "a whole number");
                None
            }
        }
    }
}

/// The known key closest to a misspelt one, when it is close.
fn suggest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unquoted_ipv6_address_in_a_flow_list_gets_a_hint() {
        for yaml in ["a: [[::]:53]\n", "a: [[::1]:53]\n", "a: [[fe80::1]]\n"] {
            let n = parse(yaml).unwrap();
            let Value::Map(top) = &n.value else { panic!() };
            let Value::Seq(items) = &top[0].1.value else {
                panic!()
            };
            assert!(unquoted_ipv6(&items[0]), "{yaml}");
        }
        let n = parse("a: [[x]]\n").unwrap();
        let Value::Map(top) = &n.value else { panic!() };
        let Value::Seq(items) = &top[0].1.value else {
            panic!()
        };
        assert!(!unquoted_ipv6(&items[0]));
    }

    #[test]
    fn nodes_remember_their_lines() {
        let n = parse("a: 1\nb:\n  - x\n  - y\n").unwrap();
        let Value::Map(entries) = &n.value else {
            panic!("map")
        };
        assert_eq!(entries[1].0.line, 2);
        let Value::Seq(items) = &entries[1].1.value else {
            panic!("seq")
        };
        assert_eq!(items[1].line, 4);
    }

    #[test]
    fn plain_scalars_keep_the_text_written() {
        let n = parse("mode: no\nversion: 1.10\n").unwrap();
        let mut r = Reader::new();
        let f = r
            .fields(&n, &Path::default(), &["mode", "version"])
            .unwrap();
        let (mode, p) = f.get("mode").unwrap();
        assert_eq!(r.string(mode, &p).as_deref(), Some("no"));
        let (v, p) = f.get("version").unwrap();
        assert_eq!(r.string(v, &p).as_deref(), Some("1.10"));
    }

    #[test]
    fn every_unknown_key_is_reported_with_a_suggestion() {
        let n = parse("lisen: x\nrulez: y\nrules: z\n").unwrap();
        let mut r = Reader::new();
        r.fields(&n, &Path::default(), &["listen", "rules"]);
        assert_eq!(r.problems.len(), 2);
        assert!(r.problems[0].message.contains("did you mean `listen`"));
        assert_eq!(r.problems[1].line, Some(2));
    }

    #[test]
    fn syntax_error_names_the_line_of_the_mistake() {
        // The reader notices the unclosed `[` on line 2; the mistake is on 1.
        let e = parse("a: [1, 2\nb: 3").unwrap_err();
        assert_eq!(e.line, Some(1));
        assert!(e.message.starts_with("not valid YAML"), "{}", e.message);
    }
}

//! Validation of `lists`: each list's source checked and the list loaded, so
//! a config that validates is one whose lists can serve.

use std::sync::Arc;

use ipnet::IpNet;

use super::check::{Checker, bad_name, cidr, valid_name};
use super::raw::RawList;
use super::rules::category;
use super::urllist::Places;
use crate::blocklist::{self, ListSpec, Source};
use crate::matcher::Coverage;

pub(super) fn lists(
    c: &mut Checker<'_>,
    raw: &[RawList],
    places: &Places<'_>,
) -> Vec<Option<Arc<blocklist::List>>> {
    raw.iter().map(|l| list(c, l, places)).collect()
}

fn list(c: &mut Checker<'_>, l: &RawList, places: &Places<'_>) -> Option<Arc<blocklist::List>> {
    let base = places.base;
    if !valid_name(&l.name.value) {
        c.error(&l.name, bad_name(&l.name.value));
    }
    let category = l.category.as_ref().and_then(|a| category(c, a));
    let coverage = match &l.coverage {
        None => Coverage::Suffix,
        Some(a) => match a.value.as_str() {
            "suffix" => Coverage::Suffix,
            "exact" => Coverage::Exact,
            other => {
                c.error(a, format!("`{other}` is not one of: suffix, exact"));
                Coverage::Suffix
            }
        },
    };
    let given = [
        l.builtin.is_some(),
        l.path.is_some(),
        l.prefixes.is_some(),
        l.url.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        c.error(
            &l.name,
            "give one of `builtin`, `path`, `prefixes` or `url`",
        );
        return None;
    }
    if l.url.is_none() && l.feed.is_none() {
        super::urllist::stray_keys(c, l);
    }
    if let (None, Some(a)) = (&l.feed, &l.feed_key) {
        c.error(a, "only a list with `feed` takes this");
    }
    let source = if let Some(f) = &l.feed {
        Source::Feed(Box::new(super::urllist::feed(c, l, f, places)?))
    } else if let Some(u) = &l.url {
        let s = super::urllist::source(c, l, u, places.state_dir, places.ca)?;
        Source::Url(Box::new(s))
    } else if let Some(b) = &l.builtin {
        if !blocklist::BUILTIN.contains(&b.value.as_str()) {
            c.error(
                b,
                format!(
                    "no builtin list `{}`; builtin lists: {}",
                    b.value,
                    blocklist::BUILTIN.join(", ")
                ),
            );
            return None;
        }
        Source::Builtin(b.value.clone())
    } else if let Some(p) = &l.path {
        Source::File(base.join(&p.value))
    } else if let Some(items) = &l.prefixes {
        let nets: Vec<IpNet> = items.value.iter().filter_map(|a| cidr(c, a)).collect();
        if nets.len() != items.value.len() {
            return None;
        }
        Source::Prefixes(nets)
    } else {
        c.error(
            &l.name,
            format!(
                "list `{}` needs `builtin: kaspersky`, `path: FILE`, `prefixes: [CIDR, ...]` or `url: https://...`",
                l.name.value
            ),
        );
        return None;
    };
    let catalogue = match &source {
        Source::Builtin(_) | Source::Prefixes(_) | Source::Feed(_) => true,
        Source::Url(_) => false,
        Source::File(p) => matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")),
    };
    if catalogue {
        for a in [&l.category, &l.coverage].into_iter().flatten() {
            c.error(
                a,
                "only line lists (a `path` to a text file) take this: catalogue entries carry their own category and match, and prefixes have neither",
            );
        }
    }
    let spec = ListSpec {
        name: l.name.value.clone(),
        source,
        category,
        coverage,
    };
    let at = l
        .path
        .as_ref()
        .or(l.builtin.as_ref())
        .or(l.url.as_ref())
        .unwrap_or(&l.name);
    if let Source::Url(u) = &spec.source
        && !u.copy.exists()
    {
        super::urllist::missing_copy(c, at, &spec.name, u);
        return blocklist::load(&spec).ok().map(Arc::new);
    }
    match blocklist::load_shared(&spec) {
        Ok(list) => {
            if list.problems.count > 0 {
                let first = list
                    .problems
                    .first
                    .iter()
                    .take(5)
                    .map(|p| format!("{}:{}: {}", spec.source, p.line, p.reason))
                    .collect::<Vec<_>>()
                    .join("; ");
                c.warn(
                    at,
                    format!("{} bad line(s) skipped: {first}", list.problems.count),
                );
            }
            if list.active_total() == 0 {
                c.error(
                    at,
                    format!(
                        "list `{}` has no active entries ({} disabled): an empty list blocks nothing",
                        spec.name, list.disabled
                    ),
                );
                return None;
            }
            Some(list)
        }
        Err(e) => {
            c.error(at, e.to_string());
            None
        }
    }
}

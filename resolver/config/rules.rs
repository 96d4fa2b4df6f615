//! Validation of `rules`: names, networks, lists, categories, actions and
//! the instants around them, every cross-reference checked.

use std::sync::Arc;

use jiff::Timestamp;

use super::check::{Checker, bad_name, valid_name};
use super::raw::{At, RawRule};
use super::{Action, Network, Rule};
use crate::blocklist::{self, Category};

/// A category word, or a problem naming the known ones.
pub(super) fn category(c: &mut Checker<'_>, a: &At<String>) -> Option<Category> {
    let cat = Category::parse(&a.value);
    if cat.is_none() {
        c.error(
            a,
            format!(
                "`{}` is not a category; categories: {}",
                a.value,
                category_words()
            ),
        );
    }
    cat
}

fn category_words() -> String {
    Category::ALL.map(Category::as_str).join(", ")
}

fn action(c: &mut Checker<'_>, a: &At<String>) -> Option<Action> {
    let action = Action::parse(&a.value);
    if action.is_none() {
        let other = &a.value;
        let words = Action::words();
        c.error(a, format!("`{other}` is not an action; actions: {words}"));
    }
    action
}

fn instant(c: &mut Checker<'_>, a: &At<String>) -> Option<Timestamp> {
    match a.value.parse::<Timestamp>() {
        Ok(t) => Some(t),
        Err(_) => {
            let hint = if a.value.parse::<jiff::civil::DateTime>().is_ok()
                || a.value.parse::<jiff::civil::Date>().is_ok()
            {
                " (it needs a time and an offset, e.g. 2024-09-29T00:00:00-04:00 or 2024-09-29T04:00:00Z)"
            } else {
                " (expected RFC 3339 with an offset, e.g. 2024-09-29T00:00:00-04:00)"
            };
            c.error(a, format!("`{}` is not an instant{hint}", a.value));
            None
        }
    }
}

pub(super) fn rules(
    c: &mut Checker<'_>,
    raw: &[RawRule],
    networks: &[Network],
    list_names: &[&str],
    lists: &[Option<Arc<blocklist::List>>],
) -> Vec<Option<Rule>> {
    let mut names: Vec<&str> = Vec::new();
    raw.iter()
        .map(|r| {
            let whole = At {
                value: (),
                line: r.line,
                path: r.path.clone(),
            };
            let name = match &r.name {
                Some(n) if names.contains(&n.value.as_str()) => {
                    c.error(n, format!("another rule is already named `{}`", n.value));
                    None
                }
                Some(n) if !valid_name(&n.value) => {
                    c.error(n, bad_name(&n.value));
                    None
                }
                Some(n) => {
                    names.push(&n.value);
                    Some(n.value.clone())
                }
                None => {
                    c.error(&whole, "a rule needs a `name`");
                    None
                }
            };
            if let Some(items) = r.networks.as_ref().filter(|i| i.value.is_empty()) {
                c.warn(items, "`networks: []` selects no network: the rule never applies (leave it out for every network)");
            }
            if let Some(items) = r.categories.as_ref().filter(|i| i.value.is_empty()) {
                c.warn(items, "`categories: []` selects no entry: the rule never applies (leave it out for every entry)");
            }
            let nets = r.networks.as_ref().map(|items| {
                items
                    .value
                    .iter()
                    .filter_map(|a| match networks.iter().position(|n| n.name == a.value) {
                        Some(i) => Some(i),
                        None => {
                            let known: Vec<&str> =
                                networks.iter().map(|n| n.name.as_str()).collect();
                            c.error(
                                a,
                                format!(
                                    "no network named `{}`; networks: {}",
                                    a.value,
                                    known.join(", ")
                                ),
                            );
                            None
                        }
                    })
                    .collect::<Vec<_>>()
            });
            if r.lists.is_empty() {
                c.error(
                    &whole,
                    "a rule needs `lists` (which lists it selects names from)",
                );
            }
            let mut list_ids = Vec::new();
            for a in &r.lists {
                match list_names.iter().position(|n| *n == a.value) {
                    Some(i) => list_ids.push(i),
                    None if list_names.is_empty() => c.error(
                        a,
                        format!("no list named `{}`: no lists are defined under `lists`", a.value),
                    ),
                    None => c.error(
                        a,
                        format!("no list named `{}`; lists: {}", a.value, list_names.join(", ")),
                    ),
                }
            }
            let categories = r.categories.as_ref().map(|items| {
                items
                    .value
                    .iter()
                    .filter_map(|a| {
                        let cat = category(c, a)?;
                        let any = list_ids.iter().any(|&i| {
                            lists[i]
                                .as_ref()
                                .is_some_and(|l| l.active[usize::from(Category::payload(Some(cat)))] > 0)
                        });
                        if !any && list_ids.iter().all(|&i| lists[i].is_some()) {
                            c.warn(a, format!("no list of this rule has active `{cat}` entries"));
                        }
                        Some(cat)
                    })
                    .collect::<Vec<_>>()
            });
            let act = match &r.action {
                Some(a) => action(c, a),
                None => {
                    c.error(&whole, "a rule needs an `action` (block, log or allow)");
                    None
                }
            };
            let from = r.from.as_ref().and_then(|a| instant(c, a));
            let until = r.until.as_ref().and_then(|a| instant(c, a));
            if let (Some(f), Some(u), Some(ua)) = (from, until, &r.until)
                && u <= f
            {
                c.error(ua, "`until` must be later than `from`");
            }
            let before = r.before.as_ref().and_then(|a| {
                if r.from.is_none() {
                    c.error(a, "`before` needs `from` (the instant it is before)");
                }
                action(c, a)
            });
            let after = r.after.as_ref().and_then(|a| {
                if r.until.is_none() {
                    c.error(a, "`after` needs `until` (the instant it is after)");
                }
                action(c, a)
            });
            let answer = r
                .answer
                .as_ref()
                .and_then(|a| super::settings::answer_mode(c, a));
            Some(Rule {
                name: name?,
                networks: nets,
                lists: list_ids,
                categories,
                action: act?,
                from,
                until,
                from_text: r.from.as_ref().map(|a| a.value.clone()),
                until_text: r.until.as_ref().map(|a| a.value.clone()),
                before,
                after,
                answer,
            })
        })
        .collect()
}

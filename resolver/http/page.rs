//! The status page (`GET /`): one server-rendered HTML document, readable
//! without script (none is allowed) and on a phone, refreshed by a meta
//! refresh. Everything shown comes from [`super::status`], the recent ring
//! and the explain code `cutoff explain` uses; every value goes through
//! [`escape`]. Beside the query flow.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Query, State as AxState};
use axum::http::{Uri, header};
use axum::response::{Html, IntoResponse, Response};
use jiff::Timestamp;

use super::api::{ExplainQuery, RecentRow, explain_query, recent_rows};
use super::html::{STYLE, escape, sparkline};
use super::status::{Activity, Status};
use crate::runtime::State;

/// Seconds between refreshes of the page (none while an explain result is shown).
pub(super) const REFRESH_SECONDS: u32 = 60;

pub(super) async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

pub(super) async fn page(AxState(state): AxState<Arc<State>>, uri: Uri) -> Response {
    let now = Timestamp::now();
    let q = Query::<ExplainQuery>::try_from_uri(&uri)
        .map(|Query(q)| q)
        .unwrap_or_default();
    let asked = q.client.is_some() || q.name.is_some();
    let explained = asked.then(|| explain_query(&state, &q, now));
    let explained = explained.map(|r| r.map(|(_, text)| text).map_err(|e| e.to_string()));
    let status = super::status(&state, now);
    let recent = recent_rows(&state);
    Html(render(&status, &recent, &q, explained.as_ref())).into_response()
}

/// The whole document.
pub(super) fn render(
    s: &Status,
    recent: &[RecentRow],
    q: &ExplainQuery,
    explained: Option<&Result<String, String>>,
) -> String {
    let mut o = String::with_capacity(16 * 1024);
    let refresh = if explained.is_none() {
        format!("<meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">")
    } else {
        String::new()
    };
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{refresh}\
         <title>cutoff status</title><link rel=\"stylesheet\" href=\"/style.css\"></head><body>\
         <h1>cutoff status</h1><p class=\"muted\">{} · config {} ({}) · cutoff {}</p>",
        escape(&s.now.to_string()),
        escape(&s.config_version),
        escape(&s.config_origin),
        escape(&s.version)
    );
    headline(&mut o, s);
    enforcement(&mut o, s);
    activity(&mut o, &s.last_hour, &s.last_day);
    clients(&mut o, s);
    recent_table(&mut o, recent);
    lists(&mut o, s);
    upstreams(&mut o, s);
    explain_form(&mut o, q, explained);
    o.push_str(
        "<p class=\"muted noprint\">JSON: <a href=\"/api/v1/status\">status</a> · \
         <a href=\"/api/v1/recent\">recent</a> · <a href=\"/api/v1/clients\">clients</a> · \
         <a href=\"/metrics\">metrics</a></p></body></html>\n",
    );
    o
}

fn opt(v: Option<&str>) -> String {
    v.map_or_else(|| "—".to_owned(), escape)
}

/// One line a home user reads first: where the cut-off is enforced now.
fn headline(o: &mut String, s: &Status) {
    let names = |enforcing: bool| -> Vec<&str> {
        s.networks
            .iter()
            .filter(|n| n.enforcing == enforcing)
            .map(|n| n.name.as_str())
            .collect()
    };
    let (on, off) = (names(true), names(false));
    o.push_str("<p id=\"headline\">");
    if !on.is_empty() {
        let _ = write!(
            o,
            "<span class=\"holds\">Cut-off enforced</span> on {}. ",
            escape(&on.join(", "))
        );
    }
    if !off.is_empty() {
        let _ = write!(
            o,
            "<span class=\"open\">Not enforced</span> on {}.",
            escape(&off.join(", "))
        );
    }
    o.push_str("</p>");
}

fn enforcement(o: &mut String, s: &Status) {
    o.push_str("<h2 id=\"enforcement\">Enforcement per network</h2><div class=\"wrap\"><table><tr><th>network</th><th>cut-off</th><th>rule</th><th>now</th><th>phase</th><th>from</th><th>until</th><th>categories</th></tr>");
    for n in &s.networks {
        let state = if n.enforcing {
            "<span class=\"holds\">enforcing</span>"
        } else {
            "<span class=\"open\">not enforcing</span>"
        };
        if n.rules.is_empty() {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{state}</td><td colspan=\"6\" class=\"muted\">no rule</td></tr>",
                escape(&n.name)
            );
        }
        for r in &n.rules {
            let cats = r.categories.as_ref().map(|c| c.join(", "));
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{state}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&n.name),
                escape(&r.name),
                opt(r.action_now.as_deref()),
                escape(&r.phase),
                opt(r.from.as_deref()),
                opt(r.until.as_deref()),
                cats.map_or_else(|| "all".to_owned(), |c| escape(&c)),
            );
        }
    }
    o.push_str("</table></div>");
}

fn activity(o: &mut String, hour: &Activity, day: &Activity) {
    let _ = write!(
        o,
        "<h2 id=\"activity\">Activity (listed names)</h2><p>last hour {} · last 24 hours {}</p>",
        sparkline(
            &hour.series,
            160,
            28,
            "listed lookups per 5 minutes, last hour"
        ),
        sparkline(
            &day.series,
            288,
            28,
            "listed lookups per 5 minutes, last 24 hours"
        ),
    );
    o.push_str("<div class=\"wrap\"><table><tr><th>category</th><th>blocked 1 h</th><th>logged 1 h</th><th>allowed 1 h</th><th>blocked 24 h</th><th>logged 24 h</th><th>allowed 24 h</th></tr>");
    if day.categories.is_empty() {
        o.push_str("<tr><td colspan=\"7\" class=\"muted\">no lookup of a listed name in 24 hours</td></tr>");
    }
    for d in &day.categories {
        let h = hour.categories.iter().find(|h| h.category == d.category);
        let (hb, hl, ha) = h.map_or((0, 0, 0), |h| (h.blocked, h.logged, h.allowed));
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=\"n\">{hb}</td><td class=\"n\">{hl}</td><td class=\"n\">{ha}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&d.category),
            d.blocked,
            d.logged,
            d.allowed
        );
    }
    o.push_str("</table></div>");
}

fn clients(o: &mut String, s: &Status) {
    o.push_str("<h2 id=\"clients\">Clients still calling Kaspersky (24 h)</h2><div class=\"wrap\"><table><tr><th>network</th><th>client</th><th>last seen</th><th>categories</th><th>lookups</th><th>blocked</th><th>logged</th></tr>");
    if s.clients.is_empty() {
        o.push_str("<tr><td colspan=\"7\" class=\"muted\">none</td></tr>");
    }
    for c in &s.clients {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&c.network),
            escape(&c.client),
            escape(&c.last_seen.to_string()),
            escape(&c.categories.join(", ")),
            c.count,
            c.blocked,
            c.logged
        );
    }
    o.push_str("</table></div>");
    if s.clients_total > s.clients.len() {
        let _ = write!(
            o,
            "<p class=\"muted\">The {} seen last of {}; all of them: <a href=\"/api/v1/clients?since=24h\">/api/v1/clients?since=24h</a>.</p>",
            s.clients.len(),
            s.clients_total
        );
    }
}

fn recent_table(o: &mut String, recent: &[RecentRow]) {
    o.push_str("<h2 id=\"recent\">Recent blocked and logged lookups</h2><div class=\"wrap\"><table><tr><th>time</th><th>network</th><th>client</th><th>name</th><th>action</th><th>category</th><th>rule</th></tr>");
    if recent.is_empty() {
        o.push_str("<tr><td colspan=\"7\" class=\"muted\">none yet</td></tr>");
    }
    for r in recent {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"name\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&r.time.to_string()),
            escape(&r.network),
            escape(&r.client),
            escape(&r.name),
            escape(&r.action),
            opt(r.category.as_deref()),
            opt(r.rule.as_deref()),
        );
    }
    o.push_str("</table></div>");
}

fn lists(o: &mut String, s: &Status) {
    o.push_str("<h2 id=\"lists\">Lists</h2><div class=\"wrap\"><table><tr><th>list</th><th>version</th><th>entries</th><th>per category</th></tr>");
    for l in &s.lists {
        let cats: Vec<String> = l
            .categories
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            escape(&l.name),
            opt(l.version.as_deref()),
            l.entries,
            escape(&cats.join(", "))
        );
    }
    o.push_str("</table></div>");
}

fn upstreams(o: &mut String, s: &Status) {
    o.push_str("<h2 id=\"upstreams\">Upstreams</h2><div class=\"wrap\"><table><tr><th>upstream</th><th>round trip</th><th>errors</th></tr>");
    for u in &s.upstreams {
        let rtt = u
            .rtt_ms
            .map_or_else(|| "not measured yet".to_owned(), |r| format!("{r} ms"));
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&u.upstream),
            escape(&rtt),
            u.errors
        );
    }
    o.push_str("</table></div>");
}

fn explain_form(o: &mut String, q: &ExplainQuery, explained: Option<&Result<String, String>>) {
    let value = |v: &Option<String>| v.as_deref().map(escape).unwrap_or_default();
    let _ = write!(
        o,
        "<h2 id=\"explain\">Explain</h2><form method=\"get\" action=\"/#explain\">\
         <input name=\"client\" placeholder=\"client IP\" value=\"{}\" required>\
         <input name=\"name\" placeholder=\"name\" value=\"{}\" required>\
         <input name=\"at\" placeholder=\"at (RFC 3339, default now)\" value=\"{}\">\
         <button type=\"submit\">explain</button></form>",
        value(&q.client),
        value(&q.name),
        value(&q.at)
    );
    match explained {
        Some(Ok(text)) => {
            let _ = write!(o, "<pre id=\"explained\">{}</pre>", escape(text));
        }
        Some(Err(e)) => {
            let _ = write!(o, "<p class=\"open\" id=\"explained\">{}</p>", escape(e));
        }
        None => {}
    }
}

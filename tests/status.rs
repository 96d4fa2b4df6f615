//! The status page and its JSON API (issue 11, part 1): over real sockets
//! after real queries, and in a real browser (Debian's `chromium`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use hickory_proto::rr::RecordType;
use serde_json::Value;

use crate::fakeup::Fakeup;
use crate::harness::{http, http_response, query, serve, udp, udp_raw};
use crate::proc::{Proc, Start};
use crate::util::{needs_tool, run, temp_file};

/// `staff` blocks the cut-off categories; `lab` only logs.
pub(crate) const CONFIG: &str = "listen: [\"127.0.0.1:0\"]
upstreams: [\"{upstream}\"]
networks:
  staff: [127.0.0.2/32]
  lab: [127.0.0.3/32]
lists:
  kaspersky: {builtin: kaspersky}
rules:
  - {name: staff-cutoff, networks: [staff], lists: [kaspersky], categories: [update, telemetry, activation], action: block, from: \"2024-09-29T00:00:00-04:00\"}
  - {name: watch, lists: [kaspersky], action: log}
";

const BLOCKED: &str = "s05.upd.kaspersky.com";

/// The label of a query name chosen to break out of HTML.
const HOSTILE: &[u8] = b"\"'><script>alert(1)</script><img src=x onerror=alert(2)>";

/// A query for `HOSTILE.upd.kaspersky.com`, built by hand (no DNS library
/// writes such a label).
fn hostile_query() -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in [HOSTILE, b"upd", b"kaspersky", b"com"] {
        q.push(u8::try_from(label.len()).expect("short label"));
        q.extend_from_slice(label);
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// GET `path`: (head, body).
async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    http_response(addr, "GET", path).await
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn the_status_api_shows_the_enforcement_the_activity_and_the_clients() {
    let up = Fakeup::start().await;
    let s = serve(CONFIG, up.addr()).await;
    let blocked = query(BLOCKED, RecordType::A, None);
    udp(s.addr, "127.0.0.2", &blocked).await;
    assert!(
        up.seen_name(BLOCKED).is_empty(),
        "staff's lookup is blocked"
    );
    udp(s.addr, "127.0.0.3", &query(BLOCKED, RecordType::A, None)).await;
    assert_eq!(
        up.seen_name(BLOCKED).len(),
        1,
        "only lab's lookup is forwarded"
    );

    let (code, body) = http(s.http, "GET", "/api/v1/status").await;
    assert_eq!(code, 200, "{body}");
    let st = json(&body);
    let net = |name: &str| {
        st["networks"]
            .as_array()
            .expect("networks")
            .iter()
            .find(|n| n["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no network {name}: {st}"))
    };
    assert_eq!(net("staff")["enforcing"], true, "{st}");
    assert_eq!(net("lab")["enforcing"], false, "{st}");
    let rule = &net("staff")["rules"][0];
    assert_eq!(rule["name"], "staff-cutoff");
    assert_eq!(rule["action_now"], "block");
    assert_eq!(rule["phase"], "active");
    assert_eq!(rule["from"], "2024-09-29T00:00:00-04:00");
    let update = st["last_hour"]["categories"]
        .as_array()
        .expect("categories")
        .iter()
        .find(|c| c["category"] == "update")
        .cloned()
        .unwrap_or_else(|| panic!("no update counts: {st}"));
    assert_eq!(
        (&update["blocked"], &update["logged"]),
        (&1.into(), &1.into())
    );
    assert_eq!(st["last_day"]["series"].as_array().map(Vec::len), Some(288));
    assert_eq!(st["last_hour"]["series"].as_array().map(Vec::len), Some(12));
    let clients: Vec<&str> = st["clients"]
        .as_array()
        .expect("clients")
        .iter()
        .filter_map(|c| c["client"].as_str())
        .collect();
    assert_eq!(clients.len(), 2, "{st}");
    assert_eq!(st["clients_total"], 2, "{st}");
    assert!(clients.contains(&"127.0.0.2") && clients.contains(&"127.0.0.3"));
    assert!(st["config_version"].as_str().is_some_and(|v| !v.is_empty()));
    assert_eq!(
        st["upstreams"][0]["upstream"],
        up.addr().to_string(),
        "{st}"
    );

    let (code, body) = http(s.http, "GET", "/api/v1/recent").await;
    assert_eq!(code, 200);
    let recent = json(&body);
    assert_eq!(recent[0]["action"], "log", "newest first: {recent}");
    assert_eq!(recent[1]["action"], "block");
    assert_eq!(recent[1]["name"], BLOCKED);
    assert_eq!(recent[1]["network"], "staff");
    assert_eq!(recent[1]["rule"], "staff-cutoff");
    assert_eq!(recent[1]["category"], "update");
    s.stop().await;
}

#[tokio::test]
async fn every_admin_response_carries_the_security_headers_and_no_cookie() {
    let up = Fakeup::start().await;
    let s = serve(CONFIG, up.addr()).await;
    for path in ["/", "/style.css", "/api/v1/status", "/metrics", "/nothing"] {
        let (head, _) = get(s.http, path).await;
        let head = head.to_ascii_lowercase();
        assert!(
            head.contains("content-security-policy: default-src 'none'; style-src 'self';")
                && head.contains("frame-ancestors 'none'"),
            "{path}: {head}"
        );
        assert!(
            head.contains("x-content-type-options: nosniff"),
            "{path}: {head}"
        );
        assert!(!head.contains("set-cookie"), "{path}: {head}");
    }
    s.stop().await;
}

#[tokio::test]
async fn the_explain_api_and_form_say_exactly_what_cutoff_explain_says() {
    let up = Fakeup::start().await;
    let s = serve(CONFIG, up.addr()).await;
    let yaml = CONFIG.replace("{upstream}", &up.addr().to_string());
    let (_dir, path) = temp_file("cutoff.yaml", &yaml);
    let at = "2024-09-28T12:00:00-04:00";
    for client in ["127.0.0.2", "127.0.0.3"] {
        let config = path.to_str().expect("utf8");
        let args = [
            "explain", "--config", config, "--client", client, "--at", at,
        ];
        let (code, cli, err) = run(&[&args[..], &["--json", BLOCKED]].concat());
        assert_eq!(code, 0, "{err}");
        let q = format!("client={client}&name={BLOCKED}&at=2024-09-28T12:00:00-04:00");
        let (status, api) = http(s.http, "GET", &format!("/api/v1/explain?{q}")).await;
        assert_eq!(status, 200, "{api}");
        let (mut cli, mut api) = (json(&cli), json(&api));
        // The same config text, loaded from another path.
        cli["config_version"] = Value::Null;
        api["config_version"] = Value::Null;
        assert_eq!(api, cli);

        let (code, text, err) = run(&[&args[..], &[BLOCKED]].concat());
        assert_eq!(code, 0, "{err}");
        let (_, page) = http(s.http, "GET", &format!("/?{q}")).await;
        let shown = page
            .split_once("<pre id=\"explained\">")
            .and_then(|(_, rest)| rest.split_once("</pre>"))
            .map(|(pre, _)| pre.to_owned())
            .unwrap_or_else(|| panic!("no explanation on the page: {page}"));
        // Everything but the config line, which names the file.
        let body = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| !l.trim_start().starts_with("config "))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(body(&shown), body(&cutoff::http::escape(&text)));
    }
    s.stop().await;
}

#[tokio::test]
async fn a_bad_explain_request_is_refused_naming_the_field() {
    let up = Fakeup::start().await;
    let s = serve(CONFIG, up.addr()).await;
    for (q, says) in [
        ("name=a.example", "`client` is required"),
        ("client=10.0.0.300&name=a.example", "`client`: `10.0.0.300`"),
        (
            "client=10.0.0.1&name=a.example&at=tomorrow",
            "`at`: `tomorrow`",
        ),
        ("client=10.0.0.1", "`name` is required"),
    ] {
        let (code, body) = http(s.http, "GET", &format!("/api/v1/explain?{q}")).await;
        assert_eq!(code, 400, "{q}: {body}");
        assert!(body.contains(says), "{q}: {body}");
    }
    s.stop().await;
}

/// A page that contains no markup from the query names or the form.
fn assert_inert(page: &str) {
    let lower = page.to_ascii_lowercase();
    assert!(!lower.contains("<script"), "{page}");
    assert!(!lower.contains("<img"), "{page}");
    assert!(!page.contains("\"'>"), "{page}");
}

#[tokio::test]
async fn a_hostile_query_name_and_explain_input_are_inert_on_the_page() {
    let up = Fakeup::start().await;
    let s = serve(CONFIG, up.addr()).await;
    let answer = udp_raw(
        s.addr,
        "127.0.0.2",
        &hostile_query(),
        Duration::from_secs(5),
    )
    .await;
    assert!(answer.is_some(), "the hostile name is answered (blocked)");
    let (_, body) = http(s.http, "GET", "/api/v1/recent").await;
    let name = json(&body)[0]["name"].as_str().map(str::to_owned);
    let name = name.unwrap_or_else(|| panic!("not in the ring: {body}"));
    assert!(name.ends_with(".upd.kaspersky.com"), "{name}");
    let form = "/?client=127.0.0.2&name=%3Cscript%3Ealert(3)%3C%2Fscript%3E%22%27%3E";
    let (head, page) = get(s.http, form).await;
    assert!(head.contains("text/html"), "{head}");
    assert_inert(&page);
    assert!(page.contains(&cutoff::http::escape(&name)), "{page}");
    assert!(
        page.contains("value=\"&lt;script&gt;alert(3)&lt;/script&gt;&quot;&#39;&gt;\""),
        "{page}"
    );
    s.stop().await;
}

/// Runs headless chromium on `url` with `args`: its stdout, or `None`
/// when it did not finish in time.
pub(crate) fn chromium(url: &str, args: &[&str]) -> Option<String> {
    let profile = tempfile::tempdir().expect("tempdir");
    let dir = format!("--user-data-dir={}", profile.path().display());
    let out = std::process::Command::new("timeout")
        .args([
            "60",
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
        ])
        .args(["--no-first-run", "--disable-extensions", &dir])
        .args(args)
        .arg(url)
        .output()
        .expect("run timeout chromium");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_in_a_real_browser_shows_the_block_and_the_hostile_name_inert() {
    if !needs_tool("chromium", "apt-get install chromium fonts-dejavu-core") {
        return;
    }
    let up = Fakeup::start().await;
    let yaml = crate::proc::config(
        up.addr(),
        &CONFIG[CONFIG.find("networks:").expect("networks")..],
    );
    let p = Proc::start(&yaml, Start::default());
    udp(p.dns, "127.0.0.2", &query(BLOCKED, RecordType::A, None)).await;
    assert!(
        up.seen_name(BLOCKED).is_empty(),
        "staff's lookup is blocked"
    );
    udp(p.dns, "127.0.0.3", &query(BLOCKED, RecordType::A, None)).await;
    assert!(
        udp_raw(p.dns, "127.0.0.2", &hostile_query(), Duration::from_secs(5))
            .await
            .is_some()
    );

    let url = format!(
        "http://{}/?client=127.0.0.2&name=%3Cscript%3Ealert(3)%3C%2Fscript%3E",
        p.http
    );
    let dom = chromium(&url, &["--dump-dom"]).expect("chromium --dump-dom finished");
    assert!(dom.contains("<title>cutoff status</title>"), "{dom}");
    assert_inert(&dom);
    // The browser's own serialisation: the form's name is text, not an
    // element; the hostile query name is in the ring, escaped as the query
    // log writes it.
    assert!(
        dom.contains("asking &lt;script&gt;alert(3)&lt;/script&gt; at"),
        "{dom}"
    );
    assert!(
        dom.contains("\\034\\039\\062\\060script\\062alert"),
        "{dom}"
    );
    assert!(
        dom.contains(&format!("<td class=\"name\">{BLOCKED}</td>")),
        "{dom}"
    );
    let staff = dom
        .split("<tr>")
        .find(|row| row.starts_with("<td>staff</td>"))
        .unwrap_or_else(|| panic!("no staff row: {dom}"));
    assert!(
        staff.contains("enforcing") && !staff.contains("not enforcing"),
        "{staff}"
    );
    let lab = dom
        .split("<tr>")
        .find(|row| row.starts_with("<td>lab</td>"));
    assert!(lab.is_some_and(|r| r.contains("not enforcing")), "{dom}");

    // A picture for people (docs/img/status-page.png is a copy of it).
    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/status-page.png");
    let _ = std::fs::remove_file(&shot);
    let arg = format!("--screenshot={}", shot.display());
    let page = format!("http://{}/", p.http);
    chromium(
        &page,
        &[&arg, "--window-size=1100,1500", "--hide-scrollbars"],
    )
    .expect("chromium --screenshot finished");
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "a PNG"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutoff_status_prints_the_summary_of_a_running_server() {
    let up = Fakeup::start().await;
    let s = serve(CONFIG, up.addr()).await;
    udp(s.addr, "127.0.0.2", &query(BLOCKED, RecordType::A, None)).await;
    let url = format!("http://{}", s.http);
    let (code, out, err) = tokio::task::spawn_blocking(move || run(&["status", "--url", &url]))
        .await
        .expect("join");
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
    assert!(
        lines[0].starts_with("cutoff ") && lines[0].contains(": config "),
        "{out}"
    );
    let line = |start: &str| {
        lines
            .iter()
            .find(|l| l.trim_start().starts_with(start))
            .unwrap_or_else(|| panic!("no `{start}` line: {out}"))
            .trim()
            .to_owned()
    };
    assert_eq!(line("staff "), "staff        enforcing");
    assert_eq!(line("lab "), "lab          not enforcing");
    assert_eq!(
        line("staff-cutoff "),
        "staff-cutoff         block (phase active, block from 2024-09-29T00:00:00-04:00)"
    );
    assert_eq!(
        line("last hour"),
        "last hour update      blocked 1, logged 0, allowed 0"
    );
    assert_eq!(
        line("clients still calling"),
        "clients still calling (24 h): 1"
    );
    let client = line("staff        127.0.0.2");
    assert!(
        client.ends_with("update  1 lookups (1 blocked, 0 logged)"),
        "{client}"
    );
    s.stop().await;
}

#[tokio::test]
async fn the_status_counts_an_upstreams_failed_queries() {
    // A port nobody listens on: the upstream refuses every query.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port");
    let yaml = format!("{CONFIG}upstream_timeout: 300ms\n");
    let s = serve(&yaml, closed).await;
    let (code, body) = http(s.http, "GET", "/api/v1/status").await;
    assert_eq!(code, 200);
    assert_eq!(json(&body)["upstreams"][0]["errors"], 0, "{body}");
    let (m, _) = udp(
        s.addr,
        "127.0.0.3",
        &query("example.com", RecordType::A, None),
    )
    .await;
    assert_eq!(
        m.metadata.response_code,
        hickory_proto::op::ResponseCode::ServFail
    );
    let (_, body) = http(s.http, "GET", "/api/v1/status").await;
    assert_eq!(json(&body)["upstreams"][0]["errors"], 1, "{body}");
    s.stop().await;
}

#[tokio::test]
async fn the_status_lists_the_clients_seen_last_up_to_its_bound() {
    let up = Fakeup::start().await;
    let s = serve(CONFIG, up.addr()).await;
    let bound = cutoff::http::status::STATUS_CLIENTS;
    let client = |i: usize| format!("127.0.{}.{}", 1 + i / 200, 1 + i % 200);
    for i in 1..=bound + 1 {
        udp(s.addr, &client(i), &query(BLOCKED, RecordType::A, None)).await;
    }
    let (_, body) = http(s.http, "GET", "/api/v1/status").await;
    let st = json(&body);
    assert_eq!(st["clients"].as_array().map(Vec::len), Some(bound));
    assert_eq!(st["clients_total"], bound + 1);
    // The first client asked first: it is the one left out.
    assert!(!body.contains(&format!("\"{}\"", client(1))), "{body}");
    assert!(body.contains(&format!("\"{}\"", client(2))), "{body}");
    let (_, page) = http(s.http, "GET", "/").await;
    assert!(
        page.contains(&format!("The {bound} seen last of {}", bound + 1)),
        "{page}"
    );
    s.stop().await;
}

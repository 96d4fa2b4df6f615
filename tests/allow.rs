//! The write API (issue 11, part 2) over real sockets: bearer tokens,
//! temporary allows that take effect within one query and end on time, a
//! network that forbids them, a restart that keeps them, reload. The
//! upstream records what was forwarded, so each test proves whether a
//! name left the box. Every wait is bounded; no timing assertion.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use hickory_proto::rr::RecordType;
use serde_json::Value;

use crate::fakeup::Fakeup;
use crate::harness::{Running, ede, http_status, query, serve, udp};

const TOKEN: &str = "write-token-0123456789abcdef";
const READ_TOKEN: &str = "read-token-0123456789abcdef";

/// `staff` blocks and so forbids overrides; `home` blocks too but permits
/// them. `{dir}` holds the token files, the state and the query log.
pub(crate) const CONFIG: &str = "listen: [\"127.0.0.1:0\"]
upstreams: [\"{upstream}\"]
state_dir: {dir}/state
http:
  listen: 127.0.0.1:0
  token_file: {dir}/token
  max_allow: 1h
query_log:
  path: {dir}/queries.jsonl
networks:
  staff: [127.0.0.2/32]
  home:
    cidrs: [127.0.0.4/32]
    overrides: true
lists:
  kaspersky: {builtin: kaspersky}
rules:
  - {name: cutoff, lists: [kaspersky], categories: [update, telemetry, activation], action: block}
";

const NAME: &str = "s05.upd.kaspersky.com";
const HOME: &str = "127.0.0.4";
const STAFF: &str = "127.0.0.2";

/// A directory with the token files (mode 600) for `CONFIG`.
pub(crate) fn dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().expect("tempdir");
    for (name, token) in [("token", TOKEN), ("read-token", READ_TOKEN)] {
        let p = d.path().join(name);
        std::fs::write(&p, format!("{token}\n")).expect("token");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    d
}

pub(crate) fn config(dir: &Path, extra: &str) -> String {
    format!("{CONFIG}{extra}").replace("{dir}", &dir.display().to_string())
}

/// One request with a JSON body and the bearer `token`: (status, body).
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let headers = format!("{auth}Content-Type: application/json\r\n");
    http_status(addr, method, path, &headers, body).await
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Asks for `NAME` from `client`: whether the upstream saw one more query.
async fn forwarded(s: &Running, up: &Fakeup, client: &str) -> bool {
    let before = up.seen_name(NAME).len();
    udp(s.addr, client, &query(NAME, RecordType::A, None)).await;
    up.seen_name(NAME).len() > before
}

/// Asks for `NAME` from `client`: whether it got the upstream's answer
/// (forwarded, or from the cache) rather than the blocked one, which
/// carries EDE 15 "Blocked".
async fn answered(s: &Running, client: &str) -> bool {
    let (m, _) = udp(s.addr, client, &query(NAME, RecordType::A, Some(1232))).await;
    ede(&m).is_none_or(|(code, _)| code != 15)
}

fn allow_body(network: Option<&str>, span: &str) -> String {
    serde_json::json!({"name": "upd.kaspersky.com", "network": network, "for": span}).to_string()
}

#[tokio::test]
async fn writes_without_the_right_bearer_token_are_refused_and_change_nothing() {
    let d = dir();
    let up = Fakeup::start().await;
    let s = serve(&config(d.path(), ""), up.addr()).await;
    let body = allow_body(Some("home"), "30m");
    for token in [None, Some("wrong-token-0123456789abcdef"), Some("")] {
        let (code, text) = request(s.http, "POST", "/api/v1/allow", token, &body).await;
        assert_eq!(code, 401, "{token:?}: {text}");
        assert!(
            json(&text)["error"]
                .as_str()
                .unwrap()
                .contains("bearer token")
        );
    }
    let (code, _) = request(s.http, "POST", "/api/v1/reload", None, "").await;
    assert_eq!(code, 401);
    let (code, _) = request(s.http, "DELETE", "/api/v1/allow?name=x.com", None, "").await;
    assert_eq!(code, 401);
    let (code, list) = request(s.http, "GET", "/api/v1/allow", None, "").await;
    assert_eq!((code, json(&list)), (200, serde_json::json!([])));
    // A body past the admin endpoint's cap: 401 without the token, 413 with it.
    let huge = format!("{{\"name\": \"{}\", \"for\": \"30m\"}}", "a".repeat(5000));
    for (token, want) in [(None, 401), (Some(TOKEN), 413)] {
        let (code, text) = request(s.http, "POST", "/api/v1/allow", token, &huge).await;
        assert_eq!(code, want, "{token:?}: {text}");
    }
    assert!(!forwarded(&s, &up, HOME).await, "still blocked");
    s.stop().await;
}

#[tokio::test]
async fn without_a_token_file_every_write_is_forbidden_with_the_reason() {
    let up = Fakeup::start().await;
    let s = serve("upstreams: [\"{upstream}\"]\n", up.addr()).await;
    let (code, text) = request(s.http, "POST", "/api/v1/reload", Some(TOKEN), "").await;
    assert_eq!(code, 403, "{text}");
    assert!(text.contains("no `http.token_file`"), "{text}");
    s.stop().await;
}

#[tokio::test]
async fn a_temporary_allow_takes_effect_within_one_query_and_ends_on_time() {
    let d = dir();
    let up = Fakeup::start().await;
    let s = serve(&config(d.path(), ""), up.addr()).await;
    assert!(!forwarded(&s, &up, HOME).await, "blocked before the allow");

    let (code, text) = request(
        s.http,
        "POST",
        "/api/v1/allow",
        Some(TOKEN),
        &allow_body(Some("home"), "2s"),
    )
    .await;
    assert_eq!(code, 201, "{text}");
    let until: jiff::Timestamp = json(&text)["until"].as_str().unwrap().parse().unwrap();
    assert!(
        forwarded(&s, &up, HOME).await,
        "the very next query is answered"
    );
    assert!(!forwarded(&s, &up, STAFF).await, "only on home");

    // The explain API says what serving did.
    let (_, e) = request(
        s.http,
        "GET",
        &format!("/api/v1/explain?client={HOME}&name={NAME}"),
        None,
        "",
    )
    .await;
    let e = json(&e);
    assert_eq!(
        (e["action"].as_str(), e["rule"].as_str()),
        (Some("allow"), Some("temporary-allow"))
    );

    // Ends on its own: poll (bounded) until blocked again; never before `until`.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if !answered(&s, HOME).await {
            assert!(
                jiff::Timestamp::now() >= until,
                "blocked before the allow ended"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the allow never ended"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The query log names the rule; the metrics count the answers.
    let log = d.path().join("queries.jsonl");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("\"rule\":\"temporary-allow\"") {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no temporary-allow line: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        lines
            .lines()
            .any(|l| l.contains("\"rule\":\"temporary-allow\"")
                && l.contains("\"action\":\"allow\""))
    );
    let (_, metrics) = request(s.http, "GET", "/metrics", None, "").await;
    let answers = metrics
        .lines()
        .find(|l| l.starts_with("cutoff_temporary_allow_answers_total"))
        .expect("counter");
    assert!(!answers.ends_with(" 0"), "{answers}");
    s.stop().await;
}

#[tokio::test]
async fn an_allow_on_a_network_that_enforces_the_cutoff_is_forbidden_with_the_reason() {
    let d = dir();
    let up = Fakeup::start().await;
    let s = serve(&config(d.path(), ""), up.addr()).await;
    let (code, text) = request(
        s.http,
        "POST",
        "/api/v1/allow",
        Some(TOKEN),
        &allow_body(Some("staff"), "30m"),
    )
    .await;
    assert_eq!(code, 403, "{text}");
    assert!(
        text.contains("network `staff` forbids temporary allows"),
        "{text}"
    );
    let (code, text) = request(
        s.http,
        "POST",
        "/api/v1/allow",
        Some(TOKEN),
        &allow_body(Some("home"), "2h"),
    )
    .await;
    assert_eq!(code, 400, "over max_allow: {text}");
    assert!(!forwarded(&s, &up, STAFF).await);
    s.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_an_unexpired_allow_and_delete_ends_it() {
    let d = dir();
    let up = Fakeup::start().await;
    let yaml = config(d.path(), "");
    let s = serve(&yaml, up.addr()).await;
    let (code, text) = request(
        s.http,
        "POST",
        "/api/v1/allow",
        Some(TOKEN),
        &allow_body(None, "30m"),
    )
    .await;
    assert_eq!(code, 201, "{text}");
    s.stop().await;

    let s = serve(&yaml, up.addr()).await;
    let (_, list) = request(s.http, "GET", "/api/v1/allow", None, "").await;
    assert_eq!(json(&list)[0]["name"], "upd.kaspersky.com", "{list}");
    assert!(forwarded(&s, &up, HOME).await, "in force after the restart");
    // The status page and its JSON list it.
    let (_, page) = request(s.http, "GET", "/", None, "").await;
    assert!(
        page.contains("<h2 id=\"allows\">Temporary allows</h2>")
            && page.contains("<td>upd.kaspersky.com</td><td>every network that permits it</td>"),
        "{page}"
    );
    let (_, status) = request(s.http, "GET", "/api/v1/status", None, "").await;
    assert_eq!(
        json(&status)["temporary_allows"][0]["name"],
        "upd.kaspersky.com"
    );
    let (code, text) = request(
        s.http,
        "DELETE",
        "/api/v1/allow?name=upd.kaspersky.com",
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(
        (code, json(&text)["removed"].as_u64()),
        (200, Some(1)),
        "{text}"
    );
    assert!(!answered(&s, HOME).await, "blocked again at once");
    s.stop().await;
}

#[tokio::test]
async fn reload_over_the_api_reports_every_problem_and_keeps_the_running_config() {
    let d = dir();
    let up = Fakeup::start().await;
    let s = serve(&config(d.path(), ""), up.addr()).await;
    let (code, text) = request(s.http, "POST", "/api/v1/reload", Some(TOKEN), "").await;
    assert_eq!(
        (code, json(&text)["ok"].as_bool()),
        (200, Some(true)),
        "{text}"
    );
    let path = s.state.config_path.clone().expect("config path");
    let bad = config(d.path(), "bogus: 1\n").replace("{upstream}", &up.addr().to_string());
    std::fs::write(&path, bad).expect("write");
    let (code, text) = request(s.http, "POST", "/api/v1/reload", Some(TOKEN), "").await;
    assert_eq!(code, 422, "{text}");
    let r = json(&text);
    assert_eq!(r["ok"], false);
    assert_eq!(r["errors"].as_array().map(Vec::len), Some(1), "{text}");
    let e = r["errors"][0].as_str().unwrap_or_default();
    assert!(e.contains("line 19: bogus: unknown key"), "{text}");
    assert_eq!(r["version"], s.state.current.load().policy.config.version);
    s.stop().await;
}

#[tokio::test]
async fn with_a_read_token_reads_need_it_and_health_checks_stay_open() {
    let d = dir();
    let up = Fakeup::start().await;
    let yaml = config(d.path(), "").replace(
        "  max_allow: 1h\n",
        &format!(
            "  max_allow: 1h\n  read_token_file: {}/read-token\n",
            d.path().display()
        ),
    );
    let s = serve(&yaml, up.addr()).await;
    for path in ["/", "/api/v1/status", "/api/v1/allow", "/metrics"] {
        let (code, _) = request(s.http, "GET", path, None, "").await;
        assert_eq!(code, 401, "{path}");
        let (code, _) = request(s.http, "GET", path, Some(READ_TOKEN), "").await;
        assert_eq!(code, 200, "{path}");
        let (code, _) = request(s.http, "GET", path, Some(TOKEN), "").await;
        assert_eq!(code, 200, "{path} with the write token");
    }
    let (code, _) = request(s.http, "GET", "/healthz", None, "").await;
    assert_eq!(code, 200);
    let (code, _) = request(s.http, "HEAD", "/api/v1/allow", None, "").await;
    assert_eq!(code, 401, "HEAD is a read");
    let (code, _) = request(
        s.http,
        "POST",
        "/api/v1/allow",
        Some(READ_TOKEN),
        &allow_body(None, "1m"),
    )
    .await;
    assert_eq!(code, 401, "the read token cannot write");
    s.stop().await;
}

//! URL lists (issue #10, part 1) against a real HTTPS list server on
//! loopback: a good download and a 304, gzip, and every bad answer the
//! issue names, each refused with a clear message and the last-good copy
//! kept; `cutoff check` offline, `cutoff lists update`, and a serving
//! cutoff that picks up a download while it keeps answering.

use std::path::Path;
use std::time::Duration;

use cutoff::blocklist::lastgood::{self, Outcome};
use cutoff::blocklist::{UrlSource, fetch::FetchError, lastgood::Rejected};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::fakeup::Fakeup;
use crate::harness::{ede, http, parse_metrics, query, serve, udp, value};
use crate::listserver::{Cert, ListServer, Reply};

const GOOD: &str = "# a test list\nads.example\n0.0.0.0 track.example\n||metrics.example^\n";

fn body(text: &str) -> Reply {
    Reply::Body {
        body: text.as_bytes().to_vec(),
        etag: "\"v1\"",
        gzip: false,
    }
}

/// A URL list source for `url`, its copy in `dir`, trusting the test CA.
fn source(dir: &Path, server: &ListServer, url: String) -> UrlSource {
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &server.ca_pem).expect("ca");
    UrlSource {
        url,
        refresh: Duration::from_secs(3600),
        timeout: Duration::from_secs(3),
        max_bytes: 1 << 20,
        max_lines: 1000,
        allow_http: false,
        required: false,
        copy: dir.join("lists/test.list"),
        ca: Some(ca),
    }
}

#[tokio::test]
async fn a_good_download_is_stored_and_the_next_one_is_a_conditional_get_answered_304() {
    let server = ListServer::start(Cert::Good).await;
    server.route("/list.txt", body(GOOD));
    let dir = tempfile::tempdir().expect("dir");
    let src = source(dir.path(), &server, server.url("/list.txt"));
    let first = lastgood::update(&src).await;
    assert!(
        matches!(
            first,
            Outcome::Updated {
                entries: 3,
                was: None
            }
        ),
        "{first:?}"
    );
    assert_eq!(std::fs::read_to_string(&src.copy).expect("copy"), GOOD);
    let second = lastgood::update(&src).await;
    assert!(
        matches!(second, Outcome::Unchanged { entries: 3 }),
        "{second:?}"
    );
    // The first GET was unconditional, the second named the stored ETag.
    assert_eq!(
        server.header("/list.txt", "if-none-match"),
        [None, Some("\"v1\"".to_owned())]
    );
    assert_eq!(
        server.header("/list.txt", "accept-encoding")[0].as_deref(),
        Some("gzip")
    );
}

#[tokio::test]
async fn a_gzip_body_is_stored_unpacked() {
    let server = ListServer::start(Cert::Good).await;
    server.route(
        "/list.txt.gz",
        Reply::Body {
            body: GOOD.as_bytes().to_vec(),
            etag: "\"gz\"",
            gzip: true,
        },
    );
    let dir = tempfile::tempdir().expect("dir");
    let src = source(dir.path(), &server, server.url("/list.txt.gz"));
    let out = lastgood::update(&src).await;
    assert!(
        matches!(out, Outcome::Updated { entries: 3, .. }),
        "{out:?}"
    );
    assert_eq!(std::fs::read_to_string(&src.copy).expect("copy"), GOOD);
}

/// Stores GOOD from `/good`, then fetches `path` into the same copy; the
/// outcome of that, with the copy checked to still be GOOD.
async fn bad(server: &ListServer, path: &str, reply: Option<Reply>) -> Outcome {
    let good = ListServer::start(Cert::Good).await;
    good.route("/good", body(GOOD));
    if let Some(r) = reply {
        server.route(path, r);
    }
    let dir = tempfile::tempdir().expect("dir");
    let first = lastgood::update(&source(dir.path(), &good, good.url("/good"))).await;
    assert!(first.changed(), "{first:?}");
    let mut src = source(dir.path(), server, server.url(path));
    src.max_bytes = 64 << 10;
    let out = lastgood::update(&src).await;
    assert!(!out.succeeded() && !out.changed(), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(&src.copy).expect("copy"),
        GOOD,
        "the last-good copy must stay"
    );
    out
}

#[tokio::test]
async fn a_10_gib_response_is_refused_from_its_declared_length() {
    let server = ListServer::start(Cert::Good).await;
    let out = bad(&server, "/huge", Some(Reply::Huge)).await;
    assert!(
        matches!(
            out,
            Outcome::Failed(FetchError::TooLarge { limit: 65536, .. })
        ),
        "{out:?}"
    );
    assert_eq!(out.label(), "failed");
}

#[tokio::test]
async fn an_endless_body_without_a_length_stops_at_max_bytes() {
    let server = ListServer::start(Cert::Good).await;
    let out = bad(&server, "/endless", Some(Reply::Endless)).await;
    assert!(
        matches!(out, Outcome::Failed(FetchError::TooLarge { .. })),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_server_that_dribbles_a_byte_a_second_times_out() {
    let server = ListServer::start(Cert::Good).await;
    let out = bad(&server, "/dribble", Some(Reply::Dribble)).await;
    assert!(
        matches!(out, Outcome::Failed(FetchError::Timeout { .. })),
        "{out:?}"
    );
    let Outcome::Failed(e) = out else {
        unreachable!()
    };
    assert!(e.to_string().contains("within 3s (timeout)"), "{e}");
}

#[tokio::test]
async fn an_html_page_instead_of_a_list_is_refused() {
    let server = ListServer::start(Cert::Good).await;
    let page = "<!DOCTYPE html>\n<html><body>Please log in</body></html>\n";
    let out = bad(&server, "/portal", Some(body(page))).await;
    assert!(
        matches!(out, Outcome::Rejected(Rejected::Html { .. })),
        "{out:?}"
    );
    assert_eq!(out.label(), "rejected");
}

#[tokio::test]
async fn a_body_of_mostly_bad_lines_is_refused() {
    let server = ListServer::start(Cert::Good).await;
    let text = "ads.example\nthis is not a list\nnor is this one\n";
    let out = bad(&server, "/prose", Some(body(text))).await;
    let Outcome::Rejected(
        r @ Rejected::MostlyBad {
            bad: 2, lines: 3, ..
        },
    ) = &out
    else {
        panic!("{out:?}");
    };
    assert!(r.to_string().contains("line 2"), "{r}");
}

#[tokio::test]
async fn a_body_with_no_entries_is_refused() {
    let server = ListServer::start(Cert::Good).await;
    let out = bad(&server, "/empty", Some(body("# nothing here\n"))).await;
    assert!(
        matches!(out, Outcome::Rejected(Rejected::Empty { .. })),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_redirect_loop_ends_after_five_redirects() {
    let server = ListServer::start(Cert::Good).await;
    server.route("/b", Reply::Redirect("/a"));
    let out = bad(&server, "/a", Some(Reply::Redirect("/b"))).await;
    assert!(
        matches!(out, Outcome::Failed(FetchError::Redirects { .. })),
        "{out:?}"
    );
    assert_eq!(server.header("/a", "host").len(), 3);
}

#[tokio::test]
async fn a_redirect_is_followed_to_the_list() {
    let server = ListServer::start(Cert::Good).await;
    server.route("/old", Reply::Redirect("/new"));
    server.route("/new", body(GOOD));
    let dir = tempfile::tempdir().expect("dir");
    let out = lastgood::update(&source(dir.path(), &server, server.url("/old"))).await;
    assert!(
        matches!(out, Outcome::Updated { entries: 3, .. }),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_redirect_to_plain_http_is_refused() {
    let server = ListServer::start(Cert::Good).await;
    let out = bad(
        &server,
        "/down",
        Some(Reply::Redirect("http://127.0.0.1:9/list.txt")),
    )
    .await;
    let Outcome::Failed(e) = &out else {
        panic!("{out:?}")
    };
    assert!(e.to_string().contains("allow_http: true"), "{e}");
}

#[tokio::test]
async fn an_expired_certificate_is_refused() {
    let server = ListServer::start(Cert::Expired).await;
    let out = bad(&server, "/list.txt", Some(body(GOOD))).await;
    let Outcome::Failed(e @ FetchError::Connect { .. }) = &out else {
        panic!("{out:?}")
    };
    assert!(e.to_string().to_lowercase().contains("expired"), "{e}");
}

#[tokio::test]
async fn a_self_signed_certificate_is_refused() {
    let server = ListServer::start(Cert::SelfSigned).await;
    let out = bad(&server, "/list.txt", Some(body(GOOD))).await;
    let Outcome::Failed(e @ FetchError::Connect { .. }) = &out else {
        panic!("{out:?}")
    };
    assert!(e.to_string().contains("TLS"), "{e}");
}

#[tokio::test]
async fn a_404_is_refused() {
    let server = ListServer::start(Cert::Good).await;
    let out = bad(&server, "/missing", None).await;
    assert!(
        matches!(out, Outcome::Failed(FetchError::Status { status: 404, .. })),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_connection_reset_mid_body_is_refused() {
    let server = ListServer::start(Cert::Good).await;
    let out = bad(&server, "/reset", Some(Reply::Reset)).await;
    assert!(
        matches!(
            out,
            Outcome::Failed(FetchError::Body { .. } | FetchError::Connect { .. })
        ),
        "{out:?}"
    );
}

/// A config with one URL list `ads` blocked everywhere, state in `dir`.
fn config(dir: &Path, url: &str, extra: &str) -> String {
    format!(
        "upstreams: [\"{{upstream}}\"]\nstate_dir: {dir}\nupstream_ca: {dir}/ca.pem\nlists:\n  ads:\n    url: {url}\n{extra}rules:\n  - name: no-ads\n    lists: [ads]\n    action: block\n",
        dir = dir.display()
    )
}

#[test]
fn check_validates_urls_without_fetching() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("ca.pem"), "").expect("ca");
    // Port 9 on loopback: nothing listens; check must not care.
    let ok =
        config(dir.path(), "https://127.0.0.1:9/ads.txt", "").replace("{upstream}", "127.0.0.1:53");
    let path = dir.path().join("ok.yaml");
    std::fs::write(&path, ok).expect("write");
    let (code, out, err) = crate::util::run(&["check", "--config", path.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("https://127.0.0.1:9/ads.txt"), "{out}");
    assert!(out.contains("has no last-good copy"), "{out}");
    assert!(
        out.contains("refresh every 6h; no last-good copy yet"),
        "{out}"
    );
    let bad = config(
        dir.path(),
        "http://127.0.0.1:9/ads.txt",
        "    refresh: 10s\n    max_bytes: 1GiB\n",
    )
    .replace("{upstream}", "127.0.0.1:53");
    std::fs::write(&path, bad).expect("write");
    let (code, _, err) = crate::util::run(&["check", "--config", path.to_str().expect("utf8")]);
    assert_eq!(code, 1, "{err}");
    for (line, text) in [
        (6, "allow_http: true"),
        (7, "from 1m to 7d"),
        (8, "64KiB to 64MiB"),
    ] {
        assert!(
            err.lines()
                .any(|l| l.contains(&format!("line {line}")) && l.contains(text)),
            "line {line}: {text}\n{err}"
        );
    }
}

#[tokio::test]
async fn lists_update_prints_what_changed_and_fails_when_a_download_fails() {
    let server = ListServer::start(Cert::Good).await;
    server.route("/ads.txt", body(GOOD));
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("ca.pem"), &server.ca_pem).expect("ca");
    let path = dir.path().join("cutoff.yaml");
    let text =
        config(dir.path(), &server.url("/ads.txt"), "").replace("{upstream}", "127.0.0.1:53");
    std::fs::write(&path, &text).expect("write");
    let p = path.to_str().expect("utf8").to_owned();
    let run = move |p: String| async move {
        tokio::task::spawn_blocking(move || crate::util::run(&["lists", "update", "--config", &p]))
            .await
            .expect("join")
    };
    let (code, out, err) = run(p.clone()).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("ads: updated: 3 entries (first copy)"),
        "{out}"
    );
    let (code, out, _) = run(p.clone()).await;
    assert_eq!(code, 0);
    assert!(out.contains("ads: unchanged: 3 entries"), "{out}");
    server.route(
        "/ads.txt",
        Reply::Body {
            body: format!("{GOOD}more.example\n").into_bytes(),
            etag: "\"v2\"",
            gzip: false,
        },
    );
    let (code, out, _) = run(p.clone()).await;
    assert_eq!(code, 0);
    assert!(out.contains("ads: updated: 4 entries (was 3)"), "{out}");
    assert!(
        out.contains(
            "a running cutoff serves the new copies from its next reload (SIGHUP) or refresh"
        ),
        "{out}"
    );
    server.route("/ads.txt", body(GOOD));
    let (code, out, _) = run(p.clone()).await;
    assert_eq!(code, 0, "{out}");
    server.route("/ads.txt", Reply::Status(500));
    // A changed body would be fetched unconditionally; a 500 keeps the copy.
    std::fs::remove_file(dir.path().join("lists/ads.meta.json")).expect("meta");
    let (code, out, _) = run(p).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("ads: failed, last-good copy kept:") && out.contains("HTTP status 500"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("lists/ads.list")).expect("copy"),
        GOOD
    );
}

async fn metric(
    http_addr: std::net::SocketAddr,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    let (_, text) = http(http_addr, "GET", "/metrics").await;
    value(&parse_metrics(&text), name, labels)
}

#[tokio::test]
async fn a_serving_cutoff_downloads_a_list_swaps_it_in_and_keeps_answering() {
    let up = Fakeup::start().await;
    let lists = ListServer::start(Cert::Good).await;
    lists.route("/ads.txt", Reply::Dribble);
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("ca.pem"), &lists.ca_pem).expect("ca");
    let yaml = config(dir.path(), &lists.url("/ads.txt"), "    timeout: 2s\n");
    let s = serve(&yaml, up.addr()).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let reload = |state: std::sync::Arc<cutoff::runtime::State>| async move {
        let _ = state.reload();
    };
    let task = tokio::spawn(cutoff::refresh::run(s.state.clone(), stop_rx, reload));
    // No copy yet: served without the list, the download starts at once.
    // While it dribbles, queries are answered.
    let q = query("ads.example.com", RecordType::A, None);
    let mut answered = 0;
    for _ in 0..20 {
        let (a, _) = udp(s.addr, "127.0.0.1", &q).await;
        assert_eq!(ede(&a), None, "answered by the upstream, not blocked");
        answered += 1;
    }
    assert!(!up.seen_name("ads.example.com").is_empty());
    assert_eq!(answered, 20);
    let failed = [("list", "ads"), ("result", "failed")];
    let mut tries = 0;
    while metric(s.http, "cutoff_list_refresh_total", &failed).await != Some(1.0) {
        tries += 1;
        assert!(tries < 100, "the dribbling download never timed out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    task.abort();
    // A good list now: a fresh refresher downloads it at once (the failed
    // one would retry in 5 minutes) and the reload swaps it in.
    lists.route("/ads.txt", body("ads.example.com\n"));
    let (_stop2, rx2) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(cutoff::refresh::run(s.state.clone(), rx2, reload));
    let updated = [("list", "ads"), ("result", "updated")];
    let mut tries = 0;
    while metric(s.http, "cutoff_list_refresh_total", &updated).await != Some(1.0) {
        tries += 1;
        assert!(tries < 100, "the list was never downloaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut tries = 0;
    loop {
        let (a, _) = udp(
            s.addr,
            "127.0.0.1",
            &query("www.ads.example", RecordType::A, None),
        )
        .await;
        if a.metadata.response_code == ResponseCode::NXDomain {
            break;
        }
        tries += 1;
        assert!(tries < 100, "the downloaded list never took effect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        up.seen_name("www.ads.example.com").is_empty(),
        "a blocked name reached the upstream"
    );
    let at = metric(
        s.http,
        "cutoff_list_last_success_timestamp_seconds",
        &[("list", "ads")],
    )
    .await
    .unwrap_or(0.0);
    assert!(at > 1.7e9, "{at}");
    let (_, body) = http(s.http, "GET", "/metrics").await;
    for (name, kind) in [
        ("cutoff_list_refresh_total", "counter"),
        ("cutoff_list_last_success_timestamp_seconds", "gauge"),
    ] {
        assert!(body.contains(&format!("# HELP {name} ")), "{body}");
        assert!(body.contains(&format!("# TYPE {name} {kind}")), "{body}");
    }
    // Every result has its series from the first look at the list.
    for result in ["unchanged", "rejected", "store_failed"] {
        assert_eq!(
            metric(
                s.http,
                "cutoff_list_refresh_total",
                &[("list", "ads"), ("result", result)]
            )
            .await,
            Some(0.0),
            "{result}"
        );
    }
    let _ = stop_tx.send(true);
    task.abort();
    s.stop().await;
}

#[test]
fn serve_refuses_to_start_without_a_copy_of_a_required_list() {
    let yaml = config(
        Path::new("{dir}"),
        "https://127.0.0.1:9/ads.txt",
        "    required: true\n",
    )
    .replace("upstream_ca: {dir}/ca.pem\n", "")
    .replace("{upstream}", "127.0.0.1:53");
    let mut p = crate::proc::Proc::start(
        &format!("listen: [\"127.0.0.1:0\"]\nhttp: 127.0.0.1:0\n{yaml}"),
        crate::proc::Start {
            no_wait: true,
            ..Default::default()
        },
    );
    let status = p
        .wait_exit(Duration::from_secs(30))
        .expect("serve kept running");
    assert_eq!(status.code(), Some(1));
    assert!(
        p.log()
            .contains("list `ads` is `required: true` and has no last-good copy"),
        "{}",
        p.log()
    );
}

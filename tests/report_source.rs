//! Where `cutoff report` reads from: `--url` (an address or `localhost`), or
//! by default the running server named by the config's `http`; and what it
//! says when nothing answers there.

use crate::fakeup::Fakeup;
use hickory_proto::rr::RecordType;

use crate::harness::{query, serve, udp};
use crate::util::{run, temp_file};

const CONFIG: &str = "listen: [\"127.0.0.1:0\"]\nupstreams: [\"{upstream}\"]\nlists:\n  k: {builtin: kaspersky}\nrules:\n  - {name: r, lists: [k], action: log}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_reads_the_server_at_localhost_and_the_configs_admin_address() {
    let up = Fakeup::start().await;
    let s = serve(CONFIG, up.addr()).await;
    udp(
        s.addr,
        "127.0.0.2",
        &query("s05.upd.kaspersky.com", RecordType::A, None),
    )
    .await;
    let port = s.http.port();
    let url = format!("http://localhost:{port}");
    let by_url = tokio::task::spawn_blocking(move || run(&["report", "--url", &url]))
        .await
        .expect("report");
    assert_eq!(by_url.0, 0, "{}", by_url.2);
    assert!(by_url.1.contains("127.0.0.2"), "{}", by_url.1);
    let (_dir, cfg) = temp_file("c.yaml", &format!("http: 127.0.0.1:{port}\n"));
    let by_config = tokio::task::spawn_blocking(move || {
        run(&["report", "--config", cfg.to_str().expect("utf-8")])
    })
    .await
    .expect("report");
    assert_eq!(by_config.0, 0, "{}", by_config.2);
    assert!(
        by_config.2.starts_with(&format!(
            "note: reading the client table of the server at http://127.0.0.1:{port} (`http` of "
        )),
        "{}",
        by_config.2
    );
    assert_eq!(by_config.1, by_url.1);
    s.stop().await;
}

#[test]
fn report_with_no_server_names_the_url_the_cause_and_both_options() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let (_dir, cfg) = temp_file("c.yaml", &format!("http: 0.0.0.0:{port}\n"));
    let (code, _, err) = run(&["report", "--config", cfg.to_str().expect("utf-8")]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("error: cannot reach http://127.0.0.1:{port}: ")),
        "{err}"
    );
    assert!(err.contains("is `cutoff serve` running"), "{err}");
    assert!(
        err.contains("--url URL") && err.contains("--log PATH"),
        "{err}"
    );
}

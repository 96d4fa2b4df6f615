//! `cutoff allow`, `cutoff reload`, `cutoff explain` and `cutoff check` as
//! an admin runs them against a running server's write API (issue 11,
//! part 2): the real binary, the in-process server, real sockets.

use crate::allow::{config, dir};
use crate::fakeup::Fakeup;
use crate::harness::serve;
use crate::util::run;

/// Runs the binary off the test's runtime (the server keeps serving).
async fn cutoff(args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args)
    })
    .await
    .expect("join")
}

fn args(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutoff_allow_adds_lists_explains_and_removes_a_temporary_allow() {
    let d = dir();
    let up = Fakeup::start().await;
    let s = serve(&config(d.path(), ""), up.addr()).await;
    let url = format!("http://{}", s.http);
    let token = d.path().join("token").display().to_string();
    let write = |extra: &[&str]| {
        let mut a = args(extra);
        a.extend(args(&["--url", &url, "--token-file", &token]));
        a
    };

    let (code, out, err) = cutoff(write(&[
        "allow",
        "upd.kaspersky.com",
        "--for",
        "30m",
        "--network",
        "home",
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("allowed upd.kaspersky.com on home until "),
        "{out}"
    );

    let (code, out, err) = cutoff(args(&["allow", "--list", "--url", &url])).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("upd.kaspersky.com on home until "), "{out}");

    // `explain` reads the allows `serve` keeps under `state_dir`.
    let path = s.state.config_path.clone().expect("config path");
    let (code, out, err) = cutoff(args(&[
        "explain",
        "--config",
        &path.display().to_string(),
        "--client",
        "127.0.0.4",
        "s05.upd.kaspersky.com",
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ALLOW for 127.0.0.4"), "{out}");
    assert!(
        out.contains("  rule     temporary-allow of upd.kaspersky.com on network home until "),
        "{out}"
    );

    let (code, out, err) = cutoff(write(&["allow", "--remove", "upd.kaspersky.com"])).await;
    assert_eq!(
        (code, out.as_str()),
        (0, "removed 1 temporary allow(s) of upd.kaspersky.com\n"),
        "{err}"
    );
    let (_, out, _) = cutoff(args(&["allow", "--list", "--url", &url])).await;
    assert_eq!(out, "no temporary allow in force\n");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutoff_allow_on_a_forbidding_network_and_a_wrong_token_fail_with_the_reason() {
    let d = dir();
    let up = Fakeup::start().await;
    let s = serve(&config(d.path(), ""), up.addr()).await;
    let url = format!("http://{}", s.http);
    let token = d.path().join("token").display().to_string();
    let (code, _, err) = cutoff(args(&[
        "allow",
        "upd.kaspersky.com",
        "--for",
        "30m",
        "--network",
        "staff",
        "--url",
        &url,
        "--token-file",
        &token,
    ]))
    .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("403 Forbidden: network `staff` forbids temporary allows"),
        "{err}"
    );

    let wrong = d.path().join("read-token").display().to_string();
    let (code, _, err) = cutoff(args(&["reload", "--url", &url, "--token-file", &wrong])).await;
    assert_eq!(code, 1);
    assert!(err.contains("401 Unauthorized"), "{err}");

    let (code, out, err) = cutoff(args(&["reload", "--url", &url, "--token-file", &token])).await;
    assert_eq!(code, 0, "{err}");
    let version = s.state.current.load().policy.config.version.clone();
    assert_eq!(out, format!("reloaded: config {version} in force\n"));
    s.stop().await;
}

#[test]
fn cutoff_check_fails_on_a_token_file_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let d = dir();
    let yaml = config(d.path(), "").replace("{upstream}", "127.0.0.1:53");
    let path = d.path().join("cutoff.yaml");
    std::fs::write(&path, yaml).expect("write");
    let p = path.display().to_string();
    let (code, out, err) = run(&["check", "--config", &p]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("writes     bearer token from "), "{out}");
    let token = d.path().join("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, _, err) = run(&["check", "--config", &p]);
    assert_eq!(code, 1);
    assert!(
        err.contains("http: ") && err.contains("mode 644 lets others read"),
        "{err}"
    );
}

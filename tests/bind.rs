//! `cutoff serve` at start-up, as the binary: a port already taken or below
//! 1024 gives an error that names the address and the cause, and a host
//! without `::1` serves on the other addresses with a warning.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::util::{bin, installed, needs, temp_file, tool};

/// Waits (bounded) for the child to exit; returns its code and stderr.
fn finish(mut child: Child) -> (Option<i32>, String) {
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    for _ in 0..300 {
        if let Ok(Some(status)) = child.try_wait() {
            return (status.code(), reader.join().expect("stderr"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    (None, reader.join().expect("stderr"))
}

/// `cutoff serve` with `listen` and `http`, which must fail at start-up:
/// its stderr.
fn serve_fails(listen: &str, http: &str) -> String {
    let mut cmd = bin();
    cmd.args(["serve", "--listen", listen, "--http", http])
        .args(["--upstream", "127.0.0.1:9"]);
    fails(cmd)
}

/// Runs `cmd`, which must exit 1 (bounded): its stderr.
fn fails(mut cmd: Command) -> String {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let (code, err) = finish(child);
    assert_eq!(code, Some(1), "{err}");
    err
}

#[test]
fn a_port_in_use_is_named_with_the_process_that_holds_it() {
    let held = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = held.local_addr().expect("addr");
    let err = serve_fails(&addr.to_string(), "127.0.0.1:0");
    assert!(
        err.contains(&format!("error: cannot listen on udp {addr}: ")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "udp port {} is already in use by process {} (",
            addr.port(),
            std::process::id()
        )),
        "{err}"
    );
    drop(held);
}

#[test]
fn an_admin_port_in_use_is_named_as_the_http_address() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = held.local_addr().expect("addr");
    let err = serve_fails("127.0.0.1:0", &addr.to_string());
    assert!(
        err.contains(&format!("error: cannot listen on http {addr}: ")),
        "{err}"
    );
    assert!(err.contains("is already in use by process"), "{err}");
}

/// Whether network namespaces can be made here (root, util-linux, iproute2).
fn namespaces() -> bool {
    needs(
        installed("ip", &["-V"]) && matches!(tool("unshare", &["--net", "true"]), Some((true, _))),
        "network namespaces (`unshare --net`) and `ip`",
        "run as root; apt-get install util-linux iproute2",
    )
}

#[test]
fn port_53_without_the_capability_names_cap_net_bind_service() {
    if !namespaces()
        || !needs(
            installed("setpriv", &["--version"]),
            "setpriv",
            "util-linux",
        )
    {
        return;
    }
    // In a namespace of its own (port 53 is free there) as user nobody.
    let script = format!(
        "ip link set lo up && exec setpriv --reuid 65534 --regid 65534 --clear-groups {} serve --listen 127.0.0.1:53 --upstream 127.0.0.1:9 --http 127.0.0.1:0",
        env!("CARGO_BIN_EXE_cutoff")
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--net", "sh", "-c", &script]);
    let err = fails(cmd);
    assert!(
        err.contains("error: cannot listen on udp 127.0.0.1:53: Permission denied"),
        "{err}"
    );
    assert!(err.contains("CAP_NET_BIND_SERVICE"), "{err}");
}

#[test]
fn a_host_without_ipv6_loopback_serves_ipv4_and_warns_about_the_rest() {
    if !namespaces() {
        return;
    }
    let (_dir, cfg) = temp_file(
        "cutoff.yaml",
        "listen: [\"127.0.0.1:5533\", \"[::1]:5533\"]\nupstreams: [\"127.0.0.1:9\"]\nhttp: 127.0.0.1:0\n",
    );
    // A namespace with only lo up and IPv6 switched off: no `::1`.
    let script = format!(
        "ip link set lo up && sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.lo.disable_ipv6=1 && exec {} serve --config {}",
        env!("CARGO_BIN_EXE_cutoff"),
        cfg.display()
    );
    let mut child = Command::new("unshare")
        .args(["--net", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        let done = line.contains("serving") || line.contains("error");
        seen.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = seen.join("\n");
    assert!(
        text.contains("not listening on [::1]:5533: this host has no IPv6 loopback address ::1"),
        "{text}"
    );
    let serving = seen.last().expect("a line");
    assert!(serving.contains("serving"), "{text}");
    assert!(serving.contains("127.0.0.1:5533"), "{text}");
    assert!(!serving.contains("[::1]"), "{text}");
}

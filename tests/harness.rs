//! Runs the real server in-process on 127.0.0.1:0 and queries it over real
//! UDP and TCP sockets, from chosen loopback source addresses (127.0.0.2,
//! 127.0.0.3, ... stand for clients of different networks).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use cutoff::config::Overrides;
use cutoff::runtime::State;
use cutoff::service::{self, Options, Service, StartError};
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

/// A server running on a test's runtime, started by the library's
/// `service::start` as `cutoff serve` starts it.
pub(crate) struct Running {
    /// Where it answers (UDP and TCP).
    pub(crate) addr: SocketAddr,
    /// Every address it listens on (see [`serve_on`]).
    pub(crate) addrs: Vec<SocketAddr>,
    /// Its DoT addresses (`listen_tls`).
    pub(crate) tls: Vec<SocketAddr>,
    /// Its shared state (for reloads).
    pub(crate) state: Arc<State>,
    /// The admin endpoint.
    pub(crate) http: SocketAddr,
    service: Service,
    _dir: tempfile::TempDir,
}

impl Running {
    /// Stops it and waits for it to finish (as SIGTERM does).
    pub(crate) async fn stop(self) {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.service.stop()).await;
    }
}

/// Writes `yaml` (with `{upstream}` replaced) as the config and serves it.
pub(crate) async fn serve(yaml: &str, upstream: SocketAddr) -> Running {
    serve_on(yaml, upstream, &["127.0.0.1:0".parse().expect("addr")]).await
}

/// As [`serve`], listening on `listen` (port 0: one port for all); `addr`
/// is the first. The admin endpoint takes a free port of 127.0.0.1.
pub(crate) async fn serve_on(yaml: &str, upstream: SocketAddr, listen: &[SocketAddr]) -> Running {
    serve_draining(yaml, upstream, listen, Duration::from_secs(2)).await
}

/// As [`serve_on`], giving queries in flight `drain` when it stops.
pub(crate) async fn serve_draining(
    yaml: &str,
    upstream: SocketAddr,
    listen: &[SocketAddr],
    drain: Duration,
) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cutoff.yaml");
    std::fs::write(&path, yaml.replace("{upstream}", &upstream.to_string())).expect("write config");
    // As `cutoff serve --listen … --http 127.0.0.1:0` would.
    let overrides = Overrides {
        listen: listen.to_vec(),
        http: Some("127.0.0.1:0".parse().expect("addr")),
        ..Overrides::default()
    };
    let load = || {
        State::load_config(Some(&path), &overrides).unwrap_or_else(|e| match e {
            cutoff::config::ConfigError::Invalid { problems, .. } => panic!("{problems:#?}"),
            other => panic!("{other}"),
        })
    };
    let options = Options {
        config_path: Some(path.clone()),
        overrides: overrides.clone(),
        drain,
        // Tests that use URL lists drive a refresher of their own.
        refresh_lists: false,
        ..Options::default()
    };
    // Port 0 takes a free UDP port and then TCP on the same one, which
    // another test may hold already: then it tries another port.
    let mut tries = 0;
    let service = loop {
        match service::start(load(), options.clone()).await {
            Ok(s) => break s,
            Err(e @ StartError::Listen { .. })
                if tries < 20 && listen.iter().any(|a| a.port() == 0) =>
            {
                tries += 1;
                eprintln!("bind {listen:?}: {e}; trying another port");
            }
            Err(e) => panic!("start: {e}"),
        }
    };
    Running {
        addr: service.addrs[0],
        addrs: service.addrs.clone(),
        tls: service.tls_addrs.clone(),
        state: service.state.clone(),
        http: service.http,
        service,
        _dir: dir,
    }
}

/// A query message for `name`/`qtype`, with EDNS (advertising `edns`) or not.
pub(crate) fn query(name: &str, qtype: RecordType, edns: Option<u16>) -> Message {
    let mut q = Message::query();
    q.metadata.id = rand_id();
    q.metadata.recursion_desired = true;
    q.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        q.set_edns(e);
    }
    q
}

fn rand_id() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(1000);
    NEXT.fetch_add(7, Ordering::Relaxed)
}

/// Sends raw bytes over UDP from `from` and waits up to `wait` for an answer.
pub(crate) async fn udp_raw(
    server: SocketAddr,
    from: &str,
    bytes: &[u8],
    wait: Duration,
) -> Option<Vec<u8>> {
    let ip: IpAddr = from.parse().expect("ip");
    let sock = UdpSocket::bind(SocketAddr::new(ip, 0))
        .await
        .expect("bind client");
    sock.send_to(bytes, server).await.expect("send");
    let mut buf = vec![0u8; 65535];
    match tokio::time::timeout(wait, sock.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

/// Sends `q` over UDP from `from`; the parsed answer and its size.
pub(crate) async fn udp(server: SocketAddr, from: &str, q: &Message) -> (Message, usize) {
    let bytes = udp_raw(
        server,
        from,
        &q.to_vec().expect("encode"),
        Duration::from_secs(5),
    )
    .await
    .expect("an answer over UDP");
    let m = Message::from_vec(&bytes).expect("parse answer");
    assert_eq!(m.metadata.id, q.metadata.id, "answer has the query's ID");
    (m, bytes.len())
}

/// Opens a TCP connection from `from`.
pub(crate) async fn tcp_connect(server: SocketAddr, from: &str) -> TcpStream {
    let ip: IpAddr = from.parse().expect("ip");
    let sock = TcpSocket::new_v4().expect("socket");
    sock.bind(SocketAddr::new(ip, 0)).expect("bind");
    sock.connect(server).await.expect("connect")
}

/// Sends `q` on an open connection and reads one answer.
pub(crate) async fn tcp_on(stream: &mut TcpStream, q: &Message) -> Option<Message> {
    let bytes = q.to_vec().expect("encode");
    let mut framed = u16::try_from(bytes.len())
        .expect("len")
        .to_be_bytes()
        .to_vec();
    framed.extend_from_slice(&bytes);
    stream.write_all(&framed).await.ok()?;
    let buf = read_frame(stream).await?;
    Message::from_vec(&buf).ok()
}

/// The next length-framed message on a connection, within 5 s; `None`
/// when it does not come or the connection closes.
pub(crate) async fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let read = async {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .ok()?
        .ok()
}

/// Sends `q` over a new TCP connection from `from`.
pub(crate) async fn tcp(server: SocketAddr, from: &str, q: &Message) -> Message {
    let mut s = tcp_connect(server, from).await;
    let m = tcp_on(&mut s, q).await.expect("an answer over TCP");
    assert_eq!(m.metadata.id, q.metadata.id);
    m
}

/// The Extended DNS Error of an answer: (code, text).
pub(crate) fn ede(m: &Message) -> Option<(u16, String)> {
    match m.edns.as_ref()?.option(EdnsCode::Unknown(15))? {
        EdnsOption::Unknown(_, data) if data.len() >= 2 => Some((
            u16::from_be_bytes([data[0], data[1]]),
            String::from_utf8_lossy(&data[2..]).into_owned(),
        )),
        _ => None,
    }
}

/// A plain HTTP/1.1 request to the admin endpoint: (status, body).
pub(crate) async fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let (head, body) = http_response(addr, method, path).await;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    (status, body)
}

/// A plain HTTP/1.1 request to the admin endpoint: (head, body).
pub(crate) async fn http_response(addr: SocketAddr, method: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect http");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("http timeout")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("http response");
    (head.to_owned(), body.to_owned())
}

/// One sample of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    /// Metric name (with `_bucket`/`_sum`/`_count` for histograms).
    pub(crate) name: String,
    /// Labels, sorted by name.
    pub(crate) labels: Vec<(String, String)>,
    /// The value.
    pub(crate) value: f64,
}

/// Parses the exposition format (comments skipped); panics on a malformed line.
pub(crate) fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}').expect("closing brace")),
            None => (series, ""),
        };
        let mut ls = Vec::new();
        let mut rest = labels;
        while !rest.is_empty() {
            let (k, after) = rest.split_once("=\"").expect("label");
            let mut v = String::new();
            let mut end = after.len();
            let mut chars = after.char_indices();
            while let Some((i, ch)) = chars.next() {
                match ch {
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            v.push(if e == 'n' { '\n' } else { e });
                        }
                    }
                    '"' => {
                        end = i;
                        break;
                    }
                    c => v.push(c),
                }
            }
            ls.push((k.to_owned(), v));
            rest = after[end + 1..].trim_start_matches(',');
        }
        ls.sort();
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().expect("value"),
        };
        out.push(Sample {
            name: name.to_owned(),
            labels: ls,
            value,
        });
    }
    out
}

/// The value of the sample with this name and exactly these labels.
pub(crate) fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut want: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    want.sort();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == want)
        .map(|s| s.value)
}

//! Where `cutoff report` and `cutoff status` read a running server: `--url`, or
//! by default the admin address (`http`) of the config `check` would read.
//! A failed request names the URL and, for a refused connection, the likely
//! cause. Outside the query flow.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use jiff::Timestamp;

use super::print_config_error;
use super::source::InspectedConfig;
use crate::clients::ClientRow;

/// Why the client table could not be fetched.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    /// Not an `http://HOST:PORT` URL.
    #[error(
        "`{url}`: {why} (expected http://HOST:PORT, e.g. http://127.0.0.1:9153 or http://localhost:9153)"
    )]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// No server answered.
    #[error("cannot reach {url}: {source}{hint}")]
    Connect {
        /// The URL given.
        url: String,
        /// The last connection error.
        source: std::io::Error,
        /// What probably causes it, and what to do.
        hint: String,
    },
    /// The server answered, but not with the table.
    #[error("{url}: {why}")]
    Response {
        /// The URL given.
        url: String,
        /// What came back.
        why: String,
    },
}

/// The admin URL that reaches a server listening on `http` from this host:
/// a wildcard address is reached on loopback.
pub(crate) fn local_url(http: SocketAddr) -> String {
    let ip = match http.ip() {
        IpAddr::V4(v) if v.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v) if v.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, http.port()))
}

/// The admin URL of the config `check` would read, said on stderr with
/// what is read there (`reading`) and the other choices (`others`); `None`
/// (after printing why, `missing` first) when that config is invalid.
pub(crate) fn default_url(
    config: &InspectedConfig,
    reading: &str,
    others: &str,
    missing: &str,
) -> Option<String> {
    match config.load() {
        Ok(c) => {
            let url = local_url(c.http);
            eprintln!(
                "note: reading {reading} of the server at {url} (`http` of {}); --url URL for another server{others}",
                c.origin
            );
            Some(url)
        }
        Err(e) => {
            eprintln!("error: {missing}, and the config that names the admin URL is invalid:");
            print_config_error(&e);
            None
        }
    }
}

/// GETs `/api/v1/clients` (plain HTTP on the admin port). `HOST` may be an
/// address or a name such as `localhost`; every address it resolves to is
/// tried in turn.
pub(crate) fn fetch(url: &str, since: Option<Timestamp>) -> Result<Vec<ClientRow>, FetchError> {
    let query = since.map(|t| format!("?since={t}")).unwrap_or_default();
    let body = get(url, &format!("/api/v1/clients{query}"))?;
    serde_json::from_str(&body).map_err(|e| FetchError::Response {
        url: url.to_owned(),
        why: format!("not a client table: {e}"),
    })
}

/// GETs `path` (with its query) from the admin endpoint at `url`: the
/// body of a 200 answer.
pub(crate) fn get(url: &str, path: &str) -> Result<String, FetchError> {
    let (status, head, body) = request(url, "GET", path, None, None)?;
    if status != 200 {
        return Err(FetchError::Response {
            url: url.to_owned(),
            why: head,
        });
    }
    Ok(body)
}

/// Sends one request to the admin endpoint at `url`, with a bearer token
/// and a JSON body when given: the status code, the status line and the
/// body, whatever the status.
pub(crate) fn request(
    url: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Result<(u16, String, String), FetchError> {
    let bad = |why| FetchError::Url {
        url: url.to_owned(),
        why,
    };
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("only http:// admin URLs are supported"))?;
    let host = rest.split('/').next().unwrap_or(rest);
    let addrs: Vec<SocketAddr> = host
        .to_socket_addrs()
        .map_err(|_| bad("not HOST:PORT, or HOST does not resolve"))?
        .collect();
    let response = error_for(url, &addrs, |addr| {
        let mut stream = TcpStream::connect_timeout(addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let content = body.map_or_else(String::new, |b| {
            format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            )
        });
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAccept: application/json\r\n{auth}{content}\r\n{}",
            body.unwrap_or("")
        )?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        Ok(response)
    })?;
    let text = String::from_utf8_lossy(&response);
    let failed = |why: String| FetchError::Response {
        url: url.to_owned(),
        why,
    };
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| failed("not an HTTP response".to_owned()))?;
    let line = head.lines().next().unwrap_or("").to_owned();
    let status = line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| failed(format!("not an HTTP response: {line}")))?;
    Ok((status, line, body.to_owned()))
}

/// Runs `request` on each address until one succeeds; else the last error,
/// with a hint for the usual causes.
fn error_for(
    url: &str,
    addrs: &[SocketAddr],
    request: impl Fn(&SocketAddr) -> std::io::Result<Vec<u8>>,
) -> Result<Vec<u8>, FetchError> {
    let mut last = std::io::Error::other("the host resolves to no address");
    for addr in addrs {
        match request(addr) {
            Ok(r) => return Ok(r),
            Err(e) => last = e,
        }
    }
    let hint = match last.kind() {
        std::io::ErrorKind::ConnectionRefused => format!(
            "\n  nothing listens there: is `cutoff serve` running, with its admin endpoint (`http:` in its config, or --http) at {}? Or read a query log instead: --log PATH",
            url.trim_start_matches("http://")
        ),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
            "\n  no answer: a firewall may drop the admin port, or the address is wrong".to_owned()
        }
        _ => String::new(),
    };
    Err(FetchError::Connect {
        url: url.to_owned(),
        source: last,
        hint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_admin_address_is_reached_on_loopback() {
        assert_eq!(
            local_url("0.0.0.0:9153".parse().unwrap()),
            "http://127.0.0.1:9153"
        );
        assert_eq!(local_url("[::]:9153".parse().unwrap()), "http://[::1]:9153");
        assert_eq!(
            local_url("10.0.0.53:9153".parse().unwrap()),
            "http://10.0.0.53:9153"
        );
    }

    #[test]
    fn a_refused_connection_names_the_url_and_the_cause() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://localhost:{port}");
        let e = fetch(&url, None).unwrap_err().to_string();
        assert!(e.starts_with(&format!("cannot reach {url}: ")), "{e}");
        assert!(e.contains("is `cutoff serve` running"), "{e}");
        assert!(e.contains("--log PATH"), "{e}");
    }
}

//! Before and after `serve` binds its sockets: leave out listen addresses of
//! an address family the host does not have (a loopback without `::1`), and
//! turn a failed bind into an error that names the address and the likely
//! cause: the port is held by another process (which one, when `/proc` tells),
//! or it is below 1024 and the process lacks CAP_NET_BIND_SERVICE.
//!
//! Sits outside the query flow, at start-up and when a reload rebinds `http`.

use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};

/// A transport a socket is bound for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Proto {
    /// UDP.
    Udp,
    /// TCP (a listening socket).
    Tcp,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
        }
    }
}

/// Splits `addrs` into those to bind and one warning per address left out
/// because the host has no such address family (no IPv6 at all, or a
/// loopback without `::1`). Only loopback and wildcard addresses are left
/// out: a specific address the host lacks is a mistake that must fail. When
/// every address would be left out, all are kept, so the bind error says why.
pub(crate) fn usable(addrs: &[SocketAddr]) -> (Vec<SocketAddr>, Vec<String>) {
    let mut keep = Vec::new();
    let mut warnings = Vec::new();
    for addr in addrs {
        let ip = addr.ip();
        let optional = ip.is_loopback() || ip.is_unspecified();
        match family_missing(ip) {
            Some(why) if optional => warnings.push(format!(
                "not listening on {addr}: this host has no {why}; the other addresses still answer"
            )),
            _ => keep.push(*addr),
        }
    }
    if keep.is_empty() {
        return (addrs.to_vec(), Vec::new());
    }
    (keep, warnings)
}

/// `Some(what is missing)` when a socket of `ip`'s family cannot be bound to
/// `ip` at all on this host.
fn family_missing(ip: IpAddr) -> Option<&'static str> {
    let e = UdpSocket::bind(SocketAddr::new(ip, 0)).err()?;
    let family = match ip {
        IpAddr::V4(_) => "IPv4",
        IpAddr::V6(_) => "IPv6",
    };
    match e.raw_os_error() {
        Some(libc_errno::EAFNOSUPPORT) => Some(if family == "IPv4" {
            "IPv4 (the kernel has none)"
        } else {
            "IPv6 (the kernel has none)"
        }),
        Some(libc_errno::EADDRNOTAVAIL) if ip == IpAddr::V6(Ipv6Addr::LOCALHOST) => {
            Some("IPv6 loopback address ::1 (IPv6 is disabled or lo has no ::1)")
        }
        Some(libc_errno::EADDRNOTAVAIL) if ip == IpAddr::V4(Ipv4Addr::LOCALHOST) => {
            Some("IPv4 loopback address 127.0.0.1")
        }
        _ => None,
    }
}

/// The errno values used here (Linux); std has no names for them.
mod libc_errno {
    pub(super) const EADDRNOTAVAIL: i32 = 99;
    pub(super) const EAFNOSUPPORT: i32 = 97;
}

/// After `server::Listeners::bind` failed with `err`: binds each address
/// again, UDP then TCP, to find the one that fails, and explains it.
pub(crate) fn explain_listen(addrs: &[SocketAddr], err: &io::Error) -> String {
    for addr in addrs {
        if let Err(e) = UdpSocket::bind(addr) {
            return explain(Proto::Udp, *addr, &e);
        }
        if let Err(e) = TcpListener::bind(addr) {
            return explain(Proto::Tcp, *addr, &e);
        }
    }
    // Not reproducible (the port was freed meanwhile): the original error.
    err.to_string()
}

/// After the admin endpoint's bind on `addr` failed with `err`: explains it.
pub(crate) fn explain_http(addr: SocketAddr, err: &io::Error) -> String {
    match TcpListener::bind(addr) {
        Err(e) => explain(Proto::Tcp, addr, &e).replacen("tcp", "http", 1),
        Ok(_) => err.to_string(),
    }
}

/// "cannot listen on PROTO ADDR: ERROR", and on further lines the likely
/// cause and what to do.
pub(crate) fn explain(proto: Proto, addr: SocketAddr, e: &io::Error) -> String {
    let mut s = format!("cannot listen on {} {addr}: {e}", proto.name());
    match e.kind() {
        io::ErrorKind::AddrInUse => {
            let _ = write!(s, "\n  {}", in_use_by(proto, addr));
            let _ = write!(
                s,
                "\n  stop it, or choose another port with --listen (or `listen:`/`http:` in the config)"
            );
        }
        io::ErrorKind::PermissionDenied if addr.port() < 1024 => {
            let _ = write!(
                s,
                "\n  ports below 1024 need root or CAP_NET_BIND_SERVICE: run it as the systemd unit does (deploy/systemd/cutoff.service, AmbientCapabilities=CAP_NET_BIND_SERVICE), or `sudo setcap cap_net_bind_service=+ep $(command -v cutoff)`, or use a port of 1024 or above"
            );
        }
        io::ErrorKind::AddrNotAvailable => {
            let _ = write!(
                s,
                "\n  no interface of this host has the address {}",
                addr.ip()
            );
        }
        _ => {}
    }
    s
}

/// Who holds `proto` `addr`, as far as /proc tells.
fn in_use_by(proto: Proto, addr: SocketAddr) -> String {
    let held = holders(proto, addr);
    let port = addr.port();
    let ss = match proto {
        Proto::Udp => format!("sudo ss -lunp 'sport = :{port}'"),
        Proto::Tcp => format!("sudo ss -ltnp 'sport = :{port}'"),
    };
    if held.is_empty() {
        let mut s = format!(
            "another socket already holds {} port {port}; `{ss}` shows which process",
            proto.name()
        );
        if port == 5353 {
            s.push_str(" (5353 is mDNS: avahi-daemon or systemd-resolved usually hold it)");
        }
        return s;
    }
    let names: Vec<String> = held
        .iter()
        .map(|h| match (&h.pid, &h.command) {
            (Some(pid), Some(c)) => format!("process {pid} ({c})"),
            (Some(pid), None) => format!("process {pid}"),
            _ => format!("a process of uid {} (`{ss}` shows which)", h.uid),
        })
        .collect();
    format!(
        "{} port {port} is already in use by {}",
        proto.name(),
        names.join(", ")
    )
}

/// One socket from /proc/net that holds the port.
#[derive(Debug)]
struct Holder {
    uid: u32,
    pid: Option<u32>,
    command: Option<String>,
}

/// The sockets in /proc/net/{udp,tcp}{,6} bound to `addr`'s port on the
/// same or an overlapping address, with the process that has each open
/// (found through /proc/*/fd; other users' processes need root).
fn holders(proto: Proto, addr: SocketAddr) -> Vec<Holder> {
    let files: &[&str] = match proto {
        Proto::Udp => &["/proc/net/udp", "/proc/net/udp6"],
        Proto::Tcp => &["/proc/net/tcp", "/proc/net/tcp6"],
    };
    let mut found: Vec<(u64, u32)> = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        for line in text.lines().skip(1) {
            if let Some(entry) = parse_proc_net_line(line)
                && entry.port == addr.port()
                && overlaps(entry.ip, addr.ip())
                // TCP: only listening sockets (state 0A) hold a port for bind.
                && (proto == Proto::Udp || entry.state == 0x0A)
            {
                found.push((entry.inode, entry.uid));
            }
        }
    }
    let owners = socket_owners(found.iter().map(|(inode, _)| *inode).collect());
    found
        .into_iter()
        .map(|(inode, uid)| {
            let pid = owners.iter().find(|(i, _)| *i == inode).map(|(_, p)| *p);
            let command = pid.and_then(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .ok()
                    .map(|c| c.trim().to_owned())
            });
            Holder { uid, pid, command }
        })
        .collect()
}

/// Two bound addresses conflict when equal, or when either is a wildcard of
/// the same family (IPv6 wildcards may also cover IPv4; counted as a match).
fn overlaps(held: IpAddr, wanted: IpAddr) -> bool {
    held == wanted || held.is_unspecified() || wanted.is_unspecified()
}

/// One row of /proc/net/{udp,tcp}{,6}.
#[derive(Debug, PartialEq, Eq)]
struct ProcNetEntry {
    ip: IpAddr,
    port: u16,
    state: u8,
    uid: u32,
    inode: u64,
}

/// Parses `sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …`.
/// Addresses are hex in the kernel's byte order: each 32-bit word little-endian.
fn parse_proc_net_line(line: &str) -> Option<ProcNetEntry> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let (ip_hex, port_hex) = f.get(1)?.split_once(':')?;
    let port = u16::from_str_radix(port_hex, 16).ok()?;
    let ip = match ip_hex.len() {
        8 => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(ip_hex, 16).ok()?.to_le_bytes(),
        )),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                let word = ip_hex.get(i * 8..i * 8 + 8)?;
                chunk.copy_from_slice(&u32::from_str_radix(word, 16).ok()?.to_le_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(ProcNetEntry {
        ip,
        port,
        state: u8::from_str_radix(f.get(3)?, 16).ok()?,
        uid: f.get(7)?.parse().ok()?,
        inode: f.get(9)?.parse().ok()?,
    })
}

/// (inode, pid) for every process fd that is one of `inodes`' sockets.
fn socket_owners(inodes: Vec<u64>) -> Vec<(u64, u32)> {
    let mut owners = Vec::new();
    if inodes.is_empty() {
        return owners;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return owners;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(link) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let inode = link
                .to_str()
                .and_then(|l| l.strip_prefix("socket:["))
                .and_then(|l| l.strip_suffix(']'))
                .and_then(|l| l.parse::<u64>().ok());
            if let Some(i) = inode.filter(|i| inodes.contains(i)) {
                owners.push((i, pid));
            }
        }
    }
    owners
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_rows_give_address_port_state_uid_and_inode() {
        let v4 = "   0: 0100007F:14CD 00000000:0000 07 00000000:00000000 00:00000000 00000000   108        0 31337 2 0000000000000000 0";
        assert_eq!(
            parse_proc_net_line(v4),
            Some(ProcNetEntry {
                ip: "127.0.0.1".parse().unwrap(),
                port: 5325,
                state: 7,
                uid: 108,
                inode: 31337,
            })
        );
        let v6 = "   1: 00000000000000000000000001000000:14CD 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 42 1 0000000000000000 100 0 0 10 0";
        let e = parse_proc_net_line(v6).unwrap();
        assert_eq!(e.ip, "::1".parse::<IpAddr>().unwrap());
        assert_eq!((e.state, e.inode), (0x0A, 42));
    }

    #[test]
    fn a_port_held_by_this_process_is_named_with_its_pid() {
        let held = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let e = UdpSocket::bind(addr).unwrap_err();
        let text = explain(Proto::Udp, addr, &e);
        assert!(
            text.starts_with(&format!("cannot listen on udp {addr}: ")),
            "{text}"
        );
        assert!(
            text.contains(&format!("in use by process {}", std::process::id())),
            "{text}"
        );
    }

    #[test]
    fn a_low_port_refused_names_the_capability() {
        let e = io::Error::from(io::ErrorKind::PermissionDenied);
        let text = explain(Proto::Tcp, "0.0.0.0:53".parse().unwrap(), &e);
        assert!(text.contains("CAP_NET_BIND_SERVICE"), "{text}");
    }

    #[test]
    fn addresses_of_families_the_host_has_are_all_kept() {
        let addrs: Vec<SocketAddr> = vec!["127.0.0.1:0".parse().unwrap()];
        assert_eq!(usable(&addrs), (addrs, Vec::new()));
    }
}

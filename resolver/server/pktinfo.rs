//! Replies from the address a query was sent to, on wildcard UDP listeners
//! (`0.0.0.0:53`, `[::]:53`). A host with several addresses on one
//! interface (SLAAC, ULA and privacy IPv6 addresses; a VIP) would otherwise
//! answer from whichever address the kernel picks, and the client, which
//! only accepts an answer from where it sent the query, times out.
//!
//! Sits in `server`, under the UDP loop. The kernel says where each
//! datagram arrived (IP_PKTINFO, IPV6_RECVPKTINFO with `recvmmsg`) and the
//! reply names that address as its source (`sendmmsg` with the same
//! control message, both in [`super::batch`]). With `batch`, the only files with `unsafe` code: the
//! libc calls and the control messages, each checked where it is written.
//! Listeners bound to one address, and systems other than Linux, use plain
//! `recv_from` and `send_to`.

use std::io;
#[cfg(not(target_os = "linux"))]
use std::net::SocketAddr;

use tokio::net::UdpSocket;

/// Where a datagram arrived: the local address and interface to reply from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Local {
    /// An IPv4 destination.
    V4(std::net::Ipv4Addr),
    /// An IPv6 destination and its interface (needed for link-local ones).
    V6(std::net::Ipv6Addr, u32),
}

/// Asks the kernel for the destination of every datagram on `socket`; only
/// for sockets bound to the unspecified address.
pub(crate) fn enable(socket: &UdpSocket) -> io::Result<()> {
    imp::enable(socket)
}

/// Receives one datagram: its length, its sender and, when enabled, where
/// it arrived (on Linux, [`super::batch`] reads with `recvmmsg` instead).
#[cfg(not(target_os = "linux"))]
pub(crate) async fn recv(
    socket: &UdpSocket,
    buf: &mut [u8],
    enabled: bool,
) -> io::Result<(usize, SocketAddr, Option<Local>)> {
    if enabled {
        return imp::recv(socket, buf).await;
    }
    let (n, src) = socket.recv_from(buf).await?;
    Ok((n, src, None))
}

/// Sends `buf` to `to`, from `local` when it is known (on Linux,
/// [`super::batch`] sends with `sendmmsg` instead).
#[cfg(not(target_os = "linux"))]
pub(crate) async fn send(
    socket: &UdpSocket,
    buf: &[u8],
    to: SocketAddr,
    local: Option<Local>,
) -> io::Result<()> {
    match local {
        Some(local) => imp::send(socket, buf, to, local).await,
        None => socket.send_to(buf, to).await.map(drop),
    }
}

/// The helpers [`super::batch`] shares: the control buffer, reading a
/// sender's address and a datagram's destination.
#[cfg(target_os = "linux")]
pub(crate) use imp as sys;

#[cfg(target_os = "linux")]
pub(crate) mod imp {
    use std::io;
    use std::mem::{size_of, zeroed};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::AsRawFd;
    use std::ptr;

    use tokio::net::UdpSocket;

    use super::Local;

    /// Room for one `in6_pktinfo` control message (or an `in_pktinfo`),
    /// aligned as `cmsghdr` needs.
    #[repr(C, align(8))]
    pub(crate) struct Control(pub(crate) [u8; 64]);

    pub(crate) fn len<T>() -> libc::socklen_t {
        libc::socklen_t::try_from(size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
    }

    pub(super) fn enable(socket: &UdpSocket) -> io::Result<()> {
        let (level, name) = if socket.local_addr()?.is_ipv4() {
            (libc::IPPROTO_IP, libc::IP_PKTINFO)
        } else {
            (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO)
        };
        let on: libc::c_int = 1;
        // SAFETY: the fd is a live socket owned by `socket`; the option value
        // points to a c_int that outlives the call, with its size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                level,
                name,
                ptr::from_ref(&on).cast(),
                len::<libc::c_int>(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The destination in the control messages `recvmsg`/`recvmmsg` filled in.
    pub(crate) fn local_of(msg: &libc::msghdr) -> Option<Local> {
        // SAFETY: `msg` was filled by recvmsg; CMSG_FIRSTHDR/NXTHDR stay
        // within msg_control..msg_controllen and return null past its end;
        // each payload is read unaligned and only when its level, type and
        // length say it holds the struct read.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(msg);
            while !c.is_null() {
                let data = libc::CMSG_DATA(c);
                let payload = (*c).cmsg_len as usize;
                match ((*c).cmsg_level, (*c).cmsg_type) {
                    (libc::IPPROTO_IP, libc::IP_PKTINFO)
                        if payload >= libc::CMSG_LEN(len::<libc::in_pktinfo>()) as usize =>
                    {
                        let p: libc::in_pktinfo = ptr::read_unaligned(data.cast());
                        let addr = Ipv4Addr::from(u32::from_be(p.ipi_spec_dst.s_addr));
                        return Some(Local::V4(addr));
                    }
                    (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO)
                        if payload >= libc::CMSG_LEN(len::<libc::in6_pktinfo>()) as usize =>
                    {
                        let p: libc::in6_pktinfo = ptr::read_unaligned(data.cast());
                        let addr = Ipv6Addr::from(p.ipi6_addr.s6_addr);
                        return Some(Local::V6(addr, p.ipi6_ifindex));
                    }
                    _ => {}
                }
                c = libc::CMSG_NXTHDR(msg, c);
            }
        }
        None
    }

    pub(crate) fn from_sockaddr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
        match libc::c_int::from(s.ss_family) {
            libc::AF_INET => {
                // SAFETY: the family says the storage holds a sockaddr_in.
                let a: libc::sockaddr_in = unsafe { ptr::read_unaligned(ptr::from_ref(s).cast()) };
                let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                Some(SocketAddrV4::new(ip, u16::from_be(a.sin_port)).into())
            }
            libc::AF_INET6 => {
                // SAFETY: the family says the storage holds a sockaddr_in6.
                let a: libc::sockaddr_in6 = unsafe { ptr::read_unaligned(ptr::from_ref(s).cast()) };
                let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
                let port = u16::from_be(a.sin6_port);
                Some(SocketAddrV6::new(ip, port, a.sin6_flowinfo, a.sin6_scope_id).into())
            }
            _ => None,
        }
    }

    /// Writes `to` into `name`; the length to give the kernel with it.
    pub(crate) fn write_name(name: &mut libc::sockaddr_storage, to: SocketAddr) -> libc::socklen_t {
        match to {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(*a.ip()).to_be(),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than sockaddr_in.
                unsafe { ptr::write_unaligned(ptr::from_mut(name).cast(), sin) };
                len::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than sockaddr_in6.
                unsafe { ptr::write_unaligned(ptr::from_mut(name).cast(), sin6) };
                len::<libc::sockaddr_in6>()
            }
        }
    }

    /// Writes the control message that makes `local` a datagram's source
    /// into `control`; the control length to give the kernel with it.
    pub(crate) fn write_control(control: &mut Control, local: Local) -> io::Result<usize> {
        // SAFETY: a plain C struct for which all-zero is valid.
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_control = control.0.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE/CMSG_LEN are arithmetic on sizes; the space
        // (at most 40 bytes) fits the 64-byte control buffer, so the first
        // header and its payload lie inside it.
        unsafe {
            let (level, kind, size) = match local {
                Local::V4(_) => (
                    libc::IPPROTO_IP,
                    libc::IP_PKTINFO,
                    len::<libc::in_pktinfo>(),
                ),
                Local::V6(..) => (
                    libc::IPPROTO_IPV6,
                    libc::IPV6_PKTINFO,
                    len::<libc::in6_pktinfo>(),
                ),
            };
            let space = libc::CMSG_SPACE(size) as usize;
            msg.msg_controllen = space as _;
            let c = libc::CMSG_FIRSTHDR(&raw const msg);
            if c.is_null() || space > control.0.len() {
                return Err(io::Error::other("no room for the control message"));
            }
            (*c).cmsg_level = level;
            (*c).cmsg_type = kind;
            (*c).cmsg_len = libc::CMSG_LEN(size) as _;
            let data = libc::CMSG_DATA(c);
            match local {
                Local::V4(addr) => {
                    let p = libc::in_pktinfo {
                        // 0: the route decides the interface; the source is fixed.
                        ipi_ifindex: 0,
                        ipi_spec_dst: libc::in_addr {
                            s_addr: u32::from(addr).to_be(),
                        },
                        ipi_addr: libc::in_addr { s_addr: 0 },
                    };
                    ptr::write_unaligned(data.cast(), p);
                }
                Local::V6(addr, ifindex) => {
                    let p = libc::in6_pktinfo {
                        ipi6_addr: libc::in6_addr {
                            s6_addr: addr.octets(),
                        },
                        ipi6_ifindex: ifindex,
                    };
                    ptr::write_unaligned(data.cast(), p);
                }
            }
            Ok(space)
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;
    use std::net::SocketAddr;

    use tokio::net::UdpSocket;

    use super::Local;

    pub(super) fn enable(_: &UdpSocket) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "no IP_PKTINFO here",
        ))
    }

    pub(super) async fn recv(
        socket: &UdpSocket,
        buf: &mut [u8],
    ) -> io::Result<(usize, SocketAddr, Option<Local>)> {
        let (n, src) = socket.recv_from(buf).await?;
        Ok((n, src, None))
    }

    pub(super) async fn send(
        socket: &UdpSocket,
        buf: &[u8],
        to: SocketAddr,
        _: Local,
    ) -> io::Result<()> {
        socket.send_to(buf, to).await.map(drop)
    }
}

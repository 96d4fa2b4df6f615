//! Receives UDP queries in batches: up to [`BATCH`] datagrams with one
//! `recvmmsg` on Linux, each with its sender and, on wildcard listeners,
//! where it arrived (IP_PKTINFO, as [`super::pktinfo`] reads it).
//!
//! Sits in `server`, under the UDP loop, beside `pktinfo` (the control
//! messages are read by the same code). Under load a receive loop finds
//! many queries waiting and takes them with one system call instead of
//! one each; when the socket has one datagram, it gets one. Replies still
//! go out one `sendmsg` each (docs/adr/0009-udp-workers-and-batches.md).
//! Other systems receive one datagram at a time.

use std::io;
use std::net::SocketAddr;

use tokio::net::UdpSocket;

use super::pktinfo::Local;

/// Datagrams read with one system call at most.
pub(crate) const BATCH: usize = 16;
/// Room per datagram: a query is far smaller (EDNS sizes are for answers);
/// a longer one is dropped, never read cut short.
const SLOT: usize = 4096;

/// One datagram of the last batch.
#[derive(Clone, Copy, Debug)]
struct Meta {
    len: usize,
    src: SocketAddr,
    local: Option<Local>,
}

/// Buffers for one receive loop's batches.
pub(crate) struct Batch {
    bufs: Box<[[u8; SLOT]]>,
    meta: [Option<Meta>; BATCH],
    filled: usize,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("filled", &self.filled)
            .finish_non_exhaustive()
    }
}

impl Batch {
    pub(crate) fn new() -> Self {
        Self {
            bufs: vec![[0u8; SLOT]; BATCH].into_boxed_slice(),
            meta: [None; BATCH],
            filled: 0,
        }
    }

    /// Waits for datagrams and reads what is there, up to [`BATCH`]; the
    /// count read (at least one, some of which [`Batch::get`] may skip).
    pub(crate) async fn recv(&mut self, socket: &UdpSocket, pktinfo: bool) -> io::Result<usize> {
        self.filled = 0;
        let n = imp::recv(self, socket, pktinfo).await?;
        self.filled = n;
        Ok(n)
    }

    /// Datagram `i` of the last batch: its bytes, sender and destination;
    /// `None` for one that did not fit its slot or names no sender.
    pub(crate) fn get(&self, i: usize) -> Option<(&[u8], SocketAddr, Option<Local>)> {
        if i >= self.filled {
            return None;
        }
        let m = self.meta.get(i).copied().flatten()?;
        let bytes = self.bufs.get(i)?.get(..m.len)?;
        Some((bytes, m.src, m.local))
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::mem::zeroed;
    use std::os::fd::AsRawFd;
    use std::ptr;

    use tokio::io::Interest;
    use tokio::net::UdpSocket;

    use super::{BATCH, Batch, Meta, SLOT};
    use crate::server::pktinfo::sys::{Control, from_sockaddr, len, local_of};

    pub(super) async fn recv(
        b: &mut Batch,
        socket: &UdpSocket,
        pktinfo: bool,
    ) -> io::Result<usize> {
        socket
            .async_io(Interest::READABLE, || recv_now(b, socket, pktinfo))
            .await
    }

    fn recv_now(b: &mut Batch, socket: &UdpSocket, pktinfo: bool) -> io::Result<usize> {
        // SAFETY (all three): plain C structs for which all-zero is valid.
        let mut names: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut controls: [Control; BATCH] = std::array::from_fn(|_| Control([0; 64]));
        for (i, ((msg, iov), (name, control))) in msgs
            .iter_mut()
            .zip(iovs.iter_mut())
            .zip(names.iter_mut().zip(controls.iter_mut()))
            .enumerate()
        {
            let Some(buf) = b.bufs.get_mut(i) else { break };
            iov.iov_base = buf.as_mut_ptr().cast();
            iov.iov_len = SLOT;
            let h = &mut msg.msg_hdr;
            h.msg_name = ptr::from_mut(name).cast();
            h.msg_namelen = len::<libc::sockaddr_storage>();
            h.msg_iov = ptr::from_mut(iov);
            h.msg_iovlen = 1;
            if pktinfo {
                h.msg_control = control.0.as_mut_ptr().cast();
                h.msg_controllen = control.0.len() as _;
            }
        }
        let count = libc::c_uint::try_from(BATCH).unwrap_or(1);
        // SAFETY: every pointer in `msgs` points to a live local buffer (or
        // one of `b.bufs`, borrowed mutably for this call) of the length
        // given beside it; the kernel writes at most that much and at most
        // `count` entries; no timeout pointer.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                count,
                // The flags are a C `int` on glibc and an `unsigned` on musl;
                // MSG_DONTWAIT (0x40) fits both.
                libc::MSG_DONTWAIT as _,
                ptr::null_mut(),
            )
        };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        for (i, msg) in msgs.iter().take(n).enumerate() {
            let h = &msg.msg_hdr;
            let len = usize::try_from(msg.msg_len).unwrap_or(usize::MAX);
            let whole = h.msg_flags & libc::MSG_TRUNC == 0 && len <= SLOT;
            let meta = names.get(i).and_then(from_sockaddr).map(|src| Meta {
                len,
                src,
                local: if pktinfo { local_of(h) } else { None },
            });
            if let Some(slot) = b.meta.get_mut(i) {
                *slot = meta.filter(|_| whole);
            }
        }
        Ok(n)
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;

    use tokio::net::UdpSocket;

    use super::{Batch, Meta};

    pub(super) async fn recv(
        b: &mut Batch,
        socket: &UdpSocket,
        pktinfo: bool,
    ) -> io::Result<usize> {
        let Some(buf) = b.bufs.get_mut(0) else {
            return Ok(0);
        };
        let (len, src, local) = crate::server::pktinfo::recv(socket, buf, pktinfo).await?;
        b.meta[0] = Some(Meta { len, src, local });
        Ok(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiting_datagrams_are_read_in_one_batch_each_with_its_sender() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = server.local_addr().unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for i in 0..5u8 {
            a.send_to(&[b'a', i], to).await.unwrap();
        }
        c.send_to(b"from c", to).await.unwrap();
        let mut batch = Batch::new();
        let mut got = vec![];
        let mut most = 0;
        // Loopback delivers at once, but read until all six are in (a
        // batch takes what is queued when it runs).
        while got.len() < 6 {
            let n = batch.recv(&server, false).await.unwrap();
            most = most.max(n);
            for i in 0..n {
                let (bytes, src, local) = batch.get(i).unwrap();
                assert_eq!(local, None);
                got.push((bytes.to_vec(), src));
            }
        }
        assert_eq!(got.len(), 6);
        if cfg!(target_os = "linux") {
            assert!(most > 1, "one recvmmsg read several datagrams");
        }
        let from_a: Vec<_> = got
            .iter()
            .filter(|(_, s)| *s == a.local_addr().unwrap())
            .collect();
        assert_eq!(from_a.len(), 5);
        assert_eq!(from_a[4].0, [b'a', 4], "in the order sent");
        assert!(got.contains(&(b"from c".to_vec(), c.local_addr().unwrap())));
        assert!(batch.get(BATCH).is_none());
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_datagram_longer_than_a_slot_is_skipped_not_cut_short() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = server.local_addr().unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        a.send_to(&vec![7u8; SLOT + 1], to).await.unwrap();
        a.send_to(b"next", to).await.unwrap();
        let mut batch = Batch::new();
        let mut seen = vec![];
        while seen.len() < 2 {
            let n = batch.recv(&server, false).await.unwrap();
            seen.extend((0..n).map(|i| batch.get(i).map(|(b, _, _)| b.to_vec())));
        }
        assert_eq!(seen, vec![None, Some(b"next".to_vec())]);
    }
}

//! Receives UDP queries in batches and sends their replies in batches: up
//! to [`BATCH`] datagrams with one `recvmmsg` on Linux, each with its sender
//! and, on wildcard listeners, where it arrived (IP_PKTINFO, as
//! [`super::pktinfo`] reads it); and the replies of a batch with one
//! `sendmmsg`, each from the address its query came to.
//!
//! Sits in `server`, under the UDP loop, beside `pktinfo` (the control
//! messages are read and written by the same code). Under load a receive
//! loop finds many queries waiting and takes them with one system call
//! instead of one each; when the socket has one datagram, it gets one.
//! The replies answered without an upstream wait in an [`Outbox`] until
//! the batch is done (docs/adr/0009-udp-workers-and-batches.md). Other
//! systems receive and send one datagram at a time.

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

/// One reply waiting in an [`Outbox`], with what its sender needs back
/// once it went (or failed to go) out.
#[derive(Debug)]
pub(crate) struct Out<T> {
    /// The reply.
    pub(crate) bytes: Vec<u8>,
    /// The client.
    pub(crate) to: SocketAddr,
    /// The address its query came to, on wildcard listeners.
    pub(crate) local: Option<Local>,
    /// The caller's note for this reply.
    pub(crate) tag: T,
}

/// Replies to send together, at most [`BATCH`]: one `sendmmsg` on Linux.
#[derive(Debug)]
pub(crate) struct Outbox<T> {
    items: Vec<Out<T>>,
}

impl<T: Send> Outbox<T> {
    pub(crate) fn new() -> Self {
        Self {
            items: Vec::with_capacity(BATCH),
        }
    }

    /// Queues a reply; a full outbox gives it back (flush, or send it alone).
    pub(crate) fn push(&mut self, out: Out<T>) -> Result<(), Out<T>> {
        if self.items.len() >= BATCH {
            return Err(out);
        }
        self.items.push(out);
        Ok(())
    }

    /// Whether another reply fits.
    pub(crate) fn has_room(&self) -> bool {
        self.items.len() < BATCH
    }

    /// Sends every queued reply, in order; `done` gets each back with the
    /// result of its send. A reply the kernel refuses does not stop the rest.
    pub(crate) async fn flush(
        &mut self,
        socket: &UdpSocket,
        mut done: impl FnMut(Out<T>, io::Result<()>),
    ) {
        if self.items.is_empty() {
            return;
        }
        let mut errors: [Option<io::Error>; BATCH] = std::array::from_fn(|_| None);
        imp::send(socket, &self.items, &mut errors).await;
        for (out, error) in self.items.drain(..).zip(errors) {
            done(out, error.map_or(Ok(()), Err));
        }
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

    use super::{BATCH, Batch, Meta, Out, SLOT};
    use crate::server::pktinfo::sys::{
        Control, from_sockaddr, len, local_of, write_control, write_name,
    };

    /// Sends `items` with as few `sendmmsg` calls as the kernel allows; the
    /// error of each reply that failed lands at its index in `errors`.
    pub(super) async fn send<T>(
        socket: &UdpSocket,
        items: &[Out<T>],
        errors: &mut [Option<io::Error>; BATCH],
    ) {
        let n = items.len().min(BATCH);
        let mut start = 0;
        while start < n {
            let rest = items.get(start..n).unwrap_or_default();
            let sent = socket
                .async_io(Interest::WRITABLE, || send_now(socket, rest))
                .await;
            match sent {
                Ok(k) if k > 0 => start += k,
                // The first reply of the rest failed (sendmmsg reports an
                // error only when nothing went): it is dropped, the rest go on.
                other => {
                    if let Some(slot) = errors.get_mut(start) {
                        *slot = Some(
                            other
                                .err()
                                .unwrap_or_else(|| io::Error::other("nothing sent")),
                        );
                    }
                    start += 1;
                }
            }
        }
    }

    /// One `sendmmsg` of `items`: how many the kernel took.
    fn send_now<T>(socket: &UdpSocket, items: &[Out<T>]) -> io::Result<usize> {
        // SAFETY (all three): plain C structs for which all-zero is valid.
        let mut names: [libc::sockaddr_storage; BATCH] = unsafe { zeroed() };
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        let mut iovs: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut controls: [Control; BATCH] = std::array::from_fn(|_| Control([0; 64]));
        let mut count: usize = 0;
        for (out, ((msg, iov), (name, control))) in items.iter().zip(
            msgs.iter_mut()
                .zip(iovs.iter_mut())
                .zip(names.iter_mut().zip(controls.iter_mut())),
        ) {
            iov.iov_base = out.bytes.as_ptr().cast_mut().cast();
            iov.iov_len = out.bytes.len();
            let h = &mut msg.msg_hdr;
            h.msg_namelen = write_name(name, out.to);
            h.msg_name = ptr::from_mut(name).cast();
            h.msg_iov = ptr::from_mut(iov);
            h.msg_iovlen = 1;
            if let Some(local) = out.local {
                match write_control(control, local) {
                    Ok(n) => h.msg_controllen = n as _,
                    // Send those before it; this one then fails alone as
                    // the first of the rest.
                    Err(e) if count == 0 => return Err(e),
                    Err(_) => break,
                }
                h.msg_control = control.0.as_mut_ptr().cast();
            }
            count += 1;
        }
        let vlen = libc::c_uint::try_from(count).unwrap_or(1);
        // SAFETY: the first `vlen` entries of `msgs` point to live buffers
        // (locals, or the replies borrowed for this call) of the lengths
        // given beside them; the kernel only reads them.
        let n = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                vlen,
                // A C `int` on glibc, an `unsigned` on musl (as for recvmmsg).
                libc::MSG_DONTWAIT as _,
            )
        };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }

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

    use super::{BATCH, Batch, Meta, Out};

    pub(super) async fn send<T>(
        socket: &UdpSocket,
        items: &[Out<T>],
        errors: &mut [Option<io::Error>; BATCH],
    ) {
        for (out, slot) in items.iter().zip(errors.iter_mut()) {
            let r = crate::server::pktinfo::send(socket, &out.bytes, out.to, out.local).await;
            *slot = r.err();
        }
    }

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

    #[tokio::test]
    async fn an_outbox_sends_its_replies_in_order_and_one_refused_send_spares_the_rest() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut outbox = Outbox::new();
        let to = |addr: SocketAddr, bytes: &[u8], tag: u8| Out {
            bytes: bytes.to_vec(),
            to: addr,
            local: None,
            tag,
        };
        outbox.push(to(a.local_addr().unwrap(), b"one", 1)).unwrap();
        // An IPv6 client on an IPv4 socket: the kernel refuses this one.
        outbox
            .push(to("[::1]:9".parse().unwrap(), b"two", 2))
            .unwrap();
        outbox
            .push(to(b.local_addr().unwrap(), b"three", 3))
            .unwrap();
        outbox
            .push(to(a.local_addr().unwrap(), b"four", 4))
            .unwrap();
        let mut results = vec![];
        outbox
            .flush(&server, |out, r| results.push((out.tag, r.is_ok())))
            .await;
        assert_eq!(
            results,
            [(1, true), (2, false), (3, true), (4, true)],
            "each reply back once, in order, with its own result"
        );
        let mut buf = [0u8; 16];
        let (n, from) = a.recv_from(&mut buf).await.unwrap();
        assert_eq!(
            (&buf[..n], from),
            (&b"one"[..], server.local_addr().unwrap())
        );
        let (n, _) = a.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"four");
        let (n, _) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"three");
        let mut more = 0;
        outbox.flush(&server, |_, _| more += 1).await;
        assert_eq!(more, 0, "a flushed outbox is empty");
    }

    #[tokio::test]
    async fn an_outbox_holds_one_batch_and_gives_back_what_does_not_fit() {
        let mut outbox = Outbox::new();
        let out = |tag: usize| Out {
            bytes: vec![],
            to: "127.0.0.1:9".parse().unwrap(),
            local: None,
            tag,
        };
        for i in 0..BATCH {
            assert!(outbox.has_room());
            outbox.push(out(i)).unwrap();
        }
        assert!(!outbox.has_room());
        assert_eq!(outbox.push(out(BATCH)).unwrap_err().tag, BATCH);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_wildcard_socket_replies_from_the_address_the_query_came_to() {
        let server = UdpSocket::bind("0.0.0.0:0").await.unwrap();
        crate::server::pktinfo::enable(&server).unwrap();
        let port = server.local_addr().unwrap().port();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // 127.0.0.2 is on the loopback interface like all of 127/8.
        client.send_to(b"query", ("127.0.0.2", port)).await.unwrap();
        let mut batch = Batch::new();
        let n = batch.recv(&server, true).await.unwrap();
        assert_eq!(n, 1);
        let (bytes, src, local) = batch.get(0).unwrap();
        assert_eq!(bytes, b"query");
        assert_eq!(local, Some(Local::V4("127.0.0.2".parse().unwrap())));
        // In the same sendmmsg, a reply with no destination to keep (as on
        // a listener bound to one address): the kernel picks its source.
        let other = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut outbox = Outbox::new();
        let reply = |to, local, tag| Out {
            bytes: b"reply".to_vec(),
            to,
            local,
            tag,
        };
        outbox.push(reply(src, local, 1)).unwrap();
        outbox
            .push(reply(other.local_addr().unwrap(), None, 2))
            .unwrap();
        outbox.push(reply(src, local, 3)).unwrap();
        let mut ok = vec![];
        outbox
            .flush(&server, |o, r| ok.push((o.tag, r.is_ok())))
            .await;
        assert_eq!(ok, [(1, true), (2, true), (3, true)]);
        let mut buf = [0u8; 16];
        for _ in 0..2 {
            let (n, from) = client.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"reply");
            assert_eq!(from, SocketAddr::from(([127, 0, 0, 2], port)));
        }
        let (_, from) = other.recv_from(&mut buf).await.unwrap();
        assert_eq!(from, SocketAddr::from(([127, 0, 0, 1], port)));
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

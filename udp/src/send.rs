//! Batched sending: `sendmmsg`, each message gathered from up to `N` segments (one iovec each),
//! so every copy of a packet can reference one shared payload.

use std::io;
use std::mem::zeroed;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};

use crate::sockaddr::write_sockaddr;

/// Segments per datagram that [`SendBatch`] has room for unless told otherwise: the four a
/// corecast transmit is made of (rewritten header, CSRCs and extension, rewritten codec prefix,
/// rest of the payload).
pub const SEGMENTS: usize = 4;

/// One datagram to send: where to, and its bytes as segments sent back to back. Empty segments
/// are skipped (they would cost the kernel an iovec each for nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram<'a, const N: usize = SEGMENTS> {
    /// The destination.
    pub dest: SocketAddr,
    /// The datagram's bytes, in order.
    pub segments: [&'a [u8]; N],
}

/// Why the kernel did not take a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The socket's send buffer was full (EAGAIN/ENOBUFS). The rest of the batch is refused too:
    /// the send never blocks, and retrying at once would only find it full again.
    BufferFull,
    /// Refused on its own, e.g. no route to its destination or a destination of another
    /// address family than the socket's; the datagrams after it are still sent.
    Failed,
}

/// Outcome of sending one batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendOutcome {
    /// Datagrams the kernel took.
    pub sent: usize,
    /// `sendmmsg` calls made.
    pub syscalls: u32,
    /// Datagrams refused with [`Refusal::BufferFull`].
    pub buffer_full: usize,
    /// Datagrams refused with [`Refusal::Failed`].
    pub failed: usize,
}

/// Preallocated headers for `sendmmsg`: up to `capacity` datagrams per call, each of up to `N`
/// segments. Allocated once; sending writes them in place.
pub struct SendBatch<const N: usize = SEGMENTS> {
    msgs: Vec<libc::mmsghdr>,
    iovs: Vec<[libc::iovec; N]>,
    addrs: Vec<libc::sockaddr_storage>,
}

// SAFETY: the raw pointers inside are only meaningful during `send`, which sets them before the
// call and uses them only within it; between calls the batch holds no borrowed data, so moving
// it to another thread is sound.
unsafe impl<const N: usize> Send for SendBatch<N> {}

impl<const N: usize> SendBatch<N> {
    /// # Panics
    /// If `capacity` or `N` is zero.
    pub fn with_capacity(capacity: usize) -> SendBatch<N> {
        assert!(capacity > 0, "a send batch holds at least one message");
        assert!(N > 0, "a datagram has at least one segment");
        // SAFETY: these are plain C structs for which all-zero bytes are a valid value.
        let (msg, iov, addr) = unsafe {
            (
                zeroed::<libc::mmsghdr>(),
                zeroed::<libc::iovec>(),
                zeroed::<libc::sockaddr_storage>(),
            )
        };
        SendBatch {
            msgs: vec![msg; capacity],
            iovs: vec![[iov; N]; capacity],
            addrs: vec![addr; capacity],
        }
    }

    /// Datagrams per `sendmmsg` call.
    pub fn capacity(&self) -> usize {
        self.msgs.len()
    }

    /// Send one datagram per item (`datagram` says what it is), in `sendmmsg` calls of up to
    /// the capacity. Never blocks: a full socket buffer refuses the rest. Each item is either
    /// sent or told to `on_refused`, so `sent + buffer_full + failed` is always `items.len()`.
    pub fn send<'a, T>(
        &mut self,
        socket: impl AsFd,
        items: &'a [T],
        mut datagram: impl FnMut(&'a T) -> Datagram<'a, N>,
        mut on_refused: impl FnMut(&'a T, Refusal),
    ) -> SendOutcome {
        let fd = socket.as_fd().as_raw_fd();
        let mut out = SendOutcome::default();
        let mut chunks = items.chunks(self.msgs.len());
        for chunk in chunks.by_ref() {
            if !self.send_chunk(fd, chunk, &mut datagram, &mut on_refused, &mut out) {
                break;
            }
        }
        // The socket buffer was full: what is left is refused, as the rest of its chunk was.
        for item in chunks.flatten() {
            on_refused(item, Refusal::BufferFull);
            out.buffer_full += 1;
        }
        out
    }

    /// One `sendmmsg` batch (at most the capacity); false if the socket buffer was full.
    fn send_chunk<'a, T>(
        &mut self,
        fd: libc::c_int,
        items: &'a [T],
        datagram: &mut impl FnMut(&'a T) -> Datagram<'a, N>,
        on_refused: &mut impl FnMut(&'a T, Refusal),
        out: &mut SendOutcome,
    ) -> bool {
        let n = items.len();
        debug_assert!(n <= self.msgs.len());
        for (i, item) in items.iter().enumerate() {
            let d = datagram(item);
            let mut count = 0;
            for seg in d.segments.iter().filter(|s| !s.is_empty()) {
                self.iovs[i][count] = libc::iovec {
                    iov_base: seg.as_ptr() as *mut libc::c_void,
                    iov_len: seg.len(),
                };
                count += 1;
            }
            let addr_len = write_sockaddr(&d.dest, &mut self.addrs[i]);
            let hdr = &mut self.msgs[i].msg_hdr;
            hdr.msg_name = &mut self.addrs[i] as *mut _ as *mut libc::c_void;
            hdr.msg_namelen = addr_len;
            hdr.msg_iov = self.iovs[i].as_mut_ptr();
            hdr.msg_iovlen = count as _;
            hdr.msg_control = std::ptr::null_mut();
            hdr.msg_controllen = 0;
            hdr.msg_flags = 0;
        }
        let mut at = 0;
        while at < n {
            out.syscalls += 1;
            // SAFETY: msgs[at..n] were filled above with pointers into `self.iovs` and
            // `self.addrs` (owned, not resized during the call) and, through the iovecs, into
            // the segments, which borrow from `items`' lifetime 'a and so outlive this call. The
            // kernel only reads them.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.msgs[at..n].as_mut_ptr(),
                    (n - at) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if r > 0 {
                at += r as usize;
                out.sent += r as usize;
                continue;
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) | Some(libc::ENOBUFS) => {
                    for item in &items[at..n] {
                        on_refused(item, Refusal::BufferFull);
                    }
                    out.buffer_full += n - at;
                    return false;
                }
                _ => {
                    // The first message failed on its own (bad or unreachable destination);
                    // the rest may still go.
                    on_refused(&items[at], Refusal::Failed);
                    out.failed += 1;
                    at += 1;
                }
            }
        }
        true
    }
}

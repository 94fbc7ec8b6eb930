//! Batched sending: `sendmmsg`, each datagram gathered from up to `N` segments (one iovec each),
//! so every copy of a packet can reference one shared payload; with UDP GSO (`UDP_SEGMENT`,
//! Linux 4.18), consecutive datagrams to one destination go as one message that the kernel
//! splits (or a NIC with segmentation offload does), entering the stack once per burst.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};

use crate::sockaddr::write_sockaddr;

/// Segments per datagram that [`SendBatch`] has room for unless told otherwise: the four a
/// corecast transmit is made of (rewritten header, CSRCs and extension, rewritten codec prefix,
/// rest of the payload).
pub const SEGMENTS: usize = 4;

/// The most datagrams one GSO message may carry (the kernel's `UDP_MAX_SEGMENTS`).
pub const MAX_GSO_SEGMENTS: usize = 64;

/// The most bytes one GSO message may carry: an IPv4 datagram's payload limit, less a margin
/// for IPv6's larger header.
pub const MAX_GSO_BYTES: usize = 65_000;

/// `UDP_SEGMENT` (linux/udp.h): the option and the control message that set the GSO size.
const UDP_SEGMENT: libc::c_int = 103;

/// One datagram to send: where to, and its bytes as segments sent back to back. Empty segments
/// are skipped (they would cost the kernel an iovec each for nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram<'a, const N: usize = SEGMENTS> {
    /// The destination.
    pub dest: SocketAddr,
    /// The datagram's bytes, in order.
    pub segments: [&'a [u8]; N],
}

impl<const N: usize> Datagram<'_, N> {
    /// The datagram's length.
    pub fn len(&self) -> usize {
        self.segments.iter().map(|s| s.len()).sum()
    }

    /// A datagram of no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
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
    /// `sendmmsg` (and `sendmsg`) calls made.
    pub syscalls: u32,
    /// Messages the kernel took: one per datagram without GSO, one per burst with it.
    pub messages: usize,
    /// Messages the kernel took that carried more than one datagram (GSO).
    pub bursts: usize,
    /// Datagrams those messages carried.
    pub burst_datagrams: usize,
    /// Datagrams refused with [`Refusal::BufferFull`].
    pub buffer_full: usize,
    /// Datagrams refused with [`Refusal::Failed`].
    pub failed: usize,
    /// GSO messages the kernel refused as such (EIO: the route's device cannot checksum them;
    /// EINVAL/EMSGSIZE: over its limits), whose datagrams were then sent one by one.
    pub gso_refused: usize,
}

/// The outcome of several sends, added up.
impl std::ops::AddAssign for SendOutcome {
    fn add_assign(&mut self, o: SendOutcome) {
        self.sent += o.sent;
        self.syscalls += o.syscalls;
        self.messages += o.messages;
        self.bursts += o.bursts;
        self.burst_datagrams += o.burst_datagrams;
        self.buffer_full += o.buffer_full;
        self.failed += o.failed;
        self.gso_refused += o.gso_refused;
    }
}

/// Whether the kernel takes UDP GSO on `socket` (`UDP_SEGMENT`, Linux 4.18): `Err` says why not.
/// A route whose device cannot checksum segments still refuses a message at send time
/// ([`SendOutcome::gso_refused`]); its datagrams then go one by one.
pub fn gso_supported(socket: impl AsFd) -> io::Result<()> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes (one c_int) into `value` and the length
    // into `len`, both alive across the call.
    let r = unsafe {
        libc::getsockopt(
            socket.as_fd().as_raw_fd(),
            libc::SOL_UDP,
            UDP_SEGMENT,
            &mut value as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Room for one `UDP_SEGMENT` control message (a `cmsghdr` and a `u16`), in u64s so it is
/// aligned as `cmsghdr` needs.
const CONTROL_WORDS: usize = 4;

/// Which items one message carries, and where their iovecs start.
#[derive(Clone, Copy, Debug, Default)]
struct Span {
    first_item: usize,
    items: usize,
    first_iov: usize,
    /// Bytes of each datagram but the last (the GSO size).
    size: usize,
}

/// Preallocated headers for `sendmmsg`: up to `capacity` messages per call, each a datagram of
/// up to `N` segments or, with GSO, a burst of up to `max_segments` datagrams to one
/// destination. Allocated once; sending writes them in place.
pub struct SendBatch<const N: usize = SEGMENTS> {
    msgs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    /// Where each item's iovecs start (and, one past the last, where they end), per chunk.
    item_iovs: Vec<usize>,
    addrs: Vec<libc::sockaddr_storage>,
    controls: Vec<[u64; CONTROL_WORDS]>,
    spans: Vec<Span>,
    /// Messages laid out for the chunk being sent.
    spans_laid: usize,
    /// Datagrams per GSO message at most; 1 sends each on its own.
    max_segments: usize,
}

// SAFETY: the raw pointers inside are only meaningful during `send`, which sets them before the
// call and uses them only within it; between calls the batch holds no borrowed data, so moving
// it to another thread is sound.
unsafe impl<const N: usize> Send for SendBatch<N> {}

impl<const N: usize> SendBatch<N> {
    /// A batch that sends each datagram as its own message.
    ///
    /// # Panics
    /// If `capacity` or `N` is zero.
    pub fn with_capacity(capacity: usize) -> SendBatch<N> {
        SendBatch::with_gso(capacity, 1)
    }

    /// A batch that sends consecutive datagrams to one destination as one GSO message of up
    /// to `max_segments` (at most [`MAX_GSO_SEGMENTS`]) when every one but the last has the
    /// first one's length; 1 turns GSO off. Check the socket with [`gso_supported`] first.
    ///
    /// # Panics
    /// If `capacity`, `N` or `max_segments` is zero, or `max_segments` is over
    /// [`MAX_GSO_SEGMENTS`].
    pub fn with_gso(capacity: usize, max_segments: usize) -> SendBatch<N> {
        assert!(capacity > 0, "a send batch holds at least one message");
        assert!(N > 0, "a datagram has at least one segment");
        assert!(
            (1..=MAX_GSO_SEGMENTS).contains(&max_segments),
            "a GSO message carries 1 to {MAX_GSO_SEGMENTS} datagrams"
        );
        // SAFETY: these are plain C structs for which all-zero bytes are a valid value.
        let (msg, iov, addr) = unsafe {
            (
                zeroed::<libc::mmsghdr>(),
                zeroed::<libc::iovec>(),
                zeroed::<libc::sockaddr_storage>(),
            )
        };
        // Room for every message to be a full burst, so a chunk of full bursts fills all
        // `capacity` messages (64 × 16 datagrams of 4 segments: 64 KiB of iovecs).
        let datagrams = capacity * max_segments;
        SendBatch {
            msgs: vec![msg; capacity],
            iovs: vec![iov; datagrams * N],
            item_iovs: vec![0; datagrams + 1],
            addrs: vec![addr; capacity],
            controls: vec![[0; CONTROL_WORDS]; capacity],
            spans: vec![Span::default(); capacity],
            spans_laid: 0,
            max_segments,
        }
    }

    /// Messages per `sendmmsg` call.
    pub fn capacity(&self) -> usize {
        self.msgs.len()
    }

    /// Datagrams per GSO message at most (1: GSO off).
    pub fn max_segments(&self) -> usize {
        self.max_segments
    }

    /// Send one datagram per item (`datagram` says what it is, and may be asked more than once
    /// for an item), in `sendmmsg` calls. Never blocks: a full socket buffer refuses the rest.
    /// Each item is either sent or told to `on_refused`, so `sent + buffer_full + failed` is
    /// always `items.len()`. With GSO, consecutive items to one destination are one message
    /// while each has the first one's length (the last may be shorter).
    pub fn send<'a, T>(
        &mut self,
        socket: impl AsFd,
        items: &'a [T],
        mut datagram: impl FnMut(&'a T) -> Datagram<'a, N>,
        mut on_refused: impl FnMut(&'a T, Refusal),
    ) -> SendOutcome {
        let fd = socket.as_fd().as_raw_fd();
        let mut out = SendOutcome::default();
        let mut at = 0;
        while at < items.len() {
            let (taken, room) =
                self.send_chunk(fd, &items[at..], &mut datagram, &mut on_refused, &mut out);
            at += taken;
            if !room {
                break;
            }
        }
        // The socket buffer was full: what is left is refused, as the rest of its chunk was.
        for item in &items[at..] {
            on_refused(item, Refusal::BufferFull);
            out.buffer_full += 1;
        }
        out
    }

    /// Lay out as many of `items` as one `sendmmsg` takes and send them: how many items it
    /// took (sent or refused), and false if the socket buffer was full.
    fn send_chunk<'a, T>(
        &mut self,
        fd: libc::c_int,
        items: &'a [T],
        datagram: &mut impl FnMut(&'a T) -> Datagram<'a, N>,
        on_refused: &mut impl FnMut(&'a T, Refusal),
        out: &mut SendOutcome,
    ) -> (usize, bool) {
        let taken = self.lay_out(items, datagram);
        let messages = self.spans_laid;
        let mut at = 0;
        while at < messages {
            out.syscalls += 1;
            // SAFETY: msgs[at..messages] were filled by `lay_out` with pointers into
            // `self.iovs`, `self.addrs` and `self.controls` (owned, not resized during the
            // call) and, through the iovecs, into the segments, which borrow from `items`'
            // lifetime 'a and so outlive this call. The kernel only reads them.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.msgs[at..messages].as_mut_ptr(),
                    (messages - at) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if r > 0 {
                for span in &self.spans[at..at + r as usize] {
                    out.sent += span.items;
                    if span.items > 1 {
                        out.bursts += 1;
                        out.burst_datagrams += span.items;
                    }
                }
                out.messages += r as usize;
                at += r as usize;
                continue;
            }
            let err = io::Error::last_os_error();
            let span = self.spans[at];
            let span_items = &items[span.first_item..span.first_item + span.items];
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) | Some(libc::ENOBUFS) => {
                    for s in &self.spans[at..messages] {
                        for item in &items[s.first_item..s.first_item + s.items] {
                            on_refused(item, Refusal::BufferFull);
                        }
                        out.buffer_full += s.items;
                    }
                    return (taken, false);
                }
                Some(libc::EIO) | Some(libc::EINVAL) | Some(libc::EMSGSIZE) if span.items > 1 => {
                    out.gso_refused += 1;
                    if !self.send_one_by_one(fd, at, span_items, on_refused, out) {
                        for s in &self.spans[at + 1..messages] {
                            for item in &items[s.first_item..s.first_item + s.items] {
                                on_refused(item, Refusal::BufferFull);
                            }
                            out.buffer_full += s.items;
                        }
                        return (taken, false);
                    }
                    at += 1;
                }
                _ => {
                    // The message failed on its own (bad or unreachable destination); the
                    // rest may still go.
                    for item in span_items {
                        on_refused(item, Refusal::Failed);
                    }
                    out.failed += span.items;
                    at += 1;
                }
            }
        }
        (taken, true)
    }

    /// Send the datagrams of the GSO message `m` (laid out for `items`) one `sendmsg` each;
    /// false if the socket buffer filled (the rest of them refused).
    fn send_one_by_one<'a, T>(
        &mut self,
        fd: libc::c_int,
        m: usize,
        items: &'a [T],
        on_refused: &mut impl FnMut(&'a T, Refusal),
        out: &mut SendOutcome,
    ) -> bool {
        let span = self.spans[m];
        let mut hdr = self.msgs[m].msg_hdr;
        hdr.msg_control = std::ptr::null_mut();
        hdr.msg_controllen = 0;
        let mut k = 0;
        while k < items.len() {
            let (start, end) = (
                self.item_iovs[span.first_item + k],
                self.item_iovs[span.first_item + k + 1],
            );
            hdr.msg_iov = self.iovs[start..].as_mut_ptr();
            hdr.msg_iovlen = (end - start) as _;
            out.syscalls += 1;
            // SAFETY: `hdr` points at this batch's address and iovecs for the message (owned,
            // not resized during the call) and through them at the items' segments, alive for
            // 'a; the kernel only reads them.
            let r = unsafe { libc::sendmsg(fd, &hdr, libc::MSG_DONTWAIT) };
            if r >= 0 {
                out.sent += 1;
                out.messages += 1;
                k += 1;
                continue;
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EAGAIN) | Some(libc::ENOBUFS) => {
                    for item in &items[k..] {
                        on_refused(item, Refusal::BufferFull);
                    }
                    out.buffer_full += items.len() - k;
                    return false;
                }
                _ => {
                    on_refused(&items[k], Refusal::Failed);
                    out.failed += 1;
                    k += 1;
                }
            }
        }
        true
    }

    /// Fill the message headers for a prefix of `items`: how many items they hold. Sets
    /// `spans_laid`.
    fn lay_out<'a, T>(
        &mut self,
        items: &'a [T],
        datagram: &mut impl FnMut(&'a T) -> Datagram<'a, N>,
    ) -> usize {
        let max_datagrams = self.item_iovs.len() - 1;
        let mut m = 0;
        let mut i = 0;
        let mut iov = 0;
        // The open message: its destination, GSO size, datagrams and bytes so far.
        let mut open: Option<(SocketAddr, usize, usize, usize)> = None;
        while i < items.len() && i < max_datagrams {
            let d = datagram(&items[i]);
            let len = d.len();
            let joins = open.is_some_and(|(dest, size, count, bytes)| {
                dest == d.dest
                    && len <= size
                    && count < self.max_segments
                    && bytes + len <= MAX_GSO_BYTES
            });
            if !joins {
                if m == self.msgs.len() {
                    break;
                }
                if open.is_some() {
                    self.close(m - 1);
                }
                let addr_len = write_sockaddr(&d.dest, &mut self.addrs[m]);
                let hdr = &mut self.msgs[m].msg_hdr;
                hdr.msg_name = &mut self.addrs[m] as *mut _ as *mut libc::c_void;
                hdr.msg_namelen = addr_len;
                hdr.msg_iov = self.iovs[iov..].as_mut_ptr();
                hdr.msg_flags = 0;
                self.spans[m] = Span {
                    first_item: i,
                    items: 0,
                    first_iov: iov,
                    size: len,
                };
                open = Some((d.dest, len, 0, 0));
                m += 1;
            }
            self.item_iovs[i] = iov;
            for seg in d.segments.iter().filter(|s| !s.is_empty()) {
                self.iovs[iov] = libc::iovec {
                    iov_base: seg.as_ptr() as *mut libc::c_void,
                    iov_len: seg.len(),
                };
                iov += 1;
            }
            self.item_iovs[i + 1] = iov;
            self.spans[m - 1].items += 1;
            let (dest, size, count, bytes) = open.expect("a message is open");
            // A shorter datagram can only be a burst's last.
            open = (len == size).then_some((dest, size, count + 1, bytes + len));
            if open.is_none() {
                self.close(m - 1);
            }
            i += 1;
        }
        if open.is_some() {
            self.close(m - 1);
        }
        self.spans_laid = m;
        i
    }

    /// Finish message `m`'s header: its iovecs, and the GSO size when it carries more than one
    /// datagram.
    fn close(&mut self, m: usize) {
        let span = self.spans[m];
        let end = self.item_iovs[span.first_item + span.items];
        let hdr = &mut self.msgs[m].msg_hdr;
        hdr.msg_iovlen = (end - span.first_iov) as _;
        if span.items < 2 {
            hdr.msg_control = std::ptr::null_mut();
            hdr.msg_controllen = 0;
            return;
        }
        let control = &mut self.controls[m];
        hdr.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        // SAFETY: CMSG_SPACE of a u16 (24 bytes) fits the control buffer (32 bytes, aligned
        // for cmsghdr); CMSG_FIRSTHDR of a header whose control length covers it points at
        // its start, and CMSG_DATA inside it, with room for the u16 written.
        unsafe {
            hdr.msg_controllen = libc::CMSG_SPACE(size_of::<u16>() as u32) as _;
            let cmsg = libc::CMSG_FIRSTHDR(hdr);
            (*cmsg).cmsg_level = libc::SOL_UDP;
            (*cmsg).cmsg_type = UDP_SEGMENT;
            (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut u16, span.size as u16);
        }
    }
}

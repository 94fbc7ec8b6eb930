//! Batched UDP syscalls (Linux): `sendmmsg` with up to four iovecs per message, so every copy of a
//! packet references the one shared payload, and `recvmmsg` into caller-owned buffers.
//!
//! This is the only module with `unsafe`: the kernel takes raw pointers. Every pointer handed to
//! it points into a slice borrowed for the duration of the call, and the header arrays are owned
//! by the batch and not resized while a call is in flight.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

use corecast_engine::{DropReason, RxPacket, Transmit};

/// Outcome of sending one batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendOutcome {
    pub sent: usize,
    pub syscalls: u32,
    /// Messages the kernel refused with EAGAIN/ENOBUFS (socket buffer full).
    pub buffer_full: usize,
    /// Messages refused for another reason (e.g. no route).
    pub failed: usize,
}

/// Preallocated headers for `sendmmsg`.
pub struct SendBatch {
    msgs: Vec<libc::mmsghdr>,
    iovs: Vec<[libc::iovec; 4]>,
    addrs: Vec<libc::sockaddr_storage>,
}

// The raw pointers inside are only meaningful during `send`; between calls the batch holds no
// borrowed data, so moving it to another thread is sound.
unsafe impl Send for SendBatch {}

impl SendBatch {
    pub fn with_capacity(capacity: usize) -> SendBatch {
        assert!(capacity > 0, "a send batch holds at least one message");
        // SAFETY: these are plain C structs for which all-zero bytes are a valid value.
        let (msg, iov, addr) = unsafe {
            (
                zeroed::<libc::mmsghdr>(),
                zeroed::<[libc::iovec; 4]>(),
                zeroed::<libc::sockaddr_storage>(),
            )
        };
        SendBatch {
            msgs: vec![msg; capacity],
            iovs: vec![iov; capacity],
            addrs: vec![addr; capacity],
        }
    }

    /// Send every transmit of one packet (`pkt`, bytes `buf`), in `sendmmsg` calls of up to the
    /// batch's capacity. Never blocks: a full socket buffer drops the rest and counts it. Each
    /// transmit is either sent or told to `on_drop`, so `sent + buffer_full + failed` is always
    /// `transmits.len()`.
    pub fn send(
        &mut self,
        fd: RawFd,
        transmits: &[Transmit],
        pkt: &RxPacket,
        buf: &[u8],
        mut on_drop: impl FnMut(&Transmit, DropReason),
    ) -> SendOutcome {
        let mut out = SendOutcome::default();
        let mut chunks = transmits.chunks(self.msgs.len());
        for chunk in chunks.by_ref() {
            if !self.send_chunk(fd, chunk, pkt, buf, &mut on_drop, &mut out) {
                break;
            }
        }
        // The socket buffer was full: what is left is dropped, as the rest of its chunk was.
        for t in chunks.flatten() {
            on_drop(t, DropReason::SendBufferFull);
            out.buffer_full += 1;
        }
        out
    }

    /// One `sendmmsg` batch (at most the capacity); false if the socket buffer was full.
    fn send_chunk(
        &mut self,
        fd: RawFd,
        transmits: &[Transmit],
        pkt: &RxPacket,
        buf: &[u8],
        on_drop: &mut impl FnMut(&Transmit, DropReason),
        out: &mut SendOutcome,
    ) -> bool {
        let n = transmits.len();
        debug_assert!(n <= self.msgs.len());
        for (i, t) in transmits.iter().enumerate() {
            let segments = t.segments(pkt, buf);
            let mut count = 0;
            for seg in segments.iter().filter(|s| !s.is_empty()) {
                self.iovs[i][count] = libc::iovec {
                    iov_base: seg.as_ptr() as *mut libc::c_void,
                    iov_len: seg.len(),
                };
                count += 1;
            }
            let addr_len = write_sockaddr(&t.dest, &mut self.addrs[i]);
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
            // SAFETY: msgs[at..n] were filled above with pointers into `transmits` (iovecs of
            // `head`), `buf` and `self.addrs`, all alive and unmoved for this call.
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
                    for t in &transmits[at..n] {
                        on_drop(t, DropReason::SendBufferFull);
                    }
                    out.buffer_full += n - at;
                    return false;
                }
                _ => {
                    // The first message failed on its own (bad or unreachable destination);
                    // the rest may still go.
                    on_drop(&transmits[at], DropReason::SendFailed);
                    out.failed += 1;
                    at += 1;
                }
            }
        }
        true
    }
}

/// One received datagram's place in a [`RecvBatch`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Received {
    pub len: usize,
    pub from: Option<SocketAddr>,
    /// The datagram was larger than the buffer and was cut.
    pub truncated: bool,
    /// When the kernel received it (`CLOCK_REALTIME`), if the socket has `SO_TIMESTAMPNS` on.
    pub kernel_time: Option<std::time::Duration>,
}

/// Control-message room for one `SCM_TIMESTAMPNS` (a `cmsghdr` and a `timespec`), as u64s so it is
/// aligned for `cmsghdr`.
const CONTROL_WORDS: usize = 8;

/// Preallocated headers for `recvmmsg`.
pub struct RecvBatch {
    msgs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    addrs: Vec<libc::sockaddr_storage>,
    controls: Vec<[u64; CONTROL_WORDS]>,
}

/// Ask the kernel to timestamp every datagram received on `fd` (`SO_TIMESTAMPNS`).
pub fn enable_receive_timestamps(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid fd and a pointer to an int that lives across the call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &on as *const _ as *const libc::c_void,
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

// As for SendBatch: pointers are only set and used within `recv`.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    pub fn with_capacity(capacity: usize) -> RecvBatch {
        // SAFETY: plain C structs; all-zero is valid.
        let (msg, iov, addr) = unsafe {
            (
                zeroed::<libc::mmsghdr>(),
                zeroed::<libc::iovec>(),
                zeroed::<libc::sockaddr_storage>(),
            )
        };
        RecvBatch {
            msgs: vec![msg; capacity],
            iovs: vec![iov; capacity],
            addrs: vec![addr; capacity],
            controls: vec![[0; CONTROL_WORDS]; capacity],
        }
    }

    pub fn capacity(&self) -> usize {
        self.msgs.len()
    }

    /// Receive up to `bufs.len()` datagrams without blocking; `out[i]` describes `bufs[i]`.
    /// Returns how many arrived (0 when none is waiting).
    pub fn recv(
        &mut self,
        fd: RawFd,
        bufs: &mut [&mut [u8]],
        out: &mut [Received],
    ) -> io::Result<usize> {
        let n = bufs.len().min(self.msgs.len()).min(out.len());
        if n == 0 {
            return Ok(0);
        }
        for (i, buf) in bufs[..n].iter_mut().enumerate() {
            self.iovs[i] = libc::iovec {
                iov_base: buf.as_mut_ptr() as *mut libc::c_void,
                iov_len: buf.len(),
            };
            let hdr = &mut self.msgs[i].msg_hdr;
            hdr.msg_name = &mut self.addrs[i] as *mut _ as *mut libc::c_void;
            hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_iov = &mut self.iovs[i];
            hdr.msg_iovlen = 1;
            hdr.msg_control = self.controls[i].as_mut_ptr() as *mut libc::c_void;
            hdr.msg_controllen = size_of::<[u64; CONTROL_WORDS]>() as _;
            hdr.msg_flags = 0;
            self.msgs[i].msg_len = 0;
        }
        loop {
            // SAFETY: msgs[..n] point into `bufs` (exclusively borrowed) and self.addrs.
            let r = unsafe {
                libc::recvmmsg(
                    fd,
                    self.msgs.as_mut_ptr(),
                    n as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if r >= 0 {
                let r = r as usize;
                for (i, slot) in out[..r].iter_mut().enumerate() {
                    let hdr = &self.msgs[i].msg_hdr;
                    *slot = Received {
                        len: self.msgs[i].msg_len as usize,
                        from: read_sockaddr(&self.addrs[i], hdr.msg_namelen),
                        truncated: hdr.msg_flags & libc::MSG_TRUNC != 0,
                        kernel_time: read_timestamp(hdr),
                    };
                }
                return Ok(r);
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return Ok(0),
                _ => return Err(err),
            }
        }
    }
}

/// The `SCM_TIMESTAMPNS` control message of a received datagram, if there is one.
fn read_timestamp(hdr: &libc::msghdr) -> Option<std::time::Duration> {
    // SAFETY: the kernel filled msg_control/msg_controllen for this message; the CMSG macros walk
    // it within those bounds, and the data of an SCM_TIMESTAMPNS message is a timespec.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts = (libc::CMSG_DATA(cmsg) as *const libc::timespec).read_unaligned();
                return Some(std::time::Duration::new(
                    ts.tv_sec as u64,
                    ts.tv_nsec as u32,
                ));
            }
            cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
        }
    }
    None
}

fn write_sockaddr(addr: &SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { (out as *mut _ as *mut libc::sockaddr_in).write(sin) };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
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
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { (out as *mut _ as *mut libc::sockaddr_in6).write(sin6) };
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

fn read_sockaddr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                sin.sin_addr.s_addr.to_ne_bytes().into(),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                sin6.sin6_addr.s6_addr.into(),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corecast_engine::synth::{VideoShape, Vp8Stream};
    use corecast_engine::{Codec, Nanos, Shard, SourceId, SourceIngress, Ssrc, TransmitBatch};
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    /// One synthetic VP8 packet fanned out to five loopback receivers, ready to send.
    struct Copies {
        receivers: Vec<UdpSocket>,
        sender: UdpSocket,
        pkt: corecast_engine::RxPacket,
        buf: Vec<u8>,
        batch: TransmitBatch,
    }

    fn five_copies() -> Copies {
        let receivers: Vec<UdpSocket> = (0..5)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut shard = Shard::default();
        shard.add_source(SourceId(1), Codec::Vp8).unwrap();
        for (i, r) in receivers.iter().enumerate() {
            let config = corecast_engine::TrackConfig {
                id: corecast_engine::TrackId(i as u32),
                dest: r.local_addr().unwrap(),
                ssrc: Ssrc(100 + i as u32),
                payload_type: 96,
                first_seq: corecast_engine::SeqNo(1),
                first_ts: corecast_engine::RtpTime(1),
            };
            shard.add_track(config, SourceId(1)).unwrap();
        }
        let mut ingress = SourceIngress::new(SourceId(1), Codec::Vp8, 90_000);
        let mut buf = Vec::new();
        Vp8Stream::new(Ssrc(9), 0, 0, VideoShape::default()).next_packet(&mut buf);
        let pkt = ingress.accept(&buf, None, Nanos::ZERO).unwrap().unwrap();
        let mut batch = TransmitBatch::with_capacity(8);
        assert_eq!(shard.fan_out(&pkt, &buf, Nanos::ZERO).fill(&mut batch), 5);
        Copies {
            receivers,
            sender,
            pkt,
            buf,
            batch,
        }
    }

    #[test]
    fn sendmmsg_and_recvmmsg_round_trip_the_spliced_packets() {
        let Copies {
            receivers,
            sender,
            pkt,
            buf,
            batch,
        } = five_copies();
        let expected: Vec<Vec<u8>> = batch
            .as_slice()
            .iter()
            .map(|t| t.to_vec(&pkt, &buf))
            .collect();
        let mut sb = SendBatch::with_capacity(8);
        let out = sb.send(sender.as_raw_fd(), batch.as_slice(), &pkt, &buf, |_, _| {});
        assert_eq!(
            (out.sent, out.syscalls, out.buffer_full, out.failed),
            (5, 1, 0, 0)
        );

        let mut rb = RecvBatch::with_capacity(4);
        for (r, want) in receivers.iter().zip(&expected) {
            r.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            // Wait (bounded) until the datagram is there, then take it with recvmmsg.
            let mut peek = [0u8; 1];
            r.peek_from(&mut peek).unwrap();
            let mut storage = vec![0u8; 2048];
            let mut bufs = [&mut storage[..]];
            let mut got = [Received::default()];
            assert_eq!(rb.recv(r.as_raw_fd(), &mut bufs, &mut got).unwrap(), 1);
            assert_eq!(&storage[..got[0].len], &want[..]);
            assert_eq!(got[0].from, Some(sender.local_addr().unwrap()));
            assert!(!got[0].truncated);
        }
    }

    #[test]
    fn transmits_beyond_the_batch_capacity_are_sent_too() {
        let Copies {
            receivers,
            sender,
            pkt,
            buf,
            batch,
        } = five_copies();

        // Five transmits through a batch with room for two: three sendmmsg calls, all sent.
        let mut sb = SendBatch::with_capacity(2);
        let mut dropped = 0;
        let out = sb.send(sender.as_raw_fd(), batch.as_slice(), &pkt, &buf, |_, _| {
            dropped += 1
        });
        assert_eq!(
            (out.sent, out.syscalls, out.buffer_full, out.failed, dropped),
            (5, 3, 0, 0, 0)
        );
        for r in &receivers {
            r.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let mut got = [0u8; 2048];
            let (n, from) = r.recv_from(&mut got).unwrap();
            assert_eq!(from, sender.local_addr().unwrap());
            assert!(n > 12);
        }
    }

    #[test]
    fn kernel_receive_timestamps_are_read_when_enabled() {
        let r = UdpSocket::bind("127.0.0.1:0").unwrap();
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_receive_timestamps(r.as_raw_fd()).unwrap();
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        s.send_to(&[1u8; 20], r.local_addr().unwrap()).unwrap();
        r.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        r.peek_from(&mut [0u8; 1]).unwrap();
        let mut rb = RecvBatch::with_capacity(1);
        let mut storage = [0u8; 64];
        let mut got = [Received::default()];
        assert_eq!(
            rb.recv(r.as_raw_fd(), &mut [&mut storage[..]], &mut got)
                .unwrap(),
            1
        );
        let at = got[0].kernel_time.expect("a kernel timestamp");
        assert!(
            at >= before - std::time::Duration::from_millis(1),
            "{at:?} vs {before:?}"
        );
    }

    #[test]
    fn recv_reports_truncation_and_an_empty_socket() {
        let r = UdpSocket::bind("127.0.0.1:0").unwrap();
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut rb = RecvBatch::with_capacity(2);
        let mut storage = [0u8; 8];
        let mut got = [Received::default()];
        assert_eq!(
            rb.recv(r.as_raw_fd(), &mut [&mut storage[..]], &mut got)
                .unwrap(),
            0
        );
        s.send_to(&[7u8; 20], r.local_addr().unwrap()).unwrap();
        r.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        r.peek_from(&mut [0u8; 1]).unwrap();
        assert_eq!(
            rb.recv(r.as_raw_fd(), &mut [&mut storage[..]], &mut got)
                .unwrap(),
            1
        );
        assert!(got[0].truncated);
    }
}

//! Batched receiving: `recvmmsg` into caller-owned buffers, with each datagram's sender, whether
//! it was cut, and when the kernel received it.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use crate::sockaddr::read_sockaddr;

/// One received datagram's place in a [`RecvBatch`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// Bytes written into the buffer (at most its length).
    pub len: usize,
    /// The sender, if the kernel said (always, for IPv4 and IPv6 UDP).
    pub from: Option<SocketAddr>,
    /// The datagram was larger than the buffer and was cut.
    pub truncated: bool,
    /// When the kernel received it (`CLOCK_REALTIME`), if the socket has receive timestamps on
    /// ([`crate::enable_receive_timestamps`]).
    pub kernel_time: Option<Duration>,
}

/// Control-message room for one `SCM_TIMESTAMPNS` (a `cmsghdr` and a `timespec`), as u64s so it is
/// aligned for `cmsghdr`.
const CONTROL_WORDS: usize = 8;

/// Preallocated headers for `recvmmsg`: up to `capacity` datagrams per call.
pub struct RecvBatch {
    msgs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    addrs: Vec<libc::sockaddr_storage>,
    controls: Vec<[u64; CONTROL_WORDS]>,
}

// SAFETY: as for SendBatch, the pointers inside are only set and used within `recv`; between
// calls the batch borrows nothing.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    /// Headers for up to `capacity` datagrams per [`RecvBatch::recv`].
    pub fn with_capacity(capacity: usize) -> RecvBatch {
        // SAFETY: plain C structs for which all-zero bytes are a valid value.
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

    /// Datagrams per call at most.
    pub fn capacity(&self) -> usize {
        self.msgs.len()
    }

    /// Receive up to `bufs.len()` datagrams (and at most the capacity, and `out.len()`) without
    /// blocking; `out[i]` describes `bufs[i]`. Returns how many arrived: 0 when none is waiting
    /// (EAGAIN is not an error here).
    pub fn recv(
        &mut self,
        socket: impl AsFd,
        bufs: &mut [&mut [u8]],
        out: &mut [Received],
    ) -> io::Result<usize> {
        let fd = socket.as_fd().as_raw_fd();
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
            // SAFETY: msgs[..n] point into `bufs` (exclusively borrowed for this call) and into
            // self.iovs, self.addrs and self.controls (owned, not resized during the call), each
            // with its true length.
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
fn read_timestamp(hdr: &libc::msghdr) -> Option<Duration> {
    // SAFETY: the kernel filled msg_control/msg_controllen for this message (within the room
    // `recv` gave it); the CMSG macros walk it within those bounds, and the data of an
    // SCM_TIMESTAMPNS message is a timespec, read unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts = (libc::CMSG_DATA(cmsg) as *const libc::timespec).read_unaligned();
                return Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
            }
            cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
        }
    }
    None
}

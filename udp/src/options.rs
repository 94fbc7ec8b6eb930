//! Socket options: kernel receive timestamps and buffer sizes.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd};

/// Ask the kernel to timestamp every datagram received on `socket` (`SO_TIMESTAMPNS`); read back
/// as [`crate::Received::kernel_time`].
pub fn enable_receive_timestamps(socket: impl AsFd) -> io::Result<()> {
    set_int(socket.as_fd().as_raw_fd(), libc::SO_TIMESTAMPNS, 1)
}

/// One of a socket's two buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Buffer {
    /// `SO_RCVBUF`: datagrams that arrived and were not read yet.
    Receive,
    /// `SO_SNDBUF`: datagrams handed to the kernel and not sent yet.
    Send,
}

impl Buffer {
    /// The option that asks, within `net.core.{r,w}mem_max`.
    fn option(self) -> libc::c_int {
        match self {
            Buffer::Receive => libc::SO_RCVBUF,
            Buffer::Send => libc::SO_SNDBUF,
        }
    }

    /// The option that asks past `net.core.{r,w}mem_max`, allowed with `CAP_NET_ADMIN`.
    fn forcing_option(self) -> libc::c_int {
        match self {
            Buffer::Receive => libc::SO_RCVBUFFORCE,
            Buffer::Send => libc::SO_SNDBUFFORCE,
        }
    }

    /// Ask for `bytes` of room; the kernel caps the request at `net.core.{r,w}mem_max`, so read
    /// what was granted with [`Buffer::size`].
    pub fn set_size(self, socket: impl AsFd, bytes: usize) -> io::Result<()> {
        set_int(socket.as_fd().as_raw_fd(), self.option(), clamp_int(bytes))
    }

    /// Ask for `bytes` of room past `net.core.{r,w}mem_max` when the process may
    /// (`CAP_NET_ADMIN`), else as [`Buffer::set_size`] does.
    pub fn force_size(self, socket: impl AsFd, bytes: usize) -> io::Result<()> {
        let fd = socket.as_fd().as_raw_fd();
        set_int(fd, self.forcing_option(), clamp_int(bytes))
            .or_else(|_| set_int(fd, self.option(), clamp_int(bytes)))
    }

    /// The room granted, in the bytes [`Buffer::set_size`] asks for: the kernel reports twice
    /// that (it counts its bookkeeping overhead too), so this is half of what it reports.
    pub fn size(self, socket: impl AsFd) -> io::Result<usize> {
        get_int(socket.as_fd().as_raw_fd(), self.option()).map(|v| v.max(0) as usize / 2)
    }
}

fn clamp_int(bytes: usize) -> libc::c_int {
    libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX)
}

/// `setsockopt(fd, SOL_SOCKET, option, &value)`.
fn set_int(fd: libc::c_int, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: setsockopt reads one c_int from the pointer we pass, with its size; `value` lives
    // across the call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            &value as *const libc::c_int as *const libc::c_void,
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `getsockopt(fd, SOL_SOCKET, option)` of an int option.
fn get_int(fd: libc::c_int, option: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes (one c_int) into `value` and the length
    // into `len`, both alive across the call.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            &mut value as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    if r == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

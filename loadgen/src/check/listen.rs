//! The I/O around the [`Checker`]: one UDP socket, read until a limit or a stop, with a live line
//! a second and a line per event.

use std::io::{self, Write};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use corecast_engine::Nanos;
use corecast_udp::Buffer;
use socket2::{Domain, Socket, Type};

use super::checker::Checker;
use crate::Stop;

/// How long one read waits: how soon a stop or a limit is noticed on a silent socket.
const POLL: Duration = Duration::from_millis(50);
/// Event lines printed in one second at most; the rest are counted in the live line.
const EVENT_LINES_PER_SECOND: u32 = 20;
/// Receive buffer asked for, so a keyframe's burst is not lost while a line is printed.
const RCVBUF: usize = 4 << 20;
const SECOND: Nanos = Nanos::from_millis(1000);

/// When the check ends, besides a stop.
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    pub duration: Option<Duration>,
    /// RTP packets received.
    pub packets: Option<u64>,
}

/// A UDP socket bound to `addr` (IPv4 or IPv6; an IPv6 one takes only IPv6), reads timing out
/// after 50 ms so the read loop notices a stop or a limit.
pub fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // The kernel may give less (net.core.rmem_max); what it gives is enough to start.
    let _ = Buffer::Receive.set_size(&socket, RCVBUF);
    socket.bind(&addr.into())?;
    let socket: UdpSocket = socket.into();
    socket.set_read_timeout(Some(POLL))?;
    Ok(socket)
}

/// Feed `checker` every datagram `socket` receives until `stop` is triggered or a limit is
/// reached, writing live lines to `live`. Times are from the start of this call.
pub fn run(
    socket: &UdpSocket,
    checker: &mut Checker,
    limits: Limits,
    stop: &Stop,
    live: &mut impl Write,
) -> io::Result<()> {
    let start = Instant::now();
    let clock = || Nanos(start.elapsed().as_nanos() as u64);
    let duration = limits.duration.map(|d| Nanos(d.as_nanos() as u64));
    let mut buf = vec![0u8; 65_536];
    let mut next_line = SECOND;
    let mut last_received = 0;
    let mut lines_this_second = 0;
    let mut not_shown = 0u64;
    loop {
        let now = clock();
        if stop.is_triggered()
            || duration.is_some_and(|d| now >= d)
            || limits
                .packets
                .is_some_and(|n| checker.counts().received >= n)
        {
            return Ok(());
        }
        if now >= next_line {
            let c = checker.counts();
            let shown = if not_shown > 0 {
                format!("  ({not_shown} events not shown)")
            } else {
                String::new()
            };
            let _ = writeln!(
                live,
                "check: {:6.1} s  packets {} (+{})  keyframes {}  lost {}  gaps {}  problems {}{shown}",
                now.0 as f64 / 1e9,
                c.received,
                c.received - last_received,
                c.keyframes,
                c.lost,
                c.gaps,
                c.problems(),
            );
            last_received = c.received;
            lines_this_second = 0;
            not_shown = 0;
            next_line = next_line.saturating_add(SECOND);
            if next_line <= now {
                next_line = now.saturating_add(SECOND);
            }
        }
        match socket.recv(&mut buf) {
            Ok(n) => checker.feed(&buf[..n], clock()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
        while let Some(event) = checker.poll_event() {
            if lines_this_second < EVENT_LINES_PER_SECOND {
                lines_this_second += 1;
                let _ = writeln!(live, "check: {:8.3} s  {}", event.at_s, event.what);
            } else {
                not_shown += 1;
            }
        }
    }
}

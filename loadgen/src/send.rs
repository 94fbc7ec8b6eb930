//! The sending side: one thread paces every source's stream on a deadline schedule and answers
//! keyframe requests.
//!
//! Source `i`'s frame `k` is due at `start + (i / S + k) × frame_interval` (sources are spread
//! over one frame interval so their bursts do not coincide). The thread sleeps until the earliest
//! due frame (on the run's [`Stop`], so stopping is immediate), then sends that frame's packets
//! back to back, each stamped with the send time just before its `sendto`. A frame sent late is
//! sent at once and counted in `late_frames`; the schedule does not slip, so the average rate
//! holds.
//!
//! Before building a frame, the thread reads whatever RTCP has arrived on that source's socket
//! (non-blocking): a PLI or FIR makes the frame a keyframe.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use corecast_engine::rtcp::{self, RtcpPacket};

use super::stream::SourceStream;
use super::Stop;

/// A frame sent this much after its due time counts as late.
const LATE: Duration = Duration::from_millis(5);

/// One source: its stream, its socket and where it sends.
#[derive(Debug)]
pub struct SourceSender {
    pub stream: SourceStream,
    /// Non-blocking; RTCP from the node arrives here.
    pub socket: UdpSocket,
    pub target: SocketAddr,
}

/// Live counters, read by the orchestrator for progress.
#[derive(Debug, Default)]
pub struct SendProgress {
    pub packets: AtomicU64,
}

/// What the sending thread did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SendOutcome {
    /// Packets sent, per source.
    pub sent: Vec<u64>,
    pub frames: u64,
    pub keyframes: u64,
    /// PLIs and FIRs received from the node.
    pub keyframe_requests: u64,
    pub late_frames: u64,
    /// Sends retried because the socket buffer was full.
    pub send_retries: u64,
    /// When sending started and ended, on the run's clock.
    pub started: Duration,
    pub ended: Duration,
}

/// Send until `until` (on `origin`'s clock) or until `stop`; triggers `stop` when done, so every
/// other part of the run ends with it.
pub fn run(
    mut sources: Vec<SourceSender>,
    origin: Instant,
    until: Option<Duration>,
    stop: &Stop,
    progress: &SendProgress,
) -> io::Result<SendOutcome> {
    let result = send_all(&mut sources, origin, until, stop, progress);
    stop.trigger();
    result
}

fn send_all(
    sources: &mut [SourceSender],
    origin: Instant,
    until: Option<Duration>,
    stop: &Stop,
    progress: &SendProgress,
) -> io::Result<SendOutcome> {
    let mut out = SendOutcome {
        started: origin.elapsed(),
        ..SendOutcome::default()
    };
    let n = sources.len().max(1) as u32;
    let mut due: Vec<Duration> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| out.started + s.stream.shape.frame_interval() * i as u32 / n)
        .collect();
    let mut buf = Vec::with_capacity(2048);
    let mut rtcp_buf = [0u8; 1500];
    let mut total = 0u64;
    loop {
        let now = origin.elapsed();
        if stop.is_triggered() || until.is_some_and(|u| now >= u) {
            break;
        }
        let (i, &next) = due
            .iter()
            .enumerate()
            .min_by_key(|(_, d)| **d)
            .expect("at least one source");
        if next > now {
            let wait = until.map_or(next - now, |u| (next - now).min(u - now));
            stop.wait(wait);
            continue;
        }
        let s = &mut sources[i];
        out.keyframe_requests += read_rtcp(s, &mut rtcp_buf);
        if now > next + LATE {
            out.late_frames += 1;
        }
        let packets = s.stream.start_frame();
        for _ in 0..packets {
            buf.clear();
            let send_ns = origin.elapsed().as_nanos() as u64;
            s.stream.next_packet(send_ns, &mut buf);
            loop {
                match s.socket.send_to(&buf, s.target) {
                    Ok(_) => break,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        out.send_retries += 1;
                        std::thread::yield_now();
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        return Err(io::Error::new(
                            e.kind(),
                            format!("cannot send to {}: {e}", s.target),
                        ))
                    }
                }
            }
        }
        total += packets as u64;
        progress.packets.store(total, Ordering::Relaxed);
        due[i] += s.stream.shape.frame_interval();
    }
    out.ended = origin.elapsed();
    out.sent = sources.iter().map(|s| s.stream.packets()).collect();
    out.frames = sources.iter().map(|s| s.stream.frames()).sum();
    out.keyframes = sources.iter().map(|s| s.stream.keyframes()).sum();
    Ok(out)
}

/// Read the RTCP waiting on a source's socket; a PLI or FIR asks for a keyframe. Returns how
/// many requests arrived.
fn read_rtcp(s: &mut SourceSender, buf: &mut [u8]) -> u64 {
    let mut requests = 0;
    loop {
        match s.socket.recv_from(buf) {
            Ok((n, _)) => {
                for p in rtcp::packets(&buf[..n]) {
                    if let Ok(RtcpPacket::Pli { .. } | RtcpPacket::Fir { .. }) = p {
                        requests += 1;
                        s.stream.request_keyframe();
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // WouldBlock (nothing waiting) or an ICMP error reported late: nothing to read.
            Err(_) => return requests,
        }
    }
}

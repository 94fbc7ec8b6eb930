//! A shard worker: one thread (pinned to a core) that owns an engine `Shard` and one UDP socket.
//!
//! A plain loop over the engine's `Shard`: apply control commands, then take the packets of its
//! queue in order, fan each run of one source's out with the engine and send the copies with
//! `sendmmsg`, a subscriber's copies of a run as one UDP GSO message (`forward`); hand
//! subscribers' RTCP from the same socket to the engine (`Shard::handle_rtcp`); run the engine's
//! due timeouts (switch deadlines); drain its events (switches applied and timed out go to the
//! control thread, keyframes wanted to ingest) and, at an interval, snapshot its counters. With
//! nothing to do it busy-polls for `--spin-us`, then parks in `mio::Poll` until a producer wakes
//! it or the engine's next timeout: an idle shard burns no CPU.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corecast_engine::history::HistoryConfig;
use corecast_engine::rtcp::{self, SourceClock};
use corecast_engine::shard::ShardEvent as EngineEvent;
use corecast_engine::shard::{RepairCounters, ReplayCounters};
use corecast_engine::{
    Codec, ControlError, DropReason, JoinPolicy, Layout, Nanos, RxPacket, Shard, SourceCounters,
    SourceId, SwitchOutcome, TrackConfig, TrackId, TrackInfo, Transmit, TransmitBatch, MAX_RUN,
};
use corecast_udp::{Received, RecvBatch, SendBatch};
use corecast_webrtc::ice::{Credentials, IceConfig, IceEvent, ViewerKey};
use crossbeam_queue::ArrayQueue;
use mio::{Events, Interest, Poll, Token};

use crate::clock::Clock;
use crate::ingest::IngestLink;
use crate::pool::Slot;
use crate::wake::Wake;
use crate::webrtc::{HandshakeInput, HandshakeTx};

mod commands;
mod forward;
mod repair;
mod rtx;
mod viewers;

pub use repair::HeldSlot;
pub use rtx::RtxStream;
use viewers::{Arrival, Viewers};
pub use viewers::{ViewerIo, ViewerKeys};

/// Packets taken before commands and RTCP get a turn.
const PACKETS_PER_TURN: usize = 256;
/// Copies sent before commands and the socket get a turn (tens of milliseconds of sending):
/// with 10,000 viewers on a source, 256 packets are 2.56 million copies, seconds in which
/// consent checks would pile up unread in the socket's buffer until the kernel dropped them
/// and the viewers' consent expired (measured with 5,000 viewers on each of two sources:
/// 3,711 of 39,998 checks answered before this bound, no viewer removed after).
const COPIES_PER_TURN: u64 = 65_536;
/// Copies sealed for viewers per `sendmmsg` at most (a batch of more goes in chunks): 768 KiB
/// of seal arena reserved per shard for the largest copies, of which a batch of 1,200-byte
/// copies touches 304 KiB.
const SEAL_SLOTS: usize = 256;
const RTCP_BATCH: usize = 16;
/// Batches read from the shard's socket per turn at most, while each comes back full: a
/// burst of checks (a few thousand viewers' consent at once) is taken in one turn, and a
/// flood cannot hold the shard off its queue for longer than 1,024 datagrams take.
const RTCP_BATCHES_PER_TURN: usize = 64;
const RTCP_BUF: usize = 1500;
const SOCKET: Token = Token(0);
/// Room for one sender report of each of this many sources between two turns of a shard (a
/// shard with viewers turns at least once per sender report interval); a full queue drops the
/// report, counted by ingest as the source's `queue_full` RTCP drop, and its next replaces it.
pub const SOURCE_CLOCK_QUEUE: usize = 1024;
pub const WAKER: Token = Token(1);

pub enum ShardCommand {
    AddSource(SourceId, Codec, JoinPolicy),
    RemoveSource(SourceId),
    /// New tracks and their sources: a batch of subscribers is one command per shard, so it
    /// needs room for one in each queue however large it is.
    AddTracks(Vec<(TrackConfig, SourceId)>),
    RemoveTrack(TrackId),
    Switch(TrackId, SourceId),
    /// A viewer's video (`lead`) and audio (`follower`) to a new channel's sources: the audio
    /// moves at the first audio packet after the video's switch is applied.
    SwitchTogether {
        lead: (TrackId, SourceId),
        follower: (TrackId, SourceId),
    },
    CancelSwitch(TrackId),
    /// A WHEP viewer was admitted: answer its STUN checks.
    ExpectViewer {
        viewer: ViewerKey,
        local: Credentials,
        remote_ufrag: String,
    },
    /// The viewer's DTLS handshake finished: its tracks start, sealed with its keys.
    SecureViewer {
        viewer: ViewerKey,
        keys: Box<ViewerKeys>,
        tracks: Vec<(TrackConfig, SourceId)>,
        /// The tracks that send their resends as RFC 4588 retransmissions.
        rtx: Vec<(TrackId, RtxStream)>,
    },
    /// The viewer is gone: its checks are refused and its keys dropped (its tracks are removed
    /// with `RemoveTrack`).
    RemoveViewer(ViewerKey),
    /// A connected viewer that ICE moved to `dest`: its tracks' copies (and the RTCP taken
    /// about them) follow it; its keys and SRTP state stay as they are.
    MoveViewer {
        tracks: Vec<TrackId>,
        dest: SocketAddr,
    },
}

/// Send and receive counters of the worker (the engine counts packets per track and source).
#[derive(Clone, Copy, Debug, Default)]
pub struct ShardIo {
    pub packets_in: u64,
    pub copies_sent: u64,
    pub batches: u64,
    pub syscalls: u64,
    pub send_buffer_full: u64,
    pub send_failed: u64,
    /// Messages that carried more than one copy (UDP GSO), and the copies they carried.
    pub gso_messages: u64,
    pub gso_copies: u64,
    /// GSO messages the kernel refused, whose copies then went one `sendmsg` each.
    pub gso_refused: u64,
    pub rtcp_in: u64,
    /// PLI/FIR requests from subscribers (the engine's count).
    pub keyframe_requests: u64,
    /// PLI/FIR requests naming a subscriber's SSRC that came from another address: ignored
    /// (the engine's count).
    pub rtcp_wrong_sender: u64,
    /// Switches that waited for the old source to finish its frame (the engine's count).
    pub switches_deferred: u64,
    /// Resends (answers to NACKs) the kernel took, and those it refused or that could not be
    /// sealed.
    pub resends_sent: u64,
    pub resends_refused: u64,
    /// Replayed copies the kernel refused, or that could not be sealed.
    pub replays_refused: u64,
}

impl ShardIo {
    /// Count what one `SendBatch::send` did but the datagrams it sent (the caller counts
    /// those, by kind).
    fn count_send(&mut self, out: &corecast_udp::SendOutcome) {
        self.syscalls += out.syscalls as u64;
        self.send_buffer_full += out.buffer_full as u64;
        self.send_failed += out.failed as u64;
        self.gso_messages += out.bursts as u64;
        self.gso_copies += out.burst_datagrams as u64;
        self.gso_refused += out.gso_refused as u64;
    }
}

/// Forwarding latency in microseconds: from the kernel's receive timestamp of a packet to the
/// return of the `sendmmsg` that carried a copy, one count per copy.
pub type LatencyHistogram = hdrhistogram::Histogram<u64>;

/// Latency from 1 µs to 60 s with 2 significant digits: a few KiB, and p99 to within 1%.
pub fn new_latency_histogram() -> LatencyHistogram {
    LatencyHistogram::new_with_bounds(1, 60_000_000, 2).expect("static bounds are valid")
}

/// What a shard hands the telemetry thread at each stats interval.
pub struct ShardSnapshot {
    pub shard: u32,
    pub tracks: Vec<TrackInfo>,
    pub sources: Vec<(SourceId, SourceCounters)>,
    pub io: ShardIo,
    /// Copies per GSO message at most (1: GSO off).
    pub gso_segments: u32,
    /// NACKs answered and refused, by reason (the engine's counts).
    pub repair: RepairCounters,
    pub replay: ReplayCounters,
    /// Packets the shard's histories hold, and their bytes.
    pub history_packets: usize,
    pub history_bytes: usize,
    pub webrtc: ViewerIo,
    /// The ICE agent's STUN counters.
    pub ice: corecast_webrtc::ice::IceCounters,
    pub drops: corecast_engine::DropCounts,
    /// Latency of the copies sent since the previous snapshot.
    pub latency: LatencyHistogram,
    /// Time spent forwarding since start: its rate of change is how busy the shard is.
    pub busy: Duration,
    /// Snapshots that found the telemetry queue full, since start.
    pub snapshots_dropped: u64,
    pub taken_at: Instant,
}

pub enum ShardEvent {
    /// A command the engine refused or the outcome of a switch request.
    SwitchRequested(TrackId, SourceId, Result<SwitchOutcome, ControlError>),
    /// A pending switch was applied at the new source's switch point.
    Switched(TrackId, SourceId),
    /// A pending switch found no switch point within `--switch-timeout` and was cancelled.
    SwitchTimedOut(TrackId, SourceId),
    Refused(ControlError),
    /// ICE chose the address the viewer's media goes to (first nomination or a change).
    ViewerSelected(ViewerKey, SocketAddr),
    /// The viewer's consent expired, or it never passed a check: the control thread removes it.
    ViewerGone(ViewerKey, &'static str),
}

/// What a shard shares with the rest of the node.
pub struct ShardLink {
    pub packets: Arc<ArrayQueue<Arc<Slot>>>,
    pub commands: ArrayQueue<ShardCommand>,
    /// Sources' latest sender reports, from ingest ([`SOURCE_CLOCK_QUEUE`] deep): taken with
    /// the commands, before the shard writes its viewers' sender reports.
    pub source_clocks: Arc<ArrayQueue<(SourceId, SourceClock)>>,
    pub events: ArrayQueue<ShardEvent>,
    /// Counter snapshots for the telemetry thread; full means dropped and counted.
    pub snapshots: ArrayQueue<Box<ShardSnapshot>>,
    pub wake: Arc<Wake>,
    pub stop: AtomicBool,
}

pub struct ShardWorker {
    pub index: u32,
    pub link: Arc<ShardLink>,
    pub ingest: Arc<IngestLink>,
    pub poll: Poll,
    pub socket: mio::net::UdpSocket,
    pub clock: Clock,
    pub batch_size: usize,
    /// Copies of a run sent to one subscriber as one UDP GSO message at most; 1: no GSO, one
    /// datagram per copy and one packet at a time.
    pub gso_segments: usize,
    pub spin: Duration,
    pub snapshot_every: Duration,
    /// How long a pending switch waits for its new source's switch point (`--switch-timeout`).
    pub switch_timeout: Duration,
    /// Least time between two keyframe requests to a source (`--pli-interval`): the shard sends
    /// ingress one wish per source per interval at most.
    pub pli_interval: Duration,
    /// Where DTLS records from viewers go.
    pub handshakes: HandshakeTx,
    /// Consent and connect timeouts of the shard's viewers.
    pub ice: IceConfig,
    /// How much of each source the shard keeps to answer NACKs (`--history-ms`,
    /// `--history-packets`); `None`: nothing kept, NACKs ignored.
    pub history: Option<HistoryConfig>,
}

struct State {
    engine: Shard<HeldSlot>,
    batch: TransmitBatch,
    send: SendBatch,
    recv: RecvBatch,
    rtcp_buf: Vec<u8>,
    /// Copies the kernel refused during the current packet, recorded once its fan-out is done.
    refused: Vec<(Transmit, DropReason)>,
    viewers: Viewers,
    /// The batch entries to send, in order: all but those that failed to seal.
    order: Vec<u32>,
    /// Slots taken from the queue whose packets are not yet fanned out (a run at most).
    carry: VecDeque<Arc<Slot>>,
    /// The packets of the run being fanned out (copied out of `carry`'s slots).
    run: Vec<RxPacket>,
    /// Packets in a run at most: the GSO segments per message, 1 when GSO is off.
    run_max: usize,
    gathered: repair::Gathered,
    /// Events that did not fit the queue; sent first next time.
    backlog: Vec<ShardEvent>,
    io: ShardIo,
    latency: LatencyHistogram,
    busy: Duration,
    snapshots_dropped: u64,
}

impl ShardWorker {
    pub fn run(mut self) {
        let mut engine = Shard::with_handles(Layout::Grouped);
        engine.keep_history(self.history);
        engine.set_switch_timeout(Nanos(self.switch_timeout.as_nanos() as u64));
        engine.set_keyframe_interval(Nanos(self.pli_interval.as_nanos() as u64));
        // With GSO a batch holds `batch_size` messages of up to `gso_segments` copies each.
        let run_max = self.gso_segments.max(1);
        let copies = self.batch_size * run_max;
        let mut s = State {
            engine,
            batch: TransmitBatch::with_capacity(copies),
            send: SendBatch::with_gso(self.batch_size, run_max),
            recv: RecvBatch::with_capacity(RTCP_BATCH),
            rtcp_buf: vec![0; RTCP_BATCH * RTCP_BUF],
            refused: Vec::with_capacity(copies),
            viewers: Viewers::new(SEAL_SLOTS, self.ice),
            order: Vec::with_capacity(SEAL_SLOTS),
            carry: VecDeque::with_capacity(run_max),
            run: Vec::with_capacity(MAX_RUN),
            run_max,
            gathered: repair::Gathered::new(),
            backlog: Vec::new(),
            io: ShardIo::default(),
            latency: new_latency_histogram(),
            busy: Duration::ZERO,
            snapshots_dropped: 0,
        };
        let mut events = Events::with_capacity(16);
        let mut next_snapshot = Instant::now();
        loop {
            let stopping = self.link.stop.load(Ordering::Acquire);
            self.apply_commands(&mut s);
            let turn = Instant::now();
            let mut worked = self.forward(&mut s);
            if worked {
                s.busy += turn.elapsed();
            }
            worked |= self.read_socket(&mut s);
            let now = self.clock.now();
            if s.engine.poll_timeout().is_some_and(|at| at <= now) {
                s.engine.handle_timeout(now);
            }
            if s.viewers.poll_timeout().is_some_and(|at| at <= now) {
                s.viewers.handle_timeout(now);
            }
            if s.engine.replay_due().is_some_and(|at| at <= now) {
                self.send_replays(&mut s, now);
            }
            if s.engine.sender_reports_due().is_some_and(|at| at <= now) {
                self.send_sender_reports(&mut s, now);
            }
            self.drain_events(&mut s);
            self.report(&mut s);
            if Instant::now() >= next_snapshot {
                self.snapshot(&mut s);
                next_snapshot = self.clock.next_boundary(self.snapshot_every);
            }
            if stopping && self.link.packets.is_empty() && s.carry.is_empty() {
                self.snapshot(&mut s);
                return;
            }
            if worked || self.spin_until_work() {
                continue;
            }
            self.link.wake.park();
            if !self.link.packets.is_empty()
                || !self.link.commands.is_empty()
                || self.link.stop.load(Ordering::Acquire)
            {
                self.link.wake.unpark();
                continue;
            }
            let next = [
                s.engine.poll_timeout(),
                s.viewers.poll_timeout(),
                s.engine.sender_reports_due(),
                s.engine.replay_due(),
            ]
            .into_iter()
            .flatten()
            .min();
            let until_timeout =
                next.map(|at| Duration::from_nanos(at.saturating_since(self.clock.now()).0));
            let timeout = next_snapshot
                .saturating_duration_since(Instant::now())
                .min(until_timeout.unwrap_or(Duration::MAX));
            // The socket is in the poll set only while the shard sleeps: a socket in an epoll
            // set has every sent datagram wake its wait queue when the kernel frees it (about
            // 100 ns per copy, measured with benches' rawlimit --sender-in-epoll). RTCP that
            // arrived before the registration is reported by it at once, so none is missed.
            let registry = self.poll.registry();
            let watching = registry
                .register(&mut self.socket, SOCKET, Interest::READABLE)
                .map_err(|e| {
                    tracing::warn!(shard = self.index, "cannot poll the shard socket: {e}")
                })
                .is_ok();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    tracing::error!(shard = self.index, "poll failed: {e}");
                }
            }
            if watching {
                let _ = self.poll.registry().deregister(&mut self.socket);
            }
            self.link.wake.unpark();
        }
    }

    /// Busy-poll the queues for up to `--spin-us`; true if work arrived.
    fn spin_until_work(&self) -> bool {
        if self.spin.is_zero() {
            return false;
        }
        let until = Instant::now() + self.spin;
        while Instant::now() < until {
            if !self.link.packets.is_empty() || !self.link.commands.is_empty() {
                return true;
            }
            std::hint::spin_loop();
        }
        false
    }

    fn apply_commands(&self, s: &mut State) {
        while let Some(cmd) = self.link.commands.pop() {
            let now = self.clock.now();
            commands::apply(
                &mut s.engine,
                &mut s.viewers,
                &mut s.backlog,
                cmd,
                now,
                self.history.is_some(),
            );
        }
        // After the commands: the control thread queues a source's `AddSource` for the shards
        // before ingest learns of the source, so its group is there when its reports come.
        while let Some((source, clock)) = self.link.source_clocks.pop() {
            // A source deleted since is unknown to the engine: nothing left to map.
            let _ = s.engine.set_source_clock(source, Some(clock));
        }
    }

    /// Take every event the engine has: switches applied or timed out go to the control
    /// thread, keyframes wanted to ingest (which coalesces and rate limits them).
    fn drain_events(&self, s: &mut State) {
        while let Some(event) = s.engine.poll_event() {
            match event {
                EngineEvent::SwitchApplied { track, to, .. } => {
                    s.backlog.push(ShardEvent::Switched(track, to))
                }
                EngineEvent::SwitchTimedOut { track, to } => {
                    s.backlog.push(ShardEvent::SwitchTimedOut(track, to))
                }
                EngineEvent::KeyframeWanted { source } => {
                    if self.ingest.keyframe_requests.push(source).is_ok() {
                        self.ingest.wake.notify();
                    }
                }
                // Counted by the engine (`switches_deferred`); its keyframe wish follows.
                EngineEvent::SwitchDeferred { .. } => {}
            }
        }
        while let Some(event) = s.viewers.poll_event() {
            s.backlog.push(match event {
                IceEvent::Selected { viewer, addr } => ShardEvent::ViewerSelected(viewer, addr),
                IceEvent::ConsentExpired { viewer } => {
                    ShardEvent::ViewerGone(viewer, "consent_expired")
                }
                IceEvent::ConnectTimedOut { viewer } => {
                    ShardEvent::ViewerGone(viewer, "connect_timed_out")
                }
            });
        }
    }

    /// Read what arrived on the shard's socket and sort it by its first byte (RFC 7983):
    /// viewers' STUN checks are answered here, their DTLS goes to the handshake thread, their
    /// SRTCP is unprotected, and RTCP (subscribers' plain, viewers' unprotected) goes to the
    /// engine, which finds the track and decides (PLI and FIR become keyframes wanted from the
    /// track's source).
    fn read_socket(&self, s: &mut State) -> bool {
        let mut read = 0;
        for _ in 0..RTCP_BATCHES_PER_TURN {
            match self.read_batch(s) {
                Some(n) if n < RTCP_BATCH => {
                    read += n;
                    break;
                }
                Some(n) => read += n,
                // An error taken is not an empty socket: what queued behind it is read on.
                None => {}
            }
        }
        read > 0
    }

    /// One `recvmmsg` of the shard's socket, sorted as `read_socket` says: how many came, or
    /// `None` when the socket reported an error instead.
    fn read_batch(&self, s: &mut State) -> Option<usize> {
        let mut chunks = s.rtcp_buf.chunks_mut(RTCP_BUF);
        let mut bufs: [&mut [u8]; RTCP_BATCH] =
            std::array::from_fn(|_| chunks.next().expect("rtcp_buf holds a full batch"));
        let mut got = [Received::default(); RTCP_BATCH];
        let n = match s.recv.recv(&self.socket, &mut bufs, &mut got) {
            Ok(n) => n,
            Err(e) => {
                // ICMP errors from unreachable subscribers surface here; they are not ours to fix.
                tracing::debug!(shard = self.index, "shard socket receive: {e}");
                return None;
            }
        };
        for (k, g) in got[..n].iter().enumerate() {
            let bytes = &mut s.rtcp_buf[k * RTCP_BUF..k * RTCP_BUF + g.len];
            let now = self.clock.now();
            let viewer = g.from.filter(|&from| s.viewers.is_viewer(from));
            match (Arrival::of(bytes), g.from) {
                (Arrival::Stun, Some(from)) => {
                    if let Some(response) = s.viewers.handle_stun(bytes, from, now) {
                        if let Err(e) = self.socket.send_to(response, from) {
                            tracing::debug!(shard = self.index, "stun response: {e}");
                        }
                    }
                }
                (Arrival::Dtls, Some(from)) => match s.viewers.viewer_at(from) {
                    Some(viewer) => {
                        let input = HandshakeInput::Datagram {
                            viewer,
                            from,
                            bytes: bytes.to_vec(),
                        };
                        if self.handshakes.try_send(input).is_ok() {
                            s.viewers.io.dtls_forwarded += 1;
                        } else {
                            s.viewers.io.dtls_dropped += 1;
                        }
                    }
                    None => s.viewers.io.dtls_dropped += 1,
                },
                (Arrival::Rtp, Some(from)) if viewer.is_some() => {
                    // Viewers only receive: what they send on RTP's range is SRTCP or nothing.
                    if !rtcp::is_rtcp(bytes) {
                        s.viewers.io.srtcp_dropped += 1;
                        continue;
                    }
                    if let Some(len) = s.viewers.unprotect_rtcp(bytes, from) {
                        s.io.rtcp_in += 1;
                        s.engine.handle_rtcp(&bytes[..len], g.from, now);
                    }
                }
                (Arrival::Rtp, _) if rtcp::is_rtcp(bytes) => {
                    s.io.rtcp_in += 1;
                    s.engine.handle_rtcp(bytes, g.from, now);
                }
                _ => s.viewers.io.unknown_dropped += 1,
            }
        }
        // What the NACKs just taken asked for.
        self.send_resends(s);
        Some(n)
    }

    /// The sender reports due (on each track's source's clock where its source reports, see
    /// `engine/src/shard/reports.rs`): each sealed for its viewer and sent with one `send_to` (one
    /// per track and second, off the batch path).
    fn send_sender_reports(&self, s: &mut State, now: Nanos) {
        let ntp = crate::clock::ntp_now();
        let (viewers, socket) = (&mut s.viewers, &self.socket);
        s.engine
            .write_sender_reports(now, ntp, |track, dest, report| {
                let (bytes, to) = if viewers.is_viewer_track(track) {
                    match viewers.seal_rtcp(track, report) {
                        Some(sealed) => (sealed, dest),
                        None => return,
                    }
                } else {
                    (report, plain_rtcp_address(dest))
                };
                if let Err(e) = socket.send_to(bytes, to) {
                    tracing::debug!("sender report to {to}: {e}");
                }
            });
    }

    fn report(&self, s: &mut State) {
        let mut pending = std::mem::take(&mut s.backlog).into_iter();
        for event in pending.by_ref() {
            if let Err(event) = self.link.events.push(event) {
                s.backlog.push(event);
                break;
            }
        }
        s.backlog.extend(pending);
    }

    /// Hand the telemetry thread this interval's counters. Runs at the stats interval, never per
    /// packet; a full queue drops the snapshot (counted) rather than wait.
    fn snapshot(&self, s: &mut State) {
        let latency = std::mem::replace(&mut s.latency, new_latency_histogram());
        let c = s.engine.counters();
        s.io.keyframe_requests = c.keyframe_requests;
        s.io.rtcp_wrong_sender = c.rtcp_wrong_sender;
        s.io.switches_deferred = c.switches_deferred;
        let snapshot = ShardSnapshot {
            shard: self.index,
            tracks: s.engine.tracks().collect(),
            sources: s.engine.sources().map(|(id, c)| (id, *c)).collect(),
            io: s.io,
            gso_segments: s.run_max as u32,
            repair: s.engine.repair_counters(),
            replay: *s.engine.replay_counters(),
            history_packets: s.engine.history_held().0,
            history_bytes: s.engine.history_held().1,
            webrtc: s.viewers.io,
            ice: s.viewers.ice_counters(),
            drops: s.engine.counters().drops,
            latency,
            busy: s.busy,
            snapshots_dropped: s.snapshots_dropped,
            taken_at: Instant::now(),
        };
        hand_over(
            &self.link.snapshots,
            Box::new(snapshot),
            &mut s.snapshots_dropped,
            &mut s.latency,
        );
    }
}

/// Where a plain RTP subscriber at `dest` takes RTCP: the port after its media port, as its SDP
/// says (`a=rtcp`, RFC 3550 §11), or the media port itself (`a=rtcp-mux`) at 65535. Receivers
/// that answer RTCP where it came from (ffmpeg) then send their reports and NACKs to the
/// shard's socket, where the node reads them.
fn plain_rtcp_address(dest: SocketAddr) -> SocketAddr {
    let mut to = dest;
    if let Some(port) = dest.port().checked_add(1) {
        to.set_port(port);
    }
    to
}

/// Offer a snapshot to the telemetry queue without waiting. When the queue is full the snapshot
/// is dropped and counted, and its latency samples join the next interval's so none is lost.
fn hand_over(
    queue: &ArrayQueue<Box<ShardSnapshot>>,
    snapshot: Box<ShardSnapshot>,
    dropped: &mut u64,
    latency: &mut LatencyHistogram,
) {
    if let Err(lost) = queue.push(snapshot) {
        *dropped += 1;
        let _ = latency.add(&lost.latency);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(latency_us: u64) -> Box<ShardSnapshot> {
        let mut latency = new_latency_histogram();
        latency.record(latency_us).unwrap();
        Box::new(ShardSnapshot {
            shard: 0,
            tracks: Vec::new(),
            sources: Vec::new(),
            io: ShardIo::default(),
            gso_segments: 1,
            repair: RepairCounters::default(),
            replay: ReplayCounters::default(),
            history_packets: 0,
            history_bytes: 0,
            webrtc: ViewerIo::default(),
            ice: Default::default(),
            drops: corecast_engine::DropCounts::default(),
            latency,
            busy: Duration::ZERO,
            snapshots_dropped: 0,
            taken_at: Instant::now(),
        })
    }

    #[test]
    fn a_full_snapshot_queue_drops_and_counts_without_losing_latency() {
        let queue = ArrayQueue::new(1);
        let (mut dropped, mut latency) = (0, new_latency_histogram());
        hand_over(&queue, snapshot(10), &mut dropped, &mut latency);
        assert_eq!((dropped, latency.len()), (0, 0));
        hand_over(&queue, snapshot(20), &mut dropped, &mut latency);
        assert_eq!(dropped, 1, "the second found the queue full");
        assert_eq!(
            latency.len(),
            1,
            "its sample carries over to the next interval"
        );
        assert_eq!(queue.pop().unwrap().latency.max(), 10);
    }
}

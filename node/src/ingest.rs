//! The ingest thread: receives every source's packets, classifies each once with the engine, and
//! hands it to the shards that host the source; sends keyframe requests to sources.
//!
//! A plain loop over the engine's `SourceIngress`: each datagram goes in with its sender's address
//! (the engine latches and drops `wrong_sender`), keyframe requests from the shards and the
//! control thread go in as `request_keyframe`, and whatever PLI the engine hands out
//! (`poll_transmit`, coalesced and rate limited there) is sent with one `send_to`. The thread
//! sleeps until the engine's next timeout or the next counter snapshot.
//!
//! All source sockets sit on one `mio::Poll`. A readable socket is drained with `recvmmsg` in
//! batches, a few batches per turn so one busy source cannot starve the others. An accepted packet
//! is copied once into a pool slot and a reference goes to each shard whose bit is set in the
//! source's shard mask (kept by the control thread). A full shard queue or an exhausted pool
//! drops the packet for that shard and counts it (`queue_full`); ingest never blocks.
//!
//! RTCP from a source (rtcp-mux: on its RTP port) is not forwarded. The sender report of the
//! source's current stream is taken out of each compound (`rtcp::sender_report_of`) as a clock
//! mapping (`rtcp::SourceClock`: NTP, RTP, arrival, epoch) and queued for every shard, which
//! puts its viewers' sender reports on that clock (`engine/src/shard/reports.rs`). RTCP that is
//! truncated or fails validation (`malformed`), or comes from another address than a latched
//! sender's (`wrong_sender`), is dropped and counted apart from RTP's drops; a report a full
//! shard queue could not take counts as `queue_full`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use corecast_engine::codec::parameter_sets::ParameterSets;
use corecast_engine::rtcp::{self, SourceClock};
use corecast_engine::{
    Codec, DropCounts, DropReason, IngressConfig, IngressCounters, Nanos, RxPacket, SourceId,
    SourceIngress, Ssrc,
};
use corecast_udp::{Received, RecvBatch};
use crossbeam_queue::ArrayQueue;
use mio::{Events, Interest, Poll, Token};

use crate::clock::Clock;
use crate::pool::{Pool, Slot, MAX_PACKET};
use crate::wake::Wake;

const RECV_BATCH: usize = 32;
/// Batches read from one socket before the others get a turn.
const BATCHES_PER_TURN: usize = 4;
const WAKER: Token = Token(usize::MAX);

/// A source handed to the ingest thread by the control thread.
pub struct NewSource {
    pub id: SourceId,
    pub codec: Codec,
    pub clock_rate: u32,
    pub latch: bool,
    pub socket: std::net::UdpSocket,
    /// Bit `k` set: shard `k` hosts tracks on (or switching to) this source.
    pub shards: Arc<AtomicU64>,
    /// SSRC the node puts in keyframe requests it sends this source.
    pub rtcp_ssrc: Ssrc,
    /// Where keyframe requests go, if not to the latched sender.
    pub feedback: Option<SocketAddr>,
    /// H.264/H.265 parameter sets given with the source (from the sender's SDP).
    pub parameter_sets: Option<ParameterSets>,
    /// The payload type the source's packets carry, if given (else learned from the stream).
    pub payload_type: Option<u8>,
    /// The payload type of the sender's RFC 4588 retransmissions, if it sends them.
    pub rtx_payload_type: Option<u8>,
}

pub enum IngestCommand {
    AddSource(Box<NewSource>),
    RemoveSource(SourceId),
}

/// Counters of one source as ingest sees them.
#[derive(Clone, Debug, Default)]
pub struct IngestSourceStats {
    pub id: Option<SourceId>,
    pub ingress: IngressCounters,
    /// Drops decided by the node before or after the engine: truncated, queue full.
    pub drops: DropCounts,
    pub sender: Option<SocketAddr>,
    pub keyframe_requests_sent: u64,
    /// RTCP datagrams from the source (any address), and what became of them.
    pub rtcp_packets: u64,
    /// Sender reports of the current stream taken and handed to the shards.
    pub sender_reports: u64,
    /// RTCP dropped, by reason (`malformed`, `wrong_sender`; `queue_full` once per shard that
    /// missed a report).
    pub rtcp_drops: DropCounts,
    /// The payload type the source takes now (given, or learned from the stream).
    pub payload_type: Option<u8>,
    /// Media time between the source's last two keyframes ([`SourceIngress::keyframe_interval`]).
    pub keyframe_interval: Option<Duration>,
    /// H.264/H.265: the parameter sets a decoder needs, as the prelude carries them (the
    /// stream's own once complete, else the configured ones), in decoding order; empty while
    /// none are known. Shared with the previous snapshot while unchanged.
    pub parameter_sets: Arc<[Vec<u8>]>,
}

/// Every source's counters, taken at one instant (on a stats interval boundary).
pub struct IngestSnapshot {
    pub taken_at: Instant,
    pub sources: Vec<IngestSourceStats>,
}

/// What the ingest thread shares with the rest of the node.
pub struct IngestLink {
    pub commands: ArrayQueue<IngestCommand>,
    /// Sources that a subscriber or a pending switch wants a keyframe from.
    pub keyframe_requests: ArrayQueue<SourceId>,
    pub snapshots: ArrayQueue<IngestSnapshot>,
    pub wake: Wake,
    pub stop: AtomicBool,
}

struct Source {
    id: SourceId,
    socket: mio::net::UdpSocket,
    /// The engine's state of the source: sequencing, latching, keyframe requests.
    ingress: SourceIngress,
    /// Whether the engine latches the sender (to log a sender taken after silence).
    latch: bool,
    shards: Arc<AtomicU64>,
    drops: DropCounts,
    rtcp_packets: u64,
    sender_reports: u64,
    rtcp_drops: DropCounts,
    /// The parameter sets last published (see [`IngestSourceStats::parameter_sets`]).
    published_sets: Arc<[Vec<u8>]>,
}

pub struct Ingest {
    poll: Poll,
    link: Arc<IngestLink>,
    sources: HashMap<Token, Source>,
    tokens: HashMap<SourceId, Token>,
    next_token: usize,
    shard_queues: Vec<Arc<ArrayQueue<Arc<Slot>>>>,
    shard_wakes: Vec<Arc<Wake>>,
    /// Each shard's queue of sources' sender reports.
    shard_clocks: Vec<Arc<ArrayQueue<(SourceId, SourceClock)>>>,
    pool: Pool,
    recv: RecvBatch,
    scratch: Vec<u8>,
    received: [Received; RECV_BATCH],
    ready: Vec<Token>,
    clock: Clock,
    pli_interval: Duration,
    stats_every: Duration,
    relatch_after: Duration,
    probation: u32,
    takeover_silence: Duration,
}

/// How the ingest thread is sized and paced.
pub struct IngestSettings {
    pub pool_slots: usize,
    /// Least time between two keyframe requests to one source.
    pub pli_interval: Duration,
    /// Time between counter snapshots for the telemetry thread.
    pub stats_every: Duration,
    /// A latched sender silent this long is forgotten (the source's idle timeout).
    pub relatch_after: Duration,
    /// Packets in sequence a new stream (SSRC) sends before it can replace the current one.
    pub probation: u32,
    /// How long the current stream must be silent before a new one replaces it.
    pub takeover_silence: Duration,
}

impl Ingest {
    pub fn new(
        poll: Poll,
        link: Arc<IngestLink>,
        shard_queues: Vec<Arc<ArrayQueue<Arc<Slot>>>>,
        shard_wakes: Vec<Arc<Wake>>,
        shard_clocks: Vec<Arc<ArrayQueue<(SourceId, SourceClock)>>>,
        clock: Clock,
        settings: IngestSettings,
    ) -> Ingest {
        Ingest {
            poll,
            link,
            sources: HashMap::new(),
            tokens: HashMap::new(),
            next_token: 0,
            shard_queues,
            shard_wakes,
            shard_clocks,
            pool: Pool::new(settings.pool_slots),
            recv: RecvBatch::with_capacity(RECV_BATCH),
            scratch: vec![0; RECV_BATCH * MAX_PACKET],
            received: [Received::default(); RECV_BATCH],
            ready: Vec::new(),
            clock,
            pli_interval: settings.pli_interval,
            stats_every: settings.stats_every,
            relatch_after: settings.relatch_after,
            probation: settings.probation,
            takeover_silence: settings.takeover_silence,
        }
    }

    /// Run until `link.stop` is set.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let mut next_snapshot = Instant::now();
        while !self.link.stop.load(Ordering::Acquire) {
            let timeout = if self.ready.is_empty() {
                Some(self.until_next_timeout(next_snapshot))
            } else {
                Some(Duration::ZERO)
            };
            self.link.wake.park();
            let has_work =
                !self.link.commands.is_empty() || !self.link.keyframe_requests.is_empty();
            let timeout = if has_work {
                Some(Duration::ZERO)
            } else {
                timeout
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    tracing::error!("ingest poll failed: {e}");
                }
            }
            self.link.wake.unpark();
            for event in events.iter() {
                if event.token() != WAKER && !self.ready.contains(&event.token()) {
                    self.ready.push(event.token());
                }
            }
            self.apply_commands();
            self.read_ready();
            self.serve_keyframe_requests();
            if Instant::now() >= next_snapshot {
                self.publish_snapshot();
                next_snapshot = self.clock.next_boundary(self.stats_every);
            }
        }
        self.publish_snapshot();
    }

    /// How long the thread may sleep: until the engine's earliest timeout over the sources
    /// (a rate-limited keyframe request, a probation to give up) or the next snapshot.
    fn until_next_timeout(&self, snapshot: Instant) -> Duration {
        let now = self.clock.now();
        self.sources
            .values()
            .filter_map(|s| s.ingress.poll_timeout())
            .map(|at| Duration::from_nanos(at.saturating_since(now).0))
            .fold(
                snapshot.saturating_duration_since(Instant::now()),
                Duration::min,
            )
    }

    fn apply_commands(&mut self) {
        while let Some(cmd) = self.link.commands.pop() {
            match cmd {
                IngestCommand::AddSource(new) => self.add_source(*new),
                IngestCommand::RemoveSource(id) => {
                    if let Some(token) = self.tokens.remove(&id) {
                        if let Some(mut s) = self.sources.remove(&token) {
                            let _ = self.poll.registry().deregister(&mut s.socket);
                        }
                        self.ready.retain(|&t| t != token);
                    }
                }
            }
        }
    }

    fn add_source(&mut self, new: NewSource) {
        let token = Token(self.next_token);
        self.next_token += 1;
        if let Err(e) = new.socket.set_nonblocking(true) {
            tracing::error!(source = %new.id, "cannot make the ingest socket non-blocking: {e}");
            return;
        }
        if let Err(e) = corecast_udp::enable_receive_timestamps(&new.socket) {
            tracing::warn!(
                source = %new.id,
                "no kernel receive timestamps ({e}); latency is measured from the read instead"
            );
        }
        let mut socket = mio::net::UdpSocket::from_std(new.socket);
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut socket, token, Interest::READABLE)
        {
            tracing::error!(source = %new.id, "cannot poll the ingest socket: {e}");
            return;
        }
        let config = IngressConfig {
            probation: self.probation,
            takeover_silence: Nanos(self.takeover_silence.as_nanos() as u64),
            idle: Nanos(self.relatch_after.as_nanos() as u64),
            payload_type: new.payload_type,
            rtx_payload_type: new.rtx_payload_type,
            latch: new.latch,
            pli_interval: Nanos(self.pli_interval.as_nanos() as u64),
            feedback: new.feedback,
            rtcp_ssrc: new.rtcp_ssrc,
            ..IngressConfig::default()
        };
        let mut ingress = SourceIngress::with_config(new.id, new.codec, new.clock_rate, config);
        if let Some(sets) = new.parameter_sets {
            ingress.set_configured_parameter_sets(sets);
        }
        self.tokens.insert(new.id, token);
        self.sources.insert(
            token,
            Source {
                id: new.id,
                socket,
                ingress,
                latch: new.latch,
                shards: new.shards,
                drops: DropCounts::default(),
                rtcp_packets: 0,
                sender_reports: 0,
                rtcp_drops: DropCounts::default(),
                published_sets: Arc::default(),
            },
        );
        // Data may have arrived before the socket was registered.
        self.ready.push(token);
    }

    fn read_ready(&mut self) {
        let mut i = 0;
        while i < self.ready.len() {
            let token = self.ready[i];
            if self.read_source(token) {
                i += 1;
            } else {
                self.ready.swap_remove(i);
            }
        }
    }

    /// Read a few batches from one source; true if more may be waiting.
    fn read_source(&mut self, token: Token) -> bool {
        let Some(source) = self.sources.get_mut(&token) else {
            return false;
        };
        for _ in 0..BATCHES_PER_TURN {
            let mut chunks = self.scratch.chunks_mut(MAX_PACKET);
            let mut bufs: [&mut [u8]; RECV_BATCH] =
                std::array::from_fn(|_| chunks.next().expect("scratch holds a full batch"));
            let n = match self
                .recv
                .recv(&source.socket, &mut bufs, &mut self.received)
            {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(source = %source.id, "receive failed: {e}");
                    return false;
                }
            };
            // Kernel timestamps are wall-clock; map them onto the node's monotonic clock once per
            // batch, so latency counts the time a packet waited in the socket buffer too.
            let now = self.clock.now();
            let wall = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            for (k, got) in self.received[..n].iter().enumerate() {
                let bytes = &self.scratch[k * MAX_PACKET..k * MAX_PACKET + got.len];
                let received = match got.kernel_time {
                    Some(at) => Nanos(
                        now.0
                            .saturating_sub(wall.saturating_sub(at).as_nanos() as u64),
                    ),
                    None => now,
                };
                if rtcp::is_rtcp(bytes) {
                    source.take_rtcp(bytes, got, received, &self.shard_clocks);
                    continue;
                }
                if got.truncated {
                    source.drops.add(DropReason::Malformed, 1);
                    continue;
                }
                // The packet, or the packets a new stream held until its probation ended
                // (nothing when it is dropped or held), go to the shards.
                let (pool, queues, wakes) = (&mut self.pool, &self.shard_queues, &self.shard_wakes);
                let (mask, drops) = (&source.shards, &mut source.drops);
                let was = source.ingress.sender();
                let _ = source
                    .ingress
                    .ingest(bytes, got.from, received, |pkt, bytes, prelude| {
                        hand_to_shards(pool, queues, wakes, mask, drops, pkt, bytes, prelude);
                    });
                if let (true, Some(was), Some(from)) = (source.latch, was, source.ingress.sender())
                {
                    if was != from {
                        tracing::info!(source = %source.id, %from, %was, "the sender was silent; taking the new one");
                    }
                }
            }
            if n < RECV_BATCH {
                return false;
            }
        }
        true
    }

    /// Hand the keyframe requests queued by the shards and the control thread to the engine,
    /// run its due timeouts, and send the PLIs it gives out.
    fn serve_keyframe_requests(&mut self) {
        while let Some(id) = self.link.keyframe_requests.pop() {
            if let Some(s) = self.tokens.get(&id).and_then(|t| self.sources.get_mut(t)) {
                s.ingress.request_keyframe();
            }
        }
        let now = self.clock.now();
        for s in self.sources.values_mut() {
            if s.ingress.poll_timeout().is_some_and(|at| at <= now) {
                s.ingress.handle_timeout(now);
            }
            while let Some(pli) = s.ingress.poll_transmit(now) {
                if let Err(e) = s.socket.send_to(&pli.bytes, pli.to) {
                    tracing::warn!(source = %s.id, "keyframe request to {} failed: {e}", pli.to);
                    s.ingress.record_keyframe_request_failure();
                }
            }
            // Gaps in a retransmitting sender's stream (`rtx_payload_type`), asked for.
            while let Some(nack) = s.ingress.poll_nack(now) {
                if let Err(e) = s.socket.send_to(nack.bytes(), nack.to) {
                    tracing::debug!(source = %s.id, "NACK to {} failed: {e}", nack.to);
                }
            }
        }
    }

    fn publish_snapshot(&mut self) {
        // A stream on probation that went silent is given up, so its held packets are counted
        // as dropped even when nothing else arrives.
        let now = self.clock.now();
        for s in self.sources.values_mut() {
            s.ingress.handle_timeout(now);
            // Compared once per snapshot, never per packet; copied only when they changed.
            let known = s
                .ingress
                .parameter_sets()
                .map(ParameterSets::units)
                .unwrap_or_default();
            if *s.published_sets != *known {
                s.published_sets = known.into();
            }
        }
        let stats: Vec<IngestSourceStats> = self
            .sources
            .values()
            .map(|s| IngestSourceStats {
                id: Some(s.id),
                ingress: *s.ingress.counters(),
                drops: s.drops,
                sender: s.ingress.sender(),
                keyframe_requests_sent: s.ingress.counters().keyframe_requests_sent,
                rtcp_packets: s.rtcp_packets,
                sender_reports: s.sender_reports,
                rtcp_drops: s.rtcp_drops,
                payload_type: s.ingress.payload_type(now),
                keyframe_interval: s
                    .ingress
                    .keyframe_interval()
                    .map(|n| Duration::from_nanos(n.0)),
                parameter_sets: s.published_sets.clone(),
            })
            .collect();
        let stats = IngestSnapshot {
            taken_at: Instant::now(),
            sources: stats,
        };
        // The newest snapshot replaces an unread old one.
        if let Err(stats) = self.link.snapshots.push(stats) {
            let _ = self.link.snapshots.pop();
            let _ = self.link.snapshots.push(stats);
        }
    }
}

impl Source {
    /// RTCP from the source, received at `at`: the sender report of its current stream, if the
    /// compound holds one, goes to every shard as the source's clock mapping. Never forwarded.
    fn take_rtcp(
        &mut self,
        bytes: &[u8],
        got: &Received,
        at: Nanos,
        shards: &[Arc<ArrayQueue<(SourceId, SourceClock)>>],
    ) {
        self.rtcp_packets += 1;
        if got.truncated {
            self.rtcp_drops.add(DropReason::Malformed, 1);
            return;
        }
        // A latched source takes reports only from its sender, as it takes RTP: anyone else
        // could otherwise shift its viewers' audio against their video.
        if self.latch && self.ingress.sender().is_some_and(|s| Some(s) != got.from) {
            self.rtcp_drops.add(DropReason::WrongSender, 1);
            return;
        }
        let stream = self.ingress.ssrc().zip(self.ingress.epoch());
        // Before the first RTP packet there is no stream to take a report of; the compound is
        // still checked, so malformed RTCP is counted whenever it comes.
        let ssrc = stream.map_or(Ssrc(0), |(ssrc, _)| ssrc);
        let report = match rtcp::sender_report_of(bytes, ssrc) {
            Ok(report) => report,
            Err(_) => {
                self.rtcp_drops.add(DropReason::Malformed, 1);
                return;
            }
        };
        let (Some((ntp, rtp)), Some((ssrc, epoch))) = (report, stream) else {
            return;
        };
        self.sender_reports += 1;
        let clock = SourceClock {
            ssrc,
            epoch,
            ntp,
            rtp,
            at,
            clock_rate: self.ingress.clock_rate(),
        };
        for queue in shards {
            // No wake: a shard takes the queue before it next writes sender reports.
            if queue.push((self.id, clock)).is_err() {
                self.rtcp_drops.add(DropReason::QueueFull, 1);
            }
        }
    }
}

/// Copy one accepted packet (and its prelude) into a pool slot and queue it for every shard whose
/// bit is set in the source's mask. A full pool or queue drops it for that shard (`queue_full`).
#[allow(clippy::too_many_arguments)]
fn hand_to_shards(
    pool: &mut Pool,
    queues: &[Arc<ArrayQueue<Arc<Slot>>>],
    wakes: &[Arc<Wake>],
    mask: &AtomicU64,
    drops: &mut DropCounts,
    pkt: &RxPacket,
    bytes: &[u8],
    prelude: Option<&[u8]>,
) {
    let mask = mask.load(Ordering::Acquire);
    if mask == 0 {
        return;
    }
    let Some(slot) = pool.store(bytes, *pkt, prelude) else {
        drops.add(DropReason::QueueFull, mask.count_ones() as u64);
        return;
    };
    for (shard, queue) in queues.iter().enumerate() {
        if mask & (1 << shard) == 0 {
            continue;
        }
        if queue.push(slot.clone()).is_err() {
            drops.add(DropReason::QueueFull, 1);
        } else {
            wakes[shard].notify();
        }
    }
}

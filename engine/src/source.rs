//! Ingress for one source: parse, classify and sequence each packet exactly once on arrival.
//!
//! `SourceIngress::accept` turns raw bytes into an [`RxPacket`]: the bounds-checked RTP header, the
//! codec's view of the payload (frame start, keyframe, picture ID), 64-bit extended sequence number
//! and timestamp, and the source *epoch*. Duplicates and packets too far behind are dropped here,
//! once per source, so every accepted packet has an extended sequence number no other accepted
//! packet of its epoch has.
//!
//! The source's *current stream* (one SSRC, one sequence) keeps the source. A packet of another
//! stream (another SSRC, or the same SSRC far from its sequence) puts that stream on probation
//! (`probation`): its packets are held, and it replaces the current stream (a new epoch, which
//! splicers treat like a switch) only once it has sent [`IngressConfig::probation`] packets in
//! sequence and the current stream has been silent for [`IngressConfig::takeover_silence`]. Then
//! the held packets are released in order ([`SourceIngress::next_released`]). A multiplexed RTX or
//! FEC stream, or a stray datagram, never takes the source; its packets are dropped as
//! `other_ssrc` (or `other_payload_type`, `rtx`).
//!
//! Before any of that, a latching source takes packets only from its sender's address
//! (`wrong_sender` otherwise; see [`IngressConfig::latch`]). Keyframe requests to the source are
//! coalesced and rate limited here too ([`SourceIngress::request_keyframe`],
//! [`SourceIngress::poll_transmit`]); the I/O layer sends what comes out, and sleeps until
//! [`SourceIngress::poll_timeout`].

use std::net::SocketAddr;

use crate::codec::parameter_sets::ParameterSets;
use crate::codec::{self, PayloadInfo};
use crate::drop::{DropCounts, DropReason};
use crate::rtp::RtpHeader;
use crate::types::{Codec, ExtSeq, ExtTime, Nanos, SourceId, Ssrc};
use keyframe::KeyframeRequests;
use latch::Latch;
use probation::{Candidate, Hold, Membership};
use stream::{Placed, Stream, MAX_DROPOUT, MAX_MISORDER, WINDOW_WORDS};

mod keyframe;
mod latch;
mod probation;
mod stream;
pub mod upstream;

pub use keyframe::KeyframeRequest;
pub use probation::HOLD_SLOT;

/// How far behind the newest packet a packet may arrive and still be placed (duplicate-checked).
pub const REORDER_WINDOW: u64 = 1024;
/// How long the stream a source left behind is remembered, so its stragglers are dropped as
/// `stale_after_restart` rather than taken for a new stream. Bounded, so a sender that returns
/// to its old SSRC (failover A to B and back to A) is a new stream like any other after it.
pub const PREVIOUS_STREAM_MEMORY: Nanos = Nanos::from_millis(1_000);
/// Extended values start here so a packet reordered before the first one does not underflow.
const SEQ_BASE: u64 = 1 << 32;
/// Timestamps may step back as far as forward (B-frames, or a sender that steps them anywhere):
/// from here, 2^31 packets each stepping back by 2^31 (weeks of a hostile sender) still do not
/// reach zero, so extended timestamps keep their order; the arithmetic wraps rather than
/// overflow even beyond.
const TS_BASE: u64 = 1 << 62;

/// One accepted packet's metadata: everything the shards need, found once. The bytes stay in the
/// caller's buffer; `header` holds the offsets into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxPacket {
    /// The source that accepted it.
    pub source: SourceId,
    /// Changes each time the source restarts; a splicer re-anchors on a new epoch.
    pub epoch: u32,
    /// Sequence number, extended within the epoch.
    pub seq: ExtSeq,
    /// Timestamp, extended within the epoch.
    pub timestamp: ExtTime,
    /// The source's RTP clock rate, in Hz.
    pub clock_rate: u32,
    /// The parsed header, with the offsets of the payload in the packet's buffer.
    pub header: RtpHeader,
    /// What the codec's payload says: frame start, keyframe, fields to rewrite.
    pub payload: PayloadInfo,
    /// The `now` given to [`SourceIngress::accept`] with the datagram.
    pub received_at: Nanos,
    /// Where, in the buffer that holds this packet, the payload of its prelude lies: the
    /// parameter sets a track starting at this switch point must get first. Set by the caller
    /// that stores the packet (see [`SourceIngress::prelude_for`]); the bytes follow the packet.
    pub prelude: Option<Prelude>,
}

/// A byte range of the packet's buffer, after the packet itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prelude {
    /// Offset of the first byte.
    pub start: u16,
    /// Length in bytes.
    pub len: u16,
}

impl Prelude {
    /// The range, to index the buffer with.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start as usize..self.start as usize + self.len as usize
    }
}

impl RxPacket {
    /// A decoder can start at this packet: the first packet of a keyframe (any audio packet).
    pub fn is_switch_point(&self) -> bool {
        self.payload.is_switch_point()
    }

    /// Bytes after the fixed header that each track rewrites (codec fields at payload start).
    pub fn rewrite_len(&self) -> usize {
        self.payload.rewrite_len()
    }

    /// Append `prelude` to `buf`, which holds this packet, and point the packet at it. For
    /// callers that keep packets in a `Vec` (tests, tools); the node writes into its pool slot.
    pub fn attach_prelude(&mut self, buf: &mut Vec<u8>, prelude: &[u8]) {
        self.prelude = Some(Prelude {
            start: buf.len() as u16,
            len: prelude.len() as u16,
        });
        buf.extend_from_slice(prelude);
    }
}

/// Counters kept by ingress, per source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngressCounters {
    /// Packets offered to `accept` from the source's sender. Those from another address than
    /// the latched sender are not the source's: they count only as `wrong_sender` drops, so
    /// `packets + drops[wrong_sender] = accepted + drops + held`.
    pub packets: u64,
    /// Bytes of those packets, as datagrams.
    pub bytes: u64,
    /// Packets accepted (handed on to the shards).
    pub accepted: u64,
    /// Packets dropped at ingress, by reason, `wrong_sender` included.
    pub drops: DropCounts,
    /// Packets held right now while another stream is in probation: neither accepted nor
    /// dropped yet (a gauge, so `packets = accepted + drops + held` at every moment).
    pub held: u64,
    /// Times another stream replaced the current one (sender restarts).
    pub restarts: u64,
    /// Accepted packets that start a frame.
    pub frames: u64,
    /// Accepted packets that start a keyframe (switch points).
    pub keyframes: u64,
    /// Keyframe requests (PLI) handed to the I/O layer and sent.
    pub keyframe_requests_sent: u64,
    /// Repair asked of the sender (NACKs) and its retransmissions taken.
    pub upstream: upstream::UpstreamCounters,
}

/// How ingress tells the source's stream from other packets arriving on its port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IngressConfig {
    /// Packets in sequence a new stream must send before it can replace the current one (RFC
    /// 3550 A.1's MIN_SEQUENTIAL). At least 1.
    pub probation: u32,
    /// How long the current stream must have been silent before a new one replaces it. A sender
    /// that restarts stops its old stream; a stream multiplexed beside it never lets it go silent.
    pub takeover_silence: Nanos,
    /// After this long without a packet of the current stream, the payload type learned from it
    /// no longer filters: a restarted encoder may use another one.
    pub idle: Nanos,
    /// The source's payload type, when known ahead (from the API); otherwise it is learned from
    /// the first packet of each stream.
    pub payload_type: Option<u8>,
    /// The payload type of the sender's RFC 4588 retransmissions: gaps in the stream are
    /// NACKed to the sender and its retransmissions fill them (`source/upstream.rs`); one that
    /// cannot be used is dropped as `rtx`.
    pub rtx_payload_type: Option<u8>,
    /// Packets of a stream on probation that are held at most; beyond, the oldest give way
    /// (dropped as `other_ssrc`). Each takes a [`HOLD_SLOT`]-byte slot, allocated with the
    /// source (256 KiB for the default 128), so the packet path never allocates for it.
    pub hold_packets: usize,
    /// Take packets only from the first sender's address (until it is silent for `idle`, when
    /// the next sender is latched); others are dropped as `wrong_sender`.
    pub latch: bool,
    /// Least time between two keyframe requests sent to the source.
    pub pli_interval: Nanos,
    /// Where keyframe requests go, if not to the sender.
    pub feedback: Option<SocketAddr>,
    /// The SSRC keyframe requests are sent with (the node's own).
    pub rtcp_ssrc: Ssrc,
}

impl Default for IngressConfig {
    fn default() -> IngressConfig {
        IngressConfig {
            probation: 2,
            takeover_silence: Nanos::from_millis(300),
            idle: Nanos::from_millis(2_000),
            payload_type: None,
            rtx_payload_type: None,
            hold_packets: 128,
            latch: true,
            pli_interval: Nanos::from_millis(500),
            feedback: None,
            rtcp_ssrc: Ssrc(0),
        }
    }
}

/// The stream a source left behind at its last restart.
#[derive(Clone, Copy, Debug)]
struct Previous {
    ssrc: Ssrc,
    highest_seq: u16,
    until: Nanos,
}

/// Ingress state of one source. Owned by the thread that receives the source's packets.
#[derive(Clone, Debug)]
pub struct SourceIngress {
    id: SourceId,
    codec: Codec,
    clock_rate: u32,
    config: IngressConfig,
    stream: Option<Stream>,
    previous: Option<Previous>,
    /// The stream on probation, if any, and its held packets.
    candidate: Option<Candidate>,
    hold: Hold,
    /// Held packets are being handed out by `next_released` (the candidate was taken).
    releasing: bool,
    next_epoch: u32,
    counters: IngressCounters,
    /// H.264/H.265: the current stream's newest parameter sets.
    parameter_sets: Option<ParameterSets>,
    /// Parameter sets given with the source (from the sender's SDP), used while none have come
    /// in-band in the current stream.
    configured_sets: Option<ParameterSets>,
    /// Epoch and extended timestamp of the last keyframe accepted.
    last_keyframe: Option<(u32, u64)>,
    /// Media time between the last two keyframes of one epoch.
    keyframe_interval: Option<Nanos>,
    latch: Latch,
    keyframe_requests: KeyframeRequests,
    /// Upstream repair (a source with an RTX payload type): its missing numbers, and where a
    /// retransmission is rebuilt.
    upstream: Option<Box<upstream::Upstream>>,
    /// The packet being accepted was rebuilt from the sender's retransmission.
    retransmitted: bool,
}

impl SourceIngress {
    /// A source with the default [`IngressConfig`]; `clock_rate` in Hz (see
    /// [`Codec::default_clock_rate`]).
    pub fn new(id: SourceId, codec: Codec, clock_rate: u32) -> SourceIngress {
        SourceIngress::with_config(id, codec, clock_rate, IngressConfig::default())
    }

    /// A source with `config` (a probation of 0 packets is taken as 1); `clock_rate` in Hz.
    pub fn with_config(
        id: SourceId,
        codec: Codec,
        clock_rate: u32,
        config: IngressConfig,
    ) -> SourceIngress {
        SourceIngress {
            id,
            codec,
            clock_rate,
            config: IngressConfig {
                probation: config.probation.max(1),
                ..config
            },
            stream: None,
            previous: None,
            candidate: None,
            hold: Hold::new(config.hold_packets),
            releasing: false,
            next_epoch: 0,
            counters: IngressCounters::default(),
            parameter_sets: ParameterSets::new(codec),
            configured_sets: None,
            last_keyframe: None,
            keyframe_interval: None,
            latch: Latch::new(config.latch),
            keyframe_requests: KeyframeRequests::default(),
            upstream: config
                .rtx_payload_type
                .map(|_| Box::new(upstream::Upstream::new())),
            retransmitted: false,
        }
    }

    /// Parameter sets to send before keyframes that lack them until the stream sends its own
    /// (see [`ParameterSets::configured`]). Kept across sender restarts.
    pub fn set_configured_parameter_sets(&mut self, sets: ParameterSets) {
        self.configured_sets = Some(sets);
    }

    /// The source's id.
    pub fn id(&self) -> SourceId {
        self.id
    }

    /// The codec the source's payloads are read as.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The RTP clock rate, in Hz, used to turn timestamps into time.
    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    /// The source's counters so far.
    pub fn counters(&self) -> &IngressCounters {
        &self.counters
    }

    /// Media time (RTP timestamps) between the last two keyframes of one stream: the sender's
    /// own spacing, free of network jitter. `None` until two keyframes of one epoch were
    /// accepted; a restart keeps the last value until its stream has two. Always `None` for
    /// audio, where every packet is a switch point and the "interval" would be the packet time.
    pub fn keyframe_interval(&self) -> Option<Nanos> {
        self.keyframe_interval
    }

    /// The address the source's packets are taken from: the latched sender, or (not latching)
    /// the last address that sent. `None` before the first packet.
    pub fn sender(&self) -> Option<SocketAddr> {
        self.latch.sender()
    }

    /// Ask the source for a keyframe (a subscriber's PLI/FIR, a switch waiting for one, the
    /// control plane). Requests are coalesced: [`SourceIngress::poll_transmit`] hands out at most
    /// one per [`IngressConfig::pli_interval`].
    pub fn request_keyframe(&mut self) {
        self.keyframe_requests.request();
    }

    /// The keyframe request to send now, if one waits and the rate limit allows; counted as
    /// sent (`keyframe_requests_sent`). Call after [`SourceIngress::request_keyframe`] and at
    /// [`SourceIngress::poll_timeout`]. If it could not be sent, report it with
    /// [`SourceIngress::record_keyframe_request_failure`].
    pub fn poll_transmit(&mut self, now: Nanos) -> Option<KeyframeRequest> {
        let to = self.config.feedback.or(self.latch.sender());
        let request = self.keyframe_requests.poll(
            now,
            self.config.pli_interval,
            to,
            self.config.rtcp_ssrc,
            self.ssrc(),
        )?;
        self.counters.keyframe_requests_sent += 1;
        Some(request)
    }

    /// The I/O layer could not send the request [`SourceIngress::poll_transmit`] last gave: it
    /// is not counted, and the rate limit does not run from it.
    pub fn record_keyframe_request_failure(&mut self) {
        self.counters.keyframe_requests_sent =
            self.counters.keyframe_requests_sent.saturating_sub(1);
        self.keyframe_requests.unsent();
    }

    /// When [`SourceIngress::handle_timeout`] (and [`SourceIngress::poll_transmit`]) next have
    /// work: a waiting keyframe request's rate limit ending, a NACK due to the sender, or a stream
    /// on probation to give up.
    pub fn poll_timeout(&self) -> Option<Nanos> {
        let keyframe = self.keyframe_requests.deadline(self.config.pli_interval);
        let nack = self.upstream.as_ref().and_then(|u| u.deadline());
        let probation = self
            .candidate
            .filter(|_| !self.releasing)
            .map(|c| c.last_at.saturating_add(self.config.takeover_silence));
        [keyframe, nack, probation].into_iter().flatten().min()
    }

    /// The SSRC of the current stream, once a packet has arrived.
    pub fn ssrc(&self) -> Option<Ssrc> {
        self.stream.map(|s| s.ssrc)
    }

    /// The epoch of the current stream (see [`RxPacket::epoch`]), once a packet has arrived.
    pub fn epoch(&self) -> Option<u32> {
        self.stream.map(|s| s.epoch)
    }

    /// The payload type packets must carry: the configured one, or the current stream's while it
    /// is not idle.
    pub fn payload_type(&self, now: Nanos) -> Option<u8> {
        self.config.payload_type.or_else(|| {
            self.stream
                .filter(|s| now.saturating_since(s.last_at) < self.config.idle)
                .map(|s| s.payload_type)
        })
    }

    /// The prelude payload to send before `pkt` to a track that starts at it: the cached
    /// parameter sets, when `pkt` is an H.264/H.265 switch point that carries none and the
    /// stream has sent them before (or they were configured). See
    /// [`crate::codec::parameter_sets`].
    pub fn prelude_for(&self, pkt: &RxPacket) -> Option<&[u8]> {
        if !pkt.is_switch_point() || pkt.payload.parameter_sets {
            return None;
        }
        self.parameter_sets().and_then(ParameterSets::prelude)
    }

    /// The parameter sets a decoder of the current stream needs, the ones a prelude carries: the
    /// stream's own once it has sent every kind in-band, else those configured. `None` while
    /// neither is known (and for codecs without parameter sets).
    pub fn parameter_sets(&self) -> Option<&ParameterSets> {
        self.parameter_sets
            .as_ref()
            .filter(|s| s.prelude().is_some())
            .or(self.configured_sets.as_ref())
    }

    /// Offer one datagram and hand every packet that comes out of it to `deliver`, in order,
    /// with its bytes and its prelude ([`SourceIngress::prelude_for`]): the datagram itself when
    /// accepted, or, when it completes a new stream's probation, every packet held for that
    /// stream (itself last). Returns how many were delivered (0 while it is held), or the reason
    /// it was dropped (already counted). [`SourceIngress::accept`] and
    /// [`SourceIngress::next_released`] are the same in two steps.
    pub fn ingest(
        &mut self,
        buf: &[u8],
        from: Option<SocketAddr>,
        now: Nanos,
        mut deliver: impl FnMut(&RxPacket, &[u8], Option<&[u8]>),
    ) -> Result<usize, DropReason> {
        if self.upstream.is_some() && self.is_rtx(buf) {
            return self.ingest_rtx(buf, from, now, deliver);
        }
        if let Some(pkt) = self.accept(buf, from, now)? {
            deliver(&pkt, buf, self.prelude_for(&pkt));
            return Ok(1);
        }
        let mut delivered = 0;
        while let Some(pkt) = self.next_released() {
            deliver(&pkt, self.released_bytes(), self.prelude_for(&pkt));
            delivered += 1;
        }
        Ok(delivered)
    }

    /// Classify one packet, which came from `from` (`None`: the I/O layer could not tell; it is
    /// taken). `Ok(Some)`: accepted. `Err`: dropped, and already counted under the reason; a
    /// latching source drops packets from another address than its sender (`wrong_sender`). `Ok(None)`: held, because it belongs to a stream on probation; when the packet
    /// completed that stream's probation, the held packets (this one last) are now handed out by
    /// [`SourceIngress::next_released`], which the caller drains before offering the next packet.
    pub fn accept(
        &mut self,
        buf: &[u8],
        from: Option<SocketAddr>,
        now: Nanos,
    ) -> Result<Option<RxPacket>, DropReason> {
        debug_assert!(
            !self.releasing,
            "drain next_released before the next accept"
        );
        if let Err(reason) = self.latch.admit(from, now, self.config.idle) {
            self.counters.drops.add(reason, 1);
            return Err(reason);
        }
        self.counters.packets += 1;
        self.counters.bytes += buf.len() as u64;
        self.handle_timeout(now);
        let result = self.classify(buf, now);
        match &result {
            Ok(Some(pkt)) => self.count_accepted(pkt),
            Ok(None) => {}
            Err(reason) => self.counters.drops.add(*reason, 1),
        }
        result
    }

    /// The next packet released from probation, in arrival order, after `accept` returned
    /// `Ok(None)`; its bytes are [`SourceIngress::released_bytes`] until the next call. Held
    /// packets that sequencing refuses (duplicates, say) are counted and skipped.
    pub fn next_released(&mut self) -> Option<RxPacket> {
        if !self.releasing {
            return None;
        }
        // The hold is taken out while its packets are classified; nothing is held meanwhile.
        let mut hold = std::mem::take(&mut self.hold);
        let mut released = None;
        while let Some(at) = hold.pop_front() {
            self.counters.held -= 1;
            match self.classify(hold.taken_bytes(), at) {
                Ok(Some(pkt)) => {
                    self.count_accepted(&pkt);
                    released = Some(pkt);
                    break;
                }
                Ok(None) => unreachable!("nothing is held while releasing"),
                Err(reason) => self.counters.drops.add(reason, 1),
            }
        }
        self.hold = hold;
        if released.is_none() {
            self.releasing = false;
        }
        released
    }

    /// The bytes of the packet the last [`SourceIngress::next_released`] returned.
    pub fn released_bytes(&self) -> &[u8] {
        self.hold.taken_bytes()
    }

    /// Give up a stream on probation that has gone silent (its held packets are dropped as
    /// `other_ssrc`). `accept` calls it; call it too when no packet comes (at
    /// [`SourceIngress::poll_timeout`]), so held packets are counted as dropped in time.
    pub fn handle_timeout(&mut self, now: Nanos) {
        if let Some(c) = self.candidate {
            if !self.releasing && now.saturating_since(c.last_at) >= self.config.takeover_silence {
                self.give_up_candidate();
            }
        }
    }

    fn count_accepted(&mut self, pkt: &RxPacket) {
        self.counters.accepted += 1;
        if pkt.payload.frame_start {
            self.counters.frames += 1;
            if pkt.payload.keyframe {
                self.counters.keyframes += 1;
                self.note_keyframe(pkt);
            }
        }
    }

    fn note_keyframe(&mut self, pkt: &RxPacket) {
        if self.codec.is_audio() {
            return;
        }
        let ts = pkt.timestamp.0;
        match self.last_keyframe {
            // A reordered keyframe is older than the last one: it measures nothing.
            Some((epoch, last)) if epoch == pkt.epoch && ts <= last => return,
            Some((epoch, last)) if epoch == pkt.epoch && self.clock_rate > 0 => {
                let nanos = u128::from(ts - last) * 1_000_000_000 / u128::from(self.clock_rate);
                self.keyframe_interval = Some(Nanos(u64::try_from(nanos).unwrap_or(u64::MAX)));
            }
            // Another epoch's timestamps are on another clock: measure from this one on.
            _ => {}
        }
        self.last_keyframe = Some((pkt.epoch, ts));
    }

    fn classify(&mut self, buf: &[u8], now: Nanos) -> Result<Option<RxPacket>, DropReason> {
        let header = RtpHeader::parse(buf)?;
        if Some(header.payload_type) == self.config.rtx_payload_type {
            return Err(DropReason::Rtx);
        }
        if self
            .payload_type(now)
            .is_some_and(|pt| pt != header.payload_type)
        {
            return Err(DropReason::OtherPayloadType);
        }
        let mut payload = codec::inspect(self.codec, header.payload(buf))
            .map_err(|_| DropReason::MalformedPayload)?;
        let epochs = self.next_epoch;
        let Some((epoch, seq, timestamp)) = self.sequence(&header, &mut payload, buf, now)? else {
            return Ok(None);
        };
        if let Some(sets) = self.parameter_sets.as_mut() {
            if self.next_epoch != epochs {
                // A restarted encoder may use other parameter sets.
                sets.clear();
            }
            if payload.parameter_sets {
                sets.observe(header.payload(buf));
            }
        }
        Ok(Some(RxPacket {
            source: self.id,
            epoch,
            seq: ExtSeq(seq),
            timestamp: ExtTime(timestamp),
            clock_rate: self.clock_rate,
            header,
            payload,
            received_at: now,
            prelude: None,
        }))
    }

    /// Place the packet: in the current stream (extended sequence number and timestamp), or
    /// dropped, or held for a stream on probation (`None`).
    fn sequence(
        &mut self,
        header: &RtpHeader,
        payload: &mut PayloadInfo,
        buf: &[u8],
        now: Nanos,
    ) -> Result<Option<(u32, u64, u64)>, DropReason> {
        let Some(stream) = self.stream.as_mut() else {
            // The source's first stream, or the one just taken from probation.
            return Ok(Some(self.start(header, payload, now)));
        };
        if header.ssrc == stream.ssrc {
            let highest = stream.highest_seq;
            if let Placed::In(epoch, seq, ts) = stream.place(self.codec, header, payload, now)? {
                self.note_sequence(highest, seq, now);
                return Ok(Some((epoch, seq, ts)));
            }
        }
        if let Some(p) = self
            .previous
            .filter(|p| p.ssrc == header.ssrc && now < p.until)
        {
            let behind = p.highest_seq.wrapping_sub(header.seq.0) as i16 as i32;
            if (0..=MAX_MISORDER).contains(&behind) {
                return Err(DropReason::StaleAfterRestart);
            }
        }
        if self.releasing {
            // Held packets that do not follow the stream just taken from them.
            return Err(DropReason::OtherSsrc);
        }
        self.hold(header, buf, now)?;
        Ok(None)
    }

    /// Hold a packet of another stream than the current one, and take that stream when its
    /// probation is complete and the current stream has gone silent.
    fn hold(&mut self, header: &RtpHeader, buf: &[u8], now: Nanos) -> Result<(), DropReason> {
        if !self.hold.fits(buf) {
            return Err(DropReason::OtherSsrc);
        }
        let window = REORDER_WINDOW as i32;
        match self.candidate.as_mut() {
            Some(c) => match c.membership(header, MAX_DROPOUT, window) {
                Membership::Outside => {
                    if now.saturating_since(c.last_at) < self.config.takeover_silence {
                        // A second stream on probation while the first still sends: neither is
                        // likely the sender's restart; keep the one that came first.
                        return Err(DropReason::OtherSsrc);
                    }
                    self.give_up_candidate();
                    self.candidate = Some(Candidate::start(header, now));
                }
                m => c.observe(header, m, now),
            },
            None => self.candidate = Some(Candidate::start(header, now)),
        }
        // When the hold is full its oldest packet gives way, and counts as dropped.
        let given_up = self.hold.push(buf, now);
        self.counters.held = self.counters.held + 1 - given_up;
        self.counters.drops.add(DropReason::OtherSsrc, given_up);
        let c = self.candidate.expect("a candidate was set above");
        let silent = self
            .stream
            .is_none_or(|s| now.saturating_since(s.last_at) >= self.config.takeover_silence);
        if c.in_sequence >= self.config.probation && silent {
            self.take_candidate(now);
        }
        Ok(())
    }

    /// The stream on probation replaces the current one; its held packets are released.
    fn take_candidate(&mut self, now: Nanos) {
        if let Some(old) = self.stream.take() {
            self.counters.restarts += 1;
            self.previous = Some(Previous {
                ssrc: old.ssrc,
                highest_seq: old.highest_seq as u16,
                until: now.saturating_add(PREVIOUS_STREAM_MEMORY),
            });
        }
        self.candidate = None;
        self.releasing = true;
    }

    fn give_up_candidate(&mut self) {
        let n = self.hold.clear();
        self.counters.held -= n;
        self.counters.drops.add(DropReason::OtherSsrc, n);
        self.candidate = None;
    }

    /// Start a new stream (and epoch) at this packet.
    fn start(&mut self, header: &RtpHeader, payload: &PayloadInfo, now: Nanos) -> (u32, u64, u64) {
        if let Some(u) = self.upstream.as_mut() {
            u.clear();
            self.counters.upstream = u.counters;
        }
        let epoch = self.next_epoch;
        self.next_epoch = self.next_epoch.wrapping_add(1);
        let seq = SEQ_BASE + header.seq.0 as u64;
        let ts = TS_BASE + header.timestamp.0 as u64;
        let mut stream = Stream {
            ssrc: header.ssrc,
            payload_type: header.payload_type,
            epoch,
            highest_seq: seq,
            highest_ts: ts,
            highest_marker: header.marker,
            key_in_frame: payload.keyframe,
            last_at: now,
            seen: [0; WINDOW_WORDS],
        };
        stream.mark_seen(seq);
        self.stream = Some(stream);
        (epoch, seq, ts)
    }
}

#[cfg(test)]
mod tests;

//! Ingress for one source: parse, classify and sequence each packet exactly once on arrival.
//!
//! `SourceIngress::accept` turns raw bytes into an [`RxPacket`]: the bounds-checked RTP header, the
//! codec's view of the payload (frame start, keyframe, picture ID), 64-bit extended sequence number
//! and timestamp, and the source *epoch*. The epoch changes when the sender restarts (new SSRC, or a
//! sequence jump no reordering explains); splicers treat a new epoch like a switch, so subscribers'
//! streams continue. Duplicates and packets too far behind are dropped here, once per source, so
//! every accepted packet has an extended sequence number no other accepted packet of its epoch has.

use crate::codec::parameter_sets::ParameterSets;
use crate::codec::{self, PayloadInfo};
use crate::drop::{DropCounts, DropReason};
use crate::rtp::RtpHeader;
use crate::types::{Codec, ExtSeq, ExtTime, Nanos, SourceId, Ssrc};

/// How far ahead of the newest packet a sequence number may jump and still be the same stream
/// (RFC 3550 A.1's MAX_DROPOUT). Beyond it the sender is taken to have restarted.
const MAX_DROPOUT: i32 = 3000;
/// How far behind the newest packet a packet may arrive and still be placed (duplicate-checked).
pub const REORDER_WINDOW: u64 = 1024;
/// Behind the window but within this, a packet is a straggler (dropped as too old); further back,
/// two consecutive packets confirm a restart (RFC 3550 A.1's probation).
const MAX_MISORDER: i32 = 3000;
/// Extended values start here so a packet reordered before the first one does not underflow.
const SEQ_BASE: u64 = 1 << 32;
const TS_BASE: u64 = 1 << 40;

const WINDOW_WORDS: usize = (REORDER_WINDOW / 64) as usize;

/// One accepted packet's metadata: everything the shards need, found once. The bytes stay in the
/// caller's buffer; `header` holds the offsets into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxPacket {
    pub source: SourceId,
    /// Changes each time the source restarts; a splicer re-anchors on a new epoch.
    pub epoch: u32,
    pub seq: ExtSeq,
    pub timestamp: ExtTime,
    pub clock_rate: u32,
    pub header: RtpHeader,
    pub payload: PayloadInfo,
    pub received_at: Nanos,
    /// Where, in the buffer that holds this packet, the payload of its prelude lies: the
    /// parameter sets a track starting at this switch point must get first. Set by the caller
    /// that stores the packet (see [`SourceIngress::prelude_for`]); the bytes follow the packet.
    pub prelude: Option<Prelude>,
}

/// A byte range of the packet's buffer, after the packet itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prelude {
    pub start: u16,
    pub len: u16,
}

impl Prelude {
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
    /// Packets offered to `accept`.
    pub packets: u64,
    pub bytes: u64,
    /// Packets accepted (handed on to the shards).
    pub accepted: u64,
    pub drops: DropCounts,
    /// Packets held right now while another stream is in probation: neither accepted nor
    /// dropped yet (a gauge, so `packets = accepted + drops + held` at every moment).
    pub held: u64,
    pub restarts: u64,
    /// Accepted packets that start a frame, and those that start a keyframe.
    pub frames: u64,
    pub keyframes: u64,
}

/// Sequencing state of the current stream of a source.
#[derive(Clone, Copy, Debug)]
struct Stream {
    ssrc: Ssrc,
    epoch: u32,
    highest_seq: u64,
    /// Timestamp of the packet with the highest sequence number: the reference for unwrapping.
    highest_ts: u64,
    highest_marker: bool,
    /// A packet of the current access unit (in order) carried a keyframe NAL (H.264/H.265).
    key_in_frame: bool,
    /// Bit `s % REORDER_WINDOW` is set when extended sequence `s` (within the window) was seen.
    seen: [u64; WINDOW_WORDS],
    /// RFC 3550 probation: a far-behind packet is dropped, and if the next one follows it, the
    /// stream restarts there.
    probation_seq: Option<u16>,
}

/// Ingress state of one source. Owned by the thread that receives the source's packets.
#[derive(Clone, Debug)]
pub struct SourceIngress {
    id: SourceId,
    codec: Codec,
    clock_rate: u32,
    stream: Option<Stream>,
    /// The SSRC before the last restart; its stragglers are dropped, not taken as another restart.
    previous_ssrc: Option<Ssrc>,
    next_epoch: u32,
    counters: IngressCounters,
    /// H.264/H.265: the current stream's newest parameter sets.
    parameter_sets: Option<ParameterSets>,
    /// Parameter sets given with the source (from the sender's SDP), used while none have come
    /// in-band in the current stream.
    configured_sets: Option<ParameterSets>,
}

impl SourceIngress {
    pub fn new(id: SourceId, codec: Codec, clock_rate: u32) -> SourceIngress {
        SourceIngress {
            id,
            codec,
            clock_rate,
            stream: None,
            previous_ssrc: None,
            next_epoch: 0,
            counters: IngressCounters::default(),
            parameter_sets: ParameterSets::new(codec),
            configured_sets: None,
        }
    }

    /// Parameter sets to send before keyframes that lack them until the stream sends its own
    /// (see [`ParameterSets::configured`]). Kept across sender restarts.
    pub fn set_configured_parameter_sets(&mut self, sets: ParameterSets) {
        self.configured_sets = Some(sets);
    }

    pub fn id(&self) -> SourceId {
        self.id
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    pub fn counters(&self) -> &IngressCounters {
        &self.counters
    }

    /// The SSRC of the current stream, once a packet has arrived.
    pub fn ssrc(&self) -> Option<Ssrc> {
        self.stream.map(|s| s.ssrc)
    }

    /// The prelude payload to send before `pkt` to a track that starts at it: the cached
    /// parameter sets, when `pkt` is an H.264/H.265 switch point that carries none and the
    /// stream has sent them before (or they were configured). See
    /// [`crate::codec::parameter_sets`].
    pub fn prelude_for(&self, pkt: &RxPacket) -> Option<&[u8]> {
        if !pkt.is_switch_point() || pkt.payload.parameter_sets {
            return None;
        }
        self.parameter_sets
            .as_ref()
            .and_then(ParameterSets::prelude)
            .or_else(|| self.configured_sets.as_ref()?.prelude())
    }

    /// Classify one packet. On `Err` the packet is dropped and already counted under the reason.
    pub fn accept(&mut self, buf: &[u8], now: Nanos) -> Result<RxPacket, DropReason> {
        self.counters.packets += 1;
        self.counters.bytes += buf.len() as u64;
        let result = self.classify(buf, now);
        match &result {
            Ok(pkt) => {
                self.counters.accepted += 1;
                if pkt.payload.frame_start {
                    self.counters.frames += 1;
                    if pkt.payload.keyframe {
                        self.counters.keyframes += 1;
                    }
                }
            }
            Err(reason) => self.counters.drops.add(*reason, 1),
        }
        result
    }

    fn classify(&mut self, buf: &[u8], now: Nanos) -> Result<RxPacket, DropReason> {
        let header = RtpHeader::parse(buf)?;
        let mut payload = codec::inspect(self.codec, header.payload(buf))
            .map_err(|_| DropReason::MalformedPayload)?;
        let epochs = self.next_epoch;
        let (epoch, seq, timestamp) = self.sequence(&header, &mut payload)?;
        if let Some(sets) = self.parameter_sets.as_mut() {
            if self.next_epoch != epochs {
                // A restarted encoder may use other parameter sets.
                sets.clear();
            }
            if payload.parameter_sets {
                sets.observe(header.payload(buf));
            }
        }
        Ok(RxPacket {
            source: self.id,
            epoch,
            seq: ExtSeq(seq),
            timestamp: ExtTime(timestamp),
            clock_rate: self.clock_rate,
            header,
            payload,
            received_at: now,
            prelude: None,
        })
    }

    /// Place the packet in its stream: extend sequence number and timestamp, drop duplicates and
    /// stragglers, and detect restarts.
    fn sequence(
        &mut self,
        header: &RtpHeader,
        payload: &mut PayloadInfo,
    ) -> Result<(u32, u64, u64), DropReason> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(self.restart(header, payload));
        };
        if header.ssrc != stream.ssrc {
            if Some(header.ssrc) == self.previous_ssrc {
                return Err(DropReason::StaleAfterRestart);
            }
            return Ok(self.restart(header, payload));
        }
        let seq = header.seq.0;
        let delta = seq.wrapping_sub(stream.highest_seq as u16) as i16 as i32;
        let ts_delta = header.timestamp.0.wrapping_sub(stream.highest_ts as u32) as i32 as i64;
        let timestamp = (stream.highest_ts as i64 + ts_delta) as u64;

        if delta > 0 && delta <= MAX_DROPOUT {
            let ext = stream.highest_seq + delta as u64;
            // A packet continuing an unfinished frame cannot start one, whatever its payload
            // looks like (e.g. a repeated H.264 SPS before a picture's second slice). One
            // exception: H.264/H.265 encoders may open an access unit with an AUD or SEI packet
            // that is not key; then the first packet carrying a parameter set or IDR is where a
            // decoder can start (it needs no AUD), and only later ones continue the frame.
            let continues = delta == 1 && timestamp == stream.highest_ts && !stream.highest_marker;
            if continues {
                let opens_key =
                    self.codec.parameter_sets_in_band() && payload.keyframe && !stream.key_in_frame;
                if !opens_key {
                    payload.frame_start = false;
                }
                stream.key_in_frame |= payload.keyframe;
            } else {
                stream.key_in_frame = payload.keyframe;
            }
            stream.advance_window(ext);
            stream.highest_seq = ext;
            stream.highest_ts = timestamp;
            stream.highest_marker = header.marker;
            stream.probation_seq = None;
            return Ok((stream.epoch, ext, timestamp));
        }
        if delta == 0 {
            return Err(DropReason::Duplicate);
        }
        if delta < 0 && (-delta as u64) < REORDER_WINDOW {
            let ext = stream.highest_seq - (-delta) as u64;
            if !stream.mark_seen(ext) {
                return Err(DropReason::Duplicate);
            }
            return Ok((stream.epoch, ext, timestamp));
        }
        if delta < 0 && -delta <= MAX_MISORDER {
            return Err(DropReason::TooOld);
        }
        if delta < 0 && stream.probation_seq != Some(seq) {
            stream.probation_seq = Some(seq.wrapping_add(1));
            return Err(DropReason::TooOld);
        }
        Ok(self.restart(header, payload))
    }

    /// Start a new stream (and epoch) at this packet.
    fn restart(&mut self, header: &RtpHeader, payload: &PayloadInfo) -> (u32, u64, u64) {
        if let Some(old) = self.stream {
            self.counters.restarts += 1;
            if old.ssrc != header.ssrc {
                self.previous_ssrc = Some(old.ssrc);
            }
        }
        let epoch = self.next_epoch;
        self.next_epoch = self.next_epoch.wrapping_add(1);
        let seq = SEQ_BASE + header.seq.0 as u64;
        let ts = TS_BASE + header.timestamp.0 as u64;
        let mut stream = Stream {
            ssrc: header.ssrc,
            epoch,
            highest_seq: seq,
            highest_ts: ts,
            highest_marker: header.marker,
            key_in_frame: payload.keyframe,
            seen: [0; WINDOW_WORDS],
            probation_seq: None,
        };
        stream.mark_seen(seq);
        self.stream = Some(stream);
        (epoch, seq, ts)
    }
}

impl Stream {
    /// Mark `ext` seen; false if it already was.
    fn mark_seen(&mut self, ext: u64) -> bool {
        let bit = ext % REORDER_WINDOW;
        let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
        let fresh = self.seen[word] & mask == 0;
        self.seen[word] |= mask;
        fresh
    }

    /// Move the window's head to `ext`, forgetting the slots it reuses.
    fn advance_window(&mut self, ext: u64) {
        let gap = ext - self.highest_seq;
        if gap >= REORDER_WINDOW {
            self.seen = [0; WINDOW_WORDS];
        } else {
            for s in self.highest_seq + 1..ext {
                let bit = s % REORDER_WINDOW;
                self.seen[(bit / 64) as usize] &= !(1u64 << (bit % 64));
            }
            let bit = ext % REORDER_WINDOW;
            self.seen[(bit / 64) as usize] &= !(1u64 << (bit % 64));
        }
        self.mark_seen(ext);
    }
}

#[cfg(test)]
mod tests;

//! The splicer: one per tx track. It maps the packets of whichever source the track is on into one
//! continuous outgoing stream with a fixed SSRC.
//!
//! Inside, sequence numbers and timestamps are 64-bit extended; a mapping is an offset added to
//! the source's extended values, fixed at an *anchor* packet. The splicer anchors when the track
//! first starts, when it switches source and when its source restarts (new epoch), and only at a
//! switch point. At an anchor:
//! - the output sequence number continues one past the highest ever sent, and packets of the
//!   source from before the anchor are dropped as stale, so no output number is used twice;
//! - the output timestamp steps by the wall-clock time since the last packet sent, so a player
//!   neither stalls nor jumps;
//! - VP8/VP9 picture ID and TL0PICIDX continue one past the last sent;
//! - if the packet has a prelude (H.264/H.265 parameter sets it lacks), one sequence number is
//!   reserved for it: the caller sends the prelude with [`Splicer::prelude_head`] just before.
//!
//! Between anchors a packet's output values are its input plus the offsets, so reordered packets
//! keep their relative order and fill their own holes.

use crate::codec::{PictureIdField, Tl0PicIdxField, MAX_REWRITE_LEN};
use crate::drop::DropReason;
use crate::rtp::FIXED_HEADER_LEN;
use crate::source::RxPacket;
use crate::types::{ExtSeq, ExtTime, Nanos, RtpTime, SeqNo, SourceId, Ssrc};

/// Rewritten bytes of one outgoing packet: the 12-byte fixed header, then the payload's first
/// `rewrite_len` bytes with codec fields patched.
pub type OutHead = [u8; FIXED_HEADER_LEN + MAX_REWRITE_LEN];

/// Picture ID offsets are kept in the 15-bit space; 7-bit IDs are masked further on output.
const PICTURE_ID_MASK: u32 = (1 << 15) - 1;

/// Where the current mapping is anchored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Anchor {
    source: SourceId,
    epoch: u32,
    /// First input sequence number of the mapping; anything older is stale.
    first_seq: u64,
    seq_offset: u64,
    ts_offset: u64,
    picture_id_offset: u32,
    tl0_offset: u8,
}

/// Per-track splicing state: small, flat and `Copy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Splicer {
    ssrc: Ssrc,
    payload_type: u8,
    anchor: Option<Anchor>,
    /// One past the highest output extended sequence number sent.
    next_seq: u64,
    /// Output extended timestamp of the newest packet sent (or the first to use, before any).
    last_ts: u64,
    /// Timestamp distance between the two newest frames sent: the least step at a switch.
    frame_step: u64,
    /// When the newest packet was sent; `None` before the first.
    last_sent: Option<Nanos>,
    last_picture_id: Option<u32>,
    last_tl0: Option<u8>,
    /// H.264/H.265: the decoder has been sent the current anchor's parameter sets (in-band or as
    /// a prelude). A track that anchored at a keyframe before its source's sets were known gets
    /// them at a later keyframe.
    has_sets: bool,
}

impl Splicer {
    /// A splicer whose first packet will carry `first_seq` and `first_ts` (chosen at random by
    /// the control plane, as RFC 3550 asks) and every packet `ssrc` and `payload_type`.
    pub fn new(ssrc: Ssrc, payload_type: u8, first_seq: SeqNo, first_ts: RtpTime) -> Splicer {
        Splicer {
            ssrc,
            payload_type: payload_type & 0x7f,
            anchor: None,
            // Extended values start above one wrap so nothing below ever underflows.
            next_seq: (1 << 16) + first_seq.0 as u64,
            // Timestamps may go back as far as forward, so they start far from zero too.
            last_ts: (1 << 62) + first_ts.0 as u64,
            frame_step: 0,
            last_sent: None,
            last_picture_id: None,
            last_tl0: None,
            has_sets: false,
        }
    }

    /// The SSRC written into every packet out, whatever the source.
    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }

    /// The source and epoch this splicer is mapping, if it has anchored.
    pub fn anchored_to(&self) -> Option<(SourceId, u32)> {
        self.anchor.map(|a| (a.source, a.epoch))
    }

    /// The output timestamp (as on the wire) that source timestamp `ts` of `source`'s stream
    /// `epoch` maps to, if the splicer is anchored to that stream: what a sender report of the
    /// source becomes on this track.
    pub fn output_timestamp(&self, source: SourceId, epoch: u32, ts: RtpTime) -> Option<RtpTime> {
        let a = self
            .anchor
            .filter(|a| a.source == source && a.epoch == epoch)?;
        // The offset is on extended values; modulo 2^32 it applies to wire timestamps alike.
        Some(RtpTime(ts.0.wrapping_add(a.ts_offset as u32)))
    }

    /// Highest output sequence number sent so far, extended.
    pub fn last_seq(&self) -> Option<ExtSeq> {
        self.last_sent.map(|_| ExtSeq(self.next_seq - 1))
    }

    /// Output timestamp of the last packet sent, extended.
    pub fn last_timestamp(&self) -> Option<ExtTime> {
        self.last_sent.map(|_| ExtTime(self.last_ts))
    }

    /// The mapping already covers `pkt` (same source and epoch): sending it will not anchor.
    #[inline]
    pub fn follows(&self, pkt: &RxPacket) -> bool {
        self.anchor
            .is_some_and(|a| a.source == pkt.source && a.epoch == pkt.epoch)
    }

    /// The decoder holds the parameter sets of the current anchor's stream.
    pub fn has_sets(&self) -> bool {
        self.has_sets
    }

    /// The track was just sent parameter sets in-band.
    pub fn sent_sets(&mut self) {
        self.has_sets = true;
    }

    /// Re-anchor at `pkt`, a packet of the stream the splicer follows that has a prelude, because
    /// the decoder lacks the parameter sets: reserve a sequence number for the prelude before it.
    /// Timestamps keep their mapping (same stream); older packets become stale, so no output
    /// number is used twice.
    pub fn reanchor_for_prelude(&mut self, pkt: &RxPacket) {
        debug_assert!(self.follows(pkt) && pkt.prelude.is_some());
        if let Some(anchor) = self.anchor.as_mut() {
            anchor.first_seq = pkt.seq.0;
            anchor.seq_offset = (self.next_seq + 1).wrapping_sub(pkt.seq.0);
            self.has_sets = true;
        }
    }

    /// Write the RTP header of `pkt`'s prelude: the sequence number reserved just before `pkt`
    /// when the splicer anchored at it, `pkt`'s output timestamp, no marker. Call right after
    /// `pkt` anchored this splicer.
    pub fn prelude_head(&self, pkt: &RxPacket, out: &mut OutHead) {
        let anchor = self
            .anchor
            .expect("the splicer anchored at the prelude's packet");
        debug_assert!(pkt.prelude.is_some() && anchor.first_seq == pkt.seq.0);
        let seq = pkt.seq.0.wrapping_add(anchor.seq_offset) - 1;
        let ts = pkt.timestamp.0.wrapping_add(anchor.ts_offset);
        out[0] = 0x80;
        out[1] = self.payload_type;
        out[2..4].copy_from_slice(&ExtSeq(seq).wire().0.to_be_bytes());
        out[4..8].copy_from_slice(&ExtTime(ts).wire().0.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.0.to_be_bytes());
    }

    /// Forget the mapping: the next packet sent will need a switch point. Output numbering
    /// continues from where it was.
    pub fn detach(&mut self) {
        self.anchor = None;
    }

    /// Map `pkt` (whose bytes are `buf`) to its outgoing header and rewritten payload prefix.
    /// Writes `FIXED_HEADER_LEN + pkt.rewrite_len()` bytes of `out`. `Err` means this track does
    /// not send the packet, for that reason. The fan-out uses `Splicer::splice_shared` with a
    /// `SharedRewrite` made once per packet instead.
    pub fn splice(
        &mut self,
        pkt: &RxPacket,
        buf: &[u8],
        now: Nanos,
        out: &mut OutHead,
    ) -> Result<(), DropReason> {
        self.splice_shared(pkt, &SharedRewrite::new(pkt, buf), now, out)
    }

    /// [`Splicer::splice`] with the per-packet part already done. Inlined into the fan-out loop:
    /// as a call it costs a quarter of the per-track time in spills (measured, BENCHMARKS.md).
    #[inline(always)]
    pub(crate) fn splice_shared(
        &mut self,
        pkt: &RxPacket,
        shared: &SharedRewrite,
        now: Nanos,
        out: &mut OutHead,
    ) -> Result<(), DropReason> {
        let anchor = match self.anchor {
            Some(a) if a.source == pkt.source && a.epoch == pkt.epoch => a,
            _ if pkt.is_switch_point() => self.anchor_at(pkt, now),
            _ => return Err(DropReason::WaitingKeyframe),
        };
        if pkt.seq.0 < anchor.first_seq {
            return Err(DropReason::StaleAfterSwitch);
        }
        let written = self.write_head(&anchor, pkt, shared, out);
        let (seq, ts) = (written.seq, written.ts);
        if seq >= self.next_seq {
            if ts > self.last_ts && self.last_sent.is_some() {
                self.frame_step = ts - self.last_ts;
            }
            self.next_seq = seq + 1;
            self.last_ts = ts;
            self.last_sent = Some(now);
            if written.picture_id.is_some() {
                self.last_picture_id = written.picture_id;
            }
            if written.tl0.is_some() {
                self.last_tl0 = written.tl0;
            }
        }
        Ok(())
    }

    /// [`Splicer::splice_shared`] for a packet replayed from a source's history to a joining
    /// track (see `shard::replay`): its output timestamp is compressed `pace` times towards the
    /// replay's first packet (`key_ts`, the keyframe the splicer anchors at), so the replay,
    /// sent `pace` times faster than real time, keeps the timestamps in step with the sending
    /// and the track is not behind live when it catches up. Returns the timestamp written.
    pub(crate) fn splice_replayed(
        &mut self,
        pkt: &RxPacket,
        shared: &SharedRewrite,
        now: Nanos,
        out: &mut OutHead,
        key_ts: u64,
        pace: u32,
    ) -> Result<u64, DropReason> {
        let before = self.last_ts;
        let had_sent = self.last_sent.is_some();
        self.splice_shared(pkt, shared, now, out)?;
        let anchor = self.anchor.expect("a spliced packet anchored the splicer");
        let base = key_ts.wrapping_add(anchor.ts_offset);
        let ts = base.wrapping_add(pkt.timestamp.0.saturating_sub(key_ts) / u64::from(pace.max(1)));
        out[4..8].copy_from_slice(&ExtTime(ts).wire().0.to_be_bytes());
        if ts > before && had_sent {
            self.frame_step = ts - before;
        }
        self.last_ts = ts;
        Ok(ts)
    }

    /// After a replay: packets of the stream from `src_ts` on keep the distance to the last
    /// timestamp sent that they have in the source (time runs at its own pace again, from
    /// where the compressed replay left it).
    pub(crate) fn continue_timestamps_from(&mut self, src_ts: u64) {
        let last = self.last_ts;
        if let Some(anchor) = self.anchor.as_mut() {
            anchor.ts_offset = last.wrapping_sub(src_ts);
        }
    }

    /// Write `pkt`'s outgoing header and rewritten prefix under `anchor`; changes nothing. The
    /// same bytes for the same packet and anchor, so a resent packet is the one first sent.
    #[inline(always)]
    fn write_head(
        &self,
        anchor: &Anchor,
        pkt: &RxPacket,
        shared: &SharedRewrite,
        out: &mut OutHead,
    ) -> Written {
        let seq = pkt.seq.0.wrapping_add(anchor.seq_offset);
        let ts = pkt.timestamp.0.wrapping_add(anchor.ts_offset);
        let mut written = Written {
            seq,
            ts,
            picture_id: None,
            tl0: None,
        };
        out[0] = shared.first_byte;
        out[1] = shared.marker_bit | self.payload_type;
        out[2..4].copy_from_slice(&ExtSeq(seq).wire().0.to_be_bytes());
        out[4..8].copy_from_slice(&ExtTime(ts).wire().0.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.0.to_be_bytes());
        // Always the full prefix: a fixed-size copy is cheaper than a variable one, and bytes
        // past `rewrite_len` are never sent.
        out[FIXED_HEADER_LEN..].copy_from_slice(&shared.prefix);
        if let Some(p) = shared.picture_id {
            let value = (p.value as u32).wrapping_add(anchor.picture_id_offset) & p.mask();
            let at = FIXED_HEADER_LEN + p.offset as usize;
            if p.wide {
                // Keep the M bit, write 15 bits.
                out[at] = 0x80 | (value >> 8) as u8;
                out[at + 1] = value as u8;
            } else {
                out[at] = value as u8 & 0x7f;
            }
            written.picture_id = Some(value);
        }
        if let Some(t) = shared.tl0picidx {
            let value = t.value.wrapping_add(anchor.tl0_offset);
            out[FIXED_HEADER_LEN + t.offset as usize] = value;
            written.tl0 = Some(value);
        }
        written
    }

    /// Fix the mapping so that `pkt` continues the output stream.
    #[cold]
    fn anchor_at(&mut self, pkt: &RxPacket, now: Nanos) -> Anchor {
        let first_ts = match self.last_sent {
            Some(sent) => {
                let elapsed = now.saturating_since(sent).0 as u128;
                let step = (elapsed * pkt.clock_rate as u128 / 1_000_000_000) as u64;
                // Never less than the last frame interval: a new source's keyframe can arrive
                // just after the old source's last packet, and two frames a few ms apart look
                // like one time slot to a player (ffmpeg reports non-monotonic timestamps). A
                // sender may step its timestamps anywhere, so a "frame interval" beyond a second
                // of media is not one, and the sum wraps (timestamps are modular) rather than
                // overflow.
                let frame_step = self.frame_step.min(u64::from(pkt.clock_rate));
                self.last_ts.wrapping_add(step.max(frame_step).max(1))
            }
            None => self.last_ts,
        };
        let picture_id_offset = match (pkt.payload.picture_id, self.last_picture_id) {
            (Some(p), Some(last)) => (last + 1).wrapping_sub(p.value as u32) & PICTURE_ID_MASK,
            _ => 0,
        };
        let tl0_offset = match (pkt.payload.tl0picidx, self.last_tl0) {
            (Some(t), Some(last)) => last.wrapping_add(1).wrapping_sub(t.value),
            _ => 0,
        };
        let prelude_seqs = u64::from(pkt.prelude.is_some());
        let anchor = Anchor {
            source: pkt.source,
            epoch: pkt.epoch,
            first_seq: pkt.seq.0,
            seq_offset: (self.next_seq + prelude_seqs).wrapping_sub(pkt.seq.0),
            ts_offset: first_ts.wrapping_sub(pkt.timestamp.0),
            picture_id_offset,
            tl0_offset,
        };
        self.anchor = Some(anchor);
        self.has_sets = pkt.payload.parameter_sets || pkt.prelude.is_some();
        anchor
    }
}

/// What [`Splicer::write_head`] wrote: output extended sequence number and timestamp, and the
/// codec fields it rewrote.
#[derive(Clone, Copy)]
struct Written {
    seq: u64,
    ts: u64,
    picture_id: Option<u32>,
    tl0: Option<u8>,
}

/// The part of rewriting one packet that every track shares, done once per packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SharedRewrite {
    first_byte: u8,
    marker_bit: u8,
    /// The payload's first bytes (up to `MAX_REWRITE_LEN`), zero-filled past its end.
    prefix: [u8; MAX_REWRITE_LEN],
    picture_id: Option<PictureIdField>,
    tl0picidx: Option<Tl0PicIdxField>,
}

impl SharedRewrite {
    /// Read what every track copies from `pkt`, whose bytes are `buf`.
    pub(crate) fn new(pkt: &RxPacket, buf: &[u8]) -> SharedRewrite {
        let start = pkt.header.payload_start as usize;
        let available = (pkt.header.payload_end as usize - start).min(MAX_REWRITE_LEN);
        let mut prefix = [0u8; MAX_REWRITE_LEN];
        prefix[..available].copy_from_slice(&buf[start..start + available]);
        SharedRewrite {
            first_byte: buf[0],
            marker_bit: u8::from(pkt.header.marker) << 7,
            prefix,
            picture_id: pkt.payload.picture_id,
            tl0picidx: pkt.payload.tl0picidx,
        }
    }
}

mod resend;
#[cfg(test)]
mod tests;

pub(crate) use resend::extend_before;
pub use resend::{Mapping, MappingLog, Resend, LOGGED_MAPPINGS, RESOLVABLE_SPAN};

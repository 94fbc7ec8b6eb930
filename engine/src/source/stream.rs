//! The current stream's numbering: 16-bit sequence numbers and 32-bit timestamps extended to 64
//! bits, duplicates found in a window of the last [`REORDER_WINDOW`] numbers, and where a packet
//! is too far off to be of this stream at all.

use super::REORDER_WINDOW;
use crate::codec::PayloadInfo;
use crate::drop::DropReason;
use crate::rtp::RtpHeader;
use crate::types::{Codec, Nanos, Ssrc};

/// How far ahead of the newest packet a sequence number may jump and still be the same stream
/// (RFC 3550 A.1's MAX_DROPOUT). Beyond it the packet belongs to another stream (on probation).
pub(super) const MAX_DROPOUT: i32 = 3000;

/// Behind the window but within this, a packet is a straggler (dropped as too old); further back,
/// it belongs to another stream (on probation).
pub(super) const MAX_MISORDER: i32 = 3000;

pub(super) const WINDOW_WORDS: usize = (REORDER_WINDOW / 64) as usize;

/// Sequencing state of the current stream of a source.
#[derive(Clone, Copy, Debug)]
pub(super) struct Stream {
    pub(super) ssrc: Ssrc,
    /// The payload type of its first packet.
    pub(super) payload_type: u8,
    pub(super) epoch: u32,
    pub(super) highest_seq: u64,
    /// Timestamp of the packet with the highest sequence number: the reference for unwrapping.
    pub(super) highest_ts: u64,
    pub(super) highest_marker: bool,
    /// A packet of the current access unit (in order) carried a keyframe NAL (H.264/H.265).
    pub(super) key_in_frame: bool,
    /// When its last packet was accepted.
    pub(super) last_at: Nanos,
    /// Bit `s % REORDER_WINDOW` is set when extended sequence `s` (within the window) was seen.
    pub(super) seen: [u64; WINDOW_WORDS],
}

/// Where a packet of the current stream's SSRC falls.
pub(super) enum Placed {
    /// In the stream: epoch, extended sequence number and timestamp.
    In(u32, u64, u64),
    /// Too far from the stream's sequence: another stream.
    Outside,
}

impl Stream {
    /// Place a packet of this stream's SSRC: extend its sequence number and timestamp, drop
    /// duplicates and stragglers; a sequence number too far off is another stream.
    pub(super) fn place(
        &mut self,
        codec: Codec,
        header: &RtpHeader,
        payload: &mut PayloadInfo,
        now: Nanos,
    ) -> Result<Placed, DropReason> {
        let seq = header.seq.0;
        let delta = seq.wrapping_sub(self.highest_seq as u16) as i16 as i32;
        let ts_delta = header.timestamp.0.wrapping_sub(self.highest_ts as u32) as i32 as i64;
        // Timestamps are modular: whatever a sender does, the extension wraps, never overflows.
        let timestamp = self.highest_ts.wrapping_add_signed(ts_delta);

        if delta > 0 && delta <= MAX_DROPOUT {
            let ext = self.highest_seq + delta as u64;
            // A packet continuing an unfinished frame cannot start one, whatever its payload
            // looks like (e.g. a repeated H.264 SPS before a picture's second slice). One
            // exception: H.264/H.265 encoders may open an access unit with an AUD or SEI packet
            // that is not key; then the first packet carrying a parameter set or IDR is where a
            // decoder can start (it needs no AUD), and only later ones continue the frame.
            let continues = delta == 1 && timestamp == self.highest_ts && !self.highest_marker;
            if continues {
                let opens_key =
                    codec.parameter_sets_in_band() && payload.keyframe && !self.key_in_frame;
                if !opens_key {
                    payload.frame_start = false;
                }
                self.key_in_frame |= payload.keyframe;
            } else {
                self.key_in_frame = payload.keyframe;
            }
            self.advance_window(ext);
            self.highest_seq = ext;
            self.highest_ts = timestamp;
            self.highest_marker = header.marker;
            self.last_at = now;
            return Ok(Placed::In(self.epoch, ext, timestamp));
        }
        if delta == 0 {
            return Err(DropReason::Duplicate);
        }
        if delta < 0 && (-delta as u64) < REORDER_WINDOW {
            let ext = self.highest_seq - (-delta) as u64;
            if !self.mark_seen(ext) {
                return Err(DropReason::Duplicate);
            }
            self.last_at = now;
            return Ok(Placed::In(self.epoch, ext, timestamp));
        }
        if delta < 0 && -delta <= MAX_MISORDER {
            return Err(DropReason::TooOld);
        }
        Ok(Placed::Outside)
    }

    /// Mark `ext` seen; false if it already was.
    pub(super) fn mark_seen(&mut self, ext: u64) -> bool {
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

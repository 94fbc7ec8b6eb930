//! Output descriptors: what a shard asks the I/O layer to send for one track.
//!
//! A descriptor holds only what differs per track (destination and rewritten bytes); the rest of
//! the packet is referenced in the shared receive buffer, never copied. The I/O layer sends each
//! descriptor as up to four segments (one iovec each):
//! 1. the rewritten 12-byte fixed header,
//! 2. the packet's CSRC list and header extension, as received,
//! 3. the rewritten codec prefix (VP8/VP9 descriptor bytes up to the last rewritten field),
//! 4. the rest of the payload and padding, as received.
//!
//! A *prelude* transmit (cached H.264/H.265 parameter sets sent before the keyframe a track
//! starts at) is its rewritten header followed by the prelude bytes stored after the packet.

use std::net::SocketAddr;

use crate::rtp::FIXED_HEADER_LEN;
use crate::source::RxPacket;
use crate::splicer::OutHead;
use crate::types::TrackId;

/// One outgoing copy of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The subscriber's address.
    pub dest: SocketAddr,
    /// The track the copy belongs to, for reporting a failed send
    /// ([`crate::Shard::record_send_failure`]).
    pub track: TrackId,
    /// Rewritten fixed header followed by the rewritten codec prefix.
    pub head: OutHead,
    /// This copy is the packet's prelude, not the packet.
    pub prelude: bool,
    /// Which packet of a run this copies ([`crate::Shard::fan_out_run`]); written only by a
    /// run of several packets (see [`crate::RunFanOut::indexed`]), so that a one-packet
    /// fan-out's loop pays no store for it.
    pub run_index: u8,
}

impl Transmit {
    /// The segments that make up the outgoing packet, in order; empty segments may be skipped.
    /// `pkt` and `buf` must be the packet this transmit was produced from.
    pub fn segments<'a>(&'a self, pkt: &RxPacket, buf: &'a [u8]) -> [&'a [u8]; 4] {
        if self.prelude {
            let prelude = pkt.prelude.map_or(0..0, |p| p.range());
            return [&self.head[..FIXED_HEADER_LEN], &[], &[], &buf[prelude]];
        }
        let payload_start = pkt.header.payload_start as usize;
        let rewrite_len = pkt.rewrite_len();
        // The packet ends at `header.len`; a prelude may follow it in `buf`.
        let tail = &buf[payload_start + rewrite_len..pkt.header.len as usize];
        if payload_start == FIXED_HEADER_LEN {
            // No CSRCs or extension between them: the rewritten header and codec prefix are
            // adjacent in `head`, so they go as one segment (every iovec costs the kernel a
            // little per copy).
            return [&self.head[..FIXED_HEADER_LEN + rewrite_len], &[], &[], tail];
        }
        [
            &self.head[..FIXED_HEADER_LEN],
            &buf[FIXED_HEADER_LEN..payload_start],
            &self.head[FIXED_HEADER_LEN..FIXED_HEADER_LEN + rewrite_len],
            tail,
        ]
    }

    /// The outgoing packet as one buffer. For tests and tools; the send path uses `segments`.
    pub fn to_vec(&self, pkt: &RxPacket, buf: &[u8]) -> Vec<u8> {
        self.segments(pkt, buf).concat()
    }
}

/// Smallest batch capacity: one packet and its prelude.
pub const MIN_BATCH: usize = 2;

/// A caller-owned batch of transmits with a fixed capacity (one `sendmmsg` worth). Its slots are
/// allocated once; filling it writes each transmit in place, never allocating.
#[derive(Clone, Debug)]
pub struct TransmitBatch {
    slots: Box<[Transmit]>,
    len: usize,
    /// A prelude was committed since the last `clear`.
    has_preludes: bool,
}

impl TransmitBatch {
    /// # Panics
    /// If `capacity` is below 2: a track that starts at a packet with a prelude needs two
    /// transmits in one batch, and a batch that never has room would never let a fan-out finish.
    pub fn with_capacity(capacity: usize) -> TransmitBatch {
        assert!(
            capacity >= MIN_BATCH,
            "a transmit batch needs room for at least {MIN_BATCH} transmits"
        );
        let empty = Transmit {
            dest: SocketAddr::from(([0, 0, 0, 0], 0)),
            track: TrackId(0),
            head: [0; FIXED_HEADER_LEN + crate::codec::MAX_REWRITE_LEN],
            prelude: false,
            run_index: 0,
        };
        TransmitBatch {
            slots: vec![empty; capacity].into_boxed_slice(),
            len: 0,
            has_preludes: false,
        }
    }

    /// Slots in all, fixed at creation.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Transmits written since the last `clear`.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No transmits written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// No slot left: send the batch and `clear` it before filling on.
    pub fn is_full(&self) -> bool {
        self.len >= self.slots.len()
    }

    /// Slots still free.
    pub fn room(&self) -> usize {
        self.slots.len() - self.len
    }

    /// Forget every transmit, once sent, so the slots can be filled again.
    pub fn clear(&mut self) {
        // Every free slot keeps `prelude == false`, so the fan-out loop need not write it per
        // copy (that store cost 4–13% of the per-subscriber time, BENCHMARKS.md).
        if self.has_preludes {
            self.slots[..self.len]
                .iter_mut()
                .for_each(|t| t.prelude = false);
            self.has_preludes = false;
        }
        self.len = 0;
    }

    /// The transmits written, in order.
    pub fn as_slice(&self) -> &[Transmit] {
        &self.slots[..self.len]
    }

    /// The next free slot, to be written in place and then kept with `commit`.
    #[inline]
    pub(crate) fn next_slot(&mut self) -> &mut Transmit {
        &mut self.slots[self.len]
    }

    #[inline]
    pub(crate) fn commit(&mut self) {
        debug_assert!(!self.slots[self.len].prelude);
        self.len += 1;
    }

    /// Keep the next slot as a prelude transmit.
    pub(crate) fn commit_prelude(&mut self) {
        self.slots[self.len].prelude = true;
        self.has_preludes = true;
        self.len += 1;
    }
}

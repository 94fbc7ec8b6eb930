//! Output descriptors: what a shard asks the I/O layer to send for one track.
//!
//! A descriptor holds only what differs per track (destination and rewritten bytes); the rest of
//! the packet is referenced in the shared receive buffer, never copied. The I/O layer sends each
//! descriptor as up to four segments (one iovec each):
//! 1. the rewritten 12-byte fixed header,
//! 2. the packet's CSRC list and header extension, as received,
//! 3. the rewritten codec prefix (VP8/VP9 descriptor bytes up to the last rewritten field),
//! 4. the rest of the payload and padding, as received.

use std::net::SocketAddr;

use crate::rtp::FIXED_HEADER_LEN;
use crate::source::RxPacket;
use crate::splicer::OutHead;
use crate::types::TrackId;

/// One outgoing copy of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub dest: SocketAddr,
    pub track: TrackId,
    /// Rewritten fixed header followed by the rewritten codec prefix.
    pub head: OutHead,
}

impl Transmit {
    /// The segments that make up the outgoing packet, in order; empty segments may be skipped.
    /// `pkt` and `buf` must be the packet this transmit was produced from.
    pub fn segments<'a>(&'a self, pkt: &RxPacket, buf: &'a [u8]) -> [&'a [u8]; 4] {
        let payload_start = pkt.header.payload_start as usize;
        let rewrite_len = pkt.rewrite_len();
        let tail = &buf[payload_start + rewrite_len..];
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

/// A caller-owned batch of transmits with a fixed capacity (one `sendmmsg` worth). Its slots are
/// allocated once; filling it writes each transmit in place, never allocating.
#[derive(Clone, Debug)]
pub struct TransmitBatch {
    slots: Box<[Transmit]>,
    len: usize,
}

impl TransmitBatch {
    /// # Panics
    /// If `capacity` is zero: a batch that can hold nothing would never let a fan-out finish.
    pub fn with_capacity(capacity: usize) -> TransmitBatch {
        assert!(
            capacity > 0,
            "a transmit batch needs room for at least one transmit"
        );
        let empty = Transmit {
            dest: SocketAddr::from(([0, 0, 0, 0], 0)),
            track: TrackId(0),
            head: [0; FIXED_HEADER_LEN + crate::codec::MAX_REWRITE_LEN],
        };
        TransmitBatch {
            slots: vec![empty; capacity].into_boxed_slice(),
            len: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len >= self.slots.len()
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

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
        self.len += 1;
    }
}

//! A new stream on probation: a packet stream of a source that is not its current stream (another
//! SSRC, or the same SSRC far from its sequence), and the packets it sent so far, held.
//!
//! RFC 3550 (A.1 and section 8) takes a new stream only once it has sent a few packets in
//! sequence. corecast adds a second condition, checked by [`super::SourceIngress`]: the current
//! stream must have gone silent. A real restart meets both; a second stream multiplexed on the
//! source's port (RTX, FEC), or a stray or spoofed datagram, meets neither. The packets held
//! meanwhile are released in order once the stream is taken, so a sender that restarts with a
//! keyframe is forwarded from that keyframe's first packet.

use std::collections::VecDeque;

use crate::rtp::RtpHeader;
use crate::types::{Nanos, Ssrc};

/// The largest datagram that can be held (the node never reads larger ones).
pub const HOLD_SLOT: usize = 2048;

/// What identifies the stream on probation and how far it got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Candidate {
    pub ssrc: Ssrc,
    pub payload_type: u8,
    /// Highest sequence number seen, as on the wire.
    pub highest_seq: u16,
    /// Packets in sequence (each one past the previous) up to `highest_seq`.
    pub in_sequence: u32,
    /// When the last of its packets arrived.
    pub last_at: Nanos,
}

/// Where a packet stands against the candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Membership {
    /// Ahead of the highest (by up to `max_dropout`): the candidate's next packet.
    Ahead,
    /// At or behind the highest, within `window`: reordered or duplicated, held all the same
    /// (sequencing sorts it out when released).
    Behind,
    /// Another stream.
    Outside,
}

impl Candidate {
    pub fn start(header: &RtpHeader, now: Nanos) -> Candidate {
        Candidate {
            ssrc: header.ssrc,
            payload_type: header.payload_type,
            highest_seq: header.seq.0,
            in_sequence: 1,
            last_at: now,
        }
    }

    pub fn membership(&self, header: &RtpHeader, max_dropout: i32, window: i32) -> Membership {
        if header.ssrc != self.ssrc || header.payload_type != self.payload_type {
            return Membership::Outside;
        }
        let delta = header.seq.0.wrapping_sub(self.highest_seq) as i16 as i32;
        if delta > 0 && delta <= max_dropout {
            Membership::Ahead
        } else if delta <= 0 && delta > -window {
            Membership::Behind
        } else {
            Membership::Outside
        }
    }

    /// Count a member packet. A gap restarts the count, as RFC 3550 A.1's probation does.
    pub fn observe(&mut self, header: &RtpHeader, membership: Membership, now: Nanos) {
        if membership == Membership::Ahead {
            let step = header.seq.0.wrapping_sub(self.highest_seq);
            self.in_sequence = if step == 1 { self.in_sequence + 1 } else { 1 };
            self.highest_seq = header.seq.0;
        }
        self.last_at = now;
    }
}

/// One held packet: its slot in [`Hold`]'s buffer and when it arrived.
#[derive(Clone, Copy, Debug, Default)]
struct Held {
    len: u16,
    at: Nanos,
}

/// A bounded ring of held datagrams in fixed slots, allocated with the source: holding, giving
/// way and releasing never allocate, whatever the network sends.
#[derive(Clone, Debug, Default)]
pub(super) struct Hold {
    bytes: Vec<u8>,
    held: VecDeque<(usize, Held)>,
    /// Slots not in `held`.
    free: Vec<usize>,
    /// The slot of the packet most recently taken by `pop_front`; its bytes stay readable until
    /// the next `push`.
    taken: Option<(usize, u16)>,
}

impl Hold {
    pub fn new(capacity: usize) -> Hold {
        Hold {
            bytes: vec![0; capacity * HOLD_SLOT],
            held: VecDeque::with_capacity(capacity),
            free: (0..capacity).rev().collect(),
            taken: None,
        }
    }

    /// Whether `buf` can be held at all.
    pub fn fits(&self, buf: &[u8]) -> bool {
        buf.len() <= HOLD_SLOT && !self.bytes.is_empty()
    }

    /// Hold `buf` (which [`Hold::fits`]). When the ring is full the oldest packet gives way:
    /// returns how many were given up (0 or 1).
    pub fn push(&mut self, buf: &[u8], at: Nanos) -> u64 {
        debug_assert!(self.fits(buf));
        self.taken = None;
        let mut given_up = 0;
        if self.free.is_empty() {
            let (slot, _) = self.held.pop_front().expect("a full ring holds packets");
            self.free.push(slot);
            given_up = 1;
        }
        let slot = self.free.pop().expect("a slot was freed");
        self.bytes[slot * HOLD_SLOT..slot * HOLD_SLOT + buf.len()].copy_from_slice(buf);
        self.held.push_back((
            slot,
            Held {
                len: buf.len() as u16,
                at,
            },
        ));
        given_up
    }

    /// Take the oldest held packet: its arrival time; its bytes are [`Hold::taken_bytes`].
    pub fn pop_front(&mut self) -> Option<Nanos> {
        let (slot, held) = self.held.pop_front()?;
        self.free.push(slot);
        self.taken = Some((slot, held.len));
        Some(held.at)
    }

    pub fn taken_bytes(&self) -> &[u8] {
        match self.taken {
            Some((slot, len)) => &self.bytes[slot * HOLD_SLOT..slot * HOLD_SLOT + len as usize],
            None => &[],
        }
    }

    /// Give up every held packet; returns how many there were.
    pub fn clear(&mut self) -> u64 {
        let n = self.held.len() as u64;
        while let Some((slot, _)) = self.held.pop_front() {
            self.free.push(slot);
        }
        self.taken = None;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_ring_gives_up_its_oldest_packet_and_keeps_order() {
        let mut hold = Hold::new(2);
        assert_eq!(hold.push(&[1], Nanos(1)), 0);
        assert_eq!(hold.push(&[2, 2], Nanos(2)), 0);
        assert_eq!(hold.push(&[3, 3, 3], Nanos(3)), 1, "the first gave way");
        assert_eq!(hold.pop_front(), Some(Nanos(2)));
        assert_eq!(hold.taken_bytes(), &[2, 2]);
        assert_eq!(hold.pop_front(), Some(Nanos(3)));
        assert_eq!(hold.taken_bytes(), &[3, 3, 3]);
        assert_eq!(hold.pop_front(), None);
        assert!(!hold.fits(&[4; HOLD_SLOT + 1]), "too big to hold");
        assert!(!Hold::new(0).fits(&[4]));
    }
}

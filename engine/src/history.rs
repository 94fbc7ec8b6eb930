//! A source's recent packets, kept by a shard for loss repair and for joining at the current GOP.
//!
//! Each shard already holds every packet of the sources it forwards while it sends them; the
//! history keeps a handle to each (the I/O layer's pool slot: no copy) for a while longer. What
//! it answers:
//! - [`PacketHistory::get`]: the packet of a source epoch and extended sequence number, to
//!   resend when a subscriber's NACK names it (through its track's splicer, which maps the
//!   output number back);
//! - [`PacketHistory::since_switch_point`]: the packets from the newest switch point (the first
//!   packet of the last keyframe) on, in sequence order, to replay to a track that joins.
//!
//! Bounds, so a shard's memory does not grow with a source's rate or a sender's behaviour: a
//! packet is let go once it is [`HistoryConfig::span`] older than the newest (by arrival), and
//! the oldest is let go when [`HistoryConfig::max_packets`] are held. The entries are allocated
//! once, when the history is made (a source gets one only while some track of the shard is on
//! it): pushing a packet never allocates.
//!
//! Packets are kept in (epoch, sequence) order. The source's ingress hands them over in arrival
//! order, which is sequence order except for reordering on the network: a late packet is put in
//! its place (a move of the entries after it, rare and short).

use std::collections::VecDeque;

use crate::source::RxPacket;
use crate::types::{ExtSeq, Nanos};

/// How much of a source a history keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryConfig {
    /// Packets older than this (arrival time, against the newest packet's) are let go.
    pub span: Nanos,
    /// At most this many packets are held; the oldest goes first.
    pub max_packets: usize,
}

/// The default span for video: two seconds hold a GOP of encoders that send a keyframe every
/// two seconds or more often (browsers and most live encoders), and NACKs come within a few
/// round trips.
pub const VIDEO_SPAN: Nanos = Nanos::from_millis(2_000);

/// What a history did, for metrics. Monotonic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistoryCounters {
    /// Packets taken in.
    pub stored: u64,
    /// Packets let go because they were older than the span.
    pub expired: u64,
    /// Packets let go because the history was full (its span held more than `max_packets`).
    pub evicted_full: u64,
    /// Packets refused because the history already held one with the same epoch and sequence.
    pub duplicates: u64,
    /// Packets refused because they were older than everything held in a full history.
    pub too_old: u64,
}

#[derive(Clone)]
struct Entry<H> {
    pkt: RxPacket,
    handle: H,
}

/// One source's recent packets, with the caller's handle to each (`H`: the pool slot that holds
/// its bytes).
#[derive(Clone)]
pub struct PacketHistory<H> {
    config: HistoryConfig,
    entries: VecDeque<Entry<H>>,
    /// Bytes of the packets held (their datagram lengths), for metrics.
    bytes: usize,
    counters: HistoryCounters,
}

impl<H> std::fmt::Debug for PacketHistory<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketHistory")
            .field("config", &self.config)
            .field("packets", &self.entries.len())
            .field("bytes", &self.bytes)
            .field("counters", &self.counters)
            .finish()
    }
}

impl<H> PacketHistory<H> {
    /// An empty history with room for `config.max_packets` (allocated now, never again).
    pub fn new(config: HistoryConfig) -> PacketHistory<H> {
        let max_packets = config.max_packets.max(1);
        PacketHistory {
            config: HistoryConfig {
                max_packets,
                ..config
            },
            entries: VecDeque::with_capacity(max_packets),
            bytes: 0,
            counters: HistoryCounters::default(),
        }
    }

    /// The bounds it keeps to.
    pub fn config(&self) -> HistoryConfig {
        self.config
    }

    /// Packets held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Nothing held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of the packets held (datagram lengths; the slots that hold them may be larger).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// What it did so far.
    pub fn counters(&self) -> &HistoryCounters {
        &self.counters
    }

    /// Keep `pkt`, whose bytes `handle` holds. Lets go of what the bounds no longer allow;
    /// returns the handles let go, through `release` (the caller's slots become free again
    /// when their last handle is dropped, which dropping does as well: `release` is for
    /// callers that count). A packet already held (same epoch and sequence) is refused and its
    /// handle given back.
    pub fn push(&mut self, pkt: RxPacket, handle: H, mut release: impl FnMut(H)) {
        let key = (pkt.epoch, pkt.seq);
        let newest_key = self.entries.back().map(|e| (e.pkt.epoch, e.pkt.seq));
        let at = match newest_key {
            None => 0,
            Some(newest) if key > newest => self.entries.len(),
            Some(_) => match self.position(key) {
                Ok(_) => {
                    self.counters.duplicates += 1;
                    release(handle);
                    return;
                }
                Err(at) => at,
            },
        };
        if at == 0 && self.entries.len() == self.config.max_packets {
            // Older than anything held, with no room: it would be the first to go.
            self.counters.too_old += 1;
            release(handle);
            return;
        }
        let newest_arrival = self
            .entries
            .back()
            .map_or(pkt.received_at, |e| e.pkt.received_at.max(pkt.received_at));
        self.bytes += pkt.header.len as usize;
        self.counters.stored += 1;
        let at = if self.entries.len() == self.config.max_packets {
            self.pop_front(&mut release);
            self.counters.evicted_full += 1;
            at - 1
        } else {
            at
        };
        self.entries.insert(at, Entry { pkt, handle });
        let oldest_kept = Nanos(newest_arrival.0.saturating_sub(self.config.span.0));
        while self
            .entries
            .front()
            .is_some_and(|e| e.pkt.received_at < oldest_kept)
        {
            self.pop_front(&mut release);
            self.counters.expired += 1;
        }
    }

    fn pop_front(&mut self, release: &mut impl FnMut(H)) {
        if let Some(e) = self.entries.pop_front() {
            self.bytes -= e.pkt.header.len as usize;
            release(e.handle);
        }
    }

    fn position(&self, key: (u32, ExtSeq)) -> Result<usize, usize> {
        self.entries
            .binary_search_by(|e| (e.pkt.epoch, e.pkt.seq).cmp(&key))
    }

    /// The packet of `epoch` with extended sequence number `seq`, if still held.
    pub fn get(&self, epoch: u32, seq: ExtSeq) -> Option<(&RxPacket, &H)> {
        let i = self.position((epoch, seq)).ok()?;
        let e = &self.entries[i];
        Some((&e.pkt, &e.handle))
    }

    /// The first packet held at or after `seq` of `epoch` (in (epoch, sequence) order), and
    /// whether the history still held everything from `seq` on (false: packets from `seq` up
    /// to it were let go, or never came).
    pub fn at_or_after(&self, epoch: u32, seq: ExtSeq) -> Option<(&RxPacket, &H, bool)> {
        let i = match self.position((epoch, seq)) {
            Ok(i) | Err(i) => i,
        };
        let e = self.entries.get(i)?;
        Some((&e.pkt, &e.handle, (e.pkt.epoch, e.pkt.seq) == (epoch, seq)))
    }

    /// The packets from the newest switch point of the newest epoch on, in sequence order:
    /// what a joining track replays before it takes live packets. Empty when the history holds
    /// no switch point of that epoch (the track then waits for the next keyframe, as without a
    /// history).
    pub fn since_switch_point(&self) -> impl Iterator<Item = (&RxPacket, &H)> + '_ {
        let start = self.newest_switch_point().unwrap_or(self.entries.len());
        self.entries.range(start..).map(|e| (&e.pkt, &e.handle))
    }

    /// Index of the newest switch point of the newest epoch.
    fn newest_switch_point(&self) -> Option<usize> {
        let epoch = self.entries.back()?.pkt.epoch;
        self.entries
            .iter()
            .enumerate()
            .rev()
            .take_while(|(_, e)| e.pkt.epoch == epoch)
            .find(|(_, e)| e.pkt.is_switch_point())
            .map(|(i, _)| i)
    }

    /// Let go of everything (the shard no longer forwards the source).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests;

//! Received packets, shared with the shards without copying.
//!
//! The ingest thread owns a fixed ring of slots, each behind an `Arc`. An accepted packet is copied
//! once into a free slot and an `Arc` clone goes to every shard that hosts its source; a shard
//! drops its clone when it has sent the packet. A slot is free again when the ingest thread holds
//! the only reference (`Arc::get_mut` succeeds), so reuse needs no lock and no allocation, and the
//! `Arc`'s release/acquire ordering makes the shards' reads happen before the next write.

use std::sync::Arc;

use corecast_engine::codec::parameter_sets::MAX_PRELUDE_LEN;
use corecast_engine::source::Prelude;
use corecast_engine::RxPacket;

/// Largest datagram a slot holds; longer ones are dropped as malformed (RTP over UDP on an
/// Ethernet path is at most ~1500 bytes).
pub const MAX_PACKET: usize = 2048;

/// A slot holds a packet and, after it, its prelude (cached parameter sets), if any.
pub(crate) const SLOT_BYTES: usize = MAX_PACKET + MAX_PRELUDE_LEN;

/// One received packet: its bytes (then its prelude's) and the engine's metadata.
pub struct Slot {
    data: Box<[u8; SLOT_BYTES]>,
    len: usize,
    pkt: Option<RxPacket>,
}

impl Slot {
    pub fn bytes(&self) -> &[u8] {
        &self.data[..self.len]
    }

    /// The packet's metadata; every slot handed to a shard has it.
    pub fn packet(&self) -> Option<&RxPacket> {
        self.pkt.as_ref()
    }
}

/// Slots a node needs: a slot is shared by every shard it goes to, so while shards keep pace
/// the slots in flight are one queue's depth plus a packet per shard (shards falling behind
/// unevenly can hold more; then the pool runs out before a queue does, and the packet is
/// dropped and counted as `queue_full` just the same). Histories hold slots too, a source's the
/// same in every shard: room for each of `max_sources` to fill its history.
pub fn slots_needed(
    queue_depth: usize,
    shards: usize,
    history_packets: Option<usize>,
    max_sources: usize,
) -> usize {
    queue_depth + 2 * shards + 256 + history_packets.map_or(0, |n| n * max_sources)
}

/// Bytes a pool of `slots` takes once every slot has held a packet.
pub fn pool_bytes(slots: usize) -> usize {
    slots * (SLOT_BYTES + std::mem::size_of::<Slot>() + 2 * std::mem::size_of::<usize>())
}

/// The memory the kernel says is available now (`MemAvailable`), in bytes; `None` where it
/// does not say.
pub fn memory_available() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A ring of slots in the order they were filled, grown as far as `capacity` only when the
/// oldest slot is still held, so a node holds the slots its traffic needs (histories and
/// packets in flight), not the `capacity` its flags allow.
pub struct Pool {
    slots: Vec<Arc<Slot>>,
    capacity: usize,
    cursor: usize,
}

impl Pool {
    pub fn new(capacity: usize) -> Pool {
        let capacity = capacity.max(1);
        Pool {
            slots: Vec::new(),
            capacity,
            cursor: 0,
        }
    }

    /// Slots made so far (at most the capacity).
    #[cfg(test)]
    fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Copy `bytes` and `pkt`, and `prelude` after the bytes, into the next free slot and hand
    /// out a reference to it; `None` when every slot is still held by a shard (the shards are
    /// behind: the caller drops the packet).
    pub fn store(
        &mut self,
        bytes: &[u8],
        mut pkt: RxPacket,
        prelude: Option<&[u8]>,
    ) -> Option<&Arc<Slot>> {
        debug_assert!(bytes.len() <= MAX_PACKET);
        let i = self.free_slot()?;
        let slot = Arc::get_mut(&mut self.slots[i]).expect("free_slot found it unshared");
        slot.data[..bytes.len()].copy_from_slice(bytes);
        slot.len = bytes.len();
        pkt.prelude = prelude.map(|p| {
            debug_assert!(p.len() <= MAX_PRELUDE_LEN);
            slot.data[slot.len..slot.len + p.len()].copy_from_slice(p);
            let at = Prelude {
                start: slot.len as u16,
                len: p.len() as u16,
            };
            slot.len += p.len();
            at
        });
        slot.pkt = Some(pkt);
        self.cursor = (i + 1) % self.slots.len();
        Some(&self.slots[i])
    }

    /// The slot at the cursor (the oldest) when free; else a new one put in its place while
    /// the ring may grow (the ring stays in filling order, so the cursor keeps finding the
    /// oldest); else the next free one after it. Growing allocates, at most `capacity` times
    /// in a node's life: on the way up to what its traffic holds.
    fn free_slot(&mut self) -> Option<usize> {
        let n = self.slots.len();
        let c = self.cursor;
        if n > 0 && Arc::get_mut(&mut self.slots[c]).is_some() {
            return Some(c);
        }
        if n < self.capacity {
            self.slots.insert(
                c,
                Arc::new(Slot {
                    data: Box::new([0; SLOT_BYTES]),
                    len: 0,
                    pkt: None,
                }),
            );
            return Some(c);
        }
        (1..n)
            .map(|step| (c + step) % n)
            .find(|&i| Arc::get_mut(&mut self.slots[i]).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corecast_engine::synth::OpusStream;
    use corecast_engine::{Codec, Nanos, SourceId, SourceIngress, Ssrc};

    fn packet() -> (Vec<u8>, RxPacket) {
        let mut buf = Vec::new();
        OpusStream::new(Ssrc(1), 0, 0).next_packet(&mut buf);
        let pkt = SourceIngress::new(SourceId(1), Codec::Opus, 48_000)
            .accept(&buf, None, Nanos::ZERO)
            .unwrap()
            .unwrap();
        (buf, pkt)
    }

    #[test]
    fn slots_are_reused_only_when_no_shard_holds_them() {
        let (buf, pkt) = packet();
        let mut pool = Pool::new(2);
        let a = pool.store(&buf, pkt, None).unwrap().clone();
        let b = pool.store(&buf, pkt, None).unwrap().clone();
        assert!(pool.store(&buf, pkt, None).is_none(), "both held");
        drop(a);
        let c = pool.store(&buf, pkt, None).unwrap();
        assert_eq!(c.bytes(), &buf[..]);
        assert!(c.packet().is_some());
        drop(b);
    }

    #[test]
    fn the_ring_grows_only_while_its_oldest_slot_is_held() {
        let (buf, pkt) = packet();
        let mut pool = Pool::new(8);
        // Packets that go out at once: one slot does.
        for _ in 0..20 {
            pool.store(&buf, pkt, None).unwrap();
        }
        assert_eq!(pool.slots(), 1);
        // A history of the last three: four slots, reused in filling order from then on.
        let mut kept = std::collections::VecDeque::new();
        for i in 0..40u8 {
            let mut bytes = buf.clone();
            bytes[12] = i;
            kept.push_back(pool.store(&bytes, pkt, None).unwrap().clone());
            if kept.len() > 3 {
                kept.pop_front();
            }
            let held: Vec<u8> = kept.iter().map(|s| s.bytes()[12]).collect();
            let want: Vec<u8> = (i.saturating_sub(2)..=i).collect();
            assert_eq!(held, want);
        }
        assert_eq!(pool.slots(), 4);
        // Held beyond the capacity: refused, not grown.
        let all: Vec<_> = (0..8)
            .filter_map(|_| pool.store(&buf, pkt, None).cloned())
            .collect();
        assert!(pool.store(&buf, pkt, None).is_none());
        assert_eq!(pool.slots(), 8);
        drop((all, kept));
    }

    #[test]
    fn a_prelude_is_stored_after_the_packet() {
        let (buf, pkt) = packet();
        let mut pool = Pool::new(1);
        let slot = pool.store(&buf, pkt, Some(&[0x78, 0, 1, 0x67])).unwrap();
        let at = slot.packet().unwrap().prelude.unwrap();
        assert_eq!(&slot.bytes()[..buf.len()], &buf[..]);
        assert_eq!(slot.bytes()[at.range()], [0x78, 0, 1, 0x67]);
    }
}

//! The fan-out of a *run*: consecutive packets of one source that were already queued together
//! (an encoder sends a frame's packets back to back), spliced for each track in turn, so that
//! the I/O layer finds each track's copies of the run side by side and can hand them to the
//! kernel as one UDP GSO message per subscriber.
//!
//! A run changes the order in which tracks and packets are visited (track by track, each
//! track's packets in order) but nothing any track sees: tracks share no state in the fan-out,
//! and each track's splicer gets the run's packets in their order, at the same `now`. What the
//! group keeps per packet (epoch, frame state, counters) is updated for every packet of the
//! run before its tracks are walked, which is what a packet-by-packet fan-out leaves behind.
//! So that this holds, a run ends before a packet that could act on anything but a track's
//! own splicer:
//! - a packet of another source, or of another epoch (a restart re-anchors splicers),
//! - a packet with a prelude or parameter sets (a track may need a second transmit for it),
//! - a switch point while tracks wait to switch to the source (applying them changes which
//!   tracks the group has; only a run's first packet applies them, as [`Shard::fan_out`]
//!   does).

use super::Shard;
use crate::drop::DropCounts;
use crate::source::RxPacket;
use crate::splicer::SharedRewrite;
use crate::transmit::TransmitBatch;
use crate::types::Nanos;

/// Most packets in a run: the kernel's limit on datagrams in one GSO message.
pub const MAX_RUN: usize = 64;

impl<H> Shard<H> {
    /// Start fanning out a run of `pkts` (whose bytes are `bufs`, in the same order; at most
    /// [`MAX_RUN`]): the longest prefix that can go as one run (see the module docs), at
    /// least one packet. Drive the returned [`RunFanOut`] until `fill` returns 0; each
    /// transmit's [`Transmit::run_index`](crate::Transmit::run_index) says which packet of
    /// the run it copies. [`RunFanOut::len`] says how many packets it took: the caller fans
    /// out the rest afterwards.
    ///
    /// # Panics
    /// If `pkts` is empty or longer than [`MAX_RUN`], or `bufs` is shorter than `pkts`.
    pub fn fan_out_run<'s>(
        &'s mut self,
        pkts: &'s [RxPacket],
        bufs: &'s [&'s [u8]],
        now: Nanos,
    ) -> RunFanOut<'s, H> {
        assert!(
            (1..=MAX_RUN).contains(&pkts.len()) && bufs.len() >= pkts.len(),
            "a run is 1 to {MAX_RUN} packets, each with its bytes"
        );
        let first = &pkts[0];
        let single = first.prelude.is_some()
            || first.payload.parameter_sets
            || self.table.group_of(first.source).is_none()
            || pkts.len() == 1;
        if single {
            return RunFanOut::Single(self.fan_out(first, bufs[0], now));
        }
        // The first packet's own prologue (pending switches applied at its switch point).
        let super::FanOut {
            shard,
            group,
            pos,
            end,
            ..
        } = self.fan_out(first, bufs[0], now);
        let g = &shard.table.groups[group];
        let len = 1 + pkts[1..]
            .iter()
            .take_while(|p| {
                p.source == first.source
                    && p.epoch == first.epoch
                    && p.prelude.is_none()
                    && !p.payload.parameter_sets
                    && (g.pending.is_empty() || !p.is_switch_point())
            })
            .count();
        for pkt in &pkts[1..len] {
            shard.counters.packets += 1;
            let group = &mut shard.table.groups[group];
            group.begin_packet(pkt, now);
        }
        let mut shared = [None; MAX_RUN];
        for (i, (pkt, buf)) in pkts[..len].iter().zip(bufs).enumerate() {
            shared[i] = Some(SharedRewrite::new(pkt, buf));
        }
        RunFanOut::Run(Run {
            shard,
            pkts: &pkts[..len],
            shared,
            now,
            group,
            pos,
            end,
        })
    }
}

/// A run's fan-out in progress: [`Shard::fan_out_run`].
// A run's rewrites live on the caller's stack for one run; boxing them would allocate per run.
#[allow(clippy::large_enum_variant)]
pub enum RunFanOut<'s, H = ()> {
    /// One packet, fanned out as [`Shard::fan_out`] does (its transmits' `run_index` is not
    /// written: every one copies the run's first packet).
    Single(super::FanOut<'s, H>),
    /// Several packets, track by track.
    Run(Run<'s, H>),
}

/// Several packets' fan-out in progress, track by track.
pub struct Run<'s, H> {
    shard: &'s mut Shard<H>,
    pkts: &'s [RxPacket],
    shared: [Option<SharedRewrite>; MAX_RUN],
    now: Nanos,
    group: usize,
    pos: u32,
    end: u32,
}

impl<H> RunFanOut<'_, H> {
    /// Packets of the run taken (the first `len` of those offered).
    pub fn len(&self) -> usize {
        match self {
            RunFanOut::Single(_) => 1,
            RunFanOut::Run(r) => r.pkts.len(),
        }
    }

    /// Never: a run holds at least one packet.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether transmits carry their packet's [`Transmit::run_index`](crate::Transmit): false
    /// for a run of one packet, whose transmits all copy it.
    pub fn indexed(&self) -> bool {
        matches!(self, RunFanOut::Run(_))
    }

    /// Append transmits to `batch` until it is full or every track has been visited, each
    /// track's copies of the run side by side and in order. Returns how many were appended: 0
    /// only when the fan-out is complete.
    ///
    /// # Panics
    /// If `batch`'s capacity is below the run's length (a track's copies must fit one batch).
    pub fn fill(&mut self, batch: &mut TransmitBatch) -> usize {
        match self {
            RunFanOut::Single(f) => f.fill(batch),
            RunFanOut::Run(r) => r.fill(batch),
        }
    }
}

impl<H> Run<'_, H> {
    fn fill(&mut self, batch: &mut TransmitBatch) -> usize {
        let k = self.pkts.len();
        assert!(
            batch.capacity() >= k,
            "a batch of {} cannot hold a run of {k}",
            batch.capacity()
        );
        let before = batch.len();
        let (pkts, now) = (self.pkts, self.now);
        let source = Some(pkts[0].source);
        let mut forwarded = 0u64;
        let mut forwarded_bytes = 0u64;
        let mut drops = DropCounts::default();
        let tracks = &mut self.shard.table.tracks[..self.end as usize];
        let mut pos = self.pos as usize;
        while pos < tracks.len() && batch.room() >= k {
            let track = &mut tracks[pos];
            pos += 1;
            if track.source != source {
                continue;
            }
            for (i, pkt) in pkts.iter().enumerate() {
                let shared = self.shared[i]
                    .as_ref()
                    .expect("every packet's rewrite is read");
                match track.copy_into(batch, pkt, shared, now, pkt.is_switch_point()) {
                    Ok(slot) => {
                        slot.run_index = i as u8;
                        batch.commit();
                        forwarded += 1;
                        forwarded_bytes += pkt.header.len as u64;
                    }
                    Err(reason) => drops.add(reason, 1),
                }
            }
        }
        self.pos = pos as u32;
        let counters = &mut self.shard.table.groups[self.group].counters;
        counters.forwarded += forwarded;
        counters.forwarded_bytes += forwarded_bytes;
        counters.drops.merge(&drops);
        batch.len() - before
    }
}

#[cfg(test)]
mod tests;

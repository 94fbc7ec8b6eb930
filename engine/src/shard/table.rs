//! Storage of a shard's tx tracks: one contiguous `Vec<Track>`, ordered by group, where a group is
//! the tracks attached to one source (group 0 holds detached tracks, those with no source).
//!
//! A packet of source S touches exactly the slice of S's group: no other source's tracks are
//! scanned. Moving a track between groups keeps the slice contiguous by swapping it across each
//! group boundary in between (one swap per boundary), so a move costs O(groups) and never
//! allocates: switches applied on the packet path stay allocation-free.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::drop::{DropCounts, DropReason};
use crate::source::RxPacket;
use crate::splicer::{SharedRewrite, Splicer};
use crate::transmit::{Transmit, TransmitBatch};
use crate::types::{Codec, Nanos, SourceId, TrackId};

/// Per-track counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrackCounters {
    /// Packets handed to the I/O layer to send (less those it reported as failed).
    pub packets: u64,
    /// Bytes of those packets, each counted at its received length.
    pub bytes: u64,
    /// The track's copies not sent, by reason.
    pub drops: DropCounts,
}

/// Per-source counters kept by a shard, over the tracks it hosts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceCounters {
    /// Packets of the source this shard processed.
    pub packets: u64,
    /// Sum over those packets of the tracks attached to the source at the time: every one of
    /// these is either forwarded or dropped, so `track_packets == forwarded + drops.total()`.
    pub track_packets: u64,
    /// Copies of those packets handed to the I/O layer to send (less those it reported as
    /// failed).
    pub forwarded: u64,
    /// Bytes of those copies, each counted at its packet's received length.
    pub forwarded_bytes: u64,
    /// Copies not sent, by reason.
    pub drops: DropCounts,
    /// Preludes sent to tracks that started at a keyframe lacking its parameter sets.
    pub preludes: u64,
}

/// One tx track: hot fields first.
#[derive(Clone, Debug)]
pub(crate) struct Track {
    pub splicer: Splicer,
    pub dest: SocketAddr,
    pub id: TrackId,
    /// The source whose group holds the track (`None`: detached). Mirrors the group, so a scan
    /// over all tracks can filter without knowing group bounds.
    pub source: Option<SourceId>,
    pub pending: Option<SourceId>,
    pub codec: Codec,
    /// The pending switch was put off once because the current source was mid-frame.
    pub deferred: bool,
    pub counters: TrackCounters,
    /// Reception reports taken and sender reports written (boxed: most plain subscribers
    /// never report, and the packet path walks these tracks).
    pub reports: Option<Box<super::reports::TrackReports>>,
    /// Loss repair: mapping log, budget (boxed like `reports`).
    pub repair: Option<Box<super::repair::TrackRepair>>,
}

impl Track {
    /// Splice `pkt` for this track into `batch`'s next slot, with the slot's destination and
    /// track, and count it as the track's (the caller commits the slot it gets back, and counts
    /// the group's side). A refusal is counted as the track's drop.
    #[inline(always)]
    pub fn copy_into<'b>(
        &mut self,
        batch: &'b mut TransmitBatch,
        pkt: &RxPacket,
        shared: &SharedRewrite,
        now: Nanos,
        switch_point: bool,
    ) -> Result<&'b mut Transmit, DropReason> {
        let slot = batch.next_slot();
        if let Err(reason) = self.splicer.splice_shared(pkt, shared, now, &mut slot.head) {
            self.counters.drops.add(reason, 1);
            return Err(reason);
        }
        slot.dest = self.dest;
        slot.track = self.id;
        self.counters.packets += 1;
        self.counters.bytes += pkt.header.len as u64;
        // Only a switch point can re-anchor a splicer (see `repair`).
        if switch_point {
            if let Some(r) = self.repair.as_deref_mut() {
                r.log.observe(&self.splicer, pkt, now);
            }
        }
        Ok(slot)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Group {
    /// `None` for the detached group.
    pub source: Option<SourceId>,
    pub codec: Option<Codec>,
    pub start: u32,
    pub end: u32,
    /// Tracks on other sources waiting to switch to this one at its next switch point.
    pub pending: Vec<TrackId>,
    /// Epoch of the newest packet seen, to tell a track that is live on the source.
    pub epoch: Option<u32>,
    /// The last packet seen ended no frame (video without the marker bit), and when it came: a
    /// track switched away now would leave its decoder a truncated picture.
    pub frame_open: bool,
    pub last_packet_at: Nanos,
    pub counters: SourceCounters,
    /// A keyframe-wanted event for this source is queued and not yet polled: further wishes
    /// join it rather than queue another.
    pub keyframe_wanted: bool,
    /// When the last keyframe-wanted event was queued, and whether a wish came after it within
    /// the shard's keyframe interval (emitted when that ends).
    pub keyframe_asked_at: Option<Nanos>,
    pub keyframe_again: bool,
    /// The source's latest sender report as a clock mapping (`Shard::set_source_clock`): read
    /// once per sender report interval, never on the packet path.
    pub clock: Option<crate::rtcp::SourceClock>,
    /// How tracks that join the source start.
    pub join: super::JoinPolicy,
}

impl Group {
    pub fn len(&self) -> u32 {
        self.end - self.start
    }
}

pub(crate) const DETACHED: usize = 0;

#[derive(Clone, Debug)]
pub(crate) struct TrackTable {
    pub tracks: Vec<Track>,
    pub groups: Vec<Group>,
    group_of: HashMap<SourceId, usize>,
    slot_of: HashMap<TrackId, u32>,
}

impl TrackTable {
    pub fn new() -> TrackTable {
        TrackTable {
            tracks: Vec::new(),
            groups: vec![Group {
                source: None,
                codec: None,
                start: 0,
                end: 0,
                pending: Vec::new(),
                epoch: None,
                frame_open: false,
                last_packet_at: Nanos::ZERO,
                counters: SourceCounters::default(),
                keyframe_wanted: false,
                keyframe_asked_at: None,
                keyframe_again: false,
                clock: None,
                join: super::JoinPolicy::Keyframe,
            }],
            group_of: HashMap::new(),
            slot_of: HashMap::new(),
        }
    }

    #[inline]
    pub fn group_of(&self, source: SourceId) -> Option<usize> {
        self.group_of.get(&source).copied()
    }

    pub fn slot_of(&self, track: TrackId) -> Option<usize> {
        self.slot_of.get(&track).map(|&s| s as usize)
    }

    /// Index of the group whose range holds `slot`.
    pub fn group_at(&self, slot: usize) -> usize {
        let slot = slot as u32;
        self.groups
            .iter()
            .position(|g| g.start <= slot && slot < g.end)
            .expect("every slot lies in exactly one group")
    }

    pub fn add_group(&mut self, source: SourceId, codec: Codec) {
        let end = self.tracks.len() as u32;
        self.group_of.insert(source, self.groups.len());
        self.groups.push(Group {
            source: Some(source),
            codec: Some(codec),
            start: end,
            end,
            pending: Vec::new(),
            epoch: None,
            frame_open: false,
            last_packet_at: Nanos::ZERO,
            counters: SourceCounters::default(),
            keyframe_wanted: false,
            keyframe_asked_at: None,
            keyframe_again: false,
            clock: None,
            join: super::JoinPolicy::Keyframe,
        });
    }

    /// Remove an empty group.
    pub fn remove_group(&mut self, g: usize) -> Group {
        assert!(g != DETACHED, "the detached group is never removed");
        assert_eq!(self.groups[g].len(), 0, "only an empty group is removed");
        let group = self.groups.remove(g);
        if let Some(source) = group.source {
            self.group_of.remove(&source);
        }
        for (i, later) in self.groups.iter().enumerate().skip(g) {
            let source = later.source.expect("only group 0 is detached");
            self.group_of.insert(source, i);
        }
        group
    }

    /// Append a track to group `g`; returns its slot.
    pub fn insert(&mut self, track: Track, g: usize) -> usize {
        let slot = self.tracks.len();
        self.slot_of.insert(track.id, slot as u32);
        self.tracks.push(track);
        let last = self.groups.len() - 1;
        self.groups[last].end += 1;
        self.move_to_group(slot, last, g)
    }

    /// Remove the track at `slot` (in group `g`).
    pub fn remove(&mut self, slot: usize, g: usize) -> Track {
        let last = self.groups.len() - 1;
        let slot = self.move_to_group(slot, g, last);
        let track = self.tracks.swap_remove(slot);
        self.groups[last].end -= 1;
        self.slot_of.remove(&track.id);
        if let Some(moved) = self.tracks.get(slot) {
            self.slot_of.insert(moved.id, slot as u32);
        }
        track
    }

    /// Move the track at `slot` from group `from` to group `to`; returns its new slot.
    pub fn move_to_group(&mut self, slot: usize, from: usize, to: usize) -> usize {
        let mut pos = slot;
        if from < to {
            for g in from..to {
                let last = self.groups[g].end as usize - 1;
                self.swap(pos, last);
                pos = last;
                self.groups[g].end -= 1;
                self.groups[g + 1].start -= 1;
            }
        } else {
            for g in (to + 1..=from).rev() {
                let first = self.groups[g].start as usize;
                self.swap(pos, first);
                pos = first;
                self.groups[g].start += 1;
                self.groups[g - 1].end += 1;
            }
        }
        self.tracks[pos].source = self.groups[to].source;
        pos
    }

    fn swap(&mut self, a: usize, b: usize) {
        if a == b {
            return;
        }
        self.tracks.swap(a, b);
        self.slot_of.insert(self.tracks[a].id, a as u32);
        self.slot_of.insert(self.tracks[b].id, b as u32);
    }

    /// Check the layout invariants; used by tests after every operation.
    #[cfg(test)]
    pub fn check(&self) {
        assert_eq!(self.groups[0].start, 0);
        assert!(self.groups[DETACHED].source.is_none());
        for w in self.groups.windows(2) {
            assert_eq!(w[0].end, w[1].start, "groups are contiguous");
        }
        assert_eq!(self.groups.last().unwrap().end as usize, self.tracks.len());
        assert_eq!(self.slot_of.len(), self.tracks.len());
        for (g, group) in self.groups.iter().enumerate() {
            if let Some(s) = group.source {
                assert_eq!(self.group_of[&s], g);
            }
            for slot in group.start..group.end {
                let t = &self.tracks[slot as usize];
                assert_eq!(t.source, group.source, "{} is in the wrong group", t.id);
                assert_eq!(self.slot_of[&t.id], slot);
            }
            for p in &group.pending {
                let t = &self.tracks[self.slot_of[p] as usize];
                assert_eq!(t.pending, group.source, "{p} is pending elsewhere");
            }
        }
    }
}

impl Group {
    /// What the group keeps of each packet of its source, before its tracks are walked.
    pub(super) fn begin_packet(&mut self, pkt: &crate::source::RxPacket, now: crate::types::Nanos) {
        self.epoch = Some(pkt.epoch);
        // Audio packets are frames of their own; the marker means something else there.
        self.frame_open =
            !pkt.header.marker && !self.codec.is_some_and(crate::types::Codec::is_audio);
        self.last_packet_at = now;
        self.counters.packets += 1;
        self.counters.track_packets += self.len() as u64;
    }
}

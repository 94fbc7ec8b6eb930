//! What the node holds: its sources, subscribers and channels, which shard each subscriber's track is on,
//! how loaded each shard is, which shards need each source's packets (the shard mask ingest
//! reads), and the output SSRCs in use.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use corecast_engine::{Codec, SourceId, Ssrc, TrackId};
use rand::Rng;

use super::ControlState;

pub(crate) struct SourceEntry {
    pub name: String,
    pub codec: Codec,
    pub clock_rate: u32,
    pub port: u16,
    pub latch: bool,
    pub feedback: Option<SocketAddr>,
    pub parameter_sets: bool,
    /// The configured parameter sets' NAL units (empty if none), for SDPs written before
    /// ingest's first snapshot of the source.
    pub configured_sets: Arc<[Vec<u8>]>,
    pub payload_type: Option<u8>,
    pub rtx_payload_type: Option<u8>,
    /// How subscribers join it.
    pub join: corecast_engine::JoinPolicy,
    /// The source its subscribers move to while it is idle, and the policy that says when.
    pub fallback: Option<(SourceId, corecast_engine::Failover)>,
    /// Bit `k` set: shard `k` has tracks on this source, so ingest hands it the packets.
    pub mask: Arc<AtomicU64>,
    /// Per shard: tracks attached to or switching to this source.
    pub users: Vec<u32>,
}

/// A channel's id: its own numbering, apart from sources' and subscribers'.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChannelId(pub u32);

/// What one viewer watches: at most one video and one audio source. A slot is `None` when the
/// channel was made without it or its source was deleted since.
pub(crate) struct ChannelEntry {
    pub name: String,
    pub video: Option<SourceId>,
    pub audio: Option<SourceId>,
}

pub(crate) struct SubEntry {
    pub ssrc: Ssrc,
    pub shard: usize,
    /// What its track was set up for; it stays with the subscriber when its source is deleted,
    /// so a detached subscriber is only switched to a source it can take.
    pub codec: Codec,
    pub source: Option<SourceId>,
    /// Source switching to (the shard keeps the switch's deadline).
    pub pending: Option<SourceId>,
    /// When the pending switch was asked for, to report how long it took.
    pub requested_at: Option<Instant>,
    /// Switch commands sent to the shard that it has not answered yet. While one is, a
    /// timeout the shard reports is about an older switch the newer command replaced there.
    pub switches_unanswered: u32,
    pub dest: SocketAddr,
    pub switches: u64,
    /// The WHEP viewer this is a track of (`None` for a plain RTP subscriber).
    pub viewer: Option<TrackId>,
    /// The primary source failover moved it away from, which it goes back to when that sends
    /// again; cleared when it is back, or when it is switched by request.
    pub home: Option<SourceId>,
}

impl ControlState {
    /// A track on `shard` starts using `source` (attached or switching to it).
    pub(super) fn use_source(&mut self, shard: usize, source: SourceId) {
        if let Some(s) = self.sources.get_mut(&source) {
            s.users[shard] += 1;
            s.mask.fetch_or(1 << shard, Ordering::Release);
        }
    }

    /// A track on `shard` stops using `source`; the last one clears the shard's bit.
    pub(super) fn release_source(&mut self, shard: usize, source: SourceId) {
        if let Some(s) = self.sources.get_mut(&source) {
            s.users[shard] = s.users[shard].saturating_sub(1);
            // A replayed source goes to every shard whether watched there or not: its history
            // is what a subscriber joining there starts from.
            let replayed = matches!(s.join, corecast_engine::JoinPolicy::Replay { .. });
            if s.users[shard] == 0 && !replayed {
                s.mask.fetch_and(!(1 << shard), Ordering::Release);
            }
        }
    }

    /// The next source id, used up.
    pub(super) fn take_source_id(&mut self) -> SourceId {
        let id = SourceId(self.next_source);
        self.next_source += 1;
        id
    }

    /// The next channel id, used up.
    pub(super) fn take_channel_id(&mut self) -> ChannelId {
        let id = ChannelId(self.next_channel);
        self.next_channel += 1;
        id
    }

    /// The ids the next `n` subscribers get, in order; none used up until
    /// [`take_subscriber_ids`](Self::take_subscriber_ids).
    pub(super) fn next_subscriber_ids(&self, n: usize) -> impl Iterator<Item = TrackId> {
        (self.next_sub..).take(n).map(TrackId)
    }

    /// Use up the ids of `n` subscribers just added.
    pub(super) fn take_subscriber_ids(&mut self, n: usize) {
        self.next_sub += n as u32;
    }

    /// The shard for each of `n` new subscribers: each goes to the least loaded shard, counting
    /// those placed before it. `shard_load` is not changed; the placement can still be dropped.
    pub(super) fn place(&self, n: usize) -> Vec<usize> {
        let mut load = self.shard_load.clone();
        (0..n)
            .map(|_| {
                let k = (0..load.len())
                    .min_by_key(|&k| load[k])
                    .expect("a node has at least one shard");
                load[k] += 1;
                k
            })
            .collect()
    }

    /// A random output SSRC no other subscriber has (nor 0), now in use.
    pub(super) fn unused_ssrc(&mut self) -> Ssrc {
        loop {
            let ssrc: u32 = self.rng.random();
            if ssrc != 0 && self.ssrcs.insert(ssrc) {
                return Ssrc(ssrc);
            }
        }
    }

    /// `ssrc` is free again.
    pub(super) fn free_ssrc(&mut self, ssrc: Ssrc) {
        self.ssrcs.remove(&ssrc.0);
    }
}

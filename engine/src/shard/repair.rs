//! Loss repair on a shard: subscribers' generic NACKs (RFC 4585 §6.2.1) answered from the
//! sources' packet histories.
//!
//! A shard that keeps histories ([`Shard::keep_history`]) is handed each packet's handle after
//! its fan-out ([`Shard::remember`]); a track with repair on ([`Shard::set_repair`]) logs its
//! splicer's mappings (at switch points, in the fan-out). A NACK from the track's subscriber is
//! resolved number by number: the output number → the source packet it carried (the track's
//! [`MappingLog`]) → that packet in the history → a resend queued, if the track's budget allows.
//! The I/O layer drains [`Shard::poll_resend`]: each is the packet's own bytes (through its
//! handle) under the header the track first sent it with.
//!
//! What is refused, and counted by reason ([`RepairCounters`]): numbers the track never sent
//! or no longer knows (`unknown`), packets the history no longer holds (`missing`), a packet
//! resent [`RepairConfig::max_resends`] times already or less than [`RepairConfig::spacing`]
//! ago, or one more packet when the track resent 32 others within the spacing (`too_often`),
//! and resends beyond the budget (`over_budget`): a share of what the track forwarded
//! ([`RepairConfig::budget_permille`]) plus a burst, so a subscriber on a bad link cannot make
//! the node send more than that share again. Budget and retries are reckoned when
//! the NACK comes, not per forwarded packet: the fan-out's loop pays nothing for them.

use std::net::SocketAddr;

use super::replay::ReplayedSpan;
use super::Shard;
use crate::codec::MAX_REWRITE_LEN;
use crate::history::{HistoryConfig, PacketHistory};
use crate::rtcp::NackPairs;
use crate::rtp::FIXED_HEADER_LEN;
use crate::source::RxPacket;
use crate::splicer::{extend_before, MappingLog, OutHead, Resend, LOGGED_MAPPINGS};
use crate::transmit::Transmit;
use crate::types::{Nanos, Ssrc, TrackId};
use crate::ControlError;

/// How a shard answers NACKs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RepairConfig {
    /// Resends a track may send, in bytes, as a share of the bytes it forwarded, per mille.
    pub budget_permille: u64,
    /// Bytes a track may resend beyond its share, and what it starts with.
    pub burst_bytes: u64,
    /// A packet is resent to one track at most this many times.
    pub max_resends: u8,
    /// Least time between two resends of one packet to one track: a NACK repeated before the
    /// first resend could arrive is not answered twice.
    pub spacing: Nanos,
}

impl Default for RepairConfig {
    /// A quarter of the track's bitrate (LiveKit and mediasoup cap resends at a share of the
    /// send rate too), a burst of 32 full packets, at most 3 resends of a packet 20 ms apart.
    fn default() -> RepairConfig {
        RepairConfig {
            budget_permille: 250,
            burst_bytes: 32 * 1_200,
            max_resends: 3,
            spacing: Nanos::from_millis(20),
        }
    }
}

/// What a track's (or a shard's) repair did. Monotonic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RepairCounters {
    /// Sequence numbers NACKed by the track's subscriber.
    pub requested: u64,
    /// Packets queued for resending.
    pub resent: u64,
    /// Bytes of those packets (as received from the source).
    pub resent_bytes: u64,
    /// Numbers the track never sent, or whose mapping it no longer remembers.
    pub unknown: u64,
    /// Packets no longer in the source's history (or never in it: lost before the node).
    pub missing: u64,
    /// Resends refused: the packet was resent too many times, or too recently, or the track
    /// resent as many other packets as it remembers within the spacing.
    pub too_often: u64,
    /// Resends refused: the track's budget was spent.
    pub over_budget: u64,
    /// Resends refused: the shard's queue of resends was full.
    pub queue_full: u64,
}

impl RepairCounters {
    pub(crate) fn add(&mut self, o: &RepairCounters) {
        self.requested += o.requested;
        self.resent += o.resent;
        self.resent_bytes += o.resent_bytes;
        self.unknown += o.unknown;
        self.missing += o.missing;
        self.too_often += o.too_often;
        self.over_budget += o.over_budget;
        self.queue_full += o.queue_full;
    }
}

/// How many recent resends of a track are remembered, for the retry limit and spacing.
const RECENT: usize = 32;

/// Most resends queued on a shard at once: one NACK names at most 17 numbers a pair, and the
/// I/O layer drains the queue right after the RTCP that filled it.
pub const RESEND_QUEUE: usize = 1024;

#[derive(Clone, Copy, Debug, Default)]
struct Recent {
    out: u64,
    times: u8,
    at: Nanos,
}

/// A track's repair state: boxed beside the track (the fan-out walks the tracks).
#[derive(Clone, Debug, Default)]
pub(crate) struct TrackRepair {
    pub log: MappingLog,
    /// Bytes the track may still resend.
    tokens: u64,
    /// The track's forwarded bytes when the budget was last topped up.
    counted_bytes: u64,
    recent: [Recent; RECENT],
    next_recent: usize,
    counters: RepairCounters,
    /// The track's latest replays, whose packets went out with compressed timestamps: one
    /// per mapping the log resolves (each replay anchors anew), newest first.
    replayed: [Option<ReplayedSpan>; LOGGED_MAPPINGS],
}

impl TrackRepair {
    pub fn counters(&self) -> &RepairCounters {
        &self.counters
    }

    /// Note where the track's replay under way is: it replaces what was noted of it, or the
    /// oldest replay kept.
    pub fn replaying(&mut self, span: &ReplayedSpan) {
        let same = self
            .replayed
            .iter_mut()
            .flatten()
            .find(|s| s.out_first == span.out_first);
        match same {
            Some(s) => *s = *span,
            None => {
                self.replayed.rotate_right(1);
                self.replayed[0] = Some(*span);
            }
        }
    }

    /// The output timestamp of the copy of `pkt` sent under output number `out`, if one of
    /// the track's replays sent it.
    fn replayed_timestamp(&self, pkt: &RxPacket, out: u64) -> Option<u64> {
        self.replayed
            .iter()
            .flatten()
            .find_map(|s| s.timestamp_of(pkt, out))
    }
}

/// A source's history on a shard, and since when nobody here watches the source.
#[derive(Clone, Debug)]
pub(crate) struct KeptHistory<H> {
    pub history: PacketHistory<H>,
    unsubscribed_since: Option<Nanos>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct QueuedResend {
    track: TrackId,
    resend: Resend,
}

impl<H> Shard<H> {
    /// Keep a history of each source that has tracks on this shard, within `video` for video
    /// sources and half its span for audio (which serves only NACKs: nothing waits for an
    /// audio keyframe); packets are handed in with [`Shard::remember`]. `None` keeps nothing
    /// (the default). Applies to histories made from now on.
    pub fn keep_history(&mut self, video: Option<HistoryConfig>) {
        self.history_config = video;
        if video.is_none() {
            self.histories.clear();
        }
    }

    /// Answer NACKs for `track` from now on (or stop). What the track sent before is not
    /// known (how its replays timed it, which mappings it had), so only what it sends from now
    /// on can be resent: a NACK for an earlier number is counted `unknown`.
    pub fn set_repair(&mut self, track: TrackId, on: bool) -> Result<(), ControlError> {
        let slot = self
            .table
            .slot_of(track)
            .ok_or(ControlError::UnknownTrack(track))?;
        let t = &mut self.table.tracks[slot];
        match (on, t.repair.is_some()) {
            (true, false) => {
                let mut repair = Box::new(TrackRepair {
                    tokens: self.repair_config.burst_bytes,
                    counted_bytes: t.counters.bytes,
                    ..TrackRepair::default()
                });
                repair.log.observe_current(&t.splicer);
                t.repair = Some(repair);
            }
            (false, true) => {
                if let Some(r) = t.repair.take() {
                    self.repair_counters.add(&r.counters);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// How NACKs are answered from now on. A budget saved beyond the new burst is cut to it.
    pub fn set_repair_config(&mut self, config: RepairConfig) {
        self.repair_config = config;
        for t in &mut self.table.tracks {
            if let Some(r) = t.repair.as_deref_mut() {
                r.tokens = r.tokens.min(config.burst_bytes);
            }
        }
    }

    /// What repair did on this shard, tracks removed included.
    pub fn repair_counters(&self) -> RepairCounters {
        let mut all = self.repair_counters;
        for t in &self.table.tracks {
            if let Some(r) = &t.repair {
                all.add(&r.counters);
            }
        }
        all
    }

    /// What repair did for `track`; `None` without repair on.
    pub fn track_repair(&self, track: TrackId) -> Option<RepairCounters> {
        let slot = self.table.slot_of(track)?;
        self.table.tracks[slot].repair.as_ref().map(|r| r.counters)
    }

    /// The history of `source`, if the shard keeps one.
    pub fn history(&self, source: crate::types::SourceId) -> Option<&PacketHistory<H>> {
        self.histories.get(&source).map(|k| &k.history)
    }

    /// Packets held in histories, over all sources, and their bytes.
    pub fn history_held(&self) -> (usize, usize) {
        self.histories.values().fold((0, 0), |(n, b), k| {
            (n + k.history.len(), b + k.history.bytes())
        })
    }

    /// Keep `pkt`, whose bytes `handle` holds, in its source's history, after its fan-out.
    /// Kept only while the shard keeps histories and the source has tracks here, or tracks
    /// waiting to switch to it. When the last leaves, nothing more is kept, and what is held
    /// stays one span longer (a track that switched away may still NACK what it was sent),
    /// then goes. Allocates only when a source's history is made.
    pub fn remember(&mut self, pkt: &RxPacket, handle: H) {
        let Some(video) = self.history_config else {
            return;
        };
        let Some(g) = self.table.group_of(pkt.source) else {
            return;
        };
        let group = &self.table.groups[g];
        // A replayed source's history is kept whoever watches: a join starts from it.
        let subscribed = group.len() > 0
            || !group.pending.is_empty()
            || matches!(group.join, super::JoinPolicy::Replay { .. })
            || self.replays.iter().any(|r| r.source == pkt.source);
        let codec = group.codec.expect("source groups have a codec");
        let now = pkt.received_at;
        if !subscribed {
            if let Some(kept) = self.histories.get_mut(&pkt.source) {
                let since = *kept.unsubscribed_since.get_or_insert(now);
                if now.saturating_since(since) > kept.history.config().span {
                    self.histories.remove(&pkt.source);
                }
            }
            return;
        }
        let kept = self
            .histories
            .entry(pkt.source)
            .or_insert_with(|| KeptHistory {
                history: PacketHistory::new(if codec.is_audio() {
                    HistoryConfig {
                        span: Nanos(video.span.0 / 2),
                        ..video
                    }
                } else {
                    video
                }),
                unsubscribed_since: None,
            });
        kept.unsubscribed_since = None;
        kept.history.push(*pkt, handle, drop);
    }

    /// A NACK from `from` about the track that sends with `media_ssrc`.
    pub(super) fn nack_received(
        &mut self,
        media_ssrc: Ssrc,
        pairs: NackPairs<'_>,
        from: Option<SocketAddr>,
        now: Nanos,
    ) {
        let Some(slot) = self
            .by_ssrc
            .get(&media_ssrc)
            .and_then(|&id| self.table.slot_of(id))
        else {
            return;
        };
        let config = self.repair_config;
        let t = &mut self.table.tracks[slot];
        if !from.is_some_and(|from| super::is_subscribers_address(from, t.dest)) {
            self.counters.rtcp_wrong_sender += 1;
            return;
        }
        let (splicer, bytes_sent, id) = (t.splicer, t.counters.bytes, t.id);
        let Some(repair) = t.repair.as_deref_mut() else {
            return;
        };
        // Top the budget up with the track's share of what it forwarded since.
        let forwarded = bytes_sent.saturating_sub(repair.counted_bytes);
        repair.counted_bytes = bytes_sent;
        repair.tokens =
            (repair.tokens + forwarded * config.budget_permille / 1_000).min(config.burst_bytes);
        for wire in pairs.lost() {
            repair.counters.requested += 1;
            let Some(resend) = repair.log.resolve(&splicer, wire) else {
                repair.counters.unknown += 1;
                continue;
            };
            let (mapping, seq) = match resend {
                Resend::Packet { mapping, seq, .. } | Resend::Prelude { mapping, seq } => {
                    (mapping, seq)
                }
            };
            let Some((pkt, _)) = self
                .histories
                .get(&mapping.source())
                .and_then(|k| k.history.get(mapping.epoch(), seq))
            else {
                repair.counters.missing += 1;
                continue;
            };
            if !resend.was_sent(pkt) {
                repair.counters.unknown += 1;
                continue;
            }
            let len = match resend {
                Resend::Packet { .. } => u64::from(pkt.header.len),
                Resend::Prelude { .. } => pkt.prelude.map_or(0, |p| u64::from(p.len)) + 12,
            };
            let out = splicer
                .last_seq()
                .map_or(0, |last| extend_before(last.0, wire));
            let recent = repair
                .recent
                .iter()
                .position(|r| r.times > 0 && r.out == out);
            let refused = match recent {
                Some(i) => {
                    let r = &repair.recent[i];
                    r.times >= config.max_resends || now.saturating_since(r.at) < config.spacing
                }
                // Making room would forget a packet still inside its spacing, and a NACK
                // repeating it would then be answered twice: a track resends at most `RECENT`
                // packets per spacing.
                None => {
                    let oldest = &repair.recent[repair.next_recent];
                    oldest.times > 0 && now.saturating_since(oldest.at) < config.spacing
                }
            };
            if refused {
                repair.counters.too_often += 1;
                continue;
            }
            if repair.tokens < len {
                repair.counters.over_budget += 1;
                continue;
            }
            if self.resends.len() >= RESEND_QUEUE {
                repair.counters.queue_full += 1;
                continue;
            }
            repair.tokens -= len;
            match recent {
                Some(i) => {
                    let r = &mut repair.recent[i];
                    r.times += 1;
                    r.at = now;
                }
                None => {
                    repair.recent[repair.next_recent] = Recent {
                        out,
                        times: 1,
                        at: now,
                    };
                    repair.next_recent = (repair.next_recent + 1) % RECENT;
                }
            }
            repair.counters.resent += 1;
            repair.counters.resent_bytes += len;
            self.resends.push_back(QueuedResend { track: id, resend });
        }
    }
}

impl<H: AsRef<[u8]>> Shard<H> {
    /// The next queued resend: the transmit (with the header the track first sent the packet
    /// with), the packet and the handle that holds its bytes. Resends whose track or packet
    /// went away since they were queued are skipped.
    pub fn poll_resend(&mut self) -> Option<Resent<'_, H>> {
        loop {
            let queued = self.resends.pop_front()?;
            let Some(slot) = self.table.slot_of(queued.track) else {
                continue;
            };
            let t = &self.table.tracks[slot];
            let (mapping, seq, prelude) = match queued.resend {
                Resend::Packet { mapping, seq, .. } => (mapping, seq, false),
                Resend::Prelude { mapping, seq } => (mapping, seq, true),
            };
            let Some(kept) = self.histories.get(&mapping.source()) else {
                continue;
            };
            let Some((pkt, handle)) = kept.history.get(mapping.epoch(), seq) else {
                continue;
            };
            let mut head: OutHead = [0; FIXED_HEADER_LEN + MAX_REWRITE_LEN];
            let written = if prelude {
                t.splicer.resend_prelude_head(&mapping, pkt, &mut head)
            } else {
                t.splicer
                    .resend_head(&mapping, pkt, handle.as_ref(), &mut head)
            };
            let Some(out) = written else { continue };
            if let Some(ts) = t
                .repair
                .as_ref()
                .and_then(|r| r.replayed_timestamp(pkt, out.0))
            {
                head[4..8].copy_from_slice(&crate::types::ExtTime(ts).wire().0.to_be_bytes());
            }
            return Some(Resent {
                transmit: Transmit {
                    dest: t.dest,
                    track: t.id,
                    head,
                    prelude,
                    run_index: 0,
                },
                pkt,
                handle,
            });
        }
    }
}

/// One resend for the I/O layer: send `transmit`'s segments of `pkt`, whose bytes `handle`
/// holds ([`Transmit::segments`]).
#[derive(Debug)]
pub struct Resent<'a, H> {
    /// Destination and the header first sent.
    pub transmit: Transmit,
    /// The packet resent.
    pub pkt: &'a RxPacket,
    /// What holds its bytes.
    pub handle: &'a H,
}

#[cfg(test)]
mod tests;

//! Instant join: a track that joins a video source (added on it, or switched to it) starts at
//! once from the source's history instead of waiting for its next keyframe.
//!
//! The history holds the source's packets from its newest switch point (the first packet of
//! its last keyframe) on. A joining track is taken off the fan-out (parked in the detached
//! group) and replayed those packets, in order, through its own splicer: its numbering goes on
//! from what it sent before, so the subscriber sees one continuous stream. While it replays,
//! the live packets of the source go on into the history behind the replay; when the replay
//! has sent the newest packet held, the track joins the source's group between two packets and
//! takes the next live packet from the fan-out. Every packet is sent once and none is skipped:
//! the history is the one sequence both read.
//!
//! Pace and latency. The replay sends the GOP `pace` times faster than it was captured (by its
//! timestamps), so it catches up with live after `age / (pace - 1)` (a keyframe 1 s old and
//! pace 4: a third of a second), and a burst does not overflow the subscriber. Its output
//! timestamps are compressed by the same factor, so they stay in step with the sending: a
//! player shows the GOP fast-forwarded and is at live, not a GOP behind, when the replay ends.
//! Timestamps of uncompressed replay would leave every player that schedules by them (browsers,
//! ffplay) behind live by the GOP's age, for good.
//!
//! A switch away from a source in the middle of a frame waits for that frame to end (the
//! track keeps sending it), then replays: a decoder never gets a truncated picture. Where the
//! history holds no switch point of the source (a source just started, a GOP longer than the
//! history), the track waits for the next keyframe as without replay, and one is asked for.

use super::table::DETACHED;
use super::{Shard, ShardEvent, SwitchDeadline, MID_FRAME_WAIT};
use crate::codec::MAX_REWRITE_LEN;
use crate::drop::DropReason;
use crate::rtp::FIXED_HEADER_LEN;
use crate::source::RxPacket;
use crate::splicer::{OutHead, SharedRewrite};
use crate::transmit::Transmit;
use crate::types::{ExtSeq, Nanos, SourceId, TrackId};

/// How a track that joins a source starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JoinPolicy {
    /// At the source's next keyframe (one is asked for).
    #[default]
    Keyframe,
    /// At once, from the source's newest keyframe in the history, replayed `pace` times faster
    /// than real time with timestamps compressed as much (video sources of a shard that keeps
    /// histories; others join as with `Keyframe`).
    Replay {
        /// How many times faster than real time; at least 2 (a replay at real time would never
        /// catch up with live).
        pace: u32,
    },
}

/// The default pace of a replay.
pub const REPLAY_PACE: u32 = 4;

/// What replays did on a shard. Monotonic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayCounters {
    /// Joins that started from the history.
    pub started: u64,
    /// Replays that caught up with live and handed the track to the fan-out.
    pub finished: u64,
    /// Joins that found no switch point in the history and waited for a keyframe.
    pub without_keyframe: u64,
    /// Packets sent by replays (preludes not counted).
    pub packets: u64,
    /// Their bytes, as received from the source.
    pub bytes: u64,
    /// Packets a replay passed over because the history had let them go before the replay got
    /// to them (a replay slower than the history's span) or never got them (lost upstream).
    pub skipped: u64,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Replay {
    pub track: TrackId,
    pub source: SourceId,
    pub state: ReplayState,
    pace: u32,
    /// A live track switching: its switch is reported ([`ShardEvent::SwitchApplied`]) when
    /// the replay starts, from this source.
    switch_from: Option<Option<SourceId>>,
}

#[derive(Clone, Copy, Debug)]
pub(super) enum ReplayState {
    /// The track still sends its current source, until that source's frame ends.
    Leaving,
    /// Parked, to start at the next poll.
    Ready,
    /// Replaying.
    Sending(ReplayedSpan),
}

/// Where a replay is, and how it maps timestamps: what a resend of a replayed packet needs to
/// rewrite it as it was first sent (kept with the track's repair state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReplayedSpan {
    pub source: SourceId,
    pub epoch: u32,
    /// The keyframe replayed first.
    pub key_seq: u64,
    pub key_ts: u64,
    /// Output timestamp of the keyframe.
    pub base_out: u64,
    pub pace: u32,
    /// The next packet to replay (one past the last replayed).
    pub next: u64,
    /// Source timestamp of the last packet replayed.
    pub last_ts: u64,
    /// Output numbers the replay sent, its prelude's included: the first (once one is sent)
    /// and the last. Only the replay sent numbers in between (the track was off the fan-out).
    pub out_first: Option<u64>,
    pub out_last: u64,
    started: Nanos,
    clock_rate: u32,
}

impl ReplayedSpan {
    /// When the packet with source timestamp `ts` is due.
    fn due(&self, ts: u64) -> Nanos {
        let ticks = u128::from(ts.saturating_sub(self.key_ts));
        let per_second = u128::from(self.clock_rate.max(1)) * u128::from(self.pace);
        let after = (ticks * 1_000_000_000 / per_second).min(u128::from(u64::MAX)) as u64;
        self.started.saturating_add(Nanos(after))
    }

    /// The output timestamp the copy of `pkt` sent under output number `out` went out with,
    /// if this span sent it.
    pub fn timestamp_of(&self, pkt: &RxPacket, out: u64) -> Option<u64> {
        let sent = self
            .out_first
            .is_some_and(|first| (first..=self.out_last).contains(&out));
        let replayed = sent
            && pkt.source == self.source
            && pkt.epoch == self.epoch
            && (self.key_seq..self.next).contains(&pkt.seq.0);
        replayed.then(|| {
            self.base_out
                .wrapping_add(pkt.timestamp.0.saturating_sub(self.key_ts) / u64::from(self.pace))
        })
    }
}

/// One replayed packet for the I/O layer: send `prelude` (if any) and then `transmit`, both
/// segments of `pkt`, whose bytes `handle` holds ([`Transmit::segments`]).
#[derive(Debug)]
pub struct Replayed<'a, H> {
    /// The parameter sets sent before a keyframe that lacks them (H.264/H.265).
    pub prelude: Option<Transmit>,
    /// The packet's copy.
    pub transmit: Transmit,
    /// The packet replayed.
    pub pkt: &'a RxPacket,
    /// What holds its bytes.
    pub handle: &'a H,
}

impl<H> Shard<H> {
    /// How tracks that join `source` from now on start. `Replay` takes effect only for a video
    /// source of a shard that keeps histories ([`Shard::keep_history`]).
    pub fn set_join(
        &mut self,
        source: SourceId,
        policy: JoinPolicy,
    ) -> Result<(), super::ControlError> {
        let g = self.group(source)?;
        self.table.groups[g].join = match policy {
            JoinPolicy::Replay { pace } => JoinPolicy::Replay { pace: pace.max(2) },
            keyframe => keyframe,
        };
        Ok(())
    }

    /// The I/O layer could not send the replayed copy `transmit` (of a packet of `bytes`):
    /// take it off its track's count and the replays', and count it dropped for `reason`.
    pub fn record_replay_failure(&mut self, transmit: &Transmit, bytes: usize, reason: DropReason) {
        if transmit.prelude {
            return;
        }
        let Some(slot) = self.table.slot_of(transmit.track) else {
            return;
        };
        let c = &mut self.table.tracks[slot].counters;
        c.packets = c.packets.saturating_sub(1);
        c.bytes = c.bytes.saturating_sub(bytes as u64);
        c.drops.add(reason, 1);
        let r = &mut self.replay_counters;
        r.packets = r.packets.saturating_sub(1);
        r.bytes = r.bytes.saturating_sub(bytes as u64);
    }

    /// What replays did on this shard.
    pub fn replay_counters(&self) -> &ReplayCounters {
        &self.replay_counters
    }

    /// The pace tracks joining group `g` replay at, if they do.
    pub(super) fn replay_pace(&self, g: usize) -> Option<u32> {
        let group = &self.table.groups[g];
        match group.join {
            JoinPolicy::Replay { pace }
                if self.history_config.is_some() && !group.codec.is_some_and(|c| c.is_audio()) =>
            {
                Some(pace)
            }
            _ => None,
        }
    }

    /// Start track `id` (parked, or live on another source: `from`) replaying `source`.
    pub(super) fn start_replay(
        &mut self,
        id: TrackId,
        source: SourceId,
        pace: u32,
        live_from: Option<Option<SourceId>>,
    ) {
        self.cancel_replay(id);
        self.replays.push(Replay {
            track: id,
            source,
            state: match live_from {
                Some(_) => ReplayState::Leaving,
                None => ReplayState::Ready,
            },
            pace,
            switch_from: live_from,
        });
        self.reserve_events();
    }

    /// Forget track `id`'s replay, if it has one; true if it was still leaving its old source
    /// (a switch not yet under way). The track stays where it is.
    pub(super) fn cancel_replay(&mut self, id: TrackId) -> bool {
        let Some(i) = self.replays.iter().position(|r| r.track == id) else {
            return false;
        };
        matches!(self.replays.swap_remove(i).state, ReplayState::Leaving)
    }

    /// The replay of track `id`, if it has one.
    pub(super) fn replay_of(&self, id: TrackId) -> Option<&Replay> {
        self.replays.iter().find(|r| r.track == id)
    }

    /// When [`Shard::poll_replay`] next has work; `None` without replays.
    pub fn replay_due(&self) -> Option<Nanos> {
        self.replays.iter().map(|r| self.due_of(r)).min()
    }

    fn due_of(&self, r: &Replay) -> Nanos {
        match r.state {
            ReplayState::Leaving => {
                let slot = self.table.slot_of(r.track).expect("replayed tracks exist");
                let old = &self.table.groups[self.table.group_at(slot)];
                if old.frame_open {
                    old.last_packet_at.saturating_add(MID_FRAME_WAIT)
                } else {
                    Nanos::ZERO
                }
            }
            ReplayState::Ready => Nanos::ZERO,
            // Caught up (nothing more held): due at once, to hand the track to the fan-out.
            ReplayState::Sending(span) => self.next_due(r.source, &span).unwrap_or(Nanos::ZERO),
        }
    }

    /// When the next packet `span` replays of `source` is due; `None` when the history holds
    /// none after it in the span's epoch (the replay has caught up).
    fn next_due(&self, source: SourceId, span: &ReplayedSpan) -> Option<Nanos> {
        self.histories
            .get(&source)
            .and_then(|k| k.history.at_or_after(span.epoch, ExtSeq(span.next)))
            .filter(|(pkt, _, _)| pkt.epoch == span.epoch)
            .map(|(pkt, _, _)| span.due(pkt.timestamp.0))
    }

    /// Advance every replay that can be advanced without sending; the index of one whose next
    /// packet is due at `now`, if any.
    fn next_due_replay(&mut self, now: Nanos) -> Option<usize> {
        let mut i = 0;
        while i < self.replays.len() {
            let r = self.replays[i];
            match r.state {
                ReplayState::Leaving => {
                    let Ok(slot) = self.slot(r.track) else {
                        self.replays.swap_remove(i);
                        continue;
                    };
                    let from = self.table.group_at(slot);
                    let old = &self.table.groups[from];
                    if old.frame_open && now.saturating_since(old.last_packet_at) < MID_FRAME_WAIT {
                        i += 1;
                        continue;
                    }
                    if self.switch_point_of(r.source).is_none() {
                        // Nothing to replay: a switch at the next keyframe, as without replay.
                        self.replays.swap_remove(i);
                        self.replay_counters.without_keyframe += 1;
                        self.pend_switch(r.track, r.source, now);
                        continue;
                    }
                    self.table.move_to_group(slot, from, DETACHED);
                    self.replays[i].state = ReplayState::Ready;
                }
                ReplayState::Ready => {
                    let Some(key) = self.switch_point_of(r.source) else {
                        self.replays.swap_remove(i);
                        self.replay_counters.without_keyframe += 1;
                        self.wait_for_keyframe(r.track, r.source, now);
                        continue;
                    };
                    let clock_rate = key.clock_rate;
                    self.replays[i].state = ReplayState::Sending(ReplayedSpan {
                        source: r.source,
                        epoch: key.epoch,
                        key_seq: key.seq.0,
                        key_ts: key.timestamp.0,
                        base_out: 0,
                        pace: r.pace,
                        next: key.seq.0,
                        last_ts: key.timestamp.0,
                        out_first: None,
                        out_last: 0,
                        started: now,
                        clock_rate,
                    });
                    self.replay_counters.started += 1;
                    if let Some(from) = r.switch_from {
                        self.switch_applied(r.track, from, r.source);
                    }
                }
                ReplayState::Sending(span) => match self.next_due(r.source, &span) {
                    Some(due) if due <= now => return Some(i),
                    Some(_) => i += 1,
                    None => {
                        self.replays.swap_remove(i);
                        self.finish_replay(r.track, &span);
                    }
                },
            }
        }
        None
    }

    /// The newest switch point held for `source`.
    fn switch_point_of(&self, source: SourceId) -> Option<RxPacket> {
        let kept = self.histories.get(&source)?;
        kept.history
            .since_switch_point()
            .next()
            .map(|(pkt, _)| *pkt)
    }

    /// The replay of track `id` caught up: it takes live packets of `span`'s source from the
    /// next one on, timestamps at the source's pace from where the replay left them.
    fn finish_replay(&mut self, id: TrackId, span: &ReplayedSpan) {
        let Ok(slot) = self.slot(id) else { return };
        let Some(to) = self.table.group_of(span.source) else {
            return;
        };
        let slot = self.table.move_to_group(slot, DETACHED, to);
        let track = &mut self.table.tracks[slot];
        if track.splicer.anchored_to() == Some((span.source, span.epoch)) {
            track.splicer.continue_timestamps_from(span.last_ts);
            if let Some(r) = track.repair.as_deref_mut() {
                r.log.retimed(&track.splicer);
            }
        }
        self.replay_counters.finished += 1;
    }

    /// A parked track that found nothing to replay joins `source`'s group and waits for its
    /// next keyframe, which is asked for.
    fn wait_for_keyframe(&mut self, id: TrackId, source: SourceId, now: Nanos) {
        let (Ok(slot), Some(to)) = (self.slot(id), self.table.group_of(source)) else {
            return;
        };
        let from = self.table.group_at(slot);
        self.table.move_to_group(slot, from, to);
        self.want_keyframe(to, now);
    }

    /// A live track that found nothing to replay switches at `source`'s next switch point.
    fn pend_switch(&mut self, id: TrackId, source: SourceId, now: Nanos) {
        let (Ok(slot), Some(to)) = (self.slot(id), self.table.group_of(source)) else {
            return;
        };
        let track = &mut self.table.tracks[slot];
        (track.pending, track.deferred) = (Some(source), false);
        self.table.groups[to].pending.push(id);
        self.deadlines.push(SwitchDeadline {
            track: id,
            to: source,
            at: now.saturating_add(self.switch_timeout),
        });
        self.reserve_events();
        self.want_keyframe(to, now);
    }

    /// Track `id` now sends `to` (a pending switch applied, or a replay started): report it and
    /// release the switches that waited for it.
    pub(super) fn switch_applied(&mut self, id: TrackId, from: Option<SourceId>, to: SourceId) {
        self.counters.switches += 1;
        self.push_event(ShardEvent::SwitchApplied {
            track: id,
            from,
            to,
        });
        if !self.links.is_empty() {
            self.links.retain(|l| l.follower != id);
            for l in self.links.iter_mut().filter(|l| l.lead == id) {
                l.gated = false;
            }
        }
    }
}

impl<H: AsRef<[u8]>> Shard<H> {
    /// The next replayed packet due at `now`, spliced for its track; `None` when none is due.
    /// Drain it after the fan-outs and the RTCP of a turn, whenever [`Shard::replay_due`] has
    /// come: the replays that caught up join the fan-out here, between two packets.
    pub fn poll_replay(&mut self, now: Nanos) -> Option<Replayed<'_, H>> {
        let i = self.next_due_replay(now)?;
        let replay = &mut self.replays[i];
        let ReplayState::Sending(span) = &mut replay.state else {
            return None;
        };
        let (pkt, handle, contiguous) = self
            .histories
            .get(&replay.source)?
            .history
            .at_or_after(span.epoch, ExtSeq(span.next))?;
        if !contiguous {
            self.replay_counters.skipped += pkt.seq.0 - span.next;
        }
        span.next = pkt.seq.0 + 1;
        let slot = self.table.slot_of(replay.track)?;
        let track = &mut self.table.tracks[slot];
        let buf = handle.as_ref();
        let shared = SharedRewrite::new(pkt, buf);
        let follows = track.splicer.follows(pkt);
        let prelude = pkt.prelude.is_some() && !(follows && track.splicer.has_sets());
        if prelude && follows {
            track.splicer.reanchor_for_prelude(pkt);
        }
        let mut head: OutHead = [0; FIXED_HEADER_LEN + MAX_REWRITE_LEN];
        let ts = match track.splicer.splice_replayed(
            pkt,
            &shared,
            now,
            &mut head,
            span.key_ts,
            span.pace,
        ) {
            Ok(ts) => ts,
            Err(reason) => {
                track.counters.drops.add(reason, 1);
                return None;
            }
        };
        if pkt.seq.0 == span.key_seq {
            span.base_out = ts;
        }
        span.last_ts = pkt.timestamp.0;
        let out = track
            .splicer
            .last_seq()
            .expect("a packet was just spliced")
            .0;
        span.out_first.get_or_insert(out - u64::from(prelude));
        span.out_last = out;
        if pkt.payload.parameter_sets {
            track.splicer.sent_sets();
        }
        if let Some(r) = track.repair.as_deref_mut() {
            if pkt.seq.0 == span.key_seq {
                r.log.observe(&track.splicer, pkt, now);
            }
            r.replaying(span);
        }
        let prelude = prelude.then(|| {
            let mut prelude_head: OutHead = [0; FIXED_HEADER_LEN + MAX_REWRITE_LEN];
            track.splicer.prelude_head(pkt, &mut prelude_head);
            Transmit {
                dest: track.dest,
                track: track.id,
                head: prelude_head,
                prelude: true,
                run_index: 0,
            }
        });
        track.counters.packets += 1;
        track.counters.bytes += u64::from(pkt.header.len);
        self.replay_counters.packets += 1;
        self.replay_counters.bytes += u64::from(pkt.header.len);
        Some(Replayed {
            prelude,
            transmit: Transmit {
                dest: track.dest,
                track: track.id,
                head,
                prelude: false,
                run_index: 0,
            },
            pkt,
            handle,
        })
    }
}

#[cfg(test)]
mod tests;

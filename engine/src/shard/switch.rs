//! Switching a track between sources: asked for by the control plane ([`Shard::switch`]),
//! applied at the new source's switch point by the fan-out ([`Shard::apply_pending`]), or
//! replayed from the history where the new source's join policy says so (`replay`).

use super::table::DETACHED;
use super::{
    events::SwitchDeadline, ControlError, Shard, ShardEvent, SwitchOutcome, MID_FRAME_WAIT,
};
use crate::types::{Nanos, SourceId, TrackId};

impl<H> Shard<H> {
    /// Ask `track` to move to source `to` at `to`'s next switch point, and want a keyframe of
    /// `to` ([`ShardEvent::KeyframeWanted`]). A pending switch not applied by
    /// `now + switch timeout` is cancelled by [`Shard::handle_timeout`]. Where `to` replays
    /// ([`Shard::set_join`]), the track moves at the end of its current source's frame and
    /// starts from `to`'s history instead (at [`Shard::poll_replay`]; reported as applied
    /// when the replay starts).
    pub fn switch(
        &mut self,
        id: TrackId,
        to: SourceId,
        now: Nanos,
    ) -> Result<SwitchOutcome, ControlError> {
        let slot = self.slot(id)?;
        let target = self.group(to)?;
        let target_codec = self.table.groups[target]
            .codec
            .expect("source groups have a codec");
        let track = &self.table.tracks[slot];
        if track.codec != target_codec {
            return Err(ControlError::CodecMismatch {
                track: track.codec,
                source: target_codec,
            });
        }
        if let Some(old) = track.pending {
            self.take_pending(id, old);
        }
        if let Some(r) = self.replay_of(id) {
            if r.source == to {
                // Still sending its old source's frame: the switch is under way, not done.
                let leaving = matches!(r.state, super::replay::ReplayState::Leaving);
                return Ok(if leaving {
                    SwitchOutcome::Pending
                } else {
                    SwitchOutcome::Unchanged
                });
            }
            self.cancel_replay(id);
        }
        if self.table.tracks[slot].source == Some(to) {
            return Ok(SwitchOutcome::Unchanged);
        }
        if let Some(pace) = self.replay_pace(target) {
            if self.is_live(slot) {
                let from = self.table.tracks[slot].source;
                self.start_replay(id, to, pace, Some(from));
                return Ok(SwitchOutcome::Pending);
            }
            let from = self.table.group_at(slot);
            let slot = self.table.move_to_group(slot, from, DETACHED);
            // As below: nothing live to keep. A splicer still anchored to `to` (a replay of it
            // cancelled) would send the replayed packets under the numbers it sent them with.
            self.table.tracks[slot].splicer.detach();
            self.start_replay(id, to, pace, None);
            return Ok(SwitchOutcome::Moved);
        }
        if self.is_live(slot) {
            let track = &mut self.table.tracks[slot];
            (track.pending, track.deferred) = (Some(to), false);
            self.table.groups[target].pending.push(id);
            self.deadlines.push(SwitchDeadline {
                track: id,
                to,
                at: now.saturating_add(self.switch_timeout),
            });
            self.reserve_events();
            self.want_keyframe(target, now);
            return Ok(SwitchOutcome::Pending);
        }
        let from = self.table.group_at(slot);
        let slot = self.table.move_to_group(slot, from, target);
        self.table.tracks[slot].splicer.detach();
        self.reserve_events();
        self.want_keyframe(target, now);
        Ok(SwitchOutcome::Moved)
    }

    /// Cancel a pending switch; true if there was one.
    pub fn cancel_switch(&mut self, id: TrackId) -> Result<bool, ControlError> {
        let slot = self.slot(id)?;
        if self
            .replay_of(id)
            .is_some_and(|r| matches!(r.state, super::replay::ReplayState::Leaving))
        {
            return Ok(self.cancel_replay(id));
        }
        match self.table.tracks[slot].pending {
            Some(target) => {
                self.take_pending(id, target);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Move every track pending on group `g` into it; called at `g`'s switch point. A track
    /// whose current source is in the middle of a frame waits for `g`'s next switch point
    /// instead, once: switching now would hand its decoder a truncated picture (ffmpeg reports
    /// it as a corrupt frame), and no packet of the old frame can follow the new keyframe.
    #[cold]
    pub(super) fn apply_pending(&mut self, g: usize, now: Nanos) {
        let mut pending = std::mem::take(&mut self.table.groups[g].pending);
        let mut kept = 0;
        for i in 0..pending.len() {
            let id = pending[i];
            // A follower waits for its lead's switch (`switch_together`).
            if self.links.iter().any(|l| l.follower == id && l.gated) {
                pending[kept] = id;
                kept += 1;
                continue;
            }
            let slot = self.table.slot_of(id).expect("pending tracks exist");
            let from = self.table.group_at(slot);
            let old = &self.table.groups[from];
            let mid_frame =
                old.frame_open && now.saturating_since(old.last_packet_at) < MID_FRAME_WAIT;
            let track = &mut self.table.tracks[slot];
            if mid_frame && !track.deferred {
                track.deferred = true;
                self.counters.switches_deferred += 1;
                pending[kept] = id;
                kept += 1;
                let to = self.table.groups[g]
                    .source
                    .expect("a source group has a source");
                self.push_event(ShardEvent::SwitchDeferred { track: id, to });
                // The switch now completes at the source's next keyframe: ask for one.
                self.want_keyframe(g, now);
                continue;
            }
            let old = self.table.groups[from].source;
            let slot = self.table.move_to_group(slot, from, g);
            let track = &mut self.table.tracks[slot];
            (track.pending, track.deferred) = (None, false);
            self.forget_deadline(id);
            let to = self.table.groups[g]
                .source
                .expect("a source group has a source");
            self.switch_applied(id, old, to);
        }
        // Hand the list back (holding the deferred tracks) so its capacity is reused: no
        // allocation at switch time.
        pending.truncate(kept);
        self.table.groups[g].pending = pending;
    }

    pub(super) fn take_pending(&mut self, id: TrackId, target: SourceId) {
        // A follower's link ends with its switch; a lead's stays, keeping its follower gated
        // until the follower's own deadline.
        self.links.retain(|l| l.follower != id);
        if let Some(g) = self.table.group_of(target) {
            let list = &mut self.table.groups[g].pending;
            if let Some(i) = list.iter().position(|&p| p == id) {
                list.swap_remove(i);
            }
        }
        if let Some(slot) = self.table.slot_of(id) {
            let track = &mut self.table.tracks[slot];
            (track.pending, track.deferred) = (None, false);
        }
        self.forget_deadline(id);
    }
}

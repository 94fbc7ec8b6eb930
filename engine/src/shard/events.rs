//! What a shard reports besides transmits, and its timers.
//!
//! Everything that is not a transmit leaves the shard through one queue of typed events
//! ([`Shard::poll_event`]): switches applied, deferred and timed out, and keyframes wanted from a
//! source. Time-driven work (switch deadlines) is asked for with [`Shard::poll_timeout`] and done
//! by [`Shard::handle_timeout`]. After any input (a packet, RTCP, a control operation, a timeout)
//! the I/O layer drains `poll_event` until it returns `None`.
//!
//! The queue never grows on the packet path: room for every event the pending switches and the
//! sources can still cause is reserved by the control operations that create them (a switch, a
//! source), and keyframe wishes for one source are coalesced into one queued event.

use super::Shard;
use crate::types::{Nanos, SourceId, TrackId};

/// An event of a shard, polled with [`Shard::poll_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardEvent {
    /// A pending switch was applied at the new source's switch point: `track` now sends `to`.
    SwitchApplied {
        /// The track switched.
        track: TrackId,
        /// The source the track left (`None`: it was detached).
        from: Option<SourceId>,
        /// The source the track sends from now on.
        to: SourceId,
    },
    /// A pending switch reached `to`'s switch point while the track's current source was in the
    /// middle of a frame: it waits for `to`'s next one (see [`super::MID_FRAME_WAIT`]), and a
    /// keyframe is wanted from `to`.
    SwitchDeferred {
        /// The track waiting to switch.
        track: TrackId,
        /// The source it will switch to.
        to: SourceId,
    },
    /// A pending switch found no switch point of `to` within the shard's switch timeout: it was
    /// cancelled, and the track stays on its source.
    SwitchTimedOut {
        /// The track that stays on its source.
        track: TrackId,
        /// The source it was to switch to.
        to: SourceId,
    },
    /// A keyframe of `source` is wanted: a track waits for one (a switch to it), or a
    /// subscriber asked (PLI/FIR). Coalesced: one is queued per source until polled.
    KeyframeWanted {
        /// The source a keyframe should be requested from (its ingress,
        /// [`crate::SourceIngress::request_keyframe`]).
        source: SourceId,
    },
}

/// A pending switch's deadline.
#[derive(Clone, Copy, Debug)]
pub(super) struct SwitchDeadline {
    pub track: TrackId,
    pub to: SourceId,
    pub at: Nanos,
}

impl<H> Shard<H> {
    /// The next event, oldest first; `None` when the queue is empty.
    pub fn poll_event(&mut self) -> Option<ShardEvent> {
        let event = self.events.pop_front()?;
        if let ShardEvent::KeyframeWanted { source } = event {
            if let Some(g) = self.table.group_of(source) {
                self.table.groups[g].keyframe_wanted = false;
            }
        }
        Some(event)
    }

    /// When [`Shard::handle_timeout`] next has work: the earliest pending switch's deadline, or
    /// the end of a source's keyframe interval with a wish waiting.
    pub fn poll_timeout(&self) -> Option<Nanos> {
        let switches = self.deadlines.iter().map(|d| d.at);
        let keyframes = self
            .table
            .groups
            .iter()
            .filter(|g| g.keyframe_again)
            .filter_map(|g| g.keyframe_asked_at)
            .map(|at| at.saturating_add(self.keyframe_interval));
        switches.chain(keyframes).min()
    }

    /// Cancel every pending switch whose deadline has passed at `now`, each reported as
    /// [`ShardEvent::SwitchTimedOut`]; emit the keyframe wishes whose interval has ended.
    pub fn handle_timeout(&mut self, now: Nanos) {
        for g in 0..self.table.groups.len() {
            let group = &self.table.groups[g];
            let due = group
                .keyframe_asked_at
                .is_some_and(|at| now >= at.saturating_add(self.keyframe_interval));
            if group.keyframe_again && due {
                self.want_keyframe(g, now);
            }
        }
        let mut i = 0;
        while i < self.deadlines.len() {
            let d = self.deadlines[i];
            if d.at > now {
                i += 1;
                continue;
            }
            // Removes the deadline at `i` (and the track's pending switch).
            self.take_pending(d.track, d.to);
            self.counters.switches_timed_out += 1;
            self.push_event(ShardEvent::SwitchTimedOut {
                track: d.track,
                to: d.to,
            });
        }
    }

    /// Queue an event. Room was reserved by the control operation that made it possible.
    pub(super) fn push_event(&mut self, event: ShardEvent) {
        debug_assert!(
            self.events.len() < self.events.capacity(),
            "room for every event is reserved ahead"
        );
        self.events.push_back(event);
    }

    /// A keyframe of group `g`'s source is wanted at `now`. One event per source stays queued
    /// until polled, and one is queued per keyframe interval at most: a wish within it is
    /// emitted when it ends.
    pub(super) fn want_keyframe(&mut self, g: usize, now: Nanos) {
        let interval = self.keyframe_interval;
        let group = &mut self.table.groups[g];
        let Some(source) = group.source else { return };
        if group.keyframe_wanted {
            // The queued event is polled after this wish: it speaks for it.
            group.keyframe_again = false;
            return;
        }
        if group
            .keyframe_asked_at
            .is_some_and(|at| now < at.saturating_add(interval))
        {
            group.keyframe_again = true;
            return;
        }
        (group.keyframe_wanted, group.keyframe_again) = (true, false);
        group.keyframe_asked_at = Some(now);
        self.push_event(ShardEvent::KeyframeWanted { source });
    }

    /// Make room for every event that can come before the next control operation: a pending
    /// switch causes at most two (deferred, then applied or timed out), a source at most one
    /// queued keyframe wish.
    pub(super) fn reserve_events(&mut self) {
        let pending: usize = self.table.groups.iter().map(|g| g.pending.len()).sum();
        self.events
            .reserve(2 * pending + self.replays.len() + self.table.groups.len());
    }

    /// Forget the deadline of `track`'s pending switch, if it has one.
    pub(super) fn forget_deadline(&mut self, track: TrackId) {
        if let Some(i) = self.deadlines.iter().position(|d| d.track == track) {
            self.deadlines.swap_remove(i);
        }
    }
}

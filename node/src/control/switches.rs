//! Switches: a subscriber asked to move to another source, and the shards' word on it: applied,
//! refused, or timed out (the shard's engine keeps each switch's `--switch-timeout` deadline).

use std::time::Instant;

use corecast_engine::{SourceId, SwitchOutcome, TrackId};
use corecast_signaling::api::{SwitchOutcome as ApiSwitchOutcome, SwitchView};

use super::error::{Conflict, NodeError, What};
use super::ControlState;
use crate::events::EventType;
use crate::shard::{ShardCommand, ShardEvent};

/// Why a switch is made: the events say, and one asked for through the API ends a failover's
/// hold on the subscriber (it no longer goes back to its primary by itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SwitchCause {
    Request,
    /// Its primary went idle: to the fallback.
    Failover,
    /// Its primary sends again: back to it.
    Restore,
}

impl SwitchCause {
    fn name(self) -> &'static str {
        match self {
            SwitchCause::Request => "request",
            SwitchCause::Failover => "failover",
            SwitchCause::Restore => "restore",
        }
    }
}

/// What a switch request needs once checked.
pub(super) enum SwitchPlan {
    /// It already receives that source and nothing is pending: nothing to do.
    Unchanged(SwitchView),
    /// A command to its shard, then [`ControlState::record_switch`].
    Send { shard: usize },
}

impl ControlState {
    pub(crate) fn switch(&mut self, id: TrackId, to: SourceId) -> Result<SwitchView, NodeError> {
        let shard = match self.plan_switch(id, to)? {
            SwitchPlan::Unchanged(view) => {
                self.forget_home(id);
                return Ok(view);
            }
            SwitchPlan::Send { shard } => shard,
        };
        // Back to the current source the engine drops the pending switch (`Unchanged`).
        self.send_shard(shard, ShardCommand::Switch(id, to))?;
        Ok(self.record_switch(id, to, SwitchCause::Request))
    }

    /// A switch made by the node itself (failover and back): as [`switch`](Self::switch).
    pub(super) fn switch_for(
        &mut self,
        id: TrackId,
        to: SourceId,
        cause: SwitchCause,
    ) -> Result<(), NodeError> {
        if let SwitchPlan::Send { shard } = self.plan_switch(id, to)? {
            self.send_shard(shard, ShardCommand::Switch(id, to))?;
            self.record_switch(id, to, cause);
        }
        Ok(())
    }

    /// A subscriber switched by request stays where it was sent, failover or not.
    pub(super) fn forget_home(&mut self, id: TrackId) {
        if let Some(sub) = self.subs.get_mut(&id) {
            sub.home = None;
        }
    }

    /// Check a switch of `id` to `to`; changes nothing.
    pub(super) fn plan_switch(&self, id: TrackId, to: SourceId) -> Result<SwitchPlan, NodeError> {
        let sub = self
            .subs
            .get(&id)
            .ok_or(NodeError::NotFound(What::Subscriber(id)))?;
        let target = self
            .sources
            .get(&to)
            .ok_or(NodeError::NotFound(What::Source(to)))?;
        // The subscriber's own codec, not its source's: a detached one has no source to ask.
        if sub.codec != target.codec {
            return Err(Conflict::Codec {
                subscriber: id,
                receives: sub.codec,
                source: to,
                is: target.codec,
            }
            .into());
        }
        let (shard, source, pending) = (sub.shard, sub.source, sub.pending);
        if source == Some(to) && pending.is_none() {
            return Ok(SwitchPlan::Unchanged(SwitchView {
                outcome: ApiSwitchOutcome::Unchanged,
                source: source.map(|s| s.0),
                pending_source: None,
            }));
        }
        Ok(SwitchPlan::Send { shard })
    }

    /// The shard was sent the switch of `id` to `to`: what the control thread keeps of it.
    pub(super) fn record_switch(
        &mut self,
        id: TrackId,
        to: SourceId,
        cause: SwitchCause,
    ) -> SwitchView {
        if cause == SwitchCause::Request {
            self.forget_home(id);
        }
        let sub = &self.subs[&id];
        let (shard, source, pending) = (sub.shard, sub.source, sub.pending);
        if let Some(p) = pending {
            self.release_source(shard, p);
        }
        let sub = self
            .subs
            .get_mut(&id)
            .expect("record_switch follows plan_switch, which found the subscriber");
        sub.switches_unanswered += 1;
        let now = Instant::now();
        let outcome = if source == Some(to) {
            sub.pending = None;
            sub.requested_at = None;
            ApiSwitchOutcome::Cancelled
        } else {
            sub.pending = Some(to);
            sub.requested_at = Some(now);
            // The shard asks the source for the keyframe the switch waits for.
            self.use_source(shard, to);
            ApiSwitchOutcome::Pending
        };
        if let Some(p) = pending.filter(|&p| p != to) {
            let data = serde_json::json!({"to": p.0, "reason": "replaced", "by": to.0});
            self.emit(EventType::SwitchCancelled, Some(p), Some(id), data);
        }
        if outcome == ApiSwitchOutcome::Pending {
            let data = serde_json::json!({
                "from": source.map(|s| s.0),
                "to": to.0,
                "cause": cause.name(),
            });
            self.emit(EventType::SwitchRequested, Some(to), Some(id), data);
        }
        SwitchView {
            outcome,
            source: source.map(|s| s.0),
            pending_source: (outcome == ApiSwitchOutcome::Pending).then_some(to.0),
        }
    }

    pub(super) fn on_event(&mut self, shard: usize, event: ShardEvent) {
        if let ShardEvent::SwitchRequested(track, ..) = &event {
            if let Some(sub) = self.subs.get_mut(track) {
                sub.switches_unanswered = sub.switches_unanswered.saturating_sub(1);
            }
        }
        match event {
            ShardEvent::SwitchRequested(track, to, Ok(SwitchOutcome::Moved)) => {
                self.switched(shard, track, to)
            }
            ShardEvent::SwitchRequested(_, _, Ok(_)) => {}
            ShardEvent::SwitchRequested(track, to, Err(e)) => {
                tracing::warn!(subscriber = track.0, source = to.0, "switch refused: {e}");
                // Only the switch still pending is news: one replaced since was reported then.
                let Some(sub) = self.subs.get_mut(&track) else {
                    return;
                };
                if sub.pending != Some(to) {
                    return;
                }
                sub.pending = None;
                sub.requested_at = None;
                self.release_source(shard, to);
                let data =
                    serde_json::json!({"to": to.0, "reason": "refused", "error": e.to_string()});
                self.emit(EventType::SwitchCancelled, Some(to), Some(track), data);
            }
            ShardEvent::Switched(track, to) => self.switched(shard, track, to),
            ShardEvent::SwitchTimedOut(track, to) => self.switch_timed_out(shard, track, to),
            ShardEvent::Refused(e) => tracing::warn!(shard, "shard refused a command: {e}"),
            ShardEvent::ViewerSelected(viewer, addr) => self.viewer_selected(viewer, addr),
            ShardEvent::ViewerGone(viewer, reason) => {
                self.remove_viewer(TrackId(viewer.0 as u32), reason);
            }
        }
    }

    /// Subscriber `id` now takes `to` (attached, at or waiting for its switch point).
    fn switched(&mut self, shard: usize, id: TrackId, to: SourceId) {
        let Some(sub) = self.subs.get_mut(&id) else {
            return;
        };
        let was_pending = sub.pending == Some(to);
        if sub.home == Some(to) {
            sub.home = None;
        }
        let old = sub.source.replace(to);
        sub.pending = None;
        sub.switches += 1;
        let took_ms = sub
            .requested_at
            .take()
            .map(|t| t.elapsed().as_secs_f64() * 1000.0);
        if !was_pending {
            // Replaced here while the shard applied it: take the source back.
            self.use_source(shard, to);
        }
        if let Some(old) = old.filter(|&o| o != to) {
            self.release_source(shard, old);
        }
        tracing::debug!(subscriber = id.0, source = to.0, "switch completed");
        let data = serde_json::json!({"from": old.map(|o| o.0), "to": to.0, "took_ms": took_ms});
        self.emit(EventType::SwitchCompleted, Some(to), Some(id), data);
    }

    /// The shard cancelled subscriber `id`'s switch to `source` at its deadline.
    fn switch_timed_out(&mut self, shard: usize, id: TrackId, source: SourceId) {
        let Some(sub) = self.subs.get_mut(&id) else {
            return;
        };
        // A switch replaced or cancelled since was reported then; one asked for again since
        // (the same source) has a new deadline in the shard, which took the newer command
        // after this timeout.
        if sub.pending != Some(source) || sub.switches_unanswered > 0 {
            return;
        }
        sub.pending = None;
        let waited_ms = sub
            .requested_at
            .take()
            .map(|t| t.elapsed().as_millis() as u64);
        self.release_source(shard, source);
        let reason = "no keyframe came from the source within --switch-timeout; it may \
                      not answer keyframe requests (PLI) or not be sending";
        tracing::warn!(
            subscriber = id.0,
            source = source.0,
            "switch timed out: {reason}"
        );
        let data = serde_json::json!({"to": source.0, "waited_ms": waited_ms, "reason": reason});
        self.emit(EventType::SwitchTimedOut, Some(source), Some(id), data);
    }
}

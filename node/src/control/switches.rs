//! Switches: a subscriber asked to move to another source, the shards' word on it, and the
//! deadline after which one still not done is cancelled.

use std::time::Instant;

use corecast_engine::{SourceId, SwitchOutcome, TrackId};
use corecast_signaling::api::{SwitchOutcome as ApiSwitchOutcome, SwitchView};

use super::error::{Conflict, NodeError, What};
use super::ControlState;
use crate::events::EventType;
use crate::shard::{ShardCommand, ShardEvent};

impl ControlState {
    pub(crate) fn switch(&mut self, id: TrackId, to: SourceId) -> Result<SwitchView, NodeError> {
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
        let (shard, source, pending) = (sub.shard, sub.source, sub.pending.map(|(p, _)| p));
        if source == Some(to) && pending.is_none() {
            return Ok(SwitchView {
                outcome: ApiSwitchOutcome::Unchanged,
                source: source.map(|s| s.0),
                pending_source: None,
            });
        }
        // Back to the current source the engine drops the pending switch (`Unchanged`).
        self.send_shard(shard, ShardCommand::Switch(id, to))?;
        if let Some(p) = pending {
            self.release_source(shard, p);
        }
        let sub = self.subs.get_mut(&id).expect("checked above");
        let now = Instant::now();
        let outcome = if source == Some(to) {
            sub.pending = None;
            sub.requested_at = None;
            ApiSwitchOutcome::Cancelled
        } else {
            sub.pending = Some((to, now + self.settings.switch_timeout));
            sub.requested_at = Some(now);
            self.use_source(shard, to);
            self.request_keyframe(to);
            ApiSwitchOutcome::Pending
        };
        if let Some(p) = pending.filter(|&p| p != to) {
            let data = serde_json::json!({"to": p.0, "reason": "replaced", "by": to.0});
            self.emit(EventType::SwitchCancelled, Some(p), Some(id), data);
        }
        if outcome == ApiSwitchOutcome::Pending {
            let data = serde_json::json!({"from": source.map(|s| s.0), "to": to.0});
            self.emit(EventType::SwitchRequested, Some(to), Some(id), data);
        }
        Ok(SwitchView {
            outcome,
            source: source.map(|s| s.0),
            pending_source: (outcome == ApiSwitchOutcome::Pending).then_some(to.0),
        })
    }

    pub(super) fn on_event(&mut self, shard: usize, event: ShardEvent) {
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
                if sub.pending.map(|(p, _)| p) != Some(to) {
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
            ShardEvent::Refused(e) => tracing::warn!(shard, "shard refused a command: {e}"),
        }
    }

    /// Subscriber `id` now takes `to` (attached, at or waiting for its switch point).
    fn switched(&mut self, shard: usize, id: TrackId, to: SourceId) {
        let Some(sub) = self.subs.get_mut(&id) else {
            return;
        };
        let was_pending = sub.pending.map(|(p, _)| p) == Some(to);
        let old = sub.source.replace(to);
        sub.pending = None;
        sub.switches += 1;
        let took_ms = sub
            .requested_at
            .take()
            .map(|t| t.elapsed().as_secs_f64() * 1000.0);
        if !was_pending {
            // Timed out here while the shard applied it: take the source back.
            self.use_source(shard, to);
        }
        if let Some(old) = old.filter(|&o| o != to) {
            self.release_source(shard, old);
        }
        tracing::debug!(subscriber = id.0, source = to.0, "switch completed");
        let data = serde_json::json!({"from": old.map(|o| o.0), "to": to.0, "took_ms": took_ms});
        self.emit(EventType::SwitchCompleted, Some(to), Some(id), data);
    }

    pub(super) fn expire_switches(&mut self) {
        let now = Instant::now();
        let expired: Vec<(TrackId, usize, SourceId)> = self
            .subs
            .iter()
            .filter_map(|(&id, s)| match s.pending {
                Some((p, deadline)) if now >= deadline => Some((id, s.shard, p)),
                _ => None,
            })
            .collect();
        for (id, shard, source) in expired {
            if self
                .send_shard(shard, ShardCommand::CancelSwitch(id))
                .is_err()
            {
                continue;
            }
            let mut waited_ms = None;
            if let Some(sub) = self.subs.get_mut(&id) {
                sub.pending = None;
                waited_ms = sub
                    .requested_at
                    .take()
                    .map(|t| t.elapsed().as_millis() as u64);
            }
            self.release_source(shard, source);
            self.switches_timed_out += 1;
            let reason = "no keyframe came from the source within --switch-timeout; it may \
                          not answer keyframe requests (PLI) or not be sending";
            tracing::warn!(
                subscriber = id.0,
                source = source.0,
                "switch timed out: {reason}"
            );
            let data =
                serde_json::json!({"to": source.0, "waited_ms": waited_ms, "reason": reason});
            self.emit(EventType::SwitchTimedOut, Some(source), Some(id), data);
        }
    }
}

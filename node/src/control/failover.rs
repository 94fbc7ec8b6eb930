//! Failover to a fallback source: on every control tick each source that names a fallback is
//! watched (`corecast_engine::Failover`, fed the sources' accepted-packet counts from ingest's
//! snapshots), and the subscribers are reconciled with what it says: those of an idle primary
//! are switched to its fallback, and back when it sends again. The moves are ordinary switches,
//! so they happen at the target's switch point, are reported as `switch.*` events with the
//! cause `failover` or `restore`, and one that times out is simply asked for again.

use std::collections::BTreeMap;

use corecast_engine::{FailoverMove, SourceId, TrackId};

use super::switches::SwitchCause;
use super::ControlState;
use crate::events::EventType;
use crate::telemetry::{lock, Aggregates};

/// The packets ingest accepted from `source` so far, as of its last snapshot in `agg`.
pub(super) fn accepted_in(agg: &Aggregates, source: SourceId) -> u64 {
    agg.sources
        .get(&source.0)
        .map_or(0, |s| s.stats.ingress.accepted)
}

/// The least time between two looks (the control thread's tick, whatever woke it).
const WATCH_EVERY: corecast_engine::Nanos = corecast_engine::Nanos::from_millis(20);

impl ControlState {
    /// Observe every watched source, report the moves, and switch the subscribers that are not
    /// where their primary's state says they should be.
    pub(super) fn watch_failovers(&mut self) {
        if !self.sources.values().any(|s| s.fallback.is_some()) && self.homed == 0 {
            return;
        }
        let now = self.settings.clock.now();
        // Counts change once per ingest snapshot; a burst of API calls need not rescan.
        if now.saturating_since(self.failover_watched) < WATCH_EVERY {
            return;
        }
        self.failover_watched = now;
        let mut moves = Vec::new();
        {
            let agg = lock(&self.telemetry);
            for (&id, s) in self.sources.iter_mut() {
                if let Some((fallback, policy)) = &mut s.fallback {
                    let (p, f) = (accepted_in(&agg, id), accepted_in(&agg, *fallback));
                    if let Some(m) = policy.observe(p, f, now) {
                        moves.push((id, *fallback, m));
                    }
                }
            }
        }
        for (primary, fallback, m) in moves {
            self.report_failover(primary, fallback, m);
        }
        self.reconcile_failovers();
    }

    fn report_failover(&self, primary: SourceId, fallback: SourceId, m: FailoverMove) {
        let name = &self.sources[&primary].name;
        match m {
            FailoverMove::ToFallback {
                silent_for,
                ever_sent,
            } => {
                let subscribers = self
                    .subs
                    .values()
                    .filter(|s| s.source == Some(primary) && s.home.is_none())
                    .count();
                let silent_ms = silent_for.0 / 1_000_000;
                let reason = if ever_sent { "idle" } else { "never sent" };
                tracing::warn!(
                    source = primary.0,
                    name,
                    fallback = fallback.0,
                    silent_ms,
                    subscribers,
                    "source failed over to its fallback: {reason}"
                );
                let data = serde_json::json!({
                    "fallback": fallback.0,
                    "reason": reason,
                    "silent_ms": silent_ms,
                    "subscribers": subscribers,
                });
                self.emit(EventType::SourceFailover, Some(primary), None, data);
            }
            FailoverMove::ToPrimary => {
                let subscribers = self
                    .subs
                    .values()
                    .filter(|s| s.home == Some(primary))
                    .count();
                tracing::info!(
                    source = primary.0,
                    name,
                    fallback = fallback.0,
                    subscribers,
                    "source sends again: its subscribers go back to it"
                );
                let data = serde_json::json!({"fallback": fallback.0, "subscribers": subscribers});
                self.emit(EventType::SourceRestored, Some(primary), None, data);
            }
        }
    }

    /// Switch every subscriber that is neither on nor moving to where it belongs: its primary's
    /// fallback while the primary is failed over, the primary otherwise.
    fn reconcile_failovers(&mut self) {
        let engaged: BTreeMap<SourceId, SourceId> = self
            .sources
            .iter()
            .filter_map(|(&id, s)| match &s.fallback {
                Some((fallback, policy)) if policy.engaged() => Some((id, *fallback)),
                _ => None,
            })
            .collect();
        let mut plan: Vec<(TrackId, SourceId, SwitchCause)> = Vec::new();
        let mut gone_home = Vec::new();
        for (&id, sub) in &self.subs {
            let Some(primary) = sub.home.or(sub.source) else {
                continue;
            };
            if !self.sources.contains_key(&primary) {
                // Its primary was deleted: it stays where it is.
                gone_home.push(id);
                continue;
            }
            let (to, cause) = match engaged.get(&primary) {
                Some(&fallback) => (fallback, SwitchCause::Failover),
                None => (primary, SwitchCause::Restore),
            };
            if sub.source == Some(to) {
                if to == primary && sub.home.is_some() {
                    gone_home.push(id);
                }
                continue;
            }
            // One on its way somewhere (either move, or a request) is left to get there; if
            // that switch times out, the next tick asks again.
            if sub.pending.is_none() {
                plan.push((id, to, cause));
            }
        }
        for id in gone_home {
            self.forget_home(id);
        }
        for (id, to, cause) in plan {
            let primary = self.subs[&id].home.or(self.subs[&id].source);
            if let Err(e) = self.switch_for(id, to, cause) {
                // A full shard queue: the next tick tries again.
                tracing::warn!(
                    subscriber = id.0,
                    source = to.0,
                    "failover switch not sent: {e}"
                );
                break;
            }
            if cause == SwitchCause::Failover {
                if let Some(sub) = self.subs.get_mut(&id) {
                    sub.home = primary;
                }
            }
        }
        self.homed = self.subs.values().filter(|s| s.home.is_some()).count();
    }
}

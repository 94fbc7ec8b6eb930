//! What the shards count of loss repair: NACKed numbers, resends queued and sent, refusals by
//! reason, and the packets their histories hold. In `/metrics` and `/v1/stats`.

use corecast_engine::shard::RepairCounters;
use corecast_signaling::api::{RepairShardStats, ReplayShardStats};

use super::metrics::{label, labels2, Labels, Scrape};
use super::Aggregates;
use crate::shard::ShardSnapshot;

/// Each refusal reason with its count.
fn refusals(c: &RepairCounters) -> [(&'static str, u64); 5] {
    [
        ("unknown", c.unknown),
        ("missing", c.missing),
        ("too_often", c.too_often),
        ("over_budget", c.over_budget),
        ("queue_full", c.queue_full),
    ]
}

/// A shard's repair figures as `/v1/stats` shows them.
pub fn shard_stats(snap: &ShardSnapshot) -> RepairShardStats {
    let c = &snap.repair;
    RepairShardStats {
        nacked: c.requested,
        resends_queued: c.resent,
        resent_bytes: c.resent_bytes,
        resends_sent: snap.io.resends_sent,
        resends_failed: snap.io.resends_refused,
        refused: refusals(c)
            .into_iter()
            .filter(|&(_, n)| n > 0)
            .map(|(r, n)| (r.to_string(), n))
            .collect(),
        history_packets: snap.history_packets as u64,
        history_bytes: snap.history_bytes as u64,
    }
}

/// A shard's replay figures as `/v1/stats` shows them.
pub fn replay_stats(snap: &ShardSnapshot) -> ReplayShardStats {
    let c = &snap.replay;
    ReplayShardStats {
        started: c.started,
        finished: c.finished,
        without_keyframe: c.without_keyframe,
        packets: c.packets,
        bytes: c.bytes,
        failed: snap.io.replays_refused,
        skipped: c.skipped,
    }
}

pub(super) fn families(s: &mut Scrape, agg: &Aggregates) {
    let snaps: Vec<(usize, &ShardSnapshot)> = agg
        .shards
        .iter()
        .enumerate()
        .filter_map(|(k, s)| s.latest.as_deref().map(|l| (k, l)))
        .collect();
    let per_shard = |f: &dyn Fn(&ShardSnapshot) -> u64| -> Vec<(Labels, u64)> {
        snaps
            .iter()
            .map(|(k, l)| (label("shard", k), f(l)))
            .collect()
    };
    s.counter(
        "corecast_nack_requested",
        "Sequence numbers subscribers NACKed, per shard.",
        per_shard(&|l| l.repair.requested),
    );
    s.counter(
        "corecast_resends_sent",
        "Packets resent to subscribers that NACKed them, per shard.",
        per_shard(&|l| l.io.resends_sent),
    );
    s.counter(
        "corecast_resent_bytes",
        "Bytes of the packets queued for resending, per shard.",
        per_shard(&|l| l.repair.resent_bytes),
    );
    s.counter(
        "corecast_resends_refused",
        "NACKed numbers not resent, per shard and reason (unknown: never sent or forgotten; \
         missing: not in the history; too_often, over_budget: the subscriber's limits; \
         queue_full; send_failed: the kernel refused it or it could not be sealed).",
        snaps
            .iter()
            .flat_map(|(k, l)| {
                refusals(&l.repair)
                    .into_iter()
                    .chain([("send_failed", l.io.resends_refused)])
                    .map(|(r, n)| (labels2("shard", k, "reason", r), n))
                    .collect::<Vec<_>>()
            })
            .collect(),
    );
    s.counter(
        "corecast_replays",
        "Joins and switches replayed from a shard's history, per shard and outcome (started; \
         finished: caught up with live; without_keyframe: none in the history, waited for one).",
        snaps
            .iter()
            .flat_map(|(k, l)| {
                [
                    ("started", l.replay.started),
                    ("finished", l.replay.finished),
                    ("without_keyframe", l.replay.without_keyframe),
                ]
                .map(|(o, n)| (labels2("shard", k, "outcome", o), n))
            })
            .collect(),
    );
    s.counter(
        "corecast_replayed_packets",
        "Packets sent to joining subscribers from the history, per shard.",
        per_shard(&|l| l.replay.packets),
    );
    s.counter(
        "corecast_replayed_bytes",
        "Bytes of the packets sent to joining subscribers from the history, per shard.",
        per_shard(&|l| l.replay.bytes),
    );
    s.gauge(
        "corecast_history_packets",
        "Packets a shard's source histories hold (pool slots kept for resends).",
        snaps
            .iter()
            .map(|(k, l)| (label("shard", k), l.history_packets as f64))
            .collect(),
    );
    s.gauge(
        "corecast_history_bytes",
        "Bytes of the packets a shard's source histories hold.",
        snaps
            .iter()
            .map(|(k, l)| (label("shard", k), l.history_bytes as f64))
            .collect(),
    );
}

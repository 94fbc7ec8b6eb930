//! The telemetry thread: turns the shards' and ingest's counter snapshots into node-wide
//! aggregates (totals, rates, merged latency histograms, source state), serves them to the API
//! and to `/metrics`, and derives the periodic and state-change events.
//!
//! Shards and ingest never wait for it: they push a snapshot per stats interval onto a bounded
//! queue and drop (and count) it when the queue is full. The aggregates sit behind a mutex that
//! only this thread, the control thread and HTTP handlers take, never the packet path.
//!
//! Node-wide and per-shard totals never go backwards: the counters of a deleted source are kept
//! in `removed` totals (see [`totals`]).

mod metrics;
pub mod repair;
pub mod totals;
pub mod webrtc;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use corecast_engine::{DropCounts, SourceCounters};
use serde_json::json;

use crate::events::{Event, EventBus, EventType};
use crate::ingest::{IngestLink, IngestSourceStats};
use crate::shard::{new_latency_histogram, LatencyHistogram, ShardLink, ShardSnapshot};

pub use metrics::{render_metrics, Configured};
pub use totals::IngestTotals;

/// Whether a source is sending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceState {
    /// Created, nothing received yet.
    Waiting,
    Active,
    /// No packets for `--idle-timeout`.
    Idle,
}

impl SourceState {
    pub fn name(self) -> &'static str {
        match self {
            SourceState::Waiting => "waiting",
            SourceState::Active => "active",
            SourceState::Idle => "idle",
        }
    }
}

/// The time between two snapshots of one thread: what its rates, busy share and recent latency
/// cover. Threads snapshot on the same boundaries of the node's clock
/// ([`crate::clock::Clock::next_boundary`]), so the windows of one refresh coincide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start: Instant,
    pub end: Instant,
}

impl Window {
    /// Start and end in seconds of uptime (since `origin`, the node's start).
    pub fn uptime_s(&self, origin: Instant) -> (f64, f64) {
        let s = |t: Instant| t.saturating_duration_since(origin).as_secs_f64();
        (s(self.start), s(self.end))
    }

    fn secs(&self) -> f64 {
        self.end.saturating_duration_since(self.start).as_secs_f64()
    }
}

/// One shard as telemetry sees it.
pub struct ShardAgg {
    pub latest: Option<Box<ShardSnapshot>>,
    /// Latency of every copy since start, and of the copies sent in `window`.
    pub latency: LatencyHistogram,
    pub latency_recent: LatencyHistogram,
    /// Between the last two snapshots: what the rates, busy share and `latency_recent` cover.
    pub window: Option<Window>,
    pub packets_in_per_s: f64,
    pub copies_out_per_s: f64,
    pub busy_ratio: f64,
    /// This shard's counters of sources deleted since start, as last seen.
    pub removed: SourceCounters,
}

impl ShardAgg {
    /// This shard's counters over every source it ever hosted: copies due, sent, dropped by
    /// reason (Copy scope), parameter sets sent.
    pub fn copies(&self) -> SourceCounters {
        let mut sum = self.removed;
        for (_, c) in self.latest.iter().flat_map(|l| &l.sources) {
            totals::add_source_counters(&mut sum, c);
        }
        sum
    }

    /// Packets this shard dropped because it hosts no such source (Shard scope), since start.
    pub fn shard_drops(&self) -> DropCounts {
        self.latest.as_ref().map(|l| l.drops).unwrap_or_default()
    }
}

/// One source as telemetry sees it.
pub struct SourceAgg {
    pub stats: IngestSourceStats,
    pub state: SourceState,
    pub packets_per_s: f64,
    pub bitrate_bps: f64,
    pub frames_per_s: f64,
    /// Between the last two ingest snapshots: what the rates cover.
    pub window: Option<Window>,
    last_growth: Instant,
    /// When `stats` was taken.
    at: Instant,
}

/// Node-wide aggregates, read by the API and `/metrics`.
pub struct Aggregates {
    pub started: Instant,
    pub shards: Vec<ShardAgg>,
    pub sources: BTreeMap<u32, SourceAgg>,
    /// Track id → (shard, index in that shard's latest snapshot).
    pub track_index: HashMap<u32, (usize, usize)>,
    pub per_subscriber_metrics: bool,
    /// Ingest snapshots the telemetry queue had no room for.
    pub ingest_snapshots_dropped: u64,
    /// What ingest counted of the sources deleted since start, as last seen.
    pub removed_sources: IngestTotals,
}

impl Aggregates {
    pub fn new(shards: usize, per_subscriber_metrics: bool) -> Aggregates {
        Aggregates {
            started: Instant::now(),
            shards: (0..shards)
                .map(|_| ShardAgg {
                    latest: None,
                    latency: new_latency_histogram(),
                    latency_recent: new_latency_histogram(),
                    window: None,
                    packets_in_per_s: 0.0,
                    copies_out_per_s: 0.0,
                    busy_ratio: 0.0,
                    removed: SourceCounters::default(),
                })
                .collect(),
            sources: BTreeMap::new(),
            track_index: HashMap::new(),
            per_subscriber_metrics,
            ingest_snapshots_dropped: 0,
            removed_sources: IngestTotals::default(),
        }
    }

    /// What ingest counted, over every source since start (deleted ones included).
    pub fn ingest(&self) -> IngestTotals {
        let mut sum = self.removed_sources;
        for s in self.sources.values() {
            sum.add(&IngestTotals::of(&s.stats));
        }
        sum
    }

    /// Every drop since start, by reason, at ingest and in every shard, of every scope.
    pub fn drops(&self) -> DropCounts {
        let mut all = self.ingest().drops;
        for shard in &self.shards {
            all.merge(&shard.shard_drops());
            all.merge(&shard.copies().drops);
        }
        all
    }

    /// Latency of every copy since start, over all shards.
    pub fn latency(&self) -> LatencyHistogram {
        let mut all = new_latency_histogram();
        for s in &self.shards {
            let _ = all.add(&s.latency);
        }
        all
    }
}

pub type SharedAggregates = Arc<Mutex<Aggregates>>;

pub fn lock(a: &SharedAggregates) -> MutexGuard<'_, Aggregates> {
    // A panic elsewhere while holding the lock leaves counters, not invariants: keep serving.
    a.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct TelemetrySettings {
    pub stats_interval: Duration,
    pub idle_timeout: Duration,
}

pub struct Telemetry {
    pub aggregates: SharedAggregates,
    pub shards: Vec<Arc<ShardLink>>,
    pub ingest: Arc<IngestLink>,
    pub events: Arc<EventBus>,
    pub settings: TelemetrySettings,
    pub stop: Arc<AtomicBool>,
}

impl Telemetry {
    pub fn run(self) {
        let tick = (self.settings.stats_interval / 4)
            .clamp(Duration::from_millis(5), Duration::from_millis(100));
        let mut next_stats = Instant::now() + self.settings.stats_interval;
        let mut reported = Reported::default();
        while !self.stop.load(Ordering::Acquire) {
            std::thread::park_timeout(tick);
            self.collect();
            self.watch_sources();
            if Instant::now() >= next_stats {
                next_stats += self.settings.stats_interval;
                self.periodic_events(&mut reported);
            }
        }
        self.collect();
    }

    fn collect(&self) {
        let mut agg = lock(&self.aggregates);
        for (k, link) in self.shards.iter().enumerate() {
            while let Some(snap) = link.snapshots.pop() {
                let shard = &mut agg.shards[k];
                if let Some(prev) = &shard.latest {
                    let window = Window {
                        start: prev.taken_at,
                        end: snap.taken_at,
                    };
                    let secs = window.secs();
                    if secs > 0.0 {
                        shard.window = Some(window);
                        shard.packets_in_per_s =
                            (snap.io.packets_in - prev.io.packets_in) as f64 / secs;
                        shard.copies_out_per_s =
                            (snap.io.copies_sent - prev.io.copies_sent) as f64 / secs;
                        shard.busy_ratio = ((snap.busy - prev.busy).as_secs_f64() / secs).min(1.0);
                    }
                    // A source gone from the shard's snapshot was deleted: keep what it counted.
                    for (id, c) in &prev.sources {
                        if !snap.sources.iter().any(|(sid, _)| sid == id) {
                            totals::add_source_counters(&mut shard.removed, c);
                        }
                    }
                }
                let _ = shard.latency.add(&snap.latency);
                shard.latency_recent = snap.latency.clone();
                // Rebuilt for this shard, so a deleted subscriber's entry goes with it.
                agg.track_index.retain(|_, &mut (shard, _)| shard != k);
                for (i, t) in snap.tracks.iter().enumerate() {
                    agg.track_index.insert(t.id.0, (k, i));
                }
                agg.shards[k].latest = Some(snap);
            }
        }
        while let Some(snap) = self.ingest.snapshots.pop() {
            let (taken_at, list) = (snap.taken_at, snap.sources);
            let live: Vec<u32> = list.iter().filter_map(|s| s.id.map(|id| id.0)).collect();
            let mut removed = agg.removed_sources;
            agg.sources.retain(|id, s| {
                let keep = live.contains(id);
                if !keep {
                    removed.add(&IngestTotals::of(&s.stats).deleted());
                }
                keep
            });
            agg.removed_sources = removed;
            for stats in list {
                let Some(id) = stats.id.map(|id| id.0) else {
                    continue;
                };
                self.update_source(&mut agg, id, stats, taken_at);
            }
        }
    }

    /// Fold in a source's counters taken at `now` (on ingest's clock).
    fn update_source(&self, agg: &mut Aggregates, id: u32, stats: IngestSourceStats, now: Instant) {
        let Some(s) = agg.sources.get_mut(&id) else {
            agg.sources.insert(
                id,
                SourceAgg {
                    state: if stats.ingress.packets > 0 {
                        SourceState::Active
                    } else {
                        SourceState::Waiting
                    },
                    stats,
                    packets_per_s: 0.0,
                    bitrate_bps: 0.0,
                    frames_per_s: 0.0,
                    window: None,
                    last_growth: now,
                    at: now,
                },
            );
            if agg.sources[&id].state == SourceState::Active {
                self.emit(EventType::SourceActive, Some(id), json!({}));
            }
            return;
        };
        let window = Window {
            start: s.at,
            end: now,
        };
        let secs = window.secs();
        let (old, new) = (&s.stats.ingress, &stats.ingress);
        if secs > 0.0 {
            s.window = Some(window);
            s.packets_per_s = (new.packets - old.packets) as f64 / secs;
            s.bitrate_bps = (new.bytes - old.bytes) as f64 * 8.0 / secs;
            s.frames_per_s = (new.frames - old.frames) as f64 / secs;
        }
        if new.restarts > old.restarts {
            let data = json!({"restarts": new.restarts - old.restarts, "total": new.restarts});
            self.emit(EventType::SourceRestarted, Some(id), data);
        }
        let asked = stats.keyframe_requests_sent - s.stats.keyframe_requests_sent;
        if asked > 0 {
            self.emit(
                EventType::KeyframeRequested,
                Some(id),
                json!({"requests": asked}),
            );
        }
        if new.packets > old.packets {
            s.last_growth = now;
            match s.state {
                SourceState::Waiting => self.emit(EventType::SourceActive, Some(id), json!({})),
                SourceState::Idle => self.emit(EventType::SourceResumed, Some(id), json!({})),
                SourceState::Active => {}
            }
            s.state = SourceState::Active;
        }
        s.stats = stats;
        s.at = now;
    }

    /// A source that has sent nothing for the idle timeout turns idle.
    fn watch_sources(&self) {
        let mut agg = lock(&self.aggregates);
        let now = Instant::now();
        for (&id, s) in agg.sources.iter_mut() {
            if s.state == SourceState::Active
                && now.saturating_duration_since(s.last_growth) >= self.settings.idle_timeout
            {
                s.state = SourceState::Idle;
                s.packets_per_s = 0.0;
                s.bitrate_bps = 0.0;
                s.frames_per_s = 0.0;
                let idle_ms = self.settings.idle_timeout.as_millis() as u64;
                self.emit(EventType::SourceIdle, Some(id), json!({"idle_ms": idle_ms}));
            }
        }
    }

    /// `stats` (deltas since the last one, of the sources and subscribers that moved) and
    /// `drops` (when any).
    fn periodic_events(&self, reported: &mut Reported) {
        let agg = lock(&self.aggregates);
        if !self.events.wants(EventType::Stats) && !self.events.wants(EventType::Drops) {
            return;
        }
        let mut sources = serde_json::Map::new();
        for (&id, s) in &agg.sources {
            let c = &s.stats.ingress;
            let last = reported.sources.entry(id).or_default();
            let (packets, bytes) = (
                c.packets.saturating_sub(last.0),
                c.bytes.saturating_sub(last.1),
            );
            *last = (c.packets, c.bytes);
            if packets == 0 && bytes == 0 {
                continue;
            }
            sources.insert(
                id.to_string(),
                json!({
                    "packets": packets,
                    "bytes": bytes,
                    "bitrate_bps": s.bitrate_bps.round(),
                    "fps": (s.frames_per_s * 10.0).round() / 10.0,
                    "state": s.state.name(),
                }),
            );
        }
        reported
            .sources
            .retain(|id, _| agg.sources.contains_key(id));
        // With thousands of subscribers, listing the idle ones would be most of the event.
        let mut subscribers = serde_json::Map::new();
        let mut live = std::collections::HashSet::new();
        for snap in agg.shards.iter().filter_map(|s| s.latest.as_ref()) {
            for t in &snap.tracks {
                live.insert(t.id.0);
                let last = reported.tracks.entry(t.id.0).or_default();
                let (packets, bytes) = (t.counters.packets, t.counters.bytes);
                let delta = (packets.saturating_sub(last.0), bytes.saturating_sub(last.1));
                *last = (packets, bytes);
                if delta != (0, 0) {
                    subscribers.insert(
                        t.id.0.to_string(),
                        json!({"packets": delta.0, "bytes": delta.1}),
                    );
                }
            }
        }
        reported.tracks.retain(|id, _| live.contains(id));
        let latency = agg.latency();
        let data = json!({
            "interval_ms": self.settings.stats_interval.as_millis() as u64,
            "sources": sources,
            "subscribers": subscribers,
            "latency_us": {"p50": latency.value_at_quantile(0.5), "p99": latency.value_at_quantile(0.99)},
        });
        let drops = agg.drops();
        drop(agg);
        if self.events.wants(EventType::Stats) {
            self.emit(EventType::Stats, None, data);
        }
        let mut delta = serde_json::Map::new();
        for (reason, n) in drops.iter() {
            let before = reported.drops.get(reason);
            if n > before {
                delta.insert(reason.name().to_string(), json!(n - before));
            }
        }
        reported.drops = drops;
        if !delta.is_empty() {
            self.emit(EventType::Drops, None, serde_json::Value::Object(delta));
        }
    }

    fn emit(&self, kind: EventType, source: Option<u32>, data: serde_json::Value) {
        let mut event = Event::now(kind).with_data(data);
        event.source = source;
        self.events.emit(event);
    }
}

/// What the last periodic events reported, to send deltas.
#[derive(Default)]
struct Reported {
    sources: HashMap<u32, (u64, u64)>,
    tracks: HashMap<u32, (u64, u64)>,
    drops: DropCounts,
}

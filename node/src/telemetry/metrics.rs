//! `/metrics`: the aggregates in Prometheus text exposition (OpenMetrics), encoded on scrape by
//! `prometheus-client` from a collector over a consistent copy of the numbers.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use std::collections::BTreeMap;

use corecast_engine::{DropCounts, SourceCounters};

use super::totals::add_source_counters;
use super::{Aggregates, IngestTotals};
use crate::events::HandlerStats;

/// Upper bounds (seconds) of the latency histogram's buckets.
const LATENCY_BUCKETS_S: [f64; 16] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];

pub(super) type Labels = Vec<(&'static str, String)>;

/// One metric family: name, help, type and its samples.
#[derive(Debug)]
enum Samples {
    Counter(Vec<(Labels, u64)>),
    Gauge(Vec<(Labels, f64)>),
    Histogram {
        sum: f64,
        count: u64,
        buckets: Vec<(f64, u64)>,
    },
}

#[derive(Debug)]
struct Family {
    name: &'static str,
    help: &'static str,
    samples: Samples,
}

/// The numbers of one scrape, copied out of the aggregates so the lock is held only briefly.
#[derive(Debug, Default)]
pub(super) struct Scrape {
    families: Vec<Family>,
}

impl Scrape {
    pub(super) fn counter(
        &mut self,
        name: &'static str,
        help: &'static str,
        samples: Vec<(Labels, u64)>,
    ) {
        self.families.push(Family {
            name,
            help,
            samples: Samples::Counter(samples),
        });
    }

    pub(super) fn gauge(
        &mut self,
        name: &'static str,
        help: &'static str,
        samples: Vec<(Labels, f64)>,
    ) {
        self.families.push(Family {
            name,
            help,
            samples: Samples::Gauge(samples),
        });
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.families {
            match &f.samples {
                Samples::Counter(samples) => {
                    let mut metric =
                        encoder.encode_descriptor(f.name, f.help, None, MetricType::Counter)?;
                    for (labels, value) in samples {
                        if labels.is_empty() {
                            metric.encode_counter::<Labels, u64, f64>(value, None)?;
                        } else {
                            let mut family = metric.encode_family(labels)?;
                            family.encode_counter::<Labels, u64, f64>(value, None)?;
                        }
                    }
                }
                Samples::Gauge(samples) => {
                    let mut metric =
                        encoder.encode_descriptor(f.name, f.help, None, MetricType::Gauge)?;
                    for (labels, value) in samples {
                        // An empty family would print `name{} value`, which parsers refuse.
                        if labels.is_empty() {
                            metric.encode_gauge(value)?;
                        } else {
                            metric.encode_family(labels)?.encode_gauge(value)?;
                        }
                    }
                }
                Samples::Histogram {
                    sum,
                    count,
                    buckets,
                } => {
                    let mut metric =
                        encoder.encode_descriptor(f.name, f.help, None, MetricType::Histogram)?;
                    metric.encode_histogram::<Labels>(*sum, *count, buckets, None)?;
                }
            }
        }
        Ok(())
    }
}

pub(super) fn label(key: &'static str, value: impl ToString) -> Labels {
    vec![(key, value.to_string())]
}

pub(super) fn labels2(
    k1: &'static str,
    v1: impl ToString,
    k2: &'static str,
    v2: impl ToString,
) -> Labels {
    vec![(k1, v1.to_string()), (k2, v2.to_string())]
}

fn by_reason(drops: &DropCounts) -> Vec<(Labels, u64)> {
    drops
        .iter()
        .map(|(r, n)| (label("reason", r.name()), n))
        .collect()
}

/// How many of each thing the control thread holds now, for the gauges.
#[derive(Clone, Copy, Debug, Default)]
pub struct Configured {
    pub sources: usize,
    pub subscribers: usize,
    pub channels: usize,
}

/// Render every metric of the node.
///
/// Families without a `source` or `subscriber` label never go backwards: they count deleted
/// sources and subscribers too. Each drop family holds drops of one [`DropScope`](corecast_engine::DropScope), so a scrape
/// alone checks both conservation laws (README, "Metrics").
pub fn render_metrics(
    agg: &Aggregates,
    configured: Configured,
    handlers: &[HandlerStats],
    webrtc: &super::webrtc::WebrtcTotals,
) -> String {
    let Configured {
        sources,
        subscribers,
        channels,
    } = configured;
    let mut s = Scrape::default();
    s.gauge(
        "corecast_sources",
        "Sources configured.",
        vec![(vec![], sources as f64)],
    );
    s.gauge(
        "corecast_subscribers",
        "Subscribers configured.",
        vec![(vec![], subscribers as f64)],
    );
    s.gauge(
        "corecast_channels",
        "Channels configured.",
        vec![(vec![], channels as f64)],
    );
    s.gauge(
        "corecast_uptime_seconds",
        "Seconds since the node started.",
        vec![(vec![], agg.started.elapsed().as_secs_f64())],
    );
    ingest_families(&mut s, agg);
    source_families(&mut s, agg);
    shard_families(&mut s, agg);
    super::webrtc::families(&mut s, agg, webrtc);
    super::repair::families(&mut s, agg);
    let latency = agg.latency();
    let mut buckets = Vec::with_capacity(LATENCY_BUCKETS_S.len() + 1);
    let mut below = 0u64;
    for bound in LATENCY_BUCKETS_S {
        let micros = (bound * 1e6) as u64;
        let cumulative = latency.count_between(0, micros);
        buckets.push((bound, cumulative - below));
        below = cumulative;
    }
    buckets.push((f64::INFINITY, latency.len() - below));
    let sum: f64 = latency
        .iter_recorded()
        .map(|v| v.value_iterated_to() as f64 * v.count_at_value() as f64)
        .sum::<f64>()
        / 1e6;
    s.families.push(Family {
        name: "corecast_forward_latency_seconds",
        help:
            "From the kernel's receive timestamp to the return of the send that carried each copy.",
        samples: Samples::Histogram {
            sum,
            count: latency.len(),
            buckets,
        },
    });

    if agg.per_subscriber_metrics {
        let mut packets = Vec::new();
        let mut bytes = Vec::new();
        for l in agg.shards.iter().filter_map(|s| s.latest.as_ref()) {
            for t in &l.tracks {
                packets.push((label("subscriber", t.id.0), t.counters.packets));
                bytes.push((label("subscriber", t.id.0), t.counters.bytes));
            }
        }
        s.counter(
            "corecast_subscriber_packets_sent",
            "Packets sent per subscriber.",
            packets,
        );
        s.counter(
            "corecast_subscriber_bytes_sent",
            "Bytes sent per subscriber.",
            bytes,
        );
    }

    let per_handler = |f: &dyn Fn(&HandlerStats) -> u64| -> Vec<(Labels, u64)> {
        handlers
            .iter()
            .map(|h| (label("handler", &h.name), f(h)))
            .collect()
    };
    s.counter(
        "corecast_events_delivered",
        "Events delivered per handler.",
        per_handler(&|h| h.delivered),
    );
    s.counter(
        "corecast_events_dropped",
        "Events dropped per handler (queue full or given up).",
        per_handler(&|h| h.dropped),
    );
    s.counter(
        "corecast_event_retries",
        "Webhook delivery retries per handler.",
        per_handler(&|h| h.retries),
    );
    s.gauge(
        "corecast_event_queue_length",
        "Events waiting per handler.",
        handlers
            .iter()
            .map(|h| (label("handler", &h.name), h.queued as f64))
            .collect(),
    );
    s.gauge(
        "corecast_event_queue_bytes",
        "Bytes of serialized events waiting per handler.",
        handlers
            .iter()
            .map(|h| (label("handler", &h.name), h.queued_bytes as f64))
            .collect(),
    );

    let mut registry = Registry::default();
    registry.register_collector(Box::new(s));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)
        .expect("writing to a String cannot fail");
    out
}

/// Node-wide ingest: `received = accepted + Σ dropped + held`.
fn ingest_families(s: &mut Scrape, agg: &Aggregates) {
    let t = agg.ingest();
    s.counter(
        "corecast_packets_received",
        "RTP packets that arrived at the sources' ingest ports (RTCP not counted), deleted \
         sources included.",
        vec![(vec![], t.received)],
    );
    s.counter(
        "corecast_bytes_received",
        "Bytes of the RTP packets the sources accepted or dropped in the engine.",
        vec![(vec![], t.bytes)],
    );
    s.counter(
        "corecast_packets_accepted",
        "Received packets handed on to the shards.",
        vec![(vec![], t.accepted)],
    );
    s.gauge(
        "corecast_packets_held",
        "Received packets held now while a new sender stream is in probation.",
        vec![(vec![], t.held as f64)],
    );
    s.counter(
        "corecast_packets_dropped",
        "Received packets dropped before any shard saw them, by reason (once per packet).",
        by_reason(&t.packet_drops()),
    );
    s.counter(
        "corecast_deliveries_dropped",
        "Accepted packets one shard that wanted them did not get, by reason (once per shard).",
        by_reason(&t.delivery_drops()),
    );
}

/// Per source, while it exists: the ingest law per source, and what its copies did.
fn source_families(s: &mut Scrape, agg: &Aggregates) {
    let ingest: Vec<(u32, IngestTotals)> = agg
        .sources
        .iter()
        .map(|(&id, a)| (id, IngestTotals::of(&a.stats)))
        .collect();
    let per_source = |f: &dyn Fn(&IngestTotals) -> u64| -> Vec<(Labels, u64)> {
        ingest
            .iter()
            .map(|(id, t)| (label("source", id), f(t)))
            .collect()
    };
    s.counter(
        "corecast_source_packets_received",
        "RTP packets that arrived at each source's ingest port.",
        per_source(&|t| t.received),
    );
    s.counter(
        "corecast_source_bytes_received",
        "Bytes received per source.",
        per_source(&|t| t.bytes),
    );
    s.counter(
        "corecast_source_packets_accepted",
        "Packets each source handed on to the shards.",
        per_source(&|t| t.accepted),
    );
    s.gauge(
        "corecast_source_packets_held",
        "Packets each source holds now while a new sender stream is in probation.",
        ingest
            .iter()
            .map(|(id, t)| (label("source", id), t.held as f64))
            .collect(),
    );
    s.counter(
        "corecast_source_packets_dropped",
        "Packets each source dropped before any shard saw them, by reason.",
        ingest
            .iter()
            .flat_map(|(id, t)| {
                let drops = t.packet_drops();
                drops
                    .iter()
                    .map(|(r, n)| (labels2("source", id, "reason", r.name()), n))
                    .collect::<Vec<_>>()
            })
            .collect(),
    );
    let per_stats = |f: &dyn Fn(&super::SourceAgg) -> u64| -> Vec<(Labels, u64)> {
        agg.sources
            .iter()
            .map(|(id, a)| (label("source", id), f(a)))
            .collect()
    };
    s.counter(
        "corecast_source_keyframes_received",
        "Keyframes received per source.",
        per_stats(&|a| a.stats.ingress.keyframes),
    );
    s.counter(
        "corecast_source_restarts",
        "Sender restarts (new SSRC or sequence) per source.",
        per_stats(&|a| a.stats.ingress.restarts),
    );
    s.counter(
        "corecast_source_keyframe_requests",
        "Keyframe requests (PLI) sent to each source.",
        per_stats(&|a| a.stats.keyframe_requests_sent),
    );
    s.counter(
        "corecast_source_rtcp_received",
        "RTCP datagrams received from each source (on its RTP port).",
        per_stats(&|a| a.stats.rtcp_packets),
    );
    s.counter(
        "corecast_source_sender_reports",
        "Sender reports of each source's current stream taken: its viewers' sender reports follow them.",
        per_stats(&|a| a.stats.sender_reports),
    );
    s.counter(
        "corecast_source_rtcp_dropped",
        "RTCP from each source dropped, by reason (queue_full: once per shard that missed a report).",
        agg.sources
            .iter()
            .flat_map(|(id, a)| {
                a.stats
                    .rtcp_drops
                    .iter()
                    .map(|(r, n)| (labels2("source", id, "reason", r.name()), n))
                    .collect::<Vec<_>>()
            })
            .collect(),
    );
    s.gauge(
        "corecast_source_bitrate_bits_per_second",
        "Received bitrate per source over the last stats interval.",
        agg.sources
            .iter()
            .map(|(id, a)| (label("source", id), a.bitrate_bps))
            .collect(),
    );
    s.gauge(
        "corecast_source_active",
        "1 while a source is sending, 0 when waiting or idle.",
        agg.sources
            .iter()
            .map(|(id, a)| {
                (
                    label("source", id),
                    f64::from(u8::from(a.state == super::SourceState::Active)),
                )
            })
            .collect(),
    );
    // Over the shards' groups of sources that still exist.
    let mut by_source: BTreeMap<u32, SourceCounters> = BTreeMap::new();
    for (id, c) in agg
        .shards
        .iter()
        .filter_map(|s| s.latest.as_ref())
        .flat_map(|l| &l.sources)
    {
        add_source_counters(by_source.entry(id.0).or_default(), c);
    }
    let per_group = |f: &dyn Fn(&SourceCounters) -> u64| -> Vec<(Labels, u64)> {
        by_source
            .iter()
            .map(|(id, c)| (label("source", id), f(c)))
            .collect()
    };
    s.counter(
        "corecast_source_copies_sent",
        "Copies of each source's packets sent to subscribers.",
        per_group(&|c| c.forwarded),
    );
    s.counter(
        "corecast_source_parameter_sets_sent",
        "Cached H.264/H.265 parameter sets sent to subscribers that started at a keyframe \
         sent without them.",
        per_group(&|c| c.preludes),
    );
}

/// Per shard: what it took from its queue and sent, and `copies due = sent + Σ dropped`.
fn shard_families(s: &mut Scrape, agg: &Aggregates) {
    let snaps: Vec<_> = agg
        .shards
        .iter()
        .enumerate()
        .filter_map(|(k, s)| s.latest.as_ref().map(|l| (k, s, l)))
        .collect();
    let per_shard = |f: &dyn Fn(&crate::shard::ShardSnapshot) -> u64| -> Vec<(Labels, u64)> {
        snaps
            .iter()
            .map(|(k, _, l)| (label("shard", k), f(l)))
            .collect()
    };
    s.counter(
        "corecast_shard_packets",
        "Packets a shard took from its queue.",
        per_shard(&|l| l.io.packets_in),
    );
    s.counter(
        "corecast_shard_packets_dropped",
        "Packets a shard took for a source it does not host, by reason.",
        snaps
            .iter()
            .flat_map(|(k, a, _)| {
                let drops = a.shard_drops();
                drops
                    .iter()
                    .map(|(r, n)| (labels2("shard", k, "reason", r.name()), n))
                    .collect::<Vec<_>>()
            })
            .collect(),
    );
    let copies: Vec<(usize, SourceCounters)> =
        snaps.iter().map(|(k, a, _)| (*k, a.copies())).collect();
    let per_copies = |f: &dyn Fn(&SourceCounters) -> u64| -> Vec<(Labels, u64)> {
        copies
            .iter()
            .map(|(k, c)| (label("shard", k), f(c)))
            .collect()
    };
    s.counter(
        "corecast_copies_due",
        "Copies a shard owed its subscribers: each packet times the subscribers on its source.",
        per_copies(&|c| c.track_packets),
    );
    s.counter(
        "corecast_copies_sent",
        "Copies a shard sent to subscribers.",
        per_copies(&|c| c.forwarded),
    );
    s.counter(
        "corecast_copies_dropped",
        "Copies a shard did not send, by reason (once per subscriber).",
        copies
            .iter()
            .flat_map(|(k, c)| {
                c.drops
                    .iter()
                    .map(|(r, n)| (labels2("shard", k, "reason", r.name()), n))
                    .collect::<Vec<_>>()
            })
            .collect(),
    );
    s.counter(
        "corecast_parameter_sets_sent",
        "Cached parameter sets a shard sent ahead of keyframes that came without them.",
        per_copies(&|c| c.preludes),
    );
    s.counter(
        "corecast_switches_deferred",
        "Switches that waited for the old source's frame to end, until the new source's next \
         keyframe, per shard.",
        per_shard(&|l| l.io.switches_deferred),
    );
    s.counter(
        "corecast_send_batches",
        "sendmmsg batches per shard.",
        per_shard(&|l| l.io.batches),
    );
    s.counter(
        "corecast_send_syscalls",
        "sendmmsg calls per shard.",
        per_shard(&|l| l.io.syscalls),
    );
    s.counter(
        "corecast_gso_messages",
        "UDP GSO messages per shard: several copies to one subscriber in one message.",
        per_shard(&|l| l.io.gso_messages),
    );
    s.counter(
        "corecast_gso_copies",
        "Copies sent in UDP GSO messages per shard.",
        per_shard(&|l| l.io.gso_copies),
    );
    s.counter(
        "corecast_gso_refused",
        "UDP GSO messages the kernel refused per shard; their copies went one datagram each.",
        per_shard(&|l| l.io.gso_refused),
    );
    s.counter(
        "corecast_rtcp_received",
        "Subscriber RTCP packets per shard.",
        per_shard(&|l| l.io.rtcp_in),
    );
    s.counter(
        "corecast_rtcp_wrong_sender",
        "Keyframe requests naming a subscriber's SSRC from another address than the subscriber's: ignored.",
        per_shard(&|l| l.io.rtcp_wrong_sender),
    );
    s.counter(
        "corecast_snapshots_dropped",
        "Counter snapshots the telemetry queue had no room for.",
        per_shard(&|l| l.snapshots_dropped),
    );
    s.gauge(
        "corecast_shard_busy_ratio",
        "Share of the last interval a shard spent forwarding.",
        snaps
            .iter()
            .map(|(k, a, _)| (label("shard", k), a.busy_ratio))
            .collect(),
    );
}

//! The control API on top of the control thread: builds the JSON views from the topology and the
//! latest counter snapshots, and implements the signaling crate's `Control` trait.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use corecast_engine::{DropCounts, SourceId, TrackId};
use corecast_signaling::api::{
    ChannelView, CreateChannel, CreateSource, CreateSubscriber, EventHandlerStats, IngestAddr,
    NodeStats, ReceptionView, ShardStats, SourceCounters, SourceView, StatsView,
    SubscriberCounters, SubscriberView, SwitchView, ViewerView, WhepAnswer,
};
use corecast_signaling::{ApiError, Control};

use crate::control::{
    ChannelId, ControlHandle, ControlState, NodeError, SourceEntry, ViewerEntry, ViewerState, What,
};
use crate::sdp::{SdpSource, SubscriberSdp};
use crate::telemetry::{self, Aggregates, IngestTotals, SourceState};

fn drop_map(drops: &DropCounts) -> BTreeMap<String, u64> {
    drops
        .iter()
        .map(|(r, n)| (r.name().to_string(), n))
        .collect()
}

impl ControlState {
    pub(crate) fn source_view(&self, id: SourceId) -> Result<SourceView, NodeError> {
        let agg = telemetry::lock(&self.telemetry);
        self.source_view_with(&agg, id)
    }

    fn source_view_with(&self, agg: &Aggregates, id: SourceId) -> Result<SourceView, NodeError> {
        let s = self
            .sources
            .get(&id)
            .ok_or(NodeError::NotFound(What::Source(id)))?;
        let mut counters = SourceCounters::default();
        let mut drops = DropCounts::default();
        let mut sender = None;
        let mut payload_type = s.payload_type;
        let mut state = SourceState::Waiting;
        if let Some(a) = agg.sources.get(&id.0) {
            let i = &a.stats;
            let t = IngestTotals::of(i);
            counters.packets_received = t.received;
            counters.bytes_received = t.bytes;
            counters.packets_accepted = t.accepted;
            counters.packets_held = t.held;
            counters.packet_drops = drop_map(&t.packet_drops());
            counters.keyframes = i.ingress.keyframes;
            counters.restarts = i.ingress.restarts;
            counters.keyframe_requests = i.keyframe_requests_sent;
            let u = &i.ingress.upstream;
            counters.upstream = corecast_signaling::api::UpstreamRepairCounters {
                missing: u.missing,
                nacks_sent: u.nacks_sent,
                repaired: u.repaired,
                given_up: u.given_up,
            };
            counters.rtcp_received = i.rtcp_packets;
            counters.sender_reports = i.sender_reports;
            counters.rtcp_drops = drop_map(&i.rtcp_drops);
            counters.packets_per_second = a.packets_per_s;
            counters.bitrate_bps = a.bitrate_bps;
            counters.fps = a.frames_per_s;
            counters.keyframe_interval_s = a.stats.keyframe_interval.map(|d| d.as_secs_f64());
            if let Some(w) = a.window {
                let (start, end) = w.uptime_s(agg.started);
                (counters.interval_start_s, counters.interval_end_s) = (Some(start), Some(end));
            }
            drops.merge(&t.drops);
            sender = i.sender;
            payload_type = payload_type.or(i.payload_type);
            state = a.state;
        }
        let mut copy_drops = DropCounts::default();
        for snap in agg.shards.iter().filter_map(|s| s.latest.as_ref()) {
            if let Some((_, c)) = snap.sources.iter().find(|(sid, _)| *sid == id) {
                counters.copies_due += c.track_packets;
                counters.packets_forwarded += c.forwarded;
                counters.bytes_forwarded += c.forwarded_bytes;
                counters.parameter_sets_sent += c.preludes;
                copy_drops.merge(&c.drops);
            }
        }
        drops.merge(&copy_drops);
        counters.copy_drops = drop_map(&copy_drops);
        counters.drops = drop_map(&drops);
        Ok(SourceView {
            id: id.0,
            name: s.name.clone(),
            codec: s.codec.name().to_string(),
            clock_rate: s.clock_rate,
            ingest: IngestAddr {
                ip: self.settings.rtp_ip,
                port: s.port,
            },
            latch: s.latch,
            sender,
            feedback: s.feedback,
            parameter_sets: s.parameter_sets,
            payload_type,
            rtx_payload_type: s.rtx_payload_type,
            join: match s.join {
                corecast_engine::JoinPolicy::Keyframe => "keyframe",
                corecast_engine::JoinPolicy::Replay { .. } => "replay",
            }
            .to_string(),
            state: state.name().to_string(),
            fallback: s.fallback.as_ref().map(|(f, _)| f.0),
            failed_over: s.fallback.as_ref().is_some_and(|(_, p)| p.engaged()),
            subscribers: self.subs.values().filter(|x| x.source == Some(id)).count() as u64,
            counters,
        })
    }

    pub(crate) fn channel_view(&self, id: ChannelId) -> Result<ChannelView, NodeError> {
        let c = self
            .channels
            .get(&id)
            .ok_or(NodeError::NotFound(What::Channel(id)))?;
        Ok(ChannelView {
            id: id.0,
            name: c.name.clone(),
            video: c.video.map(|s| s.0),
            audio: c.audio.map(|s| s.0),
            viewers: self.viewers.values().filter(|v| v.channel == id).count() as u64,
        })
    }

    fn channel_views(&self) -> Vec<ChannelView> {
        self.channels
            .keys()
            .filter_map(|&id| self.channel_view(id).ok())
            .collect()
    }

    pub(crate) fn subscriber_view(&self, id: TrackId) -> Result<SubscriberView, NodeError> {
        if let Some(v) = self.viewers.get(&id) {
            return self.viewer_view(id, v);
        }
        self.track_view(id)
    }

    /// A viewer as a subscriber: its first track's view once connected, its plan before.
    fn viewer_view(&self, id: TrackId, v: &ViewerEntry) -> Result<SubscriberView, NodeError> {
        let first = v
            .tracks
            .first()
            .ok_or(NodeError::NotFound(What::Subscriber(id)))?;
        let mut view = match self.subs.get(&first.id) {
            Some(_) => self.track_view(first.id)?,
            None => SubscriberView {
                id: id.0,
                ssrc: first.ssrc.0,
                shard: v.shard as u32,
                source: Some(first.source.0),
                pending_source: None,
                home_source: None,
                dest: v
                    .addr
                    .unwrap_or(SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))),
                media_from: self.shards[v.shard].media_from,
                codec: first.codec.name().to_string(),
                payload_type: first.payload_type,
                counters: SubscriberCounters::default(),
                transport: String::new(),
                viewer: None,
                reception: None,
            },
        };
        view.payload_type = first.payload_type;
        view.transport = "webrtc".to_string();
        view.viewer = Some(ViewerView {
            channel: v.channel.0,
            state: match v.state {
                ViewerState::Connecting => "connecting",
                ViewerState::Connected => "connected",
            }
            .to_string(),
            tracks: v.tracks.iter().map(|t| t.id.0).collect(),
        });
        Ok(view)
    }

    /// Every subscriber, viewers once each (not per track), by id.
    fn subscriber_views(&self) -> Vec<SubscriberView> {
        let plain = self
            .subs
            .iter()
            .filter(|(_, s)| s.viewer.is_none())
            .map(|(&id, _)| id);
        let mut ids: Vec<TrackId> = plain.chain(self.viewers.keys().copied()).collect();
        ids.sort_unstable();
        ids.into_iter()
            .filter_map(|id| self.subscriber_view(id).ok())
            .collect()
    }

    fn track_view(&self, id: TrackId) -> Result<SubscriberView, NodeError> {
        let sub = self
            .subs
            .get(&id)
            .ok_or(NodeError::NotFound(What::Subscriber(id)))?;
        let mut counters = SubscriberCounters {
            switches: sub.switches,
            ..Default::default()
        };
        let agg = telemetry::lock(&self.telemetry);
        let track = agg.track_index.get(&id.0).and_then(|&(shard, i)| {
            agg.shards[shard]
                .latest
                .as_ref()
                .and_then(|s| s.tracks.get(i))
                .filter(|t| t.id == id)
        });
        let reception = track.and_then(|t| t.reception).map(|r| ReceptionView {
            reports: r.reports,
            fraction_lost: f64::from(r.fraction_lost) / 256.0,
            packets_lost: i64::from(r.cumulative_lost),
            jitter_ms: f64::from(r.jitter) * 1000.0 / f64::from(sub.codec.default_clock_rate()),
            rtt_ms: r.rtt.map(|n| n.0 as f64 / 1e6),
        });
        if let Some(t) = track {
            counters.packets_sent = t.counters.packets;
            counters.bytes_sent = t.counters.bytes;
            counters.drops = drop_map(&t.counters.drops);
        }
        Ok(SubscriberView {
            id: id.0,
            ssrc: sub.ssrc.0,
            shard: sub.shard as u32,
            source: sub.source.map(|s| s.0),
            pending_source: sub.pending.map(|p| p.0),
            home_source: sub.home.map(|h| h.0),
            dest: sub.dest,
            media_from: self.shards[sub.shard].media_from,
            codec: sub.codec.name().to_string(),
            payload_type: sub.codec.output_payload_type(),
            counters,
            transport: "rtp".to_string(),
            viewer: None,
            reception,
        })
    }

    /// The SDP of subscriber `id` now: its current source's parameter sets as of the latest
    /// ingest snapshot (at most one `--stats-interval` old), or the configured ones before the
    /// first.
    pub(crate) fn subscriber_sdp(&self, id: TrackId) -> Result<String, NodeError> {
        let sub = self
            .subs
            .get(&id)
            .ok_or(NodeError::NotFound(What::Subscriber(id)))?;
        let current = sub.source.and_then(|s| Some((s, self.sources.get(&s)?)));
        let sets = current.map(|(s, entry)| self.known_parameter_sets(s, entry));
        let sdp = SubscriberSdp {
            node: &self.settings.node_name,
            subscriber: Some(id.0),
            dest: sub.dest,
            media_from: self.shards[sub.shard].media_from,
            codec: sub.codec,
            payload_type: sub.codec.output_payload_type(),
            clock_rate: current.map_or(sub.codec.default_clock_rate(), |(_, s)| s.clock_rate),
            source: current.map(|(s, entry)| SdpSource {
                id: s.0,
                name: &entry.name,
                parameter_sets: sets.as_deref().unwrap_or_default(),
            }),
            nack: self.settings.history,
            generated: std::time::SystemTime::now(),
        };
        Ok(sdp.render())
    }

    /// The SDP a subscriber of source `id` at `dest` will have once added: the same media
    /// description, so a player started with it plays the subscriber from its first packet.
    pub(crate) fn source_sdp(&self, id: SourceId, dest: SocketAddr) -> Result<String, NodeError> {
        let entry = self
            .sources
            .get(&id)
            .ok_or(NodeError::NotFound(What::Source(id)))?;
        let sets = self.known_parameter_sets(id, entry);
        let sdp = SubscriberSdp {
            node: &self.settings.node_name,
            subscriber: None,
            dest,
            // Every shard sends from the same `--rtp-ip`; which one the subscriber lands on is
            // decided when it is added, and only the address goes into the SDP.
            media_from: self.shards[0].media_from,
            codec: entry.codec,
            payload_type: entry.codec.output_payload_type(),
            clock_rate: entry.clock_rate,
            source: Some(SdpSource {
                id: id.0,
                name: &entry.name,
                parameter_sets: &sets,
            }),
            nack: self.settings.history,
            generated: std::time::SystemTime::now(),
        };
        Ok(sdp.render())
    }

    /// Source `id`'s parameter sets as of the latest ingest snapshot (at most one
    /// `--stats-interval` old), or the configured ones before the first.
    pub(crate) fn known_parameter_sets(&self, id: SourceId, entry: &SourceEntry) -> Arc<[Vec<u8>]> {
        let agg = telemetry::lock(&self.telemetry);
        agg.sources
            .get(&id.0)
            .map(|a| a.stats.parameter_sets.clone())
            .filter(|sets| !sets.is_empty())
            .unwrap_or_else(|| entry.configured_sets.clone())
    }

    pub(crate) fn stats_view(&self) -> StatsView {
        let agg = telemetry::lock(&self.telemetry);
        let sources: Vec<SourceView> = self
            .sources
            .keys()
            .filter_map(|&id| self.source_view_with(&agg, id).ok())
            .collect();
        let latency = agg.latency();
        let ingest = agg.ingest();
        let webrtc = self.webrtc_totals();
        let mut node = NodeStats {
            uptime_s: agg.started.elapsed().as_secs_f64(),
            sources: self.sources.len() as u64,
            subscribers: self.subscriber_count() as u64,
            channels: self.channels.len() as u64,
            viewers_connecting: webrtc.connecting,
            viewers_connected: webrtc.connected,
            handshakes_completed: webrtc.handshakes_completed,
            handshakes_failed: webrtc.handshakes_failed,
            packets_received: ingest.received,
            packets_accepted: ingest.accepted,
            packets_held: ingest.held,
            packet_drops: drop_map(&ingest.packet_drops()),
            delivery_drops: drop_map(&ingest.delivery_drops()),
            drops: drop_map(&agg.drops()),
            latency_p50_us: latency.value_at_quantile(0.5),
            latency_p99_us: latency.value_at_quantile(0.99),
            latency_p999_us: latency.value_at_quantile(0.999),
            latency_max_us: latency.max(),
            ..Default::default()
        };
        let mut copy_drops = DropCounts::default();
        let mut shards = Vec::new();
        for (k, h) in self.shards.iter().enumerate() {
            let a = &agg.shards[k];
            let copies = a.copies();
            let mut shard_drops = a.shard_drops();
            shard_drops.merge(&copies.drops);
            let mut stats = ShardStats {
                shard: k as u32,
                core: h.core.map(|c| c as u32),
                subscribers: self.shard_load[k] as u64,
                drops: drop_map(&shard_drops),
                copies_due: copies.track_packets,
                copies_sent: copies.forwarded,
                copy_drops: drop_map(&copies.drops),
                packets_in_per_s: a.packets_in_per_s,
                packets_out_per_s: a.copies_out_per_s,
                latency_p50_us: a.latency_recent.value_at_quantile(0.5),
                latency_p99_us: a.latency_recent.value_at_quantile(0.99),
                busy_ratio: a.busy_ratio,
                ..Default::default()
            };
            if let Some(w) = a.window {
                let (start, end) = w.uptime_s(agg.started);
                (stats.interval_start_s, stats.interval_end_s) = (Some(start), Some(end));
            }
            node.copies_due += copies.track_packets;
            node.copies_sent += copies.forwarded;
            copy_drops.merge(&copies.drops);
            if let Some(snap) = &a.latest {
                stats.packets_in = snap.io.packets_in;
                stats.packets_out = snap.io.copies_sent;
                stats.send_batches = snap.io.batches;
                stats.send_syscalls = snap.io.syscalls;
                stats.gso = corecast_signaling::api::GsoStats {
                    segments: snap.gso_segments,
                    messages: snap.io.gso_messages,
                    copies: snap.io.gso_copies,
                    refused: snap.io.gso_refused,
                };
                stats.rtcp_received = snap.io.rtcp_in;
                stats.rtcp_wrong_sender = snap.io.rtcp_wrong_sender;
                stats.webrtc = telemetry::webrtc::shard_stats(snap);
                stats.repair = telemetry::repair::shard_stats(snap);
                stats.replay = telemetry::repair::replay_stats(snap);
                node.packets_forwarded += snap.io.copies_sent;
            }
            shards.push(stats);
        }
        node.copy_drops = drop_map(&copy_drops);
        let events = self
            .events
            .stats()
            .into_iter()
            .map(|h| EventHandlerStats {
                name: h.name,
                delivered: h.delivered,
                dropped: h.dropped,
                retries: h.retries,
                queued: h.queued as u64,
                queued_bytes: h.queued_bytes as u64,
            })
            .collect();
        StatsView {
            node,
            shards,
            sources,
            channels: self.channel_views(),
            events,
        }
    }

    /// Viewers by state and the handshake thread's counters, now.
    fn webrtc_totals(&self) -> telemetry::webrtc::WebrtcTotals {
        let connected = self
            .viewers
            .values()
            .filter(|v| v.state == ViewerState::Connected)
            .count() as u64;
        let connecting = self.viewers.len() as u64 - connected;
        match self.settings.webrtc.as_ref() {
            Some(w) => telemetry::webrtc::WebrtcTotals::read(connecting, connected, &w.counters),
            None => telemetry::webrtc::WebrtcTotals::default(),
        }
    }

    pub(crate) fn metrics_text(&self) -> String {
        let handlers = self.events.stats();
        let agg = telemetry::lock(&self.telemetry);
        let counts = telemetry::Configured {
            sources: self.sources.len(),
            subscribers: self.subscriber_count(),
            channels: self.channels.len(),
        };
        telemetry::render_metrics(&agg, counts, &handlers, &self.webrtc_totals())
    }
}

/// `Control` for the HTTP API: every call is a round trip to the control thread.
pub struct NodeControl {
    pub handle: ControlHandle,
}

impl Control for NodeControl {
    fn create_source(&self, req: CreateSource) -> Result<SourceView, ApiError> {
        Ok(self
            .handle
            .call(move |st| st.create_source(req).and_then(|id| st.source_view(id)))??)
    }

    fn sources(&self) -> Vec<SourceView> {
        self.handle
            .call(|st| {
                st.sources
                    .keys()
                    .filter_map(|&id| st.source_view(id).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn source(&self, id: u32) -> Result<SourceView, ApiError> {
        Ok(self.handle.call(move |st| st.source_view(SourceId(id)))??)
    }

    fn delete_source(&self, id: u32) -> Result<(), ApiError> {
        Ok(self
            .handle
            .call(move |st| st.delete_source(SourceId(id)))??)
    }

    fn create_subscribers(
        &self,
        reqs: Vec<CreateSubscriber>,
    ) -> Result<Vec<SubscriberView>, ApiError> {
        Ok(self.handle.call(move |st| {
            let ids = st.create_subscribers(reqs)?;
            ids.into_iter()
                .map(|id| st.subscriber_view(id))
                .collect::<Result<Vec<_>, NodeError>>()
        })??)
    }

    fn subscribers(&self) -> Vec<SubscriberView> {
        self.handle
            .call(|st| st.subscriber_views())
            .unwrap_or_default()
    }

    fn subscriber(&self, id: u32) -> Result<SubscriberView, ApiError> {
        Ok(self
            .handle
            .call(move |st| st.subscriber_view(TrackId(id)))??)
    }

    fn subscriber_sdp(&self, id: u32) -> Result<String, ApiError> {
        Ok(self
            .handle
            .call(move |st| st.subscriber_sdp(TrackId(id)))??)
    }

    fn source_sdp(&self, id: u32, dest: SocketAddr) -> Result<String, ApiError> {
        Ok(self
            .handle
            .call(move |st| st.source_sdp(SourceId(id), dest))??)
    }

    fn delete_subscriber(&self, id: u32) -> Result<(), ApiError> {
        Ok(self
            .handle
            .call(move |st| st.delete_subscriber(TrackId(id)))??)
    }

    fn switch(&self, subscriber: u32, source: u32) -> Result<SwitchView, ApiError> {
        Ok(self
            .handle
            .call(move |st| st.switch(TrackId(subscriber), SourceId(source)))??)
    }

    fn switch_channel(&self, subscriber: u32, channel: u32) -> Result<SwitchView, ApiError> {
        Ok(self
            .handle
            .call(move |st| st.switch_viewer(TrackId(subscriber), ChannelId(channel)))??)
    }

    fn create_channel(&self, req: CreateChannel) -> Result<ChannelView, ApiError> {
        Ok(self
            .handle
            .call(move |st| st.create_channel(req).and_then(|id| st.channel_view(id)))??)
    }

    fn channels(&self) -> Vec<ChannelView> {
        self.handle
            .call(|st| st.channel_views())
            .unwrap_or_default()
    }

    fn channel(&self, id: u32) -> Result<ChannelView, ApiError> {
        Ok(self
            .handle
            .call(move |st| st.channel_view(ChannelId(id)))??)
    }

    fn delete_channel(&self, id: u32) -> Result<(), ApiError> {
        Ok(self
            .handle
            .call(move |st| st.delete_channel(ChannelId(id)))??)
    }

    fn whep_offer(&self, channel: u32, offer: String) -> Result<WhepAnswer, ApiError> {
        let admitted = self
            .handle
            .call(move |st| st.create_viewer(ChannelId(channel), &offer))??;
        Ok(WhepAnswer {
            subscriber: admitted.id.0,
            sdp: admitted.answer,
            etag: admitted.etag,
        })
    }

    fn whep_patch(
        &self,
        id: u32,
        if_match: Option<String>,
        fragment: String,
    ) -> Result<(), ApiError> {
        Ok(self
            .handle
            .call(move |st| st.patch_viewer(TrackId(id), if_match.as_deref(), &fragment))??)
    }

    fn delete_viewer(&self, id: u32) -> Result<(), ApiError> {
        Ok(self.handle.call(move |st| {
            if st.remove_viewer(TrackId(id), "deleted") {
                Ok(())
            } else {
                Err(NodeError::NotFound(What::Viewer(TrackId(id))))
            }
        })??)
    }

    fn stats(&self) -> StatsView {
        self.handle.call(|st| st.stats_view()).unwrap_or_default()
    }

    fn metrics(&self) -> String {
        self.handle.call(|st| st.metrics_text()).unwrap_or_default()
    }
}

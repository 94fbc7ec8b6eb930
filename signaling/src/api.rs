//! The control API's vocabulary: request and response bodies (JSON), typed errors, and the
//! [`Control`] trait that the node implements and the HTTP server calls.
//!
//! The HTTP layer validates syntax (JSON shape, field types, body size, token); the node validates
//! meaning (unknown ids, port conflicts, codec mismatches, limits) and answers with an
//! [`ApiError`] whose status and code the HTTP layer sends as is.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

/// `POST /v1/sources` body. `Default` is for building one in code (`..Default::default()`);
/// a request still needs `name` and `codec`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSource {
    pub name: String,
    /// `vp8`, `vp9`, `h264`, `h265`, `av1` or `opus`.
    pub codec: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_rate: Option<u32>,
    /// Ingest port; chosen from the node's range when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Latch to the first sender address (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latch: Option<bool>,
    /// `ip:port` where the sender receives RTCP, for keyframe requests; default: the address
    /// its packets come from (rtcp-mux). Senders with separate RTCP ports (GStreamer's rtpbin,
    /// RFC 3550 without mux) name theirs here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<String>,
    /// H.264/H.265 parameter sets from the sender's SDP, base64 NAL units separated by commas:
    /// H.264's `sprop-parameter-sets` value, or H.265's `sprop-vps`, `sprop-sps` and `sprop-pps`
    /// values joined. Sent before a keyframe that lacks them while the stream has sent none
    /// in-band (sets that come in-band are cached and take precedence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_sets: Option<String>,
    /// The RTP payload type of the source's media (0 to 127). Packets with another one are
    /// dropped (`other_payload_type`); when absent, the type of the stream's first packet is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_type: Option<u8>,
    /// The payload type of the sender's RFC 4588 retransmissions on the same port, if any:
    /// counted (`rtx`), not forwarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtx_payload_type: Option<u8>,
    /// How a subscriber that joins the source (or switches to it) starts: `keyframe` (at its
    /// next keyframe, asked for) or `replay` (at once, from the node's history of the source:
    /// its newest keyframe on, sent faster than real time until it reaches live). Default: the
    /// node's `--join`. Audio sources start at once either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<String>,
    /// The id of a source of the same codec (a slate or a backup feed) that this source's
    /// subscribers are switched to while it sends nothing for the node's `--idle-timeout`, and
    /// back from when it sends again. The fallback must not have a fallback of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<u32>,
}

/// The NAL units of a [`CreateSource::parameter_sets`] text (base64 units separated by commas,
/// spaces around them allowed), in order. Whether they make a complete set for the source's
/// codec is the engine's to judge (`ParameterSets::configured`); `corecast check
/// --parameter-sets` takes the same text.
pub fn parameter_set_units(text: &str) -> Result<Vec<Vec<u8>>, NotBase64> {
    use base64::Engine;
    text.split(',')
        .map(str::trim)
        .enumerate()
        .map(|(index, unit)| {
            base64::engine::general_purpose::STANDARD
                .decode(unit)
                .map_err(|e| NotBase64 {
                    index,
                    unit: unit.to_string(),
                    reason: e.to_string(),
                })
        })
        .collect()
}

/// A unit of a `parameter_sets` text that is not base64.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotBase64 {
    /// Its place in the list, from 0.
    pub index: usize,
    /// The unit as written.
    pub unit: String,
    reason: String,
}

impl std::fmt::Display for NotBase64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`parameter_sets` unit {} (`{}`) is not base64: {}",
            self.index, self.unit, self.reason
        )
    }
}

impl std::error::Error for NotBase64 {}

/// `POST /v1/subscribers` body (and each element of the batch body).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSubscriber {
    pub source: u32,
    /// `ip:port` the subscriber receives media on.
    pub dest: String,
}

/// `POST /v1/subscribers/{id}/switch` body.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchRequest {
    /// Switch to this source (plain subscribers, and viewers with the admin token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<u32>,
    /// Switch a WHEP viewer to this channel: video at the new video source's keyframe, audio
    /// with it. Exactly one of `source` and `channel` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<u32>,
}

/// `POST /v1/channels` body: what one viewer watches, at most one video and one audio source
/// (WHEP allows one track of each). At least one of the two is needed.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    /// Unique among channels.
    pub name: String,
    /// Id of a video source (any codec but Opus).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<u32>,
    /// Id of an audio source (Opus).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<u32>,
}

/// A channel, as `POST`, `GET /v1/channels[/{id}]` and `GET /v1/stats` show it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct ChannelView {
    pub id: u32,
    pub name: String,
    /// The video source; `None` when it had none, or once that source was deleted (the
    /// channel stays, detached from it, like a subscriber of a deleted source).
    pub video: Option<u32>,
    /// The audio source; `None` as for `video`.
    pub audio: Option<u32>,
    /// Viewers watching it now.
    #[serde(default)]
    pub viewers: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct IngestAddr {
    pub ip: IpAddr,
    pub port: u16,
}

/// Live counters of a source, summed over ingress and every shard. Two laws hold:
/// `packets_received = packets_accepted + Σ packet_drops + packets_held`, and
/// `copies_due = packets_forwarded + Σ copy_drops`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct SourceCounters {
    /// RTP packets that arrived at the ingest port, those dropped before the engine included.
    pub packets_received: u64,
    pub bytes_received: u64,
    pub packets_accepted: u64,
    /// Packets held now while a new sender stream is in probation (neither accepted nor dropped).
    #[serde(default)]
    pub packets_held: u64,
    /// Received packets dropped before any shard saw them, by reason (once per packet).
    #[serde(default)]
    pub packet_drops: std::collections::BTreeMap<String, u64>,
    /// Copies the shards owed subscribers: each packet times the subscribers on the source.
    #[serde(default)]
    pub copies_due: u64,
    /// Copies sent to subscribers.
    pub packets_forwarded: u64,
    pub bytes_forwarded: u64,
    /// Copies not sent, by reason (once per subscriber).
    #[serde(default)]
    pub copy_drops: std::collections::BTreeMap<String, u64>,
    pub keyframes: u64,
    pub restarts: u64,
    pub keyframe_requests: u64,
    /// Repair asked of a retransmitting sender (one with `rtx_payload_type`): sequence numbers
    /// found missing, NACKs sent for them, its retransmissions that filled a gap, numbers given
    /// up on.
    #[serde(default)]
    pub upstream: UpstreamRepairCounters,
    /// RTCP datagrams from the source (rtcp-mux, on its RTP port): not forwarded, and apart
    /// from `packets_received` and its drops.
    #[serde(default)]
    pub rtcp_received: u64,
    /// Sender reports of the source's current stream taken: its viewers' sender reports map
    /// their timestamps to the source's NTP time with them.
    #[serde(default)]
    pub sender_reports: u64,
    /// RTCP dropped by reason (`malformed`, `wrong_sender`, `queue_full`), non-zero only.
    #[serde(default)]
    pub rtcp_drops: std::collections::BTreeMap<String, u64>,
    /// H.264/H.265: packets of cached parameter sets sent to subscribers that started at a
    /// keyframe the sender sent without them.
    #[serde(default)]
    pub parameter_sets_sent: u64,
    /// Drops by reason name (`DropReason::name`), non-zero entries only.
    pub drops: std::collections::BTreeMap<String, u64>,
    /// Rates over the last stats interval: from `interval_start_s` to `interval_end_s`.
    #[serde(default)]
    pub packets_per_second: f64,
    #[serde(default)]
    pub bitrate_bps: f64,
    #[serde(default)]
    pub fps: f64,
    /// Node uptime in seconds at the start and end of the interval the rates cover (the same
    /// stats interval boundaries as every shard's); `None` until two snapshots were taken.
    #[serde(default)]
    pub interval_start_s: Option<f64>,
    #[serde(default)]
    pub interval_end_s: Option<f64>,
    /// Seconds of media time (RTP timestamps) between the source's last two keyframes, once
    /// two have arrived; never for audio (every packet is a switch point).
    #[serde(default)]
    pub keyframe_interval_s: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct SourceView {
    pub id: u32,
    pub name: String,
    pub codec: String,
    pub clock_rate: u32,
    pub ingest: IngestAddr,
    pub latch: bool,
    /// The sender address latched to, once a packet arrived.
    pub sender: Option<SocketAddr>,
    /// Where keyframe requests go when not to `sender`.
    #[serde(default)]
    pub feedback: Option<SocketAddr>,
    /// Parameter sets were given with the source (`CreateSource::parameter_sets`).
    #[serde(default)]
    pub parameter_sets: bool,
    /// The payload type the source takes: the one given, or the current stream's (learned from
    /// its first packet).
    #[serde(default)]
    pub payload_type: Option<u8>,
    #[serde(default)]
    pub rtx_payload_type: Option<u8>,
    /// `keyframe` or `replay` ([`CreateSource::join`]).
    #[serde(default)]
    pub join: String,
    /// `waiting` (nothing received yet), `active`, or `idle` (nothing for `--idle-timeout`).
    #[serde(default)]
    pub state: String,
    /// [`CreateSource::fallback`].
    #[serde(default)]
    pub fallback: Option<u32>,
    /// Its subscribers are on its fallback now (it was idle, and has not sent since).
    #[serde(default)]
    pub failed_over: bool,
    pub subscribers: u64,
    pub counters: SourceCounters,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct UpstreamRepairCounters {
    pub missing: u64,
    pub nacks_sent: u64,
    pub repaired: u64,
    pub given_up: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct SubscriberCounters {
    pub packets_sent: u64,
    pub bytes_sent: u64,
    pub switches: u64,
    pub drops: std::collections::BTreeMap<String, u64>,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct SubscriberView {
    pub id: u32,
    pub ssrc: u32,
    pub shard: u32,
    /// `None` once its source was deleted.
    pub source: Option<u32>,
    pub pending_source: Option<u32>,
    /// The source it was subscribed to, while a failover has it on that source's fallback: it
    /// goes back when that source sends again (unless switched by request meanwhile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_source: Option<u32>,
    pub dest: SocketAddr,
    /// The address media is sent from; subscribers send RTCP (PLI, FIR, RR, NACK) here.
    pub media_from: SocketAddr,
    /// The codec it receives (`vp8`, `vp9`, `h264`, `h265`, `av1` or `opus`): its first
    /// source's, kept across switches and after that source is deleted.
    pub codec: String,
    /// The RTP payload type of the packets it receives: fixed per codec by the node, whatever the
    /// sources send, so it holds across switches. `GET /v1/subscribers/{id}/sdp` says the rest.
    pub payload_type: u8,
    pub counters: SubscriberCounters,
    /// `rtp` (a plain RTP receiver) or `webrtc` (a WHEP viewer).
    #[serde(default = "rtp")]
    pub transport: String,
    /// A WHEP viewer's channel, state and tracks; absent for plain RTP subscribers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewer: Option<ViewerView>,
    /// What the subscriber last reported receiving (its RTCP receiver reports); absent until it
    /// sends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reception: Option<ReceptionView>,
}

/// A subscriber's own account of its reception (RFC 3550 report blocks).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct ReceptionView {
    /// Receiver reports taken.
    pub reports: u64,
    /// Share of packets lost since its report before (0 to 1).
    pub fraction_lost: f64,
    /// Packets lost since it started.
    pub packets_lost: i64,
    /// Interarrival jitter, in milliseconds.
    pub jitter_ms: f64,
    /// Round trip, from the last sender report it echoed (WebRTC viewers get sender reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
}

fn rtp() -> String {
    "rtp".to_string()
}

/// What a WHEP viewer is beyond a subscriber. The subscriber's own fields (`ssrc`, `codec`,
/// `payload_type`, `source`, `counters`) describe its first track (video when it has video).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct ViewerView {
    pub channel: u32,
    /// `connecting` (answered, ICE and DTLS not done yet) or `connected`.
    pub state: String,
    /// Its tracks' ids (the first is the subscriber's own id).
    pub tracks: Vec<u32>,
}

/// A WHEP viewer admitted: `201` with `sdp` as the body, `Location: /v1/subscribers/{subscriber}`
/// and `ETag: {etag}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct WhepAnswer {
    pub subscriber: u32,
    pub sdp: String,
    pub etag: String,
}

/// What a switch request did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SwitchOutcome {
    /// The subscriber switches at the new source's next switch point (answered `202`).
    Pending,
    /// It already receives that source and nothing was pending: nothing changed (`200`).
    Unchanged,
    /// It already receives that source; its pending switch to another was cancelled (`200`).
    Cancelled,
}

/// Body of a switch request's answer: `202` while the switch is pending, `200` when the
/// subscriber already receives the source asked for.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct SwitchView {
    pub outcome: SwitchOutcome,
    /// The source it receives now (`None` while detached, its source deleted).
    pub source: Option<u32>,
    /// The source it switches to, if a switch is pending after this request.
    pub pending_source: Option<u32>,
}

/// A shard's UDP GSO sends since start (all 0 with `--gso off`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct GsoStats {
    /// Copies per GSO message at most on this shard; 1 when it sends a datagram per copy.
    pub segments: u32,
    pub messages: u64,
    pub copies: u64,
    pub refused: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct ShardStats {
    pub shard: u32,
    /// Core the shard's thread is pinned to, if pinned.
    pub core: Option<u32>,
    pub subscribers: u64,
    pub packets_in: u64,
    /// Datagrams sent: copies and parameter-set packets.
    pub packets_out: u64,
    pub send_batches: u64,
    /// `sendmmsg` (and fallback `sendmsg`) calls.
    #[serde(default)]
    pub send_syscalls: u64,
    /// UDP GSO: messages that carried several copies to one subscriber, the copies they
    /// carried, and those the kernel refused as GSO (their copies then went one by one).
    #[serde(default)]
    pub gso: GsoStats,
    /// Every drop in this shard since start, by reason (copies, and packets for sources it does
    /// not host).
    pub drops: std::collections::BTreeMap<String, u64>,
    /// Copies owed to subscribers since start: `copies_due = copies_sent + Σ copy_drops`.
    #[serde(default)]
    pub copies_due: u64,
    #[serde(default)]
    pub copies_sent: u64,
    #[serde(default)]
    pub copy_drops: std::collections::BTreeMap<String, u64>,
    /// Over the last stats interval (`interval_start_s` to `interval_end_s`), as the
    /// latency and busy share below: packets taken from ingest per second, datagrams sent per
    /// second.
    #[serde(default)]
    pub packets_in_per_s: f64,
    #[serde(default)]
    pub packets_out_per_s: f64,
    /// Forwarding latency of the copies sent in the last stats interval, in microseconds: from
    /// the kernel's receive timestamp at the ingest socket to the return of the `sendmmsg`
    /// that carried the copy.
    #[serde(default)]
    pub latency_p50_us: u64,
    #[serde(default)]
    pub latency_p99_us: u64,
    /// Share of the last stats interval spent forwarding.
    #[serde(default)]
    pub busy_ratio: f64,
    /// Node uptime in seconds at the start and end of the interval the rates, latency and busy
    /// share cover; `None` until the shard sent two snapshots.
    #[serde(default)]
    pub interval_start_s: Option<f64>,
    #[serde(default)]
    pub interval_end_s: Option<f64>,
    /// Subscribers' RTCP packets received, and keyframe requests ignored because they named a
    /// subscriber's SSRC but came from another address than the subscriber's.
    #[serde(default)]
    pub rtcp_received: u64,
    #[serde(default)]
    pub rtcp_wrong_sender: u64,
    /// What the shard's socket took from WHEP viewers, and copies it could not seal.
    #[serde(default)]
    pub webrtc: WebrtcShardStats,
    /// NACKs answered from the shard's packet histories.
    #[serde(default)]
    pub repair: RepairShardStats,
    #[serde(default)]
    pub replay: ReplayShardStats,
}

/// A shard's loss repair since start: every NACKed number is queued for resending or refused
/// by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct RepairShardStats {
    /// Sequence numbers subscribers NACKed.
    pub nacked: u64,
    /// Resends queued, and their bytes.
    pub resends_queued: u64,
    pub resent_bytes: u64,
    /// Resends the kernel took, and those it refused (or that could not be sealed).
    pub resends_sent: u64,
    pub resends_failed: u64,
    /// Numbers not resent, by reason (`unknown`, `missing`, `too_often`, `over_budget`,
    /// `queue_full`).
    pub refused: std::collections::BTreeMap<String, u64>,
    /// Packets the shard's source histories hold now, and their bytes.
    pub history_packets: u64,
    pub history_bytes: u64,
}

/// A shard's joins replayed from its histories since start (`join: replay`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ReplayShardStats {
    /// Joins and switches that started from the history, and those that caught up with live.
    pub started: u64,
    pub finished: u64,
    /// Joins that found no keyframe in the history and waited for the next.
    pub without_keyframe: u64,
    /// Packets replayed (the kernel took them), and their bytes.
    pub packets: u64,
    pub bytes: u64,
    /// Replayed copies the kernel refused, or that could not be sealed.
    pub failed: u64,
    /// Packets a replay passed over: let go by the history before it got to them.
    pub skipped: u64,
}

/// A shard's WebRTC counters since start: every datagram a viewer sent its socket is in one of
/// them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct WebrtcShardStats {
    /// STUN binding requests checked and answered.
    pub stun_answered: u64,
    /// STUN refused, by reason (`bad_integrity`, `unknown_username`, ...).
    pub stun_dropped: std::collections::BTreeMap<String, u64>,
    /// DTLS records handed to the handshake thread.
    pub dtls_forwarded: u64,
    /// DTLS from an address no check passed from, or that found the handshake queue full.
    pub dtls_dropped: u64,
    pub srtcp_received: u64,
    /// SRTCP that failed to unprotect, or RTP sent by a viewer.
    pub srtcp_dropped: u64,
    /// Copies that could not be sealed (counted as `send_failed` copy drops too).
    pub srtp_failed: u64,
    /// Datagrams that are none of STUN, DTLS, RTP or RTCP.
    pub unknown_dropped: u64,
    /// Resends to viewers sent as RFC 4588 retransmissions (of the shard's `repair.sent`).
    #[serde(default)]
    pub rtx_sent: u64,
}

/// Delivery counters of one event handler.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct EventHandlerStats {
    pub name: String,
    pub delivered: u64,
    pub dropped: u64,
    pub retries: u64,
    pub queued: u64,
    /// Bytes of serialized events waiting.
    #[serde(default)]
    pub queued_bytes: u64,
}

/// Node-wide totals since start, deleted sources and subscribers included: they never go
/// backwards. `packets_received = packets_accepted + Σ packet_drops + packets_held`, and
/// `copies_due = copies_sent + Σ copy_drops`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct NodeStats {
    pub uptime_s: f64,
    pub sources: u64,
    pub subscribers: u64,
    /// Channels configured now.
    #[serde(default)]
    pub channels: u64,
    /// WHEP viewers now (among `subscribers`): answered and not connected yet, and connected.
    #[serde(default)]
    pub viewers_connecting: u64,
    #[serde(default)]
    pub viewers_connected: u64,
    /// Viewers' DTLS handshakes since start, by outcome.
    #[serde(default)]
    pub handshakes_completed: u64,
    #[serde(default)]
    pub handshakes_failed: u64,
    /// RTP packets that arrived at the sources' ingest ports.
    pub packets_received: u64,
    #[serde(default)]
    pub packets_accepted: u64,
    /// Held now while a new sender stream is in probation (a gauge).
    #[serde(default)]
    pub packets_held: u64,
    /// Received packets dropped before any shard saw them, by reason (once per packet).
    #[serde(default)]
    pub packet_drops: std::collections::BTreeMap<String, u64>,
    /// Accepted packets a shard that wanted them did not get, by reason (once per shard).
    #[serde(default)]
    pub delivery_drops: std::collections::BTreeMap<String, u64>,
    /// Datagrams the shards sent: copies and parameter-set packets.
    pub packets_forwarded: u64,
    #[serde(default)]
    pub copies_due: u64,
    #[serde(default)]
    pub copies_sent: u64,
    /// Copies not sent, by reason (once per subscriber).
    #[serde(default)]
    pub copy_drops: std::collections::BTreeMap<String, u64>,
    /// Every drop, of every kind above, by reason.
    pub drops: std::collections::BTreeMap<String, u64>,
    /// Forwarding latency since start, over all shards, in microseconds.
    #[serde(default)]
    pub latency_p50_us: u64,
    #[serde(default)]
    pub latency_p99_us: u64,
    #[serde(default)]
    pub latency_p999_us: u64,
    #[serde(default)]
    pub latency_max_us: u64,
}

/// `GET /v1/stats` body.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct StatsView {
    pub node: NodeStats,
    pub shards: Vec<ShardStats>,
    pub sources: Vec<SourceView>,
    #[serde(default)]
    pub channels: Vec<ChannelView>,
    #[serde(default)]
    pub events: Vec<EventHandlerStats>,
}

/// Body of every error response: `{"error": code, "message": message}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}

/// An error the API reports: HTTP status, a stable machine-readable code and a message saying what
/// was wrong. Sent as `{"error": code, "message": message}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            code: "bad_request",
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 404,
            code: "not_found",
            message: message.into(),
        }
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 409,
            code: "conflict",
            message: message.into(),
        }
    }

    pub fn too_many(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 429,
            code: "limit_reached",
            message: message.into(),
        }
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 503,
            code: "unavailable",
            message: message.into(),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 401,
            code: "unauthorized",
            message: message.into(),
        }
    }

    pub fn method_not_allowed(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 405,
            code: "method_not_allowed",
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 403,
            code: "forbidden",
            message: message.into(),
        }
    }

    pub fn precondition_failed(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 412,
            code: "precondition_failed",
            message: message.into(),
        }
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 415,
            code: "unsupported_media_type",
            message: message.into(),
        }
    }

    pub fn payload_too_large(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 413,
            code: "payload_too_large",
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 500,
            code: "internal",
            message: message.into(),
        }
    }

    /// The JSON body this error is sent as.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.code.to_string(),
            message: self.message.clone(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// What the node offers the control API. Calls may block briefly (a round trip to the node's
/// control thread); the HTTP server calls them off its async workers.
pub trait Control: Send + Sync + 'static {
    fn create_source(&self, req: CreateSource) -> Result<SourceView, ApiError>;
    fn sources(&self) -> Vec<SourceView>;
    fn source(&self, id: u32) -> Result<SourceView, ApiError>;
    /// Its subscribers stay, idle, until switched or deleted; channels that name it stay too,
    /// with that slot (`video` or `audio`) `None`: deleting a source is how an operator takes
    /// a broken feed away, and refusing it while a channel names the feed would keep the broken
    /// feed in place; the channel's other track keeps playing.
    fn delete_source(&self, id: u32) -> Result<(), ApiError>;
    /// All or nothing: if one entry is refused, none is added and the error names the entry.
    fn create_subscribers(
        &self,
        reqs: Vec<CreateSubscriber>,
    ) -> Result<Vec<SubscriberView>, ApiError>;
    fn subscribers(&self) -> Vec<SubscriberView>;
    fn subscriber(&self, id: u32) -> Result<SubscriberView, ApiError>;
    /// The SDP (`application/sdp` text) a plain-RTP receiver at the subscriber's `dest` opens
    /// to play what it receives.
    fn subscriber_sdp(&self, id: u32) -> Result<String, ApiError>;
    /// The SDP a subscriber of source `id` at `dest` would have: what a player at `dest`
    /// opens before the subscriber exists, so that it is listening when the first packet (the
    /// keyframe the subscriber starts at) arrives.
    fn source_sdp(&self, id: u32, dest: SocketAddr) -> Result<String, ApiError>;
    fn delete_subscriber(&self, id: u32) -> Result<(), ApiError>;
    /// `Ok` says what was done: a pending switch, or nothing because the subscriber already
    /// receives `source` (see [`SwitchOutcome`]).
    fn switch(&self, subscriber: u32, source: u32) -> Result<SwitchView, ApiError>;
    /// Switch WHEP viewer `subscriber` to channel `channel` (its video and audio together).
    fn switch_channel(&self, subscriber: u32, channel: u32) -> Result<SwitchView, ApiError>;
    /// Refused with the field it is about: `name` empty or taken (`409`), neither `video` nor
    /// `audio`, a source that does not exist (`404`, as for a subscriber), or one of the other
    /// kind (`409`, as for a switch to another codec).
    fn create_channel(&self, req: CreateChannel) -> Result<ChannelView, ApiError>;
    fn channels(&self) -> Vec<ChannelView>;
    fn channel(&self, id: u32) -> Result<ChannelView, ApiError>;
    fn delete_channel(&self, id: u32) -> Result<(), ApiError>;
    /// Admit a WHEP viewer of channel `channel` with its SDP `offer`
    /// (`POST /v1/channels/{id}/whep`).
    fn whep_offer(&self, channel: u32, offer: String) -> Result<WhepAnswer, ApiError>;
    /// A WHEP `PATCH` (trickle ICE fragment, RFC 8840) on viewer `id`; `if_match` is the
    /// request's `If-Match`, which must be the viewer's ETag.
    fn whep_patch(
        &self,
        id: u32,
        if_match: Option<String>,
        fragment: String,
    ) -> Result<(), ApiError>;
    /// End viewer `id`; unlike [`Control::delete_subscriber`], refuses plain subscribers, so a
    /// viewer token cannot remove them.
    fn delete_viewer(&self, id: u32) -> Result<(), ApiError>;
    fn stats(&self) -> StatsView;
    /// Prometheus text exposition of every metric (`GET /metrics`).
    fn metrics(&self) -> String;
}

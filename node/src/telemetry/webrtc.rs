//! What the node counts of its WebRTC viewers: per shard, every datagram its socket took from a
//! viewer (STUN answered or dropped by reason, DTLS handed over or dropped, SRTCP taken or
//! dropped) and copies that could not be sealed; node-wide, viewers by state and handshakes by
//! outcome. In `/metrics` and `/v1/stats`.

use std::sync::atomic::Ordering;

use corecast_signaling::api::WebrtcShardStats;

use super::metrics::{label, labels2, Labels, Scrape};
use super::Aggregates;
use crate::shard::ShardSnapshot;
use crate::webrtc::HandshakeCounters;

/// Node-wide WebRTC figures the control thread knows (the shards' are in their snapshots).
#[derive(Clone, Copy, Debug, Default)]
pub struct WebrtcTotals {
    pub connecting: u64,
    pub connected: u64,
    pub handshakes_started: u64,
    pub handshakes_completed: u64,
    pub handshakes_failed: u64,
    /// Server CPU of the completed handshakes, in microseconds.
    pub handshake_cpu_us: u64,
}

impl WebrtcTotals {
    /// The handshake thread's counters read now, with the viewers by state.
    pub fn read(connecting: u64, connected: u64, h: &HandshakeCounters) -> WebrtcTotals {
        WebrtcTotals {
            connecting,
            connected,
            handshakes_started: h.started.load(Ordering::Relaxed),
            handshakes_completed: h.completed.load(Ordering::Relaxed),
            handshakes_failed: h.failed.load(Ordering::Relaxed),
            handshake_cpu_us: h.cpu_micros.load(Ordering::Relaxed),
        }
    }
}

/// A shard's WebRTC counters as `/v1/stats` shows them.
pub fn shard_stats(snap: &ShardSnapshot) -> WebrtcShardStats {
    let w = &snap.webrtc;
    WebrtcShardStats {
        stun_answered: snap.ice.answered,
        stun_dropped: snap
            .ice
            .drops_by_reason()
            .filter(|&(_, n)| n > 0)
            .map(|(r, n)| (r.to_string(), n))
            .collect(),
        dtls_forwarded: w.dtls_forwarded,
        dtls_dropped: w.dtls_dropped,
        srtcp_received: w.srtcp_in,
        srtcp_dropped: w.srtcp_dropped,
        srtp_failed: w.srtp_failed,
        unknown_dropped: w.unknown_dropped,
        rtx_sent: w.rtx_sent,
    }
}

pub(super) fn families(s: &mut Scrape, agg: &Aggregates, totals: &WebrtcTotals) {
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
        "corecast_stun_answered",
        "STUN binding requests from viewers checked and answered, per shard.",
        per_shard(&|l| l.ice.answered),
    );
    s.counter(
        "corecast_stun_dropped",
        "STUN datagrams refused, per shard and reason.",
        snaps
            .iter()
            .flat_map(|(k, l)| {
                l.ice
                    .drops_by_reason()
                    .map(|(r, n)| (labels2("shard", k, "reason", r), n))
                    .collect::<Vec<_>>()
            })
            .collect(),
    );
    s.counter(
        "corecast_dtls_records_forwarded",
        "DTLS datagrams from viewers handed to the handshake thread, per shard.",
        per_shard(&|l| l.webrtc.dtls_forwarded),
    );
    s.counter(
        "corecast_dtls_records_dropped",
        "DTLS datagrams dropped: from no checked address, or the handshake queue full.",
        per_shard(&|l| l.webrtc.dtls_dropped),
    );
    s.counter(
        "corecast_srtcp_received",
        "SRTCP packets from viewers that unprotected, per shard.",
        per_shard(&|l| l.webrtc.srtcp_in),
    );
    s.counter(
        "corecast_srtcp_dropped",
        "SRTCP from viewers that failed to unprotect (tag, replay, unknown SSRC), or RTP from \
         a viewer, per shard.",
        per_shard(&|l| l.webrtc.srtcp_dropped),
    );
    s.counter(
        "corecast_srtp_protect_failed",
        "Copies to viewers that could not be sealed, per shard (counted as send_failed too).",
        per_shard(&|l| l.webrtc.srtp_failed),
    );
    s.counter(
        "corecast_rtx_sent",
        "Resends to viewers sent as RFC 4588 retransmissions (their own SSRC), per shard.",
        per_shard(&|l| l.webrtc.rtx_sent),
    );
    s.counter(
        "corecast_shard_socket_unknown_dropped",
        "Datagrams on a shard socket that are none of STUN, DTLS, RTP or RTCP, per shard.",
        per_shard(&|l| l.webrtc.unknown_dropped),
    );
    s.gauge(
        "corecast_viewers",
        "WHEP viewers, by state.",
        vec![
            (label("state", "connecting"), totals.connecting as f64),
            (label("state", "connected"), totals.connected as f64),
        ],
    );
    s.counter(
        "corecast_dtls_handshakes",
        "Viewers' DTLS handshakes, by outcome (started counts every one begun).",
        vec![
            (label("outcome", "started"), totals.handshakes_started),
            (label("outcome", "completed"), totals.handshakes_completed),
            (label("outcome", "failed"), totals.handshakes_failed),
        ],
    );
    s.counter(
        "corecast_dtls_handshake_cpu_microseconds",
        "Server CPU spent in the completed handshakes.",
        vec![(vec![], totals.handshake_cpu_us)],
    );
}

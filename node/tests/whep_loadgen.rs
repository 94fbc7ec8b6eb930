//! `corecast loadgen --whep` against an in-process node: WebRTC viewers that offer SDP over
//! WHEP, pass ICE and DTLS, open SRTP and verify every packet, switching channels on keyframes,
//! and are deleted at the end. Loopback only; every wait is bounded.

mod common;

use std::time::{Duration, Instant};

use corecast_loadgen::{self as loadgen, Config};

#[test]
fn whep_viewers_verify_every_packet_and_switch_channels_on_keyframes() {
    let started = Instant::now();
    let (node, client) = common::start(&[]);
    let viewers = 40;
    let cfg = Config {
        server: node.http_addr().to_string(),
        sources: 2,
        subscribers: viewers,
        duration: Some(Duration::from_secs(6)),
        switch_every: Some(Duration::from_secs(2)),
        whep: true,
        // A debug build of node and load generator in one process on a shared machine: judge
        // correctness and loss, not latency.
        max_p99: None,
        max_loss: 0.0,
        ..Config::default()
    };
    let r = loadgen::run(&cfg, &mut ()).expect("the run is set up");
    let why = format!("{}\n{}", r.summary(), r.to_json());
    eprintln!("{}", r.summary());
    assert!(r.passed, "{why}");
    assert_eq!(r.transport, "webrtc", "{why}");
    let c = r.connect.expect("connect figures");
    assert_eq!((c.connected, c.failed), (u64::from(viewers), 0), "{why}");
    assert!(
        c.p50_ms > 0.0 && c.max_ms >= c.p99_ms && c.p99_ms >= c.p50_ms,
        "{why}"
    );
    assert!(c.handshakes_per_s > 0.0, "{why}");
    let w = r.webrtc.clone().expect("webrtc counts");
    // Every packet a viewer verified came out of SRTP, and none failed to open.
    assert!(r.packets_sent > 0 && r.packets_expected > 0, "{why}");
    assert_eq!(w.srtp_opened, r.packets_received, "{why}");
    assert_eq!(w.unprotect_drops(), 0, "{why}");
    assert_eq!(w.ssrc_not_answered, 0, "{why}");
    assert_eq!(
        (
            r.lost,
            r.duplicates,
            r.payload_mismatches,
            r.foreign_packets
        ),
        (0, 0, 0, 0),
        "{why}"
    );
    assert_eq!(r.packets_received, r.packets_expected, "{why}");
    assert_eq!(r.latency_us.samples, r.packets_received, "{why}");
    assert_eq!(
        (
            r.switches_not_on_keyframe,
            r.joins_not_on_keyframe,
            r.ssrc_changes
        ),
        (0, 0, 0),
        "{why}"
    );
    assert_eq!(r.silent_subscribers, 0, "{why}");
    // Rounds at 2 s and 4 s, 40 viewers each, by channel.
    assert_eq!(r.switch_errors, 0, "{why}");
    assert!(r.switches_requested >= u64::from(viewers), "{why}");
    assert!(r.switches_completed >= u64::from(viewers), "{why}");
    // Consent checks start at 5 s, one viewer after the other over 5 s; each was answered.
    assert!(r.consent_checks_sent > 0, "{why}");
    assert_eq!(w.stun_ignored, r.consent_checks_sent, "{why}");
    // What the run created is gone: viewers (by their Location), channels, sources.
    assert!(client.subscribers().unwrap().is_empty(), "{why}");
    assert!(client.channels().unwrap().is_empty(), "{why}");
    assert!(client.sources().unwrap().is_empty(), "{why}");
    assert!(started.elapsed() < Duration::from_secs(60));
}

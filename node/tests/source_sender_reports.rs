//! A source's own sender reports reach its WebRTC viewers, on loopback: a plain RTP sender
//! (the project's VP8 stream, rtcp-mux) sends SRs on a wall clock of its own (NTP in 2001, far
//! from the node's), and the viewer (the load generator's WHEP client: ICE, DTLS, SRTP) gets
//! SRs that carry that clock, the RTP side in its own timestamps: the NTP time it computes for
//! each packet it receives is the sender's clock at that packet's capture, to a millisecond.
//! Malformed RTCP and RTCP from another address are dropped and counted. Bounded waits only.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use corecast_engine::rtcp::{self, NtpTime, RtcpPacket};
use corecast_engine::Codec;
use corecast_loadgen::whep::answer::parse_answer;
use corecast_loadgen::whep::http::WhepHttp;
use corecast_loadgen::whep::join::{join, ToJoin};
use corecast_loadgen::whep::offer::{build_offer, ViewerIce};
use corecast_signaling::api::CreateChannel;
use corecast_webrtc::dtls::Certificate;

/// The sender's wall clock at its start: 2001-01-01 (NTP seconds), 25 years from the node's.
const SENDER_NTP_SECS: u64 = 3_187_296_000;

fn ntp_secs_f64(ntp: NtpTime) -> f64 {
    (ntp.0 >> 32) as f64 + (ntp.0 & 0xffff_ffff) as f64 / 4_294_967_296.0
}

/// A sender report of `ssrc`: `elapsed` since the sender's start on its wall clock and on its
/// 90 kHz RTP clock (timestamps start at 0 at the start, as its packets' do).
fn sender_report(ssrc: u32, elapsed: Duration) -> [u8; 28] {
    let ntp = (SENDER_NTP_SECS << 32) + ((elapsed.as_nanos() << 32) / 1_000_000_000) as u64;
    let rtp = (elapsed.as_nanos() * 90_000 / 1_000_000_000) as u32;
    let mut out = [0u8; 28];
    rtcp::write_sender_report(
        &mut out,
        corecast_engine::Ssrc(ssrc),
        NtpTime(ntp),
        rtp,
        1,
        1,
    );
    out
}

#[test]
fn viewers_sender_reports_carry_the_sources_ntp_clock() {
    let started = Instant::now();
    let (node, client) = common::start(&[]);
    let source = common::source(&client, "cam", "vp8");
    let ingest = common::ingest_addr(&source);
    let channel = client
        .create_channel(&CreateChannel {
            name: "ch".into(),
            video: Some(source.id),
            audio: None,
        })
        .expect("channel created")
        .id;

    // One viewer, joined as the load generator's do.
    let certificate = Certificate::generate().unwrap();
    let ice = ViewerIce::random();
    let http = WhepHttp::new(client.base(), None, Duration::from_secs(5));
    let created = http
        .offer(
            channel,
            &build_offer(Codec::Vp8, &ice, &certificate.fingerprint()),
        )
        .expect("offer answered");
    let answer = parse_answer(&created.answer).expect("a usable answer");
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(answer.candidate).unwrap();
    socket.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + common::DEADLINE;
    let joined = join(
        &[ToJoin {
            socket: &socket,
            ice: &ice,
            answer: &answer,
        }],
        &certificate,
        deadline,
        None,
    )
    .expect("join runs");
    let mut srtp = joined
        .inbound
        .into_iter()
        .next()
        .unwrap()
        .expect("viewer connected");

    // The sender: 30 fps on its own schedule, an SR every 10 frames from the same socket.
    let ssrc = 0x5e9d;
    let mut sender = common::Sender::new(ingest, ssrc, 10);
    let origin = Instant::now();
    let mut frame = 0u32;
    // (arrival, output timestamp) of each packet the viewer received, and the SRs it got.
    let mut packets: Vec<(Instant, u32)> = Vec::new();
    // When each frame's first packet left the sender, by frame number.
    let mut sent_at: Vec<Instant> = Vec::new();
    let mut reports: Vec<(NtpTime, u32)> = Vec::new();
    let mut buf = [0u8; 2048];
    common::until(
        "three sender reports at the viewer after its first packets",
        || {
            let due = origin + Duration::from_nanos(u64::from(frame) * 1_000_000_000 / 30);
            if Instant::now() >= due {
                sent_at.push(Instant::now());
                loop {
                    if sender.send().marker {
                        break;
                    }
                }
                frame += 1;
                if frame.is_multiple_of(10) {
                    let sr = sender_report(ssrc, origin.elapsed());
                    sender.socket.send_to(&sr, ingest).unwrap();
                }
            }
            while let Ok(n) = socket.recv(&mut buf) {
                let at = Instant::now();
                let bytes = &mut buf[..n];
                if rtcp::is_rtcp(bytes) {
                    let Ok(len) = srtp.unprotect_rtcp(bytes) else {
                        continue;
                    };
                    for p in rtcp::packets(&bytes[..len]).flatten() {
                        if let RtcpPacket::SenderReport { ntp, rtp_ts, .. } = p {
                            // Only once the source's report has reached the shard do they leave
                            // the node's clock (2026) for the sender's (2001).
                            if (ntp.0 >> 32) < SENDER_NTP_SECS + 3_600 {
                                reports.push((ntp, rtp_ts.0));
                            }
                        }
                    }
                } else if let Ok(len) = srtp.unprotect_rtp(bytes) {
                    let ts = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
                    if len >= 12 && bytes[0] >> 6 == 2 {
                        packets.push((at, ts));
                    }
                }
            }
            reports.len() >= 3 && !packets.is_empty()
        },
    );

    // What the viewer computes for each packet received: its NTP time from the first report
    // (RFC 3550 §6.4.1). The sender stamps frame k with k/30 s on the same line as its reports,
    // so that time must be the sender's clock at frame k's capture, exactly (to a millisecond),
    // and frame k must have been sent before the packet arrived. Exact rather than "close to
    // the arrival time": a loaded machine may deliver a packet late, but never re-stamps it.
    let (ntp, rtp) = reports[0];
    let mut checked = 0;
    let mut last_frame = 0usize;
    for &(at, ts) in &packets {
        let ticks = f64::from(ts.wrapping_sub(rtp) as i32);
        let viewer = ntp_secs_f64(ntp) + ticks / 90_000.0 - SENDER_NTP_SECS as f64;
        let k = (viewer * 30.0).round();
        assert!(
            (viewer - k / 30.0).abs() < 0.001 && k >= 0.0,
            "a packet's NTP time is the sender's clock at one of its frames: {viewer} s"
        );
        let k = k as usize;
        let sent = sent_at
            .get(k)
            .unwrap_or_else(|| panic!("frame {k} at {viewer} s was never sent"));
        assert!(
            *sent <= at,
            "frame {k} arrived before it was sent: the NTP time is not the sender's"
        );
        assert!(k >= last_frame, "frame {k} after frame {last_frame}");
        last_frame = k;
        checked += 1;
    }
    eprintln!("{checked} packets, each at its frame's capture time on the sender's clock");
    assert!(checked > 10, "{checked} packets checked");
    // Consecutive reports lie on one line: the sender's.
    for w in reports.windows(2) {
        let dt = ntp_secs_f64(w[1].0) - ntp_secs_f64(w[0].0);
        let dts = f64::from(w[1].1.wrapping_sub(w[0].1) as i32) / 90_000.0;
        assert!(
            (dt - dts).abs() < 0.002,
            "reports on one clock: {dt} s vs {dts} s"
        );
    }

    // Malformed RTCP, and RTCP from another address than the latched sender, are counted.
    let mut truncated = sender_report(ssrc, origin.elapsed());
    truncated[3] = 9; // a length past the datagram
    sender.socket.send_to(&truncated, ingest).unwrap();
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    stranger
        .send_to(&sender_report(ssrc, Duration::ZERO), ingest)
        .unwrap();
    common::until("the RTCP counters", || {
        let c = client.source(source.id).unwrap().counters;
        c.rtcp_drops.get("malformed") == Some(&1) && c.rtcp_drops.get("wrong_sender") == Some(&1)
    });
    let c = client.source(source.id).unwrap().counters;
    assert!(c.sender_reports >= 3, "{c:?}");
    assert!(c.rtcp_received >= c.sender_reports + 2, "{c:?}");
    let _ = http.delete(&created.location);
    drop(node);
    assert!(started.elapsed() < Duration::from_secs(60));
}

//! `GET /v1/subscribers/{id}/sdp` on a running node: what the subscriber receives (payload type,
//! codec, destination), and for H.264 the parameter sets of its *current* source as the node
//! learns them: configured with the source, or cached from the stream in-band. (The text itself
//! is unit-tested in `node/src/sdp/tests.rs`; ffmpeg playing it is in `real_media.rs`.)

mod common;

use std::net::UdpSocket;

use common::*;
use corecast_signaling::api::{CreateSource, CreateSubscriber};
use corecast_signaling::client::{Client, ClientError};

/// An SPS (Baseline, level 3.0) and a PPS, base64 as in an SDP's `sprop-parameter-sets`.
const STREAM_SPS: [u8; 5] = [0x67, 0x42, 0xc0, 0x1e, 0xda];
const STREAM_PPS: [u8; 4] = [0x68, 0xce, 0x3c, 0x80];
const CONFIGURED: &str = "Z0LACw==,aM48gA==";

fn sdp(client: &Client, sub: u32) -> String {
    client.subscriber_sdp(sub).expect("the subscriber's SDP")
}

fn fmtp(sdp: &str) -> &str {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=fmtp:"))
        .unwrap_or_else(|| panic!("no a=fmtp line:\n{sdp}"))
}

fn h264_source(client: &Client, name: &str, parameter_sets: Option<&str>) -> u32 {
    client
        .create_source(&CreateSource {
            name: name.into(),
            codec: "h264".into(),
            parameter_sets: parameter_sets.map(str::to_string),
            ..Default::default()
        })
        .unwrap()
        .id
}

/// A minimal H.264 sender: a keyframe is a STAP-A with SPS and PPS, then a one-packet IDR.
struct H264Sender {
    socket: UdpSocket,
    to: std::net::SocketAddr,
    seq: u16,
    ts: u32,
}

impl H264Sender {
    fn new(source: &corecast_signaling::api::SourceView) -> H264Sender {
        H264Sender {
            socket: UdpSocket::bind("127.0.0.1:0").unwrap(),
            to: ingest_addr(source),
            seq: 100,
            ts: 9_000,
        }
    }

    fn packet(&mut self, marker: bool, payload: &[u8]) {
        let mut p = vec![0x80, 102 | if marker { 0x80 } else { 0 }];
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&self.ts.to_be_bytes());
        p.extend_from_slice(&0x2644_u32.to_be_bytes());
        p.extend_from_slice(payload);
        self.socket.send_to(&p, self.to).unwrap();
        self.seq = self.seq.wrapping_add(1);
    }

    fn keyframe(&mut self) {
        let mut stap = vec![0x78];
        for nal in [&STREAM_SPS[..], &STREAM_PPS[..]] {
            stap.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            stap.extend_from_slice(nal);
        }
        self.packet(false, &stap);
        self.packet(true, &[0x65, 0x88, 0x84, 0x00, 0x33]);
        self.ts = self.ts.wrapping_add(3_000);
    }
}

#[test]
fn the_sdp_describes_what_the_subscriber_receives_at_its_destination() {
    let (_node, client) = start(&["--node-name", "edge-7"]);
    let cam = source(&client, "cam1", "vp8");
    let v4 = client
        .create_subscriber(&CreateSubscriber {
            source: cam.id,
            dest: "127.0.0.1:5004".into(),
        })
        .unwrap();
    assert_eq!((v4.codec.as_str(), v4.payload_type), ("vp8", 96));
    let text = sdp(&client, v4.id);
    for line in [
        "v=0",
        &format!("o=- {} ", v4.id),
        &format!("s=corecast subscriber {}", v4.id),
        &format!(
            "i=node edge-7, subscriber {}, source {} (cam1), generated ",
            v4.id, cam.id
        ),
        "c=IN IP4 127.0.0.1",
        "m=video 5004 RTP/AVP 96",
        "a=rtpmap:96 VP8/90000",
        "a=rtcp:5005",
        "a=recvonly",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(line)),
            "no `{line}` in:\n{text}"
        );
    }
    assert!(text.ends_with("\r\n") && !text.contains("\n\n"), "{text:?}");

    let opus = source(&client, "mic", "opus");
    let v6 = client
        .create_subscriber(&CreateSubscriber {
            source: opus.id,
            dest: "[::1]:6000".into(),
        })
        .unwrap();
    assert_eq!((v6.codec.as_str(), v6.payload_type), ("opus", 111));
    let text = sdp(&client, v6.id);
    assert!(text.contains("\r\nc=IN IP6 ::1\r\n"), "{text}");
    assert!(text.contains("\r\nm=audio 6000 RTP/AVP 111\r\n"), "{text}");
    assert!(text.contains("\r\na=rtpmap:111 opus/48000/2\r\n"), "{text}");

    // A deleted source leaves its subscriber detached: still described, saying so.
    client.delete_source(opus.id).unwrap();
    assert!(
        sdp(&client, v6.id).contains("no source (its source was deleted"),
        "{}",
        sdp(&client, v6.id)
    );

    match client.subscriber_sdp(999) {
        Err(ClientError::Api {
            status,
            code,
            message,
        }) => assert_eq!(
            (status, code.as_str(), message.as_str()),
            (404, "not_found", "no subscriber 999")
        ),
        other => panic!("expected a 404, got {other:?}"),
    }
}

/// The SDP fetched for a source and a destination before the subscriber exists is the one the
/// subscriber then has, but for the lines that name the session: a player started with it plays
/// the subscriber from its first packet.
#[test]
fn a_sources_sdp_for_a_destination_is_the_subscribers_to_be() {
    let (_node, client) = start(&[]);
    let configured = h264_source(&client, "configured", Some(CONFIGURED));
    let mic = source(&client, "mic", "opus");
    for (source, dest) in [(configured, "127.0.0.1:5020"), (mic.id, "[::1]:5022")] {
        let ahead = client.source_sdp(source, dest.parse().unwrap()).unwrap();
        assert!(
            ahead.contains(&format!(
                "\r\ns=corecast a subscriber at {dest} not added yet\r\n"
            )),
            "{ahead}"
        );
        let sub = client
            .create_subscriber(&CreateSubscriber {
                source,
                dest: dest.into(),
            })
            .unwrap();
        let media = |text: &str| {
            text.lines()
                .filter(|l| !["o=", "s=", "i="].iter().any(|p| l.starts_with(p)))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(media(&ahead), media(&sdp(&client, sub.id)));
    }
    match client.source_sdp(999, "127.0.0.1:5004".parse().unwrap()) {
        Err(ClientError::Api {
            status, message, ..
        }) => {
            assert_eq!((status, message.as_str()), (404, "no source 999"))
        }
        other => panic!("expected a 404, got {other:?}"),
    }
}

#[test]
fn h264_sdp_has_the_current_sources_parameter_sets_configured_or_learned_in_band() {
    let (_node, client) = start(&["--stats-interval", "50"]);
    let configured = h264_source(&client, "configured", Some(CONFIGURED));
    let in_band = h264_source(&client, "in-band", None);
    let dest = |port: u16| format!("127.0.0.1:{port}");
    let sub = |source, port| {
        client
            .create_subscriber(&CreateSubscriber {
                source,
                dest: dest(port),
            })
            .unwrap()
            .id
    };
    let (a, b) = (sub(configured, 5010), sub(in_band, 5012));
    assert_eq!(
        fmtp(&sdp(&client, a)),
        format!(
            "102 packetization-mode=1;profile-level-id=42c00b;sprop-parameter-sets={CONFIGURED}"
        )
    );
    let before = sdp(&client, b);
    assert_eq!(fmtp(&before), "102 packetization-mode=1");
    assert!(
        before.contains("\r\ni=no H.264 parameter sets (SPS/PPS) known yet for source"),
        "the SDP says the sets are missing:\n{before}"
    );

    // Once the stream sends them, the next ingest snapshot carries them to the SDP.
    let mut sender = H264Sender::new(&client.source(in_band).unwrap());
    sender.keyframe();
    let learned =
        "102 packetization-mode=1;profile-level-id=42c01e;sprop-parameter-sets=Z0LAHto=,aM48gA==";
    until("the in-band parameter sets to reach the SDP", || {
        fmtp(&sdp(&client, b)) == learned
    });
    assert!(
        !sdp(&client, b).contains("known yet"),
        "{}",
        sdp(&client, b)
    );

    // The SDP follows the subscriber's current source: after a switch, the new source's sets.
    client.switch(a, in_band).unwrap();
    // The switch applies at a keyframe its shard sees after the switch command: send one now
    // and then, a few dozen in all, until it has.
    let mut polls = 0;
    until("the switch to complete", || {
        if polls % 50 == 0 {
            sender.keyframe();
        }
        polls += 1;
        client.subscriber(a).unwrap().source == Some(in_band)
    });
    assert_eq!(fmtp(&sdp(&client, a)), learned);
}

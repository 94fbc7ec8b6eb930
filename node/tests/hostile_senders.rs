//! A source survives what real senders put on its port besides its stream: a stray or spoofed
//! datagram with another SSRC, a multiplexed retransmission stream, packets of another payload
//! type; and a sender that really restarts (new SSRC) is forwarded from its first keyframe.
//! Before the source kept its stream, one stray datagram restarted it, and the real stream was
//! then refused for good.

mod common;

use std::time::{Duration, Instant};

use common::*;
use corecast_engine::synth::{VideoShape, Vp8Stream};
use corecast_engine::Ssrc;
use corecast_signaling::api::{CreateSource, SourceView};
use corecast_signaling::client::Client;

fn drops(client: &Client, source: u32, reason: &str) -> u64 {
    let view = client.source(source).unwrap();
    view.counters.drops.get(reason).copied().unwrap_or(0)
}

/// Send a packet of another stream from the sender's own socket (so latching lets it in).
fn send_other(sender: &Sender, stream: &mut Vp8Stream, payload_type: u8) {
    let mut buf = Vec::new();
    stream.next_packet(&mut buf);
    buf[1] = (buf[1] & 0x80) | payload_type;
    sender.socket.send_to(&buf, sender.to).unwrap();
}

/// The bytes of a synthetic VP8 packet that no splicer rewrites: the payload after its 5-byte
/// descriptor (picture ID and TL0PICIDX are rewritten). They tell every packet apart.
fn body(packet: &[u8]) -> Vec<u8> {
    let h = corecast_engine::rtp::RtpHeader::parse(packet).expect("valid RTP");
    h.payload(packet)[5..].to_vec()
}

/// A sender that remembers what it sent.
struct Tracked {
    sender: Sender,
    sent: Vec<Vec<u8>>,
}

impl Tracked {
    fn new(sender: Sender) -> Tracked {
        Tracked {
            sender,
            sent: Vec::new(),
        }
    }

    fn send(&mut self) {
        let mut buf = Vec::new();
        self.sender.stream.next_packet(&mut buf);
        self.sender.socket.send_to(&buf, self.sender.to).unwrap();
        self.sent.push(body(&buf));
    }
}

/// A subscriber and what it received.
struct Received {
    socket: std::net::UdpSocket,
    got: Vec<Got>,
    bodies: Vec<Vec<u8>>,
}

impl Received {
    fn drain(&mut self) {
        let mut buf = [0u8; 2048];
        while let Ok(n) = self.socket.recv(&mut buf) {
            self.got.push(got(&buf[..n]));
            self.bodies.push(body(&buf[..n]));
        }
    }

    /// Wait until the last packet sent arrived, then check that the subscriber got exactly what
    /// was sent from the first packet it received on: nothing lost, nothing added, in order.
    fn expect_everything_since_it_started(&mut self, tx: &Tracked) {
        let last = tx.sent.last().expect("something was sent");
        until("the last packet sent to arrive", || {
            self.drain();
            self.bodies.last() == Some(last)
        });
        let from = tx.sent.len().saturating_sub(self.bodies.len());
        let first_difference =
            (0..self.bodies.len()).find(|&i| tx.sent.get(from + i) != Some(&self.bodies[i]));
        assert_eq!(
            first_difference,
            None,
            "the subscriber got every packet sent after its first, and nothing else ({} sent, {} got)",
            tx.sent.len(),
            self.bodies.len()
        );
        for w in self.got.windows(2) {
            assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "continuous, in order");
            assert_eq!(w[1].ssrc, w[0].ssrc, "one SSRC");
        }
    }
}

/// A subscriber on `source`, live (it received a packet of `tx`).
fn live_subscriber(client: &Client, source: u32, tx: &mut Tracked) -> Received {
    let mut rx = Received {
        socket: receiver(),
        got: Vec::new(),
        bodies: Vec::new(),
    };
    subscribe(client, source, std::slice::from_ref(&rx.socket));
    until("the subscriber to start", || {
        tx.send();
        rx.drain();
        !rx.got.is_empty()
    });
    rx
}

/// Send `count` packets, calling `between(i)` after each.
fn send_burst(
    tx: &mut Tracked,
    rx: &mut Received,
    count: usize,
    mut between: impl FnMut(usize, &Sender),
) {
    for i in 0..count {
        tx.send();
        between(i, &tx.sender);
        if i % 50 == 0 {
            rx.drain();
        }
    }
}

#[test]
fn a_stray_datagram_with_another_ssrc_does_not_cut_the_stream() {
    let (_node, client) = start(&["--stats-interval", "50"]);
    let src = source(&client, "cam", "vp8");
    let mut tx = Tracked::new(Sender::new(ingest_addr(&src), 0x1111, 30));
    let mut rx = live_subscriber(&client, src.id, &mut tx);
    let mut stray = Vp8Stream::new(Ssrc(0xbad), 40_000, 9, VideoShape::default());
    send_burst(&mut tx, &mut rx, 600, |i, s| {
        if i == 100 {
            send_other(s, &mut stray, 96);
        }
    });
    rx.expect_everything_since_it_started(&tx);
    until("the stray to be counted as other_ssrc", || {
        drops(&client, src.id, "other_ssrc") == 1
    });
    assert_eq!(client.source(src.id).unwrap().counters.restarts, 0);
}

fn request(payload_type: Option<u8>, rtx_payload_type: Option<u8>) -> CreateSource {
    CreateSource {
        name: "cam".into(),
        codec: "vp8".into(),
        clock_rate: None,
        port: None,
        latch: None,
        feedback: None,
        parameter_sets: None,
        payload_type,
        rtx_payload_type,
        join: None,
        fallback: None,
    }
}

fn create(client: &Client, payload_type: Option<u8>, rtx_payload_type: Option<u8>) -> SourceView {
    client
        .create_source(&request(payload_type, rtx_payload_type))
        .expect("source created")
}

#[test]
fn a_multiplexed_retransmission_stream_is_counted_and_never_forwarded() {
    for (rtx_payload_type, reason) in [(None, "other_payload_type"), (Some(97), "rtx")] {
        let (_node, client) = start(&["--stats-interval", "50"]);
        let src = create(&client, None, rtx_payload_type);
        let mut tx = Tracked::new(Sender::new(ingest_addr(&src), 0x2222, 30));
        let mut rx = live_subscriber(&client, src.id, &mut tx);
        let mut rtx = Vp8Stream::new(Ssrc(0x3333), 7, 0, VideoShape::default());
        send_burst(&mut tx, &mut rx, 600, |i, s| {
            if i % 20 == 0 {
                send_other(s, &mut rtx, 97);
            }
        });
        rx.expect_everything_since_it_started(&tx);
        until("the retransmissions to be counted", || {
            drops(&client, src.id, reason) == 30
        });
        let view = client.source(src.id).unwrap();
        assert_eq!(view.payload_type, Some(96), "learned from the stream");
        assert_eq!(view.counters.restarts, 0);
    }
}

#[test]
fn a_sender_that_restarts_with_a_new_ssrc_is_forwarded_from_its_first_keyframe() {
    let (_node, client) = start(&["--stats-interval", "50", "--takeover-silence", "100"]);
    let src = source(&client, "cam", "vp8");
    let mut tx = Tracked::new(Sender::new(ingest_addr(&src), 0x4444, 30));
    let mut rx = live_subscriber(&client, src.id, &mut tx);
    send_burst(&mut tx, &mut rx, 50, |_, _| {});
    rx.expect_everything_since_it_started(&tx);
    let before = rx.got.len();
    // The encoder restarts at once (no pause), from the same socket, with a new SSRC and
    // numbering, opening with a keyframe. Paced as a live sender: its first packets are held
    // until the old stream has been silent for --takeover-silence, then released in order.
    tx.sender.stream = Vp8Stream::new(Ssrc(0x5555), 30_000, 0, VideoShape::default());
    let started = Instant::now();
    let mut sent = 0;
    until("the restarted stream's 200 packets to arrive", || {
        if sent < 200 && started.elapsed() >= Duration::from_millis(2) * sent {
            tx.send();
            sent += 1;
        }
        rx.drain();
        rx.got.len() >= before + 200
    });
    rx.expect_everything_since_it_started(&tx);
    assert!(
        rx.got[before].keyframe_start,
        "from its first keyframe's first packet"
    );
    until("the restart to be counted", || {
        client.source(src.id).unwrap().counters.restarts == 1
    });
}

#[test]
fn packets_of_another_payload_type_than_the_given_one_are_dropped() {
    let (_node, client) = start(&["--stats-interval", "50"]);
    let src = create(&client, Some(96), None);
    assert_eq!(src.payload_type, Some(96));
    let mut tx = Tracked::new(Sender::new(ingest_addr(&src), 0x6666, 30));
    let mut rx = live_subscriber(&client, src.id, &mut tx);
    let mut other = Vp8Stream::new(Ssrc(0x6666), 0, 0, VideoShape::default());
    send_burst(&mut tx, &mut rx, 200, |i, s| {
        if i % 10 == 0 {
            send_other(s, &mut other, 100);
        }
    });
    rx.expect_everything_since_it_started(&tx);
    until("the other payload type counted", || {
        drops(&client, src.id, "other_payload_type") == 20
    });
}

#[test]
fn a_payload_type_outside_rtp_range_is_refused_by_the_api() {
    let (_node, client) = start(&[]);
    for (pt, rtx) in [(Some(128), None), (None, Some(200)), (Some(96), Some(96))] {
        let err = client
            .create_source(&request(pt, rtx))
            .expect_err("refused");
        match err {
            corecast_signaling::client::ClientError::Api {
                status, message, ..
            } => {
                assert_eq!(status, 400, "{message}");
                assert!(message.contains("payload_type"), "{message}");
            }
            other => panic!("expected a 400, got {other}"),
        }
    }
    assert!(client.sources().unwrap().is_empty(), "nothing was created");
}

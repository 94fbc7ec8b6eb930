//! UDP GSO on loopback: a source's packets that reach a shard's queue together (a burst, as an
//! encoder sends a frame) go to each subscriber as one GSO message, and every subscriber still
//! gets every packet once, in order, byte for byte; `--gso off` sends the same packets one
//! datagram each.

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};

use common::*;
use corecast_engine::synth::{VideoShape, Vp8Stream};
use corecast_engine::Ssrc;
use corecast_udp::{Datagram, SendBatch};

/// Packets per burst: what one `sendmmsg` hands the node's ingest at once.
const BURST: usize = 16;
const SUBSCRIBERS: usize = 40;

/// A VP8 sender that sends its packets `BURST` at a time with one `sendmmsg`, and keeps what it
/// sent by sequence number.
struct BurstSender {
    socket: UdpSocket,
    stream: Vp8Stream,
    to: SocketAddr,
    batch: SendBatch<1>,
    sent: HashMap<u16, Vec<u8>>,
}

impl BurstSender {
    fn new(to: SocketAddr) -> BurstSender {
        let shape = VideoShape {
            gop: 60,
            payload_len: 1_100,
            ..VideoShape::default()
        };
        BurstSender {
            socket: UdpSocket::bind("127.0.0.1:0").unwrap(),
            stream: Vp8Stream::new(Ssrc(0x6505), 100, 0, shape),
            to,
            batch: SendBatch::with_capacity(BURST),
            sent: HashMap::new(),
        }
    }

    fn burst(&mut self) {
        let mut packets = Vec::with_capacity(BURST);
        for _ in 0..BURST {
            let mut buf = Vec::new();
            let p = self.stream.next_packet(&mut buf);
            packets.push((p.seq.0, buf));
        }
        let out = self.batch.send(
            &self.socket,
            &packets,
            |(_, buf)| Datagram {
                dest: self.to,
                segments: [buf.as_slice()],
            },
            |_, why| panic!("the burst to the node was refused: {why:?}"),
        );
        assert_eq!(out.sent, BURST);
        self.sent.extend(packets);
    }
}

/// Every packet a subscriber received, whole.
fn drain_whole(socket: &UdpSocket, out: &mut Vec<Vec<u8>>) {
    let mut buf = [0u8; 2048];
    while let Ok(n) = socket.recv(&mut buf) {
        out.push(buf[..n].to_vec());
    }
}

/// Where a copy's bytes are the sender's: past the RTP header and the VP8 descriptor (whose
/// picture ID and TL0PICIDX the splicer rewrites).
const TAIL: usize = 12 + 5;

fn seq_of(packet: &[u8]) -> u16 {
    u16::from_be_bytes([packet[2], packet[3]])
}

/// Forward bursts to `SUBSCRIBERS` subscribers on a node started with `flags` until at least
/// 50 bursts went through and, with `want_gso`, a shard sent GSO messages; check that each
/// subscriber got one continuous stream whose packets are the sender's, byte for byte past the
/// rewritten VP8 descriptor. Returns the node's shard stats.
fn forward_bursts(flags: &[&str], want_gso: bool) -> Vec<corecast_signaling::api::ShardStats> {
    let mut argv = vec!["--stats-interval", "50"];
    argv.extend_from_slice(flags);
    let (_node, client) = start(&argv);
    let src = source(&client, "cam", "vp8");
    let receivers: Vec<UdpSocket> = (0..SUBSCRIBERS).map(|_| receiver()).collect();
    let subs = subscribe(&client, src.id, &receivers);
    let mut sender = BurstSender::new(ingest_addr(&src));
    let mut got: Vec<Vec<Vec<u8>>> = vec![Vec::new(); SUBSCRIBERS];
    let mut bursts = 0;
    until("50 bursts through, in GSO messages where asked", || {
        sender.burst();
        bursts += 1;
        for (r, g) in receivers.iter().zip(got.iter_mut()) {
            drain_whole(r, g);
        }
        let gso: u64 = client
            .stats()
            .unwrap()
            .shards
            .iter()
            .map(|s| s.gso.messages)
            .sum();
        bursts >= 50 && (!want_gso || gso > 0)
    });
    let last = sender.stream.next_seq().0.wrapping_sub(1);
    let last_tail = sender.sent[&last][TAIL..].to_vec();
    until("every subscriber to receive the last packet sent", || {
        for (r, g) in receivers.iter().zip(got.iter_mut()) {
            drain_whole(r, g);
        }
        got.iter()
            .all(|g| g.last().is_some_and(|p| p[TAIL..] == last_tail[..]))
    });
    // What the node counted (at its next snapshot) is what arrived: nothing lost on the way.
    until("the node's counts to cover every packet received", || {
        subs.iter().zip(&got).all(|(sub, g)| {
            client.subscriber(sub.id).unwrap().counters.packets_sent == g.len() as u64
        })
    });
    for (g, sub) in got.iter().zip(&subs) {
        // From its first packet (a keyframe's) on, a subscriber's numbers map onto the
        // sender's by one offset: no gap, no repeat, nothing out of order.
        let offset = sender
            .sent
            .iter()
            .find(|(_, p)| p[TAIL..] == g[0][TAIL..])
            .map(|(&seq, _)| seq.wrapping_sub(seq_of(&g[0])))
            .expect("the first packet is one the sender sent");
        for (i, p) in g.iter().enumerate() {
            let ssrc = u32::from_be_bytes([p[8], p[9], p[10], p[11]]);
            assert_eq!(ssrc, sub.ssrc, "one SSRC per subscriber");
            assert_eq!(
                seq_of(p),
                seq_of(&g[0]).wrapping_add(i as u16),
                "continuous, in order, none twice"
            );
            let sent = &sender.sent[&seq_of(p).wrapping_add(offset)];
            assert_eq!(p.len(), sent.len(), "the packet's size is the sender's");
            assert_eq!(p[TAIL..], sent[TAIL..], "the payload is the sender's");
        }
    }
    client.stats().unwrap().shards
}

#[test]
fn with_gso_a_burst_goes_to_each_subscriber_in_gso_messages_every_packet_whole_and_in_order() {
    let shards = forward_bursts(&["--gso", "on", "--gso-segments", "16"], true);
    for s in &shards {
        assert_eq!(s.gso.segments, 16);
        assert_eq!(s.gso.refused, 0, "loopback takes every GSO message");
        assert!(
            s.gso.copies >= 2 * s.gso.messages,
            "a GSO message carries two copies or more: {:?}",
            s.gso
        );
        assert!(s.gso.copies <= s.copies_sent);
    }
    let (copies, syscalls): (u64, u64) = shards
        .iter()
        .fold((0, 0), |(c, k), s| (c + s.copies_sent, k + s.send_syscalls));
    assert!(
        shards.iter().map(|s| s.gso.messages).sum::<u64>() > 0,
        "bursts went as GSO messages"
    );
    assert!(syscalls > 0 && copies > syscalls);
}

#[test]
fn with_gso_off_every_copy_is_a_datagram_of_its_own() {
    let shards = forward_bursts(&["--gso", "off"], false);
    for s in &shards {
        assert_eq!(s.gso.segments, 1);
        assert_eq!((s.gso.messages, s.gso.copies, s.gso.refused), (0, 0, 0));
    }
}

#[test]
fn gso_flags_are_checked() {
    use corecast::config::parse_serve;
    let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    assert!(parse_serve(&args("--gso sometimes")).is_err());
    assert!(parse_serve(&args("--gso-segments 1")).is_err());
    assert!(parse_serve(&args("--gso-segments 65")).is_err());
    let a = parse_serve(&args("--gso-segments 64")).unwrap();
    assert_eq!(a.gso_segments, 64);
}

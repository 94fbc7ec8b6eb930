//! Loss repair through a running node: a plain RTP subscriber that NACKs packets gets them
//! again, byte for byte as first sent, from the shard's history; a NACK from a stranger or for
//! a number never sent resends nothing; `--history-ms 0` answers no NACK. Counted in
//! `/v1/stats` and `/metrics`.

mod common;

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};

use common::*;
use corecast_engine::rtcp::{write_nack, NACK_MAX_LEN};
use corecast_engine::{SeqNo, Ssrc};
use corecast_signaling::client::Client;

/// What a subscriber received: bytes by sequence number, and the node's address they came
/// from (where its RTCP goes).
#[derive(Default)]
struct Received {
    packets: BTreeMap<u16, Vec<Vec<u8>>>,
    from: Option<SocketAddr>,
    /// Sequence numbers in the order they first arrived.
    order: Vec<u16>,
    strays: u64,
}

/// Everything waiting on `socket` that is RTP of the track `ssrc` from one address (the
/// node's shard); anything else (a stray datagram from another process on the machine) is
/// counted in `strays` and kept out of the packets.
fn take(socket: &UdpSocket, ssrc: u32, got: &mut Received) {
    let mut buf = [0u8; 2048];
    while let Ok((n, from)) = socket.recv_from(&mut buf) {
        let rtp = n >= 12 && buf[0] >> 6 == 2 && !corecast_engine::rtcp::is_rtcp(&buf[..n]);
        let ours = rtp && u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]) == ssrc;
        if !ours || got.from.is_some_and(|f| f != from) {
            got.strays += 1;
            continue;
        }
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let copies = got.packets.entry(seq).or_default();
        if copies.is_empty() {
            got.order.push(seq);
        }
        copies.push(buf[..n].to_vec());
        got.from = Some(from);
    }
}

fn nack(socket: &UdpSocket, to: SocketAddr, ssrc: u32, lost: &[u16]) {
    let mut out = [0u8; NACK_MAX_LEN];
    let n = write_nack(
        &mut out,
        Ssrc(7),
        Ssrc(ssrc),
        lost.iter().map(|&s| SeqNo(s)),
    )
    .unwrap();
    socket.send_to(&out[..n], to).unwrap();
}

/// A node, a VP8 source sending 200 packets, one subscriber that received them all.
fn forwarded(extra: &[&str]) -> (corecast::Node, Client, UdpSocket, Received, u32) {
    // Counters every 50 ms: the wait for all of it to be through below is short, well inside
    // the history.
    let mut flags = vec!["--stats-interval", "50"];
    flags.extend_from_slice(extra);
    let (node, client) = start(&flags);
    let src = source(&client, "cam", "vp8");
    let rx = receiver();
    let sub = subscribe(&client, src.id, std::slice::from_ref(&rx)).remove(0);
    let ssrc = sub.ssrc;
    let mut sender = Sender::new(ingest_addr(&src), 0x5eed, 30);
    let mut got = Received::default();
    let mut sent = 0u64;
    // Sending until the subscriber is live (it starts at a keyframe), then 200 more.
    until("the subscriber's first packet", || {
        sender.send();
        sent += 1;
        take(&rx, ssrc, &mut got);
        !got.packets.is_empty()
    });
    for _ in 0..200 {
        sender.send();
        sent += 1;
    }
    // All of it through the node and at the subscriber, so nothing still on its way arrives
    // later (on a loaded machine hundreds may be in flight when the 200th has come).
    until("every packet forwarded and received", || {
        take(&rx, ssrc, &mut got);
        let accepted = client.source(src.id).unwrap().counters.packets_accepted;
        let forwarded = client.subscriber(sub.id).unwrap().counters.packets_sent;
        got.packets.len() > 200 && accepted == sent && forwarded == got.packets.len() as u64
    });
    (node, client, rx, got, ssrc)
}

#[test]
fn a_nacked_packet_comes_again_as_first_sent_and_strangers_get_nothing() {
    let (node, client, rx, mut got, ssrc) = forwarded(&[]);
    let to = got.from.expect("the node's address");
    // "Lost": a run of 5 and two single packets among the last 200 that arrived (a loaded
    // machine may have had far more in flight before the first arrived than the history
    // holds: the oldest of those are long gone from it).
    let recent = &got.order[got.order.len() - 200..];
    let lost: Vec<u16> = [&recent[50..55], &recent[80..81], &recent[120..121]].concat();
    let first: Vec<Vec<u8>> = lost.iter().map(|s| got.packets[s][0].clone()).collect();
    // A stranger's NACK for them, from another socket: nothing comes.
    let stranger = receiver();
    nack(&stranger, to, ssrc, &lost);
    // A number the track never sent: ahead of the newest (all it sent has arrived).
    let newest = *got.order.last().expect("packets arrived");
    let ahead = newest.wrapping_add(100);
    nack(&rx, to, ssrc, &[ahead]);
    // The subscriber's own NACK.
    nack(&rx, to, ssrc, &lost);
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        take(&rx, ssrc, &mut got);
        if lost.iter().all(|s| got.packets[s].len() == 2) {
            break;
        }
        if std::time::Instant::now() > deadline {
            let shards: Vec<_> = client.stats().expect("stats").shards;
            let copies: Vec<usize> = lost.iter().map(|s| got.packets[s].len()).collect();
            panic!(
                "timed out waiting for the resends of {lost:?} (copies {copies:?}, {} strays) \
                 sent to {to}: shards {:#?}",
                got.strays,
                shards
                    .iter()
                    .map(|s| (s.rtcp_received, s.rtcp_wrong_sender, &s.repair, &s.drops))
                    .collect::<Vec<_>>()
            );
        }
        std::thread::yield_now();
    }
    for (s, bytes) in lost.iter().zip(&first) {
        assert_eq!(&got.packets[s][1], bytes, "seq {s} resent as first sent");
    }
    let stats = until_repair(&client, |r| r.nacked >= 8);
    let r = &stats;
    assert_eq!(r.nacked, 8, "{r:?}");
    assert_eq!((r.resends_queued, r.resends_sent), (7, 7), "{r:?}");
    assert_eq!(r.refused.get("unknown"), Some(&1), "{r:?}");
    assert!(r.history_packets > 200, "{r:?}");
    // Only the subscriber's own: the stranger's 7 and the unknown number resent nothing more.
    take(&rx, ssrc, &mut got);
    assert!(got.packets.values().all(|v| v.len() <= 2));
    assert!(!got.packets.contains_key(&ahead));
    let metrics = ureq::get(&format!("http://{}/metrics", node.http_addr()))
        .call()
        .expect("metrics")
        .into_body()
        .read_to_string()
        .expect("text");
    assert!(
        metrics.contains("corecast_resends_sent_total{shard="),
        "{metrics}"
    );
    assert!(
        metrics.contains("corecast_history_packets{shard="),
        "{metrics}"
    );
    drop(node);
}

#[test]
fn without_a_history_no_nack_is_answered() {
    let (_node, client, rx, mut got, ssrc) = forwarded(&["--history-ms", "0"]);
    let to = got.from.expect("the node's address");
    let seq = got.order[got.order.len() - 60];
    nack(&rx, to, ssrc, &[seq]);
    // The node took the RTCP (counted) and resent nothing.
    until("the NACK taken", || {
        client
            .stats()
            .expect("stats")
            .shards
            .iter()
            .map(|s| s.rtcp_received)
            .sum::<u64>()
            >= 1
    });
    let r = until_repair(&client, |_| true);
    assert_eq!((r.nacked, r.resends_sent, r.history_packets), (0, 0, 0));
    take(&rx, ssrc, &mut got);
    assert_eq!(got.packets[&seq].len(), 1);
}

/// The shards' repair figures summed, once `ready` holds for them.
fn until_repair(
    client: &Client,
    ready: impl Fn(&corecast_signaling::api::RepairShardStats) -> bool,
) -> corecast_signaling::api::RepairShardStats {
    let mut sum = Default::default();
    until("the shards' repair figures", || {
        let mut s = corecast_signaling::api::RepairShardStats::default();
        for shard in client.stats().expect("stats").shards {
            let r = shard.repair;
            s.nacked += r.nacked;
            s.resends_queued += r.resends_queued;
            s.resends_sent += r.resends_sent;
            s.history_packets += r.history_packets;
            for (k, v) in r.refused {
                *s.refused.entry(k).or_default() += v;
            }
        }
        let ok = ready(&s);
        sum = s;
        ok
    });
    sum
}

fn as_rtx(p: &[u8], rtx_seq: u16) -> Vec<u8> {
    corecast_engine::synth::as_rtx(p, 97, Ssrc(0x0057_0057), rtx_seq)
}

/// A source whose sender says it retransmits (`rtx_payload_type`): the packets lost on the way
/// in are NACKed to the sender, which answers with RTX; the subscriber gets every packet once,
/// the retransmitted ones as the originals were.
#[test]
fn gaps_from_a_retransmitting_sender_are_nacked_upstream_and_filled_by_its_rtx() {
    let (_node, client) = start(&[]);
    let src = client
        .create_source(&corecast_signaling::api::CreateSource {
            name: "cam".into(),
            codec: "vp8".into(),
            payload_type: Some(96),
            rtx_payload_type: Some(97),
            ..Default::default()
        })
        .unwrap();
    let sub_socket = receiver();
    let ssrc = subscribe(&client, src.id, std::slice::from_ref(&sub_socket))
        .remove(0)
        .ssrc;
    let mut sender = Sender::new(ingest_addr(&src), 0x5e2d, 30);
    // 60 packets, every tenth lost before the node (kept here to retransmit).
    let mut sent = BTreeMap::new();
    let mut lost = BTreeMap::new();
    for i in 0..60 {
        let mut buf = Vec::new();
        let p = sender.stream.next_packet(&mut buf);
        if i % 10 == 5 {
            lost.insert(p.seq.0, buf.clone());
        } else {
            sender.socket.send_to(&buf, sender.to).unwrap();
        }
        sent.insert(p.seq.0, buf);
    }
    // The node asks for each lost one; the sender answers every NACK with RTX.
    let mut asked = std::collections::BTreeSet::new();
    let mut rtx_seq = 0u16;
    until("NACKs for every lost packet", || {
        while let Some(rtcp) = sender.poll_rtcp() {
            for packet in corecast_engine::rtcp::packets(&rtcp).flatten() {
                if let corecast_engine::rtcp::RtcpPacket::Nack {
                    media_ssrc, pairs, ..
                } = packet
                {
                    assert_eq!(media_ssrc, Ssrc(0x5e2d));
                    for seq in pairs.lost() {
                        asked.insert(seq.0);
                        let p = lost.get(&seq.0).expect("only lost numbers are asked for");
                        sender
                            .socket
                            .send_to(&as_rtx(p, rtx_seq), sender.to)
                            .unwrap();
                        rtx_seq += 1;
                    }
                }
            }
        }
        asked.len() == lost.len()
    });
    let mut got = Received::default();
    until("every packet at the subscriber", || {
        take(&sub_socket, ssrc, &mut got);
        got.packets.len() == sent.len()
    });
    for (seq, copies) in &got.packets {
        assert_eq!(copies.len(), 1, "{seq} once");
    }
    // Numbered on without a hole (the node's numbering starts anywhere, and may wrap), each
    // packet the size it was sent at: the retransmitted ones are in their places.
    let first = got
        .packets
        .keys()
        .copied()
        .find(|s| !got.packets.contains_key(&s.wrapping_sub(1)));
    let first = first.expect("a first packet");
    let sent_sizes: Vec<usize> = sent.values().map(Vec::len).collect();
    let got_sizes: Vec<usize> = (0..sent.len() as u16)
        .map(|k| got.packets[&first.wrapping_add(k)][0].len())
        .collect();
    assert_eq!(got_sizes, sent_sizes);
    until("the source's counters", || {
        let c = client.source(src.id).unwrap().counters;
        c.upstream.repaired == lost.len() as u64
    });
    let c = client.source(src.id).unwrap().counters;
    assert_eq!(c.packets_accepted, 60, "{c:?}");
    assert_eq!(c.upstream.missing, lost.len() as u64, "{c:?}");
    assert!(c.upstream.nacks_sent >= 1, "{c:?}");
}

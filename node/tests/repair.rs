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
}

fn take(socket: &UdpSocket, got: &mut Received) {
    let mut buf = [0u8; 2048];
    while let Ok((n, from)) = socket.recv_from(&mut buf) {
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        got.packets.entry(seq).or_default().push(buf[..n].to_vec());
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
    let (node, client) = start(extra);
    let src = source(&client, "cam", "vp8");
    let rx = receiver();
    let sub = subscribe(&client, src.id, std::slice::from_ref(&rx)).remove(0);
    let mut sender = Sender::new(ingest_addr(&src), 0x5eed, 30);
    let mut got = Received::default();
    // Sending until the subscriber is live (it starts at a keyframe), then 200 more.
    until("the subscriber's first packet", || {
        sender.send();
        take(&rx, &mut got);
        !got.packets.is_empty()
    });
    for _ in 0..200 {
        sender.send();
    }
    until("200 packets at the subscriber", || {
        take(&rx, &mut got);
        got.packets.len() > 200
    });
    (node, client, rx, got, sub.ssrc)
}

#[test]
fn a_nacked_packet_comes_again_as_first_sent_and_strangers_get_nothing() {
    let (node, client, rx, mut got, ssrc) = forwarded(&[]);
    let to = got.from.expect("the node's address");
    let seqs: Vec<u16> = got.packets.keys().copied().collect();
    // "Lost": a run of 5 and two single packets, in the middle of what was sent.
    let lost: Vec<u16> = [&seqs[50..55], &seqs[80..81], &seqs[120..121]].concat();
    let first: Vec<Vec<u8>> = lost.iter().map(|s| got.packets[s][0].clone()).collect();
    // A stranger's NACK for them, from another socket: nothing comes.
    let stranger = receiver();
    nack(&stranger, to, ssrc, &lost);
    // A number the track never sent (ahead of the newest: the one whose successor did not
    // come; the numbers started at random and may have wrapped, so not the largest).
    let newest = *seqs
        .iter()
        .find(|s| !got.packets.contains_key(&s.wrapping_add(1)))
        .unwrap();
    let ahead = newest.wrapping_add(100);
    nack(&rx, to, ssrc, &[ahead]);
    // The subscriber's own NACK.
    nack(&rx, to, ssrc, &lost);
    until("the resends", || {
        take(&rx, &mut got);
        lost.iter().all(|s| got.packets[s].len() == 2)
    });
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
    take(&rx, &mut got);
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
    let seq = *got.packets.keys().nth(60).unwrap();
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
    take(&rx, &mut got);
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

//! The node forwarding real UDP on loopback: every packet to every subscriber in order, switching
//! on keyframes with keyframe requests to the new source, latching, subscribers' PLIs.

mod common;

use std::collections::HashSet;

use common::*;
use corecast_engine::rtcp::{self, RtcpPacket};

/// Send packets until every receiver has had one: then every track is live on its shard.
fn warm_up(sender: &mut Sender, receivers: &[std::net::UdpSocket], got: &mut [Vec<Got>]) {
    until("every subscriber to receive a packet", || {
        sender.send();
        for (r, g) in receivers.iter().zip(got.iter_mut()) {
            drain(r, g);
        }
        got.iter().all(|g| !g.is_empty())
    });
}

#[test]
fn two_hundred_subscribers_receive_every_packet_in_order() {
    let (_node, client) = start(&[]);
    let src = source(&client, "cam", "vp8");
    let receivers: Vec<_> = (0..200).map(|_| receiver()).collect();
    let subs = subscribe(&client, src.id, &receivers);
    assert_eq!(subs.len(), 200);
    assert!(subs.iter().any(|s| s.shard == 0) && subs.iter().any(|s| s.shard == 1));
    let mut sender = Sender::new(ingest_addr(&src), 0xabc, 30);
    let mut got: Vec<Vec<Got>> = vec![Vec::new(); receivers.len()];
    warm_up(&mut sender, &receivers, &mut got);
    let before: Vec<usize> = got.iter().map(Vec::len).collect();

    let burst = 300;
    for _ in 0..burst {
        sender.send();
        if sender.stream.next_seq().0.is_multiple_of(50) {
            for (r, g) in receivers.iter().zip(got.iter_mut()) {
                drain(r, g);
            }
        }
    }
    until("every subscriber to receive the burst", || {
        for (r, g) in receivers.iter().zip(got.iter_mut()) {
            drain(r, g);
        }
        got.iter().zip(&before).all(|(g, &b)| g.len() >= b + burst)
    });
    let mut ssrcs = HashSet::new();
    for (g, sub) in got.iter().zip(&subs) {
        assert!(
            g.iter().all(|p| p.ssrc == sub.ssrc),
            "one SSRC per subscriber"
        );
        assert!(ssrcs.insert(sub.ssrc), "SSRCs differ between subscribers");
        for w in g.windows(2) {
            assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "continuous, in order");
            assert!(
                w[1].ts.wrapping_sub(w[0].ts) < 1 << 31,
                "timestamps never go back"
            );
        }
        assert!(
            g[0].keyframe_start,
            "the first packet a subscriber sees starts a keyframe"
        );
    }
    let view = client.source(src.id).unwrap();
    assert_eq!(view.subscribers, 200);
}

#[test]
fn switch_lands_on_the_new_sources_keyframe_and_asks_it_for_one() {
    let (_node, client) = start(&[]);
    let a = source(&client, "a", "vp8");
    let b = source(&client, "b", "vp8");
    let receivers: Vec<_> = (0..4).map(|_| receiver()).collect();
    let subs = subscribe(&client, a.id, &receivers);
    // Long GOP on B: without a keyframe request the switch would wait 10 s.
    let mut sa = Sender::with_payload(ingest_addr(&a), 0xa, 30, 300);
    let mut sb = Sender::with_payload(ingest_addr(&b), 0xb, 300, 260);
    let mut got: Vec<Vec<Got>> = vec![Vec::new(); receivers.len()];
    warm_up(&mut sa, &receivers, &mut got);
    for _ in 0..5 {
        sb.send(); // B is running and its sender address is latched
    }
    for s in &subs {
        let r = client.switch(s.id, b.id).unwrap();
        assert_eq!(r.pending_source, Some(b.id));
    }
    // The node asks B for a keyframe; B's sender honours it, as an encoder would.
    until("a keyframe request to B", || {
        sa.send();
        sb.send();
        for (r, g) in receivers.iter().zip(got.iter_mut()) {
            drain(r, g);
        }
        let Some(bytes) = sb.poll_rtcp() else {
            return false;
        };
        let pli = rtcp::packets(&bytes)
            .flatten()
            .any(|p| matches!(p, RtcpPacket::Pli { media_ssrc, .. } if media_ssrc.0 == 0xb));
        if pli {
            sb.stream.force_keyframe();
        }
        pli
    });
    until("every subscriber on B", || {
        sa.send();
        sb.send();
        for (r, g) in receivers.iter().zip(got.iter_mut()) {
            drain(r, g);
        }
        subs.iter()
            .all(|s| client.subscriber(s.id).unwrap().source == Some(b.id))
    });
    let len_b = 12 + 260;
    let on_b: Vec<usize> = got
        .iter()
        .map(|g| g.iter().filter(|p| p.len == len_b).count())
        .collect();
    for _ in 0..20 {
        sa.send();
        sb.send();
    }
    until("20 more of B's packets at every subscriber", || {
        for (r, g) in receivers.iter().zip(got.iter_mut()) {
            drain(r, g);
        }
        got.iter()
            .zip(&on_b)
            .all(|(g, &n)| g.iter().filter(|p| p.len == len_b).count() >= n + 20)
    });
    for (g, sub) in got.iter().zip(&subs) {
        assert!(
            g.iter().all(|p| p.ssrc == sub.ssrc),
            "one SSRC across the switch"
        );
        for w in g.windows(2) {
            assert_eq!(
                w[1].seq,
                w[0].seq.wrapping_add(1),
                "continuous across the switch"
            );
        }
        // All of A, then all of B: the first of B starts a keyframe, and nothing of A follows.
        let first_b = g
            .iter()
            .position(|p| p.len == len_b)
            .expect("B reached the subscriber");
        assert!(
            g[first_b].keyframe_start,
            "the switch lands on B's keyframe"
        );
        assert!(
            g[first_b..].iter().all(|p| p.len == len_b),
            "no packet of A after the switch"
        );
        assert!(g[..first_b].iter().all(|p| p.len != len_b));
        let view = client.subscriber(sub.id).unwrap();
        assert_eq!(
            (view.source, view.pending_source, view.counters.switches),
            (Some(b.id), None, 1)
        );
    }
}

#[test]
fn packets_from_a_second_sender_are_dropped_and_counted() {
    let (_node, client) = start(&[]);
    let src = source(&client, "latched", "vp8");
    let receivers = vec![receiver()];
    subscribe(&client, src.id, &receivers);
    let mut first = Sender::new(ingest_addr(&src), 1, 30);
    let mut got = vec![Vec::new()];
    warm_up(&mut first, &receivers, &mut got);
    let mut intruder = Sender::new(ingest_addr(&src), 2, 30);
    for _ in 0..10 {
        intruder.send();
    }
    until("the intruder's packets counted as wrong_sender", || {
        client
            .source(src.id)
            .unwrap()
            .counters
            .drops
            .get("wrong_sender")
            .copied()
            == Some(10)
    });
    let view = client.source(src.id).unwrap();
    assert_eq!(view.sender, Some(first.socket.local_addr().unwrap()));
}

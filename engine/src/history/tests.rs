use super::*;
use crate::source::SourceIngress;
use crate::synth::{VideoShape, Vp8Stream};
use crate::types::{Codec, SourceId, Ssrc};

/// A VP8 source at 30 fps, a keyframe every 10 frames (3 packets a frame, 8 a keyframe): its
/// packets as the ingress hands them out, one frame every 33 ms of virtual time.
struct Feed {
    stream: Vp8Stream,
    ingress: SourceIngress,
    now: Nanos,
    packet: u64,
}

impl Feed {
    fn new() -> Feed {
        let shape = VideoShape {
            gop: 10,
            ..VideoShape::default()
        };
        Feed {
            stream: Vp8Stream::new(Ssrc(5), 65_500, 1000, shape),
            ingress: SourceIngress::new(SourceId(1), Codec::Vp8, 90_000),
            now: Nanos::ZERO,
            packet: 0,
        }
    }

    fn next(&mut self) -> RxPacket {
        let mut buf = Vec::new();
        let p = self.stream.next_packet(&mut buf);
        if p.frame_start && p.frame > 0 {
            self.now = self.now.saturating_add(Nanos::from_millis(33));
        }
        self.packet += 1;
        self.ingress
            .accept(&buf, None, self.now)
            .expect("accepted")
            .expect("not held")
    }
}

fn history(span_ms: u64, max_packets: usize) -> PacketHistory<u64> {
    PacketHistory::new(HistoryConfig {
        span: Nanos::from_millis(span_ms),
        max_packets,
    })
}

#[test]
fn packets_are_found_by_epoch_and_sequence_across_the_16_bit_wrap() {
    let mut feed = Feed::new();
    let mut h = history(2_000, 1_000);
    let mut seqs = Vec::new();
    for _ in 0..100 {
        let pkt = feed.next();
        seqs.push(pkt.seq);
        h.push(pkt, pkt.seq.0, |_| panic!("nothing let go"));
    }
    // The stream started at 65 500: its sequence numbers wrapped on the wire.
    assert!(seqs.iter().any(|s| s.wire().0 < 100) && seqs.iter().any(|s| s.wire().0 > 65_000));
    for seq in seqs {
        let (pkt, handle) = h.get(0, seq).expect("held");
        assert_eq!((pkt.seq, *handle), (seq, seq.0));
    }
    assert!(h.get(0, ExtSeq(seqs_after(&h))).is_none());
    assert!(
        h.get(1, h.since_switch_point().next().unwrap().0.seq)
            .is_none(),
        "other epoch"
    );
    assert_eq!(h.len(), 100);
    assert_eq!(h.counters().stored, 100);
}

fn seqs_after(h: &PacketHistory<u64>) -> u64 {
    h.entries.back().unwrap().pkt.seq.0 + 1
}

#[test]
fn packets_older_than_the_span_are_let_go_and_counted() {
    let mut feed = Feed::new();
    let mut h = history(500, 10_000);
    let mut released = Vec::new();
    for _ in 0..300 {
        let pkt = feed.next();
        h.push(pkt, pkt.seq.0, |x| released.push(x));
    }
    let newest = h.entries.back().unwrap().pkt.received_at;
    let oldest = h.entries.front().unwrap().pkt.received_at;
    assert!(newest.saturating_since(oldest) <= Nanos::from_millis(500));
    // The packet just before the oldest held was older than the span.
    let first_held = h.entries.front().unwrap().pkt.seq.0;
    assert_eq!(*released.last().unwrap(), first_held - 1);
    assert_eq!(released.len() as u64, h.counters().expired);
    assert_eq!(h.counters().stored, 300);
    assert_eq!(h.len() + released.len(), 300);
    // Bytes follow what is held.
    let held: usize = h.entries.iter().map(|e| e.pkt.header.len as usize).sum();
    assert_eq!(h.bytes(), held);
}

#[test]
fn a_full_history_lets_the_oldest_go_and_never_grows() {
    let mut feed = Feed::new();
    let mut h = history(10_000, 50);
    let capacity = h.entries.capacity();
    let mut released = 0;
    for _ in 0..200 {
        let pkt = feed.next();
        h.push(pkt, pkt.seq.0, |_| released += 1);
    }
    assert_eq!(h.len(), 50);
    assert_eq!(released, 150);
    assert_eq!(h.counters().evicted_full, 150);
    assert_eq!(h.entries.capacity(), capacity, "pushing never reallocates");
}

#[test]
fn a_late_packet_takes_its_place_and_a_duplicate_is_refused() {
    let mut feed = Feed::new();
    let mut h = history(2_000, 100);
    let pkts: Vec<RxPacket> = (0..20).map(|_| feed.next()).collect();
    // 7 arrives after 12 (reordered on the network).
    for (i, pkt) in pkts.iter().enumerate() {
        if i != 7 {
            h.push(*pkt, i as u64, |_| panic!("nothing let go"));
        }
    }
    h.push(pkts[7], 7, |_| panic!("nothing let go"));
    let order: Vec<u64> = h.entries.iter().map(|e| e.handle).collect();
    assert_eq!(order, (0..20).collect::<Vec<_>>());
    let mut refused = None;
    h.push(pkts[3], 99, |x| refused = Some(x));
    assert_eq!(refused, Some(99));
    assert_eq!(h.counters().duplicates, 1);
    assert_eq!(*h.get(0, pkts[3].seq).unwrap().1, 3);
}

#[test]
fn a_packet_older_than_everything_in_a_full_history_is_refused() {
    let mut feed = Feed::new();
    let mut h = history(10_000, 10);
    let pkts: Vec<RxPacket> = (0..12).map(|_| feed.next()).collect();
    for (i, pkt) in pkts.iter().enumerate().skip(1) {
        h.push(*pkt, i as u64, |_| {});
    }
    // Holds 2..=11 now; 0 is older than all of them.
    let mut refused = None;
    h.push(pkts[0], 0, |x| refused = Some(x));
    assert_eq!(refused, Some(0));
    assert_eq!(h.counters().too_old, 1);
    assert!(h.get(0, pkts[0].seq).is_none());
}

#[test]
fn replay_starts_at_the_newest_keyframe() {
    let mut feed = Feed::new();
    let mut h = history(2_000, 1_000);
    // 2.5 GOPs: keyframes at frames 0, 10, 20; frame 25 is the last.
    let mut frames = 0;
    let mut last_keyframe_seq = None;
    while frames < 26 {
        let pkt = feed.next();
        if pkt.is_switch_point() {
            last_keyframe_seq = Some(pkt.seq);
        }
        if pkt.payload.frame_start {
            frames += 1;
        }
        h.push(pkt, pkt.seq.0, |_| {});
    }
    let replay: Vec<ExtSeq> = h.since_switch_point().map(|(p, _)| p.seq).collect();
    assert_eq!(replay.first().copied(), last_keyframe_seq);
    // The keyframe's 8 packets, then frames 21..=25 (3 each), the last one partly sent.
    let newest = h.entries.back().unwrap().pkt.seq;
    assert_eq!(replay.last().copied(), Some(newest));
    assert!(
        replay.windows(2).all(|w| w[1].0 == w[0].0 + 1),
        "in order, no gaps"
    );
}

#[test]
fn without_a_keyframe_in_the_span_nothing_is_replayed() {
    let mut feed = Feed::new();
    // 200 ms span at 30 fps with a keyframe every 10 frames (330 ms): some pushes leave no
    // keyframe in the history.
    let mut h = history(200, 1_000);
    let mut seen_empty = false;
    let mut seen_replay = false;
    for _ in 0..400 {
        let pkt = feed.next();
        h.push(pkt, pkt.seq.0, |_| {});
        match h.since_switch_point().next() {
            None => seen_empty = true,
            Some((p, _)) => {
                assert!(p.is_switch_point());
                seen_replay = true;
            }
        }
    }
    assert!(seen_empty && seen_replay);
}

#[test]
fn clearing_lets_everything_go() {
    let mut feed = Feed::new();
    let mut h = history(2_000, 100);
    for _ in 0..10 {
        let pkt = feed.next();
        h.push(pkt, 0, |_| {});
    }
    h.clear();
    assert!(h.is_empty());
    assert_eq!(h.bytes(), 0);
    assert_eq!(h.since_switch_point().count(), 0);
}

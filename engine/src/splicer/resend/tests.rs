use std::collections::HashMap;

use super::*;
use crate::codec::MAX_REWRITE_LEN;
use crate::rtp::FIXED_HEADER_LEN;
use crate::source::{Prelude, SourceIngress};
use crate::synth::{VideoShape, Vp8Stream};
use crate::types::{Codec, RtpTime, Ssrc};

/// A VP8 source (picture ID and TL0PICIDX on every packet, a keyframe every 5 frames) as its
/// ingress hands the packets out, with their bytes.
struct Feed {
    stream: Vp8Stream,
    ingress: SourceIngress,
}

impl Feed {
    fn new(id: u32, ssrc: u32, first_seq: u16) -> Feed {
        let shape = VideoShape {
            gop: 5,
            ..VideoShape::default()
        };
        Feed {
            stream: Vp8Stream::new(Ssrc(ssrc), first_seq, 7_000 * id, shape),
            ingress: SourceIngress::new(SourceId(id), Codec::Vp8, 90_000),
        }
    }

    fn next(&mut self, now: Nanos) -> (RxPacket, Vec<u8>) {
        let mut buf = Vec::new();
        self.stream.next_packet(&mut buf);
        let pkt = self.ingress.accept(&buf, None, now).unwrap().unwrap();
        (pkt, buf)
    }
}

/// What a track sent: its output bytes (header and rewritten prefix) by output number, and
/// the source packets, by (source, epoch, seq), for the test's own history.
#[derive(Default)]
struct Sent {
    heads: HashMap<u16, Vec<u8>>,
    packets: HashMap<(SourceId, u32, u64), (RxPacket, Vec<u8>)>,
}

fn head_bytes(pkt: &RxPacket, out: &OutHead) -> Vec<u8> {
    out[..FIXED_HEADER_LEN + pkt.rewrite_len()].to_vec()
}

/// Splice `pkt` on `splicer` as the fan-out does, logging its mapping after a switch point.
fn send(
    splicer: &mut Splicer,
    log: &mut MappingLog,
    sent: &mut Sent,
    (pkt, buf): (RxPacket, Vec<u8>),
    now: Nanos,
) -> bool {
    let mut out = [0u8; FIXED_HEADER_LEN + MAX_REWRITE_LEN];
    let ok = splicer.splice(&pkt, &buf, now, &mut out).is_ok();
    if pkt.is_switch_point() {
        log.observe(splicer, &pkt, now);
    }
    if ok {
        let seq = u16::from_be_bytes([out[2], out[3]]);
        assert!(sent.heads.insert(seq, head_bytes(&pkt, &out)).is_none());
    }
    sent.packets
        .insert((pkt.source, pkt.epoch, pkt.seq.0), (pkt, buf));
    ok
}

/// Every output number the track used resolves to the packet that carried it, and resending
/// it writes the very bytes first sent.
fn assert_every_number_resends_as_sent(splicer: &Splicer, log: &MappingLog, sent: &Sent) {
    for (&wire, first) in &sent.heads {
        let resend = log
            .resolve(splicer, SeqNo(wire))
            .unwrap_or_else(|| panic!("output {wire} resolves"));
        let Resend::Packet { mapping, seq, .. } = resend else {
            panic!("output {wire} is a packet, not a prelude");
        };
        let (pkt, buf) = &sent.packets[&(mapping.source(), mapping.epoch(), seq.0)];
        assert!(resend.was_sent(pkt));
        let mut out = [0u8; FIXED_HEADER_LEN + MAX_REWRITE_LEN];
        let got = splicer.resend_head(&mapping, pkt, buf, &mut out);
        assert_eq!(got.map(|s| s.wire().0), Some(wire));
        assert_eq!(
            &head_bytes(pkt, &out),
            first,
            "output {wire}: the same bytes"
        );
    }
}

#[test]
fn numbers_resolve_to_what_they_carried_across_switches_and_the_output_wrap() {
    // The track's numbers start just below the 16-bit wrap; so does source A's.
    let mut splicer = Splicer::new(Ssrc(0xfeed), 97, SeqNo(65_400), RtpTime(0));
    let mut log = MappingLog::new();
    let mut sent = Sent::default();
    let (mut a, mut b) = (Feed::new(1, 0xa, 65_500), Feed::new(2, 0xb, 100));
    let mut now = Nanos::ZERO;
    let mut on_b = false;
    for frame in 0..200 {
        now = now.saturating_add(Nanos::from_millis(33));
        // Both sources send; the track follows one, switching every 40 frames.
        for _ in 0..3 {
            let pa = a.next(now);
            let pb = b.next(now);
            let (mine, theirs) = if on_b { (pb, pa) } else { (pa, pb) };
            send(&mut splicer, &mut log, &mut sent, mine, now);
            sent.packets
                .insert((theirs.0.source, theirs.0.epoch, theirs.0.seq.0), theirs);
        }
        if frame % 40 == 39 {
            splicer.detach();
            on_b = !on_b;
        }
    }
    assert!(sent.heads.len() > 400, "{} sent", sent.heads.len());
    assert!(sent.heads.contains_key(&65_535) && sent.heads.contains_key(&0));
    // The log holds the last 4 of the track's 5 mappings: numbers of the first are forgotten.
    let forgotten: Vec<u16> = sent
        .heads
        .keys()
        .copied()
        .filter(|&w| log.resolve(&splicer, SeqNo(w)).is_none())
        .collect();
    assert!(!forgotten.is_empty(), "the oldest mapping is forgotten");
    let kept = Sent {
        heads: sent
            .heads
            .iter()
            .filter(|(w, _)| !forgotten.contains(w))
            .map(|(w, h)| (*w, h.clone()))
            .collect(),
        packets: sent.packets,
    };
    assert_every_number_resends_as_sent(&splicer, &log, &kept);
}

#[test]
fn numbers_not_yet_sent_resolve_to_nothing() {
    let mut splicer = Splicer::new(Ssrc(0xfeed), 97, SeqNo(1_000), RtpTime(0));
    let mut log = MappingLog::new();
    let mut sent = Sent::default();
    let mut a = Feed::new(1, 0xa, 5_000);
    assert_eq!(
        log.resolve(&splicer, SeqNo(1_000)),
        None,
        "nothing sent yet"
    );
    for i in 0..10 {
        let now = Nanos::from_millis(i * 10);
        let pkt = a.next(now);
        send(&mut splicer, &mut log, &mut sent, pkt, now);
    }
    assert!(log.resolve(&splicer, SeqNo(1_009)).is_some());
    // One past the newest sent extends to the number 65 536 before it, which the track never
    // used (its first was 1 000).
    assert_eq!(log.resolve(&splicer, SeqNo(1_010)), None);
    assert_eq!(log.resolve(&splicer, SeqNo(999)), None);
}

#[test]
fn a_packet_that_arrived_after_the_switch_was_not_sent() {
    let mut splicer = Splicer::new(Ssrc(0xfeed), 97, SeqNo(1), RtpTime(0));
    let mut log = MappingLog::new();
    let mut sent = Sent::default();
    let (mut a, mut b) = (Feed::new(1, 0xa, 10), Feed::new(2, 0xb, 500));
    let mut now = Nanos::ZERO;
    // A's keyframe (8 packets) and two frames; A's packet 12 is held up on the network (13,
    // sent, is the newest: the switch continues after its number).
    let mut late = None;
    for i in 0..14 {
        now = Nanos::from_millis(i * 5);
        let pkt = a.next(now);
        if i == 12 {
            late = Some(pkt);
        } else {
            send(&mut splicer, &mut log, &mut sent, pkt, now);
        }
    }
    let (late_pkt, late_buf) = late.unwrap();
    // The track moves to B at B's keyframe; then A's late packet arrives.
    splicer.detach();
    now = now.saturating_add(Nanos::from_millis(5));
    assert!(send(&mut splicer, &mut log, &mut sent, b.next(now), now));
    now = now.saturating_add(Nanos::from_millis(5));
    let late_pkt = RxPacket {
        received_at: now,
        ..late_pkt
    };
    let mut out = [0u8; FIXED_HEADER_LEN + MAX_REWRITE_LEN];
    assert!(splicer.splice(&late_pkt, &late_buf, now, &mut out).is_err());
    // A NACK for the number it would have had finds A's mapping, but the packet was never sent.
    let resend = log
        .resolve(&splicer, SeqNo(1 + 12))
        .expect("A's mapping covers it");
    assert!(matches!(resend, Resend::Packet { seq, .. } if seq == late_pkt.seq));
    assert!(!resend.was_sent(&late_pkt));
    // A packet A sent before the switch was.
    let sent_before = log.resolve(&splicer, SeqNo(1 + 11)).unwrap();
    let Resend::Packet { mapping, seq, .. } = sent_before else {
        panic!("a packet");
    };
    let (pkt, _) = &sent.packets[&(mapping.source(), mapping.epoch(), seq.0)];
    assert!(sent_before.was_sent(pkt));
    // B's keyframe took the number after A's newest (14), not the late packet's.
    let Resend::Packet { mapping, .. } = log.resolve(&splicer, SeqNo(1 + 13 + 1)).unwrap() else {
        panic!("a packet");
    };
    assert_eq!(mapping.source(), SourceId(2));
}

#[test]
fn the_number_reserved_for_a_prelude_resolves_to_it() {
    let mut splicer = Splicer::new(Ssrc(0xfeed), 97, SeqNo(300), RtpTime(0));
    let mut log = MappingLog::new();
    let mut sent = Sent::default();
    let mut a = Feed::new(1, 0xa, 40);
    // A keyframe whose packet carries a prelude (parameter sets stored after its bytes).
    let (mut pkt, mut buf) = a.next(Nanos::ZERO);
    assert!(pkt.is_switch_point());
    pkt.attach_prelude(&mut buf, &[0x67, 0x42, 0x00, 0x1f]);
    assert_eq!(
        pkt.prelude,
        Some(Prelude {
            start: pkt.header.len,
            len: 4
        })
    );
    let mut prelude_out = [0u8; FIXED_HEADER_LEN + MAX_REWRITE_LEN];
    send(&mut splicer, &mut log, &mut sent, (pkt, buf), Nanos::ZERO);
    splicer.prelude_head(&pkt, &mut prelude_out);
    // The prelude took 300, the keyframe 301.
    assert!(sent.heads.contains_key(&301));
    let resend = log.resolve(&splicer, SeqNo(300)).expect("resolves");
    let Resend::Prelude { mapping, seq } = resend else {
        panic!("the prelude: {resend:?}");
    };
    assert_eq!(seq, pkt.seq);
    let mut out = [0u8; FIXED_HEADER_LEN + MAX_REWRITE_LEN];
    assert_eq!(
        splicer.resend_prelude_head(&mapping, &pkt, &mut out),
        Some(ExtSeq((1 << 16) + 300))
    );
    assert_eq!(out[..FIXED_HEADER_LEN], prelude_out[..FIXED_HEADER_LEN]);
    assert!(matches!(
        log.resolve(&splicer, SeqNo(301)),
        Some(Resend::Packet { seq, .. }) if seq == pkt.seq
    ));
}

#[test]
fn a_source_restart_is_a_mapping_of_its_own() {
    let mut splicer = Splicer::new(Ssrc(0xfeed), 97, SeqNo(7), RtpTime(0));
    let mut log = MappingLog::new();
    let mut sent = Sent::default();
    let mut a = Feed::new(1, 0xa, 10);
    let mut now = Nanos::ZERO;
    for _ in 0..20 {
        now = now.saturating_add(Nanos::from_millis(10));
        let pkt = a.next(now);
        send(&mut splicer, &mut log, &mut sent, pkt, now);
    }
    // The sender restarts with a new SSRC and sequence: the ingress makes it a new epoch once
    // its probation ends (the packets it held come out in order).
    let mut restarted = Vp8Stream::new(Ssrc(0xa2), 40_000, 1, VideoShape::default());
    let mut epochs = std::collections::BTreeSet::new();
    for _ in 0..40 {
        now = now.saturating_add(Nanos::from_millis(100));
        let mut buf = Vec::new();
        restarted.next_packet(&mut buf);
        let mut out = Vec::new();
        if let Ok(Some(pkt)) = a.ingress.accept(&buf, None, now) {
            out.push((pkt, buf.clone()));
        }
        while let Some(pkt) = a.ingress.next_released() {
            out.push((pkt, a.ingress.released_bytes().to_vec()));
        }
        for p in out {
            epochs.insert(p.0.epoch);
            send(&mut splicer, &mut log, &mut sent, p, now);
        }
    }
    assert!(
        epochs.contains(&1),
        "the restart became epoch 1: {epochs:?}"
    );
    assert_eq!(log.len, 2, "one mapping per epoch");
    assert_every_number_resends_as_sent(&splicer, &log, &sent);
}

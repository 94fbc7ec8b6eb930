//! Ingress sequencing: each row is a packet (SSRC, seq, ts, marker) and what ingress must say.

use super::*;
use crate::synth::write_rtp;
use crate::types::{RtpTime, SeqNo};

#[derive(Debug, PartialEq, Eq)]
enum Out {
    /// Accepted with this epoch and extended seq relative to the first packet.
    Ok {
        epoch: u32,
        seq: i64,
    },
    /// Held for a stream on probation.
    Held,
    /// Completed a new stream's probation: these packets (epoch, relative seq) came out, in
    /// order, the last being this one.
    Released(Vec<(u32, i64)>),
    Drop(DropReason),
}

fn ingress() -> SourceIngress {
    SourceIngress::new(SourceId(9), Codec::Opus, 48_000)
}

fn rtp(ssrc: u32, pt: u8, seq: u16, ts: u32, marker: bool) -> Vec<u8> {
    let mut buf = Vec::new();
    write_rtp(
        &mut buf,
        Ssrc(ssrc),
        pt,
        SeqNo(seq),
        RtpTime(ts),
        marker,
        &[0x78, 1, 2],
    );
    buf
}

fn offer(
    ing: &mut SourceIngress,
    ssrc: u32,
    seq: u16,
    ts: u32,
    marker: bool,
) -> Result<RxPacket, DropReason> {
    let got = ing.accept(&rtp(ssrc, 111, seq, ts, marker), None, Nanos::ZERO)?;
    Ok(got.expect("one stream: nothing held"))
}

/// Offer a packet at `at_ms` and collect everything that comes out.
fn offer_at(ing: &mut SourceIngress, ssrc: u32, pt: u8, seq: u16, at_ms: u64) -> Vec<RxPacket> {
    let mut out = Vec::new();
    let buf = rtp(ssrc, pt, seq, 0, false);
    let _ = ing.ingest(&buf, None, Nanos::from_millis(at_ms), |p, _, _| {
        out.push(*p)
    });
    out
}

/// Each row: (SSRC, seq, arrival in ms) and what ingress must say. Checks conservation after
/// every row.
fn run_timed(ing: &mut SourceIngress, rows: &[((u32, u16, u64), Out)]) {
    let mut base: Option<u64> = None;
    for (n, &((ssrc, seq, at_ms), ref want)) in rows.iter().enumerate() {
        let buf = rtp(ssrc, 111, seq, 0, false);
        let mut out = Vec::new();
        let result = ing.ingest(&buf, None, Nanos::from_millis(at_ms), |p, _, _| {
            out.push(*p);
        });
        let mut rel = |p: &RxPacket| {
            let b = *base.get_or_insert(p.seq.0);
            (p.epoch, p.seq.0 as i64 - b as i64)
        };
        let got = match result {
            Err(r) => Out::Drop(r),
            Ok(0) => Out::Held,
            // With a probation of two packets, a release is at least two.
            Ok(1) => {
                let (epoch, seq) = rel(&out[0]);
                Out::Ok { epoch, seq }
            }
            Ok(_) => Out::Released(out.iter().map(&mut rel).collect()),
        };
        assert_eq!(
            &got, want,
            "row {n}: ssrc {ssrc:#x} seq {seq} at {at_ms} ms"
        );
        let c = ing.counters();
        assert_eq!(
            c.packets,
            c.accepted + c.drops.total() + c.held,
            "row {n}: every packet is accepted, dropped or held"
        );
    }
}

fn run(rows: &[((u32, u16), Out)]) -> SourceIngress {
    let mut ing = ingress();
    let timed: Vec<_> = rows
        .iter()
        .map(|((ssrc, seq), out)| {
            let out = match out {
                Out::Ok { epoch, seq } => Out::Ok {
                    epoch: *epoch,
                    seq: *seq,
                },
                Out::Drop(r) => Out::Drop(*r),
                _ => unreachable!("untimed rows neither hold nor release"),
            };
            ((*ssrc, *seq, 0), out)
        })
        .collect();
    run_timed(&mut ing, &timed);
    ing
}

use Out::Drop as D;
use Out::Held as H;

#[test]
fn in_order_wrap_loss_and_reorder() {
    run(&[
        ((1, 65534), Out::Ok { epoch: 0, seq: 0 }),
        ((1, 65535), Out::Ok { epoch: 0, seq: 1 }),
        ((1, 1), Out::Ok { epoch: 0, seq: 3 }), // 0 missing
        ((1, 0), Out::Ok { epoch: 0, seq: 2 }), // arrives late across the wrap
        ((1, 2), Out::Ok { epoch: 0, seq: 4 }),
    ]);
}

#[test]
fn duplicates_are_dropped_in_and_behind_the_head() {
    let ing = run(&[
        ((1, 100), Out::Ok { epoch: 0, seq: 0 }),
        ((1, 100), D(DropReason::Duplicate)),
        ((1, 102), Out::Ok { epoch: 0, seq: 2 }),
        ((1, 101), Out::Ok { epoch: 0, seq: 1 }),
        ((1, 101), D(DropReason::Duplicate)),
        ((1, 100), D(DropReason::Duplicate)),
    ]);
    let c = ing.counters();
    assert_eq!(
        (c.packets, c.accepted, c.drops.get(DropReason::Duplicate)),
        (6, 3, 3)
    );
}

#[test]
fn window_slots_are_reused_after_the_head_moves_on() {
    let mut ing = ingress();
    offer(&mut ing, 1, 0, 0, false).unwrap();
    // Jump a full window ahead (still within MAX_DROPOUT): slot of seq 0 is reused by 1024.
    let p = offer(&mut ing, 1, 1024, 0, false).unwrap();
    // 1 is 1023 behind the head: inside the window and never seen.
    let late = offer(&mut ing, 1, 1, 0, false).unwrap();
    assert_eq!(p.seq.0 - late.seq.0, 1023);
    assert_eq!(offer(&mut ing, 1, 1, 0, false), Err(DropReason::Duplicate));
}

/// Behind the reorder window but within MAX_MISORDER: a straggler. Further behind: another
/// stream (the sender restarted its numbering), taken once it is in sequence and the old
/// numbering has stopped.
#[test]
fn far_behind_is_too_old_or_a_new_stream_once_the_old_numbering_stops() {
    let mut ing = ingress();
    run_timed(
        &mut ing,
        &[
            ((1, 5000, 0), Out::Ok { epoch: 0, seq: 0 }),
            ((1, 3000, 1), D(DropReason::TooOld)), // behind the window, within misorder
            ((1, 10, 2), H),                       // 4990 behind: another stream
            ((1, 5001, 3), Out::Ok { epoch: 0, seq: 1 }), // the old numbering goes on
            ((1, 11, 4), H), // in sequence, but the old numbering is not silent
            (
                (1, 12, 303),
                Out::Released(vec![(1, -4990), (1, -4989), (1, -4988)]),
            ),
            (
                (1, 13, 304),
                Out::Ok {
                    epoch: 1,
                    seq: -4987,
                },
            ),
            ((1, 4999, 305), D(DropReason::StaleAfterRestart)), // the old numbering's straggler
        ],
    );
    assert_eq!(ing.counters().restarts, 1);
}

/// The issue's own case: a jump beyond MAX_DROPOUT restarted the stream at once, so one stray
/// datagram from the sender's address cut the real stream off for good.
#[test]
fn a_forward_jump_is_held_until_it_proves_itself() {
    let mut ing = ingress();
    run_timed(
        &mut ing,
        &[
            ((1, 10, 0), Out::Ok { epoch: 0, seq: 0 }),
            ((1, 20_000, 1), H), // stray, far ahead
            ((1, 11, 2), Out::Ok { epoch: 0, seq: 1 }),
            ((1, 12, 400), Out::Ok { epoch: 0, seq: 2 }), // the stray was given up (silent)
            ((1, 20_001, 800), H),                        // numbering jumps for real
            (
                (1, 20_002, 820),
                Out::Released(vec![(1, 19_991), (1, 19_992)]),
            ),
            (
                (1, 20_003, 840),
                Out::Ok {
                    epoch: 1,
                    seq: 19_993,
                },
            ),
        ],
    );
    let c = ing.counters();
    assert_eq!(c.drops.get(DropReason::OtherSsrc), 1, "the stray");
    assert_eq!((c.restarts, c.held), (1, 0));
}

#[test]
fn a_new_ssrc_is_held_until_the_old_one_is_silent_then_released_from_its_first_packet() {
    let mut ing = ingress();
    run_timed(
        &mut ing,
        &[
            ((1, 10, 0), Out::Ok { epoch: 0, seq: 0 }),
            ((1, 11, 20), Out::Ok { epoch: 0, seq: 1 }),
            ((2, 5, 40), H),
            ((2, 6, 60), H),
            ((2, 7, 320), Out::Released(vec![(1, -5), (1, -4), (1, -3)])),
            ((1, 9, 330), D(DropReason::StaleAfterRestart)), // the old SSRC's straggler
            ((2, 8, 340), Out::Ok { epoch: 1, seq: -2 }),
        ],
    );
    assert_eq!(ing.counters().restarts, 1);
    assert_eq!(ing.ssrc(), Some(Ssrc(2)));
}

/// Measured before this rule: one stray datagram at index 1000 of a 2,252-packet capture left
/// subscribers with 1,000 packets.
#[test]
fn one_stray_datagram_never_takes_the_source() {
    let mut ing = ingress();
    let mut delivered = 0;
    for i in 0..2_252u16 {
        let at = i as u64 * 20;
        delivered += offer_at(&mut ing, 1, 111, 1_000 + i, at).len();
        if i == 1000 {
            assert!(offer_at(&mut ing, 0xbad, 111, 7, at).is_empty());
        }
    }
    let c = ing.counters();
    assert_eq!(delivered, 2_252, "every packet of the real stream");
    assert_eq!(c.drops.get(DropReason::OtherSsrc), 1);
    assert_eq!((c.restarts, c.held), (0, 0));
}

/// Measured before this rule: an RTX-like second SSRC (PT 97, one packet per 20) left
/// subscribers with 220 of 2,252 packets.
#[test]
fn a_multiplexed_retransmission_stream_never_takes_the_source() {
    for rtx in [None, Some(97)] {
        let config = IngressConfig {
            rtx_payload_type: rtx,
            ..IngressConfig::default()
        };
        let mut ing = SourceIngress::with_config(SourceId(9), Codec::Opus, 48_000, config);
        let mut delivered = 0;
        for i in 0..2_252u16 {
            delivered += offer_at(&mut ing, 1, 111, i, i as u64 * 20).len();
            if i % 20 == 0 {
                assert!(offer_at(&mut ing, 2, 97, 500 + i / 20, i as u64 * 20).is_empty());
            }
        }
        let c = ing.counters();
        assert_eq!(delivered, 2_252, "rtx {rtx:?}");
        let reason = match rtx {
            Some(_) => DropReason::Rtx,
            None => DropReason::OtherPayloadType,
        };
        assert_eq!(c.drops.get(reason), 113, "rtx {rtx:?}");
        assert_eq!(c.restarts, 0);
    }
}

/// A second stream with the source's own payload type (FEC, or a second encoder sending to the
/// same port) is held while it lasts, never taken while the first sends, and its packets are
/// dropped as `other_ssrc`, a bounded number held at any time.
#[test]
fn a_multiplexed_stream_of_the_same_payload_type_is_dropped_not_taken() {
    let config = IngressConfig {
        hold_packets: 8,
        ..IngressConfig::default()
    };
    let mut ing = SourceIngress::with_config(SourceId(9), Codec::Opus, 48_000, config);
    let mut delivered = 0;
    for i in 0..1_000u16 {
        let at = i as u64 * 20;
        delivered += offer_at(&mut ing, 1, 111, i, at).len();
        assert!(offer_at(&mut ing, 2, 111, 40_000 + i, at + 1).is_empty());
        assert!(ing.counters().held <= 8);
    }
    let c = ing.counters();
    assert_eq!(delivered, 1_000);
    assert_eq!(c.drops.get(DropReason::OtherSsrc) + c.held, 1_000);
    assert_eq!(c.restarts, 0);
}

/// Primary and backup encoders: A fails over to B and back to A, which resumes its own
/// numbering. Each takeover waits for the other to fall silent, and loses nothing.
#[test]
fn failover_a_to_b_and_back_to_a() {
    let mut ing = ingress();
    let mut got = Vec::new();
    let mut at = 0;
    let mut send = |ing: &mut SourceIngress, ssrc: u32, seq: u16, at: u64| {
        got.extend(
            offer_at(ing, ssrc, 111, seq, at)
                .into_iter()
                .map(|p| (p.header.ssrc.0, p.header.seq.0, p.epoch)),
        );
    };
    for seq in 0..50 {
        send(&mut ing, 0xa, seq, at);
        at += 20;
    }
    at += 500; // A's network fails; B starts
    for seq in 1000..1050 {
        send(&mut ing, 0xb, seq, at);
        at += 20;
    }
    // A comes back 100 ms after B stopped, its numbering continuing, within the time the old
    // stream is remembered: its packets are ahead of where it stopped, so they are a new stream.
    at += 100;
    for seq in 50..100 {
        send(&mut ing, 0xa, seq, at);
        at += 20;
    }
    let want: Vec<(u32, u16, u32)> = (0..50)
        .map(|s| (0xa, s, 0))
        .chain((1000..1050).map(|s| (0xb, s, 1)))
        .chain((50..100).map(|s| (0xa, s, 2)))
        .collect();
    assert_eq!(got, want, "every packet, in order, three epochs");
    assert_eq!(ing.counters().restarts, 2);
}

#[test]
fn the_previous_ssrc_is_remembered_only_for_a_bounded_time() {
    let mut ing = ingress();
    run_timed(
        &mut ing,
        &[
            ((1, 100, 0), Out::Ok { epoch: 0, seq: 0 }),
            ((2, 500, 400), H),
            ((2, 501, 420), Out::Released(vec![(1, 400), (1, 401)])),
            ((1, 99, 430), D(DropReason::StaleAfterRestart)),
            // After PREVIOUS_STREAM_MEMORY, a packet of the old SSRC is a new stream like any
            // other (held; not taken while stream 2 sends).
            ((2, 502, 1_400), Out::Ok { epoch: 1, seq: 402 }),
            ((1, 98, 1_430), H),
            ((2, 503, 1_440), Out::Ok { epoch: 1, seq: 403 }),
        ],
    );
}

#[test]
fn the_payload_type_is_learned_from_the_first_packet_or_configured() {
    let mut ing = ingress();
    assert_eq!(offer_at(&mut ing, 1, 111, 1, 0).len(), 1);
    assert!(offer_at(&mut ing, 1, 100, 2, 10).is_empty());
    assert_eq!(ing.counters().drops.get(DropReason::OtherPayloadType), 1);
    assert_eq!(
        offer_at(&mut ing, 1, 111, 2, 20).len(),
        1,
        "nothing restarted"
    );
    // Idle for longer than `idle`: a restarted encoder may come back with another type.
    assert!(offer_at(&mut ing, 3, 100, 50, 3_000).is_empty(), "held");
    assert_eq!(offer_at(&mut ing, 3, 100, 51, 3_020).len(), 2);
    assert_eq!(ing.payload_type(Nanos::from_millis(3_020)), Some(100));

    let config = IngressConfig {
        payload_type: Some(111),
        ..IngressConfig::default()
    };
    let mut ing = SourceIngress::with_config(SourceId(9), Codec::Opus, 48_000, config);
    assert!(offer_at(&mut ing, 1, 100, 1, 0).is_empty());
    assert_eq!(offer_at(&mut ing, 1, 111, 2, 10).len(), 1);
    assert!(
        offer_at(&mut ing, 3, 100, 50, 9_000).is_empty(),
        "configured: never"
    );
    assert_eq!(ing.counters().drops.get(DropReason::OtherPayloadType), 2);
}

#[test]
fn a_full_hold_gives_up_its_oldest_packets_and_releases_the_rest() {
    let config = IngressConfig {
        hold_packets: 4,
        ..IngressConfig::default()
    };
    let mut ing = SourceIngress::with_config(SourceId(9), Codec::Opus, 48_000, config);
    assert_eq!(offer_at(&mut ing, 1, 111, 1, 0).len(), 1);
    for (i, seq) in (100..105).enumerate() {
        assert!(offer_at(&mut ing, 2, 111, seq, 10 + i as u64).is_empty());
    }
    assert_eq!(ing.counters().drops.get(DropReason::OtherSsrc), 1);
    let released: Vec<u16> = offer_at(&mut ing, 2, 111, 105, 310)
        .iter()
        .map(|p| p.header.seq.0)
        .collect();
    assert_eq!(released, [102, 103, 104, 105], "the newest held, in order");
    let c = ing.counters();
    assert_eq!(c.packets, c.accepted + c.drops.total() + c.held);
}

/// A stream on probation that stops is given up when time passes, even with no packet.
#[test]
fn a_silent_probation_is_given_up_by_the_timer() {
    let mut ing = ingress();
    offer_at(&mut ing, 1, 111, 1, 0);
    offer_at(&mut ing, 2, 111, 9, 10);
    assert_eq!(ing.counters().held, 1);
    ing.handle_timeout(Nanos::from_millis(100));
    assert_eq!(ing.counters().held, 1, "not yet");
    ing.handle_timeout(Nanos::from_millis(310));
    let c = ing.counters();
    assert_eq!((c.held, c.drops.get(DropReason::OtherSsrc)), (0, 1));
}

#[test]
fn malformed_packets_are_counted_not_fatal() {
    let mut ing = ingress();
    assert_eq!(
        ing.accept(&[0x80, 0, 0], None, Nanos::ZERO),
        Err(DropReason::Malformed)
    );
    let mut empty_opus = Vec::new();
    write_rtp(
        &mut empty_opus,
        Ssrc(1),
        111,
        SeqNo(1),
        RtpTime(0),
        false,
        &[],
    );
    assert_eq!(
        ing.accept(&empty_opus, None, Nanos::ZERO),
        Err(DropReason::MalformedPayload)
    );
    let c = ing.counters();
    assert_eq!((c.packets, c.accepted, c.drops.total()), (2, 0, 2));
    // A malformed packet does not disturb sequencing.
    assert!(offer(&mut ing, 1, 1, 0, false).is_ok());
}

#[test]
fn timestamps_extend_across_the_32_bit_wrap_both_ways() {
    let mut ing = ingress();
    let a = offer(&mut ing, 1, 1, u32::MAX - 10, false).unwrap();
    let b = offer(&mut ing, 1, 2, 20, false).unwrap();
    let late = offer(&mut ing, 1, 0, u32::MAX - 500, false).unwrap();
    assert_eq!(b.timestamp.0 - a.timestamp.0, 31);
    assert_eq!(a.timestamp.0 - late.timestamp.0, 490);
}

#[test]
fn continuation_of_an_unfinished_frame_is_not_a_frame_start() {
    // H.264-like case made codec-neutral: an Opus packet always claims frame start, but one that
    // follows an unmarked packet with the same timestamp continues that frame.
    let mut ing = ingress();
    let first = offer(&mut ing, 1, 1, 960, false).unwrap();
    let cont = offer(&mut ing, 1, 2, 960, true).unwrap();
    let next = offer(&mut ing, 1, 3, 1920, true).unwrap();
    let after_marker = offer(&mut ing, 1, 4, 1920, false);
    assert!(first.payload.frame_start);
    assert!(!cont.payload.frame_start);
    assert!(next.payload.frame_start);
    // Same timestamp but the previous packet had the marker bit: a new frame may start.
    assert!(after_marker.unwrap().payload.frame_start);
}

/// H.264 as x264 (zerolatency) and rtph264pay send a keyframe: AUD alone, then SPS, PPS, SEI,
/// repeated SPS and PPS, then the IDR slices. The first SPS is where a decoder can start.
#[test]
fn h264_access_unit_opened_by_an_aud_switches_at_its_first_sps() {
    let mut ing = SourceIngress::new(SourceId(2), Codec::H264, 90_000);
    let aud = [0x09, 0x10];
    let sps = [0x67, 0x42, 0x00, 0x1e];
    let pps = [0x68, 0xce, 0x31];
    let sei = [0x06, 0x05, 0xff];
    let idr = [0x65, 0x88, 0x84];
    let p_aud = [0x09, 0x30];
    let p_slice = [0x41, 0x9a, 0x20];
    let packets: [(&[u8], u32, bool, bool); 11] = [
        // (payload, ts, marker, switch point expected)
        (&aud, 3000, false, false),
        (&sps, 3000, false, true),
        (&pps, 3000, false, false),
        (&sei, 3000, false, false),
        (&sps, 3000, false, false),
        (&pps, 3000, false, false),
        (&idr, 3000, true, false),
        (&p_aud, 6000, false, false),
        (&p_slice, 6000, true, false),
        (&aud, 9000, false, false),
        (&sps, 9000, false, true),
    ];
    for (i, (payload, ts, marker, want)) in packets.into_iter().enumerate() {
        let mut buf = Vec::new();
        write_rtp(
            &mut buf,
            Ssrc(5),
            102,
            SeqNo(100 + i as u16),
            RtpTime(ts),
            marker,
            payload,
        );
        let pkt = ing.accept(&buf, None, Nanos::ZERO).unwrap().unwrap();
        assert_eq!(pkt.is_switch_point(), want, "packet {i}");
    }
}

/// Send `frames` whole frames of `stream`, the first arriving at `at_ms`, one frame per 33 ms;
/// returns `keyframe_interval()` after each keyframe's first packet.
fn send_frames(
    ing: &mut SourceIngress,
    stream: &mut crate::synth::Vp8Stream,
    frames: u64,
    at_ms: u64,
) -> Vec<Option<Nanos>> {
    let mut seen = Vec::new();
    let mut buf = Vec::new();
    let mut sent = 0;
    while sent < frames {
        buf.clear();
        let p = stream.next_packet(&mut buf);
        let now = Nanos::from_millis(at_ms + sent * 33);
        let _ = ing.ingest(&buf, None, now, |_, _, _| {});
        if p.keyframe && p.frame_start {
            seen.push(ing.keyframe_interval());
        }
        sent += u64::from(p.marker);
    }
    seen
}

/// The interval is the sender's keyframe spacing in media time: a keyframe every 3 s over 7 s of
/// frames reads 3 s, a keyframe forced 31 frames later reads 31/30 s, and a restarted stream
/// (another epoch, its own timestamps) keeps the last value until it has two keyframes.
#[test]
fn keyframe_interval_is_the_media_time_between_the_last_two_keyframes() {
    use crate::synth::{VideoShape, Vp8Stream};
    let shape = VideoShape {
        gop: 90,
        ..VideoShape::default()
    };
    let mut ing = SourceIngress::new(SourceId(3), Codec::Vp8, 90_000);
    // Timestamps cross the 32-bit wrap between the first two keyframes.
    let mut stream = Vp8Stream::new(Ssrc(7), 65_000, u32::MAX - 90_000, shape);
    let three = Some(Nanos(3_000_000_000));
    // 211 frames (7 s): keyframes at frames 0, 90 and 180.
    assert_eq!(
        send_frames(&mut ing, &mut stream, 211, 0),
        [None, three, three]
    );
    stream.force_keyframe();
    let forced = Some(Nanos(31 * 1_000_000_000 / 30));
    assert_eq!(send_frames(&mut ing, &mut stream, 1, 7_000), [forced]);
    // The sender restarts (new SSRC, far-off timestamps) after a silence.
    let mut restarted = Vp8Stream::new(Ssrc(8), 100, 12_345, shape);
    let seen = send_frames(&mut ing, &mut restarted, 100, 9_000);
    assert_eq!(ing.counters().restarts, 1);
    assert_eq!(seen, [forced, three]);
    assert_eq!(ing.counters().keyframes, 6);
}

/// Audio has no keyframe interval: every Opus packet is a switch point, so one would read as
/// the packet time (20 ms), which no operator means by it.
#[test]
fn audio_has_no_keyframe_interval() {
    let mut ing = ingress();
    for seq in 0..50u16 {
        let pkt = rtp(0x0abc, 111, seq, u32::from(seq) * 960, true);
        let _ = ing.ingest(
            &pkt,
            None,
            Nanos::from_millis(u64::from(seq) * 20),
            |_, _, _| {},
        );
    }
    assert_eq!(ing.counters().accepted, 50);
    assert!(
        ing.counters().keyframes > 1,
        "Opus packets are switch points"
    );
    assert_eq!(ing.keyframe_interval(), None);
}

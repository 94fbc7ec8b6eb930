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
    Drop(DropReason),
}

fn ingress() -> SourceIngress {
    SourceIngress::new(SourceId(9), Codec::Opus, 48_000)
}

fn offer(
    ing: &mut SourceIngress,
    ssrc: u32,
    seq: u16,
    ts: u32,
    marker: bool,
) -> Result<RxPacket, DropReason> {
    let mut buf = Vec::new();
    write_rtp(
        &mut buf,
        Ssrc(ssrc),
        111,
        SeqNo(seq),
        RtpTime(ts),
        marker,
        &[0x78, 1, 2],
    );
    ing.accept(&buf, Nanos::ZERO)
}

fn run(rows: &[((u32, u16), Out)]) -> SourceIngress {
    let mut ing = ingress();
    let mut base: Option<u64> = None;
    for (n, &((ssrc, seq), ref want)) in rows.iter().enumerate() {
        let got = match offer(&mut ing, ssrc, seq, 0, false) {
            Ok(p) => {
                let b = *base.get_or_insert(p.seq.0);
                Out::Ok {
                    epoch: p.epoch,
                    seq: p.seq.0 as i64 - b as i64,
                }
            }
            Err(r) => Out::Drop(r),
        };
        assert_eq!(&got, want, "row {n}: ssrc {ssrc:#x} seq {seq}");
    }
    ing
}

use Out::Drop as D;

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

#[test]
fn far_behind_is_too_old_unless_confirmed_as_a_restart() {
    run(&[
        ((1, 5000), Out::Ok { epoch: 0, seq: 0 }),
        ((1, 5000 - 2000), D(DropReason::TooOld)), // behind the window, within misorder
        ((1, 5000 - 2000), D(DropReason::TooOld)),
        ((1, 10), D(DropReason::TooOld)), // 4990 behind: on probation
        (
            (1, 11),
            Out::Ok {
                epoch: 1,
                seq: -4989,
            },
        ), // confirmed: a restart
        (
            (1, 12),
            Out::Ok {
                epoch: 1,
                seq: -4988,
            },
        ),
    ]);
}

#[test]
fn big_forward_jump_and_new_ssrc_are_restarts() {
    let ing = run(&[
        ((1, 10), Out::Ok { epoch: 0, seq: 0 }),
        (
            (1, 20_000),
            Out::Ok {
                epoch: 1,
                seq: 19_990,
            },
        ),
        ((2, 5), Out::Ok { epoch: 2, seq: -5 }),
        ((1, 20_001), D(DropReason::StaleAfterRestart)), // straggler of the old SSRC
        ((2, 6), Out::Ok { epoch: 2, seq: -4 }),
    ]);
    assert_eq!(ing.counters().restarts, 2);
    assert_eq!(ing.ssrc(), Some(Ssrc(2)));
}

#[test]
fn malformed_packets_are_counted_not_fatal() {
    let mut ing = ingress();
    assert_eq!(
        ing.accept(&[0x80, 0, 0], Nanos::ZERO),
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
        ing.accept(&empty_opus, Nanos::ZERO),
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
        let pkt = ing.accept(&buf, Nanos::ZERO).unwrap();
        assert_eq!(pkt.is_switch_point(), want, "packet {i}");
    }
}

//! Table-driven splicer cases: each row is one input packet and what must come out.

use super::*;
use crate::codec::{PayloadInfo, PictureIdField, Tl0PicIdxField};
use crate::rtp::RtpHeader;
use crate::synth::write_rtp;

const A: SourceId = SourceId(1);
const B: SourceId = SourceId(2);

/// One input packet: source, epoch, extended seq and ts, switch point, arrival in ms.
#[derive(Clone, Copy)]
struct In {
    src: SourceId,
    epoch: u32,
    seq: u64,
    ts: u64,
    key: bool,
    at_ms: u64,
}

fn inp(src: SourceId, seq: u64, ts: u64, key: bool, at_ms: u64) -> In {
    In {
        src,
        epoch: 0,
        seq,
        ts,
        key,
        at_ms,
    }
}

type Expect = Result<(u16, u32), DropReason>;

fn packet(i: In, payload: PayloadInfo, body: &[u8]) -> (RxPacket, Vec<u8>) {
    let mut buf = Vec::new();
    write_rtp(
        &mut buf,
        Ssrc(0x5eed),
        100,
        SeqNo(i.seq as u16),
        RtpTime(i.ts as u32),
        false,
        body,
    );
    let header = RtpHeader::parse(&buf).unwrap();
    let pkt = RxPacket {
        source: i.src,
        epoch: i.epoch,
        seq: ExtSeq(i.seq),
        timestamp: ExtTime(i.ts),
        clock_rate: 90_000,
        header,
        payload,
        received_at: Nanos::from_millis(i.at_ms),
        prelude: None,
    };
    (pkt, buf)
}

fn run(splicer: &mut Splicer, rows: &[(In, Expect)]) {
    for (n, &(i, want)) in rows.iter().enumerate() {
        let info = PayloadInfo {
            frame_start: i.key,
            keyframe: i.key,
            ..PayloadInfo::default()
        };
        let (pkt, buf) = packet(i, info, &[0xab; 20]);
        let mut out = [0u8; 20];
        let got = splicer
            .splice(&pkt, &buf, Nanos::from_millis(i.at_ms), &mut out)
            .map(|()| {
                let h = RtpHeader::parse(&out[..12]).unwrap();
                assert_eq!(h.ssrc, Ssrc(0xfeed), "row {n}: output SSRC is fixed");
                assert_eq!(h.payload_type, 97, "row {n}: output PT is the track's");
                (h.seq.0, h.timestamp.0)
            });
        assert_eq!(got, want, "row {n}: input seq {} ts {}", i.seq, i.ts);
    }
}

fn splicer(first_seq: u16, first_ts: u32) -> Splicer {
    Splicer::new(Ssrc(0xfeed), 97, SeqNo(first_seq), RtpTime(first_ts))
}

#[test]
fn waits_for_a_switch_point_then_maps_continuously() {
    let mut s = splicer(1000, 5000);
    run(
        &mut s,
        &[
            (inp(A, 10, 900, false, 0), Err(DropReason::WaitingKeyframe)),
            (inp(A, 11, 3900, true, 33), Ok((1000, 5000))),
            (inp(A, 12, 3900, false, 34), Ok((1001, 5000))),
            (inp(A, 13, 6900, false, 66), Ok((1002, 8000))),
        ],
    );
    assert_eq!(s.anchored_to(), Some((A, 0)));
}

#[test]
fn sequence_wraps_at_65535() {
    let mut s = splicer(65534, 0);
    run(
        &mut s,
        &[
            (inp(A, 100, 0, true, 0), Ok((65534, 0))),
            (inp(A, 101, 0, false, 1), Ok((65535, 0))),
            (inp(A, 102, 0, false, 2), Ok((0, 0))),
            (inp(A, 103, 0, false, 3), Ok((1, 0))),
        ],
    );
    assert_eq!(s.last_seq(), Some(ExtSeq((1 << 16) + 65534 + 3)));
}

#[test]
fn input_sequence_wrap_is_invisible_in_extended_form() {
    let mut s = splicer(7, 0);
    let wrap = (1 << 16) + 65535;
    run(
        &mut s,
        &[
            (inp(A, wrap, 0, true, 0), Ok((7, 0))),
            (inp(A, wrap + 1, 0, false, 1), Ok((8, 0))),
        ],
    );
}

#[test]
fn timestamp_wraps_at_2_pow_32() {
    let mut s = splicer(0, u32::MAX - 1000);
    let base = 1u64 << 40;
    run(
        &mut s,
        &[
            (inp(A, 1, base, true, 0), Ok((0, u32::MAX - 1000))),
            (inp(A, 2, base + 1000, false, 11), Ok((1, u32::MAX))),
            (inp(A, 3, base + 4000, false, 44), Ok((2, 2999))),
        ],
    );
}

#[test]
fn loss_shows_as_a_gap_and_reordering_keeps_relative_order() {
    let mut s = splicer(500, 0);
    run(
        &mut s,
        &[
            (inp(A, 10, 0, true, 0), Ok((500, 0))),
            (inp(A, 13, 3000, false, 30), Ok((503, 3000))), // 11 and 12 not yet here
            (inp(A, 12, 3000, false, 31), Ok((502, 3000))), // late: fills its own hole
            (inp(A, 14, 6000, false, 60), Ok((504, 6000))), // 11 lost: gap stays
        ],
    );
    assert_eq!(s.last_seq().map(|x| x.wire()), Some(SeqNo(504)));
    assert_eq!(s.last_timestamp().map(|x| x.wire()), Some(RtpTime(6000)));
}

#[test]
fn switch_continues_numbering_and_steps_timestamp_by_wall_clock() {
    let mut s = splicer(100, 10_000);
    run(
        &mut s,
        &[
            (inp(A, 50, 0, true, 0), Ok((100, 10_000))),
            (inp(A, 51, 3000, false, 33), Ok((101, 13_000))),
            // B's first packets reach the splicer only once the shard switched it; the first is a
            // switch point 40 ms after the last packet sent: 40 ms at 90 kHz is 3600 ticks.
            (inp(B, 9000, 777_000, true, 73), Ok((102, 16_600))),
            (inp(B, 9001, 777_000, false, 74), Ok((103, 16_600))),
            // A packet of B from before the switch point: stale, never sent.
            (
                inp(B, 8999, 774_000, false, 75),
                Err(DropReason::StaleAfterSwitch),
            ),
            (inp(B, 9002, 780_000, false, 106), Ok((104, 19_600))),
        ],
    );
    assert_eq!(s.anchored_to(), Some((B, 0)));
}

#[test]
fn switch_steps_at_least_one_frame_interval() {
    let mut s = splicer(0, 0);
    run(
        &mut s,
        &[
            (inp(A, 1, 0, true, 0), Ok((0, 0))),
            (inp(A, 2, 3000, false, 33), Ok((1, 3000))),
            // B's keyframe 5 ms after A's last packet: stepping 5 ms would put two frames in one
            // 30 fps slot, so the step is A's frame interval.
            (inp(B, 9, 0, true, 38), Ok((2, 6000))),
            (inp(B, 10, 3000, false, 71), Ok((3, 9000))),
            // Back to A 100 ms later: the wall clock is the larger step.
            (inp(A, 20, 900_000, true, 171), Ok((4, 9000 + 9000))),
        ],
    );
}

#[test]
fn switch_in_the_same_millisecond_still_advances_timestamp() {
    let mut s = splicer(0, 0);
    run(
        &mut s,
        &[
            (inp(A, 1, 0, true, 5), Ok((0, 0))),
            (inp(B, 1, 0, true, 5), Ok((1, 1))),
        ],
    );
}

#[test]
fn restart_is_a_new_epoch_that_waits_for_a_keyframe() {
    let mut s = splicer(0, 0);
    let restarted = |seq, ts, key, at| In {
        epoch: 1,
        ..inp(A, seq, ts, key, at)
    };
    run(
        &mut s,
        &[
            (inp(A, 10, 0, true, 0), Ok((0, 0))),
            (inp(A, 11, 0, false, 1), Ok((1, 0))),
            (
                restarted(40_000, 5, false, 100),
                Err(DropReason::WaitingKeyframe),
            ),
            (restarted(40_001, 3005, true, 133), Ok((2, 132 * 90))),
            (restarted(40_002, 3005, false, 134), Ok((3, 132 * 90))),
        ],
    );
    assert_eq!(s.anchored_to(), Some((A, 1)));
}

#[test]
fn detach_keeps_numbering_and_needs_a_new_switch_point() {
    let mut s = splicer(0, 0);
    run(&mut s, &[(inp(A, 10, 0, true, 0), Ok((0, 0)))]);
    s.detach();
    run(
        &mut s,
        &[
            (inp(A, 11, 0, false, 1), Err(DropReason::WaitingKeyframe)),
            (inp(A, 12, 3000, true, 34), Ok((1, 34 * 90))),
        ],
    );
}

fn vp8_info(key: bool, picture_id: u16, wide: bool, tl0: u8) -> PayloadInfo {
    PayloadInfo {
        frame_start: key,
        keyframe: key,
        picture_id: Some(PictureIdField {
            offset: 2,
            wide,
            value: picture_id,
        }),
        tl0picidx: Some(Tl0PicIdxField {
            offset: if wide { 4 } else { 3 },
            value: tl0,
        }),
        parameter_sets: false,
    }
}

/// Splice one VP8-described packet and return (picture ID, TL0PICIDX) as written.
fn splice_vp8(s: &mut Splicer, i: In, info: PayloadInfo) -> (u16, u8) {
    let wide = info.picture_id.unwrap().wide;
    let mut body = vec![0x90, 0xc0];
    let pid = info.picture_id.unwrap().value;
    if wide {
        body.extend_from_slice(&[0x80 | (pid >> 8) as u8, pid as u8]);
    } else {
        body.push(pid as u8);
    }
    body.push(info.tl0picidx.unwrap().value);
    body.extend_from_slice(&[0x10, 0, 0, 0x9d, 0x01, 0x2a]);
    let (pkt, buf) = packet(i, info, &body);
    let mut out = [0u8; 20];
    s.splice(&pkt, &buf, Nanos::from_millis(i.at_ms), &mut out)
        .unwrap();
    let prefix = &out[12..];
    assert_eq!(&prefix[..2], &body[..2], "descriptor flags are kept");
    let tl0_at = info.tl0picidx.unwrap().offset as usize;
    if wide {
        assert_eq!(prefix[2] & 0x80, 0x80, "M bit kept");
        (
            u16::from_be_bytes([prefix[2] & 0x7f, prefix[3]]),
            prefix[tl0_at],
        )
    } else {
        (prefix[2] as u16, prefix[tl0_at])
    }
}

#[test]
fn vp8_picture_id_and_tl0picidx_continue_across_a_switch() {
    let mut s = splicer(0, 0);
    assert_eq!(
        splice_vp8(
            &mut s,
            inp(A, 1, 0, true, 0),
            vp8_info(true, 32766, true, 254)
        ),
        (32766, 254)
    );
    assert_eq!(
        splice_vp8(
            &mut s,
            inp(A, 2, 3000, false, 33),
            vp8_info(false, 32767, true, 255)
        ),
        (32767, 255)
    );
    // Switch to B, whose picture IDs are elsewhere: output continues at 0 (15-bit wrap) and 0.
    assert_eq!(
        splice_vp8(
            &mut s,
            inp(B, 7, 90, true, 66),
            vp8_info(true, 1200, true, 17)
        ),
        (0, 0)
    );
    assert_eq!(
        splice_vp8(
            &mut s,
            inp(B, 8, 3090, false, 99),
            vp8_info(false, 1201, true, 18)
        ),
        (1, 1)
    );
}

#[test]
fn seven_bit_picture_ids_wrap_at_128() {
    let mut s = splicer(0, 0);
    assert_eq!(
        splice_vp8(&mut s, inp(A, 1, 0, true, 0), vp8_info(true, 126, false, 3)),
        (126, 3)
    );
    assert_eq!(
        splice_vp8(&mut s, inp(B, 5, 0, true, 33), vp8_info(true, 40, false, 9)),
        (127, 4)
    );
    assert_eq!(
        splice_vp8(
            &mut s,
            inp(B, 6, 3000, false, 66),
            vp8_info(false, 41, false, 10)
        ),
        (0, 5)
    );
}

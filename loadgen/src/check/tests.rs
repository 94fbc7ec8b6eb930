//! The checker against crafted packet sequences (one per kind of problem, with wrap-around) and
//! against streams recorded from real encoders, which must pass.

use corecast_engine::codec::parameter_sets::ParameterSets;
use corecast_engine::{Codec, Nanos};

use super::report::{What, MAX_KEPT};
use super::Checker;

const VP8_PT: u8 = 96;
/// 30 fps at 90 kHz.
const FRAME_TICKS: u32 = 3000;

fn rtp(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// VP8 payloads: a keyframe's first packet (descriptor S=1, frame tag with P=0, start code,
/// 320x240), an interframe's first packet, and any later packet of a frame.
const VP8_KEY: &[u8] = &[
    0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, 0xaa,
];
const VP8_DELTA: &[u8] = &[0x10, 0x01, 0x00, 0x00, 0xaa];
const VP8_REST: &[u8] = &[0x00, 0xaa, 0xbb];

/// One packet as sent, so a test can drop, repeat or alter it before feeding.
#[derive(Clone, Debug)]
struct Pkt {
    pt: u8,
    marker: bool,
    seq: u16,
    ts: u32,
    ssrc: u32,
    payload: Vec<u8>,
}

impl Pkt {
    fn bytes(&self) -> Vec<u8> {
        rtp(
            self.pt,
            self.marker,
            self.seq,
            self.ts,
            self.ssrc,
            &self.payload,
        )
    }
}

/// A VP8 sender: frames of `per_frame` packets, a keyframe every `gop` frames.
struct Vp8 {
    seq: u16,
    ts: u32,
    frame: u32,
    gop: u32,
}

impl Vp8 {
    fn new(seq: u16, ts: u32, gop: u32) -> Vp8 {
        Vp8 {
            seq,
            ts,
            frame: 0,
            gop,
        }
    }

    fn frame(&mut self, per_frame: usize) -> Vec<Pkt> {
        let key = self.frame.is_multiple_of(self.gop);
        let packets = (0..per_frame)
            .map(|i| {
                let payload = match (i, key) {
                    (0, true) => VP8_KEY,
                    (0, false) => VP8_DELTA,
                    _ => VP8_REST,
                };
                let p = Pkt {
                    pt: VP8_PT,
                    marker: i + 1 == per_frame,
                    seq: self.seq,
                    ts: self.ts,
                    ssrc: 0x1234_5678,
                    payload: payload.to_vec(),
                };
                self.seq = self.seq.wrapping_add(1);
                p
            })
            .collect();
        self.ts = self.ts.wrapping_add(FRAME_TICKS);
        self.frame += 1;
        packets
    }

    fn frames(&mut self, n: usize, per_frame: usize) -> Vec<Pkt> {
        (0..n).flat_map(|_| self.frame(per_frame)).collect()
    }
}

/// Feed packets 10 ms apart from t = 0; returns the checker.
fn check(codec: Option<Codec>, packets: &[Pkt]) -> Checker {
    let mut c = Checker::new(codec);
    feed(&mut c, packets, 0);
    c
}

fn feed(c: &mut Checker, packets: &[Pkt], first_ms: u64) {
    for (i, p) in packets.iter().enumerate() {
        c.feed(&p.bytes(), Nanos::from_millis(first_ms + 10 * i as u64));
    }
}

fn errors_of(c: &Checker) -> Vec<What> {
    c.report()
        .events
        .into_iter()
        .map(|e| e.what)
        .filter(|w| !w.is_info())
        .collect()
}

#[test]
fn a_clean_stream_across_both_wraps_is_consistent() {
    // Sequence numbers wrap after 6 packets, timestamps after 2 frames.
    let packets = Vp8::new(65530, u32::MAX - 2 * FRAME_TICKS + 1, 5).frames(10, 3);
    let c = check(Some(Codec::Vp8), &packets);
    let r = c.report();
    assert!(r.consistent, "{r:#?}");
    assert!(r.errors.is_empty() && r.events.is_empty(), "{r:#?}");
    assert_eq!(r.started_on_keyframe, Some(true));
    assert_eq!(
        (r.counts.received, r.counts.unique, r.counts.lost),
        (30, 30, 0)
    );
    assert_eq!((r.counts.frames, r.counts.keyframes), (10, 2));
    let keys: Vec<(u16, f64)> = r.keyframe_times.iter().map(|k| (k.seq, k.at_s)).collect();
    assert_eq!(keys, [(65530, 0.0), (65530u16.wrapping_add(15), 0.15)]);
    assert_eq!(
        (r.codec, r.ssrc, r.payload_type),
        (Some("vp8"), Some(0x1234_5678), Some(96))
    );
}

#[test]
fn a_gap_is_reported_with_its_time_and_counted_as_lost() {
    let mut packets = Vp8::new(65533, 0, 30).frames(4, 3);
    // Seq 65535 and 0 (the wrap) never arrive: packets 2 and 3.
    packets.drain(2..4);
    let c = check(Some(Codec::Vp8), &packets);
    let r = c.report();
    assert!(!r.consistent);
    assert_eq!((r.counts.gaps, r.counts.lost), (1, 2));
    assert_eq!(r.events.len(), 1, "{:#?}", r.events);
    assert_eq!(
        r.events[0].what,
        What::Gap {
            after: 65534,
            missing: 2
        }
    );
    assert_eq!(
        r.events[0].at_s, 0.02,
        "the third packet fed, at 20 ms, shows the gap"
    );
    assert_eq!(r.errors, ["2 packet(s) lost (1 gap(s) seen)"]);
}

#[test]
fn a_late_packet_fills_its_gap_but_counts_as_reordered() {
    let mut packets = Vp8::new(100, 0, 30).frames(3, 3);
    packets.swap(4, 5);
    let c = check(Some(Codec::Vp8), &packets);
    let r = c.report();
    assert_eq!(
        (r.counts.gaps, r.counts.lost, r.counts.reordered),
        (1, 0, 1)
    );
    assert_eq!(
        errors_of(&c),
        [
            What::Gap {
                after: 103,
                missing: 1
            },
            What::Reordered { seq: 104 }
        ]
    );
    assert!(!r.consistent);
    assert_eq!(r.errors, ["1 packet(s) out of order"]);
}

#[test]
fn a_duplicate_is_counted_once_and_nothing_else() {
    let mut packets = Vp8::new(7, 0, 30).frames(3, 2);
    packets.insert(3, packets[2].clone());
    let c = check(Some(Codec::Vp8), &packets);
    let r = c.report();
    assert_eq!(errors_of(&c), [What::Duplicate { seq: 9 }]);
    assert_eq!(
        (r.counts.received, r.counts.unique, r.counts.duplicates),
        (7, 6, 1)
    );
    assert!(!r.consistent);
}

#[test]
fn a_timestamp_going_back_is_an_error_and_wrapping_forward_is_not() {
    let mut packets = Vp8::new(0, u32::MAX - FRAME_TICKS + 1, 30).frames(4, 1);
    // Frame 2 carries frame 0's timestamp, from before the wrap: a frame before frame 1's.
    packets[2].ts = packets[0].ts;
    let c = check(Some(Codec::Vp8), &packets);
    let r = c.report();
    assert_eq!(r.counts.timestamp_regressions, 1);
    assert_eq!(
        errors_of(&c),
        [What::TimestampRegression {
            seq: 2,
            by: u64::from(FRAME_TICKS)
        }]
    );
    assert!(r
        .errors
        .contains(&"the timestamp went back 1 time(s)".to_string()));
}

#[test]
fn an_ssrc_change_is_one_error_and_not_loss() {
    let mut packets = Vp8::new(1000, 0, 3).frames(6, 2);
    for p in &mut packets[6..] {
        // Another sender's numbering and timestamps.
        p.ssrc = 0xdead_beef;
        p.seq = p.seq.wrapping_add(30_000);
        p.ts = p.ts.wrapping_sub(1 << 30);
    }
    let c = check(Some(Codec::Vp8), &packets);
    let r = c.report();
    assert_eq!(
        errors_of(&c),
        [What::SsrcChange {
            from: 0x1234_5678,
            to: 0xdead_beef
        }]
    );
    assert_eq!(
        (
            r.counts.ssrc_changes,
            r.counts.unique,
            r.counts.lost,
            r.counts.gaps
        ),
        (1, 12, 0, 0)
    );
    assert_eq!(r.errors, ["the SSRC changed 1 time(s)"]);
}

#[test]
fn a_payload_type_change_is_an_error() {
    let mut packets = Vp8::new(0, 0, 30).frames(3, 1);
    packets[2].pt = 97;
    let c = check(Some(Codec::Vp8), &packets);
    assert_eq!(
        errors_of(&c),
        [What::PayloadTypeChange { from: 96, to: 97 }]
    );
    assert!(!c.report().consistent);
}

#[test]
fn a_stream_that_starts_mid_frame_or_on_an_interframe_is_reported() {
    let packets = Vp8::new(0, 0, 2).frames(4, 3);
    for (from, seq) in [(1, 1), (3, 3)] {
        let c = check(Some(Codec::Vp8), &packets[from..]);
        let r = c.report();
        assert_eq!(r.started_on_keyframe, Some(false));
        assert_eq!(errors_of(&c), [What::NotStartedOnKeyframe { seq }]);
        assert!(r
            .errors
            .contains(&"the stream does not start on a keyframe".to_string()));
    }
}

#[test]
fn frame_boundaries_must_agree_with_marker_bits() {
    let mut packets = Vp8::new(0, 0, 30).frames(5, 2);
    // Frame 1 ends without its marker; frame 2's second packet gets a timestamp of its own
    // (a new frame that does not start one); frame 3's first packet has the marker, so its
    // second continues after it.
    packets[3].marker = false;
    packets[5].ts += 1;
    packets[6].marker = true;
    let c = check(Some(Codec::Vp8), &packets);
    assert_eq!(
        errors_of(&c),
        [
            What::UnterminatedFrame { seq: 4 },
            What::UnterminatedFrame { seq: 5 },
            What::FrameWithoutStart { seq: 5 },
            What::PacketAfterMarker { seq: 7 },
        ]
    );
    let r = c.report();
    assert_eq!(
        (
            r.counts.unterminated_frames,
            r.counts.frames_without_start,
            r.counts.packets_after_marker
        ),
        (2, 1, 1)
    );
}

#[test]
fn boundaries_are_not_judged_across_a_gap() {
    let mut packets = Vp8::new(0, 0, 30).frames(3, 3);
    // The marker packet of frame 0 and the first of frame 1 are lost: only loss is reported.
    packets.drain(2..4);
    let c = check(Some(Codec::Vp8), &packets);
    assert_eq!(
        errors_of(&c),
        [What::Gap {
            after: 1,
            missing: 2
        }]
    );
}

#[test]
fn junk_and_malformed_payloads_are_errors_and_rtcp_is_ignored() {
    let mut packets = Vp8::new(0, 0, 30).frames(3, 1);
    // A VP8 descriptor with nothing after it.
    packets[1].payload = vec![0x10];
    let mut c = Checker::new(Some(Codec::Vp8));
    feed(&mut c, &packets, 0);
    c.feed(b"hello", Nanos::from_millis(100));
    // A receiver report.
    c.feed(&[0x80, 201, 0, 1, 0, 0, 0, 1], Nanos::from_millis(110));
    let r = c.report();
    assert_eq!(
        errors_of(&c),
        [
            What::MalformedPayload {
                seq: 1,
                error: "Truncated".into()
            },
            What::NotRtp { len: 5 }
        ]
    );
    assert_eq!((r.counts.rtcp_ignored, r.counts.received), (1, 3));
    assert_eq!(
        r.errors,
        [
            "1 datagram(s) were not RTP",
            "1 payload(s) are not valid vp8"
        ]
    );
    assert_eq!(r.notes, ["1 RTCP packet(s) ignored"]);
}

#[test]
fn nothing_received_is_not_consistent() {
    let r = Checker::new(Some(Codec::Vp8)).report();
    assert!(!r.consistent);
    assert_eq!(r.errors, ["no RTP packet arrived"]);
    assert_eq!(r.started_on_keyframe, None);
}

#[test]
fn the_codec_comes_from_corecasts_payload_type_when_not_given() {
    let packets = Vp8::new(0, 0, 30).frames(3, 2);
    let c = check(None, &packets[1..]);
    assert_eq!(c.codec(), Some(Codec::Vp8));
    assert_eq!(errors_of(&c), [What::NotStartedOnKeyframe { seq: 1 }]);
    // An unknown payload type: only RTP-level checks, said in a note.
    let mut other = packets.clone();
    other.iter_mut().for_each(|p| p.pt = 120);
    let c = check(None, &other[1..]);
    let r = c.report();
    assert!(r.consistent, "{r:#?}");
    assert_eq!(
        (r.codec, r.started_on_keyframe, r.counts.frames),
        (None, None, 0)
    );
    assert!(r.notes[0].contains("payload type 120"), "{:?}", r.notes);
}

#[test]
fn a_timestamp_jump_is_noted_but_is_no_error() {
    let mut packets = Vp8::new(0, 0, 30).frames(4, 1);
    // Two seconds of media between packets 10 ms apart.
    for p in &mut packets[2..] {
        p.ts += 2 * 90_000;
    }
    let c = check(Some(Codec::Vp8), &packets);
    let r = c.report();
    assert!(r.consistent, "{r:#?}");
    assert_eq!(r.counts.timestamp_jumps, 1);
    assert_eq!(
        r.events[0].what,
        What::TimestampJump {
            seq: 2,
            by: u64::from(FRAME_TICKS) + 2 * 90_000,
            arrival_ms: 10.0
        }
    );
}

#[test]
fn audio_needs_no_keyframe_and_no_marker_bits() {
    let packets: Vec<Pkt> = (0..50u16)
        .map(|i| Pkt {
            pt: 111,
            // Opus sets the marker on a talkspurt's first packet.
            marker: i.is_multiple_of(20),
            seq: 65500u16.wrapping_add(i),
            ts: 960 * u32::from(i),
            ssrc: 9,
            payload: vec![0xfc, 0xff, 0xfe],
        })
        .collect();
    let c = check(None, &packets);
    let r = c.report();
    assert!(r.consistent, "{r:#?}");
    assert_eq!((r.codec, r.started_on_keyframe), (Some("opus"), Some(true)));
}

const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x0b, 0xda];
const PPS: &[u8] = &[0x68, 0xce, 0x3c];
const IDR: &[u8] = &[0x65, 0x88, 0x84];
const P_SLICE: &[u8] = &[0x41, 0x9a, 0x20];

fn h264(units: &[(&[u8], bool)], first_seq: u16) -> Vec<Pkt> {
    units
        .iter()
        .enumerate()
        .map(|(i, (payload, frame_end))| Pkt {
            pt: 102,
            marker: *frame_end,
            seq: first_seq.wrapping_add(i as u16),
            // A frame ends at each marker.
            ts: FRAME_TICKS * units[..i].iter().filter(|(_, end)| *end).count() as u32,
            ssrc: 5,
            payload: payload.to_vec(),
        })
        .collect()
}

#[test]
fn h264_keyframes_need_parameter_sets_before_them() {
    // Sets once, before the first IDR: later IDRs without them are fine.
    let once = h264(
        &[
            (SPS, false),
            (PPS, false),
            (IDR, true),
            (P_SLICE, true),
            (IDR, true),
        ],
        65534,
    );
    let c = check(Some(Codec::H264), &once);
    let r = c.report();
    assert!(r.consistent, "{r:#?}");
    assert_eq!(r.counts.keyframes, 2);
    // No PPS before the IDR: a decoder cannot start there. The first keyframe (the SPS) is
    // one switch point; the error is counted once per keyframe.
    let no_pps = h264(&[(SPS, false), (IDR, false), (IDR, true)], 0);
    let c = check(Some(Codec::H264), &no_pps);
    assert_eq!(
        errors_of(&c),
        [What::KeyframeWithoutParameterSets { seq: 1 }]
    );
    let r = c.report();
    assert_eq!(r.counts.keyframes_without_parameter_sets, 1);
    assert!(!r.consistent);
    // An IDR alone, with the sets given out of band (an SDP's sprop-parameter-sets).
    let bare = h264(&[(IDR, true), (P_SLICE, true)], 0);
    assert_eq!(
        errors_of(&check(Some(Codec::H264), &bare)),
        [What::KeyframeWithoutParameterSets { seq: 0 }]
    );
    let sets = ParameterSets::configured(Codec::H264, &[SPS, PPS]).unwrap();
    let mut c = Checker::new(Some(Codec::H264)).with_parameter_sets(sets);
    feed(&mut c, &bare, 0);
    assert!(c.report().consistent, "{:#?}", c.report());
}

#[test]
fn an_h264_stream_may_open_with_an_sei_before_its_keyframe() {
    // x264 writes an SEI before its first SPS; a decoder starts there all the same.
    let sei: &[u8] = &[0x06, 0x05, 0x10];
    let good = h264(&[(sei, false), (SPS, false), (PPS, false), (IDR, true)], 0);
    let r = check(Some(Codec::H264), &good).report();
    assert!(r.consistent, "{r:#?}");
    assert_eq!(r.started_on_keyframe, Some(true));
    // An SEI before an ordinary picture, or before nothing at all: not a place to start.
    let bad = h264(&[(sei, false), (P_SLICE, true), (P_SLICE, true)], 7);
    assert_eq!(
        errors_of(&check(Some(Codec::H264), &bad)),
        [What::NotStartedOnKeyframe { seq: 7 }]
    );
    let r = check(Some(Codec::H264), &bad[..1]).report();
    assert_eq!(r.started_on_keyframe, Some(false));
    assert!(!r.consistent);
}

#[test]
fn new_parameter_sets_are_noted_as_a_likely_switch() {
    let other_sps: &[u8] = &[0x67, 0x64, 0x00, 0x1f, 0xac];
    let packets = h264(
        &[
            (SPS, false),
            (PPS, false),
            (IDR, true),
            (other_sps, false),
            (PPS, false),
            (IDR, true),
        ],
        0,
    );
    let c = check(Some(Codec::H264), &packets);
    let r = c.report();
    assert!(r.consistent, "{r:#?}");
    assert_eq!(r.counts.parameter_set_changes, 1);
    assert_eq!(r.events[0].what, What::ParameterSetsChanged { seq: 3 });
    assert_eq!(r.counts.keyframes, 2);
}

#[test]
fn events_past_the_cap_are_counted_not_kept() {
    let packets: Vec<Pkt> = Vp8::new(0, 0, 1).frames(2 * MAX_KEPT + 20, 1);
    // Every other packet lost: a gap per packet after the first.
    let kept: Vec<Pkt> = packets.into_iter().step_by(2).collect();
    let c = check(Some(Codec::Vp8), &kept);
    let r = c.report();
    assert_eq!(r.events.len(), MAX_KEPT);
    assert_eq!(r.events_left_out, r.counts.gaps - MAX_KEPT as u64);
    assert_eq!(
        r.keyframe_times.len() as u64,
        r.counts.keyframes.min(MAX_KEPT as u64)
    );
}

#[test]
fn the_json_report_names_each_event_and_count() {
    let mut packets = Vp8::new(0, 0, 30).frames(3, 1);
    packets.remove(1);
    let json: serde_json::Value =
        serde_json::from_str(&check(Some(Codec::Vp8), &packets).report().to_json()).unwrap();
    assert_eq!(json["consistent"], false);
    assert_eq!(json["lost"], 1);
    assert_eq!(json["received"], 2);
    assert_eq!(
        json["events"][0],
        serde_json::json!({"at_s": 0.01, "type": "gap", "after": 0, "missing": 1})
    );
    assert_eq!(json["keyframe_times"][0]["seq"], 0);
}

/// `engine/tests/fixtures/<name>.rtp`: records of a 2-byte length and one RTP packet, 30 frames
/// at 15 fps with keyframes at frames 0, 12 and 24 (scripts/record-fixtures.sh).
fn fixture(name: &str) -> Vec<Vec<u8>> {
    let path = format!(
        "{}/../engine/tests/fixtures/{name}.rtp",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut rest = &bytes[..];
    let mut packets = Vec::new();
    while let [hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        packets.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    packets
}

#[test]
fn streams_from_real_encoders_are_consistent() {
    for (name, codec) in [
        ("vp8", Codec::Vp8),
        ("vp9", Codec::Vp9),
        ("h264", Codec::H264),
        ("h264-sets-once", Codec::H264),
        ("h265", Codec::H265),
        ("av1", Codec::Av1),
    ] {
        let mut c = Checker::new(Some(codec));
        let packets = fixture(name);
        for (i, p) in packets.iter().enumerate() {
            c.feed(p, Nanos::from_millis(5 * i as u64));
        }
        let r = c.report();
        assert!(r.consistent, "{name}: {r:#?}");
        assert_eq!(r.started_on_keyframe, Some(true), "{name}");
        assert_eq!(
            (r.counts.received, r.counts.frames, r.counts.keyframes),
            (packets.len() as u64, 30, 3),
            "{name}"
        );
    }
}

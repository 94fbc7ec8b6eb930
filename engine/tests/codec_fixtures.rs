//! Runs the codec detectors over streams from real encoders and payloaders, recorded by
//! `scripts/record-fixtures.sh` into `tests/fixtures/`.
//!
//! Each `<codec>.rtp` file is a sequence of records: a 2-byte big-endian length, then one RTP
//! packet as received. Every stream is 30 frames at 15 fps with a keyframe every 12 frames, so the
//! keyframes are frames 0, 12 and 24. That GOP, and the RTP header's timestamps and marker bits,
//! are the independent signals the detectors' answers are checked against.
//!
//! AV1 has no RTP payloader packaged with GStreamer on Debian (rtpav1pay is in gst-plugins-rs), so
//! the recording keeps libaom's output (GStreamer's av1enc) as a raw OBU stream, `av1.obu`, and
//! `av1.rtp` is that stream packetized by webrtc-rs's AV1 payloader (a port of libwebrtc's), run
//! by `examples/packetize_av1.rs`.

mod common;

use common::fixtures::{fixture_path, rtp_records};
use corecast_engine::codec::{self, PayloadInfo, MAX_REWRITE_LEN};
use corecast_engine::types::Codec;

const FRAMES: usize = 30;
const KEYFRAMES: [usize; 3] = [0, 12, 24];
/// 90 kHz clock at 15 fps.
const FRAME_TICKS: u32 = 6000;

struct Packet {
    marker: bool,
    timestamp: u32,
    payload: Vec<u8>,
}

fn read_fixture(name: &str) -> Vec<Packet> {
    rtp_records(name).iter().map(|p| parse_rtp(p)).collect()
}

/// Just enough RTP (RFC 3550 §5.1) to find the payload: fixed header, CSRCs, one header
/// extension, padding.
fn parse_rtp(packet: &[u8]) -> Packet {
    assert!(packet.len() >= 12 && packet[0] >> 6 == 2, "not RTP v2");
    let mut start = 12 + 4 * usize::from(packet[0] & 0x0f);
    if packet[0] & 0x10 != 0 {
        let words = u16::from_be_bytes([packet[start + 2], packet[start + 3]]);
        start += 4 + 4 * usize::from(words);
    }
    let mut end = packet.len();
    if packet[0] & 0x20 != 0 {
        end -= usize::from(packet[end - 1]);
    }
    Packet {
        marker: packet[1] & 0x80 != 0,
        timestamp: u32::from_be_bytes(packet[4..8].try_into().unwrap()),
        payload: packet[start..end].to_vec(),
    }
}

/// A frame is the run of packets sharing one timestamp, with each packet's inspection.
type Frame<'a> = Vec<(&'a Packet, PayloadInfo)>;

/// Checks what holds for every codec and returns the frames for codec-specific checks.
///
/// `single_start`: frame_start must be true on exactly the first packet of each frame. H.264 and
/// H.265 packetizers put parameter sets and SEI in packets of their own, each of which can open an
/// access unit, so for them this only holds for frames that are not keyframes.
fn check_stream(codec: Codec, packets: &[Packet], single_start: bool) -> Vec<Frame<'_>> {
    let mut frames: Vec<Frame> = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        let info = codec::inspect(codec, &p.payload)
            .unwrap_or_else(|e| panic!("{codec} packet {i}: {e:?} {:02x?}", p.payload));
        assert!(info.rewrite_len() <= MAX_REWRITE_LEN.min(p.payload.len()));
        match frames.last_mut() {
            Some(frame) if frame[0].0.timestamp == p.timestamp => frame.push((p, info)),
            _ => frames.push(vec![(p, info)]),
        }
    }
    assert_eq!(frames.len(), FRAMES, "{codec}: frames (timestamp runs)");
    assert!(
        frames[0][0].1.is_switch_point(),
        "{codec}: the stream must open on a switch point"
    );

    let mut key_frames = Vec::new();
    for (n, frame) in frames.iter().enumerate() {
        let (first, info) = &frame[0];
        // The payloader marks each frame's last packet; it must agree with the timestamp runs.
        let markers: Vec<bool> = frame.iter().map(|(p, _)| p.marker).collect();
        let marked_last = markers.iter().rev().skip(1).all(|m| !m) && markers[markers.len() - 1];
        assert!(marked_last, "{codec} frame {n}: marker bits {markers:?}");
        if n > 0 {
            let step = first.timestamp.wrapping_sub(frames[n - 1][0].0.timestamp);
            // 1/15 s is not a whole number of ticks; payloaders round each frame's time.
            assert!(
                step.abs_diff(FRAME_TICKS) <= 1,
                "{codec} frame {n}: step {step}"
            );
        }
        assert!(
            info.frame_start,
            "{codec} frame {n}: first packet must start the frame"
        );
        if info.is_switch_point() {
            key_frames.push(n);
        }
        if single_start || !info.is_switch_point() {
            let later: Vec<usize> = (1..frame.len())
                .filter(|&i| frame[i].1.frame_start)
                .collect();
            assert!(
                later.is_empty(),
                "{codec} frame {n}: frame_start on packets {later:?}"
            );
        }
        let later_switch = frame.iter().skip(1).any(|(_, i)| i.is_switch_point());
        assert!(
            !later_switch || info.is_switch_point(),
            "{codec} frame {n}: a switch point inside a frame that did not open on one"
        );
    }
    assert_eq!(
        key_frames, KEYFRAMES,
        "{codec}: frames that open on a switch point"
    );
    for &n in &KEYFRAMES {
        assert!(
            frames[n].len() > 2,
            "{codec}: keyframe {n} should span several packets"
        );
    }
    if single_start {
        let switch_points = frames
            .iter()
            .flatten()
            .filter(|(_, i)| i.is_switch_point())
            .count();
        assert_eq!(
            switch_points,
            KEYFRAMES.len(),
            "{codec}: switch point packets"
        );
    }
    frames
}

/// Picture IDs: on every packet, constant within a frame, one more per frame, and the bytes at
/// the reported offset really hold the reported value (that is what the splicer rewrites).
fn check_picture_ids(codec: Codec, frames: &[Frame]) {
    let mut previous: Option<u16> = None;
    for (n, frame) in frames.iter().enumerate() {
        let id = frame[0].1.picture_id.expect("picture ID on every packet");
        for (p, info) in frame {
            let field = info.picture_id.expect("picture ID on every packet");
            assert_eq!(
                field, id,
                "{codec} frame {n}: picture ID changes inside the frame"
            );
            let at = usize::from(field.offset);
            let on_wire = if field.wide {
                u16::from_be_bytes([p.payload[at] & 0x7f, p.payload[at + 1]])
            } else {
                u16::from(p.payload[at] & 0x7f)
            };
            assert_eq!(on_wire, field.value);
        }
        if let Some(prev) = previous {
            let expected = ((u32::from(prev) + 1) % id.modulus()) as u16;
            assert_eq!(id.value, expected, "{codec} frame {n}: picture ID step");
        }
        previous = Some(id.value);
    }
}

#[test]
fn vp8_gstreamer() {
    let packets = read_fixture("vp8.rtp");
    let frames = check_stream(Codec::Vp8, &packets, true);
    check_picture_ids(Codec::Vp8, &frames);
}

#[test]
fn vp9_gstreamer() {
    let packets = read_fixture("vp9.rtp");
    let frames = check_stream(Codec::Vp9, &packets, true);
    check_picture_ids(Codec::Vp9, &frames);
}

#[test]
fn h264_gstreamer() {
    check_stream(Codec::H264, &read_fixture("h264.rtp"), false);
}

#[test]
fn h265_gstreamer() {
    check_stream(Codec::H265, &read_fixture("h265.rtp"), false);
}

#[test]
fn av1_webrtc_rs_payloader() {
    let packets = read_fixture("av1.rtp");
    check_stream(Codec::Av1, &packets, true);
    // The packets carry exactly the encoder's OBUs: the fixture is av1.obu, packetized.
    let stream = std::fs::read(fixture_path("av1.obu")).expect("av1.obu");
    assert_eq!(
        depacketize_av1(&packets),
        temporal_units(&stream),
        "av1.rtp does not hold av1.obu's temporal units"
    );
    // webrtc-rs sets N on a temporal unit that opens with a sequence header, so the check above
    // saw it on each keyframe. With N cleared, as packetizers that leave it at 0 send them, the
    // sequence header alone must find the keyframes.
    let with_n = packets.iter().filter(|p| p.payload[0] & 0x08 != 0).count();
    assert_eq!(with_n, KEYFRAMES.len(), "packets with N set");
    let without_n: Vec<Packet> = packets
        .iter()
        .map(|p| {
            let mut payload = p.payload.clone();
            payload[0] &= !0x08;
            Packet {
                marker: p.marker,
                timestamp: p.timestamp,
                payload,
            }
        })
        .collect();
    check_stream(Codec::Av1, &without_n, true);
}

/// Splits a low-overhead bitstream (every OBU has obu_size) into temporal units at each temporal
/// delimiter, drops the delimiters and the obu_size fields, as the RTP spec recommends.
fn temporal_units(mut stream: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let mut units: Vec<Vec<Vec<u8>>> = Vec::new();
    while !stream.is_empty() {
        let header = stream[0];
        let header_len = 1 + usize::from(header & 0x04 != 0);
        assert!(
            header & 0x02 != 0,
            "OBU without obu_size in a low-overhead stream"
        );
        let (size, leb_len) = read_leb128(&stream[header_len..]);
        let body = header_len + leb_len;
        let obu_type = (header >> 3) & 0x0f;
        if obu_type == 2 {
            units.push(Vec::new());
        } else {
            let mut obu = vec![header & !0x02];
            obu.extend_from_slice(&stream[1..header_len]);
            obu.extend_from_slice(&stream[body..body + size]);
            units
                .last_mut()
                .expect("stream starts with a temporal delimiter")
                .push(obu);
        }
        stream = &stream[body + size..];
    }
    units
}

/// Reassembles each frame's OBUs from AV1 RTP payloads (aggregation header: Z continues the
/// previous packet's last OBU, W counts the elements, the last of which has no length when W is
/// set).
fn depacketize_av1(packets: &[Packet]) -> Vec<Vec<Vec<u8>>> {
    let mut units: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut unit_timestamp = None;
    for p in packets {
        if unit_timestamp != Some(p.timestamp) {
            units.push(Vec::new());
            unit_timestamp = Some(p.timestamp);
        }
        let unit = units.last_mut().unwrap();
        let (z, w) = (
            p.payload[0] & 0x80 != 0,
            usize::from(p.payload[0] >> 4 & 0x03),
        );
        let mut rest = &p.payload[1..];
        let mut index = 0;
        while !rest.is_empty() {
            let element = if w != 0 && index + 1 == w {
                std::mem::take(&mut rest)
            } else {
                let (size, leb_len) = read_leb128(rest);
                let element = &rest[leb_len..leb_len + size];
                rest = &rest[leb_len + size..];
                element
            };
            match unit.last_mut() {
                Some(obu) if z && index == 0 => obu.extend_from_slice(element),
                _ => unit.push(element.to_vec()),
            }
            index += 1;
        }
    }
    units
}

fn read_leb128(bytes: &[u8]) -> (usize, usize) {
    let mut value = 0;
    for (i, b) in bytes.iter().take(8).enumerate() {
        value |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return (value, i + 1);
        }
    }
    panic!("bad leb128");
}

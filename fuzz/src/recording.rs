//! The committed codec recordings (`engine/tests/fixtures/`, made by
//! `scripts/record-fixtures.sh` from real encoders), embedded, as packet templates: payload,
//! marker bit, and timestamp step from the packet before. AV1 and Opus have no RTP recording;
//! their templates are built here from the payload formats.

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use corecast_engine::codec;
use corecast_engine::Codec;

/// Which recorded stream a source sends.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    Vp8,
    Vp9,
    H264,
    /// x264 with the parameter sets only at the start (the prelude's case).
    H264SetsOnce,
    H265,
    Av1,
    Opus,
}

impl StreamKind {
    pub const ALL: [StreamKind; 7] = [
        StreamKind::Vp8,
        StreamKind::Vp9,
        StreamKind::H264,
        StreamKind::H264SetsOnce,
        StreamKind::H265,
        StreamKind::Av1,
        StreamKind::Opus,
    ];

    pub fn codec(self) -> Codec {
        match self {
            StreamKind::Vp8 => Codec::Vp8,
            StreamKind::Vp9 => Codec::Vp9,
            StreamKind::H264 | StreamKind::H264SetsOnce => Codec::H264,
            StreamKind::H265 => Codec::H265,
            StreamKind::Av1 => Codec::Av1,
            StreamKind::Opus => Codec::Opus,
        }
    }

    /// Parameter sets as a sender's SDP would give them (the engine's unit tests' values).
    pub fn sdp_parameter_sets(self) -> Option<&'static [&'static [u8]]> {
        const H264: &[&[u8]] = &[&[0x67, 0x42, 0xc0, 0x0b, 0xda], &[0x68, 0xce, 0x3c]];
        const H265: &[&[u8]] = &[
            &[0x40, 0x01, 0x0c, 0x01],
            &[0x42, 0x01, 0x01, 0x01],
            &[0x44, 0x02, 0xc1, 0x72],
        ];
        match self.codec() {
            Codec::H264 => Some(H264),
            Codec::H265 => Some(H265),
            _ => None,
        }
    }
}

/// One packet of a recording.
#[derive(Clone, Debug)]
pub struct Template {
    pub payload: Vec<u8>,
    pub marker: bool,
    /// Timestamp minus the previous packet's (the last packet's step for the first one, so the
    /// recording loops seamlessly).
    pub ts_step: u32,
}

/// The templates of `kind`, in recorded order. Parsed once per process.
pub fn recording(kind: StreamKind) -> &'static [Template] {
    static CACHE: [OnceLock<Vec<Template>>; 7] = [const { OnceLock::new() }; 7];
    let index = StreamKind::ALL.iter().position(|&k| k == kind).unwrap();
    CACHE[index].get_or_init(|| {
        let templates = match kind {
            StreamKind::Vp8 => from_rtp(include_bytes!("../../engine/tests/fixtures/vp8.rtp")),
            StreamKind::Vp9 => from_rtp(include_bytes!("../../engine/tests/fixtures/vp9.rtp")),
            StreamKind::H264 => from_rtp(include_bytes!("../../engine/tests/fixtures/h264.rtp")),
            StreamKind::H264SetsOnce => from_rtp(include_bytes!(
                "../../engine/tests/fixtures/h264-sets-once.rtp"
            )),
            StreamKind::H265 => from_rtp(include_bytes!("../../engine/tests/fixtures/h265.rtp")),
            StreamKind::Av1 => av1(),
            StreamKind::Opus => opus(),
        };
        // A recording the detectors refuse would only exercise the drop path: say so at once.
        let opens = codec::inspect(kind.codec(), &templates[0].payload)
            .expect("the recording's first payload inspects");
        assert!(opens.is_switch_point(), "{kind:?} opens on a switch point");
        templates
    })
}

/// Records of a 2-byte big-endian length and one RTP packet; only as much RTP is read as
/// finds the payload (the recordings have no CSRCs, extensions or padding).
fn from_rtp(file: &[u8]) -> Vec<Template> {
    let mut packets = Vec::new();
    let mut rest = file;
    while let [hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        let (packet, after) = tail.split_at(len);
        packets.push(packet);
        rest = after;
    }
    let ts = |p: &[u8]| u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
    let last = packets.len() - 1;
    let loop_step = ts(packets[last]).wrapping_sub(ts(packets[last - 1]));
    packets
        .iter()
        .enumerate()
        .map(|(i, p)| {
            assert_eq!(p[0] & 0x3f, 0, "recordings hold plain RTP headers");
            Template {
                payload: p[12..].to_vec(),
                marker: p[1] & 0x80 != 0,
                ts_step: if i == 0 {
                    loop_step
                } else {
                    ts(p).wrapping_sub(ts(packets[i - 1]))
                },
            }
        })
        .collect()
}

/// 24 frames at 15 fps, two packets each, a keyframe (N bit and sequence header) every 12.
fn av1() -> Vec<Template> {
    (0..24)
        .flat_map(|frame| {
            let first = if frame % 12 == 0 {
                // W=1, N=1; a sequence header OBU.
                vec![0x18, 0x0a, 0x0b, 0x00, 0x00, 0x00]
            } else {
                // W=1; a frame OBU.
                vec![0x10, 0x32, 0x10, 0x00, 0x00, 0x00]
            };
            [
                Template {
                    payload: first,
                    marker: false,
                    ts_step: 6000,
                },
                Template {
                    // Z=1, W=1: the rest of the OBU.
                    payload: vec![0x90, 0x55, 0x55, 0x55],
                    marker: true,
                    ts_step: 0,
                },
            ]
        })
        .collect()
}

/// 20 ms Opus packets (TOC byte of a 20 ms SILK frame).
fn opus() -> Vec<Template> {
    (0..50u8)
        .map(|i| Template {
            payload: vec![0x78, i, 0x01, 0x02],
            marker: i == 0,
            ts_step: 960,
        })
        .collect()
}

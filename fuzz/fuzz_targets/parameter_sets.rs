//! `ParameterSets` (observe, clear, configured) against a model of what it must keep: after each
//! step its prelude is present exactly when every kind the codec needs was seen, and parses as an
//! STAP-A (H.264) or AP (H.265) holding the newest set of each kind, in order, that the codec's
//! own inspection calls a switch point carrying parameter sets and (H.264) the webrtc-rs
//! depacketizer reads back as those sets.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use corecast_engine::codec::parameter_sets::{
    ParameterSetError, ParameterSets, MAX_PARAMETER_SET_LEN,
};
use corecast_engine::codec::{self};
use corecast_engine::Codec;
use corecast_fuzz::{recording, StreamKind};
use libfuzzer_sys::fuzz_target;
use rtp::packetizer::Depacketizer;

#[derive(Arbitrary, Debug)]
struct Input {
    h265: bool,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
enum Step {
    /// Observe a payload of the codec's recording.
    Recorded(u16),
    /// Observe any payload.
    Observe(Vec<u8>),
    /// Observe an aggregation packet of these units.
    Aggregate(Vec<Vec<u8>>),
    Clear,
    /// Parameter sets from an SDP.
    Configure(Vec<Vec<u8>>),
}

/// The newest parameter set of each kind: H.264 SPS, PPS; H.265 VPS, SPS, PPS.
#[derive(Default)]
struct Model {
    nals: [Option<Vec<u8>>; 3],
}

fn kind(codec: Codec, nal: &[u8]) -> Option<usize> {
    match codec {
        Codec::H264 => match nal.first()? {
            h if h & 0x80 != 0 => None,
            h => [7, 8].iter().position(|&t| t == h & 0x1f),
        },
        _ => match nal {
            [h0, h1, ..] if h0 & 0x80 == 0 && h1 & 0x07 != 0 => {
                [32, 33, 34].iter().position(|&t| t == (h0 >> 1) & 0x3f)
            }
            _ => None,
        },
    }
}

fn kinds(codec: Codec) -> usize {
    if codec == Codec::H264 {
        2
    } else {
        3
    }
}

/// The units of an aggregation payload (after its own header) up to the first size that
/// overruns.
fn units(mut rest: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while let [hi, lo, tail @ ..] = rest {
        let size = usize::from(u16::from_be_bytes([*hi, *lo]));
        if size > tail.len() {
            break;
        }
        out.push(&tail[..size]);
        rest = &tail[size..];
    }
    out
}

impl Model {
    fn store(&mut self, codec: Codec, nal: &[u8]) {
        if let Some(k) = kind(codec, nal) {
            if nal.len() <= MAX_PARAMETER_SET_LEN {
                self.nals[k] = Some(nal.to_vec());
            }
        }
    }

    fn observe(&mut self, codec: Codec, payload: &[u8]) {
        let aggregate = match (codec, payload) {
            (Codec::H264, [h, rest @ ..]) if h & 0x1f == 24 => Some(rest),
            (Codec::H265, [h, rest @ ..]) if (h >> 1) & 0x3f == 48 => {
                Some(rest.get(1..).unwrap_or_default())
            }
            _ => None,
        };
        match aggregate {
            Some(rest) => units(rest).into_iter().for_each(|n| self.store(codec, n)),
            None => self.store(codec, payload),
        }
    }

    fn complete(&self, codec: Codec) -> Option<Vec<&[u8]>> {
        self.nals[..kinds(codec)]
            .iter()
            .map(|n| n.as_deref())
            .collect()
    }
}

/// `sets`' prelude is what `model` says it must be.
fn check(codec: Codec, sets: &ParameterSets, model: &Model) {
    let Some(want) = model.complete(codec) else {
        assert_eq!(sets.prelude(), None, "a prelude before every kind was seen");
        return;
    };
    let prelude = sets.prelude().expect("a prelude once every kind was seen");
    let body = match codec {
        Codec::H264 => {
            let nri = want.iter().map(|n| n[0] & 0x60).max().unwrap();
            assert_eq!(prelude[0], nri | 24, "STAP-A header");
            &prelude[1..]
        }
        _ => {
            assert_eq!((prelude[0] >> 1) & 0x3f, 48, "AP header");
            let tid = want.iter().map(|n| n[1] & 7).min().unwrap();
            assert_eq!(prelude[1] & 7, tid, "the AP takes the lowest TID");
            &prelude[2..]
        }
    };
    let got = units(body);
    assert_eq!(got, want);
    let sized: usize = got.iter().map(|u| 2 + u.len()).sum();
    assert_eq!(sized, body.len(), "the units tile the prelude");
    let info = codec::inspect(codec, prelude).expect("the prelude inspects");
    assert!(info.is_switch_point() && info.parameter_sets);
    if codec == Codec::H264 {
        let mut depacketizer = rtp::codecs::h264::H264Packet::default();
        let annex_b = depacketizer
            .depacketize(&Bytes::copy_from_slice(prelude))
            .expect("webrtc-rs reads the prelude");
        let expected: Vec<u8> = want
            .iter()
            .flat_map(|n| [&[0, 0, 0, 1][..], n].concat())
            .collect();
        assert_eq!(&annex_b[..], &expected[..]);
    }
}

fn configure(codec: Codec, units: &[Vec<u8>]) {
    let refs: Vec<&[u8]> = units.iter().map(Vec::as_slice).collect();
    let result = ParameterSets::configured(codec, &refs);
    let mut model = Model::default();
    for (index, unit) in units.iter().enumerate() {
        if kind(codec, unit).is_none() {
            assert_eq!(
                result.unwrap_err(),
                ParameterSetError::NotAParameterSet { index }
            );
            return;
        }
        if unit.len() > MAX_PARAMETER_SET_LEN {
            let len = unit.len();
            assert_eq!(
                result.unwrap_err(),
                ParameterSetError::TooLong { index, len }
            );
            return;
        }
        model.store(codec, unit);
    }
    match result {
        Ok(sets) => check(codec, &sets, &model),
        Err(e) => {
            assert!(matches!(e, ParameterSetError::Missing(_)), "{e:?}");
            assert!(model.complete(codec).is_none());
        }
    }
}

fuzz_target!(|input: Input| {
    let (codec, kind) = if input.h265 {
        (Codec::H265, StreamKind::H265)
    } else {
        (Codec::H264, StreamKind::H264)
    };
    let recorded = recording(kind);
    let mut sets = ParameterSets::new(codec).unwrap();
    let mut model = Model::default();
    for step in &input.steps {
        match step {
            Step::Recorded(i) => {
                let payload = &recorded[usize::from(*i) % recorded.len()].payload;
                sets.observe(payload);
                model.observe(codec, payload);
            }
            Step::Observe(payload) => {
                sets.observe(payload);
                model.observe(codec, payload);
            }
            Step::Aggregate(nals) => {
                let mut payload = if codec == Codec::H264 {
                    vec![0x78]
                } else {
                    vec![0x60, 0x01]
                };
                for nal in nals {
                    let nal = &nal[..nal.len().min(usize::from(u16::MAX))];
                    payload.extend_from_slice(&(nal.len() as u16).to_be_bytes());
                    payload.extend_from_slice(nal);
                }
                sets.observe(&payload);
                model.observe(codec, &payload);
            }
            Step::Clear => {
                sets.clear();
                model = Model::default();
            }
            Step::Configure(units) => configure(codec, units),
        }
        check(codec, &sets, &model);
    }
});

//! The newest H.264/H.265 parameter sets of a source, and the aggregation packet that carries
//! them to a track that starts at a keyframe sent without them.
//!
//! A decoder needs the SPS and PPS (for H.265 also the VPS) before it can decode an IDR. Most
//! senders repeat them in-band before every keyframe; they are switch points themselves, so a
//! switch lands on them. Some send them once, when the stream starts (rtph264pay with a long
//! `config-interval`, many hardware encoders): a subscriber that joins or switches later would
//! be handed an IDR it cannot decode, or decode it with the old source's SPS. Ingress keeps the
//! newest of each kind seen in-band, and a switch point that carries none gets them sent just
//! before it, as one STAP-A (H.264) or AP (H.265) packet with the IDR's timestamp: the *prelude*
//! (see `Splicer::prelude_head`).
//!
//! One of each kind is kept, the newest: live encoders use one SPS and one PPS id. Parameter sets
//! fragmented over FU packets are not collected; they are tens of bytes, and no packetizer we know
//! fragments them.
//!
//! A sender that never sends them in-band has them in its SDP (`sprop-parameter-sets`, or H.265's
//! `sprop-vps`/`sprop-sps`/`sprop-pps`); [`ParameterSets::configured`] takes those, for use
//! while nothing has come in-band.

use super::{for_each_aggregated, h264, h265};
use crate::types::Codec;

/// Longest parameter set kept; longer ones are ignored (real ones are tens of bytes, a few
/// hundred with scaling matrices).
pub const MAX_PARAMETER_SET_LEN: usize = 320;

/// Longest prelude payload: an aggregation header and three sized parameter sets.
pub const MAX_PRELUDE_LEN: usize = 2 + 3 * (2 + MAX_PARAMETER_SET_LEN);

const H264_STAP_A: u8 = 24;
const H264_NRI: u8 = 0x60;
const H265_AP: u8 = 48;

/// Why configured parameter sets were refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParameterSetError {
    /// The codec has no parameter sets.
    NotApplicable(Codec),
    /// Unit `index` (from 0) is not a VPS, SPS or PPS of the codec.
    NotAParameterSet {
        /// Position of the unit in the list given, from 0.
        index: usize,
    },
    /// Unit `index` is longer than [`MAX_PARAMETER_SET_LEN`].
    TooLong {
        /// Position of the unit in the list given, from 0.
        index: usize,
        /// The unit's length in bytes.
        len: usize,
    },
    /// A kind the codec needs is missing.
    Missing(&'static str),
}

impl std::fmt::Display for ParameterSetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotApplicable(codec) => write!(f, "{codec} has no parameter sets"),
            Self::NotAParameterSet { index } => {
                write!(f, "unit {index} is not a parameter set of the codec")
            }
            Self::TooLong { index, len } => write!(
                f,
                "unit {index} is {len} bytes, more than {MAX_PARAMETER_SET_LEN}"
            ),
            Self::Missing(kind) => write!(f, "no {kind}"),
        }
    }
}

impl std::error::Error for ParameterSetError {}

/// The newest parameter sets of one H.264 or H.265 stream.
#[derive(Clone, Debug)]
pub struct ParameterSets {
    codec: Codec,
    /// H.264: SPS, PPS. H.265: VPS, SPS, PPS. Empty until seen. Capacity is reserved up front,
    /// so storing one (on the packet path) never allocates.
    nals: [Vec<u8>; 3],
    /// The aggregation packet's payload, rebuilt when a set changes; empty until every kind the
    /// codec needs has been seen.
    prelude: Vec<u8>,
}

impl ParameterSets {
    /// `None` for codecs without parameter sets.
    pub fn new(codec: Codec) -> Option<ParameterSets> {
        codec.parameter_sets_in_band().then(|| ParameterSets {
            codec,
            nals: std::array::from_fn(|_| Vec::with_capacity(MAX_PARAMETER_SET_LEN)),
            prelude: Vec::with_capacity(MAX_PRELUDE_LEN),
        })
    }

    /// Parameter sets given ahead of the stream (from the sender's SDP): each unit one NAL unit,
    /// every kind the codec needs present; a later unit replaces an earlier one of its kind.
    pub fn configured(codec: Codec, units: &[&[u8]]) -> Result<ParameterSets, ParameterSetError> {
        let mut sets = ParameterSets::new(codec).ok_or(ParameterSetError::NotApplicable(codec))?;
        for (index, unit) in units.iter().enumerate() {
            if sets.kind(unit).is_none() {
                return Err(ParameterSetError::NotAParameterSet { index });
            }
            if unit.len() > MAX_PARAMETER_SET_LEN {
                return Err(ParameterSetError::TooLong {
                    index,
                    len: unit.len(),
                });
            }
            sets.store(unit);
        }
        let names: &[&'static str] = if codec == Codec::H264 {
            &["SPS", "PPS"]
        } else {
            &["VPS", "SPS", "PPS"]
        };
        if let Some(i) = sets.nals[..names.len()].iter().position(Vec::is_empty) {
            return Err(ParameterSetError::Missing(names[i]));
        }
        sets.rebuild();
        Ok(sets)
    }

    /// The prelude payload, once every kind has been seen.
    pub fn prelude(&self) -> Option<&[u8]> {
        (!self.prelude.is_empty()).then_some(self.prelude.as_slice())
    }

    /// H.264 or H.265: the codec the sets were made for.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The NAL units kept, one per kind in decoding order: H.264 SPS, PPS; H.265 VPS, SPS, PPS.
    /// A kind not seen yet is empty. For an SDP's `sprop-*` (once [`Self::prelude`] is `Some`).
    pub fn units(&self) -> &[Vec<u8>] {
        &self.nals[..self.kinds()]
    }

    /// Forget every set: a restarted sender may have new ones.
    pub fn clear(&mut self) {
        self.nals.iter_mut().for_each(Vec::clear);
        self.prelude.clear();
    }

    /// Keep the parameter sets an RTP payload carries whole (single NAL unit or aggregation
    /// packet). Other payloads, and malformed ones, are ignored.
    pub fn observe(&mut self, payload: &[u8]) {
        let aggregate = match self.codec {
            Codec::H264 => payload
                .first()
                .is_some_and(|h| h & 0x1f == H264_STAP_A)
                .then(|| &payload[1..]),
            _ => payload
                .first()
                .is_some_and(|h| (h >> 1) & 0x3f == H265_AP)
                .then(|| payload.get(2..).unwrap_or_default()),
        };
        let mut changed = false;
        match aggregate {
            Some(units) => {
                let _ = for_each_aggregated(units, |nal| {
                    changed |= self.store(nal);
                    Ok(())
                });
            }
            None => changed = self.store(payload),
        }
        if changed {
            self.rebuild();
        }
    }

    /// Store one NAL unit if it is a parameter set; true if that changed anything.
    fn store(&mut self, nal: &[u8]) -> bool {
        let Some(kind) = self.kind(nal) else {
            return false;
        };
        let slot = &mut self.nals[kind];
        if nal.len() > MAX_PARAMETER_SET_LEN || slot.as_slice() == nal {
            return false;
        }
        slot.clear();
        slot.extend_from_slice(nal);
        true
    }

    /// Index into `nals` for a parameter set, `None` for anything else.
    fn kind(&self, nal: &[u8]) -> Option<usize> {
        let index = match self.codec {
            Codec::H264 => match h264::parameter_set_type(*nal.first()?) {
                7 => 0,
                8 => 1,
                _ => return None,
            },
            _ => match h265::parameter_set_type(nal) {
                32 => 0,
                33 => 1,
                34 => 2,
                _ => return None,
            },
        };
        Some(index)
    }

    fn kinds(&self) -> usize {
        if self.codec == Codec::H264 {
            2
        } else {
            3
        }
    }

    fn rebuild(&mut self) {
        self.prelude.clear();
        let nals = &self.nals[..self.kinds()];
        if nals.iter().any(Vec::is_empty) {
            return;
        }
        match self.codec {
            Codec::H264 => {
                // RFC 6184 §5.7.1: the STAP-A's NRI is the highest of its units'.
                let nri = nals.iter().map(|n| n[0] & H264_NRI).max().unwrap_or(0);
                self.prelude.push(nri | H264_STAP_A);
            }
            _ => self
                .prelude
                .extend_from_slice(&h265::aggregation_header(nals.iter().map(Vec::as_slice))),
        }
        for nal in nals {
            self.prelude
                .extend_from_slice(&(nal.len() as u16).to_be_bytes());
            self.prelude.extend_from_slice(nal);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{self, PayloadInfo};
    use ::rtp::packetizer::Depacketizer;
    use bytes::Bytes;

    const SPS: [u8; 5] = [0x67, 0x42, 0xc0, 0x0b, 0xda];
    const PPS: [u8; 3] = [0x68, 0xce, 0x3c];
    const IDR: [u8; 3] = [0x65, 0x88, 0x84];

    fn stap(nals: &[&[u8]]) -> Vec<u8> {
        let mut p = vec![0x78];
        for nal in nals {
            p.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            p.extend_from_slice(nal);
        }
        p
    }

    /// What the webrtc-rs depacketizer makes of a payload: Annex B NAL units.
    fn annex_b(payload: &[u8]) -> Vec<u8> {
        let mut depacketizer = ::rtp::codecs::h264::H264Packet::default();
        depacketizer
            .depacketize(&Bytes::copy_from_slice(payload))
            .expect("webrtc-rs accepts the prelude")
            .to_vec()
    }

    #[test]
    fn h264_prelude_is_a_stap_a_of_sps_and_pps_once_both_are_seen() {
        let mut sets = ParameterSets::new(Codec::H264).unwrap();
        sets.observe(&SPS);
        assert_eq!(sets.prelude(), None, "no PPS yet");
        sets.observe(&IDR);
        sets.observe(&PPS);
        let prelude = sets.prelude().unwrap().to_vec();
        assert_eq!(prelude, stap(&[&SPS, &PPS]));
        let start = [0, 0, 0, 1];
        assert_eq!(annex_b(&prelude), [&start[..], &SPS, &start, &PPS].concat());
        let info: PayloadInfo = codec::inspect(Codec::H264, &prelude).unwrap();
        assert!(info.frame_start && info.keyframe && info.parameter_sets);
    }

    #[test]
    fn h264_sets_are_read_from_stap_a_and_the_newest_wins() {
        let mut sets = ParameterSets::new(Codec::H264).unwrap();
        sets.observe(&stap(&[&[0x09, 0x10], &SPS, &PPS, &IDR]));
        assert_eq!(sets.prelude().unwrap(), stap(&[&SPS, &PPS]));
        let new_sps = [0x67, 0x64, 0x00, 0x1f, 0xac];
        sets.observe(&new_sps);
        assert_eq!(sets.prelude().unwrap(), stap(&[&new_sps, &PPS]));
        // Low NRI on every unit: the STAP-A takes the highest.
        let mut quiet = ParameterSets::new(Codec::H264).unwrap();
        quiet.observe(&[0x27, 0x42]);
        quiet.observe(&[0x48, 0xce]);
        assert_eq!(quiet.prelude().unwrap()[0], 0x40 | 24);
    }

    #[test]
    fn oversized_malformed_and_other_units_are_ignored() {
        let mut sets = ParameterSets::new(Codec::H264).unwrap();
        let mut huge = vec![0x67; MAX_PARAMETER_SET_LEN + 1];
        huge[1] = 0x42;
        sets.observe(&huge);
        sets.observe(&PPS);
        assert_eq!(sets.prelude(), None);
        // Truncated STAP-A: nothing kept from it, and no panic.
        sets.observe(&stap(&[&SPS])[..4]);
        sets.observe(&[]);
        sets.observe(&[0xe7, 0x42]);
        assert_eq!(sets.prelude(), None);
        sets.observe(&SPS);
        assert!(sets.prelude().is_some());
        sets.clear();
        assert_eq!(sets.prelude(), None);
        assert!(ParameterSets::new(Codec::Vp8).is_none());
    }

    #[test]
    fn configured_sets_are_checked_and_make_the_same_prelude() {
        let sets = ParameterSets::configured(Codec::H264, &[&SPS, &PPS]).unwrap();
        assert_eq!(sets.prelude().unwrap(), stap(&[&SPS, &PPS]));
        let err = |codec, units: &[&[u8]]| ParameterSets::configured(codec, units).unwrap_err();
        assert_eq!(err(Codec::H264, &[&SPS]), ParameterSetError::Missing("PPS"));
        assert_eq!(
            err(Codec::H264, &[&SPS, &IDR]),
            ParameterSetError::NotAParameterSet { index: 1 }
        );
        assert_eq!(
            err(Codec::H264, &[&[]]),
            ParameterSetError::NotAParameterSet { index: 0 }
        );
        let mut long = vec![0x67; MAX_PARAMETER_SET_LEN + 1];
        long[1] = 0x42;
        assert_eq!(
            err(Codec::H264, &[&long]),
            ParameterSetError::TooLong {
                index: 0,
                len: MAX_PARAMETER_SET_LEN + 1
            }
        );
        assert_eq!(
            err(Codec::Opus, &[&SPS]),
            ParameterSetError::NotApplicable(Codec::Opus)
        );
        // An H.264 SPS is not an H.265 parameter set.
        assert_eq!(
            err(Codec::H265, &[&SPS]),
            ParameterSetError::NotAParameterSet { index: 0 }
        );
        assert_eq!(
            err(Codec::H265, &[&[0x42, 0x01, 0x01], &[0x44, 0x01, 0xc1]]),
            ParameterSetError::Missing("VPS")
        );
    }

    #[test]
    fn h265_prelude_is_an_ap_of_vps_sps_pps_with_the_lowest_tid() {
        let vps = [0x40, 0x01, 0x0c, 0x01];
        let sps = [0x42, 0x01, 0x01, 0x01];
        let pps = [0x44, 0x02, 0xc1, 0x72];
        let mut sets = ParameterSets::new(Codec::H265).unwrap();
        sets.observe(&vps);
        sets.observe(&pps);
        assert_eq!(sets.prelude(), None, "no SPS yet");
        sets.observe(&sps);
        let prelude = sets.prelude().unwrap();
        let mut expected = vec![H265_AP << 1, 0x01];
        for nal in [&vps[..], &sps, &pps] {
            expected.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            expected.extend_from_slice(nal);
        }
        assert_eq!(prelude, expected);
        let info = codec::inspect(Codec::H265, prelude).unwrap();
        assert!(info.frame_start && info.keyframe && info.parameter_sets);
        // Read back from an AP as well.
        let mut again = ParameterSets::new(Codec::H265).unwrap();
        again.observe(prelude);
        assert_eq!(again.prelude(), Some(prelude));
    }
}

//! H.265 (RFC 7798), single NAL unit, aggregation (AP) and fragmentation (FU) packets.
//!
//! `frame_start` follows H.265 §7.4.2.4.4: an access unit can begin with a VPS, SPS, PPS, AUD or
//! prefix SEI, or with the first slice segment of a picture (first_slice_segment_in_pic_flag, the
//! first bit after the 2-byte NAL header). It looks at the packet's first NAL only, or for FU at
//! the start fragment only.
//!
//! `keyframe` is true when the packet holds an IRAP slice (BLA, IDR or CRA) or a VPS/SPS, which
//! stand in for the IRAP they precede. A PPS does not count: some encoders resend it with
//! ordinary pictures, and a PPS alone would then turn every picture into a switch point. As with
//! H.264, parameter sets repeated inside an access unit make more than one switch point per
//! keyframe; the first one in the access unit is the real one.
//!
//! Assumes sprop-max-don-diff is 0 (no DONL/DOND fields), as in every WebRTC-style session; the
//! field cannot be detected from the packet. PACI packets and NAL types 51-63 (unspecified, left
//! to other payload formats) are accepted but never reported as frame starts.

use super::{PayloadError, PayloadInfo};

const IRAP: std::ops::RangeInclusive<u8> = 16..=21;
const VCL_END: u8 = 31;
const VPS: u8 = 32;
const SPS: u8 = 33;
const PPS: u8 = 34;
const AUD: u8 = 35;
const PREFIX_SEI: u8 = 39;
const AP: u8 = 48;
const FU: u8 = 49;
const PACI: u8 = 50;
const FU_START: u8 = 0x80;
const HEADER_LEN: usize = 2;

/// [`super::inspect`] for H.265: reads one RTP payload as the module doc describes.
pub fn inspect(payload: &[u8]) -> Result<PayloadInfo, PayloadError> {
    if payload.is_empty() {
        return Err(PayloadError::Empty);
    }
    let (t, rest) = nal_header(payload)?;
    match t {
        AP => aggregation(rest),
        FU => fragment(rest),
        0..AP => Ok(PayloadInfo {
            frame_start: starts_access_unit(t, rest)?,
            keyframe: is_key(t),
            parameter_sets: is_parameter_set(t),
            ..PayloadInfo::default()
        }),
        _ => Ok(PayloadInfo::default()),
    }
}

/// Aggregated NAL units, each behind a 16-bit size; an aggregate inside one is invalid.
fn aggregation(rest: &[u8]) -> Result<PayloadInfo, PayloadError> {
    super::aggregated_units(rest, |nal| {
        if nal.len() < HEADER_LEN {
            // The size itself says there is no room for a NAL header.
            return Err(PayloadError::Invalid);
        }
        let (t, body) = nal_header(nal)?;
        if t >= AP {
            return Err(PayloadError::Invalid);
        }
        Ok((starts_access_unit(t, body)?, is_key(t), is_parameter_set(t)))
    })
}

/// The FU header's type is the fragmented NAL's; its 2-byte header is not repeated, so the
/// fragment begins with the NAL's first payload byte.
fn fragment(rest: &[u8]) -> Result<PayloadInfo, PayloadError> {
    let (&fu_header, fragment) = rest.split_first().ok_or(PayloadError::Truncated)?;
    let t = fu_header & 0x3f;
    if (AP..=PACI).contains(&t) {
        return Err(PayloadError::Invalid);
    }
    if fragment.is_empty() {
        return Err(PayloadError::Truncated);
    }
    Ok(PayloadInfo {
        frame_start: fu_header & FU_START != 0 && starts_access_unit(t, fragment)?,
        keyframe: is_key(t),
        ..PayloadInfo::default()
    })
}

/// F(1) Type(6) LayerId(6) TID(3). The forbidden bit marks a corrupt NAL, and a temporal ID of
/// zero (nuh_temporal_id_plus1 == 0) is not allowed by the standard.
fn nal_header(nal: &[u8]) -> Result<(u8, &[u8]), PayloadError> {
    let [h0, h1, body @ ..] = nal else {
        return Err(PayloadError::Truncated);
    };
    if h0 & 0x80 != 0 || h1 & 0x07 == 0 {
        return Err(PayloadError::Invalid);
    }
    Ok(((h0 >> 1) & 0x3f, body))
}

fn starts_access_unit(t: u8, body: &[u8]) -> Result<bool, PayloadError> {
    Ok(match t {
        VPS | SPS | PPS | AUD | PREFIX_SEI => true,
        0..=VCL_END => body.first().ok_or(PayloadError::Truncated)? & 0x80 != 0,
        _ => false,
    })
}

fn is_key(t: u8) -> bool {
    IRAP.contains(&t) || t == VPS || t == SPS
}

fn is_parameter_set(t: u8) -> bool {
    matches!(t, VPS | SPS | PPS)
}

/// The NAL type of a VPS, SPS or PPS (0 for any other NAL unit), from its two-byte header.
pub(crate) fn parameter_set_type(nal: &[u8]) -> u8 {
    match nal_header(nal) {
        Ok((t @ (VPS | SPS | PPS), _)) => t,
        _ => 0,
    }
}

/// The AP's own NAL header for the given NAL units (each at least two bytes): RFC 7798 §4.4.2
/// asks for the lowest LayerId and the lowest TID among them.
pub(crate) fn aggregation_header<'a>(nals: impl Iterator<Item = &'a [u8]>) -> [u8; 2] {
    let (layer, tid) = nals.fold((0x3f, 7), |(layer, tid), nal| {
        let nal_layer = (nal[0] & 1) << 5 | nal[1] >> 3;
        (nal_layer.min(layer), (nal[1] & 7).min(tid))
    });
    [AP << 1 | layer >> 5, (layer & 0x1f) << 3 | tid]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nal(t: u8, body: &[u8]) -> Vec<u8> {
        [&[t << 1, 0x01][..], body].concat()
    }

    fn ap(nals: &[&[u8]]) -> Vec<u8> {
        let mut p = vec![AP << 1, 0x01];
        for nal in nals {
            p.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            p.extend_from_slice(nal);
        }
        p
    }

    fn fu(fu_header: u8, body: &[u8]) -> Vec<u8> {
        [&[FU << 1, 0x01, fu_header][..], body].concat()
    }

    fn flags(p: &[u8]) -> (bool, bool) {
        let info = inspect(p).unwrap();
        assert_eq!(info.rewrite_len(), 0);
        (info.frame_start, info.keyframe)
    }

    #[test]
    fn single_nal_units() {
        assert_eq!(flags(&nal(VPS, &[0x0c])), (true, true));
        assert_eq!(flags(&nal(SPS, &[0x01])), (true, true));
        assert_eq!(flags(&nal(PPS, &[0xc1])), (true, false));
        assert_eq!(flags(&nal(AUD, &[0x50])), (true, false));
        assert_eq!(flags(&nal(PREFIX_SEI, &[0x05])), (true, false));
        // Suffix SEI and end of sequence never open an access unit.
        assert_eq!(flags(&nal(40, &[0x05])), (false, false));
        assert_eq!(flags(&nal(36, &[])), (false, false));
        for t in IRAP {
            assert_eq!(flags(&nal(t, &[0xaf])), (true, true), "type {t}");
            assert_eq!(flags(&nal(t, &[0x2f])), (false, true), "type {t}");
        }
        assert_eq!(flags(&nal(1, &[0xd0])), (true, false));
        assert_eq!(flags(&nal(1, &[0x50])), (false, false));
        assert_eq!(flags(&nal(0, &[0x80])), (true, false));
    }

    #[test]
    fn aggregation_packets() {
        let p = ap(&[&nal(VPS, &[0x0c]), &nal(SPS, &[0x01]), &nal(PPS, &[0xc1])]);
        assert_eq!(flags(&p), (true, true));
        assert_eq!(flags(&ap(&[&nal(PPS, &[0xc1])])), (true, false));
        assert_eq!(
            flags(&ap(&[&nal(40, &[]), &nal(19, &[0x20])])),
            (false, true)
        );
    }

    #[test]
    fn fragmentation_units() {
        assert_eq!(flags(&fu(0x80 | 19, &[0xaf])), (true, true));
        assert_eq!(flags(&fu(21, &[0xaf])), (false, true));
        assert_eq!(flags(&fu(0x40 | 21, &[0xaf])), (false, true));
        assert_eq!(flags(&fu(0x80 | 1, &[0xd0])), (true, false));
        assert_eq!(flags(&fu(0x80 | 1, &[0x50])), (false, false));
        assert_eq!(flags(&fu(0x80 | PREFIX_SEI, &[0x05])), (true, false));
    }

    #[test]
    fn paci_and_unspecified_types_are_accepted_but_never_frame_starts() {
        assert_eq!(
            flags(&nal(PACI, &[0x26, 0x00, 0x28, 0x01, 0xaf])),
            (false, false)
        );
        assert_eq!(flags(&nal(63, &[0xff])), (false, false));
    }

    #[test]
    fn errors() {
        assert_eq!(inspect(&[]), Err(PayloadError::Empty));
        assert_eq!(inspect(&[0x40]), Err(PayloadError::Truncated));
        // Forbidden bit; temporal ID 0.
        assert_eq!(inspect(&[0xc0, 0x01, 0x00]), Err(PayloadError::Invalid));
        assert_eq!(inspect(&[0x40, 0x00, 0x00]), Err(PayloadError::Invalid));
        // Slice with no slice header.
        assert_eq!(inspect(&nal(19, &[])), Err(PayloadError::Truncated));
        assert_eq!(inspect(&ap(&[])), Err(PayloadError::Truncated));
        assert_eq!(inspect(&ap(&[&[0x40]])), Err(PayloadError::Invalid));
        assert_eq!(
            inspect(&ap(&[&ap(&[&nal(VPS, &[])])])),
            Err(PayloadError::Invalid)
        );
        assert_eq!(
            inspect(&ap(&[&nal(VPS, &[0x0c])])[..6]),
            Err(PayloadError::Truncated)
        );
        assert_eq!(inspect(&fu(0x80 | FU, &[0x00])), Err(PayloadError::Invalid));
        assert_eq!(inspect(&fu(0x80 | 19, &[])), Err(PayloadError::Truncated));
        assert_eq!(inspect(&[FU << 1, 0x01]), Err(PayloadError::Truncated));
    }

    #[test]
    fn every_prefix_is_handled() {
        let p = ap(&[
            &nal(VPS, &[0x0c, 0x01]),
            &nal(SPS, &[0x01]),
            &nal(19, &[0xaf]),
        ]);
        for n in 0..p.len() {
            let _ = inspect(&p[..n]);
        }
        assert_eq!(flags(&p), (true, true));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(info) = inspect(&bytes) {
                prop_assert_eq!(info.rewrite_len(), 0);
            }
        }

        #[test]
        fn arbitrary_aggregation_never_panics(nals in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..8), 0..6)) {
            let refs: Vec<&[u8]> = nals.iter().map(Vec::as_slice).collect();
            let _ = inspect(&ap(&refs));
        }
    }
}

//! H.264 (RFC 6184), single NAL unit, STAP-A and FU-A packets.
//!
//! `frame_start` follows H.264 §7.4.1.2.3: an access unit can begin with an AUD, SPS, PPS or SEI,
//! or with the first slice of a picture (first_mb_in_slice == 0, which ue(v) codes as the single
//! bit `1` right after the NAL header). It looks at the packet's first NAL only, or for FU-A at
//! the start fragment only. A packet may be a frame start without being the first packet of its
//! access unit: packetizers put SPS/PPS, SEI and the first slice in separate packets.
//!
//! `keyframe` is true when the packet holds an IDR slice or an SPS. An SPS stands in for the IDR
//! it precedes, so a switch lands before the parameter sets instead of after them. That is also
//! why a switch point is not always the first packet of its access unit: rtph264pay repeats
//! SPS/PPS before every IDR slice of a multi-slice picture, and only the first repetition opens
//! the picture. Callers that can should prefer a switch point that also starts a new timestamp.
//!
//! Interleaved-mode packets (STAP-B, MTAP16/24, FU-B) are accepted but never reported as frame
//! starts: their decoding order is not the arrival order, so no packet is a safe place to begin.

use super::{PayloadError, PayloadInfo};

const SLICE: u8 = 1;
const IDR: u8 = 5;
const SEI: u8 = 6;
const SPS: u8 = 7;
const PPS: u8 = 8;
const AUD: u8 = 9;
const STAP_A: u8 = 24;
const FU_A: u8 = 28;
const FORBIDDEN: u8 = 0x80;
const TYPE_MASK: u8 = 0x1f;
const FU_START: u8 = 0x80;

/// [`super::inspect`] for H.264: reads one RTP payload as the module doc describes.
pub fn inspect(payload: &[u8]) -> Result<PayloadInfo, PayloadError> {
    let (&header, rest) = payload.split_first().ok_or(PayloadError::Empty)?;
    match nal_type(header)? {
        STAP_A => stap_a(rest),
        FU_A => fu_a(rest),
        t @ 1..=23 => Ok(PayloadInfo {
            frame_start: starts_access_unit(t, rest)?,
            keyframe: is_key(t),
            parameter_sets: is_parameter_set(t),
            ..PayloadInfo::default()
        }),
        // STAP-B, MTAP16, MTAP24, FU-B.
        _ => Ok(PayloadInfo::default()),
    }
}

/// Aggregated NAL units, each behind a 16-bit size; an aggregate inside one is invalid.
fn stap_a(rest: &[u8]) -> Result<PayloadInfo, PayloadError> {
    super::aggregated_units(rest, |nal| {
        let (&header, body) = nal.split_first().ok_or(PayloadError::Invalid)?;
        let t = nal_type(header)?;
        if t >= STAP_A {
            return Err(PayloadError::Invalid);
        }
        Ok((starts_access_unit(t, body)?, is_key(t), is_parameter_set(t)))
    })
}

/// The FU header's type is the fragmented NAL's; its own header is not repeated, so the fragment
/// begins with the NAL's first payload byte.
fn fu_a(rest: &[u8]) -> Result<PayloadInfo, PayloadError> {
    let (&fu_header, fragment) = rest.split_first().ok_or(PayloadError::Truncated)?;
    let t = fu_header & TYPE_MASK;
    if t == 0 || t >= STAP_A {
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

/// Type 0 and 30/31 are unspecified and no RTP packetizer sends them; the forbidden bit marks a
/// NAL known to be corrupt.
fn nal_type(header: u8) -> Result<u8, PayloadError> {
    let t = header & TYPE_MASK;
    if header & FORBIDDEN != 0 || t == 0 || t >= 30 {
        return Err(PayloadError::Invalid);
    }
    Ok(t)
}

fn starts_access_unit(t: u8, body: &[u8]) -> Result<bool, PayloadError> {
    Ok(match t {
        AUD | SPS | PPS | SEI => true,
        SLICE | IDR => body.first().ok_or(PayloadError::Truncated)? & 0x80 != 0,
        _ => false,
    })
}

fn is_key(t: u8) -> bool {
    t == IDR || t == SPS
}

/// The NAL type of an SPS or a PPS (0 for any other NAL unit), from its one-byte header.
pub(crate) fn parameter_set_type(header: u8) -> u8 {
    match header & TYPE_MASK {
        t @ (SPS | PPS) if header & FORBIDDEN == 0 => t,
        _ => 0,
    }
}

fn is_parameter_set(t: u8) -> bool {
    t == SPS || t == PPS
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SPS_NAL: [u8; 5] = [0x67, 0x42, 0xc0, 0x0b, 0xda];
    const PPS_NAL: [u8; 3] = [0x68, 0xce, 0x3c];
    const IDR_FIRST: [u8; 3] = [0x65, 0x88, 0x84];
    const IDR_SECOND: [u8; 3] = [0x65, 0x05, 0x22];
    const P_FIRST: [u8; 3] = [0x41, 0x9a, 0x20];
    const P_SECOND: [u8; 3] = [0x41, 0x05, 0x26];

    fn stap(nals: &[&[u8]]) -> Vec<u8> {
        let mut p = vec![0x78];
        for nal in nals {
            p.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            p.extend_from_slice(nal);
        }
        p
    }

    fn flags(p: &[u8]) -> (bool, bool) {
        let info = inspect(p).unwrap();
        assert_eq!(info.rewrite_len(), 0);
        (info.frame_start, info.keyframe)
    }

    #[test]
    fn single_nal_units() {
        assert_eq!(flags(&SPS_NAL), (true, true));
        assert_eq!(flags(&PPS_NAL), (true, false));
        assert_eq!(flags(&[0x09, 0x10]), (true, false));
        assert_eq!(flags(&[0x06, 0x05, 0x10]), (true, false));
        assert_eq!(flags(&IDR_FIRST), (true, true));
        assert_eq!(flags(&IDR_SECOND), (false, true));
        assert_eq!(flags(&P_FIRST), (true, false));
        assert_eq!(flags(&P_SECOND), (false, false));
        // End of sequence, filler: neither starts an access unit.
        assert_eq!(flags(&[0x0a]), (false, false));
        assert_eq!(flags(&[0x0c, 0xff]), (false, false));
    }

    #[test]
    fn stap_a_reads_first_nal_and_all_types() {
        assert_eq!(flags(&stap(&[&SPS_NAL, &PPS_NAL])), (true, true));
        assert_eq!(flags(&stap(&[&[0x09, 0x30], &P_FIRST])), (true, false));
        // A trailing IDR makes the packet key even though its first NAL is not.
        assert_eq!(flags(&stap(&[&[0x0c, 0xff], &IDR_SECOND])), (false, true));
    }

    #[test]
    fn fu_a_start_fragment_decides_frame_start() {
        assert_eq!(flags(&[0x7c, 0x85, 0x88, 0x84]), (true, true));
        assert_eq!(flags(&[0x7c, 0x85, 0x05, 0x22]), (false, true));
        assert_eq!(flags(&[0x7c, 0x05, 0xff]), (false, true));
        assert_eq!(flags(&[0x7c, 0x45, 0xff]), (false, true));
        assert_eq!(flags(&[0x5c, 0x81, 0x9a]), (true, false));
        assert_eq!(flags(&[0x5c, 0x01, 0x9a]), (false, false));
        // Start fragment of an SEI.
        assert_eq!(flags(&[0x7c, 0x86, 0x05]), (true, false));
    }

    #[test]
    fn interleaved_mode_packets_are_accepted_but_never_frame_starts() {
        for t in [25u8, 26, 27, 29] {
            assert_eq!(flags(&[0x60 | t, 0x00, 0x10, 0x65, 0x88]), (false, false));
        }
    }

    #[test]
    fn errors() {
        assert_eq!(inspect(&[]), Err(PayloadError::Empty));
        for header in [0x00, 0x1e, 0x1f, 0x80 | 0x65, 0xe7] {
            assert_eq!(
                inspect(&[header, 0x80]),
                Err(PayloadError::Invalid),
                "{header:#x}"
            );
        }
        // Slice NAL without a slice header.
        assert_eq!(inspect(&[0x65]), Err(PayloadError::Truncated));
        assert_eq!(inspect(&[0x78]), Err(PayloadError::Truncated));
        assert_eq!(inspect(&[0x78, 0x00]), Err(PayloadError::Truncated));
        assert_eq!(
            inspect(&[0x78, 0x00, 0x05, 0x67]),
            Err(PayloadError::Truncated)
        );
        assert_eq!(inspect(&[0x78, 0x00, 0x00]), Err(PayloadError::Invalid));
        // STAP-A inside STAP-A; FU-A carrying an FU-A; forbidden bit on an aggregated NAL.
        assert_eq!(inspect(&stap(&[&[0x78, 0x00]])), Err(PayloadError::Invalid));
        assert_eq!(inspect(&[0x7c, 0x9c, 0x00]), Err(PayloadError::Invalid));
        assert_eq!(inspect(&stap(&[&[0xe7, 0x00]])), Err(PayloadError::Invalid));
        assert_eq!(inspect(&[0x7c, 0x80, 0x00]), Err(PayloadError::Invalid));
        assert_eq!(inspect(&[0x7c]), Err(PayloadError::Truncated));
        assert_eq!(inspect(&[0x7c, 0x85]), Err(PayloadError::Truncated));
    }

    #[test]
    fn every_prefix_is_handled() {
        let p = stap(&[&[0x09, 0x10], &SPS_NAL, &PPS_NAL, &IDR_FIRST]);
        for n in 0..p.len() {
            // Valid prefixes exist (ending on a NAL boundary); only panics are wrong.
            let _ = inspect(&p[..n]);
        }
        assert_eq!(flags(&p), (true, true));
        let fu = [0x7c, 0x85, 0x88];
        assert!(inspect(&fu[..2]).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(info) = inspect(&bytes) {
                prop_assert_eq!(info.rewrite_len(), 0);
            }
        }

        #[test]
        fn arbitrary_stap_a_never_panics(nals in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..8), 0..6)) {
            let refs: Vec<&[u8]> = nals.iter().map(Vec::as_slice).collect();
            let _ = inspect(&stap(&refs));
        }
    }
}

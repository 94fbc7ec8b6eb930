//! VP9 (RFC 9628).
//!
//! `frame_start` means the start of a whole picture: B=1 on the lowest spatial layer (SID 0, or
//! no layer indices at all). A B=1 packet of a higher spatial layer starts only a layer frame
//! inside a picture that already began; a decoder or a splicer counting pictures must not treat
//! it as a new one. A stream whose pictures omit spatial layer 0 therefore has no frame starts;
//! no known encoder produces that.
//!
//! `keyframe` needs two agreeing signals on the picture's first packet: the descriptor's P=0 (not
//! inter-picture predicted) and a VP9 uncompressed header whose frame_type is KEY_FRAME. P=0 alone
//! also covers intra-only frames, which keep older reference buffers alive and so are not a safe
//! place for a decoder to begin.
//!
//! The picture ID and TL0PICIDX are reported for the splicer; TL0PICIDX only exists in
//! non-flexible mode (F=0), where it follows the layer indices.

use super::{PayloadError, PayloadInfo, PictureIdField, Tl0PicIdxField};

const I: u8 = 0x80;
const P: u8 = 0x40;
const L: u8 = 0x20;
const F: u8 = 0x10;
const B: u8 = 0x08;
const V: u8 = 0x02;
const M: u8 = 0x80;
/// P_DIFF continuation: another reference index follows.
const N: u8 = 0x01;
const MAX_P_DIFF: usize = 3;

/// [`super::inspect`] for VP9: reads one RTP payload as the module doc describes.
pub fn inspect(payload: &[u8]) -> Result<PayloadInfo, PayloadError> {
    let (&b0, _) = payload.split_first().ok_or(PayloadError::Empty)?;
    let mut info = PayloadInfo::default();
    let mut pos = 1;
    if b0 & I != 0 {
        let hi = byte(payload, pos)?;
        let wide = hi & M != 0;
        let value = if wide {
            u16::from_be_bytes([hi & !M, byte(payload, pos + 1)?])
        } else {
            u16::from(hi)
        };
        info.picture_id = Some(PictureIdField {
            offset: pos as u8,
            wide,
            value,
        });
        pos += if wide { 2 } else { 1 };
    }
    let mut base_layer = true;
    if b0 & L != 0 {
        // TID(3) U(1) SID(3) D(1).
        let layer = byte(payload, pos)?;
        base_layer = (layer >> 1) & 0x07 == 0;
        pos += 1;
        if b0 & F == 0 {
            info.tl0picidx = Some(Tl0PicIdxField {
                offset: pos as u8,
                value: byte(payload, pos)?,
            });
            pos += 1;
        }
    }
    if b0 & F != 0 && b0 & P != 0 {
        pos = skip_p_diffs(payload, pos)?;
    }
    if b0 & V != 0 {
        pos = skip_scalability_structure(payload, pos)?;
    }
    let frame = payload.get(pos..).unwrap_or_default();
    let (&header, _) = frame.split_first().ok_or(PayloadError::Truncated)?;
    info.frame_start = b0 & B != 0 && base_layer;
    if info.frame_start {
        let key_header = is_key_frame_header(header)?;
        info.keyframe = b0 & P == 0 && key_header;
    }
    Ok(info)
}

fn skip_p_diffs(payload: &[u8], mut pos: usize) -> Result<usize, PayloadError> {
    for _ in 0..MAX_P_DIFF {
        let p_diff = byte(payload, pos)?;
        pos += 1;
        if p_diff & N == 0 {
            return Ok(pos);
        }
    }
    // A fourth reference: VP9 frames have at most three.
    Err(PayloadError::Invalid)
}

/// N_S(3) Y G, then (N_S+1) x 4 bytes of resolution if Y, then N_G picture groups if G, each a
/// TID/U/R byte followed by R P_DIFF bytes.
fn skip_scalability_structure(payload: &[u8], mut pos: usize) -> Result<usize, PayloadError> {
    let ss = byte(payload, pos)?;
    pos += 1;
    if ss & 0x10 != 0 {
        pos += (usize::from(ss >> 5) + 1) * 4;
    }
    if ss & 0x08 != 0 {
        let groups = byte(payload, pos)?;
        pos += 1;
        for _ in 0..groups {
            let group = byte(payload, pos)?;
            pos += 1 + usize::from((group >> 2) & 0x03);
        }
    }
    if pos > payload.len() {
        return Err(PayloadError::Truncated);
    }
    Ok(pos)
}

/// Reads frame_marker, profile, show_existing_frame and frame_type from the first byte of the
/// VP9 uncompressed header (bits MSB first). A superframe also begins with its first frame's
/// header, so this holds for both.
fn is_key_frame_header(header: u8) -> Result<bool, PayloadError> {
    if header >> 6 != 0b10 {
        return Err(PayloadError::Invalid);
    }
    let profile = ((header >> 5) & 1) | (((header >> 4) & 1) << 1);
    // Profile 3 spends one more (reserved zero) bit before show_existing_frame.
    let rest = if profile == 3 {
        header << 5
    } else {
        header << 4
    };
    let show_existing_frame = rest & 0x80 != 0;
    let frame_type = rest & 0x40 != 0;
    Ok(!show_existing_frame && !frame_type)
}

fn byte(payload: &[u8], pos: usize) -> Result<u8, PayloadError> {
    payload.get(pos).copied().ok_or(PayloadError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const E: u8 = 0x04;
    /// Uncompressed header, profile 0: key frame, shown; then the sync code.
    const KEY: [u8; 4] = [0x82, 0x49, 0x83, 0x42];
    /// Profile 0 inter frame.
    const INTER: [u8; 2] = [0x86, 0x00];
    /// Profile 0 intra-only frame: frame_type=1 but coded without references (P=0).
    const INTRA_ONLY: [u8; 2] = [0x86, 0x08];

    fn packet(descriptor: &[u8], rest: &[u8]) -> Vec<u8> {
        [descriptor, rest].concat()
    }

    #[test]
    fn recorded_gstreamer_keyframe_descriptor() {
        // rtpvp9pay: I|B|V, 15-bit picture ID, SS with one 160x120 layer and one group.
        let d = [
            I | B | V,
            0xce,
            0x9c,
            0x18,
            0x00,
            0xa0,
            0x00,
            0x78,
            0x01,
            0x04,
            0x01,
        ];
        let info = inspect(&packet(&d, &KEY)).unwrap();
        assert!(info.is_switch_point());
        let pid = info.picture_id.unwrap();
        assert_eq!((pid.offset, pid.wide, pid.value), (1, true, 0x4e9c));
        assert_eq!(info.rewrite_len(), 3);
    }

    #[test]
    fn non_flexible_layer_indices_carry_tl0picidx() {
        // SID 0 key picture, 7-bit picture ID.
        let info = inspect(&packet(&[I | L | B, 0x05, 0x00, 0x2a], &KEY)).unwrap();
        assert!(info.is_switch_point());
        let tl0 = info.tl0picidx.unwrap();
        assert_eq!((tl0.offset, tl0.value), (3, 0x2a));
        assert_eq!(info.rewrite_len(), 4);
        // SID 1 of the same picture, not inter-predicted: a layer frame, not a picture start.
        let info = inspect(&packet(&[I | L | B, 0x05, 0x02, 0x2a], &KEY)).unwrap();
        assert!(!info.frame_start && !info.keyframe);
        assert_eq!(info.tl0picidx.unwrap().offset, 3);
    }

    #[test]
    fn flexible_mode_has_p_diffs_and_no_tl0picidx() {
        let d = [I | P | L | F | B | E, 0x80, 0x07, 0x20, 0x03, 0x05, 0x04];
        let info = inspect(&packet(&d, &INTER)).unwrap();
        assert!(info.frame_start && !info.keyframe);
        assert_eq!(info.tl0picidx, None);
        assert_eq!(info.picture_id.unwrap().value, 7);
        // A fourth P_DIFF is impossible.
        let d = [I | P | F | B, 0x07, 0x03, 0x05, 0x07, 0x08];
        assert_eq!(inspect(&packet(&d, &INTER)), Err(PayloadError::Invalid));
    }

    #[test]
    fn keyframe_needs_p_clear_and_a_key_frame_header() {
        assert!(inspect(&packet(&[B], &KEY)).unwrap().is_switch_point());
        assert!(!inspect(&packet(&[B], &INTRA_ONLY)).unwrap().keyframe);
        assert!(!inspect(&packet(&[P | B], &KEY)).unwrap().keyframe);
        // Profile 3 key frame: one reserved bit shifts show_existing_frame and frame_type.
        assert!(inspect(&[B, 0xb1]).unwrap().keyframe);
        assert!(!inspect(&[B, 0xb2]).unwrap().keyframe);
        // show_existing_frame repeats an old frame: nothing to start from.
        assert!(!inspect(&[B, 0x88]).unwrap().keyframe);
        // Middle packets carry arbitrary frame data and say nothing about the frame.
        let info = inspect(&[I, 0x11, 0x00]).unwrap();
        assert!(!info.frame_start && !info.keyframe);
    }

    #[test]
    fn scalability_structure_without_resolution_or_groups() {
        let info = inspect(&packet(&[B | V, 0x40], &KEY)).unwrap();
        assert!(info.is_switch_point());
        // N_S=2 with Y: three 4-byte resolutions, the last one cut short.
        let d = [B | V, 0x50, 0, 1, 0, 1, 0, 2, 0, 2, 0, 4, 0];
        assert_eq!(inspect(&packet(&d, &[])), Err(PayloadError::Truncated));
    }

    #[test]
    fn errors() {
        assert_eq!(inspect(&[]), Err(PayloadError::Empty));
        assert_eq!(inspect(&[I | B]), Err(PayloadError::Truncated));
        assert_eq!(inspect(&[I | B, 0x80]), Err(PayloadError::Truncated));
        assert_eq!(inspect(&[B]), Err(PayloadError::Truncated));
        // Bad frame_marker on a frame's first packet.
        assert_eq!(inspect(&[B, 0x42]), Err(PayloadError::Invalid));
    }

    #[test]
    fn every_prefix_is_handled() {
        let d = [
            I | L | B | V,
            0x81,
            0x02,
            0x01,
            0x09,
            0x18,
            0,
            160,
            0,
            120,
            0x01,
            0x04,
            0x01,
        ];
        let p = packet(&d, &KEY);
        for n in 0..=p.len() {
            let r = inspect(&p[..n]);
            assert_eq!(r.is_ok(), n > d.len(), "prefix {n}: {r:?}");
        }
        assert!(inspect(&p).unwrap().is_switch_point());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(info) = inspect(&bytes) {
                prop_assert!(info.rewrite_len() <= super::super::MAX_REWRITE_LEN);
                prop_assert!(info.rewrite_len() <= bytes.len());
            }
        }
    }
}

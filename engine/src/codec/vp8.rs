//! VP8 (RFC 7741).
//!
//! The payload descriptor says where a frame starts (S=1 with partition index 0) and carries the
//! picture ID and TL0PICIDX a splicer rewrites. Whether the frame is a keyframe is only written in
//! the VP8 payload header (the first bytes of the frame), so it is exact on the frame's first
//! packet and `false` on every other packet.
//!
//! Reserved bits are ignored, as the RFC tells receivers to. The only hard errors are a
//! descriptor that runs past the packet, a descriptor with nothing after it, and a keyframe whose
//! start code is wrong (no encoder produces one, and a decoder started there would fail).

use super::{PayloadError, PayloadInfo, PictureIdField, Tl0PicIdxField};

const X: u8 = 0x80;
const S: u8 = 0x10;
const PID_MASK: u8 = 0x07;
const I: u8 = 0x80;
const L: u8 = 0x40;
const T: u8 = 0x20;
const K: u8 = 0x10;
const M: u8 = 0x80;

/// Inverse key frame flag in the first byte of the VP8 payload header.
const P: u8 = 0x01;
/// Size0/H/VER/P byte, Size1, Size2.
const HEADER_LEN: usize = 3;
/// Header, start code, 14-bit width and 14-bit height with their scale bits.
const KEY_HEADER_LEN: usize = HEADER_LEN + 3 + 4;
const START_CODE: [u8; 3] = [0x9d, 0x01, 0x2a];

/// [`super::inspect`] for VP8: reads one RTP payload as the module doc describes.
pub fn inspect(payload: &[u8]) -> Result<PayloadInfo, PayloadError> {
    let (&b0, _) = payload.split_first().ok_or(PayloadError::Empty)?;
    let mut info = PayloadInfo {
        frame_start: b0 & S != 0 && b0 & PID_MASK == 0,
        ..PayloadInfo::default()
    };
    let mut pos = 1;
    if b0 & X != 0 {
        let ext = byte(payload, pos)?;
        pos += 1;
        if ext & I != 0 {
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
        if ext & L != 0 {
            info.tl0picidx = Some(Tl0PicIdxField {
                offset: pos as u8,
                value: byte(payload, pos)?,
            });
            pos += 1;
        }
        // TID/Y/KEYIDX share one byte, present if either T or K is set.
        if ext & (T | K) != 0 {
            byte(payload, pos)?;
            pos += 1;
        }
    }
    // The descriptor is at most 6 bytes, so `pos` fits the u8 offsets above.
    let frame = payload.get(pos..).unwrap_or_default();
    if frame.is_empty() {
        return Err(PayloadError::Truncated);
    }
    if info.frame_start {
        if frame.len() < HEADER_LEN {
            return Err(PayloadError::Truncated);
        }
        info.keyframe = frame[0] & P == 0;
        if info.keyframe {
            if frame.len() < KEY_HEADER_LEN {
                return Err(PayloadError::Truncated);
            }
            if frame[HEADER_LEN..HEADER_LEN + 3] != START_CODE {
                return Err(PayloadError::Invalid);
            }
        }
    }
    Ok(info)
}

fn byte(payload: &[u8], pos: usize) -> Result<u8, PayloadError> {
    payload.get(pos).copied().ok_or(PayloadError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Keyframe payload header: P=0, show_frame, then start code, 160x120.
    const KEY: [u8; 10] = [0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0xa0, 0x00, 0x78, 0x00];
    /// Interframe payload header: P=1.
    const DELTA: [u8; 3] = [0x31, 0x01, 0x00];

    fn packet(descriptor: &[u8], rest: &[u8]) -> Vec<u8> {
        [descriptor, rest].concat()
    }

    #[test]
    fn minimal_descriptor_keyframe() {
        let info = inspect(&packet(&[S], &KEY)).unwrap();
        assert!(info.is_switch_point());
        assert_eq!(info.picture_id, None);
        assert_eq!(info.rewrite_len(), 0);
    }

    #[test]
    fn wide_picture_id_tl0_and_tid_byte() {
        let p = packet(&[X | S, I | L | T, 0x80 | 0x12, 0x34, 0x56, 0x40], &KEY);
        let info = inspect(&p).unwrap();
        assert!(info.is_switch_point());
        let pid = info.picture_id.unwrap();
        assert_eq!((pid.offset, pid.wide, pid.value), (2, true, 0x1234));
        let tl0 = info.tl0picidx.unwrap();
        assert_eq!((tl0.offset, tl0.value), (4, 0x56));
        assert_eq!(info.rewrite_len(), 5);
    }

    #[test]
    fn narrow_picture_id_and_keyidx_only() {
        let info = inspect(&packet(&[X | S, I | K, 0x7f, 0x03], &DELTA)).unwrap();
        assert!(info.frame_start && !info.keyframe);
        let pid = info.picture_id.unwrap();
        assert_eq!((pid.offset, pid.wide, pid.value), (2, false, 0x7f));
        assert_eq!(info.tl0picidx, None);
    }

    #[test]
    fn continuation_and_later_partitions_are_not_frame_starts() {
        // S=0: a middle packet; its bytes are arbitrary frame data.
        let info = inspect(&packet(&[X, I, 0x05], &[0x00, 0x00])).unwrap();
        assert!(!info.frame_start && !info.keyframe);
        assert_eq!(info.picture_id.unwrap().value, 5);
        // S=1 but partition 1: not the frame's first bytes, so no payload header is read.
        let info = inspect(&packet(&[S | 1], &[0x00])).unwrap();
        assert!(!info.frame_start && !info.keyframe);
    }

    #[test]
    fn errors() {
        assert_eq!(inspect(&[]), Err(PayloadError::Empty));
        // Descriptor with nothing after it.
        assert_eq!(inspect(&[S]), Err(PayloadError::Truncated));
        assert_eq!(inspect(&[X, I | L, 0x80]), Err(PayloadError::Truncated));
        // Keyframe header cut before the dimensions.
        assert_eq!(
            inspect(&packet(&[S], &KEY[..8])),
            Err(PayloadError::Truncated)
        );
        assert_eq!(
            inspect(&packet(&[S], &DELTA[..2])),
            Err(PayloadError::Truncated)
        );
        let mut bad = KEY;
        bad[4] = 0x02;
        assert_eq!(inspect(&packet(&[S], &bad)), Err(PayloadError::Invalid));
    }

    #[test]
    fn every_prefix_is_handled() {
        let p = packet(&[X | S, I | L | T | K, 0x81, 0x00, 0x07, 0xe0], &KEY);
        for n in 0..=p.len() {
            let r = inspect(&p[..n]);
            assert_eq!(r.is_ok(), n == p.len(), "prefix {n}: {r:?}");
        }
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

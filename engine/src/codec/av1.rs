//! AV1 (AOMedia "RTP Payload Format for AV1", v1.0).
//!
//! The payload is a one-byte aggregation header (Z Y W W N - - -) and OBU elements. With W=0 every
//! element has a LEB128 length; with W=1..3 there are exactly W elements and the last one runs to
//! the end of the packet. Z=1 means the first element continues an OBU from the previous packet,
//! so it has no OBU header of its own.
//!
//! `frame_start` is Z=0 with a first OBU that can open a temporal unit or a frame: temporal
//! delimiter (usually stripped by packetizers, but allowed), sequence header, frame header or
//! frame. As for VP9, an OBU extension with spatial_id > 0 starts only a layer frame inside a
//! picture that already began, so it is not a frame start. A temporal unit that opens with a
//! metadata OBU (HDR metadata, for one) is not recognised as a frame start; known packetizers put
//! a sequence header or frame first.
//!
//! `keyframe` is the N bit (first packet of a coded video sequence), or a sequence header in a
//! packet that starts a frame: packetizers that leave N at 0 still send the sequence header first
//! in every keyframe, and a decoder cannot start without one.

use super::{PayloadError, PayloadInfo};

const Z: u8 = 0x80;
const N: u8 = 0x08;
const OBU_FORBIDDEN: u8 = 0x80;
const OBU_EXTENSION: u8 = 0x04;
const OBU_SEQUENCE_HEADER: u8 = 1;
const OBU_TEMPORAL_DELIMITER: u8 = 2;
const OBU_FRAME_HEADER: u8 = 3;
const OBU_FRAME: u8 = 6;
/// The spec caps leb128() at 8 bytes.
const MAX_LEB128_LEN: usize = 8;

/// [`super::inspect`] for AV1: reads one RTP payload as the module doc describes.
pub fn inspect(payload: &[u8]) -> Result<PayloadInfo, PayloadError> {
    let (&aggregation, mut rest) = payload.split_first().ok_or(PayloadError::Empty)?;
    if rest.is_empty() {
        return Err(PayloadError::Truncated);
    }
    let count = usize::from((aggregation >> 4) & 0x03);
    let continues = aggregation & Z != 0;
    let mut info = PayloadInfo {
        keyframe: aggregation & N != 0,
        ..PayloadInfo::default()
    };
    let mut index = 0;
    let mut sequence_header = false;
    while !rest.is_empty() {
        index += 1;
        let element = if index == count {
            std::mem::take(&mut rest)
        } else {
            let (len, used) = leb128(rest)?;
            let tail = &rest[used..];
            if len > tail.len() {
                return Err(PayloadError::Truncated);
            }
            let (element, after) = tail.split_at(len);
            rest = after;
            element
        };
        // Even a fragment holds at least one byte; an empty element is never produced.
        if element.is_empty() {
            return Err(PayloadError::Invalid);
        }
        if index == 1 && continues {
            continue;
        }
        let (obu_type, spatial_id) = obu_header(element)?;
        if index == 1 {
            info.frame_start = spatial_id == 0
                && matches!(
                    obu_type,
                    OBU_SEQUENCE_HEADER | OBU_TEMPORAL_DELIMITER | OBU_FRAME_HEADER | OBU_FRAME
                );
        }
        sequence_header |= obu_type == OBU_SEQUENCE_HEADER;
    }
    if index < count {
        return Err(PayloadError::Truncated);
    }
    info.keyframe |= info.frame_start && sequence_header;
    Ok(info)
}

/// forbidden(1) type(4) extension_flag(1) has_size_field(1) reserved(1), then, with the
/// extension flag, temporal_id(3) spatial_id(2) reserved(3). Reserved OBU types are accepted:
/// decoders must ignore them.
fn obu_header(element: &[u8]) -> Result<(u8, u8), PayloadError> {
    let header = element[0];
    if header & OBU_FORBIDDEN != 0 {
        return Err(PayloadError::Invalid);
    }
    let spatial_id = if header & OBU_EXTENSION != 0 {
        let extension = element.get(1).ok_or(PayloadError::Truncated)?;
        (extension >> 3) & 0x03
    } else {
        0
    };
    Ok(((header >> 3) & 0x0f, spatial_id))
}

/// Returns the value and the number of bytes it took.
fn leb128(bytes: &[u8]) -> Result<(usize, usize), PayloadError> {
    let mut value: u64 = 0;
    for i in 0..MAX_LEB128_LEN {
        let byte = *bytes.get(i).ok_or(PayloadError::Truncated)?;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            // A length past usize cannot fit in the packet either.
            let len = usize::try_from(value).map_err(|_| PayloadError::Truncated)?;
            return Ok((len, i + 1));
        }
    }
    Err(PayloadError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const Y: u8 = 0x40;
    const W1: u8 = 0x10;
    const W2: u8 = 0x20;
    const W3: u8 = 0x30;

    fn obu(obu_type: u8, body: &[u8]) -> Vec<u8> {
        [&[obu_type << 3][..], body].concat()
    }

    /// W=0 packet: every element behind a one-byte length.
    fn packet(aggregation: u8, elements: &[&[u8]]) -> Vec<u8> {
        let mut p = vec![aggregation];
        for e in elements {
            p.push(e.len() as u8);
            p.extend_from_slice(e);
        }
        p
    }

    fn flags(p: &[u8]) -> (bool, bool) {
        let info = inspect(p).unwrap();
        assert_eq!(info.rewrite_len(), 0);
        (info.frame_start, info.keyframe)
    }

    #[test]
    fn keyframe_from_n_bit_or_sequence_header() {
        let sh = obu(OBU_SEQUENCE_HEADER, &[0x00, 0x00, 0x00]);
        let frame = obu(OBU_FRAME, &[0x10, 0x00]);
        assert_eq!(flags(&packet(N | Y, &[&sh, &frame])), (true, true));
        assert_eq!(flags(&packet(Y, &[&sh, &frame])), (true, true));
        // Temporal delimiter kept by the packetizer, then the sequence header.
        let td = obu(OBU_TEMPORAL_DELIMITER, &[]);
        assert_eq!(flags(&packet(0, &[&td, &sh, &frame])), (true, true));
        assert_eq!(flags(&packet(0, &[&frame])), (true, false));
        assert_eq!(
            flags(&packet(0, &[&obu(OBU_FRAME_HEADER, &[0x30])])),
            (true, false)
        );
        // A sequence header inside a frame that started earlier opens nothing.
        assert_eq!(flags(&packet(Z, &[&[0xaa, 0xbb], &sh])), (false, false));
        // N set by the packetizer is trusted on its own.
        assert_eq!(flags(&packet(N, &[&frame])), (true, true));
    }

    #[test]
    fn continuation_and_other_first_obus_are_not_frame_starts() {
        assert_eq!(flags(&[Z | Y | W1, 0x30, 0x10, 0x00]), (false, false));
        assert_eq!(
            flags(&packet(0, &[&obu(5, &[0x01]), &obu(OBU_FRAME, &[0x10])])),
            (false, false)
        );
        assert_eq!(flags(&packet(0, &[&obu(4, &[0x00])])), (false, false));
        // Reserved OBU types are legal and ignored.
        assert_eq!(flags(&packet(0, &[&obu(9, &[])])), (false, false));
    }

    #[test]
    fn extension_spatial_id() {
        // OBU_FRAME with extension: spatial_id 0 starts a picture, spatial_id 1 does not.
        let base = [OBU_FRAME << 3 | OBU_EXTENSION, 0x00, 0x10];
        let upper = [OBU_FRAME << 3 | OBU_EXTENSION, 0x08, 0x10];
        assert_eq!(flags(&packet(0, &[&base])), (true, false));
        assert_eq!(flags(&packet(0, &[&upper])), (false, false));
        assert_eq!(
            inspect(&packet(0, &[&base[..1]])),
            Err(PayloadError::Truncated)
        );
    }

    #[test]
    fn w_counts_elements_and_the_last_has_no_length() {
        let sh = obu(OBU_SEQUENCE_HEADER, &[0x00, 0x00]);
        let frame = obu(OBU_FRAME, &[0x10, 0x00, 0x01]);
        let mut p = vec![W2, sh.len() as u8];
        p.extend_from_slice(&sh);
        p.extend_from_slice(&frame);
        assert_eq!(flags(&p), (true, true));
        // W=3 but only two elements fit.
        p[0] = W3;
        assert_eq!(inspect(&p), Err(PayloadError::Truncated));
        // W=1: the whole rest is one OBU, whatever its bytes look like.
        assert_eq!(flags(&[W1, OBU_FRAME << 3, 0xff, 0xff]), (true, false));
        // Multi-byte LEB128 length (130 = 0x82 0x01).
        let big = obu(OBU_FRAME, &[0u8; 129]);
        let mut p = vec![0, 0x82, 0x01];
        p.extend_from_slice(&big);
        assert_eq!(flags(&p), (true, false));
    }

    #[test]
    fn errors() {
        assert_eq!(inspect(&[]), Err(PayloadError::Empty));
        assert_eq!(inspect(&[N]), Err(PayloadError::Truncated));
        // Length 5 with 2 bytes left; LEB128 cut off; LEB128 longer than 8 bytes.
        assert_eq!(
            inspect(&[0, 0x05, 0x30, 0x10]),
            Err(PayloadError::Truncated)
        );
        assert_eq!(inspect(&[0, 0x80]), Err(PayloadError::Truncated));
        assert_eq!(
            inspect(&[0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
            Err(PayloadError::Invalid)
        );
        // Zero-length element; forbidden bit.
        assert_eq!(inspect(&[0, 0x00, 0x01, 0x30]), Err(PayloadError::Invalid));
        assert_eq!(
            inspect(&packet(0, &[&[0xb0, 0x00]])),
            Err(PayloadError::Invalid)
        );
        // A forbidden bit in a continuation fragment is just data.
        assert!(inspect(&packet(Z, &[&[0xb0, 0x00]])).is_ok());
    }

    #[test]
    fn every_prefix_is_handled() {
        let sh = obu(OBU_SEQUENCE_HEADER, &[0x00, 0x00, 0x00]);
        let p = packet(
            N | Y,
            &[
                &obu(OBU_TEMPORAL_DELIMITER, &[]),
                &sh,
                &obu(OBU_FRAME, &[0x10]),
            ],
        );
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
        fn arbitrary_elements_never_panic(
            aggregation in any::<u8>(),
            elements in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..8), 0..5),
        ) {
            let refs: Vec<&[u8]> = elements.iter().map(Vec::as_slice).collect();
            let _ = inspect(&packet(aggregation, &refs));
        }
    }
}

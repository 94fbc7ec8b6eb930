//! Per-codec payload inspection: one plain function per codec, run once per packet on arrival.
//!
//! Each function reads only the RTP payload (after the RTP header, extensions and before padding)
//! and answers three questions: does this packet start a frame, is that frame a keyframe, and where
//! are the fields (VP8/VP9 picture ID, TL0PICIDX) that a splicer must rewrite so a decoder sees one
//! continuous stream. A packet where `frame_start && keyframe` is a *switch point*.
//!
//! Nothing here may panic on any input: payloads are network bytes.

pub mod av1;
pub mod h264;
pub mod h265;
pub mod opus;
pub mod parameter_sets;
pub mod vp8;
pub mod vp9;

use crate::types::Codec;

/// What a codec's payload says about one packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PayloadInfo {
    /// The packet carries the first bytes of a frame (picture, access unit, temporal unit).
    pub frame_start: bool,
    /// The packet belongs to a keyframe: one a decoder can start from without earlier frames.
    /// Only required to be exact on the packet that starts the frame.
    pub keyframe: bool,
    /// VP8/VP9 picture ID, if the payload descriptor carries one.
    pub picture_id: Option<PictureIdField>,
    /// VP8/VP9 TL0PICIDX, if the payload descriptor carries one.
    pub tl0picidx: Option<Tl0PicIdxField>,
    /// The packet carries an H.264/H.265 parameter set (VPS, SPS or PPS) as a whole NAL unit.
    pub parameter_sets: bool,
}

impl PayloadInfo {
    /// A decoder can start (or continue after a switch) at this packet.
    pub fn is_switch_point(&self) -> bool {
        self.frame_start && self.keyframe
    }

    /// Every packet of an audio codec is a switch point.
    pub const AUDIO: PayloadInfo = PayloadInfo {
        frame_start: true,
        keyframe: true,
        picture_id: None,
        tl0picidx: None,
        parameter_sets: false,
    };

    /// Number of payload bytes, from the start of the payload, that hold every rewritten field.
    pub fn rewrite_len(&self) -> usize {
        let pic = self
            .picture_id
            .map_or(0, |p| p.offset as usize + if p.wide { 2 } else { 1 });
        let tl0 = self.tl0picidx.map_or(0, |t| t.offset as usize + 1);
        pic.max(tl0)
    }
}

/// Where a picture ID sits in the payload and what it says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PictureIdField {
    /// Byte offset from the start of the RTP payload.
    pub offset: u8,
    /// 15-bit (M bit set, two bytes) rather than 7-bit (one byte).
    pub wide: bool,
    /// The picture ID as received (7 or 15 bits, per `wide`).
    pub value: u16,
}

impl PictureIdField {
    /// Number of distinct values: the field wraps here.
    pub fn modulus(&self) -> u32 {
        self.mask() + 1
    }

    /// The field's values wrap at a power of two; this masks a value into range.
    pub fn mask(&self) -> u32 {
        if self.wide {
            (1 << 15) - 1
        } else {
            (1 << 7) - 1
        }
    }
}

/// Where a TL0PICIDX sits in the payload and what it says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tl0PicIdxField {
    /// Byte offset from the start of the RTP payload.
    pub offset: u8,
    /// The TL0PICIDX as received.
    pub value: u8,
}

/// Why a payload could not be inspected. The packet is dropped as malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadError {
    /// No payload bytes at all.
    Empty,
    /// A descriptor or header says more bytes follow than the packet holds.
    Truncated,
    /// Bytes that no conforming packetizer produces (reserved values, impossible combinations).
    Invalid,
}

/// Largest `PayloadInfo::rewrite_len` any codec can return; sizes the per-transmit header buffer.
pub const MAX_REWRITE_LEN: usize = 8;

/// Walk NAL units aggregated behind 16-bit sizes (H.264 STAP-A, H.265 AP), which must tile `rest`
/// exactly. `unit` says of one NAL unit whether it can start an access unit, whether it is key
/// and whether it is a parameter set; the packet starts a frame if its first unit does, and is
/// key (or carries parameter sets) if any unit is (does).
pub(crate) fn aggregated_units(
    rest: &[u8],
    mut unit: impl FnMut(&[u8]) -> Result<(bool, bool, bool), PayloadError>,
) -> Result<PayloadInfo, PayloadError> {
    let mut info = PayloadInfo::default();
    let mut first = true;
    for_each_aggregated(rest, |nal| {
        let (starts, key, parameter_set) = unit(nal)?;
        if first {
            info.frame_start = starts;
            first = false;
        }
        info.keyframe |= key;
        info.parameter_sets |= parameter_set;
        Ok(())
    })?;
    Ok(info)
}

/// Call `unit` on each NAL unit of an aggregation payload (after its own header), checking that
/// the 16-bit sizes tile `rest` exactly.
pub(crate) fn for_each_aggregated(
    mut rest: &[u8],
    mut unit: impl FnMut(&[u8]) -> Result<(), PayloadError>,
) -> Result<(), PayloadError> {
    if rest.is_empty() {
        return Err(PayloadError::Truncated);
    }
    while !rest.is_empty() {
        let [hi, lo, tail @ ..] = rest else {
            return Err(PayloadError::Truncated);
        };
        let size = usize::from(u16::from_be_bytes([*hi, *lo]));
        if size > tail.len() {
            return Err(PayloadError::Truncated);
        }
        let (nal, after) = tail.split_at(size);
        unit(nal)?;
        rest = after;
    }
    Ok(())
}

/// Inspect one RTP payload of the given codec.
pub fn inspect(codec: Codec, payload: &[u8]) -> Result<PayloadInfo, PayloadError> {
    let info = match codec {
        Codec::Vp8 => vp8::inspect(payload),
        Codec::Vp9 => vp9::inspect(payload),
        Codec::H264 => h264::inspect(payload),
        Codec::H265 => h265::inspect(payload),
        Codec::Av1 => av1::inspect(payload),
        Codec::Opus => opus::inspect(payload),
    }?;
    debug_assert!(info.rewrite_len() <= MAX_REWRITE_LEN);
    Ok(info)
}

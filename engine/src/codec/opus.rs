//! Opus (RFC 7587): every packet is independently decodable as far as switching goes, so every
//! packet is a switch point. The payload is one Opus packet; its TOC byte must be present.

use super::{PayloadError, PayloadInfo};

/// [`super::inspect`] for Opus: reads one RTP payload as the module doc describes.
pub fn inspect(payload: &[u8]) -> Result<PayloadInfo, PayloadError> {
    if payload.is_empty() {
        return Err(PayloadError::Empty);
    }
    Ok(PayloadInfo::AUDIO)
}

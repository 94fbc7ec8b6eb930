//! A zero-copy view of an RTP packet (RFC 3550 §5.1) with RFC 8285 header extensions.
//!
//! `RtpHeader::parse` checks every length once; afterwards the offsets it stores are known to lie
//! inside the buffer, so the hot path slices without re-checking. Nothing here allocates or panics
//! on any input.

use crate::types::{RtpTime, SeqNo, Ssrc};

/// Smallest RTP header: V/P/X/CC, M/PT, sequence number, timestamp, SSRC.
pub const FIXED_HEADER_LEN: usize = 12;

/// RFC 8285 one-byte header extension profile.
const ONE_BYTE_PROFILE: u16 = 0xBEDE;
/// RFC 8285 two-byte header extension profile; the low 4 bits are "appbits".
const TWO_BYTE_PROFILE_MASK: u16 = 0xFFF0;
const TWO_BYTE_PROFILE: u16 = 0x1000;

/// Why bytes are not a valid RTP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtpError {
    /// Shorter than the 12-byte fixed header.
    TooShort,
    /// Version field is not 2.
    BadVersion,
    /// The CSRC list runs past the end of the packet.
    CsrcOverrun,
    /// The header extension runs past the end of the packet.
    ExtensionOverrun,
    /// Padding length is zero or longer than what follows the header.
    BadPadding,
    /// Longer than any UDP datagram can be; offsets are kept in 16 bits.
    TooLong,
}

/// Bounds of the header extension block, if the X bit is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtensionBlock {
    /// The 16-bit "defined by profile" field (0xBEDE for one-byte, 0x100x for two-byte).
    pub profile: u16,
    /// Offset in the packet of the first byte of extension data (after the 4-byte extension
    /// header).
    pub start: u16,
    /// Offset one past the last byte of extension data; `end - start` is a multiple of 4.
    pub end: u16,
}

impl ExtensionBlock {
    /// RFC 8285 one-byte header form (profile 0xBEDE).
    pub(crate) fn is_one_byte(&self) -> bool {
        self.profile == ONE_BYTE_PROFILE
    }

    /// RFC 8285 two-byte header form (profile 0x100x).
    pub(crate) fn is_two_byte(&self) -> bool {
        self.profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE
    }
}

/// The parsed, bounds-checked header of one RTP packet. Small and `Copy`, so it is stored with the
/// packet and the bytes are never parsed twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpHeader {
    /// The M bit: for video, the last packet of a frame.
    pub marker: bool,
    /// The 7-bit payload type.
    pub payload_type: u8,
    /// Sequence number, as on the wire.
    pub seq: SeqNo,
    /// Timestamp on the stream's RTP clock, as on the wire.
    pub timestamp: RtpTime,
    /// The stream's SSRC.
    pub ssrc: Ssrc,
    /// Number of CSRCs after the fixed header (0..=15).
    pub csrc_count: u8,
    /// The header extension block, if the X bit is set.
    pub extension: Option<ExtensionBlock>,
    /// Offset of the first payload byte (after CSRCs and the extension block).
    pub payload_start: u16,
    /// Offset one past the last payload byte (where padding starts).
    pub payload_end: u16,
    /// Total packet length, padding included.
    pub len: u16,
}

impl RtpHeader {
    /// Parse and bounds-check the header of `buf`.
    pub fn parse(buf: &[u8]) -> Result<RtpHeader, RtpError> {
        if buf.len() < FIXED_HEADER_LEN {
            return Err(RtpError::TooShort);
        }
        if buf.len() > u16::MAX as usize {
            return Err(RtpError::TooLong);
        }
        let b0 = buf[0];
        if b0 >> 6 != 2 {
            return Err(RtpError::BadVersion);
        }
        let has_padding = b0 & 0x20 != 0;
        let has_extension = b0 & 0x10 != 0;
        let csrc_count = b0 & 0x0f;
        let len = buf.len();

        let mut offset = FIXED_HEADER_LEN + 4 * csrc_count as usize;
        if offset > len {
            return Err(RtpError::CsrcOverrun);
        }
        let extension = if has_extension {
            if offset + 4 > len {
                return Err(RtpError::ExtensionOverrun);
            }
            let profile = u16::from_be_bytes([buf[offset], buf[offset + 1]]);
            let words = u16::from_be_bytes([buf[offset + 2], buf[offset + 3]]) as usize;
            let start = offset + 4;
            let end = start + 4 * words;
            if end > len {
                return Err(RtpError::ExtensionOverrun);
            }
            offset = end;
            Some(ExtensionBlock {
                profile,
                start: start as u16,
                end: end as u16,
            })
        } else {
            None
        };

        let mut payload_end = len;
        if has_padding {
            let pad = buf[len - 1] as usize;
            if pad == 0 || pad > len - offset {
                return Err(RtpError::BadPadding);
            }
            payload_end = len - pad;
        }

        Ok(RtpHeader {
            marker: buf[1] & 0x80 != 0,
            payload_type: buf[1] & 0x7f,
            seq: SeqNo(u16::from_be_bytes([buf[2], buf[3]])),
            timestamp: RtpTime(u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]])),
            ssrc: Ssrc(u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]])),
            csrc_count,
            extension,
            payload_start: offset as u16,
            payload_end: payload_end as u16,
            len: len as u16,
        })
    }

    /// Padding bytes at the end of the packet, the count byte included; 0 without the P bit.
    pub fn padding_len(&self) -> u16 {
        self.len - self.payload_end
    }

    /// Payload bytes, between the header and the padding.
    pub fn payload_len(&self) -> u16 {
        self.payload_end - self.payload_start
    }

    /// The payload of `buf`, which must be the buffer this header was parsed from.
    pub fn payload<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.payload_start as usize..self.payload_end as usize]
    }

    /// The CSRC identifiers of `buf`, which must be the buffer this header was parsed from.
    pub fn csrcs<'a>(&self, buf: &'a [u8]) -> impl Iterator<Item = Ssrc> + 'a {
        buf[FIXED_HEADER_LEN..FIXED_HEADER_LEN + 4 * self.csrc_count as usize]
            .chunks_exact(4)
            .map(|c| Ssrc(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
    }

    /// RFC 8285 header extension elements of `buf`, which must be the buffer this header was
    /// parsed from. Empty for no extension block or an unknown profile.
    pub fn extensions<'a>(&self, buf: &'a [u8]) -> Extensions<'a> {
        match self.extension {
            Some(ext) if ext.is_one_byte() || ext.is_two_byte() => Extensions {
                data: &buf[ext.start as usize..ext.end as usize],
                two_byte: ext.is_two_byte(),
            },
            _ => Extensions {
                data: &[],
                two_byte: false,
            },
        }
    }
}

/// One RFC 8285 header extension element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extension<'a> {
    /// The element's ID (1..=14 in the one-byte form, 1..=255 in the two-byte form).
    pub id: u8,
    /// The element's data, borrowed from the packet.
    pub data: &'a [u8],
}

/// Iterator over RFC 8285 elements. Stops at the first element whose length runs past the block,
/// or at the one-byte form's reserved ID 15, as RFC 8285 §4.2 says to.
#[derive(Clone, Debug)]
pub struct Extensions<'a> {
    data: &'a [u8],
    two_byte: bool,
}

impl<'a> Iterator for Extensions<'a> {
    type Item = Extension<'a>;

    fn next(&mut self) -> Option<Extension<'a>> {
        loop {
            let (&first, rest) = self.data.split_first()?;
            if first == 0 {
                // Padding between elements.
                self.data = rest;
                continue;
            }
            let (id, len, rest) = if self.two_byte {
                let (&len, rest) = rest.split_first()?;
                (first, len as usize, rest)
            } else {
                let id = first >> 4;
                if id == 15 {
                    self.data = &[];
                    return None;
                }
                (id, (first & 0x0f) as usize + 1, rest)
            };
            if len > rest.len() {
                self.data = &[];
                return None;
            }
            let (data, rest) = rest.split_at(len);
            self.data = rest;
            return Some(Extension { id, data });
        }
    }
}

/// Write a 12-byte RTP fixed header.
#[allow(clippy::too_many_arguments)]
pub fn write_fixed_header(
    out: &mut [u8; FIXED_HEADER_LEN],
    first_byte: u8,
    marker: bool,
    payload_type: u8,
    seq: SeqNo,
    timestamp: RtpTime,
    ssrc: Ssrc,
) {
    out[0] = first_byte;
    out[1] = (u8::from(marker) << 7) | (payload_type & 0x7f);
    out[2..4].copy_from_slice(&seq.0.to_be_bytes());
    out[4..8].copy_from_slice(&timestamp.0.to_be_bytes());
    out[8..12].copy_from_slice(&ssrc.0.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn packet(b0: u8, tail: &[u8]) -> Vec<u8> {
        let mut p = vec![
            b0,
            0x80 | 96,
            0x12,
            0x34,
            0,
            0,
            0x10,
            0,
            0xde,
            0xad,
            0xbe,
            0xef,
        ];
        p.extend_from_slice(tail);
        p
    }

    #[test]
    fn parses_fixed_fields() {
        let p = packet(0x80, &[1, 2, 3]);
        let h = RtpHeader::parse(&p).unwrap();
        assert!(h.marker);
        assert_eq!(h.payload_type, 96);
        assert_eq!(h.seq, SeqNo(0x1234));
        assert_eq!(h.timestamp, RtpTime(0x1000));
        assert_eq!(h.ssrc, Ssrc(0xdeadbeef));
        assert_eq!(h.payload(&p), &[1, 2, 3]);
        assert_eq!(h.padding_len(), 0);
    }

    #[test]
    fn parses_csrcs_extension_and_padding() {
        // CC=1, X=1, P=1; one-byte extension with ids 1 (2 bytes) and 2 (1 byte) plus padding.
        let mut tail = vec![0, 0, 0, 7];
        tail.extend_from_slice(&[0xBE, 0xDE, 0, 2, 0x11, 0xaa, 0xbb, 0, 0x20, 0xcc, 0, 0]);
        tail.extend_from_slice(&[9, 9, 0, 0, 3]);
        let p = packet(0xb1, &tail);
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!(h.csrcs(&p).collect::<Vec<_>>(), vec![Ssrc(7)]);
        let ext = h.extension.unwrap();
        assert!(ext.is_one_byte());
        let elems: Vec<_> = h.extensions(&p).collect();
        assert_eq!(
            elems,
            vec![
                Extension {
                    id: 1,
                    data: &[0xaa, 0xbb]
                },
                Extension {
                    id: 2,
                    data: &[0xcc]
                }
            ]
        );
        assert_eq!(h.payload(&p), &[9, 9]);
        assert_eq!(h.padding_len(), 3);
    }

    #[test]
    fn parses_two_byte_extensions() {
        let tail = [0x10, 0x00, 0, 2, 5, 3, 1, 2, 3, 0, 0, 0, 0xff];
        let p = packet(0x90, &tail);
        let h = RtpHeader::parse(&p).unwrap();
        assert!(h.extension.unwrap().is_two_byte());
        let elems: Vec<_> = h.extensions(&p).collect();
        assert_eq!(
            elems,
            vec![Extension {
                id: 5,
                data: &[1, 2, 3]
            }]
        );
        assert_eq!(h.payload(&p), &[0xff]);
    }

    #[test]
    fn rejects_invalid_packets() {
        assert_eq!(RtpHeader::parse(&[0x80; 11]), Err(RtpError::TooShort));
        assert_eq!(
            RtpHeader::parse(&packet(0x40, &[])),
            Err(RtpError::BadVersion)
        );
        assert_eq!(
            RtpHeader::parse(&packet(0x82, &[0; 7])),
            Err(RtpError::CsrcOverrun)
        );
        assert_eq!(
            RtpHeader::parse(&packet(0x90, &[0xBE, 0xDE, 0, 1])),
            Err(RtpError::ExtensionOverrun)
        );
        assert_eq!(
            RtpHeader::parse(&packet(0xa0, &[1, 0])),
            Err(RtpError::BadPadding)
        );
        assert_eq!(
            RtpHeader::parse(&packet(0xa0, &[1, 4])),
            Err(RtpError::BadPadding)
        );
        assert_eq!(
            RtpHeader::parse(&vec![0x80; 70_000]),
            Err(RtpError::TooLong)
        );
    }

    #[test]
    fn padding_may_consume_the_whole_payload() {
        let p = packet(0xa0, &[0, 0, 3]);
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!(h.payload_len(), 0);
    }

    #[test]
    fn writes_fixed_header_that_parses_back() {
        let mut out = [0u8; FIXED_HEADER_LEN];
        write_fixed_header(
            &mut out,
            0x80,
            true,
            111,
            SeqNo(65535),
            RtpTime(u32::MAX),
            Ssrc(42),
        );
        let h = RtpHeader::parse(&out).unwrap();
        assert!(h.marker);
        assert_eq!(
            (h.payload_type, h.seq, h.timestamp, h.ssrc),
            (111, SeqNo(65535), RtpTime(u32::MAX), Ssrc(42))
        );
    }

    proptest! {
        #[test]
        fn never_panics_and_offsets_stay_in_bounds(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(h) = RtpHeader::parse(&bytes) {
                prop_assert!(h.payload_start <= h.payload_end);
                prop_assert!(h.payload_end as usize <= bytes.len());
                let _ = h.payload(&bytes);
                let _ = h.csrcs(&bytes).count();
                let _ = h.extensions(&bytes).count();
            }
        }

        #[test]
        fn agrees_with_fixed_fields(seq: u16, ts: u32, ssrc: u32, pt in 0u8..128, marker: bool,
                                    payload in proptest::collection::vec(any::<u8>(), 0..50)) {
            let mut hdr = [0u8; FIXED_HEADER_LEN];
            write_fixed_header(&mut hdr, 0x80, marker, pt, SeqNo(seq), RtpTime(ts), Ssrc(ssrc));
            let mut p = hdr.to_vec();
            p.extend_from_slice(&payload);
            let h = RtpHeader::parse(&p).unwrap();
            prop_assert_eq!((h.seq.0, h.timestamp.0, h.ssrc.0, h.payload_type, h.marker), (seq, ts, ssrc, pt, marker));
            prop_assert_eq!(h.payload(&p), &payload[..]);
        }
    }
}

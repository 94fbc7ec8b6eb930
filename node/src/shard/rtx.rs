//! RFC 4588 retransmissions for WebRTC viewers that negotiated them: a resend goes as a packet
//! of the track's retransmission stream (its own SSRC, payload type and numbering) whose payload
//! is the original sequence number (OSN) and then the original payload, instead of as a copy at
//! its own number on the media stream.
//!
//! Why a viewer wants it: a browser counts an RTX packet as a repair
//! (`retransmittedPacketsReceived`) and keeps it apart from what the network duplicated, and the
//! media stream's numbering only ever goes forward, so its SRTP rollover counter is never asked
//! to go back across a wrap for a late resend. The bytes are built in parts around the original
//! ones, the way a copy is: nothing of the pooled packet is copied before sealing.

use corecast_engine::Ssrc;

/// A track's retransmission stream, as negotiated in its viewer's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtxStream {
    /// The offer's `rtx` payload type whose `apt` is the track's.
    pub payload_type: u8,
    /// Its SSRC (grouped with the track's in the answer: `a=ssrc-group:FID`).
    pub ssrc: Ssrc,
}

/// A retransmission stream on the shard: where its numbering is.
#[derive(Clone, Copy, Debug)]
pub(super) struct RtxState {
    stream: RtxStream,
    next_seq: u16,
}

/// The fixed RTP header, and the OSN that follows the original's CSRCs and extension.
pub(super) type RtxHead = [u8; 14];

impl RtxState {
    pub fn new(stream: RtxStream, first_seq: u16) -> RtxState {
        RtxState {
            stream,
            next_seq: first_seq,
        }
    }

    /// The parts of the RTX packet that retransmits the copy `segments` (as
    /// `Transmit::segments` gives them: fixed header first, at least 12 bytes), written around
    /// `head`; uses one number of the stream.
    pub fn packet<'a>(&mut self, segments: [&'a [u8]; 4], head: &'a mut RtxHead) -> [&'a [u8]; 6] {
        let fixed = &segments[0][..12];
        head[..12].copy_from_slice(fixed);
        // Marker kept (RFC 4588 §4: as the original's), payload type and numbering its own.
        head[1] = (fixed[1] & 0x80) | (self.stream.payload_type & 0x7f);
        head[2..4].copy_from_slice(&self.next_seq.to_be_bytes());
        head[8..12].copy_from_slice(&self.stream.ssrc.0.to_be_bytes());
        head[12..14].copy_from_slice(&fixed[2..4]);
        self.next_seq = self.next_seq.wrapping_add(1);
        let (fixed_part, osn) = head.split_at(12);
        [
            fixed_part,
            segments[1],
            osn,
            &segments[0][12..],
            segments[2],
            segments[3],
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn original() -> Vec<u8> {
        // V=2 with an extension (X), marker, PT 96, seq 0xfffe, ts, SSRC, a one-word
        // extension, then a payload.
        let mut p = vec![
            0x90,
            0x80 | 96,
            0xff,
            0xfe,
            0,
            0,
            0x12,
            0x34,
            0xaa,
            0xbb,
            0xcc,
            0xdd,
        ];
        p.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0x55, 0, 0]);
        p.extend_from_slice(b"payload");
        p
    }

    #[test]
    fn an_rtx_packet_carries_the_original_number_then_the_payload_under_its_own_header() {
        let p = original();
        let mut rtx = RtxState::new(
            RtxStream {
                payload_type: 97,
                ssrc: Ssrc(0x0102_0304),
            },
            0xffff,
        );
        let mut head = [0; 14];
        // As a copy with an extension goes: fixed header, extension, codec prefix, the rest.
        let segments = [&p[..12], &p[12..20], &p[20..22], &p[22..]];
        let first = rtx.packet(segments, &mut head).concat();
        let mut expected = vec![0x90, 0x80 | 97, 0xff, 0xff, 0, 0, 0x12, 0x34, 1, 2, 3, 4];
        expected.extend_from_slice(&p[12..20]);
        expected.extend_from_slice(&[0xff, 0xfe]);
        expected.extend_from_slice(b"payload");
        assert_eq!(first, expected);
        let h = corecast_engine::rtp::RtpHeader::parse(&first).expect("valid RTP");
        assert_eq!(
            (h.payload_type, h.seq.0, h.ssrc.0),
            (97, 0xffff, 0x0102_0304)
        );
        assert_eq!(
            &h.payload(&first)[..2],
            &[0xff, 0xfe],
            "the OSN leads the payload"
        );

        // The next one takes the next number (across the wrap). Without an extension a copy's
        // header and codec prefix are one segment: the OSN goes between them all the same.
        let mut plain = p[..12].to_vec();
        plain[0] = 0x80;
        plain.extend_from_slice(b"prefix+payload");
        let segments = [&plain[..18], &[][..], &[][..], &plain[18..]];
        let mut head = [0; 14];
        let second = rtx.packet(segments, &mut head).concat();
        assert_eq!(&second[2..4], &[0, 0]);
        assert_eq!(&second[12..14], &[0xff, 0xfe]);
        assert_eq!(&second[14..], b"prefix+payload");
    }
}

//! Synthetic RTP streams shaped like real ones: VP8 with a correct payload descriptor (start bit,
//! picture ID, TL0PICIDX, keyframe header) and Opus-shaped audio. Used by tests, benchmarks, the
//! demo and load generation; deterministic, so any packet can be rebuilt from its sequence number.

use crate::rtp::{write_fixed_header, FIXED_HEADER_LEN};
use crate::types::{RtpTime, SeqNo, Ssrc};

/// Header fields of one synthetic packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynthPacket {
    /// Sequence number written.
    pub seq: SeqNo,
    /// Timestamp written.
    pub timestamp: RtpTime,
    /// Marker bit written: set on the last packet of a video frame.
    pub marker: bool,
    /// The packet opens a frame.
    pub frame_start: bool,
    /// The packet belongs to a keyframe (every audio packet does).
    pub keyframe: bool,
    /// Index of the frame in the stream, from 0.
    pub frame: u64,
}

/// Append an RTP packet with the given header fields and payload to `out`.
pub fn write_rtp(
    out: &mut Vec<u8>,
    ssrc: Ssrc,
    payload_type: u8,
    seq: SeqNo,
    timestamp: RtpTime,
    marker: bool,
    payload: &[u8],
) {
    let mut head = [0u8; FIXED_HEADER_LEN];
    write_fixed_header(&mut head, 0x80, marker, payload_type, seq, timestamp, ssrc);
    out.extend_from_slice(&head);
    out.extend_from_slice(payload);
}

/// Shape of a synthetic video stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VideoShape {
    /// Frames per second: each frame steps the 90 kHz timestamp by `90_000 / fps`.
    pub fps: u32,
    /// A keyframe every `gop` frames.
    pub gop: u32,
    /// Packets of each frame that is not a keyframe.
    pub packets_per_frame: u16,
    /// Packets of a keyframe, which are larger frames in real streams.
    pub packets_per_keyframe: u16,
    /// Payload bytes per packet (VP8 descriptor included).
    pub payload_len: usize,
}

impl Default for VideoShape {
    fn default() -> VideoShape {
        VideoShape {
            fps: 30,
            gop: 30,
            packets_per_frame: 3,
            packets_per_keyframe: 8,
            payload_len: 1100,
        }
    }
}

/// A VP8 stream: RFC 7741 descriptor with 15-bit picture ID and TL0PICIDX on every packet.
#[derive(Clone, Debug)]
pub struct Vp8Stream {
    /// SSRC written.
    pub ssrc: Ssrc,
    /// Payload type written; 96 unless changed.
    pub payload_type: u8,
    /// Frame rate, keyframe interval and packet sizes.
    pub shape: VideoShape,
    seq: u16,
    ts: u32,
    picture_id: u16,
    tl0: u8,
    frame: u64,
    packet_in_frame: u16,
}

impl Vp8Stream {
    /// A stream that starts with a keyframe at `first_seq` and `first_ts`.
    pub fn new(ssrc: Ssrc, first_seq: u16, first_ts: u32, shape: VideoShape) -> Vp8Stream {
        Vp8Stream {
            ssrc,
            payload_type: 96,
            shape,
            seq: first_seq,
            ts: first_ts,
            picture_id: (first_seq ^ 0x1234) & 0x7fff,
            tl0: first_seq as u8,
            frame: 0,
            packet_in_frame: 0,
        }
    }

    fn frame_packets(&self) -> u16 {
        if self.is_keyframe() {
            self.shape.packets_per_keyframe.max(1)
        } else {
            self.shape.packets_per_frame.max(1)
        }
    }

    fn is_keyframe(&self) -> bool {
        self.frame.is_multiple_of(self.shape.gop.max(1) as u64)
    }

    /// Sequence number the next packet will carry.
    pub fn next_seq(&self) -> SeqNo {
        SeqNo(self.seq)
    }

    /// Skip to the next keyframe, as an encoder does when asked for one.
    pub fn force_keyframe(&mut self) {
        if self.packet_in_frame == 0 && self.is_keyframe() {
            return;
        }
        if self.packet_in_frame != 0 {
            self.finish_frame();
        }
        let gop = self.shape.gop.max(1) as u64;
        self.frame = self.frame.div_ceil(gop) * gop;
    }

    fn finish_frame(&mut self) {
        self.packet_in_frame = 0;
        self.frame += 1;
        self.ts = self.ts.wrapping_add(90_000 / self.shape.fps.max(1));
        self.picture_id = (self.picture_id + 1) & 0x7fff;
        self.tl0 = self.tl0.wrapping_add(1);
    }

    /// Append the next packet to `out` and describe it.
    pub fn next_packet(&mut self, out: &mut Vec<u8>) -> SynthPacket {
        let frame_packets = self.frame_packets();
        let first = self.packet_in_frame == 0;
        let last = self.packet_in_frame + 1 == frame_packets;
        let keyframe = self.is_keyframe();
        let mut payload = [0u8; 1500];
        let len = self.shape.payload_len.clamp(16, payload.len());
        payload[0] = if first { 0x90 } else { 0x80 }; // X=1, S on the first packet, PID 0
        payload[1] = 0xc0; // I=1 (picture ID), L=1 (TL0PICIDX)
        payload[2] = 0x80 | (self.picture_id >> 8) as u8; // M=1: 15-bit picture ID
        payload[3] = self.picture_id as u8;
        payload[4] = self.tl0;
        let mut at = 5;
        if first {
            // VP8 payload header: show_frame=1, P=0 for a keyframe.
            payload[at] = if keyframe { 0x10 } else { 0x11 };
            at += 3;
            if keyframe {
                payload[at..at + 7].copy_from_slice(&[0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00]);
                at += 7;
            }
        }
        fill_pattern(&mut payload[at..len], self.ssrc, self.seq);
        let packet = SynthPacket {
            seq: SeqNo(self.seq),
            timestamp: RtpTime(self.ts),
            marker: last,
            frame_start: first,
            keyframe,
            frame: self.frame,
        };
        write_rtp(
            out,
            self.ssrc,
            self.payload_type,
            packet.seq,
            packet.timestamp,
            last,
            &payload[..len],
        );
        self.seq = self.seq.wrapping_add(1);
        if last {
            self.finish_frame();
        } else {
            self.packet_in_frame += 1;
        }
        packet
    }
}

/// Opus-shaped audio: one 20 ms packet at a time, every one a switch point.
#[derive(Clone, Debug)]
pub struct OpusStream {
    /// SSRC written.
    pub ssrc: Ssrc,
    /// Payload type written; 111 unless changed.
    pub payload_type: u8,
    /// Payload bytes per packet, TOC byte included; held within 2..=400.
    pub payload_len: usize,
    seq: u16,
    ts: u32,
    frame: u64,
}

impl OpusStream {
    /// A stream that starts at `first_seq` and `first_ts`, 80-byte payloads.
    pub fn new(ssrc: Ssrc, first_seq: u16, first_ts: u32) -> OpusStream {
        OpusStream {
            ssrc,
            payload_type: 111,
            payload_len: 80,
            seq: first_seq,
            ts: first_ts,
            frame: 0,
        }
    }

    /// Append the next packet to `out` and describe it.
    pub fn next_packet(&mut self, out: &mut Vec<u8>) -> SynthPacket {
        let mut payload = [0u8; 400];
        let len = self.payload_len.clamp(2, payload.len());
        payload[0] = 0x78; // TOC: SILK-only wideband 20 ms, mono, one frame
        fill_pattern(&mut payload[1..len], self.ssrc, self.seq);
        let packet = SynthPacket {
            seq: SeqNo(self.seq),
            timestamp: RtpTime(self.ts),
            marker: false,
            frame_start: true,
            keyframe: true,
            frame: self.frame,
        };
        write_rtp(
            out,
            self.ssrc,
            self.payload_type,
            packet.seq,
            packet.timestamp,
            false,
            &payload[..len],
        );
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(960);
        self.frame += 1;
        packet
    }
}

/// Deterministic filler derived from the SSRC and sequence number, so a receiver can check that
/// the bytes it got are the bytes that were sent.
pub fn fill_pattern(buf: &mut [u8], ssrc: Ssrc, seq: u16) {
    // The top bit keeps the xorshift state non-zero without folding two inputs into one.
    let mut x = (ssrc.0 as u64) << 16 | seq as u64 | 1 << 63;
    for b in buf {
        // xorshift: cheap, and every byte depends on both inputs.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
}

/// `packet` as its sender's RFC 4588 retransmission: payload type `rtx_payload_type`, SSRC
/// `rtx_ssrc` and number `rtx_seq` of the retransmission stream, the original sequence number
/// before the original payload.
pub fn as_rtx(packet: &[u8], rtx_payload_type: u8, rtx_ssrc: Ssrc, rtx_seq: u16) -> Vec<u8> {
    let header = crate::rtp::RtpHeader::parse(packet).expect("a valid RTP packet");
    let start = header.payload_start as usize;
    let mut rtx = packet[..start].to_vec();
    rtx[1] = (packet[1] & 0x80) | (rtx_payload_type & 0x7f);
    rtx[2..4].copy_from_slice(&rtx_seq.to_be_bytes());
    rtx[8..12].copy_from_slice(&rtx_ssrc.0.to_be_bytes());
    rtx.extend_from_slice(&packet[2..4]);
    rtx.extend_from_slice(&packet[start..]);
    rtx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{self, PayloadInfo};
    use crate::rtp::RtpHeader;
    use crate::types::Codec;

    #[test]
    fn vp8_stream_has_frames_and_keyframes_where_declared() {
        let shape = VideoShape {
            gop: 4,
            ..VideoShape::default()
        };
        let mut s = Vp8Stream::new(Ssrc(1), 65530, u32::MAX - 5000, shape);
        let mut keyframe_starts = 0;
        for _ in 0..200 {
            let mut buf = Vec::new();
            let p = s.next_packet(&mut buf);
            let h = RtpHeader::parse(&buf).unwrap();
            assert_eq!(
                (h.seq, h.timestamp, h.marker),
                (p.seq, p.timestamp, p.marker)
            );
            let info: PayloadInfo = codec::inspect(Codec::Vp8, h.payload(&buf)).unwrap();
            assert_eq!(info.frame_start, p.frame_start);
            if info.frame_start {
                assert_eq!(info.keyframe, p.keyframe);
                keyframe_starts += info.keyframe as u32;
            }
        }
        assert!(keyframe_starts >= 5);
    }

    #[test]
    fn force_keyframe_starts_one_at_the_next_frame() {
        let mut s = Vp8Stream::new(
            Ssrc(1),
            0,
            0,
            VideoShape {
                gop: 100,
                ..VideoShape::default()
            },
        );
        let mut buf = Vec::new();
        for _ in 0..20 {
            s.next_packet(&mut buf);
        }
        s.force_keyframe();
        buf.clear();
        let p = s.next_packet(&mut buf);
        assert!(p.frame_start && p.keyframe);
    }
}

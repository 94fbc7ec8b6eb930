//! Streams shaped like real media, with the verifiable payload of [`super::payload`].
//!
//! VP8: frames at `fps`, each `bitrate / 8 / fps` bytes on average (keyframes five times a delta
//! frame, so a GOP still averages the bitrate), split into packets of at most `packet_size`
//! bytes, each with an RFC 7741 payload descriptor (S bit on the frame's first packet, 15-bit
//! picture ID, TL0PICIDX) and, on the first packet, a VP8 payload header whose P bit says
//! keyframe or not. Opus: one 20 ms packet at a time, every one a switch point.
//!
//! Deterministic given its first sequence number, timestamp and SSRC; the only input from
//! outside is [`SourceStream::request_keyframe`], which makes the next frame a keyframe, as an
//! encoder does on a PLI or FIR.

use std::time::Duration;

use corecast_engine::rtp::FIXED_HEADER_LEN;
use corecast_engine::synth::write_rtp;
use corecast_engine::{Codec, RtpTime, SeqNo, Ssrc};

use super::payload::{seal, Trailer, TRAILER_LEN};

/// Keyframes are this many times larger than delta frames.
pub const KEYFRAME_FACTOR: u64 = 5;
/// VP8 payload descriptor: X|S, I|L, M|picture ID high, picture ID low, TL0PICIDX.
pub const VP8_DESCRIPTOR_LEN: usize = 5;
/// The descriptor bytes a forwarder rewrites: the picture ID and TL0PICIDX.
pub const VP8_REWRITTEN: std::ops::Range<usize> = 2..5;
/// Keyframe payload header: size/flags, two size bytes, start code, width and height.
const VP8_KEY_HEADER: [u8; 10] = [0x10, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00];
/// Delta frame payload header: P=1 (not a keyframe), show_frame.
const VP8_DELTA_HEADER: [u8; 3] = [0x11, 0x00, 0x00];
/// Opus TOC: SILK-only wideband 20 ms, mono, one frame.
const OPUS_TOC: u8 = 0x78;
const OPUS_PACKET_TIME: Duration = Duration::from_millis(20);

/// What a source sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamShape {
    /// [`Codec::Vp8`] or [`Codec::Opus`].
    pub codec: Codec,
    /// Bits per second of RTP payload.
    pub bitrate: u64,
    /// Video frames per second (ignored for Opus: 50 packets per second).
    pub fps: u32,
    /// A keyframe every `gop` frames, unless one is requested sooner.
    pub gop: u32,
    /// Largest RTP packet, header included.
    pub packet_size: usize,
}

impl StreamShape {
    /// The smallest packet this module can build: RTP header, descriptor, keyframe header and
    /// trailer.
    pub const MIN_PACKET_SIZE: usize =
        FIXED_HEADER_LEN + VP8_DESCRIPTOR_LEN + VP8_KEY_HEADER.len() + TRAILER_LEN;

    /// Time between two frames (Opus: packets).
    pub fn frame_interval(&self) -> Duration {
        match self.codec {
            Codec::Opus => OPUS_PACKET_TIME,
            _ => Duration::from_secs(1) / self.fps.max(1),
        }
    }

    /// RTP payload bytes of a delta frame and of a keyframe.
    pub fn frame_bytes(&self) -> (usize, usize) {
        let per_frame = self.bitrate / 8 / u64::from(self.fps.max(1));
        let gop = u64::from(self.gop.max(1));
        // (gop - 1) deltas and one keyframe of KEYFRAME_FACTOR deltas average to per_frame.
        let delta = per_frame * gop / (gop - 1 + KEYFRAME_FACTOR);
        (delta as usize, (delta * KEYFRAME_FACTOR) as usize)
    }
}

/// One packet as built, for the sender's accounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketMeta {
    pub tag: u64,
    pub seq: SeqNo,
    pub timestamp: RtpTime,
    pub frame_start: bool,
    pub keyframe: bool,
    pub marker: bool,
}

/// One source's stream.
#[derive(Clone, Debug)]
pub struct SourceStream {
    pub index: u32,
    pub ssrc: Ssrc,
    pub payload_type: u8,
    pub shape: StreamShape,
    seq: u16,
    ts: u32,
    picture_id: u16,
    tl0: u8,
    frames_since_key: u32,
    keyframe_requested: bool,
    /// Payload lengths of the current frame's packets still to send, last first.
    pending: Vec<usize>,
    frame_is_key: bool,
    frame_first: bool,
    tag: u64,
    frames: u64,
    keyframes: u64,
    scratch: Vec<u8>,
}

impl SourceStream {
    pub fn new(index: u32, ssrc: Ssrc, first_seq: u16, first_ts: u32, shape: StreamShape) -> Self {
        SourceStream {
            index,
            ssrc,
            payload_type: if shape.codec == Codec::Opus { 111 } else { 96 },
            shape,
            seq: first_seq,
            ts: first_ts,
            picture_id: first_seq & 0x7fff,
            tl0: first_seq as u8,
            frames_since_key: 0,
            keyframe_requested: false,
            pending: Vec::new(),
            frame_is_key: false,
            frame_first: false,
            tag: 0,
            frames: 0,
            keyframes: 0,
            scratch: vec![0; shape.packet_size.max(StreamShape::MIN_PACKET_SIZE)],
        }
    }

    /// Make the next frame a keyframe (an encoder's answer to a PLI or FIR).
    pub fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    /// Packets built so far; also the tag the next packet will carry.
    pub fn packets(&self) -> u64 {
        self.tag
    }

    pub fn frames(&self) -> u64 {
        self.frames
    }

    pub fn keyframes(&self) -> u64 {
        self.keyframes
    }

    /// Start the next frame; returns how many packets it has (call [`Self::next_packet`] that
    /// many times). A frame not finished is abandoned.
    pub fn start_frame(&mut self) -> usize {
        if self.frames > 0 {
            self.ts = self.ts.wrapping_add(self.ts_step());
            self.picture_id = (self.picture_id + 1) & 0x7fff;
            self.tl0 = self.tl0.wrapping_add(1);
        }
        self.frames += 1;
        let max_payload =
            self.shape.packet_size.max(StreamShape::MIN_PACKET_SIZE) - FIXED_HEADER_LEN;
        self.pending.clear();
        if self.shape.codec == Codec::Opus {
            let len = (self.shape.bitrate / 8 / 50) as usize;
            self.pending.push(len.clamp(TRAILER_LEN + 2, max_payload));
            self.frame_is_key = true;
            self.frame_first = true;
            self.keyframes += 1;
            return 1;
        }
        let key = self.frames == 1
            || self.keyframe_requested
            || self.frames_since_key + 1 >= self.shape.gop.max(1);
        self.keyframe_requested = false;
        self.frames_since_key = if key { 0 } else { self.frames_since_key + 1 };
        self.keyframes += u64::from(key);
        self.frame_is_key = key;
        self.frame_first = true;
        let (delta, keyframe) = self.shape.frame_bytes();
        let bytes = if key { keyframe } else { delta };
        let n = bytes.div_ceil(max_payload).max(1);
        let min = StreamShape::MIN_PACKET_SIZE - FIXED_HEADER_LEN;
        for i in 0..n {
            // Equal shares, the remainder spread over the first packets.
            let len = bytes / n + usize::from(i < bytes % n);
            self.pending.push(len.clamp(min, max_payload));
        }
        self.pending.reverse();
        n
    }

    /// RTP timestamp units between two frames: 3000 at 30 fps, 960 for 20 ms of Opus.
    fn ts_step(&self) -> u32 {
        match self.shape.codec {
            Codec::Opus => 960,
            codec => codec.default_clock_rate() / self.shape.fps.max(1),
        }
    }

    /// Append the current frame's next packet, stamped with `send_ns`, to `out`. Starts a frame
    /// first if none is under way.
    pub fn next_packet(&mut self, send_ns: u64, out: &mut Vec<u8>) -> PacketMeta {
        if self.pending.is_empty() {
            self.start_frame();
        }
        let len = self.pending.pop().expect("a started frame has packets");
        let last = self.pending.is_empty();
        let first = std::mem::replace(&mut self.frame_first, false);
        let key = self.frame_is_key;
        let mut payload = std::mem::take(&mut self.scratch);
        let p = &mut payload[..len];
        let (fill_from, skip) = if self.shape.codec == Codec::Opus {
            p[0] = OPUS_TOC;
            (1, 0..0)
        } else {
            p[0] = if first { 0x90 } else { 0x80 };
            p[1] = 0xc0;
            p[2] = 0x80 | (self.picture_id >> 8) as u8;
            p[3] = self.picture_id as u8;
            p[4] = self.tl0;
            let mut at = VP8_DESCRIPTOR_LEN;
            if first {
                let header: &[u8] = if key {
                    &VP8_KEY_HEADER
                } else {
                    &VP8_DELTA_HEADER
                };
                p[at..at + header.len()].copy_from_slice(header);
                at += header.len();
            }
            (at, VP8_REWRITTEN)
        };
        let trailer = Trailer {
            source: self.index,
            tag: self.tag,
            send_ns,
        };
        seal(p, fill_from..len - TRAILER_LEN, skip, trailer);
        let meta = PacketMeta {
            tag: self.tag,
            seq: SeqNo(self.seq),
            timestamp: RtpTime(self.ts),
            frame_start: first,
            keyframe: key,
            marker: last && self.shape.codec != Codec::Opus,
        };
        write_rtp(
            out,
            self.ssrc,
            self.payload_type,
            meta.seq,
            meta.timestamp,
            meta.marker,
            p,
        );
        self.scratch = payload;
        self.seq = self.seq.wrapping_add(1);
        self.tag += 1;
        meta
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::open;
    use corecast_engine::codec::inspect;
    use corecast_engine::rtp::RtpHeader;

    fn shape() -> StreamShape {
        StreamShape {
            codec: Codec::Vp8,
            bitrate: 2_000_000,
            fps: 30,
            gop: 60,
            packet_size: 1200,
        }
    }

    #[test]
    fn frames_average_the_bitrate_and_keyframes_are_larger() {
        let (delta, key) = shape().frame_bytes();
        assert_eq!(key, delta * 5);
        let gop_bytes = (59 * delta + key) as f64;
        let want = 2_000_000.0 / 8.0 / 30.0 * 60.0;
        assert!(
            (gop_bytes / want - 1.0).abs() < 0.01,
            "{gop_bytes} vs {want}"
        );
    }

    #[test]
    fn packets_parse_as_vp8_with_the_declared_switch_points_and_verify() {
        let mut s = SourceStream::new(2, Ssrc(7), 65_500, 0, shape());
        let mut keyframe_starts = 0;
        let mut last_pic = None;
        for frame in 0..130 {
            if frame == 100 {
                s.request_keyframe();
            }
            let n = s.start_frame();
            for i in 0..n {
                let mut buf = Vec::new();
                let meta = s.next_packet(1000, &mut buf);
                assert!(buf.len() <= 1200);
                let h = RtpHeader::parse(&buf).unwrap();
                assert_eq!((h.seq, h.marker), (meta.seq, i + 1 == n));
                let payload = h.payload(&buf);
                let info = inspect(Codec::Vp8, payload).unwrap();
                assert_eq!(info.frame_start, i == 0);
                assert_eq!(info.is_switch_point(), i == 0 && meta.keyframe);
                keyframe_starts += usize::from(info.is_switch_point());
                let pic = info.picture_id.unwrap();
                assert!(pic.wide);
                if i == 0 {
                    if let Some(prev) = last_pic {
                        assert_eq!(pic.value, (prev + 1) & 0x7fff);
                    }
                    last_pic = Some(pic.value);
                }
                let t = open(payload, VP8_REWRITTEN).unwrap();
                assert_eq!((t.source, t.tag, t.send_ns), (2, meta.tag, 1000));
            }
        }
        // Frames 0, 60, 100 (requested) and then 159 would be next: three keyframes.
        assert_eq!(keyframe_starts, 3);
        assert_eq!(s.keyframes(), 3);
    }

    #[test]
    fn opus_packets_are_all_switch_points() {
        let mut s = SourceStream::new(
            0,
            Ssrc(1),
            0,
            0,
            StreamShape {
                codec: Codec::Opus,
                bitrate: 64_000,
                ..shape()
            },
        );
        for _ in 0..10 {
            assert_eq!(s.start_frame(), 1);
            let mut buf = Vec::new();
            s.next_packet(5, &mut buf);
            let h = RtpHeader::parse(&buf).unwrap();
            assert_eq!(h.payload(&buf).len(), 160);
            let info = inspect(Codec::Opus, h.payload(&buf)).unwrap();
            assert!(info.is_switch_point());
            assert_eq!(open(h.payload(&buf), 0..0).unwrap().tag, s.packets() - 1);
        }
    }
}

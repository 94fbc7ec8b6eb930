//! A sender of one recorded stream whose every header field the fuzzer may bend: by default each
//! packet is the recording's next one with the next sequence number and its recorded timestamp
//! step, so even random inputs are mostly a real stream, with restarts, jumps, reordering,
//! strays and damage where the fuzzer asks for them.

use arbitrary::Arbitrary;
use corecast_engine::rtp::write_fixed_header;
use corecast_engine::{RtpTime, SeqNo, Ssrc};

use crate::recording::{recording, StreamKind, Template};

/// Which template a packet carries.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Pick {
    /// The recording's next packet.
    Next,
    /// Any packet of the recording (a late or repeated one, or a keyframe out of turn).
    At(u16),
}

/// The SSRC of a packet.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum SsrcSpec {
    Same,
    /// The sender restarts with one of four SSRCs (the fourth is its first again).
    Restart(u8),
    /// This packet only: another stream multiplexed on the port, or a stray.
    Stray(u32),
}

/// The sequence number of a packet.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum SeqSpec {
    Next,
    /// The sender skips (or steps back) this far and continues from there.
    Jump(i16),
    /// This packet only.
    Stray(u16),
}

/// The timestamp of a packet.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum TsSpec {
    /// The recording's step from the previous packet.
    Recorded,
    /// The sender's clock jumps this far and continues from there.
    Jump(i32),
    /// The sender's clock steps back by 2^31 - 1, the most that still reads as backwards: the
    /// boundary of timestamp unwrapping, which random jumps rarely hit packet after packet.
    HalfBack,
    /// This packet only.
    Stray(u32),
}

/// Header parts the recordings lack: CSRCs, an RFC 8285 extension block, padding.
#[derive(Arbitrary, Clone, Copy, Debug, Default)]
pub struct HeaderExtras {
    pub csrcs: u8,
    /// Words of one-byte-form extension data (padding bytes), if an extension block is sent.
    pub extension_words: Option<u8>,
    pub padding: u8,
}

/// How one packet departs from the recording.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub struct PacketSpec {
    pub pick: Pick,
    pub ssrc: SsrcSpec,
    pub seq: SeqSpec,
    pub ts: TsSpec,
    pub marker: Option<bool>,
    pub payload_type: Option<u8>,
    pub extras: Option<HeaderExtras>,
    /// Cut the datagram to this length, or flip these bits of the byte at this offset.
    pub truncate: Option<u16>,
    pub flip: Option<(u16, u8)>,
}

impl PacketSpec {
    /// The recording's next packet, as recorded.
    pub const NEXT: PacketSpec = PacketSpec {
        pick: Pick::Next,
        ssrc: SsrcSpec::Same,
        seq: SeqSpec::Next,
        ts: TsSpec::Recorded,
        marker: None,
        payload_type: None,
        extras: None,
        truncate: None,
        flip: None,
    };
}

const SSRCS: [u32; 4] = [0x1111_1111, 0x2222_2222, 0x3333_3333, 0x1111_1111];

/// The sender's state: where it is in the recording and the header fields it continues from.
#[derive(Clone, Debug)]
pub struct Sender {
    templates: &'static [Template],
    next: usize,
    ssrc: u32,
    seq: u16,
    ts: u32,
    payload_type: u8,
}

impl Sender {
    pub fn new(kind: StreamKind, payload_type: u8) -> Sender {
        Sender {
            templates: recording(kind),
            next: 0,
            ssrc: SSRCS[0],
            seq: 0xfff0,
            ts: 0xffff_0000,
            payload_type,
        }
    }

    /// Write the next datagram into `out` (cleared first).
    pub fn packet(&mut self, spec: &PacketSpec, out: &mut Vec<u8>) {
        let (index, advance) = match spec.pick {
            Pick::Next => (self.next, true),
            Pick::At(i) => (usize::from(i) % self.templates.len(), false),
        };
        let template = &self.templates[index];
        if advance {
            self.next = (self.next + 1) % self.templates.len();
        }
        let ssrc = match spec.ssrc {
            SsrcSpec::Same => self.ssrc,
            SsrcSpec::Restart(i) => {
                self.ssrc = SSRCS[usize::from(i) % SSRCS.len()];
                self.ssrc
            }
            SsrcSpec::Stray(s) => s,
        };
        let seq = match spec.seq {
            SeqSpec::Next => {
                self.seq = self.seq.wrapping_add(1);
                self.seq
            }
            SeqSpec::Jump(d) => {
                self.seq = self.seq.wrapping_add(d as u16);
                self.seq
            }
            SeqSpec::Stray(s) => s,
        };
        let ts = match spec.ts {
            TsSpec::Recorded => {
                self.ts = self.ts.wrapping_add(template.ts_step);
                self.ts
            }
            TsSpec::Jump(d) => {
                self.ts = self.ts.wrapping_add(d as u32);
                self.ts
            }
            TsSpec::HalfBack => {
                self.ts = self.ts.wrapping_sub(0x7fff_ffff);
                self.ts
            }
            TsSpec::Stray(t) => t,
        };
        let marker = spec.marker.unwrap_or(template.marker);
        let payload_type = spec.payload_type.unwrap_or(self.payload_type);
        let extras = spec.extras.unwrap_or_default();

        out.clear();
        let mut head = [0u8; 12];
        let mut first_byte = 0x80 | (extras.csrcs & 0x0f);
        if extras.extension_words.is_some() {
            first_byte |= 0x10;
        }
        if extras.padding > 0 {
            first_byte |= 0x20;
        }
        write_fixed_header(
            &mut head,
            first_byte,
            marker,
            payload_type,
            SeqNo(seq),
            RtpTime(ts),
            Ssrc(ssrc),
        );
        out.extend_from_slice(&head);
        for i in 0..extras.csrcs & 0x0f {
            out.extend_from_slice(&(0xc000_0000 | u32::from(i)).to_be_bytes());
        }
        if let Some(words) = extras.extension_words {
            out.extend_from_slice(&0xBEDEu16.to_be_bytes());
            out.extend_from_slice(&u16::from(words).to_be_bytes());
            out.resize(out.len() + 4 * usize::from(words), 0);
        }
        out.extend_from_slice(&template.payload);
        if extras.padding > 0 {
            out.resize(out.len() + usize::from(extras.padding) - 1, 0);
            out.push(extras.padding);
        }
        if let Some(len) = spec.truncate {
            out.truncate(usize::from(len));
        }
        if let Some((at, mask)) = spec.flip {
            if !out.is_empty() {
                let at = usize::from(at) % out.len();
                out[at] ^= mask;
            }
        }
    }
}

//! Newtypes shared by every engine module. No bare integer that means an id, a sequence number,
//! a timestamp or a point in time leaves the module that parsed it.

use std::fmt;

/// Monotonic time in nanoseconds since an origin the caller picks. The engine never reads a clock:
/// every entry point that needs time takes `now: Nanos`, so tests drive it with virtual time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nanos(pub u64);

impl Nanos {
    /// The origin.
    pub const ZERO: Nanos = Nanos(0);

    /// `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Nanos {
        Nanos(ms * 1_000_000)
    }

    /// `us` microseconds.
    pub const fn from_micros(us: u64) -> Nanos {
        Nanos(us * 1_000)
    }

    /// Time elapsed since `earlier`, zero if `earlier` is in the future.
    pub fn saturating_since(self, earlier: Nanos) -> Nanos {
        Nanos(self.0.saturating_sub(earlier.0))
    }

    /// `self` plus `d`, held at `u64::MAX` rather than wrapping.
    pub fn saturating_add(self, d: Nanos) -> Nanos {
        Nanos(self.0.saturating_add(d.0))
    }
}

/// Identifies an ingest source node-wide. Allocated by the control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceId(pub u32);

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "src{}", self.0)
    }
}

/// Identifies a tx track (one subscriber's outgoing stream) node-wide. Allocated by the control
/// plane; a shard maps it to the slot where the track currently lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrackId(pub u32);

impl fmt::Display for TrackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "trk{}", self.0)
    }
}

/// RTP synchronisation source identifier (RFC 3550 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ssrc(pub u32);

/// A 16-bit RTP sequence number as it appears on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SeqNo(pub u16);

/// A 32-bit RTP timestamp as it appears on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RtpTime(pub u32);

/// A sequence number extended to 64 bits by counting wraps, so ordering is plain integer
/// ordering. Only cut back to 16 bits on output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExtSeq(pub u64);

impl ExtSeq {
    /// The low 16 bits, as sent.
    pub fn wire(self) -> SeqNo {
        SeqNo(self.0 as u16)
    }
}

/// A timestamp extended to 64 bits by counting wraps. Only cut back to 32 bits on output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExtTime(pub u64);

impl ExtTime {
    /// The low 32 bits, as sent.
    pub fn wire(self) -> RtpTime {
        RtpTime(self.0 as u32)
    }
}

/// The media codec of a source. Switching is only allowed between sources of the same codec,
/// because a subscriber's decoder was set up for one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// VP8 (RFC 7741).
    Vp8,
    /// VP9 (RFC 9628).
    Vp9,
    /// H.264 (RFC 6184).
    H264,
    /// H.265 (RFC 7798).
    H265,
    /// AV1 (the AOM RTP payload format).
    Av1,
    /// Opus audio (RFC 7587).
    Opus,
}

impl Codec {
    /// Every codec, in declaration order.
    pub const ALL: [Codec; 6] = [
        Codec::Vp8,
        Codec::Vp9,
        Codec::H264,
        Codec::H265,
        Codec::Av1,
        Codec::Opus,
    ];

    /// The RTP clock rate used when the source does not name one.
    pub fn default_clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48_000,
            _ => 90_000,
        }
    }

    /// Audio has no keyframes: every packet is a switch point.
    pub fn is_audio(self) -> bool {
        matches!(self, Codec::Opus)
    }

    /// Keyframes carry parameter set NAL units (SPS/PPS, VPS) that may come in their own packets
    /// after an access unit has begun (H.264, H.265).
    pub fn parameter_sets_in_band(self) -> bool {
        matches!(self, Codec::H264 | Codec::H265)
    }

    /// The payload type subscribers receive: fixed per codec, so it stays the same across
    /// switches whatever the sources use (and `corecast check` can tell the codec from it).
    pub fn output_payload_type(self) -> u8 {
        match self {
            Codec::Vp8 => 96,
            Codec::Vp9 => 98,
            Codec::H264 => 102,
            Codec::H265 => 104,
            Codec::Av1 => 106,
            Codec::Opus => 111,
        }
    }

    /// Lowercase name, as the CLI and the HTTP API spell it.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Vp8 => "vp8",
            Codec::Vp9 => "vp9",
            Codec::H264 => "h264",
            Codec::H265 => "h265",
            Codec::Av1 => "av1",
            Codec::Opus => "opus",
        }
    }

    /// The codec [`Codec::name`] gives, ignoring ASCII case; `None` for any other name.
    pub fn from_name(name: &str) -> Option<Codec> {
        Codec::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

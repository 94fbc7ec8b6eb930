//! H.264's `profile-level-id` (RFC 6184 §8.1): which profile its profile_idc and constraint
//! flags name, classified with libwebrtc's table (`h264_profile_level_id.cc`) so that corecast
//! agrees with Chrome on what "the same profile" means, and its level with level 1b.

use std::fmt;

/// An H.264 profile as libwebrtc distinguishes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum H264Profile {
    /// Constrained Baseline: what every decoder can play.
    ConstrainedBaseline,
    /// Baseline.
    Baseline,
    /// Main.
    Main,
    /// Constrained High.
    ConstrainedHigh,
    /// High.
    High,
    /// Predictive High 4:4:4.
    PredictiveHigh444,
}

impl H264Profile {
    /// How widely decoders take it, most compatible first: the order corecast prefers when the
    /// source's profile is not known yet.
    pub fn compatibility_rank(self) -> u8 {
        match self {
            H264Profile::ConstrainedBaseline => 0,
            H264Profile::Baseline => 1,
            H264Profile::Main => 2,
            H264Profile::ConstrainedHigh => 3,
            H264Profile::High => 4,
            H264Profile::PredictiveHigh444 => 5,
        }
    }
}

impl fmt::Display for H264Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            H264Profile::ConstrainedBaseline => "constrained baseline",
            H264Profile::Baseline => "baseline",
            H264Profile::Main => "main",
            H264Profile::ConstrainedHigh => "constrained high",
            H264Profile::High => "high",
            H264Profile::PredictiveHigh444 => "predictive high 4:4:4",
        })
    }
}

/// An H.264 level, ordered; level 1b sorts between 1 and 1.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct H264Level(
    /// level_idc × 10 for ordering; 1b is 105 (level_idc 11 with constraint_set3 means 1b in
    /// the Baseline-family profiles, 9 in High ones).
    u16,
);

impl H264Level {
    /// Level 1b.
    pub const L1B: H264Level = H264Level(105);

    /// The level whose `level_idc` is `idc` (not 1b).
    pub fn from_idc(idc: u8) -> H264Level {
        if idc == 9 {
            H264Level::L1B
        } else {
            H264Level(u16::from(idc) * 10)
        }
    }
}

impl fmt::Display for H264Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == H264Level::L1B {
            return f.write_str("1b");
        }
        let idc = self.0 / 10;
        if idc.is_multiple_of(10) {
            write!(f, "{}", idc / 10)
        } else {
            write!(f, "{}.{}", idc / 10, idc % 10)
        }
    }
}

/// A parsed `profile-level-id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProfileLevelId {
    /// The three bytes: profile_idc, profile-iop (constraint flags), level_idc.
    pub bytes: [u8; 3],
    /// The profile they name.
    pub profile: H264Profile,
    /// The level they name.
    pub level: H264Level,
}

/// RFC 6184's default when an offer has no `profile-level-id`: Baseline, level 1.
pub const DEFAULT_PROFILE_LEVEL_ID: [u8; 3] = [0x42, 0x00, 0x0a];

/// libwebrtc's `kProfilePatterns`: profile_idc, then constraint-flag bits as (mask, value).
const PROFILE_PATTERNS: [(u8, u8, u8, H264Profile); 9] = [
    (
        0x42,
        0b0100_1111,
        0b0100_0000,
        H264Profile::ConstrainedBaseline,
    ), // x1xx0000
    (
        0x4D,
        0b1000_1111,
        0b1000_0000,
        H264Profile::ConstrainedBaseline,
    ), // 1xxx0000
    (
        0x58,
        0b1100_1111,
        0b1100_0000,
        H264Profile::ConstrainedBaseline,
    ), // 11xx0000
    (0x42, 0b0100_1111, 0b0000_0000, H264Profile::Baseline), // x0xx0000
    (0x58, 0b1100_1111, 0b1000_0000, H264Profile::Baseline), // 10xx0000
    (0x4D, 0b1010_1111, 0b0000_0000, H264Profile::Main),     // 0x0x0000
    (0x64, 0b1111_1111, 0b0000_0000, H264Profile::High),     // 00000000
    (0x64, 0b1111_1111, 0b0000_1100, H264Profile::ConstrainedHigh), // 00001100
    (
        0xF4,
        0b1111_1111,
        0b0000_0000,
        H264Profile::PredictiveHigh444,
    ), // 00000000
];

/// The constraint_set3 flag, which with level_idc 11 means level 1b in Baseline and Main.
const CONSTRAINT_SET3: u8 = 0b0001_0000;

impl ProfileLevelId {
    /// Classifies three `profile-level-id` bytes; `None` for a profile libwebrtc does not know
    /// or a level_idc outside H.264's table.
    pub fn from_bytes(bytes: [u8; 3]) -> Option<ProfileLevelId> {
        let [idc, iop, level_idc] = bytes;
        let level = match level_idc {
            11 if iop & CONSTRAINT_SET3 != 0 => H264Level::L1B,
            9 | 10 | 11 | 12 | 13 | 20 | 21 | 22 | 30 | 31 | 32 | 40 | 41 | 42 | 50 | 51 | 52
            | 60 | 61 | 62 => H264Level::from_idc(level_idc),
            _ => return None,
        };
        let profile = PROFILE_PATTERNS
            .iter()
            .find(|(p, mask, value, _)| *p == idc && iop & mask == *value)
            .map(|(_, _, _, profile)| *profile)?;
        Some(ProfileLevelId {
            bytes,
            profile,
            level,
        })
    }

    /// Parses the fmtp value (6 hex digits, either case).
    pub fn parse(hex: &str) -> Option<ProfileLevelId> {
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
        ProfileLevelId::from_bytes([byte(0)?, byte(2)?, byte(4)?])
    }

    /// The fmtp value, lowercase hex as browsers write it.
    pub fn hex(&self) -> String {
        format!(
            "{:02x}{:02x}{:02x}",
            self.bytes[0], self.bytes[1], self.bytes[2]
        )
    }
}

/// Whether a receiver that offered `offered` (with `level-asymmetry-allowed` as given) can take
/// a stream the source sends as `source`: the same profile, and a level at least the source's
/// unless the offer allows level asymmetry.
pub fn can_receive(
    offered: ProfileLevelId,
    asymmetry_allowed: bool,
    source: ProfileLevelId,
) -> bool {
    offered.profile == source.profile && (asymmetry_allowed || offered.level >= source.level)
}

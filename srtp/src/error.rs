//! Why a packet could not be protected or unprotected.

use std::fmt;

/// Why an SRTP/SRTCP operation failed. Unprotect errors mean bad or hostile input: the caller
/// drops the packet and counts it under the variant's name ([`Error::reason`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// Master key or salt length does not match the profile.
    KeyLength {
        /// Octets the profile needs.
        expected: usize,
        /// Octets given.
        got: usize,
    },
    /// Shorter than an RTP/RTCP header plus what protection adds.
    TooShort,
    /// Not RTP/RTCP version 2, or a header that runs past the end of the packet.
    Malformed,
    /// The output buffer cannot hold the protected packet.
    BufferTooSmall {
        /// Octets the protected packet needs.
        needed: usize,
    },
    /// The authentication tag does not verify: forged, corrupted, or keyed differently.
    BadTag,
    /// This packet index was already accepted (replay window, RFC 3711 §3.3.2).
    Replayed,
    /// Older than the replay window reaches, so it cannot be told apart from a replay.
    TooOld,
    /// A new SSRC while the context already tracks as many as it was built for.
    TooManySsrcs,
    /// The sender's SRTCP index (31 bits) or SRTP index (48 bits) is used up: rekey.
    IndexExhausted,
    /// SRTP through a context made for SRTCP alone ([`crate::SrtpContext::new_rtcp_only`]).
    NoRtpKeys,
}

impl Error {
    /// A short stable name for drop counters and logs.
    pub fn reason(self) -> &'static str {
        match self {
            Error::KeyLength { .. } => "key_length",
            Error::TooShort => "too_short",
            Error::Malformed => "malformed",
            Error::BufferTooSmall { .. } => "buffer_too_small",
            Error::BadTag => "bad_tag",
            Error::Replayed => "replayed",
            Error::TooOld => "too_old",
            Error::TooManySsrcs => "too_many_ssrcs",
            Error::IndexExhausted => "index_exhausted",
            Error::NoRtpKeys => "no_rtp_keys",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::KeyLength { expected, got } => {
                write!(
                    f,
                    "key or salt of {got} octets, the profile needs {expected}"
                )
            }
            Error::BufferTooSmall { needed } => {
                write!(f, "output buffer too small, {needed} octets needed")
            }
            other => f.write_str(other.reason()),
        }
    }
}

impl std::error::Error for Error {}

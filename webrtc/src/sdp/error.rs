//! Why an offer was refused: one variant per cause, each with a stable counter name
//! ([`OfferError::reason`]) and a message for the `4xx` body that names what is missing.

use std::fmt;

use super::offer::MediaKind;

/// An offer corecast cannot answer, from [`Offer::parse`](super::Offer::parse) or
/// [`negotiate`](super::negotiate).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OfferError {
    /// The body is empty or only whitespace.
    Empty,
    /// The body is longer than [`MAX_OFFER_LEN`](super::MAX_OFFER_LEN).
    TooLarge {
        /// The body's length in bytes.
        len: usize,
    },
    /// The `sdp` crate could not parse the text as a session description.
    Malformed {
        /// What the parser said.
        detail: String,
    },
    /// More m-lines than [`MAX_MEDIA`](super::MAX_MEDIA).
    TooManyMedia {
        /// How many the offer has.
        count: usize,
    },
    /// No `a=ice-ufrag`/`a=ice-pwd`, neither at session level nor on the first m-line.
    MissingIceCredentials,
    /// An ICE username fragment or password outside RFC 8839's grammar.
    InvalidIceCredentials {
        /// `"ice-ufrag"` or `"ice-pwd"`.
        attribute: &'static str,
    },
    /// No `a=fingerprint` at all.
    MissingFingerprint,
    /// Fingerprints, but none with `sha-256`.
    NoSha256Fingerprint,
    /// An `a=fingerprint` whose value is not `ALGORITHM HEX:HEX...` of the algorithm's length.
    InvalidFingerprint {
        /// The attribute's value.
        value: String,
    },
    /// No `a=setup`.
    MissingSetup,
    /// `a=setup:passive`: corecast is always the DTLS server (passive), so the offerer must be
    /// able to be the client.
    SetupPassive,
    /// An `a=setup` value other than `actpass`, `active` or `passive`.
    InvalidSetup {
        /// The attribute's value.
        value: String,
    },
    /// No `a=group:BUNDLE`; corecast sends every track on one 5-tuple.
    MissingBundle,
    /// An m-line corecast would answer is not in the BUNDLE group.
    NotBundled {
        /// The m-line's mid.
        mid: String,
    },
    /// An m-line corecast would answer has no `a=mid`.
    MissingMid {
        /// Its index among the offer's m-lines, from 0.
        index: usize,
    },
    /// An m-line corecast would answer has no `a=rtcp-mux`.
    MissingRtcpMux {
        /// The m-line's mid.
        mid: String,
    },
    /// The offer can receive this kind, but with no payload type that fits what the channel
    /// sends.
    NoCommonCodec {
        /// Audio or video.
        kind: MediaKind,
        /// What the channel sends, e.g. `H.264 (profile-level-id 42e01f, packetization-mode 1)`.
        sends: String,
    },
    /// No m-line the channel can send to: the channel has neither kind the offer receives, or
    /// every m-line is send-only, inactive or not `UDP/TLS/RTP/SAVPF`.
    NothingToSend,
}

impl OfferError {
    /// A stable snake_case name for counters and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            OfferError::Empty => "sdp_empty",
            OfferError::TooLarge { .. } => "sdp_too_large",
            OfferError::Malformed { .. } => "sdp_malformed",
            OfferError::TooManyMedia { .. } => "sdp_too_many_media",
            OfferError::MissingIceCredentials => "sdp_no_ice_credentials",
            OfferError::InvalidIceCredentials { .. } => "sdp_bad_ice_credentials",
            OfferError::MissingFingerprint => "sdp_no_fingerprint",
            OfferError::NoSha256Fingerprint => "sdp_no_sha256_fingerprint",
            OfferError::InvalidFingerprint { .. } => "sdp_bad_fingerprint",
            OfferError::MissingSetup => "sdp_no_setup",
            OfferError::SetupPassive => "sdp_setup_passive",
            OfferError::InvalidSetup { .. } => "sdp_bad_setup",
            OfferError::MissingBundle => "sdp_no_bundle",
            OfferError::NotBundled { .. } => "sdp_mid_not_bundled",
            OfferError::MissingMid { .. } => "sdp_no_mid",
            OfferError::MissingRtcpMux { .. } => "sdp_no_rtcp_mux",
            OfferError::NoCommonCodec { .. } => "sdp_no_common_codec",
            OfferError::NothingToSend => "sdp_nothing_to_send",
        }
    }
}

impl fmt::Display for OfferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OfferError::Empty => f.write_str("the offer is empty"),
            OfferError::TooLarge { len } => write!(
                f,
                "the offer is {len} bytes; at most {} are accepted",
                super::MAX_OFFER_LEN
            ),
            OfferError::Malformed { detail } => write!(f, "the offer is not valid SDP: {detail}"),
            OfferError::TooManyMedia { count } => write!(
                f,
                "the offer has {count} m-lines; at most {} are accepted",
                super::MAX_MEDIA
            ),
            OfferError::MissingIceCredentials => {
                f.write_str("the offer has no a=ice-ufrag and a=ice-pwd")
            }
            OfferError::InvalidIceCredentials { attribute } => {
                write!(f, "the offer's a={attribute} is not valid (RFC 8839)")
            }
            OfferError::MissingFingerprint => f.write_str("the offer has no a=fingerprint"),
            OfferError::NoSha256Fingerprint => {
                f.write_str("the offer has no a=fingerprint with sha-256")
            }
            OfferError::InvalidFingerprint { value } => {
                write!(f, "the offer's a=fingerprint:{value} is not valid")
            }
            OfferError::MissingSetup => f.write_str("the offer has no a=setup"),
            OfferError::SetupPassive => f.write_str(
                "the offer has a=setup:passive; corecast is always passive, so the offer must \
                 say actpass or active",
            ),
            OfferError::InvalidSetup { value } => {
                write!(
                    f,
                    "the offer's a=setup:{value} is not actpass, active or passive"
                )
            }
            OfferError::MissingBundle => f.write_str("the offer has no a=group:BUNDLE"),
            OfferError::NotBundled { mid } => {
                write!(f, "the offer's a=group:BUNDLE does not contain mid {mid}")
            }
            OfferError::MissingMid { index } => {
                write!(f, "the offer's m-line {index} has no a=mid")
            }
            OfferError::MissingRtcpMux { mid } => {
                write!(f, "the offer's m-line with mid {mid} has no a=rtcp-mux")
            }
            OfferError::NoCommonCodec { kind, sends } => write!(
                f,
                "{kind}: the channel sends {sends} and the offer has no payload type that can \
                 receive it"
            ),
            OfferError::NothingToSend => f.write_str(
                "the offer has no m-line the channel can send to (a recvonly or sendrecv \
                 UDP/TLS/RTP/SAVPF m-line of a kind the channel has)",
            ),
        }
    }
}

impl std::error::Error for OfferError {}

/// A WHEP `PATCH` body ([`TrickleFragment::parse`](super::TrickleFragment::parse)) corecast
/// cannot use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FragmentError {
    /// The body is empty or only whitespace.
    Empty,
    /// The body is longer than [`MAX_FRAGMENT_LEN`](super::MAX_FRAGMENT_LEN).
    TooLarge {
        /// The body's length in bytes.
        len: usize,
    },
    /// A line that is not `x=value`.
    MalformedLine {
        /// Its line number, from 1.
        line: usize,
    },
    /// An `a=candidate` that is not RFC 8839's grammar.
    InvalidCandidate {
        /// Its line number, from 1.
        line: usize,
    },
    /// An `a=ice-ufrag` or `a=ice-pwd` outside RFC 8839's grammar.
    InvalidIceCredentials {
        /// `"ice-ufrag"` or `"ice-pwd"`.
        attribute: &'static str,
    },
    /// More candidates than [`MAX_FRAGMENT_CANDIDATES`](super::MAX_FRAGMENT_CANDIDATES).
    TooManyCandidates,
}

impl FragmentError {
    /// A stable snake_case name for counters and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            FragmentError::Empty => "sdpfrag_empty",
            FragmentError::TooLarge { .. } => "sdpfrag_too_large",
            FragmentError::MalformedLine { .. } => "sdpfrag_malformed_line",
            FragmentError::InvalidCandidate { .. } => "sdpfrag_bad_candidate",
            FragmentError::InvalidIceCredentials { .. } => "sdpfrag_bad_ice_credentials",
            FragmentError::TooManyCandidates => "sdpfrag_too_many_candidates",
        }
    }
}

impl fmt::Display for FragmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FragmentError::Empty => f.write_str("the trickle ICE fragment is empty"),
            FragmentError::TooLarge { len } => write!(
                f,
                "the trickle ICE fragment is {len} bytes; at most {} are accepted",
                super::MAX_FRAGMENT_LEN
            ),
            FragmentError::MalformedLine { line } => {
                write!(f, "line {line} of the trickle ICE fragment is not x=value")
            }
            FragmentError::InvalidCandidate { line } => {
                write!(
                    f,
                    "line {line} of the trickle ICE fragment is not a valid a=candidate"
                )
            }
            FragmentError::InvalidIceCredentials { attribute } => {
                write!(
                    f,
                    "the trickle ICE fragment's a={attribute} is not valid (RFC 8839)"
                )
            }
            FragmentError::TooManyCandidates => write!(
                f,
                "the trickle ICE fragment has more than {} candidates",
                super::MAX_FRAGMENT_CANDIDATES
            ),
        }
    }
}

impl std::error::Error for FragmentError {}

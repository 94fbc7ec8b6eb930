//! WHEP's SDP: the viewer's offer read ([`Offer::parse`]), negotiated against what a channel
//! sends ([`negotiate`]), the answer written ([`Answer::render`]), and trickle ICE `PATCH`
//! bodies read ([`TrickleFragment::parse`]).
//!
//! Offers are parsed and answers written with webrtc-rs's `sdp` crate (as the node's plain-RTP
//! SDP is); only what the crate does not do is done here: per-m-line codec tables (the crate's
//! codec map is session-wide), H.264 profile classification, and trickle fragments (which are
//! not session descriptions, so the crate refuses them).
//!
//! ```text
//! let offer = Offer::parse(body)?;                       // 400 with e.to_string()
//! let negotiated = negotiate(&offer, &wanted)?;          // 4xx; e.reason() is the counter
//! let sdp = Answer { negotiated: &negotiated, local_ice, local_fingerprint, candidates,
//!                    video_ssrc, audio_ssrc, cname, stream_id, session_id, session_version }
//!     .render();                                         // 201 body
//! ```

mod answer;
mod credentials;
mod error;
pub mod h264;
mod negotiate;
mod offer;
mod trickle;

#[cfg(test)]
mod tests;

pub use answer::Answer;
pub use credentials::{
    valid_pwd, valid_ufrag, Fingerprint, FingerprintError, HashAlgorithm, IceCredentials,
};
pub use error::{FragmentError, OfferError};
pub use negotiate::{
    negotiate, AcceptedMedia, Feedback, H264Source, MediaAnswer, Negotiated, RejectedMedia, Wanted,
    WantedVideo,
};
pub use offer::{Direction, MediaKind, Offer, OfferedCodec, OfferedMedia, SetupRole};
pub use trickle::{
    Candidate, FragmentMedia, TrickleFragment, MAX_FRAGMENT_CANDIDATES, MAX_FRAGMENT_LEN,
};

/// The largest offer accepted, in bytes (Chrome's audio+video offer is about 6 KiB).
pub const MAX_OFFER_LEN: usize = 64 * 1024;

/// The most m-lines an offer may have.
pub const MAX_MEDIA: usize = 16;

//! WHEP's SDP: the viewer's offer read ([`Offer::parse`]), negotiated against what a channel
//! sends ([`negotiate`]), the answer written ([`Answer::render`]), and trickle ICE `PATCH`
//! bodies read ([`TrickleFragment::parse`]).
//!
//! Offers are parsed and answers written with webrtc-rs's `sdp` crate (as the node's plain-RTP
//! SDP is); only what the crate does not do is done here: per-m-line codec tables (the crate's
//! codec map is session-wide), H.264 profile classification, and trickle fragments (which are
//! not session descriptions, so the crate refuses them).
//!
//! ```
//! use corecast_engine::Codec;
//! use corecast_webrtc::sdp::{negotiate, Answer, Fingerprint, IceCredentials, Offer, Wanted,
//!     WantedVideo};
//!
//! # let body = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
//! #   m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n\
//! #   a=rtcp-mux\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdefghijkl\r\n\
//! #   a=fingerprint:sha-256 00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:1F\r\n\
//! #   a=setup:actpass\r\na=rtpmap:96 VP8/90000\r\n";
//! // POST /v1/channels/{id}/whep: a 4xx with `e.to_string()` on error, `e.reason()` counted.
//! let offer = Offer::parse(body)?;
//! let wanted = Wanted { video: Some(WantedVideo { codec: Codec::Vp8, h264: None }), audio: true };
//! let negotiated = negotiate(&offer, &wanted)?;
//! // For the ICE side: negotiated.remote_ice; for DTLS: negotiated.remote_fingerprint.
//! let local_ice = IceCredentials { ufrag: "ab12".into(), pwd: "0123456789abcdefghijkl".into() };
//! let body = Answer {
//!     negotiated: &negotiated,
//!     local_ice: &local_ice,
//!     local_fingerprint: &Fingerprint::sha256([0; 32]),
//!     candidates: &["192.0.2.1:40000".parse().unwrap()],
//!     video_ssrc: 1,
//!     video_rtx_ssrc: None,
//!     audio_ssrc: 2,
//!     cname: "corecast",
//!     stream_id: "channel-1",
//!     session_id: 1,
//!     session_version: 1,
//! }
//! .render(); // the 201's application/sdp body
//! assert!(body.contains("a=rtpmap:96 VP8/90000\r\n"));
//! # Ok::<(), corecast_webrtc::sdp::OfferError>(())
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

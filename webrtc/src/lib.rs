//! Sans-IO WebRTC pieces for corecast's WHEP viewers.
//!
//! A viewer is a subscriber whose tracks sit in a shard's flat slice like any other; what makes
//! it WebRTC is around that: the SDP offer/answer that admits it, ICE-lite on the shard's socket
//! (STUN binding requests checked and answered, consent tracked), and the DTLS handshake that
//! yields the SRTP keys the shard encrypts each copy with. Everything here takes `now` as an
//! argument and touches no socket, thread or clock.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod dtls;
pub mod ice;
pub mod sdp;

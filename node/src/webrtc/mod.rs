//! WebRTC viewers in the node: the handshake thread that runs their DTLS, and what the shards and
//! the control thread hand it.
//!
//! - `handshake`: the thread. One DTLS server per viewer ([`corecast_webrtc::dtls::Handshake`]),
//!   fed with the records the viewer's shard received, answering through a clone of that
//!   shard's socket (the 5-tuple ICE chose), and handing finished keys to the control thread.

use std::net::SocketAddr;

use corecast_webrtc::ice::ViewerKey;
use corecast_webrtc::sdp::Fingerprint;

pub(crate) mod handshake;
pub(crate) mod whep;

pub use handshake::{channel, HandshakeCounters, HandshakeRx, HandshakeThread, HandshakeTx};

/// What reaches the handshake thread.
pub enum HandshakeInput {
    /// A viewer was admitted on `shard`: accept a handshake from it whose certificate has
    /// `remote` as fingerprint.
    Expect {
        viewer: ViewerKey,
        shard: usize,
        remote: Fingerprint,
    },
    /// A DTLS record a shard received from a viewer's address.
    Datagram {
        viewer: ViewerKey,
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    /// The viewer is gone: drop its handshake.
    Forget(ViewerKey),
}

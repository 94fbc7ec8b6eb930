//! Keyframe requests to a source: coalesced and rate limited.
//!
//! Subscribers' PLI/FIR, switches waiting for a keyframe and the control plane all ask for a
//! keyframe of a source ([`crate::SourceIngress::request_keyframe`]); however many ask, at most one
//! PLI goes out per [`crate::IngressConfig::pli_interval`]. A request made while the interval
//! runs is kept and sent when it ends; requests made meanwhile join it.

use std::net::SocketAddr;

use crate::rtcp::{self, PLI_LEN};
use crate::types::{Nanos, Ssrc};

/// A keyframe request (an RTCP PLI) for the I/O layer to send, in a buffer of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyframeRequest {
    /// Where it goes: the source's feedback address if configured, else its sender.
    pub to: SocketAddr,
    /// The PLI's bytes.
    pub bytes: [u8; PLI_LEN],
}

/// Coalescing and rate-limit state of one source's keyframe requests.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct KeyframeRequests {
    /// A request waits to be sent.
    pending: bool,
    last_sent: Option<Nanos>,
    /// `last_sent` before the last request handed out, restored if the I/O layer could not send it.
    sent_before: Option<Nanos>,
}

impl KeyframeRequests {
    pub fn request(&mut self) {
        self.pending = true;
    }

    /// When a waiting request may go out: the end of the rate limit's interval (`None` when
    /// none waits; a time in the past when it may go now).
    pub fn deadline(&self, interval: Nanos) -> Option<Nanos> {
        if !self.pending {
            return None;
        }
        Some(
            self.last_sent
                .map_or(Nanos::ZERO, |t| t.saturating_add(interval)),
        )
    }

    /// The request to send now, if one waits and the interval allows. A request with nowhere to
    /// go (the source has not sent yet, so neither its address nor its SSRC is known) is
    /// dropped: the source's first packets carry a keyframe anyway.
    pub fn poll(
        &mut self,
        now: Nanos,
        interval: Nanos,
        to: Option<SocketAddr>,
        sender_ssrc: Ssrc,
        media_ssrc: Option<Ssrc>,
    ) -> Option<KeyframeRequest> {
        if self.deadline(interval).is_none_or(|at| now < at) {
            return None;
        }
        self.pending = false;
        let (to, media) = (to?, media_ssrc?);
        let mut bytes = [0u8; PLI_LEN];
        rtcp::write_pli(&mut bytes, sender_ssrc, media);
        self.sent_before = self.last_sent;
        self.last_sent = Some(now);
        Some(KeyframeRequest { to, bytes })
    }

    /// The last request handed out was not sent: the interval does not run from it.
    pub fn unsent(&mut self) {
        self.last_sent = self.sent_before;
    }
}

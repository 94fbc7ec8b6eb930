//! Latching: which address a source's packets are taken from.
//!
//! A latching source takes the address of its first packet as its sender and drops packets from
//! any other (`wrong_sender`), so a stray or hostile sender cannot splice itself into the stream.
//! A sender silent for the source's idle time ([`crate::IngressConfig::idle`]) is forgotten, and
//! the next address that sends is latched: a sender that restarts from a new port is taken again.
//! A source that does not latch takes every packet and remembers the last address it came from
//! (where keyframe requests go).

use std::net::SocketAddr;

use crate::drop::DropReason;
use crate::types::Nanos;

/// The sender a source takes packets from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Latch {
    enabled: bool,
    sender: Option<SocketAddr>,
    /// When the sender last sent a packet.
    last_at: Nanos,
}

impl Latch {
    pub fn new(enabled: bool) -> Latch {
        Latch {
            enabled,
            sender: None,
            last_at: Nanos::ZERO,
        }
    }

    pub fn sender(&self) -> Option<SocketAddr> {
        self.sender
    }

    /// Take a packet from `from` at `now`, or refuse it as `WrongSender`. A packet with no
    /// address (the I/O layer could not tell) is taken and changes nothing but the time.
    pub fn admit(
        &mut self,
        from: Option<SocketAddr>,
        now: Nanos,
        relatch_after: Nanos,
    ) -> Result<(), DropReason> {
        match (self.enabled, self.sender, from) {
            (true, Some(latched), Some(from)) if latched != from => {
                if now.saturating_since(self.last_at) < relatch_after {
                    return Err(DropReason::WrongSender);
                }
                // The latched sender went silent: this one takes over.
                self.sender = Some(from);
            }
            (true, None, from) | (false, _, from) => self.sender = from.or(self.sender),
            _ => {}
        }
        self.last_at = now;
        Ok(())
    }
}

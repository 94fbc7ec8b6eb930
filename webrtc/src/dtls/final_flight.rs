//! What a connected handshake keeps: its last flight, to send again if the peer shows it was lost.
//!
//! Once the server has the SRTP keys, the only thing its DTLS state is still good for is the
//! peer's retransmitted final flight (RFC 6347 §4.2.4): a DTLS 1.2 client whose copy of our
//! ChangeCipherSpec + Finished was lost resends its own flight and waits for ours; a DTLS 1.3
//! client whose Finished went unacknowledged resends it until our ACK arrives. Both are answered
//! by the same datagrams we sent the first time, so those bytes (about 100 octets) are all that
//! needs keeping, not dimpl's whole state (3.5 KiB inline and 5-7 KiB of heap per viewer).
//!
//! Sending the very same records again is sound for exactly the case it serves: the peer never
//! received them (or it would not retransmit), so their record sequence numbers are new to its
//! replay window; a copy that does arrive twice is discarded by that window as a replay.

use std::time::{Duration, Instant};

use super::framing::{check_datagram, records};
use super::DtlsError;

/// Least time between two resends: a retransmitted flight spans several datagrams, and one copy
/// of our answer per peer retransmission is enough (its timer starts at 1 s and doubles).
pub const MIN_RESEND_GAP: Duration = Duration::from_millis(250);

/// The datagrams of a connected handshake's last flight, answered to the peer's retransmissions.
/// Made by [`Handshake::into_final_flight`](super::Handshake::into_final_flight).
#[derive(Debug)]
pub struct FinalFlight {
    datagrams: Box<[Box<[u8]>]>,
    last_resend: Option<Instant>,
}

impl FinalFlight {
    pub(crate) fn new(datagrams: Box<[Box<[u8]>]>) -> FinalFlight {
        FinalFlight {
            datagrams,
            last_resend: None,
        }
    }

    /// Look at one datagram from the peer: `Ok(true)` when it is (part of) a retransmitted
    /// handshake flight and [`datagrams`](Self::datagrams) are to be sent again now; `Ok(false)`
    /// when it needs no answer (an alert or application data, or a resend was just made); `Err`
    /// when it is not DTLS at all.
    ///
    /// A DTLS 1.2 flight carries handshake (22) or change_cipher_spec (20) records; a DTLS 1.3
    /// one is encrypted under the unified header (first octet 32..=63), where a retransmitted
    /// Finished cannot be told from an alert without the keys: both get the ACK again, which is
    /// harmless.
    pub fn handle_datagram(&mut self, datagram: &[u8], now: Instant) -> Result<bool, DtlsError> {
        check_datagram(datagram)?;
        let retransmission = records(datagram).any(|kind| matches!(kind, 20 | 22 | 32..=63));
        if !retransmission || self.datagrams.is_empty() {
            return Ok(false);
        }
        if self
            .last_resend
            .is_some_and(|at| now.saturating_duration_since(at) < MIN_RESEND_GAP)
        {
            return Ok(false);
        }
        self.last_resend = Some(now);
        Ok(true)
    }

    /// The last flight's datagrams, in the order they were first sent.
    pub fn datagrams(&self) -> impl Iterator<Item = &[u8]> {
        self.datagrams.iter().map(|d| &d[..])
    }

    /// Heap octets this holds (for the memory budget per viewer).
    pub fn heap_bytes(&self) -> usize {
        self.datagrams.len() * std::mem::size_of::<Box<[u8]>>()
            + self.datagrams.iter().map(|d| d.len()).sum::<usize>()
    }
}

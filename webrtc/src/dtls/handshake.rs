//! One viewer's DTLS-SRTP handshake, server side, driven by datagrams and virtual time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use corecast_srtp::Profile;

use super::certificate::{Certificate, Fingerprint};
use super::final_flight::FinalFlight;
use super::framing::check_datagram;
use super::keys::SrtpKeys;
use super::server_config::ServerConfig;
use super::DtlsError;

/// How long a handshake may take from [`Handshake::new`] before it fails with
/// [`DtlsError::Timeout`]. dimpl retransmits within it (1 s, doubling).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// Output drained per call is bounded: a handful of flights, never more than this many items.
const MAX_OUTPUTS_PER_DRAIN: usize = 256;

/// Enough for one record at dimpl's default 1150-octet MTU; dimpl asks for more if needed.
const POLL_BUFFER: usize = 1500;

/// What a handshake ended in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeEvent {
    /// The peer proved its certificate and an SRTP profile was agreed: these keys go to the
    /// viewer's shard.
    Connected(SrtpKeys),
    /// The handshake failed and yields no keys; drop the viewer.
    Failed(DtlsError),
    /// After `Connected`, the peer sent close_notify (the viewer has gone).
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    InProgress,
    Connected,
    Failed,
}

/// The server side of one DTLS-SRTP handshake (corecast answers `a=setup:passive`).
///
/// Sans-IO: datagrams go in with [`handle_datagram`](Self::handle_datagram), records to send
/// come out of [`poll_transmit`](Self::poll_transmit), timers are
/// [`poll_timeout`](Self::poll_timeout) / [`handle_timeout`](Self::handle_timeout), and the
/// outcome is one [`HandshakeEvent`] from [`poll_event`](Self::poll_event). After `Connected`
/// it keeps answering the peer's retransmitted final flight (in case ours was lost) until the
/// caller drops it, or trades it for the much smaller [`FinalFlight`] with
/// [`into_final_flight`](Self::into_final_flight).
pub struct Handshake {
    dtls: dimpl::Dtls,
    remote: Fingerprint,
    deadline: Instant,
    state: State,
    peer_verified: bool,
    keys: Option<SrtpKeys>,
    next_timeout: Option<Instant>,
    transmit: VecDeque<Vec<u8>>,
    /// What was queued in the call that connected: our last flight.
    final_flight: Vec<Vec<u8>>,
    events: VecDeque<HandshakeEvent>,
}

impl Handshake {
    /// A server handshake with the node's certificate, expecting the peer's certificate to
    /// have `remote` (from `a=fingerprint` in its offer), accepting every SRTP profile in the
    /// default order ([`ServerConfig::default`]). It fails at `now` + [`HANDSHAKE_TIMEOUT`]
    /// unless connected by then.
    pub fn new(certificate: &Certificate, remote: Fingerprint, now: Instant) -> Handshake {
        Handshake::with_config(&ServerConfig::default(), certificate, remote, now)
    }

    /// [`new`](Self::new), with the SRTP profiles `config` accepts.
    pub fn with_config(
        config: &ServerConfig,
        certificate: &Certificate,
        remote: Fingerprint,
        now: Instant,
    ) -> Handshake {
        let mut handshake = Handshake {
            dtls: dimpl::Dtls::new_auto(
                config.dimpl(),
                certificate.dimpl_certificate().clone(),
                now,
            ),
            remote,
            deadline: now + HANDSHAKE_TIMEOUT,
            state: State::InProgress,
            peer_verified: false,
            keys: None,
            next_timeout: None,
            transmit: VecDeque::new(),
            final_flight: Vec::new(),
            events: VecDeque::new(),
        };
        if let Err(e) = handshake.dtls.handle_timeout(now) {
            handshake.fail(DtlsError::from_dimpl(&e));
        }
        handshake.drain();
        handshake
    }

    /// Feed one datagram from the peer. `Err` means it was dropped, with the reason to count;
    /// if it also ended the handshake, [`poll_event`](Self::poll_event) yields `Failed`.
    pub fn handle_datagram(&mut self, datagram: &[u8], now: Instant) -> Result<(), DtlsError> {
        if self.state == State::Failed {
            return Err(DtlsError::HandshakeFailed);
        }
        check_datagram(datagram)?;
        self.advance(now);
        if self.state == State::Failed {
            return Err(DtlsError::HandshakeFailed);
        }
        if let Err(e) = self.dtls.handle_packet(datagram) {
            let err = DtlsError::from_dimpl(&e);
            self.fail(err);
            return Err(err);
        }
        self.drain();
        match self.events.back() {
            Some(HandshakeEvent::Failed(err)) if self.state == State::Failed => Err(*err),
            _ => Ok(()),
        }
    }

    /// The next record datagram to send to the peer.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due; `None` once failed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::InProgress => Some(
                self.next_timeout
                    .map_or(self.deadline, |t| t.min(self.deadline)),
            ),
            State::Connected => self.next_timeout,
            State::Failed => None,
        }
    }

    /// Retransmit a lost flight if due, and fail the handshake at its deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
    }

    /// The handshake's outcome, once: `Connected` or `Failed`. After `Connected` it may yield
    /// `Closed` (close_notify) or `Failed` (a fatal DTLS error: it stops answering
    /// retransmissions; the SRTP keys already handed out stay valid).
    pub fn poll_event(&mut self) -> Option<HandshakeEvent> {
        self.events.pop_front()
    }

    /// Whether the handshake completed (and has not since failed).
    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// Once connected (and its transmits polled), all that is left to do is answer the peer's
    /// retransmitted final flight: this keeps just the datagrams of ours and lets dimpl's state
    /// go. `None` unless connected. Later close_notify is no longer seen (it is encrypted); the
    /// viewer then leaves by its consent checks stopping, as it does without DTLS.
    pub fn into_final_flight(self) -> Option<FinalFlight> {
        if self.state != State::Connected {
            return None;
        }
        Some(FinalFlight::new(
            self.final_flight
                .into_iter()
                .map(Vec::into_boxed_slice)
                .collect(),
        ))
    }

    fn advance(&mut self, now: Instant) {
        match self.state {
            State::Failed => return,
            State::InProgress if now >= self.deadline => {
                self.fail(DtlsError::Timeout);
                return;
            }
            _ => {}
        }
        if let Err(e) = self.dtls.handle_timeout(now) {
            self.fail(DtlsError::from_dimpl(&e));
            return;
        }
        self.drain();
    }

    fn fail(&mut self, err: DtlsError) {
        if self.state == State::Failed {
            return;
        }
        // Nothing more goes to a peer we refused (our Finished may already be queued).
        self.transmit.clear();
        self.keys = None;
        self.state = State::Failed;
        self.events.push_back(HandshakeEvent::Failed(err));
    }

    /// Move everything dimpl has to say into our queues and state.
    fn drain(&mut self) {
        let mut buf = vec![0u8; POLL_BUFFER];
        let mut connected = false;
        let queued_before = self.transmit.len();
        for _ in 0..MAX_OUTPUTS_PER_DRAIN {
            if self.state == State::Failed {
                return;
            }
            match self.dtls.poll_output(&mut buf) {
                dimpl::Output::Packet(p) => self.transmit.push_back(p.to_vec()),
                dimpl::Output::BufferTooSmall { needed } => buf.resize(needed, 0),
                dimpl::Output::Timeout(t) => {
                    self.next_timeout = Some(t);
                    break;
                }
                dimpl::Output::PeerCert(der) => {
                    if Fingerprint::of_der(der) == self.remote {
                        self.peer_verified = true;
                    } else {
                        self.fail(DtlsError::FingerprintMismatch);
                    }
                }
                dimpl::Output::KeyingMaterial(material, profile) => {
                    match srtp_profile(profile)
                        .ok_or(DtlsError::NoSrtpProfile)
                        .and_then(|p| SrtpKeys::from_keying_material(p, &material))
                    {
                        Ok(keys) => self.keys = Some(keys),
                        Err(e) => self.fail(e),
                    }
                }
                dimpl::Output::Connected => connected = true,
                dimpl::Output::CloseNotify => match self.state {
                    State::InProgress => self.fail(DtlsError::PeerClosed),
                    _ => self.events.push_back(HandshakeEvent::Closed),
                },
                // Viewers send no DTLS application data; anything else dimpl adds later is
                // not ours to act on.
                _ => {}
            }
        }
        if connected && self.state == State::InProgress {
            if !self.peer_verified {
                self.fail(DtlsError::NoCertificate);
            } else if let Some(keys) = self.keys.take() {
                self.state = State::Connected;
                self.final_flight = self.transmit.iter().skip(queued_before).cloned().collect();
                self.events.push_back(HandshakeEvent::Connected(keys));
            } else {
                self.fail(DtlsError::NoSrtpProfile);
            }
        }
    }
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("state", &self.state)
            .field("remote", &self.remote)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// The corecast-srtp profile for the one dimpl agreed.
fn srtp_profile(profile: dimpl::SrtpProfile) -> Option<Profile> {
    match profile {
        dimpl::SrtpProfile::AEAD_AES_256_GCM => Some(Profile::AeadAes256Gcm),
        dimpl::SrtpProfile::AEAD_AES_128_GCM => Some(Profile::AeadAes128Gcm),
        dimpl::SrtpProfile::AES128_CM_SHA1_80 => Some(Profile::Aes128CmHmacSha1_80),
        _ => None,
    }
}

//! DTLS-SRTP key agreement for WHEP viewers (RFC 5763, RFC 5764), sans-IO, on `dimpl`.
//!
//! corecast answers `a=setup:passive`, so it is always the DTLS server. The node makes one
//! [`Certificate`] at start and puts its [`Fingerprint`] in every SDP answer; per viewer it
//! makes a [`Handshake`] with the fingerprint from that viewer's offer, feeds it the datagrams
//! whose first octet is 20..=63 (RFC 7983), sends what [`Handshake::poll_transmit`] yields back
//! to the viewer, and calls [`Handshake::handle_timeout`] at [`Handshake::poll_timeout`]. The
//! handshake ends in one [`HandshakeEvent`]: `Connected` with the [`SrtpKeys`] for the viewer's
//! shard, or `Failed` with a [`DtlsError`].
//!
//! DTLS 1.2 and 1.3 are both accepted (dimpl's auto-sensing server: the ClientHello's
//! `supported_versions` decides). The client must present a certificate, and its SHA-256
//! fingerprint must equal the one in its offer; dimpl does no PKI validation of its own.
//! The SRTP profiles offered are the three `corecast-srtp` implements; dimpl picks by server
//! preference AEAD_AES_256_GCM, then AEAD_AES_128_GCM, then AES_CM_128_HMAC_SHA1_80.
//!
//! Cost (`cargo bench -p corecast-webrtc --bench handshake`, 2 shared cores): about 1.5 ms of
//! server CPU per DTLS 1.2 handshake (P-256 ECDHE and ECDSA in RustCrypto), so one handshake
//! thread does several hundred a second. A [`Handshake`] is 3.5 KiB inline plus about 4 KiB of
//! heap while it waits for the client's second flight and about 7 KiB once connected; trade it
//! then for its [`FinalFlight`] (the ~100 octets of our last flight, to answer the peer's
//! retransmission if ours was lost), as the node does.
//!
//! dimpl drops malformed records silently, so that a hostile datagram never tears down a
//! handshake. To still count such drops by reason, [`Handshake::handle_datagram`] first checks
//! the record framing (13-octet DTLSPlaintext headers whose lengths fit the datagram, version
//! major 0xFE, known content types); that check reads headers only and leaves all parsing of
//! record contents to dimpl.
//!
//! ```
//! use std::time::Instant;
//! use corecast_webrtc::dtls::{Certificate, Fingerprint, Handshake};
//!
//! let cert = Certificate::generate().unwrap();
//! let offer_fp = Fingerprint::parse("sha-256", &Certificate::generate().unwrap()
//!     .fingerprint().to_string()).unwrap();
//! let mut hs = Handshake::new(&cert, offer_fp, Instant::now());
//! // Not a DTLS record: dropped with a reason, the handshake goes on.
//! let err = hs.handle_datagram(&[22, 0xfe], Instant::now()).unwrap_err();
//! assert_eq!(err.reason(), "truncated_record");
//! assert!(hs.poll_transmit().is_none());
//! ```

use std::fmt;

mod certificate;
mod final_flight;
mod framing;
mod handshake;
mod keys;
mod server_config;
#[cfg(test)]
mod tests;

pub use certificate::{Certificate, Fingerprint};
pub use final_flight::{FinalFlight, MIN_RESEND_GAP};
pub use handshake::{Handshake, HandshakeEvent, HANDSHAKE_TIMEOUT};
pub use keys::{SrtpKeys, EXPORTER_LABEL};
pub use server_config::{ProfilesError, ServerConfig};

/// Why a datagram was dropped or a handshake failed. [`DtlsError::reason`] names each for
/// counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DtlsError {
    /// The datagram was empty.
    EmptyDatagram,
    /// The first octet is outside DTLS's range 20..=63 (RFC 7983).
    NotDtls,
    /// A record header or body runs past the end of the datagram.
    TruncatedRecord,
    /// A record's version is not DTLS (major 0xFE).
    BadRecordVersion,
    /// A record's content type is none DTLS defines.
    UnknownContentType,
    /// The peer's certificate does not have the fingerprint its SDP offer named.
    FingerprintMismatch,
    /// The peer presented no certificate.
    NoCertificate,
    /// The peer's certificate could not be parsed or its key is unusable.
    BadCertificate,
    /// The peer offered no SRTP profile corecast implements (or no `use_srtp` at all).
    NoSrtpProfile,
    /// The handshake did not complete within [`HANDSHAKE_TIMEOUT`] (or dimpl's retries ran out).
    Timeout,
    /// The peer sent a fatal alert.
    Alert,
    /// The peer closed the connection (close_notify) before the handshake completed.
    PeerClosed,
    /// A handshake message arrived out of place or the peer broke the protocol.
    UnexpectedMessage,
    /// The peer's offer left nothing to agree on (versions, cipher suites, groups,
    /// signature schemes, extended master secret) or its Finished did not verify.
    Negotiation,
    /// A cryptographic operation failed (a bad signature or key share, among others).
    Crypto,
    /// The peer sent more than dimpl queues.
    QueueFull,
    /// Any other error dimpl reports.
    Protocol,
    /// The handshake has already failed; the datagram was not processed.
    HandshakeFailed,
    /// The exported keying material does not have the length the profile needs.
    BadKeyingMaterial,
    /// The local certificate could not be generated.
    CertificateGeneration,
    /// A fingerprint names a hash other than sha-256.
    UnsupportedFingerprintHash,
    /// A fingerprint value is not 32 colon-separated hex pairs.
    MalformedFingerprint,
}

impl DtlsError {
    /// A stable snake_case name for counters and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            DtlsError::EmptyDatagram => "empty_datagram",
            DtlsError::NotDtls => "not_dtls",
            DtlsError::TruncatedRecord => "truncated_record",
            DtlsError::BadRecordVersion => "bad_record_version",
            DtlsError::UnknownContentType => "unknown_content_type",
            DtlsError::FingerprintMismatch => "fingerprint_mismatch",
            DtlsError::NoCertificate => "no_certificate",
            DtlsError::BadCertificate => "bad_certificate",
            DtlsError::NoSrtpProfile => "no_srtp_profile",
            DtlsError::Timeout => "timeout",
            DtlsError::Alert => "alert",
            DtlsError::PeerClosed => "peer_closed",
            DtlsError::UnexpectedMessage => "unexpected_message",
            DtlsError::Negotiation => "negotiation",
            DtlsError::Crypto => "crypto",
            DtlsError::QueueFull => "queue_full",
            DtlsError::Protocol => "protocol",
            DtlsError::HandshakeFailed => "handshake_failed",
            DtlsError::BadKeyingMaterial => "bad_keying_material",
            DtlsError::CertificateGeneration => "certificate_generation",
            DtlsError::UnsupportedFingerprintHash => "unsupported_fingerprint_hash",
            DtlsError::MalformedFingerprint => "malformed_fingerprint",
        }
    }

    /// The category of a dimpl error.
    pub(crate) fn from_dimpl(err: &dimpl::Error) -> DtlsError {
        use dimpl::{CertificateError as C, Error as E, SecurityError as S};
        match err {
            E::CertificateError(C::NoClientCertificateReceived)
            | E::CertificateError(C::NoClientCertificateForVerification) => {
                DtlsError::NoCertificate
            }
            E::CertificateError(_) => DtlsError::BadCertificate,
            E::SecurityError(S::FatalAlert { .. }) => DtlsError::Alert,
            E::SecurityError(_) => DtlsError::Negotiation,
            E::UnexpectedMessage(_) | E::RenegotiationAttempt | E::TooManyClientHelloFragments => {
                DtlsError::UnexpectedMessage
            }
            E::CryptoError(_) => DtlsError::Crypto,
            E::Timeout(_) => DtlsError::Timeout,
            E::ReceiveQueueFull | E::TransmitQueueFull | E::TransmitHistoryFull => {
                DtlsError::QueueFull
            }
            E::ConnectionClosed => DtlsError::PeerClosed,
            _ => DtlsError::Protocol,
        }
    }
}

impl fmt::Display for DtlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for DtlsError {}

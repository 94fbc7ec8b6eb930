//! The viewer's DTLS client (`a=setup:active`): dimpl, sans-IO, driven by the join loop; the
//! node's certificate checked against the answer's fingerprint; SRTP keys split for the
//! receiving side.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use corecast_srtp::{Profile, SrtpContext};
use corecast_webrtc::dtls::{Certificate, Fingerprint, SrtpKeys};

/// SSRCs one viewer's inbound context tracks: its video (or audio) track, with room to spare.
const MAX_SSRCS: usize = 4;

/// The SRTP context that opens what the node sends a viewer.
///
/// RFC 5764 §4.2: the node, the DTLS server, protects with the *server* write key and salt
/// (`SrtpKeys::outbound` on its side); the viewer, the client, must unprotect with that same
/// half. (`SrtpKeys::inbound` is the client-write half the node opens the viewer's SRTCP with.)
pub fn viewer_inbound(keys: &SrtpKeys) -> SrtpContext {
    keys.outbound(MAX_SSRCS)
}

/// How a client handshake ended.
#[derive(Debug)]
pub enum ClientEvent {
    /// The node proved the certificate the answer named and an SRTP profile was agreed.
    Connected(SrtpKeys),
    /// The handshake cannot complete; the reason, for the report.
    Failed(String),
}

fn client_config() -> Arc<dimpl::Config> {
    static CONFIG: OnceLock<Arc<dimpl::Config>> = OnceLock::new();
    CONFIG
        .get_or_init(|| Arc::new(dimpl::Config::default()))
        .clone()
}

fn srtp_profile(profile: dimpl::SrtpProfile) -> Option<Profile> {
    match profile {
        dimpl::SrtpProfile::AEAD_AES_256_GCM => Some(Profile::AeadAes256Gcm),
        dimpl::SrtpProfile::AEAD_AES_128_GCM => Some(Profile::AeadAes128Gcm),
        dimpl::SrtpProfile::AES128_CM_SHA1_80 => Some(Profile::Aes128CmHmacSha1_80),
        _ => None,
    }
}

/// One viewer's DTLS 1.2 client, as browsers connect.
pub struct DtlsClient {
    dtls: dimpl::Dtls,
    expected: Fingerprint,
    server_verified: bool,
    keys: Option<SrtpKeys>,
    timeout: Option<Instant>,
    outcome: Option<ClientEvent>,
    done: bool,
    buf: Vec<u8>,
}

impl DtlsClient {
    /// A client with the run's `certificate` that accepts only a server whose certificate hashes
    /// to `expected`; its ClientHello is ready in [`DtlsClient::transmit`].
    pub fn new(certificate: &Certificate, expected: Fingerprint, now: Instant) -> DtlsClient {
        let mut dtls = dimpl::Dtls::new_12(
            client_config(),
            certificate.dimpl_certificate().clone(),
            now,
        );
        dtls.set_active(true);
        let mut c = DtlsClient {
            dtls,
            expected,
            server_verified: false,
            keys: None,
            timeout: None,
            outcome: None,
            done: false,
            buf: vec![0u8; 2048],
        };
        if let Err(e) = c.dtls.handle_timeout(now) {
            c.fail(format!("dtls start: {e}"));
        }
        c
    }

    /// Feed a datagram from the node.
    pub fn handle_datagram(&mut self, datagram: &[u8]) {
        if self.done {
            return;
        }
        if let Err(e) = self.dtls.handle_packet(datagram) {
            self.fail(format!("dtls: {e}"));
        }
    }

    /// Retransmit if due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.done {
            return;
        }
        if let Err(e) = self.dtls.handle_timeout(now) {
            self.fail(format!("dtls timer: {e}"));
        }
    }

    /// When [`DtlsClient::handle_timeout`] is next due, as of the last [`DtlsClient::transmit`].
    pub fn timeout(&self) -> Option<Instant> {
        if self.done {
            None
        } else {
            self.timeout
        }
    }

    /// Everything dimpl has to send now, each datagram handed to `send`; records the rest.
    pub fn transmit(&mut self, mut send: impl FnMut(&[u8])) {
        let mut connected = false;
        // dimpl ends each poll cycle with Timeout; the bound is a guard, not a limit met.
        for _ in 0..256 {
            if self.done {
                break;
            }
            match self.dtls.poll_output(&mut self.buf) {
                dimpl::Output::Packet(p) => send(p),
                dimpl::Output::BufferTooSmall { needed } => {
                    let needed = needed.min(1 << 16);
                    if needed <= self.buf.len() {
                        self.fail("dtls: output larger than 64 KiB".into());
                        break;
                    }
                    self.buf.resize(needed, 0);
                }
                dimpl::Output::Timeout(t) => {
                    self.timeout = Some(t);
                    break;
                }
                dimpl::Output::PeerCert(der) => {
                    if Fingerprint::of_der(der) == self.expected {
                        self.server_verified = true;
                    } else {
                        self.fail(
                            "the node's certificate does not match the answer's a=fingerprint"
                                .into(),
                        );
                    }
                }
                dimpl::Output::KeyingMaterial(km, profile) => {
                    match srtp_profile(profile)
                        .ok_or_else(|| format!("unknown SRTP profile {profile:?}"))
                        .and_then(|p| {
                            SrtpKeys::from_keying_material(p, &km)
                                .map_err(|e| format!("keying material: {}", e.reason()))
                        }) {
                        Ok(keys) => self.keys = Some(keys),
                        Err(e) => self.fail(e),
                    }
                }
                dimpl::Output::Connected => connected = true,
                dimpl::Output::CloseNotify => self.fail("the node closed the DTLS session".into()),
                _ => {}
            }
        }
        if connected && !self.done {
            match (self.server_verified, self.keys.take()) {
                (true, Some(keys)) => {
                    self.done = true;
                    self.outcome = Some(ClientEvent::Connected(keys));
                }
                (false, _) => self.fail("the node presented no certificate".into()),
                (true, None) => self.fail("no SRTP profile was agreed".into()),
            }
        }
    }

    /// The outcome, once.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.outcome.take()
    }

    fn fail(&mut self, why: String) {
        if !self.done {
            self.done = true;
            self.keys = None;
            self.outcome = Some(ClientEvent::Failed(why));
        }
    }
}

/// RFC 7983: a first byte of 20–63 is DTLS.
pub fn looks_like_dtls(datagram: &[u8]) -> bool {
    datagram.first().is_some_and(|b| (20..=63).contains(b))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use corecast_webrtc::dtls::{Handshake, HandshakeEvent};

    use super::*;

    struct Outcome {
        client: Option<ClientEvent>,
        server: Option<HandshakeEvent>,
    }

    /// Our client against the node's own server handshake, in memory, over virtual time.
    fn handshake(server_cert: &Certificate, expected: Fingerprint) -> Outcome {
        let client_cert = Certificate::generate().unwrap();
        let mut now = Instant::now();
        let mut server = Handshake::new(server_cert, client_cert.fingerprint(), now);
        let mut client = DtlsClient::new(&client_cert, expected, now);
        let mut out = Outcome {
            client: None,
            server: None,
        };
        for _ in 0..200 {
            let mut to_server = Vec::new();
            client.transmit(|d| to_server.push(d.to_vec()));
            for d in to_server {
                let _ = server.handle_datagram(&d, now);
            }
            while let Some(d) = server.poll_transmit() {
                client.handle_datagram(&d);
            }
            out.server = out.server.or_else(|| server.poll_event());
            out.client = out.client.or_else(|| client.poll_event());
            if out.client.is_some() && out.server.is_some() {
                break;
            }
            now += Duration::from_millis(100);
            client.handle_timeout(now);
            server.handle_timeout(now);
        }
        out
    }

    #[test]
    fn both_sides_agree_and_the_viewer_opens_what_the_node_seals() {
        let server_cert = Certificate::generate().unwrap();
        let out = handshake(&server_cert, server_cert.fingerprint());
        let Some(ClientEvent::Connected(client_keys)) = out.client else {
            panic!("client: {:?}", out.client);
        };
        let Some(HandshakeEvent::Connected(server_keys)) = out.server else {
            panic!("server: {:?}", out.server);
        };
        assert_eq!(client_keys, server_keys, "the same exported material");
        // An RTP packet as the shard seals it: the node's outbound context.
        let mut rtp = vec![0x80, 96, 0x12, 0x34, 0, 0, 0x10, 0, 0xca, 0xfe, 0xba, 0xbe];
        rtp.extend((0..200u32).map(|i| i as u8));
        let mut node_out = server_keys.outbound(4);
        let mut sealed = vec![0u8; rtp.len() + 64];
        let n = node_out.protect_rtp(&[&rtp], &mut sealed).unwrap();
        sealed.truncate(n);
        assert_ne!(&sealed[12..rtp.len()], &rtp[12..], "encrypted");
        let mut opened = sealed.clone();
        let len = viewer_inbound(&client_keys)
            .unprotect_rtp(&mut opened)
            .expect("the viewer's context opens the node's packet");
        assert_eq!(&opened[..len], &rtp[..]);
        // The other half (the client-write keys) must not open it: the split matters.
        let mut wrong = sealed.clone();
        assert!(client_keys.inbound(4).unprotect_rtp(&mut wrong).is_err());
    }

    #[test]
    fn a_node_certificate_other_than_the_answered_one_is_refused() {
        let server_cert = Certificate::generate().unwrap();
        let other = Certificate::generate().unwrap();
        let out = handshake(&server_cert, other.fingerprint());
        match out.client {
            Some(ClientEvent::Failed(why)) => assert!(why.contains("fingerprint"), "{why}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn garbage_from_the_network_fails_the_handshake_without_panicking() {
        let cert = Certificate::generate().unwrap();
        let mut c = DtlsClient::new(&cert, cert.fingerprint(), Instant::now());
        let mut sent = 0;
        c.transmit(|_| sent += 1);
        assert!(sent > 0, "a ClientHello");
        for junk in [
            &[][..],
            &[22, 254, 253, 0, 0][..],
            &[23; 40][..],
            &[0xff; 300][..],
        ] {
            c.handle_datagram(junk);
            c.transmit(|_| {});
        }
        assert!(looks_like_dtls(&[22]) && !looks_like_dtls(&[128]) && !looks_like_dtls(&[]));
    }
}

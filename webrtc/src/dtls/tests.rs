//! Handshakes in memory over virtual time against dimpl clients.

use std::sync::Arc;
use std::time::{Duration, Instant};

use corecast_srtp::{Profile, SrtpContext};

use super::*;

#[derive(Clone, Copy, Debug)]
enum Version {
    V12,
    V13,
    Auto,
}

/// A dimpl DTLS client (the viewer) with its own certificate.
struct Client {
    dtls: dimpl::Dtls,
    cert: Certificate,
    timeout: Option<Instant>,
    keys: Option<SrtpKeys>,
    server_fingerprint: Option<Fingerprint>,
    connected: bool,
}

impl Client {
    fn new(version: Version, now: Instant) -> Client {
        let cert = Certificate::generate().unwrap();
        let config = Arc::new(dimpl::Config::default());
        let dimpl_cert = cert.dimpl_certificate().clone();
        let mut dtls = match version {
            Version::V12 => dimpl::Dtls::new_12(config, dimpl_cert, now),
            Version::V13 => dimpl::Dtls::new_13(config, dimpl_cert, now),
            Version::Auto => dimpl::Dtls::new_auto(config, dimpl_cert, now),
        };
        dtls.set_active(true);
        dtls.handle_timeout(now).unwrap();
        Client {
            dtls,
            cert,
            timeout: None,
            keys: None,
            server_fingerprint: None,
            connected: false,
        }
    }

    /// The datagrams the client has to send now; records what else it reported.
    fn transmit(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 2048];
        loop {
            match self.dtls.poll_output(&mut buf) {
                dimpl::Output::Packet(p) => out.push(p.to_vec()),
                dimpl::Output::Timeout(t) => {
                    self.timeout = Some(t);
                    return out;
                }
                dimpl::Output::PeerCert(der) => {
                    self.server_fingerprint = Some(Fingerprint::of_der(der))
                }
                dimpl::Output::KeyingMaterial(km, profile) => {
                    let profile = match profile {
                        dimpl::SrtpProfile::AEAD_AES_256_GCM => Profile::AeadAes256Gcm,
                        dimpl::SrtpProfile::AEAD_AES_128_GCM => Profile::AeadAes128Gcm,
                        _ => Profile::Aes128CmHmacSha1_80,
                    };
                    self.keys = Some(SrtpKeys::from_keying_material(profile, &km).unwrap());
                }
                dimpl::Output::Connected => self.connected = true,
                dimpl::Output::BufferTooSmall { needed } => buf.resize(needed, 0),
                _ => {}
            }
        }
    }
}

/// Client and server with the datagrams between them carried (or lost) by the test.
struct Pair {
    now: Instant,
    start: Instant,
    client: Client,
    server: Handshake,
    server_cert: Certificate,
    server_events: Vec<HandshakeEvent>,
    server_errors: Vec<DtlsError>,
    /// Drop what the server queued in the same call that produced `Connected`.
    lose_final_server_flight: bool,
    lost: usize,
}

impl Pair {
    fn new(version: Version) -> Pair {
        Pair::with_expected(version, None)
    }

    fn with_expected(version: Version, expected: Option<Fingerprint>) -> Pair {
        Pair::with_config(version, expected, &ServerConfig::default())
    }

    fn with_config(version: Version, expected: Option<Fingerprint>, config: &ServerConfig) -> Pair {
        let now = Instant::now();
        let client = Client::new(version, now);
        let server_cert = Certificate::generate().unwrap();
        let remote = expected.unwrap_or(client.cert.fingerprint());
        Pair {
            now,
            start: now,
            server: Handshake::with_config(config, &server_cert, remote, now),
            client,
            server_cert,
            server_events: Vec::new(),
            server_errors: Vec::new(),
            lose_final_server_flight: false,
            lost: 0,
        }
    }

    fn server_done(&self) -> bool {
        !self.server_events.is_empty()
    }

    fn server_failed(&self) -> bool {
        matches!(self.server_events.first(), Some(HandshakeEvent::Failed(_)))
    }

    /// Carry datagrams and advance virtual time until both sides are done, the server failed,
    /// or 20 s of virtual time passed.
    fn run(&mut self) {
        for _ in 0..10_000 {
            let mut moved = false;
            for datagram in self.client.transmit() {
                moved = true;
                if let Err(e) = self.server.handle_datagram(&datagram, self.now) {
                    self.server_errors.push(e);
                }
                let connected_before = self.server_done();
                while let Some(ev) = self.server.poll_event() {
                    self.server_events.push(ev);
                }
                if self.lose_final_server_flight && !connected_before && self.server_done() {
                    while self.server.poll_transmit().is_some() {
                        self.lost += 1;
                    }
                    self.lose_final_server_flight = false;
                }
            }
            while let Some(datagram) = self.server.poll_transmit() {
                moved = true;
                // The client's errors are its own business; the server's outcome is checked.
                let _ = self.client.dtls.handle_packet(&datagram);
            }
            if (self.server_done() && self.client.connected) || self.server_failed() {
                if !moved {
                    return;
                }
                continue;
            }
            if moved {
                continue;
            }
            let next = [self.client.timeout, self.server.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .expect("someone has a timer");
            if next > self.start + Duration::from_secs(20) {
                return;
            }
            self.now = next.max(self.now);
            let _ = self.client.dtls.handle_timeout(self.now);
            self.server.handle_timeout(self.now);
            while let Some(ev) = self.server.poll_event() {
                self.server_events.push(ev);
            }
        }
        panic!("handshake did not settle in 10,000 steps");
    }

    fn server_keys(&self) -> SrtpKeys {
        match self.server_events.as_slice() {
            [HandshakeEvent::Connected(keys)] => keys.clone(),
            other => panic!("server events {other:?}, errors {:?}", self.server_errors),
        }
    }
}

fn rtp_header(ssrc: u32, seq: u16) -> [u8; 12] {
    let mut h = [0x80, 96, 0, 0, 0, 0, 0x12, 0x34, 0, 0, 0, 0];
    h[2..4].copy_from_slice(&seq.to_be_bytes());
    h[8..12].copy_from_slice(&ssrc.to_be_bytes());
    h
}

/// The server's keys and the client's agree, split the right way round: each side's protect
/// context unprotects with the other's, for SRTP and SRTCP.
fn assert_srtp_agrees(server: &SrtpKeys, client: &SrtpKeys) {
    assert_eq!(server.profile(), client.profile());
    assert_eq!(server.keying_material(), client.keying_material());
    assert_ne!(server.client_write(), server.server_write());
    let profile = client.profile();
    let (ck, cs) = client.client_write();
    let (sk, ss) = client.server_write();
    let mut viewer_send = SrtpContext::new(profile, ck, cs, 4).unwrap();
    let mut viewer_recv = SrtpContext::new(profile, sk, ss, 4).unwrap();
    let mut server_send = server.outbound(4);
    let mut server_recv = server.inbound(4);
    let mut buf = [0u8; 1500];

    // Server → viewer, SRTP.
    let len = server_send
        .protect_rtp(&[&rtp_header(0xdead_beef, 7), b"video payload"], &mut buf)
        .unwrap();
    let plain = viewer_recv.unprotect_rtp(&mut buf[..len]).unwrap();
    assert_eq!(&buf[12..plain], b"video payload");
    // A viewer keyed the wrong way round would not read it.
    let len = server_send
        .protect_rtp(&[&rtp_header(0xdead_beef, 8), b"x"], &mut buf)
        .unwrap();
    let mut wrong = SrtpContext::new(profile, ck, cs, 4).unwrap();
    assert!(wrong.unprotect_rtp(&mut buf[..len]).is_err());

    // Viewer → server, SRTCP (a PLI) and SRTP.
    let pli = [0x81, 206, 0, 2, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef];
    let len = viewer_send.protect_rtcp(&[&pli], &mut buf).unwrap();
    let plain = server_recv.unprotect_rtcp(&mut buf[..len]).unwrap();
    assert_eq!(&buf[..plain], &pli);
    let len = viewer_send
        .protect_rtp(&[&rtp_header(1, 1), b"up"], &mut buf)
        .unwrap();
    let plain = server_recv.unprotect_rtp(&mut buf[..len]).unwrap();
    assert_eq!(&buf[12..plain], b"up");
}

fn completes_and_agrees(version: Version) {
    let mut pair = Pair::new(version);
    pair.run();
    let server_keys = pair.server_keys();
    assert!(pair.server.is_connected());
    let client_keys = pair.client.keys.clone().expect("client has keys");
    // dimpl's client offers all three profiles, as browsers do: the server's default
    // preference picks AES-128-GCM.
    assert_eq!(server_keys.profile(), Profile::AeadAes128Gcm);
    assert_srtp_agrees(&server_keys, &client_keys);
    assert_eq!(
        pair.client.server_fingerprint,
        Some(pair.server_cert.fingerprint())
    );
    assert!(pair.server_errors.is_empty(), "{:?}", pair.server_errors);
    assert!(
        pair.now < pair.start + Duration::from_secs(1),
        "no timer was needed"
    );
}

/// The server's configured order decides among the profiles the client offers (all three),
/// over DTLS 1.2 and 1.3, and both sides derive the same keys for it.
#[test]
fn the_server_picks_the_first_configured_profile_the_client_offers() {
    let orders: [&[Profile]; 4] = [
        &[Profile::AeadAes256Gcm, Profile::AeadAes128Gcm],
        &[Profile::AeadAes128Gcm],
        &[Profile::Aes128CmHmacSha1_80, Profile::AeadAes256Gcm],
        &[Profile::AeadAes256Gcm],
    ];
    for version in [Version::V12, Version::V13] {
        for order in orders {
            let config = ServerConfig::new(order).unwrap();
            let mut pair = Pair::with_config(version, None, &config);
            pair.run();
            let server_keys = pair.server_keys();
            assert_eq!(server_keys.profile(), order[0], "{version:?} {order:?}");
            assert_srtp_agrees(
                &server_keys,
                &pair.client.keys.clone().expect("client keys"),
            );
        }
    }
}

#[test]
fn a_server_preference_must_list_each_profile_once() {
    assert_eq!(ServerConfig::new(&[]).unwrap_err(), ProfilesError::Empty);
    let twice = [
        Profile::AeadAes128Gcm,
        Profile::AeadAes256Gcm,
        Profile::AeadAes128Gcm,
    ];
    assert_eq!(
        ServerConfig::new(&twice).unwrap_err(),
        ProfilesError::Repeated(Profile::AeadAes128Gcm)
    );
    assert_eq!(ServerConfig::default().profiles(), &Profile::ALL);
}

#[test]
fn dtls12_client_completes_and_keys_agree() {
    completes_and_agrees(Version::V12);
}

#[test]
fn dtls13_client_completes_and_keys_agree() {
    completes_and_agrees(Version::V13);
}

#[test]
fn auto_sensing_client_completes_and_keys_agree() {
    completes_and_agrees(Version::Auto);
}

#[test]
fn lost_first_server_flight_is_retransmitted_on_timeout() {
    let now = Instant::now();
    let mut client = Client::new(Version::V12, now);
    let server_cert = Certificate::generate().unwrap();
    let mut server = Handshake::new(&server_cert, client.cert.fingerprint(), now);
    // ClientHello → HelloVerifyRequest → ClientHello with cookie.
    for d in client.transmit() {
        server.handle_datagram(&d, now).unwrap();
    }
    while let Some(d) = server.poll_transmit() {
        client.dtls.handle_packet(&d).unwrap();
    }
    for d in client.transmit() {
        server.handle_datagram(&d, now).unwrap();
    }
    // The server's first real flight (ServerHello .. ServerHelloDone) is lost.
    let mut lost = 0;
    while server.poll_transmit().is_some() {
        lost += 1;
    }
    assert!(lost > 0);
    let due = server.poll_timeout().unwrap();
    assert!(
        due > now && due < now + HANDSHAKE_TIMEOUT,
        "{:?}",
        due - now
    );
    server.handle_timeout(due - Duration::from_millis(1));
    assert!(server.poll_transmit().is_none(), "nothing before it is due");
    server.handle_timeout(due);
    let mut resent = 0;
    while let Some(d) = server.poll_transmit() {
        resent += 1;
        client.dtls.handle_packet(&d).unwrap();
    }
    assert_eq!(resent, lost);
    // The rest goes through without loss.
    for _ in 0..4 {
        for d in client.transmit() {
            let _ = server.handle_datagram(&d, due);
        }
        while let Some(d) = server.poll_transmit() {
            client.dtls.handle_packet(&d).unwrap();
        }
    }
    match server.poll_event() {
        Some(HandshakeEvent::Connected(keys)) => {
            assert_srtp_agrees(&keys, client.keys.as_ref().unwrap())
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn lost_final_server_flight_is_answered_after_connected_dtls12() {
    let mut pair = Pair::new(Version::V12);
    pair.lose_final_server_flight = true;
    pair.run();
    assert!(
        pair.lost > 0,
        "the ChangeCipherSpec + Finished flight was dropped"
    );
    let server_keys = pair.server_keys();
    assert!(
        pair.client.connected,
        "client completed after its retransmission"
    );
    assert!(
        pair.now > pair.start,
        "it took the client's retransmission timer"
    );
    assert_srtp_agrees(&server_keys, pair.client.keys.as_ref().unwrap());
}

#[test]
fn lost_ack_is_answered_after_connected_dtls13() {
    // In DTLS 1.3 the client finishes first; the server's last word is an ACK (RFC 9147 §7).
    let mut pair = Pair::new(Version::V13);
    pair.lose_final_server_flight = true;
    pair.run();
    assert!(pair.lost > 0, "the ACK was dropped");
    let server_keys = pair.server_keys();
    assert!(pair.client.connected);
    // Unacknowledged, the client resends its Finished; the connected server answers again.
    let due = pair.client.timeout.unwrap();
    pair.client.dtls.handle_timeout(due).unwrap();
    let resent = pair.client.transmit();
    assert!(!resent.is_empty(), "client retransmits its final flight");
    for d in &resent {
        pair.server.handle_datagram(d, due).unwrap();
    }
    let mut answers = 0;
    while let Some(d) = pair.server.poll_transmit() {
        answers += 1;
        pair.client.dtls.handle_packet(&d).unwrap();
    }
    assert!(answers > 0, "server answers the retransmission");
    assert!(pair.server.is_connected());
    assert_eq!(pair.server.poll_event(), None, "no second outcome");
    assert_srtp_agrees(&server_keys, pair.client.keys.as_ref().unwrap());
}

#[test]
fn wrong_fingerprint_fails_without_keys() {
    for version in [Version::V12, Version::V13] {
        let stranger = Certificate::generate().unwrap().fingerprint();
        let mut pair = Pair::with_expected(version, Some(stranger));
        pair.run();
        assert_eq!(
            pair.server_events,
            vec![HandshakeEvent::Failed(DtlsError::FingerprintMismatch)]
        );
        assert_eq!(pair.server_errors, vec![DtlsError::FingerprintMismatch]);
        assert!(!pair.server.is_connected());
        assert!(pair.server.poll_timeout().is_none());
        // Anything after is refused without processing.
        let err = pair.server.handle_datagram(&[22, 0xfe, 0xfd], pair.now);
        assert_eq!(err, Err(DtlsError::HandshakeFailed));
        assert!(pair.server.poll_transmit().is_none());
    }
}

#[test]
fn silent_peer_times_out_at_the_deadline() {
    let now = Instant::now();
    let cert = Certificate::generate().unwrap();
    let mut hs = Handshake::new(&cert, Fingerprint::from([0; 32]), now);
    assert_eq!(hs.poll_timeout(), Some(now + HANDSHAKE_TIMEOUT));
    hs.handle_timeout(now + HANDSHAKE_TIMEOUT - Duration::from_millis(1));
    assert_eq!(hs.poll_event(), None);
    hs.handle_timeout(now + HANDSHAKE_TIMEOUT);
    assert_eq!(
        hs.poll_event(),
        Some(HandshakeEvent::Failed(DtlsError::Timeout))
    );
    assert_eq!(hs.poll_event(), None);
    assert_eq!(hs.poll_timeout(), None);
}

/// The first datagram a DTLS 1.2 client sends: one record holding a whole ClientHello.
fn client_hello() -> Vec<u8> {
    let mut client = Client::new(Version::V12, Instant::now());
    let mut out = client.transmit();
    assert_eq!(out.len(), 1);
    let ch = out.remove(0);
    assert_eq!(ch[0], 22);
    assert_eq!(ch[13], 1, "handshake type client_hello");
    ch
}

#[test]
fn garbage_and_truncated_records_are_dropped_with_reasons() {
    let ch = client_hello();
    let now = Instant::now();
    let cert = Certificate::generate().unwrap();
    let mut hs = Handshake::new(&cert, Fingerprint::from([0; 32]), now);
    let half = &ch[..ch.len() / 2];
    let mut not_dtls = ch.clone();
    not_dtls[0] = 0x80;
    for (bytes, reason) in [
        (&[][..], "empty_datagram"),
        (&not_dtls[..], "not_dtls"),
        (half, "truncated_record"),
        (&ch[..5], "truncated_record"),
        (&[21u8; 40][..], "bad_record_version"),
    ] {
        let err = hs.handle_datagram(bytes, now).unwrap_err();
        assert_eq!(err.reason(), reason);
    }
    // None of it ended the handshake or drew a reply.
    assert_eq!(hs.poll_event(), None);
    assert!(hs.poll_transmit().is_none());
    // Well-framed records of nonsense are dimpl's to discard, quietly.
    let mut nonsense = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 40];
    nonsense.extend([0xff; 40]);
    assert_eq!(hs.handle_datagram(&nonsense, now), Ok(()));
    assert_eq!(hs.poll_event(), None);
    // And the real ClientHello still gets its HelloVerifyRequest.
    hs.handle_datagram(&ch, now).unwrap();
    let hvr = hs.poll_transmit().expect("hello verify request");
    assert_eq!((hvr[0], hvr[13]), (22, 3));
}

#[test]
fn client_hello_fragment_waits_for_the_rest_then_times_out() {
    let ch = client_hello();
    // Re-frame the first half of the ClientHello body as a valid DTLS fragment (RFC 6347
    // §4.2.3): same message, fragment_offset 0, fragment_length half.
    let body = &ch[13 + 12..];
    let half = body.len() / 2;
    let mut fragment = ch[..13].to_vec();
    fragment[11..13].copy_from_slice(&((12 + half) as u16).to_be_bytes());
    fragment.extend_from_slice(&ch[13..13 + 9]);
    fragment.extend_from_slice(&(half as u32).to_be_bytes()[1..]);
    fragment.extend_from_slice(&body[..half]);

    let now = Instant::now();
    let cert = Certificate::generate().unwrap();
    let mut hs = Handshake::new(&cert, Fingerprint::from([0; 32]), now);
    assert_eq!(hs.handle_datagram(&fragment, now), Ok(()));
    assert!(
        hs.poll_transmit().is_none(),
        "no reply to half a ClientHello"
    );
    assert_eq!(hs.poll_event(), None);
    while let Some(due) = hs.poll_timeout() {
        hs.handle_timeout(due);
        assert!(hs.poll_transmit().is_none());
    }
    assert_eq!(
        hs.poll_event(),
        Some(HandshakeEvent::Failed(DtlsError::Timeout))
    );
}

/// A small deterministic generator, so a failure reproduces.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_and_mutated_datagrams_never_panic() {
    let ch = client_hello();
    let now = Instant::now();
    let cert = Certificate::generate().unwrap();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut reasons = std::collections::BTreeSet::new();
    for round in 0..300 {
        let mut hs = Handshake::new(&cert, Fingerprint::from([0; 32]), now);
        for _ in 0..8 {
            let datagram = if round % 2 == 0 {
                let len = (rng.next() % 200) as usize;
                let mut d: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                if let Some(first) = d.first_mut() {
                    *first = 20 + *first % 44;
                }
                d
            } else {
                let mut d = ch.clone();
                for _ in 0..1 + rng.next() % 4 {
                    let at = (rng.next() as usize) % d.len();
                    d[at] ^= 1 << (rng.next() % 8);
                }
                d.truncate(1 + (rng.next() as usize) % d.len());
                d
            };
            if let Err(e) = hs.handle_datagram(&datagram, now) {
                reasons.insert(e.reason());
            }
            while hs.poll_transmit().is_some() {}
        }
        hs.handle_timeout(now + HANDSHAKE_TIMEOUT);
        assert!(matches!(
            hs.poll_event(),
            Some(HandshakeEvent::Failed(_)) | None
        ));
    }
    assert!(reasons.contains("truncated_record"), "{reasons:?}");
    assert!(reasons
        .iter()
        .all(|r| r.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
}

#[test]
fn close_notify_after_connected_is_reported() {
    for version in [Version::V12, Version::V13] {
        let mut pair = Pair::new(version);
        pair.run();
        pair.server_keys();
        pair.client.dtls.close().unwrap();
        let close = pair.client.transmit();
        assert!(!close.is_empty(), "client sends close_notify");
        for d in &close {
            pair.server.handle_datagram(d, pair.now).unwrap();
        }
        assert_eq!(pair.server.poll_event(), Some(HandshakeEvent::Closed));
        assert_eq!(pair.server.poll_event(), None);
    }
}

/// A handshake run until the server connects, with the flight the server sends in that call
/// lost; the server then traded for its [`FinalFlight`]. Returns the client (waiting on its
/// retransmission timer), the final flight, the server's keys, the time, and how many
/// datagrams were lost.
fn connect_losing_final_flight(
    version: Version,
) -> (Client, FinalFlight, SrtpKeys, Instant, usize) {
    let now = Instant::now();
    let mut client = Client::new(version, now);
    let cert = Certificate::generate().unwrap();
    let mut server = Handshake::new(&cert, client.cert.fingerprint(), now);
    for _ in 0..16 {
        for d in client.transmit() {
            server.handle_datagram(&d, now).unwrap();
            if let Some(event) = server.poll_event() {
                let HandshakeEvent::Connected(keys) = event else {
                    panic!("{event:?}");
                };
                let mut lost = 0;
                while server.poll_transmit().is_some() {
                    lost += 1;
                }
                let flight = server.into_final_flight().expect("connected");
                return (client, flight, keys, now, lost);
            }
        }
        while let Some(d) = server.poll_transmit() {
            let _ = client.dtls.handle_packet(&d);
        }
    }
    panic!("the server never connected");
}

/// Let the client's retransmission timer fire and hand what it resends to `flight`; the
/// datagrams the flight answered with go to the client. Returns (resent, answered).
fn retransmit_into(client: &mut Client, flight: &mut FinalFlight) -> (usize, usize) {
    let due = client.timeout.expect("client has a timer");
    client.dtls.handle_timeout(due).unwrap();
    let resent = client.transmit();
    let mut answered = 0;
    for d in &resent {
        if flight.handle_datagram(d, due).unwrap() {
            for answer in flight.datagrams() {
                answered += 1;
                client.dtls.handle_packet(answer).unwrap();
            }
        }
    }
    client.transmit();
    (resent.len(), answered)
}

#[test]
fn final_flight_alone_completes_a_dtls12_client_whose_copy_was_lost() {
    let (mut client, mut flight, keys, _, lost) = connect_losing_final_flight(Version::V12);
    assert!(lost > 0, "ChangeCipherSpec + Finished were dropped");
    assert!(!client.connected, "the client waits for them");
    assert_eq!(
        flight.datagrams().count(),
        lost,
        "the flight kept is the one lost"
    );
    let (resent, answered) = retransmit_into(&mut client, &mut flight);
    assert!(resent > 0, "client retransmits its final flight");
    assert_eq!(answered, lost, "one copy of our flight per retransmission");
    assert!(client.connected, "the replayed flight completes the client");
    assert_srtp_agrees(&keys, client.keys.as_ref().unwrap());
}

#[test]
fn final_flight_acknowledges_a_dtls13_clients_retransmitted_finished() {
    let (mut client, mut flight, keys, _, lost) = connect_losing_final_flight(Version::V13);
    assert!(lost > 0, "the ACK was dropped");
    assert!(client.connected, "in DTLS 1.3 the client finishes first");
    let (resent, answered) = retransmit_into(&mut client, &mut flight);
    assert!(
        resent > 0,
        "unacknowledged, the client resends its Finished"
    );
    assert_eq!(answered, lost, "the ACK is sent again");
    // Acknowledged now (dimpl matches the ACK to the Finished message), the client stops;
    // unanswered, it would resend again at its next timer.
    let due = client.timeout.expect("client has a timer");
    client.dtls.handle_timeout(due).unwrap();
    assert!(
        client.transmit().is_empty(),
        "the client retransmits no more"
    );
    assert_srtp_agrees(&keys, client.keys.as_ref().unwrap());
}

#[test]
fn final_flight_answers_handshake_records_only_and_not_too_often() {
    let (mut client, mut flight, _, now, _) = connect_losing_final_flight(Version::V12);
    let due = client.timeout.unwrap();
    client.dtls.handle_timeout(due).unwrap();
    let resent = client.transmit();
    assert!(flight.handle_datagram(&resent[0], due).unwrap());
    // The rest of the same retransmission, or a copy right after, gets no second answer.
    assert!(!flight
        .handle_datagram(&resent[0], due + MIN_RESEND_GAP / 2)
        .unwrap());
    assert!(flight
        .handle_datagram(&resent[0], due + MIN_RESEND_GAP)
        .unwrap());
    // An alert or application data is no retransmission.
    let alert = [21, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 2, 1, 0];
    assert!(!flight
        .handle_datagram(&alert, due + MIN_RESEND_GAP * 4)
        .unwrap());
    let data = [23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 1, 7];
    assert!(!flight
        .handle_datagram(&data, due + MIN_RESEND_GAP * 4)
        .unwrap());
    // Not DTLS: dropped with its reason, as by the handshake.
    assert_eq!(
        flight.handle_datagram(&[0x80, 1, 2], now),
        Err(DtlsError::NotDtls)
    );
    assert_eq!(
        flight.handle_datagram(&[22, 0xfe], now),
        Err(DtlsError::TruncatedRecord)
    );
}

#[test]
fn final_flight_is_a_small_fraction_of_the_handshake() {
    for version in [Version::V12, Version::V13] {
        let (_, flight, _, _, _) = connect_losing_final_flight(version);
        let kept = std::mem::size_of::<FinalFlight>() + flight.heap_bytes();
        // dimpl's state is 3.5 KiB inline before any of its heap: the point of trading it.
        assert!(kept <= 256, "{kept} octets kept");
        assert!(std::mem::size_of::<Handshake>() > 3000);
    }
}

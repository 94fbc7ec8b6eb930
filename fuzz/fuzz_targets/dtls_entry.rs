//! Arbitrary datagrams into a fresh server `Handshake`, the DTLS entry path of a viewer's
//! address: nothing panics, every drop has a snake_case reason, and whatever the input, the
//! handshake ends in at most one outcome by its deadline.
#![no_main]

use std::sync::OnceLock;
use std::time::Instant;

use corecast_webrtc::dtls::{
    Certificate, Fingerprint, Handshake, HandshakeEvent, HANDSHAKE_TIMEOUT,
};
use libfuzzer_sys::fuzz_target;

fn certificate() -> &'static Certificate {
    static CERT: OnceLock<Certificate> = OnceLock::new();
    CERT.get_or_init(|| Certificate::generate().expect("certificate"))
}

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let mut hs = Handshake::new(certificate(), Fingerprint::from([0x5a; 32]), now);
    // The input is datagrams, each prefixed by a two-octet big-endian length (a DTLS 1.3
    // ClientHello with its key share is over 255 octets; the seeds are dimpl's, from
    // fuzz/seeds).
    let mut rest = data;
    while let [hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (datagram, next) = tail.split_at(len);
        rest = next;
        if let Err(e) = hs.handle_datagram(datagram, now) {
            assert!(e
                .reason()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
        while let Some(out) = hs.poll_transmit() {
            assert!(!out.is_empty());
        }
    }
    hs.handle_timeout(now + HANDSHAKE_TIMEOUT);
    let mut outcomes = 0;
    while let Some(ev) = hs.poll_event() {
        // No input can prove the fingerprint of a certificate nobody holds.
        assert!(!matches!(ev, HandshakeEvent::Connected(_)));
        outcomes += 1;
    }
    assert!(outcomes <= 1);
    assert!(hs.poll_timeout().is_none());
});

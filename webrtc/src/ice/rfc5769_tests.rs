//! RFC 5769 test vectors through the verification the agent runs, and every single-byte
//! corruption of them refused with the reason that corruption deserves.

use std::net::SocketAddr;

use stun::fingerprint::fingerprint_value;
use stun::integrity::MessageIntegrity;
use stun::message::{Getter, Message, BINDING_REQUEST, BINDING_SUCCESS};
use stun::xoraddr::XorMappedAddress;

use super::binding::{decode, verify_fingerprint, verify_integrity};
use super::{Credentials, IceConfig, IceLite, StunDrop, ViewerKey};
use corecast_engine::Nanos;

const PASSWORD: &str = "VOkJxbRl1RmTxUk/WvJxBt";

/// §2.1 Sample Request: SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME "evtj:h6vY",
/// MESSAGE-INTEGRITY, FINGERPRINT.
#[rustfmt::skip]
const REQUEST: [u8; 108] = [
    0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73,
    0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
    0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09,
    0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14,
    0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49,
    0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
];

/// §2.2 Sample IPv4 Response: SOFTWARE, XOR-MAPPED-ADDRESS 192.0.2.1:32853, MESSAGE-INTEGRITY,
/// FINGERPRINT.
#[rustfmt::skip]
const RESPONSE_V4: [u8; 80] = [
    0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
    0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9,
    0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
];

/// §2.3 Sample IPv6 Response: XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853.
#[rustfmt::skip]
const RESPONSE_V6: [u8; 92] = [
    0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa,
    0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9, 0x00, 0x08, 0x00, 0x14,
    0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9, 0x7c, 0x82, 0x92, 0xc2, 0x75,
    0xbf, 0xe3, 0xed, 0x41, 0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c,
];

const VECTORS: [&[u8]; 3] = [&REQUEST, &RESPONSE_V4, &RESPONSE_V6];

/// The agent's message-level checks, in its order, without the credential look-up.
fn verify(bytes: &[u8], pwd: &str) -> Result<Message, StunDrop> {
    let mut message = Message::new();
    decode(bytes, &mut message)?;
    verify_fingerprint(&message)?;
    verify_integrity(
        &mut message,
        &MessageIntegrity::new_short_term_integrity(pwd.to_owned()),
    )?;
    Ok(message)
}

/// Rewrites the trailing FINGERPRINT so that it matches the (altered) bytes before it.
fn reseal_fingerprint(bytes: &mut [u8]) {
    let at = bytes.len() - 4;
    let value = fingerprint_value(&bytes[..at - 4]);
    bytes[at..].copy_from_slice(&value.to_be_bytes());
}

/// `(offset, type, value length)` of each attribute of a well-formed vector.
fn attributes(bytes: &[u8]) -> Vec<(usize, u16, usize)> {
    let mut out = Vec::new();
    let mut at = 20;
    while at < bytes.len() {
        let typ = u16::from_be_bytes([bytes[at], bytes[at + 1]]);
        let len = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        out.push((at, typ, len));
        at += 4 + len.div_ceil(4) * 4;
    }
    assert_eq!(at, bytes.len(), "the vector frames exactly");
    out
}

#[test]
fn rfc5769_vectors_verify() {
    let request = verify(&REQUEST, PASSWORD).expect("§2.1 request verifies");
    assert_eq!(request.typ, BINDING_REQUEST);
    for (vector, addr) in [
        (&RESPONSE_V4[..], "192.0.2.1:32853"),
        (
            &RESPONSE_V6[..],
            "[2001:db8:1234:5678:11:2233:4455:6677]:32853",
        ),
    ] {
        let response = verify(vector, PASSWORD).expect("response verifies");
        assert_eq!(response.typ, BINDING_SUCCESS);
        let mut mapped = XorMappedAddress::default();
        mapped.get_from(&response).expect("XOR-MAPPED-ADDRESS");
        let expected: SocketAddr = addr.parse().unwrap();
        assert_eq!(SocketAddr::new(mapped.ip, mapped.port), expected);
    }
}

#[test]
fn rfc5769_vectors_refuse_a_wrong_password() {
    for vector in VECTORS {
        assert_eq!(
            verify(vector, "VOkJxbRl1RmTxUk/WvJxBT").err(),
            Some(StunDrop::BadIntegrity)
        );
    }
}

/// Every byte of every vector, inverted, is refused; the reason follows from what the byte is.
#[test]
fn rfc5769_every_flipped_byte_is_refused_with_its_reason() {
    for vector in VECTORS {
        let attrs = attributes(vector);
        for i in 0..vector.len() {
            let mut bytes = vector.to_vec();
            bytes[i] ^= 0xff;
            let expected = match i {
                // The two top bits of the type must be zero.
                0 => StunDrop::Malformed,
                // Length, magic cookie.
                2..=7 => StunDrop::Malformed,
                1 | 8..=19 => StunDrop::BadFingerprint,
                _ => {
                    let &(at, typ, _) = attrs.iter().rev().find(|(at, _, _)| *at <= i).unwrap();
                    let fingerprint = typ == 0x8028;
                    match i - at {
                        0 | 1 if fingerprint => StunDrop::MissingFingerprint,
                        0 | 1 => StunDrop::BadFingerprint,
                        // An inverted length no longer frames within these short messages.
                        2 | 3 => StunDrop::Malformed,
                        _ => StunDrop::BadFingerprint,
                    }
                }
            };
            assert_eq!(
                verify(&bytes, PASSWORD).err(),
                Some(expected),
                "byte {i} of a {}-byte vector",
                vector.len()
            );
        }
    }
}

/// With the FINGERPRINT recomputed, a change anywhere MESSAGE-INTEGRITY covers is caught by it.
#[test]
fn rfc5769_flips_under_a_resealed_fingerprint_fail_integrity() {
    for vector in VECTORS {
        let attrs = attributes(vector);
        let &(integrity_at, _, _) = attrs.iter().find(|a| a.1 == 0x0008).unwrap();
        // The transaction id and every attribute value byte before MESSAGE-INTEGRITY (its own
        // value is the HMAC, equally covered).
        let covered = (8..20).chain(
            attrs
                .iter()
                .filter(|a| a.0 <= integrity_at)
                .flat_map(|&(at, _, len)| (at + 4)..(at + 4 + len)),
        );
        for i in covered {
            let mut bytes = vector.to_vec();
            bytes[i] ^= 0x01;
            reseal_fingerprint(&mut bytes);
            assert_eq!(
                verify(&bytes, PASSWORD).err(),
                Some(StunDrop::BadIntegrity),
                "byte {i}"
            );
        }
    }
}

#[test]
fn rfc5769_vectors_refuse_trailing_bytes_and_truncation() {
    for vector in VECTORS {
        let mut longer = vector.to_vec();
        longer.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(verify(&longer, PASSWORD).err(), Some(StunDrop::Malformed));
        for len in 0..vector.len() {
            assert_eq!(
                verify(&vector[..len], PASSWORD).err(),
                Some(StunDrop::Malformed),
                "prefix of {len}"
            );
        }
    }
}

/// The §2.1 request through the agent: its credentials and checksums pass, and its
/// ICE-CONTROLLED (the sender claims the controlled role, as corecast does) is a role conflict.
#[test]
fn rfc5769_request_through_the_agent_is_a_role_conflict() {
    let mut agent = IceLite::new(IceConfig::default());
    agent
        .add(
            ViewerKey(1),
            Credentials {
                ufrag: "evtj".into(),
                pwd: PASSWORD.into(),
            },
            "h6vY",
            Nanos::ZERO,
        )
        .unwrap();
    let mut response = vec![1, 2, 3];
    let from: SocketAddr = "192.0.2.1:32853".parse().unwrap();
    assert_eq!(
        agent.handle_stun(&REQUEST, from, Nanos::ZERO, &mut response),
        Err(StunDrop::RoleConflict)
    );
    assert!(response.is_empty());
    assert_eq!(agent.viewer_at(from), None);
    assert_eq!(agent.counters().drops(StunDrop::RoleConflict), 1);
}

/// FINGERPRINT must be last and 4 bytes, even when the CRC would otherwise match.
#[test]
fn fingerprint_not_last_or_of_the_wrong_size_is_bad() {
    let with_length = |mut bytes: Vec<u8>| {
        let body = (bytes.len() - 20) as u16;
        bytes[2..4].copy_from_slice(&body.to_be_bytes());
        bytes
    };
    // An attribute after FINGERPRINT.
    let mut after = REQUEST.to_vec();
    after.extend_from_slice(&[0x80, 0x22, 0x00, 0x04, b't', b'e', b's', b't']);
    assert_eq!(
        verify(&with_length(after), PASSWORD).err(),
        Some(StunDrop::BadFingerprint)
    );
    // An 8-byte FINGERPRINT whose last 4 bytes are the right CRC of what precedes the attribute.
    let mut long = REQUEST[..REQUEST.len() - 8].to_vec();
    long.extend_from_slice(&[0x80, 0x28, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0, 0]);
    let mut long = with_length(long);
    let crc = fingerprint_value(&long[..long.len() - 8]).to_be_bytes();
    let end = long.len();
    long[end - 4..].copy_from_slice(&crc);
    assert_eq!(
        verify(&long, PASSWORD).err(),
        Some(StunDrop::BadFingerprint)
    );
}

//! One STUN Binding request checked and answered: the message-level rules (RFC 8489 §5, §14.5,
//! §14.7) on top of the webrtc-rs `stun` crate's decoder, HMAC-SHA1 and CRC-32.
//!
//! The crate's decoder accepts more than a connectivity check may be: trailing bytes after the
//! message, a FINGERPRINT that is not last, a MESSAGE-INTEGRITY of the wrong size. Those are
//! refused here before the crate's checks run, so its checks always see a message they are
//! written for.

use std::net::SocketAddr;

use stun::agent::TransactionId;
use stun::attributes::{AttrType, ATTR_FINGERPRINT, ATTR_MESSAGE_INTEGRITY};
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::{Message, Setter, BINDING_SUCCESS, MAGIC_COOKIE, MESSAGE_HEADER_SIZE};
use stun::xoraddr::XorMappedAddress;

use super::StunDrop;

/// HMAC-SHA1 output, the only MESSAGE-INTEGRITY size RFC 8489 §14.5 allows.
const INTEGRITY_SIZE: usize = 20;

/// Decodes `bytes` into `message` (reusing its buffers), refusing anything that is not exactly
/// one well-formed STUN message.
pub(crate) fn decode(bytes: &[u8], message: &mut Message) -> Result<(), StunDrop> {
    if bytes.len() < MESSAGE_HEADER_SIZE
        || bytes[0] & 0xc0 != 0
        || bytes[4..8] != MAGIC_COOKIE.to_be_bytes()
    {
        return Err(StunDrop::Malformed);
    }
    let length = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
    // The length counts whole 32-bit words and the datagram holds the message and nothing more
    // (RFC 8489 §5, §6.3): the FINGERPRINT check below relies on the message ending the buffer.
    if length % 4 != 0 || MESSAGE_HEADER_SIZE + length != bytes.len() {
        return Err(StunDrop::Malformed);
    }
    message
        .unmarshal_binary(bytes)
        .map_err(|_| StunDrop::Malformed)
}

/// The value of the first attribute of type `typ`, borrowed (the crate's `get` copies it).
pub(crate) fn attribute(message: &Message, typ: AttrType) -> Option<&[u8]> {
    message
        .attributes
        .0
        .iter()
        .find(|a| a.typ == typ)
        .map(|a| a.value.as_slice())
}

/// FINGERPRINT present, last, and the CRC-32 of everything before it (RFC 8489 §14.7).
pub(crate) fn verify_fingerprint(message: &Message) -> Result<(), StunDrop> {
    let last = message.attributes.0.last().map(|a| a.typ);
    if last != Some(ATTR_FINGERPRINT) {
        return Err(if attribute(message, ATTR_FINGERPRINT).is_some() {
            StunDrop::BadFingerprint
        } else {
            StunDrop::MissingFingerprint
        });
    }
    FINGERPRINT
        .check(message)
        .map_err(|_| StunDrop::BadFingerprint)
}

/// MESSAGE-INTEGRITY present, 20 bytes, and the HMAC-SHA1 under `key` of the message up to it
/// with the length field as RFC 8489 §14.5 says (attributes after it other than FINGERPRINT are
/// excluded by the crate's check, as the RFC requires them to be ignored).
pub(crate) fn verify_integrity(
    message: &mut Message,
    key: &MessageIntegrity,
) -> Result<(), StunDrop> {
    match attribute(message, ATTR_MESSAGE_INTEGRITY) {
        None => return Err(StunDrop::MissingIntegrity),
        Some(value) if value.len() != INTEGRITY_SIZE => return Err(StunDrop::BadIntegrity),
        Some(_) => {}
    }
    key.check(message).map_err(|_| StunDrop::BadIntegrity)
}

/// Writes a Binding success response to the request with `transaction_id` into `out` (cleared
/// first, its capacity reused): XOR-MAPPED-ADDRESS = `from`, MESSAGE-INTEGRITY under `key`,
/// FINGERPRINT. `scratch` is a reusable message whose buffers absorb the crate's allocations.
pub(crate) fn write_success(
    scratch: &mut Message,
    transaction_id: TransactionId,
    from: SocketAddr,
    key: &MessageIntegrity,
    out: &mut Vec<u8>,
) {
    scratch.reset();
    scratch.typ = BINDING_SUCCESS;
    scratch.transaction_id = transaction_id;
    scratch.write_header();
    let mapped = XorMappedAddress {
        ip: from.ip(),
        port: from.port(),
    };
    // These setters fail only when FINGERPRINT precedes MESSAGE-INTEGRITY, which the order here
    // and the reset above rule out; no input reaches them.
    mapped
        .add_to(scratch)
        .expect("XOR-MAPPED-ADDRESS on a fresh message");
    key.add_to(scratch)
        .expect("MESSAGE-INTEGRITY before FINGERPRINT");
    FINGERPRINT
        .add_to(scratch)
        .expect("FINGERPRINT is added once, last");
    out.clear();
    out.extend_from_slice(&scratch.raw);
}

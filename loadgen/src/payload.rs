//! The synthetic payload every load-generator packet carries, so a receiver can check the bytes
//! it got are exactly the bytes that were sent.
//!
//! The codec's own bytes come first (VP8 payload descriptor and, on a frame's first packet, the
//! VP8 payload header; or an Opus TOC byte), then deterministic filler, then a 32-byte trailer at
//! the very end of the RTP payload:
//!
//! | bytes | field |
//! |---|---|
//! | 4 | magic `CCLG` |
//! | 4 | source index (0-based, in the load generator) |
//! | 8 | tag: the packet's index in its source's stream, from 0 |
//! | 8 | send time: monotonic ns since the load generator started |
//! | 8 | checksum: [`fnv1a`] over every covered byte before it |
//!
//! All big-endian. The checksum covers the whole RTP payload except the checksum itself and the
//! bytes a forwarder legitimately rewrites (the VP8 picture ID and TL0PICIDX; the RTP header is
//! not part of the payload).

use std::ops::Range;

/// `CCLG`.
pub const MAGIC: u32 = 0x4343_4c47;
/// Bytes of the trailer at the end of every payload.
pub const TRAILER_LEN: usize = 32;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// What the trailer says about a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trailer {
    pub source: u32,
    pub tag: u64,
    pub send_ns: u64,
}

/// Why a payload did not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadFault {
    /// Shorter than the trailer, or the skipped range does not fit.
    TooShort,
    /// The trailer's magic is wrong: not a load-generator packet, or its end was damaged.
    BadMagic,
    /// The checksum does not match the covered bytes.
    Checksum,
}

/// FNV-1a 64 taken a 64-bit little-endian word at a time (then byte by byte for the last
/// `len % 8` bytes of each part): eight times fewer multiplications than byte-wise FNV-1a, and
/// still every step is a bijection of the state, so any change confined to one word or byte is
/// always detected.
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h = FNV_OFFSET;
    for part in parts {
        let words = part.chunks_exact(8);
        let rest = words.remainder();
        for w in words {
            h ^= u64::from_le_bytes(w.try_into().expect("8 bytes"));
            h = h.wrapping_mul(FNV_PRIME);
        }
        for &b in rest {
            h ^= u64::from(b);
            h = h.wrapping_mul(FNV_PRIME);
        }
    }
    h
}

/// The checksum of `payload` (trailer included, its checksum field excluded), skipping `skip`.
fn checksum(payload: &[u8], skip: Range<usize>) -> Option<u64> {
    let end = payload.len().checked_sub(8)?;
    if skip.start > skip.end || skip.end > end {
        return None;
    }
    Some(fnv1a(&[&payload[..skip.start], &payload[skip.end..end]]))
}

/// Fill `payload[fill]` with bytes derived from the source and tag, then write the trailer into
/// the last [`TRAILER_LEN`] bytes, checksumming everything outside `skip`. `payload` must be at
/// least `TRAILER_LEN` long and `fill` and `skip` must lie before the trailer.
pub fn seal(payload: &mut [u8], fill: Range<usize>, skip: Range<usize>, t: Trailer) {
    let at = payload.len() - TRAILER_LEN;
    let mut x = (u64::from(t.source) << 40) ^ t.tag ^ 0x9e37_79b9_7f4a_7c15;
    for b in &mut payload[fill] {
        // xorshift64: cheap, and every byte depends on source and tag.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    payload[at..at + 4].copy_from_slice(&MAGIC.to_be_bytes());
    payload[at + 4..at + 8].copy_from_slice(&t.source.to_be_bytes());
    payload[at + 8..at + 16].copy_from_slice(&t.tag.to_be_bytes());
    payload[at + 16..at + 24].copy_from_slice(&t.send_ns.to_be_bytes());
    let sum = checksum(payload, skip).expect("the skipped range lies before the trailer");
    payload[at + 24..].copy_from_slice(&sum.to_be_bytes());
}

/// Whether `payload` ends in a load-generator trailer (its magic), before any checksum.
pub fn has_magic(payload: &[u8]) -> bool {
    payload
        .len()
        .checked_sub(TRAILER_LEN)
        .is_some_and(|at| payload[at..at + 4] == MAGIC.to_be_bytes())
}

/// Check `payload`'s trailer and checksum (ignoring the bytes in `skip`) and read the trailer.
pub fn open(payload: &[u8], skip: Range<usize>) -> Result<Trailer, PayloadFault> {
    let at = payload
        .len()
        .checked_sub(TRAILER_LEN)
        .ok_or(PayloadFault::TooShort)?;
    let word = |r: Range<usize>| -> u64 {
        payload[r]
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
    };
    if word(at..at + 4) as u32 != MAGIC {
        return Err(PayloadFault::BadMagic);
    }
    let sum = checksum(payload, skip).ok_or(PayloadFault::TooShort)?;
    if sum != word(at + 24..at + 32) {
        return Err(PayloadFault::Checksum);
    }
    Ok(Trailer {
        source: word(at + 4..at + 8) as u32,
        tag: word(at + 8..at + 16),
        send_ns: word(at + 16..at + 24),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_is_byte_wise_fnv_on_short_parts_and_sees_every_single_change() {
        // Under eight bytes it is the reference FNV-1a 64.
        assert_eq!(fnv1a(&[b""]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
        let base: Vec<u8> = (0..37u8).collect();
        let h = fnv1a(&[&base[..20], &base[20..]]);
        for i in 0..base.len() {
            for bit in 0..8 {
                let mut b = base.clone();
                b[i] ^= 1 << bit;
                assert_ne!(fnv1a(&[&b[..20], &b[20..]]), h, "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn sealed_payloads_open_and_any_covered_change_is_caught() {
        let mut p = vec![0u8; 100];
        let t = Trailer {
            source: 3,
            tag: 1 << 40,
            send_ns: 123_456_789,
        };
        seal(&mut p, 5..68, 2..5, t);
        assert_eq!(open(&p, 2..5), Ok(t));
        // The skipped bytes may change (a forwarder rewrites them) ...
        p[3] ^= 0xff;
        assert_eq!(open(&p, 2..5), Ok(t));
        // ... no other byte may.
        for i in (0..2).chain(5..100) {
            let mut q = p.clone();
            q[i] ^= 0x01;
            assert!(open(&q, 2..5).is_err(), "byte {i}");
        }
        assert_eq!(open(&p[..20], 2..5), Err(PayloadFault::TooShort));
    }
}

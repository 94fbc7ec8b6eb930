//! SRTCP and SRTP unprotect, the path every datagram a viewer sends after DTLS takes, for each
//! profile with fixed keys (`corecast_fuzz::srtp_keys`). Byte 0 picks the part:
//! - even: raw datagrams (each after a two-octet big-endian length) into `unprotect_rtcp` and
//!   `unprotect_rtp` of one context per profile. Nothing panics; a refusal is never a key or
//!   buffer error and moves no state (the SSRC's rollover counter stays); what authenticates
//!   (the seeds are real SRTCP and SRTP from corecast-srtp) is a version-2 packet at least a
//!   header long, shorter than what came in by the profile's overhead, and the same datagram
//!   again is a replay;
//! - odd: fuzz-chosen RTCP packets, protected by a sender context, each delivered with
//!   fuzz-chosen bit flips and/or intact, and maybe an earlier one again. A flipped packet is
//!   always refused, and refusing it leaves the receiver as it was: the intact packet after it
//!   opens to exactly the plaintext that was protected; an earlier packet again is a replay.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use corecast_fuzz::srtp_keys;
use corecast_srtp::{Error, Profile};
use libfuzzer_sys::fuzz_target;

/// The SSRCs the structured part sends from (fewer than `srtp_keys::MAX_SSRCS`).
const SSRCS: [u32; 3] = [0x1234_5678, 0xcafe_babe, 0];
/// RTCP packet types a browser sends, and one no one does.
const PACKET_TYPES: [u8; 6] = [200, 201, 202, 205, 206, 192];
/// Bounds the work per input.
const MAX_PACKETS: usize = 64;

#[derive(Arbitrary, Debug)]
struct Plan {
    profile: u8,
    packets: Vec<Packet>,
}

#[derive(Arbitrary, Debug)]
struct Packet {
    ssrc: u8,
    packet_type: u8,
    count: u8,
    /// Words after the SSRC.
    body: Vec<u32>,
    /// Octet positions (modulo the protected length) and masks XORed there.
    flips: Vec<(u16, u8)>,
    /// Also delivered intact (after the flipped copy, if any).
    intact: bool,
    /// Then deliver this earlier accepted packet (modulo their number) again.
    replay: Option<u8>,
}

fn check_refusal(e: Error) {
    assert!(
        !matches!(e, Error::KeyLength { .. } | Error::BufferTooSmall { .. }),
        "{e:?}"
    );
    let reason = e.reason();
    assert!(!reason.is_empty() && reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
}

fn ssrc_of(buf: &[u8]) -> Option<u32> {
    buf.get(8..12)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn raw(mut data: &[u8]) {
    let mut contexts = Profile::ALL.map(srtp_keys::context);
    let mut n = 0;
    while let [hi, lo, rest @ ..] = data {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len());
        let (datagram, next) = rest.split_at(len);
        data = next;
        n += 1;
        if n > MAX_PACKETS {
            break;
        }
        for ctx in &mut contexts {
            let overhead = ctx.profile().rtcp_overhead();
            let mut buf = datagram.to_vec();
            match ctx.unprotect_rtcp(&mut buf) {
                Ok(plain) => {
                    assert!(plain >= 8 && plain + overhead <= datagram.len());
                    assert_eq!(buf[0] >> 6, 2);
                    let mut again = datagram.to_vec();
                    assert_eq!(ctx.unprotect_rtcp(&mut again), Err(Error::Replayed));
                }
                Err(e) => check_refusal(e),
            }

            let overhead = ctx.profile().rtp_overhead();
            let ssrc = ssrc_of(datagram);
            let roc = ssrc.and_then(|s| ctx.roc(s));
            let mut buf = datagram.to_vec();
            match ctx.unprotect_rtp(&mut buf) {
                Ok(plain) => {
                    assert!(plain >= 12 && plain + overhead <= datagram.len());
                    assert_eq!(buf[0] >> 6, 2);
                    assert!(ctx.roc(ssrc.unwrap()).is_some());
                    let mut again = datagram.to_vec();
                    assert_eq!(ctx.unprotect_rtp(&mut again), Err(Error::Replayed));
                }
                Err(e) => {
                    check_refusal(e);
                    assert_eq!(ssrc.and_then(|s| ctx.roc(s)), roc, "state moved on {e:?}");
                }
            }
        }
    }
}

fn structured(plan: Plan) {
    let profile = Profile::ALL[usize::from(plan.profile) % Profile::ALL.len()];
    let mut sender = srtp_keys::context(profile);
    let mut receiver = srtp_keys::context(profile);
    // What the receiver accepted, as sent.
    let mut accepted: Vec<Vec<u8>> = Vec::new();
    let mut out = vec![0u8; 2048];
    for packet in plan.packets.into_iter().take(MAX_PACKETS) {
        let ssrc = SSRCS[usize::from(packet.ssrc) % SSRCS.len()];
        let words = &packet.body[..packet.body.len().min(64)];
        let mut plain = vec![
            0x80 | (packet.count & 0x1f),
            PACKET_TYPES[usize::from(packet.packet_type) % PACKET_TYPES.len()],
        ];
        plain.extend_from_slice(&(words.len() as u16 + 1).to_be_bytes());
        plain.extend_from_slice(&ssrc.to_be_bytes());
        for word in words {
            plain.extend_from_slice(&word.to_be_bytes());
        }
        let len = sender
            .protect_rtcp(&[&plain], &mut out)
            .expect("a version-2 RTCP packet within the buffer protects");
        assert_eq!(len, plain.len() + profile.rtcp_overhead());
        let sealed = out[..len].to_vec();

        let mut flipped = sealed.clone();
        for &(at, mask) in packet.flips.iter().take(16) {
            flipped[usize::from(at) % len] ^= mask;
        }
        if flipped != sealed {
            let mut buf = flipped.clone();
            match receiver.unprotect_rtcp(&mut buf) {
                Ok(n) => panic!(
                    "a packet with flipped bits authenticated ({profile:?}): {flipped:02x?} -> \
                     {:02x?}",
                    &buf[..n]
                ),
                Err(e) => check_refusal(e),
            }
        }
        if packet.intact || flipped == sealed {
            let mut buf = sealed.clone();
            let n = receiver
                .unprotect_rtcp(&mut buf)
                .unwrap_or_else(|e| panic!("intact SRTCP refused ({profile:?}): {e:?}"));
            assert_eq!(&buf[..n], &plain[..]);
            accepted.push(sealed);
        }
        if let (Some(pick), false) = (packet.replay, accepted.is_empty()) {
            let mut buf = accepted[usize::from(pick) % accepted.len()].clone();
            assert_eq!(receiver.unprotect_rtcp(&mut buf), Err(Error::Replayed));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        raw(rest);
    } else if let Ok(plan) = Plan::arbitrary_take_rest(Unstructured::new(rest)) {
        structured(plan);
    }
});

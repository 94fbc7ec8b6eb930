//! Cross-check against an independent implementation, the `webrtc-srtp` crate (it supports all
//! three profiles): it decrypts what corecast encrypts and corecast decrypts what it encrypts,
//! RTP and RTCP, over thousands of seeded random packets (CSRCs, extensions, sizes) that cross
//! the ROC rollover at sequence 65535 -> 0.

mod common;
use corecast_srtp::{Profile, SrtpContext};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use webrtc_srtp::context::Context;
use webrtc_srtp::protection_profile::ProtectionProfile;

const PACKETS: usize = 3_000;

fn theirs(profile: Profile) -> ProtectionProfile {
    match profile {
        Profile::Aes128CmHmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        Profile::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
        Profile::AeadAes256Gcm => ProtectionProfile::AeadAes256Gcm,
    }
}

/// A random valid RTP packet of stream `ssrc` with sequence number `seq`.
fn random_rtp(rng: &mut ChaCha8Rng, seq: u16, ssrc: u32) -> Vec<u8> {
    let csrcs = rng.random_range(0..3u8);
    let extension = rng.random_bool(0.3);
    let mut p = vec![
        0x80 | csrcs | if extension { 0x10 } else { 0 },
        96 | (rng.random::<u8>() & 0x80),
    ];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&rng.random::<u32>().to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    for _ in 0..csrcs {
        p.extend_from_slice(&rng.random::<u32>().to_be_bytes());
    }
    if extension {
        // Well-formed one-byte elements (RFC 8285), so webrtc-srtp's parse and re-marshal of the
        // header reproduces the octets that were authenticated.
        let mut elements = Vec::new();
        for id in 1..=rng.random_range(1..4u8) {
            let len = rng.random_range(1..5u8);
            elements.push(id << 4 | (len - 1));
            elements.extend((0..len).map(|_| rng.random::<u8>()));
        }
        while elements.len() % 4 != 0 {
            elements.push(0);
        }
        p.extend_from_slice(&[0xbe, 0xde]);
        p.extend_from_slice(&((elements.len() / 4) as u16).to_be_bytes());
        p.extend_from_slice(&elements);
    }
    let payload = rng.random_range(1..1_200);
    p.extend((0..payload).map(|_| rng.random::<u8>()));
    p
}

/// A random valid RTCP receiver report (with random report-block-sized words) from `ssrc`.
fn random_rtcp(rng: &mut ChaCha8Rng, ssrc: u32) -> Vec<u8> {
    let blocks = rng.random_range(0..4u8);
    let words = 1 + 6 * u16::from(blocks);
    let mut p = vec![0x80 | blocks, 201];
    p.extend_from_slice(&words.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..24 * usize::from(blocks)).map(|_| rng.random::<u8>()));
    p
}

fn keys(rng: &mut ChaCha8Rng, profile: Profile) -> (Vec<u8>, Vec<u8>) {
    let key = (0..profile.key_len()).map(|_| rng.random()).collect();
    let salt = (0..profile.salt_len()).map(|_| rng.random()).collect();
    (key, salt)
}

#[test]
fn webrtc_srtp_decrypts_what_corecast_encrypts() {
    for (seed, profile) in Profile::ALL.into_iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(seed as u64);
        let (key, salt) = keys(&mut rng, profile);
        let mut ours = SrtpContext::new(profile, &key, &salt, 4).unwrap();
        let mut them = Context::new(&key, &salt, theirs(profile), None, None).unwrap();
        let mut out = vec![0u8; 1_600];
        let ssrcs = [0x1111_1111u32, 0x2222_2222];
        for n in 0..PACKETS {
            let ssrc = ssrcs[n % 2];
            // Each stream starts 1,000 packets before the wrap.
            let seq = (64_535 + n / 2) as u16;
            let plain = random_rtp(&mut rng, seq, ssrc);
            let len = ours
                .protect_rtp(&[&plain[..12], &plain[12..]], &mut out)
                .unwrap();
            let decrypted = them
                .decrypt_rtp(&out[..len])
                .unwrap_or_else(|e| panic!("{profile:?} packet {n}: {e}"));
            assert_eq!(&decrypted[..], &plain[..], "{profile:?} packet {n}");
            if n % 7 == 0 {
                let rtcp = random_rtcp(&mut rng, ssrc);
                let len = ours.protect_rtcp(&[&rtcp], &mut out).unwrap();
                let decrypted = them
                    .decrypt_rtcp(&out[..len])
                    .unwrap_or_else(|e| panic!("{profile:?} rtcp {n}: {e}"));
                assert_eq!(&decrypted[..], &rtcp[..], "{profile:?} rtcp {n}");
            }
        }
        assert_eq!(ours.roc(ssrcs[0]), Some(1), "{profile:?} crossed the wrap");
    }
}

#[test]
fn corecast_decrypts_what_webrtc_srtp_encrypts() {
    for (seed, profile) in Profile::ALL.into_iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(100 + seed as u64);
        let (key, salt) = keys(&mut rng, profile);
        let mut ours = SrtpContext::new(profile, &key, &salt, 4).unwrap();
        let mut them = Context::new(&key, &salt, theirs(profile), None, None).unwrap();
        let ssrcs = [0x3333_3333u32, 0x4444_4444];
        for n in 0..PACKETS {
            let ssrc = ssrcs[n % 2];
            let seq = (64_535 + n / 2) as u16;
            let plain = random_rtp(&mut rng, seq, ssrc);
            let mut wire = them.encrypt_rtp(&plain).unwrap().to_vec();
            let len = ours
                .unprotect_rtp(&mut wire)
                .unwrap_or_else(|e| panic!("{profile:?} packet {n}: {e}"));
            assert_eq!(&wire[..len], &plain[..], "{profile:?} packet {n}");
            if n % 7 == 0 {
                let rtcp = random_rtcp(&mut rng, ssrc);
                let mut wire = them.encrypt_rtcp(&rtcp).unwrap().to_vec();
                let len = ours
                    .unprotect_rtcp(&mut wire)
                    .unwrap_or_else(|e| panic!("{profile:?} rtcp {n}: {e}"));
                assert_eq!(&wire[..len], &rtcp[..], "{profile:?} rtcp {n}");
            }
        }
        assert_eq!(ours.roc(ssrcs[1]), Some(1), "{profile:?} crossed the wrap");
    }
}

//! RFC 7714 §16 (SRTP) and §17 (SRTCP) AES-GCM test vectors, byte for byte, both ways. They are
//! stated with session keys, so the contexts are built with `from_session_keys`; the RFC 3711
//! key derivation itself is pinned by the B.3 unit test.

mod common;
use common::unhex;
use corecast_srtp::{Profile, SrtpContext};

const KEY_128: &str = "000102030405060708090a0b0c0d0e0f";
const KEY_256: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/// "Quid pro quo".
const SALT: &str = "517569642070726f2071756f";
/// §16: header 8040f17b 8041f8d3 5501a0b2, payload "Gallia est omnis divisa in partes tres".
const RTP: &str = "8040f17b8041f8d35501a0b247616c6c696120657374206f6d6e69732064697669736120696e207061727465732074726573";
/// §16.1.1.
const SRTP_128: &str = "8040f17b8041f8d35501a0b2f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833899d7f27beb16a9152cf765ee4390cce";
/// §16.2.1.
const SRTP_256: &str = "8040f17b8041f8d35501a0b232b1de78a822fe12ef9f78fa332e33aab18012389a58e2f3b50b2a0276ffae0f1ba63799b87b7aa3db36dfffd6b0f9bb7878d7a76c13";
/// §17: an SR from SSRC "Mars".
const RTCP: &str = "81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61deadbeefdeadbeefdeadbeefdeadbeefdeadbeef";
/// §17.1, SRTCP index 0x5d4.
const SRTCP_128: &str = "81c8000d4d61727363e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32dc676a5f1730d6fda4ce09b4686303ded0bb9275bc84aa45896cf4d2fc5abf87245d9eade800005d4";
/// §17.2.
const SRTCP_256: &str = "81c8000d4d617273d50ae4d1f5ce5d304ba297e47d470c282c3ece5dbffe0a50a2eaa5c1110555be8415f658c61de0476f1b6fad1d1eb30c4446839f57ff6f6cb26ac3be800005d4";
/// §17.3: authenticated only, E flag clear.
const SRTCP_128_TAG_ONLY: &str = "81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61deadbeefdeadbeefdeadbeefdeadbeefdeadbeef841dd9683dd78ec92ae58790125f62b3000005d4";

fn ctx(profile: Profile, key: &str) -> SrtpContext {
    SrtpContext::from_session_keys(profile, &unhex(key), &unhex(SALT), &[], 4).unwrap()
}

fn check_srtp(profile: Profile, key: &str, expected: &str) {
    let plain = unhex(RTP);
    let expected = unhex(expected);
    let mut out = [0u8; 256];
    // Split where the shard splits: header, then the payload in two pieces.
    let len = ctx(profile, key)
        .protect_rtp(&[&plain[..12], &plain[12..20], &plain[20..]], &mut out)
        .unwrap();
    assert_eq!(&out[..len], &expected[..], "{profile:?} protect");
    let mut buf = expected.clone();
    let len = ctx(profile, key).unprotect_rtp(&mut buf).unwrap();
    assert_eq!(&buf[..len], &plain[..], "{profile:?} unprotect");
}

fn check_srtcp(profile: Profile, key: &str, expected: &str) {
    let plain = unhex(RTCP);
    let expected = unhex(expected);
    let mut sender = ctx(profile, key);
    sender.set_next_srtcp_index(0x4d61_7273, 0x5d4).unwrap();
    let mut out = [0u8; 256];
    let len = sender.protect_rtcp(&[&plain], &mut out).unwrap();
    assert_eq!(&out[..len], &expected[..], "{profile:?} protect");
    let mut buf = expected.clone();
    let len = ctx(profile, key).unprotect_rtcp(&mut buf).unwrap();
    assert_eq!(&buf[..len], &plain[..], "{profile:?} unprotect");
}

#[test]
fn rfc_7714_16_1_srtp_aead_aes_128_gcm() {
    check_srtp(Profile::AeadAes128Gcm, KEY_128, SRTP_128);
}

#[test]
fn rfc_7714_16_2_srtp_aead_aes_256_gcm() {
    check_srtp(Profile::AeadAes256Gcm, KEY_256, SRTP_256);
}

#[test]
fn rfc_7714_17_1_srtcp_aead_aes_128_gcm() {
    check_srtcp(Profile::AeadAes128Gcm, KEY_128, SRTCP_128);
}

#[test]
fn rfc_7714_17_2_srtcp_aead_aes_256_gcm() {
    check_srtcp(Profile::AeadAes256Gcm, KEY_256, SRTCP_256);
}

#[test]
fn rfc_7714_17_3_srtcp_authenticated_only_is_accepted() {
    let mut buf = unhex(SRTCP_128_TAG_ONLY);
    let len = ctx(Profile::AeadAes128Gcm, KEY_128)
        .unprotect_rtcp(&mut buf)
        .unwrap();
    assert_eq!(&buf[..len], &unhex(RTCP)[..]);
}

//! One direction's session cipher (RTP or RTCP half), applied to a packet already laid out in
//! the buffer it is sent from. SRTP keys are expanded once, and per packet only the IV is built;
//! SRTCP keys are kept as derived and expanded per packet ([`SessionKeys`]), which for AES-CM
//! allocates its key box.
//!
//! AES-GCM has two backends ([`GcmKey`]), picked by measurement (BENCHMARKS.md): aws-lc-rs for
//! SRTP, the per-copy cost, as its VAES/AVX-512 code is the fastest here; `ring` for SRTCP,
//! whose key is expanded per packet, as ring's key lives inline and aws-lc-rs's on the heap (an
//! allocation per SRTCP packet). AES-CM and HMAC-SHA1 come from RustCrypto, since neither
//! library exposes AES-CTR with a fast SHA-1 HMAC that can be cloned per packet.

use aes::cipher::{InnerIvInit, KeyInit, StreamCipher};
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::kdf::{derive, label};
use crate::{Error, Profile};

/// Octets of an HMAC-SHA1_80 tag.
const CM_TAG: usize = 10;
/// Octets of a GCM tag.
const GCM_TAG: usize = 16;
/// The E flag of the SRTCP trailer word: the packet is encrypted.
pub(crate) const E_FLAG: u32 = 0x8000_0000;

/// The expanded session keys of one half (SRTP or SRTCP) of a context, its AES-GCM key from
/// backend `K` ([`RtpCipher`], [`RtcpCipher`]).
///
/// AES-CM's keys are boxed: the `aes` crate's AES-128 alone (both its AES-NI and its bitsliced
/// key schedules) is 704 octets, and inline it would make every cipher that large, GCM ones
/// included (the profile browsers pick); boxed, it costs AES-CM one pointer chase per packet,
/// small beside its HMAC-SHA1.
pub(crate) enum SessionCipher<K> {
    /// RFC 7714.
    Gcm { key: K, salt: [u8; 12] },
    /// RFC 3711 AES-CM with HMAC-SHA1_80.
    Cm(Box<CmKeys>),
}

/// The SRTP half, kept expanded for the context's life: GCM from aws-lc-rs, whose key is a
/// pointer to its own heap context, so this is a few words inline.
pub(crate) type RtpCipher = SessionCipher<aws_lc_rs::aead::LessSafeKey>;

/// The SRTCP half, expanded per packet on the stack: GCM from ring, whose key lives inline, so
/// expanding it allocates nothing.
pub(crate) type RtcpCipher = SessionCipher<ring::aead::LessSafeKey>;

pub(crate) struct CmKeys {
    aes: aes::Aes128,
    salt: [u8; 14],
    /// Keyed once; cloned per packet (a copy of the inner and outer hash states).
    mac: Hmac<Sha1>,
}

/// Which half of the context, for the key derivation labels.
#[derive(Clone, Copy)]
pub(crate) enum Half {
    Rtp,
    Rtcp,
}

/// One half's session keys as derived, not expanded: 70 octets where an [`RtcpCipher`] is
/// 560. The SRTCP half is kept this way and expanded for each packet (a viewer's RTCP is a few
/// packets a second; the expansion is a fraction of a microsecond), which saves a cipher's
/// worth of memory per context, two per viewer.
#[derive(Clone)]
pub(crate) struct SessionKeys {
    profile: Profile,
    key: [u8; 32],
    salt: [u8; 14],
    auth: [u8; 20],
}

impl SessionKeys {
    fn empty(profile: Profile) -> Self {
        SessionKeys {
            profile,
            key: [0; 32],
            salt: [0; 14],
            auth: [0; 20],
        }
    }

    /// Derive this half's session keys from the master key and salt (RFC 3711 §4.3, KDR 0).
    pub(crate) fn derive(
        profile: Profile,
        master_key: &[u8],
        master_salt: &[u8],
        half: Half,
    ) -> Self {
        let (enc, auth, salt) = match half {
            Half::Rtp => (label::RTP_ENCRYPTION, label::RTP_AUTH, label::RTP_SALT),
            Half::Rtcp => (label::RTCP_ENCRYPTION, label::RTCP_AUTH, label::RTCP_SALT),
        };
        let mut keys = SessionKeys::empty(profile);
        derive(
            master_key,
            master_salt,
            enc,
            &mut keys.key[..profile.key_len()],
        );
        derive(
            master_key,
            master_salt,
            salt,
            &mut keys.salt[..profile.salt_len()],
        );
        if !profile.is_aead() {
            derive(master_key, master_salt, auth, &mut keys.auth);
        }
        keys
    }

    /// Session keys given directly (the RFC 7714 vectors are stated this way); lengths checked
    /// by the caller against the profile.
    pub(crate) fn given(profile: Profile, key: &[u8], salt: &[u8], auth_key: &[u8]) -> Self {
        let mut keys = SessionKeys::empty(profile);
        keys.key[..key.len()].copy_from_slice(key);
        keys.salt[..salt.len()].copy_from_slice(salt);
        if !profile.is_aead() {
            keys.auth.copy_from_slice(auth_key);
        }
        keys
    }

    /// The expanded cipher, for one SRTCP packet.
    pub(crate) fn cipher(&self) -> RtcpCipher {
        let p = self.profile;
        RtcpCipher::new(
            p,
            &self.key[..p.key_len()],
            &self.salt[..p.salt_len()],
            &self.auth,
        )
    }

    /// Where the E+index word of an SRTCP packet of `len` octets starts.
    pub(crate) fn rtcp_trailer_at(&self, len: usize) -> usize {
        if self.profile.is_aead() {
            len - 4
        } else {
            len - 4 - CM_TAG
        }
    }
}

impl<K: GcmKey> SessionCipher<K> {
    /// Derive this half's session keys and expand them.
    pub(crate) fn derive(
        profile: Profile,
        master_key: &[u8],
        master_salt: &[u8],
        half: Half,
    ) -> Self {
        let p = profile;
        let keys = SessionKeys::derive(p, master_key, master_salt, half);
        Self::new(
            p,
            &keys.key[..p.key_len()],
            &keys.salt[..p.salt_len()],
            &keys.auth,
        )
    }

    /// Expand session keys given directly (the RFC 7714 vectors are stated this way); lengths
    /// checked by the caller against the profile.
    pub(crate) fn new(profile: Profile, key: &[u8], salt: &[u8], auth_key: &[u8]) -> Self {
        const SALT: &str = "salt length checked against the profile";
        match profile {
            Profile::AeadAes128Gcm | Profile::AeadAes256Gcm => SessionCipher::Gcm {
                key: K::expand(key),
                salt: salt.try_into().expect(SALT),
            },
            Profile::Aes128CmHmacSha1_80 => SessionCipher::Cm(Box::new(CmKeys {
                aes: aes::Aes128::new(key.into()),
                salt: salt.try_into().expect(SALT),
                mac: <Hmac<Sha1> as Mac>::new_from_slice(auth_key)
                    .expect("HMAC takes any key length"),
            })),
        }
    }

    /// Encrypt and tag the RTP packet whose header and first payload octets are in
    /// `buf[..split]` and whose remaining payload is `tail` (not yet in `buf`: it goes to
    /// `buf[split..]` encrypted, the tag after it); returns the protected length. `buf` is
    /// checked to be long enough by the caller.
    pub(crate) fn seal_rtp(
        &self,
        buf: &mut [u8],
        header_len: usize,
        split: usize,
        tail: &[u8],
        ssrc: u32,
        index: u64,
    ) -> usize {
        let end = split + tail.len();
        match self {
            SessionCipher::Gcm { key, salt } => {
                let nonce = gcm_rtp_nonce(salt, ssrc, index);
                key.seal_with_tail(nonce, &mut buf[..end + GCM_TAG], header_len, split, tail);
                end + GCM_TAG
            }
            SessionCipher::Cm(cm) => {
                buf[split..end].copy_from_slice(tail);
                cm_keystream(&cm.aes, &cm_iv(&cm.salt, ssrc, index))
                    .apply_keystream(&mut buf[header_len..end]);
                let mut mac = cm.mac.clone();
                mac.update(&buf[..end]);
                mac.update(&((index >> 16) as u32).to_be_bytes());
                let tag = mac.finalize().into_bytes();
                buf[end..end + CM_TAG].copy_from_slice(&tag[..CM_TAG]);
                end + CM_TAG
            }
        }
    }

    /// Verify and decrypt the SRTP packet `buf` in place; returns the plaintext packet length.
    pub(crate) fn open_rtp(
        &self,
        buf: &mut [u8],
        header_len: usize,
        ssrc: u32,
        index: u64,
    ) -> Result<usize, Error> {
        match self {
            SessionCipher::Gcm { key, salt } => {
                if buf.len() < header_len + GCM_TAG {
                    return Err(Error::TooShort);
                }
                let nonce = gcm_rtp_nonce(salt, ssrc, index);
                let (header, rest) = buf.split_at_mut(header_len);
                let plain = key.open(nonce, header, rest)?;
                Ok(header_len + plain)
            }
            SessionCipher::Cm(cm) => {
                if buf.len() < header_len + CM_TAG {
                    return Err(Error::TooShort);
                }
                let end = buf.len() - CM_TAG;
                let mut mac = cm.mac.clone();
                mac.update(&buf[..end]);
                mac.update(&((index >> 16) as u32).to_be_bytes());
                mac.verify_truncated_left(&buf[end..])
                    .map_err(|_| Error::BadTag)?;
                cm_keystream(&cm.aes, &cm_iv(&cm.salt, ssrc, index))
                    .apply_keystream(&mut buf[header_len..end]);
                Ok(end)
            }
        }
    }

    /// Encrypt and tag the RTCP packet in `buf[..len]` with SRTCP index `index` (E flag set);
    /// returns the protected length. The layout differs per family: AES-CM puts the E+index
    /// word before the tag (RFC 3711 §3.4), GCM after it (RFC 7714 §9).
    pub(crate) fn seal_rtcp(&self, buf: &mut [u8], len: usize, ssrc: u32, index: u32) -> usize {
        let trailer = (E_FLAG | index).to_be_bytes();
        match self {
            SessionCipher::Gcm { key, salt } => {
                let nonce = gcm_rtcp_nonce(salt, ssrc, index);
                let mut aad = [0u8; 12];
                aad[..8].copy_from_slice(&buf[..8]);
                aad[8..].copy_from_slice(&trailer);
                let tag = key.seal(nonce, &aad, &mut buf[8..len]);
                buf[len..len + GCM_TAG].copy_from_slice(&tag);
                buf[len + GCM_TAG..len + GCM_TAG + 4].copy_from_slice(&trailer);
                len + GCM_TAG + 4
            }
            SessionCipher::Cm(cm) => {
                cm_keystream(&cm.aes, &cm_iv(&cm.salt, ssrc, u64::from(index)))
                    .apply_keystream(&mut buf[8..len]);
                buf[len..len + 4].copy_from_slice(&trailer);
                let mut mac = cm.mac.clone();
                mac.update(&buf[..len + 4]);
                let tag = mac.finalize().into_bytes();
                buf[len + 4..len + 4 + CM_TAG].copy_from_slice(&tag[..CM_TAG]);
                len + 4 + CM_TAG
            }
        }
    }

    /// Verify (and with the E flag, decrypt) the SRTCP packet `buf` in place; returns the
    /// plaintext RTCP length. `buf` is at least 8 + 4 + tag octets (checked by the caller).
    /// For GCM without the E flag the tag and trailer are swapped in place so the whole packet
    /// and trailer form one contiguous associated-data slice; on error `buf` is left garbled.
    pub(crate) fn open_rtcp(&self, buf: &mut [u8], ssrc: u32, word: u32) -> Result<usize, Error> {
        let len = buf.len();
        let index = word & !E_FLAG;
        let encrypted = word & E_FLAG != 0;
        match self {
            SessionCipher::Gcm { key, salt } => {
                let nonce = gcm_rtcp_nonce(salt, ssrc, index);
                let end = len - 4 - GCM_TAG;
                if encrypted {
                    let mut aad = [0u8; 12];
                    aad[..8].copy_from_slice(&buf[..8]);
                    aad[8..].copy_from_slice(&buf[len - 4..]);
                    key.open(nonce, &aad, &mut buf[8..len - 4])?;
                } else {
                    let mut tag = [0u8; GCM_TAG];
                    tag.copy_from_slice(&buf[end..end + GCM_TAG]);
                    buf.copy_within(len - 4..len, end);
                    buf[len - GCM_TAG..].copy_from_slice(&tag);
                    let (aad, tag) = buf.split_at_mut(len - GCM_TAG);
                    key.open(nonce, aad, tag)?;
                }
                Ok(end)
            }
            SessionCipher::Cm(cm) => {
                let end = len - 4 - CM_TAG;
                let mut mac = cm.mac.clone();
                mac.update(&buf[..len - CM_TAG]);
                mac.verify_truncated_left(&buf[len - CM_TAG..])
                    .map_err(|_| Error::BadTag)?;
                if encrypted {
                    cm_keystream(&cm.aes, &cm_iv(&cm.salt, ssrc, u64::from(index)))
                        .apply_keystream(&mut buf[8..end]);
                }
                Ok(end)
            }
        }
    }
}

/// RFC 7714 §8.1: `00 00 || SSRC || ROC || SEQ`, XOR the session salt.
fn gcm_rtp_nonce(salt: &[u8; 12], ssrc: u32, index: u64) -> [u8; 12] {
    let mut iv = *salt;
    xor(&mut iv[2..6], &ssrc.to_be_bytes());
    xor(&mut iv[6..12], &index.to_be_bytes()[2..]);
    iv
}

/// RFC 7714 §9.1: `00 00 || SSRC || 00 00 || 0 || SRTCP index`, XOR the session salt.
fn gcm_rtcp_nonce(salt: &[u8; 12], ssrc: u32, index: u32) -> [u8; 12] {
    let mut iv = *salt;
    xor(&mut iv[2..6], &ssrc.to_be_bytes());
    xor(&mut iv[8..12], &index.to_be_bytes());
    iv
}

/// An expanded AES-GCM key (128 or 256 bits, by the key's length) from one library.
pub(crate) trait GcmKey: Sized {
    fn expand(key: &[u8]) -> Self;
    /// Encrypt `in_out` in place, authenticating `aad` with it; returns the tag.
    fn seal(&self, nonce: [u8; 12], aad: &[u8], in_out: &mut [u8]) -> [u8; GCM_TAG];
    /// Verify and decrypt `in_out` (ciphertext then tag) in place; returns the plaintext length.
    fn open(&self, nonce: [u8; 12], aad: &[u8], in_out: &mut [u8]) -> Result<usize, Error>;

    /// Seal a packet whose associated data is `buf[..aad]`, whose plaintext is `buf[aad..split]`
    /// followed by `tail`, into `buf` (ciphertext from `aad`, then the tag, to the end of
    /// `buf`). This way copies `tail` in and encrypts it in place: two passes over it.
    fn seal_with_tail(
        &self,
        nonce: [u8; 12],
        buf: &mut [u8],
        aad: usize,
        split: usize,
        tail: &[u8],
    ) {
        let end = split + tail.len();
        buf[split..end].copy_from_slice(tail);
        let (aad, rest) = buf.split_at_mut(aad);
        let (in_out, tag) = rest.split_at_mut(end - aad.len());
        tag.copy_from_slice(&self.seal(nonce, aad, in_out));
    }
}

/// aws-lc-rs mirrors ring's AEAD API, so one body serves both; only the types differ. Items
/// after the library's name go into its impl.
macro_rules! gcm_key_of {
    ($lib:ident $(, $($extra:tt)*)?) => {
        impl GcmKey for $lib::aead::LessSafeKey {
            $($($extra)*)?

            fn expand(key: &[u8]) -> Self {
                use $lib::aead::{UnboundKey, AES_128_GCM, AES_256_GCM};
                let algorithm = if key.len() == 16 {
                    &AES_128_GCM
                } else {
                    &AES_256_GCM
                };
                let key = UnboundKey::new(algorithm, key)
                    .expect("key length checked against the profile");
                Self::new(key)
            }

            fn seal(&self, nonce: [u8; 12], aad: &[u8], in_out: &mut [u8]) -> [u8; GCM_TAG] {
                use $lib::aead::{Aad, Nonce};
                let t = self
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(aad),
                        in_out,
                    )
                    .expect("an SRTP or SRTCP packet is far below GCM's length limit");
                let mut tag = [0u8; GCM_TAG];
                tag.copy_from_slice(t.as_ref());
                tag
            }

            fn open(&self, nonce: [u8; 12], aad: &[u8], in_out: &mut [u8]) -> Result<usize, Error> {
                use $lib::aead::{Aad, Nonce};
                self.open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), in_out)
                    .map(|p| p.len())
                    .map_err(|_| Error::BadTag)
            }
        }
    };
}

// aws-lc-rs encrypts the tail from where it lies straight into `buf` (one pass over it, not
// a copy then an in-place pass): the shared payload is read once per copy, never written.
gcm_key_of!(
    aws_lc_rs,
    fn seal_with_tail(
        &self,
        nonce: [u8; 12],
        buf: &mut [u8],
        aad: usize,
        split: usize,
        tail: &[u8],
    ) {
        use aws_lc_rs::aead::{Aad, Nonce};
        let (aad, rest) = buf.split_at_mut(aad);
        let (in_out, tail_out) = rest.split_at_mut(split - aad.len());
        self.seal_in_place_scatter(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            in_out,
            tail,
            tail_out,
        )
        .expect("an SRTP packet is far below GCM's length limit");
    }
);
gcm_key_of!(ring);

/// RFC 3711 §4.1.1: `(salt << 16) XOR (SSRC << 64) XOR (index << 16)`, block counter 0.
fn cm_iv(salt: &[u8; 14], ssrc: u32, index: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(salt);
    xor(&mut iv[4..8], &ssrc.to_be_bytes());
    xor(&mut iv[8..14], &index.to_be_bytes()[2..]);
    iv
}

fn cm_keystream(aes: &aes::Aes128, iv: &[u8; 16]) -> ctr::Ctr128BE<aes::Aes128> {
    // A copy of the expanded key, not a new key schedule per packet.
    let core =
        ctr::CtrCore::<aes::Aes128, ctr::flavors::Ctr128BE>::inner_iv_init(aes.clone(), iv.into());
    ctr::Ctr128BE::from_core(core)
}

fn xor(into: &mut [u8], from: &[u8]) {
    for (a, b) in into.iter_mut().zip(from) {
        *a ^= b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::unhex;

    /// RFC 3711 Appendix B.2: the AES-CM keystream for session key 2B7E..., salt F0F1...FD,
    /// SSRC 0, index 0, as the ciphertext of an all-zero payload, blocks 0-2 and FEFF-FF01.
    #[test]
    fn rfc_3711_b2_aes_cm_keystream() {
        let cipher = RtpCipher::new(
            Profile::Aes128CmHmacSha1_80,
            &unhex("2B7E151628AED2A6ABF7158809CF4F3C"),
            &unhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD"),
            &[0u8; 20],
        );
        let header = unhex("800000000000000000000000");
        let blocks = 0xff02;
        let mut buf = vec![0u8; 12 + 16 * blocks + CM_TAG];
        buf[..12].copy_from_slice(&header);
        let len = cipher.seal_rtp(&mut buf, 12, 12 + 16 * blocks, &[], 0, 0);
        assert_eq!(len, 12 + 16 * blocks + CM_TAG);
        let block = |n: usize| buf[12 + 16 * n..12 + 16 * (n + 1)].to_vec();
        assert_eq!(block(0), unhex("E03EAD0935C95E80E166B16DD92B4EB4"));
        assert_eq!(block(1), unhex("D23513162B02D0F72A43A2FE4A5F97AB"));
        assert_eq!(block(2), unhex("41E95B3BB0A2E8DD477901E4FCA894C0"));
        assert_eq!(block(0xfeff), unhex("EC8CDF7398607CB0F2D21675EA9EA1E4"));
        assert_eq!(block(0xff00), unhex("362B7C3C6773516318A077D7FC5073AE"));
        assert_eq!(block(0xff01), unhex("6A2CC3787889374FBEB4C81B17BA6C44"));
    }
}

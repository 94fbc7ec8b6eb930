//! RFC 3711 §4.3 key derivation with the AES-CM PRF and a key derivation rate of 0, as
//! DTLS-SRTP uses it (RFC 5764 §4.1.2; RFC 7714 §11 for the GCM profiles, whose 96-bit master
//! salt is padded with zeros to the 112 bits the PRF takes).

use aes::cipher::{KeyIvInit, StreamCipher};

/// Labels of RFC 3711 §4.3.1 and §4.3.2.
pub(crate) mod label {
    pub(crate) const RTP_ENCRYPTION: u8 = 0x00;
    pub(crate) const RTP_AUTH: u8 = 0x01;
    pub(crate) const RTP_SALT: u8 = 0x02;
    pub(crate) const RTCP_ENCRYPTION: u8 = 0x03;
    pub(crate) const RTCP_AUTH: u8 = 0x04;
    pub(crate) const RTCP_SALT: u8 = 0x05;
}

/// Fill `out` with the PRF output for `label`: AES-CM keyed with the master key, IV
/// `(master_salt XOR label << 48) << 16`. With KDR 0 the index term `r` is 0. `master_key` is
/// 16 or 32 octets, `master_salt` at most 14 (shorter salts are zero-padded on the right).
pub(crate) fn derive(master_key: &[u8], master_salt: &[u8], label: u8, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..master_salt.len()].copy_from_slice(master_salt);
    iv[7] ^= label;
    out.fill(0);
    match master_key.len() {
        16 => ctr::Ctr128BE::<aes::Aes128>::new(master_key.into(), &iv.into()).apply_keystream(out),
        32 => ctr::Ctr128BE::<aes::Aes256>::new(master_key.into(), &iv.into()).apply_keystream(out),
        other => unreachable!("key length {other} is checked against the profile before"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::unhex;

    /// RFC 3711 Appendix B.3: session encryption key, salt and authentication key.
    #[test]
    fn rfc_3711_b3_key_derivation() {
        let key = unhex("E1F97A0D3E018BE0D64FA32C06DE4139");
        let salt = unhex("0EC675AD498AFEEBB6960B3AABE6");
        let mut enc = [0u8; 16];
        derive(&key, &salt, label::RTP_ENCRYPTION, &mut enc);
        assert_eq!(enc.to_vec(), unhex("C61E7A93744F39EE10734AFE3FF7A087"));
        let mut s = [0u8; 14];
        derive(&key, &salt, label::RTP_SALT, &mut s);
        assert_eq!(s.to_vec(), unhex("30CBBC08863D8C85D49DB34A9AE1"));
        let mut auth = [0u8; 20];
        derive(&key, &salt, label::RTP_AUTH, &mut auth);
        assert_eq!(
            auth.to_vec(),
            unhex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
        );
    }
}

//! The SRTP master keys one DTLS-SRTP handshake yields, split per RFC 5764 §4.2.

use std::fmt;

use corecast_srtp::{Profile, SrtpContext};

use super::DtlsError;

/// The label RFC 5764 §4.2 exports the keying material with (for cross-checks with other
/// stacks, e.g. `openssl s_client -keymatexport`).
pub const EXPORTER_LABEL: &str = "EXTRACTOR-dtls_srtp";

/// The SRTP profile and master keys a handshake agreed on.
///
/// The exported keying material is `client_write_key | server_write_key | client_write_salt |
/// server_write_salt` (RFC 5764 §4.2). corecast is always the DTLS server, so it protects what
/// it sends with the server half and unprotects what the viewer sends with the client half.
#[derive(Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    profile: Profile,
    material: Vec<u8>,
}

impl SrtpKeys {
    /// Keys from exported keying material; its length must be `2 * (key + salt)` for `profile`.
    pub fn from_keying_material(profile: Profile, material: &[u8]) -> Result<Self, DtlsError> {
        if material.len() != 2 * profile.keying_material_len() {
            return Err(DtlsError::BadKeyingMaterial);
        }
        Ok(SrtpKeys {
            profile,
            material: material.to_vec(),
        })
    }

    /// The agreed SRTP protection profile.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The exported keying material, as `-keymatexport EXTRACTOR-dtls_srtp` prints it.
    pub fn keying_material(&self) -> &[u8] {
        &self.material
    }

    /// The DTLS client's (the viewer's) master key and salt.
    pub fn client_write(&self) -> (&[u8], &[u8]) {
        let (k, s) = (self.profile.key_len(), self.profile.salt_len());
        (&self.material[..k], &self.material[2 * k..2 * k + s])
    }

    /// The DTLS server's (corecast's) master key and salt.
    pub fn server_write(&self) -> (&[u8], &[u8]) {
        let (k, s) = (self.profile.key_len(), self.profile.salt_len());
        (&self.material[k..2 * k], &self.material[2 * k + s..])
    }

    /// The context corecast protects SRTP and SRTCP to the viewer with (server write keys),
    /// tracking up to `max_ssrcs` SSRCs.
    pub fn outbound(&self, max_ssrcs: usize) -> SrtpContext {
        let (key, salt) = self.server_write();
        self.context(key, salt, max_ssrcs)
    }

    /// The context corecast unprotects the viewer's SRTCP (and any SRTP) with (client write
    /// keys), tracking up to `max_ssrcs` SSRCs.
    pub fn inbound(&self, max_ssrcs: usize) -> SrtpContext {
        let (key, salt) = self.client_write();
        self.context(key, salt, max_ssrcs)
    }

    /// [`inbound`](Self::inbound) for SRTCP alone, what a viewer sends: one session cipher
    /// (about 560 octets) less per viewer; SRTP through it fails (`no_rtp_keys`).
    pub fn inbound_rtcp(&self, max_ssrcs: usize) -> SrtpContext {
        let (key, salt) = self.client_write();
        SrtpContext::new_rtcp_only(self.profile, key, salt, max_ssrcs)
            .expect("key and salt lengths match the profile")
    }

    fn context(&self, key: &[u8], salt: &[u8], max_ssrcs: usize) -> SrtpContext {
        // The lengths were checked against the profile in `from_keying_material`, the only
        // constructor, so `SrtpContext::new` has nothing left to refuse.
        SrtpContext::new(self.profile, key, salt, max_ssrcs)
            .expect("key and salt lengths match the profile")
    }
}

impl fmt::Debug for SrtpKeys {
    /// The profile only: keys stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpKeys")
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_follows_rfc5764_layout_for_every_profile() {
        for profile in Profile::ALL {
            let (k, s) = (profile.key_len(), profile.salt_len());
            let material: Vec<u8> = (0..2 * (k + s)).map(|i| i as u8).collect();
            let keys = SrtpKeys::from_keying_material(profile, &material).unwrap();
            let (ck, cs) = keys.client_write();
            let (sk, ss) = keys.server_write();
            assert_eq!(ck, &material[..k]);
            assert_eq!(sk, &material[k..2 * k]);
            assert_eq!(cs, &material[2 * k..2 * k + s]);
            assert_eq!(ss, &material[2 * k + s..]);
            assert_eq!(keys.outbound(1).profile(), profile);
            assert_eq!(keys.inbound(1).profile(), profile);
        }
    }

    #[test]
    fn wrong_material_length_is_refused() {
        let err = SrtpKeys::from_keying_material(Profile::AeadAes256Gcm, &[0; 60]).unwrap_err();
        assert_eq!(err.reason(), "bad_keying_material");
    }

    #[test]
    fn debug_does_not_print_keys() {
        let keys = SrtpKeys::from_keying_material(Profile::AeadAes128Gcm, &[0xee; 56]).unwrap();
        let text = format!("{keys:?}");
        assert!(
            !text.contains("238") && !text.to_lowercase().contains("ee"),
            "{text}"
        );
    }
}

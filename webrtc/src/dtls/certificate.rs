//! The node's DTLS certificate and SHA-256 certificate fingerprints (RFC 8122 §5).

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::DtlsError;

/// The SHA-256 fingerprint of a DER certificate, as SDP's `a=fingerprint:sha-256` carries it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }

    /// A fingerprint from SDP's hash name and value: `parse("sha-256", "AB:CD:...")`. The hash
    /// name and hex digits are case-insensitive (RFC 8122 §5); only sha-256 is accepted.
    pub fn parse(hash: &str, value: &str) -> Result<Fingerprint, DtlsError> {
        if !hash.eq_ignore_ascii_case("sha-256") {
            return Err(DtlsError::UnsupportedFingerprintHash);
        }
        let mut out = [0u8; 32];
        let mut parts = value.trim().split(':');
        for byte in out.iter_mut() {
            let part = parts.next().ok_or(DtlsError::MalformedFingerprint)?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(DtlsError::MalformedFingerprint);
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| DtlsError::MalformedFingerprint)?;
        }
        if parts.next().is_some() {
            return Err(DtlsError::MalformedFingerprint);
        }
        Ok(Fingerprint(out))
    }

    /// The 32 digest octets.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The hash function name SDP writes before the value.
    pub fn algorithm(&self) -> &'static str {
        "sha-256"
    }
}

impl From<[u8; 32]> for Fingerprint {
    fn from(bytes: [u8; 32]) -> Self {
        Fingerprint(bytes)
    }
}

impl fmt::Display for Fingerprint {
    /// Upper-case hex pairs joined by colons, as SDP writes them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint(sha-256 {self})")
    }
}

/// The node's self-signed ECDSA P-256 certificate, made once at start; its fingerprint goes in
/// every SDP answer. Cloning shares it (an `Arc` inside).
#[derive(Clone)]
pub struct Certificate {
    inner: Arc<Inner>,
}

struct Inner {
    dimpl: dimpl::DtlsCertificate,
    fingerprint: Fingerprint,
}

impl Certificate {
    /// A fresh key pair and self-signed certificate with a random 128-bit serial (Firefox
    /// refuses two certificates with the same issuer and serial, even across processes).
    pub fn generate() -> Result<Certificate, DtlsError> {
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|_| DtlsError::CertificateGeneration)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|_| DtlsError::CertificateGeneration)?;
        let mut name = rcgen::DistinguishedName::new();
        name.push(rcgen::DnType::CommonName, "corecast");
        params.distinguished_name = name;
        let mut serial = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut serial)
            .map_err(|_| DtlsError::CertificateGeneration)?;
        // A positive DER INTEGER of the same length every time.
        serial[0] &= 0x7f;
        serial[0] |= 0x40;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        let cert = params
            .self_signed(&key_pair)
            .map_err(|_| DtlsError::CertificateGeneration)?;
        Ok(Certificate::from_der(
            cert.der().to_vec(),
            key_pair.serialize_der(),
        ))
    }

    /// A certificate from its DER and its private key's PKCS#8 (or SEC1) DER. The key is not
    /// checked here; a mismatched or unusable one fails the first handshake.
    pub fn from_der(certificate: Vec<u8>, private_key: Vec<u8>) -> Certificate {
        let fingerprint = Fingerprint::of_der(&certificate);
        Certificate {
            inner: Arc::new(Inner {
                dimpl: dimpl::DtlsCertificate {
                    certificate,
                    private_key,
                },
                fingerprint,
            }),
        }
    }

    /// The SHA-256 fingerprint for `a=fingerprint:sha-256`.
    pub fn fingerprint(&self) -> Fingerprint {
        self.inner.fingerprint
    }

    /// The certificate's DER.
    pub fn der(&self) -> &[u8] {
        &self.inner.dimpl.certificate
    }

    /// The certificate and key as dimpl takes them (for a DTLS client such as the load
    /// generator's).
    pub fn dimpl_certificate(&self) -> &dimpl::DtlsCertificate {
        &self.inner.dimpl
    }
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("fingerprint", &self.inner.fingerprint)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_displays_as_sdp_writes_it_and_parses_back() {
        let fp = Fingerprint::from([0xab; 32]);
        let text = fp.to_string();
        assert_eq!(text.len(), 32 * 3 - 1);
        assert!(text.starts_with("AB:AB:"));
        assert_eq!(Fingerprint::parse("sha-256", &text).unwrap(), fp);
        assert_eq!(
            Fingerprint::parse("SHA-256", &text.to_lowercase()).unwrap(),
            fp
        );
    }

    #[test]
    fn fingerprint_parse_rejects_malformed_values() {
        let good = Fingerprint::from([1; 32]).to_string();
        for (hash, value, reason) in [
            ("sha-1", good.as_str(), "unsupported_fingerprint_hash"),
            ("sha-256", &good[..good.len() - 3], "malformed_fingerprint"),
            ("sha-256", &format!("{good}:01"), "malformed_fingerprint"),
            ("sha-256", &good.replace(':', ""), "malformed_fingerprint"),
            (
                "sha-256",
                &good.replacen("01", "0G", 1),
                "malformed_fingerprint",
            ),
            (
                "sha-256",
                &good.replacen("01", "+1", 1),
                "malformed_fingerprint",
            ),
            ("sha-256", "", "malformed_fingerprint"),
        ] {
            let err = Fingerprint::parse(hash, value).unwrap_err();
            assert_eq!(err.reason(), reason, "{hash} {value}");
        }
    }

    #[test]
    fn generated_certificates_differ_and_fingerprint_their_der() {
        let a = Certificate::generate().unwrap();
        let b = Certificate::generate().unwrap();
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint(), Fingerprint::of_der(a.der()));
        assert_eq!(a.clone().fingerprint(), a.fingerprint());
    }
}

//! What each side of a WHEP session proves itself with: ICE credentials (RFC 8839) and the DTLS
//! certificate fingerprint (RFC 8122), as SDP writes them.

use std::fmt;
use std::str::FromStr;

/// An ICE username fragment and password (`a=ice-ufrag`, `a=ice-pwd`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IceCredentials {
    /// The username fragment: 4 to 256 ice-chars.
    pub ufrag: String,
    /// The password: 22 to 256 ice-chars.
    pub pwd: String,
}

/// RFC 8839's `ice-char` (ALPHA / DIGIT / "+" / "/").
fn is_ice_chars(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// Whether `ufrag` fits RFC 8839's `ice-ufrag-att` grammar.
pub fn valid_ufrag(ufrag: &str) -> bool {
    (4..=256).contains(&ufrag.len()) && is_ice_chars(ufrag)
}

/// Whether `pwd` fits RFC 8839's `ice-pwd-att` grammar.
pub fn valid_pwd(pwd: &str) -> bool {
    (22..=256).contains(&pwd.len()) && is_ice_chars(pwd)
}

/// A hash function RFC 8122 names for `a=fingerprint`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// `sha-1` (20 bytes).
    Sha1,
    /// `sha-224` (28 bytes).
    Sha224,
    /// `sha-256` (32 bytes): the one corecast requires and writes.
    Sha256,
    /// `sha-384` (48 bytes).
    Sha384,
    /// `sha-512` (64 bytes).
    Sha512,
}

impl HashAlgorithm {
    /// The name as SDP writes it (lowercase).
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha1 => "sha-1",
            HashAlgorithm::Sha224 => "sha-224",
            HashAlgorithm::Sha256 => "sha-256",
            HashAlgorithm::Sha384 => "sha-384",
            HashAlgorithm::Sha512 => "sha-512",
        }
    }

    /// The digest's length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            HashAlgorithm::Sha1 => 20,
            HashAlgorithm::Sha224 => 28,
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha384 => 48,
            HashAlgorithm::Sha512 => 64,
        }
    }

    /// The algorithm SDP names `name` (ASCII case ignored, as RFC 8122 says); `None` for one
    /// corecast does not know (such fingerprints are skipped, not refused).
    pub fn from_name(name: &str) -> Option<HashAlgorithm> {
        [
            HashAlgorithm::Sha1,
            HashAlgorithm::Sha224,
            HashAlgorithm::Sha256,
            HashAlgorithm::Sha384,
            HashAlgorithm::Sha512,
        ]
        .into_iter()
        .find(|a| a.name().eq_ignore_ascii_case(name))
    }
}

/// A certificate fingerprint: `a=fingerprint:sha-256 AB:CD:...`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    /// The hash function.
    pub algorithm: HashAlgorithm,
    /// The digest, `algorithm.digest_len()` bytes.
    pub bytes: Vec<u8>,
}

/// Why a fingerprint value does not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FingerprintError {
    /// Not `ALGORITHM HEX`.
    Malformed,
    /// An algorithm RFC 8122 does not name (or corecast does not know).
    UnknownAlgorithm,
    /// The hex is not colon-separated byte pairs of the algorithm's length.
    BadDigest,
}

impl FingerprintError {
    /// A stable snake_case name for counters and logs.
    pub fn reason(self) -> &'static str {
        match self {
            FingerprintError::Malformed => "fingerprint_malformed",
            FingerprintError::UnknownAlgorithm => "fingerprint_unknown_algorithm",
            FingerprintError::BadDigest => "fingerprint_bad_digest",
        }
    }
}

impl fmt::Display for FingerprintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FingerprintError::Malformed => "a fingerprint is `ALGORITHM HEX:HEX:...`",
            FingerprintError::UnknownAlgorithm => "unknown fingerprint hash algorithm",
            FingerprintError::BadDigest => {
                "the fingerprint digest is not colon-separated hex bytes of the algorithm's length"
            }
        })
    }
}

impl std::error::Error for FingerprintError {}

impl Fingerprint {
    /// A SHA-256 fingerprint of `digest` (what the DTLS side computes over its certificate).
    pub fn sha256(digest: [u8; 32]) -> Fingerprint {
        Fingerprint {
            algorithm: HashAlgorithm::Sha256,
            bytes: digest.to_vec(),
        }
    }

    /// The digest as SDP writes it: uppercase hex byte pairs joined by `:`.
    pub fn hex(&self) -> String {
        let mut out = String::with_capacity(self.bytes.len() * 3);
        for (i, b) in self.bytes.iter().enumerate() {
            if i > 0 {
                out.push(':');
            }
            out.push_str(&format!("{b:02X}"));
        }
        out
    }
}

/// `sha-256 AB:CD:...`, the value of `a=fingerprint`.
impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.algorithm.name(), self.hex())
    }
}

/// Parses the value of `a=fingerprint` (`sha-256 AB:CD:...`, hex in either case).
impl FromStr for Fingerprint {
    type Err = FingerprintError;

    fn from_str(value: &str) -> Result<Fingerprint, FingerprintError> {
        let mut fields = value.split_ascii_whitespace();
        let (Some(name), Some(hex), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(FingerprintError::Malformed);
        };
        let algorithm = HashAlgorithm::from_name(name).ok_or(FingerprintError::UnknownAlgorithm)?;
        let mut bytes = Vec::with_capacity(algorithm.digest_len());
        for pair in hex.split(':') {
            if pair.len() != 2
                || !pair.bytes().all(|b| b.is_ascii_hexdigit())
                || bytes.len() == algorithm.digest_len()
            {
                return Err(FingerprintError::BadDigest);
            }
            bytes.push(u8::from_str_radix(pair, 16).map_err(|_| FingerprintError::BadDigest)?);
        }
        if bytes.len() != algorithm.digest_len() {
            return Err(FingerprintError::BadDigest);
        }
        Ok(Fingerprint { algorithm, bytes })
    }
}

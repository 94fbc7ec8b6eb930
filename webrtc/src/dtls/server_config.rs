//! The node's DTLS server settings: which SRTP profiles it accepts, in which order.

use std::sync::{Arc, OnceLock};

use corecast_srtp::Profile;

use super::handshake::HANDSHAKE_TIMEOUT;

/// Why a list of SRTP profiles cannot be the server's preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfilesError {
    /// No profile at all: no viewer could ever connect.
    Empty,
    /// A profile is listed twice.
    Repeated(Profile),
    /// dimpl refused the settings (its message).
    Refused(String),
}

impl std::fmt::Display for ProfilesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProfilesError::Empty => f.write_str("no SRTP profile listed"),
            ProfilesError::Repeated(p) => write!(f, "SRTP profile {p:?} is listed twice"),
            ProfilesError::Refused(e) => write!(f, "the DTLS library refused the settings: {e}"),
        }
    }
}

impl std::error::Error for ProfilesError {}

/// The SRTP profiles the node's DTLS server accepts, most preferred first, and the dimpl
/// configuration made from them (made once: every handshake shares it).
///
/// As the server, corecast picks the profile (RFC 5764 §4.1.1): the first of these that the
/// viewer offers. Browsers offer all three, so this order decides what they get.
#[derive(Clone)]
pub struct ServerConfig {
    profiles: Vec<Profile>,
    dimpl: Arc<dimpl::Config>,
}

impl ServerConfig {
    /// A server that accepts `profiles`, preferring them in this order.
    pub fn new(profiles: &[Profile]) -> Result<ServerConfig, ProfilesError> {
        if profiles.is_empty() {
            return Err(ProfilesError::Empty);
        }
        for (i, p) in profiles.iter().enumerate() {
            if profiles[..i].contains(p) {
                return Err(ProfilesError::Repeated(*p));
            }
        }
        let wanted: Vec<dimpl::SrtpProfile> = profiles.iter().map(|p| dimpl_profile(*p)).collect();
        let config = dimpl::Config::builder()
            .require_client_certificate(true)
            .handshake_timeout(HANDSHAKE_TIMEOUT)
            .srtp_profiles(&wanted)
            .build()
            .map_err(|e| ProfilesError::Refused(e.to_string()))?;
        Ok(ServerConfig {
            profiles: profiles.to_vec(),
            dimpl: Arc::new(config),
        })
    }

    /// The accepted profiles, most preferred first.
    pub fn profiles(&self) -> &[Profile] {
        &self.profiles
    }

    pub(super) fn dimpl(&self) -> Arc<dimpl::Config> {
        self.dimpl.clone()
    }
}

impl Default for ServerConfig {
    /// Every profile, in [`Profile::ALL`]'s order (AES-128-GCM first).
    fn default() -> ServerConfig {
        static DEFAULT: OnceLock<ServerConfig> = OnceLock::new();
        DEFAULT
            .get_or_init(|| {
                // Profile::ALL has no repeats, and dimpl takes these settings (a unit test
                // builds them); were a release to refuse them, its own default still
                // requires a client certificate and accepts every profile.
                ServerConfig::new(&Profile::ALL).unwrap_or_else(|_| ServerConfig {
                    profiles: Profile::ALL.to_vec(),
                    dimpl: Arc::new(dimpl::Config::default()),
                })
            })
            .clone()
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("profiles", &self.profiles)
            .finish_non_exhaustive()
    }
}

/// dimpl's name for a profile.
fn dimpl_profile(profile: Profile) -> dimpl::SrtpProfile {
    match profile {
        Profile::AeadAes128Gcm => dimpl::SrtpProfile::AEAD_AES_128_GCM,
        Profile::AeadAes256Gcm => dimpl::SrtpProfile::AEAD_AES_256_GCM,
        Profile::Aes128CmHmacSha1_80 => dimpl::SrtpProfile::AES128_CM_SHA1_80,
    }
}

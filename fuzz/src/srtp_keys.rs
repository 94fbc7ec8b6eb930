//! The fixed SRTP master keys the `srtcp_unprotect` target keys its contexts with, shared with
//! the seed generator (`fuzz/seeds`) so the seeds it protects authenticate in the target.

use corecast_srtp::{Profile, SrtpContext};

/// Long enough for AES-256; shorter profiles take the first `key_len` octets.
pub const MASTER_KEY: [u8; 32] = [
    0xe1, 0xf9, 0x7a, 0x0d, 0x3e, 0x01, 0x8b, 0xe0, 0xd6, 0x4f, 0xa3, 0x2c, 0x06, 0xde, 0x41, 0x39,
    0x0e, 0xc6, 0x75, 0xad, 0x49, 0x8a, 0xfe, 0xeb, 0xb6, 0x96, 0x0b, 0x3a, 0xab, 0xe6, 0xc1, 0x73,
];
/// Long enough for AES-CM (14 octets); the GCM profiles take the first 12.
pub const MASTER_SALT: [u8; 14] = [
    0xc3, 0x17, 0xf2, 0xda, 0xbe, 0x35, 0x77, 0x93, 0x11, 0x2f, 0x6a, 0xa1, 0x5b, 0x04,
];
/// SSRCs a context tracks: the structured part uses three, so a fourth fits and a fifth does
/// not.
pub const MAX_SSRCS: usize = 4;

/// A context for `profile` keyed with the fixed keys.
pub fn context(profile: Profile) -> SrtpContext {
    SrtpContext::new(
        profile,
        &MASTER_KEY[..profile.key_len()],
        &MASTER_SALT[..profile.salt_len()],
        MAX_SSRCS,
    )
    .expect("the fixed keys fit every profile")
}

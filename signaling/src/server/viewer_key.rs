//! Each WHEP viewer's own key: what proves that a request on `/v1/subscribers/{id}` (its
//! `PATCH`, `DELETE` and switch) comes from whoever created that viewer, not from any holder of
//! the viewer token, which an operator publishes in a web page.
//!
//! The key is `HMAC-SHA256(server key, id)` cut to 128 bits, written as 32 hex digits; the server
//! key is 256 bits from the OS's CSPRNG, made when the router is. So keys are unguessable
//! without the server key, need no table (nothing to keep or forget per viewer, and a request
//! is judged before its body is read or the control thread is asked), and a key names one id of
//! one run of the node: subscriber ids are never reused within a run, and each start makes a
//! new server key.

use ring::hmac;
use ring::rand::SystemRandom;
use subtle::ConstantTimeEq;

/// Key bytes kept (RFC 2104 §5: at least half the hash's output).
const KEY_BYTES: usize = 16;
/// Separates these tags from any other use of the same HMAC key.
const CONTEXT: &[u8] = b"corecast viewer resource v1\0";
/// The query parameter that carries the key on a viewer's `Location`.
pub(super) const PARAM: &str = "key";

/// What a request on a viewer's resource presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Presented {
    Matches,
    Missing,
    Wrong,
}

/// Makes and checks viewers' keys.
pub(crate) struct ViewerKeys {
    server: hmac::Key,
}

impl ViewerKeys {
    /// A fresh server key.
    pub fn new() -> ViewerKeys {
        let server = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .expect("the OS random number generator gives 32 bytes");
        ViewerKeys { server }
    }

    /// Viewer `id`'s key, as it appears in its `Location`.
    pub fn key_for(&self, id: u32) -> String {
        let tag = self.tag(id);
        let mut hex = String::with_capacity(2 * KEY_BYTES);
        for b in &tag.as_ref()[..KEY_BYTES] {
            hex.push(char::from(HEX[usize::from(b >> 4)]));
            hex.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        hex
    }

    /// The resource path a viewer is given: `/v1/subscribers/{id}?key=<its key>`.
    pub fn location(&self, id: u32) -> String {
        format!("/v1/subscribers/{id}?{PARAM}={}", self.key_for(id))
    }

    /// Whether the request's query (`None`: it has none) carries viewer `id`'s key. Compared in
    /// constant time, so the time a refusal takes says nothing about how much of a key was right.
    pub fn check(&self, id: u32, query: Option<&str>) -> Presented {
        let Some(presented) = query.and_then(key_param) else {
            return Presented::Missing;
        };
        let expected = self.key_for(id);
        // Hex digits either case: a client may normalise them.
        let presented = presented.to_ascii_lowercase();
        if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
            Presented::Matches
        } else {
            Presented::Wrong
        }
    }

    fn tag(&self, id: u32) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.server);
        ctx.update(CONTEXT);
        ctx.update(&id.to_be_bytes());
        ctx.sign()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The first `key=` parameter's value in a query string (empty counts as missing).
fn key_param(query: &str) -> Option<&str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(PARAM)?.strip_prefix('='))
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_128_bits_of_hex_and_differs_per_viewer_and_per_server() {
        let (a, b) = (ViewerKeys::new(), ViewerKeys::new());
        let key = a.key_for(7);
        assert_eq!(key.len(), 32);
        assert!(key
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(a.key_for(7), key, "the same viewer's key is stable");
        assert_ne!(a.key_for(8), key);
        assert_ne!(
            b.key_for(7),
            key,
            "another run of the node gives other keys"
        );
        assert_eq!(a.location(7), format!("/v1/subscribers/7?key={key}"));
    }

    #[test]
    fn only_the_viewers_own_key_matches() {
        let keys = ViewerKeys::new();
        let own = keys.key_for(3);
        let other = keys.key_for(4);
        let q = |s: &str| Some(s.to_string());
        for (query, want) in [
            (q(&format!("key={own}")), Presented::Matches),
            (q(&format!("a=1&key={own}&b=2")), Presented::Matches),
            (
                q(&format!("key={}", own.to_uppercase())),
                Presented::Matches,
            ),
            (None, Presented::Missing),
            (q(""), Presented::Missing),
            (q("key="), Presented::Missing),
            (q(&format!("keys={own}")), Presented::Missing),
            (q(&format!("key={other}")), Presented::Wrong),
            (q(&format!("key={}", &own[..31])), Presented::Wrong),
            (q(&format!("key={own}0")), Presented::Wrong),
            (q("key=%30"), Presented::Wrong),
        ] {
            assert_eq!(keys.check(3, query.as_deref()), want, "{query:?}");
        }
    }
}

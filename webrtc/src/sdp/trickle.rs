//! WHEP `PATCH` bodies: `application/trickle-ice-sdpfrag` (RFC 8840), the viewer's late
//! candidates and end-of-candidates, or an ICE restart's new credentials.
//!
//! Read line by line here rather than with the `sdp` crate: a fragment is not a session
//! description (no `v=`, `o=`, `s=`, `t=`, and `m=` lines may stand alone), so the crate's
//! parser refuses it.

use std::net::IpAddr;

use super::credentials::{valid_pwd, valid_ufrag};
use super::error::FragmentError;

/// The largest fragment accepted, in bytes.
pub const MAX_FRAGMENT_LEN: usize = 16 * 1024;

/// The most candidates one fragment may carry.
pub const MAX_FRAGMENT_CANDIDATES: usize = 64;

/// One `a=candidate` (RFC 8839 §5.1), the fields ICE uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The foundation.
    pub foundation: String,
    /// The component (1 for RTP; with rtcp-mux the only one).
    pub component: u16,
    /// The transport, lowercase (`udp`, `tcp`).
    pub transport: String,
    /// The priority.
    pub priority: u32,
    /// The connection address: an IP, or an mDNS name (`<uuid>.local`) as browsers write
    /// host candidates.
    pub address: String,
    /// The port.
    pub port: u16,
    /// The candidate type: `host`, `srflx`, `prflx`, `relay`.
    pub typ: String,
}

impl Candidate {
    /// Parses the value of `a=candidate:` (without the `candidate:` prefix); `None` when it
    /// does not follow RFC 8839's grammar.
    pub fn parse(value: &str) -> Option<Candidate> {
        let mut f = value.split_ascii_whitespace();
        let foundation = f.next()?;
        let component = f.next()?.parse::<u16>().ok()?;
        let transport = f.next()?.to_ascii_lowercase();
        let priority = f.next()?.parse::<u32>().ok()?;
        let address = f.next()?;
        let port = f.next()?.parse::<u16>().ok()?;
        if f.next()? != "typ" {
            return None;
        }
        let typ = f.next()?.to_ascii_lowercase();
        let valid_foundation = (1..=32).contains(&foundation.len())
            && foundation
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
        if !valid_foundation || component == 0 || address.is_empty() || address.len() > 255 {
            return None;
        }
        Some(Candidate {
            foundation: foundation.to_owned(),
            component,
            transport,
            priority,
            address: address.to_owned(),
            port,
            typ,
        })
    }

    /// The address as an IP, when it is one (not an mDNS name).
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.parse().ok()
    }
}

/// The candidates of one m-line of a fragment.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct FragmentMedia {
    /// Its `a=mid`, if given.
    pub mid: Option<String>,
    /// Its candidates, in order.
    pub candidates: Vec<Candidate>,
    /// Whether it says `a=end-of-candidates`.
    pub end_of_candidates: bool,
}

/// A parsed `application/trickle-ice-sdpfrag` body.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TrickleFragment {
    /// `a=ice-ufrag`, if given (a new one means an ICE restart).
    pub ufrag: Option<String>,
    /// `a=ice-pwd`, if given.
    pub pwd: Option<String>,
    /// Candidates written before any `m=` line (some clients omit it).
    pub session_candidates: Vec<Candidate>,
    /// `a=end-of-candidates` before any `m=` line: for all m-lines.
    pub end_of_candidates: bool,
    /// Each `m=` section in order.
    pub media: Vec<FragmentMedia>,
}

impl TrickleFragment {
    /// Parses a fragment. Lines other than `m=`, `a=mid`, `a=ice-ufrag`, `a=ice-pwd`,
    /// `a=candidate` and `a=end-of-candidates` are ignored (`a=ice-options`, `c=`, ...).
    pub fn parse(text: &str) -> Result<TrickleFragment, FragmentError> {
        if text.len() > MAX_FRAGMENT_LEN {
            return Err(FragmentError::TooLarge { len: text.len() });
        }
        if text.trim().is_empty() {
            return Err(FragmentError::Empty);
        }
        let mut frag = TrickleFragment::default();
        let mut count = 0usize;
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            let bytes = line.as_bytes();
            if bytes.len() < 2 || bytes[1] != b'=' || !bytes[0].is_ascii_lowercase() {
                return Err(FragmentError::MalformedLine { line: line_no });
            }
            let value = &line[2..];
            if bytes[0] == b'm' {
                frag.media.push(FragmentMedia::default());
                continue;
            }
            if bytes[0] != b'a' {
                continue;
            }
            let (key, val) = match value.split_once(':') {
                Some((k, v)) => (k, Some(v.trim())),
                None => (value, None),
            };
            match (key, val) {
                ("ice-ufrag", Some(v)) => {
                    if !valid_ufrag(v) {
                        return Err(FragmentError::InvalidIceCredentials {
                            attribute: "ice-ufrag",
                        });
                    }
                    frag.ufrag = Some(v.to_owned());
                }
                ("ice-pwd", Some(v)) => {
                    if !valid_pwd(v) {
                        return Err(FragmentError::InvalidIceCredentials {
                            attribute: "ice-pwd",
                        });
                    }
                    frag.pwd = Some(v.to_owned());
                }
                ("ice-ufrag" | "ice-pwd", None) => {
                    return Err(FragmentError::MalformedLine { line: line_no })
                }
                ("mid", Some(v)) => {
                    if let Some(m) = frag.media.last_mut() {
                        m.mid = Some(v.to_owned());
                    }
                }
                ("candidate", v) => {
                    let c = v
                        .and_then(Candidate::parse)
                        .ok_or(FragmentError::InvalidCandidate { line: line_no })?;
                    count += 1;
                    if count > MAX_FRAGMENT_CANDIDATES {
                        return Err(FragmentError::TooManyCandidates);
                    }
                    match frag.media.last_mut() {
                        Some(m) => m.candidates.push(c),
                        None => frag.session_candidates.push(c),
                    }
                }
                ("end-of-candidates", _) => match frag.media.last_mut() {
                    Some(m) => m.end_of_candidates = true,
                    None => frag.end_of_candidates = true,
                },
                _ => {}
            }
        }
        Ok(frag)
    }

    /// Every candidate, with the mid of its m-line (`None` before any `m=` or without a mid).
    pub fn candidates(&self) -> impl Iterator<Item = (Option<&str>, &Candidate)> {
        self.session_candidates.iter().map(|c| (None, c)).chain(
            self.media
                .iter()
                .flat_map(|m| m.candidates.iter().map(move |c| (m.mid.as_deref(), c))),
        )
    }

    /// Whether the fragment ends gathering (session-level or on any m-line).
    pub fn ends_candidates(&self) -> bool {
        self.end_of_candidates || self.media.iter().any(|m| m.end_of_candidates)
    }
}

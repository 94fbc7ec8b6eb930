//! The offer as corecast reads it: what the `sdp` crate parsed, reduced to what WHEP
//! negotiation needs (credentials, fingerprint, setup role, BUNDLE, and per m-line its mid,
//! kind, direction, rtcp-mux and codecs).
//!
//! Codecs are read per m-line from that m-line's `rtpmap`/`fmtp`/`rtcp-fb` attributes rather
//! than with the crate's `SessionDescription::get_codec_for_payload_type`, which merges every
//! m-line's attributes into one map keyed by payload type (wrong when two m-lines reuse a
//! number, as unbundled offers may).

use std::fmt;
use std::io::Cursor;

use sdp::description::media::MediaDescription;
use sdp::description::session::SessionDescription;

use super::credentials::{valid_pwd, valid_ufrag, Fingerprint, FingerprintError, IceCredentials};
use super::error::OfferError;
use super::{MAX_MEDIA, MAX_OFFER_LEN};

/// What an m-line carries (`m=audio`, `m=video`, anything else).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaKind {
    /// `m=audio`.
    Audio,
    /// `m=video`.
    Video,
    /// Any other media (`application` for data channels, `text`, ...).
    Other(String),
}

impl MediaKind {
    /// The name `m=` writes.
    pub fn as_str(&self) -> &str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Other(name) => name,
        }
    }
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The offerer's direction on an m-line (RFC 8866 §6.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `a=sendrecv` (the default when none is written).
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`: what a WHEP viewer offers.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// Whether the offerer will receive on this m-line, so corecast can send on it.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// The offerer's DTLS role (`a=setup`, RFC 4145 / RFC 8842). `passive` is refused at parse time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupRole {
    /// `actpass`: the offerer lets the answerer choose; corecast chooses passive.
    ActPass,
    /// `active`: the offerer will be the DTLS client.
    Active,
}

/// One payload type an m-line offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferedCodec {
    /// The payload type number, as the offer numbers it (the answer keeps it).
    pub payload_type: u8,
    /// The encoding name as written (`H264`, `VP8`, `opus`, `rtx`, ...).
    pub name: String,
    /// The RTP clock rate.
    pub clock_rate: u32,
    /// The channel count for audio (`opus/48000/2` → `Some(2)`).
    pub channels: Option<u16>,
    /// `a=fmtp` parameters in order, keys as written. A parameter without `=` has an empty
    /// value.
    pub fmtp: Vec<(String, String)>,
    /// `a=rtcp-fb` values for this payload type (and the m-line's `*` ones): `nack`,
    /// `nack pli`, `ccm fir`, `transport-cc`, ...
    pub rtcp_fb: Vec<String>,
}

impl OfferedCodec {
    /// The value of fmtp parameter `key` (ASCII case ignored, as RFC 6184 §8.1 asks of its
    /// names).
    pub fn fmtp_param(&self, key: &str) -> Option<&str> {
        self.fmtp
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the encoding name is `name`, ASCII case ignored.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// One m-line of the offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferedMedia {
    /// `a=mid`, if written.
    pub mid: Option<String>,
    /// What it carries.
    pub kind: MediaKind,
    /// The port on `m=` (0: the offerer itself rejects it, or it is `bundle-only`).
    pub port: u16,
    /// Whether `a=bundle-only` is present (RFC 8843: port 0 yet to be answered in the BUNDLE).
    pub bundle_only: bool,
    /// The transport protocol, e.g. `UDP/TLS/RTP/SAVPF`.
    pub proto: String,
    /// The formats on `m=` as written (payload types for RTP; the answer of a rejected m-line
    /// repeats them).
    pub formats: Vec<String>,
    /// The offerer's direction.
    pub direction: Direction,
    /// Whether `a=rtcp-mux` is present.
    pub rtcp_mux: bool,
    /// The codecs, in the order of `m=`'s formats (the offerer's preference). Formats that are
    /// not payload type numbers, or have neither an `rtpmap` nor a static assignment, are left
    /// out.
    pub codecs: Vec<OfferedCodec>,
}

impl OfferedMedia {
    /// Whether corecast could send RTP on it: the offerer receives, the port is open (or the
    /// m-line is `bundle-only`), and the profile is DTLS-SRTP with feedback over UDP
    /// (`UDP/TLS/RTP/SAVPF`; `TCP/DTLS/RTP/SAVPF` is not served: ICE-lite on UDP only).
    pub fn can_receive_rtp(&self) -> bool {
        self.direction.receives()
            && (self.port != 0 || self.bundle_only)
            && self.proto.eq_ignore_ascii_case("UDP/TLS/RTP/SAVPF")
    }
}

/// An SDP offer from a WHEP viewer, as [`Offer::parse`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    /// The offerer's ICE credentials (session level, or else the first m-line's).
    pub ice: IceCredentials,
    /// Its fingerprints of algorithms corecast knows, at least one `sha-256`.
    pub fingerprints: Vec<Fingerprint>,
    /// Its DTLS role: corecast answers passive.
    pub setup: SetupRole,
    /// The mids of `a=group:BUNDLE`, in order; empty when there is no BUNDLE group.
    pub bundle: Vec<String>,
    /// Every m-line, in order.
    pub media: Vec<OfferedMedia>,
}

impl Offer {
    /// Parses an `application/sdp` offer, refusing what corecast can never answer (too large,
    /// not SDP, too many m-lines, no ICE credentials, no `sha-256` fingerprint, `setup:passive`).
    pub fn parse(text: &str) -> Result<Offer, OfferError> {
        if text.len() > MAX_OFFER_LEN {
            return Err(OfferError::TooLarge { len: text.len() });
        }
        if text.trim().is_empty() {
            return Err(OfferError::Empty);
        }
        let session =
            SessionDescription::unmarshal(&mut Cursor::new(text.as_bytes())).map_err(|e| {
                // The crate's message can quote the whole offending line; a 4xx needs less.
                OfferError::Malformed {
                    detail: e.to_string().chars().take(200).collect(),
                }
            })?;
        if session.media_descriptions.is_empty() {
            return Err(OfferError::Malformed {
                detail: "no m-line".into(),
            });
        }
        if session.media_descriptions.len() > MAX_MEDIA {
            return Err(OfferError::TooManyMedia {
                count: session.media_descriptions.len(),
            });
        }
        let first = &session.media_descriptions[0];
        let ice = ice_credentials(&session, first)?;
        let fingerprints = fingerprints(&session)?;
        let setup = setup_role(&session, first)?;
        let bundle = session
            .attributes
            .iter()
            .filter(|a| a.key == "group")
            .filter_map(|a| a.value.as_deref())
            .find_map(|v| {
                let mut words = v.split_ascii_whitespace();
                (words.next() == Some("BUNDLE")).then(|| words.map(str::to_owned).collect())
            })
            .unwrap_or_default();
        let media = session
            .media_descriptions
            .iter()
            .map(offered_media)
            .collect();
        Ok(Offer {
            ice,
            fingerprints,
            setup,
            bundle,
            media,
        })
    }

    /// The offerer's `sha-256` fingerprint ([`Offer::parse`] refuses offers without one).
    pub fn sha256_fingerprint(&self) -> Option<&Fingerprint> {
        self.fingerprints
            .iter()
            .find(|f| f.algorithm == super::HashAlgorithm::Sha256)
    }
}

/// An attribute's value at media level, else at session level.
fn media_or_session<'a>(
    session: &'a SessionDescription,
    media: &'a MediaDescription,
    key: &str,
) -> Option<&'a str> {
    media
        .attributes
        .iter()
        .find(|a| a.key == key)
        .or_else(|| session.attributes.iter().find(|a| a.key == key))
        .map(|a| a.value.as_deref().unwrap_or("").trim())
}

fn ice_credentials(
    session: &SessionDescription,
    first: &MediaDescription,
) -> Result<IceCredentials, OfferError> {
    let (Some(ufrag), Some(pwd)) = (
        media_or_session(session, first, "ice-ufrag"),
        media_or_session(session, first, "ice-pwd"),
    ) else {
        return Err(OfferError::MissingIceCredentials);
    };
    if !valid_ufrag(ufrag) {
        return Err(OfferError::InvalidIceCredentials {
            attribute: "ice-ufrag",
        });
    }
    if !valid_pwd(pwd) {
        return Err(OfferError::InvalidIceCredentials {
            attribute: "ice-pwd",
        });
    }
    Ok(IceCredentials {
        ufrag: ufrag.to_owned(),
        pwd: pwd.to_owned(),
    })
}

/// Every `a=fingerprint` at session and media level, deduplicated; unknown algorithms skipped.
fn fingerprints(session: &SessionDescription) -> Result<Vec<Fingerprint>, OfferError> {
    let values = session
        .attributes
        .iter()
        .chain(
            session
                .media_descriptions
                .iter()
                .flat_map(|m| &m.attributes),
        )
        .filter(|a| a.key == "fingerprint")
        .map(|a| a.value.as_deref().unwrap_or(""));
    let mut out: Vec<Fingerprint> = Vec::new();
    let mut any = false;
    for value in values {
        any = true;
        match value.parse::<Fingerprint>() {
            Ok(f) if !out.contains(&f) => out.push(f),
            Ok(_) | Err(FingerprintError::UnknownAlgorithm) => {}
            Err(_) => {
                return Err(OfferError::InvalidFingerprint {
                    value: value.chars().take(200).collect(),
                })
            }
        }
    }
    if !any {
        return Err(OfferError::MissingFingerprint);
    }
    if !out
        .iter()
        .any(|f| f.algorithm == super::HashAlgorithm::Sha256)
    {
        return Err(OfferError::NoSha256Fingerprint);
    }
    Ok(out)
}

fn setup_role(
    session: &SessionDescription,
    first: &MediaDescription,
) -> Result<SetupRole, OfferError> {
    match media_or_session(session, first, "setup") {
        None => Err(OfferError::MissingSetup),
        Some(v) if v.eq_ignore_ascii_case("actpass") => Ok(SetupRole::ActPass),
        Some(v) if v.eq_ignore_ascii_case("active") => Ok(SetupRole::Active),
        Some(v) if v.eq_ignore_ascii_case("passive") => Err(OfferError::SetupPassive),
        Some(v) => Err(OfferError::InvalidSetup {
            value: v.chars().take(64).collect(),
        }),
    }
}

fn offered_media(m: &MediaDescription) -> OfferedMedia {
    let kind = match m.media_name.media.as_str() {
        "audio" => MediaKind::Audio,
        "video" => MediaKind::Video,
        other => MediaKind::Other(other.to_owned()),
    };
    let mut direction = Direction::SendRecv;
    for a in &m.attributes {
        direction = match a.key.as_str() {
            "sendrecv" => Direction::SendRecv,
            "sendonly" => Direction::SendOnly,
            "recvonly" => Direction::RecvOnly,
            "inactive" => Direction::Inactive,
            _ => continue,
        };
    }
    OfferedMedia {
        mid: m
            .attributes
            .iter()
            .find(|a| a.key == "mid")
            .and_then(|a| a.value.as_deref())
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty()),
        kind,
        // The crate parses the port as u16 and stores it widened.
        port: u16::try_from(m.media_name.port.value).unwrap_or(0),
        proto: m.media_name.protos.join("/"),
        formats: m.media_name.formats.clone(),
        direction,
        rtcp_mux: m.attributes.iter().any(|a| a.key == "rtcp-mux"),
        bundle_only: m.attributes.iter().any(|a| a.key == "bundle-only"),
        codecs: codecs(m),
    }
}

/// RFC 3551's static payload types that WebRTC stacks still offer without an `rtpmap`.
fn static_codec(pt: u8) -> Option<(&'static str, u32)> {
    match pt {
        0 => Some(("PCMU", 8000)),
        8 => Some(("PCMA", 8000)),
        9 => Some(("G722", 8000)),
        _ => None,
    }
}

fn codecs(m: &MediaDescription) -> Vec<OfferedCodec> {
    let mut out: Vec<OfferedCodec> = Vec::new();
    for format in &m.media_name.formats {
        let Ok(pt) = format.parse::<u8>() else {
            continue;
        };
        if pt > 127 || out.iter().any(|c| c.payload_type == pt) {
            continue;
        }
        let rtpmap = values_for(m, "rtpmap", format)
            .next()
            .and_then(parse_rtpmap);
        let (name, clock_rate, channels) = match rtpmap {
            Some(r) => r,
            None => match static_codec(pt) {
                Some((name, rate)) => (name.to_owned(), rate, None),
                None => continue,
            },
        };
        let fmtp = values_for(m, "fmtp", format)
            .next()
            .map(parse_fmtp)
            .unwrap_or_default();
        let rtcp_fb = values_for(m, "rtcp-fb", format)
            .chain(values_for(m, "rtcp-fb", "*"))
            .map(|v| v.split_ascii_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|v| !v.is_empty())
            .collect();
        out.push(OfferedCodec {
            payload_type: pt,
            name,
            clock_rate,
            channels,
            fmtp,
            rtcp_fb,
        });
    }
    out
}

/// The rest of each `a=KEY:FORMAT rest` for this format.
fn values_for<'a>(
    m: &'a MediaDescription,
    key: &'a str,
    format: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    m.attributes
        .iter()
        .filter(move |a| a.key == key)
        .filter_map(|a| a.value.as_deref())
        .filter_map(move |v| {
            let v = v.trim_start();
            let (pt, rest) = v.split_once(|c: char| c.is_ascii_whitespace())?;
            (pt == format).then_some(rest.trim())
        })
}

/// `H264/90000`, `opus/48000/2` → name, clock rate, channels.
fn parse_rtpmap(value: &str) -> Option<(String, u32, Option<u16>)> {
    let mut parts = value.split('/');
    let name = parts.next()?.trim();
    let clock_rate = parts.next()?.trim().parse::<u32>().ok()?;
    let channels = match parts.next() {
        Some(c) => Some(c.trim().parse::<u16>().ok()?),
        None => None,
    };
    if name.is_empty() || clock_rate == 0 || parts.next().is_some() {
        return None;
    }
    Some((name.to_owned(), clock_rate, channels))
}

/// `a=b;c=d` → `[(a, b), (c, d)]` (RFC 8866's format-specific parameters as every WebRTC
/// stack writes them).
fn parse_fmtp(value: &str) -> Vec<(String, String)> {
    value
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.trim().to_owned(), v.trim().to_owned()),
            None => (p.to_owned(), String::new()),
        })
        .collect()
}

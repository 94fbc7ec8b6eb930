//! Which of the offer's m-lines corecast answers, with which payload type, for a channel that
//! sends at most one video and one audio source.
//!
//! Codec rules, kept simple on purpose: H.264 by profile (libwebrtc's classification),
//! packetization-mode and level (see [`can_receive`](super::h264::can_receive)); VP8, H.265 and
//! AV1 by name and clock rate (corecast forwards what the source sends and does not know more
//! of its stream than the codec); VP9 by name, clock rate and `profile-id` 0 (its default),
//! since corecast's VP9 sources are profile 0; Opus by name, 48000 Hz and 2 channels. RTX, RED
//! and FlexFEC/ulpfec payload types are never chosen.

use corecast_engine::Codec;

use super::credentials::{Fingerprint, IceCredentials};
use super::error::OfferError;
use super::h264::{can_receive, ProfileLevelId, DEFAULT_PROFILE_LEVEL_ID};
use super::offer::{MediaKind, Offer, OfferedCodec, OfferedMedia, SetupRole};

/// What the source behind a channel's video sends, for H.264.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct H264Source {
    /// The three `profile-level-id` bytes of its SPS (profile_idc, constraint flags,
    /// level_idc).
    pub profile_level_id: [u8; 3],
    /// Its packetization-mode (0: single NAL, 1: non-interleaved).
    pub packetization_mode: u8,
}

/// The channel's video.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WantedVideo {
    /// The source's codec.
    pub codec: Codec,
    /// For H.264: what the source sends, or `None` while not known yet (then corecast answers
    /// packetization-mode 1 with the most compatible profile the offer has).
    pub h264: Option<H264Source>,
}

/// What a channel sends, to negotiate an offer against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Wanted {
    /// Its video, if it has one.
    pub video: Option<WantedVideo>,
    /// Whether it has audio (Opus 48000/2, the only audio codec corecast forwards).
    pub audio: bool,
}

/// Which `rtcp-fb` the offer lists for the chosen payload type, of those corecast honours
/// (`transport-cc` and `goog-remb` are not implemented and never answered).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Feedback {
    /// `nack`: generic NACK (RFC 4585).
    pub nack: bool,
    /// `nack pli`: picture loss indication.
    pub pli: bool,
    /// `ccm fir`: full intra request (RFC 5104).
    pub fir: bool,
}

impl Feedback {
    fn of(codec: &OfferedCodec) -> Feedback {
        let has = |v: &str| codec.rtcp_fb.iter().any(|f| f.eq_ignore_ascii_case(v));
        Feedback {
            nack: has("nack"),
            pli: has("nack pli"),
            fir: has("ccm fir"),
        }
    }

    /// The `a=rtcp-fb` values to answer, in a fixed order.
    pub fn values(self) -> impl Iterator<Item = &'static str> {
        [
            (self.nack, "nack"),
            (self.pli, "nack pli"),
            (self.fir, "ccm fir"),
        ]
        .into_iter()
        .filter_map(|(on, v)| on.then_some(v))
    }
}

/// An m-line corecast sends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptedMedia {
    /// Its mid (in the BUNDLE group).
    pub mid: String,
    /// Audio or video.
    pub kind: MediaKind,
    /// The offer's payload type number for the codec.
    pub payload_type: u8,
    /// The codec sent.
    pub codec: Codec,
    /// The encoding name as the offer wrote it (the answer's `rtpmap`).
    pub encoding_name: String,
    /// The RTP clock rate.
    pub clock_rate: u32,
    /// Audio channels (`Some(2)` for Opus).
    pub channels: Option<u16>,
    /// The `a=fmtp` value to answer, if any.
    pub fmtp: Option<String>,
    /// The feedback both sides use.
    pub feedback: Feedback,
    /// The offer's RFC 4588 retransmission payload type for this codec (`rtx` with
    /// `apt=payload_type`), offered with generic NACK: the answer accepts it when the sender has
    /// a retransmission stream to give it ([`Answer::video_rtx_ssrc`](super::Answer)).
    pub rtx_payload_type: Option<u8>,
}

/// An m-line corecast answers with port 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedMedia {
    /// Its mid, if the offer gave one.
    pub mid: Option<String>,
    /// The media name of `m=`, repeated in the answer.
    pub kind: MediaKind,
    /// The protocol of `m=`, repeated.
    pub proto: String,
    /// The formats of `m=`, repeated.
    pub formats: Vec<String>,
}

/// The answer to one offered m-line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaAnswer {
    /// corecast sends on it.
    Accepted(AcceptedMedia),
    /// Refused (port 0).
    Rejected(RejectedMedia),
}

/// The outcome of [`negotiate`]: one answer per offered m-line, in order, and the remote side's
/// ICE credentials and fingerprint for the ICE and DTLS code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The offerer's ICE credentials (STUN USERNAME is `local:remote`).
    pub remote_ice: IceCredentials,
    /// The offerer's `sha-256` fingerprint, to check its DTLS certificate against.
    pub remote_fingerprint: Fingerprint,
    /// The offerer's DTLS role; corecast is passive (the DTLS server) either way.
    pub remote_setup: SetupRole,
    /// One entry per offered m-line, in the offer's order.
    pub media: Vec<MediaAnswer>,
}

impl Negotiated {
    /// The m-lines corecast sends on.
    pub fn accepted(&self) -> impl Iterator<Item = &AcceptedMedia> {
        self.media.iter().filter_map(|m| match m {
            MediaAnswer::Accepted(a) => Some(a),
            MediaAnswer::Rejected(_) => None,
        })
    }

    /// The accepted video m-line, if any.
    pub fn video(&self) -> Option<&AcceptedMedia> {
        self.accepted().find(|m| m.kind == MediaKind::Video)
    }

    /// The accepted audio m-line, if any.
    pub fn audio(&self) -> Option<&AcceptedMedia> {
        self.accepted().find(|m| m.kind == MediaKind::Audio)
    }
}

/// Answers `offer` for a channel sending `wanted`.
pub fn negotiate(offer: &Offer, wanted: &Wanted) -> Result<Negotiated, OfferError> {
    let mut media = Vec::with_capacity(offer.media.len());
    let mut have_video = false;
    let mut have_audio = false;
    // Whether the offer could receive a kind the channel has, even if no codec fits.
    let mut video_receivable = false;
    let mut audio_receivable = false;
    for (index, m) in offer.media.iter().enumerate() {
        let chosen = match (&m.kind, wanted.video, wanted.audio) {
            (MediaKind::Video, Some(v), _) if !have_video && m.can_receive_rtp() => {
                video_receivable = true;
                choose_video(m, v)
            }
            (MediaKind::Audio, _, true) if !have_audio && m.can_receive_rtp() => {
                audio_receivable = true;
                choose_audio(m)
            }
            _ => None,
        };
        let Some(chosen) = chosen else {
            media.push(MediaAnswer::Rejected(RejectedMedia {
                mid: m.mid.clone(),
                kind: m.kind.clone(),
                proto: m.proto.clone(),
                formats: m.formats.clone(),
            }));
            continue;
        };
        let mid = m.mid.clone().ok_or(OfferError::MissingMid { index })?;
        if offer.bundle.is_empty() {
            return Err(OfferError::MissingBundle);
        }
        if !offer.bundle.contains(&mid) {
            return Err(OfferError::NotBundled { mid });
        }
        if !m.rtcp_mux {
            return Err(OfferError::MissingRtcpMux { mid });
        }
        match m.kind {
            MediaKind::Video => have_video = true,
            _ => have_audio = true,
        }
        let chosen = AcceptedMedia {
            mid,
            kind: m.kind.clone(),
            ..chosen
        };
        let rtx_payload_type = offered_rtx(m, &chosen);
        media.push(MediaAnswer::Accepted(AcceptedMedia {
            rtx_payload_type,
            ..chosen
        }));
    }
    if let (Some(v), true, false) = (wanted.video, video_receivable, have_video) {
        return Err(OfferError::NoCommonCodec {
            kind: MediaKind::Video,
            sends: describe_video(v),
        });
    }
    if audio_receivable && !have_audio {
        return Err(OfferError::NoCommonCodec {
            kind: MediaKind::Audio,
            sends: "Opus (48000 Hz, 2 channels)".into(),
        });
    }
    if !have_video && !have_audio {
        return Err(OfferError::NothingToSend);
    }
    Ok(Negotiated {
        remote_ice: offer.ice.clone(),
        remote_fingerprint: offer
            .sha256_fingerprint()
            .ok_or(OfferError::NoSha256Fingerprint)?
            .clone(),
        remote_setup: offer.setup,
        media,
    })
}

/// What the channel's video is, for error messages.
fn describe_video(v: WantedVideo) -> String {
    match (v.codec, v.h264) {
        (Codec::H264, Some(h)) => format!(
            "H.264 (profile-level-id {:02x}{:02x}{:02x}, packetization-mode {})",
            h.profile_level_id[0],
            h.profile_level_id[1],
            h.profile_level_id[2],
            h.packetization_mode
        ),
        (Codec::H264, None) => "H.264 (packetization-mode 1)".into(),
        (Codec::Vp8, _) => "VP8".into(),
        (Codec::Vp9, _) => "VP9 (profile-id 0)".into(),
        (Codec::H265, _) => "H.265".into(),
        (Codec::Av1, _) => "AV1".into(),
        (Codec::Opus, _) => "Opus".into(),
    }
}

/// An [`AcceptedMedia`] for `codec` with mid and kind still to fill in.
fn accepted(codec: &OfferedCodec, sent: Codec, fmtp: Option<String>) -> AcceptedMedia {
    AcceptedMedia {
        mid: String::new(),
        kind: MediaKind::Video,
        payload_type: codec.payload_type,
        codec: sent,
        encoding_name: codec.name.clone(),
        clock_rate: codec.clock_rate,
        channels: codec.channels,
        fmtp,
        feedback: Feedback::of(codec),
        rtx_payload_type: None,
    }
}

/// The offer's `rtx` payload type for `chosen` (RFC 4588 §8.6: `apt` names the payload type it
/// retransmits), when `chosen` is a video codec with generic NACK: without NACK nothing asks.
fn offered_rtx(m: &OfferedMedia, chosen: &AcceptedMedia) -> Option<u8> {
    if chosen.kind != MediaKind::Video || !chosen.feedback.nack {
        return None;
    }
    let apt = chosen.payload_type.to_string();
    m.codecs
        .iter()
        .find(|c| {
            c.is("rtx") && c.clock_rate == chosen.clock_rate && c.fmtp_param("apt") == Some(&apt)
        })
        .map(|c| c.payload_type)
}

/// The offered fmtp, written back as is.
fn echo_fmtp(codec: &OfferedCodec) -> Option<String> {
    (!codec.fmtp.is_empty()).then(|| {
        codec
            .fmtp
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    k.clone()
                } else {
                    format!("{k}={v}")
                }
            })
            .collect::<Vec<_>>()
            .join(";")
    })
}

fn choose_audio(m: &OfferedMedia) -> Option<AcceptedMedia> {
    let codec = m
        .codecs
        .iter()
        .find(|c| c.is("opus") && c.clock_rate == 48_000 && c.channels == Some(2))?;
    Some(accepted(codec, Codec::Opus, echo_fmtp(codec)))
}

fn choose_video(m: &OfferedMedia, wanted: WantedVideo) -> Option<AcceptedMedia> {
    let by_name = |name: &'static str| {
        m.codecs
            .iter()
            .filter(move |c| c.is(name) && c.clock_rate == 90_000)
    };
    let codec = wanted.codec;
    match codec {
        Codec::H264 => choose_h264(m, wanted.h264),
        Codec::Vp8 => by_name("VP8").next().map(|c| accepted(c, codec, None)),
        Codec::Vp9 => by_name("VP9")
            .find(|c| c.fmtp_param("profile-id").unwrap_or("0") == "0")
            .map(|c| accepted(c, codec, Some("profile-id=0".into()))),
        Codec::H265 => by_name("H265")
            .next()
            .map(|c| accepted(c, codec, echo_fmtp(c))),
        Codec::Av1 => by_name("AV1")
            .next()
            .map(|c| accepted(c, codec, echo_fmtp(c))),
        Codec::Opus => None,
    }
}

/// An offered H.264 payload type, classified.
struct OfferedH264<'a> {
    codec: &'a OfferedCodec,
    profile_level_id: ProfileLevelId,
    packetization_mode: u8,
    asymmetry_allowed: bool,
}

fn offered_h264(m: &OfferedMedia) -> impl Iterator<Item = OfferedH264<'_>> {
    m.codecs
        .iter()
        .filter(|c| c.is("H264") && c.clock_rate == 90_000)
        .filter_map(|c| {
            let profile_level_id = match c.fmtp_param("profile-level-id") {
                Some(hex) => ProfileLevelId::parse(hex)?,
                None => ProfileLevelId::from_bytes(DEFAULT_PROFILE_LEVEL_ID)?,
            };
            let packetization_mode = match c.fmtp_param("packetization-mode") {
                Some(v) => v.parse().ok()?,
                None => 0,
            };
            Some(OfferedH264 {
                codec: c,
                profile_level_id,
                packetization_mode,
                asymmetry_allowed: c.fmtp_param("level-asymmetry-allowed") == Some("1"),
            })
        })
}

fn choose_h264(m: &OfferedMedia, source: Option<H264Source>) -> Option<AcceptedMedia> {
    let (chosen, answered_id, mode) = match source {
        Some(s) => {
            let sent = ProfileLevelId::from_bytes(s.profile_level_id)?;
            let chosen = offered_h264(m).find(|o| {
                o.packetization_mode == s.packetization_mode
                    && can_receive(o.profile_level_id, o.asymmetry_allowed, sent)
            })?;
            (chosen, sent, s.packetization_mode)
        }
        None => {
            // The first offered of the most compatible profile (Rust's min_by_key keeps the
            // first of equals).
            let chosen = offered_h264(m)
                .filter(|o| o.packetization_mode == 1)
                .min_by_key(|o| o.profile_level_id.profile.compatibility_rank())?;
            let id = chosen.profile_level_id;
            (chosen, id, 1)
        }
    };
    let asymmetry = if chosen.asymmetry_allowed {
        "level-asymmetry-allowed=1;"
    } else {
        ""
    };
    let fmtp = format!(
        "{asymmetry}packetization-mode={mode};profile-level-id={}",
        answered_id.hex()
    );
    Some(accepted(chosen.codec, Codec::H264, Some(fmtp)))
}

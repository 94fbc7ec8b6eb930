//! A WHEP offer negotiated against a channel's sources, and the answer the node gives: the
//! node's side of [`corecast_webrtc::sdp`], in the node's types.

use std::net::SocketAddr;
use std::sync::Arc;

use corecast_engine::{Codec, TrackId};
use corecast_webrtc::ice::Credentials;
use corecast_webrtc::sdp::{
    self, Answer, Fingerprint, H264Source, IceCredentials, Negotiated, Offer, OfferError, Wanted,
    WantedVideo,
};

use crate::control::ViewerTrack;

/// What the channel's video source sends, as far as negotiation cares.
pub struct SentVideo {
    pub codec: Codec,
    /// Its parameter sets known so far (configured or seen), for H.264's profile and level.
    pub parameter_sets: Arc<[Vec<u8>]>,
}

/// One track the answer accepts: its codec and the offer's payload type for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NegotiatedTrack {
    pub codec: Codec,
    pub payload_type: u8,
    /// The offer's RFC 4588 payload type for it, if it offered one (video with NACK only).
    pub rtx_payload_type: Option<u8>,
}

/// An offer negotiated: the tracks to make (video first), and what the answer is written from.
pub struct Negotiation {
    pub tracks: Vec<NegotiatedTrack>,
    /// The certificate fingerprint the viewer's DTLS must present.
    pub fingerprint: Fingerprint,
    /// The viewer's ICE username fragment (the second half of its STUN USERNAME).
    pub remote_ufrag: String,
    negotiated: Negotiated,
}

/// The H.264 `profile-level-id` of the first SPS among `sets` (the three bytes after the NAL
/// header: profile_idc, constraint flags, level_idc).
fn h264_profile_level_id(sets: &[Vec<u8>]) -> Option<[u8; 3]> {
    sets.iter()
        .find(|nal| nal.first().is_some_and(|h| h & 0x1f == 7) && nal.len() >= 4)
        .map(|sps| [sps[1], sps[2], sps[3]])
}

/// Parse `offer` and negotiate it against a channel sending `video` and `audio`.
pub fn negotiate(
    offer: &str,
    video: Option<&SentVideo>,
    audio: Option<Codec>,
) -> Result<Negotiation, OfferError> {
    let offer = Offer::parse(offer)?;
    let wanted = Wanted {
        video: video.map(|v| WantedVideo {
            codec: v.codec,
            h264: (v.codec == Codec::H264)
                .then(|| h264_profile_level_id(&v.parameter_sets))
                .flatten()
                // The node forwards FU-A and STAP-A as sources send them: packetization-mode 1.
                .map(|profile_level_id| H264Source {
                    profile_level_id,
                    packetization_mode: 1,
                }),
        }),
        audio: audio == Some(Codec::Opus),
    };
    let negotiated = sdp::negotiate(&offer, &wanted)?;
    let mut tracks = Vec::new();
    for m in negotiated.video().into_iter().chain(negotiated.audio()) {
        tracks.push(NegotiatedTrack {
            codec: m.codec,
            payload_type: m.payload_type,
            rtx_payload_type: m.rtx_payload_type,
        });
    }
    Ok(Negotiation {
        tracks,
        fingerprint: negotiated.remote_fingerprint.clone(),
        remote_ufrag: negotiated.remote_ice.ufrag.clone(),
        negotiated,
    })
}

/// The answer to viewer `id`'s offer: its `tracks` (video first, as negotiated) from
/// `candidate`, with the node's `fingerprint` and the viewer's local ICE credentials.
pub fn answer(
    n: &Negotiation,
    local: &Credentials,
    fingerprint: &Fingerprint,
    candidate: SocketAddr,
    tracks: &[ViewerTrack],
    id: TrackId,
) -> String {
    let ssrc_of = |audio: bool| {
        tracks
            .iter()
            .find(|t| t.codec.is_audio() == audio)
            .map_or(0, |t| t.ssrc.0)
    };
    let cname = format!("corecast-{}", id.0);
    let local = IceCredentials {
        ufrag: local.ufrag.clone(),
        pwd: local.pwd.clone(),
    };
    Answer {
        negotiated: &n.negotiated,
        local_ice: &local,
        local_fingerprint: fingerprint,
        candidates: &[candidate],
        video_ssrc: ssrc_of(false),
        video_rtx_ssrc: tracks
            .iter()
            .find(|t| !t.codec.is_audio())
            .and_then(|t| t.rtx)
            .map(|r| r.ssrc.0),
        audio_ssrc: ssrc_of(true),
        cname: &cname,
        stream_id: &cname,
        session_id: u64::from(id.0),
        session_version: 1,
    }
    .render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_level_id_is_read_from_the_sps() {
        let sps = vec![0x67, 0x42, 0xc0, 0x1f, 0xda];
        let pps = vec![0x68, 0xce];
        assert_eq!(
            h264_profile_level_id(&[pps.clone(), sps]),
            Some([0x42, 0xc0, 0x1f])
        );
        assert_eq!(h264_profile_level_id(&[pps]), None);
        assert_eq!(h264_profile_level_id(&[vec![0x67, 0x42]]), None);
    }
}

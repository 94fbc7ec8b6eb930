//! `Offer::parse` and `negotiate` on any text (the body of a WHEP `POST`), against a channel
//! sending H.264 (known and not yet known), VP8 or VP9 with Opus: never a panic; every refusal
//! has a snake_case reason and a message; every negotiation answers each m-line once, accepts
//! at most one of each kind, and renders an answer the `sdp` crate parses back with the
//! offer's payload types and a BUNDLE of exactly the accepted mids. The same text as a trickle
//! ICE `PATCH` body must not panic either.
#![no_main]

use std::io::Cursor;
use std::net::SocketAddr;

use corecast_engine::Codec;
use corecast_webrtc::sdp::{
    negotiate, Answer, Fingerprint, H264Source, IceCredentials, MediaKind, Offer, TrickleFragment,
    Wanted, WantedVideo,
};
use libfuzzer_sys::fuzz_target;
use sdp::description::session::SessionDescription;

fn check_reason(reason: &str, message: String) {
    assert!(!reason.is_empty() && !message.is_empty());
    assert!(reason
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
}

fn wanted() -> [Wanted; 4] {
    let video = |codec, h264| Wanted {
        video: Some(WantedVideo { codec, h264 }),
        audio: true,
    };
    [
        video(
            Codec::H264,
            Some(H264Source {
                profile_level_id: [0x42, 0xe0, 0x1f],
                packetization_mode: 1,
            }),
        ),
        video(Codec::H264, None),
        video(Codec::Vp8, None),
        Wanted {
            video: Some(WantedVideo {
                codec: Codec::Vp9,
                h264: None,
            }),
            audio: false,
        },
    ]
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = TrickleFragment::parse(&text) {
        check_reason(e.reason(), e.to_string());
    }
    let offer = match Offer::parse(&text) {
        Ok(o) => o,
        Err(e) => return check_reason(e.reason(), e.to_string()),
    };
    let local_ice = IceCredentials {
        ufrag: "fuzz".into(),
        pwd: "0123456789abcdefghijkl".into(),
    };
    let fingerprint = Fingerprint::sha256([7; 32]);
    let candidates: [SocketAddr; 1] = ["192.0.2.1:5000".parse().unwrap()];
    for w in wanted() {
        let n = match negotiate(&offer, &w) {
            Ok(n) => n,
            Err(e) => {
                check_reason(e.reason(), e.to_string());
                continue;
            }
        };
        assert_eq!(n.media.len(), offer.media.len());
        let accepted: Vec<_> = n.accepted().collect();
        assert!(!accepted.is_empty());
        assert!(
            accepted
                .iter()
                .filter(|m| m.kind == MediaKind::Video)
                .count()
                <= 1
        );
        assert!(
            accepted
                .iter()
                .filter(|m| m.kind == MediaKind::Audio)
                .count()
                <= 1
        );
        let raw = Answer {
            negotiated: &n,
            local_ice: &local_ice,
            local_fingerprint: &fingerprint,
            candidates: &candidates,
            video_ssrc: 1,
            video_rtx_ssrc: Some(3),
            audio_ssrc: 2,
            cname: "fuzz",
            stream_id: "fuzz",
            session_id: 1,
            session_version: 1,
        }
        .render();
        let answer = SessionDescription::unmarshal(&mut Cursor::new(raw.as_bytes()))
            .unwrap_or_else(|e| panic!("our answer does not parse ({e}):\n{raw}"));
        let mids: Vec<&str> = accepted.iter().map(|m| m.mid.as_str()).collect();
        assert_eq!(
            answer.attribute("group").map(String::as_str),
            Some(format!("BUNDLE {}", mids.join(" ")).as_str())
        );
        for (m, offered) in answer.media_descriptions.iter().zip(&offer.media) {
            if m.media_name.port.value == 0 {
                continue;
            }
            let pt: u8 = m.media_name.formats[0].parse().unwrap();
            assert!(offered.codecs.iter().any(|c| c.payload_type == pt));
        }
    }
});

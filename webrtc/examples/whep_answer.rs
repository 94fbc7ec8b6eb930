//! Reads a WHEP offer on stdin and prints corecast's answer, for checking answers against
//! other stacks by hand (webrtc/tests/fixtures/aiortc_answer_check.py feeds it aiortc's offer).
//!
//! `cargo run -p corecast-webrtc --example whep_answer -- CODEC [PROFILE-LEVEL-ID] < offer.sdp`
//! (CODEC: vp8, vp9, h264, h265, av1; the channel also has Opus audio).

use std::io::Read;
use std::process::ExitCode;

use corecast_engine::Codec;
use corecast_webrtc::sdp::{
    negotiate, Answer, Fingerprint, H264Source, IceCredentials, Offer, Wanted, WantedVideo,
};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(codec) = args.next().as_deref().and_then(Codec::from_name) else {
        eprintln!("usage: whep_answer CODEC [PROFILE-LEVEL-ID] < offer.sdp");
        return ExitCode::from(2);
    };
    let h264 = args.next().and_then(|hex| {
        let b = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
        Some(H264Source {
            profile_level_id: [b(0)?, b(2)?, b(4)?],
            packetization_mode: 1,
        })
    });
    let mut text = String::new();
    if std::io::stdin().read_to_string(&mut text).is_err() {
        eprintln!("whep_answer: stdin is not UTF-8");
        return ExitCode::from(2);
    }
    let wanted = Wanted {
        video: Some(WantedVideo { codec, h264 }),
        audio: true,
    };
    let negotiated = match Offer::parse(&text).and_then(|o| negotiate(&o, &wanted)) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("whep_answer: {} ({})", e, e.reason());
            return ExitCode::from(1);
        }
    };
    let local_ice = IceCredentials {
        ufrag: "ccex".into(),
        pwd: "corecastexamplepassword0".into(),
    };
    // Any 32 bytes: aiortc checks the fingerprint only once DTLS runs.
    let fingerprint = Fingerprint::sha256(*b"corecast-example-fingerprint-32b");
    let candidates = [
        "127.0.0.1:40000".parse().unwrap(),
        "[::1]:40000".parse().unwrap(),
    ];
    print!(
        "{}",
        Answer {
            negotiated: &negotiated,
            local_ice: &local_ice,
            local_fingerprint: &fingerprint,
            candidates: &candidates,
            video_ssrc: 0x0c0c_0001,
            video_rtx_ssrc: None,
            audio_ssrc: 0x0c0c_0002,
            cname: "corecast",
            stream_id: "channel",
            session_id: 1,
            session_version: 1,
        }
        .render()
    );
    ExitCode::SUCCESS
}

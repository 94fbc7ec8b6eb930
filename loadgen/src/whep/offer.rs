//! The SDP offer one load-generator viewer POSTs: one receive-only m-line for the run's codec,
//! BUNDLE, rtcp-mux, its own ICE credentials, `a=setup:active` (the viewer is the DTLS client)
//! and the run's certificate fingerprint.

use std::fmt::Write as _;

use corecast_engine::Codec;
use corecast_webrtc::dtls::Fingerprint;
use rand::distr::{Alphanumeric, SampleString};

/// A viewer's ICE credentials (RFC 8839: ufrag at least 4 ice-chars, pwd at least 22).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewerIce {
    pub ufrag: String,
    pub pwd: String,
}

impl ViewerIce {
    /// Fresh random credentials (alphanumerics are ice-chars).
    pub fn random() -> ViewerIce {
        let mut rng = rand::rng();
        ViewerIce {
            ufrag: Alphanumeric.sample_string(&mut rng, 8),
            pwd: Alphanumeric.sample_string(&mut rng, 24),
        }
    }
}

/// The `a=rtpmap` encoding of `codec` as a browser offers it.
fn rtpmap(codec: Codec) -> &'static str {
    match codec {
        Codec::Vp8 => "VP8/90000",
        Codec::Vp9 => "VP9/90000",
        Codec::H264 => "H264/90000",
        Codec::H265 => "H265/90000",
        Codec::Av1 => "AV1/90000",
        Codec::Opus => "opus/48000/2",
    }
}

/// The offer text (CRLF line endings) for a viewer receiving `codec` with payload type
/// [`Codec::output_payload_type`].
pub fn build_offer(codec: Codec, ice: &ViewerIce, fingerprint: &Fingerprint) -> String {
    let pt = codec.output_payload_type();
    let kind = if codec.is_audio() { "audio" } else { "video" };
    let session: u64 = rand::random::<u64>() >> 1;
    let mut s = String::with_capacity(640);
    // `write!` into a String cannot fail.
    let _ = write!(
        s,
        "v=0\r\n\
         o=- {session} 1 IN IP4 127.0.0.1\r\n\
         s=corecast-loadgen\r\n\
         t=0 0\r\n\
         a=group:BUNDLE 0\r\n\
         a=msid-semantic: WMS\r\n\
         m={kind} 9 UDP/TLS/RTP/SAVPF {pt}\r\n\
         c=IN IP4 0.0.0.0\r\n\
         a=rtcp:9 IN IP4 0.0.0.0\r\n\
         a=ice-ufrag:{ufrag}\r\n\
         a=ice-pwd:{pwd}\r\n\
         a=ice-options:trickle\r\n\
         a=fingerprint:{alg} {fingerprint}\r\n\
         a=setup:active\r\n\
         a=mid:0\r\n\
         a=recvonly\r\n\
         a=rtcp-mux\r\n\
         a=rtpmap:{pt} {map}\r\n",
        ufrag = ice.ufrag,
        pwd = ice.pwd,
        alg = fingerprint.algorithm(),
        map = rtpmap(codec),
    );
    match codec {
        Codec::Opus => {
            let _ = write!(s, "a=fmtp:{pt} minptime=10;useinbandfec=1\r\n");
        }
        Codec::H264 => {
            let _ = write!(
                s,
                "a=fmtp:{pt} level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"
            );
        }
        _ => {}
    }
    if !codec.is_audio() {
        for fb in ["nack", "nack pli", "ccm fir"] {
            let _ = write!(s, "a=rtcp-fb:{pt} {fb}\r\n");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use corecast_webrtc::dtls::Certificate;
    use corecast_webrtc::sdp::{negotiate, Offer, SetupRole, Wanted, WantedVideo};

    use super::*;

    #[test]
    fn the_node_parses_and_accepts_the_vp8_offer_with_our_payload_type() {
        let cert = Certificate::generate().unwrap();
        let ice = ViewerIce::random();
        let text = build_offer(Codec::Vp8, &ice, &cert.fingerprint());
        let offer = Offer::parse(&text).expect("the node's parser accepts the offer");
        let wanted = Wanted {
            video: Some(WantedVideo {
                codec: Codec::Vp8,
                h264: None,
            }),
            audio: false,
        };
        let n = negotiate(&offer, &wanted).expect("the node negotiates it");
        let video = n.video().expect("video accepted");
        assert_eq!(video.payload_type, Codec::Vp8.output_payload_type());
        assert_eq!(video.codec, Codec::Vp8);
        assert_eq!(n.remote_ice.ufrag, ice.ufrag);
        assert_eq!(n.remote_ice.pwd, ice.pwd);
        assert_eq!(
            n.remote_fingerprint.hex(),
            cert.fingerprint().to_string(),
            "the answer's DTLS must expect our certificate"
        );
        assert!(n.audio().is_none());
        assert_eq!(offer.setup, SetupRole::Active);
    }

    #[test]
    fn the_node_accepts_the_opus_offer_as_audio() {
        let cert = Certificate::generate().unwrap();
        let text = build_offer(Codec::Opus, &ViewerIce::random(), &cert.fingerprint());
        let offer = Offer::parse(&text).unwrap();
        let n = negotiate(
            &offer,
            &Wanted {
                video: None,
                audio: true,
            },
        )
        .unwrap();
        assert_eq!(n.audio().unwrap().payload_type, 111);
        assert!(n.video().is_none());
    }

    #[test]
    fn a_vp8_offer_does_not_match_an_h264_channel() {
        let cert = Certificate::generate().unwrap();
        let text = build_offer(Codec::Vp8, &ViewerIce::random(), &cert.fingerprint());
        let offer = Offer::parse(&text).unwrap();
        let wanted = Wanted {
            video: Some(WantedVideo {
                codec: Codec::H264,
                h264: None,
            }),
            audio: false,
        };
        assert!(negotiate(&offer, &wanted).is_err(), "the test can fail");
    }

    #[test]
    fn credentials_are_valid_and_differ_per_viewer() {
        let a = ViewerIce::random();
        let b = ViewerIce::random();
        assert!(corecast_webrtc::sdp::valid_ufrag(&a.ufrag));
        assert!(corecast_webrtc::sdp::valid_pwd(&a.pwd));
        assert_ne!(a, b);
    }
}

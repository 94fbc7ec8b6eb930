//! WHEP offers from Chrome, Firefox and aiortc (fixtures/README.md says which are real)
//! negotiated against channels, and the answers parsed back with the `sdp` crate.

use std::collections::BTreeSet;
use std::io::Cursor;
use std::net::SocketAddr;

use corecast_engine::Codec;
use corecast_webrtc::sdp::{
    negotiate, AcceptedMedia, Answer, Feedback, Fingerprint, H264Source, IceCredentials,
    MediaAnswer, MediaKind, Negotiated, Offer, OfferError, SetupRole, Wanted, WantedVideo,
};
use sdp::description::media::MediaDescription;
use sdp::description::session::SessionDescription;

const CHROME: &str = include_str!("fixtures/chrome_recvonly.sdp");
const FIREFOX: &str = include_str!("fixtures/firefox_recvonly.sdp");
const AIORTC: &str = include_str!("fixtures/aiortc_recvonly.sdp");

fn h264(profile_level_id: [u8; 3], packetization_mode: u8) -> Wanted {
    Wanted {
        video: Some(WantedVideo {
            codec: Codec::H264,
            h264: Some(H264Source {
                profile_level_id,
                packetization_mode,
            }),
        }),
        audio: true,
    }
}

fn video(codec: Codec) -> Wanted {
    Wanted {
        video: Some(WantedVideo { codec, h264: None }),
        audio: true,
    }
}

fn accepted(n: &Negotiated, kind: MediaKind) -> &AcceptedMedia {
    n.accepted()
        .find(|m| m.kind == kind)
        .unwrap_or_else(|| panic!("no accepted {kind} in {n:?}"))
}

#[test]
fn chrome_offer_parses_with_its_codecs_and_credentials() {
    let offer = Offer::parse(CHROME).unwrap();
    assert_eq!(offer.ice.ufrag, "x9Pn");
    assert_eq!(offer.ice.pwd, "sW9gPjJ0pAoAD5mD1eD6M9bH");
    assert_eq!(offer.setup, SetupRole::ActPass);
    assert_eq!(offer.bundle, ["0", "1"]);
    assert_eq!(
        offer.fingerprints.len(),
        1,
        "the same fingerprint on both m-lines is one"
    );
    assert_eq!(offer.media.len(), 2);
    let v = &offer.media[1];
    assert_eq!(v.mid.as_deref(), Some("1"));
    assert_eq!(v.kind, MediaKind::Video);
    assert!(v.rtcp_mux);
    assert_eq!(v.codecs.len(), 25, "every format of m= has an rtpmap");
    let pts: Vec<u8> = v.codecs.iter().map(|c| c.payload_type).collect();
    assert_eq!(&pts[..4], [96, 97, 102, 103], "m= order is kept");
    let h = v.codecs.iter().find(|c| c.payload_type == 127).unwrap();
    assert_eq!(h.name, "H264");
    assert_eq!(h.fmtp_param("profile-level-id"), Some("4d001f"));
    assert_eq!(h.fmtp_param("packetization-mode"), Some("1"));
    assert_eq!(
        h.rtcp_fb,
        ["goog-remb", "transport-cc", "ccm fir", "nack", "nack pli"]
    );
    let opus = &offer.media[0].codecs[0];
    assert_eq!(
        (opus.name.as_str(), opus.clock_rate, opus.channels),
        ("opus", 48_000, Some(2))
    );
    assert_eq!(opus.fmtp_param("useinbandfec"), Some("1"));
}

#[test]
fn chrome_h264_constrained_baseline_picks_the_matching_payload_type() {
    let offer = Offer::parse(CHROME).unwrap();
    // 42e01f, mode 1 is PT 106 (mode 0 is 108; 42001f baseline is 102).
    let n = negotiate(&offer, &h264([0x42, 0xe0, 0x1f], 1)).unwrap();
    let v = accepted(&n, MediaKind::Video);
    assert_eq!((v.mid.as_str(), v.payload_type), ("1", 106));
    assert_eq!(
        v.fmtp.as_deref(),
        Some("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f")
    );
    assert_eq!(
        v.feedback,
        Feedback {
            nack: true,
            pli: true,
            fir: true
        }
    );
    let a = accepted(&n, MediaKind::Audio);
    assert_eq!((a.mid.as_str(), a.payload_type), ("0", 111));
    assert_eq!(
        a.feedback,
        Feedback::default(),
        "transport-cc is not answered"
    );
    // Packetization-mode 0 of the same profile is PT 108; main is 127; high is 112.
    let pt = |w| accepted(&negotiate(&offer, &w).unwrap(), MediaKind::Video).payload_type;
    assert_eq!(pt(h264([0x42, 0xe0, 0x1f], 0)), 108);
    assert_eq!(pt(h264([0x42, 0x00, 0x1f], 1)), 102);
    assert_eq!(
        pt(h264([0x4d, 0x00, 0x28], 1)),
        127,
        "level 4 > 3.1, asymmetry allowed"
    );
    assert_eq!(pt(h264([0x64, 0x00, 0x33], 1)), 112);
}

#[test]
fn chrome_other_codecs_by_name() {
    let offer = Offer::parse(CHROME).unwrap();
    let pt = |c| accepted(&negotiate(&offer, &video(c)).unwrap(), MediaKind::Video).payload_type;
    assert_eq!(pt(Codec::Vp8), 96);
    assert_eq!(pt(Codec::Vp9), 98, "profile-id 0, not 100's profile 2");
    assert_eq!(pt(Codec::Av1), 45);
    let err = negotiate(&offer, &video(Codec::H265)).unwrap_err();
    assert_eq!(err.reason(), "sdp_no_common_codec");
    assert_eq!(
        err.to_string(),
        "video: the channel sends H.265 and the offer has no payload type that can receive it"
    );
}

#[test]
fn unknown_h264_source_gets_the_most_compatible_profile_in_mode_1() {
    for (text, pt) in [(CHROME, 106), (FIREFOX, 126), (AIORTC, 101)] {
        let n = negotiate(&Offer::parse(text).unwrap(), &video(Codec::H264)).unwrap();
        let v = accepted(&n, MediaKind::Video);
        assert_eq!(v.payload_type, pt);
        assert!(v
            .fmtp
            .as_deref()
            .unwrap()
            .contains("packetization-mode=1;profile-level-id=42e01f"));
    }
}

#[test]
fn chrome_has_no_h264_high_level_5_1_without_asymmetry() {
    let text = CHROME.replace("level-asymmetry-allowed=1;", "");
    let offer = Offer::parse(&text).unwrap();
    // High 5.1 > the offer's 3.1 and no asymmetry: refused, with what the source sends named.
    let err = negotiate(&offer, &h264([0x64, 0x00, 0x33], 1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "video: the channel sends H.264 (profile-level-id 640033, packetization-mode 1) and the \
         offer has no payload type that can receive it"
    );
    // High 3.1 fits PT 112 exactly.
    let n = negotiate(&offer, &h264([0x64, 0x00, 0x1f], 1)).unwrap();
    let v = accepted(&n, MediaKind::Video);
    assert_eq!(v.payload_type, 112);
    assert_eq!(
        v.fmtp.as_deref(),
        Some("packetization-mode=1;profile-level-id=64001f")
    );
}

#[test]
fn firefox_offer_session_fingerprint_and_default_packetization_mode() {
    let offer = Offer::parse(FIREFOX).unwrap();
    assert_eq!(offer.ice.ufrag, "8f1c2a4b");
    assert_eq!(offer.bundle, ["0", "1"]);
    assert_eq!(offer.fingerprints.len(), 1);
    let pt = |w| accepted(&negotiate(&offer, &w).unwrap(), MediaKind::Video).payload_type;
    assert_eq!(pt(h264([0x42, 0xe0, 0x1f], 1)), 126);
    assert_eq!(
        pt(h264([0x42, 0xe0, 0x1f], 0)),
        97,
        "no packetization-mode means 0"
    );
    assert_eq!(pt(video(Codec::Vp8)), 120);
    assert_eq!(pt(video(Codec::Vp9)), 121, "no profile-id means 0");
    let a = accepted(
        &negotiate(&offer, &video(Codec::Vp8)).unwrap(),
        MediaKind::Audio,
    )
    .clone();
    assert_eq!(a.payload_type, 109);
    assert_eq!(
        a.fmtp.as_deref(),
        Some("maxplaybackrate=48000;stereo=1;useinbandfec=1")
    );
    let err = negotiate(&offer, &h264([0x4d, 0x00, 0x1f], 1)).unwrap_err();
    assert_eq!(
        err.reason(),
        "sdp_no_common_codec",
        "Firefox offers no Main"
    );
}

#[test]
fn aiortc_offer_media_level_credentials_and_three_fingerprints() {
    let offer = Offer::parse(AIORTC).unwrap();
    assert_eq!(offer.ice.ufrag.len(), 4);
    assert_eq!(offer.fingerprints.len(), 3, "sha-256, sha-384, sha-512");
    assert_eq!(offer.sha256_fingerprint().unwrap().bytes.len(), 32);
    let n = negotiate(&offer, &video(Codec::Vp8)).unwrap();
    assert_eq!(accepted(&n, MediaKind::Video).payload_type, 97);
    assert_eq!(accepted(&n, MediaKind::Audio).payload_type, 96);
    assert_eq!(n.remote_fingerprint, *offer.sha256_fingerprint().unwrap());
    assert_eq!(n.remote_ice, offer.ice);
    let n = negotiate(&offer, &h264([0x42, 0x00, 0x1f], 1)).unwrap();
    assert_eq!(accepted(&n, MediaKind::Video).payload_type, 99);
}

#[test]
fn video_only_channel_rejects_audio_and_bundles_only_video() {
    let offer = Offer::parse(CHROME).unwrap();
    let wanted = Wanted {
        video: Some(WantedVideo {
            codec: Codec::Vp8,
            h264: None,
        }),
        audio: false,
    };
    let n = negotiate(&offer, &wanted).unwrap();
    assert!(matches!(&n.media[0], MediaAnswer::Rejected(r) if r.mid.as_deref() == Some("0")));
    let parsed = render_and_parse(&n);
    assert_eq!(
        parsed.attribute("group").map(String::as_str),
        Some("BUNDLE 1")
    );
    let audio = &parsed.media_descriptions[0];
    assert_eq!(audio.media_name.port.value, 0);
    assert_eq!(audio.media_name.media, "audio");
    let keys: Vec<&str> = audio.attributes.iter().map(|a| a.key.as_str()).collect();
    assert_eq!(keys, ["mid"], "a rejected m-line carries only its mid");
}

#[test]
fn a_second_video_m_line_is_rejected() {
    let extra = CHROME
        .split_once("m=video")
        .map(|(_, v)| format!("m=video{v}"))
        .unwrap()
        .replace("a=mid:1", "a=mid:2");
    let text = format!("{}{extra}", CHROME.replace("BUNDLE 0 1", "BUNDLE 0 1 2"));
    let offer = Offer::parse(&text).unwrap();
    let n = negotiate(&offer, &video(Codec::Vp8)).unwrap();
    assert_eq!(n.media.len(), 3);
    assert!(matches!(&n.media[2], MediaAnswer::Rejected(r) if r.mid.as_deref() == Some("2")));
    assert_eq!(n.accepted().count(), 2);
}

fn local() -> (IceCredentials, Fingerprint) {
    let ice = IceCredentials {
        ufrag: "cc01".into(),
        pwd: "abcdefghijklmnopqrstuvwx".into(),
    };
    let mut digest = [0u8; 32];
    for (i, b) in digest.iter_mut().enumerate() {
        *b = i as u8 * 7;
    }
    (ice, Fingerprint::sha256(digest))
}

fn render(n: &Negotiated) -> String {
    let (ice, fp) = local();
    let candidates: [SocketAddr; 2] = [
        "203.0.113.7:40000".parse().unwrap(),
        "[2001:db8::7]:40000".parse().unwrap(),
    ];
    Answer {
        negotiated: n,
        local_ice: &ice,
        local_fingerprint: &fp,
        candidates: &candidates,
        video_ssrc: 0x1111_2222,
        video_rtx_ssrc: None,
        audio_ssrc: 0x3333_4444,
        cname: "corecast-7",
        stream_id: "channel-3",
        session_id: 42,
        session_version: 2,
    }
    .render()
}

fn render_and_parse(n: &Negotiated) -> SessionDescription {
    let text = render(n);
    SessionDescription::unmarshal(&mut Cursor::new(text.as_bytes())).unwrap()
}

fn values<'a>(m: &'a MediaDescription, key: &str) -> Vec<&'a str> {
    m.attributes
        .iter()
        .filter(|a| a.key == key)
        .map(|a| a.value.as_deref().unwrap_or(""))
        .collect()
}

#[test]
fn answers_parse_back_with_every_required_attribute() {
    for (name, text, wanted) in [
        ("chrome", CHROME, h264([0x42, 0xe0, 0x1f], 1)),
        ("firefox", FIREFOX, video(Codec::Vp8)),
        ("aiortc", AIORTC, video(Codec::H264)),
    ] {
        let offer = Offer::parse(text).unwrap();
        let n = negotiate(&offer, &wanted).unwrap();
        let raw = render(&n);
        assert!(
            raw.ends_with("\r\n") && !raw.replace("\r\n", "").contains('\n'),
            "{name}: CRLF"
        );
        let answer = SessionDescription::unmarshal(&mut Cursor::new(raw.as_bytes())).unwrap();
        assert!(answer.has_attribute("ice-lite"), "{name}");
        assert_eq!(
            answer.attribute("group").map(String::as_str),
            Some("BUNDLE 0 1"),
            "{name}"
        );
        assert_eq!(answer.origin.session_id, 42);
        assert_eq!(answer.media_descriptions.len(), offer.media.len());
        for (m, offered) in answer.media_descriptions.iter().zip(&offer.media) {
            let mid = offered.mid.as_deref().unwrap();
            let chosen = n.accepted().find(|a| a.mid == mid).unwrap();
            let pt = chosen.payload_type.to_string();
            assert_eq!(
                m.media_name.media,
                offered.kind.as_str(),
                "{name}: same order"
            );
            assert_eq!(m.media_name.protos.join("/"), "UDP/TLS/RTP/SAVPF");
            assert_eq!(
                m.media_name.formats,
                std::slice::from_ref(&pt),
                "{name}: the offer's PT"
            );
            assert!(offered
                .codecs
                .iter()
                .any(|c| c.payload_type == chosen.payload_type));
            assert_eq!(m.media_name.port.value, 40000);
            let c = m.connection_information.as_ref().unwrap();
            assert_eq!(c.address.as_ref().unwrap().address, "203.0.113.7");
            assert_eq!(values(m, "mid"), [mid]);
            for flag in ["sendonly", "rtcp-mux", "end-of-candidates"] {
                assert!(m.has_attribute(flag), "{name} {mid}: a={flag}");
            }
            assert!(!m.has_attribute("recvonly") && !m.has_attribute("sendrecv"));
            assert_eq!(values(m, "ice-ufrag"), ["cc01"]);
            assert_eq!(values(m, "ice-pwd"), ["abcdefghijklmnopqrstuvwx"]);
            let fp = values(m, "fingerprint");
            assert_eq!(fp.len(), 1);
            assert_eq!(fp[0].parse::<Fingerprint>().unwrap(), local().1);
            assert!(fp[0].starts_with("sha-256 00:07:0E:15:"));
            assert_eq!(values(m, "setup"), ["passive"]);
            let rtpmap = values(m, "rtpmap");
            assert_eq!(rtpmap.len(), 1, "{name}: one codec, no RTX");
            assert!(rtpmap[0].starts_with(&format!("{pt} {}/", chosen.encoding_name)));
            for fb in values(m, "rtcp-fb") {
                assert!(fb.starts_with(&format!("{pt} ")));
                assert!(!fb.contains("transport-cc") && !fb.contains("goog-remb"));
            }
            let ssrc = if offered.kind == MediaKind::Video {
                0x1111_2222u32
            } else {
                0x3333_4444
            };
            let track = format!("channel-3-{}", offered.kind);
            assert_eq!(values(m, "msid"), [format!("channel-3 {track}").as_str()]);
            assert_eq!(
                values(m, "ssrc"),
                [
                    format!("{ssrc} cname:corecast-7"),
                    format!("{ssrc} msid:channel-3 {track}")
                ]
            );
            let cands = values(m, "candidate");
            assert_eq!(cands.len(), 2);
            assert!(
                cands[0].ends_with(" 203.0.113.7 40000 typ host"),
                "{}",
                cands[0]
            );
            assert!(
                cands[1].ends_with(" 2001:db8::7 40000 typ host"),
                "{}",
                cands[1]
            );
            let prio: Vec<u32> = cands
                .iter()
                .map(|c| c.split(' ').nth(3).unwrap().parse().unwrap())
                .collect();
            assert!(prio[0] > prio[1], "the first address is preferred");
        }
    }
}

#[test]
fn h264_answer_fmtp_and_feedback_lines() {
    let offer = Offer::parse(CHROME).unwrap();
    let n = negotiate(&offer, &h264([0x42, 0xe0, 0x1f], 1)).unwrap();
    let answer = render_and_parse(&n);
    let v = &answer.media_descriptions[1];
    assert_eq!(values(v, "rtpmap"), ["106 H264/90000"]);
    assert_eq!(
        values(v, "fmtp"),
        ["106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"]
    );
    assert_eq!(
        values(v, "rtcp-fb"),
        ["106 nack", "106 nack pli", "106 ccm fir"]
    );
    let a = &answer.media_descriptions[0];
    assert_eq!(values(a, "rtpmap"), ["111 opus/48000/2"]);
    assert_eq!(values(a, "fmtp"), ["111 minptime=10;useinbandfec=1"]);
    assert!(values(a, "rtcp-fb").is_empty());
}

#[test]
fn offers_missing_transport_prerequisites_are_refused_by_name() {
    let cases: [(String, &str, &str); 7] = [
        (
            CHROME.replace("a=group:BUNDLE 0 1\r\n", ""),
            "sdp_no_bundle",
            "the offer has no a=group:BUNDLE",
        ),
        (
            CHROME.replace("BUNDLE 0 1", "BUNDLE 0"),
            "sdp_mid_not_bundled",
            "the offer's a=group:BUNDLE does not contain mid 1",
        ),
        (
            CHROME.replacen("a=rtcp-mux\r\n", "", 1),
            "sdp_no_rtcp_mux",
            "the offer's m-line with mid 0 has no a=rtcp-mux",
        ),
        (
            FIREFOX.replace("a=mid:1\r\n", ""),
            "sdp_no_mid",
            "the offer's m-line 1 has no a=mid",
        ),
        (
            AIORTC.replace("a=setup:actpass", "a=setup:passive"),
            "sdp_setup_passive",
            "",
        ),
        (
            AIORTC.replace("a=recvonly", "a=sendonly"),
            "sdp_nothing_to_send",
            "",
        ),
        (
            AIORTC.replace("UDP/TLS/RTP/SAVPF", "RTP/AVP"),
            "sdp_nothing_to_send",
            "",
        ),
    ];
    for (text, reason, message) in cases {
        let err = Offer::parse(&text)
            .and_then(|o| negotiate(&o, &video(Codec::Vp8)))
            .unwrap_err();
        assert_eq!(err.reason(), reason, "{err}");
        if !message.is_empty() {
            assert_eq!(err.to_string(), message);
        }
    }
}

#[test]
fn offer_without_audio_codec_names_opus() {
    let text = AIORTC.replace("opus/48000/2", "opus/48000/1");
    let err = negotiate(&Offer::parse(&text).unwrap(), &video(Codec::Vp8)).unwrap_err();
    assert_eq!(
        err,
        OfferError::NoCommonCodec {
            kind: MediaKind::Audio,
            sends: "Opus (48000 Hz, 2 channels)".into()
        }
    );
    assert!(err.to_string().starts_with("audio: the channel sends Opus"));
}

/// Parse, negotiate for each channel kind, render and parse the answer back; the refusals go
/// to `refusals`. How many negotiations succeeded.
fn round_trip(text: &str, refusals: &mut BTreeSet<&'static str>) -> usize {
    let offer = match Offer::parse(text) {
        Ok(o) => o,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            refusals.insert(e.reason());
            return 0;
        }
    };
    let mut answered = 0;
    for wanted in [
        h264([0x42, 0xe0, 0x1f], 1),
        video(Codec::H264),
        video(Codec::Vp9),
    ] {
        let n = match negotiate(&offer, &wanted) {
            Ok(n) => n,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                refusals.insert(e.reason());
                continue;
            }
        };
        assert_eq!(n.media.len(), offer.media.len());
        let answer = render_and_parse(&n);
        assert_eq!(answer.media_descriptions.len(), offer.media.len());
        answered += 1;
    }
    answered
}

#[test]
fn damaged_offers_are_refused_or_answered_never_a_panic() {
    let mut refusals = BTreeSet::new();
    let mut answered = 0;
    for text in [CHROME, FIREFOX, AIORTC] {
        let lines: Vec<&str> = text.split_inclusive("\r\n").collect();
        for i in 0..lines.len() {
            // Without line i; with line i's value replaced by junk; with line i doubled; cut
            // in the middle of line i.
            let (key, _) = lines[i].split_once('=').unwrap();
            let junk = format!("{key}=\u{1}:: \u{7f}//\r\n");
            let mut without = String::new();
            let mut replaced = String::new();
            let mut doubled = String::new();
            for (j, l) in lines.iter().enumerate() {
                if j != i {
                    without.push_str(l);
                }
                replaced.push_str(if j == i { &junk } else { l });
                doubled.push_str(l);
                if j == i {
                    doubled.push_str(l);
                }
            }
            let start: usize = lines[..i].iter().map(|l| l.len()).sum();
            let cut = &text[..start + lines[i].len() / 2];
            for t in [without.as_str(), &replaced, &doubled, cut] {
                answered += round_trip(t, &mut refusals);
            }
        }
    }
    assert!(
        answered > 500,
        "most single-line damage is still answerable: {answered}"
    );
    for r in [
        "sdp_malformed",
        "sdp_no_ice_credentials",
        "sdp_bad_ice_credentials",
        "sdp_no_fingerprint",
        "sdp_bad_fingerprint",
        "sdp_no_setup",
        "sdp_bad_setup",
        "sdp_no_bundle",
        "sdp_no_rtcp_mux",
        "sdp_no_mid",
    ] {
        assert!(refusals.contains(r), "{r} not among {refusals:?}");
    }
}

#[test]
fn bundle_only_m_line_with_port_0_is_answered_but_a_plain_port_0_is_not() {
    // Chrome's max-bundle policy: the second m-line has port 0 and a=bundle-only.
    let text = CHROME.replacen("m=video 9 ", "m=video 0 ", 1);
    let offer = Offer::parse(&text).unwrap();
    let n = negotiate(&offer, &video(Codec::Vp8)).unwrap();
    assert!(
        n.video().is_none(),
        "port 0 without bundle-only is the offerer's own refusal"
    );
    let text = text.replacen("a=mid:1\r\n", "a=mid:1\r\na=bundle-only\r\n", 1);
    let n = negotiate(&Offer::parse(&text).unwrap(), &video(Codec::Vp8)).unwrap();
    assert_eq!(n.video().unwrap().payload_type, 96);
}

#[test]
fn answer_on_ipv6_only_or_without_candidates() {
    let n = negotiate(&Offer::parse(AIORTC).unwrap(), &video(Codec::Vp8)).unwrap();
    let (ice, fp) = local();
    let answer = |candidates: &[SocketAddr]| {
        Answer {
            negotiated: &n,
            local_ice: &ice,
            local_fingerprint: &fp,
            candidates,
            video_ssrc: 1,
            video_rtx_ssrc: None,
            audio_ssrc: 2,
            cname: "c",
            stream_id: "s",
            session_id: 7,
            session_version: 9,
        }
        .render()
    };
    let v6 = answer(&["[2001:db8::7]:5000".parse().unwrap()]);
    let parsed = SessionDescription::unmarshal(&mut Cursor::new(v6.as_bytes())).unwrap();
    assert_eq!(parsed.origin.address_type, "IP6");
    let m = &parsed.media_descriptions[1];
    let c = m.connection_information.as_ref().unwrap();
    assert_eq!(
        (
            c.address_type.as_str(),
            c.address.as_ref().unwrap().address.as_str()
        ),
        ("IP6", "2001:db8::7")
    );
    assert_eq!(m.media_name.port.value, 5000);
    assert_eq!(
        values(m, "candidate"),
        ["1 1 udp 2130706431 2001:db8::7 5000 typ host"]
    );
    let none = answer(&[]);
    let parsed = SessionDescription::unmarshal(&mut Cursor::new(none.as_bytes())).unwrap();
    let m = &parsed.media_descriptions[0];
    assert_eq!(
        m.media_name.port.value, 9,
        "the discard port, as JSEP writes it"
    );
    assert!(values(m, "candidate").is_empty() && m.has_attribute("end-of-candidates"));
    assert!(none.contains("c=IN IP4 0.0.0.0\r\n"));
}

/// Each browser offers an `rtx` payload type per video codec; the one whose `apt` is the chosen
/// codec's is taken, written with its `apt` when the answer has an RTX SSRC to give it, and the
/// two SSRCs grouped; without an RTX SSRC (a node keeping no history) nothing of it is written.
#[test]
fn rtx_is_matched_by_apt_and_answered_only_with_an_rtx_ssrc() {
    for (name, text, wanted) in [
        ("chrome", CHROME, video(Codec::Vp8)),
        ("chrome", CHROME, h264([0x42, 0xe0, 0x1f], 1)),
        ("firefox", FIREFOX, video(Codec::Vp8)),
        ("aiortc", AIORTC, video(Codec::Vp8)),
    ] {
        let offer = Offer::parse(text).unwrap();
        let n = negotiate(&offer, &wanted).unwrap();
        let v = accepted(&n, MediaKind::Video);
        let rtx = v
            .rtx_payload_type
            .unwrap_or_else(|| panic!("{name}: no rtx"));
        let offered = offer
            .media
            .iter()
            .flat_map(|m| &m.codecs)
            .find(|c| c.payload_type == rtx)
            .unwrap();
        assert!(offered.is("rtx"), "{name}");
        assert_eq!(
            offered.fmtp_param("apt"),
            Some(v.payload_type.to_string().as_str()),
            "{name}"
        );
        assert_eq!(accepted(&n, MediaKind::Audio).rtx_payload_type, None);

        let (ice, fp) = local();
        let with = |video_rtx_ssrc| {
            let text = Answer {
                negotiated: &n,
                local_ice: &ice,
                local_fingerprint: &fp,
                candidates: &["203.0.113.7:40000".parse().unwrap()],
                video_ssrc: 0x1111_2222,
                video_rtx_ssrc,
                audio_ssrc: 0x3333_4444,
                cname: "corecast-7",
                stream_id: "channel-3",
                session_id: 42,
                session_version: 2,
            }
            .render();
            SessionDescription::unmarshal(&mut Cursor::new(text.as_bytes())).unwrap()
        };
        let answer = with(Some(0x5555_6666));
        let m = answer
            .media_descriptions
            .iter()
            .find(|m| m.media_name.media == "video")
            .unwrap();
        let (pt, rtx) = (v.payload_type.to_string(), rtx.to_string());
        assert_eq!(m.media_name.formats, [pt.clone(), rtx.clone()], "{name}");
        assert!(values(m, "rtpmap").contains(&format!("{rtx} rtx/90000").as_str()));
        assert!(values(m, "fmtp").contains(&format!("{rtx} apt={pt}").as_str()));
        let fid = format!("FID {} {}", 0x1111_2222u32, 0x5555_6666u32);
        assert_eq!(values(m, "ssrc-group"), [fid.as_str()], "{name}");
        let rtx_lines: Vec<&str> = values(m, "ssrc")
            .into_iter()
            .filter(|l| l.starts_with(&0x5555_6666u32.to_string()))
            .collect();
        assert_eq!(rtx_lines.len(), 2, "cname and msid: {rtx_lines:?}");

        let answer = with(None);
        let m = answer
            .media_descriptions
            .iter()
            .find(|m| m.media_name.media == "video")
            .unwrap();
        assert_eq!(m.media_name.formats, [pt], "{name}");
        assert!(values(m, "ssrc-group").is_empty());
        assert!(!values(m, "rtpmap").iter().any(|l| l.contains("rtx")));
    }
}

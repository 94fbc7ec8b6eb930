//! The H.264 table, fingerprints, the offer's refusals and trickle fragments. Whole offers from
//! real stacks are in `webrtc/tests/sdp.rs`.

use super::h264::{can_receive, H264Level, H264Profile, ProfileLevelId};
use super::*;

/// A minimal valid WHEP offer: one recvonly video m-line with VP8 and two H.264s.
const MINIMAL: &str = "v=0\r\n\
o=- 1 1 IN IP4 0.0.0.0\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE v\r\n\
a=ice-ufrag:abcd\r\n\
a=ice-pwd:0123456789abcdefghijkl\r\n\
a=fingerprint:sha-256 00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:1F\r\n\
a=setup:active\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 98\r\n\
c=IN IP4 0.0.0.0\r\n\
a=mid:v\r\n\
a=recvonly\r\n\
a=rtcp-mux\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtcp-fb:* nack\r\n\
a=rtpmap:97 H264/90000\r\n\
a=fmtp:97 packetization-mode=1;profile-level-id=4d0015\r\n\
a=rtpmap:98 H264/90000\r\n\
a=fmtp:98 packetization-mode=1;profile-level-id=640c1f\r\n";

fn pli(hex: &str) -> ProfileLevelId {
    ProfileLevelId::parse(hex).unwrap_or_else(|| panic!("{hex} parses"))
}

#[test]
fn profile_table_classifies_like_libwebrtc() {
    for (hex, profile, level) in [
        ("42e01f", H264Profile::ConstrainedBaseline, "3.1"),
        ("42c015", H264Profile::ConstrainedBaseline, "2.1"),
        ("4de01f", H264Profile::ConstrainedBaseline, "3.1"),
        ("58f01f", H264Profile::ConstrainedBaseline, "3.1"),
        ("42001f", H264Profile::Baseline, "3.1"),
        ("42a01f", H264Profile::Baseline, "3.1"),
        ("58a01f", H264Profile::Baseline, "3.1"),
        ("4d001f", H264Profile::Main, "3.1"),
        ("4d4028", H264Profile::Main, "4"),
        ("640032", H264Profile::High, "5"),
        ("640c34", H264Profile::ConstrainedHigh, "5.2"),
        ("f4001f", H264Profile::PredictiveHigh444, "3.1"),
        ("42f00b", H264Profile::ConstrainedBaseline, "1b"),
        ("42000a", H264Profile::Baseline, "1"),
        ("42000B", H264Profile::Baseline, "1.1"),
    ] {
        let p = pli(hex);
        assert_eq!(
            (p.profile, p.level.to_string().as_str()),
            (profile, level),
            "{hex}"
        );
        assert_eq!(p.hex(), hex.to_ascii_lowercase());
    }
    for bad in [
        "", "42e01", "42e01fa", "zze01f", "+2e01f", "43e01f", "64100f", "4d201f", "42e0ff",
        "42e000",
    ] {
        assert_eq!(ProfileLevelId::parse(bad), None, "{bad}");
    }
    assert!(H264Level::from_idc(10) < H264Level::L1B);
    assert!(H264Level::L1B < H264Level::from_idc(11));
}

#[test]
fn h264_matching_profiles_levels_and_asymmetry() {
    // (offered, asymmetry allowed, source, can receive)
    for (offered, asym, source, ok) in [
        ("42e01f", false, "42e01f", true),
        ("42e01f", false, "42e015", true),  // lower level
        ("42e015", false, "42e01f", false), // higher level than offered
        ("42e015", true, "42e01f", true),   // ... unless asymmetry
        ("42001f", false, "42e01f", false), // baseline ≠ constrained baseline
        ("42e01f", true, "4d001f", false),  // main into constrained baseline
        ("4d001f", false, "4de01f", false), // 4de0 is constrained baseline, not main
        ("640032", false, "64001f", true),
        ("640c1f", false, "64001f", false), // constrained high ≠ high
        ("42f00b", false, "42e00a", true),  // 1b ≥ 1
        ("42e00a", false, "42f00b", false), // 1 < 1b
    ] {
        assert_eq!(
            can_receive(pli(offered), asym, pli(source)),
            ok,
            "{offered} {asym} {source}"
        );
    }
}

#[test]
fn minimal_offer_h264_by_table_and_wildcard_feedback() {
    let offer = Offer::parse(MINIMAL).unwrap();
    assert_eq!(offer.setup, SetupRole::Active);
    assert_eq!(offer.media[0].direction, Direction::RecvOnly);
    assert_eq!(
        offer.media[0].codecs[0].rtcp_fb,
        ["nack"],
        "a=rtcp-fb:* applies"
    );
    let wanted = |pli: [u8; 3]| Wanted {
        video: Some(WantedVideo {
            codec: corecast_engine::Codec::H264,
            h264: Some(H264Source {
                profile_level_id: pli,
                packetization_mode: 1,
            }),
        }),
        audio: true,
    };
    let n = negotiate(&offer, &wanted([0x4d, 0x00, 0x15])).unwrap();
    let v = n.video().unwrap();
    assert_eq!(v.payload_type, 97);
    assert_eq!(
        v.feedback,
        Feedback {
            nack: true,
            pli: false,
            fir: false
        }
    );
    assert!(
        n.audio().is_none(),
        "no audio m-line, audio is simply not sent"
    );
    assert_eq!(
        negotiate(&offer, &wanted([0x64, 0x0c, 0x1f]))
            .unwrap()
            .video()
            .unwrap()
            .payload_type,
        98
    );
    // Main at 3.1 > 2.1 offered, no asymmetry.
    let err = negotiate(&offer, &wanted([0x4d, 0x00, 0x1f])).unwrap_err();
    assert_eq!(err.reason(), "sdp_no_common_codec");
    // Only an audio channel: nothing to send on a video-only offer.
    let audio_only = Wanted {
        video: None,
        audio: true,
    };
    assert_eq!(
        negotiate(&offer, &audio_only).unwrap_err(),
        OfferError::NothingToSend
    );
}

#[test]
fn refusals_of_the_offer_itself() {
    let without = |line: &str| MINIMAL.replace(line, "");
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "sdp_empty"),
        (" \r\n\t".into(), "sdp_empty"),
        ("hello world".into(), "sdp_malformed"),
        ("v=0\r\no=garbage\r\n".into(), "sdp_malformed"),
        ("\u{0}\u{1}=\u{ff}".into(), "sdp_malformed"),
        (
            MINIMAL.split("m=video").next().unwrap().into(),
            "sdp_malformed",
        ), // no m-line
        ("v=0\r\n".repeat(MAX_OFFER_LEN / 5 + 1), "sdp_too_large"),
        (without("a=ice-ufrag:abcd\r\n"), "sdp_no_ice_credentials"),
        (
            without("a=ice-pwd:0123456789abcdefghijkl\r\n"),
            "sdp_no_ice_credentials",
        ),
        (
            MINIMAL.replace("ice-ufrag:abcd", "ice-ufrag:ab"),
            "sdp_bad_ice_credentials",
        ),
        (
            MINIMAL.replace("ice-pwd:0123456789", "ice-pwd:0123;56789"),
            "sdp_bad_ice_credentials",
        ),
        (without("a=fingerprint"), "sdp_malformed"), // the rest of that line is not x=
        (
            MINIMAL.replace("a=fingerprint:sha-256", "a=fingerprint:sha-1"),
            "sdp_bad_fingerprint", // 32 bytes for sha-1's 20
        ),
        (
            MINIMAL.replace("a=fingerprint:sha-256", "a=fingerprint:md5-ish"),
            "sdp_no_sha256_fingerprint", // unknown algorithms are skipped
        ),
        (
            MINIMAL.replace(":1E:1F\r\n", ":1E\r\n"),
            "sdp_bad_fingerprint",
        ),
        (MINIMAL.replace("a=setup:active\r\n", ""), "sdp_no_setup"),
        (
            MINIMAL.replace("setup:active", "setup:passive"),
            "sdp_setup_passive",
        ),
        (
            MINIMAL.replace("setup:active", "setup:holdconn"),
            "sdp_bad_setup",
        ),
    ];
    for (text, reason) in cases {
        let err = Offer::parse(&text).unwrap_err();
        assert_eq!(
            err.reason(),
            reason,
            "{err} for {:?}",
            &text[..text.len().min(60)]
        );
        assert!(!err.to_string().is_empty());
    }
    let no_fp: String = MINIMAL
        .lines()
        .filter(|l| !l.starts_with("a=fingerprint"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    let err = Offer::parse(&no_fp).unwrap_err();
    assert_eq!(err, OfferError::MissingFingerprint);
    assert_eq!(err.to_string(), "the offer has no a=fingerprint");
    let many = format!(
        "{MINIMAL}{}",
        MINIMAL
            .split_once("m=video")
            .map(|(_, m)| format!("m=video{m}"))
            .unwrap()
            .repeat(MAX_MEDIA)
    );
    assert_eq!(
        Offer::parse(&many).unwrap_err(),
        OfferError::TooManyMedia {
            count: MAX_MEDIA + 1
        }
    );
}

#[test]
fn every_reason_is_snake_case_and_distinct() {
    let errors = [
        OfferError::Empty,
        OfferError::TooLarge { len: 1 },
        OfferError::Malformed { detail: "x".into() },
        OfferError::TooManyMedia { count: 17 },
        OfferError::MissingIceCredentials,
        OfferError::InvalidIceCredentials {
            attribute: "ice-pwd",
        },
        OfferError::MissingFingerprint,
        OfferError::NoSha256Fingerprint,
        OfferError::InvalidFingerprint { value: "x".into() },
        OfferError::MissingSetup,
        OfferError::SetupPassive,
        OfferError::InvalidSetup { value: "x".into() },
        OfferError::MissingBundle,
        OfferError::NotBundled { mid: "1".into() },
        OfferError::MissingMid { index: 0 },
        OfferError::MissingRtcpMux { mid: "1".into() },
        OfferError::NoCommonCodec {
            kind: MediaKind::Video,
            sends: "VP8".into(),
        },
        OfferError::NothingToSend,
    ];
    let mut reasons: Vec<&str> = errors.iter().map(OfferError::reason).collect();
    reasons.extend(
        [
            FragmentError::Empty,
            FragmentError::TooLarge { len: 1 },
            FragmentError::MalformedLine { line: 1 },
            FragmentError::InvalidCandidate { line: 1 },
            FragmentError::InvalidIceCredentials {
                attribute: "ice-ufrag",
            },
            FragmentError::TooManyCandidates,
        ]
        .iter()
        .map(FragmentError::reason),
    );
    for r in &reasons {
        assert!(
            r.bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit()),
            "{r}"
        );
    }
    let mut unique = reasons.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), reasons.len());
}

#[test]
fn fingerprint_round_trips_and_refuses_bad_digests() {
    let f = Fingerprint::sha256([0xab; 32]);
    let text = f.to_string();
    assert!(text.starts_with("sha-256 AB:AB:"));
    assert_eq!(text.len(), "sha-256 ".len() + 32 * 3 - 1);
    assert_eq!(text.parse::<Fingerprint>().unwrap(), f);
    assert_eq!(
        text.to_lowercase()
            .replace("sha-256", "SHA-256")
            .parse::<Fingerprint>()
            .unwrap(),
        f
    );
    let sha1 = "sha-1 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33";
    assert_eq!(
        sha1.parse::<Fingerprint>().unwrap().algorithm,
        HashAlgorithm::Sha1
    );
    for (bad, why) in [
        ("", FingerprintError::Malformed),
        ("sha-256", FingerprintError::Malformed),
        ("sha-256 AB CD", FingerprintError::Malformed),
        ("md5 AB", FingerprintError::UnknownAlgorithm),
        ("sha-256 AB", FingerprintError::BadDigest),
        (
            "sha-1 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44",
            FingerprintError::BadDigest,
        ),
        (
            "sha-1 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:+3",
            FingerprintError::BadDigest,
        ),
        (
            "sha-1 0:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:333",
            FingerprintError::BadDigest,
        ),
    ] {
        assert_eq!(bad.parse::<Fingerprint>(), Err(why), "{bad}");
    }
}

#[test]
fn trickle_fragment_from_a_whep_client() {
    // RFC 8840 §4.4's example, as a WHEP client PATCHes it (Chrome writes mDNS host names).
    let text = "a=ice-ufrag:EsAw\r\n\
a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n\
a=group:BUNDLE 0 1\r\n\
m=audio 9 RTP/AVP 0\r\n\
a=mid:0\r\n\
a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1\r\n\
a=candidate:3471623853 1 UDP 2122194687 4c1f9a10-e7d3-4b9b-8c3e-2b1d6f3a7c1e.local 61765 typ host\r\n\
a=candidate:473322822 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active\r\n\
a=end-of-candidates\r\n\
m=video 9 RTP/AVP 0\r\n\
a=mid:1\r\n\
a=candidate:842163049 1 udp 1686052607 198.51.100.3 46154 typ srflx raddr 10.0.0.1 rport 61764\r\n";
    let f = TrickleFragment::parse(text).unwrap();
    assert_eq!(f.ufrag.as_deref(), Some("EsAw"));
    assert_eq!(f.pwd.as_deref(), Some("P2uYro0UCOQ4zxjKXaWCBui1"));
    assert_eq!(f.media.len(), 2);
    assert_eq!(f.media[0].mid.as_deref(), Some("0"));
    assert!(f.media[0].end_of_candidates && !f.media[1].end_of_candidates);
    assert!(f.ends_candidates());
    let all: Vec<_> = f.candidates().collect();
    assert_eq!(all.len(), 4);
    let (mid, c) = all[0];
    assert_eq!(mid, Some("0"));
    assert_eq!(
        (c.foundation.as_str(), c.component, c.transport.as_str()),
        ("1387637174", 1, "udp")
    );
    assert_eq!(
        (c.priority, c.port, c.typ.as_str()),
        (2122260223, 61764, "host")
    );
    assert_eq!(c.ip(), Some("192.0.2.1".parse().unwrap()));
    assert_eq!(all[1].1.transport, "udp", "lowercased");
    assert_eq!(all[1].1.ip(), None, "an mDNS name is not an IP");
    assert_eq!(all[3], (Some("1"), &f.media[1].candidates[0]));
    assert_eq!(all[3].1.typ, "srflx");
}

#[test]
fn trickle_fragment_without_m_lines_and_its_refusals() {
    let f = TrickleFragment::parse(
        "a=candidate:1 1 udp 1 10.0.0.1 5000 typ host\na=end-of-candidates\n",
    )
    .unwrap();
    assert_eq!(f.session_candidates.len(), 1);
    assert!(f.end_of_candidates && f.media.is_empty());
    let line = "a=candidate:1 1 udp 1 10.0.0.1 5000 typ host\r\n";
    for (text, reason) in [
        (String::new(), "sdpfrag_empty"),
        ("\r\n  \r\n".into(), "sdpfrag_empty"),
        ("x".repeat(MAX_FRAGMENT_LEN + 1), "sdpfrag_too_large"),
        ("garbage\r\n".into(), "sdpfrag_malformed_line"),
        ("A=candidate:1\r\n".into(), "sdpfrag_malformed_line"),
        (
            "a=candidate:1 1 udp 1 10.0.0.1 5000\r\n".into(),
            "sdpfrag_bad_candidate",
        ),
        (
            "a=candidate:1 1 udp 1 10.0.0.1 70000 typ host\r\n".into(),
            "sdpfrag_bad_candidate",
        ),
        (
            "a=candidate:1 0 udp 1 10.0.0.1 5000 typ host\r\n".into(),
            "sdpfrag_bad_candidate",
        ),
        (
            "a=candidate:1 1 udp 1 10.0.0.1 5000 type host\r\n".into(),
            "sdpfrag_bad_candidate",
        ),
        ("a=candidate\r\n".into(), "sdpfrag_bad_candidate"),
        ("a=ice-ufrag:a\r\n".into(), "sdpfrag_bad_ice_credentials"),
        ("a=ice-pwd:short\r\n".into(), "sdpfrag_bad_ice_credentials"),
        ("a=ice-ufrag\r\n".into(), "sdpfrag_malformed_line"),
        (
            line.repeat(MAX_FRAGMENT_CANDIDATES + 1),
            "sdpfrag_too_many_candidates",
        ),
    ] {
        let err = TrickleFragment::parse(&text).unwrap_err();
        assert_eq!(err.reason(), reason, "{err}");
    }
    assert_eq!(
        TrickleFragment::parse("a=mid:0\r\nbad\r\n")
            .unwrap_err()
            .to_string(),
        "line 2 of the trickle ICE fragment is not x=value"
    );
    assert_eq!(
        TrickleFragment::parse(&line.repeat(MAX_FRAGMENT_CANDIDATES))
            .unwrap()
            .session_candidates
            .len(),
        MAX_FRAGMENT_CANDIDATES
    );
}

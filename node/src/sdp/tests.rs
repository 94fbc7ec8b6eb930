use std::io::Cursor;
use std::time::Duration;

use sdp::description::session::SessionDescription;

use super::*;

const SPS: [u8; 4] = [0x67, 0x42, 0xc0, 0x0b];
const PPS: [u8; 4] = [0x68, 0xce, 0x3c, 0x80];

fn sdp(codec: Codec, payload_type: u8, sets: &[Vec<u8>]) -> SubscriberSdp<'_> {
    SubscriberSdp {
        node: "edge-1",
        subscriber: Some(7),
        dest: "127.0.0.1:5004".parse().unwrap(),
        media_from: "127.0.0.1:41000".parse().unwrap(),
        codec,
        payload_type,
        clock_rate: codec.default_clock_rate(),
        source: Some(SdpSource {
            id: 2,
            name: "cam1",
            parameter_sets: sets,
        }),
        nack: true,
        // 2023-11-14 22:13:20 UTC.
        generated: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    }
}

/// Parsed back by the same crate: the text is well-formed SDP, not only the lines we look for.
fn parse(text: &str) -> SessionDescription {
    SessionDescription::unmarshal(&mut Cursor::new(text.as_bytes()))
        .unwrap_or_else(|e| panic!("{e}:\n{text}"))
}

fn media_attr(text: &str, key: &str) -> Option<String> {
    let parsed = parse(text);
    let media = &parsed.media_descriptions[0];
    media
        .attribute(key)
        .map(|v| v.unwrap_or_default().to_string())
}

#[test]
fn vp8_is_the_whole_text_a_player_needs() {
    let text = sdp(Codec::Vp8, 96, &[]).render();
    let expected = format!(
        "v=0\r\n\
         o=- 7 1700000000000000 IN IP4 127.0.0.1\r\n\
         s=corecast subscriber 7\r\n\
         i=node edge-1, subscriber 7, source 2 (cam1), generated Tue, 14 Nov 2023 22:13:20 GMT\r\n\
         c=IN IP4 127.0.0.1\r\n\
         t=0 0\r\n\
         a=tool:corecast {}\r\n\
         m=video 5004 RTP/AVP 96\r\n\
         a=rtpmap:96 VP8/90000\r\n\
         a=rtcp:5005\r\n\
         a=rtcp-fb:96 nack\r\n\
         a=rtcp-fb:96 nack pli\r\n\
         a=recvonly\r\n",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(text, expected);
    parse(&text);
}

#[test]
fn nack_is_offered_only_with_a_history_and_pli_only_for_video() {
    let without = SubscriberSdp {
        nack: false,
        ..sdp(Codec::Vp8, 96, &[])
    }
    .render();
    assert!(!without.contains("a=rtcp-fb:96 nack\r\n"), "{without}");
    assert!(without.contains("a=rtcp-fb:96 nack pli\r\n"), "{without}");
    let opus = sdp(Codec::Opus, 111, &[]).render();
    assert!(opus.contains("a=rtcp-fb:111 nack\r\n"), "{opus}");
    assert!(!opus.contains("pli"), "{opus}");
}

#[test]
fn every_codec_has_its_encoding_name_and_clock_rate() {
    for (codec, pt, rtpmap, kind) in [
        (Codec::Vp8, 96, "96 VP8/90000", "video"),
        (Codec::Vp9, 98, "98 VP9/90000", "video"),
        (Codec::H264, 102, "102 H264/90000", "video"),
        (Codec::H265, 104, "104 H265/90000", "video"),
        (Codec::Av1, 106, "106 AV1/90000", "video"),
        (Codec::Opus, 111, "111 opus/48000/2", "audio"),
    ] {
        let text = sdp(codec, pt, &[]).render();
        let parsed = parse(&text);
        let media = &parsed.media_descriptions[0];
        assert_eq!(media.media_name.media, kind, "{codec}");
        assert_eq!(media.media_name.formats, [pt.to_string()], "{codec}");
        assert_eq!(media_attr(&text, "rtpmap").as_deref(), Some(rtpmap));
        assert!(media.has_attribute("recvonly"), "{codec}");
        let fmtp = media_attr(&text, "fmtp");
        match codec {
            Codec::H264 => assert_eq!(fmtp.as_deref(), Some("102 packetization-mode=1")),
            _ => assert_eq!(fmtp, None, "{codec} needs no fmtp"),
        }
    }
}

#[test]
fn opus_at_another_clock_rate_says_so() {
    let mut s = sdp(Codec::Opus, 111, &[]);
    s.clock_rate = 16_000;
    assert_eq!(
        media_attr(&s.render(), "rtpmap").as_deref(),
        Some("111 opus/16000/2")
    );
}

#[test]
fn h264_carries_the_known_parameter_sets_and_the_profile_from_the_sps() {
    let sets = [SPS.to_vec(), PPS.to_vec()];
    let text = sdp(Codec::H264, 102, &sets).render();
    assert_eq!(
        media_attr(&text, "fmtp").as_deref(),
        Some("102 packetization-mode=1;profile-level-id=42c00b;sprop-parameter-sets=Z0LACw==,aM48gA==")
    );
    assert!(
        parse(&text).media_descriptions[0].media_title.is_none(),
        "nothing is missing:\n{text}"
    );
}

#[test]
fn h265_carries_vps_sps_and_pps() {
    let sets = [
        vec![0x40, 0x01, 0x0c],
        vec![0x42, 0x01, 0x01],
        vec![0x44, 0x01, 0xc1],
    ];
    let text = sdp(Codec::H265, 104, &sets).render();
    assert_eq!(
        media_attr(&text, "fmtp").as_deref(),
        Some("104 sprop-vps=QAEM;sprop-sps=QgEB;sprop-pps=RAHB")
    );
}

#[test]
fn without_parameter_sets_it_says_to_fetch_again_after_the_first_keyframe() {
    for (codec, pt, kinds) in [
        (Codec::H264, 102, "H.264 parameter sets (SPS/PPS)"),
        (Codec::H265, 104, "H.265 parameter sets (VPS/SPS/PPS)"),
    ] {
        // Nothing known, or an incomplete list: no sprop at all rather than a broken one.
        for sets in [vec![], vec![SPS.to_vec()]] {
            let text = sdp(codec, pt, &sets).render();
            let title = parse(&text).media_descriptions[0]
                .media_title
                .clone()
                .unwrap_or_else(|| panic!("no i= line:\n{text}"));
            assert!(
                title.contains(&format!("no {kinds} known yet for source 2")),
                "{title}"
            );
            assert!(
                title.contains("fetch it again after the source's first keyframe"),
                "{title}"
            );
            assert!(!text.contains("sprop"), "{text}");
        }
    }
}

#[test]
fn ipv6_destinations_and_origins_are_ip6() {
    let mut s = sdp(Codec::Vp8, 96, &[]);
    s.dest = "[2001:db8::7]:6000".parse().unwrap();
    s.media_from = "[::1]:41000".parse().unwrap();
    let text = s.render();
    assert!(text.contains("\r\nc=IN IP6 2001:db8::7\r\n"), "{text}");
    assert!(
        text.contains("\r\no=- 7 1700000000000000 IN IP6 ::1\r\n"),
        "{text}"
    );
    assert!(text.contains("\r\nm=video 6000 RTP/AVP 96\r\n"), "{text}");
    assert!(text.contains("\r\na=rtcp:6001\r\n"), "{text}");
    parse(&text);
}

#[test]
fn the_last_port_can_only_take_rtcp_muxed() {
    let mut s = sdp(Codec::Vp8, 96, &[]);
    s.dest = "127.0.0.1:65535".parse().unwrap();
    let text = s.render();
    assert!(text.contains("\r\na=rtcp-mux\r\n"), "{text}");
    assert!(!text.contains("a=rtcp:"), "{text}");
}

#[test]
fn a_detached_subscriber_says_it_has_no_source() {
    let mut s = sdp(Codec::H264, 102, &[]);
    s.source = None;
    let text = s.render();
    let parsed = parse(&text);
    let info = parsed.session_information.unwrap();
    assert!(info.contains("no source (its source was deleted"), "{info}");
    assert_eq!(
        media_attr(&text, "fmtp").as_deref(),
        Some("102 packetization-mode=1")
    );
}

#[test]
fn a_subscriber_not_added_yet_has_the_same_media_and_says_so() {
    let added = sdp(Codec::Vp8, 96, &[]).render();
    let ahead = SubscriberSdp {
        subscriber: None,
        ..sdp(Codec::Vp8, 96, &[])
    }
    .render();
    let media = |text: &str| text[text.find("m=").unwrap()..].to_string();
    assert_eq!(media(&added), media(&ahead));
    let parsed = parse(&ahead);
    assert_eq!(
        parsed.session_name,
        "corecast a subscriber at 127.0.0.1:5004 not added yet"
    );
    assert!(
        parsed.origin.session_id > u64::from(u32::MAX),
        "no subscriber's id"
    );
    assert!(parsed
        .session_information
        .unwrap()
        .contains("a subscriber at 127.0.0.1:5004 not added yet, source 2 (cam1)"));
}

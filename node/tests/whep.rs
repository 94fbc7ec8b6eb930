//! WHEP against a running node, without a browser: what an offer gets (the answer's shape, the
//! viewer as a subscriber), what a bad one gets (a 4xx naming what is wrong), the viewer's
//! resource (`PATCH`, `DELETE` twice), a full node (503 with Retry-After), a viewer that
//! never connects (removed at `--consent-timeout`), a connected viewer that moves to a new
//! address (its media follows it), and which SRTP profile a viewer gets (`--srtp-profiles`).
//! The offers are the fixtures of corecast-webrtc (Chrome's, Firefox's, aiortc's recvonly
//! offers), or the load generator's viewer for the ones that connect.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::*;
use corecast_engine::rtp::RtpHeader;
use corecast_engine::Codec;
use corecast_loadgen::whep::answer::parse_answer;
use corecast_loadgen::whep::http::WhepHttp;
use corecast_loadgen::whep::join::{join, ToJoin};
use corecast_loadgen::whep::media::ViewerMedia;
use corecast_loadgen::whep::offer::{build_offer, ViewerIce};
use corecast_loadgen::whep::stun::{binding_request, is_success, looks_like_stun};
use corecast_signaling::api::{CreateChannel, SubscriberView};
use corecast_signaling::client::Client;
use corecast_webrtc::dtls::Certificate;
use serde_json::Value;

const CHROME: &str = include_str!("../../webrtc/tests/fixtures/chrome_recvonly.sdp");
const FIREFOX: &str = include_str!("../../webrtc/tests/fixtures/firefox_recvonly.sdp");
const AIORTC: &str = include_str!("../../webrtc/tests/fixtures/aiortc_recvonly.sdp");

struct Answer {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into();
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let mut resp = agent
        .run(req.body(body.as_bytes().to_vec()).unwrap())
        .expect("an HTTP answer");
    Answer {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.body_mut().read_to_string().unwrap(),
    }
}

fn offer(client: &Client, channel: u32, sdp: &str) -> Answer {
    let url = format!("{}/v1/channels/{channel}/whep", client.base());
    request("POST", &url, &[("Content-Type", "application/sdp")], sdp)
}

fn channel(client: &Client, name: &str, video: Option<u32>, audio: Option<u32>) -> u32 {
    client
        .create_channel(&CreateChannel {
            name: name.into(),
            video,
            audio,
        })
        .expect("channel created")
        .id
}

fn viewer(client: &Client, id: u32) -> SubscriberView {
    client.subscriber(id).expect("the viewer is a subscriber")
}

#[test]
fn an_offer_is_answered_and_the_viewer_is_a_subscriber() {
    let (_node, client) = start(&[]);
    let cam = source(&client, "cam", "vp8");
    let mic = source(&client, "mic", "opus");
    let ch = channel(&client, "main", Some(cam.id), Some(mic.id));
    for (name, sdp) in [("chrome", CHROME), ("firefox", FIREFOX), ("aiortc", AIORTC)] {
        let a = offer(&client, ch, sdp);
        assert_eq!(a.status, 201, "{name}: {}", a.body);
        assert_eq!(a.header("content-type"), Some("application/sdp"), "{name}");
        let location = a.header("location").expect("a Location").to_string();
        let id: u32 = location
            .strip_prefix("/v1/subscribers/")
            .and_then(|s| s.split_once("?key="))
            .and_then(|(id, key)| (key.len() == 32).then_some(id))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{name}: Location {location}"));
        assert!(
            a.header("etag").is_some_and(|e| e.starts_with('"')),
            "{name}"
        );
        // The answer: ICE-lite, one BUNDLE, the shard socket as the host candidate.
        assert!(a.body.contains("a=ice-lite"), "{name}: {}", a.body);
        assert!(a.body.contains("a=setup:passive"), "{name}");
        assert!(a.body.contains("typ host"), "{name}");
        let v = viewer(&client, id);
        assert_eq!(v.transport, "webrtc");
        let details = v.viewer.expect("viewer details");
        assert_eq!(details.channel, ch);
        assert_eq!(details.state, "connecting");
        assert_eq!(details.tracks.len(), 2, "{name}: video and audio");
        let port = format!(" {} typ host", v.media_from.port());
        assert!(
            a.body.contains(&port),
            "{name}: candidate on the shard socket"
        );
    }
    let listed = client.subscribers().unwrap();
    assert_eq!(listed.len(), 3, "each viewer listed once, not per track");
    assert_eq!(client.channel(ch).unwrap().viewers, 3);
}

#[test]
fn bad_offers_get_a_4xx_that_names_what_is_wrong() {
    let (_node, client) = start(&[]);
    let cam = source(&client, "cam", "vp8");
    let h264 = source(&client, "studio", "h264");
    let ch = channel(&client, "main", Some(cam.id), None);
    let studio = channel(&client, "studio", Some(h264.id), None);
    let cases: [(&str, String, u16, &str); 5] = [
        (
            "no BUNDLE",
            CHROME.replace("a=group:BUNDLE 0 1\r\n", ""),
            400,
            "BUNDLE",
        ),
        (
            "no rtcp-mux",
            CHROME.replace("a=rtcp-mux\r\n", ""),
            400,
            "rtcp-mux",
        ),
        ("not SDP", "hello".to_string(), 400, "SDP"),
        ("empty", String::new(), 400, "empty"),
        (
            "setup:passive",
            CHROME.replace("a=setup:actpass", "a=setup:passive"),
            400,
            "passive",
        ),
    ];
    for (what, sdp, status, names) in cases {
        let a = offer(&client, ch, &sdp);
        assert_eq!(a.status, status, "{what}: {}", a.body);
        let body = a.json();
        assert!(
            body["message"].as_str().unwrap().contains(names),
            "{what}: {body}"
        );
    }
    let a = offer(&client, 99, CHROME);
    assert_eq!(
        (a.status, a.json()["error"].clone()),
        (404, "not_found".into())
    );
    let url = format!("{}/v1/channels/{ch}/whep", client.base());
    let a = request("POST", &url, &[("Content-Type", "text/plain")], CHROME);
    assert_eq!(a.status, 415, "{}", a.body);
    // aiortc offers H.264 constrained baseline only; an H.264 source whose SPS is not known
    // yet takes the most compatible one, so it is answered.
    let a = offer(&client, studio, AIORTC);
    assert_eq!(a.status, 201, "{}", a.body);
    // Without video in the offer there is nothing to send a video-only channel.
    let audio_only = AIORTC
        .split("m=video")
        .next()
        .unwrap()
        .replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0");
    let a = offer(&client, ch, &audio_only);
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(
        client.subscribers().unwrap().len() == 1,
        "refusals admit nobody"
    );
}

#[test]
fn the_viewer_resource_takes_patch_and_delete_once() {
    let (_node, client) = start(&[]);
    let cam = source(&client, "cam", "vp8");
    let ch = channel(&client, "main", Some(cam.id), None);
    let a = offer(&client, ch, CHROME);
    assert_eq!(a.status, 201, "{}", a.body);
    let url = format!("{}{}", client.base(), a.header("location").unwrap());
    let etag = a.header("etag").unwrap().to_string();
    let attr = |name: &str| {
        CHROME
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .expect("the fixture has it")
            .to_string()
    };
    let (ufrag, pwd) = (attr("a=ice-ufrag:"), attr("a=ice-pwd:"));
    let fragment = |ufrag: &str| {
        format!(
            "a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n\
             a=mid:0\r\na=candidate:1 1 udp 2113937151 192.0.2.1 5000 typ host\r\n"
        )
    };
    let frag = &fragment(&ufrag);
    let frag_type = ("Content-Type", "application/trickle-ice-sdpfrag");
    let p = request("PATCH", &url, &[frag_type, ("If-Match", &etag)], frag);
    assert_eq!(p.status, 204, "{}", p.body);
    let restart = request("PATCH", &url, &[frag_type], &fragment("newUfrag"));
    assert_eq!(restart.status, 400, "{}", restart.body);
    assert!(restart.json()["message"]
        .as_str()
        .unwrap()
        .contains("ICE restart"));
    let p = request("PATCH", &url, &[frag_type, ("If-Match", "\"other\"")], frag);
    assert_eq!(p.status, 412, "{}", p.body);
    let p = request("PATCH", &url, &[("Content-Type", "application/json")], "{}");
    assert_eq!(p.status, 415, "{}", p.body);
    let d = request("DELETE", &url, &[], "");
    assert_eq!(d.status, 204, "{}", d.body);
    let d = request("DELETE", &url, &[], "");
    assert_eq!(d.status, 404, "{}", d.body);
    assert!(client.subscribers().unwrap().is_empty());
}

#[test]
fn a_full_node_says_503_with_retry_after() {
    let (_node, client) = start(&["--max-subscribers", "1"]);
    let cam = source(&client, "cam", "vp8");
    let ch = channel(&client, "main", Some(cam.id), None);
    assert_eq!(offer(&client, ch, CHROME).status, 201);
    let a = offer(&client, ch, FIREFOX);
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(a.header("retry-after").is_some(), "Retry-After");
    assert_eq!(a.json()["error"], "unavailable");
}

#[test]
fn a_viewer_that_never_connects_is_removed_at_the_consent_timeout() {
    let events = events_file("whep-timeout");
    let path = events.to_str().unwrap().to_string();
    let (_node, client) = start(&["--consent-timeout", "1000", "--events-jsonl", &path]);
    let cam = source(&client, "cam", "vp8");
    let ch = channel(&client, "main", Some(cam.id), None);
    let a = offer(&client, ch, CHROME);
    assert_eq!(a.status, 201);
    until("the viewer that never checks to be removed", || {
        client.subscribers().is_ok_and(|s| s.is_empty())
    });
    until("its removal event", || {
        std::fs::read_to_string(&events).is_ok_and(|text| {
            text.lines().any(|l| {
                let e: Value = serde_json::from_str(l).unwrap();
                e["type"] == "subscriber.removed" && e["data"]["reason"] == "connect_timed_out"
            })
        })
    });
}

#[test]
fn public_ip_is_the_candidate_viewers_are_given() {
    let (_node, client) = start(&["--public-ip", "203.0.113.9"]);
    let cam = source(&client, "cam", "vp8");
    let ch = channel(&client, "main", Some(cam.id), None);
    let a = offer(&client, ch, FIREFOX);
    assert_eq!(a.status, 201, "{}", a.body);
    let candidate = a
        .body
        .lines()
        .find(|l| l.starts_with("a=candidate:"))
        .expect("a host candidate");
    assert!(candidate.contains(" 203.0.113.9 "), "{candidate}");
    assert!(!a.body.contains("127.0.0.1 "), "{}", a.body);
}

/// What one socket of a viewer got: the sequence numbers of the SRTP it opened, in order, and
/// the STUN answers that came to it.
#[derive(Default)]
struct Heard {
    seqs: Vec<u16>,
    stun: Vec<Vec<u8>>,
}

/// Everything waiting on `socket`, opened with the viewer's one SRTP context.
fn hear(socket: &UdpSocket, media: &mut ViewerMedia, heard: &mut Heard) {
    let mut buf = [0u8; 2048];
    while let Ok(n) = socket.recv(&mut buf) {
        if looks_like_stun(&buf[..n]) {
            heard.stun.push(buf[..n].to_vec());
        } else if let Some(len) = media.open(&mut buf[..n]) {
            let h = RtpHeader::parse(&buf[..len]).expect("the node sends valid RTP");
            heard.seqs.push(h.seq.0);
        }
    }
}

#[test]
fn a_connected_viewer_that_moves_to_a_new_address_gets_its_media_there() {
    let (_node, client) = start(&[]);
    let cam = source(&client, "cam", "vp8");
    let ch = channel(&client, "main", Some(cam.id), None);
    let mut sender = Sender::new(ingest_addr(&cam), 0x5157, 10);
    let mut next_send = Instant::now();
    // One packet a millisecond at most, however fast the waits below spin.
    let mut pace = |sender: &mut Sender| {
        if Instant::now() >= next_send {
            sender.send();
            next_send = Instant::now() + Duration::from_millis(1);
        }
    };

    // A viewer connects from its first address: offer, ICE, DTLS, as the load generator does.
    let certificate = Certificate::generate().expect("a certificate");
    let ice = ViewerIce::random();
    let http = WhepHttp::new(client.base(), None, DEADLINE);
    let created = http
        .offer(
            ch,
            &build_offer(Codec::Vp8, &ice, &certificate.fingerprint()),
        )
        .expect("the offer is answered");
    let answer = parse_answer(&created.answer).expect("a usable answer");
    let first = receiver();
    first.connect(answer.candidate).unwrap();
    let to_join = [ToJoin {
        socket: &first,
        ice: &ice,
        answer: &answer,
    }];
    let joined = join(&to_join, &certificate, Instant::now() + DEADLINE, None).unwrap();
    let srtp = joined
        .inbound
        .into_iter()
        .next()
        .unwrap()
        .expect("connected");
    let mut media = ViewerMedia::new(srtp, answer.ssrc);
    let (mut at_first, mut at_second) = (Heard::default(), Heard::default());
    until("media at the first address", || {
        pace(&mut sender);
        hear(&first, &mut media, &mut at_first);
        at_first.seqs.len() >= 20
    });

    // It moves: checks from a second address, the first nominating it. Not the port just above
    // the first's, which the node would take as the first's RTCP port (RFC 3550 §11).
    let second = std::iter::repeat_with(receiver)
        .take(8)
        .find(|s| {
            let (a, b) = (first.local_addr().unwrap(), s.local_addr().unwrap());
            a.port() != b.port().wrapping_add(1) && b.port() != a.port().wrapping_add(1)
        })
        .expect("a second port that is not the first's neighbour");
    second.connect(answer.candidate).unwrap();
    let (check, tid) = binding_request(&answer.ufrag, &ice.ufrag, &answer.pwd, 7, true);
    let mut check_at = Instant::now() - Duration::from_secs(1);
    until("media at the second address", || {
        if Instant::now() >= check_at {
            second.send(&check).unwrap();
            check_at = Instant::now() + Duration::from_millis(200);
        }
        pace(&mut sender);
        hear(&first, &mut media, &mut at_first);
        hear(&second, &mut media, &mut at_second);
        at_second.seqs.len() >= 20
    });
    assert!(
        at_second
            .stun
            .iter()
            .any(|m| is_success(m, tid, &answer.pwd)),
        "the nominating check was answered at the second address"
    );
    // Nothing more goes to the first: 20 more packets reach the second (sent from the same
    // shard socket over loopback, after any copy for the first), and the first hears none.
    hear(&first, &mut media, &mut at_first);
    let (first_had, second_had) = (at_first.seqs.len(), at_second.seqs.len());
    until("20 more packets at the second address", || {
        pace(&mut sender);
        hear(&second, &mut media, &mut at_second);
        at_second.seqs.len() >= second_had + 20
    });
    hear(&first, &mut media, &mut at_first);
    assert_eq!(
        at_first.seqs.len(),
        first_had,
        "media still went to the old address"
    );

    // One stream across the move, none lost or doubled, opened by the same SRTP context (same
    // keys, same rollover counter): what the first heard, then what the second did.
    let seqs: Vec<u16> = at_first
        .seqs
        .iter()
        .chain(&at_second.seqs)
        .copied()
        .collect();
    for w in seqs.windows(2) {
        assert_eq!(w[1], w[0].wrapping_add(1), "{seqs:?}");
    }
    assert_eq!(media.counts.unprotect_drops(), 0, "{:?}", media.counts);
    assert_eq!(media.counts.ssrc_not_answered, 0);
    // The node says where the viewer is now.
    let moved_to = second.local_addr().unwrap();
    until("the viewer's dest to be the second address", || {
        client
            .subscriber(created.id)
            .is_ok_and(|v| v.dest == moved_to)
    });
    http.delete(&created.location).expect("the viewer ends");
}

/// The `data.profile` of the node's first `viewer.connected` event, once written.
fn connected_profile(events: &std::path::Path) -> String {
    let mut profile = String::new();
    until("a viewer.connected event", || {
        let text = std::fs::read_to_string(events).unwrap_or_default();
        let connected = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|e| e["type"] == "viewer.connected");
        match connected {
            Some(e) => {
                profile = e["data"]["profile"].as_str().unwrap_or("").to_string();
                true
            }
            None => false,
        }
    });
    profile
}

/// A viewer that offers every SRTP profile, as browsers do, gets the first of
/// `--srtp-profiles`: AES-128-GCM by default.
#[test]
fn srtp_profiles_decides_what_a_viewer_that_offers_all_gets() {
    let cases = [
        (None, "AeadAes128Gcm"),
        (Some("aead-aes-256-gcm,aead-aes-128-gcm"), "AeadAes256Gcm"),
    ];
    for (i, (profiles, expected)) in cases.into_iter().enumerate() {
        let events = events_file(&format!("whep-profile-{i}"));
        let path = events.to_str().unwrap().to_string();
        let mut args = vec!["--events-jsonl", &path];
        args.extend(profiles.iter().flat_map(|p| ["--srtp-profiles", p]));
        let (_node, client) = start(&args);
        let cam = source(&client, "cam", "vp8");
        let ch = channel(&client, "main", Some(cam.id), None);
        let certificate = Certificate::generate().expect("a certificate");
        let ice = ViewerIce::random();
        let http = WhepHttp::new(client.base(), None, DEADLINE);
        let offer = build_offer(Codec::Vp8, &ice, &certificate.fingerprint());
        let created = http.offer(ch, &offer).expect("the offer is answered");
        let answer = parse_answer(&created.answer).expect("a usable answer");
        let socket = receiver();
        socket.connect(answer.candidate).unwrap();
        let to_join = [ToJoin {
            socket: &socket,
            ice: &ice,
            answer: &answer,
        }];
        let joined = join(&to_join, &certificate, Instant::now() + DEADLINE, None).unwrap();
        assert!(joined.inbound[0].is_ok(), "the viewer connected");
        assert_eq!(
            connected_profile(&events),
            expected,
            "--srtp-profiles {profiles:?}"
        );
    }
}

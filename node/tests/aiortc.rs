//! An independent WebRTC stack watches through corecast: aiortc (aioice, OpenSSL's DTLS,
//! libsrtp2, FFmpeg; no code shared with Chromium or with corecast) runs
//! scripts/aiortc/whep_viewer.py against a channel fed by GStreamer, once with each SRTP profile
//! it can offer, restricted to that one. Pass: frames decoded at about the source's rate with no
//! decoder error, audio frames received, the resource deleted, and the node's own
//! `viewer.connected` event naming the profile aiortc says it negotiated. One more run offers
//! aiortc's H.264 (Constrained Baseline 42e01f and Baseline 42001f, packetization-mode 1) to an
//! x264 Constrained Baseline source. A last run vanishes after connecting (no DELETE, no DTLS
//! close, no more consent checks) and must be removed when its consent expires, with that reason.
//!
//! Needs gst-launch-1.0 (with x264enc) and python3 with aiortc: `pip install -r
//! scripts/aiortc/requirements.txt`. Set CORECAST_SKIP_AIORTC_TESTS=1 to skip on a machine
//! without.

mod common;

use std::path::Path;
use std::process::Command;

use common::media::{gst, repo, Reaped};
use common::*;
use corecast::Node;
use corecast_signaling::api::CreateChannel;
use corecast_signaling::client::Client;
use serde_json::Value;

/// How long each run receives once DTLS is up.
const SECONDS: u64 = 6;

fn tools_present() -> bool {
    // Every element the senders use, so a missing plugin says so here rather than as a source
    // that never receives.
    let gst = [
        "vp8enc",
        "x264enc",
        "opusenc",
        "rtpvp8pay",
        "rtph264pay",
        "rtpopuspay",
    ]
    .iter()
    .all(|element| {
        Command::new("gst-inspect-1.0")
            .arg(element)
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let aiortc = Command::new("python3")
        .args(["-c", "import aiortc"])
        .output()
        .is_ok_and(|o| o.status.success());
    if gst && aiortc {
        return true;
    }
    if std::env::var_os("CORECAST_SKIP_AIORTC_TESTS").is_some() {
        eprintln!("skipping: gst-launch-1.0 or python3's aiortc missing");
        return false;
    }
    panic!(
        "the aiortc test needs GStreamer with vp8enc, x264enc and opusenc ({gst}) and python3 that imports aiortc \
         ({aiortc}): apt-get install gstreamer1.0-tools gstreamer1.0-plugins-{{base,good,ugly}}, \
         then `pip install -r scripts/aiortc/requirements.txt`, or set \
         CORECAST_SKIP_AIORTC_TESTS=1"
    );
}

/// 30 fps with a keyframe every half second, so each viewer starts within half a second.
fn vp8() -> String {
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! \
     vp8enc keyframe-max-dist=15 deadline=1 cpu-used=8 ! rtpvp8pay picture-id-mode=15-bit"
        .into()
}

/// Constrained Baseline (profile_idc 66 with constraint_set1), which aiortc offers as 42e01f;
/// SPS/PPS before every IDR so the node learns the profile-level-id and each viewer can start.
fn h264() -> String {
    "videotestsrc is-live=true pattern=smpte ! video/x-raw,width=352,height=288,framerate=30/1 ! \
     x264enc tune=zerolatency speed-preset=ultrafast sliced-threads=false key-int-max=15 ! \
     video/x-h264,profile=constrained-baseline ! rtph264pay config-interval=-1"
        .into()
}

fn opus() -> String {
    "audiotestsrc is-live=true freq=440 ! audioconvert ! audioresample ! opusenc ! rtpopuspay"
        .into()
}

struct Channel {
    id: u32,
    _senders: [Reaped; 2],
}

/// A channel of `video_codec` (sent by `video`) and Opus, returned once both sources have
/// received packets, so that the node knows an H.264 source's parameter sets when the offer
/// comes.
fn channel(client: &Client, name: &str, video_codec: &str, video: &str) -> Channel {
    let cam = source(client, &format!("{name}-cam"), video_codec);
    let mic = source(client, &format!("{name}-mic"), "opus");
    let senders = [gst(video, cam.ingest.port), gst(&opus(), mic.ingest.port)];
    until(&format!("GStreamer's packets at {name}'s sources"), || {
        let stats = client.stats().expect("stats");
        let receiving = |id: u32| {
            stats
                .sources
                .iter()
                .any(|s| s.id == id && s.counters.packets_accepted > 0)
        };
        receiving(cam.id) && receiving(mic.id)
    });
    let id = client
        .create_channel(&CreateChannel {
            name: name.into(),
            video: Some(cam.id),
            audio: Some(mic.id),
        })
        .expect("channel created")
        .id;
    Channel {
        id,
        _senders: senders,
    }
}

/// One run of the viewer script; its JSON report, checked for a clean decode at the source's
/// rate.
fn watch(node: &Node, channel: u32, profile: &str, codec: &str) -> Value {
    let url = format!("http://{}/v1/channels/{channel}/whep", node.http_addr());
    let run = Command::new("python3")
        .arg(repo().join("scripts/aiortc/whep_viewer.py"))
        .args([
            &url,
            &SECONDS.to_string(),
            "--profile",
            profile,
            "--codec",
            codec,
        ])
        .output()
        .expect("python3 runs scripts/aiortc/whep_viewer.py");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("whep_viewer.py printed no report ({e}):\n{stdout}\n{stderr}");
    });
    let shown = serde_json::to_string_pretty(&report).unwrap();
    eprintln!("aiortc with {profile} over {codec}: {shown}");
    assert!(
        run.status.success(),
        "the viewer failed:\n{shown}\n{stderr}"
    );
    let n = |key: &str| {
        report[key]
            .as_u64()
            .unwrap_or_else(|| panic!("no {key}:\n{shown}"))
    };
    assert_eq!(report["profile"], profile, "aiortc negotiated:\n{shown}");
    assert_eq!(n("decode_errors"), 0, "aiortc's decoder failed:\n{shown}");
    assert_eq!(n("libav_errors"), 0, "FFmpeg reported errors:\n{shown}");
    // 30 fps for SECONDS, less the wait for the first keyframe (at most half a second).
    assert!(
        n("video_frames") >= 25 * SECONDS,
        "frames decoded below the source's rate:\n{shown}"
    );
    // Opus at 20 ms a frame: 50 a second.
    assert!(
        n("audio_frames") >= 40 * SECONDS,
        "audio frames below the source's rate:\n{shown}"
    );
    // aiortc's own sequence tracking: nothing lost on loopback, per kind.
    for kind in ["video", "audio"] {
        let rtp = &report["rtp"][kind];
        assert!(
            rtp["packets"].as_u64().is_some_and(|p| p > 0),
            "aiortc counted no {kind} RTP:\n{shown}"
        );
        assert_eq!(rtp["lost"], 0, "{kind} packets lost:\n{shown}");
        // The node's sender reports, sealed as SRTCP in this run's profile, reached aiortc.
        assert!(
            report["rtp"][format!("{kind}_sender_report")]["packets_sent"]
                .as_u64()
                .is_some_and(|p| p > 0),
            "no sender report on {kind}:\n{shown}"
        );
    }
    assert!(
        (200..300).contains(&n("delete_status")),
        "DELETE refused:\n{shown}"
    );
    report
}

/// The `data.profile` of every `viewer.connected` event the node has written so far.
fn connected_profiles(events: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(events).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|e| e["type"] == "viewer.connected")
        .map(|e| e["data"]["profile"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The node's name (its `Debug` of `corecast_srtp::Profile`) for an RFC profile name.
fn node_name(profile: &str) -> &'static str {
    match profile {
        "AEAD_AES_256_GCM" => "AeadAes256Gcm",
        "AEAD_AES_128_GCM" => "AeadAes128Gcm",
        "AES_CM_128_HMAC_SHA1_80" => "Aes128CmHmacSha1_80",
        other => panic!("unknown profile {other}"),
    }
}

/// Waits for the node to have written `count` `viewer.connected` events; returns their
/// profiles.
fn profiles_after(events: &Path, count: usize) -> Vec<String> {
    let mut seen = Vec::new();
    until("the node's viewer.connected events", || {
        seen = connected_profiles(events);
        seen.len() >= count
    });
    seen
}

#[test]
fn aiortc_decodes_vp8_and_opus_with_each_srtp_profile() {
    if !tools_present() {
        return;
    }
    let events = events_file("aiortc");
    let (node, client) = start(&["--events-jsonl", &events.display().to_string()]);
    let vp8_channel = channel(&client, "vp8", "vp8", &vp8());
    let profiles = [
        "AEAD_AES_256_GCM",
        "AEAD_AES_128_GCM",
        "AES_CM_128_HMAC_SHA1_80",
    ];
    for (i, profile) in profiles.iter().enumerate() {
        let report = watch(&node, vp8_channel.id, profile, "VP8");
        assert_eq!(report["codecs"]["video"], "VP8/90000", "{report}");
        assert_eq!(
            report["sizes"],
            serde_json::json!({"320x240": report["video_frames"]})
        );
        let seen = profiles_after(&events, i + 1);
        assert_eq!(
            seen[i],
            node_name(profile),
            "the node's viewer.connected events: {seen:?}"
        );
    }
}

#[test]
fn aiortc_decodes_h264_constrained_baseline_and_opus() {
    if !tools_present() {
        return;
    }
    let events = events_file("aiortc-h264");
    let (node, client) = start(&["--events-jsonl", &events.display().to_string()]);
    let h264_channel = channel(&client, "h264", "h264", &h264());
    let report = watch(&node, h264_channel.id, "AEAD_AES_256_GCM", "H264");
    assert_eq!(report["codecs"]["video"], "H264/90000", "{report}");
    // aiortc offers Baseline (42001f) and Constrained Baseline (42e01f); the node must pick
    // the latter's payload type for its Constrained Baseline source, and answer with the
    // source's own profile-level-id (x264's 42c0xx, the same profile by libwebrtc's table).
    let codecs = &report["codecs"];
    let fmtp_has = |key: &str, what: &str| codecs[key].as_str().unwrap_or("").contains(what);
    assert!(
        fmtp_has("video_offered_fmtp", "profile-level-id=42e01f")
            && fmtp_has("video_offered_fmtp", "packetization-mode=1"),
        "the answer did not pick aiortc's Constrained Baseline: {report}"
    );
    assert!(
        fmtp_has("video_fmtp", "profile-level-id=42c0")
            && fmtp_has("video_fmtp", "packetization-mode=1"),
        "the answer does not describe the Constrained Baseline source: {report}"
    );
    assert_eq!(
        report["sizes"],
        serde_json::json!({"352x288": report["video_frames"]})
    );
    assert_eq!(profiles_after(&events, 1)[0], "AeadAes256Gcm");
}

/// A viewer that vanishes (a crashed tab: no DELETE, no DTLS close, its consent checks stop)
/// is removed once its consent expires, with that reason, and only then.
#[test]
fn a_connected_viewer_that_vanishes_is_removed_when_its_consent_expires() {
    if !tools_present() {
        return;
    }
    let events = events_file("aiortc-vanish");
    // aioice checks consent every 4–6 s (RFC 7675 §5.1), so 8 s lets a live viewer stay.
    let consent_ms = 8_000;
    let (node, client) = start(&[
        "--events-jsonl",
        &events.display().to_string(),
        "--consent-timeout",
        &consent_ms.to_string(),
    ]);
    let vp8_channel = channel(&client, "vp8", "vp8", &vp8());
    let url = format!(
        "http://{}/v1/channels/{}/whep",
        node.http_addr(),
        vp8_channel.id
    );
    let run = Command::new("python3")
        .arg(repo().join("scripts/aiortc/whep_viewer.py"))
        .args([&url, "2", "--vanish"])
        .output()
        .expect("python3 runs scripts/aiortc/whep_viewer.py");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        let stderr = String::from_utf8_lossy(&run.stderr);
        panic!("whep_viewer.py printed no report ({e}):\n{stdout}\n{stderr}");
    });
    assert!(run.status.success(), "the viewer failed: {report}");
    assert!(
        report["video_frames"].as_u64().is_some_and(|n| n > 0),
        "{report}"
    );
    assert_eq!(
        report["delete_status"],
        Value::Null,
        "it must not DELETE: {report}"
    );
    let gone_at = std::time::Instant::now();
    assert_eq!(profiles_after(&events, 1).len(), 1, "it connected");
    // Still listed right after it vanished: only consent expiry can tell the node.
    let listed = client.subscribers().expect("subscribers");
    assert_eq!(listed.len(), 1, "the viewer is still there: {listed:?}");
    let removal = |text: &str| {
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|e| e["type"] == "subscriber.removed")
    };
    // The consent timeout plus the usual deadline: the removal may come up to a whole timeout
    // after the vanish.
    let deadline = gone_at + std::time::Duration::from_millis(consent_ms) + DEADLINE;
    let mut removed = None;
    until_by(deadline, "the vanished viewer's removal", || {
        removed = removal(&std::fs::read_to_string(&events).unwrap_or_default());
        removed.is_some()
    });
    let removed = removed.expect("until_by returned");
    assert_eq!(removed["data"]["reason"], "consent_expired", "{removed}");
    assert!(client.subscribers().expect("subscribers").is_empty());
    // Its last check came at most a consent interval before it vanished, so the node waited
    // at least the timeout less that interval (6 s) after the vanish.
    assert!(
        gone_at.elapsed() >= std::time::Duration::from_millis(consent_ms - 6_000),
        "removed after {:?}, before its consent could have expired",
        gone_at.elapsed()
    );
}

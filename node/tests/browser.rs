//! A real browser watches through corecast: headless Chromium (Debian's, driven by
//! playwright-core from scripts/browser) opens the node's viewer page `/watch/{channel}`, which
//! makes a WHEP offer, connects (ICE-lite, DTLS, SRTP) and plays; GStreamer encodes the
//! channels' sources, once with VP8 and once with H.264 (x264, Constrained Baseline), each with
//! Opus, through an rtpbin session that turns the node's PLIs into keyframes. The page switches
//! channels four times. Pass: the browser decodes the codec the node negotiated, frames at about
//! the source's rate, nothing lost, no freeze, audio played, every switch showing the new
//! source's picture size within a second although the encoders' own keyframes are 20 s apart.
//! The screenshots are left in target/browser-test/{vp8,h264}/. And a camera that stops and
//! starts again fails over to its slate and back in the page.
//!
//! Needs GStreamer (base, good and ugly plugins: x264enc), Chromium at /usr/bin/chromium and
//! `npm ci` in scripts/browser (`.ci/run` does all three). Set CORECAST_SKIP_BROWSER_TESTS=1 to
//! skip on a machine without.

mod common;

use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

use common::browser::{tools_present, watch, watch_report};
use common::media::{free_udp_port, gst, gst_answering_pli, repo};
use common::*;
use corecast_signaling::api::{CreateChannel, CreateSource, SourceView};
use corecast_signaling::client::Client;

/// Each encoder's own keyframe interval, in frames at 30 fps: 20 s, longer than the test's
/// gap between switches, so a switch that shows within a second shows a keyframe the sender
/// made because the node asked (a PLI through its rtpbin session); and longer than a slow run
/// takes, so a camera's keyframe count proves its requested ones (with 10 s, a run past 20 s
/// allowed the encoder three keyframes of its own and the count proved nothing).
const GOP: u32 = 600;

/// VP8 at 30 fps.
fn vp8(width: u32, height: u32, pattern: &str) -> String {
    format!(
        "videotestsrc is-live=true pattern={pattern} ! \
         video/x-raw,width={width},height={height},framerate=30/1 ! \
         vp8enc keyframe-max-dist={GOP} deadline=1 cpu-used=8 ! rtpvp8pay picture-id-mode=15-bit"
    )
}

/// H.264 Constrained Baseline (which Chromium decodes as 42e01f) at 30 fps, SPS and PPS before
/// every IDR so that the node learns the profile-level-id and every keyframe can start a viewer.
fn h264(width: u32, height: u32, pattern: &str) -> String {
    format!(
        "videotestsrc is-live=true pattern={pattern} ! \
         video/x-raw,width={width},height={height},framerate=30/1 ! \
         x264enc tune=zerolatency speed-preset=ultrafast sliced-threads=false key-int-max={GOP} ! \
         video/x-h264,profile=constrained-baseline ! rtph264pay config-interval=-1"
    )
}

fn opus(freq: u32) -> String {
    format!(
        "audiotestsrc is-live=true freq={freq} ! audioconvert ! audioresample ! opusenc ! \
         rtpopuspay"
    )
}

/// One browser at a time: two Chromiums and four encoders at once would share the machine's
/// cores and measure each other.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

/// The node's admin token in these tests, and the token the page is given.
const ADMIN_TOKEN: &str = "browser-test-admin";
const VIEWER_TOKEN: &str = "browser-test-viewer";

#[test]
fn chromium_watches_and_switches_vp8_channels() {
    watch_and_switch("vp8", "video/VP8", vp8);
}

#[test]
fn chromium_watches_and_switches_h264_channels() {
    watch_and_switch("h264", "video/H264", h264);
}

/// A source of `codec` at 127.0.0.1, its keyframe requests sent to the `feedback` port where
/// its sender's rtpbin session reads RTCP.
fn source_with_feedback(client: &Client, name: &str, codec: &str, feedback: u16) -> SourceView {
    client
        .create_source(&CreateSource {
            name: name.into(),
            codec: codec.into(),
            feedback: Some(format!("127.0.0.1:{feedback}")),
            ..Default::default()
        })
        .expect("source created")
}

/// Two channels, each a `codec` camera (made by `video` at its own picture size) and an Opus
/// microphone; Chromium watches the first and switches four times; `mime` is the codec the
/// browser must say it decoded.
fn watch_and_switch(codec: &str, mime: &str, video: fn(u32, u32, &str) -> String) {
    if !tools_present() {
        return;
    }
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    // As an operator runs it: an admin token for the API, a viewer token for the page (which
    // then switches its own viewer with the key its Location carries).
    let events = events_file(&format!("browser-{codec}"));
    let events_arg = events.display().to_string();
    let (node, _) = start(&[
        "--token",
        ADMIN_TOKEN,
        "--viewer-token",
        VIEWER_TOKEN,
        "--events-jsonl",
        &events_arg,
    ]);
    let client = Client::new(&node.http_addr().to_string(), Some(ADMIN_TOKEN.into()));
    let feedback = [free_udp_port(), free_udp_port()];
    let cam_a = source_with_feedback(&client, &format!("{codec}-a"), codec, feedback[0]);
    let cam_b = source_with_feedback(&client, &format!("{codec}-b"), codec, feedback[1]);
    let mic_a = source(&client, "mic-a", "opus");
    let mic_b = source(&client, "mic-b", "opus");
    let senders_started = Instant::now();
    let _senders = [
        gst_answering_pli(&video(320, 240, "ball"), cam_a.ingest.port, feedback[0]),
        gst_answering_pli(&video(352, 288, "smpte"), cam_b.ingest.port, feedback[1]),
        gst(&opus(440), mic_a.ingest.port),
        gst(&opus(660), mic_b.ingest.port),
    ];
    // Every source receiving before the page offers, so that the node knows an H.264 source's
    // profile-level-id from its SPS when it negotiates.
    until("GStreamer's packets at every source", || {
        let stats = client.stats().expect("stats");
        [cam_a.id, cam_b.id, mic_a.id, mic_b.id].iter().all(|&id| {
            stats
                .sources
                .iter()
                .any(|s| s.id == id && s.counters.packets_accepted > 0)
        })
    });
    let channel = |name: &str, video: u32, audio: u32| {
        client
            .create_channel(&CreateChannel {
                name: name.into(),
                video: Some(video),
                audio: Some(audio),
            })
            .expect("channel created")
            .id
    };
    let one = channel("one", cam_a.id, mic_a.id);
    let two = channel("two", cam_b.id, mic_b.id);
    let out = repo().join("target/browser-test").join(codec);
    let url = format!(
        "http://{}/watch/{one}?token={VIEWER_TOKEN}",
        node.http_addr()
    );
    let seconds = 12;
    let switches = [
        format!("{two}:352x288"),
        format!("{one}:320x240"),
        format!("{two}:352x288"),
        format!("{one}:320x240"),
    ];
    let run = Command::new("node")
        .env("CORECAST_ADMIN_TOKEN", ADMIN_TOKEN)
        .arg(repo().join("scripts/browser/watch.mjs"))
        .arg(&url)
        .arg(seconds.to_string())
        .arg(&out)
        .args(&switches)
        .output()
        .expect("node runs scripts/browser/watch.mjs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("watch.mjs printed no report ({e}):\n{stdout}\n{stderr}");
    });
    let shown = serde_json::to_string_pretty(&report).unwrap();
    eprintln!("what the browser measured ({codec}): {shown}");
    assert!(run.status.success(), "the page failed:\n{shown}\n{stderr}");
    // What was negotiated is what the browser decoded.
    assert_eq!(report["viewer"]["codec"], codec, "{shown}");
    assert_eq!(report["videoCodec"]["mimeType"], mime, "{shown}");
    let stats = &report["stats"];
    let n = |key: &str| {
        stats[key]
            .as_u64()
            .unwrap_or_else(|| panic!("no {key}:\n{shown}"))
    };
    // The sources run at 30 fps; the page plays for `seconds` plus its last measurement.
    assert!(
        n("framesDecoded") >= 25 * seconds,
        "frames decoded below the source's rate:\n{shown}"
    );
    assert_eq!(n("videoLost"), 0, "video packets lost:\n{shown}");
    assert_eq!(n("audioLost"), 0, "audio packets lost:\n{shown}");
    assert_eq!(n("freezes"), 0, "the picture froze:\n{shown}");
    assert!(
        n("audioSamples") > 48_000 * 5,
        "audio did not play:\n{shown}"
    );
    // The node's sender reports reached the browser, and its receiver reports the node, which
    // measured the round trip from them.
    assert!(n("senderReports") >= 5, "sender reports:\n{shown}");
    let reception = &report["viewer"]["reception"];
    assert!(reception["reports"].as_u64().unwrap_or(0) > 0, "{shown}");
    assert_eq!(reception["packets_lost"], 0, "{shown}");
    assert!(
        reception["rtt_ms"].as_f64().is_some_and(|ms| ms < 100.0),
        "{shown}"
    );
    let done = report["switches"].as_array().expect("switches reported");
    assert_eq!(done.len(), switches.len(), "{shown}");
    for s in done {
        assert_eq!(s["status"], 202, "switch refused:\n{shown}");
        let ms = s["shownMs"].as_u64();
        assert!(
            ms.is_some_and(|ms| ms <= 1000),
            "a switch's new picture size took over 1 s:\n{shown}"
        );
    }
    assert!(out.join("watch.png").exists(), "no screenshot");
    // The node's side of the same session: one handshake, checks answered, the browser's
    // SRTCP (receiver reports, PLIs) taken, nothing it sent the shard socket unaccounted for.
    let stats = client.stats().expect("stats");
    assert_eq!(stats.node.handshakes_completed, 1, "{stats:?}");
    assert_eq!(stats.node.handshakes_failed, 0, "{stats:?}");
    let sum = |f: &dyn Fn(&corecast_signaling::api::WebrtcShardStats) -> u64| -> u64 {
        stats.shards.iter().map(|s| f(&s.webrtc)).sum()
    };
    assert!(sum(&|w| w.stun_answered) > 0, "{stats:?}");
    assert!(sum(&|w| w.dtls_forwarded) > 0, "{stats:?}");
    assert!(sum(&|w| w.srtcp_received) > 0, "{stats:?}");
    assert_eq!(sum(&|w| w.srtcp_dropped), 0, "{stats:?}");
    assert_eq!(sum(&|w| w.srtp_failed), 0, "{stats:?}");
    assert_eq!(sum(&|w| w.unknown_dropped), 0, "{stats:?}");
    // Each camera was switched to twice (the first also at the start) and each time asked for
    // a keyframe. Its encoder alone makes one at its start and then one per GOP at most (a
    // forced keyframe restarts the count): more than that were made because the node asked.
    let natural = 1 + senders_started.elapsed().as_secs() / u64::from(GOP / 30);
    for cam in [cam_a.id, cam_b.id] {
        let c = &stats
            .sources
            .iter()
            .find(|s| s.id == cam)
            .expect("camera in stats")
            .counters;
        assert!(c.keyframe_requests >= 2, "camera {cam}: {c:?}");
        assert!(
            c.keyframes > natural,
            "camera {cam} sent {} keyframes, its encoder alone {natural}: {c:?}",
            c.keyframes
        );
    }
    // Chromium offers every SRTP profile; the node's default preference gives it AES-128-GCM.
    let mut profiles = Vec::new();
    until("the page's viewer.connected event", || {
        let text = std::fs::read_to_string(&events).unwrap_or_default();
        profiles = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["type"] == "viewer.connected")
            .map(|e| e["data"]["profile"].clone())
            .collect();
        !profiles.is_empty()
    });
    assert_eq!(
        profiles,
        ["AeadAes128Gcm"],
        "the page's viewer.connected events"
    );
}

fn forwarded(client: &Client, source: u32) -> u64 {
    client.source(source).unwrap().counters.packets_forwarded
}

/// Failover in the browser: a camera that falls back to a slate (`join: replay`) of another
/// picture size. Chromium watches the camera's channel; its encoder is stopped, then started
/// again. Pass: the page shows the camera, then the slate (after `--idle-timeout`), then the
/// camera again, decoding all along each, with nothing lost.
#[test]
fn chromium_sees_a_silent_camera_fail_over_to_its_slate_and_come_back() {
    if !tools_present() {
        return;
    }
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let (node, client) = start(&[
        "--idle-timeout",
        "500",
        "--stats-interval",
        "100",
        "--history-ms",
        "3000",
    ]);
    let slate = client
        .create_source(&CreateSource {
            name: "slate".into(),
            codec: "vp8".into(),
            join: Some("replay".into()),
            ..Default::default()
        })
        .unwrap();
    let feedback = free_udp_port();
    let camera = client
        .create_source(&CreateSource {
            name: "camera".into(),
            codec: "vp8".into(),
            feedback: Some(format!("127.0.0.1:{feedback}")),
            fallback: Some(slate.id),
            ..Default::default()
        })
        .unwrap();
    let mic = source(&client, "mic", "opus");
    let slate_vp8 = "videotestsrc is-live=true pattern=smpte ! \
                     video/x-raw,width=352,height=288,framerate=30/1 ! \
                     vp8enc keyframe-max-dist=30 deadline=1 cpu-used=8 ! \
                     rtpvp8pay picture-id-mode=15-bit";
    let _senders = [
        gst(slate_vp8, slate.ingest.port),
        gst(&opus(440), mic.ingest.port),
    ];
    let mut cam = gst_answering_pli(&vp8(320, 240, "ball"), camera.ingest.port, feedback);
    until("packets at every source", || {
        [slate.id, camera.id, mic.id]
            .iter()
            .all(|&id| client.source(id).unwrap().counters.packets_accepted > 0)
    });
    let channel = client
        .create_channel(&CreateChannel {
            name: "live".into(),
            video: Some(camera.id),
            audio: Some(mic.id),
        })
        .unwrap()
        .id;
    let url = format!("http://{}/watch/{channel}", node.http_addr());
    let out = repo().join("target/browser-test/failover");
    let page = watch(&url, 16, &out, None);
    // Two seconds of the camera in the page, then it stops.
    until("the camera to reach the page", || {
        forwarded(&client, camera.id) > 0
    });
    let target = forwarded(&client, camera.id) + 60;
    until("two seconds of the camera", || {
        forwarded(&client, camera.id) >= target
    });
    cam.stop();
    until("the failover", || {
        client.source(camera.id).unwrap().failed_over
    });
    let target = forwarded(&client, slate.id) + 90;
    until("three seconds of the slate", || {
        forwarded(&client, slate.id) >= target
    });
    let _cam = gst_answering_pli(&vp8(320, 240, "ball"), camera.ingest.port, feedback);
    until("the camera back", || {
        !client.source(camera.id).unwrap().failed_over
    });
    let back = forwarded(&client, camera.id);
    let (status, report) = watch_report(page);
    let shown = serde_json::to_string_pretty(&report).unwrap();
    eprintln!("what the browser measured (failover): {shown}");
    assert!(status.success(), "the page failed:\n{shown}");
    assert!(
        forwarded(&client, camera.id) > back + 60,
        "the page played the camera again for two seconds before it closed:\n{shown}"
    );
    // The picture sizes the page showed, in order: camera, slate, camera.
    let mut sizes: Vec<(u64, u64)> = Vec::new();
    for t in report["timeline"].as_array().expect("a timeline") {
        let size = (t["width"].as_u64().unwrap(), t["height"].as_u64().unwrap());
        if size.0 > 0 && sizes.last() != Some(&size) {
            sizes.push(size);
        }
    }
    assert_eq!(sizes, [(320, 240), (352, 288), (320, 240)], "{shown}");
    let stats = &report["stats"];
    assert_eq!(stats["videoLost"], 0, "{shown}");
    assert_eq!(stats["audioLost"], 0, "{shown}");
    assert!(
        stats["keyFramesDecoded"].as_u64().unwrap_or(0) >= 3,
        "{shown}"
    );
}

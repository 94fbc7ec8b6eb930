//! A real browser watches through corecast: headless Chromium (Debian's, driven by
//! playwright-core from scripts/browser) opens the node's viewer page `/watch/{channel}`, which
//! makes a WHEP offer, connects (ICE-lite, DTLS, SRTP) and plays; GStreamer encodes the
//! channels' sources. The page switches channels four times. Pass: frames decoded at about the
//! source's rate, nothing lost, no freeze, audio played, every switch showing the new source's
//! picture size within a second. The screenshot is left in target/browser-test/.
//!
//! Needs gst-launch-1.0, Chromium at /usr/bin/chromium and `npm ci` in scripts/browser
//! (`.ci/run` does all three). Set CORECAST_SKIP_BROWSER_TESTS=1 to skip on a machine without.

mod common;

use std::path::Path;
use std::process::Command;

use common::media::{gst, repo};
use common::*;
use corecast_signaling::api::CreateChannel;

fn tools_present() -> bool {
    let gst = Command::new("gst-launch-1.0")
        .arg("--version")
        .output()
        .is_ok();
    let chromium = Path::new("/usr/bin/chromium").exists();
    let playwright = repo()
        .join("scripts/browser/node_modules/playwright-core")
        .exists();
    if gst && chromium && playwright {
        return true;
    }
    if std::env::var_os("CORECAST_SKIP_BROWSER_TESTS").is_some() {
        eprintln!("skipping: gst-launch-1.0, chromium or playwright-core missing");
        return false;
    }
    panic!(
        "the browser test needs gst-launch-1.0 ({gst}), /usr/bin/chromium ({chromium}) and \
         playwright-core in scripts/browser ({playwright}): apt-get install chromium \
         gstreamer1.0-tools gstreamer1.0-plugins-{{base,good}}, then `npm ci` in \
         scripts/browser (as .ci/run does), or set CORECAST_SKIP_BROWSER_TESTS=1"
    );
}

/// VP8 at 30 fps with a keyframe every half second, so a switch shows within a second even
/// though GStreamer's sender does not answer PLI here.
fn vp8(width: u32, height: u32, pattern: &str) -> String {
    format!(
        "videotestsrc is-live=true pattern={pattern} ! \
         video/x-raw,width={width},height={height},framerate=30/1 ! \
         vp8enc keyframe-max-dist=15 deadline=1 cpu-used=8 ! rtpvp8pay picture-id-mode=15-bit"
    )
}

fn opus(freq: u32) -> String {
    format!(
        "audiotestsrc is-live=true freq={freq} ! audioconvert ! audioresample ! opusenc ! \
         rtpopuspay"
    )
}

#[test]
fn chromium_watches_and_switches_channels() {
    if !tools_present() {
        return;
    }
    let (node, client) = start(&[]);
    let cam_a = source(&client, "cam-a", "vp8");
    let cam_b = source(&client, "cam-b", "vp8");
    let mic_a = source(&client, "mic-a", "opus");
    let mic_b = source(&client, "mic-b", "opus");
    let _senders = [
        gst(&vp8(320, 240, "ball"), cam_a.ingest.port),
        gst(&vp8(352, 288, "smpte"), cam_b.ingest.port),
        gst(&opus(440), mic_a.ingest.port),
        gst(&opus(660), mic_b.ingest.port),
    ];
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
    let out = repo().join("target/browser-test");
    let url = format!("http://{}/watch/{one}", node.http_addr());
    let seconds = 12;
    let switches = [
        format!("{two}:352x288"),
        format!("{one}:320x240"),
        format!("{two}:352x288"),
        format!("{one}:320x240"),
    ];
    let run = Command::new("node")
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
    eprintln!("what the browser measured: {shown}");
    assert!(run.status.success(), "the page failed:\n{shown}\n{stderr}");
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
}

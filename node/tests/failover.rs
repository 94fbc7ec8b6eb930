//! Failover to a slate through the node, on loopback: a source that names a fallback, whose
//! sender stops, has its subscribers moved to the fallback (replayed, so at once) once it has
//! been silent for `--idle-timeout`, and back at its first keyframe when it sends again; the
//! subscribers see one stream throughout (one SSRC, one numbering, every switch at a keyframe),
//! the events and views say when and why. With real encoders, ffmpeg decodes both switches
//! without one warning. Bounded waits only.

mod common;

use std::time::{Duration, Instant};

use common::media::{free_port_pair, gst_and_ffmpeg_present, gst_launch, Decoder};
use common::*;
use corecast::Node;
use corecast_signaling::api::{CreateSource, SourceView};
use corecast_signaling::client::Client;
use serde_json::Value;

const IDLE_MS: u64 = 400;

fn node_args(events: &std::path::Path) -> Vec<String> {
    [
        "--idle-timeout",
        &IDLE_MS.to_string(),
        "--stats-interval",
        "50",
        "--history-ms",
        "3000",
        "--events-jsonl",
        &events.display().to_string(),
    ]
    .map(String::from)
    .to_vec()
}

fn start_node(events: &std::path::Path) -> (Node, Client) {
    let args = node_args(events);
    start(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// A slate (`join: replay`, so a move to it is at once) and a camera that falls back to it.
fn slate_and_camera(client: &Client) -> (SourceView, SourceView) {
    let slate = client
        .create_source(&CreateSource {
            name: "slate".into(),
            codec: "vp8".into(),
            join: Some("replay".into()),
            ..Default::default()
        })
        .unwrap();
    let camera = client
        .create_source(&CreateSource {
            name: "camera".into(),
            codec: "vp8".into(),
            fallback: Some(slate.id),
            ..Default::default()
        })
        .unwrap();
    (slate, camera)
}

fn events_in(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON envelope per line"))
        .collect()
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

/// Camera packets are 100 bytes longer than the slate's.
const CAMERA_PAYLOAD: usize = 300;
const SLATE_PAYLOAD: usize = 200;

#[test]
fn subscribers_of_a_silent_source_move_to_its_fallback_and_back_as_one_stream() {
    let events = events_file("failover");
    let (mut node, client) = start_node(&events);
    let (slate, camera) = slate_and_camera(&client);
    assert_eq!(
        (camera.fallback, camera.failed_over),
        (Some(slate.id), false)
    );
    let mut slate_tx = Sender::with_payload(ingest_addr(&slate), 0x51a7e, 15, SLATE_PAYLOAD);
    let mut camera_tx = Sender::with_payload(ingest_addr(&camera), 0xca3e, 15, CAMERA_PAYLOAD);
    let origin = Instant::now();
    let mut frames = 0u64;
    // Both send 50 frames a second (a keyframe every 15) while `camera_on` says the camera does.
    let mut pace = |camera_on: bool| {
        let due = origin + Duration::from_millis(frames * 20);
        if Instant::now() >= due {
            while !slate_tx.send().marker {}
            if camera_on {
                while !camera_tx.send().marker {}
            }
            frames += 1;
        }
    };
    let [watcher, late, chooser] = [receiver(), receiver(), receiver()];
    let subs = subscribe(&client, camera.id, &[watcher.try_clone().unwrap(), chooser]);
    let (watcher_id, chooser_id) = (subs[0].id, subs[1].id);
    let mut got = Vec::new();
    until("the camera's first 60 packets", || {
        pace(true);
        drain(&watcher, &mut got);
        got.len() >= 60
    });

    // The camera stops: after the idle timeout its subscribers are on the slate.
    let stopped = Instant::now();
    until("the failover", || {
        pace(false);
        drain(&watcher, &mut got);
        client.subscriber(watcher_id).unwrap().source == Some(slate.id)
    });
    assert!(
        stopped.elapsed() >= Duration::from_millis(IDLE_MS),
        "not before the idle timeout: {:?}",
        stopped.elapsed()
    );
    let view = client.subscriber(watcher_id).unwrap();
    assert_eq!(view.home_source, Some(camera.id));
    let camera_view = client.source(camera.id).unwrap();
    assert!(camera_view.failed_over, "{camera_view:?}");
    // One subscribed while the camera is silent goes to the slate too; one switched there by
    // request stays there when the camera is back.
    subscribe(&client, camera.id, std::slice::from_ref(&late));
    let late_id = client
        .subscribers()
        .unwrap()
        .into_iter()
        .find(|s| s.dest == late.local_addr().unwrap())
        .unwrap()
        .id;
    until("the late subscriber on the slate", || {
        pace(false);
        drain(&watcher, &mut got);
        let all = client.subscribers().unwrap();
        [late_id, chooser_id].iter().all(|id| {
            let s = all.iter().find(|s| s.id == *id).unwrap();
            s.source == Some(slate.id) && s.home_source == Some(camera.id)
        })
    });
    // (Already there: no switch is made, but it is the subscriber's now.)
    client.switch(chooser_id, slate.id).unwrap();
    assert_eq!(client.subscriber(chooser_id).unwrap().home_source, None);
    until("30 slate packets", || {
        pace(false);
        drain(&watcher, &mut got);
        got.iter().filter(|g| g.len < 300).count() >= 30
    });

    // The camera is back: at its next keyframe its subscribers are back on it.
    until("the move back", || {
        pace(true);
        drain(&watcher, &mut got);
        let all = client.subscribers().unwrap();
        [watcher_id, late_id].iter().all(|id| {
            let s = all.iter().find(|s| s.id == *id).unwrap();
            s.source == Some(camera.id) && s.home_source.is_none()
        })
    });
    let back_at = got.len();
    until("30 camera packets after the move back", || {
        pace(true);
        drain(&watcher, &mut got);
        got.len() >= back_at + 30
    });
    assert!(!client.source(camera.id).unwrap().failed_over);
    let chooser = client.subscriber(chooser_id).unwrap();
    assert_eq!(
        (chooser.source, chooser.home_source),
        (Some(slate.id), None),
        "switched by request, it stays"
    );

    // One stream: one SSRC, one numbering, camera → slate → camera, each run from a keyframe.
    assert!(got.iter().all(|g| g.ssrc == got[0].ssrc));
    for w in got.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "in order, each once");
    }
    let camera_len = got[0].len;
    let mut runs: Vec<(bool, &Got)> = Vec::new();
    for g in &got {
        let is_camera = g.len == camera_len;
        if runs.last().is_none_or(|(c, _)| *c != is_camera) {
            runs.push((is_camera, g));
        }
    }
    assert_eq!(
        runs.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
        [true, false, true],
        "camera, slate, camera"
    );
    assert!(
        runs.iter().all(|(_, first)| first.keyframe_start),
        "each starts at a keyframe"
    );

    node.shutdown();
    let events = events_in(&events);
    let failover = of_type(&events, "source.failover");
    assert_eq!(failover.len(), 1, "{failover:?}");
    assert_eq!(failover[0]["source"], camera.id);
    assert_eq!(failover[0]["data"]["fallback"], slate.id);
    assert_eq!(failover[0]["data"]["reason"], "idle");
    assert_eq!(failover[0]["data"]["subscribers"], 2);
    assert!(failover[0]["data"]["silent_ms"].as_u64().unwrap() >= IDLE_MS);
    let restored = of_type(&events, "source.restored");
    assert_eq!(restored.len(), 1, "{restored:?}");
    assert_eq!(restored[0]["data"]["subscribers"], 2, "the late one too");
    let causes = |cause: &str| {
        of_type(&events, "switch.requested")
            .iter()
            .filter(|e| e["data"]["cause"] == cause)
            .count()
    };
    assert_eq!(
        (causes("failover"), causes("restore"), causes("request")),
        (3, 2, 0)
    );
}

#[test]
fn a_fallback_must_exist_share_the_codec_and_not_fail_over_itself() {
    let events = events_file("failover-refused");
    let (_node, client) = start_node(&events);
    let (slate, camera) = slate_and_camera(&client);
    let opus = source(&client, "mic", "opus");
    let refused = |fallback: u32| {
        api_error(client.create_source(&CreateSource {
            name: "another".into(),
            codec: "vp8".into(),
            fallback: Some(fallback),
            ..Default::default()
        }))
    };
    for (fallback, says) in [
        (999, "no such source"),
        (opus.id, "is opus, not vp8"),
        (camera.id, "has a fallback of its own"),
    ] {
        let (status, code, message) = refused(fallback);
        assert_eq!((status, code.as_str()), (400, "bad_request"), "{message}");
        assert!(message.contains(says), "{message}");
    }
    assert_eq!(client.sources().unwrap().len(), 3, "nothing was made");
    // Deleting the fallback leaves the camera without one.
    client.delete_source(slate.id).unwrap();
    assert_eq!(client.source(camera.id).unwrap().fallback, None);
}

fn encoder(pattern: &str, port: u16) -> common::media::Reaped {
    gst_launch(&format!(
        "videotestsrc is-live=true pattern={pattern} ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! vp8enc keyframe-max-dist=30 deadline=1 cpu-used=8 ! rtpvp8pay picture-id-mode=15-bit \
         ! udpsink host=127.0.0.1 port={port}"
    ))
}

fn sent(client: &Client, sub: u32) -> u64 {
    client.subscriber(sub).unwrap().counters.packets_sent
}

/// A replay runs faster than real time; ffmpeg's null output would re-time two of its frames to
/// one output timestamp and warn (see `replay.rs`).
const KEEP_TIMESTAMPS: &[&str] = &["-enc_time_base", "-1"];

#[test]
fn ffmpeg_decodes_a_failover_to_a_slate_and_back_without_an_error() {
    if !gst_and_ffmpeg_present() {
        return;
    }
    let events = events_file("failover-ffmpeg");
    let (mut node, client) = start_node(&events);
    let (slate, camera) = slate_and_camera(&client);
    let _slate_encoder = encoder("smpte", slate.ingest.port);
    let mut camera_encoder = encoder("ball", camera.ingest.port);
    let port = free_port_pair();
    let dest = format!("127.0.0.1:{port}");
    let sdp = client.source_sdp(camera.id, dest.parse().unwrap()).unwrap();
    let decoder = Decoder::start_with(&sdp, port, "failover", KEEP_TIMESTAMPS);
    let sub = client
        .create_subscriber(&corecast_signaling::api::CreateSubscriber {
            source: camera.id,
            dest,
        })
        .unwrap();
    until("the camera to play", || sent(&client, sub.id) > 150);
    camera_encoder.stop();
    until_by(
        Instant::now() + Duration::from_secs(20),
        "the failover",
        || client.subscriber(sub.id).unwrap().source == Some(slate.id),
    );
    let target = sent(&client, sub.id) + 150;
    until("the slate to play", || sent(&client, sub.id) >= target);
    // A restarted encoder: a new SSRC and numbering, which the node takes as a new epoch.
    let _camera_encoder = encoder("ball", camera.ingest.port);
    until_by(
        Instant::now() + Duration::from_secs(20),
        "the move back",
        || client.subscriber(sub.id).unwrap().source == Some(camera.id),
    );
    let target = sent(&client, sub.id) + 150;
    until("the camera to play again", || {
        sent(&client, sub.id) >= target
    });
    let (warnings, frames, _) = decoder.finish();
    assert!(
        warnings.is_empty(),
        "ffmpeg reported problems across the failover:\n{}",
        warnings.join("\n")
    );
    assert!(frames >= 100, "{frames} frames decoded");
    node.shutdown();
    let events = events_in(&events);
    assert_eq!(of_type(&events, "source.failover").len(), 1);
    assert_eq!(of_type(&events, "source.restored").len(), 1);
}

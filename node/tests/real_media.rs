//! End to end with real encoders and a real decoder: GStreamer encoders feed two sources, a
//! subscriber is switched between them several times, and ffmpeg decodes what the subscriber
//! receives. ffmpeg is the oracle: it reports missed packets, concealed or corrupt frames and
//! broken timestamps, which GStreamer's decoders would hide. Pass: not one warning, and about as
//! many decoded frames as the time played.
//!
//! ffmpeg opens the subscriber's SDP as the node serves it (`GET /v1/subscribers/{id}/sdp`), as a
//! user would; nothing here writes one by hand.
//!
//! Needs gst-launch-1.0 (base, good, bad, ugly plugins) and ffmpeg; `.ci/run` installs them. Set
//! CORECAST_SKIP_MEDIA_TESTS=1 to skip on a machine without them.

mod common;

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::media::{free_port_pair, gst_and_ffmpeg_present, gst_launch, Decoder, Reaped};
use common::*;
use corecast_engine::Codec;
use corecast_signaling::client::Client;

/// Encoders and decoders are CPU-heavy: on a 2-core machine these tests run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

struct Media {
    codec: Codec,
    audio: bool,
    sets: Sets,
}

/// How an H.264/H.265 sender conveys its parameter sets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sets {
    /// In-band before every keyframe (and for VP8, VP9, Opus: there are none).
    InBand,
    /// In-band once, before the first keyframe, as many hardware encoders do. The two sources
    /// differ in picture size, so each needs its own SPS at every switch.
    Once,
    /// Never in-band: only in the caps, which the test hands the node as an SDP's
    /// sprop-parameter-sets. Sources differ in size as with `Once`.
    SdpOnly,
}

const VP8: Media = Media {
    codec: Codec::Vp8,
    audio: false,
    sets: Sets::InBand,
};
const VP9: Media = Media {
    codec: Codec::Vp9,
    audio: false,
    sets: Sets::InBand,
};
const H264: Media = Media {
    codec: Codec::H264,
    audio: false,
    sets: Sets::InBand,
};
const H264_SETS_ONCE: Media = Media {
    sets: Sets::Once,
    ..H264
};
const H264_SETS_IN_SDP: Media = Media {
    sets: Sets::SdpOnly,
    ..H264
};
/// x265 writes VPS/SPS/PPS once, before its first keyframe, unless asked to repeat them.
const H265_SETS_ONCE: Media = Media {
    codec: Codec::H265,
    audio: false,
    sets: Sets::Once,
};
const OPUS: Media = Media {
    codec: Codec::Opus,
    audio: true,
    sets: Sets::InBand,
};

/// The encoding part of a sender's pipeline, from a live or `buffers`-long source to RTP.
fn encoder(media: &Media, variant: u32, buffers: Option<u32>) -> String {
    let gop = 30;
    let live = buffers.map_or("is-live=true".to_string(), |n| format!("num-buffers={n}"));
    match media.codec {
        Codec::Opus => format!(
            "audiotestsrc {live} freq={} ! audioconvert ! audioresample ! opusenc ! rtpopuspay",
            300 + 200 * variant
        ),
        codec => {
            let pattern = ["ball", "smpte"][variant as usize % 2];
            // x264 with repeat-headers=0 writes SPS/PPS only into the caps; rtph264pay then sends
            // them in-band once per config-interval (once per hour: at the start only), or never.
            let x264_caps_only = format!("x264enc tune=zerolatency speed-preset=ultrafast sliced-threads=false key-int-max={gop} option-string=repeat-headers=0 ! video/x-h264,stream-format=avc");
            let enc = match codec {
                Codec::H264 if media.sets == Sets::Once => format!("{x264_caps_only} ! rtph264pay config-interval=3600"),
                Codec::H264 if media.sets == Sets::SdpOnly => format!("{x264_caps_only} ! rtph264pay config-interval=0"),
                Codec::Vp8 => format!("vp8enc keyframe-max-dist={gop} deadline=1 cpu-used=8 ! rtpvp8pay picture-id-mode=15-bit"),
                Codec::Vp9 => format!("vp9enc keyframe-max-dist={gop} deadline=1 cpu-used=8 lag-in-frames=0 ! rtpvp9pay picture-id-mode=15-bit"),
                // One slice per picture: with x264's sliced threads, rtph264pay repeats SPS/PPS
                // before each slice of a keyframe, and ffmpeg then conceals half of every
                // keyframe even when fed straight from GStreamer, without corecast.
                Codec::H264 => format!("x264enc tune=zerolatency speed-preset=ultrafast sliced-threads=false key-int-max={gop} ! rtph264pay config-interval=-1"),
                Codec::H265 => format!("x265enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} ! rtph265pay"),
                other => panic!("no encoder for {other}"),
            };
            let (width, height) = if media.sets != Sets::InBand && variant % 2 == 1 {
                (352, 288)
            } else {
                (320, 240)
            };
            format!(
                "videotestsrc {live} pattern={pattern} ! video/x-raw,width={width},height={height},framerate=30/1 ! {enc}"
            )
        }
    }
}

/// The sprop-parameter-sets of `encoder(media, variant)`, read from the caps GStreamer
/// negotiates for one frame: what the sender's SDP would carry.
fn sprop_parameter_sets(media: &Media, variant: u32) -> String {
    let pipeline = format!("{} ! fakesink", encoder(media, variant, Some(1)));
    let out = Command::new("gst-launch-1.0")
        .arg("-v")
        .args(pipeline.split_whitespace())
        .output()
        .expect("gst-launch-1.0 runs");
    let caps = String::from_utf8_lossy(&out.stdout);
    let start = caps
        .find("sprop-parameter-sets=(string)\"")
        .unwrap_or_else(|| panic!("no sprop-parameter-sets in the caps:\n{caps}"))
        + "sprop-parameter-sets=(string)\"".len();
    let value = &caps[start..];
    // gst-launch escapes `=` and `,` inside the string with backslashes.
    let end = value.find('"').expect("the string ends");
    value[..end].replace('\\', "")
}

/// A live encoder sending to `port`; `variant` makes the two sources look different.
fn sender(media: &Media, port: u16, variant: u32) -> Reaped {
    let pipeline = encoder(media, variant, None);
    gst_launch(&format!("{pipeline} ! udpsink host=127.0.0.1 port={port}"))
}

/// Packets sent to the subscriber so far, as the node counts them.
fn sent(client: &Client, sub: u32) -> u64 {
    client.subscriber(sub).unwrap().counters.packets_sent
}

/// Let the subscriber play until it has had `packets` more.
fn play(client: &Client, sub: u32, packets: u64) {
    let target = sent(client, sub) + packets;
    let deadline = Instant::now() + Duration::from_secs(15);
    while sent(client, sub) < target {
        if Instant::now() > deadline {
            let view = client.subscriber(sub).unwrap();
            let sources = client.sources().unwrap();
            panic!("the subscriber stopped receiving: {view:?}\nsources: {sources:#?}");
        }
        std::thread::yield_now();
    }
}

/// Two sources of `media`, one subscriber decoded by ffmpeg, `switches` switches between them.
fn switch_between_live_encoders(media: Media, switches: usize) {
    if !gst_and_ffmpeg_present() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_node, client) = start(&["--stats-interval", "100"]);
    let codec = media.codec.name();
    let create = |name: &str, variant| {
        if media.sets != Sets::SdpOnly {
            return source(&client, name, codec);
        }
        client
            .create_source(&corecast_signaling::api::CreateSource {
                name: name.into(),
                codec: codec.into(),
                parameter_sets: Some(sprop_parameter_sets(&media, variant)),
                ..Default::default()
            })
            .unwrap()
    };
    let (a, b) = (create("a", 0), create("b", 1));
    let port = free_port_pair();
    let sub = client
        .create_subscriber(&corecast_signaling::api::CreateSubscriber {
            source: a.id,
            dest: format!("127.0.0.1:{port}"),
        })
        .unwrap();
    let decoder = Decoder::start(&client.subscriber_sdp(sub.id).unwrap(), port, codec);
    let mut senders = [
        sender(&media, a.ingest.port, 0),
        sender(&media, b.ingest.port, 1),
    ];
    let per_segment = if media.audio { 60 } else { 75 };
    play(&client, sub.id, per_segment);
    let started = Instant::now();
    for i in 0..switches {
        let to = if i % 2 == 0 { b.id } else { a.id };
        client.switch(sub.id, to).unwrap();
        until("the switch to complete", || {
            client.subscriber(sub.id).unwrap().source == Some(to)
        });
        play(&client, sub.id, per_segment);
    }
    let played = started.elapsed();
    let (warnings, frames, out_time_us) = decoder.finish();
    for s in &mut senders {
        s.stop();
    }
    assert!(
        warnings.is_empty(),
        "ffmpeg reported problems:\n{}",
        warnings.join("\n")
    );
    let view = client.subscriber(sub.id).unwrap();
    assert_eq!(view.counters.switches, switches as u64);
    if media.sets != Sets::InBand {
        let sets: u64 = [a.id, b.id]
            .map(|s| client.source(s).unwrap().counters.parameter_sets_sent)
            .iter()
            .sum();
        // With sets only in the SDP, the subscriber's first keyframe lacked them too.
        let starts = switches + usize::from(media.sets == Sets::SdpOnly);
        assert_eq!(
            sets, starts as u64,
            "cached parameter sets sent at each start and switch"
        );
    }
    if media.audio {
        // Audio: decoded time keeps up with the time played across every switch.
        assert!(
            out_time_us as f64 >= played.as_micros() as f64 * 0.8,
            "{out_time_us} µs decoded in {played:?}"
        );
    } else {
        // 30 fps; switches wait for no keyframe (the old source plays until the new one's), so
        // frames keep coming.
        let expected = played.as_secs_f64() * 30.0;
        assert!(
            frames as f64 >= expected * 0.8,
            "{frames} frames decoded, about {expected:.0} expected"
        );
    }
}

#[test]
fn vp8_switches_decode_cleanly() {
    switch_between_live_encoders(VP8, 4);
}

#[test]
fn vp9_switches_decode_cleanly() {
    switch_between_live_encoders(VP9, 4);
}

#[test]
fn h264_switches_decode_cleanly() {
    switch_between_live_encoders(H264, 4);
}

/// Keyframes without SPS/PPS: at each switch the node sends the new source's cached ones first.
#[test]
fn h264_switches_without_in_band_parameter_sets_decode_cleanly() {
    switch_between_live_encoders(H264_SETS_ONCE, 4);
}

/// VPS/SPS/PPS only at the start, as with H.264 above.
/// Keyframes without SPS/PPS, and none ever in-band: the node sends the ones the sources were
/// created with (from their SDP).
#[test]
fn h264_switches_with_parameter_sets_only_in_the_sdp_decode_cleanly() {
    switch_between_live_encoders(H264_SETS_IN_SDP, 4);
}

#[test]
fn h265_switches_without_in_band_parameter_sets_decode_cleanly() {
    switch_between_live_encoders(H265_SETS_ONCE, 4);
}

#[test]
fn opus_switches_at_any_packet_decode_cleanly() {
    switch_between_live_encoders(OPUS, 4);
}

/// Watching a subscriber from its first picture, as the README says: the player is started on
/// the subscriber's SDP before the subscriber is added. The sender already runs; for H.264 with
/// parameter sets sent only at the start, the SDP carries the ones the node cached from it (and
/// with sets never in-band, the ones the source was created with). The SDP is the source's for
/// the player's address (`GET /v1/sources/{id}/sdp?dest=`); the subscriber added after the
/// player listens has the same SDP but for the lines naming it, and ffmpeg decodes it without
/// a word.
fn plays_a_fetched_sdp_from_the_first_picture(media: Media) {
    if !gst_and_ffmpeg_present() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_node, client) = start(&["--stats-interval", "50"]);
    let codec = media.codec.name();
    let cam = client
        .create_source(&corecast_signaling::api::CreateSource {
            name: "cam".into(),
            codec: codec.into(),
            parameter_sets: (media.sets == Sets::SdpOnly).then(|| sprop_parameter_sets(&media, 0)),
            ..Default::default()
        })
        .unwrap();
    let _sender = sender(&media, cam.ingest.port, 0);
    let port = free_port_pair();
    let add = || {
        client
            .create_subscriber(&corecast_signaling::api::CreateSubscriber {
                source: cam.id,
                dest: format!("127.0.0.1:{port}"),
            })
            .unwrap()
    };
    let dest = format!("127.0.0.1:{port}").parse().unwrap();
    let mut sdp = String::new();
    until(
        "the source's SDP for the player's address, with parameter sets for H.264",
        || {
            sdp = client.source_sdp(cam.id, dest).unwrap();
            media.codec != Codec::H264 || sdp.contains(";sprop-parameter-sets=")
        },
    );
    if media.sets == Sets::SdpOnly {
        let configured = sprop_parameter_sets(&media, 0);
        assert!(
            sdp.contains(&format!("sprop-parameter-sets={configured}")),
            "{sdp}"
        );
    }
    let decoder = Decoder::start(&sdp, port, &format!("first-picture-{codec}"));
    let sub = add();
    let not_naming_it = |sdp: &str| -> Vec<String> {
        sdp.lines()
            .filter(|l| !["o=", "s=", "i="].iter().any(|p| l.starts_with(p)))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        not_naming_it(&client.subscriber_sdp(sub.id).unwrap()),
        not_naming_it(&sdp),
        "the SDP fetched ahead is the one the subscriber has"
    );
    // It starts at the sender's next keyframe; from then on, every frame must decode.
    play(&client, sub.id, 1);
    let started = Instant::now();
    play(&client, sub.id, 90);
    let played = started.elapsed();
    let (warnings, frames, _) = decoder.finish();
    assert!(
        warnings.is_empty(),
        "ffmpeg reported problems with the node's SDP:\n{}\n{sdp}",
        warnings.join("\n")
    );
    let expected = played.as_secs_f64() * 30.0;
    assert!(
        frames >= 30 && frames as f64 >= expected * 0.8,
        "{frames} frames decoded in {played:?}, about {expected:.0} expected"
    );
}

#[test]
fn ffmpeg_plays_a_vp8_subscriber_from_its_sdp() {
    plays_a_fetched_sdp_from_the_first_picture(VP8);
}

/// SPS/PPS only at the stream's start: the SDP has the ones the node cached in-band.
#[test]
fn ffmpeg_plays_an_h264_subscriber_from_its_sdp_with_the_sets_cached_in_band() {
    plays_a_fetched_sdp_from_the_first_picture(H264_SETS_ONCE);
}

/// SPS/PPS never in-band: the SDP has the ones the source was created with.
#[test]
fn ffmpeg_plays_an_h264_subscriber_from_its_sdp_with_the_configured_sets() {
    plays_a_fetched_sdp_from_the_first_picture(H264_SETS_IN_SDP);
}

#[test]
fn a_sender_that_stops_and_restarts_continues_the_subscribers_stream() {
    if !gst_and_ffmpeg_present() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_node, client) = start(&["--stats-interval", "100", "--idle-timeout", "500"]);
    let a = source(&client, "a", "vp8");
    let port = free_port_pair();
    let sub = client
        .create_subscriber(&corecast_signaling::api::CreateSubscriber {
            source: a.id,
            dest: format!("127.0.0.1:{port}"),
        })
        .unwrap();
    let decoder = Decoder::start(&client.subscriber_sdp(sub.id).unwrap(), port, "restart");
    let mut first = sender(&VP8, a.ingest.port, 0);
    play(&client, sub.id, 60);
    first.stop();
    until("the source to turn idle", || {
        client.source(a.id).unwrap().state == "idle"
    });
    assert_eq!(
        client.subscriber(sub.id).unwrap().source,
        Some(a.id),
        "subscribers stay"
    );
    // A new encoder process: new SSRC, new sequence numbers, new timestamps.
    let mut second = sender(&VP8, a.ingest.port, 1);
    play(&client, sub.id, 60);
    let (warnings, frames, _) = decoder.finish();
    second.stop();
    let view = client.source(a.id).unwrap();
    assert_eq!(view.state, "active");
    assert!(
        view.counters.restarts >= 1,
        "the restart was seen: {:?}",
        view.counters
    );
    assert!(
        warnings.is_empty(),
        "ffmpeg reported problems:\n{}",
        warnings.join("\n")
    );
    assert!(frames >= 100, "{frames} frames decoded");
}

/// An encoder with a 10 s GOP that honours keyframe requests: GStreamer's rtpbin receives RTCP
/// on `rtcp_port` and turns a PLI into a force-key-unit for the encoder.
fn long_gop_sender(port: u16, rtcp_port: u16) -> Reaped {
    let pipeline = format!(
        "rtpbin name=rb \
         videotestsrc is-live=true pattern=smpte ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! vp8enc keyframe-max-dist=300 deadline=1 cpu-used=8 ! rtpvp8pay picture-id-mode=15-bit \
         ! rb.send_rtp_sink_0 rb.send_rtp_src_0 ! udpsink host=127.0.0.1 port={port} \
         udpsrc port={rtcp_port} ! rb.recv_rtcp_sink_0"
    );
    gst_launch(&pipeline)
}

#[test]
fn a_switch_to_a_long_gop_source_completes_fast_because_the_node_asks_for_a_keyframe() {
    if !gst_and_ffmpeg_present() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_node, client) = start(&["--stats-interval", "50"]);
    let a = source(&client, "a", "vp8");
    let rtcp_port = free_port_pair();
    let b = client
        .create_source(&corecast_signaling::api::CreateSource {
            name: "long-gop".into(),
            codec: "vp8".into(),
            feedback: Some(format!("127.0.0.1:{rtcp_port}")),
            ..Default::default()
        })
        .unwrap();
    let port = free_port_pair();
    let sub = client
        .create_subscriber(&corecast_signaling::api::CreateSubscriber {
            source: a.id,
            dest: format!("127.0.0.1:{port}"),
        })
        .unwrap();
    let decoder = Decoder::start(
        &client.subscriber_sdp(sub.id).unwrap(),
        port,
        "keyframe-request",
    );
    let _a = sender(&VP8, a.ingest.port, 0);
    let _b = long_gop_sender(b.ingest.port, rtcp_port);
    // Well past B's first keyframe, and long before its next one (10 s later).
    play(&client, sub.id, 60);
    until("B to run", || {
        client.source(b.id).unwrap().counters.packets_received > 30
    });
    let asked = Instant::now();
    client.switch(sub.id, b.id).unwrap();
    until("the switch to complete", || {
        client.subscriber(sub.id).unwrap().source == Some(b.id)
    });
    let took = asked.elapsed();
    play(&client, sub.id, 30);
    let (warnings, _, _) = decoder.finish();
    assert!(
        took < Duration::from_secs(1),
        "the switch took {took:?} with a 10 s GOP"
    );
    let view = client.source(b.id).unwrap();
    assert!(view.counters.keyframe_requests >= 1, "{:?}", view.counters);
    assert!(
        view.counters.keyframes >= 2,
        "B sent a keyframe on request: {:?}",
        view.counters
    );
    assert!(
        warnings.is_empty(),
        "ffmpeg reported problems:\n{}",
        warnings.join("\n")
    );
    eprintln!("switch to a 10 s GOP source completed in {took:?}");
}

//! Instant join through the node, on loopback: a source with `join: replay` and a 10 s GOP
//! whose sender never answers a keyframe request. A plain subscriber added mid-GOP gets the
//! GOP's keyframe at once (long before the sender's next), then every packet after it once,
//! in order, under one numbering, and then live packets; the shard's replay counters say so.
//! With real encoders, ffmpeg decodes a subscriber that joins mid-GOP, and one switched to
//! such a source, without one warning. Bounded waits only.

mod common;

use std::time::{Duration, Instant};

use common::media::{free_port_pair, gst_and_ffmpeg_present, gst_launch, Decoder};
use common::*;
use corecast_signaling::api::{CreateSource, CreateSubscriber};
use corecast_signaling::client::Client;

/// Eleven seconds of history hold a 10 s GOP; the pool is sized for four such sources.
const NODE: &[&str] = &[
    "--history-ms",
    "11000",
    "--history-packets",
    "4096",
    "--max-sources",
    "4",
    "--stats-interval",
    "50",
];

fn replay_source(client: &Client, name: &str) -> corecast_signaling::api::SourceView {
    client
        .create_source(&CreateSource {
            name: name.into(),
            codec: "vp8".into(),
            join: Some("replay".into()),
            ..Default::default()
        })
        .expect("source created")
}

fn replay_stats(client: &Client) -> (u64, u64, u64) {
    let stats = client.stats().unwrap();
    stats.shards.iter().fold((0, 0, 0), |(s, f, p), shard| {
        let r = &shard.replay;
        (s + r.started, f + r.finished, p + r.packets)
    })
}

#[test]
fn a_subscriber_joining_mid_gop_starts_at_once_from_the_keyframe_and_reaches_live() {
    let (_node, client) = start(NODE);
    let source = replay_source(&client, "cam");
    assert_eq!(source.join, "replay");
    let ingest = ingest_addr(&source);
    // A keyframe every 300 frames (10 s at 30 fps); nothing here answers a PLI.
    let mut sender = Sender::new(ingest, 0x10ad, 300);
    let origin = Instant::now();
    let mut frames = 0u32;
    let send_due = |sender: &mut Sender, frames: &mut u32| {
        let due = origin + Duration::from_nanos(u64::from(*frames) * 1_000_000_000 / 30);
        if Instant::now() >= due {
            while !sender.send().marker {}
            *frames += 1;
        }
    };
    // A subscriber from the start (it finds nothing to replay and takes the first keyframe),
    // then 60 frames: the GOP is 2 s old when the second subscriber joins.
    let watcher = receiver();
    subscribe(&client, source.id, std::slice::from_ref(&watcher));
    until_by(
        Instant::now() + Duration::from_secs(20),
        "60 frames",
        || {
            send_due(&mut sender, &mut frames);
            frames >= 60
        },
    );
    let joined_at_frame = frames;
    let socket = receiver();
    subscribe(&client, source.id, std::slice::from_ref(&socket));
    let mut got = Vec::new();
    until("the replay to catch up with live", || {
        send_due(&mut sender, &mut frames);
        drain(&socket, &mut got);
        replay_stats(&client).1 >= 1
    });
    // Some live packets after it, then the sender stops.
    let live_until = frames + 15;
    until("15 live frames", || {
        send_due(&mut sender, &mut frames);
        drain(&socket, &mut got);
        frames >= live_until
    });
    assert!(frames < 300, "the sender never sent a second keyframe");
    // Every packet of every frame since the keyframe (8 for it, 3 for each other).
    let expected = u64::from(8 + 3 * (frames - 1));
    let id = subscriber_at(&client, &socket);
    until("the node to send every packet", || {
        client.subscriber(id).unwrap().counters.packets_sent >= expected
    });
    until("every packet to arrive", || {
        drain(&socket, &mut got);
        got.len() as u64 >= expected
    });
    drain(&socket, &mut got);
    assert_eq!(
        client.subscriber(id).unwrap().counters.packets_sent,
        expected
    );
    assert_eq!(got.len() as u64, expected, "each once");
    assert!(
        got[0].keyframe_start,
        "the first packet starts the keyframe"
    );
    assert_eq!(
        got.iter().filter(|g| g.keyframe_start).count(),
        1,
        "one keyframe: the replayed one"
    );
    for w in got.windows(2) {
        assert_eq!(
            w[1].seq,
            w[0].seq.wrapping_add(1),
            "in order, one numbering"
        );
    }
    let (started, finished, packets) = replay_stats(&client);
    assert_eq!((started, finished), (1, 1));
    assert!(
        packets >= u64::from(8 + 3 * (joined_at_frame - 1)),
        "the GOP up to the join came from the history: {packets}"
    );
}

/// The id of the subscriber that receives at `socket`.
fn subscriber_at(client: &Client, socket: &std::net::UdpSocket) -> u32 {
    let dest = socket.local_addr().unwrap();
    client
        .subscribers()
        .unwrap()
        .into_iter()
        .find(|s| s.dest == dest)
        .expect("the subscriber exists")
        .id
}

#[test]
fn a_join_policy_the_node_does_not_know_is_refused() {
    let (_node, client) = start(&[]);
    let (status, code, message) = api_error(client.create_source(&CreateSource {
        name: "cam".into(),
        codec: "vp8".into(),
        join: Some("instant".into()),
        ..Default::default()
    }));
    assert_eq!((status, code.as_str()), (400, "bad_request"), "{message}");
    assert!(message.contains("`join` `instant`"), "{message}");
    assert!(client.sources().unwrap().is_empty(), "nothing was made");
    assert_eq!(source(&client, "plain", "vp8").join, "keyframe");
}

/// vp8enc with no keyframe after its first (as one with a very long keyframe interval), sent
/// with a plain udpsink: nothing reads RTCP, so keyframe requests go unanswered.
fn long_gop_encoder(port: u16) -> common::media::Reaped {
    gst_launch(&format!(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! vp8enc keyframe-mode=disabled deadline=1 cpu-used=8 ! rtpvp8pay picture-id-mode=15-bit \
         ! udpsink host=127.0.0.1 port={port}"
    ))
}

/// The frames of a replay are 1/pace of a frame interval apart (fast-forward); ffmpeg's null
/// output re-times frames to the stream's nominal rate (30 fps) by default, so two of them
/// would land on one output timestamp and it warns. A player schedules each by its own
/// timestamp: keep the demuxer's (90 kHz) time base, as it would.
const KEEP_TIMESTAMPS: &[&str] = &["-enc_time_base", "-1"];

fn sent(client: &Client, sub: u32) -> u64 {
    client.subscriber(sub).unwrap().counters.packets_sent
}

#[test]
fn ffmpeg_decodes_a_mid_gop_join_and_a_switch_to_a_long_gop_source_cleanly() {
    if !gst_and_ffmpeg_present() {
        return;
    }
    let (_node, client) = start(NODE);
    let long = replay_source(&client, "long-gop");
    let short = source(&client, "short-gop", "vp8");
    let _short = gst_launch(&format!(
        "videotestsrc is-live=true pattern=smpte ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! vp8enc keyframe-max-dist=30 deadline=1 cpu-used=8 ! rtpvp8pay picture-id-mode=15-bit \
         ! udpsink host=127.0.0.1 port={}",
        short.ingest.port
    ));
    // A subscriber of the short GOP source, to be switched to the long one mid-GOP. ffmpeg
    // listens before the subscriber exists: on a loaded machine the source's first keyframe
    // could otherwise reach the port before ffmpeg, which then starts at a delta frame.
    let port = free_port_pair();
    let dest = format!("127.0.0.1:{port}");
    let sdp = client.source_sdp(short.id, dest.parse().unwrap()).unwrap();
    let switched = Decoder::start_with(&sdp, port, "replay-switch", KEEP_TIMESTAMPS);
    let switcher = client
        .create_subscriber(&CreateSubscriber {
            source: short.id,
            dest,
        })
        .unwrap();
    // Nobody watches the long GOP source: its history is kept all the same (`join: replay`).
    let _encoder = long_gop_encoder(long.ingest.port);
    until_by(
        Instant::now() + Duration::from_secs(20),
        "90 packets of the long GOP source (past its keyframe)",
        || client.source(long.id).unwrap().counters.packets_received > 90,
    );

    // A new ffmpeg subscriber of the long GOP source, mid-GOP.
    let port = free_port_pair();
    let dest = format!("127.0.0.1:{port}");
    let sdp = client.source_sdp(long.id, dest.parse().unwrap()).unwrap();
    let joiner = Decoder::start_with(&sdp, port, "replay-join", KEEP_TIMESTAMPS);
    let sub = client
        .create_subscriber(&CreateSubscriber {
            source: long.id,
            dest,
        })
        .unwrap();
    until("the joiner's first packets", || sent(&client, sub.id) > 0);
    // And the switch, once the switcher has played a while.
    until("the switcher to play", || sent(&client, switcher.id) > 60);
    client.switch(switcher.id, long.id).unwrap();
    until("the switch to complete", || {
        client.subscriber(switcher.id).unwrap().source == Some(long.id)
    });
    until("both replays to catch up with live", || {
        replay_stats(&client).1 >= 2
    });
    let c = client.source(long.id).unwrap().counters;
    assert_eq!(
        c.keyframes, 1,
        "the encoder sent no keyframe but its first: {c:?}"
    );
    let targets = [sub.id, switcher.id].map(|id| (id, sent(&client, id) + 60));
    until("both to play live", || {
        targets
            .iter()
            .all(|&(id, target)| sent(&client, id) >= target)
    });

    for (name, decoder) in [("joiner", joiner), ("switcher", switched)] {
        let (warnings, frames, _) = decoder.finish();
        assert!(
            warnings.is_empty(),
            "ffmpeg reported problems with the {name}:\n{}",
            warnings.join("\n")
        );
        assert!(frames >= 60, "{frames} frames decoded for the {name}");
    }
    let (started, finished, _) = replay_stats(&client);
    assert_eq!((started, finished), (2, 2));
}

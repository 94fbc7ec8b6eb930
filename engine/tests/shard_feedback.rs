//! A shard handed subscribers' RTCP: which track a PLI or FIR is about (the shard's own SSRC
//! index), whose feedback is taken, keyframe wishes coalesced per source and interval, and that
//! reading it allocates nothing. Virtual time throughout.

mod common;

use std::net::SocketAddr;

use corecast_engine::rtcp::{self, PLI_LEN};
use corecast_engine::shard::is_subscribers_address;
use corecast_engine::synth::{VideoShape, Vp8Stream};
use corecast_engine::{
    Codec, ControlError, IngressConfig, Nanos, RtpTime, SeqNo, Shard, ShardEvent, SourceId,
    SourceIngress, Ssrc, TrackConfig, TrackId,
};

use common::counting_alloc::{counted, Counting};

#[global_allocator]
static GLOBAL: Counting = Counting;

fn track(id: u32, ssrc: u32, dest: &str) -> TrackConfig {
    TrackConfig {
        id: TrackId(id),
        dest: dest.parse().unwrap(),
        ssrc: Ssrc(ssrc),
        payload_type: 96,
        first_seq: SeqNo(1),
        first_ts: RtpTime(1),
    }
}

fn pli(media: u32) -> Vec<u8> {
    let mut out = [0u8; PLI_LEN];
    rtcp::write_pli(&mut out, Ssrc(0xfeed), Ssrc(media));
    out.to_vec()
}

/// A FIR (RFC 5104 §4.3.1) asking for each of `media`.
fn fir(media: &[u32]) -> Vec<u8> {
    let words = 2 + 2 * media.len() as u16;
    let mut out = vec![0x80 | 4, rtcp::PT_PSFB];
    out.extend_from_slice(&words.to_be_bytes());
    out.extend_from_slice(&0xfeedu32.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    for (i, ssrc) in media.iter().enumerate() {
        out.extend_from_slice(&ssrc.to_be_bytes());
        out.extend_from_slice(&[i as u8, 0, 0, 0]);
    }
    out
}

/// An empty receiver report, as compound RTCP starts with one.
fn receiver_report() -> Vec<u8> {
    let mut out = vec![0x80, rtcp::PT_RR, 0, 1];
    out.extend_from_slice(&0xfeedu32.to_be_bytes());
    out
}

/// Sources a keyframe is wanted from after one datagram from `from` (events drained).
fn wanted(shard: &mut Shard, bytes: &[u8], from: Option<&str>) -> Vec<SourceId> {
    let from: Option<SocketAddr> = from.map(|f| f.parse().unwrap());
    shard.handle_rtcp(bytes, from, Nanos::ZERO);
    std::iter::from_fn(|| shard.poll_event())
        .map(|e| match e {
            ShardEvent::KeyframeWanted { source } => source,
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

#[test]
fn the_ssrc_index_follows_the_tracks_and_refuses_a_second_track_with_one_ssrc() {
    let mut shard = Shard::default();
    shard.add_source(SourceId(1), Codec::Vp8).unwrap();
    shard
        .add_track(track(1, 100, "127.0.0.1:5000"), SourceId(1))
        .unwrap();
    shard
        .add_track(track(2, 200, "127.0.0.1:5002"), SourceId(1))
        .unwrap();
    // Track 1 again, with track 2's SSRC: refused as a duplicate track; 200 still means track 2.
    assert_eq!(
        shard.add_track(track(1, 200, "127.0.0.1:5004"), SourceId(1)),
        Err(ControlError::DuplicateTrack(TrackId(1)))
    );
    assert_eq!(
        shard.add_track(track(3, 200, "127.0.0.1:5004"), SourceId(1)),
        Err(ControlError::DuplicateSsrc(Ssrc(200)))
    );
    // A track for a source the shard does not host: refused, its SSRC unknown.
    assert!(shard
        .add_track(track(4, 300, "127.0.0.1:5006"), SourceId(9))
        .is_err());
    assert_eq!(
        wanted(&mut shard, &pli(200), Some("127.0.0.1:5002")),
        [SourceId(1)]
    );
    assert!(wanted(&mut shard, &pli(300), Some("127.0.0.1:5006")).is_empty());
    assert_eq!(shard.counters().rtcp_wrong_sender, 0, "300 is no track's");

    shard.remove_track(TrackId(2)).unwrap();
    assert!(wanted(&mut shard, &pli(200), Some("127.0.0.1:5002")).is_empty());
    assert_eq!(
        wanted(&mut shard, &pli(100), Some("127.0.0.1:5000")),
        [SourceId(1)]
    );
    // The SSRC is free again.
    shard
        .add_track(track(5, 200, "127.0.0.1:5008"), SourceId(1))
        .unwrap();
    assert_eq!(
        wanted(&mut shard, &pli(200), Some("127.0.0.1:5008")),
        [SourceId(1)]
    );
    assert_eq!(shard.counters().keyframe_requests, 3);
}

#[test]
fn feedback_is_taken_only_from_the_subscribers_address() {
    let mut shard = Shard::default();
    shard.add_source(SourceId(1), Codec::Vp8).unwrap();
    shard
        .add_track(track(1, 100, "127.0.0.1:5000"), SourceId(1))
        .unwrap();
    for (from, taken) in [
        // rtcp-mux: from the port media goes to.
        (Some("127.0.0.1:5000"), true),
        // RFC 3550 without mux (ffmpeg, GStreamer's rtpbin): from the next port.
        (Some("127.0.0.1:5001"), true),
        (Some("127.0.0.1:4999"), false),
        (Some("127.0.0.1:5002"), false),
        (Some("127.0.0.2:5000"), false),
        (None, false),
    ] {
        for bytes in [pli(100), fir(&[100])] {
            let asked = wanted(&mut shard, &bytes, from);
            let want = if taken { vec![SourceId(1)] } else { vec![] };
            assert_eq!(asked, want, "from {from:?}");
        }
    }
    assert_eq!(shard.counters().keyframe_requests, 4);
    assert_eq!(
        shard.counters().rtcp_wrong_sender,
        8,
        "refused requests are counted"
    );
    // An SSRC no track sends with is not a subscriber's feedback at all.
    assert!(wanted(&mut shard, &pli(7), Some("127.0.0.2:1")).is_empty());
    assert_eq!(shard.counters().rtcp_wrong_sender, 8);

    // A subscriber at the top port has no "next port"; its own still works.
    shard
        .add_track(track(2, 200, "127.0.0.1:65535"), SourceId(1))
        .unwrap();
    assert_eq!(
        wanted(&mut shard, &pli(200), Some("127.0.0.1:65535")),
        [SourceId(1)]
    );
    assert!(wanted(&mut shard, &pli(200), Some("127.0.0.1:0")).is_empty());
}

#[test]
fn the_subscribers_address_rule() {
    let dest: SocketAddr = "192.0.2.7:5000".parse().unwrap();
    let from = |s: &str| s.parse::<SocketAddr>().unwrap();
    assert!(is_subscribers_address(from("192.0.2.7:5000"), dest));
    assert!(is_subscribers_address(from("192.0.2.7:5001"), dest));
    assert!(!is_subscribers_address(from("192.0.2.7:5002"), dest));
    assert!(!is_subscribers_address(from("192.0.2.7:4999"), dest));
    assert!(!is_subscribers_address(from("192.0.2.8:5000"), dest));
    // An IPv4 subscriber's RTCP arriving on a dual-stack socket, as a mapped address.
    assert!(is_subscribers_address(
        from("[::ffff:192.0.2.7]:5001"),
        dest
    ));
}

#[test]
fn wishes_coalesce_into_one_queued_event_per_source() {
    let mut shard = Shard::default();
    shard.add_source(SourceId(1), Codec::Vp8).unwrap();
    shard.add_source(SourceId(2), Codec::Vp8).unwrap();
    for t in 0..10u32 {
        let dest = format!("127.0.0.1:{}", 6000 + 2 * t);
        shard
            .add_track(track(t, 100 + t, &dest), SourceId(1 + t % 2))
            .unwrap();
    }
    // Every subscriber asks three times before the I/O layer polls.
    for _ in 0..3 {
        for t in 0..10u32 {
            let from = format!("127.0.0.1:{}", 6000 + 2 * t).parse().ok();
            shard.handle_rtcp(&pli(100 + t), from, Nanos::ZERO);
        }
    }
    let events: Vec<ShardEvent> = std::iter::from_fn(|| shard.poll_event()).collect();
    assert_eq!(
        events,
        [
            ShardEvent::KeyframeWanted {
                source: SourceId(1)
            },
            ShardEvent::KeyframeWanted {
                source: SourceId(2)
            }
        ]
    );
    assert_eq!(shard.counters().keyframe_requests, 30, "each is counted");
}

/// The example, end to end over the engine: 100 subscribers send 50,000 PLIs in 5 s; the
/// I/O layer polls after every datagram and hands each wish to the source's ingress. With a
/// 500 ms interval the shard queues one wish per interval and ingress sends one PLI per interval.
#[test]
fn fifty_thousand_plis_from_a_hundred_subscribers_become_one_request_per_interval() {
    let interval = Nanos::from_millis(500);
    let source = SourceId(1);
    let mut shard = Shard::default();
    shard.set_keyframe_interval(interval);
    shard.add_source(source, Codec::Vp8).unwrap();
    let mut ingress = SourceIngress::with_config(
        source,
        Codec::Vp8,
        90_000,
        IngressConfig {
            pli_interval: interval,
            ..IngressConfig::default()
        },
    );
    let mut stream = Vp8Stream::new(Ssrc(0x5eed), 1, 0, VideoShape::default());
    let mut buf = Vec::new();
    stream.next_packet(&mut buf);
    ingress
        .accept(&buf, "10.0.0.1:4000".parse().ok(), Nanos::ZERO)
        .unwrap();
    let subscribers: Vec<(Vec<u8>, SocketAddr)> = (0..100u32)
        .map(|t| {
            let dest = format!("127.0.0.1:{}", 7000 + 2 * t);
            shard.add_track(track(t, 500 + t, &dest), source).unwrap();
            (pli(500 + t), dest.parse().unwrap())
        })
        .collect();

    let (mut queued, mut sent) = (0u64, Vec::new());
    // The I/O layer's turn: wishes to ingress, ingress's timers, PLIs out.
    fn step(
        shard: &mut Shard,
        ingress: &mut SourceIngress,
        now: Nanos,
        queued: &mut u64,
        sent: &mut Vec<u64>,
    ) {
        while let Some(event) = shard.poll_event() {
            assert!(matches!(event, ShardEvent::KeyframeWanted { .. }));
            *queued += 1;
            ingress.request_keyframe();
        }
        if ingress.poll_timeout().is_some_and(|at| at <= now) {
            ingress.handle_timeout(now);
        }
        while let Some(req) = ingress.poll_transmit(now) {
            assert_eq!(req.to, "10.0.0.1:4000".parse().unwrap());
            sent.push(now.0 / 1_000_000);
        }
    }
    // One PLI every 100 µs, round robin over the subscribers: 50,000 in 5 s.
    for i in 0..50_000u64 {
        let now = Nanos::from_micros(100 * i);
        if shard.poll_timeout().is_some_and(|at| at <= now) {
            shard.handle_timeout(now);
        }
        let (bytes, from) = &subscribers[(i % 100) as usize];
        shard.handle_rtcp(bytes, Some(*from), now);
        step(&mut shard, &mut ingress, now, &mut queued, &mut sent);
    }
    assert_eq!(shard.counters().keyframe_requests, 50_000);
    assert_eq!(queued, 10, "one wish per interval left the shard");
    assert_eq!(sent, (0..10).map(|k| k * 500).collect::<Vec<_>>());
    assert_eq!(ingress.counters().keyframe_requests_sent, 10);
    // The wishes of the last interval are still owed: one more, when it ends.
    let end = shard.poll_timeout().expect("a wish waits");
    assert_eq!(end, Nanos::from_millis(5_000));
    shard.handle_timeout(end);
    step(&mut shard, &mut ingress, end, &mut queued, &mut sent);
    assert_eq!((queued, sent.len()), (11, 11));
    assert_eq!(shard.poll_timeout(), None);
}

#[test]
fn reading_plis_and_firs_allocates_nothing() {
    let mut shard = Shard::default();
    shard.add_source(SourceId(1), Codec::Vp8).unwrap();
    shard.add_source(SourceId(2), Codec::Vp8).unwrap();
    for t in 0..4u32 {
        let dest = format!("127.0.0.1:{}", 6000 + 2 * t);
        shard
            .add_track(track(t, 100 + t, &dest), SourceId(1 + t % 2))
            .unwrap();
    }
    // One compound datagram per subscriber: RR, PLI, and a FIR naming several SSRCs.
    let datagrams: Vec<(Vec<u8>, SocketAddr)> = (0..4u32)
        .map(|t| {
            let mut bytes = receiver_report();
            bytes.extend(pli(100 + t));
            bytes.extend(fir(&[100 + t, 100 + t, 999]));
            (
                bytes,
                format!("127.0.0.1:{}", 6000 + 2 * t).parse().unwrap(),
            )
        })
        .collect();
    let mut asked = [0u32; 3];
    let ((), allocations) = counted(|| {
        for _ in 0..100 {
            for (bytes, from) in &datagrams {
                shard.handle_rtcp(bytes, Some(*from), Nanos::ZERO);
                while let Some(ShardEvent::KeyframeWanted { source }) = shard.poll_event() {
                    asked[source.0 as usize] += 1;
                }
            }
        }
    });
    assert_eq!(allocations, 0, "allocations while reading RTCP");
    // Polled after every datagram: one wish per datagram.
    assert_eq!(asked, [0, 200, 200]);
    assert_eq!(
        shard.counters().keyframe_requests,
        1200,
        "a PLI and two FIR entries per datagram"
    );
}

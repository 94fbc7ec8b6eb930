//! The per-packet path (ingress, fan-out, splicing, switches applied at a keyframe, a source
//! restart) does not allocate. A counting global allocator counts allocations made on this
//! thread while the packet path runs.

mod common;

use corecast_engine::codec::parameter_sets::MAX_PRELUDE_LEN;
use corecast_engine::synth::{VideoShape, Vp8Stream};
use corecast_engine::{
    Codec, Nanos, RtpTime, SeqNo, Shard, ShardEvent, SourceId, SourceIngress, Ssrc, TrackConfig,
    TrackId, TransmitBatch,
};

use common::counting_alloc::{counted, Counting};

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn packet_path_does_not_allocate() {
    let (a, b) = (SourceId(1), SourceId(2));
    let mut shard = Shard::default();
    shard.add_source(a, Codec::Vp8).unwrap();
    shard.add_source(b, Codec::Vp8).unwrap();
    for t in 0..1000u32 {
        let config = TrackConfig {
            id: TrackId(t),
            dest: format!("127.0.0.1:{}", 20_000 + t).parse().unwrap(),
            ssrc: Ssrc(t),
            payload_type: 96,
            first_seq: SeqNo(t as u16),
            first_ts: RtpTime(t),
        };
        shard
            .add_track(config, if t % 2 == 0 { a } else { b })
            .unwrap();
    }
    let shape = VideoShape {
        gop: 10,
        ..VideoShape::default()
    };
    let mut sources = [
        (
            SourceIngress::new(a, Codec::Vp8, 90_000),
            Vp8Stream::new(Ssrc(10), 100, 0, shape),
        ),
        (
            SourceIngress::new(b, Codec::Vp8, 90_000),
            Vp8Stream::new(Ssrc(20), 60_000, 0, shape),
        ),
    ];
    let mut batch = TransmitBatch::with_capacity(64);
    // Packets are prepared outside the measured region, as the I/O layer's pool would hold them.
    let mut packets: Vec<(usize, Vec<u8>)> = Vec::new();
    for i in 0..400 {
        let s = i % 2;
        let mut buf = Vec::with_capacity(1500);
        sources[s].1.next_packet(&mut buf);
        packets.push((s, buf));
    }
    // Source b restarts with a new SSRC halfway.
    let mut restarted = Vp8Stream::new(Ssrc(99), 7, 0, shape);
    for p in packets.iter_mut().skip(201).step_by(2) {
        p.1.clear();
        restarted.next_packet(&mut p.1);
    }

    let mut now = 0u64;
    let mut run = |shard: &mut Shard, range: std::ops::Range<usize>| {
        let mut sent = 0usize;
        let (_, allocations) = counted(|| {
            for (i, (s, buf)) in packets.iter().enumerate().take(range.end).skip(range.start) {
                now += 1_000_000;
                if i == 201 {
                    // The restarted sender comes back after a pause, as a restarting one does.
                    now += 400_000_000;
                }
                // The restarted stream is held on probation until the old one has been silent
                // long enough, then released: holding and releasing must not allocate either.
                let _ = sources[*s]
                    .0
                    .ingest(buf, None, Nanos(now), |pkt, bytes, _| {
                        let mut fan = shard.fan_out(pkt, bytes, Nanos(now));
                        loop {
                            let n = fan.fill(&mut batch);
                            if n == 0 {
                                break;
                            }
                            sent += n;
                            batch.clear();
                        }
                    });
            }
        });
        (sent, allocations)
    };

    let (sent, allocations) = run(&mut shard, 0..100);
    assert!(sent > 10_000, "traffic flowed: {sent}");
    assert_eq!(allocations, 0, "steady-state fan-out allocated");

    // Switch every track to the other source: the requests (control path) may allocate, the
    // switches applied at the keyframes on the packet path must not.
    for t in 0..1000u32 {
        shard
            .switch(TrackId(t), if t % 2 == 0 { b } else { a }, Nanos::ZERO)
            .unwrap();
    }
    // The two keyframe wishes the switches queued, polled as the I/O layer would.
    let wished: Vec<ShardEvent> = std::iter::from_fn(|| shard.poll_event()).collect();
    assert_eq!(
        wished,
        [
            ShardEvent::KeyframeWanted { source: b },
            ShardEvent::KeyframeWanted { source: a }
        ]
    );
    let (sent, allocations) = run(&mut shard, 100..400);
    let (applied, polling) = counted(|| {
        let mut applied = 0;
        while let Some(event) = shard.poll_event() {
            applied += matches!(event, ShardEvent::SwitchApplied { .. }) as usize;
        }
        applied
    });
    assert_eq!(polling, 0, "polling events allocated");
    assert!(sent > 10_000);
    assert_eq!(shard.counters().switches, 1000, "every switch applied");
    assert_eq!(applied, 1000, "every applied switch recorded");
    assert_eq!(sources[1].0.counters().restarts, 1);
    assert_eq!(
        allocations, 0,
        "switches and a restart on the packet path allocated"
    );
}

/// H.265 from a real encoder that sends VPS/SPS/PPS once: caching them on ingress and sending
/// them as a prelude to tracks that start at a later keyframe does not allocate either.
#[test]
fn parameter_set_cache_and_preludes_do_not_allocate() {
    let source = SourceId(3);
    let mut shard = Shard::default();
    shard.add_source(source, Codec::H265).unwrap();
    let config = |t: u32| TrackConfig {
        id: TrackId(t),
        dest: format!("127.0.0.1:{}", 20_000 + t).parse().unwrap(),
        ssrc: Ssrc(t),
        payload_type: 104,
        first_seq: SeqNo(t as u16),
        first_ts: RtpTime(t),
    };
    let mut ingress = SourceIngress::new(source, Codec::H265, 90_000);
    // Room for each packet and a prelude, as the node's pool slots have.
    let mut records: Vec<Vec<u8>> = common::fixtures::rtp_records("h265.rtp")
        .into_iter()
        .map(|r| {
            let mut buf = Vec::with_capacity(r.len() + MAX_PRELUDE_LEN);
            buf.extend_from_slice(&r);
            buf
        })
        .collect();
    let first_frame = records.iter().position(|r| r[1] & 0x80 != 0).unwrap() + 1;
    let mut batch = TransmitBatch::with_capacity(64);
    let mut sent = 0usize;
    let mut run = |shard: &mut Shard, records: &mut [Vec<u8>], now: &mut u64| {
        counted(|| {
            for buf in records {
                *now += 1_000_000;
                // One stream: nothing is held.
                let Ok(Some(mut pkt)) = ingress.accept(buf, None, Nanos(*now)) else {
                    continue;
                };
                if let Some(prelude) = ingress.prelude_for(&pkt) {
                    pkt.attach_prelude(buf, prelude);
                }
                let mut fan = shard.fan_out(&pkt, buf, Nanos(*now));
                loop {
                    let n = fan.fill(&mut batch);
                    if n == 0 {
                        break;
                    }
                    sent += n;
                    batch.clear();
                }
            }
        })
        .1
    };
    let mut now = 0;
    for t in 0..500 {
        shard.add_track(config(t), source).unwrap();
    }
    let (head, tail) = records.split_at_mut(first_frame);
    assert_eq!(
        run(&mut shard, head, &mut now),
        0,
        "first keyframe allocated"
    );
    for t in 500..1000 {
        shard.add_track(config(t), source).unwrap();
    }
    assert_eq!(run(&mut shard, tail, &mut now), 0, "preludes allocated");
    assert_eq!(shard.source_counters(source).unwrap().preludes, 500);
    assert!(sent > 100_000, "traffic flowed: {sent}");
}

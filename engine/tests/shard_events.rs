//! A shard's events and switch deadlines over virtual time: a switch applied at the new source's
//! keyframe, deferred while the old source is mid-frame, or cancelled at its deadline; each
//! reported once through `poll_event`.

use corecast_engine::synth::{VideoShape, Vp8Stream};
use corecast_engine::{
    Codec, Nanos, RtpTime, SeqNo, Shard, ShardEvent, SourceId, SourceIngress, Ssrc, SwitchOutcome,
    TrackConfig, TrackId, TransmitBatch,
};

const TIMEOUT: Nanos = Nanos::from_millis(5_000);
const A: SourceId = SourceId(1);
const B: SourceId = SourceId(2);
const T: TrackId = TrackId(1);

/// One source's sender and ingress.
struct Sender {
    stream: Vp8Stream,
    ingress: SourceIngress,
}

impl Sender {
    fn new(id: SourceId, shape: VideoShape) -> Sender {
        Sender {
            stream: Vp8Stream::new(Ssrc(id.0), 1, 0, shape),
            ingress: SourceIngress::new(id, Codec::Vp8, 90_000),
        }
    }

    /// Send the next packet through ingress and `shard` at `now`; the tracks it went to.
    fn send(&mut self, shard: &mut Shard, now: Nanos) -> Vec<TrackId> {
        let mut buf = Vec::new();
        self.stream.next_packet(&mut buf);
        let mut batch = TransmitBatch::with_capacity(16);
        let mut sent = Vec::new();
        let _ = self.ingress.ingest(&buf, None, now, |pkt, bytes, _| {
            let mut fan = shard.fan_out(pkt, bytes, now);
            while fan.fill(&mut batch) > 0 {
                sent.extend(batch.as_slice().iter().map(|t| t.track));
                batch.clear();
            }
        });
        sent
    }
}

fn events(shard: &mut Shard) -> Vec<ShardEvent> {
    std::iter::from_fn(|| shard.poll_event()).collect()
}

/// A shard with sources A and B and track T live on A.
fn setup(shape: VideoShape) -> (Shard, Sender, Sender) {
    let mut shard = Shard::default();
    shard.set_switch_timeout(TIMEOUT);
    shard.add_source(A, Codec::Vp8).unwrap();
    shard.add_source(B, Codec::Vp8).unwrap();
    shard
        .add_track(
            TrackConfig {
                id: T,
                dest: "127.0.0.1:9000".parse().unwrap(),
                ssrc: Ssrc(77),
                payload_type: 96,
                first_seq: SeqNo(1),
                first_ts: RtpTime(1),
            },
            A,
        )
        .unwrap();
    let (mut a, b) = (Sender::new(A, shape), Sender::new(B, shape));
    assert_eq!(
        a.send(&mut shard, Nanos::ZERO),
        [T],
        "A's first packet is a keyframe"
    );
    (shard, a, b)
}

fn ms(ms: u64) -> Nanos {
    Nanos::from_millis(ms)
}

#[test]
fn a_switch_that_finds_no_keyframe_times_out_once_and_the_track_stays() {
    let shape = VideoShape {
        gop: 1_000,
        ..VideoShape::default()
    };
    let (mut shard, mut a, mut b) = setup(shape);
    // B's first keyframe comes before the switch; after it, B sends no keyframe for 30 s.
    b.send(&mut shard, ms(1));
    assert_eq!(shard.switch(T, B, ms(100)), Ok(SwitchOutcome::Pending));
    assert_eq!(
        events(&mut shard),
        [ShardEvent::KeyframeWanted { source: B }]
    );
    assert_eq!(shard.poll_timeout(), Some(ms(100).saturating_add(TIMEOUT)));

    let mut timed_out = Vec::new();
    for step in 1..=300u64 {
        let now = ms(100 + step * 33);
        if shard.poll_timeout().is_some_and(|at| at <= now) {
            shard.handle_timeout(now);
        }
        timed_out.extend(events(&mut shard));
        assert_eq!(a.send(&mut shard, now), [T], "the track keeps sending A");
        b.send(&mut shard, now);
    }
    assert_eq!(timed_out, [ShardEvent::SwitchTimedOut { track: T, to: B }]);
    let info = shard.track(T).unwrap();
    assert_eq!((info.source, info.pending), (Some(A), None));
    assert_eq!(shard.counters().switches_timed_out, 1);
    assert_eq!(shard.counters().switches, 0);
    assert_eq!(shard.poll_timeout(), None);
}

#[test]
fn the_deadline_is_exact_in_virtual_time() {
    let (mut shard, _a, _b) = setup(VideoShape::default());
    shard.switch(T, B, ms(10)).unwrap();
    let deadline = ms(10).saturating_add(TIMEOUT);
    shard.handle_timeout(Nanos(deadline.0 - 1));
    assert_eq!(shard.track(T).unwrap().pending, Some(B), "not yet");
    assert_eq!(
        events(&mut shard),
        [ShardEvent::KeyframeWanted { source: B }]
    );
    shard.handle_timeout(deadline);
    assert_eq!(
        events(&mut shard),
        [ShardEvent::SwitchTimedOut { track: T, to: B }]
    );
    shard.handle_timeout(deadline.saturating_add(TIMEOUT));
    assert_eq!(events(&mut shard), [], "reported once");
}

#[test]
fn a_switch_applied_before_its_deadline_is_reported_and_never_times_out() {
    let shape = VideoShape {
        gop: 10,
        packets_per_frame: 1,
        packets_per_keyframe: 1,
        ..VideoShape::default()
    };
    let (mut shard, mut a, mut b) = setup(shape);
    assert_eq!(shard.switch(T, B, ms(1)), Ok(SwitchOutcome::Pending));
    let mut seen = Vec::new();
    // B starts sending now: its first packet is a keyframe, and the switch applies there.
    for step in 0..400u64 {
        let now = ms(2 + step * 33);
        if shard.poll_timeout().is_some_and(|at| at <= now) {
            shard.handle_timeout(now);
        }
        a.send(&mut shard, now);
        b.send(&mut shard, now);
        seen.extend(events(&mut shard));
    }
    assert_eq!(
        seen,
        [
            ShardEvent::KeyframeWanted { source: B },
            ShardEvent::SwitchApplied {
                track: T,
                from: Some(A),
                to: B
            }
        ]
    );
    assert_eq!(shard.track(T).unwrap().source, Some(B));
    assert_eq!(
        shard.poll_timeout(),
        None,
        "the deadline went with the switch"
    );
    assert_eq!(shard.counters().switches_timed_out, 0);
}

#[test]
fn a_switch_deferred_mid_frame_is_reported_and_wants_the_next_keyframe() {
    let shape = VideoShape {
        gop: 3,
        packets_per_frame: 3,
        packets_per_keyframe: 3,
        ..VideoShape::default()
    };
    let (mut shard, mut a, mut b) = setup(shape);
    a.send(&mut shard, ms(1));
    a.send(&mut shard, ms(2));
    assert_eq!(shard.switch(T, B, ms(3)), Ok(SwitchOutcome::Pending));
    assert_eq!(
        events(&mut shard),
        [ShardEvent::KeyframeWanted { source: B }]
    );
    // A is one packet into a frame when B's keyframe starts: the switch waits.
    a.send(&mut shard, ms(10));
    assert!(b.send(&mut shard, ms(11)).is_empty());
    assert_eq!(
        events(&mut shard),
        [
            ShardEvent::SwitchDeferred { track: T, to: B },
            ShardEvent::KeyframeWanted { source: B }
        ]
    );
    assert_eq!(shard.counters().switches_deferred, 1);
    // B's next keyframe (a GOP later) switches it.
    let mut seen = Vec::new();
    for i in 12..40 {
        b.send(&mut shard, ms(i));
        seen.extend(events(&mut shard));
    }
    assert_eq!(
        seen,
        [ShardEvent::SwitchApplied {
            track: T,
            from: Some(A),
            to: B
        }]
    );
}

#[test]
fn a_track_with_nothing_live_moves_at_once_and_wants_a_keyframe() {
    let (mut shard, _a, _b) = setup(VideoShape::default());
    // With A removed, T is detached and has nothing live to keep: a switch moves it at once.
    shard.remove_source(A).unwrap();
    assert_eq!(shard.switch(T, B, ms(5)), Ok(SwitchOutcome::Moved));
    assert_eq!(
        events(&mut shard),
        [ShardEvent::KeyframeWanted { source: B }]
    );
    assert_eq!(
        shard.poll_timeout(),
        None,
        "nothing pending, nothing to time out"
    );
}

#[test]
fn cancelling_or_removing_a_pending_switch_takes_its_deadline_with_it() {
    let (mut shard, _a, _b) = setup(VideoShape::default());
    shard.switch(T, B, ms(1)).unwrap();
    assert!(shard.poll_timeout().is_some());
    assert_eq!(shard.cancel_switch(T), Ok(true));
    assert_eq!(shard.poll_timeout(), None);
    shard.switch(T, B, ms(2)).unwrap();
    shard.remove_source(B).unwrap();
    assert_eq!(shard.poll_timeout(), None);
    shard.add_source(B, Codec::Vp8).unwrap();
    shard.switch(T, B, ms(3)).unwrap();
    shard.remove_track(T).unwrap();
    assert_eq!(shard.poll_timeout(), None);
    shard.handle_timeout(ms(100_000));
    assert!(events(&mut shard)
        .iter()
        .all(|e| !matches!(e, ShardEvent::SwitchTimedOut { .. })));
}

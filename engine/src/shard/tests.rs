//! The shard's layout and bookkeeping under random control operations and packets, checked
//! against a plain model after every step.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::source::SourceIngress;
use crate::synth::{VideoShape, Vp8Stream};

#[derive(Clone, Debug)]
enum Op {
    AddSource(u8),
    RemoveSource(u8),
    AddTrack(u8, u8),
    RemoveTrack(u8),
    Switch(u8, u8),
    Cancel(u8),
    Packet(u8, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0..4u8).prop_map(Op::AddSource),
        1 => (0..4u8).prop_map(Op::RemoveSource),
        3 => (0..12u8, 0..4u8).prop_map(|(t, s)| Op::AddTrack(t, s)),
        1 => (0..12u8).prop_map(Op::RemoveTrack),
        3 => (0..12u8, 0..4u8).prop_map(|(t, s)| Op::Switch(t, s)),
        1 => (0..12u8).prop_map(Op::Cancel),
        6 => (0..4u8, any::<bool>()).prop_map(|(s, k)| Op::Packet(s, k)),
    ]
}

/// What the model expects of a track: its source and pending source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ModelTrack {
    source: Option<SourceId>,
    pending: Option<SourceId>,
}

struct Rig {
    shard: Shard,
    streams: HashMap<u8, (SourceIngress, Vp8Stream)>,
    model: HashMap<u8, ModelTrack>,
    now: u64,
}

fn config(t: u8) -> TrackConfig {
    TrackConfig {
        id: TrackId(t as u32),
        dest: format!("127.0.0.1:{}", 20_000 + t as u16).parse().unwrap(),
        ssrc: Ssrc(0x1000 + t as u32),
        payload_type: 96,
        first_seq: SeqNo(t as u16 * 1000),
        first_ts: RtpTime(t as u32 * 77),
    }
}

impl Rig {
    fn new(layout: Layout) -> Rig {
        Rig {
            shard: Shard::new(layout),
            streams: HashMap::new(),
            model: HashMap::new(),
            now: 0,
        }
    }

    fn apply(&mut self, op: &Op) {
        let sid = |s: u8| SourceId(s as u32);
        match *op {
            Op::AddSource(s) => {
                let r = self.shard.add_source(sid(s), Codec::Vp8);
                if let std::collections::hash_map::Entry::Vacant(e) = self.streams.entry(s) {
                    assert_eq!(r, Ok(()));
                    let shape = VideoShape {
                        gop: 5,
                        packets_per_frame: 2,
                        packets_per_keyframe: 3,
                        ..VideoShape::default()
                    };
                    e.insert((
                        SourceIngress::new(sid(s), Codec::Vp8, 90_000),
                        Vp8Stream::new(Ssrc(s as u32), 100 * s as u16, 0, shape),
                    ));
                } else {
                    assert_eq!(r, Err(ControlError::DuplicateSource(sid(s))));
                }
            }
            Op::RemoveSource(s) => {
                let r = self.shard.remove_source(sid(s));
                if self.streams.remove(&s).is_none() {
                    assert_eq!(r, Err(ControlError::UnknownSource(sid(s))));
                    return;
                }
                let c = r.unwrap();
                assert_eq!(c.track_packets, c.forwarded + c.drops.total());
                for m in self.model.values_mut() {
                    if m.pending == Some(sid(s)) {
                        m.pending = None;
                    }
                    if m.source == Some(sid(s)) {
                        m.source = m.pending.take();
                    }
                }
            }
            Op::AddTrack(t, s) => {
                let r = self.shard.add_track(config(t), sid(s));
                if self.model.contains_key(&t) {
                    assert_eq!(r, Err(ControlError::DuplicateTrack(TrackId(t as u32))));
                } else if !self.streams.contains_key(&s) {
                    assert_eq!(r, Err(ControlError::UnknownSource(sid(s))));
                } else {
                    assert_eq!(r, Ok(()));
                    self.model.insert(
                        t,
                        ModelTrack {
                            source: Some(sid(s)),
                            pending: None,
                        },
                    );
                }
            }
            Op::RemoveTrack(t) => {
                let r = self.shard.remove_track(TrackId(t as u32));
                assert_eq!(r.is_ok(), self.model.remove(&t).is_some());
            }
            Op::Switch(t, s) => {
                let live = self.shard.track(TrackId(t as u32)).map(|i| i.live);
                let r = self.shard.switch(TrackId(t as u32), sid(s));
                let Some(m) = self.model.get_mut(&t) else {
                    assert_eq!(r, Err(ControlError::UnknownTrack(TrackId(t as u32))));
                    return;
                };
                if !self.streams.contains_key(&s) {
                    assert_eq!(r, Err(ControlError::UnknownSource(sid(s))));
                    return;
                }
                let want = if m.source == Some(sid(s)) {
                    m.pending = None;
                    SwitchOutcome::Unchanged
                } else if live == Some(true) {
                    m.pending = Some(sid(s));
                    SwitchOutcome::Pending
                } else {
                    m.pending = None;
                    m.source = Some(sid(s));
                    SwitchOutcome::Moved
                };
                assert_eq!(r, Ok(want));
            }
            Op::Cancel(t) => {
                let r = self.shard.cancel_switch(TrackId(t as u32));
                match self.model.get_mut(&t) {
                    Some(m) => assert_eq!(r, Ok(m.pending.take().is_some())),
                    None => assert!(r.is_err()),
                }
            }
            Op::Packet(s, force_key) => self.packet(s, force_key),
        }
    }

    fn packet(&mut self, s: u8, force_key: bool) {
        let Some((ingress, stream)) = self.streams.get_mut(&s) else {
            return;
        };
        if force_key {
            stream.force_keyframe();
        }
        let mut buf = Vec::new();
        stream.next_packet(&mut buf);
        self.now += 10_000_000;
        let now = Nanos(self.now);
        let pkt = ingress
            .accept(&buf, now)
            .expect("synthetic packets are valid");
        if pkt.is_switch_point() {
            for m in self.model.values_mut() {
                if m.pending == Some(pkt.source) {
                    m.source = m.pending.take();
                }
            }
        }
        let attached: Vec<u8> = self
            .model
            .iter()
            .filter(|(_, m)| m.source == Some(pkt.source))
            .map(|(&t, _)| t)
            .collect();
        let mut batch = TransmitBatch::with_capacity(3);
        let mut fan = self.shard.fan_out(&pkt, &buf, now);
        let mut sent = Vec::new();
        while fan.fill(&mut batch) > 0 {
            sent.extend(batch.as_slice().iter().map(|t| t.track.0 as u8));
            batch.clear();
        }
        for t in &sent {
            assert!(attached.contains(t), "{t} is not on {}", pkt.source);
        }
    }

    fn check(&self) {
        self.shard.check_layout();
        assert_eq!(self.shard.track_count(), self.model.len());
        for (&t, m) in &self.model {
            let info = self.shard.track(TrackId(t as u32)).unwrap();
            assert_eq!(
                (info.source, info.pending),
                (m.source, m.pending),
                "track {t}"
            );
        }
        for &s in self.streams.keys() {
            let c = self.shard.source_counters(SourceId(s as u32)).unwrap();
            assert_eq!(
                c.track_packets,
                c.forwarded + c.drops.total(),
                "source {s} conserves"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn layout_and_model_agree_after_every_operation(ops in proptest::collection::vec(op(), 1..120)) {
        for layout in [Layout::Grouped, Layout::Scan] {
            let mut rig = Rig::new(layout);
            for op in &ops {
                rig.apply(op);
                rig.check();
            }
        }
    }
}

#[test]
fn codec_mismatch_is_refused() {
    let mut shard = Shard::default();
    shard.add_source(SourceId(1), Codec::Vp8).unwrap();
    shard.add_source(SourceId(2), Codec::H264).unwrap();
    shard.add_track(config(1), SourceId(1)).unwrap();
    assert_eq!(
        shard.switch(TrackId(1), SourceId(2)),
        Err(ControlError::CodecMismatch {
            track: Codec::Vp8,
            source: Codec::H264
        })
    );
    assert_eq!(shard.track(TrackId(1)).unwrap().source, Some(SourceId(1)));
}

#[test]
fn unknown_source_packets_are_counted() {
    let mut shard = Shard::default();
    let mut ingress = SourceIngress::new(SourceId(7), Codec::Vp8, 90_000);
    let mut buf = Vec::new();
    Vp8Stream::new(Ssrc(1), 0, 0, VideoShape::default()).next_packet(&mut buf);
    let pkt = ingress.accept(&buf, Nanos::ZERO).unwrap();
    let mut batch = TransmitBatch::with_capacity(4);
    assert_eq!(shard.fan_out(&pkt, &buf, Nanos::ZERO).fill(&mut batch), 0);
    assert_eq!(shard.counters().drops.get(DropReason::UnknownSource), 1);
}

/// One Opus packet from `ingress`'s source through `shard`; returns the tracks that sent it.
fn opus_packet(
    shard: &mut Shard,
    ingress: &mut SourceIngress,
    stream: &mut crate::synth::OpusStream,
    now: Nanos,
) -> Vec<TrackId> {
    let mut buf = Vec::new();
    stream.next_packet(&mut buf);
    let pkt = ingress.accept(&buf, now).unwrap();
    let mut batch = TransmitBatch::with_capacity(8);
    let mut fan = shard.fan_out(&pkt, &buf, now);
    let mut sent = Vec::new();
    while fan.fill(&mut batch) > 0 {
        sent.extend(batch.as_slice().iter().map(|t| t.track));
        batch.clear();
    }
    sent
}

#[test]
fn audio_tracks_start_and_switch_at_the_next_packet() {
    use crate::synth::OpusStream;
    let (a, b) = (SourceId(1), SourceId(2));
    let mut shard = Shard::default();
    shard.add_source(a, Codec::Opus).unwrap();
    shard.add_source(b, Codec::Opus).unwrap();
    let mut ia = SourceIngress::new(a, Codec::Opus, 48_000);
    let mut ib = SourceIngress::new(b, Codec::Opus, 48_000);
    let (mut sa, mut sb) = (
        OpusStream::new(Ssrc(1), 10, 0),
        OpusStream::new(Ssrc(2), 500, 0),
    );
    // Mid-stream: the source has been sending for a while before the track arrives.
    for i in 0..5 {
        opus_packet(&mut shard, &mut ia, &mut sa, Nanos::from_millis(i * 20));
    }
    shard.add_track(config(1), a).unwrap();
    let sent = opus_packet(&mut shard, &mut ia, &mut sa, Nanos::from_millis(100));
    assert_eq!(sent, vec![TrackId(1)], "no keyframe wait for audio");
    assert_eq!(shard.switch(TrackId(1), b), Ok(SwitchOutcome::Pending));
    assert_eq!(
        opus_packet(&mut shard, &mut ia, &mut sa, Nanos::from_millis(120)),
        vec![TrackId(1)]
    );
    assert_eq!(
        opus_packet(&mut shard, &mut ib, &mut sb, Nanos::from_millis(121)),
        vec![TrackId(1)]
    );
    assert!(opus_packet(&mut shard, &mut ia, &mut sa, Nanos::from_millis(140)).is_empty());
    assert_eq!(shard.track(TrackId(1)).unwrap().source, Some(b));
}

#[test]
fn send_failures_move_a_copy_from_forwarded_to_dropped() {
    let a = SourceId(1);
    let mut shard = Shard::default();
    shard.add_source(a, Codec::Vp8).unwrap();
    shard.add_track(config(1), a).unwrap();
    shard.add_track(config(2), a).unwrap();
    let mut ingress = SourceIngress::new(a, Codec::Vp8, 90_000);
    let mut buf = Vec::new();
    Vp8Stream::new(Ssrc(1), 0, 0, VideoShape::default()).next_packet(&mut buf);
    let pkt = ingress.accept(&buf, Nanos::ZERO).unwrap();
    let mut batch = TransmitBatch::with_capacity(8);
    let mut fan = shard.fan_out(&pkt, &buf, Nanos::ZERO);
    assert_eq!(fan.fill(&mut batch), 2);
    assert_eq!(fan.fill(&mut TransmitBatch::with_capacity(1)), 0);
    let failed = batch.as_slice()[1];
    shard.record_send_failure(&failed, buf.len(), DropReason::SendBufferFull);
    let t = shard.track(failed.track).unwrap().counters;
    assert_eq!(
        (t.packets, t.bytes, t.drops.get(DropReason::SendBufferFull)),
        (0, 0, 1)
    );
    let s = shard.source_counters(a).unwrap();
    assert_eq!((s.forwarded, s.drops.total(), s.track_packets), (1, 1, 2));
}

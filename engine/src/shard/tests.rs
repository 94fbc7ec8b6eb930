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
    /// Its switch was put off once because its source was mid-frame.
    deferred: bool,
}

struct Rig {
    shard: Shard,
    streams: HashMap<u8, (SourceIngress, Vp8Stream)>,
    model: HashMap<u8, ModelTrack>,
    /// Per source: its last packet ended no frame, and when it came.
    open_frame: HashMap<SourceId, (bool, u64)>,
    now: u64,
}

pub(super) fn config(t: u8) -> TrackConfig {
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
            open_frame: HashMap::new(),
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
                self.open_frame.remove(&sid(s));
                for m in self.model.values_mut() {
                    if m.pending == Some(sid(s)) {
                        (m.pending, m.deferred) = (None, false);
                    }
                    if m.source == Some(sid(s)) {
                        m.source = m.pending.take();
                        m.deferred = false;
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
                            deferred: false,
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
                let r = self.shard.switch(TrackId(t as u32), sid(s), Nanos::ZERO);
                let Some(m) = self.model.get_mut(&t) else {
                    assert_eq!(r, Err(ControlError::UnknownTrack(TrackId(t as u32))));
                    return;
                };
                if !self.streams.contains_key(&s) {
                    assert_eq!(r, Err(ControlError::UnknownSource(sid(s))));
                    return;
                }
                m.deferred = false;
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
                    Some(m) => {
                        m.deferred = false;
                        assert_eq!(r, Ok(m.pending.take().is_some()))
                    }
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
            .accept(&buf, None, now)
            .expect("synthetic packets are valid")
            .expect("one stream per source: nothing is held");
        if pkt.is_switch_point() {
            for m in self.model.values_mut() {
                if m.pending != Some(pkt.source) {
                    continue;
                }
                let mid_frame = m
                    .source
                    .and_then(|old| self.open_frame.get(&old))
                    .is_some_and(|&(open, at)| open && self.now - at < MID_FRAME_WAIT.0);
                if mid_frame && !m.deferred {
                    m.deferred = true;
                } else {
                    m.source = m.pending.take();
                    m.deferred = false;
                }
            }
        }
        self.open_frame
            .insert(pkt.source, (!pkt.header.marker, self.now));
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

/// Found by the property above: a switch deferred once, then cancelled by its target's removal,
/// must not count as deferred for the next switch.
#[test]
fn a_new_switch_after_a_removed_target_may_wait_again() {
    let ops = [
        Op::AddSource(3),
        Op::AddTrack(6, 3),
        Op::AddSource(1),
        Op::Packet(3, false),
        Op::Switch(6, 1),
        Op::Packet(1, false),
        Op::RemoveSource(1),
        Op::AddSource(2),
        Op::Switch(6, 2),
        Op::Packet(2, false),
    ];
    let mut rig = Rig::new(Layout::Grouped);
    for op in &ops {
        rig.apply(op);
        rig.check();
    }
    assert_eq!(rig.shard.counters().switches_deferred, 2);
}

#[test]
fn codec_mismatch_is_refused() {
    let mut shard = Shard::default();
    shard.add_source(SourceId(1), Codec::Vp8).unwrap();
    shard.add_source(SourceId(2), Codec::H264).unwrap();
    shard.add_track(config(1), SourceId(1)).unwrap();
    assert_eq!(
        shard.switch(TrackId(1), SourceId(2), Nanos::ZERO),
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
    let pkt = ingress.accept(&buf, None, Nanos::ZERO).unwrap().unwrap();
    let mut batch = TransmitBatch::with_capacity(4);
    assert_eq!(shard.fan_out(&pkt, &buf, Nanos::ZERO).fill(&mut batch), 0);
    assert_eq!(shard.counters().drops.get(DropReason::UnknownSource), 1);
}

/// The packet `write` produces (a synthetic stream's next) from `ingress`'s source through
/// `shard`; returns the tracks that sent it.
fn packet_through(
    shard: &mut Shard,
    ingress: &mut SourceIngress,
    write: impl FnOnce(&mut Vec<u8>) -> crate::synth::SynthPacket,
    now: Nanos,
) -> Vec<TrackId> {
    let mut buf = Vec::new();
    write(&mut buf);
    let pkt = ingress.accept(&buf, None, now).unwrap().unwrap();
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
        packet_through(
            &mut shard,
            &mut ia,
            |b| sa.next_packet(b),
            Nanos::from_millis(i * 20),
        );
    }
    shard.add_track(config(1), a).unwrap();
    let sent = packet_through(
        &mut shard,
        &mut ia,
        |b| sa.next_packet(b),
        Nanos::from_millis(100),
    );
    assert_eq!(sent, vec![TrackId(1)], "no keyframe wait for audio");
    assert_eq!(
        shard.switch(TrackId(1), b, Nanos::ZERO),
        Ok(SwitchOutcome::Pending)
    );
    assert_eq!(
        packet_through(
            &mut shard,
            &mut ia,
            |b| sa.next_packet(b),
            Nanos::from_millis(120)
        ),
        vec![TrackId(1)]
    );
    assert_eq!(
        packet_through(
            &mut shard,
            &mut ib,
            |b| sb.next_packet(b),
            Nanos::from_millis(121)
        ),
        vec![TrackId(1)]
    );
    assert!(packet_through(
        &mut shard,
        &mut ia,
        |b| sa.next_packet(b),
        Nanos::from_millis(140)
    )
    .is_empty());
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
    let pkt = ingress.accept(&buf, None, Nanos::ZERO).unwrap().unwrap();
    let mut batch = TransmitBatch::with_capacity(8);
    let mut fan = shard.fan_out(&pkt, &buf, Nanos::ZERO);
    assert_eq!(fan.fill(&mut batch), 2);
    assert_eq!(fan.fill(&mut TransmitBatch::with_capacity(2)), 0);
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

/// A minimal H.264 sender: single-NAL packets, one frame per marker.
struct H264Sender {
    ingress: SourceIngress,
    ssrc: Ssrc,
    seq: u16,
    ts: u32,
}

impl H264Sender {
    const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x0b, 0xda];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c];
    const IDR: &[u8] = &[0x65, 0x88, 0x84];
    const P: &[u8] = &[0x41, 0x9a, 0x20];

    fn new(source: SourceId, ssrc: u32, seq: u16) -> H264Sender {
        H264Sender {
            ingress: SourceIngress::new(source, Codec::H264, 90_000),
            ssrc: Ssrc(ssrc),
            seq,
            ts: 0,
        }
    }

    /// The next packet, its prelude attached when ingress has one for it.
    fn packet(&mut self, nal: &[u8], now: Nanos) -> (RxPacket, Vec<u8>) {
        let marker = nal[0] & 0x1f != 7 && nal[0] & 0x1f != 8;
        let mut buf = Vec::new();
        let (seq, ts) = (SeqNo(self.seq), RtpTime(self.ts));
        crate::synth::write_rtp(&mut buf, self.ssrc, 102, seq, ts, marker, nal);
        self.seq = self.seq.wrapping_add(1);
        if marker {
            self.ts = self.ts.wrapping_add(3000);
        }
        let mut pkt = self.ingress.accept(&buf, None, now).unwrap().unwrap();
        if let Some(prelude) = self.ingress.prelude_for(&pkt) {
            pkt.attach_prelude(&mut buf, prelude);
        }
        (pkt, buf)
    }
}

/// Fan `nal` out from `sender` with a batch of `capacity`; returns each transmit's track,
/// whether it was a prelude, and the bytes sent, batch by batch.
fn h264_fan_out(
    shard: &mut Shard,
    sender: &mut H264Sender,
    nal: &[u8],
    now: Nanos,
    capacity: usize,
) -> Vec<Vec<(TrackId, bool, Vec<u8>)>> {
    let (pkt, buf) = sender.packet(nal, now);
    let mut batch = TransmitBatch::with_capacity(capacity);
    let mut fan = shard.fan_out(&pkt, &buf, now);
    let mut batches = Vec::new();
    while fan.fill(&mut batch) > 0 {
        batches.push(
            batch
                .as_slice()
                .iter()
                .map(|t| (t.track, t.prelude, t.to_vec(&pkt, &buf)))
                .collect(),
        );
        batch.clear();
    }
    batches
}

#[test]
fn tracks_starting_at_a_keyframe_without_parameter_sets_get_a_prelude_first() {
    use crate::rtp::RtpHeader;
    let (a, b) = (SourceId(1), SourceId(2));
    let mut shard = Shard::default();
    shard.add_source(a, Codec::H264).unwrap();
    shard.add_source(b, Codec::H264).unwrap();
    shard.add_track(config(1), a).unwrap();
    shard.add_track(config(2), b).unwrap();
    let (mut sa, mut sb) = (H264Sender::new(a, 10, 100), H264Sender::new(b, 20, 9000));
    let mut sent: HashMap<TrackId, Vec<Vec<u8>>> = HashMap::new();
    let mut preludes: HashMap<TrackId, u64> = HashMap::new();
    let mut run = |shard: &mut Shard, sender: &mut H264Sender, nal: &[u8], ms: u64| {
        let batches = h264_fan_out(shard, sender, nal, Nanos::from_millis(ms), 2);
        for (track, prelude, bytes) in batches.iter().flatten() {
            sent.entry(*track).or_default().push(bytes.clone());
            *preludes.entry(*track).or_default() += u64::from(*prelude);
        }
        batches
    };
    // Both sources send their sets once, then pictures; both tracks start on the sets.
    for (ms, nal) in [
        H264Sender::SPS,
        H264Sender::PPS,
        H264Sender::IDR,
        H264Sender::P,
    ]
    .into_iter()
    .enumerate()
    {
        run(&mut shard, &mut sa, nal, ms as u64);
        run(&mut shard, &mut sb, nal, ms as u64);
    }
    assert_eq!(
        shard.switch(TrackId(1), b, Nanos::ZERO),
        Ok(SwitchOutcome::Pending)
    );
    shard.add_track(config(3), b).unwrap();

    // B's next keyframe has no sets: the switching track 1 and the new track 3 get B's cached
    // sets first; track 2, live on B, does not. Batches of two never split a prelude from its
    // keyframe.
    let batches = run(&mut shard, &mut sb, H264Sender::IDR, 10);
    let shape: Vec<Vec<(TrackId, bool)>> = batches
        .iter()
        .map(|b| b.iter().map(|(t, p, _)| (*t, *p)).collect())
        .collect();
    let starts = |t| vec![(TrackId(t), true), (TrackId(t), false)];
    assert!(
        shape.contains(&starts(1)) && shape.contains(&starts(3)),
        "{shape:?}"
    );
    assert!(shape.concat().contains(&(TrackId(2), false)));
    assert_eq!(shape.concat().len(), 5);
    run(&mut shard, &mut sb, H264Sender::P, 11);

    for (track, sent_preludes) in [(1, 1), (2, 0), (3, 1)] {
        let out: Vec<RtpHeader> = sent[&TrackId(track)]
            .iter()
            .map(|p| RtpHeader::parse(p).unwrap())
            .collect();
        for pair in out.windows(2) {
            assert_eq!(
                pair[1].seq.0,
                pair[0].seq.0.wrapping_add(1),
                "track {track}: every output number used once, none skipped"
            );
        }
        assert_eq!(preludes[&TrackId(track)], sent_preludes, "track {track}");
    }
    let one = &sent[&TrackId(1)];
    let (prelude, idr) = (&one[one.len() - 3], &one[one.len() - 2]);
    let stap_a = [&[0x78, 0, 5][..], H264Sender::SPS, &[0, 3], H264Sender::PPS].concat();
    assert_eq!(prelude[12..], stap_a[..], "B's sets, as one STAP-A");
    assert_eq!(prelude[4..8], idr[4..8], "the keyframe's timestamp");
    assert_eq!(prelude[1], 96, "the track's payload type, no marker");
    assert_eq!(idr[12..], *H264Sender::IDR);
    assert_eq!(shard.source_counters(b).unwrap().preludes, 2);
}

#[test]
fn a_prelude_that_fails_to_send_is_uncounted_not_dropped() {
    let b = SourceId(2);
    let mut shard = Shard::default();
    shard.add_source(b, Codec::H264).unwrap();
    let mut sb = H264Sender::new(b, 20, 0);
    for nal in [H264Sender::SPS, H264Sender::PPS, H264Sender::IDR] {
        h264_fan_out(&mut shard, &mut sb, nal, Nanos::ZERO, 4);
    }
    shard.add_track(config(1), b).unwrap();
    let (pkt, buf) = sb.packet(H264Sender::IDR, Nanos::ZERO);
    let mut batch = TransmitBatch::with_capacity(4);
    assert_eq!(shard.fan_out(&pkt, &buf, Nanos::ZERO).fill(&mut batch), 2);
    let prelude = batch.as_slice()[0];
    assert!(prelude.prelude);
    shard.record_send_failure(&prelude, 15, DropReason::SendBufferFull);
    let t = shard.track(TrackId(1)).unwrap().counters;
    assert_eq!((t.packets, t.drops.total()), (1, 0));
    let s = shard.source_counters(b).unwrap();
    assert_eq!((s.forwarded, s.preludes, s.track_packets), (1, 0, 1));
}

#[test]
fn a_switch_waits_once_for_the_old_source_to_finish_its_frame() {
    let (a, b) = (SourceId(1), SourceId(2));
    let mut shard = Shard::default();
    shard.add_source(a, Codec::Vp8).unwrap();
    shard.add_source(b, Codec::Vp8).unwrap();
    let shape = VideoShape {
        gop: 3,
        packets_per_frame: 3,
        packets_per_keyframe: 3,
        ..VideoShape::default()
    };
    let (mut ia, mut ib) = (
        SourceIngress::new(a, Codec::Vp8, 90_000),
        SourceIngress::new(b, Codec::Vp8, 90_000),
    );
    let (mut sa, mut sb) = (
        Vp8Stream::new(Ssrc(1), 0, 0, shape),
        Vp8Stream::new(Ssrc(2), 0, 0, shape),
    );
    shard.add_track(config(1), a).unwrap();
    let ms = Nanos::from_millis;
    for i in 0..3 {
        packet_through(&mut shard, &mut ia, |b| sa.next_packet(b), ms(i));
    }
    assert!(shard.track(TrackId(1)).unwrap().live);
    assert_eq!(
        shard.switch(TrackId(1), b, Nanos::ZERO),
        Ok(SwitchOutcome::Pending)
    );

    // A is one packet into a frame when B's keyframe starts: the track finishes A's frame.
    packet_through(&mut shard, &mut ia, |b| sa.next_packet(b), ms(10));
    assert!(packet_through(&mut shard, &mut ib, |b| sb.next_packet(b), ms(11)).is_empty());
    assert_eq!(shard.counters().switches_deferred, 1);
    for i in 12..14 {
        assert_eq!(
            packet_through(&mut shard, &mut ia, |b| sa.next_packet(b), ms(i)),
            [TrackId(1)]
        );
    }
    // B's next keyframe switches it, mid-frame on A or not: it waits only once.
    for i in 14..22 {
        packet_through(&mut shard, &mut ib, |b| sb.next_packet(b), ms(i));
    }
    packet_through(&mut shard, &mut ia, |b| sa.next_packet(b), ms(22));
    assert_eq!(
        packet_through(&mut shard, &mut ib, |b| sb.next_packet(b), ms(23)),
        [TrackId(1)]
    );
    assert_eq!(shard.track(TrackId(1)).unwrap().source, Some(b));
    assert_eq!(
        (
            shard.counters().switches,
            shard.counters().switches_deferred
        ),
        (1, 1)
    );

    // Back to A while B is mid-frame but has been silent past MID_FRAME_WAIT: no waiting for a
    // frame that is not coming.
    let later = 23_000_000 + MID_FRAME_WAIT.0;
    assert_eq!(
        shard.switch(TrackId(1), a, Nanos::ZERO),
        Ok(SwitchOutcome::Pending)
    );
    sa.force_keyframe();
    // A was mid-frame itself; that does not matter, only the track's current source does.
    assert_eq!(
        packet_through(&mut shard, &mut ia, |b| sa.next_packet(b), Nanos(later)),
        [TrackId(1)]
    );
    assert_eq!(shard.counters().switches_deferred, 1);
}

/// Found by review: four packets, each stepping the RTP timestamp back by 0x7fffffff, drove the
/// splicer's last output timestamp below zero, and the next anchor overflowed `last_ts + step`
/// (a panic in debug builds). Timestamps are modular: nothing a sender does can overflow them.
#[test]
fn timestamps_stepping_back_by_half_the_range_never_overflow() {
    use crate::synth::OpusStream;
    let (a, b) = (SourceId(1), SourceId(2));
    let mut shard = Shard::default();
    shard.add_source(a, Codec::Opus).unwrap();
    shard.add_source(b, Codec::Opus).unwrap();
    shard.add_track(config(1), a).unwrap();
    let mut ia = SourceIngress::new(a, Codec::Opus, 48_000);
    let mut ib = SourceIngress::new(b, Codec::Opus, 48_000);
    let mut sa = OpusStream::new(Ssrc(1), 10, 0);
    let mut sb = OpusStream::new(Ssrc(2), 500, 0);
    let mut ts = 0u32;
    for i in 0..6u64 {
        let sent = packet_through(
            &mut shard,
            &mut ia,
            |buf| {
                let p = sa.next_packet(buf);
                buf[4..8].copy_from_slice(&ts.to_be_bytes());
                p
            },
            Nanos::from_millis(i * 20),
        );
        assert_eq!(sent, vec![TrackId(1)], "packet {i} forwarded");
        ts = ts.wrapping_sub(0x7fff_ffff);
    }
    // The next anchor: a switch to another source.
    shard.switch(TrackId(1), b, Nanos::ZERO).unwrap();
    let sent = packet_through(
        &mut shard,
        &mut ib,
        |buf| sb.next_packet(buf),
        Nanos::from_millis(200),
    );
    assert_eq!(sent, vec![TrackId(1)]);
}

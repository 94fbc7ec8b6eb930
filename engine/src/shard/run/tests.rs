//! A run's fan-out is the packet-by-packet fan-out in another order: under random control
//! operations and bursts of packets (keyframes, switches waiting, interleaved sources), two
//! shards, one fanning out each packet and one each burst as runs, send every track the same
//! bytes in the same order and count the same.

use std::collections::HashMap;

use proptest::prelude::*;

use super::super::tests::config;
use super::super::*;
use super::MAX_RUN;
use crate::source::SourceIngress;
use crate::synth::{VideoShape, Vp8Stream};

#[derive(Clone, Debug)]
enum Op {
    AddTrack(u8, u8),
    RemoveTrack(u8),
    Switch(u8, u8),
    /// Packets of source `.0`, `.1` of them, a keyframe forced at `.2` (if in range), and
    /// every `.3`th one from the other source (0: none).
    Burst(u8, u8, u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..10u8, 0..3u8).prop_map(|(t, s)| Op::AddTrack(t, s)),
        1 => (0..10u8).prop_map(Op::RemoveTrack),
        2 => (0..10u8, 0..3u8).prop_map(|(t, s)| Op::Switch(t, s)),
        5 => (0..3u8, 1..40u8, 0..50u8, 0..6u8).prop_map(|(s, n, k, o)| Op::Burst(s, n, k, o)),
    ]
}

/// The two shards and what each sent every track.
struct Pair {
    single: Shard,
    runs: Shard,
    sent_single: HashMap<u32, Vec<Vec<u8>>>,
    sent_runs: HashMap<u32, Vec<Vec<u8>>>,
    streams: Vec<(SourceIngress, Vp8Stream)>,
    now: u64,
    batch: TransmitBatch,
}

impl Pair {
    fn new() -> Pair {
        let mut pair = Pair {
            single: Shard::new(Layout::Grouped),
            runs: Shard::new(Layout::Grouped),
            sent_single: HashMap::new(),
            sent_runs: HashMap::new(),
            streams: Vec::new(),
            now: 1_000_000_000,
            batch: TransmitBatch::with_capacity(MAX_RUN),
        };
        for s in 0..3u8 {
            let shape = VideoShape {
                gop: 6,
                packets_per_frame: 3,
                packets_per_keyframe: 7,
                ..VideoShape::default()
            };
            pair.streams.push((
                SourceIngress::new(SourceId(s as u32), Codec::Vp8, 90_000),
                Vp8Stream::new(Ssrc(s as u32), 300 * s as u16, 0, shape),
            ));
            for shard in [&mut pair.single, &mut pair.runs] {
                shard.add_source(SourceId(s as u32), Codec::Vp8).unwrap();
            }
        }
        pair
    }

    fn both<T: PartialEq + std::fmt::Debug>(&mut self, f: impl Fn(&mut Shard) -> T) -> T {
        let a = f(&mut self.single);
        let b = f(&mut self.runs);
        assert_eq!(a, b, "both shards answer alike");
        a
    }

    fn apply(&mut self, op: &Op) {
        let now = Nanos(self.now);
        match *op {
            Op::AddTrack(t, s) => {
                if self
                    .both(|sh| sh.add_track(config(t), SourceId(s as u32)))
                    .is_ok()
                {
                    self.both(|sh| sh.set_repair(TrackId(t as u32), true))
                        .unwrap();
                }
            }
            Op::RemoveTrack(t) => {
                self.both(|sh| sh.remove_track(TrackId(t as u32)).map(|_| ()))
                    .ok();
            }
            Op::Switch(t, s) => {
                self.both(|sh| sh.switch(TrackId(t as u32), SourceId(s as u32), now))
                    .ok();
            }
            Op::Burst(s, n, key_at, other_every) => self.burst(s, n, key_at, other_every),
        }
        while let Some(e) = self.single.poll_event() {
            assert_eq!(Some(e), self.runs.poll_event());
        }
        assert_eq!(self.runs.poll_event(), None);
    }

    fn burst(&mut self, s: u8, n: u8, key_at: u8, other_every: u8) {
        let mut pkts = Vec::new();
        let mut bufs = Vec::new();
        for i in 0..n {
            let from = if other_every > 0 && i % other_every == other_every - 1 {
                (s + 1) % 3
            } else {
                s
            };
            let (ingress, stream) = &mut self.streams[from as usize];
            if i == key_at {
                stream.force_keyframe();
            }
            let mut buf = Vec::new();
            stream.next_packet(&mut buf);
            let pkt = ingress
                .accept(&buf, None, Nanos(self.now))
                .expect("synthetic packets are valid")
                .expect("nothing is held");
            pkts.push(pkt);
            bufs.push(buf);
        }
        let now = Nanos(self.now);
        self.now += 5_000_000;
        for (pkt, buf) in pkts.iter().zip(&bufs) {
            let mut fan = self.single.fan_out(pkt, buf, now);
            while fan.fill(&mut self.batch) > 0 {
                for t in self.batch.as_slice() {
                    let out = t.to_vec(pkt, buf);
                    self.sent_single.entry(t.track.0).or_default().push(out);
                }
                self.batch.clear();
            }
        }
        let slices: Vec<&[u8]> = bufs.iter().map(Vec::as_slice).collect();
        let mut at = 0;
        while at < pkts.len() {
            let end = pkts.len().min(at + MAX_RUN);
            let mut fan = self.runs.fan_out_run(&pkts[at..end], &slices[at..end], now);
            let taken = fan.len();
            assert!(taken >= 1 && at + taken <= end);
            let indexed = fan.indexed();
            while fan.fill(&mut self.batch) > 0 {
                for t in self.batch.as_slice() {
                    let i = at + if indexed { t.run_index as usize } else { 0 };
                    let out = t.to_vec(&pkts[i], &bufs[i]);
                    self.sent_runs.entry(t.track.0).or_default().push(out);
                }
                self.batch.clear();
            }
            at += taken;
        }
    }

    fn check(&self) {
        assert_eq!(self.sent_single, self.sent_runs, "every track got the same");
        assert_eq!(self.single.counters(), self.runs.counters());
        for s in 0..3 {
            assert_eq!(
                self.single.source_counters(SourceId(s)),
                self.runs.source_counters(SourceId(s))
            );
        }
        for t in 0..10 {
            let id = TrackId(t);
            assert_eq!(self.single.track(id), self.runs.track(id), "track {t}");
            assert_eq!(self.single.track_repair(id), self.runs.track_repair(id));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn runs_send_and_count_what_packets_one_by_one_do(ops in proptest::collection::vec(op(), 1..60)) {
        let mut pair = Pair::new();
        for op in &ops {
            pair.apply(op);
            pair.check();
        }
    }
}

#[test]
fn a_burst_of_one_source_is_one_run_and_each_tracks_copies_are_side_by_side() {
    let mut pair = Pair::new();
    for t in 0..3 {
        pair.apply(&Op::AddTrack(t, 0));
    }
    // A keyframe first, so the tracks are live; then 20 more packets, no keyframe among them.
    pair.apply(&Op::Burst(0, 1, 0, 0));
    let mut pkts = Vec::new();
    let mut bufs = Vec::new();
    for _ in 0..20 {
        let (ingress, stream) = &mut pair.streams[0];
        let mut buf = Vec::new();
        stream.next_packet(&mut buf);
        pkts.push(
            ingress
                .accept(&buf, None, Nanos(pair.now))
                .unwrap()
                .unwrap(),
        );
        bufs.push(buf);
    }
    let slices: Vec<&[u8]> = bufs.iter().map(Vec::as_slice).collect();
    let mut fan = pair.runs.fan_out_run(&pkts, &slices, Nanos(pair.now));
    assert_eq!(fan.len(), 20);
    assert!(fan.indexed());
    let mut order = Vec::new();
    while fan.fill(&mut pair.batch) > 0 {
        order.extend(
            pair.batch
                .as_slice()
                .iter()
                .map(|t| (t.track.0, t.run_index)),
        );
        pair.batch.clear();
    }
    let want: Vec<(u32, u8)> = (0..3u32)
        .flat_map(|t| (0..20u8).map(move |i| (t, i)))
        .collect();
    assert_eq!(order, want);
}

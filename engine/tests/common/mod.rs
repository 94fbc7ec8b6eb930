//! A virtual-time world for engine tests: synthetic VP8 sources behind a seeded impaired network
//! (loss, duplication, reordering), one shard, and an oracle that derives from the arrival log
//! what every track must have sent, then compares it with what the track did send.
#![allow(dead_code)]

pub mod counting_alloc;
pub mod fixtures;

use std::collections::{BTreeMap, HashMap, VecDeque};

use corecast_engine::rtp::RtpHeader;
use corecast_engine::synth::{VideoShape, Vp8Stream};
use corecast_engine::{
    Codec, DropReason, Layout, Nanos, RtpTime, SeqNo, Shard, SourceId, SourceIngress, Ssrc,
    SwitchOutcome, TrackConfig, TrackId, TransmitBatch,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Network impairment, as probabilities per packet.
#[derive(Clone, Copy, Debug, Default)]
pub struct Impairment {
    pub loss: f64,
    pub duplicate: f64,
    /// Probability a packet is held back and delivered after up to `max_delay` later packets.
    pub reorder: f64,
    pub max_delay: usize,
}

/// One accepted packet, in arrival order.
#[derive(Clone, Copy, Debug)]
pub struct Arrival {
    pub source: SourceId,
    pub epoch: u32,
    pub seq: u64,
    pub switch_point: bool,
}

/// One packet a track sent.
#[derive(Clone, Debug)]
pub struct Sent {
    pub arrival: usize,
    pub source: SourceId,
    pub epoch: u32,
    pub in_seq: u64,
    pub switch_point: bool,
    pub bytes: Vec<u8>,
}

/// What else may arrive on a source's port (see [`World::interfere`]).
#[derive(Clone, Copy, Debug)]
pub enum Other {
    Multiplexed,
    Stray,
    Retransmission,
}

pub struct SimSource {
    pub id: SourceId,
    pub ingress: SourceIngress,
    pub stream: Vp8Stream,
    /// A second stream on the same port (FEC-like: own SSRC, same payload type).
    pub multiplexed: Vp8Stream,
    /// The stream before the last restart or failover, to fail back to.
    pub previous: Option<Vp8Stream>,
    held: VecDeque<(usize, Vec<u8>)>,
    ssrc_counter: u32,
}

pub struct World {
    pub shard: Shard,
    pub sources: Vec<SimSource>,
    pub now: Nanos,
    pub rng: StdRng,
    pub net: Impairment,
    pub arrivals: Vec<Arrival>,
    pub sent: HashMap<TrackId, Vec<Sent>>,
    /// Per track: (arrival index from which it holds, source it is attached to).
    pub attached: HashMap<TrackId, Vec<(usize, Option<SourceId>)>>,
    pub first_seq: HashMap<TrackId, u16>,
    batch: TransmitBatch,
}

pub const FRAME_MS: u64 = 33;

impl World {
    pub fn new(seed: u64, sources: usize, net: Impairment, layout: Layout) -> World {
        let mut shard = Shard::new(layout);
        let mut list = Vec::new();
        for i in 0..sources {
            let id = SourceId(i as u32 + 1);
            shard.add_source(id, Codec::Vp8).unwrap();
            let shape = VideoShape {
                gop: 6,
                packets_per_frame: 3,
                packets_per_keyframe: 5,
                payload_len: 200,
                fps: 30,
            };
            let first = (seed as u16)
                .wrapping_mul(7919)
                .wrapping_add(i as u16 * 20_000);
            list.push(SimSource {
                id,
                ingress: SourceIngress::new(id, Codec::Vp8, 90_000),
                stream: Vp8Stream::new(Ssrc(0xa000 + i as u32), first, u32::MAX - 40_000, shape),
                multiplexed: Vp8Stream::new(Ssrc(0xf000 + i as u32), first ^ 0x5555, 7, shape),
                held: VecDeque::new(),
                ssrc_counter: 0,
                previous: None,
            });
        }
        World {
            shard,
            sources: list,
            now: Nanos::from_millis(1_000),
            rng: StdRng::seed_from_u64(seed),
            net,
            arrivals: Vec::new(),
            sent: HashMap::new(),
            attached: HashMap::new(),
            first_seq: HashMap::new(),
            batch: TransmitBatch::with_capacity(7),
        }
    }

    pub fn source_id(&self, i: usize) -> SourceId {
        self.sources[i].id
    }

    pub fn add_track(&mut self, t: u32, source: usize) -> TrackId {
        let id = TrackId(t);
        let first_seq = (t as u16).wrapping_mul(40_503);
        let config = TrackConfig {
            id,
            dest: format!("127.0.0.1:{}", 10_000 + t).parse().unwrap(),
            ssrc: Ssrc(0x5000_0000 + t),
            payload_type: 98,
            first_seq: SeqNo(first_seq),
            first_ts: RtpTime(t.wrapping_mul(2_654_435_761)),
        };
        let src = self.source_id(source);
        self.shard.add_track(config, src).unwrap();
        self.first_seq.insert(id, first_seq);
        self.note_attachment(id, self.arrivals.len());
        id
    }

    pub fn switch(&mut self, track: TrackId, source: usize) -> SwitchOutcome {
        let out = self
            .shard
            .switch(track, self.source_id(source), self.now)
            .unwrap();
        self.note_attachment(track, self.arrivals.len());
        out
    }

    /// Record where `track` is attached from arrival `from` on.
    fn note_attachment(&mut self, track: TrackId, from: usize) {
        let now = self.shard.track(track).and_then(|t| t.source);
        let log = self.attached.entry(track).or_default();
        if log.last().map(|&(_, s)| s) != Some(now) {
            log.push((from, now));
        }
    }

    /// The source restarts: new SSRC and sequence numbers, starting with a keyframe.
    pub fn restart(&mut self, source: usize) {
        let s = &mut self.sources[source];
        s.ssrc_counter += 1;
        s.held.clear();
        let shape = s.stream.shape;
        let first = s.stream.next_seq().0.wrapping_add(30_000);
        // A new SSRC each time (as a restarted encoder picks one at random), never one used
        // before: reusing one with overlapping numbers would be indistinguishable from the
        // old stream going on.
        let ssrc = Ssrc(0xa000 + s.id.0 - 1 + 0x100 * s.ssrc_counter);
        let restarted = Vp8Stream::new(ssrc, first, 12_345, shape);
        s.previous = Some(std::mem::replace(&mut s.stream, restarted));
    }

    /// Failover: the source's sender before the last restart (or failover) takes over again,
    /// continuing its own numbering where it stopped, as a primary encoder does after an outage.
    pub fn fail_back(&mut self, source: usize) {
        let s = &mut self.sources[source];
        if let Some(previous) = s.previous.take() {
            s.held.clear();
            s.previous = Some(std::mem::replace(&mut s.stream, previous));
        }
    }

    /// One packet from `source` through the impaired network, and everything that arrives
    /// because of it through ingress and the shard.
    pub fn send(&mut self, source: usize) {
        self.now = self.now.saturating_add(Nanos::from_millis(FRAME_MS / 3));
        let mut buf = Vec::new();
        let s = &mut self.sources[source];
        s.stream.next_packet(&mut buf);
        let mut deliver = Vec::new();
        if !self.rng.random_bool(self.net.loss) {
            if self.rng.random_bool(self.net.reorder) && self.net.max_delay > 0 {
                let after = self.rng.random_range(1..=self.net.max_delay);
                s.held.push_back((after, buf.clone()));
            } else {
                deliver.push(buf.clone());
            }
            if self.rng.random_bool(self.net.duplicate) {
                deliver.push(buf);
            }
        }
        // Held packets count down with each packet sent and are released when due.
        let mut i = 0;
        while i < s.held.len() {
            s.held[i].0 -= 1;
            if s.held[i].0 == 0 {
                deliver.push(s.held.remove(i).unwrap().1);
            } else {
                i += 1;
            }
        }
        for bytes in deliver {
            self.arrive(source, &bytes);
        }
    }

    /// Something other than the source's stream arrives on its port, unimpaired: a packet of a
    /// second stream multiplexed with the first (`Other::Multiplexed`, its own SSRC and
    /// numbering, same payload type), a stray datagram with a random SSRC, or a retransmission
    /// with another payload type.
    pub fn interfere(&mut self, source: usize, kind: Other) {
        self.now = self.now.saturating_add(Nanos::from_millis(1));
        let s = &mut self.sources[source];
        let mut buf = Vec::new();
        match kind {
            Other::Multiplexed => {
                s.multiplexed.next_packet(&mut buf);
            }
            Other::Stray => {
                let mut stray = Vp8Stream::new(
                    Ssrc(self.rng.random()),
                    self.rng.random(),
                    self.rng.random(),
                    s.stream.shape,
                );
                stray.next_packet(&mut buf);
            }
            Other::Retransmission => {
                s.multiplexed.next_packet(&mut buf);
                buf[1] = (buf[1] & 0x80) | 97;
            }
        }
        self.arrive(source, &buf);
    }

    /// Time passes with nothing sent.
    pub fn pause(&mut self, ms: u64) {
        self.now = self.now.saturating_add(Nanos::from_millis(ms));
    }

    fn arrive(&mut self, source: usize, bytes: &[u8]) {
        // What comes out of ingress: this packet, nothing (dropped, or held on probation), or
        // the packets a new stream held until it was taken.
        let mut delivered = Vec::new();
        let _ = self.sources[source]
            .ingress
            .ingest(bytes, None, self.now, |pkt, bytes, _| {
                delivered.push((*pkt, bytes.to_vec()))
            });
        for (pkt, bytes) in delivered {
            self.forward(&pkt, &bytes);
        }
    }

    fn forward(&mut self, pkt: &corecast_engine::RxPacket, bytes: &[u8]) {
        let arrival = self.arrivals.len();
        self.arrivals.push(Arrival {
            source: pkt.source,
            epoch: pkt.epoch,
            seq: pkt.seq.0,
            switch_point: pkt.is_switch_point(),
        });
        let mut fan = self.shard.fan_out(pkt, bytes, self.now);
        while fan.fill(&mut self.batch) > 0 {
            for t in self.batch.as_slice() {
                self.sent.entry(t.track).or_default().push(Sent {
                    arrival,
                    source: pkt.source,
                    epoch: pkt.epoch,
                    in_seq: pkt.seq.0,
                    switch_point: pkt.is_switch_point(),
                    bytes: t.to_vec(pkt, bytes),
                });
            }
            self.batch.clear();
        }
        let tracks: Vec<TrackId> = self.attached.keys().copied().collect();
        // A pending switch applied by this arrival holds from this arrival on.
        for t in tracks {
            self.note_attachment(t, arrival);
        }
    }

    /// Check every track against the oracle and every counter against conservation.
    pub fn verify(&self) {
        for (&track, log) in &self.attached {
            let sent = self.sent.get(&track).map(Vec::as_slice).unwrap_or(&[]);
            verify_track(track, sent, log, &self.arrivals, self.first_seq[&track]);
        }
        for s in &self.sources {
            let c = s.ingress.counters();
            assert_eq!(
                c.packets,
                c.accepted + c.drops.total() + c.held,
                "{} ingress conserves",
                s.id
            );
            let sc = self.shard.source_counters(s.id).unwrap();
            assert_eq!(
                sc.packets, c.accepted,
                "{}: the shard saw every accepted packet",
                s.id
            );
            assert_eq!(
                sc.track_packets,
                sc.forwarded + sc.drops.total(),
                "{} conserves",
                s.id
            );
        }
    }

    pub fn drops(&self, reason: DropReason) -> u64 {
        self.sources
            .iter()
            .map(|s| {
                s.ingress.counters().drops.get(reason)
                    + self.shard.source_counters(s.id).unwrap().drops.get(reason)
            })
            .sum()
    }
}

/// Unwrap 16-bit values in order of appearance into 64-bit ones.
fn unwrap16(prev: Option<u64>, v: u16) -> u64 {
    match prev {
        None => (1 << 20) + v as u64,
        Some(p) => (p as i64 + (v.wrapping_sub(p as u16) as i16) as i64) as u64,
    }
}

fn verify_track(
    track: TrackId,
    sent: &[Sent],
    attached: &[(usize, Option<SourceId>)],
    arrivals: &[Arrival],
    first_seq: u16,
) {
    // Output sequence numbers, extended, in the order sent.
    let mut out_seq = Vec::with_capacity(sent.len());
    let mut prev = None;
    let mut ssrc = None;
    for s in sent {
        let h = RtpHeader::parse(&s.bytes).expect("output is valid RTP");
        assert_eq!(*ssrc.get_or_insert(h.ssrc), h.ssrc, "{track}: one SSRC");
        let v = unwrap16(prev, h.seq.0);
        prev = Some(v);
        out_seq.push((v, h.timestamp.0));
    }
    // No output sequence number twice.
    let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
    for &(v, ts) in &out_seq {
        assert!(
            seen.insert(v, ts).is_none(),
            "{track}: output seq {v} sent twice"
        );
    }
    // Timestamps never go backwards in sequence order.
    let mut last_ts: Option<u64> = None;
    for (_, &ts) in seen.iter() {
        let t = unwrap16_32(last_ts, ts);
        if let Some(l) = last_ts {
            assert!(t >= l, "{track}: timestamp goes back from {l} to {t}");
        }
        last_ts = Some(t);
    }
    // The oracle: replay the arrival log against the track's attachment timeline and derive
    // which arrivals it must send and with which sequence number.
    let mut expected: Vec<(usize, u16)> = Vec::new();
    let mut live: Option<(SourceId, u32, u64, u64)> = None; // source, epoch, first seq, offset
    let mut next_out: u64 = (1 << 20) + first_seq as u64;
    for (i, a) in arrivals.iter().enumerate() {
        let on = attached
            .iter()
            .take_while(|&&(at, _)| at <= i)
            .last()
            .and_then(|&(_, s)| s);
        if live.is_some_and(|(src, ..)| Some(src) != on) {
            live = None;
        }
        if on != Some(a.source) {
            continue;
        }
        let out = match live {
            Some((src, epoch, first, offset)) if (src, epoch) == (a.source, a.epoch) => {
                if a.seq < first {
                    continue;
                }
                a.seq.wrapping_add(offset)
            }
            _ if a.switch_point => {
                let offset = next_out.wrapping_sub(a.seq);
                live = Some((a.source, a.epoch, a.seq, offset));
                next_out
            }
            _ => continue,
        };
        next_out = next_out.max(out + 1);
        expected.push((i, out as u16));
    }
    let got: Vec<(usize, u16)> = sent
        .iter()
        .zip(&out_seq)
        .map(|(s, &(v, _))| (s.arrival, v as u16))
        .collect();
    assert_eq!(
        got, expected,
        "{track}: sent packets differ from the oracle"
    );
    for (s, e) in sent.iter().zip(&expected) {
        assert_eq!(arrivals[s.arrival].seq, s.in_seq);
        debug_assert_eq!(s.arrival, e.0);
    }
}

fn unwrap16_32(prev: Option<u64>, v: u32) -> u64 {
    match prev {
        None => (1 << 40) + v as u64,
        Some(p) => (p as i64 + (v.wrapping_sub(p as u32) as i32) as i64) as u64,
    }
}

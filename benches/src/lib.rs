//! Shared set-up for the Criterion benchmarks in `benches/`: a shard with N tracks over S
//! sources, and a ring of prepared packets whose sequence numbers and timestamps are advanced in
//! place, so the measured loop costs what the run loop costs and nothing else.

use corecast_engine::synth::{VideoShape, Vp8Stream};
use corecast_engine::{
    Codec, Layout, Nanos, RtpTime, SeqNo, Shard, SourceId, SourceIngress, Ssrc, TrackConfig,
    TrackId, TransmitBatch,
};

/// Packets per ring: several GOPs, so keyframes and switch points occur at their real rate.
const RING: usize = 256;

/// One source's prepared packets and ingress.
pub struct BenchSource {
    pub ingress: SourceIngress,
    ring: Vec<Vec<u8>>,
    /// How far sequence numbers and timestamps have advanced past the ring's originals.
    cycle: u32,
    next: usize,
    ts_span: u32,
}

impl BenchSource {
    pub fn new(id: SourceId) -> BenchSource {
        let shape = VideoShape {
            gop: 60,
            ..VideoShape::default()
        };
        let mut stream = Vp8Stream::new(Ssrc(0x1000 + id.0), (id.0 * 1000) as u16, 0, shape);
        let ring: Vec<Vec<u8>> = (0..RING)
            .map(|_| {
                let mut b = Vec::with_capacity(1500);
                stream.next_packet(&mut b);
                b
            })
            .collect();
        let mut last = Vec::new();
        stream.next_packet(&mut last);
        let ts_span = u32::from_be_bytes([last[4], last[5], last[6], last[7]]);
        BenchSource {
            ingress: SourceIngress::new(id, Codec::Vp8, 90_000),
            ring,
            cycle: 0,
            next: 0,
            ts_span,
        }
    }

    /// Index in the ring of the next packet, advanced so the stream never repeats a sequence
    /// number.
    fn advance(&mut self) -> usize {
        if self.next == RING {
            self.next = 0;
            self.cycle += 1;
            for b in &mut self.ring {
                let seq = u16::from_be_bytes([b[2], b[3]]).wrapping_add(RING as u16);
                b[2..4].copy_from_slice(&seq.to_be_bytes());
                let ts = u32::from_be_bytes([b[4], b[5], b[6], b[7]]).wrapping_add(self.ts_span);
                b[4..8].copy_from_slice(&ts.to_be_bytes());
            }
        }
        self.next += 1;
        self.next - 1
    }
}

/// A shard with `tracks` tracks spread round-robin over `sources` sources, and those sources.
pub fn setup(tracks: u32, sources: u32, layout: Layout) -> (Shard, Vec<BenchSource>) {
    let mut shard = Shard::new(layout);
    let list: Vec<BenchSource> = (1..=sources)
        .map(|s| BenchSource::new(SourceId(s)))
        .collect();
    for s in &list {
        shard.add_source(s.ingress.id(), Codec::Vp8).unwrap();
    }
    shard.reserve(tracks as usize);
    for t in 0..tracks {
        let port = 1024 + (t % 60_000) as u16;
        let config = TrackConfig {
            id: TrackId(t),
            dest: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            ssrc: Ssrc(0x8000_0000 | t),
            payload_type: 96,
            first_seq: SeqNo(t as u16),
            first_ts: RtpTime(t.wrapping_mul(7919)),
        };
        shard.add_track(config, SourceId(1 + t % sources)).unwrap();
    }
    (shard, list)
}

/// Ingress and fan-out of one packet from `source`, batches cleared as a sender would.
/// Returns the number of transmits produced.
#[inline]
pub fn forward_one(
    shard: &mut Shard,
    source: &mut BenchSource,
    batch: &mut TransmitBatch,
    now: Nanos,
) -> usize {
    let i = source.advance();
    let buf = &source.ring[i];
    // One stream per source: nothing is ever held, so the two-step API is enough.
    let Ok(Some(pkt)) = source.ingress.accept(buf, None, now) else {
        return 0;
    };
    let mut fan = shard.fan_out(&pkt, buf, now);
    let mut sent = 0;
    loop {
        let n = fan.fill(batch);
        if n == 0 {
            return sent;
        }
        sent += n;
        std::hint::black_box(batch.as_slice());
        batch.clear();
    }
}

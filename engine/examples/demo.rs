//! A look at the engine working, before the node exists: synthetic VP8 sources with seeded loss
//! and reordering feed two shards of subscribers over virtual time; subscribers switch between
//! sources every two seconds. Prints a line per virtual second and, at the end, the accounting
//! that every packet was forwarded or dropped with a reason.
//!
//! cargo run --release -p corecast-engine --example demo [-- SUBSCRIBERS SECONDS]

use std::time::Instant;

use corecast_engine::synth::{VideoShape, Vp8Stream};
use corecast_engine::{
    Codec, DropCounts, Nanos, RtpTime, SeqNo, Shard, SourceId, SourceIngress, Ssrc, TrackConfig,
    TrackId, TransmitBatch,
};

const SOURCES: u32 = 3;
const SHARDS: usize = 2;
/// Packets per second per source: 30 fps, about 3.5 packets a frame.
const FPS: u64 = 30;

/// A small deterministic generator for the impairments; the demo needs no crate for it.
struct Lcg(u64);

impl Lcg {
    fn chance(&mut self, per_mille: u64) -> bool {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % 1000 < per_mille
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let subscribers: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);

    let mut shards: Vec<Shard> = (0..SHARDS).map(|_| Shard::default()).collect();
    let mut sources: Vec<(SourceIngress, Vp8Stream)> = (1..=SOURCES)
        .map(|s| {
            let shape = VideoShape {
                fps: FPS as u32,
                gop: 60,
                ..VideoShape::default()
            };
            (
                SourceIngress::new(SourceId(s), Codec::Vp8, 90_000),
                Vp8Stream::new(Ssrc(0xc0de_0000 + s), (s * 9_000) as u16, s * 1_000, shape),
            )
        })
        .collect();
    for shard in &mut shards {
        for s in 1..=SOURCES {
            shard.add_source(SourceId(s), Codec::Vp8).unwrap();
        }
    }
    for t in 0..subscribers {
        let config = TrackConfig {
            id: TrackId(t),
            dest: std::net::SocketAddr::from(([127, 0, 0, 1], 20_000 + (t % 40_000) as u16)),
            ssrc: Ssrc(0x5ab0_0000 + t),
            payload_type: 96,
            first_seq: SeqNo(t as u16),
            first_ts: RtpTime(t.wrapping_mul(2_654_435_761)),
        };
        let shard = &mut shards[t as usize % SHARDS];
        shard.add_track(config, SourceId(1 + t % SOURCES)).unwrap();
    }

    println!(
        "corecast engine demo: {SOURCES} VP8 sources (1% loss, 1% reordered, 0.5% duplicated), \
         {subscribers} subscribers on {SHARDS} shards, switching every 2 s, {seconds} s of virtual time\n"
    );
    println!(
        "per virtual second: packets in, dropped at ingress, copies sent, subscribers switched,"
    );
    println!("and (in total so far) copies not sent because a subscriber waited for a keyframe or a packet was stale:\n");
    println!(
        "{:>4} {:>10} {:>9} {:>12} {:>10} {:>10} {:>10}",
        "sec", "pkts in", "dropped", "copies out", "switched", "wait-kf", "stale"
    );

    let mut rng = Lcg(42);
    let mut batch = TransmitBatch::with_capacity(64);
    let mut held: Vec<Option<Vec<u8>>> = vec![None; SOURCES as usize];
    let mut transmits = 0u64;
    let started = Instant::now();
    let packets_per_tick = 4u64;
    let tick = Nanos(1_000_000_000 / (FPS * packets_per_tick));
    let mut now = Nanos::ZERO;
    let mut last_line = (0u64, 0u64, 0u64, 0u64);
    for second in 1..=seconds {
        for _ in 0..FPS * packets_per_tick {
            now = now.saturating_add(tick);
            for (i, (ingress, stream)) in sources.iter_mut().enumerate() {
                let mut buf = Vec::with_capacity(1200);
                stream.next_packet(&mut buf);
                let mut arrivals: Vec<Vec<u8>> = Vec::new();
                if rng.chance(10) {
                    continue; // lost
                }
                if rng.chance(10) {
                    arrivals.extend(held[i].replace(buf));
                } else {
                    if rng.chance(5) {
                        arrivals.push(buf.clone());
                    }
                    arrivals.push(buf);
                    arrivals.extend(held[i].take());
                }
                for bytes in arrivals {
                    // Every packet that comes out of the datagram (a dropped one: none).
                    let _ = ingress.ingest(&bytes, None, now, |pkt, bytes, _prelude| {
                        for shard in &mut shards {
                            let mut fan_out = shard.fan_out(pkt, bytes, now);
                            loop {
                                let n = fan_out.fill(&mut batch);
                                if n == 0 {
                                    break;
                                }
                                transmits += n as u64;
                                batch.clear();
                            }
                        }
                    });
                }
            }
        }
        if second % 2 == 0 {
            for t in 0..subscribers {
                let to = SourceId(1 + (t + second as u32 / 2) % SOURCES);
                shards[t as usize % SHARDS]
                    .switch(TrackId(t), to, now)
                    .unwrap();
            }
        }
        let (packets_in, dropped_in) = sources.iter().fold((0, 0), |(p, d), (ing, _)| {
            (p + ing.counters().packets, d + ing.counters().drops.total())
        });
        let switches: u64 = shards.iter().map(|s| s.counters().switches).sum();
        let track_drops = track_drops(&shards);
        println!(
            "{second:>4} {:>10} {:>9} {:>12} {:>10} {:>10} {:>10}",
            packets_in - last_line.0,
            dropped_in - last_line.1,
            transmits - last_line.2,
            switches - last_line.3,
            track_drops.get(corecast_engine::DropReason::WaitingKeyframe),
            track_drops.get(corecast_engine::DropReason::StaleAfterSwitch),
        );
        last_line = (packets_in, dropped_in, transmits, switches);
    }
    let elapsed = started.elapsed();

    println!("\naccounting per source (ingress: in = accepted + dropped + held; shards: copies = forwarded + dropped):");
    for (ingress, _) in &sources {
        let c = ingress.counters();
        let reasons: Vec<String> = c
            .drops
            .iter()
            .map(|(r, n)| format!("{}={n}", r.name()))
            .collect();
        println!(
            "  {}: in {} = accepted {} + dropped {} [{}] + held {}; restarts {}, keyframes {}",
            ingress.id(),
            c.packets,
            c.accepted,
            c.drops.total(),
            reasons.join(" "),
            c.held,
            c.restarts,
            c.keyframes
        );
        assert_eq!(c.packets, c.accepted + c.drops.total() + c.held);
        for (i, shard) in shards.iter().enumerate() {
            let s = shard.source_counters(ingress.id()).unwrap();
            println!(
                "    shard {i}: copies {} = forwarded {} + dropped {}",
                s.track_packets,
                s.forwarded,
                s.drops.total()
            );
            assert_eq!(s.track_packets, s.forwarded + s.drops.total());
        }
    }
    println!(
        "\n{transmits} copies spliced in {:.3} s on one thread: {:.1} ns per copy (ingress, fan-out and splicing, no sockets)",
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / transmits.max(1) as f64
    );
}

fn track_drops(shards: &[Shard]) -> DropCounts {
    let mut all = DropCounts::default();
    for shard in shards {
        for s in 1..=SOURCES {
            if let Some(c) = shard.source_counters(SourceId(s)) {
                all.merge(&c.drops);
            }
        }
    }
    all
}

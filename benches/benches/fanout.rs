//! Cost of forwarding one packet (ingress + fan-out + splice, batches of 64) against the number of
//! tracks on its source, and with ten sources in the grouped and the scan layout.

use corecast_benches::{forward_one, setup};
use corecast_engine::{Layout, Nanos, TransmitBatch};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;

fn one_source(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout/one_source");
    for tracks in [1u32, 100, 1_000, 10_000] {
        let (mut shard, mut sources) = setup(tracks, 1, Layout::Grouped);
        let mut batch = TransmitBatch::with_capacity(64);
        let mut now = 0u64;
        // Warm up past the first keyframe so every track is live.
        for _ in 0..300 {
            now += 1_000_000;
            forward_one(&mut shard, &mut sources[0], &mut batch, Nanos(now));
        }
        // Elements = transmits, so Criterion's throughput reads as per-subscriber cost.
        group.throughput(Throughput::Elements(tracks as u64));
        group.bench_with_input(BenchmarkId::from_parameter(tracks), &tracks, |b, _| {
            b.iter(|| {
                now += 1_000;
                black_box(forward_one(
                    &mut shard,
                    &mut sources[0],
                    &mut batch,
                    Nanos(now),
                ))
            })
        });
    }
    group.finish();
}

fn ten_sources(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout/ten_sources");
    for tracks in [1_000u32, 10_000] {
        for layout in [Layout::Grouped, Layout::Scan] {
            let (mut shard, mut sources) = setup(tracks, 10, layout);
            let mut batch = TransmitBatch::with_capacity(64);
            let mut now = 0u64;
            for i in 0..3000 {
                now += 100_000;
                forward_one(&mut shard, &mut sources[i % 10], &mut batch, Nanos(now));
            }
            // Per packet, a tenth of the tracks are on its source.
            group.throughput(Throughput::Elements(tracks as u64 / 10));
            let id = BenchmarkId::new(format!("{layout:?}"), tracks);
            let mut i = 0;
            group.bench_function(id, |b| {
                b.iter(|| {
                    i = (i + 1) % 10;
                    now += 1_000;
                    black_box(forward_one(
                        &mut shard,
                        &mut sources[i],
                        &mut batch,
                        Nanos(now),
                    ))
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = one_source, ten_sources
}
criterion_main!(benches);

//! Cost of payload inspection (frame start, keyframe, picture ID) per packet and codec, over
//! packets recorded from real encoders (engine/tests/fixtures).

use corecast_engine::codec;
use corecast_engine::rtp::RtpHeader;
use corecast_engine::Codec;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::path::Path;

/// Payloads of a fixture: records of a 2-byte big-endian length and an RTP packet.
fn payloads(name: &str) -> Option<Vec<Vec<u8>>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../engine/tests/fixtures")
        .join(name);
    let data = std::fs::read(path).ok()?;
    let mut out = Vec::new();
    let mut rest = &data[..];
    while rest.len() >= 2 {
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let Some(pkt) = rest.get(2..2 + len) else {
            break;
        };
        if let Ok(h) = RtpHeader::parse(pkt) {
            out.push(h.payload(pkt).to_vec());
        }
        rest = &rest[2 + len..];
    }
    Some(out)
}

fn inspect(c: &mut Criterion) {
    let mut group = c.benchmark_group("keyframe");
    for (codec, file) in [
        (Codec::Vp8, "vp8.rtp"),
        (Codec::Vp9, "vp9.rtp"),
        (Codec::H264, "h264.rtp"),
        (Codec::H265, "h265.rtp"),
        (Codec::Av1, "av1.rtp"),
        (Codec::Opus, "opus.rtp"),
    ] {
        let Some(payloads) = payloads(file) else {
            eprintln!("no fixture {file}; skipping {codec}");
            continue;
        };
        group.throughput(Throughput::Elements(payloads.len() as u64));
        group.bench_function(codec.name(), |b| {
            b.iter(|| {
                for p in &payloads {
                    let _ = black_box(codec::inspect(codec, black_box(p)));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, inspect);
criterion_main!(benches);

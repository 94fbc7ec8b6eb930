//! Why the hot path rewrites raw header bytes instead of using the `rtp` crate: one track's copy
//! of a packet costs a parse and a header rewrite here, against an unmarshal, field changes and a
//! marshal of the whole packet there.

use bytes::Bytes;
use corecast_engine::rtp::RtpHeader;
use corecast_engine::synth::{VideoShape, Vp8Stream};
use corecast_engine::{Codec, Nanos, RtpTime, SeqNo, SourceId, SourceIngress, Splicer, Ssrc};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use webrtc_util::marshal::{Marshal, Unmarshal};

fn rewrite(c: &mut Criterion) {
    let mut stream = Vp8Stream::new(Ssrc(1), 0, 0, VideoShape::default());
    let mut buf = Vec::new();
    stream.next_packet(&mut buf);
    let mut group = c.benchmark_group("rewrite");

    group.bench_function("corecast_parse_and_splice", |b| {
        let mut ingress = SourceIngress::new(SourceId(1), Codec::Vp8, 90_000);
        let pkt = ingress.accept(&buf, None, Nanos::ZERO).unwrap().unwrap();
        let mut splicer = Splicer::new(Ssrc(7), 96, SeqNo(9), RtpTime(9));
        let mut out = [0u8; 20];
        b.iter(|| {
            let h = RtpHeader::parse(black_box(&buf)).unwrap();
            black_box(h);
            splicer.splice(&pkt, &buf, Nanos::ZERO, &mut out).unwrap();
            black_box(&out);
        })
    });

    group.bench_function("rtp_crate_unmarshal_marshal", |b| {
        let bytes = Bytes::from(buf.clone());
        b.iter(|| {
            let mut reader = black_box(bytes.clone());
            let mut p = rtp::packet::Packet::unmarshal(&mut reader).unwrap();
            p.header.ssrc = 7;
            p.header.sequence_number = p.header.sequence_number.wrapping_add(9);
            p.header.timestamp = p.header.timestamp.wrapping_add(9);
            black_box(p.marshal().unwrap());
        })
    });
    group.finish();
}

criterion_group!(benches, rewrite);
criterion_main!(benches);

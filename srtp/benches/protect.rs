//! Per-copy protect cost of a 1,200-octet RTP packet, each profile, corecast-srtp (header and
//! payload gathered straight into a reused send buffer) against webrtc-srtp's `encrypt_rtp`
//! (which parses the packet and allocates its output); and an SRTCP sender report's, whose
//! session keys are expanded per packet.

use corecast_srtp::{Profile, SrtpContext};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use webrtc_srtp::context::Context;
use webrtc_srtp::protection_profile::ProtectionProfile;

fn packet(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 1, 0xca, 0xfe, 0xba, 0xbe]);
    p.resize(1_200, 0xab);
    p
}

fn protect(c: &mut Criterion) {
    let mut group = c.benchmark_group("srtp_protect_1200");
    group.throughput(Throughput::Elements(1));
    for profile in Profile::ALL {
        let key = vec![7u8; profile.key_len()];
        let salt = vec![9u8; profile.salt_len()];
        let plain = packet(1);
        let mut ours = SrtpContext::new(profile, &key, &salt, 4).unwrap();
        let mut out = vec![0u8; 1_500];
        let mut seq = 0u16;
        group.bench_function(BenchmarkId::new("corecast", format!("{profile:?}")), |b| {
            b.iter(|| {
                seq = seq.wrapping_add(1);
                let header = [
                    0x80,
                    96,
                    (seq >> 8) as u8,
                    seq as u8,
                    0,
                    0,
                    0,
                    1,
                    0xca,
                    0xfe,
                    0xba,
                    0xbe,
                ];
                black_box(
                    ours.protect_rtp(&[&header, &plain[12..]], &mut out)
                        .unwrap(),
                )
            })
        });
        let theirs_profile = match profile {
            Profile::Aes128CmHmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            Profile::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
            Profile::AeadAes256Gcm => ProtectionProfile::AeadAes256Gcm,
        };
        let mut theirs = Context::new(&key, &salt, theirs_profile, None, None).unwrap();
        let mut plain = packet(1);
        let mut seq = 0u16;
        group.bench_function(
            BenchmarkId::new("webrtc-srtp", format!("{profile:?}")),
            |b| {
                b.iter(|| {
                    seq = seq.wrapping_add(1);
                    plain[2..4].copy_from_slice(&seq.to_be_bytes());
                    black_box(theirs.encrypt_rtp(&plain).unwrap())
                })
            },
        );
    }
    group.finish();
}

/// Protecting one 52-octet sender report (what a shard writes per viewer track and second):
/// the SRTCP session keys are expanded for each packet, which this measures.
fn protect_rtcp(c: &mut Criterion) {
    let mut group = c.benchmark_group("srtcp_protect_sender_report");
    group.throughput(Throughput::Elements(1));
    let mut report = vec![0x80, 200, 0, 12, 0xca, 0xfe, 0xba, 0xbe];
    report.resize(52, 0x11);
    for profile in Profile::ALL {
        let key = vec![7u8; profile.key_len()];
        let salt = vec![9u8; profile.salt_len()];
        let mut ours = SrtpContext::new(profile, &key, &salt, 4).unwrap();
        let mut out = vec![0u8; 128];
        group.bench_function(BenchmarkId::new("corecast", format!("{profile:?}")), |b| {
            b.iter(|| black_box(ours.protect_rtcp(&[&report], &mut out).unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, protect, protect_rtcp);
criterion_main!(benches);

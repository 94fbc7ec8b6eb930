//! What a STUN check costs the shard that answers it: one Binding request from a browser (USERNAME,
//! PRIORITY, ICE-CONTROLLING, USE-CANDIDATE, MESSAGE-INTEGRITY, FINGERPRINT) verified and
//! answered by an agent that knows 1,000 viewers; and, of that, the `stun` crate's CRC-32, which
//! the agent replaced with a table built once (see `ice/binding.rs`).
//!
//! `cargo bench -p corecast-webrtc --bench stun_check`

use std::net::SocketAddr;

use corecast_engine::Nanos;
use corecast_webrtc::ice::{Credentials, IceConfig, IceLite, ViewerKey};
use criterion::{criterion_group, criterion_main, Criterion};
use stun::agent::TransactionId;
use stun::attributes::{
    RawAttribute, ATTR_ICE_CONTROLLING, ATTR_PRIORITY, ATTR_USERNAME, ATTR_USE_CANDIDATE,
};
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::{Message, Setter, BINDING_REQUEST};
use stun::textattrs::Username;

const PWD: &str = "corecast-local-password-24";
const REMOTE: &str = "brws";
const VIEWERS: u64 = 1_000;

/// A browser's nominating check for the viewer whose local ufrag is `ufrag`.
fn check(ufrag: &str) -> Vec<u8> {
    let raw = |typ, value: Vec<u8>| RawAttribute {
        typ,
        length: value.len() as u16,
        value,
    };
    let setters: Vec<Box<dyn Setter>> = vec![
        Box::new(BINDING_REQUEST),
        Box::new(TransactionId::new()),
        Box::new(Username::new(ATTR_USERNAME, format!("{ufrag}:{REMOTE}"))),
        Box::new(raw(ATTR_PRIORITY, 0x6e7f_1eff_u32.to_be_bytes().to_vec())),
        Box::new(raw(ATTR_ICE_CONTROLLING, 7u64.to_be_bytes().to_vec())),
        Box::new(raw(ATTR_USE_CANDIDATE, Vec::new())),
        Box::new(MessageIntegrity::new_short_term_integrity(PWD.into())),
        Box::new(FINGERPRINT),
    ];
    let mut m = Message::new();
    m.build(&setters).expect("a well-formed check");
    m.raw
}

fn bench(c: &mut Criterion) {
    let mut agent = IceLite::new(IceConfig::default());
    let mut requests = Vec::new();
    for i in 0..VIEWERS {
        let ufrag = format!("u{i:03}");
        let local = Credentials {
            ufrag: ufrag.clone(),
            pwd: PWD.into(),
        };
        agent.add(ViewerKey(i), local, REMOTE, Nanos(0)).unwrap();
        let from: SocketAddr = ([127, 0, 0, 1], 10_000 + i as u16).into();
        requests.push((check(&ufrag), from));
    }
    let mut response = Vec::with_capacity(128);
    let mut next = 0;
    c.bench_function("stun check answered, 1,000 viewers", |b| {
        b.iter(|| {
            let (bytes, from) = &requests[next % requests.len()];
            next += 1;
            agent
                .handle_stun(bytes, *from, Nanos(1), &mut response)
                .expect("a valid check is answered");
        })
    });
    let body = &requests[0].0[..requests[0].0.len() - 8];
    c.bench_function("stun crate fingerprint_value", |b| {
        b.iter(|| stun::fingerprint::fingerprint_value(std::hint::black_box(body)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

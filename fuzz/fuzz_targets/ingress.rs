//! A `SourceIngress` fed a stream the fuzzer shapes: a recorded stream whose SSRC, sequence
//! numbers, timestamps, header parts and bytes it may change packet by packet, raw datagrams in
//! between, and time passing. After every datagram:
//! - `packets == accepted + drops (per packet) + held`, and no counter went backwards;
//! - no two accepted packets of one epoch share an extended sequence number, and an epoch has one
//!   SSRC;
//! - each accepted packet is its bytes: the same header, the codec's inspection (a frame start
//!   may only be cleared), wire values that are its extended values cut short, and an extended
//!   timestamp within 2^31 of its stream's newest (no unwrapping through zero);
//! - a prelude is only given to a switch point without sets, and is itself a switch point that
//!   carries them.
#![no_main]

use std::collections::{HashMap, HashSet};

use arbitrary::Arbitrary;
use corecast_engine::codec::parameter_sets::ParameterSets;
use corecast_engine::codec::{self};
use corecast_engine::rtp::RtpHeader;
use corecast_engine::{DropScope, IngressCounters, Nanos, SourceId, SourceIngress};
use corecast_fuzz::{offer, Delivered, PacketSpec, Sender, StreamKind};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    kind: StreamKind,
    /// Give the source its SDP's parameter sets (H.264/H.265).
    configured: bool,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
enum Step {
    /// The recording's next packets, as recorded (1 to 16 of them).
    Next(u8),
    /// 1 to 256 packets bent the same way.
    Packet(PacketSpec, u8),
    Raw(Vec<u8>),
    /// Time passes, in milliseconds.
    Wait(u16),
}

const SOURCE: SourceId = SourceId(7);

/// What the target remembers of the packets accepted so far.
#[derive(Default)]
struct Seen {
    /// (epoch, extended sequence number) of every accepted packet.
    accepted: HashSet<(u32, u64)>,
    ssrc_of_epoch: HashMap<u32, u32>,
    /// Per epoch: extended sequence number and timestamp of its newest packet.
    newest: HashMap<u32, (u64, u64)>,
    last_epoch: Option<u32>,
}

fuzz_target!(|input: Input| {
    let codec = input.kind.codec();
    // A retransmitting sender's source (RTX on 97): gaps are tracked and NACKed, and packets of
    // payload type 97 taken as retransmissions, which may fill them.
    let config = corecast_engine::IngressConfig {
        rtx_payload_type: Some(97),
        ..Default::default()
    };
    let mut ingress = SourceIngress::with_config(SOURCE, codec, codec.default_clock_rate(), config);
    if input.configured {
        if let Some(units) = input.kind.sdp_parameter_sets() {
            ingress.set_configured_parameter_sets(ParameterSets::configured(codec, units).unwrap());
        }
    }
    let mut sender = Sender::new(input.kind, 96);
    let mut now = Nanos::from_millis(1);
    let mut datagram = Vec::new();
    let mut out = Vec::new();
    let mut seen = Seen::default();
    for step in &input.steps {
        let (spec, count) = match step {
            Step::Next(n) => (PacketSpec::NEXT, 1 + u16::from(n % 16)),
            Step::Packet(spec, repeat) => (*spec, 1 + u16::from(*repeat)),
            Step::Raw(bytes) => {
                datagram.clone_from(bytes);
                one(&mut ingress, &datagram, now, &mut out, &mut seen);
                continue;
            }
            Step::Wait(ms) => {
                now = now.saturating_add(Nanos::from_millis(u64::from(*ms)));
                // The NACKs due by then: each a well-formed NACK naming at least one number.
                while let Some(nack) = ingress.poll_nack(now) {
                    assert!(matches!(
                        corecast_engine::rtcp::packets(nack.bytes()).next(),
                        Some(Ok(corecast_engine::rtcp::RtcpPacket::Nack { .. }))
                    ));
                }
                continue;
            }
        };
        for _ in 0..count {
            sender.packet(&spec, &mut datagram);
            one(&mut ingress, &datagram, now, &mut out, &mut seen);
            now = now.saturating_add(Nanos::from_micros(500));
        }
    }
});

/// Offer one datagram and check everything that came out of it.
fn one(
    ingress: &mut SourceIngress,
    datagram: &[u8],
    now: Nanos,
    out: &mut Vec<Delivered>,
    seen: &mut Seen,
) {
    let before = *ingress.counters();
    out.clear();
    offer(ingress, datagram, now, out);
    let after = *ingress.counters();
    check_counters(&before, &after);
    assert_eq!(after.accepted - before.accepted, out.len() as u64);
    for d in out.iter() {
        check_packet(ingress, d, seen);
    }
}

fn check_counters(before: &IngressCounters, after: &IngressCounters) {
    assert_eq!(
        after.packets,
        after.accepted + after.drops.total_of(DropScope::Packet) + after.held,
        "packets = accepted + drops + held: {after:?}"
    );
    assert_eq!(after.packets, before.packets + 1);
    assert_eq!(
        after.drops.total(),
        after.drops.total_of(DropScope::Packet),
        "ingress counts only per-packet drops"
    );
    for (b, a) in [
        (before.accepted, after.accepted),
        (before.bytes, after.bytes),
        (before.restarts, after.restarts),
        (before.frames, after.frames),
        (before.keyframes, after.keyframes),
    ] {
        assert!(a >= b, "a counter went backwards: {before:?} -> {after:?}");
    }
    for (reason, n) in before.drops.iter() {
        assert!(after.drops.get(reason) >= n, "{reason:?} went backwards");
    }
    assert!(after.keyframes <= after.frames && after.frames <= after.accepted);
}

fn check_packet(ingress: &SourceIngress, d: &Delivered, seen: &mut Seen) {
    let pkt = &d.pkt;
    let bytes = &d.bytes[..usize::from(pkt.header.len)];
    assert_eq!(pkt.source, SOURCE);
    assert_eq!(pkt.clock_rate, ingress.clock_rate());
    assert_eq!(Ok(pkt.header), RtpHeader::parse(bytes));
    let inspected = codec::inspect(ingress.codec(), pkt.header.payload(bytes)).unwrap();
    assert_eq!(
        pkt.payload,
        codec::PayloadInfo {
            frame_start: pkt.payload.frame_start,
            ..inspected
        }
    );
    assert!(!pkt.payload.frame_start || inspected.frame_start);
    assert_eq!(pkt.seq.wire(), pkt.header.seq);
    assert_eq!(pkt.timestamp.wire(), pkt.header.timestamp);

    assert!(
        seen.accepted.insert((pkt.epoch, pkt.seq.0)),
        "epoch {} sequence {} accepted twice",
        pkt.epoch,
        pkt.seq.0
    );
    let ssrc = *seen
        .ssrc_of_epoch
        .entry(pkt.epoch)
        .or_insert(pkt.header.ssrc.0);
    assert_eq!(ssrc, pkt.header.ssrc.0, "epoch {} changed SSRC", pkt.epoch);
    if seen.last_epoch != Some(pkt.epoch) {
        assert!(
            seen.last_epoch.is_none_or(|e| pkt.epoch > e) || seen.newest.contains_key(&pkt.epoch),
            "epoch {} after {:?}",
            pkt.epoch,
            seen.last_epoch
        );
        seen.last_epoch = Some(pkt.epoch);
    }
    let newest = seen
        .newest
        .entry(pkt.epoch)
        .or_insert((pkt.seq.0, pkt.timestamp.0));
    let distance = i128::from(pkt.timestamp.0) - i128::from(newest.1);
    assert!(
        distance.abs() <= 1 << 31,
        "extended timestamp {} is {distance} from its stream's newest {}",
        pkt.timestamp.0,
        newest.1
    );
    if pkt.seq.0 > newest.0 {
        *newest = (pkt.seq.0, pkt.timestamp.0);
    }
    assert!(seen.newest.len() as u64 <= ingress.counters().restarts + 1);

    if let Some(prelude) = pkt.prelude {
        assert!(pkt.is_switch_point() && !pkt.payload.parameter_sets);
        let info = codec::inspect(ingress.codec(), &d.bytes[prelude.range()]).unwrap();
        assert!(info.is_switch_point() && info.parameter_sets);
    }
}

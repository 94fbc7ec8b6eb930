//! Inputs the fuzz targets (`fuzz/`, `scripts/fuzz.sh`) found that the engine must keep reading
//! as it does, or that broke it, each written out by hand through the public API so it reads as
//! the scenario it is. The raw inputs are kept in `fuzz/regressions/<target>/`, which
//! `scripts/fuzz.sh` replays before fuzzing.

use std::net::SocketAddr;

use corecast_engine::rtp::RtpHeader;
use corecast_engine::synth::write_rtp;
use corecast_engine::{
    Codec, DropScope, Nanos, RtpTime, SeqNo, Shard, SourceId, SourceIngress, Ssrc, TrackConfig,
    TrackId, TransmitBatch,
};

/// Found by the `rtp_header` target, where the webrtc-rs `rtp` crate read this packet's payload
/// from a different offset: a one-byte extension element that claims more bytes than its block
/// holds. The block's length field bounds it (RFC 3550 §5.3.1), so the payload starts at the
/// block's end whatever the elements say, and the element walk stops at the bad one (RFC 8285
/// §4.2); webrtc-rs walks on past the block into the payload.
#[test]
fn an_extension_element_overrunning_its_block_does_not_move_the_payload() {
    let mut packet = vec![0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2];
    // Profile 0xBEDE, one word: an element with ID 1 and 4 bytes of data, only 3 in the block.
    packet.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x13, 0xaa, 0xbb, 0xcc]);
    packet.extend_from_slice(&[0xdd, 0xee, 0xff]);
    let h = RtpHeader::parse(&packet).unwrap();
    assert_eq!(h.payload(&packet), &[0xdd, 0xee, 0xff]);
    assert_eq!(h.extensions(&packet).count(), 0);
}

/// Found by the `rtcp_packets` target, where the webrtc-rs `rtcp` crate read this packet's
/// padding as a second NACK pair: a generic NACK with the padding bit set and four octets of
/// padding (the last octet says how many, RFC 3550 §6.4.1). Padding is not feedback.
#[test]
fn a_padded_nack_has_only_the_pairs_before_its_padding() {
    let packet = [
        0xa1, 205, 0, 4, // V=2, P=1, FMT=1 (generic NACK), length 4 words
        0, 1, 0, 0x8c, // sender SSRC
        0xff, 0, 1, 0xff, // media SSRC
        1, 0, 0, 0, // one pair: PID 256, BLP 0
        0, 0, 0, 4, // padding, four octets
    ];
    let mut packets = corecast_engine::rtcp::packets(&packet);
    match packets.next() {
        Some(Ok(corecast_engine::rtcp::RtcpPacket::Nack { pairs, .. })) => {
            let pairs: Vec<(u16, u16)> = pairs.iter().map(|p| (p.pid.0, p.blp)).collect();
            assert_eq!(pairs, [(256, 0)]);
        }
        other => panic!("expected a NACK, got {other:?}"),
    }
    assert!(packets.next().is_none());
}

const SOURCE: SourceId = SourceId(1);
const TRACK: TrackId = TrackId(1);

/// One Opus source (every packet a switch point) and one track on it.
struct Rig {
    ingress: SourceIngress,
    shard: Shard,
    batch: TransmitBatch,
    datagram: Vec<u8>,
}

impl Rig {
    fn new() -> Rig {
        let mut shard = Shard::default();
        shard.add_source(SOURCE, Codec::Opus).unwrap();
        let config = TrackConfig {
            id: TRACK,
            dest: SocketAddr::from(([127, 0, 0, 1], 5004)),
            ssrc: Ssrc(0xabc),
            payload_type: 111,
            first_seq: SeqNo(100),
            first_ts: RtpTime(1000),
        };
        shard.add_track(config, SOURCE).unwrap();
        Rig {
            ingress: SourceIngress::new(SOURCE, Codec::Opus, 48_000),
            shard,
            batch: TransmitBatch::with_capacity(4),
            datagram: Vec::new(),
        }
    }

    /// Offer one packet and fan it out; the number of copies sent. (Where ingress's way of
    /// handing packets out changes, this is the one place to adapt.)
    fn send(&mut self, ssrc: u32, seq: u16, ts: u32, now: Nanos) -> usize {
        self.datagram.clear();
        let payload = [0x78, 1, 2, 3];
        write_rtp(
            &mut self.datagram,
            Ssrc(ssrc),
            111,
            SeqNo(seq),
            RtpTime(ts),
            false,
            &payload,
        );
        let mut copies = 0;
        let (shard, batch) = (&mut self.shard, &mut self.batch);
        let _ = self
            .ingress
            .ingest(&self.datagram, None, now, |pkt, bytes, _| {
                let mut fan_out = shard.fan_out(pkt, bytes, now);
                while fan_out.fill(batch) > 0 {
                    copies += batch.len();
                    batch.clear();
                }
            });
        let c = self.shard.source_counters(SOURCE).unwrap();
        assert_eq!(
            c.track_packets,
            c.forwarded + c.drops.total_of(DropScope::Copy)
        );
        copies
    }
}

/// Found by the `shard` target: a sender whose timestamps step back by nearly half the 32-bit
/// space, packet after packet, drove the splicer's output timestamp below zero; the next anchor
/// (here the sender's restart) then overflowed `last_ts + step` (a panic in debug builds).
#[test]
fn timestamps_stepping_back_by_half_the_space_then_a_restart() {
    let mut rig = Rig::new();
    let mut now = Nanos::from_millis(1);
    let mut ts = 0u32;
    for seq in 0..5 {
        assert_eq!(rig.send(0x1111, seq, ts, now), 1);
        ts = ts.wrapping_sub(0x7fff_ffff);
        now = now.saturating_add(Nanos::from_millis(20));
    }
    // A new SSRC, once the old one has fallen silent (it is held on probation until then): the
    // track re-anchors, its timestamp continuing from the last one sent.
    now = now.saturating_add(Nanos::from_millis(400));
    let copies: usize = (0..4u16)
        .map(|i| rig.send(0x2222, 500 + i, 960 * u32::from(i), now))
        .sum();
    assert_eq!(copies, 4);
}

/// Found by the `ingress` target: 600 packets, each one sequence number on and 2^31 - 1 ticks
/// back, unwrapped to extended timestamps that passed below zero (they start at 2^40: 512
/// steps) and wrapped to near 2^64, a jump of 2^64 between neighbours.
#[test]
fn extended_timestamps_never_wrap_through_zero() {
    let mut rig = Rig::new();
    let mut ts = 0u32;
    let mut last: Option<(u32, u64)> = None;
    for seq in 0..600u16 {
        rig.datagram.clear();
        write_rtp(
            &mut rig.datagram,
            Ssrc(0x1111),
            111,
            SeqNo(seq),
            RtpTime(ts),
            false,
            &[0x78, 1],
        );
        let pkt = rig
            .ingress
            .accept(&rig.datagram, None, Nanos::ZERO)
            .unwrap()
            .expect("one stream: nothing held");
        // Within one stream, each timestamp is the one before less 2^31 - 1.
        if let Some((epoch, ts)) = last.filter(|&(epoch, _)| epoch == pkt.epoch) {
            let step = i128::from(pkt.timestamp.0) - i128::from(ts);
            assert_eq!(step, -0x7fff_ffff, "packet {seq} of epoch {epoch}");
        }
        last = Some((pkt.epoch, pkt.timestamp.0));
        ts = ts.wrapping_sub(0x7fff_ffff);
    }
}

//! Keyframes sent without their parameter sets: a track that starts at one gets the sets the
//! stream sent earlier, as a *prelude* packet just before the keyframe, numbered into its stream.
//!
//! Replays real encoder output recorded by `scripts/record-fixtures.sh`: `h264-sets-once.rtp`
//! (x264 and rtph264pay sending SPS/PPS only before the first keyframe) and `h265.rtp` (x265 does
//! the same with VPS/SPS/PPS). The webrtc-rs depacketizers read the NAL units back, so the check
//! does not rest on the engine's own parsing.

mod common;

use bytes::Bytes;
use common::fixtures::rtp_records;
use corecast_engine::rtp::RtpHeader;
use corecast_engine::{
    Codec, Nanos, RtpTime, SeqNo, Shard, SourceId, SourceIngress, Ssrc, TrackConfig, TrackId,
    TransmitBatch,
};
use rtp::codecs::h265::{H265Packet, H265Payload};
use rtp::packetizer::Depacketizer;

/// One packet a track sent, parsed back.
#[derive(Clone, Debug)]
struct Out {
    seq: u16,
    ts: u32,
    marker: bool,
    payload_type: u8,
    payload: Vec<u8>,
}

impl Out {
    fn parse(bytes: &[u8]) -> Out {
        let h = RtpHeader::parse(bytes).expect("a track sends valid RTP");
        Out {
            seq: h.seq.0,
            ts: h.timestamp.0,
            marker: h.marker,
            payload_type: h.payload_type,
            payload: h.payload(bytes).to_vec(),
        }
    }
}

/// The NAL units of one payload, by the webrtc-rs depacketizers (FU fragments excluded).
fn nal_units(codec: Codec, payload: &[u8]) -> Vec<Vec<u8>> {
    let bytes = Bytes::copy_from_slice(payload);
    if codec == Codec::H264 {
        if payload[0] & 0x1f == 28 {
            return Vec::new();
        }
        let annex_b = rtp::codecs::h264::H264Packet::default()
            .depacketize(&bytes)
            .unwrap()
            .to_vec();
        // Emulation prevention keeps 00 00 00 01 out of NAL units, so start codes split them.
        let starts: Vec<usize> = annex_b
            .windows(4)
            .enumerate()
            .filter(|(_, w)| *w == [0, 0, 0, 1])
            .map(|(i, _)| i + 4)
            .collect();
        return starts
            .iter()
            .enumerate()
            .map(|(k, &s)| annex_b[s..starts.get(k + 1).map_or(annex_b.len(), |n| n - 4)].to_vec())
            .collect();
    }
    let mut packet = H265Packet::default();
    packet.depacketize(&bytes).unwrap();
    match packet.payload() {
        H265Payload::H265AggregationPacket(ap) => std::iter::once(ap.first_unit().unwrap())
            .map(|u| u.nal_unit().to_vec())
            .chain(ap.other_units().iter().map(|u| u.nal_unit().to_vec()))
            .collect(),
        H265Payload::H265SingleNALUnitPacket(_) => vec![payload.to_vec()],
        _ => Vec::new(),
    }
}

fn is_parameter_set(codec: Codec, nal: &[u8]) -> bool {
    match codec {
        Codec::H264 => matches!(nal[0] & 0x1f, 7 | 8),
        _ => matches!((nal[0] >> 1) & 0x3f, 32..=34),
    }
}

fn track(id: u32) -> TrackConfig {
    TrackConfig {
        id: TrackId(id),
        dest: format!("127.0.0.1:{}", 30_000 + id).parse().unwrap(),
        ssrc: Ssrc(0xabc0 + id),
        payload_type: 102,
        first_seq: SeqNo(65_530),
        first_ts: RtpTime(u32::MAX - 1000),
    }
}

/// Replay `fixture`: track 1 from the start, track 2 added once the first keyframe has passed.
/// Returns each track's output and the number of preludes the source's counters report.
/// Also returns the parameter sets the stream sent in-band (once each), and every packet's
/// payload as received.
fn replay(codec: Codec, fixture: &str) -> Replay {
    let source = SourceId(7);
    let mut ingress = SourceIngress::new(source, codec, 90_000);
    let mut shard = Shard::default();
    shard.add_source(source, codec).unwrap();
    shard.add_track(track(1), source).unwrap();
    // Room for one packet and its prelude only: the tightest batch the engine allows.
    let mut batch = TransmitBatch::with_capacity(2);
    let mut outputs = [Vec::new(), Vec::new()];
    let mut in_band = Vec::new();
    let mut payloads = Vec::new();
    let mut late_added = false;
    for (i, record) in rtp_records(fixture).into_iter().enumerate() {
        let now = Nanos::from_millis(i as u64);
        let mut pkt = ingress
            .accept(&record, None, now)
            .expect("fixture packets are valid")
            .expect("one stream: nothing held");
        let payload = &record[pkt.header.payload_start as usize..pkt.header.payload_end as usize];
        payloads.push(payload.to_vec());
        if !late_added {
            // Packetizers repeat the sets before each slice of a keyframe: keep one of each.
            for nal in nal_units(codec, payload) {
                if is_parameter_set(codec, &nal) && !in_band.contains(&nal) {
                    in_band.push(nal);
                }
            }
        }
        let mut buf = record.clone();
        if let Some(prelude) = ingress.prelude_for(&pkt) {
            pkt.attach_prelude(&mut buf, prelude);
        }
        let mut fan = shard.fan_out(&pkt, &buf, now);
        while fan.fill(&mut batch) > 0 {
            for t in batch.as_slice() {
                outputs[t.track.0 as usize - 1].push(Out::parse(&t.to_vec(&pkt, &buf)));
            }
            batch.clear();
        }
        if pkt.header.marker && !late_added {
            late_added = true;
            shard.add_track(track(2), source).unwrap();
        }
    }
    let preludes = shard.source_counters(source).unwrap().preludes;
    let [early, late] = outputs;
    Replay {
        early,
        late,
        in_band,
        payloads,
        preludes,
    }
}

struct Replay {
    early: Vec<Out>,
    late: Vec<Out>,
    in_band: Vec<Vec<u8>>,
    payloads: Vec<Vec<u8>>,
    preludes: u64,
}

fn check(codec: Codec, fixture: &str, kinds: usize) {
    let Replay {
        early,
        late,
        in_band,
        payloads,
        preludes,
    } = replay(codec, fixture);
    assert_eq!(
        in_band.len(),
        kinds,
        "{fixture}: the first keyframe carries the sets"
    );

    // Both tracks: one unbroken sequence, one SSRC's worth of output.
    for out in [&early, &late] {
        for pair in out.windows(2) {
            assert_eq!(pair[1].seq, pair[0].seq.wrapping_add(1), "{fixture}: a gap");
            assert!(pair[1].ts.wrapping_sub(pair[0].ts) < 1 << 31, "{fixture}");
        }
        assert!(out.iter().all(|o| o.payload_type == 102));
    }
    // The early track started at the keyframe that carried its sets: no prelude.
    assert!(nal_units(codec, &early[0].payload)
        .iter()
        .any(|n| is_parameter_set(codec, n)));

    // The late track starts with the prelude: the stream's sets, the keyframe's timestamp, no
    // marker, then the keyframe itself.
    let prelude = &late[0];
    assert_eq!(nal_units(codec, &prelude.payload), in_band, "{fixture}");
    assert!(!prelude.marker);
    assert_eq!(
        prelude.ts, late[1].ts,
        "{fixture}: prelude shares the IDR's time"
    );
    assert!(
        !nal_units(codec, &late[1].payload)
            .iter()
            .any(|n| is_parameter_set(codec, n)),
        "{fixture}: the late track starts at a keyframe without sets"
    );
    assert_eq!(
        preludes, 1,
        "{fixture}: one prelude, to the late track only"
    );
    // Apart from the prelude, both tracks send what came in, byte for byte.
    for out in [&early[..], &late[1..]] {
        let sent: Vec<&Vec<u8>> = out.iter().map(|o| &o.payload).collect();
        let received: Vec<&Vec<u8>> = payloads[payloads.len() - out.len()..].iter().collect();
        assert!(sent == received, "{fixture}: payloads changed on the way");
    }
}

#[test]
fn h264_keyframe_without_sps_pps_gets_the_cached_ones_first() {
    check(Codec::H264, "h264-sets-once.rtp", 2);
}

#[test]
fn h265_keyframe_without_vps_sps_pps_gets_the_cached_ones_first() {
    check(Codec::H265, "h265.rtp", 3);
}

/// Sets from the sender's SDP fill in until the stream sends its own, and after a restart.
#[test]
fn configured_sets_are_used_while_none_came_in_band() {
    use corecast_engine::codec::parameter_sets::ParameterSets;
    let records = rtp_records("h264-sets-once.rtp");
    let start = records.iter().position(|r| r[1] & 0x80 != 0).unwrap() + 1;
    let (sdp_sps, sdp_pps) = ([0x67, 0x42, 0xc0, 0x0d], [0x68, 0xce, 0x3c]);
    let configured = ParameterSets::configured(Codec::H264, &[&sdp_sps, &sdp_pps]).unwrap();
    let sdp_prelude = configured.prelude().unwrap().to_vec();
    let mut ingress = SourceIngress::new(SourceId(1), Codec::H264, 90_000);
    ingress.set_configured_parameter_sets(configured);
    let mut preludes = Vec::new();
    // Join after the in-band sets, then the whole stream from a restarted sender.
    for (i, record) in records[start..].iter().chain(&records).enumerate() {
        let mut record = record.clone();
        let mut now = Nanos::from_millis(i as u64);
        if i >= records.len() - start {
            record[8..12].copy_from_slice(&0x5eed_u32.to_be_bytes());
            // The restarted sender comes after the old one fell silent.
            now = now.saturating_add(Nanos::from_millis(1_000));
        }
        ingress
            .ingest(&record, None, now, |pkt, _, prelude| {
                if pkt.is_switch_point() {
                    preludes.push(prelude.map(<[u8]>::to_vec));
                }
            })
            .unwrap();
    }
    let in_band = preludes[3]
        .clone()
        .expect("the stream's own sets once seen");
    assert_ne!(in_band, sdp_prelude);
    assert_eq!(
        preludes,
        [
            Some(sdp_prelude.clone()),
            Some(sdp_prelude),
            None,
            Some(in_band.clone()),
            Some(in_band)
        ],
        "SDP sets, SDP sets, restart carrying its sets, the stream's own twice"
    );
}

#[test]
fn a_restarted_stream_starts_with_an_empty_cache() {
    let records = rtp_records("h264-sets-once.rtp");
    let mut ingress = SourceIngress::new(SourceId(1), Codec::H264, 90_000);
    let mut switch_points = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let pkt = ingress
            .accept(record, None, Nanos::from_millis(i as u64))
            .unwrap()
            .expect("one stream: nothing held");
        if pkt.is_switch_point() {
            switch_points.push(ingress.prelude_for(&pkt).is_some());
        }
    }
    assert_eq!(
        switch_points,
        [false, true, true],
        "three keyframes, sets on the first"
    );
    // The same packets from a new SSRC without their first keyframe: a new encoder whose sets
    // were never seen. Sending the old encoder's would be wrong, so nothing is sent.
    let start = records.iter().position(|r| r[1] & 0x80 != 0).unwrap() + 1;
    let mut released = 0;
    for (i, record) in records[start..].iter().enumerate() {
        let mut restarted = record.clone();
        restarted[8..12].copy_from_slice(&0x5eed_u32.to_be_bytes());
        let now = Nanos::from_millis(10_000 + i as u64);
        ingress
            .ingest(&restarted, None, now, |_, _, prelude| {
                assert_eq!(prelude, None);
                released += 1;
            })
            .unwrap();
    }
    assert_eq!(released, records.len() - start, "every packet came through");
}

/// What an SDP's `sprop-*` is built from: nothing until the stream has sent every kind, then the
/// stream's own units in decoding order; the configured ones fill in meanwhile.
#[test]
fn known_parameter_sets_are_the_streams_once_complete_else_the_configured_ones() {
    use corecast_engine::codec::parameter_sets::ParameterSets;
    let records = rtp_records("h264-sets-once.rtp");
    let mut ingress = SourceIngress::new(SourceId(1), Codec::H264, 90_000);
    assert!(ingress.parameter_sets().is_none(), "nothing known yet");
    let (sdp_sps, sdp_pps) = ([0x67, 0x42, 0xc0, 0x0d], [0x68, 0xce, 0x3c]);
    let configured = ParameterSets::configured(Codec::H264, &[&sdp_sps, &sdp_pps]).unwrap();
    ingress.set_configured_parameter_sets(configured);
    assert_eq!(
        ingress.parameter_sets().unwrap().units(),
        [sdp_sps.to_vec(), sdp_pps.to_vec()]
    );
    let mut in_band = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let pkt = ingress
            .accept(record, None, Nanos::from_millis(i as u64))
            .unwrap()
            .expect("one stream: nothing held");
        if pkt.payload.parameter_sets {
            in_band.extend(nal_units(
                Codec::H264,
                RtpHeader::parse(record).unwrap().payload(record),
            ));
        }
    }
    let units = ingress.parameter_sets().unwrap().units();
    assert_eq!(units.len(), 2);
    assert_eq!(units[0][0] & 0x1f, 7, "SPS first");
    assert_eq!(units[1][0] & 0x1f, 8, "then PPS");
    assert_ne!(
        units[0], sdp_sps,
        "the stream's own replace the configured ones"
    );
    for unit in units {
        assert!(in_band.contains(unit), "{unit:02x?} came in-band");
    }
}

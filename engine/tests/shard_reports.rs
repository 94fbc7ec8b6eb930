//! RTCP reports on a shard's tracks, over virtual time: sender reports for the tracks that want
//! them (their RTP clock at `now`, mapped to the wall clock given), at most one per interval;
//! reception reports from the subscriber taken into the track's stats (loss, jitter), and the
//! round trip measured from an echoed sender report; reports from another address ignored.

use corecast_engine::rtcp::{self, NtpTime, RtcpPacket, PT_RR};
use corecast_engine::shard::{SENDER_REPORT_INTERVAL, SENDER_REPORT_LEN};
use corecast_engine::synth::{VideoShape, Vp8Stream};
use corecast_engine::{
    Codec, ControlError, Nanos, RtpTime, SeqNo, Shard, SourceId, SourceIngress, Ssrc, TrackConfig,
    TrackId, TrackInfo, TransmitBatch,
};

const DEST: &str = "127.0.0.1:5000";
const SOURCE: SourceId = SourceId(1);

fn config(id: u32, ssrc: u32, dest: &str) -> TrackConfig {
    TrackConfig {
        id: TrackId(id),
        dest: dest.parse().unwrap(),
        ssrc: Ssrc(ssrc),
        payload_type: 96,
        first_seq: SeqNo(1000),
        first_ts: RtpTime(5000),
    }
}

/// A shard with tracks 1 (to DEST) and 2 on one VP8 source, and the packets of 3 s of it
/// (30 fps) forwarded, the last one at `last_at`; the last output timestamp of the tracks.
fn forwarding() -> (Shard, Nanos, u32) {
    let mut shard = Shard::default();
    shard.add_source(SOURCE, Codec::Vp8).unwrap();
    shard.add_track(config(1, 0x1111, DEST), SOURCE).unwrap();
    shard
        .add_track(config(2, 0x2222, "127.0.0.1:5002"), SOURCE)
        .unwrap();
    let mut ingress = SourceIngress::new(SOURCE, Codec::Vp8, 90_000);
    let mut stream = Vp8Stream::new(Ssrc(0xabc), 1, 0, VideoShape::default());
    let mut batch = TransmitBatch::with_capacity(8);
    let (mut now, mut buf, mut last_ts) = (Nanos::ZERO, Vec::new(), 0);
    for frame in 0..90u64 {
        now = Nanos(frame * 33_333_333);
        loop {
            buf.clear();
            let p = stream.next_packet(&mut buf);
            let delivered = ingress.ingest(&buf, None, now, |pkt, bytes, _prelude| {
                let mut fan = shard.fan_out(pkt, bytes, now);
                while fan.fill(&mut batch) > 0 {
                    for t in batch.as_slice().iter().filter(|t| t.track == TrackId(1)) {
                        let head = &t.head;
                        last_ts = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
                    }
                    batch.clear();
                }
            });
            assert!(
                delivered.is_ok(),
                "the source takes its own stream: {delivered:?}"
            );
            if p.marker {
                break;
            }
        }
    }
    (shard, now, last_ts)
}

fn reports_at(shard: &mut Shard, now: Nanos, ntp: NtpTime) -> Vec<(TrackId, Vec<u8>)> {
    let mut out = Vec::new();
    shard.write_sender_reports(now, ntp, |id, dest, bytes| {
        assert_eq!(dest, DEST.parse().unwrap(), "only track 1 wants them");
        out.push((id, bytes.to_vec()));
    });
    out
}

fn info(shard: &Shard, id: u32) -> TrackInfo {
    shard.track(TrackId(id)).unwrap()
}

/// A receiver report from the subscriber about `ssrc`.
fn receiver_report(
    ssrc: u32,
    lost: u8,
    cumulative: u32,
    jitter: u32,
    lsr: u32,
    dlsr: u32,
) -> Vec<u8> {
    let mut out = vec![0x81, PT_RR, 0, 7];
    out.extend_from_slice(&0xfeedu32.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.push(lost);
    out.extend_from_slice(&cumulative.to_be_bytes()[1..]);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&jitter.to_be_bytes());
    out.extend_from_slice(&lsr.to_be_bytes());
    out.extend_from_slice(&dlsr.to_be_bytes());
    out
}

#[test]
fn a_sender_report_gives_the_tracks_rtp_clock_at_now() {
    let (mut shard, last_at, last_ts) = forwarding();
    assert_eq!(shard.sender_reports_due(), None, "no track wants them yet");
    shard.set_sender_reports(TrackId(1), true).unwrap();
    let now = last_at.saturating_add(Nanos(10_000_000)); // 10 ms after the last packet
    assert!(shard.sender_reports_due().is_some_and(|at| at <= now));
    let ntp = NtpTime(0xe000_0000_8000_0000);
    let reports = reports_at(&mut shard, now, ntp);
    assert_eq!(reports.len(), 1);
    let (id, bytes) = &reports[0];
    assert_eq!((*id, bytes.len()), (TrackId(1), SENDER_REPORT_LEN));
    let packets = info(&shard, 1).counters.packets;
    match rtcp::packets(bytes).next() {
        Some(Ok(RtcpPacket::SenderReport {
            ssrc,
            ntp: at,
            rtp_ts,
            packet_count,
            reports,
            ..
        })) => {
            assert_eq!(ssrc, Ssrc(0x1111));
            assert_eq!(at, ntp);
            // 10 ms at 90 kHz past the last packet's output timestamp.
            assert_eq!(rtp_ts.0, last_ts.wrapping_add(900));
            assert_eq!(u64::from(packet_count), packets);
            assert!(reports.is_empty());
        }
        other => panic!("not a sender report: {other:?}"),
    }
    // Not again within the interval; again after it.
    let soon = now.saturating_add(Nanos(SENDER_REPORT_INTERVAL.0 - 1));
    assert!(reports_at(&mut shard, soon, ntp).is_empty());
    let later = now.saturating_add(SENDER_REPORT_INTERVAL);
    assert_eq!(reports_at(&mut shard, later, ntp).len(), 1);
    shard.set_sender_reports(TrackId(1), false).unwrap();
    assert_eq!(shard.sender_reports_due(), None);
    assert_eq!(
        shard.set_sender_reports(TrackId(9), true),
        Err(ControlError::UnknownTrack(TrackId(9)))
    );
}

#[test]
fn receiver_reports_fill_the_tracks_reception_and_an_echoed_report_its_round_trip() {
    let (mut shard, last_at, _) = forwarding();
    shard.set_sender_reports(TrackId(1), true).unwrap();
    assert_eq!(info(&shard, 1).reception, None);
    let ntp = NtpTime(0xe000_0001_4000_0000);
    let sent_at = last_at;
    assert_eq!(reports_at(&mut shard, sent_at, ntp).len(), 1);
    // The subscriber held the report 5 ms (DLSR in 1/65536 s) and answers 30 ms after it left:
    // the round trip is 25 ms.
    let dlsr = 5 * 65_536 / 1000;
    let rr = receiver_report(0x1111, 12, 40, 321, ntp.compact().0, dlsr);
    let from = Some(DEST.parse().unwrap());
    shard.handle_rtcp(&rr, from, sent_at.saturating_add(Nanos(30_000_000)));
    let got = info(&shard, 1).reception.expect("reception taken");
    assert_eq!(
        (
            got.reports,
            got.fraction_lost,
            got.cumulative_lost,
            got.jitter
        ),
        (1, 12, 40, 321)
    );
    let rtt = got
        .rtt
        .expect("an echoed sender report gives the round trip")
        .0;
    let expected = 30_000_000 - rtcp::NtpShort(dlsr).to_nanos().0;
    assert_eq!(rtt, expected);
    assert!((24_900_000..=25_100_000).contains(&rtt), "{rtt}");
    // A report naming no sender report of ours: reception, no round trip.
    shard.handle_rtcp(
        &receiver_report(0x2222, 0, 0, 7, 0, 0),
        Some("127.0.0.1:5002".parse().unwrap()),
        sent_at,
    );
    let other = info(&shard, 2).reception.unwrap();
    assert_eq!((other.jitter, other.rtt), (7, None));
    // From anyone else it is ignored and counted.
    let before = shard.counters().rtcp_wrong_sender;
    shard.handle_rtcp(
        &receiver_report(0x1111, 200, 9, 9, 0, 0),
        Some("10.0.0.9:5000".parse().unwrap()),
        sent_at,
    );
    assert_eq!(info(&shard, 1).reception.unwrap().fraction_lost, 12);
    assert_eq!(shard.counters().rtcp_wrong_sender, before + 1);
}

#[test]
fn removing_a_reporting_track_stops_the_reports() {
    let (mut shard, last_at, _) = forwarding();
    shard.set_sender_reports(TrackId(1), true).unwrap();
    shard.remove_track(TrackId(1)).unwrap();
    assert_eq!(shard.sender_reports_due(), None);
    let mut any = false;
    shard.write_sender_reports(last_at, NtpTime(1), |_, _, _| any = true);
    assert!(!any);
}

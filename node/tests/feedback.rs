//! A shard's handling of subscribers' RTCP, without sockets: which track a PLI or FIR is about,
//! whose feedback is taken, and that reading it allocates nothing. A counting global allocator
//! counts allocations made on this thread while the measured code runs.

use std::net::SocketAddr;

use corecast::shard::{Feedback, ShardIo};
use corecast_engine::rtcp::{self, PLI_LEN};
use corecast_engine::{Codec, RtpTime, SeqNo, Shard, SourceId, Ssrc, TrackConfig, TrackId};

#[path = "../../engine/tests/common/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{counted, Counting};

#[global_allocator]
static GLOBAL: Counting = Counting;

fn track(id: u32, ssrc: u32, dest: &str) -> TrackConfig {
    TrackConfig {
        id: TrackId(id),
        dest: dest.parse().unwrap(),
        ssrc: Ssrc(ssrc),
        payload_type: 96,
        first_seq: SeqNo(1),
        first_ts: RtpTime(1),
    }
}

fn pli(media: u32) -> Vec<u8> {
    let mut out = [0u8; PLI_LEN];
    rtcp::write_pli(&mut out, Ssrc(0xfeed), Ssrc(media));
    out.to_vec()
}

/// A FIR (RFC 5104 §4.3.1) asking for each of `media`.
fn fir(media: &[u32]) -> Vec<u8> {
    let words = 2 + 2 * media.len() as u16;
    let mut out = vec![0x80 | 4, rtcp::PT_PSFB];
    out.extend_from_slice(&words.to_be_bytes());
    out.extend_from_slice(&0xfeedu32.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    for (i, ssrc) in media.iter().enumerate() {
        out.extend_from_slice(&ssrc.to_be_bytes());
        out.extend_from_slice(&[i as u8, 0, 0, 0]);
    }
    out
}

/// An empty receiver report, as compound RTCP starts with one.
fn receiver_report() -> Vec<u8> {
    let mut out = vec![0x80, rtcp::PT_RR, 0, 1];
    out.extend_from_slice(&0xfeedu32.to_be_bytes());
    out
}

/// Sources asked for a keyframe by one datagram from `from`.
fn requests(
    feedback: &Feedback,
    engine: &Shard,
    io: &mut ShardIo,
    bytes: &[u8],
    from: Option<&str>,
) -> Vec<SourceId> {
    let from: Option<SocketAddr> = from.map(|f| f.parse().unwrap());
    let mut asked = Vec::new();
    feedback.keyframe_requests(bytes, from, engine, io, |s| asked.push(s));
    asked
}

#[test]
fn a_refused_track_leaves_the_ssrc_map_as_it_was() {
    let mut engine = Shard::default();
    let mut feedback = Feedback::default();
    engine.add_source(SourceId(1), Codec::Vp8).unwrap();
    feedback
        .add_track(&mut engine, track(1, 100, "127.0.0.1:5000"), SourceId(1))
        .unwrap();
    feedback
        .add_track(&mut engine, track(2, 200, "127.0.0.1:5002"), SourceId(1))
        .unwrap();
    // Track 1 again, with track 2's SSRC: refused, and 200 still means track 2.
    assert!(feedback
        .add_track(&mut engine, track(1, 200, "127.0.0.1:5004"), SourceId(1))
        .is_err());
    // A track for a source the shard does not host: refused, its SSRC unknown.
    assert!(feedback
        .add_track(&mut engine, track(3, 300, "127.0.0.1:5006"), SourceId(9))
        .is_err());
    assert_eq!(feedback.track(Ssrc(100)), Some(TrackId(1)));
    assert_eq!(feedback.track(Ssrc(200)), Some(TrackId(2)));
    assert_eq!(feedback.track(Ssrc(300)), None);

    feedback.remove_track(&mut engine, TrackId(2)).unwrap();
    assert_eq!(feedback.track(Ssrc(200)), None);
    assert_eq!(feedback.track(Ssrc(100)), Some(TrackId(1)));
}

#[test]
fn feedback_is_taken_only_from_the_subscribers_address() {
    let mut engine = Shard::default();
    let mut feedback = Feedback::default();
    engine.add_source(SourceId(1), Codec::Vp8).unwrap();
    feedback
        .add_track(&mut engine, track(1, 100, "127.0.0.1:5000"), SourceId(1))
        .unwrap();
    let mut io = ShardIo::default();
    for (from, taken) in [
        // rtcp-mux: from the port media goes to.
        (Some("127.0.0.1:5000"), true),
        // RFC 3550 without mux (ffmpeg, GStreamer's rtpbin): from the next port.
        (Some("127.0.0.1:5001"), true),
        (Some("127.0.0.1:4999"), false),
        (Some("127.0.0.1:5002"), false),
        (Some("127.0.0.2:5000"), false),
        (None, false),
    ] {
        for bytes in [pli(100), fir(&[100])] {
            let asked = requests(&feedback, &engine, &mut io, &bytes, from);
            let want = if taken { vec![SourceId(1)] } else { vec![] };
            assert_eq!(asked, want, "from {from:?}");
        }
    }
    assert_eq!(io.keyframe_requests, 4);
    assert_eq!(io.rtcp_wrong_sender, 8, "refused requests are counted");
    // An SSRC no track sends with is not a subscriber's feedback at all.
    assert!(requests(&feedback, &engine, &mut io, &pli(7), Some("127.0.0.2:1")).is_empty());
    assert_eq!(io.rtcp_wrong_sender, 8);

    // A subscriber at the top port has no "next port"; its own still works.
    feedback
        .add_track(&mut engine, track(2, 200, "127.0.0.1:65535"), SourceId(1))
        .unwrap();
    assert_eq!(
        requests(
            &feedback,
            &engine,
            &mut io,
            &pli(200),
            Some("127.0.0.1:65535")
        ),
        [SourceId(1)]
    );
    assert!(requests(&feedback, &engine, &mut io, &pli(200), Some("127.0.0.1:0")).is_empty());
}

#[test]
fn reading_plis_and_firs_allocates_nothing() {
    let mut engine = Shard::default();
    let mut feedback = Feedback::default();
    engine.add_source(SourceId(1), Codec::Vp8).unwrap();
    engine.add_source(SourceId(2), Codec::Vp8).unwrap();
    for t in 0..4u32 {
        let dest = format!("127.0.0.1:{}", 6000 + 2 * t);
        feedback
            .add_track(&mut engine, track(t, 100 + t, &dest), SourceId(1 + t % 2))
            .unwrap();
    }
    // One compound datagram per subscriber: RR, PLI, and a FIR naming several SSRCs.
    let datagrams: Vec<(Vec<u8>, SocketAddr)> = (0..4u32)
        .map(|t| {
            let mut bytes = receiver_report();
            bytes.extend(pli(100 + t));
            bytes.extend(fir(&[100 + t, 100 + t, 999]));
            (
                bytes,
                format!("127.0.0.1:{}", 6000 + 2 * t).parse().unwrap(),
            )
        })
        .collect();
    let mut io = ShardIo::default();
    let mut asked = [0u32; 3];
    let ((), allocations) = counted(|| {
        for _ in 0..100 {
            for (bytes, from) in &datagrams {
                feedback.keyframe_requests(bytes, Some(*from), &engine, &mut io, |s| {
                    asked[s.0 as usize] += 1
                });
            }
        }
    });
    assert_eq!(allocations, 0, "allocations while reading RTCP");
    assert_eq!(
        asked,
        [0, 600, 600],
        "a PLI and two FIR entries per datagram"
    );
    assert_eq!(io.keyframe_requests, 1200);
}

//! A track whose destination moves while it is live (`Shard::set_destination`, a WebRTC viewer
//! that ICE moved to a new address): every copy from the next packet on goes to the new address,
//! its stream goes on without a gap or a repeat, the other tracks are untouched, and its RTCP is
//! taken from the new address only. Virtual time throughout.

use std::net::SocketAddr;

use corecast_engine::rtcp::{self, PLI_LEN};
use corecast_engine::synth::{VideoShape, Vp8Stream};
use corecast_engine::{
    Codec, ControlError, Nanos, RtpTime, SeqNo, Shard, ShardEvent, SourceId, SourceIngress, Ssrc,
    TrackConfig, TrackId, TransmitBatch,
};

const CAM: SourceId = SourceId(1);
const MOVER: TrackId = TrackId(1);
const STAYER: TrackId = TrackId(2);

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn track(id: TrackId, ssrc: u32, dest: &str) -> TrackConfig {
    TrackConfig {
        id,
        dest: addr(dest),
        ssrc: Ssrc(ssrc),
        payload_type: 96,
        first_seq: SeqNo(65_530),
        first_ts: RtpTime(1),
    }
}

/// One copy as the shard handed it out: the track, where it goes, its output sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Copy {
    track: TrackId,
    dest: SocketAddr,
    seq: u16,
}

/// A VP8 source feeding a shard, collecting every copy.
struct Feed {
    ingress: SourceIngress,
    stream: Vp8Stream,
    buf: Vec<u8>,
    batch: TransmitBatch,
    now: Nanos,
}

impl Feed {
    fn new() -> Feed {
        let shape = VideoShape {
            gop: 10,
            ..VideoShape::default()
        };
        Feed {
            ingress: SourceIngress::new(CAM, Codec::Vp8, 90_000),
            stream: Vp8Stream::new(Ssrc(7), 100, 0, shape),
            buf: Vec::new(),
            batch: TransmitBatch::with_capacity(4),
            now: Nanos::ZERO,
        }
    }

    /// `n` packets into `shard`; the copies they made, in order.
    fn send(&mut self, shard: &mut Shard, n: usize) -> Vec<Copy> {
        let mut copies = Vec::new();
        for _ in 0..n {
            self.now = self.now.saturating_add(Nanos(3_000_000));
            self.buf.clear();
            self.stream.next_packet(&mut self.buf);
            let (batch, now) = (&mut self.batch, self.now);
            let r = self.ingress.ingest(&self.buf, None, now, |pkt, bytes, _| {
                let mut fan = shard.fan_out(pkt, bytes, now);
                while fan.fill(batch) > 0 {
                    for t in batch.as_slice() {
                        copies.push(Copy {
                            track: t.track,
                            dest: t.dest,
                            seq: u16::from_be_bytes([t.head[2], t.head[3]]),
                        });
                    }
                    batch.clear();
                }
            });
            assert!(r.is_ok(), "the source takes its stream: {r:?}");
        }
        copies
    }
}

fn of(copies: &[Copy], track: TrackId) -> Vec<Copy> {
    copies
        .iter()
        .copied()
        .filter(|c| c.track == track)
        .collect()
}

fn pli(media: u32) -> Vec<u8> {
    let mut out = [0u8; PLI_LEN];
    rtcp::write_pli(&mut out, Ssrc(0xfeed), Ssrc(media));
    out.to_vec()
}

fn keyframes_wanted(shard: &mut Shard) -> usize {
    std::iter::from_fn(|| shard.poll_event())
        .filter(|e| matches!(e, ShardEvent::KeyframeWanted { .. }))
        .count()
}

#[test]
fn a_moved_track_sends_every_later_copy_to_its_new_address_with_none_lost_or_doubled() {
    let (old, new, other) = ("127.0.0.1:5000", "127.0.0.1:6000", "127.0.0.1:7000");
    let mut shard = Shard::default();
    shard.add_source(CAM, Codec::Vp8).unwrap();
    shard.add_track(track(MOVER, 100, old), CAM).unwrap();
    shard.add_track(track(STAYER, 200, other), CAM).unwrap();
    let mut feed = Feed::new();
    let before = feed.send(&mut shard, 40);
    assert!(
        of(&before, MOVER).len() > 10,
        "the track is live before it moves"
    );

    assert_eq!(shard.set_destination(MOVER, addr(new)), Ok(addr(old)));
    let after = feed.send(&mut shard, 40);

    let mover_before = of(&before, MOVER);
    let mover_after = of(&after, MOVER);
    assert!(mover_before.iter().all(|c| c.dest == addr(old)));
    assert_eq!(mover_after.len(), 40, "every packet after the move is sent");
    assert!(
        mover_after.iter().all(|c| c.dest == addr(new)),
        "none goes to the old address: {mover_after:?}"
    );
    // One stream across the move: each sequence number one past the last, through the wrap.
    let seqs: Vec<u16> = mover_before
        .iter()
        .chain(&mover_after)
        .map(|c| c.seq)
        .collect();
    for w in seqs.windows(2) {
        assert_eq!(w[1], w[0].wrapping_add(1), "{seqs:?}");
    }
    // The other track neither moved nor lost anything.
    assert!(of(&after, STAYER).iter().all(|c| c.dest == addr(other)));
    assert_eq!(of(&after, STAYER).len(), 40);
    let info = shard.track(MOVER).unwrap();
    assert_eq!(info.dest, addr(new));
    assert_eq!(info.counters.packets as usize, seqs.len());
}

#[test]
fn a_moved_tracks_rtcp_is_taken_from_its_new_address_only() {
    let (old, new) = ("127.0.0.1:5000", "127.0.0.1:6000");
    let mut shard = Shard::default();
    shard.add_source(CAM, Codec::Vp8).unwrap();
    shard.add_track(track(MOVER, 100, old), CAM).unwrap();
    shard.handle_rtcp(&pli(100), Some(addr(old)), Nanos::ZERO);
    assert_eq!(keyframes_wanted(&mut shard), 1, "taken from where it is");

    shard.set_destination(MOVER, addr(new)).unwrap();
    // A keyframe interval later, so that a taken request would queue a new wish.
    let later = Nanos(10_000_000_000);
    shard.handle_rtcp(&pli(100), Some(addr(old)), later);
    assert_eq!(
        keyframes_wanted(&mut shard),
        0,
        "the old address no longer speaks"
    );
    assert_eq!(shard.counters().rtcp_wrong_sender, 1);
    shard.handle_rtcp(&pli(100), Some(addr(new)), later);
    assert_eq!(keyframes_wanted(&mut shard), 1, "the new one does");
    assert_eq!(shard.counters().keyframe_requests, 2);
}

#[test]
fn moving_a_track_the_shard_does_not_have_is_refused() {
    let mut shard = Shard::default();
    assert_eq!(
        shard.set_destination(TrackId(9), addr("127.0.0.1:1")),
        Err(ControlError::UnknownTrack(TrackId(9)))
    );
}

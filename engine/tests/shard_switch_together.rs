//! Two tracks switched together (a viewer's video and audio, `Shard::switch_together`): the
//! follower (audio, whose every packet is a switch point) moves only once the lead (video) has
//! moved at its new source's keyframe, at the new audio source's next packet; a lead that
//! never finds its keyframe keeps the follower where it is, both timing out together.

use corecast_engine::synth::{OpusStream, VideoShape, Vp8Stream};
use corecast_engine::{
    Codec, Nanos, RtpTime, SeqNo, Shard, ShardEvent, SourceId, SourceIngress, Ssrc, SwitchOutcome,
    TrackConfig, TrackId, TransmitBatch,
};

const CAM_A: SourceId = SourceId(1);
const CAM_B: SourceId = SourceId(2);
const MIC_A: SourceId = SourceId(3);
const MIC_B: SourceId = SourceId(4);
const VIDEO: TrackId = TrackId(10);
const AUDIO: TrackId = TrackId(11);

enum Stream {
    Video(Vp8Stream),
    Audio(OpusStream),
}

/// A source's ingress and stream, handing its packets to the shard.
struct Feed {
    id: SourceId,
    ingress: SourceIngress,
    stream: Stream,
    buf: Vec<u8>,
}

impl Feed {
    fn video(id: SourceId, gop: u32) -> Feed {
        let shape = VideoShape {
            gop,
            ..VideoShape::default()
        };
        Feed {
            id,
            ingress: SourceIngress::new(id, Codec::Vp8, 90_000),
            stream: Stream::Video(Vp8Stream::new(Ssrc(id.0), 1, 0, shape)),
            buf: Vec::new(),
        }
    }

    fn audio(id: SourceId) -> Feed {
        Feed {
            id,
            ingress: SourceIngress::new(id, Codec::Opus, 48_000),
            stream: Stream::Audio(OpusStream::new(Ssrc(id.0), 1, 0)),
            buf: Vec::new(),
        }
    }

    /// One packet (for video, a whole frame) into the shard at `now`; whether it was (or
    /// opened with) a keyframe.
    fn send(&mut self, shard: &mut Shard, now: Nanos) -> bool {
        let mut keyframe = false;
        let mut batch = TransmitBatch::with_capacity(8);
        loop {
            self.buf.clear();
            let p = match &mut self.stream {
                Stream::Video(s) => s.next_packet(&mut self.buf),
                Stream::Audio(s) => s.next_packet(&mut self.buf),
            };
            keyframe |= p.keyframe && p.frame_start;
            let r = self.ingress.ingest(&self.buf, None, now, |pkt, bytes, _| {
                let mut fan = shard.fan_out(pkt, bytes, now);
                while fan.fill(&mut batch) > 0 {
                    batch.clear();
                }
            });
            assert!(r.is_ok(), "source {:?} takes its stream: {r:?}", self.id);
            if p.marker || matches!(self.stream, Stream::Audio(_)) {
                return keyframe;
            }
        }
    }
}

fn track(id: TrackId, ssrc: u32, payload_type: u8) -> TrackConfig {
    TrackConfig {
        id,
        dest: "127.0.0.1:5000".parse().unwrap(),
        ssrc: Ssrc(ssrc),
        payload_type,
        first_seq: SeqNo(1),
        first_ts: RtpTime(1),
    }
}

fn applied(shard: &mut Shard) -> Vec<(TrackId, SourceId)> {
    std::iter::from_fn(|| shard.poll_event())
        .filter_map(|e| match e {
            ShardEvent::SwitchApplied { track, to, .. } => Some((track, to)),
            _ => None,
        })
        .collect()
}

/// A shard with a viewer's video on CAM_A and audio on MIC_A, both live, and the four feeds.
fn viewer_on_a(gop_b: u32) -> (Shard, [Feed; 4], Nanos) {
    let mut shard = Shard::default();
    for (id, codec) in [
        (CAM_A, Codec::Vp8),
        (CAM_B, Codec::Vp8),
        (MIC_A, Codec::Opus),
        (MIC_B, Codec::Opus),
    ] {
        shard.add_source(id, codec).unwrap();
    }
    shard.add_track(track(VIDEO, 0x10, 96), CAM_A).unwrap();
    shard.add_track(track(AUDIO, 0x11, 111), MIC_A).unwrap();
    let mut feeds = [
        Feed::video(CAM_A, 30),
        Feed::video(CAM_B, gop_b),
        Feed::audio(MIC_A),
        Feed::audio(MIC_B),
    ];
    let mut now = Nanos::ZERO;
    // A keyframe of each camera first, so both tracks go live.
    for _ in 0..3 {
        now = now.saturating_add(Nanos(20_000_000));
        for f in feeds.iter_mut() {
            f.send(&mut shard, now);
        }
    }
    assert!(shard.track(VIDEO).unwrap().live && shard.track(AUDIO).unwrap().live);
    applied(&mut shard);
    (shard, feeds, now)
}

#[test]
fn the_audio_moves_with_the_video_not_before() {
    let (mut shard, mut feeds, mut now) = viewer_on_a(10);
    let outcome = shard
        .switch_together((VIDEO, CAM_B), (AUDIO, MIC_B), now)
        .unwrap();
    assert_eq!(outcome, (SwitchOutcome::Pending, SwitchOutcome::Pending));
    let mut video_at = None;
    for step in 0..40 {
        now = now.saturating_add(Nanos(20_000_000));
        // MIC_B's packets come first each step: alone they would switch the audio at once.
        feeds[3].send(&mut shard, now);
        if let Some(&(track, to)) = applied(&mut shard).first() {
            assert_eq!((track, to), (AUDIO, MIC_B));
            assert_eq!(
                video_at,
                Some(step - 1),
                "audio right after the video, not before"
            );
            return;
        }
        let keyframe = feeds[1].send(&mut shard, now);
        feeds[0].send(&mut shard, now);
        feeds[2].send(&mut shard, now);
        let moved = applied(&mut shard);
        if keyframe {
            assert_eq!(moved, [(VIDEO, CAM_B)], "video at CAM_B's keyframe");
            video_at = Some(step);
        } else {
            assert!(
                moved.is_empty(),
                "nothing before CAM_B's keyframe: {moved:?}"
            );
        }
    }
    panic!("the audio never followed the video");
}

#[test]
fn a_lead_that_times_out_keeps_its_follower_where_it_is() {
    // CAM_B's keyframes are 10 s apart: the switch times out first.
    let (mut shard, mut feeds, mut now) = viewer_on_a(500);
    shard.set_switch_timeout(Nanos(200_000_000));
    shard
        .switch_together((VIDEO, CAM_B), (AUDIO, MIC_B), now)
        .unwrap();
    let mut timed_out = Vec::new();
    for _ in 0..20 {
        now = now.saturating_add(Nanos(20_000_000));
        for f in feeds.iter_mut() {
            f.send(&mut shard, now);
        }
        if shard.poll_timeout().is_some_and(|at| at <= now) {
            shard.handle_timeout(now);
        }
        for e in std::iter::from_fn(|| shard.poll_event()) {
            match e {
                ShardEvent::SwitchApplied { track, .. } => panic!("{track:?} switched alone"),
                ShardEvent::SwitchTimedOut { track, .. } => timed_out.push(track),
                _ => {}
            }
        }
    }
    timed_out.sort();
    assert_eq!(timed_out, [VIDEO, AUDIO]);
    assert_eq!(shard.track(AUDIO).unwrap().source, Some(MIC_A));
    assert_eq!(shard.track(VIDEO).unwrap().source, Some(CAM_A));
}

#[test]
fn switching_together_checks_both_before_changing_either() {
    let (mut shard, _, now) = viewer_on_a(10);
    // The audio track cannot take a video source: nothing changes.
    let refused = shard.switch_together((VIDEO, CAM_B), (AUDIO, CAM_B), now);
    assert!(refused.is_err());
    assert_eq!(shard.track(VIDEO).unwrap().pending, None);
}

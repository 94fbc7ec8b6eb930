//! Lip sync through the sources' own sender reports, over virtual time: a viewer's video and
//! audio tracks get sender reports whose NTP↔RTP pairs are their sources' (moved on to the
//! report's instant, the RTP side in the viewer's own timestamps), so a capture instant has the
//! same NTP time on both tracks as the encoder said, however differently the two streams are
//! delayed on the way; across a switch to a channel whose sender has another NTP base too. Without
//! source reports, and for a source that restarted, the node's wall clock mapping holds.
//!
//! "What the browser computes": for an output timestamp `ts` on a track whose last sender report
//! paired `ntp` with `rtp`, the NTP time of `ts` is `ntp + (ts - rtp) / rate` (RFC 3550 §6.4.1),
//! the difference taken modulo 2^32 as a signed 32-bit number.

use corecast_engine::rtcp::{self, NtpTime, RtcpPacket, SourceClock};
use corecast_engine::synth::{OpusStream, VideoShape, Vp8Stream};
use corecast_engine::{
    Codec, Nanos, RtpTime, SeqNo, Shard, ShardEvent, SourceId, SourceIngress, Ssrc, TrackConfig,
    TrackId, TransmitBatch,
};

const CAM_A: SourceId = SourceId(1);
const MIC_A: SourceId = SourceId(2);
const CAM_B: SourceId = SourceId(3);
const MIC_B: SourceId = SourceId(4);
const VIDEO: TrackId = TrackId(10);
const AUDIO: TrackId = TrackId(11);
/// Seconds from 1900 to the encoders' "now" at capture time 0: channel A's sender, and channel
/// B's, whose wall clock is 1,000 s off (another machine).
const NTP_A: u64 = 3_900_000_000;
const NTP_B: u64 = NTP_A + 1_000;
/// The node's wall clock at virtual time 0, far from both senders', so a report on the wrong
/// clock shows.
const NODE_NTP: u64 = 3_800_000_000;
/// Video spends 150 ms from capture to the node, audio 50 ms: audio arrives 100 ms ahead.
const VIDEO_DELAY: Nanos = Nanos::from_millis(150);
const AUDIO_DELAY: Nanos = Nanos::from_millis(50);

fn ntp_of_secs(secs_ns: u128) -> NtpTime {
    let secs = secs_ns / 1_000_000_000;
    let frac = ((secs_ns % 1_000_000_000) << 32) / 1_000_000_000;
    NtpTime(((secs as u64) << 32) | frac as u64)
}

/// NTP time as nanoseconds since 1900 (exact enough for comparing to a microsecond).
fn ntp_nanos(ntp: NtpTime) -> i128 {
    let secs = i128::from(ntp.0 >> 32);
    let frac = i128::from(ntp.0 & 0xffff_ffff);
    secs * 1_000_000_000 + ((frac * 1_000_000_000) >> 32)
}

enum Stream {
    Video(Vp8Stream),
    Audio(OpusStream),
}

/// One encoder output: a source's stream, captured on the sender's clock (capture time 0 is
/// `ntp_base` seconds on its wall clock, and RTP `first_ts`), arriving `delay` after capture.
struct Feed {
    id: SourceId,
    ingress: SourceIngress,
    stream: Stream,
    ssrc: Ssrc,
    first_ts: u32,
    rate: u32,
    ntp_base: u64,
    delay: Nanos,
    /// Capture time of the next packet (frame), from the stream's start.
    next_capture: Nanos,
    buf: Vec<u8>,
}

impl Feed {
    fn video(id: SourceId, first_ts: u32, ntp_base: u64) -> Feed {
        let shape = VideoShape {
            gop: 15,
            ..VideoShape::default()
        };
        let ssrc = Ssrc(0x100 + id.0);
        Feed {
            id,
            ingress: SourceIngress::new(id, Codec::Vp8, 90_000),
            stream: Stream::Video(Vp8Stream::new(ssrc, 1, first_ts, shape)),
            ssrc,
            first_ts,
            rate: 90_000,
            ntp_base,
            delay: VIDEO_DELAY,
            next_capture: Nanos::ZERO,
            buf: Vec::new(),
        }
    }

    fn audio(id: SourceId, first_ts: u32, ntp_base: u64) -> Feed {
        let ssrc = Ssrc(0x100 + id.0);
        Feed {
            id,
            ingress: SourceIngress::new(id, Codec::Opus, 48_000),
            stream: Stream::Audio(OpusStream::new(ssrc, 1, first_ts)),
            ssrc,
            first_ts,
            rate: 48_000,
            ntp_base,
            delay: AUDIO_DELAY,
            next_capture: Nanos::ZERO,
            buf: Vec::new(),
        }
    }

    /// Capture time between two packets (video: frames).
    fn step(&self) -> Nanos {
        match self.stream {
            Stream::Video(_) => Nanos(1_000_000_000 / 30),
            Stream::Audio(_) => Nanos::from_millis(20),
        }
    }

    /// The RTP timestamp the sender gives capture time `capture` (as its packets carry it:
    /// rounded, since a 30 fps frame time is not a whole number of nanoseconds).
    fn rtp_at(&self, capture: Nanos) -> RtpTime {
        let ticks = (u128::from(capture.0) * u128::from(self.rate) + 500_000_000) / 1_000_000_000;
        RtpTime(self.first_ts.wrapping_add(ticks as u32))
    }

    /// The sender's wall clock at capture time `capture`, in NTP nanoseconds.
    fn ntp_nanos_at(&self, capture: Nanos) -> i128 {
        i128::from(self.ntp_base) * 1_000_000_000 + i128::from(capture.0)
    }

    /// Deliver every packet captured up to `now - delay` to the shard; returns the source and
    /// output timestamps of the last copy each track was sent.
    fn run_until(&mut self, shard: &mut Shard, now: Nanos, seen: &mut Seen) {
        let mut batch = TransmitBatch::with_capacity(16);
        while self.next_capture.saturating_add(self.delay) <= now {
            let arrival = self.next_capture.saturating_add(self.delay);
            loop {
                self.buf.clear();
                let p = match &mut self.stream {
                    Stream::Video(s) => s.next_packet(&mut self.buf),
                    Stream::Audio(s) => s.next_packet(&mut self.buf),
                };
                let r = self
                    .ingress
                    .ingest(&self.buf, None, arrival, |pkt, bytes, _| {
                        let mut fan = shard.fan_out(pkt, bytes, arrival);
                        while fan.fill(&mut batch) > 0 {
                            for t in batch.as_slice() {
                                let h = &t.head;
                                let out = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
                                seen.note(t.track, pkt.source, pkt.timestamp.wire(), RtpTime(out));
                            }
                            batch.clear();
                        }
                    });
                assert!(r.is_ok(), "{:?} takes its stream: {r:?}", self.id);
                if p.marker || matches!(self.stream, Stream::Audio(_)) {
                    break;
                }
            }
            self.next_capture = self.next_capture.saturating_add(self.step());
        }
    }

    /// The sender report the encoder writes at capture time `capture`, as the shard is handed it
    /// (parsed from the wire by ingest's own function), arriving `delay` later.
    fn sender_report(&self, capture: Nanos) -> SourceClock {
        let mut bytes = [0u8; 28];
        let ntp_ns = self.ntp_nanos_at(capture) as u128;
        rtcp::write_sender_report(
            &mut bytes,
            self.ssrc,
            ntp_of_secs(ntp_ns),
            self.rtp_at(capture).0,
            0,
            0,
        );
        let (ntp, rtp) = rtcp::sender_report_of(&bytes, self.ssrc)
            .expect("a well-formed report")
            .expect("of the stream");
        SourceClock {
            ssrc: self.ssrc,
            epoch: self.ingress.epoch().expect("the stream has started"),
            ntp,
            rtp,
            at: capture.saturating_add(self.delay),
            clock_rate: self.rate,
        }
    }
}

/// Per track: the source and the (source ts, output ts) of its last copy.
#[derive(Default)]
struct Seen(Vec<(TrackId, SourceId, RtpTime, RtpTime)>);

impl Seen {
    fn note(&mut self, track: TrackId, source: SourceId, src: RtpTime, out: RtpTime) {
        self.0.retain(|e| e.0 != track);
        self.0.push((track, source, src, out));
    }

    /// The output timestamp `track` gives source timestamp `src` of `source` (the track's
    /// current offset, learned from its last copy).
    fn output_ts(&self, track: TrackId, source: SourceId, src: RtpTime) -> RtpTime {
        let &(_, on, last_src, last_out) = self.0.iter().find(|e| e.0 == track).unwrap();
        assert_eq!(on, source, "{track:?} is on {on:?}");
        RtpTime(src.0.wrapping_add(last_out.0.wrapping_sub(last_src.0)))
    }
}

fn track(id: TrackId, ssrc: u32, payload_type: u8) -> TrackConfig {
    TrackConfig {
        id,
        dest: "127.0.0.1:5000".parse().unwrap(),
        ssrc: Ssrc(ssrc),
        payload_type,
        first_seq: SeqNo(1),
        first_ts: RtpTime(0xffff_f000),
    }
}

/// The sender reports due at `now` (the node's wall clock given as `NODE_NTP + now`), parsed:
/// (track, NTP, RTP) per track.
fn reports(shard: &mut Shard, now: Nanos) -> Vec<(TrackId, NtpTime, RtpTime)> {
    let node_ntp = ntp_of_secs(u128::from(NODE_NTP) * 1_000_000_000 + u128::from(now.0));
    let mut out = Vec::new();
    shard.write_sender_reports(now, node_ntp, |id, _, bytes| {
        match rtcp::packets(bytes).next() {
            Some(Ok(RtcpPacket::SenderReport { ntp, rtp_ts, .. })) => out.push((id, ntp, rtp_ts)),
            other => panic!("not a sender report: {other:?}"),
        }
    });
    out.sort_by_key(|r| r.0);
    out
}

/// What the browser computes: the NTP time (ns since 1900) of output timestamp `ts` on a
/// track whose report paired `ntp` with `rtp`.
fn browser_ntp(report: (NtpTime, RtpTime), ts: RtpTime, rate: u32) -> i128 {
    let (ntp, rtp) = report;
    let ticks = i128::from(ts.0.wrapping_sub(rtp.0) as i32);
    ntp_nanos(ntp) + ticks * 1_000_000_000 / i128::from(rate)
}

struct World {
    shard: Shard,
    feeds: Vec<Feed>,
    seen: Seen,
    now: Nanos,
}

impl World {
    /// A viewer's video on CAM_A and audio on MIC_A (channel A), with channel B's sources live
    /// too; sender reports on for both tracks.
    fn new() -> World {
        let mut shard = Shard::default();
        for (id, codec) in [
            (CAM_A, Codec::Vp8),
            (MIC_A, Codec::Opus),
            (CAM_B, Codec::Vp8),
            (MIC_B, Codec::Opus),
        ] {
            shard.add_source(id, codec).unwrap();
        }
        shard.add_track(track(VIDEO, 0x10, 96), CAM_A).unwrap();
        shard.add_track(track(AUDIO, 0x11, 111), MIC_A).unwrap();
        shard.set_sender_reports(VIDEO, true).unwrap();
        shard.set_sender_reports(AUDIO, true).unwrap();
        // Random-looking RTP bases, one just before the 32-bit wrap.
        let feeds = vec![
            Feed::video(CAM_A, 0xffff_0000, NTP_A),
            Feed::audio(MIC_A, 1_234_567, NTP_A),
            Feed::video(CAM_B, 77_000_000, NTP_B),
            Feed::audio(MIC_B, 0xfff0_0000, NTP_B),
        ];
        World {
            shard,
            feeds,
            seen: Seen::default(),
            now: Nanos::ZERO,
        }
    }

    fn feed(&self, id: SourceId) -> &Feed {
        self.feeds.iter().find(|f| f.id == id).unwrap()
    }

    fn run_until(&mut self, now: Nanos) {
        for f in &mut self.feeds {
            f.run_until(&mut self.shard, now, &mut self.seen);
        }
        self.now = now;
    }

    /// Each source's sender report written at capture time `capture`, handed to the shard.
    fn source_reports(&mut self, capture: Nanos) {
        for f in &self.feeds {
            let clock = f.sender_report(capture);
            assert!(clock.at <= self.now, "reports arrive in the past");
            self.shard.set_source_clock(f.id, Some(clock)).unwrap();
        }
    }

    /// The NTP time (ns) the viewer's browser gives capture instant `capture` on each track,
    /// from the reports due now: (video, audio).
    fn browser_view(&mut self, video: SourceId, audio: SourceId, capture: Nanos) -> (i128, i128) {
        let now = self.now;
        let r = reports(&mut self.shard, now);
        assert_eq!(r.iter().map(|r| r.0).collect::<Vec<_>>(), [VIDEO, AUDIO]);
        let (v, a) = (self.feed(video), self.feed(audio));
        let v_ts = self.seen.output_ts(VIDEO, video, v.rtp_at(capture));
        let a_ts = self.seen.output_ts(AUDIO, audio, a.rtp_at(capture));
        (
            browser_ntp((r[0].1, r[0].2), v_ts, 90_000),
            browser_ntp((r[1].1, r[1].2), a_ts, 48_000),
        )
    }
}

#[test]
fn a_capture_instant_has_the_senders_ntp_time_on_both_tracks() {
    let mut w = World::new();
    w.run_until(Nanos::from_millis(2_000));
    w.source_reports(Nanos::from_millis(1_500));
    // 700 ms after the reports arrived (the shard extrapolates), at capture time 1 s.
    w.run_until(Nanos::from_millis(2_400));
    let capture = Nanos::from_millis(1_000);
    let (video, audio) = w.browser_view(CAM_A, MIC_A, capture);
    let expected = w.feed(CAM_A).ntp_nanos_at(capture);
    // Rounding of 90 kHz and 48 kHz ticks and of NTP fractions: well under a millisecond.
    assert!(
        (video - expected).abs() < 50_000,
        "video {video} vs {expected}"
    );
    assert!(
        (audio - expected).abs() < 50_000,
        "audio {audio} vs {expected}"
    );
    assert!((video - audio).abs() < 50_000, "in sync: {}", video - audio);
}

#[test]
fn without_source_reports_the_node_clock_maps_arrival_times() {
    let mut w = World::new();
    w.run_until(Nanos::from_millis(2_000));
    let now = w.now;
    let r = reports(&mut w.shard, now);
    let node_ntp = ntp_of_secs(u128::from(NODE_NTP) * 1_000_000_000 + u128::from(now.0));
    assert!(r.iter().all(|&(_, ntp, _)| ntp == node_ntp), "{r:?}");
    // The old mapping: each track's last output timestamp moved on by the time since its
    // source's last packet, at the codec's rate.
    let (v, a) = (w.feed(CAM_A), w.feed(MIC_A));
    let last = |f: &Feed| f.next_capture.0 - f.step().0 + f.delay.0;
    let v_last = w
        .seen
        .output_ts(VIDEO, CAM_A, v.rtp_at(Nanos(v.next_capture.0 - v.step().0)));
    let a_last = w
        .seen
        .output_ts(AUDIO, MIC_A, a.rtp_at(Nanos(a.next_capture.0 - a.step().0)));
    let since = |f: &Feed| u128::from(now.0 - last(f)) * u128::from(f.rate) / 1_000_000_000;
    assert_eq!(r[0].2 .0, v_last.0.wrapping_add(since(v) as u32));
    assert_eq!(r[1].2 .0, a_last.0.wrapping_add(since(a) as u32));
    // So the browser puts the audio 100 ms ahead of the video captured with it: the delay
    // difference on the way, which the sources' reports take out.
    let capture = Nanos::from_millis(1_000);
    let v_ts = w.seen.output_ts(VIDEO, CAM_A, v.rtp_at(capture));
    let a_ts = w.seen.output_ts(AUDIO, MIC_A, a.rtp_at(capture));
    let skew =
        browser_ntp((r[0].1, r[0].2), v_ts, 90_000) - browser_ntp((r[1].1, r[1].2), a_ts, 48_000);
    assert!(
        (skew - 100_000_000).abs() < 35_000_000,
        "video after audio by about the delay difference: {skew} ns"
    );
}

#[test]
fn after_a_switch_both_tracks_follow_the_new_senders_clock() {
    let mut w = World::new();
    w.run_until(Nanos::from_millis(1_000));
    w.source_reports(Nanos::from_millis(600));
    let now = w.now;
    w.shard
        .switch_together((VIDEO, CAM_B), (AUDIO, MIC_B), now)
        .unwrap();
    // CAM_B's keyframes are every 0.5 s: both tracks have moved within a second.
    w.run_until(Nanos::from_millis(2_000));
    let moved: Vec<_> = std::iter::from_fn(|| w.shard.poll_event())
        .filter_map(|e| match e {
            ShardEvent::SwitchApplied { track, to, .. } => Some((track, to)),
            _ => None,
        })
        .collect();
    assert_eq!(moved, [(VIDEO, CAM_B), (AUDIO, MIC_B)]);
    // Channel B's reports (taken before the switch) carry its sender's clock, 1,000 s off.
    let capture = Nanos::from_millis(1_500);
    let (video, audio) = w.browser_view(CAM_B, MIC_B, capture);
    let expected = w.feed(CAM_B).ntp_nanos_at(capture);
    assert!(
        (video - expected).abs() < 50_000,
        "video {video} vs {expected}"
    );
    assert!(
        (audio - expected).abs() < 50_000,
        "audio {audio} vs {expected}"
    );
    // New reports of B later: still consistent.
    w.run_until(Nanos::from_millis(3_200));
    w.source_reports(Nanos::from_millis(2_900));
    let capture = Nanos::from_millis(2_500);
    let (video, audio) = w.browser_view(CAM_B, MIC_B, capture);
    assert!((video - audio).abs() < 50_000, "in sync: {}", video - audio);
    assert!((video - w.feed(CAM_B).ntp_nanos_at(capture)).abs() < 50_000);
}

#[test]
fn a_restarted_sender_is_not_mapped_through_its_old_stream_report() {
    let mut w = World::new();
    w.run_until(Nanos::from_millis(1_000));
    w.source_reports(Nanos::from_millis(800));
    // MIC_A's sender restarts: a new SSRC and RTP base after 400 ms of silence; once its
    // probation ends it is the source's new epoch, and the audio track re-anchors to it.
    let mic = w.feeds.iter_mut().find(|f| f.id == MIC_A).unwrap();
    let old_epoch = mic.ingress.epoch();
    mic.ssrc = Ssrc(0x999);
    mic.stream = Stream::Audio(OpusStream::new(mic.ssrc, 5_000, 42));
    mic.next_capture = Nanos::from_millis(1_400);
    mic.first_ts = 42u32.wrapping_sub(1_400 * 48);
    w.run_until(Nanos::from_millis(2_000));
    let mic = w.feed(MIC_A);
    assert_ne!(mic.ingress.epoch(), old_epoch, "the new stream took over");
    let now = w.now;
    let r = reports(&mut w.shard, now);
    let node_ntp = ntp_of_secs(u128::from(NODE_NTP) * 1_000_000_000 + u128::from(now.0));
    // The video still follows its sender's report; the audio, whose report was of the old
    // stream, falls back to the node's clock rather than pairing the new stream's timestamps
    // with the old stream's clock.
    assert_ne!(r[0].1, node_ntp, "video on its sender's clock");
    assert_eq!(
        r[1].1, node_ntp,
        "audio on the node's clock until its new stream reports"
    );
    // A report of the new stream puts it back on the sender's clock, in sync with the video.
    w.run_until(Nanos::from_millis(3_100));
    let clock = w.feed(MIC_A).sender_report(Nanos::from_millis(2_900));
    w.shard.set_source_clock(MIC_A, Some(clock)).unwrap();
    let capture = Nanos::from_millis(2_500);
    let (video, audio) = w.browser_view(CAM_A, MIC_A, capture);
    assert!((video - audio).abs() < 50_000, "in sync: {}", video - audio);
    // Forgetting a mapping, and an unknown source, are plain control calls.
    w.shard.set_source_clock(MIC_A, None).unwrap();
    assert!(w.shard.set_source_clock(SourceId(99), None).is_err());
}

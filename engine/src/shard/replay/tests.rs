//! Joins and switches replayed from the history, over virtual time: every source packet from
//! the keyframe on reaches the track once and in order, under one continuous numbering; the
//! replay's timestamps keep step with its sending, and the track is at live when it ends; a
//! switch waits for the old source's frame to end; resends of replayed packets are what was
//! sent; without a keyframe in the history the track waits for one, as without replay.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::*;
use crate::history::HistoryConfig;
use crate::rtcp::{write_nack, NACK_MAX_LEN};
use crate::source::SourceIngress;
use crate::synth::{VideoShape, Vp8Stream};
use crate::transmit::TransmitBatch;
use crate::types::{Codec, RtpTime, SeqNo, Ssrc};
use crate::{Layout, SwitchOutcome, TrackConfig};

const A: SourceId = SourceId(1);
const B: SourceId = SourceId(2);
const PACE: u32 = 4;
const FRAME: Nanos = Nanos(33_333_333);

fn dest(track: TrackId) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40_000 + track.0 as u16))
}

/// What a track's subscriber got, one packet.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Got {
    at: Nanos,
    seq: u16,
    ts: u32,
    /// The source packet it carried: source, sequence number, timestamp, marker.
    src: (SourceId, u16, u32, bool),
    replayed: bool,
    bytes: Vec<u8>,
}

struct Source {
    id: SourceId,
    stream: Vp8Stream,
    ingress: SourceIngress,
    next_frame: Nanos,
}

struct Rig {
    shard: Shard<Vec<u8>>,
    sources: Vec<Source>,
    now: Nanos,
    /// Each source packet by its payload's last bytes (the synthetic pattern names its source
    /// and number).
    by_tail: HashMap<Vec<u8>, (SourceId, u16, u32, bool)>,
    got: HashMap<TrackId, Vec<Got>>,
    batch: TransmitBatch,
}

fn tail(bytes: &[u8]) -> Vec<u8> {
    bytes[bytes.len() - 24..].to_vec()
}

impl Rig {
    fn new(span: Nanos) -> Rig {
        let mut shard = Shard::with_handles(Layout::Grouped);
        shard.keep_history(Some(HistoryConfig {
            span,
            max_packets: 4_000,
        }));
        let shape = VideoShape::default(); // 30 fps, a keyframe every 30 frames
        let sources = [A, B]
            .into_iter()
            .map(|id| {
                shard.add_source(id, Codec::Vp8).unwrap();
                Source {
                    id,
                    stream: Vp8Stream::new(Ssrc(id.0), 65_000, 0, shape),
                    ingress: SourceIngress::new(id, Codec::Vp8, 90_000),
                    // B's frames fall between A's.
                    next_frame: Nanos(u64::from(id.0) * 7_000_000),
                }
            })
            .collect();
        shard
            .set_join(B, JoinPolicy::Replay { pace: PACE })
            .unwrap();
        Rig {
            shard,
            sources,
            now: Nanos::ZERO,
            by_tail: HashMap::new(),
            got: HashMap::new(),
            batch: TransmitBatch::with_capacity(8),
        }
    }

    fn add(&mut self, id: TrackId, on: SourceId) {
        self.shard
            .add_track(
                TrackConfig {
                    id,
                    dest: dest(id),
                    ssrc: Ssrc(0x1000 + id.0),
                    payload_type: 96,
                    first_seq: SeqNo(65_500),
                    first_ts: RtpTime(u32::MAX - 50_000),
                },
                on,
            )
            .unwrap();
        self.got.insert(id, Vec::new());
    }

    /// Note a copy the track's subscriber got (VP8 has no preludes: every copy is a packet).
    fn record(&mut self, t: &Transmit, bytes: Vec<u8>, replayed: bool) {
        assert!(!t.prelude, "a VP8 stream has no preludes");
        let src = self.by_tail[&tail(&bytes)];
        let got = Got {
            at: self.now,
            seq: u16::from_be_bytes([bytes[2], bytes[3]]),
            ts: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            src,
            replayed,
            bytes,
        };
        self.got.get_mut(&t.track).unwrap().push(got);
    }

    /// One packet of source `i`, fanned out and kept.
    fn emit(&mut self, i: usize) -> crate::synth::SynthPacket {
        let mut buf = Vec::new();
        let s = &mut self.sources[i];
        let synth = s.stream.next_packet(&mut buf);
        let pkt = s.ingress.accept(&buf, None, self.now).unwrap().unwrap();
        self.by_tail.insert(
            tail(&buf),
            (s.id, synth.seq.0, synth.timestamp.0, synth.marker),
        );
        let mut out = Vec::new();
        let mut fan_out = self.shard.fan_out(&pkt, &buf, self.now);
        while fan_out.fill(&mut self.batch) > 0 {
            for t in self.batch.as_slice() {
                out.push((*t, t.to_vec(&pkt, &buf)));
            }
            self.batch.clear();
        }
        for (t, bytes) in out {
            self.record(&t, bytes, false);
        }
        self.shard.remember(&pkt, buf);
        synth
    }

    /// Send what replays have due now.
    fn replays(&mut self) {
        let mut out = Vec::new();
        while let Some(r) = self.shard.poll_replay(self.now) {
            if let Some(p) = r.prelude {
                out.push((p, p.to_vec(r.pkt, r.handle)));
            }
            out.push((r.transmit, r.transmit.to_vec(r.pkt, r.handle)));
        }
        for (t, bytes) in out {
            self.record(&t, bytes, true);
        }
    }

    /// Advance 1 ms at a time for `ms`: each source sends its frames when due, packets back to
    /// back, and replays send what is due.
    fn run(&mut self, ms: u64) {
        for _ in 0..ms {
            self.now = self.now.saturating_add(Nanos::from_millis(1));
            for i in 0..self.sources.len() {
                if self.now >= self.sources[i].next_frame {
                    self.sources[i].next_frame = self.sources[i].next_frame.saturating_add(FRAME);
                    while !self.emit(i).marker {}
                }
            }
            self.replays();
        }
    }

    /// A NACK from `t`'s subscriber for the numbers of `asked`; the resends, as sent.
    fn nack(&mut self, t: TrackId, asked: &[Got]) -> Vec<Vec<u8>> {
        let mut nack = [0u8; NACK_MAX_LEN];
        let seqs = asked.iter().map(|g| SeqNo(g.seq));
        let n = write_nack(&mut nack, Ssrc(7), Ssrc(0x1001), seqs).unwrap();
        self.shard.handle_rtcp(&nack[..n], Some(dest(t)), self.now);
        let mut resent = Vec::new();
        while let Some(r) = self.shard.poll_resend() {
            resent.push(r.transmit.to_vec(r.pkt, r.handle));
        }
        resent
    }

    fn got(&self, id: TrackId) -> &[Got] {
        &self.got[&id]
    }
}

/// Output numbers go up by one, every one used once; the source packets of each source come
/// in order with none missing between the first and last of that source.
fn assert_continuous(got: &[Got]) {
    for w in got.windows(2) {
        assert_eq!(
            w[1].seq,
            w[0].seq.wrapping_add(1),
            "{:?} then {:?}",
            w[0].src,
            w[1].src
        );
        if w[0].src.0 == w[1].src.0 {
            assert_eq!(
                w[1].src.1,
                w[0].src.1.wrapping_add(1),
                "a source packet missed"
            );
        }
    }
}

#[test]
fn a_join_replays_from_the_last_keyframe_at_once_and_reaches_live() {
    let mut rig = Rig::new(Nanos::from_millis(2_000));
    let t = TrackId(1);
    rig.add(TrackId(9), B); // someone already watches B: its history is being kept
    rig.run(1_500);
    rig.add(t, B);
    let joined = rig.now;
    assert!(rig.shard.track(t).unwrap().replaying);
    rig.run(1_500);

    let got = rig.got(t).to_vec();
    // At once: the first packet is the keyframe of B at 1 s (the history's newest), sent at
    // the first poll after the join.
    let first = &got[0];
    assert_eq!(first.at, joined.saturating_add(Nanos::from_millis(1)));
    let key_ts = 90_000; // frame 30: one second of 90 kHz
    assert_eq!((first.src.0, first.src.2), (B, key_ts));
    assert!(first.replayed);
    assert_continuous(&got);
    // It reached live: the last packets came from the fan-out.
    let replayed = got.iter().filter(|g| g.replayed).count();
    assert!(replayed > 0 && !got.last().unwrap().replayed);
    assert!(
        got[replayed..].iter().all(|g| !g.replayed),
        "live, then no replay"
    );
    let c = *rig.shard.replay_counters();
    assert_eq!((c.started, c.finished, c.packets), (1, 1, replayed as u64));
    assert_eq!(c.skipped, 0);
    let info = rig.shard.track(t).unwrap();
    assert!(info.live && !info.replaying && info.source == Some(B));

    // Timestamps: compressed PACE times while replaying, the source's own steps after.
    for w in got.windows(2) {
        let src_step = w[1].src.2.wrapping_sub(w[0].src.2);
        let out_step = w[1].ts.wrapping_sub(w[0].ts);
        if w[1].replayed {
            assert_eq!(out_step, src_step / PACE, "{:?}", w[1].src);
        } else if !w[0].replayed {
            assert_eq!(out_step, src_step);
        }
    }
    // In step with the sending: a player that schedules by timestamps is at live at the end.
    let lag = |g: &Got| {
        let sent = g.at.saturating_since(first.at).0 as f64 / 1e9;
        let played = g.ts.wrapping_sub(first.ts) as f64 / 90_000.0;
        sent - played
    };
    let end = lag(got.last().unwrap());
    eprintln!("replayed {replayed} of {}, lag {end}", got.len());
    assert!(end.abs() < 0.040, "{end} s behind live");
    // The catch-up took about age / (pace - 1): the keyframe was 0.5 s old.
    let caught_up = got[replayed - 1].at.saturating_since(joined).0 as f64 / 1e9;
    assert!(
        caught_up > 0.12 && caught_up < 0.25,
        "caught up after {caught_up} s"
    );
}

#[test]
fn a_switch_waits_for_the_old_frame_to_end_then_replays_the_new_source() {
    let mut rig = Rig::new(Nanos::from_millis(2_000));
    let t = TrackId(1);
    rig.add(t, A);
    rig.add(TrackId(9), B);
    rig.run(1_400);
    // Mid-frame of A: its frame's first packet only.
    rig.now = rig.sources[0].next_frame;
    rig.sources[0].next_frame = rig.sources[0].next_frame.saturating_add(FRAME);
    assert!(!rig.emit(0).marker);
    assert_eq!(rig.shard.switch(t, B, rig.now), Ok(SwitchOutcome::Pending));
    assert_eq!(rig.shard.track(t).unwrap().pending, Some(B));
    rig.replays();
    assert!(
        rig.got(t).iter().all(|g| g.src.0 == A),
        "nothing of B mid-frame"
    );
    while !rig.emit(0).marker {}
    rig.replays();
    let events: Vec<ShardEvent> = std::iter::from_fn(|| rig.shard.poll_event()).collect();
    assert!(events.contains(&ShardEvent::SwitchApplied {
        track: t,
        from: Some(A),
        to: B
    }));
    rig.run(1_000);

    let got = rig.got(t).to_vec();
    assert_continuous(&got);
    let at = got.iter().position(|g| g.src.0 == B).unwrap();
    assert!(got[at - 1].src.3, "A's last frame was whole");
    assert!(
        got[at].replayed && got[at].src.2 == 90_000,
        "B's keyframe at 1 s"
    );
    assert!(got[at].ts.wrapping_sub(got[at - 1].ts) > 0, "time goes on");
    assert!(got[at..].iter().all(|g| g.src.0 == B));
    assert!(!got.last().unwrap().replayed);
    assert_eq!(rig.shard.counters().switches, 1);
}

#[test]
fn a_resend_of_a_replayed_packet_is_what_was_sent() {
    let mut rig = Rig::new(Nanos::from_millis(2_000));
    let t = TrackId(1);
    rig.add(TrackId(9), B);
    rig.run(1_700);
    rig.add(t, B);
    rig.shard.set_repair(t, true).unwrap();
    rig.run(1_000);
    let got = rig.got(t).to_vec();
    let replayed = got.iter().filter(|g| g.replayed).count();
    let asked = [
        got[1].clone(),
        got[replayed - 1].clone(),
        got[replayed + 5].clone(),
    ];
    let resent = rig.nack(t, &asked);
    let want: Vec<Vec<u8>> = asked.iter().map(|g| g.bytes.clone()).collect();
    assert_eq!(resent, want);
}

/// Found by the `shard` fuzz target: repair turned on after a join's replay had ended resent a
/// replayed packet with the timestamp of the mapping retimed to live, one frame off what the
/// replay sent. What a track sent before its repair was on is now not resent at all.
#[test]
fn repair_turned_on_after_a_replay_resends_only_what_follows() {
    let mut rig = Rig::new(Nanos::from_millis(2_000));
    let t = TrackId(1);
    rig.add(TrackId(9), B);
    rig.run(1_700);
    rig.add(t, B);
    rig.run(1_000);
    let before = rig.got(t).len();
    let replayed = rig.got(t).iter().filter(|g| g.replayed).count();
    assert!(
        replayed > 0 && before > replayed,
        "the join replayed, then went live"
    );
    rig.shard.set_repair(t, true).unwrap();
    rig.run(200);
    let got = rig.got(t).to_vec();
    let asked = [
        got[1].clone(),
        got[before - 1].clone(),
        got[before + 3].clone(),
    ];
    let resent = rig.nack(t, &asked);
    assert_eq!(
        resent,
        [asked[2].bytes.clone()],
        "only what followed repair-on"
    );
    let repair = rig.shard.track_repair(t).unwrap();
    assert_eq!((repair.requested, repair.unknown), (3, 2));
}

#[test]
fn without_a_keyframe_in_the_history_a_join_waits_for_the_next() {
    // 300 ms of history: at 1.5 s, B's keyframe of 1 s is gone.
    let mut rig = Rig::new(Nanos::from_millis(300));
    let t = TrackId(1);
    rig.add(TrackId(9), B);
    rig.run(1_500);
    while rig.shard.poll_event().is_some() {}
    rig.add(t, B);
    rig.run(1);
    assert_eq!(
        rig.shard.poll_event(),
        Some(ShardEvent::KeyframeWanted { source: B })
    );
    // Track 9 too, when it joined before B had sent anything.
    assert_eq!(rig.shard.replay_counters().without_keyframe, 2);
    assert!(rig.got(t).is_empty());
    rig.run(600);
    let got = rig.got(t).to_vec();
    assert_eq!(got[0].src.2, 2 * 90_000, "B's keyframe at 2 s");
    assert!(got.iter().all(|g| !g.replayed));
    assert_continuous(&got);
}

#[test]
fn a_track_or_source_removed_mid_replay_ends_it() {
    let mut rig = Rig::new(Nanos::from_millis(2_000));
    rig.add(TrackId(9), B);
    rig.run(1_900);
    rig.add(TrackId(1), B);
    rig.add(TrackId(2), B);
    rig.run(5);
    assert!(rig.shard.replay_due().is_some());
    rig.shard.remove_track(TrackId(1)).unwrap();
    let before = rig.got(TrackId(1)).len();
    rig.run(5);
    assert_eq!(rig.got(TrackId(1)).len(), before);
    rig.shard.remove_source(B).unwrap();
    assert_eq!(rig.shard.replay_due(), None);
    let info = rig.shard.track(TrackId(2)).unwrap();
    assert_eq!((info.source, info.replaying), (None, false));
    rig.run(100);
    rig.shard.check_layout();
}

#[test]
fn a_pli_from_a_replaying_tracks_subscriber_wants_a_keyframe_of_the_replayed_source() {
    // Found by the shard fuzz target: a track parked for its replay reported the replayed
    // source as its own, but its subscriber's PLI was dropped uncounted.
    let mut rig = Rig::new(Nanos::from_millis(2_000));
    let t = TrackId(1);
    rig.add(TrackId(9), B);
    rig.run(1_500);
    rig.add(t, B);
    rig.run(1);
    let info = rig.shard.track(t).unwrap();
    assert!(info.replaying && info.source == Some(B));
    while rig.shard.poll_event().is_some() {}
    let mut pli = [0u8; crate::rtcp::PLI_LEN];
    crate::rtcp::write_pli(&mut pli, Ssrc(7), info.ssrc);
    let before = rig.shard.counters().keyframe_requests;
    rig.shard.handle_rtcp(&pli, Some(dest(t)), rig.now);
    assert_eq!(rig.shard.counters().keyframe_requests, before + 1);
    assert_eq!(
        rig.shard.poll_event(),
        Some(ShardEvent::KeyframeWanted { source: B })
    );
}

#[test]
fn a_switch_asked_again_while_the_track_still_leaves_its_source_is_pending() {
    // Found by the shard fuzz target: the second request answered `Unchanged` ("already on
    // that source") while the track was still sending A's frame, with B pending.
    let mut rig = Rig::new(Nanos::from_millis(2_000));
    let t = TrackId(1);
    rig.add(t, A);
    rig.add(TrackId(9), B);
    rig.run(1_400);
    rig.now = rig.sources[0].next_frame;
    rig.sources[0].next_frame = rig.sources[0].next_frame.saturating_add(FRAME);
    assert!(!rig.emit(0).marker);
    assert_eq!(rig.shard.switch(t, B, rig.now), Ok(SwitchOutcome::Pending));
    assert_eq!(rig.shard.switch(t, B, rig.now), Ok(SwitchOutcome::Pending));
    let info = rig.shard.track(t).unwrap();
    assert_eq!((info.source, info.pending), (Some(A), Some(B)));
    while !rig.emit(0).marker {}
    rig.replays();
    assert_eq!(
        rig.shard.switch(t, B, rig.now),
        Ok(SwitchOutcome::Unchanged)
    );
    let info = rig.shard.track(t).unwrap();
    assert!(info.replaying && (info.source, info.pending) == (Some(B), None));
}

#[test]
fn a_resend_of_an_earlier_replays_packet_after_another_replay_is_what_was_sent() {
    // The track replays B, takes A, and replays B again: a NACK of the first replay's packets
    // was answered with the timestamps of live B (the first replay's mapping, retimed when it
    // ended), not the compressed ones it sent, since only the latest replay was remembered.
    let mut rig = Rig::new(Nanos::from_millis(10_000));
    let t = TrackId(1);
    rig.add(TrackId(9), B);
    rig.run(1_700);
    rig.add(t, B);
    rig.shard.set_repair(t, true).unwrap();
    rig.run(1_000);
    let first: Vec<Got> = rig.got(t).iter().filter(|g| g.replayed).cloned().collect();
    assert!(first.len() > 3);
    rig.shard.switch(t, A, rig.now).unwrap();
    rig.run(1_200);
    assert_eq!(rig.shard.track(t).unwrap().source, Some(A));
    rig.shard.switch(t, B, rig.now).unwrap();
    rig.run(1_000);
    let got = rig.got(t).to_vec();
    assert!(
        got.iter().filter(|g| g.replayed).count() > first.len(),
        "replayed again"
    );
    // The first replay's packets, one after it, and the second replay's.
    let second = got.iter().rposition(|g| g.replayed).unwrap();
    let after = got
        .iter()
        .position(|g| g.seq == first.last().unwrap().seq)
        .unwrap()
        + 1;
    let asked = [
        first[1].clone(),
        first[first.len() - 2].clone(),
        got[after].clone(),
        got[second].clone(),
    ];
    let resent = rig.nack(t, &asked);
    let want: Vec<Vec<u8>> = asked.iter().map(|g| g.bytes.clone()).collect();
    assert_eq!(resent, want);
}

#[test]
fn a_replay_started_again_on_the_source_it_replayed_sends_no_number_twice() {
    // Found by the shard fuzz target: a track replaying B, switched to A and back before A's
    // replay started, replayed B's keyframe again through a splicer still anchored to B, under
    // the numbers it had sent B's packets with.
    let mut rig = Rig::new(Nanos::from_millis(2_000));
    rig.shard
        .set_join(A, JoinPolicy::Replay { pace: PACE })
        .unwrap();
    let t = TrackId(1);
    rig.add(TrackId(9), B);
    rig.run(1_500);
    rig.add(t, B);
    rig.run(20);
    let before = rig.got(t).len();
    assert!(before > 1 && rig.shard.track(t).unwrap().replaying);
    assert_eq!(rig.shard.switch(t, A, rig.now), Ok(SwitchOutcome::Moved));
    assert_eq!(rig.shard.switch(t, B, rig.now), Ok(SwitchOutcome::Moved));
    rig.run(1_000);
    let got = rig.got(t);
    assert!(got.len() > before && !got.last().unwrap().replayed);
    for w in got.windows(2) {
        assert_eq!(
            w[1].seq,
            w[0].seq.wrapping_add(1),
            "{:?} then {:?}",
            w[0].src,
            w[1].src
        );
    }
    // B's keyframe again, as a new start: the decoder gets a whole GOP.
    assert_eq!(got[before].src, got[0].src);
}

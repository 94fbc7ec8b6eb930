//! NACKs answered from the history over virtual time: what is resent is byte for byte what was
//! first sent, across switches; what the track never sent, or the history lost, or the budget
//! does not allow, is refused and counted.

use std::collections::HashMap;

use super::*;
use crate::rtcp::{write_nack, NACK_MAX_LEN};
use crate::source::SourceIngress;
use crate::splicer::RESOLVABLE_SPAN;
use crate::synth::{VideoShape, Vp8Stream};
use crate::transmit::TransmitBatch;
use crate::types::{Codec, RtpTime, SeqNo, SourceId};
use crate::{Layout, TrackConfig};

const TRACK: TrackId = TrackId(1);
const SSRC: Ssrc = Ssrc(0xfeed);

fn dest() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

struct Source {
    id: SourceId,
    stream: Vp8Stream,
    ingress: SourceIngress,
}

/// A shard keeping histories, one track with repair on, and the copies it sent by output
/// number.
struct Rig {
    shard: Shard<Vec<u8>>,
    sources: Vec<Source>,
    now: Nanos,
    sent: HashMap<u16, Vec<u8>>,
    batch: TransmitBatch,
}

impl Rig {
    fn new(first_seq: u16) -> Rig {
        Rig::keeping(
            first_seq,
            HistoryConfig {
                span: crate::history::VIDEO_SPAN,
                max_packets: 1_000,
            },
        )
    }

    fn keeping(first_seq: u16, history: HistoryConfig) -> Rig {
        let mut shard = Shard::with_handles(Layout::Grouped);
        shard.keep_history(Some(history));
        let shape = VideoShape {
            gop: 10,
            ..VideoShape::default()
        };
        let sources: Vec<Source> = (1..=2)
            .map(|i| Source {
                id: SourceId(i),
                stream: Vp8Stream::new(Ssrc(i), 60_000 + i as u16 * 1_000, 0, shape),
                ingress: SourceIngress::new(SourceId(i), Codec::Vp8, 90_000),
            })
            .collect();
        for s in &sources {
            shard.add_source(s.id, Codec::Vp8).unwrap();
        }
        shard
            .add_track(
                TrackConfig {
                    id: TRACK,
                    dest: dest(),
                    ssrc: SSRC,
                    payload_type: 96,
                    first_seq: SeqNo(first_seq),
                    first_ts: RtpTime(0),
                },
                SourceId(1),
            )
            .unwrap();
        shard.set_repair(TRACK, true).unwrap();
        Rig {
            shard,
            sources,
            now: Nanos::ZERO,
            sent: HashMap::new(),
            batch: TransmitBatch::with_capacity(8),
        }
    }

    /// One packet of every source, 11 ms apart; the track's copy (unless `lose`) recorded.
    fn step(&mut self, lose: impl Fn(u16) -> bool) {
        self.now = self.now.saturating_add(Nanos::from_millis(11));
        for i in 0..self.sources.len() {
            let s = &mut self.sources[i];
            let mut buf = Vec::new();
            s.stream.next_packet(&mut buf);
            let pkt = s.ingress.accept(&buf, None, self.now).unwrap().unwrap();
            let mut fan_out = self.shard.fan_out(&pkt, &buf, self.now);
            while fan_out.fill(&mut self.batch) > 0 {
                for t in self.batch.as_slice() {
                    let bytes = t.to_vec(&pkt, &buf);
                    let seq = u16::from_be_bytes([bytes[2], bytes[3]]);
                    if !lose(seq) {
                        // Sent (and received): a number is never used twice.
                        assert!(self.sent.insert(seq, bytes).is_none());
                    } else {
                        assert!(self.sent.insert(seq, Vec::new()).is_none());
                    }
                }
                self.batch.clear();
            }
            self.shard.remember(&pkt, buf);
        }
    }

    fn nack(&mut self, from: SocketAddr, lost: &[u16]) {
        let mut out = [0u8; NACK_MAX_LEN];
        let n = write_nack(&mut out, Ssrc(9), SSRC, lost.iter().map(|&s| SeqNo(s))).unwrap();
        self.shard.handle_rtcp(&out[..n], Some(from), self.now);
    }

    /// The resends queued, as sent: output number → bytes.
    fn resends(&mut self) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(r) = self.shard.poll_resend() {
            assert_eq!(r.transmit.dest, dest());
            assert_eq!(r.transmit.track, TRACK);
            let bytes = r.transmit.to_vec(r.pkt, r.handle);
            out.push((u16::from_be_bytes([bytes[2], bytes[3]]), bytes));
        }
        out
    }

    /// The output numbers the track used, lost on the way or not.
    fn numbers(&self, lost_only: bool) -> Vec<u16> {
        let mut n: Vec<u16> = self
            .sent
            .iter()
            .filter(|(_, b)| !lost_only || b.is_empty())
            .map(|(s, _)| *s)
            .collect();
        let first = self.first();
        n.sort_by_key(|&s| s.wrapping_sub(first));
        n
    }

    fn first(&self) -> u16 {
        *self
            .sent
            .keys()
            .min_by_key(|&&s| s.wrapping_sub(60_000))
            .unwrap()
    }
}

#[test]
fn a_nacked_packet_is_resent_with_the_bytes_first_sent_across_a_switch_and_the_wrap() {
    // The track's numbers wrap at 65 535 during the run.
    let mut rig = Rig::new(65_500);
    let lost = |seq: u16| seq % 7 == 3;
    for i in 0..120 {
        if i == 60 {
            rig.shard
                .switch(TRACK, SourceId(2), rig.now)
                .expect("switch to B");
        }
        rig.step(lost);
    }
    let info = rig.shard.track(TRACK).unwrap();
    assert_eq!(info.source, Some(SourceId(2)), "switched");
    let missing = rig.numbers(true);
    assert!(missing.len() > 10 && missing.contains(&3), "{missing:?}");
    // The subscriber NACKs what it lacks, in pairs of up to 17.
    for chunk in missing.chunks(8) {
        rig.nack(dest(), chunk);
    }
    let resent = rig.resends();
    let got: Vec<u16> = resent.iter().map(|(s, _)| *s).collect();
    let c = rig.shard.track_repair(TRACK).unwrap();
    assert_eq!(
        got, missing,
        "each lost number resent once, in order: {c:?}"
    );
    // What the track would have sent: rebuild the original by resending a number that was
    // received, and compare with what arrived.
    let received: Vec<u16> = rig
        .numbers(false)
        .into_iter()
        .filter(|s| !lost(*s))
        .collect();
    let sample: Vec<u16> = received.iter().copied().step_by(9).collect();
    rig.now = rig.now.saturating_add(Nanos::from_millis(50));
    rig.nack(dest(), &sample);
    for (seq, bytes) in rig.resends() {
        assert_eq!(bytes, rig.sent[&seq], "output {seq} resent as first sent");
    }
    let c = rig.shard.track_repair(TRACK).unwrap();
    assert_eq!(c.resent, (missing.len() + sample.len()) as u64, "{c:?}");
    assert_eq!(c.requested, c.resent);
    assert_eq!(rig.shard.repair_counters(), c);
}

#[test]
fn numbers_never_sent_or_let_go_are_refused_and_counted() {
    let mut rig = Rig::new(100);
    for _ in 0..40 {
        rig.step(|_| false);
    }
    let newest = *rig.numbers(false).last().unwrap();
    // One past the newest: not sent yet. Before the first: never the track's.
    rig.nack(dest(), &[newest.wrapping_add(1), newest.wrapping_add(2)]);
    rig.nack(dest(), &[99]);
    assert!(rig.resends().is_empty());
    let c = rig.shard.track_repair(TRACK).unwrap();
    assert_eq!((c.requested, c.unknown, c.resent), (3, 3, 0));
    // Three seconds later the first packets have left the 2 s history.
    for _ in 0..300 {
        rig.step(|_| false);
    }
    rig.nack(dest(), &[100, 101]);
    assert!(rig.resends().is_empty());
    let c = rig.shard.track_repair(TRACK).unwrap();
    assert_eq!(c.missing, 2, "{c:?}");
}

#[test]
fn a_number_half_the_16_bit_space_behind_the_newest_is_refused_though_the_history_holds_it() {
    // A history long enough to hold more than half of the 16-bit space.
    let mut rig = Rig::keeping(
        100,
        HistoryConfig {
            span: Nanos::from_millis(3_600_000),
            max_packets: 40_000,
        },
    );
    for _ in 0..(RESOLVABLE_SPAN as usize + 100) {
        rig.step(|_| false);
    }
    let newest = *rig.numbers(false).last().unwrap();
    let behind = |n: u64| newest.wrapping_sub(n as u16);
    // Just inside the span: resent. At the span and beyond: refused as unknown, not sent with
    // a number a receiver (or SRTP's rollover estimate) would place ahead of the newest.
    rig.nack(dest(), &[behind(RESOLVABLE_SPAN - 1)]);
    let resent = rig.resends();
    assert_eq!(resent.len(), 1);
    assert_eq!(resent[0].0, behind(RESOLVABLE_SPAN - 1));
    assert_eq!(resent[0].1, rig.sent[&behind(RESOLVABLE_SPAN - 1)]);
    rig.nack(
        dest(),
        &[behind(RESOLVABLE_SPAN), behind(RESOLVABLE_SPAN + 50)],
    );
    assert!(rig.resends().is_empty());
    let c = rig.shard.track_repair(TRACK).unwrap();
    assert_eq!((c.requested, c.resent, c.unknown), (3, 1, 2), "{c:?}");
}

#[test]
fn a_nack_from_another_address_or_for_a_track_without_repair_resends_nothing() {
    let mut rig = Rig::new(100);
    for _ in 0..20 {
        rig.step(|seq| seq == 105);
    }
    let stranger: SocketAddr = "127.0.0.2:40000".parse().unwrap();
    rig.nack(stranger, &[105]);
    assert!(rig.resends().is_empty());
    assert_eq!(rig.shard.counters().rtcp_wrong_sender, 1);
    assert_eq!(rig.shard.track_repair(TRACK).unwrap().requested, 0);
    rig.shard.set_repair(TRACK, false).unwrap();
    rig.nack(dest(), &[105]);
    assert!(rig.resends().is_empty());
    assert_eq!(rig.shard.track_repair(TRACK), None);
}

#[test]
fn a_packet_is_resent_at_most_three_times_and_not_twice_within_the_spacing() {
    let mut rig = Rig::new(100);
    for _ in 0..20 {
        rig.step(|seq| seq == 110);
    }
    let mut resent = 0;
    for round in 0..6 {
        // Twice in the same instant, then 25 ms later (past the 20 ms spacing).
        rig.nack(dest(), &[110]);
        rig.nack(dest(), &[110]);
        resent += rig.resends().len();
        assert_eq!(resent, (round + 1).min(3), "round {round}");
        rig.now = rig.now.saturating_add(Nanos::from_millis(25));
    }
    let c = rig.shard.track_repair(TRACK).unwrap();
    assert_eq!((c.resent, c.too_often, c.requested), (3, 9, 12));
}

#[test]
fn a_nack_naming_more_packets_than_are_remembered_answers_none_twice_within_the_spacing() {
    let mut rig = Rig::new(100);
    rig.shard.set_repair_config(RepairConfig {
        burst_bytes: 1_000_000,
        ..RepairConfig::default()
    });
    // Turned on again, the track starts with the larger burst: the budget is not what limits.
    rig.shard.set_repair(TRACK, false).unwrap();
    rig.shard.set_repair(TRACK, true).unwrap();
    // 40 in a row lost: more than the 32 recent resends a track remembers.
    for _ in 0..60 {
        rig.step(|seq| (110..150).contains(&seq));
    }
    let lost = rig.numbers(true);
    assert_eq!(lost.len(), 40);
    rig.nack(dest(), &lost);
    let first: Vec<u16> = rig.resends().iter().map(|(s, _)| *s).collect();
    assert_eq!(first, lost[..32], "the first 32 are answered, in order");
    // The receiver repeats its NACK at once: nothing goes out twice.
    rig.nack(dest(), &lost);
    assert!(rig.resends().is_empty());
    let c = rig.shard.track_repair(TRACK).unwrap();
    assert_eq!((c.requested, c.resent, c.too_often), (80, 32, 48));
    // Past the spacing the remembered ones may go again; the 8 beyond them wait until the
    // track has room, and every request is counted one way or the other.
    rig.now = rig.now.saturating_add(Nanos::from_millis(25));
    rig.nack(dest(), &lost);
    let again: Vec<u16> = rig.resends().iter().map(|(s, _)| *s).collect();
    assert_eq!(again, lost[..32]);
    let c = rig.shard.track_repair(TRACK).unwrap();
    assert_eq!(
        c.requested,
        c.resent + c.too_often + c.unknown + c.missing + c.over_budget
    );
}

#[test]
fn resends_stay_within_the_budget_a_share_of_what_the_track_forwarded() {
    let mut rig = Rig::new(100);
    rig.shard.set_repair_config(RepairConfig {
        budget_permille: 100,
        burst_bytes: 5_000,
        max_resends: 200,
        spacing: Nanos::ZERO,
    });
    // The track was turned on with a full burst; forward 100 packets, none lost.
    for _ in 0..100 {
        rig.step(|_| false);
    }
    let forwarded = rig.shard.track(TRACK).unwrap().counters.bytes;
    // A hostile subscriber NACKs everything, again and again.
    let all = rig.numbers(false);
    let mut resent_bytes = 0u64;
    for _ in 0..20 {
        for chunk in all.chunks(16) {
            rig.nack(dest(), chunk);
            resent_bytes += rig
                .resends()
                .iter()
                .map(|(_, b)| b.len() as u64)
                .sum::<u64>();
        }
    }
    let c = rig.shard.track_repair(TRACK).unwrap();
    assert!(c.over_budget > 0, "{c:?}");
    // The burst, plus a tenth of what was forwarded (counted from when repair was turned on).
    assert!(
        resent_bytes <= 5_000 + forwarded / 10,
        "{resent_bytes} resent of {forwarded} forwarded"
    );
    // The budget saves up to the burst, no more: all of it was usable, less one packet.
    assert!(
        resent_bytes > 5_000 - 1_200,
        "the burst is usable: {resent_bytes}"
    );
    assert_eq!(c.resent_bytes, resent_bytes);
    // More forwarding earns more budget.
    for _ in 0..100 {
        rig.step(|_| false);
    }
    let before = c.resent;
    let newest = *rig.numbers(false).last().unwrap();
    rig.nack(dest(), &[newest]);
    assert_eq!(rig.resends().len(), 1);
    assert_eq!(rig.shard.track_repair(TRACK).unwrap().resent, before + 1);
}

#[test]
fn a_removed_track_keeps_its_counts_and_its_queued_resends_are_dropped() {
    let mut rig = Rig::new(100);
    for _ in 0..20 {
        rig.step(|seq| seq == 104);
    }
    rig.nack(dest(), &[104]);
    rig.shard.remove_track(TRACK).unwrap();
    assert!(rig.resends().is_empty(), "its queued resend went with it");
    assert_eq!(rig.shard.repair_counters().resent, 1);
}

#[test]
fn a_source_without_tracks_keeps_no_history() {
    let mut rig = Rig::new(100);
    for _ in 0..20 {
        rig.step(|_| false);
    }
    // Source 2 has no track on it: nothing kept. Source 1 has.
    assert!(rig.shard.history(SourceId(2)).is_none());
    assert_eq!(rig.shard.history(SourceId(1)).unwrap().len(), 20);
    let (packets, bytes) = rig.shard.history_held();
    assert_eq!(packets, 20);
    assert!(bytes > 20 * 1_000);
    rig.shard.remove_track(TRACK).unwrap();
    // Kept one span (2 s) more, no longer growing, then let go.
    for _ in 0..150 {
        rig.step(|_| false);
    }
    assert_eq!(rig.shard.history(SourceId(1)).unwrap().len(), 20);
    for _ in 0..50 {
        rig.step(|_| false);
    }
    assert!(
        rig.shard.history(SourceId(1)).is_none(),
        "let go a span after the last track"
    );
}

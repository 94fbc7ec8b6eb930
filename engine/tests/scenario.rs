//! Scenarios over virtual time: several sources, many tracks, seeded loss and reordering, with
//! switches and restarts; each checked against the oracle in `common` and for counts that prove
//! the traffic really flowed.

mod common;

use common::{Impairment, World, FRAME_MS};
use corecast_engine::rtp::RtpHeader;
use corecast_engine::{DropReason, Layout, SwitchOutcome, TrackId};

fn total_sent(w: &World) -> usize {
    w.sent.values().map(Vec::len).sum()
}

/// A clean network, two sources, tracks switching back and forth on keyframes.
#[test]
fn clean_switching_delivers_every_packet_after_each_keyframe() {
    let mut w = World::new(1, 2, Impairment::default(), Layout::Grouped);
    let tracks: Vec<TrackId> = (0..50).map(|t| w.add_track(t, 0)).collect();
    for round in 0..6 {
        for _ in 0..40 {
            w.send(0);
            w.send(1);
        }
        for &t in &tracks {
            let outcome = w.switch(t, (round + 1) % 2);
            assert_eq!(
                outcome,
                SwitchOutcome::Pending,
                "a live track waits for the keyframe"
            );
        }
    }
    for _ in 0..40 {
        w.send(0);
        w.send(1);
    }
    w.verify();
    // Each source sent 280 packets; a track misses only the old source's tail before each
    // switch point and sends a packet from either source at every arrival while on it.
    for &t in &tracks {
        let sent = &w.sent[&t];
        let switches = sent
            .windows(2)
            .filter(|p| p[0].source != p[1].source)
            .count();
        assert_eq!(switches, 6, "{t}");
        assert!(sent.len() > 250, "{t} sent {}", sent.len());
    }
    assert_eq!(w.shard.counters().switches, 6 * 50);
    assert_eq!(w.drops(DropReason::StaleAfterSwitch), 0);
}

/// Loss, duplicates and reordering on both sources with switching and a restart: the oracle
/// holds, the impairments really happened, and they were counted under their reasons.
#[test]
fn impaired_network_with_switches_and_restart() {
    for seed in 0..8 {
        let net = Impairment {
            loss: 0.05,
            duplicate: 0.05,
            reorder: 0.1,
            max_delay: 4,
        };
        let mut w = World::new(seed, 3, net, Layout::Grouped);
        let tracks: Vec<TrackId> = (0..30).map(|t| w.add_track(t, t as usize % 3)).collect();
        for step in 0..1500 {
            w.send(step % 3);
            if step % 150 == 149 {
                for &t in &tracks {
                    w.switch(t, (t.0 as usize + step / 150) % 3);
                }
            }
            if step == 700 {
                w.restart(1);
            }
        }
        w.verify();
        assert!(total_sent(&w) > 10_000, "seed {seed}: {}", total_sent(&w));
        assert!(w.drops(DropReason::Duplicate) > 0, "seed {seed}");
        assert!(w.shard.counters().switches > 100, "seed {seed}");
        assert_eq!(w.sources[1].ingress.counters().restarts, 1, "seed {seed}");
    }
}

/// Picture IDs seen by one subscriber go up by one per frame across switches.
#[test]
fn vp8_picture_id_is_continuous_for_the_subscriber() {
    let mut w = World::new(3, 2, Impairment::default(), Layout::Grouped);
    let t = w.add_track(1, 0);
    for round in 0..5 {
        for _ in 0..(37 + round * 5) {
            w.send(0);
            w.send(1);
        }
        w.switch(t, (round + 1) % 2);
    }
    w.verify();
    let mut last: Option<(u32, u16)> = None; // (timestamp, picture id)
    for s in &w.sent[&t] {
        let h = RtpHeader::parse(&s.bytes).unwrap();
        let p = h.payload(&s.bytes);
        let pid = u16::from_be_bytes([p[2] & 0x7f, p[3]]);
        if let Some((ts, prev)) = last {
            if ts == h.timestamp.0 {
                assert_eq!(pid, prev, "one picture ID per frame");
            } else {
                assert_eq!(pid, (prev + 1) & 0x7fff, "next frame, next picture ID");
            }
        }
        last = Some((h.timestamp.0, pid));
    }
}

/// The timestamp step at a switch is the wall-clock time since the last packet sent, but never
/// less than a frame interval (30 fps: 3000 ticks).
#[test]
fn switch_timestamp_step_follows_wall_clock() {
    let mut w = World::new(4, 2, Impairment::default(), Layout::Grouped);
    let t = w.add_track(1, 0);
    for _ in 0..30 {
        w.send(0);
        w.send(1);
    }
    w.switch(t, 1);
    // Two of source 1's GOPs: the sources' packets interleave, so the switch may wait for the
    // second keyframe (source 0 mid-frame at the first).
    for _ in 0..45 {
        w.send(0);
        w.send(1);
    }
    w.verify();
    let sent = &w.sent[&t];
    let at = sent
        .windows(2)
        .position(|p| p[0].source != p[1].source)
        .unwrap();
    let ts = |i: usize| RtpHeader::parse(&sent[i].bytes).unwrap().timestamp.0;
    // Sources send alternately, one packet per FRAME_MS/3 each: the new source's keyframe comes
    // some packets after the last one of the old source.
    let arrivals_between = sent[at + 1].arrival - sent[at].arrival;
    let elapsed_ticks = arrivals_between as u64 * FRAME_MS / 3 * 90;
    let step = ts(at + 1).wrapping_sub(ts(at));
    assert_eq!(step as u64, elapsed_ticks.max(3000));
}

/// Tracks on other sources are never touched by a packet: grouped and scan layouts send the
/// same bytes.
#[test]
fn grouped_and_scan_layouts_send_identical_streams() {
    let net = Impairment {
        loss: 0.02,
        duplicate: 0.02,
        reorder: 0.05,
        max_delay: 3,
    };
    let run = |layout| {
        let mut w = World::new(9, 4, net, layout);
        for t in 0..40 {
            w.add_track(t, t as usize % 4);
        }
        for step in 0..800 {
            w.send(step % 4);
            if step % 200 == 100 {
                for t in 0..40 {
                    w.switch(TrackId(t), (t as usize + step) % 4);
                }
            }
        }
        w.verify();
        let mut v: Vec<_> = w
            .sent
            .into_iter()
            .map(|(t, s)| (t, s.into_iter().map(|p| p.bytes).collect::<Vec<_>>()))
            .collect();
        v.sort_by_key(|(t, _)| *t);
        v
    };
    assert_eq!(run(Layout::Grouped), run(Layout::Scan));
}

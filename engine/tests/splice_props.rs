//! Property: over random schedules of loss, reordering, duplicates, restarts, failovers back to
//! an earlier SSRC, multiplexed second streams, stray datagrams, retransmissions and switches
//! between sources, every track's output is exactly what the oracle in `common` derives from the
//! log of packets ingress delivered: one SSRC, no sequence number twice, timestamps never
//! backwards, each segment starting on a switch point and continuing one past the highest
//! sequence number sent, and no gap the input did not have. Ingress conserves every packet
//! (accepted, dropped or held).

mod common;

use common::{Impairment, Other, World};
use corecast_engine::{Layout, TrackId};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Step {
    Send(usize),
    Switch(u32, usize),
    Cancel(u32),
    Restart(usize),
    FailBack(usize),
    Interfere(usize, Other),
    Pause(u64),
}

fn other() -> impl Strategy<Value = Other> {
    prop_oneof![
        Just(Other::Multiplexed),
        Just(Other::Stray),
        Just(Other::Retransmission)
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        20 => (0..3usize).prop_map(Step::Send),
        2 => (0..6u32, 0..3usize).prop_map(|(t, s)| Step::Switch(t, s)),
        1 => (0..6u32).prop_map(Step::Cancel),
        1 => (0..3usize).prop_map(Step::Restart),
        1 => (0..3usize).prop_map(Step::FailBack),
        2 => (0..3usize, other()).prop_map(|(s, o)| Step::Interfere(s, o)),
        1 => (1..500u64).prop_map(Step::Pause),
    ]
}

fn impairment() -> impl Strategy<Value = Impairment> {
    (0.0..0.15f64, 0.0..0.1f64, 0.0..0.2f64, 1..6usize).prop_map(
        |(loss, duplicate, reorder, max_delay)| Impairment {
            loss,
            duplicate,
            reorder,
            max_delay,
        },
    )
}

fn run(seed: u64, net: Impairment, steps: &[Step], layout: Layout) {
    let mut w = World::new(seed, 3, net, layout);
    for t in 0..6u32 {
        w.add_track(t, t as usize % 3);
    }
    for s in steps {
        match *s {
            Step::Send(src) => w.send(src),
            Step::Switch(t, src) => {
                w.switch(TrackId(t), src);
            }
            Step::Cancel(t) => {
                w.shard.cancel_switch(TrackId(t)).unwrap();
            }
            Step::Restart(src) => w.restart(src),
            Step::FailBack(src) => w.fail_back(src),
            Step::Interfere(src, kind) => w.interfere(src, kind),
            Step::Pause(ms) => w.pause(ms),
        }
    }
    w.verify();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_track_output_matches_the_oracle(
        seed in any::<u64>(),
        net in impairment(),
        steps in proptest::collection::vec(step(), 1..400),
    ) {
        run(seed, net, &steps, Layout::Grouped);
    }

    #[test]
    fn scan_layout_behaves_the_same(
        seed in any::<u64>(),
        net in impairment(),
        steps in proptest::collection::vec(step(), 1..200),
    ) {
        run(seed, net, &steps, Layout::Scan);
    }
}

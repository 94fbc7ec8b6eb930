//! Failover to a fallback source (a slate or a backup feed): when a primary source has sent
//! nothing for the idle threshold, its subscribers move to the fallback, and back once the
//! primary sends again.
//!
//! The policy is here, over virtual time; the node's control thread feeds it each source's count
//! of accepted packets (from ingest's counter snapshots) and carries out the moves it returns as
//! ordinary switches, so a move happens at the target's switch point: at once from the history
//! for a `replay` source, at its next keyframe otherwise.
//!
//! - A primary that never sent counts as idle from its creation: subscribers that arrive before
//!   the encoder does see the slate instead of nothing.
//! - The fallback must itself be alive (it sent within the threshold): moving to a silent one
//!   would leave subscribers waiting for a keyframe that does not come.
//! - The move back is made on the primary's first packet after its silence, not after a settling
//!   time: the switch waits for the primary's keyframe anyway, so a primary that sends a few
//!   packets and stops again costs a switch request, not a frame.

use crate::Nanos;

/// How one source has been sending, as seen through its accepted-packet count.
#[derive(Clone, Copy, Debug)]
struct Liveness {
    /// The count last observed.
    seen: u64,
    /// When the count last grew; for a source that has not sent yet, when watching began
    /// (so it turns idle that long after its creation).
    since: Nanos,
    /// The count has grown at least once.
    ever: bool,
}

impl Liveness {
    fn new(accepted: u64, now: Nanos) -> Liveness {
        Liveness {
            seen: accepted,
            since: now,
            ever: accepted > 0,
        }
    }

    /// Take the count at `now`; true if it grew. Counters never go backwards: a smaller one (a
    /// source recreated under the same id cannot be, ids are never reused) is taken as is.
    fn observe(&mut self, accepted: u64, now: Nanos) -> bool {
        let grew = accepted > self.seen;
        self.seen = accepted;
        if grew {
            self.since = now;
            self.ever = true;
        }
        grew
    }

    fn silent_for(&self, now: Nanos) -> Nanos {
        now.saturating_since(self.since)
    }
}

/// A move the control thread makes for every subscriber of the primary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailoverMove {
    /// The primary is idle: its subscribers go to the fallback.
    ToFallback {
        /// How long the primary had sent nothing.
        silent_for: Nanos,
        /// False for a primary that never sent.
        ever_sent: bool,
    },
    /// The primary sends again: the subscribers moved away go back to it.
    ToPrimary,
}

/// One primary source's failover state.
#[derive(Clone, Debug)]
pub struct Failover {
    idle_after: Nanos,
    primary: Liveness,
    fallback: Liveness,
    engaged: bool,
}

impl Failover {
    /// Watching starts at `now` with the sources' current accepted-packet counts.
    pub fn new(idle_after: Nanos, primary: u64, fallback: u64, now: Nanos) -> Failover {
        Failover {
            idle_after,
            primary: Liveness::new(primary, now),
            fallback: Liveness::new(fallback, now),
            engaged: false,
        }
    }

    /// The primary's subscribers are (to be) on the fallback.
    pub fn engaged(&self) -> bool {
        self.engaged
    }

    /// Take both sources' accepted-packet counts at `now`; the move to make, if any.
    pub fn observe(&mut self, primary: u64, fallback: u64, now: Nanos) -> Option<FailoverMove> {
        let primary_grew = self.primary.observe(primary, now);
        self.fallback.observe(fallback, now);
        if self.engaged {
            if primary_grew {
                self.engaged = false;
                return Some(FailoverMove::ToPrimary);
            }
            return None;
        }
        let silent_for = self.primary.silent_for(now);
        let fallback_alive = self.fallback.ever && self.fallback.silent_for(now) < self.idle_after;
        if silent_for >= self.idle_after && fallback_alive {
            self.engaged = true;
            return Some(FailoverMove::ToFallback {
                silent_for,
                ever_sent: self.primary.ever,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Nanos = Nanos::from_millis(2000);

    fn ms(ms: u64) -> Nanos {
        Nanos::from_millis(ms)
    }

    /// Both sources send a packet every 20 ms until `primary_stops` (the fallback goes on); the
    /// moves and the virtual time they happened at.
    fn run(
        primary_stops: u64,
        primary_resumes: Option<u64>,
        until: u64,
    ) -> Vec<(u64, FailoverMove)> {
        let mut f = Failover::new(IDLE, 0, 0, ms(0));
        let (mut p, mut b) = (0, 0);
        let mut moves = Vec::new();
        for t in (0..until).step_by(20) {
            let primary_sends = t < primary_stops || primary_resumes.is_some_and(|r| t >= r);
            p += u64::from(primary_sends);
            b += 1;
            if let Some(m) = f.observe(p, b, ms(t)) {
                moves.push((t, m));
            }
        }
        moves
    }

    #[test]
    fn a_silent_primary_fails_over_after_the_threshold_and_back_on_its_first_packet() {
        let moves = run(1000, Some(5000), 8000);
        assert_eq!(
            moves,
            vec![
                (
                    // Its last packet was at 980 ms.
                    2980,
                    FailoverMove::ToFallback {
                        silent_for: ms(2000),
                        ever_sent: true
                    }
                ),
                (5000, FailoverMove::ToPrimary),
            ]
        );
    }

    #[test]
    fn a_primary_that_keeps_sending_never_fails_over() {
        assert!(run(u64::MAX, None, 10_000).is_empty());
    }

    #[test]
    fn a_primary_that_never_sent_fails_over_once_the_threshold_passed_since_creation() {
        let mut f = Failover::new(IDLE, 0, 0, ms(100));
        let mut moves = Vec::new();
        for t in (100..3000).step_by(100) {
            moves.extend(f.observe(0, t, ms(t)).map(|m| (t, m)));
        }
        assert_eq!(
            moves,
            vec![(
                2100,
                FailoverMove::ToFallback {
                    silent_for: ms(2000),
                    ever_sent: false
                }
            )]
        );
        assert!(f.engaged());
    }

    #[test]
    fn no_failover_to_a_fallback_that_is_silent_too_until_it_sends() {
        let mut f = Failover::new(IDLE, 10, 0, ms(0));
        // The primary stops at once; the fallback has never sent.
        for t in (0..5000).step_by(100) {
            assert_eq!(f.observe(10, 0, ms(t)), None, "at {t} ms");
        }
        // The fallback starts: the primary, silent all along, fails over at the next look.
        let m = f.observe(10, 1, ms(5000));
        assert_eq!(
            m,
            Some(FailoverMove::ToFallback {
                silent_for: ms(5000),
                ever_sent: true
            })
        );
        // A fallback that went silent later is not taken either.
        // (The fallback's last packet is at 100 ms, the primary's at 1000 ms.)
        let mut g = Failover::new(IDLE, 10, 5, ms(0));
        assert_eq!(g.observe(10, 6, ms(100)), None);
        assert_eq!(g.observe(11, 6, ms(1000)), None);
        for t in (1100..6000).step_by(100) {
            assert_eq!(g.observe(11, 6, ms(t)), None, "at {t} ms");
        }
    }

    #[test]
    fn engaged_it_stays_on_the_fallback_while_the_primary_is_silent_even_if_the_fallback_stops() {
        let mut f = Failover::new(IDLE, 0, 0, ms(0));
        assert!(f.observe(1, 1, ms(0)).is_none());
        assert!(matches!(
            f.observe(1, 2, ms(2000)),
            Some(FailoverMove::ToFallback { .. })
        ));
        for t in (2100..10_000).step_by(100) {
            assert_eq!(f.observe(1, 2, ms(t)), None, "at {t} ms");
        }
        assert!(f.engaged());
        assert_eq!(f.observe(2, 2, ms(10_000)), Some(FailoverMove::ToPrimary));
        assert!(!f.engaged());
        // And it can fail over again.
        assert_eq!(f.observe(2, 3, ms(11_000)), None);
        assert!(matches!(
            f.observe(2, 4, ms(12_000)),
            Some(FailoverMove::ToFallback { .. })
        ));
    }

    #[test]
    fn a_flapping_primary_moves_once_per_silence() {
        // Bursts of 100 ms every 3 s: each silence of 2.9 s fails over once, each burst back.
        let mut f = Failover::new(IDLE, 0, 0, ms(0));
        let (mut p, mut b) = (0, 0);
        let mut moves = Vec::new();
        for t in (0..15_000u64).step_by(20) {
            p += u64::from(t % 3000 < 100);
            b += 1;
            moves.extend(f.observe(p, b, ms(t)));
        }
        let to_fallback = moves
            .iter()
            .filter(|m| matches!(m, FailoverMove::ToFallback { .. }))
            .count();
        let to_primary = moves.len() - to_fallback;
        assert_eq!((to_fallback, to_primary), (5, 4), "{moves:?}");
        // They alternate.
        for pair in moves.windows(2) {
            assert_ne!(
                matches!(pair[0], FailoverMove::ToPrimary),
                matches!(pair[1], FailoverMove::ToPrimary)
            );
        }
    }
}

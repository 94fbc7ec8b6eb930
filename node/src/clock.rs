//! The node's one clock: monotonic nanoseconds since start, as the engine's `Nanos`. Only the I/O
//! layer reads it; the engine is handed `now`.

use std::time::{Duration, Instant};

use corecast_engine::Nanos;

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    pub fn start() -> Clock {
        Clock {
            origin: Instant::now(),
        }
    }

    pub fn now(&self) -> Nanos {
        Nanos(self.origin.elapsed().as_nanos() as u64)
    }

    /// The node's start: stats intervals and uptime count from it.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// The first whole multiple of `every` since the origin that is later than now. Every thread
    /// that snapshots its counters at these instants reports over the same intervals, so the
    /// rates one `GET /v1/stats` shows side by side cover the same time.
    pub fn next_boundary(&self, every: Duration) -> Instant {
        next_boundary(self.origin, every, Instant::now())
    }
}

/// The first `origin + k × every` (k ≥ 1) later than `now`; `now` itself when `every` is zero.
pub fn next_boundary(origin: Instant, every: Duration, now: Instant) -> Instant {
    let every_ns = every.as_nanos();
    if every_ns == 0 {
        return now;
    }
    let elapsed = now.saturating_duration_since(origin).as_nanos();
    let k = elapsed / every_ns + 1;
    origin + Duration::from_nanos(u64::try_from(k * every_ns).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_whole_intervals_after_the_origin_and_after_now() {
        let o = Instant::now();
        let s = Duration::from_secs(1);
        assert_eq!(next_boundary(o, s, o), o + s);
        assert_eq!(next_boundary(o, s, o + s / 2), o + s);
        assert_eq!(next_boundary(o, s, o + s), o + 2 * s);
        assert_eq!(next_boundary(o, s, o + s * 7 / 2), o + 4 * s);
        assert_eq!(next_boundary(o, Duration::ZERO, o + s), o + s);
    }
}

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
        corecast_udp::time::next_boundary(self.origin, every, Instant::now())
    }
}

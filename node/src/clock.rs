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

/// The wall clock now as an NTP timestamp (RFC 3550 §4: seconds since 1900 in the high word, the
/// binary fraction in the low one), for sender reports.
pub fn ntp_now() -> corecast_engine::rtcp::NtpTime {
    /// Seconds from 1900-01-01 to 1970-01-01.
    const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
    let since_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = since_unix.as_secs() + NTP_UNIX_OFFSET;
    let fraction = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
    corecast_engine::rtcp::NtpTime((seconds << 32) | fraction)
}

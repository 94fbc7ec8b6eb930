//! Time for I/O loops: the calling thread's CPU clock (what a send path costs, whatever else the
//! machine does), and the fixed grid of instants that stats windows follow.

use std::time::{Duration, Instant};

/// CPU time consumed so far by the calling thread (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass, which lives across the call.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    // Linux has supported this clock since 2.6.12; an error would mean a broken libc.
    assert_eq!(
        r, 0,
        "clock_gettime(CLOCK_THREAD_CPUTIME_ID) is always supported on Linux"
    );
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The first `origin + k × every` (k ≥ 1) later than `now`; `now` itself when `every` is zero.
///
/// Every thread that snapshots its counters at these instants reports over the same intervals,
/// so rates shown side by side cover the same time: the node's threads for `GET /v1/stats`, and
/// the load generator's progress ticks next to them in `corecast demo`.
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

    #[test]
    fn the_thread_cpu_clock_advances_with_work_on_this_thread() {
        let before = thread_cpu_time();
        // Spin until the clock moves (its resolution is at most a scheduler tick), bounded.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut x = 0u64;
        while thread_cpu_time() == before && Instant::now() < deadline {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        assert!(thread_cpu_time() > before);
    }
}

//! What the emitter and one handler's worker thread share: the bounded queue, the counters, and
//! the shutdown deadline.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use serde::Serialize;

/// One serialized envelope, shared by every handler that receives it.
pub(crate) type Line = Arc<str>;

/// A handler's counters, as [`EventBus::stats`](super::EventBus::stats) reports them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HandlerStats {
    /// `webhook:<url>` or `jsonl:<path>` (`jsonl:-` for stdout).
    pub name: String,
    /// `"webhook"` or `"jsonl"`.
    pub kind: &'static str,
    /// Events delivered: in a POST answered 2xx, or written and flushed.
    pub delivered: u64,
    /// Events lost: pushed out of a full queue, in a batch given up after its retries (or a
    /// failed write), or still held when the shutdown deadline passed.
    pub dropped: u64,
    /// POSTs repeated after a failure.
    pub retries: u64,
    /// Batches given up (webhook), or writes that failed (JSON lines).
    pub failed_batches: u64,
    /// POSTs attempted, retries included (0 for JSON lines).
    pub posts: u64,
    /// Events waiting in the queue now.
    pub queued: usize,
    /// Bytes of serialized events waiting in the queue now (at most the handler's `queue-bytes`,
    /// give or take the events that concurrent emits are pushing at that moment).
    pub queued_bytes: usize,
}

/// The queue and counters of one handler. Counters are `Relaxed` atomics: each is a statistic on
/// its own, no reader needs them consistent with one another.
pub(crate) struct Shared {
    queue: ArrayQueue<Line>,
    /// Bytes of the lines in `queue`: added before a push, taken off after a pop, so it never
    /// falls below what the queue holds.
    bytes: AtomicUsize,
    max_bytes: usize,
    pub delivered: AtomicU64,
    pub dropped: AtomicU64,
    pub retries: AtomicU64,
    pub failed_batches: AtomicU64,
    pub posts: AtomicU64,
    /// Set once by shutdown: stop waiting for more events, flush what is held until then.
    stop_at: OnceLock<Instant>,
    /// Set by the worker as its last act (also on panic), so shutdown knows whom to join.
    exited: AtomicBool,
}

impl Shared {
    pub fn new(capacity: usize, max_bytes: usize) -> Shared {
        Shared {
            queue: ArrayQueue::new(capacity.max(1)),
            bytes: AtomicUsize::new(0),
            max_bytes,
            delivered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            failed_batches: AtomicU64::new(0),
            posts: AtomicU64::new(0),
            stop_at: OnceLock::new(),
            exited: AtomicBool::new(false),
        }
    }

    /// Never blocks: a queue full by count or by bytes loses its oldest events, which are
    /// counted. Old events go first because a receiver catching up wants the present state more
    /// than the distant past. A line longer than the byte bound pushes out everything, itself too.
    pub fn push(&self, line: Line) {
        self.bytes.fetch_add(line.len(), Ordering::Relaxed);
        let mut lost = 0;
        if let Some(old) = self.queue.force_push(line) {
            self.bytes.fetch_sub(old.len(), Ordering::Relaxed);
            lost += 1;
        }
        while self.bytes.load(Ordering::Relaxed) > self.max_bytes {
            // Empty while over the bound: another emit has counted its line and not pushed it
            // yet; it trims the queue itself once it has.
            if self.pop().is_none() {
                break;
            }
            lost += 1;
        }
        Shared::add(&self.dropped, lost);
    }

    /// The oldest queued line.
    pub fn pop(&self) -> Option<Line> {
        let line = self.queue.pop()?;
        self.bytes.fetch_sub(line.len(), Ordering::Relaxed);
        Some(line)
    }

    /// Events queued now.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn stats(&self, name: &str, kind: &'static str) -> HandlerStats {
        HandlerStats {
            name: name.to_owned(),
            kind,
            delivered: self.delivered.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            failed_batches: self.failed_batches.load(Ordering::Relaxed),
            posts: self.posts.load(Ordering::Relaxed),
            queued: self.queue.len(),
            queued_bytes: self.bytes.load(Ordering::Relaxed),
        }
    }

    /// Asks the worker to flush and exit by `deadline`; the caller then unparks it.
    pub fn stop(&self, deadline: Instant) {
        let _ = self.stop_at.set(deadline);
    }

    /// The shutdown deadline, once shutdown has begun.
    pub fn stop_at(&self) -> Option<Instant> {
        self.stop_at.get().copied()
    }

    /// Whether the shutdown deadline has passed (the worker must give up what it holds).
    pub fn past_deadline(&self) -> bool {
        self.stop_at().is_some_and(|d| Instant::now() >= d)
    }

    pub fn has_exited(&self) -> bool {
        self.exited.load(Ordering::Acquire)
    }

    /// Parks the worker until `until` (or until unparked: an event, or shutdown). Spurious
    /// wake-ups are fine, callers re-check. `thread::park` costs the emitter no syscall while the
    /// worker is busy: `unpark` only makes one if the worker is actually parked.
    pub fn park_until(&self, until: Option<Instant>) {
        match until {
            None => thread::park(),
            Some(t) => {
                let now = Instant::now();
                if t > now {
                    thread::park_timeout(t - now);
                }
            }
        }
    }

    /// Sleeps for `wait` unless shutdown needs the worker sooner. Returns false (without
    /// waiting) when the wait would outlast the shutdown deadline: what the worker holds is lost
    /// anyway, so it should give up now and let shutdown return.
    pub fn sleep(&self, wait: Duration) -> bool {
        let end = Instant::now() + wait;
        loop {
            if self.stop_at().is_some_and(|d| end > d) {
                return false;
            }
            let now = Instant::now();
            if now >= end {
                return true;
            }
            // Woken early by an emit or by shutdown: re-check the deadline and sleep on.
            thread::park_timeout(end - now);
        }
    }

    /// Counts whatever is still queued as dropped (the worker is exiting past its deadline).
    pub fn drop_queued(&self) {
        let mut n = 0;
        while self.pop().is_some() {
            n += 1;
        }
        Shared::add(&self.dropped, n);
    }
}

/// The count of exited workers, which shutdown waits on with a timeout (`JoinHandle::join` has
/// none).
#[derive(Default)]
pub(crate) struct Exits {
    count: Mutex<usize>,
    changed: Condvar,
}

impl Exits {
    /// Waits until `n` workers have exited or `deadline` passes; true if they all did.
    pub fn wait(&self, n: usize, deadline: Instant) -> bool {
        let mut count = self.count.lock().unwrap_or_else(|e| e.into_inner());
        while *count < n {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            count = self
                .changed
                .wait_timeout(count, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// Held by a worker thread; dropping it (return or panic) marks the worker exited.
pub(crate) struct ExitGuard {
    pub shared: Arc<Shared>,
    pub exits: Arc<Exits>,
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.shared.exited.store(true, Ordering::Release);
        let mut count = self.exits.count.lock().unwrap_or_else(|e| e.into_inner());
        *count += 1;
        self.exits.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_queue_drops_oldest_and_counts() {
        let s = Shared::new(2, 1024);
        for text in ["a", "b", "c", "d"] {
            s.push(Line::from(text));
        }
        assert_eq!(s.stats("x", "jsonl").dropped, 2);
        assert_eq!(s.stats("x", "jsonl").queued, 2);
        assert_eq!(&*s.pop().unwrap(), "c");
        s.drop_queued();
        assert_eq!(s.stats("x", "jsonl").dropped, 3);
        assert_eq!(s.stats("x", "jsonl").queued_bytes, 0);
    }

    #[test]
    fn queue_over_its_byte_bound_drops_oldest_and_counts() {
        let s = Shared::new(100, 10);
        for text in ["aaaa", "bbbb", "cccc"] {
            s.push(Line::from(text));
        }
        let stats = s.stats("x", "jsonl");
        assert_eq!((stats.queued, stats.queued_bytes, stats.dropped), (2, 8, 1));
        assert_eq!(&*s.pop().unwrap(), "bbbb");
        // Longer than the bound: it cannot be held, and takes the rest with it.
        s.push(Line::from("x".repeat(11)));
        let stats = s.stats("x", "jsonl");
        assert_eq!((stats.queued, stats.queued_bytes, stats.dropped), (0, 0, 3));
    }

    #[test]
    fn sleep_refuses_to_outlast_the_deadline() {
        let s = Shared::new(1, 1024);
        assert!(s.sleep(Duration::from_millis(1)));
        s.stop(Instant::now() + Duration::from_millis(50));
        let start = Instant::now();
        assert!(!s.sleep(Duration::from_secs(10)));
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}

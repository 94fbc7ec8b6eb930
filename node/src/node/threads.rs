//! The node's running parts, each behind a guard that knows how to stop it: dropped, in reverse
//! start order, each is asked to stop and its thread joined. Start-up pushes a guard as soon as
//! a thread is spawned, so a step that fails leaves nothing running behind it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

/// Node threads this process has spawned, and of those, how many are not yet joined.
static STARTED: AtomicUsize = AtomicUsize::new(0);
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// How many threads nodes in this process have started since it began: shards, ingest,
/// telemetry, control (not the HTTP server's or the event handlers', which their owners join).
pub fn threads_started() -> usize {
    STARTED.load(Ordering::Acquire)
}

/// How many of [`threads_started`] are not joined yet. Every node stopped, and every start-up
/// that failed, has brought it back to what it was before.
pub fn threads_running() -> usize {
    RUNNING.load(Ordering::Acquire)
}

type Stop = Box<dyn FnOnce() + Send>;

/// One running part: how to ask it to stop, and its thread if it is one of the node's.
pub(crate) struct Guard {
    name: String,
    stop: Option<Stop>,
    thread: Option<JoinHandle<()>>,
}

impl Guard {
    /// Thread `thread`, which ends once `stop` has run.
    pub(crate) fn thread(thread: JoinHandle<()>, stop: impl FnOnce() + Send + 'static) -> Guard {
        STARTED.fetch_add(1, Ordering::AcqRel);
        RUNNING.fetch_add(1, Ordering::AcqRel);
        Guard {
            name: thread.thread().name().unwrap_or("unnamed").to_string(),
            stop: Some(Box::new(stop)),
            thread: Some(thread),
        }
    }

    /// A part whose threads are its own (the HTTP server, the event bus): `stop` stops and
    /// joins them.
    pub(crate) fn part(name: &str, stop: impl FnOnce() + Send + 'static) -> Guard {
        Guard {
            name: name.to_string(),
            stop: Some(Box::new(stop)),
            thread: None,
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                // Its panic was reported by the panic hook; the rest still has to stop.
                tracing::warn!(thread = self.name, "the thread panicked");
            }
            RUNNING.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// The node's guards in start order.
#[derive(Default)]
pub(crate) struct Threads(Vec<Guard>);

impl Threads {
    pub(crate) fn push(&mut self, guard: Guard) {
        self.0.push(guard);
    }

    /// Stop and join everything, last started first.
    pub(crate) fn stop_all(&mut self) {
        while let Some(guard) = self.0.pop() {
            drop(guard);
        }
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        self.stop_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};

    /// A thread that runs until its flag is set, recording in `log` when it was asked to stop
    /// and when it ended.
    fn worker(name: &'static str, log: &Arc<Mutex<Vec<String>>>) -> Guard {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, ended) = (stop.clone(), log.clone());
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while !flag.load(Ordering::Acquire) {
                    std::thread::park();
                }
                ended.lock().unwrap().push(format!("{name} ended"));
            })
            .unwrap();
        let (asked, unpark) = (log.clone(), thread.thread().clone());
        Guard::thread(thread, move || {
            asked.lock().unwrap().push(format!("{name} asked"));
            stop.store(true, Ordering::Release);
            unpark.unpark();
        })
    }

    #[test]
    fn dropped_threads_are_stopped_and_joined_last_started_first() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Threads::default();
        threads.push(worker("a", &log));
        threads.push(worker("b", &log));
        let parted = log.clone();
        threads.push(Guard::part("c", move || {
            parted.lock().unwrap().push("c stopped".into())
        }));
        drop(threads);
        // Each thread has ended (been joined) before the one started before it is asked.
        assert_eq!(
            *log.lock().unwrap(),
            ["c stopped", "b asked", "b ended", "a asked", "a ended"]
        );
    }
}

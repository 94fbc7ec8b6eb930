//! The receiving side: subscriber sockets spread over `--recv-threads` threads, each waiting in
//! `epoll` (mio) on its sockets and reading each readable one dry with `recvmmsg`
//! ([`corecast_udp::RecvBatch`]), then verifying every datagram ([`Verifier`]).
//!
//! The receive time is read once per `recvmmsg` batch, on the clock the senders stamp packets
//! with; latency (receive − send) goes into an hdrhistogram in microseconds. A thread publishes
//! its counters for the live progress line every [`PUBLISH_EVERY`], and at once when asked
//! ([`Receiver::publish_now`], at each progress tick), and sleeps in `epoll` when nothing
//! arrives (no busy loop).

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use corecast_engine::Codec;
use corecast_udp::{Received, RecvBatch};
use hdrhistogram::Histogram;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use super::verify::Verifier;
use super::whep::media::{ViewerMedia, WebrtcCounts};

/// How often a receiving thread publishes its counters.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(250);
const WAKER: Token = Token(usize::MAX);
const BATCH: usize = 64;
const BUF_LEN: usize = 2048;

/// A latency histogram in microseconds: 1 µs to an hour, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// What a receiving thread shares while it runs.
#[derive(Debug)]
pub struct RecvProgress {
    pub received: AtomicU64,
    /// Sequence gaps still open over this thread's subscribers, as of the last publish.
    pub gaps: AtomicU64,
    /// Latency samples since the orchestrator last took them.
    pub interval: Mutex<Histogram<u64>>,
    /// Publishes asked for by [`Receiver::publish_now`], and the last one done (with a condvar
    /// to wait on it), so a progress window ends when the orchestrator says, not up to
    /// [`PUBLISH_EVERY`] earlier.
    asked: AtomicU64,
    done: (Mutex<u64>, Condvar),
}

/// What a receiving thread hands back at the end.
#[derive(Debug)]
pub struct RecvOutcome {
    /// (subscriber index, its verifier).
    pub verifiers: Vec<(usize, Verifier)>,
    pub latency: Histogram<u64>,
    /// WebRTC viewers' demux and SRTP counts, summed (zero for plain subscribers).
    pub webrtc: WebrtcCounts,
}

/// One subscriber as a receiving thread takes it: its index, its socket (shared: a viewer's
/// consent checks go out on it from another thread), and for a WebRTC viewer what unprotects
/// its SRTP.
pub type SubscriberSocket = (usize, Arc<UdpSocket>, Option<ViewerMedia>);

/// A running receiving thread.
pub struct Receiver {
    pub progress: Arc<RecvProgress>,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: JoinHandle<io::Result<RecvOutcome>>,
}

impl Receiver {
    /// Start a thread receiving on `sockets` (non-blocking).
    pub fn spawn(
        name: String,
        sockets: Vec<SubscriberSocket>,
        codec: Codec,
        sources: u32,
        origin: Instant,
    ) -> io::Result<Receiver> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let mut subs = Vec::with_capacity(sockets.len());
        for (k, (index, socket, media)) in sockets.into_iter().enumerate() {
            // Registered by descriptor: mio's own socket type would take ownership, and a
            // duplicate descriptor per viewer would halve how many fit under `ulimit -n`.
            poll.registry().register(
                &mut SourceFd(&socket.as_raw_fd()),
                Token(k),
                Interest::READABLE,
            )?;
            subs.push(Sub {
                index,
                socket,
                verifier: Verifier::new(codec, sources),
                media,
            });
        }
        let progress = Arc::new(RecvProgress {
            received: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            interval: Mutex::new(latency_histogram()),
            asked: AtomicU64::new(0),
            done: (Mutex::new(0), Condvar::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            poll,
            subs,
            origin,
            progress: progress.clone(),
            stop: stop.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || worker.run())?;
        Ok(Receiver {
            progress,
            stop,
            waker,
            thread,
        })
    }

    /// Ask the thread to publish what it has received up to now; returns the request's number
    /// for [`Receiver::wait_published`].
    pub fn publish_now(&self) -> io::Result<u64> {
        let n = self.progress.asked.fetch_add(1, Ordering::AcqRel) + 1;
        self.waker.wake()?;
        Ok(n)
    }

    /// Wait until request `n` is published, at most until `deadline`; true if it was.
    pub fn wait_published(&self, n: u64, deadline: Instant) -> bool {
        let (done, cv) = &self.progress.done;
        let mut guard = done.lock().unwrap();
        while *guard < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            guard = cv.wait_timeout(guard, left).unwrap().0;
        }
        true
    }

    /// Read what is already waiting, stop, and hand back the verifiers.
    pub fn finish(self) -> io::Result<RecvOutcome> {
        self.stop.store(true, Ordering::Release);
        self.waker.wake()?;
        self.thread
            .join()
            .map_err(|_| io::Error::other("a receiving thread panicked"))?
    }
}

struct Sub {
    index: usize,
    socket: Arc<UdpSocket>,
    verifier: Verifier,
    media: Option<ViewerMedia>,
}

struct Worker {
    poll: Poll,
    subs: Vec<Sub>,
    origin: Instant,
    progress: Arc<RecvProgress>,
    stop: Arc<AtomicBool>,
}

impl Worker {
    fn run(mut self) -> io::Result<RecvOutcome> {
        let mut events = Events::with_capacity(1024);
        let mut storage = vec![0u8; BATCH * BUF_LEN];
        let mut bufs: Vec<&mut [u8]> = storage.chunks_mut(BUF_LEN).collect();
        let mut got = [Received::default(); BATCH];
        let mut batch = RecvBatch::with_capacity(BATCH);
        let mut total = latency_histogram();
        let mut interval = latency_histogram();
        let mut received = 0u64;
        let mut next_publish = Instant::now() + PUBLISH_EVERY;
        // The last request published; this thread alone writes `progress.done`, so it needs no
        // lock to read it back on every wake-up.
        let mut published = 0u64;
        loop {
            let timeout = next_publish.saturating_duration_since(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            let stopping = self.stop.load(Ordering::Acquire);
            if stopping {
                // Everything still waiting counts, whether or not its event was seen.
                for k in 0..self.subs.len() {
                    received += self.drain(k, &mut batch, &mut bufs, &mut got, &mut interval)?;
                }
            } else {
                for ev in events.iter() {
                    if ev.token() != WAKER {
                        received += self.drain(
                            ev.token().0,
                            &mut batch,
                            &mut bufs,
                            &mut got,
                            &mut interval,
                        )?;
                    }
                }
            }
            let asked = self.progress.asked.load(Ordering::Acquire);
            let was_asked = asked > published;
            if stopping || was_asked || Instant::now() >= next_publish {
                self.progress.received.store(received, Ordering::Relaxed);
                let gaps = self.subs.iter().map(|s| s.verifier.gaps()).sum();
                self.progress.gaps.store(gaps, Ordering::Relaxed);
                total.add(&interval).expect("same bounds");
                self.progress
                    .interval
                    .lock()
                    .unwrap()
                    .add(&interval)
                    .expect("same bounds");
                interval.reset();
                next_publish = Instant::now() + PUBLISH_EVERY;
                published = asked;
                let (done, cv) = &self.progress.done;
                *done.lock().unwrap() = asked;
                cv.notify_all();
            }
            if stopping {
                break;
            }
        }
        let mut webrtc = WebrtcCounts::default();
        for m in self.subs.iter().filter_map(|s| s.media.as_ref()) {
            webrtc += &m.counts;
        }
        Ok(RecvOutcome {
            verifiers: self
                .subs
                .into_iter()
                .map(|s| (s.index, s.verifier))
                .collect(),
            latency: total,
            webrtc,
        })
    }

    /// Read subscriber `k`'s socket until it is empty; returns how many datagrams arrived.
    fn drain(
        &mut self,
        k: usize,
        batch: &mut RecvBatch,
        bufs: &mut [&mut [u8]],
        got: &mut [Received],
        latency: &mut Histogram<u64>,
    ) -> io::Result<u64> {
        let Some(sub) = self.subs.get_mut(k) else {
            return Ok(0);
        };
        let mut count = 0;
        loop {
            let n = batch.recv(&*sub.socket, bufs, got)?;
            if n == 0 {
                return Ok(count);
            }
            let now = self.origin.elapsed().as_nanos() as u64;
            for (buf, r) in bufs[..n].iter_mut().zip(&got[..n]) {
                let len = match &mut sub.media {
                    // SRTP is opened in place; what is not media was counted there.
                    Some(media) => match media.open(&mut buf[..r.len]) {
                        Some(len) => len,
                        None => continue,
                    },
                    None => r.len,
                };
                if let Some(ns) = sub.verifier.feed(&buf[..len], now) {
                    latency.saturating_record((ns / 1000).max(1));
                }
            }
            count += n as u64;
        }
    }
}

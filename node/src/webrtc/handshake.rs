//! The handshake thread: every viewer's DTLS handshake, off the shards.
//!
//! A handshake costs milliseconds of CPU (ECDHE, an ECDSA signature and a verify); on a shard it
//! would stall forwarding to everyone else on that core. The shards hand this thread the records
//! viewers send them; it drives one sans-IO [`Handshake`] per viewer and sends the replies through
//! a clone of the viewer's shard socket, so they leave from the address ICE checked. A finished
//! handshake's SRTP keys go to the control thread, which starts the viewer's tracks on its shard
//! with them in one command.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corecast_webrtc::dtls::{self, Certificate, Handshake, HandshakeEvent, SrtpKeys};
use corecast_webrtc::ice::ViewerKey;
use corecast_webrtc::sdp::Fingerprint;

use super::HandshakeInput;
use crate::control::ControlHandle;

/// Records and commands waiting for the thread; a shard that finds it full drops the record
/// (counted), which the peer retransmits.
const QUEUE: usize = 4096;
/// Longest the thread sleeps with nothing due, so it sees `stop` soon enough.
const IDLE: Duration = Duration::from_millis(100);
/// How long a finished handshake is kept to answer the peer's retransmitted last flight (if
/// ours was lost) before its memory (7-10 KiB) is given back; DTLS's retransmission timer
/// gives up well before.
const KEEP_AFTER_CONNECTED: Duration = Duration::from_secs(10);

/// The shards' and control thread's way into the handshake thread.
#[derive(Clone)]
pub struct HandshakeTx(SyncSender<HandshakeInput>);

/// The thread's end of the queue, kept until the thread starts (after the control thread,
/// whose handle it needs; the shards and control need the sending end before that).
pub struct HandshakeRx(Receiver<HandshakeInput>);

/// The handshake thread's input queue.
pub fn channel() -> (HandshakeTx, HandshakeRx) {
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    (HandshakeTx(tx), HandshakeRx(rx))
}

impl HandshakeTx {
    /// Hand over without waiting; gives the input back when the queue is full or the thread gone.
    pub fn try_send(&self, input: HandshakeInput) -> Result<(), HandshakeInput> {
        self.0.try_send(input).map_err(|e| match e {
            TrySendError::Full(i) | TrySendError::Disconnected(i) => i,
        })
    }
}

/// Handshakes by outcome, since start; read by telemetry.
#[derive(Debug, Default)]
pub struct HandshakeCounters {
    pub started: AtomicU64,
    pub completed: AtomicU64,
    pub failed: AtomicU64,
    /// Records for a viewer the thread does not expect (gone, or never admitted).
    pub unexpected: AtomicU64,
    /// Total server-side time spent in handshakes that completed, in microseconds.
    pub cpu_micros: AtomicU64,
}

struct Viewer {
    shard: usize,
    /// The certificate fingerprint its offer gave; `None` if it is not one DTLS can check
    /// (not sha-256), and then its handshake fails.
    remote: Option<dtls::Fingerprint>,
    peer: Option<SocketAddr>,
    handshake: Option<Handshake>,
    /// Keys already handed over: later records are the peer's retransmissions, still answered
    /// until `KEEP_AFTER_CONNECTED` after this.
    secured: Option<Instant>,
    failed: bool,
}

pub struct HandshakeThread {
    rx: Receiver<HandshakeInput>,
    /// A clone of each shard's socket, by shard index.
    sockets: Vec<UdpSocket>,
    certificate: Certificate,
    control: ControlHandle,
    viewers: HashMap<ViewerKey, Viewer>,
    counters: Arc<HandshakeCounters>,
    stop: Arc<AtomicBool>,
}

impl HandshakeThread {
    /// The thread, not started yet: `run` it on a thread of its own.
    pub fn new(
        rx: HandshakeRx,
        sockets: Vec<UdpSocket>,
        certificate: Certificate,
        control: ControlHandle,
        counters: Arc<HandshakeCounters>,
        stop: Arc<AtomicBool>,
    ) -> HandshakeThread {
        HandshakeThread {
            rx: rx.0,
            sockets,
            certificate,
            control,
            viewers: HashMap::new(),
            counters,
            stop,
        }
    }

    pub fn run(mut self) {
        while !self.stop.load(Ordering::Acquire) {
            let now = Instant::now();
            let wait = self
                .next_timeout()
                .map_or(IDLE, |at| at.saturating_duration_since(now).min(IDLE));
            match self.rx.recv_timeout(wait) {
                Ok(input) => self.handle(input),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            // Take whatever else is queued before looking at timers.
            while let Ok(input) = self.rx.try_recv() {
                self.handle(input);
            }
            self.handle_timeouts(Instant::now());
        }
    }

    fn next_timeout(&self) -> Option<Instant> {
        self.viewers
            .values()
            .filter_map(|v| v.handshake.as_ref()?.poll_timeout())
            .min()
    }

    fn handle(&mut self, input: HandshakeInput) {
        match input {
            HandshakeInput::Expect {
                viewer,
                shard,
                remote,
            } => {
                self.viewers.insert(
                    viewer,
                    Viewer {
                        shard,
                        remote: dtls_fingerprint(&remote),
                        peer: None,
                        handshake: None,
                        secured: None,
                        failed: false,
                    },
                );
            }
            HandshakeInput::Forget(viewer) => {
                self.viewers.remove(&viewer);
            }
            HandshakeInput::Datagram {
                viewer,
                from,
                bytes,
            } => self.datagram(viewer, from, &bytes),
        }
    }

    fn datagram(&mut self, key: ViewerKey, from: SocketAddr, bytes: &[u8]) {
        let Some(v) = self.viewers.get_mut(&key) else {
            self.counters.unexpected.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if v.failed {
            return;
        }
        if v.secured.is_some() && v.handshake.is_none() {
            // Its handshake was done and let go: a late record has nothing to answer it.
            self.counters.unexpected.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Some(remote) = v.remote else {
            v.failed = true;
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
            self.control
                .cast(move |state| state.viewer_failed(key, "dtls_fingerprint_algorithm"));
            return;
        };
        let started = Instant::now();
        let handshake = v.handshake.get_or_insert_with(|| {
            self.counters.started.fetch_add(1, Ordering::Relaxed);
            Handshake::new(&self.certificate, remote, started)
        });
        // Replies go where the last record came from: ICE may have moved the viewer.
        v.peer = Some(from);
        if let Err(e) = handshake.handle_datagram(bytes, started) {
            tracing::debug!(viewer = key.0, "dtls record refused: {}", e.reason());
        }
        let spent = started.elapsed();
        self.flush(key, spent);
    }

    fn handle_timeouts(&mut self, now: Instant) {
        for v in self.viewers.values_mut() {
            if v.secured
                .is_some_and(|at| now.saturating_duration_since(at) >= KEEP_AFTER_CONNECTED)
            {
                v.handshake = None;
            }
        }
        let due: Vec<ViewerKey> = self
            .viewers
            .iter()
            .filter(|(_, v)| {
                v.handshake
                    .as_ref()
                    .and_then(Handshake::poll_timeout)
                    .is_some_and(|at| at <= now)
            })
            .map(|(&k, _)| k)
            .collect();
        for key in due {
            if let Some(h) = self
                .viewers
                .get_mut(&key)
                .and_then(|v| v.handshake.as_mut())
            {
                h.handle_timeout(now);
            }
            self.flush(key, Duration::ZERO);
        }
    }

    /// Send what the viewer's handshake has to send and act on what it says.
    fn flush(&mut self, key: ViewerKey, spent: Duration) {
        let Some(v) = self.viewers.get_mut(&key) else {
            return;
        };
        let Some(handshake) = v.handshake.as_mut() else {
            return;
        };
        if let (Some(peer), Some(socket)) = (v.peer, self.sockets.get(v.shard)) {
            while let Some(datagram) = handshake.poll_transmit() {
                if let Err(e) = socket.send_to(&datagram, peer) {
                    tracing::debug!(viewer = key.0, "dtls send: {e}");
                }
            }
        }
        let mut cpu = spent;
        while let Some(event) = handshake.poll_event() {
            match event {
                HandshakeEvent::Connected(keys) => {
                    if v.secured.is_some() {
                        continue;
                    }
                    v.secured = Some(Instant::now());
                    self.counters.completed.fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .cpu_micros
                        .fetch_add(cpu.as_micros() as u64, Ordering::Relaxed);
                    cpu = Duration::ZERO;
                    let peer = v.peer;
                    self.control
                        .cast(move |state| state.viewer_secured(key, keys, peer));
                }
                HandshakeEvent::Failed(error) => {
                    v.failed = true;
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(viewer = key.0, "dtls handshake failed: {error}");
                    let reason = error.reason();
                    self.control
                        .cast(move |state| state.viewer_failed(key, reason));
                }
                HandshakeEvent::Closed => {
                    self.control
                        .cast(move |state| state.viewer_failed(key, "dtls_closed"));
                }
            }
        }
    }
}

/// The keys a shard seals a viewer's copies with, from what the handshake agreed.
pub fn viewer_keys(keys: &SrtpKeys) -> crate::shard::ViewerKeys {
    // Two SSRCs out per viewer: its video and its audio track (RTX joins later). In, the
    // browser's RTCP comes from an SSRC or two of its own.
    crate::shard::ViewerKeys {
        outbound: keys.outbound(2),
        inbound: keys.inbound(4),
    }
}

/// The SDP's fingerprint as DTLS checks it; `None` unless it is sha-256.
fn dtls_fingerprint(f: &Fingerprint) -> Option<dtls::Fingerprint> {
    dtls::Fingerprint::parse(f.algorithm.name(), &f.hex()).ok()
}

/// The certificate's fingerprint as SDP writes it.
pub fn sdp_fingerprint(certificate: &Certificate) -> Fingerprint {
    Fingerprint::sha256(*certificate.fingerprint().as_bytes())
}

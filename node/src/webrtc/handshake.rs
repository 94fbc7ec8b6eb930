//! The handshake thread: every viewer's DTLS handshake, off the shards.
//!
//! A handshake costs milliseconds of CPU (ECDHE, an ECDSA signature and a verify); on a shard it
//! would stall forwarding to everyone else on that core. The shards hand this thread the records
//! viewers send them; it drives one sans-IO [`Handshake`] per viewer and sends the replies through
//! a clone of the viewer's shard socket, so they leave from the address ICE checked. A finished
//! handshake's SRTP keys go to the control thread, which starts the viewer's tracks on its shard
//! with them in one command.
//!
//! Memory: a handshake in progress is boxed (dimpl's state is 3.5 KiB inline, 4-7 KiB of heap)
//! so that the map of viewers holds small entries; once connected it is traded for its
//! [`FinalFlight`] (about 100 octets), which answers a lost last flight for
//! `KEEP_AFTER_CONNECTED`; after that the viewer's entry goes too, and a secured viewer costs
//! this thread nothing.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corecast_webrtc::dtls::{
    self, Certificate, FinalFlight, Handshake, HandshakeEvent, ServerConfig, SrtpKeys,
};
use corecast_webrtc::ice::ViewerKey;
use corecast_webrtc::sdp::Fingerprint;

use super::HandshakeInput;
use crate::control::ControlHandle;

/// Records and commands waiting for the thread; a shard that finds it full drops the record
/// (counted), which the peer retransmits.
const QUEUE: usize = 4096;
/// Longest the thread sleeps with nothing due, so it sees `stop` soon enough.
const IDLE: Duration = Duration::from_millis(100);
/// How long a finished handshake's last flight is kept to answer the peer's retransmission of
/// its own (if ours was lost); DTLS's retransmission timer gives up well before.
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
    /// Records for a viewer the thread does not expect (gone, never admitted, or secured more
    /// than `KEEP_AFTER_CONNECTED` ago).
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
    stage: Stage,
}

/// Where a viewer's handshake is.
enum Stage {
    /// Expected; no record from it yet.
    Waiting,
    /// Boxed: dimpl's state is large, and most viewers are past this stage.
    InProgress(Box<Handshake>),
    /// Keys handed over; the peer's retransmitted last flight is answered until `until`.
    Answering {
        flight: FinalFlight,
        until: Instant,
    },
    /// Keys handed over, nothing kept to answer with (momentarily, on the way to `Answering`).
    Done,
    Failed,
}

pub struct HandshakeThread {
    rx: Receiver<HandshakeInput>,
    /// A clone of each shard's socket, by shard index.
    sockets: Vec<UdpSocket>,
    certificate: Certificate,
    /// The SRTP profiles viewers may get (`--srtp-profiles`).
    dtls: ServerConfig,
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
        dtls: ServerConfig,
        control: ControlHandle,
        counters: Arc<HandshakeCounters>,
        stop: Arc<AtomicBool>,
    ) -> HandshakeThread {
        HandshakeThread {
            rx: rx.0,
            sockets,
            certificate,
            dtls,
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
            .filter_map(|v| match &v.stage {
                Stage::InProgress(h) => h.poll_timeout(),
                Stage::Answering { until, .. } => Some(*until),
                _ => None,
            })
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
                        stage: Stage::Waiting,
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
        let started = Instant::now();
        match &mut v.stage {
            Stage::Failed => return,
            Stage::Done => {
                // Its handshake was done and let go: a late record has nothing to answer it.
                self.counters.unexpected.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Stage::Answering { flight, .. } => {
                match flight.handle_datagram(bytes, started) {
                    Ok(true) => {
                        v.peer = Some(from);
                        if let Some(socket) = self.sockets.get(v.shard) {
                            for datagram in flight.datagrams() {
                                if let Err(e) = socket.send_to(datagram, from) {
                                    tracing::debug!(viewer = key.0, "dtls resend: {e}");
                                }
                            }
                        }
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::debug!(viewer = key.0, "dtls record refused: {}", e.reason())
                    }
                }
                return;
            }
            Stage::Waiting | Stage::InProgress(_) => {}
        }
        let Some(remote) = v.remote else {
            v.stage = Stage::Failed;
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
            self.control
                .cast(move |state| state.viewer_failed(key, "dtls_fingerprint_algorithm"));
            return;
        };
        if matches!(v.stage, Stage::Waiting) {
            self.counters.started.fetch_add(1, Ordering::Relaxed);
            let handshake = Handshake::with_config(&self.dtls, &self.certificate, remote, started);
            v.stage = Stage::InProgress(Box::new(handshake));
        }
        let Stage::InProgress(handshake) = &mut v.stage else {
            return;
        };
        // Replies go where the last record came from: ICE may have moved the viewer.
        v.peer = Some(from);
        if let Err(e) = handshake.handle_datagram(bytes, started) {
            tracing::debug!(viewer = key.0, "dtls record refused: {}", e.reason());
        }
        let spent = started.elapsed();
        self.flush(key, spent);
    }

    fn handle_timeouts(&mut self, now: Instant) {
        let mut due = Vec::new();
        let before = self.viewers.len();
        // Past its answering time a secured viewer has nothing left here: a late record from it
        // finds no entry and is counted as unexpected.
        self.viewers
            .retain(|_, v| !matches!(&v.stage, Stage::Answering { until, .. } if *until <= now));
        if self.viewers.len() < before && self.viewers.len() * 4 < self.viewers.capacity() {
            // After a burst of joins the table would keep its size for good.
            self.viewers.shrink_to(self.viewers.len() * 2);
        }
        if self.viewers.len() < before && self.viewers.is_empty() {
            // A burst of joins left this thread's arena holding every handshake's state (5 to
            // 7 KiB of heap each while in progress), freed now; once, when the last goes.
            corecast_udp::release_free_memory();
        }
        for (&key, v) in self.viewers.iter_mut() {
            match &mut v.stage {
                Stage::InProgress(h) if h.poll_timeout().is_some_and(|at| at <= now) => {
                    h.handle_timeout(now);
                    due.push(key);
                }
                _ => {}
            }
        }
        for key in due {
            self.flush(key, Duration::ZERO);
        }
    }

    /// Send what the viewer's handshake has to send and act on what it says.
    fn flush(&mut self, key: ViewerKey, spent: Duration) {
        let Some(v) = self.viewers.get_mut(&key) else {
            return;
        };
        let Stage::InProgress(handshake) = &mut v.stage else {
            return;
        };
        if let (Some(peer), Some(socket)) = (v.peer, self.sockets.get(v.shard)) {
            while let Some(datagram) = handshake.poll_transmit() {
                if let Err(e) = socket.send_to(&datagram, peer) {
                    tracing::debug!(viewer = key.0, "dtls send: {e}");
                }
            }
        }
        let mut connected = false;
        let mut failed = false;
        while let Some(event) = handshake.poll_event() {
            match event {
                HandshakeEvent::Connected(keys) => {
                    connected = true;
                    self.counters.completed.fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .cpu_micros
                        .fetch_add(spent.as_micros() as u64, Ordering::Relaxed);
                    let peer = v.peer;
                    self.control
                        .cast(move |state| state.viewer_secured(key, keys, peer));
                }
                HandshakeEvent::Failed(error) => {
                    failed = true;
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
        if failed {
            v.stage = Stage::Failed;
        } else if connected {
            // Everything it had to send went out above: what is left to do is answer a lost
            // last flight, which needs only its bytes.
            let Stage::InProgress(handshake) = std::mem::replace(&mut v.stage, Stage::Done) else {
                return;
            };
            if let Some(flight) = handshake.into_final_flight() {
                v.stage = Stage::Answering {
                    flight,
                    until: Instant::now() + KEEP_AFTER_CONNECTED,
                };
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
        // Viewers send no media: SRTCP keys only.
        inbound: keys.inbound_rtcp(4),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_viewer_entry_is_small_whatever_its_stage() {
        // Every viewer of the node has one for as long as it lives; dimpl's state (3.5 KiB
        // inline) is boxed while in progress and let go once connected.
        let entry = std::mem::size_of::<(ViewerKey, Viewer)>();
        assert!(entry <= 160, "a viewer entry is {entry} octets");
        assert!(std::mem::size_of::<Handshake>() > 3000);
    }
}

//! A verifying load generator: paced sources shaped like real media, many subscriber sockets,
//! and a check of every packet each subscriber receives.
//!
//! [`run`] does one run and returns a [`Report`]:
//!
//! 1. Bind the subscriber sockets (large `SO_RCVBUF`) and one socket per source.
//! 2. Without [`Config::raw_target`]: create the sources and subscribers on the node through its
//!    HTTP API (subscriber `j` on source `j % S`); with it, send the one source straight to that
//!    address and expect the packets unmodified on the subscriber sockets.
//! 3. Receive on [`Config::recv_threads`] threads ([`recv`]), send from one pacing thread
//!    ([`send`]), and, with [`Config::switch_every`], move every subscriber to the next source
//!    at that interval ([`api::switch_rounds`]); call [`Observer::progress`] every second.
//! 4. After sending, wait at least [`Config::drain`] for packets in flight, collect every verifier's
//!    result, delete what was created, and judge the run ([`Report::judge`]).
//!
//! With [`Config::whep`] the subscribers are WHEP viewers: one channel per source, an SDP
//! offer per viewer, ICE and DTLS from one thread, SRTP opened before verification ([`whep`]).
//!
//! [`stream`] builds the packets, [`payload`] the verifiable bytes inside them, [`verify`] checks
//! them, [`report`] sums up, [`cli`] and [`demo`] are the `corecast loadgen` and `corecast demo`
//! commands. [`check`] is `corecast check`, the same checks on one stream of any sender.
//!
//! The `corecast` binary runs these commands; this crate does not depend on the node library
//! (the binary hands the demo its node through [`demo::DemoNode`]). Sockets and syscalls are
//! `corecast_udp`'s.

pub mod api;
pub mod check;
pub mod cli;
pub mod demo;
pub mod payload;
pub mod recv;
pub mod report;
mod run;
pub mod send;
pub mod stream;
pub mod verify;
pub mod whep;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

pub use report::{Latency, Report};
pub use run::run;
pub use stream::StreamShape;
pub use verify::Verifier;

/// Default `--max-loss`: 0.1% of the packets expected. A healthy node on loopback loses none;
/// this leaves room for a burst the kernel drops on a busy machine.
pub const DEFAULT_MAX_LOSS: f64 = 0.001;
/// Default `--max-p99-ms`. A keyframe's copies leave one after the other, so p99 grows with the
/// subscribers per shard and with how often they switch (every switch brings a keyframe):
/// 158-188 ms measured for `--sources 2 --subscribers 500 --switch-every 2` against a release
/// node on the 2-core development machine, load generator included (BENCHMARKS.md). A backlog
/// anywhere shows as seconds.
pub const DEFAULT_MAX_P99_MS: u64 = 500;

/// Everything one run needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Control API address (`HOST:PORT` or a URL); unused in raw mode.
    pub server: String,
    pub token: Option<String>,
    pub sources: u32,
    /// Subscribers in all, spread round-robin over the sources.
    pub subscribers: u32,
    /// How long to send; `None` until [`Config::stop`] is triggered.
    pub duration: Option<Duration>,
    /// What each source sends.
    pub shape: StreamShape,
    /// Move every subscriber to the next source this often (needs two sources or more).
    pub switch_every: Option<Duration>,
    /// Loss, as a fraction of the packets expected (0.001 is 0.1%), above which the run fails.
    pub max_loss: f64,
    /// End-to-end p99 latency above which the run fails; `None`: latency is not judged.
    pub max_p99: Option<Duration>,
    /// A local process whose CPU time is reported as `server_cpu_s`.
    pub server_pid: Option<u32>,
    pub recv_threads: usize,
    /// Address the subscriber and source sockets bind to.
    pub bind_ip: IpAddr,
    /// Send the single source here instead of to a node's ingest port, without the API.
    pub raw_target: Option<SocketAddr>,
    /// Raw mode: the address the forwarder sends from, if known; subscriber sockets then take
    /// datagrams only from it (API mode does this with each subscriber's `media_from`).
    pub raw_from: Option<SocketAddr>,
    /// Bind subscriber `j` on this port + `j` (default: any free port).
    pub recv_base_port: Option<u16>,
    /// Receive buffer asked for each subscriber socket, in bytes.
    pub rcvbuf: usize,
    /// Time given to packets in flight after sending stops, at least; the drain goes on while
    /// packets still arrive (up to 10 s more) and ends after 500 ms without one.
    pub drain: Duration,
    /// Progress windows end on whole seconds after this instant (`corecast demo` gives the
    /// node's start, so each window is one of the node's 1 s stats intervals and the two sets of
    /// numbers cover the same time); default: the start of sending.
    pub tick_origin: Option<std::time::Instant>,
    /// Subscribers are WebRTC viewers (WHEP, ICE, DTLS, SRTP; [`whep`]) instead of plain RTP.
    pub whep: bool,
    /// Subscribers the node sends to that nothing here receives (`--unverified`): created
    /// after the verified ones, on the same sources round-robin.
    pub unverified: Vec<SocketAddr>,
    /// Ends the run early when triggered (e.g. on Ctrl-C); the run triggers it itself when
    /// sending ends, so give each run its own.
    pub stop: Stop,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            server: "127.0.0.1:8080".into(),
            token: None,
            sources: 1,
            subscribers: 100,
            duration: Some(Duration::from_secs(10)),
            shape: StreamShape {
                codec: corecast_engine::Codec::Vp8,
                bitrate: 2_000_000,
                fps: 30,
                gop: 60,
                packet_size: 1200,
            },
            switch_every: None,
            max_loss: DEFAULT_MAX_LOSS,
            max_p99: Some(Duration::from_millis(DEFAULT_MAX_P99_MS)),
            server_pid: None,
            recv_threads: 1,
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            raw_target: None,
            raw_from: None,
            recv_base_port: None,
            rcvbuf: 4 << 20,
            drain: Duration::from_millis(500),
            tick_origin: None,
            whep: false,
            unverified: Vec::new(),
            stop: Stop::default(),
        }
    }
}

/// Where a run stands, once a second.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Progress {
    /// Seconds since sending started.
    pub elapsed_s: f64,
    /// The window the per-interval figures (`received_pps`, `p99_us`) cover, in seconds since
    /// [`Config::tick_origin`] (or since sending started).
    pub window_start_s: f64,
    pub window_end_s: f64,
    pub packets_sent: u64,
    /// Datagrams received by all subscribers so far.
    pub packets_received: u64,
    /// Datagrams received per second over the window.
    pub received_pps: f64,
    /// Sequence gaps still open across subscribers (loss so far; a late packet closes one).
    pub gaps: u64,
    /// End-to-end p99 of the copies received in the window, in µs (the load generator's send
    /// to its receive); `None` when nothing arrived.
    pub p99_us: Option<u64>,
    pub switches_requested: u64,
}

/// What a caller sees of a run while it goes.
pub trait Observer {
    /// The subscriber sockets are bound (their addresses, by subscriber index) and sending is
    /// about to start.
    fn ready(&mut self, _subscribers: &[SocketAddr]) {}
    /// Called once a second while sending.
    fn progress(&mut self, _p: &Progress) {}
}

/// An observer that ignores everything.
impl Observer for () {}

/// A flag that can be waited on: triggered once, seen by every clone.
#[derive(Clone, Debug, Default)]
pub struct Stop(Arc<(Mutex<bool>, Condvar)>);

impl Stop {
    pub fn new() -> Stop {
        Stop::default()
    }

    pub fn trigger(&self) {
        let (flag, cv) = &*self.0;
        *flag.lock().unwrap() = true;
        cv.notify_all();
    }

    pub fn is_triggered(&self) -> bool {
        *self.0 .0.lock().unwrap()
    }

    /// Wait up to `timeout`; true if triggered (at once if it already was).
    pub fn wait(&self, timeout: Duration) -> bool {
        let (flag, cv) = &*self.0;
        let guard = flag.lock().unwrap();
        let (guard, _) = cv
            .wait_timeout_while(guard, timeout, |triggered| !*triggered)
            .unwrap();
        *guard
    }
}

//! Start-up, one step per part, in order: the event handlers, the shards (each saying whether it
//! could pin, so nothing else starts on a node that cannot run as asked), ingest, telemetry,
//! control, the handshake thread (WHEP viewers' DTLS), and the HTTP API last. Each step puts what it started under a guard at once, so a
//! step that fails returns its [`StartError`] with everything before it stopped and joined.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use corecast_signaling::server::{ApiConfig, ApiServer};
use corecast_udp::Buffer;
use corecast_webrtc::dtls::Certificate;
use corecast_webrtc::ice::IceConfig;
use crossbeam_queue::ArrayQueue;
use mio::{Poll, Waker};
use socket2::{Domain, Protocol, Socket, Type};

use super::config::{ConfigError, NodeConfig};
use super::threads::{Guard, Threads};
use super::Node;
use crate::clock::Clock;
use crate::config::GsoMode;
use crate::control::{ControlHandle, ControlState, Settings, ShardHandle, WebrtcSettings};
use crate::events::{Event, EventBus, EventType};
use crate::ingest::{Ingest, IngestLink, IngestSettings};
use crate::shard::{ShardLink, ShardWorker, WAKER as SHARD_WAKER};
use crate::telemetry::{Aggregates, SharedAggregates, Telemetry, TelemetrySettings};
use crate::views::NodeControl;
use crate::wake::Wake;
use crate::webrtc::{HandshakeCounters, HandshakeRx, HandshakeThread, HandshakeTx};

const INGEST_WAKER: mio::Token = mio::Token(usize::MAX);
const COMMAND_QUEUE: usize = 1 << 16;
const EVENT_QUEUE: usize = 1 << 16;
/// Snapshots waiting for the telemetry thread, per shard; more than a few means it is stuck.
const SNAPSHOT_QUEUE: usize = 4;
/// What shutdown gives event handlers to deliver what they hold, within the 2 s budget.
const EVENTS_FLUSH: Duration = Duration::from_millis(600);

/// Why a node could not start: what failed, and why. By the time it is returned, every thread
/// the node had started is stopped and joined.
#[derive(Debug)]
pub enum StartError {
    /// The settings cannot be honoured: where the shards go, or an event handler's description.
    Config(ConfigError),
    /// An event handler's output could not be opened, or its thread started.
    EventHandlers(io::Error),
    /// `owner`'s poller could not be created.
    Poller { owner: Owner, error: io::Error },
    /// `owner`'s waker could not be created.
    Waker { owner: Owner, error: io::Error },
    /// Shard `shard`'s media socket failed at `step`.
    MediaSocket {
        shard: u32,
        step: SocketStep,
        error: io::Error,
    },
    /// The thread `name` could not be started.
    Spawn { name: String, error: io::Error },
    /// Shard `shard` could not be pinned to core `core`.
    Pin {
        shard: u32,
        core: usize,
        error: io::Error,
    },
    /// Shard `shard`'s thread ended (it panicked) before saying whether it could pin.
    ShardLost { shard: u32 },
    /// The HTTP API could not be served on `addr`.
    Http { addr: SocketAddr, error: io::Error },
    /// The DTLS certificate for WHEP viewers could not be made.
    Certificate(String),
    /// The packet pool the histories need is larger than the memory available.
    Pool {
        slots: usize,
        bytes: usize,
        available: usize,
    },
}

/// The thread a poller or waker is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    Ingest,
    Shard(u32),
}

/// The step of setting up a shard's media socket that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketStep {
    Create,
    Bind(IpAddr),
    NonBlocking,
    LocalAddr,
    Clone,
    /// `--gso on`, and the socket does not take UDP GSO.
    Gso,
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Ingest => f.write_str("the ingest thread"),
            Owner::Shard(k) => write!(f, "shard {k}"),
        }
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(e) => e.fmt(f),
            StartError::EventHandlers(error) => {
                write!(f, "cannot start the event handlers: {error}")
            }
            StartError::Poller { owner, error } => {
                write!(f, "cannot create {owner}'s poller: {error}")
            }
            StartError::Waker { owner, error } => {
                write!(f, "cannot create {owner}'s waker: {error}")
            }
            StartError::MediaSocket { shard, step, error } => match step {
                SocketStep::Create => write!(f, "cannot create shard {shard}'s media socket"),
                SocketStep::Bind(ip) => {
                    write!(f, "cannot bind shard {shard}'s media socket on {ip}")
                }
                SocketStep::NonBlocking => {
                    write!(f, "cannot make shard {shard}'s media socket non-blocking")
                }
                SocketStep::LocalAddr => write!(f, "cannot read shard {shard}'s media address"),
                SocketStep::Clone => {
                    write!(f, "cannot clone shard {shard}'s media socket for DTLS")
                }
                SocketStep::Gso => write!(
                    f,
                    "shard {shard}'s media socket does not take UDP GSO (--gso on; \
                     --gso auto falls back to a datagram per copy)"
                ),
            }
            .and_then(|()| write!(f, ": {error}")),
            StartError::Spawn { name, error } => {
                write!(f, "cannot start the thread {name}: {error}")
            }
            StartError::Pin { shard, core, error } => {
                write!(f, "shard {shard} cannot be pinned to core {core}: {error}")
            }
            StartError::ShardLost { shard } => {
                write!(f, "shard {shard}'s thread ended before it could be pinned")
            }
            StartError::Http { addr, error } => {
                write!(f, "cannot serve the HTTP API on {addr}: {error}")
            }
            StartError::Certificate(error) => {
                write!(
                    f,
                    "cannot make the DTLS certificate for WebRTC viewers: {error}"
                )
            }
            StartError::Pool {
                slots,
                bytes,
                available,
            } => write!(
                f,
                "the packet pool needs {slots} slots ({} MiB) to hold every source's history, \
                 more than the {} MiB available: lower --history-packets or --max-sources, or \
                 --history-ms 0 to keep none",
                bytes >> 20,
                available >> 20
            ),
        }
    }
}

// The cause is part of the message, so `source` stays empty (a reporter would print it twice).
impl std::error::Error for StartError {}

impl From<ConfigError> for StartError {
    fn from(e: ConfigError) -> StartError {
        StartError::Config(e)
    }
}

impl NodeConfig {
    /// Starts every thread of a node configured so.
    pub fn start(self) -> Result<Node, StartError> {
        let mut node = Builder::new(self)?;
        let handles = node.start_shards()?;
        node.start_ingest()?;
        let aggregates = node.start_telemetry()?;
        let control = node.start_control(handles, aggregates)?;
        node.start_handshakes(control.clone())?;
        node.serve_http(control)?;
        Ok(node.finish())
    }
}

/// A node part-way through start-up. Dropped before [`Builder::finish`] (a step failed), its
/// `threads` stop and join everything started so far, last first.
struct Builder {
    config: NodeConfig,
    clock: Clock,
    ingest: Arc<IngestLink>,
    /// Taken by [`Builder::start_ingest`].
    ingest_poll: Option<Poll>,
    shards: Vec<Arc<ShardLink>>,
    media_from: Vec<SocketAddr>,
    http_addr: SocketAddr,
    certificate: Certificate,
    handshake_tx: HandshakeTx,
    /// Taken by [`Builder::start_handshakes`].
    handshake_rx: Option<HandshakeRx>,
    /// A clone of each shard's socket, which the handshake thread answers viewers through.
    handshake_sockets: Vec<std::net::UdpSocket>,
    handshake_counters: Arc<HandshakeCounters>,
    // Fields drop in order: the builder's share of the bus before the guards, whose first
    // shuts the bus down once every other holder is joined.
    events: Arc<EventBus>,
    threads: Threads,
}

impl Builder {
    fn new(config: NodeConfig) -> Result<Builder, StartError> {
        let owner = Owner::Ingest;
        let ingest_poll = Poll::new().map_err(|error| StartError::Poller { owner, error })?;
        let ingest_waker = Waker::new(ingest_poll.registry(), INGEST_WAKER)
            .map_err(|error| StartError::Waker { owner, error })?;
        let ingest = Arc::new(IngestLink {
            commands: ArrayQueue::new(COMMAND_QUEUE),
            keyframe_requests: ArrayQueue::new(COMMAND_QUEUE),
            snapshots: ArrayQueue::new(4),
            wake: Wake::new(ingest_waker),
            stop: AtomicBool::new(false),
        });
        let events = EventBus::start(config.node_name.clone(), config.event_handlers.clone())
            .map_err(StartError::EventHandlers)?;
        let events = Arc::new(events);
        let certificate =
            Certificate::generate().map_err(|e| StartError::Certificate(e.to_string()))?;
        let (handshake_tx, handshake_rx) = crate::webrtc::channel();
        let mut threads = Threads::default();
        let bus = events.clone();
        threads.push(Guard::part("events", move || match Arc::try_unwrap(bus) {
            Ok(bus) => {
                bus.shutdown(EVENTS_FLUSH);
            }
            Err(_) => tracing::warn!("event handlers still in use at shutdown; not flushed"),
        }));
        Ok(Builder {
            http_addr: config.http,
            config,
            clock: Clock::start(),
            ingest,
            ingest_poll: Some(ingest_poll),
            shards: Vec::new(),
            media_from: Vec::new(),
            certificate,
            handshake_tx,
            handshake_rx: Some(handshake_rx),
            handshake_sockets: Vec::new(),
            handshake_counters: Arc::default(),
            events,
            threads,
        })
    }

    /// Starts a thread per shard, then waits until each has said whether it could pin, so that
    /// nothing else starts on a node that cannot run as asked.
    fn start_shards(&mut self) -> Result<Vec<ShardHandle>, StartError> {
        let (pinned_tx, pinned_rx) = mpsc::channel();
        let mut handles = Vec::new();
        let placement = self.config.placement.clone();
        for (index, &core) in placement.cores.iter().enumerate() {
            let index = index as u32;
            let (worker, handle, clone) = shard_worker(
                index,
                core,
                &self.config,
                &self.ingest,
                self.clock,
                &self.handshake_tx,
            )?;
            self.handshake_sockets.push(clone);
            let link = worker.link.clone();
            let pin = placement.pin;
            let tx = pinned_tx.clone();
            let thread = spawn(format!("corecast-shard-{index}"), move || {
                let pinned = match core {
                    Some(core) => pin(core).map_err(|error| StartError::Pin {
                        shard: index,
                        core,
                        error,
                    }),
                    None => Ok(()),
                };
                let run = pinned.is_ok();
                let _ = tx.send((index, pinned));
                // A running shard must not hold a sender: then a shard that dies before it
                // reports closes the channel instead of leaving start-up waiting.
                drop(tx);
                if run {
                    worker.run();
                }
            })?;
            let stop = link.clone();
            self.threads.push(Guard::thread(thread, move || {
                stop.stop.store(true, Ordering::Release);
                stop.wake.force();
            }));
            self.shards.push(link);
            self.media_from.push(handle.media_from);
            handles.push(handle);
        }
        drop(pinned_tx);
        let mut reported = vec![false; handles.len()];
        while let Ok((index, pinned)) = pinned_rx.recv() {
            pinned?;
            reported[index as usize] = true;
        }
        match reported.iter().position(|r| !r) {
            Some(index) => Err(StartError::ShardLost {
                shard: index as u32,
            }),
            None => Ok(handles),
        }
    }

    fn start_ingest(&mut self) -> Result<(), StartError> {
        let config = &self.config;
        let packets = self.shards.iter().map(|l| l.packets.clone()).collect();
        let wakes = self.shards.iter().map(|l| l.wake.clone()).collect();
        let source_clocks = self
            .shards
            .iter()
            .map(|l| l.source_clocks.clone())
            .collect();
        // Sized for the packets in flight and every source's history (see `slots_needed`); a
        // pool larger than the memory there is fails the start rather than the kernel later.
        let pool_slots = crate::pool::slots_needed(
            config.queue_depth,
            self.shards.len(),
            config.history.map(|h| h.max_packets),
            config.max_sources,
        );
        let bytes = crate::pool::pool_bytes(pool_slots);
        if let Some(available) = crate::pool::memory_available() {
            if bytes > available {
                return Err(StartError::Pool {
                    slots: pool_slots,
                    bytes,
                    available,
                });
            }
        }
        let worker = Ingest::new(
            self.ingest_poll.take().expect("ingest starts once"),
            self.ingest.clone(),
            packets,
            wakes,
            source_clocks,
            self.clock,
            IngestSettings {
                pool_slots,
                pli_interval: config.pli_interval,
                stats_every: config.stats_interval,
                relatch_after: config.idle_timeout,
                probation: config.probation,
                takeover_silence: config.takeover_silence,
            },
        );
        let thread = spawn("corecast-ingest".into(), move || worker.run())?;
        let link = self.ingest.clone();
        self.threads.push(Guard::thread(thread, move || {
            link.stop.store(true, Ordering::Release);
            link.wake.force();
        }));
        Ok(())
    }

    fn start_telemetry(&mut self) -> Result<SharedAggregates, StartError> {
        let config = &self.config;
        let mut aggregates = Aggregates::new(self.shards.len(), config.metrics_per_subscriber);
        // Uptime and the stats windows count from the clock the snapshots are scheduled on.
        aggregates.started = self.clock.origin();
        let aggregates = Arc::new(std::sync::Mutex::new(aggregates));
        let stop = Arc::new(AtomicBool::new(false));
        let telemetry = Telemetry {
            aggregates: aggregates.clone(),
            shards: self.shards.clone(),
            ingest: self.ingest.clone(),
            events: self.events.clone(),
            settings: TelemetrySettings {
                stats_interval: config.stats_interval,
                idle_timeout: config.idle_timeout,
            },
            stop: stop.clone(),
        };
        let thread = spawn("corecast-telemetry".into(), move || telemetry.run())?;
        let unpark = thread.thread().clone();
        self.threads.push(Guard::thread(thread, move || {
            stop.store(true, Ordering::Release);
            unpark.unpark();
        }));
        Ok(aggregates)
    }

    /// The control thread, and its only handle: the thread ends when that is dropped (by the
    /// HTTP server, or by a later step that fails), so its guard has nothing to ask.
    fn start_control(
        &mut self,
        shards: Vec<ShardHandle>,
        aggregates: SharedAggregates,
    ) -> Result<ControlHandle, StartError> {
        let config = &self.config;
        let settings = Settings {
            rtp_ip: config.rtp_ip,
            ports: config.rtp_ports,
            rcvbuf: config.rcvbuf,
            max_subscribers: config.max_subscribers,
            max_sources: config.max_sources,
            join: config.join,
            replay_pace: config.replay_pace,
            idle_timeout: config.idle_timeout,
            clock: self.clock,
            history: config.history.is_some(),
            node_name: config.node_name.clone(),
            webrtc: Some(WebrtcSettings {
                fingerprint: crate::webrtc::handshake::sdp_fingerprint(&self.certificate),
                public_ip: config.public_ip,
                handshakes: self.handshake_tx.clone(),
                counters: self.handshake_counters.clone(),
            }),
        };
        let state = ControlState::new(
            settings,
            shards,
            self.ingest.clone(),
            aggregates,
            self.events.clone(),
        );
        let (handle, thread) = state.spawn().map_err(|error| StartError::Spawn {
            name: "corecast-control".into(),
            error,
        })?;
        self.threads.push(Guard::thread(thread, || {}));
        Ok(handle)
    }

    /// The handshake thread. It holds a control handle, so it is stopped (and lets go of it)
    /// before the control thread is joined.
    fn start_handshakes(&mut self, control: ControlHandle) -> Result<(), StartError> {
        let sockets = std::mem::take(&mut self.handshake_sockets);
        let rx = self
            .handshake_rx
            .take()
            .expect("the handshake thread starts once");
        let stop = Arc::new(AtomicBool::new(false));
        let worker = HandshakeThread::new(
            rx,
            sockets,
            self.certificate.clone(),
            self.config.dtls.clone(),
            control,
            self.handshake_counters.clone(),
            stop.clone(),
        );
        let thread = spawn("corecast-dtls".into(), move || worker.run())?;
        self.threads.push(Guard::thread(thread, move || {
            stop.store(true, Ordering::Release);
        }));
        Ok(())
    }

    /// Serves the API on `--http`. `control` is the control thread's only handle: the server
    /// takes it, and drops it if it cannot start, so the control thread can then be joined.
    fn serve_http(&mut self, control: ControlHandle) -> Result<(), StartError> {
        let addr = self.config.http;
        let api = ApiConfig {
            token: self.config.token.clone(),
            ..ApiConfig::default()
        };
        let server = ApiServer::spawn(addr, Arc::new(NodeControl { handle: control }), api)
            .map_err(|error| StartError::Http { addr, error })?;
        self.http_addr = server.local_addr();
        self.threads
            .push(Guard::part("http", move || server.shutdown()));
        Ok(())
    }

    /// The node, running; it reports `node.started`.
    fn finish(self) -> Node {
        let data = serde_json::json!({
            "http": self.http_addr.to_string(),
            "shards": self.shards.len(),
            "media_from": self.media_from.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        });
        self.events
            .emit(Event::now(EventType::NodeStarted).with_data(data));
        Node {
            http_addr: self.http_addr,
            media_from: self.media_from,
            started: self.clock.origin(),
            events: Some(self.events),
            threads: self.threads,
        }
    }
}

/// A shard's worker, not yet running, and the control thread's handle on it.
fn shard_worker(
    index: u32,
    core: Option<usize>,
    config: &NodeConfig,
    ingest: &Arc<IngestLink>,
    clock: Clock,
    handshakes: &HandshakeTx,
) -> Result<(ShardWorker, ShardHandle, std::net::UdpSocket), StartError> {
    let owner = Owner::Shard(index);
    let poll = Poll::new().map_err(|error| StartError::Poller { owner, error })?;
    let waker = Waker::new(poll.registry(), SHARD_WAKER)
        .map_err(|error| StartError::Waker { owner, error })?;
    let link = Arc::new(ShardLink {
        packets: Arc::new(ArrayQueue::new(config.queue_depth)),
        commands: ArrayQueue::new(COMMAND_QUEUE),
        source_clocks: Arc::new(ArrayQueue::new(crate::shard::SOURCE_CLOCK_QUEUE)),
        events: ArrayQueue::new(EVENT_QUEUE),
        snapshots: ArrayQueue::new(SNAPSHOT_QUEUE),
        wake: Arc::new(Wake::new(waker)),
        stop: AtomicBool::new(false),
    });
    let (socket, granted) = egress_socket(index, config)?;
    let media_from = socket
        .local_addr()
        .map_err(media_socket(index, SocketStep::LocalAddr))?;
    let clone = socket
        .try_clone()
        .map_err(media_socket(index, SocketStep::Clone))?;
    tracing::info!(
        shard = index,
        core = ?core,
        %media_from,
        sndbuf_asked = config.sndbuf,
        sndbuf_granted = granted,
        "shard socket"
    );
    if granted < config.sndbuf {
        tracing::warn!(
            shard = index,
            "the kernel granted a {granted}-byte send buffer of the {} asked (raise net.core.wmem_max)",
            config.sndbuf
        );
    }
    let gso_segments = gso_segments(index, &socket, config)?;
    let handle = ShardHandle {
        link: link.clone(),
        media_from,
        core,
    };
    let worker = ShardWorker {
        index,
        link,
        ingest: ingest.clone(),
        poll,
        socket: mio::net::UdpSocket::from_std(socket),
        clock,
        batch_size: config.batch,
        gso_segments,
        spin: config.spin,
        snapshot_every: config.stats_interval,
        switch_timeout: config.switch_timeout,
        pli_interval: config.pli_interval,
        handshakes: handshakes.clone(),
        ice: IceConfig {
            consent_timeout: nanos(config.consent_timeout),
            connect_timeout: nanos(config.consent_timeout),
            ..IceConfig::default()
        },
        history: config.history,
    };
    Ok((worker, handle, clone))
}

/// A shard's UDP socket: media goes out of it and subscribers' RTCP comes back to it.
fn egress_socket(
    shard: u32,
    config: &NodeConfig,
) -> Result<(std::net::UdpSocket, usize), StartError> {
    let addr = SocketAddr::new(config.rtp_ip, 0);
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(media_socket(shard, SocketStep::Create))?;
    if let Err(e) = Buffer::Send.set_size(&socket, config.sndbuf) {
        tracing::warn!("cannot set the send buffer to {} bytes: {e}", config.sndbuf);
    }
    // What comes back to the shard socket (RTCP, viewers' STUN checks and DTLS) can arrive a
    // thousand at once when viewers join together, and is read between forwarding turns: the
    // default buffer (about 270 small datagrams) drops the rest.
    if let Err(e) = Buffer::Receive.set_size(&socket, config.rcvbuf) {
        tracing::warn!(
            "cannot set shard {shard}'s receive buffer to {} bytes: {e}",
            config.rcvbuf
        );
    }
    socket
        .bind(&addr.into())
        .map_err(media_socket(shard, SocketStep::Bind(config.rtp_ip)))?;
    socket
        .set_nonblocking(true)
        .map_err(media_socket(shard, SocketStep::NonBlocking))?;
    let granted = Buffer::Send.size(&socket).unwrap_or(0);
    Ok((socket.into(), granted))
}

/// How many copies a shard sends in one GSO message at most (1: no GSO), as `--gso` and what
/// its socket takes decide.
fn gso_segments(
    shard: u32,
    socket: &std::net::UdpSocket,
    config: &NodeConfig,
) -> Result<usize, StartError> {
    let supported = corecast_udp::gso_supported(socket);
    match (config.gso, supported) {
        (GsoMode::Off, _) => Ok(1),
        (_, Ok(())) => {
            tracing::info!(
                shard,
                segments = config.gso_segments,
                "UDP GSO: a subscriber's copies of a run go as one message"
            );
            Ok(config.gso_segments)
        }
        (GsoMode::Auto, Err(error)) => {
            tracing::warn!(
                shard,
                "the media socket does not take UDP GSO ({error}): one datagram per copy"
            );
            Ok(1)
        }
        (GsoMode::On, Err(error)) => Err(StartError::MediaSocket {
            shard,
            step: SocketStep::Gso,
            error,
        }),
    }
}

fn nanos(d: Duration) -> corecast_engine::Nanos {
    corecast_engine::Nanos(d.as_nanos() as u64)
}

fn media_socket(shard: u32, step: SocketStep) -> impl FnOnce(io::Error) -> StartError {
    move |error| StartError::MediaSocket { shard, step, error }
}

fn spawn(name: String, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, StartError> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(body)
        .map_err(|error| StartError::Spawn { name, error })
}

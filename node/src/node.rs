//! Starting and stopping a node: threads, queues and sockets wired together.
//!
//! Threads: one shard worker per selected core (pinned), one ingest thread, one control thread,
//! one HTTP thread. Queues (bounded, crossbeam `ArrayQueue`, one producer each unless noted):
//! ingest → shard k (packets), control → shard k (commands), shard k → control (events),
//! control → ingest (commands), shards and control → ingest (keyframe requests, several
//! producers), ingest → control (snapshots).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use corecast_signaling::server::{ApiConfig, ApiServer};
use crossbeam_queue::ArrayQueue;
use mio::{Poll, Waker};
use socket2::{Domain, Protocol, Socket, Type};

use crate::clock::Clock;
use crate::config::ServeArgs;
use crate::control::{ControlHandle, ControlState, Settings, ShardHandle};
use crate::events::{Event, EventBus, EventType, HandlerConfig, JsonLinesConfig, WebhookConfig};
use crate::ingest::{Ingest, IngestLink, IngestSettings};
use crate::shard::{ShardLink, ShardWorker, WAKER as SHARD_WAKER};
use crate::telemetry::{Aggregates, SharedAggregates, Telemetry, TelemetrySettings};
use crate::views::NodeControl;
use crate::wake::Wake;

const INGEST_WAKER: mio::Token = mio::Token(usize::MAX);
const COMMAND_QUEUE: usize = 1 << 16;
const EVENT_QUEUE: usize = 1 << 16;
/// Snapshots waiting for the telemetry thread, per shard; more than a few means it is stuck.
const SNAPSHOT_QUEUE: usize = 4;
/// What shutdown gives event handlers to deliver what they hold, within the 2 s budget.
const EVENTS_FLUSH: Duration = Duration::from_millis(600);

/// Where each shard runs, and how a shard thread pins itself there.
#[derive(Clone, Debug)]
pub struct Placement {
    /// Core per shard, or `None` per shard when not pinning.
    pub cores: Vec<Option<usize>>,
    /// Pins the calling thread to a core: [`pin_current_thread`], unless a test puts a stand-in
    /// here to make a shard fail to pin (the real call cannot be made to fail on demand, since
    /// [`Placement::choose`] only picks cores the process may use).
    pub pin: fn(usize) -> io::Result<()>,
}

/// Pins the calling thread to `core`.
pub fn pin_current_thread(core: usize) -> io::Result<()> {
    if core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        Ok(())
    } else {
        // core_affinity says only whether it worked; on Linux that is one sched_setaffinity
        // call, whose errno is the kernel's reason.
        Err(io::Error::last_os_error())
    }
}

impl Placement {
    /// One shard per `--cores` entry, or `--shards N` (default: the cores available to this
    /// process) spread over the available cores. Pinning is asked for unless `--no-pin`.
    pub fn choose(args: &ServeArgs) -> Result<Placement, String> {
        let available: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect();
        let cores: Vec<usize> = match (&args.cores, args.shards) {
            (Some(list), _) => {
                if !args.no_pin {
                    if let Some(c) = list.0.iter().find(|c| !available.contains(c)) {
                        return Err(format!(
                            "core {c} is not available to this process (available: {available:?})"
                        ));
                    }
                }
                list.0.clone()
            }
            (None, n) => {
                let n = n
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
                if n == 0 {
                    return Err("--shards must be at least 1".into());
                }
                if available.is_empty() && !args.no_pin {
                    return Err(
                        "cannot read which cores this process may use; pass --no-pin".into(),
                    );
                }
                (0..n)
                    .map(|i| {
                        available
                            .get(i % available.len().max(1))
                            .copied()
                            .unwrap_or(i)
                    })
                    .collect()
            }
        };
        if cores.len() > 64 {
            return Err(format!(
                "{} shards requested; at most 64 are supported",
                cores.len()
            ));
        }
        Ok(Placement {
            cores: cores
                .into_iter()
                .map(|c| (!args.no_pin).then_some(c))
                .collect(),
            pin: pin_current_thread,
        })
    }
}

/// Why a node could not start: what failed, and why. By the time it is returned, every thread
/// the node had started is stopped and joined.
#[derive(Debug)]
pub enum StartError {
    /// The settings cannot be honoured: where the shards go, or an event handler's description.
    Config(String),
    /// An event handler's output could not be opened, or its thread started.
    EventHandlers(io::Error),
    /// A poller, waker or socket could not be set up; `what` says which, and for whom.
    Setup { what: String, error: io::Error },
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
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(reason) => f.write_str(reason),
            StartError::EventHandlers(error) => {
                write!(f, "cannot start the event handlers: {error}")
            }
            StartError::Setup { what, error } => write!(f, "cannot {what}: {error}"),
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
        }
    }
}

// The cause is part of the message, so `source` stays empty (a reporter would print it twice).
impl std::error::Error for StartError {}

pub struct Node {
    http: Option<ApiServer>,
    http_addr: SocketAddr,
    ingest: Arc<IngestLink>,
    ingest_thread: Option<JoinHandle<()>>,
    shards: Vec<(Arc<ShardLink>, JoinHandle<()>)>,
    control_thread: Option<JoinHandle<()>>,
    telemetry_thread: Option<JoinHandle<()>>,
    telemetry_stop: Arc<AtomicBool>,
    events: Option<Arc<EventBus>>,
    pub media_from: Vec<SocketAddr>,
    started: Instant,
}

/// The event handlers named by `--webhook` and `--events-jsonl`.
pub fn event_handlers(args: &ServeArgs) -> Result<Vec<HandlerConfig>, String> {
    let mut handlers = Vec::new();
    for w in &args.webhook {
        let config: WebhookConfig = w.parse().map_err(|e| format!("--webhook {w}: {e}"))?;
        handlers.push(HandlerConfig::Webhook(config));
    }
    for j in &args.events_jsonl {
        let config: JsonLinesConfig = j.parse().map_err(|e| format!("--events-jsonl {j}: {e}"))?;
        handlers.push(HandlerConfig::JsonLines(config));
    }
    Ok(handlers)
}

impl Node {
    /// Starts every thread. Fails loudly, saying what failed and why, if a socket cannot be
    /// bound, a shard cannot be pinned or a thread cannot be started; every thread it had started
    /// by then is stopped and joined before it returns.
    pub fn start(args: &ServeArgs) -> Result<Node, StartError> {
        let placement = Placement::choose(args).map_err(StartError::Config)?;
        Node::start_placed(args, placement)
    }

    /// [`Node::start`] with the shards where `placement` puts them, pinned by its `pin`.
    pub fn start_placed(args: &ServeArgs, placement: Placement) -> Result<Node, StartError> {
        let handlers = event_handlers(args).map_err(StartError::Config)?;
        let ingest_poll = Poll::new().map_err(setup("create the ingest thread's poller"))?;
        let ingest_waker = Waker::new(ingest_poll.registry(), INGEST_WAKER)
            .map_err(setup("create the ingest thread's waker"))?;
        let ingest = Arc::new(IngestLink {
            commands: ArrayQueue::new(COMMAND_QUEUE),
            keyframe_requests: ArrayQueue::new(COMMAND_QUEUE),
            snapshots: ArrayQueue::new(4),
            wake: Wake::new(ingest_waker),
            stop: AtomicBool::new(false),
        });
        let events =
            EventBus::start(args.node_name.clone(), handlers).map_err(StartError::EventHandlers)?;
        // The node owns each thread from the moment it is spawned, so any early return below
        // drops the node, and its `Drop` stops and joins the threads started so far.
        let mut node = Node {
            http: None,
            http_addr: args.http,
            ingest,
            ingest_thread: None,
            shards: Vec::new(),
            control_thread: None,
            telemetry_thread: None,
            telemetry_stop: Arc::new(AtomicBool::new(false)),
            events: Some(Arc::new(events)),
            media_from: Vec::new(),
            started: Instant::now(),
        };
        let clock = Clock::start();
        node.started = clock.origin();
        let handles = node.start_shards(args, &placement, clock)?;
        node.media_from = handles.iter().map(|h| h.media_from).collect();
        node.start_ingest(args, ingest_poll, clock)?;
        let aggregates = node.start_telemetry(args, clock)?;
        // Declared after `node`, so an early return drops it first: the control thread runs
        // until its last handle is gone, and the node's `Drop` joins it.
        let control = node.start_control(args, handles, aggregates)?;
        node.serve_http(args, control)?;
        let data = serde_json::json!({
            "http": node.http_addr.to_string(),
            "shards": node.shards.len(),
            "media_from": node.media_from.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        });
        node.bus()
            .emit(Event::now(EventType::NodeStarted).with_data(data));
        Ok(node)
    }

    /// Starts a thread per shard, then waits until each has said whether it could pin, so that
    /// nothing else starts on a node that cannot run as asked.
    fn start_shards(
        &mut self,
        args: &ServeArgs,
        placement: &Placement,
        clock: Clock,
    ) -> Result<Vec<ShardHandle>, StartError> {
        let (pinned_tx, pinned_rx) = mpsc::channel();
        let mut handles = Vec::new();
        for (index, &core) in placement.cores.iter().enumerate() {
            let index = index as u32;
            let (worker, handle) = shard_worker(index, core, args, &self.ingest, clock)?;
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
            self.shards.push((link, thread));
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

    fn start_ingest(
        &mut self,
        args: &ServeArgs,
        poll: Poll,
        clock: Clock,
    ) -> Result<(), StartError> {
        let packets = self.shards.iter().map(|(l, _)| l.packets.clone()).collect();
        let wakes = self.shards.iter().map(|(l, _)| l.wake.clone()).collect();
        // A slot is shared by every shard it goes to, so while shards keep pace the slots in flight
        // are one queue's depth plus a packet per shard. Shards falling behind unevenly can hold
        // more; then the pool runs out before a queue does, and the packet is dropped and counted
        // as `queue_full` just the same.
        let pool_slots = args.queue_depth as usize + 2 * self.shards.len() + 256;
        let worker = Ingest::new(
            poll,
            self.ingest.clone(),
            packets,
            wakes,
            clock,
            IngestSettings {
                pool_slots,
                pli_interval: Duration::from_millis(args.pli_interval),
                stats_every: Duration::from_millis(args.stats_interval),
                relatch_after: Duration::from_millis(args.idle_timeout),
                probation: args.probation,
                takeover_silence: Duration::from_millis(args.takeover_silence),
            },
        );
        self.ingest_thread = Some(spawn("corecast-ingest".into(), move || worker.run())?);
        Ok(())
    }

    fn start_telemetry(
        &mut self,
        args: &ServeArgs,
        clock: Clock,
    ) -> Result<SharedAggregates, StartError> {
        let mut aggregates = Aggregates::new(self.shards.len(), args.metrics_per_subscriber);
        // Uptime and the stats windows count from the clock the snapshots are scheduled on.
        aggregates.started = clock.origin();
        let aggregates = Arc::new(std::sync::Mutex::new(aggregates));
        let telemetry = Telemetry {
            aggregates: aggregates.clone(),
            shards: self.shards.iter().map(|(l, _)| l.clone()).collect(),
            ingest: self.ingest.clone(),
            events: self.bus(),
            settings: TelemetrySettings {
                stats_interval: Duration::from_millis(args.stats_interval),
                idle_timeout: Duration::from_millis(args.idle_timeout),
            },
            stop: self.telemetry_stop.clone(),
        };
        self.telemetry_thread = Some(spawn("corecast-telemetry".into(), move || telemetry.run())?);
        Ok(aggregates)
    }

    fn start_control(
        &mut self,
        args: &ServeArgs,
        shards: Vec<ShardHandle>,
        aggregates: SharedAggregates,
    ) -> Result<ControlHandle, StartError> {
        let settings = Settings {
            rtp_ip: args.rtp_ip,
            ports: args.rtp_ports,
            rcvbuf: args.rcvbuf,
            max_subscribers: args.max_subscribers,
            switch_timeout: Duration::from_millis(args.switch_timeout),
            node_name: args.node_name.clone(),
        };
        let state = ControlState::new(
            settings,
            shards,
            self.ingest.clone(),
            aggregates,
            self.bus(),
        );
        let (handle, thread) = state.spawn().map_err(|error| StartError::Spawn {
            name: "corecast-control".into(),
            error,
        })?;
        self.control_thread = Some(thread);
        Ok(handle)
    }

    /// Serves the API on `--http`. `control` is the control thread's only handle: the server
    /// takes it, and drops it if it cannot start, so the control thread can then be joined.
    fn serve_http(&mut self, args: &ServeArgs, control: ControlHandle) -> Result<(), StartError> {
        let api = ApiConfig {
            token: args.token.clone(),
            ..ApiConfig::default()
        };
        let server = ApiServer::spawn(args.http, Arc::new(NodeControl { handle: control }), api)
            .map_err(|error| StartError::Http {
                addr: args.http,
                error,
            })?;
        self.http_addr = server.local_addr();
        self.http = Some(server);
        Ok(())
    }

    fn bus(&self) -> Arc<EventBus> {
        self.events
            .clone()
            .expect("the event bus is only taken by shutdown")
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// When the node's clock started: its uptime, and the boundaries of its stats intervals
    /// (whole multiples of `--stats-interval` after it), count from here.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Stop taking requests and packets, let the shards send what they hold, and join every
    /// thread.
    pub fn shutdown(&mut self) {
        // Only a node that reported `node.started` (its API, started last, is up) reports this.
        if let (Some(events), Some(_)) = (&self.events, &self.http) {
            events.emit(Event::now(EventType::NodeStopping));
        }
        if let Some(http) = self.http.take() {
            http.shutdown();
        }
        self.ingest.stop.store(true, Ordering::Release);
        self.ingest.wake.force();
        if let Some(t) = self.ingest_thread.take() {
            let _ = t.join();
        }
        for (link, _) in &self.shards {
            link.stop.store(true, Ordering::Release);
            link.wake.force();
        }
        for (_, thread) in self.shards.drain(..) {
            let _ = thread.join();
        }
        // The control thread ends when the HTTP server dropped the last handle.
        if let Some(t) = self.control_thread.take() {
            let _ = t.join();
        }
        self.telemetry_stop.store(true, Ordering::Release);
        if let Some(t) = self.telemetry_thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        // Every other holder has stopped, so the bus can flush what its handlers still hold.
        if let Some(events) = self.events.take() {
            match Arc::try_unwrap(events) {
                Ok(bus) => {
                    bus.shutdown(EVENTS_FLUSH);
                }
                Err(_) => tracing::warn!("event handlers still in use at shutdown; not flushed"),
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A shard's worker, not yet running, and the control thread's handle on it.
fn shard_worker(
    index: u32,
    core: Option<usize>,
    args: &ServeArgs,
    ingest: &Arc<IngestLink>,
    clock: Clock,
) -> Result<(ShardWorker, ShardHandle), StartError> {
    let poll = Poll::new().map_err(setup(format!("create shard {index}'s poller")))?;
    let waker = Waker::new(poll.registry(), SHARD_WAKER)
        .map_err(setup(format!("create shard {index}'s waker")))?;
    let link = Arc::new(ShardLink {
        packets: Arc::new(ArrayQueue::new(args.queue_depth as usize)),
        commands: ArrayQueue::new(COMMAND_QUEUE),
        events: ArrayQueue::new(EVENT_QUEUE),
        snapshots: ArrayQueue::new(SNAPSHOT_QUEUE),
        wake: Arc::new(Wake::new(waker)),
        stop: AtomicBool::new(false),
    });
    let (socket, granted) = egress_socket(index, args)?;
    let media_from = socket
        .local_addr()
        .map_err(setup(format!("read shard {index}'s media address")))?;
    tracing::info!(
        shard = index,
        core = ?core,
        %media_from,
        sndbuf_asked = args.sndbuf,
        sndbuf_granted = granted,
        "shard socket"
    );
    if granted < args.sndbuf {
        tracing::warn!(
            shard = index,
            "the kernel granted a {granted}-byte send buffer of the {} asked (raise net.core.wmem_max)",
            args.sndbuf
        );
    }
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
        batch_size: args.batch as usize,
        spin: Duration::from_micros(args.spin_us),
        snapshot_every: Duration::from_millis(args.stats_interval),
        switch_timeout: Duration::from_millis(args.switch_timeout),
        pli_interval: Duration::from_millis(args.pli_interval),
    };
    Ok((worker, handle))
}

/// A shard's UDP socket: media goes out of it and subscribers' RTCP comes back to it.
fn egress_socket(shard: u32, args: &ServeArgs) -> Result<(std::net::UdpSocket, usize), StartError> {
    let addr = SocketAddr::new(args.rtp_ip, 0);
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(setup(format!("create shard {shard}'s media socket")))?;
    if let Err(e) = socket.set_send_buffer_size(args.sndbuf) {
        tracing::warn!("cannot set the send buffer to {} bytes: {e}", args.sndbuf);
    }
    socket.bind(&addr.into()).map_err(setup(format!(
        "bind shard {shard}'s media socket on {}",
        args.rtp_ip
    )))?;
    socket.set_nonblocking(true).map_err(setup(format!(
        "make shard {shard}'s media socket non-blocking"
    )))?;
    // Linux reports twice the size asked (it counts its bookkeeping); halve it to compare.
    let granted = socket.send_buffer_size().map(|b| b / 2).unwrap_or(0);
    Ok((socket.into(), granted))
}

fn spawn(name: String, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, StartError> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(body)
        .map_err(|error| StartError::Spawn { name, error })
}

/// The error for a step of start-up that failed with `error`: "cannot {what}: {error}".
fn setup(what: impl Into<String>) -> impl FnOnce(io::Error) -> StartError {
    let what = what.into();
    move |error| StartError::Setup { what, error }
}

//! Starting and stopping a node: threads, queues and sockets wired together.
//!
//! Threads: one shard worker per selected core (pinned), one ingest thread, one control thread,
//! one HTTP thread. Queues (bounded, crossbeam `ArrayQueue`, one producer each unless noted):
//! ingest → shard k (packets), control → shard k (commands), shard k → control (events),
//! control → ingest (commands), shards and control → ingest (keyframe requests, several
//! producers), ingest → control (snapshots).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use corecast_signaling::server::{ApiConfig, ApiServer};
use crossbeam_queue::ArrayQueue;
use mio::{Poll, Waker};
use socket2::{Domain, Protocol, Socket, Type};

use crate::clock::Clock;
use crate::config::ServeArgs;
use crate::control::{ControlState, Settings, ShardHandle};
use crate::events::{Event, EventBus, EventType, HandlerConfig, JsonLinesConfig, WebhookConfig};
use crate::ingest::{Ingest, IngestLink, IngestSettings};
use crate::shard::{ShardLink, ShardWorker, WAKER as SHARD_WAKER};
use crate::telemetry::{Aggregates, Telemetry, TelemetrySettings};
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
    /// Start every thread; fails loudly (with what and why) if a port cannot be bound or a
    /// shard cannot be pinned.
    pub fn start(args: &ServeArgs) -> Result<Node, String> {
        Node::start_placed(args, Placement::choose(args)?)
    }

    /// [`Node::start`] with the shards where `placement` puts them, pinned by its `pin`.
    pub fn start_placed(args: &ServeArgs, placement: Placement) -> Result<Node, String> {
        let handlers = event_handlers(args)?;
        let events = Arc::new(
            EventBus::start(args.node_name.clone(), handlers)
                .map_err(|e| format!("cannot start the event handlers: {e}"))?,
        );
        let stats_every = Duration::from_millis(args.stats_interval);
        let clock = Clock::start();
        let ingest_poll = Poll::new().map_err(|e| format!("cannot create a poller: {e}"))?;
        let ingest_waker = Waker::new(ingest_poll.registry(), INGEST_WAKER)
            .map_err(|e| format!("cannot create a waker: {e}"))?;
        let ingest = Arc::new(IngestLink {
            commands: ArrayQueue::new(COMMAND_QUEUE),
            keyframe_requests: ArrayQueue::new(COMMAND_QUEUE),
            snapshots: ArrayQueue::new(4),
            wake: Wake::new(ingest_waker),
            stop: AtomicBool::new(false),
        });

        let mut shard_links = Vec::new();
        let mut workers = Vec::new();
        let mut handles = Vec::new();
        for (index, core) in placement.cores.iter().enumerate() {
            let poll = Poll::new().map_err(|e| format!("cannot create a poller: {e}"))?;
            let waker = Waker::new(poll.registry(), SHARD_WAKER)
                .map_err(|e| format!("cannot create a waker: {e}"))?;
            let link = Arc::new(ShardLink {
                packets: Arc::new(ArrayQueue::new(args.queue_depth as usize)),
                commands: ArrayQueue::new(COMMAND_QUEUE),
                events: ArrayQueue::new(EVENT_QUEUE),
                snapshots: ArrayQueue::new(SNAPSHOT_QUEUE),
                wake: Arc::new(Wake::new(waker)),
                stop: AtomicBool::new(false),
            });
            let (socket, granted) = egress_socket(args)?;
            let media_from = socket
                .local_addr()
                .map_err(|e| format!("shard {index}: {e}"))?;
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
            handles.push(ShardHandle {
                link: link.clone(),
                media_from,
                core: *core,
            });
            shard_links.push(link.clone());
            workers.push((
                *core,
                ShardWorker {
                    index: index as u32,
                    link,
                    ingest: ingest.clone(),
                    poll,
                    socket: mio::net::UdpSocket::from_std(socket),
                    clock,
                    batch_size: args.batch as usize,
                    spin: Duration::from_micros(args.spin_us),
                    snapshot_every: stats_every,
                },
            ));
        }

        // Shards start first and report whether they could pin before anything else runs.
        let (pinned_tx, pinned_rx) = mpsc::channel();
        let mut shards = Vec::new();
        for (core, worker) in workers {
            let link = worker.link.clone();
            let tx = pinned_tx.clone();
            let index = worker.index;
            let thread = std::thread::Builder::new()
                .name(format!("corecast-shard-{index}"))
                .spawn(move || {
                    if let Some(core) = core {
                        if (placement.pin)(core).is_err() {
                            let _ = tx.send(Err(format!(
                                "shard {index} could not be pinned to core {core}"
                            )));
                            return;
                        }
                    }
                    let _ = tx.send(Ok(()));
                    worker.run();
                })
                .map_err(|e| format!("cannot start shard {index}: {e}"))?;
            shards.push((link, thread));
        }
        drop(pinned_tx);
        let mut failure = None;
        for _ in 0..shards.len() {
            match pinned_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failure = Some(e),
                Err(_) => failure = Some("a shard thread died while starting".into()),
            }
        }

        let packets = shard_links.iter().map(|l| l.packets.clone()).collect();
        let wakes = shard_links.iter().map(|l| l.wake.clone()).collect();
        // A slot is shared by every shard it goes to, so while shards keep pace the slots in flight
        // are one queue's depth plus a packet per shard. Shards falling behind unevenly can hold
        // more; then the pool runs out before a queue does, and the packet is dropped and counted
        // as `queue_full` just the same.
        let pool_slots = args.queue_depth as usize + 2 * shard_links.len() + 256;
        let worker = Ingest::new(
            ingest_poll,
            ingest.clone(),
            packets,
            wakes,
            clock,
            IngestSettings {
                pool_slots,
                pli_interval: Duration::from_millis(args.pli_interval),
                stats_every,
                relatch_after: Duration::from_millis(args.idle_timeout),
            },
        );
        let ingest_thread = std::thread::Builder::new()
            .name("corecast-ingest".into())
            .spawn(move || worker.run())
            .map_err(|e| format!("cannot start the ingest thread: {e}"))?;

        let media_from = handles.iter().map(|h| h.media_from).collect();
        let settings = Settings {
            rtp_ip: args.rtp_ip,
            ports: args.rtp_ports,
            rcvbuf: args.rcvbuf,
            max_subscribers: args.max_subscribers,
            switch_timeout: Duration::from_millis(args.switch_timeout),
        };
        let aggregates = Arc::new(std::sync::Mutex::new(Aggregates::new(
            shard_links.len(),
            args.metrics_per_subscriber,
        )));
        let telemetry_stop = Arc::new(AtomicBool::new(false));
        let telemetry = Telemetry {
            aggregates: aggregates.clone(),
            shards: shard_links.clone(),
            ingest: ingest.clone(),
            events: events.clone(),
            settings: TelemetrySettings {
                stats_interval: stats_every,
                idle_timeout: Duration::from_millis(args.idle_timeout),
            },
            stop: telemetry_stop.clone(),
        };
        let telemetry_thread = std::thread::Builder::new()
            .name("corecast-telemetry".into())
            .spawn(move || telemetry.run())
            .map_err(|e| format!("cannot start the telemetry thread: {e}"))?;
        let (handle, control_thread) = ControlState::new(
            settings,
            handles,
            ingest.clone(),
            aggregates,
            events.clone(),
        )
        .spawn()
        .map_err(|e| format!("cannot start the control thread: {e}"))?;
        let mut node = Node {
            http: None,
            http_addr: args.http,
            ingest,
            ingest_thread: Some(ingest_thread),
            shards,
            control_thread: Some(control_thread),
            telemetry_thread: Some(telemetry_thread),
            telemetry_stop,
            events: Some(events),
            media_from,
        };
        if let Some(e) = failure {
            node.shutdown();
            return Err(e);
        }
        let api = ApiConfig {
            token: args.token.clone(),
            ..ApiConfig::default()
        };
        match ApiServer::spawn(args.http, Arc::new(NodeControl { handle }), api) {
            Ok(server) => {
                node.http_addr = server.local_addr();
                node.http = Some(server);
                if let Some(events) = &node.events {
                    let data = serde_json::json!({
                        "http": node.http_addr.to_string(),
                        "shards": node.shards.len(),
                        "media_from": node.media_from.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                    });
                    events.emit(Event::now(EventType::NodeStarted).with_data(data));
                }
                Ok(node)
            }
            Err(e) => {
                node.shutdown();
                Err(format!("cannot serve the HTTP API on {}: {e}", args.http))
            }
        }
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Stop taking requests and packets, let the shards send what they hold, and join every
    /// thread.
    pub fn shutdown(&mut self) {
        if let Some(events) = &self.events {
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

/// A shard's UDP socket: media goes out of it and subscribers' RTCP comes back to it.
fn egress_socket(args: &ServeArgs) -> Result<(std::net::UdpSocket, usize), String> {
    let addr = SocketAddr::new(args.rtp_ip, 0);
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| format!("cannot create a UDP socket: {e}"))?;
    if let Err(e) = socket.set_send_buffer_size(args.sndbuf) {
        tracing::warn!("cannot set the send buffer to {} bytes: {e}", args.sndbuf);
    }
    socket
        .bind(&addr.into())
        .map_err(|e| format!("cannot bind a media socket on {}: {e}", args.rtp_ip))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| format!("cannot make the media socket non-blocking: {e}"))?;
    // Linux reports twice the size asked (it counts its bookkeeping); halve it to compare.
    let granted = socket.send_buffer_size().map(|b| b / 2).unwrap_or(0);
    Ok((socket.into(), granted))
}

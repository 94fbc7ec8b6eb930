//! Starting and stopping a node: threads, queues and sockets wired together.
//!
//! Threads: one shard worker per selected core (pinned), one ingest thread, one control thread,
//! one HTTP thread. Queues (bounded, crossbeam `ArrayQueue`, one producer each unless noted):
//! ingest → shard k (packets), control → shard k (commands), shard k → control (events),
//! control → ingest (commands), shards and control → ingest (keyframe requests, several
//! producers), ingest → control (snapshots).
//!
//! - `config`: [`NodeConfig`], read from `ServeArgs`, and [`Placement`].
//! - `start`: the start-up steps, in order, and [`StartError`].
//! - `threads`: the guard per running part that stops and joins it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::config::ServeArgs;
use crate::events::{Event, EventBus, EventType};

mod config;
mod start;
mod threads;

pub use config::{pin_current_thread, ConfigError, NodeConfig, Placement};
pub use start::{Owner, SocketStep, StartError};
pub use threads::{threads_running, threads_started};

/// A running node. Dropping it stops it ([`Node::shutdown`]).
pub struct Node {
    http_addr: SocketAddr,
    /// The address each shard sends media from.
    pub media_from: Vec<SocketAddr>,
    started: Instant,
    /// Taken by shutdown, so that the bus's last holder is its guard in `threads`.
    events: Option<Arc<EventBus>>,
    threads: threads::Threads,
}

impl Node {
    /// Starts a node as `args` say. Fails loudly, saying what failed and why, if the flags do
    /// not make a configuration, a socket cannot be bound, a shard cannot be pinned or a thread
    /// cannot be started; every thread it had started by then is stopped and joined before it
    /// returns.
    pub fn start(args: &ServeArgs) -> Result<Node, StartError> {
        NodeConfig::from_args(args)?.start()
    }

    /// [`Node::start`] with the shards where `placement` puts them, pinned by its `pin`.
    pub fn start_placed(args: &ServeArgs, placement: Placement) -> Result<Node, StartError> {
        NodeConfig::from_args_placed(args, placement)?.start()
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
    /// thread: the HTTP server first, then the rest in reverse start order, the event handlers
    /// last, so they deliver what the others emitted.
    pub fn shutdown(&mut self) {
        if let Some(events) = self.events.take() {
            events.emit(Event::now(EventType::NodeStopping));
        }
        self.threads.stop_all();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown();
    }
}

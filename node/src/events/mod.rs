//! Typed node events and the handlers that ship them out (webhooks, JSON lines).
//!
//! Whoever notices something (the control thread, mostly) builds an [`Event`] and hands it to
//! [`EventBus::emit`]. The bus serializes the envelope once and pushes the shared bytes onto the
//! bounded queue of every handler whose [`EventMask`] contains the event's type. Each handler has
//! its own worker thread, so a slow or dead endpoint only fills (and then overflows) its own
//! queue: `emit` never blocks, never does I/O, and never waits for a handler.
//!
//! ```text
//!  emit ──► envelope (Arc<str>) ──► queue[0] ──► corecast-events-0 ──► POST [..] (retries)
//!                                └─► queue[1] ──► corecast-events-1 ──► file / stdout
//! ```
//!
//! A queue full by count or by bytes drops its oldest events; a batch still failing after its retries is given up.
//! Both are counted in [`HandlerStats::dropped`], so losses are visible, never silent.

mod config;
mod event;
mod handler;
mod jsonl;
mod types;
mod webhook;

pub use config::{
    HandlerConfig, JsonLinesConfig, JsonLinesTarget, WebhookConfig, DEFAULT_BACKOFF,
    DEFAULT_BATCH_MAX, DEFAULT_BATCH_WAIT, DEFAULT_QUEUE, DEFAULT_QUEUE_BYTES, DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
};
pub use event::Event;
pub use handler::HandlerStats;
pub use types::{EventMask, EventType, ParseError};
pub use webhook::{signature, SIGNATURE_HEADER};

use std::io;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use handler::{ExitGuard, Exits, Shared};
use jsonl::JsonLines;
use webhook::Webhook;

/// The node's event handlers. `Send + Sync`: share it in an `Arc` and call [`emit`](Self::emit)
/// from any thread.
pub struct EventBus {
    node: String,
    /// Union of the handlers' masks: an event nobody wants is not even serialized.
    wanted: EventMask,
    handlers: Vec<Handler>,
    exits: Arc<Exits>,
}

struct Handler {
    name: String,
    kind: &'static str,
    types: EventMask,
    shared: Arc<Shared>,
    worker: JoinHandle<()>,
}

impl EventBus {
    /// Opens every handler's output (a JSON lines file is created or appended to now, so a bad
    /// path fails start-up) and starts one worker thread per handler, named
    /// `corecast-events-<i>`. `node_name` goes into every envelope's `node` field.
    pub fn start(node_name: String, configs: Vec<HandlerConfig>) -> io::Result<EventBus> {
        let exits = Arc::new(Exits::default());
        let mut bus = EventBus {
            node: node_name,
            wanted: EventMask::NONE,
            handlers: Vec::with_capacity(configs.len()),
            exits,
        };
        for (i, config) in configs.into_iter().enumerate() {
            let name = config.name();
            let kind = config.kind();
            let types = config.types();
            let (capacity, max_bytes) = config.queue_bounds();
            let shared = Arc::new(Shared::new(capacity, max_bytes));
            // Build the worker before spawning so that opening a file fails here, in `start`.
            let body: Box<dyn FnOnce() + Send> = match config {
                HandlerConfig::Webhook(w) => {
                    let worker = Webhook::new(w, name.clone(), shared.clone());
                    Box::new(move || worker.run())
                }
                HandlerConfig::JsonLines(j) => {
                    let worker = JsonLines::open(&j, name.clone(), shared.clone())?;
                    Box::new(move || worker.run())
                }
            };
            let guard = ExitGuard {
                shared: shared.clone(),
                exits: bus.exits.clone(),
            };
            // On failure here `bus` is dropped, which stops the workers already started.
            let worker = thread::Builder::new()
                .name(format!("corecast-events-{i}"))
                .spawn(move || {
                    let _guard = guard;
                    body();
                })?;
            tracing::info!(handler = %name, types = %types, "event handler started");
            bus.wanted = bus.wanted.union(types);
            bus.handlers.push(Handler {
                name,
                kind,
                types,
                shared,
                worker,
            });
        }
        Ok(bus)
    }

    /// A bus with no handlers: `emit` returns at once (for tests, and when none is configured).
    pub fn disabled() -> EventBus {
        EventBus {
            node: String::new(),
            wanted: EventMask::NONE,
            handlers: Vec::new(),
            exits: Arc::new(Exits::default()),
        }
    }

    /// Whether any handler receives events of `kind`: lets a caller skip building an expensive
    /// event (e.g. a stats snapshot) that nobody would receive.
    pub fn wants(&self, kind: EventType) -> bool {
        self.wanted.contains(kind)
    }

    /// Queues `event` for every handler whose mask contains its type. Never blocks and does no
    /// I/O: the envelope is serialized once (one allocation for the text, one for the shared
    /// copy), each queue push is lock-free (a full queue drops its oldest events and counts them),
    /// and waking a worker costs a syscall only if that worker is parked.
    pub fn emit(&self, event: Event) {
        if !self.wanted.contains(event.kind) {
            return;
        }
        let line: handler::Line = event.to_envelope(&self.node).into();
        for handler in &self.handlers {
            if handler.types.contains(event.kind) {
                handler.shared.push(line.clone());
                handler.worker.thread().unpark();
            }
        }
    }

    /// Each handler's counters, in configuration order.
    pub fn stats(&self) -> Vec<HandlerStats> {
        self.handlers
            .iter()
            .map(|h| h.shared.stats(&h.name, h.kind))
            .collect()
    }

    /// Stops the handlers: workers send what they hold without waiting to fill batches, until
    /// `deadline` from now; then whatever is left is counted as dropped. Returns by the deadline
    /// (plus scheduling noise) even if a worker is stuck in a POST or a write: such a worker is
    /// left to finish its current attempt and exit on its own, bounded by the request timeout.
    /// Returns the final counters. (Taking `self` means no `emit` can race with it; a bus shared
    /// in an `Arc` is shut down once `Arc::try_unwrap` gets it back.)
    pub fn shutdown(mut self, deadline: Duration) -> Vec<HandlerStats> {
        if self.handlers.is_empty() {
            return Vec::new();
        }
        let deadline = Instant::now() + deadline;
        for handler in &self.handlers {
            handler.shared.stop(deadline);
            handler.worker.thread().unpark();
        }
        self.exits.wait(self.handlers.len(), deadline);
        // Final for every worker that exited; a snapshot for one still busy.
        let stats = self.stats();
        for handler in self.handlers.drain(..) {
            if handler.shared.has_exited() {
                // It has run its exit guard: the join returns at once. A panic was already
                // reported by the panic hook, and its counts stand as they are.
                let _ = handler.worker.join();
            } else {
                tracing::warn!(
                    handler = %handler.name,
                    queued = handler.shared.len(),
                    "event handler still busy at the shutdown deadline; leaving it to exit alone"
                );
            }
        }
        stats
    }
}

/// A bus dropped without [`EventBus::shutdown`] (e.g. start-up failed later) stops its workers at
/// once, without flushing, and does not wait for them.
impl Drop for EventBus {
    fn drop(&mut self) {
        for handler in &self.handlers {
            handler.shared.stop(Instant::now());
            handler.worker.thread().unpark();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn bus_is_shareable() {
        assert_send_sync::<EventBus>();
    }

    #[test]
    fn disabled_bus_takes_events() {
        let bus = EventBus::disabled();
        assert!(!bus.wants(EventType::Stats));
        bus.emit(Event::now(EventType::Stats));
        assert!(bus.stats().is_empty());
        assert!(bus.shutdown(Duration::ZERO).is_empty());
    }
}

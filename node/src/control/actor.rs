//! The control thread itself: a loop that runs the HTTP API's closures one at a time, drains the
//! shards' events and expires switches; and the command queues it sends on, with the patience it
//! gives a full one.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use corecast_engine::SourceId;

use super::error::{NodeError, Unavailable};
use super::ControlState;
use crate::ingest::IngestCommand;
use crate::shard::ShardCommand;

/// How long the control thread waits for room in a full command queue before giving up.
const QUEUE_PATIENCE: Duration = Duration::from_secs(2);
/// How often an idle control thread looks at the shards' events and the switch deadlines.
const TICK: Duration = Duration::from_millis(20);

type Job = Box<dyn FnOnce(&mut ControlState) + Send>;

/// The HTTP API's way into the control thread (and the handshake thread's).
#[derive(Clone)]
pub struct ControlHandle {
    tx: mpsc::Sender<Job>,
}

impl ControlHandle {
    /// Runs `f` on the control thread and returns what it returned.
    pub fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut ControlState) -> R + Send + 'static,
    ) -> Result<R, NodeError> {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        self.tx
            .send(Box::new(move |state| {
                let _ = reply_tx.send(f(state));
            }))
            .map_err(|_| Unavailable::ShuttingDown)?;
        Ok(reply_rx.recv().map_err(|_| Unavailable::ShuttingDown)?)
    }

    /// Runs `f` on the control thread without waiting for it; dropped if the thread is gone.
    pub fn cast(&self, f: impl FnOnce(&mut ControlState) + Send + 'static) {
        let _ = self.tx.send(Box::new(f));
    }
}

impl ControlState {
    /// Run the control thread until every handle is dropped.
    pub fn spawn(mut self) -> std::io::Result<(ControlHandle, std::thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("corecast-control".into())
            .spawn(move || loop {
                match rx.recv_timeout(TICK) {
                    Ok(job) => job(&mut self),
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
                self.drain_events();
                self.watch_failovers();
            })?;
        Ok((ControlHandle { tx }, thread))
    }

    /// Wait until shard `k`'s command queue has room for `shards[k]` commands, for every `k`, and
    /// the ingest queue for `ingest`; or give up after [`QUEUE_PATIENCE`] having sent nothing.
    ///
    /// A change that goes to several queues (a source to every shard and ingest, a batch of
    /// subscribers over several shards) calls this first, so it is sent whole or not at all. The
    /// control thread is the only producer on these queues: room seen here stays until it pushes.
    /// (Undoing a part already sent instead would need room in the very queues that had none.)
    pub(super) fn make_room(&self, shards: &[usize], ingest: usize) -> Result<(), Unavailable> {
        let short = |q_capacity: usize, q_len: usize, need: usize| q_capacity - q_len < need;
        let deadline = Instant::now() + QUEUE_PATIENCE;
        loop {
            let mut full_shard = None;
            for (k, &need) in shards.iter().enumerate() {
                let link = &self.shards[k].link;
                if short(link.commands.capacity(), link.commands.len(), need) {
                    link.wake.notify();
                    full_shard.get_or_insert(k);
                }
            }
            let q = &self.ingest.commands;
            let ingest_full = short(q.capacity(), q.len(), ingest);
            if ingest_full {
                self.ingest.wake.notify();
            }
            match full_shard {
                None if !ingest_full => return Ok(()),
                _ if Instant::now() < deadline => std::thread::yield_now(),
                Some(shard) => {
                    return Err(Unavailable::ShardQueueFull {
                        shard,
                        nothing_changed: true,
                    })
                }
                None => {
                    return Err(Unavailable::IngestQueueFull {
                        nothing_changed: true,
                    })
                }
            }
        }
    }

    pub(super) fn send_shard(&self, shard: usize, mut cmd: ShardCommand) -> Result<(), NodeError> {
        let link = &self.shards[shard].link;
        let deadline = Instant::now() + QUEUE_PATIENCE;
        loop {
            match link.commands.push(cmd) {
                Ok(()) => {
                    link.wake.notify();
                    return Ok(());
                }
                Err(back) if Instant::now() < deadline => {
                    cmd = back;
                    link.wake.notify();
                    std::thread::yield_now();
                }
                Err(_) => {
                    return Err(Unavailable::ShardQueueFull {
                        shard,
                        nothing_changed: false,
                    }
                    .into())
                }
            }
        }
    }

    pub(super) fn send_ingest(&self, mut cmd: IngestCommand) -> Result<(), NodeError> {
        let deadline = Instant::now() + QUEUE_PATIENCE;
        loop {
            match self.ingest.commands.push(cmd) {
                Ok(()) => {
                    self.ingest.wake.notify();
                    return Ok(());
                }
                Err(back) if Instant::now() < deadline => {
                    cmd = back;
                    std::thread::yield_now();
                }
                Err(_) => {
                    return Err(Unavailable::IngestQueueFull {
                        nothing_changed: false,
                    }
                    .into())
                }
            }
        }
    }

    /// Ask ingest for a keyframe of `source` (coalesced there per `--pli-interval`); a full
    /// queue loses the request, which the next one makes up for.
    pub(super) fn request_keyframe(&self, source: SourceId) {
        if self.ingest.keyframe_requests.push(source).is_ok() {
            self.ingest.wake.notify();
        }
    }

    fn drain_events(&mut self) {
        for shard in 0..self.shards.len() {
            while let Some(event) = self.shards[shard].link.events.pop() {
                self.on_event(shard, event);
            }
        }
    }
}

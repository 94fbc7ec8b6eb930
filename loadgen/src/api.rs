//! The load generator's use of the control API: create its sources and subscribers, switch
//! subscribers round-robin, and delete what it created.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use corecast_signaling::api::{CreateSource, CreateSubscriber};
use corecast_signaling::client::Client;

use super::whep::http::WhepHttp;
use super::Stop;

/// Subscribers per batch request.
const BATCH: usize = 1000;
/// Threads issuing switch and delete requests (there is no batch endpoint for those).
const API_THREADS: usize = 4;

static RUNS: AtomicU32 = AtomicU32::new(0);

/// What one run created on the node.
#[derive(Debug)]
pub struct Topology {
    pub client: Client,
    /// Source ids, by load-generator source index.
    pub sources: Vec<u32>,
    /// Each source's ingest address.
    pub ingest: Vec<SocketAddr>,
    /// Subscriber ids, by subscriber index.
    pub subscribers: Vec<u32>,
    /// The address each subscriber's media comes from (its shard's socket).
    pub media_from: Vec<SocketAddr>,
    /// `loadgen-<pid>-<run>`, what the sources' (and channels') names start with.
    pub name_prefix: String,
    /// `--whep`: one channel per source, by source index.
    pub channels: Vec<u32>,
    /// `--whep`: each viewer's `Location`, by subscriber index.
    pub locations: Vec<String>,
    /// `--whep`: the WHEP calls (viewers switch by channel and are deleted at their Location).
    pub whep: Option<WhepHttp>,
}

impl Topology {
    /// Create `sources` sources named `loadgen-<pid>-<run>-<i>` and one subscriber per address in
    /// `dests`, subscriber `j` on source `j % sources`. On failure, deletes what it had created.
    pub fn create(
        client: Client,
        codec: &str,
        sources: u32,
        dests: &[SocketAddr],
    ) -> Result<Topology, String> {
        let run = RUNS.fetch_add(1, Ordering::Relaxed);
        let mut t = Topology {
            client,
            sources: Vec::new(),
            ingest: Vec::new(),
            subscribers: Vec::new(),
            media_from: Vec::new(),
            name_prefix: format!("loadgen-{}-{run}", std::process::id()),
            channels: Vec::new(),
            locations: Vec::new(),
            whep: None,
        };
        for i in 0..sources {
            let req = CreateSource {
                name: format!("{}-{i}", t.name_prefix),
                codec: codec.to_string(),
                ..CreateSource::default()
            };
            match t.client.create_source(&req) {
                Ok(view) => {
                    t.sources.push(view.id);
                    t.ingest
                        .push(SocketAddr::new(view.ingest.ip, view.ingest.port));
                }
                Err(e) => {
                    t.remove();
                    return Err(format!("cannot create source {}: {e}", req.name));
                }
            }
        }
        let reqs: Vec<CreateSubscriber> = dests
            .iter()
            .enumerate()
            .map(|(j, dest)| CreateSubscriber {
                source: t.sources[j % t.sources.len()],
                dest: dest.to_string(),
            })
            .collect();
        for chunk in reqs.chunks(BATCH) {
            match t.client.create_subscribers(chunk) {
                Ok(views) => {
                    t.subscribers.extend(views.iter().map(|v| v.id));
                    t.media_from.extend(views.iter().map(|v| v.media_from));
                }
                Err(e) => {
                    t.remove();
                    return Err(format!("cannot create subscribers: {e}"));
                }
            }
        }
        Ok(t)
    }

    /// Delete every subscriber and source created; returns what could not be deleted.
    pub fn remove(&mut self) -> Vec<String> {
        let failures = Mutex::new(Vec::new());
        let subs = std::mem::take(&mut self.subscribers);
        let locations = std::mem::take(&mut self.locations);
        if let Some(whep) = &self.whep {
            parallel(&locations, |_, location| {
                if let Err(e) = whep.delete(location) {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("cannot delete viewer {location}: {e}"));
                }
                true
            });
        }
        let plain: &[u32] = if self.whep.is_some() { &[] } else { &subs };
        parallel(plain, |_, &id| {
            if let Err(e) = self.client.delete_subscriber(id) {
                failures
                    .lock()
                    .unwrap()
                    .push(format!("cannot delete subscriber {id}: {e}"));
            }
            true
        });
        for id in std::mem::take(&mut self.channels) {
            if let Err(e) = self.client.delete_channel(id) {
                failures
                    .lock()
                    .unwrap()
                    .push(format!("cannot delete channel {id}: {e}"));
            }
        }
        for id in std::mem::take(&mut self.sources) {
            if let Err(e) = self.client.delete_source(id) {
                failures
                    .lock()
                    .unwrap()
                    .push(format!("cannot delete source {id}: {e}"));
            }
        }
        self.ingest.clear();
        self.media_from.clear();
        failures.into_inner().unwrap()
    }
}

/// Switch counters shared with the orchestrator.
#[derive(Debug, Default)]
pub struct SwitchCounters {
    /// Switch requests the node accepted.
    pub requested: AtomicU64,
    /// Switch requests that failed.
    pub errors: AtomicU64,
    pub first_error: Mutex<Option<String>>,
}

/// Every `every` from `start` (on `origin`'s clock) until `until` or `stop`, move every
/// subscriber to the next source: in round `r`, subscriber `j` goes to source `(j + r) % S`
/// (WHEP viewers: to channel `(j + r) % S`, by channel).
pub fn switch_rounds(
    t: &Topology,
    every: Duration,
    origin: Instant,
    start: Duration,
    until: Option<Duration>,
    stop: &Stop,
    counters: &SwitchCounters,
) {
    let s = t.sources.len();
    for round in 1u32.. {
        let due = start + every * round;
        if until.is_some_and(|u| due >= u) {
            return;
        }
        let now = origin.elapsed();
        if due > now && stop.wait(due - now) {
            return;
        }
        if stop.is_triggered() {
            return;
        }
        parallel(&t.subscribers, |j, &id| {
            let next = (j + round as usize) % s;
            let (to, result) = match &t.whep {
                Some(whep) => (
                    t.channels[next],
                    whep.switch_channel(&t.locations[j], t.channels[next]),
                ),
                None => (
                    t.sources[next],
                    t.client
                        .switch(id, t.sources[next])
                        .map(drop)
                        .map_err(|e| e.to_string()),
                ),
            };
            match result {
                Ok(()) => {
                    counters.requested.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    counters
                        .first_error
                        .lock()
                        .unwrap()
                        .get_or_insert_with(|| format!("switch {id} to {to}: {e}"));
                }
            }
            !stop.is_triggered()
        });
    }
}

/// Call `f(index, item)` for every item on up to [`API_THREADS`] threads; a worker stops early
/// when `f` returns false.
pub(crate) fn parallel<T: Sync>(items: &[T], f: impl Fn(usize, &T) -> bool + Sync) {
    if items.is_empty() {
        return;
    }
    let per = items.len().div_ceil(API_THREADS);
    std::thread::scope(|scope| {
        for (c, chunk) in items.chunks(per).enumerate() {
            let f = &f;
            scope.spawn(move || {
                for (k, item) in chunk.iter().enumerate() {
                    if !f(c * per + k, item) {
                        break;
                    }
                }
            });
        }
    });
}

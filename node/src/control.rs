//! The control thread: owns the topology (sources, subscribers, which shard holds which track),
//! validates requests, and drives the ingest thread and the shards through their command queues.
//! It is never on the packet path: shards and ingest only read the per-source shard mask it keeps.
//!
//! The HTTP API reaches it through [`ControlHandle`], which sends a closure over a channel and
//! waits for its reply, so every change to the topology happens on this one thread, in order.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use corecast_engine::codec::parameter_sets::ParameterSets;
use corecast_engine::{Codec, RtpTime, SeqNo, SourceId, Ssrc, SwitchOutcome, TrackConfig, TrackId};
use corecast_signaling::api::{
    CreateSource, CreateSubscriber, SwitchOutcome as ApiSwitchOutcome, SwitchView,
};
use corecast_signaling::ApiError;
use rand::{rngs::StdRng, Rng, SeedableRng};
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::PortRange;
use crate::events::{Event, EventBus, EventType};
use crate::ingest::{IngestCommand, IngestLink, NewSource};
use crate::shard::{ShardCommand, ShardEvent, ShardLink};
use crate::telemetry::SharedAggregates;

/// How long the control thread waits for room in a full command queue before giving up.
const QUEUE_PATIENCE: Duration = Duration::from_secs(2);
const TICK: Duration = Duration::from_millis(20);

pub struct ShardHandle {
    pub link: Arc<ShardLink>,
    pub media_from: SocketAddr,
    pub core: Option<usize>,
}

pub struct Settings {
    pub rtp_ip: IpAddr,
    pub ports: PortRange,
    pub rcvbuf: usize,
    pub max_subscribers: usize,
    pub switch_timeout: Duration,
    /// `--node-name`, for the SDPs the node writes.
    pub node_name: String,
}

pub(crate) struct SourceEntry {
    pub name: String,
    pub codec: Codec,
    pub clock_rate: u32,
    pub port: u16,
    pub latch: bool,
    pub feedback: Option<SocketAddr>,
    pub parameter_sets: bool,
    /// The configured parameter sets' NAL units (empty if none), for SDPs written before
    /// ingest's first snapshot of the source.
    pub configured_sets: Arc<[Vec<u8>]>,
    pub payload_type: Option<u8>,
    pub rtx_payload_type: Option<u8>,
    pub mask: Arc<AtomicU64>,
    /// Per shard: tracks attached to or switching to this source.
    pub users: Vec<u32>,
}

pub(crate) struct SubEntry {
    pub ssrc: u32,
    pub shard: usize,
    /// What its track was set up for; it stays with the subscriber when its source is deleted,
    /// so a detached subscriber is only switched to a source it can take.
    pub codec: Codec,
    pub source: Option<u32>,
    /// Source switching to, and the switch's deadline.
    pub pending: Option<(u32, Instant)>,
    /// When the pending switch was asked for, to report how long it took.
    pub requested_at: Option<Instant>,
    pub dest: SocketAddr,
    pub switches: u64,
}

pub struct ControlState {
    pub(crate) settings: Settings,
    pub(crate) shards: Vec<ShardHandle>,
    pub(crate) ingest: Arc<IngestLink>,
    pub(crate) sources: BTreeMap<u32, SourceEntry>,
    pub(crate) subs: BTreeMap<u32, SubEntry>,
    /// Output SSRCs in use, so a new subscriber's is unique without scanning them all.
    ssrcs: std::collections::HashSet<u32>,
    next_source: u32,
    next_sub: u32,
    rng: StdRng,
    pub(crate) shard_load: Vec<usize>,
    pub(crate) telemetry: SharedAggregates,
    pub(crate) events: Arc<EventBus>,
    pub(crate) switches_timed_out: u64,
}

type Job = Box<dyn FnOnce(&mut ControlState) + Send>;

/// The HTTP API's way into the control thread.
pub struct ControlHandle {
    tx: mpsc::Sender<Job>,
}

impl ControlHandle {
    pub fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut ControlState) -> R + Send + 'static,
    ) -> Result<R, ApiError> {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        self.tx
            .send(Box::new(move |state| {
                let _ = reply_tx.send(f(state));
            }))
            .map_err(|_| ApiError::unavailable("the node is shutting down"))?;
        reply_rx
            .recv()
            .map_err(|_| ApiError::unavailable("the node is shutting down"))
    }
}

impl ControlState {
    pub fn new(
        settings: Settings,
        shards: Vec<ShardHandle>,
        ingest: Arc<IngestLink>,
        telemetry: SharedAggregates,
        events: Arc<EventBus>,
    ) -> ControlState {
        let n = shards.len();
        ControlState {
            settings,
            shards,
            ingest,
            sources: BTreeMap::new(),
            subs: BTreeMap::new(),
            ssrcs: std::collections::HashSet::new(),
            next_source: 1,
            next_sub: 1,
            rng: StdRng::from_os_rng(),
            shard_load: vec![0; n],
            telemetry,
            events,
            switches_timed_out: 0,
        }
    }

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
    fn make_room(&self, shards: &[usize], ingest: usize) -> Result<(), ApiError> {
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
                Some(k) => {
                    return Err(ApiError::unavailable(format!(
                        "shard {k} is not taking commands; nothing was changed"
                    )))
                }
                None => {
                    return Err(ApiError::unavailable(
                        "the ingest thread is not taking commands; nothing was changed",
                    ))
                }
            }
        }
    }

    fn send_shard(&self, shard: usize, mut cmd: ShardCommand) -> Result<(), ApiError> {
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
                    return Err(ApiError::unavailable(format!(
                        "shard {shard} is not taking commands"
                    )))
                }
            }
        }
    }

    fn send_ingest(&self, mut cmd: IngestCommand) -> Result<(), ApiError> {
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
                    return Err(ApiError::unavailable(
                        "the ingest thread is not taking commands",
                    ))
                }
            }
        }
    }

    fn emit(
        &self,
        kind: EventType,
        source: Option<u32>,
        sub: Option<u32>,
        data: serde_json::Value,
    ) {
        let mut event = Event::now(kind).with_data(data);
        event.source = source;
        event.subscriber = sub;
        self.events.emit(event);
    }

    fn request_keyframe(&self, source: u32) {
        if self.ingest.keyframe_requests.push(SourceId(source)).is_ok() {
            self.ingest.wake.notify();
        }
    }

    /// A track on `shard` starts using `source` (attached or switching to it).
    fn use_source(&mut self, shard: usize, source: u32) {
        if let Some(s) = self.sources.get_mut(&source) {
            s.users[shard] += 1;
            s.mask.fetch_or(1 << shard, Ordering::Release);
        }
    }

    fn release_source(&mut self, shard: usize, source: u32) {
        if let Some(s) = self.sources.get_mut(&source) {
            s.users[shard] = s.users[shard].saturating_sub(1);
            if s.users[shard] == 0 {
                s.mask.fetch_and(!(1 << shard), Ordering::Release);
            }
        }
    }

    pub fn create_source(&mut self, req: CreateSource) -> Result<u32, ApiError> {
        let name = req.name.trim();
        if name.is_empty() || name.len() > 128 {
            return Err(ApiError::bad_request("`name` must be 1 to 128 characters"));
        }
        if self.sources.values().any(|s| s.name == name) {
            return Err(ApiError::conflict(format!(
                "a source named `{name}` exists"
            )));
        }
        let codec = Codec::from_name(&req.codec).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown codec `{}`; use one of vp8, vp9, h264, h265, av1, opus",
                req.codec
            ))
        })?;
        let clock_rate = req.clock_rate.unwrap_or(codec.default_clock_rate());
        if !(1_000..=1_000_000).contains(&clock_rate) {
            return Err(ApiError::bad_request(format!(
                "`clock_rate` {clock_rate} is outside 1000..=1000000"
            )));
        }
        let feedback = match &req.feedback {
            None => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|_| {
                ApiError::bad_request(format!("`feedback` `{text}` is not an ip:port address"))
            })?),
        };
        let parameter_sets = req
            .parameter_sets
            .as_deref()
            .map(|text| configured_parameter_sets(codec, text))
            .transpose()?;
        let has_parameter_sets = parameter_sets.is_some();
        let configured_sets: Arc<[Vec<u8>]> = parameter_sets
            .as_ref()
            .map(|s| s.units().into())
            .unwrap_or_default();
        for (field, pt) in [
            ("payload_type", req.payload_type),
            ("rtx_payload_type", req.rtx_payload_type),
        ] {
            if pt.is_some_and(|pt| pt > 127) {
                return Err(ApiError::bad_request(format!(
                    "`{field}` {} is outside 0..=127",
                    pt.unwrap_or_default()
                )));
            }
        }
        if req.payload_type.is_some() && req.payload_type == req.rtx_payload_type {
            return Err(ApiError::bad_request(
                "`payload_type` and `rtx_payload_type` must differ",
            ));
        }
        // Every shard and ingest take the source, or none: a failure below sends nothing, and
        // the socket (its port) is dropped with the error.
        self.make_room(&vec![1; self.shards.len()], 1)?;
        let (socket, port) = self.bind_ingest(req.port)?;
        let id = self.next_source;
        self.next_source += 1;
        let mask = Arc::new(AtomicU64::new(0));
        let latch = req.latch.unwrap_or(true);
        let rtcp_ssrc = Ssrc(self.rng.random());
        for shard in 0..self.shards.len() {
            self.send_shard(shard, ShardCommand::AddSource(SourceId(id), codec))?;
        }
        self.send_ingest(IngestCommand::AddSource(Box::new(NewSource {
            id: SourceId(id),
            codec,
            clock_rate,
            latch,
            socket,
            shards: mask.clone(),
            rtcp_ssrc,
            feedback,
            parameter_sets,
            payload_type: req.payload_type,
            rtx_payload_type: req.rtx_payload_type,
        })))?;
        self.sources.insert(
            id,
            SourceEntry {
                name: name.to_string(),
                codec,
                clock_rate,
                port,
                latch,
                feedback,
                parameter_sets: has_parameter_sets,
                configured_sets,
                payload_type: req.payload_type,
                rtx_payload_type: req.rtx_payload_type,
                mask,
                users: vec![0; self.shards.len()],
            },
        );
        tracing::info!(source = id, name, %codec, port, "source created");
        let data =
            serde_json::json!({"name": name, "codec": codec.name(), "port": port, "latch": latch});
        self.emit(EventType::SourceCreated, Some(id), None, data);
        Ok(id)
    }

    fn bind_ingest(&self, port: Option<u16>) -> Result<(std::net::UdpSocket, u16), ApiError> {
        let bind = |port: u16| -> std::io::Result<std::net::UdpSocket> {
            let addr = SocketAddr::new(self.settings.rtp_ip, port);
            let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
            if let Err(e) = socket.set_recv_buffer_size(self.settings.rcvbuf) {
                tracing::warn!(port, "cannot set the ingest receive buffer: {e}");
            }
            socket.bind(&addr.into())?;
            // Linux reports twice the size granted (it counts its bookkeeping).
            let granted = socket.recv_buffer_size().map(|b| b / 2).unwrap_or(0);
            if granted < self.settings.rcvbuf {
                tracing::warn!(
                    port,
                    asked = self.settings.rcvbuf,
                    granted,
                    "the kernel granted a smaller ingest receive buffer (raise net.core.rmem_max)"
                );
            } else {
                tracing::info!(port, rcvbuf_granted = granted, "ingest socket");
            }
            Ok(socket.into())
        };
        if let Some(port) = port {
            if port == 0 {
                return Err(ApiError::bad_request("`port` must be 1 to 65535"));
            }
            if self.sources.values().any(|s| s.port == port) {
                return Err(ApiError::conflict(format!(
                    "port {port} is used by another source"
                )));
            }
            return bind(port).map(|s| (s, port)).map_err(|e| {
                ApiError::conflict(format!("cannot bind {}:{port}: {e}", self.settings.rtp_ip))
            });
        }
        let range = self.settings.ports;
        for port in range.lo..=range.hi {
            if self.sources.values().any(|s| s.port == port) {
                continue;
            }
            if let Ok(socket) = bind(port) {
                return Ok((socket, port));
            }
        }
        Err(ApiError::unavailable(format!(
            "no free ingest port in {range}"
        )))
    }

    pub fn delete_source(&mut self, id: u32) -> Result<(), ApiError> {
        if !self.sources.contains_key(&id) {
            return Err(ApiError::not_found(format!("no source {id}")));
        }
        self.make_room(&vec![1; self.shards.len()], 1)?;
        self.send_ingest(IngestCommand::RemoveSource(SourceId(id)))?;
        for shard in 0..self.shards.len() {
            self.send_shard(shard, ShardCommand::RemoveSource(SourceId(id)))?;
        }
        // The shard moves a track whose source goes to its pending source, if any.
        let mut cancelled = Vec::new();
        for (&sid, sub) in self.subs.iter_mut() {
            let pending = sub.pending.map(|(p, _)| p);
            if sub.source == Some(id) {
                sub.source = pending;
                sub.pending = None;
            } else if pending == Some(id) {
                sub.pending = None;
                cancelled.push(sid);
            }
        }
        for sid in cancelled {
            let data = serde_json::json!({"to": id, "reason": "source deleted"});
            self.emit(EventType::SwitchCancelled, Some(id), Some(sid), data);
        }
        let entry = self.sources.remove(&id).expect("checked above");
        tracing::info!(source = id, name = entry.name, "source deleted");
        self.emit(
            EventType::SourceDeleted,
            Some(id),
            None,
            serde_json::json!({"name": entry.name}),
        );
        Ok(())
    }

    pub fn create_subscribers(
        &mut self,
        reqs: Vec<CreateSubscriber>,
    ) -> Result<Vec<u32>, ApiError> {
        if self.subs.len() + reqs.len() > self.settings.max_subscribers {
            return Err(ApiError::too_many(format!(
                "{} subscribers would exceed --max-subscribers {}",
                self.subs.len() + reqs.len(),
                self.settings.max_subscribers
            )));
        }
        let mut parsed = Vec::with_capacity(reqs.len());
        for (i, req) in reqs.iter().enumerate() {
            let at = if reqs.len() > 1 {
                format!("entry {i}: ")
            } else {
                String::new()
            };
            if !self.sources.contains_key(&req.source) {
                return Err(ApiError::not_found(format!("{at}no source {}", req.source)));
            }
            let dest: SocketAddr = req.dest.parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "{at}`dest` `{}` is not an ip:port address",
                    req.dest
                ))
            })?;
            if dest.port() == 0 || dest.ip().is_unspecified() {
                return Err(ApiError::bad_request(format!(
                    "{at}`dest` `{dest}` needs a real address and a non-zero port"
                )));
            }
            parsed.push((req.source, dest));
        }
        // Place them first, then make sure every shard that gets some can take its command:
        // the batch is sent whole or not at all, and a refused one uses no ids.
        let mut load = self.shard_load.clone();
        let placement: Vec<usize> = parsed
            .iter()
            .map(|_| {
                let k = (0..load.len())
                    .min_by_key(|&k| load[k])
                    .expect("a node has at least one shard");
                load[k] += 1;
                k
            })
            .collect();
        let needs: Vec<usize> = load
            .iter()
            .zip(&self.shard_load)
            .map(|(after, before)| usize::from(after > before))
            .collect();
        self.make_room(&needs, 0)?;
        // From here nothing fails: the sends below find the room made above.
        let mut per_shard: Vec<Vec<(TrackConfig, SourceId)>> = vec![Vec::new(); self.shards.len()];
        let (mut ids, mut ssrcs) = (Vec::with_capacity(parsed.len()), Vec::new());
        for (&(source, dest), &shard) in parsed.iter().zip(&placement) {
            let id = self.next_sub + ids.len() as u32;
            let ssrc = self.unused_ssrc();
            let codec = self.sources[&source].codec;
            let config = TrackConfig {
                id: TrackId(id),
                dest,
                ssrc: Ssrc(ssrc),
                payload_type: output_payload_type(codec),
                first_seq: SeqNo(self.rng.random()),
                first_ts: RtpTime(self.rng.random()),
            };
            per_shard[shard].push((config, SourceId(source)));
            ids.push(id);
            ssrcs.push(ssrc);
        }
        for (shard, tracks) in per_shard.into_iter().enumerate() {
            if !tracks.is_empty() {
                self.send_shard(shard, ShardCommand::AddTracks(tracks))?;
            }
        }
        self.next_sub += ids.len() as u32;
        for (i, ((source, dest), shard)) in parsed.iter().copied().zip(placement).enumerate() {
            let (id, ssrc) = (ids[i], ssrcs[i]);
            self.shard_load[shard] += 1;
            self.use_source(shard, source);
            self.subs.insert(
                id,
                SubEntry {
                    ssrc,
                    shard,
                    codec: self.sources[&source].codec,
                    source: Some(source),
                    pending: None,
                    requested_at: None,
                    dest,
                    switches: 0,
                },
            );
            let data = serde_json::json!({"dest": dest.to_string(), "ssrc": ssrc, "shard": shard});
            self.emit(EventType::SubscriberAdded, Some(source), Some(id), data);
        }
        // New subscribers start at a keyframe: ask each video source for one now rather than
        // have them wait up to a GOP (requests are coalesced per --pli-interval by ingest).
        let mut wanted: Vec<u32> = parsed.iter().map(|&(s, _)| s).collect();
        wanted.sort_unstable();
        wanted.dedup();
        for source in wanted {
            if !self.sources[&source].codec.is_audio() {
                self.request_keyframe(source);
            }
        }
        Ok(ids)
    }

    fn unused_ssrc(&mut self) -> u32 {
        loop {
            let ssrc: u32 = self.rng.random();
            if ssrc != 0 && self.ssrcs.insert(ssrc) {
                return ssrc;
            }
        }
    }

    pub fn delete_subscriber(&mut self, id: u32) -> Result<(), ApiError> {
        let sub = self
            .subs
            .get(&id)
            .ok_or_else(|| ApiError::not_found(format!("no subscriber {id}")))?;
        let (shard, source, pending) = (sub.shard, sub.source, sub.pending.map(|(p, _)| p));
        self.send_shard(shard, ShardCommand::RemoveTrack(TrackId(id)))?;
        if let Some(sub) = self.subs.remove(&id) {
            self.ssrcs.remove(&sub.ssrc);
        }
        self.shard_load[shard] -= 1;
        for s in [source, pending].into_iter().flatten() {
            self.release_source(shard, s);
        }
        self.emit(
            EventType::SubscriberRemoved,
            source,
            Some(id),
            serde_json::json!({}),
        );
        Ok(())
    }

    pub fn switch(&mut self, id: u32, to: u32) -> Result<SwitchView, ApiError> {
        let sub = self
            .subs
            .get(&id)
            .ok_or_else(|| ApiError::not_found(format!("no subscriber {id}")))?;
        let target = self
            .sources
            .get(&to)
            .ok_or_else(|| ApiError::not_found(format!("no source {to}")))?;
        // The subscriber's own codec, not its source's: a detached one has no source to ask.
        if sub.codec != target.codec {
            return Err(ApiError::conflict(format!(
                "subscriber {id} receives {} and source {to} is {}",
                sub.codec, target.codec
            )));
        }
        let (shard, source, pending) = (sub.shard, sub.source, sub.pending.map(|(p, _)| p));
        if source == Some(to) && pending.is_none() {
            return Ok(SwitchView {
                outcome: ApiSwitchOutcome::Unchanged,
                source,
                pending_source: None,
            });
        }
        // Back to the current source the engine drops the pending switch (`Unchanged`).
        self.send_shard(shard, ShardCommand::Switch(TrackId(id), SourceId(to)))?;
        if let Some(p) = pending {
            self.release_source(shard, p);
        }
        let sub = self.subs.get_mut(&id).expect("checked above");
        let now = Instant::now();
        let outcome = if source == Some(to) {
            sub.pending = None;
            sub.requested_at = None;
            ApiSwitchOutcome::Cancelled
        } else {
            sub.pending = Some((to, now + self.settings.switch_timeout));
            sub.requested_at = Some(now);
            // The shard wants the keyframe the switch waits for, and keeps its deadline.
            self.use_source(shard, to);
            ApiSwitchOutcome::Pending
        };
        if let Some(p) = pending.filter(|&p| p != to) {
            let data = serde_json::json!({"to": p, "reason": "replaced", "by": to});
            self.emit(EventType::SwitchCancelled, Some(p), Some(id), data);
        }
        if outcome == ApiSwitchOutcome::Pending {
            let data = serde_json::json!({"from": source, "to": to});
            self.emit(EventType::SwitchRequested, Some(to), Some(id), data);
        }
        Ok(SwitchView {
            outcome,
            source,
            pending_source: (outcome == ApiSwitchOutcome::Pending).then_some(to),
        })
    }

    fn drain_events(&mut self) {
        for shard in 0..self.shards.len() {
            while let Some(event) = self.shards[shard].link.events.pop() {
                self.on_event(shard, event);
            }
        }
    }

    fn on_event(&mut self, shard: usize, event: ShardEvent) {
        match event {
            ShardEvent::SwitchRequested(track, to, Ok(SwitchOutcome::Moved)) => {
                self.switched(shard, track.0, to.0)
            }
            ShardEvent::SwitchRequested(_, _, Ok(_)) => {}
            ShardEvent::SwitchRequested(track, to, Err(e)) => {
                tracing::warn!(subscriber = track.0, source = to.0, "switch refused: {e}");
                // Only the switch still pending is news: one replaced since was reported then.
                let Some(sub) = self.subs.get_mut(&track.0) else {
                    return;
                };
                if sub.pending.map(|(p, _)| p) != Some(to.0) {
                    return;
                }
                sub.pending = None;
                sub.requested_at = None;
                self.release_source(shard, to.0);
                let data =
                    serde_json::json!({"to": to.0, "reason": "refused", "error": e.to_string()});
                self.emit(EventType::SwitchCancelled, Some(to.0), Some(track.0), data);
            }
            ShardEvent::Switched(track, to) => self.switched(shard, track.0, to.0),
            ShardEvent::SwitchTimedOut(track, to) => self.switch_timed_out(shard, track.0, to.0),
            ShardEvent::Refused(e) => tracing::warn!(shard, "shard refused a command: {e}"),
        }
    }

    /// Subscriber `id` now takes `to` (attached, at or waiting for its switch point).
    fn switched(&mut self, shard: usize, id: u32, to: u32) {
        let Some(sub) = self.subs.get_mut(&id) else {
            return;
        };
        let was_pending = sub.pending.map(|(p, _)| p) == Some(to);
        let old = sub.source.replace(to);
        sub.pending = None;
        sub.switches += 1;
        let took_ms = sub
            .requested_at
            .take()
            .map(|t| t.elapsed().as_secs_f64() * 1000.0);
        if !was_pending {
            // Replaced here while the shard applied it: take the source back.
            self.use_source(shard, to);
        }
        if let Some(old) = old.filter(|&o| o != to) {
            self.release_source(shard, old);
        }
        tracing::debug!(subscriber = id, source = to, "switch completed");
        let data = serde_json::json!({"from": old, "to": to, "took_ms": took_ms});
        self.emit(EventType::SwitchCompleted, Some(to), Some(id), data);
    }

    /// The shard cancelled subscriber `id`'s switch to `source` at its deadline.
    fn switch_timed_out(&mut self, shard: usize, id: u32, source: u32) {
        let Some(sub) = self.subs.get_mut(&id) else {
            return;
        };
        // A switch replaced or cancelled since was reported then.
        if sub.pending.map(|(p, _)| p) != Some(source) {
            return;
        }
        sub.pending = None;
        let waited_ms = sub
            .requested_at
            .take()
            .map(|t| t.elapsed().as_millis() as u64);
        self.release_source(shard, source);
        self.switches_timed_out += 1;
        let reason = "no keyframe came from the source within --switch-timeout; it may \
                      not answer keyframe requests (PLI) or not be sending";
        tracing::warn!(subscriber = id, source, "switch timed out: {reason}");
        let data = serde_json::json!({"to": source, "waited_ms": waited_ms, "reason": reason});
        self.emit(EventType::SwitchTimedOut, Some(source), Some(id), data);
    }
}

/// The payload type subscribers receive: fixed per codec, so it stays the same across switches
/// whatever the sources use.
pub fn output_payload_type(codec: Codec) -> u8 {
    match codec {
        Codec::Vp8 => 96,
        Codec::Vp9 => 98,
        Codec::H264 => 102,
        Codec::H265 => 104,
        Codec::Av1 => 106,
        Codec::Opus => 111,
    }
}

/// Parse `CreateSource::parameter_sets`: base64 NAL units separated by commas, checked to be a
/// complete set for `codec`. Public for the fuzz target `fuzz/fuzz_targets/api_json.rs`.
pub fn configured_parameter_sets(codec: Codec, text: &str) -> Result<ParameterSets, ApiError> {
    use base64::Engine;
    let units = text
        .split(',')
        .map(str::trim)
        .enumerate()
        .map(|(i, unit)| {
            base64::engine::general_purpose::STANDARD
                .decode(unit)
                .map_err(|e| {
                    ApiError::bad_request(format!(
                        "`parameter_sets` unit {i} (`{unit}`) is not base64: {e}"
                    ))
                })
        })
        .collect::<Result<Vec<Vec<u8>>, ApiError>>()?;
    let refs: Vec<&[u8]> = units.iter().map(Vec::as_slice).collect();
    ParameterSets::configured(codec, &refs)
        .map_err(|e| ApiError::bad_request(format!("`parameter_sets`: {e}")))
}

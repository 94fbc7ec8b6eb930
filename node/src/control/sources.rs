//! Creating and deleting sources: the ingest socket, and the source on every shard and ingest.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use corecast_engine::{Failover, JoinPolicy, Nanos, SourceId, Ssrc};
use corecast_signaling::api::CreateSource;
use corecast_udp::Buffer;
use rand::Rng;
use socket2::{Domain, Protocol, Socket, Type};

use super::error::{Conflict, NodeError, Unavailable, What};
use super::topology::SourceEntry;
use super::{validate, ControlState};
use crate::events::EventType;
use crate::ingest::{IngestCommand, NewSource};
use crate::shard::ShardCommand;

impl ControlState {
    pub(crate) fn create_source(&mut self, req: CreateSource) -> Result<SourceId, NodeError> {
        if self.sources.len() >= self.settings.max_sources {
            return Err(NodeError::TooManySources {
                limit: self.settings.max_sources,
            });
        }
        let req = validate::source(&req, &self.sources, self.settings.history)?;
        let has_parameter_sets = req.parameter_sets.is_some();
        let configured_sets: Arc<[Vec<u8>]> = req
            .parameter_sets
            .as_ref()
            .map(|s| s.units().into())
            .unwrap_or_default();
        // Every shard and ingest take the source, or none: a failure below sends nothing, and
        // the socket (its port) is dropped with the error.
        self.make_room(&vec![1; self.shards.len()], 1)?;
        let (socket, port) = self.bind_ingest(req.port)?;
        let id = self.take_source_id();
        let rtcp_ssrc = Ssrc(self.rng.random());
        let (name, codec, latch) = (req.name, req.codec, req.latch);
        let join = match req.replay {
            None => self.settings.join,
            Some(false) => JoinPolicy::Keyframe,
            Some(true) => JoinPolicy::Replay {
                pace: self.settings.replay_pace,
            },
        };
        // A replayed source's packets go to every shard from the start, so each keeps its
        // history and the first subscriber anywhere joins at once.
        let every_shard = u64::MAX >> (64 - self.shards.len().clamp(1, 64));
        let replayed = matches!(join, JoinPolicy::Replay { .. }) && !codec.is_audio();
        let mask = Arc::new(AtomicU64::new(if replayed { every_shard } else { 0 }));
        for shard in 0..self.shards.len() {
            self.send_shard(shard, ShardCommand::AddSource(id, codec, join))?;
        }
        self.send_ingest(IngestCommand::AddSource(Box::new(NewSource {
            id,
            codec,
            clock_rate: req.clock_rate,
            latch,
            socket,
            shards: mask.clone(),
            rtcp_ssrc,
            feedback: req.feedback,
            parameter_sets: req.parameter_sets,
            payload_type: req.payload_type,
            rtx_payload_type: req.rtx_payload_type,
        })))?;
        let data = serde_json::json!({
            "name": name,
            "codec": codec.name(),
            "port": port,
            "latch": latch,
            "fallback": req.fallback.map(|f| f.0),
        });
        tracing::info!(source = id.0, name, %codec, port, "source created");
        self.sources.insert(
            id,
            SourceEntry {
                name,
                codec,
                clock_rate: req.clock_rate,
                port,
                latch,
                feedback: req.feedback,
                parameter_sets: has_parameter_sets,
                configured_sets,
                payload_type: req.payload_type,
                rtx_payload_type: req.rtx_payload_type,
                join,
                fallback: req.fallback.map(|fallback| {
                    let idle = Nanos(self.settings.idle_timeout.as_nanos() as u64);
                    let now = self.settings.clock.now();
                    // Ids are never reused: a new source has accepted nothing yet.
                    (
                        fallback,
                        Failover::new(idle, 0, self.fallback_accepted(fallback), now),
                    )
                }),
                mask,
                users: vec![0; self.shards.len()],
            },
        );
        self.emit(EventType::SourceCreated, Some(id), None, data);
        Ok(id)
    }

    /// The packets ingest accepted from `source` so far, as of its last snapshot.
    fn fallback_accepted(&self, source: SourceId) -> u64 {
        super::failover::accepted_in(&crate::telemetry::lock(&self.telemetry), source)
    }

    /// The ingest socket of a new source: on `port` if asked, else on the first free port of
    /// `--rtp-ports`.
    fn bind_ingest(&self, port: Option<u16>) -> Result<(std::net::UdpSocket, u16), NodeError> {
        let bind = |port: u16| -> std::io::Result<std::net::UdpSocket> {
            let addr = SocketAddr::new(self.settings.rtp_ip, port);
            let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
            if let Err(e) = Buffer::Receive.set_size(&socket, self.settings.rcvbuf) {
                tracing::warn!(port, "cannot set the ingest receive buffer: {e}");
            }
            socket.bind(&addr.into())?;
            let granted = Buffer::Receive.size(&socket).unwrap_or(0);
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
                return Err(NodeError::BadRequest("`port` must be 1 to 65535".into()));
            }
            if self.sources.values().any(|s| s.port == port) {
                return Err(Conflict::PortInUse(port).into());
            }
            return bind(port).map(|s| (s, port)).map_err(|error| {
                let ip = self.settings.rtp_ip;
                Conflict::CannotBind { ip, port, error }.into()
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
        Err(Unavailable::NoFreePort(range).into())
    }

    pub(crate) fn delete_source(&mut self, id: SourceId) -> Result<(), NodeError> {
        if !self.sources.contains_key(&id) {
            return Err(NodeError::NotFound(What::Source(id)));
        }
        self.make_room(&vec![1; self.shards.len()], 1)?;
        self.send_ingest(IngestCommand::RemoveSource(id))?;
        for shard in 0..self.shards.len() {
            self.send_shard(shard, ShardCommand::RemoveSource(id))?;
        }
        // The shard moves a track whose source goes to its pending source, if any.
        let mut cancelled = Vec::new();
        for (&sid, sub) in self.subs.iter_mut() {
            let pending = sub.pending;
            if sub.source == Some(id) {
                sub.source = pending;
                sub.pending = None;
            } else if pending == Some(id) {
                sub.pending = None;
                cancelled.push(sid);
            }
        }
        for sid in cancelled {
            let data = serde_json::json!({"to": id.0, "reason": "source deleted"});
            self.emit(EventType::SwitchCancelled, Some(id), Some(sid), data);
        }
        self.detach_channels(id);
        for (&primary, s) in self.sources.iter_mut() {
            if s.fallback.as_ref().is_some_and(|(f, _)| *f == id) {
                tracing::info!(
                    source = primary.0,
                    "its fallback was deleted: it has none now"
                );
                s.fallback = None;
            }
        }
        let entry = self.sources.remove(&id).expect("checked above");
        tracing::info!(source = id.0, name = entry.name, "source deleted");
        self.emit(
            EventType::SourceDeleted,
            Some(id),
            None,
            serde_json::json!({"name": entry.name}),
        );
        Ok(())
    }
}

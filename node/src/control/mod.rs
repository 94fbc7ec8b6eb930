//! The control thread: owns the topology (sources, subscribers, which shard holds which track),
//! validates requests, and drives the ingest thread and the shards through their command queues.
//! It is never on the packet path: shards and ingest only read the per-source shard mask it keeps.
//!
//! The HTTP API reaches it through [`ControlHandle`], which sends a closure over a channel and
//! waits for its reply, so every change to the topology happens on this one thread, in order.
//!
//! - `actor`: the thread, [`ControlHandle::call`], and the command queues it sends on.
//! - `topology`: what the node holds (sources, subscribers, shard load and masks, SSRCs).
//! - `validate`: requests checked and parsed before anything changes.
//! - `sources`, `subscribers`, `switches`: the requests and shard events that change the topology.
//! - `failover`: subscribers of an idle source moved to its fallback, and back.
//! - `channels`: what a viewer watches (a video and an audio source); no shard holds them yet.
//! - `error`: [`NodeError`], the one error of all of it, and its mapping to the HTTP API's.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use corecast_engine::{SourceId, TrackId};
use rand::{rngs::StdRng, SeedableRng};

use crate::config::PortRange;
use crate::events::{Event, EventBus, EventType};
use crate::ingest::IngestLink;
use crate::shard::ShardLink;
use crate::telemetry::SharedAggregates;

pub(crate) mod actor;
mod channels;
pub(crate) mod error;
mod failover;
mod sources;
mod subscribers;
mod switches;
pub(crate) mod topology;
pub(crate) mod validate;
mod viewers;

pub use actor::ControlHandle;
pub use error::{Conflict, NodeError, Unavailable, What};
pub use topology::ChannelId;
pub(crate) use topology::{ChannelEntry, SourceEntry, SubEntry};
pub use validate::{configured_parameter_sets, ParameterSetsError};
pub use viewers::ViewerTrack;
pub(crate) use viewers::{ViewerEntry, ViewerState};

/// The control thread's view of one shard.
pub struct ShardHandle {
    pub link: Arc<ShardLink>,
    /// The address the shard sends media from.
    pub media_from: SocketAddr,
    /// The core it is pinned to, if pinned.
    pub core: Option<usize>,
}

/// What the control thread needs of the node's configuration.
pub struct Settings {
    /// `--rtp-ip`: where sources' ingest sockets are bound.
    pub rtp_ip: IpAddr,
    /// `--rtp-ports`: ingest ports for sources that do not ask for one.
    pub ports: PortRange,
    /// `--rcvbuf`: receive buffer asked for each ingest socket.
    pub rcvbuf: usize,
    /// `--max-subscribers`.
    pub max_subscribers: usize,
    /// `--max-sources`: the packet pool is sized for this many sources' histories.
    pub max_sources: usize,
    /// `--join`: how subscribers join sources that do not say.
    pub join: corecast_engine::JoinPolicy,
    /// `--replay-pace`: the pace of sources that ask for `replay`.
    pub replay_pace: u32,
    /// `--idle-timeout`: a source with a fallback that sent nothing for this long fails over.
    pub idle_timeout: std::time::Duration,
    /// The node's clock, for the failover policy's `now`.
    pub clock: crate::clock::Clock,
    /// The shards keep histories (`--history-ms` above 0).
    pub history: bool,
    /// `--node-name`, for the SDPs the node writes.
    pub node_name: String,
    /// WHEP viewers; `None` when the node serves none.
    pub webrtc: Option<WebrtcSettings>,
}

/// What the control thread needs to admit WHEP viewers.
pub struct WebrtcSettings {
    /// The node's DTLS certificate's fingerprint, for the answers.
    pub fingerprint: corecast_webrtc::sdp::Fingerprint,
    /// `--public-ip`: the address the answers give as host candidate, when the shard sockets'
    /// own is not one viewers can reach.
    pub public_ip: Option<IpAddr>,
    pub handshakes: crate::webrtc::HandshakeTx,
    /// The handshake thread's counters, for stats and metrics.
    pub counters: Arc<crate::webrtc::HandshakeCounters>,
}

/// Everything the control thread owns; only that thread touches it.
pub struct ControlState {
    pub(crate) settings: Settings,
    pub(crate) shards: Vec<ShardHandle>,
    pub(crate) ingest: Arc<IngestLink>,
    pub(crate) sources: BTreeMap<SourceId, SourceEntry>,
    pub(crate) subs: BTreeMap<TrackId, SubEntry>,
    pub(crate) channels: BTreeMap<ChannelId, ChannelEntry>,
    /// WHEP viewers by subscriber id; their tracks, once secured, are in `subs` too.
    pub(crate) viewers: BTreeMap<TrackId, ViewerEntry>,
    /// Output SSRCs in use, so a new subscriber's is unique without scanning them all.
    ssrcs: HashSet<u32>,
    next_source: u32,
    next_sub: u32,
    next_channel: u32,
    rng: StdRng,
    /// Subscribers per shard, for placing new ones.
    pub(crate) shard_load: Vec<usize>,
    pub(crate) telemetry: SharedAggregates,
    pub(crate) events: Arc<EventBus>,
    /// Subscribers a failover moved away from their primary (`SubEntry::home` set), so the
    /// control tick knows there is something to watch after the last fallback went away.
    homed: usize,
    /// When the failovers were last watched.
    failover_watched: corecast_engine::Nanos,
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
            channels: BTreeMap::new(),
            viewers: BTreeMap::new(),
            ssrcs: HashSet::new(),
            next_source: 1,
            next_sub: 1,
            next_channel: 1,
            rng: StdRng::from_os_rng(),
            shard_load: vec![0; n],
            telemetry,
            events,
            homed: 0,
            failover_watched: corecast_engine::Nanos::ZERO,
        }
    }

    fn emit(
        &self,
        kind: EventType,
        source: Option<SourceId>,
        sub: Option<TrackId>,
        data: serde_json::Value,
    ) {
        let mut event = Event::now(kind).with_data(data);
        event.source = source.map(|s| s.0);
        event.subscriber = sub.map(|t| t.0);
        self.events.emit(event);
    }
}

//! A shard: the tx tracks one worker thread owns, and the fan-out of one rx packet to them.
//!
//! The run loop (in the node) takes one packet at a time and drives
//! [`Shard::fan_out`] until it is done:
//!
//! ```
//! # use corecast_engine::{Shard, TransmitBatch, Nanos, RxPacket};
//! # fn run(shard: &mut Shard, pkt: &RxPacket, buf: &[u8], now: Nanos, batch: &mut TransmitBatch) {
//! let mut fan_out = shard.fan_out(pkt, buf, now);
//! while fan_out.fill(batch) > 0 {
//!     // send batch.as_slice() with one sendmmsg, then:
//!     batch.clear();
//! }
//! # }
//! ```
//!
//! Control operations (add/remove tracks and sources, switch) run between packets, never during a
//! fan-out, which the borrow checker enforces. Subscribers' RTCP goes in with
//! [`Shard::handle_rtcp`]; everything else that comes out (switches applied, deferred, timed out;
//! keyframes wanted) is drained with [`Shard::poll_event`], and switch deadlines are kept by
//! [`Shard::poll_timeout`] / [`Shard::handle_timeout`] (see [`events`]).

pub mod events;
mod feedback;
mod linked;
mod repair;
mod replay;
mod reports;
mod run;
mod switch;
mod table;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use crate::drop::{DropCounts, DropReason};
use crate::source::RxPacket;
use crate::splicer::{SharedRewrite, Splicer};
use crate::transmit::{Transmit, TransmitBatch};
use crate::types::{Codec, Nanos, RtpTime, SeqNo, SourceId, Ssrc, TrackId};
use events::SwitchDeadline;
use table::{Track, TrackTable, DETACHED};

pub use events::ShardEvent;
pub use feedback::is_subscribers_address;
pub use repair::{RepairConfig, RepairCounters, Resent, RESEND_QUEUE};
pub use replay::{JoinPolicy, ReplayCounters, Replayed, REPLAY_PACE};
pub use reports::{Reception, SENDER_REPORT_INTERVAL, SENDER_REPORT_LEN};
pub use run::{Run, RunFanOut, MAX_RUN};
pub use table::{SourceCounters, TrackCounters};

/// How a packet finds the tracks of its source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// Walk only the packet's source's group: the contiguous slice of its tracks.
    #[default]
    Grouped,
    /// Walk every track of the shard and skip those on other sources. Kept to measure what
    /// grouping saves; see BENCHMARKS.md.
    Scan,
}

/// What the control plane gives a shard to create a tx track.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackConfig {
    /// The track's id, unique node-wide.
    pub id: TrackId,
    /// The subscriber's address: where the track's packets go, and whose RTCP on the track is
    /// taken (see [`is_subscribers_address`]).
    pub dest: SocketAddr,
    /// The SSRC the track sends with; unique within the shard, so feedback finds the track.
    pub ssrc: Ssrc,
    /// The payload type the track sends with, whatever its sources use.
    pub payload_type: u8,
    /// Initial sequence number: random (RFC 3550 §5.1).
    pub first_seq: SeqNo,
    /// Initial timestamp: random (RFC 3550 §5.1).
    pub first_ts: RtpTime,
}

/// A control operation the shard refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlError {
    /// The shard hosts no source with this id.
    UnknownSource(SourceId),
    /// The shard has no track with this id.
    UnknownTrack(TrackId),
    /// The shard hosts this source already.
    DuplicateSource(SourceId),
    /// The shard has a track with this id already.
    DuplicateTrack(TrackId),
    /// Another track of the shard already sends with this SSRC: subscribers' feedback could not
    /// tell them apart.
    DuplicateSsrc(Ssrc),
    /// A track's decoder was set up for one codec; it cannot be switched to another.
    CodecMismatch {
        /// The track's codec.
        track: Codec,
        /// The codec of the source it was to switch to.
        source: Codec,
    },
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlError::UnknownSource(s) => write!(f, "unknown source {s}"),
            ControlError::UnknownTrack(t) => write!(f, "unknown track {t}"),
            ControlError::DuplicateSource(s) => write!(f, "source {s} already exists"),
            ControlError::DuplicateTrack(t) => write!(f, "track {t} already exists"),
            ControlError::DuplicateSsrc(s) => write!(f, "a track already sends with SSRC {}", s.0),
            ControlError::CodecMismatch { track, source } => {
                write!(f, "track is {track} but source is {source}")
            }
        }
    }
}

impl std::error::Error for ControlError {}

/// What a switch request did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchOutcome {
    /// The track keeps its current source until the new one's next switch point.
    Pending,
    /// The track had nothing live to keep, so it moved now and waits for the new source's
    /// switch point.
    Moved,
    /// The track is already on that source; any pending switch was cancelled.
    Unchanged,
}

/// A snapshot of one track, for the control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackInfo {
    /// The track's id.
    pub id: TrackId,
    /// The subscriber's address.
    pub dest: SocketAddr,
    /// The SSRC the track sends with.
    pub ssrc: Ssrc,
    /// The codec of the track's sources, fixed when it was added.
    pub codec: Codec,
    /// The source the track is attached to (`None`: detached, sending nothing).
    pub source: Option<SourceId>,
    /// The source of a switch not yet applied.
    pub pending: Option<SourceId>,
    /// Sending the current source's packets (not waiting for a keyframe).
    pub live: bool,
    /// Being replayed `source`'s history before it takes live packets (see [`JoinPolicy`]).
    pub replaying: bool,
    /// The track's counters so far.
    pub counters: TrackCounters,
    /// What its subscriber last reported receiving (RTCP report blocks), if it reported.
    pub reception: Option<Reception>,
}

/// Counters of the shard as a whole.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShardCounters {
    /// Packets handed to [`Shard::fan_out`], for any source.
    pub packets: u64,
    /// Packets for sources the shard does not host.
    pub drops: DropCounts,
    /// Switches applied ([`ShardEvent::SwitchApplied`]).
    pub switches: u64,
    /// Switches put off to the new source's next switch point because the old source was in
    /// the middle of a frame (see [`MID_FRAME_WAIT`]).
    pub switches_deferred: u64,
    /// Pending switches cancelled at their deadline ([`Shard::handle_timeout`]).
    pub switches_timed_out: u64,
    /// PLIs and FIR entries from a track's subscriber, each a keyframe wanted from its source.
    pub keyframe_requests: u64,
    /// PLIs and FIR entries naming a track's SSRC that came from another address: ignored.
    pub rtcp_wrong_sender: u64,
}

/// How recent the old source's last packet must be for a switch to wait for its frame to end.
/// Packetizers send a frame's packets back to back, and paced senders within tens of
/// milliseconds; a source silent for longer has stopped (or lost the frame's last packet), and
/// waiting for it would only delay the switch.
pub const MID_FRAME_WAIT: Nanos = Nanos::from_millis(100);

/// How long a pending switch waits for the new source's switch point by default (the node's
/// `--switch-timeout` default).
pub const SWITCH_TIMEOUT: Nanos = Nanos::from_millis(5_000);

/// The tracks one worker owns. See the module docs for the run loop. `H` is the I/O layer's
/// handle to a packet's bytes, kept in the sources' histories for resends (see [`Shard::remember`] and [`Shard::poll_resend`]);
/// a shard that keeps none needs none.
#[derive(Clone, Debug)]
pub struct Shard<H = ()> {
    table: TrackTable,
    layout: Layout,
    counters: ShardCounters,
    /// Events not yet polled; room is reserved ahead, so the packet path never grows it (see
    /// [`events`]).
    events: VecDeque<ShardEvent>,
    /// Deadlines of the pending switches.
    deadlines: Vec<SwitchDeadline>,
    switch_timeout: Nanos,
    /// Least time between two keyframe wishes for one source (see [`Shard::set_keyframe_interval`]).
    keyframe_interval: Nanos,
    /// Output SSRC → track, kept with the tracks, for subscribers' feedback.
    by_ssrc: HashMap<Ssrc, TrackId>,
    /// Tracks with sender reports on, and when the next are due (see [`reports`]).
    sender_report_tracks: usize,
    next_sender_reports: Option<Nanos>,
    /// Switches asked for together ([`Shard::switch_together`]): each follower's pending switch
    /// waits for its lead's to be applied.
    links: Vec<linked::SwitchLink>,
    /// Recent packets of the sources with tracks here, when the shard keeps histories
    /// (`history_config`: their bounds, for video).
    histories: HashMap<SourceId, repair::KeptHistory<H>>,
    history_config: Option<crate::history::HistoryConfig>,
    repair_config: RepairConfig,
    /// Repair counters of tracks removed or with repair turned off.
    repair_counters: RepairCounters,
    /// Resends not yet polled; room for [`RESEND_QUEUE`] reserved at the start.
    resends: VecDeque<repair::QueuedResend>,
    /// Tracks joining a source from its history (see [`replay`]).
    replays: Vec<replay::Replay>,
    replay_counters: ReplayCounters,
}

impl Default for Shard {
    fn default() -> Shard {
        Shard::new(Layout::Grouped)
    }
}

impl Shard {
    /// An empty shard that keeps no packet handles: no sources, no tracks, [`SWITCH_TIMEOUT`],
    /// no keyframe interval.
    pub fn new(layout: Layout) -> Shard {
        Shard::with_handles(layout)
    }
}

impl<H> Shard<H> {
    /// An empty shard whose histories hold packet handles of type `H`.
    pub fn with_handles(layout: Layout) -> Shard<H> {
        Shard {
            table: TrackTable::new(),
            layout,
            counters: ShardCounters::default(),
            events: VecDeque::new(),
            deadlines: Vec::new(),
            switch_timeout: SWITCH_TIMEOUT,
            keyframe_interval: Nanos::ZERO,
            by_ssrc: HashMap::new(),
            sender_report_tracks: 0,
            next_sender_reports: None,
            links: Vec::new(),
            histories: HashMap::new(),
            history_config: None,
            repair_config: RepairConfig::default(),
            repair_counters: RepairCounters::default(),
            resends: VecDeque::with_capacity(RESEND_QUEUE),
            replays: Vec::new(),
            replay_counters: ReplayCounters::default(),
        }
    }

    /// How long a pending switch waits for the new source's switch point before it is cancelled
    /// ([`ShardEvent::SwitchTimedOut`]). Applies to switches requested from now on.
    pub fn set_switch_timeout(&mut self, timeout: Nanos) {
        self.switch_timeout = timeout;
    }

    /// Least time between two [`ShardEvent::KeyframeWanted`] for one source: wishes within it
    /// join one that is emitted when it ends ([`Shard::handle_timeout`]). Ingress rate limits the
    /// requests it sends anyway; this keeps a storm of subscribers' PLIs from becoming as many
    /// events (and cross-thread messages). Zero (the default): one event queued per source until
    /// polled, nothing more.
    pub fn set_keyframe_interval(&mut self, interval: Nanos) {
        self.keyframe_interval = interval;
    }

    /// The shard's counters so far.
    pub fn counters(&self) -> &ShardCounters {
        &self.counters
    }

    /// Number of tracks, attached or detached.
    pub fn track_count(&self) -> usize {
        self.table.tracks.len()
    }

    /// Make room for `additional` more tracks, so adding them later does not reallocate.
    pub fn reserve(&mut self, additional: usize) {
        self.table.tracks.reserve(additional);
    }

    /// Host `source`, so its packets reach the tracks added on it. Tracks can only be added on, or
    /// switched to, a source the shard hosts.
    pub fn add_source(&mut self, source: SourceId, codec: Codec) -> Result<(), ControlError> {
        if self.table.group_of(source).is_some() {
            return Err(ControlError::DuplicateSource(source));
        }
        self.table.add_group(source, codec);
        self.reserve_events();
        Ok(())
    }

    /// Remove a source. Its tracks stay, detached (or move to their pending source), until
    /// switched or removed; switches pending to it are cancelled.
    pub fn remove_source(&mut self, source: SourceId) -> Result<SourceCounters, ControlError> {
        let g = self
            .table
            .group_of(source)
            .ok_or(ControlError::UnknownSource(source))?;
        self.histories.remove(&source);
        self.replays.retain(|r| r.source != source);
        for id in std::mem::take(&mut self.table.groups[g].pending) {
            let slot = self.slot(id)?;
            let track = &mut self.table.tracks[slot];
            (track.pending, track.deferred) = (None, false);
            self.forget_deadline(id);
        }
        while self.table.groups[g].len() > 0 {
            let slot = self.table.groups[g].start as usize;
            self.table.tracks[slot].splicer.detach();
            match self.table.tracks[slot].pending {
                Some(target) => {
                    self.take_pending(self.table.tracks[slot].id, target);
                    let to = self.group(target)?;
                    let slot = self.table.move_to_group(slot, g, to);
                    self.table.tracks[slot].pending = None;
                }
                None => {
                    self.table.move_to_group(slot, g, DETACHED);
                }
            }
        }
        Ok(self.table.remove_group(g).counters)
    }

    /// The counters of `source` over this shard's tracks; `None` if the shard does not host it.
    pub fn source_counters(&self, source: SourceId) -> Option<&SourceCounters> {
        self.table
            .group_of(source)
            .map(|g| &self.table.groups[g].counters)
    }

    /// Number of tracks attached to `source` (sending it or waiting for its keyframe).
    pub fn tracks_on(&self, source: SourceId) -> usize {
        self.table
            .group_of(source)
            .map_or(0, |g| self.table.groups[g].len() as usize)
    }

    /// Add a track on `source`. It sends nothing until the source's next switch point, or,
    /// where the source's join policy replays ([`Shard::set_join`]), it starts from the
    /// history at the next [`Shard::poll_replay`].
    pub fn add_track(&mut self, config: TrackConfig, source: SourceId) -> Result<(), ControlError> {
        if self.table.slot_of(config.id).is_some() {
            return Err(ControlError::DuplicateTrack(config.id));
        }
        if self.by_ssrc.contains_key(&config.ssrc) {
            return Err(ControlError::DuplicateSsrc(config.ssrc));
        }
        let g = self.group(source)?;
        let codec = self.table.groups[g]
            .codec
            .expect("source groups have a codec");
        let track = Track {
            splicer: Splicer::new(
                config.ssrc,
                config.payload_type,
                config.first_seq,
                config.first_ts,
            ),
            dest: config.dest,
            id: config.id,
            source: Some(source),
            pending: None,
            codec,
            deferred: false,
            counters: TrackCounters::default(),
            reports: None,
            repair: None,
        };
        match self.replay_pace(g) {
            Some(pace) => {
                self.table.insert(track, DETACHED);
                self.start_replay(config.id, source, pace, None);
            }
            None => {
                self.table.insert(track, g);
            }
        }
        self.by_ssrc.insert(config.ssrc, config.id);
        Ok(())
    }

    /// Remove a track (cancelling its pending switch) and hand back its final counters.
    pub fn remove_track(&mut self, id: TrackId) -> Result<TrackCounters, ControlError> {
        let slot = self.slot(id)?;
        self.cancel_replay(id);
        if let Some(target) = self.table.tracks[slot].pending {
            self.take_pending(id, target);
        }
        let slot = self.slot(id)?;
        let g = self.table.group_at(slot);
        let track = self.table.remove(slot, g);
        self.by_ssrc.remove(&track.splicer.ssrc());
        if track.reports.as_ref().is_some_and(|r| r.sending) {
            self.sender_report_tracks -= 1;
        }
        if let Some(r) = &track.repair {
            self.repair_counters.add(r.counters());
        }
        self.links.retain(|l| l.lead != id && l.follower != id);
        Ok(track.counters)
    }

    /// A snapshot of track `id`; `None` if the shard has no such track.
    pub fn track(&self, id: TrackId) -> Option<TrackInfo> {
        self.table.slot_of(id).map(|slot| self.track_at(slot))
    }

    /// Every track, in slot order.
    pub fn tracks(&self) -> impl Iterator<Item = TrackInfo> + '_ {
        (0..self.table.tracks.len()).map(|slot| self.track_at(slot))
    }

    /// Every source with this shard's counters for it.
    pub fn sources(&self) -> impl Iterator<Item = (SourceId, &SourceCounters)> + '_ {
        self.table
            .groups
            .iter()
            .filter_map(|g| g.source.map(|s| (s, &g.counters)))
    }

    fn track_at(&self, slot: usize) -> TrackInfo {
        let t = &self.table.tracks[slot];
        let (source, pending, replaying) = match self.replay_of(t.id) {
            Some(r) if matches!(r.state, replay::ReplayState::Leaving) => {
                (t.source, Some(r.source), false)
            }
            Some(r) => (Some(r.source), None, true),
            None => (t.source, t.pending, false),
        };
        TrackInfo {
            id: t.id,
            dest: t.dest,
            ssrc: t.splicer.ssrc(),
            codec: t.codec,
            source,
            pending,
            replaying,
            live: self.is_live(slot),
            counters: t.counters,
            reception: t.reports.as_ref().and_then(|r| r.reception),
        }
    }

    /// Send track `id`'s copies to `dest` from the next packet on, and take its subscriber's
    /// RTCP from there only (a WebRTC viewer that ICE moved to a new address). Its splicer,
    /// SSRC, counters and pending switch stay as they are, so its stream goes on unbroken.
    /// Returns the address it had.
    pub fn set_destination(
        &mut self,
        id: TrackId,
        dest: SocketAddr,
    ) -> Result<SocketAddr, ControlError> {
        let slot = self.slot(id)?;
        Ok(std::mem::replace(&mut self.table.tracks[slot].dest, dest))
    }

    /// The I/O layer could not send `transmit`: move it from forwarded to dropped (a prelude is
    /// only uncounted: it was not the source's packet). Call before the next control operation.
    pub fn record_send_failure(&mut self, transmit: &Transmit, bytes: usize, reason: DropReason) {
        let Some(slot) = self.table.slot_of(transmit.track) else {
            return;
        };
        let g = self.table.group_at(slot);
        let t = &mut self.table.tracks[slot];
        if transmit.prelude {
            let c = &mut self.table.groups[g].counters;
            c.preludes = c.preludes.saturating_sub(1);
            return;
        }
        t.counters.packets = t.counters.packets.saturating_sub(1);
        t.counters.bytes = t.counters.bytes.saturating_sub(bytes as u64);
        t.counters.drops.add(reason, 1);
        let c = &mut self.table.groups[g].counters;
        c.forwarded = c.forwarded.saturating_sub(1);
        c.forwarded_bytes = c.forwarded_bytes.saturating_sub(bytes as u64);
        c.drops.add(reason, 1);
    }

    /// Start fanning `pkt` (whose bytes are `buf`) out to this shard's tracks on its source.
    /// Drive the returned [`FanOut`] until `fill` returns 0.
    pub fn fan_out<'s>(
        &'s mut self,
        pkt: &'s RxPacket,
        buf: &'s [u8],
        now: Nanos,
    ) -> FanOut<'s, H> {
        self.counters.packets += 1;
        let Some(g) = self.table.group_of(pkt.source) else {
            self.counters.drops.add(DropReason::UnknownSource, 1);
            return FanOut::done(self, pkt, buf, now);
        };
        if pkt.is_switch_point() && !self.table.groups[g].pending.is_empty() {
            self.apply_pending(g, now);
        }
        let group = &mut self.table.groups[g];
        group.begin_packet(pkt, now);
        let (pos, end) = match self.layout {
            Layout::Grouped => (group.start, group.end),
            Layout::Scan => (0, self.table.tracks.len() as u32),
        };
        FanOut {
            shard: self,
            pkt,
            shared: SharedRewrite::new(pkt, buf),
            now,
            group: g,
            pos,
            end,
        }
    }

    /// The track at `slot` sends its current source's current epoch.
    fn is_live(&self, slot: usize) -> bool {
        let t = &self.table.tracks[slot];
        let Some(source) = t.source else { return false };
        let g = &self.table.groups[self.table.group_of(source).expect("attached source exists")];
        match (t.splicer.anchored_to(), g.epoch) {
            (Some((s, e)), Some(epoch)) => s == source && e == epoch,
            _ => false,
        }
    }

    fn slot(&self, id: TrackId) -> Result<usize, ControlError> {
        self.table.slot_of(id).ok_or(ControlError::UnknownTrack(id))
    }

    fn group(&self, source: SourceId) -> Result<usize, ControlError> {
        self.table
            .group_of(source)
            .ok_or(ControlError::UnknownSource(source))
    }

    #[cfg(test)]
    pub(crate) fn check_layout(&self) {
        self.table.check();
    }
}

/// One packet's fan-out in progress. Each `fill` appends transmits to the caller's batch until
/// the batch is full or every track has been visited.
pub struct FanOut<'s, H = ()> {
    shard: &'s mut Shard<H>,
    pkt: &'s RxPacket,
    shared: SharedRewrite,
    now: Nanos,
    group: usize,
    pos: u32,
    end: u32,
}

impl<'s, H> FanOut<'s, H> {
    fn done(
        shard: &'s mut Shard<H>,
        pkt: &'s RxPacket,
        buf: &'s [u8],
        now: Nanos,
    ) -> FanOut<'s, H> {
        FanOut {
            shard,
            pkt,
            shared: SharedRewrite::new(pkt, buf),
            now,
            group: DETACHED,
            pos: 0,
            end: 0,
        }
    }

    /// Append this packet's transmits to `batch` until it is full or the fan-out is complete.
    /// Returns how many were appended: 0 only when the fan-out is complete.
    pub fn fill(&mut self, batch: &mut TransmitBatch) -> usize {
        if self.pkt.prelude.is_some() || self.pkt.payload.parameter_sets {
            return self.fill_with_parameter_sets(batch);
        }
        let before = batch.len();
        let (pkt, shared, now) = (self.pkt, self.shared, self.now);
        let source = Some(pkt.source);
        let switch_point = pkt.is_switch_point();
        let bytes = pkt.header.len as u64;
        let mut forwarded = 0u64;
        let mut drops = DropCounts::default();
        let tracks = &mut self.shard.table.tracks[..self.end as usize];
        let mut pos = self.pos as usize;
        while pos < tracks.len() && !batch.is_full() {
            let track = &mut tracks[pos];
            pos += 1;
            if track.source != source {
                continue;
            }
            match track.copy_into(batch, pkt, &shared, now, switch_point) {
                Ok(_) => {
                    // `prelude` is already false and `run_index` unread: see
                    // `TransmitBatch::clear` and `RunFanOut::indexed`.
                    batch.commit();
                    forwarded += 1;
                }
                Err(reason) => drops.add(reason, 1),
            }
        }
        self.pos = pos as u32;
        let counters = &mut self.shard.table.groups[self.group].counters;
        counters.forwarded += forwarded;
        counters.forwarded_bytes += forwarded * bytes;
        counters.drops.merge(&drops);
        batch.len() - before
    }

    /// `fill` for the rare packets that carry parameter sets or have a prelude (a keyframe sent
    /// without its sets). A track that starts at a prelude packet, or follows the stream but
    /// never got its sets (it started before they were known), sends the prelude first, so it
    /// needs two slots. Kept apart so the common loop stays as it is; this one runs at most
    /// once or twice per keyframe.
    #[cold]
    fn fill_with_parameter_sets(&mut self, batch: &mut TransmitBatch) -> usize {
        let before = batch.len();
        let (pkt, shared, now) = (self.pkt, self.shared, self.now);
        let bytes = pkt.header.len as u64;
        let tracks = &mut self.shard.table.tracks[..self.end as usize];
        let counters = &mut self.shard.table.groups[self.group].counters;
        while (self.pos as usize) < tracks.len() && !batch.is_full() {
            let track = &mut tracks[self.pos as usize];
            if track.source != Some(pkt.source) {
                self.pos += 1;
                continue;
            }
            let follows = track.splicer.follows(pkt);
            let prelude = pkt.prelude.is_some() && !(follows && track.splicer.has_sets());
            if prelude && batch.room() < 2 {
                break;
            }
            self.pos += 1;
            if prelude && follows {
                track.splicer.reanchor_for_prelude(pkt);
            }
            let mut head = batch.next_slot().head;
            if let Err(reason) = track.splicer.splice_shared(pkt, &shared, now, &mut head) {
                track.counters.drops.add(reason, 1);
                counters.drops.add(reason, 1);
                continue;
            }
            if pkt.payload.parameter_sets {
                track.splicer.sent_sets();
            }
            if let Some(r) = track.repair.as_deref_mut() {
                r.log.observe(&track.splicer, pkt, now);
            }
            if prelude {
                let slot = batch.next_slot();
                track.splicer.prelude_head(pkt, &mut slot.head);
                (slot.dest, slot.track) = (track.dest, track.id);
                batch.commit_prelude();
                // Counted per source only: a per-track field would grow every track, and the
                // fan-out's memory traffic with it, for a rare event.
                counters.preludes += 1;
            }
            let slot = batch.next_slot();
            (slot.head, slot.dest, slot.track) = (head, track.dest, track.id);
            batch.commit();
            track.counters.packets += 1;
            track.counters.bytes += bytes;
            counters.forwarded += 1;
            counters.forwarded_bytes += bytes;
        }
        batch.len() - before
    }

    /// Every track has been visited.
    pub fn is_done(&self) -> bool {
        self.pos >= self.end
    }
}

#[cfg(test)]
mod tests;

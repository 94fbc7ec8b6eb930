//! A shard driven by three sources' ingress (recorded streams the fuzzer bends, as in the
//! ingress target) with control commands interleaved: sources and tracks added and removed,
//! switches requested and cancelled, sends reported failed, time passing; and the node's loss
//! repair and instant join: the shard keeps histories sized by the input (every packet is
//! remembered after its fan-out, as the node does), tracks get repair on, subscribers NACK,
//! sources replay their GOP to the tracks that join them, and packets go out one by one or in
//! runs. After every packet, replayed copy and command:
//! - per (shard, source): `track_packets == forwarded + drops (per copy)`, and the shard's
//!   packets are its sources' (present and removed) plus those for unknown sources;
//! - per track: no output sequence number is sent twice, fan-out, replay and resend together;
//!   every copy (fanned out or replayed) carries the track's SSRC and payload type, goes to its
//!   subscriber, and is the packet with its header and codec prefix rewritten (a prelude: the
//!   prelude, just before its packet's copy, with its timestamp);
//! - a track that got a packet from the fan-out is on the packet's source, live and not
//!   replaying; a replayed copy goes to a track replaying the packet's source (a replaying track
//!   is parked off the fan-out: it is not live until its replay hands it back); a run's copies
//!   of one track are side by side and in order; a switch applied at a packet moved the track
//!   to that source, one applied as a replay started has the track replaying it; a switch
//!   request did what its outcome says; a track added on a replaying source replays;
//! - replays: `poll_replay` sends only when `replay_due` has come, and runs out; replay
//!   counters are monotonic but for failed sends, and count the copies polled;
//! - NACKs: each number named is counted `requested`, and `requested = resent + unknown +
//!   missing + too_often + over_budget + queue_full` (per track and per shard, monotonic);
//!   every resend counted is polled, goes to the NACKing track's subscriber, names a number the
//!   NACK named, the track sent and fewer than `RESOLVABLE_SPAN` behind its newest, and is byte
//!   for byte the copy first sent under it (the same source packet); a NACK from another
//!   address resends and counts nothing but `rtcp_wrong_sender`; histories hold at most their
//!   `max_packets`, and only for hosted sources;
//! - events: a switch timed out at its deadline left the track where it was, with nothing
//!   pending, and only once the deadline passed; a keyframe is wanted only from a source the
//!   shard hosts; subscribers' PLIs count as keyframe requests or as from a wrong sender;
//! - sender reports (with sources' clock mappings of their current or another epoch set at
//!   will): one per track that wants them, a well-formed SR with the track's SSRC, whose NTP
//!   time is the node's wall clock given or a source's mapping moved on to `now`.
#![no_main]

use std::collections::HashMap;
use std::net::SocketAddr;

use arbitrary::Arbitrary;
use corecast_engine::codec::parameter_sets::ParameterSets;
use corecast_engine::history::HistoryConfig;
use corecast_engine::rtcp::{self, NtpTime, SourceClock, PLI_LEN};
use corecast_engine::rtp::RtpHeader;
use corecast_engine::shard::{RepairConfig, RepairCounters, ReplayCounters};
use corecast_engine::{
    DropReason, DropScope, ExtSeq, JoinPolicy, Layout, Nanos, RtpTime, RxPacket, SeqNo, Shard,
    ShardEvent, SourceId, SourceIngress, Ssrc, SwitchOutcome, TrackConfig, TrackId, Transmit,
    TransmitBatch, MAX_RUN,
};
use corecast_fuzz::copies::{key_of, TrackCopies};
use corecast_fuzz::shard::{
    check_repair, check_replays, check_rewrite, check_run_order, drive, join, sender_reports,
    NackFrom, NackSeq,
};
use corecast_fuzz::{offer, Delivered, PacketSpec, Sender, StreamKind};
use libfuzzer_sys::fuzz_target;

#[path = "shard/nack.rs"]
mod nack;

const SOURCES: usize = 3;
const TRACKS: u8 = 8;
const PAYLOAD_TYPE: u8 = 102;
const SWITCH_TIMEOUT: Nanos = Nanos::from_millis(2_000);
/// Most fills of one fan-out: a track a batch (a prelude and its packet need room for two).
const ROUNDS: usize = 2 * TRACKS as usize + 1;

#[derive(Arbitrary, Debug)]
struct Input {
    kinds: [StreamKind; SOURCES],
    configured: [bool; SOURCES],
    scan: bool,
    batch: u8,
    /// The shard keeps histories: span in ms, and `max_packets` as `(1 + b % 32) << (b / 32)`
    /// (1 to 4,096; a few often, so they evict).
    history: Option<(u16, u8)>,
    /// Tracks added get repair on where their bit is set.
    repair: u8,
    /// Budget per mille, burst in 100-byte units, most resends of a packet, spacing in ms.
    repair_config: Option<(u16, u16, u8, u8)>,
    /// Per source: tracks that join it replay its history at pace `2 + p % 7`.
    joins: [Option<u8>; SOURCES],
    /// A step's packets are fanned out in runs (`Shard::fan_out_run`), not one by one.
    runs: bool,
    /// The replays due are sent after every packet (or run), as the node's turn does.
    replay_each_packet: bool,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
enum Step {
    /// The source's next packets, as recorded (1 to 16 of them).
    Next {
        source: u8,
        count: u8,
    },
    /// 1 to 256 packets of the source bent the same way.
    Packet {
        source: u8,
        spec: PacketSpec,
        repeat: u8,
    },
    AddSource(u8),
    RemoveSource(u8),
    AddTrack {
        track: u8,
        source: u8,
        first_seq: u16,
        first_ts: u32,
    },
    RemoveTrack(u8),
    Switch {
        track: u8,
        source: u8,
    },
    CancelSwitch(u8),
    /// The I/O layer could not send the last copies' transmit at this index.
    SendFailed {
        index: u8,
        full: bool,
    },
    /// A PLI naming the track's SSRC, from its subscriber's address or another.
    Pli {
        track: u8,
        from_subscriber: bool,
    },
    /// A generic NACK naming the track's SSRC and these numbers; its resends are sent.
    Nack {
        track: u8,
        from: NackFrom,
        numbers: Vec<NackSeq>,
    },
    Repair {
        track: u8,
        on: bool,
    },
    /// The source's join policy from now on: replay at pace `2 + p % 7`, or keyframe.
    Join {
        source: u8,
        pace: Option<u8>,
    },
    /// The source's sender report, as ingest hands it to the shard: of its current epoch, or
    /// of another (a stream that is gone), arriving `ago` ms before now.
    SourceClock {
        source: u8,
        ntp: u64,
        rtp: u32,
        current_epoch: bool,
        ago: u16,
    },
    /// The sender reports due now are written.
    SenderReports,
    /// The replays due now are sent.
    Replays,
    /// The shard's timers run (switch deadlines, keyframe intervals), then its replays.
    Timeout,
    /// Time passes, in milliseconds; then the replays due are sent.
    Wait(u16),
}

struct Source {
    id: SourceId,
    ingress: SourceIngress,
    sender: Sender,
}

/// Where events are drained: between packets, right after a fan-out of the source's packets,
/// or after a replay poll.
#[derive(Clone, Copy, Debug, PartialEq)]
enum At {
    Between,
    Packet(SourceId),
    Replay,
}

struct Harness {
    shard: Shard<Vec<u8>>,
    sources: Vec<Source>,
    batch: TransmitBatch,
    now: Nanos,
    /// What each track sent since it was added, by output number.
    copies: HashMap<TrackId, TrackCopies>,
    /// Packets counted by sources the shard no longer hosts.
    removed_packets: u64,
    /// The last copies sent (a fan-out's, replays'), their packet sizes and whether replayed,
    /// until the next command.
    last: Vec<(Transmit, usize, bool)>,
    /// The clock mapping last set per hosted source.
    clocks: HashMap<SourceId, SourceClock>,
    datagram: Vec<u8>,
    out: Vec<Delivered>,
    max_packets: Option<usize>,
    repair_mask: u8,
    joins: [JoinPolicy; SOURCES],
    runs: bool,
    replay_each_packet: bool,
    /// Repair counters last read: per track with repair on, and the shard's.
    repair: HashMap<TrackId, RepairCounters>,
    shard_repair: RepairCounters,
    replayed: ReplayCounters,
    /// Replayed copies (preludes not counted) polled less those reported failed, and bytes.
    replay_sent: (u64, u64),
    /// The repair config's spacing, and when each track last resent each output number (while
    /// its repair stays on): no number goes to a track twice within the spacing.
    spacing: Nanos,
    resent_at: HashMap<(TrackId, u16), Nanos>,
}

fuzz_target!(|input: Input| {
    let sources = (0..SOURCES)
        .map(|i| {
            let kind = input.kinds[i];
            let codec = kind.codec();
            let id = SourceId(i as u32 + 1);
            let mut ingress = SourceIngress::new(id, codec, codec.default_clock_rate());
            if let (true, Some(units)) = (input.configured[i], kind.sdp_parameter_sets()) {
                ingress.set_configured_parameter_sets(
                    ParameterSets::configured(codec, units).unwrap(),
                );
            }
            Source {
                id,
                ingress,
                sender: Sender::new(kind, 96),
            }
        })
        .collect();
    let history = input.history.map(|(span, b)| HistoryConfig {
        span: Nanos::from_millis(1 + u64::from(span) % 4_000),
        max_packets: (1 + usize::from(b % 32)) << (b / 32),
    });
    let mut h = Harness {
        shard: {
            let mut shard = Shard::with_handles(if input.scan {
                Layout::Scan
            } else {
                Layout::Grouped
            });
            shard.set_switch_timeout(SWITCH_TIMEOUT);
            shard.set_keyframe_interval(Nanos::from_millis(u64::from(input.batch % 4) * 100));
            shard.keep_history(history);
            if let Some((budget, burst, max_resends, spacing)) = input.repair_config {
                shard.set_repair_config(RepairConfig {
                    budget_permille: u64::from(budget),
                    burst_bytes: u64::from(burst) * 100,
                    max_resends: max_resends % 5,
                    spacing: Nanos::from_millis(u64::from(spacing)),
                });
            }
            shard
        },
        sources,
        batch: TransmitBatch::with_capacity(2 + usize::from(input.batch % 15)),
        now: Nanos::from_millis(1),
        copies: HashMap::new(),
        removed_packets: 0,
        last: Vec::new(),
        clocks: HashMap::new(),
        datagram: Vec::new(),
        out: Vec::new(),
        max_packets: history.map(|c| c.max_packets),
        repair_mask: input.repair,
        joins: input.joins.map(join),
        runs: input.runs,
        replay_each_packet: input.replay_each_packet,
        repair: HashMap::new(),
        shard_repair: RepairCounters::default(),
        replayed: ReplayCounters::default(),
        replay_sent: (0, 0),
        spacing: input
            .repair_config
            .map_or(RepairConfig::default().spacing, |(_, _, _, ms)| {
                Nanos::from_millis(u64::from(ms))
            }),
        resent_at: HashMap::new(),
    };
    for step in &input.steps {
        h.step(step);
        h.check_events(At::Between);
        h.check_counters();
        h.prune();
    }
});

fn source_id(i: u8) -> SourceId {
    SourceId(u32::from(i) % SOURCES as u32 + 1)
}

fn track_id(i: u8) -> TrackId {
    TrackId(u32::from(i % TRACKS))
}

impl Harness {
    fn step(&mut self, step: &Step) {
        if !matches!(step, Step::SendFailed { .. }) {
            self.last.clear();
        }
        match *step {
            Step::Next { source, count } => {
                let n = 1 + usize::from(count % 16);
                self.packets(source, &PacketSpec::NEXT, n);
            }
            Step::Packet {
                source,
                ref spec,
                repeat,
            } => self.packets(source, spec, 1 + usize::from(repeat)),
            Step::AddSource(s) => {
                let source = &self.sources[usize::from(s) % SOURCES];
                if self
                    .shard
                    .add_source(source.id, source.ingress.codec())
                    .is_ok()
                {
                    let policy = self.joins[usize::from(s) % SOURCES];
                    self.shard.set_join(source.id, policy).unwrap();
                }
            }
            Step::RemoveSource(s) => {
                if let Ok(counters) = self.shard.remove_source(source_id(s)) {
                    assert_eq!(
                        counters.track_packets,
                        counters.forwarded + counters.drops.total_of(DropScope::Copy)
                    );
                    self.removed_packets += counters.packets;
                    self.clocks.remove(&source_id(s));
                    assert_eq!(self.shard.tracks_on(source_id(s)), 0);
                    assert!(
                        self.shard
                            .tracks()
                            .all(|t| t.source != Some(source_id(s))
                                && t.pending != Some(source_id(s)))
                    );
                }
            }
            Step::AddTrack {
                track,
                source,
                first_seq,
                first_ts,
            } => {
                let id = track_id(track);
                let config = TrackConfig {
                    id,
                    dest: SocketAddr::from(([127, 0, 0, 1], 5000 + id.0 as u16)),
                    ssrc: Ssrc(0xabc0_0000 | id.0),
                    payload_type: PAYLOAD_TYPE,
                    first_seq: SeqNo(first_seq),
                    first_ts: RtpTime(first_ts),
                };
                let to = source_id(source);
                if self.shard.add_track(config, to).is_ok() {
                    self.copies.insert(id, TrackCopies::default());
                    let info = self.shard.track(id).unwrap();
                    let replays = self.max_packets.is_some()
                        && !info.codec.is_audio()
                        && self.joins[to.0 as usize - 1] != JoinPolicy::Keyframe;
                    assert_eq!((info.source, info.replaying), (Some(to), replays));
                    // Odd tracks get sender reports (as viewers' do); even ones do not.
                    if id.0 % 2 == 1 {
                        self.shard.set_sender_reports(id, true).unwrap();
                    }
                    if self.repair_mask >> id.0 & 1 == 1 {
                        self.set_repair(id, true);
                    }
                }
            }
            Step::RemoveTrack(t) => {
                if self.shard.remove_track(track_id(t)).is_ok() {
                    self.copies.remove(&track_id(t));
                    self.repair.remove(&track_id(t));
                    self.resent_at.retain(|(id, _), _| *id != track_id(t));
                }
            }
            Step::Switch { track, source } => {
                let (id, to) = (track_id(track), source_id(source));
                let Ok(outcome) = self.shard.switch(id, to, self.now) else {
                    return;
                };
                let info = self.shard.track(id).unwrap();
                match outcome {
                    SwitchOutcome::Pending => assert_eq!(info.pending, Some(to)),
                    SwitchOutcome::Moved | SwitchOutcome::Unchanged => {
                        assert_eq!((info.source, info.pending), (Some(to), None))
                    }
                }
            }
            Step::CancelSwitch(t) => {
                if self.shard.cancel_switch(track_id(t)).is_ok() {
                    assert_eq!(self.shard.track(track_id(t)).unwrap().pending, None);
                }
            }
            Step::SendFailed { index, full } => {
                if self.last.is_empty() {
                    return;
                }
                let i = usize::from(index) % self.last.len();
                let (transmit, bytes, replayed) = self.last.remove(i);
                let reason = if full {
                    DropReason::SendBufferFull
                } else {
                    DropReason::SendFailed
                };
                if !replayed {
                    self.shard.record_send_failure(&transmit, bytes, reason);
                } else {
                    self.shard.record_replay_failure(&transmit, bytes, reason);
                    if !transmit.prelude {
                        self.replay_sent.0 -= 1;
                        self.replay_sent.1 -= bytes as u64;
                    }
                }
            }
            Step::Pli {
                track,
                from_subscriber,
            } => {
                let Some(info) = self.shard.track(track_id(track)) else {
                    return;
                };
                let mut pli = [0u8; PLI_LEN];
                rtcp::write_pli(&mut pli, Ssrc(0xfeed), info.ssrc);
                let mut from = info.dest;
                if !from_subscriber {
                    from.set_port(from.port().wrapping_add(7));
                }
                let before = *self.shard.counters();
                self.shard.handle_rtcp(&pli, Some(from), self.now);
                let after = self.shard.counters();
                if !from_subscriber {
                    assert_eq!(after.rtcp_wrong_sender, before.rtcp_wrong_sender + 1);
                } else if info.source.is_some() {
                    assert_eq!(after.keyframe_requests, before.keyframe_requests + 1);
                }
            }
            Step::Nack {
                track,
                from,
                ref numbers,
            } => self.nack(track_id(track), from, numbers),
            Step::Repair { track, on } => self.set_repair(track_id(track), on),
            Step::Join { source, pace } => {
                let id = source_id(source);
                let hosted = self.shard.sources().any(|(s, _)| s == id);
                let policy = join(pace);
                assert_eq!(self.shard.set_join(id, policy).is_ok(), hosted);
                if hosted {
                    self.joins[id.0 as usize - 1] = policy;
                }
            }
            Step::SourceClock {
                source,
                ntp,
                rtp,
                current_epoch,
                ago,
            } => {
                let s = &self.sources[usize::from(source) % SOURCES];
                let epoch = s.ingress.epoch().unwrap_or(0);
                let clock = SourceClock {
                    ssrc: s.ingress.ssrc().unwrap_or(Ssrc(0)),
                    epoch: if current_epoch { epoch } else { epoch ^ 1 },
                    ntp: NtpTime(ntp),
                    rtp: RtpTime(rtp),
                    at: Nanos(self.now.0.saturating_sub(u64::from(ago) * 1_000_000)),
                    clock_rate: s.ingress.clock_rate(),
                };
                let hosted = self.shard.sources().any(|(id, _)| id == s.id);
                let r = self.shard.set_source_clock(s.id, Some(clock));
                assert_eq!(
                    r.is_ok(),
                    hosted,
                    "a mapping is taken for hosted sources only"
                );
                if hosted {
                    self.clocks.insert(s.id, clock);
                }
            }
            Step::SenderReports => sender_reports(&mut self.shard, self.now, &self.clocks),
            Step::Replays => self.replays(),
            Step::Timeout => {
                self.shard.handle_timeout(self.now);
                self.replays();
            }
            Step::Wait(ms) => {
                self.now = self.now.saturating_add(Nanos::from_millis(u64::from(ms)));
                self.replays();
            }
        }
    }

    /// Turn repair on or off for track `id`, if it exists: counters start at zero when on.
    fn set_repair(&mut self, id: TrackId, on: bool) {
        let was = self.shard.track_repair(id).is_some();
        if self.shard.set_repair(id, on).is_err() {
            return;
        }
        match (on, was) {
            (true, false) => {
                assert_eq!(self.shard.track_repair(id), Some(RepairCounters::default()));
                self.repair.insert(id, RepairCounters::default());
            }
            (true, true) => assert!(self.shard.track_repair(id).is_some()),
            (false, _) => {
                assert_eq!(self.shard.track_repair(id), None);
                self.repair.remove(&id);
                self.resent_at.retain(|(t, _), _| *t != id);
            }
        }
    }

    /// `n` datagrams of source `s`, through its ingress and then the shard: each packet
    /// delivered fanned out on its own, or the step's packets in runs.
    fn packets(&mut self, s: u8, spec: &PacketSpec, n: usize) {
        let mut run = Vec::new();
        for _ in 0..n {
            let source = &mut self.sources[usize::from(s) % SOURCES];
            source.sender.packet(spec, &mut self.datagram);
            let mut out = std::mem::take(&mut self.out);
            out.clear();
            offer(&mut source.ingress, &self.datagram, self.now, &mut out);
            if self.runs {
                run.append(&mut out);
            } else {
                for d in &out {
                    self.fan_out(std::slice::from_ref(d));
                }
            }
            self.out = out;
            self.now = self.now.saturating_add(Nanos::from_micros(500));
            if self.replay_each_packet && !self.runs {
                self.replays();
            }
        }
        if !run.is_empty() {
            self.fan_out(&run);
            if self.replay_each_packet {
                self.replays();
            }
        }
    }

    /// Fan `ds` out (in runs, or the one packet), check every copy, and remember each packet
    /// after its fan-out, as the node does.
    fn fan_out(&mut self, ds: &[Delivered]) {
        let pkts: Vec<RxPacket> = ds.iter().map(|d| d.pkt).collect();
        let bufs: Vec<&[u8]> = ds.iter().map(|d| &d.bytes[..]).collect();
        let most = MAX_RUN.min(self.batch.capacity());
        let mut at = 0;
        while at < ds.len() {
            // Events before these packets are checked on their own.
            self.check_events(At::Between);
            let end = ds.len().min(at + most);
            let batch = &mut self.batch;
            let (taken, indexed, sent) = if self.runs {
                let mut fan = self
                    .shard
                    .fan_out_run(&pkts[at..end], &bufs[at..end], self.now);
                let (taken, indexed) = (fan.len(), fan.indexed());
                assert!(taken >= 1 && at + taken <= end, "a run of {taken}");
                let index = |t: &Transmit| at + if indexed { usize::from(t.run_index) } else { 0 };
                (
                    taken,
                    indexed,
                    drive(|b| fan.fill(b), batch, index, ds, ROUNDS),
                )
            } else {
                let mut fan = self.shard.fan_out(&pkts[at], bufs[at], self.now);
                let sent = drive(|b| fan.fill(b), batch, |_| at, ds, ROUNDS);
                assert!(fan.is_done());
                (1, false, sent)
            };
            self.check_events(At::Packet(pkts[at].source));
            if indexed {
                check_run_order(&sent);
            }
            for (k, (t, i, bytes)) in sent.iter().enumerate() {
                let d = &ds[*i];
                let info = self
                    .shard
                    .track(t.track)
                    .expect("a transmit's track exists");
                assert_eq!(info.source, Some(d.pkt.source), "{t:?} sent off its source");
                assert!(!info.replaying, "{} replaying got a live packet", t.track);
                assert!(
                    t.prelude || info.live,
                    "{} sent a packet but is not live",
                    t.track
                );
                let next = sent.get(k + 1).filter(|n| n.1 == *i);
                self.check_copy(t, bytes, d, next.map(|(n, _, b)| (n, &b[..])), false);
            }
            for d in &ds[at..at + taken] {
                self.shard.remember(&d.pkt, d.bytes.clone());
            }
            at += taken;
        }
    }

    /// Check one copy of `d`'s packet (or its prelude, then `next` is its packet's copy),
    /// fanned out or replayed, and record it.
    fn check_copy(
        &mut self,
        t: &Transmit,
        bytes: &[u8],
        d: &Delivered,
        next: Option<(&Transmit, &[u8])>,
        replayed: bool,
    ) {
        let pkt = &d.pkt;
        let info = self.shard.track(t.track).expect("a copy's track exists");
        assert_eq!(t.dest, info.dest, "a copy goes to its track's subscriber");
        let h = RtpHeader::parse(bytes).expect("a copy parses as RTP");
        assert_eq!((h.ssrc, h.payload_type), (info.ssrc, PAYLOAD_TYPE));
        let copies = self.copies.get_mut(&t.track).unwrap();
        assert!(
            copies.record(h.seq.0, key_of(pkt), t.prelude, bytes),
            "{} sent sequence number {} twice",
            t.track,
            h.seq.0
        );
        check_rewrite(t, &h, bytes, d, next);
        self.last.push((*t, usize::from(pkt.header.len), replayed));
    }

    /// Send the replays due now, as the node does after a turn's fan-outs and RTCP, checking
    /// each copy.
    fn replays(&mut self) {
        // A fan-out's failed sends are reported before a replay can move its tracks.
        self.last.retain(|l| l.2);
        self.check_events(At::Between);
        for _ in 0..1 << 20 {
            let due = self.shard.replay_due().filter(|&at| at <= self.now);
            let Some(r) = self.shard.poll_replay(self.now) else {
                self.check_events(At::Replay);
                if due.is_some() {
                    continue;
                }
                return;
            };
            assert!(due.is_some(), "a replay sent before it was due");
            let d = Delivered {
                pkt: *r.pkt,
                bytes: r.handle.clone(),
            };
            let mut sent: Vec<(Transmit, Vec<u8>)> = r
                .prelude
                .iter()
                .map(|p| (*p, p.to_vec(r.pkt, r.handle)))
                .collect();
            sent.push((r.transmit, r.transmit.to_vec(r.pkt, r.handle)));
            self.check_events(At::Replay);
            for (k, (t, bytes)) in sent.iter().enumerate() {
                let info = self.shard.track(t.track).expect("a replay's track exists");
                assert!(
                    info.replaying && info.source == Some(d.pkt.source),
                    "{} replayed {} but is {info:?}",
                    t.track,
                    d.pkt.source
                );
                let next = sent.get(k + 1).map(|(n, b)| (n, &b[..]));
                self.check_copy(t, bytes, &d, next, true);
            }
            self.replay_sent.0 += 1;
            self.replay_sent.1 += u64::from(d.pkt.header.len);
        }
        panic!("poll_replay never runs out");
    }

    /// Drain the shard's events and check each: a switch applied (at a packet of its source,
    /// or as a replay of it starts) moved its track there; one timed out left it with nothing
    /// pending, at or after the deadline; keyframes are wanted only from hosted sources.
    fn check_events(&mut self, at: At) {
        let hosted: Vec<SourceId> = self.shard.sources().map(|(s, _)| s).collect();
        while let Some(event) = self.shard.poll_event() {
            match event {
                ShardEvent::SwitchApplied { track, to, .. } => {
                    let info = self.shard.track(track).expect("a switched track exists");
                    assert_eq!((info.source, info.pending), (Some(to), None));
                    match at {
                        At::Packet(source) => assert_eq!(to, source, "applied at its source"),
                        At::Replay => assert!(info.replaying, "applied as its replay starts"),
                        At::Between => panic!("{track}'s switch applied between packets"),
                    }
                }
                ShardEvent::SwitchDeferred { track, to } => {
                    assert_eq!(
                        At::Packet(to),
                        at,
                        "a switch is deferred at a packet of its source"
                    );
                    assert_eq!(self.shard.track(track).unwrap().pending, Some(to));
                }
                ShardEvent::SwitchTimedOut { track, to } => {
                    let info = self.shard.track(track).expect("a timed-out track exists");
                    assert_ne!(info.source, Some(to));
                    assert_eq!(info.pending, None);
                    assert!(
                        self.now >= SWITCH_TIMEOUT,
                        "not before a deadline could pass"
                    );
                }
                ShardEvent::KeyframeWanted { source } => {
                    assert!(hosted.contains(&source), "{source} is not hosted");
                }
            }
        }
    }

    fn check_counters(&mut self) {
        let mut packets = self.removed_packets;
        for (source, c) in self.shard.sources() {
            assert_eq!(
                c.track_packets,
                c.forwarded + c.drops.total_of(DropScope::Copy),
                "{source}: track_packets = forwarded + drops: {c:?}"
            );
            assert_eq!(c.drops.total(), c.drops.total_of(DropScope::Copy));
            packets += c.packets;
        }
        let shard = self.shard.counters();
        assert_eq!(
            shard.packets,
            packets + shard.drops.total_of(DropScope::Shard),
            "the shard's packets are its sources'"
        );
        for (id, last) in &mut self.repair {
            let c = self.shard.track_repair(*id).expect("repair stays on");
            check_repair(last, c, id);
        }
        let on = self.shard.tracks();
        assert_eq!(
            on.filter(|t| self.shard.track_repair(t.id).is_some())
                .count(),
            self.repair.len()
        );
        check_repair(
            &mut self.shard_repair,
            self.shard.repair_counters(),
            "the shard",
        );
        check_replays(
            &mut self.replayed,
            self.shard.replay_counters(),
            self.replay_sent,
        );
        for s in 1..=SOURCES as u32 {
            let held = self.shard.history(SourceId(s)).map(|h| h.len());
            assert!(held.is_none() || self.shard.source_counters(SourceId(s)).is_some());
            assert!(held <= self.max_packets, "{held:?} held");
        }
    }

    /// Let go of the bytes of copies whose packets no history holds any more.
    fn prune(&mut self) {
        let floor = SOURCES * self.max_packets.unwrap_or(0) + 256;
        let shard = &self.shard;
        for c in self.copies.values_mut() {
            c.prune(floor, |&(s, epoch, seq)| {
                shard
                    .history(s)
                    .is_some_and(|h| h.get(epoch, ExtSeq(seq)).is_some())
            });
        }
    }
}

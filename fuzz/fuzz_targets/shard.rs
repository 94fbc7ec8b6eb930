//! A shard driven by three sources' ingress (recorded streams the fuzzer bends, as in the
//! ingress target) with control commands interleaved: sources and tracks added and removed,
//! switches requested and cancelled, sends reported failed, time passing. After every packet and
//! command:
//! - per (shard, source): `track_packets == forwarded + drops (per copy)`, and the shard's
//!   packets are its sources' (present and removed) plus those for unknown sources;
//! - per track: no output sequence number is sent twice, every copy carries the track's SSRC
//!   and payload type and is the packet with its header rewritten (a prelude: the prelude);
//! - a track that got a packet is on the packet's source and live; a switch applied at a
//!   packet moved the track to that source; a switch request did what its outcome says;
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
use corecast_engine::rtcp::{self, NtpTime, RtcpPacket, SourceClock, PLI_LEN};
use corecast_engine::rtp::RtpHeader;
use corecast_engine::{
    DropReason, DropScope, Layout, Nanos, RtpTime, SeqNo, Shard, ShardEvent, SourceId,
    SourceIngress, Ssrc, SwitchOutcome, TrackConfig, TrackId, Transmit, TransmitBatch,
};
use corecast_fuzz::{offer, Delivered, PacketSpec, Sender, SeqLedger, StreamKind};
use libfuzzer_sys::fuzz_target;

const SOURCES: usize = 3;
const TRACKS: u8 = 8;
const PAYLOAD_TYPE: u8 = 102;
const SWITCH_TIMEOUT: Nanos = Nanos::from_millis(2_000);

#[derive(Arbitrary, Debug)]
struct Input {
    kinds: [StreamKind; SOURCES],
    configured: [bool; SOURCES],
    scan: bool,
    batch: u8,
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
    /// The I/O layer could not send the last fan-out's transmit at this index.
    SendFailed {
        index: u8,
        full: bool,
    },
    /// A PLI naming the track's SSRC, from its subscriber's address or another.
    Pli {
        track: u8,
        from_subscriber: bool,
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
    /// The shard's timers run (switch deadlines, keyframe intervals).
    Timeout,
    /// Time passes, in milliseconds.
    Wait(u16),
}

struct Source {
    id: SourceId,
    ingress: SourceIngress,
    sender: Sender,
}

struct Harness {
    shard: Shard,
    sources: Vec<Source>,
    batch: TransmitBatch,
    now: Nanos,
    /// Output sequence numbers sent per track, since the track was added.
    ledgers: HashMap<TrackId, SeqLedger>,
    /// Packets counted by sources the shard no longer hosts.
    removed_packets: u64,
    /// The last fan-out's transmits and packet sizes, until the next command.
    last: Vec<(Transmit, usize)>,
    /// The clock mapping last set per hosted source.
    clocks: HashMap<SourceId, SourceClock>,
    datagram: Vec<u8>,
    out: Vec<Delivered>,
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
    let mut h = Harness {
        shard: {
            let mut shard = Shard::new(if input.scan {
                Layout::Scan
            } else {
                Layout::Grouped
            });
            shard.set_switch_timeout(SWITCH_TIMEOUT);
            shard.set_keyframe_interval(Nanos::from_millis(u64::from(input.batch % 4) * 100));
            shard
        },
        sources,
        batch: TransmitBatch::with_capacity(2 + usize::from(input.batch % 15)),
        now: Nanos::from_millis(1),
        ledgers: HashMap::new(),
        removed_packets: 0,
        last: Vec::new(),
        clocks: HashMap::new(),
        datagram: Vec::new(),
        out: Vec::new(),
    };
    for step in &input.steps {
        h.step(step);
        h.check_events(None);
        h.check_counters();
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
                for _ in 0..1 + count % 16 {
                    self.packet(source, &PacketSpec::NEXT);
                }
            }
            Step::Packet {
                source,
                ref spec,
                repeat,
            } => {
                for _ in 0..=repeat {
                    self.packet(source, spec);
                }
            }
            Step::AddSource(s) => {
                let source = &self.sources[usize::from(s) % SOURCES];
                let _ = self.shard.add_source(source.id, source.ingress.codec());
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
                if self.shard.add_track(config, source_id(source)).is_ok() {
                    self.ledgers.insert(id, SeqLedger::default());
                    // Odd tracks get sender reports (as viewers' do); even ones do not.
                    if id.0 % 2 == 1 {
                        self.shard.set_sender_reports(id, true).unwrap();
                    }
                }
            }
            Step::RemoveTrack(t) => {
                if self.shard.remove_track(track_id(t)).is_ok() {
                    self.ledgers.remove(&track_id(t));
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
                let (transmit, bytes) = self.last.remove(usize::from(index) % self.last.len());
                let reason = if full {
                    DropReason::SendBufferFull
                } else {
                    DropReason::SendFailed
                };
                self.shard.record_send_failure(&transmit, bytes, reason);
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
            Step::SenderReports => self.sender_reports(),
            Step::Timeout => self.shard.handle_timeout(self.now),
            Step::Wait(ms) => {
                self.now = self.now.saturating_add(Nanos::from_millis(u64::from(ms)));
            }
        }
    }

    /// Write the sender reports due now and check each.
    fn sender_reports(&mut self) {
        let wall = NtpTime(0xe000_0000_0000_0000 | self.now.0);
        let due = self
            .shard
            .sender_reports_due()
            .is_some_and(|at| at <= self.now);
        let mut reports = Vec::new();
        self.shard
            .write_sender_reports(self.now, wall, |id, dest, bytes| {
                reports.push((id, dest, bytes.to_vec()));
            });
        assert!(due || reports.is_empty(), "reports only when due");
        let mut seen = Vec::new();
        for (id, dest, bytes) in reports {
            assert_eq!(id.0 % 2, 1, "{id} does not get sender reports");
            assert!(!seen.contains(&id), "{id} reported twice at once");
            seen.push(id);
            let info = self.shard.track(id).expect("a reported track exists");
            assert_eq!(dest, info.dest);
            let mut packets = rtcp::packets(&bytes);
            let Some(Ok(RtcpPacket::SenderReport { ssrc, ntp, .. })) = packets.next() else {
                panic!("not one sender report: {bytes:?}");
            };
            assert!(packets.next().is_none());
            assert_eq!(ssrc, info.ssrc);
            assert!(
                ntp == wall || self.clocks.values().any(|c| c.at(self.now).0 == ntp),
                "{id}'s report is on the node's clock or a source's"
            );
        }
    }

    /// One datagram of source `s`, through its ingress and then the shard.
    fn packet(&mut self, s: u8, spec: &PacketSpec) {
        let source = &mut self.sources[usize::from(s) % SOURCES];
        source.sender.packet(spec, &mut self.datagram);
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        offer(&mut source.ingress, &self.datagram, self.now, &mut out);
        for d in &out {
            self.fan_out(d);
        }
        self.out = out;
        self.now = self.now.saturating_add(Nanos::from_micros(500));
    }

    fn fan_out(&mut self, d: &Delivered) {
        let (pkt, buf) = (&d.pkt, &d.bytes[..]);
        // Events before this packet are checked on their own.
        self.check_events(None);
        let mut sent = Vec::new();
        let mut fan_out = self.shard.fan_out(pkt, buf, self.now);
        let mut fills = 0;
        while fan_out.fill(&mut self.batch) > 0 {
            fills += 1;
            assert!(
                fills <= 2 * usize::from(TRACKS) + 1,
                "the fan-out never ends"
            );
            for t in self.batch.as_slice() {
                sent.push((*t, t.to_vec(pkt, buf)));
            }
            self.batch.clear();
        }
        assert!(fan_out.is_done());

        self.check_events(Some(pkt.source));
        let packet = &buf[..usize::from(pkt.header.len)];
        for (t, bytes) in &sent {
            let info = self
                .shard
                .track(t.track)
                .expect("a transmit's track exists");
            assert_eq!(info.source, Some(pkt.source), "{t:?} sent off its source");
            let h = RtpHeader::parse(bytes).expect("a copy parses as RTP");
            assert_eq!((h.ssrc, h.payload_type), (info.ssrc, PAYLOAD_TYPE));
            let ledger = self.ledgers.get_mut(&t.track).unwrap();
            assert!(
                ledger.record(h.seq.0),
                "{} sent sequence number {} twice",
                t.track,
                h.seq.0
            );
            if t.prelude {
                let prelude = pkt
                    .prelude
                    .expect("a prelude transmit has a prelude")
                    .range();
                assert_eq!(h.payload(bytes), &buf[prelude]);
                let copy = packet_copy(&sent, t.track);
                assert_eq!(
                    h.timestamp, copy.timestamp,
                    "a prelude has its packet's time"
                );
                assert_eq!(
                    h.seq.0.wrapping_add(1),
                    copy.seq.0,
                    "a prelude comes just before"
                );
            } else {
                assert!(info.live, "{} sent a packet but is not live", t.track);
                assert_eq!(bytes.len(), packet.len());
                assert_eq!(
                    (h.marker, h.payload_len()),
                    (pkt.header.marker, pkt.header.payload_len())
                );
                let start = usize::from(pkt.header.payload_start);
                assert_eq!(bytes[12..start], packet[12..start], "CSRCs and extensions");
                assert_eq!(
                    bytes[start + pkt.rewrite_len()..],
                    packet[start + pkt.rewrite_len()..]
                );
            }
            self.last.push((*t, usize::from(pkt.header.len)));
        }
    }

    /// Drain the shard's events and check each: a switch applied (at a packet of `source`)
    /// moved its track there; one timed out left it with nothing pending, at or after the
    /// deadline; keyframes are wanted only from hosted sources.
    fn check_events(&mut self, source: Option<SourceId>) {
        let hosted: Vec<SourceId> = self.shard.sources().map(|(s, _)| s).collect();
        while let Some(event) = self.shard.poll_event() {
            match event {
                ShardEvent::SwitchApplied { track, to, .. } => {
                    assert_eq!(
                        Some(to),
                        source,
                        "a switch is applied at a packet of its source"
                    );
                    let info = self.shard.track(track).expect("a switched track exists");
                    assert_eq!((info.source, info.pending), (Some(to), None));
                }
                ShardEvent::SwitchDeferred { track, to } => {
                    assert_eq!(
                        Some(to),
                        source,
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

    fn check_counters(&self) {
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
    }
}

/// The header of `track`'s copy of the packet (not its prelude) among `sent`.
fn packet_copy(sent: &[(Transmit, Vec<u8>)], track: TrackId) -> RtpHeader {
    sent.iter()
        .find(|(t, _)| t.track == track && !t.prelude)
        .map(|(_, b)| RtpHeader::parse(b).unwrap())
        .expect("the prelude's packet was sent too")
}

//! The checks of one received RTP stream, sans I/O: a [`Checker`] is fed each datagram with the
//! time it arrived, queues what it noticed as [`Event`]s for a live display, and sums it all up
//! in a [`Report`].
//!
//! What a decoder at a subscriber's address relies on, and so what is checked:
//!
//! - **One SSRC**: a subscriber's output keeps one; any change is an error. The new SSRC's
//!   packets then start a new sequence, so one change counts once, not as loss.
//! - **Sequence numbers**, extended across the 16-bit wrap ([`SeqWindow`]): each jump ahead is a
//!   gap (with its time and size); a late packet that fills one is reordered; numbers seen twice
//!   are duplicates; numbers still missing at the end are lost.
//! - **Timestamps** never go back from one packet to the next higher-numbered one, compared
//!   modulo 2^32. A step forward more than [`JUMP`] beyond the time between arrivals is noted as
//!   a jump: corecast's splicer hides a source switch entirely, but a forwarder that keeps SSRC
//!   and sequence numbers and not timestamps shows one this way.
//! - **Payload type** constant.
//! - **Keyframes** (with the codec's inspection, [`codec::inspect`]): the first packet is a
//!   switch point (the first packet of a keyframe); every keyframe's time is kept.
//! - **H.264/H.265 parameter sets**: every IDR/IRAP slice comes after a complete set (SPS and
//!   PPS, and VPS) seen in-band or given up front, so a decoder could start at any keyframe. A
//!   set that changes (a switch to a source with other settings, usually) is noted.
//! - **Frame boundaries** between consecutive packets (video): a new timestamp follows a packet
//!   with the marker bit and starts a frame; a packet with the marker bit ends its timestamp.
//!
//! Nothing derived from the datagrams can panic.

use std::collections::VecDeque;

use corecast_engine::codec::parameter_sets::ParameterSets;
use corecast_engine::codec::{self, PayloadInfo};
use corecast_engine::rtp::RtpHeader;
use corecast_engine::{rtcp, Codec, Nanos};

use super::report::{seconds, Counts, Event, Keyframe, Report, ReportParts, What, MAX_KEPT};
use super::sequence::{extend_timestamp, Place, SeqWindow, TIMESTAMP_BASE};

/// Timestamp steps beyond the time between arrivals by more than this are noted as jumps.
pub const JUMP: Nanos = Nanos::from_millis(1000);
/// Events waiting for [`Checker::poll_event`]; the oldest go when nobody takes them.
const MAX_PENDING: usize = 4096;

/// The packet with the highest sequence number so far.
#[derive(Clone, Copy, Debug)]
struct Last {
    ts: u64,
    marker: bool,
    at: Nanos,
}

/// The frame (run of one timestamp) the newest packets belong to.
#[derive(Clone, Copy, Debug, Default)]
struct Frame {
    keyframe_seen: bool,
    missing_sets_noted: bool,
}

/// The checks of one stream, fed datagram by datagram.
#[derive(Debug)]
pub struct Checker {
    /// Given, or taken from the first packet's payload type.
    codec: Option<Codec>,
    /// H.264/H.265: the newest of each kind seen (or given).
    sets: Option<ParameterSets>,
    counts: Counts,
    ssrc: Option<u32>,
    payload_type: Option<u8>,
    seq: SeqWindow,
    /// Sequence numbers lost, and distinct ones received, in the streams of SSRCs before the
    /// current one.
    lost_before: u64,
    unique_before: u64,
    last: Option<Last>,
    frame: Frame,
    started_on_keyframe: Option<bool>,
    /// The first packet's sequence number and timestamp, while its access unit may still reach
    /// a keyframe (H.264/H.265: an AUD or SEI may come before the SPS).
    start: Option<(u16, u64)>,
    first_at: Option<Nanos>,
    last_at: Option<Nanos>,
    keyframes: Vec<Keyframe>,
    events: Vec<Event>,
    events_left_out: u64,
    pending: VecDeque<Event>,
}

impl Checker {
    /// A checker for a stream of `codec`; `None` takes it from the first packet's payload type
    /// as corecast assigns them ([`Codec::output_payload_type`]).
    pub fn new(codec: Option<Codec>) -> Checker {
        Checker {
            codec,
            sets: codec.and_then(ParameterSets::new),
            counts: Counts::default(),
            ssrc: None,
            payload_type: None,
            seq: SeqWindow::new(),
            lost_before: 0,
            unique_before: 0,
            last: None,
            frame: Frame::default(),
            started_on_keyframe: None,
            start: None,
            first_at: None,
            last_at: None,
            keyframes: Vec::new(),
            events: Vec::new(),
            events_left_out: 0,
            pending: VecDeque::new(),
        }
    }

    /// Parameter sets the sender gave out of band (in its SDP), known before any arrive.
    pub fn with_parameter_sets(mut self, sets: ParameterSets) -> Checker {
        self.sets = Some(sets);
        self
    }

    pub fn codec(&self) -> Option<Codec> {
        self.codec
    }

    /// The counts so far (`lost` as of now).
    pub fn counts(&self) -> Counts {
        Counts {
            lost: self.lost_before + self.seq.missing(),
            unique: self.unique_before + self.seq.unique(),
            ..self.counts
        }
    }

    /// The next event noticed and not yet taken, oldest first (keyframes included).
    pub fn poll_event(&mut self) -> Option<Event> {
        self.pending.pop_front()
    }

    fn note(&mut self, now: Nanos, what: What) {
        let event = Event {
            at_s: seconds(now),
            what,
        };
        if let What::Keyframe { seq, timestamp } = event.what {
            if self.keyframes.len() < MAX_KEPT {
                self.keyframes.push(Keyframe {
                    at_s: event.at_s,
                    seq,
                    timestamp,
                });
            }
        } else if self.events.len() < MAX_KEPT {
            self.events.push(event.clone());
        } else {
            self.events_left_out += 1;
        }
        if self.pending.len() == MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(event);
    }

    /// Check one datagram that arrived at `now`.
    pub fn feed(&mut self, datagram: &[u8], now: Nanos) {
        if rtcp::is_rtcp(datagram) {
            self.counts.rtcp_ignored += 1;
            return;
        }
        let Ok(h) = RtpHeader::parse(datagram) else {
            self.counts.not_rtp += 1;
            self.note(
                now,
                What::NotRtp {
                    len: datagram.len(),
                },
            );
            return;
        };
        let payload = h.payload(datagram);
        let seq = h.seq.0;
        self.counts.received += 1;
        self.first_at.get_or_insert(now);
        self.last_at = Some(now);
        self.check_ids(&h, now);
        let info = self.inspect(seq, payload, now);
        let skipped = match self.seq.place(seq) {
            Place::Duplicate => {
                self.counts.duplicates += 1;
                return self.note(now, What::Duplicate { seq });
            }
            Place::Reordered => {
                self.counts.reordered += 1;
                return self.note(now, What::Reordered { seq });
            }
            Place::Ahead { skipped } => skipped,
        };
        if skipped > 0 {
            self.counts.gaps += 1;
            let after = seq.wrapping_sub(skipped as u16).wrapping_sub(1);
            self.note(
                now,
                What::Gap {
                    after,
                    missing: skipped,
                },
            );
        }
        let ts = match self.last {
            None => TIMESTAMP_BASE + u64::from(h.timestamp.0),
            Some(last) => extend_timestamp(last.ts, h.timestamp.0),
        };
        if let Some(last) = self.last {
            self.check_timestamp(seq, ts, &last, now);
        }
        if self.started_on_keyframe.is_none() {
            self.check_start(seq, ts, info.as_ref(), now);
        }
        if let (Some(codec), Some(info)) = (self.codec, info) {
            if !codec.is_audio() {
                let consecutive = skipped == 0;
                self.check_frame(seq, h.timestamp.0, ts, &info, consecutive, now);
            }
        }
        self.last = Some(Last {
            ts,
            marker: h.marker,
            at: now,
        });
    }

    /// SSRC and payload type: the first packet's, for good.
    fn check_ids(&mut self, h: &RtpHeader, now: Nanos) {
        match self.ssrc {
            None => self.ssrc = Some(h.ssrc.0),
            Some(from) if from != h.ssrc.0 => {
                self.counts.ssrc_changes += 1;
                self.note(now, What::SsrcChange { from, to: h.ssrc.0 });
                // Another stream: its numbering is its own, so start counting afresh.
                self.ssrc = Some(h.ssrc.0);
                self.lost_before += self.seq.missing();
                self.unique_before += self.seq.unique();
                self.seq = SeqWindow::new();
                self.last = None;
                self.frame = Frame::default();
            }
            Some(_) => {}
        }
        match self.payload_type {
            None => {
                self.payload_type = Some(h.payload_type);
                if self.codec.is_none() {
                    self.codec = Codec::ALL
                        .into_iter()
                        .find(|&c| c.output_payload_type() == h.payload_type);
                    self.sets = self.codec.and_then(ParameterSets::new);
                }
            }
            Some(from) if from != h.payload_type => {
                self.counts.payload_type_changes += 1;
                self.note(
                    now,
                    What::PayloadTypeChange {
                        from,
                        to: h.payload_type,
                    },
                );
                self.payload_type = Some(h.payload_type);
            }
            Some(_) => {}
        }
    }

    /// The codec's view of the payload, and the parameter sets it carries.
    fn inspect(&mut self, seq: u16, payload: &[u8], now: Nanos) -> Option<PayloadInfo> {
        let codec = self.codec?;
        let info = match codec::inspect(codec, payload) {
            Ok(info) => info,
            Err(e) => {
                self.counts.malformed_payloads += 1;
                self.note(
                    now,
                    What::MalformedPayload {
                        seq,
                        error: format!("{e:?}"),
                    },
                );
                return None;
            }
        };
        if let Some(sets) = self.sets.as_mut().filter(|_| info.parameter_sets) {
            let before = sets.prelude().map(<[u8]>::to_vec);
            sets.observe(payload);
            if before.is_some_and(|b| sets.prelude() != Some(b.as_slice())) {
                self.counts.parameter_set_changes += 1;
                self.note(now, What::ParameterSetsChanged { seq });
            }
        }
        Some(info)
    }

    fn check_timestamp(&mut self, seq: u16, ts: u64, last: &Last, now: Nanos) {
        if ts < last.ts {
            self.counts.timestamp_regressions += 1;
            let by = last.ts - ts;
            return self.note(now, What::TimestampRegression { seq, by });
        }
        let Some(codec) = self.codec else {
            return;
        };
        let by = ts - last.ts;
        let media =
            Nanos((u128::from(by) * 1_000_000_000 / u128::from(codec.default_clock_rate())) as u64);
        let arrival = now.saturating_since(last.at);
        if media.saturating_since(arrival) > JUMP {
            self.counts.timestamp_jumps += 1;
            let arrival_ms = arrival.0 as f64 / 1e6;
            self.note(
                now,
                What::TimestampJump {
                    seq,
                    by,
                    arrival_ms,
                },
            );
        }
    }

    /// Whether a decoder could start at the stream's first packet: it is a switch point, or
    /// (H.264/H.265) whole units that can open an access unit (AUD, SEI) lead to one within the
    /// same timestamp.
    fn check_start(&mut self, seq: u16, ts: u64, info: Option<&PayloadInfo>, now: Nanos) {
        let Some(codec) = self.codec else {
            return;
        };
        let (first_seq, first_ts) = *self.start.get_or_insert((seq, ts));
        let same_unit = ts == first_ts;
        let decided = match info {
            Some(i) if same_unit && i.is_switch_point() => Some(true),
            Some(i) if same_unit && codec.parameter_sets_in_band() && i.frame_start => None,
            _ => Some(false),
        };
        self.started_on_keyframe = decided;
        if decided == Some(false) {
            self.note(now, What::NotStartedOnKeyframe { seq: first_seq });
        }
    }

    /// Frame boundaries against the packet before (when it is the one just before in the
    /// sequence), keyframes, and H.264/H.265 parameter sets before keyframe slices.
    fn check_frame(
        &mut self,
        seq: u16,
        wire_ts: u32,
        ts: u64,
        info: &PayloadInfo,
        consecutive: bool,
        now: Nanos,
    ) {
        let new_frame = self.last.is_none_or(|l| l.ts != ts);
        if new_frame {
            self.counts.frames += 1;
            self.frame = Frame::default();
        }
        if let Some(last) = self.last.filter(|_| consecutive) {
            if new_frame && !last.marker {
                self.counts.unterminated_frames += 1;
                self.note(now, What::UnterminatedFrame { seq });
            }
            if new_frame && !info.frame_start {
                self.counts.frames_without_start += 1;
                self.note(now, What::FrameWithoutStart { seq });
            }
            if !new_frame && last.marker {
                self.counts.packets_after_marker += 1;
                self.note(now, What::PacketAfterMarker { seq });
            }
        }
        if info.is_switch_point() && !self.frame.keyframe_seen {
            self.frame.keyframe_seen = true;
            self.counts.keyframes += 1;
            self.note(
                now,
                What::Keyframe {
                    seq,
                    timestamp: wire_ts,
                },
            );
        }
        // A packet with a keyframe and no parameter set holds a keyframe slice (an SPS alone
        // also counts as key, and its PPS may follow in the next packet).
        let slice = info.keyframe && !info.parameter_sets;
        let sets_missing = self.sets.as_ref().is_some_and(|s| s.prelude().is_none());
        if slice && sets_missing && !self.frame.missing_sets_noted {
            self.frame.missing_sets_noted = true;
            self.counts.keyframes_without_parameter_sets += 1;
            self.note(now, What::KeyframeWithoutParameterSets { seq });
        }
    }

    /// The result so far.
    pub fn report(&self) -> Report {
        Report::new(ReportParts {
            counts: self.counts(),
            codec: self.codec,
            ssrc: self.ssrc,
            payload_type: self.payload_type,
            // An access unit that never reached its keyframe before the end.
            started_on_keyframe: self.started_on_keyframe.or(self.start.map(|_| false)),
            first_at: self.first_at,
            last_at: self.last_at,
            keyframe_times: self.keyframes.clone(),
            events: self.events.clone(),
            events_left_out: self.events_left_out,
        })
    }
}

//! What `corecast check` reports: the [`Event`]s it prints as they happen, the [`Counts`] of
//! its live line, and the [`Report`] at the end (JSON, or a summary for people).

use std::fmt::Write as _;

use corecast_engine::{Codec, Nanos};
use serde::Serialize;

/// Events and keyframes kept for the report; further ones are counted only.
pub const MAX_KEPT: usize = 1000;

pub(crate) fn seconds(t: Nanos) -> f64 {
    t.0 as f64 / 1e9
}

/// What the checker noticed about one packet.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum What {
    /// A datagram that is neither RTP nor RTCP.
    NotRtp {
        len: usize,
    },
    SsrcChange {
        from: u32,
        to: u32,
    },
    PayloadTypeChange {
        from: u8,
        to: u8,
    },
    /// The payload is not one the codec's packetizers produce.
    MalformedPayload {
        seq: u16,
        error: String,
    },
    /// `missing` sequence numbers after `after` have not arrived (yet).
    Gap {
        after: u16,
        missing: u64,
    },
    Duplicate {
        seq: u16,
    },
    /// `seq` arrived after a higher one.
    Reordered {
        seq: u16,
    },
    /// `seq`'s timestamp is `by` ticks before the previous packet's.
    TimestampRegression {
        seq: u16,
        by: u64,
    },
    /// `seq`'s timestamp is `by` ticks after the previous packet's, `arrival_ms` later.
    TimestampJump {
        seq: u16,
        by: u64,
        arrival_ms: f64,
    },
    /// The stream's first packet is not the first of a keyframe.
    NotStartedOnKeyframe {
        seq: u16,
    },
    /// A keyframe starts at `seq`.
    Keyframe {
        seq: u16,
        timestamp: u32,
    },
    /// An H.264/H.265 keyframe slice at `seq` with no complete set of parameter sets before it.
    KeyframeWithoutParameterSets {
        seq: u16,
    },
    /// `seq` carries parameter sets other than the ones before.
    ParameterSetsChanged {
        seq: u16,
    },
    /// `seq` has a new timestamp but the packet before it had no marker bit.
    UnterminatedFrame {
        seq: u16,
    },
    /// `seq` has a new timestamp but does not start a frame.
    FrameWithoutStart {
        seq: u16,
    },
    /// `seq` has the timestamp of the packet before it, which had the marker bit.
    PacketAfterMarker {
        seq: u16,
    },
}

impl What {
    /// Kinds that are not errors: what a consistent stream shows too.
    pub fn is_info(&self) -> bool {
        matches!(
            self,
            What::Keyframe { .. } | What::ParameterSetsChanged { .. } | What::TimestampJump { .. }
        )
    }
}

impl std::fmt::Display for What {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            What::NotRtp { len } => write!(f, "a {len}-byte datagram that is not RTP"),
            What::SsrcChange { from, to } => {
                write!(f, "SSRC changed from {from:#010x} to {to:#010x}")
            }
            What::PayloadTypeChange { from, to } => {
                write!(f, "payload type changed from {from} to {to}")
            }
            What::MalformedPayload { seq, error } => write!(f, "seq {seq}: bad payload ({error})"),
            What::Gap { after, missing } => write!(
                f,
                "gap: {missing} packet(s) missing after seq {after} ({}..={})",
                after.wrapping_add(1),
                after.wrapping_add(*missing as u16)
            ),
            What::Duplicate { seq } => write!(f, "seq {seq} arrived twice"),
            What::Reordered { seq } => write!(f, "seq {seq} arrived after a higher one"),
            What::TimestampRegression { seq, by } => {
                write!(f, "seq {seq}: timestamp went back by {by} ticks")
            }
            What::TimestampJump {
                seq,
                by,
                arrival_ms,
            } => write!(
                f,
                "seq {seq}: timestamp jumped {by} ticks, {arrival_ms:.0} ms after the packet before"
            ),
            What::NotStartedOnKeyframe { seq } => {
                write!(f, "seq {seq}: the stream does not start on a keyframe")
            }
            What::Keyframe { seq, timestamp } => {
                write!(f, "keyframe at seq {seq} (ts {timestamp})")
            }
            What::KeyframeWithoutParameterSets { seq } => {
                write!(f, "seq {seq}: keyframe without parameter sets before it")
            }
            What::ParameterSetsChanged { seq } => write!(f, "seq {seq}: new parameter sets"),
            What::UnterminatedFrame { seq } => {
                write!(
                    f,
                    "seq {seq}: new frame, but the one before had no marker bit"
                )
            }
            What::FrameWithoutStart { seq } => {
                write!(
                    f,
                    "seq {seq}: new timestamp on a packet that does not start a frame"
                )
            }
            What::PacketAfterMarker { seq } => {
                write!(
                    f,
                    "seq {seq}: same timestamp as the marker packet before it"
                )
            }
        }
    }
}

/// One thing noticed, with when (seconds on the caller's clock).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    pub at_s: f64,
    #[serde(flatten)]
    pub what: What,
}

/// Where a keyframe started.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Keyframe {
    pub at_s: f64,
    pub seq: u16,
    pub timestamp: u32,
}

/// Everything counted. `Display`ed as one live line; every field is in the JSON report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// RTP packets received (duplicates included).
    pub received: u64,
    pub rtcp_ignored: u64,
    pub not_rtp: u64,
    /// Distinct sequence numbers received.
    pub unique: u64,
    /// Sequence numbers still missing between the lowest and highest received.
    pub lost: u64,
    /// Jumps ahead in the sequence.
    pub gaps: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub ssrc_changes: u64,
    pub payload_type_changes: u64,
    pub malformed_payloads: u64,
    pub timestamp_regressions: u64,
    pub timestamp_jumps: u64,
    /// Video frames (runs of one timestamp) begun.
    pub frames: u64,
    pub keyframes: u64,
    pub keyframes_without_parameter_sets: u64,
    pub parameter_set_changes: u64,
    pub unterminated_frames: u64,
    pub frames_without_start: u64,
    pub packets_after_marker: u64,
}

/// The result of a check.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// At least one packet arrived and nothing in `errors` happened.
    pub consistent: bool,
    /// Why the stream is not consistent, one line per kind of problem.
    pub errors: Vec<String>,
    /// What was not checked, and what was noticed but is no error.
    pub notes: Vec<String>,
    /// The codec checked against (given, or from corecast's payload type).
    pub codec: Option<&'static str>,
    pub ssrc: Option<u32>,
    pub payload_type: Option<u8>,
    /// `None` when no packet came or the codec is unknown.
    pub started_on_keyframe: Option<bool>,
    pub first_packet_at_s: Option<f64>,
    pub last_packet_at_s: Option<f64>,
    #[serde(flatten)]
    pub counts: Counts,
    /// Where keyframes started (the first [`MAX_KEPT`]).
    pub keyframe_times: Vec<Keyframe>,
    /// Problems and notable things, in order (the first [`MAX_KEPT`]; keyframes are in
    /// `keyframe_times`).
    pub events: Vec<Event>,
    pub events_left_out: u64,
}

/// What a [`Report`] is made from: the checker's state at the end.
pub struct ReportParts {
    pub counts: Counts,
    pub codec: Option<Codec>,
    pub ssrc: Option<u32>,
    pub payload_type: Option<u8>,
    pub started_on_keyframe: Option<bool>,
    pub first_at: Option<Nanos>,
    pub last_at: Option<Nanos>,
    pub keyframe_times: Vec<Keyframe>,
    pub events: Vec<Event>,
    pub events_left_out: u64,
}

impl Report {
    /// The verdict on what a checker saw: errors for every kind of problem counted.
    pub fn new(p: ReportParts) -> Report {
        let c = p.counts;
        let codec = p.codec.map(Codec::name);
        let mut errors = Vec::new();
        let mut problem = |n: u64, what: String| {
            if n > 0 {
                errors.push(what);
            }
        };
        problem(u64::from(c.received == 0), "no RTP packet arrived".into());
        problem(c.not_rtp, format!("{} datagram(s) were not RTP", c.not_rtp));
        problem(
            c.ssrc_changes,
            format!("the SSRC changed {} time(s)", c.ssrc_changes),
        );
        problem(
            c.payload_type_changes,
            format!(
                "the payload type changed {} time(s)",
                c.payload_type_changes
            ),
        );
        problem(
            c.malformed_payloads,
            format!(
                "{} payload(s) are not valid {}",
                c.malformed_payloads,
                codec.unwrap_or("media")
            ),
        );
        problem(
            c.lost,
            format!("{} packet(s) lost ({} gap(s) seen)", c.lost, c.gaps),
        );
        problem(
            c.duplicates,
            format!("{} duplicate packet(s)", c.duplicates),
        );
        problem(
            c.reordered,
            format!("{} packet(s) out of order", c.reordered),
        );
        problem(
            c.timestamp_regressions,
            format!(
                "the timestamp went back {} time(s)",
                c.timestamp_regressions
            ),
        );
        problem(
            u64::from(p.started_on_keyframe == Some(false)),
            "the stream does not start on a keyframe".into(),
        );
        problem(
            c.keyframes_without_parameter_sets,
            format!(
                "{} keyframe(s) without parameter sets before them",
                c.keyframes_without_parameter_sets
            ),
        );
        problem(
            c.unterminated_frames,
            format!(
                "{} frame(s) ended without a marker bit",
                c.unterminated_frames
            ),
        );
        problem(
            c.frames_without_start,
            format!(
                "{} frame(s) began on a packet that does not start one",
                c.frames_without_start
            ),
        );
        problem(
            c.packets_after_marker,
            format!(
                "{} packet(s) continued a frame after its marker bit",
                c.packets_after_marker
            ),
        );
        let mut notes = Vec::new();
        if p.codec.is_none() {
            notes.push(match p.payload_type {
                Some(pt) => format!(
                    "payload type {pt} is not one corecast sends and no --codec was given: \
                     keyframes, parameter sets and frames were not checked"
                ),
                None => "no --codec given and no packet to take it from".into(),
            });
        }
        if c.timestamp_jumps > 0 {
            notes.push(format!(
                "the timestamp jumped ahead {} time(s) (a source switch by a forwarder that \
                 does not splice, or the sender's own)",
                c.timestamp_jumps
            ));
        }
        if c.parameter_set_changes > 0 {
            notes.push(format!(
                "the parameter sets changed {} time(s) (a switch to a source with other settings)",
                c.parameter_set_changes
            ));
        }
        if c.rtcp_ignored > 0 {
            notes.push(format!("{} RTCP packet(s) ignored", c.rtcp_ignored));
        }
        Report {
            consistent: errors.is_empty(),
            errors,
            notes,
            codec,
            ssrc: p.ssrc,
            payload_type: p.payload_type,
            started_on_keyframe: p.started_on_keyframe,
            first_packet_at_s: p.first_at.map(seconds),
            last_packet_at_s: p.last_at.map(seconds),
            counts: p.counts,
            keyframe_times: p.keyframe_times,
            events: p.events,
            events_left_out: p.events_left_out,
        }
    }
}

impl Counts {
    /// Problems counted so far, of every kind (for the live line).
    pub fn problems(&self) -> u64 {
        self.not_rtp
            + self.ssrc_changes
            + self.payload_type_changes
            + self.malformed_payloads
            + self.lost
            + self.duplicates
            + self.reordered
            + self.timestamp_regressions
            + self.keyframes_without_parameter_sets
            + self.unterminated_frames
            + self.frames_without_start
            + self.packets_after_marker
    }
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report always serializes")
    }

    /// The report for people: the verdict, the stream, the counts, every error and note.
    pub fn summary(&self) -> String {
        let c = &self.counts;
        let mut s = String::new();
        let verdict = if self.consistent {
            "consistent"
        } else {
            "NOT consistent"
        };
        let _ = writeln!(s, "check: the stream is {verdict}");
        let _ = writeln!(
            s,
            "  codec {}, SSRC {}, payload type {}",
            self.codec.unwrap_or("unknown"),
            self.ssrc.map_or("-".into(), |v| format!("{v:#010x}")),
            self.payload_type.map_or("-".into(), |v| v.to_string()),
        );
        let _ = writeln!(
            s,
            "  {} packets ({} distinct, {} lost in {} gaps, {} duplicates, {} out of order), \
             {} frames, {} keyframes",
            c.received, c.unique, c.lost, c.gaps, c.duplicates, c.reordered, c.frames, c.keyframes
        );
        for e in &self.errors {
            let _ = writeln!(s, "  error: {e}");
        }
        for n in &self.notes {
            let _ = writeln!(s, "  note: {n}");
        }
        s
    }
}

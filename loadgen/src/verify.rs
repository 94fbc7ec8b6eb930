//! Per-subscriber verification of every packet received.
//!
//! A [`Verifier`] is fed each datagram one subscriber receives, in arrival order, and checks:
//!
//! - **SSRC**: the first packet fixes it; a packet with another counts in `ssrc_changes`.
//! - **Sequence numbers**, extended to 64 bits: a number seen before is a duplicate; one lower
//!   than the highest seen but new is reordered (it fills a gap); gaps that stay open are loss
//!   (see [`Verifier::finish`]). A 4096-packet window tells duplicates from late arrivals; a
//!   packet older than that counts as reordered and new.
//! - **Timestamps** never go backwards from one packet to the next higher-numbered one.
//! - **Switches**: the payload trailer names the source; when a packet that advances the
//!   sequence carries another source than the one before, that is a completed switch, and the
//!   packet must be a switch point (the first packet of a keyframe; every packet for audio), else
//!   it counts in `switches_not_on_keyframe`. The subscriber's very first packet must be one too
//!   (`joins_not_on_keyframe`).
//! - **Payload**: the RTP payload parses for the codec, and the trailer's magic and checksum
//!   match (over every byte but the VP8 picture ID and TL0PICIDX, which a forwarder rewrites),
//!   else `payload_mismatches`.
//!
//! A datagram that is not RTP or does not end in the load generator's trailer magic is not ours
//! (a stray sender aimed at the port, or a trailer damaged beyond recognition): it counts in
//! `foreign` and nowhere else, so a stray stream cannot pass for SSRC changes or loss. A packet
//! with the magic but a bad checksum still counts for sequence accounting (it arrived), but not
//! for switches or latency, since its source and send time cannot be trusted.

use std::ops::{AddAssign, Range};

use corecast_engine::codec::{self, PayloadInfo};
use corecast_engine::rtcp;
use corecast_engine::rtp::RtpHeader;
use corecast_engine::Codec;
use serde::Serialize;

use super::payload::{has_magic, open, Trailer};
pub use crate::check::sequence::WINDOW;
use crate::check::sequence::{extend_timestamp, Place, SeqWindow, TIMESTAMP_BASE};

/// What one subscriber (or, summed, all of them) received.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Load-generator packets received (see `foreign` and `rtcp_ignored` for the rest).
    pub received: u64,
    /// Distinct sequence numbers among them.
    pub unique: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub payload_mismatches: u64,
    pub ssrc_changes: u64,
    pub timestamp_regressions: u64,
    /// Changes of source seen in the stream.
    pub switches_completed: u64,
    pub switches_not_on_keyframe: u64,
    pub joins_not_on_keyframe: u64,
    pub rtcp_ignored: u64,
    /// Datagrams that are not the load generator's (not RTP, or no trailer magic).
    pub foreign: u64,
}

impl AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.received += o.received;
        self.unique += o.unique;
        self.duplicates += o.duplicates;
        self.reordered += o.reordered;
        self.payload_mismatches += o.payload_mismatches;
        self.ssrc_changes += o.ssrc_changes;
        self.timestamp_regressions += o.timestamp_regressions;
        self.switches_completed += o.switches_completed;
        self.switches_not_on_keyframe += o.switches_not_on_keyframe;
        self.joins_not_on_keyframe += o.joins_not_on_keyframe;
        self.rtcp_ignored += o.rtcp_ignored;
        self.foreign += o.foreign;
    }
}

/// One subscriber's result once sending has stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub counts: Counts,
    /// Packets this subscriber should have received (see [`Verifier::finish`]).
    pub expected: u64,
    pub lost: u64,
    /// Nothing verifiable arrived at all.
    pub silent: bool,
}

/// The checks of one subscriber's stream.
#[derive(Clone, Debug)]
pub struct Verifier {
    codec: Codec,
    sources: u32,
    counts: Counts,
    ssrc: Option<u32>,
    seq: SeqWindow,
    /// Extended timestamp of the highest-numbered packet.
    ts: u64,
    /// Source of the highest-numbered verified packet, and its tag.
    current: Option<(u32, u64)>,
    /// What the first foreign or mismatched datagram looked like, for the report.
    first_fault: Option<String>,
}

/// The payload bytes a forwarder may rewrite, by what the codec says is there.
pub fn rewritten_range(info: &PayloadInfo) -> Range<usize> {
    let starts = [
        info.picture_id.map(|p| p.offset as usize),
        info.tl0picidx.map(|t| t.offset as usize),
    ];
    match starts.into_iter().flatten().min() {
        Some(start) => start..info.rewrite_len(),
        None => 0..0,
    }
}

impl Verifier {
    /// A verifier for a stream of `codec` from load-generator sources `0..sources`.
    pub fn new(codec: Codec, sources: u32) -> Verifier {
        Verifier {
            codec,
            sources,
            counts: Counts::default(),
            ssrc: None,
            seq: SeqWindow::new(),
            ts: 0,
            current: None,
            first_fault: None,
        }
    }

    /// The first foreign or mismatched datagram, described (length, first and last bytes).
    pub fn first_fault(&self) -> Option<&str> {
        self.first_fault.as_deref()
    }

    fn note_fault(&mut self, what: &str, datagram: &[u8]) {
        if self.first_fault.is_none() {
            let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
            let head = &datagram[..datagram.len().min(24)];
            let tail = &datagram[datagram.len().saturating_sub(32)..];
            self.first_fault = Some(format!(
                "{what}: {} bytes, starting {}, ending {}",
                datagram.len(),
                hex(head),
                hex(tail)
            ));
        }
    }

    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Check one datagram received at `recv_ns` (the senders' clock). Returns the end-to-end
    /// latency in ns when the packet verified and was not a duplicate.
    pub fn feed(&mut self, datagram: &[u8], recv_ns: u64) -> Option<u64> {
        if rtcp::is_rtcp(datagram) {
            self.counts.rtcp_ignored += 1;
            return None;
        }
        let Some((h, payload)) = RtpHeader::parse(datagram)
            .ok()
            .map(|h| (h, h.payload(datagram)))
            .filter(|(_, payload)| has_magic(payload))
        else {
            self.counts.foreign += 1;
            self.note_fault("foreign datagram", datagram);
            return None;
        };
        self.counts.received += 1;
        let verified: Option<(PayloadInfo, Trailer)> =
            codec::inspect(self.codec, payload).ok().and_then(|info| {
                let t = open(payload, rewritten_range(&info)).ok()?;
                (t.source < self.sources).then_some((info, t))
            });
        if verified.is_none() {
            self.counts.payload_mismatches += 1;
            self.note_fault("payload mismatch", datagram);
        }
        match self.ssrc {
            None => self.ssrc = Some(h.ssrc.0),
            Some(s) if s != h.ssrc.0 => self.counts.ssrc_changes += 1,
            Some(_) => {}
        }
        let first = self.seq.span() == 0;
        match self.seq.place(h.seq.0) {
            Place::Duplicate => {
                self.counts.duplicates += 1;
                return None;
            }
            Place::Reordered => {
                self.counts.unique += 1;
                self.counts.reordered += 1;
            }
            Place::Ahead { .. } => {
                self.counts.unique += 1;
                let ts = if first {
                    TIMESTAMP_BASE + u64::from(h.timestamp.0)
                } else {
                    extend_timestamp(self.ts, h.timestamp.0)
                };
                if !first && ts < self.ts {
                    self.counts.timestamp_regressions += 1;
                }
                self.ts = ts;
                if let Some((info, t)) = verified {
                    match self.current {
                        None if !info.is_switch_point() => self.counts.joins_not_on_keyframe += 1,
                        Some((source, _)) if source != t.source => {
                            self.counts.switches_completed += 1;
                            if !info.is_switch_point() {
                                self.counts.switches_not_on_keyframe += 1;
                            }
                        }
                        _ => {}
                    }
                    self.current = Some((t.source, t.tag));
                }
            }
        }
        verified.map(|(_, t)| recv_ns.saturating_sub(t.send_ns))
    }

    /// Sequence numbers missing between the lowest and highest received so far.
    pub fn gaps(&self) -> u64 {
        self.seq.missing()
    }

    /// The result once every source has stopped sending and in-flight packets were drained.
    /// `sent[i]` is how many packets source `i` sent; `initial` is the source the subscriber was
    /// attached to first.
    ///
    /// `expected` is every sequence number from the lowest received to the highest (so gaps
    /// inside the stream, across switches too, are loss: a forwarder's output numbering is
    /// continuous), plus the packets the last source sent after the last one received from it
    /// (the tail). A subscriber that received nothing expected everything its first source sent.
    /// `lost` is `expected` minus the distinct sequence numbers received.
    pub fn finish(&self, sent: &[u64], initial: u32) -> Outcome {
        if self.seq.span() == 0 {
            let expected = sent.get(initial as usize).copied().unwrap_or(0);
            return Outcome {
                counts: self.counts,
                expected,
                lost: expected,
                silent: true,
            };
        }
        let tail = self.current.map_or(0, |(source, tag)| {
            sent.get(source as usize)
                .copied()
                .unwrap_or(0)
                .saturating_sub(tag + 1)
        });
        let expected = self.seq.span() + tail;
        Outcome {
            counts: self.counts,
            expected,
            lost: expected.saturating_sub(self.counts.unique),
            silent: self.current.is_none(),
        }
    }
}

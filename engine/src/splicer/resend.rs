//! From an output sequence number back to the source packet it carried, so that a track can
//! resend exactly what it sent (NACK, RFC 4585) with the same header and codec fields.
//!
//! Between anchors a track's output numbers are the source's plus a fixed offset (see the
//! splicer's module docs), so one [`Mapping`] per anchor is all it takes: a [`MappingLog`] keeps
//! the last [`LOGGED_MAPPINGS`] of a track, each with the output numbers it covers, and
//! [`MappingLog::resolve`] finds the mapping of a NACKed number and the source packet under it.
//! The log lives beside the track, off the fan-out's path: a splicer can re-anchor only at a
//! switch point, so the fan-out looks at the log only after splicing a switch point
//! ([`MappingLog::observe`]).
//!
//! What is never resolved: numbers the track has not reached yet, numbers
//! [`RESOLVABLE_SPAN`] or more behind its newest, numbers from before its oldest logged
//! mapping, and numbers of a mapping below its first source packet (those were stale when the
//! track anchored and were never sent). The one number an anchor reserves for
//! an H.264/H.265 prelude resolves to [`Resend::Prelude`].

use super::{Anchor, OutHead, SharedRewrite, Splicer};
use crate::source::RxPacket;
use crate::types::{ExtSeq, Nanos, SeqNo, SourceId};

/// How many of a track's mappings a log remembers: a switch and a source restart within the
/// history's span still resolve.
pub const LOGGED_MAPPINGS: usize = 4;

/// How far behind a track's newest output number a NACKed number may be and still resolve.
pub const RESOLVABLE_SPAN: u64 = 1 << 15;

/// One anchor of a track: how its output numbers relate to a source stream's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping(Anchor);

impl Mapping {
    /// The source whose packets it maps.
    pub fn source(&self) -> SourceId {
        self.0.source
    }

    /// The source's epoch (stream) it maps.
    pub fn epoch(&self) -> u32 {
        self.0.epoch
    }

    /// Output number of the source packet the track anchored at.
    fn first_out(&self) -> u64 {
        self.0.first_seq.wrapping_add(self.0.seq_offset)
    }
}

/// What a NACKed output number carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resend {
    /// The source packet `seq` of `mapping`'s stream: resend it with [`Splicer::resend_head`].
    Packet {
        /// How the track mapped it.
        mapping: Mapping,
        /// The source packet's extended sequence number.
        seq: ExtSeq,
        /// When the track left the mapping (`None`: it still follows it). A packet of the
        /// mapping's stream that arrived later (reordered behind the switch) was never sent:
        /// see [`Resend::was_sent`].
        until: Option<Nanos>,
    },
    /// The prelude (parameter sets) sent before the source packet `seq`, the keyframe the track
    /// anchored at.
    Prelude {
        /// How the track mapped the keyframe.
        mapping: Mapping,
        /// The keyframe's extended sequence number.
        seq: ExtSeq,
    },
}

impl Resend {
    /// The track sent `pkt` (the packet this names, found in the source's history) under its
    /// mapping: it arrived before the track left the mapping. A prelude was sent with its
    /// keyframe.
    pub fn was_sent(&self, pkt: &RxPacket) -> bool {
        match *self {
            // A packet of the same instant as the switch point may have come before it (and
            // been sent) or after it: taken as sent. Its number was the old mapping's either
            // way, so a resend can only fill the hole the subscriber reports.
            Resend::Packet { until, .. } => until.is_none_or(|t| pkt.received_at <= t),
            Resend::Prelude { .. } => true,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Logged {
    mapping: Mapping,
    /// When the next mapping replaced it.
    until: Option<Nanos>,
    /// First output number of the mapping: its prelude's when it reserved one.
    start: u64,
    prelude: bool,
}

/// A track's recent mappings, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MappingLog {
    logged: [Option<Logged>; LOGGED_MAPPINGS],
    len: usize,
}

impl MappingLog {
    /// An empty log.
    pub fn new() -> MappingLog {
        MappingLog::default()
    }

    /// Record `splicer`'s mapping if it changed, after it spliced `pkt` (a switch point: the
    /// only packets a splicer anchors at) at `now`. Forgets the oldest beyond
    /// [`LOGGED_MAPPINGS`].
    pub fn observe(&mut self, splicer: &Splicer, pkt: &RxPacket, now: Nanos) {
        let Some(anchor) = splicer.anchor else {
            return;
        };
        let mapping = Mapping(anchor);
        if self.newest().is_some_and(|l| l.mapping == mapping) {
            return;
        }
        // An anchor at a packet with a prelude reserved the number before it.
        let prelude = pkt.prelude.is_some() && anchor.first_seq == pkt.seq.0;
        let start = mapping.first_out() - u64::from(prelude);
        if let Some(previous) = self
            .len
            .checked_sub(1)
            .and_then(|i| self.logged[i].as_mut())
        {
            previous.until = Some(now);
        }
        if self.len == LOGGED_MAPPINGS {
            self.logged.rotate_left(1);
            self.len -= 1;
        }
        self.logged[self.len] = Some(Logged {
            mapping,
            until: None,
            start,
            prelude,
        });
        self.len += 1;
    }

    /// Record `splicer`'s current mapping, if any, as the newest (when repair is turned on for
    /// a track that is already sending), for the numbers the track sends from now on only:
    /// those it already sent under the mapping may have gone out otherwise than the mapping
    /// now writes them (a replay's compressed timestamps, before the mapping was retimed to
    /// live), and nothing kept says how.
    pub fn observe_current(&mut self, splicer: &Splicer) {
        if let Some(anchor) = splicer.anchor {
            let mapping = Mapping(anchor);
            let next = splicer.last_seq().map_or(0, |s| s.0 + 1);
            *self = MappingLog::default();
            self.logged[0] = Some(Logged {
                mapping,
                until: None,
                start: mapping.first_out().max(next),
                prelude: false,
            });
            self.len = 1;
        }
    }

    /// The splicer's current mapping replaces the newest logged one, whose numbers it shares:
    /// only its timestamps moved (after a replay, see `shard::replay`).
    pub(crate) fn retimed(&mut self, splicer: &Splicer) {
        let (Some(anchor), Some(i)) = (splicer.anchor, self.len.checked_sub(1)) else {
            return;
        };
        if let Some(l) = self.logged[i].as_mut() {
            if l.mapping.0.first_seq == anchor.first_seq
                && l.mapping.0.seq_offset == anchor.seq_offset
            {
                l.mapping = Mapping(anchor);
            }
        }
    }

    fn newest(&self) -> Option<&Logged> {
        self.len
            .checked_sub(1)
            .and_then(|i| self.logged[i].as_ref())
    }

    /// What the output number `wire` (as a NACK names it) carried on the track `splicer`
    /// splices. `None` when the track never sent that number or the log no longer knows it.
    pub fn resolve(&self, splicer: &Splicer, wire: SeqNo) -> Option<Resend> {
        let newest_sent = splicer.last_seq()?.0;
        let out = extend_before(newest_sent, wire);
        // A 16-bit number half the space or more behind the newest reads as ahead of it to a
        // receiver (RFC 3550's serial arithmetic), and an SRTP sender would seal it with the
        // next rollover counter (RFC 3711 §3.3.1): it is not a resend anyone can use.
        if newest_sent - out >= RESOLVABLE_SPAN {
            return None;
        }
        // Mappings are logged in output order: each covers up to where the next one starts.
        let at = (0..self.len)
            .rev()
            .find(|&i| self.logged[i].as_ref().is_some_and(|l| l.start <= out))?;
        let logged = self.logged[at]?;
        if logged.prelude && out == logged.start {
            return Some(Resend::Prelude {
                mapping: logged.mapping,
                seq: ExtSeq(logged.mapping.0.first_seq),
            });
        }
        let seq = out.wrapping_sub(logged.mapping.0.seq_offset);
        (seq >= logged.mapping.0.first_seq).then_some(Resend::Packet {
            mapping: logged.mapping,
            seq: ExtSeq(seq),
            until: logged.until,
        })
    }
}

/// The extended number whose low 16 bits are `wire`, at or below `newest` and nearest to it.
pub(crate) fn extend_before(newest: u64, wire: SeqNo) -> u64 {
    let candidate = (newest & !0xffff) | u64::from(wire.0);
    if candidate > newest {
        candidate.wrapping_sub(1 << 16)
    } else {
        candidate
    }
}

impl Splicer {
    /// The current mapping, once the splicer has anchored.
    pub fn mapping(&self) -> Option<Mapping> {
        self.anchor.map(Mapping)
    }

    /// Write the header and rewritten prefix `pkt` (whose bytes are `buf`) went out with under
    /// `mapping`, as [`Splicer::splice`] wrote them; changes nothing. `None` when `pkt` is not
    /// of `mapping`'s stream or precedes its anchor.
    pub fn resend_head(
        &self,
        mapping: &Mapping,
        pkt: &RxPacket,
        buf: &[u8],
        out: &mut OutHead,
    ) -> Option<ExtSeq> {
        let anchor = &mapping.0;
        if pkt.source != anchor.source || pkt.epoch != anchor.epoch || pkt.seq.0 < anchor.first_seq
        {
            return None;
        }
        let written = self.write_head(anchor, pkt, &SharedRewrite::new(pkt, buf), out);
        Some(ExtSeq(written.seq))
    }

    /// Write the header of the prelude sent before `pkt` under `mapping` (the number the anchor
    /// reserved before it); `None` unless `pkt` is the packet `mapping` anchored at and has a
    /// prelude.
    pub fn resend_prelude_head(
        &self,
        mapping: &Mapping,
        pkt: &RxPacket,
        out: &mut OutHead,
    ) -> Option<ExtSeq> {
        let anchor = &mapping.0;
        if pkt.source != anchor.source
            || pkt.epoch != anchor.epoch
            || pkt.seq.0 != anchor.first_seq
            || pkt.prelude.is_none()
        {
            return None;
        }
        let seq = mapping.first_out() - 1;
        let ts = pkt.timestamp.0.wrapping_add(anchor.ts_offset);
        out[0] = 0x80;
        out[1] = self.payload_type;
        out[2..4].copy_from_slice(&ExtSeq(seq).wire().0.to_be_bytes());
        out[4..8].copy_from_slice(&crate::types::ExtTime(ts).wire().0.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.0.to_be_bytes());
        Some(ExtSeq(seq))
    }
}

#[cfg(test)]
mod tests;

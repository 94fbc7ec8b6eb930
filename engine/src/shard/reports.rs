//! RTCP reports on a shard's tracks: what subscribers say they received (reception report
//! blocks, in their RR or SR), and the sender reports the shard writes for the tracks that want
//! them (WebRTC viewers: a browser maps RTP time to wall time with them, which it needs to play
//! a track's audio and video in sync, and echoes them so the round trip can be measured).
//!
//! A track's sender report pairs an NTP time with the track's own RTP timestamp for one
//! instant, `now`:
//! - When its source sent a sender report of the stream the track is anchored to
//!   ([`Shard::set_source_clock`]), the pair is the source's: its NTP time and RTP timestamp
//!   moved on to `now` ([`SourceClock::at`]), the RTP side mapped through the track's splicer
//!   offset (output ts = source ts + offset, as every packet's). A capture instant then has the
//!   same NTP time on the viewer's tracks as in the sender's reports, so audio and video play as
//!   the encoder captured them, whatever their arrival jitter. After a switch the track follows
//!   its new source's mapping (its new anchor's offset); a source that restarted (a new epoch)
//!   has no mapping until its new stream reports.
//! - Otherwise the track's last output timestamp, moved on by the time since its source's last
//!   packet, against the node's wall clock (the `ntp` given): both tracks of a viewer then sync
//!   by the arrival times of their sources' packets.
//!
//! A viewer whose audio source reports and whose video source does not gets pairs on two
//! clocks (the sender's and the node's), in sync only as far as those clocks agree.
//!
//! All of it is per track state off the packet path: it is kept in a box allocated when a track
//! first reports or is set to get sender reports, and read once per interval; a source's
//! mapping is one field of its group, set by a command and read once per interval.

use std::net::SocketAddr;

use super::table::Track;
use super::{ControlError, Shard};
use crate::rtcp::{NtpShort, NtpTime, ReportBlock, SourceClock};
use crate::types::{Nanos, TrackId};
use crate::types::{RtpTime, SourceId};

/// How often a track with sender reports on gets one (RFC 3550 allows 5 s; browsers' stats
/// and A/V sync settle faster with 1 s).
pub const SENDER_REPORT_INTERVAL: Nanos = Nanos(1_000_000_000);

/// Length of a sender report without report blocks (RFC 3550 §6.4.1).
pub const SENDER_REPORT_LEN: usize = 28;

/// What a track's subscriber last reported about receiving it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reception {
    /// Report blocks taken for the track.
    pub reports: u64,
    /// Loss since the report before, in 1/256.
    pub fraction_lost: u8,
    /// Packets lost since the subscriber's first (may be negative with duplicates).
    pub cumulative_lost: i32,
    /// Interarrival jitter, in the track's RTP clock units.
    pub jitter: u32,
    /// Round trip from the track's last sender report the subscriber echoed: `None` before one
    /// was echoed (tracks without sender reports never have one).
    pub rtt: Option<Nanos>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct TrackReports {
    /// Sender reports are written for this track.
    pub sending: bool,
    /// The compact NTP time of the last sender report and when it was written, to match the
    /// subscriber's LSR against.
    pub last_sr: Option<(NtpShort, Nanos)>,
    pub reception: Option<Reception>,
}

impl<H> Shard<H> {
    /// Write sender reports for `track` from now on (or stop). For subscribers that take RTCP
    /// on the media port (rtcp-mux), such as WebRTC viewers.
    pub fn set_sender_reports(&mut self, track: TrackId, on: bool) -> Result<(), ControlError> {
        let slot = self
            .table
            .slot_of(track)
            .ok_or(ControlError::UnknownTrack(track))?;
        let t = &mut self.table.tracks[slot];
        let was = t.reports.as_ref().is_some_and(|r| r.sending);
        t.reports.get_or_insert_with(Box::default).sending = on;
        match (was, on) {
            (false, true) => self.sender_report_tracks += 1,
            (true, false) => self.sender_report_tracks -= 1,
            _ => {}
        }
        if on && self.next_sender_reports.is_none() {
            self.next_sender_reports = Some(Nanos(0));
        }
        Ok(())
    }

    /// When [`Shard::write_sender_reports`] is next due; `None` while no track wants them.
    pub fn sender_reports_due(&self) -> Option<Nanos> {
        (self.sender_report_tracks > 0)
            .then_some(self.next_sender_reports)
            .flatten()
    }

    /// The latest sender report of `source`'s current stream, as a clock mapping (or `None`:
    /// forget it). Sender reports of the tracks anchored to that stream follow it from the next
    /// interval on.
    pub fn set_source_clock(
        &mut self,
        source: SourceId,
        clock: Option<SourceClock>,
    ) -> Result<(), ControlError> {
        let g = self.group(source)?;
        self.table.groups[g].clock = clock;
        Ok(())
    }

    /// Write the sender reports due at `now`: one for every track that wants them and has sent
    /// a packet, passed to `emit(track, dest, report)`. `ntp` is the node's wall clock at `now`,
    /// for tracks whose source has no clock mapping. The next are due
    /// [`SENDER_REPORT_INTERVAL`] later.
    pub fn write_sender_reports(
        &mut self,
        now: Nanos,
        ntp: NtpTime,
        mut emit: impl FnMut(TrackId, SocketAddr, &[u8]),
    ) {
        if self.sender_reports_due().is_none_or(|at| at > now) {
            return;
        }
        self.next_sender_reports = Some(now.saturating_add(SENDER_REPORT_INTERVAL));
        let mut out = [0u8; SENDER_REPORT_LEN];
        for slot in 0..self.table.tracks.len() {
            let t = &self.table.tracks[slot];
            if !t.reports.as_ref().is_some_and(|r| r.sending) {
                continue;
            }
            let Some((at_ntp, rtp_ts)) = self
                .source_mapping(t, now)
                .or_else(|| self.wall_clock_mapping(t, now, ntp))
            else {
                continue;
            };
            let packets = t.counters.packets;
            // Payload octets: each packet's received length less its 12-byte fixed header.
            let octets = t.counters.bytes.saturating_sub(12 * packets);
            crate::rtcp::write_sender_report(
                &mut out,
                t.splicer.ssrc(),
                at_ntp,
                rtp_ts.0,
                packets as u32,
                octets as u32,
            );
            let (id, dest) = (t.id, t.dest);
            if let Some(r) = self.table.tracks[slot].reports.as_mut() {
                r.last_sr = Some((at_ntp.compact(), now));
            }
            emit(id, dest, &out);
        }
    }

    /// The track's (NTP, output RTP) pair at `now` from its source's own sender report: only
    /// when the track has sent a packet and is anchored to the stream the report is of.
    fn source_mapping(&self, t: &Track, now: Nanos) -> Option<(NtpTime, RtpTime)> {
        t.splicer.last_timestamp()?;
        let (source, epoch) = t.splicer.anchored_to()?;
        let clock = self.table.groups[self.table.group_of(source)?].clock?;
        if clock.epoch != epoch {
            return None;
        }
        let (ntp, source_ts) = clock.at(now);
        Some((ntp, t.splicer.output_timestamp(source, epoch, source_ts)?))
    }

    /// The track's pair at `now` without a source report: its last output timestamp moved on
    /// by the time since its source's last packet, against the node's wall clock `ntp`.
    fn wall_clock_mapping(
        &self,
        t: &Track,
        now: Nanos,
        ntp: NtpTime,
    ) -> Option<(NtpTime, RtpTime)> {
        let (last_ts, source) = (t.splicer.last_timestamp()?, t.source?);
        let group = self.table.group_of(source)?;
        let since = now.saturating_since(self.table.groups[group].last_packet_at);
        let rate = u128::from(t.codec.default_clock_rate());
        let ticks = (u128::from(since.0) * rate / 1_000_000_000) as u64;
        Some((ntp, RtpTime(last_ts.0.wrapping_add(ticks) as u32)))
    }

    /// A reception report block from `from` about one of this shard's SSRCs.
    pub(super) fn reception_reported(
        &mut self,
        block: &ReportBlock,
        from: Option<SocketAddr>,
        now: Nanos,
    ) {
        let Some(slot) = self
            .by_ssrc
            .get(&block.ssrc)
            .and_then(|&id| self.table.slot_of(id))
        else {
            return;
        };
        let t = &mut self.table.tracks[slot];
        if !from.is_some_and(|from| super::is_subscribers_address(from, t.dest)) {
            self.counters.rtcp_wrong_sender += 1;
            return;
        }
        let r = t.reports.get_or_insert_with(Box::default);
        let mut reception = r.reception.unwrap_or_default();
        reception.reports += 1;
        reception.fraction_lost = block.fraction_lost;
        reception.cumulative_lost = block.cumulative_lost;
        reception.jitter = block.jitter;
        // RFC 3550 §6.4.1: the round trip is the time since the echoed SR, less the
        // subscriber's delay since it received it.
        if let Some((_, sent_at)) = r.last_sr.filter(|&(n, _)| n == block.lsr) {
            let rtt = now
                .saturating_since(sent_at)
                .0
                .saturating_sub(block.dlsr.to_nanos().0);
            reception.rtt = Some(Nanos(rtt));
        }
        r.reception = Some(reception);
    }
}

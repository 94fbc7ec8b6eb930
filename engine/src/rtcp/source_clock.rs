//! A source's own sender reports, read as a clock mapping: which instant on the sender's wall
//! clock (NTP) a timestamp on its RTP clock stands for. Every encoder writes them per stream, and
//! a player syncs audio to video with nothing else: two tracks whose RTP clocks start anywhere
//! play together when their reports map them to the same wall clock.
//!
//! Ingest takes the SR of the source's current stream out of each compound
//! ([`sender_report_of`]) and hands the mapping ([`SourceClock`]) to the shards; a shard
//! extrapolates it to the instant it writes a viewer's sender report ([`SourceClock::at`]).

use super::{packets, NtpTime, RtcpError, RtcpPacket};
use crate::types::{Nanos, RtpTime, Ssrc};

/// One sender report of a source's current stream: its NTP time and RTP timestamp for the same
/// instant, and when the report arrived by the node's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceClock {
    /// The stream (SSRC) the report is of.
    pub ssrc: Ssrc,
    /// The source's epoch (see `RxPacket::epoch`) when the report was taken: a track's
    /// timestamps follow the mapping only while it is anchored to this epoch, so the mapping of
    /// a sender that restarted (a new stream, a new RTP clock) is never applied to the next.
    pub epoch: u32,
    /// The sender's wall clock when it wrote the report.
    pub ntp: NtpTime,
    /// The same instant on the stream's RTP clock.
    pub rtp: RtpTime,
    /// When the report arrived (the node's monotonic clock, as the engine's `now`).
    pub at: Nanos,
    /// The stream's RTP clock rate, in Hz.
    pub clock_rate: u32,
}

impl SourceClock {
    /// The mapping moved on to `now`: the sender's NTP time and RTP timestamp both advanced by
    /// the time since the report arrived, so the pair stays on the sender's own line. (The NTP
    /// side is the sender's clock less the report's one-way delay; a player only compares the
    /// pairs, and tracks from one sender share that delay.) RTP wraps at 2^32 as on the wire;
    /// an NTP time past 2036 wraps too (RFC 5905 era 1).
    pub fn at(&self, now: Nanos) -> (NtpTime, RtpTime) {
        let elapsed = u128::from(now.saturating_since(self.at).0);
        let ntp = self
            .ntp
            .0
            .wrapping_add(((elapsed << 32) / 1_000_000_000) as u64);
        let ticks = elapsed * u128::from(self.clock_rate) / 1_000_000_000;
        // Only the low 32 bits matter: RTP time is modular.
        let rtp = self.rtp.0.wrapping_add(ticks as u32);
        (NtpTime(ntp), RtpTime(rtp))
    }
}

/// The sender report of `ssrc` in the compound `buf`, if it holds one: its NTP time and RTP
/// timestamp. A compound that fails validation anywhere is rejected as a whole (RFC 3550 A.2),
/// even past a good SR, since its framing can no longer be trusted; reports of other SSRCs (a
/// stream on probation, another sender on the port) are not taken. With several SRs of `ssrc`
/// the last wins.
pub fn sender_report_of(buf: &[u8], ssrc: Ssrc) -> Result<Option<(NtpTime, RtpTime)>, RtcpError> {
    let mut found = None;
    for packet in packets(buf) {
        if let RtcpPacket::SenderReport {
            ssrc: of,
            ntp,
            rtp_ts,
            ..
        } = packet?
        {
            if of == ssrc {
                found = Some((ntp, rtp_ts));
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtcp::{write_sender_report, PT_SDES};

    fn sr(ssrc: u32, ntp: u64, rtp: u32) -> Vec<u8> {
        let mut out = [0u8; 28];
        write_sender_report(&mut out, Ssrc(ssrc), NtpTime(ntp), rtp, 10, 1000);
        out.to_vec()
    }

    #[test]
    fn the_streams_report_is_taken_from_a_compound_and_others_are_not() {
        let mut compound = sr(7, 0x1234_0000_8000_0000, 4242);
        // An SDES with one empty chunk (SSRC and a terminating zero, padded to a word).
        compound.extend_from_slice(&[0x81, PT_SDES, 0, 2, 0, 0, 0, 7, 0, 0, 0, 0]);
        assert_eq!(
            sender_report_of(&compound, Ssrc(7)),
            Ok(Some((NtpTime(0x1234_0000_8000_0000), RtpTime(4242))))
        );
        assert_eq!(sender_report_of(&compound, Ssrc(8)), Ok(None));
        assert_eq!(sender_report_of(&[], Ssrc(7)), Ok(None));
    }

    #[test]
    fn a_compound_broken_after_a_good_report_is_rejected_whole() {
        let mut compound = sr(7, 1, 2);
        // A header claiming more bytes than follow.
        compound.extend_from_slice(&[0x81, PT_SDES, 0, 9]);
        assert!(matches!(
            sender_report_of(&compound, Ssrc(7)),
            Err(RtcpError::LengthOverrun { .. })
        ));
        // A report cut short.
        assert!(sender_report_of(&sr(7, 1, 2)[..20], Ssrc(7)).is_err());
    }

    #[test]
    fn the_mapping_moves_on_with_time_and_wraps_like_the_wire() {
        let clock = SourceClock {
            ssrc: Ssrc(7),
            epoch: 0,
            ntp: NtpTime(10 << 32),
            rtp: RtpTime(u32::MAX - 899),
            at: Nanos(5_000_000_000),
            clock_rate: 90_000,
        };
        assert_eq!(clock.at(clock.at), (clock.ntp, clock.rtp));
        // 250 ms later: a quarter second on the NTP clock, 22,500 ticks at 90 kHz, past the
        // 32-bit wrap.
        let (ntp, rtp) = clock.at(Nanos(5_250_000_000));
        assert_eq!(ntp, NtpTime((10 << 32) + (1 << 30)));
        assert_eq!(rtp, RtpTime(22_500 - 900));
        // Before the report arrived (never asked for, but not a panic): the report itself.
        assert_eq!(clock.at(Nanos::ZERO), (clock.ntp, clock.rtp));
    }
}

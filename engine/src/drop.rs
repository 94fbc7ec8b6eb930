//! Why a packet was not forwarded. Every packet that comes in is forwarded or counted under exactly
//! one of these reasons; per-packet problems are counts, never errors or panics.

use crate::rtp::RtpError;

/// The reason a packet (or one track's copy of it) was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Not valid RTP: too short, wrong version, lengths that do not add up, bad padding.
    Malformed,
    /// Valid RTP whose codec payload descriptor or header cannot be read.
    MalformedPayload,
    /// Arrived for a source this shard or node does not know.
    UnknownSource,
    /// The track waits for the first packet of a keyframe before it starts (new track, restarted
    /// source, or a switch from a track that had nothing to continue).
    WaitingKeyframe,
    /// A packet of the new source from before the switch point.
    StaleAfterSwitch,
    /// A packet of a source's previous SSRC after the source restarted with a new one.
    StaleAfterRestart,
    /// A sequence number already seen from this source.
    Duplicate,
    /// A sequence number too far behind the newest to be placed in order.
    TooOld,
    /// A queue between threads had no room (the node's rx queues).
    QueueFull,
    /// The kernel refused the send (EAGAIN/ENOBUFS on a full socket buffer).
    SendBufferFull,
    /// The kernel refused the send for another reason (e.g. unreachable destination).
    SendFailed,
    /// Sent by an address other than the one the source latched to.
    WrongSender,
}

impl DropReason {
    pub const COUNT: usize = 12;

    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::Malformed,
        DropReason::MalformedPayload,
        DropReason::UnknownSource,
        DropReason::WaitingKeyframe,
        DropReason::StaleAfterSwitch,
        DropReason::StaleAfterRestart,
        DropReason::Duplicate,
        DropReason::TooOld,
        DropReason::QueueFull,
        DropReason::SendBufferFull,
        DropReason::SendFailed,
        DropReason::WrongSender,
    ];

    /// Stable snake_case name, used as a metrics label.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::MalformedPayload => "malformed_payload",
            DropReason::UnknownSource => "unknown_source",
            DropReason::WaitingKeyframe => "waiting_keyframe",
            DropReason::StaleAfterSwitch => "stale_after_switch",
            DropReason::StaleAfterRestart => "stale_after_restart",
            DropReason::Duplicate => "duplicate",
            DropReason::TooOld => "too_old",
            DropReason::QueueFull => "queue_full",
            DropReason::SendBufferFull => "send_buffer_full",
            DropReason::SendFailed => "send_failed",
            DropReason::WrongSender => "wrong_sender",
        }
    }
}

impl From<RtpError> for DropReason {
    fn from(_: RtpError) -> DropReason {
        DropReason::Malformed
    }
}

/// Plain counters indexed by reason. Owned by one thread; aggregated elsewhere from snapshots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounts([u64; DropReason::COUNT]);

impl DropCounts {
    #[inline]
    pub fn add(&mut self, reason: DropReason, n: u64) {
        self.0[reason as usize] += n;
    }

    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason as usize]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    pub fn merge(&mut self, other: &DropCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += b;
        }
    }

    /// Non-zero counts, by reason.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .into_iter()
            .map(|r| (r, self.get(r)))
            .filter(|&(_, n)| n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_indexed_by_discriminant() {
        for (i, r) in DropReason::ALL.into_iter().enumerate() {
            assert_eq!(r as usize, i, "{r:?} is out of place in ALL");
        }
    }

    #[test]
    fn counts_add_and_merge() {
        let mut a = DropCounts::default();
        a.add(DropReason::Duplicate, 2);
        let mut b = DropCounts::default();
        b.add(DropReason::Duplicate, 1);
        b.add(DropReason::TooOld, 5);
        a.merge(&b);
        assert_eq!(a.get(DropReason::Duplicate), 3);
        assert_eq!(a.total(), 8);
        assert_eq!(a.iter().count(), 2);
    }
}

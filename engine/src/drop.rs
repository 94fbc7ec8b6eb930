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
    /// Another SSRC than the source's current stream, not (or not yet) taken as the sender's
    /// restart: a multiplexed stream (RTX, FEC), a stray or spoofed packet, or a new stream still
    /// in probation that was given up. See `SourceIngress`.
    OtherSsrc,
    /// A payload type other than the source's (configured, or learned from its first packet).
    OtherPayloadType,
    /// An RFC 4588 retransmission (the source's `rtx_payload_type`) that fills no gap: of a
    /// packet already here or never missed, or before any stream.
    Rtx,
}

/// What one count of a drop reason stands for, so that each conservation law adds like with like.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropScope {
    /// One received packet of a source, dropped before any shard saw it (counted at ingress).
    Packet,
    /// One accepted packet not delivered to one shard that wanted it (counted once per shard).
    Delivery,
    /// One packet arriving at a shard for a source it does not host (counted by the shard).
    Shard,
    /// One subscriber's copy of a packet (counted per track and per shard and source).
    Copy,
}

impl DropReason {
    /// How many reasons there are: the length of [`DropReason::ALL`] and of [`DropCounts`].
    pub const COUNT: usize = 15;

    /// Every reason, in declaration order (`reason as usize` indexes it).
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
        DropReason::OtherSsrc,
        DropReason::OtherPayloadType,
        DropReason::Rtx,
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
            DropReason::OtherSsrc => "other_ssrc",
            DropReason::OtherPayloadType => "other_payload_type",
            DropReason::Rtx => "rtx",
        }
    }

    /// What a count of this reason stands for (a packet, a delivery to a shard, or a copy).
    pub fn scope(self) -> DropScope {
        match self {
            DropReason::Malformed
            | DropReason::MalformedPayload
            | DropReason::StaleAfterRestart
            | DropReason::Duplicate
            | DropReason::TooOld
            | DropReason::WrongSender
            | DropReason::OtherSsrc
            | DropReason::OtherPayloadType
            | DropReason::Rtx => DropScope::Packet,
            DropReason::QueueFull => DropScope::Delivery,
            DropReason::UnknownSource => DropScope::Shard,
            DropReason::WaitingKeyframe
            | DropReason::StaleAfterSwitch
            | DropReason::SendBufferFull
            | DropReason::SendFailed => DropScope::Copy,
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
    /// Count `n` more drops for `reason`.
    pub fn add(&mut self, reason: DropReason, n: u64) {
        self.0[reason as usize] += n;
    }

    /// Drops counted for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason as usize]
    }

    /// Drops over all reasons, whatever their scope; [`DropCounts::total_of`] gives sums that add
    /// like with like.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The sum over the reasons of one scope.
    pub fn total_of(&self, scope: DropScope) -> u64 {
        DropReason::ALL
            .into_iter()
            .filter(|r| r.scope() == scope)
            .map(|r| self.get(r))
            .sum()
    }

    /// Add `other`'s counts, reason by reason (aggregating snapshots).
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

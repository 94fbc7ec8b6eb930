//! Switches asked for together: a viewer's video (the lead) and audio (the follower) moved to a
//! new channel's sources at one moment. The follower's pending switch is held back
//! (`Shard::apply_pending` skips it) until the lead's is applied at its keyframe; then it is
//! applied at the follower's new source's next switch point (every audio packet is one).

use super::{ControlError, Shard, SwitchOutcome};
use crate::types::{Nanos, SourceId, TrackId};

/// A follower track's switch gated on its lead's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SwitchLink {
    pub lead: TrackId,
    pub follower: TrackId,
    /// The lead's switch is not applied yet.
    pub gated: bool,
}

impl<H> Shard<H> {
    /// Switch two tracks at one moment: `lead` to `lead_to` at that source's next switch point
    /// (its keyframe), and `follower` to `follower_to` at the first switch point of that source
    /// after the lead's switch is applied. For a viewer's video (lead) and audio (follower), so
    /// the audio of the new channel starts with its picture, not up to a GOP before it. Both are
    /// checked before either is changed; each is then reported as if switched alone, and each
    /// keeps its own deadline (if the lead's passes, the follower's, set at the same time,
    /// passes with it).
    pub fn switch_together(
        &mut self,
        (lead, lead_to): (TrackId, SourceId),
        (follower, follower_to): (TrackId, SourceId),
        now: Nanos,
    ) -> Result<(SwitchOutcome, SwitchOutcome), ControlError> {
        self.check_switch(lead, lead_to)?;
        self.check_switch(follower, follower_to)?;
        let a = self.switch(lead, lead_to, now)?;
        let b = self.switch(follower, follower_to, now)?;
        if a == SwitchOutcome::Pending && b == SwitchOutcome::Pending {
            self.links.push(SwitchLink {
                lead,
                follower,
                gated: true,
            });
        }
        Ok((a, b))
    }

    /// Whether `switch(id, to, ..)` would be refused, without changing anything.
    fn check_switch(&self, id: TrackId, to: SourceId) -> Result<(), ControlError> {
        let slot = self.slot(id)?;
        let target = self.group(to)?;
        let codec = self.table.groups[target]
            .codec
            .expect("source groups have a codec");
        if self.table.tracks[slot].codec != codec {
            return Err(ControlError::CodecMismatch {
                track: self.table.tracks[slot].codec,
                source: codec,
            });
        }
        Ok(())
    }
}

//! The `shard` target's NACKs: one sent for a track, its resends drained and checked against
//! what the track first sent (kept apart so the target's file stays readable).

use corecast_engine::rtcp::{self, RtcpPacket, NACK_MAX_LEN};
use corecast_engine::shard::RESEND_QUEUE;
use corecast_engine::{SeqNo, Ssrc, TrackId};
use corecast_fuzz::copies::key_of;
use corecast_fuzz::shard::{check_resend, NackFrom, NackSeq};

use super::Harness;

impl Harness {
    /// A NACK for track `id` naming `numbers`, from `from`; its resends drained and checked.
    pub(super) fn nack(&mut self, id: TrackId, from: NackFrom, numbers: &[NackSeq]) {
        let Some(info) = self.shard.track(id) else {
            return;
        };
        let newest = self.copies[&id].newest().unwrap_or(0);
        let mut nack = [0u8; NACK_MAX_LEN];
        let wires = numbers.iter().map(|n| SeqNo(n.wire(newest)));
        let Some(len) = rtcp::write_nack(&mut nack, Ssrc(0xfeed), info.ssrc, wires) else {
            return;
        };
        let nack = &nack[..len];
        let named: Vec<u16> = match rtcp::packets(nack).next() {
            Some(Ok(RtcpPacket::Nack { pairs, .. })) => pairs.lost().map(|s| s.0).collect(),
            other => panic!("write_nack wrote {other:?}"),
        };
        let (subscriber, addr) = from.address(info.dest);
        let before = (*self.shard.counters(), self.shard.track_repair(id));
        self.shard.handle_rtcp(nack, addr, self.now);
        let mut resends = Vec::new();
        while let Some(r) = self.shard.poll_resend() {
            assert!(
                resends.len() < RESEND_QUEUE,
                "more resends than the queue holds"
            );
            let bytes = r.transmit.to_vec(r.pkt, r.handle);
            resends.push((r.transmit, key_of(r.pkt), bytes));
        }
        let after = (*self.shard.counters(), self.shard.track_repair(id));
        if !subscriber {
            assert_eq!(
                after.0.rtcp_wrong_sender,
                before.0.rtcp_wrong_sender + 1,
                "a NACK from {addr:?} is from a wrong sender"
            );
            assert!(resends.is_empty(), "a NACK from {addr:?} resent");
            assert_eq!(after.1, before.1, "a wrong sender's NACK counts nothing");
            return;
        }
        assert_eq!(after.0.rtcp_wrong_sender, before.0.rtcp_wrong_sender);
        let (Some(b), Some(a)) = (before.1, after.1) else {
            assert!(
                resends.is_empty() && after.1.is_none(),
                "{id} without repair"
            );
            return;
        };
        assert_eq!(
            a.requested - b.requested,
            named.len() as u64,
            "each number counted"
        );
        assert_eq!(
            a.resent - b.resent,
            resends.len() as u64,
            "each resend is polled"
        );
        for (t, key, bytes) in &resends {
            assert_eq!(
                (t.track, t.dest),
                (id, info.dest),
                "resent to its subscriber"
            );
            check_resend(&self.copies[&id], &named, t, key, bytes);
            let seq = u16::from_be_bytes([bytes[2], bytes[3]]);
            if let Some(last) = self.resent_at.insert((id, seq), self.now) {
                assert!(
                    self.now.saturating_since(last) >= self.spacing,
                    "{id} resent {seq} again {:?} after, within the spacing {:?}",
                    self.now.saturating_since(last),
                    self.spacing
                );
            }
        }
    }
}

//! Node-wide and per-shard totals that never go backwards.
//!
//! Ingest and the shards report counters of the sources (and shard groups) that exist now; a
//! deleted source leaves their snapshots. Summing only what is live would make node-wide totals
//! fall at every deletion, so the telemetry thread keeps the last counters it saw of every
//! deleted source in `removed` totals and adds them in. (A deleted subscriber's copies stay
//! counted in its shard's per-source counters, which is where every total here comes from.)
//!
//! Two conservation laws hold for these totals, each over counts of one kind
//! ([`DropScope`]):
//! - ingest: `received = accepted + Packet-scope drops + held`;
//! - each shard: `copies due = copies sent + Copy-scope drops`.

use corecast_engine::{DropCounts, DropReason, DropScope, SourceCounters};

use crate::ingest::IngestSourceStats;

/// What ingest counted of one source, or of many summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngestTotals {
    /// RTP datagrams that arrived at the ingest port (RTCP is not counted): every one is
    /// accepted, dropped with a Packet-scope reason, or held.
    pub received: u64,
    pub bytes: u64,
    /// Handed on to the shards that want the source.
    pub accepted: u64,
    /// Held right now while another stream is in probation (a gauge).
    pub held: u64,
    /// Every drop ingest counted: Packet scope (the packet went nowhere) and Delivery scope (one
    /// shard missed an accepted packet).
    pub drops: DropCounts,
}

impl IngestTotals {
    pub fn of(stats: &IngestSourceStats) -> IngestTotals {
        let i = &stats.ingress;
        let mut drops = i.drops;
        drops.merge(&stats.drops);
        IngestTotals {
            // Datagrams the node dropped before the engine (truncated) never reached `accept`,
            // which counts `packets`; nor does it count those from another sender than the
            // latched one (`wrong_sender`), which are not the source's.
            received: i.packets
                + i.drops.get(DropReason::WrongSender)
                + stats.drops.total_of(DropScope::Packet),
            bytes: i.bytes,
            accepted: i.accepted,
            held: i.held,
            drops,
        }
    }

    /// The totals of a source that was deleted: what it held in probation is lost, counted as
    /// when a probation is given up (`other_ssrc`), so the ingest law still adds up.
    pub fn deleted(mut self) -> IngestTotals {
        self.drops.add(DropReason::OtherSsrc, self.held);
        self.held = 0;
        self
    }

    pub fn add(&mut self, other: &IngestTotals) {
        self.received += other.received;
        self.bytes += other.bytes;
        self.accepted += other.accepted;
        self.held += other.held;
        self.drops.merge(&other.drops);
    }

    pub fn packet_drops(&self) -> DropCounts {
        of_scope(&self.drops, DropScope::Packet)
    }

    pub fn delivery_drops(&self) -> DropCounts {
        of_scope(&self.drops, DropScope::Delivery)
    }
}

/// Adds one shard group's counters into a sum.
pub fn add_source_counters(sum: &mut SourceCounters, c: &SourceCounters) {
    sum.packets += c.packets;
    sum.track_packets += c.track_packets;
    sum.forwarded += c.forwarded;
    sum.forwarded_bytes += c.forwarded_bytes;
    sum.drops.merge(&c.drops);
    sum.preludes += c.preludes;
}

/// The counts of `drops` whose reason has scope `scope`.
pub fn of_scope(drops: &DropCounts, scope: DropScope) -> DropCounts {
    let mut out = DropCounts::default();
    for (reason, n) in drops.iter().filter(|(r, _)| r.scope() == scope) {
        out.add(reason, n);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use corecast_engine::IngressCounters;

    #[test]
    fn node_drops_count_as_received_and_a_deleted_source_loses_what_it_held() {
        let mut ingress = IngressCounters {
            packets: 10,
            accepted: 6,
            held: 2,
            ..Default::default()
        };
        ingress.drops.add(DropReason::Duplicate, 2);
        let mut node = DropCounts::default();
        node.add(DropReason::WrongSender, 3);
        node.add(DropReason::QueueFull, 4);
        let stats = IngestSourceStats {
            ingress,
            drops: node,
            ..Default::default()
        };
        let t = IngestTotals::of(&stats);
        assert_eq!(t.received, 13);
        let law = |t: &IngestTotals| t.accepted + t.packet_drops().total() + t.held;
        assert_eq!(law(&t), t.received);
        assert_eq!(t.delivery_drops().get(DropReason::QueueFull), 4);
        let gone = t.deleted();
        assert_eq!((gone.held, gone.drops.get(DropReason::OtherSsrc)), (0, 2));
        assert_eq!(law(&gone), gone.received);
    }
}

//! What the `shard` target keeps of the copies each track sent: every output sequence number
//! once (a [`SeqLedger`]), and under it the source packet it carried and its bytes, so that a
//! resend can be checked to be byte for byte the copy first sent under its number.
//!
//! Memory stays bounded: bytes are kept only while the source packet is in its history (no
//! resend can come from a packet the history let go, unless one with the same key came back),
//! then a hash of them; numbers [`RESOLVABLE_SPAN`] behind the newest are forgotten (the
//! engine never resolves them).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use corecast_engine::splicer::RESOLVABLE_SPAN;
use corecast_engine::{RxPacket, SourceId};

use crate::SeqLedger;

/// A source packet: source, epoch and extended sequence number.
pub type PacketKey = (SourceId, u32, u64);

/// The key of `pkt`.
pub fn key_of(pkt: &RxPacket) -> PacketKey {
    (pkt.source, pkt.epoch, pkt.seq.0)
}

/// One copy a track sent.
#[derive(Clone, Debug)]
pub struct Copy {
    /// The source packet it carried (a prelude: the keyframe it came before).
    pub key: PacketKey,
    pub prelude: bool,
    hash: u64,
    /// Its bytes, while the history may still hold its packet.
    bytes: Option<Vec<u8>>,
}

impl Copy {
    /// `bytes` are what was sent (compared byte for byte while kept, by hash after).
    pub fn is(&self, bytes: &[u8]) -> bool {
        match &self.bytes {
            Some(b) => b == bytes,
            None => self.hash == hash(bytes),
        }
    }
}

/// What a track sent, by output number.
#[derive(Clone, Debug, Default)]
pub struct TrackCopies {
    ledger: SeqLedger,
    sent: HashMap<u64, Copy>,
    with_bytes: usize,
    prune_at: usize,
}

/// What a resent number was, to the track that resent it.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// Nothing sent yet, or not that number.
    NeverSent,
    /// [`RESOLVABLE_SPAN`] or more behind the newest: never resolved.
    TooFar(u64),
    Sent(&'a Copy),
}

impl TrackCopies {
    /// Record a copy sent under `wire`; false if that number was sent before.
    pub fn record(&mut self, wire: u16, key: PacketKey, prelude: bool, bytes: &[u8]) -> bool {
        if !self.ledger.record(wire) {
            return false;
        }
        let out = self.ledger.behind(wire).expect("just recorded");
        self.with_bytes += 1;
        self.sent.insert(
            out,
            Copy {
                key,
                prelude,
                hash: hash(bytes),
                bytes: Some(bytes.to_vec()),
            },
        );
        true
    }

    /// The newest number sent (its low 16 bits).
    pub fn newest(&self) -> Option<u16> {
        self.ledger.highest().map(|h| h as u16)
    }

    /// The copy sent under `wire`, taken at or behind the newest (where a NACK names it).
    pub fn lookup(&self, wire: u16) -> Lookup<'_> {
        let (Some(out), Some(newest)) = (self.ledger.behind(wire), self.ledger.highest()) else {
            return Lookup::NeverSent;
        };
        if newest - out >= RESOLVABLE_SPAN {
            return Lookup::TooFar(newest - out);
        }
        self.sent.get(&out).map_or(Lookup::NeverSent, Lookup::Sent)
    }

    /// Once more copies with bytes are kept than `floor`: let go of the bytes of those whose
    /// packet is not `held` any more, and of numbers too far behind to resolve.
    pub fn prune(&mut self, floor: usize, held: impl Fn(&PacketKey) -> bool) {
        if self.with_bytes <= self.prune_at.max(floor) {
            return;
        }
        let newest = self.ledger.highest().unwrap_or(0);
        self.sent.retain(|&out, _| newest - out < RESOLVABLE_SPAN);
        let mut with_bytes = 0;
        for c in self.sent.values_mut() {
            if c.bytes.is_some() && !held(&c.key) {
                c.bytes = None;
            }
            with_bytes += usize::from(c.bytes.is_some());
        }
        self.with_bytes = with_bytes;
        self.prune_at = 2 * with_bytes;
    }
}

fn hash(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

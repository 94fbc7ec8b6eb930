//! Loss repair on a shard worker: the engine keeps each forwarded packet's pool slot in its
//! source's history ([`HeldSlot`]), answers subscribers' NACKs from it, and this sends what it
//! queued: to a viewer that negotiated RTX as an RFC 4588 retransmission (`super::rtx`), to
//! any other as the copy at its own number, sealed like any copy when it goes to a viewer.
//!
//! Resends and replays are gathered, up to a run's worth ([`MAX_RUN`] packets), and sent
//! together like a run's copies: consecutive ones to one subscriber of one size go as one GSO
//! message when GSO is on (a NACK for several packets, a joiner's replayed frame). Unlike a
//! run's copies no two share their bytes, and they are few (a loss rate of the subscriber's
//! link, within the engine's budget; a GOP per joiner). A resend the kernel refuses is counted
//! with the shard's send failures, not against the packet's forwarding (which already counted
//! it as sent).

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

use corecast_engine::{DropReason, Nanos, RxPacket, Shard, Transmit, MAX_RUN};

use super::forward::{send_copies, Copied, Sending};
use super::{ShardWorker, State};
use crate::pool::Slot;

/// A pool slot kept in a source's history: its packet's bytes, prelude included.
#[derive(Clone)]
pub struct HeldSlot(pub Arc<Slot>);

impl AsRef<[u8]> for HeldSlot {
    fn as_ref(&self) -> &[u8] {
        self.0.bytes()
    }
}

/// Resends or replays gathered to be sent together: each transmit's `run_index` is its
/// packet's place in `pkts` and `slots`. Allocated once per shard.
pub(super) struct Gathered {
    transmits: Vec<Transmit>,
    pkts: Vec<RxPacket>,
    slots: Vec<HeldSlot>,
}

impl Gathered {
    pub fn new() -> Gathered {
        Gathered {
            transmits: Vec::with_capacity(2 * MAX_RUN),
            pkts: Vec::with_capacity(MAX_RUN),
            slots: Vec::with_capacity(MAX_RUN),
        }
    }

    fn is_full(&self) -> bool {
        self.pkts.len() == MAX_RUN
    }

    /// Add `pkt` (held by `slot`) and its transmits (a prelude first, if any).
    fn push(&mut self, transmits: &[Transmit], pkt: &RxPacket, slot: &HeldSlot) {
        let index = self.pkts.len() as u8;
        for t in transmits {
            let mut t = *t;
            t.run_index = index;
            self.transmits.push(t);
        }
        self.pkts.push(*pkt);
        self.slots.push(slot.clone());
    }

    /// Send what is gathered and empty it; `refused` gets each copy the kernel refused or
    /// that could not be sealed, with its packet's length. Returns what the kernel took.
    fn flush(
        &mut self,
        fd: BorrowedFd<'_>,
        s: &mut Sending<'_>,
        resends: bool,
        mut refused: impl FnMut(&Transmit, usize, DropReason),
    ) -> usize {
        if self.transmits.is_empty() {
            return 0;
        }
        let mut bufs: [&[u8]; MAX_RUN] = [&[]; MAX_RUN];
        for (b, slot) in bufs.iter_mut().zip(&self.slots) {
            *b = slot.as_ref();
        }
        let copied = Copied::Run(&self.pkts, &bufs[..self.pkts.len()]);
        let out = send_copies(fd, s, &self.transmits, copied, resends);
        for (t, reason) in s.refused.drain(..) {
            refused(&t, copied.of(&t).0.header.len as usize, reason);
        }
        self.transmits.clear();
        self.pkts.clear();
        self.slots.clear();
        out.sent
    }
}

impl State {
    /// The engine, the gathered resends and what sending needs, borrowed apart.
    fn split_for_sending(&mut self) -> (&mut Shard<HeldSlot>, &mut Gathered, Sending<'_>) {
        (
            &mut self.engine,
            &mut self.gathered,
            Sending {
                send: &mut self.send,
                viewers: &mut self.viewers,
                order: &mut self.order,
                refused: &mut self.refused,
                io: &mut self.io,
            },
        )
    }
}

impl ShardWorker {
    /// Send every resend the engine queued (from the NACKs just handed to it).
    pub(super) fn send_resends(&self, s: &mut State) {
        let fd = self.socket.as_fd();
        let (engine, gathered, mut sending) = s.split_for_sending();
        let mut refused = 0u64;
        let mut sent = 0;
        loop {
            let r = engine.poll_resend();
            let done = r.is_none();
            if let Some(r) = r {
                gathered.push(&[r.transmit], r.pkt, r.handle);
            }
            if done || gathered.is_full() {
                sent += gathered.flush(fd, &mut sending, true, |_, _, _| refused += 1);
            }
            if done {
                break;
            }
        }
        sending.io.resends_sent += sent as u64;
        sending.io.resends_refused += refused;
    }

    /// Send what joining tracks' replays have due (each packet after its prelude, if it needs
    /// one), off the fan-out's path. A copy the kernel refuses is taken off its track's count
    /// and counted as dropped.
    pub(super) fn send_replays(&self, s: &mut State, now: Nanos) {
        let fd = self.socket.as_fd();
        let (engine, gathered, mut sending) = s.split_for_sending();
        let mut failed: Vec<(Transmit, usize, DropReason)> = Vec::new();
        loop {
            let r = engine.poll_replay(now);
            let done = r.is_none();
            if let Some(r) = r {
                let both = [r.prelude.unwrap_or(r.transmit), r.transmit];
                let copies = &both[usize::from(r.prelude.is_none())..];
                gathered.push(copies, r.pkt, r.handle);
            }
            if done || gathered.is_full() {
                gathered.flush(fd, &mut sending, false, |t, len, why| {
                    failed.push((*t, len, why))
                });
            }
            if done {
                break;
            }
        }
        for (t, len, reason) in failed {
            sending.io.replays_refused += 1;
            engine.record_replay_failure(&t, len, reason);
        }
    }
}

//! The shard's hot path: take the packets of its queue in order, fan each *run* of them (the
//! consecutive packets of one source already queued together, see the engine's
//! `shard/run.rs`) out with the engine, and send the copies with `sendmmsg`, each track's
//! copies of a run as one UDP GSO message when GSO is on.
//!
//! A run is what is in the queue: the shard never waits for more packets, so a queue holding
//! one packet is forwarded as before. Slots stay in `State::carry` until their packet's fan-out
//! is done, then go to the source's history (or back to the pool).

use std::os::fd::{AsFd, BorrowedFd};

use corecast_engine::{DropReason, RxPacket, Transmit, MAX_RUN};
use corecast_udp::{Datagram, Refusal, SendBatch, SendOutcome};

use super::viewers::Viewers;
use super::{HeldSlot, ShardIo, ShardWorker, State, COPIES_PER_TURN, PACKETS_PER_TURN};

/// The packets a batch's transmits copy.
#[derive(Clone, Copy)]
pub(super) enum Copied<'a> {
    /// Every transmit copies this packet (whose bytes follow it).
    One(&'a RxPacket, &'a [u8]),
    /// Each transmit copies the packet at its `run_index`.
    Run(&'a [RxPacket], &'a [&'a [u8]]),
}

impl<'a> Copied<'a> {
    /// The packet `t` copies, and its bytes.
    pub fn of(&self, t: &Transmit) -> (&'a RxPacket, &'a [u8]) {
        match *self {
            Copied::One(pkt, buf) => (pkt, buf),
            Copied::Run(pkts, bufs) => {
                let i = t.run_index as usize;
                (&pkts[i], bufs[i])
            }
        }
    }

    /// The datagram `t` is: its segments go as one iovec each, so every copy references the
    /// one shared payload.
    pub fn datagram(&self, t: &'a Transmit) -> Datagram<'a> {
        let (pkt, buf) = self.of(t);
        Datagram {
            dest: t.dest,
            segments: t.segments(pkt, buf),
        }
    }
}

impl ShardWorker {
    /// Fan out up to a turn's worth of packets (`PACKETS_PER_TURN` taken, or `COPIES_PER_TURN`
    /// copies sent, whichever comes first); true if any. A turn cut short by copies leaves the
    /// rest of its packets in `carry` for the next turn, so what a shard's socket brings in
    /// (viewers' consent checks above all) is read between bursts however many tracks share
    /// a source.
    pub(super) fn forward(&self, s: &mut State) -> bool {
        let mut taken = 0;
        let mut forwarded = false;
        let copies_before = s.io.copies_sent;
        loop {
            if s.io.copies_sent - copies_before >= COPIES_PER_TURN {
                return true;
            }
            while s.carry.len() < s.run_max && taken < PACKETS_PER_TURN {
                let Some(slot) = self.link.packets.pop() else {
                    break;
                };
                taken += 1;
                s.io.packets_in += 1;
                s.carry.push_back(slot);
            }
            // Ingest hands over only slots with a packet; one without has nothing to send.
            while s.carry.front().is_some_and(|slot| slot.packet().is_none()) {
                s.carry.pop_front();
            }
            if s.carry.is_empty() {
                return taken > 0 || forwarded;
            }
            self.forward_run(s);
            forwarded = true;
        }
    }

    /// Fan out the longest run at the front of `carry` the engine takes (at least its first
    /// packet), and hand those packets' slots to their source's history.
    fn forward_run(&self, s: &mut State) {
        let fd = self.socket.as_fd();
        let n = s
            .carry
            .iter()
            .take_while(|slot| slot.packet().is_some())
            .count()
            .min(MAX_RUN);
        let mut bufs: [&[u8]; MAX_RUN] = [&[]; MAX_RUN];
        s.run.clear();
        for (i, slot) in s.carry.iter().take(n).enumerate() {
            s.run
                .push(*slot.packet().expect("counted as having a packet"));
            bufs[i] = slot.bytes();
        }
        let now = self.clock.now();
        let mut fan = s.engine.fan_out_run(&s.run, &bufs[..n], now);
        let k = fan.len();
        let copied = if fan.indexed() {
            Copied::Run(&s.run[..k], &bufs[..k])
        } else {
            Copied::One(&s.run[0], bufs[0])
        };
        let mut sending = Sending {
            send: &mut s.send,
            viewers: &mut s.viewers,
            order: &mut s.order,
            refused: &mut s.refused,
            io: &mut s.io,
        };
        while fan.fill(&mut s.batch) > 0 {
            let batch = s.batch.as_slice();
            let refused_before = sending.refused.len();
            let out = send_copies(fd, &mut sending, batch, copied, false);
            sending.io.copies_sent += out.sent as u64;
            sending.io.batches += 1;
            if out.sent > 0 {
                // One clock read per batch (vDSO, no syscall); every copy of a packet in it
                // shares it.
                let at = self.clock.now();
                let mut sent = [0u64; MAX_RUN];
                match copied {
                    Copied::One(..) => sent[0] = out.sent as u64,
                    Copied::Run(..) => {
                        for t in batch {
                            sent[t.run_index as usize] += 1;
                        }
                        for (t, _) in &sending.refused[refused_before..] {
                            sent[t.run_index as usize] -= 1;
                        }
                    }
                }
                for (pkt, &copies) in s.run[..k].iter().zip(&sent).filter(|(_, &c)| c > 0) {
                    let micros = at.saturating_since(pkt.received_at).0 / 1_000;
                    let _ = s.latency.record_n(micros.clamp(1, 60_000_000), copies);
                }
            }
            s.batch.clear();
        }
        for (t, reason) in s.refused.drain(..) {
            let len = copied.of(&t).0.header.len as usize;
            s.engine.record_send_failure(&t, len, reason);
        }
        // The slots stay in their source's history (if the shard keeps one) instead of going
        // back to the pool now.
        for pkt in &s.run[..k] {
            let slot = s.carry.pop_front().expect("the run's slots are carried");
            s.engine.remember(pkt, HeldSlot(slot));
        }
    }
}

/// What sending copies needs of a shard's state, borrowed apart from its engine.
pub(super) struct Sending<'s> {
    pub send: &'s mut SendBatch,
    pub viewers: &'s mut Viewers,
    /// The copies to send, in order, once those that failed to seal are left out.
    pub order: &'s mut Vec<u32>,
    /// Copies the kernel refused or that could not be sealed, for the caller to record.
    pub refused: &'s mut Vec<(Transmit, DropReason)>,
    pub io: &'s mut ShardIo,
}

/// Send `copies` with `sendmmsg` (GSO where `send` has it): sealed per viewer while the shard
/// has a secured viewer, else as iovecs into the shared payload; what the kernel refuses goes
/// to `refused`, and the send is counted in `io` (but the copies sent: the caller counts them
/// by kind). `resends`: the copies answer NACKs (a viewer that negotiated RTX gets each as an
/// RFC 4588 retransmission).
pub(super) fn send_copies(
    fd: BorrowedFd<'_>,
    s: &mut Sending<'_>,
    copies: &[Transmit],
    copied: Copied<'_>,
    resends: bool,
) -> SendOutcome {
    let out = if s.viewers.has_secured() {
        send_all_sealed(fd, s, copies, copied, resends)
    } else {
        let refused = &mut *s.refused;
        s.send.send(
            fd,
            copies,
            |t| copied.datagram(t),
            |t, why| refused.push((*t, drop_reason(why))),
        )
    };
    s.io.count_send(&out);
    out
}

/// [`send_copies`] while the shard has secured viewers.
fn send_all_sealed(
    fd: BorrowedFd<'_>,
    s: &mut Sending<'_>,
    copies: &[Transmit],
    copied: Copied<'_>,
    resends: bool,
) -> SendOutcome {
    // In chunks of what the seal arena takes, each cut where the destination changes when it
    // can be, so that a subscriber's copies of a run stay one message.
    let mut out = SendOutcome::default();
    let mut at = 0;
    while at < copies.len() {
        let end = chunk_end(copies, at, s.viewers.capacity());
        out += send_sealed(fd, s, &copies[at..end], copied, resends);
        at = end;
    }
    out
}

/// Where the chunk of `copies` from `at` ends: at most `cap` copies, and before the last change
/// of destination within them when there is one, so no subscriber's copies straddle two chunks.
fn chunk_end(copies: &[Transmit], at: usize, cap: usize) -> usize {
    let end = copies.len().min(at + cap);
    if end == copies.len() {
        return end;
    }
    (at + 1..=end)
        .rev()
        .find(|&e| copies[e - 1].dest != copies[e].dest)
        .unwrap_or(end)
}

/// Seal `copies` (at most what the seal arena takes) and send them: sealed copies from the
/// arena, the others as iovecs; a copy that cannot be sealed goes to `refused` unsent.
fn send_sealed(
    fd: BorrowedFd<'_>,
    s: &mut Sending<'_>,
    copies: &[Transmit],
    copied: Copied<'_>,
    resends: bool,
) -> SendOutcome {
    let (order, refused) = (&mut *s.order, &mut *s.refused);
    let sealed = s.viewers.seal(copies, copied, resends);
    order.clear();
    for (i, t) in copies.iter().enumerate() {
        if sealed.failed(i) {
            refused.push((*t, DropReason::SendFailed));
        } else {
            order.push(i as u32);
        }
    }
    s.send.send(
        fd,
        order,
        |&i| {
            let t = &copies[i as usize];
            match sealed.bytes(i as usize) {
                Some(bytes) => Datagram {
                    dest: t.dest,
                    segments: [bytes, &[], &[], &[]],
                },
                None => copied.datagram(t),
            }
        },
        |&i, why| refused.push((copies[i as usize], drop_reason(why))),
    )
}

/// The drop reason a copy the kernel refused is counted under.
pub(super) fn drop_reason(refusal: Refusal) -> DropReason {
    match refusal {
        Refusal::BufferFull => DropReason::SendBufferFull,
        Refusal::Failed => DropReason::SendFailed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(ports: &[u16]) -> Vec<Transmit> {
        ports
            .iter()
            .map(|&p| Transmit {
                dest: std::net::SocketAddr::from(([127, 0, 0, 1], p)),
                track: corecast_engine::TrackId(u32::from(p)),
                head: [0; std::mem::size_of::<corecast_engine::splicer::OutHead>()],
                prelude: false,
                run_index: 0,
            })
            .collect()
    }

    #[test]
    fn a_chunk_ends_where_the_destination_changes() {
        let copies = to(&[1, 1, 1, 2, 2, 2, 3, 3]);
        assert_eq!(
            chunk_end(&copies, 0, 5),
            3,
            "not in the middle of 2's copies"
        );
        assert_eq!(chunk_end(&copies, 0, 6), 6, "6 ends 2's copies");
        assert_eq!(chunk_end(&copies, 3, 4), 6);
        assert_eq!(chunk_end(&copies, 6, 4), 8, "the rest fits");
    }

    #[test]
    fn one_destination_longer_than_a_chunk_is_cut_at_the_chunk() {
        let copies = to(&[1; 10]);
        assert_eq!(chunk_end(&copies, 0, 4), 4);
        assert_eq!(chunk_end(&copies, 8, 4), 10);
    }
}

//! Loss repair on a shard worker: the engine keeps each forwarded packet's pool slot in its
//! source's history ([`HeldSlot`]), answers subscribers' NACKs from it, and this sends what it
//! queued: to a viewer that negotiated RTX as an RFC 4588 retransmission (`super::rtx`), to
//! any other as the copy at its own number, sealed like any copy when it goes to a viewer.
//!
//! Resends go one `sendmmsg` each, right after the RTCP that asked for them: unlike the
//! copies of one packet, no two share their bytes, and they are few (a loss rate of the
//! subscriber's link, within the engine's budget). A resend the kernel refuses is counted with
//! the shard's send failures, not against the packet's forwarding (which already counted it
//! as sent).

use std::os::fd::AsFd;
use std::sync::Arc;

use corecast_engine::{DropReason, Nanos, Transmit};
use corecast_udp::Datagram;

use super::{send_copies, ShardWorker, State};
use crate::pool::Slot;

/// A pool slot kept in a source's history: its packet's bytes, prelude included.
#[derive(Clone)]
pub struct HeldSlot(pub Arc<Slot>);

impl AsRef<[u8]> for HeldSlot {
    fn as_ref(&self) -> &[u8] {
        self.0.bytes()
    }
}

impl ShardWorker {
    /// Send every resend the engine queued (from the NACKs just handed to it).
    pub(super) fn send_resends(&self, s: &mut State) {
        let fd = self.socket.as_fd();
        let mut refused: Vec<(Transmit, DropReason)> = Vec::new();
        while let Some(r) = s.engine.poll_resend() {
            let one = [r.transmit];
            let (pkt, buf) = (r.pkt, r.handle.as_ref());
            let out = match s.viewers.seal_rtx(&r.transmit, pkt, buf) {
                None => send_copies(
                    fd,
                    &mut s.send,
                    &mut s.viewers,
                    &mut s.order,
                    &mut refused,
                    &one,
                    pkt,
                    buf,
                ),
                Some(None) => {
                    refused.push((r.transmit, DropReason::SendFailed));
                    continue;
                }
                Some(Some(bytes)) => s.send.send(
                    fd,
                    &one,
                    |t| Datagram {
                        dest: t.dest,
                        segments: [bytes, &[], &[], &[]],
                    },
                    |t, why| refused.push((*t, super::drop_reason(why))),
                ),
            };
            s.io.syscalls += out.syscalls as u64;
            s.io.resends_sent += out.sent as u64;
            s.io.send_buffer_full += out.buffer_full as u64;
            s.io.send_failed += out.failed as u64;
        }
        s.io.resends_refused += refused.len() as u64;
    }

    /// Send what joining tracks' replays have due: each packet (after its prelude, if it needs
    /// one) as its own small batch, off the fan-out's path. A copy the kernel refuses is taken
    /// off its track's count and counted as dropped.
    pub(super) fn send_replays(&self, s: &mut State, now: Nanos) {
        let fd = self.socket.as_fd();
        let mut refused: Vec<(Transmit, DropReason)> = Vec::new();
        while let Some(r) = s.engine.poll_replay(now) {
            let both = [r.prelude.unwrap_or(r.transmit), r.transmit];
            let copies = &both[usize::from(r.prelude.is_none())..];
            let (pkt, buf) = (r.pkt, r.handle.as_ref());
            let out = send_copies(
                fd,
                &mut s.send,
                &mut s.viewers,
                &mut s.order,
                &mut refused,
                copies,
                pkt,
                buf,
            );
            s.io.syscalls += out.syscalls as u64;
            s.io.send_buffer_full += out.buffer_full as u64;
            s.io.send_failed += out.failed as u64;
            let len = pkt.header.len as usize;
            for (t, reason) in refused.drain(..) {
                s.io.replays_refused += 1;
                s.engine.record_replay_failure(&t, len, reason);
            }
        }
    }
}

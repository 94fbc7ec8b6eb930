//! What the fuzz targets share: the committed codec recordings, embedded so the structure-aware
//! targets send real encoder output ([`recording`]); a sender whose every header field the
//! fuzzer may bend ([`Sender`], [`PacketSpec`]); and the one step that offers a datagram to
//! ingress and collects what comes out ([`offer`]); the fixed SRTP keys of `srtcp_unprotect`
//! ([`srtp_keys`], shared with the seed generator in `fuzz/seeds`); what the shard target keeps
//! of every copy a track sent, to check resends against ([`copies`]), and that target's
//! NACKs and checks ([`shard`]).
//!
//! The targets are in `fuzz_targets/`; `scripts/fuzz.sh` builds and runs them.

pub mod copies;
mod recording;
mod sender;
pub mod shard;
pub mod srtp_keys;

pub use recording::{recording, StreamKind, Template};
pub use sender::{HeaderExtras, PacketSpec, Pick, Sender, SeqSpec, SsrcSpec, TsSpec};

use corecast_engine::{DropReason, Nanos, RxPacket, SourceIngress};

/// One packet ingress handed on, with the buffer it points into (the datagram, and its prelude
/// after it when ingress has one for it).
#[derive(Clone, Debug)]
pub struct Delivered {
    pub pkt: RxPacket,
    pub bytes: Vec<u8>,
}

/// Offer one datagram to `ingress` and append to `out` every packet it hands on as a result:
/// none (dropped, or held while another stream is on probation), the datagram itself, or the
/// packets a stream held until its probation ended. Returns the drop reason when the datagram
/// itself was dropped.
///
/// The only place the targets call into `SourceIngress`'s packet path.
pub fn offer(
    ingress: &mut SourceIngress,
    datagram: &[u8],
    now: Nanos,
    out: &mut Vec<Delivered>,
) -> Option<DropReason> {
    ingress
        .ingest(datagram, None, now, |pkt, bytes, prelude| {
            let (mut pkt, mut bytes) = (*pkt, bytes.to_vec());
            if let Some(prelude) = prelude {
                pkt.attach_prelude(&mut bytes, prelude);
            }
            out.push(Delivered { pkt, bytes });
        })
        .err()
}

/// Output RTP sequence numbers of one track, unwrapped to 64 bits, to tell a number used twice
/// from a wrap of the 16-bit field.
#[derive(Clone, Debug, Default)]
pub struct SeqLedger {
    highest: Option<u64>,
    sent: std::collections::HashSet<u64>,
}

impl SeqLedger {
    /// Record `wire`; false if that (unwrapped) number was sent before.
    pub fn record(&mut self, wire: u16) -> bool {
        let ext = match self.highest {
            // Nearest to the highest so far: the splicer never steps by 2^15 or more at once.
            Some(h) => {
                let delta = wire.wrapping_sub(h as u16) as i16 as i64;
                (h as i64 + delta) as u64
            }
            None => (1 << 32) + u64::from(wire),
        };
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        self.sent.insert(ext)
    }

    /// The highest (unwrapped) number recorded.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// The unwrapped number with low bits `wire` at or below the highest recorded, nearest to
    /// it (where a NACK's number is); `None` before any.
    pub fn behind(&self, wire: u16) -> Option<u64> {
        let h = self.highest?;
        let back = u64::from((h as u16).wrapping_sub(wire));
        h.checked_sub(back)
    }
}

/// Run `f`, code of another crate used as a cross-check, and give `None` if it panics: a panic
/// there is that crate's bug, not ours (webrtc-rs `rtp` 0.17.2 panics on some header
/// extensions), and must not end the run. libFuzzer's panic hook aborts, so it is set aside
/// meanwhile.
pub fn foreign<T>(f: impl FnOnce() -> T) -> Option<T> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    result.ok()
}

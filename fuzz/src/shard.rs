//! Helpers of the `shard` target: the NACKs it sends ([`NackFrom`], [`NackSeq`]), driving a
//! fan-out ([`drive`]), and its checks of a copy's bytes ([`check_rewrite`]), of a run's order
//! ([`check_run_order`]), of a resend ([`check_resend`]), of repair and replay counters
//! ([`check_repair`], [`check_replays`]) and of sender reports ([`sender_reports`]).

use std::collections::HashMap;
use std::net::SocketAddr;

use arbitrary::Arbitrary;
use corecast_engine::rtcp::{self, NtpTime, RtcpPacket, SourceClock};
use corecast_engine::rtp::RtpHeader;
use corecast_engine::shard::{RepairCounters, ReplayCounters};
use corecast_engine::{JoinPolicy, Nanos, Shard, SourceId, TrackId, Transmit, TransmitBatch};

use crate::copies::{Lookup, PacketKey, TrackCopies};
use crate::Delivered;

/// Where a NACK comes from: the subscriber (its media port, or the one after it) or not.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum NackFrom {
    Subscriber,
    RtcpPort,
    OtherPort(u8),
    OtherHost,
    Nobody,
}

impl NackFrom {
    /// Whether it is the subscriber of `dest`, and its address.
    pub fn address(self, dest: SocketAddr) -> (bool, Option<SocketAddr>) {
        let port = |p: u16| Some(SocketAddr::new(dest.ip(), p));
        match self {
            NackFrom::Subscriber => (true, Some(dest)),
            NackFrom::RtcpPort => (true, port(dest.port().wrapping_add(1))),
            NackFrom::OtherPort(n) => (false, port(dest.port().wrapping_add(2 + u16::from(n)))),
            NackFrom::OtherHost => (false, Some(SocketAddr::from(([127, 0, 0, 2], dest.port())))),
            NackFrom::Nobody => (false, None),
        }
    }
}

/// The join policy an input byte names: replay at pace `2 + p % 7`, or keyframe.
pub fn join(pace: Option<u8>) -> JoinPolicy {
    pace.map_or(JoinPolicy::Keyframe, |p| JoinPolicy::Replay {
        pace: 2 + u32::from(p % 7),
    })
}

/// A NACKed number, against the newest the track sent.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum NackSeq {
    Back(u8),
    /// Far behind: at and around `RESOLVABLE_SPAN`, or a whole wrap.
    Far(u16),
    /// Not sent yet.
    Ahead(u8),
    /// Around the 16-bit wrap.
    Wrap(i8),
    Raw(u16),
}

impl NackSeq {
    pub fn wire(self, newest: u16) -> u16 {
        match self {
            NackSeq::Back(n) => newest.wrapping_sub(u16::from(n)),
            NackSeq::Far(n) => newest.wrapping_sub(n),
            NackSeq::Ahead(n) => newest.wrapping_add(1 + u16::from(n)),
            NackSeq::Wrap(n) => i16::from(n) as u16,
            NackSeq::Raw(n) => n,
        }
    }
}

/// A copy a fan-out made: its transmit, the index of the packet it copies, its bytes.
pub type Sent = (Transmit, usize, Vec<u8>);

/// Fill `batch` from a fan-out until it is done (at most `rounds` fills); each transmit with
/// the index of the packet it copies (in `ds`) and its bytes.
pub fn drive(
    mut fill: impl FnMut(&mut TransmitBatch) -> usize,
    batch: &mut TransmitBatch,
    index: impl Fn(&Transmit) -> usize,
    ds: &[Delivered],
    rounds: usize,
) -> Vec<Sent> {
    let mut sent = Vec::new();
    let mut fills = 0;
    while fill(batch) > 0 {
        fills += 1;
        assert!(fills <= rounds, "the fan-out never ends");
        for t in batch.as_slice() {
            let i = index(t);
            sent.push((*t, i, t.to_vec(&ds[i].pkt, &ds[i].bytes)));
        }
        batch.clear();
    }
    sent
}

/// A run's copies: each track's side by side, in the run's order.
pub fn check_run_order(sent: &[Sent]) {
    let mut seen: Vec<TrackId> = Vec::new();
    for (k, (t, i, _)) in sent.iter().enumerate() {
        match k.checked_sub(1).map(|p| &sent[p]) {
            Some((p, j, _)) if p.track == t.track => {
                assert!(j < i, "{}'s copies out of order", t.track)
            }
            _ => {
                assert!(!seen.contains(&t.track), "{}'s copies apart", t.track);
                seen.push(t.track);
            }
        }
    }
}

/// `bytes`, with header `h`, is a copy of `d`'s packet under a rewritten header and codec
/// prefix; or, for a prelude transmit `t`, the prelude, and `next` (its packet's copy) comes
/// just after it at its time.
pub fn check_rewrite(
    t: &Transmit,
    h: &RtpHeader,
    bytes: &[u8],
    d: &Delivered,
    next: Option<(&Transmit, &[u8])>,
) {
    let (pkt, buf) = (&d.pkt, &d.bytes[..]);
    let packet = &buf[..usize::from(pkt.header.len)];
    if t.prelude {
        let prelude = pkt
            .prelude
            .expect("a prelude transmit has a prelude")
            .range();
        assert_eq!(h.payload(bytes), &buf[prelude]);
        let (next, copy) = next.expect("a prelude comes before its packet's copy");
        assert_eq!((next.track, next.prelude), (t.track, false));
        let copy = RtpHeader::parse(copy).unwrap();
        assert_eq!(
            h.timestamp, copy.timestamp,
            "a prelude has its packet's time"
        );
        assert_eq!(
            h.seq.0.wrapping_add(1),
            copy.seq.0,
            "a prelude comes just before"
        );
    } else {
        assert_eq!(bytes.len(), packet.len());
        assert_eq!(
            (h.marker, h.payload_len()),
            (pkt.header.marker, pkt.header.payload_len())
        );
        let start = usize::from(pkt.header.payload_start);
        assert_eq!(bytes[12..start], packet[12..start], "CSRCs and extensions");
        assert_eq!(
            bytes[start + pkt.rewrite_len()..],
            packet[start + pkt.rewrite_len()..]
        );
    }
}

/// A resend `t` of the packet `key` (`bytes`) by `track`, after a NACK naming `named`: of a
/// number named, that the track sent and can still resolve, byte for byte what it sent then.
pub fn check_resend(
    copies: &TrackCopies,
    named: &[u16],
    t: &Transmit,
    key: &PacketKey,
    bytes: &[u8],
) {
    let id = t.track;
    let h = RtpHeader::parse(bytes).expect("a resend parses as RTP");
    let seq = h.seq.0;
    assert!(named.contains(&seq), "{id} resent {seq}, not NACKed");
    match copies.lookup(seq) {
        Lookup::Sent(c) => {
            assert_eq!((c.key, c.prelude), (*key, t.prelude), "{id} resent {seq}");
            assert!(c.is(bytes), "{id} resent {seq} other than first sent");
        }
        Lookup::NeverSent => panic!("{id} resent {seq}, which it never sent"),
        Lookup::TooFar(n) => panic!("{id} resent {seq}, {n} behind its newest"),
    }
}

/// Repair counters read now (`c`) after `last`: monotonic, and every number asked for is
/// accounted for once, resent or refused for one reason (`RepairCounters`' docs).
pub fn check_repair(last: &mut RepairCounters, c: RepairCounters, of: impl std::fmt::Display) {
    let refused = c.unknown + c.missing + c.too_often + c.over_budget + c.queue_full;
    assert_eq!(c.requested, c.resent + refused, "{of}: {c:?}");
    let fields = |c: &RepairCounters| {
        [
            c.requested,
            c.resent,
            c.resent_bytes,
            c.unknown,
            c.missing,
            c.too_often,
            c.over_budget,
            c.queue_full,
        ]
    };
    let grew = fields(last).iter().zip(fields(&c)).all(|(a, b)| *a <= b);
    assert!(
        grew,
        "{of}'s repair counters went back: {last:?} then {c:?}"
    );
    *last = c;
}

/// Replay counters read now (`r`) after `last`: monotonic but for the copies, which are those
/// polled less those reported failed (`sent`: packets, bytes).
pub fn check_replays(last: &mut ReplayCounters, r: &ReplayCounters, sent: (u64, u64)) {
    let grew = |f: fn(&ReplayCounters) -> u64| f(r) >= f(last);
    assert!(grew(|c| c.started) && grew(|c| c.finished) && grew(|c| c.skipped));
    assert!(
        grew(|c| c.without_keyframe) && r.finished <= r.started,
        "{r:?}"
    );
    assert_eq!((r.packets, r.bytes), sent, "replayed copies counted");
    *last = *r;
}

/// Write the sender reports due now and check each: only when due, one per track that wants
/// them (the odd ones), a well-formed SR with the track's SSRC on the node's wall clock or a
/// source's mapping (`clocks`) moved on to `now`.
pub fn sender_reports<H>(
    shard: &mut Shard<H>,
    now: Nanos,
    clocks: &HashMap<SourceId, SourceClock>,
) {
    let wall = NtpTime(0xe000_0000_0000_0000 | now.0);
    let due = shard.sender_reports_due().is_some_and(|at| at <= now);
    let mut reports = Vec::new();
    shard.write_sender_reports(now, wall, |id, dest, bytes| {
        reports.push((id, dest, bytes.to_vec()));
    });
    assert!(due || reports.is_empty(), "reports only when due");
    let mut seen = Vec::new();
    for (id, dest, bytes) in reports {
        assert_eq!(id.0 % 2, 1, "{id} does not get sender reports");
        assert!(!seen.contains(&id), "{id} reported twice at once");
        seen.push(id);
        let info = shard.track(id).expect("a reported track exists");
        assert_eq!(dest, info.dest);
        let mut packets = rtcp::packets(&bytes);
        let Some(Ok(RtcpPacket::SenderReport { ssrc, ntp, .. })) = packets.next() else {
            panic!("not one sender report: {bytes:?}");
        };
        assert!(packets.next().is_none());
        assert_eq!(ssrc, info.ssrc);
        assert!(
            ntp == wall || clocks.values().any(|c| c.at(now).0 == ntp),
            "{id}'s report is on the node's clock or a source's"
        );
    }
}

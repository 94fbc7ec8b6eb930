//! Loss repair toward the sender: a gap in a source's sequence is asked for with a generic NACK
//! (RFC 4585) sent to the sender's feedback address, and the sender's RFC 4588 retransmission
//! (the source's `rtx_payload_type`, any SSRC of the latched sender) is turned back into the
//! packet it carries, which then fills its place like a reordered packet: accepted once, in
//! its slot of the stream, forwarded and kept in the shards' histories as if it had come in
//! time.
//!
//! Only for a source that names an RTX payload type: a sender that says it retransmits. Asking
//! one that does not would be traffic for nothing.
//!
//! Policy: a missing number is first asked for [`REORDER_WAIT`] after the gap showed (a packet
//! merely reordered arrives within it), then again every [`RETRY_AFTER`], [`MAX_ASKS`] times in
//! all, and forgotten after [`MAX_AGE`] (subscribers' jitter buffers have moved on by then).
//! At most [`MAX_MISSING`] numbers are tracked (the newest kept); NACKs go at most one per
//! [`MIN_INTERVAL`], each naming every number due.

use std::collections::VecDeque;
use std::net::SocketAddr;

use crate::rtcp::{write_nack, NACK_MAX_LEN};
use crate::rtp::RtpHeader;
use crate::{DropReason, Nanos, SeqNo, Ssrc};

/// Wait this long after a gap shows before asking: reordering resolves within it.
pub const REORDER_WAIT: Nanos = Nanos::from_millis(5);
/// Ask again after this long without the packet.
pub const RETRY_AFTER: Nanos = Nanos::from_millis(40);
/// Ask at most this many times for one number.
pub const MAX_ASKS: u8 = 3;
/// Forget a number missing this long.
pub const MAX_AGE: Nanos = Nanos::from_millis(500);
/// Track at most this many missing numbers.
pub const MAX_MISSING: usize = 128;
/// The largest retransmission rebuilt (a UDP datagram's payload).
const MAX_DATAGRAM: usize = 65_536;
/// At most one NACK per this interval.
pub const MIN_INTERVAL: Nanos = Nanos::from_millis(10);

/// A NACK for the I/O layer to send to the sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpstreamNack {
    /// The source's feedback address if configured, else its sender.
    pub to: SocketAddr,
    bytes: [u8; NACK_MAX_LEN],
    len: usize,
}

impl UpstreamNack {
    /// The RTCP packet.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

#[derive(Clone, Copy, Debug)]
struct Missing {
    seq: u64,
    since: Nanos,
    asked: u8,
    last_asked: Nanos,
}

/// What upstream repair did, for the source's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpstreamCounters {
    /// Sequence numbers found missing.
    pub missing: u64,
    /// NACK packets sent to the sender.
    pub nacks_sent: u64,
    /// Numbers named in them (each time asked).
    pub asked: u64,
    /// Retransmissions from the sender that filled a gap (accepted).
    pub repaired: u64,
    /// Numbers given up on (asked [`MAX_ASKS`] times, too old, or pushed out by newer ones).
    pub given_up: u64,
}

/// One source's missing numbers and NACK pacing.
#[derive(Clone, Debug)]
pub(crate) struct Upstream {
    missing: VecDeque<Missing>,
    last_sent: Option<Nanos>,
    pub counters: UpstreamCounters,
    /// Where a retransmission is rebuilt as the packet it carries (allocated once).
    scratch: Box<[u8]>,
}

impl Upstream {
    pub fn new() -> Upstream {
        Upstream {
            missing: VecDeque::with_capacity(MAX_MISSING),
            last_sent: None,
            counters: UpstreamCounters::default(),
            scratch: vec![0; MAX_DATAGRAM].into_boxed_slice(),
        }
    }

    /// Numbers `from..to` (extended) were skipped at `now`.
    pub fn gap(&mut self, from: u64, to: u64, now: Nanos) {
        // A jump longer than the tracking room is a sender's skip more likely than loss: only
        // its newest numbers are worth asking for.
        let from = from.max(to.saturating_sub(MAX_MISSING as u64));
        for seq in from..to {
            if self.missing.len() == MAX_MISSING {
                self.missing.pop_front();
                self.counters.given_up += 1;
            }
            self.missing.push_back(Missing {
                seq,
                since: now,
                asked: 0,
                last_asked: now,
            });
            self.counters.missing += 1;
        }
    }

    /// Extended number `seq` arrived late (reordered or retransmitted); `retransmitted`: as the
    /// sender's RTX.
    pub fn filled(&mut self, seq: u64, retransmitted: bool) {
        if let Some(i) = self.missing.iter().position(|m| m.seq == seq) {
            self.missing.remove(i);
            self.counters.repaired += u64::from(retransmitted);
        }
    }

    /// Whether `seq` (as sent, 16 bits) is one of the numbers missing.
    pub fn is_missing(&self, seq: u16) -> bool {
        self.missing.iter().any(|m| m.seq as u16 == seq)
    }

    /// The stream restarted: its numbers mean nothing now.
    pub fn clear(&mut self) {
        self.counters.given_up += self.missing.len() as u64;
        self.missing.clear();
    }

    fn due(m: &Missing, now: Nanos) -> bool {
        let wait = if m.asked == 0 {
            REORDER_WAIT
        } else {
            RETRY_AFTER
        };
        now.saturating_since(m.last_asked) >= wait
    }

    /// When [`Upstream::poll`] next has work.
    pub fn deadline(&self) -> Option<Nanos> {
        let next = self
            .missing
            .iter()
            .map(|m| {
                let wait = if m.asked == 0 {
                    REORDER_WAIT
                } else {
                    RETRY_AFTER
                };
                m.last_asked.saturating_add(wait)
            })
            .min()?;
        Some(match self.last_sent {
            Some(at) => next.max(at.saturating_add(MIN_INTERVAL)),
            None => next,
        })
    }

    /// The NACK due at `now` for a stream of `media_ssrc`, from `sender_ssrc`, to `to`.
    pub fn poll(
        &mut self,
        now: Nanos,
        to: Option<SocketAddr>,
        sender_ssrc: Ssrc,
        media_ssrc: Option<Ssrc>,
    ) -> Option<UpstreamNack> {
        let before = self.missing.len();
        self.missing
            .retain(|m| m.asked < MAX_ASKS && now.saturating_since(m.since) < MAX_AGE);
        self.counters.given_up += (before - self.missing.len()) as u64;
        if self
            .last_sent
            .is_some_and(|at| now.saturating_since(at) < MIN_INTERVAL)
        {
            return None;
        }
        let (to, media_ssrc) = (to?, media_ssrc?);
        if !self.missing.iter().any(|m| Self::due(m, now)) {
            return None;
        }
        let mut bytes = [0; NACK_MAX_LEN];
        let due = self
            .missing
            .iter()
            .filter(|m| Self::due(m, now))
            .map(|m| SeqNo(m.seq as u16));
        let len = write_nack(&mut bytes, sender_ssrc, media_ssrc, due)?;
        for m in self.missing.iter_mut().filter(|m| Self::due(m, now)) {
            m.asked += 1;
            m.last_asked = now;
            self.counters.asked += 1;
        }
        self.counters.nacks_sent += 1;
        self.last_sent = Some(now);
        Some(UpstreamNack { to, bytes, len })
    }
}

/// The packet an RFC 4588 retransmission `rtx` carries, written into `out` as the stream of
/// `ssrc` and `payload_type` sent it: the RTX header with its payload type, sequence number
/// (the OSN, the payload's first two bytes) and SSRC restored, then the rest of the payload.
/// Returns its length.
pub fn unwrap_rtx(
    rtx: &[u8],
    ssrc: Ssrc,
    payload_type: u8,
    out: &mut [u8],
) -> Result<usize, DropReason> {
    let header = RtpHeader::parse(rtx)?;
    let start = header.payload_start as usize;
    let payload = header.payload(rtx);
    if payload.len() < 2 || rtx.len() - 2 > out.len() {
        return Err(DropReason::Malformed);
    }
    out[..start].copy_from_slice(&rtx[..start]);
    out[1] = (rtx[1] & 0x80) | (payload_type & 0x7f);
    out[2..4].copy_from_slice(&rtx[start..start + 2]);
    out[8..12].copy_from_slice(&ssrc.0.to_be_bytes());
    // The rest of the datagram, padding (if any) included.
    let rest = &rtx[start + 2..];
    out[start..start + rest.len()].copy_from_slice(rest);
    Ok(start + rest.len())
}

impl super::SourceIngress {
    /// `buf` is one of the sender's retransmissions (the source's RTX payload type).
    pub(super) fn is_rtx(&self, buf: &[u8]) -> bool {
        buf.len() >= 2 && Some(buf[1] & 0x7f) == self.config.rtx_payload_type
    }

    /// A retransmission of a number missing: the packet it carries is offered in its stead
    /// (counted as any, and filling its place). Any other (of a packet already here or never
    /// missed, before any stream, too short to carry a number) is offered as is, and dropped
    /// as `rtx`.
    pub(super) fn ingest_rtx(
        &mut self,
        buf: &[u8],
        from: Option<SocketAddr>,
        now: Nanos,
        mut deliver: impl FnMut(&crate::RxPacket, &[u8], Option<&[u8]>),
    ) -> Result<usize, DropReason> {
        let mut scratch = std::mem::take(&mut self.upstream.as_mut().expect("checked").scratch);
        let wanted = RtpHeader::parse(buf).ok().and_then(|h| {
            let osn = h.payload(buf).get(..2)?;
            let osn = u16::from_be_bytes([osn[0], osn[1]]);
            self.upstream.as_ref()?.is_missing(osn).then_some(())
        });
        let rebuilt = match (wanted, self.ssrc(), self.payload_type(now)) {
            (Some(()), Some(ssrc), Some(pt)) => unwrap_rtx(buf, ssrc, pt, &mut scratch).ok(),
            _ => None,
        };
        let result = match rebuilt {
            None => self.accept(buf, from, now).map(|_| 0),
            Some(len) => {
                self.retransmitted = true;
                let r = self.accept(&scratch[..len], from, now);
                self.retransmitted = false;
                r.map(|accepted| match accepted {
                    Some(pkt) => {
                        deliver(&pkt, &scratch[..len], self.prelude_for(&pkt));
                        1
                    }
                    None => 0,
                })
            }
        };
        if let Some(u) = self.upstream.as_mut() {
            u.scratch = scratch;
        }
        result
    }

    /// A packet of the current stream was placed at extended number `seq`, the stream's
    /// highest being `highest` before it: note a gap, or a gap filled.
    pub(super) fn note_sequence(&mut self, highest: u64, seq: u64, now: Nanos) {
        let retransmitted = self.retransmitted;
        let Some(u) = self.upstream.as_mut() else {
            return;
        };
        if seq > highest + 1 {
            u.gap(highest + 1, seq, now);
        } else if seq < highest {
            u.filled(seq, retransmitted);
        }
        self.counters.upstream = u.counters;
    }

    /// The NACK due now to the sender, if any (a source with an RTX payload type only).
    pub fn poll_nack(&mut self, now: Nanos) -> Option<UpstreamNack> {
        let to = self.config.feedback.or(self.latch.sender());
        let (sender_ssrc, media_ssrc) = (self.config.rtcp_ssrc, self.ssrc());
        let u = self.upstream.as_mut()?;
        let nack = u.poll(now, to, sender_ssrc, media_ssrc);
        self.counters.upstream = u.counters;
        nack
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtcp::{packets, RtcpPacket};

    const TO: &str = "192.0.2.1:5004";

    fn ms(ms: u64) -> Nanos {
        Nanos::from_millis(ms)
    }

    fn asked(nack: &UpstreamNack) -> Vec<u16> {
        match packets(nack.bytes()).next() {
            Some(Ok(RtcpPacket::Nack {
                media_ssrc, pairs, ..
            })) => {
                assert_eq!(media_ssrc, Ssrc(7));
                pairs.lost().map(|s| s.0).collect()
            }
            other => panic!("not a NACK: {other:?}"),
        }
    }

    fn poll(u: &mut Upstream, at: u64) -> Option<UpstreamNack> {
        u.poll(ms(at), Some(TO.parse().unwrap()), Ssrc(1), Some(Ssrc(7)))
    }

    #[test]
    fn a_gap_is_asked_for_after_the_reorder_wait_then_retried_then_given_up() {
        let mut u = Upstream::new();
        u.gap(100, 103, ms(0));
        assert_eq!(u.deadline(), Some(REORDER_WAIT));
        assert!(poll(&mut u, 4).is_none(), "reordering may still bring them");
        let first = poll(&mut u, 5).expect("due");
        assert_eq!(asked(&first), [100, 101, 102]);
        assert_eq!(first.to, TO.parse().unwrap());
        // One of them came back; the others are asked for again after RETRY_AFTER.
        u.filled(101, true);
        assert!(poll(&mut u, 44).is_none());
        assert_eq!(asked(&poll(&mut u, 45).unwrap()), [100, 102]);
        assert_eq!(asked(&poll(&mut u, 85).unwrap()), [100, 102]);
        // Three asks each: given up.
        assert!(poll(&mut u, 200).is_none());
        assert_eq!(u.deadline(), None);
        let c = u.counters;
        assert_eq!(
            (c.missing, c.nacks_sent, c.asked, c.repaired, c.given_up),
            (3, 3, 7, 1, 2)
        );
    }

    #[test]
    fn nacks_are_paced_and_old_or_excess_numbers_forgotten() {
        let mut u = Upstream::new();
        u.gap(10, 11, ms(0));
        assert!(poll(&mut u, 5).is_some());
        u.gap(20, 21, ms(6));
        // Due at 11 ms, but the last NACK went at 5: not before 15.
        assert_eq!(u.deadline(), Some(ms(15)));
        assert!(poll(&mut u, 11).is_none());
        assert_eq!(asked(&poll(&mut u, 15).unwrap()), [20]);
        // A jump of 1000 numbers keeps only the newest MAX_MISSING.
        let mut big = Upstream::new();
        big.gap(0, 1000, ms(0));
        assert_eq!(big.missing.len(), MAX_MISSING);
        assert_eq!(
            big.missing.front().map(|m| m.seq),
            Some(1000 - MAX_MISSING as u64)
        );
        // Nothing older than MAX_AGE is asked for.
        let mut old = Upstream::new();
        old.gap(5, 6, ms(0));
        assert!(poll(&mut old, 600).is_none());
        assert_eq!(old.counters.given_up, 1);
        // No address or no stream yet: nothing to send, nothing used up.
        let mut blind = Upstream::new();
        blind.gap(1, 2, ms(0));
        assert!(blind.poll(ms(10), None, Ssrc(1), Some(Ssrc(7))).is_none());
        assert_eq!(blind.counters.asked, 0);
    }

    #[test]
    fn an_rtx_packet_unwraps_to_the_packet_it_carries() {
        // PT 97, seq 9, ts, SSRC 0xdd (the RTX stream's), one CSRC, payload OSN 0x1234 + "abc".
        let mut rtx = vec![0x81, 0x80 | 97, 0, 9, 0, 0, 1, 0, 0, 0, 0, 0xdd, 0, 0, 0, 5];
        rtx.extend_from_slice(&[0x12, 0x34]);
        rtx.extend_from_slice(b"abc");
        let mut out = [0u8; 64];
        let n = unwrap_rtx(&rtx, Ssrc(7), 96, &mut out).unwrap();
        let h = RtpHeader::parse(&out[..n]).unwrap();
        assert_eq!(
            (h.payload_type, h.seq.0, h.ssrc.0, h.marker),
            (96, 0x1234, 7, true)
        );
        assert_eq!(h.payload(&out[..n]), b"abc");
        assert_eq!(&out[12..16], &[0, 0, 0, 5], "the CSRC kept");
        // An RTX payload too short for its OSN is malformed.
        assert_eq!(
            unwrap_rtx(&rtx[..17], Ssrc(7), 96, &mut out),
            Err(DropReason::Malformed)
        );
    }
}

#[cfg(test)]
mod ingress_tests {
    use super::*;
    use crate::source::{IngressConfig, SourceIngress};
    use crate::synth::{VideoShape, Vp8Stream};
    use crate::{Codec, SourceId};

    const SENDER: &str = "192.0.2.7:6000";

    fn packets(n: usize) -> Vec<Vec<u8>> {
        let mut s = Vp8Stream::new(Ssrc(0xabc), 65_530, 0, VideoShape::default());
        (0..n)
            .map(|_| {
                let mut b = Vec::new();
                s.next_packet(&mut b);
                b
            })
            .collect()
    }

    fn as_rtx(p: &[u8], rtx_seq: u16) -> Vec<u8> {
        crate::synth::as_rtx(p, 97, Ssrc(0x5157), rtx_seq)
    }

    fn ingress(rtx: Option<u8>) -> SourceIngress {
        let config = IngressConfig {
            payload_type: Some(96),
            rtx_payload_type: rtx,
            rtcp_ssrc: Ssrc(0x99),
            ..IngressConfig::default()
        };
        SourceIngress::with_config(SourceId(1), Codec::Vp8, 90_000, config)
    }

    /// Offer `buf`; the sequence numbers and bytes delivered.
    fn offer(ing: &mut SourceIngress, buf: &[u8], at: Nanos) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        let from = Some(SENDER.parse().unwrap());
        let _ = ing.ingest(buf, from, at, |pkt, bytes, _| {
            out.push((pkt.header.seq.0, bytes[..pkt.header.len as usize].to_vec()))
        });
        out
    }

    #[test]
    fn a_lost_packet_is_nacked_to_the_sender_and_its_retransmission_fills_the_gap_across_a_wrap() {
        let ps = packets(12);
        let mut ing = ingress(Some(97));
        let lost = [4usize, 5, 9];
        let mut delivered = Vec::new();
        for (i, p) in ps.iter().enumerate() {
            if !lost.contains(&i) {
                delivered.extend(offer(&mut ing, p, Nanos::from_millis(i as u64)));
            }
        }
        // Due once the reorder wait has passed since the last gap showed (at 10 ms).
        let nack = ing.poll_nack(Nanos::from_millis(15)).expect("a NACK");
        assert_eq!(nack.to, SENDER.parse().unwrap());
        let (sender, media, asked) = match crate::rtcp::packets(nack.bytes()).next() {
            Some(Ok(crate::rtcp::RtcpPacket::Nack {
                sender_ssrc,
                media_ssrc,
                pairs,
            })) => (
                sender_ssrc,
                media_ssrc,
                pairs.lost().map(|s| s.0).collect::<Vec<_>>(),
            ),
            other => panic!("{other:?}"),
        };
        assert_eq!((sender, media), (Ssrc(0x99), Ssrc(0xabc)));
        let seq_of = |i: usize| RtpHeader::parse(&ps[i]).unwrap().seq.0;
        assert_eq!(
            asked,
            lost.map(seq_of),
            "65534, 65535 and 3: across the wrap"
        );
        // The sender retransmits two; each is delivered as the very packet it carries.
        for (k, &i) in [4usize, 9].iter().enumerate() {
            let got = offer(
                &mut ing,
                &as_rtx(&ps[i], 100 + k as u16),
                Nanos::from_millis(20),
            );
            assert_eq!(got, [(seq_of(i), ps[i].clone())]);
        }
        // A second copy of one fills nothing (dropped as rtx); the third is asked for again,
        // alone.
        assert!(offer(&mut ing, &as_rtx(&ps[4], 102), Nanos::from_millis(21)).is_empty());
        let again = ing.poll_nack(Nanos::from_millis(60)).expect("a retry");
        assert_eq!(again.bytes().len(), 16, "one pair");
        let c = ing.counters();
        assert_eq!(c.accepted, 11);
        assert_eq!(c.drops.get(DropReason::Rtx), 1);
        assert_eq!(
            c.packets,
            c.accepted + c.drops.total(),
            "every packet accounted for"
        );
        let u = c.upstream;
        assert_eq!((u.missing, u.nacks_sent, u.repaired), (3, 2, 2));
    }

    #[test]
    fn without_an_rtx_payload_type_nothing_is_asked_and_retransmissions_cannot_be_told() {
        let ps = packets(6);
        let mut ing = ingress(None);
        for (i, p) in ps.iter().enumerate().filter(|&(i, _)| i != 2) {
            offer(&mut ing, p, Nanos::from_millis(i as u64));
        }
        assert_eq!(ing.poll_nack(Nanos::from_millis(100)), None);
        assert_eq!(ing.counters().upstream, UpstreamCounters::default());
        // With one, a retransmission before any stream has nothing to fill: dropped as rtx.
        let mut early = ingress(Some(97));
        assert!(offer(&mut early, &as_rtx(&ps[0], 1), Nanos::ZERO).is_empty());
        assert_eq!(early.counters().drops.get(DropReason::Rtx), 1);
    }
}

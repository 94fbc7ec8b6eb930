//! Zero-copy RTCP parsing for packets arriving on an rtcp-mux port (RFC 5761).
//!
//! Everything here borrows from the datagram: parsing never allocates and never panics, whatever
//! the bytes, because this runs on every packet a remote peer chooses to send us. Only the
//! messages the forwarder acts on (SR, RR, PLI, FIR, generic NACK) are parsed into fields; every
//! other packet type is framed and validated as part of the compound and then reported as
//! [`RtcpPacket::Other`].
//!
//! SRTCP must already have been removed: the parser expects the plaintext compound packet.

use std::fmt;
use std::iter::FusedIterator;
use std::marker::PhantomData;

use crate::types::{Nanos, RtpTime, SeqNo, Ssrc};

mod source_clock;
pub use source_clock::{sender_report_of, SourceClock};

/// Sender report (RFC 3550 §6.4.1).
pub const PT_SR: u8 = 200;
/// Receiver report (RFC 3550 §6.4.2).
pub const PT_RR: u8 = 201;
/// Source description (RFC 3550 §6.5).
pub const PT_SDES: u8 = 202;
/// Goodbye (RFC 3550 §6.6).
pub const PT_BYE: u8 = 203;
/// Application-defined (RFC 3550 §6.7).
pub const PT_APP: u8 = 204;
/// Transport-layer feedback (RFC 4585 §6.2).
pub const PT_RTPFB: u8 = 205;
/// Payload-specific feedback (RFC 4585 §6.3).
pub const PT_PSFB: u8 = 206;
/// Extended report (RFC 3611).
pub const PT_XR: u8 = 207;

const HEADER_LEN: usize = 4;
const FMT_NACK: u8 = 1;
const FMT_PLI: u8 = 1;
const FMT_FIR: u8 = 4;

/// Tells RTCP from RTP on a shared port, per RFC 5761 §4.
///
/// The second octet is RTCP when it lies in 192..=223, i.e. marker bit set and RTP payload type
/// 64..=95. That is the whole block RFC 5761 carves out by forbidding RTP payload types 64..=95
/// on a muxed port, not just today's 200..=207: IANA keeps assigning RTCP types inside it (IJ is
/// 195, RSI is 209), and narrowing the test to 200..=207 would hand those to the RTP parser as
/// garbage media rather than to [`packets`], which recognises them as [`RtcpPacket::Other`].
///
/// The version check also rejects STUN and DTLS sharing the port (their first byte is below 128
/// per RFC 7983). Fewer than 4 bytes cannot hold an RTCP header, so they are not RTCP. The
/// header stays in the clear under SRTCP, so this works before decryption.
pub fn is_rtcp(packet: &[u8]) -> bool {
    match packet {
        [b0, b1, _, _, ..] => b0 >> 6 == 2 && (192..=223).contains(b1),
        _ => false,
    }
}

/// Why a compound packet was rejected. Iteration stops at the first one, since RFC 3550 A.2
/// treats a compound that fails validation as suspect as a whole; packets already yielded were
/// well-formed on their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtcpError {
    /// Fewer than the 4 bytes of a common header remain.
    TruncatedHeader {
        /// Bytes left in the datagram.
        remaining: usize,
    },
    /// The version field is not 2.
    BadVersion(u8),
    /// The length field claims more bytes than the datagram has left.
    LengthOverrun {
        /// Bytes the header's length field says the packet has, header included.
        declared: usize,
        /// Bytes left in the datagram.
        remaining: usize,
    },
    /// The padding bit is set on a packet that is not the last one in the compound.
    PaddingNotLast,
    /// The padding count is zero or larger than the packet's payload.
    BadPadding(u8),
    /// The payload is too short for the fixed fields its type and count require.
    BodyTooShort {
        /// The packet type.
        pt: u8,
        /// The header's 5-bit count field.
        count: u8,
    },
    /// A feedback message whose FCI is empty or not a whole number of entries.
    BadFciLength {
        /// The packet type (RTPFB or PSFB).
        pt: u8,
        /// The feedback message type.
        fmt: u8,
        /// FCI bytes present.
        len: usize,
    },
}

impl fmt::Display for RtcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TruncatedHeader { remaining } => {
                write!(f, "rtcp: truncated header ({remaining} bytes)")
            }
            Self::BadVersion(v) => write!(f, "rtcp: version {v}, expected 2"),
            Self::LengthOverrun {
                declared,
                remaining,
            } => {
                write!(f, "rtcp: length {declared} > {remaining} bytes left")
            }
            Self::PaddingNotLast => f.write_str("rtcp: padding on a non-last packet"),
            Self::BadPadding(n) => write!(f, "rtcp: invalid padding count {n}"),
            Self::BodyTooShort { pt, count } => write!(f, "rtcp: pt {pt}/{count}: body too short"),
            Self::BadFciLength { pt, fmt, len } => write!(f, "rtcp: pt {pt}/{fmt}: FCI of {len}"),
        }
    }
}

impl std::error::Error for RtcpError {}

/// A 64-bit NTP timestamp (RFC 3550 §4): seconds since 1900 in the high word, binary fraction in
/// the low word. Kept as wire bits because the peer's wall clock is not comparable to ours; what
/// matters is echoing its middle bits back in LSR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NtpTime(pub u64);

impl NtpTime {
    /// The middle 32 bits, the form a receiver echoes as LSR in its report blocks.
    pub fn compact(self) -> NtpShort {
        NtpShort((self.0 >> 16) as u32)
    }
}

/// 32-bit NTP in 16.16 fixed-point seconds: the LSR and DLSR fields of a report block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NtpShort(pub u32);

impl NtpShort {
    /// As a duration. Meaningful for DLSR, and for differences such as
    /// `arrival - LSR - DLSR` when computing round-trip time.
    pub fn to_nanos(self) -> Nanos {
        // u32::MAX * 10^9 < 2^62, so this cannot overflow.
        Nanos((u64::from(self.0) * 1_000_000_000) >> 16)
    }
}

/// One packet of a compound, borrowing from the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtcpPacket<'a> {
    /// Sender report (RFC 3550 §6.4.1): what a media sender sent, and when by its clock.
    SenderReport {
        /// The sender's SSRC.
        ssrc: Ssrc,
        /// The sender's wall clock when it wrote the report.
        ntp: NtpTime,
        /// The same instant on the stream's RTP clock.
        rtp_ts: RtpTime,
        /// RTP packets sent since the stream began (wraps at 2^32).
        packet_count: u32,
        /// RTP payload bytes sent since the stream began (wraps at 2^32).
        octet_count: u32,
        /// Reception reports on the streams the sender receives.
        reports: ReportBlocks<'a>,
    },
    /// Receiver report (RFC 3550 §6.4.2): reception reports from a participant that sends no
    /// media.
    ReceiverReport {
        /// The reporter's SSRC.
        ssrc: Ssrc,
        /// One block per stream reported on.
        reports: ReportBlocks<'a>,
    },
    /// Picture loss indication (RFC 4585 §6.3.1).
    Pli {
        /// Who asks: the receiver's SSRC.
        sender_ssrc: Ssrc,
        /// The stream that should send a keyframe.
        media_ssrc: Ssrc,
    },
    /// Full intra request (RFC 5104 §4.3.1). The common header's media SSRC is unused by FIR
    /// and not exposed; the targets are in the entries.
    Fir {
        /// Who asks: the receiver's SSRC.
        sender_ssrc: Ssrc,
        /// One per stream that should send a keyframe.
        entries: FirEntries<'a>,
    },
    /// Generic NACK (RFC 4585 §6.2.1).
    Nack {
        /// Who asks: the receiver's SSRC.
        sender_ssrc: Ssrc,
        /// The stream whose packets were lost.
        media_ssrc: Ssrc,
        /// The lost sequence numbers.
        pairs: NackPairs<'a>,
    },
    /// Recognised and framed but not parsed: SDES, BYE, APP, XR, other feedback formats and
    /// unassigned types.
    Other {
        /// The packet type.
        pt: u8,
        /// The header's 5-bit count/FMT field.
        count: u8,
    },
}

mod sealed {
    pub trait Sealed {}
}

/// A fixed-size entry repeated inside an RTCP packet. Sealed, so the entry kinds and their wire
/// sizes stay this module's business.
pub trait Record: Copy + sealed::Sealed {
    /// Bytes one entry occupies on the wire.
    const SIZE: usize;
    #[doc(hidden)]
    fn read(bytes: &[u8]) -> Option<Self>;
}

/// A view over consecutive fixed-size entries, decoded lazily as they are iterated.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Records<'a, T> {
    // Invariant: a whole number of `T::SIZE` entries, established by the parser.
    bytes: &'a [u8],
    _record: PhantomData<T>,
}

/// Report blocks of an SR or RR.
pub type ReportBlocks<'a> = Records<'a, ReportBlock>;
/// Entries of a FIR.
pub type FirEntries<'a> = Records<'a, FirEntry>;
/// PID/BLP pairs of a generic NACK.
pub type NackPairs<'a> = Records<'a, NackPair>;

impl<'a, T: Record> Records<'a, T> {
    fn new(bytes: &'a [u8]) -> Self {
        Records {
            bytes,
            _record: PhantomData,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.bytes.len() / T::SIZE
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Entry `index` (from 0), `None` past the end.
    pub fn get(&self, index: usize) -> Option<T> {
        let start = index.checked_mul(T::SIZE)?;
        T::read(self.bytes.get(start..)?.get(..T::SIZE)?)
    }

    /// The entries in wire order.
    pub fn iter(&self) -> RecordIter<'a, T> {
        RecordIter(*self)
    }

    /// The entries' bytes, borrowed from the datagram: the fuzz target checks they lie inside
    /// the packet that holds them.
    #[cfg(feature = "fuzzing")]
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

impl<'a> Records<'a, NackPair> {
    /// Every sequence number the NACK reports lost, pair by pair in wire order. Overlapping
    /// pairs are not deduplicated: the sender asked twice, and a retransmitter can decide
    /// whether that matters.
    pub fn lost(&self) -> NackLost<'a> {
        NackLost {
            pairs: self.iter(),
            current: LostSeqs::default(),
        }
    }
}

impl<T: Record + fmt::Debug> fmt::Debug for Records<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a, T: Record> IntoIterator for Records<'a, T> {
    type Item = T;
    type IntoIter = RecordIter<'a, T>;
    fn into_iter(self) -> RecordIter<'a, T> {
        self.iter()
    }
}

/// Iterator over the entries of a [`Records`] view.
#[derive(Clone)]
pub struct RecordIter<'a, T>(Records<'a, T>);

impl<T: Record + fmt::Debug> fmt::Debug for RecordIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<T: Record> Iterator for RecordIter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        let (entry, rest) = self.0.bytes.split_at_checked(T::SIZE)?;
        self.0.bytes = rest;
        T::read(entry)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.0.len();
        (n, Some(n))
    }
}

impl<T: Record> ExactSizeIterator for RecordIter<'_, T> {}
impl<T: Record> FusedIterator for RecordIter<'_, T> {}

/// A reception report block (RFC 3550 §6.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: Ssrc,
    /// Loss since the previous report, as a fraction of 256.
    pub fraction_lost: u8,
    /// Sign-extended from 24 bits: duplicates can make it negative.
    pub cumulative_lost: i32,
    /// Extended highest sequence number: wrap count in the high 16 bits. The receiver counts
    /// wraps from its own first packet, so this is not comparable to our `ExtSeq`.
    pub highest_seq: u32,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter: u32,
    /// Middle bits of the NTP time of the last SR received from this source, zero if none.
    pub lsr: NtpShort,
    /// Delay between receiving that SR and sending this block.
    pub dlsr: NtpShort,
}

impl sealed::Sealed for ReportBlock {}
impl Record for ReportBlock {
    const SIZE: usize = 24;

    fn read(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        let ssrc = Ssrc(r.u32()?);
        let [fraction_lost, l0, l1, l2] = r.array()?;
        Some(ReportBlock {
            ssrc,
            fraction_lost,
            // The arithmetic shift carries the 24-bit sign bit down.
            cumulative_lost: i32::from_be_bytes([l0, l1, l2, 0]) >> 8,
            highest_seq: r.u32()?,
            jitter: r.u32()?,
            lsr: NtpShort(r.u32()?),
            dlsr: NtpShort(r.u32()?),
        })
    }
}

/// One FIR entry (RFC 5104 §4.3.1.1): the source to refresh and the request's sequence number,
/// which lets the media sender ignore retransmitted copies of the same request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirEntry {
    /// The stream that should send a keyframe.
    pub ssrc: Ssrc,
    /// The request's sequence number: a repeat of the last one is the same request.
    pub seq_nr: u8,
}

impl sealed::Sealed for FirEntry {}
impl Record for FirEntry {
    const SIZE: usize = 8;

    fn read(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        let ssrc = Ssrc(r.u32()?);
        let seq_nr = r.u8()?;
        // The remaining 24 bits are reserved.
        Some(FirEntry { ssrc, seq_nr })
    }
}

/// One generic NACK entry: packet `pid` is lost, and bit `i` (LSB first) of `blp` marks
/// `pid + i + 1` lost too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NackPair {
    /// The first lost sequence number.
    pub pid: SeqNo,
    /// Bitmask of further losses after `pid`.
    pub blp: u16,
}

impl NackPair {
    /// The lost sequence numbers this pair names, in ascending order modulo 2^16.
    pub fn lost(self) -> LostSeqs {
        LostSeqs {
            pid: self.pid.0,
            // Bit 0 stands for the PID itself, so one mask walk yields all of them.
            mask: 1 | (u32::from(self.blp) << 1),
        }
    }
}

impl sealed::Sealed for NackPair {}
impl Record for NackPair {
    const SIZE: usize = 4;

    fn read(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        Some(NackPair {
            pid: SeqNo(r.u16()?),
            blp: r.u16()?,
        })
    }
}

/// Lost sequence numbers of one [`NackPair`].
#[derive(Clone, Debug, Default)]
pub struct LostSeqs {
    pid: u16,
    mask: u32,
}

impl Iterator for LostSeqs {
    type Item = SeqNo;

    fn next(&mut self) -> Option<SeqNo> {
        if self.mask == 0 {
            return None;
        }
        let offset = self.mask.trailing_zeros();
        self.mask &= self.mask - 1;
        // offset <= 16, so the cast is lossless.
        Some(SeqNo(self.pid.wrapping_add(offset as u16)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.mask.count_ones() as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for LostSeqs {}
impl FusedIterator for LostSeqs {}

/// Lost sequence numbers of every pair in a NACK; see [`Records::lost`].
#[derive(Clone, Debug)]
pub struct NackLost<'a> {
    pairs: RecordIter<'a, NackPair>,
    current: LostSeqs,
}

impl Iterator for NackLost<'_> {
    type Item = SeqNo;

    fn next(&mut self) -> Option<SeqNo> {
        loop {
            if let Some(seq) = self.current.next() {
                return Some(seq);
            }
            self.current = self.pairs.next()?.lost();
        }
    }
}

impl FusedIterator for NackLost<'_> {}

/// Length of a Picture Loss Indication (RFC 4585 §6.3.1): header, sender SSRC, media SSRC.
pub const PLI_LEN: usize = 12;

/// Write a PLI asking the sender of `media_ssrc` for a keyframe, on behalf of `sender_ssrc`.
pub fn write_pli(out: &mut [u8; PLI_LEN], sender_ssrc: Ssrc, media_ssrc: Ssrc) {
    out[0] = 0x80 | FMT_PLI;
    out[1] = PT_PSFB;
    // Length in 32-bit words minus one.
    out[2..4].copy_from_slice(&2u16.to_be_bytes());
    out[4..8].copy_from_slice(&sender_ssrc.0.to_be_bytes());
    out[8..12].copy_from_slice(&media_ssrc.0.to_be_bytes());
}

/// Most lost packets one [`write_nack`] names: 16 pairs, enough for a burst of 272 and far more
/// than the loss a receiver reports at once.
pub const NACK_MAX_PAIRS: usize = 16;

/// Room [`write_nack`] needs: header, two SSRCs and [`NACK_MAX_PAIRS`] pairs.
pub const NACK_MAX_LEN: usize = 12 + 4 * NACK_MAX_PAIRS;

/// Write a generic NACK (RFC 4585 §6.2.1) on behalf of `sender_ssrc` naming `lost`, packets of
/// `media_ssrc` in ascending order (modulo 2^16); returns its length. Numbers that do not fit
/// in [`NACK_MAX_PAIRS`] pairs are left out; `None` when `lost` is empty.
pub fn write_nack(
    out: &mut [u8; NACK_MAX_LEN],
    sender_ssrc: Ssrc,
    media_ssrc: Ssrc,
    lost: impl IntoIterator<Item = SeqNo>,
) -> Option<usize> {
    let mut pairs = 0;
    let mut current: Option<(u16, u16)> = None;
    let put = |out: &mut [u8; NACK_MAX_LEN], pairs: &mut usize, (pid, blp): (u16, u16)| {
        let at = 12 + 4 * *pairs;
        out[at..at + 2].copy_from_slice(&pid.to_be_bytes());
        out[at + 2..at + 4].copy_from_slice(&blp.to_be_bytes());
        *pairs += 1;
    };
    for seq in lost {
        match current {
            Some((pid, blp)) => {
                let offset = seq.0.wrapping_sub(pid);
                if (1..=16).contains(&offset) {
                    current = Some((pid, blp | 1 << (offset - 1)));
                    continue;
                }
                put(out, &mut pairs, (pid, blp));
                if pairs == NACK_MAX_PAIRS {
                    current = None;
                    break;
                }
                current = Some((seq.0, 0));
            }
            None => current = Some((seq.0, 0)),
        }
    }
    if let Some(pair) = current {
        put(out, &mut pairs, pair);
    }
    if pairs == 0 {
        return None;
    }
    out[0] = 0x80 | FMT_NACK;
    out[1] = PT_RTPFB;
    // Length in 32-bit words minus one.
    out[2..4].copy_from_slice(&(2 + pairs as u16).to_be_bytes());
    out[4..8].copy_from_slice(&sender_ssrc.0.to_be_bytes());
    out[8..12].copy_from_slice(&media_ssrc.0.to_be_bytes());
    Some(12 + 4 * pairs)
}

/// Write a sender report (RFC 3550 §6.4.1) with no report blocks: `ssrc` has sent `packets`
/// packets of `octets` payload octets, and `rtp_ts` on its RTP clock is `ntp` on the wall clock.
pub fn write_sender_report(
    out: &mut [u8; 28],
    ssrc: Ssrc,
    ntp: NtpTime,
    rtp_ts: u32,
    packets: u32,
    octets: u32,
) {
    out[0] = 0x80;
    out[1] = PT_SR;
    // Length in 32-bit words minus one.
    out[2..4].copy_from_slice(&6u16.to_be_bytes());
    out[4..8].copy_from_slice(&ssrc.0.to_be_bytes());
    out[8..16].copy_from_slice(&ntp.0.to_be_bytes());
    out[16..20].copy_from_slice(&rtp_ts.to_be_bytes());
    out[20..24].copy_from_slice(&packets.to_be_bytes());
    out[24..28].copy_from_slice(&octets.to_be_bytes());
}

/// Iterates the packets of a compound RTCP datagram.
///
/// Yields each packet in order; on the first malformed one it yields a single error and then
/// ends. An empty buffer yields nothing. The compound-level rule that the first packet be an SR
/// or RR is not enforced, because reduced-size RTCP (RFC 5506, common in WebRTC) sends feedback
/// alone.
pub fn packets(buf: &[u8]) -> RtcpIter<'_> {
    RtcpIter { rest: buf }
}

/// Iterator returned by [`packets`].
#[derive(Clone, Debug)]
pub struct RtcpIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for RtcpIter<'a> {
    type Item = Result<RtcpPacket<'a>, RtcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match next_packet(self.rest) {
            Ok((packet, rest)) => {
                self.rest = rest;
                Some(Ok(packet))
            }
            Err(e) => {
                // Past a bad header the framing is lost, and past a bad body RFC 3550 A.2
                // holds the whole compound suspect; either way, stop here.
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

impl FusedIterator for RtcpIter<'_> {}

fn next_packet(buf: &[u8]) -> Result<(RtcpPacket<'_>, &[u8]), RtcpError> {
    let Some((&[b0, pt, l0, l1], after_header)) = buf.split_first_chunk::<HEADER_LEN>() else {
        return Err(RtcpError::TruncatedHeader {
            remaining: buf.len(),
        });
    };
    let version = b0 >> 6;
    if version != 2 {
        return Err(RtcpError::BadVersion(version));
    }
    let padded = b0 & 0x20 != 0;
    let count = b0 & 0x1f;
    // The length field counts the words after the header, padding included.
    let body_len = usize::from(u16::from_be_bytes([l0, l1])) * 4;
    let Some((mut body, rest)) = after_header.split_at_checked(body_len) else {
        return Err(RtcpError::LengthOverrun {
            declared: HEADER_LEN + body_len,
            remaining: buf.len(),
        });
    };
    if padded {
        // RFC 3550 §6.4.1 allows padding only on the last packet of a compound.
        if !rest.is_empty() {
            return Err(RtcpError::PaddingNotLast);
        }
        // The last octet counts the padding, itself included. Like libwebrtc we do not insist
        // on a multiple of four: the fields we read are bounds-checked either way.
        let pad = body.last().copied().unwrap_or(0);
        body = body
            .len()
            .checked_sub(usize::from(pad))
            .filter(|_| pad != 0)
            .and_then(|unpadded| body.get(..unpadded))
            .ok_or(RtcpError::BadPadding(pad))?;
    }
    let packet = parse_body(pt, count, body)?;
    Ok((packet, rest))
}

fn parse_body(pt: u8, count: u8, body: &[u8]) -> Result<RtcpPacket<'_>, RtcpError> {
    let too_short = RtcpError::BodyTooShort { pt, count };
    match (pt, count) {
        (PT_SR, _) => sender_report(count, body).ok_or(too_short),
        (PT_RR, _) => receiver_report(count, body).ok_or(too_short),
        (PT_PSFB, FMT_PLI) => {
            // RFC 4585 gives PLI no FCI; anything after the SSRCs is ignored rather than
            // rejected, as a future extension would not change what we do.
            let (sender_ssrc, media_ssrc, _) = feedback_header(body).ok_or(too_short)?;
            Ok(RtcpPacket::Pli {
                sender_ssrc,
                media_ssrc,
            })
        }
        (PT_PSFB, FMT_FIR) => {
            let (sender_ssrc, _, fci) = feedback_header(body).ok_or(too_short)?;
            Ok(RtcpPacket::Fir {
                sender_ssrc,
                entries: fci_records(pt, count, fci)?,
            })
        }
        (PT_RTPFB, FMT_NACK) => {
            let (sender_ssrc, media_ssrc, fci) = feedback_header(body).ok_or(too_short)?;
            Ok(RtcpPacket::Nack {
                sender_ssrc,
                media_ssrc,
                pairs: fci_records(pt, count, fci)?,
            })
        }
        _ => Ok(RtcpPacket::Other { pt, count }),
    }
}

fn sender_report(count: u8, body: &[u8]) -> Option<RtcpPacket<'_>> {
    let mut r = Reader(body);
    Some(RtcpPacket::SenderReport {
        ssrc: Ssrc(r.u32()?),
        ntp: NtpTime(r.u64()?),
        rtp_ts: RtpTime(r.u32()?),
        packet_count: r.u32()?,
        octet_count: r.u32()?,
        // Bytes after the blocks are profile-specific extensions, which we do not use.
        reports: report_blocks(&mut r, count)?,
    })
}

fn receiver_report(count: u8, body: &[u8]) -> Option<RtcpPacket<'_>> {
    let mut r = Reader(body);
    Some(RtcpPacket::ReceiverReport {
        ssrc: Ssrc(r.u32()?),
        reports: report_blocks(&mut r, count)?,
    })
}

fn report_blocks<'a>(r: &mut Reader<'a>, count: u8) -> Option<ReportBlocks<'a>> {
    r.take(usize::from(count) * ReportBlock::SIZE)
        .map(Records::new)
}

/// Splits the RFC 4585 §6.1 common feedback header off a feedback message's payload.
fn feedback_header(body: &[u8]) -> Option<(Ssrc, Ssrc, &[u8])> {
    let mut r = Reader(body);
    Some((Ssrc(r.u32()?), Ssrc(r.u32()?), r.0))
}

/// FIR and generic NACK both require one or more whole entries (RFC 5104 §4.3.1.1,
/// RFC 4585 §6.2.1); a ragged tail means we are misreading the message.
fn fci_records<T: Record>(pt: u8, fmt: u8, fci: &[u8]) -> Result<Records<'_, T>, RtcpError> {
    if fci.is_empty() || fci.len().checked_rem(T::SIZE) != Some(0) {
        return Err(RtcpError::BadFciLength {
            pt,
            fmt,
            len: fci.len(),
        });
    }
    Ok(Records::new(fci))
}

/// Big-endian reads that fail instead of panicking when the bytes run out.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, tail) = self.0.split_first_chunk::<N>()?;
        self.0 = tail;
        Some(*head)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.0.split_at_checked(n)?;
        self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.array().map(|[b]| b)
    }

    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }
}

#[cfg(test)]
mod tests;

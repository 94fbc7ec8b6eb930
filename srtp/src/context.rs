//! [`SrtpContext`]: one direction of one viewer's SRTP/SRTCP, with per-SSRC rollover counters,
//! SRTCP indices and replay windows in a table sized once, at construction.

use crate::cipher::{Half, RtpCipher, SessionKeys, E_FLAG};
use crate::replay::ReplayWindow;
use crate::{Error, Profile};

/// Highest 48-bit SRTP packet index.
const MAX_INDEX: u64 = (1 << 48) - 1;
/// Highest 31-bit SRTCP index.
const MAX_SRTCP_INDEX: u32 = (1 << 31) - 1;

/// What the context remembers per SSRC.
#[derive(Debug, Clone)]
struct Stream {
    ssrc: u32,
    /// SRTP indices accepted (unprotect) or sent (protect: only `highest` is used).
    rtp: ReplayWindow,
    /// SRTCP indices accepted.
    rtcp: ReplayWindow,
    /// The next SRTCP index this side sends.
    next_srtcp_index: u32,
}

impl Stream {
    fn new(ssrc: u32) -> Self {
        Stream {
            ssrc,
            rtp: ReplayWindow::default(),
            rtcp: ReplayWindow::default(),
            next_srtcp_index: 0,
        }
    }
}

/// The SRTP/SRTCP state of one direction of one peer: the session keys derived from one side's
/// DTLS-SRTP keying material, and per-SSRC counters. A viewer has two: one that protects what
/// the shard sends (server write key) and one that unprotects what the browser sends (client
/// write key).
///
/// Every operation works on caller-owned memory and never allocates; the SSRC table holds at
/// most `max_ssrcs` streams (a viewer has two or three) and is scanned linearly, which beats a
/// map at that size.
pub struct SrtpContext {
    profile: Profile,
    /// `None` for a context made with [`SrtpContext::new_rtcp_only`]. A few words inline: the
    /// GCM key is aws-lc-rs's pointer to its own heap context, AES-CM's keys are boxed.
    rtp: Option<RtpCipher>,
    /// Expanded per SRTCP packet: a context's RTCP is a few packets a second, and a cipher
    /// kept expanded would be 560 octets per context.
    rtcp: SessionKeys,
    streams: Vec<Stream>,
    max_ssrcs: usize,
}

impl std::fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of logs.
        f.debug_struct("SrtpContext")
            .field("profile", &self.profile)
            .field("ssrcs", &self.streams.len())
            .finish_non_exhaustive()
    }
}

impl SrtpContext {
    /// A context from one side's master key and salt (as DTLS-SRTP exports them, RFC 5764
    /// §4.2), deriving the session keys with RFC 3711 §4.3 at key derivation rate 0. It tracks up
    /// to `max_ssrcs` SSRCs; the table is allocated here, once.
    pub fn new(
        profile: Profile,
        master_key: &[u8],
        master_salt: &[u8],
        max_ssrcs: usize,
    ) -> Result<Self, Error> {
        check_len(profile.key_len(), master_key.len())?;
        check_len(profile.salt_len(), master_salt.len())?;
        Ok(Self::with_ciphers(
            profile,
            Some(RtpCipher::derive(
                profile,
                master_key,
                master_salt,
                Half::Rtp,
            )),
            SessionKeys::derive(profile, master_key, master_salt, Half::Rtcp),
            max_ssrcs,
        ))
    }

    /// Like [`SrtpContext::new`] but for SRTCP alone: the SRTP session keys are not derived,
    /// and SRTP through it fails with [`Error::NoRtpKeys`]. For a direction that carries no
    /// media, such as what a WebRTC viewer sends: this saves one SRTP cipher per viewer (for
    /// GCM, aws-lc-rs's key context: about 600 octets of heap).
    pub fn new_rtcp_only(
        profile: Profile,
        master_key: &[u8],
        master_salt: &[u8],
        max_ssrcs: usize,
    ) -> Result<Self, Error> {
        check_len(profile.key_len(), master_key.len())?;
        check_len(profile.salt_len(), master_salt.len())?;
        Ok(Self::with_ciphers(
            profile,
            None,
            SessionKeys::derive(profile, master_key, master_salt, Half::Rtcp),
            max_ssrcs,
        ))
    }

    /// A context from session keys directly, skipping key derivation: the same key, salt (and,
    /// for AES-CM, 20-octet authentication key) for SRTP and SRTCP. For test vectors stated
    /// that way (RFC 7714 §16-17); DTLS-SRTP callers use [`SrtpContext::new`].
    pub fn from_session_keys(
        profile: Profile,
        key: &[u8],
        salt: &[u8],
        auth_key: &[u8],
        max_ssrcs: usize,
    ) -> Result<Self, Error> {
        check_len(profile.key_len(), key.len())?;
        check_len(profile.salt_len(), salt.len())?;
        if !profile.is_aead() {
            check_len(20, auth_key.len())?;
        }
        Ok(Self::with_ciphers(
            profile,
            Some(RtpCipher::new(profile, key, salt, auth_key)),
            SessionKeys::given(profile, key, salt, auth_key),
            max_ssrcs,
        ))
    }

    fn with_ciphers(
        profile: Profile,
        rtp: Option<RtpCipher>,
        rtcp: SessionKeys,
        max_ssrcs: usize,
    ) -> Self {
        SrtpContext {
            profile,
            rtp,
            rtcp,
            streams: Vec::with_capacity(max_ssrcs),
            max_ssrcs,
        }
    }

    /// Start loading this context's own cache lines (its SRTP cipher among them), reading
    /// nothing from it: a loop over many contexts issues every miss without waiting on any. A
    /// hint, with no effect on what any call computes.
    pub fn prefetch_context(&self) {
        crate::prefetch::prefetch(self);
    }

    /// Start loading the per-SSRC state [`SrtpContext::protect_rtp`] reads. This reads the
    /// context to find it, so it waits for the context's line: call it a few contexts after
    /// [`SrtpContext::prefetch_context`]. With GCM the expanded key itself sits behind
    /// aws-lc-rs's own heap pointer, which neither can reach.
    pub fn prefetch_rtp(&self) {
        crate::prefetch::prefetch(self.streams.as_slice());
    }

    /// The profile this context was keyed for.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// Protect one RTP packet given as pieces (the shard's rewritten header, extensions, codec
    /// prefix and the shared payload), writing header + ciphertext + tag into `out` (the send
    /// batch's memory): the only copy of the packet this copy makes. Returns the octets written.
    ///
    /// The packet index is this sender's own: the sequence number extended by the rollover
    /// counter, which advances when the sequence number wraps past the highest sent (RFC 3711
    /// §3.3.1), so retransmissions of older packets keep their index.
    pub fn protect_rtp(&mut self, parts: &[&[u8]], out: &mut [u8]) -> Result<usize, Error> {
        if self.rtp.is_none() {
            return Err(Error::NoRtpKeys);
        }
        let packet = lay_out_rtp(parts, out, self.profile.rtp_overhead())?;
        let (ssrc, seq) = (packet.ssrc, packet.seq);
        let at = self.stream(ssrc)?;
        let index = match self.streams[at].rtp.highest() {
            Some(highest) => estimate_index(highest, seq),
            None => u64::from(seq),
        };
        if index > MAX_INDEX {
            return Err(Error::IndexExhausted);
        }
        self.streams[at].rtp.accept(index);
        match &self.rtp {
            Some(rtp) => Ok(packet.seal(rtp, out, index)),
            None => Err(Error::NoRtpKeys),
        }
    }

    /// Like [`SrtpContext::protect_rtp`] with the 48-bit packet index given by the caller
    /// (`ROC << 16 | seq`), for a sender that keeps its own extended sequence numbers. The low
    /// 16 bits must equal the header's sequence number.
    pub fn protect_rtp_with_index(
        &mut self,
        parts: &[&[u8]],
        index: u64,
        out: &mut [u8],
    ) -> Result<usize, Error> {
        if self.rtp.is_none() {
            return Err(Error::NoRtpKeys);
        }
        let packet = lay_out_rtp(parts, out, self.profile.rtp_overhead())?;
        let (ssrc, seq) = (packet.ssrc, packet.seq);
        if index > MAX_INDEX {
            return Err(Error::IndexExhausted);
        }
        if index as u16 != seq {
            return Err(Error::Malformed);
        }
        let at = self.stream(ssrc)?;
        self.streams[at].rtp.accept(index);
        match &self.rtp {
            Some(rtp) => Ok(packet.seal(rtp, out, index)),
            None => Err(Error::NoRtpKeys),
        }
    }

    /// Verify, replay-check and decrypt one SRTP packet in place. Returns the length of the
    /// plaintext RTP packet now at the start of `buf`. On error `buf` may hold garbage and the
    /// context is unchanged: no state moves for a packet that did not authenticate.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let Some(rtp) = &self.rtp else {
            return Err(Error::NoRtpKeys);
        };
        let header_len = rtp_header_len(buf)?;
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let found = self.find(ssrc);
        let index = match found.and_then(|at| self.streams[at].rtp.highest()) {
            Some(highest) => estimate_index(highest, seq),
            // The first packet of an SSRC starts at ROC 0 (RFC 3711 §3.3.1).
            None => u64::from(seq),
        };
        if let Some(at) = found {
            self.streams[at].rtp.check(index)?;
        } else if self.streams.len() == self.max_ssrcs {
            return Err(Error::TooManySsrcs);
        }
        let len = rtp.open_rtp(buf, header_len, ssrc, index)?;
        let at = self.stream(ssrc)?;
        self.streams[at].rtp.accept(index);
        Ok(len)
    }

    /// Protect one RTCP (compound) packet given as pieces into `out`, with this sender's next
    /// SRTCP index for the first packet's SSRC and the E flag set. Returns the octets written.
    pub fn protect_rtcp(&mut self, parts: &[&[u8]], out: &mut [u8]) -> Result<usize, Error> {
        let len = gather(parts, out, self.profile.rtcp_overhead())?;
        if len < 8 || out[0] >> 6 != 2 {
            return Err(if len < 8 {
                Error::TooShort
            } else {
                Error::Malformed
            });
        }
        let ssrc = u32::from_be_bytes([out[4], out[5], out[6], out[7]]);
        let at = self.stream(ssrc)?;
        let index = self.streams[at].next_srtcp_index;
        if index > MAX_SRTCP_INDEX {
            return Err(Error::IndexExhausted);
        }
        self.streams[at].next_srtcp_index = index + 1;
        Ok(self.rtcp.cipher().seal_rtcp(out, len, ssrc, index))
    }

    /// Verify, replay-check and (when its E flag says so) decrypt one SRTCP packet in place.
    /// Returns the length of the plaintext RTCP packet now at the start of `buf`.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        if buf.len() < 8 + self.profile.rtcp_overhead() {
            return Err(Error::TooShort);
        }
        if buf[0] >> 6 != 2 {
            return Err(Error::Malformed);
        }
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let at = self.rtcp.rtcp_trailer_at(buf.len());
        let word = u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        let index = u64::from(word & !E_FLAG);
        match self.find(ssrc) {
            Some(at) => self.streams[at].rtcp.check(index)?,
            None if self.streams.len() == self.max_ssrcs => return Err(Error::TooManySsrcs),
            None => {}
        }
        let len = self.rtcp.cipher().open_rtcp(buf, ssrc, word)?;
        let at = self.stream(ssrc)?;
        self.streams[at].rtcp.accept(index);
        Ok(len)
    }

    /// Set the SRTCP index the next [`SrtpContext::protect_rtcp`] for `ssrc` uses (to continue a
    /// stream across contexts, or to reproduce a test vector).
    pub fn set_next_srtcp_index(&mut self, ssrc: u32, index: u32) -> Result<(), Error> {
        if index > MAX_SRTCP_INDEX {
            return Err(Error::IndexExhausted);
        }
        let at = self.stream(ssrc)?;
        self.streams[at].next_srtcp_index = index;
        Ok(())
    }

    /// The rollover counter of `ssrc`'s highest packet index so far, if it has one.
    pub fn roc(&self, ssrc: u32) -> Option<u32> {
        let at = self.find(ssrc)?;
        self.streams[at]
            .rtp
            .highest()
            .map(|index| (index >> 16) as u32)
    }

    fn find(&self, ssrc: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.ssrc == ssrc)
    }

    /// The stream of `ssrc`, added if new and there is room (never beyond the capacity reserved
    /// at construction, so this never allocates).
    fn stream(&mut self, ssrc: u32) -> Result<usize, Error> {
        if let Some(at) = self.find(ssrc) {
            return Ok(at);
        }
        if self.streams.len() == self.max_ssrcs {
            return Err(Error::TooManySsrcs);
        }
        self.streams.push(Stream::new(ssrc));
        Ok(self.streams.len() - 1)
    }
}

fn check_len(expected: usize, got: usize) -> Result<(), Error> {
    if expected == got {
        Ok(())
    } else {
        Err(Error::KeyLength { expected, got })
    }
}

/// RFC 3711 §3.3.1 (Appendix A): the index of `seq` given the highest index so far: the
/// rollover counter of whichever of ROC-1, ROC, ROC+1 puts it nearest the highest.
fn estimate_index(highest: u64, seq: u16) -> u64 {
    let roc = highest >> 16;
    let s_l = highest as u16;
    let v = if s_l < 0x8000 {
        if seq > s_l && seq - s_l > 0x8000 {
            roc.wrapping_sub(1)
        } else {
            roc
        }
    } else if s_l - 0x8000 > seq {
        roc + 1
    } else {
        roc
    };
    // Before the first wrap, ROC-1 does not exist: such a packet is older than the stream.
    if v == u64::MAX {
        return u64::from(seq);
    }
    (v << 16) | u64::from(seq)
}

/// Copy `parts` into `out`, leaving `overhead` octets of room after them; returns the length.
fn gather(parts: &[&[u8]], out: &mut [u8], overhead: usize) -> Result<usize, Error> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if out.len() < len + overhead {
        return Err(Error::BufferTooSmall {
            needed: len + overhead,
        });
    }
    let mut at = 0;
    for part in parts {
        out[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    Ok(len)
}

/// An RTP packet laid out in the output buffer up to `split`, the rest of its payload still
/// where the caller holds it.
struct LaidOut<'a> {
    header_len: usize,
    split: usize,
    tail: &'a [u8],
    ssrc: u32,
    seq: u16,
}

impl LaidOut<'_> {
    fn seal(&self, cipher: &RtpCipher, out: &mut [u8], index: u64) -> usize {
        cipher.seal_rtp(
            out,
            self.header_len,
            self.split,
            self.tail,
            self.ssrc,
            index,
        )
    }
}

/// Copy `parts` into `out`, all but the last when the last is payload only (the shard's shared
/// payload: the cipher then reads it from where it lies, and writes it to `out` once, encrypted),
/// leaving room for the packet and `overhead` octets after it.
fn lay_out_rtp<'a>(
    parts: &[&'a [u8]],
    out: &mut [u8],
    overhead: usize,
) -> Result<LaidOut<'a>, Error> {
    let (tail, head) = match parts.split_last() {
        Some((tail, head)) => (*tail, head),
        None => (&[][..], parts),
    };
    let split = gather(head, out, overhead + tail.len())?;
    let header_len = match rtp_header_len(&out[..split]) {
        Ok(len) => len,
        // The header runs into the last part: gather that too.
        Err(_) => {
            out[split..split + tail.len()].copy_from_slice(tail);
            let len = split + tail.len();
            let header_len = rtp_header_len(&out[..len])?;
            return Ok(LaidOut {
                header_len,
                split: len,
                tail: &[],
                ssrc: u32::from_be_bytes([out[8], out[9], out[10], out[11]]),
                seq: u16::from_be_bytes([out[2], out[3]]),
            });
        }
    };
    Ok(LaidOut {
        header_len,
        split,
        tail,
        ssrc: u32::from_be_bytes([out[8], out[9], out[10], out[11]]),
        seq: u16::from_be_bytes([out[2], out[3]]),
    })
}

/// Length of the RTP header at the start of `packet`: fixed part, CSRCs and extension. SRTP
/// encrypts only what follows it.
fn rtp_header_len(packet: &[u8]) -> Result<usize, Error> {
    if packet.len() < 12 {
        return Err(Error::TooShort);
    }
    if packet[0] >> 6 != 2 {
        return Err(Error::Malformed);
    }
    let mut len = 12 + 4 * usize::from(packet[0] & 0x0f);
    if packet[0] & 0x10 != 0 {
        if packet.len() < len + 4 {
            return Err(Error::Malformed);
        }
        len += 4 + 4 * usize::from(u16::from_be_bytes([packet[len + 2], packet[len + 3]]));
    }
    if packet.len() < len {
        return Err(Error::Malformed);
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_estimation_follows_rfc_3711_appendix_a() {
        assert_eq!(estimate_index(0xfffe, 0xffff), 0xffff);
        assert_eq!(
            estimate_index(0xffff, 0x0000),
            0x1_0000,
            "wrap moves to ROC+1"
        );
        assert_eq!(
            estimate_index(0x1_0002, 0xfffd),
            0xfffd,
            "late packet of the previous ROC"
        );
        assert_eq!(
            estimate_index(0x5, 0xfff0),
            0xfff0,
            "no ROC-1 before the first wrap"
        );
        assert_eq!(estimate_index(0x3_8000, 0x0001), 0x3_0001);
    }

    #[test]
    fn a_context_stays_small_for_every_profile() {
        // Two per viewer, so this is memory per viewer (issue 13: at most 4 KiB beyond a plain
        // subscriber in all). The SRTP half is a few words (aws-lc-rs keeps the GCM key on its
        // own heap, once per context); the SRTCP half is its session keys, expanded per packet.
        let size = std::mem::size_of::<SrtpContext>();
        assert!(size <= 160, "SrtpContext is {size} octets inline");
        assert!(std::mem::size_of::<Stream>() <= 80);
    }
}

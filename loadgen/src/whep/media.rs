//! What a receiving thread does with a viewer's datagram before verification (RFC 7983 demux):
//! SRTP is unprotected in place and goes on to the [`Verifier`](crate::Verifier); STUN
//! answers to consent checks, late DTLS records and SRTCP are counted and left out; a packet
//! that does not unprotect is a drop by reason, never a panic.

use std::collections::BTreeMap;
use std::ops::AddAssign;

use corecast_engine::rtcp;
use corecast_srtp::SrtpContext;
use serde::Serialize;

use super::dtls::looks_like_dtls;
use super::stun::looks_like_stun;

/// The WebRTC-only counts of a run (summed over viewers).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WebrtcCounts {
    /// SRTP packets unprotected and handed to verification.
    pub srtp_opened: u64,
    /// SRTP that did not unprotect, by reason (`bad_tag`, `replayed`, ...).
    pub unprotect_dropped: BTreeMap<String, u64>,
    /// RTP whose SSRC is not the answer's `a=ssrc` (verified all the same).
    pub ssrc_not_answered: u64,
    /// STUN datagrams after the join (answers to consent checks).
    pub stun_ignored: u64,
    /// DTLS records after the join (retransmissions).
    pub dtls_ignored: u64,
    /// SRTCP from the node (not verified).
    pub srtcp_ignored: u64,
    /// Anything else (first byte outside RFC 7983's ranges).
    pub unknown: u64,
}

impl WebrtcCounts {
    pub fn unprotect_drops(&self) -> u64 {
        self.unprotect_dropped.values().sum()
    }
}

impl AddAssign<&WebrtcCounts> for WebrtcCounts {
    fn add_assign(&mut self, o: &WebrtcCounts) {
        self.srtp_opened += o.srtp_opened;
        for (k, v) in &o.unprotect_dropped {
            *self.unprotect_dropped.entry(k.clone()).or_default() += v;
        }
        self.ssrc_not_answered += o.ssrc_not_answered;
        self.stun_ignored += o.stun_ignored;
        self.dtls_ignored += o.dtls_ignored;
        self.srtcp_ignored += o.srtcp_ignored;
        self.unknown += o.unknown;
    }
}

/// One viewer's receiving side.
pub struct ViewerMedia {
    srtp: SrtpContext,
    ssrc: u32,
    pub counts: WebrtcCounts,
}

impl std::fmt::Debug for ViewerMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewerMedia")
            .field("ssrc", &self.ssrc)
            .finish_non_exhaustive()
    }
}

impl ViewerMedia {
    /// `srtp` opens what the node sends; `ssrc` is the answer's.
    pub fn new(srtp: SrtpContext, ssrc: u32) -> ViewerMedia {
        ViewerMedia {
            srtp,
            ssrc,
            counts: WebrtcCounts::default(),
        }
    }

    /// Unprotect `buf` in place if it is SRTP; the plain RTP's length to verify, or `None`
    /// when it was something else (counted).
    pub fn open(&mut self, buf: &mut [u8]) -> Option<usize> {
        let Some(&first) = buf.first() else {
            self.counts.unknown += 1;
            return None;
        };
        if looks_like_stun(buf) {
            self.counts.stun_ignored += 1;
            return None;
        }
        if looks_like_dtls(buf) {
            self.counts.dtls_ignored += 1;
            return None;
        }
        if !(128..=191).contains(&first) {
            self.counts.unknown += 1;
            return None;
        }
        if rtcp::is_rtcp(buf) {
            self.counts.srtcp_ignored += 1;
            return None;
        }
        match self.srtp.unprotect_rtp(buf) {
            Ok(len) => {
                self.counts.srtp_opened += 1;
                if buf.len() >= 12
                    && u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]) != self.ssrc
                {
                    self.counts.ssrc_not_answered += 1;
                }
                Some(len)
            }
            Err(e) => {
                *self
                    .counts
                    .unprotect_dropped
                    .entry(e.reason().to_string())
                    .or_default() += 1;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use corecast_srtp::Profile;

    use super::*;

    fn pair() -> (SrtpContext, ViewerMedia) {
        let key = [7u8; 16];
        let salt = [9u8; 12];
        let node = SrtpContext::new(Profile::AeadAes128Gcm, &key, &salt, 4).unwrap();
        let viewer = SrtpContext::new(Profile::AeadAes128Gcm, &key, &salt, 4).unwrap();
        (node, ViewerMedia::new(viewer, 0x0102_0304))
    }

    fn sealed(node: &mut SrtpContext, seq: u16, ssrc: u32) -> Vec<u8> {
        let mut rtp = vec![0x80, 96];
        rtp.extend(seq.to_be_bytes());
        rtp.extend(1000u32.to_be_bytes());
        rtp.extend(ssrc.to_be_bytes());
        rtp.extend([0xab; 100]);
        let mut out = vec![0u8; rtp.len() + 32];
        let n = node.protect_rtp(&[&rtp], &mut out).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn srtp_opens_and_everything_else_is_counted_by_kind() {
        let (mut node, mut v) = pair();
        let mut p = sealed(&mut node, 1, 0x0102_0304);
        assert_eq!(v.open(&mut p), Some(112));
        assert_eq!(&p[12..112], &[0xab; 100][..]);
        let mut replay = sealed(&mut node, 2, 0x0102_0304);
        let mut again = replay.clone();
        assert!(v.open(&mut replay).is_some());
        assert_eq!(v.open(&mut again), None, "a replay is dropped");
        let mut bad = sealed(&mut node, 3, 0x0102_0304);
        let last = bad.len() - 1;
        bad[last] ^= 0x40;
        assert_eq!(v.open(&mut bad), None);
        let mut other_ssrc = sealed(&mut node, 4, 99);
        assert!(v.open(&mut other_ssrc).is_some());
        assert_eq!(v.open(&mut [0, 1, 0, 0][..].to_vec()), None);
        assert_eq!(v.open(&mut [22, 254, 253][..].to_vec()), None);
        assert_eq!(
            v.open(&mut [0x80, 200, 0, 1, 0, 0, 0, 0][..].to_vec()),
            None
        );
        assert_eq!(v.open(&mut Vec::new()), None);
        assert_eq!(v.open(&mut [0xff; 30][..].to_vec()), None);
        let c = &v.counts;
        assert_eq!(c.srtp_opened, 3);
        assert_eq!(c.unprotect_dropped.get("replayed"), Some(&1), "{c:?}");
        assert_eq!(c.unprotect_dropped.get("bad_tag"), Some(&1), "{c:?}");
        assert_eq!(c.ssrc_not_answered, 1);
        assert_eq!(
            (c.stun_ignored, c.dtls_ignored, c.srtcp_ignored, c.unknown),
            (1, 1, 1, 2)
        );
    }
}

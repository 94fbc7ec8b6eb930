//! The WebRTC side of a shard: its viewers' ICE-lite agent, their SRTP contexts, and the demux
//! of what arrives on the shard's socket (RFC 7983: STUN, DTLS, SRTP/SRTCP, plain RTCP).
//!
//! A viewer's tracks are ordinary tracks of the engine's flat slice, spliced like any other;
//! only the last step differs: each copy is encrypted with the viewer's outbound context straight
//! into memory this module owns (an arena allocated once, a batch's copies one after the other),
//! and the datagram is that one buffer instead of the iovecs into the shared payload. STUN
//! checks are answered here, on the shard, because they must come from the socket the media
//! comes from; DTLS handshakes are not (they cost milliseconds of CPU each), so their datagrams
//! go to the handshake thread.

use std::collections::HashMap;
use std::net::SocketAddr;

use corecast_engine::{Nanos, TrackId, Transmit};
use corecast_srtp::SrtpContext;
use corecast_webrtc::ice::{Credentials, IceConfig, IceEvent, IceLite, ViewerKey};

use super::forward::Copied;
use super::rtx::{RtxHead, RtxState, RtxStream};
use crate::pool::SLOT_BYTES;

/// Room for one sealed copy: the largest packet or prelude the pool holds, and the SRTP tag.
const SEALED_SLOT: usize = SLOT_BYTES + 32;
/// Sealed copies start on a cache line: the kernel copies each from its start.
const SEAL_ALIGN: usize = 64;
/// What the arena reserves per copy it can take: the largest sealed copy, rounded up to a line.
const SEALED_STRIDE: usize = SEALED_SLOT.div_ceil(SEAL_ALIGN) * SEAL_ALIGN;
/// How many viewers' contexts are asked for ahead of their per-SSRC state: about a cache miss
/// (100 ns or so) of the lookups in between.
const PREFETCH_LAG: usize = 4;

/// What kind of datagram arrived on the shard's socket (RFC 7983 §7, by its first byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    Stun,
    Dtls,
    /// RTP or RTCP, plain or secured: told apart by the sender and the packet type.
    Rtp,
    Other,
}

impl Arrival {
    pub fn of(bytes: &[u8]) -> Arrival {
        match bytes.first() {
            Some(0..=3) => Arrival::Stun,
            Some(20..=63) => Arrival::Dtls,
            Some(128..=191) => Arrival::Rtp,
            _ => Arrival::Other,
        }
    }
}

/// A viewer's keys, as the handshake thread made them, with where its tracks go.
pub struct ViewerKeys {
    /// Protects what the shard sends the viewer.
    pub outbound: SrtpContext,
    /// Unprotects the viewer's SRTCP.
    pub inbound: SrtpContext,
}

struct Secured {
    keys: ViewerKeys,
    tracks: Vec<TrackId>,
}

/// Counters of the shard's WebRTC work; they never go backwards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ViewerIo {
    pub stun_answered: u64,
    /// STUN the agent refused (bad credentials, integrity, fingerprint, malformed).
    pub stun_dropped: u64,
    /// DTLS records handed to the handshake thread.
    pub dtls_forwarded: u64,
    /// DTLS from an address no check passed from, or that found the handshake queue full.
    pub dtls_dropped: u64,
    pub srtcp_in: u64,
    /// SRTCP that failed to unprotect (bad tag, replay, unknown SSRC), or RTP from a viewer.
    pub srtcp_dropped: u64,
    /// Copies that could not be protected (counted by the engine as send failures too).
    pub srtp_failed: u64,
    /// Datagrams on the shard socket that are none of STUN, DTLS, RTP or RTCP.
    pub unknown_dropped: u64,
    /// Resends sent as RFC 4588 retransmissions (also counted in the shard's resends).
    pub rtx_sent: u64,
}

/// Where one sealed copy lies in the seal arena.
#[derive(Clone, Copy)]
struct SealedSpan {
    at: u32,
    len: u16,
}

/// What one batch of transmits becomes: per entry, `None` for a plain copy sent from the shared
/// payload, `Some` for a sealed copy in the seal arena, and which entries could not be
/// protected.
pub struct Sealed<'a> {
    spans: &'a [Option<SealedSpan>],
    failed: &'a [bool],
    arena: &'a [u8],
}

impl<'a> Sealed<'a> {
    /// The sealed bytes of entry `i`, if it was sealed.
    pub fn bytes(&self, i: usize) -> Option<&'a [u8]> {
        let span = self.spans[i]?;
        let at = span.at as usize;
        Some(&self.arena[at..at + usize::from(span.len)])
    }

    /// Entry `i` could not be protected and is not to be sent.
    pub fn failed(&self, i: usize) -> bool {
        self.failed[i]
    }
}

pub struct Viewers {
    ice: IceLite,
    /// Boxed: a viewer's SRTP contexts are about 300 octets inline (and aws-lc-rs's key on its
    /// own heap), and a map's spare capacity (up to half its buckets after growing) would hold that much per
    /// empty bucket.
    secured: HashMap<ViewerKey, Box<Secured>>,
    /// The viewer each secured track belongs to: looked up per copy, only while there are any.
    track_viewer: HashMap<TrackId, ViewerKey>,
    /// The retransmission streams of the secured tracks that negotiated RTX.
    rtx: HashMap<TrackId, RtxState>,
    stun_response: Vec<u8>,
    /// Where one sealed RTCP packet (a sender report) is written.
    rtcp_out: Box<[u8]>,
    /// Where a batch's copies are sealed, one after the other (each on a cache line), so a
    /// batch's ciphertexts are as compact as their lengths allow: written by the seal and read
    /// by the kernel's copy soon after, from as few lines and pages as they fill.
    arena: Box<[u8]>,
    spans: Box<[Option<SealedSpan>]>,
    /// The secured viewer of each entry of the batch being sealed, if it goes to one.
    viewer_of: Box<[Option<ViewerKey>]>,
    /// Entries of the batch that failed to seal and are not to be sent.
    failed: Box<[bool]>,
    pub io: ViewerIo,
}

impl Viewers {
    /// Copies one [`Viewers::seal`] takes at most: room for that many of the largest sealed
    /// copies is allocated once, and touched as viewers need it.
    pub fn capacity(&self) -> usize {
        self.spans.len()
    }

    pub fn new(batch_size: usize, ice: IceConfig) -> Viewers {
        Viewers {
            ice: IceLite::new(ice),
            secured: HashMap::new(),
            track_viewer: HashMap::new(),
            rtx: HashMap::new(),
            stun_response: Vec::with_capacity(256),
            rtcp_out: vec![0; 256].into_boxed_slice(),
            arena: vec![0; batch_size * SEALED_STRIDE].into_boxed_slice(),
            spans: vec![None; batch_size].into_boxed_slice(),
            viewer_of: vec![None; batch_size].into_boxed_slice(),
            failed: vec![false; batch_size].into_boxed_slice(),
            io: ViewerIo::default(),
        }
    }

    /// A viewer the control thread admitted: its checks are answered from now on.
    pub fn expect(
        &mut self,
        viewer: ViewerKey,
        local: Credentials,
        remote_ufrag: String,
        now: Nanos,
    ) {
        if let Err(e) = self.ice.add(viewer, local, &remote_ufrag, now) {
            tracing::warn!(viewer = viewer.0, "viewer not added to ICE: {e}");
        }
    }

    /// The viewer's handshake finished: its tracks (already in the engine) are sealed with
    /// `keys` from now on.
    /// `rtx`: the tracks whose resends go as RFC 4588 retransmissions, each numbered from a
    /// random first sequence number.
    pub fn secure(
        &mut self,
        viewer: ViewerKey,
        keys: ViewerKeys,
        tracks: Vec<TrackId>,
        rtx: Vec<(TrackId, RtxStream)>,
    ) {
        if let Some(old) = self.secured.remove(&viewer) {
            for t in old.tracks {
                self.track_viewer.remove(&t);
                self.rtx.remove(&t);
            }
        }
        for &t in &tracks {
            self.track_viewer.insert(t, viewer);
        }
        for (t, stream) in rtx.into_iter().filter(|(t, _)| tracks.contains(t)) {
            self.rtx
                .insert(t, RtxState::new(stream, rand::random::<u16>()));
        }
        self.secured
            .insert(viewer, Box::new(Secured { keys, tracks }));
    }

    /// Forget the viewer: its checks are no longer answered, its keys are dropped. Its tracks
    /// are the engine's to remove.
    pub fn remove(&mut self, viewer: ViewerKey) {
        self.ice.remove(viewer);
        if let Some(s) = self.secured.remove(&viewer) {
            for t in s.tracks {
                self.track_viewer.remove(&t);
                self.rtx.remove(&t);
            }
        }
    }

    /// Check a STUN request from `from`; the response to send back, if it passed.
    pub fn handle_stun(&mut self, bytes: &[u8], from: SocketAddr, now: Nanos) -> Option<&[u8]> {
        match self
            .ice
            .handle_stun(bytes, from, now, &mut self.stun_response)
        {
            Ok(_) => {
                self.io.stun_answered += 1;
                Some(&self.stun_response)
            }
            Err(why) => {
                self.io.stun_dropped += 1;
                tracing::trace!(%from, "stun dropped: {}", why.reason());
                None
            }
        }
    }

    /// The viewer whose checks passed from `from`, if any: its DTLS goes to the handshake thread.
    pub fn viewer_at(&self, from: SocketAddr) -> Option<ViewerKey> {
        self.ice.viewer_at(from)
    }

    /// Unprotect SRTCP from `from` in place; the plain RTCP's length if it is a secured
    /// viewer's and authentic.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8], from: SocketAddr) -> Option<usize> {
        let viewer = self.ice.viewer_at(from)?;
        let Some(s) = self.secured.get_mut(&viewer) else {
            self.io.srtcp_dropped += 1;
            return None;
        };
        match s.keys.inbound.unprotect_rtcp(buf) {
            Ok(len) => {
                self.io.srtcp_in += 1;
                Some(len)
            }
            Err(e) => {
                self.io.srtcp_dropped += 1;
                tracing::trace!(viewer = viewer.0, "srtcp dropped: {}", e.reason());
                None
            }
        }
    }

    /// Whether `from` is a viewer's (its datagrams are not plain RTCP).
    pub fn is_viewer(&self, from: SocketAddr) -> bool {
        self.ice.viewer_at(from).is_some()
    }

    /// Whether any viewer of the shard has keys: only then do copies need [`Viewers::seal`].
    pub fn has_secured(&self) -> bool {
        !self.track_viewer.is_empty()
    }

    /// Seal the copies in `batch` (at most [`Viewers::capacity`]) that go to secured viewers,
    /// one after the other into the seal arena.
    /// Plain copies are left alone. `resends`: the copies answer NACKs, and go to a track that
    /// negotiated RTX as RFC 4588 retransmissions on its retransmission stream.
    pub fn seal(&mut self, batch: &[Transmit], copied: Copied<'_>, resends: bool) -> Sealed<'_> {
        let n = batch.len();
        self.spans[..n].fill(None);
        self.failed[..n].fill(false);
        // First each run's viewer, looked up once (a subscriber's copies of a run are
        // consecutive), with its keys asked for: a viewer's keys were last used a frame ago and
        // are long out of the cache, and asking for all of the batch's at once lets their misses
        // overlap, where sealing straight away would wait on each viewer's in turn. The context
        // is asked for first; its per-SSRC state, which takes a read of the context to find,
        // PREFETCH_LAG viewers later, when that line has had time to arrive.
        let mut previous: Option<(TrackId, Option<ViewerKey>)> = None;
        let mut asked: [Option<&Secured>; PREFETCH_LAG] = [None; PREFETCH_LAG];
        let mut runs = 0;
        for (i, t) in batch.iter().enumerate() {
            let viewer = match previous {
                Some((track, viewer)) if track == t.track => viewer,
                _ => {
                    let viewer = self.track_viewer.get(&t.track).copied();
                    if let Some(s) = viewer.and_then(|v| self.secured.get(&v)) {
                        s.keys.outbound.prefetch_context();
                        if let Some(earlier) = asked[runs % PREFETCH_LAG].replace(s) {
                            earlier.keys.outbound.prefetch_rtp();
                        }
                        runs += 1;
                    }
                    previous = Some((t.track, viewer));
                    viewer
                }
            };
            self.viewer_of[i] = viewer;
        }
        for s in asked.iter().flatten() {
            s.keys.outbound.prefetch_rtp();
        }
        let Viewers {
            secured,
            rtx: rtx_streams,
            arena,
            spans,
            failed,
            viewer_of,
            io,
            ..
        } = self;
        let mut at = 0;
        let mut current: Option<(ViewerKey, &mut Secured)> = None;
        for (i, t) in batch.iter().enumerate() {
            let Some(viewer) = viewer_of[i] else {
                continue;
            };
            if current.as_ref().map(|(v, _)| *v) != Some(viewer) {
                current = secured.get_mut(&viewer).map(|s| (viewer, &mut **s));
            }
            let Some((_, s)) = current.as_mut() else {
                continue;
            };
            let (pkt, buf) = copied.of(t);
            // Each sealed copy takes at most a stride, and the arena has one per entry.
            let out = &mut arena[at..at + SEALED_SLOT];
            let mut head: RtxHead = [0; 14];
            // Only resends look for a retransmission stream: a forwarded copy pays no lookup.
            let rtx = if resends {
                rtx_streams.get_mut(&t.track)
            } else {
                None
            };
            let as_rtx = rtx.is_some();
            let sealed = match rtx {
                Some(rtx) => {
                    let parts = rtx.packet(t.segments(pkt, buf), &mut head);
                    s.keys.outbound.protect_rtp(&parts, out)
                }
                None => s.keys.outbound.protect_rtp(&t.segments(pkt, buf), out),
            };
            match sealed {
                Ok(len) => {
                    spans[i] = Some(SealedSpan {
                        at: at as u32,
                        len: len as u16,
                    });
                    at += len.div_ceil(SEAL_ALIGN) * SEAL_ALIGN;
                    if as_rtx {
                        io.rtx_sent += 1;
                    }
                }
                Err(e) => {
                    failed[i] = true;
                    io.srtp_failed += 1;
                    tracing::debug!(viewer = viewer.0, "srtp protect failed: {}", e.reason());
                }
            }
        }
        Sealed {
            spans: &self.spans[..n],
            failed: &self.failed[..n],
            arena: &self.arena,
        }
    }

    /// `track` is a WHEP viewer's (whose RTCP is sealed and goes to its media port).
    pub fn is_viewer_track(&self, track: TrackId) -> bool {
        self.track_viewer.contains_key(&track)
    }

    /// `report` (RTCP about `track`) sealed with its viewer's outbound context; `None` for a
    /// track of no secured viewer, or when it cannot be protected (counted).
    pub fn seal_rtcp(&mut self, track: TrackId, report: &[u8]) -> Option<&[u8]> {
        let viewer = self.track_viewer.get(&track)?;
        let s = self.secured.get_mut(viewer)?;
        match s.keys.outbound.protect_rtcp(&[report], &mut self.rtcp_out) {
            Ok(len) => Some(&self.rtcp_out[..len]),
            Err(e) => {
                self.io.srtp_failed += 1;
                tracing::debug!(viewer = viewer.0, "srtcp protect failed: {}", e.reason());
                None
            }
        }
    }

    /// STUN checks answered and refused, by reason.
    pub fn ice_counters(&self) -> corecast_webrtc::ice::IceCounters {
        self.ice.counters()
    }

    /// The next ICE deadline (consent, connect).
    pub fn poll_timeout(&self) -> Option<Nanos> {
        self.ice.poll_timeout()
    }

    pub fn handle_timeout(&mut self, now: Nanos) {
        self.ice.handle_timeout(now);
    }

    pub fn poll_event(&mut self) -> Option<IceEvent> {
        self.ice.poll_event()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secured_viewer_costs_its_keys_and_little_more() {
        // The maps hold a pointer per viewer, so their spare buckets cost octets, not keys.
        assert!(std::mem::size_of::<(ViewerKey, Box<Secured>)>() <= 16);
        // Two contexts whose SRTCP keys are kept unexpanded (70 octets, not a 560-octet
        // cipher each), the outbound one's SRTP cipher a few words (its GCM key on the heap).
        let secured = std::mem::size_of::<Secured>();
        assert!(secured <= 2 * 160 + 32, "Secured is {secured} octets");
    }

    /// One packet accepted by a source, as the shard's queue holds it.
    fn one_packet() -> (corecast_engine::RxPacket, Vec<u8>) {
        use corecast_engine::{
            Codec, IngressConfig, RtpTime, SeqNo, SourceId, SourceIngress, Ssrc,
        };
        let mut buf = Vec::new();
        let (ssrc, seq, ts) = (Ssrc(0x5eed), SeqNo(7), RtpTime(9000));
        corecast_engine::synth::write_rtp(&mut buf, ssrc, 96, seq, ts, true, &[0xab; 1100]);
        let config = IngressConfig {
            probation: 1,
            ..IngressConfig::default()
        };
        let mut source = SourceIngress::with_config(SourceId(1), Codec::Opus, 48_000, config);
        let pkt = source
            .accept(&buf, None, Nanos(0))
            .unwrap()
            .expect("accepted");
        (pkt, buf)
    }

    /// A copy of the packet for `track`, with its own SSRC.
    fn copy_for(track: u32, ssrc: u32, buf: &[u8]) -> Transmit {
        let mut head = [0; std::mem::size_of::<corecast_engine::splicer::OutHead>()];
        head[..12].copy_from_slice(&buf[..12]);
        head[8..12].copy_from_slice(&ssrc.to_be_bytes());
        Transmit {
            dest: SocketAddr::from(([127, 0, 0, 1], 5000 + track as u16)),
            track: TrackId(track),
            head,
            prelude: false,
            run_index: 0,
        }
    }

    fn keys(byte: u8, max_ssrcs: usize) -> SrtpContext {
        let profile = corecast_srtp::Profile::AeadAes256Gcm;
        SrtpContext::from_session_keys(profile, &[byte; 32], &[byte; 12], &[], max_ssrcs).unwrap()
    }

    #[test]
    fn each_viewers_copies_are_sealed_with_its_own_keys_and_plain_ones_left_alone() {
        let (pkt, buf) = one_packet();
        let mut viewers = Viewers::new(8, IceConfig::default());
        let (a, b) = (ViewerKey(1), ViewerKey(2));
        let viewer = |byte, max_ssrcs| ViewerKeys {
            outbound: keys(byte, max_ssrcs),
            inbound: keys(byte, max_ssrcs),
        };
        viewers.secure(a, viewer(0xa1, 4), vec![TrackId(1)], Vec::new());
        // B may send one SSRC: its second track's copy cannot be protected.
        viewers.secure(b, viewer(0xb2, 1), vec![TrackId(3), TrackId(4)], Vec::new());
        // A's run, a plain subscriber's copy, B's copy, B's other track, then A again (runs of
        // one viewer need not be contiguous in a batch).
        let batch = [
            copy_for(1, 0xa, &buf),
            copy_for(1, 0xa, &buf),
            copy_for(2, 0xc, &buf),
            copy_for(3, 0xb, &buf),
            copy_for(4, 0xbb, &buf),
            copy_for(1, 0xa, &buf),
        ];
        let sealed = viewers.seal(&batch, Copied::One(&pkt, &buf), false);
        let mut seen = Vec::new();
        for (i, t) in batch.iter().enumerate() {
            let plain = t.to_vec(&pkt, &buf);
            match (t.track.0, sealed.bytes(i)) {
                (2, None) => assert!(!sealed.failed(i), "a plain copy is sent as it is"),
                (4, None) => assert!(sealed.failed(i), "B's second SSRC is refused"),
                (track, Some(bytes)) => {
                    assert!(!sealed.failed(i));
                    // A fresh receiver per copy: A's three copies carry one sequence number,
                    // which one receiver's replay check would refuse twice.
                    let mut open = keys(if track == 1 { 0xa1 } else { 0xb2 }, 4);
                    let mut copy = bytes.to_vec();
                    let len = open.unprotect_rtp(&mut copy).expect("opens with its keys");
                    assert_eq!(copy[..len], plain[..], "entry {i}");
                    seen.push(bytes.as_ptr() as usize);
                }
                (track, None) => panic!("entry {i} (track {track}) was not sealed"),
            }
        }
        assert_eq!(seen.len(), 4);
        // Sealed copies lie one after the other in the arena, each on its own cache line.
        for pair in seen.windows(2) {
            assert!(pair[1] >= pair[0] + buf.len() + 16, "copies overlap");
            assert_eq!((pair[1] - pair[0]) % SEAL_ALIGN, 0);
        }
        assert_eq!((viewers.io.srtp_failed, viewers.io.rtx_sent), (1, 0));
    }

    #[test]
    fn datagrams_are_told_apart_by_their_first_byte_as_rfc_7983_says() {
        for (first, kind) in [
            (0u8, Arrival::Stun),
            (3, Arrival::Stun),
            (4, Arrival::Other),
            (19, Arrival::Other),
            (20, Arrival::Dtls),
            (63, Arrival::Dtls),
            (64, Arrival::Other),
            (127, Arrival::Other),
            (128, Arrival::Rtp),
            (191, Arrival::Rtp),
            (192, Arrival::Other),
            (255, Arrival::Other),
        ] {
            assert_eq!(Arrival::of(&[first, 0, 0, 0]), kind, "first byte {first}");
        }
        assert_eq!(Arrival::of(&[]), Arrival::Other);
    }
}

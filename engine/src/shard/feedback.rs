//! Subscribers' RTCP: a shard is handed a datagram from a subscriber's address and finds the
//! track it is about by the track's output SSRC (the shard's own index, kept with its tracks).
//!
//! A PLI, or a FIR entry, naming a track's SSRC is taken only from that track's subscriber
//! ([`is_subscribers_address`]); then a keyframe of the track's source is wanted
//! ([`super::ShardEvent::KeyframeWanted`], coalesced per source) and `keyframe_requests` counts
//! it. From any other address it is ignored and counted as `rtcp_wrong_sender`, so a third party
//! cannot make sources send keyframes. SSRCs no track sends with are not feedback at all.

use std::net::SocketAddr;

use super::Shard;
use crate::rtcp::{self, RtcpPacket};
use crate::types::{Nanos, Ssrc};

impl<H> Shard<H> {
    /// One RTCP datagram from `from` (`None`: the I/O layer could not tell, and it is taken from
    /// no one), received at `now`. Allocates nothing; malformed RTCP ends the datagram's reading.
    pub fn handle_rtcp(&mut self, bytes: &[u8], from: Option<SocketAddr>, now: Nanos) {
        for packet in rtcp::packets(bytes).flatten() {
            match packet {
                RtcpPacket::Pli { media_ssrc, .. } => self.keyframe_asked(media_ssrc, from, now),
                RtcpPacket::Fir { entries, .. } => {
                    for entry in entries {
                        self.keyframe_asked(entry.ssrc, from, now);
                    }
                }
                RtcpPacket::Nack {
                    media_ssrc, pairs, ..
                } => self.nack_received(media_ssrc, pairs, from, now),
                RtcpPacket::ReceiverReport { reports, .. }
                | RtcpPacket::SenderReport { reports, .. } => {
                    for block in reports {
                        self.reception_reported(&block, from, now);
                    }
                }
                _ => {}
            }
        }
    }

    fn keyframe_asked(&mut self, ssrc: Ssrc, from: Option<SocketAddr>, now: Nanos) {
        let Some(slot) = self
            .by_ssrc
            .get(&ssrc)
            .and_then(|&id| self.table.slot_of(id))
        else {
            return;
        };
        let track = &self.table.tracks[slot];
        if !from.is_some_and(|from| is_subscribers_address(from, track.dest)) {
            self.counters.rtcp_wrong_sender += 1;
            return;
        }
        // A track parked for its replay is on the source it replays (as `TrackInfo` says).
        let replayed = self.replay_of(track.id).map(|r| r.source);
        let Some(source) = track.source.or(replayed) else {
            return;
        };
        self.counters.keyframe_requests += 1;
        if let Some(g) = self.table.group_of(source) {
            self.want_keyframe(g, now);
        }
    }
}

/// Whether RTCP from `from` speaks for the subscriber that receives media at `dest`: the same IP,
/// and the media port (rtcp-mux) or the one after it, where RTP receivers without rtcp-mux
/// (ffmpeg, GStreamer's rtpbin) send RTCP by the RFC 3550 §11 convention.
pub fn is_subscribers_address(from: SocketAddr, dest: SocketAddr) -> bool {
    from.ip().to_canonical() == dest.ip().to_canonical()
        && (from.port() == dest.port() || Some(from.port()) == dest.port().checked_add(1))
}

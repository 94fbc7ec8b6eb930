//! WHEP viewers: a subscriber admitted with an SDP offer for a channel, whose tracks (a video
//! and an audio one, as the channel has) start on its shard once its DTLS handshake is done.
//!
//! The life of one: the offer is negotiated against what the channel's sources send and
//! answered with ICE-lite credentials, the node's fingerprint and the shard socket as the one host
//! candidate; the shard answers its STUN checks and hands its DTLS to the handshake thread; the
//! keys come back here ([`ControlState::viewer_secured`]) and go to the shard with the tracks in
//! one command. It ends by `DELETE`, a failed handshake, or consent that stops (the shard says).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use corecast_engine::{Codec, RtpTime, SeqNo, SourceId, Ssrc, TrackConfig, TrackId};
use corecast_webrtc::dtls::SrtpKeys;

use crate::shard::RtxStream;
use corecast_webrtc::ice::{Credentials, ViewerKey};
use rand::distr::{Alphanumeric, SampleString};
use rand::Rng;

use corecast_signaling::api::{SwitchOutcome as ApiSwitchOutcome, SwitchView};

use super::error::{Conflict, NodeError, Unavailable, What};
use super::switches::{SwitchCause, SwitchPlan};
use super::topology::{ChannelId, SubEntry};
use super::ControlState;
use crate::events::EventType;
use crate::shard::ShardCommand;
use crate::webrtc::{handshake::viewer_keys, whep, HandshakeInput};

/// One track a viewer will get once secured.
#[derive(Clone, Debug)]
pub struct ViewerTrack {
    pub id: TrackId,
    pub ssrc: Ssrc,
    pub codec: Codec,
    /// The offer's payload type for the codec (WHEP answers with the offer's numbers).
    pub payload_type: u8,
    pub source: SourceId,
    /// Its retransmission stream, when the offer had RTX for it and the node keeps histories
    /// (resends then go as RFC 4588 packets of their own SSRC instead of at their own number).
    pub rtx: Option<RtxStream>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ViewerState {
    /// Answered; waiting for ICE and DTLS.
    Connecting,
    /// Keys agreed; its tracks are on the shard.
    Connected,
}

pub(crate) struct ViewerEntry {
    pub channel: ChannelId,
    pub shard: usize,
    pub state: ViewerState,
    /// Where ICE last said its media goes (`None` before its first nominated check).
    pub addr: Option<SocketAddr>,
    pub tracks: Vec<ViewerTrack>,
    /// The viewer's own ufrag: a `PATCH` with another asks for an ICE restart.
    pub remote_ufrag: String,
    /// Names the session for `PATCH`'s `If-Match`: its local ufrag, quoted.
    pub etag: String,
    pub created: Instant,
}

/// A viewer admitted: what `POST /v1/channels/{id}/whep` answers.
pub struct Admitted {
    pub id: TrackId,
    pub answer: String,
    pub etag: String,
}

impl ControlState {
    /// Admit a viewer of `channel` with `offer`; the answer it gets.
    pub(crate) fn create_viewer(
        &mut self,
        channel: ChannelId,
        offer: &str,
    ) -> Result<Admitted, NodeError> {
        let Some((fingerprint, handshakes)) = self
            .settings
            .webrtc
            .as_ref()
            .map(|w| (w.fingerprint.clone(), w.handshakes.clone()))
        else {
            return Err(Unavailable::NoWebrtc.into());
        };
        let entry = self
            .channels
            .get(&channel)
            .ok_or(NodeError::NotFound(What::Channel(channel)))?;
        let (video_source, audio_source) = (entry.video, entry.audio);
        if self.subscriber_count() >= self.settings.max_subscribers {
            return Err(NodeError::TooManySubscribers {
                asked: self.subscriber_count() + 1,
                limit: self.settings.max_subscribers,
            });
        }
        let video = video_source
            .and_then(|id| Some((id, self.sources.get(&id)?)))
            .map(|(id, s)| whep::SentVideo {
                codec: s.codec,
                parameter_sets: self.known_parameter_sets(id, s),
            });
        let audio = audio_source
            .and_then(|id| self.sources.get(&id))
            .map(|s| s.codec);
        let negotiated = whep::negotiate(offer, video.as_ref(), audio)
            .map_err(|e| NodeError::BadRequest(format!("the SDP offer: {e}")))?;
        let shard = self.place(1)[0];
        let mut needs = vec![0; self.shards.len()];
        needs[shard] = 1;
        self.make_room(&needs, 0)?;
        let ids: Vec<TrackId> = self.next_subscriber_ids(negotiated.tracks.len()).collect();
        let mut tracks = Vec::new();
        for (t, &id) in negotiated.tracks.iter().zip(&ids) {
            let source = if t.codec.is_audio() {
                audio_source
            } else {
                video_source
            };
            let source = source.expect("negotiate answers only kinds the channel has");
            let rtx = t
                .rtx_payload_type
                .filter(|_| self.settings.history)
                .map(|payload_type| RtxStream {
                    payload_type,
                    ssrc: self.unused_ssrc(),
                });
            tracks.push(ViewerTrack {
                id,
                ssrc: self.unused_ssrc(),
                codec: t.codec,
                payload_type: t.payload_type,
                source,
                rtx,
            });
        }
        let id = ids[0];
        let ice = Credentials {
            ufrag: Alphanumeric.sample_string(&mut self.rng, 8),
            pwd: Alphanumeric.sample_string(&mut self.rng, 24),
        };
        let candidate = self.candidate(shard);
        let answer = whep::answer(&negotiated, &ice, &fingerprint, candidate, &tracks, id);
        let expect = HandshakeInput::Expect {
            viewer: ViewerKey(u64::from(id.0)),
            shard,
            remote: negotiated.fingerprint.clone(),
        };
        if handshakes.try_send(expect).is_err() {
            for t in &tracks {
                self.free_ssrc(t.ssrc);
                if let Some(r) = t.rtx {
                    self.free_ssrc(r.ssrc);
                }
            }
            return Err(Unavailable::HandshakesBusy.into());
        }
        self.send_shard(
            shard,
            ShardCommand::ExpectViewer {
                viewer: ViewerKey(u64::from(id.0)),
                local: ice.clone(),
                remote_ufrag: negotiated.remote_ufrag.clone(),
            },
        )?;
        self.take_subscriber_ids(ids.len());
        self.shard_load[shard] += 1;
        let etag = format!("\"{}\"", ice.ufrag);
        let data = serde_json::json!({
            "transport": "webrtc",
            "channel": channel.0,
            "shard": shard,
            "tracks": tracks.len(),
        });
        self.emit(EventType::SubscriberAdded, None, Some(id), data);
        self.viewers.insert(
            id,
            ViewerEntry {
                channel,
                shard,
                state: ViewerState::Connecting,
                addr: None,
                tracks,
                remote_ufrag: negotiated.remote_ufrag.clone(),
                etag: etag.clone(),
                created: Instant::now(),
            },
        );
        Ok(Admitted { id, answer, etag })
    }

    /// Subscribers and viewers together, as `--max-subscribers` counts them.
    pub(crate) fn subscriber_count(&self) -> usize {
        self.subs.values().filter(|s| s.viewer.is_none()).count() + self.viewers.len()
    }

    /// The host candidate of `shard`: its socket, with `--public-ip` as the address when set
    /// (and loopback when the socket is bound to every address, which is no address to give).
    fn candidate(&self, shard: usize) -> SocketAddr {
        let bound = self.shards[shard].media_from;
        let ip = match self.settings.webrtc.as_ref().and_then(|w| w.public_ip) {
            Some(ip) => ip,
            None if bound.ip().is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            None => bound.ip(),
        };
        SocketAddr::new(ip, bound.port())
    }

    /// The handshake thread agreed `keys` with viewer `key`, whose records came from `peer`:
    /// its tracks start on its shard, sealed with them.
    pub(crate) fn viewer_secured(
        &mut self,
        key: ViewerKey,
        keys: SrtpKeys,
        peer: Option<SocketAddr>,
    ) {
        let id = TrackId(key.0 as u32);
        let Some(v) = self.viewers.get(&id) else {
            return;
        };
        if v.state == ViewerState::Connected {
            return;
        }
        let Some(dest) = v.addr.or(peer) else {
            return;
        };
        let sealed = viewer_keys(&keys);
        let (shard, tracks) = (v.shard, v.tracks.clone());
        let mut configs = Vec::new();
        for t in &tracks {
            // A source deleted since the answer leaves that track out.
            if !self.sources.contains_key(&t.source) {
                continue;
            }
            configs.push((
                TrackConfig {
                    id: t.id,
                    dest,
                    ssrc: t.ssrc,
                    payload_type: t.payload_type,
                    first_seq: SeqNo(self.rng.random()),
                    first_ts: RtpTime(self.rng.random()),
                },
                t.source,
            ));
        }
        let rtx = tracks.iter().filter_map(|t| Some((t.id, t.rtx?))).collect();
        let command = ShardCommand::SecureViewer {
            viewer: key,
            keys: Box::new(sealed),
            tracks: configs.clone(),
            rtx,
        };
        if let Err(e) = self.send_shard(shard, command) {
            tracing::warn!(viewer = id.0, "viewer not started: {e}");
            self.remove_viewer(id, "shard_busy");
            return;
        }
        for (config, source) in &configs {
            let codec = self.sources[source].codec;
            self.use_source(shard, *source);
            self.subs.insert(
                config.id,
                SubEntry {
                    ssrc: config.ssrc,
                    shard,
                    codec,
                    source: Some(*source),
                    pending: None,
                    requested_at: None,
                    switches_unanswered: 0,
                    dest,
                    switches: 0,
                    viewer: Some(id),
                    home: None,
                },
            );
            if !codec.is_audio() {
                self.request_keyframe(*source);
            }
        }
        if let Some(v) = self.viewers.get_mut(&id) {
            v.state = ViewerState::Connected;
            v.addr = Some(dest);
            let data = serde_json::json!({
                "addr": dest.to_string(),
                "profile": format!("{:?}", keys.profile()),
                "after_ms": v.created.elapsed().as_millis() as u64,
            });
            self.emit(EventType::ViewerConnected, None, Some(id), data);
        }
    }

    /// A WHEP `PATCH` with a trickle ICE fragment. ICE-lite learns the viewer's addresses from
    /// its checks, so its candidates are not needed; the fragment is checked (parsed, the
    /// session's ETag, no ICE restart) and otherwise accepted.
    pub(crate) fn patch_viewer(
        &mut self,
        id: TrackId,
        if_match: Option<&str>,
        fragment: &str,
    ) -> Result<(), NodeError> {
        let v = self
            .viewers
            .get(&id)
            .ok_or(NodeError::NotFound(What::Viewer(id)))?;
        if let Some(tag) = if_match.map(str::trim) {
            if tag != "*" && tag != v.etag {
                return Err(NodeError::PreconditionFailed(format!(
                    "If-Match {tag} is not viewer {}'s session (its ETag is {})",
                    id.0, v.etag
                )));
            }
        }
        let fragment = corecast_webrtc::sdp::TrickleFragment::parse(fragment)
            .map_err(|e| NodeError::BadRequest(format!("the trickle ICE fragment: {e}")))?;
        if fragment
            .ufrag
            .as_ref()
            .is_some_and(|u| *u != v.remote_ufrag)
        {
            return Err(NodeError::BadRequest(
                "ICE restart is not supported: end this viewer and make a new offer".into(),
            ));
        }
        Ok(())
    }

    /// Switch viewer `id` to `channel`: each of its tracks to the channel's source of its kind
    /// (video at that source's keyframe, as any switch; audio at once). A channel without a kind
    /// the viewer receives leaves that track where it is.
    pub(crate) fn switch_viewer(
        &mut self,
        id: TrackId,
        channel: ChannelId,
    ) -> Result<SwitchView, NodeError> {
        let c = self
            .channels
            .get(&channel)
            .ok_or(NodeError::NotFound(What::Channel(channel)))?;
        let (video, audio) = (c.video, c.audio);
        let v = self
            .viewers
            .get(&id)
            .ok_or(NodeError::NotFound(What::Viewer(id)))?;
        let plan: Vec<(usize, TrackId, SourceId)> = v
            .tracks
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let to = if t.codec.is_audio() { audio } else { video }?;
                Some((i, t.id, to))
            })
            .collect();
        if plan.is_empty() {
            return Err(NodeError::BadRequest(format!(
                "channel {} has no source of a kind viewer {} receives",
                channel.0, id.0
            )));
        }
        // Every track must be able to take its new source before any is switched.
        for &(i, _, to) in &plan {
            let target = self
                .sources
                .get(&to)
                .ok_or(NodeError::NotFound(What::Source(to)))?;
            if target.codec != v.tracks[i].codec {
                return Err(Conflict::Codec {
                    subscriber: id,
                    receives: v.tracks[i].codec,
                    source: to,
                    is: target.codec,
                }
                .into());
            }
        }
        let connected = v.state == ViewerState::Connected;
        let mut view = None;
        if connected {
            // Video leads, audio follows it: one command, so the shard moves the audio at the
            // new channel's first audio packet after the video's keyframe.
            let mut sends = Vec::new();
            for &(_, track, to) in &plan {
                match self.plan_switch(track, to)? {
                    SwitchPlan::Unchanged(v) => {
                        self.forget_home(track);
                        view = view.or(Some(v));
                    }
                    SwitchPlan::Send { shard } => sends.push((shard, track, to)),
                }
            }
            match sends[..] {
                [] => {}
                [(shard, track, to)] => self.send_shard(shard, ShardCommand::Switch(track, to))?,
                [(shard, lead, lead_to), (_, follower, follower_to), ..] => self.send_shard(
                    shard,
                    ShardCommand::SwitchTogether {
                        lead: (lead, lead_to),
                        follower: (follower, follower_to),
                    },
                )?,
            }
            for &(_, track, to) in &sends {
                let v = self.record_switch(track, to, SwitchCause::Request);
                view = view.or(Some(v));
            }
        } else if let Some(v) = self.viewers.get_mut(&id) {
            // Not on the shard yet: its tracks will start on the new sources.
            for &(i, _, to) in &plan {
                v.tracks[i].source = to;
            }
        }
        if let Some(v) = self.viewers.get_mut(&id) {
            v.channel = channel;
        }
        Ok(view.unwrap_or(SwitchView {
            outcome: ApiSwitchOutcome::Pending,
            source: None,
            pending_source: plan.first().map(|p| p.2 .0),
        }))
    }

    /// The viewer's handshake failed for `reason`: it is removed.
    pub(crate) fn viewer_failed(&mut self, key: ViewerKey, reason: &'static str) {
        self.remove_viewer(TrackId(key.0 as u32), reason);
    }

    /// ICE chose `addr` for the viewer: where its media will go, or, once it is connected, where
    /// it moves (RFC 8445 lets a controlling agent nominate a new pair, after a NAT rebinding or
    /// a network change; the agent checked that request's integrity and USE-CANDIDATE). Its
    /// tracks follow it on the shard; keys and SRTP state are untouched. Until the shard applies
    /// the command (within the control thread's 20 ms tick) copies still go to the old address.
    pub(super) fn viewer_selected(&mut self, key: ViewerKey, addr: SocketAddr) {
        let id = TrackId(key.0 as u32);
        let Some(v) = self.viewers.get_mut(&id) else {
            return;
        };
        let old = v.addr.replace(addr);
        if v.state == ViewerState::Connecting || old == Some(addr) {
            return;
        }
        let (shard, tracks): (usize, Vec<TrackId>) = (
            v.shard,
            v.tracks
                .iter()
                .map(|t| t.id)
                .filter(|t| self.subs.contains_key(t))
                .collect(),
        );
        if let Err(e) = self.send_shard(
            shard,
            ShardCommand::MoveViewer {
                tracks: tracks.clone(),
                dest: addr,
            },
        ) {
            // Its media cannot follow it, and ICE will not say so again: it is of no use.
            tracing::warn!(viewer = id.0, %addr, "viewer moved but its media cannot follow: {e}");
            self.remove_viewer(id, "shard_busy");
            return;
        }
        for t in &tracks {
            if let Some(sub) = self.subs.get_mut(t) {
                sub.dest = addr;
            }
        }
        let from = old.map_or_else(|| "none".to_string(), |a| a.to_string());
        tracing::info!(viewer = id.0, %from, to = %addr, "viewer moved: its media follows it");
    }

    /// Remove viewer `id` (its tracks, ICE entry and handshake) for `reason`; false if there is
    /// no such viewer.
    pub(crate) fn remove_viewer(&mut self, id: TrackId, reason: &str) -> bool {
        let Some(v) = self.viewers.remove(&id) else {
            return false;
        };
        let key = ViewerKey(u64::from(id.0));
        for t in &v.tracks {
            if let Some(sub) = self.subs.remove(&t.id) {
                let _ = self.send_shard(v.shard, ShardCommand::RemoveTrack(t.id));
                for s in [sub.source, sub.pending].into_iter().flatten() {
                    self.release_source(v.shard, s);
                }
            }
            self.free_ssrc(t.ssrc);
            if let Some(r) = t.rtx {
                self.free_ssrc(r.ssrc);
            }
        }
        let _ = self.send_shard(v.shard, ShardCommand::RemoveViewer(key));
        if let Some(w) = self.settings.webrtc.as_ref() {
            let _ = w.handshakes.try_send(HandshakeInput::Forget(key));
        }
        self.shard_load[v.shard] -= 1;
        let data = serde_json::json!({"transport": "webrtc", "reason": reason});
        self.emit(EventType::SubscriberRemoved, None, Some(id), data);
        true
    }
}

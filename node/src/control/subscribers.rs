//! Adding and removing subscribers: each a track on the least loaded shard.

use corecast_engine::{RtpTime, SeqNo, SourceId, TrackConfig, TrackId};
use corecast_signaling::api::CreateSubscriber;
use rand::Rng;

use super::error::{NodeError, What};
use super::topology::SubEntry;
use super::{validate, ControlState};
use crate::events::EventType;
use crate::shard::ShardCommand;

impl ControlState {
    pub(crate) fn create_subscribers(
        &mut self,
        reqs: Vec<CreateSubscriber>,
    ) -> Result<Vec<TrackId>, NodeError> {
        if self.subscriber_count() + reqs.len() > self.settings.max_subscribers {
            return Err(NodeError::TooManySubscribers {
                asked: self.subscriber_count() + reqs.len(),
                limit: self.settings.max_subscribers,
            });
        }
        let parsed = validate::subscribers(&reqs, &self.sources)?;
        // Place them first, then make sure every shard that gets some can take its command:
        // the batch is sent whole or not at all, and a refused one uses no ids.
        let placement = self.place(parsed.len());
        let mut needs = vec![0; self.shards.len()];
        for &shard in &placement {
            needs[shard] = 1;
        }
        self.make_room(&needs, 0)?;
        // From here nothing fails: the sends below find the room made above.
        let mut per_shard: Vec<Vec<(TrackConfig, SourceId)>> = vec![Vec::new(); self.shards.len()];
        let ids: Vec<TrackId> = self.next_subscriber_ids(parsed.len()).collect();
        let mut ssrcs = Vec::with_capacity(parsed.len());
        for ((req, &shard), &id) in parsed.iter().zip(&placement).zip(&ids) {
            let ssrc = self.unused_ssrc();
            let codec = self.sources[&req.source].codec;
            let config = TrackConfig {
                id,
                dest: req.dest,
                ssrc,
                payload_type: codec.output_payload_type(),
                first_seq: SeqNo(self.rng.random()),
                first_ts: RtpTime(self.rng.random()),
            };
            per_shard[shard].push((config, req.source));
            ssrcs.push(ssrc);
        }
        for (shard, tracks) in per_shard.into_iter().enumerate() {
            if !tracks.is_empty() {
                self.send_shard(shard, ShardCommand::AddTracks(tracks))?;
            }
        }
        self.take_subscriber_ids(ids.len());
        for (i, (req, shard)) in parsed.iter().zip(placement).enumerate() {
            let (id, ssrc) = (ids[i], ssrcs[i]);
            self.shard_load[shard] += 1;
            self.use_source(shard, req.source);
            self.subs.insert(
                id,
                SubEntry {
                    ssrc,
                    shard,
                    codec: self.sources[&req.source].codec,
                    source: Some(req.source),
                    pending: None,
                    requested_at: None,
                    switches_unanswered: 0,
                    dest: req.dest,
                    switches: 0,
                    viewer: None,
                    home: None,
                },
            );
            let data = serde_json::json!({
                "dest": req.dest.to_string(),
                "ssrc": ssrc.0,
                "shard": shard,
            });
            self.emit(EventType::SubscriberAdded, Some(req.source), Some(id), data);
        }
        // New subscribers start at a keyframe: ask each video source for one now rather than
        // have them wait up to a GOP (requests are coalesced per --pli-interval by ingest).
        let mut wanted: Vec<SourceId> = parsed.iter().map(|r| r.source).collect();
        wanted.sort_unstable();
        wanted.dedup();
        for source in wanted {
            if !self.sources[&source].codec.is_audio() {
                self.request_keyframe(source);
            }
        }
        Ok(ids)
    }

    pub(crate) fn delete_subscriber(&mut self, id: TrackId) -> Result<(), NodeError> {
        if self.remove_viewer(id, "deleted") {
            return Ok(());
        }
        let sub = self
            .subs
            .get(&id)
            .ok_or(NodeError::NotFound(What::Subscriber(id)))?;
        let (shard, source, pending) = (sub.shard, sub.source, sub.pending);
        self.send_shard(shard, ShardCommand::RemoveTrack(id))?;
        if let Some(sub) = self.subs.remove(&id) {
            self.free_ssrc(sub.ssrc);
        }
        self.shard_load[shard] -= 1;
        for s in [source, pending].into_iter().flatten() {
            self.release_source(shard, s);
        }
        self.emit(
            EventType::SubscriberRemoved,
            source,
            Some(id),
            serde_json::json!({}),
        );
        Ok(())
    }
}

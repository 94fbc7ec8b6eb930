//! Creating and deleting channels: what one viewer watches, a video and an audio source. A
//! channel is bookkeeping on this thread only, so neither change sends a shard or ingest
//! anything (viewers, which will, come with WHEP).

use corecast_signaling::api::CreateChannel;

use super::error::{NodeError, What};
use super::topology::{ChannelEntry, ChannelId};
use super::{validate, ControlState};
use crate::events::EventType;

impl ControlState {
    pub(crate) fn create_channel(&mut self, req: CreateChannel) -> Result<ChannelId, NodeError> {
        let req = validate::channel(&req, &self.sources, &self.channels)?;
        let id = self.take_channel_id();
        let entry = ChannelEntry {
            name: req.name,
            video: req.video,
            audio: req.audio,
        };
        tracing::info!(channel = id.0, name = entry.name, "channel created");
        let data = channel_data(id, &entry);
        self.channels.insert(id, entry);
        self.emit(EventType::ChannelCreated, None, None, data);
        Ok(id)
    }

    pub(crate) fn delete_channel(&mut self, id: ChannelId) -> Result<(), NodeError> {
        let entry = self
            .channels
            .remove(&id)
            .ok_or(NodeError::NotFound(What::Channel(id)))?;
        tracing::info!(channel = id.0, name = entry.name, "channel removed");
        self.emit(
            EventType::ChannelRemoved,
            None,
            None,
            channel_data(id, &entry),
        );
        Ok(())
    }

    /// Source `source` is gone: the channels that name it keep the slot, empty.
    pub(super) fn detach_channels(&mut self, source: corecast_engine::SourceId) {
        for channel in self.channels.values_mut() {
            for slot in [&mut channel.video, &mut channel.audio] {
                if *slot == Some(source) {
                    *slot = None;
                }
            }
        }
    }
}

/// A channel event's `data`: the envelope has no channel field, so the id goes here.
fn channel_data(id: ChannelId, entry: &ChannelEntry) -> serde_json::Value {
    serde_json::json!({
        "channel": id.0,
        "name": entry.name,
        "video": entry.video.map(|s| s.0),
        "audio": entry.audio.map(|s| s.0),
    })
}

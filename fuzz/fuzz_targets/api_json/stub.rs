//! The `api_json` target's node: a stub `Control` that records each call and accepts what it
//! can validate without running (kept apart so the target's file stays readable).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;

use corecast_engine::{codec, Codec};
use corecast_signaling::api::{
    ChannelView, CreateChannel, CreateSource, CreateSubscriber, IngestAddr, SourceCounters,
    SourceView, StatsView, SubscriberCounters, SubscriberView, SwitchOutcome, SwitchView,
    WhepAnswer,
};
use corecast_signaling::{ApiError, Control};

use super::{ETAG, FULL_CHANNEL, UNKNOWN_CHANNEL, VIEWER_ID};

/// What the node was asked, if anything.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Call {
    CreateSource(CreateSource),
    CreateSubscribers(Vec<CreateSubscriber>),
    Switch(u32, u32),
    SwitchChannel(u32, u32),
    Source(u32),
    DeleteSubscriber(u32),
    DeleteViewer(u32),
    WhepOffer(u32, String),
    WhepPatch(u32, Option<String>, String),
    CreateChannel(CreateChannel),
    DeleteChannel(u32),
    Stats,
}

/// A node that accepts everything it can validate without running: the codec name, the
/// parameter sets (with the node's own parser) and the destination addresses.
#[derive(Default)]
pub(super) struct Stub {
    pub(super) calls: Mutex<Vec<Call>>,
}

impl Stub {
    fn record(&self, call: Call) {
        self.calls.lock().unwrap().push(call);
    }
}

fn source_view(id: u32) -> SourceView {
    SourceView {
        id,
        name: "stub".into(),
        codec: "vp8".into(),
        clock_rate: 90_000,
        ingest: IngestAddr {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 40_000,
        },
        latch: true,
        sender: None,
        feedback: None,
        parameter_sets: false,
        payload_type: None,
        rtx_payload_type: None,
        join: "keyframe".into(),
        state: "waiting".into(),
        fallback: None,
        failed_over: false,
        subscribers: 0,
        counters: SourceCounters::default(),
    }
}

impl Control for Stub {
    fn create_source(&self, req: CreateSource) -> Result<SourceView, ApiError> {
        self.record(Call::CreateSource(req.clone()));
        let codec = Codec::from_name(&req.codec)
            .ok_or_else(|| ApiError::bad_request(format!("unknown codec `{}`", req.codec)))?;
        if let Some(text) = &req.parameter_sets {
            let sets = corecast::control::configured_parameter_sets(codec, text)
                .map_err(corecast::control::NodeError::from)?;
            let prelude = sets.prelude().expect("accepted sets make a prelude");
            let info = codec::inspect(codec, prelude).expect("the prelude inspects");
            assert!(info.is_switch_point() && info.parameter_sets);
        }
        Ok(source_view(1))
    }
    fn sources(&self) -> Vec<SourceView> {
        vec![source_view(1)]
    }
    fn source(&self, id: u32) -> Result<SourceView, ApiError> {
        self.record(Call::Source(id));
        Ok(source_view(id))
    }
    fn delete_source(&self, _id: u32) -> Result<(), ApiError> {
        Ok(())
    }
    fn create_subscribers(
        &self,
        reqs: Vec<CreateSubscriber>,
    ) -> Result<Vec<SubscriberView>, ApiError> {
        self.record(Call::CreateSubscribers(reqs.clone()));
        reqs.iter()
            .enumerate()
            .map(|(i, r)| {
                let dest: SocketAddr = r
                    .dest
                    .parse()
                    .map_err(|_| ApiError::bad_request(format!("[{i}].dest is not ip:port")))?;
                Ok(SubscriberView {
                    id: i as u32,
                    ssrc: 1,
                    shard: 0,
                    source: Some(r.source),
                    pending_source: None,
                    home_source: None,
                    dest,
                    media_from: dest,
                    codec: "vp8".into(),
                    payload_type: 96,
                    counters: SubscriberCounters::default(),
                    transport: "rtp".into(),
                    viewer: None,
                    reception: None,
                })
            })
            .collect()
    }
    fn subscribers(&self) -> Vec<SubscriberView> {
        Vec::new()
    }
    fn subscriber(&self, _id: u32) -> Result<SubscriberView, ApiError> {
        Err(ApiError::not_found("no such subscriber"))
    }
    fn subscriber_sdp(&self, _id: u32) -> Result<String, ApiError> {
        Err(ApiError::not_found("no such subscriber"))
    }
    fn source_sdp(&self, _id: u32, _dest: std::net::SocketAddr) -> Result<String, ApiError> {
        Err(ApiError::not_found("no such source"))
    }
    fn delete_subscriber(&self, id: u32) -> Result<(), ApiError> {
        self.record(Call::DeleteSubscriber(id));
        Err(ApiError::not_found(format!("no subscriber {id}")))
    }
    fn switch(&self, subscriber: u32, source: u32) -> Result<SwitchView, ApiError> {
        self.record(Call::Switch(subscriber, source));
        Ok(SwitchView {
            outcome: SwitchOutcome::Pending,
            source: None,
            pending_source: Some(source),
        })
    }
    fn create_channel(&self, req: CreateChannel) -> Result<ChannelView, ApiError> {
        self.record(Call::CreateChannel(req.clone()));
        Ok(ChannelView {
            id: 1,
            name: req.name,
            video: req.video,
            audio: req.audio,
            viewers: 0,
        })
    }
    fn channels(&self) -> Vec<ChannelView> {
        Vec::new()
    }
    fn channel(&self, _id: u32) -> Result<ChannelView, ApiError> {
        Err(ApiError::not_found("no such channel"))
    }
    fn delete_channel(&self, id: u32) -> Result<(), ApiError> {
        self.record(Call::DeleteChannel(id));
        Err(ApiError::not_found(format!("no channel {id}")))
    }
    fn switch_channel(&self, subscriber: u32, channel: u32) -> Result<SwitchView, ApiError> {
        self.record(Call::SwitchChannel(subscriber, channel));
        Ok(SwitchView {
            outcome: SwitchOutcome::Pending,
            source: None,
            pending_source: None,
        })
    }
    fn whep_offer(&self, channel: u32, offer: String) -> Result<WhepAnswer, ApiError> {
        self.record(Call::WhepOffer(channel, offer.clone()));
        match channel {
            FULL_CHANNEL => Err(ApiError::too_many("the node is full")),
            UNKNOWN_CHANNEL => Err(ApiError::not_found("no such channel")),
            _ if !offer.starts_with("v=0") => Err(ApiError::bad_request("not an SDP offer")),
            _ => Ok(WhepAnswer {
                subscriber: VIEWER_ID,
                sdp: "v=0\r\ns=-\r\n".into(),
                etag: ETAG.into(),
            }),
        }
    }
    fn whep_patch(
        &self,
        id: u32,
        if_match: Option<String>,
        fragment: String,
    ) -> Result<(), ApiError> {
        self.record(Call::WhepPatch(id, if_match.clone(), fragment));
        match if_match.as_deref() {
            None | Some("*" | ETAG) => Ok(()),
            Some(_) => Err(ApiError::precondition_failed("another ETag")),
        }
    }
    fn delete_viewer(&self, id: u32) -> Result<(), ApiError> {
        self.record(Call::DeleteViewer(id));
        Err(ApiError::not_found(format!("no viewer {id}")))
    }
    fn stats(&self) -> StatsView {
        self.record(Call::Stats);
        StatsView::default()
    }
    fn metrics(&self) -> String {
        String::new()
    }
}

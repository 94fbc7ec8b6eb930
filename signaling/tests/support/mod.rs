//! An in-memory `Control` with just enough of the node's behaviour to produce every status the
//! API can answer with, plus helpers to serve it on loopback and to send raw requests.

// Each test crate uses its own part of this module.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corecast_signaling::api::{
    ChannelView, CreateChannel, CreateSource, CreateSubscriber, ErrorBody, IngestAddr, NodeStats,
    ShardStats, SourceCounters, SourceView, StatsView, SubscriberCounters, SubscriberView,
    SwitchOutcome, SwitchView, WhepAnswer,
};
use corecast_signaling::{ApiConfig, ApiError, ApiServer, Client, ClientError, Control};
use ureq::http;

const CODECS: [&str; 6] = ["vp8", "vp9", "h264", "h265", "av1", "opus"];

#[derive(Default)]
struct State {
    next_source: u32,
    next_subscriber: u32,
    next_channel: u32,
    sources: BTreeMap<u32, SourceView>,
    subscribers: BTreeMap<u32, SubscriberView>,
    channels: BTreeMap<u32, ChannelView>,
    viewers: BTreeSet<u32>,
}

pub struct FakeNode {
    state: Mutex<State>,
    max_subscribers: usize,
    /// Names of the threads `Control` was called on: the server must keep it off its async
    /// worker ("corecast-http").
    threads: Mutex<BTreeSet<String>>,
}

impl FakeNode {
    pub fn new(max_subscribers: usize) -> Arc<FakeNode> {
        Arc::new(FakeNode {
            state: Mutex::default(),
            max_subscribers,
            threads: Mutex::default(),
        })
    }

    pub fn threads(&self) -> BTreeSet<String> {
        self.threads.lock().unwrap().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        let name = std::thread::current()
            .name()
            .unwrap_or("<unnamed>")
            .to_string();
        self.threads.lock().unwrap().insert(name);
        self.state.lock().unwrap()
    }
}

fn not_found(what: &str, id: u32) -> ApiError {
    ApiError::not_found(format!("no {what} with id {id}"))
}

impl Control for FakeNode {
    fn create_source(&self, req: CreateSource) -> Result<SourceView, ApiError> {
        if req.name == "panic" {
            panic!("fake node told to panic");
        }
        let mut st = self.lock();
        if !CODECS.contains(&req.codec.as_str()) {
            return Err(ApiError::bad_request(format!(
                "unknown codec `{}`",
                req.codec
            )));
        }
        if st.sources.values().any(|s| s.name == req.name) {
            return Err(ApiError::conflict(format!(
                "a source named `{}` exists",
                req.name
            )));
        }
        st.next_source += 1;
        let id = st.next_source;
        let port = req.port.unwrap_or(5000 + id as u16 * 2);
        if st.sources.values().any(|s| s.ingest.port == port) {
            return Err(ApiError::conflict(format!("port {port} is in use")));
        }
        let default_rate = if req.codec == "opus" { 48_000 } else { 90_000 };
        let view = SourceView {
            id,
            name: req.name,
            codec: req.codec,
            clock_rate: req.clock_rate.unwrap_or(default_rate),
            ingest: IngestAddr {
                ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                port,
            },
            latch: req.latch.unwrap_or(true),
            sender: None,
            feedback: None,
            parameter_sets: false,
            payload_type: req.payload_type,
            rtx_payload_type: req.rtx_payload_type,
            join: "keyframe".into(),
            state: "waiting".to_string(),
            fallback: req.fallback,
            failed_over: false,
            subscribers: 0,
            counters: SourceCounters::default(),
        };
        st.sources.insert(id, view.clone());
        Ok(view)
    }

    fn sources(&self) -> Vec<SourceView> {
        self.lock().sources.values().cloned().collect()
    }

    fn source(&self, id: u32) -> Result<SourceView, ApiError> {
        self.lock()
            .sources
            .get(&id)
            .cloned()
            .ok_or_else(|| not_found("source", id))
    }

    fn delete_source(&self, id: u32) -> Result<(), ApiError> {
        let mut st = self.lock();
        st.sources
            .remove(&id)
            .ok_or_else(|| not_found("source", id))?;
        for sub in st.subscribers.values_mut() {
            if sub.source == Some(id) {
                sub.source = None;
            }
            if sub.pending_source == Some(id) {
                sub.pending_source = None;
            }
        }
        for channel in st.channels.values_mut() {
            for slot in [&mut channel.video, &mut channel.audio] {
                if *slot == Some(id) {
                    *slot = None;
                }
            }
        }
        Ok(())
    }

    fn create_subscribers(
        &self,
        reqs: Vec<CreateSubscriber>,
    ) -> Result<Vec<SubscriberView>, ApiError> {
        let mut st = self.lock();
        if st.subscribers.len() + reqs.len() > self.max_subscribers {
            return Err(ApiError::too_many(format!(
                "the node holds at most {} subscribers",
                self.max_subscribers
            )));
        }
        let mut parsed = Vec::with_capacity(reqs.len());
        for (i, req) in reqs.iter().enumerate() {
            if !st.sources.contains_key(&req.source) {
                return Err(ApiError::not_found(format!(
                    "entry {i}: no source with id {}",
                    req.source
                )));
            }
            let dest: SocketAddr = req.dest.parse().map_err(|_| {
                ApiError::bad_request(format!("entry {i}: dest `{}` is not ip:port", req.dest))
            })?;
            parsed.push((req.source, dest));
        }
        let mut views = Vec::with_capacity(parsed.len());
        for (source, dest) in parsed {
            st.next_subscriber += 1;
            let id = st.next_subscriber;
            let view = SubscriberView {
                id,
                ssrc: id.wrapping_mul(0x9e37_79b9),
                shard: id % 2,
                source: Some(source),
                pending_source: None,
                home_source: None,
                dest,
                media_from: "0.0.0.0:4000".parse().unwrap(),
                codec: st.sources[&source].codec.clone(),
                payload_type: 96,
                counters: SubscriberCounters::default(),
                transport: "rtp".to_string(),
                viewer: None,
                reception: None,
            };
            st.sources.get_mut(&source).unwrap().subscribers += 1;
            st.subscribers.insert(id, view.clone());
            views.push(view);
        }
        Ok(views)
    }

    fn subscribers(&self) -> Vec<SubscriberView> {
        self.lock().subscribers.values().cloned().collect()
    }

    fn subscriber(&self, id: u32) -> Result<SubscriberView, ApiError> {
        self.lock()
            .subscribers
            .get(&id)
            .cloned()
            .ok_or_else(|| not_found("subscriber", id))
    }

    /// Not the node's SDP (`corecast::sdp` is tested there): enough to tell subscribers apart.
    fn subscriber_sdp(&self, id: u32) -> Result<String, ApiError> {
        let st = self.lock();
        let sub = st
            .subscribers
            .get(&id)
            .ok_or_else(|| not_found("subscriber", id))?;
        Ok(fake_sdp(sub))
    }

    fn source_sdp(&self, id: u32, dest: SocketAddr) -> Result<String, ApiError> {
        let st = self.lock();
        let source = st.sources.get(&id).ok_or_else(|| not_found("source", id))?;
        Ok(format!(
            "v=0\r\ns=source {} for {dest}\r\nc=IN IP4 {}\r\nt=0 0\r\nm=video {} RTP/AVP 96\r\n",
            source.id,
            dest.ip(),
            dest.port()
        ))
    }

    fn delete_subscriber(&self, id: u32) -> Result<(), ApiError> {
        let mut st = self.lock();
        let sub = st
            .subscribers
            .remove(&id)
            .ok_or_else(|| not_found("subscriber", id))?;
        if let Some(source) = sub.source.and_then(|s| st.sources.get_mut(&s)) {
            source.subscribers -= 1;
        }
        Ok(())
    }

    fn switch_channel(&self, subscriber: u32, channel: u32) -> Result<SwitchView, ApiError> {
        let st = self.lock();
        if !st.channels.contains_key(&channel) {
            return Err(not_found("channel", channel));
        }
        if !st.viewers.contains(&subscriber) {
            return Err(not_found("viewer", subscriber));
        }
        Ok(SwitchView {
            outcome: SwitchOutcome::Pending,
            source: None,
            pending_source: None,
        })
    }

    fn switch(&self, subscriber: u32, source: u32) -> Result<SwitchView, ApiError> {
        let mut st = self.lock();
        if !st.sources.contains_key(&source) {
            return Err(not_found("source", source));
        }
        let sub = st
            .subscribers
            .get_mut(&subscriber)
            .ok_or_else(|| not_found("subscriber", subscriber))?;
        if sub.source == Some(source) {
            let outcome = match sub.pending_source.take() {
                Some(_) => SwitchOutcome::Cancelled,
                None => SwitchOutcome::Unchanged,
            };
            return Ok(SwitchView {
                outcome,
                source: sub.source,
                pending_source: None,
            });
        }
        sub.pending_source = Some(source);
        Ok(SwitchView {
            outcome: SwitchOutcome::Pending,
            source: sub.source,
            pending_source: Some(source),
        })
    }

    fn create_channel(&self, req: CreateChannel) -> Result<ChannelView, ApiError> {
        let mut st = self.lock();
        if req.video.is_none() && req.audio.is_none() {
            return Err(ApiError::bad_request(
                "a channel needs `video`, `audio` or both",
            ));
        }
        if st.channels.values().any(|c| c.name == req.name) {
            return Err(ApiError::conflict(format!(
                "`name`: a channel named `{}` exists",
                req.name
            )));
        }
        for (field, id, audio) in [("video", req.video, false), ("audio", req.audio, true)] {
            let Some(id) = id else { continue };
            let source = st
                .sources
                .get(&id)
                .ok_or_else(|| ApiError::not_found(format!("`{field}`: no source {id}")))?;
            if (source.codec == "opus") != audio {
                return Err(ApiError::conflict(format!(
                    "`{field}`: source {id} is {}, not {field}",
                    source.codec
                )));
            }
        }
        st.next_channel += 1;
        let view = ChannelView {
            id: st.next_channel,
            name: req.name,
            video: req.video,
            audio: req.audio,
            viewers: 0,
        };
        st.channels.insert(view.id, view.clone());
        Ok(view)
    }

    fn channels(&self) -> Vec<ChannelView> {
        self.lock().channels.values().cloned().collect()
    }

    fn channel(&self, id: u32) -> Result<ChannelView, ApiError> {
        self.lock()
            .channels
            .get(&id)
            .cloned()
            .ok_or_else(|| not_found("channel", id))
    }

    fn delete_channel(&self, id: u32) -> Result<(), ApiError> {
        self.lock()
            .channels
            .remove(&id)
            .map(drop)
            .ok_or_else(|| not_found("channel", id))
    }

    /// The fake admits any offer that starts like SDP to a known channel: it checks the HTTP
    /// layer (status, headers, tokens), not negotiation, which the node's tests cover.
    fn whep_offer(&self, channel: u32, offer: String) -> Result<WhepAnswer, ApiError> {
        let mut st = self.lock();
        if !st.channels.contains_key(&channel) {
            return Err(not_found("channel", channel));
        }
        if !offer.starts_with("v=0") {
            return Err(ApiError::bad_request("the offer is not SDP"));
        }
        if st.subscribers.len() >= self.max_subscribers {
            return Err(ApiError::too_many("the node is full"));
        }
        st.next_subscriber += 1;
        let id = st.next_subscriber;
        st.viewers.insert(id);
        Ok(WhepAnswer {
            subscriber: id,
            sdp: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n".to_string(),
            etag: format!("\"viewer-{id}\""),
        })
    }

    fn whep_patch(
        &self,
        id: u32,
        if_match: Option<String>,
        _fragment: String,
    ) -> Result<(), ApiError> {
        let st = self.lock();
        if !st.viewers.contains(&id) {
            return Err(not_found("viewer", id));
        }
        match if_match {
            Some(tag) if tag != format!("\"viewer-{id}\"") && tag != "*" => Err(
                ApiError::precondition_failed("If-Match names another session"),
            ),
            _ => Ok(()),
        }
    }

    fn delete_viewer(&self, id: u32) -> Result<(), ApiError> {
        if self.lock().viewers.remove(&id) {
            Ok(())
        } else {
            Err(not_found("viewer", id))
        }
    }

    fn metrics(&self) -> String {
        "# TYPE fake_requests counter\nfake_requests_total 1\n# EOF\n".to_string()
    }

    fn stats(&self) -> StatsView {
        let st = self.lock();
        let mut drops = BTreeMap::new();
        drops.insert("waiting_keyframe".to_string(), 3);
        StatsView {
            node: NodeStats {
                uptime_s: 12.5,
                sources: st.sources.len() as u64,
                subscribers: st.subscribers.len() as u64,
                channels: st.channels.len() as u64,
                packets_received: 100,
                packets_forwarded: 90,
                drops: drops.clone(),
                ..NodeStats::default()
            },
            shards: (0..2)
                .map(|shard| ShardStats {
                    shard,
                    core: Some(shard + 2),
                    subscribers: st.subscribers.values().filter(|s| s.shard == shard).count()
                        as u64,
                    packets_in: 50,
                    packets_out: 45,
                    send_batches: 7,
                    drops: drops.clone(),
                    ..ShardStats::default()
                })
                .collect(),
            sources: st.sources.values().cloned().collect(),
            channels: st.channels.values().cloned().collect(),
            events: Vec::new(),
        }
    }
}

/// The fake's SDP for `sub`.
pub fn fake_sdp(sub: &SubscriberView) -> String {
    format!(
        "v=0\r\ns=subscriber {}\r\nc=IN IP4 {}\r\nt=0 0\r\nm=video {} RTP/AVP {}\r\n",
        sub.id,
        sub.dest.ip(),
        sub.dest.port(),
        sub.payload_type
    )
}

/// A running server over a fresh fake, and a client pointed at it.
pub struct Harness {
    pub node: Arc<FakeNode>,
    pub server: ApiServer,
    pub client: Client,
}

impl Harness {
    pub fn start(config: ApiConfig, max_subscribers: usize) -> Harness {
        let node = FakeNode::new(max_subscribers);
        let token = config.token.clone();
        let server = ApiServer::spawn(
            "127.0.0.1:0".parse().unwrap(),
            Arc::clone(&node) as Arc<dyn Control>,
            config,
        )
        .expect("spawn the API server on loopback");
        let client = Client::new(&server.local_addr().to_string(), token);
        Harness {
            node,
            server,
            client,
        }
    }

    pub fn open() -> Harness {
        Harness::start(ApiConfig::default(), 20_000)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.local_addr())
    }
}

pub fn source(name: &str, codec: &str) -> CreateSource {
    CreateSource {
        name: name.into(),
        codec: codec.into(),
        clock_rate: None,
        port: None,
        latch: None,
        feedback: None,
        parameter_sets: None,
        payload_type: None,
        rtx_payload_type: None,
        join: None,
        fallback: None,
    }
}

pub fn sub(source: u32, port: u16) -> CreateSubscriber {
    CreateSubscriber {
        source,
        dest: format!("127.0.0.1:{port}"),
    }
}

/// An API error's status, code and message.
pub fn api_err<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (u16, String, String) {
    match r {
        Err(ClientError::Api {
            status,
            code,
            message,
        }) => (status, code, message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

pub struct Raw {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Raw {
    /// The `{"error","message"}` body, checking it is sent as JSON.
    pub fn error(&self) -> ErrorBody {
        assert_eq!(
            self.headers
                .get("content-type")
                .map(|v| v.to_str().unwrap()),
            Some("application/json"),
            "body: {}",
            self.body
        );
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not the error shape ({e}): {}", self.body))
    }
}

pub fn raw(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Raw {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .proxy(None)
        .build()
        .into();
    let mut req = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let mut resp = agent
        .run(req.body(body.to_vec()).unwrap())
        .expect("an HTTP answer");
    Raw {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.body_mut().read_to_string().unwrap(),
    }
}

pub const JSON: &[(&str, &str)] = &[("Content-Type", "application/json")];

//! The control thread over real HTTP, with the shards and the ingest thread played by the test:
//! their command queues are small and nobody drains them but the test, so a queue can be made
//! full on purpose. What the control thread does then must be all or nothing.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use corecast::config::PortRange;
use corecast::control::{ControlState, Settings, ShardHandle};
use corecast::events::{EventBus, HandlerConfig, JsonLinesConfig};
use corecast::ingest::{IngestCommand, IngestLink};
use corecast::shard::{ShardCommand, ShardEvent, ShardLink};
use corecast::telemetry::Aggregates;
use corecast::views::NodeControl;
use corecast::wake::Wake;
use corecast_engine::{Codec, ControlError, SourceId, SwitchOutcome, TrackId};
use corecast_signaling::api::{CreateSource, CreateSubscriber};
use corecast_signaling::client::{Client, ClientError};
use corecast_signaling::server::{ApiConfig, ApiServer};
use crossbeam_queue::ArrayQueue;
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(10);

struct Harness {
    shards: Vec<Arc<ShardLink>>,
    ingest: Arc<IngestLink>,
    client: Client,
    server: Option<ApiServer>,
    control: Option<JoinHandle<()>>,
    bus: Option<Arc<EventBus>>,
    events: PathBuf,
    /// The pollers the wakers belong to.
    _polls: Vec<mio::Poll>,
}

fn wake(polls: &mut Vec<mio::Poll>) -> Wake {
    let poll = mio::Poll::new().unwrap();
    let waker = mio::Waker::new(poll.registry(), mio::Token(0)).unwrap();
    polls.push(poll);
    Wake::new(waker)
}

impl Harness {
    /// A control thread with one shard per entry of `shard_queues` (its command queue's
    /// capacity) and an ingest command queue of `ingest_queue`.
    fn start(shard_queues: &[usize], ingest_queue: usize) -> Harness {
        let mut polls = Vec::new();
        let ingest = Arc::new(IngestLink {
            commands: ArrayQueue::new(ingest_queue),
            keyframe_requests: ArrayQueue::new(64),
            snapshots: ArrayQueue::new(4),
            wake: wake(&mut polls),
            stop: AtomicBool::new(false),
        });
        let mut shards = Vec::new();
        let mut handles = Vec::new();
        for (k, &capacity) in shard_queues.iter().enumerate() {
            let link = Arc::new(ShardLink {
                packets: Arc::new(ArrayQueue::new(4)),
                commands: ArrayQueue::new(capacity),
                source_clocks: Arc::new(ArrayQueue::new(4)),
                events: ArrayQueue::new(64),
                snapshots: ArrayQueue::new(4),
                wake: Arc::new(wake(&mut polls)),
                stop: AtomicBool::new(false),
            });
            handles.push(ShardHandle {
                link: link.clone(),
                media_from: SocketAddr::from(([127, 0, 0, 1], 40_000 + k as u16)),
                core: None,
            });
            shards.push(link);
        }
        let events = std::env::temp_dir().join(format!(
            "corecast-control-queues-{}-{}.jsonl",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let config: JsonLinesConfig = events.display().to_string().parse().unwrap();
        let bus = Arc::new(
            EventBus::start("test".into(), vec![HandlerConfig::JsonLines(config)]).unwrap(),
        );
        let settings = Settings {
            rtp_ip: "127.0.0.1".parse().unwrap(),
            // Tests here name their ports; nothing is picked from the range.
            ports: PortRange { lo: 1, hi: 0 },
            rcvbuf: 1 << 16,
            max_subscribers: 100,
            max_sources: 64,
            join: corecast_engine::JoinPolicy::Keyframe,
            replay_pace: 4,
            idle_timeout: std::time::Duration::from_secs(2),
            clock: corecast::clock::Clock::start(),
            history: true,
            node_name: "test".into(),
            webrtc: None,
        };
        let aggregates = Arc::new(std::sync::Mutex::new(Aggregates::new(shards.len(), false)));
        let (handle, control) =
            ControlState::new(settings, handles, ingest.clone(), aggregates, bus.clone())
                .spawn()
                .unwrap();
        let server = ApiServer::spawn(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(NodeControl { handle }),
            ApiConfig::default(),
        )
        .unwrap();
        let client = Client::with_timeout(
            &server.local_addr().to_string(),
            None,
            Duration::from_secs(20),
        );
        Harness {
            shards,
            ingest,
            client,
            server: Some(server),
            control: Some(control),
            bus: Some(bus),
            events,
            _polls: polls,
        }
    }

    /// Leave shard `k`'s command queue without room.
    fn fill(&self, k: usize) {
        while self.shards[k]
            .commands
            .push(ShardCommand::CancelSwitch(TrackId(0)))
            .is_ok()
        {}
    }

    /// What shard `k` was sent, taken off its queue.
    fn take(&self, k: usize) -> Vec<ShardCommand> {
        std::iter::from_fn(|| self.shards[k].commands.pop()).collect()
    }

    fn take_ingest(&self) -> Vec<IngestCommand> {
        std::iter::from_fn(|| self.ingest.commands.pop()).collect()
    }

    /// Stop the API and the control thread and return every event they emitted.
    fn finish(mut self) -> Vec<Value> {
        if let Some(server) = self.server.take() {
            server.shutdown();
        }
        let control = self.control.take().unwrap();
        let deadline = Instant::now() + DEADLINE;
        while !control.is_finished() {
            assert!(Instant::now() < deadline, "the control thread did not stop");
            std::thread::yield_now();
        }
        control.join().unwrap();
        // The control thread is gone with its share of the bus: flush what the handler holds.
        let bus = Arc::try_unwrap(self.bus.take().unwrap())
            .ok()
            .expect("no one else holds the bus");
        bus.shutdown(DEADLINE);
        let text = std::fs::read_to_string(&self.events).unwrap();
        let _ = std::fs::remove_file(&self.events);
        text.lines()
            .map(|l| serde_json::from_str(l).expect("one JSON envelope per line"))
            .collect()
    }
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

fn api_error<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (u16, String, String) {
    match r {
        Err(ClientError::Api {
            status,
            code,
            message,
        }) => (status, code, message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn vp8(name: &str, port: u16) -> CreateSource {
    CreateSource {
        name: name.into(),
        codec: "vp8".into(),
        clock_rate: None,
        port: Some(port),
        latch: None,
        feedback: None,
        parameter_sets: None,
        payload_type: None,
        rtx_payload_type: None,
        join: None,
        fallback: None,
    }
}

fn added_sources(cmds: &[ShardCommand]) -> Vec<u32> {
    cmds.iter()
        .filter_map(|c| match c {
            ShardCommand::AddSource(id, _, _) => Some(id.0),
            _ => None,
        })
        .collect()
}

fn added_tracks(cmds: &[ShardCommand]) -> Vec<u32> {
    cmds.iter()
        .flat_map(|c| match c {
            ShardCommand::AddTracks(tracks) => tracks.iter().map(|(t, _)| t.id.0).collect(),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn a_source_is_added_to_every_shard_and_ingest_or_to_none() {
    let h = Harness::start(&[4, 1], 1);
    let port = free_port();

    // Shard 1 takes no commands: nobody gets the source, and its port is free again.
    h.fill(1);
    let (status, code, message) = api_error(h.client.create_source(&vp8("cam", port)));
    assert_eq!((status, code.as_str()), (503, "unavailable"), "{message}");
    assert!(message.contains("shard 1"), "{message}");
    assert!(h.client.sources().unwrap().is_empty());
    assert_eq!(h.shards[0].commands.len(), 0, "shard 0 was sent the source");
    assert_eq!(h.ingest.commands.len(), 0, "ingest was sent the source");
    drop(UdpSocket::bind(("127.0.0.1", port)).expect("the ingest port is free again"));
    h.take(1);

    // Ingest takes no commands: no shard gets the source either.
    h.ingest
        .commands
        .push(IngestCommand::RemoveSource(SourceId(0)))
        .ok()
        .unwrap();
    let (status, code, message) = api_error(h.client.create_source(&vp8("cam", port)));
    assert_eq!((status, code.as_str()), (503, "unavailable"), "{message}");
    assert!(message.contains("ingest"), "{message}");
    assert_eq!((h.take(0).len(), h.take(1).len()), (0, 0));
    drop(UdpSocket::bind(("127.0.0.1", port)).expect("the ingest port is free again"));
    h.take_ingest();

    // With room everywhere it is created, with the first id: the failures used none.
    let view = h.client.create_source(&vp8("cam", port)).unwrap();
    assert_eq!(view.id, 1);
    assert_eq!(added_sources(&h.take(0)), [1]);
    assert_eq!(added_sources(&h.take(1)), [1]);
    assert!(matches!(
        h.take_ingest().as_slice(),
        [IngestCommand::AddSource(s)] if s.id == SourceId(1)
    ));
    let events = h.finish();
    let created = of_type(&events, "source.created");
    assert_eq!(created.len(), 1, "{events:?}");
    assert_eq!(created[0]["source"], 1);
}

#[test]
fn a_subscriber_batch_is_added_whole_or_not_at_all() {
    let h = Harness::start(&[4, 1], 4);
    let source = h.client.create_source(&vp8("cam", free_port())).unwrap();
    h.take(0);
    h.take(1);
    h.take_ingest();
    let batch: Vec<CreateSubscriber> = (0..4)
        .map(|i| CreateSubscriber {
            source: source.id,
            dest: format!("127.0.0.1:{}", 6000 + 2 * i),
        })
        .collect();

    // The batch spreads over both shards; shard 1 takes no commands.
    h.fill(1);
    let (status, code, message) = api_error(h.client.create_subscribers(&batch));
    assert_eq!((status, code.as_str()), (503, "unavailable"), "{message}");
    assert!(h.client.subscribers().unwrap().is_empty());
    assert_eq!(h.client.source(source.id).unwrap().subscribers, 0);
    assert_eq!(h.shards[0].commands.len(), 0, "shard 0 was sent tracks");
    assert!(
        h.ingest.keyframe_requests.is_empty(),
        "a keyframe was asked for subscribers that do not exist"
    );
    h.take(1);

    let subs = h.client.create_subscribers(&batch).unwrap();
    let ids: Vec<u32> = subs.iter().map(|s| s.id).collect();
    assert_eq!(ids, [1, 2, 3, 4], "the failed batch used no ids");
    assert_eq!(
        subs.iter().map(|s| s.shard).collect::<Vec<_>>(),
        [0, 1, 0, 1]
    );
    assert_eq!(added_tracks(&h.take(0)), [1, 3]);
    assert_eq!(added_tracks(&h.take(1)), [2, 4]);
    assert_eq!(h.ingest.keyframe_requests.pop(), Some(SourceId(source.id)));
    let events = h.finish();
    let added: Vec<u64> = of_type(&events, "subscriber.added")
        .iter()
        .map(|e| e["subscriber"].as_u64().unwrap())
        .collect();
    assert_eq!(added, [1, 2, 3, 4]);
}

#[test]
fn a_switch_the_shard_refuses_is_reported_cancelled() {
    let h = Harness::start(&[64], 4);
    let a = h.client.create_source(&vp8("a", free_port())).unwrap();
    let b = h.client.create_source(&vp8("b", free_port())).unwrap();
    let sub = h
        .client
        .create_subscriber(&CreateSubscriber {
            source: a.id,
            dest: "127.0.0.1:6000".into(),
        })
        .unwrap();
    h.client.switch(sub.id, b.id).unwrap();
    assert_eq!(
        h.client.subscriber(sub.id).unwrap().pending_source,
        Some(b.id)
    );
    // The shard refuses it (say its engine knows the track's codec otherwise).
    let refusal = ControlError::CodecMismatch {
        track: Codec::Vp8,
        source: Codec::H264,
    };
    assert!(h.shards[0]
        .events
        .push(ShardEvent::SwitchRequested(
            TrackId(sub.id),
            SourceId(b.id),
            Err(refusal)
        ))
        .is_ok());
    let deadline = Instant::now() + DEADLINE;
    while h
        .client
        .subscriber(sub.id)
        .unwrap()
        .pending_source
        .is_some()
    {
        assert!(Instant::now() < deadline, "the refusal was not taken");
        std::thread::yield_now();
    }
    assert_eq!(h.client.subscriber(sub.id).unwrap().source, Some(a.id));
    let events = h.finish();
    let cancelled = of_type(&events, "switch.cancelled");
    assert_eq!(cancelled.len(), 1, "{events:?}");
    assert_eq!(cancelled[0]["subscriber"], sub.id);
    assert_eq!(cancelled[0]["data"]["to"], b.id);
    assert_eq!(cancelled[0]["data"]["reason"], "refused");
    let error = cancelled[0]["data"]["error"].as_str().unwrap();
    assert!(error.contains("h264"), "{error}");
}

/// Answer every switch command shard 0 was sent with `Pending`, as its engine would.
fn answer_switches(h: &Harness) {
    for cmd in h.take(0) {
        if let ShardCommand::Switch(track, to) = cmd {
            let answer = ShardEvent::SwitchRequested(track, to, Ok(SwitchOutcome::Pending));
            assert!(h.shards[0].events.push(answer).is_ok());
        }
    }
}

/// Until the control thread has taken every event shard 0 sent it.
fn until_events_taken(h: &Harness) {
    let deadline = Instant::now() + DEADLINE;
    while !h.shards[0].events.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the control thread took no events"
        );
        std::thread::yield_now();
    }
    // One API round trip: the control thread finished handling what it took.
    h.client.subscribers().unwrap();
}

#[test]
fn a_timeout_of_a_switch_asked_for_again_is_not_reported() {
    let h = Harness::start(&[64], 4);
    let a = h.client.create_source(&vp8("a", free_port())).unwrap();
    let b = h.client.create_source(&vp8("b", free_port())).unwrap();
    let sub = h
        .client
        .create_subscriber(&CreateSubscriber {
            source: a.id,
            dest: "127.0.0.1:6000".into(),
        })
        .unwrap();
    let (track, to) = (TrackId(sub.id), SourceId(b.id));
    h.client.switch(sub.id, b.id).unwrap();
    answer_switches(&h);
    until_events_taken(&h);
    // Asked again; before the shard reads that command, its engine times the first one out.
    h.client.switch(sub.id, b.id).unwrap();
    assert!(h.shards[0]
        .events
        .push(ShardEvent::SwitchTimedOut(track, to))
        .is_ok());
    until_events_taken(&h);
    let view = h.client.subscriber(sub.id).unwrap();
    assert_eq!(
        view.pending_source,
        Some(b.id),
        "the second request still stands"
    );
    // The shard takes the second command, and that switch times out in its turn.
    answer_switches(&h);
    assert!(h.shards[0]
        .events
        .push(ShardEvent::SwitchTimedOut(track, to))
        .is_ok());
    until_events_taken(&h);
    let view = h.client.subscriber(sub.id).unwrap();
    assert_eq!((view.source, view.pending_source), (Some(a.id), None));
    let events = h.finish();
    let timed_out = of_type(&events, "switch.timed_out");
    assert_eq!(timed_out.len(), 1, "only the second switch's: {events:?}");
    assert_eq!(timed_out[0]["data"]["to"], b.id);
}

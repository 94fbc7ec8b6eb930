//! Event handlers against real loopback endpoints: a small HTTP server (`events_support`) and
//! files. Tests wait by polling with a deadline, never by sleeping a fixed time.

mod events_support;
// Flag parsing needs no server; it lives beside the support code to keep this file short.
#[path = "events_support/flags.rs"]
mod flags;

use std::time::{Duration, Instant};

use corecast::events::{
    Event, EventBus, EventType, HandlerConfig, JsonLinesConfig, JsonLinesTarget,
};
use events_support::{wait_for, Behavior, Server};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// Long enough for any loaded CI machine; the tests normally finish far sooner.
const PATIENCE: Duration = Duration::from_secs(20);

fn webhook(spec: &str) -> HandlerConfig {
    HandlerConfig::Webhook(spec.parse().expect("valid webhook spec"))
}

fn numbered(kind: EventType, n: u64) -> Event {
    Event::now(kind).with_data(json!({ "n": n }))
}

fn numbers(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e["data"]["n"].as_u64().unwrap())
        .collect()
}

#[test]
fn failed_posts_are_retried_with_growing_backoff_then_delivered_once_in_order() {
    let server = Server::start(Behavior::FailFirst(3));
    let spec = format!("{};batch-ms=20;retries=5;backoff-ms=100", server.url());
    let bus = EventBus::start("test-node".into(), vec![webhook(&spec)]).unwrap();

    for n in 0..5 {
        bus.emit(numbered(EventType::SourceCreated, n));
    }
    // The first batch is on the wire (and failing); these five must wait their turn behind it.
    assert!(wait_for(PATIENCE, || !server.requests().is_empty()));
    for n in 5..10 {
        bus.emit(numbered(EventType::SourceDeleted, n));
    }
    assert!(wait_for(PATIENCE, || bus.stats()[0].delivered == 10));

    let events = server.accepted_events();
    assert_eq!(
        numbers(&events),
        (0..10).collect::<Vec<_>>(),
        "each once, in order"
    );
    assert!(events.iter().all(|e| e["node"] == "test-node"));

    let requests = server.requests();
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 500, 500, 200, 200]);
    // A retry resends the same batch, byte for byte.
    assert!(requests[..4].iter().all(|r| r.body == requests[0].body));
    // Backoff 100, 200, 400 ms; lower bounds only, a loaded machine is only ever slower.
    let gaps: Vec<Duration> = requests[..4]
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .collect();
    for (gap, at_least) in gaps.iter().zip([90, 190, 390]) {
        assert!(*gap >= Duration::from_millis(at_least), "gaps {gaps:?}");
    }

    let stats = bus.shutdown(Duration::from_secs(5)).remove(0);
    assert_eq!(stats.kind, "webhook");
    assert_eq!(stats.name, format!("webhook:{}", server.url()));
    assert_eq!((stats.posts, stats.retries), (5, 3));
    assert_eq!(
        (stats.delivered, stats.dropped, stats.failed_batches),
        (10, 0, 0)
    );
    assert_eq!(stats.queued, 0);
}

#[test]
fn batch_is_given_up_after_its_retries_and_counted_as_dropped() {
    let server = Server::start(Behavior::FailFirst(usize::MAX));
    let spec = format!("{};batch-ms=0;retries=2;backoff-ms=10", server.url());
    let bus = EventBus::start("n".into(), vec![webhook(&spec)]).unwrap();
    for n in 0..3 {
        bus.emit(numbered(EventType::Stats, n));
    }
    assert!(wait_for(PATIENCE, || bus.stats()[0].dropped == 3));
    let stats = bus.shutdown(Duration::from_secs(5)).remove(0);
    assert_eq!(stats.delivered, 0);
    assert_eq!(stats.retries, 2 * stats.failed_batches);
    assert_eq!(stats.posts, 3 * stats.failed_batches);
    assert_eq!(server.requests().len() as u64, stats.posts);
}

#[test]
fn connection_refused_is_a_failed_attempt_too() {
    // A port nobody listens on: bind one, note it, close it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let spec = format!("http://{addr}/hook;batch-ms=0;retries=1;backoff-ms=10");
    let bus = EventBus::start("n".into(), vec![webhook(&spec)]).unwrap();
    bus.emit(Event::now(EventType::NodeStarted));
    assert!(wait_for(PATIENCE, || bus.stats()[0].failed_batches == 1));
    let stats = bus.shutdown(Duration::from_secs(5)).remove(0);
    assert_eq!((stats.posts, stats.retries, stats.dropped), (2, 1, 1));
}

#[test]
fn hanging_endpoint_never_blocks_emit_or_other_handlers() {
    let server = Server::start(Behavior::Hang);
    // Default request timeout (2 s): longer than the shutdown deadline below, on purpose.
    let spec = format!("{};queue=1000;batch-ms=0", server.url());
    let path = temp_path("hang");
    let jsonl = JsonLinesConfig {
        target: JsonLinesTarget::File(path.clone()),
        types: "*".parse().unwrap(),
        queue: 200_000,
        queue_bytes: 1 << 30,
    };
    let configs = vec![webhook(&spec), HandlerConfig::JsonLines(jsonl)];
    let bus = EventBus::start("n".into(), configs).unwrap();

    bus.emit(numbered(EventType::Stats, 0));
    assert!(
        wait_for(PATIENCE, || server.requests().len() == 1),
        "worker is stuck in a POST"
    );
    let start = Instant::now();
    for n in 1..100_000 {
        bus.emit(numbered(EventType::Stats, n));
    }
    assert!(
        start.elapsed() < PATIENCE,
        "emit returned in {:?}",
        start.elapsed()
    );

    let hung = &bus.stats()[0];
    assert!(hung.queued <= 1000, "queue bounded: {}", hung.queued);
    assert!(
        hung.dropped >= 100_000 - 1 - 1000,
        "overflow counted: {}",
        hung.dropped
    );
    assert_eq!(hung.delivered, 0);
    // The file handler is not held back by the stuck webhook.
    assert!(wait_for(PATIENCE, || bus.stats()[1].delivered == 100_000));

    let deadline = Duration::from_millis(300);
    let start = Instant::now();
    let stats = bus.shutdown(deadline);
    let took = start.elapsed();
    assert!(
        took < deadline + Duration::from_millis(700),
        "shutdown took {took:?}"
    );
    assert!(stats[0].dropped > 0);
    assert_eq!(stats[1].delivered, 100_000);
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_hanging_endpoint_holds_at_most_queue_bytes() {
    let server = Server::start(Behavior::Hang);
    const BOUND: usize = 16 * 1024;
    // The count bound is far away: only the byte bound can hold the queue back.
    let spec = format!(
        "{};queue=100000;queue-bytes={BOUND};batch=1;batch-ms=0",
        server.url()
    );
    let bus = EventBus::start("n".into(), vec![webhook(&spec)]).unwrap();
    bus.emit(numbered(EventType::Stats, 0));
    assert!(
        wait_for(PATIENCE, || server.requests().len() == 1),
        "worker is stuck in a POST"
    );
    // About 1 KiB per envelope, like a `stats` event listing a few dozen subscribers.
    let padding = "x".repeat(1000);
    let big = |n: u64| Event::now(EventType::Stats).with_data(json!({"n": n, "pad": padding}));
    let mut dropped = Vec::new();
    for round in 0..3u64 {
        for n in 0..100 {
            bus.emit(big(1 + round * 100 + n));
        }
        let hung = &bus.stats()[0];
        assert!(
            hung.queued_bytes <= BOUND,
            "round {round}: {} bytes queued, bound {BOUND}",
            hung.queued_bytes
        );
        assert!(hung.queued_bytes > BOUND / 2, "{} bytes", hung.queued_bytes);
        assert!(
            hung.queued < 20,
            "{} events held: bounded by bytes, not by count",
            hung.queued
        );
        dropped.push(hung.dropped);
    }
    assert!(
        dropped.windows(2).all(|w| w[1] >= w[0] + 90),
        "every round pushes the oldest out, counted: {dropped:?}"
    );
    let stats = bus.shutdown(Duration::from_millis(200));
    assert_eq!(stats[0].delivered, 0);
}

#[test]
fn signature_is_hmac_sha256_of_the_body() {
    let server = Server::start(Behavior::FailFirst(0));
    let spec = format!("{};secret=s3cret;batch-ms=0", server.url());
    let bus = EventBus::start("n".into(), vec![webhook(&spec)]).unwrap();
    for n in 0..3 {
        bus.emit(numbered(EventType::KeyframeRequested, n).with_source(4));
    }
    assert!(wait_for(PATIENCE, || bus.stats()[0].delivered == 3));
    for request in server.requests() {
        assert_eq!(request.header("content-type"), Some("application/json"));
        let header = request.header("x-corecast-signature").expect("signed");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(&request.body);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(header, expected);
        let mut wrong = Hmac::<Sha256>::new_from_slice(b"other").unwrap();
        wrong.update(&request.body);
        assert_ne!(
            header,
            format!("sha256={}", hex::encode(wrong.finalize().into_bytes()))
        );
    }
    bus.shutdown(Duration::from_secs(5));

    // Without a secret there is no signature header.
    let server = Server::start(Behavior::FailFirst(0));
    let bus = EventBus::start("n".into(), vec![webhook(&server.url())]).unwrap();
    bus.emit(Event::now(EventType::NodeStarted));
    bus.shutdown(Duration::from_secs(5));
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].header("x-corecast-signature"), None);
}

#[test]
fn masks_filter_what_each_handler_receives() {
    let switches = Server::start(Behavior::FailFirst(0));
    let everything = Server::start(Behavior::FailFirst(0));
    let configs = vec![
        webhook(&format!("{};types=switch.*;batch-ms=0", switches.url())),
        webhook(&format!("{};batch-ms=0", everything.url())),
    ];
    let bus = EventBus::start("n".into(), configs).unwrap();
    assert!(bus.wants(EventType::Drops));
    for kind in EventType::ALL {
        bus.emit(Event::now(kind).with_subscriber(9));
    }
    assert!(wait_for(PATIENCE, || bus.stats()[1].delivered
        == EventType::ALL.len() as u64));
    assert!(wait_for(PATIENCE, || bus.stats()[0].delivered == 4));

    let names = |server: &Server| -> Vec<String> {
        let events = server.accepted_events();
        events
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect()
    };
    let expected = [
        "switch.requested",
        "switch.completed",
        "switch.timed_out",
        "switch.cancelled",
    ];
    assert_eq!(names(&switches), expected);
    let all: Vec<&str> = EventType::ALL.iter().map(|t| t.name()).collect();
    assert_eq!(names(&everything), all);

    let stats = bus.shutdown(Duration::from_secs(5));
    assert_eq!(stats[0].dropped + stats[1].dropped, 0);
}

#[test]
fn batches_hold_at_most_batch_max_events_in_order() {
    let server = Server::start(Behavior::FailFirst(0));
    let spec = format!("{};batch=10;batch-ms=50", server.url());
    let bus = EventBus::start("n".into(), vec![webhook(&spec)]).unwrap();
    for n in 0..25 {
        bus.emit(numbered(EventType::SubscriberAdded, n).with_subscriber(n as u32));
    }
    assert!(wait_for(PATIENCE, || bus.stats()[0].delivered == 25));
    let sizes: Vec<usize> = server
        .requests()
        .iter()
        .map(|r| r.json().as_array().unwrap().len())
        .collect();
    assert!(
        sizes.iter().all(|&s| (1..=10).contains(&s)),
        "batch sizes {sizes:?}"
    );
    assert!(sizes.len() >= 3, "batch sizes {sizes:?}");
    assert_eq!(
        numbers(&server.accepted_events()),
        (0..25).collect::<Vec<_>>()
    );
    let stats = bus.shutdown(Duration::from_secs(5)).remove(0);
    assert_eq!(stats.posts as usize, sizes.len());
}

#[test]
fn shutdown_flushes_without_waiting_for_a_full_batch() {
    let server = Server::start(Behavior::FailFirst(0));
    // A batch would wait ten seconds to fill; shutdown must not.
    let spec = format!("{};batch=1000;batch-ms=10000", server.url());
    let bus = EventBus::start("n".into(), vec![webhook(&spec)]).unwrap();
    for n in 0..7 {
        bus.emit(numbered(EventType::Drops, n));
    }
    let start = Instant::now();
    let stats = bus.shutdown(Duration::from_secs(5)).remove(0);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!((stats.delivered, stats.dropped), (7, 0));
    assert_eq!(
        numbers(&server.accepted_events()),
        (0..7).collect::<Vec<_>>()
    );
}

#[test]
fn json_lines_handler_appends_one_envelope_per_line() {
    let path = temp_path("jsonl");
    std::fs::write(&path, "existing line\n").unwrap();
    let config: JsonLinesConfig = format!("{};types=source.*,stats", path.display())
        .parse()
        .unwrap();
    let bus = EventBus::start("edge-7".into(), vec![HandlerConfig::JsonLines(config)]).unwrap();
    bus.emit(
        Event::now(EventType::SourceCreated)
            .with_source(3)
            .with_data(json!({"codec": "vp8"})),
    );
    bus.emit(Event::now(EventType::SwitchCompleted).with_subscriber(1)); // filtered out
    bus.emit(Event::now(EventType::Stats).with_data(json!({"packets": 12})));
    bus.emit(
        Event::now(EventType::SourceIdle)
            .with_source(3)
            .with_subscriber(5),
    );
    let stats = bus.shutdown(Duration::from_secs(5)).remove(0);
    assert_eq!(stats.kind, "jsonl");
    assert_eq!(stats.name, format!("jsonl:{}", path.display()));
    assert_eq!((stats.delivered, stats.dropped, stats.posts), (3, 0, 0));

    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("existing line"));
    let events: Vec<Value> = lines
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(events.len(), 3);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["source.created", "stats", "source.idle"]);
    for e in &events {
        assert_eq!(e["node"], "edge-7");
        assert!(
            e["timestamp"].as_u64().unwrap() > 1_600_000_000_000_000,
            "unix µs"
        );
        assert!(e["data"].is_object());
    }
    assert_eq!(events[0]["source"], 3);
    assert_eq!(events[0]["data"]["codec"], "vp8");
    assert!(events[0].get("subscriber").is_none());
    assert!(events[1].get("source").is_none() && events[1].get("subscriber").is_none());
    assert_eq!(
        (
            events[2]["source"].as_u64(),
            events[2]["subscriber"].as_u64()
        ),
        (Some(3), Some(5))
    );
    let _ = std::fs::remove_file(path);

    // A path that cannot be opened fails start-up, naming the path.
    let bad: JsonLinesConfig = "/nonexistent-dir/x/events.jsonl".parse().unwrap();
    let err = EventBus::start("n".into(), vec![HandlerConfig::JsonLines(bad)])
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("/nonexistent-dir/x/events.jsonl"),
        "{err}"
    );
}

fn temp_path(tag: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!(
        "corecast-events-{tag}-{}-{nanos}.jsonl",
        std::process::id()
    ))
}

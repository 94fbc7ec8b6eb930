//! Telemetry of a running node: /metrics parses as Prometheus text and moves with traffic, the
//! event stream tells what happened, and a webhook that never answers does not slow forwarding.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;

use common::*;

/// Scrape /metrics and parse it with a Prometheus text parser.
fn scrape(addr: &str) -> prometheus_parse::Scrape {
    let body = ureq::get(&format!("http://{addr}/metrics"))
        .call()
        .expect("metrics answer")
        .into_body()
        .read_to_string()
        .unwrap();
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .expect("valid Prometheus text")
}

fn counter(scrape: &prometheus_parse::Scrape, name: &str, label: Option<(&str, &str)>) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[test]
fn metrics_parse_and_move_with_traffic() {
    let (node, client) = start(&["--stats-interval", "50"]);
    let addr = node.http_addr().to_string();
    let src = source(&client, "cam", "vp8");
    let receivers: Vec<_> = (0..10).map(|_| receiver()).collect();
    subscribe(&client, src.id, &receivers);
    let before = scrape(&addr);
    assert_eq!(counter(&before, "corecast_subscribers", None), 10.0);
    assert_eq!(counter(&before, "corecast_sources", None), 1.0);

    let mut sender = Sender::new(ingest_addr(&src), 7, 30);
    let mut got = vec![Vec::new(); receivers.len()];
    for _ in 0..100 {
        sender.send();
    }
    until("the packets to reach every subscriber", || {
        for (r, g) in receivers.iter().zip(got.iter_mut()) {
            drain(r, g);
        }
        got.iter().all(|g| g.len() >= 100)
    });
    let id = src.id.to_string();
    until("/metrics to count the traffic", || {
        let now = scrape(&addr);
        counter(
            &now,
            "corecast_packets_received_total",
            Some(("source", &id)),
        ) >= 100.0
            && counter(&now, "corecast_packets_forwarded_total", None) >= 1000.0
    });
    let after = scrape(&addr);
    assert_eq!(
        counter(
            &before,
            "corecast_packets_received_total",
            Some(("source", &id))
        ),
        0.0
    );
    assert!(
        counter(
            &after,
            "corecast_source_packets_forwarded_total",
            Some(("source", &id))
        ) >= 1000.0
    );
    // Every copy's latency was recorded, from the kernel's receive timestamp.
    let latency = after
        .samples
        .iter()
        .find(|s| s.metric == "corecast_forward_latency_seconds")
        .expect("the latency histogram");
    match &latency.value {
        prometheus_parse::Value::Histogram(buckets) => {
            let total = buckets.iter().map(|b| b.count).fold(0.0, f64::max);
            assert!(total >= 1000.0, "{total} copies in the histogram");
        }
        other => panic!("latency is not a histogram: {other:?}"),
    }
    let stats = client.stats().unwrap();
    assert!(stats.node.latency_p99_us > 0);
    assert_eq!(stats.sources[0].state, "active");
}

#[test]
fn events_tell_the_story_of_a_switch_and_an_idle_source() {
    let dir = std::env::temp_dir().join(format!("corecast-events-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("events.jsonl");
    let path = file.display().to_string();
    let (mut node, client) = start(&[
        "--events-jsonl",
        &path,
        "--idle-timeout",
        "200",
        "--stats-interval",
        "50",
    ]);
    let a = source(&client, "a", "vp8");
    let b = source(&client, "b", "vp8");
    let receivers = vec![receiver()];
    let subs = subscribe(&client, a.id, &receivers);
    let mut sa = Sender::new(ingest_addr(&a), 0xa, 30);
    let mut sb = Sender::new(ingest_addr(&b), 0xb, 5);
    let mut got = Vec::new();
    until("the subscriber to be live", || {
        sa.send();
        drain(&receivers[0], &mut got);
        !got.is_empty()
    });
    // B is running (and latched) before the switch, so the node can ask it for a keyframe.
    until("B to be latched", || {
        sb.send();
        client.source(b.id).unwrap().sender.is_some()
    });
    client.switch(subs[0].id, b.id).unwrap();
    until("the switch to complete", || {
        sa.send();
        sb.send();
        client.subscriber(subs[0].id).unwrap().source == Some(b.id)
    });
    // A stops sending: after the idle timeout it is reported idle.
    until("A to turn idle", || {
        sb.send();
        client.source(a.id).unwrap().state == "idle"
    });
    node.shutdown();
    let lines: Vec<serde_json::Value> = BufReader::new(std::fs::File::open(&file).unwrap())
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).expect("one JSON envelope per line"))
        .collect();
    let types: Vec<&str> = lines.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for expected in [
        "node.started",
        "source.created",
        "subscriber.added",
        "source.active",
        "switch.requested",
        "keyframe.requested",
        "switch.completed",
        "source.idle",
        "stats",
        "node.stopping",
    ] {
        assert!(types.contains(&expected), "no {expected} in {types:?}");
    }
    let completed = lines
        .iter()
        .find(|e| e["type"] == "switch.completed")
        .unwrap();
    assert_eq!(completed["subscriber"], subs[0].id);
    assert_eq!(completed["data"]["to"], b.id);
    assert!(completed["data"]["took_ms"].as_f64().is_some());
    assert!(lines
        .iter()
        .all(|e| e["node"] == "corecast" && e["timestamp"].as_u64().is_some()));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_webhook_that_never_answers_does_not_slow_forwarding() {
    // Accepts connections and reads nothing back: every POST hangs until the client's timeout.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let hook = format!(
        "http://{}/hook;queue=64;timeout-ms=300;retries=1",
        listener.local_addr().unwrap()
    );
    let (node, client) = start(&["--webhook", &hook, "--stats-interval", "20"]);
    let addr = node.http_addr().to_string();
    let src = source(&client, "cam", "vp8");
    let receivers: Vec<_> = (0..50).map(|_| receiver()).collect();
    subscribe(&client, src.id, &receivers);
    let mut sender = Sender::new(ingest_addr(&src), 9, 30);
    let mut got = vec![Vec::new(); receivers.len()];
    let mut sent = 0;
    until(
        "forwarding to go on while the webhook hangs, and its drops to be counted",
        || {
            for _ in 0..20 {
                sender.send();
                sent += 1;
            }
            for (r, g) in receivers.iter().zip(got.iter_mut()) {
                drain(r, g);
            }
            let m = scrape(&addr);
            counter(&m, "corecast_events_dropped_total", None) > 0.0 && sent >= 400
        },
    );
    until("every subscriber to have every packet", || {
        for (r, g) in receivers.iter().zip(got.iter_mut()) {
            drain(r, g);
        }
        got.iter().all(|g| g.len() >= sent)
    });
    let stats = client.stats().unwrap();
    let hook_stats = &stats.events[0];
    assert!(
        hook_stats.queued <= 64,
        "the queue is bounded: {}",
        hook_stats.queued
    );
    assert!(hook_stats.dropped > 0);
    assert!(
        stats.node.drops.is_empty(),
        "no packet dropped: {:?}",
        stats.node.drops
    );
    drop(listener);
}

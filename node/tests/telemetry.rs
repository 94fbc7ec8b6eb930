//! Telemetry of a running node: /metrics parses as Prometheus text and moves with traffic, its
//! counters never go backwards, the event stream tells what happened, and a webhook that never
//! answers does not slow forwarding.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, UdpSocket};

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

/// Every sample of a scrape, keyed `name{label="value",...}` with the labels sorted; each
/// histogram bucket is one sample (`name_bucket{...,le="..."}`).
fn series(scrape: &prometheus_parse::Scrape) -> BTreeMap<String, f64> {
    let key = |name: &str, labels: &prometheus_parse::Labels, extra: Option<(&str, String)>| {
        let mut pairs: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain(extra.map(|(k, v)| (k.to_string(), v)))
            .collect();
        pairs.sort();
        let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        format!("{name}{{{}}}", inner.join(","))
    };
    let mut out = BTreeMap::new();
    for s in &scrape.samples {
        match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => {
                out.insert(key(&s.metric, &s.labels, None), *v);
            }
            prometheus_parse::Value::Histogram(buckets) => {
                for b in buckets {
                    let name = format!("{}_bucket", s.metric);
                    let le = Some(("le", b.less_than.to_string()));
                    out.insert(key(&name, &s.labels, le), b.count);
                }
            }
            prometheus_parse::Value::Summary(_) => {}
        }
    }
    out
}

/// Counters (OpenMetrics names them `*_total`) and cumulative histogram buckets.
fn is_cumulative(key: &str) -> bool {
    let name = &key[..key.find('{').unwrap_or(key.len())];
    name.ends_with("_total") || name.ends_with("_bucket")
}

/// Traffic that the ingest port of `to` drops, from an address that is not the latched sender.
fn stray_packet(from: &UdpSocket, to: std::net::SocketAddr) {
    let rtp = [0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0x77, 0x10, 0, 0];
    from.send_to(&rtp, to).unwrap();
}

#[test]
fn deleting_a_source_or_a_subscriber_never_lowers_a_counter() {
    let (node, client) = start(&["--stats-interval", "20"]);
    let addr = node.http_addr().to_string();
    let a = source(&client, "a", "vp8");
    let b = source(&client, "b", "vp8");
    // Two shards: four subscribers of A land on both.
    let receivers_a: Vec<_> = (0..4).map(|_| receiver()).collect();
    let receivers_b: Vec<_> = (0..2).map(|_| receiver()).collect();
    let subs_a = subscribe(&client, a.id, &receivers_a);
    subscribe(&client, b.id, &receivers_b);
    let mut sender_a = Sender::new(ingest_addr(&a), 0xa, 30);
    let mut sender_b = Sender::new(ingest_addr(&b), 0xb, 30);
    let stray = UdpSocket::bind("127.0.0.1:0").unwrap();
    until("A's copies and drops to be counted", || {
        sender_a.send();
        sender_b.send();
        stray_packet(&stray, ingest_addr(&a));
        let c = client.source(a.id).unwrap().counters;
        c.packets_forwarded >= 400 && c.drops.get("wrong_sender").is_some_and(|&n| n >= 50)
    });
    let before = series(&scrape(&addr));
    let stats_before = client.stats().unwrap();

    client.delete_subscriber(subs_a[0].id).unwrap();
    client.delete_source(a.id).unwrap();
    let label = format!("source=\"{}\"", a.id);
    until("the deleted source's series to leave /metrics", || {
        sender_b.send();
        !series(&scrape(&addr)).keys().any(|k| k.contains(&label))
    });
    let after = series(&scrape(&addr));
    let stats_after = client.stats().unwrap();

    let mut lowered = Vec::new();
    for (key, &was) in before.iter().filter(|(k, _)| is_cumulative(k)) {
        match after.get(key) {
            Some(&now) if now < was => lowered.push(format!("{key}: {was} -> {now}")),
            Some(_) => {}
            // Only a deleted source's own series may go, with its label.
            None if key.contains(&label) => {}
            None => lowered.push(format!("{key}: {was} -> gone")),
        }
    }
    assert!(lowered.is_empty(), "counters went backwards: {lowered:#?}");

    let (was, now) = (&stats_before.node, &stats_after.node);
    assert!(
        now.packets_received >= was.packets_received,
        "{was:?} -> {now:?}"
    );
    assert!(now.packets_forwarded >= was.packets_forwarded);
    for (reason, &n) in &was.drops {
        assert!(
            now.drops.get(reason).is_some_and(|&m| m >= n),
            "node drops {reason}: {was:?} -> {now:?}"
        );
    }
    for (was, now) in stats_before.shards.iter().zip(&stats_after.shards) {
        assert!(now.packets_in >= was.packets_in && now.packets_out >= was.packets_out);
        for (reason, &n) in &was.drops {
            assert!(
                now.drops.get(reason).is_some_and(|&m| m >= n),
                "shard {} drops {reason}: {:?} -> {:?}",
                was.shard,
                was.drops,
                now.drops
            );
        }
    }
}

/// The sum of the samples of `name` whose labels include every pair of `with`.
fn sum(series: &BTreeMap<String, f64>, name: &str, with: &[(&str, &str)]) -> f64 {
    let wanted: Vec<String> = with.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    series
        .iter()
        .filter(|(key, _)| key.starts_with(&format!("{name}{{")))
        .filter(|(key, _)| wanted.iter().all(|w| key.contains(w.as_str())))
        .map(|(_, v)| v)
        .sum()
}

/// The label values of `label` among the samples of `name`.
fn label_values(series: &BTreeMap<String, f64>, name: &str, label: &str) -> Vec<String> {
    let prefix = format!("{label}=\"");
    series
        .keys()
        .filter(|key| key.starts_with(&format!("{name}{{")))
        .filter_map(|key| {
            let at = key.find(&prefix)? + prefix.len();
            Some(key[at..at + key[at..].find('"')?].to_string())
        })
        .collect()
}

/// Scrapes until two scrapes at least five stats intervals apart show the same counters: every
/// snapshot in flight has been taken in.
fn quiesced(addr: &str, stats_interval: std::time::Duration) -> BTreeMap<String, f64> {
    let counters = |s: prometheus_parse::Scrape| -> BTreeMap<String, f64> {
        series(&s)
            .into_iter()
            .filter(|(k, _)| is_cumulative(k) || k.starts_with("corecast_packets_held"))
            .collect()
    };
    let mut last = counters(scrape(addr));
    let mut at = std::time::Instant::now();
    let mut settled = None;
    until("two identical scrapes", || {
        if at.elapsed() < stats_interval * 5 {
            return false;
        }
        let now = counters(scrape(addr));
        at = std::time::Instant::now();
        if now == last {
            settled = Some(now);
            return true;
        }
        last = now;
        false
    });
    settled.expect("until returned")
}

#[test]
fn a_scrape_alone_checks_both_conservation_laws() {
    let interval = std::time::Duration::from_millis(20);
    let (node, client) = start(&["--stats-interval", "20"]);
    let addr = node.http_addr().to_string();
    let src = source(&client, "a", "vp8");
    let to = ingest_addr(&src);
    let early: Vec<_> = (0..4).map(|_| receiver()).collect();
    subscribe(&client, src.id, &early);
    // Ten frames a GOP (35 packets): a subscriber that joins mid-GOP waits for the next keyframe.
    let mut sender = Sender::new(to, 0xa, 10);
    let mut got = vec![Vec::new(); early.len()];
    until("the first subscribers to be live", || {
        sender.send();
        for (r, g) in early.iter().zip(got.iter_mut()) {
            drain(r, g);
        }
        got.iter().all(|g| !g.is_empty())
    });
    while sender.send().keyframe {}
    // Joins mid-GOP (waiting_keyframe), and one more whose copies the kernel refuses: an IPv6
    // destination for the shard's IPv4 socket (send_failed).
    let late = receiver();
    subscribe(&client, src.id, std::slice::from_ref(&late));
    let refused = corecast_signaling::api::CreateSubscriber {
        source: src.id,
        dest: "[::1]:9".into(),
    };
    client
        .create_subscribers(&[refused])
        .expect("subscriber created");
    let stray = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..80 {
        sender.send();
        stray_packet(&stray, to); // wrong_sender
    }
    for _ in 0..10 {
        let mut buf = Vec::new();
        sender.stream.next_packet(&mut buf);
        sender.socket.send_to(&buf, to).unwrap();
        sender.socket.send_to(&buf, to).unwrap(); // duplicate
        sender.socket.send_to(&[0x80, 96, 0], to).unwrap(); // malformed
    }
    until("every kind of drop to be counted", || {
        let c = client.source(src.id).unwrap().counters;
        [
            "wrong_sender",
            "duplicate",
            "malformed",
            "waiting_keyframe",
            "send_failed",
        ]
        .iter()
        .all(|r| c.drops.contains_key(*r))
            && c.packets_received >= 80 + 80 + 30
    });

    let m = quiesced(&addr, interval);
    let id = src.id.to_string();
    for with in [vec![], vec![("source", id.as_str())]] {
        let prefix = if with.is_empty() {
            "corecast"
        } else {
            "corecast_source"
        };
        let metric = |name: &str| format!("{prefix}_{name}");
        let received = sum(&m, &metric("packets_received_total"), &with);
        let accepted = sum(&m, &metric("packets_accepted_total"), &with);
        let dropped = sum(&m, &metric("packets_dropped_total"), &with);
        let held = sum(&m, &metric("packets_held"), &with);
        assert!(received >= 190.0, "{with:?}: {received} received");
        assert_eq!(
            received,
            accepted + dropped + held,
            "{with:?}: received = accepted + dropped + held"
        );
        let reasons = label_values(&m, &metric("packets_dropped_total"), "reason");
        for r in ["wrong_sender", "duplicate", "malformed"] {
            assert!(
                reasons.iter().any(|x| x == r),
                "{with:?}: no {r} in {reasons:?}"
            );
        }
        assert!(
            !reasons.iter().any(|x| x == "waiting_keyframe"),
            "per-copy drops are not packet drops: {reasons:?}"
        );
    }
    let mut reasons = Vec::new();
    for shard in ["0", "1"] {
        let with = [("shard", shard)];
        let due = sum(&m, "corecast_copies_due_total", &with);
        let sent = sum(&m, "corecast_copies_sent_total", &with);
        let dropped = sum(&m, "corecast_copies_dropped_total", &with);
        assert_eq!(due, sent + dropped, "shard {shard}: due = sent + dropped");
        reasons.extend(
            label_values(&m, "corecast_copies_dropped_total", "reason")
                .into_iter()
                .filter(|_| dropped > 0.0),
        );
    }
    // The first four subscribers were due a copy of every accepted packet.
    let accepted = sum(&m, "corecast_packets_accepted_total", &[]);
    assert!(sum(&m, "corecast_copies_due_total", &[]) >= accepted * 4.0);
    for r in ["waiting_keyframe", "send_failed"] {
        assert!(reasons.iter().any(|x| x == r), "no {r} in {reasons:?}");
    }

    // /v1/stats says the same.
    let stats = client.stats().unwrap();
    let total = |m: &BTreeMap<String, u64>| m.values().sum::<u64>();
    let n = &stats.node;
    assert_eq!(
        n.packets_received,
        n.packets_accepted + total(&n.packet_drops) + n.packets_held,
        "{n:?}"
    );
    assert_eq!(n.copies_due, n.copies_sent + total(&n.copy_drops), "{n:?}");
    assert_eq!(
        n.packets_received as f64,
        sum(&m, "corecast_packets_received_total", &[])
    );
    for s in &stats.shards {
        assert_eq!(s.copies_due, s.copies_sent + total(&s.copy_drops), "{s:?}");
    }
    let c = &stats.sources[0].counters;
    assert_eq!(
        c.packets_received,
        c.packets_accepted + total(&c.packet_drops) + c.packets_held,
        "{c:?}"
    );
    assert_eq!(
        c.copies_due,
        c.packets_forwarded + total(&c.copy_drops),
        "{c:?}"
    );
}

/// The envelopes in a JSON lines file so far (a line still being written is left out).
fn read_events(path: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn stats_events_list_only_the_sources_and_subscribers_that_moved() {
    let dir = std::env::temp_dir().join(format!("corecast-stats-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("events.jsonl");
    let path = file.display().to_string();
    let jsonl = format!("{path};types=stats");
    let (node, client) = start(&["--events-jsonl", &jsonl, "--stats-interval", "30"]);
    let busy = source(&client, "busy", "vp8");
    let quiet = source(&client, "quiet", "vp8");
    let busy_receivers: Vec<_> = (0..3).map(|_| receiver()).collect();
    let quiet_receivers: Vec<_> = (0..2).map(|_| receiver()).collect();
    let busy_subs: Vec<String> = subscribe(&client, busy.id, &busy_receivers)
        .iter()
        .map(|s| s.id.to_string())
        .collect();
    subscribe(&client, quiet.id, &quiet_receivers);
    let mut sender = Sender::new(ingest_addr(&busy), 0xb, 30);
    let mut listed = std::collections::BTreeSet::new();
    until("a stats event with the busy source's subscribers", || {
        sender.send();
        for e in read_events(&file) {
            listed.extend(
                e["data"]["subscribers"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .cloned(),
            );
        }
        busy_subs.iter().all(|id| listed.contains(id))
    });
    let only_what_moved = |events: &[serde_json::Value]| {
        for e in events {
            assert_eq!(e["type"], "stats");
            let data = &e["data"];
            for (id, s) in data["sources"].as_object().unwrap() {
                assert_eq!(
                    id,
                    &busy.id.to_string(),
                    "only the busy source moved: {data}"
                );
                assert!(s["packets"].as_u64().unwrap() > 0, "{data}");
            }
            for (id, s) in data["subscribers"].as_object().unwrap() {
                assert!(
                    busy_subs.contains(id),
                    "subscriber {id} got nothing: {data}"
                );
                assert!(s["packets"].as_u64().unwrap() > 0, "{data}");
            }
        }
    };
    only_what_moved(&read_events(&file));
    // Once the sender stops, the events list nothing at all.
    let seen = read_events(&file).len();
    until("a stats event after the traffic stopped", || {
        read_events(&file)[seen..].iter().any(|e| {
            e["data"]["subscribers"].as_object().unwrap().is_empty()
                && e["data"]["sources"].as_object().unwrap().is_empty()
        })
    });
    drop(node);
    only_what_moved(&read_events(&file));
    std::fs::remove_dir_all(&dir).unwrap();
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
            "corecast_source_packets_received_total",
            Some(("source", &id)),
        ) >= 100.0
            && counter(&now, "corecast_copies_sent_total", None) >= 1000.0
    });
    let after = scrape(&addr);
    assert_eq!(
        counter(
            &before,
            "corecast_source_packets_received_total",
            Some(("source", &id))
        ),
        0.0
    );
    assert!(
        counter(
            &after,
            "corecast_source_copies_sent_total",
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
        "http://{}/hook;queue=64;queue-bytes=8192;timeout-ms=300;retries=1",
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
            let queued_bytes = counter(&m, "corecast_event_queue_bytes", None);
            assert!(queued_bytes <= 8192.0, "{queued_bytes} bytes queued");
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
        hook_stats.queued <= 64 && (1..=8192).contains(&hook_stats.queued_bytes),
        "the queue is bounded: {} events, {} bytes",
        hook_stats.queued,
        hook_stats.queued_bytes
    );
    assert!(hook_stats.dropped > 0);
    assert!(
        stats.node.drops.is_empty(),
        "no packet dropped: {:?}",
        stats.node.drops
    );
    drop(listener);
}

/// Send whole frames; returns how many packets went out.
fn send_frames(sender: &mut Sender, frames: usize) -> u64 {
    let (mut packets, mut done) = (0, 0);
    while done < frames {
        packets += 1;
        done += usize::from(sender.send().marker);
    }
    packets
}

#[test]
fn the_keyframe_interval_is_the_senders_spacing_not_the_stats_interval() {
    let (_node, client) = start(&["--stats-interval", "50"]);
    let src = source(&client, "cam", "vp8");
    // 30 fps and a keyframe every 90 frames: 3 s of media time apart, sent as fast as the
    // loop goes, so the spacing is known only from the RTP timestamps.
    let mut sender = Sender::new(ingest_addr(&src), 7, 90);
    let mut sent = send_frames(&mut sender, 90);
    let seen = |keyframes: u64, sent: u64| {
        let mut view = None;
        until("ingest's counters to reach the stats", || {
            let v = client.source(src.id).unwrap();
            let done = v.counters.packets_accepted == sent && v.counters.keyframes == keyframes;
            view = Some(v);
            done
        });
        view.unwrap()
    };
    let one = seen(1, sent);
    assert_eq!(
        one.counters.keyframe_interval_s, None,
        "one keyframe: {one:?}"
    );
    // Frames 90 to 210: keyframes at frames 90 and 180, about 7 s of media in all.
    sent += send_frames(&mut sender, 121);
    let three = seen(3, sent);
    let interval = three.counters.keyframe_interval_s.expect("an interval");
    assert!(
        (interval - 3.0).abs() < 1e-6,
        "{interval} s, not 3 s: {three:?}"
    );
    // The rates say which interval of uptime they cover.
    let c = &three.counters;
    let (start, end) = (c.interval_start_s.unwrap(), c.interval_end_s.unwrap());
    assert!(0.0 < start && start < end, "{start}..{end}");
}

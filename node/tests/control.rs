//! The node's control plane over real HTTP: errors that only the node can judge (unknown ids, port
//! conflicts, codec mismatches, limits), deleting a source, and a subscriber's keyframe request.

mod common;

use common::*;
use corecast_engine::rtcp::{self, RtcpPacket, PLI_LEN};
use corecast_engine::Ssrc;
use corecast_signaling::api::{CreateSource, CreateSubscriber};
use corecast_signaling::client::Client;
use serde_json::Value;

/// `POST /v1/subscribers/{sub}/switch`: the HTTP status and the JSON body.
fn post_switch(client: &Client, sub: u32, source: u32) -> (u16, Value) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .new_agent();
    let url = format!("{}/v1/subscribers/{sub}/switch", client.base());
    let mut answer = agent
        .post(&url)
        .header("content-type", "application/json")
        .send(format!(r#"{{"source":{source}}}"#))
        .unwrap();
    let body = answer.body_mut().read_to_string().unwrap();
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (answer.status().as_u16(), json)
}

/// The events a node wrote to its `--events-jsonl` file.
fn events_in(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON envelope per line"))
        .collect()
}

#[test]
fn the_node_refuses_what_it_cannot_do_with_the_right_status() {
    let (_node, client) = start(&["--max-subscribers", "3"]);
    let vp8 = source(&client, "vp8", "vp8");
    let h264 = source(&client, "h264", "h264");

    let (status, code, message) = api_error(client.create_source(&CreateSource {
        name: "vp8".into(),
        codec: "vp8".into(),
        ..Default::default()
    }));
    assert_eq!((status, code.as_str()), (409, "conflict"), "{message}");

    let (status, _, message) = api_error(client.create_source(&CreateSource {
        name: "again".into(),
        codec: "vp8".into(),
        port: Some(vp8.ingest.port),
        ..Default::default()
    }));
    assert_eq!(status, 409, "port in use: {message}");
    assert!(message.contains(&vp8.ingest.port.to_string()), "{message}");

    let (status, _, message) = api_error(client.create_source(&CreateSource {
        name: "x".into(),
        codec: "mpeg2".into(),
        ..Default::default()
    }));
    assert_eq!(status, 400);
    assert!(message.contains("mpeg2"), "{message}");

    // Parameter sets from an SDP: each mistake named, nothing created.
    let with_sets = |codec: &str, sets: &str| CreateSource {
        name: format!("sets-{codec}-{}", sets.len()),
        codec: codec.into(),
        parameter_sets: Some(sets.into()),
        ..Default::default()
    };
    let (sps, pps) = ("Z0LACw==", "aM48gA==");
    for (codec, sets, says) in [
        ("h264", "Z0LACw==,not base64!", "unit 1"),
        ("h264", sps, "no PPS"),
        ("h264", "ZYiE,aM48gA==", "unit 0 is not a parameter set"),
        ("vp8", "Z0LACw==,aM48gA==", "vp8 has no parameter sets"),
    ] {
        let (status, code, message) = api_error(client.create_source(&with_sets(codec, sets)));
        assert_eq!((status, code.as_str()), (400, "bad_request"), "{message}");
        assert!(message.contains(says), "{sets}: {message}");
    }
    let view = client
        .create_source(&with_sets("h264", &format!("{sps}, {pps}")))
        .unwrap();
    assert!(view.parameter_sets);
    assert!(!h264.parameter_sets);
    client.delete_source(view.id).unwrap();

    let sub = |source: u32, dest: &str| CreateSubscriber {
        source,
        dest: dest.into(),
    };
    let (status, _, _) = api_error(client.create_subscriber(&sub(99, "127.0.0.1:9")));
    assert_eq!(status, 404);
    let (status, _, message) = api_error(client.create_subscriber(&sub(vp8.id, "nowhere")));
    assert_eq!(status, 400);
    assert!(message.contains("nowhere"), "{message}");

    let r = receiver();
    let s = client
        .create_subscriber(&sub(vp8.id, &r.local_addr().unwrap().to_string()))
        .unwrap();
    let (status, _, message) = api_error(client.switch(s.id, h264.id));
    assert_eq!(status, 409, "codec mismatch: {message}");
    assert!(message.contains("h264"), "{message}");
    assert_eq!(api_error(client.switch(s.id, 77)).0, 404);
    assert_eq!(api_error(client.switch(4242, vp8.id)).0, 404);

    // All or nothing: the batch that would pass the limit adds nobody.
    let batch: Vec<_> = (0..3)
        .map(|i| sub(vp8.id, &format!("127.0.0.1:{}", 5000 + i)))
        .collect();
    let (status, _, _) = api_error(client.create_subscribers(&batch));
    assert_eq!(status, 429);
    assert_eq!(client.subscribers().unwrap().len(), 1);
}

#[test]
fn deleting_a_source_leaves_its_subscribers_idle_until_switched() {
    let (_node, client) = start(&[]);
    let a = source(&client, "a", "vp8");
    let b = source(&client, "b", "vp8");
    let receivers = vec![receiver()];
    let subs = subscribe(&client, a.id, &receivers);
    client.delete_source(a.id).unwrap();
    assert_eq!(api_error(client.source(a.id)).0, 404);
    let view = client.subscriber(subs[0].id).unwrap();
    assert_eq!(view.source, None, "idle, not deleted");
    client.switch(subs[0].id, b.id).unwrap();
    let mut sb = Sender::new(ingest_addr(&b), 0xb, 30);
    let mut got = Vec::new();
    until("the idle subscriber to receive B", || {
        sb.send();
        drain(&receivers[0], &mut got);
        !got.is_empty()
    });
    assert!(got[0].keyframe_start);
    // The control thread learns of the switch from the shard's next event.
    until("the subscriber's view to show B", || {
        client.subscriber(subs[0].id).unwrap().source == Some(b.id)
    });
}

#[test]
fn a_subscribers_pli_becomes_one_keyframe_request_to_the_source() {
    let (_node, client) = start(&["--pli-interval", "60000"]);
    let src = source(&client, "cam", "vp8");
    let receivers: Vec<_> = (0..3).map(|_| receiver()).collect();
    let subs = subscribe(&client, src.id, &receivers);
    let mut sender = Sender::new(ingest_addr(&src), 0x5e, 30);
    let mut got = vec![Vec::new(); 3];
    until("the subscribers to receive media", || {
        sender.send();
        for (r, g) in receivers.iter().zip(got.iter_mut()) {
            drain(r, g);
        }
        got.iter().all(|g| !g.is_empty())
    });
    // Every subscriber asks, several times: one request reaches the source per interval.
    for (r, s) in receivers.iter().zip(&subs) {
        let mut pli = [0u8; PLI_LEN];
        rtcp::write_pli(&mut pli, Ssrc(1), Ssrc(s.ssrc));
        for _ in 0..3 {
            r.send_to(&pli, s.media_from).unwrap();
        }
    }
    let mut requests = 0;
    until("a keyframe request at the source", || {
        if let Some(bytes) = sender.poll_rtcp() {
            requests += rtcp::packets(&bytes)
                .flatten()
                .filter(|p| matches!(p, RtcpPacket::Pli { media_ssrc, .. } if media_ssrc.0 == 0x5e))
                .count();
        }
        requests > 0
    });
    until("the request to be counted", || {
        client.source(src.id).unwrap().counters.keyframe_requests == 1
    });
    // Nothing more arrives within the interval (each poll waits a few ms for a datagram).
    for _ in 0..40 {
        assert!(
            sender.poll_rtcp().is_none(),
            "requests are coalesced per --pli-interval"
        );
    }
}

#[test]
fn a_pli_is_taken_only_from_the_subscribers_address() {
    // One shard: all RTCP arrives on one socket and is read in order of arrival.
    let (_node, client) = start(&[
        "--shards",
        "1",
        "--pli-interval",
        "0",
        "--stats-interval",
        "50",
    ]);
    let a = source(&client, "a", "vp8");
    let b = source(&client, "b", "vp8");
    let receivers: Vec<_> = (0..2).map(|_| receiver()).collect();
    let on_a = subscribe(&client, a.id, &receivers[..1]).remove(0);
    let on_b = subscribe(&client, b.id, &receivers[1..]).remove(0);
    let mut sa = Sender::new(ingest_addr(&a), 0xa, 30);
    let mut sb = Sender::new(ingest_addr(&b), 0xb, 30);
    let mut got = vec![Vec::new(); 2];
    until("both subscribers to receive media", || {
        sa.send();
        sb.send();
        for (r, g) in receivers.iter().zip(got.iter_mut()) {
            drain(r, g);
        }
        got.iter().all(|g| !g.is_empty())
    });
    // Whatever the start asked of the sources is behind us.
    while sa.poll_rtcp().is_some() || sb.poll_rtcp().is_some() {}
    let pli = |ssrc: u32| {
        let mut pli = [0u8; PLI_LEN];
        rtcp::write_pli(&mut pli, Ssrc(1), Ssrc(ssrc));
        pli
    };
    // Another host names A's subscriber; then B's subscriber asks for itself. Once B is asked, the
    // shard has read the stranger's PLI, and a request for A would have been sent first.
    let stranger = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    stranger.send_to(&pli(on_a.ssrc), on_a.media_from).unwrap();
    receivers[1]
        .send_to(&pli(on_b.ssrc), on_b.media_from)
        .unwrap();
    until("B's subscriber's PLI to reach B", || {
        sb.poll_rtcp().is_some()
    });
    assert!(
        sa.poll_rtcp().is_none(),
        "a PLI from another address asked A for a keyframe"
    );
    // From A's subscriber itself, it does.
    receivers[0]
        .send_to(&pli(on_a.ssrc), on_a.media_from)
        .unwrap();
    until("A's subscriber's PLI to reach A", || {
        sa.poll_rtcp().is_some()
    });
    until("the stranger's PLI to be counted", || {
        let shard = &client.stats().unwrap().shards[0];
        shard.rtcp_wrong_sender == 1 && shard.rtcp_received >= 3
    });
}

#[test]
fn a_detached_subscriber_is_switched_only_to_a_source_of_its_codec() {
    let (_node, client) = start(&[]);
    let a = source(&client, "a", "vp8");
    let h264 = source(&client, "h264", "h264");
    let c = source(&client, "c", "vp8");
    let sub = subscribe(&client, a.id, &[receiver()]).remove(0);
    client.delete_source(a.id).unwrap();
    assert_eq!(client.subscriber(sub.id).unwrap().source, None);

    let (status, body) = post_switch(&client, sub.id, h264.id);
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("vp8") && message.contains("h264"),
        "{message}"
    );
    assert_eq!(client.subscriber(sub.id).unwrap().pending_source, None);

    let (status, body) = post_switch(&client, sub.id, c.id);
    assert_eq!(
        (status, &body["outcome"]),
        (202, &Value::from("pending")),
        "{body}"
    );
}

#[test]
fn a_switch_to_the_current_source_answers_what_it_did() {
    let path = events_file("noop-switch");
    let (mut node, client) = start(&["--events-jsonl", &path.display().to_string()]);
    let a = source(&client, "a", "vp8");
    let silent = source(&client, "silent", "vp8");
    let receivers = vec![receiver()];
    let sub = subscribe(&client, a.id, &receivers).remove(0);
    let mut sa = Sender::new(ingest_addr(&a), 0xa, 30);
    let mut got = Vec::new();
    until("the subscriber to be live on A", || {
        sa.send();
        drain(&receivers[0], &mut got);
        !got.is_empty()
    });

    // Already on A, nothing pending: nothing to do, and nothing is pending after.
    let (status, body) = post_switch(&client, sub.id, a.id);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["outcome"], &body["source"], &body["pending_source"]),
        (&Value::from("unchanged"), &Value::from(a.id), &Value::Null)
    );

    // A switch to a silent source stays pending; asking for A again cancels it.
    let (status, body) = post_switch(&client, sub.id, silent.id);
    assert_eq!(
        (status, &body["outcome"]),
        (202, &Value::from("pending")),
        "{body}"
    );
    assert_eq!(body["pending_source"], silent.id);
    let (status, body) = post_switch(&client, sub.id, a.id);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["outcome"], &body["source"], &body["pending_source"]),
        (&Value::from("cancelled"), &Value::from(a.id), &Value::Null)
    );
    let view = client.subscriber(sub.id).unwrap();
    assert_eq!((view.source, view.pending_source), (Some(a.id), None));

    node.shutdown();
    let events = events_in(&path);
    let _ = std::fs::remove_file(&path);
    let of = |kind: &str| -> Vec<&Value> { events.iter().filter(|e| e["type"] == kind).collect() };
    let requested = of("switch.requested");
    assert_eq!(requested.len(), 1, "only the real switch: {requested:?}");
    assert_eq!(requested[0]["data"]["to"], silent.id);
    let cancelled = of("switch.cancelled");
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    assert_eq!(
        (&cancelled[0]["data"]["to"], &cancelled[0]["data"]["reason"]),
        (&Value::from(silent.id), &Value::from("replaced"))
    );
}

#[test]
fn a_switch_with_no_keyframe_is_cancelled_after_the_timeout() {
    let path = events_file("switch-timeout");
    let (mut node, client) = start(&[
        "--switch-timeout",
        "300",
        "--events-jsonl",
        &path.display().to_string(),
    ]);
    let a = source(&client, "a", "vp8");
    let silent = source(&client, "silent", "vp8");
    let receivers = vec![receiver()];
    let subs = subscribe(&client, a.id, &receivers);
    let mut sa = Sender::new(ingest_addr(&a), 0xa, 30);
    let mut got = Vec::new();
    until("the subscriber to be live on A", || {
        sa.send();
        drain(&receivers[0], &mut got);
        !got.is_empty()
    });
    client.switch(subs[0].id, silent.id).unwrap();
    assert_eq!(
        client.subscriber(subs[0].id).unwrap().pending_source,
        Some(silent.id)
    );
    until("the switch to time out", || {
        sa.send();
        client
            .subscriber(subs[0].id)
            .unwrap()
            .pending_source
            .is_none()
    });
    let view = client.subscriber(subs[0].id).unwrap();
    assert_eq!((view.source, view.counters.switches), (Some(a.id), 0));
    // Still receiving A, without a gap.
    let before = got.len();
    until("A's packets after the cancelled switch", || {
        sa.send();
        drain(&receivers[0], &mut got);
        got.len() > before + 10
    });
    for w in got.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1));
    }
    // The README documents `switch.timed_out`; it was never emitted.
    node.shutdown();
    let events = events_in(&path);
    let _ = std::fs::remove_file(&path);
    let timed_out: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "switch.timed_out")
        .collect();
    assert_eq!(timed_out.len(), 1, "{events:?}");
    let e = timed_out[0];
    assert_eq!(
        (&e["subscriber"], &e["source"], &e["data"]["to"]),
        (
            &Value::from(subs[0].id),
            &Value::from(silent.id),
            &Value::from(silent.id)
        )
    );
    assert!(e["data"]["waited_ms"].as_u64().is_some_and(|ms| ms >= 300));
    let reason = e["data"]["reason"].as_str().unwrap();
    assert!(reason.contains("keyframe"), "{reason}");
}

#[test]
fn the_token_guards_the_api_of_a_running_node() {
    let (node, _) = start(&["--token", "s3cret"]);
    let addr = node.http_addr().to_string();
    let anonymous = corecast_signaling::client::Client::new(&addr, None);
    assert_eq!(api_error(anonymous.sources()).0, 401);
    let wrong = corecast_signaling::client::Client::new(&addr, Some("guess".into()));
    assert_eq!(api_error(wrong.stats()).0, 401);
    anonymous.health().expect("health needs no token");
    let right = corecast_signaling::client::Client::new(&addr, Some("s3cret".into()));
    assert!(right.sources().unwrap().is_empty());
}

#[test]
fn an_unlatched_source_takes_packets_from_any_sender() {
    let (_node, client) = start(&[]);
    let src = client
        .create_source(&CreateSource {
            name: "open".into(),
            codec: "vp8".into(),
            latch: Some(false),
            ..Default::default()
        })
        .unwrap();
    assert!(!src.latch);
    let mut one = Sender::new(ingest_addr(&src), 0x1, 30);
    let mut two = Sender::new(ingest_addr(&src), 0x1, 30);
    for _ in 0..5 {
        one.send();
    }
    // The second sender continues the same stream from another address.
    two.stream = one.stream.clone();
    for _ in 0..5 {
        two.send();
    }
    until("all ten packets accepted", || {
        client.source(src.id).unwrap().counters.packets_accepted == 10
    });
    let view = client.source(src.id).unwrap();
    assert!(view.counters.drops.is_empty(), "{:?}", view.counters.drops);
    assert_eq!(
        view.sender,
        Some(two.socket.local_addr().unwrap()),
        "follows the latest sender"
    );
}

#[test]
fn ten_thousand_subscribers_in_one_batch() {
    let (_node, client) = start(&[]);
    let src = source(&client, "big", "vp8");
    let reqs: Vec<CreateSubscriber> = (0..10_000)
        .map(|i| CreateSubscriber {
            source: src.id,
            dest: format!("127.0.0.{}:{}", 1 + i / 50_000, 10_000 + i % 50_000),
        })
        .collect();
    let subs = client.create_subscribers(&reqs).unwrap();
    assert_eq!(subs.len(), 10_000);
    let ssrcs: std::collections::HashSet<u32> = subs.iter().map(|s| s.ssrc).collect();
    assert_eq!(ssrcs.len(), 10_000, "every subscriber has its own SSRC");
    let per_shard = subs.iter().filter(|s| s.shard == 0).count();
    assert_eq!(per_shard, 5_000, "placed on the least-loaded shard in turn");
    assert_eq!(client.source(src.id).unwrap().subscribers, 10_000);
}

#[test]
fn a_source_beyond_max_sources_is_refused_and_a_deleted_one_frees_its_place() {
    let (_node, client) = start(&["--max-sources", "2"]);
    let first = source(&client, "a", "vp8");
    source(&client, "b", "opus");
    let third = CreateSource {
        name: "c".into(),
        codec: "vp8".into(),
        ..Default::default()
    };
    let (status, code, message) = api_error(client.create_source(&third));
    assert_eq!((status, code.as_str()), (429, "limit_reached"), "{message}");
    assert!(message.contains("--max-sources 2"), "{message}");
    client.delete_source(first.id).expect("delete");
    client
        .create_source(&third)
        .expect("room again once one is gone");
}

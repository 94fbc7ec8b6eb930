//! The control API over real HTTP on loopback: a fake node served by `ApiServer`, driven through
//! `Client` (every route's happy path and the node's own errors), the token, the 10 000-subscriber
//! batch, the server's lifecycle and the CLI. Malformed requests are in `api_errors.rs`.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use corecast_signaling::api::{
    CreateSource, CreateSubscriber, ErrorBody, SwitchOutcome, SwitchView,
};
use corecast_signaling::cli::{self, ClientArgs, ClientCommand, SourceCmd, SubscriberCmd};
use corecast_signaling::{ApiConfig, ApiServer, Client, ClientError, Control};
use support::{api_err, fake_sdp, raw, source, sub, FakeNode, Harness, JSON};

#[test]
fn sources_happy_path_and_statuses() {
    let h = Harness::open();
    let c = &h.client;
    c.health().unwrap();

    let created = c.create_source(&source("cam1", "vp8")).unwrap();
    assert_eq!(
        (created.id, created.clock_rate, created.latch),
        (1, 90_000, true)
    );
    let mic = c
        .create_source(&CreateSource {
            clock_rate: Some(16_000),
            port: Some(7000),
            latch: Some(false),
            feedback: None,
            ..source("mic", "opus")
        })
        .unwrap();
    assert_eq!(
        (mic.clock_rate, mic.ingest.port, mic.latch),
        (16_000, 7000, false)
    );
    assert_eq!(c.sources().unwrap(), vec![created.clone(), mic.clone()]);
    assert_eq!(c.source(1).unwrap(), created);

    let r = raw(
        "POST",
        &h.url("/v1/sources"),
        JSON,
        br#"{"name":"cam2","codec":"h264"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(raw("GET", &h.url("/v1/sources"), &[], b"").status, 200);
    assert_eq!(raw("GET", &h.url("/v1/sources/1"), &[], b"").status, 200);
    let r = raw("DELETE", &h.url("/v1/sources/3"), &[], b"");
    assert_eq!((r.status, r.body.as_str()), (204, ""));

    c.delete_source(mic.id).unwrap();
    let (status, code, message) = api_err(c.source(mic.id));
    assert_eq!(
        (status, code.as_str(), message.as_str()),
        (404, "not_found", "no source with id 2")
    );
    assert_eq!(api_err(c.delete_source(mic.id)).0, 404);
    let (status, code, _) = api_err(c.create_source(&source("cam1", "vp8")));
    assert_eq!((status, code.as_str()), (409, "conflict"));
    let (status, code, message) = api_err(c.create_source(&source("x", "mpeg2")));
    assert_eq!(
        (status, code.as_str(), message.as_str()),
        (400, "bad_request", "unknown codec `mpeg2`")
    );
}

#[test]
fn a_sources_sdp_for_a_destination_needs_a_valid_dest_and_a_known_source() {
    let h = Harness::open();
    let c = &h.client;
    let cam = c.create_source(&source("cam1", "vp8")).unwrap();
    let r = raw(
        "GET",
        &h.url("/v1/sources/1/sdp?dest=127.0.0.1:5004"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.headers["content-type"], "application/sdp");
    assert!(
        r.body.contains("s=source 1 for 127.0.0.1:5004"),
        "{}",
        r.body
    );
    // The client encodes an IPv6 destination's brackets; the server decodes them.
    let v6 = c.source_sdp(cam.id, "[::1]:6000".parse().unwrap()).unwrap();
    assert!(v6.contains("s=source 1 for [::1]:6000"), "{v6}");

    for (query, status, message) in [
        ("", 400, "`dest` is required"),
        ("?dest=", 400, "`dest` `` is not IP:PORT"),
        (
            "?dest=localhost:5004",
            400,
            "`dest` `localhost:5004` is not IP:PORT",
        ),
        ("?dest=127.0.0.1", 400, "`dest` `127.0.0.1` is not IP:PORT"),
    ] {
        let r = raw(
            "GET",
            &h.url(&format!("/v1/sources/1/sdp{query}")),
            &[],
            b"",
        );
        assert_eq!(r.status, status, "{query}: {}", r.body);
        let error = r.error();
        assert_eq!(error.error, "bad_request", "{query}");
        assert!(
            error.message.starts_with(message),
            "{query}: {}",
            error.message
        );
    }
    let r = raw(
        "GET",
        &h.url("/v1/sources/9/sdp?dest=127.0.0.1:5004"),
        &[],
        b"",
    );
    assert_eq!(
        (r.status, r.error().message.as_str()),
        (404, "no source with id 9")
    );
}

#[test]
fn a_switch_answers_202_while_pending_and_200_when_nothing_is_to_wait_for() {
    let h = Harness::start(ApiConfig::default(), 3);
    let c = &h.client;
    let a = c.create_source(&source("a", "vp8")).unwrap().id;
    let b = c.create_source(&source("b", "vp8")).unwrap().id;
    let s = c.create_subscriber(&sub(a, 6000)).unwrap().id;
    let switch = |to: u32| {
        let r = raw(
            "POST",
            &h.url(&format!("/v1/subscribers/{s}/switch")),
            JSON,
            format!(r#"{{"source":{to}}}"#).as_bytes(),
        );
        let view: SwitchView = serde_json::from_str(&r.body).unwrap();
        (r.status, view.outcome, view.source, view.pending_source)
    };
    assert_eq!(switch(a), (200, SwitchOutcome::Unchanged, Some(a), None));
    assert_eq!(switch(b), (202, SwitchOutcome::Pending, Some(a), Some(b)));
    assert_eq!(switch(a), (200, SwitchOutcome::Cancelled, Some(a), None));
    // The client reads every answer the same way.
    assert_eq!(c.switch(s, a).unwrap().outcome, SwitchOutcome::Unchanged);
}

#[test]
fn subscribers_happy_path_and_statuses() {
    let h = Harness::start(ApiConfig::default(), 3);
    let c = &h.client;
    let a = c.create_source(&source("a", "vp8")).unwrap().id;
    let b = c.create_source(&source("b", "vp8")).unwrap().id;

    let s1 = c.create_subscriber(&sub(a, 6000)).unwrap();
    assert_eq!(
        (s1.source, s1.dest),
        (Some(a), "127.0.0.1:6000".parse().unwrap())
    );
    let batch = c.create_subscribers(&[sub(a, 6002), sub(b, 6004)]).unwrap();
    assert_eq!(
        batch.iter().map(|s| s.source).collect::<Vec<_>>(),
        [Some(a), Some(b)]
    );
    assert_eq!(c.subscribers().unwrap().len(), 3);
    assert_eq!(c.subscriber(s1.id).unwrap(), s1);
    assert_eq!(c.source(a).unwrap().subscribers, 2);

    assert_eq!(c.switch(s1.id, b).unwrap().pending_source, Some(b));
    assert_eq!(c.subscriber(s1.id).unwrap().pending_source, Some(b));
    assert_eq!(api_err(c.switch(s1.id, 99)).0, 404);
    assert_eq!(api_err(c.switch(99, b)).0, 404);

    let (status, code, message) = api_err(c.create_subscriber(&sub(a, 6006)));
    assert_eq!((status, code.as_str()), (429, "limit_reached"), "{message}");
    c.delete_subscriber(s1.id).unwrap();
    assert_eq!(api_err(c.subscriber(s1.id)).0, 404);
    assert_eq!(api_err(c.delete_subscriber(s1.id)).0, 404);
    // All or nothing, and the error names the entry.
    c.delete_subscriber(batch[0].id).unwrap();
    let (status, _, message) = api_err(c.create_subscribers(&[sub(a, 6010), sub(77, 6012)]));
    assert_eq!(
        (status, message.as_str()),
        (404, "entry 1: no source with id 77")
    );
    assert_eq!(c.subscribers().unwrap().len(), 1);

    let switch_url = h.url(&format!("/v1/subscribers/{}/switch", batch[1].id));
    let r = raw("POST", &switch_url, JSON, br#"{"source":1}"#);
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        r.body,
        r#"{"outcome":"pending","source":2,"pending_source":1}"#
    );
    let r = raw(
        "DELETE",
        &h.url(&format!("/v1/subscribers/{}", batch[1].id)),
        &[],
        b"",
    );
    assert_eq!((r.status, r.body.as_str()), (204, ""));
    let r = raw("POST", &h.url("/v1/subscribers:batch"), JSON, b"[]");
    assert_eq!((r.status, r.body.as_str()), (201, "[]"));
    let r = raw(
        "POST",
        &h.url("/v1/subscribers"),
        JSON,
        br#"{"source":2,"dest":"[::1]:7000"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let id = serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["id"].clone();
    assert_eq!(
        raw("GET", &h.url(&format!("/v1/subscribers/{id}")), &[], b"").status,
        200
    );
    assert_eq!(raw("GET", &h.url("/v1/subscribers"), &[], b"").status, 200);

    // The SDP: as text, typed as SDP, the same through the client; 404 JSON for an unknown one.
    let view = c.subscriber(id.as_u64().unwrap() as u32).unwrap();
    assert_eq!((view.codec.as_str(), view.payload_type), ("vp8", 96));
    let r = raw(
        "GET",
        &h.url(&format!("/v1/subscribers/{id}/sdp")),
        &[],
        b"",
    );
    assert_eq!((r.status, r.body.as_str()), (200, fake_sdp(&view).as_str()));
    assert_eq!(
        r.headers.get("content-type").map(|v| v.to_str().unwrap()),
        Some("application/sdp")
    );
    assert_eq!(c.subscriber_sdp(view.id).unwrap(), r.body);
    let r = raw("GET", &h.url("/v1/subscribers/99/sdp"), &[], b"");
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(
        r.error(),
        ErrorBody {
            error: "not_found".into(),
            message: "no subscriber with id 99".into()
        }
    );
    assert_eq!(api_err(c.subscriber_sdp(99)).0, 404);
    let r = raw(
        "POST",
        &h.url(&format!("/v1/subscribers/{id}/sdp")),
        &[],
        b"",
    );
    assert_eq!(
        (r.status, r.error().error.as_str()),
        (405, "method_not_allowed")
    );

    let stats = c.stats().unwrap();
    assert_eq!(
        (
            stats.node.sources,
            stats.node.subscribers,
            stats.shards.len()
        ),
        (2, 1, 2)
    );
    assert_eq!(stats.sources.len(), 2);
    let r = raw("GET", &h.url("/healthz"), &[], b"");
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"status":"ok"}"#));

    // The node's calls ran on the blocking pool, never on the async thread.
    assert_eq!(
        h.node.threads().into_iter().collect::<Vec<_>>(),
        ["corecast-http-blocking"]
    );
}

#[test]
fn batch_of_ten_thousand() {
    let h = Harness::open();
    let src = h.client.create_source(&source("big", "vp8")).unwrap().id;
    let reqs: Vec<CreateSubscriber> = (0..10_000).map(|i| sub(src, 10_000 + i)).collect();
    let views = h.client.create_subscribers(&reqs).unwrap();
    assert_eq!(views.len(), 10_000);
    let ids: std::collections::BTreeSet<u32> = views.iter().map(|v| v.id).collect();
    assert_eq!(ids.len(), 10_000);
    assert_eq!(h.client.subscribers().unwrap().len(), 10_000);
    assert_eq!(h.client.source(src).unwrap().subscribers, 10_000);
}

#[test]
fn token_guards_v1_but_not_healthz() {
    let config = ApiConfig {
        token: Some("s3cret".into()),
        ..ApiConfig::default()
    };
    let h = Harness::start(config, 100);
    let addr = h.server.local_addr().to_string();

    h.client.create_source(&source("a", "vp8")).unwrap();
    assert_eq!(h.client.sources().unwrap().len(), 1);

    let anonymous = Client::new(&addr, None);
    anonymous.health().unwrap();
    let (status, code, message) = api_err(anonymous.sources());
    assert_eq!((status, code.as_str()), (401, "unauthorized"));
    assert!(message.contains("missing"), "{message}");
    let (status, _, message) = api_err(Client::new(&addr, Some("s3cret!".into())).sources());
    assert_eq!((status, message.as_str()), (401, "invalid bearer token"));
    assert_eq!(
        api_err(Client::new(&addr, Some("S3CRET".into())).stats()).0,
        401
    );

    for auth in ["Basic czNjcmV0", "Bearer", "Bearer s3cre", "s3cret"] {
        let r = raw(
            "GET",
            &h.url("/v1/sources"),
            &[("Authorization", auth)],
            b"",
        );
        assert_eq!(r.status, 401, "{auth}");
        assert_eq!(r.headers["www-authenticate"], "Bearer");
        assert_eq!(r.error().error, "unauthorized");
    }
    // Refused before the body is looked at, and unknown /v1 paths reveal nothing.
    let r = raw("POST", &h.url("/v1/sources"), JSON, b"{");
    assert_eq!(r.status, 401);
    assert_eq!(raw("GET", &h.url("/v1/nothing"), &[], b"").status, 401);
    let r = raw(
        "GET",
        &h.url("/v1/sources"),
        &[("Authorization", "bearer s3cret")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(raw("GET", &h.url("/healthz"), &[], b"").status, 200);
}

#[test]
fn bind_failure_is_the_bare_cause_for_the_caller_to_name() {
    let h = Harness::open();
    let addr = h.server.local_addr();
    let err = ApiServer::spawn(
        addr,
        FakeNode::new(1) as std::sync::Arc<dyn Control>,
        ApiConfig::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    // The caller chose the address and names it; repeated here, a message would say it twice.
    assert!(!err.to_string().contains(&addr.to_string()), "{err}");

    let empty = ApiConfig {
        token: Some(String::new()),
        ..ApiConfig::default()
    };
    let err =
        ApiServer::spawn("127.0.0.1:0".parse().unwrap(), FakeNode::new(1), empty).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn shutdown_is_prompt_even_with_a_stuck_client() {
    let h = Harness::open();
    h.client.health().unwrap(); // leaves an idle keep-alive connection in the client's pool
    let addr = h.server.local_addr();
    let mut stuck = TcpStream::connect(addr).unwrap();
    stuck
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // A request whose body never comes. `Expect: 100-continue` makes the server say when its
    // handler starts reading the body, so shutdown begins with the request surely in flight.
    stuck
        .write_all(
            b"POST /v1/sources HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
    let mut seen = Vec::new();
    while !seen.ends_with(b"100 Continue\r\n\r\n") {
        let mut buf = [0; 512];
        let n = stuck.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed early");
        seen.extend_from_slice(&buf[..n]);
    }
    stuck.write_all(b"{").unwrap();

    let started = Instant::now();
    h.server.shutdown();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    assert!(matches!(
        h.client.health(),
        Err(ClientError::Transport { .. })
    ));
    drop(stuck);
}

#[test]
fn idle_server_shuts_down_at_once() {
    let h = Harness::open();
    h.client.stats().unwrap();
    let started = Instant::now();
    h.server.shutdown();
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn cli_run_against_the_server() {
    let h = Harness::open();
    let args = ClientArgs {
        server: format!("http://{}/", h.server.local_addr()),
        token: None,
    };
    let run = |cmd: ClientCommand| {
        let mut out = Vec::new();
        cli::run(&args, cmd, &mut out).map(|()| String::from_utf8(out).unwrap())
    };

    let out = run(ClientCommand::Source(SourceCmd::Add {
        name: "cam1".into(),
        codec: "vp8".into(),
        clock_rate: None,
        port: Some(5004),
        no_latch: true,
        feedback: None,
        parameter_sets: None,
        payload_type: Some(100),
        rtx_payload_type: None,
        join: None,
        fallback: None,
    }))
    .unwrap();
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            created["id"].as_u64(),
            created["latch"].as_bool(),
            created["payload_type"].as_u64()
        ),
        (Some(1), Some(false), Some(100))
    );
    let out = run(ClientCommand::Subscriber(SubscriberCmd::Add {
        source: 1,
        dest: "10.0.0.9:6000".parse().unwrap(),
    }))
    .unwrap();
    assert!(out.contains("\"dest\": \"10.0.0.9:6000\""), "{out}");

    let out = run(ClientCommand::Source(SourceCmd::List)).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("ID  NAME  CODEC  CLOCK  INGEST"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("1   cam1  vp8    90000  0.0.0.0:5004  no"),
        "{out}"
    );
    let out = run(ClientCommand::Subscriber(SubscriberCmd::List)).unwrap();
    assert!(
        out.lines()
            .nth(1)
            .unwrap()
            .starts_with("1   1       -        10.0.0.9:6000"),
        "{out}"
    );
    let out = run(ClientCommand::Switch {
        subscriber: 1,
        source: 1,
    })
    .unwrap();
    assert_eq!(
        out,
        "subscriber 1: already receives source 1; nothing changed\n"
    );
    let out = run(ClientCommand::Stats {
        watch: false,
        interval_ms: 1000,
    })
    .unwrap();
    assert!(
        out.starts_with("uptime 12.5 s, 1 sources, 1 subscribers"),
        "{out}"
    );
    assert!(out.contains("SHARD  CORE"), "{out}");
    assert!(out.contains("3 (waiting_keyframe=3)"), "{out}");
    run(ClientCommand::Source(SourceCmd::Add {
        name: "cam2".into(),
        codec: "vp8".into(),
        clock_rate: None,
        port: Some(5006),
        no_latch: false,
        feedback: None,
        parameter_sets: None,
        payload_type: None,
        rtx_payload_type: None,
        join: Some("replay".into()),
        fallback: None,
    }))
    .unwrap();
    assert_eq!(
        run(ClientCommand::Switch {
            subscriber: 1,
            source: 2
        })
        .unwrap(),
        "subscriber 1: switching to source 2 at its next switch point\n"
    );
    assert_eq!(
        run(ClientCommand::Switch {
            subscriber: 1,
            source: 1
        })
        .unwrap(),
        "subscriber 1: already receives source 1; its pending switch was cancelled\n"
    );
    // Printed as is, so `corecast subscriber sdp 1 > sub1.sdp` writes the file players open.
    assert_eq!(
        run(ClientCommand::Subscriber(SubscriberCmd::Sdp { id: 1 })).unwrap(),
        fake_sdp(&h.client.subscriber(1).unwrap())
    );
    assert_eq!(
        run(ClientCommand::Subscriber(SubscriberCmd::Rm { id: 1 })).unwrap(),
        "deleted subscriber 1\n"
    );

    let err = run(ClientCommand::Source(SourceCmd::Rm { id: 9 })).unwrap_err();
    assert_eq!(
        format!("error: {err}"),
        "error: not_found: no source with id 9"
    );
    assert_eq!(err.status(), Some(404));

    h.server.shutdown();
    let err = run(ClientCommand::Stats {
        watch: false,
        interval_ms: 1000,
    })
    .unwrap_err();
    assert_eq!(err.code(), "transport");
    assert!(
        err.to_string()
            .starts_with("transport: cannot reach http://127.0.0.1:"),
        "{err}"
    );
}

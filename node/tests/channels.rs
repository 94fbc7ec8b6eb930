//! Channels on a real node over HTTP: created, listed, shown and deleted; every refusal with its
//! status and the field it names; what deleting a source does to the channels naming it; and
//! channels in `/v1/stats`, `/metrics` and the event stream.

mod common;

use common::*;
use corecast_signaling::api::CreateChannel;
use corecast_signaling::client::Client;
use serde_json::Value;

fn channel(name: &str, video: Option<u32>, audio: Option<u32>) -> CreateChannel {
    CreateChannel {
        name: name.into(),
        video,
        audio,
    }
}

/// The `corecast_channels` gauge of a scrape of `/metrics`.
fn channels_gauge(client: &Client) -> f64 {
    let body = ureq::get(&format!("{}/metrics", client.base()))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
        .expect("valid Prometheus text");
    let values: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "corecast_channels")
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("corecast_channels is not a gauge: {other:?}"),
        })
        .collect();
    assert_eq!(values.len(), 1, "one corecast_channels sample: {body}");
    values[0]
}

#[test]
fn channels_are_created_listed_shown_deleted_and_counted() {
    let path = events_file("lifecycle");
    let (mut node, client) = start(&["--events-jsonl", &path.display().to_string()]);
    let cam = source(&client, "cam", "h264");
    let mic = source(&client, "mic", "opus");
    assert_eq!(channels_gauge(&client), 0.0);

    let main = client
        .create_channel(&channel(" main ", Some(cam.id), Some(mic.id)))
        .unwrap();
    assert_eq!(
        (main.name.as_str(), main.video, main.audio, main.viewers),
        ("main", Some(cam.id), Some(mic.id), 0)
    );
    let radio = client
        .create_channel(&channel("radio", None, Some(mic.id)))
        .unwrap();
    assert_ne!(main.id, radio.id);
    assert_eq!((radio.video, radio.audio), (None, Some(mic.id)));
    assert_eq!(client.channels().unwrap(), [main.clone(), radio.clone()]);
    assert_eq!(client.channel(radio.id).unwrap(), radio);

    let stats = client.stats().unwrap();
    assert_eq!(stats.node.channels, 2);
    assert_eq!(stats.channels, [main.clone(), radio.clone()]);
    assert_eq!(channels_gauge(&client), 2.0);

    client.delete_channel(main.id).unwrap();
    assert_eq!(api_error(client.channel(main.id)).0, 404);
    let (status, code, message) = api_error(client.delete_channel(main.id));
    assert_eq!(
        (status, code.as_str(), message),
        (404, "not_found", format!("no channel {}", main.id))
    );
    assert_eq!(client.channels().unwrap(), std::slice::from_ref(&radio));
    assert_eq!(client.stats().unwrap().node.channels, 1);
    assert_eq!(channels_gauge(&client), 1.0);
    // Ids are not reused: a new channel gets the next one, even with the old name.
    let again = client
        .create_channel(&channel("main", Some(cam.id), None))
        .unwrap();
    assert!(again.id > radio.id, "{again:?}");

    node.shutdown();
    let events: Vec<Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON envelope per line"))
        .collect();
    let _ = std::fs::remove_file(&path);
    let of = |kind: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["type"] == kind)
            .map(|e| &e["data"])
            .collect()
    };
    assert_eq!(
        of("channel.created"),
        [
            &serde_json::json!({"channel": main.id, "name": "main", "video": cam.id, "audio": mic.id}),
            &serde_json::json!({"channel": radio.id, "name": "radio", "video": null, "audio": mic.id}),
            &serde_json::json!({"channel": again.id, "name": "main", "video": cam.id, "audio": null}),
        ]
    );
    assert_eq!(
        of("channel.removed"),
        [
            &serde_json::json!({"channel": main.id, "name": "main", "video": cam.id, "audio": mic.id})
        ],
        "once: the second DELETE removed nothing"
    );
}

#[test]
fn the_node_refuses_a_channel_it_cannot_make_naming_the_field() {
    let (_node, client) = start(&[]);
    let cam = source(&client, "cam", "vp8");
    let mic = source(&client, "mic", "opus");
    client
        .create_channel(&channel("main", Some(cam.id), None))
        .unwrap();
    let long = "x".repeat(129);
    let rows: [(CreateChannel, u16, &str, String); 7] = [
        (
            channel("  ", Some(cam.id), None),
            400,
            "bad_request",
            "`name` must be 1 to 128 characters".into(),
        ),
        (
            channel(&long, Some(cam.id), None),
            400,
            "bad_request",
            "`name` must be 1 to 128 characters".into(),
        ),
        (
            channel("none", None, None),
            400,
            "bad_request",
            "a channel needs `video`, `audio` or both: the ids of its sources".into(),
        ),
        (
            channel("main", None, Some(mic.id)),
            409,
            "conflict",
            "`name`: a channel named `main` exists".into(),
        ),
        // Unknown sources are 404, as `POST /v1/subscribers` answers for its `source`.
        (
            channel("x", Some(77), None),
            404,
            "not_found",
            "`video`: no source 77".into(),
        ),
        (
            channel("x", Some(cam.id), Some(78)),
            404,
            "not_found",
            "`audio`: no source 78".into(),
        ),
        // The wrong kind is 409, as a switch to a source of another codec.
        (
            channel("x", Some(mic.id), None),
            409,
            "conflict",
            format!("`video`: source {} is opus, not video", mic.id),
        ),
    ];
    for (req, status, code, message) in rows {
        let got = api_error(client.create_channel(&req));
        assert_eq!(got, (status, code.to_string(), message), "{req:?}");
    }
    let got = api_error(client.create_channel(&channel("x", None, Some(cam.id))));
    assert_eq!(
        got,
        (
            409,
            "conflict".into(),
            format!("`audio`: source {} is vp8, not audio", cam.id)
        )
    );
    // The same refusal for a subscriber's unknown source, for comparison: 404 too.
    let sub = client.create_subscriber(&corecast_signaling::api::CreateSubscriber {
        source: 77,
        dest: "127.0.0.1:6000".into(),
    });
    assert_eq!(api_error(sub).0, 404);
    assert_eq!(
        client.channels().unwrap().len(),
        1,
        "nothing refused was added"
    );
    assert_eq!(api_error(client.channel(999)).0, 404);
}

#[test]
fn deleting_a_source_leaves_its_channels_with_that_slot_null() {
    let (_node, client) = start(&[]);
    let cam = source(&client, "cam", "vp8");
    let mic = source(&client, "mic", "opus");
    let main = client
        .create_channel(&channel("main", Some(cam.id), Some(mic.id)))
        .unwrap();
    let other = client
        .create_channel(&channel("other", Some(cam.id), None))
        .unwrap();

    client.delete_source(cam.id).unwrap();
    let after = client.channel(main.id).unwrap();
    assert_eq!((after.video, after.audio), (None, Some(mic.id)));
    // A channel left with no source at all stays too, for the operator to delete or replace.
    let other = client.channel(other.id).unwrap();
    assert_eq!((other.video, other.audio), (None, None));
    assert_eq!(client.stats().unwrap().channels.len(), 2);
    // The JSON says `null`, not a missing key.
    let body = ureq::get(&format!("{}/v1/channels/{}", client.base(), main.id))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["video"], Value::Null);
    assert!(json.as_object().unwrap().contains_key("video"), "{body}");
    // A deleted source cannot be named by a new channel either.
    let (status, _, message) =
        api_error(client.create_channel(&channel("new", Some(cam.id), None)));
    assert_eq!(
        (status, message),
        (404, format!("`video`: no source {}", cam.id))
    );
}

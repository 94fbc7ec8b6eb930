//! Channels through the HTTP API and `Client`, over the in-memory `Control`: the routes, their
//! statuses, the JSON shapes, and the refusals the HTTP layer makes itself (field types, unknown
//! fields) with the field named.

mod support;

use corecast_signaling::api::CreateChannel;
use support::{api_err, raw, source, Harness, JSON};

fn channel(name: &str, video: Option<u32>, audio: Option<u32>) -> CreateChannel {
    CreateChannel {
        name: name.into(),
        video,
        audio,
    }
}

#[test]
fn channels_are_created_listed_shown_and_deleted() {
    let h = Harness::open();
    let cam = h.client.create_source(&source("cam", "vp8")).unwrap();
    let mic = h.client.create_source(&source("mic", "opus")).unwrap();

    // The raw answer: 201 with the channel's JSON, `null` for an absent slot.
    let r = raw(
        "POST",
        &h.url("/v1/channels"),
        JSON,
        format!(r#"{{"name":"main","video":{}}}"#, cam.id).as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"id": 1, "name": "main", "video": cam.id, "audio": null, "viewers": 0})
    );

    let both = h
        .client
        .create_channel(&channel("both", Some(cam.id), Some(mic.id)))
        .unwrap();
    assert_eq!((both.video, both.audio), (Some(cam.id), Some(mic.id)));
    let listed: Vec<String> = h
        .client
        .channels()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(listed, ["main", "both"]);
    assert_eq!(h.client.channel(both.id).unwrap(), both);
    let stats = h.client.stats().unwrap();
    assert_eq!(stats.channels, h.client.channels().unwrap());
    assert_eq!((stats.channels.len(), stats.node.channels), (2, 2));

    let r = raw(
        "DELETE",
        &h.url(&format!("/v1/channels/{}", both.id)),
        &[],
        b"",
    );
    assert_eq!((r.status, r.body.as_str()), (204, ""));
    // Gone: shown, deleted again, both 404 in the error shape.
    for method in ["GET", "DELETE"] {
        let r = raw(
            method,
            &h.url(&format!("/v1/channels/{}", both.id)),
            &[],
            b"",
        );
        assert_eq!(r.status, 404, "{method}: {}", r.body);
        assert_eq!(r.error().error, "not_found");
    }
    assert_eq!(api_err(h.client.delete_channel(both.id)).0, 404);
    assert_eq!(h.client.channels().unwrap().len(), 1);
}

#[test]
fn the_http_layer_refuses_malformed_channel_bodies_naming_the_field() {
    let h = Harness::open();
    let post = |body: &str| {
        let r = raw("POST", &h.url("/v1/channels"), JSON, body.as_bytes());
        let e = r.error();
        (r.status, e.error, e.message)
    };
    let (status, code, message) = post(r#"{"video":1}"#);
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    assert!(message.starts_with("missing field `name`"), "{message}");
    let (status, _, message) = post(r#"{"name":"a","video":"one"}"#);
    assert_eq!(status, 400);
    assert!(
        message.starts_with("video: invalid type: string \"one\""),
        "{message}"
    );
    let (status, _, message) = post(r#"{"name":"a","audio":-2}"#);
    assert_eq!(status, 400);
    assert!(message.starts_with("audio: invalid value"), "{message}");
    let (status, _, message) = post(r#"{"name":"a","video":1,"subtitles":3}"#);
    assert_eq!(status, 400);
    assert!(message.contains("unknown field `subtitles`"), "{message}");
    // A bad id in the path, and a method the route does not have.
    let r = raw("GET", &h.url("/v1/channels/abc"), &[], b"");
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.error().error, "bad_request");
    let r = raw("PUT", &h.url("/v1/channels"), JSON, b"{}");
    assert_eq!(r.status, 405, "{}", r.body);
    assert_eq!(r.error().error, "method_not_allowed");
}

#[test]
fn the_node_s_refusals_reach_the_client_with_their_status_and_field() {
    let h = Harness::open();
    let cam = h.client.create_source(&source("cam", "vp8")).unwrap();
    let mic = h.client.create_source(&source("mic", "opus")).unwrap();
    h.client
        .create_channel(&channel("main", Some(cam.id), None))
        .unwrap();
    let rows: [(CreateChannel, u16, &str, &str); 5] = [
        (
            channel("none", None, None),
            400,
            "bad_request",
            "`video`, `audio`",
        ),
        (
            channel("main", None, Some(mic.id)),
            409,
            "conflict",
            "`name`",
        ),
        (
            channel("x", Some(99), None),
            404,
            "not_found",
            "`video`: no source 99",
        ),
        (
            channel("x", Some(mic.id), None),
            409,
            "conflict",
            "`video`: source 2 is opus",
        ),
        (
            channel("x", None, Some(cam.id)),
            409,
            "conflict",
            "`audio`: source 1 is vp8",
        ),
    ];
    for (req, status, code, says) in rows {
        let (got_status, got_code, message) = api_err(h.client.create_channel(&req));
        assert_eq!(
            (got_status, got_code.as_str()),
            (status, code),
            "{req:?}: {message}"
        );
        assert!(message.contains(says), "{req:?}: {message}");
    }
    assert_eq!(
        h.client.channels().unwrap().len(),
        1,
        "none of them was added"
    );
}

#[test]
fn a_deleted_source_leaves_its_channels_with_that_slot_empty() {
    let h = Harness::open();
    let cam = h.client.create_source(&source("cam", "vp8")).unwrap();
    let mic = h.client.create_source(&source("mic", "opus")).unwrap();
    let c = h
        .client
        .create_channel(&channel("main", Some(cam.id), Some(mic.id)))
        .unwrap();
    h.client.delete_source(cam.id).unwrap();
    let after = h.client.channel(c.id).unwrap();
    assert_eq!((after.video, after.audio), (None, Some(mic.id)));
}

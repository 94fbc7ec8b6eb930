//! WHEP at the HTTP layer, over raw HTTP against the in-memory `Control`: the offer/answer
//! exchange and its headers, the refusals (media type, channel, full node), CORS and preflights,
//! which token opens which route, and the viewer's own resource (`PATCH`, `DELETE`, switch),
//! which the viewer token opens only with that viewer's key from its `Location`.
//! Negotiation itself is the node's (node/tests); here the fake admits any offer starting `v=0`.

mod support;

use corecast_signaling::api::CreateChannel;
use corecast_signaling::ApiConfig;
use support::{raw, source, sub, Harness, Raw};

const ADMIN: &str = "admin-secret";
const VIEWER: &str = "viewer-secret";
const OFFER: &[u8] = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
const SDP: (&str, &str) = ("Content-Type", "application/sdp");
const FRAG: (&str, &str) = ("Content-Type", "application/trickle-ice-sdpfrag");

/// A node with a VP8 and an Opus source and channel 1 showing both; `tokens` sets the admin and
/// viewer tokens (the harness client carries the admin one).
fn node_with_channel(tokens: bool, max_subscribers: usize) -> Harness {
    let config = if tokens {
        ApiConfig {
            token: Some(ADMIN.into()),
            viewer_token: Some(VIEWER.into()),
            ..ApiConfig::default()
        }
    } else {
        ApiConfig::default()
    };
    let h = Harness::start(config, max_subscribers);
    let cam = h.client.create_source(&source("cam", "vp8")).unwrap();
    let mic = h.client.create_source(&source("mic", "opus")).unwrap();
    let channel = h
        .client
        .create_channel(&CreateChannel {
            name: "main".into(),
            video: Some(cam.id),
            audio: Some(mic.id),
        })
        .unwrap();
    assert_eq!(channel.id, 1);
    h
}

fn header<'a>(r: &'a Raw, name: &str) -> Option<&'a str> {
    r.headers.get(name).map(|v| v.to_str().unwrap())
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Posts the offer with `auth` (a whole Authorization value, if any) and returns the answer.
fn offer(h: &Harness, channel: u32, auth: Option<&str>) -> Raw {
    let mut headers = vec![SDP];
    if let Some(auth) = auth {
        headers.push(("Authorization", auth));
    }
    raw(
        "POST",
        &h.url(&format!("/v1/channels/{channel}/whep")),
        &headers,
        OFFER,
    )
}

/// An answer's `Location`: `/v1/subscribers/{id}?key=<32 hex digits>`.
fn location(answer: &Raw) -> String {
    header(answer, "location").expect("Location").to_string()
}

/// The viewer id in an answer's `Location`.
fn viewer_id(answer: &Raw) -> u32 {
    let location = location(answer);
    location
        .strip_prefix("/v1/subscribers/")
        .and_then(|rest| rest.split('?').next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("Location {location} is not /v1/subscribers/{{id}}?key=..."))
}

/// The key in an answer's `Location`.
fn viewer_key(answer: &Raw) -> String {
    let location = location(answer);
    let key = location
        .split_once("?key=")
        .map(|(_, key)| key.to_string())
        .unwrap_or_else(|| panic!("Location {location} has no key"));
    assert!(
        key.len() == 32 && key.bytes().all(|c| c.is_ascii_hexdigit()),
        "{location}: a key is 128 bits in hex"
    );
    key
}

fn assert_cors(r: &Raw) {
    assert_eq!(header(r, "access-control-allow-origin"), Some("*"));
    let expose = header(r, "access-control-expose-headers").expect("Expose-Headers");
    for name in ["Location", "ETag", "Accept-Patch", "Retry-After"] {
        assert!(expose.contains(name), "{name} not exposed: {expose}");
    }
}

fn assert_error(r: &Raw, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    let error = r.error();
    assert_eq!(error.error, code, "{}", r.body);
    assert!(!error.message.is_empty());
}

#[test]
fn an_offer_is_answered_with_201_and_the_whep_headers() {
    let h = node_with_channel(false, 100);
    let r = offer(&h, 1, None);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(header(&r, "content-type"), Some("application/sdp"));
    let id = viewer_id(&r);
    assert_eq!(
        header(&r, "etag"),
        Some(format!("\"viewer-{id}\"").as_str())
    );
    assert_eq!(
        header(&r, "accept-patch"),
        Some("application/trickle-ice-sdpfrag")
    );
    assert!(r.body.starts_with("v=0\r\n"), "{}", r.body);
    assert_cors(&r);
    // A second viewer is another resource.
    let second = offer(&h, 1, None);
    assert_eq!(second.status, 201, "{}", second.body);
    assert_ne!(viewer_id(&second), id);
    // A charset parameter does not change the media type.
    let r = raw(
        "POST",
        &h.url("/v1/channels/1/whep"),
        &[("Content-Type", "Application/SDP; charset=utf-8")],
        OFFER,
    );
    assert_eq!(r.status, 201, "{}", r.body);
}

#[test]
fn offers_are_refused_in_the_error_shape() {
    let h = node_with_channel(false, 100);
    let url = h.url("/v1/channels/1/whep");
    for content_type in ["application/json", "text/plain", "application/sdpx"] {
        let r = raw("POST", &url, &[("Content-Type", content_type)], OFFER);
        assert_error(&r, 415, "unsupported_media_type");
        assert!(r.error().message.contains(content_type), "{}", r.body);
        assert_cors(&r);
    }
    let r = raw("POST", &url, &[], OFFER);
    assert_error(&r, 415, "unsupported_media_type");
    // Not UTF-8, not SDP (the fake's own check), an id that is not one.
    assert_error(
        &raw("POST", &url, &[SDP], b"v=0\xff\xfe"),
        400,
        "bad_request",
    );
    assert_error(&raw("POST", &url, &[SDP], b"hello"), 400, "bad_request");
    let r = raw("POST", &h.url("/v1/channels/x/whep"), &[SDP], OFFER);
    assert_error(&r, 400, "bad_request");
    // Unknown channel: 404, and no viewer was made.
    let r = offer(&h, 7, None);
    assert_error(&r, 404, "not_found");
    assert!(r.headers.get("location").is_none());
    assert_eq!(viewer_id(&offer(&h, 1, None)), 1);
}

#[test]
fn a_full_node_answers_503_with_retry_after() {
    let h = node_with_channel(false, 1);
    h.client.create_subscribers(&[sub(1, 5004)]).unwrap();
    let r = offer(&h, 1, None);
    assert_error(&r, 503, "unavailable");
    assert_eq!(header(&r, "retry-after"), Some("5"));
    assert_cors(&r);
    // Room again once the plain subscriber goes.
    h.client.delete_subscriber(1).unwrap();
    assert_eq!(offer(&h, 1, None).status, 201);
}

#[test]
fn preflights_need_no_token_and_name_what_may_be_sent() {
    let h = node_with_channel(true, 100);
    let preflight = |path: &str| {
        raw(
            "OPTIONS",
            &h.url(path),
            &[
                ("Origin", "https://player.example"),
                ("Access-Control-Request-Method", "POST"),
                (
                    "Access-Control-Request-Headers",
                    "authorization, content-type",
                ),
            ],
            b"",
        )
    };
    let r = preflight("/v1/channels/1/whep");
    assert_eq!((r.status, r.body.as_str()), (204, ""));
    assert_cors(&r);
    assert_eq!(header(&r, "accept-post"), Some("application/sdp"));
    let methods = header(&r, "access-control-allow-methods").unwrap();
    for m in ["POST", "PATCH", "DELETE", "OPTIONS"] {
        assert!(methods.contains(m), "{m} not allowed: {methods}");
    }
    let allowed = header(&r, "access-control-allow-headers").unwrap();
    for name in ["Authorization", "Content-Type", "If-Match"] {
        assert!(allowed.contains(name), "{name} not allowed: {allowed}");
    }
    assert!(header(&r, "access-control-max-age").is_some());
    // The viewer's resource: a preflight too, without Accept-Post.
    let r = preflight("/v1/subscribers/1");
    assert_eq!(r.status, 204);
    assert_cors(&r);
    assert!(r.headers.get("accept-post").is_none());
    // A resource whose name ends in `whep` is still a resource (found by fuzzing api_json).
    for path in [
        "/v1/subscribers/whep",
        "/v1/channels/whep",
        "/v1/channels/1/x/whep",
    ] {
        let r = preflight(path);
        assert_eq!(r.status, 204, "{path}");
        assert!(r.headers.get("accept-post").is_none(), "{path}");
    }
}

#[test]
fn ordinary_responses_carry_cors_headers() {
    let h = node_with_channel(true, 100);
    let admin = bearer(ADMIN);
    for r in [
        raw("GET", &h.url("/healthz"), &[], b""),
        raw(
            "GET",
            &h.url("/v1/stats"),
            &[("Authorization", &admin)],
            b"",
        ),
        raw("GET", &h.url("/v1/stats"), &[], b""),
        raw(
            "GET",
            &h.url("/v1/nowhere"),
            &[("Authorization", &admin)],
            b"",
        ),
        raw(
            "PUT",
            &h.url("/v1/sources"),
            &[("Authorization", &admin)],
            b"",
        ),
    ] {
        assert_cors(&r);
    }
}

#[test]
fn viewer_routes_take_either_token_admin_routes_only_the_admin_one() {
    let h = node_with_channel(true, 100);
    let (admin, viewer, wrong) = (bearer(ADMIN), bearer(VIEWER), bearer("nope"));

    // The offer: either token; none or a wrong one is a 401 that says Bearer.
    for auth in [&admin, &viewer] {
        assert_eq!(offer(&h, 1, Some(auth)).status, 201);
    }
    for auth in [None, Some(wrong.as_str())] {
        let r = offer(&h, 1, auth);
        assert_error(&r, 401, "unauthorized");
        assert_eq!(header(&r, "www-authenticate"), Some("Bearer"));
        assert_cors(&r);
    }
    // The channel list and the page: either token, not none.
    for path in ["/v1/channels", "/watch/1"] {
        for auth in [&admin, &viewer] {
            let r = raw("GET", &h.url(path), &[("Authorization", auth)], b"");
            assert_eq!(r.status, 200, "{path}: {}", r.body);
        }
        assert_error(&raw("GET", &h.url(path), &[], b""), 401, "unauthorized");
    }
    // Admin routes refuse the viewer token.
    let json = ("Content-Type", "application/json");
    let admin_only: [(&str, &str, &[u8]); 8] = [
        ("POST", "/v1/sources", br#"{"name":"x","codec":"vp8"}"#),
        ("GET", "/v1/sources", b""),
        ("DELETE", "/v1/sources/1", b""),
        ("GET", "/v1/subscribers", b""),
        ("POST", "/v1/channels", br#"{"name":"y","video":1}"#),
        ("DELETE", "/v1/channels/1", b""),
        ("GET", "/v1/stats", b""),
        ("GET", "/metrics", b""),
    ];
    for (method, path, body) in admin_only {
        let r = raw(
            method,
            &h.url(path),
            &[("Authorization", &viewer), json],
            body,
        );
        assert_error(&r, 401, "unauthorized");
    }
    // Nothing the viewer token asked for happened.
    assert_eq!(h.client.sources().unwrap().len(), 2);
    assert_eq!(h.client.channels().unwrap().len(), 1);
    // The channel the viewer watches is still there to be shown with the admin token.
    let r = raw(
        "GET",
        &h.url("/v1/channels/1"),
        &[("Authorization", &admin)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = raw(
        "GET",
        &h.url("/v1/channels/1"),
        &[("Authorization", &viewer)],
        b"",
    );
    assert_error(&r, 401, "unauthorized");
    // Health needs no token at all.
    let r = raw("GET", &h.url("/healthz"), &[], b"");
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn the_viewer_token_ends_viewers_only() {
    let h = node_with_channel(true, 100);
    let (admin, viewer) = (bearer(ADMIN), bearer(VIEWER));
    let plain = h.client.create_subscribers(&[sub(1, 5004)]).unwrap()[0].id;
    let answer = offer(&h, 1, Some(&viewer));
    let own = location(&answer);
    let delete =
        |path: &str, auth: &str| raw("DELETE", &h.url(path), &[("Authorization", auth)], b"");

    // A plain subscriber has no key to present: refused for the viewer token, and it stays.
    let plain_path = format!("/v1/subscribers/{plain}");
    assert_error(&delete(&plain_path, &viewer), 403, "forbidden");
    let r = delete(
        &format!("{plain_path}?key={}", viewer_key(&answer)),
        &viewer,
    );
    assert_error(&r, 403, "forbidden");
    assert_eq!(h.client.subscriber(plain).unwrap().id, plain);
    // Its id percent-encoded is the same id to the route, so it needs the same key.
    let id = viewer_id(&answer);
    let encoded: String = id
        .to_string()
        .bytes()
        .map(|d| format!("%{d:02X}"))
        .collect();
    let r = delete(&format!("/v1/subscribers/{encoded}"), &viewer);
    assert_error(&r, 403, "forbidden");
    // The viewer goes, once, by its Location.
    let r = delete(&own, &viewer);
    assert_eq!((r.status, r.body.as_str()), (204, ""));
    assert_cors(&r);
    assert_error(&delete(&own, &viewer), 404, "not_found");
    // The admin token deletes plain subscribers.
    assert_eq!(delete(&plain_path, &admin).status, 204);
    assert_error(&delete(&plain_path, &admin), 404, "not_found");
}

#[test]
fn the_viewer_token_switches_by_channel_not_by_source() {
    let h = node_with_channel(true, 100);
    let (admin, viewer) = (bearer(ADMIN), bearer(VIEWER));
    let answer = offer(&h, 1, Some(&viewer));
    let (id, key) = (viewer_id(&answer), viewer_key(&answer));
    let plain = h.client.create_subscribers(&[sub(1, 5004)]).unwrap()[0].id;
    // The viewer token switches with the viewer's key; the admin token needs none.
    let switch = |id: u32, auth: &str, body: &str| {
        let query = if auth == viewer {
            format!("?key={key}")
        } else {
            String::new()
        };
        raw(
            "POST",
            &h.url(&format!("/v1/subscribers/{id}/switch{query}")),
            &[
                ("Authorization", auth),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
    };

    let r = switch(id, &viewer, r#"{"source":1}"#);
    assert_error(&r, 403, "forbidden");
    assert!(r.error().message.contains("channel"), "{}", r.body);
    let r = switch(id, &viewer, r#"{"channel":1}"#);
    assert_eq!(r.status, 202, "{}", r.body);
    let view: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(view["outcome"], "pending");
    assert_cors(&r);
    // Unknown channel; neither or both fields.
    assert_error(&switch(id, &viewer, r#"{"channel":9}"#), 404, "not_found");
    assert_error(&switch(id, &viewer, "{}"), 400, "bad_request");
    let r = switch(id, &admin, r#"{"source":1,"channel":1}"#);
    assert_error(&r, 400, "bad_request");
    // The viewer's key opens no other resource; by source, the admin token switches it.
    assert_error(
        &switch(plain, &viewer, r#"{"channel":1}"#),
        403,
        "forbidden",
    );
    let r = switch(plain, &admin, r#"{"source":2}"#);
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(h.client.subscriber(plain).unwrap().pending_source, Some(2));
}

#[test]
fn patch_checks_the_media_type_and_the_etag() {
    let h = node_with_channel(true, 100);
    let viewer = bearer(VIEWER);
    let answer = offer(&h, 1, Some(&viewer));
    let etag = header(&answer, "etag").unwrap().to_string();
    let url = h.url(&location(&answer));
    let fragment = b"a=ice-ufrag:brws\r\na=ice-pwd:0123456789abcdefghijklmn\r\nm=audio 9 \
                     UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 UDP 1 127.0.0.1 9 typ \
                     host\r\n";
    let auth = ("Authorization", viewer.as_str());

    let r = raw("PATCH", &url, &[auth, FRAG, ("If-Match", &etag)], fragment);
    assert_eq!((r.status, r.body.as_str()), (204, ""), "{}", r.body);
    assert_cors(&r);
    let r = raw(
        "PATCH",
        &url,
        &[auth, FRAG, ("If-Match", "\"viewer-999\"")],
        fragment,
    );
    assert_error(&r, 412, "precondition_failed");
    for content_type in ["application/sdp", "application/json"] {
        let r = raw(
            "PATCH",
            &url,
            &[auth, ("Content-Type", content_type), ("If-Match", &etag)],
            fragment,
        );
        assert_error(&r, 415, "unsupported_media_type");
    }
    assert_error(
        &raw("PATCH", &url, &[auth, ("If-Match", &etag)], fragment),
        415,
        "unsupported_media_type",
    );
    // Not UTF-8; and a viewer that does not exist, with the admin token (the viewer token has
    // no key for it).
    let r = raw("PATCH", &url, &[auth, FRAG], b"a=\xff");
    assert_error(&r, 400, "bad_request");
    let admin = bearer(ADMIN);
    let r = raw(
        "PATCH",
        &h.url("/v1/subscribers/77"),
        &[("Authorization", &admin), FRAG, ("If-Match", &etag)],
        fragment,
    );
    assert_error(&r, 404, "not_found");
    // Without a token, refused before the body is looked at.
    let r = raw("PATCH", &url, &[FRAG, ("If-Match", &etag)], fragment);
    assert_error(&r, 401, "unauthorized");
}

#[test]
fn the_watch_page_is_served_as_html() {
    let h = node_with_channel(false, 100);
    let r = raw("GET", &h.url("/watch/1"), &[], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    let content_type = header(&r, "content-type").unwrap();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(r.body.starts_with("<!doctype html>"), "{}", &r.body[..64]);
    assert!(r.body.contains("RTCPeerConnection"));
    assert!(r.body.contains("/whep"));
    assert_cors(&r);
    assert_error(
        &raw("GET", &h.url("/watch/nope"), &[], b""),
        400,
        "bad_request",
    );
}

/// What holders of the viewer token can do to a viewer's resource (`PATCH`, switch, `DELETE`):
/// its owner, with the key in its `Location`, everything; another holder, who knows the id
/// (ids are sequential) but not the key, nothing; the admin token everything without a key.
fn check_ownership(h: &Harness, viewer_auth: Option<&str>) {
    let admin = bearer(ADMIN);
    let with_token = |headers: &[(&'static str, &'static str)], auth: Option<&str>| {
        let mut all: Vec<(&str, String)> =
            headers.iter().map(|&(n, v)| (n, v.to_string())).collect();
        if let Some(a) = auth {
            all.push(("Authorization", a.to_string()));
        }
        all
    };
    let send = |method: &str, path: &str, auth: Option<&str>| {
        let (headers, body): (&[(&str, &str)], &[u8]) = match method {
            "PATCH" => (&[FRAG], b"a=ice-ufrag:brws\r\na=mid:0\r\n"),
            "POST" => (&[("Content-Type", "application/json")], br#"{"channel":1}"#),
            _ => (&[], b""),
        };
        let headers = with_token(headers, auth);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        raw(method, &h.url(path), &headers, body)
    };
    let mine = offer(h, 1, viewer_auth);
    let theirs = offer(h, 1, viewer_auth);
    assert_eq!((mine.status, theirs.status), (201, 201), "{}", mine.body);
    let (mine_id, theirs_id) = (viewer_id(&mine), viewer_id(&theirs));
    let (mine_key, theirs_key) = (viewer_key(&mine), viewer_key(&theirs));
    assert_ne!(mine_key, theirs_key, "each viewer has its own key");
    let resource = |id: u32, query: &str| format!("/v1/subscribers/{id}{query}");
    let switch = |id: u32, query: &str| format!("/v1/subscribers/{id}/switch{query}");

    // The other viewer's holder knows my id: without a key, with theirs, with a mangled one.
    let attempts = [
        (String::new(), "needs its key"),
        (format!("?key={theirs_key}"), "is not viewer"),
        (format!("?key={}", &mine_key[..31]), "is not viewer"),
        ("?key=".to_string(), "needs its key"),
    ];
    for (query, says) in &attempts {
        for (method, path) in [
            ("PATCH", resource(mine_id, query)),
            ("POST", switch(mine_id, query)),
            ("DELETE", resource(mine_id, query)),
        ] {
            let r = send(method, &path, viewer_auth);
            assert_error(&r, 403, "forbidden");
            let message = r.error().message;
            assert!(message.contains(says), "{method} {path}: {message}");
            assert!(message.contains(&mine_id.to_string()), "{message}");
            assert_cors(&r);
        }
    }
    // The owner, by its Location verbatim and the switch beside it.
    let own = location(&mine);
    let r = send("PATCH", &own, viewer_auth);
    assert_eq!(r.status, 204, "{}", r.body);
    let r = send(
        "POST",
        &switch(mine_id, &format!("?key={mine_key}")),
        viewer_auth,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    // The admin token needs no key, for its PATCH and switch.
    let r = send("PATCH", &resource(theirs_id, ""), Some(&admin));
    assert_eq!(r.status, 204, "{}", r.body);
    let r = send("POST", &switch(theirs_id, ""), Some(&admin));
    assert_eq!(r.status, 202, "{}", r.body);
    // Nothing refused happened: my viewer is still there for me to end, once.
    let r = send("DELETE", &own, viewer_auth);
    assert_eq!((r.status, r.body.as_str()), (204, ""));
    assert_error(&send("DELETE", &own, viewer_auth), 404, "not_found");
    // The other viewer is still there too, for its own holder to end (the admin token's
    // DELETE is the node's `delete_subscriber`, which this fake keeps apart from viewers).
    let r = send("DELETE", &location(&theirs), viewer_auth);
    assert_eq!(r.status, 204, "{}", r.body);
}

#[test]
fn a_viewers_resource_opens_with_the_viewer_token_only_with_its_own_key() {
    let h = node_with_channel(true, 100);
    check_ownership(&h, Some(&bearer(VIEWER)));
}

#[test]
fn without_a_viewer_token_the_open_viewer_routes_still_need_the_key() {
    // The admin token set, no viewer token: anyone may make a viewer, so the key is all that
    // keeps one viewer from ending another.
    let h = Harness::start(
        ApiConfig {
            token: Some(ADMIN.into()),
            ..ApiConfig::default()
        },
        100,
    );
    let cam = h.client.create_source(&source("cam", "vp8")).unwrap();
    h.client
        .create_channel(&CreateChannel {
            name: "main".into(),
            video: Some(cam.id),
            audio: None,
        })
        .unwrap();
    check_ownership(&h, None);
}

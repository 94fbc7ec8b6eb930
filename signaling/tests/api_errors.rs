//! What the API answers to requests `Client` never sends: malformed or mistyped JSON, unknown
//! fields, bad ids, unknown routes, wrong methods, oversized bodies; and a node that panics. Every
//! answer must be the `{"error","message"}` JSON shape with a message that says what was wrong.

mod support;

use corecast_signaling::ApiConfig;
use support::{api_err, raw, source, sub, Harness, JSON};

#[test]
fn malformed_requests_get_json_errors_that_say_why() {
    let h = Harness::open();
    h.client.create_source(&source("a", "vp8")).unwrap();
    let post = |path: &str, headers: &[(&str, &str)], body: &str| {
        let r = raw("POST", &h.url(path), headers, body.as_bytes());
        let e = r.error();
        (r.status, e.error, e.message)
    };
    let bad = |path: &str, body: &str| post(path, JSON, body);

    let (status, code, message) = bad("/v1/subscribers", r#"{"source":1}"#);
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    assert_eq!(message, "missing field `dest` at line 1 column 12");
    let (status, _, message) = bad("/v1/sources", r#"{"name":"#);
    assert_eq!(status, 400);
    assert!(
        message.starts_with("malformed JSON: EOF while parsing"),
        "{message}"
    );
    let (_, _, message) = bad("/v1/sources", "not json");
    assert!(message.starts_with("malformed JSON: expected"), "{message}");
    let (status, _, message) = bad("/v1/sources", r#"{"name":1,"codec":"vp8"}"#);
    assert_eq!(status, 400);
    assert!(
        message.starts_with("name: invalid type: integer `1`, expected a string"),
        "{message}"
    );
    let (status, _, message) = bad("/v1/sources", r#"{"name":"b","codec":"vp8","colour":1}"#);
    assert_eq!(status, 400);
    assert!(message.contains("unknown field `colour`"), "{message}");
    let (status, _, message) = bad(
        "/v1/subscribers:batch",
        r#"[{"source":1,"dest":"1.2.3.4:5"},{"source":-1,"dest":"x"}]"#,
    );
    assert_eq!(status, 400);
    assert!(
        message.starts_with("[1].source: invalid value: integer `-1`"),
        "{message}"
    );
    let (status, _, message) = bad(
        "/v1/subscribers:batch",
        r#"{"source":1,"dest":"1.2.3.4:5"}"#,
    );
    assert_eq!(status, 400);
    assert!(message.contains("expected a sequence"), "{message}");
    let (status, _, message) = bad("/v1/sources", "");
    assert_eq!(
        (status, message.as_str()),
        (400, "the request body is empty: expected JSON")
    );
    let (status, _, message) = bad("/v1/subscribers/1/switch", r#"{"source":"2"}"#);
    assert_eq!(status, 400);
    assert!(
        message.starts_with("source: invalid type: string"),
        "{message}"
    );

    let (status, _, message) = post("/v1/sources", &[], r#"{"name":"b","codec":"vp8"}"#);
    assert_eq!(
        (status, message.as_str()),
        (400, "missing Content-Type: expected application/json")
    );
    let (status, _, message) = post("/v1/sources", &[("Content-Type", "text/plain")], "{}");
    assert_eq!(status, 400);
    assert_eq!(
        message,
        "Content-Type text/plain is not JSON: expected application/json"
    );
    let r = raw(
        "POST",
        &h.url("/v1/sources"),
        &[("Content-Type", "application/json; charset=utf-8")],
        br#"{"name":"b","codec":"vp8"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body);

    for path in [
        "/v1/sources/abc",
        "/v1/sources/-1",
        "/v1/subscribers/4294967296",
        "/v1/subscribers/1.5",
    ] {
        let r = raw("GET", &h.url(path), &[], b"");
        assert_eq!(r.status, 400, "{path}");
        let e = r.error();
        assert_eq!(e.error, "bad_request");
        assert!(e.message.starts_with("invalid id `"), "{}", e.message);
    }
    let r = raw(
        "POST",
        &h.url("/v1/subscribers/x/switch"),
        JSON,
        br#"{"source":1}"#,
    );
    assert_eq!(
        (r.status, r.error().message.as_str()),
        (
            400,
            "invalid id `x` in the path: expected an integer from 0 to 4294967295"
        )
    );
}

#[test]
fn unknown_routes_and_wrong_methods() {
    let h = Harness::open();
    for path in [
        "/v1/nothing",
        "/",
        "/v1/sources/1/extra",
        "/v2/sources",
        "/v1/subscribers:bulk",
    ] {
        let r = raw("GET", &h.url(path), &[], b"");
        assert_eq!(r.status, 404, "{path}");
        let e = r.error();
        assert_eq!(
            (e.error.as_str(), e.message),
            ("not_found", format!("no route for GET {path}"))
        );
    }
    for (method, path) in [
        ("PUT", "/v1/sources"),
        ("DELETE", "/v1/stats"),
        ("GET", "/v1/subscribers:batch"),
        ("POST", "/v1/sources/1"),
        ("GET", "/v1/subscribers/1/switch"),
        ("POST", "/healthz"),
    ] {
        let r = raw(method, &h.url(path), JSON, b"{}");
        assert_eq!(r.status, 405, "{method} {path}");
        assert!(r.headers.contains_key("allow"), "{method} {path}");
        let e = r.error();
        assert_eq!(
            (e.error.as_str(), e.message),
            (
                "method_not_allowed",
                format!("{method} is not allowed on {path}")
            )
        );
    }
}

#[test]
fn body_over_the_limit_is_413() {
    let h = Harness::start(
        ApiConfig {
            max_body_bytes: 1024,
            ..ApiConfig::default()
        },
        100,
    );
    let big = format!(r#"{{"name":"{}","codec":"vp8"}}"#, "n".repeat(2000));
    let r = raw("POST", &h.url("/v1/sources"), JSON, big.as_bytes());
    assert_eq!(r.status, 413);
    let e = r.error();
    assert_eq!(
        (e.error.as_str(), e.message.as_str()),
        (
            "payload_too_large",
            "the request body exceeds the limit of 1024 bytes"
        )
    );
    // Just under the limit passes.
    let ok = format!(r#"{{"name":"{}","codec":"vp8"}}"#, "n".repeat(900));
    assert_eq!(
        raw("POST", &h.url("/v1/sources"), JSON, ok.as_bytes()).status,
        201
    );
}

/// Far past the limit, a client that writes its whole body before reading (as `Client` does)
/// still gets the 413, not a broken pipe.
#[test]
fn body_far_over_the_default_limit_is_413_not_a_reset() {
    let h = Harness::open();
    for size in [2 << 20, 8 << 20] {
        let big = format!(r#"{{"name":"{}","codec":"vp8"}}"#, "n".repeat(size));
        let r = raw("POST", &h.url("/v1/sources"), JSON, big.as_bytes());
        assert_eq!(
            (r.status, r.error().error.as_str()),
            (413, "payload_too_large")
        );
    }
    let src = h.client.create_source(&source("a", "vp8")).unwrap().id;
    let reqs: Vec<_> = (0..40_000).map(|i| sub(src, 10_000 + i)).collect();
    let (status, code, message) = api_err(h.client.create_subscribers(&reqs));
    assert_eq!((status, code.as_str()), (413, "payload_too_large"));
    assert_eq!(
        message,
        "the request body exceeds the limit of 1048576 bytes"
    );
    // The connection is still usable afterwards.
    assert!(h.client.subscribers().unwrap().is_empty());
}

#[test]
fn node_panic_is_a_json_500() {
    let h = Harness::open();
    let (status, code, _) = api_err(h.client.create_source(&source("panic", "vp8")));
    assert_eq!((status, code.as_str()), (500, "internal"));
    // The server survives it.
    h.client.create_source(&source("ok", "vp8")).unwrap();
}

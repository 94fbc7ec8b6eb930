//! The HTTP control API's request handling, in memory: the real router (`signaling::router`)
//! over a stub `Control`, fed a route, headers and any body; a `CreateSource` that gets through
//! goes on to the node's own parsing of `parameter_sets` (`configured_parameter_sets`). It checks:
//! - nothing is a 5xx but a WHEP offer the node is too full for (503 with `Retry-After`), every
//!   refusal is a JSON `{"error", "message"}` whose code fits its status, and every response,
//!   refusals and preflights included, carries the CORS headers;
//! - a missing or wrong token is a 401, and so is the viewer token on an admin route; a non-JSON
//!   content type or a body serde refuses a 400, a body over the limit a 413, and none of them
//!   reaches the node;
//! - a body serde accepts reaches the node as exactly what serde decodes, and a success answers
//!   with a body of the route's view type;
//! - WHEP: an offer or trickle fragment of another media type is a 415, one that is not UTF-8 a
//!   400, neither reaching the node; an admitted offer is a 201 `application/sdp` answer with
//!   `Location`, `ETag` and `Accept-Patch`; a `PATCH` hands the node its `If-Match`; a preflight
//!   is a 204 with no token needed (`Accept-Post` on the offer path); the viewer token deletes
//!   through `delete_viewer` and may switch by `channel` but not by `source` (403);
//! - parameter sets the node accepts give a prelude that is a switch point carrying them.
//!
//! Input: byte 0 picks the route, byte 1 the content type (bits 0-1, bit 7 the WHEP media
//! types), token (bits 2-3, bit 6 the viewer token instead of the admin one) and `{id}` (bits
//! 4-5) variants; for `PATCH` the next byte picks the `If-Match`; the rest is the body (for the
//! fourth `{id}` variant, its first line is the id segment). Seeds are plain text, written by
//! `scripts/fuzz.sh`.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use corecast_signaling::api::{
    ChannelView, CreateChannel, CreateSource, CreateSubscriber, SourceView, StatsView,
    SubscriberView, SwitchRequest, SwitchView,
};
use corecast_signaling::{router, ApiConfig, ErrorBody};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use tower::ServiceExt;

const TOKEN: &str = "fuzz-token";
const VIEWER_TOKEN: &str = "fuzz-viewer";
const MAX_BODY: usize = 2048;
/// The stub's one viewer resource, and its ETag.
const VIEWER_ID: u32 = 7;
const ETAG: &str = "\"fuzz-etag\"";
/// The channel the stub is too full for (429 from the node, 503 on the wire).
const FULL_CHANNEL: u32 = u32::MAX;
/// The channel the stub does not know.
const UNKNOWN_CHANNEL: u32 = 404;

#[path = "api_json/stub.rs"]
mod stub;
use stub::{Call, Stub};

struct World {
    runtime: tokio::runtime::Runtime,
    stub: Arc<Stub>,
    app: axum::Router,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let stub = Arc::new(Stub::default());
        let config = ApiConfig {
            token: Some(TOKEN.into()),
            viewer_token: Some(VIEWER_TOKEN.into()),
            max_body_bytes: MAX_BODY,
        };
        World {
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
            app: router(stub.clone(), config),
            stub,
        }
    })
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Route {
    CreateSource,
    CreateSubscriber,
    CreateSubscribers,
    Switch,
    GetSource,
    DeleteSubscriber,
    Stats,
    PutSources,
    Unknown,
    Healthz,
    CreateChannel,
    DeleteChannel,
    WhepOffer,
    WhepPatch,
    PreflightOffer,
    PreflightResource,
    Watch,
    ListChannels,
}

// New routes go last, so seeds and kept regressions keep the route they were made for: a route
// byte below 12 picks the same route with 18 routes as with 12 (the kept inputs use such bytes).
const ROUTES: [Route; 18] = [
    Route::CreateSource,
    Route::CreateSubscriber,
    Route::CreateSubscribers,
    Route::Switch,
    Route::GetSource,
    Route::DeleteSubscriber,
    Route::Stats,
    Route::PutSources,
    Route::Unknown,
    Route::Healthz,
    Route::CreateChannel,
    Route::DeleteChannel,
    Route::WhepOffer,
    Route::WhepPatch,
    Route::PreflightOffer,
    Route::PreflightResource,
    Route::Watch,
    Route::ListChannels,
];

impl Route {
    /// What the viewer token opens: a viewer's offer, its own resource and switch, the channel
    /// list and the page.
    fn is_viewer(self) -> bool {
        matches!(
            self,
            Route::WhepOffer
                | Route::WhepPatch
                | Route::DeleteSubscriber
                | Route::Switch
                | Route::ListChannels
                | Route::Watch
        )
    }
}

/// The token a request presents.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Presented {
    Admin,
    Viewer,
    Missing,
    Wrong,
}

const JSON_TYPES: [Option<&str>; 4] = [
    Some("application/json"),
    None,
    Some("text/plain"),
    Some("application/merge-patch+json; charset=utf-8"),
];
const WHEP_TYPES: [Option<&str>; 4] = [
    Some("application/sdp"),
    Some("application/trickle-ice-sdpfrag"),
    Some("Application/SDP; charset=utf-8"),
    Some("application/trickle-ice-sdpfrag;x=1"),
];
const IF_MATCH: [Option<&str>; 4] = [None, Some(ETAG), Some("\"another\""), Some("*")];

fuzz_target!(|data: &[u8]| {
    let [route, flags, rest @ ..] = data else {
        return;
    };
    let route = ROUTES[usize::from(*route) % ROUTES.len()];
    let (if_match, rest) = match (route, rest) {
        (Route::WhepPatch, [pick, rest @ ..]) => (IF_MATCH[usize::from(*pick) % 4], rest),
        _ => (None, rest),
    };
    let (id, body) = match flags >> 4 & 3 {
        0 => ("1".to_string(), rest),
        1 => ("4294967295".to_string(), rest),
        2 => ("4294967296".to_string(), rest),
        _ => {
            let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let Ok(segment) = std::str::from_utf8(&rest[..end]) else {
                return;
            };
            (segment.to_string(), rest.get(end + 1..).unwrap_or_default())
        }
    };
    let (method, path) = match route {
        Route::CreateSource => (Method::POST, "/v1/sources".to_string()),
        Route::CreateSubscriber => (Method::POST, "/v1/subscribers".to_string()),
        Route::CreateSubscribers => (Method::POST, "/v1/subscribers:batch".to_string()),
        Route::Switch => (Method::POST, format!("/v1/subscribers/{id}/switch")),
        Route::GetSource => (Method::GET, format!("/v1/sources/{id}")),
        Route::DeleteSubscriber => (Method::DELETE, format!("/v1/subscribers/{id}")),
        Route::Stats => (Method::GET, "/v1/stats".to_string()),
        Route::PutSources => (Method::PUT, "/v1/sources".to_string()),
        Route::Unknown => (Method::GET, format!("/v1/unknown/{id}")),
        Route::Healthz => (Method::GET, "/healthz".to_string()),
        Route::CreateChannel => (Method::POST, "/v1/channels".to_string()),
        Route::DeleteChannel => (Method::DELETE, format!("/v1/channels/{id}")),
        Route::WhepOffer => (Method::POST, format!("/v1/channels/{id}/whep")),
        Route::WhepPatch => (Method::PATCH, format!("/v1/subscribers/{id}")),
        Route::PreflightOffer => (Method::OPTIONS, format!("/v1/channels/{id}/whep")),
        Route::PreflightResource => (Method::OPTIONS, format!("/v1/subscribers/{id}")),
        Route::Watch => (Method::GET, format!("/watch/{id}")),
        Route::ListChannels => (Method::GET, "/v1/channels".to_string()),
    };
    let types = if flags & 0x80 != 0 {
        WHEP_TYPES
    } else {
        JSON_TYPES
    };
    let content_type = types[usize::from(flags & 3)];
    let presented = match flags >> 2 & 3 {
        0 | 3 if flags & 0x40 != 0 => Presented::Viewer,
        0 | 3 => Presented::Admin,
        1 => Presented::Missing,
        _ => Presented::Wrong,
    };
    let secret = match presented {
        Presented::Viewer => VIEWER_TOKEN,
        _ => TOKEN,
    };
    let token = [
        Some(format!("Bearer {secret}")),
        None,
        Some("Bearer nope".to_string()),
        Some(format!("bearer  {secret} ")),
    ][usize::from(flags >> 2 & 3)]
    .clone();
    let mut request = Request::builder().method(method).uri(&path);
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    if let Some(token) = &token {
        request = request.header("authorization", token.as_str());
    }
    if let Some(tag) = if_match {
        request = request.header("if-match", tag);
    }
    // A path the fuzzer made that is not a URI never reaches a server.
    let Ok(request) = request.body(Body::from(body.to_vec())) else {
        return;
    };

    let world = world();
    world.stub.calls.lock().unwrap().clear();
    let (status, headers, response) = world.runtime.block_on(async {
        let response = world.app.clone().oneshot(request).await.unwrap();
        let headers = response.headers().clone();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, headers, bytes)
    });
    let calls = std::mem::take(&mut *world.stub.calls.lock().unwrap());
    let exchange = Exchange {
        route,
        presented,
        id: &id,
        body,
        status,
        headers: &headers,
        response: &response,
        calls: &calls,
    };

    // A page on any origin reads every answer, refusals included.
    assert_eq!(exchange.header("access-control-allow-origin"), Some("*"));
    let full = route == Route::WhepOffer && status == StatusCode::SERVICE_UNAVAILABLE;
    assert!(!status.is_server_error() || full, "{exchange:?}");
    if full {
        assert_eq!(exchange.header("retry-after"), Some("5"), "{exchange:?}");
    }
    if !status.is_success() {
        assert_eq!(exchange.header("content-type"), Some("application/json"));
        let error: ErrorBody = serde_json::from_slice(&response).expect("an error body is JSON");
        let code = match status.as_u16() {
            400 => "bad_request",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not_found",
            405 => "method_not_allowed",
            409 => "conflict",
            412 => "precondition_failed",
            413 => "payload_too_large",
            415 => "unsupported_media_type",
            503 => "unavailable",
            other => panic!("unexpected status {other}: {exchange:?}"),
        };
        assert_eq!(error.error, code);
        assert!(!error.message.is_empty());
    }
    let odd_id = id.is_empty() || id.contains(['/', '?', '#']);
    if matches!(route, Route::PreflightOffer | Route::PreflightResource) {
        // Preflights carry no credentials: answered before any token rule, on any path.
        assert_eq!(status, StatusCode::NO_CONTENT, "{exchange:?}");
        assert!(calls.is_empty() && response.is_empty(), "{exchange:?}");
        let methods = exchange.header("access-control-allow-methods").unwrap();
        assert!(methods.contains("PATCH") && methods.contains("DELETE"));
        let allowed = exchange.header("access-control-allow-headers").unwrap();
        assert!(allowed.contains("Authorization") && allowed.contains("If-Match"));
        if !odd_id {
            let accept_post = (route == Route::PreflightOffer).then_some("application/sdp");
            assert_eq!(exchange.header("accept-post"), accept_post, "{exchange:?}");
        }
        return;
    }
    if route == Route::Healthz {
        assert_eq!(status, StatusCode::OK);
        return;
    }
    // An odd id can move the path onto another route, or off the viewer routes.
    if odd_id && presented == Presented::Viewer {
        return;
    }
    let authorized = match presented {
        Presented::Admin => true,
        Presented::Viewer => route.is_viewer(),
        Presented::Missing | Presented::Wrong => false,
    };
    if !authorized {
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{exchange:?}");
        assert_eq!(exchange.header("www-authenticate"), Some("Bearer"));
        assert!(calls.is_empty());
        return;
    }
    if odd_id {
        // Not one path segment (or a query or fragment cuts the path short): another route or
        // none, which only the checks above apply to.
        return;
    }
    let as_viewer = presented == Presented::Viewer;
    let id_ok = percent_decoded(&id).and_then(|id| id.parse::<u32>().ok());
    // With the viewer token, a viewer's own resource opens only with its key (random per
    // server, so never in these requests; signaling/tests/whep.rs covers the keyed path): any
    // id that reads as a number, percent-encoded or not, is refused before the route.
    let keyed = matches!(
        route,
        Route::Switch | Route::DeleteSubscriber | Route::WhepPatch
    );
    if as_viewer && keyed && id_ok.is_some() {
        exchange.refused(StatusCode::FORBIDDEN);
        return;
    }
    match route {
        Route::CreateSource => {
            exchange.check_body::<CreateSource, SourceView>(content_type, Call::CreateSource)
        }
        Route::CreateSubscriber => exchange
            .check_body::<CreateSubscriber, SubscriberView>(content_type, |r| {
                Call::CreateSubscribers(vec![r])
            }),
        Route::CreateSubscribers => exchange
            .check_body::<Vec<CreateSubscriber>, Vec<SubscriberView>>(
                content_type,
                Call::CreateSubscribers,
            ),
        Route::Switch => match id_ok {
            Some(sub) => {
                let Some(req) = exchange.json_body::<SwitchRequest>(content_type) else {
                    return;
                };
                match (req.source, req.channel) {
                    (Some(source), None) => exchange
                        .reached::<SwitchView>(Call::Switch(sub, source), StatusCode::ACCEPTED),
                    (None, Some(channel)) => exchange.reached::<SwitchView>(
                        Call::SwitchChannel(sub, channel),
                        StatusCode::ACCEPTED,
                    ),
                    _ => exchange.refused(StatusCode::BAD_REQUEST),
                }
            }
            None => exchange.refused(StatusCode::BAD_REQUEST),
        },
        Route::GetSource => match id_ok {
            Some(n) => assert_eq!(calls, [Call::Source(n)], "{exchange:?}"),
            None => exchange.refused(StatusCode::BAD_REQUEST),
        },
        Route::DeleteSubscriber => match id_ok {
            Some(n) => assert_eq!(calls, [Call::DeleteSubscriber(n)], "{exchange:?}"),
            None => exchange.refused(StatusCode::BAD_REQUEST),
        },
        Route::Stats => {
            assert_eq!(status, StatusCode::OK);
            serde_json::from_slice::<StatsView>(&response).expect("a stats body");
        }
        Route::CreateChannel => {
            exchange.check_body::<CreateChannel, ChannelView>(content_type, Call::CreateChannel)
        }
        Route::DeleteChannel => match id_ok {
            Some(n) => assert_eq!(calls, [Call::DeleteChannel(n)], "{exchange:?}"),
            None => exchange.refused(StatusCode::BAD_REQUEST),
        },
        Route::WhepOffer => match id_ok {
            Some(channel) => {
                let Some(offer) = exchange.text_body(content_type, "application/sdp") else {
                    return;
                };
                assert_eq!(
                    calls,
                    [Call::WhepOffer(channel, offer.to_string())],
                    "{exchange:?}"
                );
                match channel {
                    FULL_CHANNEL => assert!(full, "{exchange:?}"),
                    UNKNOWN_CHANNEL => assert_eq!(status, StatusCode::NOT_FOUND),
                    _ if !offer.starts_with("v=0") => assert_eq!(status, StatusCode::BAD_REQUEST),
                    _ => exchange.check_answer(),
                }
            }
            None => exchange.refused(StatusCode::BAD_REQUEST),
        },
        Route::WhepPatch => match id_ok {
            Some(n) => {
                let Some(fragment) =
                    exchange.text_body(content_type, "application/trickle-ice-sdpfrag")
                else {
                    return;
                };
                let call = Call::WhepPatch(n, if_match.map(str::to_string), fragment.to_string());
                assert_eq!(calls, [call], "{exchange:?}");
                let expected = match if_match {
                    None | Some("*" | ETAG) => StatusCode::NO_CONTENT,
                    Some(_) => StatusCode::PRECONDITION_FAILED,
                };
                assert_eq!(status, expected, "{exchange:?}");
            }
            None => exchange.refused(StatusCode::BAD_REQUEST),
        },
        Route::Watch => match id_ok {
            Some(_) => {
                assert_eq!(status, StatusCode::OK, "{exchange:?}");
                assert!(calls.is_empty());
                let ct = exchange.header("content-type").unwrap_or_default();
                assert!(ct.starts_with("text/html"), "{exchange:?}");
                assert!(response.starts_with(b"<!doctype html>"));
            }
            None => exchange.refused(StatusCode::BAD_REQUEST),
        },
        Route::ListChannels => {
            assert_eq!(status, StatusCode::OK, "{exchange:?}");
            serde_json::from_slice::<Vec<ChannelView>>(&response).expect("a channel list");
        }
        Route::PutSources => exchange.refused(StatusCode::METHOD_NOT_ALLOWED),
        Route::Unknown => assert!(calls.is_empty() && !status.is_success(), "{exchange:?}"),
        Route::Healthz | Route::PreflightOffer | Route::PreflightResource => unreachable!(),
    }
});

/// The media type of a Content-Type, lowercase, without parameters.
fn essence(content_type: Option<&str>) -> Option<String> {
    let essence = content_type?.split(';').next()?.trim();
    Some(essence.to_ascii_lowercase())
}

/// A path segment as the router hands it to the handler, if it decodes to UTF-8.
fn percent_decoded(segment: &str) -> Option<String> {
    let mut out = Vec::new();
    let mut bytes = segment.bytes();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let hex = [bytes.clone().next(), bytes.clone().nth(1)];
        match hex {
            [Some(h), Some(l)] if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                let digit = |c: u8| (c as char).to_digit(16).unwrap() as u8;
                out.push(digit(h) << 4 | digit(l));
                bytes.nth(1);
            }
            _ => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// One request and what came of it.
struct Exchange<'a> {
    route: Route,
    presented: Presented,
    id: &'a str,
    body: &'a [u8],
    status: StatusCode,
    headers: &'a HeaderMap,
    response: &'a [u8],
    calls: &'a [Call],
}

impl std::fmt::Debug for Exchange<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("route", &self.route)
            .field("presented", &self.presented)
            .field("id", &self.id)
            .field("body", &String::from_utf8_lossy(self.body))
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("response", &String::from_utf8_lossy(self.response))
            .field("calls", &self.calls)
            .finish()
    }
}

impl Exchange<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Refused with `status`, the node never asked.
    fn refused(&self, status: StatusCode) {
        assert_eq!(self.status, status, "{self:?}");
        assert!(self.calls.is_empty(), "{self:?}");
    }

    /// The node was asked exactly `call` and its success answered `status` with a `V`.
    fn reached<V: DeserializeOwned>(&self, call: Call, status: StatusCode) {
        assert_eq!(self.calls, [call], "{self:?}");
        assert_eq!(self.status, status, "{self:?}");
        assert!(
            serde_json::from_slice::<V>(self.response).is_ok(),
            "{self:?}"
        );
    }

    /// The body as the route's handler gets it, or `None` once checked that the HTTP layer
    /// refused it: JSON only (`application/json` or `application/*+json`), within the limit,
    /// what serde decodes.
    fn json_body<T: DeserializeOwned>(&self, content_type: Option<&str>) -> Option<T> {
        let json = essence(content_type).is_some_and(|m| {
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        });
        if !json {
            self.refused(StatusCode::BAD_REQUEST);
            return None;
        }
        if self.body.len() > MAX_BODY {
            self.refused(StatusCode::PAYLOAD_TOO_LARGE);
            return None;
        }
        match serde_json::from_slice::<T>(self.body) {
            Ok(value) => Some(value),
            Err(_) => {
                self.refused(StatusCode::BAD_REQUEST);
                None
            }
        }
    }

    /// A JSON body of type `T`: refused unless [`Exchange::json_body`] passes it, and then
    /// handed to the node as decoded; a success answers with a `V`.
    fn check_body<T: DeserializeOwned, V: DeserializeOwned>(
        &self,
        content_type: Option<&str>,
        call: impl FnOnce(T) -> Call,
    ) {
        let Some(value) = self.json_body::<T>(content_type) else {
            return;
        };
        assert_eq!(self.calls, [call(value)], "{self:?}");
        if self.status.is_success() {
            let view = serde_json::from_slice::<V>(self.response);
            assert!(view.is_ok(), "{self:?}");
        } else {
            assert_eq!(self.status, StatusCode::BAD_REQUEST, "{self:?}");
        }
    }

    /// A WHEP text body (an offer or a trickle fragment), or `None` once checked that it was
    /// refused: another media type is a 415, over the limit a 413, not UTF-8 a 400.
    fn text_body(&self, content_type: Option<&str>, media_type: &str) -> Option<&str> {
        if essence(content_type).as_deref() != Some(media_type) {
            self.refused(StatusCode::UNSUPPORTED_MEDIA_TYPE);
            return None;
        }
        if self.body.len() > MAX_BODY {
            self.refused(StatusCode::PAYLOAD_TOO_LARGE);
            return None;
        }
        match std::str::from_utf8(self.body) {
            Ok(text) => Some(text),
            Err(_) => {
                self.refused(StatusCode::BAD_REQUEST);
                None
            }
        }
    }

    /// An admitted viewer: `201` with the node's answer as `application/sdp`, its resource in
    /// `Location`, its ETag, and the media type `PATCH` takes.
    fn check_answer(&self) {
        assert_eq!(self.status, StatusCode::CREATED, "{self:?}");
        assert_eq!(self.header("content-type"), Some("application/sdp"));
        // The viewer's resource, with its key (32 hex digits) in the query.
        let location = self.header("location").expect("a Location");
        let key = location
            .strip_prefix(&format!("/v1/subscribers/{VIEWER_ID}?key="))
            .unwrap_or_else(|| panic!("Location {location}"));
        assert!(
            key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit()),
            "{location}"
        );
        assert_eq!(self.header("etag"), Some(ETAG));
        assert_eq!(
            self.header("accept-patch"),
            Some("application/trickle-ice-sdpfrag")
        );
        assert_eq!(self.response, b"v=0\r\ns=-\r\n");
    }
}

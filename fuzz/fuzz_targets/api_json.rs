//! The HTTP control API's request handling, in memory: the real router (`signaling::router`)
//! over a stub `Control`, fed a route, headers and any body; a `CreateSource` that gets through
//! goes on to the node's own parsing of `parameter_sets` (`configured_parameter_sets`). It checks:
//! - nothing is a 5xx, and every refusal is a JSON `{"error", "message"}` whose code fits its
//!   status;
//! - a missing or wrong token is a 401, a non-JSON content type or a body serde refuses a 400, a
//!   body over the limit a 413, and none of them reaches the node;
//! - a body serde accepts reaches the node as exactly what serde decodes, and a success answers
//!   with a body of the route's view type;
//! - parameter sets the node accepts give a prelude that is a switch point carrying them.
//!
//! Input: byte 0 picks the route, byte 1 the content type, token and `{id}` variants; the rest
//! is the body (for the fourth `{id}` variant, its first line is the id segment). Seeds are
//! plain text, written by `scripts/fuzz.sh`.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use corecast_engine::{codec, Codec};
use corecast_signaling::api::{
    ChannelView, CreateChannel, CreateSource, CreateSubscriber, IngestAddr, SourceCounters,
    SourceView, StatsView, SubscriberCounters, SubscriberView, SwitchOutcome, SwitchRequest,
    SwitchView,
};
use corecast_signaling::{router, ApiConfig, ApiError, Control, ErrorBody};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use tower::ServiceExt;

const TOKEN: &str = "fuzz-token";
const MAX_BODY: usize = 2048;

/// What the node was asked, if anything.
#[derive(Clone, Debug, PartialEq)]
enum Call {
    CreateSource(CreateSource),
    CreateSubscribers(Vec<CreateSubscriber>),
    Switch(u32, u32),
    Source(u32),
    DeleteSubscriber(u32),
    CreateChannel(CreateChannel),
    DeleteChannel(u32),
    Stats,
}

/// A node that accepts everything it can validate without running: the codec name, the
/// parameter sets (with the node's own parser) and the destination addresses.
#[derive(Default)]
struct Stub {
    calls: Mutex<Vec<Call>>,
}

impl Stub {
    fn record(&self, call: Call) {
        self.calls.lock().unwrap().push(call);
    }
}

fn source_view(id: u32) -> SourceView {
    SourceView {
        id,
        name: "stub".into(),
        codec: "vp8".into(),
        clock_rate: 90_000,
        ingest: IngestAddr {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 40_000,
        },
        latch: true,
        sender: None,
        feedback: None,
        parameter_sets: false,
        payload_type: None,
        rtx_payload_type: None,
        state: "waiting".into(),
        subscribers: 0,
        counters: SourceCounters::default(),
    }
}

impl Control for Stub {
    fn create_source(&self, req: CreateSource) -> Result<SourceView, ApiError> {
        self.record(Call::CreateSource(req.clone()));
        let codec = Codec::from_name(&req.codec)
            .ok_or_else(|| ApiError::bad_request(format!("unknown codec `{}`", req.codec)))?;
        if let Some(text) = &req.parameter_sets {
            let sets = corecast::control::configured_parameter_sets(codec, text)
                .map_err(corecast::control::NodeError::from)?;
            let prelude = sets.prelude().expect("accepted sets make a prelude");
            let info = codec::inspect(codec, prelude).expect("the prelude inspects");
            assert!(info.is_switch_point() && info.parameter_sets);
        }
        Ok(source_view(1))
    }
    fn sources(&self) -> Vec<SourceView> {
        vec![source_view(1)]
    }
    fn source(&self, id: u32) -> Result<SourceView, ApiError> {
        self.record(Call::Source(id));
        Ok(source_view(id))
    }
    fn delete_source(&self, _id: u32) -> Result<(), ApiError> {
        Ok(())
    }
    fn create_subscribers(
        &self,
        reqs: Vec<CreateSubscriber>,
    ) -> Result<Vec<SubscriberView>, ApiError> {
        self.record(Call::CreateSubscribers(reqs.clone()));
        reqs.iter()
            .enumerate()
            .map(|(i, r)| {
                let dest: SocketAddr = r
                    .dest
                    .parse()
                    .map_err(|_| ApiError::bad_request(format!("[{i}].dest is not ip:port")))?;
                Ok(SubscriberView {
                    id: i as u32,
                    ssrc: 1,
                    shard: 0,
                    source: Some(r.source),
                    pending_source: None,
                    dest,
                    media_from: dest,
                    codec: "vp8".into(),
                    payload_type: 96,
                    counters: SubscriberCounters::default(),
                })
            })
            .collect()
    }
    fn subscribers(&self) -> Vec<SubscriberView> {
        Vec::new()
    }
    fn subscriber(&self, _id: u32) -> Result<SubscriberView, ApiError> {
        Err(ApiError::not_found("no such subscriber"))
    }
    fn subscriber_sdp(&self, _id: u32) -> Result<String, ApiError> {
        Err(ApiError::not_found("no such subscriber"))
    }
    fn source_sdp(&self, _id: u32, _dest: std::net::SocketAddr) -> Result<String, ApiError> {
        Err(ApiError::not_found("no such source"))
    }
    fn delete_subscriber(&self, id: u32) -> Result<(), ApiError> {
        self.record(Call::DeleteSubscriber(id));
        Err(ApiError::not_found(format!("no subscriber {id}")))
    }
    fn switch(&self, subscriber: u32, source: u32) -> Result<SwitchView, ApiError> {
        self.record(Call::Switch(subscriber, source));
        Ok(SwitchView {
            outcome: SwitchOutcome::Pending,
            source: None,
            pending_source: Some(source),
        })
    }
    fn create_channel(&self, req: CreateChannel) -> Result<ChannelView, ApiError> {
        self.record(Call::CreateChannel(req.clone()));
        Ok(ChannelView {
            id: 1,
            name: req.name,
            video: req.video,
            audio: req.audio,
            viewers: 0,
        })
    }
    fn channels(&self) -> Vec<ChannelView> {
        Vec::new()
    }
    fn channel(&self, _id: u32) -> Result<ChannelView, ApiError> {
        Err(ApiError::not_found("no such channel"))
    }
    fn delete_channel(&self, id: u32) -> Result<(), ApiError> {
        self.record(Call::DeleteChannel(id));
        Err(ApiError::not_found(format!("no channel {id}")))
    }
    fn stats(&self) -> StatsView {
        self.record(Call::Stats);
        StatsView::default()
    }
    fn metrics(&self) -> String {
        String::new()
    }
}

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
}

// New routes go last, so seeds and kept regressions keep the route they were made for (their
// route bytes pick the same one with 12 routes as with 10).
const ROUTES: [Route; 12] = [
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
];

fuzz_target!(|data: &[u8]| {
    let [route, flags, rest @ ..] = data else {
        return;
    };
    let route = ROUTES[usize::from(*route) % ROUTES.len()];
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
    };
    let content_type = [
        Some("application/json"),
        None,
        Some("text/plain"),
        Some("application/merge-patch+json; charset=utf-8"),
    ][usize::from(flags & 3)];
    let token = [
        Some(format!("Bearer {TOKEN}")),
        None,
        Some("Bearer nope".to_string()),
        Some(format!("bearer  {TOKEN} ")),
    ][usize::from(flags >> 2 & 3)]
    .clone();
    let mut request = Request::builder().method(method).uri(&path);
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    if let Some(token) = &token {
        request = request.header("authorization", token.as_str());
    }
    // A path the fuzzer made that is not a URI never reaches a server.
    let Ok(request) = request.body(Body::from(body.to_vec())) else {
        return;
    };

    let world = world();
    world.stub.calls.lock().unwrap().clear();
    let (status, content_type_out, response) = world.runtime.block_on(async {
        let response = world.app.clone().oneshot(request).await.unwrap();
        let ct = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, ct, bytes)
    });
    let calls = std::mem::take(&mut *world.stub.calls.lock().unwrap());
    let exchange = Exchange {
        route,
        id: &id,
        body,
        status,
        response: &response,
        calls: &calls,
    };

    assert!(!status.is_server_error(), "{exchange:?}");
    if !status.is_success() {
        assert_eq!(content_type_out.as_deref(), Some("application/json"));
        let error: ErrorBody = serde_json::from_slice(&response).expect("an error body is JSON");
        let code = match status.as_u16() {
            400 => "bad_request",
            401 => "unauthorized",
            404 => "not_found",
            405 => "method_not_allowed",
            409 => "conflict",
            413 => "payload_too_large",
            other => panic!("unexpected status {other}: {exchange:?}"),
        };
        assert_eq!(error.error, code);
        assert!(!error.message.is_empty());
    }
    let authorized = matches!(flags >> 2 & 3, 0 | 3);
    if route == Route::Healthz {
        assert_eq!(status, StatusCode::OK);
        return;
    }
    if !authorized {
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{exchange:?}");
        assert!(calls.is_empty());
        return;
    }
    if id.is_empty() || id.contains(['/', '?', '#']) {
        // Not one path segment (or a query or fragment cuts the path short): another route or
        // none, which only the checks above apply to.
        return;
    }
    let id_ok = percent_decoded(&id).and_then(|id| id.parse::<u32>().ok());
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
            Some(sub) => exchange.check_body::<SwitchRequest, SwitchView>(content_type, |r| {
                Call::Switch(sub, r.source)
            }),
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
        Route::PutSources => exchange.refused(StatusCode::METHOD_NOT_ALLOWED),
        Route::Unknown => assert!(calls.is_empty() && !status.is_success(), "{exchange:?}"),
        Route::Healthz => unreachable!(),
    }
});

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
    id: &'a str,
    body: &'a [u8],
    status: StatusCode,
    response: &'a [u8],
    calls: &'a [Call],
}

impl std::fmt::Debug for Exchange<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("route", &self.route)
            .field("id", &self.id)
            .field("body", &String::from_utf8_lossy(self.body))
            .field("status", &self.status)
            .field("response", &String::from_utf8_lossy(self.response))
            .field("calls", &self.calls)
            .finish()
    }
}

impl Exchange<'_> {
    /// Refused with `status`, the node never asked.
    fn refused(&self, status: StatusCode) {
        assert_eq!(self.status, status, "{self:?}");
        assert!(self.calls.is_empty(), "{self:?}");
    }

    /// A JSON body of type `T`: refused unless JSON, within the limit and what serde decodes,
    /// and then handed to the node as decoded; a success answers with a `V`.
    fn check_body<T: DeserializeOwned, V: DeserializeOwned>(
        &self,
        content_type: Option<&str>,
        call: impl FnOnce(T) -> Call,
    ) {
        if !matches!(content_type, Some(ct) if ct.starts_with("application/")) {
            return self.refused(StatusCode::BAD_REQUEST);
        }
        if self.body.len() > MAX_BODY {
            return self.refused(StatusCode::PAYLOAD_TOO_LARGE);
        }
        let decoded = serde_json::from_slice::<T>(self.body);
        match decoded {
            Ok(value) => {
                assert_eq!(self.calls, [call(value)], "{self:?}");
                if self.status.is_success() {
                    let view = serde_json::from_slice::<V>(self.response);
                    assert!(view.is_ok(), "{self:?}");
                } else {
                    assert_eq!(self.status, StatusCode::BAD_REQUEST, "{self:?}");
                }
            }
            Err(_) => self.refused(StatusCode::BAD_REQUEST),
        }
    }
}

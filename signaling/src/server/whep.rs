//! WHEP (the wish-wg egress draft) and what browsers need around it: the offer/answer exchange
//! on `POST /v1/channels/{id}/whep`, the viewer's resource (`PATCH`, `DELETE` on its
//! `Location`), CORS so a page on another origin can play, who may call which route (a viewer
//! token apart from the admin `--token`, and each viewer's own key on its resource), and the
//! viewer page at `/watch/{channel}`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, AUTHORIZATION, CONTENT_TYPE, ETAG,
    IF_MATCH, LOCATION, RETRY_AFTER,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};

use super::request::{bearer_matches, read_body, Id};
use super::viewer_key::{Presented, ViewerKeys};
use super::{call, AppState};
use crate::api::ApiError;

/// The viewer page: a WHEP player with a channel switcher and what `getStats` measures.
const WATCH_PAGE: &str = include_str!("watch.html");
/// What a viewer told to come back (`503`, the node at `--max-subscribers`) waits, in seconds.
const RETRY_AFTER_SECONDS: &str = "5";

/// Who may call what: the admin token (`--token`) everything, the viewer token
/// (`--viewer-token`) the viewer routes, and a viewer's resource only with its key too.
pub(crate) struct Tokens {
    pub admin: Option<Arc<[u8]>>,
    pub viewer: Option<Arc<[u8]>>,
    pub keys: Arc<ViewerKeys>,
}

/// A request let in as a viewer (not with the admin token): the handlers then act on viewers
/// only.
#[derive(Clone, Copy)]
pub(super) struct AsViewer;

/// The routes a viewer uses: its offer, its own resource, its switch, the page.
fn is_viewer_route(method: &Method, path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    matches!(
        (method, segments.as_slice()),
        (&Method::POST, ["v1", "channels", _, "whep"])
            | (&Method::PATCH | &Method::DELETE, ["v1", "subscribers", _])
            | (&Method::POST, ["v1", "subscribers", _, "switch"])
            | (&Method::GET, ["v1", "channels"])
            | (&Method::GET, ["watch", _])
    )
}

/// The `{id}` segment of a request on one viewer's resource (its `PATCH`, `DELETE`, switch):
/// with the viewer token, these need that viewer's key.
fn viewer_resource<'p>(method: &Method, path: &'p str) -> Option<&'p str> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::PATCH | &Method::DELETE, ["v1", "subscribers", id])
        | (&Method::POST, ["v1", "subscribers", id, "switch"]) => Some(id),
        _ => None,
    }
}

/// Why a viewer-token request on viewer `id`'s resource is refused, if it is: its key is
/// missing or is not that viewer's. An id that is not a number is left to the route's own 400.
fn key_refusal(keys: &ViewerKeys, id: &str, query: Option<&str>) -> Option<ApiError> {
    // Decoded as the route's path extractor decodes it: `%31` is viewer 1 and needs 1's key.
    let id: u32 = percent_encoding::percent_decode_str(id)
        .decode_utf8()
        .ok()?
        .parse()
        .ok()?;
    match keys.check(id, query) {
        Presented::Matches => None,
        Presented::Missing => Some(ApiError::forbidden(format!(
            "viewer {id}'s resource needs its key: use the Location its WHEP answer gave \
             (/v1/subscribers/{id}?key=...), or the admin token"
        ))),
        Presented::Wrong => Some(ApiError::forbidden(format!(
            "the key is not viewer {id}'s: only the Location its WHEP answer gave opens it"
        ))),
    }
}

/// `/v1/channels/{id}/whep`, the one path that takes an offer (`POST`): what a preflight's
/// `Accept-Post` is for. Not any path ending in `/whep` (a viewer's resource may be named so).
fn is_offer_path(path: &str) -> bool {
    path.strip_prefix("/v1/channels/")
        .and_then(|rest| rest.strip_suffix("/whep"))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// Outside the routes: preflights are answered (they carry no credentials), then the token
/// rules apply, then every response gets CORS headers so a page on any origin can read it.
pub(super) async fn authorize(
    State(tokens): State<Arc<Tokens>>,
    mut req: Request,
    next: Next,
) -> Response {
    if req.method() == Method::OPTIONS {
        let mut response = StatusCode::NO_CONTENT.into_response();
        if is_offer_path(req.uri().path()) {
            response
                .headers_mut()
                .insert("accept-post", HeaderValue::from_static("application/sdp"));
        }
        return with_cors(response);
    }
    let path = req.uri().path();
    let presented = req.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
    let admin = match (&tokens.admin, presented) {
        (None, _) => true,
        (Some(token), Some(p)) => bearer_matches(p, token),
        (Some(_), None) => false,
    };
    let refusal = if admin || path == "/healthz" {
        None
    } else if is_viewer_route(req.method(), path) {
        let viewer = match (&tokens.viewer, presented) {
            (None, _) => true,
            (Some(token), Some(p)) => bearer_matches(p, token),
            (Some(_), None) => false,
        };
        if viewer {
            let refused = viewer_resource(req.method(), path)
                .and_then(|id| key_refusal(&tokens.keys, id, req.uri().query()));
            if refused.is_none() {
                req.extensions_mut().insert(AsViewer);
            }
            refused
        } else if presented.is_none() {
            Some(ApiError::unauthorized(
                "missing Authorization: Bearer <token> (the viewer token)",
            ))
        } else {
            Some(ApiError::unauthorized("invalid bearer token"))
        }
    } else if presented.is_none() {
        Some(ApiError::unauthorized(
            "missing Authorization: Bearer <token>",
        ))
    } else {
        Some(ApiError::unauthorized("invalid bearer token"))
    };
    let response = match refusal {
        Some(e) => e.into_response(),
        None => next.run(req).await,
    };
    with_cors(response)
}

fn with_cors(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PATCH, DELETE, OPTIONS"),
    );
    h.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type, If-Match"),
    );
    h.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, ETag, Link, Accept-Patch, Retry-After"),
    );
    h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    response
}

/// The essence of the request's Content-Type, lowercase.
fn content_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    Some(v.split(';').next()?.trim().to_ascii_lowercase())
}

/// `POST /v1/channels/{id}/whep`: the offer in, the answer out.
pub(super) async fn offer(
    State(state): State<AppState>,
    Id(channel): Id,
    req: Request,
) -> Response {
    let kind = content_type(req.headers());
    let body = read_body(req, state.max_body_bytes).await;
    if kind.as_deref() != Some("application/sdp") {
        return ApiError::unsupported_media_type(format!(
            "Content-Type {} is not an SDP offer: expected application/sdp",
            kind.as_deref().unwrap_or("(none)")
        ))
        .into_response();
    }
    let text = match body.map(String::from_utf8) {
        Ok(Ok(text)) => text,
        Ok(Err(_)) => return ApiError::bad_request("the SDP offer is not UTF-8").into_response(),
        Err(e) => return e.into_response(),
    };
    match call(&state, move |c| c.whep_offer(channel, text)).await {
        Ok(answer) => {
            let location = state.viewer_keys.location(answer.subscriber);
            let mut response = (StatusCode::CREATED, answer.sdp).into_response();
            let h = response.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/sdp"));
            if let Ok(v) = HeaderValue::from_str(&location) {
                h.insert(LOCATION, v);
            }
            if let Ok(v) = HeaderValue::from_str(&answer.etag) {
                h.insert(ETAG, v);
            }
            h.insert(
                "accept-patch",
                HeaderValue::from_static("application/trickle-ice-sdpfrag"),
            );
            response
        }
        Err(e) => {
            let busy = e.status == 503 || e.status == 429;
            let mut response = if e.status == 429 {
                // WHEP's word for "the node is full" is 503 with Retry-After.
                ApiError::unavailable(e.message).into_response()
            } else {
                e.into_response()
            };
            if busy {
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
            }
            response
        }
    }
}

/// `PATCH` on a viewer's resource: a trickle ICE fragment (RFC 8840), matched by ETag.
pub(super) async fn patch(State(state): State<AppState>, Id(id): Id, req: Request) -> Response {
    let kind = content_type(req.headers());
    let if_match = req
        .headers()
        .get(IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = read_body(req, state.max_body_bytes).await;
    if kind.as_deref() != Some("application/trickle-ice-sdpfrag") {
        return ApiError::unsupported_media_type(format!(
            "Content-Type {} is not a trickle ICE fragment: expected \
             application/trickle-ice-sdpfrag",
            kind.as_deref().unwrap_or("(none)")
        ))
        .into_response();
    }
    let text = match body.map(String::from_utf8) {
        Ok(Ok(text)) => text,
        Ok(Err(_)) => return ApiError::bad_request("the fragment is not UTF-8").into_response(),
        Err(e) => return e.into_response(),
    };
    match call(&state, move |c| c.whep_patch(id, if_match, text)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /watch/{channel}`: the viewer page (the channel is read from the path by its script).
pub(super) async fn watch(Id(_channel): Id) -> Html<&'static str> {
    Html(WATCH_PAGE)
}

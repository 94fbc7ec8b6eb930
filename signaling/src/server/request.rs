//! What the server takes from a request (a JSON body, an `{id}`, a bearer token) and how each
//! refusal becomes an [`ApiError`] in the API's JSON shape instead of axum's plain-text rejection.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::HttpBody;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::AppState;
use crate::api::ApiError;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self.body())).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// A JSON request body whose every rejection is an [`ApiError`] carrying serde's own message
/// (with the path to the bad field, e.g. `[3].dest: invalid type: ...`).
pub(super) struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if let Err(e) = check_json_content_type(req.headers()) {
            // Discarded, so the connection can carry the client's next request.
            let _ = read_body(req, state.max_body_bytes).await;
            return Err(e);
        }
        let bytes = read_body(req, state.max_body_bytes).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Set once a request's body has been read to its end. hyper closes a keep-alive connection
/// whose last request body was left unread (unless the rest of it had already arrived) and says
/// nothing; [`close_unless_body_read`] makes that explicit.
#[derive(Clone)]
struct BodyRead(Arc<AtomicBool>);

/// Outermost layer: a response to a request whose body was not read to its end carries
/// `Connection: close`, so the client opens a new connection for its next request instead of
/// writing into one the server is closing (and getting a broken pipe).
pub(super) async fn close_unless_body_read(mut req: Request, next: Next) -> Response {
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let read = Arc::new(AtomicBool::new(false));
    req.extensions_mut().insert(BodyRead(Arc::clone(&read)));
    let mut response = next.run(req).await;
    if !read.load(Ordering::Acquire) {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Reads and throws away the body of a request refused for its route or method, so the
/// connection stays usable (one past the drain limit is closed, and says so).
pub(super) async fn discard_body(req: Request, limit: usize) {
    let _ = read_body(req, limit).await;
}

/// How much of an oversized body is read and thrown away before answering 413. A blocking client
/// (ureq, most scripts) writes its whole body before reading the answer; if the server answered
/// and closed at the limit, that client would see a broken pipe instead of the 413.
const DRAIN_PAST_LIMIT: usize = 16 << 20;

/// The body, up to `limit` bytes. Read by hand rather than through axum's `DefaultBodyLimit`,
/// which stops reading at the limit (see [`DRAIN_PAST_LIMIT`]).
pub(super) async fn read_body(req: Request, limit: usize) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::payload_too_large(format!(
            "the request body exceeds the limit of {limit} bytes"
        ))
    };
    let drain_limit = limit.saturating_add(DRAIN_PAST_LIMIT);
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > drain_limit as u64) {
        return Err(too_large());
    }
    let read = req.extensions().get::<BodyRead>().cloned();
    let mut body = req.into_body();
    let capacity = declared.map_or(0, |n| n.min(limit as u64) as usize);
    let mut buf = Vec::with_capacity(capacity);
    let mut seen = 0usize;
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame
            .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= limit {
            buf.extend_from_slice(&data);
        } else if seen > drain_limit {
            return Err(too_large());
        } else {
            buf = Vec::new();
        }
    }
    if let Some(BodyRead(read)) = read {
        read.store(true, Ordering::Release);
    }
    if seen > limit {
        return Err(too_large());
    }
    Ok(buf)
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the request body is empty: expected JSON",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        if e.inner().is_data() {
            ApiError::bad_request(e.to_string())
        } else {
            ApiError::bad_request(format!("malformed JSON: {}", e.inner()))
        }
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    Ok(value)
}

fn check_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Err(ApiError::bad_request(
            "missing Content-Type: expected application/json",
        ));
    };
    let essence = value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    match essence {
        Some(m)
            if m == "application/json"
                || (m.starts_with("application/") && m.ends_with("+json")) =>
        {
            Ok(())
        }
        _ => Err(ApiError::bad_request(format!(
            "Content-Type {} is not JSON: expected application/json",
            String::from_utf8_lossy(value.as_bytes())
        ))),
    }
}

/// The `{id}` path segment as a `u32`, rejected with a message naming the bad value.
pub(super) struct Id(pub u32);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        raw.parse().map(Id).map_err(|_| {
            ApiError::bad_request(format!(
                "invalid id `{raw}` in the path: expected an integer from 0 to {}",
                u32::MAX
            ))
        })
    }
}

/// Constant time in the token's bytes; only a length mismatch returns early, which reveals the
/// length and nothing else.
pub(super) fn bearer_matches(header: &[u8], token: &[u8]) -> bool {
    const SCHEME: &[u8] = b"bearer ";
    if header.len() < SCHEME.len() || !header[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return false;
    }
    let presented = header[SCHEME.len()..].trim_ascii();
    !presented.is_empty() && bool::from(presented.ct_eq(token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CreateSubscriber, SwitchRequest};

    #[test]
    fn bearer_scheme_is_case_insensitive_and_token_exact() {
        assert!(bearer_matches(b"Bearer s3cret", b"s3cret"));
        assert!(bearer_matches(b"bearer  s3cret ", b"s3cret"));
        assert!(!bearer_matches(b"Bearer s3cre", b"s3cret"));
        assert!(!bearer_matches(b"Bearer s3cretx", b"s3cret"));
        assert!(!bearer_matches(b"Basic s3cret", b"s3cret"));
        assert!(!bearer_matches(b"Bearer ", b""));
        assert!(!bearer_matches(b"s3cret", b"s3cret"));
    }

    #[test]
    fn json_errors_say_what_was_wrong() {
        let e = parse_json::<CreateSubscriber>(br#"{"source":1}"#).unwrap_err();
        assert_eq!(e.message, "missing field `dest` at line 1 column 12");
        let e = parse_json::<Vec<CreateSubscriber>>(
            br#"[{"source":1,"dest":"a"},{"source":"x","dest":"b"}]"#,
        )
        .unwrap_err();
        assert!(
            e.message.starts_with("[1].source: invalid type: string"),
            "{}",
            e.message
        );
        let e = parse_json::<SwitchRequest>(br#"{"source":1} x"#).unwrap_err();
        assert!(
            e.message.starts_with("malformed JSON: trailing characters"),
            "{}",
            e.message
        );
        let e = parse_json::<SwitchRequest>(br#"{"source":1,"chanel":2}"#).unwrap_err();
        assert!(
            e.message.contains("unknown field `chanel`"),
            "{}",
            e.message
        );
        let e = parse_json::<SwitchRequest>(br#"{"source":1} x"#).unwrap_err();
        assert!(
            e.message.starts_with("malformed JSON: trailing characters"),
            "{}",
            e.message
        );
        let e = parse_json::<SwitchRequest>(b" ").unwrap_err();
        assert!(e.message.contains("empty"), "{}", e.message);
    }

    #[test]
    fn content_type_must_be_json() {
        let mut h = HeaderMap::new();
        assert!(check_json_content_type(&h).is_err());
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert!(check_json_content_type(&h).is_ok());
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/merge-patch+json"),
        );
        assert!(check_json_content_type(&h).is_ok());
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let e = check_json_content_type(&h).unwrap_err();
        assert_eq!(
            e.message,
            "Content-Type text/plain is not JSON: expected application/json"
        );
    }
}

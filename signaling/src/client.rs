//! A blocking client for the control API, for the `corecast` CLI and for tests.

use std::net::SocketAddr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use ureq::http::{self, Method, Response};
use ureq::Body;

use crate::api::{
    ChannelView, CreateChannel, CreateSource, CreateSubscriber, ErrorBody, SourceView, StatsView,
    SubscriberView, SwitchRequest, SwitchView,
};

/// Whole-request limit (connect, send, answer); generous for a 10 000-subscriber batch on
/// loopback, short enough that a hung node does not hang a script.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Cap on a success body: a list of 100 000 subscribers is about 30 MB.
const MAX_RESPONSE_BYTES: u64 = 256 << 20;
/// Cap on an error body, which is one short message.
const MAX_ERROR_BYTES: u64 = 64 << 10;

/// Why a call failed.
#[derive(Debug)]
pub enum ClientError {
    /// No usable answer: connection refused, timeout, broken HTTP, a URL that does not parse.
    Transport { url: String, source: ureq::Error },
    /// The server answered with an error status; `code` and `message` come from its JSON body
    /// (`http_<status>` and the raw body when it had none).
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// A success answer whose body is not what the API promises.
    Decode { url: String, message: String },
    /// The CLI could not write its output.
    Output(std::io::Error),
}

impl ClientError {
    /// The HTTP status, for API errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// A stable code: the API's own for API errors, else `transport`, `bad_response` or
    /// `output`.
    pub fn code(&self) -> &str {
        match self {
            ClientError::Transport { .. } => "transport",
            ClientError::Api { code, .. } => code,
            ClientError::Decode { .. } => "bad_response",
            ClientError::Output(_) => "output",
        }
    }
}

/// `<code>: <message>`, so a CLI prints `error: {err}`.
impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Transport { url, source } => {
                write!(f, "transport: cannot reach {url}: {source}")
            }
            ClientError::Api { code, message, .. } => write!(f, "{code}: {message}"),
            ClientError::Decode { url, message } => {
                write!(f, "bad_response: unexpected answer from {url}: {message}")
            }
            ClientError::Output(e) => write!(f, "output: {e}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Transport { source, .. } => Some(source),
            ClientError::Output(e) => Some(e),
            _ => None,
        }
    }
}

/// A blocking control API client. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl Client {
    /// `server` is `host:port` (plain HTTP assumed) or a URL with an `http://` scheme; a trailing
    /// slash is ignored. `https://` is not supported (no TLS stack is built in).
    pub fn new(server: &str, token: Option<String>) -> Client {
        Client::with_timeout(server, token, DEFAULT_TIMEOUT)
    }

    pub fn with_timeout(server: &str, token: Option<String>, timeout: Duration) -> Client {
        let server = server.trim().trim_end_matches('/');
        let base = if server.contains("://") {
            server.to_string()
        } else {
            format!("http://{server}")
        };
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            // Error statuses carry the API's JSON body, which this client reads itself.
            .http_status_as_error(false)
            // The control API is reached directly; an HTTP(S)_PROXY set for other traffic would
            // otherwise capture requests to the node.
            .proxy(None)
            .build()
            .new_agent();
        Client { base, token, agent }
    }

    /// The base URL requests go to, e.g. `http://127.0.0.1:8080`.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn create_source(&self, req: &CreateSource) -> Result<SourceView, ClientError> {
        self.json(Method::POST, "/v1/sources", Some(req))
    }

    pub fn sources(&self) -> Result<Vec<SourceView>, ClientError> {
        self.json(Method::GET, "/v1/sources", None::<&()>)
    }

    pub fn source(&self, id: u32) -> Result<SourceView, ClientError> {
        self.json(Method::GET, &format!("/v1/sources/{id}"), None::<&()>)
    }

    pub fn delete_source(&self, id: u32) -> Result<(), ClientError> {
        self.empty(Method::DELETE, &format!("/v1/sources/{id}"))
    }

    pub fn create_subscriber(&self, req: &CreateSubscriber) -> Result<SubscriberView, ClientError> {
        self.json(Method::POST, "/v1/subscribers", Some(req))
    }

    /// All or nothing (see [`Control::create_subscribers`](crate::Control::create_subscribers)).
    pub fn create_subscribers(
        &self,
        reqs: &[CreateSubscriber],
    ) -> Result<Vec<SubscriberView>, ClientError> {
        self.json(Method::POST, "/v1/subscribers:batch", Some(&reqs))
    }

    pub fn subscribers(&self) -> Result<Vec<SubscriberView>, ClientError> {
        self.json(Method::GET, "/v1/subscribers", None::<&()>)
    }

    pub fn subscriber(&self, id: u32) -> Result<SubscriberView, ClientError> {
        self.json(Method::GET, &format!("/v1/subscribers/{id}"), None::<&()>)
    }

    /// The subscriber's SDP, as text (see [`Control::subscriber_sdp`](crate::Control::subscriber_sdp)).
    pub fn subscriber_sdp(&self, id: u32) -> Result<String, ClientError> {
        self.text(&format!("/v1/subscribers/{id}/sdp"))
    }

    /// The SDP a subscriber of source `id` at `dest` would have (see
    /// [`Control::source_sdp`](crate::Control::source_sdp)).
    pub fn source_sdp(&self, id: u32, dest: SocketAddr) -> Result<String, ClientError> {
        // An IPv6 destination's brackets are not allowed unencoded in a query (RFC 3986).
        let dest = dest.to_string().replace('[', "%5B").replace(']', "%5D");
        self.text(&format!("/v1/sources/{id}/sdp?dest={dest}"))
    }

    fn text(&self, path: &str) -> Result<String, ClientError> {
        let (url, mut response) = self.send(Method::GET, path, None::<&()>)?;
        response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_string()
            .map_err(|source| ClientError::Transport { url, source })
    }

    pub fn delete_subscriber(&self, id: u32) -> Result<(), ClientError> {
        self.empty(Method::DELETE, &format!("/v1/subscribers/{id}"))
    }

    /// Takes effect at the new source's next switch point; the answer's `outcome` says whether a
    /// switch is pending or the subscriber already receives `source`.
    pub fn switch(&self, subscriber: u32, source: u32) -> Result<SwitchView, ClientError> {
        self.json(
            Method::POST,
            &format!("/v1/subscribers/{subscriber}/switch"),
            Some(&SwitchRequest {
                source: Some(source),
                channel: None,
            }),
        )
    }

    pub fn create_channel(&self, req: &CreateChannel) -> Result<ChannelView, ClientError> {
        self.json(Method::POST, "/v1/channels", Some(req))
    }

    pub fn channels(&self) -> Result<Vec<ChannelView>, ClientError> {
        self.json(Method::GET, "/v1/channels", None::<&()>)
    }

    pub fn channel(&self, id: u32) -> Result<ChannelView, ClientError> {
        self.json(Method::GET, &format!("/v1/channels/{id}"), None::<&()>)
    }

    pub fn delete_channel(&self, id: u32) -> Result<(), ClientError> {
        self.empty(Method::DELETE, &format!("/v1/channels/{id}"))
    }

    pub fn stats(&self) -> Result<StatsView, ClientError> {
        self.json(Method::GET, "/v1/stats", None::<&()>)
    }

    /// `Ok` when `GET /healthz` answers 200.
    pub fn health(&self) -> Result<(), ClientError> {
        self.empty(Method::GET, "/healthz")
    }

    fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let (url, mut response) = self.send(method, path, body)?;
        response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_json()
            .map_err(|e| match e {
                ureq::Error::Json(e) => ClientError::Decode {
                    url,
                    message: e.to_string(),
                },
                source => ClientError::Transport { url, source },
            })
    }

    fn empty(&self, method: Method, path: &str) -> Result<(), ClientError> {
        self.send(method, path, None::<&()>).map(drop)
    }

    /// Sends the request; any status outside 2xx becomes [`ClientError::Api`].
    fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<(String, Response<Body>), ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Accept", "application/json");
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let bytes = match body {
            Some(body) => {
                request = request.header("Content-Type", "application/json");
                serde_json::to_vec(body).expect("API request types serialise infallibly")
            }
            None => Vec::new(),
        };
        let request = request.body(bytes).map_err(|e| ClientError::Transport {
            url: url.clone(),
            source: ureq::Error::Http(e),
        })?;
        let mut response = self
            .agent
            .run(request)
            .map_err(|source| ClientError::Transport {
                url: url.clone(),
                source,
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok((url, response));
        }
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_ERROR_BYTES)
            .read_to_string()
            .unwrap_or_default();
        Err(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => ClientError::Api {
                status: status.as_u16(),
                code: body.error,
                message: body.message,
            },
            Err(_) => ClientError::Api {
                status: status.as_u16(),
                code: format!("http_{}", status.as_u16()),
                message: if text.trim().is_empty() {
                    status
                        .canonical_reason()
                        .unwrap_or("no message")
                        .to_string()
                } else {
                    text.trim().to_string()
                },
            },
        })
    }
}

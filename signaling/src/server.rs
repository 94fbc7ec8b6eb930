//! The HTTP control API: an axum router over a [`Control`], and [`ApiServer`], which serves it on
//! a thread of its own so the node's threads never run an async runtime.
//!
//! Every error, including axum's own rejections, unknown routes and wrong methods, is sent as
//! `{"error": code, "message": message}` with `Content-Type: application/json`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::extract::Request;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use tokio::sync::oneshot;

use crate::api::{
    ApiError, ChannelView, Control, CreateChannel, CreateSource, CreateSubscriber, SourceView,
    StatsView, SubscriberView, SwitchRequest, SwitchView,
};

mod request;
mod viewer_key;
mod whep;

use request::{close_unless_body_read, discard_body, Id, JsonBody};
use viewer_key::ViewerKeys;
use whep::{AsViewer, Tokens};

/// How long [`ApiServer::shutdown`] lets in-flight requests finish before abandoning them.
const DRAIN: Duration = Duration::from_millis(800);
/// How long the runtime waits at shutdown for `Control` calls still running on the blocking pool;
/// they are left to finish on their own after that.
const BLOCKING_GRACE: Duration = Duration::from_millis(100);
/// `Control` calls are serialised by the node anyway; this only caps threads under a burst.
const MAX_BLOCKING_THREADS: usize = 16;

/// How the HTTP API is served.
#[derive(Clone)]
pub struct ApiConfig {
    /// When set, every request except `GET /healthz` and preflights needs
    /// `Authorization: Bearer <token>`, or the viewer token on the viewer routes.
    pub token: Option<String>,
    /// When set, the viewer routes (a WHEP offer, a viewer's own resource and switch, the
    /// channel list and the viewer page) need it or the admin token; unset, they are open.
    pub viewer_token: Option<String>,
    /// Largest accepted request body; larger ones get `413 payload_too_large`.
    pub max_body_bytes: usize,
}

impl ApiConfig {
    /// 1 MiB: a batch of 10 000 subscribers with IPv4 destinations is 380-450 KB of JSON.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;
}

impl Default for ApiConfig {
    fn default() -> ApiConfig {
        ApiConfig {
            token: None,
            viewer_token: None,
            max_body_bytes: ApiConfig::DEFAULT_MAX_BODY_BYTES,
        }
    }
}

// By hand so the token never ends up in a log line.
impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field(
                "viewer_token",
                &self.viewer_token.as_ref().map(|_| "<redacted>"),
            )
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

#[derive(Clone)]
struct AppState {
    control: Arc<dyn Control>,
    max_body_bytes: usize,
    /// Makes the key in each viewer's `Location`; [`Tokens`] checks it with the same one.
    viewer_keys: Arc<ViewerKeys>,
}

/// The API's routes over `control`. An empty token locks every route but `/healthz` (no
/// presented token matches it); [`ApiServer::spawn`] refuses one outright.
pub fn router(control: Arc<dyn Control>, config: ApiConfig) -> Router {
    let viewer_keys = Arc::new(ViewerKeys::new());
    let state = AppState {
        control,
        max_body_bytes: config.max_body_bytes,
        viewer_keys: Arc::clone(&viewer_keys),
    };
    let router = Router::new()
        .route("/v1/sources", post(create_source).get(list_sources))
        .route("/v1/sources/{id}", get(get_source).delete(delete_source))
        .route("/v1/sources/{id}/sdp", get(source_sdp))
        .route(
            "/v1/subscribers",
            post(create_subscriber).get(list_subscribers),
        )
        // matchit 0.8 treats `:` as a literal, so this is a static segment distinct from
        // `/v1/subscribers` and `/v1/subscribers/{id}`.
        .route("/v1/subscribers:batch", post(create_subscribers))
        .route(
            "/v1/subscribers/{id}",
            get(get_subscriber)
                .delete(delete_subscriber)
                .patch(whep::patch),
        )
        .route("/v1/subscribers/{id}/switch", post(switch))
        .route("/v1/subscribers/{id}/sdp", get(subscriber_sdp))
        .route("/v1/channels", post(create_channel).get(list_channels))
        .route("/v1/channels/{id}", get(get_channel).delete(delete_channel))
        .route("/v1/channels/{id}/whep", post(whep::offer))
        .route("/watch/{id}", get(whep::watch))
        .route("/v1/stats", get(stats))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        // Applies only to routes added before it, so it stays after the last `route`.
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .with_state(state);
    let tokens = Tokens {
        admin: config.token.map(|t| Arc::<[u8]>::from(t.into_bytes())),
        viewer: config
            .viewer_token
            .map(|t| Arc::<[u8]>::from(t.into_bytes())),
        keys: viewer_keys,
    };
    // Outside the routes, so a request without the token is refused before its body is read
    // and unknown `/v1` paths do not reveal which routes exist.
    let router = router.layer(middleware::from_fn_with_state(
        Arc::new(tokens),
        whep::authorize,
    ));
    // Outermost, so that it sees every refusal, the token's included.
    router.layer(middleware::from_fn(close_unless_body_read))
}

/// The HTTP API served on a thread of its own ("corecast-http") with a current-thread tokio
/// runtime; `Control` calls run on the runtime's blocking pool.
pub struct ApiServer {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ApiServer {
    /// Binds `addr` before returning, so a port in use is reported here, then serves on a new
    /// thread. The error is the bare cause: the caller, which chose `addr`, names it.
    pub fn spawn(
        addr: SocketAddr,
        control: Arc<dyn Control>,
        config: ApiConfig,
    ) -> io::Result<ApiServer> {
        if config.token.as_deref() == Some("") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the HTTP API token is empty",
            ));
        }
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .thread_name("corecast-http-blocking")
            .max_blocking_threads(MAX_BLOCKING_THREADS)
            .build()?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let app = router(control, config);
        let (stop_tx, stop_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("corecast-http".into())
            .spawn(move || serve(runtime, listener, app, stop_rx))?;
        Ok(ApiServer {
            local_addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The bound address (with the actual port when spawned on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets in-flight requests finish for up to 0.8 s, and joins the thread:
    /// returns within about a second. Dropping the server does the same.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic there has already been reported by the panic hook; nothing to add.
            let _ = thread.join();
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

fn serve(
    runtime: tokio::runtime::Runtime,
    listener: tokio::net::TcpListener,
    app: Router,
    stop: oneshot::Receiver<()>,
) {
    runtime.block_on(async move {
        let (stopping_tx, stopping_rx) = oneshot::channel::<()>();
        // Exchanges are request/response; Nagle would hold a response's last segment back until
        // the client's delayed ACK.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            // Err (the sender gone without a word) means stop just the same.
            let _ = stop.await;
            let _ = stopping_tx.send(());
        });
        // Graceful shutdown waits for every open connection; a client that keeps one busy must
        // not hold the node's shutdown hostage, so the wait is bounded.
        tokio::select! {
            _ = std::future::IntoFuture::into_future(server) => {}
            _ = async {
                let _ = stopping_rx.await;
                tokio::time::sleep(DRAIN).await;
            } => {}
        }
    });
    runtime.shutdown_timeout(BLOCKING_GRACE);
}

/// Runs a `Control` call on the blocking pool: the node answers through a channel round trip
/// and must not stall the thread that accepts and parses requests.
async fn call<T, F>(state: &AppState, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Control) -> Result<T, ApiError> + Send + 'static,
{
    let control = Arc::clone(&state.control);
    tokio::task::spawn_blocking(move || f(control.as_ref()))
        .await
        .unwrap_or_else(|e| {
            Err(ApiError::internal(if e.is_panic() {
                "the node panicked while handling the request"
            } else {
                "the request was cancelled"
            }))
        })
}

type Created<T> = Result<(StatusCode, Json<T>), ApiError>;

async fn create_source(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<CreateSource>,
) -> Created<SourceView> {
    let view = call(&state, move |c| c.create_source(req)).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

async fn list_sources(State(state): State<AppState>) -> Result<Json<Vec<SourceView>>, ApiError> {
    call(&state, |c| Ok(c.sources())).await.map(Json)
}

async fn get_source(
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<Json<SourceView>, ApiError> {
    call(&state, move |c| c.source(id)).await.map(Json)
}

async fn delete_source(State(state): State<AppState>, Id(id): Id) -> Result<StatusCode, ApiError> {
    call(&state, move |c| c.delete_source(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_subscriber(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<CreateSubscriber>,
) -> Created<SubscriberView> {
    let views = call(&state, move |c| c.create_subscribers(vec![req])).await?;
    let view = views
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("the node created no subscriber"))?;
    Ok((StatusCode::CREATED, Json(view)))
}

async fn create_subscribers(
    State(state): State<AppState>,
    JsonBody(reqs): JsonBody<Vec<CreateSubscriber>>,
) -> Created<Vec<SubscriberView>> {
    let views = call(&state, move |c| c.create_subscribers(reqs)).await?;
    Ok((StatusCode::CREATED, Json(views)))
}

async fn list_subscribers(
    State(state): State<AppState>,
) -> Result<Json<Vec<SubscriberView>>, ApiError> {
    call(&state, |c| Ok(c.subscribers())).await.map(Json)
}

async fn get_subscriber(
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<Json<SubscriberView>, ApiError> {
    call(&state, move |c| c.subscriber(id)).await.map(Json)
}

async fn subscriber_sdp(
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let text = call(&state, move |c| c.subscriber_sdp(id)).await?;
    Ok(sdp_response(text))
}

/// `application/sdp` (RFC 4566 §8.1), so `curl -o sub.sdp` or a browser saves a file players
/// open as is.
fn sdp_response(text: String) -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/sdp")],
        text,
    )
}

/// `?dest=IP:PORT` of `GET /v1/sources/{id}/sdp`.
#[derive(serde::Deserialize)]
struct SdpQuery {
    dest: Option<String>,
}

/// The SDP for a subscriber of the source that does not exist yet (see
/// [`Control::source_sdp`]), so a player can be started before it is added.
async fn source_sdp(
    State(state): State<AppState>,
    Id(id): Id,
    query: Result<axum::extract::Query<SdpQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let query = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let Some(raw) = query.dest.as_deref() else {
        return Err(ApiError::bad_request(
            "`dest` is required: the IP:PORT the player listens on, e.g. \
             `?dest=127.0.0.1:5004` (IPv6: `?dest=[::1]:5004`)",
        ));
    };
    let dest: SocketAddr = raw.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "`dest` `{raw}` is not IP:PORT (e.g. `127.0.0.1:5004` or `[::1]:5004`)"
        ))
    })?;
    let text = call(&state, move |c| c.source_sdp(id, dest)).await?;
    Ok(sdp_response(text))
}

async fn delete_subscriber(
    State(state): State<AppState>,
    Id(id): Id,
    viewer: Option<axum::Extension<AsViewer>>,
) -> Result<StatusCode, ApiError> {
    if viewer.is_some() {
        call(&state, move |c| c.delete_viewer(id)).await?;
    } else {
        call(&state, move |c| c.delete_subscriber(id)).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn switch(
    State(state): State<AppState>,
    Id(id): Id,
    viewer: Option<axum::Extension<AsViewer>>,
    JsonBody(req): JsonBody<SwitchRequest>,
) -> Result<(StatusCode, Json<SwitchView>), ApiError> {
    let view =
        match (req.source, req.channel) {
            (Some(_), None) if viewer.is_some() => return Err(ApiError::forbidden(
                "the viewer token switches viewers by `channel`; `source` needs the admin token",
            )),
            (Some(source), None) => call(&state, move |c| c.switch(id, source)).await?,
            (None, Some(channel)) => call(&state, move |c| c.switch_channel(id, channel)).await?,
            _ => {
                return Err(ApiError::bad_request(
                    "give exactly one of `source` (a source id) and `channel` (a channel id)",
                ))
            }
        };
    // 202 while the switch waits for the source's switch point; 200 when nothing is to wait for.
    let status = match view.outcome {
        crate::api::SwitchOutcome::Pending => StatusCode::ACCEPTED,
        _ => StatusCode::OK,
    };
    Ok((status, Json(view)))
}

async fn create_channel(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<CreateChannel>,
) -> Created<ChannelView> {
    let view = call(&state, move |c| c.create_channel(req)).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

async fn list_channels(State(state): State<AppState>) -> Result<Json<Vec<ChannelView>>, ApiError> {
    call(&state, |c| Ok(c.channels())).await.map(Json)
}

async fn get_channel(
    State(state): State<AppState>,
    Id(id): Id,
) -> Result<Json<ChannelView>, ApiError> {
    call(&state, move |c| c.channel(id)).await.map(Json)
}

async fn delete_channel(State(state): State<AppState>, Id(id): Id) -> Result<StatusCode, ApiError> {
    call(&state, move |c| c.delete_channel(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn stats(State(state): State<AppState>) -> Result<Json<StatsView>, ApiError> {
    call(&state, |c| Ok(c.stats())).await.map(Json)
}

/// Prometheus scrapes this; with a token set it needs the token too (Prometheus sends one with
/// `authorization: {credentials: ...}`).
async fn metrics(
    State(state): State<AppState>,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let text = call(&state, |c| Ok(c.metrics())).await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    ))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn not_found(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    req: Request,
) -> ApiError {
    discard_body(req, state.max_body_bytes).await;
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    req: Request,
) -> ApiError {
    discard_body(req, state.max_body_bytes).await;
    ApiError::method_not_allowed(format!("{method} is not allowed on {}", uri.path()))
}

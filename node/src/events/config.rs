//! Handler settings, parsed from flag values like
//! `http://host/hook;types=source.*;secret=s3cret;batch=50` and `events.jsonl;types=switch.*`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::types::{EventMask, ParseError};

/// Events per POST, at most.
pub const DEFAULT_BATCH_MAX: usize = 100;
/// How long a webhook worker waits for more events after taking the first of a batch.
pub const DEFAULT_BATCH_WAIT: Duration = Duration::from_millis(200);
/// Retries of a failed POST before its events are given up.
pub const DEFAULT_RETRIES: u32 = 5;
/// The first retry's delay; each next one doubles it (100, 200, 400, 800, 1600 ms).
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(100);
/// Events a handler's queue holds; when full, the oldest is dropped for the newest.
pub const DEFAULT_QUEUE: usize = 10_000;
/// Bytes of serialized events a handler's queue holds; past that, the oldest are dropped. A
/// `stats` event of thousands of subscribers is hundreds of KB, so the count alone is no bound.
pub const DEFAULT_QUEUE_BYTES: usize = 8 << 20;
/// The most one POST may take, connect to last byte of the reply.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

// Bounds that keep a typo from allocating gigabytes (the queue is allocated up front) or
// retrying for days (the backoff doubles).
const MAX_QUEUE: usize = 1_000_000;
const MIN_QUEUE_BYTES: usize = 1024;
const MAX_QUEUE_BYTES: usize = 1 << 30;
const MAX_BATCH: usize = 10_000;
const MAX_RETRIES: u32 = 20;

/// One event handler, as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandlerConfig {
    /// POST batches of envelopes to a URL.
    Webhook(WebhookConfig),
    /// Write one envelope per line to a file or stdout.
    JsonLines(JsonLinesConfig),
}

impl HandlerConfig {
    /// The queue's bounds: events, and bytes of serialized events.
    pub fn queue_bounds(&self) -> (usize, usize) {
        match self {
            HandlerConfig::Webhook(w) => (w.queue, w.queue_bytes),
            HandlerConfig::JsonLines(j) => (j.queue, j.queue_bytes),
        }
    }

    /// The handler's name in stats and logs: `webhook:<url>` (credentials in the URL hidden) or
    /// `jsonl:<path>` (`jsonl:-` for stdout).
    pub fn name(&self) -> String {
        match self {
            HandlerConfig::Webhook(w) => format!("webhook:{}", redact_userinfo(&w.url)),
            HandlerConfig::JsonLines(j) => match &j.target {
                JsonLinesTarget::Stdout => "jsonl:-".to_owned(),
                JsonLinesTarget::File(p) => format!("jsonl:{}", p.display()),
            },
        }
    }

    /// `"webhook"` or `"jsonl"`.
    pub fn kind(&self) -> &'static str {
        match self {
            HandlerConfig::Webhook(_) => "webhook",
            HandlerConfig::JsonLines(_) => "jsonl",
        }
    }

    /// Which event types the handler receives.
    pub fn types(&self) -> EventMask {
        match self {
            HandlerConfig::Webhook(w) => w.types,
            HandlerConfig::JsonLines(j) => j.types,
        }
    }
}

/// A webhook: `URL[;key=value]...`, keys `types`, `secret`, `batch`, `batch-ms`, `retries`,
/// `backoff-ms`, `queue`, `queue-bytes`, `timeout-ms` (see the `DEFAULT_*` constants). Values
/// cannot contain `;`.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Where to POST; `http://` only (the node has no TLS stack).
    pub url: String,
    /// Which event types to send (`types=`, default all).
    pub types: EventMask,
    /// Key of the `X-Corecast-Signature: sha256=<hex HMAC-SHA256 of the body>` header
    /// (`secret=`, default none: no header).
    pub secret: Option<String>,
    /// Events per POST, at most (`batch=`).
    pub batch_max: usize,
    /// How long to wait for more events after the first of a batch (`batch-ms=`).
    pub batch_wait: Duration,
    /// Retries of a failed POST before its events are given up (`retries=`).
    pub retries: u32,
    /// The first retry's delay, doubled for each next one (`backoff-ms=`).
    pub backoff: Duration,
    /// Queue capacity in events (`queue=`).
    pub queue: usize,
    /// Queue capacity in bytes of serialized events (`queue-bytes=`).
    pub queue_bytes: usize,
    /// Limit on one POST, including connecting (`timeout-ms=`).
    pub timeout: Duration,
}

impl WebhookConfig {
    /// A webhook to `url` with every other setting at its default.
    pub fn new(url: &str) -> Result<WebhookConfig, ParseError> {
        Ok(WebhookConfig {
            url: check_url(url)?,
            types: EventMask::ALL,
            secret: None,
            batch_max: DEFAULT_BATCH_MAX,
            batch_wait: DEFAULT_BATCH_WAIT,
            retries: DEFAULT_RETRIES,
            backoff: DEFAULT_BACKOFF,
            queue: DEFAULT_QUEUE,
            queue_bytes: DEFAULT_QUEUE_BYTES,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The delay before retry `n` (1-based): `backoff × 2^(n-1)`.
    pub fn backoff_before(&self, n: u32) -> Duration {
        let factor = 1u32 << n.saturating_sub(1).min(31);
        self.backoff.saturating_mul(factor)
    }
}

/// The secret is never printed, so a config dump in a log does not leak it.
impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &redact_userinfo(&self.url))
            .field("types", &format_args!("{}", self.types))
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("batch_max", &self.batch_max)
            .field("batch_wait", &self.batch_wait)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .field("queue", &self.queue)
            .field("queue_bytes", &self.queue_bytes)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl FromStr for WebhookConfig {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<WebhookConfig, ParseError> {
        let mut parts = s.split(';');
        let url = parts.next().unwrap_or_default().trim();
        let mut config = WebhookConfig::new(url)?;
        for (key, value) in options(parts)? {
            match key {
                "types" => config.types = parse_types(value)?,
                "secret" if value.is_empty() => {
                    return Err(ParseError::new("secret= must not be empty"))
                }
                "secret" => config.secret = Some(value.to_owned()),
                "batch" => config.batch_max = number(key, value, 1, MAX_BATCH)?,
                "batch-ms" => config.batch_wait = millis(key, value, 0)?,
                "retries" => config.retries = number(key, value, 0, MAX_RETRIES as usize)? as u32,
                "backoff-ms" => config.backoff = millis(key, value, 0)?,
                "queue" => config.queue = number(key, value, 1, MAX_QUEUE)?,
                "queue-bytes" => config.queue_bytes = queue_bytes(value)?,
                "timeout-ms" => config.timeout = millis(key, value, 1)?,
                _ => {
                    return Err(ParseError::new(format!(
                        "unknown webhook option {key:?} (known: types, secret, batch, batch-ms, \
                         retries, backoff-ms, queue, queue-bytes, timeout-ms)"
                    )))
                }
            }
        }
        Ok(config)
    }
}

/// Where a JSON lines handler writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JsonLinesTarget {
    /// The process's standard output (`-`).
    Stdout,
    /// A file, created if missing and appended to.
    File(PathBuf),
}

/// A JSON lines handler: `PATH` or `-` (stdout), then optionally `;types=...`, `;queue=N` and
/// `;queue-bytes=N`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonLinesConfig {
    /// Where the lines go.
    pub target: JsonLinesTarget,
    /// Which event types to write (default all).
    pub types: EventMask,
    /// Queue capacity in events.
    pub queue: usize,
    /// Queue capacity in bytes of serialized events.
    pub queue_bytes: usize,
}

impl FromStr for JsonLinesConfig {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<JsonLinesConfig, ParseError> {
        let mut parts = s.split(';');
        let target = match parts.next().unwrap_or_default().trim() {
            "" => {
                return Err(ParseError::new(
                    "a JSON lines handler needs a path, or - for stdout",
                ))
            }
            "-" => JsonLinesTarget::Stdout,
            path => JsonLinesTarget::File(PathBuf::from(path)),
        };
        let mut config = JsonLinesConfig {
            target,
            types: EventMask::ALL,
            queue: DEFAULT_QUEUE,
            queue_bytes: DEFAULT_QUEUE_BYTES,
        };
        for (key, value) in options(parts)? {
            match key {
                "types" => config.types = parse_types(value)?,
                "queue" => config.queue = number(key, value, 1, MAX_QUEUE)?,
                "queue-bytes" => config.queue_bytes = queue_bytes(value)?,
                _ => {
                    return Err(ParseError::new(format!(
                        "unknown JSON lines option {key:?} (known: types, queue, queue-bytes)"
                    )))
                }
            }
        }
        Ok(config)
    }
}

/// `key=value` pairs after the first `;`, each key at most once.
fn options<'a>(
    parts: impl Iterator<Item = &'a str>,
) -> Result<Vec<(&'a str, &'a str)>, ParseError> {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for part in parts.map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = part.split_once('=') else {
            return Err(ParseError::new(format!("expected key=value, got {part:?}")));
        };
        let (key, value) = (key.trim(), value.trim());
        if seen.iter().any(|(k, _)| *k == key) {
            return Err(ParseError::new(format!("option {key:?} given twice")));
        }
        seen.push((key, value));
    }
    Ok(seen)
}

fn parse_types(value: &str) -> Result<EventMask, ParseError> {
    value
        .parse()
        .map_err(|e: ParseError| ParseError::new(format!("types={value}: {e}")))
}

fn number(key: &str, value: &str, min: usize, max: usize) -> Result<usize, ParseError> {
    match value.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ParseError::new(format!(
            "{key}={value}: expected a whole number from {min} to {max}"
        ))),
    }
}

fn queue_bytes(value: &str) -> Result<usize, ParseError> {
    number("queue-bytes", value, MIN_QUEUE_BYTES, MAX_QUEUE_BYTES)
}

fn millis(key: &str, value: &str, min: u64) -> Result<Duration, ParseError> {
    // An hour is far beyond any sensible delay; the bound catches a value given in µs or ns.
    const MAX_MS: u64 = 3_600_000;
    match value.parse::<u64>() {
        Ok(n) if (min..=MAX_MS).contains(&n) => Ok(Duration::from_millis(n)),
        _ => Err(ParseError::new(format!(
            "{key}={value}: expected milliseconds from {min} to {MAX_MS}"
        ))),
    }
}

fn check_url(url: &str) -> Result<String, ParseError> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("http") => {}
        Some("https") => {
            return Err(ParseError::new(format!(
                "{url}: https is not supported (the node is built without TLS); use an http:// \
                 URL, e.g. a TLS-terminating proxy on the same host"
            )))
        }
        _ => {
            return Err(ParseError::new(format!(
                "{url:?}: expected a webhook URL starting with http://"
            )))
        }
    }
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|e| ParseError::new(format!("{url}: not a valid URL: {e}")))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(ParseError::new(format!("{url}: the URL has no host")));
    }
    Ok(url.to_owned())
}

/// `http://user:pass@host/x` → `http://***@host/x`: stats and logs must not show credentials.
fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials() {
        assert_eq!(redact_userinfo("http://u:p@h:1/x@y"), "http://***@h:1/x@y");
        assert_eq!(redact_userinfo("http://h/x@y"), "http://h/x@y");
        let c = WebhookConfig::from_str("http://u:p@h/;secret=abc").unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("abc") && !debug.contains("u:p"), "{debug}");
        assert_eq!(HandlerConfig::Webhook(c).name(), "webhook:http://***@h/");
    }

    #[test]
    fn backoff_doubles() {
        let c = WebhookConfig::new("http://h/").unwrap();
        let delays: Vec<u128> = (1..=5).map(|n| c.backoff_before(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600]);
        assert!(c.backoff_before(40) >= c.backoff_before(20));
    }
}

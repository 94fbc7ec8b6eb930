//! The webhook worker: batches envelopes into JSON arrays and POSTs them, in order, retrying a
//! failed batch with exponential backoff before giving it up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::config::WebhookConfig;
use super::handler::{Line, Shared};

/// The header carrying the body's HMAC-SHA256 under the configured secret.
pub const SIGNATURE_HEADER: &str = "X-Corecast-Signature";

/// The most of a reply body read (and thrown away). Reading it lets the connection be reused;
/// the limit keeps a misbehaving endpoint from making the worker read forever.
const REPLY_LIMIT: u64 = 64 * 1024;

/// `sha256=<lowercase hex of HMAC-SHA256(secret, body)>`, the value of [`SIGNATURE_HEADER`].
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length (long ones are hashed first), so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub(crate) struct Webhook {
    config: WebhookConfig,
    name: String,
    shared: Arc<Shared>,
    agent: ureq::Agent,
}

impl Webhook {
    pub fn new(config: WebhookConfig, name: String, shared: Arc<Shared>) -> Webhook {
        let agent = ureq::Agent::config_builder()
            // A non-2xx reply is a failed delivery to retry, not an error to bubble up, and a
            // redirect is not followed (a webhook URL that moved is a configuration error).
            .http_status_as_error(false)
            .max_redirects(0)
            // Deliveries go straight to the configured endpoint whatever HTTP_PROXY says: a proxy
            // picked up from the environment would be a silent change of destination.
            .proxy(None)
            .timeout_global(Some(config.timeout))
            .user_agent(concat!("corecast/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Webhook {
            config,
            name,
            shared,
            agent,
        }
    }

    /// The worker thread's body: until shutdown, take a batch, deliver it (or give it up), and
    /// only then take the next, so batches arrive in emission order and never overlap.
    pub fn run(self) {
        let mut batch: Vec<Line> = Vec::with_capacity(self.config.batch_max);
        while self.collect(&mut batch) {
            self.deliver(&batch);
            batch.clear();
        }
        // Past the shutdown deadline whatever is left is lost; say how much.
        self.shared.drop_queued();
    }

    /// Fills `batch` with up to `batch_max` events, waiting at most `batch_wait` after taking the
    /// first. Returns false when the worker should exit (shutdown, and nothing left to send or no
    /// time left to send it).
    fn collect(&self, batch: &mut Vec<Line>) -> bool {
        let shared = &self.shared;
        loop {
            if shared.past_deadline() {
                return false;
            }
            if let Some(line) = shared.pop() {
                batch.push(line);
                break;
            }
            if shared.stop_at().is_some() {
                return false;
            }
            // Shutdown sets its deadline before unparking, so this park cannot miss it.
            shared.park_until(None);
        }
        let send_by = Instant::now() + self.config.batch_wait;
        loop {
            while batch.len() < self.config.batch_max {
                match shared.pop() {
                    Some(line) => batch.push(line),
                    None => break,
                }
            }
            // Once shutting down, waiting for more events only eats into the deadline.
            if batch.len() >= self.config.batch_max
                || shared.stop_at().is_some()
                || Instant::now() >= send_by
            {
                return true;
            }
            shared.park_until(Some(send_by));
        }
    }

    /// POSTs `batch` until it succeeds or the retries run out. The same body (and signature) is
    /// sent every time, so a receiver can deduplicate a batch it saw fail on its side.
    fn deliver(&self, batch: &[Line]) {
        let body = json_array(batch);
        let signature = self
            .config
            .secret
            .as_deref()
            .map(|s| signature(s, body.as_bytes()));
        let mut attempt = 0;
        let error = loop {
            let error = match self.post(&body, signature.as_deref()) {
                Ok(()) => {
                    Shared::add(&self.shared.delivered, batch.len());
                    return;
                }
                Err(e) => e,
            };
            tracing::debug!(handler = %self.name, attempt, error = %error, "webhook POST failed");
            if attempt == self.config.retries {
                break error;
            }
            attempt += 1;
            if !self.shared.sleep(self.config.backoff_before(attempt)) {
                break format!("{error}; no time left before the shutdown deadline");
            }
            Shared::add(&self.shared.retries, 1);
        };
        Shared::add(&self.shared.failed_batches, 1);
        Shared::add(&self.shared.dropped, batch.len());
        tracing::warn!(
            handler = %self.name,
            events = batch.len(),
            attempts = attempt + 1,
            error = %error,
            "webhook batch given up"
        );
    }

    /// One POST. Ok only for a 2xx reply.
    fn post(&self, body: &str, signature: Option<&str>) -> Result<(), String> {
        // During shutdown a POST may not outlast the deadline (the worker would be left behind).
        let timeout = match self.shared.stop_at() {
            Some(deadline) => deadline.saturating_duration_since(Instant::now()),
            None => self.config.timeout,
        }
        .min(self.config.timeout);
        if timeout < Duration::from_millis(1) {
            return Err("shutdown deadline passed".to_owned());
        }
        Shared::add(&self.shared.posts, 1);
        let mut request = self
            .agent
            .post(&self.config.url)
            .header("Content-Type", "application/json");
        if let Some(signature) = signature {
            request = request.header(SIGNATURE_HEADER, signature);
        }
        let request = request.config().timeout_global(Some(timeout)).build();
        match request.send(body.as_bytes()) {
            Ok(mut reply) => {
                // The reply body means nothing to us; reading it only lets the connection be
                // reused, so a failure to read it does not fail the delivery.
                let _ = reply
                    .body_mut()
                    .with_config()
                    .limit(REPLY_LIMIT)
                    .read_to_vec();
                if reply.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("HTTP {}", reply.status()))
                }
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

/// `[e1,e2,...]`: the envelopes are already JSON, so they are joined, not re-serialized.
fn json_array(batch: &[Line]) -> String {
    let len = batch.iter().map(|l| l.len() + 1).sum::<usize>() + 2;
    let mut body = String::with_capacity(len);
    body.push('[');
    for (i, line) in batch.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(line);
    }
    body.push(']');
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_of_envelopes() {
        let batch: Vec<Line> = vec![Line::from(r#"{"a":1}"#), Line::from(r#"{"b":2}"#)];
        assert_eq!(json_array(&batch), r#"[{"a":1},{"b":2}]"#);
        assert_eq!(json_array(&[]), "[]");
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

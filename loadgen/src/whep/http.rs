//! WHEP over HTTP: the offer `POST`, the viewer's `DELETE` on its `Location`, and the switch by
//! channel; the JSON control client covers none of these.

use std::time::Duration;

use corecast_signaling::api::SwitchRequest;
use ureq::http::{self, Method};

/// Cap on an answer or error body.
const MAX_BODY: u64 = 256 << 10;

/// A viewer as the node created it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    /// `Location`, a path such as `/v1/subscribers/17?key=<the viewer's key>`: the key proves
    /// the viewer's own requests (`DELETE`, switch) are its creator's.
    pub location: String,
    /// The subscriber id at the end of it.
    pub id: u32,
    /// The `application/sdp` answer.
    pub answer: String,
}

/// The WHEP calls, on the node at `base` (`http://host:port`).
#[derive(Clone)]
pub struct WhepHttp {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for WhepHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhepHttp")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl WhepHttp {
    pub fn new(base: &str, token: Option<String>, timeout: Duration) -> WhepHttp {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .proxy(None)
            .build()
            .new_agent();
        WhepHttp {
            base: base.trim_end_matches('/').to_string(),
            token,
            agent,
        }
    }

    /// Send one request; the status and body (capped) or why there was none.
    fn call(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<(u16, http::HeaderMap, String), String> {
        let url = format!("{}{path}", self.base);
        let mut req = http::Request::builder().method(method).uri(&url);
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let req = req.body(body).map_err(|e| format!("{url}: {e}"))?;
        let mut resp = self
            .agent
            .run(req)
            .map_err(|e| format!("cannot reach {url}: {e}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .unwrap_or_default();
        Ok((status, headers, text))
    }

    /// `POST /v1/channels/{channel}/whep` with `offer`; `201` with a `Location` and an answer.
    pub fn offer(&self, channel: u32, offer: &str) -> Result<Created, String> {
        let (status, headers, answer) = self.call(
            Method::POST,
            &format!("/v1/channels/{channel}/whep"),
            Some("application/sdp"),
            offer.as_bytes().to_vec(),
        )?;
        if status != 201 {
            return Err(format!("WHEP offer answered {status}: {}", answer.trim()));
        }
        let location = headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or("the 201 has no Location")?
            .to_string();
        let (path, _) = split_query(&location);
        let id = path
            .rsplit('/')
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("Location {location} does not name a subscriber id"))?;
        Ok(Created {
            location,
            id,
            answer,
        })
    }

    /// `DELETE` a viewer's `Location` (a path, or a URL on the node).
    pub fn delete(&self, location: &str) -> Result<(), String> {
        let path = location.strip_prefix(&self.base).unwrap_or(location);
        let (status, _, body) = self.call(Method::DELETE, path, None, Vec::new())?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(format!("DELETE {path} answered {status}: {}", body.trim()))
        }
    }

    /// `POST {Location path}/switch{Location query} {"channel": channel}`: the viewer's switch,
    /// with its key from the `Location` the offer got.
    pub fn switch_channel(&self, location: &str, channel: u32) -> Result<(), String> {
        let body = serde_json::to_vec(&SwitchRequest {
            source: None,
            channel: Some(channel),
        })
        .map_err(|e| e.to_string())?;
        let location = location.strip_prefix(&self.base).unwrap_or(location);
        let (path, query) = split_query(location);
        let (status, _, text) = self.call(
            Method::POST,
            &format!("{path}/switch{query}"),
            Some("application/json"),
            body,
        )?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(format!("answered {status}: {}", text.trim()))
        }
    }
}

/// A path and its query (with the `?`, or empty).
fn split_query(location: &str) -> (&str, &str) {
    match location.find('?') {
        Some(at) => location.split_at(at),
        None => (location, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::split_query;

    #[test]
    fn the_switch_goes_beside_the_resource_with_its_query() {
        assert_eq!(
            split_query("/v1/subscribers/17?key=ab12"),
            ("/v1/subscribers/17", "?key=ab12")
        );
        assert_eq!(
            split_query("/v1/subscribers/17"),
            ("/v1/subscribers/17", "")
        );
    }
}

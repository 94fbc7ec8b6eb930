//! `corecast loadgen --whep`: the subscribers are WebRTC viewers, each on its own UDP socket,
//! that join as a browser does and are verified like plain subscribers.
//!
//! 1. [`create`]: one channel per source (`POST /v1/channels`), then one WHEP offer per viewer
//!    ([`offer::build_offer`]: receive-only, BUNDLE, rtcp-mux, its own ICE credentials,
//!    `a=setup:active`, the run's certificate fingerprint) to `/v1/channels/{id}/whep`; the
//!    answer is read for the candidate, the node's ICE credentials, fingerprint and SSRC
//!    ([`answer::parse_answer`]).
//! 2. [`join::join`]: one thread connects every viewer: a STUN check to the candidate
//!    ([`stun`]), then a DTLS client ([`dtls::DtlsClient`]) that checks the node's certificate
//!    against the answer and exports the SRTP keys; connect times are reported.
//! 3. While the run sends, the receiving threads unprotect each viewer's SRTP in place
//!    ([`media::ViewerMedia`]) before verification, and [`consent`] sends each viewer's consent
//!    check every [`CONSENT_EVERY`].
//! 4. Switches go by channel (`{"channel": N}`), and at the end each viewer's `Location` is
//!    deleted ([`crate::api::Topology::remove`]).

pub mod answer;
pub mod dtls;
pub mod http;
pub mod join;
pub mod media;
pub mod offer;
pub mod stun;

use std::net::UdpSocket;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corecast_signaling::api::CreateChannel;
use corecast_webrtc::dtls::Certificate;

use crate::api::{parallel, Topology};
use crate::Stop;
use answer::ParsedAnswer;
use http::WhepHttp;
use offer::{build_offer, ViewerIce};

/// How often each viewer renews consent (RFC 7675 asks for about 5 s; the node drops a viewer
/// after `--consent-timeout` without a check).
pub const CONSENT_EVERY: Duration = Duration::from_secs(5);

/// The viewers as the node created them, by subscriber index.
#[derive(Debug)]
pub struct Offered {
    pub ice: Vec<ViewerIce>,
    pub answers: Vec<ParsedAnswer>,
}

/// One viewer's offer: created and answered, or why not.
type OfferResult = Result<(http::Created, ParsedAnswer), String>;

/// Create a channel per source of `t` and a viewer per subscriber (`count`), viewer `j` on
/// channel `j % sources`, all offering `certificate`; records channels and viewers in `t` (so
/// they are deleted whatever happens next).
pub fn create(
    t: &mut Topology,
    http: WhepHttp,
    codec: corecast_engine::Codec,
    count: usize,
    certificate: &Certificate,
) -> Result<Offered, String> {
    t.whep = Some(http.clone());
    let name = |i: usize| format!("{}-channel-{i}", t.name_prefix);
    for i in 0..t.sources.len() {
        let source = Some(t.sources[i]);
        let (video, audio) = if codec.is_audio() {
            (None, source)
        } else {
            (source, None)
        };
        let req = CreateChannel {
            name: name(i),
            video,
            audio,
        };
        let view = t
            .client
            .create_channel(&req)
            .map_err(|e| format!("cannot create channel {}: {e}", req.name))?;
        t.channels.push(view.id);
    }
    let ice: Vec<ViewerIce> = (0..count).map(|_| ViewerIce::random()).collect();
    let fingerprint = certificate.fingerprint();
    let results: Vec<Mutex<Option<OfferResult>>> = (0..count).map(|_| Mutex::new(None)).collect();
    let channels = t.channels.clone();
    parallel(&ice, |j, ice| {
        let offer = build_offer(codec, ice, &fingerprint);
        let r = http
            .offer(channels[j % channels.len()], &offer)
            .and_then(|created| {
                let parsed = answer::parse_answer(&created.answer)
                    .map_err(|e| format!("viewer {j}'s answer: {e}"));
                // Recorded even when its answer is unusable, so it is deleted at the end.
                match parsed {
                    Ok(p) => Ok((created, p)),
                    Err(e) => {
                        let _ = http.delete(&created.location);
                        Err(e)
                    }
                }
            });
        let ok = r.is_ok();
        *results[j].lock().unwrap() = Some(r);
        ok
    });
    let mut answers = Vec::with_capacity(count);
    let mut first_error = None;
    for r in results {
        match r.into_inner().unwrap() {
            Some(Ok((created, parsed))) => {
                t.subscribers.push(created.id);
                t.locations.push(created.location);
                t.media_from.push(parsed.candidate);
                answers.push(parsed);
            }
            Some(Err(e)) => {
                first_error.get_or_insert(e);
            }
            None => {}
        }
    }
    if let Some(e) = first_error {
        return Err(format!("cannot create WHEP viewers: {e}"));
    }
    Ok(Offered { ice, answers })
}

/// Send every viewer's consent check every [`CONSENT_EVERY`] until `stop`, viewer `k` of `n`
/// at its own phase `k / n` of the interval: a burst of thousands of checks at once would
/// overflow the node's socket buffers (measured: 256 of 1,000 answered). `sockets` are the
/// viewer sockets, shared with the receiving threads (which read the answers and count them). Returns the
/// checks sent.
pub fn consent(sockets: &[Arc<UdpSocket>], offered: &Offered, stop: &Stop) -> u64 {
    let n = sockets
        .len()
        .min(offered.ice.len())
        .min(offered.answers.len());
    if n == 0 {
        return 0;
    }
    let mut sent = 0;
    let tie_breaker: u64 = rand::random();
    let start = Instant::now();
    let step = CONSENT_EVERY / n as u32;
    // Checks are numbered across rounds: check `c` is viewer `c % n`, due at `CONSENT_EVERY`
    // + `c * step`.
    let mut c: u64 = 0;
    loop {
        let due = start + CONSENT_EVERY + step * (c as u32);
        let now = Instant::now();
        if due > now && stop.wait(due - now) {
            return sent;
        }
        if stop.is_triggered() {
            return sent;
        }
        // Everything due by now goes out together (the thread may have slept past several).
        let now = Instant::now();
        while start + CONSENT_EVERY + step * (c as u32) <= now {
            let k = (c % n as u64) as usize;
            let (req, _) = stun::binding_request(
                &offered.answers[k].ufrag,
                &offered.ice[k].ufrag,
                &offered.answers[k].pwd,
                tie_breaker,
                false,
            );
            if sockets[k].send(&req).is_ok() {
                sent += 1;
            }
            c += 1;
        }
    }
}

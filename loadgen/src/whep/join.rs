//! Connecting every viewer from one thread: a poll loop over all the viewer sockets that runs
//! each viewer's ICE check and then its DTLS client, with at most [`MAX_IN_FLIGHT`] viewers
//! connecting at once, bounded by a deadline.

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use corecast_srtp::SrtpContext;
use corecast_webrtc::dtls::Certificate;
use hdrhistogram::Histogram;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use serde::Serialize;
use stun::agent::TransactionId;

use super::answer::ParsedAnswer;
use super::dtls::{looks_like_dtls, viewer_inbound, ClientEvent, DtlsClient};
use super::offer::ViewerIce;
use super::stun::{binding_request, is_success, looks_like_stun};
use super::CONSENT_EVERY;

/// Viewers connecting at the same time: enough to keep the node's DTLS thread busy, few enough
/// that a connect time is the handshake's, not a queue's.
pub const MAX_IN_FLIGHT: usize = 128;
/// An unanswered ICE check is sent again this often.
const ICE_RESEND: Duration = Duration::from_millis(250);
/// Datagrams read from one socket per readiness event.
const MAX_READS_PER_EVENT: usize = 256;
/// The longest the loop sleeps without an event.
const MAX_WAIT: Duration = Duration::from_millis(50);

/// One viewer to connect: its socket (non-blocking, connected to `answer.candidate`), what it
/// offered and what the node answered.
pub struct ToJoin<'a> {
    pub socket: &'a UdpSocket,
    pub ice: &'a ViewerIce,
    pub answer: &'a ParsedAnswer,
}

/// Connect figures over all viewers, in milliseconds where times.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct ConnectFigures {
    /// Viewers that completed ICE and DTLS.
    pub connected: u64,
    /// Viewers that did not (the warnings say why, for the first few).
    pub failed: u64,
    /// From a viewer's first STUN check to its DTLS `Connected`.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// From the first check of all to the last viewer connected or failed.
    pub wall_s: f64,
    /// `connected / wall_s`.
    pub handshakes_per_s: f64,
    /// CPU seconds `--server-pid` used over `wall_s` (null without it), and `connected` per
    /// such second.
    pub server_cpu_s: Option<f64>,
    pub handshakes_per_server_cpu_s: Option<f64>,
    /// STUN checks sent again (no answer within 250 ms).
    pub ice_resends: u64,
}

/// What joining gave: per viewer, its inbound SRTP context or why it has none.
pub struct Joined {
    pub inbound: Vec<Result<SrtpContext, String>>,
    pub figures: ConnectFigures,
}

enum State {
    Waiting,
    Ice {
        tid: TransactionId,
        req: Vec<u8>,
        resend_at: Instant,
    },
    Dtls(Box<DtlsClient>),
    /// Connected: only consent checks from here on.
    Connected {
        consent_at: Instant,
    },
    Done,
}

struct Viewer {
    state: State,
    started: Option<Instant>,
    tie_breaker: u64,
}

/// Connect `viewers` with `certificate`; gives up on those not connected by `deadline`.
pub fn join(
    viewers: &[ToJoin],
    certificate: &Certificate,
    deadline: Instant,
    server_pid: Option<u32>,
) -> io::Result<Joined> {
    let mut poll = Poll::new()?;
    for (i, v) in viewers.iter().enumerate() {
        poll.registry().register(
            &mut SourceFd(&v.socket.as_raw_fd()),
            Token(i),
            Interest::READABLE,
        )?;
    }
    let pid = server_pid.map(|p| p.to_string());
    let cpu0 = pid.as_deref().and_then(crate::report::process_cpu_s);
    let start = Instant::now();
    let mut state: Vec<Viewer> = (0..viewers.len())
        .map(|_| Viewer {
            state: State::Waiting,
            started: None,
            tie_breaker: rand::random(),
        })
        .collect();
    let mut inbound: Vec<Result<SrtpContext, String>> = (0..viewers.len())
        .map(|_| Err("not connected before the join deadline".to_string()))
        .collect();
    let mut times = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let mut next = 0usize;
    let mut in_flight = 0usize;
    let mut finished = 0usize;
    let mut resends = 0u64;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 2048];
    while finished < viewers.len() {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        while in_flight < MAX_IN_FLIGHT && next < viewers.len() {
            let v = &viewers[next];
            let (req, tid) = binding_request(
                &v.answer.ufrag,
                &v.ice.ufrag,
                &v.answer.pwd,
                state[next].tie_breaker,
                true,
            );
            // A send that fails now is retried with the check's resend.
            let _ = v.socket.send(&req);
            state[next].state = State::Ice {
                tid,
                req,
                resend_at: now + ICE_RESEND,
            };
            state[next].started = Some(now);
            in_flight += 1;
            next += 1;
        }
        // Timers: resend checks, DTLS retransmissions (a client that fails on its timer ends
        // that viewer's join).
        let mut wake = deadline.min(now + MAX_WAIT);
        for (i, s) in state.iter_mut().enumerate() {
            let mut failed = None;
            let v = &viewers[i];
            match &mut s.state {
                State::Ice { req, resend_at, .. } => {
                    if *resend_at <= now {
                        // The same transaction (RFC 8489 §6.2.1), so a late answer still counts.
                        let _ = v.socket.send(req);
                        *resend_at = now + ICE_RESEND;
                        resends += 1;
                    }
                    wake = wake.min(*resend_at);
                }
                State::Dtls(client) => {
                    if client.timeout().is_some_and(|t| t <= now) {
                        client.handle_timeout(now);
                        client.transmit(|d| {
                            let _ = v.socket.send(d);
                        });
                    }
                    if let Some(t) = client.timeout() {
                        wake = wake.min(t);
                    }
                    if let Some(ClientEvent::Failed(why)) = client.poll_event() {
                        failed = Some(why);
                    }
                }
                State::Connected { consent_at } => {
                    // A long join must not outlast the node's consent timeout for the viewers
                    // that connected first: they keep sending checks (answers are left queued
                    // and counted by the receiving threads).
                    if *consent_at <= now {
                        let (req, _) = binding_request(
                            &v.answer.ufrag,
                            &v.ice.ufrag,
                            &v.answer.pwd,
                            s.tie_breaker,
                            false,
                        );
                        let _ = v.socket.send(&req);
                        *consent_at = now + CONSENT_EVERY;
                    }
                    wake = wake.min(*consent_at);
                }
                State::Waiting | State::Done => {}
            }
            if let Some(why) = failed {
                s.state = State::Done;
                in_flight -= 1;
                finished += 1;
                inbound[i] = Err(why);
            }
        }
        let wait = wake.saturating_duration_since(Instant::now());
        if let Err(e) = poll.poll(&mut events, Some(wait)) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        for ev in events.iter() {
            let i = ev.token().0;
            let (Some(v), Some(s)) = (viewers.get(i), state.get_mut(i)) else {
                continue;
            };
            // Read one datagram at a time and stop once connected: what follows is media, left
            // queued for the receiving threads. The bound only guards against a flood; a
            // handshake is a handful of datagrams.
            for _ in 0..MAX_READS_PER_EVENT {
                if matches!(
                    s.state,
                    State::Done | State::Waiting | State::Connected { .. }
                ) {
                    break;
                }
                let n = match v.socket.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // An ICMP error (port unreachable) is reported once; the check is resent.
                    Err(_) => continue,
                };
                let datagram = &buf[..n];
                let outcome = step(&mut s.state, v, datagram, certificate, Instant::now());
                if let Some(result) = outcome {
                    let at = Instant::now();
                    s.state = if result.is_ok() {
                        State::Connected {
                            consent_at: at + CONSENT_EVERY,
                        }
                    } else {
                        State::Done
                    };
                    in_flight -= 1;
                    finished += 1;
                    if result.is_ok() {
                        let took = at - s.started.unwrap_or(start);
                        times.saturating_record((took.as_micros() as u64).max(1));
                    }
                    inbound[i] = result;
                }
            }
        }
    }
    let wall = start.elapsed();
    let cpu1 = pid.as_deref().and_then(crate::report::process_cpu_s);
    for (i, s) in state.iter().enumerate() {
        let _ = poll
            .registry()
            .deregister(&mut SourceFd(&viewers[i].socket.as_raw_fd()));
        if let State::Ice { .. } = s.state {
            inbound[i] = Err("no answer to the ICE check before the join deadline".into());
        }
    }
    let connected = inbound.iter().filter(|r| r.is_ok()).count() as u64;
    let ms = |us: u64| (us as f64 / 10.0).round() / 100.0;
    let server_cpu_s = cpu0
        .zip(cpu1)
        .map(|(a, b)| ((b - a) * 100.0).round() / 100.0);
    let wall_s = wall.as_secs_f64();
    Ok(Joined {
        figures: ConnectFigures {
            connected,
            failed: viewers.len() as u64 - connected,
            p50_ms: ms(times.value_at_quantile(0.5)),
            p99_ms: ms(times.value_at_quantile(0.99)),
            max_ms: ms(times.max()),
            wall_s: (wall_s * 1000.0).round() / 1000.0,
            handshakes_per_s: if wall_s > 0.0 {
                (connected as f64 / wall_s).round()
            } else {
                0.0
            },
            server_cpu_s,
            handshakes_per_server_cpu_s: server_cpu_s
                .filter(|&c| c > 0.0)
                .map(|c| (connected as f64 / c).round()),
            ice_resends: resends,
        },
        inbound,
    })
}

/// One datagram for a viewer; `Some` when it ended that viewer's join.
fn step(
    state: &mut State,
    v: &ToJoin,
    datagram: &[u8],
    certificate: &Certificate,
    now: Instant,
) -> Option<Result<SrtpContext, String>> {
    match state {
        State::Ice { tid, .. } => {
            if looks_like_stun(datagram) && is_success(datagram, *tid, &v.answer.pwd) {
                let mut client = Box::new(DtlsClient::new(certificate, v.answer.fingerprint, now));
                client.transmit(|d| {
                    let _ = v.socket.send(d);
                });
                *state = State::Dtls(client);
            }
            None
        }
        State::Dtls(client) => {
            if looks_like_dtls(datagram) {
                client.handle_datagram(datagram);
                client.transmit(|d| {
                    let _ = v.socket.send(d);
                });
            }
            match client.poll_event()? {
                ClientEvent::Connected(keys) => Some(Ok(viewer_inbound(&keys))),
                ClientEvent::Failed(why) => Some(Err(why)),
            }
        }
        State::Waiting | State::Connected { .. } | State::Done => None,
    }
}

//! One run, start to end: sockets, topology, threads, progress, drain, report.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use corecast_engine::{Codec, Ssrc};
use corecast_signaling::client::Client;
use corecast_udp::time::next_boundary;
use corecast_udp::Buffer;
use socket2::{Domain, Protocol, Socket, Type};

use super::api::{self, SwitchCounters, Topology};
use super::recv::{latency_histogram, Receiver, SubscriberSocket};
use super::report::{process_cpu_s, Latency, Report};
use super::send::{self, SendProgress, SourceSender};
use super::stream::{SourceStream, StreamShape};
use super::verify::Counts;
use super::whep::http::WhepHttp;
use super::whep::join::{self, Joined, ToJoin};
use super::whep::media::{ViewerMedia, WebrtcCounts};
use super::whep::{self, Offered};
use super::{Config, Observer, Progress};
use corecast_webrtc::dtls::Certificate;

/// Send buffer asked for each source socket.
const SNDBUF: usize = 4 << 20;
/// Timeout of API calls: a batch of thousands of subscribers takes a while.
const API_TIMEOUT: Duration = Duration::from_secs(30);
const TICK: Duration = Duration::from_secs(1);
/// How long a tick waits for the receivers to publish; they answer within a poll wake-up.
const PUBLISH_WAIT: Duration = Duration::from_millis(200);
/// The drain ends once nothing arrived for this long (two receiver publishes).
const QUIET: Duration = Duration::from_millis(500);
/// The drain lasts at most this much longer than asked, however long packets keep arriving.
const MAX_EXTRA_DRAIN: Duration = Duration::from_secs(10);
/// `--whep`: viewers not connected after this long, plus [`JOIN_PER_VIEWER`] each, fail.
const JOIN_TIMEOUT: Duration = Duration::from_secs(20);
const JOIN_PER_VIEWER: Duration = Duration::from_millis(20);

fn check(cfg: &Config) -> Result<(), String> {
    if cfg.sources == 0 || cfg.subscribers == 0 {
        return Err("--sources and --subscribers must be at least 1".into());
    }
    if !matches!(cfg.shape.codec, Codec::Vp8 | Codec::Opus) {
        return Err("the load generator sends vp8 or opus".into());
    }
    if !(StreamShape::MIN_PACKET_SIZE..=1200).contains(&cfg.shape.packet_size) {
        return Err(format!(
            "--packet-size must be {} to 1200",
            StreamShape::MIN_PACKET_SIZE
        ));
    }
    if cfg.shape.fps == 0 || cfg.shape.gop == 0 || cfg.shape.bitrate == 0 {
        return Err("--fps, --gop and --bitrate must be at least 1".into());
    }
    if cfg.raw_target.is_some() && cfg.sources != 1 {
        return Err("raw mode (--raw-target) sends exactly one source".into());
    }
    if cfg.raw_from.is_some() && cfg.raw_target.is_none() {
        return Err("--raw-from goes with --raw-target".into());
    }
    if cfg.raw_target.is_some() && cfg.switch_every.is_some() {
        return Err("raw mode (--raw-target) cannot switch sources".into());
    }
    if cfg.whep && cfg.raw_target.is_some() {
        return Err("--whep needs the node's API (not --raw-target)".into());
    }
    if !(0.0..=1.0).contains(&cfg.max_loss) {
        return Err("--max-loss is a fraction from 0 to 1".into());
    }
    Ok(())
}

fn udp_socket(
    addr: SocketAddr,
    rcvbuf: usize,
    sndbuf: usize,
) -> std::io::Result<(UdpSocket, usize)> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Asking for more than the kernel allows is not an error; what was granted is reported.
    let _ = Buffer::Receive.set_size(&socket, rcvbuf);
    let _ = Buffer::Send.set_size(&socket, sndbuf);
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    let granted = Buffer::Receive.size(&socket).unwrap_or(0);
    Ok((socket.into(), granted))
}

/// Do one run; `Err` when it could not be set up (the node unreachable, a port taken). A run
/// that went but found faults is an `Ok` report that did not pass.
pub fn run(cfg: &Config, observer: &mut dyn Observer) -> Result<Report, String> {
    check(cfg)?;
    let origin = Instant::now();
    let mut subs = Vec::with_capacity(cfg.subscribers as usize);
    let mut rcvbuf_granted = usize::MAX;
    for j in 0..cfg.subscribers {
        let port = match cfg.recv_base_port {
            Some(base) => u16::try_from(u32::from(base) + j)
                .map_err(|_| "--recv-base-port + --subscribers runs past port 65535")?,
            None => 0,
        };
        let addr = SocketAddr::new(cfg.bind_ip, port);
        let (socket, granted) = udp_socket(addr, cfg.rcvbuf, 1 << 16).map_err(|e| {
            let hint = if e.raw_os_error() == Some(libc::EMFILE) {
                format!(
                    " (each subscriber is a socket: raise `ulimit -n` above {})",
                    cfg.subscribers + 64
                )
            } else {
                String::new()
            };
            format!("cannot bind a subscriber socket on {addr}: {e}{hint}")
        })?;
        rcvbuf_granted = rcvbuf_granted.min(granted);
        subs.push(socket);
    }
    let dests: Vec<SocketAddr> = subs
        .iter()
        .map(|s| s.local_addr())
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let mut source_sockets = Vec::new();
    for _ in 0..cfg.sources {
        let (socket, _) = udp_socket(SocketAddr::new(cfg.bind_ip, 0), 1 << 20, SNDBUF)
            .map_err(|e| format!("cannot bind a source socket on {}: {e}", cfg.bind_ip))?;
        source_sockets.push(socket);
    }
    let ours: Vec<Option<SocketAddr>> =
        source_sockets.iter().map(|s| s.local_addr().ok()).collect();
    let mut topology = match cfg.raw_target {
        Some(_) => None,
        None => {
            let client = Client::with_timeout(&cfg.server, cfg.token.clone(), API_TIMEOUT);
            // WHEP viewers are created by offers (below), not as plain subscribers.
            let plain: Vec<SocketAddr> = if cfg.whep {
                Vec::new()
            } else {
                dests.iter().chain(&cfg.unverified).copied().collect()
            };
            Some(Topology::create(
                client,
                cfg.shape.codec.name(),
                cfg.sources,
                &plain,
            )?)
        }
    };
    // From here on, what was created is deleted whatever happens.
    let offered = match (cfg.whep, topology.as_mut()) {
        (true, Some(t)) => offer_viewers(cfg, t).map(Some),
        _ => Ok(None),
    };
    let from: Vec<SocketAddr> = match (&topology, cfg.raw_from) {
        (Some(t), _) => t.media_from.clone(),
        (None, Some(from)) => vec![from; subs.len()],
        (None, None) => Vec::new(),
    };
    let result = offered.and_then(|offered| {
        connect_subscribers(&subs, &from)?;
        let webrtc = match offered {
            Some((cert, offered)) => Some((join_viewers(cfg, &subs, &cert, &offered)?, offered)),
            None => None,
        };
        measure(
            cfg,
            observer,
            origin,
            Subscribers {
                sockets: subs,
                webrtc,
            },
            source_sockets,
            &dests,
            topology.as_ref(),
        )
    });
    // Another process sending to a source's port first gets latched instead of us.
    let foreign = topology
        .as_ref()
        .map(|t| foreign_senders(t, &ours))
        .unwrap_or_default();
    let cleanup = topology.as_mut().map(Topology::remove).unwrap_or_default();
    let mut report = result?;
    report.foreign_senders = foreign.len() as u64;
    report.warnings.extend(foreign);
    report.rcvbuf_asked = cfg.rcvbuf;
    report.rcvbuf_granted = rcvbuf_granted;
    if rcvbuf_granted < cfg.rcvbuf {
        report.warnings.push(format!(
            "the kernel granted {rcvbuf_granted}-byte receive buffers of the {} asked (raise net.core.rmem_max)",
            cfg.rcvbuf
        ));
    }
    report.warnings.extend(cleanup);
    report.judge();
    Ok(report)
}

/// `--whep`: the run's certificate, then a channel per source and a WHEP offer per subscriber.
fn offer_viewers(cfg: &Config, t: &mut Topology) -> Result<(Certificate, Offered), String> {
    let cert = Certificate::generate()
        .map_err(|e| format!("cannot make the load generator's DTLS certificate: {e:?}"))?;
    let http = WhepHttp::new(t.client.base(), cfg.token.clone(), API_TIMEOUT);
    let offered = whep::create(t, http, cfg.shape.codec, cfg.subscribers as usize, &cert)?;
    Ok((cert, offered))
}

/// `--whep`: ICE and DTLS for every viewer, from this thread.
fn join_viewers(
    cfg: &Config,
    subs: &[UdpSocket],
    cert: &Certificate,
    offered: &Offered,
) -> Result<Joined, String> {
    let to_join: Vec<ToJoin> = subs
        .iter()
        .zip(&offered.ice)
        .zip(&offered.answers)
        .map(|((socket, ice), answer)| ToJoin {
            socket,
            ice,
            answer,
        })
        .collect();
    let deadline = Instant::now() + JOIN_TIMEOUT + JOIN_PER_VIEWER * subs.len() as u32;
    join::join(&to_join, cert, deadline, cfg.server_pid)
        .map_err(|e| format!("cannot connect the viewers: {e}"))
}

/// Take datagrams only from where each subscriber's media comes from (its shard's socket, or
/// `--raw-from`): a stray sender aimed at a port that happens to be ours is then dropped by the
/// kernel. An unspecified address cannot be connected to and is left alone.
fn connect_subscribers(subs: &[UdpSocket], from: &[SocketAddr]) -> Result<(), String> {
    for (socket, from) in subs.iter().zip(from) {
        if !from.ip().is_unspecified() {
            socket
                .connect(from)
                .map_err(|e| format!("cannot connect a subscriber socket to {from}: {e}"))?;
            // What a stray sent before the connect is still queued: discard it (nothing of
            // ours has been sent yet).
            let mut buf = [0u8; 2048];
            while socket.recv(&mut buf).is_ok() {}
        }
    }
    Ok(())
}

/// Sources the node latched to an address other than the load generator's socket, one line
/// each.
fn foreign_senders(t: &Topology, ours: &[Option<SocketAddr>]) -> Vec<String> {
    let Ok(views) = t.client.sources() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (i, id) in t.sources.iter().enumerate() {
        let Some(v) = views.iter().find(|v| v.id == *id) else {
            continue;
        };
        if let (Some(sender), Some(Some(ours))) = (v.sender, ours.get(i)) {
            if sender != *ours {
                found.push(format!(
                    "source {} (port {}) latched to {sender}, not to the load generator's {ours}: another process sends to that port",
                    v.name, v.ingest.port
                ));
            }
        }
    }
    found
}

/// The subscriber sockets, by index, and for `--whep` how the viewers joined.
struct Subscribers {
    sockets: Vec<UdpSocket>,
    webrtc: Option<(Joined, Offered)>,
}

fn measure(
    cfg: &Config,
    observer: &mut dyn Observer,
    origin: Instant,
    subscribers: Subscribers,
    source_sockets: Vec<UdpSocket>,
    dests: &[SocketAddr],
    topology: Option<&Topology>,
) -> Result<Report, String> {
    let Subscribers {
        sockets: subs,
        webrtc,
    } = subscribers;
    let targets: Vec<SocketAddr> = match (cfg.raw_target, topology) {
        (Some(t), _) => vec![t],
        (None, Some(t)) => t.ingest.clone(),
        (None, None) => unreachable!("API mode has a topology"),
    };
    let mut sources = Vec::new();
    for (i, (target, socket)) in targets.iter().zip(source_sockets).enumerate() {
        let stream = SourceStream::new(
            i as u32,
            Ssrc(rand::random()),
            rand::random(),
            rand::random(),
            cfg.shape,
        );
        sources.push(SourceSender {
            stream,
            socket,
            target: *target,
        });
    }
    let threads = cfg.recv_threads.clamp(1, subs.len());
    let subs: Vec<Arc<UdpSocket>> = subs.into_iter().map(Arc::new).collect();
    // WebRTC viewers: sockets for the consent checks, each viewer's SRTP, and what the join
    // found.
    let mut consent_sockets = Vec::new();
    let mut media: Vec<Option<ViewerMedia>> = Vec::new();
    let mut join_figures = None;
    let mut join_failures = Vec::new();
    let mut offered = None;
    if let Some((joined, o)) = webrtc {
        consent_sockets = subs.clone();
        for (j, (inbound, answer)) in joined.inbound.into_iter().zip(&o.answers).enumerate() {
            match inbound {
                Ok(ctx) => media.push(Some(ViewerMedia::new(ctx, answer.ssrc))),
                Err(why) => {
                    if join_failures.len() < 3 {
                        join_failures.push(format!("viewer {j} did not connect: {why}"));
                    }
                    media.push(None);
                }
            }
        }
        join_figures = Some(joined.figures);
        offered = Some(o);
    }
    media.resize_with(subs.len(), || None);
    let mut groups: Vec<Vec<SubscriberSocket>> = (0..threads).map(|_| Vec::new()).collect();
    for (j, (s, m)) in subs.into_iter().zip(media).enumerate() {
        groups[j % threads].push((j, s, m));
    }
    let mut receivers = Vec::new();
    for (t, group) in groups.into_iter().enumerate() {
        match Receiver::spawn(
            format!("loadgen-recv-{t}"),
            group,
            cfg.shape.codec,
            cfg.sources,
            origin,
        ) {
            Ok(r) => receivers.push(r),
            Err(e) => {
                for r in receivers {
                    let _ = r.finish();
                }
                return Err(format!("cannot start a receiving thread: {e}"));
            }
        }
    }
    observer.ready(dests);

    let server_pid = cfg.server_pid.map(|p| p.to_string());
    let server_cpu0 = server_pid.as_deref().and_then(process_cpu_s);
    let own_cpu0 = process_cpu_s("self");
    let start = origin.elapsed();
    let until = cfg.duration.map(|d| start + d);
    let stop = &cfg.stop;
    let send_progress = SendProgress::default();
    let switches = SwitchCounters::default();
    let switching = cfg
        .switch_every
        .filter(|e| !e.is_zero() && cfg.sources > 1)
        .zip(topology);
    let sent = std::thread::scope(|scope| {
        let sender = scope.spawn(|| send::run(sources, origin, until, stop, &send_progress));
        if let Some((every, t)) = switching {
            let switches = &switches;
            scope.spawn(move || api::switch_rounds(t, every, origin, start, until, stop, switches));
        }
        let consent = offered
            .as_ref()
            .map(|o| scope.spawn(|| whep::consent(&consent_sockets, o, stop)));
        // Progress windows end on whole ticks after `ticks_from`: with `Config::tick_origin`
        // the node's start, so each window is one of the node's stats intervals.
        let sending = origin + start;
        let ticks_from = cfg.tick_origin.unwrap_or(sending);
        let since = |t: Instant| t.saturating_duration_since(ticks_from).as_secs_f64();
        let mut last = Progress {
            window_end_s: since(sending),
            ..Progress::default()
        };
        let mut tick = next_boundary(ticks_from, TICK, sending);
        loop {
            let now = Instant::now();
            if now < tick {
                if stop.wait(tick - now) {
                    break;
                }
                continue;
            }
            // Every receiver publishes what it has at the tick, so the window ends there.
            let asked: Vec<Option<u64>> = receivers.iter().map(|r| r.publish_now().ok()).collect();
            let deadline = Instant::now() + PUBLISH_WAIT;
            for (r, n) in receivers.iter().zip(asked) {
                if let Some(n) = n {
                    r.wait_published(n, deadline);
                }
            }
            let window = (last.window_end_s, since(tick));
            last = progress(
                &receivers,
                &send_progress,
                &switches,
                tick - sending,
                window,
                &last,
            );
            observer.progress(&last);
            tick = next_boundary(ticks_from, TICK, tick);
        }
        let sent = sender
            .join()
            .map_err(|_| "the sending thread panicked".to_string())?
            .map_err(|e| e.to_string());
        // Sending has ended and triggered `stop`: the consent thread returns at once.
        let consent_checks = match consent {
            Some(c) => c
                .join()
                .map_err(|_| "the consent thread panicked".to_string())?,
            None => 0,
        };
        Ok::<_, String>((sent, consent_checks))
    })?;
    let (sent, consent_checks) = sent;
    let drained = drain(&receivers, cfg.drain);
    let mut latency = latency_histogram();
    let mut verifiers = Vec::with_capacity(dests.len());
    let mut failed = None;
    let mut webrtc_counts = WebrtcCounts::default();
    for r in receivers {
        match r.finish() {
            Ok(out) => {
                latency.add(&out.latency).expect("same bounds");
                verifiers.extend(out.verifiers);
                webrtc_counts += &out.webrtc;
            }
            Err(e) => failed = Some(format!("a receiving thread failed: {e}")),
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    let sent = sent?;
    let server_cpu1 = server_pid.as_deref().and_then(process_cpu_s);
    let own_cpu1 = process_cpu_s("self");

    let mut report = Report {
        mode: if cfg.raw_target.is_some() {
            "raw"
        } else {
            "api"
        }
        .into(),
        codec: cfg.shape.codec.name().into(),
        transport: if cfg.whep { "webrtc" } else { "rtp" }.into(),
        connect: join_figures,
        webrtc: cfg.whep.then_some(webrtc_counts),
        consent_checks_sent: consent_checks,
        sources: cfg.sources,
        subscribers: cfg.subscribers,
        unverified_subscribers: cfg.unverified.len() as u32,
        duration_s: ((sent.ended - sent.started).as_secs_f64() * 1000.0).round() / 1000.0,
        drain_s: (drained.as_secs_f64() * 1000.0).round() / 1000.0,
        packets_sent: sent.sent.iter().sum(),
        keyframes_sent: sent.keyframes,
        keyframe_requests: sent.keyframe_requests,
        switches_requested: switches.requested.load(Ordering::Relaxed),
        switch_errors: switches.errors.load(Ordering::Relaxed),
        latency_us: Latency::from_histogram(&latency),
        // /proc counts in hundredths of a second.
        server_cpu_s: server_cpu0
            .zip(server_cpu1)
            .map(|(a, b)| ((b - a) * 100.0).round() / 100.0),
        loadgen_cpu_s: own_cpu0
            .zip(own_cpu1)
            .map(|(a, b)| ((b - a) * 100.0).round() / 100.0),
        recv_threads: threads,
        late_frames: sent.late_frames,
        send_retries: sent.send_retries,
        max_loss: cfg.max_loss,
        max_p99_ms: cfg.max_p99.map(|d| d.as_secs_f64() * 1000.0),
        ..Report::default()
    };
    let mut counts = Counts::default();
    let faults: Vec<String> = verifiers
        .iter()
        .filter_map(|(j, v)| {
            v.first_fault()
                .map(|f| format!("subscriber {j}, first {f}"))
        })
        .take(3)
        .collect();
    report.warnings.extend(faults);
    report.warnings.extend(join_failures);
    // Every STUN datagram after the join is an answer to a check of ours: fewer answers than
    // checks means the node dropped some (its consent timeout then comes closer).
    if let Some(w) = report
        .webrtc
        .as_ref()
        .filter(|w| w.stun_ignored < consent_checks)
    {
        report.warnings.push(format!(
            "only {} of {consent_checks} consent checks were answered",
            w.stun_ignored
        ));
    }
    for (j, v) in &verifiers {
        let outcome = v.finish(&sent.sent, (*j as u32) % cfg.sources);
        counts += outcome.counts;
        report.packets_expected += outcome.expected;
        report.lost += outcome.lost;
        report.silent_subscribers += u64::from(outcome.silent);
    }
    report.add_counts(&counts);
    if report.duration_s > 0.0 {
        report.received_pps = (report.packets_received as f64 / report.duration_s).round();
        report.sent_pps = (report.packets_sent as f64 / report.duration_s).round();
    }
    if cfg.server_pid.is_some() && report.server_cpu_s.is_none() {
        report
            .warnings
            .push("cannot read the CPU time of --server-pid from /proc".into());
    }
    if let Some(e) = switches.first_error.lock().unwrap().take() {
        report.warnings.push(format!("first failed switch: {e}"));
    }
    if cfg.switch_every.is_some_and(|e| !e.is_zero()) && cfg.sources < 2 {
        report
            .warnings
            .push("--switch-every needs two sources or more; no switch was made".into());
    }
    Ok(report)
}

/// Wait for packets still in flight (node queues, socket buffers): at least `min`, then until
/// the receivers have seen nothing new for [`QUIET`], at most [`MAX_EXTRA_DRAIN`] longer.
/// Returns how long it waited.
fn drain(receivers: &[Receiver], min: Duration) -> Duration {
    let started = Instant::now();
    let received = || -> u64 {
        receivers
            .iter()
            .map(|r| r.progress.received.load(Ordering::Relaxed))
            .sum()
    };
    std::thread::sleep(min);
    // Receivers publish every PUBLISH_EVERY; QUIET spans more than one publish.
    let mut last = received();
    while started.elapsed() < min + MAX_EXTRA_DRAIN {
        std::thread::sleep(QUIET);
        let now = received();
        if now == last {
            break;
        }
        last = now;
    }
    started.elapsed()
}

/// Where the run stands at a tick: `elapsed` since sending started, over `window` (start and
/// end, in seconds since the ticks' origin).
fn progress(
    receivers: &[Receiver],
    sent: &SendProgress,
    switches: &SwitchCounters,
    elapsed: Duration,
    window: (f64, f64),
    last: &Progress,
) -> Progress {
    let mut interval = latency_histogram();
    let mut p = Progress {
        elapsed_s: elapsed.as_secs_f64(),
        window_start_s: window.0,
        window_end_s: window.1,
        packets_sent: sent.packets.load(Ordering::Relaxed),
        switches_requested: switches.requested.load(Ordering::Relaxed),
        ..Progress::default()
    };
    for r in receivers {
        p.packets_received += r.progress.received.load(Ordering::Relaxed);
        p.gaps += r.progress.gaps.load(Ordering::Relaxed);
        let mut h = r.progress.interval.lock().unwrap();
        interval.add(&*h).expect("same bounds");
        h.reset();
    }
    let dt = p.window_end_s - p.window_start_s;
    if dt > 0.0 {
        p.received_pps =
            (p.packets_received - last.packets_received.min(p.packets_received)) as f64 / dt;
    }
    p.p99_us = (!interval.is_empty()).then(|| interval.value_at_quantile(0.99));
    p
}

//! The load generator: its verifier fed by hand (it must catch each fault it claims to catch), a
//! run against an in-process node with switching, raw mode through a tiny in-test forwarder
//! (clean, and one that damages the stream on purpose), and `corecast demo` as a person runs it.
//! Loopback only; every wait is bounded.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use corecast_engine::rtp::RtpHeader;
use corecast_engine::{Codec, Ssrc};
use corecast_loadgen::stream::SourceStream;
use corecast_loadgen::verify::Outcome;
use corecast_loadgen::{self as loadgen, Config, Observer, Report, StreamShape, Verifier};

fn shape() -> StreamShape {
    StreamShape {
        codec: Codec::Vp8,
        bitrate: 1_000_000,
        fps: 30,
        gop: 10,
        packet_size: 1200,
    }
}

// ---- The verifier, fed by hand ----

/// The packets of `frames` frames of a source, as the source sends them.
fn frames(stream: &mut SourceStream, frames: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for _ in 0..frames {
        for _ in 0..stream.start_frame() {
            let mut buf = Vec::new();
            stream.next_packet(1_000, &mut buf);
            out.push(buf);
        }
    }
    out
}

/// A minimal splicer, as a forwarder does it: one SSRC, continuous sequence numbers and
/// timestamps whatever source a packet came from.
struct Relay {
    seq: u16,
    ts: Option<(u32, u32)>,
    last_out_ts: u32,
    source_ssrc: u32,
}

impl Relay {
    fn new() -> Relay {
        Relay {
            seq: 1000,
            ts: None,
            last_out_ts: 5000,
            source_ssrc: 0,
        }
    }

    fn forward(&mut self, pkt: &[u8]) -> Vec<u8> {
        let h = RtpHeader::parse(pkt).unwrap();
        if h.ssrc.0 != self.source_ssrc {
            // Another source: its first packet continues the output timestamps.
            self.source_ssrc = h.ssrc.0;
            self.ts = Some((h.timestamp.0, self.last_out_ts.wrapping_add(3000)));
        }
        let (in0, out0) = self.ts.unwrap();
        let ts = out0.wrapping_add(h.timestamp.0.wrapping_sub(in0));
        self.last_out_ts = ts;
        let mut out = pkt.to_vec();
        out[2..4].copy_from_slice(&self.seq.to_be_bytes());
        out[4..8].copy_from_slice(&ts.to_be_bytes());
        out[8..12].copy_from_slice(&0x5eed_u32.to_be_bytes());
        self.seq = self.seq.wrapping_add(1);
        out
    }
}

fn feed(v: &mut Verifier, packets: &[Vec<u8>]) {
    for p in packets {
        v.feed(p, 2_000);
    }
}

/// Two sources (0 and 1) of 20 frames each, relayed.
fn two_sources() -> (Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<u64>) {
    let mut a = SourceStream::new(0, Ssrc(1), 100, 0, shape());
    let mut b = SourceStream::new(1, Ssrc(2), 60_000, 1 << 31, shape());
    let pa = frames(&mut a, 20);
    let pb = frames(&mut b, 20);
    let sent = vec![a.packets(), b.packets()];
    (pa, pb, sent)
}

fn judge(outcome: Outcome, sent: u64) -> Report {
    let mut r = Report {
        packets_sent: sent,
        packets_expected: outcome.expected,
        lost: outcome.lost,
        silent_subscribers: u64::from(outcome.silent),
        ..Report::default()
    };
    r.add_counts(&outcome.counts);
    r.judge();
    r
}

#[test]
fn verifier_passes_a_clean_stream_and_counts_a_gap_as_lost() {
    let (pa, _, sent) = two_sources();
    let mut relay = Relay::new();
    let out: Vec<Vec<u8>> = pa.iter().map(|p| relay.forward(p)).collect();

    let mut v = Verifier::new(Codec::Vp8, 2);
    feed(&mut v, &out);
    let o = v.finish(&sent, 0);
    assert_eq!((o.expected, o.lost), (sent[0], 0));
    assert_eq!(o.counts.received, sent[0]);
    let r = judge(o, sent[0]);
    assert!(r.passed, "{:?}", r.failures);

    // One packet missing in the middle, and the last two never arrive (the tail).
    let mut v = Verifier::new(Codec::Vp8, 2);
    let n = out.len();
    feed(&mut v, &out[..10]);
    feed(&mut v, &out[11..n - 2]);
    let o = v.finish(&sent, 0);
    assert_eq!((o.expected, o.lost), (sent[0], 3));
    let r = judge(o, sent[0]);
    assert!(!r.passed);
    assert!(r.failures[0].contains("loss"), "{:?}", r.failures);
}

#[test]
fn verifier_counts_repeats_as_duplicates_and_inversions_as_reordered() {
    let (pa, _, sent) = two_sources();
    let mut relay = Relay::new();
    let out: Vec<Vec<u8>> = pa.iter().map(|p| relay.forward(p)).collect();

    let mut v = Verifier::new(Codec::Vp8, 2);
    feed(&mut v, &out[..5]);
    feed(&mut v, &out[4..5]);
    feed(&mut v, &out[5..]);
    let o = v.finish(&sent, 0);
    assert_eq!((o.counts.duplicates, o.lost), (1, 0));
    let r = judge(o, sent[0]);
    assert_eq!(r.failures, vec!["1 duplicate packets".to_string()]);

    let mut v = Verifier::new(Codec::Vp8, 2);
    feed(&mut v, &out[..5]);
    feed(&mut v, &out[6..7]);
    feed(&mut v, &out[5..6]);
    feed(&mut v, &out[7..]);
    let o = v.finish(&sent, 0);
    assert_eq!((o.counts.reordered, o.counts.duplicates, o.lost), (1, 0, 0));
    // Reordering is reported, not a failure: UDP may reorder.
    assert!(judge(o, sent[0]).passed);
}

#[test]
fn verifier_catches_corrupted_bytes_strays_a_changed_ssrc_and_a_timestamp_going_back() {
    let (pa, _, sent) = two_sources();
    let mut relay = Relay::new();
    let mut out: Vec<Vec<u8>> = pa.iter().map(|p| relay.forward(p)).collect();
    // Corrupt a payload byte well inside one packet, and a trailer byte of another.
    let mid = out[7].len() / 2;
    out[7][mid] ^= 0x20;
    let last = out[9].len() - 12;
    out[9][last] ^= 0x01;
    // The picture ID is rewritten by forwarders: changing it is not a mismatch.
    out[11][14] ^= 0x01;
    let mut v = Verifier::new(Codec::Vp8, 2);
    feed(&mut v, &out);
    let o = v.finish(&sent, 0);
    assert_eq!((o.counts.payload_mismatches, o.lost), (2, 0));
    let r = judge(o, sent[0]);
    assert_eq!(r.failures, vec!["2 payload mismatches".to_string()]);

    // A stray RTP stream aimed at the subscriber's port is foreign, not an SSRC change or loss.
    let mut relay = Relay::new();
    let mut v = Verifier::new(Codec::Vp8, 2);
    let mut stray = corecast_engine::synth::Vp8Stream::new(
        Ssrc(99),
        7,
        0,
        corecast_engine::synth::VideoShape::default(),
    );
    for (i, p) in pa.iter().enumerate() {
        v.feed(&relay.forward(p), 2_000);
        if i % 10 == 0 {
            let mut buf = Vec::new();
            stray.next_packet(&mut buf);
            v.feed(&buf, 2_000);
        }
    }
    let o = v.finish(&sent, 0);
    assert_eq!(o.counts.foreign, pa.len().div_ceil(10) as u64);
    assert_eq!(
        (o.counts.ssrc_changes, o.lost, o.counts.received),
        (0, 0, sent[0])
    );
    let r = judge(o, sent[0]);
    assert_eq!(r.failures.len(), 1, "{:?}", r.failures);
    assert!(r.failures[0].contains("not the load generator's"));

    let mut relay = Relay::new();
    let mut out: Vec<Vec<u8>> = pa.iter().map(|p| relay.forward(p)).collect();
    out[3][8..12].copy_from_slice(&7u32.to_be_bytes());
    let back = u32::from_be_bytes(out[12][4..8].try_into().unwrap()).wrapping_sub(9000);
    out[13][4..8].copy_from_slice(&back.to_be_bytes());
    let mut v = Verifier::new(Codec::Vp8, 2);
    feed(&mut v, &out);
    let c = v.finish(&sent, 0).counts;
    // Packet 13 goes back; packet 14 is ahead of it again.
    assert_eq!((c.ssrc_changes, c.timestamp_regressions), (1, 1));
}

#[test]
fn verifier_accepts_a_switch_on_a_keyframe_and_counts_one_mid_frame() {
    let (pa, pb, sent) = two_sources();
    let key_starts: Vec<usize> = pb
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            let h = RtpHeader::parse(p).unwrap();
            corecast_engine::codec::inspect(Codec::Vp8, h.payload(p))
                .unwrap()
                .is_switch_point()
        })
        .map(|(i, _)| i)
        .collect();
    assert!(key_starts.len() >= 2);

    // A on its first 30 packets, then B from B's second keyframe on.
    let mut relay = Relay::new();
    let mut out: Vec<Vec<u8>> = pa[..30].iter().map(|p| relay.forward(p)).collect();
    out.extend(pb[key_starts[1]..].iter().map(|p| relay.forward(p)));
    let mut v = Verifier::new(Codec::Vp8, 2);
    feed(&mut v, &out);
    let o = v.finish(&sent, 0);
    assert_eq!(o.counts.switches_completed, 1);
    assert_eq!(o.counts.switches_not_on_keyframe, 0);
    assert_eq!(o.lost, 0, "the tail is counted on the last source");
    assert!(judge(o, sent.iter().sum()).passed);

    // The same, but B joined one packet into its keyframe.
    let mut relay = Relay::new();
    let mut out: Vec<Vec<u8>> = pa[..30].iter().map(|p| relay.forward(p)).collect();
    out.extend(pb[key_starts[1] + 1..].iter().map(|p| relay.forward(p)));
    let mut v = Verifier::new(Codec::Vp8, 2);
    feed(&mut v, &out);
    let o = v.finish(&sent, 0);
    assert_eq!(o.counts.switches_completed, 1);
    assert_eq!(o.counts.switches_not_on_keyframe, 1);
    let r = judge(o, sent.iter().sum());
    assert_eq!(r.failures, vec!["1 switches not on a keyframe".to_string()]);

    // A subscriber that starts mid-frame, and one that gets nothing at all.
    let mut relay = Relay::new();
    let out: Vec<Vec<u8>> = pa[1..].iter().map(|p| relay.forward(p)).collect();
    let mut v = Verifier::new(Codec::Vp8, 2);
    feed(&mut v, &out);
    assert_eq!(v.finish(&sent, 0).counts.joins_not_on_keyframe, 1);
    let silent = Verifier::new(Codec::Vp8, 2).finish(&sent, 1);
    assert!(silent.silent);
    assert_eq!((silent.expected, silent.lost), (sent[1], sent[1]));
}

// ---- Against a node ----

/// The runs that carry traffic take turns: run side by side on two cores they starve each
/// other's receivers, and the latency each measures (judged by `--max-p99-ms`) is then the
/// other runs' doing.
fn one_run_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static RUNS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    RUNS.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn loadgen_against_a_node_switches_on_keyframes_without_loss() {
    let _turn = one_run_at_a_time();
    // Away from the default ports, where a stray sender may be aimed at some other node.
    let (node, client) = common::start(&["--rtp-ports", "47000-47499"]);
    let cfg = Config {
        server: node.http_addr().to_string(),
        sources: 2,
        subscribers: 50,
        duration: Some(Duration::from_secs(2)),
        switch_every: Some(Duration::from_millis(700)),
        ..Config::default()
    };
    let r = loadgen::run(&cfg, &mut ()).expect("the run is set up");
    let why = format!("{}\n{}", r.summary(), r.to_json());
    assert!(r.passed, "{why}");
    assert_eq!(r.mode, "api");
    assert!(r.packets_sent > 0 && r.packets_expected > 0, "{why}");
    assert_eq!(
        (r.lost, r.duplicates, r.payload_mismatches),
        (0, 0, 0),
        "{why}"
    );
    assert_eq!(r.switches_not_on_keyframe, 0, "{why}");
    assert_eq!(r.joins_not_on_keyframe, 0, "{why}");
    assert_eq!((r.silent_subscribers, r.foreign_senders), (0, 0), "{why}");
    // Rounds at 0.7 s and 1.4 s of 50 switches each; a round still going when sending ends
    // stops there, so only the first is sure to be whole.
    assert!(r.switches_requested >= 50 && r.switch_errors == 0, "{why}");
    assert!(r.switches_completed > 0, "{why}");
    assert!(
        r.keyframe_requests > 0,
        "the node asks for keyframes on switches: {why}"
    );
    assert_eq!(r.latency_us.samples, r.packets_received, "{why}");
    assert!(
        r.latency_us.p50 > 0 && r.latency_us.max >= r.latency_us.p99,
        "{why}"
    );
    // What the run created is gone.
    assert!(client.sources().unwrap().is_empty());
    assert!(client.subscribers().unwrap().is_empty());
}

/// `corecast loadgen` against `node` with `extra` flags: its exit status and JSON report.
fn loadgen_cli(
    node: &corecast::Node,
    extra: &[&str],
) -> (std::process::ExitStatus, serde_json::Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_corecast"))
        .args([
            "loadgen",
            "--server",
            &node.http_addr().to_string(),
            "--json",
        ])
        .args(["--sources", "1", "--subscribers", "20", "--duration", "1"])
        .args(extra)
        .output()
        .expect("corecast runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status, report)
}

#[test]
fn loadgen_passes_under_its_default_thresholds_and_reports_them() {
    let _turn = one_run_at_a_time();
    let (node, _client) = common::start(&[]);
    let (status, r) = loadgen_cli(&node, &[]);
    assert!(status.success(), "{status}: {r:#}");
    assert_eq!(r["passed"], true, "{r:#}");
    assert_eq!(r["max_p99_ms"], 500.0, "{r:#}");
    assert_eq!(r["max_loss"], 0.001, "{r:#}");
    assert_eq!(r["thresholds_exceeded"], serde_json::json!([]), "{r:#}");
    let p99_ms = r["p99_ms"].as_f64().unwrap();
    assert_eq!(p99_ms, r["latency_us"]["p99"].as_f64().unwrap() / 1000.0);
    assert!(p99_ms > 0.0, "{r:#}");
}

#[test]
fn loadgen_fails_with_a_reason_when_p99_exceeds_its_threshold() {
    let _turn = one_run_at_a_time();
    let (node, _client) = common::start(&[]);
    let (status, r) = loadgen_cli(&node, &["--max-p99-ms", "0"]);
    assert_eq!(status.code(), Some(1), "{r:#}");
    assert_eq!(r["passed"], false, "{r:#}");
    assert_eq!(
        r["thresholds_exceeded"],
        serde_json::json!(["p99"]),
        "{r:#}"
    );
    let failures = r["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "only latency failed: {r:#}");
    let why = failures[0].as_str().unwrap();
    assert!(
        why.contains("p99") && why.contains("--max-p99-ms 0"),
        "{why}"
    );
}

// ---- Raw mode, through an in-test forwarder ----

/// What the in-test forwarder does to the stream.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Faults {
    None,
    /// To subscriber 0: drop the 50th packet, send the 60th twice, flip a byte of the 70th.
    Some,
}

struct Forwarder {
    input: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<u64>,
}

/// A thread copying every datagram from one socket to every destination it is given, from that
/// same socket.
fn forwarder(dests: mpsc::Receiver<Vec<SocketAddr>>, faults: Faults) -> Forwarder {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let input = socket.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let thread = std::thread::spawn(move || {
        let dests = dests
            .recv_timeout(Duration::from_secs(10))
            .expect("the subscribers' addresses");
        let mut buf = [0u8; 2048];
        let mut n = 0u64;
        while !stopping.load(Ordering::Acquire) {
            let Ok(len) = socket.recv(&mut buf) else {
                continue;
            };
            // Only the load generator's packets: a stray sender may be aimed at this port.
            let ours = RtpHeader::parse(&buf[..len])
                .is_ok_and(|h| loadgen::payload::has_magic(h.payload(&buf[..len])));
            if !ours {
                continue;
            }
            n += 1;
            for (j, d) in dests.iter().enumerate() {
                let mut pkt = buf[..len].to_vec();
                let mut copies = 1;
                if faults == Faults::Some && j == 0 {
                    match n {
                        50 => copies = 0,
                        60 => copies = 2,
                        70 => pkt[len / 2] ^= 0x40,
                        _ => {}
                    }
                }
                for _ in 0..copies {
                    socket.send_to(&pkt, d).unwrap();
                }
            }
        }
        n
    });
    Forwarder {
        input,
        stop,
        thread,
    }
}

/// Hands the subscribers' addresses to the forwarder when the run is ready.
struct Ready(Option<mpsc::Sender<Vec<SocketAddr>>>);

impl Observer for Ready {
    fn ready(&mut self, subscribers: &[SocketAddr]) {
        if let Some(tx) = self.0.take() {
            tx.send(subscribers.to_vec()).unwrap();
        }
    }
}

fn raw_run(faults: Faults) -> (Report, u64) {
    let _turn = one_run_at_a_time();
    let (tx, rx) = mpsc::channel();
    let fwd = forwarder(rx, faults);
    let cfg = Config {
        raw_target: Some(fwd.input),
        raw_from: Some(fwd.input),
        subscribers: 20,
        duration: Some(Duration::from_millis(1500)),
        // Any loss fails, so the one packet the damaging forwarder drops does.
        max_loss: 0.0,
        ..Config::default()
    };
    let report = loadgen::run(&cfg, &mut Ready(Some(tx))).expect("the run is set up");
    fwd.stop.store(true, Ordering::Release);
    let forwarded = fwd.thread.join().unwrap();
    (report, forwarded)
}

#[test]
fn raw_mode_through_a_plain_forwarder_loses_nothing() {
    let started = Instant::now();
    let (r, forwarded) = raw_run(Faults::None);
    assert!(r.passed, "{}\n{}", r.summary(), r.to_json());
    assert_eq!(r.mode, "raw");
    assert_eq!(forwarded, r.packets_sent);
    assert_eq!(r.packets_expected, r.packets_sent * 20);
    assert_eq!((r.packets_received, r.lost), (r.packets_expected, 0));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn raw_mode_through_a_damaging_forwarder_fails_and_says_why() {
    let (r, _) = raw_run(Faults::Some);
    assert!(!r.passed);
    assert_eq!(
        (r.lost, r.duplicates, r.payload_mismatches),
        (1, 1, 1),
        "{}",
        r.summary()
    );
    assert_eq!(r.failures.len(), 3, "{:?}", r.failures);
}

// ---- corecast demo ----

#[test]
fn demo_runs_for_its_duration_and_passes() {
    let _turn = one_run_at_a_time();
    let started = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_corecast"))
        .args(["demo", "--duration", "3", "--http", "127.0.0.1:0"])
        .args(["--rtp-ports", "47500-47999"])
        .output()
        .expect("corecast runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("shard"), "the live table: {stdout}");
    // Each refresh says which interval its figures cover, and what each latency measures.
    assert!(
        stdout.contains("s of node uptime (one stats interval)"),
        "{stdout}"
    );
    assert!(stdout.contains("forward p99 µs") && stdout.contains("end-to-end p99"));
    assert!(
        stdout.contains("3 VP8 sources, 300 subscribers in all"),
        "{stdout}"
    );
    assert!(stdout.contains("PASS"), "the summary: {stdout}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

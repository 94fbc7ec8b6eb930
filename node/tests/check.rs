//! `corecast check`, the binary, as an operator runs it: against a node's subscriber while the
//! node switches it between two sources of recorded H.264 (one with parameter sets before every
//! keyframe, one with them only at the start, so the node sends its cached ones at a switch),
//! which must pass; and against crafted broken streams sent straight to it, which must fail with
//! each problem named in the JSON report.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use corecast_engine::codec;
use corecast_engine::rtp::RtpHeader;
use corecast_engine::Codec;
use corecast_signaling::api::{CreateSubscriber, SwitchOutcome};
use corecast_signaling::client::Client;
use serde_json::Value;

/// A running `corecast check`, its stderr read line by line on a thread of its own.
struct Check {
    child: Child,
    addr: SocketAddr,
    /// The packet count of the newest live line.
    live_packets: Arc<AtomicU64>,
    stderr: Arc<Mutex<Vec<String>>>,
    stdout: mpsc::Receiver<String>,
}

impl Check {
    fn start(args: &[&str]) -> Check {
        let mut child = Command::new(env!("CARGO_BIN_EXE_corecast"))
            .arg("check")
            .args(args)
            .arg("--json")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("corecast check starts");
        let mut out = child.stdout.take().unwrap();
        let (out_tx, stdout) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = out.read_to_string(&mut text);
            let _ = out_tx.send(text);
        });
        let live_packets = Arc::new(AtomicU64::new(0));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let (live, lines) = (live_packets.clone(), stderr.clone());
        let err = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = addr_tx.send(rest.split_whitespace().next().unwrap().to_string());
                }
                if let Some(rest) = line.split("  packets ").nth(1) {
                    if let Some(n) = rest.split_whitespace().next().and_then(|n| n.parse().ok()) {
                        live.store(n, Ordering::Relaxed);
                    }
                }
                lines.lock().unwrap().push(line);
            }
        });
        let addr = addr_rx
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|_| panic!("check printed no address: {:?}", stderr.lock()))
            .parse()
            .expect("a socket address");
        Check {
            child,
            addr,
            live_packets,
            stderr,
            stdout,
        }
    }

    /// Wait for it to exit (after `signal`, if given): its status and JSON report.
    fn finish(mut self, signal: Option<libc::c_int>) -> (ExitStatus, Value) {
        if let Some(signal) = signal {
            // SAFETY: kill only sends a signal to the child we spawned.
            assert_eq!(
                unsafe { libc::kill(self.child.id() as libc::pid_t, signal) },
                0
            );
        }
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > DEADLINE {
                let _ = self.child.kill();
                panic!("check did not exit: {:#?}", self.stderr.lock());
            }
            std::thread::yield_now();
        };
        let json = self
            .stdout
            .recv_timeout(DEADLINE)
            .expect("stdout closes when check exits");
        let report = serde_json::from_str(&json).unwrap_or_else(|e| {
            panic!(
                "no JSON report ({e}): {json}\nstderr: {:#?}",
                self.stderr.lock()
            )
        });
        (status, report)
    }
}

/// A recorded stream (`engine/tests/fixtures/<name>.rtp`: 30 frames, 6000 ticks apart, with
/// keyframes at frames 0, 12 and 24) sent frame by frame in a loop, each pass numbered and
/// timed on from the one before, under an SSRC of its own.
struct Replay {
    socket: UdpSocket,
    to: SocketAddr,
    frames: Vec<Vec<Vec<u8>>>,
    /// Send the parameter sets of the first pass only (the recording's later keyframes have
    /// none): every later keyframe then needs the node's cached ones.
    sets_once: bool,
    ssrc: u32,
    next_seq: u16,
    frame: usize,
    pass: u32,
    sent: u64,
}

const FIXTURE_FRAMES: u32 = 30;
const FIXTURE_FRAME_TICKS: u32 = 6000;

impl Replay {
    fn new(name: &str, to: SocketAddr, ssrc: u32, sets_once: bool) -> Replay {
        let path = format!(
            "{}/../engine/tests/fixtures/{name}.rtp",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut rest = &bytes[..];
        let mut frames: Vec<Vec<Vec<u8>>> = Vec::new();
        while let [hi, lo, tail @ ..] = rest {
            let len = usize::from(u16::from_be_bytes([*hi, *lo]));
            let packet = tail[..len].to_vec();
            rest = &tail[len..];
            match frames.last_mut() {
                Some(frame) if frame[0][4..8] == packet[4..8] => frame.push(packet),
                _ => frames.push(vec![packet]),
            }
        }
        assert_eq!(frames.len(), FIXTURE_FRAMES as usize, "{name}: frames");
        Replay {
            socket: UdpSocket::bind("127.0.0.1:0").unwrap(),
            to,
            next_seq: u16::from_be_bytes([frames[0][0][2], frames[0][0][3]]),
            frames,
            sets_once,
            ssrc,
            frame: 0,
            pass: 0,
            sent: 0,
        }
    }

    fn send_frame(&mut self) {
        for packet in &self.frames[self.frame] {
            let info = RtpHeader::parse(packet)
                .ok()
                .and_then(|h| codec::inspect(Codec::H264, h.payload(packet)).ok())
                .expect("the recording is H.264");
            if self.sets_once && self.pass > 0 && info.parameter_sets {
                continue;
            }
            let mut p = packet.clone();
            let seq = self.next_seq;
            self.next_seq = seq.wrapping_add(1);
            let ts = u32::from_be_bytes(p[4..8].try_into().unwrap())
                .wrapping_add(self.pass * FIXTURE_FRAMES * FIXTURE_FRAME_TICKS);
            p[2..4].copy_from_slice(&seq.to_be_bytes());
            p[4..8].copy_from_slice(&ts.to_be_bytes());
            p[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
            self.socket.send_to(&p, self.to).unwrap();
            self.sent += 1;
        }
        self.frame += 1;
        if self.frame == self.frames.len() {
            self.frame = 0;
            self.pass += 1;
        }
    }
}

/// Both sources, a frame each per tick, 60 ticks a second (4 times the recording's pace).
struct Senders {
    replays: [Replay; 2],
    next: Instant,
}

impl Senders {
    const TICK: Duration = Duration::from_micros(16_667);

    /// Send frames until `done` holds; panics with `what` after [`DEADLINE`].
    fn until(&mut self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            while Instant::now() < self.next {
                std::thread::yield_now();
            }
            self.next += Self::TICK;
            self.replays.iter_mut().for_each(Replay::send_frame);
        }
    }
}

fn packets_sent(client: &Client, sub: u32) -> u64 {
    client.subscriber(sub).unwrap().counters.packets_sent
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_subscriber_switched_between_two_h264_sources_passes_the_check() {
    let (_node, client) = start(&["--stats-interval", "50"]);
    let (a, b) = (source(&client, "a", "h264"), source(&client, "b", "h264"));
    let check = Check::start(&[
        "--listen",
        "127.0.0.1:0",
        "--codec",
        "h264",
        "--duration",
        "60",
    ]);
    let sub = client
        .create_subscriber(&CreateSubscriber {
            source: a.id,
            dest: check.addr.to_string(),
        })
        .unwrap();
    let mut senders = Senders {
        replays: [
            Replay::new("h264", ingest_addr(&a), 0xa, false),
            Replay::new("h264-sets-once", ingest_addr(&b), 0xb, true),
        ],
        next: Instant::now(),
    };
    senders.until("the subscriber to receive source a", || {
        packets_sent(&client, sub.id) >= 100
    });
    for to in [b.id, a.id] {
        let switch = client.switch(sub.id, to).unwrap();
        assert_eq!(switch.outcome, SwitchOutcome::Pending);
        senders.until("the switch to complete", || {
            client.subscriber(sub.id).unwrap().source == Some(to)
        });
        let before = packets_sent(&client, sub.id);
        senders.until("the subscriber to receive the new source", || {
            packets_sent(&client, sub.id) >= before + 100
        });
    }
    let sent: Vec<u64> = senders.replays.iter().map(|r| r.sent).collect();
    // Everything sent has been through the node and reached the checker.
    let deadline = Instant::now() + DEADLINE;
    let node_sent = || {
        // The parameter sets the node sends before a keyframe are counted by the source only.
        let sets: u64 = [a.id, b.id]
            .map(|s| client.source(s).unwrap().counters.parameter_sets_sent)
            .iter()
            .sum();
        packets_sent(&client, sub.id) + sets
    };
    loop {
        let received = [a.id, b.id].map(|s| client.source(s).unwrap().counters.packets_received);
        let (node, checker) = (node_sent(), check.live_packets.load(Ordering::Relaxed));
        if received[..] == sent[..] && checker == node {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the checker did not get every packet: sources sent {sent:?} and received \
             {received:?}; the node sent the subscriber {node}, the checker had {checker}; {:#?}",
            check.stderr.lock().unwrap()
        );
        std::thread::yield_now();
    }
    let (status, report) = check.finish(Some(libc::SIGINT));
    let view = client.subscriber(sub.id).unwrap();
    assert_eq!(view.counters.switches, 2);
    assert!(
        client.source(b.id).unwrap().counters.parameter_sets_sent >= 1,
        "the switch to b landed on a keyframe without parameter sets, and the node sent them"
    );
    assert_eq!(report["consistent"], true, "{report:#}");
    assert!(strings(&report["errors"]).is_empty(), "{report:#}");
    assert!(status.success(), "{status:?}: {report:#}");
    assert_eq!(report["received"], node_sent(), "{report:#}");
    assert_eq!(report["started_on_keyframe"], true);
    assert_eq!(report["ssrc"], view.ssrc);
    assert_eq!(report["payload_type"], 102);
    // 100 packets of each of three stretches: more than one 12-frame GOP each.
    assert!(report["keyframes"].as_u64().unwrap() >= 3, "{report:#}");
    assert_eq!(
        report["keyframe_times"].as_array().unwrap().len() as u64,
        report["keyframes"].as_u64().unwrap()
    );
}

/// A VP8 packet: keyframe start, interframe start, or a later packet of a frame.
fn vp8(seq: u16, ts: u32, ssrc: u32, kind: u8, marker: bool) -> Vec<u8> {
    let payload: &[u8] = match kind {
        b'K' => &[
            0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, 0xaa,
        ],
        b'D' => &[0x10, 0x01, 0x00, 0x00, 0xaa],
        _ => &[0x00, 0xaa, 0xbb],
    };
    let mut p = vec![0x80, 96 | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

#[test]
fn a_broken_stream_is_reported_problem_by_problem_over_ipv6() {
    // (seq, ts, ssrc, kind, marker): starts mid-frame, skips seq 65535 and 0 across the wrap,
    // steps a timestamp back, and changes SSRC.
    let packets = [
        (65533, 0, 1, b'-', true),
        (65534, 3000, 1, b'D', true),
        (1, 6000, 1, b'D', true),
        (2, 9000, 1, b'K', true),
        (3, 3000, 1, b'D', true),
        (4, 12000, 1, b'D', true),
        (5, 15000, 2, b'K', true),
        (6, 18000, 2, b'D', true),
    ];
    let check = Check::start(&[
        "--listen",
        "[::1]:0",
        "--codec",
        "vp8",
        "--packets",
        &packets.len().to_string(),
        "--duration",
        "30",
    ]);
    assert!(check.addr.is_ipv6());
    let socket = UdpSocket::bind("[::1]:0").unwrap();
    for (seq, ts, ssrc, kind, marker) in packets {
        socket
            .send_to(&vp8(seq, ts, ssrc, kind, marker), check.addr)
            .unwrap();
    }
    let (status, report) = check.finish(None);
    assert_eq!(status.code(), Some(1), "{report:#}");
    assert_eq!(report["consistent"], false);
    let errors = strings(&report["errors"]);
    for expected in [
        "the SSRC changed 1 time(s)",
        "2 packet(s) lost (1 gap(s) seen)",
        "the timestamp went back 1 time(s)",
        "the stream does not start on a keyframe",
    ] {
        assert!(
            errors.iter().any(|e| e == expected),
            "{expected}: {errors:#?}"
        );
    }
    assert_eq!(errors.len(), 4, "{errors:#?}");
    let events = report["events"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "not_started_on_keyframe",
            "gap",
            "timestamp_regression",
            "ssrc_change"
        ],
        "{report:#}"
    );
    assert_eq!(
        (events[1]["after"].as_u64(), events[1]["missing"].as_u64()),
        (Some(65534), Some(2))
    );
    assert!(
        events[1]["at_s"].as_f64().unwrap() > 0.0,
        "the gap has a time"
    );
    assert_eq!(events[2]["by"], 6000);
    assert_eq!(
        (events[3]["from"].as_u64(), events[3]["to"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(report["received"], 8);
}

#[test]
fn nothing_received_fails_and_a_port_in_use_cannot_be_checked() {
    let check = Check::start(&["--listen", "127.0.0.1:0", "--duration", "0.5"]);
    let (status, report) = check.finish(None);
    assert_eq!(status.code(), Some(1));
    assert_eq!(strings(&report["errors"]), ["no RTP packet arrived"]);

    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_corecast"))
        .args(["check", "--listen", &addr, "--duration", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}

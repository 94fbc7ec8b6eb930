//! Loss repair over a real lossy link. The test makes its own network namespace and veth pair;
//! inside the namespace nftables drops 2 % of the datagrams that reach the receiver's RTP port
//! at random (`numgen random mod 100 < 2`, in the input hook: these kernels have no netem), and
//! a GStreamer receiver there (rtpbin, AVPF, its jitter buffer's retransmission requests on:
//! `scripts/lossy/nack_receiver.py`) asks the node for what it lost with generic NACKs. A real
//! VP8 encoder sends 200 frames to the node on the host side of the pair.
//!
//! With repair (the node's default history), not one frame is missing between the receiver's
//! first and last; without (`--history-ms 0`, the receiver's requests off), frames are lost.
//! The repair rate and the added traffic are printed (BENCHMARKS.md quotes them).
//!
//! Needs root (for the namespace), iproute2, nftables, gst-launch-1.0 and Debian's python3
//! with its GStreamer bindings (python3-gi, gir1.2-gstreamer-1.0); `.ci/run` installs them. Set
//! CORECAST_SKIP_MEDIA_TESTS=1 to skip on a machine without them.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::media::gst_launch;
use common::*;
use corecast_signaling::api::CreateSubscriber;

const RECEIVER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../scripts/lossy/nack_receiver.py"
);
const FRAMES: u32 = 200;

fn tools_present() -> bool {
    let ok = |cmd: &mut Command| {
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let root = unsafe { libc::geteuid() } == 0;
    let have = root
        && ok(Command::new("ip").arg("-V"))
        && ok(Command::new("nft").arg("--version"))
        && ok(Command::new("gst-launch-1.0").arg("--version"))
        && ok(Command::new("/usr/bin/python3").args([
            "-c",
            "import gi; gi.require_version('Gst', '1.0'); from gi.repository import Gst",
        ]));
    if have {
        return true;
    }
    assert!(
        std::env::var_os("CORECAST_SKIP_MEDIA_TESTS").is_some(),
        "the lossy-link test needs root (root: {root}), iproute2, nftables, gst-launch-1.0 and \
         /usr/bin/python3 with python3-gi and gir1.2-gstreamer-1.0 (.ci/run installs them), or \
         set CORECAST_SKIP_MEDIA_TESTS=1"
    );
    eprintln!("skipping: tools missing and CORECAST_SKIP_MEDIA_TESTS is set");
    false
}

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A namespace joined to the host by a veth pair: the host side is `host`, the namespace side
/// `inside`, a /30 of their own. Deleted (with its end of the pair, which takes the other) on
/// drop.
struct Netns {
    name: String,
    host: String,
    inside: String,
}

impl Netns {
    fn new(tag: u32) -> Netns {
        let pid = std::process::id();
        let name = format!("cc{pid}x{tag}");
        // 10.(128..=191).(0..=252).0/30 by process and tag: two runs at once do not collide.
        let (b, c) = (128 + (pid % 64), ((pid / 64) % 63) * 4 + tag);
        let host = format!("10.{b}.{c}.1");
        let inside = format!("10.{b}.{c}.2");
        let (veth_host, veth_ns) = (format!("cch{pid}{tag}"), format!("ccn{pid}{tag}"));
        run(&["ip", "netns", "add", &name]);
        let ns = Netns { name, host, inside };
        run(&[
            "ip", "link", "add", &veth_host, "type", "veth", "peer", "name", &veth_ns,
        ]);
        run(&["ip", "link", "set", &veth_ns, "netns", &ns.name]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{}/30", ns.host),
            "dev",
            &veth_host,
        ]);
        run(&["ip", "link", "set", &veth_host, "up"]);
        ns.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{}/30", ns.inside),
            "dev",
            &veth_ns,
        ]);
        ns.exec(&["ip", "link", "set", &veth_ns, "up"]);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    fn exec(&self, args: &[&str]) {
        let mut all = vec!["ip", "netns", "exec", &self.name];
        all.extend_from_slice(args);
        run(&all);
    }

    /// Drop `percent` % of the UDP datagrams arriving for `port`, at random.
    fn lose(&self, port: u16, percent: u32) {
        self.exec(&["nft", "add", "table", "inet", "lossy"]);
        self.exec(&[
            "nft",
            "add chain inet lossy input { type filter hook input priority 0; }",
        ]);
        self.exec(&[
            "nft",
            &format!(
                "add rule inet lossy input udp dport {port} numgen random mod 100 < {percent} \
                 counter drop"
            ),
        ]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// What one run measured.
#[derive(Debug)]
struct Outcome {
    receiver: serde_json::Value,
    nacked: u64,
    resends_sent: u64,
    resent_bytes: u64,
    forwarded_bytes: u64,
    refused: std::collections::BTreeMap<String, u64>,
}

/// One node, one encoder, one receiver behind the lossy link; `repair` on or off.
fn one_run(tag: u32, repair: bool) -> Outcome {
    let ns = Netns::new(tag);
    let port = 12_000;
    ns.lose(port, 2);
    let mut flags = vec!["--rtp-ip", ns.host.as_str(), "--shards", "1"];
    if !repair {
        flags.extend(["--history-ms", "0"]);
    }
    let (_node, client) = start(&flags);
    let src = source(&client, "cam", "vp8");
    let sub = client
        .create_subscriber(&CreateSubscriber {
            source: src.id,
            dest: format!("{}:{port}", ns.inside),
        })
        .unwrap();
    let mut receiver = Command::new("ip")
        .args(["netns", "exec", &ns.name, "/usr/bin/python3", RECEIVER])
        .args([
            "--port",
            &port.to_string(),
            "--rtcp-to",
            &sub.media_from.to_string(),
        ])
        .args(["--frames", &FRAMES.to_string(), "--timeout", "40"])
        .arg(if repair { "--nack" } else { "--no-nack" })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the receiver starts");
    // It says when it listens.
    let mut err = std::io::BufReader::new(receiver.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut err, &mut line).unwrap();
    assert_eq!(line.trim(), "listening", "the receiver: {line}");
    let _encoder = gst_launch(&format!(
        "videotestsrc is-live=true num-buffers={FRAMES} ! video/x-raw,width=640,height=360,framerate=30/1 \
         ! vp8enc deadline=1 cpu-used=8 keyframe-max-dist=60 target-bitrate=1500000 \
         ! rtpvp8pay picture-id-mode=15-bit ! udpsink host={} port={}",
        src.ingest.ip, src.ingest.port
    ));
    // It stops by itself: all frames, 3 s without one, or its own 40 s timeout.
    until_by(
        Instant::now() + Duration::from_secs(60),
        "the receiver to finish",
        || receiver.try_wait().unwrap().is_some(),
    );
    let out = receiver.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let receiver: serde_json::Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("the receiver's report ({e}): {text}"));
    let stats = client.stats().unwrap();
    let shard = &stats.shards[0];
    let forwarded_bytes = client.subscriber(sub.id).unwrap().counters.bytes_sent;
    Outcome {
        receiver,
        nacked: shard.repair.nacked,
        resends_sent: shard.repair.resends_sent,
        resent_bytes: shard.repair.resent_bytes,
        forwarded_bytes,
        refused: shard.repair.refused.clone(),
    }
}

#[test]
fn nacks_repair_a_lossy_link_for_a_gstreamer_receiver() {
    if !tools_present() {
        return;
    }
    let on = one_run(0, true);
    let off = one_run(1, false);
    eprintln!("repair on:  {on:?}\nrepair off: {off:?}");
    let frames = |o: &Outcome, key: &str| o.receiver[key].as_u64().unwrap();
    // Loss happened in both runs, and hit frames where nothing repaired it.
    assert!(frames(&off, "frames_missed") > 0, "{off:?}");
    assert_eq!((off.nacked, off.resends_sent), (0, 0), "{off:?}");
    // Repaired: every frame between the first and the last came, asked for and resent.
    assert_eq!(frames(&on, "frames_missed"), 0, "{on:?}");
    assert!(
        frames(&on, "frames_depayloaded") >= u64::from(FRAMES) - 5,
        "{on:?}"
    );
    assert!(on.nacked > 0 && on.resends_sent > 0, "{on:?}");
    assert_eq!(frames(&on, "warnings"), 0, "{on:?}");
    eprintln!(
        "repair: {} of {} NACKed numbers resent ({:.0} %; refused: {:?}), {} bytes resent = \
         {:.2} % of the {} forwarded; without repair {} of {} frames missed",
        on.resends_sent,
        on.nacked,
        100.0 * on.resends_sent as f64 / on.nacked as f64,
        on.refused,
        on.resent_bytes,
        100.0 * on.resent_bytes as f64 / on.forwarded_bytes as f64,
        on.forwarded_bytes,
        frames(&off, "frames_missed"),
        FRAMES
    );
}

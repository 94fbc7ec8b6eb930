//! Child processes the media tests start (GStreamer senders, ffmpeg decoding a subscriber, a
//! browser's driver): killed and reaped when dropped, so a failing test leaves none running.

use std::io::Read;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::until;

/// A child process, killed and waited for on drop.
pub struct Reaped(pub Child);

impl Reaped {
    pub fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// Wait for it to exit by itself, with what it wrote to its piped stdout and stderr (read
    /// one after the other: for a child that writes little to stderr).
    pub fn output(mut self) -> std::process::Output {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        if let Some(mut out) = self.0.stdout.take() {
            let _ = out.read_to_end(&mut stdout);
        }
        if let Some(mut err) = self.0.stderr.take() {
            let _ = err.read_to_end(&mut stderr);
        }
        let status = self.0.wait().expect("the child is waited for");
        std::process::Output {
            status,
            stdout,
            stderr,
        }
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The repository's root (scripts live there).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A live GStreamer sender of `what` (a pipeline up to its RTP payloader) to 127.0.0.1:`port`.
pub fn gst(what: &str, port: u16) -> Reaped {
    gst_launch(&format!("{what} ! udpsink host=127.0.0.1 port={port}"))
}

/// A live GStreamer sender of `what` (a pipeline up to its RTP payloader) that honours keyframe
/// requests: the stream goes through an `rtpbin` session, whose RTP and RTCP (sender reports)
/// go to 127.0.0.1:`port`, and whose RTCP input listens on 127.0.0.1:`feedback`. A PLI or FIR
/// arriving there for the stream's SSRC makes the session push a GstForceKeyUnit event up to
/// the encoder, which makes the next frame a keyframe (about 50 ms here); a plain `udpsink`
/// pipeline has nothing that reads RTCP. Name `feedback` as the source's `feedback` address.
pub fn gst_answering_pli(what: &str, port: u16, feedback: u16) -> Reaped {
    let pipeline = format!(
        "rtpbin name=session {what} ! session.send_rtp_sink_0 \
         session.send_rtp_src_0 ! udpsink host=127.0.0.1 port={port} \
         session.send_rtcp_src_0 ! udpsink host=127.0.0.1 port={port} sync=false async=false \
         udpsrc address=127.0.0.1 port={feedback} ! session.recv_rtcp_sink_0"
    );
    gst_launch(&pipeline)
}

/// A UDP port on 127.0.0.1 that was free a moment ago (the kernel's choice), for a child
/// process to bind.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("an ephemeral UDP port")
        .port()
}

/// Run a GStreamer pipeline description until the returned handle is dropped.
pub fn gst_launch(pipeline: &str) -> Reaped {
    Reaped(
        Command::new("gst-launch-1.0")
            .arg("-q")
            .args(pipeline.split_whitespace())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gst-launch-1.0 starts"),
    )
}

/// A free even port whose odd neighbour (RTCP) is free too. Taken from 10000-19999: below the
/// kernel's ephemeral ports (which any socket on the machine may be given between our check and
/// ffmpeg's bind) and the test nodes' ingest ranges; never one handed out before.
pub fn free_port_pair() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let start = (std::process::id() as u16).wrapping_mul(97) % 5000;
    for i in 0..5000u16 {
        let port = 10_000 + 2 * ((start + i) % 5000);
        if given.contains(&port) {
            continue;
        }
        if UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && UdpSocket::bind(("127.0.0.1", port + 1)).is_ok()
        {
            given.push(port);
            return port;
        }
    }
    panic!("no free port pair in 10000-19999");
}

/// Whether some socket is bound to UDP `port`, read from the kernel's table. Probing by binding
/// the port ourselves would, for an instant, take it from the process about to bind it.
pub fn udp_port_bound(port: u16) -> bool {
    let needle = format!(":{port:04X} ");
    ["/proc/net/udp", "/proc/net/udp6"].iter().any(|table| {
        std::fs::read_to_string(table).is_ok_and(|t| {
            t.lines().skip(1).any(|line| {
                line.split_whitespace()
                    .nth(1)
                    .is_some_and(|local| format!("{local} ").ends_with(&needle))
            })
        })
    })
}

/// ffmpeg decoding the subscriber's stream described by an SDP, discarding the pictures.
pub struct Decoder {
    child: Reaped,
    progress: std::path::PathBuf,
    dir: std::path::PathBuf,
}

impl Decoder {
    /// ffmpeg on `sdp` (a subscriber's, from the node), listening on `port` (the SDP's) before
    /// this returns.
    pub fn start(sdp: &str, port: u16, name: &str) -> Decoder {
        Decoder::start_with(sdp, port, name, &[])
    }

    /// [`Decoder::start`] with output options of the caller's (before the output).
    pub fn start_with(sdp: &str, port: u16, name: &str, output: &[&str]) -> Decoder {
        assert!(
            sdp.contains(&format!("\r\nm=video {port} "))
                || sdp.contains(&format!("\r\nm=audio {port} ")),
            "the SDP is for port {port}:\n{sdp}"
        );
        let dir =
            std::env::temp_dir().join(format!("corecast-media-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sdp_path = dir.join("sub.sdp");
        std::fs::write(&sdp_path, sdp).unwrap();
        let progress = dir.join("progress.txt");
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel"])
            // Set CORECAST_FFMPEG_LOGLEVEL=verbose to see more when a test fails.
            .arg(std::env::var("CORECAST_FFMPEG_LOGLEVEL").unwrap_or_else(|_| "warning".into()))
            .args(["-protocol_whitelist", "file,udp,rtp", "-i"])
            .arg(&sdp_path)
            .args(output)
            .args(["-f", "null", "-", "-progress"])
            .arg(&progress)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ffmpeg starts");
        let mut child = Reaped(child);
        // Media sent before ffmpeg listens would be lost (its first keyframe included).
        until("ffmpeg to listen", || {
            if let Ok(Some(status)) = child.0.try_wait() {
                let mut log = String::new();
                let _ = child
                    .0
                    .stderr
                    .take()
                    .map(|mut e| e.read_to_string(&mut log));
                panic!("ffmpeg exited ({status}) before listening:\n{log}");
            }
            udp_port_bound(port)
        });
        Decoder {
            child,
            progress,
            dir,
        }
    }

    /// Stop it as a person would (SIGINT), and return what it said and the last progress values.
    pub fn finish(mut self) -> (Vec<String>, u64, u64) {
        // SAFETY: kill only signals the child we spawned.
        unsafe { libc::kill(self.child.0.id() as libc::pid_t, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.0.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "ffmpeg did not stop");
            std::thread::yield_now();
        }
        let mut log = String::new();
        self.child
            .0
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut log)
            .unwrap();
        let lines = log
            .lines()
            .map(str::trim)
            .filter(|l| {
                !l.is_empty()
                    && !l.contains("Exiting normally")
                    && !l.contains("received signal")
                    // A notice about ffmpeg itself, printed once at start, not about the stream.
                    && !l.contains("RTP/VP9 support is still experimental")
            })
            .map(str::to_string)
            .collect();
        let progress = std::fs::read_to_string(&self.progress).unwrap_or_default();
        let last = |key: &str| {
            progress
                .lines()
                .filter_map(|l| l.strip_prefix(key))
                .filter_map(|v| v.trim().parse::<u64>().ok())
                .next_back()
                .unwrap_or(0)
        };
        let (frames, out_time_us) = (last("frame="), last("out_time_us="));
        let _ = std::fs::remove_dir_all(&self.dir);
        (lines, frames, out_time_us)
    }
}

/// gst-launch-1.0 and ffmpeg are here. Without them a media test panics saying how to install
/// them, unless CORECAST_SKIP_MEDIA_TESTS is set: then it says it skips, and this is false.
pub fn gst_and_ffmpeg_present() -> bool {
    let have = |tool: &str| Command::new(tool).arg("-version").output().is_ok();
    if have("gst-launch-1.0") && have("ffmpeg") {
        return true;
    }
    if std::env::var_os("CORECAST_SKIP_MEDIA_TESTS").is_some() {
        eprintln!(
            "skipping: gst-launch-1.0 or ffmpeg missing and CORECAST_SKIP_MEDIA_TESTS is set"
        );
        return false;
    }
    panic!(
        "gst-launch-1.0 and ffmpeg are needed: apt-get install gstreamer1.0-tools \
         gstreamer1.0-plugins-{{base,good,bad,ugly}} gstreamer1.0-libav ffmpeg (as .ci/run does), \
         or set CORECAST_SKIP_MEDIA_TESTS=1"
    );
}

//! Child processes the media tests start (GStreamer senders, a browser's driver): killed and
//! reaped when dropped, so a failing test leaves none running.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A child process, killed and waited for on drop.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The repository's root (scripts live there).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A live GStreamer sender of `what` (a pipeline up to its RTP payloader) to 127.0.0.1:`port`.
pub fn gst(what: &str, port: u16) -> Reaped {
    let pipeline = format!("{what} ! udpsink host=127.0.0.1 port={port}");
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

/// A UDP port on 127.0.0.1 that was free a moment ago (the kernel's choice), for a child
/// process to bind.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("an ephemeral UDP port")
        .port()
}

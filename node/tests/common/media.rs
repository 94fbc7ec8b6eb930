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

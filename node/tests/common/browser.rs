//! Headless Chromium driven by scripts/browser/watch.mjs (playwright-core): the tools the browser
//! tests need, and the page's report.

use std::path::Path;
use std::process::Command;

use super::media::{repo, Reaped};

pub fn tools_present() -> bool {
    // Every element the senders use, so a missing plugin says so here rather than as a source
    // that never receives.
    let gst = [
        "vp8enc",
        "x264enc",
        "opusenc",
        "rtpvp8pay",
        "rtph264pay",
        "rtpopuspay",
        "rtpbin",
    ]
    .iter()
    .all(|element| {
        Command::new("gst-inspect-1.0")
            .arg(element)
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let chromium = Path::new("/usr/bin/chromium").exists();
    let playwright = repo()
        .join("scripts/browser/node_modules/playwright-core")
        .exists();
    if gst && chromium && playwright {
        return true;
    }
    if std::env::var_os("CORECAST_SKIP_BROWSER_TESTS").is_some() {
        eprintln!("skipping: GStreamer's elements, chromium or playwright-core missing");
        return false;
    }
    panic!(
        "the browser test needs GStreamer with vp8enc, x264enc, opusenc and rtpbin ({gst}), \
         /usr/bin/chromium ({chromium}) and playwright-core in scripts/browser ({playwright}): \
         apt-get install chromium gstreamer1.0-tools gstreamer1.0-plugins-{{base,good,ugly}}, \
         then `npm ci` in scripts/browser (as .ci/run does), or set \
         CORECAST_SKIP_BROWSER_TESTS=1"
    );
}

/// Start watch.mjs on `url` for `seconds`, saving its screenshot under `out`; inside network
/// namespace `netns` when given (`ip netns exec`).
pub fn watch(url: &str, seconds: u32, out: &Path, netns: Option<&str>) -> Reaped {
    let script = repo().join("scripts/browser/watch.mjs");
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "node"]);
            c
        }
        None => Command::new("node"),
    };
    cmd.arg(script)
        .arg(url)
        .arg(seconds.to_string())
        .arg(out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    Reaped(cmd.spawn().expect("node runs scripts/browser/watch.mjs"))
}

/// Wait for the page to close; its exit status and report (panics, with what it printed, if it
/// printed none).
pub fn watch_report(page: Reaped) -> (std::process::ExitStatus, serde_json::Value) {
    let run = page.output();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let report = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "watch.mjs printed no report ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&run.stderr)
        )
    });
    (run.status, report)
}

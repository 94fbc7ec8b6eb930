//! `corecast stats --watch`: the stats tables redrawn in place on the terminal's alternate
//! screen, which is given back on Ctrl-C or when the node stops answering.

use std::io::Write;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use super::print_stats;
use crate::api::StatsView;
use crate::client::ClientError;

/// Enter the terminal's alternate screen (the scrollback stays as it was) and hide the cursor.
const ENTER_SCREEN: &str = "\x1b[?1049h\x1b[?25l";
/// Back to the normal screen, cursor shown.
const LEAVE_SCREEN: &str = "\x1b[?25h\x1b[?1049l";
/// Cursor to the top left; each frame overwrites the last from there.
const HOME: &str = "\x1b[H";
/// Erase the rest of the line, and (at the end of a frame) everything below.
const CLEAR_LINE_END: &str = "\x1b[K";
const CLEAR_SCREEN_END: &str = "\x1b[J";

/// Redraws the tables in place on the alternate screen every `interval`, until `stop` fires
/// (Ctrl-C) or a request fails; either way the normal screen comes back, with the last tables
/// printed on it so they stay readable.
pub(super) fn watch_stats(
    mut fetch: impl FnMut() -> Result<StatsView, ClientError>,
    interval: Duration,
    stop: &Receiver<()>,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    write!(out, "{ENTER_SCREEN}").map_err(ClientError::Output)?;
    let mut last = None;
    let result = loop {
        let stats = match fetch() {
            Ok(stats) => stats,
            Err(e) => break Err(e),
        };
        let mut frame = Vec::new();
        if let Err(e) = print_stats(&mut frame, &stats) {
            break Err(e);
        }
        let written = write_frame(out, &frame);
        last = Some(frame);
        if let Err(e) = written {
            break Err(ClientError::Output(e));
        }
        match stop.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => continue,
            Ok(()) | Err(RecvTimeoutError::Disconnected) => break Ok(()),
        }
    };
    write!(out, "{LEAVE_SCREEN}").map_err(ClientError::Output)?;
    if let Some(frame) = last {
        out.write_all(&frame).map_err(ClientError::Output)?;
    }
    out.flush().map_err(ClientError::Output)?;
    result
}

/// One refresh: from the top left, each line then the rest of it erased (a shorter value leaves
/// no digits behind), then everything below (a table that lost rows).
fn write_frame(out: &mut dyn Write, frame: &[u8]) -> std::io::Result<()> {
    let text = String::from_utf8_lossy(frame);
    let mut screen = String::from(HOME);
    for line in text.lines() {
        screen.push_str(line);
        screen.push_str(CLEAR_LINE_END);
        screen.push('\n');
    }
    screen.push_str(CLEAR_SCREEN_END);
    out.write_all(screen.as_bytes())?;
    out.flush()
}

/// A message on each SIGINT or SIGTERM, so `--watch` can restore the screen before it exits.
pub(super) fn interrupts() -> Result<Receiver<()>, ClientError> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map_err(|e| {
        ClientError::Output(std::io::Error::new(
            e.kind(),
            format!("cannot catch Ctrl-C to restore the screen after --watch: {e}"),
        ))
    })?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for _ in signals.forever() {
            if tx.send(()).is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_redraws_in_place_and_restores_the_screen_when_stopped() {
        let (stop, stopped) = std::sync::mpsc::channel();
        let mut fetches = 0;
        let mut out = Vec::new();
        let fetch = || {
            fetches += 1;
            if fetches == 3 {
                stop.send(()).unwrap(); // Ctrl-C during the third refresh
            }
            let mut stats = StatsView::default();
            stats.node.sources = fetches;
            Ok(stats)
        };
        watch_stats(fetch, Duration::from_millis(1), &stopped, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(ENTER_SCREEN), "{text:?}");
        assert_eq!(text.matches(HOME).count(), 3, "{text:?}");
        assert_eq!(text.matches(CLEAR_SCREEN_END).count(), 3, "{text:?}");
        assert!(
            !text.contains("\x1b[2J"),
            "a full clear pushes the screen into the scrollback: {text:?}"
        );
        // Back on the normal screen, the last tables stay readable.
        let (_, after) = text
            .split_once(LEAVE_SCREEN)
            .expect("the screen is restored");
        assert!(after.starts_with("uptime 0.0 s, 3 sources"), "{after:?}");
        assert!(!after.contains('\x1b'), "{after:?}");
    }

    #[test]
    fn watch_restores_the_screen_when_the_node_goes_away() {
        let (_stop, stopped) = std::sync::mpsc::channel();
        let mut out = Vec::new();
        let fetch = || {
            Err(ClientError::Decode {
                url: "http://node/v1/stats".into(),
                message: "gone".into(),
            })
        };
        let err = watch_stats(fetch, Duration::from_millis(1), &stopped, &mut out).unwrap_err();
        assert_eq!(err.code(), "bad_response");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("{ENTER_SCREEN}{LEAVE_SCREEN}")
        );
    }
}

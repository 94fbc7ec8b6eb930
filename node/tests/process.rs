//! The `corecast` binary as a person runs it: `serve` prints its configuration, serves the API,
//! and stops cleanly (exit 0, within 2 s) on SIGTERM and SIGINT; bad flags are refused clearly,
//! `--help` is an answer (stdout, exit 0), and logs written to a pipe are plain text.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use corecast_signaling::client::Client;

fn serve(extra: &[&str]) -> (Child, Vec<String>, String) {
    serve_logging_to(extra, Stdio::null())
}

/// `serve` with its logs (stderr) going to `stderr`; returns the child, the lines it printed on
/// stdout before the control API's address, and that address.
fn serve_logging_to(extra: &[&str], stderr: Stdio) -> (Child, Vec<String>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corecast"))
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--no-pin",
            "--shards",
            "2",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("corecast starts");
    let mut lines = Vec::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let addr = loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "serve exited early: {lines:?}"
        );
        if let Some(rest) = line.split("control API on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
        lines.push(line);
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in reader.lines() {});
    (child, lines, addr)
}

fn stop_within(
    child: &mut Child,
    signal: libc::c_int,
    limit: Duration,
) -> std::process::ExitStatus {
    // SAFETY: kill only sends a signal to the child we spawned.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
    exit_within(child, limit)
}

/// The child's exit status, once it exits; kills it and panics if it has not within `limit`.
fn exit_within(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("corecast did not exit within {limit:?}");
        }
        std::thread::yield_now();
    }
}

/// Reads `pipe` to its end on a thread of its own, so a wait for it can be bounded even if it
/// never closes.
fn read_on_a_thread(mut pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    rx
}

#[test]
fn serve_prints_its_configuration_and_stops_cleanly_on_sigterm() {
    let (mut child, lines, addr) = serve(&["--pli-interval", "250"]);
    let text = lines.join("");
    assert!(text.contains("pli-interval    = 250 ms"), "{text}");
    assert!(text.contains("rtp-ports       = 40000-40999"), "{text}");
    let client = Client::new(&addr, None);
    client.health().expect("the API answers");
    let status = stop_within(&mut child, libc::SIGTERM, Duration::from_secs(2));
    assert!(status.success(), "{status:?}");
}

#[test]
fn sigint_stops_it_too() {
    let (mut child, _, _) = serve(&[]);
    let status = stop_within(&mut child, libc::SIGINT, Duration::from_secs(2));
    assert!(status.success(), "{status:?}");
}

#[test]
fn logs_to_a_pipe_have_no_colour_and_name_the_signal_and_format_as_written() {
    let (mut child, lines, _) = serve_logging_to(&[], Stdio::piped());
    let text = lines.join("");
    assert!(text.contains("log-format      = text\n"), "{text}");
    let stderr = read_on_a_thread(child.stderr.take().unwrap());
    let status = stop_within(&mut child, libc::SIGINT, Duration::from_secs(2));
    assert!(status.success(), "{status:?}");
    let logs = stderr
        .recv_timeout(Duration::from_secs(10))
        .expect("stderr closes when corecast exits");
    assert!(logs.contains("stopping"), "{logs}");
    assert!(logs.contains("signal=\"SIGINT\""), "{logs}");
    assert!(
        !logs.contains('\x1b'),
        "colour codes in logs written to a pipe: {logs:?}"
    );
}

#[test]
fn serve_help_goes_to_stdout_and_exits_0() {
    let out = Command::new(env!("CARGO_BIN_EXE_corecast"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--log-format <LOG_FORMAT>"), "{help}");
    assert!(
        help.contains("Log lines as plain text or as JSON"),
        "{help}"
    );
    assert!(out.stderr.is_empty(), "{out:?}");
}

#[test]
fn bad_flags_are_refused_with_a_reason_and_exit_status_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_corecast"))
        .args(["serve", "--rtp-ports", "9-1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty"));
}

#[test]
fn pinning_to_a_core_the_process_cannot_use_fails_loudly() {
    let out = Command::new(env!("CARGO_BIN_EXE_corecast"))
        .args(["serve", "--http", "127.0.0.1:0", "--cores", "4000"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("core 4000"));
}

#[test]
fn an_http_address_in_use_fails_loudly_and_promptly() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_corecast"))
        .args(["serve", "--http", &addr, "--no-pin", "--shards", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("corecast starts");
    let rx = read_on_a_thread(child.stderr.take().unwrap());
    let limit = Duration::from_secs(10);
    let status = exit_within(&mut child, limit);
    assert_eq!(status.code(), Some(1), "{status:?}");
    let stderr = rx
        .recv_timeout(limit)
        .expect("stderr closes when corecast exits");
    assert!(
        stderr.contains(&format!("cannot serve the HTTP API on {addr}")),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches(&addr).count(),
        1,
        "each layer of the error adds only what is new: {stderr}"
    );
}

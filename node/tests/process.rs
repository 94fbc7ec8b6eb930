//! The `corecast` binary as a person runs it: `serve` prints its configuration, serves the API,
//! and stops cleanly (exit 0, within 2 s) on SIGTERM and SIGINT; bad flags are refused clearly.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use corecast_signaling::client::Client;

fn serve(extra: &[&str]) -> (Child, Vec<String>, String) {
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
        .stderr(Stdio::null())
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
    // Read stderr on a thread of its own, so the wait below is bounded even if it never closes.
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        let _ = tx.send(text);
    });
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
}

//! Start-up that fails part-way, after some of the node's threads are running: `Node::start`
//! returns, within a bounded time, an error that names what failed, and leaves none of the
//! node's threads behind.
//!
//! A test binary of its own, with its tests run one at a time, because they count this process's
//! `corecast-*` threads and another test's node would be counted too.

use std::io;
use std::net::TcpListener;
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use corecast::config::{parse_serve, ServeArgs};
use corecast::node::{threads_running, threads_started, Placement};
use corecast::Node;

/// Start-up takes well under a second; this is only there to turn a hang into a failure.
const START_LIMIT: Duration = Duration::from_secs(10);

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn args(argv: &[&str]) -> ServeArgs {
    parse_serve(&argv.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("valid flags")
}

/// Runs `Node::start_placed` on a thread of its own, so that a start-up that hangs fails the test
/// instead of hanging it, and returns its error.
fn start_error(args: ServeArgs, placement: Placement) -> String {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let result = Node::start_placed(&args, placement).map_err(|e| e.to_string());
        // The node, if it started, is dropped here (stopped and joined).
        let _ = tx.send(result.map(|_| ()));
    });
    match rx.recv_timeout(START_LIMIT) {
        Ok(Ok(())) => panic!("the node started; it should have failed"),
        Ok(Err(e)) => e,
        Err(_) => panic!("Node::start did not return within {START_LIMIT:?}"),
    }
}

/// The names of this process's threads that the node starts (`corecast-shard-0`, truncated by
/// the kernel to 15 bytes, and the like).
fn corecast_threads() -> Vec<String> {
    let mut names = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let comm = task.expect("task entry").path().join("comm");
        // A thread that ended since the directory was read has no comm left to read.
        if let Ok(name) = std::fs::read_to_string(comm) {
            let name = name.trim_end().to_string();
            if name.starts_with("corecast-") {
                names.push(name);
            }
        }
    }
    names
}

/// A joined thread can stay listed for a moment while the kernel reaps it; a leaked one stays.
fn assert_no_node_threads() {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left = corecast_threads();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "threads still running after start-up failed: {left:?}"
        );
        std::thread::yield_now();
    }
}

fn refuse_core_5(core: usize) -> io::Result<()> {
    if core == 5 {
        Err(io::Error::other("refused by the test"))
    } else {
        Ok(())
    }
}

#[test]
fn a_shard_that_cannot_be_pinned_fails_start_up_and_stops_every_thread() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(corecast_threads(), Vec::<String>::new());
    // Three shards; the second one's core refuses it. The stand-in pins nothing, so the cores
    // need not exist.
    let placement = Placement {
        cores: vec![Some(7), Some(5), Some(3)],
        pin: refuse_core_5,
    };
    let error = start_error(args(&["--http", "127.0.0.1:0", "--shards", "3"]), placement);
    assert!(
        error.contains("shard 1") && error.contains("core 5"),
        "{error}"
    );
    assert!(error.contains("refused by the test"), "{error}");
    assert_no_node_threads();
}

fn die_on_core_5(core: usize) -> io::Result<()> {
    assert_ne!(core, 5, "the test's pinning dies on core 5");
    Ok(())
}

#[test]
fn a_shard_thread_that_dies_while_pinning_fails_start_up_and_stops_every_thread() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(corecast_threads(), Vec::<String>::new());
    let placement = Placement {
        cores: vec![Some(7), Some(5), Some(3)],
        pin: die_on_core_5,
    };
    let error = start_error(args(&["--http", "127.0.0.1:0", "--shards", "3"]), placement);
    assert!(error.contains("shard 1"), "{error}");
    assert_no_node_threads();
}

#[test]
fn an_http_address_in_use_fails_start_up_and_stops_every_thread() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(corecast_threads(), Vec::<String>::new());
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = std::env::temp_dir().join(format!("corecast-startup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let events = dir.join("events.jsonl");
    let events = events.to_str().unwrap();
    // Every kind of thread is running when the HTTP API is bound last: shards, ingest,
    // telemetry, control, and an event handler's worker.
    let args = args(&[
        "--http",
        &addr,
        "--no-pin",
        "--shards",
        "2",
        "--events-jsonl",
        events,
    ]);
    let placement = Placement::choose(&args).unwrap();
    let error = start_error(args, placement);
    assert!(error.contains(&addr), "{error}");
    assert_no_node_threads();
    // A node that never reported node.started does not report that it is stopping.
    let written = std::fs::read_to_string(events).unwrap();
    assert!(!written.contains("node."), "{written}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failed_start_up_has_joined_every_thread_it_started_by_the_time_it_returns() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(threads_running(), 0);
    let before = threads_started();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let args = args(&["--http", &addr, "--no-pin", "--shards", "2"]);
    let placement = Placement::choose(&args).unwrap();
    let error = start_error(args, placement);
    assert!(error.contains(&addr), "{error}");
    // The HTTP API is bound last: two shards, ingest, telemetry, control and the DTLS
    // handshake thread had started...
    assert_eq!(threads_started() - before, 6);
    // ...and each was joined before start-up returned, so there is nothing to wait for here.
    assert_eq!(threads_running(), 0);

    // A node that starts runs them all until it is dropped.
    drop(taken);
    let args = self::args(&["--http", "127.0.0.1:0", "--no-pin", "--shards", "2"]);
    let node = Node::start(&args).expect("the node starts");
    // The same six (the HTTP server runs on a thread of its own, outside these counts).
    assert_eq!(threads_running(), 6);
    drop(node);
    assert_eq!(threads_running(), 0);
}

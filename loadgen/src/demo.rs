//! `corecast demo`: a node and the load generator in one process, with a live table, so a
//! newcomer sees corecast forward, switch and verify within a minute.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use corecast_signaling::api::StatsView;
use corecast_signaling::client::Client;

use corecast_udp::PortRange;

use super::cli::stop_on_signals;
use super::{run, Config, Observer, Progress, Stop};

/// Flags of `corecast demo`.
#[derive(Args, Clone, Debug, PartialEq)]
pub struct DemoArgs {
    /// Address of the node's HTTP control API (use 127.0.0.1:0 for any free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// Ingest ports of the demo's node. Not the node's usual 40000-40999, so that a stray
    /// sender aimed at a node there is never latched by the demo's sources.
    #[arg(long, default_value = "46000-46999")]
    pub rtp_ports: PortRange,
    /// Seconds to run (default: until Ctrl-C).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Pin shard threads to cores.
    #[arg(long)]
    pub pin: bool,
    /// Shards (default: one per available core).
    #[arg(long)]
    pub shards: Option<usize>,
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub sources: u32,
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=60_000))]
    pub subscribers: u32,
    /// Seconds between switches of every subscriber to the next source (0: never).
    #[arg(long, default_value_t = 5.0)]
    pub switch_every: f64,
}

/// What the demo needs of the node it runs in its own process. The `corecast` binary provides it
/// (this crate cannot depend on the node library: the binary, which has the node, depends on
/// this crate).
pub trait DemoNode: Sized {
    /// `corecast serve`'s settings, as parsed from its flags.
    type Settings;
    /// Read `corecast serve` flags, as `corecast serve` would.
    fn parse_serve(argv: &[String]) -> Result<Self::Settings, String>;
    /// Start a node with `settings`; it runs until [`DemoNode::shutdown`].
    fn start(settings: &Self::Settings) -> Result<Self, String>;
    /// Where its HTTP control API listens.
    fn http_addr(&self) -> SocketAddr;
    /// When it started: its stats intervals count from here.
    fn started(&self) -> Instant;
    /// How many shards it runs.
    fn shards(&self) -> usize;
    /// Stop every thread and wait for them.
    fn shutdown(self);
}

/// How long a refresh waits for the node's stats to cover the load generator's window: the
/// node's threads snapshot at the same boundary, and telemetry folds their snapshots in within
/// a tenth of a second.
const NODE_WAIT: Duration = Duration::from_millis(600);
/// Windows whose ends are this close count as the same (a thread snapshots at its first turn
/// after the boundary).
const SAME_WINDOW_S: f64 = 0.05;

/// The live table: the node's own view (`GET /v1/stats`) next to what the load generator saw,
/// every figure of one refresh over the same stats interval.
struct Table {
    client: Client,
    tty: bool,
    lines: usize,
}

impl Table {
    /// The node's stats once every shard and source covers the window ending at `end_s`, or
    /// the latest after [`NODE_WAIT`].
    fn node_stats(&self, end_s: f64) -> Option<StatsView> {
        let deadline = Instant::now() + NODE_WAIT;
        loop {
            let stats = self.client.stats().ok();
            let caught_up = stats.as_ref().is_some_and(|s| {
                let ends = s.shards.iter().map(|sh| sh.interval_end_s);
                let ends = ends.chain(s.sources.iter().map(|src| src.counters.interval_end_s));
                ends.into_iter()
                    .all(|e| e.is_some_and(|e| e >= end_s - SAME_WINDOW_S))
            });
            if caught_up || Instant::now() >= deadline {
                return stats;
            }
            // Polling an HTTP API: a short pause between calls keeps it cheap.
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn window_label(start: f64, end: f64) -> String {
    format!("{start:.1}–{end:.1} s")
}

/// "" when `start..end` is the load generator's window, else the node's own window, so a figure
/// that covers other time says so.
fn other_window(p: &Progress, start: Option<f64>, end: Option<f64>) -> String {
    match (start, end) {
        (Some(s), Some(e))
            if (s - p.window_start_s).abs() < SAME_WINDOW_S
                && (e - p.window_end_s).abs() < SAME_WINDOW_S =>
        {
            String::new()
        }
        (Some(s), Some(e)) => format!("  (over {})", window_label(s, e)),
        _ => "  (no interval yet)".to_string(),
    }
}

/// One refresh of the table.
fn render(p: &Progress, stats: Option<&StatsView>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "after {:.0} s; per-second figures and p99s over {} of node uptime (one stats interval):",
        p.elapsed_s,
        window_label(p.window_start_s, p.window_end_s)
    );
    match stats {
        Some(stats) => {
            let _ = writeln!(
                s,
                "{:<28} {:>13} {:>12} {:>13}",
                "source", "packets/s in", "subscribers", "copies due/s"
            );
            for src in &stats.sources {
                let c = &src.counters;
                let _ = writeln!(
                    s,
                    "{:<28} {:>13.0} {:>12} {:>13.0}{}",
                    src.name,
                    c.packets_per_second,
                    src.subscribers,
                    c.packets_per_second * src.subscribers as f64,
                    other_window(p, c.interval_start_s, c.interval_end_s)
                );
            }
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "{:<6} {:>12} {:>13} {:>15} {:>6}",
                "shard", "subscribers", "copies/s out", "forward p99 µs", "busy"
            );
            for sh in &stats.shards {
                let _ = writeln!(
                    s,
                    "{:<6} {:>12} {:>13.0} {:>15} {:>5.0}%{}",
                    sh.shard,
                    sh.subscribers,
                    sh.packets_out_per_s,
                    sh.latency_p99_us,
                    sh.busy_ratio * 100.0,
                    other_window(p, sh.interval_start_s, sh.interval_end_s)
                );
            }
            let out: f64 = stats.shards.iter().map(|sh| sh.packets_out_per_s).sum();
            let _ = writeln!(s, "{:<6} {:>12} {:>13.0}", "all", "", out);
        }
        None => {
            let _ = writeln!(s, "(node stats unavailable)");
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "loadgen: {:.0} copies/s received, end-to-end p99 {} µs; since start: sent {} packets, lost so far {}, switches {}",
        p.received_pps,
        p.p99_us.map_or("-".to_string(), |v| v.to_string()),
        p.packets_sent,
        p.gaps,
        p.switches_requested
    );
    let _ = writeln!(
        s,
        "(forward: the node's ingest socket received the packet → the send of the copy returned;\n end-to-end: the load generator sent the packet → it received the copy)"
    );
    s
}

impl Observer for Table {
    fn progress(&mut self, p: &Progress) {
        let stats = self.node_stats(p.window_end_s);
        let text = render(p, stats.as_ref());
        let mut out = std::io::stdout().lock();
        if self.tty && self.lines > 0 {
            // Back to the table's first line, and clear what was there.
            let _ = write!(out, "\x1b[{}A\r\x1b[J", self.lines);
        } else if !self.tty {
            let _ = writeln!(out);
        }
        let _ = write!(out, "{text}");
        let _ = out.flush();
        self.lines = text.lines().count();
    }
}

/// `corecast demo`: 0 when the load generator's checks passed (latency is shown, not judged).
pub fn main<N: DemoNode>(args: &DemoArgs) -> ExitCode {
    let mut argv = vec![
        "--http".to_string(),
        args.http.to_string(),
        "--stats-interval".into(),
        "1000".into(),
        "--rtp-ports".into(),
        args.rtp_ports.to_string(),
    ];
    if !args.pin {
        argv.push("--no-pin".into());
    }
    if let Some(n) = args.shards {
        argv.extend(["--shards".into(), n.to_string()]);
    }
    let serve = match N::parse_serve(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(2);
        }
    };
    let duration = match args.duration {
        Some(d) if d.is_finite() && d > 0.0 => Some(Duration::from_secs_f64(d)),
        Some(_) => {
            eprintln!("demo: --duration must be a positive number of seconds");
            return ExitCode::from(2);
        }
        None => None,
    };
    let node = match N::start(&serve) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("demo: cannot start the node: {e}");
            return ExitCode::from(2);
        }
    };
    let server = node.http_addr().to_string();
    let stop = Stop::new();
    let signals = match stop_on_signals(stop.clone()) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(2);
        }
    };
    let switch_every = (args.switch_every.is_finite() && args.switch_every > 0.0)
        .then(|| Duration::from_secs_f64(args.switch_every));
    let cfg = Config {
        server: server.clone(),
        sources: args.sources,
        subscribers: args.subscribers,
        duration,
        switch_every,
        stop,
        tick_origin: Some(node.started()),
        // The demo shows latency live but judges only the stream's correctness and loss: it
        // runs node and load generator in one process, often in a debug build, and 300
        // subscribers there queue for seconds without anything being wrong with the node.
        max_p99: None,
        ..Config::default()
    };
    let switching = match switch_every {
        Some(e) if args.sources > 1 => format!("switching every {} s", e.as_secs_f64()),
        _ => "no switching".into(),
    };
    let header = format!(
        "corecast demo: node on http://{server} ({} shards), {} VP8 sources, {} subscribers in all (spread over the sources), {switching}; {}",
        node.shards(),
        args.sources,
        args.subscribers,
        if duration.is_some() { "stops by itself" } else { "Ctrl-C to stop" }
    );
    println!("{header}");
    let mut table = Table {
        client: Client::new(&server, None),
        tty: std::io::stdout().is_terminal(),
        lines: 0,
    };
    let result = run(&cfg, &mut table);
    signals.close();
    node.shutdown();
    match result {
        Ok(report) => {
            println!();
            print!("{}", report.summary());
            if report.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use corecast_signaling::api::{ShardStats, SourceCounters, SourceView};

    use super::*;

    fn shard(k: u32, out: f64, window: (f64, f64)) -> ShardStats {
        ShardStats {
            shard: k,
            subscribers: 150,
            packets_out_per_s: out,
            latency_p99_us: 900 + u64::from(k),
            interval_start_s: Some(window.0),
            interval_end_s: Some(window.1),
            ..ShardStats::default()
        }
    }

    #[test]
    fn each_refresh_names_its_window_and_flags_a_figure_over_another() {
        let p = Progress {
            elapsed_s: 9.0,
            window_start_s: 11.0,
            window_end_s: 12.0,
            received_pps: 60_000.0,
            p99_us: Some(5_000),
            ..Progress::default()
        };
        let counters = SourceCounters {
            packets_per_second: 300.0,
            interval_start_s: Some(11.0),
            interval_end_s: Some(12.001),
            ..SourceCounters::default()
        };
        let src: SourceView = serde_json::from_value(serde_json::json!({
            "id": 1, "name": "cam", "codec": "vp8", "clock_rate": 90000,
            "ingest": {"ip": "127.0.0.1", "port": 46000}, "latch": true, "sender": null,
            "subscribers": 100, "counters": counters
        }))
        .unwrap();
        let stats = StatsView {
            shards: vec![
                shard(0, 20_000.5, (11.002, 12.003)),
                shard(1, 40_000.0, (11.2, 12.3)),
            ],
            sources: vec![src],
            ..StatsView::default()
        };
        let text = render(&p, Some(&stats));
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].contains("over 11.0–12.0 s of node uptime"),
            "{text}"
        );
        let row = |start: &str| *lines.iter().find(|l| l.starts_with(start)).unwrap();
        // The source's figures: packets/s in, subscribers, and their product, the copies due.
        let cam: Vec<&str> = row("cam").split_whitespace().collect();
        assert_eq!(cam, ["cam", "300", "100", "30000"], "{text}");
        // Shard 0 covers the same window (within a snapshot's lateness); shard 1 does not.
        assert!(!row("0 ").contains("(over"), "{text}");
        assert!(row("1 ").ends_with("(over 11.2–12.3 s)"), "{text}");
        assert!(row("all").ends_with(" 60000"), "{text}");
        assert!(text.contains("loadgen: 60000 copies/s received, end-to-end p99 5000 µs"));
    }
}

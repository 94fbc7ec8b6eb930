//! `corecast demo`: a node and the load generator in one process, with a live table, so a
//! newcomer sees corecast forward, switch and verify within a minute.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use corecast_signaling::api::StatsView;
use corecast_signaling::client::Client;

use super::cli::stop_on_signals;
use super::{run, Config, Observer, Progress, Stop};
use crate::config::parse_serve;
use crate::Node;

/// Flags of `corecast demo`.
#[derive(Args, Clone, Debug, PartialEq)]
pub struct DemoArgs {
    /// Address of the node's HTTP control API (use 127.0.0.1:0 for any free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// Ingest ports of the demo's node. Not the node's usual 40000-40999, so that a stray
    /// sender aimed at a node there is never latched by the demo's sources.
    #[arg(long, default_value = "46000-46999")]
    pub rtp_ports: crate::config::PortRange,
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

/// The live table: the node's own view (`GET /v1/stats`) next to what the load generator saw.
struct Table {
    client: Client,
    tty: bool,
    lines: usize,
}

impl Table {
    fn render(&self, p: &Progress, stats: Option<&StatsView>) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "after {:.0} s:", p.elapsed_s);
        match stats {
            Some(stats) => {
                let _ = writeln!(s, "{:<28} {:>10} {:>12}", "source", "pps in", "subscribers");
                for src in &stats.sources {
                    let _ = writeln!(
                        s,
                        "{:<28} {:>10.0} {:>12}",
                        src.name, src.counters.packets_per_second, src.subscribers
                    );
                }
                let _ = writeln!(s);
                let _ = writeln!(
                    s,
                    "{:<6} {:>12} {:>12} {:>10} {:>6}",
                    "shard", "subscribers", "pps out", "p99 µs", "busy"
                );
                for sh in &stats.shards {
                    let _ = writeln!(
                        s,
                        "{:<6} {:>12} {:>12.0} {:>10} {:>5.0}%",
                        sh.shard,
                        sh.subscribers,
                        sh.packets_out_per_s,
                        sh.latency_p99_us,
                        sh.busy_ratio * 100.0
                    );
                }
            }
            None => {
                let _ = writeln!(s, "(node stats unavailable)");
            }
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "loadgen: sent {} packets, receiving {:.0} pps, lost so far {}, end-to-end p99 {} µs, switches {}",
            p.packets_sent,
            p.received_pps,
            p.gaps,
            p.p99_us.map_or("-".to_string(), |v| v.to_string()),
            p.switches_requested
        );
        s
    }
}

impl Observer for Table {
    fn progress(&mut self, p: &Progress) {
        let stats = self.client.stats().ok();
        let text = self.render(p, stats.as_ref());
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

/// `corecast demo`: 0 when the load generator's checks passed.
pub fn main(args: &DemoArgs) -> ExitCode {
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
    let serve = match parse_serve(&argv) {
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
    let mut node = match Node::start(&serve) {
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
        ..Config::default()
    };
    let switching = match switch_every {
        Some(e) if args.sources > 1 => format!("switching every {} s", e.as_secs_f64()),
        _ => "no switching".into(),
    };
    let header = format!(
        "corecast demo: node on http://{server} ({} shards), {} VP8 sources × {} subscribers, {switching}; {}",
        node.media_from.len(),
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

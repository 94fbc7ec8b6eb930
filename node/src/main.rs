//! `corecast`: `serve` runs a node; `loadgen` and `demo` load one and verify what it forwards
//! (`corecast_loadgen`); `check` checks one received stream (`corecast_loadgen::check`); the
//! other subcommands are a client of its HTTP API.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use corecast::config::{parse_serve, LogFormat, ServeArgs, ServeArgsError};
use corecast::Node;
use corecast_loadgen::check::CheckArgs;
use corecast_loadgen::cli::LoadgenArgs;
use corecast_loadgen::demo::{DemoArgs, DemoNode};
use corecast_signaling::cli::{ClientArgs, ClientCommand};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

#[derive(Parser)]
#[command(name = "corecast", version, about = "Broadcast RTP fan-out node")]
struct Cli {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node: ingest sources, fan out to subscribers, serve the HTTP control API.
    Serve(Box<ServeArgs>),
    /// Load a node (or, with --raw-target, any forwarder) with paced sources and many
    /// subscribers, and verify every packet they receive.
    Loadgen(Box<LoadgenArgs>),
    /// Start a node and load it in this process, with a live table (3 sources, 300 subscribers).
    Demo(Box<DemoArgs>),
    /// Receive one subscriber's stream and check it is consistent: one SSRC, no gaps,
    /// timestamps in order, a start on a keyframe, parameter sets before H.264/H.265 keyframes.
    Check(Box<CheckArgs>),
    #[command(flatten)]
    Client(ClientCommand),
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    // `serve` is parsed on its own so its settings can also come from a TOML file.
    if argv.get(1).map(String::as_str) == Some("serve") {
        return match parse_serve(&argv[2..]) {
            Ok(args) => serve(args),
            Err(ServeArgsError::Help(text)) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(ServeArgsError::Invalid(reason)) => {
                eprintln!("{reason}");
                ExitCode::from(2)
            }
        };
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Loadgen(args) => corecast_loadgen::cli::main(&args, &cli.client),
        Command::Demo(args) => corecast_loadgen::demo::main::<InProcessNode>(&args),
        Command::Check(args) => corecast_loadgen::check::main(&args),
        Command::Client(cmd) => {
            match corecast_signaling::cli::run(&cli.client, cmd, &mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The node `corecast demo` runs in this process.
struct InProcessNode(Node);

impl DemoNode for InProcessNode {
    type Settings = ServeArgs;

    fn parse_serve(argv: &[String]) -> Result<ServeArgs, String> {
        parse_serve(argv).map_err(|e| e.to_string())
    }

    fn start(settings: &ServeArgs) -> Result<InProcessNode, String> {
        Node::start(settings)
            .map(InProcessNode)
            .map_err(|e| e.to_string())
    }

    fn http_addr(&self) -> SocketAddr {
        self.0.http_addr()
    }

    fn started(&self) -> Instant {
        self.0.started()
    }

    fn shards(&self) -> usize {
        self.0.media_from.len()
    }

    fn shutdown(mut self) {
        self.0.shutdown();
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    // Logs go to stderr, so stdout stays for the start-up report and `--events-jsonl -`.
    // Colour codes only for a terminal: in a file or a pipe they are noise.
    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        );
    match args.log_format {
        LogFormat::Text => subscriber.init(),
        LogFormat::Json => subscriber.json().init(),
    }
    print_config(&args);
    let signals = match Signals::new([SIGINT, SIGTERM]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot handle signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut node = match Node::start(&args) {
        Ok(node) => node,
        Err(e) => {
            eprintln!("corecast: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "corecast: serving the control API on http://{} (media from {})",
        node.http_addr(),
        node.media_from
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut signals = signals;
    let signal = signals.forever().next();
    let signal = signal
        .and_then(signal_hook::low_level::signal_name)
        .unwrap_or("unknown");
    tracing::info!(signal, "stopping");
    node.shutdown();
    println!("corecast: stopped");
    ExitCode::SUCCESS
}

fn print_config(a: &ServeArgs) {
    let or = |v: Option<String>, d: &str| v.unwrap_or_else(|| d.to_string());
    println!("corecast serve, effective configuration:");
    println!("  http            = {}", a.http);
    println!("  rtp-ip          = {}", a.rtp_ip);
    println!("  rtp-ports       = {}", a.rtp_ports);
    println!(
        "  shards          = {}",
        or(a.shards.map(|n| n.to_string()), "one per available core")
    );
    println!(
        "  cores           = {}",
        or(a.cores.as_ref().map(|c| c.to_string()), "first available")
    );
    println!("  pin             = {}", !a.no_pin);
    println!("  batch           = {}", a.batch);
    println!(
        "  gso             = {} ({} segments)",
        a.gso, a.gso_segments
    );
    println!("  queue-depth     = {}", a.queue_depth);
    println!(
        "  rcvbuf / sndbuf = {} / {} bytes asked",
        a.rcvbuf, a.sndbuf
    );
    println!(
        "  token           = {}",
        if a.token.is_some() { "set" } else { "none" }
    );
    println!("  max-subscribers = {}", a.max_subscribers);
    println!("  pli-interval    = {} ms", a.pli_interval);
    println!("  switch-timeout  = {} ms", a.switch_timeout);
    println!("  spin-us         = {}", a.spin_us);
    println!("  log-format      = {}", a.log_format);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(argv: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("corecast").chain(argv.iter().copied()))
            .expect("valid command line")
    }

    #[test]
    fn clap_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn server_goes_before_or_after_the_subcommand() {
        assert_eq!(parse(&["--server", "h:1", "stats"]).client.server, "h:1");
        assert_eq!(parse(&["stats", "--server", "h:2"]).client.server, "h:2");
        assert_eq!(
            parse(&["source", "list", "--token", "t"])
                .client
                .token
                .as_deref(),
            Some("t")
        );
        // loadgen takes the global flags too, after its name or before it.
        let cli = parse(&["loadgen", "--server", "h:3"]);
        let Command::Loadgen(args) = cli.command else {
            panic!("not loadgen");
        };
        assert_eq!(args.config(&cli.client).server, "h:3");
        let cli = parse(&["--server", "h:4", "loadgen"]);
        let Command::Loadgen(args) = cli.command else {
            panic!("not loadgen");
        };
        assert_eq!(args.config(&cli.client).server, "h:4");
    }
}

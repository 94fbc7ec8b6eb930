//! `corecast loadgen`: the flags, the live progress line and the exit status.

use std::io::{IsTerminal, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use corecast_engine::Codec;
use corecast_signaling::cli::ClientArgs;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use super::{run, Config, Observer, Progress, Stop, StreamShape};

/// What the sources send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LoadCodec {
    Vp8,
    Opus,
}

impl From<LoadCodec> for Codec {
    fn from(c: LoadCodec) -> Codec {
        match c {
            LoadCodec::Vp8 => Codec::Vp8,
            LoadCodec::Opus => Codec::Opus,
        }
    }
}

fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("`{s}` is not a number of seconds")),
    }
}

fn milliseconds_or_none(s: &str) -> Result<Option<f64>, String> {
    if s == "none" {
        return Ok(None);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
        _ => Err(format!("`{s}` is not a number of milliseconds or `none`")),
    }
}

/// Flags of `corecast loadgen`.
#[derive(Args, Clone, Debug, PartialEq)]
pub struct LoadgenArgs {
    /// Sources to create and send.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub sources: u32,
    /// Subscribers in all, spread round-robin over the sources.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=60_000))]
    pub subscribers: u32,
    /// Seconds to send.
    #[arg(long, default_value_t = 10.0, value_parser = seconds)]
    pub duration: f64,
    /// Bits per second of payload, per source.
    #[arg(long, default_value_t = 2_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub bitrate: u64,
    /// Video frames per second.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub fps: u32,
    /// Frames from one keyframe to the next (a keyframe request starts one sooner).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..))]
    pub gop: u32,
    /// Largest RTP packet in bytes, header included.
    #[arg(long, default_value_t = 1200, value_parser = clap::value_parser!(u64).range(StreamShape::MIN_PACKET_SIZE as u64..=1200))]
    pub packet_size: u64,
    /// vp8 (video: frames, keyframes) or opus (audio: 50 packets per second).
    #[arg(long, value_enum, default_value = "vp8")]
    pub codec: LoadCodec,
    /// Every this many seconds, switch every subscriber to the next source (0: never).
    #[arg(long, default_value_t = 0.0, value_parser = seconds)]
    pub switch_every: f64,
    /// Fraction of the expected packets that may be lost (0.001 is 0.1%; 1: loss is not
    /// judged); the run fails above it.
    #[arg(long, default_value_t = super::DEFAULT_MAX_LOSS)]
    pub max_loss: f64,
    /// End-to-end p99 latency in milliseconds above which the run fails, or `none` (latency is
    /// not judged).
    // Spelled out so clap takes the parser's Option as the value, not as "flag may be absent".
    #[arg(long, default_value = "500", value_parser = milliseconds_or_none)]
    pub max_p99_ms: std::option::Option<f64>,
    /// Print the report as one JSON object on stdout (the summary goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// A local process (the node) whose CPU time over the run is reported as server_cpu_s.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Threads receiving and verifying.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub recv_threads: u64,
    /// Address the source and subscriber sockets bind to.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind_ip: IpAddr,
    /// Raw mode: no API; send the one source's stream to this address, which is expected to
    /// forward it unchanged to the subscriber ports.
    #[arg(long, requires = "recv_base_port")]
    pub raw_target: Option<SocketAddr>,
    /// Raw mode: the address the forwarder sends from; subscriber sockets then accept datagrams
    /// only from it (stray senders are dropped by the kernel).
    #[arg(long, requires = "raw_target")]
    pub raw_from: Option<SocketAddr>,
    /// Bind subscriber sockets on this port and the ones after it (default: any free ports).
    #[arg(long)]
    pub recv_base_port: Option<u16>,
    /// Receive buffer asked for each subscriber socket, in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    pub rcvbuf: usize,
    /// Milliseconds to wait for packets in flight after sending stops, at least (the wait goes
    /// on while packets still arrive, up to 10 s more).
    #[arg(long, default_value_t = 500)]
    pub drain_ms: u64,
    /// Subscribers are WebRTC viewers instead of plain RTP: one channel per source, a WHEP
    /// offer each, ICE and DTLS, SRTP decrypted before the same checks; switches go by channel.
    #[arg(long, conflicts_with = "raw_target")]
    pub whep: bool,
    /// This many more subscribers, at `--unverified-to`'s address and the ports from it on,
    /// that nothing here receives or checks: the node sends to them (a send-only rig's
    /// namespace that drops what arrives); the report covers the verified ones only.
    #[arg(long, default_value_t = 0, requires = "unverified_to", conflicts_with_all = ["raw_target", "whep"], value_parser = clap::value_parser!(u32).range(0..=60_000))]
    pub unverified: u32,
    /// Where `--unverified` subscribers are (`IP:FIRST_PORT`).
    #[arg(long)]
    pub unverified_to: Option<SocketAddr>,
}

impl LoadgenArgs {
    /// The `--unverified` subscribers' addresses (ports past 65535 are left out).
    fn unverified_dests(&self) -> Vec<SocketAddr> {
        let Some(first) = self.unverified_to else {
            return Vec::new();
        };
        (0..self.unverified)
            .map_while(|j| u16::try_from(u32::from(first.port()) + j).ok())
            .map(|port| SocketAddr::new(first.ip(), port))
            .collect()
    }

    /// The run these flags describe; `client` holds the global `--server` and `--token`.
    pub fn config(&self, client: &ClientArgs) -> Config {
        let secs = |s: f64| (s > 0.0).then(|| Duration::from_secs_f64(s));
        Config {
            server: client.server.clone(),
            token: client.token.clone(),
            sources: self.sources,
            subscribers: self.subscribers,
            duration: Some(Duration::from_secs_f64(self.duration)),
            shape: StreamShape {
                codec: self.codec.into(),
                bitrate: self.bitrate,
                fps: self.fps,
                gop: self.gop,
                packet_size: self.packet_size as usize,
            },
            switch_every: secs(self.switch_every),
            max_loss: self.max_loss,
            max_p99: self
                .max_p99_ms
                .map(|ms| Duration::from_secs_f64(ms / 1000.0)),
            server_pid: self.server_pid,
            recv_threads: self.recv_threads as usize,
            bind_ip: self.bind_ip,
            raw_target: self.raw_target,
            raw_from: self.raw_from,
            recv_base_port: self.recv_base_port,
            rcvbuf: self.rcvbuf,
            drain: Duration::from_millis(self.drain_ms),
            tick_origin: None,
            whep: self.whep,
            unverified: self.unverified_dests(),
            stop: Stop::new(),
        }
    }
}

/// Trigger `stop` on the first SIGINT or SIGTERM; exit at once (130) on the second. Close the
/// returned handle when done.
pub fn stop_on_signals(stop: Stop) -> Result<Handle, String> {
    let mut signals =
        Signals::new([SIGINT, SIGTERM]).map_err(|e| format!("cannot handle signals: {e}"))?;
    let handle = signals.handle();
    std::thread::Builder::new()
        .name("loadgen-signals".into())
        .spawn(move || {
            let mut seen = 0;
            for _ in signals.forever() {
                seen += 1;
                if seen > 1 {
                    std::process::exit(130);
                }
                stop.trigger();
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    Ok(handle)
}

/// One line on stderr, rewritten every second on a terminal (a line per second otherwise).
pub struct ProgressLine {
    tty: bool,
    drawn: bool,
}

impl ProgressLine {
    pub fn new() -> ProgressLine {
        ProgressLine {
            tty: std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    /// End the updating line, so what follows starts on its own.
    pub fn finish(&mut self) {
        if self.tty && self.drawn {
            eprintln!();
        }
        self.drawn = false;
    }
}

impl Default for ProgressLine {
    fn default() -> Self {
        ProgressLine::new()
    }
}

impl Observer for ProgressLine {
    fn ready(&mut self, subscribers: &[SocketAddr]) {
        if let (Some(first), Some(last)) = (subscribers.first(), subscribers.last()) {
            eprintln!(
                "loadgen: {} subscribers listening on {first} … {last}",
                subscribers.len()
            );
        }
    }

    fn progress(&mut self, p: &Progress) {
        let line = format!(
            "{:6.1} s  sent {:>9}  received {:>9.0} pps  lost so far {:>6}  p99 {:>7} µs  switches {}",
            p.elapsed_s,
            p.packets_sent,
            p.received_pps,
            p.gaps,
            p.p99_us.map_or("-".to_string(), |v| v.to_string()),
            p.switches_requested
        );
        let mut err = std::io::stderr().lock();
        let _ = if self.tty {
            write!(err, "\r\x1b[2K{line}")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
        self.drawn = true;
    }
}

/// `corecast loadgen`: 0 when every check passed, 1 when one failed, 2 when the run could not
/// be set up.
pub fn main(args: &LoadgenArgs, client: &ClientArgs) -> ExitCode {
    let cfg = args.config(client);
    let signals = match stop_on_signals(cfg.stop.clone()) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let mut line = ProgressLine::new();
    let result = run(&cfg, &mut line);
    line.finish();
    signals.close();
    match result {
        Ok(report) => {
            if args.json {
                eprint!("{}", report.summary());
                println!("{}", report.to_json());
            } else {
                print!("{}", report.summary());
            }
            if report.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: LoadgenArgs,
    }

    fn parse(argv: &[&str]) -> Result<LoadgenArgs, clap::Error> {
        Wrap::try_parse_from(std::iter::once("loadgen").chain(argv.iter().copied())).map(|w| w.args)
    }

    #[test]
    fn thresholds_default_to_the_documented_limits_and_none_turns_latency_off() {
        let d = parse(&[]).unwrap();
        assert_eq!(d.max_p99_ms, Some(super::super::DEFAULT_MAX_P99_MS as f64));
        assert_eq!(d.max_p99_ms, Some(500.0), "the README's figure");
        assert_eq!(d.max_loss, super::super::DEFAULT_MAX_LOSS);
        let client = ClientArgs {
            server: "127.0.0.1:1".into(),
            token: None,
        };
        let cfg = d.config(&client);
        assert_eq!(cfg.max_p99, Config::default().max_p99);
        assert_eq!(parse(&["--max-p99-ms", "none"]).unwrap().max_p99_ms, None);
        assert_eq!(parse(&["--max-p99-ms", "0"]).unwrap().max_p99_ms, Some(0.0));
        let bad = parse(&["--max-p99-ms", "soon"]).unwrap_err().to_string();
        assert!(bad.contains("not a number of milliseconds"), "{bad}");
    }
}

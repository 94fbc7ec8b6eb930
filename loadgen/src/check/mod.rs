//! `corecast check`: receive one subscriber's stream, as a player at its `dest` would, and say
//! whether a decoder could play it: one SSRC, continuous sequence numbers, timestamps that never
//! go back, a start on a keyframe, H.264/H.265 parameter sets before keyframes, sane frame
//! boundaries. What the load generator verifies of every copy, without its payload checksum,
//! so it works on any stream in the field.
//!
//! - [`checker::Checker`]: the checks, sans I/O (fed `(bytes, now)`, read as a [`Report`]).
//! - [`sequence`]: sequence numbers and timestamps extended to 64 bits, shared with the load
//!   generator's verifier.
//! - [`listen`]: the UDP socket and the read loop; [`report`]: events, counts and the report.
//!
//! Exit status: 0 when the stream was consistent and at least one packet came, 1 when not, 2
//! when the check could not start.

pub mod checker;
pub mod listen;
pub mod report;
pub mod sequence;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use corecast_engine::codec::parameter_sets::ParameterSets;
use corecast_engine::Codec;
use corecast_signaling::api::parameter_set_units;

pub use checker::Checker;
pub use report::Report;

use crate::cli::stop_on_signals;
use crate::Stop;

/// `--parameter-sets` as the API reads `parameter_sets`, with the API's messages.
fn configured_parameter_sets(codec: Codec, text: &str) -> Result<ParameterSets, String> {
    let units = parameter_set_units(text).map_err(|e| e.to_string())?;
    let refs: Vec<&[u8]> = units.iter().map(Vec::as_slice).collect();
    ParameterSets::configured(codec, &refs).map_err(|e| format!("`parameter_sets`: {e}"))
}

fn codec(name: &str) -> Result<Codec, String> {
    Codec::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Codec::ALL.iter().map(|c| c.name()).collect();
        format!("`{name}` is not a codec: one of {}", names.join(", "))
    })
}

fn seconds(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!("`{s}` is not a positive number of seconds")),
    }
}

/// Flags of `corecast check`.
#[derive(Args, Clone, Debug, PartialEq)]
pub struct CheckArgs {
    /// Address to receive the stream on (a subscriber's `dest`): IPv4 or IPv6, port 0 for any
    /// free port (the one taken is printed).
    #[arg(long)]
    pub listen: SocketAddr,
    /// The stream's codec: vp8, vp9, h264, h265, av1 or opus (default: from the payload type
    /// corecast sends it with: 96, 98, 102, 104, 106, 111).
    #[arg(long, value_parser = codec)]
    pub codec: Option<Codec>,
    /// H.264/H.265 parameter sets the sender gives only in its SDP, as for `source add`
    /// (base64 NAL units joined with commas).
    #[arg(long, requires = "codec")]
    pub parameter_sets: Option<String>,
    /// Stop after this many seconds (default: at Ctrl-C, or --packets).
    #[arg(long, value_parser = seconds)]
    pub duration: Option<Duration>,
    /// Stop after this many RTP packets.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub packets: Option<u64>,
    /// Print the report as one JSON object on stdout (the summary goes to stderr).
    #[arg(long)]
    pub json: bool,
}

/// `corecast check`: live lines on stderr, the report at the end (see the module doc for the
/// exit status).
pub fn main(args: &CheckArgs) -> ExitCode {
    let mut checker = Checker::new(args.codec);
    if let (Some(codec), Some(text)) = (args.codec, &args.parameter_sets) {
        match configured_parameter_sets(codec, text) {
            Ok(sets) => checker = checker.with_parameter_sets(sets),
            Err(e) => {
                eprintln!("check: --parameter-sets: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let socket = match listen::bind(args.listen) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("check: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(2);
        }
    };
    let stop = Stop::new();
    let signals = match stop_on_signals(stop.clone()) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("check: {e}");
            return ExitCode::from(2);
        }
    };
    let local = socket.local_addr().map_or(args.listen, |a| a);
    eprintln!(
        "check: listening on {local} for {} (Ctrl-C ends the check with the report)",
        args.codec
            .map_or("a stream of any codec".to_string(), |c| format!("{c}"))
    );
    let limits = listen::Limits {
        duration: args.duration,
        packets: args.packets,
    };
    let result = listen::run(&socket, &mut checker, limits, &stop, &mut std::io::stderr());
    signals.close();
    if let Err(e) = result {
        eprintln!("check: cannot receive on {local}: {e}");
        return ExitCode::from(2);
    }
    let report = checker.report();
    if args.json {
        eprint!("{}", report.summary());
        println!("{}", report.to_json());
    } else {
        print!("{}", report.summary());
    }
    if report.consistent {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

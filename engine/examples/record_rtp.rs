//! Records RTP packets arriving on a UDP port into a fixture file for `tests/codec_fixtures.rs`.
//!
//! ```text
//! cargo run -p corecast-engine --example record_rtp -- PORT OUT_FILE [--seconds S] [--count N] [--idle-ms MS]
//! ```
//!
//! Listens on 127.0.0.1:PORT and stops after S seconds (default 30), after N packets, or once
//! MS milliseconds (default 1000) pass with no packet after the first one arrived, whichever comes
//! first. The idle stop lets a script start the recorder, run a finite sender, and simply wait.
//!
//! File format: no header; for each packet, in arrival order, a 2-byte big-endian length followed
//! by that many bytes of the RTP packet exactly as received (header, extensions, payload, padding).
//! A packet longer than 65535 bytes cannot come over UDP/IPv4, so the length always fits.
//!
//! Prints `listening on 127.0.0.1:PORT` to stderr once the socket is bound, and a summary at the
//! end.

use std::env;
use std::fs::File;
use std::io::{self, BufWriter, ErrorKind, Write};
use std::net::UdpSocket;
use std::process::ExitCode;
use std::time::{Duration, Instant};

struct Args {
    port: u16,
    out: String,
    seconds: u64,
    count: Option<u64>,
    idle: Duration,
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: record_rtp PORT OUT_FILE [--seconds S] [--count N] [--idle-ms MS]\n\
         writes each packet as a 2-byte big-endian length followed by the raw RTP bytes"
    );
    ExitCode::from(2)
}

fn parse_args() -> Option<Args> {
    let mut it = env::args().skip(1);
    let port = it.next()?.parse().ok()?;
    let out = it.next()?;
    let mut args = Args {
        port,
        out,
        seconds: 30,
        count: None,
        idle: Duration::from_millis(1000),
    };
    while let Some(flag) = it.next() {
        let value: u64 = it.next()?.parse().ok()?;
        match flag.as_str() {
            "--seconds" => args.seconds = value,
            "--count" => args.count = Some(value),
            "--idle-ms" => args.idle = Duration::from_millis(value),
            _ => return None,
        }
    }
    Some(args)
}

fn main() -> ExitCode {
    let Some(args) = parse_args() else {
        return usage();
    };
    match record(&args) {
        Ok((packets, bytes)) => {
            eprintln!("recorded {packets} packets ({bytes} bytes) to {}", args.out);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("record_rtp: {e}");
            ExitCode::FAILURE
        }
    }
}

fn record(args: &Args) -> io::Result<(u64, u64)> {
    let socket = UdpSocket::bind(("127.0.0.1", args.port))?;
    eprintln!("listening on 127.0.0.1:{}", args.port);
    let mut out = BufWriter::new(File::create(&args.out)?);
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut last_packet: Option<Instant> = None;
    let (mut packets, mut bytes) = (0u64, 0u64);
    // Larger than any UDP payload, so a datagram is never silently cut short.
    let mut buf = vec![0u8; 65536];
    loop {
        if args.count.is_some_and(|n| packets >= n) {
            break;
        }
        let now = Instant::now();
        let mut wait = deadline.saturating_duration_since(now);
        if let Some(last) = last_packet {
            wait = wait.min((last + args.idle).saturating_duration_since(now));
        }
        if wait.is_zero() {
            break;
        }
        socket.set_read_timeout(Some(wait))?;
        let n = match socket.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) => return Err(e),
        };
        let len = u16::try_from(n).map_err(|_| io::Error::other("datagram over 65535 bytes"))?;
        out.write_all(&len.to_be_bytes())?;
        out.write_all(&buf[..n])?;
        last_packet = Some(Instant::now());
        packets += 1;
        bytes += n as u64;
    }
    out.flush()?;
    Ok((packets, bytes))
}

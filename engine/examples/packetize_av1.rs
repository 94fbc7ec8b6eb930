//! Packetizes an AV1 OBU stream into an RTP fixture for `tests/codec_fixtures.rs`, with
//! webrtc-rs's AV1 payloader (`rtp::codecs::av1::Av1Payloader`, a port of libwebrtc's), so the
//! AV1 fixture holds packets that corecast did not write.
//!
//! ```text
//! cargo run -p corecast-engine --example packetize_av1 -- IN.obu OUT.rtp [--mtu BYTES] [--fps N]
//! ```
//!
//! `scripts/record-fixtures.sh` runs it on `tests/fixtures/av1.obu` (libaom's output through
//! GStreamer's av1enc and av1parse): GStreamer's own AV1 payloader, rtpav1pay, lives in
//! gst-plugins-rs, which Debian does not package.
//!
//! IN is a low-overhead bitstream (AV1 spec section 5.2: every OBU carries obu_size), one temporal
//! unit per frame, each opened by a temporal delimiter. Each temporal unit goes to the payloader
//! whole (it drops the delimiters and the obu_size fields itself) with an RTP payload budget of
//! the MTU (default 400) less the 12-byte RTP header; its packets share one timestamp, 90 kHz /
//! fps (default 15) after the previous unit's, and the last one has the marker bit. Sequence
//! numbers, the first timestamp, SSRC and payload type are fixed, so the output is the same on
//! every run.
//!
//! OUT has `record_rtp`'s format: for each packet, a 2-byte big-endian length, then the packet.

use std::env;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use bytes::Bytes;
use rtp::codecs::av1::Av1Payloader;
use rtp::header::Header;
use rtp::packet::Packet;
use rtp::packetizer::Payloader;
use webrtc_util::marshal::Marshal;

const RTP_HEADER: usize = 12;
const CLOCK_RATE: u32 = 90_000;
const PAYLOAD_TYPE: u8 = 96;
const SSRC: u32 = 0x0a1a_0a1a;
const FIRST_SEQUENCE: u16 = 1;
const FIRST_TIMESTAMP: u32 = 3_000;
const OBU_TEMPORAL_DELIMITER: u8 = 2;

struct Args {
    input: String,
    output: String,
    mtu: usize,
    fps: u32,
}

fn parse_args() -> Option<Args> {
    let mut it = env::args().skip(1);
    let mut args = Args {
        input: it.next()?,
        output: it.next()?,
        mtu: 400,
        fps: 15,
    };
    while let Some(flag) = it.next() {
        let value: u32 = it.next()?.parse().ok()?;
        match flag.as_str() {
            "--mtu" => args.mtu = value as usize,
            "--fps" => args.fps = value,
            _ => return None,
        }
    }
    (args.mtu > RTP_HEADER + 2 && args.fps > 0).then_some(args)
}

fn main() -> ExitCode {
    let Some(args) = parse_args() else {
        eprintln!("usage: packetize_av1 IN.obu OUT.rtp [--mtu BYTES] [--fps N]");
        return ExitCode::from(2);
    };
    match packetize(&args) {
        Ok((units, packets)) => {
            eprintln!(
                "packetized {units} temporal units into {packets} packets -> {}",
                args.output
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("packetize_av1: {e}");
            ExitCode::FAILURE
        }
    }
}

fn packetize(args: &Args) -> io::Result<(usize, usize)> {
    let stream = fs::read(&args.input)?;
    let units = temporal_units(&stream)?;
    let mut out = BufWriter::new(fs::File::create(&args.output)?);
    let mut payloader = Av1Payloader::default();
    let mut sequence = FIRST_SEQUENCE;
    let mut packets = 0;
    for (n, unit) in units.iter().enumerate() {
        let payloads = payloader
            .payload(args.mtu - RTP_HEADER, &Bytes::copy_from_slice(unit))
            .map_err(|e| io::Error::other(format!("temporal unit {n}: {e}")))?;
        let timestamp =
            FIRST_TIMESTAMP + (n as u64 * u64::from(CLOCK_RATE) / u64::from(args.fps)) as u32;
        let last = payloads.len().saturating_sub(1);
        for (i, payload) in payloads.into_iter().enumerate() {
            let packet = Packet {
                header: Header {
                    version: 2,
                    marker: i == last,
                    payload_type: PAYLOAD_TYPE,
                    sequence_number: sequence,
                    timestamp,
                    ssrc: SSRC,
                    ..Header::default()
                },
                payload,
            };
            let bytes = packet
                .marshal()
                .map_err(|e| io::Error::other(format!("temporal unit {n}: {e}")))?;
            let len = u16::try_from(bytes.len())
                .map_err(|_| io::Error::other("packet over 65535 bytes"))?;
            out.write_all(&len.to_be_bytes())?;
            out.write_all(&bytes)?;
            sequence = sequence.wrapping_add(1);
            packets += 1;
        }
    }
    out.flush()?;
    Ok((units.len(), packets))
}

/// The stream cut before each temporal delimiter: one slice per temporal unit, delimiter included.
fn temporal_units(stream: &[u8]) -> io::Result<Vec<&[u8]>> {
    let bad = |at: usize, what: &str| {
        io::Error::new(io::ErrorKind::InvalidData, format!("byte {at}: {what}"))
    };
    let mut starts = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        let header = stream[at];
        if header & 0x02 == 0 {
            return Err(bad(
                at,
                "OBU without obu_size; not a low-overhead bitstream",
            ));
        }
        if (header >> 3) & 0x0f == OBU_TEMPORAL_DELIMITER {
            starts.push(at);
        } else if starts.is_empty() {
            return Err(bad(
                at,
                "the stream does not open with a temporal delimiter",
            ));
        }
        let size_at = at + 1 + usize::from(header & 0x04 != 0);
        let (size, size_len) = leb128(stream.get(size_at..).unwrap_or_default())
            .ok_or_else(|| bad(at, "bad obu_size"))?;
        at = size_at + size_len + size;
    }
    if at != stream.len() {
        return Err(bad(stream.len(), "the last OBU is cut short"));
    }
    starts.push(stream.len());
    Ok(starts.windows(2).map(|w| &stream[w[0]..w[1]]).collect())
}

/// An unsigned LEB128 value (AV1 spec section 4.10.5) and its length in bytes.
fn leb128(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (i, b) in bytes.iter().take(8).enumerate() {
        value |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

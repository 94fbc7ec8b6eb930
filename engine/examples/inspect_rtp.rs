//! Print what the engine sees in a recorded RTP file (the fixture format of `record_rtp`: 2-byte
//! big-endian length, then the packet): per packet the header fields, the codec's view, and what
//! ingest decides (drop reason, or frame start and switch point after sequencing).
//!
//! cargo run -p corecast-engine --example inspect_rtp -- CODEC FILE

use corecast_engine::rtp::RtpHeader;
use corecast_engine::{codec, Codec, Nanos, SourceId, SourceIngress};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(codec), Some(path)) = (args.get(1).and_then(|c| Codec::from_name(c)), args.get(2))
    else {
        eprintln!("usage: inspect_rtp vp8|vp9|h264|h265|av1|opus FILE");
        std::process::exit(2);
    };
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let mut ingress = SourceIngress::new(SourceId(1), codec, codec.default_clock_rate());
    let mut rest = &data[..];
    while rest.len() >= 2 {
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let Some(pkt) = rest.get(2..2 + len) else {
            break;
        };
        rest = &rest[2 + len..];
        let Ok(h) = RtpHeader::parse(pkt) else {
            println!("not RTP ({len} bytes)");
            continue;
        };
        let payload = h.payload(pkt);
        let view = codec::inspect(codec, payload);
        let head: Vec<String> = payload.iter().take(4).map(|b| format!("{b:02x}")).collect();
        let decision = match ingress.accept(pkt, None, Nanos::ZERO) {
            Ok(Some(p)) => format!(
                "frame_start={} switch_point={}",
                p.payload.frame_start,
                p.is_switch_point()
            ),
            Ok(None) => "held: another stream on probation".to_string(),
            Err(r) => format!("dropped: {}", r.name()),
        };
        println!(
            "seq {:5} ts {:10} m{} len {:4} [{}] codec {:?} -> {}",
            h.seq.0,
            h.timestamp.0,
            u8::from(h.marker),
            len,
            head.join(" "),
            view.map(|v| (v.frame_start, v.keyframe)),
            decision
        );
    }
}

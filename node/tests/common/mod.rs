//! Loopback harness for node tests: a node in this process, the project's own VP8 sender, and
//! subscriber sockets that collect what they receive. Everything waits on a condition with a
//! deadline; nothing sleeps to synchronise.
#![allow(dead_code)]

pub mod browser;
pub mod media;
pub mod netns;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use corecast::config::parse_serve;
use corecast::Node;
use corecast_engine::rtp::RtpHeader;
use corecast_engine::synth::{VideoShape, Vp8Stream};
use corecast_engine::Ssrc;
use corecast_signaling::api::{CreateSource, CreateSubscriber, SourceView, SubscriberView};
use corecast_signaling::client::{Client, ClientError};
use socket2::{Domain, Socket, Type};

pub const DEADLINE: Duration = Duration::from_secs(10);

/// An ingest port range of its own for each test node, below the kernel's ephemeral ports, so
/// concurrent tests (and other tools on the machine) never send into each other's sources.
fn private_port_range() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let slot = (std::process::id().wrapping_mul(31) + NEXT.fetch_add(1, Ordering::Relaxed)) % 120;
    let lo = 20_000 + slot * 100;
    format!("{lo}-{}", lo + 99)
}

pub fn start(extra: &[&str]) -> (Node, Client) {
    let mut argv: Vec<String> = ["--http", "127.0.0.1:0", "--no-pin", "--shards", "2"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    argv.extend(["--rtp-ports".to_string(), private_port_range()]);
    argv.extend(extra.iter().map(|s| s.to_string()));
    let args = parse_serve(&argv).expect("valid test flags");
    let node = Node::start(&args).expect("node starts");
    let client = Client::new(&node.http_addr().to_string(), None);
    (node, client)
}

pub fn source(client: &Client, name: &str, codec: &str) -> SourceView {
    client
        .create_source(&CreateSource {
            name: name.into(),
            codec: codec.into(),
            ..Default::default()
        })
        .expect("source created")
}

pub fn ingest_addr(s: &SourceView) -> SocketAddr {
    SocketAddr::new(s.ingest.ip, s.ingest.port)
}

/// A subscriber's socket, with a receive buffer large enough for a test's burst.
pub fn receiver() -> UdpSocket {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
    socket.set_recv_buffer_size(4 << 20).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let socket: UdpSocket = socket.into();
    socket.set_nonblocking(true).unwrap();
    socket
}

pub fn subscribe(client: &Client, source: u32, sockets: &[UdpSocket]) -> Vec<SubscriberView> {
    let reqs: Vec<CreateSubscriber> = sockets
        .iter()
        .map(|s| CreateSubscriber {
            source,
            dest: s.local_addr().unwrap().to_string(),
        })
        .collect();
    client
        .create_subscribers(&reqs)
        .expect("subscribers created")
}

/// The project's own VP8 sender.
pub struct Sender {
    pub socket: UdpSocket,
    pub stream: Vp8Stream,
    pub to: SocketAddr,
}

impl Sender {
    pub fn new(to: SocketAddr, ssrc: u32, gop: u32) -> Sender {
        Sender::with_payload(to, ssrc, gop, 300)
    }

    /// Senders with different payload lengths can be told apart by what subscribers receive.
    pub fn with_payload(to: SocketAddr, ssrc: u32, gop: u32, payload_len: usize) -> Sender {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let shape = VideoShape {
            gop,
            payload_len,
            ..VideoShape::default()
        };
        Sender {
            socket,
            stream: Vp8Stream::new(Ssrc(ssrc), ssrc as u16, 0, shape),
            to,
        }
    }

    pub fn send(&mut self) -> corecast_engine::synth::SynthPacket {
        let mut buf = Vec::new();
        let p = self.stream.next_packet(&mut buf);
        self.socket.send_to(&buf, self.to).unwrap();
        p
    }

    /// RTCP the node sent back to this sender (keyframe requests), if any arrived.
    pub fn poll_rtcp(&self) -> Option<Vec<u8>> {
        let mut buf = [0u8; 1500];
        match self.socket.recv_from(&mut buf) {
            Ok((n, _)) => Some(buf[..n].to_vec()),
            Err(_) => None,
        }
    }
}

/// One received packet's header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Got {
    pub ssrc: u32,
    pub seq: u16,
    pub ts: u32,
    pub first_payload_byte: u8,
    pub keyframe_start: bool,
    pub len: usize,
}

/// Everything waiting on `socket` now.
pub fn drain(socket: &UdpSocket, out: &mut Vec<Got>) {
    let mut buf = [0u8; 2048];
    while let Ok(n) = socket.recv(&mut buf) {
        out.push(got(&buf[..n]));
    }
}

/// The header fields of one VP8 packet the node sent.
pub fn got(packet: &[u8]) -> Got {
    let h = RtpHeader::parse(packet).expect("the node sends valid RTP");
    let payload = h.payload(packet);
    let info = corecast_engine::codec::inspect(corecast_engine::Codec::Vp8, payload).unwrap();
    Got {
        ssrc: h.ssrc.0,
        seq: h.seq.0,
        ts: h.timestamp.0,
        first_payload_byte: payload[0],
        keyframe_start: info.is_switch_point(),
        len: packet.len(),
    }
}

/// Repeat `step` (which does some work and says whether the awaited condition holds) until it
/// returns true; panics with `what` at the deadline.
pub fn until(what: &str, step: impl FnMut() -> bool) {
    until_by(Instant::now() + DEADLINE, what, step)
}

/// [`until`] with a deadline of the caller's: for a wait that is known to be longer.
pub fn until_by(deadline: Instant, what: &str, mut step: impl FnMut() -> bool) {
    while !step() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

/// The status, code and message of an API refusal; panics on anything else.
pub fn api_error(r: Result<impl std::fmt::Debug, ClientError>) -> (u16, String, String) {
    match r {
        Err(ClientError::Api {
            status,
            code,
            message,
        }) => (status, code, message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A fresh path for a test's `--events-jsonl` file, unique per process and call.
pub fn events_file(tag: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!(
        "corecast-test-{tag}-{}-{nanos}.jsonl",
        std::process::id()
    ))
}

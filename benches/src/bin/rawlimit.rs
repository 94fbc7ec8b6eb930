//! `rawlimit`: the kernel's limit on sending UDP on this machine, against which corecast's send path
//! is judged (issue 5, BENCHMARKS.md).
//!
//! One thread sends `--size`-byte datagrams round-robin to `--receivers` UDP sockets on 127.0.0.1,
//! the way a fan-out sends one packet to every subscriber in turn; one receiver thread drains all
//! of them (epoll + `recvmmsg`) and counts what arrives. Two modes, one after the other, and one
//! more per `--gso K`:
//!
//! - `send_to`: one `send_to` syscall per packet;
//! - `sendmmsg`: one `sendmmsg` per `--batch` packets (64, like corecast's default batch), each
//!   message with its own destination.
//!
//! `--gso K` (repeatable, or a comma list: `--gso 4,8,16`) adds one mode per K after those two,
//! `gsoK`: each destination in turn gets K back-to-back datagrams as one UDP GSO message
//! (`UDP_SEGMENT`, through [`corecast_udp::SendBatch::with_gso`] as the node sends), one
//! `sendmmsg` per `--batch` such messages (so `--batch` × K datagrams per call). The kernel splits
//! each message into its K datagrams, or a device with segmentation offload does. If the socket
//! does not take GSO, the probe says so and exits non-zero before measuring anything.
//!
//! For each mode it reports datagrams sent per CPU-second of the sending thread
//! (`CLOCK_THREAD_CPUTIME_ID`), datagrams per wall-second, messages the kernel took (datagrams,
//! or GSO messages), and loss at the receivers (with the kernel's UDP `RcvbufErrors` delta from
//! /proc/net/snmp, which says whether a lost datagram was dropped because a receive buffer was
//! full).
//!
//! `--send-only IP:PORTBASE` sends to `--receivers` destinations at IP, ports PORTBASE to
//! PORTBASE + N − 1, from a socket bound on 0.0.0.0, and starts no receivers: loss is not
//! measured (null in JSON). With `scripts/send-only-rig.sh up` (a veth pair whose far end drops
//! everything in an nftables netdev ingress chain, `--send-only 10.77.0.2:40000`) this is a
//! send-only NIC: the sender pays for the stack and the device, not for delivery into a socket,
//! and a GSO message is dropped whole, never split, as a NIC with UDP segmentation offload takes
//! it; the rig's `status` counts what arrived. Without the flag, the probe runs on loopback as
//! before.
//!
//! ```text
//! cargo run --release -p corecast-benches --bin rawlimit -- [--receivers N] [--seconds S]
//!     [--size BYTES] [--batch N] [--iovecs K] [--receiver epoll|spin] [--sender-in-epoll]
//!     [--gso K[,K...]]... [--send-only IP:PORTBASE] [--json]
//! ```
//!
//! On loopback the sender also pays for delivering each datagram into its receiver's socket
//! (the softirq runs in the sending thread) and, when the receiver sleeps in `epoll`, for waking
//! it. `--receiver epoll` (the default) has the receiver sleep in `epoll_wait` like the load
//! generator's receiving threads, so the sender pays what a forwarder pays under `corecast
//! loadgen`; `--receiver spin` never sleeps (non-blocking sweeps, no epoll), so nothing waits on
//! the sockets and the figure is the send path alone.
//!
//! `--sender-in-epoll` registers the sending socket in an epoll set for reading, as a forwarder
//! that also receives RTCP on its sending socket does: every datagram freed after loopback
//! delivery then walks that socket's wait queue (`sock_wfree` → write-space wake-up).
//!
//! `--iovecs K` (K ≥ 2) sends each message of the `sendmmsg` mode as corecast sends a copy: a
//! per-message 12-byte head, K − 2 five-byte pieces of it, and the rest from the shared payload
//! (corecast: rewritten RTP header, CSRCs/extensions, rewritten codec prefix, payload; VP8 without
//! CSRCs is K = 3), to see what that scatter-gather costs the kernel; the `gsoK` modes lay out
//! each of their datagrams the same way.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corecast_udp::time::thread_cpu_time as thread_cpu;
use corecast_udp::{
    gso_supported, Buffer, Datagram, Received, RecvBatch, SendBatch, MAX_GSO_BYTES,
    MAX_GSO_SEGMENTS,
};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::sys::socket::{setsockopt, sockopt};
use serde_json::{json, Value};

const USAGE: &str =
    "usage: rawlimit [--receivers N (100)] [--seconds S (3)] [--size BYTES (1200)] \
                     [--batch N (64)] [--iovecs K (1)] [--receiver epoll|spin (epoll)] [--sender-in-epoll] \
                     [--gso K[,K...]]... [--send-only IP:PORTBASE] [--json]";

/// Most segments per message `--iovecs` may ask for.
const MAX_IOVECS: usize = 16;

struct Opts {
    receivers: usize,
    seconds: f64,
    size: usize,
    batch: usize,
    iovecs: usize,
    wait: Wait,
    sender_in_epoll: bool,
    /// Datagrams per GSO message, one `gsoK` mode each, in the order given.
    gso: Vec<usize>,
    /// `--send-only`: the destinations' address and first port; no receivers.
    send_only: Option<SocketAddrV4>,
    json: bool,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        receivers: 100,
        seconds: 3.0,
        size: 1200,
        batch: 64,
        iovecs: 1,
        wait: Wait::Epoll,
        sender_in_epoll: false,
        gso: Vec::new(),
        send_only: None,
        json: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        let bad = |name: &str, v: &str| format!("{name}: `{v}` is not a valid value\n{USAGE}");
        match a.as_str() {
            "--receivers" => {
                let v = value("--receivers")?;
                o.receivers = v.parse().map_err(|_| bad("--receivers", &v))?;
            }
            "--seconds" => {
                let v = value("--seconds")?;
                o.seconds = v.parse().map_err(|_| bad("--seconds", &v))?;
            }
            "--size" => {
                let v = value("--size")?;
                o.size = v.parse().map_err(|_| bad("--size", &v))?;
            }
            "--batch" => {
                let v = value("--batch")?;
                o.batch = v.parse().map_err(|_| bad("--batch", &v))?;
            }
            "--iovecs" => {
                let v = value("--iovecs")?;
                o.iovecs = v.parse().map_err(|_| bad("--iovecs", &v))?;
            }
            "--receiver" => {
                let v = value("--receiver")?;
                o.wait = match v.as_str() {
                    "epoll" => Wait::Epoll,
                    "spin" => Wait::Spin,
                    _ => return Err(bad("--receiver", &v)),
                };
            }
            "--sender-in-epoll" => o.sender_in_epoll = true,
            "--gso" => {
                let v = value("--gso")?;
                for k in v.split(',') {
                    let k: usize = k.trim().parse().map_err(|_| bad("--gso", &v))?;
                    // A repeated K would be the same mode twice.
                    if !o.gso.contains(&k) {
                        o.gso.push(k);
                    }
                }
            }
            "--send-only" => {
                let v = value("--send-only")?;
                o.send_only = Some(v.parse().map_err(|_| bad("--send-only", &v))?);
            }
            "--json" => o.json = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    if o.receivers == 0 || o.seconds.is_nan() || o.seconds <= 0.0 || o.batch == 0 || o.batch > 1024
    {
        return Err(format!(
            "--receivers and --batch must be ≥ 1 (batch ≤ 1024), --seconds > 0\n{USAGE}"
        ));
    }
    if o.size == 0 || o.size > 65_000 || o.iovecs == 0 || o.iovecs > MAX_IOVECS {
        return Err(format!(
            "--size must be 1..=65000 and --iovecs 1..=16\n{USAGE}"
        ));
    }
    for &k in &o.gso {
        if !(2..=MAX_GSO_SEGMENTS).contains(&k) || k * o.size > MAX_GSO_BYTES {
            return Err(format!(
                "--gso {k}: K must be 2..={MAX_GSO_SEGMENTS}, and K × --size ({}) at most \
                 {MAX_GSO_BYTES} bytes (one GSO message)\n{USAGE}",
                k * o.size
            ));
        }
    }
    if let Some(base) = o.send_only {
        if base.port() == 0 || usize::from(base.port()) + o.receivers - 1 > usize::from(u16::MAX) {
            return Err(format!(
                "--send-only {base}: ports {}..{} do not fit in 1..=65535\n{USAGE}",
                base.port(),
                usize::from(base.port()) + o.receivers - 1
            ));
        }
    }
    if o.iovecs > 1 && o.size <= 12 + 5 * (o.iovecs - 2) {
        return Err(format!(
            "--size must exceed the {} head bytes of --iovecs {}\n{USAGE}",
            12 + 5 * (o.iovecs - 2),
            o.iovecs
        ));
    }
    Ok(o)
}

/// The kernel's UDP `RcvbufErrors` counter (datagrams dropped because a receive buffer was full).
fn udp_rcvbuf_errors() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (lines.next()?, lines.next()?);
    let i = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(i)?.parse().ok()
}

/// The receivers: sockets bound on 127.0.0.1 and one thread draining them.
struct Receivers {
    addrs: Vec<SocketAddrV4>,
    received: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    cpu_ns: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receivers {
    fn start(n: usize, wait: Wait) -> io::Result<Receivers> {
        let mut socks = Vec::with_capacity(n);
        let mut addrs = Vec::with_capacity(n);
        for _ in 0..n {
            let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
            s.set_nonblocking(true)?;
            // Forced past net.core.rmem_max when running with CAP_NET_ADMIN; what is granted is enough.
            let _ = Buffer::Receive.force_size(&s, 4 << 20);
            match s.local_addr()? {
                SocketAddr::V4(a) => addrs.push(a),
                SocketAddr::V6(_) => unreachable!("bound on 127.0.0.1"),
            }
            socks.push(s);
        }
        let received = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let cpu_ns = Arc::new(AtomicU64::new(0));
        let (r, st, cpu) = (received.clone(), stop.clone(), cpu_ns.clone());
        let thread = std::thread::Builder::new()
            .name("rawlimit-recv".into())
            .spawn(move || drain(socks, wait, r, st, cpu))?;
        Ok(Receivers {
            addrs,
            received,
            stop,
            cpu_ns,
            thread: Some(thread),
        })
    }

    /// Waits until nothing has arrived for 100 ms (at most 3 s), then returns the total so far.
    fn settle(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut last = self.received.load(Ordering::Relaxed);
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now = self.received.load(Ordering::Relaxed);
            if now == last || Instant::now() > deadline {
                return now;
            }
            last = now;
        }
    }
}

impl Drop for Receivers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Where the datagrams go: receivers on loopback, or `--send-only` destinations nobody counts.
enum Target {
    Loopback(Receivers),
    SendOnly(Vec<SocketAddrV4>),
}

impl Target {
    fn addrs(&self) -> &[SocketAddrV4] {
        match self {
            Target::Loopback(rx) => &rx.addrs,
            Target::SendOnly(addrs) => addrs,
        }
    }

    /// What the receivers have counted once arrivals stop; None without receivers.
    fn settle(&self) -> Option<u64> {
        match self {
            Target::Loopback(rx) => Some(rx.settle()),
            Target::SendOnly(_) => None,
        }
    }

    /// A sending socket: on loopback bound on 127.0.0.1 to reach the receivers; send-only bound
    /// anywhere (the route picks the source address) and with `SO_DONTROUTE`, so the kernel
    /// sends only to a directly attached link: with the rig down, a destination that only the
    /// default route reaches is refused (ENETUNREACH) instead of flooding the gateway.
    fn socket(&self) -> io::Result<UdpSocket> {
        match self {
            Target::Loopback(_) => UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)),
            Target::SendOnly(_) => {
                let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
                setsockopt(s.as_raw_fd(), sockopt::DontRoute, &true)?;
                Ok(s)
            }
        }
    }
}

/// How the receiver thread waits for datagrams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    /// Sleep in `epoll_wait` until a socket is readable, as a load generator does: the sender
    /// pays for waking it (the socket's wait queue is not empty).
    Epoll,
    /// Never sleep: sweep every socket with non-blocking `recvmmsg`. Nothing waits on the
    /// sockets, so the sender pays no wake-ups: the floor of the send path.
    Spin,
}

/// Small receive buffers (`MSG_TRUNC` semantics: the kernel copies only what fits), since only
/// arrivals are counted; this keeps the receiver cheap so it keeps up.
struct RecvScratch {
    bufs: Vec<u8>,
    batch: RecvBatch,
    got: [Received; RecvScratch::BATCH],
}

impl RecvScratch {
    const BATCH: usize = 64;
    const SIZE: usize = 64;

    fn new() -> RecvScratch {
        RecvScratch {
            bufs: vec![0u8; Self::BATCH * Self::SIZE],
            batch: RecvBatch::with_capacity(Self::BATCH),
            got: [Received::default(); Self::BATCH],
        }
    }

    /// Reads `socket` until it is empty; returns how many datagrams arrived.
    fn read_dry(&mut self, socket: &UdpSocket) -> u64 {
        let mut got = 0;
        let mut chunks = self.bufs.chunks_mut(Self::SIZE);
        let mut bufs: [&mut [u8]; Self::BATCH] =
            std::array::from_fn(|_| chunks.next().expect("bufs holds a full batch"));
        loop {
            let n = self
                .batch
                .recv(socket, &mut bufs, &mut self.got)
                .unwrap_or(0);
            got += n as u64;
            // Fewer than asked for: the socket was empty (so an edge-triggered wait is rearmed).
            if n < Self::BATCH {
                return got;
            }
        }
    }
}

/// The receiver thread: drains every socket, counts what arrives.
fn drain(
    socks: Vec<UdpSocket>,
    wait: Wait,
    received: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    cpu: Arc<AtomicU64>,
) {
    let mut scratch = RecvScratch::new();
    if wait == Wait::Spin {
        while !stop.load(Ordering::Relaxed) {
            let got: u64 = socks.iter().map(|s| scratch.read_dry(s)).sum();
            if got > 0 {
                received.fetch_add(got, Ordering::Relaxed);
            }
        }
        cpu.store(thread_cpu().as_nanos() as u64, Ordering::Relaxed);
        return;
    }
    let mut poll = Poll::new().expect("an epoll instance");
    for (i, s) in socks.iter().enumerate() {
        poll.registry()
            .register(&mut SourceFd(&s.as_raw_fd()), Token(i), Interest::READABLE)
            .expect("register a receiving socket with epoll");
    }
    let mut events = Events::with_capacity(256);
    while !stop.load(Ordering::Relaxed) {
        if poll
            .poll(&mut events, Some(Duration::from_millis(50)))
            .is_err()
        {
            continue; // EINTR
        }
        let got: u64 = events
            .iter()
            .map(|ev| scratch.read_dry(&socks[ev.token().0]))
            .sum();
        if got > 0 {
            received.fetch_add(got, Ordering::Relaxed);
        }
    }
    cpu.store(thread_cpu().as_nanos() as u64, Ordering::Relaxed);
}

/// What one sending run measured.
struct SendRun {
    /// Datagrams the kernel took.
    sent: u64,
    errors: u64,
    syscalls: u64,
    /// Messages the kernel took: datagrams, or GSO messages of several.
    messages: u64,
    /// GSO messages the kernel refused as such (then sent datagram by datagram).
    gso_refused: u64,
    cpu: Duration,
    wall: Duration,
}

/// Plain `send_to`, one syscall per packet, round-robin over the receivers.
fn run_send_to(sock: &UdpSocket, dests: &[SocketAddrV4], payload: &[u8], secs: f64) -> SendRun {
    let dests: Vec<SocketAddr> = dests.iter().map(|a| SocketAddr::V4(*a)).collect();
    let (mut sent, mut errors, mut syscalls) = (0u64, 0u64, 0u64);
    let mut next = 0usize;
    let limit = Duration::from_secs_f64(secs);
    let cpu0 = thread_cpu();
    let t0 = Instant::now();
    loop {
        for _ in 0..64 {
            syscalls += 1;
            match sock.send_to(payload, dests[next]) {
                Ok(_) => sent += 1,
                Err(_) => errors += 1,
            }
            next += 1;
            if next == dests.len() {
                next = 0;
            }
        }
        if t0.elapsed() >= limit {
            break;
        }
    }
    SendRun {
        sent,
        errors,
        syscalls,
        messages: sent,
        gso_refused: 0,
        cpu: thread_cpu() - cpu0,
        wall: t0.elapsed(),
    }
}

/// `sendmmsg` of `batch` messages per syscall, each to the next receiver in turn, each datagram
/// `iovecs` segments of the same buffer, sent by corecast's own send path
/// ([`corecast_udp::SendBatch`], as the node's shards send). With `burst` K > 1 each message is
/// K datagrams to its receiver as one GSO message (`SendBatch::with_gso`).
fn run_sendmmsg<const N: usize>(
    sock: &UdpSocket,
    dests: &[SocketAddrV4],
    payload: &[u8],
    secs: f64,
    batch: usize,
    iovecs: usize,
    burst: usize,
) -> SendRun {
    // Each message's segments. With one, every message is the whole shared payload. With K > 1,
    // laid out as corecast lays out a copy (`Transmit::segments`): a 12-byte head of the
    // message's own (the rewritten RTP header), K - 2 five-byte pieces of it (a rewritten codec
    // prefix), then the rest of the shared payload, from an unaligned offset.
    let head_len = if iovecs == 1 {
        0
    } else {
        12 + 5 * (iovecs - 2)
    };
    // One message per destination, and `batch` more so any `batch` in a row, round-robin over
    // the destinations, are one slice; `burst` datagrams per message, each with its own head,
    // as each subscriber's copy has.
    let ring_len = (dests.len() + batch) * burst;
    let heads: Vec<u8> = (0..ring_len)
        .flat_map(|_| payload[..head_len].to_vec())
        .collect();
    let ring: Vec<Datagram<'_, N>> = (0..ring_len)
        .map(|i| {
            let head = &heads[i * head_len..(i + 1) * head_len];
            let mut segments: [&[u8]; N] = [&[]; N];
            let mut at = 0;
            for (k, seg) in segments.iter_mut().enumerate().take(iovecs - 1) {
                let len = if k == 0 { 12 } else { 5 };
                *seg = &head[at..at + len];
                at += len;
            }
            segments[iovecs - 1] = &payload[head_len..];
            Datagram {
                dest: SocketAddr::V4(dests[(i / burst) % dests.len()]),
                segments,
            }
        })
        .collect();
    // `batch` messages of up to `burst` datagrams per `sendmmsg`, as a shard's batch is; with
    // `burst` 1 this is `SendBatch::with_capacity(batch)`.
    let mut send = SendBatch::<N>::with_gso(batch, burst);
    let (mut sent, mut errors, mut syscalls, mut messages, mut gso_refused) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut next = 0usize;
    let limit = Duration::from_secs_f64(secs);
    let cpu0 = thread_cpu();
    let t0 = Instant::now();
    loop {
        let out = send.send(
            sock,
            &ring[next * burst..(next + batch) * burst],
            |d| *d,
            |_, _| {},
        );
        sent += out.sent as u64;
        errors += (out.buffer_full + out.failed) as u64;
        syscalls += u64::from(out.syscalls);
        messages += out.messages as u64;
        gso_refused += out.gso_refused as u64;
        next = (next + batch) % dests.len();
        if t0.elapsed() >= limit {
            break;
        }
    }
    SendRun {
        sent,
        errors,
        syscalls,
        messages,
        gso_refused,
        cpu: thread_cpu() - cpu0,
        wall: t0.elapsed(),
    }
}

/// Runs one mode on a fresh sending thread and measures what arrived.
fn measure(
    mode: &str,
    target: &Target,
    o: &Opts,
    run: impl FnOnce(&UdpSocket, &[SocketAddrV4], &[u8]) -> SendRun + Send,
) -> io::Result<Value> {
    let before = target.settle();
    let errs_before = udp_rcvbuf_errors();
    let sock = target.socket()?;
    let _ = Buffer::Send.force_size(&sock, 4 << 20);
    // With --sender-in-epoll, the sending socket sits in an epoll set (for reading), as a
    // forwarder's socket does when it also receives RTCP on it; nothing ever waits on the set.
    let epoll = if o.sender_in_epoll {
        let poll = Poll::new()?;
        poll.registry().register(
            &mut SourceFd(&sock.as_raw_fd()),
            Token(0),
            Interest::READABLE,
        )?;
        Some(poll)
    } else {
        None
    };
    // A distinctive payload; its content does not matter to the kernel.
    let payload: Vec<u8> = (0..o.size).map(|i| (i * 31 + 7) as u8).collect();
    let dests = target.addrs().to_vec();
    let r = std::thread::scope(|s| {
        std::thread::Builder::new()
            .name(format!("rawlimit-{mode}"))
            .spawn_scoped(s, || run(&sock, &dests, &payload))
            .expect("spawn the sending thread")
            .join()
            .expect("the sending thread panicked")
    });
    drop(epoll);
    // Without receivers, nothing is counted: received, lost and loss are null.
    let received = target.settle().zip(before).map(|(now, b)| now - b);
    let rcvbuf_errors = match (received, errs_before, udp_rcvbuf_errors()) {
        (Some(_), Some(a), Some(b)) => json!(b.saturating_sub(a)),
        _ => Value::Null,
    };
    let lost = received.map(|n| r.sent.saturating_sub(n));
    if r.gso_refused > 0 {
        eprintln!(
            "rawlimit: {mode}: the kernel refused {} GSO messages as such (sent datagram by datagram)",
            r.gso_refused
        );
    }
    Ok(json!({
        "packets_sent": r.sent,
        "send_errors": r.errors,
        "syscalls": r.syscalls,
        "messages": r.messages,
        "gso_refused": r.gso_refused,
        "cpu_s": r.cpu.as_secs_f64(),
        "wall_s": r.wall.as_secs_f64(),
        "pps_per_cpu_s": r.sent as f64 / r.cpu.as_secs_f64().max(1e-9),
        "pps_wall": r.sent as f64 / r.wall.as_secs_f64().max(1e-9),
        "cpu_share": r.cpu.as_secs_f64() / r.wall.as_secs_f64().max(1e-9),
        "ns_per_packet_cpu": r.cpu.as_nanos() as f64 / (r.sent.max(1)) as f64,
        "packets_received": received,
        "lost": lost,
        "loss": lost.map(|l| l as f64 / (r.sent.max(1)) as f64),
        "udp_rcvbuf_errors": rcvbuf_errors,
    }))
}

fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&o) {
        eprintln!("rawlimit: {e}");
        std::process::exit(1);
    }
}

fn run(o: &Opts) -> io::Result<()> {
    let target = match o.send_only {
        None => Target::Loopback(Receivers::start(o.receivers, o.wait)?),
        Some(base) => {
            let addrs: Vec<SocketAddrV4> = (0..o.receivers)
                .map(|i| SocketAddrV4::new(*base.ip(), base.port() + i as u16))
                .collect();
            Target::SendOnly(addrs)
        }
    };
    // Checked on a socket made as the sending ones are, before anything is sent. Send-only, a
    // connect finds the route (no packet goes out): with SO_DONTROUTE, none unless on-link.
    let probe = target.socket()?;
    if let Some(base) = o.send_only {
        probe.connect(target.addrs()[0]).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "--send-only {base}: not on a directly attached link ({e}); \
                     for 10.77.0.2, is scripts/send-only-rig.sh up?"
                ),
            )
        })?;
    }
    if !o.gso.is_empty() {
        gso_supported(&probe).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("--gso: this socket does not take UDP GSO (UDP_SEGMENT): {e}"),
            )
        })?;
    }
    let secs = o.seconds;
    let (batch, iovecs) = (o.batch, o.iovecs);
    // Room for no more segments than asked for: a message's unused ones would cost a little
    // per message to skip.
    let sendmmsg = |burst: usize| {
        move |s: &UdpSocket, d: &[SocketAddrV4], p: &[u8]| match iovecs {
            1 => run_sendmmsg::<1>(s, d, p, secs, batch, iovecs, burst),
            2..=4 => run_sendmmsg::<4>(s, d, p, secs, batch, iovecs, burst),
            _ => run_sendmmsg::<MAX_IOVECS>(s, d, p, secs, batch, iovecs, burst),
        }
    };
    let mut modes: Vec<(String, Value)> = vec![
        (
            "send_to".into(),
            measure("send_to", &target, o, |s, d, p| run_send_to(s, d, p, secs))?,
        ),
        (
            "sendmmsg".into(),
            measure("sendmmsg", &target, o, sendmmsg(1))?,
        ),
    ];
    for &k in &o.gso {
        let mode = format!("gso{k}");
        let m = measure(&mode, &target, o, sendmmsg(k))?;
        modes.push((mode, m));
    }
    let receiver_cpu_s = match target {
        Target::Loopback(rx) => {
            let cpu = rx.cpu_ns.clone();
            drop(rx);
            json!(cpu.load(Ordering::Relaxed) as f64 / 1e9)
        }
        Target::SendOnly(_) => Value::Null,
    };
    let destination = match o.send_only {
        None => json!("loopback"),
        Some(base) => json!(format!(
            "{}:{}-{}",
            base.ip(),
            base.port(),
            usize::from(base.port()) + o.receivers - 1
        )),
    };
    let out = json!({
        "probe": "rawlimit",
        "receivers": o.receivers,
        "destination": destination,
        "send_only": o.send_only.is_some(),
        "seconds": o.seconds,
        "size": o.size,
        "batch": o.batch,
        "iovecs": o.iovecs,
        "gso": o.gso,
        "receiver": match (o.send_only, o.wait) {
            (Some(_), _) => Value::Null,
            (None, Wait::Spin) => json!("spin"),
            (None, Wait::Epoll) => json!("epoll"),
        },
        "sender_in_epoll": o.sender_in_epoll,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "receiver_cpu_s": receiver_cpu_s,
        "limit_pps_per_cpu_s": modes[1].1["pps_per_cpu_s"],
        "modes": modes.iter().cloned().collect::<serde_json::Map<String, Value>>(),
    });
    if o.json {
        println!("{out}");
        return Ok(());
    }
    match o.send_only {
        None => print!("rawlimit: {} receivers on 127.0.0.1", o.receivers),
        Some(_) => print!(
            "rawlimit: send-only to {} destinations at {} (no receivers: loss not measured)",
            o.receivers,
            destination.as_str().unwrap_or("")
        ),
    }
    println!(
        ", {}-byte datagrams, {} s per mode (sendmmsg: batch {}, {} iovec{} per datagram)",
        o.size,
        o.seconds,
        o.batch,
        o.iovecs,
        if o.iovecs == 1 { "" } else { "s" }
    );
    println!(
        "{:<9} {:>14} {:>12} {:>10} {:>12} {:>12} {:>10} {:>9}",
        "mode", "pkts/CPU-s", "pkts/wall-s", "ns/pkt", "sent", "messages", "lost", "loss"
    );
    for (name, m) in &modes {
        let (lost, loss) = match (m["lost"].as_u64(), m["loss"].as_f64()) {
            (Some(lost), Some(loss)) => (lost.to_string(), format!("{:.4}%", loss * 100.0)),
            _ => ("-".to_string(), "n/a".to_string()),
        };
        println!(
            "{:<9} {:>14.0} {:>12.0} {:>10.0} {:>12} {:>12} {:>10} {:>9}",
            name,
            m["pps_per_cpu_s"].as_f64().unwrap_or(0.0),
            m["pps_wall"].as_f64().unwrap_or(0.0),
            m["ns_per_packet_cpu"].as_f64().unwrap_or(0.0),
            m["packets_sent"].as_u64().unwrap_or(0),
            m["messages"].as_u64().unwrap_or(0),
            lost,
            loss
        );
    }
    Ok(())
}

//! `rawlimit`: the kernel's limit on sending UDP on this machine, against which corecast's send path
//! is judged (issue 5, BENCHMARKS.md).
//!
//! One thread sends `--size`-byte datagrams round-robin to `--receivers` UDP sockets on 127.0.0.1,
//! the way a fan-out sends one packet to every subscriber in turn; one receiver thread drains all
//! of them (epoll + `recvmmsg`) and counts what arrives. Two modes, one after the other:
//!
//! - `send_to`: one `send_to` syscall per packet;
//! - `sendmmsg`: one `sendmmsg` per `--batch` packets (64, like corecast's default batch), each
//!   message with its own destination.
//!
//! For each mode it reports packets sent per CPU-second of the sending thread
//! (`CLOCK_THREAD_CPUTIME_ID`), packets per wall-second, and loss at the receivers (with the
//! kernel's UDP `RcvbufErrors` delta from /proc/net/snmp, which says whether a lost packet was
//! dropped because a receive buffer was full).
//!
//! ```text
//! cargo run --release -p corecast-benches --bin rawlimit -- [--receivers N] [--seconds S]
//!     [--size BYTES] [--batch N] [--iovecs K] [--receiver epoll|spin] [--sender-in-epoll]
//!     [--json]
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
//! CSRCs is K = 3), to see what that scatter-gather costs the kernel.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const USAGE: &str =
    "usage: rawlimit [--receivers N (100)] [--seconds S (3)] [--size BYTES (1200)] \
                     [--batch N (64)] [--iovecs K (1)] [--receiver epoll|spin (epoll)] [--sender-in-epoll] [--json]";

struct Opts {
    receivers: usize,
    seconds: f64,
    size: usize,
    batch: usize,
    iovecs: usize,
    wait: Wait,
    sender_in_epoll: bool,
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
    if o.size == 0 || o.size > 65_000 || o.iovecs == 0 || o.iovecs > 16 {
        return Err(format!(
            "--size must be 1..=65000 and --iovecs 1..=16\n{USAGE}"
        ));
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

/// CPU time consumed so far by the calling thread.
fn thread_cpu() -> Duration {
    // SAFETY: clock_gettime only writes the timespec we pass; CLOCK_THREAD_CPUTIME_ID is
    // always supported on Linux.
    let mut ts: libc::timespec = unsafe { zeroed() };
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The kernel's UDP `RcvbufErrors` counter (datagrams dropped because a receive buffer was full).
fn udp_rcvbuf_errors() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (lines.next()?, lines.next()?);
    let i = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(i)?.parse().ok()
}

/// Asks for a buffer size, forcing past `net.core.*mem_max` when running with CAP_NET_ADMIN.
fn set_buf(sock: &UdpSocket, force: libc::c_int, plain: libc::c_int, bytes: usize) {
    let v = bytes as libc::c_int;
    for opt in [force, plain] {
        // SAFETY: setsockopt reads one c_int from the pointer we pass, with its size.
        let r = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &v as *const libc::c_int as *const libc::c_void,
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            return;
        }
    }
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
            set_buf(&s, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, 4 << 20);
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
    bufs: Vec<[u8; 64]>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

impl RecvScratch {
    const BATCH: usize = 64;

    fn new() -> RecvScratch {
        RecvScratch {
            bufs: vec![[0u8; 64]; Self::BATCH],
            // SAFETY: plain C structs for which all-zero bytes are valid.
            iovs: vec![unsafe { zeroed() }; Self::BATCH],
            msgs: vec![unsafe { zeroed() }; Self::BATCH],
        }
    }

    /// Reads `fd` until it is empty; returns how many datagrams arrived.
    fn read_dry(&mut self, fd: libc::c_int) -> u64 {
        let mut got = 0;
        loop {
            for i in 0..Self::BATCH {
                self.iovs[i] = libc::iovec {
                    iov_base: self.bufs[i].as_mut_ptr() as *mut libc::c_void,
                    iov_len: self.bufs[i].len(),
                };
                // SAFETY: all-zero is a valid msghdr; we then point it at our iovec.
                self.msgs[i].msg_hdr = unsafe { zeroed() };
                self.msgs[i].msg_hdr.msg_iov = &mut self.iovs[i];
                self.msgs[i].msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: msgs point at iovs and bufs, which live and do not move for the duration
            // of the call.
            let r = unsafe {
                libc::recvmmsg(
                    fd,
                    self.msgs.as_mut_ptr(),
                    Self::BATCH as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if r <= 0 {
                return got;
            }
            got += r as u64;
            if (r as usize) < Self::BATCH {
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
            let got: u64 = socks.iter().map(|s| scratch.read_dry(s.as_raw_fd())).sum();
            if got > 0 {
                received.fetch_add(got, Ordering::Relaxed);
            }
        }
        cpu.store(thread_cpu().as_nanos() as u64, Ordering::Relaxed);
        return;
    }
    // SAFETY: epoll_create1 has no pointer arguments.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(ep >= 0, "epoll_create1: {}", io::Error::last_os_error());
    for (i, s) in socks.iter().enumerate() {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: i as u64,
        };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        let r = unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, s.as_raw_fd(), &mut ev) };
        assert_eq!(r, 0, "epoll_ctl: {}", io::Error::last_os_error());
    }
    let mut events: Vec<libc::epoll_event> = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: `events` has room for the count we pass.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 50) };
        if n < 0 {
            continue; // EINTR
        }
        let got: u64 = events[..n as usize]
            .iter()
            .map(|ev| scratch.read_dry(socks[ev.u64 as usize].as_raw_fd()))
            .sum();
        if got > 0 {
            received.fetch_add(got, Ordering::Relaxed);
        }
    }
    cpu.store(thread_cpu().as_nanos() as u64, Ordering::Relaxed);
    // SAFETY: `ep` is our own descriptor, closed once.
    unsafe { libc::close(ep) };
}

/// What one sending run measured.
struct SendRun {
    sent: u64,
    errors: u64,
    syscalls: u64,
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
        cpu: thread_cpu() - cpu0,
        wall: t0.elapsed(),
    }
}

/// `sendmmsg` of `batch` messages per syscall, each to the next receiver in turn, each message
/// `iovecs` segments of the same buffer.
fn run_sendmmsg(
    sock: &UdpSocket,
    dests: &[SocketAddrV4],
    payload: &[u8],
    secs: f64,
    batch: usize,
    iovecs: usize,
) -> SendRun {
    // Destinations converted to sockaddr_in once, as a fan-out keeps them per subscriber.
    let addrs: Vec<libc::sockaddr_in> = dests
        .iter()
        .map(|a| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: a.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*a.ip()).to_be(),
            },
            sin_zero: [0; 8],
        })
        .collect();
    // Each message's iovecs. With one, every message points at the whole shared payload. With
    // K > 1, laid out as corecast lays out a copy (`Transmit::segments`): a 12-byte head of the
    // message's own (the rewritten RTP header), K - 2 five-byte pieces of it (a rewritten codec
    // prefix), then the rest of the shared payload, from an unaligned offset.
    let head_len = if iovecs == 1 {
        0
    } else {
        12 + 5 * (iovecs - 2)
    };
    let mut heads: Vec<u8> = (0..batch)
        .flat_map(|_| payload[..head_len].to_vec())
        .collect();
    let mut iov: Vec<libc::iovec> = Vec::with_capacity(batch * iovecs);
    for i in 0..batch {
        let head = heads[i * head_len..].as_mut_ptr();
        let mut at = 0;
        for k in 0..iovecs - 1 {
            let len = if k == 0 { 12 } else { 5 };
            // SAFETY: `at + len <= head_len`, inside this message's slice of `heads`.
            iov.push(libc::iovec {
                iov_base: unsafe { head.add(at) } as *mut libc::c_void,
                iov_len: len,
            });
            at += len;
        }
        iov.push(libc::iovec {
            iov_base: payload[head_len..].as_ptr() as *mut libc::c_void,
            iov_len: payload.len() - head_len,
        });
    }
    // SAFETY: all-zero is a valid mmsghdr.
    let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { zeroed() }; batch];
    for (i, m) in msgs.iter_mut().enumerate() {
        m.msg_hdr.msg_iov = iov[i * iovecs..].as_mut_ptr();
        m.msg_hdr.msg_iovlen = iovecs as _;
        m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    }
    let fd = sock.as_raw_fd();
    let (mut sent, mut errors, mut syscalls) = (0u64, 0u64, 0u64);
    let mut next = 0usize;
    let limit = Duration::from_secs_f64(secs);
    let cpu0 = thread_cpu();
    let t0 = Instant::now();
    loop {
        // Point each message at its destination, as a fan-out fills a batch per packet.
        for m in msgs.iter_mut() {
            m.msg_hdr.msg_name = &addrs[next] as *const libc::sockaddr_in as *mut libc::c_void;
            next += 1;
            if next == addrs.len() {
                next = 0;
            }
        }
        let mut at = 0;
        while at < batch {
            syscalls += 1;
            // SAFETY: msgs[at..] point at `addrs` and `iov` (which point into `heads` and
            // `payload`), all alive and unmoved for the duration of the call; the kernel only
            // reads them.
            let r = unsafe {
                libc::sendmmsg(fd, msgs[at..].as_mut_ptr(), (batch - at) as libc::c_uint, 0)
            };
            if r > 0 {
                sent += r as u64;
                at += r as usize;
            } else {
                // The message at `at` failed on its own (e.g. ENOBUFS): count it, go on.
                errors += 1;
                at += 1;
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
        cpu: thread_cpu() - cpu0,
        wall: t0.elapsed(),
    }
}

/// Runs one mode on a fresh sending thread and measures what arrived.
fn measure(
    mode: &'static str,
    rx: &Receivers,
    o: &Opts,
    run: impl FnOnce(&UdpSocket, &[SocketAddrV4], &[u8]) -> SendRun + Send,
) -> io::Result<Value> {
    let before = rx.settle();
    let errs_before = udp_rcvbuf_errors();
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    set_buf(&sock, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, 4 << 20);
    // With --sender-in-epoll, the sending socket sits in an epoll set (for reading), as a
    // forwarder's socket does when it also receives RTCP on it; nothing ever waits on the set.
    let epoll = if o.sender_in_epoll {
        // SAFETY: epoll_create1 has no pointer arguments.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: 0,
        };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        if ep < 0
            || unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, sock.as_raw_fd(), &mut ev) } != 0
        {
            return Err(io::Error::last_os_error());
        }
        Some(ep)
    } else {
        None
    };
    // A distinctive payload; its content does not matter to the kernel.
    let payload: Vec<u8> = (0..o.size).map(|i| (i * 31 + 7) as u8).collect();
    let dests = rx.addrs.clone();
    let r = std::thread::scope(|s| {
        std::thread::Builder::new()
            .name(format!("rawlimit-{mode}"))
            .spawn_scoped(s, || run(&sock, &dests, &payload))
            .expect("spawn the sending thread")
            .join()
            .expect("the sending thread panicked")
    });
    if let Some(ep) = epoll {
        // SAFETY: our own descriptor, closed once.
        unsafe { libc::close(ep) };
    }
    let received = rx.settle() - before;
    let rcvbuf_errors = match (errs_before, udp_rcvbuf_errors()) {
        (Some(a), Some(b)) => json!(b.saturating_sub(a)),
        _ => Value::Null,
    };
    let lost = r.sent.saturating_sub(received);
    Ok(json!({
        "packets_sent": r.sent,
        "send_errors": r.errors,
        "syscalls": r.syscalls,
        "cpu_s": r.cpu.as_secs_f64(),
        "wall_s": r.wall.as_secs_f64(),
        "pps_per_cpu_s": r.sent as f64 / r.cpu.as_secs_f64().max(1e-9),
        "pps_wall": r.sent as f64 / r.wall.as_secs_f64().max(1e-9),
        "cpu_share": r.cpu.as_secs_f64() / r.wall.as_secs_f64().max(1e-9),
        "ns_per_packet_cpu": r.cpu.as_nanos() as f64 / (r.sent.max(1)) as f64,
        "packets_received": received,
        "lost": lost,
        "loss": lost as f64 / (r.sent.max(1)) as f64,
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
    let rx = Receivers::start(o.receivers, o.wait)?;
    let secs = o.seconds;
    let send_to = measure("send_to", &rx, o, |s, d, p| run_send_to(s, d, p, secs))?;
    let (batch, iovecs) = (o.batch, o.iovecs);
    let sendmmsg = measure("sendmmsg", &rx, o, |s, d, p| {
        run_sendmmsg(s, d, p, secs, batch, iovecs)
    })?;
    let cpu_ns = {
        let cpu = rx.cpu_ns.clone();
        drop(rx);
        cpu.load(Ordering::Relaxed)
    };
    let out = json!({
        "probe": "rawlimit",
        "receivers": o.receivers,
        "seconds": o.seconds,
        "size": o.size,
        "batch": o.batch,
        "iovecs": o.iovecs,
        "receiver": if o.wait == Wait::Spin { "spin" } else { "epoll" },
        "sender_in_epoll": o.sender_in_epoll,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "receiver_cpu_s": cpu_ns as f64 / 1e9,
        "limit_pps_per_cpu_s": sendmmsg["pps_per_cpu_s"],
        "modes": { "send_to": send_to, "sendmmsg": sendmmsg },
    });
    if o.json {
        println!("{out}");
        return Ok(());
    }
    println!(
        "rawlimit: {} receivers on 127.0.0.1, {}-byte datagrams, {} s per mode (sendmmsg: batch {}, {} iovec{} per message)",
        o.receivers,
        o.size,
        o.seconds,
        o.batch,
        o.iovecs,
        if o.iovecs == 1 { "" } else { "s" }
    );
    println!(
        "{:<9} {:>14} {:>12} {:>10} {:>12} {:>10} {:>9}",
        "mode", "pkts/CPU-s", "pkts/wall-s", "ns/pkt", "sent", "lost", "loss"
    );
    for (name, m) in [
        ("send_to", &out["modes"]["send_to"]),
        ("sendmmsg", &out["modes"]["sendmmsg"]),
    ] {
        println!(
            "{:<9} {:>14.0} {:>12.0} {:>10.0} {:>12} {:>10} {:>8.4}%",
            name,
            m["pps_per_cpu_s"].as_f64().unwrap_or(0.0),
            m["pps_wall"].as_f64().unwrap_or(0.0),
            m["ns_per_packet_cpu"].as_f64().unwrap_or(0.0),
            m["packets_sent"].as_u64().unwrap_or(0),
            m["lost"].as_u64().unwrap_or(0),
            m["loss"].as_f64().unwrap_or(0.0) * 100.0
        );
    }
    Ok(())
}

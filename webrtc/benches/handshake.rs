//! Server-side cost of one DTLS-SRTP handshake: CPU time (criterion, server calls only) and the
//! heap one `Handshake` holds while in progress and once connected.
//!
//! `cargo bench -p corecast-webrtc --bench handshake`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corecast_webrtc::dtls::{Certificate, Handshake, HandshakeEvent};
use criterion::Criterion;

/// Counts live heap bytes so the server's share can be read around its calls.
struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as i64 - layout.size() as i64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// What one handshake cost the server.
struct ServerCost {
    cpu: Duration,
    /// Heap held by the handshake after its first flight (in progress) and once connected.
    live_in_progress: i64,
    live_connected: i64,
}

/// Runs a full DTLS 1.2 handshake against a dimpl client in memory, timing and weighing only
/// the server's calls.
fn one_handshake(server_cert: &Certificate, client_cert: &Certificate) -> ServerCost {
    let now = Instant::now();
    let mut client = dimpl::Dtls::new_12(
        Arc::new(dimpl::Config::default()),
        client_cert.dimpl_certificate().clone(),
        now,
    );
    client.set_active(true);
    client.handle_timeout(now).unwrap();

    let mut cpu = Duration::ZERO;
    let mut live: i64 = 0;
    let mut live_in_progress = 0;
    let mut server_call = |f: &mut dyn FnMut()| {
        let (t, b) = (Instant::now(), LIVE.load(Ordering::Relaxed));
        f();
        cpu += t.elapsed();
        live += LIVE.load(Ordering::Relaxed) - b;
        live
    };
    let mut server = None;
    server_call(&mut || server = Some(Handshake::new(server_cert, client_cert.fingerprint(), now)));
    let mut server = server.unwrap();
    let mut buf = vec![0u8; 2048];
    for flight in 0.. {
        assert!(flight < 10, "handshake did not complete");
        let mut to_server = Vec::new();
        loop {
            match client.poll_output(&mut buf) {
                dimpl::Output::Packet(p) => to_server.push(p.to_vec()),
                dimpl::Output::Timeout(_) => break,
                _ => {}
            }
        }
        for d in &to_server {
            server_call(&mut || {
                let _ = server.handle_datagram(d, now);
            });
        }
        let mut to_client = Vec::new();
        server_call(&mut || {
            while let Some(d) = server.poll_transmit() {
                to_client.push(d);
            }
        });
        for d in &to_client {
            let _ = client.handle_packet(d);
        }
        let held = server_call(&mut || drop(std::mem::take(&mut to_client)));
        if flight == 1 {
            // After ServerHello .. ServerHelloDone: the state a handshake waits in.
            live_in_progress = held;
        }
        let mut connected = false;
        server_call(&mut || {
            if let Some(HandshakeEvent::Connected(_)) = server.poll_event() {
                connected = true;
            }
        });
        if connected {
            break;
        }
    }
    let live_connected = server_call(&mut || {});
    drop(server);
    ServerCost {
        cpu,
        live_in_progress,
        live_connected,
    }
}

fn main() {
    let server_cert = Certificate::generate().unwrap();
    let client_cert = Certificate::generate().unwrap();
    // The first handshake builds dimpl's shared server config; weigh a later one.
    one_handshake(&server_cert, &client_cert);
    let cost = one_handshake(&server_cert, &client_cert);
    println!(
        "Handshake: {} bytes inline; heap {} bytes in progress (after the server's first \
         flight), {} bytes once connected; server CPU {:?} for this run",
        std::mem::size_of::<Handshake>(),
        cost.live_in_progress,
        cost.live_connected,
        cost.cpu,
    );

    let mut c = Criterion::default().configure_from_args();
    c.bench_function("dtls12_handshake_server_cpu", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| one_handshake(&server_cert, &client_cert).cpu)
                .sum()
        })
    });
    c.final_summary();
}

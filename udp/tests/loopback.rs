//! The crate's API against the kernel, on loopback sockets.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use corecast_udp::{
    enable_receive_timestamps, Buffer, Datagram, Received, RecvBatch, Refusal, SendBatch,
};

fn bound() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Blocks (bounded by the read timeout) until a datagram is waiting on `r`, so the non-blocking
/// `recv` that follows finds it.
fn wait_readable(r: &UdpSocket) {
    r.peek_from(&mut [0u8; 1]).unwrap();
}

/// Three segments per datagram (a head of its own, nothing, a shared tail), as a fan-out sends.
struct Copy {
    dest: SocketAddr,
    head: [u8; 4],
}

#[test]
fn a_batch_of_gathered_datagrams_arrives_whole_and_in_one_call_each_way() {
    let receivers: Vec<UdpSocket> = (0..5).map(|_| bound()).collect();
    let sender = bound();
    let tail = b"shared payload".to_vec();
    let copies: Vec<Copy> = receivers
        .iter()
        .enumerate()
        .map(|(i, r)| Copy {
            dest: r.local_addr().unwrap(),
            head: [i as u8; 4],
        })
        .collect();
    let mut sb = SendBatch::<3>::with_capacity(8);
    let out = sb.send(
        &sender,
        &copies,
        |c| Datagram {
            dest: c.dest,
            segments: [&c.head, &[], &tail],
        },
        |_, why| panic!("refused: {why:?}"),
    );
    assert_eq!(
        (out.sent, out.syscalls, out.buffer_full, out.failed),
        (5, 1, 0, 0)
    );

    let mut rb = RecvBatch::with_capacity(4);
    for (i, r) in receivers.iter().enumerate() {
        wait_readable(r);
        let mut storage = [0u8; 64];
        let mut got = [Received::default()];
        assert_eq!(rb.recv(r, &mut [&mut storage[..]], &mut got).unwrap(), 1);
        let mut want = vec![i as u8; 4];
        want.extend_from_slice(&tail);
        assert_eq!(&storage[..got[0].len], &want[..]);
        assert_eq!(got[0].from, Some(sender.local_addr().unwrap()));
        assert!(!got[0].truncated);
        assert_eq!(got[0].kernel_time, None, "timestamps were not asked for");
    }
}

#[test]
fn several_datagrams_waiting_are_read_in_one_call() {
    let r = bound();
    let s = bound();
    for i in 0..3u8 {
        s.send_to(&[i; 10], r.local_addr().unwrap()).unwrap();
    }
    // Loopback delivers in the sender's thread, so all three are queued once the first is.
    wait_readable(&r);
    let mut storage = [[0u8; 32]; 4];
    let mut bufs: Vec<&mut [u8]> = storage.iter_mut().map(|b| &mut b[..]).collect();
    let mut got = [Received::default(); 4];
    let mut rb = RecvBatch::with_capacity(4);
    assert_eq!(rb.recv(&r, &mut bufs, &mut got).unwrap(), 3);
    for (i, g) in got[..3].iter().enumerate() {
        assert_eq!(g.len, 10);
        assert_eq!(bufs[i][..10], [i as u8; 10]);
    }
}

#[test]
fn datagrams_beyond_the_batch_capacity_are_sent_in_further_calls() {
    let receivers: Vec<UdpSocket> = (0..5).map(|_| bound()).collect();
    let sender = bound();
    let dests: Vec<SocketAddr> = receivers.iter().map(|r| r.local_addr().unwrap()).collect();
    let mut sb = SendBatch::<1>::with_capacity(2);
    let mut refused = 0;
    let out = sb.send(
        &sender,
        &dests,
        |&dest| Datagram {
            dest,
            segments: [b"hello"],
        },
        |_, _| refused += 1,
    );
    assert_eq!(
        (out.sent, out.syscalls, out.buffer_full, out.failed, refused),
        (5, 3, 0, 0, 0)
    );
    for r in &receivers {
        let mut got = [0u8; 16];
        let (n, from) = r.recv_from(&mut got).unwrap();
        assert_eq!(
            (&got[..n], from),
            (&b"hello"[..], sender.local_addr().unwrap())
        );
    }
}

#[test]
fn a_datagram_the_kernel_refuses_on_its_own_does_not_stop_the_rest() {
    let r = bound();
    let sender = bound();
    // An IPv6 destination from an IPv4 socket: refused by the kernel for that message only.
    let dests: Vec<SocketAddr> = vec![
        r.local_addr().unwrap(),
        "[::1]:9".parse().unwrap(),
        r.local_addr().unwrap(),
    ];
    let mut sb = SendBatch::<1>::with_capacity(8);
    let mut refused = Vec::new();
    let out = sb.send(
        &sender,
        &dests,
        |&dest| Datagram {
            dest,
            segments: [b"x"],
        },
        |d, why| refused.push((*d, why)),
    );
    assert_eq!((out.sent, out.failed, out.buffer_full), (2, 1, 0));
    assert_eq!(refused, vec![(dests[1], Refusal::Failed)]);
    for _ in 0..2 {
        let mut got = [0u8; 4];
        assert_eq!(r.recv_from(&mut got).unwrap().0, 1);
    }
}

#[test]
fn an_empty_socket_gives_nothing_without_blocking_and_a_long_datagram_is_flagged_cut() {
    let r = bound();
    let s = bound();
    let mut rb = RecvBatch::with_capacity(2);
    let mut storage = [0u8; 8];
    let mut got = [Received::default()];
    // EAGAIN is "nothing yet", not an error, and the call returns at once.
    assert_eq!(rb.recv(&r, &mut [&mut storage[..]], &mut got).unwrap(), 0);

    s.send_to(&[7u8; 20], r.local_addr().unwrap()).unwrap();
    wait_readable(&r);
    assert_eq!(rb.recv(&r, &mut [&mut storage[..]], &mut got).unwrap(), 1);
    assert!(got[0].truncated);
    assert_eq!((got[0].len, storage), (8, [7u8; 8]));
}

#[test]
fn kernel_receive_timestamps_are_read_when_enabled() {
    let r = bound();
    let s = bound();
    enable_receive_timestamps(&r).unwrap();
    let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    s.send_to(&[1u8; 20], r.local_addr().unwrap()).unwrap();
    wait_readable(&r);
    let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let mut rb = RecvBatch::with_capacity(1);
    let mut storage = [0u8; 64];
    let mut got = [Received::default()];
    assert_eq!(rb.recv(&r, &mut [&mut storage[..]], &mut got).unwrap(), 1);
    let at = got[0].kernel_time.expect("a kernel timestamp");
    let slack = Duration::from_millis(1);
    assert!(
        at + slack >= before && at <= after + slack,
        "{at:?} not in {before:?}..={after:?}"
    );
}

#[test]
fn buffer_sizes_are_granted_as_asked_within_the_system_maximum() {
    let s = bound();
    // 32 KiB is under every distribution's default net.core.{r,w}mem_max (208 KiB).
    for buffer in [Buffer::Receive, Buffer::Send] {
        buffer.set_size(&s, 32 << 10).unwrap();
        assert_eq!(buffer.size(&s).unwrap(), 32 << 10, "{buffer:?}");
        // Forcing falls back to asking when the process may not force; either way it is granted.
        buffer.force_size(&s, 48 << 10).unwrap();
        assert_eq!(buffer.size(&s).unwrap(), 48 << 10, "{buffer:?}");
    }
}

//! UDP GSO through [`SendBatch::with_gso`], on loopback: bursts to one destination go as one
//! message each and arrive as the datagrams they were; a burst the kernel refuses as GSO goes
//! one by one.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use corecast_udp::{gso_supported, Datagram, SendBatch, SendOutcome};

fn bound() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// One datagram to send: where, a head of its own and a share of a common payload.
struct Copy {
    dest: SocketAddr,
    head: [u8; 2],
    tail: usize,
}

fn copies(plan: &[(usize, u8, usize)], dests: &[SocketAddr]) -> Vec<Copy> {
    plan.iter()
        .map(|&(to, id, tail)| Copy {
            dest: dests[to],
            head: [to as u8, id],
            tail,
        })
        .collect()
}

fn receive(r: &UdpSocket, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| {
            let mut buf = [0u8; 2048];
            let k = r.recv(&mut buf).unwrap();
            buf[..k].to_vec()
        })
        .collect()
}

fn nothing_more(r: &UdpSocket) {
    r.set_nonblocking(true).unwrap();
    assert!(
        r.recv(&mut [0u8; 16]).is_err(),
        "nothing beyond what was sent"
    );
}

fn want(c: &Copy, payload: &[u8]) -> Vec<u8> {
    [&c.head[..], &payload[..c.tail]].concat()
}

/// Send `items` through `sb` from `sender`, each a head and `payload` up to its tail; panics
/// on any refusal.
fn send_all(
    sb: &mut SendBatch<2>,
    sender: &UdpSocket,
    items: &[Copy],
    payload: &[u8],
) -> SendOutcome {
    sb.send(
        sender,
        items,
        |c| Datagram {
            dest: c.dest,
            segments: [&c.head, &payload[..c.tail]],
        },
        |_, why| panic!("refused: {why:?}"),
    )
}

#[test]
fn bursts_to_one_destination_go_as_one_message_each_and_arrive_whole_in_order() {
    let receivers: Vec<UdpSocket> = (0..2).map(|_| bound()).collect();
    let sender = bound();
    gso_supported(&sender).expect("loopback takes GSO on kernels from 4.18");
    let dests: Vec<SocketAddr> = receivers.iter().map(|r| r.local_addr().unwrap()).collect();
    let payload = vec![0xabu8; 1400];
    // Receiver 0: three of 1,000 bytes and a shorter last (one message); receiver 1: 1,000
    // then a longer one (two messages: only the last of a burst may differ, and only shorter),
    // then 0 again (a message of its own).
    let plan = [
        (0, 1, 998),
        (0, 2, 998),
        (0, 3, 998),
        (0, 4, 500),
        (1, 1, 998),
        (1, 2, 1198),
        (0, 5, 998),
    ];
    let items = copies(&plan, &dests);
    let mut sb = SendBatch::<2>::with_gso(8, 16);
    let out = send_all(&mut sb, &sender, &items, &payload);
    assert_eq!(
        (out.sent, out.messages, out.syscalls, out.gso_refused),
        (7, 4, 1, 0)
    );
    assert_eq!(
        (out.bursts, out.burst_datagrams),
        (1, 4),
        "one message of several"
    );
    let to0: Vec<&Copy> = items.iter().filter(|c| c.dest == dests[0]).collect();
    let to1: Vec<&Copy> = items.iter().filter(|c| c.dest == dests[1]).collect();
    let want0: Vec<Vec<u8>> = to0.iter().map(|c| want(c, &payload)).collect();
    let want1: Vec<Vec<u8>> = to1.iter().map(|c| want(c, &payload)).collect();
    assert_eq!(receive(&receivers[0], 5), want0);
    assert_eq!(receive(&receivers[1], 2), want1);
    nothing_more(&receivers[0]);
    nothing_more(&receivers[1]);
}

#[test]
fn a_burst_longer_than_the_segment_limit_is_split() {
    let r = bound();
    let sender = bound();
    let dest = r.local_addr().unwrap();
    let payload = vec![7u8; 200];
    let plan: Vec<(usize, u8, usize)> = (0..10).map(|i| (0, i, 200)).collect();
    let items = copies(&plan, &[dest]);
    let mut sb = SendBatch::<2>::with_gso(4, 4);
    let out = send_all(&mut sb, &sender, &items, &payload);
    // 4 + 4 + 2.
    assert_eq!((out.sent, out.messages), (10, 3));
    let wanted: Vec<Vec<u8>> = items.iter().map(|c| want(c, &payload)).collect();
    assert_eq!(receive(&r, 10), wanted);
    nothing_more(&r);
}

#[test]
fn a_burst_the_kernel_refuses_as_gso_is_sent_one_by_one_and_counted() {
    let r = bound();
    let sender = bound();
    // SO_NO_CHECK: a socket that sends without UDP checksums, which GSO cannot do; the kernel
    // refuses every GSO message on it (EINVAL), as a device that cannot checksum does (EIO).
    let one: libc::c_int = 1;
    // SAFETY: setsockopt reads one c_int from a live local, with its size.
    let rc = unsafe {
        libc::setsockopt(
            sender.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NO_CHECK,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    let dest = r.local_addr().unwrap();
    let payload = vec![9u8; 300];
    let plan: Vec<(usize, u8, usize)> = (0..5).map(|i| (0, i, 300)).collect();
    let items = copies(&plan, &[dest]);
    let mut sb = SendBatch::<2>::with_gso(8, 8);
    let out = send_all(&mut sb, &sender, &items, &payload);
    assert_eq!((out.sent, out.messages, out.gso_refused), (5, 5, 1));
    let wanted: Vec<Vec<u8>> = items.iter().map(|c| want(c, &payload)).collect();
    assert_eq!(receive(&r, 5), wanted);
    nothing_more(&r);
}

//! Writes the seeds of the fuzz targets that need a real peer to make, into
//! `fuzz/seeds/<target>/`, where `scripts/fuzz.sh` copies them into the corpora from:
//! - `dtls_entry`: the datagrams dimpl DTLS clients (1.2, 1.3 and auto) send to a corecast
//!   `Handshake` in a real in-memory handshake, flight by flight, in the target's input format
//!   (each datagram after a two-octet big-endian length);
//! - `srtcp_unprotect`: SRTCP (and SRTP) that `corecast-srtp` protected with the target's fixed
//!   keys, one seed per profile and packet kind, in the target's raw format.
//!
//! The seeds are committed; rerun after changing either target's input format or the keys:
//!
//!   CARGO_TARGET_DIR=target cargo run --manifest-path fuzz/seeds/Cargo.toml
//!
//! (from the repository root; the root target dir already holds most of what it builds).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use corecast_srtp::Profile;
use corecast_webrtc::dtls::{Certificate, Handshake};

#[path = "../../src/srtp_keys.rs"]
mod srtp_keys;

fn out_dir(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(target);
    std::fs::create_dir_all(&dir).expect("create the seed directory");
    dir
}

fn write(target: &str, name: &str, data: &[u8]) {
    let path = out_dir(target).join(name);
    std::fs::write(&path, data).expect("write a seed");
    println!("{} ({} octets)", path.display(), data.len());
}

/// A DTLS client's datagrams through a real handshake with a corecast server, up to the
/// moment it is connected (or 10 flights): each entry is one flight the client sent.
fn client_flights(version: &str) -> Vec<Vec<Vec<u8>>> {
    let now = Instant::now();
    let server_cert = Certificate::generate().expect("server certificate");
    let client_cert = Certificate::generate().expect("client certificate");
    let config = Arc::new(dimpl::Config::default());
    let cert = client_cert.dimpl_certificate().clone();
    let mut client = match version {
        "12" => dimpl::Dtls::new_12(config, cert, now),
        "13" => dimpl::Dtls::new_13(config, cert, now),
        _ => dimpl::Dtls::new_auto(config, cert, now),
    };
    client.set_active(true);
    client.handle_timeout(now).expect("client starts");
    let mut server = Handshake::new(&server_cert, client_cert.fingerprint(), now);
    let mut flights = Vec::new();
    let mut buf = vec![0u8; 4096];
    for _ in 0..10 {
        let mut flight = Vec::new();
        loop {
            match client.poll_output(&mut buf) {
                dimpl::Output::Packet(p) => flight.push(p.to_vec()),
                dimpl::Output::Timeout(_) => break,
                _ => {}
            }
        }
        if flight.is_empty() {
            break;
        }
        for datagram in &flight {
            let _ = server.handle_datagram(datagram, now);
        }
        flights.push(flight);
        while let Some(reply) = server.poll_transmit() {
            let _ = client.handle_packet(&reply);
        }
        if server.is_connected() {
            break;
        }
    }
    flights
}

/// Datagrams in `dtls_entry`'s format: each after a two-octet big-endian length.
fn length_prefixed(datagrams: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for d in datagrams {
        out.extend_from_slice(&(d.len() as u16).to_be_bytes());
        out.extend_from_slice(d);
    }
    out
}

fn rtcp(pt: u8, count: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80 | count, pt];
    out.extend_from_slice(&((body.len() / 4) as u16).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn main() {
    for version in ["12", "13", "auto"] {
        let flights = client_flights(version);
        println!("dimpl {version}: {} client flights", flights.len());
        write(
            "dtls_entry",
            &format!("seed-dimpl-{version}-client-hello"),
            &length_prefixed(&flights[0]),
        );
        let all: Vec<Vec<u8>> = flights.concat();
        write(
            "dtls_entry",
            &format!("seed-dimpl-{version}-handshake"),
            &length_prefixed(&all),
        );
    }

    // RTCP as a browser sends it: receiver report, PLI, and a compound with SDES.
    let ssrc = 0x1234_5678u32.to_be_bytes();
    let block = [
        0xca, 0xfe, 0xba, 0xbe, 0x02, 0x00, 0x00, 0x03, 0x00, 0x00, 0x12, 0x34, 0x00, 0x00, 0x00,
        0x10, 0x9f, 0x36, 0x43, 0x2a, 0x00, 0x02, 0x4a, 0x79,
    ];
    let rr = rtcp(201, 1, &[&ssrc[..], &block].concat());
    let pli = rtcp(206, 1, &[&ssrc[..], &[0xca, 0xfe, 0xba, 0xbe]].concat());
    let sdes = rtcp(202, 1, &[&ssrc[..], b"\x01\x04brws\x00\x00"].concat());
    let compound = [rr.clone(), sdes, pli.clone()].concat();
    let rtp_header = [0x80, 96, 0x12, 0x34, 0, 0, 0x10, 0, 0x12, 0x34, 0x56, 0x78];
    for profile in Profile::ALL {
        let name = format!("{profile:?}").to_ascii_lowercase();
        let mut ctx = srtp_keys::context(profile);
        let mut seed = vec![0u8];
        for (kind, packet) in [("rr", &rr), ("pli", &pli), ("compound", &compound)] {
            let mut out = vec![0u8; 1500];
            let len = ctx.protect_rtcp(&[packet], &mut out).expect("protect RTCP");
            // The target's own contexts (same keys module) open it: the seed reaches the
            // success path, not only the refusals.
            let mut check = out[..len].to_vec();
            let plain = srtp_keys::context(profile)
                .unprotect_rtcp(&mut check)
                .expect("the seed authenticates with the target's keys");
            assert_eq!(&check[..plain], &packet[..]);
            let mut one = vec![0u8];
            one.extend_from_slice(&(len as u16).to_be_bytes());
            one.extend_from_slice(&out[..len]);
            write("srtcp_unprotect", &format!("seed-{name}-{kind}"), &one);
            seed.extend_from_slice(&one[1..]);
        }
        let mut out = vec![0u8; 1500];
        let len = ctx
            .protect_rtp(&[&rtp_header, b"a keyframe, or so it says"], &mut out)
            .expect("protect RTP");
        seed.extend_from_slice(&(len as u16).to_be_bytes());
        seed.extend_from_slice(&out[..len]);
        // All of them, then the first again: a replay.
        let first_len = usize::from(u16::from_be_bytes([seed[1], seed[2]]));
        let first = seed[1..3 + first_len].to_vec();
        seed.extend_from_slice(&first);
        write("srtcp_unprotect", &format!("seed-{name}-sequence"), &seed);
    }
}

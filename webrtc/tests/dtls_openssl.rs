//! corecast's DTLS server against an independent client: `openssl s_client -dtls1_2` over a
//! loopback UDP socket. The keying material openssl exports (`-keymatexport
//! EXTRACTOR-dtls_srtp`) must equal ours, and SRTP keyed from openssl's view must round-trip
//! with ours. openssl missing is a failure, not a skip.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use corecast_srtp::{Profile, SrtpContext};
use corecast_webrtc::dtls::{
    Certificate, DtlsError, Fingerprint, Handshake, HandshakeEvent, ServerConfig, SrtpKeys,
    EXPORTER_LABEL,
};

/// Every run of a case is bounded by this, openssl included (it is killed after).
const CASE_LIMIT: Duration = Duration::from_secs(10);

fn openssl(args: &[&str], dir: &Path) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed (Debian package openssl) for this test");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A scratch directory with a fresh P-256 client certificate; returns it and its fingerprint.
fn client_certificate(name: &str) -> (PathBuf, Fingerprint) {
    let dir = std::env::temp_dir().join(format!("corecast-dtls-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "k.pem",
            "-out",
            "c.pem",
            "-days",
            "1",
            "-subj",
            "/CN=viewer",
        ],
        &dir,
    );
    let text = openssl(
        &["x509", "-in", "c.pem", "-noout", "-fingerprint", "-sha256"],
        &dir,
    );
    // "sha256 Fingerprint=AB:CD:..."
    let value = text.trim().split_once('=').expect("fingerprint line").1;
    (dir, Fingerprint::parse("sha-256", value).unwrap())
}

/// Kills the child however the test ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Outcome {
    event: HandshakeEvent,
    /// What openssl printed: the negotiated profile and the exported keying material.
    openssl_profile: Option<String>,
    openssl_material: Option<Vec<u8>>,
}

/// Run one handshake of our server (on a loopback socket) against `openssl s_client` with
/// `client_args` added.
fn run_case(name: &str, expect: Option<Fingerprint>, client_args: &[&str]) -> Outcome {
    run_case_with(&ServerConfig::default(), name, expect, client_args)
}

/// [`run_case`] with a server that accepts the SRTP profiles `config` does.
fn run_case_with(
    config: &ServerConfig,
    name: &str,
    expect: Option<Fingerprint>,
    client_args: &[&str],
) -> Outcome {
    let (dir, fingerprint) = client_certificate(name);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let port = socket.local_addr().unwrap().port().to_string();
    let connect = format!("127.0.0.1:{port}");
    let mut args = vec!["s_client", "-dtls1_2", "-connect", &connect];
    args.extend_from_slice(client_args);
    let child = Command::new("openssl")
        .args(&args)
        .current_dir(&dir)
        // Kept open: s_client stays connected until killed, after printing its summary.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl must be installed for this test");
    let mut child = Killed(child);
    let (lines_tx, lines) = mpsc::channel();
    let stdout = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    let cert = Certificate::generate().unwrap();
    let start = Instant::now();
    let mut hs = Handshake::with_config(config, &cert, expect.unwrap_or(fingerprint), start);
    let mut peer: Option<SocketAddr> = None;
    let mut event = None;
    let mut openssl_profile = None;
    let mut openssl_material = None;
    let mut buf = [0u8; 2048];
    while start.elapsed() < CASE_LIMIT {
        match socket.recv_from(&mut buf) {
            Ok((len, from)) => {
                peer = Some(from);
                // Drops are fine here; the outcome is what is checked.
                let _ = hs.handle_datagram(&buf[..len], Instant::now());
            }
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "{e}"
            ),
        }
        if hs.poll_timeout().is_some_and(|due| due <= Instant::now()) {
            hs.handle_timeout(Instant::now());
        }
        while let Some(datagram) = hs.poll_transmit() {
            socket.send_to(&datagram, peer.unwrap()).unwrap();
        }
        if event.is_none() {
            event = hs.poll_event();
        }
        while let Ok(line) = lines.try_recv() {
            let line = line.trim();
            if let Some(p) = line.strip_prefix("SRTP Extension negotiated, profile=") {
                openssl_profile = Some(p.to_string());
            }
            if let Some(hex) = line.strip_prefix("Keying material: ") {
                openssl_material = Some(decode_hex(hex));
            }
        }
        match &event {
            Some(HandshakeEvent::Connected(_)) if openssl_material.is_some() => break,
            Some(HandshakeEvent::Failed(_)) => break,
            _ => {}
        }
    }
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
    Outcome {
        event: event.expect("the handshake ended within the case limit"),
        openssl_profile,
        openssl_material,
    }
}

fn decode_hex(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn agrees_with_openssl(openssl_name: &str, profile: Profile) {
    let len = (2 * profile.keying_material_len()).to_string();
    let outcome = run_case(
        openssl_name,
        None,
        &[
            "-use_srtp",
            openssl_name,
            "-keymatexport",
            EXPORTER_LABEL,
            "-keymatexportlen",
            &len,
            "-cert",
            "c.pem",
            "-key",
            "k.pem",
        ],
    );
    let keys = match outcome.event {
        HandshakeEvent::Connected(keys) => keys,
        other => panic!("{other:?}"),
    };
    assert_eq!(keys.profile(), profile);
    assert_eq!(outcome.openssl_profile.as_deref(), Some(openssl_name));
    let material = outcome
        .openssl_material
        .expect("openssl printed keying material");
    assert_eq!(material.len(), 2 * profile.keying_material_len());
    assert_eq!(material, keys.keying_material());

    // The viewer (openssl's view of the material) protects with the client half; our inbound
    // reads it. Our outbound is read with the server half.
    let viewer = SrtpKeys::from_keying_material(profile, &material).unwrap();
    let (ck, cs) = viewer.client_write();
    let (sk, ss) = viewer.server_write();
    let mut viewer_send = SrtpContext::new(profile, ck, cs, 2).unwrap();
    let mut viewer_recv = SrtpContext::new(profile, sk, ss, 2).unwrap();
    let (mut inbound, mut outbound) = (keys.inbound(2), keys.outbound(2));
    let header = [0x80, 96, 0, 1, 0, 0, 0, 9, 0xca, 0xfe, 0xba, 0xbe];
    let mut buf = [0u8; 256];
    let n = viewer_send
        .protect_rtp(&[&header, b"up"], &mut buf)
        .unwrap();
    let plain = inbound.unprotect_rtp(&mut buf[..n]).unwrap();
    assert_eq!(&buf[12..plain], b"up");
    let n = outbound.protect_rtp(&[&header, b"down"], &mut buf).unwrap();
    let plain = viewer_recv.unprotect_rtp(&mut buf[..n]).unwrap();
    assert_eq!(&buf[12..plain], b"down");
}

#[test]
fn openssl_aead_aes_256_gcm_keys_match() {
    agrees_with_openssl("SRTP_AEAD_AES_256_GCM", Profile::AeadAes256Gcm);
}

#[test]
fn openssl_aead_aes_128_gcm_keys_match() {
    agrees_with_openssl("SRTP_AEAD_AES_128_GCM", Profile::AeadAes128Gcm);
}

#[test]
fn openssl_aes128_cm_sha1_80_keys_match() {
    agrees_with_openssl("SRTP_AES128_CM_SHA1_80", Profile::Aes128CmHmacSha1_80);
}

#[test]
fn openssl_with_the_wrong_fingerprint_fails() {
    let stranger = Certificate::generate().unwrap().fingerprint();
    let outcome = run_case(
        "mismatch",
        Some(stranger),
        &[
            "-use_srtp",
            "SRTP_AEAD_AES_256_GCM",
            "-cert",
            "c.pem",
            "-key",
            "k.pem",
        ],
    );
    assert_eq!(
        outcome.event,
        HandshakeEvent::Failed(DtlsError::FingerprintMismatch)
    );
}

#[test]
fn openssl_without_a_certificate_fails() {
    let outcome = run_case("nocert", None, &["-use_srtp", "SRTP_AEAD_AES_256_GCM"]);
    assert_eq!(
        outcome.event,
        HandshakeEvent::Failed(DtlsError::NoCertificate)
    );
}

#[test]
fn openssl_without_use_srtp_fails() {
    let outcome = run_case("nosrtp", None, &["-cert", "c.pem", "-key", "k.pem"]);
    assert_eq!(
        outcome.event,
        HandshakeEvent::Failed(DtlsError::NoSrtpProfile)
    );
}

/// The server's preference decides, not the order the client lists its profiles in.
#[test]
fn the_server_picks_aes_128_gcm_from_a_client_that_lists_sha1_first() {
    let offer = "SRTP_AES128_CM_SHA1_80:SRTP_AEAD_AES_256_GCM:SRTP_AEAD_AES_128_GCM";
    let certificate = ["-cert", "c.pem", "-key", "k.pem"];
    let outcome = run_case(
        "order",
        None,
        &[&["-use_srtp", offer][..], &certificate].concat(),
    );
    match outcome.event {
        HandshakeEvent::Connected(keys) => assert_eq!(keys.profile(), Profile::AeadAes128Gcm),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        outcome.openssl_profile.as_deref(),
        Some("SRTP_AEAD_AES_128_GCM")
    );
}

/// A client that offers only a profile the server leaves out gets no keys.
#[test]
fn a_client_offering_only_a_profile_the_server_refuses_fails() {
    let config = ServerConfig::new(&[Profile::AeadAes128Gcm, Profile::AeadAes256Gcm]).unwrap();
    let args = [
        "-use_srtp",
        "SRTP_AES128_CM_SHA1_80",
        "-cert",
        "c.pem",
        "-key",
        "k.pem",
    ];
    let outcome = run_case_with(&config, "refused", None, &args);
    assert_eq!(
        outcome.event,
        HandshakeEvent::Failed(DtlsError::NoSrtpProfile)
    );
}

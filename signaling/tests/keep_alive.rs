//! A refused request with a body leaves its keep-alive connection usable, or says it will close
//! it (`Connection: close`): a client must never find out by a broken pipe on its next request.
//!
//! The client here is raw TCP and writes the body only after giving the server a moment to answer
//! from the headers alone: that is when a server that refuses without reading the body has
//! nothing to discard, and (before the fix) closed the connection without saying so.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use corecast_signaling::ApiConfig;
use support::Harness;

/// How long the client waits for an answer to the headers before it sends the body. The outcome
/// does not depend on it: a server that waits for the body gets it right after.
const HEADERS_ALONE: Duration = Duration::from_millis(200);
const DEADLINE: Duration = Duration::from_secs(5);

struct Response {
    status: u16,
    /// Header names lowercased.
    headers: Vec<(String, String)>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// One connection and what was read from it but not yet parsed.
struct Conn {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let tcp = TcpStream::connect(addr).expect("connect to the API on loopback");
        tcp.set_nodelay(true).unwrap();
        Conn {
            tcp,
            buf: Vec::new(),
        }
    }

    /// Reads until `done(buf)` or EOF, or `until` passes. False on EOF (or a reset) first.
    fn read_until(&mut self, until: Instant, done: impl Fn(&[u8]) -> bool) -> bool {
        let mut chunk = [0u8; 4096];
        while !done(&self.buf) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            self.tcp.set_read_timeout(Some(left)).unwrap();
            match self.tcp.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return false,
            }
        }
        true
    }

    /// Sends a request's head, then (after [`HEADERS_ALONE`], or at once if the server answers
    /// sooner) its body, and reads the whole response. `None`: the connection was closed.
    fn request(&mut self, head: &str, body: &[u8]) -> Option<Response> {
        self.tcp.write_all(head.as_bytes()).ok()?;
        if !body.is_empty() {
            self.read_until(Instant::now() + HEADERS_ALONE, |b| !b.is_empty());
            // The server may have answered and closed already; that shows in the reading below.
            let _ = self.tcp.write_all(body);
        }
        let deadline = Instant::now() + DEADLINE;
        if !self.read_until(deadline, |b| find_head_end(b).is_some()) {
            return None;
        }
        let end = find_head_end(&self.buf).expect("a complete head within the deadline");
        let head = String::from_utf8(self.buf[..end].to_vec()).expect("an ASCII head");
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse().expect("a numeric Content-Length"))
            .expect("responses here carry a Content-Length");
        let total = end + 4 + length;
        assert!(
            self.read_until(deadline, |b| b.len() >= total),
            "the connection closed in the middle of the response body"
        );
        assert!(
            self.buf.len() >= total,
            "no whole response within the deadline"
        );
        self.buf.drain(..total);
        Some(Response { status, headers })
    }

    /// True once the server has closed the connection (EOF or reset) within the deadline.
    fn closed_by_server(&mut self) -> bool {
        !self.read_until(Instant::now() + DEADLINE, |_| false)
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

fn with_body(method: &str, path: &str, content_type: &str, body: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: corecast\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
}

const HEALTHZ: &str = "GET /healthz HTTP/1.1\r\nHost: corecast\r\n\r\n";

/// The refusal of the first request, then `GET /healthz` on the same connection: answered, or
/// the refusal said `Connection: close` and the server did close.
fn refused_then_next(addr: SocketAddr, head: &str, body: &str, status: u16) -> &'static str {
    let mut conn = Conn::open(addr);
    let first = conn
        .request(head, body.as_bytes())
        .unwrap_or_else(|| panic!("no answer to {head:?}"));
    assert_eq!(first.status, status, "{head:?}");
    if first.closes() {
        assert!(
            conn.closed_by_server(),
            "{head:?}: said Connection: close but kept the connection open"
        );
        return "closed";
    }
    let next = conn.request(HEALTHZ, b"").unwrap_or_else(|| {
        panic!("{head:?}: refused with {status}, then the keep-alive connection was closed without Connection: close")
    });
    assert_eq!(next.status, 200, "the request after {head:?}");
    "kept"
}

#[test]
fn a_refused_request_with_a_body_keeps_its_connection_or_says_it_closes() {
    let h = Harness::open();
    let addr = h.server.local_addr();
    let json = r#"{"name":"a","codec":"vp8"}"#;
    let cases = [
        // Refusals that can discard a small body keep the connection.
        (
            with_body("POST", "/v1/sources", "text/plain", json),
            400,
            "kept",
        ),
        (
            with_body("PUT", "/v1/sources", "application/json", json),
            405,
            "kept",
        ),
        (
            with_body("POST", "/v1/nothing", "application/json", json),
            404,
            "kept",
        ),
        // A bad id is refused before the body is looked at: the server says it closes.
        (
            with_body("POST", "/v1/subscribers/x/switch", "application/json", json),
            400,
            "closed",
        ),
    ];
    for (head, status, outcome) in &cases {
        assert_eq!(
            refused_then_next(addr, head, json, *status),
            *outcome,
            "{head:?}"
        );
    }
    // A body declared far past the limit is refused unread: the 413 says the connection closes.
    let mut conn = Conn::open(addr);
    let head = "POST /v1/sources HTTP/1.1\r\nHost: corecast\r\nContent-Type: application/json\r\n\
                Content-Length: 999999999\r\n\r\n";
    let r = conn
        .request(head, b"")
        .expect("an answer to the oversized body");
    assert_eq!(r.status, 413);
    assert!(r.closes(), "{:?}", r.headers);
    assert!(conn.closed_by_server());
}

#[test]
fn a_request_refused_for_its_token_says_it_closes() {
    let h = Harness::start(
        ApiConfig {
            token: Some("s3cret".into()),
            ..ApiConfig::default()
        },
        100,
    );
    let json = r#"{"name":"a","codec":"vp8"}"#;
    let head = with_body("POST", "/v1/sources", "application/json", json);
    // Unauthenticated bodies are not read: the 401 must say so.
    assert_eq!(
        refused_then_next(h.server.local_addr(), &head, json, 401),
        "closed"
    );
}

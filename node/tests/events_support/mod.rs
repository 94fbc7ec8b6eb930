//! A small real HTTP/1.1 server on 127.0.0.1 for the event handler tests: it records every
//! request (arrival time, headers, body) and answers as its [`Behavior`] says.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How the server answers.
#[derive(Clone, Copy, Debug)]
pub enum Behavior {
    /// 500 to the first `n` requests, 200 afterwards.
    FailFirst(usize),
    /// Reads each request, never answers, holds the connection open until the client closes it.
    Hang,
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Request {
    pub at: Instant,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

pub struct Server {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    pub fn start(behavior: Behavior) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(AtomicUsize::new(0));
        let (recorded, stopping) = (requests.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (recorded, seen) = (recorded.clone(), seen.clone());
                // One thread per connection, so a hanging one does not block the others.
                thread::spawn(move || serve(conn, behavior, &recorded, &seen));
            }
        });
        Server {
            addr,
            requests,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// The envelopes of the requests answered 200, in order, flattened.
    pub fn accepted_events(&self) -> Vec<serde_json::Value> {
        self.requests()
            .iter()
            .filter(|r| r.status == 200)
            .flat_map(|r| r.json().as_array().expect("a JSON array").clone())
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Unblock `accept` so the listener thread sees the flag and ends.
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(conn: TcpStream, behavior: Behavior, recorded: &Mutex<Vec<Request>>, seen: &AtomicUsize) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone stream"));
    let mut conn = conn;
    // Keep-alive: serve requests on this connection until the client closes it.
    while let Some((headers, body)) = read_request(&mut reader) {
        let n = seen.fetch_add(1, Ordering::SeqCst);
        let status = match behavior {
            Behavior::FailFirst(k) if n < k => 500,
            Behavior::FailFirst(_) => 200,
            Behavior::Hang => 0,
        };
        recorded.lock().unwrap().push(Request {
            at: Instant::now(),
            status,
            headers,
            body,
        });
        if status == 0 {
            // Never answer; wait for the client to give up and close (read returns 0 or fails).
            let _ = reader.read(&mut [0u8; 1]);
            return;
        }
        let reason = if status == 200 {
            "OK"
        } else {
            "Internal Server Error"
        };
        let reply = format!("HTTP/1.1 {status} {reason}\r\nContent-Length: 2\r\n\r\nok");
        if conn.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

type Head = Vec<(String, String)>;

/// Reads one request (head and `Content-Length` body); None at end of stream.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(Head, Vec<u8>)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    assert!(
        line.starts_with("POST "),
        "unexpected request line {line:?}"
    );
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (k, v) = trimmed.split_once(':')?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().expect("numeric content-length"))
        .expect("the client sends Content-Length");
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some((headers, body))
}

/// Polls `cond` until it holds or `limit` passes; true if it held. Tests synchronise with this,
/// never with a fixed sleep.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

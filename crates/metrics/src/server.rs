//! A minimal HTTP/1.1 server for `GET /metrics` on a std `TcpListener`.
//!
//! One background thread accepts connections and answers them one at a time: each connection
//! carries one request and is closed after the response (`Connection: close`). A client gets
//! [`READ_DEADLINE`] to send its request head, which is capped at [`MAX_HEAD`] bytes, so a slow
//! or malicious client delays scrapes by at most that long and cannot exhaust memory or threads.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::{Metrics, CONTENT_TYPE};

/// Time a client has to send its whole request head.
const READ_DEADLINE: Duration = Duration::from_secs(5);
/// Time a response may take to write.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head accepted (request line and headers).
const MAX_HEAD: usize = 8 * 1024;
/// After a response, unread request bytes (a body) are drained for at most this long, so that
/// closing the socket does not reset the connection before the client has read the response.
const DRAIN_TIME: Duration = Duration::from_millis(100);
/// Back-off after a failed `accept` (out of file descriptors, ...), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A running metrics endpoint, started by [`Metrics::serve`].
///
/// The server thread stops when this is dropped or [`shutdown`](Self::shutdown) is called; both
/// wait for a request being answered to finish.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    pub(crate) fn start(metrics: Metrics, addr: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = thread::Builder::new().name("velarium-metrics".into()).spawn({
            let stop = Arc::clone(&stop);
            move || accept_loop(&listener, &metrics, &stop)
        })?;
        Ok(Self { local_addr, stop, thread: Some(thread) })
    }

    /// The address the server listens on (with the actual port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops the server and waits for its thread to end; the port is closed on return.
    pub fn shutdown(self) {
        // Drop does the work.
    }

    fn stop(&mut self) {
        let Some(thread) = self.thread.take() else { return };
        self.stop.store(true, Ordering::Release);
        // Wake the thread blocked in `accept` with a connection of our own; it then sees `stop`.
        let ip = match self.local_addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let wake = SocketAddr::new(ip, self.local_addr.port());
        if TcpStream::connect_timeout(&wake, Duration::from_secs(1)).is_ok() {
            let _ = thread.join();
        }
        // Otherwise the thread is left to end at its next connection rather than hang the caller.
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: &TcpListener, metrics: &Metrics, stop: &AtomicBool) {
    loop {
        let accepted = listener.accept();
        if stop.load(Ordering::Acquire) {
            return;
        }
        match accepted {
            // Errors of one connection (timeouts, resets) concern that client only.
            Ok((stream, _)) => {
                let _ = handle(stream, metrics);
            }
            Err(_) => thread::sleep(ACCEPT_BACKOFF),
        }
    }
}

/// A response: status, extra headers, body, and whether to send the body (not for `HEAD`).
struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    allow: bool,
    body: String,
    send_body: bool,
}

impl Response {
    fn error(status: u16, reason: &'static str) -> Self {
        Self {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            allow: false,
            body: format!("{status} {reason}\n"),
            send_body: true,
        }
    }
}

fn handle(mut stream: TcpStream, metrics: &Metrics) -> io::Result<()> {
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let head = match read_head(&mut stream)? {
        Head::Complete(head) => head,
        Head::TooLarge => {
            return respond(stream, Response::error(431, "Request Header Fields Too Large"))
        }
        Head::Incomplete(0) => return Ok(()),
        Head::Incomplete(_) => return respond(stream, Response::error(400, "Bad Request")),
    };
    let response = route(&head, metrics);
    respond(stream, response)
}

fn route(head: &[u8], metrics: &Metrics) -> Response {
    let Some((method, target)) = parse_request_line(head) else {
        return Response::error(400, "Bad Request");
    };
    let path = target.split(['?', '#']).next().unwrap_or(target);
    if path != "/metrics" {
        return Response::error(404, "Not Found");
    }
    match method {
        "GET" | "HEAD" => Response {
            status: 200,
            reason: "OK",
            content_type: CONTENT_TYPE,
            allow: false,
            body: metrics.render(),
            send_body: method == "GET",
        },
        _ => Response { allow: true, ..Response::error(405, "Method Not Allowed") },
    }
}

/// `METHOD SP TARGET SP HTTP/1.x` from the first line of `head`, or `None` if it is not one.
fn parse_request_line(head: &[u8]) -> Option<(&str, &str)> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line.strip_suffix(b"\r").unwrap_or(line)).ok()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    let valid = parts.next().is_none()
        && token(method)
        && target.starts_with('/')
        && target.bytes().all(|b| b.is_ascii_graphic())
        && matches!(version, "HTTP/1.0" | "HTTP/1.1");
    valid.then_some((method, target))
}

enum Head {
    /// The request line and headers, up to and including the blank line.
    Complete(Vec<u8>),
    /// More than [`MAX_HEAD`] bytes without a blank line.
    TooLarge,
    /// The client closed, or ran out of time, after sending this many bytes.
    Incomplete(usize),
}

fn read_head(stream: &mut TcpStream) -> io::Result<Head> {
    let deadline = Instant::now() + READ_DEADLINE;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Head::Incomplete(head.len()));
        }
        stream.set_read_timeout(Some(left))?;
        let read = match stream.read(&mut chunk) {
            Ok(0) => return Ok(Head::Incomplete(head.len())),
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Ok(Head::Incomplete(head.len()))
            }
            Err(e) => return Err(e),
        };
        // Look for the end of the head from just before the new bytes (it may straddle reads).
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..read]);
        if let Some(end) = find_head_end(&head[from..]) {
            head.truncate(from + end);
            return Ok(Head::Complete(head));
        }
        if head.len() > MAX_HEAD {
            return Ok(Head::TooLarge);
        }
    }
}

/// The length of the head in `bytes` (through `\r\n\r\n` or a bare `\n\n`), if it ends there.
fn find_head_end(bytes: &[u8]) -> Option<usize> {
    (0..bytes.len()).find_map(|i| {
        let rest = &bytes[i..];
        if rest.starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if rest.starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

fn respond(mut stream: TcpStream, response: Response) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        response.reason,
        response.content_type,
        response.body.len(),
    );
    if response.allow {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    if response.send_body {
        out.push_str(&response.body);
    }
    stream.write_all(out.as_bytes())?;
    stream.flush()?;
    // Half-close, then drain what the client may still send, so the close is not a reset.
    stream.shutdown(Shutdown::Write)?;
    let deadline = Instant::now() + DRAIN_TIME;
    let mut sink = [0u8; 1024];
    let mut drained = 0usize;
    while drained < 64 * 1024 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(read) => drained += read,
        }
    }
    Ok(())
}

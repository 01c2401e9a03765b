//! The node's Prometheus endpoint: `GET /metrics` on `listen:metrics_port`,
//! answered from the shards' published counters by one plain std thread.
//!
//! The thread never touches a shard: it reads the [`Published`] slots the
//! shards write every [`crate::stats::PUBLISH_EVERY`] (lock-free, one whole
//! snapshot each), so a scrape costs the data path nothing, and the
//! numbers are at most that old. The page is Prometheus text exposition
//! 0.0.4 ([`render`]): per-shard series labelled
//! `shard="ID",node="NAME",cpu="CPU"`, counters named `percore_*_total`,
//! gauges without the suffix, and the node's `percore_uptime_seconds`.
//!
//! # What a scraper may hold
//!
//! The thread serves one connection at a time (a scrape is one small
//! request and one page), so a slow or hostile peer can delay other
//! scrapes but never reach the shards. Each limit is a deadline or a cap the
//! peer cannot move:
//!
//! - the request head (request line and headers) must arrive whole within
//!   [`READ_TIMEOUT`] (2 s) of the accept, however its bytes trickle in
//!   (the deadline is absolute, not per read); else `408` and the close;
//! - the head may be at most [`MAX_HEAD`] (8 KiB); past that, `431` and the
//!   close. A request body is never read;
//! - the reply must be taken within [`WRITE_TIMEOUT`] (2 s) of its first
//!   byte; a peer that does not read is cut off there. After the reply the
//!   thread waits at most [`LINGER`] for the peer's close (so that the
//!   reply is not lost to a reset), then closes anyway;
//! - at most [`BACKLOG`] (16) accepted connections wait in the kernel for
//!   their turn; more get no connection until a place frees.
//!
//! So one connection holds the thread for at most about 4.3 s, and a
//! scrape queued behind `k` hostile connections waits at most `k` times
//! that. Only `GET` is served (others get `405`), only `/metrics` (a query
//! string is ignored; other paths get `404`), one request per connection
//! (`Connection: close`). The node stops the thread when it stops
//! ([`Metrics`] is dropped): it notices within [`TICK`], whatever a peer does.

use crate::server::{StartError, bind_with_backlog};
use crate::stats::Published;
use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wire::msg::ShardCounters;

/// Accepted connections the kernel holds while the thread serves one.
pub const BACKLOG: i32 = 16;
/// Longest request head (request line and headers) read, in bytes.
pub const MAX_HEAD: usize = 8 << 10;
/// A request head must be complete within this time of the accept.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// A reply must be taken within this time of its first byte.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// After the reply, how long the thread waits for the peer to close.
pub const LINGER: Duration = Duration::from_millis(250);
/// The longest single wait of the thread: how soon it notices a stop.
pub const TICK: Duration = Duration::from_millis(100);

/// The `Content-Type` of the page: Prometheus text exposition 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds the metrics port with a backlog of [`BACKLOG`]; a taken port is
/// [`StartError::PortInUse`] naming it as the metrics port.
pub fn bind(addr: &str, port: u16) -> Result<TcpListener, StartError> {
    bind_with_backlog(addr, port, BACKLOG).map_err(|e| match e {
        StartError::PortInUse { endpoint } => StartError::PortInUse { endpoint: format!("metrics port {endpoint}") },
        StartError::Bind { endpoint, source } => {
            StartError::Bind { endpoint: format!("metrics port {endpoint}"), source }
        }
        other => other,
    })
}

/// The running metrics thread. Dropping it stops the thread and waits for
/// it (at most about [`TICK`]).
pub struct Metrics {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Metrics {
    /// Starts serving `listener` (from [`bind`]) for node `node`, up since
    /// `started`, whose shards publish into `shards` (`(id, cpu, slot)` in
    /// local order). If the thread cannot be started the node serves on
    /// without metrics: that is said on `out`, and `None` returned.
    pub fn spawn(
        listener: TcpListener,
        node: &str,
        started: Instant,
        shards: &[(u32, u32, Arc<Published>)],
        out: &mut dyn Write,
    ) -> Option<Metrics> {
        let stop = Arc::new(AtomicBool::new(false));
        let endpoint = listener.local_addr().map_or_else(|_| "?".to_string(), |a| a.to_string());
        let page = Page { node: node.to_string(), started, shards: shards.to_vec() };
        let flag = stop.clone();
        let spawned =
            std::thread::Builder::new().name("percore-metrics".into()).spawn(move || serve(listener, &page, &flag));
        match spawned {
            Ok(thread) => Some(Metrics { stop, thread: Some(thread) }),
            Err(e) => {
                let _ = writeln!(
                    out,
                    "percore-server: node {node}: no metrics on {endpoint}: cannot start its thread: {e}"
                );
                None
            }
        }
    }
}

impl Drop for Metrics {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a scrape reads.
struct Page {
    node: String,
    started: Instant,
    shards: Vec<(u32, u32, Arc<Published>)>,
}

impl Page {
    fn render(&self) -> String {
        let counters: Vec<(u32, u32, ShardCounters)> =
            self.shards.iter().map(|(id, cpu, p)| (*id, *cpu, p.load())).collect();
        render(&self.node, self.started.elapsed(), &counters)
    }
}

/// The thread: accept, serve one connection, repeat, until `stop`.
fn serve(listener: TcpListener, page: &Page, stop: &AtomicBool) {
    if listener.set_nonblocking(true).is_err() {
        eprintln!("percore-server: node {}: metrics: cannot make the listener non-blocking; no metrics", page.node);
        return;
    }
    let mut warned = false;
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => answer(stream, page, stop),
            Err(e) if e.kind() == ErrorKind::WouldBlock => wait_readable(&listener, TICK),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                // Out of descriptors and the like: say so once, back off, go on.
                if !warned {
                    eprintln!("percore-server: node {}: metrics: accept failed: {e}", page.node);
                    warned = true;
                }
                std::thread::sleep(TICK);
            }
        }
    }
}

/// Waits until `listener` has a connection or `limit` passes.
fn wait_readable(listener: &TcpListener, limit: Duration) {
    let mut fd = libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one pollfd we own, for a descriptor the listener keeps open
    // for the whole call.
    unsafe {
        libc::poll(&mut fd, 1, limit.as_millis() as libc::c_int);
    }
}

/// What a request asked for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// `GET /metrics`.
    Metrics,
    /// Another path.
    NotFound,
    /// Another method.
    MethodNotAllowed,
    /// Not an HTTP/1.x request line.
    BadRequest,
}

/// Routes a request head's first line.
fn route(head: &[u8]) -> Route {
    let line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if method.is_empty() || target.is_empty() || !version.starts_with(b"HTTP/1.") {
        return Route::BadRequest;
    }
    if method != b"GET" {
        return Route::MethodNotAllowed;
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or(&[]);
    if path == b"/metrics" { Route::Metrics } else { Route::NotFound }
}

/// Where the request head ends (the byte after its blank line), looking
/// from `from` on.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    (start..buf.len()).find_map(|i| {
        let rest = &buf[i..];
        if rest.starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if rest.starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

/// Serves one connection: read the head by its deadline, answer, close.
fn answer(mut stream: TcpStream, page: &Page, stop: &AtomicBool) {
    let accepted = Instant::now();
    // Accepted sockets do not inherit the listener's O_NONBLOCK on Linux;
    // say so anyway, the waits below rely on it.
    if stream.set_nonblocking(false).is_err() {
        return;
    }
    let mut head = vec![0u8; MAX_HEAD];
    let (mut len, mut searched) = (0, 0);
    let deadline = accepted + READ_TIMEOUT;
    let reply = loop {
        if let Some(end) = head_end(&head[..len], searched) {
            break match route(&head[..end]) {
                Route::Metrics => response("200 OK", CONTENT_TYPE, &page.render()),
                Route::NotFound => response("404 Not Found", "text/plain", "only /metrics is served here\n"),
                Route::MethodNotAllowed => {
                    response("405 Method Not Allowed\r\nAllow: GET", "text/plain", "only GET is served here\n")
                }
                Route::BadRequest => response("400 Bad Request", "text/plain", "not an HTTP/1.x request\n"),
            };
        }
        if len == MAX_HEAD {
            break response("431 Request Header Fields Too Large", "text/plain", "the request head passes 8 KiB\n");
        }
        let Some(left) = remaining(deadline, stop) else {
            break response("408 Request Timeout", "text/plain", "the request head did not arrive within 2 s\n");
        };
        if stream.set_read_timeout(Some(left.min(TICK))).is_err() {
            return;
        }
        match stream.read(&mut head[len..]) {
            Ok(0) => return,
            Ok(n) => {
                searched = len;
                len += n;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(_) => return,
        }
    };
    if write_by(&mut stream, reply.as_bytes(), Instant::now() + WRITE_TIMEOUT, stop) {
        let _ = stream.shutdown(Shutdown::Write);
        linger(&mut stream, Instant::now() + LINGER, stop);
    }
}

/// Time left until `deadline`, or `None` if it has passed or the node is stopping.
fn remaining(deadline: Instant, stop: &AtomicBool) -> Option<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    (!left.is_zero() && !stop.load(Ordering::Relaxed)).then_some(left)
}

/// Writes all of `bytes` by `deadline`; false if the peer did not take them.
fn write_by(stream: &mut TcpStream, mut bytes: &[u8], deadline: Instant, stop: &AtomicBool) -> bool {
    while !bytes.is_empty() {
        let Some(left) = remaining(deadline, stop) else { return false };
        if stream.set_write_timeout(Some(left.min(TICK))).is_err() {
            return false;
        }
        match stream.write(bytes) {
            Ok(0) => return false,
            Ok(n) => bytes = &bytes[n..],
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(_) => return false,
        }
    }
    true
}

/// Reads and drops what the peer still sends until it closes or `deadline`
/// passes, so that the close does not reset a reply it has not read yet.
fn linger(stream: &mut TcpStream, deadline: Instant, stop: &AtomicBool) {
    let mut sink = [0u8; 4096];
    while let Some(left) = remaining(deadline, stop) {
        if stream.set_read_timeout(Some(left.min(TICK))).is_err() {
            return;
        }
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(_) => return,
        }
    }
}

/// A whole HTTP/1.1 response: `status` (with any extra header lines after
/// it), the body's type and the body.
fn response(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Whether a series only grows (`counter`) or goes up and down (`gauge`).
#[derive(Clone, Copy)]
enum Type {
    Counter,
    Gauge,
}

/// One sample of a family per shard: an extra label (`kind="frame"`), if
/// any, and how its value is read from the counters.
type Sample = (Option<(&'static str, &'static str)>, fn(&ShardCounters) -> u64);

/// One metric family: its name, help, type, and one sample per shard for
/// each entry of `samples`.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: Type,
    samples: &'static [Sample],
}

/// Every per-shard family, in page order. Every field of [`ShardCounters`]
/// is in one of them (a unit test checks).
const FAMILIES: &[Family] = &[
    Family {
        name: "percore_operations_total",
        help: "Operations executed, any kind, errors included.",
        kind: Type::Counter,
        samples: &[(None, |c| c.ops)],
    },
    Family { name: "percore_gets_total", help: "GETs executed.", kind: Type::Counter, samples: &[(None, |c| c.gets)] },
    Family { name: "percore_puts_total", help: "PUTs executed.", kind: Type::Counter, samples: &[(None, |c| c.puts)] },
    Family {
        name: "percore_deletes_total",
        help: "DELETEs executed.",
        kind: Type::Counter,
        samples: &[(None, |c| c.deletes)],
    },
    Family {
        name: "percore_get_hits_total",
        help: "GETs that found a value.",
        kind: Type::Counter,
        samples: &[(None, |c| c.gets.saturating_sub(c.misses))],
    },
    Family {
        name: "percore_get_misses_total",
        help: "GETs that found nothing.",
        kind: Type::Counter,
        samples: &[(None, |c| c.misses)],
    },
    Family {
        name: "percore_received_bytes_total",
        help: "Bytes received from clients.",
        kind: Type::Counter,
        samples: &[(None, |c| c.bytes_in)],
    },
    Family {
        name: "percore_sent_bytes_total",
        help: "Bytes sent to clients.",
        kind: Type::Counter,
        samples: &[(None, |c| c.bytes_out)],
    },
    Family {
        name: "percore_connections_open",
        help: "Connections open now.",
        kind: Type::Gauge,
        samples: &[(None, |c| c.connections_open)],
    },
    Family {
        name: "percore_connections_total",
        help: "Connections accepted.",
        kind: Type::Counter,
        samples: &[(None, |c| c.connections_total)],
    },
    Family {
        name: "percore_connections_refused_total",
        help: "Connections refused: max_connections open, every one past its handshake.",
        kind: Type::Counter,
        samples: &[(None, |c| c.connections_refused)],
    },
    Family {
        name: "percore_connections_evicted_total",
        help: "Connections without a finished handshake dropped to make room for a new one.",
        kind: Type::Counter,
        samples: &[(None, |c| c.connections_evicted)],
    },
    Family {
        name: "percore_protocol_errors_total",
        help: "Connections closed for a protocol error.",
        kind: Type::Counter,
        samples: &[(None, |c| c.protocol_errors)],
    },
    Family {
        name: "percore_timeouts_total",
        help: "Connections closed by a deadline: handshake, frame, idle or write.",
        kind: Type::Counter,
        samples: &[
            (Some(("kind", "handshake")), |c| c.handshake_timeouts),
            (Some(("kind", "frame")), |c| c.frame_timeouts),
            (Some(("kind", "idle")), |c| c.idle_timeouts),
            (Some(("kind", "write")), |c| c.write_timeouts),
        ],
    },
    Family {
        name: "percore_wrong_shard_total",
        help: "Operations refused with WrongShard: a key of a slot the shard does not own.",
        kind: Type::Counter,
        samples: &[(None, |c| c.wrong_shard)],
    },
    Family {
        name: "percore_out_of_memory_total",
        help: "PUTs refused with OutOfMemory: the shard's share of maxmemory was full.",
        kind: Type::Counter,
        samples: &[(None, |c| c.out_of_memory)],
    },
    Family { name: "percore_keys", help: "Keys stored now.", kind: Type::Gauge, samples: &[(None, |c| c.keys)] },
    Family {
        name: "percore_memory_used_bytes",
        help: "Bytes the store holds for records (slab in use, table included).",
        kind: Type::Gauge,
        samples: &[(None, |c| c.store_bytes)],
    },
    Family {
        name: "percore_memory_limit_bytes",
        help: "The shard's share of maxmemory; 0: no limit.",
        kind: Type::Gauge,
        samples: &[(None, |c| c.memory_limit)],
    },
    Family {
        name: "percore_expired_keys_total",
        help: "Keys removed because their time to live ran out.",
        kind: Type::Counter,
        samples: &[(None, |c| c.expired_keys)],
    },
];

/// `value` escaped for a label value: backslash, double quote, newline.
fn escape(value: &str) -> String {
    let mut s = String::with_capacity(value.len());
    for ch in value.chars() {
        match ch {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// The metrics page of node `node`, up for `uptime`, with its shards'
/// counters `(id, cpu, counters)`: Prometheus text exposition 0.0.4, a
/// `# HELP` and a `# TYPE` line before each family.
pub fn render(node: &str, uptime: Duration, shards: &[(u32, u32, ShardCounters)]) -> String {
    let node = escape(node);
    let labels: Vec<String> =
        shards.iter().map(|(id, cpu, _)| format!("shard=\"{id}\",node=\"{node}\",cpu=\"{cpu}\"")).collect();
    let mut out = String::with_capacity(256 + FAMILIES.len() * (128 + shards.len() * 96));
    for f in FAMILIES {
        let kind = match f.kind {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
        };
        let _ = write!(out, "# HELP {} {}\n# TYPE {} {kind}\n", f.name, f.help, f.name);
        for ((_, _, c), labels) in shards.iter().zip(&labels) {
            for (extra, value) in f.samples {
                let _ = match extra {
                    Some((k, v)) => writeln!(out, "{}{{{labels},{k}=\"{v}\"}} {}", f.name, value(c)),
                    None => writeln!(out, "{}{{{labels}}} {}", f.name, value(c)),
                };
            }
        }
    }
    let _ = write!(
        out,
        "# HELP percore_uptime_seconds Seconds since the node started.\n# TYPE percore_uptime_seconds gauge\npercore_uptime_seconds{{node=\"{node}\"}} {:.3}\n",
        uptime.as_secs_f64()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{FIELDS, from_array};

    #[test]
    fn every_counter_is_on_the_page() {
        // Distinct values in every field: a field no family shows is missing.
        let c = from_array(std::array::from_fn(|i| 1_000_001 + i as u64));
        let page = render("n", Duration::from_millis(1500), &[(3, 7, c)]);
        let values: Vec<&str> =
            page.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.rsplit(' ').next()).collect();
        for i in 0..FIELDS {
            let v = (1_000_001 + i as u64).to_string();
            assert!(values.contains(&v.as_str()), "field {i} ({v}) is not on the page:\n{page}");
        }
        assert!(page.contains("percore_get_hits_total{shard=\"3\",node=\"n\",cpu=\"7\"} "), "{page}");
        assert!(page.ends_with("percore_uptime_seconds{node=\"n\"} 1.500\n"), "{page}");
    }

    #[test]
    fn families_have_help_and_type_once_and_names_by_type() {
        let c = ShardCounters::default();
        let page = render("n", Duration::ZERO, &[(0, 1, c), (1, 2, c)]);
        let mut seen = std::collections::HashSet::new();
        for f in FAMILIES {
            assert!(seen.insert(f.name), "{} listed twice", f.name);
            assert_eq!(page.matches(&format!("# TYPE {} ", f.name)).count(), 1, "{}", f.name);
            assert_eq!(page.matches(&format!("# HELP {} ", f.name)).count(), 1, "{}", f.name);
            match f.kind {
                Type::Counter => assert!(f.name.ends_with("_total"), "counter {}", f.name),
                Type::Gauge => assert!(!f.name.ends_with("_total"), "gauge {}", f.name),
            }
            let samples = page.lines().filter(|l| l.starts_with(&format!("{}{{", f.name))).count();
            assert_eq!(samples, 2 * f.samples.len(), "{}: one sample per shard and label", f.name);
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let page = render("a\"b\\c\nd", Duration::ZERO, &[(0, 0, ShardCounters::default())]);
        assert!(page.contains(r#"node="a\"b\\c\nd""#), "{page}");
        assert!(page.lines().all(|l| l.starts_with('#') || l.starts_with("percore_")), "{page}");
    }

    #[test]
    fn requests_are_routed_by_method_and_path() {
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\n\n"), Route::Metrics);
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"GET /metricsx HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n"), Route::MethodNotAllowed);
        assert_eq!(route(b"HEAD /metrics HTTP/1.1\r\n\r\n"), Route::MethodNotAllowed);
        assert_eq!(route(b"GET /metrics\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"GET /metrics SPDY/3\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"GET  /metrics HTTP/1.1\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"\x00\xff\r\n\r\n"), Route::BadRequest);
    }

    #[test]
    fn the_head_ends_at_the_first_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody", 0), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\nbody", 0), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n", 0), None);
        // Found when the blank line straddles two reads.
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\n", 17), Some(18));
    }
}

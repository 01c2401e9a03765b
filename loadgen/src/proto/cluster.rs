//! Redis Cluster's slot map, as a node tells it: `CLUSTER SLOTS` sent over
//! RESP, its reply read ([`Value`], [`parse`]) and turned into one
//! [`ClusterNode`] per master with the slot ranges it serves
//! ([`parse_cluster_slots`]), every one of the 16384 slots covered exactly
//! once.
//!
//! The reply is `[[start, end, [host, port, id, …], replica…], …]`: one
//! entry per contiguous slot range, its master first, then its replicas
//! (kept only as addresses to ask for the slot map when a master is lost:
//! the load generator drives masters, which alone take writes). A
//! master serving several ranges appears in several entries; they are
//! merged by address. A host that is empty, NULL or `?` (Redis's "unknown
//! endpoint") means "the host you asked", as Redis Cluster documents.
//!
//! [`query`] does the network part: one connection, one command, one
//! reply. A standalone Redis answers with an error ("ERR This instance has
//! cluster support disabled"); the caller then drives that one server.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};
use wire::msg::SlotRange;
use wire::slot::SLOTS;

/// Arrays nested deeper than this are refused (CLUSTER SLOTS nests three).
const MAX_DEPTH: usize = 8;

/// A reply to [`query`] larger than this is refused (a CLUSTER SLOTS reply
/// for 16384 single-slot ranges with replicas is a few MiB at most).
pub const MAX_REPLY_BYTES: usize = 64 << 20;

/// One RESP2 reply, whole (RESP3's null `_` is read as [`Value::Null`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `+text`.
    Simple(Vec<u8>),
    /// `-text`: the server refused the command.
    Error(String),
    /// `:n`.
    Int(i64),
    /// `$len` and the bytes.
    Bulk(Vec<u8>),
    /// `$-1`, `*-1` or `_`.
    Null,
    /// `*n` and the elements.
    Array(Vec<Value>),
}

/// Why a `CLUSTER SLOTS` reply does not give a usable slot map.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterSlotsError {
    /// The reply is not shaped like CLUSTER SLOTS's.
    #[error("entry {entry}: {why}")]
    Malformed {
        /// Position of the slot-range entry in the reply (0-based).
        entry: usize,
        /// What is wrong with it.
        why: String,
    },
    /// The reply is not an array at all.
    #[error("expected an array of slot ranges, got {0}")]
    NotAnArray(String),
    /// A slot no master serves.
    #[error(
        "slot {slot} is served by no node ({covered} of {SLOTS} slots covered): \
         the cluster is not fully set up (CLUSTER ADDSLOTS, or wait for it to converge)"
    )]
    Hole {
        /// The first uncovered slot.
        slot: u16,
        /// How many slots are covered.
        covered: usize,
    },
    /// A slot two masters claim.
    #[error("slot {slot} is claimed by both {first} and {second}")]
    Overlap {
        /// The first slot claimed twice.
        slot: u16,
        /// The master that claimed it first (`host:port`).
        first: String,
        /// The other (`host:port`).
        second: String,
    },
}

/// A master of a Redis Cluster and the slots it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterNode {
    /// Host to connect to (the asked host where the reply left it unknown).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// Its node id, if the reply gave one (Redis ≥ 4 does).
    pub id: Option<String>,
    /// Its slot ranges, in the reply's order.
    pub slots: Vec<SlotRange>,
    /// Its replicas' `host:port`, as the reply listed them (a replicated
    /// percore shard's followers; a Redis master's replicas). A client
    /// asks them for the slot map when the master is lost.
    pub replicas: Vec<String>,
}

impl ClusterNode {
    /// `host:port`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

fn int(line: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad RESP integer {:?}", String::from_utf8_lossy(line)))
}

/// Reads one whole reply at the front of `buf`: `Ok(None)` if it is not
/// all there yet, else the reply and the bytes it took.
pub fn parse(buf: &[u8]) -> Result<Option<(Value, usize)>, String> {
    parse_at(buf, 0, 0)
}

fn parse_at(buf: &[u8], at: usize, depth: usize) -> Result<Option<(Value, usize)>, String> {
    if depth > MAX_DEPTH {
        return Err(format!("arrays nested deeper than {MAX_DEPTH}"));
    }
    let Some(&kind) = buf.get(at) else { return Ok(None) };
    let Some(eol) = super::line_end(buf, at) else { return Ok(None) };
    let line = &buf[at + 1..eol];
    let next = eol + 2;
    let done = |v: Value, end: usize| Ok(Some((v, end)));
    match kind {
        b'+' => done(Value::Simple(line.to_vec()), next),
        b'-' => done(Value::Error(String::from_utf8_lossy(line).into_owned()), next),
        b':' => done(Value::Int(int(line)?), next),
        b'_' => done(Value::Null, next),
        b'$' => {
            let len = int(line)?;
            if len == -1 {
                return done(Value::Null, next);
            }
            let len = usize::try_from(len).map_err(|_| format!("bad bulk string length {len}"))?;
            let end = next.checked_add(len).ok_or("bulk string length overflows")?;
            if buf.len() < end.saturating_add(2) {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err("bulk string not terminated by CRLF".into());
            }
            done(Value::Bulk(buf[next..end].to_vec()), end + 2)
        }
        b'*' => {
            let n = int(line)?;
            if n == -1 {
                return done(Value::Null, next);
            }
            let n = usize::try_from(n).map_err(|_| format!("bad array length {n}"))?;
            // Each element takes at least 3 bytes: a count larger than
            // what could follow is not trusted with an allocation.
            let mut items = Vec::with_capacity(n.min(buf.len() / 3));
            let mut at = next;
            for _ in 0..n {
                match parse_at(buf, at, depth + 1)? {
                    Some((v, end)) => {
                        items.push(v);
                        at = end;
                    }
                    None => return Ok(None),
                }
            }
            done(Value::Array(items), at)
        }
        other => Err(format!("unexpected RESP reply type {:?}", other as char)),
    }
}

/// Sends `CLUSTER SLOTS` to `addr` and returns its reply (an error reply
/// is a [`Value::Error`], not an `Err`: a standalone server answers so).
/// Every step is bounded by `timeout`.
pub fn query(addr: &str, timeout: Duration) -> Result<Value, wire::Error> {
    let io = |source| wire::Error::Io { addr: addr.to_string(), source };
    let protocol = |message: String| wire::Error::Protocol { addr: addr.to_string(), message };
    let sockaddr =
        addr.to_socket_addrs().map_err(io)?.next().ok_or_else(|| protocol("address resolves to nothing".into()))?;
    let mut stream = TcpStream::connect_timeout(&sockaddr, timeout).map_err(io)?;
    stream.set_nodelay(true).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    stream.write_all(b"*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n").map_err(io)?;
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 16 << 10];
    loop {
        if let Some((value, _)) = parse(&buf).map_err(|e| protocol(format!("CLUSTER SLOTS: {e}")))? {
            return Ok(value);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(protocol(format!("no whole answer to CLUSTER SLOTS within {timeout:?}")));
        }
        stream.set_read_timeout(Some(left)).map_err(io)?;
        match stream.read(&mut chunk) {
            Ok(0) => return Err(protocol("connection closed before CLUSTER SLOTS was answered".into())),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err(protocol(format!("no whole answer to CLUSTER SLOTS within {timeout:?}")));
            }
            Err(e) => return Err(io(e)),
        }
        if buf.len() > MAX_REPLY_BYTES {
            return Err(protocol(format!("the answer to CLUSTER SLOTS exceeds {MAX_REPLY_BYTES} bytes")));
        }
    }
}

/// What `v` is, for messages.
fn describe(v: &Value) -> String {
    match v {
        Value::Simple(s) => format!("simple string {:?}", String::from_utf8_lossy(s)),
        Value::Error(e) => format!("error {e:?}"),
        Value::Int(n) => format!("integer {n}"),
        Value::Bulk(b) => format!("bulk string {:?}", String::from_utf8_lossy(b)),
        Value::Null => "null".into(),
        Value::Array(a) => format!("array of {}", a.len()),
    }
}

/// Turns a `CLUSTER SLOTS` reply into its masters, ordered by the lowest
/// slot each serves. `asked_host` replaces a host the reply leaves
/// unknown (empty, NULL or `?`). Every slot must be served by exactly one
/// master.
pub fn parse_cluster_slots(reply: &Value, asked_host: &str) -> Result<Vec<ClusterNode>, ClusterSlotsError> {
    let Value::Array(entries) = reply else {
        return Err(ClusterSlotsError::NotAnArray(describe(reply)));
    };
    const FREE: usize = usize::MAX;
    let mut owner = vec![FREE; SLOTS];
    let mut nodes: Vec<ClusterNode> = Vec::new();
    for (entry, e) in entries.iter().enumerate() {
        let bad = |why: String| ClusterSlotsError::Malformed { entry, why };
        let Value::Array(fields) = e else {
            return Err(bad(format!("expected [start, end, master, …], got {}", describe(e))));
        };
        let slot = |i: usize, what: &str| match fields.get(i) {
            Some(Value::Int(n)) if (0..SLOTS as i64).contains(n) => Ok(*n as u16),
            Some(other) => Err(bad(format!("{what} slot must be an integer 0-{}, got {}", SLOTS - 1, describe(other)))),
            None => Err(bad(format!("no {what} slot"))),
        };
        let (start, end) = (slot(0, "start")?, slot(1, "end")?);
        if end < start {
            return Err(bad(format!("range {start}-{end} ends before it starts")));
        }
        let Some(Value::Array(master)) = fields.get(2) else {
            return Err(bad(format!(
                "expected the master as [host, port, …], got {}",
                fields.get(2).map_or("nothing".into(), describe)
            )));
        };
        let host = match master.first() {
            Some(Value::Bulk(h)) | Some(Value::Simple(h)) if !h.is_empty() && h != b"?" => {
                String::from_utf8(h.clone()).map_err(|_| bad("the master's host is not UTF-8".into()))?
            }
            Some(Value::Bulk(_) | Value::Simple(_) | Value::Null) => asked_host.to_string(),
            other => {
                return Err(bad(format!(
                    "the master's host: expected a string, got {}",
                    other.map_or("nothing".into(), describe)
                )));
            }
        };
        let port = match master.get(1) {
            Some(Value::Int(p)) if (1..=i64::from(u16::MAX)).contains(p) => *p as u16,
            other => {
                return Err(bad(format!(
                    "the master's port: expected an integer 1-65535, got {}",
                    other.map_or("nothing".into(), describe)
                )));
            }
        };
        let id = match master.get(2) {
            Some(Value::Bulk(b) | Value::Simple(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        };
        // Replicas: `[host, port, …]` each; one that is not so shaped is
        // left out (it is only ever asked for the slot map).
        let replicas = fields[3..].iter().filter_map(|r| match r {
            Value::Array(r) => {
                let host = match r.first() {
                    Some(Value::Bulk(h) | Value::Simple(h)) if !h.is_empty() && h != b"?" => {
                        String::from_utf8(h.clone()).ok()?
                    }
                    Some(Value::Bulk(_) | Value::Simple(_) | Value::Null) => asked_host.to_string(),
                    _ => return None,
                };
                match r.get(1) {
                    Some(Value::Int(p)) if (1..=i64::from(u16::MAX)).contains(p) => Some(format!("{host}:{p}")),
                    _ => None,
                }
            }
            _ => None,
        });
        let index = match nodes.iter().position(|n| n.host == host && n.port == port) {
            Some(i) => i,
            None => {
                nodes.push(ClusterNode { host, port, id, slots: Vec::new(), replicas: Vec::new() });
                nodes.len() - 1
            }
        };
        for r in replicas {
            if !nodes[index].replicas.contains(&r) {
                nodes[index].replicas.push(r);
            }
        }
        for s in start..=end {
            let cell = &mut owner[s as usize];
            if *cell != FREE {
                return Err(ClusterSlotsError::Overlap {
                    slot: s,
                    first: nodes[*cell].addr(),
                    second: nodes[index].addr(),
                });
            }
            *cell = index;
        }
        nodes[index].slots.push(SlotRange { start, end });
    }
    if let Some(slot) = owner.iter().position(|&o| o == FREE) {
        let covered = owner.iter().filter(|&&o| o != FREE).count();
        return Err(ClusterSlotsError::Hole { slot: slot as u16, covered });
    }
    // Masters in the order of the lowest slot each serves.
    nodes.sort_by_key(|n| n.slots.iter().map(|r| r.start).min());
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::Bulk(s.as_bytes().to_vec())
    }

    fn node(host: Value, port: i64, id: &str) -> Value {
        Value::Array(vec![host, Value::Int(port), bulk(id)])
    }

    fn entry(start: i64, end: i64, nodes: Vec<Value>) -> Value {
        let mut v = vec![Value::Int(start), Value::Int(end)];
        v.extend(nodes);
        Value::Array(v)
    }

    fn ranges(n: &ClusterNode) -> Vec<(u16, u16)> {
        n.slots.iter().map(|r| (r.start, r.end)).collect()
    }

    #[test]
    fn parses_a_real_redis_reply_byte_for_byte() {
        // Two masters, one replica, as redis-server 7.0 writes it.
        let bytes = b"*2\r\n\
            *4\r\n:0\r\n:8191\r\n*4\r\n$9\r\n127.0.0.1\r\n:7000\r\n$4\r\naaaa\r\n*0\r\n\
            *4\r\n$9\r\n127.0.0.1\r\n:7002\r\n$4\r\ncccc\r\n*0\r\n\
            *3\r\n:8192\r\n:16383\r\n*4\r\n$9\r\n127.0.0.1\r\n:7001\r\n$4\r\nbbbb\r\n*0\r\n";
        let (v, used) = parse(bytes).expect("valid").expect("whole");
        assert_eq!(used, bytes.len());
        let nodes = parse_cluster_slots(&v, "10.0.0.1").expect("full coverage");
        assert_eq!(nodes.len(), 2, "the replica on 7002 is not a node to drive");
        assert_eq!((nodes[0].addr(), nodes[0].id.as_deref()), ("127.0.0.1:7000".into(), Some("aaaa")));
        assert_eq!(nodes[0].replicas, ["127.0.0.1:7002"], "but it is asked for the map when 7000 is lost");
        assert!(nodes[1].replicas.is_empty());
        assert_eq!(ranges(&nodes[0]), [(0, 8191)]);
        assert_eq!(nodes[1].addr(), "127.0.0.1:7001");
        assert_eq!(ranges(&nodes[1]), [(8192, 16383)]);
        // Every prefix is incomplete, never an error.
        for cut in 0..bytes.len() {
            assert_eq!(parse(&bytes[..cut]), Ok(None), "prefix of {cut} bytes");
        }
    }

    #[test]
    fn an_unknown_host_is_the_asked_host() {
        let v = Value::Array(vec![
            entry(0, 99, vec![node(Value::Null, 7000, "a")]),
            entry(100, 199, vec![node(bulk(""), 7001, "b")]),
            entry(200, 16383, vec![node(bulk("?"), 7002, "c")]),
        ]);
        let nodes = parse_cluster_slots(&v, "node0.example").expect("covered");
        let addrs: Vec<String> = nodes.iter().map(ClusterNode::addr).collect();
        assert_eq!(addrs, ["node0.example:7000", "node0.example:7001", "node0.example:7002"]);
    }

    #[test]
    fn ranges_of_one_master_merge_and_masters_sort_by_lowest_slot() {
        let a = || node(bulk("h"), 1, "a");
        let b = || node(bulk("h"), 2, "b");
        let v = Value::Array(vec![
            entry(5000, 16383, vec![a(), node(bulk("r"), 9, "replica")]),
            entry(100, 4999, vec![b()]),
            entry(0, 99, vec![a()]),
        ]);
        let nodes = parse_cluster_slots(&v, "x").expect("covered");
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].port, 1);
        assert_eq!(ranges(&nodes[0]), [(5000, 16383), (0, 99)]);
        assert_eq!(nodes[1].port, 2);
        assert_eq!(ranges(&nodes[1]), [(100, 4999)]);
    }

    #[test]
    fn holes_and_overlaps_are_errors_naming_the_slot() {
        let m = |p| node(bulk("h"), p, "id");
        let hole = Value::Array(vec![entry(0, 99, vec![m(1)]), entry(101, 16383, vec![m(2)])]);
        let e = parse_cluster_slots(&hole, "h").expect_err("slot 100 uncovered");
        assert_eq!(e, ClusterSlotsError::Hole { slot: 100, covered: SLOTS - 1 });
        assert!(e.to_string().contains("slot 100 is served by no node"), "{e}");
        let top = Value::Array(vec![entry(0, 16382, vec![m(1)])]);
        assert_eq!(parse_cluster_slots(&top, "h"), Err(ClusterSlotsError::Hole { slot: 16383, covered: SLOTS - 1 }));
        // A cluster node with no slots assigned answers an empty array.
        assert_eq!(
            parse_cluster_slots(&Value::Array(vec![]), "h"),
            Err(ClusterSlotsError::Hole { slot: 0, covered: 0 })
        );
        let overlap = Value::Array(vec![entry(0, 200, vec![m(1)]), entry(150, 16383, vec![m(2)])]);
        assert_eq!(
            parse_cluster_slots(&overlap, "h"),
            Err(ClusterSlotsError::Overlap { slot: 150, first: "h:1".into(), second: "h:2".into() })
        );
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        let m = || node(bulk("h"), 1, "id");
        let cases = [
            Value::Error("ERR This instance has cluster support disabled".into()),
            Value::Array(vec![Value::Int(3)]),
            Value::Array(vec![Value::Array(vec![Value::Int(0)])]),
            Value::Array(vec![entry(0, 16384, vec![m()])]),
            Value::Array(vec![entry(-1, 16383, vec![m()])]),
            Value::Array(vec![entry(10, 5, vec![m()])]),
            Value::Array(vec![entry(0, 16383, vec![])]),
            Value::Array(vec![entry(0, 16383, vec![Value::Array(vec![bulk("h")])])]),
            Value::Array(vec![entry(0, 16383, vec![node(bulk("h"), 0, "x")])]),
            Value::Array(vec![entry(0, 16383, vec![node(bulk("h"), 65536, "x")])]),
            Value::Array(vec![entry(0, 16383, vec![node(Value::Int(1), 1, "x")])]),
            Value::Array(vec![entry(0, 16383, vec![Value::Array(vec![Value::Bulk(vec![0xff]), Value::Int(1)])])]),
        ];
        for c in cases {
            assert!(parse_cluster_slots(&c, "h").is_err(), "{c:?}");
        }
    }

    #[test]
    fn the_reader_refuses_bad_bytes() {
        assert!(parse(b"?what\r\n").is_err());
        assert!(parse(b"$3\r\nabcd\r\n").is_err(), "unterminated bulk");
        assert!(parse(b"$-2\r\n").is_err());
        assert!(parse(b"*-5\r\n").is_err());
        assert!(parse(b":x\r\n").is_err());
        assert!(parse(b"$99999999999999999999\r\n").is_err());
        let deep = "*1\r\n".repeat(MAX_DEPTH + 2) + ":1\r\n";
        assert!(parse(deep.as_bytes()).is_err(), "nesting is bounded");
        // A huge announced count is no huge allocation: it just waits for more.
        assert_eq!(parse(b"*1000000000\r\n:1\r\n"), Ok(None));
        assert_eq!(parse(b"*-1\r\n"), Ok(Some((Value::Null, 5))));
        assert_eq!(parse(b"-ERR no\r\n"), Ok(Some((Value::Error("ERR no".into()), 9))));
    }
}

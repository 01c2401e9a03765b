//! The Prometheus endpoint of a real `percore-server` process: the page
//! parses, its numbers are what a client did, and a hostile scraper is cut
//! off by its deadlines while other scrapes and the shards go on.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::Server;
use wire::client::{Client, Connection, Expect};
use wire::msg::{Op, OpError, OpResult};

const T: Duration = Duration::from_secs(10);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A two-shard node with its metrics on a free port; returns it and the
/// metrics address.
fn start() -> (Server, String) {
    let port = free_port().to_string();
    let args = ["--cores", "0,1", "--port", "0", "--stats-interval-ms", "0", "--metrics-port", &port];
    let server = Server::start_with(env!("CARGO_BIN_EXE_percore-server"), &args);
    (server, format!("127.0.0.1:{port}"))
}

/// An HTTP response: status code, headers (lower-case names), body.
struct Response {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

/// Sends `request` on a new connection and reads the response to the close.
fn http(addr: &str, request: &[u8]) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics port");
    s.set_read_timeout(Some(T)).expect("timeout");
    s.write_all(request).expect("send the request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the response to the close");
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Response {
    let text = String::from_utf8(raw.to_vec()).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head end in {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: HashMap<String, String> =
        lines.filter_map(|l| l.split_once(": ")).map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())).collect();
    let length: usize = headers.get("content-length").expect("content-length").parse().expect("a number");
    assert_eq!(length, body.len(), "content-length is the body's");
    Response { status, headers, body: body.to_string() }
}

fn scrape(addr: &str) -> Response {
    http(addr, b"GET /metrics HTTP/1.1\r\nHost: percore\r\nAccept: text/plain\r\n\r\n")
}

/// One sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses a Prometheus text page, checking that every sample's family was
/// introduced by `# HELP` then `# TYPE` before its first sample, and that
/// counters end in `_total`.
fn parse_page(page: &str) -> Vec<Sample> {
    let mut helped = HashSet::new();
    let mut typed: HashMap<String, String> = HashMap::new();
    let mut samples = Vec::new();
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(!help.is_empty(), "{line}");
            assert!(helped.insert(name.to_string()), "HELP twice for {name}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name type");
            assert!(helped.contains(name), "TYPE before HELP for {name}");
            assert!(matches!(kind, "counter" | "gauge"), "{line}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "counters and only counters end in _total: {line}");
            assert!(typed.insert(name.to_string(), kind.to_string()).is_none(), "TYPE twice for {name}");
            assert!(!samples.iter().any(|(n, _, _): &Sample| n == name), "TYPE after samples of {name}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels in {line:?}"))),
            None => (series, ""),
        };
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "bad name in {line:?}");
        assert!(typed.contains_key(name), "sample before its TYPE: {line:?}");
        let labels = labels
            .split(',')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("bad label in {line:?}"));
                let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).expect("quoted label value");
                (k.to_string(), v.to_string())
            })
            .collect();
        samples.push((name.to_string(), labels, value));
    }
    assert!(!samples.is_empty(), "an empty page");
    samples
}

/// The value of `name` for shard `shard` (with the extra label `extra`, if given).
fn value(samples: &[Sample], name: &str, shard: u32, extra: Option<(&str, &str)>) -> u64 {
    let shard = shard.to_string();
    let found: Vec<f64> = samples
        .iter()
        .filter(|(n, l, _)| n == name && l.get("shard") == Some(&shard))
        .filter(|(_, l, _)| extra.is_none_or(|(k, v)| l.get(k).map(String::as_str) == Some(v)))
        .map(|s| s.2)
        .collect();
    assert_eq!(found.len(), 1, "one sample of {name} for shard {shard} {extra:?}");
    found[0] as u64
}

/// Scrapes until `done` holds for the page (the shards publish every
/// 50 ms), at most 10 s.
fn scrape_until(addr: &str, done: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    let until = Instant::now() + T;
    loop {
        let r = scrape(addr);
        assert_eq!(r.status, 200, "{}", r.body);
        let samples = parse_page(&r.body);
        if done(&samples) {
            return samples;
        }
        assert!(Instant::now() < until, "the counters never reached the expected values:\n{}", r.body);
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_page_parses_and_counts_what_clients_did() {
    let (mut server, metrics) = start();
    let mut client = Client::discover(server.addr(), None, T).expect("discover");
    let map = client.map().clone();
    // Per shard: puts, gets, misses, deletes.
    let mut want = [[0u64; 4]; 2];
    for i in 0..300u32 {
        let key = format!("key-{i}");
        let s = map.shard_of(key.as_bytes()) as usize;
        client.put(key.as_bytes(), b"value").expect("put");
        want[s][0] += 1;
    }
    for i in 0..400u32 {
        // Keys 300..399 were never written: misses.
        let key = format!("key-{i}");
        let s = map.shard_of(key.as_bytes()) as usize;
        let found = client.get(key.as_bytes()).expect("get");
        assert_eq!(found.is_some(), i < 300);
        want[s][1] += 1;
        want[s][2] += u64::from(i >= 300);
    }
    for i in 0..50u32 {
        let key = format!("key-{i}");
        let s = map.shard_of(key.as_bytes()) as usize;
        client.delete(key.as_bytes()).expect("delete");
        want[s][3] += 1;
    }
    // Keys of shard 1 sent to shard 0 are refused there with WrongShard.
    let strays: Vec<Op> = (0..1000u32)
        .map(|i| format!("stray-{i}").into_bytes())
        .filter(|k| map.shard_of(k) == 1)
        .take(7)
        .map(|key| Op::Get { key })
        .collect();
    let mut s0 =
        Connection::connect(&server.endpoints[0], Expect { shard: Some(0), total_shards: Some(2), password: None }, T)
            .expect("connect to shard 0");
    let r = s0.execute(&strays).expect("stray batch");
    assert!(r.iter().all(|r| *r == OpResult::Error(OpError::WrongShard)), "{r:?}");

    let ops: u64 = want.iter().map(|w| w[0] + w[1] + w[3]).sum::<u64>() + strays.len() as u64;
    let samples =
        scrape_until(&metrics, |s| (0..2).map(|id| value(s, "percore_operations_total", id, None)).sum::<u64>() == ops);
    let stats = client.stats().expect("stats over the wire");
    for id in 0..2u32 {
        let w = want[id as usize];
        let v = |name: &str| value(&samples, name, id, None);
        assert_eq!(v("percore_puts_total"), w[0], "shard {id} puts");
        assert_eq!(v("percore_gets_total"), w[1], "shard {id} gets");
        assert_eq!(v("percore_get_misses_total"), w[2], "shard {id} misses");
        assert_eq!(v("percore_get_hits_total"), w[1] - w[2], "shard {id} hits");
        assert_eq!(v("percore_deletes_total"), w[3], "shard {id} deletes");
        assert_eq!(v("percore_keys"), w[0] - w[3], "shard {id} keys");
        let strays_here = if id == 0 { strays.len() as u64 } else { 0 };
        assert_eq!(v("percore_wrong_shard_total"), strays_here, "shard {id} wrong-shard refusals");
        assert_eq!(v("percore_operations_total"), w[0] + w[1] + w[3] + strays_here, "shard {id} operations");
        assert!(v("percore_received_bytes_total") > 0 && v("percore_sent_bytes_total") > 0, "shard {id} bytes");
        assert!(v("percore_memory_used_bytes") > 0, "shard {id} memory");
        assert_eq!(v("percore_memory_limit_bytes"), 0, "no maxmemory");
        assert_eq!(v("percore_expired_keys_total"), 0, "nothing expires over this protocol");
        assert!(v("percore_connections_total") >= 1 && v("percore_connections_open") >= 1, "shard {id} connections");
        for kind in ["handshake", "frame", "idle", "write"] {
            assert_eq!(value(&samples, "percore_timeouts_total", id, Some(("kind", kind))), 0, "{kind} timeouts");
        }
        // The same numbers as the stats reply (the page is at most one publish older).
        let c = &stats[id as usize].counters;
        assert_eq!((c.puts, c.gets, c.misses, c.deletes), (w[0], w[1], w[2], w[3]), "stats reply of shard {id}");
        // Labels: the shard's node and CPU.
        let labels = &samples
            .iter()
            .find(|(n, l, _)| n == "percore_puts_total" && l["shard"] == id.to_string())
            .expect("puts")
            .1;
        assert_eq!(labels.get("node").map(String::as_str), Some("local"));
        assert_eq!(labels.get("cpu"), Some(&id.to_string()), "shard i runs on CPU i here");
    }
    let uptime: Vec<&Sample> = samples.iter().filter(|s| s.0 == "percore_uptime_seconds").collect();
    assert_eq!(uptime.len(), 1);
    assert_eq!(uptime[0].1.get("node").map(String::as_str), Some("local"));
    assert!(uptime[0].2 > 0.0);
    // The node stops with its metrics thread.
    assert!(server.terminate().success(), "{}", server.stderr());
}

#[test]
fn other_paths_methods_and_oversized_heads_are_refused() {
    let (_server, metrics) = start();
    let r = scrape(&metrics);
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    assert_eq!(http(&metrics, b"GET / HTTP/1.1\r\n\r\n").status, 404);
    assert_eq!(http(&metrics, b"GET /metrics/x HTTP/1.1\r\n\r\n").status, 404);
    let r = http(&metrics, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.headers["allow"], "GET");
    assert_eq!(http(&metrics, b"hello\r\n\r\n").status, 400);
    // A head past 8 KiB is refused without waiting for its end.
    let mut big = b"GET /metrics HTTP/1.1\r\n".to_vec();
    while big.len() <= 9 << 10 {
        big.extend_from_slice(b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    assert_eq!(http(&metrics, &big).status, 431);
    // And the endpoint still serves.
    assert_eq!(scrape(&metrics).status, 200);
}

/// Reads what a held connection got, up to the close; empty if it was reset.
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(T)).expect("timeout");
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => got,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => got,
        Err(e) => panic!("the server did not close a stalled scraper: {e}"),
    }
}

#[test]
fn a_stalled_scraper_is_cut_off_and_others_are_served() {
    let (server, metrics) = start();
    // Half a request head, then nothing: it is accepted first (the accept
    // queue is in connection order), so the scrape below waits behind it.
    let mut loris = TcpStream::connect(&metrics).expect("connect");
    loris.write_all(b"GET /metrics HTTP/1.1\r\nHost: per").expect("send half a head");
    // The shards do not notice.
    let mut client = Client::discover(server.addr(), None, T).expect("discover");
    client.put(b"during", b"the stall").expect("put while a scraper stalls");
    assert_eq!(client.get(b"during").expect("get"), Some(b"the stall".to_vec()));
    // A second scrape is served once the stalled one is cut off.
    let r = scrape(&metrics);
    assert_eq!(r.status, 200);
    assert!(r.body.contains("percore_puts_total{"), "{}", r.body);
    let got = parse_response(&read_to_close(&mut loris));
    assert_eq!(got.status, 408, "{}", got.body);
}

#[test]
fn a_trickling_scraper_cannot_move_its_deadline() {
    let (_server, metrics) = start();
    // One byte of a never-ending header every 100 ms: a per-read timeout
    // would never fire, the 2 s deadline from the accept does.
    let mut s = TcpStream::connect(&metrics).expect("connect");
    s.write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ").expect("send");
    s.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    let mut cut = false;
    // 200 bytes take at least 20 s: ten times the deadline.
    for _ in 0..200 {
        match s.read(&mut buf) {
            Ok(0) => {
                cut = true;
                break;
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if s.write_all(b"a").is_err() {
                    cut = true;
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                cut = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(cut, "a scraper trickling its head was never cut off");
    got.extend(read_to_close(&mut s));
    assert_eq!(parse_response(&got).status, 408);
    assert_eq!(scrape(&metrics).status, 200);
}

#[test]
fn a_taken_metrics_port_is_a_start_up_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_percore-server"))
        .args(["--cores", "0", "--port", "0", "--stats-interval-ms", "0", "--metrics-port", &port])
        .output()
        .expect("run percore-server");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("metrics port 127.0.0.1:{port} is already in use")), "{err}");
    assert!(!err.contains(" ready: "), "nothing started: {err}");
}

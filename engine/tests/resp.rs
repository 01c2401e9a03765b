//! The RESP door of a real server process on loopback: Redis's replies and
//! error texts, expiry, cluster redirects, authentication, limits, and
//! percore frames on the same port.

use std::time::{Duration, Instant};
use testkit::Server;
use testkit::resp::{Resp, Value};
use wire::client::{Connection, Expect};
use wire::msg::{Op, OpResult};

fn start(args: &[&str]) -> Server {
    let mut all = vec!["--port", "0", "--stats-interval-ms", "0"];
    all.extend_from_slice(args);
    Server::start_with(env!("CARGO_BIN_EXE_percore-server"), &all)
}

fn ok() -> Value {
    Value::Simple("OK".into())
}

fn bulk(s: &str) -> Value {
    Value::Bulk(s.as_bytes().to_vec())
}

/// Polls `f` until it is true or 10 s pass (a deadline for behaviour, not
/// a speed check).
fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn strings_follow_redis() {
    let server = start(&["--cores", "0"]);
    let mut c = Resp::connect(server.addr());
    c.send(b"PING\r\n");
    assert_eq!(c.read(), Some(Value::Simple("PONG".into())), "inline PING");
    assert_eq!(c.cmd(&["PING", "hi"]), bulk("hi"));
    assert_eq!(c.cmd(&["GET", "a"]), Value::Null);
    assert_eq!(c.cmd(&["SET", "a", "1"]), ok());
    assert_eq!(c.cmd(&["get", "a"]), bulk("1"));
    assert_eq!(c.cmd(&["SET", "a", "2", "NX"]), Value::Null);
    assert_eq!(c.cmd(&["SET", "a", "2", "XX", "GET"]), bulk("1"));
    assert_eq!(c.cmd(&["SET", "b", "2", "XX"]), Value::Null);
    assert_eq!(c.cmd(&["SET", "a", "3", "NX", "XX"]), Value::Error("ERR syntax error".into()));
    assert_eq!(c.cmd(&["SETNX", "a", "x"]), Value::Int(0));
    assert_eq!(c.cmd(&["SETNX", "b", "x"]), Value::Int(1));
    assert_eq!(c.cmd(&["GETSET", "b", "y"]), bulk("x"));
    assert_eq!(c.cmd(&["GETDEL", "b"]), bulk("y"));
    assert_eq!(c.cmd(&["GETDEL", "b"]), Value::Null);
    assert_eq!(c.cmd(&["MSET", "{u}1", "a", "{u}2", "b"]), ok());
    assert_eq!(c.cmd(&["MGET", "{u}1", "{u}2", "{u}3"]), Value::Array(vec![bulk("a"), bulk("b"), Value::Null]));
    assert_eq!(c.cmd(&["MSETNX", "{u}3", "c", "{u}1", "z"]), Value::Int(0));
    assert_eq!(c.cmd(&["MSETNX", "{u}3", "c", "{u}4", "d"]), Value::Int(1));
    assert_eq!(c.cmd(&["MSET", "{u}1"]), Value::Error("ERR wrong number of arguments for 'mset' command".into()));
    assert_eq!(c.cmd(&["APPEND", "s", "Hello"]), Value::Int(5));
    assert_eq!(c.cmd(&["APPEND", "s", " World"]), Value::Int(11));
    assert_eq!(c.cmd(&["STRLEN", "s"]), Value::Int(11));
    assert_eq!(c.cmd(&["GETRANGE", "s", "0", "4"]), bulk("Hello"));
    assert_eq!(c.cmd(&["GETRANGE", "s", "-5", "-1"]), bulk("World"));
    assert_eq!(c.cmd(&["GETRANGE", "s", "5", "1"]), bulk(""));
    assert_eq!(c.cmd(&["SETRANGE", "s", "6", "Redis"]), Value::Int(11));
    assert_eq!(c.cmd(&["GET", "s"]), bulk("Hello Redis"));
    assert_eq!(c.cmd(&["SETRANGE", "pad", "3", "x"]), Value::Int(4));
    assert_eq!(c.cmd_bytes(&[b"GET", b"pad"]), Value::Bulk(b"\0\0\0x".to_vec()));
    assert_eq!(c.cmd(&["INCR", "n"]), Value::Int(1));
    assert_eq!(c.cmd(&["INCRBY", "n", "41"]), Value::Int(42));
    assert_eq!(c.cmd(&["DECR", "n"]), Value::Int(41));
    assert_eq!(c.cmd(&["DECRBY", "n", "-9"]), Value::Int(50));
    assert_eq!(c.cmd(&["INCR", "s"]), Value::Error("ERR value is not an integer or out of range".into()));
    assert_eq!(c.cmd(&["SET", "max", &i64::MAX.to_string()]), ok());
    assert_eq!(c.cmd(&["INCR", "max"]), Value::Error("ERR increment or decrement would overflow".into()));
    assert_eq!(c.cmd(&["INCRBYFLOAT", "f", "10.5"]), bulk("10.5"));
    assert_eq!(c.cmd(&["INCRBYFLOAT", "f", "0.25"]), bulk("10.75"));
    assert_eq!(c.cmd(&["INCRBYFLOAT", "f", "x"]), Value::Error("ERR value is not a valid float".into()));
    assert_eq!(c.cmd(&["EXISTS", "a", "a"]), Value::Int(2), "a key named twice counts twice");
    assert_eq!(c.cmd(&["EXISTS", "{u}1", "{u}9"]), Value::Int(1));
    assert_eq!(c.cmd(&["TYPE", "a"]), Value::Simple("string".into()));
    assert_eq!(c.cmd(&["TYPE", "nope"]), Value::Simple("none".into()));
    assert_eq!(c.cmd(&["DEL", "{u}1", "{u}nope"]), Value::Int(1));
    assert_eq!(c.cmd(&["DEL", "a"]), Value::Int(1));
    assert_eq!(c.cmd(&["UNLINK", "n"]), Value::Int(1));
    assert_eq!(c.cmd(&["GET"]), Value::Error("ERR wrong number of arguments for 'get' command".into()));
    assert_eq!(
        c.cmd(&["HSET", "h", "f", "v"]),
        Value::Error("ERR unknown command 'HSET', with args beginning with: 'h' 'f' 'v' ".into())
    );
    assert_eq!(c.cmd(&["SELECT", "0"]), ok());
    assert_eq!(c.cmd(&["ECHO", "x y"]), bulk("x y"));
}

#[test]
fn scan_dbsize_and_flush_cover_this_cores_keys() {
    let server = start(&["--cores", "0"]);
    let mut c = Resp::connect(server.addr());
    for i in 0..300 {
        assert_eq!(c.cmd(&["SET", &format!("key:{i}"), "v"]), ok());
    }
    assert_eq!(c.cmd(&["SET", "other", "v"]), ok());
    assert_eq!(c.cmd(&["DBSIZE"]), Value::Int(301));
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor = "0".to_string();
    let mut calls = 0;
    loop {
        let Value::Array(reply) = c.cmd(&["SCAN", &cursor, "MATCH", "key:*", "COUNT", "50"]) else { panic!("scan") };
        cursor = reply[0].text();
        let Value::Array(keys) = &reply[1] else { panic!("keys") };
        for k in keys {
            seen.insert(k.text());
        }
        calls += 1;
        assert!(calls < 10_000, "scan does not end");
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 300, "every key:* once or more, nothing else");
    assert!(seen.iter().all(|k| k.starts_with("key:")));
    assert_eq!(c.cmd(&["SCAN", "x"]), Value::Error("ERR invalid cursor".into()));
    assert_eq!(c.cmd(&["FLUSHDB"]), ok());
    assert_eq!(c.cmd(&["DBSIZE"]), Value::Int(0));
}

#[test]
fn keys_expire_lazily_and_actively_for_both_protocols() {
    let server = start(&["--cores", "0"]);
    let mut c = Resp::connect(server.addr());
    assert_eq!(c.cmd(&["SET", "k", "v", "EX", "100"]), ok());
    let Value::Int(ttl) = c.cmd(&["TTL", "k"]) else { panic!("ttl") };
    assert!((99..=100).contains(&ttl), "TTL {ttl}");
    let Value::Int(pttl) = c.cmd(&["PTTL", "k"]) else { panic!("pttl") };
    assert!((98_000..=100_000).contains(&pttl), "PTTL {pttl}");
    assert_eq!(c.cmd(&["PERSIST", "k"]), Value::Int(1));
    assert_eq!(c.cmd(&["TTL", "k"]), Value::Int(-1));
    assert_eq!(c.cmd(&["TTL", "nope"]), Value::Int(-2));
    assert_eq!(c.cmd(&["EXPIRE", "k", "100", "XX"]), Value::Int(0));
    assert_eq!(c.cmd(&["EXPIRE", "k", "100", "NX"]), Value::Int(1));
    assert_eq!(c.cmd(&["EXPIRE", "k", "50", "GT"]), Value::Int(0));
    assert_eq!(c.cmd(&["EXPIRE", "k", "50", "LT"]), Value::Int(1));
    assert_eq!(c.cmd(&["SET", "k", "w", "KEEPTTL"]), ok());
    assert!(matches!(c.cmd(&["TTL", "k"]), Value::Int(40..=50)));
    assert_eq!(c.cmd(&["SET", "k", "w"]), ok());
    assert_eq!(c.cmd(&["TTL", "k"]), Value::Int(-1), "a plain SET clears the TTL");
    assert_eq!(c.cmd(&["SET", "k", "v", "EX", "0"]), Value::Error("ERR invalid expire time in 'set' command".into()));
    assert_eq!(c.cmd(&["EXPIRE", "k", "-1"]), Value::Int(1), "a past time deletes");
    assert_eq!(c.cmd(&["GET", "k"]), Value::Null);

    // Short TTLs: gone for RESP and for percore frames once they pass.
    assert_eq!(c.cmd(&["SET", "short", "v", "PX", "150"]), ok());
    assert_eq!(c.cmd(&["SETEX", "short2", "1", "v"]), ok());
    assert_eq!(c.cmd(&["PSETEX", "short3", "150", "v"]), ok());
    assert_eq!(c.cmd(&["GETEX", "short4", "PX", "100"]), Value::Null);
    let mut frames = Connection::connect(server.addr(), Expect::default(), Duration::from_secs(10)).expect("percore");
    let got = frames.execute(&[Op::Get { key: b"short".to_vec() }]).expect("get");
    assert_eq!(got, vec![OpResult::Value(b"v".to_vec())]);
    std::thread::sleep(Duration::from_millis(1_200));
    assert_eq!(c.cmd(&["GET", "short"]), Value::Null);
    assert_eq!(c.cmd(&["GET", "short2"]), Value::Null);
    assert_eq!(c.cmd(&["EXISTS", "short3"]), Value::Int(0));
    let got = frames.execute(&[Op::Get { key: b"short".to_vec() }]).expect("get");
    assert_eq!(got, vec![OpResult::NotFound], "percore frames see expiry too");

    // Active expiry: keys nobody touches again are removed.
    for i in 0..500 {
        assert_eq!(c.cmd(&["SET", &format!("t{i}"), "v", "PX", "100"]), ok());
    }
    assert!(
        eventually(|| c.cmd(&["DBSIZE"]) == Value::Int(0)),
        "untouched expired keys were never removed: {:?}",
        c.cmd(&["DBSIZE"])
    );
    let info = c.cmd(&["INFO", "stats"]).text();
    let expired: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("expired_keys:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("expired_keys in INFO");
    assert!(expired >= 500, "expired_keys {expired}");
}

#[test]
fn every_core_is_a_cluster_node() {
    let server = start(&["--cores", "0,1"]);
    let addrs = server.addrs().to_vec();
    assert_eq!(addrs.len(), 2);
    let mut a = Resp::connect(&addrs[0]);
    let mut b = Resp::connect(&addrs[1]);
    let port = |addr: &str| addr.rsplit(':').next().expect("port").parse::<i64>().expect("port");
    let slots = a.cmd(&["CLUSTER", "SLOTS"]);
    assert_eq!(slots, b.cmd(&["CLUSTER", "SLOTS"]), "both nodes tell the same map");
    let Value::Array(ranges) = slots else { panic!("slots") };
    assert_eq!(ranges.len(), 2);
    let Value::Array(first) = &ranges[0] else { panic!("range") };
    assert_eq!(first[0], Value::Int(0));
    assert_eq!(first[1], Value::Int(8191));
    let Value::Array(node) = &first[2] else { panic!("node") };
    assert_eq!(node[1], Value::Int(port(&addrs[0])));
    let id0 = node[2].text();
    assert_eq!(a.cmd(&["CLUSTER", "MYID"]).text(), id0);
    let nodes = a.cmd(&["CLUSTER", "NODES"]).text();
    assert!(nodes.ends_with('\n') && !nodes.contains('\r'), "{nodes:?}");
    let rows: Vec<&str> = nodes.lines().collect();
    assert_eq!(rows.len(), 2);
    assert!(rows[0].starts_with(&id0) && rows[0].contains("myself,master") && rows[0].ends_with(" 0-8191"), "{nodes}");
    assert!(!rows[1].contains("myself") && rows[1].ends_with(" 8192-16383"), "{nodes}");
    assert!(b.cmd(&["CLUSTER", "NODES"]).text().lines().nth(1).is_some_and(|r| r.contains("myself")));
    assert!(a.cmd(&["CLUSTER", "INFO"]).text().contains("cluster_state:ok"));

    // "foo" hashes to slot 12182: core 1's. Core 0 redirects.
    assert_eq!(a.cmd(&["CLUSTER", "KEYSLOT", "foo"]), Value::Int(12182));
    assert_eq!(a.cmd(&["SET", "foo", "bar"]), Value::Error(format!("MOVED 12182 {}", addrs[1])));
    assert_eq!(b.cmd(&["SET", "foo", "bar"]), ok());
    assert_eq!(b.cmd(&["CLUSTER", "COUNTKEYSINSLOT", "12182"]), Value::Int(1));
    assert_eq!(a.cmd(&["CLUSTER", "COUNTKEYSINSLOT", "12182"]), Value::Int(0));
    assert_eq!(a.cmd(&["CLUSTER", "COUNTKEYSINSLOT", "16384"]), Value::Error("ERR Invalid slot".into()));
    // "a" (15495) and "b" (3300) are in different slots.
    assert_eq!(
        a.cmd(&["MSET", "a", "1", "b", "2"]),
        Value::Error("CROSSSLOT Keys in request don't hash to the same slot".into())
    );
    assert_eq!(a.cmd(&["DEL", "a", "b"]), Value::Error("CROSSSLOT Keys in request don't hash to the same slot".into()));
    assert_eq!(a.cmd(&["CLUSTER", "NOPE"]), Value::Error("ERR unknown subcommand 'NOPE'. Try CLUSTER HELP.".into()));
}

#[test]
fn hello_3_switches_to_resp3() {
    let server = start(&["--cores", "0"]);
    let mut c = Resp::connect(server.addr());
    let Value::Map(hello) = c.cmd(&["HELLO", "3", "SETNAME", "me"]) else { panic!("HELLO 3 answers a map") };
    assert!(hello.contains(&(bulk("proto"), Value::Int(3))));
    assert!(hello.contains(&(bulk("mode"), bulk("cluster"))));
    assert_eq!(c.cmd(&["GET", "missing"]), Value::Null);
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]), bulk("me"));
    assert!(matches!(c.cmd(&["CLUSTER", "NODES"]), Value::Verbatim(_)));
    assert_eq!(c.cmd(&["HELLO", "4"]), Value::Error("NOPROTO unsupported protocol version".into()));
    let Value::Array(hello2) = c.cmd(&["HELLO", "2"]) else { panic!("HELLO 2 answers a flat array") };
    assert_eq!(hello2.len(), 14);
    assert!(matches!(c.cmd(&["COMMAND", "COUNT"]), Value::Int(n) if n > 40));
    let Value::Array(info) = c.cmd(&["COMMAND", "INFO", "mset", "nope"]) else { panic!("COMMAND INFO") };
    let Value::Array(mset) = &info[0] else { panic!("mset entry") };
    assert_eq!(&mset[..2], &[bulk("mset"), Value::Int(-3)]);
    assert_eq!(&mset[3..6], &[Value::Int(1), Value::Int(-1), Value::Int(2)]);
    assert_eq!(info[1], Value::Null);
    let Value::Array(config) = c.cmd(&["CONFIG", "GET", "save", "appendonly"]) else { panic!("CONFIG GET") };
    assert_eq!(config, vec![bulk("save"), bulk(""), bulk("appendonly"), bulk("no")], "RESP2: a flat array");
    assert_eq!(c.cmd(&["HELLO", "3"]).error(), None);
    let Value::Map(config) = c.cmd(&["CONFIG", "GET", "max*"]) else { panic!("CONFIG GET in RESP3") };
    assert!(config.contains(&(bulk("maxclients"), bulk("1024"))), "{config:?}");
}

#[test]
fn malformed_resp_ends_only_its_connection_and_frames_share_the_port() {
    let server = start(&["--cores", "0", "--proto-max-bulk-len", "1000", "--max-multibulk-len", "8"]);
    let mut good = Resp::connect(server.addr());
    assert_eq!(good.cmd(&["SET", "k", "v"]), ok());
    let cases: [(&[u8], &str); 5] = [
        (b"*1\r\n$x\r\n", "ERR Protocol error: invalid bulk length"),
        (b"*1\r\n+PING\r\n", "ERR Protocol error: expected '$', got '+'"),
        (b"*9\r\n", "ERR Protocol error: invalid multibulk length"),
        (b"*2\r\n$3\r\nSET\r\n$2000\r\n", "ERR Protocol error: invalid bulk length"),
        (b"SET \"a\"b c\r\n", "ERR Protocol error: unbalanced quotes in request"),
    ];
    for (bytes, want) in cases {
        let mut bad = Resp::connect(server.addr());
        bad.send(bytes);
        assert_eq!(bad.read(), Some(Value::Error(want.into())), "{:?}", String::from_utf8_lossy(bytes));
        assert_eq!(bad.read(), None, "the connection closes after a protocol error");
    }
    // An HTTP request (a browser made to reach a local port) is closed
    // without a reply at its `Host:` line, as Redis does.
    let mut http = Resp::connect(server.addr());
    http.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(http.read(), Some(Value::Error("ERR wrong number of arguments for 'get' command".into())));
    assert_eq!(http.read(), None, "closed at the Host: line");
    assert_eq!(good.cmd(&["GET", "k"]), bulk("v"), "other connections never notice");
    let mut frames = Connection::connect(server.addr(), Expect::default(), Duration::from_secs(10)).expect("percore");
    assert_eq!(frames.execute(&[Op::Get { key: b"k".to_vec() }]).expect("get"), vec![OpResult::Value(b"v".to_vec())]);
    // A pipeline is answered in order, in one go.
    let mut pipe = Vec::new();
    for i in 0..100 {
        pipe.extend_from_slice(&testkit::resp::multibulk(&[b"INCR", b"ctr"]));
        if i % 10 == 0 {
            pipe.extend_from_slice(b"PING\r\n");
        }
    }
    good.send(&pipe);
    let mut n = 0;
    for i in 0..100 {
        n += 1;
        assert_eq!(good.read(), Some(Value::Int(n)));
        if i % 10 == 0 {
            assert_eq!(good.read(), Some(Value::Simple("PONG".into())));
        }
    }
}

#[test]
fn requirepass_guards_the_door() {
    let server = start(&["--cores", "0", "--requirepass", "s3cret"]);
    let mut c = Resp::connect(server.addr());
    assert_eq!(c.cmd(&["GET", "k"]), Value::Error("NOAUTH Authentication required.".into()));
    assert_eq!(
        c.cmd(&["AUTH", "wrong"]),
        Value::Error("WRONGPASS invalid username-password pair or user is disabled.".into())
    );
    assert_eq!(c.cmd(&["AUTH", "s3cret"]), ok());
    assert_eq!(c.cmd(&["SET", "k", "v"]), ok());
    let mut d = Resp::connect(server.addr());
    assert!(matches!(d.cmd(&["HELLO", "3", "AUTH", "default", "s3cret"]), Value::Map(_)));
    assert_eq!(d.cmd(&["GET", "k"]), bulk("v"));
    let mut e = Resp::connect(server.addr());
    assert!(e.cmd(&["HELLO", "3"]).error().is_some_and(|m| m.starts_with("NOAUTH")));
    // Before AUTH a command may not be large.
    let mut big = Resp::connect(server.addr());
    big.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n");
    assert!(big.read().and_then(|v| v.error().map(str::to_string)).is_some_and(|m| m.contains("authenticated")));
}

/// A RESP client that sends only GETs and SETs (the pipelined fast path)
/// has passed the door's handshake with its first command: it is not cut
/// off when `handshake_timeout` has passed since its accept.
#[test]
fn a_get_and_set_only_client_outlives_the_handshake_timeout() {
    let server = start(&["--cores", "0", "--handshake-timeout", "300ms"]);
    let mut r = Resp::connect(server.addr());
    assert_eq!(r.cmd(&["SET", "k", "v"]), ok());
    let until = Instant::now() + Duration::from_millis(900);
    let mut n = 0u64;
    while Instant::now() < until {
        assert_eq!(r.cmd(&["GET", "k"]), bulk("v"), "GET number {n}");
        n += 1;
    }
    assert_eq!(r.cmd(&["SET", "k", "w"]), ok());
    assert_eq!(r.cmd(&["GET", "k"]), bulk("w"));
}

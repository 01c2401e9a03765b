//! The server, driven over TCP as a real process on loopback.

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use std::collections::HashMap;
use std::time::Duration;
use testkit::{Raw, Server, TempDir, request};
use wire::buf::RecvBuf;
use wire::client::{Connection, Expect};
use wire::codec::{RequestEncoder, decode_response};
use wire::frame::{HEADER_LEN, Kind, write_header};
use wire::msg::{ArchivedOpResult, ErrorCode, Op, OpResult};

const T: Duration = Duration::from_secs(10);

trait Start {
    fn start(args: &[&str]) -> Server;
}

impl Start for Server {
    fn start(args: &[&str]) -> Server {
        Server::start_with(env!("CARGO_BIN_EXE_percore-server"), args)
    }
}

fn connect(server: &Server) -> Connection {
    Connection::connect(server.addr(), Expect { shard: Some(0), total_shards: Some(1), password: None }, T)
        .expect("connect")
}

#[test]
fn put_get_delete_semantics() {
    let server = Server::start(&["--cores", "0", "--port", "0", "--stats-interval-ms", "0"]);
    let mut c = connect(&server);
    let r = c
        .execute(&[
            Op::Get { key: b"a".to_vec() },
            Op::Put { key: b"a".to_vec(), value: b"1".to_vec() },
            Op::Get { key: b"a".to_vec() },
            Op::Put { key: b"a".to_vec(), value: b"two".to_vec() },
            Op::Get { key: b"a".to_vec() },
            Op::Delete { key: b"a".to_vec() },
            Op::Get { key: b"a".to_vec() },
            Op::Delete { key: b"never".to_vec() },
            Op::Put { key: vec![], value: vec![] },
            Op::Get { key: vec![] },
        ])
        .expect("batch");
    assert_eq!(
        r,
        vec![
            OpResult::NotFound,
            OpResult::Done,
            OpResult::Value(b"1".to_vec()),
            OpResult::Done,
            OpResult::Value(b"two".to_vec()),
            OpResult::Done,
            OpResult::NotFound,
            OpResult::Done,
            OpResult::Done,
            OpResult::Value(vec![]),
        ]
    );
    // A second connection sees the first one's writes.
    let mut d = connect(&server);
    assert_eq!(d.execute(&[Op::Get { key: vec![] }]).expect("get"), vec![OpResult::Value(vec![])]);
}

#[test]
fn ten_thousand_random_ops_match_a_hashmap() {
    let server = Server::start(&["--cores", "0", "--port", "0", "--stats-interval-ms", "0"]);
    let mut c = connect(&server);
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut done = 0;
    while done < 10_000 {
        let n = rng.random_range(1..=64);
        let mut ops = Vec::with_capacity(n);
        let mut expected = Vec::with_capacity(n);
        for _ in 0..n {
            let key = format!("k{}", rng.random_range(0..500)).into_bytes();
            match rng.random_range(0..10) {
                0..=4 => {
                    expected.push(model.get(&key).map_or(OpResult::NotFound, |v| OpResult::Value(v.clone())));
                    ops.push(Op::Get { key });
                }
                5..=8 => {
                    let len = rng.random_range(0..300);
                    let value: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                    model.insert(key.clone(), value.clone());
                    expected.push(OpResult::Done);
                    ops.push(Op::Put { key, value });
                }
                _ => {
                    model.remove(&key);
                    expected.push(OpResult::Done);
                    ops.push(Op::Delete { key });
                }
            }
        }
        assert_eq!(c.execute(&ops).expect("batch"), expected, "after {done} ops");
        done += n;
    }
    for (k, v) in &model {
        assert_eq!(c.execute(&[Op::Get { key: k.clone() }]).expect("get"), vec![OpResult::Value(v.clone())]);
    }
}

#[test]
fn sixty_four_pipelined_frames_are_answered_in_order() {
    let server = Server::start(&["--cores", "0", "--port", "0", "--stats-interval-ms", "0"]);
    let mut raw = Raw::handshaken(server.addr());
    let mut out = Vec::new();
    let mut enc = RequestEncoder::new();
    for i in 0..64u64 {
        enc.begin(&mut out, 1000 + i);
        let key = format!("p{}", i % 8);
        enc.put(&mut out, key.as_bytes(), format!("v{i}").as_bytes());
        enc.get(&mut out, key.as_bytes());
        enc.finish(&mut out);
    }
    raw.send(&out); // all 64 frames before reading anything
    for i in 0..64u64 {
        let (kind, body) = raw.frame().expect("response");
        assert_eq!(kind, Kind::Response);
        let mut b = RecvBuf::new(body.len(), body.len());
        b.extend_from_slice(&body);
        let resp = decode_response(b.filled()).expect("valid");
        assert_eq!(resp.batch_id.to_native(), 1000 + i, "replies come in request order");
        match &resp.results[1] {
            ArchivedOpResult::Value(v) => assert_eq!(v.as_slice(), format!("v{i}").as_bytes()),
            other => panic!("frame {i}: {other:?}"),
        }
    }
}

#[test]
fn handshake_mismatches_name_both_sides() {
    let server = Server::start(&["--cores", "0", "--port", "0", "--stats-interval-ms", "0"]);
    let err = Connection::connect(server.addr(), Expect { shard: Some(3), total_shards: Some(1), password: None }, T)
        .err()
        .expect("wrong shard id refused")
        .to_string();
    assert!(err.contains("ShardMismatch") && err.contains("shard 3") && err.contains("shard 0"), "{err}");

    let err = Connection::connect(server.addr(), Expect { shard: Some(0), total_shards: Some(4), password: None }, T)
        .err()
        .expect("wrong total refused")
        .to_string();
    assert!(err.contains("ShardCountMismatch") && err.contains("expects 4") && err.contains("has 1"), "{err}");

    let mut raw = Raw::connect(server.addr());
    let mut frame = Vec::new();
    wire::codec::encode(
        Kind::Hello,
        &wire::msg::Hello { protocol: 9, shard: None, total_shards: None, client: "future".into(), password: None },
        &mut frame,
    )
    .expect("encode");
    frame[4] = 9; // a client from the future speaks protocol 9
    raw.send(&frame);
    let msg = raw.expect_error(ErrorCode::UnsupportedVersion);
    let this_side = format!("this side speaks {}", wire::frame::PROTOCOL_VERSION);
    assert!(msg.contains("peer speaks 9") && msg.contains(&this_side), "{msg}");
}

/// A frame header with an arbitrary declared body length.
fn header(kind: Kind, len: u32) -> Vec<u8> {
    let mut h = vec![0u8; HEADER_LEN];
    write_header(&mut h, kind, len);
    h
}

/// Runs one bad-input case on its own connection while a well-behaved
/// client keeps its connection, and checks that client's data survived.
fn bad_input_case(server: &Server, name: &str, code: ErrorCode, bad: impl FnOnce(&mut Raw)) -> String {
    let mut good = connect(server);
    let key = format!("survivor-{name}").into_bytes();
    good.execute(&[Op::Put { key: key.clone(), value: b"intact".to_vec() }]).expect("put");

    let mut raw = Raw::connect(server.addr());
    bad(&mut raw);
    let message = raw.expect_error(code);

    // The same connection of the good client still works and sees its write.
    let r = good.execute(&[Op::Get { key: key.clone() }]).expect("good client unaffected");
    assert_eq!(r, vec![OpResult::Value(b"intact".to_vec())], "{name}");
    // And new connections are served.
    let mut fresh = connect(server);
    assert_eq!(fresh.execute(&[Op::Get { key }]).expect("get"), vec![OpResult::Value(b"intact".to_vec())]);
    message
}

#[test]
fn each_bad_input_class_closes_only_its_connection() {
    let server =
        Server::start(&["--cores", "0", "--port", "0", "--stats-interval-ms", "0", "--frame-timeout", "300ms"]);

    // Bytes that do not begin `PCOR` are RESP (see resp.rs); a bad magic
    // can only follow a first frame.
    let m = bad_input_case(&server, "magic", ErrorCode::BadMagic, |r| {
        *r = Raw::handshaken(server.addr());
        let mut h = header(Kind::Request, 32);
        h[..4].copy_from_slice(b"XXXX");
        r.send(&h);
    });
    assert!(m.contains("bad magic"), "{m}");

    let m = bad_input_case(&server, "huge", ErrorCode::FrameTooLarge, |r| r.send(&header(Kind::Request, u32::MAX)));
    assert!(m.contains("exceeds max_frame_bytes"), "{m}");

    let m = bad_input_case(&server, "truncated-close", ErrorCode::Corrupt, |r| {
        *r = Raw::handshaken(server.addr());
        let frame = request(|e, o| e.put(o, b"never-stored", &[1u8; 500]));
        r.send(&frame[..frame.len() / 2]);
        r.shutdown_write();
    });
    assert!(m.contains("closed mid-frame"), "{m}");

    let m = bad_input_case(&server, "truncated-stall", ErrorCode::Timeout, |r| {
        *r = Raw::handshaken(server.addr());
        let frame = request(|e, o| e.put(o, b"never-stored", &[1u8; 500]));
        r.send(&frame[..frame.len() / 2]);
        // …and nothing more: the frame timeout (300 ms) fires.
    });
    assert!(m.contains("not completed"), "{m}");

    let m = bad_input_case(&server, "oversized-key", ErrorCode::KeyTooLarge, |r| {
        *r = Raw::handshaken(server.addr());
        r.send(&request(|e, o| {
            e.put(o, b"never-stored", b"x");
            e.get(o, &[b'k'; 2000]);
        }));
    });
    assert!(m.contains("key of 2000 bytes exceeds max_key_len 1024"), "{m}");

    let m = bad_input_case(&server, "too-many-ops", ErrorCode::TooManyOps, |r| {
        *r = Raw::handshaken(server.addr());
        r.send(&request(|e, o| {
            e.put(o, b"never-stored", b"x");
            for _ in 0..20_000 {
                e.get(o, b"k");
            }
        }));
    });
    assert!(m.contains("20001 operations exceeds max_ops_per_frame 16384"), "{m}");

    let m = bad_input_case(&server, "corrupt-archive", ErrorCode::Corrupt, |r| {
        *r = Raw::handshaken(server.addr());
        let mut frame = request(|e, o| e.put(o, b"never-stored", b"x"));
        // Point the key's relative pointer outside the archive.
        let at = HEADER_LEN + 16;
        frame[at..at + 4].copy_from_slice(&100_000i32.to_le_bytes());
        r.send(&frame);
    });
    assert!(m.contains("corrupt request body") && !m.contains("without error information"), "{m}");

    bad_input_case(&server, "no-handshake", ErrorCode::Unexpected, |r| {
        r.send(&request(|e, o| e.put(o, b"never-stored", b"x")));
    });

    // None of the refused frames ran.
    let mut c = connect(&server);
    assert_eq!(c.execute(&[Op::Get { key: b"never-stored".to_vec() }]).expect("get"), vec![OpResult::NotFound]);
    let stats = c.stats().expect("stats");
    assert_eq!(stats.counters.protocol_errors, 8);
    assert!(stats.counters.connections_total >= 24);
}

#[test]
fn connections_beyond_the_cap_are_refused_and_the_rest_served() {
    let server = Server::start(&["--cores", "0", "--port", "0", "--stats-interval-ms", "0", "--max-connections", "50"]);
    let mut good = connect(&server);
    good.execute(&[Op::Put { key: b"k".to_vec(), value: b"v".to_vec() }]).expect("put");
    // Connections past their handshake are never dropped to make room.
    let mut idle: Vec<Raw> = (0..49).map(|_| Raw::handshaken(server.addr())).collect();
    // Wait until the server has accepted all 50; then one more is over the cap.
    while good.stats().expect("stats").counters.connections_open < 50 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut extra = Raw::connect(server.addr());
    let m = extra.expect_error(ErrorCode::TooManyConnections);
    assert!(m.contains("50 connections"), "{m}");
    assert_eq!(good.stats().expect("stats").counters.connections_refused, 1);
    assert_eq!(good.execute(&[Op::Get { key: b"k".to_vec() }]).expect("get"), vec![OpResult::Value(b"v".to_vec())]);
    // Closing idle connections frees room.
    idle.truncate(0);
    while good.stats().expect("stats").counters.connections_open > 1 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut again = connect(&server);
    assert_eq!(again.execute(&[Op::Get { key: b"k".to_vec() }]).expect("get"), vec![OpResult::Value(b"v".to_vec())]);
}

#[test]
fn sigterm_exits_zero_with_final_stats() {
    let mut server = Server::start(&["--cores", "0", "--port", "0", "--stats-interval-ms", "200"]);
    let mut c = connect(&server);
    c.execute(&[Op::Put { key: b"x".to_vec(), value: b"y".to_vec() }, Op::Get { key: b"x".to_vec() }]).expect("ops");
    std::thread::sleep(Duration::from_millis(500));
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}; stderr: {}", server.stderr());
    let out = server.stdout();
    assert!(out.lines().any(|l| l.starts_with("ops/s ")), "rate lines printed:\n{out}");
    let fin =
        out.lines().find(|l| l.starts_with("final node local:")).unwrap_or_else(|| panic!("no final line:\n{out}"));
    assert!(fin.contains("ops 2 gets 1 puts 1"), "{fin}");
    assert!(fin.contains("keys 1"), "{fin}");
}

/// An idle open connection is closed cleanly (no error frame) at SIGTERM.
/// (Frames still unanswered at the signal: `hostile.rs`.)
#[test]
fn sigterm_closes_idle_connections_cleanly() {
    let mut server = Server::start(&["--cores", "0", "--port", "0", "--stats-interval-ms", "0"]);
    let mut raw = Raw::handshaken(server.addr());
    raw.send(&request(|e, o| e.put(o, b"late", b"write")));
    let (kind, _) = raw.frame().expect("reply");
    assert_eq!(kind, Kind::Response);
    let status = server.terminate();
    assert!(status.success());
    assert!(raw.frame().is_none(), "closed without an error frame");
}

fn run_server(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_percore-server"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn start_up_problems_are_one_line_and_nonzero() {
    let server = Server::start(&["--cores", "0", "--port", "0", "--stats-interval-ms", "0"]);
    let port = server.addr().rsplit(':').next().expect("port");
    let (code, err) = run_server(&["--cores", "0", "--port", port]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.contains(&format!("127.0.0.1:{port} is already in use")), "{err}");

    let (code, err) = run_server(&["--cores", "4095", "--port", "0"]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.contains("CPU 4095 is not available"), "{err}");

    let (code, err) = run_server(&["--config", "/nonexistent/cluster.toml", "--node", "a"]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.contains("cannot read cluster file /nonexistent/cluster.toml"), "{err}");

    let dir = TempDir::new("bad-config");
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[[server]]\nname = \"a\"\naddr = \"127.0.0.1\"\ncores = []\n").expect("write");
    let (code, err) = run_server(&["--config", file.to_str().expect("utf8"), "--node", "a"]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.contains("at least one CPU"), "{err}");
    // A valid cluster file that does not name the node.
    let good = dir.join("good.toml");
    std::fs::write(&good, "[[server]]\nname = \"a\"\naddr = \"127.0.0.1\"\ncores = [0]\nport = 1\n").expect("write");
    let (code, err) = run_server(&["--config", good.to_str().expect("utf8"), "--node", "zz"]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.contains("has no server named \"zz\" (it lists: a)"), "{err}");
    // Limits that cannot work are refused by name.
    let (code, err) = run_server(&["--cores", "0", "--port", "0", "--frame-timeout", "0"]);
    assert_eq!(code, 1);
    assert!(err.contains("frame_timeout") && err.lines().count() == 1, "{err}");
    let (code, err) = run_server(&["--cores", "0", "--port", "0", "--maxmemory", "lots"]);
    assert_eq!(code, 2, "clap refuses the value");
    assert!(err.contains("not a byte count"), "{err}");
}

#[test]
fn wrong_shard_keys_are_refused_and_not_stored() {
    // Two shards on one node: each key is served only by its owner's port.
    let server = Server::start(&["--cores", "0,1", "--port", "0", "--stats-interval-ms", "0"]);
    assert_eq!(server.endpoints.len(), 2);
    let mut s0 =
        Connection::connect(&server.endpoints[0], Expect { shard: Some(0), total_shards: Some(2), password: None }, T)
            .expect("s0");
    let mut s1 =
        Connection::connect(&server.endpoints[1], Expect { shard: Some(1), total_shards: Some(2), password: None }, T)
            .expect("s1");
    let map = wire::ShardMap::new(s0.hello().map.clone()).expect("map");
    let keys: Vec<Vec<u8>> = (0..200).map(|i| format!("{i}").into_bytes()).collect();
    let ops: Vec<Op> = keys.iter().map(|k| Op::Put { key: k.clone(), value: b"v".to_vec() }).collect();
    let r0 = s0.execute(&ops).expect("batch to shard 0");
    for (k, r) in keys.iter().zip(&r0) {
        let owner = map.shard_of(k);
        let expected = if owner == 0 { OpResult::Done } else { OpResult::Error(wire::msg::OpError::WrongShard) };
        assert_eq!(r, &expected, "key {}", String::from_utf8_lossy(k));
    }
    // Keys refused by shard 0 were not stored anywhere.
    let gets: Vec<Op> = keys.iter().map(|k| Op::Get { key: k.clone() }).collect();
    let r1 = s1.execute(&gets).expect("batch to shard 1");
    for (k, r) in keys.iter().zip(&r1) {
        let expected =
            if map.shard_of(k) == 1 { OpResult::NotFound } else { OpResult::Error(wire::msg::OpError::WrongShard) };
        assert_eq!(r, &expected);
    }
}

/// Resource limits come from the cluster file's `[limits]`; a flag overrides one.
#[test]
fn limits_come_from_the_cluster_file_and_flags_override_them() {
    let dir = TempDir::new("limits");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let file = dir.join("c.toml");
    std::fs::write(
        &file,
        format!(
            "[limits]\nhandshake_timeout = \"300ms\"\nmaxmemory = \"32mb\"\n\n[[server]]\nname = \"a\"\naddr = \"127.0.0.1\"\ncores = [0]\nport = {port}\n"
        ),
    )
    .expect("write");
    let path = file.to_str().expect("utf8");
    for (extra, want) in [(None, "300ms"), (Some("700ms"), "700ms")] {
        let mut args = vec!["--config", path, "--node", "a", "--stats-interval-ms", "0"];
        if let Some(t) = extra {
            args.extend(["--handshake-timeout", t]);
        }
        let mut server = Server::start(&args);
        let mut silent = Raw::connect(server.addr());
        let m = silent.expect_error(ErrorCode::HandshakeTimeout);
        assert!(m.contains(want), "{m}");
        let stats = connect(&server).stats().expect("stats");
        assert_eq!(stats.counters.memory_limit, 32 << 20, "maxmemory from the file");
        assert!(server.terminate().success());
    }
}

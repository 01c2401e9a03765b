//! A node's secret on the percore-frame door: a real server process on
//! loopback with `--requirepass` refuses a hello without the right
//! password (`AuthFailed`, after the same pause as the RESP door's wrong
//! `AUTH`, then the close), serves one with it, and a node without a
//! secret ignores a password it is sent.

use std::time::{Duration, Instant};
use testkit::{Raw, Server, hello_frame, request};
use wire::client::{Connection, Expect};
use wire::frame::Kind;
use wire::msg::{ErrorCode, Op, OpResult};

const T: Duration = Duration::from_secs(10);
const SECRET: &str = "s3cret";

fn start(args: &[&str]) -> Server {
    let mut all = vec!["--cores", "0", "--port", "0", "--stats-interval-ms", "0"];
    all.extend_from_slice(args);
    Server::start_with(env!("CARGO_BIN_EXE_percore-server"), &all)
}

fn expect(password: Option<&str>) -> Expect {
    Expect { shard: Some(0), total_shards: Some(1), password: password.map(str::to_string) }
}

/// Sends a hello carrying `password` on a fresh connection and returns the
/// refusal's message (the close after it is checked too) and how long the
/// refusal took to come.
fn refused(server: &Server, password: Option<&str>) -> (String, Duration) {
    let mut raw = Raw::connect(server.addr());
    let sent = Instant::now();
    raw.send(&hello_frame(password));
    let message = raw.expect_error(ErrorCode::AuthFailed);
    (message, sent.elapsed())
}

#[test]
fn a_protected_node_refuses_a_hello_without_its_secret() {
    let server = start(&["--requirepass", SECRET]);

    let (message, waited) = refused(&server, None);
    assert!(
        message.contains("requires a password")
            && message.contains("--password")
            && message.contains("PERCORE_PASSWORD"),
        "the refusal says how to pass the secret: {message}"
    );
    // A lower bound only: the refusal cannot come before the pause.
    assert!(waited >= Duration::from_millis(200), "refused after {waited:?}, before the 200 ms pause");

    let (message, waited) = refused(&server, Some("s3creT"));
    assert_eq!(message, "wrong password");
    assert!(waited >= Duration::from_millis(200), "refused after {waited:?}, before the 200 ms pause");
    let (message, _) = refused(&server, Some(""));
    assert_eq!(message, "wrong password");
    let (message, _) = refused(&server, Some("s3cret-and-more"));
    assert_eq!(message, "wrong password");

    // The client library reports the refusal by its code.
    let err = Connection::connect(server.addr(), expect(Some("nope")), T).err().expect("a wrong secret is refused");
    match &err {
        wire::Error::Server { code: ErrorCode::AuthFailed, message, .. } => assert_eq!(message, "wrong password"),
        other => panic!("expected AuthFailed, got {other}"),
    }

    // Nothing is served before the handshake: not a batch, not the counters.
    let mut raw = Raw::connect(server.addr());
    raw.send(&request(|enc, out| enc.put(out, b"k", b"v")));
    raw.expect_error(ErrorCode::Unexpected);
    let mut raw = Raw::connect(server.addr());
    let mut stats = Vec::new();
    wire::codec::encode(Kind::StatsRequest, &(), &mut stats).expect("encode");
    raw.send(&stats);
    let message = raw.expect_error(ErrorCode::Unexpected);
    assert!(message.contains("before the handshake"), "{message}");

    // The refused hellos and frames wrote nothing.
    let mut good = Connection::connect(server.addr(), expect(Some(SECRET)), T).expect("the right secret");
    assert_eq!(good.execute(&[Op::Get { key: b"k".to_vec() }]).expect("get"), vec![OpResult::NotFound]);
}

#[test]
fn a_protected_node_serves_a_hello_with_its_secret() {
    let server = start(&["--requirepass", SECRET]);
    let mut c = Connection::connect(server.addr(), expect(Some(SECRET)), T).expect("the right secret is served");
    let r = c
        .execute(&[Op::Put { key: b"k".to_vec(), value: b"v".to_vec() }, Op::Get { key: b"k".to_vec() }])
        .expect("batch");
    assert_eq!(r, vec![OpResult::Done, OpResult::Value(b"v".to_vec())]);
    assert_eq!(c.stats().expect("stats after the handshake").counters.puts, 1);

    // The raw hello too: its reply is the handshake's.
    let mut raw = Raw::connect(server.addr());
    raw.send(&hello_frame(Some(SECRET)));
    assert_eq!(raw.frame().expect("a reply").0, Kind::HelloReply);
}

#[test]
fn a_node_without_a_secret_ignores_the_one_a_client_sends() {
    let server = start(&[]);
    let mut c = Connection::connect(server.addr(), expect(Some("anything")), T).expect("served");
    assert_eq!(c.execute(&[Op::Put { key: b"k".to_vec(), value: b"v".to_vec() }]).expect("put"), vec![OpResult::Done]);
    let mut c = Connection::connect(server.addr(), expect(None), T).expect("served without one too");
    assert_eq!(c.execute(&[Op::Get { key: b"k".to_vec() }]).expect("get"), vec![OpResult::Value(b"v".to_vec())]);
}

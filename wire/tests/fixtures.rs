//! Wire-format fixtures: frames written by today's encoders, pinned as bytes.
//!
//! If a test here fails, the wire format changed. That must be a decision:
//! bump `PROTOCOL_VERSION`, keep the old fixture as a compatibility case, and
//! re-bless with `PERCORE_BLESS=1 cargo test -p percore-wire --test fixtures`.
//! Without that variable a missing or different fixture fails the test.

use std::path::PathBuf;
use wire::Limits;
use wire::buf::RecvBuf;
use wire::codec::{RequestEncoder, ResponseEncoder, decode_request, encode};
use wire::frame::{Kind, Next, next_frame};
use wire::msg::{ErrorBody, ErrorCode, Hello, HelloReply, Op, OpError, Request, ShardInfo, SlotRange};

fn check(name: &str, bytes: &[u8]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    if std::env::var_os("PERCORE_BLESS").is_some() {
        std::fs::write(&path, bytes).expect("write fixture");
        return;
    }
    let pinned = std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {} unreadable: {e}", path.display()));
    assert!(
        pinned == bytes,
        "the encoding of {name} changed: the wire format is pinned (see this file's header)\n pinned: {pinned:02x?}\n   now: {bytes:02x?}"
    );
}

#[test]
fn request_frame_is_pinned() {
    let mut out = Vec::new();
    let mut enc = RequestEncoder::new();
    enc.begin(&mut out, 0x0102_0304_0506_0708);
    enc.get(&mut out, b"123456");
    enc.put(&mut out, b"42", b"value-of-42");
    enc.delete(&mut out, b"{tag}x");
    enc.get(&mut out, b"");
    enc.finish(&mut out);
    check("request_v1.bin", &out);

    // And today's decoder still reads the pinned bytes.
    let pinned = std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/request_v1.bin"))
        .expect("fixture");
    let mut buf = RecvBuf::new(64, 1 << 20);
    buf.extend_from_slice(&pinned);
    let Ok(Next::Frame(frame)) = next_frame(buf.filled(), &Limits::default()) else { panic!("pinned frame") };
    let req = decode_request(frame.body, &Limits::default()).expect("pinned frame validates");
    let back = rkyv::deserialize::<Request, rkyv::rancor::Error>(req).expect("deserializes");
    assert_eq!(
        back,
        Request {
            batch_id: 0x0102_0304_0506_0708,
            ops: vec![
                Op::Get { key: b"123456".to_vec() },
                Op::Put { key: b"42".to_vec(), value: b"value-of-42".to_vec() },
                Op::Delete { key: b"{tag}x".to_vec() },
                Op::Get { key: vec![] },
            ],
        }
    );
}

#[test]
fn response_frame_is_pinned() {
    let mut out = Vec::new();
    let mut enc = ResponseEncoder::new();
    enc.begin(&mut out, 0x0102_0304_0506_0708, 5);
    enc.value(&mut out, b"value-of-123456");
    enc.done();
    enc.done();
    enc.not_found();
    enc.error(OpError::WrongShard);
    enc.finish(&mut out);
    check("response_v1.bin", &out);
}

#[test]
fn handshake_frames_are_pinned() {
    let mut out = Vec::new();
    let hello = Hello { protocol: 1, shard: Some(1), total_shards: Some(2), client: "fixture".into() };
    encode(Kind::Hello, &hello, &mut out).expect("encode");
    check("hello_v1.bin", &out);

    let mut out = Vec::new();
    let reply = HelloReply {
        protocol: 1,
        shard: 1,
        total_shards: 2,
        node: "node0".into(),
        limits: Limits::default().into(),
        map: vec![
            ShardInfo {
                id: 0,
                node: "node0".into(),
                addr: "10.10.1.1".into(),
                port: 7000,
                cpu: 1,
                slots: vec![SlotRange { start: 0, end: 8191 }],
            },
            ShardInfo {
                id: 1,
                node: "node0".into(),
                addr: "10.10.1.1".into(),
                port: 7001,
                cpu: 2,
                slots: vec![SlotRange { start: 8192, end: 16383 }],
            },
        ],
    };
    encode(Kind::HelloReply, &reply, &mut out).expect("encode");
    check("hello_reply_v1.bin", &out);
}

#[test]
fn error_frame_is_pinned() {
    let mut out = Vec::new();
    let body =
        ErrorBody { code: ErrorCode::UnsupportedVersion, message: "client speaks protocol 9, server speaks 1".into() };
    encode(Kind::Error, &body, &mut out).expect("encode");
    check("error_v1.bin", &out);
}

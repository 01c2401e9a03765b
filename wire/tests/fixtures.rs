//! Wire-format fixtures: frames written by today's encoders, pinned as bytes.
//!
//! If a test here fails, the wire format changed. That must be a decision:
//! bump `PROTOCOL_VERSION`, keep the old fixture as a compatibility case, and
//! re-bless with `PERCORE_BLESS=1 cargo test -p percore-wire --test fixtures`.
//! Without that variable a missing or different fixture fails the test.
//!
//! Decisions so far:
//! - **Version 2** (issue "No client can take a node down"): a PUT past
//!   `maxmemory` needed a per-operation answer, `OutOfMemory` (result error
//!   code 2); the new timeouts needed their own connection error codes
//!   (`HandshakeTimeout` 16, `IdleTimeout` 17); the stats reply gained eight
//!   counters. Request, hello and error bodies kept their layout (the
//!   version 1 fixtures still decode to the same values), but a version 1
//!   client cannot read every version 2 response, so every frame's header
//!   now says 2 and a version 1 frame is refused with `UnsupportedVersion`.
//! - **Stats reply, expired keys** (issue "Prometheus metrics"): the stats
//!   reply's counters gained `expired_keys` (the store's expiry), so its
//!   body grew by 8 bytes, and it is pinned here from now on
//!   (`stats_reply_v2.bin`). The version stays 2: requests, responses, the
//!   handshake and errors kept their bytes, so every data-path client keeps
//!   working; only `percore stats` reads this reply, and one built before
//!   the change fails to read a newer server's (or reads shifted fields).
//!   Run the `percore stats` of the servers' build.
//! - **Version 3** (issue "percore frames ignore `requirepass`"): a node with
//!   a secret must refuse a percore client that does not present it, so the
//!   hello gained `password` (the secret, or none) and connections a new
//!   error code, `AuthFailed` 18. A version 2 hello has no room for the
//!   secret (its body does not read as a version 3 hello), so every frame's
//!   header now says 3 and a version 2 frame is refused with
//!   `UnsupportedVersion`. Every other body kept its layout: the version 2
//!   request, response, hello reply, error and stats fixtures still decode
//!   to the values they carried.
//! - **Version 4** (issue 13, "a durable per-core log"): a node whose log
//!   disk is full or failing must answer a PUT or DELETE it cannot make
//!   durable with a per-operation error and change nothing, so operation
//!   results gained `NotDurable` (result error code 3, pinned alone in
//!   `response_not_durable_v4.bin`). Every body kept its layout (the
//!   version 3 bodies are byte-equal to the version 4 ones but for the
//!   protocol number the handshake carries), but a version 3 client fails
//!   to validate a whole response that carries code 3, so every frame's
//!   header now says 4 and a version 3 frame is refused with
//!   `UnsupportedVersion`.
//! - **Version 5** (issue 15, "every shard replicated"): a follower must
//!   answer an operation with `NotLeader` naming the leader, and the
//!   handshake's shard map must name each shard's replicas and leader. So
//!   operation results gained a variant, `NotLeader(u32)` (tag 4, the
//!   leader's member id in the entry's next 4 bytes, 0 when none is known:
//!   `response_not_leader_v5.bin`), and `ShardInfo` gained `replicas` and
//!   `leader`, which changes the hello reply's layout: a version 4 hello
//!   reply is no version 5 one. Every other body kept its bytes (the
//!   version 4 request, response, error, stats and hello fixtures still
//!   decode to the values they carried), but a version 4 client can read
//!   neither the map nor a NotLeader, so every frame's header now says 5
//!   and a version 4 frame is refused with `UnsupportedVersion`.

use std::path::PathBuf;
use wire::Limits;
use wire::buf::RecvBuf;
use wire::codec::{RESPONSE_ENTRY_LEN, RequestEncoder, ResponseEncoder, decode_request, encode};
use wire::frame::{FrameError, HEADER_LEN, Kind, Next, next_frame, parse_header};
use wire::msg::{
    ArchivedErrorBody, ArchivedHello, ArchivedHelloReply, ArchivedStatsReply, ErrorBody, ErrorCode, Hello, HelloReply,
    Op, OpError, OpResult, ReplicaInfo, Request, Response, ShardCounters, ShardInfo, SlotRange, StatsReply,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn check(name: &str, bytes: &[u8]) {
    let path = fixture(name);
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
    check("request_v5.bin", &out);

    // And today's decoder still reads the pinned bytes.
    let pinned = std::fs::read(fixture("request_v5.bin")).expect("fixture");
    let mut buf = RecvBuf::new(64, 1 << 20);
    buf.extend_from_slice(&pinned);
    let Ok(Next::Frame(frame)) = next_frame(buf.filled(), &Limits::default()) else { panic!("pinned frame") };
    let req = decode_request(frame.body, &Limits::default()).expect("pinned frame validates");
    let back = rkyv::deserialize::<Request, rkyv::rancor::Error>(req).expect("deserializes");
    assert_eq!(back, fixture_request());
}

fn fixture_request() -> Request {
    Request {
        batch_id: 0x0102_0304_0506_0708,
        ops: vec![
            Op::Get { key: b"123456".to_vec() },
            Op::Put { key: b"42".to_vec(), value: b"value-of-42".to_vec() },
            Op::Delete { key: b"{tag}x".to_vec() },
            Op::Get { key: vec![] },
        ],
    }
}

/// Version 1 frames: their headers are refused by name, and their bodies
/// (whose layout version 2 kept) still decode to the values they carried.
#[test]
fn version_1_frames_are_refused_but_their_bodies_still_read() {
    for name in ["request_v1.bin", "response_v1.bin", "hello_v1.bin", "hello_reply_v1.bin", "error_v1.bin"] {
        let bytes = std::fs::read(fixture(name)).expect("version 1 fixture kept");
        let head: &[u8; HEADER_LEN] = bytes[..HEADER_LEN].try_into().expect("header");
        assert_eq!(parse_header(head, &Limits::default()), Err(FrameError::UnsupportedVersion { found: 1 }), "{name}");
    }
    let buf = body_of("request_v1.bin");
    let req = decode_request(buf.filled(), &Limits::default()).expect("v1 request body validates");
    assert_eq!(rkyv::deserialize::<Request, rkyv::rancor::Error>(req).expect("deserializes"), fixture_request());
    let buf = body_of("error_v1.bin");
    let err = wire::codec::decode::<wire::msg::ArchivedErrorBody>(Kind::Error, buf.filled()).expect("v1 error body");
    assert_eq!(err.message.as_str(), "client speaks protocol 9, server speaks 1");
    // The version 1 response (no OutOfMemory in it) is still a valid body.
    let buf = body_of("response_v1.bin");
    assert_eq!(wire::codec::decode_response(buf.filled()).expect("v1 response body").results.len(), 5);
}

/// The body of a pinned frame, in an aligned buffer.
fn body_of(name: &str) -> RecvBuf {
    let bytes = std::fs::read(fixture(name)).expect("fixture");
    let len = u32::from_le_bytes(bytes[8..12].try_into().expect("len")) as usize;
    let mut buf = RecvBuf::new(64, 1 << 20);
    buf.extend_from_slice(&bytes[HEADER_LEN..HEADER_LEN + len]);
    buf
}

/// Version 2 frames: their headers are refused by name; every body but the
/// hello's (which version 3 grew by the password) still decodes to the
/// values it carried.
#[test]
fn version_2_frames_are_refused_but_their_bodies_other_than_the_hello_still_read() {
    for name in [
        "request_v2.bin",
        "response_v2.bin",
        "hello_v2.bin",
        "hello_reply_v2.bin",
        "error_v2.bin",
        "stats_reply_v2.bin",
    ] {
        let bytes = std::fs::read(fixture(name)).expect("version 2 fixture kept");
        let head: &[u8; HEADER_LEN] = bytes[..HEADER_LEN].try_into().expect("header");
        assert_eq!(parse_header(head, &Limits::default()), Err(FrameError::UnsupportedVersion { found: 2 }), "{name}");
    }
    let buf = body_of("request_v2.bin");
    let req = decode_request(buf.filled(), &Limits::default()).expect("v2 request body validates");
    assert_eq!(rkyv::deserialize::<Request, rkyv::rancor::Error>(req).expect("deserializes"), fixture_request());

    let buf = body_of("response_v2.bin");
    let v2 = wire::codec::decode_response(buf.filled()).expect("v2 response body");
    assert_eq!(buf.filled(), body_of("response_v5.bin").filled(), "the response body kept its bytes");
    assert_eq!(v2.results.len(), 6);

    // (Its hello reply is no version 5 one: see the version 4 test.)
    let buf = body_of("hello_reply_v2.bin");
    assert!(wire::codec::decode::<ArchivedHelloReply>(Kind::HelloReply, buf.filled()).is_err());

    let buf = body_of("error_v2.bin");
    let err = wire::codec::decode::<ArchivedErrorBody>(Kind::Error, buf.filled()).expect("v2 error body");
    assert_eq!(err.message.as_str(), "hello not answered within 5s of the connection being accepted");

    let buf = body_of("stats_reply_v2.bin");
    let a = wire::codec::decode::<ArchivedStatsReply>(Kind::StatsReply, buf.filled()).expect("v2 stats body");
    let back = rkyv::deserialize::<StatsReply, rkyv::rancor::Error>(a).expect("deserializes");
    assert_eq!(back, fixture_stats_reply());

    // The hello is why the version changed: a version 2 hello is no
    // version 3 hello.
    let buf = body_of("hello_v2.bin");
    assert!(
        wire::codec::decode::<ArchivedHello>(Kind::Hello, buf.filled()).is_err(),
        "a version 2 hello body must not validate as a version 3 hello"
    );
}

/// Version 3 frames: their headers are refused by name, and every body
/// still decodes to the values it carried: version 4 changed no layout,
/// only added an operation error code a version 3 peer cannot read.
#[test]
fn version_3_frames_are_refused_but_their_bodies_still_read() {
    let v3 = [
        "request_v3.bin",
        "response_v3.bin",
        "hello_v3.bin",
        "hello_nopass_v3.bin",
        "hello_reply_v3.bin",
        "error_v3.bin",
        "stats_reply_v3.bin",
    ];
    for name in v3 {
        let bytes = std::fs::read(fixture(name)).expect("version 3 fixture kept");
        let head: &[u8; HEADER_LEN] = bytes[..HEADER_LEN].try_into().expect("header");
        assert_eq!(parse_header(head, &Limits::default()), Err(FrameError::UnsupportedVersion { found: 3 }), "{name}");
    }
    // The bodies that carry no protocol number kept their bytes.
    for name in ["request", "response", "error", "stats_reply"] {
        let (old, new) = (body_of(&format!("{name}_v3.bin")), body_of(&format!("{name}_v5.bin")));
        assert_eq!(old.filled(), new.filled(), "the {name} body kept its bytes");
    }

    let buf = body_of("request_v3.bin");
    let req = decode_request(buf.filled(), &Limits::default()).expect("v3 request body validates");
    assert_eq!(rkyv::deserialize::<Request, rkyv::rancor::Error>(req).expect("deserializes"), fixture_request());

    let buf = body_of("response_v3.bin");
    assert_eq!(wire::codec::decode_response(buf.filled()).expect("v3 response body").results.len(), 6);

    for (name, password) in [("hello_v3.bin", Some("s3cret")), ("hello_nopass_v3.bin", None)] {
        let buf = body_of(name);
        let a = wire::codec::decode::<ArchivedHello>(Kind::Hello, buf.filled()).expect("v3 hello body");
        let back = rkyv::deserialize::<Hello, rkyv::rancor::Error>(a).expect("deserializes");
        assert_eq!(back, fixture_hello(3, password), "{name}");
    }

    let buf = body_of("hello_reply_v3.bin");
    assert!(wire::codec::decode::<ArchivedHelloReply>(Kind::HelloReply, buf.filled()).is_err());

    let buf = body_of("error_v3.bin");
    let a = wire::codec::decode::<ArchivedErrorBody>(Kind::Error, buf.filled()).expect("v3 error body");
    let back = rkyv::deserialize::<ErrorBody, rkyv::rancor::Error>(a).expect("deserializes");
    assert_eq!(back, ErrorBody { code: ErrorCode::AuthFailed, message: "wrong password".into() });

    let buf = body_of("stats_reply_v3.bin");
    let a = wire::codec::decode::<ArchivedStatsReply>(Kind::StatsReply, buf.filled()).expect("v3 stats body");
    let back = rkyv::deserialize::<StatsReply, rkyv::rancor::Error>(a).expect("deserializes");
    assert_eq!(back, fixture_stats_reply());
}

#[test]
fn response_frame_is_pinned() {
    let mut out = Vec::new();
    let mut enc = ResponseEncoder::new();
    enc.begin(&mut out, 0x0102_0304_0506_0708, 6);
    enc.value(&mut out, b"value-of-123456");
    enc.done();
    enc.done();
    enc.not_found();
    enc.error(OpError::WrongShard);
    enc.error(OpError::OutOfMemory);
    enc.finish(&mut out);
    check("response_v5.bin", &out);
}

/// Every per-operation error code, `NotDurable` (3, protocol 4) last: the
/// codes are bytes on the wire, and a peer that does not know one fails to
/// validate the whole response (which is why protocol 4 refuses version 3
/// peers).
#[test]
fn response_with_every_error_code_is_pinned() {
    let codes = [OpError::WrongShard, OpError::TooLarge, OpError::OutOfMemory, OpError::NotDurable];
    let mut out = Vec::new();
    let mut enc = ResponseEncoder::new();
    enc.begin(&mut out, 0x0102_0304_0506_0708, codes.len());
    for code in codes {
        enc.error(code);
    }
    enc.finish(&mut out);
    check("response_not_durable_v5.bin", &out);

    // The pinned bytes read back to the same codes...
    let buf = body_of("response_not_durable_v5.bin");
    let a = wire::codec::decode_response(buf.filled()).expect("validates");
    let back = rkyv::deserialize::<Response, rkyv::rancor::Error>(a).expect("deserializes");
    let expected: Vec<OpResult> = codes.iter().map(|&c| OpResult::Error(c)).collect();
    assert_eq!(back, Response { batch_id: 0x0102_0304_0506_0708, results: expected });

    // ...and each code is its byte: with no value in the response, the
    // 12-byte results start the body, a result's second byte its code.
    let body = buf.filled();
    for (i, code) in codes.iter().enumerate() {
        assert_eq!(body[i * RESPONSE_ENTRY_LEN + 1], i as u8, "{code}");
    }
    assert_eq!(body[3 * RESPONSE_ENTRY_LEN + 1], 3, "NotDurable is code 3");

    // A code past the last one fails the whole response: what a version 3
    // peer makes of code 3.
    let mut unknown = RecvBuf::new(64, 1 << 20);
    let mut bytes = body.to_vec();
    bytes[3 * RESPONSE_ENTRY_LEN + 1] = 4;
    unknown.extend_from_slice(&bytes);
    assert!(
        wire::codec::decode_response(unknown.filled()).is_err(),
        "an unknown operation error code must not validate"
    );
}

#[test]
fn handshake_frames_are_pinned() {
    for (name, password) in [("hello_v5.bin", Some("s3cret")), ("hello_nopass_v5.bin", None)] {
        let mut out = Vec::new();
        let hello = fixture_hello(5, password);
        encode(Kind::Hello, &hello, &mut out).expect("encode");
        check(name, &out);

        // And today's decoder reads the pinned bytes back to the same values.
        let buf = body_of(name);
        let a = wire::codec::decode::<ArchivedHello>(Kind::Hello, buf.filled()).expect("validates");
        assert_eq!(rkyv::deserialize::<Hello, rkyv::rancor::Error>(a).expect("deserializes"), hello);
    }

    let mut out = Vec::new();
    encode(Kind::HelloReply, &fixture_hello_reply(), &mut out).expect("encode");
    check("hello_reply_v5.bin", &out);
    let buf = body_of("hello_reply_v5.bin");
    let a = wire::codec::decode::<ArchivedHelloReply>(Kind::HelloReply, buf.filled()).expect("validates");
    assert_eq!(rkyv::deserialize::<HelloReply, rkyv::rancor::Error>(a).expect("deserializes"), fixture_hello_reply());
}

fn fixture_hello(protocol: u8, password: Option<&str>) -> Hello {
    Hello {
        protocol,
        shard: Some(1),
        total_shards: Some(2),
        client: "fixture".into(),
        password: password.map(str::to_string),
    }
}

fn fixture_hello_reply() -> HelloReply {
    let replica =
        |id: u32, node: &str, addr: &str| ReplicaInfo { id, node: node.into(), addr: addr.into(), port: 7001 };
    HelloReply {
        protocol: 5,
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
                replicas: Vec::new(),
                leader: 0,
            },
            ShardInfo {
                id: 1,
                node: "node0".into(),
                addr: "10.10.1.1".into(),
                port: 7001,
                cpu: 2,
                slots: vec![SlotRange { start: 8192, end: 16383 }],
                replicas: vec![
                    replica(1, "node0", "10.10.1.1"),
                    replica(2, "node1", "10.10.1.2"),
                    replica(3, "node2", "10.10.1.3"),
                ],
                leader: 2,
            },
        ],
    }
}

/// A follower's answer: NotLeader naming the leader's member id, or 0.
#[test]
fn response_with_not_leader_is_pinned() {
    let mut out = Vec::new();
    let mut enc = ResponseEncoder::new();
    enc.begin(&mut out, 9, 2);
    enc.not_leader(2);
    enc.not_leader(0);
    enc.finish(&mut out);
    check("response_not_leader_v5.bin", &out);
    let buf = body_of("response_not_leader_v5.bin");
    let a = wire::codec::decode_response(buf.filled()).expect("validates");
    let back = rkyv::deserialize::<Response, rkyv::rancor::Error>(a).expect("deserializes");
    assert_eq!(back, Response { batch_id: 9, results: vec![OpResult::NotLeader(2), OpResult::NotLeader(0)] });
    // Tag 4, then the member id as a little-endian u32 at byte 4.
    let body = buf.filled();
    assert_eq!((body[0], &body[4..8]), (4, &2u32.to_le_bytes()[..]));
    assert_eq!((body[RESPONSE_ENTRY_LEN], &body[RESPONSE_ENTRY_LEN + 4..RESPONSE_ENTRY_LEN + 8]), (4, &[0u8; 4][..]));
}

/// Version 4 frames: their headers are refused by name; every body but
/// the hello reply's (whose shard map version 5 grew) still decodes to the
/// values it carried.
#[test]
fn version_4_frames_are_refused_but_their_bodies_other_than_the_hello_reply_still_read() {
    let v4 = [
        "request_v4.bin",
        "response_v4.bin",
        "response_not_durable_v4.bin",
        "hello_v4.bin",
        "hello_nopass_v4.bin",
        "hello_reply_v4.bin",
        "error_v4.bin",
        "stats_reply_v4.bin",
    ];
    for name in v4 {
        let bytes = std::fs::read(fixture(name)).expect("version 4 fixture kept");
        let head: &[u8; HEADER_LEN] = bytes[..HEADER_LEN].try_into().expect("header");
        assert_eq!(parse_header(head, &Limits::default()), Err(FrameError::UnsupportedVersion { found: 4 }), "{name}");
    }
    for name in ["request", "response", "response_not_durable", "error", "stats_reply"] {
        let (old, new) = (body_of(&format!("{name}_v4.bin")), body_of(&format!("{name}_v5.bin")));
        assert_eq!(old.filled(), new.filled(), "the {name} body kept its bytes");
    }
    for (name, password) in [("hello_v4.bin", Some("s3cret")), ("hello_nopass_v4.bin", None)] {
        let buf = body_of(name);
        let a = wire::codec::decode::<ArchivedHello>(Kind::Hello, buf.filled()).expect("v4 hello body");
        let back = rkyv::deserialize::<Hello, rkyv::rancor::Error>(a).expect("deserializes");
        assert_eq!(back, fixture_hello(4, password), "{name}");
    }
    // The hello reply is why the version changed.
    let buf = body_of("hello_reply_v4.bin");
    assert!(
        wire::codec::decode::<ArchivedHelloReply>(Kind::HelloReply, buf.filled()).is_err(),
        "a version 4 hello reply body must not validate as a version 5 one"
    );
}

#[test]
fn error_frame_is_pinned() {
    let mut out = Vec::new();
    let body = ErrorBody { code: ErrorCode::AuthFailed, message: "wrong password".into() };
    encode(Kind::Error, &body, &mut out).expect("encode");
    check("error_v5.bin", &out);

    let buf = body_of("error_v5.bin");
    let a = wire::codec::decode::<ArchivedErrorBody>(Kind::Error, buf.filled()).expect("validates");
    assert_eq!(rkyv::deserialize::<ErrorBody, rkyv::rancor::Error>(a).expect("deserializes"), body);
}

#[test]
fn stats_reply_frame_is_pinned() {
    let reply = fixture_stats_reply();
    let mut out = Vec::new();
    encode(Kind::StatsReply, &reply, &mut out).expect("encode");
    check("stats_reply_v5.bin", &out);

    // And today's decoder reads the pinned bytes back to the same values.
    let pinned = std::fs::read(fixture("stats_reply_v5.bin")).expect("fixture");
    let mut buf = RecvBuf::new(64, 1 << 20);
    buf.extend_from_slice(&pinned);
    let Ok(Next::Frame(frame)) = next_frame(buf.filled(), &Limits::default()) else { panic!("pinned frame") };
    let a = wire::codec::decode::<ArchivedStatsReply>(Kind::StatsReply, frame.body).expect("validates");
    let back = rkyv::deserialize::<StatsReply, rkyv::rancor::Error>(a).expect("deserializes");
    assert_eq!(back, reply);
}

fn fixture_stats_reply() -> StatsReply {
    // Distinct values in every counter: a field added, dropped or moved
    // changes the bytes.
    let mut counters = ShardCounters::default();
    let fields = [
        &mut counters.ops,
        &mut counters.gets,
        &mut counters.puts,
        &mut counters.deletes,
        &mut counters.misses,
        &mut counters.wrong_shard,
        &mut counters.bytes_in,
        &mut counters.bytes_out,
        &mut counters.connections_open,
        &mut counters.connections_total,
        &mut counters.protocol_errors,
        &mut counters.keys,
        &mut counters.store_bytes,
        &mut counters.memory_limit,
        &mut counters.out_of_memory,
        &mut counters.connections_refused,
        &mut counters.connections_evicted,
        &mut counters.handshake_timeouts,
        &mut counters.frame_timeouts,
        &mut counters.idle_timeouts,
        &mut counters.write_timeouts,
        &mut counters.expired_keys,
    ];
    for (i, f) in fields.into_iter().enumerate() {
        *f = 0x0100 + i as u64;
    }
    StatsReply { shard: 1, node: "node0".into(), cpu: 3, uptime_ms: 123_456, counters }
}

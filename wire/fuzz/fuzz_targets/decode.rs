//! Fuzz target: a byte stream, as a server or client receives it, split
//! into frames and every body validated and read. Nothing may panic, and
//! anything that validates must be fully readable.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::buf::RecvBuf;
use wire::codec::{check_request_limits, decode, decode_response};
use wire::frame::{Kind, Next, next_frame};
use wire::msg::{ArchivedErrorBody, ArchivedHello, ArchivedHelloReply, ArchivedOpResult, ArchivedRequest, ArchivedStatsReply};
use wire::Limits;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_frame_bytes: 1 << 20, ..Limits::default() };
    // The first byte picks how the stream is cut into reads.
    let (chunk, data) = match data.split_first() {
        Some((c, rest)) => ((*c as usize % 64) + 1, rest),
        None => return,
    };
    let mut buf = RecvBuf::new(64, 1 << 20);
    let mut touched = 0usize;
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let frame = match next_frame(buf.filled(), &limits) {
                Ok(Next::Frame(f)) => f,
                Ok(Next::NeedMore { .. }) => break,
                Err(_) => return,
            };
            let len = frame.len();
            touched += read(frame.header.kind, frame.body, &limits);
            buf.consume(len);
        }
    }
    std::hint::black_box(touched);
});

fn read(kind: Kind, body: &[u8], limits: &Limits) -> usize {
    match kind {
        Kind::Request => match decode::<ArchivedRequest>(kind, body) {
            Ok(req) => {
                let _ = check_request_limits(req, limits);
                req.ops.iter().map(|op| op.key().iter().map(|&b| b as usize).sum::<usize>()).sum()
            }
            Err(_) => 0,
        },
        Kind::Response => match decode_response(body) {
            Ok(resp) => resp
                .results
                .iter()
                .map(|r| match r {
                    ArchivedOpResult::Value(v) => v.iter().map(|&b| b as usize).sum(),
                    ArchivedOpResult::Error(e) => e.to_native() as usize,
                    _ => 1,
                })
                .sum(),
            Err(_) => 0,
        },
        Kind::Hello => decode::<ArchivedHello>(kind, body).map_or(0, |h| h.client.len()),
        Kind::HelloReply => decode::<ArchivedHelloReply>(kind, body).map_or(0, |h| {
            wire::ShardMap::new(rkyv::deserialize::<wire::msg::HelloReply, rkyv::rancor::Error>(h).map_or(Vec::new(), |h| h.map))
                .map_or(0, |m| m.len())
        }),
        Kind::StatsReply => decode::<ArchivedStatsReply>(kind, body).map_or(0, |s| s.node.len()),
        Kind::Error => decode::<ArchivedErrorBody>(kind, body).map_or(0, |e| e.message.len()),
        Kind::StatsRequest => body.len(),
    }
}

//! Fuzz target: raw archive bytes (no frame header) validated as each body
//! type, so the fuzzer spends its time inside rkyv's validator and the
//! limit checks rather than on the header.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::buf::RecvBuf;
use wire::codec::{decode, decode_request, decode_response};
use wire::frame::Kind;
use wire::msg::{ArchivedErrorBody, ArchivedHello, ArchivedHelloReply};
use wire::Limits;

fuzz_target!(|data: &[u8]| {
    let Some((which, body)) = data.split_first() else { return };
    // Copy into an aligned buffer, as a receive buffer would hold it.
    let mut buf = RecvBuf::new(body.len().max(16), body.len().max(16));
    buf.extend_from_slice(body);
    let body = buf.filled();
    let n = match which % 5 {
        0 => decode_request(body, &Limits::default()).map_or(0, |r| r.ops.iter().map(|o| o.key().len()).sum()),
        1 => decode_response(body).map_or(0, |r| r.results.len()),
        2 => decode::<ArchivedHello>(Kind::Hello, body).map_or(0, |h| h.client.len()),
        3 => decode::<ArchivedHelloReply>(Kind::HelloReply, body).map_or(0, |h| h.map.len()),
        _ => decode::<ArchivedErrorBody>(Kind::Error, body).map_or(0, |e| e.message.len()),
    };
    std::hint::black_box(n);
});

//! Per-operation costs of the wire layer, in ns/op (`cargo bench -p percore-wire`).
//!
//! Not a test: it prints figures. Each case runs for about half a second
//! after a warm-up and reports the best of three rounds.

use std::hint::black_box;
use std::time::Duration;

use wire::Limits;
use wire::buf::RecvBuf;
use wire::codec::{RequestEncoder, ResponseEncoder, decode_request, decode_response};
use wire::frame::{Next, next_frame};
use wire::slot::slot_of;

/// How long each measured round runs.
const ROUND: Duration = Duration::from_millis(500);

fn main() {
    let keys: Vec<Vec<u8>> = (0..1024u32).map(|i| (i * 977 % 1_000_000).to_string().into_bytes()).collect();
    let value = [7u8; 128];

    testkit::measure("slot_of(6-byte decimal key)", 1024, ROUND, || {
        let mut acc = 0u32;
        for k in &keys {
            acc = acc.wrapping_add(slot_of(black_box(k)) as u32);
        }
        black_box(acc);
    });

    let mut out = Vec::with_capacity(1 << 20);
    let mut enc = RequestEncoder::new();
    testkit::measure("encode 1024-op YCSB-B request (95% GET)", 1024, ROUND, || {
        out.clear();
        enc.begin(&mut out, 1);
        for (i, k) in keys.iter().enumerate() {
            if i % 20 == 0 {
                enc.put(&mut out, k, &value);
            } else {
                enc.get(&mut out, k);
            }
        }
        enc.finish(&mut out);
        black_box(&out);
    });

    let mut buf = RecvBuf::new(1 << 20, 1 << 20);
    buf.extend_from_slice(&out);
    let limits = Limits::default();
    let Ok(Next::Frame(frame)) = next_frame(buf.filled(), &limits) else { panic!("frame") };
    let body = frame.body;
    testkit::measure("validate 1024-op request (bytecheck + limits)", 1024, ROUND, || {
        let req = decode_request(black_box(body), &limits).expect("valid");
        black_box(req.ops.len());
    });

    let mut rout = Vec::with_capacity(1 << 20);
    let mut renc = ResponseEncoder::new();
    testkit::measure("encode 1024-result response (128 B values)", 1024, ROUND, || {
        rout.clear();
        renc.begin(&mut rout, 1, 1024);
        for _ in 0..1024 {
            renc.value(&mut rout, &value);
        }
        renc.finish(&mut rout);
        black_box(&rout);
    });

    let mut rbuf = RecvBuf::new(1 << 20, 1 << 20);
    rbuf.extend_from_slice(&rout);
    let Ok(Next::Frame(rframe)) = next_frame(rbuf.filled(), &limits) else { panic!("frame") };
    let rbody = rframe.body;
    testkit::measure("validate 1024-result response", 1024, ROUND, || {
        let resp = decode_response(black_box(rbody)).expect("valid");
        black_box(resp.results.len());
    });
}

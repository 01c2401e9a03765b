//! Property tests: any batch survives encode → frame → validate → read, and
//! the single-pass encoders write exactly the bytes rkyv's serializer would.

use proptest::prelude::*;
use rkyv::rancor;
use wire::Limits;
use wire::buf::RecvBuf;
use wire::codec::{RequestEncoder, ResponseEncoder, decode_request, decode_response};
use wire::frame::{HEADER_LEN, Kind, Next, next_frame};
use wire::msg::{Op, OpError, OpResult, Request, Response};

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        bytes(40).prop_map(|key| Op::Get { key }),
        (bytes(40), bytes(300)).prop_map(|(key, value)| Op::Put { key, value }),
        bytes(40).prop_map(|key| Op::Delete { key }),
    ]
}

fn result() -> impl Strategy<Value = OpResult> {
    prop_oneof![
        bytes(300).prop_map(OpResult::Value),
        Just(OpResult::NotFound),
        Just(OpResult::Done),
        Just(OpResult::Error(OpError::WrongShard)),
        Just(OpResult::Error(OpError::TooLarge)),
        Just(OpResult::Error(OpError::OutOfMemory)),
        Just(OpResult::Error(OpError::NotDurable)),
        (0u32..8).prop_map(OpResult::NotLeader),
    ]
}

fn encode_request(req: &Request, out: &mut Vec<u8>) -> usize {
    let mut enc = RequestEncoder::new();
    enc.begin(out, req.batch_id);
    for op in &req.ops {
        match op {
            Op::Get { key } => enc.get(out, key),
            Op::Put { key, value } => enc.put(out, key, value),
            Op::Delete { key } => enc.delete(out, key),
        }
    }
    let predicted = enc.frame_len();
    let n = enc.finish(out);
    assert_eq!(n, predicted, "frame_len() predicts the finished length");
    n
}

fn encode_response(resp: &Response, out: &mut Vec<u8>) -> usize {
    let mut enc = ResponseEncoder::new();
    enc.begin(out, resp.batch_id, resp.results.len());
    for r in &resp.results {
        match r {
            OpResult::Value(v) => enc.value(out, v),
            OpResult::NotFound => enc.not_found(),
            OpResult::Done => enc.done(),
            OpResult::Error(e) => enc.error(*e),
            OpResult::NotLeader(l) => enc.not_leader(*l),
        }
    }
    enc.finish(out)
}

fn body(frame: &[u8]) -> &[u8] {
    let len = u32::from_le_bytes([frame[8], frame[9], frame[10], frame[11]]) as usize;
    &frame[HEADER_LEN..HEADER_LEN + len]
}

proptest! {
    #[test]
    fn requests_round_trip(batch_id in any::<u64>(), ops in prop::collection::vec(op(), 0..64)) {
        let req = Request { batch_id, ops };
        let mut out = Vec::new();
        let n = encode_request(&req, &mut out);
        prop_assert_eq!(n % 16, 0);
        let reference = rkyv::to_bytes::<rancor::Error>(&req).expect("rkyv serializes");
        prop_assert_eq!(body(&out), reference.as_slice());

        let mut buf = RecvBuf::new(1024, 1 << 24);
        buf.extend_from_slice(&out);
        let Ok(Next::Frame(frame)) = next_frame(buf.filled(), &Limits::default()) else {
            return Err(TestCaseError::fail("no whole frame"));
        };
        prop_assert_eq!(frame.header.kind, Kind::Request);
        prop_assert_eq!(frame.len(), n);
        let archived = decode_request(frame.body, &Limits::default()).expect("valid");
        let back: Request = rkyv::deserialize::<Request, rancor::Error>(archived).expect("deserializes");
        prop_assert_eq!(back, req);
    }

    #[test]
    fn responses_round_trip(batch_id in any::<u64>(), results in prop::collection::vec(result(), 0..64)) {
        let resp = Response { batch_id, results };
        let mut out = vec![0u8; 32]; // a frame after another frame
        let n = encode_response(&resp, &mut out);
        let reference = rkyv::to_bytes::<rancor::Error>(&resp).expect("rkyv serializes");
        prop_assert_eq!(body(&out[32..]), reference.as_slice());

        let mut buf = RecvBuf::new(64, 1 << 24);
        buf.extend_from_slice(&out[32..]);
        let Ok(Next::Frame(frame)) = next_frame(buf.filled(), &Limits::default()) else {
            return Err(TestCaseError::fail("no whole frame"));
        };
        prop_assert_eq!(frame.len(), n);
        let archived = decode_response(frame.body).expect("valid");
        let back: Response = rkyv::deserialize::<Response, rancor::Error>(archived).expect("deserializes");
        prop_assert_eq!(back, resp);
    }

    #[test]
    fn several_frames_in_one_stream_split_cleanly(
        reqs in prop::collection::vec((any::<u64>(), prop::collection::vec(op(), 0..8)), 1..8),
        cut in 0usize..4096,
    ) {
        let reqs: Vec<Request> = reqs.into_iter().map(|(batch_id, ops)| Request { batch_id, ops }).collect();
        let mut stream = Vec::new();
        for r in &reqs {
            encode_request(r, &mut stream);
        }
        // Deliver the stream in two pieces, as a socket might.
        let cut = cut.min(stream.len());
        let mut buf = RecvBuf::new(64, 1 << 24);
        let mut got = Vec::new();
        for piece in [&stream[..cut], &stream[cut..]] {
            buf.extend_from_slice(piece);
            while let Ok(Next::Frame(f)) = next_frame(buf.filled(), &Limits::default()) {
                let a = decode_request(f.body, &Limits::default()).expect("valid");
                got.push(rkyv::deserialize::<Request, rancor::Error>(a).expect("deserializes"));
                let len = f.len();
                buf.consume(len);
            }
        }
        prop_assert_eq!(got, reqs);
    }
}

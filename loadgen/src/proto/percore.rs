//! percore's own protocol for the load generator: one rkyv frame per batch,
//! written with [`wire::codec::RequestEncoder`], replies validated with
//! [`wire::codec::decode_response`] and read in place.

use super::{Protocol, RefusedBy, Reply};
use std::collections::VecDeque;
use wire::Limits;
use wire::client::server_error;
use wire::codec::{RequestEncoder, decode_response};
use wire::frame::{Kind, Next, next_frame};
use wire::msg::{ArchivedOpResult, OpError};

/// The percore protocol on one connection.
pub struct Percore {
    enc: RequestEncoder,
    /// Limits for frames received (the server's own limits, with room for its replies).
    limits: Limits,
    /// The batch id the next response must carry.
    next_reply: u64,
    /// Operations of each batch sent and not yet answered, oldest first:
    /// a response must carry exactly that many results.
    in_flight: VecDeque<usize>,
    addr: String,
}

impl Percore {
    /// A protocol state for a connection to `addr` whose server announced `limits`.
    pub fn new(addr: &str, limits: Limits) -> Percore {
        Percore {
            enc: RequestEncoder::new(),
            limits,
            next_reply: 1,
            in_flight: VecDeque::new(),
            addr: addr.to_string(),
        }
    }
}

impl Protocol for Percore {
    #[inline]
    fn begin(&mut self, out: &mut Vec<u8>, batch_id: u64) {
        self.enc.begin(out, batch_id);
    }

    #[inline]
    fn get(&mut self, out: &mut Vec<u8>, key: &[u8]) {
        self.enc.get(out, key);
    }

    #[inline]
    fn put(&mut self, out: &mut Vec<u8>, key: &[u8], value_len: usize, fill: impl FnOnce(&mut [u8])) {
        self.enc.put_with(out, key, value_len, fill);
    }

    #[inline]
    fn finish(&mut self, out: &mut Vec<u8>) {
        self.in_flight.push_back(self.enc.len());
        self.enc.finish(out);
    }

    #[inline]
    fn open_bytes(&self) -> usize {
        self.enc.frame_len()
    }

    fn decode(&mut self, buf: &[u8], on_reply: &mut impl FnMut(Reply<'_>)) -> Result<usize, String> {
        let mut used = 0;
        loop {
            let frame = match next_frame(&buf[used..], &self.limits).map_err(|e| e.to_string())? {
                Next::Frame(f) => f,
                Next::NeedMore { .. } => return Ok(used),
            };
            match frame.header.kind {
                Kind::Response => {}
                Kind::Error => return Err(server_error(&self.addr, frame.body).to_string()),
                other => return Err(format!("unexpected {other} frame")),
            }
            let resp = decode_response(frame.body).map_err(|e| e.to_string())?;
            let id = resp.batch_id.to_native();
            if id != self.next_reply {
                return Err(format!("response to batch {id} where batch {} was due", self.next_reply));
            }
            match self.in_flight.pop_front() {
                Some(n) if n == resp.results.len() => {}
                Some(n) => {
                    return Err(format!(
                        "batch {id} of {n} operations was answered with {} results",
                        resp.results.len()
                    ));
                }
                None => return Err(format!("a response to batch {id}, which was never sent")),
            }
            self.next_reply += 1;
            for r in resp.results.iter() {
                on_reply(match r {
                    ArchivedOpResult::Value(v) => Reply::Value(v.as_slice()),
                    ArchivedOpResult::NotFound => Reply::NotFound,
                    ArchivedOpResult::Done => Reply::Done,
                    ArchivedOpResult::Error(e) => Reply::Refused(match e.to_native() {
                        OpError::WrongShard => RefusedBy::WrongShard,
                        OpError::TooLarge => RefusedBy::TooLarge,
                        OpError::OutOfMemory => RefusedBy::OutOfMemory,
                        OpError::NotDurable => RefusedBy::NotDurable,
                    }),
                });
            }
            used += frame.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::codec::ResponseEncoder;

    /// A response to `batch_id` with `results` NotFound results.
    fn response(batch_id: u64, results: usize) -> Vec<u8> {
        let (mut out, mut enc) = (Vec::new(), ResponseEncoder::new());
        enc.begin(&mut out, batch_id, results);
        for _ in 0..results {
            enc.not_found();
        }
        enc.finish(&mut out);
        out
    }

    #[test]
    fn each_response_must_answer_every_operation_of_its_batch() {
        let mut p = Percore::new("test:1", Limits::default());
        let mut sent = Vec::new();
        for id in 1..=2 {
            p.begin(&mut sent, id);
            p.get(&mut sent, b"a");
            p.get(&mut sent, b"b");
            p.finish(&mut sent);
        }
        let mut replies = 0;
        let whole = response(1, 2);
        assert_eq!(
            p.decode(&whole, &mut |r| {
                assert_eq!(r, Reply::NotFound);
                replies += 1
            }),
            Ok(whole.len())
        );
        assert_eq!(replies, 2);
        let short = response(2, 1);
        let e = p.decode(&short, &mut |_| {}).expect_err("one result for two operations");
        assert_eq!(e, "batch 2 of 2 operations was answered with 1 results");
        let mut q = Percore::new("test:1", Limits::default());
        let e = q.decode(&response(1, 0), &mut |_| {}).expect_err("nothing was sent");
        assert_eq!(e, "a response to batch 1, which was never sent");
    }

    #[test]
    fn each_operation_error_is_its_own_refusal() {
        let codes = [
            (OpError::WrongShard, RefusedBy::WrongShard),
            (OpError::TooLarge, RefusedBy::TooLarge),
            (OpError::OutOfMemory, RefusedBy::OutOfMemory),
            (OpError::NotDurable, RefusedBy::NotDurable),
        ];
        let mut p = Percore::new("test:1", Limits::default());
        let mut sent = Vec::new();
        p.begin(&mut sent, 1);
        for _ in codes {
            p.put(&mut sent, b"k", 1, |v| v.fill(b'v'));
        }
        p.finish(&mut sent);
        let (mut out, mut enc) = (Vec::new(), ResponseEncoder::new());
        enc.begin(&mut out, 1, codes.len());
        for (code, _) in codes {
            enc.error(code);
        }
        enc.finish(&mut out);
        let mut got = Vec::new();
        let consumed = p.decode(&out, &mut |r| {
            got.push(match r {
                Reply::Refused(by) => Some(by),
                _ => None,
            })
        });
        assert_eq!(consumed, Ok(out.len()));
        let expected: Vec<_> = codes.iter().map(|&(_, by)| Some(by)).collect();
        assert_eq!(got, expected);
    }
}

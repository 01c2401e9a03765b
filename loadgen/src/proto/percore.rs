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
    /// The batch open now.
    open: u64,
    /// Each batch sent and not yet answered, oldest first: its id and its
    /// operations (a response must carry that id and exactly that many
    /// results). Ids need not start at 1: a connection that replaces a
    /// lost one goes on with the worker's numbering.
    in_flight: VecDeque<(u64, usize)>,
    addr: String,
}

impl Percore {
    /// A protocol state for a connection to `addr` whose server announced `limits`.
    pub fn new(addr: &str, limits: Limits) -> Percore {
        Percore { enc: RequestEncoder::new(), limits, open: 0, in_flight: VecDeque::new(), addr: addr.to_string() }
    }
}

impl Protocol for Percore {
    #[inline]
    fn begin(&mut self, out: &mut Vec<u8>, batch_id: u64) {
        self.open = batch_id;
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
        self.in_flight.push_back((self.open, self.enc.len()));
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
            match self.in_flight.pop_front() {
                Some((due, _)) if due != id => {
                    return Err(format!("response to batch {id} where batch {due} was due"));
                }
                Some((_, n)) if n == resp.results.len() => {}
                Some((_, n)) => {
                    return Err(format!(
                        "batch {id} of {n} operations was answered with {} results",
                        resp.results.len()
                    ));
                }
                None => return Err(format!("a response to batch {id}, which was never sent")),
            }
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
                    // A follower: sent elsewhere, as Redis Cluster's MOVED
                    // (a leader named) or CLUSTERDOWN (none known).
                    ArchivedOpResult::NotLeader(l) if l.to_native() == 0 => Reply::Refused(RefusedBy::NoLeader),
                    ArchivedOpResult::NotLeader(_) => Reply::Refused(RefusedBy::WrongShard),
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
        // A connection that takes over a lost one goes on with its numbers.
        let mut r = Percore::new("test:1", Limits::default());
        let mut sent = Vec::new();
        r.begin(&mut sent, 536);
        r.get(&mut sent, b"a");
        r.finish(&mut sent);
        let mut s = Percore::new("test:1", Limits::default());
        let mut out = Vec::new();
        s.begin(&mut out, 536);
        s.get(&mut out, b"a");
        s.finish(&mut out);
        let e = r.decode(&response(535, 1), &mut |_| {}).expect_err("another batch");
        assert_eq!(e, "response to batch 535 where batch 536 was due");
        let right = response(536, 1);
        assert_eq!(s.decode(&right, &mut |_| {}), Ok(right.len()));
    }

    #[test]
    fn each_operation_error_is_its_own_refusal() {
        let codes = [
            (Some(OpError::WrongShard), RefusedBy::WrongShard),
            (Some(OpError::TooLarge), RefusedBy::TooLarge),
            (Some(OpError::OutOfMemory), RefusedBy::OutOfMemory),
            (Some(OpError::NotDurable), RefusedBy::NotDurable),
            // NotLeader naming member 2, then naming none.
            (None, RefusedBy::WrongShard),
            (None, RefusedBy::NoLeader),
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
        for (i, (code, _)) in codes.iter().enumerate() {
            match code {
                Some(code) => enc.error(*code),
                None if i == 4 => enc.not_leader(2),
                None => enc.not_leader(0),
            }
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

//! Executing one validated batch against a shard's store.
//!
//! The hot path: per operation one slot check in a 2 KiB bitset, one hash
//! probe, and for a GET one copy of the value from the store into the
//! reply. No allocation, no lock, no syscall. The whole batch runs without
//! an await, so it is atomic with respect to every other connection of the
//! shard.

use crate::fault::FaultState;
use crate::options::Fault;
use crate::store::Store;
use wire::cluster::SlotSet;
use wire::codec::ResponseEncoder;
use wire::msg::{ArchivedOp, ArchivedRequest, OpError, ShardCounters};
use wire::slot::slot_of;

/// What one batch did, to add to the shard's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchCounts {
    /// Operations in the batch.
    pub ops: u64,
    /// GETs.
    pub gets: u64,
    /// PUTs.
    pub puts: u64,
    /// DELETEs.
    pub deletes: u64,
    /// GETs that found nothing.
    pub misses: u64,
    /// Operations refused with WrongShard.
    pub wrong_shard: u64,
}

impl BatchCounts {
    /// Adds these counts to a shard's counters.
    pub fn add_to(&self, c: &mut ShardCounters) {
        c.ops += self.ops;
        c.gets += self.gets;
        c.puts += self.puts;
        c.deletes += self.deletes;
        c.misses += self.misses;
        c.wrong_shard += self.wrong_shard;
    }
}

/// Executes `req` on `store` and appends its response frame to `wbuf`.
///
/// Keys outside `owned` get WrongShard and are not touched; a GET whose
/// value would push the reply past `max_reply` bytes gets TooLarge.
pub fn execute(
    store: &mut Store,
    owned: &SlotSet,
    max_reply: usize,
    req: &ArchivedRequest,
    wbuf: &mut Vec<u8>,
    enc: &mut ResponseEncoder,
) -> BatchCounts {
    execute_with(store, owned, max_reply, &FaultState::new(Fault::None), req, wbuf, enc)
}

/// [`execute`] with the shard's fault switches.
#[inline]
pub(crate) fn execute_with(
    store: &mut Store,
    owned: &SlotSet,
    max_reply: usize,
    faults: &FaultState,
    req: &ArchivedRequest,
    wbuf: &mut Vec<u8>,
    enc: &mut ResponseEncoder,
) -> BatchCounts {
    let ops = req.ops.as_slice();
    let mut n = BatchCounts { ops: ops.len() as u64, ..BatchCounts::default() };
    enc.begin(wbuf, req.batch_id.to_native(), ops.len());
    let budget = ResponseEncoder::data_budget(max_reply, ops.len());
    for op in ops {
        let key = op.key();
        if !owned.contains(slot_of(key)) {
            n.wrong_shard += 1;
            enc.error(OpError::WrongShard);
            continue;
        }
        match op {
            ArchivedOp::Get { .. } => {
                n.gets += 1;
                let stale = faults.stale_value(key);
                match stale.as_deref().or_else(|| store.get(key)) {
                    Some(value) => {
                        if enc.data_len() + value.len() > budget {
                            enc.error(OpError::TooLarge);
                        } else {
                            let at = wbuf.len();
                            enc.value(wbuf, value);
                            faults.on_reply_value(&mut wbuf[at..]);
                        }
                    }
                    None => {
                        n.misses += 1;
                        enc.not_found();
                    }
                }
            }
            ArchivedOp::Put { value, .. } => {
                n.puts += 1;
                if faults.active() {
                    faults.before_put(key, store.get(key));
                }
                store.put(key, value.as_slice());
                enc.done();
            }
            ArchivedOp::Delete { .. } => {
                n.deletes += 1;
                store.delete(key);
                enc.done();
            }
        }
    }
    enc.finish(wbuf);
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::buf::RecvBuf;
    use wire::codec::{RequestEncoder, decode_request, decode_response};
    use wire::frame::{Next, next_frame};
    use wire::msg::ArchivedOpResult;
    use wire::{Limits, ShardMap};

    fn all_slots() -> SlotSet {
        let map = ShardMap::new(vec![wire::msg::ShardInfo {
            id: 0,
            node: "n".into(),
            addr: "a".into(),
            port: 1,
            cpu: 0,
            slots: vec![wire::cluster::even_slots(1, 0)],
        }])
        .expect("map");
        map.owned_slots(0)
    }

    #[test]
    fn gets_that_would_overflow_the_reply_are_too_large() {
        let mut store = Store::default();
        store.put(b"big", &[9u8; 40_000]);
        let mut out = Vec::new();
        let mut enc = RequestEncoder::new();
        enc.begin(&mut out, 5);
        for _ in 0..5 {
            enc.get(&mut out, b"big");
        }
        enc.get(&mut out, b"missing");
        enc.finish(&mut out);
        let mut buf = RecvBuf::new(out.len(), out.len());
        buf.extend_from_slice(&out);
        let Ok(Next::Frame(f)) = next_frame(buf.filled(), &Limits::default()) else { panic!("frame") };
        let req = decode_request(f.body, &Limits::default()).expect("valid");
        let max_reply = 100_000;
        let mut reply = Vec::new();
        let counts = execute(&mut store, &all_slots(), max_reply, req, &mut reply, &mut ResponseEncoder::new());
        assert_eq!(counts.gets, 6);
        assert!(reply.len() <= max_reply, "reply of {} bytes exceeds {max_reply}", reply.len());
        let mut rbuf = RecvBuf::new(reply.len(), reply.len());
        rbuf.extend_from_slice(&reply);
        let Ok(Next::Frame(rf)) = next_frame(rbuf.filled(), &Limits::default()) else { panic!("reply frame") };
        let resp = decode_response(rf.body).expect("valid reply");
        let kinds: Vec<&str> = resp
            .results
            .iter()
            .map(|r| match r {
                ArchivedOpResult::Value(v) if v.len() == 40_000 => "value",
                ArchivedOpResult::Error(e) if e.to_native() == OpError::TooLarge => "too-large",
                ArchivedOpResult::NotFound => "not-found",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["value", "value", "too-large", "too-large", "too-large", "not-found"]);
    }
}

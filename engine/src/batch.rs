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
    for (i, op) in ops.iter().enumerate() {
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
                        if enc.frame_len_with(value.len(), ops.len() - i) > max_reply {
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

//! Executing one validated batch against a shard's store.
//!
//! The hot path: per operation one slot check in a 2 KiB bitset, one hash
//! probe, and for a GET one copy of the value from the store into the
//! reply. No allocation, no lock, no syscall. The whole batch runs without
//! an await, so it is atomic with respect to every other connection of the
//! shard, and against one clock: the caller reads the time once per batch
//! and the store judges every key's expiry by it (a key that has expired
//! is not found; a PUT, like Redis SET, leaves the key with no expiry).

use crate::fault::FaultState;
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
    /// PUTs refused with OutOfMemory.
    pub out_of_memory: u64,
    /// PUTs and DELETEs refused with NotDurable (the log's disk is full).
    pub not_durable: u64,
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
        c.out_of_memory += self.out_of_memory;
    }
}

/// Operations looked up together (see [`execute`]).
const GROUP: usize = 16;

/// A group of operations routed, its GETs' keys hashed and the table lines
/// their lookups will read prefetched (phase 1 of [`execute`]).
struct Routed {
    /// The shard owns the key.
    mine: [bool; GROUP],
    /// A GET the shard owns.
    get: [bool; GROUP],
    /// Table hashes of the GETs' keys.
    hashes: [u64; GROUP],
}

/// One operation as the executor runs it, whichever protocol carried it
/// (a percore frame's archived operation, or a pipelined RESP `GET`/`SET`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op<'a> {
    /// Read a key.
    Get(&'a [u8]),
    /// Write a key (as Redis SET: the key ends with no expiry).
    Put(&'a [u8], &'a [u8]),
    /// Remove a key.
    Delete(&'a [u8]),
}

impl<'a> Op<'a> {
    /// The operation's key.
    #[inline(always)]
    pub fn key(&self) -> &'a [u8] {
        match *self {
            Op::Get(k) | Op::Put(k, _) | Op::Delete(k) => k,
        }
    }
}

/// Where the executor's per-operation results go: a protocol's reply
/// encoder. Results arrive in operation order, one per operation.
pub trait Results {
    /// Whether a GET's value of `len` bytes still fits in the reply (a
    /// value that does not is answered [`OpError::TooLarge`]).
    fn fits(&self, len: usize) -> bool;
    /// A GET found `value` (`faults` may alter the reply, in tests).
    fn value(&mut self, value: &[u8], faults: &FaultState);
    /// A GET found nothing.
    fn not_found(&mut self);
    /// A PUT or DELETE was done.
    fn done(&mut self);
    /// Operation `i` of the batch was refused.
    fn error(&mut self, i: usize, e: OpError);
    /// Whether the reply is full: the executor stops before the next
    /// operation and reports how many it ran (`BatchCounts::ops`).
    fn full(&self) -> bool {
        false
    }
}

#[inline(always)]
fn route<'a, T>(store: &Store, owned: &SlotSet, group: &'a [T], view: &impl Fn(&'a T) -> Op<'a>) -> Routed {
    let mut r = Routed { mine: [false; GROUP], get: [false; GROUP], hashes: [0; GROUP] };
    for (j, op) in group.iter().enumerate() {
        let op = view(op);
        let key = op.key();
        r.mine[j] = owned.contains(slot_of(key));
        r.get[j] = r.mine[j] && matches!(op, Op::Get(_));
        if r.get[j] {
            r.hashes[j] = store.hash(key);
            store.prefetch_lookup(r.hashes[j]);
        }
    }
    r
}

/// A percore frame's operation, as the executor runs it.
#[inline(always)]
fn archived(op: &ArchivedOp) -> Op<'_> {
    match op {
        ArchivedOp::Get { key } => Op::Get(key.as_slice()),
        ArchivedOp::Put { key, value } => Op::Put(key.as_slice(), value.as_slice()),
        ArchivedOp::Delete { key } => Op::Delete(key.as_slice()),
    }
}

/// A percore response frame as the executor's [`Results`].
struct Frame<'w> {
    wbuf: &'w mut Vec<u8>,
    enc: &'w mut ResponseEncoder,
    budget: usize,
}

impl Results for Frame<'_> {
    #[inline(always)]
    fn fits(&self, len: usize) -> bool {
        self.enc.data_len() + len <= self.budget
    }
    #[inline(always)]
    fn value(&mut self, value: &[u8], faults: &FaultState) {
        let at = self.wbuf.len();
        self.enc.value(self.wbuf, value);
        faults.on_reply_value(&mut self.wbuf[at..]);
    }
    #[inline(always)]
    fn not_found(&mut self) {
        self.enc.not_found();
    }
    #[inline(always)]
    fn done(&mut self) {
        self.enc.done();
    }
    #[inline(always)]
    fn error(&mut self, _: usize, e: OpError) {
        self.enc.error(e);
    }
}

/// Executes `req` on `store` at time `now_ms` (unix ms, the clock the
/// store judges expiry by: [`Store::set_now`]) and appends its response
/// frame to `wbuf`.
///
/// Keys outside `owned` get WrongShard and are not touched; a GET whose
/// value would push the reply past `max_reply` bytes gets TooLarge; a PUT
/// the store has no room for gets OutOfMemory and changes nothing.
/// `faults` are the shard's test-only fault switches
/// (`FaultState::new(Fault::None)` outside tests).
///
/// Operations run in groups of `GROUP` (16), in three phases that let the
/// cache misses of many lookups overlap instead of queueing one behind
/// another:
///
/// 1. every operation of the group is routed, each GET's key hashed and the
///    table lines its lookup will read prefetched;
/// 2. each GET's candidate record is found — through the table's control
///    bytes and bucket only — and its first lines prefetched;
/// 3. the group executes in order; a GET checks that its candidate holds
///    its key: a tag collision, or a write earlier in the group that freed
///    a record (the candidate's memory may now hold anything, or be gone:
///    [`Store::get_at`] refuses a candidate of an earlier epoch), sends it
///    to a full lookup.
///
/// Phase 1 of the next group runs between phases 2 and 3 of this one, so
/// its table lines arrive while this group's records do and it executes.
/// Results are exactly those of executing one operation at a time.
#[inline]
#[allow(clippy::too_many_arguments)] // the batch's context, each one borrowed from a different owner
pub fn execute(
    store: &mut Store,
    now_ms: u64,
    owned: &SlotSet,
    max_reply: usize,
    faults: &FaultState,
    req: &ArchivedRequest,
    wbuf: &mut Vec<u8>,
    enc: &mut ResponseEncoder,
) -> BatchCounts {
    store.set_now(now_ms);
    let ops = req.ops.as_slice();
    enc.begin(wbuf, req.batch_id.to_native(), ops.len());
    let budget = ResponseEncoder::data_budget(max_reply, ops.len());
    let n = run(store, owned, faults, ops, archived, &mut Frame { wbuf: &mut *wbuf, enc: &mut *enc, budget });
    enc.finish(wbuf);
    n
}

/// Runs `ops` (each seen through `view`) on `store` in prefetching groups,
/// handing each result to `results` in order: the executor that every
/// protocol shares (see [`execute`] for the phases). The store's clock
/// must already be set for this batch. Stops early when `results` is
/// full; `BatchCounts::ops` says how many operations ran.
#[inline]
pub fn run<'a, T>(
    store: &mut Store,
    owned: &SlotSet,
    faults: &FaultState,
    ops: &'a [T],
    view: impl Fn(&'a T) -> Op<'a>,
    results: &mut impl Results,
) -> BatchCounts {
    let mut n = BatchCounts::default();
    // Read once: nothing in a batch changes it.
    let writes_refused = store.writes_refused();
    let mut groups = ops.chunks(GROUP).enumerate();
    let mut next = groups.next().map(|(g, ops)| (g, ops, route(store, owned, ops, &view)));
    while let Some((g, group, Routed { mine, get, hashes })) = next.take() {
        // Phase 2: find (and prefetch) the GETs' candidate records.
        let mut candidates = [None; GROUP];
        let epoch = store.epoch();
        for j in 0..group.len() {
            if get[j] {
                candidates[j] = store.candidate(hashes[j]);
            }
        }
        // Phase 1 of the next group (a write below may move the table; the
        // prefetches are hints, the lookups come after).
        next = groups.next().map(|(g, ops)| (g, ops, route(store, owned, ops, &view)));
        // Phase 3: execute in order.
        let mut wrote = false;
        for (j, op) in group.iter().enumerate() {
            if results.full() {
                return n;
            }
            n.ops += 1;
            let op = view(op);
            let key = op.key();
            if !mine[j] {
                n.wrong_shard += 1;
                results.error(g * GROUP + j, OpError::WrongShard);
                continue;
            }
            if writes_refused && !matches!(op, Op::Get(_)) {
                n.not_durable += 1;
                results.error(g * GROUP + j, OpError::NotDurable);
                continue;
            }
            match op {
                Op::Get(_) => {
                    n.gets += 1;
                    let stale = faults.stale_value(key);
                    let found = match (stale.as_deref(), candidates[j]) {
                        (Some(v), _) => Some(v),
                        (None, Some(c)) => store.get_at(key, c, epoch).or_else(|| store.get_hashed(hashes[j], key)),
                        // No candidate means absent, unless a write in this group added it.
                        (None, None) if wrote => store.get_hashed(hashes[j], key),
                        (None, None) => None,
                    };
                    match found {
                        Some(value) => {
                            if results.fits(value.len()) {
                                results.value(value, faults);
                            } else {
                                results.error(g * GROUP + j, OpError::TooLarge);
                            }
                        }
                        None => {
                            n.misses += 1;
                            results.not_found();
                        }
                    }
                }
                Op::Put(_, value) => {
                    n.puts += 1;
                    wrote = true;
                    if faults.active() {
                        faults.before_put(key, store.get(key));
                    }
                    match store.put(key, value) {
                        Ok(_) => results.done(),
                        Err(e) if e.is_no_room() => {
                            n.out_of_memory += 1;
                            results.error(g * GROUP + j, OpError::OutOfMemory);
                        }
                        // Longer than a record can describe: the wire limits
                        // keep such PUTs out, but the answer stays typed.
                        Err(_) => results.error(g * GROUP + j, OpError::TooLarge),
                    }
                }
                Op::Delete(_) => {
                    n.deletes += 1;
                    wrote = true;
                    store.delete(key);
                    results.done();
                }
            }
        }
    }
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
            replicas: Vec::new(),
            leader: 0,
        }])
        .expect("map");
        map.owned_slots(0)
    }

    use crate::model::{self, Op, Preset, Scenario, Size};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(512)
        ))]
        /// Grouped execution gives exactly the results of one operation at a
        /// time, under tiny and default limits, with values up to the
        /// largest allowed (see `crate::model`).
        #[test]
        fn grouped_execution_matches_a_sequential_model(scenario in model::strategy::scenario()) {
            if let Err(e) = model::check_executor(&scenario) {
                prop_assert!(false, "{}", e);
            }
        }
    }

    /// The remote crash of issue 10: a GET's candidate record, found before
    /// a write in the same group freed its jumbo chunk, was read after it.
    #[test]
    fn a_read_after_a_write_that_frees_its_record_in_the_same_group() {
        let big = |fill| Op::Put { key: 0, size: Size::Any(600_000), fill };
        for second in [Op::Delete { key: 0 }, big(2), Op::Put { key: 0, size: Size::Small(3), fill: 3 }] {
            let scenario = Scenario {
                preset: Preset::Default,
                batches: vec![vec![big(1)], vec![second, Op::Get { key: 0 }], vec![Op::Get { key: 0 }]],
            };
            model::check_executor(&scenario).unwrap_or_else(|e| panic!("{second:?} then GET: {e}"));
        }
    }

    /// A GET of a key that has expired finds nothing; a PUT (a SET) leaves
    /// the key with no expiry.
    #[test]
    fn expired_keys_are_not_found_and_a_put_clears_the_expiry() {
        let small = |fill| Size::Small(fill);
        let scenario = Scenario {
            preset: Preset::Default,
            batches: vec![
                vec![
                    Op::PutExpiring { key: 0, size: small(10), fill: 1, ttl: 5 },
                    Op::PutExpiring { key: 1, size: small(20), fill: 2, ttl: 5 },
                    Op::Get { key: 0 },
                    Op::Put { key: 1, size: small(30), fill: 3 },
                ],
                vec![Op::Advance { ms: 5 }, Op::Get { key: 0 }, Op::Get { key: 1 }, Op::Expiry { key: 1 }],
            ],
        };
        model::check_executor(&scenario).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn gets_that_would_overflow_the_reply_are_too_large() {
        let mut store = Store::default();
        store.put(b"big", &[9u8; 40_000]).expect("put");
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
        let faults = FaultState::new(crate::options::Fault::None);
        let counts =
            execute(&mut store, 0, &all_slots(), max_reply, &faults, req, &mut reply, &mut ResponseEncoder::new());
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

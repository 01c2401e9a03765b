//! Model-based checking of the executor and the store, shared by their
//! proptests and their cargo-fuzz targets (`engine/fuzz/`), in the manner
//! of redb's fuzz targets: arbitrary sequences of operations run against
//! the real code and against a model, and every result must agree.
//!
//! - [`check_executor`] packs a [`Scenario`] into real request frames, runs
//!   each through the grouped, prefetching executor ([`crate::batch::execute`])
//!   over a real [`Store`], decodes the reply frame, and compares every
//!   result with a *sequential* run of the same operations on a twin store
//!   (same hasher, same limits) and with a `HashMap`. Grouping must change
//!   nothing, and no input may panic.
//! - [`check_store`] runs the same operations on the store's own API and
//!   checks each answer against a `HashMap`, the byte limit after every
//!   write, and that every refusal was for a reason.
//!
//! Inputs draw keys from a set of six, so that they collide inside one
//! group of the executor (some are owned by another shard: WrongShard);
//! values from empty to the largest allowed, so that slab records of every
//! size class and jumbo records (a chunk of their own) are written, moved,
//! freed and reused; and limits either tiny (a 5 MiB store with three
//! chunks, small frames, few operations per frame) or the defaults.

use crate::batch::execute;
use crate::fault::FaultState;
use crate::options::Fault;
use crate::store::{JUMBO_RECORD_BYTES, Store, StoreLimits};
use std::collections::HashMap;
use wire::Limits;
use wire::buf::RecvBuf;
use wire::cluster::SlotSet;
use wire::codec::{RequestEncoder, ResponseEncoder, decode_request, decode_response};
use wire::frame::{Next, next_frame};
use wire::msg::{OpError, OpResult, Response};
use wire::slot::{SLOTS, slot_of};

/// The keys operations draw from: short, so they collide in one group;
/// some owned by the shard under test, some not (see [`owned_slots`]).
/// The first four are owned, the last two are not.
pub const KEYS: [&[u8]; 6] = [b"k2", b"k3", b"k6", b"{b}y", b"k0", b"k1"];

/// The limits a scenario runs under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "model", derive(arbitrary::Arbitrary))]
pub enum Preset {
    /// A 5 MiB store of at most three chunks; 1.5 MiB frames of at most
    /// eight operations; values up to 600 KiB (past the jumbo threshold).
    Tiny,
    /// The defaults: no store limit, 4 MiB frames, 1 MiB values.
    Default,
}

/// Limits of a [`Preset`].
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Frame limits.
    pub limits: Limits,
    /// Largest reply frame.
    pub max_reply: usize,
    /// Store limits.
    pub store: StoreLimits,
}

impl Preset {
    /// The limits this preset stands for.
    pub fn config(self) -> Config {
        match self {
            Preset::Tiny => {
                let limits = Limits {
                    max_frame_bytes: 1536 << 10,
                    max_ops_per_frame: 8,
                    max_key_len: 16,
                    max_value_len: 600 << 10,
                };
                Config {
                    limits,
                    max_reply: limits.max_frame_bytes as usize,
                    store: StoreLimits { max_bytes: Some(5 << 20), max_chunks: 3 },
                }
            }
            Preset::Default => {
                let limits = Limits::default();
                Config { limits, max_reply: limits.max_frame_bytes as usize, store: StoreLimits::default() }
            }
        }
    }
}

/// A value size, resolved against the largest value allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "model", derive(arbitrary::Arbitrary))]
pub enum Size {
    /// 0–129 bytes: the exact-word size classes.
    Small(u8),
    /// Up to 64 KiB: the doubling size classes.
    Medium(u16),
    /// Within 16 bytes of the largest slab record (either side: slab or jumbo).
    NearJumbo(i8),
    /// Anywhere up to the largest value.
    Any(u32),
    /// Within 32 bytes below the largest value.
    NearMax(u8),
    /// The largest value allowed.
    Max,
}

impl Size {
    /// Bytes of a value of this size for `key`, at most `max`.
    pub fn bytes(self, key: &[u8], max: usize) -> usize {
        let n = match self {
            Size::Small(n) => n as usize % 130,
            Size::Medium(n) => n as usize,
            Size::NearJumbo(d) => {
                // A record is a header word plus key and value in words.
                let edge = JUMBO_RECORD_BYTES - 8 - key.len();
                edge.saturating_add_signed(d as isize % 17)
            }
            Size::Any(n) => n as usize % (max + 1),
            Size::NearMax(d) => max.saturating_sub(d as usize % 32),
            Size::Max => max,
        };
        n.min(max)
    }
}

/// One operation of a scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "model", derive(arbitrary::Arbitrary))]
pub enum Op {
    /// GET `KEYS[key % 6]`.
    Get {
        /// Key index.
        key: u8,
    },
    /// PUT `KEYS[key % 6]`, a value of `size` filled from `fill`.
    Put {
        /// Key index.
        key: u8,
        /// Value size.
        size: Size,
        /// Seed of the value's bytes.
        fill: u8,
    },
    /// DELETE `KEYS[key % 6]`.
    Delete {
        /// Key index.
        key: u8,
    },
}

/// Operations in batches, under a preset's limits.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "model", derive(arbitrary::Arbitrary))]
pub struct Scenario {
    /// The limits.
    pub preset: Preset,
    /// Each batch is sent as one frame, or as several when it breaks the
    /// frame limits (as a client would split it).
    pub batches: Vec<Vec<Op>>,
}

fn key_of(k: u8) -> &'static [u8] {
    KEYS[k as usize % KEYS.len()]
}

/// The value a PUT writes: `len` bytes that differ from those of any other
/// `fill` at every position (a 256-byte pattern, repeated with a copy so
/// that megabyte values cost little to make).
pub fn value_of(fill: u8, len: usize) -> Vec<u8> {
    let pattern: [u8; 256] = std::array::from_fn(|i| fill ^ (i as u8).rotate_left(3));
    let mut v = vec![0u8; len];
    for chunk in v.chunks_mut(pattern.len()) {
        chunk.copy_from_slice(&pattern[..chunk.len()]);
    }
    v
}

/// The slots of the shard under test: the lower half.
pub fn owned_slots() -> SlotSet {
    let mut set = SlotSet::empty();
    for slot in 0..(SLOTS / 2) as u16 {
        set.insert(slot);
    }
    set
}

/// Runs `scenario` through the executor and checks it (see the module docs).
pub fn check_executor(scenario: &Scenario) -> Result<(), String> {
    let cfg = scenario.preset.config();
    let store = Store::with_limits(0, cfg.store).map_err(|e| e.to_string())?;
    let twin = store.twin().map_err(|e| e.to_string())?;
    let mut run = ExecutorRun {
        cfg,
        store,
        twin,
        model: HashMap::new(),
        owned: owned_slots(),
        faults: FaultState::new(Fault::None),
        requests: RequestEncoder::new(),
        responses: ResponseEncoder::new(),
        frame: Vec::new(),
        ops: Vec::new(),
        batch_id: 0,
    };
    for batch in &scenario.batches {
        for &op in batch {
            run.add(op)?;
        }
        run.send()?;
    }
    check_contents(&run.store, &run.model, "executor's store")?;
    check_contents(&run.twin, &run.model, "sequential twin")?;
    Ok(())
}

/// The state of [`check_executor`]: the stores, the model, and the frame
/// being built.
struct ExecutorRun {
    cfg: Config,
    /// Runs the frames through the executor.
    store: Store,
    /// Runs the same operations one at a time.
    twin: Store,
    model: HashMap<&'static [u8], Vec<u8>>,
    owned: SlotSet,
    /// No fault switched on: the executor as it serves.
    faults: FaultState,
    requests: RequestEncoder,
    responses: ResponseEncoder,
    /// The request frame being built.
    frame: Vec<u8>,
    /// Its operations, with their value lengths.
    ops: Vec<(Op, usize)>,
    batch_id: u64,
}

impl ExecutorRun {
    /// Adds `op` to the frame being built, sending that first if `op` would
    /// break the frame limits (as a client splits a batch).
    fn add(&mut self, op: Op) -> Result<(), String> {
        let limits = self.cfg.limits;
        let (key, len) = match op {
            Op::Get { key } | Op::Delete { key } => (key_of(key), 0),
            Op::Put { key, size, .. } => {
                let k = key_of(key);
                (k, size.bytes(k, limits.max_value_len as usize))
            }
        };
        let data = self.requests.frame_len() + key.len() + len + wire::codec::REQUEST_ENTRY_LEN + 16;
        if self.ops.len() >= limits.max_ops_per_frame as usize || data > limits.max_frame_bytes as usize {
            self.send()?;
        }
        if self.ops.is_empty() {
            self.batch_id += 1;
            self.frame.clear();
            self.requests.begin(&mut self.frame, self.batch_id);
        }
        match op {
            Op::Get { .. } => self.requests.get(&mut self.frame, key),
            Op::Delete { .. } => self.requests.delete(&mut self.frame, key),
            Op::Put { fill, .. } => self.requests.put(&mut self.frame, key, &value_of(fill, len)),
        }
        self.ops.push((op, len));
        Ok(())
    }

    /// Executes the frame being built, if any, and compares its reply with
    /// the same operations one at a time on the twin.
    fn send(&mut self) -> Result<(), String> {
        if self.ops.is_empty() {
            return Ok(());
        }
        let (cfg, batch_id) = (self.cfg, self.batch_id);
        self.requests.finish(&mut self.frame);
        let mut buf = RecvBuf::new(self.frame.len(), self.frame.len());
        buf.extend_from_slice(&self.frame);
        let req = match next_frame(buf.filled(), &cfg.limits) {
            Ok(Next::Frame(f)) => {
                decode_request(f.body, &cfg.limits).map_err(|e| format!("batch {batch_id}: request refused: {e}"))?
            }
            other => return Err(format!("batch {batch_id}: not one whole frame: {other:?}")),
        };
        let mut reply = Vec::new();
        execute(&mut self.store, &self.owned, cfg.max_reply, &self.faults, req, &mut reply, &mut self.responses);
        if reply.len() > cfg.max_reply {
            return Err(format!("batch {batch_id}: reply of {} bytes exceeds {}", reply.len(), cfg.max_reply));
        }
        let mut rbuf = RecvBuf::new(reply.len(), reply.len());
        rbuf.extend_from_slice(&reply);
        let got = match next_frame(rbuf.filled(), &Limits { max_frame_bytes: cfg.max_reply as u32, ..cfg.limits }) {
            Ok(Next::Frame(f)) => {
                let r =
                    decode_response(f.body).map_err(|e| format!("batch {batch_id}: reply does not validate: {e}"))?;
                rkyv::deserialize::<Response, rkyv::rancor::Error>(r).map_err(|e| e.to_string())?
            }
            other => return Err(format!("batch {batch_id}: reply is not one whole frame: {other:?}")),
        };
        if got.batch_id != batch_id || got.results.len() != self.ops.len() {
            return Err(format!(
                "batch {batch_id}: reply for batch {} with {} results to {} operations",
                got.batch_id,
                got.results.len(),
                self.ops.len()
            ));
        }
        let budget = ResponseEncoder::data_budget(cfg.max_reply, self.ops.len());
        let mut data = 0usize;
        let ops = std::mem::take(&mut self.ops);
        for (i, (&(op, len), got)) in ops.iter().zip(&got.results).enumerate() {
            let expected =
                self.one_at_a_time(op, len, budget, &mut data).map_err(|e| format!("batch {batch_id} op {i}: {e}"))?;
            if *got != expected {
                return Err(format!(
                    "batch {batch_id} op {i} ({op:?}, {len} B): executor answered {}, one at a time gives {}",
                    describe(got),
                    describe(&expected)
                ));
            }
        }
        self.ops = ops;
        self.ops.clear();
        check_limit(&self.store, "executor's store")?;
        check_limit(&self.twin, "sequential twin")
    }

    /// `op` on the twin and the model; the result the executor must give.
    /// `data` counts the value bytes of the reply so far (against `budget`).
    fn one_at_a_time(&mut self, op: Op, len: usize, budget: usize, data: &mut usize) -> Result<OpResult, String> {
        let key = match op {
            Op::Get { key } | Op::Put { key, .. } | Op::Delete { key } => key_of(key),
        };
        if !self.owned.contains(slot_of(key)) {
            return Ok(OpResult::Error(OpError::WrongShard));
        }
        Ok(match op {
            Op::Get { .. } => {
                let seen = self.twin.get(key).map(<[u8]>::to_vec);
                if seen.as_ref() != self.model.get(key) {
                    return Err("the twin store disagrees with the model".into());
                }
                match seen {
                    None => OpResult::NotFound,
                    Some(v) if *data + v.len() > budget => OpResult::Error(OpError::TooLarge),
                    Some(v) => {
                        *data += v.len();
                        OpResult::Value(v)
                    }
                }
            }
            Op::Put { fill, .. } => {
                let value = value_of(fill, len);
                match self.twin.put(key, &value) {
                    Ok(_) => {
                        self.model.insert(key, value);
                        OpResult::Done
                    }
                    Err(e) if e.is_no_room() => OpResult::Error(OpError::OutOfMemory),
                    Err(e) => return Err(format!("the twin refused a valid PUT: {e}")),
                }
            }
            Op::Delete { .. } => {
                self.twin.delete(key);
                self.model.remove(key);
                OpResult::Done
            }
        })
    }
}

fn describe(r: &OpResult) -> String {
    match r {
        OpResult::Value(v) => format!("a value of {} B", v.len()),
        other => format!("{other:?}"),
    }
}

fn check_limit(store: &Store, which: &str) -> Result<(), String> {
    let m = store.memory();
    match m.limit {
        Some(limit) if m.used() > limit => Err(format!("{which} holds {} bytes, past its limit of {limit}", m.used())),
        _ => Ok(()),
    }
}

fn check_contents(store: &Store, model: &HashMap<&[u8], Vec<u8>>, which: &str) -> Result<(), String> {
    if store.len() != model.len() {
        return Err(format!("{which} holds {} keys, the model {}", store.len(), model.len()));
    }
    for (k, v) in model {
        if store.get(k) != Some(v.as_slice()) {
            return Err(format!("{which}: key {:?} does not hold the model's value", String::from_utf8_lossy(k)));
        }
    }
    Ok(())
}

/// Runs `scenario`'s operations (all batches, in order) on the store's own
/// API and checks them (see the module docs).
pub fn check_store(scenario: &Scenario) -> Result<(), String> {
    let cfg = scenario.preset.config();
    let mut store = Store::with_limits(0, cfg.store).map_err(|e| e.to_string())?;
    let mut model: HashMap<&[u8], Vec<u8>> = HashMap::new();
    for (i, &op) in scenario.batches.iter().flatten().enumerate() {
        match op {
            Op::Get { key } => {
                let k = key_of(key);
                if store.get(k) != model.get(k).map(Vec::as_slice) {
                    return Err(format!("op {i}: GET {:?} disagrees with the model", String::from_utf8_lossy(k)));
                }
            }
            Op::Delete { key } => {
                let k = key_of(key);
                let was = model.remove(k).is_some();
                if store.delete(k) != was {
                    return Err(format!("op {i}: DELETE disagrees with the model (which says present: {was})"));
                }
            }
            Op::Put { key, size, fill } => {
                let k = key_of(key);
                let value = value_of(fill, size.bytes(k, cfg.limits.max_value_len as usize));
                let before = store.memory();
                match store.put(k, &value) {
                    Ok(new) => {
                        if new == model.contains_key(k) {
                            return Err(format!("op {i}: PUT says new = {new}, the model disagrees"));
                        }
                        model.insert(k, value);
                    }
                    Err(crate::store::StoreError::OutOfMemory { need, used, limit }) => {
                        // Refused for a reason: the write needed memory the limit does not leave.
                        if Some(limit) != before.limit || used != before.used() || used + need <= limit || need == 0 {
                            return Err(format!(
                                "op {i}: PUT of {} B refused as out of memory (need {need}, used {used}, limit {limit}) \
                                 with {} of {:?} held",
                                value.len(),
                                before.used(),
                                before.limit
                            ));
                        }
                        if store.memory() != before {
                            return Err(format!("op {i}: a refused PUT changed the store's memory"));
                        }
                    }
                    Err(crate::store::StoreError::Full { chunks }) => {
                        if chunks != cfg.store.max_chunks || store.memory() != before {
                            return Err(format!("op {i}: PUT refused as full ({chunks} chunks) wrongly"));
                        }
                    }
                    Err(e) => return Err(format!("op {i}: PUT of {} B refused: {e}", value.len())),
                }
            }
        }
        check_limit(&store, "store")?;
        if store.len() != model.len() {
            return Err(format!("op {i}: store holds {} keys, the model {}", store.len(), model.len()));
        }
    }
    check_contents(&store, &model, "store")
}

/// proptest strategies for [`Scenario`] (the fuzz targets use `arbitrary`).
#[cfg(test)]
pub mod strategy {
    use super::*;
    use proptest::prelude::*;

    /// A value size, mostly small, often at the edges.
    pub fn size() -> impl Strategy<Value = Size> {
        prop_oneof![
            4 => any::<u8>().prop_map(Size::Small),
            2 => any::<u16>().prop_map(Size::Medium),
            2 => any::<i8>().prop_map(Size::NearJumbo),
            1 => any::<u32>().prop_map(Size::Any),
            1 => any::<u8>().prop_map(Size::NearMax),
            1 => Just(Size::Max),
        ]
    }

    /// An operation on one of the six keys.
    pub fn op() -> impl Strategy<Value = Op> {
        let key = 0u8..KEYS.len() as u8;
        prop_oneof![
            4 => key.clone().prop_map(|key| Op::Get { key }),
            3 => (key.clone(), size(), any::<u8>()).prop_map(|(key, size, fill)| Op::Put { key, size, fill }),
            2 => key.prop_map(|key| Op::Delete { key }),
        ]
    }

    /// Batches of operations under either preset.
    pub fn scenario() -> impl Strategy<Value = Scenario> {
        (
            prop_oneof![Just(Preset::Tiny), Just(Preset::Default)],
            prop::collection::vec(prop::collection::vec(op(), 1..40), 1..6),
        )
            .prop_map(|(preset, batches)| Scenario { preset, batches })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fall_on_both_sides_of_the_shard() {
        let owned = owned_slots();
        let mine: Vec<bool> = KEYS.iter().map(|k| owned.contains(slot_of(k))).collect();
        assert_eq!(mine, [true, true, true, true, false, false]);
    }

    #[test]
    fn sizes_reach_both_sides_of_the_jumbo_edge_and_the_max() {
        let key = KEYS[0];
        let max = Preset::Default.config().limits.max_value_len as usize;
        let words = |len: usize| 1 + (key.len() + len).div_ceil(8);
        let edge = JUMBO_RECORD_BYTES / 8;
        assert!(words(Size::NearJumbo(0).bytes(key, max)) <= edge);
        assert!(words(Size::NearJumbo(9).bytes(key, max)) > edge);
        assert_eq!(Size::Max.bytes(key, max), max);
        assert_eq!(Size::Max.bytes(key, 600 << 10), 600 << 10);
    }
}

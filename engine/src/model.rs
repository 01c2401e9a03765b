//! Model-based checking of the executor and the store, shared by their
//! proptests and their cargo-fuzz targets (`engine/fuzz/`), in the manner
//! of redb's fuzz targets: arbitrary sequences of operations run against
//! the real code and against a model, and every result must agree.
//!
//! - [`check_executor`] packs a [`Scenario`]'s GETs, PUTs and DELETEs into
//!   real request frames, runs each through the grouped, prefetching
//!   executor ([`crate::batch::execute`]) over a real [`Store`], decodes the
//!   reply frame, and compares every result with a *sequential* run of the
//!   same operations on a twin store (same hasher, same limits) and with a
//!   model (a `HashMap` of records with their expiry times). Grouping must
//!   change nothing, and no input may panic. The scenario's other
//!   operations — the store's own expiry, scan and flush calls, and moves
//!   of the clock — run between frames on both stores, which must answer
//!   alike: so a GET meets keys that expired, and a PUT must clear a TTL.
//! - [`check_store`] runs every operation on the store's own API and
//!   checks each answer against the model, and after each one the byte
//!   limit, the key, volatile-key, expiry and per-slot counts; every
//!   refusal must have a reason and change nothing; a scan must hand out
//!   every key live throughout it (with writes, deletes, expiries and table
//!   growth between its calls); at the end a sweep of the whole table
//!   must remove exactly the expired records.
//!
//! The model follows which expired records the store still holds: an
//! operation that touches one removes it (and counts an expiry), and after
//! an expiry cycle it asks the store ([`Store::holds`]) which went, then
//! checks that each had expired and that the count agrees.
//!
//! Inputs draw keys from a set of six, so that they collide inside one
//! group of the executor (some are owned by another shard: WrongShard);
//! values from empty to the largest allowed, so that slab records of every
//! size class and jumbo records (a chunk of their own) are written, moved,
//! freed and reused (with and without an expiry word); bulk writes of up to
//! 255 more keys, so that the table grows and rehashes under a scan; and
//! limits either tiny (a 5 MiB store with three
//! chunks, small frames, few operations per frame) or the defaults.

use crate::batch::execute;
use crate::fault::FaultState;
use crate::options::Fault;
use crate::store::{JUMBO_RECORD_BYTES, Store, StoreError, StoreLimits, StoreMemory};
use std::collections::{HashMap, HashSet};
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

/// One operation of a scenario. GET, PUT and DELETE travel in request
/// frames through the executor; the others are the store's own calls (the
/// RESP adapter's), made between frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "model", derive(arbitrary::Arbitrary))]
pub enum Op {
    /// GET `KEYS[key % 6]`.
    Get {
        /// Key index.
        key: u8,
    },
    /// PUT `KEYS[key % 6]`, a value of `size` filled from `fill` (a SET:
    /// the key ends with no expiry).
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
    /// [`Store::put_expiring`] expiring at [`expire_time`]`(ttl)`.
    PutExpiring {
        /// Key index.
        key: u8,
        /// Value size.
        size: Size,
        /// Seed of the value's bytes.
        fill: u8,
        /// Expiry, from now (see [`expire_time`]).
        ttl: u8,
    },
    /// [`Store::put_keep_ttl`].
    PutKeepTtl {
        /// Key index.
        key: u8,
        /// Value size.
        size: Size,
        /// Seed of the value's bytes.
        fill: u8,
    },
    /// [`Store::set_expiry`]: EXPIRE at [`expire_time`]`(ttl)`, or PERSIST
    /// (`None`).
    SetExpiry {
        /// Key index.
        key: u8,
        /// Expiry, from now; `None` clears it.
        ttl: Option<u8>,
    },
    /// [`Store::expiry`].
    Expiry {
        /// Key index.
        key: u8,
    },
    /// Moves the clock on by `ms` milliseconds.
    Advance {
        /// Milliseconds.
        ms: u8,
    },
    /// [`Store::expire_if_due`].
    ExpireIfDue {
        /// Key index.
        key: u8,
    },
    /// [`Store::expire_cycle`] with a budget of `budget % 16` buckets.
    ExpireCycle {
        /// Budget (taken modulo 16).
        budget: u8,
    },
    /// One [`Store::scan`] call of `count` keys, starting a scan if none is
    /// under way; other operations run between the calls. When the scan
    /// completes, every key live throughout must have come back.
    ScanStep {
        /// Keys asked for.
        count: u8,
    },
    /// A whole scan, nothing between its calls: exactly the live keys.
    ScanAll {
        /// Keys asked for per call.
        count: u8,
    },
    /// [`Store::clear`].
    Clear,
    /// Sets the `n` keys `x{from}`, `x{from + 1}`, … (wrapping at 256) to
    /// small values, expiring at [`expire_time`]`(ttl)` if `ttl` is given:
    /// enough keys to grow the table under a scan.
    Bulk {
        /// First key number.
        from: u8,
        /// Keys written.
        n: u8,
        /// Expiry, from now.
        ttl: Option<u8>,
    },
    /// Deletes the `n` keys `x{from}`, … (tombstones, rehashes in place).
    BulkDelete {
        /// First key number.
        from: u8,
        /// Keys deleted.
        n: u8,
    },
}

/// The clock a scenario starts at (unix ms).
pub const START_MS: u64 = 1_700_000_000_000;

/// The expiry time an operation's `ttl` stands for at time `now`: `ttl` ms
/// later (0: due at once), or the largest time for 255.
pub fn expire_time(now: u64, ttl: u8) -> u64 {
    if ttl == u8::MAX { u64::MAX } else { now + ttl as u64 }
}

/// The key of a [`Op::Bulk`] operation.
pub fn bulk_key(i: u8) -> Vec<u8> {
    format!("x{i}").into_bytes()
}

/// The keys a bulk operation touches.
fn bulk_keys(from: u8, n: u8) -> impl Iterator<Item = Vec<u8>> {
    (0..n).map(move |i| bulk_key(from.wrapping_add(i)))
}

/// The value a bulk operation writes to key number `i`.
fn bulk_value(i: u8) -> Vec<u8> {
    value_of(i, 4 + i as usize % 20)
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

/// One write's answer and the store's memory around it (a refusal must
/// have a reason and change nothing).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Write {
    result: Result<bool, StoreError>,
    before: StoreMemory,
    after: StoreMemory,
}

/// What a store answered to one operation ([`drive`]).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    /// GET.
    Value(Option<Vec<u8>>),
    /// PUT, PUT with expiry, PUT keeping the expiry, set expiry.
    Written(Write),
    /// DELETE, expire-if-due.
    Flag(bool),
    /// Expiry.
    Expiry(Option<Option<u64>>),
    /// Records removed by an expiry cycle.
    Removed(usize),
    /// One scan call: the keys, the next cursor.
    Scanned(Vec<Vec<u8>>, u64),
    /// A whole scan: the keys of each call; `None` if it never finished.
    ScannedAll(Option<Vec<Vec<Vec<u8>>>>),
    /// Each write of a bulk operation.
    Bulk(Vec<Write>),
    /// Each delete of a bulk delete.
    Flags(Vec<bool>),
    /// Advance, clear.
    Done,
}

/// Calls a whole scan may take before it counts as stuck.
const SCAN_CALLS: usize = 100_000;

fn write(store: &mut Store, f: impl FnOnce(&mut Store) -> Result<bool, StoreError>) -> Write {
    let before = store.memory();
    let result = f(store);
    Write { result, before, after: store.memory() }
}

/// Makes `op` on `store` (values at most `max_value`; a scan step goes on
/// from `cursor`) and returns what it answered.
fn drive(store: &mut Store, op: Op, max_value: usize, cursor: u64) -> Outcome {
    let now = store.now();
    let value = |key: u8, size: Size, fill: u8| value_of(fill, size.bytes(key_of(key), max_value));
    match op {
        Op::Get { key } => Outcome::Value(store.get(key_of(key)).map(<[u8]>::to_vec)),
        Op::Put { key, size, fill } => {
            let v = value(key, size, fill);
            Outcome::Written(write(store, |s| s.put(key_of(key), &v)))
        }
        Op::Delete { key } => Outcome::Flag(store.delete(key_of(key))),
        Op::PutExpiring { key, size, fill, ttl } => {
            let v = value(key, size, fill);
            Outcome::Written(write(store, |s| s.put_expiring(key_of(key), &v, Some(expire_time(now, ttl)))))
        }
        Op::PutKeepTtl { key, size, fill } => {
            let v = value(key, size, fill);
            Outcome::Written(write(store, |s| s.put_keep_ttl(key_of(key), &v)))
        }
        Op::SetExpiry { key, ttl } => {
            Outcome::Written(write(store, |s| s.set_expiry(key_of(key), ttl.map(|t| expire_time(now, t)))))
        }
        Op::Expiry { key } => Outcome::Expiry(store.expiry(key_of(key))),
        Op::Advance { ms } => {
            store.set_now(now + ms as u64);
            Outcome::Done
        }
        Op::ExpireIfDue { key } => Outcome::Flag(store.expire_if_due(key_of(key))),
        Op::ExpireCycle { budget } => Outcome::Removed(store.expire_cycle(budget as usize % 16)),
        Op::ScanStep { count } => {
            let mut keys = Vec::new();
            let next = store.scan(cursor, count as usize, |k| keys.push(k.to_vec()));
            Outcome::Scanned(keys, next)
        }
        Op::ScanAll { count } => {
            let (mut calls, mut cursor) = (Vec::new(), 0);
            for _ in 0..SCAN_CALLS {
                let mut keys = Vec::new();
                cursor = store.scan(cursor, count as usize, |k| keys.push(k.to_vec()));
                calls.push(keys);
                if cursor == 0 {
                    return Outcome::ScannedAll(Some(calls));
                }
            }
            Outcome::ScannedAll(None)
        }
        Op::Clear => {
            store.clear();
            Outcome::Done
        }
        Op::Bulk { from, n, ttl } => Outcome::Bulk(
            (0..n)
                .map(|i| {
                    let (k, v) = (bulk_key(from.wrapping_add(i)), bulk_value(from.wrapping_add(i)));
                    write(store, |s| s.put_expiring(&k, &v, ttl.map(|t| expire_time(now, t))))
                })
                .collect(),
        ),
        Op::BulkDelete { from, n } => Outcome::Flags(bulk_keys(from, n).map(|k| store.delete(&k)).collect()),
    }
}

/// A record the model says the store holds.
#[derive(Clone, Debug)]
struct Entry {
    value: Vec<u8>,
    /// Expiry time, if any.
    at: Option<u64>,
}

/// A scan under way ([`Op::ScanStep`]).
#[derive(Debug)]
struct ScanState {
    /// The cursor to go on from.
    cursor: u64,
    /// Keys handed out so far.
    returned: HashSet<Vec<u8>>,
    /// Keys live at every moment since the scan began.
    throughout: HashSet<Vec<u8>>,
}

/// The model: what the store must hold and answer.
#[derive(Debug)]
struct Model {
    /// Every record the store holds: live keys, and expired keys not yet
    /// removed (the store removes those only when told to touch them, or in
    /// an expiry cycle — which the model follows with [`Store::holds`]).
    entries: HashMap<Vec<u8>, Entry>,
    /// The clock.
    now: u64,
    /// Records removed because they had expired.
    expired: u64,
    /// The scan under way, if any.
    scan: Option<ScanState>,
    /// The limits.
    cfg: Config,
}

impl Model {
    fn new(cfg: Config) -> Model {
        Model { entries: HashMap::new(), now: START_MS, expired: 0, scan: None, cfg }
    }

    fn is_live(&self, e: &Entry) -> bool {
        e.at.is_none_or(|at| at > self.now)
    }

    fn live(&self, key: &[u8]) -> Option<&Entry> {
        self.entries.get(key).filter(|e| self.is_live(e))
    }

    fn live_keys(&self) -> HashSet<Vec<u8>> {
        self.entries.iter().filter(|(_, e)| self.is_live(e)).map(|(k, _)| k.clone()).collect()
    }

    /// Takes away `key`'s record; true if it was live. An expired one counts
    /// as an expiry.
    fn remove(&mut self, key: &[u8]) -> bool {
        match self.entries.remove(key) {
            Some(e) if self.is_live(&e) => true,
            Some(_) => {
                self.expired += 1;
                false
            }
            None => false,
        }
    }

    /// Checks a write's answer: `Ok(new)` must say whether the key was
    /// absent or expired; then the key holds `value` expiring at `at`
    /// (`None`: the write keeps the key's expiry if live). A refusal must
    /// have a reason and change nothing.
    fn check_write(&mut self, key: &[u8], value: Vec<u8>, at: Option<Option<u64>>, w: &Write) -> Result<(), String> {
        match w.result {
            Ok(new) => {
                let was_live = self.live(key).map(|e| e.at);
                if new != was_live.is_none() {
                    return Err(format!("write says new = {new}, the model says the key was live: {}", !new));
                }
                self.remove(key);
                let at = match at {
                    Some(at) => at,
                    None => was_live.flatten(),
                };
                match at {
                    Some(t) if t <= self.now => {}
                    at => {
                        self.entries.insert(key.to_vec(), Entry { value, at });
                    }
                }
                Ok(())
            }
            Err(e) => self.check_refusal(e, w),
        }
    }

    /// A refusal must have a reason, and change nothing.
    fn check_refusal(&self, e: StoreError, w: &Write) -> Result<(), String> {
        let before = w.before;
        match e {
            StoreError::OutOfMemory { need, used, limit } => {
                // Refused for a reason: the write needed memory the limit does not leave.
                if Some(limit) != before.limit || used != before.used() || used + need <= limit || need == 0 {
                    return Err(format!(
                        "refused as out of memory (need {need}, used {used}, limit {limit}) with {} of {:?} held",
                        before.used(),
                        before.limit
                    ));
                }
            }
            StoreError::Full { chunks } if chunks == self.cfg.store.max_chunks => {}
            e => return Err(format!("refused: {e}")),
        }
        if w.after != before {
            return Err("a refused write changed the store's memory".into());
        }
        Ok(())
    }

    /// Checks `outcome`, the store's answer to `op`, and moves the model on.
    fn check(&mut self, op: Op, outcome: &Outcome, store: &Store) -> Result<(), String> {
        let max_value = self.cfg.limits.max_value_len as usize;
        let value = |key: u8, size: Size, fill: u8| value_of(fill, size.bytes(key_of(key), max_value));
        let now = self.now;
        match (op, outcome) {
            (Op::Get { key }, Outcome::Value(v)) => {
                if v.as_ref() != self.live(key_of(key)).map(|e| &e.value) {
                    return Err("GET disagrees with the model".into());
                }
            }
            (Op::Put { key, size, fill }, Outcome::Written(w)) => {
                self.check_write(key_of(key), value(key, size, fill), Some(None), w)?;
            }
            (Op::PutExpiring { key, size, fill, ttl }, Outcome::Written(w)) => {
                self.check_write(key_of(key), value(key, size, fill), Some(Some(expire_time(now, ttl))), w)?;
            }
            (Op::PutKeepTtl { key, size, fill }, Outcome::Written(w)) => {
                self.check_write(key_of(key), value(key, size, fill), None, w)?;
            }
            (Op::SetExpiry { key, ttl }, Outcome::Written(w)) => {
                let k = key_of(key);
                let at = ttl.map(|t| expire_time(now, t));
                let live = self.live(k).is_some();
                match w.result {
                    Ok(found) if found == live => {
                        if !live {
                            self.remove(k);
                        } else if at.is_some_and(|t| t <= now) {
                            self.entries.remove(k);
                        } else if let Some(e) = self.entries.get_mut(k) {
                            e.at = at;
                        }
                    }
                    Ok(found) => return Err(format!("set_expiry says present = {found}, the model {live}")),
                    Err(e) if live && at.is_some() && self.entries.get(k).is_some_and(|e| e.at.is_none()) => {
                        self.check_refusal(e, w)?;
                    }
                    Err(e) => return Err(format!("set_expiry refused ({e}) a change that needs no memory")),
                }
            }
            (Op::Delete { key }, Outcome::Flag(was)) => {
                if self.remove(key_of(key)) != *was {
                    return Err(format!("DELETE says present = {was}, the model disagrees"));
                }
            }
            (Op::Expiry { key }, Outcome::Expiry(got)) => {
                if *got != self.live(key_of(key)).map(|e| e.at) {
                    return Err(format!("expiry {got:?} disagrees with the model"));
                }
            }
            (Op::Advance { ms }, Outcome::Done) => self.now += ms as u64,
            (Op::ExpireIfDue { key }, Outcome::Flag(removed)) => {
                let k = key_of(key);
                let due = self.entries.contains_key(k) && self.live(k).is_none();
                if due != *removed {
                    return Err(format!("expire_if_due says {removed}, the model says due: {due}"));
                }
                if due {
                    self.remove(k);
                }
            }
            (Op::ExpireCycle { .. }, Outcome::Removed(n)) => {
                let gone: Vec<Vec<u8>> = self.entries.keys().filter(|k| !store.holds(k)).cloned().collect();
                if gone.len() != *n {
                    return Err(format!("expire_cycle says it removed {n}, {} records are gone", gone.len()));
                }
                for k in gone {
                    if self.remove(&k) {
                        return Err(format!("expire_cycle removed the live key {:?}", String::from_utf8_lossy(&k)));
                    }
                }
            }
            (Op::ScanStep { count }, Outcome::Scanned(keys, next)) => {
                let live = self.live_keys();
                let scan = self.scan.get_or_insert_with(|| ScanState {
                    cursor: 0,
                    returned: HashSet::new(),
                    throughout: live.clone(),
                });
                if keys.len() > (count as usize).max(1) {
                    return Err(format!("a scan call for {count} keys gave {}", keys.len()));
                }
                for k in keys {
                    if !live.contains(k) {
                        return Err(format!("scan gave {:?}, which is not live", String::from_utf8_lossy(k)));
                    }
                    scan.returned.insert(k.clone());
                }
                scan.cursor = *next;
                if *next == 0 {
                    let missed: Vec<_> = scan.throughout.difference(&scan.returned).collect();
                    if !missed.is_empty() {
                        return Err(format!("a finished scan missed keys live throughout it: {missed:?}"));
                    }
                    self.scan = None;
                }
            }
            (Op::ScanAll { count }, Outcome::ScannedAll(calls)) => {
                let Some(calls) = calls else { return Err("a scan did not finish".into()) };
                if calls.iter().any(|c| c.len() > (count as usize).max(1)) {
                    return Err(format!("a scan call for {count} keys gave more"));
                }
                let got: HashSet<Vec<u8>> = calls.iter().flatten().cloned().collect();
                if got != self.live_keys() {
                    return Err(format!("a whole scan gave {} keys, {} are live", got.len(), self.live_keys().len()));
                }
            }
            (Op::Clear, Outcome::Done) => self.entries.clear(),
            (Op::Bulk { from, n, ttl }, Outcome::Bulk(writes)) if writes.len() == n as usize => {
                for (i, w) in writes.iter().enumerate() {
                    let i = from.wrapping_add(i as u8);
                    let at = Some(ttl.map(|t| expire_time(now, t)));
                    self.check_write(&bulk_key(i), bulk_value(i), at, w).map_err(|e| format!("key x{i}: {e}"))?;
                }
            }
            (Op::BulkDelete { from, n }, Outcome::Flags(flags)) if flags.len() == n as usize => {
                for (k, &was) in bulk_keys(from, n).zip(flags) {
                    if self.remove(&k) != was {
                        return Err(format!("DELETE of {:?} says present = {was}", String::from_utf8_lossy(&k)));
                    }
                }
            }
            (op, outcome) => return Err(format!("{op:?} answered {outcome:?}")),
        }
        if let Some(scan) = &mut self.scan {
            let live = self.entries.iter().filter(|(_, e)| e.at.is_none_or(|at| at > self.now));
            let live: HashSet<&Vec<u8>> = live.map(|(k, _)| k).collect();
            scan.throughout.retain(|k| live.contains(k));
        }
        self.check_counts(store)
    }

    /// The store's counts against the model's: keys, volatile keys,
    /// expiries, the clock, the byte limit, and the slot counts of every
    /// key the model knows.
    fn check_counts(&self, store: &Store) -> Result<(), String> {
        check_limit(store, "store")?;
        if store.len() != self.entries.len() {
            return Err(format!("the store holds {} keys, the model {}", store.len(), self.entries.len()));
        }
        let volatile = self.entries.values().filter(|e| e.at.is_some()).count();
        if store.volatile_len() != volatile {
            return Err(format!("the store has {} volatile keys, the model {volatile}", store.volatile_len()));
        }
        if store.expired_total() != self.expired {
            return Err(format!("the store expired {} keys, the model {}", store.expired_total(), self.expired));
        }
        if store.now() != self.now {
            return Err(format!("the store's clock reads {}, the model's {}", store.now(), self.now));
        }
        let mut slots: HashMap<u16, u32> = KEYS.iter().map(|k| (slot_of(k), 0)).collect();
        for k in self.entries.keys() {
            *slots.entry(slot_of(k)).or_default() += 1;
        }
        for (slot, n) in slots {
            if store.keys_in_slot(slot) != n {
                return Err(format!(
                    "slot {slot} holds {} keys in the store, {n} in the model",
                    store.keys_in_slot(slot)
                ));
            }
        }
        Ok(())
    }

    /// Checks every record the model knows, then every slot count.
    fn check_contents(&self, store: &Store, which: &str) -> Result<(), String> {
        self.check_counts(store).map_err(|e| format!("{which}: {e}"))?;
        for (k, e) in &self.entries {
            let name = String::from_utf8_lossy(k);
            let live = self.is_live(e);
            if store.get(k) != live.then_some(e.value.as_slice()) {
                return Err(format!("{which}: key {name:?} does not hold the model's value (live: {live})"));
            }
            if store.expiry(k) != live.then_some(e.at) {
                return Err(format!("{which}: key {name:?} has expiry {:?}, the model {:?}", store.expiry(k), e.at));
            }
            if !store.holds(k) {
                return Err(format!("{which}: the record of {name:?} is gone"));
            }
        }
        let total: u64 = (0..SLOTS as u16).map(|s| store.keys_in_slot(s) as u64).sum();
        if total != store.len() as u64 {
            return Err(format!("{which}: the slot counts add up to {total}, the store holds {}", store.len()));
        }
        Ok(())
    }

    /// At the end of a scenario: finishes the scan under way, then sweeps
    /// the whole table for expired records.
    fn finish(&mut self, store: &mut Store) -> Result<(), String> {
        for _ in 0..SCAN_CALLS {
            let Some(scan) = &self.scan else { break };
            let op = Op::ScanStep { count: 7 };
            let outcome = drive(store, op, self.cfg.limits.max_value_len as usize, scan.cursor);
            self.check(op, &outcome, store).map_err(|e| format!("finishing the scan: {e}"))?;
        }
        if self.scan.is_some() {
            return Err("a scan did not finish".into());
        }
        let due = self.entries.len() - self.live_keys().len();
        let removed = store.expire_cycle(usize::MAX);
        if removed != due {
            return Err(format!("a sweep of the whole table removed {removed} records, {due} had expired"));
        }
        self.entries.retain(|_, e| e.at.is_none_or(|at| at > self.now));
        self.expired += due as u64;
        self.check_contents(store, "store after the sweep")
    }
}

/// Runs `scenario` through the executor and checks it (see the module docs).
pub fn check_executor(scenario: &Scenario) -> Result<(), String> {
    let cfg = scenario.preset.config();
    let mut store = Store::with_limits(0, cfg.store).map_err(|e| e.to_string())?;
    store.set_now(START_MS);
    let twin = store.twin().map_err(|e| e.to_string())?;
    let mut run = ExecutorRun {
        cfg,
        store,
        twin,
        model: Model::new(cfg),
        owned: owned_slots(),
        faults: FaultState::new(Fault::None),
        requests: RequestEncoder::new(),
        responses: ResponseEncoder::new(),
        frame: Vec::new(),
        ops: Vec::new(),
        batch_id: 0,
    };
    for (b, batch) in scenario.batches.iter().enumerate() {
        for (i, &op) in batch.iter().enumerate() {
            match op {
                Op::Get { .. } | Op::Put { .. } | Op::Delete { .. } => run.add(op)?,
                _ => run.direct(op).map_err(|e| format!("batch {b} op {i} ({op:?}): {e}"))?,
            }
        }
        run.send()?;
    }
    run.model.check_contents(&run.store, "executor's store")?;
    run.model.check_contents(&run.twin, "sequential twin")?;
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
    model: Model,
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
    /// Makes one of the store's own calls on both stores, after sending the
    /// frame being built: both must answer alike, and as the model says.
    fn direct(&mut self, op: Op) -> Result<(), String> {
        self.send()?;
        self.store.set_now(self.model.now);
        let max_value = self.cfg.limits.max_value_len as usize;
        let cursor = self.model.scan.as_ref().map_or(0, |s| s.cursor);
        let got = drive(&mut self.store, op, max_value, cursor);
        let expected = drive(&mut self.twin, op, max_value, cursor);
        if got != expected {
            return Err(format!("the executor's store answered {got:?}, the twin {expected:?}"));
        }
        self.model.check(op, &expected, &self.twin)
    }

    /// Adds `op` (a GET, PUT or DELETE) to the frame being built, sending
    /// that first if `op` would break the frame limits (as a client splits
    /// a batch).
    fn add(&mut self, op: Op) -> Result<(), String> {
        let limits = self.cfg.limits;
        let (key, len) = match op {
            Op::Put { key, size, .. } => {
                let k = key_of(key);
                (k, size.bytes(k, limits.max_value_len as usize))
            }
            Op::Get { key } | Op::Delete { key } => (key_of(key), 0),
            other => return Err(format!("{other:?} has no request")),
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
            Op::Put { fill, .. } => self.requests.put(&mut self.frame, key, &value_of(fill, len)),
            Op::Delete { .. } => self.requests.delete(&mut self.frame, key),
            _ => self.requests.get(&mut self.frame, key),
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
        let now = self.model.now;
        // A wrong clock the executor must replace with the one it is given.
        self.store.set_now(0);
        execute(&mut self.store, now, &self.owned, cfg.max_reply, &self.faults, req, &mut reply, &mut self.responses);
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
                self.one_at_a_time(op, budget, &mut data).map_err(|e| format!("batch {batch_id} op {i}: {e}"))?;
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
        if (self.store.len(), self.store.volatile_len(), self.store.expired_total())
            != (self.twin.len(), self.twin.volatile_len(), self.twin.expired_total())
        {
            return Err(format!("batch {batch_id}: the executor's store and the twin hold different counts"));
        }
        Ok(())
    }

    /// `op` on the twin, checked against the model; the result the executor
    /// must give. `data` counts the value bytes of the reply so far
    /// (against `budget`).
    fn one_at_a_time(&mut self, op: Op, budget: usize, data: &mut usize) -> Result<OpResult, String> {
        let key = match op {
            Op::Get { key } | Op::Put { key, .. } | Op::Delete { key } => key_of(key),
            other => return Err(format!("{other:?} has no request")),
        };
        if !self.owned.contains(slot_of(key)) {
            return Ok(OpResult::Error(OpError::WrongShard));
        }
        let outcome = drive(&mut self.twin, op, self.cfg.limits.max_value_len as usize, 0);
        self.model.check(op, &outcome, &self.twin).map_err(|e| format!("the twin: {e}"))?;
        Ok(match outcome {
            Outcome::Value(None) => OpResult::NotFound,
            Outcome::Value(Some(v)) if *data + v.len() > budget => OpResult::Error(OpError::TooLarge),
            Outcome::Value(Some(v)) => {
                *data += v.len();
                OpResult::Value(v)
            }
            Outcome::Written(Write { result: Ok(_), .. }) | Outcome::Flag(_) => OpResult::Done,
            Outcome::Written(Write { result: Err(e), .. }) if e.is_no_room() => OpResult::Error(OpError::OutOfMemory),
            other => return Err(format!("the twin answered {other:?}")),
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

/// Runs `scenario`'s operations (all batches, in order) on the store's own
/// API and checks them (see the module docs).
pub fn check_store(scenario: &Scenario) -> Result<(), String> {
    let cfg = scenario.preset.config();
    let mut store = Store::with_limits(0, cfg.store).map_err(|e| e.to_string())?;
    store.set_now(START_MS);
    let mut model = Model::new(cfg);
    let max_value = cfg.limits.max_value_len as usize;
    for (i, &op) in scenario.batches.iter().flatten().enumerate() {
        let cursor = model.scan.as_ref().map_or(0, |s| s.cursor);
        let outcome = drive(&mut store, op, max_value, cursor);
        model.check(op, &outcome, &store).map_err(|e| format!("op {i} ({op:?}): {e}"))?;
    }
    model.check_contents(&store, "store")?;
    model.finish(&mut store)
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

    /// An expiry from now: often soon, sometimes due at once or never.
    pub fn ttl() -> impl Strategy<Value = u8> {
        prop_oneof![6 => 1u8..40, 1 => Just(0u8), 1 => Just(u8::MAX), 1 => any::<u8>()]
    }

    /// An operation on one of the six keys, or one of the store's own
    /// calls.
    pub fn op() -> impl Strategy<Value = Op> {
        let key = || 0u8..KEYS.len() as u8;
        prop_oneof![
            8 => key().prop_map(|key| Op::Get { key }),
            6 => (key(), size(), any::<u8>()).prop_map(|(key, size, fill)| Op::Put { key, size, fill }),
            4 => key().prop_map(|key| Op::Delete { key }),
            4 => (key(), size(), any::<u8>(), ttl())
                .prop_map(|(key, size, fill, ttl)| Op::PutExpiring { key, size, fill, ttl }),
            2 => (key(), size(), any::<u8>()).prop_map(|(key, size, fill)| Op::PutKeepTtl { key, size, fill }),
            3 => (key(), prop::option::of(ttl())).prop_map(|(key, ttl)| Op::SetExpiry { key, ttl }),
            1 => key().prop_map(|key| Op::Expiry { key }),
            3 => (0u8..30).prop_map(|ms| Op::Advance { ms }),
            1 => key().prop_map(|key| Op::ExpireIfDue { key }),
            2 => (0u8..8).prop_map(|budget| Op::ExpireCycle { budget }),
            2 => (0u8..12).prop_map(|count| Op::ScanStep { count }),
            1 => (0u8..12).prop_map(|count| Op::ScanAll { count }),
            1 => Just(Op::Clear),
            1 => (any::<u8>(), 0u8..100, prop::option::of(ttl())).prop_map(|(from, n, ttl)| Op::Bulk { from, n, ttl }),
            1 => (any::<u8>(), 0u8..100).prop_map(|(from, n)| Op::BulkDelete { from, n }),
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

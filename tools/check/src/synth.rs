//! Synthetic histories: a linearizable history of any size, without a
//! store, to measure the checker (and `percore check --synthesize`).
//!
//! `clients` simulated clients each issue one operation at a time over
//! `keys` zipfian keys (exponent 0.99; key 0 is the hottest): an operation
//! is invoked a short random gap after the client's previous one returned,
//! takes effect at a random instant after its invoke, and returns a random
//! delay after that (exponential gaps and delays, means of 2, 20 and 20
//! µs, so operations of different clients overlap heavily). A discrete
//! event simulation applies the operations to a map of registers in the
//! order they take effect, so every GET returns the value of the latest
//! PUT before it: the history is linearizable by construction. Operations
//! come out in the order they take effect, which is neither invoke nor
//! response order, as in a real recording.
//!
//! Values use the encoding of percore's load generator: client `c` writes
//! `(writer_base + c) << 48 | seq`, and every key starts with its load
//! value [`initial`] (writer `0xFFFF`). Check with [`VALUES`].
//!
//! Two such histories with disjoint writer ids, checked as two sources,
//! are also linearizable (with no time compared across sources, each
//! source's order of its own operations fits one order of both sources'
//! writes): that is how the several-clocks path is measured at scale.

use super::op::{Kind, MAX_KEY, Operation, Values};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Zipf};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Writer id of the load phase (the initial values).
pub const LOAD_WRITER: u32 = 0xFFFF;

/// The value client `writer` writes as its `seq`-th write.
#[inline]
pub fn value(writer: u32, seq: u64) -> u64 {
    ((writer as u64) << 48) | (seq & ((1 << 48) - 1))
}

/// The initial (load) value of `key`.
pub fn initial(key: u64) -> u64 {
    value(LOAD_WRITER, key)
}

/// `w3#17`, or `load#5` for an initial value.
pub fn show(v: u64) -> String {
    match (v >> 48) as u32 {
        LOAD_WRITER => format!("load#{}", v & ((1 << 48) - 1)),
        w => format!("w{w}#{}", v & ((1 << 48) - 1)),
    }
}

/// What the checker should know of synthetic values.
pub const VALUES: Values = Values { initial: Some(initial), show };

/// What to generate.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Operations.
    pub ops: u64,
    /// Keys.
    pub keys: u64,
    /// Concurrent clients.
    pub clients: u16,
    /// Fraction of GETs.
    pub reads: f64,
    /// RNG seed.
    pub seed: u64,
    /// Writer id of client 0 (client c writes as `writer_base + c`): give
    /// histories meant to be checked together disjoint ranges.
    pub writer_base: u32,
}

impl Spec {
    /// Why this spec cannot be generated, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.clients == 0 || self.keys == 0 || self.keys > MAX_KEY + 1 {
            return Err("a synthetic history needs at least one client and 1..=2^40 keys".into());
        }
        if self.writer_base as u64 + self.clients as u64 > LOAD_WRITER as u64 {
            return Err(format!("writer ids {}.. would reach the load writer's ({LOAD_WRITER})", self.writer_base));
        }
        if !(0.0..=1.0).contains(&self.reads) {
            return Err(format!("reads = {} is not a fraction", self.reads));
        }
        Ok(())
    }
}

/// One client's operation in flight.
#[derive(Clone, Copy)]
struct Pending {
    key: u64,
    get: bool,
    invoke: u64,
    response: u64,
}

/// The operations of a [`Spec`], in the order they take effect.
pub struct Synth {
    spec: Spec,
    rng: SmallRng,
    dist: Zipf<f64>,
    /// Current value per key; 0 means the key still holds its initial value.
    current: Vec<u64>,
    seq: Vec<u64>,
    flying: Vec<Pending>,
    heap: BinaryHeap<Reverse<(u64, usize)>>,
    made: u64,
}

/// An exponential delay with this mean (ns).
fn exp(rng: &mut SmallRng, mean: f64) -> u64 {
    let u: f64 = rng.random::<f64>();
    (-(1.0 - u).ln() * mean) as u64 + 1
}

impl Synth {
    /// The generator of `spec` (see [`Spec::validate`]).
    pub fn new(spec: &Spec) -> Result<Synth, String> {
        spec.validate()?;
        let dist = Zipf::new(spec.keys as f64, 0.99).map_err(|e| format!("zipfian keys: {e}"))?;
        let mut s = Synth {
            spec: spec.clone(),
            rng: SmallRng::seed_from_u64(spec.seed),
            dist,
            current: vec![0; spec.keys as usize],
            seq: vec![0; spec.clients as usize],
            flying: Vec::with_capacity(spec.clients as usize),
            heap: BinaryHeap::with_capacity(spec.clients as usize),
            made: 0,
        };
        for c in 0..spec.clients as usize {
            let (p, effect) = s.next_op(1_000_000);
            s.flying.push(p);
            s.heap.push(Reverse((effect, c)));
        }
        Ok(s)
    }

    /// A client's next operation, invoked after `after`, and when it takes
    /// effect.
    fn next_op(&mut self, after: u64) -> (Pending, u64) {
        let rng = &mut self.rng;
        let key = (self.dist.sample(rng) as u64).clamp(1, self.spec.keys) - 1;
        let get = rng.random::<f64>() < self.spec.reads;
        let invoke = after + exp(rng, 2_000.0);
        let effect = invoke + exp(rng, 20_000.0);
        (Pending { key, get, invoke, response: effect + exp(rng, 20_000.0) }, effect)
    }
}

impl Iterator for Synth {
    type Item = Operation;

    fn next(&mut self) -> Option<Operation> {
        if self.made >= self.spec.ops {
            return None;
        }
        let Reverse((_, c)) = self.heap.pop()?;
        let p = self.flying[c];
        let slot = &mut self.current[p.key as usize];
        let (kind, v) = if p.get {
            (Kind::Get, if *slot == 0 { initial(p.key) } else { *slot })
        } else {
            self.seq[c] += 1;
            *slot = value(self.spec.writer_base + c as u32, self.seq[c]);
            (Kind::Put, *slot)
        };
        self.made += 1;
        let (n, effect) = self.next_op(p.response);
        self.flying[c] = n;
        self.heap.push(Reverse((effect, c)));
        Some(Operation { key: p.key, kind, client: c as u16, value: v, invoke: p.invoke, response: Some(p.response) })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.spec.ops - self.made) as usize;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Synth {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_the_load_generator_writes_them() {
        assert_eq!(show(value(3, 17)), "w3#17");
        assert_eq!(show(initial(5)), "load#5");
        assert_eq!(VALUES.show(initial(5)), "load#5");
    }

    #[test]
    fn bad_specs_are_refused() {
        let ok = Spec { ops: 10, keys: 10, clients: 2, reads: 0.5, seed: 1, writer_base: 0 };
        assert!(Synth::new(&ok).is_ok());
        assert!(Synth::new(&Spec { clients: 0, ..ok.clone() }).is_err());
        assert!(Synth::new(&Spec { reads: 1.5, ..ok.clone() }).is_err());
        assert!(Synth::new(&Spec { writer_base: LOAD_WRITER - 1, ..ok }).is_err());
    }

    #[test]
    fn histories_have_the_asked_size_and_unique_values() {
        let spec = Spec { ops: 5000, keys: 50, clients: 8, reads: 0.5, seed: 7, writer_base: 100 };
        let ops: Vec<Operation> = Synth::new(&spec).expect("spec").collect();
        assert_eq!(ops.len(), 5000);
        let mut puts: Vec<u64> = ops.iter().filter(|o| o.kind == Kind::Put).map(|o| o.value).collect();
        let n = puts.len();
        puts.sort_unstable();
        puts.dedup();
        assert_eq!(puts.len(), n, "every PUT writes a value of its own");
        assert!(ops.iter().all(|o| o.key < 50 && o.response.is_some_and(|r| r > o.invoke)));
        assert!(ops.iter().any(|o| o.kind == Kind::Get) && n > 0);
    }
}

//! Synthetic histories (`percore check --synthesize N FILE`): a linearizable
//! history of any size, without a server, to measure the checker.
//!
//! `clients` simulated clients each issue one operation at a time over
//! `keys` zipfian keys (θ = 0.99, scrambled, as YCSB): an operation is
//! invoked a short random gap after the client's previous one returned,
//! takes effect at a random instant after its invoke, and returns a random
//! delay after that (exponential gaps and delays, means of 2, 20 and 20
//! µs, so operations of different clients overlap heavily). A discrete
//! event simulation applies the operations to a map of registers in the
//! order they take effect, so every GET returns the value of the latest
//! PUT before it: the history is linearizable by construction. Keys start
//! with their load value (`load#KEY`), as after `percore loadgen load`.
//!
//! Two such histories with disjoint writer ids, checked together, are also
//! linearizable (with no time compared across files, each file's order of
//! its own operations fits one order of both files' writes): that is how
//! the several-clocks path is measured at scale.

use super::CheckError;
use super::op::load_identity;
use loadgen::history::{Header, HistorySink, VERSION};
use loadgen::value::Identity;
use loadgen::workload::OpKind;
use loadgen::zipf::{DistName, KeyDist};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::Path;

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

/// One client's operation in flight.
#[derive(Clone, Copy)]
struct Pending {
    key: u64,
    get: bool,
    invoke: u64,
    response: u64,
}

/// An exponential delay with this mean (ns).
fn exp(rng: &mut SmallRng, mean: f64) -> u64 {
    let u: f64 = rng.random::<f64>();
    (-(1.0 - u).ln() * mean) as u64 + 1
}

/// Writes the history of `spec` to `path`; returns the operations written.
pub fn write(path: &Path, spec: &Spec) -> Result<u64, CheckError> {
    if spec.clients == 0 || spec.keys == 0 || spec.keys > loadgen::history::MAX_KEY {
        return Err(CheckError::Usage("--synthesize needs at least one client and 1..2^40 keys".into()));
    }
    if spec.writer_base as u64 + spec.clients as u64 > loadgen::value::LOAD_WRITER as u64 {
        return Err(CheckError::Usage("--writer-base: writer ids would reach the load writer's".into()));
    }
    if !(0.0..=1.0).contains(&spec.reads) {
        return Err(CheckError::Usage(format!("--reads {} is not a fraction", spec.reads)));
    }
    let dist = KeyDist::new(DistName::Zipfian, spec.keys, 0.99).map_err(CheckError::Usage)?;
    let header = Header {
        version: VERSION,
        node: "synthetic".into(),
        pid: std::process::id(),
        epoch_unix_ns: 0,
        clock: "simulated ns".into(),
        threads: spec.clients as usize,
    };
    let io = |source: std::io::Error| CheckError::Io { what: path.display().to_string(), source };
    let sink = HistorySink::create(path, &header).map_err(io)?;
    let mut writers: Vec<_> = (0..spec.clients).filter_map(|c| sink.writer(c)).collect();
    let mut rng = SmallRng::seed_from_u64(spec.seed);
    // Current value per key; 0 means the key still holds its load value.
    let mut current = vec![0u64; spec.keys as usize];
    let mut seq = vec![0u64; spec.clients as usize];
    let next = |rng: &mut SmallRng, after: u64| {
        let key = dist.sample(rng);
        let get = rng.random::<f64>() < spec.reads;
        let invoke = after + exp(rng, 2_000.0);
        let effect = invoke + exp(rng, 20_000.0);
        (Pending { key, get, invoke, response: effect + exp(rng, 20_000.0) }, effect)
    };
    let mut flying: Vec<Pending> = Vec::with_capacity(spec.clients as usize);
    let mut heap = BinaryHeap::new();
    for c in 0..spec.clients as usize {
        let (p, effect) = next(&mut rng, 1_000_000);
        flying.push(p);
        heap.push(Reverse((effect, c)));
    }
    let mut written = 0u64;
    while written < spec.ops {
        let Some(Reverse((_, c))) = heap.pop() else { break };
        let p = flying[c];
        let slot = &mut current[p.key as usize];
        let (kind, value) = if p.get {
            (OpKind::Get, if *slot == 0 { load_identity(p.key) } else { *slot })
        } else {
            seq[c] += 1;
            *slot = Identity::new(spec.writer_base + c as u32, seq[c]).0;
            (OpKind::Put, *slot)
        };
        writers[c].record(p.key, kind, value, p.invoke, p.response);
        written += 1;
        let (n, effect) = next(&mut rng, p.response);
        flying[c] = n;
        heap.push(Reverse((effect, c)));
    }
    for w in writers {
        w.finish();
    }
    sink.close().map_err(io)
}

//! Per-operation costs of the load generator, in ns/op
//! (`cargo bench -p percore-loadgen`): drawing a YCSB zipfian record (with
//! and without YCSB's scramble), a whole operation (draw, mix, decimal key,
//! slot), making a value, and verifying one.
//!
//! Not a test: it prints figures. Each case runs for about half a second
//! after a warm-up and reports the best of three rounds.

use loadgen::value;
use loadgen::workload::{KeyBuf, OpGen, Workload};
use loadgen::zipf::{DistName, KeyDist, Zipfian};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use std::hint::black_box;
use std::time::{Duration, Instant};
use wire::slot::slot_of;

fn measure(name: &str, ops_per_call: u64, mut f: impl FnMut()) {
    for _ in 0..3 {
        f();
    }
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let mut calls = 0u64;
        while start.elapsed() < Duration::from_millis(500) {
            f();
            calls += 1;
        }
        best = best.min(start.elapsed().as_nanos() as f64 / (calls * ops_per_call) as f64);
    }
    println!("{name:<56} {best:>8.2} ns/op");
}

fn main() {
    const RECORDS: u64 = 1_000_000;
    let mut rng = SmallRng::seed_from_u64(1);
    let build = Instant::now();
    let dist = KeyDist::new(DistName::Zipfian, RECORDS, 0.99).expect("valid");
    println!("zipfian over {RECORDS} records: tables built in {:.0} ms", build.elapsed().as_secs_f64() * 1e3);
    measure("zipfian record (Gray et al. + FNV scramble, as YCSB)", 1024, || {
        let mut acc = 0u64;
        for _ in 0..1024 {
            acc = acc.wrapping_add(dist.sample(&mut rng));
        }
        black_box(acc);
    });
    let gray = Zipfian::new(RECORDS, 0.99).expect("valid");
    measure("zipfian rank by Gray et al.'s formula (one powf)", 1024, || {
        let mut acc = 0u64;
        for _ in 0..1024 {
            acc = acc.wrapping_add(gray.sample(&mut rng));
        }
        black_box(acc);
    });
    let mut opgen = OpGen::new(Workload::B.read_fraction(), dist.clone(), 7);
    let mut keys = KeyBuf::default();
    measure("YCSB-B op: record + kind + decimal key + slot_of", 1024, || {
        let mut acc = 0u32;
        for _ in 0..1024 {
            let (kind, record) = opgen.next_op();
            acc = acc.wrapping_add(slot_of(keys.key(record)) as u32 + kind as u32);
        }
        black_box(acc);
    });
    let mut buf = [0u8; 128];
    let mut seq = 0u64;
    measure("make a 128-byte self-describing value", 1024, || {
        for _ in 0..1024 {
            seq += 1;
            value::fill(&mut buf, seq % RECORDS, 3, seq);
            black_box(&buf);
        }
    });
    value::fill(&mut buf, 42, 3, 9);
    measure("verify a 128-byte value", 1024, || {
        for _ in 0..1024 {
            black_box(value::verify(black_box(&buf), 42).is_ok());
        }
    });
}

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

/// How long each measured round runs.
const ROUND: Duration = Duration::from_millis(500);

fn main() {
    const RECORDS: u64 = 1_000_000;
    let mut rng = SmallRng::seed_from_u64(1);
    let build = Instant::now();
    let dist = KeyDist::new(DistName::Zipfian, RECORDS, 0.99).expect("valid");
    println!("zipfian over {RECORDS} records: tables built in {:.0} ms", build.elapsed().as_secs_f64() * 1e3);
    testkit::measure("zipfian record (Gray et al. + FNV scramble, as YCSB)", 1024, ROUND, || {
        let mut acc = 0u64;
        for _ in 0..1024 {
            acc = acc.wrapping_add(dist.sample(&mut rng));
        }
        black_box(acc);
    });
    let gray = Zipfian::new(RECORDS, 0.99).expect("valid");
    testkit::measure("zipfian rank by Gray et al.'s formula (one powf)", 1024, ROUND, || {
        let mut acc = 0u64;
        for _ in 0..1024 {
            acc = acc.wrapping_add(gray.sample(&mut rng));
        }
        black_box(acc);
    });
    let mut opgen = OpGen::new(Workload::B.read_fraction(), dist.clone(), 7);
    let mut keys = KeyBuf::default();
    testkit::measure("YCSB-B op: record + kind + decimal key + slot_of", 1024, ROUND, || {
        let mut acc = 0u32;
        for _ in 0..1024 {
            let (kind, record) = opgen.next_op();
            acc = acc.wrapping_add(slot_of(keys.key(record)) as u32 + kind as u32);
        }
        black_box(acc);
    });
    let mut buf = [0u8; 128];
    let mut seq = 0u64;
    testkit::measure("make a 128-byte self-describing value", 1024, ROUND, || {
        for _ in 0..1024 {
            seq += 1;
            value::fill(&mut buf, seq % RECORDS, 3, seq);
            black_box(&buf);
        }
    });
    value::fill(&mut buf, 42, 3, 9);
    testkit::measure("verify a 128-byte value", 1024, ROUND, || {
        for _ in 0..1024 {
            black_box(value::verify(black_box(&buf), 42).is_ok());
        }
    });
}

//! The timing loop shared by percore's `cargo bench` targets (wire, engine,
//! loadgen): run a closure for a round after a warm-up, three rounds, print
//! the best ns per operation.

use std::time::{Duration, Instant};

/// Runs `f` (which does `ops_per_call` operations) repeatedly and prints
/// the best ns/op of three rounds of `round` each.
pub fn measure(name: &str, ops_per_call: u64, round: Duration, mut f: impl FnMut()) {
    for _ in 0..3 {
        f();
    }
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let mut calls = 0u64;
        while start.elapsed() < round {
            f();
            calls += 1;
        }
        best = best.min(start.elapsed().as_nanos() as f64 / (calls * ops_per_call) as f64);
    }
    println!("{name:<56} {best:>8.2} ns/op");
}

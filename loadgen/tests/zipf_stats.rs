//! The zipfian generator against theory: over 10 million draws with a fixed
//! seed, the empirical frequency of each of the top ranks matches its
//! theoretical probability within a tolerance.
//!
//! The theory is that of the method YCSB uses (Gray et al.): ranks 0 and 1
//! follow the Zipf law exactly; every other rank's probability is the share
//! of uniform draws the method's inversion formula maps to it
//! (`Zipfian::method_probability`), which differs from the Zipf law (rank 2:
//! about +19 % for θ = 0.99). Tolerance: 1.5 % relative for each rank (the
//! sampling noise at 10 M draws is under 0.7 % even for rank 9). A broken
//! generator (wrong η or α, θ ignored, scrambling before counting) misses by
//! far more.

use loadgen::zipf::Zipfian;
use rand::SeedableRng;
use rand::rngs::SmallRng;

#[test]
fn top_ranks_match_theory_over_ten_million_draws() {
    let z = Zipfian::new(1_000_000, 0.99).expect("valid");
    let mut rng = SmallRng::seed_from_u64(0x7a1f_0099);
    let draws = 10_000_000u64;
    let mut counts = [0u64; 10];
    for _ in 0..draws {
        let r = z.sample(&mut rng);
        if r < 10 {
            counts[r as usize] += 1;
        }
    }
    for (rank, &count) in counts.iter().enumerate() {
        let observed = count as f64 / draws as f64;
        let expected = z.method_probability(rank as u64);
        let err = (observed - expected).abs() / expected;
        assert!(
            err < 0.015,
            "rank {rank}: observed {observed:.6}, expected {expected:.6} (Zipf law {:.6}), relative error {err:.4}",
            z.probability(rank as u64)
        );
    }
    // Ranks 0 and 1 are the Zipf law itself.
    for rank in 0..2 {
        assert!((z.method_probability(rank) - z.probability(rank)).abs() < 1e-12);
    }
    // The method's probabilities are a distribution: they sum to one.
    let total: f64 = (0..1_000_000).map(|i| z.method_probability(i)).sum();
    assert!((total - 1.0).abs() < 1e-6, "probabilities sum to {total}");
}

#[test]
fn theta_changes_the_skew() {
    // A lower theta spreads the draws: rank 0 gets a visibly smaller share.
    let mut rng = SmallRng::seed_from_u64(5);
    let share = |theta: f64, rng: &mut SmallRng| {
        let z = Zipfian::new(100_000, theta).expect("valid");
        (0..1_000_000).filter(|_| z.sample(rng) == 0).count() as f64 / 1e6
    };
    let (hot, mild) = (share(0.99, &mut rng), share(0.5, &mut rng));
    assert!(hot > 5.0 * mild, "theta 0.99 rank-0 share {hot}, theta 0.5 {mild}");
}

//! Key distributions, as YCSB draws them.
//!
//! [`Zipfian`] is YCSB's `ZipfianGenerator`, the method of Gray et al.,
//! "Quickly Generating Billion-Record Synthetic Databases" (SIGMOD 1994):
//! after an O(n) set-up (the generalized harmonic number ζ(n, θ)), each draw
//! costs one uniform double and one power `x^α` with `α = 1/(1-θ)` — where
//! `rand_distr::Zipf` costs ten times as much. Ranks 0 and 1 are exact; the
//! rest follow the method's continuous approximation, as in YCSB, so
//! percore's request streams have the same shape as YCSB's.
//!
//! The power: for the θ people use (0.99 → α = 100, 0.9 → 10, 0.5 → 2) α is
//! an integer up to the rounding of `1/(1-θ)` (for 0.99 it comes out as
//! 99.99999999999991), and `x^α` is then a handful of multiplications
//! (`powi`) instead of libm's `pow` (16 ns a call here). The two differ by
//! the factor `x^δ` with `|δ| < 1e-9`: under 1e-6 relative even at the
//! smallest double, far below what moves a draw to another rank. Other θ
//! keep `powf`.
//!
//! (An alias table over [`Zipfian::method_probability`] samples the same
//! distribution with a third of the instructions, but its random reads into
//! an 8 MB table cost an L3 miss each: 35 ns a draw here against ~16 ns for
//! the `powf`. Time is what a load generator must save, so the formula stays.)
//!
//! [`KeyDist`] wraps the three request distributions a workload can use:
//!
//! - `zipfian`: rank drawn by [`Zipfian`], then scrambled over the key space
//!   with FNV-1a, as YCSB's `ScrambledZipfianGenerator` does, so the hot keys
//!   are not the first records loaded;
//! - `uniform`: every record equally likely;
//! - `latest`: YCSB's `SkewedLatestGenerator`: the most recently inserted
//!   records are hottest (rank 0 is the last record loaded). The YCSB A/B/C
//!   mixes insert nothing while running, so "latest" means "latest loaded".

use rand::RngExt;
use strength_reduce::StrengthReducedU64;

/// YCSB's Zipfian generator over ranks `0..n` with exponent `theta`.
#[derive(Clone, Debug)]
pub struct Zipfian {
    n: u64,
    theta: f64,
    alpha: f64,
    /// `alpha` as an integer when it is one up to rounding: `x^alpha` by `powi`.
    alpha_int: Option<i32>,
    zetan: f64,
    eta: f64,
    /// `1 + 0.5^theta`: below it (times zetan), rank 1.
    half_pow_theta: f64,
}

/// ζ(n, θ) = Σ_{i=1..n} 1/i^θ.
pub fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

impl Zipfian {
    /// A generator over `n ≥ 1` items with `0 < theta < 1` (YCSB's default is 0.99).
    pub fn new(n: u64, theta: f64) -> Result<Zipfian, String> {
        if n == 0 {
            return Err("a zipfian distribution needs at least one item".into());
        }
        if !(theta > 0.0 && theta < 1.0) {
            return Err(format!("zipfian theta must be in (0, 1), got {theta}"));
        }
        let zetan = zeta(n, theta);
        let zeta2 = zeta(2, theta);
        let alpha = 1.0 / (1.0 - theta);
        let rounded = alpha.round();
        let alpha_int = ((alpha - rounded).abs() < 1e-9 && rounded <= 4096.0).then_some(rounded as i32);
        let eta = (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan);
        Ok(Zipfian { n, theta, alpha, alpha_int, zetan, eta, half_pow_theta: 1.0 + 0.5f64.powf(theta) })
    }

    /// Number of items.
    pub fn items(&self) -> u64 {
        self.n
    }

    /// The exponent.
    pub fn theta(&self) -> f64 {
        self.theta
    }

    /// The probability of rank `i` under the Zipf law itself.
    pub fn probability(&self, i: u64) -> f64 {
        1.0 / ((i + 1) as f64).powf(self.theta) / self.zetan
    }

    /// The exact probability that [`Zipfian::sample`] returns rank `i`: the
    /// Zipf law for ranks 0 and 1, and for the others the share of uniform
    /// draws `u` that the method maps to `i` (inverting
    /// `i = ⌊n·(η·u − η + 1)^α⌋`). For θ = 0.99 over a million items rank 2
    /// comes out about 19 % above the Zipf law — YCSB's generator does the same.
    pub fn method_probability(&self, i: u64) -> f64 {
        match i {
            0 => 1.0 / self.zetan,
            1 => 0.5f64.powf(self.theta) / self.zetan,
            _ if i >= self.n => 0.0,
            _ => {
                // u ↦ rank is increasing; rank i covers x ∈ [(i/n)^(1/α), ((i+1)/n)^(1/α)).
                let u_of = |k: f64| {
                    let x = (k / self.n as f64).powf(1.0 / self.alpha);
                    (x - 1.0 + self.eta) / self.eta
                };
                let lo = u_of(i as f64).max(self.half_pow_theta / self.zetan);
                let hi = if i + 1 >= self.n { 1.0 } else { u_of((i + 1) as f64).min(1.0) };
                (hi - lo).max(0.0)
            }
        }
    }

    /// Draws a rank in `0..n` (0 the most popular).
    #[inline]
    pub fn sample<R: RngExt + ?Sized>(&self, rng: &mut R) -> u64 {
        let u: f64 = rng.random();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < self.half_pow_theta {
            return 1;
        }
        let x = self.eta * u - self.eta + 1.0;
        let power = match self.alpha_int {
            Some(k) => x.powi(k),
            None => x.powf(self.alpha),
        };
        let r = (self.n as f64 * power) as u64;
        r.min(self.n - 1)
    }
}

/// FNV-1a over the 8 bytes of `v`, as YCSB scrambles zipfian ranks.
#[inline]
pub fn fnv1a64(v: u64) -> u64 {
    let mut h = 0xCBF2_9CE4_8422_2325u64;
    for i in 0..8 {
        h ^= (v >> (i * 8)) & 0xFF;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// Which records a workload touches.
#[derive(Clone, Debug)]
pub enum KeyDist {
    /// Scrambled zipfian (YCSB's default request distribution); the
    /// scrambled rank is reduced modulo the record count by a precomputed
    /// multiplier (a 64-bit `div` costs more than the rest of the scramble).
    Zipfian(Zipfian, StrengthReducedU64),
    /// Uniform over all records.
    Uniform(u64),
    /// Recent records hottest.
    Latest(Zipfian),
}

/// The distribution names accepted on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DistName {
    /// Scrambled zipfian, as YCSB's default.
    Zipfian,
    /// Uniform.
    Uniform,
    /// Latest-loaded records hottest.
    Latest,
}

impl KeyDist {
    /// Builds the distribution over `records` records (at most 2^63).
    pub fn new(name: DistName, records: u64, theta: f64) -> Result<KeyDist, String> {
        if records > 1 << 63 {
            return Err(format!("{records} records: at most 2^63 are supported"));
        }
        Ok(match name {
            DistName::Zipfian => {
                let z = Zipfian::new(records, theta)?;
                let items = StrengthReducedU64::new(z.items());
                KeyDist::Zipfian(z, items)
            }
            DistName::Uniform => {
                if records == 0 {
                    return Err("uniform over zero records".into());
                }
                KeyDist::Uniform(records)
            }
            DistName::Latest => KeyDist::Latest(Zipfian::new(records, theta)?),
        })
    }

    /// Draws a record number.
    #[inline]
    pub fn sample<R: RngExt + ?Sized>(&self, rng: &mut R) -> u64 {
        match self {
            KeyDist::Zipfian(z, items) => fnv1a64(z.sample(rng)) % *items,
            KeyDist::Uniform(n) => rng.random_range(0..*n),
            KeyDist::Latest(z) => z.items() - 1 - z.sample(rng),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn draws_stay_in_range() {
        let mut rng = SmallRng::seed_from_u64(1);
        for n in [1u64, 2, 3, 10, 1000] {
            let z = Zipfian::new(n, 0.99).expect("valid");
            for _ in 0..10_000 {
                assert!(z.sample(&mut rng) < n);
            }
            for name in [DistName::Zipfian, DistName::Uniform, DistName::Latest] {
                let d = KeyDist::new(name, n, 0.99).expect("valid");
                for _ in 0..1000 {
                    assert!(d.sample(&mut rng) < n);
                }
            }
        }
    }

    #[test]
    fn integer_power_draws_the_same_ranks_as_powf() {
        for theta in [0.99, 0.9, 0.5] {
            let fast = Zipfian::new(1_000_000, theta).expect("valid");
            assert!(fast.alpha_int.is_some(), "θ = {theta}: α = {} should take powi", fast.alpha);
            let exact = Zipfian { alpha_int: None, ..fast.clone() };
            let (mut a, mut b) = (SmallRng::seed_from_u64(9), SmallRng::seed_from_u64(9));
            let differ = (0..1_000_000).filter(|_| fast.sample(&mut a) != exact.sample(&mut b)).count();
            assert!(differ <= 2, "θ = {theta}: {differ} of 1,000,000 draws changed rank");
        }
        assert!(Zipfian::new(1000, 0.7).expect("valid").alpha_int.is_none(), "α = 3.33… is not an integer");
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert!(Zipfian::new(0, 0.99).is_err());
        assert!(Zipfian::new(10, 1.0).is_err());
        assert!(Zipfian::new(10, 0.0).is_err());
    }
}

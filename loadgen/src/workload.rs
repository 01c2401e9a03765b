//! Workloads: which operations a run issues and on which keys.
//!
//! YCSB's core mixes (A: 50 % reads / 50 % updates, B: 95/5, C: reads
//! only) over records `0..n`, keys being the record numbers in decimal
//! (`"123456"`), as in the original exercise. [`OpGen`] draws one
//! operation at a time from a seeded RNG: one draw for the key (see
//! [`crate::zipf::KeyDist`]) and one for the kind.

use crate::zipf::KeyDist;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

/// The YCSB core workloads percore runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// 50 % reads, 50 % updates.
    A,
    /// 95 % reads, 5 % updates (the default).
    B,
    /// 100 % reads.
    C,
}

impl Workload {
    /// Fraction of operations that are reads.
    pub fn read_fraction(self) -> f64 {
        match self {
            Workload::A => 0.5,
            Workload::B => 0.95,
            Workload::C => 1.0,
        }
    }

    /// Upper-case letter, as YCSB names them.
    pub fn letter(self) -> &'static str {
        match self {
            Workload::A => "A",
            Workload::B => "B",
            Workload::C => "C",
        }
    }
}

/// Kind of a generated operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpKind {
    /// Read.
    Get = 0,
    /// Update (a PUT of a new value).
    Put = 1,
}

/// Operations an [`OpGen`] draws ahead.
const AHEAD: usize = 64;

/// Draws operations: a kind and a record number.
///
/// Operations are drawn `AHEAD` at a time into a small buffer: each draw
/// is a chain of dependent multiplications (the power, the FNV scramble,
/// the modulo) that is short in instructions but long in latency, and in a
/// tight loop of independent draws the CPU overlaps those chains, where one
/// draw between two sends would wait for its own. The sequence is the same
/// as drawing one at a time.
pub struct OpGen {
    rng: SmallRng,
    dist: KeyDist,
    /// A draw below this is a read.
    read_below: u64,
    /// Drawn operations not yet handed out: `record << 1 | kind`.
    ahead: [u64; AHEAD],
    /// Next index of `ahead` to hand out (`AHEAD`: empty).
    next: usize,
}

impl OpGen {
    /// A generator for `workload` over `dist`, seeded.
    pub fn new(read_fraction: f64, dist: KeyDist, seed: u64) -> OpGen {
        let read_below = if read_fraction >= 1.0 { u64::MAX } else { (read_fraction * u64::MAX as f64) as u64 };
        OpGen { rng: SmallRng::seed_from_u64(seed), dist, read_below, ahead: [0; AHEAD], next: AHEAD }
    }

    /// The next operation.
    #[inline]
    pub fn next_op(&mut self) -> (OpKind, u64) {
        if self.next == AHEAD {
            self.refill();
        }
        let op = self.ahead[self.next];
        self.next += 1;
        (if op & 1 == 0 { OpKind::Get } else { OpKind::Put }, op >> 1)
    }

    /// Draws the next [`AHEAD`] operations.
    #[inline(never)]
    fn refill(&mut self) {
        let OpGen { rng, dist, read_below, ahead, next } = self;
        for slot in ahead.iter_mut() {
            let record = dist.sample(rng);
            let put = rng.random::<u64>() >= *read_below && *read_below != u64::MAX;
            *slot = (record << 1) | put as u64;
        }
        *next = 0;
    }

    /// The RNG, for other per-thread draws (inter-arrival times).
    pub fn rng(&mut self) -> &mut SmallRng {
        &mut self.rng
    }
}

/// A record's key: its number in decimal.
pub struct KeyBuf(itoa::Buffer);

impl Default for KeyBuf {
    fn default() -> Self {
        KeyBuf(itoa::Buffer::new())
    }
}

impl KeyBuf {
    /// Formats `record` and returns the key bytes.
    #[inline]
    pub fn key(&mut self, record: u64) -> &[u8] {
        self.0.format(record).as_bytes()
    }
}

/// Parses a key made by [`KeyBuf`] back to its record number.
pub fn record_of(key: &[u8]) -> Option<u64> {
    std::str::from_utf8(key).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zipf::{DistName, KeyDist};

    #[test]
    fn mixes_have_their_read_fraction() {
        for (w, lo, hi) in [(Workload::A, 0.48, 0.52), (Workload::B, 0.94, 0.96), (Workload::C, 1.0, 1.0)] {
            let dist = KeyDist::new(DistName::Uniform, 1000, 0.99).expect("dist");
            let mut g = OpGen::new(w.read_fraction(), dist, 3);
            let reads = (0..100_000).filter(|_| g.next_op().0 == OpKind::Get).count() as f64 / 100_000.0;
            assert!(reads >= lo && reads <= hi, "{w:?}: {reads}");
        }
    }

    #[test]
    fn keys_are_decimal_record_numbers() {
        let mut k = KeyBuf::default();
        assert_eq!(k.key(123456), b"123456");
        assert_eq!(k.key(0), b"0");
        assert_eq!(record_of(b"999999"), Some(999_999));
    }
}

//! Self-describing values: every value written says which key it belongs
//! to, who wrote it and when, and carries a checksum.
//!
//! Layout of a value of `len ≥ 32` bytes (little-endian):
//!
//! ```text
//!  0..8     record number of the key it was written for
//!  8..12    writer id (a load thread; LOAD_WRITER for the load phase)
//! 12..16    value length
//! 16..24    sequence number, per writer, from 1
//! 24..len-8 filler, derived from the fields above
//! len-8..   checksum of bytes 0..len-8
//! ```
//!
//! `(writer, seq)` is the value's unique identity ([`Identity`]): the
//! history recorder logs it instead of 128 bytes, and the checker uses it
//! to know which write a read observed. A GET reply is verified by
//! [`verify`]: it must be a value written *for that key*, intact. A stale
//! but intact value passes here; catching that is the checker's job.

/// Smallest value the generator can make self-describing.
pub const MIN_VALUE_LEN: usize = 32;
/// Writer id of the load phase.
pub const LOAD_WRITER: u32 = 0xFFFF;

/// Who wrote a value: `(writer << 48) | seq`. Unique across a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity(pub u64);

impl Identity {
    /// The identity of writer `writer`'s write number `seq`.
    #[inline]
    pub fn new(writer: u32, seq: u64) -> Identity {
        Identity(((writer as u64) << 48) | (seq & ((1 << 48) - 1)))
    }

    /// The writer.
    pub fn writer(self) -> u32 {
        (self.0 >> 48) as u32
    }

    /// The writer's sequence number.
    pub fn seq(self) -> u64 {
        self.0 & ((1 << 48) - 1)
    }

    /// True for values written by the load phase.
    pub fn is_load(self) -> bool {
        self.writer() == LOAD_WRITER
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_load() { write!(f, "load#{}", self.seq()) } else { write!(f, "w{}#{}", self.writer(), self.seq()) }
    }
}

#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[inline]
fn word(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]))
}

/// Checksum of `bytes`: four independent lanes (so the multiplies overlap),
/// each folding every fourth word through an odd multiplier and a
/// rotation, then mixed. Any change to a single word changes its lane's
/// value (the per-word map is a bijection), and lanes start from different
/// seeds, so moved words change it too.
#[inline]
fn checksum(bytes: &[u8]) -> u64 {
    const K: [u64; 4] = [0x9E37_79B9_7F4A_7C15, 0xC2B2_AE3D_27D4_EB4F, 0x1656_67B1_9E37_79F9, 0xD6E8_FEB8_6659_FD93];
    let (mut a, mut b, mut c, mut d) =
        (0x243F_6A88_85A3_08D3u64, 0x1319_8A2E_0370_7344u64, 0xA409_3822_299F_31D0u64, 0x082E_FA98_EC4E_6C89u64);
    let (words, tail) = bytes.as_chunks::<8>();
    let (quads, rest) = words.as_chunks::<4>();
    for [w0, w1, w2, w3] in quads {
        a = (a ^ u64::from_le_bytes(*w0)).wrapping_mul(K[0]).rotate_left(31);
        b = (b ^ u64::from_le_bytes(*w1)).wrapping_mul(K[1]).rotate_left(31);
        c = (c ^ u64::from_le_bytes(*w2)).wrapping_mul(K[2]).rotate_left(31);
        d = (d ^ u64::from_le_bytes(*w3)).wrapping_mul(K[3]).rotate_left(31);
    }
    let mut h = a ^ b.rotate_left(16) ^ c.rotate_left(32) ^ d.rotate_left(48) ^ bytes.len() as u64;
    for w in rest {
        h = (h ^ u64::from_le_bytes(*w)).wrapping_mul(K[0]).rotate_left(29);
    }
    for &byte in tail {
        h = (h ^ byte as u64).wrapping_mul(K[1]);
    }
    mix(h)
}

/// Writes the value for `record` by `writer`'s write `seq` into `out`
/// (`out.len() ≥ MIN_VALUE_LEN`).
#[inline]
pub fn fill(out: &mut [u8], record: u64, writer: u32, seq: u64) {
    let len = out.len();
    debug_assert!(len >= MIN_VALUE_LEN);
    out[0..8].copy_from_slice(&record.to_le_bytes());
    out[8..12].copy_from_slice(&writer.to_le_bytes());
    out[12..16].copy_from_slice(&(len as u32).to_le_bytes());
    out[16..24].copy_from_slice(&seq.to_le_bytes());
    let mut x = mix(record ^ ((writer as u64) << 32) ^ seq.rotate_left(17));
    let body = &mut out[24..len - 8];
    let mut words = body.chunks_exact_mut(8);
    for w in &mut words {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        w.copy_from_slice(&mix(x).to_le_bytes());
    }
    for b in words.into_remainder() {
        *b = x as u8;
    }
    let sum = checksum(&out[..len - 8]);
    out[len - 8..].copy_from_slice(&sum.to_le_bytes());
}

/// Why a read was bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadRead {
    /// Too short to be a percore value.
    TooShort,
    /// The checksum does not match: corrupted bytes.
    Checksum,
    /// The value was written for another key.
    WrongKey {
        /// The record it claims.
        found: u64,
    },
    /// Its length field disagrees with its length.
    Length,
}

impl std::fmt::Display for BadRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadRead::TooShort => write!(f, "value shorter than {MIN_VALUE_LEN} bytes"),
            BadRead::Checksum => f.write_str("checksum mismatch (corrupted value)"),
            BadRead::WrongKey { found } => write!(f, "value belongs to record {found}"),
            BadRead::Length => f.write_str("length field mismatch"),
        }
    }
}

/// Checks a value read for `record`; returns the identity of the write it
/// comes from.
#[inline]
pub fn verify(value: &[u8], record: u64) -> Result<Identity, BadRead> {
    let len = value.len();
    if len < MIN_VALUE_LEN {
        return Err(BadRead::TooShort);
    }
    if checksum(&value[..len - 8]) != word(value, len - 8) {
        return Err(BadRead::Checksum);
    }
    let found = word(value, 0);
    if found != record {
        return Err(BadRead::WrongKey { found });
    }
    if u32::from_le_bytes([value[12], value[13], value[14], value[15]]) as usize != len {
        return Err(BadRead::Length);
    }
    let writer = u32::from_le_bytes([value[8], value[9], value[10], value[11]]);
    Ok(Identity::new(writer, word(value, 16)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_then_verify() {
        for len in [32usize, 33, 100, 128, 1000] {
            let mut v = vec![0u8; len];
            fill(&mut v, 42, 7, 9);
            assert_eq!(verify(&v, 42), Ok(Identity::new(7, 9)));
            assert_eq!(verify(&v, 43), Err(BadRead::WrongKey { found: 42 }));
        }
    }

    #[test]
    fn every_single_bit_flip_is_caught() {
        let mut v = vec![0u8; 128];
        fill(&mut v, 5, 1, 1);
        for bit in 0..128 * 8 {
            let mut w = v.clone();
            w[bit / 8] ^= 1 << (bit % 8);
            assert!(verify(&w, 5).is_err(), "flip of bit {bit} went unnoticed");
        }
    }

    #[test]
    fn distinct_writes_give_distinct_values() {
        let (mut a, mut b) = (vec![0u8; 128], vec![0u8; 128]);
        fill(&mut a, 1, 1, 1);
        fill(&mut b, 1, 1, 2);
        assert_ne!(a, b);
        fill(&mut b, 1, 2, 1);
        assert_ne!(a, b);
        assert_eq!(Identity::new(LOAD_WRITER, 3).to_string(), "load#3");
    }
}

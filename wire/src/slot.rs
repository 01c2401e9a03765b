//! Key routing: Redis Cluster's hash slots.
//!
//! `slot = CRC16/XMODEM(key) mod 16384`, where only the part between the
//! first `{` and the next `}` is hashed if that part is non-empty (a *hash
//! tag*: `{user1}.name` and `{user1}.mail` share a slot). This is the one
//! routing function in percore; clients and servers both call it, so they
//! can never disagree about where a key lives. The slot → shard table is
//! [`crate::cluster::ShardMap`].

/// Number of hash slots.
pub const SLOTS: usize = 16384;

/// CRC16/XMODEM slice-by-8 tables (polynomial 0x1021, initial value 0, no
/// reflection): `TABLES[0][x]` is the CRC of the single byte `x`,
/// `TABLES[k][x]` the CRC of `x` followed by `k` zero bytes. CRC is linear,
/// so several bytes fold in with independent lookups instead of a chain.
static TABLES: [[u16; 256]; 8] = {
    let mut t = [[0u16; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
            bit += 1;
        }
        t[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev << 8) ^ t[0][(prev >> 8) as usize];
            i += 1;
        }
        k += 1;
    }
    t
};

/// CRC16/XMODEM of `bytes` (check value of `"123456789"`: `0x31C3`),
/// four bytes per step.
#[inline]
pub fn crc16(bytes: &[u8]) -> u16 {
    let [t0, t1, t2, t3, ..] = &TABLES;
    let mut crc = 0u16;
    let (words, rest) = bytes.as_chunks::<4>();
    for w in words {
        crc = t3[((crc >> 8) as u8 ^ w[0]) as usize]
            ^ t2[((crc & 0xFF) as u8 ^ w[1]) as usize]
            ^ t1[w[2] as usize]
            ^ t0[w[3] as usize];
    }
    for &b in rest {
        crc = (crc << 8) ^ t0[((crc >> 8) as u8 ^ b) as usize];
    }
    crc
}

/// CRC16/XMODEM of the up-to-8 bytes held big-endian in `p` (zero bytes in
/// front change nothing: the CRC starts at zero), branch-free.
#[inline(always)]
fn crc16_word(p: u64) -> u16 {
    let t = &TABLES;
    t[7][(p >> 56) as usize]
        ^ t[6][(p >> 48) as u8 as usize]
        ^ t[5][(p >> 40) as u8 as usize]
        ^ t[4][(p >> 32) as u8 as usize]
        ^ t[3][(p >> 24) as u8 as usize]
        ^ t[2][(p >> 16) as u8 as usize]
        ^ t[1][(p >> 8) as u8 as usize]
        ^ t[0][p as u8 as usize]
}

/// The bitwise definition of CRC16/XMODEM, one bit at a time: the reference
/// the table-driven [`crc16`] is tested against.
pub fn crc16_bitwise(bytes: &[u8]) -> u16 {
    let mut crc = 0u16;
    for &b in bytes {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// The part of `key` that is hashed: its hash tag if it has a non-empty one,
/// else the whole key.
#[inline]
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{')
        && let Some(len) = key[open + 1..].iter().position(|&b| b == b'}')
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}

/// The hash slot of `key`, as Redis Cluster computes it.
///
/// Keys of 4–8 bytes without a `{` (the common case: decimal record numbers)
/// take a branch-free path: two overlapping loads place the key right-aligned
/// in a big-endian word, one SWAR test rules out a hash tag, eight table
/// lookups give the CRC. Everything else takes the general path.
#[inline]
pub fn slot_of(key: &[u8]) -> u16 {
    let n = key.len();
    if (4..=8).contains(&n) {
        let head = u32::from_be_bytes([key[0], key[1], key[2], key[3]]) as u64;
        let tail = u32::from_be_bytes([key[n - 4], key[n - 3], key[n - 2], key[n - 1]]) as u64;
        // Overlapping bytes land on the same positions, so OR keeps them.
        let word = (head << (8 * (n - 4))) | tail;
        let x = word ^ 0x7B7B_7B7B_7B7B_7B7B;
        if x.wrapping_sub(0x0101_0101_0101_0101) & !x & 0x8080_8080_8080_8080 == 0 {
            return crc16_word(word) & (SLOTS as u16 - 1);
        }
    }
    crc16(hash_tag(key)) & (SLOTS as u16 - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_check_value() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16_bitwise(b"123456789"), 0x31C3);
    }

    #[test]
    fn table_crc_matches_the_bitwise_definition() {
        let mut x = 0x1234_5678_9ABC_DEF0u64;
        for len in 0..64 {
            for _ in 0..50 {
                let key: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                assert_eq!(crc16(&key), crc16_bitwise(&key), "{key:?}");
                assert_eq!(slot_of(&key), crc16_bitwise(hash_tag(&key)) & 0x3FFF, "{key:?}");
            }
        }
    }

    #[test]
    fn short_keys_with_and_without_tags() {
        for key in [&b"{a}bc"[..], b"ab{c}", b"a{}b", b"12345678", b"1234", b"123", b"1", b"", b"{x}", b"9{8}76543"] {
            assert_eq!(slot_of(key), crc16_bitwise(hash_tag(key)) & 0x3FFF, "{key:?}");
        }
        for i in 0..1_000_000u32 {
            let key = i.to_string();
            assert_eq!(slot_of(key.as_bytes()), crc16_bitwise(key.as_bytes()) & 0x3FFF, "{key}");
        }
    }

    #[test]
    fn hash_tags() {
        assert_eq!(hash_tag(b"{user1000}.following"), b"user1000");
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hash_tag(b"a{b"), b"a{b");
    }
}

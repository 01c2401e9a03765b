//! The shard's map: keys and values in a slab, a hash table of handles.
//!
//! This module owns the record layout; the rest of the engine sees only
//! [`Store::get`], [`Store::put`] and [`Store::delete`], so the layout can
//! change without touching the connection code.
//!
//! # Layout
//!
//! Records live in 2 MiB chunks of 8-byte words. A record is a header word
//! (`key_len: u16`, `class: u8`, `value_len: u32`) followed by the key and
//! the value, padded to a whole word. The hash table
//! ([`hashbrown::HashTable`]) stores only a `u32` handle per key: the
//! record's word index across all chunks. For one million 6-byte keys with
//! 128-byte values that is 144 B per record plus ~5 B per table bucket,
//! against ~170 B per record for a `HashMap<Box<[u8]>, Box<[u8]>>` and its
//! two allocations.
//!
//! Record sizes are rounded to size classes (exact words up to 512 B, then
//! eight classes per doubling). Freed records go on per-class free lists and
//! are reused first; a PUT whose new record has the same class overwrites
//! the old one in place, so a steady update workload allocates nothing.
//! Records larger than a quarter chunk get a chunk of their own, returned to
//! the allocator when freed.
//!
//! The one write path is [`Store::put`] / [`Store::delete`]: a durable log
//! append, when it comes, goes there.

use hashbrown::HashTable;
use std::hash::BuildHasher;

/// Words per regular chunk (2 MiB).
const CHUNK_SHIFT: u32 = 18;
const CHUNK_WORDS: usize = 1 << CHUNK_SHIFT;
/// Records above this many words get a chunk of their own.
const JUMBO_WORDS: usize = CHUNK_WORDS / 4;
/// Class marker for records in their own chunk.
const JUMBO_CLASS: u8 = u8::MAX;
/// Marker in the key-length field of a free record.
const FREE_KEY_LEN: u64 = 0xFFFF;
/// "No record" handle.
const NIL: u32 = u32::MAX;
/// Longest key the record header can describe.
pub const MAX_KEY_LEN: usize = 0xFFFE;
/// Smallest record: header + one word (room for a free-list link).
const MIN_WORDS: u32 = 2;
/// Number of size classes for regular records (see [`class_of`]).
const CLASSES: usize = 63 + 12 * 8;

/// Size class of a record of `words` words: exact for 2..=64 words, then
/// eight classes per power of two.
#[inline]
fn class_of(words: u32) -> usize {
    if words <= 64 {
        return (words.max(MIN_WORDS) - MIN_WORDS) as usize;
    }
    let p = 31 - (words - 1).leading_zeros();
    let step = 1u32 << (p - 3);
    let idx = (words - 1 - (1 << p)) / step;
    63 + ((p - 6) * 8 + idx) as usize
}

/// Words of a record of size class `class`.
#[inline]
fn class_words(class: usize) -> u32 {
    if class <= 62 {
        return class as u32 + MIN_WORDS;
    }
    let k = (class - 63) as u32;
    let p = 6 + k / 8;
    (1 << p) + (k % 8 + 1) * (1 << (p - 3))
}

/// Key equality without a `memcmp` call for the short keys that dominate
/// (two overlapping loads per side up to 16 bytes).
#[inline(always)]
fn key_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| {
        u64::from_le_bytes([s[at], s[at + 1], s[at + 2], s[at + 3], s[at + 4], s[at + 5], s[at + 6], s[at + 7]])
    };
    let half = |s: &[u8], at: usize| u32::from_le_bytes([s[at], s[at + 1], s[at + 2], s[at + 3]]);
    match n {
        0 => true,
        1..=3 => a == b,
        4..=8 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        9..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

/// Words a record with this key and value needs.
#[inline]
fn record_words(key_len: usize, value_len: usize) -> usize {
    1 + (key_len + value_len).div_ceil(8)
}

#[inline]
fn header(key_len: usize, class: u8, value_len: usize) -> u64 {
    key_len as u64 | (class as u64) << 16 | (value_len as u64) << 32
}

/// The records' memory: chunks of words, free lists, a bump pointer.
struct Slab {
    /// Chunk `i` holds handles `i << CHUNK_SHIFT ..`; jumbo chunks are longer
    /// and hold one record at offset 0; released jumbo chunks are empty.
    chunks: Vec<Box<[u64]>>,
    /// Next free word in the last regular chunk, as a handle.
    bump: u32,
    /// Words left after `bump` in that chunk.
    bump_left: usize,
    /// Free-list head per size class.
    free: Vec<u32>,
    /// Released jumbo chunk indices, for reuse.
    free_chunks: Vec<u32>,
    /// Words held by live records.
    live_words: usize,
    /// Words allocated from the OS.
    total_words: usize,
}

impl Slab {
    fn new() -> Slab {
        Slab {
            chunks: Vec::new(),
            bump: 0,
            bump_left: 0,
            free: vec![NIL; CLASSES],
            free_chunks: Vec::new(),
            live_words: 0,
            total_words: 0,
        }
    }

    #[inline]
    fn words(&self, h: u32) -> &[u64] {
        &self.chunks[(h >> CHUNK_SHIFT) as usize][(h as usize) & (CHUNK_WORDS - 1)..]
    }

    #[inline]
    fn words_mut(&mut self, h: u32) -> &mut [u64] {
        &mut self.chunks[(h >> CHUNK_SHIFT) as usize][(h as usize) & (CHUNK_WORDS - 1)..]
    }

    #[inline]
    fn header(&self, h: u32) -> u64 {
        self.words(h)[0]
    }

    /// The record's key and value.
    #[inline]
    fn key_value(&self, h: u32) -> (&[u8], &[u8]) {
        let w = self.words(h);
        let head = w[0];
        let key_len = (head & 0xFFFF) as usize;
        let value_len = (head >> 32) as usize;
        let body: &[u8] = bytemuck::cast_slice(&w[1..]);
        (&body[..key_len], &body[key_len..key_len + value_len])
    }

    #[inline]
    fn key(&self, h: u32) -> &[u8] {
        self.key_value(h).0
    }

    /// Like `key_value`, but `None` for a freed record (a candidate may be
    /// stale after a write).
    #[inline]
    fn key_value_checked(&self, h: u32) -> Option<(&[u8], &[u8])> {
        if self.header(h) & 0xFFFF == FREE_KEY_LEN {
            return None;
        }
        Some(self.key_value(h))
    }

    /// Starts loading a record's first three cache lines (header, key and
    /// the start of the value; a 128-byte value ends in the third or fourth).
    #[inline(always)]
    fn prefetch(&self, h: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            let w = self.words(h);
            let p = w.as_ptr() as *const i8;
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            // SAFETY: SSE is part of the x86_64 baseline, and a prefetch is a
            // hint that never faults, whatever the address (those past a
            // short record's end are inside or just past its chunk).
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(p);
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64));
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(128));
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = h;
    }

    fn class_of_record(&self, h: u32) -> u8 {
        ((self.header(h) >> 16) & 0xFF) as u8
    }

    /// Allocates a record of `words` words and returns its handle and class.
    fn alloc(&mut self, words: usize) -> (u32, u8) {
        if words > JUMBO_WORDS {
            let chunk = vec![0u64; words].into_boxed_slice();
            self.total_words += words;
            self.live_words += words;
            let idx = match self.free_chunks.pop() {
                Some(i) => {
                    self.chunks[i as usize] = chunk;
                    i
                }
                None => {
                    self.chunks.push(chunk);
                    (self.chunks.len() - 1) as u32
                }
            };
            return (idx << CHUNK_SHIFT, JUMBO_CLASS);
        }
        let class = class_of(words as u32);
        let cw = class_words(class) as usize;
        self.live_words += cw;
        let head = self.free[class];
        if head != NIL {
            self.free[class] = self.words(head)[1] as u32;
            return (head, class as u8);
        }
        if self.bump_left < cw {
            self.retire_tail();
            self.new_chunk();
        }
        let h = self.bump;
        self.bump += cw as u32;
        self.bump_left -= cw;
        (h, class as u8)
    }

    /// Gives the rest of the current chunk to the free lists.
    fn retire_tail(&mut self) {
        while self.bump_left >= MIN_WORDS as usize {
            let mut class = class_of(self.bump_left.min(JUMBO_WORDS) as u32);
            while class_words(class) as usize > self.bump_left {
                class -= 1;
            }
            let cw = class_words(class) as usize;
            let h = self.bump;
            self.push_free(h, class);
            self.bump += cw as u32;
            self.bump_left -= cw;
        }
        self.bump_left = 0;
    }

    fn new_chunk(&mut self) {
        let idx = match self.free_chunks.pop() {
            Some(i) => i as usize,
            None => {
                self.chunks.push(Box::new([]));
                self.chunks.len() - 1
            }
        };
        assert!(idx < (1 << (32 - CHUNK_SHIFT)) - 1, "store is full: more than 32 GiB of records in one shard");
        // vec![0; n] comes from calloc: pages are only touched when records land.
        self.chunks[idx] = vec![0u64; CHUNK_WORDS].into_boxed_slice();
        self.total_words += CHUNK_WORDS;
        self.bump = (idx as u32) << CHUNK_SHIFT;
        self.bump_left = CHUNK_WORDS;
    }

    fn push_free(&mut self, h: u32, class: usize) {
        let next = self.free[class];
        let w = self.words_mut(h);
        w[0] = FREE_KEY_LEN;
        w[1] = next as u64;
        self.free[class] = h;
    }

    fn release(&mut self, h: u32) {
        let class = self.class_of_record(h);
        if class == JUMBO_CLASS {
            let idx = h >> CHUNK_SHIFT;
            let len = self.chunks[idx as usize].len();
            self.live_words -= len;
            self.total_words -= len;
            self.chunks[idx as usize] = Box::new([]);
            self.free_chunks.push(idx);
        } else {
            self.live_words -= class_words(class as usize) as usize;
            self.push_free(h, class as usize);
        }
    }

    /// Writes a record (header, key, value) at `h`.
    fn write(&mut self, h: u32, class: u8, key: &[u8], value: &[u8]) {
        let w = self.words_mut(h);
        w[0] = header(key.len(), class, value.len());
        let body: &mut [u8] = bytemuck::cast_slice_mut(&mut w[1..]);
        body[..key.len()].copy_from_slice(key);
        body[key.len()..key.len() + value.len()].copy_from_slice(value);
    }

    /// Replaces the value of the record at `h` in place (same class).
    fn overwrite_value(&mut self, h: u32, key_len: usize, class: u8, value: &[u8]) {
        let w = self.words_mut(h);
        w[0] = header(key_len, class, value.len());
        let body: &mut [u8] = bytemuck::cast_slice_mut(&mut w[1..]);
        body[key_len..key_len + value.len()].copy_from_slice(value);
    }
}

/// A record that probably holds a key (see [`Store::candidate`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate(u32);

/// Memory the store holds, for stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreMemory {
    /// Bytes of chunks allocated for records.
    pub slab_bytes: usize,
    /// Bytes of those used by live records (size-class rounding included).
    pub live_bytes: usize,
    /// Bytes of the hash table.
    pub table_bytes: usize,
}

/// Where the hash table keeps its control bytes, so that the lines a
/// lookup will read can be prefetched before the lookup
/// ([`Store::prefetch_lookup`]).
///
/// hashbrown does not expose these addresses; they follow from its layout
/// (buckets stored downwards from the control bytes, bucket `i` at
/// `ctrl - (i + 1) * size_of::<u32>()`, a lookup of `hash` starting at
/// bucket `hash & mask`), learned from one bucket's address and index after
/// every insert (the only operation that can move the table). Used only for
/// prefetch hints, which never fault: should hashbrown's layout change, the
/// hints would miss and lookups stay correct — and a test
/// (`lookup_lines_match_hashbrowns_layout`) would say so.
#[derive(Clone, Copy, Debug)]
struct TableLines {
    /// Address of control byte 0 (= the end of bucket 0).
    ctrl: usize,
    /// Buckets − 1.
    mask: usize,
}

impl TableLines {
    /// Address of the control byte and of the bucket where a lookup of
    /// `hash` starts.
    #[inline(always)]
    fn home(self, hash: u64) -> (usize, usize) {
        let pos = hash as usize & self.mask;
        (self.ctrl.wrapping_add(pos), self.ctrl.wrapping_sub((pos + 1) * std::mem::size_of::<u32>()))
    }
}

/// One shard's key-value map. Single-threaded by design: each shard owns one.
pub struct Store {
    table: HashTable<u32>,
    slab: Slab,
    hasher: foldhash::fast::RandomState,
    /// The table's lines, once it has an entry.
    lines: Option<TableLines>,
}

impl Default for Store {
    fn default() -> Self {
        Store::with_capacity(0)
    }
}

impl Store {
    /// An empty store with room for `keys` keys before the table grows.
    pub fn with_capacity(keys: usize) -> Store {
        Store { table: HashTable::with_capacity(keys), slab: Slab::new(), hasher: Default::default(), lines: None }
    }

    /// Starts loading the table's control group and bucket line where a
    /// lookup of `hash` begins. Called for a group of keys before their
    /// lookups, it lets those cache misses overlap instead of each lookup
    /// waiting for two in turn.
    #[inline]
    pub fn prefetch_lookup(&self, hash: u64) {
        #[cfg(target_arch = "x86_64")]
        if let Some(lines) = self.lines {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let (ctrl, bucket) = lines.home(hash);
            // SAFETY: SSE is part of the x86_64 baseline, and a prefetch is a
            // hint that never faults, whatever the address.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(std::ptr::without_provenance(ctrl));
                _mm_prefetch::<_MM_HINT_T0>(std::ptr::without_provenance(bucket));
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = hash;
    }

    /// The table hash of `key`.
    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The record that probably holds `key` (hash `hash`), found without
    /// reading any record: the first entry whose hashbrown tag matches. Its
    /// first lines are prefetched, so a later [`Store::get_at`] finds them
    /// in cache. Looking up a group of keys this way lets their cache misses
    /// overlap instead of queueing one behind another.
    #[inline]
    pub fn candidate(&self, hash: u64) -> Option<Candidate> {
        let slab = &self.slab;
        self.table
            .find(hash, |&h| {
                slab.prefetch(h);
                true
            })
            .map(|&h| Candidate(h))
    }

    /// The value of `key` if `candidate` is its record (else `None`: the
    /// candidate was a tag collision, or a write since moved or freed it —
    /// ask [`Store::get`]).
    #[inline]
    pub fn get_at(&self, key: &[u8], candidate: Candidate) -> Option<&[u8]> {
        let (k, v) = self.slab.key_value_checked(candidate.0)?;
        key_eq(k, key).then_some(v)
    }

    /// The value stored under `key`.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.get_hashed(self.hash(key), key)
    }

    /// [`Store::get`] with the hash already computed.
    #[inline]
    pub fn get_hashed(&self, hash: u64, key: &[u8]) -> Option<&[u8]> {
        let slab = &self.slab;
        // Decode the record once: the matching candidate hands out its value.
        let mut found = None;
        self.table.find(hash, |&h| {
            let (k, v) = slab.key_value(h);
            let hit = key_eq(k, key);
            if hit {
                found = Some(v);
            }
            hit
        })?;
        found
    }

    /// Sets `key` to `value`. Returns true if the key was new.
    ///
    /// Keys longer than [`MAX_KEY_LEN`] are a caller bug (the wire limits
    /// forbid them); they panic rather than corrupt the record header.
    #[inline]
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> bool {
        assert!(key.len() <= MAX_KEY_LEN, "key of {} bytes exceeds the store's {MAX_KEY_LEN}", key.len());
        let hash = self.hash(key);
        let words = record_words(key.len(), value.len());
        let Store { table, slab, hasher, lines } = self;
        match table.find_entry(hash, |&h| key_eq(slab.key(h), key)) {
            Ok(mut entry) => {
                let h = *entry.get();
                let class = slab.class_of_record(h);
                let same_class = if class == JUMBO_CLASS {
                    words > JUMBO_WORDS && slab.chunks[(h >> CHUNK_SHIFT) as usize].len() == words
                } else {
                    words <= JUMBO_WORDS && class as usize == class_of(words as u32)
                };
                if same_class {
                    slab.overwrite_value(h, key.len(), class, value);
                } else {
                    let (nh, nclass) = slab.alloc(words);
                    slab.write(nh, nclass, key, value);
                    slab.release(h);
                    *entry.get_mut() = nh;
                }
                false
            }
            Err(_) => {
                let (h, class) = slab.alloc(words);
                slab.write(h, class, key, value);
                let slab = &*slab;
                let entry = table.insert_unique(hash, h, |&h| hasher.hash_one(slab.key(h)));
                // The insert may have moved the table: learn where it is now.
                let (index, at) = (entry.bucket_index(), entry.get() as *const u32 as usize);
                let mask = entry.into_table().num_buckets() - 1;
                *lines = Some(TableLines { ctrl: at + (index + 1) * std::mem::size_of::<u32>(), mask });
                true
            }
        }
    }

    /// Removes `key`. Returns true if it was present.
    #[inline]
    pub fn delete(&mut self, key: &[u8]) -> bool {
        let hash = self.hash(key);
        let Store { table, slab, .. } = self;
        match table.find_entry(hash, |&h| key_eq(slab.key(h), key)) {
            Ok(entry) => {
                let (h, _) = entry.remove();
                slab.release(h);
                true
            }
            Err(_) => false,
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True if the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Memory held, by part.
    pub fn memory(&self) -> StoreMemory {
        StoreMemory {
            slab_bytes: self.slab.total_words * 8,
            live_bytes: self.slab.live_words * 8,
            table_bytes: self.table.allocation_size(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn classes_are_monotone_and_fit() {
        let mut last = 0;
        for words in 1..=JUMBO_WORDS as u32 {
            let c = class_of(words);
            assert!(class_words(c) >= words.max(MIN_WORDS), "class {c} too small for {words}");
            assert!(c >= last);
            assert!(c < CLASSES);
            if c > 0 {
                assert!(class_words(c - 1) < words.max(MIN_WORDS), "{words} words could use class {}", c - 1);
            }
            last = c;
        }
    }

    #[test]
    fn short_key_equality() {
        let keys: Vec<Vec<u8>> = (0..40u8).map(|n| (0..n).collect()).collect();
        for a in &keys {
            for b in &keys {
                assert_eq!(key_eq(a, b), a == b);
                let mut c = b.clone();
                if let Some(last) = c.last_mut() {
                    *last ^= 0x40;
                    assert_eq!(key_eq(a, &c), *a == c);
                }
                if c.len() > 4 {
                    let mid = c.len() / 2;
                    c[mid] ^= 1;
                    assert_eq!(key_eq(a, &c), *a == c);
                }
            }
        }
    }

    #[test]
    fn lookup_lines_match_hashbrowns_layout() {
        let mut s = Store::default();
        assert!(s.lines.is_none());
        for i in 0..100_000u32 {
            s.put(format!("key{i}").as_bytes(), b"v");
        }
        let lines = s.lines.expect("learned on insert");
        assert_eq!(lines.mask + 1, s.table.num_buckets());
        let mut near_home = 0;
        for i in 0..100_000u32 {
            let key = format!("key{i}");
            let hash = s.hash(key.as_bytes());
            let index = s.table.find_bucket_index(hash, |&h| s.slab.key(h) == key.as_bytes()).expect("present");
            let at = s.table.get_bucket(index).expect("full") as *const u32 as usize;
            assert_eq!(at, lines.ctrl - (index + 1) * 4, "bucket {index} is not where the layout puts it");
            let (ctrl, bucket) = lines.home(hash);
            let pos = ctrl - lines.ctrl;
            assert_eq!(bucket, lines.ctrl - (pos + 1) * 4);
            // Most keys sit in the group their lookup starts with.
            if index.wrapping_sub(pos) & lines.mask < 16 {
                near_home += 1;
            }
        }
        assert!(near_home >= 90_000, "only {near_home} of 100,000 keys in their home group");
    }

    #[test]
    fn put_get_delete() {
        let mut s = Store::default();
        assert!(s.put(b"a", b"1"));
        assert!(!s.put(b"a", b"22"));
        assert_eq!(s.get(b"a"), Some(&b"22"[..]));
        assert_eq!(s.get(b"b"), None);
        assert!(s.delete(b"a"));
        assert!(!s.delete(b"a"));
        assert_eq!(s.get(b"a"), None);
        assert!(s.is_empty());
    }

    #[test]
    fn same_size_updates_reuse_memory() {
        let mut s = Store::default();
        for i in 0..1000u32 {
            s.put(i.to_string().as_bytes(), &[1u8; 128]);
        }
        let before = s.memory();
        for round in 0..5u8 {
            for i in 0..1000u32 {
                s.put(i.to_string().as_bytes(), &[round; 128]);
            }
        }
        assert_eq!(s.memory(), before);
        assert_eq!(s.get(b"999"), Some(&[4u8; 128][..]));
    }

    #[test]
    fn deleted_records_are_reused() {
        let mut s = Store::default();
        for i in 0..10_000u32 {
            s.put(i.to_string().as_bytes(), &[7u8; 100]);
        }
        let full = s.memory().live_bytes;
        for i in 0..10_000u32 {
            s.delete(i.to_string().as_bytes());
        }
        assert_eq!(s.memory().live_bytes, 0);
        let slab = s.memory().slab_bytes;
        for i in 0..10_000u32 {
            s.put(format!("k{i}").as_bytes(), &[8u8; 99]);
        }
        assert_eq!(s.memory().slab_bytes, slab, "no new chunk while free records fit");
        assert_eq!(s.memory().live_bytes, full);
    }

    #[test]
    fn jumbo_records() {
        let mut s = Store::default();
        let big = vec![3u8; 3 << 20];
        s.put(b"big", &big);
        s.put(b"small", b"x");
        assert_eq!(s.get(b"big").map(<[u8]>::len), Some(3 << 20));
        let with_big = s.memory().slab_bytes;
        s.put(b"big", b"now small");
        assert!(s.memory().slab_bytes < with_big, "jumbo chunk returned");
        assert_eq!(s.get(b"big"), Some(&b"now small"[..]));
        s.put(b"big", &big);
        s.put(b"big2", &big[..1 << 20]);
        s.delete(b"big");
        assert_eq!(s.get(b"big2").map(<[u8]>::len), Some(1 << 20));
        assert_eq!(s.get(b"small"), Some(&b"x"[..]));
    }

    #[derive(Clone, Debug)]
    enum ModelOp {
        Put(u8, usize),
        Delete(u8),
        Get(u8),
    }

    fn model_op() -> impl Strategy<Value = ModelOp> {
        let size = prop_oneof![0usize..40, 100usize..600, Just(5000usize), Just(300_000usize)];
        prop_oneof![
            4 => (any::<u8>(), size).prop_map(|(k, n)| ModelOp::Put(k, n)),
            1 => any::<u8>().prop_map(ModelOp::Delete),
            3 => any::<u8>().prop_map(ModelOp::Get),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn behaves_like_a_hashmap(ops in prop::collection::vec(model_op(), 1..400)) {
            let mut s = Store::default();
            let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
            for (seq, op) in ops.into_iter().enumerate() {
                match op {
                    ModelOp::Put(k, n) => {
                        let key = vec![b'k'; k as usize % 50 + 1];
                        let value: Vec<u8> = (0..n).map(|i| (i as u8) ^ (seq as u8)).collect();
                        prop_assert_eq!(s.put(&key, &value), !model.contains_key(&key));
                        model.insert(key, value);
                    }
                    ModelOp::Delete(k) => {
                        let key = vec![b'k'; k as usize % 50 + 1];
                        prop_assert_eq!(s.delete(&key), model.remove(&key).is_some());
                    }
                    ModelOp::Get(k) => {
                        let key = vec![b'k'; k as usize % 50 + 1];
                        prop_assert_eq!(s.get(&key), model.get(&key).map(Vec::as_slice));
                    }
                }
            }
            prop_assert_eq!(s.len(), model.len());
            for (k, v) in &model {
                prop_assert_eq!(s.get(k), Some(v.as_slice()));
            }
        }
    }
}

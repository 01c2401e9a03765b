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
//!
//! # Limits
//!
//! Nothing a caller passes can make the store panic or abort. A write that
//! needs memory is refused with a [`StoreError`] instead when:
//! - it would take the store past its byte limit ([`StoreLimits::max_bytes`],
//!   a shard's share of `maxmemory`): the bytes counted are the chunks
//!   taken from the allocator and the hash table, and a write is refused
//!   *before* it allocates, so the store never holds more than its limit;
//! - every chunk handle is taken (handles are 32-bit word indices: at most
//!   [`MAX_CHUNKS`] chunks, 32 GiB, per shard; a jumbo record uses a whole
//!   chunk handle);
//! - the allocator itself refuses (every allocation is fallible).
//!
//! A refused write changes nothing: the key keeps its old value. Reads and
//! deletes never need memory.

use hashbrown::HashTable;
use std::alloc::Layout;
use std::hash::BuildHasher;

/// Words per regular chunk (2 MiB).
const CHUNK_SHIFT: u32 = 18;
const CHUNK_WORDS: usize = 1 << CHUNK_SHIFT;
/// Records above this many words get a chunk of their own.
const JUMBO_WORDS: usize = CHUNK_WORDS / 4;
/// Largest record, in bytes, that lives in a regular chunk: larger ones
/// (header, key and value) are jumbo records with a chunk of their own.
pub const JUMBO_RECORD_BYTES: usize = JUMBO_WORDS * 8;
/// Class marker for records in their own chunk.
const JUMBO_CLASS: u8 = u8::MAX;
/// Marker in the key-length field of a free record.
const FREE_KEY_LEN: u64 = 0xFFFF;
/// "No record" handle.
const NIL: u32 = u32::MAX;
/// Most chunks one store can address: a handle is a 32-bit word index, so
/// chunk indices have 32 − 18 = 14 bits; the last index is left unused.
pub const MAX_CHUNKS: u32 = (1 << (32 - CHUNK_SHIFT)) - 1;
/// Longest key the record header can describe.
pub const MAX_KEY_LEN: usize = 0xFFFE;
/// Longest value the record header can describe.
pub const MAX_VALUE_LEN: usize = u32::MAX as usize;
/// Bytes of one regular chunk.
pub const CHUNK_BYTES: usize = CHUNK_WORDS * 8;
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
    /// Chunk indices this slab may use (at most [`MAX_CHUNKS`]).
    max_chunks: u32,
    /// Records freed so far (wrapping; the store's [`Epoch`]): a
    /// [`Candidate`] taken before a free may name memory that now holds
    /// something else.
    frees: u32,
}

/// A zeroed block of `words` words from the global allocator, or `None` if
/// it refuses. (Zeroed allocation lets the allocator hand out untouched
/// pages: a chunk costs memory only as records land in it.)
fn zeroed_words(words: usize) -> Option<Box<[u64]>> {
    let layout = Layout::array::<u64>(words).ok()?;
    if layout.size() == 0 {
        return Some(Box::new([]));
    }
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<u64>();
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` is a fresh global allocation of exactly `words` zeroed
    // `u64`s with the layout `Box<[u64]>` frees it with.
    Some(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, words)) })
}

impl Slab {
    fn new(max_chunks: u32) -> Slab {
        Slab {
            chunks: Vec::new(),
            bump: 0,
            bump_left: 0,
            free: vec![NIL; CLASSES],
            free_chunks: Vec::new(),
            live_words: 0,
            total_words: 0,
            max_chunks: max_chunks.min(MAX_CHUNKS),
            frees: 0,
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

    /// Bytes [`Slab::alloc`] would take from the allocator for a record of
    /// `words` words (0 when a free record or the current chunk has room),
    /// or `Full` if it would need a chunk and no handle is left.
    #[inline]
    fn alloc_need(&self, words: usize) -> Result<usize, StoreError> {
        let need = if words > JUMBO_WORDS {
            words * 8
        } else {
            let class = class_of(words as u32);
            if self.free[class] != NIL || self.bump_left >= class_words(class) as usize { 0 } else { CHUNK_BYTES }
        };
        if need > 0 && self.free_chunks.is_empty() && self.chunks.len() >= self.max_chunks as usize {
            return Err(StoreError::Full { chunks: self.max_chunks });
        }
        Ok(need)
    }

    /// A chunk index for a new chunk (reusing a released one first).
    fn take_chunk_index(&mut self) -> Result<usize, StoreError> {
        if let Some(i) = self.free_chunks.pop() {
            return Ok(i as usize);
        }
        if self.chunks.len() >= self.max_chunks as usize {
            return Err(StoreError::Full { chunks: self.max_chunks });
        }
        self.chunks.try_reserve(1).map_err(|_| StoreError::AllocFailed { bytes: size_of::<Box<[u64]>>() })?;
        self.chunks.push(Box::new([]));
        Ok(self.chunks.len() - 1)
    }

    /// Allocates a record of `words` words and returns its handle and class.
    fn alloc(&mut self, words: usize) -> Result<(u32, u8), StoreError> {
        if words > JUMBO_WORDS {
            let idx = self.take_chunk_index()?;
            let Some(chunk) = zeroed_words(words) else {
                self.free_chunks.push(idx as u32);
                return Err(StoreError::AllocFailed { bytes: words * 8 });
            };
            self.chunks[idx] = chunk;
            self.total_words += words;
            self.live_words += words;
            return Ok(((idx as u32) << CHUNK_SHIFT, JUMBO_CLASS));
        }
        let class = class_of(words as u32);
        let cw = class_words(class) as usize;
        let head = self.free[class];
        if head != NIL {
            self.free[class] = self.words(head)[1] as u32;
            self.live_words += cw;
            return Ok((head, class as u8));
        }
        if self.bump_left < cw {
            self.new_chunk()?;
        }
        let h = self.bump;
        self.bump += cw as u32;
        self.bump_left -= cw;
        self.live_words += cw;
        Ok((h, class as u8))
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

    /// Starts a new regular chunk (the rest of the current one goes to the
    /// free lists). On failure nothing has changed.
    fn new_chunk(&mut self) -> Result<(), StoreError> {
        let idx = self.take_chunk_index()?;
        let Some(chunk) = zeroed_words(CHUNK_WORDS) else {
            self.free_chunks.push(idx as u32);
            return Err(StoreError::AllocFailed { bytes: CHUNK_BYTES });
        };
        self.retire_tail();
        self.chunks[idx] = chunk;
        self.total_words += CHUNK_WORDS;
        self.bump = (idx as u32) << CHUNK_SHIFT;
        self.bump_left = CHUNK_WORDS;
        Ok(())
    }

    fn push_free(&mut self, h: u32, class: usize) {
        let next = self.free[class];
        let w = self.words_mut(h);
        w[0] = FREE_KEY_LEN;
        w[1] = next as u64;
        self.free[class] = h;
    }

    fn release(&mut self, h: u32) {
        self.frees = self.frees.wrapping_add(1);
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

/// A record that probably holds a key (see [`Store::candidate`]), valid
/// only while the store's [`Epoch`] is the one it was taken in:
/// [`Store::get_at`] checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate(u32);

/// How many records the store has freed (wrapping): candidates taken in one
/// epoch may name memory that holds something else, or is gone, in the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Epoch(u32);

/// Why the store refused a write. Nothing was changed. Small and `Copy`:
/// it is returned on the hot path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The write needs memory past the store's byte limit.
    #[error("out of memory: the write needs {need} more bytes, the store holds {used} of its limit of {limit}")]
    OutOfMemory {
        /// Bytes the write would allocate.
        need: usize,
        /// Bytes held now.
        used: usize,
        /// The limit.
        limit: usize,
    },
    /// Every chunk handle is in use.
    #[error("the store is full: all {chunks} chunks are in use")]
    Full {
        /// Chunks the store may use.
        chunks: u32,
    },
    /// The allocator refused.
    #[error("the allocator refused {bytes} bytes")]
    AllocFailed {
        /// Bytes asked for.
        bytes: usize,
    },
    /// The key is longer than [`MAX_KEY_LEN`].
    #[error("key of {len} bytes exceeds the store's {MAX_KEY_LEN}")]
    KeyTooLong {
        /// The key's length.
        len: usize,
    },
    /// The value is longer than [`MAX_VALUE_LEN`].
    #[error("value of {len} bytes exceeds the store's {MAX_VALUE_LEN}")]
    ValueTooLong {
        /// The value's length.
        len: usize,
    },
}

impl StoreError {
    /// True for the errors that mean "no room": out of memory, full, or
    /// refused by the allocator.
    pub fn is_no_room(self) -> bool {
        matches!(self, StoreError::OutOfMemory { .. } | StoreError::Full { .. } | StoreError::AllocFailed { .. })
    }
}

/// What a store may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// Bytes of chunks and table the store may hold; `None`: no limit.
    pub max_bytes: Option<usize>,
    /// Chunk handles the store may use (at most [`MAX_CHUNKS`]; tests set
    /// fewer to reach the limit quickly).
    pub max_chunks: u32,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits { max_bytes: None, max_chunks: MAX_CHUNKS }
    }
}

/// Memory the store holds, for stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreMemory {
    /// Bytes of chunks allocated for records.
    pub slab_bytes: usize,
    /// Bytes of those used by live records (size-class rounding included).
    pub live_bytes: usize,
    /// Bytes of the hash table.
    pub table_bytes: usize,
    /// The byte limit, if any.
    pub limit: Option<usize>,
}

impl StoreMemory {
    /// Bytes counted against the limit: chunks and table.
    pub fn used(&self) -> usize {
        self.slab_bytes + self.table_bytes
    }
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
    /// Byte limit (see [`StoreLimits::max_bytes`]).
    max_bytes: Option<usize>,
}

impl Default for Store {
    fn default() -> Self {
        Store::with_capacity(0)
    }
}

/// Bytes hashbrown allocates for a table of `buckets` `u32` entries: the
/// entries (rounded up to the control bytes' 16-byte alignment), one control
/// byte per bucket, and one group of trailing control bytes.
fn table_bytes_for(buckets: usize) -> usize {
    (buckets * size_of::<u32>()).next_multiple_of(16) + buckets + 16
}

/// Items a table of `buckets` buckets holds before it must grow
/// (hashbrown's load factor: 7/8, one empty bucket in tables of ≤ 8).
fn full_capacity(buckets: usize) -> usize {
    if buckets <= 8 { buckets.saturating_sub(1) } else { buckets / 8 * 7 }
}

/// Refuses an allocation of `need` bytes that would take `used` past `limit`.
#[inline]
fn check_room(limit: Option<usize>, used: usize, need: usize) -> Result<(), StoreError> {
    match limit {
        Some(limit) if need > 0 && used.saturating_add(need) > limit => {
            Err(StoreError::OutOfMemory { need, used, limit })
        }
        _ => Ok(()),
    }
}

/// Bytes `table` would allocate to take one more key: 0 while it has room
/// or can rehash in place (it is mostly tombstones), else the size of the
/// table it grows into. This follows hashbrown 0.17's policy
/// (`reserve_rehash`); the test `table_growth_matches_hashbrown` checks it.
fn table_growth(table: &HashTable<u32>) -> usize {
    let len = table.len();
    if table.capacity() > len {
        return 0;
    }
    let full = full_capacity(table.num_buckets());
    if len < full / 2 {
        return 0;
    }
    let cap = (len + 1).max(full + 1);
    let buckets = match cap {
        0..4 => 4,
        4..8 => 8,
        8..15 => 16,
        _ => (cap * 8 / 7).next_power_of_two(),
    };
    table_bytes_for(buckets)
}

impl Store {
    /// An empty store with room for `keys` keys before the table grows, and
    /// no limits.
    ///
    /// # Panics
    /// If the allocator refuses the table (use [`Store::with_limits`] to get
    /// an error instead).
    pub fn with_capacity(keys: usize) -> Store {
        Store::with_limits(keys, StoreLimits::default()).unwrap_or_else(|e| panic!("store of {keys} keys: {e}"))
    }

    /// An empty store with room for `keys` keys, within `limits`.
    pub fn with_limits(keys: usize, limits: StoreLimits) -> Result<Store, StoreError> {
        let mut store = Store {
            table: HashTable::new(),
            slab: Slab::new(limits.max_chunks),
            hasher: Default::default(),
            lines: None,
            max_bytes: limits.max_bytes,
        };
        if keys > 0 {
            let buckets = (keys.max(15) * 8 / 7).next_power_of_two();
            check_room(store.max_bytes, 0, table_bytes_for(buckets))?;
            let hasher = store.hasher.clone();
            store
                .table
                .try_reserve(keys, |&h| hasher.hash_one(store.slab.key(h)))
                .map_err(|_| StoreError::AllocFailed { bytes: table_bytes_for(buckets) })?;
        }
        Ok(store)
    }

    /// An empty store with the same hasher and limits: given the same
    /// operations it makes the same decisions (the model tests compare a
    /// grouped execution with a sequential one this way).
    #[cfg(any(test, feature = "model"))]
    pub fn twin(&self) -> Result<Store, StoreError> {
        Ok(Store {
            table: HashTable::new(),
            slab: Slab::new(self.slab.max_chunks),
            hasher: self.hasher.clone(),
            lines: None,
            max_bytes: self.max_bytes,
        })
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

    /// The epoch candidates taken now belong to (one read for a whole group
    /// of them).
    #[inline]
    pub fn epoch(&self) -> Epoch {
        Epoch(self.slab.frees)
    }

    /// The value of `key` if `candidate`, taken in epoch `taken`, is its
    /// record; else `None`: the candidate was a tag collision, or the store
    /// has freed a record since (the candidate's memory may now hold
    /// anything, or be gone) — ask [`Store::get`]. A candidate is never read
    /// after a free.
    #[inline]
    pub fn get_at(&self, key: &[u8], candidate: Candidate, taken: Epoch) -> Option<&[u8]> {
        if taken.0 != self.slab.frees {
            return None;
        }
        let (k, v) = self.slab.key_value(candidate.0);
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
    /// Refused, with nothing changed, when the write needs memory the
    /// limits do not allow, or the key or value is longer than a record can
    /// describe (see [`StoreError`]).
    #[inline]
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<bool, StoreError> {
        if key.len() > MAX_KEY_LEN {
            return Err(StoreError::KeyTooLong { len: key.len() });
        }
        if value.len() > MAX_VALUE_LEN {
            return Err(StoreError::ValueTooLong { len: value.len() });
        }
        let hash = self.hash(key);
        let words = record_words(key.len(), value.len());
        // Only a store with a limit counts its bytes (in-place updates never do).
        let table_bytes = if self.max_bytes.is_some() { self.table.allocation_size() } else { 0 };
        let Store { table, slab, hasher, lines, max_bytes } = self;
        let room = |slab: &Slab, need: usize| check_room(*max_bytes, slab.total_words * 8 + table_bytes, need);
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
                    room(slab, slab.alloc_need(words)?)?;
                    let (nh, nclass) = slab.alloc(words)?;
                    slab.write(nh, nclass, key, value);
                    *entry.get_mut() = nh;
                    slab.release(h);
                }
                Ok(false)
            }
            Err(absent) => {
                let table = absent.into_table();
                let table_need = table_growth(table);
                room(slab, slab.alloc_need(words)?.saturating_add(table_need))?;
                // Grow the table first, fallibly: the insert below then
                // cannot allocate, and a refused record leaves no trace.
                table
                    .try_reserve(1, |&h| hasher.hash_one(slab.key(h)))
                    .map_err(|_| StoreError::AllocFailed { bytes: table_need.max(1) })?;
                let (h, class) = slab.alloc(words)?;
                slab.write(h, class, key, value);
                let slab = &*slab;
                let entry = table.insert_unique(hash, h, |&h| hasher.hash_one(slab.key(h)));
                // The insert may have moved the table: learn where it is now.
                let (index, at) = (entry.bucket_index(), entry.get() as *const u32 as usize);
                let mask = entry.into_table().num_buckets() - 1;
                *lines = Some(TableLines { ctrl: at + (index + 1) * std::mem::size_of::<u32>(), mask });
                Ok(true)
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
            limit: self.max_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
            s.put(format!("key{i}").as_bytes(), b"v").expect("put");
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
        assert_eq!(s.put(b"a", b"1"), Ok(true));
        assert_eq!(s.put(b"a", b"22"), Ok(false));
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
            s.put(i.to_string().as_bytes(), &[1u8; 128]).expect("put");
        }
        let before = s.memory();
        for round in 0..5u8 {
            for i in 0..1000u32 {
                s.put(i.to_string().as_bytes(), &[round; 128]).expect("put");
            }
        }
        assert_eq!(s.memory(), before);
        assert_eq!(s.get(b"999"), Some(&[4u8; 128][..]));
    }

    #[test]
    fn deleted_records_are_reused() {
        let mut s = Store::default();
        for i in 0..10_000u32 {
            s.put(i.to_string().as_bytes(), &[7u8; 100]).expect("put");
        }
        let full = s.memory().live_bytes;
        for i in 0..10_000u32 {
            s.delete(i.to_string().as_bytes());
        }
        assert_eq!(s.memory().live_bytes, 0);
        let slab = s.memory().slab_bytes;
        for i in 0..10_000u32 {
            s.put(format!("k{i}").as_bytes(), &[8u8; 99]).expect("put");
        }
        assert_eq!(s.memory().slab_bytes, slab, "no new chunk while free records fit");
        assert_eq!(s.memory().live_bytes, full);
    }

    #[test]
    fn jumbo_records() {
        let mut s = Store::default();
        let big = vec![3u8; 3 << 20];
        s.put(b"big", &big).expect("put");
        s.put(b"small", b"x").expect("put");
        assert_eq!(s.get(b"big").map(<[u8]>::len), Some(3 << 20));
        let with_big = s.memory().slab_bytes;
        s.put(b"big", b"now small").expect("put");
        assert!(s.memory().slab_bytes < with_big, "jumbo chunk returned");
        assert_eq!(s.get(b"big"), Some(&b"now small"[..]));
        s.put(b"big", &big).expect("put");
        s.put(b"big2", &big[..1 << 20]).expect("put");
        s.delete(b"big");
        assert_eq!(s.get(b"big2").map(<[u8]>::len), Some(1 << 20));
        assert_eq!(s.get(b"small"), Some(&b"x"[..]));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(512)
        ))]
        /// The store's own API against a `HashMap`, under tiny and default
        /// limits (see `crate::model`).
        #[test]
        fn behaves_like_a_hashmap(scenario in crate::model::strategy::scenario()) {
            if let Err(e) = crate::model::check_store(&scenario) {
                prop_assert!(false, "{}", e);
            }
        }
    }

    #[test]
    fn a_candidate_taken_before_a_free_is_never_read() {
        let mut s = Store::default();
        let big = vec![5u8; 600 << 10];
        s.put(b"k", &big).expect("put");
        let (c, e) = (s.candidate(s.hash(b"k")).expect("candidate"), s.epoch());
        assert_eq!(s.get_at(b"k", c, e).map(<[u8]>::len), Some(big.len()));
        s.delete(b"k");
        // The jumbo chunk is gone; the candidate must not be followed.
        assert_eq!(s.get_at(b"k", c, e), None);
        s.put(b"k", &big).expect("put");
        let (c, e) = (s.candidate(s.hash(b"k")).expect("candidate"), s.epoch());
        s.put(b"k", b"small now").expect("put");
        assert_eq!(s.get_at(b"k", c, e), None, "the record moved");
        assert_eq!(s.get(b"k"), Some(&b"small now"[..]));
    }

    #[test]
    fn a_full_store_refuses_instead_of_wrapping_its_chunk_handles() {
        let mut s = Store::with_limits(0, StoreLimits { max_bytes: None, max_chunks: 5 }).expect("store");
        let value = |i: u8| vec![i; 600 << 10];
        let mut stored = 0u8;
        let refused = loop {
            match s.put(&[b'j', stored], &value(stored)) {
                Ok(_) => stored += 1,
                Err(e) => break e,
            }
            assert!(stored < 10, "five chunk handles hold at most five jumbo records");
        };
        assert_eq!(refused, StoreError::Full { chunks: 5 });
        assert_eq!(stored, 5);
        for i in 0..stored {
            assert_eq!(s.get(&[b'j', i]), Some(value(i).as_slice()), "record {i} intact");
        }
        // A small record needs a regular chunk: refused too, nothing changed.
        assert_eq!(s.put(b"small", b"x"), Err(StoreError::Full { chunks: 5 }));
        assert_eq!(s.len(), 5);
        // Deleting frees a handle for reuse.
        assert!(s.delete(&[b'j', 0]));
        s.put(b"small", b"x").expect("room again");
        assert_eq!(s.get(b"small"), Some(&b"x"[..]));
        // The real bound is what a 32-bit handle addresses.
        assert_eq!((MAX_CHUNKS as u64) << CHUNK_SHIFT, (1u64 << 32) - CHUNK_WORDS as u64);
    }

    #[test]
    fn the_memory_limit_refuses_writes_and_keeps_old_values() {
        let limit = 8 << 20;
        let mut s =
            Store::with_limits(0, StoreLimits { max_bytes: Some(limit), ..StoreLimits::default() }).expect("store");
        let mut n = 0u32;
        let err = loop {
            match s.put(n.to_string().as_bytes(), &[1u8; 128]) {
                Ok(_) => n += 1,
                Err(e) => break e,
            }
        };
        let StoreError::OutOfMemory { need, used, limit: l } = err else { panic!("{err:?}") };
        assert_eq!(l, limit);
        assert!(used + need > limit && used <= limit, "{err}");
        assert!(s.memory().used() <= limit);
        assert!(n > 40_000, "only {n} records of 128 B in 8 MiB");
        // In-place updates need no memory; a bigger value for an old key is
        // refused and the old value stays.
        s.put(b"0", &[2u8; 128]).expect("in place");
        assert!(matches!(s.put(b"1", &[3u8; 100_000]), Err(StoreError::OutOfMemory { .. })));
        assert_eq!(s.get(b"1"), Some(&[1u8; 128][..]));
        // Reads and deletes go on; deleting makes room for new keys.
        for i in 0..1000u32 {
            assert!(s.delete(i.to_string().as_bytes()));
        }
        s.put(b"new", &[4u8; 128]).expect("room after deletes");
        assert!(s.memory().used() <= limit);
    }

    #[test]
    fn keys_longer_than_a_record_describes_are_refused() {
        let mut s = Store::default();
        let key = vec![b'k'; MAX_KEY_LEN + 1];
        assert_eq!(s.put(&key, b"v"), Err(StoreError::KeyTooLong { len: MAX_KEY_LEN + 1 }));
        assert!(s.is_empty());
    }

    /// The byte limit counts the table growth a new key causes before it
    /// happens; this pins the growth policy of hashbrown that the estimate
    /// follows (the crate is pinned exactly for this and the prefetch layout).
    #[test]
    fn table_growth_matches_hashbrown() {
        let mut s = Store::default();
        let mut grew = 0;
        for i in 0..200_000u32 {
            let before = s.table.allocation_size();
            let predicted = table_growth(&s.table);
            let key = format!("key{i}");
            s.put(key.as_bytes(), b"v").expect("put");
            let after = s.table.allocation_size();
            if after != before {
                assert_eq!(predicted, after, "insert {i}: the table grew from {before} to {after} bytes");
                grew += 1;
            } else {
                assert_eq!(predicted, 0, "insert {i}: growth predicted, none happened");
            }
            // Churn: deletes leave tombstones, which later inserts rehash away in place.
            if i % 3 == 0 {
                s.delete(format!("key{}", i / 2).as_bytes());
            }
        }
        assert!(grew >= 10, "the table grew only {grew} times");
    }
}

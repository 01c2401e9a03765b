//! The shard's map: keys and values in a slab, a hash table of handles.
//!
//! This module owns the record layout; the rest of the engine sees only
//! [`Store::get`], [`Store::put`], [`Store::delete`] and the expiry, scan
//! and slot calls below, so the layout can change without touching the
//! connection code.
//!
//! # Layout
//!
//! Records live in 2 MiB chunks of 8-byte words. A record is a header word
//! (`key_len: u16`, `class: u8`, `flags: u8`, `value_len: u32`) followed by
//! the key and the value, padded to a whole word, and for a key with an
//! expiry one more word holding its time. The hash table
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
//! The one write path is [`Store::put`] / [`Store::delete`] and their
//! expiry variants: a durable log append, when it comes, goes there.
//!
//! # Expiry
//!
//! As in Redis. A key may carry an expiry time (unix milliseconds); the
//! store judges it against a clock its owner sets once per batch
//! ([`Store::set_now`]), never reading one per operation. A key whose time
//! is at or before the clock is absent to every read. Its record goes:
//! - lazily, when a write, a delete or [`Store::expire_if_due`] touches it;
//! - actively, through [`Store::expire_cycle`], which examines a bounded
//!   number of table buckets from a rotating cursor per call.
//!
//! Only a record with an expiry pays for it: a flag bit in its header
//! says the word after its value holds the time: 8 bytes per volatile key
//! for records up to 512 bytes (their size classes are whole words); a
//! larger record rounds up to its class, which often has the room already.
//! A read of a key without an expiry tests that bit in the
//! header it reads anyway, and nothing else: the key and value sit where
//! they always do. A store with no volatile key skips active expiry
//! outright.
//!
//! # Scans, slots and flushes
//!
//! [`Store::scan`] walks the table's buckets with a cursor that carries the
//! table's layout generation: a change of layout between two calls (the
//! table grew or rehashed in place) restarts the walk, so a full scan may
//! repeat keys but never misses one present throughout. [`Store::keys_in_slot`]
//! reads a per-slot count kept on insert and remove (64 KiB per store,
//! outside the byte limit like the store's other fixed parts).
//! [`Store::clear`] drops every record and returns their memory.
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
//! A refused write changes nothing: the key keeps its old value and its
//! expiry. Reads, deletes, expiry removal and clearing an expiry never need
//! memory; adding an expiry to a key may (one more word).

use crate::log::record::{Entry, Journal};
use hashbrown::HashTable;
use std::alloc::Layout;
use std::hash::BuildHasher;
use wire::slot::{SLOTS, slot_of};

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
/// Header bit (in the byte after the class) of a record with an expiry:
/// the word after the header holds its time, in unix milliseconds.
const TTL_FLAG: u64 = 1 << 24;
/// Header bit of a record a running snapshot must not write: written
/// after the snapshot began, or already saved by a write hook. Only records
/// the snapshot's walk has yet to reach carry it; the walk clears it.
const SNAP_FLAG: u64 = 1 << 25;
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
    match n {
        0 => true,
        1..=3 => a == b,
        4..=8 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        9..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

/// Eight bytes of `s` from `at`, little-endian (a plain fn marked
/// `inline(always)`: as a closure it was once left out of line, costing
/// ~45 instructions per GET).
#[inline(always)]
fn word(s: &[u8], at: usize) -> u64 {
    u64::from_le_bytes([s[at], s[at + 1], s[at + 2], s[at + 3], s[at + 4], s[at + 5], s[at + 6], s[at + 7]])
}

/// Four bytes of `s` from `at`, little-endian.
#[inline(always)]
fn half(s: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([s[at], s[at + 1], s[at + 2], s[at + 3]])
}

/// Words a record with this key and value needs (and an expiry word, if
/// `ttl`).
#[inline]
fn record_words(key_len: usize, value_len: usize, ttl: bool) -> usize {
    1 + ttl as usize + (key_len + value_len).div_ceil(8)
}

#[inline]
fn header(key_len: usize, class: u8, value_len: usize, ttl: bool) -> u64 {
    key_len as u64 | (class as u64) << 16 | if ttl { TTL_FLAG } else { 0 } | (value_len as u64) << 32
}

/// Index, in a record whose header is `head`, of the word after its key and
/// value: where a record with `TTL_FLAG` set keeps its expiry time.
#[inline(always)]
fn ttl_word(head: u64) -> usize {
    1 + ((head & 0xFFFF) as usize + (head >> 32) as usize).div_ceil(8)
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
    /// The clock expiry is judged against (unix ms; [`Store::set_now`]).
    /// It lives here, beside the records, so that a lookup's closure reaches
    /// it through the slab it holds anyway.
    now: u64,
    /// The running snapshot's walk, if one runs.
    snap: Option<Box<SnapWalk>>,
}

/// A point-in-time snapshot in progress (Dragonfly's scheme, over the
/// slab): a walk over the records in handle order, in steps between
/// batches, plus write hooks. Before a change touches a record the walk has
/// not reached yet, the hook saves the record as it was and flags it
/// ([`SNAP_FLAG`]); a record written there after the snapshot began is
/// flagged too; the walk skips (and unflags) flagged records. So every
/// record is written exactly once, as it was when the snapshot began.
struct SnapWalk {
    /// Next handle the walk looks at (a `u64`: past the last chunk is
    /// past `u32`).
    cursor: u64,
    /// Per chunk that existed at the start: the word offset its walk ends
    /// at (the bump pointer in the chunk being filled, the whole chunk
    /// otherwise; 1 for a jumbo chunk, 0 for a released one). Records
    /// beyond are newer than the snapshot.
    ends: Vec<u32>,
    /// The sequence number of the last change the snapshot holds.
    seq: u64,
    /// Records saved by the write hooks, encoded, not yet handed out.
    saved: Vec<u8>,
    /// Records written to the snapshot so far.
    records: u64,
}

/// [`SnapWalk::ends`] of a jumbo chunk (one record, at offset 0).
const JUMBO_END: u32 = u32::MAX;

impl SnapWalk {
    /// True if the walk has yet to reach `h`, a record that existed when
    /// the snapshot began (or its place then).
    #[inline]
    fn ahead(&self, h: u32) -> bool {
        let (c, off) = Slab::place(h);
        h as u64 >= self.cursor
            && self.ends.get(c).is_some_and(|&end| if end == JUMBO_END { off == 0 } else { (off as u32) < end })
    }
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
            now: 0,
            snap: None,
        }
    }

    /// Before a change to the record at `h`: a running snapshot that has
    /// not reached it yet saves it as it is now (once), and flags it.
    #[inline]
    fn snap_before(&mut self, h: u32) {
        if self.snap.is_some() {
            self.snap_save(h);
        }
    }

    #[cold]
    fn snap_save(&mut self, h: u32) {
        let Some(mut walk) = self.snap.take() else { return };
        if walk.ahead(h) {
            let head = self.header(h);
            if head & SNAP_FLAG == 0 && head & 0xFFFF != FREE_KEY_LEN {
                let (_, key, value) = self.record(h);
                let expire_at = self.expiry(h);
                crate::log::record::encode(&mut walk.saved, walk.seq, &Entry::Set { key, value, expire_at });
                walk.records += 1;
                self.words_mut(h)[0] |= SNAP_FLAG;
            }
        }
        self.snap = Some(walk);
    }

    /// After a record was written at `h`: a running snapshot that has not
    /// reached it must not write it.
    #[inline]
    fn snap_after(&mut self, h: u32) {
        if self.snap.as_ref().is_some_and(|w| w.ahead(h)) {
            self.words_mut(h)[0] |= SNAP_FLAG;
        }
    }

    /// Walks on from the snapshot's cursor, appending the records it meets
    /// (unflagged, not free) to `out` until `out` holds `budget` bytes;
    /// true when the walk is done.
    fn snap_walk(&mut self, out: &mut Vec<u8>, budget: usize) -> bool {
        let Some(mut walk) = self.snap.take() else { return true };
        let done = loop {
            if out.len() >= budget {
                break false;
            }
            let (c, off) = ((walk.cursor >> CHUNK_SHIFT) as usize, (walk.cursor as usize) & (CHUNK_WORDS - 1));
            let Some(&end) = walk.ends.get(c) else { break true };
            let next_chunk = ((c as u64) + 1) << CHUNK_SHIFT;
            // A regular record needs two words: a lone word at a chunk's
            // end is never one.
            let more = if end == JUMBO_END { off == 0 } else { off + MIN_WORDS as usize <= end as usize };
            // A jumbo chunk released since the start is empty.
            let more = more && self.chunks[c].len() > off;
            if !more {
                walk.cursor = next_chunk;
                continue;
            }
            let h = walk.cursor as u32;
            let head = self.header(h);
            let class = ((head >> 16) & 0xFF) as u8;
            let words = if class == JUMBO_CLASS { 0 } else { class_words(class as usize) as u64 };
            if head & SNAP_FLAG != 0 {
                self.words_mut(h)[0] &= !SNAP_FLAG;
            } else if head & 0xFFFF != FREE_KEY_LEN {
                let (_, key, value) = self.record(h);
                crate::log::record::encode(out, walk.seq, &Entry::Set { key, value, expire_at: self.expiry(h) });
                walk.records += 1;
            }
            walk.cursor = if words == 0 { next_chunk } else { walk.cursor + words };
        };
        self.snap = Some(walk);
        done
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

    /// The record's header, key and value.
    #[inline(always)]
    fn record(&self, h: u32) -> (u64, &[u8], &[u8]) {
        let w = self.words(h);
        let head = w[0];
        let key_len = (head & 0xFFFF) as usize;
        let value_len = (head >> 32) as usize;
        let body: &[u8] = bytemuck::cast_slice(&w[1..]);
        (head, &body[..key_len], &body[key_len..key_len + value_len])
    }

    /// The record's key and value.
    #[inline(always)]
    fn key_value(&self, h: u32) -> (&[u8], &[u8]) {
        let (_, k, v) = self.record(h);
        (k, v)
    }

    /// False if the record at `h`, whose header is `head`, has expired: a
    /// bit test of the header for a key without an expiry.
    #[inline(always)]
    fn live(&self, h: u32, head: u64) -> bool {
        head & TTL_FLAG == 0 || self.words(h)[ttl_word(head)] > self.now
    }

    /// The record's expiry time, if it has one.
    #[inline]
    fn expiry(&self, h: u32) -> Option<u64> {
        let w = self.words(h);
        (w[0] & TTL_FLAG != 0).then(|| w[ttl_word(w[0])])
    }

    /// Words the record at `h` may use without moving: its class's, or its
    /// whole chunk for a jumbo record.
    fn capacity_words(&self, h: u32) -> usize {
        match self.class_of_record(h) {
            JUMBO_CLASS => self.chunks[(h >> CHUNK_SHIFT) as usize].len(),
            class => class_words(class as usize) as usize,
        }
    }

    /// Chunk index and word offset of handle `h`.
    #[inline]
    fn place(h: u32) -> (usize, usize) {
        ((h >> CHUNK_SHIFT) as usize, (h as usize) & (CHUNK_WORDS - 1))
    }

    /// Gives the record at `h` an expiry (`Some`: its word after the value
    /// holds the time) or drops it (`None`), in place. To give one to a
    /// record without, the caller has checked that its class has room for a
    /// word more ([`Slab::capacity_words`]).
    fn set_expiry(&mut self, h: u32, at: Option<u64>) {
        let w = self.words_mut(h);
        match at {
            Some(at) => {
                w[0] |= TTL_FLAG;
                w[ttl_word(w[0])] = at;
            }
            None => w[0] &= !TTL_FLAG,
        }
    }

    /// Copies the record at `from` to the fresh record `to` (class
    /// `to_class`, room enough), with expiry `at`.
    fn relocate(&mut self, from: u32, to: u32, to_class: u8, at: Option<u64>) {
        let head = self.header(from);
        // Header and body, the old expiry word left behind.
        let words = ttl_word(head);
        let ((fc, fo), (tc, to_off)) = (Slab::place(from), Slab::place(to));
        if fc == tc {
            self.chunks[fc].copy_within(fo..fo + words, to_off);
        } else {
            // Two different chunks: borrow both.
            let (lo, hi) = self.chunks.split_at_mut(fc.max(tc));
            let (f, t) = if fc < tc { (&lo[fc], &mut hi[0]) } else { (&hi[0], &mut lo[tc]) };
            t[to_off..to_off + words].copy_from_slice(&f[fo..fo + words]);
        }
        let w = self.words_mut(to);
        w[0] = header((head & 0xFFFF) as usize, to_class, (head >> 32) as usize, false);
        self.set_expiry(to, at);
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
        // The class stays in a free record's header: a snapshot's walk
        // steps over it by its size.
        w[0] = FREE_KEY_LEN | (class as u64) << 16;
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

    /// Writes a record (header, key, value, and expiry `at` if any) at `h`.
    fn write(&mut self, h: u32, class: u8, key: &[u8], value: &[u8], at: Option<u64>) {
        let w = self.words_mut(h);
        w[0] = header(key.len(), class, value.len(), at.is_some());
        let body: &mut [u8] = bytemuck::cast_slice_mut(&mut w[1..]);
        body[..key.len()].copy_from_slice(key);
        body[key.len()..key.len() + value.len()].copy_from_slice(value);
        if let Some(at) = at {
            w[ttl_word(w[0])] = at;
        }
    }

    /// Replaces the value of the record at `h`, which has no expiry and
    /// keeps none, in place (same class).
    fn overwrite_value(&mut self, h: u32, key_len: usize, class: u8, value: &[u8]) {
        let w = self.words_mut(h);
        w[0] = header(key_len, class, value.len(), false);
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
    /// Records with an expiry (expired or not), kept on every change of a
    /// record's `TTL_FLAG`.
    volatile: usize,
    /// Records removed because they had expired, since the store began.
    expired: u64,
    /// Next bucket [`Store::expire_cycle`] examines (taken modulo the
    /// table's size, which may have changed since).
    expire_cursor: usize,
    /// Generation of the table's layout: bumped before anything that may
    /// move entries between buckets (growth, rehash in place, clear), so a
    /// [`Store::scan`] cursor from an older layout restarts.
    layout: u32,
    /// Records per Redis Cluster slot, kept on insert and remove.
    slots: Box<[u32; SLOTS]>,
    /// A durable shard's journal: every change is appended to it as a log
    /// record ([`crate::log::record`]); `None` in memory-only mode.
    journal: Option<Journal>,
    /// Set while the shard's log cannot take more records (its disk is
    /// full or failing): the executor refuses writes before they run.
    writes_refused: bool,
}

/// Bits of a [`Store::scan`] cursor that hold the next bucket index (a
/// table has at most 2^32 buckets); the bits above hold the layout
/// generation it belongs to.
const SCAN_POS_BITS: u32 = 33;
/// Buckets a [`Store::scan`] call examines per key it was asked for, at
/// most (as Redis bounds the empty buckets a SCAN visits).
const SCAN_BUCKETS_PER_KEY: usize = 10;

/// How a write treats the key's expiry.
#[derive(Clone, Copy)]
enum Ttl {
    /// The key ends with no expiry (SET).
    Clear,
    /// The key ends expiring at this time (later than now).
    Set(u64),
    /// The key keeps the expiry it has, if it is live (SET KEEPTTL).
    Keep,
}

/// What a removal found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Removed {
    /// No record for the key.
    Absent,
    /// A record that had expired (counted in [`Store::expired_total`]).
    Expired,
    /// A live key.
    Live,
}

/// A zeroed per-slot count, or `AllocFailed`.
fn slot_counts() -> Result<Box<[u32; SLOTS]>, StoreError> {
    let bytes = SLOTS * size_of::<u32>();
    let mut v = Vec::new();
    v.try_reserve_exact(SLOTS).map_err(|_| StoreError::AllocFailed { bytes })?;
    v.resize(SLOTS, 0u32);
    v.into_boxed_slice().try_into().map_err(|_| StoreError::AllocFailed { bytes })
}

/// The current unix time in milliseconds, for [`Store::set_now`] (0 if the
/// system clock reads before 1970).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
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

/// Refuses a key or value longer than a record can describe.
#[inline(always)]
fn check_lengths(key: &[u8], value: &[u8]) -> Result<(), StoreError> {
    if key.len() > MAX_KEY_LEN {
        return Err(StoreError::KeyTooLong { len: key.len() });
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(StoreError::ValueTooLong { len: value.len() });
    }
    Ok(())
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
            volatile: 0,
            expired: 0,
            expire_cursor: 0,
            layout: 0,
            slots: slot_counts()?,
            journal: None,
            writes_refused: false,
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

    /// Makes room in the table for `additional` more keys at once (a
    /// recovery that knows how many it will insert saves the rehashes of
    /// growing step by step). A hint: when the byte limit or the allocator
    /// refuses, nothing changes and the table grows as it goes.
    pub fn reserve(&mut self, additional: usize) {
        let want = self.table.len().saturating_add(additional);
        if want <= self.table.capacity() {
            return;
        }
        let buckets = (want.max(15) * 8 / 7).next_power_of_two();
        let used = self.slab.total_words * 8 + self.table.allocation_size();
        if check_room(self.max_bytes, used, table_bytes_for(buckets)).is_err() {
            return;
        }
        let Store { table, slab, hasher, layout, .. } = self;
        *layout = layout.wrapping_add(1);
        let _ = table.try_reserve(additional, |&h| hasher.hash_one(slab.key(h)));
        self.lines = None;
    }

    /// An empty store with the same hasher, limits and clock: given the
    /// same operations it makes the same decisions (the model tests compare
    /// a grouped execution with a sequential one this way).
    #[cfg(any(test, feature = "model"))]
    pub fn twin(&self) -> Result<Store, StoreError> {
        let mut slab = Slab::new(self.slab.max_chunks);
        slab.now = self.slab.now;
        Ok(Store {
            table: HashTable::new(),
            slab,
            hasher: self.hasher.clone(),
            lines: None,
            max_bytes: self.max_bytes,
            volatile: 0,
            expired: 0,
            expire_cursor: 0,
            layout: 0,
            slots: slot_counts()?,
            journal: None,
            writes_refused: false,
        })
    }

    /// True if the store holds a record for `key`, live or expired and not
    /// yet removed (the model checks follow active expiry with it).
    #[cfg(any(test, feature = "model"))]
    pub fn holds(&self, key: &[u8]) -> bool {
        self.table.find(self.hash(key), |&h| key_eq(self.slab.key(h), key)).is_some()
    }

    /// Sets the clock (unix milliseconds) that expiry is judged against. The
    /// owner sets it once per batch: no operation reads a clock itself.
    #[inline]
    pub fn set_now(&mut self, now_ms: u64) {
        self.slab.now = now_ms;
    }

    /// The clock expiry is judged against (see [`Store::set_now`]).
    #[inline]
    pub fn now(&self) -> u64 {
        self.slab.now
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
    /// An expired key reads as absent here too. (Always inlined: the
    /// executor's hot loop; left out of line it cost ~50 instructions per
    /// GET, `bench/instructions.sh`.)
    #[inline(always)]
    pub fn get_at(&self, key: &[u8], candidate: Candidate, taken: Epoch) -> Option<&[u8]> {
        if taken.0 != self.slab.frees {
            return None;
        }
        let (head, k, v) = self.slab.record(candidate.0);
        (key_eq(k, key) && self.slab.live(candidate.0, head)).then_some(v)
    }

    /// The value stored under `key` (`None` if absent or expired).
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.get_hashed(self.hash(key), key)
    }

    /// [`Store::get`] with the hash already computed.
    #[inline]
    pub fn get_hashed(&self, hash: u64, key: &[u8]) -> Option<&[u8]> {
        let slab = &self.slab;
        // Decode the record once: the matching candidate hands out its
        // value, unless it has expired (one bit test for a key without an
        // expiry).
        let mut found = None;
        self.table.find(hash, |&h| {
            let (head, k, v) = slab.record(h);
            let hit = key_eq(k, key);
            if hit && slab.live(h, head) {
                found = Some(v);
            }
            hit
        })?;
        found
    }

    /// A digest of every live key with its value and expiry, the same for
    /// two stores that hold the same (whatever their layout or the order
    /// of the writes): replicas that agree have equal digests. Walks the
    /// whole store (DEBUG DIGEST, tests).
    pub fn digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut sum = 0u64;
        let mut cursor = 0;
        loop {
            cursor = self.scan(cursor, 1024, |k| {
                let (Some(v), Some(at)) = (self.get(k), self.expiry(k)) else { return };
                // SipHash with fixed keys: equal on every node of one build.
                let mut h = std::hash::DefaultHasher::new();
                (k, v, at).hash(&mut h);
                sum = sum.wrapping_add(h.finish());
            });
            if cursor == 0 {
                return sum;
            }
        }
    }

    /// The expiry of `key`: `None` if it is absent (or expired),
    /// `Some(None)` if it has no expiry, `Some(Some(at))` if it expires at
    /// `at` (unix ms).
    pub fn expiry(&self, key: &[u8]) -> Option<Option<u64>> {
        let &h = self.table.find(self.hash(key), |&h| key_eq(self.slab.key(h), key))?;
        match self.slab.expiry(h) {
            Some(at) if at <= self.slab.now => None,
            at => Some(at),
        }
    }

    /// Sets `key` to `value`, with no expiry (as Redis SET: a key that had
    /// one loses it). Returns true if the key was new (or had expired).
    ///
    /// Refused, with nothing changed, when the write needs memory the
    /// limits do not allow, or the key or value is longer than a record can
    /// describe (see [`StoreError`]).
    #[inline]
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<bool, StoreError> {
        self.write(key, value, Ttl::Clear)
    }

    /// Sets `key` to `value` expiring at `expire_at` (unix ms; `None`: no
    /// expiry). Returns true if the key was new (or had expired).
    ///
    /// A time already due (at or before [`Store::now`]) removes the key
    /// instead, allocating nothing (as Redis does for a SET with a past
    /// EXAT). Refused as [`Store::put`] is.
    pub fn put_expiring(&mut self, key: &[u8], value: &[u8], expire_at: Option<u64>) -> Result<bool, StoreError> {
        match expire_at {
            None => self.write(key, value, Ttl::Clear),
            Some(at) if at > self.slab.now => self.write(key, value, Ttl::Set(at)),
            Some(_) => {
                check_lengths(key, value)?;
                Ok(self.remove(key) != Removed::Live)
            }
        }
    }

    /// Sets `key` to `value` keeping the key's expiry, if it is live (SET
    /// KEEPTTL, APPEND, SETRANGE, INCR). Returns true if the key was new
    /// (or had expired: it then has no expiry). Refused as [`Store::put`] is.
    pub fn put_keep_ttl(&mut self, key: &[u8], value: &[u8]) -> Result<bool, StoreError> {
        self.write(key, value, Ttl::Keep)
    }

    /// The one write path of [`Store::put`], [`Store::put_expiring`] and
    /// [`Store::put_keep_ttl`]. `Ttl::Set` times are later than now.
    #[inline(always)]
    fn write(&mut self, key: &[u8], value: &[u8], ttl: Ttl) -> Result<bool, StoreError> {
        check_lengths(key, value)?;
        let hash = self.hash(key);
        // Only a store with a limit counts its bytes (in-place updates never do).
        let table_bytes = if self.max_bytes.is_some() { self.table.allocation_size() } else { 0 };
        let now = self.slab.now;
        let Store { table, slab, hasher, lines, max_bytes, volatile, expired, layout, slots, journal, .. } = self;
        let room = |slab: &Slab, need: usize| check_room(*max_bytes, slab.total_words * 8 + table_bytes, need);
        match table.find_entry(hash, |&h| key_eq(slab.key(h), key)) {
            Ok(mut entry) => {
                let h = *entry.get();
                let head = slab.header(h);
                let old_at = if head & TTL_FLAG != 0 { Some(slab.words(h)[ttl_word(head)]) } else { None };
                let was_expired = matches!(old_at, Some(at) if at <= now);
                let at = match ttl {
                    Ttl::Clear => None,
                    Ttl::Set(at) => Some(at),
                    Ttl::Keep if was_expired => None,
                    Ttl::Keep => old_at,
                };
                let words = record_words(key.len(), value.len(), at.is_some());
                let class = ((head >> 16) & 0xFF) as u8;
                let same_class = if class == JUMBO_CLASS {
                    words > JUMBO_WORDS && slab.chunks[(h >> CHUNK_SHIFT) as usize].len() == words
                } else {
                    words <= JUMBO_WORDS && class as usize == class_of(words as u32)
                };
                if same_class {
                    slab.snap_before(h);
                    if old_at.is_none() && at.is_none() {
                        slab.overwrite_value(h, key.len(), class, value);
                    } else {
                        slab.write(h, class, key, value, at);
                    }
                    slab.snap_after(h);
                } else {
                    room(slab, slab.alloc_need(words)?)?;
                    let (nh, nclass) = slab.alloc(words)?;
                    slab.write(nh, nclass, key, value, at);
                    slab.snap_after(nh);
                    *entry.get_mut() = nh;
                    slab.snap_before(h);
                    slab.release(h);
                }
                if let Some(old) = old_at {
                    *volatile -= 1;
                    *expired += (old <= now) as u64;
                }
                *volatile += at.is_some() as usize;
                if let Some(j) = journal {
                    j.append(&Entry::Set { key, value, expire_at: at });
                }
                Ok(was_expired)
            }
            Err(absent) => {
                let at = match ttl {
                    Ttl::Set(at) => Some(at),
                    Ttl::Clear | Ttl::Keep => None,
                };
                let words = record_words(key.len(), value.len(), at.is_some());
                let table = absent.into_table();
                let table_need = table_growth(table);
                room(slab, slab.alloc_need(words)?.saturating_add(table_need))?;
                if table.capacity() <= table.len() {
                    // The reserve below grows the table or rehashes it in
                    // place: entries move between buckets.
                    *layout = layout.wrapping_add(1);
                }
                // Grow the table first, fallibly: the insert below then
                // cannot allocate, and a refused record leaves no trace.
                table
                    .try_reserve(1, |&h| hasher.hash_one(slab.key(h)))
                    .map_err(|_| StoreError::AllocFailed { bytes: table_need.max(1) })?;
                let (h, class) = slab.alloc(words)?;
                slab.write(h, class, key, value, at);
                slab.snap_after(h);
                let slab = &*slab;
                let entry = table.insert_unique(hash, h, |&h| hasher.hash_one(slab.key(h)));
                // The insert may have moved the table: learn where it is now.
                let (index, at_addr) = (entry.bucket_index(), entry.get() as *const u32 as usize);
                let mask = entry.into_table().num_buckets() - 1;
                *lines = Some(TableLines { ctrl: at_addr + (index + 1) * std::mem::size_of::<u32>(), mask });
                slots[slot_of(key) as usize & (SLOTS - 1)] += 1;
                *volatile += at.is_some() as usize;
                if let Some(j) = journal {
                    j.append(&Entry::Set { key, value, expire_at: at });
                }
                Ok(true)
            }
        }
    }

    /// Removes `key`. Returns true if it was present (a key that had
    /// expired was not: its record goes, counted as an expiry).
    #[inline]
    pub fn delete(&mut self, key: &[u8]) -> bool {
        self.remove(key) == Removed::Live
    }

    /// Removes `key`'s record, if any, and says what it was.
    fn remove(&mut self, key: &[u8]) -> Removed {
        let hash = self.hash(key);
        let Store { table, slab, .. } = self;
        match table.find_entry(hash, |&h| key_eq(slab.key(h), key)) {
            Ok(entry) => {
                let (h, _) = entry.remove();
                if let Some(j) = &mut self.journal {
                    j.append(&Entry::Delete { key });
                }
                self.unlink(h, key)
            }
            Err(_) => Removed::Absent,
        }
    }

    /// Frees the record `h` of `key`, just taken out of the table, and
    /// keeps the counts.
    fn unlink(&mut self, h: u32, key: &[u8]) -> Removed {
        let expiry = self.slab.expiry(h);
        self.slab.snap_before(h);
        self.slab.release(h);
        let slot = &mut self.slots[slot_of(key) as usize & (SLOTS - 1)];
        *slot = slot.saturating_sub(1);
        match expiry {
            None => Removed::Live,
            Some(at) => {
                self.volatile -= 1;
                if at <= self.slab.now {
                    self.expired += 1;
                    Removed::Expired
                } else {
                    Removed::Live
                }
            }
        }
    }

    /// Sets (`Some`) or clears (`None`) the expiry of a live `key`. Returns
    /// false if the key is absent (or expired: its record goes).
    ///
    /// A time already due removes the key (as Redis EXPIRE with a time in
    /// the past). Giving an expiry to a key without one may need a word
    /// more memory: refused then with nothing changed, as [`Store::put`] is.
    /// Clearing or changing an expiry never needs memory.
    pub fn set_expiry(&mut self, key: &[u8], at: Option<u64>) -> Result<bool, StoreError> {
        if let Some(t) = at
            && t <= self.slab.now
        {
            return Ok(self.remove(key) == Removed::Live);
        }
        let hash = self.hash(key);
        let table_bytes = if self.max_bytes.is_some() { self.table.allocation_size() } else { 0 };
        let now = self.slab.now;
        let Store { table, slab, max_bytes, volatile, .. } = self;
        let Ok(mut entry) = table.find_entry(hash, |&h| key_eq(slab.key(h), key)) else {
            return Ok(false);
        };
        let h = *entry.get();
        match (slab.expiry(h), at) {
            (Some(old), _) if old <= now => {
                let (h, _) = entry.remove();
                self.unlink(h, key);
                return Ok(false);
            }
            (None, None) => {}
            (Some(_), Some(at)) => {
                slab.snap_before(h);
                slab.set_expiry(h, Some(at));
                slab.snap_after(h);
            }
            (Some(_), None) => {
                // Keeps its class (and the word, unused).
                slab.snap_before(h);
                slab.set_expiry(h, None);
                slab.snap_after(h);
                *volatile -= 1;
            }
            (None, Some(at)) => {
                let (k, v) = slab.key_value(h);
                let words = record_words(k.len(), v.len(), true);
                if slab.capacity_words(h) >= words {
                    slab.snap_before(h);
                    slab.set_expiry(h, Some(at));
                    slab.snap_after(h);
                } else {
                    check_room(*max_bytes, slab.total_words * 8 + table_bytes, slab.alloc_need(words)?)?;
                    let (nh, nclass) = slab.alloc(words)?;
                    slab.relocate(h, nh, nclass, Some(at));
                    slab.snap_after(nh);
                    *entry.get_mut() = nh;
                    slab.snap_before(h);
                    slab.release(h);
                }
                *volatile += 1;
            }
        }
        if let Some(j) = &mut self.journal {
            j.append(&Entry::Expire { key, at });
        }
        Ok(true)
    }

    /// Lazy expiry: removes `key` if it has expired, and says whether it
    /// did. (Reads through `&self` only treat an expired key as absent; a
    /// caller about to touch a key calls this first.)
    pub fn expire_if_due(&mut self, key: &[u8]) -> bool {
        let hash = self.hash(key);
        let now = self.slab.now;
        let Store { table, slab, .. } = self;
        match table.find_entry(hash, |&h| key_eq(slab.key(h), key)) {
            Ok(entry) if matches!(slab.expiry(*entry.get()), Some(at) if at <= now) => {
                let (h, _) = entry.remove();
                self.unlink(h, key);
                true
            }
            _ => false,
        }
    }

    /// Active expiry: examines at most `budget` table buckets (and at most
    /// the whole table once), from where the last call stopped, removing
    /// the records that have expired; returns how many it removed. The work
    /// is bounded by `budget` whatever the table holds, and a store with no
    /// key carrying an expiry returns at once.
    pub fn expire_cycle(&mut self, budget: usize) -> usize {
        if self.volatile == 0 {
            return 0;
        }
        let buckets = self.table.num_buckets();
        let mut at = self.expire_cursor % buckets.max(1);
        let mut removed = 0;
        for _ in 0..budget.min(buckets) {
            if let Some(&h) = self.table.get_bucket(at)
                && matches!(self.slab.expiry(h), Some(t) if t <= self.slab.now)
            {
                // Removing an entry moves no other: the walk goes on.
                if let Ok(entry) = self.table.get_bucket_entry(at) {
                    let (h, _) = entry.remove();
                    // The key is read before the record is freed.
                    let slot = slot_of(self.slab.key(h)) as usize & (SLOTS - 1);
                    self.slots[slot] = self.slots[slot].saturating_sub(1);
                    self.slab.snap_before(h);
                    self.slab.release(h);
                    self.volatile -= 1;
                    self.expired += 1;
                    removed += 1;
                }
            }
            at += 1;
            if at == buckets {
                at = 0;
            }
        }
        self.expire_cursor = at;
        removed
    }

    /// Keys with an expiry set (live, or expired and not yet removed).
    pub fn volatile_len(&self) -> usize {
        self.volatile
    }

    /// Keys removed by expiry (lazy and active) since the store began.
    pub fn expired_total(&self) -> u64 {
        self.expired
    }

    /// SCAN: calls `f` with up to `count` (at least one) live keys, from
    /// `cursor` (0 starts a scan), and returns the cursor to go on with (0
    /// when the scan is complete). Examines at most
    /// `10 × count` buckets per call.
    ///
    /// A full scan (from 0 until 0 comes back) hands out every key present
    /// for its whole duration at least once. The cursor carries the table's
    /// layout generation: if the table grew or rehashed since the cursor
    /// was made, the scan starts over (repeating keys, never missing one).
    /// A cursor this store did not make is either finished or restarts.
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(&[u8])) -> u64 {
        let buckets = self.table.num_buckets();
        let tag = (self.layout as u64) & ((1 << (64 - SCAN_POS_BITS)) - 1);
        let mut at = if cursor >> SCAN_POS_BITS == tag { (cursor & ((1 << SCAN_POS_BITS) - 1)) as usize } else { 0 };
        let want = count.max(1);
        let mut left = want.saturating_mul(SCAN_BUCKETS_PER_KEY);
        let mut given = 0;
        while at < buckets && given < want && left > 0 {
            if let Some(&h) = self.table.get_bucket(at) {
                let (head, k, _) = self.slab.record(h);
                if self.slab.live(h, head) {
                    f(k);
                    given += 1;
                }
            }
            at += 1;
            left -= 1;
        }
        if at >= buckets { 0 } else { tag << SCAN_POS_BITS | at as u64 }
    }

    /// Removes every key (FLUSHDB) and returns the records' and the
    /// table's memory; the limits, the clock and [`Store::expired_total`]
    /// stay.
    pub fn clear(&mut self) {
        let (frees, now) = (self.slab.frees, self.slab.now);
        // A running snapshot takes everything it has not reached yet now,
        // and goes on with nothing left to walk.
        let mut snap = self.slab.snap.take();
        if let Some(walk) = &mut snap {
            let mut rest = std::mem::take(&mut walk.saved);
            self.slab.snap = snap.take();
            while !self.slab.snap_walk(&mut rest, usize::MAX) {}
            snap = self.slab.snap.take();
            if let Some(walk) = &mut snap {
                walk.saved = rest;
                walk.ends.clear();
            }
        }
        self.slab = Slab::new(self.slab.max_chunks);
        self.slab.snap = snap;
        // Candidates taken before are of an older epoch: never followed.
        self.slab.frees = frees.wrapping_add(1);
        self.slab.now = now;
        self.table = HashTable::new();
        self.lines = None;
        self.volatile = 0;
        self.expire_cursor = 0;
        self.layout = self.layout.wrapping_add(1);
        self.slots.fill(0);
        if let Some(j) = &mut self.journal {
            j.append(&Entry::Clear);
        }
    }

    /// Starts a point-in-time snapshot of the store as it is now, which
    /// holds every change up to sequence number `seq`: from now on
    /// [`Store::snapshot_step`] hands out its records, whatever changes run
    /// between the steps. False (and nothing changes) if one is running.
    pub fn snapshot_begin(&mut self, seq: u64) -> bool {
        if self.slab.snap.is_some() {
            return false;
        }
        let bump_chunk = (self.slab.bump_left > 0).then(|| Slab::place(self.slab.bump));
        let ends = (0..self.slab.chunks.len())
            .map(|c| {
                let chunk = &self.slab.chunks[c];
                if chunk.is_empty() {
                    0
                } else if let Some((_, off)) = bump_chunk.filter(|&(bc, _)| bc == c) {
                    off as u32
                } else if ((chunk[0] >> 16) & 0xFF) as u8 == JUMBO_CLASS {
                    JUMBO_END
                } else {
                    CHUNK_WORDS as u32
                }
            })
            .collect();
        self.slab.snap = Some(Box::new(SnapWalk { cursor: 0, ends, seq, saved: Vec::new(), records: 0 }));
        true
    }

    /// Appends the running snapshot's next records to `out` (as log
    /// records numbered with its sequence number: [`Entry::Set`] with each
    /// key's value and expiry as they were when it began), until `out`
    /// holds about `budget` bytes. Returns `Some(records in all)` when the
    /// snapshot is complete (it then ends), `None` while it goes on, or
    /// when none runs ([`Store::snapshot_running`] tells them apart).
    pub fn snapshot_step(&mut self, out: &mut Vec<u8>, budget: usize) -> Option<u64> {
        let walk = self.slab.snap.as_mut()?;
        out.append(&mut walk.saved);
        if !self.slab.snap_walk(out, budget) {
            return None;
        }
        let walk = self.slab.snap.take()?;
        out.extend_from_slice(&walk.saved);
        Some(walk.records)
    }

    /// True while a snapshot runs.
    pub fn snapshot_running(&self) -> bool {
        self.slab.snap.is_some()
    }

    /// Starts journaling: from now on every change is appended to
    /// `journal` as a log record (a durable shard attaches one after its
    /// recovery has replayed the log).
    pub fn attach_journal(&mut self, journal: Journal) {
        self.journal = Some(journal);
    }

    /// Hands the journaled records to the log writer ([`Journal::take`]);
    /// `None` when there are none, or no journal.
    pub fn journal_take(&mut self, spare: &mut Vec<u8>) -> Option<(u64, u64)> {
        self.journal.as_mut()?.take(spare)
    }

    /// The sequence number of the last change journaled (0: none, or no
    /// journal): a reply that could have observed the store now waits in
    /// `fsync always` mode until the log is durable up to it.
    #[inline]
    pub fn journal_last_seq(&self) -> u64 {
        self.journal.as_ref().map_or(0, Journal::last_seq)
    }

    /// Marks whether writes are refused now (the log's disk is full or
    /// failing): the executor answers them `NotDurable` without running them.
    pub fn refuse_writes(&mut self, refused: bool) {
        self.writes_refused = refused;
    }

    /// True while writes are refused ([`Store::refuse_writes`]).
    #[inline]
    pub fn writes_refused(&self) -> bool {
        self.writes_refused
    }

    /// Journaled bytes the writer has not taken yet.
    pub fn journal_pending(&self) -> usize {
        self.journal.as_ref().map_or(0, Journal::pending)
    }

    /// Keys (live, or expired and not yet removed) in the Redis Cluster
    /// hash slot `slot` ([`wire::slot::slot_of`]); 0 for a slot past the
    /// last. O(1): a count kept on insert and remove.
    pub fn keys_in_slot(&self, slot: u16) -> u32 {
        self.slots.get(slot as usize).copied().unwrap_or(0)
    }

    /// Number of keys, counting expired keys not yet removed (as Redis
    /// DBSIZE does).
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

    #[test]
    fn expired_keys_are_absent_to_every_read() {
        let mut s = Store::default();
        s.set_now(1000);
        assert_eq!(s.put_expiring(b"k", b"v", Some(1010)), Ok(true));
        s.put(b"p", b"forever").expect("put");
        assert_eq!((s.expiry(b"k"), s.expiry(b"p"), s.expiry(b"none")), (Some(Some(1010)), Some(None), None));
        assert_eq!(s.volatile_len(), 1);
        let (c, e) = (s.candidate(s.hash(b"k")).expect("candidate"), s.epoch());
        assert_eq!(s.get_at(b"k", c, e), Some(&b"v"[..]));
        s.set_now(1009);
        assert_eq!(s.get(b"k"), Some(&b"v"[..]), "live until its time");
        s.set_now(1010);
        assert_eq!(s.get(b"k"), None);
        assert_eq!(s.get_at(b"k", c, e), None);
        assert_eq!(s.expiry(b"k"), None);
        assert_eq!(s.scan(0, 100, |k| assert_eq!(k, b"p")), 0);
        // Not yet removed: it still counts, until something touches it.
        assert_eq!((s.len(), s.volatile_len(), s.expired_total()), (2, 1, 0));
        assert!(s.expire_if_due(b"k"));
        assert!(!s.expire_if_due(b"k"));
        assert!(!s.expire_if_due(b"p"));
        assert_eq!((s.len(), s.volatile_len(), s.expired_total()), (1, 0, 1));
        assert_eq!(s.get(b"p"), Some(&b"forever"[..]));
    }

    #[test]
    fn writes_treat_the_expiry_as_redis_does() {
        let mut s = Store::default();
        s.set_now(50);
        s.put_expiring(b"k", b"one", Some(100)).expect("put");
        // KEEPTTL keeps it, SET clears it.
        assert_eq!(s.put_keep_ttl(b"k", b"two"), Ok(false));
        assert_eq!(s.expiry(b"k"), Some(Some(100)));
        assert_eq!(s.put(b"k", b"three"), Ok(false));
        assert_eq!(s.expiry(b"k"), Some(None));
        assert_eq!(s.volatile_len(), 0);
        // A write to an expired key makes a new one (counted as an expiry).
        s.put_expiring(b"k", b"four", Some(60)).expect("put");
        s.set_now(60);
        assert_eq!(s.put_keep_ttl(b"k", b"five"), Ok(true));
        assert_eq!((s.expiry(b"k"), s.expired_total(), s.volatile_len()), (Some(None), 1, 0));
        // A time already due removes the key; so does EXPIRE with one.
        assert_eq!(s.put_expiring(b"k", b"six", Some(60)), Ok(false));
        assert_eq!((s.get(b"k"), s.len()), (None, 0));
        assert_eq!(s.put_expiring(b"k", b"seven", Some(10)), Ok(true));
        assert!(s.is_empty());
        s.put(b"k", b"eight").expect("put");
        assert_eq!(s.set_expiry(b"k", Some(60)), Ok(true));
        assert!(s.is_empty());
        assert_eq!(s.set_expiry(b"k", None), Ok(false));
        // EXPIRE, then PERSIST, in place.
        s.put(b"k", b"nine").expect("put");
        assert_eq!(s.set_expiry(b"k", Some(70)), Ok(true));
        assert_eq!((s.expiry(b"k"), s.get(b"k")), (Some(Some(70)), Some(&b"nine"[..])));
        assert_eq!(s.set_expiry(b"k", Some(80)), Ok(true));
        assert_eq!(s.set_expiry(b"k", None), Ok(true));
        assert_eq!((s.expiry(b"k"), s.get(b"k"), s.volatile_len()), (Some(None), Some(&b"nine"[..]), 0));
        // DELETE of an expired key: absent, and counted.
        s.put_expiring(b"k", b"ten", Some(61)).expect("put");
        s.set_now(61);
        assert!(!s.delete(b"k"));
        assert_eq!((s.len(), s.expired_total()), (0, 2));
    }

    #[test]
    fn an_expiry_word_keeps_the_key_and_value_intact() {
        let mut s = Store::default();
        s.set_now(1);
        for len in [0usize, 1, 6, 7, 8, 9, 100, 504, 505, JUMBO_RECORD_BYTES - 16, JUMBO_RECORD_BYTES, 1 << 20] {
            let key = format!("key{len}");
            let value: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            s.put(key.as_bytes(), &value).expect("put");
            let before = s.memory().live_bytes;
            assert_eq!(s.set_expiry(key.as_bytes(), Some(u64::MAX)), Ok(true));
            assert_eq!(s.get(key.as_bytes()), Some(value.as_slice()), "{len} B with an expiry");
            assert_eq!(s.expiry(key.as_bytes()), Some(Some(u64::MAX)));
            // One word more, rounded to its size class (nothing if the class had room).
            let grew = s.memory().live_bytes - before;
            let words = record_words(key.len(), len, false);
            let room = if words > JUMBO_WORDS { words } else { class_words(class_of(words as u32)) as usize };
            assert_eq!(grew == 0, room > words, "{len} B: grew by {grew}");
            assert_eq!(s.set_expiry(key.as_bytes(), None), Ok(true));
            assert_eq!(s.get(key.as_bytes()), Some(value.as_slice()), "{len} B without");
            assert_eq!(s.memory().live_bytes - before, grew, "clearing an expiry moves nothing");
            s.put_expiring(key.as_bytes(), &value, Some(5)).expect("put");
            assert_eq!(s.get(key.as_bytes()), Some(value.as_slice()));
            s.put_keep_ttl(key.as_bytes(), &value[..len / 2]).expect("put");
            assert_eq!((s.get(key.as_bytes()), s.expiry(key.as_bytes())), (Some(&value[..len / 2]), Some(Some(5))));
        }
    }

    #[test]
    fn adding_an_expiry_may_be_refused_and_then_changes_nothing() {
        let limit = 4 << 20;
        let mut s =
            Store::with_limits(0, StoreLimits { max_bytes: Some(limit), ..StoreLimits::default() }).expect("store");
        // 6-byte keys and 122-byte values: 17 words, a class with no room for an 18th.
        let mut n = 0u32;
        while s.put(format!("{n:06}").as_bytes(), &[1u8; 122]).is_ok() {
            n += 1;
        }
        let before = s.memory();
        let mut refused = 0;
        for i in 0..n {
            let key = format!("{i:06}");
            match s.set_expiry(key.as_bytes(), Some(10)) {
                Ok(true) => {}
                Err(e) => {
                    assert!(e.is_no_room(), "{e}");
                    assert_eq!(s.expiry(key.as_bytes()), Some(None), "a refused EXPIRE changes nothing");
                    refused += 1;
                }
                Ok(false) => panic!("{key} is present"),
            }
            assert!(s.memory().used() <= limit);
        }
        assert!(refused > 0, "every expiry fitted: {before:?}");
        assert_eq!(s.volatile_len(), (n - refused) as usize);
        // Clearing an expiry never needs memory.
        for i in 0..n {
            assert_eq!(s.set_expiry(format!("{i:06}").as_bytes(), None), Ok(true));
        }
        assert_eq!(s.volatile_len(), 0);
    }

    #[test]
    fn active_expiry_examines_a_bounded_number_of_buckets() {
        let mut s = Store::default();
        s.set_now(10);
        assert_eq!(s.expire_cycle(1000), 0, "nothing volatile");
        for i in 0..1000u32 {
            let key = format!("k{i}");
            if i % 3 == 0 {
                s.put_expiring(key.as_bytes(), b"v", Some(20)).expect("put");
            } else {
                s.put(key.as_bytes(), b"v").expect("put");
            }
        }
        s.set_now(20);
        let buckets = s.table.num_buckets();
        let budget = 7;
        let mut removed = 0;
        for _ in 0..buckets.div_ceil(budget) {
            let r = s.expire_cycle(budget);
            assert!(r <= budget);
            removed += r;
        }
        assert_eq!(removed, 334, "one turn of the cursor removes every expired key");
        assert_eq!((s.len(), s.volatile_len(), s.expired_total()), (666, 0, 334));
        let total: u32 = (0..SLOTS as u16).map(|slot| s.keys_in_slot(slot)).sum();
        assert_eq!(total, 666);
    }

    #[test]
    fn a_scan_misses_no_key_while_the_table_grows_and_rehashes() {
        let mut s = Store::default();
        for i in 0..100u32 {
            s.put(format!("old{i}").as_bytes(), b"v").expect("put");
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = s.scan(0, 10, |k| {
            seen.insert(k.to_vec());
        });
        let (mut calls, mut n, layout) = (1, 0u32, s.layout);
        while cursor != 0 {
            // Churn between the first calls: new keys (growth), and deletes
            // of them (tombstones that later inserts rehash away in place).
            // Each change of layout restarts the scan: it ends once they stop.
            for _ in 0..if calls < 40 { 50 } else { 0 } {
                s.put(format!("new{n}").as_bytes(), b"v").expect("put");
                if n % 2 == 0 {
                    s.delete(format!("new{}", n / 2).as_bytes());
                }
                n += 1;
            }
            cursor = s.scan(cursor, 10, |k| {
                seen.insert(k.to_vec());
            });
            calls += 1;
            assert!(calls < 100_000, "the scan does not finish");
        }
        assert!(s.layout.wrapping_sub(layout) >= 3, "the table changed layout {} times", s.layout - layout);
        for i in 0..100u32 {
            assert!(seen.contains(format!("old{i}").as_bytes()), "old{i} missed");
        }
    }

    #[test]
    fn a_scan_cursor_from_an_older_layout_starts_over() {
        let mut s = Store::default();
        for i in 0..100u32 {
            s.put(format!("old{i}").as_bytes(), b"v").expect("put");
        }
        let buckets = s.table.num_buckets();
        // Most of the way through the table...
        let cursor = s.scan(0, 90, |_| {});
        assert_ne!(cursor, 0);
        // ... then it grows: its keys move anywhere.
        let mut n = 0;
        while s.table.num_buckets() == buckets {
            s.put(format!("new{n}").as_bytes(), b"v").expect("put");
            n += 1;
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = cursor;
        loop {
            cursor = s.scan(cursor, 1000, |k| {
                seen.insert(k.to_vec());
            });
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(seen.len(), s.len(), "the rest of the scan starts over and hands out every key");
    }

    #[test]
    fn clear_returns_the_memory_and_forgets_every_key() {
        let mut s = Store::default();
        s.set_now(5);
        let big = vec![1u8; 600 << 10];
        s.put(b"big", &big).expect("put");
        for i in 0..1000u32 {
            s.put_expiring(format!("k{i}").as_bytes(), b"v", Some(10)).expect("put");
        }
        let (c, e) = (s.candidate(s.hash(b"big")).expect("candidate"), s.epoch());
        s.clear();
        assert_eq!(s.get_at(b"big", c, e), None, "a candidate from before is not followed");
        assert_eq!((s.len(), s.volatile_len(), s.now()), (0, 0, 5));
        assert_eq!(s.memory().slab_bytes, 0);
        assert!((0..SLOTS as u16).all(|slot| s.keys_in_slot(slot) == 0));
        assert_eq!(s.scan(0, 10, |_| panic!("a key after clear")), 0);
        s.put(b"again", b"v").expect("put");
        assert_eq!(s.get(b"again"), Some(&b"v"[..]));
    }

    #[test]
    fn slot_counts_follow_inserts_and_removes_only() {
        let mut s = Store::default();
        let slot = slot_of(b"{tag}a");
        for k in [&b"{tag}a"[..], b"{tag}b", b"{tag}c"] {
            s.put(k, b"1").expect("put");
        }
        s.put(b"{tag}a", &[2u8; 5000]).expect("overwrite (moves the record)");
        s.put_keep_ttl(b"{tag}b", b"3").expect("overwrite");
        assert_eq!(s.keys_in_slot(slot), 3);
        assert!(s.delete(b"{tag}c"));
        assert_eq!(s.keys_in_slot(slot), 2);
        assert_eq!(s.keys_in_slot(u16::MAX), 0);
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

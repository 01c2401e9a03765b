//! Per-shard counters: kept in plain cells by the shard that owns them,
//! published to the node's reporter without locks.
//!
//! The hot path adds to a [`ShardCounters`] held in a `Cell` once per batch.
//! Every [`PUBLISH_EVERY`] the shard copies it into its [`Published`] slot:
//! one cache-line-padded block of relaxed atomics that only that shard
//! writes, behind a sequence number (a seqlock: the reader retries while a
//! write is under way, so it always gets one whole snapshot, and derived
//! figures such as hits = gets − misses never go backwards). The node's
//! reporter thread reads every slot once per interval, prints rates, and
//! sums them at exit (the dragonfly way: per-shard structs merged with
//! `+=` at report time, never a shared counter); the metrics thread
//! (`metrics`) reads them for each scrape.

use crossbeam_utils::CachePadded;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU64, fence};
use std::time::Duration;
use wire::msg::ShardCounters;

/// How often a shard publishes its counters.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(50);

/// Every field of [`ShardCounters`], once: the one list `to_array` and
/// `from_array` are built from.
macro_rules! with_fields {
    ($m:ident) => {
        $m!(
            ops,
            gets,
            puts,
            deletes,
            misses,
            wrong_shard,
            bytes_in,
            bytes_out,
            connections_open,
            connections_total,
            protocol_errors,
            keys,
            store_bytes,
            memory_limit,
            out_of_memory,
            connections_refused,
            connections_evicted,
            handshake_timeouts,
            frame_timeouts,
            idle_timeouts,
            write_timeouts,
            expired_keys
        )
    };
}

macro_rules! count {
    ($($f:ident),*) => { [$(stringify!($f)),*].len() };
}
/// How many fields [`ShardCounters`] has.
pub(crate) const FIELDS: usize = with_fields!(count);

pub(crate) fn to_array(c: &ShardCounters) -> [u64; FIELDS] {
    macro_rules! array {
        ($($f:ident),*) => { [$(c.$f),*] };
    }
    with_fields!(array)
}

pub(crate) fn from_array(a: [u64; FIELDS]) -> ShardCounters {
    let mut it = a.into_iter();
    let mut next = || it.next().unwrap_or_default();
    macro_rules! build {
        ($($f:ident),*) => { ShardCounters { $($f: next()),* } };
    }
    with_fields!(build)
}

/// One shard's published counters. Written by its shard only.
#[derive(Default)]
pub struct Published {
    /// Odd while a snapshot is being written; bumped twice per snapshot.
    seq: CachePadded<AtomicU64>,
    fields: CachePadded<[AtomicU64; FIELDS]>,
    /// Set when the shard has stopped (its last publish is final).
    done: AtomicBool,
}

impl Published {
    /// Publishes a snapshot. Only the owning shard calls this (one writer).
    pub fn store(&self, c: &ShardCounters) {
        let seq = self.seq.load(Relaxed);
        self.seq.store(seq.wrapping_add(1), Relaxed);
        // The odd number is visible before any field changes.
        fence(Release);
        for (slot, v) in self.fields.iter().zip(to_array(c)) {
            slot.store(v, Relaxed);
        }
        self.seq.store(seq.wrapping_add(2), Release);
    }

    /// The latest whole snapshot (never fields of two snapshots: a read that
    /// overlapped a write is retried).
    pub fn load(&self) -> ShardCounters {
        let mut spins = 0u32;
        loop {
            let before = self.seq.load(Acquire);
            if before.is_multiple_of(2) {
                let a: [u64; FIELDS] = std::array::from_fn(|i| self.fields[i].load(Relaxed));
                // The field loads happen before the second look at `seq`.
                fence(Acquire);
                if self.seq.load(Relaxed) == before {
                    return from_array(a);
                }
            }
            // A write takes nanoseconds and comes every PUBLISH_EVERY.
            spins += 1;
            if spins.is_multiple_of(64) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }

    /// Marks the shard stopped.
    pub fn finish(&self) {
        self.done.store(true, Release);
    }

    /// True once the shard has stopped.
    pub fn is_done(&self) -> bool {
        self.done.load(Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_round_trips_every_field() {
        // Distinct values in every field: a field left out of the list, or
        // two fields swapped, changes the result.
        let a: [u64; FIELDS] = std::array::from_fn(|i| i as u64 + 1);
        let c = from_array(a);
        assert_eq!(to_array(&c), a);
        assert_eq!(c.expired_keys, FIELDS as u64, "the last field is read last");
        assert_eq!(size_of::<ShardCounters>(), FIELDS * 8, "every field of ShardCounters is in the list");
        let p = Published::default();
        p.store(&c);
        assert_eq!(p.load(), c);
    }

    #[test]
    fn a_reader_never_sees_half_a_snapshot() {
        // The shard writes snapshots whose fields all hold the same number;
        // a reader that saw fields of two snapshots would see two numbers.
        let p = std::sync::Arc::new(Published::default());
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let writer = {
            let (p, stop) = (p.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Relaxed) {
                    n += 1;
                    p.store(&from_array([n; FIELDS]));
                }
                n
            })
        };
        // Read while the writer runs: from its first snapshot on (on a
        // busy machine the reader could otherwise finish before the writer
        // was first scheduled).
        while to_array(&p.load())[0] == 0 {
            std::thread::yield_now();
        }
        let mut last = 0;
        for _ in 0..200_000 {
            let a = to_array(&p.load());
            assert!(a.iter().all(|&v| v == a[0]), "a torn snapshot: {a:?}");
            assert!(a[0] >= last, "snapshots go forward");
            last = a[0];
        }
        stop.store(true, Relaxed);
        let written = writer.join().expect("writer");
        assert!(written > 0);
    }
}

//! Per-shard counters: kept in plain cells by the shard that owns them,
//! published to the node's reporter without locks.
//!
//! The hot path adds to a [`ShardCounters`] held in a `Cell` once per batch.
//! Every [`PUBLISH_EVERY`] the shard copies it into its [`Published`] slot:
//! one cache-line-padded block of relaxed atomics that only that shard
//! writes. The node's reporter thread reads every slot once per interval,
//! prints rates, and sums them at exit (the dragonfly way: per-shard
//! structs merged with `+=` at report time, never a shared counter).

use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
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
            write_timeouts
        )
    };
}

macro_rules! count {
    ($($f:ident),*) => { [$(stringify!($f)),*].len() };
}
const FIELDS: usize = with_fields!(count);

fn to_array(c: &ShardCounters) -> [u64; FIELDS] {
    macro_rules! array {
        ($($f:ident),*) => { [$(c.$f),*] };
    }
    with_fields!(array)
}

fn from_array(a: [u64; FIELDS]) -> ShardCounters {
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
    fields: CachePadded<[AtomicU64; FIELDS]>,
    /// Set when the shard has stopped (its last publish is final).
    done: AtomicBool,
}

impl Published {
    /// Publishes a snapshot (relaxed: readers may see fields of two
    /// consecutive snapshots, which rates over a second do not notice).
    pub fn store(&self, c: &ShardCounters) {
        for (slot, v) in self.fields.iter().zip(to_array(c)) {
            slot.store(v, Relaxed);
        }
    }

    /// The latest snapshot.
    pub fn load(&self) -> ShardCounters {
        from_array(std::array::from_fn(|i| self.fields[i].load(Relaxed)))
    }

    /// Marks the shard stopped.
    pub fn finish(&self) {
        self.done.store(true, std::sync::atomic::Ordering::Release);
    }

    /// True once the shard has stopped.
    pub fn is_done(&self) -> bool {
        self.done.load(std::sync::atomic::Ordering::Acquire)
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
        assert_eq!(c.write_timeouts, FIELDS as u64, "the last field is read last");
        assert_eq!(size_of::<ShardCounters>(), FIELDS * 8, "every field of ShardCounters is in the list");
        let p = Published::default();
        p.store(&c);
        assert_eq!(p.load(), c);
    }
}

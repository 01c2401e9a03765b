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

const FIELDS: usize = 13;

fn to_array(c: &ShardCounters) -> [u64; FIELDS] {
    [
        c.ops,
        c.gets,
        c.puts,
        c.deletes,
        c.misses,
        c.wrong_shard,
        c.bytes_in,
        c.bytes_out,
        c.connections_open,
        c.connections_total,
        c.protocol_errors,
        c.keys,
        c.store_bytes,
    ]
}

fn from_array(a: [u64; FIELDS]) -> ShardCounters {
    ShardCounters {
        ops: a[0],
        gets: a[1],
        puts: a[2],
        deletes: a[3],
        misses: a[4],
        wrong_shard: a[5],
        bytes_in: a[6],
        bytes_out: a[7],
        connections_open: a[8],
        connections_total: a[9],
        protocol_errors: a[10],
        keys: a[11],
        store_bytes: a[12],
    }
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
        let c = ShardCounters {
            ops: 1,
            gets: 2,
            puts: 3,
            deletes: 4,
            misses: 5,
            wrong_shard: 6,
            bytes_in: 7,
            bytes_out: 8,
            connections_open: 9,
            connections_total: 10,
            protocol_errors: 11,
            keys: 12,
            store_bytes: 13,
        };
        let p = Published::default();
        p.store(&c);
        assert_eq!(p.load(), c);
    }
}

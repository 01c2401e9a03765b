//! Replication: each shard is one Raft group whose replicas are the same
//! core index on other nodes, run by tikv's raft-rs inside the shard's own
//! executor (no thread, lock or queue shared with other cores).
//!
//! raft-rs is the algorithm only. This module gives it what it leaves to
//! its user:
//!
//! - [`storage`]: the [`raft::Storage`] raft-rs reads the stable log from.
//! - [`peer`]: the connections between replicas, and their limits.
//! - [`node`]: the loop that ticks raft-rs, steps peers' messages into it,
//!   and persists, sends and applies what each `Ready` hands out.
pub mod node;
pub mod peer;
pub mod storage;

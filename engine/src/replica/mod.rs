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
//! - `group`: a replicated shard at run time (its replica, machine, log
//!   writer and peer port, started and stopped with the shard).
//! - [`machine`]: the shard's store as the group's state machine: the
//!   leader's journaled changes become proposals, followers apply them,
//!   and the marks a held reply waits for.
//!
//! # The shard's log is the Raft log
//!
//! A durable replica journals each `Ready`'s entries and hard state as
//! RAFT ENTRY and RAFT STATE records of the shard's own log (`log`): the
//! same segments, CRCs, torn-tail rules, one write in flight and group
//! commit — every proposal that arrives while a commit is in flight goes
//! into the next. The messages raft-rs says must follow persistence
//! (votes, append answers) leave only when the log's mark for the node's
//! `--fsync` mode has passed those records; a leader's appends leave at
//! once, so followers write in parallel with it. At start,
//! `log::recover::recover_raft` rebuilds the [`storage::RaftLog`] from the
//! records (an entry replaces every entry from its index on, as when it was
//! first appended), and raft-rs hands the committed entries out again for
//! the state machine to apply. Raft's safety across machine crashes rests
//! on `--fsync always`; `everysec` and `no` keep it across process crashes
//! only.
pub(crate) mod group;
pub mod machine;
pub mod node;
pub mod peer;
pub mod storage;

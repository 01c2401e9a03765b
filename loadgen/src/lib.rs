//! percore's load generator: YCSB workloads, driven by pinned shared-nothing
//! threads, routed straight to each key's shard, every read verified.
//!
//! # Layout
//!
//! An operation moves through the modules in this order:
//!
//! - [`zipf`] and [`workload`]: draw a record (YCSB's zipfian, uniform or
//!   latest) and a kind (the A/B/C mix); format its decimal key.
//! - [`value`]: a PUT's value is self-describing (key, writer, sequence,
//!   checksum); a GET's value is verified against its key.
//! - [`worker`]: one pinned thread per CPU routes each operation by slot to
//!   its shard's connection, batches and pipelines, reads replies, records
//!   latency into its own HdrHistograms.
//! - [`proto`]: how batches are written and replies read ([`proto::percore`],
//!   [`proto::resp`], [`proto::memcache`]); [`proto::cluster`] reads a Redis
//!   Cluster's slot map, so its masters are routed to like percore's shards.
//! - [`history`]: every operation to a compact binary file, for the checker.
//! - [`run`]: connects, starts the workers, merges their per-interval figures.
//! - [`report`]: the final report as text, JSON and `.hgrm`.
//! - [`cli`]: the command line shared by `percore-loadgen` and `percore bench`.

pub mod cli;
pub mod history;
pub mod proto;
pub mod report;
pub mod run;
pub mod value;
pub mod worker;
pub mod workload;
pub mod zipf;

//! The `percore` command's subcommands, as a library so they can be tested.
//!
//! # Layout
//!
//! - [`cmd::kv`]: `get`, `put`, `del` — the CLI client.
//! - [`cmd::stats`]: `stats` and `ping` — every shard's counters; wait for a
//!   cluster to answer.
//! - [`target`]: how a command finds the cluster (`--server` or `--config`).

pub mod cmd;
pub mod target;

//! The `percore` command's subcommands, as a library so they can be tested.
//!
//! # Layout
//!
//! - [`cmd::kv`]: `get`, `put`, `del` — the CLI client.
//! - [`cmd::stats`]: `stats` and `ping` — every shard's counters; wait for a
//!   cluster to answer.
//! - [`bench`]: `bench` — the local one-command benchmark; [`process`]
//!   runs its server as a child process.
//! - [`target`]: how a command finds the cluster (`--server` or `--config`).
//! - [`check`]: `check` — the linearizability checker for recorded
//!   histories (also run by `bench --check`).

pub mod bench;
pub mod check;
pub mod cmd;
pub mod process;
pub mod target;

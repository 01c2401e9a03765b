//! The `percore` command's subcommands, as a library so they can be tested.
//!
//! # Layout
//!
//! - [`cmd::kv`]: `get`, `put`, `del` — the CLI client.
//! - [`cmd::stats`]: `stats` and `ping` — every shard's counters; wait for a
//!   cluster to answer.
//! - [`bench`]: `bench` — the local one-command benchmark; [`process`]
//!   runs its server as a child process.
//! - [`compare`]: `bench --vs redis,memcached` — one table against peers.
//! - [`target`]: how a command finds the cluster (`--server` or `--config`).
//! - [`cmd::cluster`]: `cluster …` — what the cluster scripts read from a
//!   cluster file; [`manifest`] turns a CloudLab manifest into one.
//! - [`sample`]: `sample` — the /proc sampler the scripts run on every node.
//! - [`report`]: `report` — the cluster run's report and plots, and a
//!   sweep's scaling plots.
//! - [`check`]: `check` — the linearizability checker for recorded
//!   histories (also run by `bench --check`).
//! - [`attack`]: `attack` — hostile traffic for the soak test (`tools/soak.sh`).

pub mod attack;
pub mod bench;
pub mod check;
pub mod cmd;
pub mod compare;
pub mod manifest;
pub mod process;
pub mod report;
pub mod sample;
pub mod target;

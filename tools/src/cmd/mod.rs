//! The CLI commands other than `bench`, `report` and `sample`: one module
//! per group of subcommands, plus how a command finds the cluster.
//!
//! - [`kv`]: `get`, `put`, `del` — the CLI client.
//! - [`stats`]: `stats` and `ping` — every shard's counters; wait for a
//!   cluster to answer.
//! - [`target`]: how a command finds the cluster (`--server` or `--config`)
//!   and the secret its hellos carry (`--password`).
//! - [`cluster`]: `cluster …` — what the cluster scripts read from a cluster
//!   file; [`manifest`] turns a CloudLab manifest into one.
//! - [`check`]: `check` — the linearizability check of recorded histories,
//!   a thin command over the `percore-check` crate (also run by `bench
//!   --check`).
//! - [`lost`]: `lost` — the acknowledged writes a crash lost, from the
//!   history of a run and of the reads after the restart
//!   (`tools/crash-test.sh`).
//! - [`members`]: `members` — makes each replicated shard's group have
//!   the members the cluster file names (replace a dead node, move a
//!   replica).
//! - [`save`]: `save` — a durable snapshot of every shard now (RESP `SAVE`).
//! - [`attack`]: `attack` — hostile traffic for the soak test
//!   (`tools/soak.sh`).

pub mod attack;
pub mod check;
pub mod cluster;
pub mod kv;
pub mod lost;
pub mod manifest;
pub mod members;
pub mod save;
pub mod stats;
pub mod target;

//! The `percore` command's subcommands, as a library so they can be tested.
//!
//! # Layout: one module per responsibility
//!
//! - [`cmd`]: the CLI commands — the client (`get`, `put`, `del`,
//!   `stats`, `ping`), `cluster …` for the scripts, `check` over the
//!   `percore-check` crate, and `attack` for the soak test.
//! - [`bench`](mod@bench): `bench` — the local one-command benchmark, `bench --vs` —
//!   the comparison with peers, and the server child process they run.
//! - [`report`]: `report` — a cluster run's report and plots, and a sweep's
//!   scaling table and plots.
//! - [`sample`]: `sample` — the /proc sampler the cluster scripts run on
//!   every node.
//!
//! # Why modules and not crates
//!
//! Only the checker is useful without the rest of percore, so only the
//! checker is a crate of its own (`percore-check`, in `tools/check`): a
//! program that checks histories depends on it and nothing else. The
//! other four jobs exist to serve the one `percore` binary; they share its
//! argument types (`cmd::target`, `bench::BenchArgs`) and its dependencies
//! (the load generator, the engine as `percore server`), and every user
//! gets them together. As crates they would add four manifests and
//! re-exports for no user who wants one without the others, so they are
//! modules whose opening comments say what each owns, with no module
//! reaching into another's internals: `bench` uses `cmd::check` for
//! `--check` and `report::plot` for its bar chart, through their public
//! functions.

pub mod bench;
pub mod cmd;
pub mod report;
pub mod sample;

//! `percore`: the one command of percore — client, local benchmark, checker,
//! reports, and the server itself (`percore server`).

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use tools::cmd::{attack, check, cluster, kv, lost, members, save, stats};

/// percore: a thread-per-core, shared-nothing key-value store and its tools.
#[derive(Parser)]
#[command(name = "percore", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read a key (exit 1 if it does not exist).
    Get(kv::GetArgs),
    /// Write a key.
    Put(kv::PutArgs),
    /// Delete a key.
    Del(kv::DelArgs),
    /// Every shard's counters.
    Stats(stats::StatsArgs),
    /// Snapshot every shard of a durable cluster now (RESP SAVE to each),
    /// each durable before the command returns.
    Save(save::SaveArgs),
    /// Make every replicated shard's group have the members the cluster
    /// file names: adds a replacement node (started with `--join`) as a
    /// learner, promotes it once it has caught up, removes the members the
    /// file dropped — replacing a dead node, or moving a replica.
    Members(members::MembersArgs),
    /// Check that every shard answers its handshake (optionally waiting).
    Ping(stats::PingArgs),
    /// Benchmark this machine: start a server, load, run YCSB, report, stop.
    Bench(Box<tools::bench::BenchArgs>),
    /// Check recorded histories for linearizability (exit 0 linearizable, 1 violation, 3 unknown, 2 error).
    Check(check::CheckArgs),
    /// Acknowledged writes of a run that the reads after a restart did not
    /// see (exit 0 none, 1 lost or unexplained, 2 error).
    Lost(lost::LostArgs),
    /// Run a server node (same as `percore-server`).
    Server(engine::cli::ServerArgs),
    /// Generate load (same as `percore-loadgen`).
    #[command(subcommand)]
    Loadgen(loadgen::cli::Command),
    /// Read a cluster file for the cluster scripts (nodes, ssh options, …).
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Hostile traffic against a running cluster (garbage, half frames,
    /// trickles, churn, jumbo values, deletes of hot keys), for soak tests.
    Attack(attack::AttackArgs),
    /// Sample CPU, memory and network counters from /proc once a second.
    Sample(tools::sample::SampleArgs),
    /// Report a cluster run (`logs/<timestamp>`) or a sweep, with plots.
    Report(tools::report::ReportArgs),
}

/// Large blocks (the server's store when `percore server` runs) on huge
/// pages: see `engine::alloc`.
#[global_allocator]
static ALLOC: engine::alloc::HugePageAlloc = engine::alloc::HugePageAlloc;

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("percore: {e}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Get(a) => match kv::get(&a) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => {
                eprintln!("percore: {:?} not found", a.key);
                ExitCode::from(1)
            }
            Err(e) => fail(e),
        },
        Command::Put(a) => kv::put(&a).map_or_else(fail, |_| ExitCode::SUCCESS),
        Command::Del(a) => kv::del(&a).map_or_else(fail, |_| ExitCode::SUCCESS),
        Command::Stats(a) => stats::stats(&a).map_or_else(fail, |_| ExitCode::SUCCESS),
        Command::Save(a) => save::save(&a).map_or_else(fail, |_| ExitCode::SUCCESS),
        Command::Members(a) => members::members(&a).map_or_else(fail, |_| ExitCode::SUCCESS),
        Command::Ping(a) => stats::ping(&a).map_or_else(fail, |_| ExitCode::SUCCESS),
        Command::Bench(a) => ExitCode::from(tools::bench::bench(&a)),
        Command::Check(a) => ExitCode::from(check::main(&a)),
        Command::Lost(a) => ExitCode::from(lost::main(&a)),
        Command::Server(a) => engine::cli::main(a),
        Command::Loadgen(c) => loadgen::cli::main(loadgen::cli::Cli { command: c }),
        Command::Cluster(c) => cluster::run(&c).map_or_else(fail, |_| ExitCode::SUCCESS),
        Command::Sample(a) => ExitCode::from(tools::sample::main(&a)),
        Command::Attack(a) => ExitCode::from(attack::main(&a)),
        Command::Report(a) => ExitCode::from(tools::report::main(&a)),
    }
}

//! `percore-server`: one node of a percore cluster (see `engine::cli`).

use clap::Parser;
use std::process::ExitCode;

/// percore server: one pinned shard per core, one port and one private map each.
#[derive(Parser)]
#[command(name = "percore-server", version, about)]
struct Cli {
    #[command(flatten)]
    server: engine::cli::ServerArgs,
}

/// Large blocks (the store) on huge pages: see `engine::alloc`.
#[global_allocator]
static ALLOC: engine::alloc::HugePageAlloc = engine::alloc::HugePageAlloc;

fn main() -> ExitCode {
    engine::cli::main(Cli::parse().server)
}

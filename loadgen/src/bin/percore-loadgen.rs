//! `percore-loadgen`: YCSB load for percore clusters (see `loadgen::cli`).

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    loadgen::cli::main(loadgen::cli::Cli::parse())
}

//! One module per group of subcommands.

pub mod kv;
pub mod stats;

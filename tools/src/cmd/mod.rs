//! One module per group of subcommands.

pub mod cluster;
pub mod kv;
pub mod stats;

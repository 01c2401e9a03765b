//! Where the cluster is: one server address to discover it from, or a
//! cluster file. Shared by every subcommand that talks to servers.

use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use wire::Cluster;
use wire::client::Client;

/// Options naming the cluster.
#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// Any server's address; the rest of the cluster is discovered through its handshake.
    #[arg(long, short = 's', value_name = "HOST:PORT", default_value = "127.0.0.1:7000", conflicts_with = "config")]
    pub server: String,
    /// A cluster file to take the shard map from instead.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Connect/read timeout in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub timeout_ms: u64,
}

impl TargetArgs {
    /// The timeout as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }

    /// A client for the cluster.
    pub fn client(&self) -> Result<Client, wire::Error> {
        match &self.config {
            Some(path) => Ok(Client::from_cluster(&Cluster::load(path)?, self.timeout())),
            None => Client::discover(&self.server, self.timeout()),
        }
    }
}

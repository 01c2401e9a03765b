//! Where the cluster is: one server address to discover it from, or a
//! cluster file; and the secret every hello carries. Shared by every
//! subcommand that talks to servers.

use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use wire::Cluster;
use wire::client::Client;
use wire::cluster::client_password;

/// Options naming the cluster.
#[derive(Args, Clone)]
pub struct TargetArgs {
    /// Any server's address; the rest of the cluster is discovered through its handshake.
    #[arg(long, short = 's', value_name = "HOST:PORT", default_value = "127.0.0.1:7000", conflicts_with = "config")]
    pub server: String,
    /// A cluster file to take the shard map from instead.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The nodes' secret (their `requirepass`), sent in every hello
    /// [default: $PERCORE_PASSWORD, else the cluster file's `requirepass`,
    /// else none]. Other users can read a command line: prefer those two.
    #[arg(long, value_name = "SECRET")]
    pub password: Option<String>,
    /// Connect/read timeout in milliseconds; also how long an operation on
    /// a replicated shard follows its leader (through an election) before
    /// it gives up.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub timeout_ms: u64,
}

impl std::fmt::Debug for TargetArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetArgs")
            .field("server", &self.server)
            .field("config", &self.config)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

impl TargetArgs {
    /// The timeout as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }

    /// The secret every hello carries ([`client_password`]: `--password`,
    /// else `PERCORE_PASSWORD`, else the cluster file's `requirepass`, else
    /// none).
    pub fn secret(&self) -> Result<Option<String>, wire::Error> {
        let cluster = self.config.as_deref().map(Cluster::load).transpose()?;
        Ok(self.secret_for(cluster.as_ref()))
    }

    fn secret_for(&self, cluster: Option<&Cluster>) -> Option<String> {
        client_password(self.password.as_deref(), cluster)
    }

    /// A client for the cluster, presenting [`TargetArgs::secret`].
    pub fn client(&self) -> Result<Client, wire::Error> {
        match &self.config {
            Some(path) => {
                let cluster = Cluster::load(path)?;
                Ok(Client::from_cluster(&cluster, self.secret_for(Some(&cluster)), self.timeout()))
            }
            None => Client::discover(&self.server, self.secret_for(None), self.timeout()),
        }
    }
}

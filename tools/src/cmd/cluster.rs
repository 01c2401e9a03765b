//! `percore cluster …`: what the cluster scripts (`cluster/*.sh`) need to
//! know from a cluster file, printed in shell-friendly lines, so that bash
//! never parses TOML itself.
//!
//! | subcommand | prints |
//! |---|---|
//! | `nodes` | one line per node: `ROLE NAME SSH_HOST CORES` |
//! | `metrics` | one line per server with a metrics port: `NAME HOST PORT` |
//! | `ssh-args` | the ssh/scp options, one word per line |
//! | `dir` | the work directory on every node |
//! | `loadgen-args` | the load-phase arguments and the run's length, for `run.sh` |
//! | `subset` | the file cut to its first N servers / clients (for `sweep.sh`) |
//! | `from-manifest` | a cluster file made from a CloudLab manifest |
//!
//! The scripts reach a node at its `addr` when the file gives one, else at
//! its `name` (the `SSH_HOST` column); that rule lives here only.

use crate::cmd::manifest::{Split, cluster_from_manifest};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use wire::Cluster;
use wire::cluster::format_cpu_list;

/// Options every ssh and scp call of the scripts gets unless the cluster
/// file's `[ssh] options` (which come first, so they win) set them.
pub const SSH_DEFAULTS: [&str; 4] =
    ["ConnectTimeout=5", "BatchMode=yes", "ServerAliveInterval=5", "ServerAliveCountMax=3"];

/// Default work directory on the nodes when `[ssh] dir` is not set.
pub const DEFAULT_DIR: &str = "percore";

/// `percore cluster`
#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Every node, one line each: `ROLE NAME SSH_HOST CORES`.
    Nodes(FileArgs),
    /// Every server with a metrics port, one line each: `NAME HOST PORT`,
    /// HOST being where the node itself reaches its endpoint.
    Metrics(FileArgs),
    /// Every shard of every server, one line each: `NAME ADDR:PORT`, where
    /// clients reach it (percore frames and RESP alike).
    Endpoints(FileArgs),
    /// How many replicas every shard has (`replicas`, default 1).
    Replicas(FileArgs),
    /// The ssh/scp options from `[ssh]`, one word per line.
    SshArgs(FileArgs),
    /// The work directory on the nodes (`[ssh] dir`, default `percore`).
    Dir(FileArgs),
    /// Checks loadgen `run` arguments; prints `load ARGS…` (the shape options
    /// the load phase needs) and `seconds N` (warm-up + duration; 0 with --ops).
    LoadgenArgs(LoadgenArgsArgs),
    /// The cluster file cut to its first N servers and/or clients.
    Subset(SubsetArgs),
    /// A cluster file from a CloudLab manifest (`geni-get manifest`).
    FromManifest(ManifestArgs),
}

/// A cluster file.
#[derive(Args, Debug)]
pub struct FileArgs {
    /// The cluster file.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
}

/// `percore cluster loadgen-args -- ARGS…`
#[derive(Args, Debug)]
pub struct LoadgenArgsArgs {
    /// The arguments `run.sh` will pass to `percore loadgen run`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// `percore cluster subset`
#[derive(Args, Debug)]
pub struct SubsetArgs {
    /// The cluster file.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,
    /// Keep only the first N `[[server]]` entries.
    #[arg(long, value_name = "N")]
    pub servers: Option<usize>,
    /// Keep only the first N `[[client]]` entries.
    #[arg(long, value_name = "N")]
    pub clients: Option<usize>,
}

/// `percore cluster from-manifest`
#[derive(Args, Debug)]
pub struct ManifestArgs {
    /// The manifest XML (`-`: standard input).
    pub manifest: PathBuf,
    /// Server nodes: the first N in node-name order (default: half, at least one).
    #[arg(long, value_name = "N")]
    pub servers: Option<usize>,
    /// CPUs of each server's shards (default m510: 1-7, CPU 0 left to interrupts).
    #[arg(long, value_name = "LIST", default_value = "1-7")]
    pub server_cores: String,
    /// CPUs of each client's load threads (default m510: 0-7).
    #[arg(long, value_name = "LIST", default_value = "0-7")]
    pub client_cores: String,
    /// Port of each server's first shard.
    #[arg(long, default_value_t = wire::cluster::DEFAULT_BASE_PORT)]
    pub base_port: u16,
}

/// Why a `percore cluster` command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterCmdError {
    /// The cluster file is unusable.
    #[error(transparent)]
    Config(#[from] wire::cluster::ConfigError),
    /// The loadgen arguments do not parse.
    #[error("loadgen arguments: {0}")]
    LoadgenArgs(String),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The subset or manifest could not be made.
    #[error("{0}")]
    Invalid(String),
}

/// Runs a `percore cluster` subcommand, printing its result on stdout.
pub fn run(cmd: &ClusterCommand) -> Result<(), ClusterCmdError> {
    match cmd {
        ClusterCommand::Nodes(a) => print!("{}", nodes(&Cluster::load(&a.config)?)),
        ClusterCommand::Metrics(a) => print!("{}", metrics(&Cluster::load(&a.config)?)),
        ClusterCommand::Endpoints(a) => print!("{}", endpoints(&Cluster::load(&a.config)?)),
        ClusterCommand::Replicas(a) => println!("{}", Cluster::load(&a.config)?.replicas),
        ClusterCommand::SshArgs(a) => {
            for word in ssh_args(&Cluster::load(&a.config)?) {
                println!("{word}");
            }
        }
        ClusterCommand::Dir(a) => println!("{}", work_dir(&Cluster::load(&a.config)?)),
        ClusterCommand::LoadgenArgs(a) => print!("{}", loadgen_args(&a.args)?),
        ClusterCommand::Subset(a) => {
            let text = read(&a.config)?;
            print!("{}", subset(&text, &a.config.display().to_string(), a.servers, a.clients)?);
        }
        ClusterCommand::FromManifest(a) => {
            let text = if a.manifest == Path::new("-") {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                    .map_err(|source| ClusterCmdError::Io { path: "stdin".into(), source })?;
                s
            } else {
                read(&a.manifest)?
            };
            let split = Split {
                servers: a.servers,
                server_cores: a.server_cores.clone(),
                client_cores: a.client_cores.clone(),
                base_port: a.base_port,
            };
            print!("{}", cluster_from_manifest(&text, &split).map_err(ClusterCmdError::Invalid)?);
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, ClusterCmdError> {
    std::fs::read_to_string(path).map_err(|source| ClusterCmdError::Io { path: path.display().to_string(), source })
}

/// Where the scripts ssh to for a node: its address if it has one, else its name.
fn ssh_host<'a>(name: &'a str, addr: Option<&'a str>) -> &'a str {
    addr.unwrap_or(name)
}

/// The `nodes` lines: `server NAME SSH_HOST CORES` for every server, then
/// `client NAME SSH_HOST CORES` for every client, in file order.
pub fn nodes(cluster: &Cluster) -> String {
    let mut out = String::new();
    for s in &cluster.servers {
        out.push_str(&format!(
            "server {} {} {}\n",
            s.name,
            ssh_host(&s.name, Some(&s.addr)),
            format_cpu_list(&s.cores)
        ));
    }
    for c in &cluster.clients {
        out.push_str(&format!(
            "client {} {} {}\n",
            c.name,
            ssh_host(&c.name, c.addr.as_deref()),
            format_cpu_list(&c.cores)
        ));
    }
    out
}

/// The `endpoints` lines: `NAME ADDR:PORT` for every shard of every
/// server, in file order.
pub fn endpoints(cluster: &Cluster) -> String {
    let mut out = String::new();
    for s in &cluster.servers {
        for i in 0..s.cores.len() {
            let info = cluster.local_shard(s, i);
            out.push_str(&format!("{} {}:{}\n", s.name, info.addr, info.port));
        }
    }
    out
}

/// The `metrics` lines: `NAME HOST PORT` for every server whose
/// `metrics_port` is not 0, in file order. HOST is the server's `listen`
/// address, or the loopback address when it listens on every address
/// (`0.0.0.0`, `::`): the scripts scrape a node from the node itself.
pub fn metrics(cluster: &Cluster) -> String {
    let mut out = String::new();
    for s in cluster.servers.iter().filter(|s| s.metrics_port > 0) {
        let host = match s.listen.as_str() {
            "0.0.0.0" => "127.0.0.1",
            "::" | "[::]" => "::1",
            listen => listen,
        };
        out.push_str(&format!("{} {host} {}\n", s.name, s.metrics_port));
    }
    out
}

/// The ssh/scp option words: the file's `[ssh]` settings first (ssh keeps
/// the first value it is given for an option, so they override), then
/// [`SSH_DEFAULTS`]. Every word works for both ssh and scp (`-o Port=`,
/// not `-p`/`-P`).
pub fn ssh_args(cluster: &Cluster) -> Vec<String> {
    let s = &cluster.ssh;
    let mut opts: Vec<String> = s.options.clone();
    if let Some(user) = &s.user {
        opts.push(format!("User={user}"));
    }
    if let Some(port) = s.port {
        opts.push(format!("Port={port}"));
    }
    if let Some(identity) = &s.identity {
        opts.push(format!("IdentityFile={identity}"));
        opts.push("IdentitiesOnly=yes".into());
    }
    opts.extend(SSH_DEFAULTS.iter().map(|s| s.to_string()));
    opts.into_iter().flat_map(|o| ["-o".to_string(), o]).collect()
}

/// The work directory on the nodes.
pub fn work_dir(cluster: &Cluster) -> String {
    cluster.ssh.dir.clone().unwrap_or_else(|| DEFAULT_DIR.into())
}

/// Only to parse `loadgen run` arguments exactly as `percore loadgen run` would.
#[derive(Parser, Debug)]
#[command(name = "percore loadgen run", no_binary_name = true)]
struct RunOnly {
    #[command(flatten)]
    run: loadgen::cli::RunArgs,
}

/// Checks `args` as `percore loadgen run` arguments and returns two lines:
/// `load …` — the shape options a separate load phase must use so that it
/// writes the records the run reads — and `seconds N` — how long the run
/// phase lasts (warm-up + duration; 0 when it stops after `--ops`).
///
/// `--config`, `--client`, `--json`, `--hgrm` and `--load` belong to
/// `run.sh`, which adds them itself; giving them is an error.
pub fn loadgen_args(args: &[String]) -> Result<String, ClusterCmdError> {
    for a in args {
        let flag = a.split('=').next().unwrap_or("");
        if ["--config", "-c", "--client", "--json", "--hgrm", "--load", "--server", "-s"].contains(&flag) {
            return Err(ClusterCmdError::LoadgenArgs(format!("{flag} is set by run.sh itself; leave it out")));
        }
    }
    let parsed = RunOnly::try_parse_from(args)
        .map_err(|e| ClusterCmdError::LoadgenArgs(e.to_string().lines().next().unwrap_or("").to_string()))?;
    let shape = &parsed.run.common.shape;
    let w = &parsed.run.workload;
    let seconds = if w.ops.is_some() {
        0.0
    } else {
        w.warmup.unwrap_or(std::time::Duration::from_secs(1)).as_secs_f64() + w.duration.as_secs_f64()
    };
    Ok(format!(
        "load --records {} --value-size {} --batch {} --pipeline {} --flush-us {} --seed {} --timeout {}ms\nseconds {}\n",
        shape.records,
        shape.value_size,
        shape.batch,
        shape.pipeline,
        shape.flush_us,
        shape.seed,
        shape.timeout.as_millis().max(1),
        seconds.ceil() as u64
    ))
}

/// The cluster file `text` with only its first `servers` `[[server]]` and
/// first `clients` `[[client]]` entries (everything else kept as it is),
/// validated. Files that assign slots explicitly cannot be cut this way.
pub fn subset(
    text: &str,
    source: &str,
    servers: Option<usize>,
    clients: Option<usize>,
) -> Result<String, ClusterCmdError> {
    let mut table: toml::Table =
        toml::from_str(text).map_err(|e| ClusterCmdError::Invalid(format!("{source}: {e}")))?;
    for (key, keep) in [("server", servers), ("client", clients)] {
        let Some(keep) = keep else { continue };
        let Some(toml::Value::Array(list)) = table.get_mut(key) else {
            return Err(ClusterCmdError::Invalid(format!("{source} has no [[{key}]] to keep {keep} of")));
        };
        if keep == 0 || keep > list.len() {
            return Err(ClusterCmdError::Invalid(format!(
                "{source} lists {} [[{key}]] entries; cannot keep {keep}",
                list.len()
            )));
        }
        list.truncate(keep);
    }
    let out = toml::to_string(&table).map_err(|e| ClusterCmdError::Invalid(format!("{source}: {e}")))?;
    let origin = format!("{source} (subset)");
    Cluster::parse(&out, &origin)?;
    Ok(format!(
        "# {source} cut to {} server(s), {} client(s) by `percore cluster subset`\n{out}",
        servers.map_or("all".into(), |n| n.to_string()),
        clients.map_or("all".into(), |n| n.to_string())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
base_port = 7000
[ssh]
user = "alice"
port = 2222
identity = "/tmp/id"
options = ["StrictHostKeyChecking=no", "ConnectTimeout=2"]
dir = "/tmp/pc"
[[server]]
name = "node0"
addr = "10.0.0.1"
cores = "1-3"
[[server]]
name = "node1"
addr = "10.0.0.2"
cores = [1, 2, 3]
[[client]]
name = "node2"
cores = "0-7"
[[client]]
name = "node3"
addr = "10.0.0.4"
cores = "0,2"
"#;

    #[test]
    fn nodes_lines_name_role_host_and_cores() {
        let c = Cluster::parse(FILE, "f.toml").expect("valid");
        assert_eq!(
            nodes(&c),
            "server node0 10.0.0.1 1-3\nserver node1 10.0.0.2 1-3\nclient node2 node2 0-7\nclient node3 10.0.0.4 0,2\n"
        );
        assert_eq!(work_dir(&c), "/tmp/pc");
    }

    #[test]
    fn endpoints_lines_name_every_shard_where_clients_reach_it() {
        let c = Cluster::parse(FILE, "f.toml").expect("valid");
        let lines = endpoints(&c);
        let want: Vec<String> = (0..3)
            .map(|i| format!("node0 10.0.0.1:{}", c.local_shard(&c.servers[0], i).port))
            .chain((0..3).map(|i| format!("node1 10.0.0.2:{}", c.local_shard(&c.servers[1], i).port)))
            .collect();
        assert_eq!(lines.lines().collect::<Vec<_>>(), want);
        assert_ne!(c.local_shard(&c.servers[0], 0).port, c.local_shard(&c.servers[0], 1).port);
    }

    #[test]
    fn metrics_lines_name_the_servers_with_a_metrics_port() {
        let c = Cluster::parse(FILE, "f.toml").expect("valid");
        assert_eq!(metrics(&c), "", "no metrics_port: no lines");
        let file = FILE.replacen("base_port = 7000", "base_port = 7000\nmetrics_port = 9100", 1).replacen(
            "addr = \"10.0.0.2\"",
            "addr = \"10.0.0.2\"\nlisten = \"0.0.0.0\"\nmetrics_port = 9200",
            1,
        );
        let c = Cluster::parse(&file, "f.toml").expect("valid");
        assert_eq!(metrics(&c), "node0 10.0.0.1 9100\nnode1 127.0.0.1 9200\n");
        let off = file.replacen("metrics_port = 9200", "metrics_port = 0", 1);
        assert_eq!(metrics(&Cluster::parse(&off, "f.toml").expect("valid")), "node0 10.0.0.1 9100\n");
    }

    #[test]
    fn ssh_args_put_the_files_options_first() {
        let c = Cluster::parse(FILE, "f.toml").expect("valid");
        let a = ssh_args(&c);
        let opts: Vec<&str> = a.chunks(2).map(|p| p[1].as_str()).collect();
        assert!(a.chunks(2).all(|p| p[0] == "-o"), "{a:?}");
        assert_eq!(opts[0], "StrictHostKeyChecking=no");
        let timeout = opts.iter().position(|o| o.starts_with("ConnectTimeout")).expect("has a timeout");
        assert_eq!(opts[timeout], "ConnectTimeout=2", "the file's value comes before the default");
        assert!(opts.contains(&"User=alice") && opts.contains(&"Port=2222") && opts.contains(&"IdentityFile=/tmp/id"));
        assert!(opts.contains(&"BatchMode=yes"));
    }

    #[test]
    fn loadgen_args_keep_the_shape_and_time_the_run() {
        let args: Vec<String> =
            ["--records", "1000", "--batch", "64", "-d", "3s", "--warmup", "2s", "-w", "a"].map(String::from).to_vec();
        let out = loadgen_args(&args).expect("valid");
        let mut lines = out.lines();
        let load = lines.next().expect("load line");
        assert!(load.starts_with("load --records 1000 --value-size 128 --batch 64 "), "{load}");
        assert_eq!(lines.next(), Some("seconds 5"));
        let defaults = loadgen_args(&[]).expect("defaults");
        assert!(defaults.contains("--records 1000000") && defaults.ends_with("seconds 11\n"), "{defaults}");
        let e = loadgen_args(&["--bacth".to_string(), "3".to_string()]).expect_err("typo").to_string();
        assert!(e.contains("--bacth"), "{e}");
        let e = loadgen_args(&["--config=x".to_string()]).expect_err("run.sh's own").to_string();
        assert!(e.contains("--config is set by run.sh"), "{e}");
        assert!(loadgen_args(&["--ops".into(), "5".into()]).expect("ops").ends_with("seconds 0\n"));
    }

    #[test]
    fn subset_keeps_the_first_entries_and_validates() {
        let out = subset(FILE, "f.toml", Some(1), Some(1)).expect("cut");
        let c = Cluster::parse(&out, "cut").expect("still valid");
        assert_eq!(c.servers.len(), 1);
        assert_eq!(c.clients.len(), 1);
        assert_eq!(c.servers[0].name, "node0");
        assert_eq!(c.ssh.user.as_deref(), Some("alice"));
        let all = subset(FILE, "f.toml", None, Some(2)).expect("clients only");
        assert_eq!(Cluster::parse(&all, "cut").expect("valid").servers.len(), 2);
        assert!(subset(FILE, "f.toml", Some(3), None).is_err());
        assert!(subset(FILE, "f.toml", Some(0), None).is_err());
    }
}

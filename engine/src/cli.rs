//! The server's command line, shared by `percore-server` and `percore server`.
//!
//! Two forms: `--config FILE --node NAME` serves one node of a cluster file;
//! `--cores LIST [--port P] [--addr A]` is a one-node cluster for a quick
//! start (`--port 0` lets the OS pick free ports; the ready line names them).
//! Start-up problems are one line on stderr and exit code 1, never a backtrace.
//!
//! Resource limits (timeouts, `max_connections`, `maxmemory`) come from the
//! cluster file's `[limits]` table; a flag given here overrides it.

use crate::options::ServerOptions;
use crate::server::{StartError, bind, bind_one, serve};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use wire::cluster::{format_cpu_list, parse_cpu_list};
use wire::limits::{format_bytes, parse_bytes, parse_duration};
use wire::{Cluster, Limits, ServerLimits};

/// Command-line options of the server.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Cluster file to serve a node of.
    #[arg(long, value_name = "FILE", requires = "node", conflicts_with = "cores")]
    pub config: Option<PathBuf>,
    /// Name of the `[[server]]` in the cluster file that this process is.
    #[arg(long, value_name = "NAME", requires = "config")]
    pub node: Option<String>,
    /// Quick start: CPUs to run one shard each on, e.g. `0`, `1-7`, `0,2,4`.
    #[arg(long, value_name = "LIST", required_unless_present = "config")]
    pub cores: Option<String>,
    /// Quick start: port of the first shard (shard i gets port+i; 0 = any free ports).
    #[arg(long, default_value_t = wire::cluster::DEFAULT_BASE_PORT)]
    pub port: u16,
    /// Quick start: address to listen on and announce.
    #[arg(long, default_value = "127.0.0.1")]
    pub addr: String,
    /// Quick start: node name.
    #[arg(long, default_value = "local")]
    pub name: String,
    /// A connection must have its hello answered within this time of being
    /// accepted [default: 5s, or the cluster file's].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub handshake_timeout: Option<Duration>,
    /// A frame must be complete within this time of its first byte, however
    /// the bytes trickle in [default: 10s, or the cluster file's].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub frame_timeout: Option<Duration>,
    /// Close a handshaken connection that sends nothing for this long; 0 =
    /// never, as Redis's `timeout` [default: 0, or the cluster file's].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// A batch of replies must be written within this time, or the
    /// connection is closed [default: 30s, or the cluster file's].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub write_timeout: Option<Duration>,
    /// On SIGTERM, cut connections still open after this and exit
    /// [default: 5s, or the cluster file's].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub shutdown_timeout: Option<Duration>,
    /// Most open connections per shard [default: 1024, or the cluster file's].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<u32>,
    /// Store memory for the whole node, split evenly over its shards:
    /// `4gb`, `512mb`, bytes; 0 = no limit. A PUT needing memory past it
    /// gets OutOfMemory [default: none, or the cluster file's].
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub maxmemory: Option<u64>,
    /// Longest RESP bulk string (argument) accepted, like Redis's
    /// `proto-max-bulk-len` [default: 1mb, or the cluster file's].
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub proto_max_bulk_len: Option<u64>,
    /// Most arguments in one RESP command [default: 65536, or the cluster file's].
    #[arg(long, value_name = "N")]
    pub max_multibulk_len: Option<u32>,
    /// Clients must present this secret (RESP `AUTH`, the percore hello)
    /// [default: the cluster file's `requirepass`, else none].
    #[arg(long, value_name = "SECRET", env = "PERCORE_PASSWORD", hide_env_values = true)]
    pub requirepass: Option<String>,
    /// Serve Prometheus metrics on this port of the node's listen address
    /// (0: off) [default: the cluster file's `metrics_port`, else off].
    #[arg(long, value_name = "PORT")]
    pub metrics_port: Option<u16>,
    /// Print rate lines every this many milliseconds (0: never).
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub stats_interval_ms: u64,
    /// Size each shard's table for this many keys at start.
    #[arg(long, value_name = "KEYS", default_value_t = 0)]
    pub capacity: usize,
    /// io_uring registered memory per executor, KiB.
    #[arg(long, value_name = "KIB", default_value_t = 512)]
    pub io_memory_kib: usize,
    /// glommio preemption timer, microseconds. Keep it long: with timers of
    /// a millisecond or less, glommio 0.9 executors were seen to stop running
    /// tasks for seconds under CPU contention (durable nodes too: see the
    /// log module on how the log's I/O avoids waiting behind connections).
    #[arg(long, value_name = "US", default_value_t = 100_000)]
    pub preempt_us: u64,
    /// Keep a durable log in DIR (one directory per shard) and recover from
    /// it at start; `{node}` in it becomes the node's name (nodes that share
    /// a filesystem) [default: the cluster file's `data_dir`, else in memory only].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// When the log syncs, as Redis's appendfsync: always (a reply waits
    /// until what it observed is durable), everysec, no [default: the
    /// cluster file's `fsync`, else everysec]. Needs a data directory.
    #[arg(long, value_name = "MODE")]
    pub fsync: Option<wire::cluster::Fsync>,
    /// Bytes per log segment, e.g. 64mb.
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, default_value = "64mb")]
    pub log_segment_size: u64,
    /// Snapshot each shard (and truncate its log) once this many log bytes
    /// were written since its last snapshot, or as many as that snapshot's
    /// size if more (0: only on SAVE, BGSAVE, `percore save` and at shutdown).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, default_value = "256mb")]
    pub snapshot_after: u64,
    /// Start even when valid records follow a corrupt one in the log,
    /// dropping everything from the corrupt record on (what is dropped is
    /// printed). Without it such a node refuses to start.
    #[arg(long)]
    pub truncate_corrupt_log: bool,
    /// Time between Raft ticks of a replicated shard (the cluster file's
    /// `replicas` > 1): a follower stands for election after 10 to 20 ticks
    /// without a word from its leader, a leader sends heartbeats every 2.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "100ms")]
    pub raft_tick: std::time::Duration,
    /// Serve a replicated shard's reads on a leader lease instead of a
    /// ReadIndex heartbeat round: no round trip per read, but it assumes
    /// that no other replica can be elected within an election timeout (10
    /// ticks) of the leader last hearing from a majority — that the nodes'
    /// clocks advance at the same rate and that the leader's process is
    /// never paused (a leader stopped with SIGSTOP, or stalled by the
    /// machine, and resumed counts no time for the pause and may serve a
    /// stale value). Off by default: ReadIndex rests on no clock.
    #[arg(long)]
    pub read_lease: bool,
    /// This node replaces a dead one, or takes a moved replica: its
    /// replicas join their running groups instead of founding them. Each
    /// starts without a membership, never stands for election, and waits
    /// until the group's leader adds it (`percore members --config FILE`)
    /// and sends it a snapshot. Give it a member id none of its set ever had
    /// (`member` in the cluster file) and an empty data directory; a
    /// replica that already holds a snapshot ignores the flag.
    #[arg(long)]
    pub join: bool,
    /// Spin this many microseconds before an idle executor parks (0: park at once).
    #[arg(long, value_name = "US", default_value_t = 0)]
    pub spin_us: u64,
    /// Test-only: misbehave on purpose (corrupt-values, stale-reads, stall, follower-reads).
    #[cfg(feature = "faults")]
    #[arg(long, value_name = "FAULT")]
    pub fault: Option<crate::options::Fault>,
}

impl ServerArgs {
    /// The resource limits: `base` (the cluster file's), overridden by the
    /// flags that were given.
    pub fn limits(&self, base: ServerLimits) -> Result<ServerLimits, StartError> {
        let mut l = base;
        if let Some(d) = self.handshake_timeout {
            l.handshake_timeout = d;
        }
        if let Some(d) = self.frame_timeout {
            l.frame_timeout = d;
        }
        if let Some(d) = self.idle_timeout {
            l.idle_timeout = (!d.is_zero()).then_some(d);
        }
        if let Some(d) = self.write_timeout {
            l.write_timeout = d;
        }
        if let Some(d) = self.shutdown_timeout {
            l.shutdown_timeout = d;
        }
        if let Some(n) = self.max_connections {
            l.max_connections = n;
        }
        if let Some(m) = self.maxmemory {
            l.maxmemory = (m > 0).then_some(m);
        }
        if let Some(n) = self.proto_max_bulk_len {
            l.proto_max_bulk_len = u32::try_from(n).unwrap_or(u32::MAX);
        }
        if let Some(n) = self.max_multibulk_len {
            l.max_multibulk_len = n;
        }
        l.validate().map_err(|e| wire::cluster::ConfigError::Invalid {
            path: "(command line)".into(),
            message: e.to_string(),
        })?;
        Ok(l)
    }

    /// The options these flags set, over the resource limits `limits` and
    /// what the cluster file says about this node (`requirepass`,
    /// `metrics_port`, `data_dir`, `fsync`); a flag wins over the file.
    pub fn options(&self, limits: ServerLimits, cluster: &Cluster, node: &str) -> Result<ServerOptions, StartError> {
        let invalid = |message: String| wire::cluster::ConfigError::Invalid { path: "(command line)".into(), message };
        // Absolute: the log opens its directory by path from the executors.
        let data_dir = self
            .data_dir
            .clone()
            .or_else(|| cluster.data_dir.as_ref().map(PathBuf::from))
            .map(|d| node_dir(&d, node))
            .map(|d| std::path::absolute(&d).unwrap_or(d));
        let durability = match data_dir {
            Some(data_dir) => {
                let max_frame = u64::from(cluster.limits.max_frame_bytes);
                let least = (2 * max_frame + 2 * crate::log::BLOCK as u64).max(crate::log::SEGMENT_MIN);
                if self.log_segment_size < least {
                    return Err(invalid(format!(
                        "--log-segment-size {} is too small: a segment must hold the largest record twice over, at least {} with max_frame_bytes {}",
                        format_bytes(self.log_segment_size),
                        format_bytes(least),
                        format_bytes(max_frame)
                    ))
                    .into());
                }
                Some(crate::log::Durability {
                    data_dir,
                    fsync: self.fsync.or(cluster.fsync).unwrap_or_default(),
                    segment_bytes: self.log_segment_size.next_multiple_of(crate::log::BLOCK as u64),
                    truncate_corrupt: self.truncate_corrupt_log,
                    snapshot_after: self.snapshot_after,
                })
            }
            None if self.fsync.is_some() => {
                return Err(invalid(
                    "--fsync needs a data directory (--data-dir, or data_dir in the cluster file): without one the node keeps nothing".into(),
                )
                .into());
            }
            None => None,
        };
        if !(Duration::from_millis(1)..=Duration::from_secs(10)).contains(&self.raft_tick) {
            return Err(invalid(format!(
                "--raft-tick {} must be between 1ms and 10s (elections start after 10 to 20 ticks)",
                humantime::format_duration(self.raft_tick)
            ))
            .into());
        }
        let requirepass = self.requirepass.clone().or_else(|| cluster.requirepass.clone()).filter(|p| !p.is_empty());
        let file_port = cluster.server(node).map(|s| s.metrics_port).unwrap_or(0);
        let metrics_port = Some(self.metrics_port.unwrap_or(file_port)).filter(|&p| p > 0);
        Ok(ServerOptions {
            requirepass,
            metrics_port,
            limits,
            stats_interval: (self.stats_interval_ms > 0).then(|| Duration::from_millis(self.stats_interval_ms)),
            capacity: self.capacity,
            io_memory: self.io_memory_kib << 10,
            preempt_timer: Duration::from_micros(self.preempt_us.max(1)),
            spin_before_park: (self.spin_us > 0).then(|| Duration::from_micros(self.spin_us)),
            #[cfg(feature = "faults")]
            fault: self.fault.unwrap_or_default(),
            #[cfg(not(feature = "faults"))]
            fault: Default::default(),
            durability,
            raft_tick: self.raft_tick,
            read_lease: self.read_lease,
            join: self.join,
        })
    }
}

/// Resolves the arguments to a cluster, a node name and bound listeners.
/// `dir` with every `{node}` in it replaced by the node's name, so one
/// cluster file serves nodes that share a filesystem (an NFS home, or
/// network namespaces on one machine) without their logs colliding.
fn node_dir(dir: &std::path::Path, node: &str) -> PathBuf {
    match dir.to_str() {
        Some(s) if s.contains("{node}") => PathBuf::from(s.replace("{node}", node)),
        _ => dir.to_path_buf(),
    }
}

fn prepare(args: &ServerArgs) -> Result<(Cluster, String, Vec<std::net::TcpListener>), StartError> {
    if let (Some(path), Some(node)) = (&args.config, &args.node) {
        let cluster = Cluster::load(path)?;
        let listeners = bind(&cluster, node)?;
        return Ok((cluster, node.clone(), listeners));
    }
    let text = args.cores.as_deref().unwrap_or("0");
    let cores = parse_cpu_list(text)
        .map_err(|message| wire::cluster::ConfigError::Invalid { path: "--cores".into(), message })?;
    // Check CPUs (via a throwaway single-node cluster) before binding anything.
    let probe_ports: Vec<u16> = (0..cores.len()).map(|i| 1 + i as u16).collect();
    let probe = Cluster::single_node(&args.name, &args.addr, &probe_ports, &cores, Limits::default())?;
    crate::server::check_cpus(probe.server(&args.name)?)?;
    let mut listeners = Vec::new();
    for i in 0..cores.len() {
        let port = if args.port == 0 {
            0
        } else {
            args.port.checked_add(i as u16).ok_or_else(|| StartError::Bind {
                endpoint: format!("{}:{}+{i}", args.addr, args.port),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "port out of range"),
            })?
        };
        listeners.push(bind_one(&args.addr, port)?);
    }
    let ports: Vec<u16> = listeners.iter().map(|l| l.local_addr().map(|a| a.port()).unwrap_or(0)).collect();
    let cluster = Cluster::single_node(&args.name, &args.addr, &ports, &cores, Limits::default())?;
    Ok((cluster, args.name.clone(), listeners))
}

/// Runs the server until SIGINT or SIGTERM; returns the process exit code.
pub fn main(args: ServerArgs) -> ExitCode {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while stopping exits at once.
        let registered = signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone())
            .and_then(|_| signal_hook::flag::register(sig, stop.clone()));
        if let Err(e) = registered {
            eprintln!("percore-server: cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    }
    let (cluster, node, listeners) = match prepare(&args) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("percore-server: {e}");
            return ExitCode::from(1);
        }
    };
    let opts = match args.limits(cluster.server_limits) {
        Ok(limits) => match args.options(limits, &cluster, &node) {
            Ok(opts) => opts,
            Err(e) => {
                eprintln!("percore-server: {e}");
                return ExitCode::from(1);
            }
        },
        Err(e) => {
            eprintln!("percore-server: {e}");
            return ExitCode::from(1);
        }
    };
    let shards = listeners.len();
    if let Err(e) = crate::server::fit_fd_limit(shards * opts.limits.max_connections as usize + 64) {
        eprintln!("percore-server: warning: {e}");
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = serve(&cluster, &node, listeners, &opts, stop, &mut out, |endpoints| {
        let cores: Vec<u32> = endpoints.iter().map(|e| e.1).collect();
        let list: Vec<String> =
            endpoints.iter().map(|(id, cpu, addr)| format!("shard {id} cpu {cpu} {addr}")).collect();
        let mut err = std::io::stderr();
        let l = &opts.limits;
        let memory = match l.maxmemory {
            Some(m) => format!("maxmemory {} ({} per shard)", format_bytes(m), format_bytes(m / shards.max(1) as u64)),
            None => "no maxmemory".into(),
        };
        let _ = writeln!(
            err,
            "percore-server: node {node}: limits: handshake {}, frame {}, idle {}, write {}, shutdown {}, {} connections per shard, {memory}",
            humantime::format_duration(l.handshake_timeout),
            humantime::format_duration(l.frame_timeout),
            l.idle_timeout.map_or("off".to_string(), |d| humantime::format_duration(d).to_string()),
            humantime::format_duration(l.write_timeout),
            humantime::format_duration(l.shutdown_timeout),
            l.max_connections,
        );
        let _ = writeln!(
            err,
            "percore-server: node {node} ready: {} shard(s) on cores {} of {} in the cluster: {}",
            endpoints.len(),
            format_cpu_list(&cores),
            cluster.map.len(),
            list.join(", ")
        );
    });
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("percore-server: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::node_dir;
    use std::path::Path;

    #[test]
    fn a_data_dir_names_its_node_where_it_says_node() {
        assert_eq!(node_dir(Path::new("/d/{node}/log"), "n1"), Path::new("/d/n1/log"));
        assert_eq!(node_dir(Path::new("/d/plain"), "n1"), Path::new("/d/plain"));
    }
}

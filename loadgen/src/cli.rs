//! The load generator's command line, shared by `percore-loadgen` and
//! `percore bench`.
//!
//! ```text
//! percore-loadgen load   [target] [options]          insert every record
//! percore-loadgen run    [target] [options] [--load] run a workload (after loading, with --load)
//! percore-loadgen verify [target] [options]          read every record once (--history FILE records it)
//! ```
//!
//! `verify` reads keys `0 … --records − 1`, each exactly once (load thread
//! `i` of `t` reads `i, i + t, …`), checks every value it finds, and counts
//! what it does not find as misses (not an error: a store may hold fewer
//! records). With `--history` the reads are recorded for `percore check`,
//! e.g. as the era after a restart (`percore check run.hist --then
//! verify.hist`): every key's state, read once.
//!
//! The target is `--server HOST:PORT` (the cluster is discovered through the
//! handshake) or `--config FILE` (optionally `--client NAME` to take this
//! node's cores and writer ids from the file). The secret percore hellos
//! carry is `--password`, else `PERCORE_PASSWORD`, else the file's
//! `requirepass` ([`wire::cluster::client_password`]).

use crate::run::{PhaseSpec, RunConfig, RunError, Topology, execute};
use crate::workload::Workload;
use crate::zipf::DistName;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use wire::Cluster;
use wire::cluster::{available_cpus, client_password, format_cpu_list, parse_cpu_list};

/// `percore-loadgen`: YCSB load for percore clusters.
#[derive(Parser, Debug)]
#[command(name = "percore-loadgen", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Insert every record (YCSB's load phase).
    Load(CommonArgs),
    /// Run a workload (YCSB's transaction phase).
    Run(RunArgs),
    /// Read every record once, checking each value (misses are counted, not
    /// errors); with --history, record the reads for `percore check`.
    Verify(VerifyArgs),
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (e.g. 10s, 1m30s, 500ms)"))
}

/// Where the cluster is and which CPUs this process uses.
#[derive(Args, Clone)]
pub struct TargetArgs {
    /// Any server's address; the cluster is discovered through its handshake.
    #[arg(long, short = 's', value_name = "HOST:PORT", default_value = "127.0.0.1:7000")]
    pub server: String,
    /// Cluster file to take the shard map from instead.
    #[arg(long, short = 'c', value_name = "FILE", conflicts_with = "server")]
    pub config: Option<PathBuf>,
    /// The nodes' secret (their `requirepass`), sent in every percore hello
    /// [default: $PERCORE_PASSWORD, else the cluster file's `requirepass`,
    /// else none]. Other users can read a command line: prefer those two.
    #[arg(long, value_name = "SECRET")]
    pub password: Option<String>,
    /// This node's `[[client]]` name in the cluster file (its cores and writer ids).
    #[arg(long, value_name = "NAME", requires = "config")]
    pub client: Option<String>,
    /// CPUs to run one pinned load thread each on (e.g. `1-7`, `0,2,4`).
    /// Default: the client's cores in the file, else the last CPU.
    #[arg(long, value_name = "LIST")]
    pub cores: Option<String>,
    /// Drive another server instead: `redis://HOST:PORT` (RESP) or
    /// `memcached://HOST:PORT` (meta protocol), pipelined like percore's
    /// batches (depth = batch × pipeline). `percore://HOST:PORT` = `--server`.
    /// A `redis://` node that answers `CLUSTER SLOTS` is a Redis Cluster:
    /// every master is driven, each key sent to the one serving its slot
    /// (replicated shards: the run follows their leaders).
    /// `redis-node://HOST:PORT` drives that one node alone (a client
    /// pinned to it; keys it does not serve come back refused).
    #[arg(long, value_name = "URL", conflicts_with = "config")]
    pub target: Option<String>,
    /// Writer id of the first thread (give each client node its own range;
    /// default: 256 × the client's position in the file).
    #[arg(long, value_name = "ID")]
    pub writer_base: Option<u32>,
}

/// The data set and how operations travel.
#[derive(Args, Debug, Clone)]
pub struct ShapeArgs {
    /// Records in the data set (keys "0" … "N-1").
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub records: u64,
    /// Bytes per value (at least 32: values are self-describing).
    #[arg(long, value_name = "BYTES", default_value_t = 128)]
    pub value_size: usize,
    /// Operations per batch (one frame per shard).
    #[arg(long, value_name = "OPS", default_value_t = 1024)]
    pub batch: usize,
    /// Batches in flight per connection.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub pipeline: usize,
    /// Send a partial batch once its first operation has waited this long (µs).
    #[arg(long, value_name = "US", default_value_t = 100)]
    pub flush_us: u64,
    /// RNG seed (thread i uses seed + i).
    #[arg(long, default_value_t = 0x9E37_79B9)]
    pub seed: u64,
    /// A busy connection without a reply for this long fails the run (a
    /// replicated cluster's run instead abandons it, its operations in
    /// flight of unknown outcome, and follows the shard to its leader).
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub timeout: Duration,
    /// Length of one timeline interval: the live lines and the report's
    /// `timeline` (10ms to 1h; shorter shows a failover's gap more finely).
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub interval: Duration,
}

/// Where the results go.
#[derive(Args, Debug, Clone, Default)]
pub struct OutputArgs {
    /// Write the whole report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write HdrHistogram percentile distributions to PREFIX.get.hgrm / PREFIX.put.hgrm.
    #[arg(long, value_name = "PREFIX")]
    pub hgrm: Option<String>,
    /// No live lines on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Options of `load`.
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// Where the cluster is.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Data set and batching.
    #[command(flatten)]
    pub shape: ShapeArgs,
    /// Report files.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// What the run phase does.
#[derive(Args, Debug, Clone)]
pub struct WorkloadArgs {
    /// YCSB workload: a (50/50), b (95/5), c (reads only).
    #[arg(long, short = 'w', value_enum, default_value = "b")]
    pub workload: Workload,
    /// Key distribution.
    #[arg(long, value_enum, default_value = "zipfian")]
    pub dist: DistName,
    /// Zipfian exponent.
    #[arg(long, default_value_t = 0.99)]
    pub theta: f64,
    /// Measured run time (after the warm-up).
    #[arg(long, short = 'd', value_parser = parse_duration, default_value = "10s", conflicts_with = "ops")]
    pub duration: Duration,
    /// Stop after this many operations instead.
    #[arg(long, value_name = "N")]
    pub ops: Option<u64>,
    /// Excluded from the figures (default 1s; 0 with --ops).
    #[arg(long, value_parser = parse_duration)]
    pub warmup: Option<Duration>,
    /// Open loop: this many operations per second in total (Poisson arrivals;
    /// latency counts from each operation's intended time).
    #[arg(long, value_name = "OPS")]
    pub rate: Option<f64>,
    /// Record every operation to this file (see `percore check`).
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
    /// Test aid: each load thread sleeps this many milliseconds once a
    /// second, so a run shows what a client stall looks like (send lag).
    #[arg(long, value_name = "MS", hide = true)]
    pub self_stall_ms: Option<u64>,
}

/// Options of `run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Options shared with `load`.
    #[command(flatten)]
    pub common: CommonArgs,
    /// The workload.
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// Load every record first.
    #[arg(long)]
    pub load: bool,
}

/// Options of `verify`.
#[derive(Args, Debug, Clone)]
pub struct VerifyArgs {
    /// Options shared with `load` (`--records` says which keys are read).
    #[command(flatten)]
    pub common: CommonArgs,
    /// Record every read to this file (see `percore check`).
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,
}

/// Resolved target: topology, threads' CPUs, writer base, node name.
pub struct Target {
    /// Shards.
    pub topology: Topology,
    /// One entry per thread.
    pub cores: Vec<Option<usize>>,
    /// Writer id of thread 0.
    pub writer_base: u32,
    /// This client's name.
    pub node: String,
}

impl std::fmt::Debug for TargetArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetArgs")
            .field("server", &self.server)
            .field("config", &self.config)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("client", &self.client)
            .field("cores", &self.cores)
            .field("target", &self.target)
            .field("writer_base", &self.writer_base)
            .finish()
    }
}

impl TargetArgs {
    /// The secret percore hellos carry ([`client_password`]: `--password`,
    /// else `PERCORE_PASSWORD`, else the file's `requirepass`).
    fn secret(&self, cluster: Option<&Cluster>) -> Option<String> {
        client_password(self.password.as_deref(), cluster)
    }

    /// Resolves where the cluster is and which CPUs to use.
    pub fn resolve(&self, connect_timeout: Duration) -> Result<Target, RunError> {
        let (topology, client) = match (&self.config, &self.target) {
            (None, Some(url)) => (crate::run::Topology::from_url(url, self.secret(None), connect_timeout)?, None),
            (Some(path), _) => {
                let cluster = Cluster::load(path).map_err(wire::Error::from)?;
                let client = match &self.client {
                    Some(name) => {
                        let idx = cluster.clients.iter().position(|c| &c.name == name);
                        let c = cluster.client(name).map_err(wire::Error::from)?.clone();
                        Some((c, idx.unwrap_or(0)))
                    }
                    None => None,
                };
                (Topology::from_cluster(&cluster, self.secret(Some(&cluster))), client)
            }
            (None, None) => (Topology::discover(&self.server, self.secret(None), connect_timeout)?, None),
        };
        let available = available_cpus();
        let cores: Vec<Option<usize>> = match (&self.cores, &client) {
            (Some(list), _) => {
                let cpus = parse_cpu_list(list).map_err(|e| RunError::Config(format!("--cores: {e}")))?;
                for &c in &cpus {
                    if !available.contains(&c) {
                        return Err(RunError::Config(format!(
                            "--cores: CPU {c} is not available (available: {})",
                            format_cpu_list(&available)
                        )));
                    }
                }
                cpus.into_iter().map(|c| Some(c as usize)).collect()
            }
            (None, Some((c, _))) => c.cores.iter().map(|&c| Some(c as usize)).collect(),
            (None, None) => vec![available.last().map(|&c| c as usize)],
        };
        let writer_base = match (self.writer_base, &client) {
            (Some(b), _) => b,
            (None, Some((_, idx))) => (*idx as u32) * 256,
            (None, None) => 0,
        };
        if writer_base as usize + cores.len() > crate::value::LOAD_WRITER as usize {
            return Err(RunError::Config(format!("writer ids {writer_base}+ collide with the load writer")));
        }
        let node = match &client {
            Some((c, _)) => c.name.clone(),
            None => hostname(),
        };
        Ok(Target { topology, cores, writer_base, node })
    }
}

impl ShapeArgs {
    /// The configuration of a phase with this shape.
    pub fn config(&self, phase: PhaseSpec, target: &Target, output: &OutputArgs) -> RunConfig {
        RunConfig {
            phase,
            records: self.records,
            value_size: self.value_size,
            batch: self.batch,
            pipeline: self.pipeline,
            flush: Duration::from_micros(self.flush_us.max(1)),
            cores: target.cores.clone(),
            writer_base: target.writer_base,
            seed: self.seed,
            duration: None,
            warmup: Duration::ZERO,
            interval: self.interval,
            timeout: self.timeout,
            history: None,
            self_stall: None,
            node: target.node.clone(),
            live: !output.quiet,
        }
    }
}

impl WorkloadArgs {
    /// The run phase's configuration.
    pub fn config(&self, shape: &ShapeArgs, target: &Target, output: &OutputArgs) -> RunConfig {
        let phase = PhaseSpec::Run {
            workload: self.workload,
            dist: self.dist,
            theta: self.theta,
            rate: self.rate,
            ops: self.ops,
        };
        let mut cfg = shape.config(phase, target, output);
        cfg.duration = if self.ops.is_some() { None } else { Some(self.duration) };
        cfg.warmup = self.warmup.unwrap_or(if self.ops.is_some() { Duration::ZERO } else { Duration::from_secs(1) });
        cfg.history.clone_from(&self.history);
        cfg.self_stall = self.self_stall_ms.filter(|&ms| ms > 0).map(Duration::from_millis);
        cfg
    }
}

/// The host name, for reports and history headers.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Prints a report and writes the files asked for; returns false if the
/// run failed (connection error, bad reads, or operations refused as
/// another shard's: percore's WrongShard, Redis Cluster's `MOVED`/`ASK`;
/// those are expected, and no failure, in a run that follows replicated
/// shards' leaders and in one pinned to a node).
pub fn emit(report: &crate::report::Report, output: &OutputArgs) -> bool {
    print!("{}", report.text());
    let expected = report.failover.is_some() || report.config.topology.starts_with("redis-node://");
    let misrouted = if expected { 0 } else { report.error_detail.wrong_shard };
    if misrouted > 0 {
        eprintln!(
            "percore-loadgen: {misrouted} operations refused as another shard's (WrongShard; MOVED or ASK from a \
             Redis Cluster): the slot map changed during the run"
        );
    }
    if let Some(path) = &output.json
        && let Err(e) = report.write_json(path)
    {
        eprintln!("percore-loadgen: cannot write {}: {e}", path.display());
        return false;
    }
    if let Some(prefix) = &output.hgrm {
        match report.write_hgrm(prefix) {
            Ok(files) => {
                for f in files {
                    eprintln!("percore-loadgen: wrote {f}");
                }
            }
            Err(e) => {
                eprintln!("percore-loadgen: cannot write {prefix}.*.hgrm: {e}");
                return false;
            }
        }
    }
    // A run that follows leaders abandons and redials what an election
    // refused; a load or a verification has no failover, and what it was
    // refused is not done (records not written, or not read).
    let leaderless = if report.failover.is_some() { 0 } else { report.error_detail.no_leader };
    if leaderless > 0 {
        eprintln!(
            "percore-loadgen: {leaderless} operations refused because their shard had no serving leader (an election): they were not done; run the {} again",
            report.phase
        );
    }
    report.error_detail.connection.is_none() && report.bad_reads == 0 && misrouted == 0 && leaderless == 0
}

/// A stop flag that SIGINT/SIGTERM set (the run then reports what it measured).
pub fn stop_on_signals() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone());
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    stop
}

/// Runs the command line; the process exit code (0 ok, 1 failed run, bad
/// reads or misrouted operations, 2 could not start).
pub fn main(cli: Cli) -> ExitCode {
    let stop = stop_on_signals();
    let (common, run, verify) = match &cli.command {
        Command::Load(c) => (c.clone(), None, None),
        Command::Run(r) => (r.common.clone(), Some(r), None),
        Command::Verify(v) => (v.common.clone(), None, Some(v)),
    };
    let target = match common.target.resolve(Duration::from_secs(5)) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("percore-loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let mut ok = true;
    let no_files = OutputArgs { quiet: common.output.quiet, ..OutputArgs::default() };
    let phases: Vec<(RunConfig, &OutputArgs)> = match (run, verify) {
        (_, Some(v)) => {
            let mut cfg = common.shape.config(PhaseSpec::Verify, &target, &common.output);
            cfg.history.clone_from(&v.history);
            vec![(cfg, &common.output)]
        }
        (Some(r), None) => {
            let run_cfg = r.workload.config(&common.shape, &target, &common.output);
            let load_cfg = common.shape.config(PhaseSpec::Load, &target, &common.output);
            // With --load the files describe the run phase.
            let load = r.load.then_some((load_cfg, &no_files));
            load.into_iter().chain([(run_cfg, &common.output)]).collect()
        }
        (None, None) => vec![(common.shape.config(PhaseSpec::Load, &target, &common.output), &common.output)],
    };
    for (cfg, output) in phases {
        if !ok {
            break;
        }
        match execute(&target.topology, &cfg, stop.clone()) {
            Ok(report) => ok &= emit(&report, output),
            Err(e) => {
                eprintln!("percore-loadgen: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

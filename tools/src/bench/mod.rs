//! `percore bench`: the whole benchmark on this machine, in one command;
//! [`compare`]: `bench --vs`, the same against peers; [`process`]: the
//! server child process both run.
//!
//! Starts a percore server (this same binary, `percore server`) pinned to
//! the server cores, loads every record, runs the workload from load
//! threads pinned to the other cores, prints the report with the server's
//! CPU cost per operation and memory, and stops the server.
//!
//! With `--check`, the run phase is recorded to a history file (a
//! temporary one, removed afterwards, unless `--history FILE` names one)
//! and checked for linearizability once the server has stopped
//! ([`crate::cmd::check`]); the verdict, the history's size and the check's time
//! and peak memory join the report (`check` line, `check` in the JSON).
//!
//! With `--protocol resp`, the load (and the records' load) travels in
//! Redis's RESP through the server's RESP door (each core's port, told
//! apart by the first bytes): the load generator asks the first core
//! `CLUSTER SLOTS` and drives every core as a Redis Cluster master, each
//! key to the core serving its slot, every read verified as with percore's
//! frames. The report's `config.protocol` says which protocol ran
//! (`percore` or `resp`); `config.target` is `percore` either way.
//!
//! The server it starts has no secret, whatever `PERCORE_PASSWORD` says
//! ([`process`] does not pass the variable on): it listens on loopback, for
//! the run's length only, and its clients present none.
//!
//! Default split of the machine's N CPUs: N = 1 shares CPU 0; N = 2 puts the
//! server on CPU 0 and the load on CPU 1; N ≥ 3 leaves CPU 0 to interrupts
//! and gives the server CPUs 1…⌊(N−1)/2⌋ and the load the rest (16 CPUs:
//! 7 server cores, 8 load cores).

pub mod compare;
pub mod curve;
pub mod process;

use crate::bench::process::ServerProcess;
use crate::cmd::check::check_files;
use clap::Args;
use loadgen::cli::{OutputArgs, ShapeArgs, Target, WorkloadArgs, emit, stop_on_signals};
use loadgen::report::ServerSide;
use loadgen::run::{PhaseSpec, Topology, execute};
use std::path::PathBuf;
use std::time::Duration;
use wire::cluster::{available_cpus, format_cpu_list, parse_cpu_list};

/// What `percore bench`'s load speaks to the server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchProtocol {
    /// percore's own frames, each shard discovered through the handshake.
    #[default]
    Percore,
    /// Redis's RESP through each core's RESP door, the cores found as a
    /// Redis Cluster's masters (`CLUSTER SLOTS`).
    Resp,
}

/// `percore bench` options.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// What the load speaks to the server: `percore` frames, or `resp`
    /// through each core's RESP door (driven as a Redis Cluster).
    /// (`--vs` and `--rates` run percore's own frames.)
    #[arg(long, value_enum, default_value = "percore")]
    pub protocol: BenchProtocol,
    /// CPUs for the server's shards (default: see above).
    #[arg(long, value_name = "LIST")]
    pub server_cores: Option<String>,
    /// CPUs for the load threads (default: see above).
    #[arg(long, value_name = "LIST")]
    pub client_cores: Option<String>,
    /// Port of the server's first shard (0: any free ports).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Also run the same workload against these servers, pinned to the same
    /// cores, and print one comparison table (`redis`, `memcached`).
    #[arg(long, value_name = "LIST")]
    pub vs: Option<String>,
    /// Open-loop latency curve: run the workload at each of these offered
    /// rates (`200k,1M,2M`), against percore and the `--vs` servers, and
    /// print p50/p99/p99.9 per rate (table, `--json`, PNG).
    #[arg(long, value_name = "LIST", conflicts_with = "rate")]
    pub rates: Option<String>,
    /// Rounds of a comparison or of each curve point (each server once per
    /// round; medians reported).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub rounds: usize,
    /// Chart of the comparison or curve (PNG; default: next to --json, if given).
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
    /// Record the run and check it for linearizability at the end (the
    /// verdict joins the report; exit 1 on a violation, 3 if undecided).
    #[arg(long, conflicts_with_all = ["vs", "rates"])]
    pub check: bool,
    /// The workload.
    #[command(flatten)]
    pub workload: WorkloadArgs,
    /// Data set and batching.
    #[command(flatten)]
    pub shape: ShapeArgs,
    /// Report files.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// The default split of `cpus` into (server, client) cores.
pub fn split_cores(cpus: &[u32]) -> (Vec<u32>, Vec<u32>) {
    match cpus.len() {
        0 => (vec![0], vec![0]),
        1 => (cpus.to_vec(), cpus.to_vec()),
        2 => (vec![cpus[0]], vec![cpus[1]]),
        n => {
            let servers = (n - 1) / 2;
            (cpus[1..=servers].to_vec(), cpus[servers + 1..].to_vec())
        }
    }
}

fn list(arg: &Option<String>, default: Vec<u32>, what: &str) -> Result<Vec<u32>, String> {
    match arg {
        Some(text) => parse_cpu_list(text).map_err(|e| format!("--{what}: {e}")),
        None => Ok(default),
    }
}

/// Removes a temporary file when dropped.
struct Removal(Option<PathBuf>);

impl Drop for Removal {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Runs the benchmark; the exit code (0 ok, 1 errors, bad reads or a
/// linearizability violation, 2 could not run, 3 linearizability undecided).
pub fn bench(args: &BenchArgs) -> u8 {
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("percore bench: {e}");
            2
        }
    }
}

fn run(args: &BenchArgs) -> Result<u8, String> {
    if args.protocol == BenchProtocol::Resp && (args.vs.is_some() || args.rates.is_some()) {
        return Err("--protocol resp runs percore alone; --vs and --rates compare through percore's frames".into());
    }
    let cpus = available_cpus();
    let (def_server, def_client) = split_cores(&cpus);
    let server_cores = list(&args.server_cores, def_server, "server-cores")?;
    let client_cores = list(&args.client_cores, def_client, "client-cores")?;
    for &c in server_cores.iter().chain(&client_cores) {
        if !cpus.contains(&c) {
            return Err(format!("CPU {c} is not available (available: {})", format_cpu_list(&cpus)));
        }
    }
    if args.png.is_some() && args.vs.is_none() && args.rates.is_none() {
        return Err("--png draws a comparison or a curve: give --vs or --rates too".into());
    }
    if args.vs.is_some() || args.rates.is_some() {
        let peers = crate::bench::compare::parse_peers(args.vs.as_deref().unwrap_or(""))?;
        if args.rounds == 0 {
            return Err("--rounds must be at least 1".into());
        }
        let clean = match &args.rates {
            Some(list) => {
                let rates = crate::bench::curve::parse_rates(list)?;
                crate::bench::curve::run(args, &rates, &server_cores, &client_cores, &peers)?
            }
            None => crate::bench::compare::run(args, &server_cores, &client_cores, &peers)?,
        };
        return Ok(u8::from(!clean));
    }
    let shards = server_cores.len() as u64;
    let capacity = (args.shape.records / shards + 1) * 11 / 10;
    let server_args: Vec<String> = vec![
        "--cores".into(),
        format_cpu_list(&server_cores),
        "--port".into(),
        args.port.to_string(),
        "--stats-interval-ms".into(),
        "0".into(),
        "--capacity".into(),
        capacity.to_string(),
    ];
    let server = ServerProcess::start(&server_args)?;
    eprintln!(
        "bench: server (pid {}) on cores {}: {}; load threads on cores {}{}",
        server.pid().unwrap_or(0),
        format_cpu_list(&server_cores),
        server.endpoints.join(" "),
        format_cpu_list(&client_cores),
        if args.protocol == BenchProtocol::Resp { ", through RESP" } else { "" }
    );
    let topology = match args.protocol {
        BenchProtocol::Percore => {
            Topology::discover(&server.endpoints[0], None, Duration::from_secs(5)).map_err(|e| e.to_string())?
        }
        BenchProtocol::Resp => resp_topology(&server.endpoints)?,
    };
    let target = Target {
        topology,
        cores: client_cores.iter().map(|&c| Some(c as usize)).collect(),
        writer_base: 0,
        node: loadgen::cli::hostname(),
    };
    let stop = stop_on_signals();

    let quiet = OutputArgs { quiet: true, ..OutputArgs::default() };
    let load_cfg = args.shape.config(PhaseSpec::Load, &target, &quiet);
    eprintln!("bench: loading {} records of {} B…", args.shape.records, args.shape.value_size);
    let load = execute(&target.topology, &load_cfg, stop.clone()).map_err(|e| e.to_string())?;
    if load.errors > 0 || load.error_detail.connection.is_some() {
        print!("{}", load.text());
        return Ok(1);
    }
    let rss = server.rss_bytes();
    eprintln!(
        "bench: loaded in {:.2} s ({:.2} M ops/s); server RSS {}",
        load.duration_s,
        load.throughput_ops_s / 1e6,
        rss.map_or("?".into(), |b| format!("{:.1} MB", b as f64 / 1e6))
    );

    let mut client = wire::client::Client::discover(&server.endpoints[0], None, Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    let ops_before: u64 = client.stats().map_err(|e| e.to_string())?.iter().map(|s| s.counters.ops).sum();
    let cpu_before = server.cpu_time();
    let mut run_cfg = args.workload.config(&args.shape, &target, &args.output);
    let mut temporary = Removal(None);
    if args.check && run_cfg.history.is_none() {
        let path = std::env::temp_dir().join(format!("percore-bench-{}.hist", std::process::id()));
        run_cfg.history = Some(path.clone());
        temporary.0 = Some(path);
    }
    let result = execute(&target.topology, &run_cfg, stop);
    let cpu_after = server.cpu_time();
    let ops_after: Option<u64> = client.stats().ok().map(|v| v.iter().map(|s| s.counters.ops).sum());
    let (status, _out, err) = server.stop();
    let mut report = result.map_err(|e| e.to_string())?;
    // The server is percore's, whatever the protocol (`config.protocol`).
    report.config.target = "percore".into();
    let cpu_ns_per_op = match (cpu_before, cpu_after, ops_after) {
        (Some(a), Some(b), Some(ops)) if ops > ops_before => {
            Some(b.saturating_sub(a).as_nanos() as f64 / (ops - ops_before) as f64)
        }
        _ => None,
    };
    report.server =
        Some(ServerSide { cpu_ns_per_op, rss_mb_after_load: rss.map(|b| b as f64 / 1e6), cores: server_cores.clone() });
    let mut verdict = 0;
    if args.check
        && let Some(path) = &run_cfg.history
    {
        let (json, code) = check_history(path);
        report.check = Some(json);
        verdict = code;
    }
    drop(temporary);
    let ok = emit(&report, &args.output);
    if !status.is_some_and(|s| s.success()) {
        eprintln!("bench: the server did not exit cleanly ({status:?}): {}", err.trim());
        return Ok(1);
    }
    Ok(match (ok && report.errors == 0, verdict) {
        (_, 1) | (false, _) => 1,
        (true, v) => v,
    })
}

/// The server's cores as RESP sees them: the first core's RESP door (its
/// port, which tells RESP from frames by the first bytes) is asked
/// `CLUSTER SLOTS`; it must list one master per shard.
fn resp_topology(endpoints: &[String]) -> Result<Topology, String> {
    let first = endpoints.first().ok_or("the server named no endpoint")?;
    let topo = Topology::from_url(&format!("redis://{first}"), None, Duration::from_secs(5))
        .map_err(|e| format!("the server's RESP door: {e}"))?;
    if topo.map.len() != endpoints.len() {
        return Err(format!(
            "the server's RESP door at {first} lists {} cluster master(s) (CLUSTER SLOTS), but the server has {} shard(s)",
            topo.map.len(),
            endpoints.len()
        ));
    }
    Ok(topo)
}

/// Checks the run's history: the report's `check` object and the exit code
/// of the verdict (0, 1, 3; 1 if the check could not run).
fn check_history(path: &std::path::Path) -> (serde_json::Value, u8) {
    eprintln!("bench: checking the run's history for linearizability…");
    // Peak memory from here on is the check's: reset VmHWM (Linux ≥ 4.0).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    match check_files(&[path.to_path_buf()], &check::Options::default()) {
        Ok(o) => {
            let mut json = o.to_json();
            json["line"] = serde_json::Value::String(format!(
                "{}; {:.1} MB of history checked in {:.2} s ({:.2} M ops/s), peak RSS {}",
                o.line(),
                o.bytes as f64 / 1e6,
                o.seconds,
                o.ops_per_s() / 1e6,
                o.peak_rss_bytes.map_or("?".into(), |b| format!("{:.0} MB", b as f64 / 1e6))
            ));
            if let Some(w) = o.violations.first() {
                eprint!("bench: {}\n{}", o.line(), w.render(&o.files, &o.values));
            }
            (json, o.exit_code())
        }
        Err(e) => (serde_json::json!({ "verdict": "error", "line": format!("could not check: {e}") }), 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> Result<BenchArgs, clap::Error> {
        use clap::Parser;
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).map(|c| c.bench)
    }

    #[test]
    fn protocol_is_percore_unless_resp_is_asked() {
        assert_eq!(parse(&[]).expect("no flags").protocol, BenchProtocol::Percore);
        assert_eq!(parse(&["--protocol", "resp"]).expect("resp").protocol, BenchProtocol::Resp);
        assert_eq!(parse(&["--protocol", "percore"]).expect("percore").protocol, BenchProtocol::Percore);
        assert!(parse(&["--protocol", "memcache"]).is_err());
        // A comparison or a curve runs percore's own protocol: refused
        // before any server starts.
        for other in [["--vs", "redis"], ["--rates", "1k"]] {
            let args = parse(&["--protocol", "resp", other[0], other[1]]).expect("parses");
            let e = run(&args).expect_err("refused");
            assert!(e.contains("--protocol resp"), "{e}");
        }
    }

    #[test]
    fn splits_the_machine_sensibly() {
        assert_eq!(split_cores(&[0]), (vec![0], vec![0]));
        assert_eq!(split_cores(&[0, 1]), (vec![0], vec![1]));
        let sixteen: Vec<u32> = (0..16).collect();
        assert_eq!(split_cores(&sixteen), ((1..=7).collect(), (8..16).collect()));
        let eight: Vec<u32> = (0..8).collect();
        assert_eq!(split_cores(&eight), ((1..=3).collect(), (4..8).collect()));
    }
}

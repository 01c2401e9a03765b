//! `percore bench --vs redis,memcached`: the same workload, from the same
//! client, against several servers, in one table.
//!
//! Every server is started pinned to the same server cores with persistence
//! off, loaded with the same records, then the workload runs against each
//! in turn, round after round (percore, redis, memcached, percore, …), so a
//! noisy moment on a shared machine hits every server rather than one.
//! Each figure in the table is the median over the rounds.
//!
//! Server CPU per operation is the server process's user + system time
//! during a run divided by the operations issued in it (warm-up included).
//! RSS is the server's resident memory right after the load.

use crate::bench::BenchArgs;
use crate::bench::process::{ServerProcess, cpu_time_of as cpu_time, rss_of as rss};
use crate::report::median;
use loadgen::cli::{OutputArgs, Target};
use loadgen::report::Report;
use loadgen::run::{Peer, PhaseSpec, Topology, execute};
use serde::Serialize;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use wire::cluster::format_cpu_list;

/// A server under comparison.
pub(crate) enum Running {
    Percore(ServerProcess),
    Peer(Child),
}

impl Running {
    fn pid(&self) -> Option<u32> {
        match self {
            Running::Percore(p) => p.pid(),
            Running::Peer(c) => Some(c.id()),
        }
    }

    fn stop(self) {
        match self {
            Running::Percore(p) => {
                let _ = p.stop();
            }
            Running::Peer(mut c) => {
                // SAFETY: kill(2) on our own child's PID.
                unsafe {
                    libc::kill(c.id() as i32, libc::SIGTERM);
                }
                for _ in 0..100 {
                    if let Ok(Some(_)) = c.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

fn which(program: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([std::path::PathBuf::from("/usr/sbin"), std::path::PathBuf::from("/usr/bin")])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

/// Finds `program`, installing `package` with apt-get when running as root.
fn ensure(program: &str, package: &str) -> Result<String, String> {
    if let Some(p) = which(program) {
        return Ok(p);
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root && which("apt-get").is_some() {
        eprintln!("bench: installing {package} with apt-get");
        let ok = Command::new("apt-get")
            .args(["install", "-y", "-qq", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok && let Some(p) = which(program) {
            return Ok(p);
        }
    }
    Err(format!("{program} is not installed; install it with: sudo apt-get install {package}"))
}

/// Starts a peer server pinned to `cores`.
fn start_peer(peer: Peer, cores: &[u32], port: u16) -> Result<Child, String> {
    let mut cmd =
        match peer {
            Peer::Redis => {
                let mut c = Command::new(ensure("redis-server", "redis-server")?);
                c.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                    .args(["--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning"]);
                c
            }
            Peer::Memcached => {
                let mut c = Command::new(ensure("memcached", "memcached")?);
                c.args(["-p", &port.to_string(), "-l", "127.0.0.1", "-U", "0", "-m", "4096", "-c", "4096"])
                    .args(["-t", &cores.len().to_string()]);
                // SAFETY: geteuid has no preconditions.
                if unsafe { libc::geteuid() } == 0 {
                    c.args(["-u", "root"]);
                }
                c
            }
            Peer::Percore => return Err("percore is not a peer".into()),
        };
    let cpus: Vec<usize> = cores.iter().map(|&c| c as usize).collect();
    // SAFETY: the closure only calls async-signal-safe libc functions
    // (sched_setaffinity) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for &c in &cpus {
                libc::CPU_SET(c, &mut set);
            }
            if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", peer.name()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(format!("{} did not listen on port {port} within 10 s", peer.name()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

/// One server's figures over the rounds.
#[derive(Clone, Debug, Serialize)]
pub struct ServerResult {
    /// percore, redis or memcached.
    pub server: String,
    /// Median throughput over the rounds.
    pub throughput_ops_s: f64,
    /// Median GET p50 (µs).
    pub get_p50_us: Option<f64>,
    /// Median GET p99 (µs).
    pub get_p99_us: Option<f64>,
    /// Median server CPU per operation (ns).
    pub server_cpu_ns_per_op: Option<f64>,
    /// Resident memory after the load (MB).
    pub rss_mb_after_load: Option<f64>,
    /// Throughput ÷ percore's.
    pub ratio_to_percore: f64,
    /// Every round's throughput.
    pub rounds_ops_s: Vec<f64>,
    /// Bad reads over all rounds (0 in a correct run).
    pub bad_reads: u64,
    /// Errors over all rounds.
    pub errors: u64,
}

/// The whole comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// The configuration (of the last percore run).
    pub config: loadgen::report::RunConfigReport,
    /// Server cores, shared by every server.
    pub server_cores: Vec<u32>,
    /// Rounds.
    pub rounds: usize,
    /// One row per server.
    pub results: Vec<ServerResult>,
}

/// Parses `--vs redis,memcached`.
pub fn parse_peers(list: &str) -> Result<Vec<Peer>, String> {
    let mut peers = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let p = match name {
            "redis" | "valkey" => Peer::Redis,
            "memcached" | "memcache" => Peer::Memcached,
            "percore" => continue,
            other => return Err(format!("--vs: unknown server {other:?} (redis, memcached)")),
        };
        if !peers.contains(&p) {
            peers.push(p);
        }
    }
    Ok(peers)
}

/// The servers under comparison, started: percore first.
pub(crate) type Servers = Vec<(Peer, Running, Topology)>;

pub(crate) fn stop_all(servers: Servers) {
    for (_, r, _) in servers {
        r.stop();
    }
}

/// Starts percore and every peer pinned to `server_cores`.
pub(crate) fn start_all(
    args: &BenchArgs,
    server_cores: &[u32],
    client_cores: &[u32],
    peers: &[Peer],
) -> Result<Servers, String> {
    let mut servers: Servers = Vec::new();
    let shards = server_cores.len() as u64;
    let capacity = (args.shape.records / shards + 1) * 11 / 10;
    let percore = ServerProcess::start(&[
        "--cores".into(),
        format_cpu_list(server_cores),
        "--port".into(),
        "0".into(),
        "--stats-interval-ms".into(),
        "0".into(),
        "--capacity".into(),
        capacity.to_string(),
    ])?;
    let topo = Topology::discover(&percore.endpoints[0], None, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    servers.push((Peer::Percore, Running::Percore(percore), topo));
    for &peer in peers {
        let port = free_port()?;
        match start_peer(peer, server_cores, port) {
            Ok(child) => {
                let topo = Topology::single(peer, &format!("127.0.0.1:{port}")).map_err(|e| e.to_string())?;
                servers.push((peer, Running::Peer(child), topo));
            }
            Err(e) => {
                stop_all(servers);
                return Err(e);
            }
        }
    }
    eprintln!(
        "bench: {} on server cores {}, load on cores {}",
        servers.iter().map(|(p, ..)| p.name()).collect::<Vec<_>>().join(", "),
        format_cpu_list(server_cores),
        format_cpu_list(client_cores)
    );
    Ok(servers)
}

/// Runs the comparison; true if every run was clean.
pub fn run(args: &BenchArgs, server_cores: &[u32], client_cores: &[u32], peers: &[Peer]) -> Result<bool, String> {
    let servers = start_all(args, server_cores, client_cores, peers)?;
    let result = measure(args, client_cores, &servers);
    stop_all(servers);
    let (config, results) = result?;
    let comparison = Comparison { config, server_cores: server_cores.to_vec(), rounds: args.rounds, results };
    publish(args, &table(&comparison), &comparison, |path| chart(&comparison, path))?;
    Ok(comparison.results.iter().all(|r| r.bad_reads == 0 && r.errors == 0))
}

/// Prints a comparison's or curve's `table`, writes `value` as `--json`,
/// and draws its `chart` to `--png` (default: next to the JSON, if any).
pub(crate) fn publish<T: Serialize>(
    args: &BenchArgs,
    table: &str,
    value: &T,
    chart: impl FnOnce(&std::path::Path) -> Result<(), String>,
) -> Result<(), String> {
    print!("{table}");
    if let Some(path) = &args.output.json {
        let json = serde_json::to_vec_pretty(value).map_err(|e| e.to_string())?;
        std::fs::write(path, json).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let png = args.png.clone().or_else(|| args.output.json.as_ref().map(|j| j.with_extension("png")));
    if let Some(path) = png {
        chart(&path)?;
        eprintln!("bench: wrote {}", path.display());
    }
    Ok(())
}

/// The comparison as a bar chart: ops/s per server, ratio to percore on top.
pub fn chart(c: &Comparison, path: &std::path::Path) -> Result<(), String> {
    let bars: Vec<(String, f64, String)> = c
        .results
        .iter()
        .map(|r| {
            let note = format!("{} ({:.2}×)", crate::report::plot::si(r.throughput_ops_s), r.ratio_to_percore);
            (r.server.clone(), r.throughput_ops_s, note)
        })
        .collect();
    let cfg = &c.config;
    let title = format!(
        "YCSB-{} {}, batch {} × pipeline {}, servers on cores {}",
        cfg.workload.as_deref().unwrap_or("?"),
        cfg.distribution.as_deref().unwrap_or("?"),
        cfg.batch,
        cfg.pipeline,
        format_cpu_list(&c.server_cores)
    );
    crate::report::plot::bars(path, &title, &format!("ops/s (median of {} rounds)", c.rounds), &bars)
        .map_err(|e| e.to_string())
}

/// The load threads' target for one server.
fn target(topo: &Topology, client_cores: &[u32]) -> Target {
    Target {
        topology: topo.clone(),
        cores: client_cores.iter().map(|&c| Some(c as usize)).collect(),
        writer_base: 0,
        node: loadgen::cli::hostname(),
    }
}

/// Loads every server; their resident memory (bytes) right after.
pub(crate) fn load_all(args: &BenchArgs, client_cores: &[u32], servers: &Servers) -> Result<Vec<Option<u64>>, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let quiet = OutputArgs { quiet: true, ..OutputArgs::default() };
    let mut rss_after_load = Vec::new();
    for (peer, running, topo) in servers {
        eprintln!("bench: loading {} records into {}…", args.shape.records, peer.name());
        let cfg = args.shape.config(PhaseSpec::Load, &target(topo, client_cores), &quiet);
        let load = execute(topo, &cfg, stop.clone()).map_err(|e| format!("{}: {e}", peer.name()))?;
        if load.errors > 0 {
            return Err(format!("{}: the load phase failed: {}", peer.name(), load.text()));
        }
        rss_after_load.push(running.pid().and_then(rss));
    }
    Ok(rss_after_load)
}

/// One round: the workload (closed loop, or open loop at `rate` ops/s)
/// against every server in turn; one report per server, with the server's
/// CPU per operation filled in.
pub(crate) fn round(
    args: &BenchArgs,
    client_cores: &[u32],
    servers: &Servers,
    rate: Option<f64>,
    rss_after_load: &[Option<u64>],
) -> Result<Vec<Report>, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let quiet = OutputArgs { quiet: true, ..OutputArgs::default() };
    let mut workload = args.workload.clone();
    if rate.is_some() {
        workload.rate = rate;
    }
    let mut reports = Vec::new();
    for (i, (peer, running, topo)) in servers.iter().enumerate() {
        let cfg = workload.config(&args.shape, &target(topo, client_cores), &quiet);
        let before = running.pid().and_then(cpu_time);
        let mut report = execute(topo, &cfg, stop.clone()).map_err(|e| format!("{}: {e}", peer.name()))?;
        let after = running.pid().and_then(cpu_time);
        if let (Some(a), Some(b)) = (before, after)
            && report.issued > 0
        {
            report.server = Some(loadgen::report::ServerSide {
                cpu_ns_per_op: Some(b.saturating_sub(a).as_nanos() as f64 / report.issued as f64),
                rss_mb_after_load: rss_after_load[i].map(|b| b as f64 / 1e6),
                cores: Vec::new(),
            });
        }
        reports.push(report);
    }
    Ok(reports)
}

type Measured = (loadgen::report::RunConfigReport, Vec<ServerResult>);

fn measure(args: &BenchArgs, client_cores: &[u32], servers: &Servers) -> Result<Measured, String> {
    let rss_after_load = load_all(args, client_cores, servers)?;
    let mut runs: Vec<Vec<Report>> = servers.iter().map(|_| Vec::new()).collect();
    for n in 0..args.rounds {
        for (i, report) in round(args, client_cores, servers, None, &rss_after_load)?.into_iter().enumerate() {
            eprintln!(
                "bench: round {}/{} {:<10} {:>12.0} ops/s",
                n + 1,
                args.rounds,
                servers[i].0.name(),
                report.throughput_ops_s
            );
            runs[i].push(report);
        }
    }
    let config = runs[0].last().map(|r| r.config.clone()).ok_or("no percore run")?;
    let base = median(&runs[0].iter().map(|r| r.throughput_ops_s).collect::<Vec<_>>()).unwrap_or(0.0);
    let results = servers
        .iter()
        .zip(&runs)
        .zip(&rss_after_load)
        .map(|(((peer, ..), reports), rss)| {
            let tput = median(&reports.iter().map(|r| r.throughput_ops_s).collect::<Vec<_>>()).unwrap_or(0.0);
            ServerResult {
                server: peer.name().to_string(),
                throughput_ops_s: tput,
                get_p50_us: median_of(reports, |r| r.latency_us.get.as_ref().map(|p| p.p50)),
                get_p99_us: median_of(reports, |r| r.latency_us.get.as_ref().map(|p| p.p99)),
                server_cpu_ns_per_op: median_of(reports, |r| r.server.as_ref().and_then(|s| s.cpu_ns_per_op)),
                rss_mb_after_load: rss.map(|b| b as f64 / 1e6),
                ratio_to_percore: if base > 0.0 { tput / base } else { 0.0 },
                rounds_ops_s: reports.iter().map(|r| r.throughput_ops_s).collect(),
                bad_reads: reports.iter().map(|r| r.bad_reads).sum(),
                errors: reports.iter().map(|r| r.errors).sum(),
            }
        })
        .collect();
    Ok((config, results))
}

/// The median over `reports` of a figure that some may lack.
pub(crate) fn median_of(reports: &[Report], figure: impl Fn(&Report) -> Option<f64>) -> Option<f64> {
    median(&reports.iter().filter_map(figure).collect::<Vec<_>>())
}

/// A figure with `digits` decimals, or `-` if there is none.
pub(crate) fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |x| format!("{x:.digits$}"))
}

/// What ran, for a table's title: workload, data set, batching, load
/// threads, server cores and rounds.
pub(crate) fn setup_line(cfg: &loadgen::report::RunConfigReport, server_cores: &[u32], rounds: usize) -> String {
    format!(
        "YCSB-{} {}, {} records × {} B, batch {} × pipeline {}, flush {} µs, {} load thread(s); servers on cores {}; median of {} round(s)",
        cfg.workload.as_deref().unwrap_or("?"),
        cfg.distribution.as_deref().unwrap_or("?"),
        cfg.records,
        cfg.value_size,
        cfg.batch,
        cfg.pipeline,
        cfg.flush_us,
        cfg.threads,
        format_cpu_list(server_cores),
        rounds
    )
}

/// The comparison table.
pub fn table(c: &Comparison) -> String {
    let mut t = format!("== percore bench --vs — {}\n", setup_line(&c.config, &c.server_cores, c.rounds));
    t.push_str(&format!(
        "{:<10} {:>14} {:>12} {:>12} {:>16} {:>14} {:>10} {:>9}\n",
        "server", "ops/s", "GET p50 µs", "GET p99 µs", "server CPU ns/op", "RSS after load", "vs percore", "bad/err"
    ));
    for r in &c.results {
        t.push_str(&format!(
            "{:<10} {:>14.0} {:>12} {:>12} {:>16} {:>14} {:>10} {:>9}\n",
            r.server,
            r.throughput_ops_s,
            opt(r.get_p50_us, 1),
            opt(r.get_p99_us, 1),
            opt(r.server_cpu_ns_per_op, 1),
            r.rss_mb_after_load.map_or("-".into(), |m| format!("{m:.1} MB")),
            format!("{:.3}×", r.ratio_to_percore),
            format!("{}/{}", r.bad_reads, r.errors),
        ));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_lists() {
        assert_eq!(parse_peers("redis,memcached"), Ok(vec![Peer::Redis, Peer::Memcached]));
        assert_eq!(parse_peers("redis, redis,percore"), Ok(vec![Peer::Redis]));
        assert!(parse_peers("mysql").is_err());
    }
}

//! `percore report DIR`: the report a person reads after a cluster run, made
//! from what `cluster/run.sh` collected; `percore report --sweep OUT DIR…`:
//! the scaling table and plots of a sweep.
//!
//! # What a run directory holds (written by `cluster/run.sh`)
//!
//! | file | what |
//! |---|---|
//! | `cluster.toml` | the cluster file of the run (roles, cores) |
//! | `run.txt` | `key=value` lines: `started_utc`, `finished_utc`, `loadgen_args`, optional `line_rate_gbps` |
//! | `NODE.server.log` | the server's stdout during the run: its `ops/s N` line and per-core lines every second |
//! | `NODE.loadgen.json` | each client's `percore loadgen run --json` report (with its merged histograms) |
//! | `NODE.sample.jsonl` | each node's `percore sample` lines |
//! | `stats-before.json`, `stats-after.json` | `percore stats --json` just before and after the run phase |
//!
//! # How figures are made
//!
//! - **Server medians** (the classic `node0 median N op/s` lines): the
//!   server's `ops/s` lines from the first to the last non-zero one
//!   ("active"), less the first 1 + ⌈warm-up⌉ of them (the first is a partial
//!   second, the next ones overlap the load generators' warm-up) and the last
//!   (a partial second: run.sh waits for it to be printed); the median of
//!   what remains (the mean of the two middle values for an even count). A
//!   run too short to leave any is reported over all its active lines, with
//!   a note. `total` is the sum of the servers' medians.
//! - **Latency**: the clients' histograms (`histograms_v2`) decoded and added
//!   — exact merging; percentiles are never averaged.
//! - **Wire bytes per op**: per server node, Δ`bytes_in` and Δ`bytes_out`
//!   over Δ`ops` between the two stats snapshots (else from the per-core
//!   `in MB/s`/`out MB/s` lines).
//! - **Line-rate limit**: a server NIC carries `in` and `out` separately
//!   (full duplex), so a node saturates its NIC at `R ÷ max(in, out bytes per
//!   op)` op/s, with `R` the line rate less Ethernet/IP/TCP framing
//!   (1448 payload bytes per 1538 on the wire at MTU 1500). The cluster's
//!   limit is reached when its busiest server NIC is full: `total ÷ (busiest
//!   NIC's load fraction)`. The line rate is `--line-rate-gbps`, else
//!   `line_rate_gbps` in `run.txt`, else the servers' `/sys/class/net/IF/speed`
//!   from the samples; a veth reports none, and then the report says so.
//! - **Utilisation**: per node, per sample interval: CPU % = Δbusy ÷ Δtotal
//!   jiffies, memory % = 1 − MemAvailable ÷ MemTotal, network % = max(rx,
//!   tx) bits/s ÷ line rate; the table shows each one's median over the run.

pub mod plot;
pub mod sweep;

use clap::Args;
use hdrhistogram::Histogram;
use loadgen::report::decode_histogram;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use wire::Cluster;

/// Payload bytes per full-size TCP segment at MTU 1500 (timestamps on) and
/// the bytes it takes on the wire (Ethernet header, FCS, preamble and gap
/// included).
pub const FRAMING: (f64, f64) = (1448.0, 1538.0);

/// `percore report` options.
#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// Run directories (`logs/<timestamp>`); with --sweep, every point of a sweep.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// NIC line rate in Gbit/s (overrides run.txt and the NICs' reported speed;
    /// needed where they report none, as a veth does).
    #[arg(long, value_name = "GBPS")]
    pub line_rate_gbps: Option<f64>,
    /// The DIRs are the points of a sweep: print the scaling table and write
    /// throughput-vs-X plots into this directory.
    #[arg(long, value_name = "OUT")]
    pub sweep: Option<PathBuf>,
    /// Do not write PNG plots.
    #[arg(long)]
    pub no_plots: bool,
}

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A file is not what run.sh writes.
    #[error("{path}: {message}")]
    Bad {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The cluster file of the run is unusable.
    #[error(transparent)]
    Config(#[from] wire::cluster::ConfigError),
    /// A plot could not be drawn.
    #[error("plot {path}: {message}")]
    Plot {
        /// The PNG.
        path: String,
        /// What plotters said.
        message: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io { path: path.display().to_string(), source }
}

/// The parts of a loadgen JSON report the cluster report uses.
#[derive(Clone, Debug, Deserialize)]
pub struct LoadgenJson {
    /// Operations per second the client measured.
    pub throughput_ops_s: f64,
    /// Operations in its measured window.
    pub ops: u64,
    /// GET values that failed verification.
    pub bad_reads: u64,
    /// Refused operations (+1 for a failed connection).
    pub errors: u64,
    /// Its configuration.
    pub config: LoadgenConfig,
    /// Its merged histograms.
    pub histograms_v2: Option<loadgen::report::EncodedHistograms>,
    /// Client CPU per op.
    pub client_cpu_ns_per_op: Option<f64>,
}

/// The parts of a loadgen report's `config` the cluster report uses.
#[derive(Clone, Debug, Deserialize)]
pub struct LoadgenConfig {
    /// YCSB workload letter.
    pub workload: Option<String>,
    /// Key distribution.
    pub distribution: Option<String>,
    /// Zipfian θ.
    pub theta: Option<f64>,
    /// Records.
    pub records: u64,
    /// Value size.
    pub value_size: usize,
    /// Batch size.
    pub batch: usize,
    /// Pipeline depth.
    pub pipeline: usize,
    /// Load threads.
    pub threads: usize,
    /// Measured duration asked for.
    pub duration_s: Option<f64>,
    /// Warm-up.
    pub warmup_s: f64,
}

/// One shard's row of `percore stats --json`.
#[derive(Clone, Debug, Deserialize)]
pub struct StatsRow {
    /// Its node.
    pub node: String,
    /// Its counters.
    pub counters: StatsCounters,
}

/// The counters of a stats row that the report uses.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
pub struct StatsCounters {
    /// Operations served.
    pub ops: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
}

/// One second of a server's log.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ServerSecond {
    /// Its `ops/s` line.
    pub ops: f64,
    /// Sum of its cores' `in MB/s`.
    pub in_mbs: f64,
    /// Sum of its cores' `out MB/s`.
    pub out_mbs: f64,
}

/// Parses a server's stdout: one entry per `ops/s` line, with the per-core
/// byte rates that follow it.
pub fn parse_server_log(text: &str) -> Vec<ServerSecond> {
    let mut seconds: Vec<ServerSecond> = Vec::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("ops/s ") {
            if let Ok(ops) = v.trim().parse::<f64>() {
                seconds.push(ServerSecond { ops, ..ServerSecond::default() });
            }
        } else if line.starts_with("core ")
            && let Some(last) = seconds.last_mut()
        {
            last.in_mbs += number_after(line, " in MB/s ").unwrap_or(0.0);
            last.out_mbs += number_after(line, " out MB/s ").unwrap_or(0.0);
        }
    }
    seconds
}

fn number_after(line: &str, key: &str) -> Option<f64> {
    let rest = &line[line.find(key)? + key.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// Which seconds (indices into `seconds`) a median is taken over (see the
/// module docs), and whether the warm-up could be excluded.
pub fn median_window(seconds: &[f64], warmup_s: f64) -> (Range<usize>, bool) {
    let Some(first) = seconds.iter().position(|&v| v > 0.0) else { return (0..0, true) };
    let last = seconds.iter().rposition(|&v| v > 0.0).unwrap_or(first);
    let skip = 1 + warmup_s.max(0.0).ceil() as usize;
    if last + 1 - first > skip + 1 { (first + skip..last, true) } else { (first..last + 1, false) }
}

/// The median (mean of the two middle values for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// Everything collected for one run.
pub struct RunData {
    /// The run directory.
    pub dir: PathBuf,
    /// Its cluster file.
    pub cluster: Cluster,
    /// `run.txt`.
    pub meta: BTreeMap<String, String>,
    /// Per server node (file order): its log's seconds, if the log exists.
    pub servers: Vec<(String, Option<Vec<ServerSecond>>)>,
    /// Per client node (file order): its loadgen report, if it exists.
    pub clients: Vec<(String, Option<LoadgenJson>)>,
    /// Per node (servers then clients): its samples.
    pub samples: Vec<(String, &'static str, Vec<crate::sample::Sample>)>,
    /// Stats snapshots before and after the run phase.
    pub stats: Option<(Vec<StatsRow>, Vec<StatsRow>)>,
}

fn read_opt(path: &Path) -> Result<Option<String>, ReportError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

fn json<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, ReportError> {
    serde_json::from_str(text)
        .map_err(|e| ReportError::Bad { path: path.display().to_string(), message: e.to_string() })
}

impl RunData {
    /// Reads a run directory.
    pub fn load(dir: &Path) -> Result<RunData, ReportError> {
        let cluster = Cluster::load(&dir.join("cluster.toml"))?;
        let mut meta = BTreeMap::new();
        if let Some(text) = read_opt(&dir.join("run.txt"))? {
            for line in text.lines() {
                if let Some((k, v)) = line.split_once('=') {
                    meta.insert(k.trim().to_string(), v.trim().to_string());
                }
            }
        }
        let mut servers = Vec::new();
        for s in &cluster.servers {
            let log = read_opt(&dir.join(format!("{}.server.log", s.name)))?;
            servers.push((s.name.clone(), log.map(|t| parse_server_log(&t))));
        }
        let mut clients = Vec::new();
        for c in &cluster.clients {
            let path = dir.join(format!("{}.loadgen.json", c.name));
            let report = match read_opt(&path)? {
                Some(text) => Some(json::<LoadgenJson>(&path, &text)?),
                None => None,
            };
            clients.push((c.name.clone(), report));
        }
        let roles = cluster
            .servers
            .iter()
            .map(|s| (s.name.clone(), "server"))
            .chain(cluster.clients.iter().map(|c| (c.name.clone(), "client")));
        let mut samples = Vec::new();
        for (name, role) in roles {
            let path = dir.join(format!("{name}.sample.jsonl"));
            let mut list = Vec::new();
            if let Some(text) = read_opt(&path)? {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    list.push(json::<crate::sample::Sample>(&path, line)?);
                }
            }
            samples.push((name, role, list));
        }
        let before = dir.join("stats-before.json");
        let after = dir.join("stats-after.json");
        let stats = match (read_opt(&before)?, read_opt(&after)?) {
            (Some(b), Some(a)) => Some((json(&before, &b)?, json(&after, &a)?)),
            _ => None,
        };
        Ok(RunData { dir: dir.to_path_buf(), cluster, meta, servers, clients, samples, stats })
    }
}

/// One server node's throughput.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerFigure {
    /// Node.
    pub node: String,
    /// Median op/s (`None`: no log or no load seen).
    pub median: Option<f64>,
    /// Seconds the median is over.
    pub seconds: usize,
    /// False if the run was too short to drop the warm-up.
    pub warmup_excluded: bool,
    /// Every `ops/s` line of the log (for the plot).
    pub timeline: Vec<f64>,
    /// The lines the median is over (indices into `timeline`).
    pub window: Range<usize>,
}

/// A server node's wire cost.
#[derive(Clone, Debug, PartialEq)]
pub struct WireFigure {
    /// Node.
    pub node: String,
    /// Bytes received per operation.
    pub in_per_op: f64,
    /// Bytes sent per operation.
    pub out_per_op: f64,
    /// Where the bytes came from.
    pub source: &'static str,
}

/// One node's median utilisation.
#[derive(Clone, Debug, PartialEq)]
pub struct Utilisation {
    /// Node.
    pub node: String,
    /// `server` / `client`.
    pub role: &'static str,
    /// CPU %.
    pub cpu: Option<f64>,
    /// Memory %.
    pub mem: Option<f64>,
    /// Network % of line rate.
    pub net: Option<f64>,
    /// Received Mbit/s.
    pub rx_mbps: Option<f64>,
    /// Sent Mbit/s.
    pub tx_mbps: Option<f64>,
    /// Interface and its speed.
    pub iface: String,
    /// Sample intervals.
    pub intervals: usize,
}

/// The line rate used, and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct LineRate {
    /// Gbit/s.
    pub gbps: f64,
    /// `--line-rate-gbps`, `run.txt` or the NIC.
    pub source: String,
}

/// Everything the report says about one run.
pub struct Analysis {
    /// The run directory.
    pub dir: PathBuf,
    /// Per server node.
    pub servers: Vec<ServerFigure>,
    /// Sum of the medians.
    pub total: f64,
    /// Per client node: its measured op/s, or `None` if its report is missing.
    pub clients: Vec<(String, Option<f64>)>,
    /// The first client's configuration (all clients run the same arguments).
    pub config: Option<LoadgenConfig>,
    /// Load threads over all clients.
    pub threads: usize,
    /// Errors and bad reads over all clients.
    pub errors: u64,
    /// Bad reads.
    pub bad_reads: u64,
    /// Merged GET and PUT histograms (ns).
    pub histograms: Option<(Histogram<u64>, Histogram<u64>)>,
    /// Problems worth a line in the report.
    pub notes: Vec<String>,
    /// Wire bytes per op per server.
    pub wire: Vec<WireFigure>,
    /// The line rate, if known.
    pub line_rate: Option<LineRate>,
    /// Utilisation per node.
    pub utilisation: Vec<Utilisation>,
    /// `run.txt`.
    pub meta: BTreeMap<String, String>,
}

impl Analysis {
    /// Works out every figure of a run.
    pub fn of(run: &RunData, line_rate_flag: Option<f64>) -> Result<Analysis, ReportError> {
        let mut notes = Vec::new();
        let config = run.clients.iter().find_map(|(_, r)| r.as_ref().map(|r| r.config.clone()));
        let warmup = config.as_ref().map_or(1.0, |c| c.warmup_s);
        let mut servers = Vec::new();
        for (node, log) in &run.servers {
            let Some(seconds) = log else {
                notes.push(format!("{node}: no server log ({node}.server.log)"));
                servers.push(ServerFigure {
                    node: node.clone(),
                    median: None,
                    seconds: 0,
                    warmup_excluded: true,
                    timeline: Vec::new(),
                    window: 0..0,
                });
                continue;
            };
            let timeline: Vec<f64> = seconds.iter().map(|s| s.ops).collect();
            let (window, excluded) = median_window(&timeline, warmup);
            let values = &timeline[window.clone()];
            if values.is_empty() {
                notes.push(format!("{node}: no load reached this server during the run"));
            } else if !excluded {
                notes.push(format!(
                    "{node}: run too short to drop {warmup} s of warm-up; median over all {} active second(s)",
                    values.len()
                ));
            }
            servers.push(ServerFigure {
                node: node.clone(),
                median: median(values),
                seconds: values.len(),
                warmup_excluded: excluded,
                window,
                timeline,
            });
        }
        let total = servers.iter().filter_map(|s| s.median).fold(0.0, |a, m| a + m);

        let mut clients = Vec::new();
        let (mut threads, mut errors, mut bad_reads) = (0, 0, 0);
        let mut merged: Option<(Histogram<u64>, Histogram<u64>)> = None;
        for (node, report) in &run.clients {
            let Some(r) = report else {
                notes.push(format!("{node}: no loadgen report ({node}.loadgen.json)"));
                clients.push((node.clone(), None));
                continue;
            };
            clients.push((node.clone(), Some(r.throughput_ops_s)));
            threads += r.config.threads;
            errors += r.errors;
            bad_reads += r.bad_reads;
            let path = run.dir.join(format!("{node}.loadgen.json"));
            let bad = |message: String| ReportError::Bad { path: path.display().to_string(), message };
            match &r.histograms_v2 {
                Some(enc) => {
                    let get = decode_histogram(&enc.get).map_err(|e| bad(format!("GET histogram: {e}")))?;
                    let put = decode_histogram(&enc.put).map_err(|e| bad(format!("PUT histogram: {e}")))?;
                    match &mut merged {
                        None => merged = Some((get, put)),
                        Some((g, p)) => {
                            g.add(&get).map_err(|e| bad(format!("GET histogram does not merge: {e:?}")))?;
                            p.add(&put).map_err(|e| bad(format!("PUT histogram does not merge: {e:?}")))?;
                        }
                    }
                }
                None => notes.push(format!("{node}: its report has no histograms; latency leaves it out")),
            }
        }

        let wire = wire_figures(run, &servers);
        let line_rate = line_rate(run, line_rate_flag);
        let utilisation = utilisation(run, line_rate.as_ref());
        Ok(Analysis {
            dir: run.dir.clone(),
            servers,
            total,
            clients,
            config,
            threads,
            errors,
            bad_reads,
            histograms: merged,
            notes,
            wire,
            line_rate,
            utilisation,
            meta: run.meta.clone(),
        })
    }

    /// The merged histogram of every operation (GET + PUT).
    pub fn all_ops(&self) -> Option<Histogram<u64>> {
        let (g, p) = self.histograms.as_ref()?;
        let mut all = g.clone();
        all.add(p).ok()?;
        Some(all)
    }

    /// The line-rate limit (op/s) and the fraction of it achieved, if the
    /// line rate and the wire bytes are known.
    pub fn line_rate_limit(&self) -> Option<(f64, f64)> {
        let rate = self.line_rate.as_ref()?;
        let payload = rate.gbps * 1e9 / 8.0 * FRAMING.0 / FRAMING.1;
        let mut busiest: Option<f64> = None;
        for s in &self.servers {
            let (Some(m), Some(w)) = (s.median, self.wire.iter().find(|w| w.node == s.node)) else { continue };
            let fraction = m * w.in_per_op.max(w.out_per_op) / payload;
            busiest = Some(busiest.map_or(fraction, |b: f64| b.max(fraction)));
        }
        let busiest = busiest.filter(|&b| b > 0.0)?;
        Some((self.total / busiest, busiest))
    }

    /// The report for people.
    pub fn text(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "== percore cluster report: {}", self.dir.display());
        if let Some(c) = &self.config {
            let theta = c.theta.map(|x| format!(" θ={x}")).unwrap_or_default();
            let _ = writeln!(
                t,
                "run        YCSB-{} {}{theta}, {} records × {} B, batch {}, pipeline {}; {} client node(s), {} load thread(s); {} server node(s); {} s measured after {} s warm-up",
                c.workload.as_deref().unwrap_or("?"),
                c.distribution.as_deref().unwrap_or("?"),
                c.records,
                c.value_size,
                c.batch,
                c.pipeline,
                self.clients.len(),
                self.threads,
                self.servers.len(),
                c.duration_s.map_or("?".into(), |d| format!("{d}")),
                c.warmup_s
            );
        }
        if let Some(args) = self.meta.get("loadgen_args").filter(|a| !a.is_empty()) {
            let _ = writeln!(t, "args       {args}");
        }
        let _ = writeln!(t, "-- throughput (servers' per-second lines, median, warm-up and last second excluded)");
        for s in &self.servers {
            match s.median {
                Some(m) => {
                    let _ = writeln!(t, "{} median {:.0} op/s", s.node, m);
                }
                None => {
                    let _ = writeln!(t, "{} median - op/s", s.node);
                }
            }
        }
        let _ = writeln!(t, "total {:.0} op/s", self.total);
        let measured: Vec<f64> = self.clients.iter().filter_map(|c| c.1).collect();
        if !measured.is_empty() {
            let _ = writeln!(
                t,
                "clients    {:.0} op/s measured by {} load generator(s) over their measured window",
                measured.iter().sum::<f64>(),
                measured.len()
            );
        }

        let _ = writeln!(
            t,
            "-- latency µs, merged histograms of {} client node(s)",
            self.clients.iter().filter(|c| c.1.is_some()).count()
        );
        let _ = writeln!(
            t,
            "  {:<5} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "op", "count", "mean", "p50", "p90", "p99", "p99.9", "p99.99", "max"
        );
        if let Some((g, p)) = &self.histograms {
            let all = self.all_ops();
            for (name, h) in [("GET", Some(g)), ("PUT", Some(p)), ("all", all.as_ref())] {
                let Some(h) = h.filter(|h| !h.is_empty()) else { continue };
                let q = |x: f64| h.value_at_quantile(x) as f64 / 1e3;
                let _ = writeln!(
                    t,
                    "  {name:<5} {:>12} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                    h.len(),
                    h.mean() / 1e3,
                    q(0.5),
                    q(0.9),
                    q(0.99),
                    q(0.999),
                    q(0.9999),
                    h.max() as f64 / 1e3
                );
            }
        } else {
            let _ = writeln!(t, "  (no histograms)");
        }
        let _ = writeln!(t, "errors     {} (bad reads {})", self.errors, self.bad_reads);

        let _ = writeln!(t, "-- wire and line rate (server NICs; payload bytes, framing {}/{})", FRAMING.0, FRAMING.1);
        for w in &self.wire {
            let _ =
                writeln!(t, "{:<10} {:.1} B/op in, {:.1} B/op out ({})", w.node, w.in_per_op, w.out_per_op, w.source);
        }
        match (&self.line_rate, self.line_rate_limit()) {
            (Some(rate), Some((limit, achieved))) => {
                let _ = writeln!(
                    t,
                    "line rate  {} Gbit/s per server NIC ({}): limit {:.0} op/s; achieved {:.1} % of it",
                    rate.gbps,
                    rate.source,
                    limit,
                    achieved * 100.0
                );
            }
            (Some(rate), None) => {
                let _ = writeln!(
                    t,
                    "line rate  {} Gbit/s ({}); no wire bytes per op measured, so no limit",
                    rate.gbps, rate.source
                );
            }
            (None, _) => {
                let _ = writeln!(
                    t,
                    "line rate  unknown: the NICs report no speed (a veth reports none); pass --line-rate-gbps (run.sh: LINE_RATE_GBPS)"
                );
            }
        }

        let _ = writeln!(t, "-- utilisation, median over the run (1 s samples)");
        let _ = writeln!(
            t,
            "  {:<12} {:<7} {:>6} {:>6} {:>6} {:>10} {:>10}  interface",
            "node", "role", "CPU %", "mem %", "net %", "rx Mbit/s", "tx Mbit/s"
        );
        let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        for u in &self.utilisation {
            let _ = writeln!(
                t,
                "  {:<12} {:<7} {:>6} {:>6} {:>6} {:>10} {:>10}  {}",
                u.node,
                u.role,
                pct(u.cpu),
                pct(u.mem),
                pct(u.net),
                pct(u.rx_mbps),
                pct(u.tx_mbps),
                u.iface
            );
        }
        for n in &self.notes {
            let _ = writeln!(t, "note       {n}");
        }
        t
    }
}

fn wire_figures(run: &RunData, servers: &[ServerFigure]) -> Vec<WireFigure> {
    let mut out = Vec::new();
    for (node, log) in &run.servers {
        if let Some((before, after)) = &run.stats {
            let sum = |rows: &[StatsRow]| {
                rows.iter().filter(|r| &r.node == node).fold(StatsCounters::default(), |a, r| StatsCounters {
                    ops: a.ops + r.counters.ops,
                    bytes_in: a.bytes_in + r.counters.bytes_in,
                    bytes_out: a.bytes_out + r.counters.bytes_out,
                })
            };
            let (b, a) = (sum(before), sum(after));
            let ops = a.ops.saturating_sub(b.ops);
            if ops > 0 {
                out.push(WireFigure {
                    node: node.clone(),
                    in_per_op: a.bytes_in.saturating_sub(b.bytes_in) as f64 / ops as f64,
                    out_per_op: a.bytes_out.saturating_sub(b.bytes_out) as f64 / ops as f64,
                    source: "stats counters over the run",
                });
                continue;
            }
        }
        // Fallback: the per-core byte rates of the log's busy seconds.
        let Some(seconds) = log else { continue };
        let busy: Vec<&ServerSecond> = seconds.iter().filter(|s| s.ops > 0.0).collect();
        let ops: f64 = busy.iter().map(|s| s.ops).sum();
        if ops > 0.0 && servers.iter().any(|s| &s.node == node) {
            out.push(WireFigure {
                node: node.clone(),
                in_per_op: busy.iter().map(|s| s.in_mbs * 1e6).sum::<f64>() / ops,
                out_per_op: busy.iter().map(|s| s.out_mbs * 1e6).sum::<f64>() / ops,
                source: "per-core MB/s lines (rounded to 0.1 MB/s)",
            });
        }
    }
    out
}

fn line_rate(run: &RunData, flag: Option<f64>) -> Option<LineRate> {
    if let Some(g) = flag.filter(|g| *g > 0.0) {
        return Some(LineRate { gbps: g, source: "--line-rate-gbps".into() });
    }
    if let Some(g) = run.meta.get("line_rate_gbps").and_then(|v| v.parse::<f64>().ok()).filter(|g| *g > 0.0) {
        return Some(LineRate { gbps: g, source: "run.txt line_rate_gbps".into() });
    }
    let speeds: Vec<u64> = run
        .samples
        .iter()
        .filter(|(_, role, _)| *role == "server")
        .filter_map(|(_, _, s)| s.iter().find_map(|x| x.speed_mbps))
        .collect();
    let min = speeds.iter().min()?;
    Some(LineRate { gbps: *min as f64 / 1000.0, source: "the server NICs' reported speed".into() })
}

fn utilisation(run: &RunData, rate: Option<&LineRate>) -> Vec<Utilisation> {
    let mut out = Vec::new();
    for (node, role, samples) in &run.samples {
        let (mut cpu, mut net, mut rx, mut tx) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mem: Vec<f64> = samples
            .iter()
            .filter(|s| s.mem_total_kb > 0)
            .map(|s| 100.0 * (1.0 - s.mem_available_kb as f64 / s.mem_total_kb as f64))
            .collect();
        let speed_bps =
            rate.map(|r| r.gbps * 1e9).or_else(|| samples.iter().find_map(|s| s.speed_mbps).map(|m| m as f64 * 1e6));
        for w in samples.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            let dt = b.t - a.t;
            let dtotal = b.cpu_total.saturating_sub(a.cpu_total);
            if dtotal > 0 {
                cpu.push(100.0 * b.cpu_busy.saturating_sub(a.cpu_busy) as f64 / dtotal as f64);
            }
            if dt > 0.0 {
                let rxb = b.rx_bytes.saturating_sub(a.rx_bytes) as f64 * 8.0 / dt;
                let txb = b.tx_bytes.saturating_sub(a.tx_bytes) as f64 * 8.0 / dt;
                rx.push(rxb / 1e6);
                tx.push(txb / 1e6);
                if let Some(bps) = speed_bps {
                    net.push(100.0 * rxb.max(txb) / bps);
                }
            }
        }
        let iface = samples.first().map_or("-".to_string(), |s| {
            let speed = s.speed_mbps.map_or("no speed".to_string(), |m| format!("{} Gbit/s", m as f64 / 1000.0));
            format!("{} ({speed})", s.iface)
        });
        out.push(Utilisation {
            node: node.clone(),
            role,
            cpu: median(&cpu),
            mem: median(&mem),
            net: median(&net),
            rx_mbps: median(&rx),
            tx_mbps: median(&tx),
            iface,
            intervals: cpu.len(),
        });
    }
    out
}

/// Runs `percore report`; the exit code (0 ok, 2 could not report).
pub fn main(args: &ReportArgs) -> u8 {
    let result = match &args.sweep {
        Some(out) => sweep::report(&args.dirs, out, args.line_rate_gbps, !args.no_plots),
        None => args.dirs.iter().try_for_each(|d| report_run(d, args.line_rate_gbps, !args.no_plots)),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("percore report: {e}");
            2
        }
    }
}

/// Prints one run's report, writes `report.txt` and (unless `plots` is
/// false) `latency.png` and `throughput.png` into its directory.
pub fn report_run(dir: &Path, line_rate_gbps: Option<f64>, plots: bool) -> Result<(), ReportError> {
    let run = RunData::load(dir)?;
    let analysis = Analysis::of(&run, line_rate_gbps)?;
    let mut text = analysis.text();
    if plots {
        let mut written = Vec::new();
        if let Some((g, p)) = &analysis.histograms {
            let path = dir.join("latency.png");
            plot::latency_spectrum(&path, &[("GET", g), ("PUT", p)], "latency percentile spectrum")?;
            written.push(path);
        }
        if analysis.servers.iter().any(|s| !s.timeline.is_empty()) {
            let path = dir.join("throughput.png");
            plot::server_timeline(&path, &analysis.servers)?;
            written.push(path);
        }
        if !written.is_empty() {
            let list: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
            let _ = writeln!(text, "plots      {}", list.join(" "));
        }
    }
    print!("{text}");
    let path = dir.join("report.txt");
    std::fs::write(&path, &text).map_err(io_err(&path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_windows() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        // idle, partial first, warm-up, three measured, partial last, idle
        let s = [0.0, 0.0, 20.0, 80.0, 100.0, 110.0, 90.0, 30.0, 0.0];
        assert_eq!(median_window(&s, 1.0), (4..7, true), "100, 110, 90");
        assert_eq!(median_window(&s, 0.0), (3..7, true));
        assert_eq!(median_window(&s, 0.5), (4..7, true), "warm-up rounds up");
        assert_eq!(median_window(&[0.0, 5.0, 6.0, 7.0], 1.0), (1..4, false));
        assert_eq!(median_window(&[0.0, 0.0], 1.0), (0..0, true));
        assert_eq!(median_window(&[], 1.0), (0..0, true));
    }

    #[test]
    fn server_logs_parse_into_seconds() {
        let log = "ops/s 1000\nget/s 950\nput/s 50\n\
                   core 0 shard 0: ops/s 600 get/s 570 put/s 30 del/s 0 miss/s 0 in MB/s 0.5 out MB/s 2.0 conns 1 keys 10\n\
                   core 1 shard 1: ops/s 400 get/s 380 put/s 20 del/s 0 miss/s 0 in MB/s 0.25 out MB/s 1.0 conns 1 keys 10\n\
                   ops/s 0\nget/s 0\nput/s 0\n\
                   final node n: uptime 3.0 s ops 1000 gets 950 puts 50 deletes 0 misses 0 wrong_shard 0 keys 20 connections 2 protocol_errors 0 bytes_in 1 bytes_out 2\n";
        let s = parse_server_log(log);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0], ServerSecond { ops: 1000.0, in_mbs: 0.75, out_mbs: 3.0 });
        assert_eq!(s[1].ops, 0.0);
    }
}

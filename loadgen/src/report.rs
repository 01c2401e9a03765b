//! The final report: printed for people (stdout), written as JSON for tools
//! (`--json FILE`), and as HdrHistogram percentile distributions
//! (`--hgrm PREFIX`).
//!
//! # JSON schema
//!
//! Top level (all numbers are JSON numbers; latencies in microseconds):
//!
//! | key | meaning |
//! |---|---|
//! | `phase` | `"load"`, `"run"` or `"verify"` |
//! | `throughput_ops_s` | operations completed in the measured window ÷ its length |
//! | `ops`, `duration_s` | operations completed in the window, and its length |
//! | `latency_us.get` / `.put` / `.all` | `count, mean, p50, p90, p99, p99_9, p99_99, max` (absent if no such op) |
//! | `hits`, `misses`, `puts` | GETs that found a value, GETs that found none, PUTs done |
//! | `bad_reads`, `first_bad_read` | GET values that failed verification (0 in a correct run), and the first one described |
//! | `errors`, `error_detail` | refused operations (`wrong_shard`, `too_large`, `out_of_memory`, `not_durable`, `no_leader`, `other`) plus 1 if a connection failed (`connection`: the message); a refused operation took no effect and is not in the history |
//! | `per_server[]` | `node`, `ops_s`, `shards[]` (`shard`, `addr`, `ops_s`) |
//! | `timeline[]` | per interval: `t_s` (end of interval), `ops_s`, `get_p99_us`, `put_p99_us`, `lag_p99_us`, `busy`, `shard_ops_s[]` (by shard id) |
//! | `failover` | a run that follows replicated shards' leaders: `lost_in_flight` (operations whose outcome is unknown; PUTs are in the history as such), `reconnects` |
//! | `client_cpu_ns_per_op` | load threads' CPU time ÷ operations issued |
//! | `client_lag_us` | open loop only: send lag, how late operations were sent after their intended time (`count, mean, p50, …, max`, sampled every 16th operation); time spent waiting for the server's replies (a full pipeline) is not lag. Its p99 above [`CLIENT_LAG_WARN_US`] means the client fell behind its schedule, and the latencies include its own delays |
//! | `client_busy` | share of the load threads' wall time spent working (0–1), rather than polling with nothing to do or blocked waiting |
//! | `history` | `path`, `records`, when `--history` was given |
//! | `config` | everything the run was configured with; `target` is what was driven (`percore`, `redis`, `memcached`), `protocol` what the load travelled in (`percore`, `resp`, `memcache-meta`) |
//! | `server` | filled by `percore bench`: the server's CPU ns/op and RSS |
//! | `check` | filled by `percore bench --check`: the linearizability verdict |
//! | `histograms_v2` | `get`, `put`: the merged histograms (ns), HdrHistogram V2 + deflate, base64 — merge these, never percentiles |

use crate::run::{PhaseSpec, RunConfig, Topology};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

/// Send lag p99 (µs) above which a run says the client fell behind its schedule.
pub const CLIENT_LAG_WARN_US: f64 = 100.0;

/// Latency percentiles of one operation type, in microseconds.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Percentiles {
    /// Operations measured.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th.
    pub p99: f64,
    /// 99.9th.
    pub p99_9: f64,
    /// 99.99th.
    pub p99_99: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// From a histogram of nanoseconds; `None` if it is empty.
    pub fn of(h: &Histogram<u64>) -> Option<Percentiles> {
        if h.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1e3;
        Some(Percentiles {
            count: h.len(),
            mean: h.mean() / 1e3,
            p50: us(h.value_at_quantile(0.5)),
            p90: us(h.value_at_quantile(0.9)),
            p99: us(h.value_at_quantile(0.99)),
            p99_9: us(h.value_at_quantile(0.999)),
            p99_99: us(h.value_at_quantile(0.9999)),
            max: us(h.max()),
        })
    }
}

/// Latency by operation type.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LatencyReport {
    /// GETs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub get: Option<Percentiles>,
    /// PUTs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub put: Option<Percentiles>,
    /// All operations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub all: Option<Percentiles>,
}

impl LatencyReport {
    /// From merged GET and PUT histograms.
    pub fn from_histograms(get: &Histogram<u64>, put: &Histogram<u64>) -> LatencyReport {
        let mut all = get.clone();
        let _ = all.add(put);
        LatencyReport { get: Percentiles::of(get), put: Percentiles::of(put), all: Percentiles::of(&all) }
    }
}

/// Refusals and failures.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ErrorDetail {
    /// WrongShard refusals.
    pub wrong_shard: u64,
    /// TooLarge refusals.
    pub too_large: u64,
    /// Writes refused for lack of memory (percore's OutOfMemory, Redis's OOM).
    pub out_of_memory: u64,
    /// Writes that could not be made durable (percore's NotDurable: the
    /// node's log disk is full or failing); nothing was written.
    pub not_durable: u64,
    /// Refused because the node had no leader for the shard (an election)
    /// or was not it: nothing was written.
    pub no_leader: u64,
    /// Other refusals.
    pub other: u64,
    /// The connection failure that stopped the run, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
}

/// One shard's throughput.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ShardFigures {
    /// Shard id.
    pub shard: u32,
    /// `addr:port`.
    pub addr: String,
    /// Operations per second it completed.
    pub ops_s: f64,
}

/// One server node's throughput.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ServerFigures {
    /// Node name.
    pub node: String,
    /// Operations per second over its shards.
    pub ops_s: f64,
    /// Its shards.
    pub shards: Vec<ShardFigures>,
}

/// One interval of the timeline.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Second {
    /// End of the interval, seconds after the warm-up.
    pub t_s: f64,
    /// Throughput in the interval.
    pub ops_s: f64,
    /// GET p99 in the interval (µs).
    pub get_p99_us: Option<f64>,
    /// PUT p99 in the interval (µs).
    pub put_p99_us: Option<f64>,
    /// Send lag p99 in the interval (µs; open loop only).
    pub lag_p99_us: Option<f64>,
    /// Share of the load threads' time spent working.
    pub busy: Option<f64>,
    /// Throughput of each shard in the interval, by shard id (a shard
    /// that is away, as in a failover, shows 0).
    pub shard_ops_s: Vec<f64>,
}

/// What following leader changes cost a run (a replicated cluster's).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FailoverReport {
    /// Operations in flight on connections abandoned for failover: their
    /// outcome is unknown (PUTs are in the history as such, never as
    /// successes; GETs are left out).
    pub lost_in_flight: u64,
    /// Connections re-established to a shard's new leader.
    pub reconnects: u64,
}

/// Where the history went.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HistoryReport {
    /// File.
    pub path: String,
    /// Operations recorded.
    pub records: u64,
}

/// The configuration, as reported.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RunConfigReport {
    /// YCSB workload letter (run phase).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// Key distribution.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distribution: Option<String>,
    /// Zipfian theta.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub theta: Option<f64>,
    /// Open-loop rate, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_ops_s: Option<f64>,
    /// Records.
    pub records: u64,
    /// Value size.
    pub value_size: usize,
    /// Batch size.
    pub batch: usize,
    /// Pipeline depth.
    pub pipeline: usize,
    /// Flush delay (µs).
    pub flush_us: u64,
    /// Load threads.
    pub threads: usize,
    /// Their CPUs (null = unpinned).
    pub cores: Vec<Option<usize>>,
    /// Measured duration asked for (s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Warm-up (s).
    pub warmup_s: f64,
    /// Seed.
    pub seed: u64,
    /// What was driven: percore, redis or memcached.
    pub target: String,
    /// What the load travelled in: `percore` (frames), `resp` or
    /// `memcache-meta` (`percore bench --protocol resp` drives percore
    /// through RESP: target `percore`, protocol `resp`).
    pub protocol: String,
    /// Where the topology came from.
    pub topology: String,
    /// Server nodes.
    pub servers: usize,
    /// Shards.
    pub shards: usize,
}

impl RunConfigReport {
    /// From the run configuration.
    pub fn new(cfg: &RunConfig, topo: &Topology) -> RunConfigReport {
        let mut nodes: Vec<&str> = topo.shards().iter().map(|s| s.node.as_str()).collect();
        nodes.dedup();
        let (workload, distribution, theta, rate) = match &cfg.phase {
            PhaseSpec::Load | PhaseSpec::Verify => (None, None, None, None),
            PhaseSpec::Run { workload, dist, theta, rate, .. } => (
                Some(workload.letter().to_string()),
                Some(format!("{dist:?}").to_lowercase()),
                (*dist != crate::zipf::DistName::Uniform).then_some(*theta),
                *rate,
            ),
        };
        RunConfigReport {
            workload,
            distribution,
            theta,
            rate_ops_s: rate,
            records: cfg.records,
            value_size: cfg.value_size,
            batch: cfg.batch,
            pipeline: cfg.pipeline,
            flush_us: cfg.flush.as_micros() as u64,
            threads: cfg.cores.len(),
            cores: cfg.cores.clone(),
            duration_s: match &cfg.phase {
                PhaseSpec::Load | PhaseSpec::Verify => None,
                _ => cfg.duration.map(|d| d.as_secs_f64()),
            },
            warmup_s: match &cfg.phase {
                PhaseSpec::Load | PhaseSpec::Verify => 0.0,
                _ => cfg.warmup.as_secs_f64(),
            },
            seed: cfg.seed,
            target: topo.peer.name().to_string(),
            protocol: topo.peer.protocol().to_string(),
            topology: topo.source.clone(),
            servers: nodes.len(),
            shards: topo.map.len(),
        }
    }
}

/// The server side of a local benchmark (`percore bench`).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ServerSide {
    /// Server CPU time (user + system) during the run ÷ operations.
    pub cpu_ns_per_op: Option<f64>,
    /// Server resident memory after the load phase (MB).
    pub rss_mb_after_load: Option<f64>,
    /// The server's CPUs.
    pub cores: Vec<u32>,
}

/// The merged histograms (not serialized; for `--hgrm`).
#[derive(Clone, Debug)]
pub struct Histograms {
    /// GET latencies (ns).
    pub get: Histogram<u64>,
    /// PUT latencies (ns).
    pub put: Histogram<u64>,
}

/// Everything a run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `load` or `run`.
    pub phase: String,
    /// Throughput over the measured window.
    pub throughput_ops_s: f64,
    /// Operations in the window.
    pub ops: u64,
    /// Window length.
    pub duration_s: f64,
    /// Latency percentiles.
    pub latency_us: LatencyReport,
    /// Merged histograms, for `--hgrm`.
    #[serde(skip)]
    pub histograms: Option<Histograms>,
    /// GETs that found a value.
    pub hits: u64,
    /// GETs that found none.
    pub misses: u64,
    /// PUTs done.
    pub puts: u64,
    /// GETs whose value failed verification.
    pub bad_reads: u64,
    /// The first bad read, described.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_read: Option<String>,
    /// Refused operations, plus one for a failed connection.
    pub errors: u64,
    /// Breakdown of `errors`.
    pub error_detail: ErrorDetail,
    /// Throughput by server and shard.
    pub per_server: Vec<ServerFigures>,
    /// Per-interval throughput and p99.
    pub timeline: Vec<Second>,
    /// Load threads' CPU per operation issued.
    pub client_cpu_ns_per_op: Option<f64>,
    /// Open loop: send lag percentiles (µs).
    pub client_lag_us: Option<Percentiles>,
    /// Share of the load threads' wall time spent working (0–1).
    pub client_busy: Option<f64>,
    /// A run that follows replicated shards' leaders: connections lost and
    /// re-established.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failover: Option<FailoverReport>,
    /// Operations issued in all (warm-up and drain included).
    pub issued: u64,
    /// The history file, if recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryReport>,
    /// The configuration.
    pub config: RunConfigReport,
    /// Server-side figures (local benchmark only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerSide>,
    /// Linearizability verdict (`--check` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<serde_json::Value>,
    /// The merged latency histograms, HdrHistogram V2 + deflate, base64
    /// (`get`, `put`; ns): what `percore report` merges across client nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub histograms_v2: Option<EncodedHistograms>,
}

/// Histograms in HdrHistogram's portable encoding.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct EncodedHistograms {
    /// GET latencies (ns).
    pub get: String,
    /// PUT latencies (ns).
    pub put: String,
}

/// Encodes a histogram as base64 of HdrHistogram's V2 deflate format.
pub fn encode_histogram(h: &Histogram<u64>) -> Option<String> {
    use base64::Engine as _;
    use hdrhistogram::serialization::{Serializer as _, V2DeflateSerializer};
    let mut bytes = Vec::new();
    V2DeflateSerializer::new().serialize(h, &mut bytes).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Decodes [`encode_histogram`]'s output.
pub fn decode_histogram(text: &str) -> Result<Histogram<u64>, String> {
    use base64::Engine as _;
    let bytes =
        base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(|e| format!("bad base64: {e}"))?;
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("bad histogram: {e:?}"))
}

fn fmt_rate(x: f64) -> String {
    let s = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 && c.is_ascii_digit() {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Report {
    /// A warning if the client fell behind its open-loop schedule (send lag
    /// p99 above [`CLIENT_LAG_WARN_US`]), naming the lag: latencies then
    /// include the client's own delays, not only the server's.
    pub fn client_behind(&self) -> Option<String> {
        let lag = self.client_lag_us.as_ref().filter(|l| l.p99 > CLIENT_LAG_WARN_US)?;
        Some(format!(
            "the client fell behind its schedule: send lag p99 {:.1} µs, max {:.1} µs (above {CLIENT_LAG_WARN_US} µs); \
             latencies include the client's own delays — lower --rate or add load --cores",
            lag.p99, lag.max
        ))
    }

    /// The report for people.
    pub fn text(&self) -> String {
        let mut t = String::new();
        let c = &self.config;
        let what = match (&c.workload, &c.distribution) {
            (Some(w), Some(d)) => {
                let theta = c.theta.map(|x| format!(" θ={x}")).unwrap_or_default();
                let rate = c.rate_ops_s.map(|r| format!(", open loop at {} ops/s", fmt_rate(r))).unwrap_or_default();
                format!("YCSB-{w}, {d}{theta}{rate}")
            }
            _ if self.phase == "verify" => "every record read once".to_string(),
            _ => "load".to_string(),
        };
        let _ = writeln!(t, "== percore {} — {what}", self.phase);
        let _ = writeln!(
            t,
            "config      {} records × {} B, batch {}, pipeline {}, {} thread(s) on cores {}, {} shard(s) on {} server(s) via {}{}",
            c.records,
            c.value_size,
            c.batch,
            c.pipeline,
            c.threads,
            c.cores.iter().map(|x| x.map_or("*".to_string(), |v| v.to_string())).collect::<Vec<_>>().join(","),
            c.shards,
            c.servers,
            c.topology,
            if c.protocol == "percore" { String::new() } else { format!(", protocol {}", c.protocol) }
        );
        let _ = writeln!(
            t,
            "throughput  {} ops/s ({} ops in {:.2} s)",
            fmt_rate(self.throughput_ops_s),
            self.ops,
            self.duration_s
        );
        for s in &self.per_server {
            let _ = writeln!(t, "  server {:<12} {:>14} ops/s", s.node, fmt_rate(s.ops_s));
            if s.shards.len() > 1 || self.per_server.len() > 1 {
                for sh in &s.shards {
                    let _ = writeln!(t, "    shard {:<4} {:<21} {:>14} ops/s", sh.shard, sh.addr, fmt_rate(sh.ops_s));
                }
            }
        }
        let _ = writeln!(
            t,
            "latency µs        count      mean       p50       p90       p99     p99.9    p99.99       max"
        );
        for (name, p) in [("GET", &self.latency_us.get), ("PUT", &self.latency_us.put), ("all", &self.latency_us.all)] {
            if let Some(p) = p {
                let _ = writeln!(
                    t,
                    "  {name:<5} {:>13} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                    p.count, p.mean, p.p50, p.p90, p.p99, p.p99_9, p.p99_99, p.max
                );
            }
        }
        let _ = writeln!(t, "reads       {} hits, {} misses; {} puts", self.hits, self.misses, self.puts);
        let _ = writeln!(
            t,
            "verified    {} bad reads{}",
            self.bad_reads,
            self.first_bad_read.as_ref().map(|b| format!(" (first: {b})")).unwrap_or_default()
        );
        let e = &self.error_detail;
        let _ = writeln!(
            t,
            "errors      {} (wrong shard {}, too large {}, out of memory {}, not durable {}, no leader {}, other {}{})",
            self.errors,
            e.wrong_shard,
            e.too_large,
            e.out_of_memory,
            e.not_durable,
            e.no_leader,
            e.other,
            e.connection.as_ref().map(|m| format!(", connection: {m}")).unwrap_or_default()
        );
        if let Some(f) = &self.failover {
            let _ = writeln!(
                t,
                "failover    {} reconnects to new leaders; {} operations in flight lost (outcome unknown)",
                f.reconnects, f.lost_in_flight
            );
        }
        if let Some(ns) = self.client_cpu_ns_per_op {
            let busy = self.client_busy.map(|b| format!(", busy {:.0} % of the time", b * 100.0)).unwrap_or_default();
            let _ = writeln!(t, "client CPU  {ns:.1} ns/op{busy}");
        }
        if let Some(l) = &self.client_lag_us {
            let verdict = if l.p99 > CLIENT_LAG_WARN_US {
                "BEHIND SCHEDULE: latencies include the client's own delays"
            } else {
                "on schedule: latencies are the server's and the network's"
            };
            let _ = writeln!(t, "send lag    µs p50 {:.1} p99 {:.1} max {:.1} ({verdict})", l.p50, l.p99, l.max);
        }
        if let Some(s) = &self.server {
            let _ = writeln!(
                t,
                "server      CPU {} ns/op, RSS after load {} (cores {})",
                s.cpu_ns_per_op.map_or("?".into(), |v| format!("{v:.1}")),
                s.rss_mb_after_load.map_or("?".into(), |v| format!("{v:.1} MB")),
                s.cores.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
            );
        }
        if let Some(h) = &self.history {
            let _ = writeln!(t, "history     {} operations in {}", h.records, h.path);
        }
        if let Some(c) = &self.check
            && let Some(line) = c.get("line").and_then(|l| l.as_str())
        {
            let _ = writeln!(t, "check       {line}");
        }
        t
    }

    /// Writes the JSON report.
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, json)
    }

    /// Writes `PREFIX.get.hgrm` and `PREFIX.put.hgrm` (HdrHistogram's
    /// percentile-distribution text format, values in µs).
    pub fn write_hgrm(&self, prefix: &str) -> std::io::Result<Vec<String>> {
        let mut written = Vec::new();
        let Some(h) = &self.histograms else { return Ok(written) };
        for (name, hist) in [("get", &h.get), ("put", &h.put)] {
            if hist.is_empty() {
                continue;
            }
            let path = format!("{prefix}.{name}.hgrm");
            let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
            write_percentile_distribution(hist, &mut f)?;
            f.flush()?;
            written.push(path);
        }
        Ok(written)
    }
}

/// The `.hgrm` text format (as `HistogramLogProcessor` and wrk2 print it):
/// value (µs), percentile, total count, 1/(1−percentile), five ticks per half-distance.
pub fn write_percentile_distribution(h: &Histogram<u64>, out: &mut impl std::io::Write) -> std::io::Result<()> {
    writeln!(out, "{:>12} {:>14} {:>10} {:>14}\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)")?;
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        let value = v.value_iterated_to() as f64 / 1e3;
        let count = v.count_since_last_iteration();
        let _ = count;
        if q < 1.0 {
            writeln!(out, "{value:>12.3} {q:>14.12} {:>10} {:>14.2}", v.count_since_last_iteration(), 1.0 / (1.0 - q))?;
        } else {
            writeln!(out, "{value:>12.3} {q:>14.12} {:>10}", v.count_since_last_iteration())?;
        }
    }
    writeln!(
        out,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]\n#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.mean() / 1e3,
        h.stdev() / 1e3,
        h.max() as f64 / 1e3,
        h.len()
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_survive_encoding() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
        for v in [1u64, 500, 12_345, 9_999_999] {
            h.record(v).expect("record");
        }
        let back = decode_histogram(&encode_histogram(&h).expect("encodes")).expect("decodes");
        assert_eq!(back.len(), 4);
        assert_eq!(back.max(), h.max());
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
    }

    #[test]
    fn rates_get_thousands_separators() {
        assert_eq!(fmt_rate(1234567.4), "1,234,567");
        assert_eq!(fmt_rate(999.0), "999");
        assert_eq!(fmt_rate(0.0), "0");
    }

    #[test]
    fn percentiles_from_a_histogram() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
        for i in 1..=1000u64 {
            h.record(i * 1000).expect("record");
        }
        let p = Percentiles::of(&h).expect("non-empty");
        assert_eq!(p.count, 1000);
        assert!((p.p50 - 500.0).abs() < 1.0, "{}", p.p50);
        assert!((p.p99 - 990.0).abs() < 2.0, "{}", p.p99);
        assert!((p.max - 1000.0).abs() < 1.0, "{}", p.max);
        assert!(Percentiles::of(&Histogram::<u64>::new(3).expect("h")).is_none());
    }
}

//! `percore bench --rates LIST [--vs redis]`: the open-loop latency curve.
//!
//! Every server is started pinned to the same cores and loaded once (as in
//! [`crate::bench::compare`]); then, for each offered rate from low to high,
//! each server gets `--rounds` open-loop runs of the workload in turn (so a
//! noisy moment on a shared machine hits every server rather than one).
//! Each point is the median over its rounds of the achieved throughput, of
//! GET p50, p99, p99.9 and max (latency counted from each operation's
//! intended time), and of the client's own figures: its send lag p99 and
//! the share of its time it was busy. A point whose send lag p99 is above
//! [`CLIENT_LAG_WARN_US`] is marked: there the latencies include the
//! client's own delays.
//!
//! Output: a table on stdout, `--json FILE` (the [`Curve`]), and a PNG
//! (`--png`, or next to the JSON) of p50/p99/p99.9 against the offered rate,
//! log scale, one colour per server.

use crate::bench::BenchArgs;
use crate::bench::compare::{Servers, load_all, median_of, opt, publish, round, setup_line, start_all, stop_all};
use crate::report::plot;
use loadgen::report::{CLIENT_LAG_WARN_US, Report, RunConfigReport};
use loadgen::run::Peer;
use serde::Serialize;
use wire::cluster::format_cpu_list;

/// One server at one offered rate (medians over the rounds).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CurvePoint {
    /// percore, redis or memcached.
    pub server: String,
    /// Offered rate (ops/s).
    pub rate_ops_s: f64,
    /// Achieved throughput (ops/s).
    pub throughput_ops_s: f64,
    /// GET median latency (µs).
    pub get_p50_us: Option<f64>,
    /// GET p99 (µs).
    pub get_p99_us: Option<f64>,
    /// GET p99.9 (µs).
    pub get_p99_9_us: Option<f64>,
    /// GET max (µs).
    pub get_max_us: Option<f64>,
    /// Every round's GET p99 (µs).
    pub rounds_get_p99_us: Vec<f64>,
    /// The client's send lag p99 (µs).
    pub client_lag_p99_us: Option<f64>,
    /// Share of the load threads' time spent working.
    pub client_busy: Option<f64>,
    /// Server CPU per operation (ns).
    pub server_cpu_ns_per_op: Option<f64>,
    /// Bad reads over the rounds (0 in a correct run).
    pub bad_reads: u64,
    /// Errors over the rounds.
    pub errors: u64,
}

/// The whole curve.
#[derive(Clone, Debug, Serialize)]
pub struct Curve {
    /// The configuration (of the last percore run).
    pub config: RunConfigReport,
    /// Server cores, shared by every server.
    pub server_cores: Vec<u32>,
    /// Rounds per point.
    pub rounds: usize,
    /// Points, by rate then server.
    pub points: Vec<CurvePoint>,
}

/// Parses `--rates`: comma-separated rates, each a number with an optional
/// `k` or `M` suffix (`200k,1M,2.5M`), sorted, positive.
pub fn parse_rates(list: &str) -> Result<Vec<f64>, String> {
    let mut rates = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (num, mult) = match item.as_bytes()[item.len() - 1] {
            b'k' | b'K' => (&item[..item.len() - 1], 1e3),
            b'm' | b'M' => (&item[..item.len() - 1], 1e6),
            _ => (item, 1.0),
        };
        let v: f64 = num.parse().map_err(|_| format!("--rates: {item:?} is not a rate (e.g. 500k, 2M, 300000)"))?;
        if !(v * mult).is_finite() || v * mult <= 0.0 {
            return Err(format!("--rates: {item:?} must be a positive rate"));
        }
        rates.push(v * mult);
    }
    if rates.is_empty() {
        return Err("--rates: give at least one rate".into());
    }
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    Ok(rates)
}

/// Measures the curve; true if every run was clean.
pub fn run(
    args: &BenchArgs,
    rates: &[f64],
    server_cores: &[u32],
    client_cores: &[u32],
    peers: &[Peer],
) -> Result<bool, String> {
    let servers = start_all(args, server_cores, client_cores, peers)?;
    let measured = measure(args, rates, client_cores, &servers);
    stop_all(servers);
    let (config, points) = measured?;
    let curve = Curve { config, server_cores: server_cores.to_vec(), rounds: args.rounds, points };
    publish(args, &table(&curve), &curve, |path| chart(&curve, path))?;
    Ok(curve.points.iter().all(|p| p.bad_reads == 0 && p.errors == 0))
}

/// Loads the servers, then runs every rate's rounds: the configuration of
/// the last percore run and the points, by rate then server.
fn measure(
    args: &BenchArgs,
    rates: &[f64],
    client_cores: &[u32],
    servers: &Servers,
) -> Result<(RunConfigReport, Vec<CurvePoint>), String> {
    let rss = load_all(args, client_cores, servers)?;
    let mut points = Vec::new();
    let mut config = None;
    for &rate in rates {
        let mut runs: Vec<Vec<Report>> = servers.iter().map(|_| Vec::new()).collect();
        for n in 0..args.rounds {
            for (i, report) in round(args, client_cores, servers, Some(rate), &rss)?.into_iter().enumerate() {
                eprintln!(
                    "bench: {:>10} ops/s offered, round {}/{} {:<10} GET p99 {} µs, send lag p99 {} µs",
                    plot::si(rate),
                    n + 1,
                    args.rounds,
                    servers[i].0.name(),
                    report.latency_us.get.as_ref().map_or("-".into(), |p| format!("{:.1}", p.p99)),
                    report.client_lag_us.as_ref().map_or("-".into(), |p| format!("{:.1}", p.p99)),
                );
                if i == 0 {
                    config = Some(report.config.clone());
                }
                runs[i].push(report);
            }
        }
        for ((peer, ..), reports) in servers.iter().zip(&runs) {
            points.push(point(peer.name(), rate, reports));
        }
    }
    Ok((config.ok_or("no percore run")?, points))
}

/// One point from its rounds' reports.
fn point(server: &str, rate: f64, reports: &[Report]) -> CurvePoint {
    let get = |f: fn(&loadgen::report::Percentiles) -> f64| median_of(reports, |r| r.latency_us.get.as_ref().map(f));
    CurvePoint {
        server: server.to_string(),
        rate_ops_s: rate,
        throughput_ops_s: median_of(reports, |r| Some(r.throughput_ops_s)).unwrap_or(0.0),
        get_p50_us: get(|p| p.p50),
        get_p99_us: get(|p| p.p99),
        get_p99_9_us: get(|p| p.p99_9),
        get_max_us: get(|p| p.max),
        rounds_get_p99_us: reports.iter().filter_map(|r| r.latency_us.get.as_ref().map(|p| p.p99)).collect(),
        client_lag_p99_us: median_of(reports, |r| r.client_lag_us.as_ref().map(|l| l.p99)),
        client_busy: median_of(reports, |r| r.client_busy),
        server_cpu_ns_per_op: median_of(reports, |r| r.server.as_ref().and_then(|s| s.cpu_ns_per_op)),
        bad_reads: reports.iter().map(|r| r.bad_reads).sum(),
        errors: reports.iter().map(|r| r.errors).sum(),
    }
}

/// The curve as a table (a Markdown table, so it pastes into BENCHMARKS.md).
pub fn table(c: &Curve) -> String {
    let mut t = format!(
        "== percore bench --rates — open loop, {} per point\n\n",
        setup_line(&c.config, &c.server_cores, c.rounds)
    );
    t.push_str("| offered ops/s | server | achieved ops/s | GET p50 µs | GET p99 µs | GET p99.9 µs | GET max µs | p99 of each round µs | send lag p99 µs | client busy | server CPU ns/op | bad/err |\n");
    t.push_str("|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|\n");
    for p in &c.points {
        let behind = p.client_lag_p99_us.is_some_and(|l| l > CLIENT_LAG_WARN_US);
        t.push_str(&format!(
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {}{} | {} | {} | {}/{} |\n",
            plot::si(p.rate_ops_s),
            p.server,
            p.throughput_ops_s,
            opt(p.get_p50_us, 1),
            opt(p.get_p99_us, 1),
            opt(p.get_p99_9_us, 1),
            opt(p.get_max_us, 1),
            p.rounds_get_p99_us.iter().map(|v| format!("{v:.0}")).collect::<Vec<_>>().join(", "),
            opt(p.client_lag_p99_us, 1),
            if behind { " (behind)" } else { "" },
            p.client_busy.map_or("-".into(), |b| format!("{:.0} %", b * 100.0)),
            opt(p.server_cpu_ns_per_op, 1),
            p.bad_reads,
            p.errors,
        ));
    }
    t
}

/// The curve as a PNG: GET p50, p99 and p99.9 against the offered rate.
pub fn chart(c: &Curve, path: &std::path::Path) -> Result<(), String> {
    let mut rates: Vec<f64> = c.points.iter().map(|p| p.rate_ops_s).collect();
    rates.dedup();
    let mut servers: Vec<&str> = Vec::new();
    for p in &c.points {
        if !servers.contains(&p.server.as_str()) {
            servers.push(&p.server);
        }
    }
    let mut series = Vec::new();
    for (s, server) in servers.iter().enumerate() {
        for (name, f) in [
            ("p50", (|p: &CurvePoint| p.get_p50_us) as fn(&CurvePoint) -> Option<f64>),
            ("p99", |p: &CurvePoint| p.get_p99_us),
            ("p99.9", |p: &CurvePoint| p.get_p99_9_us),
        ] {
            let pts = c
                .points
                .iter()
                .filter(|p| p.server == *server)
                .filter_map(|p| {
                    let x = rates.iter().position(|&r| r == p.rate_ops_s)?;
                    Some((x, f(p)?))
                })
                .collect();
            series.push(plot::CurveSeries { label: format!("{server} GET {name}"), colour: s, points: pts });
        }
    }
    let cfg = &c.config;
    let title = format!(
        "open loop, YCSB-{} {}, batch {} × pipeline {}, servers on cores {}",
        cfg.workload.as_deref().unwrap_or("?"),
        cfg.distribution.as_deref().unwrap_or("?"),
        cfg.batch,
        cfg.pipeline,
        format_cpu_list(&c.server_cores)
    );
    plot::latency_curve(path, &title, &rates, &series).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_lists() {
        assert_eq!(parse_rates("2M, 200k,500000"), Ok(vec![200e3, 500e3, 2e6]));
        assert_eq!(parse_rates("1.5M,1.5M"), Ok(vec![1.5e6]));
        assert!(parse_rates("fast").is_err());
        assert!(parse_rates("0").is_err());
        assert!(parse_rates("-1k").is_err());
        assert!(parse_rates(",").is_err());
    }
}

//! `percore report --sweep OUT DIR…`: one row per run of a sweep, and for
//! every variable that changed between runs (server nodes, client nodes,
//! batch, pipeline) a plot `OUT/throughput-vs-VAR.png` of total throughput
//! and p99 against it, one line per combination of the other changed
//! variables. Repeated points (same values) are combined by their median.
//! The table is also written to `OUT/sweep.tsv`.

use super::plot::{ScalingSeries, scaling};
use super::{Analysis, ReportError, RunData, median};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One run of a sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Its directory.
    pub dir: PathBuf,
    /// Swept variables, in [`VARS`] order.
    pub vars: [u64; 4],
    /// Load threads over all clients.
    pub threads: usize,
    /// Sum of the servers' medians.
    pub total: f64,
    /// p50 / p99 / p99.9 over all ops (µs).
    pub latency: Option<(f64, f64, f64)>,
}

/// The variables a sweep may change, as named in plots and files.
pub const VARS: [&str; 4] = ["servers", "clients", "batch", "pipeline"];

impl Point {
    /// The point a run's analysis describes.
    pub fn of(a: &Analysis) -> Point {
        let servers = a.servers.iter().filter(|s| s.median.is_some()).count() as u64;
        let clients = a.clients.iter().filter(|c| c.1.is_some()).count() as u64;
        let (batch, pipeline) = a.config.as_ref().map_or((0, 0), |c| (c.batch as u64, c.pipeline as u64));
        let latency = a.all_ops().filter(|h| !h.is_empty()).map(|h| {
            let q = |x: f64| h.value_at_quantile(x) as f64 / 1e3;
            (q(0.5), q(0.99), q(0.999))
        });
        Point {
            dir: a.dir.clone(),
            vars: [servers, clients, batch, pipeline],
            threads: a.threads,
            total: a.total,
            latency,
        }
    }
}

/// The series of a plot against variable `var`: one per combination of the
/// other variables that change, each a list of `(x index, op/s, p99)`.
pub fn series_against(points: &[Point], var: usize, varying: &[usize]) -> (Vec<u64>, Vec<ScalingSeries>) {
    let xs: Vec<u64> = points.iter().map(|p| p.vars[var]).collect::<BTreeSet<_>>().into_iter().collect();
    let others: Vec<usize> = varying.iter().copied().filter(|&v| v != var).collect();
    let mut groups: BTreeMap<Vec<u64>, BTreeMap<u64, Vec<&Point>>> = BTreeMap::new();
    for p in points {
        let key: Vec<u64> = others.iter().map(|&o| p.vars[o]).collect();
        groups.entry(key).or_default().entry(p.vars[var]).or_default().push(p);
    }
    let series = groups
        .into_iter()
        .map(|(key, by_x)| {
            let label =
                others.iter().zip(&key).map(|(&o, v)| format!("{} {v}", VARS[o])).collect::<Vec<_>>().join(", ");
            let pts = by_x
                .into_iter()
                .filter_map(|(x, ps)| {
                    let idx = xs.iter().position(|&v| v == x)?;
                    let tput = median(&ps.iter().map(|p| p.total).collect::<Vec<_>>())?;
                    let p99 = median(&ps.iter().filter_map(|p| p.latency.map(|l| l.1)).collect::<Vec<_>>());
                    Some((idx, tput, p99))
                })
                .collect();
            (label, pts)
        })
        .collect();
    (xs, series)
}

/// Prints the sweep table and writes `sweep.tsv` and the plots into `out`.
pub fn report(dirs: &[PathBuf], out: &Path, line_rate_gbps: Option<f64>, plots: bool) -> Result<(), ReportError> {
    std::fs::create_dir_all(out).map_err(super::io_err(out))?;
    let mut points = Vec::new();
    for d in dirs {
        let run = RunData::load(d)?;
        points.push(Point::of(&Analysis::of(&run, line_rate_gbps)?));
    }
    let mut text = String::new();
    let _ = writeln!(text, "== percore sweep: {} run(s)", points.len());
    let header = format!(
        "{:>7} {:>7} {:>7} {:>5} {:>8} {:>14} {:>10} {:>10} {:>10}  {}",
        "servers", "clients", "threads", "batch", "pipeline", "total op/s", "p50 µs", "p99 µs", "p99.9 µs", "run"
    );
    let _ = writeln!(text, "{header}");
    let mut tsv =
        String::from("servers\tclients\tthreads\tbatch\tpipeline\ttotal_ops_s\tp50_us\tp99_us\tp99_9_us\tdir\n");
    for p in &points {
        let l = |f: fn(&(f64, f64, f64)) -> f64| p.latency.as_ref().map_or("-".to_string(), |x| format!("{:.1}", f(x)));
        let cells = [
            p.vars[0].to_string(),
            p.vars[1].to_string(),
            p.threads.to_string(),
            p.vars[2].to_string(),
            p.vars[3].to_string(),
            format!("{:.0}", p.total),
            l(|x| x.0),
            l(|x| x.1),
            l(|x| x.2),
            p.dir.display().to_string(),
        ];
        let [servers, clients, threads, batch, pipeline, total, p50, p99, p999, dir] = &cells;
        let _ = writeln!(
            text,
            "{servers:>7} {clients:>7} {threads:>7} {batch:>5} {pipeline:>8} {total:>14} {p50:>10} {p99:>10} {p999:>10}  {dir}"
        );
        let _ = writeln!(tsv, "{}", cells.join("\t"));
    }
    let path = out.join("sweep.tsv");
    std::fs::write(&path, tsv).map_err(super::io_err(&path))?;
    let varying: Vec<usize> =
        (0..VARS.len()).filter(|&v| points.iter().map(|p| p.vars[v]).collect::<BTreeSet<_>>().len() > 1).collect();
    if plots {
        if varying.is_empty() {
            let _ = writeln!(text, "plots      none: no variable changed between the runs");
        }
        let mut written = Vec::new();
        for &v in &varying {
            let (xs, series) = series_against(&points, v, &varying);
            let path = out.join(format!("throughput-vs-{}.png", VARS[v]));
            let x_name = match VARS[v] {
                "servers" => "server nodes",
                "clients" => "client nodes",
                "batch" => "batch (ops per frame)",
                _ => "pipeline (frames in flight per connection)",
            };
            scaling(&path, x_name, &xs, &series)?;
            written.push(path.display().to_string());
        }
        if !written.is_empty() {
            let _ = writeln!(text, "plots      {}", written.join(" "));
        }
    }
    let _ = writeln!(text, "table      {}", path.display());
    print!("{text}");
    let path = out.join("sweep.txt");
    std::fs::write(&path, &text).map_err(super::io_err(&path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(vars: [u64; 4], total: f64) -> Point {
        Point { dir: PathBuf::from("d"), vars, threads: 1, total, latency: Some((1.0, total / 100.0, 3.0)) }
    }

    #[test]
    fn series_group_by_the_other_changed_variables() {
        let points = vec![
            point([1, 1, 64, 4], 100.0),
            point([1, 1, 1024, 4], 300.0),
            point([2, 1, 64, 4], 200.0),
            point([2, 1, 1024, 4], 500.0),
            point([2, 1, 1024, 4], 700.0),
        ];
        let (xs, series) = series_against(&points, 0, &[0, 2]);
        assert_eq!(xs, vec![1, 2]);
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].0, "batch 64");
        assert_eq!(series[0].1, vec![(0, 100.0, Some(1.0)), (1, 200.0, Some(2.0))]);
        assert_eq!(series[1].0, "batch 1024");
        assert_eq!(series[1].1[1], (1, 600.0, Some(6.0)), "repeats combine by median");
        let (xs, series) = series_against(&points, 2, &[2]);
        assert_eq!(xs, vec![64, 1024]);
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].0, "");
    }
}

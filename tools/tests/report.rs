//! `percore report`, `percore sample` and `percore cluster` as the scripts
//! call them: a run directory laid out as `cluster/run.sh` writes it, with
//! numbers chosen so every figure of the report can be checked by hand.

use hdrhistogram::Histogram;
use loadgen::report::encode_histogram;
use serde_json::json;
use std::path::Path;
use std::process::{Command, Stdio};
use testkit::TempDir;

const PERCORE: &str = env!("CARGO_BIN_EXE_percore");

/// Runs `percore args…`: (exit code, stdout, stderr).
fn percore(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(PERCORE).args(args).stdin(Stdio::null()).output().expect("run percore");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write fixture");
}

/// `count` operations of `us` microseconds.
fn histogram(values: &[(u64, u64)]) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
    for &(us, count) in values {
        h.record_n(us * 1000, count).expect("record");
    }
    h
}

fn loadgen_json(get: &Histogram<u64>, put: &Histogram<u64>, ops_s: f64, batch: usize) -> String {
    json!({
        "phase": "run", "throughput_ops_s": ops_s, "ops": 1000, "duration_s": 3.0,
        "bad_reads": 0, "errors": 0, "error_detail": {"wrong_shard": 0, "too_large": 0, "other": 0},
        "config": {"workload": "b", "distribution": "zipfian", "theta": 0.99, "records": 1000, "value_size": 128,
                   "batch": batch, "pipeline": 4, "flush_us": 100, "threads": 2, "cores": [0, 1], "duration_s": 3.0,
                   "warmup_s": 1.0, "seed": 1, "topology": "t", "servers": 2, "shards": 2},
        "client_cpu_ns_per_op": 10.0,
        "histograms_v2": {"get": encode_histogram(get).expect("encodes"), "put": encode_histogram(put).expect("encodes")},
    })
    .to_string()
}

fn server_log(seconds: &[u64]) -> String {
    seconds
        .iter()
        .map(|ops| {
            format!(
                "ops/s {ops}\nget/s {ops}\nput/s 0\ncore 1 shard 0: ops/s {ops} get/s {ops} put/s 0 del/s 0 miss/s 0 in MB/s 0.0 out MB/s 0.0 conns 1 keys 5\n"
            )
        })
        .collect()
}

fn stats(node0: (u64, u64, u64), node1: (u64, u64, u64)) -> String {
    let row = |node: &str, (ops, bytes_in, bytes_out): (u64, u64, u64)| {
        json!({"shard": 0, "node": node, "cpu": 1, "addr": "a:1", "uptime_s": 1.0,
               "counters": {"ops": ops, "bytes_in": bytes_in, "bytes_out": bytes_out, "gets": ops, "puts": 0}})
    };
    json!([row("node0", node0), row("node1", node1)]).to_string()
}

fn sample(t: f64, busy: u64, total: u64, rx: u64, tx: u64) -> String {
    json!({"t": t, "cpu_busy": busy, "cpu_total": total, "ncpu": 2, "mem_total_kb": 1000, "mem_available_kb": 250,
           "iface": "eth0", "rx_bytes": rx, "tx_bytes": tx, "speed_mbps": null})
    .to_string()
}

const CLUSTER: &str = r#"
[[server]]
name = "node0"
addr = "10.0.0.1"
cores = [1]
[[server]]
name = "node1"
addr = "10.0.0.2"
cores = [1]
[[client]]
name = "node2"
cores = [0, 1]
[[client]]
name = "node3"
cores = [0, 1]
"#;

/// A complete run directory; `batch` and `scale` vary it for sweeps.
fn run_dir(dir: &Path, batch: usize, scale: u64) {
    write(dir, "cluster.toml", CLUSTER);
    write(dir, "run.txt", "started_utc=2026-01-01T00:00:00Z\nloadgen_args=--duration 3s\n");
    // idle, partial, warm-up, 3 measured seconds, partial, idle: median 1100.
    let s0: Vec<u64> = [0, 100, 900, 1000, 1200, 1100, 300, 0].iter().map(|v| v * scale).collect();
    write(dir, "node0.server.log", &server_log(&s0));
    // active 50 … 10: the window is [600, 400]: median 500.
    let s1: Vec<u64> = [0, 50, 500, 600, 400, 10].iter().map(|v| v * scale).collect();
    write(dir, "node1.server.log", &server_log(&s1));
    // Client A: 3000 ops of 100 µs; client B: 1000 ops of 1000 µs. Merged,
    // p50 is 100 µs and p90 1000 µs (averaging the clients' p90s would say 550).
    let empty = histogram(&[]);
    write(dir, "node2.loadgen.json", &loadgen_json(&histogram(&[(100, 3000)]), &empty, 1000.0, batch));
    write(dir, "node3.loadgen.json", &loadgen_json(&histogram(&[(1000, 1000)]), &empty, 600.0, batch));
    // node0: 1000 ops, 30 B/op in, 150 B/op out; node1: 30 and 90.
    write(dir, "stats-before.json", &stats((10, 100, 200), (10, 100, 200)));
    write(dir, "stats-after.json", &stats((1010, 30_100, 150_200), (510, 15_100, 45_200)));
    // node0: CPU 50 %, memory 75 %, 1 Mbit/s in, 2 Mbit/s out.
    let samples = [sample(100.0, 0, 0, 0, 0), sample(101.0, 50, 100, 125_000, 250_000)].join("\n");
    write(dir, "node0.sample.jsonl", &samples);
}

#[test]
fn the_report_has_the_classic_lines_merged_latency_line_rate_and_utilisation() {
    let tmp = TempDir::new("run");
    let dir = tmp.path();
    run_dir(dir, 1024, 1);
    let (code, out, err) = percore(&["report", "--line-rate-gbps", "0.01", dir.to_str().expect("utf-8 path")]);
    assert_eq!(code, 0, "{err}");
    for line in ["node0 median 1100 op/s", "node1 median 500 op/s", "total 1600 op/s"] {
        assert!(out.lines().any(|l| l == line), "no line {line:?} in:\n{out}");
    }
    assert!(out.contains("clients    1600 op/s measured by 2 load generator(s)"), "{out}");
    let get = out.lines().find(|l| l.trim_start().starts_with("GET")).expect("a GET line");
    let cols: Vec<&str> = get.split_whitespace().collect();
    assert_eq!(cols[1], "4000", "merged count: {get}");
    assert!(cols[3].starts_with("100.") && cols[4].starts_with("1000."), "merged p50/p90: {get}");
    assert!(out.contains("node0      30.0 B/op in, 150.0 B/op out"), "{out}");
    assert!(out.contains("node1      30.0 B/op in, 90.0 B/op out"), "{out}");
    // 0.01 Gbit/s less framing: 1,250,000 × 1448/1538 B/s. node0 is the
    // busiest NIC: 1100 op/s × 150 B/op of it.
    let payload = 0.01e9 / 8.0 * 1448.0 / 1538.0;
    let busiest = 1100.0 * 150.0 / payload;
    let limit = format!("limit {:.0} op/s; achieved {:.1} % of it", 1600.0 / busiest, busiest * 100.0);
    assert!(out.contains(&limit), "expected {limit:?} in:\n{out}");
    let row = out.lines().find(|l| l.trim_start().starts_with("node0") && l.contains("server")).expect("node0 row");
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[2..7], ["50.0", "75.0", "20.0", "1.0", "2.0"], "{row}");
    let row = out.lines().find(|l| l.trim_start().starts_with("node3") && l.contains("client")).expect("node3 row");
    assert!(row.contains(" - "), "no samples, no figures: {row}");
    for png in ["latency.png", "throughput.png"] {
        let bytes = std::fs::read(dir.join(png)).expect("plot written");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{png}");
    }
    let saved = std::fs::read_to_string(dir.join("report.txt")).expect("report.txt");
    assert!(saved.starts_with("== percore cluster report"), "{saved}");
}

#[test]
fn without_a_line_rate_the_report_says_how_to_give_one() {
    let tmp = TempDir::new("norate");
    run_dir(tmp.path(), 1024, 1);
    let (code, out, err) = percore(&["report", "--no-plots", tmp.path().to_str().expect("utf-8 path")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("line rate  unknown") && out.contains("--line-rate-gbps"), "{out}");
    assert!(!tmp.path().join("latency.png").exists(), "--no-plots");
}

#[test]
fn a_broken_run_directory_is_named() {
    let tmp = TempDir::new("broken");
    let (code, _, err) = percore(&["report", tmp.path().to_str().expect("utf-8 path")]);
    assert_eq!(code, 2);
    assert!(err.contains("cluster.toml"), "{err}");
    run_dir(tmp.path(), 1024, 1);
    write(tmp.path(), "node2.loadgen.json", "{ not json");
    let (code, _, err) = percore(&["report", tmp.path().to_str().expect("utf-8 path")]);
    assert_eq!(code, 2);
    assert!(err.contains("node2.loadgen.json"), "{err}");
}

#[test]
fn a_run_whose_load_never_came_says_so() {
    let tmp = TempDir::new("noload");
    write(tmp.path(), "cluster.toml", CLUSTER);
    write(tmp.path(), "node0.server.log", &server_log(&[0, 0, 0]));
    let (code, out, err) = percore(&["report", "--no-plots", tmp.path().to_str().expect("utf-8 path")]);
    assert_eq!(code, 0, "{err}");
    for line in ["node0 median - op/s", "node1 median - op/s", "total 0 op/s"] {
        assert!(out.lines().any(|l| l == line), "no line {line:?} in:\n{out}");
    }
    assert!(out.contains("node0: no load reached this server"), "{out}");
    assert!(out.contains("node1: no server log (node1.server.log)"), "{out}");
    assert!(out.contains("node2: no loadgen report (node2.loadgen.json)"), "{out}");
}

#[test]
fn a_sweep_tabulates_and_plots_what_changed() {
    let tmp = TempDir::new("sweep");
    let mut dirs = Vec::new();
    for (i, (batch, scale)) in [(64, 1), (256, 2), (1024, 3)].into_iter().enumerate() {
        let d = tmp.path().join(format!("run{i}"));
        std::fs::create_dir_all(&d).expect("dir");
        run_dir(&d, batch, scale);
        dirs.push(d.to_str().expect("utf-8").to_string());
    }
    let out_dir = tmp.path().join("sweep");
    let mut args = vec!["report", "--sweep", out_dir.to_str().expect("utf-8")];
    args.extend(dirs.iter().map(String::as_str));
    let (code, out, err) = percore(&args);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<&str> = out.lines().filter(|l| l.trim_start().starts_with('2')).collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(rows[2].split_whitespace().nth(5) == Some("4800"), "batch 1024 run: 3 × 1600: {}", rows[2]);
    assert!(out_dir.join("throughput-vs-batch.png").exists(), "{out}");
    assert!(!out_dir.join("throughput-vs-servers.png").exists(), "servers did not change");
    let tsv = std::fs::read_to_string(out_dir.join("sweep.tsv")).expect("tsv");
    assert_eq!(tsv.lines().count(), 4, "{tsv}");
}

#[test]
fn the_sampler_writes_a_json_line_and_stops_by_itself() {
    let tmp = TempDir::new("sample");
    let file = tmp.path().join("s.jsonl");
    let (code, _, err) = percore(&["sample", "--out", file.to_str().expect("utf-8"), "--duration", "0s"]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&file).expect("samples");
    assert_eq!(text.lines().count(), 1, "{text}");
    let v: serde_json::Value = serde_json::from_str(text.trim()).expect("json");
    assert!(v["cpu_total"].as_u64().expect("cpu_total") > 0 && v["iface"] == "all", "{v}");
    let (code, _, err) =
        percore(&["sample", "--out", file.to_str().expect("utf-8"), "--iface", "no-such-if0", "--duration", "0s"]);
    assert_eq!(code, 1);
    assert!(err.contains("no-such-if0"), "{err}");
}

#[test]
fn cluster_subcommands_print_what_the_scripts_read() {
    let m510 = concat!(env!("CARGO_MANIFEST_DIR"), "/../cluster/m510.toml");
    let (code, out, err) = percore(&["cluster", "nodes", "--config", m510]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().next(), Some("server node0 10.10.1.1 1-7"));
    assert_eq!(out.lines().last(), Some("client node7 node7 0-7"));
    let (code, _, err) = percore(&["cluster", "loadgen-args", "--", "--duration", "soon"]);
    assert_eq!(code, 2);
    assert!(err.contains("soon"), "{err}");
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../cluster/testdata/manifest-m510.xml");
    let (code, out, err) = percore(&["cluster", "from-manifest", manifest, "--servers", "3"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("[[server]]").count(), 3);
    assert_eq!(out.matches("[[client]]").count(), 6);
}

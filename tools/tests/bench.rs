//! The load generator and the local benchmark, end to end, as a user runs
//! them: real processes on loopback.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::{Server, TempDir};

const PERCORE: &str = env!("CARGO_BIN_EXE_percore");

fn json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("valid JSON report")
}

fn server(extra: &[&str]) -> Server {
    let mut args = vec!["server", "--cores", "0", "--port", "0", "--stats-interval-ms", "0"];
    args.extend_from_slice(extra);
    Server::start_with(PERCORE, &args)
}

#[test]
fn bench_runs_end_to_end_and_reports() {
    let dir = TempDir::new("bench");
    let report = dir.join("bench.json");
    let out = Command::new(PERCORE)
        .args(["bench", "--duration", "3s", "--json"])
        .arg(&report)
        .stdin(Stdio::null())
        .output()
        .expect("run percore bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "percore bench failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("throughput") && stdout.contains("GET"), "{stdout}");
    let r = json(&report);
    assert!(r["throughput_ops_s"].as_f64().expect("throughput") > 0.0);
    assert_eq!(r["errors"], 0);
    assert_eq!(r["bad_reads"], 0);
    assert!(r["latency_us"]["get"]["p99"].as_f64().expect("GET p99") > 0.0);
    assert_eq!(r["config"]["workload"], "B");
    assert_eq!(r["config"]["records"], 1_000_000);
    assert_eq!(r["misses"], 0, "every record was loaded");
    assert!(r["server"]["cpu_ns_per_op"].as_f64().is_some());
}

#[test]
fn a_corrupting_server_is_caught_as_bad_reads() {
    let dir = TempDir::new("bench");
    let s = server(&["--fault", "corrupt-values"]);
    let report = dir.join("corrupt.json");
    let out = Command::new(PERCORE)
        .args(["loadgen", "run", "--load", "--records", "20000", "--duration", "1s", "--warmup", "0s", "-q"])
        .args(["--server", s.addr(), "--cores", "1", "--json"])
        .arg(&report)
        .stdin(Stdio::null())
        .output()
        .expect("run loadgen");
    assert_eq!(out.status.code(), Some(1), "bad reads fail the run: {}", String::from_utf8_lossy(&out.stderr));
    let r = json(&report);
    assert!(r["bad_reads"].as_u64().expect("bad_reads") > 0, "{r}");
    let first = r["first_bad_read"].as_str().expect("described");
    assert!(first.contains("checksum"), "{first}");
}

#[test]
fn a_correct_server_gives_zero_bad_reads_and_no_misses() {
    let dir = TempDir::new("bench");
    let s = server(&[]);
    let report = dir.join("clean.json");
    let out = Command::new(PERCORE)
        .args(["loadgen", "run", "--load", "--records", "20000", "--duration", "1s", "--workload", "a", "-q"])
        .args(["--server", s.addr(), "--cores", "1", "--batch", "64", "--json"])
        .arg(&report)
        .stdin(Stdio::null())
        .output()
        .expect("run loadgen");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = json(&report);
    assert_eq!((r["bad_reads"].as_u64(), r["misses"].as_u64(), r["errors"].as_u64()), (Some(0), Some(0), Some(0)));
    assert!(r["puts"].as_u64().expect("puts") > 0, "workload A updates");
}

#[test]
fn killing_the_server_mid_run_fails_fast_naming_it() {
    let mut s = server(&[]);
    let addr = s.addr().to_string();
    let mut load = Command::new(PERCORE)
        .args(["loadgen", "run", "--load", "--records", "20000", "--duration", "30s", "--warmup", "0s"])
        .args(["--server", &addr, "--cores", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn loadgen");
    // Wait until it is running (its first live line of the run phase).
    let mut err = BufReader::new(load.stderr.take().expect("stderr"));
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(err.read_line(&mut line).expect("read") > 0, "loadgen ended early: {seen}");
        seen.push_str(&line);
        if line.trim_start().starts_with("1s ops/s") && seen.matches("1s ops/s").count() >= 2 {
            break;
        }
    }
    // SAFETY: kill(2) on our own child's PID.
    unsafe {
        libc::kill(s.pid() as i32, libc::SIGKILL);
    }
    let killed = Instant::now();
    let status = loop {
        if let Some(status) = load.try_wait().expect("wait") {
            break status;
        }
        assert!(killed.elapsed() < Duration::from_secs(10), "loadgen still running 10 s after the kill");
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = killed.elapsed();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut err, &mut rest);
    assert!(!status.success(), "a dead server fails the run");
    assert!(took < Duration::from_secs(2), "exited {took:?} after the kill");
    let line =
        rest.lines().find(|l| l.starts_with("percore-loadgen:")).unwrap_or_else(|| panic!("no error line: {rest}"));
    assert!(line.contains("server local shard 0") && line.contains(&addr), "{line}");
    // It still printed the figures it had.
    let mut out = String::new();
    let _ = std::io::Read::read_to_string(&mut load.stdout.take().expect("stdout"), &mut out);
    assert!(out.contains("throughput"), "{out}");
    let _ = s.terminate_if_running();
}

#[test]
fn open_loop_rate_is_met_when_below_capacity() {
    let dir = TempDir::new("bench");
    let s = server(&[]);
    let report = dir.join("rate.json");
    let rate = 100_000.0;
    let out = Command::new(PERCORE)
        .args(["loadgen", "run", "--load", "--records", "20000", "--duration", "3s", "-q"])
        .args(["--rate", "100000", "--server", s.addr(), "--cores", "1", "--json"])
        .arg(&report)
        .stdin(Stdio::null())
        .output()
        .expect("run loadgen");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = json(&report);
    let got = r["throughput_ops_s"].as_f64().expect("throughput");
    assert!((got - rate).abs() / rate < 0.05, "asked {rate} ops/s, measured {got}");
    assert_eq!(r["config"]["rate_ops_s"], rate);
}

/// However many replies are in flight (`--batch` × `--pipeline` × value
/// size far past the 4 MiB receive buffer), and however large the values,
/// a run against a healthy server reports no failure: no error, no bad
/// read, no false "connection closed".
#[test]
fn no_false_failure_for_any_batch_pipeline_and_value_size() {
    let dir = TempDir::new("bench");
    let s = server(&[]);
    for (value, batch, pipeline) in [("128", "1024", "64"), ("300000", "64", "16"), ("1048576", "16384", "4")] {
        let report = dir.join(&format!("inflight-{value}.json"));
        let out = Command::new(PERCORE)
            .args(["loadgen", "run", "--load", "--records", "300", "--workload", "c", "--duration", "1s"])
            .args(["--warmup", "0s", "-q", "--value-size", value, "--batch", batch, "--pipeline", pipeline])
            .args(["--server", s.addr(), "--cores", "1", "--json"])
            .arg(&report)
            .stdin(Stdio::null())
            .output()
            .expect("run loadgen");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "value {value}, batch {batch}, pipeline {pipeline}:\n{stderr}");
        let r = json(&report);
        assert_eq!(r["errors"], 0, "value {value}, batch {batch}, pipeline {pipeline}: {}", r["error_detail"]);
        assert_eq!(r["bad_reads"], 0);
        assert!(r["ops"].as_u64().expect("ops") > 0);
    }
}

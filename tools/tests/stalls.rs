//! Who stalled: a real server that blocks its core for 50 ms once a second
//! (`--fault stall`) and a real load generator whose thread sleeps 50 ms once
//! a second (`--self-stall-ms 50`), each in an open-loop run. The report must
//! put the first stall in the server's latency and not in the client's send
//! lag, and the second in the send lag, with the "fell behind its schedule"
//! warning.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use testkit::{Server, TempDir};

const PERCORE: &str = env!("CARGO_BIN_EXE_percore");

/// The two runs pin the server to CPU 0 and the load thread to CPU 1: run
/// them one at a time, so neither is the other's noise.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The length of both stalls (the server's is `engine::fault::STALL`).
const STALL_US: f64 = 50_000.0;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An open-loop run of 100,000 ops/s for 3 s against `addr`, its JSON report
/// in `json`.
fn open_loop(addr: &str, json: &Path, extra: &[&str]) -> (Output, serde_json::Value) {
    let j = json.to_str().expect("utf8 path");
    let mut args = vec![
        "loadgen",
        "run",
        "--load",
        "--server",
        addr,
        "--cores",
        "1",
        "-q",
        "--records",
        "10000",
        "--rate",
        "100000",
        "--duration",
        "3s",
        "--warmup",
        "1s",
        "--json",
        j,
    ];
    args.extend_from_slice(extra);
    let out = Command::new(PERCORE).args(&args).stdin(Stdio::null()).output().expect("run percore loadgen");
    assert!(out.status.success(), "loadgen failed:\n{}\n{}", text(&out.stdout), text(&out.stderr));
    let report = serde_json::from_str(&std::fs::read_to_string(json).expect("report")).expect("JSON report");
    (out, report)
}

fn figure(report: &serde_json::Value, path: &[&str]) -> f64 {
    let mut v = report;
    for p in path {
        v = &v[p];
    }
    v.as_f64().unwrap_or_else(|| panic!("no {path:?} in the report: {report:#}"))
}

#[test]
fn a_stalled_server_shows_as_latency_not_as_client_lag() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("stall-server");
    let s = Server::start_with(
        PERCORE,
        &["server", "--cores", "0", "--port", "0", "--stats-interval-ms", "0", "--fault", "stall"],
    );
    let (out, report) = open_loop(s.addr(), &dir.join("run.json"), &[]);
    let stdout = text(&out.stdout);
    let max = figure(&report, &["latency_us", "all", "max"]);
    let p99 = figure(&report, &["latency_us", "all", "p99"]);
    let lag_p99 = figure(&report, &["client_lag_us", "p99"]);
    let lag_max = figure(&report, &["client_lag_us", "max"]);
    eprintln!("server stall: latency p99 {p99} µs max {max} µs; send lag p99 {lag_p99} µs max {lag_max} µs");
    // The stall is in the latencies...
    assert!(max >= STALL_US, "a 50 ms server stall must show in the latency: max {max} µs\n{stdout}");
    // ...and not in the client's lag: it waited for the server, it did not fall behind.
    assert!(lag_max < STALL_US, "the server's stall was counted as client lag ({lag_max} µs)\n{stdout}");
    assert!(lag_p99 * 10.0 < p99, "send lag p99 {lag_p99} µs is not small beside latency p99 {p99} µs\n{stdout}");
    assert!(stdout.contains("send lag    µs p50"), "{stdout}");
}

#[test]
fn a_stalled_load_thread_shows_as_client_lag() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("stall-client");
    let s = Server::start_with(PERCORE, &["server", "--cores", "0", "--port", "0", "--stats-interval-ms", "0"]);
    let (out, report) = open_loop(s.addr(), &dir.join("run.json"), &["--self-stall-ms", "50"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let lag_p99 = figure(&report, &["client_lag_us", "p99"]);
    let lag_max = figure(&report, &["client_lag_us", "max"]);
    eprintln!("client stall: send lag p99 {lag_p99} µs max {lag_max} µs");
    // The first operation sampled after each 50 ms sleep was due at most 16
    // operations (160 µs at this rate) after the sleep began.
    assert!(lag_max >= STALL_US * 0.9, "a 50 ms client stall must show as send lag: max {lag_max} µs\n{stdout}");
    assert!(stderr.contains("fell behind its schedule"), "no warning on stderr:\n{stderr}");
    assert!(stdout.contains("BEHIND SCHEDULE"), "{stdout}");
}

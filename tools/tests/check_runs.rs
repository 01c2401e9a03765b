//! The checker on histories of real runs: real server processes on
//! loopback, real `percore loadgen run --history` processes, the real
//! `percore check` — a correct two-shard run passes (and prints the check's
//! size and speed), two load generator "nodes" with separate files pass
//! together, a server that serves stale values is caught with a witness
//! that the raw history confirms, and `percore bench --check` puts the
//! verdict in its report.

use loadgen::history::{HistoryReader, Kind, Record};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use testkit::{Server, TempDir};

const PERCORE: &str = env!("CARGO_BIN_EXE_percore");

fn run(args: &[&str]) -> Output {
    Command::new(PERCORE).args(args).stdin(Stdio::null()).output().expect("run percore")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(path: &Path) -> serde_json::Value {
    let t = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&t).expect("JSON")
}

/// Records the run phase of `percore loadgen run --load …` against `addr`.
fn loadgen(addr: &str, history: &Path, extra: &[&str]) -> Output {
    let h = history.to_str().expect("utf8 path");
    let mut args = vec!["loadgen", "run", "--load", "--server", addr, "--cores", "1", "-q", "--history", h];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert!(out.status.success(), "loadgen failed:\n{}\n{}", text(&out.stdout), text(&out.stderr));
    out
}

/// All records of a history file, by position.
fn records(path: &Path) -> Vec<Record> {
    let mut r = HistoryReader::open(path).expect("open history");
    let mut v = Vec::new();
    while let Some(rec) = r.next_record().expect("read record") {
        v.push(rec);
    }
    v
}

#[test]
fn a_real_two_shard_run_is_linearizable() {
    let dir = TempDir::new("check-run");
    let s = Server::start_with(PERCORE, &["server", "--cores", "0,1", "--port", "0", "--stats-interval-ms", "0"]);
    assert_eq!(s.endpoints.len(), 2, "two shards");
    let history = dir.join("two-shards.hist");
    let report = dir.join("two-shards.json");
    let out = loadgen(
        s.addr(),
        &history,
        &["--records", "20000", "--workload", "a", "--duration", "2s", "--json", report.to_str().expect("utf8")],
    );
    let r = json(&report);
    let recorded = r["history"]["records"].as_u64().expect("records");
    assert!(recorded > 10_000, "{}", text(&out.stdout));
    // Both shards served operations.
    let shards = &r["per_server"][0]["shards"];
    assert!(shards[0]["ops_s"].as_f64() > Some(0.0) && shards[1]["ops_s"].as_f64() > Some(0.0), "{shards}");

    let result = dir.join("two-shards-check.json");
    let out = run(&["check", history.to_str().expect("utf8"), "--json", result.to_str().expect("utf8")]);
    let stdout = text(&out.stdout);
    // The size and speed of the check, for whoever runs this test.
    println!("percore check of a real 2-shard run:\n{stdout}");
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.starts_with(&format!("linearizable: {recorded} ops, ")), "{stdout}");
    let c = json(&result);
    assert!(c["ops_per_s"].as_f64() > Some(0.0) && c["peak_rss_bytes"].as_u64() > Some(0), "{c}");
    assert_eq!(c["history_bytes"].as_u64(), std::fs::metadata(&history).ok().map(|m| m.len()));
}

#[test]
fn two_load_generator_nodes_are_checked_together() {
    let dir = TempDir::new("check-run");
    let s = Server::start_with(PERCORE, &["server", "--cores", "0,1", "--port", "0", "--stats-interval-ms", "0"]);
    let load = run(&["loadgen", "load", "--server", s.addr(), "--records", "2000", "--cores", "1", "-q"]);
    assert!(load.status.success(), "{}", text(&load.stderr));
    // Two processes at once, as two client nodes would: own files, own
    // writer ids (on one machine they share its clock, and the checker
    // compares their times); a small hot key space so they share keys.
    let (a, b) = (dir.join("node-a.hist"), dir.join("node-b.hist"));
    let spawn = |h: &Path, base: &str| {
        Command::new(PERCORE)
            .args(["loadgen", "run", "--server", s.addr(), "--records", "2000", "--workload", "a", "--duration"])
            .args(["2s", "--cores", "1", "-q", "--writer-base", base, "--batch", "16", "--history"])
            .arg(h)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn loadgen")
    };
    let (pa, pb) = (spawn(&a, "0"), spawn(&b, "256"));
    for p in [pa, pb] {
        let out = p.wait_with_output().expect("wait");
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let out = run(&["check", a.to_str().expect("utf8"), b.to_str().expect("utf8")]);
    let stdout = text(&out.stdout);
    println!("percore check of two load generator nodes:\n{stdout}");
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("checked 2 file(s)"), "{stdout}");
    // Same writer ids in both: the checker refuses (values are not unique).
    let c = dir.join("node-c.hist");
    let again = spawn(&c, "0").wait_with_output().expect("wait");
    assert!(again.status.success());
    let out = run(&["check", "-q", a.to_str().expect("utf8"), c.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("--writer-base"), "{}", text(&out.stderr));
}

#[test]
fn a_server_serving_stale_values_is_caught_with_the_right_key() {
    let dir = TempDir::new("check-run");
    // Every 16th GET of a key with a previous value returns that value
    // (a test-only switch of the server). One load thread sending small
    // batches one at a time puts most operations in real-time order, so
    // the stale reads are provable.
    let s = Server::start_with(
        PERCORE,
        &["server", "--cores", "0", "--port", "0", "--stats-interval-ms", "0", "--fault", "stale-reads"],
    );
    let history = dir.join("stale.hist");
    let out = loadgen(
        s.addr(),
        &history,
        &[
            "--records",
            "50",
            "--workload",
            "a",
            "--duration",
            "1s",
            "--warmup",
            "0s",
            "--batch",
            "4",
            "--pipeline",
            "1",
        ],
    );
    // The values are intact: read verification alone cannot see this.
    assert!(text(&out.stdout).contains("verified    0 bad reads"), "{}", text(&out.stdout));

    let result = dir.join("stale-check.json");
    let out = run(&["check", history.to_str().expect("utf8"), "--json", result.to_str().expect("utf8")]);
    let stdout = text(&out.stdout);
    println!("{stdout}");
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.starts_with("VIOLATION: key "), "{stdout}");
    let c = json(&result);
    let witnesses = c["violations"].as_array().expect("witnesses");
    assert!(!witnesses.is_empty());
    // Confirm each stale-read witness from the raw history: the GET of key
    // K returned the value of a PUT of K that completed before another PUT
    // of K began, which completed before the GET began.
    let recs = records(&history);
    let mut confirmed = 0;
    for w in witnesses {
        let key = w["key"].as_u64().expect("key");
        assert!(key < 50, "a key of the run: {w}");
        let ops: Vec<Record> = w["ops"]
            .as_array()
            .expect("ops")
            .iter()
            .map(|o| recs[o["position"].as_u64().expect("position") as usize])
            .collect();
        assert!(ops.iter().all(|r| r.key == key), "the witness's operations are all of key {key}: {w}");
        if w["proof"] != "stale-read" {
            continue;
        }
        let get = ops.iter().find(|r| r.kind == Kind::Get).expect("a GET");
        let first = ops.iter().find(|r| r.kind == Kind::Put && r.value == get.value).expect("its PUT");
        let other = ops.iter().find(|r| r.kind == Kind::Put && r.value != get.value).expect("the overwrite");
        assert!(first.response < other.invoke && other.response < get.invoke, "{w}");
        confirmed += 1;
    }
    assert!(confirmed > 0, "no stale-read witness among {witnesses:?}");
}

#[test]
fn bench_check_reports_linearizable() {
    let dir = TempDir::new("check-run");
    let report = dir.join("bench.json");
    let child = Command::new(PERCORE)
        .args(["bench", "--check", "--duration", "2s", "--records", "100000", "--json"])
        .arg(&report)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run percore bench --check");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait");
    let stdout = text(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let line = stdout.lines().find(|l| l.starts_with("check ")).unwrap_or_else(|| panic!("no check line: {stdout}"));
    assert!(line.contains("linearizable: ") && line.contains("M ops/s") && line.contains("peak RSS"), "{line}");
    let r = json(&report);
    assert_eq!(r["check"]["verdict"], "linearizable", "{}", r["check"]);
    let checked = r["check"]["ops"].as_u64().expect("ops checked");
    // Everything the run recorded was checked: the measured window and more.
    assert!(checked >= r["ops"].as_u64().expect("ops") && checked == r["history"]["records"].as_u64().expect("rec"));
    // The temporary history is gone.
    let tmp = std::env::temp_dir().join(format!("percore-bench-{pid}.hist"));
    assert!(!tmp.exists(), "{} left behind", tmp.display());
}

#[test]
fn a_run_stopped_mid_flight_still_checks() {
    let dir = TempDir::new("check-run");
    // Two load threads, so one thread's GET can observe another's PUT whose
    // reply is still in flight when the run is interrupted: that PUT is
    // recorded with an unknown outcome, and the history still checks.
    let s = Server::start_with(PERCORE, &["server", "--cores", "0,1", "--port", "0", "--stats-interval-ms", "0"]);
    let load = run(&["loadgen", "load", "--server", s.addr(), "--records", "1000", "--cores", "0,1", "-q"]);
    assert!(load.status.success(), "{}", text(&load.stderr));
    let history = dir.join("stopped.hist");
    let mut child = Command::new(PERCORE)
        .args(["loadgen", "run", "--server", s.addr(), "--records", "1000", "--workload", "a", "--duration", "60s"])
        .args(["--warmup", "0s", "--cores", "0,1", "--history"])
        .arg(&history)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn loadgen");
    // Wait for its first second's line, freeze the server so that whatever
    // the load generator has sent stays unanswered, then interrupt it.
    let mut err = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut err, &mut line).expect("read stderr");
        assert!(n > 0, "loadgen ended early: {seen}");
        seen.push_str(&line);
        if line.trim_start().starts_with("1s ops/s") {
            break;
        }
    }
    s.signal(libc::SIGSTOP);
    // The closed loop keeps its pipeline full: give its threads a moment to
    // find the server silent (they are blocked on replies from then on).
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: kill(2) on our own child's PID.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut err, &mut rest);
    let status = child.wait().expect("wait");
    s.signal(libc::SIGCONT);
    assert!(status.success(), "an interrupted run reports what it measured: {seen}{rest}");
    let unanswered = records(&history).iter().filter(|r| r.response == loadgen::history::NO_RESPONSE).count();
    let out = run(&["check", history.to_str().expect("utf8")]);
    let stdout = text(&out.stdout);
    println!("{unanswered} PUTs without a reply; {stdout}");
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(unanswered > 0, "the run was stopped with operations in flight");
}

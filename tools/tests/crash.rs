//! Nothing acknowledged is lost on restart: `tools/crash-test.sh` against
//! this build's `percore` — a durable node (`--fsync always`) killed with
//! SIGKILL in the middle of a recorded YCSB-A, restarted on its data
//! directory and read back key by key, checked by `percore check A --then
//! B` and `percore lost` (three iterations, every one must pass; two more
//! among snapshots taken every 64 KiB of log) — and the proof that the
//! test can fail: a node that forgot (its data directory
//! deleted between the kill and the restart) is a VIOLATION. Also
//! `percore loadgen verify`, the read-back step, on its own.

use loadgen::history::{HistoryReader, Kind, NOT_FOUND, Record};
use loadgen::value::{Identity, LOAD_WRITER};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use testkit::{Server, TempDir};

const PERCORE: &str = env!("CARGO_BIN_EXE_percore");
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/crash-test.sh");

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn percore(args: &[&str]) -> Output {
    Command::new(PERCORE).args(args).stdin(Stdio::null()).output().expect("run percore")
}

/// Runs the crash test script on this build's binary, its files under
/// `dir` (`args` last: after a `--` they are the server's).
fn crash_test(dir: &Path, args: &[&str]) -> Output {
    Command::new("bash")
        .arg(SCRIPT)
        .args(["--percore", PERCORE, "--dir"])
        .arg(dir)
        .args(args)
        .env_remove(wire::cluster::PASSWORD_ENV)
        .stdin(Stdio::null())
        .output()
        .expect("run tools/crash-test.sh")
}

/// All records of a history file, by position.
fn records(path: &Path) -> Vec<Record> {
    let mut r = HistoryReader::open(path).expect("open history");
    std::iter::from_fn(|| r.next_record().expect("read record")).collect()
}

#[test]
fn verify_reads_every_key_once() {
    let dir = TempDir::new("crash");
    let s = Server::start_with(PERCORE, &["server", "--cores", "0", "--port", "0", "--stats-interval-ms", "0"]);
    let addr = s.addr();
    let load = percore(&["loadgen", "load", "--server", addr, "--records", "500", "-q"]);
    assert!(load.status.success(), "{}", text(&load.stderr));
    assert!(percore(&["del", "7", "--server", addr]).status.success());

    // Two load threads split the keys; each key is read exactly once.
    let history = dir.join("verify.hist");
    let h = history.to_str().expect("utf8");
    let out =
        percore(&["loadgen", "verify", "--server", addr, "--records", "500", "--cores", "0,1", "-q", "--history", h]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.starts_with("== percore verify — every record read once"), "{stdout}");
    assert!(stdout.contains("reads       499 hits, 1 misses; 0 puts"), "{stdout}");
    let recs = records(&history);
    let mut keys: Vec<u64> = recs.iter().map(|r| r.key).collect();
    keys.sort_unstable();
    assert_eq!(keys, (0..500).collect::<Vec<_>>(), "every key once");
    for r in &recs {
        assert_eq!(r.kind, Kind::Get, "{r:?}");
        let expected = if r.key == 7 { NOT_FOUND } else { Identity::new(LOAD_WRITER, r.key).0 };
        assert_eq!(r.value, expected, "key {}: the value it holds", r.key);
        assert!(r.invoke <= r.response, "{r:?}");
    }
    assert_eq!(recs.iter().map(|r| r.client).max(), Some(1), "both threads read");

    // A value that is not the key's fails the run (exit 1), as in `run`.
    assert!(percore(&["put", "3", "not a load generator value", "--server", addr]).status.success());
    let out = percore(&["loadgen", "verify", "--server", addr, "--records", "500", "-q"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("verified    1 bad reads (first: GET of key 3"), "{}", text(&out.stdout));
}

#[test]
fn always_mode_crashes_lose_nothing() {
    let dir = TempDir::new("crash");
    let out = crash_test(dir.path(), &["3", "--fsync", "always"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    println!("{stdout}");
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "an iteration line each, then the summary: {stdout}");
    for (i, line) in lines[..3].iter().enumerate() {
        assert!(line.starts_with(&format!("crash-test: {}/3 pass: killed ", i + 1)), "{line}");
        assert!(line.contains("; linearizable; lost 0 of "), "{line}");
        // Writes were acknowledged before the kill and read back after it.
        let acked: u64 = line
            .split("; lost 0 of ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no acknowledged count: {line}"));
        assert!(acked > 0, "{line}");
        assert!(line.contains("B 2000 reads (0 found nothing)"), "{line}");
    }
    let summary = lines[3];
    assert!(summary.starts_with("crash-test: 3 iterations, 3 passed, "), "{summary}");
    assert!(summary.contains(" ops checked, 0 acknowledged writes lost, "), "{summary}");
    // The script removes its files when it passes.
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0, "files left in {}", dir.path().display());
}

#[test]
fn always_mode_crashes_among_snapshots_lose_nothing() {
    // A snapshot every 64 KiB of log (or of the last snapshot's size): the
    // kill lands among snapshots, and the restart loads the last one and
    // replays the log after it.
    let dir = TempDir::new("crash");
    let out = crash_test(dir.path(), &["2", "--fsync", "always", "--", "--snapshot-after", "64kb"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    println!("{stdout}");
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("crash-test: 2 iterations, 2 passed, "), "{stdout}");
    // The records were loaded 0.3 s or more before the kill, well past the
    // first snapshot's threshold: some restart loaded a snapshot of them.
    let snapshotted = stdout
        .lines()
        .filter_map(|l| l.split(", recovered ").nth(1))
        .any(|r| r.split_once(" snapshot + ").and_then(|(n, _)| n.parse::<u64>().ok()).is_some_and(|n| n > 0));
    assert!(
        snapshotted,
        "no restart recovered from a snapshot (the server's recovery line: see server2.err): {stdout}"
    );
}

#[test]
fn a_node_that_forgot_is_caught() {
    // The data directory deleted between the kill and the restart: the
    // restarted node serves an empty store, and what the run saw
    // acknowledged is gone.
    let dir = TempDir::new("crash");
    let out = crash_test(dir.path(), &["1", "--fsync", "always", "--forget"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    println!("{stdout}{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.starts_with("crash-test: 1/1 FAIL: "), "{stdout}");
    assert!(stdout.contains("B 2000 reads (2000 found nothing); VIOLATION; lost "), "{stdout}");
    // The checker's witness is printed: an acknowledged write, then a read
    // of nothing after the restart.
    assert!(stderr.contains("VIOLATION: key "), "{stderr}");
    // `percore lost` counts what went.
    let lost = stderr.lines().find(|l| l.starts_with("lost ")).unwrap_or_else(|| panic!("no lost line: {stderr}"));
    let n: u64 = lost.split(' ').nth(1).and_then(|n| n.parse().ok()).expect("a count");
    assert!(n > 0, "{lost}");
    // The files are kept, and the script says where.
    let kept = stdout
        .lines()
        .find_map(|l| l.split("files kept in ").nth(1))
        .unwrap_or_else(|| panic!("where the files are: {stdout}"));
    for f in ["A.hist", "B.hist", "check.out", "lost.out", "server1.err", "server2.err"] {
        assert!(Path::new(kept).join(f).is_file(), "{kept}/{f}");
    }
}

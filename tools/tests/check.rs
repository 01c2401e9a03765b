//! `percore check` on hand-written histories with known answers: each file
//! is written byte by byte in the history format, the real binary checks
//! it, and the verdict, exit code and witness are asserted.

use loadgen::history::{BAD_READ, Kind, MAGIC, NO_RESPONSE, NOT_FOUND, Record};
use loadgen::value::{Identity, LOAD_WRITER};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use testkit::TempDir;

const PERCORE: &str = env!("CARGO_BIN_EXE_percore");

/// `w{writer}#{seq}`.
fn v(writer: u32, seq: u64) -> u64 {
    Identity::new(writer, seq).0
}

fn load(key: u64) -> u64 {
    Identity::new(LOAD_WRITER, key).0
}

/// One operation: (client, kind, key, value, invoke, response).
type H = (u16, Kind, u64, u64, u64, u64);

const PUT: Kind = Kind::Put;
const GET: Kind = Kind::Get;
const DEL: Kind = Kind::Delete;

struct Dir(TempDir);

impl Dir {
    fn new(name: &str) -> Dir {
        Dir(TempDir::new(&format!("check-{name}")))
    }

    /// Writes a history file of `ops` (format version 2).
    fn history(&self, name: &str, ops: &[H]) -> PathBuf {
        self.history_with(name, "", ops)
    }

    /// Writes a history file of `ops` whose header also has `extra` (JSON
    /// members, each with a leading comma).
    fn history_with(&self, name: &str, extra: &str, ops: &[H]) -> PathBuf {
        let header =
            format!(r#"{{"version":2,"node":"test","pid":1,"epoch_unix_ns":0,"clock":"test","threads":4{extra}}}"#);
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        for &(client, kind, key, value, invoke, response) in ops {
            bytes.extend_from_slice(&Record { key, kind, client, value, invoke, response }.encode());
        }
        let path = self.0.join(name);
        std::fs::write(&path, bytes).expect("write history");
        path
    }
}

/// Runs `percore check FILES… --json OUT extra…`: exit code, stdout, stderr, JSON.
fn check(dir: &Dir, files: &[PathBuf], extra: &[&str]) -> (i32, String, String, serde_json::Value) {
    let json = dir.0.join("out.json");
    let _ = std::fs::remove_file(&json);
    let out = Command::new(PERCORE)
        .arg("check")
        .args(files)
        .arg("--json")
        .arg(&json)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run percore check");
    let code = out.status.code().unwrap_or(-1);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let value = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    (code, stdout, stderr, value)
}

/// Checks one file of `ops`; returns (exit code, stdout, JSON).
fn one(name: &str, ops: &[H]) -> (i32, String, serde_json::Value) {
    let dir = Dir::new(name);
    let f = dir.history("h", ops);
    let (code, out, err, json) = check(&dir, &[f], &[]);
    assert!(code != 2, "{name}: error: {err}");
    (code, out, json)
}

fn assert_linearizable(name: &str, ops: &[H]) {
    let (code, out, json) = one(name, ops);
    assert_eq!(code, 0, "{name}: expected linearizable:\n{out}");
    assert!(out.starts_with("linearizable: "), "{out}");
    assert_eq!(json["verdict"], "linearizable");
}

/// Asserts a violation on `key` proven by `proof` with `n_ops` operations.
fn assert_violation(name: &str, ops: &[H], key: u64, proof: &str, n_ops: usize) -> String {
    let (code, out, json) = one(name, ops);
    assert_eq!(code, 1, "{name}: expected a violation:\n{out}");
    assert!(out.starts_with(&format!("VIOLATION: key {key} ")), "{out}");
    let w = &json["violations"][0];
    assert_eq!(w["key"], key, "{w}");
    assert_eq!(w["proof"], proof, "{name}: {out}");
    assert_eq!(w["ops"].as_array().map(Vec::len), Some(n_ops), "{name}: {out}");
    out
}

#[test]
fn classic_stale_read() {
    // PUT a, then PUT b, then a GET that still returns a.
    let h = [(0, PUT, 1, v(0, 1), 0, 10), (0, PUT, 1, v(0, 2), 20, 30), (1, GET, 1, v(0, 1), 40, 50)];
    let out = assert_violation("stale", &h, 1, "stale-read", 3);
    assert!(out.contains("[3] GET returned w0#1, but [2] PUT w0#2 overwrote it before that GET began"), "{out}");
    // The same GET overlapping the second PUT may return either value.
    assert_linearizable("stale-ok", &[h[0], h[1], (1, GET, 1, v(0, 1), 25, 50)]);
    assert_linearizable("stale-ok2", &[h[0], h[1], (1, GET, 1, v(0, 2), 25, 50)]);
}

#[test]
fn read_from_the_future() {
    let h = [(1, GET, 5, v(0, 1), 0, 10), (0, PUT, 5, v(0, 1), 20, 30)];
    let out = assert_violation("future", &h, 5, "read-from-future", 2);
    assert!(out.contains("began only at 0.000000020s"), "{out}");
    // Overlapping the PUT, it is fine.
    assert_linearizable("future-ok", &[(1, GET, 5, v(0, 1), 0, 25), h[1]]);
}

#[test]
fn lost_update() {
    // Client 1 reads a, writes b; client 0, after both, still reads a: b was lost.
    let h = [
        (0, PUT, 2, v(0, 1), 0, 10),
        (1, GET, 2, v(0, 1), 12, 14),
        (1, PUT, 2, v(1, 1), 15, 20),
        (0, GET, 2, v(0, 1), 25, 30),
    ];
    assert_violation("lost", &h, 2, "stale-read", 3);
    // And the read-back of b after the lost update: b was seen, then a again.
    let h2 = [h[0], h[1], h[2], (1, GET, 2, v(1, 1), 21, 24), (0, GET, 2, v(0, 1), 25, 30)];
    assert_violation("lost2", &h2, 2, "stale-read", 3);
}

#[test]
fn concurrent_overlapping_writes_read_in_either_order() {
    let a = (0, PUT, 3, v(0, 1), 0, 100);
    let b = (1, PUT, 3, v(1, 1), 10, 110);
    // After both: every reader sees the same winner, either one.
    assert_linearizable("either-a", &[a, b, (2, GET, 3, v(0, 1), 120, 130), (2, GET, 3, v(0, 1), 140, 150)]);
    assert_linearizable("either-b", &[a, b, (2, GET, 3, v(1, 1), 120, 130), (3, GET, 3, v(1, 1), 140, 150)]);
    // During both: a then b, or b then a.
    assert_linearizable("during-ab", &[a, b, (2, GET, 3, v(0, 1), 20, 30), (2, GET, 3, v(1, 1), 40, 50)]);
    assert_linearizable("during-ba", &[a, b, (2, GET, 3, v(1, 1), 20, 30), (2, GET, 3, v(0, 1), 40, 50)]);
    // After both, flipping back is not.
    let out = assert_violation(
        "flip",
        &[a, b, (2, GET, 3, v(1, 1), 120, 130), (2, GET, 3, v(0, 1), 140, 150)],
        3,
        "crossed-values",
        4,
    );
    assert!(out.contains("cannot be ordered"), "{out}");
}

#[test]
fn reads_of_never_written_values_and_initial_values() {
    // A value no PUT of this key wrote.
    assert_violation("never", &[(0, GET, 7, v(3, 9), 0, 10)], 7, "never-written", 1);
    // A value written for another key.
    assert_violation("other-key", &[(0, PUT, 8, v(0, 1), 0, 10), (0, GET, 7, v(0, 1), 20, 30)], 7, "never-written", 1);
    // Never-written keys: NOT_FOUND, or the key's load value, are initial values.
    assert_linearizable("absent", &[(0, GET, 7, NOT_FOUND, 0, 10), (1, GET, 7, NOT_FOUND, 5, 20)]);
    assert_linearizable("loaded", &[(0, GET, 7, load(7), 0, 10), (0, PUT, 7, v(0, 1), 20, 30)]);
    // ... but not both, and not after a later value was current.
    assert_violation("both", &[(0, GET, 7, NOT_FOUND, 0, 10), (1, GET, 7, load(7), 20, 30)], 7, "absent-and-loaded", 2);
    let out = assert_violation(
        "stale-initial",
        &[(0, PUT, 7, v(0, 1), 0, 10), (1, GET, 7, load(7), 20, 30)],
        7,
        "stale-initial-value",
        2,
    );
    assert!(out.contains("returned the initial value load#7"), "{out}");
    assert_violation(
        "absent-after-put",
        &[(0, PUT, 7, v(0, 1), 0, 10), (1, GET, 7, NOT_FOUND, 20, 30)],
        7,
        "stale-initial-value",
        2,
    );
}

#[test]
fn bad_reads_are_violations() {
    assert_violation("bad", &[(0, PUT, 4, v(0, 1), 0, 10), (0, GET, 4, BAD_READ, 20, 30)], 4, "bad-read", 1);
}

#[test]
fn unanswered_puts_may_or_may_not_have_happened() {
    let pending = (0, PUT, 6, v(0, 2), 20, NO_RESPONSE);
    // Seen, or never seen: both fine.
    assert_linearizable(
        "pending-seen",
        &[(0, PUT, 6, v(0, 1), 0, 10), pending, (1, GET, 6, v(0, 2), 1000, 1010), (1, GET, 6, v(0, 2), 2000, 2010)],
    );
    assert_linearizable("pending-unseen", &[(0, PUT, 6, v(0, 1), 0, 10), pending, (1, GET, 6, v(0, 1), 1000, 1010)]);
    // Seen, then not: it had taken effect, so the old value cannot come back.
    assert_violation(
        "pending-flip",
        &[(0, PUT, 6, v(0, 1), 0, 10), pending, (1, GET, 6, v(0, 2), 1000, 1010), (1, GET, 6, v(0, 1), 2000, 2010)],
        6,
        "crossed-values",
        4,
    );
}

#[test]
fn deletes_go_to_the_bounded_search() {
    let put = (0, PUT, 9, v(0, 1), 0, 10);
    let del = (0, DEL, 9, 0, 20, 30);
    assert_linearizable("del", &[put, del, (1, GET, 9, NOT_FOUND, 40, 50)]);
    assert_linearizable("del-concurrent", &[put, del, (1, GET, 9, v(0, 1), 25, 50)]);
    let (code, out, json) = one("del-stale", &[put, del, (1, GET, 9, v(0, 1), 40, 50)]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(json["violations"][0]["proof"], "search");
    assert_eq!(json["violations"][0]["ops"].as_array().map(Vec::len), Some(3), "{out}");
    // NOT_FOUND twice around a PUT that completed before the first: needs a
    // DELETE between, which exists only concurrently — fine; after, not.
    let p2 = (0, PUT, 9, v(0, 2), 100, 110);
    assert_linearizable("del-two", &[put, del, p2, (1, GET, 9, NOT_FOUND, 40, 50), (1, GET, 9, v(0, 2), 120, 130)]);
    let (code, out, _) =
        one("del-two-bad", &[put, del, p2, (1, GET, 9, v(0, 2), 120, 130), (1, GET, 9, NOT_FOUND, 140, 150)]);
    assert_eq!(code, 1, "{out}");
}

/// A key one node deletes once while another node writes and reads it:
/// the reader's NOT_FOUND can only be the other file's DELETE (it follows
/// the reader's own writes), and the check certifies that at once, however
/// long the history (the soak test's case: a search would run out of time).
#[test]
fn a_delete_from_another_file_explains_not_found_after_a_write() {
    let dir = Dir::new("foreign-del");
    let mut a: Vec<H> = Vec::new();
    let mut t = 0;
    for i in 0..3000u64 {
        a.push((0, PUT, 5, v(0, i + 1), t, t + 5));
        a.push((0, GET, 5, v(0, i + 1), t + 10, t + 15));
        t += 20;
        if i == 1500 {
            a.push((0, GET, 5, NOT_FOUND, t, t + 5));
            a.push((0, GET, 5, NOT_FOUND, t + 10, t + 15));
            t += 20;
        }
    }
    let fa = dir.history("a", &a);
    let fb = dir.history("b", &[(0, DEL, 5, 0, 7, 9)]);
    let (code, out, err, _) = check(&dir, &[fa.clone(), fb], &["--timeout-per-key", "1"]);
    assert_eq!(code, 0, "{out}{err}");
    // Without the other file's DELETE it is a violation.
    let (code, out, err, _) = check(&dir, &[fa], &["--timeout-per-key", "1000"]);
    assert_eq!(code, 1, "{out}{err}");
}

#[test]
fn undecidable_in_time_is_unknown_with_the_key() {
    // 40 concurrent PUTs and a DELETE, then two reads that cannot both be
    // explained: the search would have to try 2^41 orders.
    let mut h: Vec<H> = (0..40).map(|i| (i as u16, PUT, 11, v(i, 1), 0, 1000)).collect();
    h.push((40, DEL, 11, 0, 0, 1000));
    h.push((41, GET, 11, v(0, 1), 1100, 1200));
    h.push((41, GET, 11, v(1, 1), 1300, 1400));
    let dir = Dir::new("unknown");
    let f = dir.history("h", &h);
    let (code, out, err, json) = check(&dir, &[f], &["--timeout-per-key", "50"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.starts_with("unknown: 1 of 1 keys undecided (43 ops): 11"), "{out}");
    assert_eq!(json["verdict"], "unknown");
    assert_eq!(json["unknown"][0]["key"], 11);
}

#[test]
fn across_files_only_each_files_own_order_and_the_data_count() {
    let dir = Dir::new("files");
    // Node A writes v1 then v2; node B reads v2 then v1: a violation found
    // without comparing A's clock with B's.
    let a = dir.history("a", &[(0, PUT, 1, v(0, 1), 0, 10), (0, PUT, 1, v(0, 2), 20, 30)]);
    let b = dir.history("b", &[(0, GET, 1, v(0, 2), 500, 510), (0, GET, 1, v(0, 1), 520, 530)]);
    let (code, out, err, json) = check(&dir, &[a.clone(), b], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(json["violations"][0]["key"], 1);
    assert_eq!(json["violations"][0]["ops"].as_array().map(Vec::len), Some(4), "{out}");
    assert!(out.contains(&format!("{} #1", a.display())), "witness names files: {out}");

    // Node B reads v1 once, "after" A's v2 by the timestamps: different
    // clocks, so not comparable — linearizable. In one file it is stale.
    let b1 = dir.history("b1", &[(1, GET, 1, v(0, 1), 500, 510)]);
    let (code, out, err, _) = check(&dir, &[a, b1], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("linearizable: 3 ops, 1 keys"), "{out}");
    let same = dir
        .history("same", &[(0, PUT, 1, v(0, 1), 0, 10), (0, PUT, 1, v(0, 2), 20, 30), (1, GET, 1, v(0, 1), 500, 510)]);
    assert_eq!(check(&dir, &[same], &[]).0, 1);
}

#[test]
fn files_of_one_machines_boot_share_its_clock() {
    let dir = Dir::new("clock");
    // A's epoch is at 1000 ns of the boot's monotonic clock, B's at 1500:
    // B's read at 10 (1510 on the shared clock) began after A's PUT of v2
    // ended (1030), so reading v1 is stale.
    let a = dir.history_with(
        "a",
        r#","boot_id":"b-1","epoch_monotonic_ns":1000"#,
        &[(0, PUT, 1, v(0, 1), 0, 10), (0, PUT, 1, v(0, 2), 20, 30)],
    );
    let b = dir.history_with("b", r#","boot_id":"b-1","epoch_monotonic_ns":1500"#, &[(0, GET, 1, v(0, 1), 10, 20)]);
    let (code, out, err, json) = check(&dir, &[a.clone(), b], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(json["violations"][0]["key"], 1, "{out}");
    assert!(out.contains("completed at 0.000000030s before the GET began at 0.000000510s"), "on A's clock: {out}");
    // The same read began before A's PUT of v2 ended (B's epoch at 1000):
    // concurrent, linearizable.
    let early =
        dir.history_with("early", r#","boot_id":"b-1","epoch_monotonic_ns":1000"#, &[(0, GET, 1, v(0, 1), 25, 35)]);
    assert_eq!(check(&dir, &[a.clone(), early], &[]).0, 0);
    // On another boot (another machine), the clocks are not compared.
    let other =
        dir.history_with("other", r#","boot_id":"b-2","epoch_monotonic_ns":1500"#, &[(0, GET, 1, v(0, 1), 10, 20)]);
    let (code, out, err, _) = check(&dir, &[a, other], &[]);
    assert_eq!(code, 0, "{out}{err}");
}

/// A run killed mid-way (A), then a read-only pass after the restart (B),
/// checked as two eras: what A saw acknowledged must survive into B.
#[test]
fn then_checks_a_run_after_a_restart() {
    let dir = Dir::new("then");
    // Key 1: w0#1 then w0#2 acknowledged. Key 2: w0#1 acknowledged, then
    // w1#1 sent but never answered (the server was killed).
    let a = dir.history(
        "A.hist",
        &[
            (0, PUT, 1, v(0, 1), 0, 10),
            (0, PUT, 1, v(0, 2), 20, 30),
            (0, PUT, 2, v(0, 3), 40, 50),
            (1, PUT, 2, v(1, 1), 60, NO_RESPONSE),
        ],
    );
    let b_path = |name: &str, ops: &[H]| dir.history(name, ops).display().to_string();
    let run = |b: &str| check(&dir, std::slice::from_ref(&a), &["--then", b]);
    // The newest acknowledged value survived; the unanswered one did or not.
    for key2 in [v(0, 3), v(1, 1)] {
        let b = b_path("B.hist", &[(0, GET, 1, v(0, 2), 5, 6), (0, GET, 2, key2, 7, 8)]);
        let (code, out, err, json) = run(&b);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.starts_with("linearizable: 6 ops, 2 keys"), "{out}");
        assert!(out.contains("checked 2 file(s) of 2 eras"), "{out}");
        assert_eq!(json["eras"], 2);
    }
    // The acknowledged w0#2 is lost: B reads w0#1.
    let b = b_path("B.hist", &[(0, GET, 1, v(0, 1), 5, 6), (0, GET, 2, v(0, 3), 7, 8)]);
    let (code, out, err, json) = run(&b);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.starts_with("VIOLATION: key 1 is not linearizable"), "{out}");
    assert!(out.contains("[3] GET returned w0#1 in era 1, but [2] PUT w0#2 had overwritten it"), "{out}");
    assert!(out.contains("an acknowledged write was lost across the restart"), "{out}");
    assert!(
        out.contains(&format!("({} #1, era 0)", a.display())) && out.contains(&format!("({b} #0, era 1)")),
        "{out}"
    );
    let w = &json["violations"][0];
    assert_eq!((w["proof"].as_str(), w["ops"].as_array().map(Vec::len)), (Some("lost-write"), Some(3)), "{out}");
    assert_eq!(w["ops"][2]["era"], 1);
    // The same two files without --then: no order between them, so fine.
    let (code, out, err, _) = check(&dir, &[a.clone(), PathBuf::from(&b)], &[]);
    assert_eq!(code, 0, "{out}{err}");
    // NOT_FOUND after the restart for an acknowledged key: lost as well.
    let b = b_path("B.hist", &[(0, GET, 1, v(0, 2), 5, 6), (0, GET, 2, NOT_FOUND, 7, 8)]);
    let (code, out, err, _) = run(&b);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.starts_with("VIOLATION: key 2 "), "{out}");
    assert!(out.contains("GET returned the initial value NOT_FOUND in era 1"), "{out}");
    // Three eras: A, B (writes key 3), then C, which finds key 3 absent.
    let b = b_path("B.hist", &[(0, PUT, 3, v(2, 1), 5, 6)]);
    let c = b_path("C.hist", &[(0, GET, 3, NOT_FOUND, 5, 6)]);
    let (code, out, err, json) = check(&dir, std::slice::from_ref(&a), &["--then", &b, "--then", &c]);
    assert_eq!((code, json["eras"].as_u64()), (1, Some(3)), "{out}{err}");
    assert!(out.starts_with("VIOLATION: key 3 "), "{out}");
    // Several files in one group are one era, each with its own clock.
    let (code, out, err, json) = check(&dir, std::slice::from_ref(&a), &["--then", &b, &c]);
    assert_eq!((code, json["eras"].as_u64()), (0, Some(2)), "B and C have their own clocks: {out}{err}");
    // `--then` needs a file.
    let (code, _, err, _) = check(&dir, std::slice::from_ref(&a), &["--then"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn many_keys_are_checked_independently() {
    let mut h = Vec::new();
    for key in 0..1000u64 {
        h.push((0, PUT, key, v(0, key + 1), key * 100, key * 100 + 10));
        h.push((1, GET, key, v(0, key + 1), key * 100 + 20, key * 100 + 30));
    }
    // Two keys are broken.
    h.push((2, GET, 17, load(17), 5000, 5001));
    h.push((2, GET, 400, NOT_FOUND, 50000, 50001));
    let (code, out, json) = one("many", &h);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("VIOLATION: key 17 is not linearizable (2 of 1000 keys not linearizable; 2002 ops)"),
        "{out}"
    );
    assert!(out.contains("other keys not linearizable: 400"), "{out}");
    assert_eq!(json["violating_keys"], 2);
    assert_eq!(json["violations"][1]["key"], 400);
}

#[test]
fn bad_input_is_exit_2_with_one_line() {
    let dir = Dir::new("bad");
    let missing = dir.0.join("missing");
    let (code, out, err, _) = check(&dir, &[missing], &["-q"]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(err.contains("missing") && err.lines().count() == 1, "{err}");

    let junk = dir.0.join("junk");
    std::fs::write(&junk, b"not a history at all").expect("write");
    let (code, _, err, _) = check(&dir, &[junk], &["-q"]);
    assert_eq!(code, 2);
    assert!(err.contains("not a percore history") && err.lines().count() == 1, "{err}");

    let twice = dir.history("twice", &[(0, PUT, 1, v(0, 1), 0, 10), (1, PUT, 1, v(0, 1), 20, 30)]);
    let (code, _, err, _) = check(&dir, &[twice], &["-q"]);
    assert_eq!(code, 2);
    assert!(err.contains("written twice") && err.contains("--writer-base"), "{err}");

    let backwards = dir.history("backwards", &[(0, PUT, 1, v(0, 1), 10, 5)]);
    let (code, _, err, _) = check(&dir, &[backwards], &["-q"]);
    assert_eq!(code, 2);
    assert!(err.contains("record 0: its response precedes its invoke"), "{err}");
}

#[test]
fn a_synthetic_history_checks_through_bucket_files() {
    let dir = Dir::new("synth");
    let f = dir.0.join("synth.hist");
    let status = Command::new(PERCORE)
        .args(["check", "-q", "--synthesize", "300000", "--keys", "5000", "--clients", "16"])
        .arg(&f)
        .status()
        .expect("synthesize");
    assert!(status.success());
    // 1 MiB of memory budget forces bucket files.
    let (code, out, err, json) =
        check(&dir, &[f], &["--memory", "1", "--temp-dir", dir.0.path().to_str().expect("utf8")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("linearizable: 300000 ops, "), "{out}");
    assert_eq!(json["spilled"], true);
    assert!(json["buckets"].as_u64().expect("buckets") > 1);
    // The bucket directory is gone.
    let left: Vec<_> = std::fs::read_dir(dir.0.path())
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("percore-check-"))
        .collect();
    assert!(left.is_empty(), "bucket files left behind: {left:?}");
}

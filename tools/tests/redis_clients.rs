//! Clients nobody here wrote, against a real 2-core percore node (two
//! cluster nodes, so redirects happen): `redis-cli` plain and `-c`,
//! `redis-cli --cluster check`, `redis-benchmark --cluster`, and redis-py's
//! `RedisCluster` (tools/tests/redis_py_cluster.py).
//!
//! `tools/test.sh` installs redis-tools and a pinned redis-py in a virtual
//! environment (`target/pyenv`); run alone, a test whose client is missing
//! says so and fails under `CI`, else skips.

use std::process::{Command, Output};
use testkit::Server;

const PERCORE: &str = env!("CARGO_BIN_EXE_percore");

fn node(extra: &[&str]) -> Server {
    let mut args = vec!["server", "--cores", "0,1", "--port", "0", "--stats-interval-ms", "0"];
    args.extend_from_slice(extra);
    Server::start_with(PERCORE, &args)
}

fn host_port(addr: &str) -> (&str, &str) {
    addr.rsplit_once(':').expect("host:port")
}

/// Whether `program` can run; if not, fail under CI and skip otherwise.
fn have(program: &str, probe: &[&str]) -> bool {
    let ok = Command::new(program).args(probe).output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "{program} is missing (tools/test.sh installs it)");
        eprintln!("skipped: {program} is not installed (tools/test.sh installs it)");
    }
    ok
}

fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    if !out.status.success() {
        panic!(
            "{program} {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

#[test]
fn redis_cli_plain_and_cluster_mode() {
    if !have("redis-cli", &["--version"]) {
        return;
    }
    let server = node(&[]);
    let (h0, p0) = host_port(&server.addrs()[0]);
    let (_, p1) = host_port(&server.addrs()[1]);
    // "foo" is in slot 12182: core 1's.
    let plain = run("redis-cli", &["-h", h0, "-p", p0, "SET", "foo", "bar"]);
    assert_eq!(stdout(&plain), format!("MOVED 12182 {h0}:{p1}"), "plain mode shows the redirect");
    let set = run("redis-cli", &["-c", "-h", h0, "-p", p0, "SET", "foo", "bar"]);
    assert_eq!(stdout(&set), "OK", "-c follows MOVED");
    let get = run("redis-cli", &["-c", "-h", h0, "-p", p0, "GET", "foo"]);
    assert_eq!(stdout(&get), "bar");
    let direct = run("redis-cli", &["-h", h0, "-p", p1, "GET", "foo"]);
    assert_eq!(stdout(&direct), "bar");
    let ping = run("redis-cli", &["-h", h0, "-p", p0, "PING"]);
    assert_eq!(stdout(&ping), "PONG");
    let check = run("redis-cli", &["--cluster", "check", &format!("{h0}:{p0}")]);
    let text = stdout(&check);
    assert!(text.contains("[OK] All nodes agree about slots configuration."), "{text}");
    assert!(text.contains("[OK] All 16384 slots covered."), "{text}");
}

#[test]
fn redis_cli_with_a_password() {
    if !have("redis-cli", &["--version"]) {
        return;
    }
    let server = node(&["--requirepass", "s3cret"]);
    let (h, p) = host_port(&server.addrs()[0]);
    let refused = run("redis-cli", &["-h", h, "-p", p, "PING"]);
    assert!(stdout(&refused).contains("NOAUTH"), "{}", stdout(&refused));
    let ok = run("redis-cli", &["-h", h, "-p", p, "--no-auth-warning", "-a", "s3cret", "PING"]);
    assert_eq!(stdout(&ok), "PONG");
}

#[test]
fn redis_benchmark_cluster_mode_completes_without_errors() {
    if !have("redis-benchmark", &["--version"]) {
        return;
    }
    let server = node(&[]);
    let (h, p) = host_port(&server.addrs()[0]);
    let out = run(
        "redis-benchmark",
        &["--cluster", "-h", h, "-p", p, "-t", "set,get,incr,mset", "-P", "16", "-r", "100000", "-n", "200000", "-q"],
    );
    let text = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    for test in ["SET: ", "GET: ", "INCR: ", "MSET (10 keys): "] {
        let done =
            text.split(['\r', '\n']).flat_map(|l| l.split(test).skip(1)).any(|r| r.contains("requests per second"));
        assert!(done, "no {test} result in:\n{text}");
    }
    assert!(!text.to_lowercase().contains("error"), "{text}");
}

#[test]
fn redis_py_cluster_client_runs_every_command() {
    let python = std::env::var("PERCORE_PYTHON").unwrap_or_else(|_| {
        let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/pyenv/bin/python");
        if std::path::Path::new(venv).exists() { venv.to_string() } else { "python3".to_string() }
    });
    if !have(&python, &["-c", "import redis"]) {
        return;
    }
    let server = node(&[]);
    let (h, p) = host_port(&server.addrs()[0]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/redis_py_cluster.py");
    let out = run(&python, &[script, h, p]);
    assert!(stdout(&out).ends_with("redis-py: all checks passed"), "{}", stdout(&out));
}

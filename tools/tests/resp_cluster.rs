//! The load generator's RESP target as a Redis Cluster client, against
//! real servers.
//!
//! A real Redis Cluster: two `redis-server` processes with cluster
//! support, slots 0-8191 on one and 8192-16383 on the other. The target
//! names one node; the generator asks it `CLUSTER SLOTS`, drives both
//! masters, each key to the node serving its slot, verifies every read and
//! records a history the checker accepts. A slot map with a hole is refused
//! before any load, and keys sent to the wrong node (a client that ignores
//! the cluster) come back as `MOVED` refusals, never as successes. Skipped,
//! with a printed reason, only where `redis-server` is not installed (CI
//! installs it).
//!
//! percore's own RESP door: `percore bench --protocol resp` runs the YCSB
//! load through it, every core a cluster master, reads verified and the
//! history checked.

use loadgen::proto::cluster::{Value, parse};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use testkit::TempDir;

const PERCORE: &str = env!("CARGO_BIN_EXE_percore");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// One `redis-server --cluster-enabled yes` process, stopped (by its PID)
/// when dropped.
struct Node {
    child: Child,
    port: u16,
    bus: u16,
}

impl Node {
    fn start(dir: &TempDir) -> Node {
        let (port, bus) = (free_port(), free_port());
        let conf = dir.join(&format!("nodes-{port}.conf"));
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--cluster-port", &bus.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes", "--cluster-config-file"])
            .arg(&conf)
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let node = Node { child, port, bus };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server on port {port} did not listen within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        node
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Sends one command, returns its reply.
    fn command(&self, args: &[&str]) -> Value {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).expect("send");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some((v, _)) = parse(&buf).expect("a valid RESP reply") {
                return v;
            }
            let n = s.read(&mut chunk).expect("read reply");
            assert!(n > 0, "redis closed the connection during {args:?}");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn ok(&self, args: &[&str]) {
        let v = self.command(args);
        assert_eq!(v, Value::Simple(b"OK".to_vec()), "{args:?} on {}", self.addr());
    }

    fn dbsize(&self) -> i64 {
        match self.command(&["DBSIZE"]) {
            Value::Int(n) => n,
            other => panic!("DBSIZE answered {other:?}"),
        }
    }

    fn cluster_ok(&self) -> bool {
        match self.command(&["CLUSTER", "INFO"]) {
            Value::Bulk(text) => String::from_utf8_lossy(&text).lines().any(|l| l.trim() == "cluster_state:ok"),
            _ => false,
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's PID.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_installed() -> bool {
    match Command::new("redis-server").arg("--version").output() {
        Ok(out) => out.status.success(),
        Err(_) => false,
    }
}

fn percore(args: &[&str]) -> Output {
    Command::new(PERCORE).args(args).stdin(Stdio::null()).output().expect("run percore")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("valid JSON report")
}

/// A load thread's CPU: the last one available.
fn load_core() -> String {
    wire::cluster::available_cpus().last().copied().unwrap_or(0).to_string()
}

#[test]
fn a_redis_cluster_is_driven_node_by_node_with_verified_reads() {
    if !redis_installed() {
        println!("SKIPPED: redis-server is not installed (apt-get install redis-server); CI installs it");
        return;
    }
    let dir = TempDir::new("redis-cluster");
    let a = Node::start(&dir);
    let b = Node::start(&dir);
    a.ok(&["CLUSTER", "ADDSLOTSRANGE", "0", "8191"]);
    b.ok(&["CLUSTER", "ADDSLOTSRANGE", "8192", "16383"]);
    let core = load_core();
    let target = format!("redis://{}", a.addr());

    // Before the nodes meet, node a knows only its own half: a hole.
    let out = percore(&["loadgen", "load", "--target", &target, "--records", "100", "--cores", &core, "-q"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "a slot map with a hole cannot start a run: {err}");
    assert!(err.contains("CLUSTER SLOTS from 127.0.0.1") && err.contains("slot 8192 is served by no node"), "{err}");

    a.ok(&["CLUSTER", "MEET", "127.0.0.1", &b.port.to_string(), &b.bus.to_string()]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(a.cluster_ok() && b.cluster_ok()) {
        assert!(Instant::now() < deadline, "the two nodes did not reach cluster_state:ok within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Both must also list each other's slots (CLUSTER SLOTS, as the
    // generator will read it) before the run starts.
    let deadline = Instant::now() + Duration::from_secs(60);
    for n in [&a, &b] {
        while !matches!(n.command(&["CLUSTER", "SLOTS"]), Value::Array(ref e) if e.len() == 2) {
            assert!(Instant::now() < deadline, "{} does not list both halves within 60 s", n.addr());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    let records = 2000;
    let history = dir.join("cluster.hist");
    let report = dir.join("cluster.json");
    let out = percore(&[
        "loadgen",
        "run",
        "--load",
        "--target",
        &target,
        "--records",
        &records.to_string(),
        "--workload",
        "a",
        "--ops",
        "20000",
        "--batch",
        "64",
        "--cores",
        &core,
        "-q",
        "--history",
        history.to_str().expect("utf8"),
        "--json",
        report.to_str().expect("utf8"),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let r = json(&report);
    assert_eq!(r["ops"], 20000, "{stdout}");
    assert_eq!((r["bad_reads"].as_u64(), r["errors"].as_u64()), (Some(0), Some(0)), "{}", r["error_detail"]);
    assert_eq!(r["misses"], 0, "every record was loaded through the cluster");
    assert!(r["hits"].as_u64() > Some(0) && r["puts"].as_u64() > Some(0), "{r}");
    assert_eq!((r["config"]["target"].as_str(), r["config"]["protocol"].as_str()), (Some("redis"), Some("resp")));
    assert_eq!(r["config"]["shards"], 2);
    assert!(stdout.contains("cluster of 2 masters") && stdout.contains("protocol resp"), "{stdout}");
    // Both masters served operations, each under its own address.
    let servers = r["per_server"].as_array().expect("per_server");
    let mut nodes: Vec<&str> = servers.iter().map(|s| s["node"].as_str().expect("node")).collect();
    nodes.sort_unstable();
    let mut want = [a.addr(), b.addr()];
    want.sort_unstable();
    assert_eq!(nodes, want, "{r}");
    assert!(servers.iter().all(|s| s["ops_s"].as_f64() > Some(0.0)), "{r}");
    // The keys landed on both nodes, each exactly once.
    let (da, db) = (a.dbsize(), b.dbsize());
    assert!(da > 0 && db > 0, "DBSIZE {da} and {db}");
    assert_eq!(da + db, records, "every record on exactly one node");

    // The history recorded through the cluster is linearizable.
    let out = percore(&["check", history.to_str().expect("utf8")]);
    let verdict = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{verdict}{}", text(&out.stderr));
    assert!(verdict.starts_with("linearizable: "), "{verdict}");

    // A client that ignores the cluster and sends every key to node a gets
    // MOVED for node b's keys: refused operations, and a failed run.
    let topo = loadgen::run::Topology::single(loadgen::run::Peer::Redis, &a.addr()).expect("one node");
    let cfg = loadgen::run::RunConfig {
        phase: loadgen::run::PhaseSpec::Run {
            workload: loadgen::workload::Workload::C,
            dist: loadgen::zipf::DistName::Uniform,
            theta: 0.99,
            rate: None,
            ops: Some(2000),
        },
        records: records as u64,
        value_size: 128,
        batch: 64,
        pipeline: 4,
        flush: Duration::from_micros(100),
        cores: vec![None],
        writer_base: 0,
        seed: 7,
        duration: None,
        warmup: Duration::ZERO,
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(5),
        history: None,
        self_stall: None,
        node: "test".into(),
        live: false,
    };
    let moved = loadgen::run::execute(&topo, &cfg, Arc::new(AtomicBool::new(false))).expect("a run");
    let e = &moved.error_detail;
    assert!(e.wrong_shard > 0, "MOVED replies counted as wrong shard: {e:?}");
    assert_eq!((e.other, e.too_large, e.out_of_memory, moved.bad_reads), (0, 0, 0, 0), "{e:?}");
    assert_eq!(moved.hits + e.wrong_shard, moved.ops, "every GET either found its key on a or was MOVED");
    assert!(!loadgen::cli::emit(&moved, &loadgen::cli::OutputArgs::default()), "MOVED fails the run");
}

#[test]
fn bench_through_percores_resp_door_verifies_every_read() {
    let cpus = wire::cluster::available_cpus();
    // Two shards where the machine has two CPUs, so keys are routed.
    let server_cores: Vec<String> = cpus.iter().take(2).map(u32::to_string).collect();
    let client = load_core();
    let dir = TempDir::new("bench-resp");
    let report = dir.join("bench-resp.json");
    let out = percore(&[
        "bench",
        "--protocol",
        "resp",
        "--server-cores",
        &server_cores.join(","),
        "--client-cores",
        &client,
        "--records",
        "20000",
        "--workload",
        "a",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--check",
        "--json",
        report.to_str().expect("utf8"),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("through RESP"), "{}", text(&out.stderr));
    let r = json(&report);
    assert_eq!((r["config"]["target"].as_str(), r["config"]["protocol"].as_str()), (Some("percore"), Some("resp")));
    assert!(stdout.contains("protocol resp"), "{stdout}");
    assert_eq!(r["config"]["shards"].as_u64(), Some(server_cores.len() as u64), "one master per core");
    assert_eq!((r["bad_reads"].as_u64(), r["errors"].as_u64()), (Some(0), Some(0)), "{}", r["error_detail"]);
    assert_eq!(r["misses"], 0, "every record was loaded through RESP");
    assert!(r["hits"].as_u64() > Some(0) && r["puts"].as_u64() > Some(0), "{r}");
    let servers = r["per_server"].as_array().expect("per_server");
    assert_eq!(servers.len(), server_cores.len(), "{r}");
    assert!(servers.iter().all(|s| s["ops_s"].as_f64() > Some(0.0)), "every core served keys: {r}");
    assert_eq!(r["check"]["verdict"], "linearizable", "{}", r["check"]);
}

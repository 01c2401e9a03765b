//! The `percore` command against real server processes on loopback.

use std::process::{Command, Stdio};
use std::time::Duration;
use testkit::{Server, TempDir};
use wire::client::{Connection, Expect};
use wire::cluster::PASSWORD_ENV;
use wire::msg::{Op, OpError, OpResult};

const PERCORE: &str = env!("CARGO_BIN_EXE_percore");
const T: Duration = Duration::from_secs(10);

fn server(args: &[&str]) -> Server {
    let mut all = vec!["server"];
    all.extend_from_slice(args);
    Server::start_with(PERCORE, &all)
}

/// Runs `percore args…` without `PERCORE_PASSWORD`: (exit code, stdout, stderr).
fn percore(args: &[&str]) -> (i32, String, String) {
    run(Command::new(PERCORE).args(args).env_remove(PASSWORD_ENV))
}

/// Runs `percore args…` with `PERCORE_PASSWORD=password`.
fn percore_with_env(password: &str, args: &[&str]) -> (i32, String, String) {
    run(Command::new(PERCORE).args(args).env(PASSWORD_ENV, password))
}

fn run(command: &mut Command) -> (i32, String, String) {
    let out = command.stdin(Stdio::null()).output().expect("run percore");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

#[test]
fn get_put_del_and_exit_codes() {
    let s = server(&["--cores", "0", "--port", "0", "--stats-interval-ms", "0"]);
    let addr = s.addr();
    assert_eq!(percore(&["get", "greeting", "--server", addr]).0, 1, "missing key exits 1");
    let (code, out, _) = percore(&["put", "greeting", "hello world", "--server", addr]);
    assert_eq!((code, out.as_str()), (0, "OK\n"));
    let (code, out, _) = percore(&["get", "greeting", "--server", addr]);
    assert_eq!((code, out.as_str()), (0, "hello world\n"));
    assert_eq!(percore(&["del", "greeting", "--server", addr]).0, 0);
    assert_eq!(percore(&["get", "greeting", "--server", addr]).0, 1);

    let (code, out, _) = percore(&["stats", "--server", addr]);
    assert_eq!(code, 0);
    assert!(out.contains("shard") && out.lines().any(|l| l.starts_with("total")), "{out}");
    let (code, out, _) = percore(&["stats", "--json", "--server", addr]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("stats --json is JSON");
    assert_eq!(v[0]["counters"]["puts"], 1);
    assert_eq!(v[0]["counters"]["deletes"], 1);

    // A dead address is an error (exit 2) with one line naming it.
    let dead = format!("127.0.0.1:{}", free_port());
    let (code, _, err) = percore(&["get", "x", "--server", &dead, "--timeout-ms", "500"]);
    assert_eq!(code, 2);
    assert!(err.contains(&dead) && err.lines().count() == 1, "{err}");
}

/// A write the node cannot make durable (its log disk full or failing, as a
/// fake node answers every write here) exits 2 with one line naming the
/// node and saying so; a GET is still answered.
#[test]
fn a_write_refused_as_not_durable_says_why_and_exits_2() {
    let node = testkit::FakeNode::start(OpError::NotDurable);
    let addr = node.addr();
    for args in [&["put", "greeting", "hello"][..], &["del", "greeting"]] {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--server", addr]);
        let (code, out, err) = percore(&all);
        assert_eq!((code, out.as_str()), (2, ""), "{args:?}: {err}");
        assert!(
            err.contains(addr)
                && err.contains("not durable: the node's log disk is full or failing; nothing was written")
                && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }
    assert_eq!(node.refused(), 2, "the PUT and the DELETE reached the node");
    assert_eq!(percore(&["get", "greeting", "--server", addr]).0, 1, "GETs go on (this node finds nothing)");
}

#[test]
fn the_cli_passes_a_protected_nodes_secret_from_the_environment_the_flag_or_the_cluster_file() {
    let s = server(&["--cores", "0", "--port", "0", "--stats-interval-ms", "0", "--requirepass", "s3cret"]);
    let addr = s.addr();

    // Without the secret: exit 2, one line that says how to pass it.
    let (code, _, err) = percore(&["get", "k", "--server", addr]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(addr)
            && err.contains("AuthFailed")
            && err.contains("PERCORE_PASSWORD")
            && err.lines().count() == 1,
        "{err}"
    );
    let (code, _, err) = percore_with_env("wrong", &["put", "k", "v", "--server", addr]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("AuthFailed") && err.contains("wrong password"), "{err}");

    // PERCORE_PASSWORD.
    let (code, out, err) = percore_with_env("s3cret", &["put", "k", "v", "--server", addr]);
    assert_eq!((code, out.as_str()), (0, "OK\n"), "{err}");
    let (code, out, err) = percore_with_env("s3cret", &["get", "k", "--server", addr]);
    assert_eq!((code, out.as_str()), (0, "v\n"), "{err}");
    // --password, over the environment.
    let (code, out, err) = percore_with_env("wrong", &["get", "k", "--server", addr, "--password", "s3cret"]);
    assert_eq!((code, out.as_str()), (0, "v\n"), "{err}");
    let (code, _, err) = percore(&["stats", "--server", addr, "--password", "s3cret"]);
    assert_eq!(code, 0, "{err}");

    // The cluster file's requirepass: the server and the CLI read the same
    // file (what the cluster scripts do).
    let port = free_port();
    let dir = TempDir::new("cli-auth");
    let file = dir.join("protected.toml");
    std::fs::write(
        &file,
        format!("requirepass = \"from-file\"\n\n[[server]]\nname = \"a\"\naddr = \"127.0.0.1\"\nport = {port}\ncores = [0]\n"),
    )
    .expect("write cluster file");
    let config = file.to_str().expect("utf8");
    let _protected = server(&["--config", config, "--node", "a", "--stats-interval-ms", "0"]);
    assert_eq!(percore(&["ping", "--config", config, "--wait", "10"]).0, 0);
    let (code, out, err) = percore(&["put", "f", "1", "--config", config]);
    assert_eq!((code, out.as_str()), (0, "OK\n"), "{err}");
    let (code, out, err) = percore(&["stats", "--json", "--config", config]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"puts\": 1"), "{out}");
    // The load generator and the attack read it the same way.
    let (code, _, err) = percore(&["loadgen", "load", "--config", config, "--records", "500", "-q"]);
    assert_eq!(code, 0, "loadgen with the file's secret: {err}");
    let (code, _, err) = percore_with_env(
        "from-file",
        &["loadgen", "load", "--server", &format!("127.0.0.1:{port}"), "--records", "500", "-q"],
    );
    assert_eq!(code, 0, "loadgen with PERCORE_PASSWORD: {err}");
    let (code, _, err) = percore(&[
        "loadgen",
        "load",
        "--server",
        &format!("127.0.0.1:{port}"),
        "--password",
        "from-file",
        "--records",
        "500",
        "-q",
    ]);
    assert_eq!(code, 0, "loadgen with --password: {err}");
    let (code, _, err) =
        percore(&["loadgen", "load", "--server", &format!("127.0.0.1:{port}"), "--records", "500", "-q"]);
    assert_eq!(code, 2, "loadgen without the secret fails: {err}");
    assert!(err.contains("AuthFailed"), "{err}");
    let (code, out, err) =
        percore(&["attack", "--config", config, "--duration", "1s", "--records", "500", "--hot-deletes", "5"]);
    assert_eq!(code, 0, "attack with the file's secret (jumbo frames and deletes are served):\n{out}\n{err}");
    // The environment comes before the file, as for the server.
    let (code, _, err) = percore_with_env("wrong", &["get", "f", "--config", config]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("wrong password"), "{err}");
    let (code, _, err) = percore(&["get", "f", "--server", &format!("127.0.0.1:{port}")]);
    assert_eq!(code, 2, "discovery without the file has no secret: {err}");
}

#[test]
fn two_node_cluster_routes_every_key_to_its_owner() {
    let (pa, pb) = (free_port(), free_port());
    let dir = TempDir::new("cli");
    let file = dir.join("two.toml");
    std::fs::write(
        &file,
        format!(
            "[[server]]\nname = \"a\"\naddr = \"127.0.0.1\"\nport = {pa}\ncores = [0]\n\n\
             [[server]]\nname = \"b\"\naddr = \"127.0.0.1\"\nport = {pb}\ncores = [1]\n"
        ),
    )
    .expect("write cluster file");
    let config = file.to_str().expect("utf8");
    let sa = server(&["--config", config, "--node", "a", "--stats-interval-ms", "0"]);
    let sb = server(&["--config", config, "--node", "b", "--stats-interval-ms", "0"]);
    assert_eq!(percore(&["ping", "--config", config, "--wait", "10"]).0, 0);

    let keys: Vec<String> = (0..60).map(|i| format!("user{i}")).collect();
    for k in &keys {
        let (code, _, err) = percore(&["put", k, &format!("v-{k}"), "--config", config]);
        assert_eq!(code, 0, "{err}");
    }
    // Each key sits on its owner and only there.
    let cluster = wire::Cluster::load(&file).expect("cluster");
    let mut a =
        Connection::connect(sa.addr(), Expect { shard: Some(0), total_shards: Some(2), password: None }, T).expect("a");
    let mut b =
        Connection::connect(sb.addr(), Expect { shard: Some(1), total_shards: Some(2), password: None }, T).expect("b");
    let (mut on_a, mut on_b) = (0, 0);
    for k in &keys {
        let get = [Op::Get { key: k.clone().into_bytes() }];
        let (ra, rb) = (a.execute(&get).expect("get a"), b.execute(&get).expect("get b"));
        let value = OpResult::Value(format!("v-{k}").into_bytes());
        let wrong = OpResult::Error(OpError::WrongShard);
        if cluster.map.shard_of(k.as_bytes()) == 0 {
            assert_eq!((&ra[0], &rb[0]), (&value, &wrong), "{k}");
            on_a += 1;
        } else {
            assert_eq!((&ra[0], &rb[0]), (&wrong, &value), "{k}");
            on_b += 1;
        }
    }
    assert!(on_a > 10 && on_b > 10, "keys spread over both nodes: {on_a}/{on_b}");

    // Discovery from either node reaches every key.
    for k in keys.iter().take(10) {
        let (code, out, _) = percore(&["get", k, "--server", sb.addr()]);
        assert_eq!((code, out.trim()), (0, format!("v-{k}").as_str()));
    }

    // A key sent to the wrong port is refused and not stored.
    let stray = keys.iter().find(|k| cluster.map.shard_of(k.as_bytes()) == 1).expect("a key of b");
    let put = [Op::Put { key: format!("{stray}-new").into_bytes(), value: b"x".to_vec() }];
    let owner = cluster.map.shard_of(put[0].key());
    let (wrong_conn, right_conn) = if owner == 1 { (&mut a, &mut b) } else { (&mut b, &mut a) };
    assert_eq!(wrong_conn.execute(&put).expect("put"), vec![OpResult::Error(OpError::WrongShard)]);
    let get = [Op::Get { key: put[0].key().to_vec() }];
    assert_eq!(right_conn.execute(&get).expect("get"), vec![OpResult::NotFound]);
}

#[test]
fn save_snapshots_every_shard_of_a_durable_node_and_says_so_otherwise() {
    let dir = TempDir::new("cli-save");
    let data = dir.join("data");
    let s =
        server(&["--cores", "0,1", "--port", "0", "--data-dir", data.to_str().expect("utf8"), "--snapshot-after", "0"]);
    let (code, _, err) = percore(&["put", "--server", s.addr(), "k", "v"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = percore(&["save", "--server", s.addr()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().filter(|l| l.contains(": saved in ")).count(), 2, "{out}");
    for shard in ["shard-0", "shard-1"] {
        assert!(data.join(shard).join("snapshot").exists(), "{shard} has a snapshot");
    }
    // A node in memory only refuses, and the command says which shard.
    let mem = server(&["--cores", "0", "--port", "0"]);
    let (code, _, err) = percore(&["save", "--server", mem.addr()]);
    assert_eq!(code, 2);
    assert!(err.contains("shard 0") && err.contains("--data-dir"), "{err}");
}

//! A replicated cluster of real server processes on loopback: three nodes,
//! one core each, `replicas = 3`, every node with its own data directory
//! and `fsync always`. Clients speak RESP and follow `-MOVED` as Redis
//! Cluster clients do. The leader is killed with SIGKILL under writes; the
//! others elect a new one and every acknowledged write is still there; the
//! killed node restarts over its log, catches up, and then carries the
//! group when another node dies.

use std::path::Path;
use std::time::{Duration, Instant};
use testkit::resp::{Resp, Value};
use testkit::{Server, TempDir};

fn start(file: &Path, node: usize, data: &Path) -> Server {
    testkit::start_replicated(env!("CARGO_BIN_EXE_percore-server"), &[], file, node, data)
}

/// Runs `args` on the cluster as a Redis Cluster client does: on any live
/// node, following `-MOVED`, waiting out `-CLUSTERDOWN` (an election).
/// Returns the reply and the node that gave it.
fn run(addrs: &[String], args: &[&str]) -> (Value, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut at = 0;
    let mut target: Option<String> = None;
    loop {
        assert!(Instant::now() < deadline, "no node answered {args:?} within 60 s");
        let addr = target.take().unwrap_or_else(|| {
            at += 1;
            addrs[at % addrs.len()].clone()
        });
        let Some(reply) = Resp::try_connect(&addr).and_then(|mut r| r.try_cmd(args)) else {
            // Dead, or it closed the connection (a leadership change under
            // the command: its outcome is unknown, and a SET may be resent).
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        match reply.error() {
            Some(e) if e.starts_with("MOVED ") => target = e.rsplit(' ').next().map(str::to_string),
            Some(e) if e.starts_with("CLUSTERDOWN") => std::thread::sleep(Duration::from_millis(20)),
            _ => return (reply, addr),
        }
    }
}

fn set(addrs: &[String], key: &str, value: &str) -> String {
    let (reply, leader) = run(addrs, &["SET", key, value]);
    assert_eq!(reply, Value::Simple("OK".into()), "SET {key}");
    leader
}

fn get(addrs: &[String], key: &str) -> Option<String> {
    run(addrs, &["GET", key]).0.bytes().map(|b| String::from_utf8_lossy(b).into_owned())
}

#[test]
fn a_replicated_cluster_survives_its_leaders_kill_and_a_restarted_node_catches_up() {
    let dir = TempDir::new("replicated");
    let (file, addrs) = testkit::replicated_cluster_file(dir.path());
    let mut nodes: Vec<Option<Server>> = (0..3).map(|i| Some(start(&file, i, dir.path()))).collect();

    for i in 0..100 {
        set(&addrs, &format!("k{i}"), &format!("v{i}"));
    }
    // The first leader is the one the cluster file names (n0 for shard 0):
    // whoever wins the first election hands it over once n0 has caught up.
    let deadline = Instant::now() + Duration::from_secs(30);
    let leader = loop {
        let leader = set(&addrs, "probe", "1");
        if leader == addrs[0] || Instant::now() > deadline {
            break leader;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(leader, addrs[0], "the preferred member leads");
    let l = addrs.iter().position(|a| *a == leader).expect("a node of the cluster");
    // A follower sends clients to the leader.
    let follower = &addrs[(l + 1) % 3];
    let moved = Resp::connect(follower).cmd(&["GET", "k1"]);
    assert_eq!(moved.error(), Some(format!("MOVED {} {leader}", wire::slot::slot_of(b"k1")).as_str()));

    // redis-cli in cluster mode, pointed at a follower, follows it to the
    // leader.
    let cli = |args: &[&str]| {
        let (host, port) = follower.rsplit_once(':').unwrap();
        let out = std::process::Command::new("redis-cli")
            .args(["-c", "-h", host, "-p", port])
            .args(args)
            .output()
            .expect("redis-cli (tools/test.sh installs it)");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(cli(&["SET", "from-cli", "yes"]), "OK");
    assert_eq!(cli(&["GET", "from-cli"]), "yes");

    // INFO replication tells a follower from the leader.
    let info = Resp::connect(follower).cmd(&["INFO", "replication"]).text();
    assert!(info.contains("role:slave") && info.contains(&format!("percore_leader:{leader}")), "{info}");
    assert!(Resp::connect(&leader).cmd(&["INFO", "replication"]).text().contains("role:master"));

    // CLUSTER SLOTS and NODES, asked anywhere, list the leader as master
    // and the two others as its replicas.
    let Value::Array(ranges) = Resp::connect(follower).cmd(&["CLUSTER", "SLOTS"]) else { panic!("CLUSTER SLOTS") };
    let Value::Array(range) = &ranges[0] else { panic!("a slot range") };
    assert_eq!((ranges.len(), range.len()), (1, 5), "one range: its bounds, a master and two replicas");
    let port = |v: &Value| match v {
        Value::Array(n) => n[1].clone(),
        other => panic!("not a node: {other:?}"),
    };
    let leader_port: i64 = leader.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(port(&range[2]), Value::Int(leader_port));
    let nodes_text = Resp::connect(follower).cmd(&["CLUSTER", "NODES"]).text();
    let roles: Vec<&str> = nodes_text.lines().map(|l| l.split(' ').nth(2).unwrap()).collect();
    assert_eq!(roles.iter().filter(|r| r.ends_with("master")).count(), 1, "{nodes_text}");
    assert_eq!(roles.iter().filter(|r| r.ends_with("slave")).count(), 2, "{nodes_text}");
    assert_eq!(roles.iter().filter(|r| r.starts_with("myself")).count(), 1, "{nodes_text}");

    // The leader dies; the others elect one of themselves.
    let mut killed = nodes[l].take().expect("running");
    let t = Instant::now();
    killed.signal(libc::SIGKILL);
    killed.wait_exit(Duration::from_secs(10)).expect("killed");
    let new_leader = set(&addrs, "after", "1");
    eprintln!("writes acknowledged again {:?} after the leader's SIGKILL", t.elapsed());
    assert_ne!(new_leader, leader);
    for i in 0..100 {
        assert_eq!(get(&addrs, &format!("k{i}")), Some(format!("v{i}")), "an acknowledged write is kept");
    }

    // The killed node restarts over its log and catches up on what it missed.
    nodes[l] = Some(start(&file, l, dir.path()));
    for i in 100..150 {
        set(&addrs, &format!("k{i}"), &format!("v{i}"));
    }
    // Another node dies: the restarted one and the last form the majority,
    // so it must hold every committed entry.
    let now = addrs.iter().position(|a| *a == set(&addrs, "probe", "2")).expect("a node");
    let other = if now == l { (l + 1) % 3 } else { now };
    let mut second = nodes[other].take().expect("running");
    second.signal(libc::SIGKILL);
    second.wait_exit(Duration::from_secs(10)).expect("killed");
    for i in 0..150 {
        assert_eq!(get(&addrs, &format!("k{i}")), Some(format!("v{i}")), "k{i} after the second kill");
    }
    assert_eq!(get(&addrs, "after").as_deref(), Some("1"));
}

#[test]
fn a_replicated_node_refuses_to_start_without_a_data_dir_or_with_a_bad_tick() {
    let dir = TempDir::new("replicated-refused");
    let (file, _) = testkit::replicated_cluster_file(dir.path());
    let refused = |extra: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_percore-server"));
        cmd.args(["--config", file.to_str().expect("utf8"), "--node", "n0", "--stats-interval-ms", "0"]).args(extra);
        testkit::refusal(&mut cmd, Duration::from_secs(30))
    };
    let (code, err) = refused(&[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("shard 0 is replicated: it needs a data directory"), "{err}");
    let data = dir.path().join("d");
    let (code, err) = refused(&["--data-dir", data.to_str().expect("utf8"), "--raft-tick", "0ms"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--raft-tick 0s must be between 1ms and 10s"), "{err}");
}

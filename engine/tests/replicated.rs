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
    assert!(info.contains("percore_read_mode:index"), "reads are confirmed by ReadIndex unless told: {info}");
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

/// A field of a node's `INFO replication`.
fn info(addr: &str, field: &str) -> Option<u64> {
    let text = Resp::try_connect(addr)?.try_cmd(&["INFO", "replication"])?.text();
    text.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.trim().parse().ok())
}

fn digest(addr: &str) -> Option<String> {
    Resp::try_connect(addr)?.try_cmd(&["DEBUG", "DIGEST"]).map(|v| v.text())
}

/// The log segments in use after a node's last snapshot, from its stderr.
fn segments_in_use(server: &Server) -> Option<usize> {
    let err = server.stderr();
    let line = err.lines().rev().find(|l| l.contains("snapshot at Raft entry"))?;
    line.split("log segments: ").nth(1)?.split(' ').next()?.parse().ok()
}

/// Waits until every node in `addrs` has applied what the leader
/// committed and their stores' digests are equal; returns the digest.
fn agree(addrs: &[&String], leader: &str) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let commit = info(leader, "percore_raft_commit_index");
        let applied: Vec<Option<u64>> = addrs.iter().map(|a| info(a, "percore_raft_applied_index")).collect();
        let digests: Vec<Option<String>> = addrs.iter().map(|a| digest(a)).collect();
        if commit.is_some()
            && applied.iter().all(|a| *a == commit)
            && digests.iter().all(|d| d.is_some() && *d == digests[0])
        {
            return Ok(digests[0].clone().expect("a digest"));
        }
        if Instant::now() > deadline {
            return Err(format!("replicas never agreed: commit {commit:?}, applied {applied:?}, digests {digests:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Snapshots bound the Raft log, and a follower that was down while the
/// others wrote far past their snapshots catches up from the leader's: it
/// installs it (its own log could not serve), and every store ends with
/// the same digest. Restarted over its own snapshot and log, it agrees
/// again; the leader restarted the same way keeps every write.
#[test]
fn a_follower_far_behind_catches_up_from_a_snapshot_and_the_stores_agree() {
    let dir = TempDir::new("replicated-snapshot");
    let (file, addrs) = testkit::replicated_cluster_file(dir.path());
    // Small frames allow small segments: the log's truncation shows.
    let mut text = std::fs::read_to_string(&file).expect("cluster file");
    text += "[limits]\nmax_frame_bytes = 65536\nmax_value_len = 16384\n";
    std::fs::write(&file, text).expect("cluster file");
    let opts = ["--snapshot-after", "64kb", "--log-segment-size", "160kb"];
    let start = |n: usize| testkit::start_replicated(env!("CARGO_BIN_EXE_percore-server"), &opts, &file, n, dir.path());
    let mut nodes: Vec<Option<Server>> = (0..3).map(|i| Some(start(i))).collect();
    let leader = set(&addrs, "first", "1");
    let l = addrs.iter().position(|a| *a == leader).expect("a node");
    let f = (l + 1) % 3;
    let mut down = nodes[f].take().expect("running");
    down.signal(libc::SIGKILL);
    down.wait_exit(Duration::from_secs(10)).expect("killed");

    // About 1.5 MB of writes: some two dozen snapshots' worth.
    let value = "v".repeat(500);
    let mut at = Resp::connect(&leader);
    for i in 0..3000 {
        let (k, v) = (format!("k{i}"), format!("{i}{value}"));
        if at.try_cmd(&["SET", &k, &v]) != Some(Value::Simple("OK".into())) {
            at = Resp::connect(&set(&addrs, &k, &v));
        }
    }
    let leader = set(&addrs, "last", "1");
    let live: Vec<&String> = addrs.iter().enumerate().filter(|(i, _)| *i != f).map(|(_, a)| a).collect();
    agree(&live, &leader).unwrap();
    for (i, a) in addrs.iter().enumerate().filter(|(i, _)| *i != f) {
        let first = info(a, "percore_raft_log_first_index").expect("INFO");
        assert!(first > 1000, "node {a}'s log was compacted behind its snapshots (first index {first})");
        let err = nodes[i].as_ref().expect("running").stderr();
        assert!(!err.contains("snapshot failed"), "no snapshot fails on a node under plain writes: {err}");
        let used = segments_in_use(nodes[i].as_ref().expect("running"));
        assert!(
            used.is_some_and(|n| n <= 2),
            "node {a}'s log was truncated behind its snapshots: {used:?} segments of 160 KB in use"
        );
    }

    // The follower comes back: the entries it lacks are gone from every
    // log, so only the leader's snapshot can bring it up to date.
    nodes[f] = Some(start(f));
    let all: Vec<&String> = addrs.iter().collect();
    let stderr = |n: usize| nodes[n].as_ref().map(|s| s.stderr()).unwrap_or_default();
    let before = agree(&all, &leader).unwrap_or_else(|e| panic!("{e}; the restarted node said:\n{}", stderr(f)));
    assert!(info(&addrs[f], "percore_snapshots_installed").expect("INFO") >= 1, "it installed a snapshot");
    assert!(Path::new(&dir.path().join(format!("n{f}/shard-0/snapshot"))).exists(), "and kept it");

    // Restarted over its own snapshot and log, it agrees again.
    let mut again = nodes[f].take().expect("running");
    again.signal(libc::SIGKILL);
    again.wait_exit(Duration::from_secs(10)).expect("killed");
    nodes[f] = Some(start(f));
    let stderr = |n: usize| nodes[n].as_ref().map(|s| s.stderr()).unwrap_or_default();
    assert_eq!(agree(&all, &leader).unwrap_or_else(|e| panic!("{e}; the restarted node said:\n{}", stderr(f))), before);
    let err = nodes[f].as_ref().expect("running").stderr();
    assert!(!err.contains("a snapshot of 0 records"), "it started from its snapshot: {err}");

    // The leader, killed and restarted over its own snapshot and log,
    // keeps every acknowledged write.
    let l = addrs.iter().position(|a| *a == leader).expect("a node");
    let mut old = nodes[l].take().expect("running");
    old.signal(libc::SIGKILL);
    old.wait_exit(Duration::from_secs(10)).expect("killed");
    nodes[l] = Some(start(l));
    for i in (0..3000).step_by(7) {
        assert_eq!(get(&addrs, &format!("k{i}")), Some(format!("{i}{value}")), "k{i}");
    }
    let leader = set(&addrs, "after", "1");
    let stderr = |n: usize| nodes[n].as_ref().map(|s| s.stderr()).unwrap_or_default();
    agree(&all, &leader).unwrap_or_else(|e| panic!("{e}; the restarted leader said:\n{}", stderr(l)));
}

/// What a replica's peer port holds is bounded whoever connects: at most
/// 16 connections without a hello, each for 5 s, and one per member (a
/// member that dials again replaces its older connection). The group goes
/// on serving throughout.
#[test]
fn a_peer_port_holds_a_bounded_number_of_connections() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let dir = TempDir::new("replicated-peers");
    let (file, addrs) = testkit::replicated_cluster_file(dir.path());
    let text = std::fs::read_to_string(&file).expect("cluster file");
    let peer_port: u16 = text
        .lines()
        .find_map(|l| l.strip_prefix("peer_port = "))
        .and_then(|p| p.trim().parse().ok())
        .expect("n0's peer port");
    let _nodes: Vec<Server> = (0..3).map(|i| start(&file, i, dir.path())).collect();
    set(&addrs, "before", "1");
    let peer = ("127.0.0.1", peer_port);
    // Closed by the server: the read ends (EOF or reset), not the timeout.
    let closed = |s: &mut TcpStream| {
        s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        match s.read(&mut [0u8; 64]) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        }
    };
    let mut silent: Vec<TcpStream> = (0..16).map(|_| TcpStream::connect(peer).expect("connect")).collect();
    // Let the node accept them all before the one too many.
    std::thread::sleep(Duration::from_millis(300));
    let mut extra = TcpStream::connect(peer).expect("connect");
    assert!(closed(&mut extra), "the 17th silent connection is closed");
    // …at once, while the 16 are still held (they wait out their time).
    silent[0].set_nonblocking(true).expect("nonblocking");
    let open = matches!(silent[0].read(&mut [0u8; 8]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    assert!(open, "the 17th was refused before the first 16 timed out");
    silent[0].set_nonblocking(false).expect("blocking");
    for s in &mut silent {
        assert!(closed(s), "a connection without a hello is closed after its time");
    }
    // A hello as member 2 of group 0, twice: the newer replaces the older.
    let hello = |from: u64| {
        let mut h = [0u8; 20];
        h[..4].copy_from_slice(b"PCRP");
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[12..20].copy_from_slice(&from.to_le_bytes());
        [&h[..], &[0u8]].concat()
    };
    let mut first = TcpStream::connect(peer).expect("connect");
    first.write_all(&hello(2)).expect("hello");
    std::thread::sleep(Duration::from_millis(300));
    let mut second = TcpStream::connect(peer).expect("connect");
    second.write_all(&hello(2)).expect("hello");
    assert!(closed(&mut first), "the older connection from member 2 is closed");
    drop(second);
    // The real member 2 redials, and the group serves as before.
    for i in 0..20 {
        set(&addrs, &format!("after{i}"), "1");
    }
    assert_eq!(get(&addrs, "before").as_deref(), Some("1"));
}

/// Percore frames on a replicated cluster: the handshake's map names the
/// shard's replicas and its leader, a follower answers every operation
/// NotLeader with the leader's member id (and does nothing), and the
/// wire client follows the leader — through its kill too.
#[test]
fn percore_clients_are_told_the_leader_and_follow_it() {
    use wire::client::{Client, Connection, Expect};
    use wire::msg::{Op, OpResult};
    let dir = TempDir::new("replicated-percore");
    let (file, addrs) = testkit::replicated_cluster_file(dir.path());
    let mut nodes: Vec<Option<Server>> = (0..3).map(|i| Some(start(&file, i, dir.path()))).collect();
    let leader = set(&addrs, "probe", "1");
    let l = addrs.iter().position(|a| *a == leader).expect("a node");
    let follower = &addrs[(l + 1) % 3];

    let mut conn = Connection::connect(follower, Expect::default(), Duration::from_secs(5)).expect("handshake");
    let shard = &conn.hello().map[0];
    let ports: Vec<String> = shard.replicas.iter().map(|r| format!("{}:{}", r.addr, r.port)).collect();
    assert_eq!(ports, addrs, "the map names every replica, by member id");
    assert_eq!(shard.leader_endpoint().as_deref(), Some(leader.as_str()), "and the leader the follower knows");
    let leader_id = shard.leader;
    let ops = [Op::Put { key: b"from-follower".to_vec(), value: b"x".to_vec() }, Op::Get { key: b"probe".to_vec() }];
    let results = conn.execute(&ops).expect("answered");
    assert_eq!(results, vec![OpResult::NotLeader(leader_id), OpResult::NotLeader(leader_id)]);
    assert_eq!(get(&addrs, "from-follower"), None, "a follower ran nothing");

    // The client, discovering through the follower, goes to the leader.
    let mut client = Client::discover(follower, None, Duration::from_secs(10)).expect("discover");
    client.put(b"k", b"v1").expect("put through the leader");
    assert_eq!(client.get(b"k").expect("get"), Some(b"v1".to_vec()));

    // The leader dies: the client finds the new one by itself.
    let mut killed = nodes[l].take().expect("running");
    killed.signal(libc::SIGKILL);
    killed.wait_exit(Duration::from_secs(10)).expect("killed");
    client.put(b"k", b"v2").expect("put after the failover");
    assert_eq!(client.get(b"k").expect("get"), Some(b"v2".to_vec()));
    assert_eq!(get(&addrs, "k").as_deref(), Some("v2"));
}

/// `--read-lease`: reads are confirmed on the leader's lease (raft-rs's
/// LeaseBased), with no heartbeat round per read. The node says so; and
/// with both followers stopped (SIGSTOP) the leader still answers a read
/// at once, within its lease — which a ReadIndex leader cannot do (no
/// majority answers its round). That is the lease's clock assumption at
/// work: here the followers are stopped, not electing another leader, so
/// the value is current. The cluster goes on once they resume.
#[test]
fn a_cluster_told_to_read_on_a_lease_reads_without_a_majority_within_its_lease() {
    let dir = TempDir::new("replicated-lease");
    let (file, addrs) = testkit::replicated_cluster_file(dir.path());
    // A 300 ms tick: the lease (an election timeout, 10 ticks: 3 s) outlasts
    // the steps below by far.
    let lease = |n: usize| {
        let (name, data) = (format!("n{n}"), dir.path().join(format!("n{n}")));
        let args = ["--config", file.to_str().expect("utf8"), "--node", &name, "--data-dir"];
        let rest = ["--fsync", "always", "--raft-tick", "300ms", "--read-lease", "--stats-interval-ms", "0"];
        let all: Vec<&str> = args.iter().copied().chain([data.to_str().expect("utf8")]).chain(rest).collect();
        Server::start_with(env!("CARGO_BIN_EXE_percore-server"), &all)
    };
    let nodes: Vec<Server> = (0..3).map(lease).collect();
    set(&addrs, "k", "v1");
    // Leadership settles on the member the cluster file names (n0).
    let deadline = Instant::now() + Duration::from_secs(60);
    while set(&addrs, "probe", "1") != addrs[0] {
        assert!(Instant::now() < deadline, "n0 never led");
        std::thread::sleep(Duration::from_millis(50));
    }
    for a in &addrs {
        let text = Resp::connect(a).cmd(&["INFO", "replication"]).text();
        assert!(text.contains("percore_read_mode:lease"), "{a}: {text}");
    }
    let mut leader = Resp::connect(&addrs[0]);
    assert_eq!(leader.cmd(&["GET", "k"]), Value::Bulk(b"v1".to_vec()));
    for f in &nodes[1..] {
        f.signal(libc::SIGSTOP);
    }
    let read = leader.try_cmd(&["GET", "k"]);
    for f in &nodes[1..] {
        f.signal(libc::SIGCONT);
    }
    assert_eq!(read, Some(Value::Bulk(b"v1".to_vec())), "read on the lease, no majority asked");
    set(&addrs, "k", "v2");
    assert_eq!(get(&addrs, "k").as_deref(), Some("v2"));
}
